/* SPDX-License-Identifier: Apache-2.0 */
/* conn.c: the framed-connection server behind every socket of the project.
 *
 * Why uv_poll and not uv_stream: fds travel as SCM_RIGHTS both ways and each
 * one must be accounted for (handed to on_frame, or closed), which needs our
 * own recvmsg/sendmsg.  The loop only tells us when a socket is ready.
 * Reads are recvmsg, except on the connections of a server that takes no
 * fd at all (etscounterd, cfg.no_fds) whose socket refuses them: recv costs
 * about 200 ns less a call here, but closes a peer's fds without a trace,
 * and such a request must not be served as if they were not there; a NULL
 * control buffer, which would still say MSG_CTRUNC, is no cheaper than
 * ours (docs/performance.md, "The 50-connection rows").  So a no_fds
 * server turns SO_PASSRIGHTS off on its listening socket (Linux 6.16 and
 * later): a peer's sendmsg with fds then fails with EPERM and sends
 * nothing.  The option is copied to each connection when the peer
 * connects, so a connection accepted with it off can never have carried
 * an fd, and it alone is read with recv; one made before it was set
 * (queued while the server started), or any on an older kernel, is read
 * with recvmsg and its fds refused by the server (unexpected_fd) as ever.
 *
 * Reading: up to CONN_READS_PER_EVENT recvmsg of CONN_READ_CHUNK per wakeup
 * (fairness between connections), then every complete frame is dispatched.
 * A server with on_ahead (etscounterd) is served in two steps instead: each
 * ready connection is read and its first frame shown to on_ahead in the
 * poll callback, and all of the turn's reads are dispatched together at the
 * end of the I/O callbacks (the flush's check handle, before the flush), so
 * the cache misses the server starts for each frame overlap the reading of
 * the others rather than following one another (docs/performance.md).
 * Then on_served, before any reply is written: a server that held requests
 * back to do them together (etscounterd's group commit of a turn's
 * exactly-once counts) does them there; a connection served outside that
 * list (its backlog, a reader resumed after backpressure) is followed by
 * on_served too, so nothing held back waits past the turn's flush.  And
 * before conn.c closes a connection itself in the middle of its serving
 * (a half-closed peer, a frame too large), on_served runs first: a
 * closing connection takes no more replies, and the requests held back
 * were counted, so their replies must be queued before the close (and
 * before the error frame), in request order (conn_serve_held).
 * Which frame do received fds belong to?  The kernel ends a stream read
 * right after the message (sendmsg) that carried fds, and senders attach fds
 * to the first byte of a frame and put nothing after that frame in the same
 * sendmsg (frame_write does one frame per call; this file's writer stops a
 * batch at the end of an fd-carrying frame).  So the fds of a read belong to
 * the frame holding the read's last byte.  Each read with fds is remembered
 * as a group {stream offset of its end, fds} until that frame is complete.
 *
 * Writing: replies are queued as segments; the connection is put on the
 * server's dirty list, and the list is flushed by a uv_check handle (right
 * after the I/O callbacks of this iteration) and a uv_prepare handle (for
 * sends from timers and other callbacks, before the loop blocks).  So all the
 * replies one read produced leave in one sendmsg, in request order.  Small
 * frames are appended to the tail segment while it has room, so a pipelined
 * batch of replies is one allocation and one iovec rather than one per
 * reply (the kernel's per-iovec cost showed in profiles).  Sent segments
 * of that small size are kept by the server (up to CONN_SEG_CACHE) for the
 * next replies of any connection: at 50 connections, a reply each per
 * turn, malloc's per-thread cache was too small for them.  A batch
 * stops before a segment carrying an fd; that segment goes alone, fd on its
 * first byte.  EAGAIN arms UV_WRITABLE until the queue drains.
 *
 * A turn's I/O in one system call (io_uring, uring.c): at 50 connections
 * with a request in flight on each, the server's CPU went on one recv and
 * one send a request, each paying a system call's entry and exit (about
 * 165 ns here) and its lookups.  A server that takes no fd (cfg.no_fds)
 * opens a small io_uring at start: the sends of a flush go into it, one
 * per dirty connection (its queue's head segment, the turn's replies to
 * it), and leave in one io_uring_enter; each connection is then flushed as
 * ever, which finds its queue empty or sends the rest (a short send, an fd).
 * With on_ahead too (etscounterd), the poll callback of a connection
 * accepted with SO_PASSRIGHTS off (plain_reads) does not read: it leaves
 * the read to the end of the turn's I/O callbacks, where all of the turn's
 * reads go in one io_uring_enter before any is served, so the look-ahead
 * above still sees every first frame before serving.  Each operation is
 * non-blocking and finished inside that call (uring.c), so nothing is in
 * flight between turns, libuv stays the loop, and replies keep their order
 * and still leave only after on_served.  A batch of one (a single ready
 * connection, as at 1 connection) is the plain recv or send: one
 * io_uring_enter costs more than either.  A SIGKILL cannot cut a batch of
 * sends short: a kill between a count and its reply is rarer.  Where
 * io_uring_setup fails (no io_uring, a seccomp filter without it, though
 * systemd 252's @system-service has it; kernel.io_uring_disabled) or
 * ETSMGR_IO_URING=0 is set, and for servers that pass fds (etsmgrd,
 * etssup), every read and write is
 * the system call as before; a ring that fails later is closed and the
 * batch redone with system calls (docs/performance.md, "The 50-connection
 * rows: a turn's I/O in one system call").
 *
 * Backpressure: once CONN_OUT_HIGH bytes are queued, frames stay in the
 * reader and the socket is not read until the queue is empty again.  A peer
 * that never reads while we keep queueing (events) is dropped at
 * CONN_OUT_HARD.
 *
 * Lifetime: closing calls on_close at once and frees the struct only in the
 * uv_close callback, so code that runs on after a user callback (which may
 * have closed this connection or stopped the whole server) can still look
 * at c->closed.  The server is freed once all of its handles are closed. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frame.h"
#include "proto.h"
#include "log.h"
#include "uring.h"

#define CONN_READ_CHUNK 65536
#define CONN_READS_PER_EVENT 4
#define CONN_ACCEPTS_PER_EVENT 64
#define CONN_OUT_HIGH (1u << 20)
#define CONN_OUT_HARD (64u << 20)
#define CONN_IOV_MAX 64
#define CONN_ACCEPT_BACKOFF_MS 100
/* fds all connections together may hold for frames not yet complete, when
 * the config does not say (fdpass.h bounds each connection to 8) */
#define CONN_HELD_FDS_DEFAULT 256
/* work one connection may do in one loop turn: each frame costs 1, and a
 * handler adds what its request really cost (conn_charge) */
#define CONN_TURN_BUDGET 64
/* io_uring (no_fds servers): operations in one batch (one io_uring_enter),
 * and the reads of a turn that go by it, each into a slot of this size (a
 * full slot is followed by ordinary reads, as a full CONN_READ_CHUNK is) */
#define CONN_RING_ENTRIES 64
#define CONN_RING_SLOT 4096

typedef struct conn_seg {
    struct conn_seg *next;
    size_t len, off, cap; /* bytes queued in data, of them sent, allocated */
    int fd; /* our dup, closed once sent; -1: none (then frames may follow) */
    char data[];
} conn_seg;
/* Small replies share a segment of this many bytes, so a pipelined batch of
 * replies costs one malloc and leaves as one iovec, not one of each per
 * reply (docs/performance.md).  With its header a segment is 1 KiB, a size
 * glibc serves from its per-thread cache (up to 1032 bytes). */
#define CONN_SEG_MIN (1024 - sizeof(conn_seg))
/* Sent small segments the server keeps for the next replies instead of
 * freeing them: at 50 connections a loop turn queues one reply on each, and
 * glibc's per-thread cache holds only 7 chunks of a size, so the others
 * went through malloc's slower bins (a sixth of etscounterd's instructions
 * for a count at 50 connections, callgrind; docs/performance.md).  Bounded,
 * so an idle server holds at most this many KiB. */
#define CONN_SEG_CACHE 128
/* Linux 6.16's SO_PASSRIGHTS, which older headers lack: 83 where the
 * architecture numbers socket options as asm-generic does (alpha, mips,
 * parisc and sparc have numbers of their own, and there 83 may be another
 * option: without the header's name, nothing is set).  An older kernel
 * refuses the option (ENOPROTOOPT) and nothing changes. */
#if defined(SO_PASSRIGHTS)
#define CONN_SO_PASSRIGHTS SO_PASSRIGHTS
#elif !defined(__alpha__) && !defined(__mips__) && !defined(__hppa__) && !defined(__sparc__)
#define CONN_SO_PASSRIGHTS 83
#endif

struct conn {
    uv_poll_t poll;
    conn_server *srv;
    int fd;
    conn *prev, *next;             /* the server's connections */
    conn *dirty_prev, *dirty_next; /* the server's flush list */
    bool dirty;
    frame_reader rd;
    uint64_t rx_total, rx_consumed;
    uint64_t scan;     /* frame_reader_tail_start's cursor */
    fdpass_ledger fdl; /* fds received, waiting for their frame */
    int held_seen;     /* fdl.held as counted in the server's held_fds */
    unsigned spent;    /* work done in this turn (CONN_TURN_BUDGET) */
    bool backlog;      /* frames wait for the next turn: on the server's list */
    conn *bl_prev, *bl_next;
    bool ready;        /* read in this turn, served at its end (look-ahead) */
    conn *rd_prev, *rd_next;
    conn_seg *out_head, *out_tail;
    size_t out_bytes;
    int events;      /* what uv_poll watches now */
    bool want_write; /* the last sendmsg hit EAGAIN */
    bool paused;     /* backpressure: not reading, frames wait in rd */
    bool eof;        /* the peer will send nothing more */
    bool closing;    /* close once the queue is written */
    bool closed;     /* on_close done, uv_close pending */
    bool in_process;
    bool plain_reads; /* SO_PASSRIGHTS off since its connect: recv (above) */
    unsigned ring_read; /* 1 + its index in the server's batch of reads; 0: none */
    pid_t pid;
    uid_t uid;
    gid_t gid;
    void *data;
};

struct conn_server {
    uv_loop_t *loop;
    uv_poll_t lpoll;
    uv_timer_t backoff;
    uv_prepare_t prep;
    uv_check_t check;
    int listen_fd;
    conn_server_cfg cfg;
    conn *head;
    size_t count;
    conn *dirty_head;
    bool flush_armed;
    bool stopping;
    int open_handles;
    char *rbuf;
    size_t held_fds;  /* fds held by every connection's ledger */
    conn *bl_head;    /* connections with frames left for the next turn */
    uv_idle_t idle;   /* runs while bl_head is not empty: no blocking poll */
    conn *rd_head, *rd_tail; /* read in this turn, not yet served (on_ahead) */
    bool serving_ready;      /* serving rd_head's list: on_served once after it */
    conn_seg *seg_free;      /* sent small segments kept for reuse (CONN_SEG_CACHE) */
    unsigned nseg_free;
    uring *ring;                    /* the turn's I/O in one system call (no_fds), or NULL */
    conn *reads[CONN_RING_ENTRIES]; /* to read at the end of the turn's I/O (tag: index) */
    unsigned nreads;
    char *ring_bufs;                /* their slots, CONN_RING_SLOT bytes each */
    conn *sends[CONN_RING_ENTRIES]; /* the flush's batch */
};

static void conn_close_now(conn *c);
static void conn_process(conn *c);
static int conn_got(conn *c, const char *buf, size_t chunk, ssize_t n, int *fds, int nfds);
static void conn_read_more(conn *c, int reads);
static void conn_on_poll(uv_poll_t *h, int status, int events);

/* ------------------------------------------------------------ helpers */

static void conn_update_events(conn *c)
{
    if (c->closed)
        return;
    int ev = 0;
    if (!c->paused && !c->eof && !c->closing && !c->backlog)
        ev |= UV_READABLE;
    if (c->want_write)
        ev |= UV_WRITABLE;
    if (ev == c->events)
        return;
    c->events = ev;
    int r = ev ? uv_poll_start(&c->poll, ev, conn_on_poll) : uv_poll_stop(&c->poll);
    if (r < 0) {
        log_error("uv_poll_start on a connection (pid %ld): %s; closing it", (long)c->pid,
                  uv_strerror(r));
        conn_close_now(c);
    }
}

static void srv_on_flush_prepare(uv_prepare_t *h);
static void srv_on_flush_check(uv_check_t *h);

/* The flush (and the serving of connections read in this turn) runs at
 * the end of the turn's I/O callbacks (check) or before the loop blocks
 * (prepare). */
static void srv_arm(conn_server *s)
{
    if (!s->flush_armed && !s->stopping) {
        uv_prepare_start(&s->prep, srv_on_flush_prepare);
        uv_check_start(&s->check, srv_on_flush_check);
        s->flush_armed = true;
    }
}

static void conn_mark_dirty(conn *c)
{
    conn_server *s = c->srv;
    if (c->dirty || c->closed)
        return;
    c->dirty = true;
    c->dirty_prev = NULL;
    c->dirty_next = s->dirty_head;
    if (s->dirty_head)
        s->dirty_head->dirty_prev = c;
    s->dirty_head = c;
    srv_arm(s);
}

static void conn_unmark_dirty(conn *c)
{
    if (!c->dirty)
        return;
    if (c->dirty_prev)
        c->dirty_prev->dirty_next = c->dirty_next;
    else
        c->srv->dirty_head = c->dirty_next;
    if (c->dirty_next)
        c->dirty_next->dirty_prev = c->dirty_prev;
    c->dirty = false;
    c->dirty_prev = c->dirty_next = NULL;
}

/* A segment of cap bytes: a kept one when it is of the small size. */
static conn_seg *srv_seg_get(conn_server *s, size_t cap)
{
    conn_seg *g = s->seg_free;
    if (cap == CONN_SEG_MIN && g) {
        s->seg_free = g->next;
        s->nseg_free--;
        return g;
    }
    return malloc(sizeof *g + cap);
}

/* A segment no longer queued (its fd, if any, already closed). */
static void srv_seg_put(conn_server *s, conn_seg *g)
{
    if (g->cap == CONN_SEG_MIN && s->nseg_free < CONN_SEG_CACHE) {
        g->next = s->seg_free;
        s->seg_free = g;
        s->nseg_free++;
    } else {
        free(g);
    }
}

static void conn_free_output(conn *c)
{
    conn_seg *s = c->out_head;
    while (s) {
        conn_seg *n = s->next;
        if (s->fd >= 0)
            close(s->fd);
        srv_seg_put(c->srv, s);
        s = n;
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

/* ------------------------------------------------------------ lifetime */

static void srv_handle_closed(conn_server *s)
{
    if (--s->open_handles == 0) {
        while (s->seg_free) {
            conn_seg *g = s->seg_free;
            s->seg_free = g->next;
            free(g);
        }
        /* (the ring goes only now: a stop from a callback may come while
         * a batch's results are being read) */
        uring_close(s->ring);
        free(s->ring_bufs);
        free(s->rbuf);
        free(s);
    }
}

static void conn_on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    conn_server *s = c->srv;
    free(c);
    srv_handle_closed(s);
}

/* The server's count of held fds follows this connection's ledger. */
static void conn_held_sync(conn *c)
{
    c->srv->held_fds += (size_t)c->fdl.held;
    c->srv->held_fds -= (size_t)c->held_seen;
    c->held_seen = c->fdl.held;
}

static void srv_on_idle(uv_idle_t *h);

static void conn_backlog_add(conn *c)
{
    conn_server *s = c->srv;
    if (c->backlog)
        return;
    c->backlog = true;
    c->bl_prev = NULL;
    c->bl_next = s->bl_head;
    if (s->bl_head)
        s->bl_head->bl_prev = c;
    else if (!s->stopping)
        uv_idle_start(&s->idle, srv_on_idle);
    s->bl_head = c;
}

static void conn_backlog_remove(conn *c)
{
    conn_server *s = c->srv;
    if (!c->backlog)
        return;
    if (c->bl_prev)
        c->bl_prev->bl_next = c->bl_next;
    else
        s->bl_head = c->bl_next;
    if (c->bl_next)
        c->bl_next->bl_prev = c->bl_prev;
    c->backlog = false;
    c->bl_prev = c->bl_next = NULL;
    if (!s->bl_head && !s->stopping)
        uv_idle_stop(&s->idle);
}

/* Read in this turn, served at its end (srv_flush_all, before the flush),
 * after every connection the turn's poll reported was read: the server is
 * shown the first frame now (on_ahead), so that what it will touch for
 * each of them is being loaded while the others are read. */
static void conn_ready_add(conn *c)
{
    conn_server *s = c->srv;
    if (c->ready || c->closed)
        return;
    c->ready = true;
    c->rd_next = NULL;
    c->rd_prev = s->rd_tail;
    if (s->rd_tail)
        s->rd_tail->rd_next = c;
    else
        s->rd_head = c;
    s->rd_tail = c;
    srv_arm(s);
    const char *p;
    size_t len;
    if (frame_reader_peek(&c->rd, &p, &len))
        s->cfg.on_ahead(c, p, len, s->cfg.arg);
}

static void conn_ready_remove(conn *c)
{
    conn_server *s = c->srv;
    if (!c->ready)
        return;
    if (c->rd_prev)
        c->rd_prev->rd_next = c->rd_next;
    else
        s->rd_head = c->rd_next;
    if (c->rd_next)
        c->rd_next->rd_prev = c->rd_prev;
    else
        s->rd_tail = c->rd_prev;
    c->ready = false;
    c->rd_prev = c->rd_next = NULL;
}

static void conn_close_now(conn *c)
{
    if (c->closed)
        return;
    conn_server *s = c->srv;
    c->closed = true;
    conn_unmark_dirty(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->count--;
    conn_backlog_remove(c);
    conn_ready_remove(c);
    if (c->ring_read) { /* not read: its slot in the batch is skipped */
        s->reads[c->ring_read - 1] = NULL;
        c->ring_read = 0;
    }
    fdpass_ledger_close(&c->fdl);
    conn_held_sync(c);
    conn_free_output(c);
    frame_reader_free(&c->rd);
    if (s->cfg.on_close)
        s->cfg.on_close(c, s->cfg.arg);
    uv_close((uv_handle_t *)&c->poll, conn_on_closed); /* stops polling first */
    close(c->fd);
    c->fd = -1;
}

void conn_close(conn *c)
{
    if (!c || c->closed || c->closing)
        return;
    c->closing = true;
    conn_update_events(c);
    conn_mark_dirty(c); /* the flush closes it once the queue is out */
}

/* ------------------------------------------------------------ writing */

static void conn_consume(conn *c, size_t n)
{
    c->out_bytes -= n;
    while (n > 0 && c->out_head) {
        conn_seg *s = c->out_head;
        if (s->fd >= 0) { /* rode on the first byte, now sent */
            close(s->fd);
            s->fd = -1;
        }
        size_t left = s->len - s->off;
        if (n < left) {
            s->off += n;
            return;
        }
        n -= left;
        c->out_head = s->next;
        if (!c->out_head)
            c->out_tail = NULL;
        srv_seg_put(c->srv, s);
    }
}

/* One sendmsg of the queue's head: a batch of plain segments, or one
 * fd-carrying segment alone.  Bytes sent, or -1/errno. */
static ssize_t conn_send_some(conn *c)
{
    struct iovec iov[CONN_IOV_MAX];
    int niov = 0;
    conn_seg *s = c->out_head;
    int fd = s->fd;
    if (fd >= 0) {
        iov[niov++] = (struct iovec){s->data + s->off, s->len - s->off};
    } else {
        for (; s && s->fd < 0 && niov < CONN_IOV_MAX; s = s->next)
            iov[niov++] = (struct iovec){s->data + s->off, s->len - s->off};
    }
    /* the usual batch, replies sharing one segment, goes by send(2) there */
    ssize_t n = fdpass_send(c->fd, iov, niov, MSG_DONTWAIT, &fd, fd >= 0 ? 1 : 0);
    if (n > 0)
        conn_consume(c, (size_t)n);
    return n;
}

static void conn_flush(conn *c)
{
    while (!c->closed && c->out_head) {
        if (conn_send_some(c) < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->want_write = true;
                conn_update_events(c);
                return;
            }
            log_debug("sendmsg to pid %ld: %s; closing the connection", (long)c->pid, strerror(errno));
            conn_close_now(c);
            return;
        }
    }
    if (c->closed)
        return;
    c->want_write = false;
    if (c->closing) {
        conn_close_now(c);
        return;
    }
    if (c->paused) {
        c->paused = false;
        conn_process(c); /* frames that waited in the reader */
    }
    conn_update_events(c);
}

void conn_flush_now(conn *c)
{
    /* only the sending: what else conn_flush may do (close, resume a paused
     * reader and so call on_frame) waits for the turn's flush, so that no
     * callback runs from inside the caller's */
    if (c->closed || c->want_write || c->closing || c->paused)
        return;
    while (c->out_head) {
        if (conn_send_some(c) < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->want_write = true;
                conn_update_events(c);
            }
            return; /* any other error: the turn's flush meets it and closes */
        }
    }
}

/* The ring failed (uring_run: say, used from another process): from now
 * on, system calls, as without it. */
static void srv_ring_off(conn_server *s)
{
    log_warning("io_uring_enter: %s; the server reads and writes with ordinary system calls from now on",
                strerror(errno));
    uring_close(s->ring);
    s->ring = NULL;
}

/* The reads conn_read left for the end of the turn's I/O, in one system
 * call; then each connection is read on as conn_read would have (a full
 * slot may be followed by more) and put on the turn's list, in the order
 * the poll reported them. */
static void srv_ring_reads(conn_server *s)
{
    unsigned n = s->nreads;
    if (n == 1) { /* one read: recv costs less than io_uring_enter (performance.md) */
        conn *c = s->reads[0];
        s->nreads = 0;
        if (c) {
            s->reads[0] = NULL;
            c->ring_read = 0;
            conn_read_more(c, CONN_READS_PER_EVENT);
        }
        return;
    }
    for (unsigned i = 0; i < n; i++)
        if (s->reads[i])
            uring_recv(s->ring, s->reads[i]->fd, s->ring_bufs + (size_t)i * CONN_RING_SLOT, CONN_RING_SLOT,
                       i);
    bool failed = uring_run(s->ring) < 0;
    int err = errno;
    uint64_t tag;
    int32_t res;
    while (uring_result(s->ring, &tag, &res)) {
        conn *c = tag < n ? s->reads[tag] : NULL;
        if (!c) /* closed since, by another connection's callback */
            continue;
        s->reads[tag] = NULL;
        c->ring_read = 0;
        if (res < 0)
            errno = -res;
        int k = conn_got(c, s->ring_bufs + tag * CONN_RING_SLOT, CONN_RING_SLOT, res, NULL, 0);
        if (k > 0)
            conn_read_more(c, CONN_READS_PER_EVENT - 1);
        else if (k == 0)
            conn_ready_add(c);
    }
    for (unsigned i = 0; i < n; i++) { /* no result: the ring failed; read as without it */
        conn *c = s->reads[i];
        if (c) {
            s->reads[i] = NULL;
            c->ring_read = 0;
            conn_read_more(c, CONN_READS_PER_EVENT);
        }
    }
    s->nreads = 0;
    if (failed) {
        errno = err;
        srv_ring_off(s);
    }
}

/* Up to CONN_RING_ENTRIES connections of the dirty list flushed with one
 * system call: a send of each one's head segment (the usual batch of
 * replies sharing a segment) goes in the ring; then each is flushed as
 * ever (conn_flush), which finds its queue empty (no system call) or sends
 * what is left (the rest of a short send, more segments, a segment with an
 * fd) and does what follows a flush (close once written, resume a paused
 * reader).  A connection's replies keep their order: nothing more of its
 * queue is sent until the ring's send of its head is done. */
static void srv_ring_flush(conn_server *s)
{
    unsigned n = 0;
    conn *c = s->dirty_head;
    if (!c->dirty_next) { /* one connection: send costs less than io_uring_enter */
        conn_unmark_dirty(c);
        if (!c->want_write)
            conn_flush(c);
        return;
    }
    while (n < CONN_RING_ENTRIES && (c = s->dirty_head)) {
        conn_unmark_dirty(c);
        if (c->want_write)
            continue; /* UV_WRITABLE will call conn_flush */
        conn_seg *g = c->out_head;
        if (g && g->fd < 0)
            uring_send(s->ring, c->fd, g->data + g->off, g->len - g->off, n);
        s->sends[n++] = c;
    }
    bool failed = uring_run(s->ring) < 0;
    int err = errno;
    uint64_t tag;
    int32_t res;
    while (uring_result(s->ring, &tag, &res)) {
        c = tag < n ? s->sends[tag] : NULL;
        if (!c || c->closed)
            continue;
        if (res >= 0) {
            conn_consume(c, (size_t)res);
        } else if (res == -EAGAIN || res == -EWOULDBLOCK) {
            c->want_write = true;
            conn_update_events(c);
        } else {
            log_debug("send to pid %ld: %s; closing the connection", (long)c->pid, strerror(-res));
            conn_close_now(c);
        }
    }
    /* (without a result, after the ring failed, conn_flush sends it all) */
    for (unsigned i = 0; i < n; i++) {
        c = s->sends[i];
        if (!c->closed && !c->want_write)
            conn_flush(c);
    }
    if (failed) {
        errno = err;
        srv_ring_off(s);
    }
}

static void srv_flush_all(conn_server *s)
{
    conn *c;
    if (s->nreads)
        srv_ring_reads(s);
    s->serving_ready = true;
    while ((c = s->rd_head)) { /* read in this turn: served first, in the order read */
        conn_ready_remove(c);
        conn_process(c);
    }
    s->serving_ready = false;
    if (s->cfg.on_served)
        s->cfg.on_served(s->cfg.arg); /* before the writes below */
    while ((c = s->dirty_head)) {
        if (s->ring) {
            srv_ring_flush(s);
            continue;
        }
        conn_unmark_dirty(c);
        if (!c->want_write) /* else UV_WRITABLE will call conn_flush */
            conn_flush(c);
    }
    if (s->flush_armed && !s->stopping) {
        uv_prepare_stop(&s->prep);
        uv_check_stop(&s->check);
        s->flush_armed = false;
    }
}

static void srv_on_flush_prepare(uv_prepare_t *h) { srv_flush_all(h->data); }
static void srv_on_flush_check(uv_check_t *h) { srv_flush_all(h->data); }

/* length prefix and payload at p */
static void conn_put_frame(char *p, const char *payload, size_t len)
{
    p[0] = (char)(len >> 24);
    p[1] = (char)(len >> 16);
    p[2] = (char)(len >> 8);
    p[3] = (char)len;
    if (len)
        memcpy(p + 4, payload, len);
}

int conn_send(conn *c, const char *payload, size_t len, int fd)
{
    if (!c || c->closed || c->closing) {
        errno = EPIPE;
        return -1;
    }
    if (len > FRAME_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    conn_seg *s = c->out_tail;
    if (fd < 0 && s && s->fd < 0 && s->cap - s->len >= 4 + len) {
        /* after the frames already queued, in the same segment */
        conn_put_frame(s->data + s->len, payload, len);
        s->len += 4 + len;
        c->out_bytes += 4 + len;
    } else {
        size_t cap = fd < 0 && 4 + len < CONN_SEG_MIN ? CONN_SEG_MIN : 4 + len;
        s = srv_seg_get(c->srv, cap);
        if (!s)
            return -1;
        s->next = NULL;
        s->len = 4 + len;
        s->off = 0;
        s->cap = cap;
        s->fd = -1;
        if (fd >= 0) {
            s->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            if (s->fd < 0) {
                int e = errno;
                log_error("fcntl(F_DUPFD_CLOEXEC) of an fd to send to pid %ld: %s", (long)c->pid,
                          strerror(e));
                srv_seg_put(c->srv, s);
                errno = e;
                return -1;
            }
        }
        conn_put_frame(s->data, payload, len);
        if (c->out_tail)
            c->out_tail->next = s;
        else
            c->out_head = s;
        c->out_tail = s;
        c->out_bytes += s->len;
    }
    if (c->out_bytes > CONN_OUT_HARD) {
        log_warning("connection of pid %ld does not read its replies (%zu bytes queued); closing it",
                    (long)c->pid, c->out_bytes);
        conn_free_output(c);
        c->closing = true;
        conn_update_events(c);
        conn_mark_dirty(c);
        errno = ENOBUFS;
        return -1;
    }
    conn_mark_dirty(c);
    return 0;
}

int conn_send_json(conn *c, const cJSON *obj, int fd)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    int r = conn_send(c, s, strlen(s), fd);
    int e = errno;
    cJSON_free(s);
    errno = e;
    return r;
}

/* A complete error frame, for replies outside any request. */
static int conn_error_frame(char *buf, size_t len, proto_err code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return -1;
    cJSON_AddBoolToObject(o, "ok", false);
    cJSON_AddNullToObject(o, "id");
    cJSON_AddStringToObject(o, "error", proto_err_code(code));
    cJSON_AddStringToObject(o, "message", msg);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return -1;
    int n = snprintf(buf, len, "%s", s);
    cJSON_free(s);
    return n < 0 || (size_t)n >= len ? -1 : n;
}

/* ------------------------------------------------------------ reading */

/* The server-wide bound on fds held for unfinished frames is reached:
 * this connection gets an error frame and is closed. */
static void conn_refuse_fds(conn *c, size_t budget)
{
    char msg[200], body[320];
    snprintf(msg, sizeof msg,
             "the server already holds %zu file descriptors of unfinished frames (its limit); closing the "
             "connection", budget);
    log_warning("pid %ld sent fds while %zu of unfinished frames are held (limit %zu); closing its connection",
                (long)c->pid, c->srv->held_fds, budget);
    int bl = conn_error_frame(body, sizeof body, PROTO_E_TOO_MANY_FDS, msg);
    if (bl > 0)
        conn_send(c, body, (size_t)bl, -1);
    fdpass_ledger_close(&c->fdl);
    conn_held_sync(c);
    conn_close(c);
}

/* One more turn for each connection that had frames left (its list is
 * taken whole first: a connection that again has frames left goes on the
 * next turn's list, after the I/O of this one). */
static void srv_on_idle(uv_idle_t *h)
{
    conn_server *s = h->data;
    conn *c = s->bl_head;
    s->bl_head = NULL;
    while (c) {
        conn *n = c->bl_next;
        c->backlog = false;
        c->bl_prev = c->bl_next = NULL;
        if (!c->closed) {
            conn_process(c);
        }
        c = n;
    }
    if (!s->bl_head && !s->stopping)
        uv_idle_stop(&s->idle);
}

void conn_charge(conn *c, unsigned units)
{
    if (c)
        c->spent = units > CONN_TURN_BUDGET ? CONN_TURN_BUDGET : c->spent + units; /* no overflow */
}

/* conn.c is about to close c itself (a half-closed peer, a frame too
 * large) while frames it sent may be held back by the server (on_served:
 * etscounterd's batch of exactly-once counts, already counted once it is
 * done): the server does them now, so that their replies are queued
 * before the close (and before its error frame), in request order, while
 * conn_send still takes them.  Only on these rare paths: a turn's usual
 * serving calls on_served once, as ever. */
static void conn_serve_held(conn *c)
{
    conn_server *s = c->srv;
    if (s->cfg.on_served)
        s->cfg.on_served(s->cfg.arg);
}

static void conn_process(conn *c)
{
    if (c->in_process || c->closed)
        return;
    conn_server *s = c->srv;
    c->in_process = true;
    conn_backlog_remove(c);
    c->spent = 0;
    while (!c->closed && !c->closing) {
        if (c->out_bytes >= CONN_OUT_HIGH) {
            c->paused = true;
            break;
        }
        if (c->spent >= CONN_TURN_BUDGET) {
            /* this connection had its turn: what it sent waits for the
             * next loop turn, after every other connection's (item 9 of
             * issue 12: one pipelining peer stalled all others) */
            if (frame_reader_pending(&c->rd))
                conn_backlog_add(c);
            break;
        }
        const char *p;
        size_t len;
        int k = frame_reader_next(&c->rd, &p, &len);
        if (k == 0)
            break;
        if (k < 0) {
            const unsigned char *h = (const unsigned char *)c->rd.buf + c->rd.off;
            uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
            char msg[160], body[256];
            snprintf(msg, sizeof msg,
                     "frame length %lu exceeds the limit of %u bytes; closing the connection",
                     (unsigned long)n, FRAME_MAX);
            log_warning("pid %ld sent a frame of %lu bytes (limit %u); closing its connection",
                        (long)c->pid, (unsigned long)n, FRAME_MAX);
            conn_serve_held(c); /* the frames before it answered first */
            if (c->closed || c->closing)
                break;
            int bl = conn_error_frame(body, sizeof body, PROTO_E_FRAME_TOO_LARGE, msg);
            if (bl > 0)
                conn_send(c, body, (size_t)bl, -1);
            fdpass_ledger_close(&c->fdl);
            conn_held_sync(c);
            conn_close(c);
            break;
        }
        uint64_t start = c->rx_consumed, end = start + 4 + len;
        c->rx_consumed = end;
        int fds[FRAME_MAX_FDS];
        int nfds = fdpass_ledger_take(&c->fdl, start, end, fds, FRAME_MAX_FDS);
        conn_held_sync(c);
        c->spent++;
        const char *np;
        size_t nlen;
        if (s->cfg.on_ahead && c->spent < CONN_TURN_BUDGET && frame_reader_peek(&c->rd, &np, &nlen))
            s->cfg.on_ahead(c, np, nlen, s->cfg.arg);
        s->cfg.on_frame(c, p, len, fds, nfds, s->cfg.arg);
    }
    if (!c->closed && !c->closing && !c->paused && !c->backlog && c->eof) {
        /* half-closed peer: answer what it sent, then close */
        conn_serve_held(c);
        if (!c->closed && !c->closing) {
            c->closing = true;
            conn_mark_dirty(c);
        }
    }
    c->in_process = false;
    conn_update_events(c);
    if (s->cfg.on_served && !s->serving_ready)
        s->cfg.on_served(s->cfg.arg); /* its replies queued before the flush (a turn's list: once after it) */
}

/* One read's outcome (n bytes at buf, or n < 0 with errno; fds that came
 * with it): 1 when a full chunk came (more may wait), 0 when the reading
 * ends (drained, end of stream), -1 when c was closed. */
static int conn_got(conn *c, const char *buf, size_t chunk, ssize_t n, int *fds, int nfds)
{
    conn_server *s = c->srv;
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        log_debug("recvmsg from pid %ld: %s; closing the connection", (long)c->pid, strerror(errno));
        conn_close_now(c);
        return -1;
    }
    if (n == 0) {
        c->eof = true; /* (fdpass_recv closed any fds: no byte, no frame) */
        return 0;
    }
    if (frame_reader_feed(&c->rd, buf, (size_t)n) < 0) {
        log_error("out of memory buffering a request of pid %ld; closing its connection", (long)c->pid);
        fdpass_close_all(fds, nfds);
        conn_close_now(c);
        return -1;
    }
    uint64_t begin = c->rx_total;
    c->rx_total += (uint64_t)n;
    if (nfds > 0) {
        uint64_t fstart = frame_reader_tail_start(&c->rd, c->rx_consumed, &c->scan);
        size_t budget = s->cfg.max_held_fds ? s->cfg.max_held_fds : CONN_HELD_FDS_DEFAULT;
        size_t want = (size_t)(nfds < FRAME_MAX_FDS ? nfds : FRAME_MAX_FDS);
        if (fstart >= begin && s->held_fds + want > budget) {
            /* peers together hold too many fds of unfinished frames */
            fdpass_close_all(fds, nfds);
            conn_refuse_fds(c, budget);
            return -1;
        }
        fdpass_ledger_add(&c->fdl, begin, c->rx_total, fstart, fds, nfds);
        conn_held_sync(c);
    }
    /* a short read drained the socket; level-triggered poll tells of more */
    return (size_t)n < chunk ? 0 : 1;
}

/* Up to reads more reads with system calls, then the frames are served
 * (or, with on_ahead, put on the turn's list). */
static void conn_read_more(conn *c, int reads)
{
    conn_server *s = c->srv;
    for (int i = 0; i < reads; i++) {
        int fds[FDPASS_RECV_ROOM], nfds = 0;
        ssize_t n = c->plain_reads ? recv(c->fd, s->rbuf, CONN_READ_CHUNK, MSG_DONTWAIT)
                                   : fdpass_recv(c->fd, s->rbuf, CONN_READ_CHUNK, MSG_DONTWAIT, fds,
                                                 FDPASS_RECV_ROOM, &nfds, NULL);
        int k = conn_got(c, s->rbuf, CONN_READ_CHUNK, n, fds, nfds);
        if (k < 0)
            return;
        if (k == 0)
            break;
    }
    if (s->cfg.on_ahead)
        conn_ready_add(c); /* served once the turn's other connections are read */
    else
        conn_process(c);
}

static void conn_read(conn *c)
{
    conn_server *s = c->srv;
    /* with the ring, a connection that cannot carry fds, and whose serving
     * waits for the end of the turn anyway (on_ahead), is read there, in
     * one system call with the turn's other such reads (srv_ring_reads) */
    if (c->ring_read)
        return; /* reported again in the same turn: already waiting for it */
    if (s->ring && c->plain_reads && s->cfg.on_ahead && s->nreads < CONN_RING_ENTRIES) {
        s->reads[s->nreads++] = c;
        c->ring_read = s->nreads;
        srv_arm(s);
        return;
    }
    conn_read_more(c, CONN_READS_PER_EVENT);
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    conn *c = h->data;
    if (c->closed)
        return;
    if (status < 0) {
        log_debug("poll on the connection of pid %ld: %s; closing it", (long)c->pid,
                  uv_strerror(status));
        conn_close_now(c);
        return;
    }
    if (events & UV_WRITABLE) {
        conn_flush(c);
        if (c->closed)
            return;
    }
    if ((events & UV_READABLE) && !c->paused && !c->eof && !c->closing)
        conn_read(c);
}

/* ------------------------------------------------------------ accepting */

static void srv_refuse(conn_server *s, int fd)
{
    char msg[128], body[256];
    snprintf(msg, sizeof msg, "the connection limit (%zu) is reached; try again later",
             s->cfg.max_conns);
    int bl = conn_error_frame(body + 4, sizeof body - 4, PROTO_E_TOO_MANY_CONNECTIONS, msg);
    if (bl > 0) {
        body[0] = (char)(bl >> 24);
        body[1] = (char)(bl >> 16);
        body[2] = (char)(bl >> 8);
        body[3] = (char)bl;
        /* a fresh socket's buffer takes it whole; if not, the close says it */
        if (send(fd, body, (size_t)bl + 4, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_debug("send too_many_connections: %s", strerror(errno));
    }
    close(fd);
}

static void srv_accept_one(conn_server *s, int fd)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        log_error("out of memory accepting a connection; closing it");
        close(fd);
        return;
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
        c->pid = cr.pid;
        c->uid = cr.uid;
        c->gid = cr.gid;
    } else {
        log_warning("getsockopt(SO_PEERCRED): %s; the peer is treated as unknown", strerror(errno));
        c->pid = 0;
        c->uid = (uid_t)-1;
        c->gid = (gid_t)-1;
    }
    int r = uv_poll_init(s->loop, &c->poll, fd);
    if (r < 0) {
        log_error("uv_poll_init on an accepted connection: %s; closing it", uv_strerror(r));
        free(c);
        close(fd);
        return;
    }
    c->poll.data = c;
    c->srv = s;
    c->fd = fd;
#ifdef CONN_SO_PASSRIGHTS
    if (s->cfg.no_fds) {
        int pass = 1;
        socklen_t pl = sizeof pass;
        c->plain_reads = getsockopt(fd, SOL_SOCKET, CONN_SO_PASSRIGHTS, &pass, &pl) == 0 && pass == 0;
    }
#endif
    frame_reader_init(&c->rd);
    c->next = s->head;
    if (s->head)
        s->head->prev = c;
    s->head = c;
    s->count++;
    s->open_handles++;
    conn_update_events(c);
    if (s->cfg.on_open && !c->closed)
        s->cfg.on_open(c, s->cfg.arg);
}

static void srv_on_listen(uv_poll_t *h, int status, int events);

static void srv_on_backoff(uv_timer_t *t)
{
    conn_server *s = t->data;
    if (!s->stopping)
        uv_poll_start(&s->lpoll, UV_READABLE, srv_on_listen);
}

static void srv_on_listen(uv_poll_t *h, int status, int events)
{
    conn_server *s = h->data;
    (void)events;
    if (status < 0) {
        log_error("poll on the listening socket: %s", uv_strerror(status));
        return;
    }
    for (int i = 0; i < CONN_ACCEPTS_PER_EVENT && !s->stopping; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_warning("accept4: %s; not accepting connections for %d ms", strerror(errno),
                            CONN_ACCEPT_BACKOFF_MS);
                uv_poll_stop(&s->lpoll);
                uv_timer_start(&s->backoff, srv_on_backoff, CONN_ACCEPT_BACKOFF_MS, 0);
                return;
            }
            log_error("accept4: %s", strerror(errno));
            break;
        }
        if (s->cfg.max_conns && s->count >= s->cfg.max_conns) {
            log_warning("connection limit (%zu) reached; refusing a connection", s->cfg.max_conns);
            srv_refuse(s, fd);
            continue;
        }
        srv_accept_one(s, fd);
    }
}

/* ------------------------------------------------------------ server */

/* The ring of a server that takes no fd, unless ETSMGR_IO_URING=0 says
 * not to or the kernel refuses it (then the server goes on with system
 * calls, as it always did: uring.c says when that is). */
static void srv_ring_open(conn_server *s)
{
    const char *env = getenv("ETSMGR_IO_URING");
    if (env && strcmp(env, "0") == 0) {
        log_debug("ETSMGR_IO_URING=0: reading and writing with ordinary system calls");
        return;
    }
    s->ring = uring_open(CONN_RING_ENTRIES);
    if (!s->ring) {
        log_debug("io_uring_setup: %s; reading and writing with ordinary system calls", strerror(errno));
        return;
    }
    /* zeroed: valgrind's memcheck does not see what the kernel writes
     * through the ring, and would call each read's bytes uninitialised */
    s->ring_bufs = calloc(CONN_RING_ENTRIES, CONN_RING_SLOT);
    if (!s->ring_bufs) {
        uring_close(s->ring);
        s->ring = NULL;
    }
}

static void srv_on_handle_closed(uv_handle_t *h) { srv_handle_closed(h->data); }

int conn_server_start(conn_server **out, uv_loop_t *loop, const conn_server_cfg *cfg)
{
    *out = NULL;
    if (!cfg || !cfg->on_frame || cfg->listen_fd < 0) {
        errno = EINVAL;
        return -1;
    }
    int fl = fcntl(cfg->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(cfg->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        log_error("fcntl(O_NONBLOCK) on the listening socket: %s", strerror(errno));
        return -1;
    }
    conn_server *s = calloc(1, sizeof *s);
    if (!s || !(s->rbuf = malloc(CONN_READ_CHUNK))) {
        free(s);
        errno = ENOMEM;
        return -1;
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->listen_fd = cfg->listen_fd;
    if (cfg->no_fds)
        srv_ring_open(s); /* (a server that passes fds needs recvmsg and sendmsg as they are) */
#ifdef CONN_SO_PASSRIGHTS
    if (cfg->no_fds) {
        int off = 0;
        if (setsockopt(s->listen_fd, SOL_SOCKET, CONN_SO_PASSRIGHTS, &off, sizeof off) < 0)
            log_debug("setsockopt(SO_PASSRIGHTS) on the listening socket: %s; fds that come are refused "
                      "by the server instead",
                      strerror(errno));
    }
#endif
    int r = uv_poll_init(loop, &s->lpoll, s->listen_fd);
    if (r < 0) {
        log_error("uv_poll_init on the listening socket: %s", uv_strerror(r));
        uring_close(s->ring);
        free(s->ring_bufs);
        free(s->rbuf);
        free(s);
        errno = -r;
        return -1;
    }
    uv_timer_init(loop, &s->backoff);
    uv_prepare_init(loop, &s->prep);
    uv_check_init(loop, &s->check);
    uv_idle_init(loop, &s->idle);
    s->lpoll.data = s->backoff.data = s->prep.data = s->check.data = s->idle.data = s;
    s->open_handles = 5;
    uv_unref((uv_handle_t *)&s->backoff);
    r = uv_poll_start(&s->lpoll, UV_READABLE, srv_on_listen);
    if (r < 0) {
        log_error("uv_poll_start on the listening socket: %s", uv_strerror(r));
        s->listen_fd = -1; /* not ours after a failed start */
        conn_server_stop(s);
        errno = -r;
        return -1;
    }
    *out = s;
    return 0;
}

void conn_server_stop(conn_server *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    /* what the socket buffers take now still goes out (say, the reply to
     * the request that stopped us); nothing waits for a slow peer */
    for (conn *c = s->head; c; c = c->next)
        while (c->out_head && conn_send_some(c) > 0)
            ;
    while (s->head)
        conn_close_now(s->head);
    uv_close((uv_handle_t *)&s->lpoll, srv_on_handle_closed);
    uv_close((uv_handle_t *)&s->backoff, srv_on_handle_closed);
    uv_close((uv_handle_t *)&s->prep, srv_on_handle_closed);
    uv_close((uv_handle_t *)&s->check, srv_on_handle_closed);
    uv_close((uv_handle_t *)&s->idle, srv_on_handle_closed);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    s->listen_fd = -1;
}

size_t conn_server_count(const conn_server *s) { return s ? s->count : 0; }
bool conn_server_io_uring(const conn_server *s) { return s && s->ring; }

pid_t conn_peer_pid(const conn *c) { return c->pid; }
uid_t conn_peer_uid(const conn *c) { return c->uid; }
gid_t conn_peer_gid(const conn *c) { return c->gid; }
void conn_set_data(conn *c, void *data) { c->data = data; }
void *conn_get_data(const conn *c) { return c->data; }

/* SPDX-License-Identifier: Apache-2.0 */
/* mgr_watch.c: reattachment to etsmgrd inside the application's libuv loop.
 *
 * The connection is the client's life line, so its end is how we learn that
 * the daemon died: a uv_poll on the socket reads (MSG_DONTWAIT, never
 * blocking the loop) and sees the end of stream.  From then on:
 *
 *   ACTIVE --EOF--> DOWN --timer: connect ok--> REGISTERING --all replies--> ACTIVE
 *                     ^                              |
 *                     +-------------EOF--------------+
 *
 * DOWN retries a non-blocking connect every retry_ms (a connect to a stale
 * socket is refused at once; under socket activation it succeeds and waits
 * in the backlog until the new daemon accepts).  REGISTERING pipelines hello
 * and one add_table, with the table's fd, per held table and per table
 * given to us whose transfer the application has not taken yet, from an
 * output queue flushed when the socket is writable, and collects the
 * replies.  The application's callbacks run only once all replies are in
 * and the state is ACTIVE again, so they may call the synchronous API.
 * Table handles are never touched: the mapping stays valid whatever the
 * daemon does.
 *
 * The uv handles are allocated and freed through uv_close callbacks, so
 * etsmgr_watch_stop (or closing the client) is safe from inside a callback.
 * They are unref'd: the watch serves the application's loop, it is not a
 * reason for the loop to go on once the application has nothing else. */
#include "mgr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

enum mc_wstate { W_ACTIVE, W_DOWN, W_REGISTERING };

typedef struct mc_out {
    char *buf;
    size_t len, off;
    int fd; /* sent with the frame's first byte; -1: none */
} mc_out;

typedef struct mc_result {
    etsmgr_table *t;
    uint64_t id;
    int done, err;
    int pending; /* a transfer not taken yet: the app has not seen t */
    char msg[256];
} mc_result;

struct mc_watch {
    etsmgr_client *c;
    uv_loop_t *loop;
    etsmgr_watch_cbs cbs;
    void *arg;
    enum mc_wstate state;
    uv_poll_t *poll;
    uv_timer_t *retry;
    uv_timer_t *kick;
    int poll_events;
    mc_out *out;
    size_t nout, capout;
    uint64_t hello_id;
    int hello_done;
    pid_t new_pid;
    mc_result *res;
    size_t nres;
    unsigned retry_ms;
    int depth;  /* inside one of our callbacks */
    int zombie; /* stopped while inside: free when the callback returns */
};

static void mc_enter(struct mc_watch *w) { w->depth++; }
static void mc_leave(struct mc_watch *w)
{
    if (--w->depth == 0 && w->zombie)
        free(w);
}

static void mc_free_handle(uv_handle_t *h) { free(h); }

static void mc_out_clear(struct mc_watch *w)
{
    for (size_t i = 0; i < w->nout; i++)
        free(w->out[i].buf);
    w->nout = 0;
}

static void mc_poll_close(struct mc_watch *w)
{
    if (w->poll) {
        uv_close((uv_handle_t *)w->poll, mc_free_handle);
        w->poll = NULL;
    }
}

static void mc_poll_cb(uv_poll_t *h, int status, int events);
static void mc_retry_cb(uv_timer_t *h);

static int mc_poll_set(struct mc_watch *w, int events)
{
    if (!w->poll) {
        w->poll = malloc(sizeof *w->poll);
        if (!w->poll)
            return -1;
        if (uv_poll_init(w->loop, w->poll, w->c->fd) < 0) {
            free(w->poll);
            w->poll = NULL;
            return -1;
        }
        w->poll->data = w;
        w->poll_events = 0;
        uv_unref((uv_handle_t *)w->poll); /* the watch alone does not keep the loop running */
    }
    if (events != w->poll_events || !uv_is_active((uv_handle_t *)w->poll)) {
        if (uv_poll_start(w->poll, events, mc_poll_cb) < 0)
            return -1;
        w->poll_events = events;
    }
    return 0;
}

/* The connection ended (or could not be used): back to DOWN and retry. */
static void mc_watch_down(struct mc_watch *w, const char *reason)
{
    etsmgr_client *c = w->c;
    int announce = w->state == W_ACTIVE;
    pid_t old = c->daemon_pid;
    mc_poll_close(w);
    mc_out_clear(w);
    free(w->res);
    w->res = NULL;
    w->nres = 0;
    mc_drop(c);
    w->state = W_DOWN;
    /* the first try at once: under a supervisor that holds the socket the
     * connect succeeds and waits in the backlog for the new daemon */
    uv_timer_start(w->retry, mc_retry_cb, announce ? 0 : w->retry_ms, w->retry_ms);
    mc_err(c, ETSMGR_ENOTCONN, "", "etsmgrd (pid %d) is gone: %s", (int)old, reason);
    if (announce && w->cbs.down)
        w->cbs.down(c, old, reason, w->arg);
}

static int mc_queue(struct mc_watch *w, cJSON *req, uint64_t id, int fd)
{
    if (!req)
        return -1;
    cJSON_AddNumberToObject(req, "id", (double)id);
    char *txt = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!txt)
        return -1;
    size_t len;
    char *buf = frame_encode(txt, strlen(txt), &len);
    cJSON_free(txt);
    if (!buf)
        return -1;
    if (w->nout == w->capout) {
        size_t cap = w->capout ? w->capout * 2 : 8;
        mc_out *n = realloc(w->out, cap * sizeof *n);
        if (!n) {
            free(buf);
            return -1;
        }
        w->out = n;
        w->capout = cap;
    }
    w->out[w->nout++] = (mc_out){ buf, len, 0, fd };
    return 0;
}

/* Writes what the socket takes now: 0, or -1 when the connection failed. */
static int mc_flush(struct mc_watch *w)
{
    size_t done = 0;
    while (done < w->nout) {
        mc_out *o = &w->out[done];
        struct iovec iov = { o->buf + o->off, o->len - o->off };
        int nfds = o->off == 0 && o->fd >= 0 ? 1 : 0; /* with the frame's first byte */
        ssize_t n = fdpass_send(w->c->fd, &iov, 1, MSG_DONTWAIT, &o->fd, nfds);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        o->off += (size_t)n;
        if (o->off == o->len) {
            free(o->buf);
            done++;
        }
    }
    memmove(w->out, w->out + done, (w->nout - done) * sizeof *w->out);
    w->nout -= done;
    return 0;
}

static void mc_retry_cb(uv_timer_t *h)
{
    struct mc_watch *w = h->data;
    etsmgr_client *c = w->c;
    if (w->state != W_DOWN || mc_open(c, 1) != ETSMGR_OK)
        return; /* not up yet: the timer repeats */
    uv_timer_stop(w->retry);
    w->state = W_REGISTERING;
    w->hello_done = 0;
    w->new_pid = 0;
    free(w->res);
    w->nres = 0;
    /* the tables given to us whose transfer is not taken yet are ours as
     * much as the held ones (mc_pending_readd says why) */
    size_t nall = c->ntables + c->npending;
    w->res = nall ? calloc(nall, sizeof *w->res) : NULL;
    int bad = nall && !w->res;
    cJSON *hello = cJSON_CreateObject();
    if (hello)
        cJSON_AddStringToObject(hello, "op", "hello");
    w->hello_id = ++c->next_id;
    bad = bad || mc_queue(w, hello, w->hello_id, -1) < 0;
    for (size_t i = 0; !bad && i < nall; i++) {
        mc_result *r = &w->res[w->nres++];
        r->pending = i >= c->ntables;
        r->t = r->pending ? c->pending[i - c->ntables].t : c->tables[i];
        r->id = ++c->next_id;
        bad = mc_queue(w, mc_add_table_req(c, r->t), r->id, etsmgr_table_fd(r->t)) < 0;
    }
    if (bad || mc_flush(w) < 0 || mc_poll_set(w, UV_READABLE | (w->nout ? UV_WRITABLE : 0)) < 0) {
        mc_watch_down(w, "could not send the re-registration requests");
        return;
    }
}

static void mc_deliver_transfers(struct mc_watch *w)
{
    etsmgr_client *c = w->c;
    while (c->watch == w && w->state == W_ACTIVE && c->npending > 0) {
        etsmgr_table *t;
        etsmgr_grant g;
        if (etsmgr_take_transfer(c, 0, &t, &g) != ETSMGR_OK)
            break;
        if (w->cbs.transfer)
            w->cbs.transfer(c, t, &g, w->arg);
    }
}

/* Every reply of the re-registration is in: ACTIVE, then tell the app. */
static void mc_registered(struct mc_watch *w)
{
    etsmgr_client *c = w->c;
    w->state = W_ACTIVE;
    c->daemon_pid = w->new_pid;
    mc_result *res = w->res;
    size_t nres = w->nres;
    w->res = NULL;
    w->nres = 0;
    /* a pending transfer the new daemon did not give back is no longer
     * ours: dropped before any callback could take it */
    for (size_t i = 0; i < nres; i++)
        if (res[i].pending && res[i].err != ETSMGR_OK && mc_pending_drop(c, res[i].t))
            res[i].t = NULL; /* freed: never compared again (a new table may have its address) */
    if (w->cbs.up)
        w->cbs.up(c, c->daemon_pid, w->arg);
    for (size_t i = 0; i < nres && c->watch == w; i++) {
        /* a pending transfer the application took while the replies were
         * on their way is held now, and told of as a held one (it was
         * skipped: held, refused, and the application never heard) */
        if (!res[i].t || mc_held_index(c, res[i].t) < 0)
            continue; /* the app let it go in a callback, or it is still pending */
        if (res[i].err == ETSMGR_OK) {
            if (w->cbs.readded)
                w->cbs.readded(c, res[i].t, w->arg);
        } else if (w->cbs.failed) {
            w->cbs.failed(c, res[i].t, res[i].err, res[i].msg, w->arg);
        }
    }
    free(res);
    if (c->watch == w)
        mc_deliver_transfers(w);
}

/* A reply during REGISTERING: 1 when it was one of ours. */
static int mc_take_reply(struct mc_watch *w, cJSON *obj)
{
    etsmgr_client *c = w->c;
    uint64_t id = mc_id(obj);
    if (id == 0)
        return 0;
    if (id == w->hello_id) {
        if (mc_reply_status(c, obj) != ETSMGR_OK)
            return -1;
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(obj, "pid");
        w->new_pid = cJSON_IsNumber(pid) ? (pid_t)pid->valueint : 0;
        w->hello_done = 1;
        return 1;
    }
    for (size_t i = 0; i < w->nres; i++) {
        mc_result *r = &w->res[i];
        if (r->id != id || r->done)
            continue;
        r->done = 1;
        r->err = mc_reply_status(c, obj);
        snprintf(r->msg, sizeof r->msg, "%s", r->err ? etsmgr_client_message(c) : "");
        return 1;
    }
    return 0;
}

static int mc_all_in(const struct mc_watch *w)
{
    if (!w->hello_done)
        return 0;
    for (size_t i = 0; i < w->nres; i++)
        if (!w->res[i].done)
            return 0;
    return 1;
}

static void mc_poll_io(struct mc_watch *w, int status, int events);
static void mc_poll_cb(uv_poll_t *h, int status, int events)
{
    struct mc_watch *w = h->data;
    mc_enter(w);
    mc_poll_io(w, status, events);
    mc_leave(w);
}

/* Decodes the frames already read: events, and replies while REGISTERING.
 * 0, or -1 after the connection was dropped. */
static int mc_drain(struct mc_watch *w)
{
    cJSON *obj;
    int r;
    while ((r = mc_next_frame(w->c, &obj)) == 1) {
        if (mc_handle_event(w->c, obj)) {
            cJSON_Delete(obj);
            continue;
        }
        if (w->state == W_REGISTERING && mc_take_reply(w, obj) < 0) {
            cJSON_Delete(obj);
            mc_watch_down(w, "etsmgrd refused hello");
            return -1;
        }
        mc_late_reply(w->c, obj); /* a late reply to a call that timed out */
        cJSON_Delete(obj);
        mc_frame_done(w->c); /* and its fds with it */
    }
    if (r < 0) {
        mc_watch_down(w, "etsmgrd sent an unreadable frame");
        return -1;
    }
    /* between the application's calls (the loop runs none of ours inside
     * one): a table a late reply made ours goes back now */
    if (w->state == W_ACTIVE)
        mc_release_flush(w->c);
    return 0;
}

static void mc_poll_io(struct mc_watch *w, int status, int events)
{
    etsmgr_client *c = w->c;
    if (status < 0) {
        mc_watch_down(w, uv_strerror(status));
        return;
    }
    if (w->state == W_REGISTERING && (events & UV_WRITABLE)) {
        if (mc_flush(w) < 0) {
            mc_watch_down(w, "connection closed");
            return;
        }
    }
    if (events & (UV_READABLE | UV_DISCONNECT)) {
        for (;;) {
            ssize_t n = mc_recv_some(c, MSG_DONTWAIT);
            if (n == 0) {
                /* the frames read before the end are still the daemon's
                 * word: a transfer among them gives us a table (the next
                 * daemon hears of it at the re-registration) */
                if (mc_drain(w) == 0)
                    mc_watch_down(w, "connection closed");
                return;
            }
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR)
                    continue;
                char why[128];
                snprintf(why, sizeof why, "recvmsg: %s", strerror(errno));
                mc_watch_down(w, why);
                return;
            }
            /* Decoded after every read, not once the socket is empty: each
             * read ends at a message with fds (one transfer), and the
             * ledger keeps the fds of only FDPASS_GROUPS reads until their
             * frames are decoded; the ninth transfer's fd was closed on
             * arrival, the table the daemon's record said was ours lost. */
            if (mc_drain(w) < 0)
                return;
        }
    }
    if (w->state == W_REGISTERING) {
        if (mc_poll_set(w, UV_READABLE | (w->nout ? UV_WRITABLE : 0)) < 0) {
            mc_watch_down(w, "uv_poll_start failed");
            return;
        }
        if (mc_all_in(w))
            mc_registered(w);
    } else if (w->state == W_ACTIVE) {
        mc_deliver_transfers(w);
    }
}

static void mc_kick_cb(uv_timer_t *h)
{
    struct mc_watch *w = h->data;
    mc_enter(w);
    if (w->state == W_ACTIVE && mc_drain(w) == 0)
        mc_deliver_transfers(w);
    mc_leave(w);
}

void mc_watch_kick(etsmgr_client *c)
{
    if (c->watch && c->watch->kick)
        uv_timer_start(c->watch->kick, mc_kick_cb, 0, 0);
}

int mc_watch_busy(const etsmgr_client *c) { return c->watch && c->watch->state != W_ACTIVE; }

void mc_watch_free(etsmgr_client *c)
{
    struct mc_watch *w = c->watch;
    if (!w)
        return;
    c->watch = NULL;
    mc_poll_close(w);
    if (w->retry)
        uv_close((uv_handle_t *)w->retry, mc_free_handle);
    if (w->kick)
        uv_close((uv_handle_t *)w->kick, mc_free_handle);
    mc_out_clear(w);
    free(w->out);
    free(w->res);
    if (w->state != W_ACTIVE)
        mc_drop(c); /* a half-registered connection is of no use to blocking calls */
    if (w->depth > 0)
        w->zombie = 1;
    else
        free(w);
}

int etsmgr_watch_start(etsmgr_client *c, struct uv_loop_s *loop, const etsmgr_watch_cbs *cbs, void *arg)
{
    if (!c || !loop)
        return ETSMGR_EINVAL;
    if (c->watch)
        return mc_err(c, ETSMGR_EINVAL, "", "the watch is already running on this client");
    if (c->fd < 0)
        return mc_err(c, ETSMGR_ENOTCONN, "", "connect to etsmgrd before starting the watch");
    struct mc_watch *w = calloc(1, sizeof *w);
    if (!w)
        return mc_err(c, ETSMGR_ENOMEM, "", "out of memory starting the watch");
    w->c = c;
    w->loop = loop;
    if (cbs)
        w->cbs = *cbs;
    w->arg = arg;
    w->retry_ms = w->cbs.retry_ms ? w->cbs.retry_ms : 50;
    w->state = W_ACTIVE;
    w->retry = malloc(sizeof *w->retry);
    w->kick = malloc(sizeof *w->kick);
    if (!w->retry || !w->kick) {
        free(w->retry);
        free(w->kick);
        free(w);
        return mc_err(c, ETSMGR_ENOMEM, "", "out of memory starting the watch");
    }
    uv_timer_init(loop, w->retry);
    uv_timer_init(loop, w->kick);
    uv_unref((uv_handle_t *)w->retry);
    uv_unref((uv_handle_t *)w->kick);
    w->retry->data = w;
    w->kick->data = w;
    c->watch = w;
    if (mc_poll_set(w, UV_READABLE | UV_DISCONNECT) < 0) {
        mc_watch_free(c);
        return mc_err(c, ETSMGR_ESYS, "", "uv_poll on the etsmgrd socket failed");
    }
    if (c->npending)
        mc_watch_kick(c);
    return ETSMGR_OK;
}

void etsmgr_watch_stop(etsmgr_client *c)
{
    if (c)
        mc_watch_free(c);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* conn.h: a libuv server for framed connections on a listening AF_UNIX
 * socket, shared by etsmgrd, etscounterd and etssup.  It uses uv_poll and
 * its own recvmsg/sendmsg (not uv_stream) so that file descriptors can travel
 * in both directions as SCM_RIGHTS and every received fd is accounted for.
 * A server that takes no fd batches a turn's reads and writes in an
 * io_uring where the kernel allows (conn.c; ETSMGR_IO_URING=0: never).
 *
 * Replies are queued and flushed once per loop iteration (one write for all
 * the replies a read produced), in request order.  A peer that stops reading
 * is not read from until its queue drains. */
#ifndef ETSMGR_CONN_H
#define ETSMGR_CONN_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <uv.h>
#include <cjson/cJSON.h>

typedef struct conn conn;
typedef struct conn_server conn_server;

/* A whole frame arrived.  The callee owns fds[0..nfds) (close or keep them).
 * payload is not NUL-terminated and is valid only during the call. */
typedef void (*conn_frame_cb)(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg);
/* A hint: a frame on_frame will get is already whole in the buffer (it may
 * still never be dispatched: the connection may close first).  Shown: the
 * frame after the one on_frame gets next, and the first frame of each
 * connection read in a loop turn; with on_ahead set, the connections read
 * in a turn are served only once all of them are read (at the end of the
 * turn's I/O callbacks), so the server sees the first frame of every one
 * before serving any.  A server can start on it early, e.g. prefetch what
 * it will touch.  payload is valid only during the call. */
typedef void (*conn_ahead_cb)(conn *c, const char *payload, size_t len, void *arg);
/* The frames of a turn were served (on_frame): called before the turn's
 * replies are written, once after all the connections read in the turn
 * (on_ahead) and after each connection served otherwise.  A server that
 * holds requests back to do them together (etscounterd's group commit)
 * does them and queues their replies here, so none waits past the turn.
 * Also called, in the middle of a turn, just before conn.c closes a
 * connection it is serving (the peer half-closed, a frame too large): the
 * replies held back for it go out before the close and its error frame. */
typedef void (*conn_served_cb)(void *arg);
/* The peer is gone or the connection was closed; c is freed after the call. */
typedef void (*conn_close_cb)(conn *c, void *arg);
typedef void (*conn_open_cb)(conn *c, void *arg);

typedef struct conn_server_cfg {
    int listen_fd;        /* listening, non-blocking; the server owns it */
    size_t max_conns;     /* more are accepted and closed at once, with an error frame */
    conn_open_cb on_open; /* may be NULL */
    conn_frame_cb on_frame;
    conn_close_cb on_close;   /* may be NULL */
    conn_ahead_cb on_ahead;   /* may be NULL */
    conn_served_cb on_served; /* may be NULL */
    void *arg;
    size_t max_held_fds; /* fds all connections may hold for unfinished frames (0: 256);
                          * past it a connection that sends more is closed */
    bool no_fds;         /* no op takes an fd: the socket refuses them where the kernel
                          * can (SO_PASSRIGHTS off: the peer's sendmsg fails with EPERM),
                          * and such connections are read with recv (conn.c) */
} conn_server_cfg;

int conn_server_start(conn_server **out, uv_loop_t *loop, const conn_server_cfg *cfg);
/* Stops accepting, closes every connection (calling on_close) and the
 * listening fd; the server is freed once libuv has closed its handles. */
void conn_server_stop(conn_server *s);
size_t conn_server_count(const conn_server *s);
/* Whether the server batches its reads and writes in an io_uring (a no_fds
 * server, unless the kernel refuses io_uring or ETSMGR_IO_URING=0). */
bool conn_server_io_uring(const conn_server *s);

/* Queue one frame (fd >= 0: sent with it as SCM_RIGHTS; the caller keeps its
 * own copy).  0, or -1 when the connection is closing or out of memory. */
int conn_send(conn *c, const char *payload, size_t len, int fd);
int conn_send_json(conn *c, const cJSON *obj, int fd);
/* Write what is queued now rather than at the end of the loop turn (a
 * frame whose every microsecond counts: etsmgrd's hand-over to a waiter);
 * what cannot go now goes as ever. */
void conn_flush_now(conn *c);
/* A handler says its request cost units more than an ordinary one (say,
 * a walk of the whole table): the connection's turn ends sooner, and its
 * further frames wait for the next loop turn, after other connections. */
void conn_charge(conn *c, unsigned units);
/* Close once the queued frames are written (or the peer is gone). */
void conn_close(conn *c);

pid_t conn_peer_pid(const conn *c);
uid_t conn_peer_uid(const conn *c);
gid_t conn_peer_gid(const conn *c);
void conn_set_data(conn *c, void *data);
void *conn_get_data(const conn *c);
#endif

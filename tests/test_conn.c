/* SPDX-License-Identifier: Apache-2.0 */
/* test_conn.c: the libuv connection server against real clients.
 *
 * The server runs in the test process on its own loop; each client is a
 * forked child using the blocking frame API, and reports by its exit status
 * (0, or the failing line).  Every test counts /proc/self/fd before and
 * after to prove that no received or queued fd leaks, whatever the path. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "frame.h"
#include "proto.h"
#include "sock.h"
#include "testutil.h"
#include "uring.h"

#define CL_CHECK(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "client check failed at line %d: %s (errno %s)\n", __LINE__, #c,       \
                    strerror(errno));                                                              \
            _exit(__LINE__ % 250 + 1);                                                             \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------ test server */

typedef struct tsrv {
    uv_loop_t loop;
    conn_server *srv;
    uv_timer_t guard;
    uv_timer_t probe;
    uv_poll_t sigpoll;
    int sig_rd, go_wr; /* backpressure test: child says "written", we say "go" */
    int frames, opens, closes, closes_wanted;
    int frames_at_probe;
    bool with_ahead;  /* on_ahead set: every frame must be shown before it is served */
    bool no_fds;      /* cfg.no_fds, and the socket refuses fds before any client connects */
    bool io_uring;    /* what conn_server_io_uring said */
    bool io_uring_end; /* ... at the last close */
    bool other_thread; /* the loop runs in a thread of its own, not the one that started the server */
    int unannounced;  /* frames served without having been shown */
    struct { conn *c; size_t len; char bytes[64]; } shown[64];
    unsigned nshown;
    bool timed_out;
    bool stopped;
} tsrv;

static void ts_stop(tsrv *t)
{
    if (t->stopped)
        return;
    t->stopped = true;
    conn_server_stop(t->srv);
    uv_close((uv_handle_t *)&t->guard, NULL);
    if (t->sig_rd >= 0)
        uv_close((uv_handle_t *)&t->sigpoll, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->probe))
        uv_close((uv_handle_t *)&t->probe, NULL);
}

static void ts_on_open(conn *c, void *arg)
{
    tsrv *t = arg;
    t->opens++;
    conn_set_data(c, t);
}

static void ts_on_close(conn *c, void *arg)
{
    tsrv *t = arg;
    ck_assert_ptr_eq(conn_get_data(c), t);
    t->io_uring_end = conn_server_io_uring(t->srv);
    if (++t->closes == t->closes_wanted)
        ts_stop(t);
}

/* on_ahead: remember what was shown (a ring of the last 64: more than a case sends) */
static void ts_on_ahead(conn *c, const char *payload, size_t len, void *arg)
{
    tsrv *t = arg;
    if (len > sizeof t->shown[0].bytes)
        return;
    unsigned i = t->nshown++ % 64;
    t->shown[i].c = c;
    t->shown[i].len = len;
    memcpy(t->shown[i].bytes, payload, len);
}

static bool ts_was_shown(tsrv *t, conn *c, const char *payload, size_t len)
{
    for (unsigned i = 0; i < 64 && i < t->nshown; i++)
        if (t->shown[i].c == c && t->shown[i].len == len && memcmp(t->shown[i].bytes, payload, len) == 0)
            return true;
    return false;
}

static void ts_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    tsrv *t = arg;
    t->frames++;
    if (t->with_ahead && !ts_was_shown(t, c, payload, len))
        t->unannounced++;
    proto_err code;
    char msg[256];
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    if (!req) {
        cJSON *r = proto_reply_err(NULL, code, "%s", msg);
        conn_send_json(c, r, -1);
        cJSON_Delete(r);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        return;
    }
    const char *op = proto_op(req);
    cJSON *r = proto_reply_ok(req);
    cJSON_AddNumberToObject(r, "pid", conn_peer_pid(c));
    cJSON_AddNumberToObject(r, "nfds", nfds);
    int sendfd = -1;
    if (strcmp(op, "fd") == 0 && nfds > 0)
        sendfd = fds[0];
    if (strcmp(op, "big") == 0) {
        char *big = malloc(60000);
        memset(big, 'b', 59999);
        big[59999] = '\0';
        cJSON_AddStringToObject(r, "big", big);
        free(big);
    }
    ck_assert_int_eq(conn_send_json(c, r, sendfd), 0);
    cJSON_Delete(r);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (strcmp(op, "close") == 0) {
        conn_close(c);
        ck_assert_int_eq(conn_send(c, "{}", 2, -1), -1); /* closing: refused */
    }
    if (strcmp(op, "stop") == 0)
        ts_stop(t);
    cJSON_Delete(req);
}

static void ts_on_guard(uv_timer_t *h)
{
    tsrv *t = h->data;
    t->timed_out = true;
    ts_stop(t);
}

static void ts_start_signal(tsrv *t);

typedef void (*client_fn)(const char *path, int sig_wr, int go_rd);

static void *ts_loop_thread(void *loop)
{
    uv_run(loop, UV_RUN_DEFAULT);
    return NULL;
}

/* A listening socket s.sock in a new temporary directory (dir: a mkdtemp
 * template, made in place); its path in path. */
static int tc_listen(char *dir, char *path, size_t cap)
{
    char err[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, cap, "%s/s.sock", dir);
    int lfd = sock_listen_unix(path, 0600, 64, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    return lfd;
}

/* Runs the server until closes_wanted connections closed; the clients are
 * forked before the loop exists.  Returns nothing: asserts inside. */
static void run_case(client_fn client, int nclients, size_t max_conns, int closes_wanted,
                     tsrv *t, bool with_signal)
{
    /* libuv keeps a process-wide signal lock pipe from the first loop on */
    uv_loop_t warm;
    ck_assert_int_eq(uv_loop_init(&warm), 0);
    ck_assert_int_eq(uv_loop_close(&warm), 0);
    int base = tu_count_fds(getpid());
    char dir[] = "/tmp/etsmgr-cnXXXXXX", path[128];
    int lfd = tc_listen(dir, path, sizeof path);
    if (t->no_fds) { /* (on a kernel without SO_PASSRIGHTS, nothing: recvmsg as ever) */
        int off = 0;
        setsockopt(lfd, SOL_SOCKET, 83 /* SO_PASSRIGHTS */, &off, sizeof off);
    }
    int sigp[2] = {-1, -1}, gop[2] = {-1, -1};
    if (with_signal) {
        ck_assert_int_eq(pipe(sigp), 0);
        ck_assert_int_eq(pipe(gop), 0);
    }
    pid_t pids[8];
    for (int i = 0; i < nclients; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            close(lfd);
            client(path, sigp[1], gop[0]);
            _exit(0);
        }
    }
    if (with_signal) {
        close(sigp[1]);
        close(gop[0]);
    }
    bool with_ahead = t->with_ahead, no_fds = t->no_fds, other_thread = t->other_thread;
    memset(t, 0, sizeof *t);
    t->with_ahead = with_ahead;
    t->no_fds = no_fds;
    t->sig_rd = sigp[0];
    t->go_wr = gop[1];
    t->closes_wanted = closes_wanted;
    ck_assert_int_eq(uv_loop_init(&t->loop), 0);
    conn_server_cfg cfg = {.listen_fd = lfd, .max_conns = max_conns, .on_open = ts_on_open,
                           .on_frame = ts_on_frame, .on_close = ts_on_close,
                           .on_ahead = with_ahead ? ts_on_ahead : NULL, .arg = t, .no_fds = no_fds};
    ck_assert_int_eq(conn_server_start(&t->srv, &t->loop, &cfg), 0);
    t->io_uring = conn_server_io_uring(t->srv);
    uv_timer_init(&t->loop, &t->guard);
    uv_timer_init(&t->loop, &t->probe);
    t->guard.data = t->probe.data = t;
    uv_timer_start(&t->guard, ts_on_guard, 15000, 0);
    if (with_signal)
        ts_start_signal(t);
    if (other_thread) {
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, ts_loop_thread, &t->loop), 0);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
    } else {
        uv_run(&t->loop, UV_RUN_DEFAULT);
    }
    ck_assert_int_eq(uv_loop_close(&t->loop), 0);
    ck_assert_msg(!t->timed_out, "server timed out (opens %d closes %d frames %d)", t->opens, t->closes, t->frames);
    for (int i = 0; i < nclients; i++) {
        int st;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d failed: status 0x%x (line %% 250 + 1)",
                      i, st);
    }
    if (with_signal) {
        close(sigp[0]);
        close(gop[1]);
    }
    unlink(path);
    rmdir(dir);
    ck_assert_int_eq(tu_count_fds(getpid()), base);
}

/* ------------------------------------------------------------ clients */

static cJSON *cl_read(int fd, int *rfds, int *nr)
{
    cJSON *o = NULL;
    int dummy[FRAME_MAX_FDS], dn;
    CL_CHECK(frame_read_json(fd, &o, rfds ? rfds : dummy, nr ? nr : &dn, FRAME_MAX_FDS, 10000) == 0);
    if (!rfds)
        for (int i = 0; i < dn; i++)
            close(dummy[i]);
    return o;
}

static int cl_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -999;
}

static void cl_send(int fd, const char *json, const int *fds, int nfds)
{
    CL_CHECK(frame_write(fd, json, strlen(json), fds, nfds) == 0);
}

/* raw sendmsg: any number of fds on the given bytes */
static void cl_sendraw(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
    struct iovec iov = {(void *)buf, len};
    CL_CHECK(fdpass_send(fd, &iov, 1, 0, fds, nfds) == (ssize_t)len);
}

static void cl_expect_eof(int fd)
{
    char *p;
    size_t l;
    int rf[4], nr;
    for (;;) {
        if (frame_read(fd, &p, &l, rf, &nr, 4, 10000) < 0) {
            CL_CHECK(errno == ECONNRESET);
            return;
        }
        free(p); /* replies before the close are fine */
        for (int i = 0; i < nr; i++)
            close(rf[i]);
    }
}

static void client_pipeline(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    /* 100 requests in one write: replies in order */
    size_t cap = 100 * 64, n = 0;
    char *buf = malloc(cap);
    for (int i = 0; i < 100; i++) {
        char js[48];
        int l = snprintf(js, sizeof js, "{\"op\":\"echo\",\"id\":%d}", i);
        size_t fl;
        char *f = frame_encode(js, (size_t)l, &fl);
        memcpy(buf + n, f, fl);
        n += fl;
        free(f);
    }
    CL_CHECK(write(fd, buf, n) == (ssize_t)n);
    free(buf);
    for (int i = 0; i < 100; i++) {
        cJSON *o = cl_read(fd, NULL, NULL);
        CL_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
        CL_CHECK(cl_num(o, "id") == i);
        CL_CHECK(cl_num(o, "pid") == getpid());
        cJSON_Delete(o);
    }
    /* fds both ways, interleaved with plain frames that the server may read
     * in the same recvmsg: each fd must come back on its own reply */
    int p[3][2];
    for (int k = 0; k < 3; k++) {
        CL_CHECK(pipe(p[k]) == 0);
        cl_send(fd, "{\"op\":\"echo\",\"id\":\"x\"}", NULL, 0);
        char js[48];
        snprintf(js, sizeof js, "{\"op\":\"fd\",\"id\":%d}", k);
        cl_send(fd, js, &p[k][1], 1);
    }
    for (int k = 0; k < 3; k++) {
        cJSON *o = cl_read(fd, NULL, NULL);
        CL_CHECK(cl_num(o, "nfds") == 0);
        cJSON_Delete(o);
        int rf[4], nr = 0;
        o = cl_read(fd, rf, &nr);
        CL_CHECK(cl_num(o, "id") == k);
        CL_CHECK(cl_num(o, "nfds") == 1);
        CL_CHECK(nr == 1);
        char ch = (char)('a' + k), got = 0;
        CL_CHECK(write(rf[0], &ch, 1) == 1);
        CL_CHECK(read(p[k][0], &got, 1) == 1);
        CL_CHECK(got == ch);
        close(rf[0]);
        cJSON_Delete(o);
    }
    /* six fds on one frame: the server gets FRAME_MAX_FDS, the rest closed */
    int six[6] = {p[0][0], p[0][1], p[1][0], p[1][1], p[2][0], p[2][1]};
    size_t fl;
    char *f = frame_encode("{\"op\":\"echo\",\"id\":6}", 20, &fl);
    cl_sendraw(fd, f, fl, six, 6);
    free(f);
    cJSON *o = cl_read(fd, NULL, NULL);
    CL_CHECK(cl_num(o, "nfds") == FRAME_MAX_FDS);
    cJSON_Delete(o);
    /* bad JSON: an error reply, and the connection stays usable */
    cl_send(fd, "{nope", NULL, 0);
    o = cl_read(fd, NULL, NULL);
    CL_CHECK(strcmp(cJSON_GetObjectItem(o, "error")->valuestring, "bad_json") == 0);
    cJSON_Delete(o);
    cl_send(fd, "{\"op\":\"echo\",\"id\":7}", NULL, 0);
    o = cl_read(fd, NULL, NULL);
    CL_CHECK(cl_num(o, "id") == 7);
    cJSON_Delete(o);
    /* half-close: what was sent is still answered */
    cl_send(fd, "{\"op\":\"echo\",\"id\":8}", NULL, 0);
    CL_CHECK(shutdown(fd, SHUT_WR) == 0);
    o = cl_read(fd, NULL, NULL);
    CL_CHECK(cl_num(o, "id") == 8);
    cJSON_Delete(o);
    cl_expect_eof(fd);
    close(fd);
}

/* A server that takes no fd (etscounterd, cfg.no_fds): its socket refuses
 * them where the kernel can (SO_PASSRIGHTS off, Linux 6.16), so a peer's
 * sendmsg with an fd fails with EPERM and sends nothing, and its reads are
 * recv.  A connection made before the server started was made with the
 * option on: its fds still reach the handler, which refuses them
 * (etscounterd's unexpected_fd). */
typedef struct nf_srv {
    int frames;
    bool timed_out;
} nf_srv;

static void nf_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    nf_srv *n = arg;
    (void)payload;
    (void)len;
    char reply[32];
    int l = snprintf(reply, sizeof reply, "{\"nfds\":%d}", nfds);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    n->frames++;
    ck_assert_int_eq(conn_send(c, reply, (size_t)l, -1), 0);
}

static void nf_on_guard(uv_timer_t *h) { ((nf_srv *)h->data)->timed_out = true; }

static int nf_reply_nfds(int fd)
{
    cJSON *o = NULL;
    int fds[FRAME_MAX_FDS], nf = 0;
    ck_assert_int_eq(frame_read_json(fd, &o, fds, &nf, FRAME_MAX_FDS, 10000), 0);
    ck_assert_int_eq(nf, 0);
    int v = cl_num(o, "nfds");
    cJSON_Delete(o);
    return v;
}

START_TEST(test_conn_no_fds_refused_at_socket)
{
    char dir[] = "/tmp/etsmgr-cnXXXXXX", path[128];
    int lfd = tc_listen(dir, path, sizeof path);
    int early = sock_connect_unix(path); /* before the server set the option */
    ck_assert_int_ge(early, 0);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    nf_srv n = {0};
    conn_server *srv = NULL;
    conn_server_cfg cfg = {.listen_fd = lfd, .max_conns = 8, .on_frame = nf_on_frame, .arg = &n, .no_fds = true};
    ck_assert_int_eq(conn_server_start(&srv, &loop, &cfg), 0);
    int late = sock_connect_unix(path);
    ck_assert_int_ge(late, 0);
    int probe = socket(AF_UNIX, SOCK_STREAM, 0), v = 0;
    socklen_t vl = sizeof v;
    bool kernel_refuses = getsockopt(probe, SOL_SOCKET, 83 /* SO_PASSRIGHTS */, &v, &vl) == 0;
    close(probe);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(frame_write(early, "{}", 2, &p[0], 1), 0);
    errno = 0;
    int w = frame_write(late, "{}", 2, &p[0], 1);
    if (kernel_refuses) {
        ck_assert_msg(w == -1 && errno == EPERM, "a frame with an fd to a no_fds server: %d (%s), not EPERM", w,
                      strerror(errno));
        ck_assert_int_eq(frame_write(late, "{}", 2, NULL, 0), 0);
    } else {
        ck_assert_int_eq(w, 0);
    }
    close(p[0]);
    close(p[1]);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    guard.data = &n;
    uv_timer_start(&guard, nf_on_guard, 10000, 0);
    while (n.frames < 2 && !n.timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_msg(!n.timed_out, "the server saw %d of the 2 frames", n.frames);
    uv_run(&loop, UV_RUN_NOWAIT); /* the replies' flush */
    ck_assert_int_eq(nf_reply_nfds(early), 1);          /* read with recvmsg: the fd reached the handler */
    ck_assert_int_eq(nf_reply_nfds(late), kernel_refuses ? 0 : 1);
    close(early);
    close(late);
    conn_server_stop(srv);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_conn_pipeline_and_fds)
{
    tsrv t = {0};
    run_case(client_pipeline, 1, 0, 1, &t, false);
    ck_assert_int_eq(t.opens, 1);
    ck_assert_int_eq(t.frames, 100 + 6 + 1 + 1 + 1 + 1);
}
END_TEST

/* Ten echo requests in one write, then their replies in order, then stop
 * (the last client's stop ends the case). */
static void client_ten(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    char buf[10 * 64];
    size_t n = 0;
    for (int i = 0; i < 10; i++) {
        char js[48];
        int l = snprintf(js, sizeof js, "{\"op\":\"echo\",\"id\":%d}", i);
        size_t fl;
        char *f = frame_encode(js, (size_t)l, &fl);
        CL_CHECK(f != NULL);
        memcpy(buf + n, f, fl);
        n += fl;
        free(f);
    }
    CL_CHECK(write(fd, buf, n) == (ssize_t)n);
    for (int i = 0; i < 10; i++) {
        cJSON *o = cl_read(fd, NULL, NULL);
        CL_CHECK(cl_num(o, "id") == i);
        cJSON_Delete(o);
    }
    close(fd);
}

/* Request after request, one at a time, on several connections at once:
 * the server keeps sent reply segments and reuses them for the next
 * replies, of any connection (conn.c, CONN_SEG_CACHE).  Each reply must be
 * whole and its own, whatever segment carried a longer or shorter reply
 * before; a large reply (a segment of its own size) comes in between. */
static void client_rounds(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    for (int i = 0; i < 300; i++) {
        int id = (i * 7919) % (i % 3 == 0 ? 10 : 1000000);
        char js[64];
        snprintf(js, sizeof js, i % 50 == 25 ? "{\"op\":\"big\",\"id\":%d}" : "{\"op\":\"echo\",\"id\":%d}", id);
        cl_send(fd, js, NULL, 0);
        cJSON *o = cl_read(fd, NULL, NULL);
        CL_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
        CL_CHECK(cl_num(o, "id") == id);
        CL_CHECK(cl_num(o, "pid") == getpid());
        CL_CHECK((i % 50 == 25) == (cJSON_GetObjectItem(o, "big") != NULL));
        cJSON_Delete(o);
    }
    close(fd);
}

START_TEST(test_conn_reply_segments_reused)
{
    tsrv t = {0};
    run_case(client_rounds, 5, 0, 5, &t, false);
    ck_assert_int_eq(t.frames, 5 * 300);
}
END_TEST

/* A server with on_ahead (etscounterd, which prefetches what a count will
 * touch) is shown every frame before it is served: the first frame of each
 * connection read in a loop turn too, which it gets once all of the turn's
 * ready connections are read (before, only the frame after the one being
 * served was shown, so the first of every read had its cache miss in full:
 * each read at 50 connections).  The pipeline case with on_ahead set checks
 * the rest of the behaviour (fds, errors, half-close) on that path. */
START_TEST(test_conn_ahead_shows_every_frame)
{
    tsrv t = {.with_ahead = true};
    run_case(client_ten, 4, 0, 4, &t, false);
    ck_assert_int_eq(t.frames, 40);
    ck_assert_int_eq(t.unannounced, 0);
    tsrv u = {.with_ahead = true};
    run_case(client_pipeline, 1, 0, 1, &u, false);
    ck_assert_int_eq(u.frames, 100 + 6 + 1 + 1 + 1 + 1);
}
END_TEST

static void client_too_large(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    cl_send(fd, "{\"op\":\"echo\",\"id\":1}", NULL, 0);
    int pp[2];
    CL_CHECK(pipe(pp) == 0);
    unsigned char hdr[8] = {0, 1, 0, 1, 'x', 'x', 'x', 'x'}; /* FRAME_MAX + 1 */
    cl_sendraw(fd, hdr, sizeof hdr, pp, 2);
    cJSON *o = cl_read(fd, NULL, NULL);
    CL_CHECK(cl_num(o, "id") == 1);
    cJSON_Delete(o);
    o = cl_read(fd, NULL, NULL);
    CL_CHECK(!cJSON_IsTrue(cJSON_GetObjectItem(o, "ok")));
    CL_CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "id")));
    CL_CHECK(strcmp(cJSON_GetObjectItem(o, "error")->valuestring, "frame_too_large") == 0);
    CL_CHECK(strstr(cJSON_GetObjectItem(o, "message")->valuestring, "65537") != NULL);
    cJSON_Delete(o);
    cl_expect_eof(fd);
    close(fd);
}

START_TEST(test_conn_frame_too_large)
{
    tsrv t = {0};
    run_case(client_too_large, 1, 0, 1, &t, false);
    ck_assert_int_eq(t.frames, 1);
}
END_TEST

static void client_abrupt(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    cl_send(fd, "{\"op\":\"echo\",\"id\":1}", NULL, 0);
    cJSON *o = cl_read(fd, NULL, NULL);
    cJSON_Delete(o);
    /* half a frame with fds attached, then gone */
    int pp[2];
    CL_CHECK(pipe(pp) == 0);
    unsigned char part[6] = {0, 0, 0, 20, '{', '"'};
    cl_sendraw(fd, part, sizeof part, pp, 2);
    _exit(0);
}

START_TEST(test_conn_abrupt_close)
{
    tsrv t = {0};
    run_case(client_abrupt, 1, 0, 1, &t, false);
    ck_assert_int_eq(t.closes, 1);
    ck_assert_int_eq(t.frames, 1);
}
END_TEST

static void client_close_and_stop(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    /* "close" with frames behind it: the reply arrives, the rest is dropped */
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    int pp[2];
    CL_CHECK(pipe(pp) == 0);
    /* one sendmsg: the server may close before a second write (EPIPE) */
    char buf[512];
    size_t n = 0;
    const char *creqs[] = {"{\"op\":\"close\",\"id\":1}", "{\"op\":\"echo\",\"id\":2}",
                           "{\"op\":\"echo\",\"id\":3}"};
    for (int i = 0; i < 3; i++) {
        size_t fl;
        char *f = frame_encode(creqs[i], strlen(creqs[i]), &fl);
        memcpy(buf + n, f, fl);
        n += fl;
        free(f);
    }
    cl_sendraw(fd, buf, n, pp, 2);
    cJSON *o = cl_read(fd, NULL, NULL);
    CL_CHECK(cl_num(o, "id") == 1);
    cJSON_Delete(o);
    cl_expect_eof(fd);
    close(fd);
    /* "stop" from inside on_frame, with frames and fds still buffered */
    fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    int fd2 = sock_connect_unix(path);
    CL_CHECK(fd2 >= 0);
    cl_send(fd2, "{\"op\":\"echo\",\"id\":0}", pp, 2);
    o = cl_read(fd2, NULL, NULL); /* fd2 is open on the server */
    cJSON_Delete(o);
    n = 0;
    const char *reqs[] = {"{\"op\":\"echo\",\"id\":1}", "{\"op\":\"stop\",\"id\":2}",
                          "{\"op\":\"echo\",\"id\":3}", "{\"op\":\"echo\",\"id\":4}"};
    for (int i = 0; i < 4; i++) {
        size_t fl;
        char *f = frame_encode(reqs[i], strlen(reqs[i]), &fl);
        memcpy(buf + n, f, fl);
        n += fl;
        free(f);
    }
    cl_sendraw(fd, buf, n, pp, 2);
    cl_expect_eof(fd);
    cl_expect_eof(fd2);
    close(fd);
    close(fd2);
}

START_TEST(test_conn_close_and_stop_from_callback)
{
    tsrv t = {0};
    run_case(client_close_and_stop, 1, 0, 1000, &t, false);
    ck_assert_int_eq(t.opens, 3);
    ck_assert_int_eq(t.closes, 3);
    ck_assert_int_eq(t.frames, 1 + 1 + 2); /* close; echo on fd2; echo, stop */
}
END_TEST

static void client_too_many(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int a = sock_connect_unix(path);
    CL_CHECK(a >= 0);
    cl_send(a, "{\"op\":\"echo\",\"id\":1}", NULL, 0);
    cJSON *o = cl_read(a, NULL, NULL);
    CL_CHECK(cl_num(o, "id") == 1);
    cJSON_Delete(o);
    int b = sock_connect_unix(path);
    CL_CHECK(b >= 0);
    o = cl_read(b, NULL, NULL);
    CL_CHECK(strcmp(cJSON_GetObjectItem(o, "error")->valuestring, "too_many_connections") == 0);
    CL_CHECK(cJSON_IsNull(cJSON_GetObjectItem(o, "id")));
    cJSON_Delete(o);
    cl_expect_eof(b);
    close(b);
    /* the first one is still served */
    cl_send(a, "{\"op\":\"echo\",\"id\":2}", NULL, 0);
    o = cl_read(a, NULL, NULL);
    CL_CHECK(cl_num(o, "id") == 2);
    cJSON_Delete(o);
    close(a);
}

START_TEST(test_conn_too_many)
{
    tsrv t = {0};
    run_case(client_too_many, 1, 1, 1, &t, false);
    ck_assert_int_eq(t.opens, 1);
}
END_TEST

/* Backpressure: 100 requests whose replies (60 KB each) the client does not
 * read at first.  The server must stop short of answering them all, then
 * answer every one, in order, once the client reads. */
#define BP_REQS 100
static void client_backpressure(const char *path, int sig_wr, int go_rd)
{
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    for (int i = 0; i < BP_REQS; i++) {
        char js[48];
        snprintf(js, sizeof js, "{\"op\":\"big\",\"id\":%d}", i);
        cl_send(fd, js, NULL, 0);
    }
    CL_CHECK(write(sig_wr, "w", 1) == 1);
    char ch;
    CL_CHECK(read(go_rd, &ch, 1) == 1);
    for (int i = 0; i < BP_REQS; i++) {
        cJSON *o = cl_read(fd, NULL, NULL);
        CL_CHECK(cl_num(o, "id") == i);
        CL_CHECK(strlen(cJSON_GetObjectItem(o, "big")->valuestring) == 59999);
        cJSON_Delete(o);
    }
    close(fd);
}

static void ts_on_probe(uv_timer_t *h)
{
    tsrv *t = h->data;
    t->frames_at_probe = t->frames;
    if (getenv("CONN_TEST_VERBOSE"))
        fprintf(stderr, "backpressure: %d frames answered before the client read\n", t->frames);
    for (int i = 0; i < t->closes_wanted; i++) /* a "go" for each client */
        ck_assert_int_eq(write(t->go_wr, "g", 1), 1);
}

static void ts_on_signal(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    tsrv *t = h->data;
    char ch;
    ck_assert_int_eq(read(t->sig_rd, &ch, 1), 1);
    uv_poll_stop(h);
    /* give the server time to answer everything it would (it must not) */
    uv_timer_start(&t->probe, ts_on_probe, 300, 0);
}

static void ts_start_signal(tsrv *t)
{
    uv_poll_init(&t->loop, &t->sigpoll, t->sig_rd);
    t->sigpoll.data = t;
    uv_poll_start(&t->sigpoll, UV_READABLE, ts_on_signal);
}

START_TEST(test_conn_backpressure)
{
    tsrv t = {0};
    run_case(client_backpressure, 1, 0, 1, &t, true);
    ck_assert_int_eq(t.frames, BP_REQS);
    ck_assert_msg(t.frames_at_probe > 0 && t.frames_at_probe < BP_REQS / 2,
                  "server answered %d of %d requests while the client was not reading",
                  t.frames_at_probe, BP_REQS);
}
END_TEST

/* Small requests one write at a time, a few at most in a turn of the
 * server, more than the socket buffers hold replies for, and no reply read
 * before the last is written; then every reply, in order.  Each turn's
 * replies to it fit one segment, so the server's send of it is refused
 * whole once the socket is full (EAGAIN, a send of the ring's batch when
 * the other client's replies are due in the same turn). */
#define SR_REQS 1500
static void client_slow_reader(const char *path, int sig_wr, int go_rd)
{
    (void)sig_wr;
    (void)go_rd;
    int fd = sock_connect_unix(path);
    CL_CHECK(fd >= 0);
    for (int i = 0; i < SR_REQS; i++) {
        char js[48];
        snprintf(js, sizeof js, "{\"op\":\"echo\",\"id\":%d}", i);
        cl_send(fd, js, NULL, 0);
        if (i % 4 == 3)
            usleep(20); /* (pacing only: turns of a few requests) */
    }
    for (int i = 0; i < SR_REQS; i++) {
        cJSON *o = cl_read(fd, NULL, NULL);
        CL_CHECK(cl_num(o, "id") == i);
        cJSON_Delete(o);
    }
    close(fd);
}

/* A server that takes no fd (etscounterd) reads and writes a turn's
 * connections in an io_uring where the kernel lets it (conn.c, uring.c),
 * and with system calls when it does not or ETSMGR_IO_URING=0 says not
 * to.  Both paths keep what the others here check: every reply whole, its
 * own and in order (pipelined, one at a time on several connections,
 * replies large and small), every frame shown before it is served, and a
 * peer that does not read (sends that meet EAGAIN, a paused reader)
 * answered in full once it reads. */
static void io_cases(bool want_ring)
{
    tsrv t = {.with_ahead = true, .no_fds = true};
    run_case(client_ten, 4, 0, 4, &t, false);
    ck_assert_int_eq(t.io_uring, want_ring);
    ck_assert_int_eq(t.frames, 40);
    ck_assert_int_eq(t.unannounced, 0);
    tsrv u = {.with_ahead = true, .no_fds = true};
    run_case(client_rounds, 5, 0, 5, &u, false);
    ck_assert_int_eq(u.frames, 5 * 300);
    ck_assert_int_eq(u.unannounced, 0);
    /* two at once, so that their replies meet EAGAIN in one batch (a batch
     * of one is a plain send) */
    tsrv v = {.with_ahead = true, .no_fds = true};
    run_case(client_backpressure, 2, 0, 2, &v, true);
    ck_assert_int_eq(v.frames, 2 * BP_REQS);
    ck_assert_msg(v.frames_at_probe > 0 && v.frames_at_probe < BP_REQS,
                  "server answered %d of %d requests while the clients were not reading", v.frames_at_probe,
                  2 * BP_REQS);
    tsrv x = {.with_ahead = true, .no_fds = true};
    run_case(client_slow_reader, 2, 0, 2, &x, false);
    ck_assert_int_eq(x.frames, 2 * SR_REQS);
    tsrv w = {.no_fds = true}; /* without on_ahead: the sends alone go by the ring */
    run_case(client_ten, 2, 0, 2, &w, false);
    ck_assert_int_eq(w.frames, 20);
}

/* whether this process may have an io_uring (a seccomp filter, or
 * kernel.io_uring_disabled, may say no: then only the fallback is tested) */
static bool io_uring_allowed(void)
{
    uring *r = uring_open(4);
    uring_close(r);
    return r != NULL;
}

/* A ring that fails once the server runs (io_uring_enter: here the loop
 * runs in another thread than the one that made the ring, which a ring
 * with IORING_SETUP_SINGLE_ISSUER refuses with EEXIST): the batch that
 * failed is done with system calls, and so is everything after it. */
START_TEST(test_conn_io_uring_fails_later)
{
    ck_assert_int_eq(unsetenv("ETSMGR_IO_URING"), 0);
    tsrv t = {.with_ahead = true, .no_fds = true, .other_thread = true};
    run_case(client_ten, 4, 0, 4, &t, false);
    ck_assert_int_eq(t.frames, 40);
    ck_assert_int_eq(t.unannounced, 0);
    if (t.io_uring && t.io_uring_end)
        fprintf(stderr, "conn: the ring worked from another thread (no SINGLE_ISSUER here): the failure "
                        "path was not taken\n");
}
END_TEST

START_TEST(test_conn_io_uring_and_fallback)
{
    ck_assert_int_eq(unsetenv("ETSMGR_IO_URING"), 0);
    bool allowed = io_uring_allowed();
    if (!allowed)
        fprintf(stderr, "conn: io_uring is not allowed here; only the fallback is tested\n");
    io_cases(allowed);
    ck_assert_int_eq(setenv("ETSMGR_IO_URING", "0", 1), 0);
    io_cases(false);
    ck_assert_int_eq(unsetenv("ETSMGR_IO_URING"), 0);
}
END_TEST

Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("conn");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_conn_pipeline_and_fds);
    tcase_add_test(tc, test_conn_no_fds_refused_at_socket);
    tcase_add_test(tc, test_conn_ahead_shows_every_frame);
    tcase_add_test(tc, test_conn_reply_segments_reused);
    tcase_add_test(tc, test_conn_frame_too_large);
    tcase_add_test(tc, test_conn_abrupt_close);
    tcase_add_test(tc, test_conn_close_and_stop_from_callback);
    tcase_add_test(tc, test_conn_too_many);
    tcase_add_test(tc, test_conn_backpressure);
    tcase_add_test(tc, test_conn_io_uring_and_fallback);
    tcase_add_test(tc, test_conn_io_uring_fails_later);
    suite_add_tcase(s, tc);
    return s;
}

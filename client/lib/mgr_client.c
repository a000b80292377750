/* SPDX-License-Identifier: Apache-2.0 */
/* mgr_client.c: the connection to etsmgrd and the blocking request/reply.
 *
 * The socket stays in blocking mode so that the synchronous API can use
 * frame_write (frame.h) as every CLI does; readers never block without a
 * deadline, since they wait in poll(2) first, and the libuv watch reads with
 * MSG_DONTWAIT so that the loop never blocks either.  All reading goes
 * through mc_recv_some (see mgr.h for why there is a single reader).
 *
 * Replies are matched to requests by a numeric id; a reply that matches no
 * waiting request (a call that timed out earlier) is dropped with its fds,
 * once the client's state follows what it says ("late replies"), and events
 * (a table given to us) are queued for etsmgr_take_transfer or the watch.
 * Nothing here prints or exits: failures are codes plus words kept in the
 * client (etsmgr_client_message). */
#include "mgr.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ errors */
int mc_err(etsmgr_client *c, int err, const char *code, const char *fmt, ...)
{
    if (c) {
        snprintf(c->err.code, sizeof c->err.code, "%s", code ? code : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err.msg, sizeof c->err.msg, fmt, ap);
        va_end(ap);
    }
    return err;
}

void mc_clear_err(etsmgr_client *c)
{
    c->err.code[0] = '\0';
    c->err.msg[0] = '\0';
}

const char *etsmgr_client_error(const etsmgr_client *c) { return c ? c->err.code : ""; }
const char *etsmgr_client_message(const etsmgr_client *c)
{
    if (!c)
        return "no client";
    return c->err.msg[0] ? c->err.msg : "no error";
}

static int64_t mc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void mc_late_clear(etsmgr_client *c);

/* ------------------------------------------------------------------ connection */
int mc_open(etsmgr_client *c, int nonblock)
{
    mc_drop(c);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t plen = strlen(c->sock_path);
    if (plen >= sizeof sa.sun_path)
        return mc_err(c, ETSMGR_EINVAL, "", "socket path %s is too long", c->sock_path);
    memcpy(sa.sun_path, c->sock_path, plen + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return mc_err(c, ETSMGR_ESYS, "", "socket(AF_UNIX): %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return mc_err(c, ETSMGR_ENOTCONN, "", "connect %s: %s (is etsmgrd of instance %s running?)", c->sock_path,
                      strerror(e), c->rt.instance);
    }
    /* Back to blocking for frame_write; the watch reads with MSG_DONTWAIT. */
    if (nonblock) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
            int e = errno;
            close(fd);
            return mc_err(c, ETSMGR_ESYS, "", "fcntl(O_NONBLOCK) on %s: %s", c->sock_path, strerror(e));
        }
    }
    c->fd = fd;
    return ETSMGR_OK;
}

void mc_drop(etsmgr_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->daemon_pid = 0;
    mc_late_clear(c);
    mc_frame_done(c);
    fdpass_ledger_close(&c->fdl);
    c->rx_total = c->rx_consumed = c->scan = 0;
    frame_reader_free(&c->rd);
    frame_reader_init(&c->rd);
}

ssize_t mc_recv_some(etsmgr_client *c, int flags)
{
    char buf[16384];
    int fds[FDPASS_RECV_ROOM], nfds = 0;
    ssize_t n = fdpass_recv(c->fd, buf, sizeof buf, flags, fds, FDPASS_RECV_ROOM, &nfds, NULL);
    if (n < 0)
        return -1;
    if (n > 0 && frame_reader_feed(&c->rd, buf, (size_t)n) < 0) {
        fdpass_close_all(fds, nfds);
        errno = ENOMEM;
        return -1;
    }
    uint64_t begin = c->rx_total;
    c->rx_total += (uint64_t)n;
    if (nfds > 0) /* (none when n == 0) */
        fdpass_ledger_add(&c->fdl, begin, c->rx_total, frame_reader_tail_start(&c->rd, c->rx_consumed, &c->scan),
                          fds, nfds);
    return n;
}

int mc_pop_fd(etsmgr_client *c)
{
    if (c->frame_nfds == 0)
        return -1;
    int fd = c->frame_fds[0];
    memmove(c->frame_fds, c->frame_fds + 1, sizeof(int) * (size_t)(c->frame_nfds - 1));
    c->frame_nfds--;
    return fd;
}

void mc_frame_done(etsmgr_client *c)
{
    fdpass_close_all(c->frame_fds, c->frame_nfds);
    c->frame_nfds = 0;
}

int mc_next_frame(etsmgr_client *c, cJSON **obj)
{
    const char *p;
    size_t len;
    mc_frame_done(c); /* the previous frame's fds nobody took */
    int r = frame_reader_next(&c->rd, &p, &len);
    if (r < 0) {
        mc_err(c, ETSMGR_EPROTO, "", "etsmgrd sent a frame longer than %u bytes", FRAME_MAX);
        return -1;
    }
    if (r == 0)
        return 0;
    uint64_t start = c->rx_consumed;
    c->rx_consumed = start + 4 + len;
    c->frame_nfds = fdpass_ledger_take(&c->fdl, start, c->rx_consumed, c->frame_fds, FRAME_MAX_FDS);
    cJSON *o = cJSON_ParseWithLength(p, len);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        mc_err(c, ETSMGR_EPROTO, "", "etsmgrd sent a frame that is not a JSON object");
        return -1;
    }
    *obj = o;
    return 1;
}

uint64_t mc_json_u64(const cJSON *v)
{
    /* a double outside (0, 2^64) has no uint64_t: converting it is undefined
     * (a daemon, or whatever answers on its socket, may send 1e30 or -5) */
    return cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 18446744073709551616.0
               ? (uint64_t)v->valuedouble
               : 0;
}

uint64_t mc_id(const cJSON *obj)
{
    return mc_json_u64(cJSON_GetObjectItemCaseSensitive(obj, "id"));
}

/* The etsmgr_err of a protocol error code: the third column of proto.h's
 * table; a code this library does not know yet is a refusal. */
static int mc_code_err(const char *code)
{
    static const int errs[PROTO_E_COUNT] = {
        [PROTO_OK] = ETSMGR_EREFUSED,
#define MC_ERR_ROW(name, str, err, words) [PROTO_E_##name] = err,
        PROTO_ERRORS(MC_ERR_ROW)
#undef MC_ERR_ROW
    };
    return errs[proto_err_find(code)];
}

int mc_reply_status(etsmgr_client *c, const cJSON *reply)
{
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(reply, "ok");
    if (cJSON_IsTrue(ok))
        return ETSMGR_OK;
    if (!cJSON_IsFalse(ok))
        return mc_err(c, ETSMGR_EPROTO, "", "etsmgrd sent a reply without \"ok\"");
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "error"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(reply, "message"));
    if (!code)
        code = "unknown";
    return mc_err(c, mc_code_err(code), code, "etsmgrd: %s (%s)", msg ? msg : "refused", code);
}

/* The connection is gone.  With a watch, the watch owns the fd and will see
 * the end of stream itself; without one, close it now. */
static int mc_lost(etsmgr_client *c, const char *what, int e)
{
    if (!c->watch)
        mc_drop(c);
    if (e)
        return mc_err(c, ETSMGR_ENOTCONN, "", "lost etsmgrd: %s: %s", what, strerror(e));
    return mc_err(c, ETSMGR_ENOTCONN, "", "lost etsmgrd: %s", what);
}

/* Reads until a frame satisfying want arrives (or the deadline).  Events are
 * queued on the way; other frames are dropped. */
typedef int (*mc_want_fn)(etsmgr_client *c, cJSON *obj, void *arg);

static int mc_read_until(etsmgr_client *c, int timeout_ms, mc_want_fn want, void *arg)
{
    int64_t deadline = timeout_ms < 0 ? -1 : mc_now_ms() + timeout_ms;
    bool looked = false; /* past the deadline, the socket was looked at once */
    for (;;) {
        cJSON *obj = NULL;
        int r;
        while ((r = mc_next_frame(c, &obj)) == 1) {
            if (mc_handle_event(c, obj)) {
                cJSON_Delete(obj);
                if (want(c, NULL, arg))
                    return ETSMGR_OK;
                continue;
            }
            if (want(c, obj, arg))
                return ETSMGR_OK; /* want took obj (and may pop its fds) */
            mc_late_reply(c, obj);
            cJSON_Delete(obj);
            mc_frame_done(c); /* a late reply: its fds go with it */
        }
        if (r < 0) {
            int err = ETSMGR_EPROTO;
            if (!c->watch)
                mc_drop(c);
            return err;
        }
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - mc_now_ms();
            if (left <= 0 && looked)
                return mc_err(c, ETSMGR_ETIMEDOUT, "", "etsmgrd did not answer within %d ms",
                              timeout_ms);
            if (left <= 0) { /* what has come already counts, even with a timeout of 0 */
                looked = true;
                left = 0;
            }
            wait = (int)left;
        }
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
        int pr = poll(&pfd, 1, wait);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            return mc_err(c, ETSMGR_ESYS, "", "poll on the etsmgrd socket: %s", strerror(errno));
        }
        if (pr == 0)
            continue;
        ssize_t n = mc_recv_some(c, MSG_DONTWAIT);
        if (n == 0)
            return mc_lost(c, "the connection closed", 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            return mc_lost(c, "recvmsg", errno);
        }
    }
}

static int mc_want_none(etsmgr_client *c, cJSON *obj, void *arg)
{
    (void)c;
    (void)obj;
    (void)arg;
    return 0;
}

struct mc_wait_reply {
    uint64_t id;
    cJSON *reply;
};

static int mc_want_reply(etsmgr_client *c, cJSON *obj, void *arg)
{
    (void)c;
    struct mc_wait_reply *w = arg;
    if (obj && mc_id(obj) == w->id) {
        w->reply = obj;
        return 1;
    }
    return 0;
}

int mc_call(etsmgr_client *c, cJSON *req, int send_fd, cJSON **reply, int want_fd, int *rfd)
{
    if (reply)
        *reply = NULL;
    if (rfd)
        *rfd = -1;
    if (!req)
        return mc_err(c, ETSMGR_ENOMEM, "", "out of memory building a request");
    if (c->fd < 0 || mc_watch_busy(c)) {
        cJSON_Delete(req);
        return mc_err(c, ETSMGR_ENOTCONN, "", "not connected to etsmgrd (%s)", c->sock_path);
    }
    if (c->nlate > 0) {
        /* late replies already here first, so that a table one made ours
         * is given back before this request (which may ask for it) */
        int e = mc_read_until(c, 0, mc_want_none, NULL);
        if (e != ETSMGR_ETIMEDOUT) { /* the connection failed (recorded): nothing is sent */
            cJSON_Delete(req);
            return e;
        }
    }
    mc_release_flush(c);
    mc_clear_err(c);
    uint64_t id = ++c->next_id;
    c->last_id = id;
    cJSON_AddNumberToObject(req, "id", (double)id);
    int r = frame_write_json(c->fd, req, send_fd >= 0 ? &send_fd : NULL, send_fd >= 0 ? 1 : 0);
    int e = errno;
    cJSON_Delete(req);
    if (r < 0 && e == EMSGSIZE) /* refused before a byte went: the connection, and the tables it holds, stay */
        return mc_err(c, ETSMGR_EINVAL, "", "the request is over the protocol's %u-byte frame limit (a data "
                      "or heir_data string too long?); nothing was sent", (unsigned)FRAME_MAX);
    if (r < 0)
        return mc_lost(c, "sending a request", e);
    struct mc_wait_reply w = { id, NULL };
    int err = mc_read_until(c, c->timeout_ms, mc_want_reply, &w);
    if (err)
        return err;
    err = mc_reply_status(c, w.reply);
    if (err == ETSMGR_OK && want_fd) {
        int fd = mc_pop_fd(c);
        if (fd < 0) {
            cJSON_Delete(w.reply);
            return mc_err(c, ETSMGR_EPROTO, "", "etsmgrd's reply carries no table fd");
        }
        *rfd = fd;
    }
    mc_frame_done(c); /* fds the reply carried beyond the one wanted */
    if (reply)
        *reply = w.reply;
    else
        cJSON_Delete(w.reply);
    if (c->watch)
        mc_watch_kick(c); /* frames read past the reply are the watch's */
    return err;
}

int mc_hello(etsmgr_client *c, int timeout_ms)
{
    int saved = c->timeout_ms;
    c->timeout_ms = timeout_ms;
    cJSON *req = cJSON_CreateObject();
    if (req)
        cJSON_AddStringToObject(req, "op", "hello");
    cJSON *rep = NULL;
    int err = mc_call(c, req, -1, &rep, 0, NULL);
    c->timeout_ms = saved;
    if (err)
        return err;
    const cJSON *proto = cJSON_GetObjectItemCaseSensitive(rep, "protocol");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(rep, "pid");
    if (!cJSON_IsNumber(proto) || proto->valueint != PROTO_VERSION || !cJSON_IsNumber(pid)) {
        err = mc_err(c, ETSMGR_EPROTO, "", "etsmgrd speaks protocol %d, this library %d",
                     cJSON_IsNumber(proto) ? proto->valueint : -1, PROTO_VERSION);
        cJSON_Delete(rep);
        mc_drop(c);
        return err;
    }
    c->daemon_pid = (pid_t)pid->valueint;
    cJSON_Delete(rep);
    return ETSMGR_OK;
}

/* ------------------------------------------------------------------ public: life cycle */
static int mc_new(const char *dir, const char *instance, etsmgr_client **out, char *msg, size_t msglen)
{
    etsmgr_client *c = calloc(1, sizeof *c);
    if (!c) {
        if (msg && msglen)
            snprintf(msg, msglen, "out of memory");
        return ETSMGR_ENOMEM;
    }
    c->fd = -1;
    c->timeout_ms = MC_DEFAULT_TIMEOUT_MS;
    frame_reader_init(&c->rd);
    char err[200] = "";
    if (rt_resolve(dir, instance, &c->rt, err, sizeof err) < 0 ||
        rt_path(&c->rt, "etsmgrd.sock", c->sock_path, sizeof c->sock_path) < 0) {
        if (msg && msglen)
            snprintf(msg, msglen, "%s", err[0] ? err : "the runtime dir's path is too long for a socket");
        frame_reader_free(&c->rd);
        free(c);
        return ETSMGR_EINVAL;
    }
    *out = c;
    return ETSMGR_OK;
}

/* One attempt: connect and hello within timeout_ms. */
static int mc_try(etsmgr_client *c, int timeout_ms)
{
    int err = mc_open(c, 1);
    if (err)
        return err;
    err = mc_hello(c, timeout_ms < 0 ? MC_DEFAULT_TIMEOUT_MS : timeout_ms);
    if (err)
        mc_drop(c);
    return err;
}

static int mc_wait_loop(etsmgr_client *c, int poll_ms, int timeout_ms)
{
    if (poll_ms <= 0)
        poll_ms = MC_DEFAULT_POLL_MS;
    int64_t deadline = timeout_ms < 0 ? -1 : mc_now_ms() + timeout_ms;
    for (;;) {
        int left = MC_DEFAULT_TIMEOUT_MS;
        if (deadline >= 0) {
            int64_t l = deadline - mc_now_ms();
            left = l > 0 ? (int)l : 1;
        }
        int err = mc_try(c, left);
        if (err == ETSMGR_OK)
            return ETSMGR_OK;
        if (err != ETSMGR_ENOTCONN && err != ETSMGR_ETIMEDOUT)
            return err; /* not "not up yet": waiting will not help */
        if (deadline >= 0 && mc_now_ms() + poll_ms > deadline) {
            char why[sizeof c->err.msg];
            snprintf(why, sizeof why, "%s", c->err.msg);
            return mc_err(c, ETSMGR_ETIMEDOUT, "", "gave up waiting for etsmgrd after %d ms: %s",
                          timeout_ms, why);
        }
        struct timespec ts = { poll_ms / 1000, (long)(poll_ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

static int mc_finish(etsmgr_client *c, int err, etsmgr_client **out, char *msg, size_t msglen)
{
    if (err) {
        if (msg && msglen)
            snprintf(msg, msglen, "%s", c->err.msg);
        etsmgr_client_close(c);
        *out = NULL;
        return err;
    }
    *out = c;
    return ETSMGR_OK;
}

int etsmgr_connect(const char *dir, const char *instance, etsmgr_client **out, char *msg, size_t msglen)
{
    if (!out)
        return ETSMGR_EINVAL;
    *out = NULL;
    etsmgr_client *c;
    int err = mc_new(dir, instance, &c, msg, msglen);
    if (err)
        return err;
    return mc_finish(c, mc_try(c, c->timeout_ms), out, msg, msglen);
}

int etsmgr_wait(const char *dir, const char *instance, int poll_ms, int timeout_ms,
                etsmgr_client **out, char *msg, size_t msglen)
{
    if (!out)
        return ETSMGR_EINVAL;
    *out = NULL;
    etsmgr_client *c;
    int err = mc_new(dir, instance, &c, msg, msglen);
    if (err)
        return err;
    return mc_finish(c, mc_wait_loop(c, poll_ms, timeout_ms), out, msg, msglen);
}

int etsmgr_reconnect(etsmgr_client *c, int poll_ms, int timeout_ms)
{
    if (!c)
        return ETSMGR_EINVAL;
    if (c->watch)
        return mc_err(c, ETSMGR_EINVAL, "", "etsmgr_reconnect: the watch reconnects this client");
    int err = mc_wait_loop(c, poll_ms, timeout_ms);
    if (err)
        return err;
    int first = ETSMGR_OK;
    struct mc_errinfo first_err = {"", ""}; /* the first failure's code and words, named */
    for (size_t i = 0; i < c->ntables; i++) {
        err = mc_call(c, mc_add_table_req(c, c->tables[i]), etsmgr_table_fd(c->tables[i]), NULL, 0, NULL);
        if (err && first == ETSMGR_OK) {
            first = err;
            first_err = c->err;
            snprintf(first_err.msg, sizeof first_err.msg, "%.64s: %.900s", etsmgr_table_name(c->tables[i]),
                     c->err.msg);
        }
    }
    mc_pending_readd(c);
    if (first)
        c->err = first_err;
    return first;
}

void etsmgr_client_close(etsmgr_client *c)
{
    if (!c)
        return;
    mc_watch_free(c);
    mc_drop(c);
    frame_reader_free(&c->rd);
    for (size_t i = 0; i < c->ntables; i++) {
        etsmgr_table_close(c->tables[i]);
        free(c->heirs[i]);
    }
    free(c->tables);
    free(c->heirs);
    for (size_t i = 0; i < c->npending; i++)
        etsmgr_table_close(c->pending[i].t);
    free(c->pending);
    free(c->late);
    free(c->release);
    free(c);
}

void etsmgr_client_set_timeout(etsmgr_client *c, int timeout_ms)
{
    if (c)
        c->timeout_ms = timeout_ms;
}

int etsmgr_client_connected(const etsmgr_client *c) { return c && c->fd >= 0 && !mc_watch_busy(c); }
pid_t etsmgr_client_daemon_pid(const etsmgr_client *c) { return c ? c->daemon_pid : 0; }
const char *etsmgr_client_runtime_dir(const etsmgr_client *c) { return c ? c->rt.dir : ""; }
const char *etsmgr_client_instance(const etsmgr_client *c) { return c ? c->rt.instance : ""; }

/* ------------------------------------------------------------------ held tables */
ssize_t mc_held_index(const etsmgr_client *c, const etsmgr_table *t)
{
    for (size_t i = 0; i < c->ntables; i++)
        if (c->tables[i] == t)
            return (ssize_t)i;
    return -1;
}

int mc_hold(etsmgr_client *c, etsmgr_table *t, const char *heir_data)
{
    ssize_t i = mc_held_index(c, t);
    if (i >= 0) {
        if (heir_data) {
            char *h = strdup(heir_data);
            if (!h)
                return mc_err(c, ETSMGR_ENOMEM, "", "out of memory holding a table");
            free(c->heirs[i]);
            c->heirs[i] = h;
        }
        return ETSMGR_OK;
    }
    if (c->ntables == c->captables) {
        size_t cap = c->captables ? c->captables * 2 : 8;
        etsmgr_table **n = realloc(c->tables, cap * sizeof *n);
        if (!n)
            return mc_err(c, ETSMGR_ENOMEM, "", "out of memory holding a table");
        c->tables = n;
        char **hn = realloc(c->heirs, cap * sizeof *hn);
        if (!hn)
            return mc_err(c, ETSMGR_ENOMEM, "", "out of memory holding a table");
        c->heirs = hn;
        c->captables = cap;
    }
    char *h = strdup(heir_data ? heir_data : etsmgr_table_name(t));
    if (!h)
        return mc_err(c, ETSMGR_ENOMEM, "", "out of memory holding a table");
    c->heirs[c->ntables] = h;
    c->tables[c->ntables++] = t;
    return ETSMGR_OK;
}

const char *mc_heir(const etsmgr_client *c, const etsmgr_table *t)
{
    ssize_t i = mc_held_index(c, t);
    return i >= 0 ? c->heirs[i] : etsmgr_table_name(t);
}

void mc_unhold(etsmgr_client *c, etsmgr_table *t)
{
    ssize_t i = mc_held_index(c, t);
    if (i < 0)
        return;
    free(c->heirs[i]);
    memmove(c->tables + i, c->tables + i + 1, (c->ntables - (size_t)i - 1) * sizeof *c->tables);
    memmove(c->heirs + i, c->heirs + i + 1, (c->ntables - (size_t)i - 1) * sizeof *c->heirs);
    c->ntables--;
}

etsmgr_table *const *etsmgr_client_tables(const etsmgr_client *c, size_t *n)
{
    if (n)
        *n = c ? c->ntables : 0;
    return c ? c->tables : NULL;
}

/* ------------------------------------------------------------------ events */
int mc_handle_event(etsmgr_client *c, cJSON *obj)
{
    const char *ev = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "event"));
    if (!ev)
        return 0;
    if (strcmp(ev, "transfer") != 0)
        return 1; /* an event this library does not know: ignored */
    int fd = mc_pop_fd(c);
    if (fd < 0)
        return 1;
    etsmgr_table *t;
    if (etsmgr_table_attach_fd(fd, &t) != ETSMGR_OK) {
        close(fd);
        return 1;
    }
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "name"));
    if (!name || strcmp(name, etsmgr_table_name(t)) != 0) {
        etsmgr_table_close(t); /* the event names another table than the fd is */
        return 1;
    }
    if (c->npending == c->cappending) {
        size_t cap = c->cappending ? c->cappending * 2 : 4;
        mc_transfer *n = realloc(c->pending, cap * sizeof *n);
        if (!n) {
            etsmgr_table_close(t);
            return 1;
        }
        c->pending = n;
        c->cappending = cap;
    }
    mc_transfer *p = &c->pending[c->npending++];
    memset(p, 0, sizeof *p);
    p->t = t;
    mc_grant_from(obj, "from_pid", &p->g);
    mc_watch_kick(c);
    return 1;
}

bool mc_pending_drop(etsmgr_client *c, const etsmgr_table *t)
{
    for (size_t i = 0; i < c->npending; i++) {
        if (c->pending[i].t != t)
            continue;
        etsmgr_table_close(c->pending[i].t);
        memmove(c->pending + i, c->pending + i + 1, (c->npending - i - 1) * sizeof *c->pending);
        c->npending--;
        return true;
    }
    return false;
}

/* After a restart of etsmgrd: the tables given to us whose transfer the
 * application has not taken yet are ours as much as the held ones, and the
 * new daemon must hear so, or it has them as orphaned, for any process of
 * the uid to take while etsmgr_take_transfer hands them out here.  One it
 * refuses (another process took it meanwhile) is no longer ours: its
 * transfer is dropped, as if it had never come. */
void mc_pending_readd(etsmgr_client *c)
{
    struct mc_errinfo saved = c->err; /* the caller's failure, not these calls' */
    for (size_t i = 0; i < c->npending;) {
        etsmgr_table *t = c->pending[i].t;
        int err = mc_call(c, mc_add_table_req(c, t), etsmgr_table_fd(t), NULL, 0, NULL);
        if (err == ETSMGR_OK)
            i++;
        else if (err == ETSMGR_ENOTCONN || err == ETSMGR_ETIMEDOUT || err == ETSMGR_EPROTO)
            break; /* the connection failed, not the table: the next reconnect tries again */
        else
            mc_pending_drop(c, t);
    }
    c->err = saved;
}

static int mc_want_transfer(etsmgr_client *c, cJSON *obj, void *arg)
{
    (void)arg;
    return obj == NULL && c->npending > 0;
}

int etsmgr_take_transfer(etsmgr_client *c, int timeout_ms, etsmgr_table **out, etsmgr_grant *grant)
{
    if (!c || !out)
        return ETSMGR_EINVAL;
    *out = NULL;
    if (c->npending == 0) {
        if (c->fd < 0 || mc_watch_busy(c))
            return mc_err(c, ETSMGR_ENOTCONN, "", "not connected to etsmgrd (%s)", c->sock_path);
        int err = mc_read_until(c, timeout_ms, mc_want_transfer, NULL);
        if (err)
            return err;
    }
    mc_transfer p = c->pending[0];
    memmove(c->pending, c->pending + 1, (c->npending - 1) * sizeof *c->pending);
    c->npending--;
    int err = mc_hold(c, p.t, NULL);
    if (err) {
        etsmgr_table_close(p.t);
        return err;
    }
    *out = p.t;
    if (grant)
        *grant = p.g;
    return ETSMGR_OK;
}

/* ------------------------------------------------------------------ late replies */
/* A call that timed out told the application so, but the daemon still does
 * what it was asked, and answers.  Without these, a new_table answered late
 * left this process the table's owner with nothing holding it (its name
 * taken by nobody, its waiters never served, until the process exited),
 * and a del_table or give_away answered late left the handle held (a
 * reconnect added back a table given away).  The reply is matched by its
 * id; the connection's end settles every one still due (mc_late_clear). */
int mc_late_add(etsmgr_client *c, enum mc_late_kind kind, const char *name, etsmgr_table *t)
{
    if (c->nlate == c->caplate) {
        size_t cap = c->caplate ? c->caplate * 2 : 4;
        mc_late *n = realloc(c->late, cap * sizeof *n);
        if (!n)
            return ETSMGR_ENOMEM;
        c->late = n;
        c->caplate = cap;
    }
    mc_late *l = &c->late[c->nlate];
    memset(l, 0, sizeof *l);
    l->id = c->last_id;
    l->kind = kind;
    snprintf(l->name, sizeof l->name, "%s", name);
    if (kind == MC_LATE_LET_GO) {
        l->heir = strdup(mc_heir(c, t));
        if (!l->heir)
            return ETSMGR_ENOMEM;
        l->t = t;
        mc_unhold(c, t);
    }
    c->nlate++;
    return ETSMGR_OK;
}

void mc_release_add(etsmgr_client *c, const char *name)
{
    for (size_t i = 0; i < c->nrelease; i++)
        if (strcmp(c->release[i], name) == 0)
            return;
    if (c->nrelease == c->caprelease) {
        size_t cap = c->caprelease ? c->caprelease * 2 : 4;
        char(*n)[ETSMGR_NAME_MAX + 1] = realloc(c->release, cap * sizeof *n);
        if (!n)
            return; /* the table stays ours until the connection closes */
        c->release = n;
        c->caprelease = cap;
    }
    snprintf(c->release[c->nrelease++], sizeof *c->release, "%s", name);
}

void mc_late_reply(etsmgr_client *c, const cJSON *obj)
{
    uint64_t id = mc_id(obj);
    size_t i = 0;
    while (i < c->nlate && c->late[i].id != id)
        i++;
    if (id == 0 || i == c->nlate)
        return;
    mc_late l = c->late[i];
    memmove(c->late + i, c->late + i + 1, (c->nlate - i - 1) * sizeof *c->late);
    c->nlate--;
    int ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "ok"));
    if (l.kind == MC_LATE_NEW) {
        if (ok) /* its fd goes with the frame (mc_read_until); the ownership goes back */
            mc_release_add(c, l.name);
        return;
    }
    if (ok) { /* deleted or given away: the handle is done with, as on an answer in time */
        etsmgr_table_close(l.t);
    } else if (!l.t) { /* refused, still ours, but not wanted back */
        mc_release_add(c, l.name);
    } else if (mc_hold(c, l.t, l.heir) != ETSMGR_OK) {
        etsmgr_table_close(l.t);
        mc_release_add(c, l.name);
    }
    free(l.heir);
}

void mc_late_disown(etsmgr_client *c, etsmgr_table *t)
{
    for (size_t i = 0; i < c->nlate; i++)
        if (c->late[i].kind == MC_LATE_LET_GO && c->late[i].t == t) {
            etsmgr_table_close(t);
            c->late[i].t = NULL;
        }
}

/* The connection is gone: the daemon orphaned whatever it had as ours, so
 * nothing is to be given back, and the outcome of a let-go still due is
 * never known: its handle (no longer the application's) is closed. */
static void mc_late_clear(etsmgr_client *c)
{
    for (size_t i = 0; i < c->nlate; i++) {
        if (c->late[i].t)
            etsmgr_table_close(c->late[i].t);
        free(c->late[i].heir);
    }
    c->nlate = 0;
    c->nrelease = 0;
}

static int mc_has_name(const etsmgr_client *c, const char *name)
{
    for (size_t i = 0; i < c->ntables; i++)
        if (strcmp(etsmgr_table_name(c->tables[i]), name) == 0)
            return 1;
    for (size_t i = 0; i < c->npending; i++)
        if (strcmp(etsmgr_table_name(c->pending[i].t), name) == 0)
            return 1;
    /* a let-go in doubt: a refusal still to come holds it again, an ok means it is not ours */
    for (size_t i = 0; i < c->nlate; i++)
        if (c->late[i].kind == MC_LATE_LET_GO && c->late[i].t && strcmp(c->late[i].name, name) == 0)
            return 1;
    return 0;
}

void mc_release_flush(etsmgr_client *c)
{
    size_t n = c->nrelease;
    c->nrelease = 0;
    for (size_t i = 0; i < n && c->fd >= 0; i++) {
        /* a later new_table of the same name, answered in time, gave it to
         * the application after all: it stays */
        if (mc_has_name(c, c->release[i]))
            continue;
        cJSON *req = cJSON_CreateObject();
        if (!req || !cJSON_AddStringToObject(req, "op", "release") ||
            !cJSON_AddStringToObject(req, "name", c->release[i]) ||
            !cJSON_AddNumberToObject(req, "id", (double)++c->next_id)) {
            cJSON_Delete(req);
            continue;
        }
        /* its reply is dropped as nobody's; a failed write is the next
         * read's end of stream */
        (void)frame_write_json(c->fd, req, NULL, 0);
        cJSON_Delete(req);
    }
}

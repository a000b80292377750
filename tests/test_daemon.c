/* SPDX-License-Identifier: Apache-2.0 */
/* test_daemon.c: etsmgrd's ops against the real daemon: start-up and
 * readiness, options, create, transfer on the owner's death, name conflict,
 * give_away, del_table, limits, a refused load with replace, fds where none
 * belong, add_table refusals that change nothing.  Also the helpers the
 * other daemon suites share (test_daemon.h).
 *
 * Every test starts its own daemon on a fresh runtime dir and instance
 * (tu_env), waits for its READY=1 rather than sleeping, and reaches a state
 * with no signal of its own (an owner's death being noticed) by polling the
 * daemon's own answer to `tables`.  Owners are forked children that talk the
 * protocol with plain calls and report over a pipe. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "notify.h"
#include "runcap.h"
#include "sock.h"
#include "test_daemon.h"

/* ------------------------------------------------------------ helpers */

pid_t dt_start(tu_env *e, ...)
{
    char *argv[32] = {"etsmgrd"};
    int n = 1;
    va_list ap;
    va_start(ap, e);
    char *a;
    while ((a = va_arg(ap, char *)) != NULL && n < 30)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    pid_t pid = tu_spawn_logged(e, argv, "etsmgrd.log", DT_TIMEOUT_MS);
    if (pid <= 0) {
        char *log = dt_log(e);
        ck_abort_msg("etsmgrd did not send READY=1; its log:\n%s", log);
    }
    return pid;
}

char *dt_log(const tu_env *e)
{
    return tu_log(e, "etsmgrd.log");
}

bool dt_log_has(const tu_env *e, const char *needle)
{
    char *s = dt_log(e);
    bool r = strstr(s, needle) != NULL;
    free(s);
    return r;
}

int dt_connect(const tu_env *e)
{
    char path[256];
    snprintf(path, sizeof path, "%s/etsmgrd.sock", e->dir);
    int fd = sock_connect_unix(path);
    ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(errno));
    return fd;
}

cJSON *dt_call(int fd, const char *json, const int *fds, int nfds, int *rfd)
{
    ck_assert_msg(frame_write(fd, json, strlen(json), fds, nfds) == 0, "frame_write %s: %s", json,
                  strerror(errno));
    cJSON *r = NULL;
    int got[FRAME_MAX_FDS], ngot = 0;
    int rc = frame_read_json(fd, &r, got, &ngot, FRAME_MAX_FDS, DT_TIMEOUT_MS);
    ck_assert_msg(rc == 0, "no reply to %s: %s", json, strerror(errno));
    if (rfd)
        *rfd = ngot > 0 ? got[0] : -1;
    for (int i = rfd ? 1 : 0; i < ngot; i++)
        close(got[i]);
    return r;
}

cJSON *dt_callf(int fd, int *rfd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return dt_call(fd, buf, NULL, 0, rfd);
}

const char *dt_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double dt_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

bool dt_bool(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

void dt_expect_err(cJSON *r, const char *code)
{
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg(!dt_bool(r, "ok") && strcmp(dt_str(r, "error"), code) == 0, "expected error %s, got %s",
                  code, s);
    ck_assert_msg(dt_str(r, "message")[0] != '\0', "error %s without a message: %s", code, s);
    free(s);
    cJSON_Delete(r);
}

void dt_expect_ok(cJSON *r)
{
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg(dt_bool(r, "ok"), "expected ok, got %s", s);
    free(s);
    cJSON_Delete(r);
}

etsmgr_table *dt_new_table(int fd, const char *name, const char *heir_data, bool *created)
{
    int tfd = -1;
    cJSON *r = dt_callf(fd, &tfd, "{\"op\":\"new_table\",\"id\":\"n\",\"name\":\"%s\",\"heir_data\":\"%s\"}", name,
                        heir_data ? heir_data : name);
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg(dt_bool(r, "ok") && tfd >= 0, "new_table %s: %s (fd %d)", name, s, tfd);
    ck_assert_str_eq(dt_str(r, "id"), "n");
    ck_assert_str_eq(dt_str(r, "name"), name);
    ck_assert_str_eq(dt_str(r, "data"), "etsmgr");
    ck_assert_int_gt((int)dt_num(r, "from_pid"), 0);
    if (created)
        *created = dt_bool(r, "created");
    free(s);
    cJSON_Delete(r);
    etsmgr_table *t = NULL;
    int rc = etsmgr_table_attach_fd(tfd, &t);
    ck_assert_msg(rc == ETSMGR_OK, "attach %s: %s", name, etsmgr_strerror(rc));
    ck_assert_str_eq(etsmgr_table_name(t), name);
    return t;
}

cJSON *dt_status(int fd, const char *name)
{
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"tables\",\"id\":1}");
    ck_assert_msg(dt_bool(r, "ok"), "tables failed");
    cJSON *found = NULL, *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "tables"))
    {
        if (strcmp(dt_str(it, "name"), name) == 0)
            found = cJSON_Duplicate(it, 1);
    }
    cJSON_Delete(r);
    return found;
}

void dt_hello_ok(const tu_env *e, pid_t daemon_pid)
{
    int fd = dt_connect(e);
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"hello\",\"id\":42}");
    ck_assert_msg(dt_bool(r, "ok"), "hello failed on a fresh connection");
    ck_assert_int_eq((int)dt_num(r, "id"), 42);
    ck_assert_int_eq((int)dt_num(r, "protocol"), 1);
    ck_assert_str_eq(dt_str(r, "instance"), e->instance);
    if (daemon_pid > 0)
        ck_assert_int_eq((int)dt_num(r, "pid"), daemon_pid);
    cJSON_Delete(r);
    close(fd);
}

bool dt_shm_exists(const tu_env *e, const char *name)
{
    char path[256];
    tu_shm_path(e, geteuid(), name, path, sizeof path);
    return access(path, F_OK) == 0;
}

int64_t dt_get_count(etsmgr_table *t, const char *key)
{
    etsmgr_value v;
    char buf[64];
    int rc = etsmgr_table_lookup(t, key, strlen(key), &v, buf, sizeof buf);
    ck_assert_msg(rc == ETSMGR_OK, "lookup %s: %s", key, etsmgr_strerror(rc));
    ck_assert_int_eq(v.type, ETSMGR_INT);
    return v.i;
}

/* ------------------------------------------------------------ owners in children */

/* A child process that owns table name: it connects, new_table, adds add to
 * "count", writes 'K' on its pipe (or 'F' on any failure) and waits to be
 * killed.  The parent gets the pid once 'K' arrived. */
pid_t dt_fork_owner(const tu_env *e, const char *name, const char *heir, int64_t add)
{
    int pipe_fd;
    pid_t pid = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char path[256], req[512];
        snprintf(path, sizeof path, "%s/etsmgrd.sock", e->dir);
        int fd = sock_connect_unix(path);
        snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":1,\"name\":\"%s\",\"heir_data\":\"%s\"}", name,
                 heir);
        cJSON *r = NULL;
        int tfd = -1, n = 0;
        etsmgr_table *t = NULL;
        int64_t v;
        if (fd < 0 || frame_write(fd, req, strlen(req), NULL, 0) < 0 ||
            frame_read_json(fd, &r, &tfd, &n, 1, DT_TIMEOUT_MS) < 0 || n != 1 ||
            etsmgr_table_attach_fd(tfd, &t) != ETSMGR_OK ||
            etsmgr_table_update_counter(t, "count", 5, add, 0, &v) != ETSMGR_OK) {
            (void)!write(pipe_fd, "F", 1);
            _exit(1);
        }
        (void)!write(pipe_fd, "K", 1);
        for (;;)
            pause();
    }
    struct pollfd pfd = {.fd = pipe_fd, .events = POLLIN};
    char c = 0;
    ck_assert_msg(poll(&pfd, 1, DT_TIMEOUT_MS) == 1 && read(pipe_fd, &c, 1) == 1, "owner child did not report");
    close(pipe_fd);
    if (c != 'K') {
        tu_kill9(pid);
        ck_abort_msg("owner child could not get table %s", name);
    }
    return pid;
}

bool dt_is_orphaned(void *arg)
{
    dt_wait *w = arg;
    cJSON *st = dt_status(w->fd, w->name);
    bool r = st && strcmp(dt_str(st, "state"), "orphaned") == 0;
    cJSON_Delete(st);
    return r;
}

/* ------------------------------------------------------------ tests */

START_TEST(test_ready_and_hello)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    dt_hello_ok(&e, d);
    struct stat st;
    char path[256];
    snprintf(path, sizeof path, "%s/etsmgrd.sock", e.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg(S_ISSOCK(st.st_mode), "etsmgrd.sock is not a socket");
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    snprintf(path, sizeof path, "%s/etsmgrd.lock", e.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg(dt_log_has(&e, "started"), "no start-up line in the log");
    tu_env_cleanup(&e);
}
END_TEST

/* The notify datagram itself, the options winning over the environment,
 * and an orderly SIGTERM that keeps tables and removes the socket. */
START_TEST(test_notify_options_sigterm)
{
    tu_env e;
    tu_env_init(&e);
    char npath[256], sock[256];
    snprintf(npath, sizeof npath, "%s/notify", e.dir);
    snprintf(sock, sizeof sock, "%s/etsmgrd.sock", e.dir);
    int nfd = notify_listen(npath);
    ck_assert_msg(nfd >= 0, "notify_listen: %s", strerror(errno));
    const char *bin = tu_bin("etsmgrd", false);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char logp[256];
        snprintf(logp, sizeof logp, "%s/etsmgrd.log", e.dir);
        int l = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (l >= 0)
            dup2(l, 2);
        setenv("NOTIFY_SOCKET", npath, 1);
        setenv("ETSMGR_INSTANCE", "not-this-one", 1);
        setenv("ETSMGR_RUNTIME_DIR", "/nonexistent/not/this", 1);
        execl(bin, "etsmgrd", "--runtime-dir", e.dir, "--instance", e.instance, "--foreground", (char *)NULL);
        _exit(127);
    }
    struct pollfd pfd = {.fd = nfd, .events = POLLIN};
    char buf[512] = "";
    int from = 0;
    bool ready = false;
    while (!ready && poll(&pfd, 1, DT_TIMEOUT_MS) == 1) {
        int n = notify_recv(nfd, buf, sizeof buf, &from);
        if (n > 0 && strstr(buf, "READY=1"))
            ready = true;
    }
    ck_assert_msg(ready, "no READY=1 from etsmgrd");
    ck_assert_int_eq(from, pid);
    ck_assert_msg(strstr(buf, "STATUS="), "READY=1 without STATUS=: %s", buf);
    /* READY=1 means listening: the socket answers at once. */
    dt_hello_ok(&e, pid);

    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "kept", NULL, NULL);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int status = tu_wait(pid, DT_TIMEOUT_MS);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "etsmgrd after SIGTERM: status %d",
                  status);
    ck_assert_msg(dt_shm_exists(&e, "kept"), "SIGTERM removed a table");
    ck_assert_msg(access(sock, F_OK) != 0, "socket left after an orderly exit");
    etsmgr_table_close(t);
    close(fd);
    close(nfd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_help_version_usage)
{
    const char *bin = tu_bin("etsmgrd", false);
    char *out = NULL;
    char *help[] = {(char *)bin, "--help", NULL};
    int st = rc_run(help, &out, 10000);
    ck_assert_msg(rc_ok(st), "--help: status %d", st);
    ck_assert_msg(strstr(out, "--max-tables") && strstr(out, "--runtime-dir") && strstr(out, "70 cannot serve"),
                  "--help lacks options or exit codes:\n%s", out);
    free(out);
    char *ver[] = {(char *)bin, "--version", NULL};
    st = rc_run(ver, &out, 10000);
    ck_assert_msg(rc_ok(st) && strncmp(out, "etsmgrd ", 8) == 0, "--version: %d %s", st, out);
    free(out);
    static const char *bad[][4] = {
        {"--bogus", NULL}, {"--max-tables", "0", NULL}, {"--max-connections", "x", NULL},
        {"--log-level", "loud", NULL}, {"extra-argument", NULL}, {"--instance", "a/b", NULL},
        {"--runtime-dir", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[6] = {(char *)bin};
        for (int k = 0; bad[i][k]; k++)
            argv[k + 1] = (char *)bad[i][k];
        st = rc_run(argv, &out, 10000);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "etsmgrd %s: expected exit 64, status %d:\n%s",
                      bad[i][0], st, out);
        ck_assert_msg(strstr(out, "etsmgrd"), "usage error without a message: %s", out);
        free(out);
    }
}
END_TEST

START_TEST(test_create)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    bool created = false;
    etsmgr_table *t = dt_new_table(fd, "t1", "h1", &created);
    ck_assert(created);
    etsmgr_value v = {.type = ETSMGR_INT, .i = 41};
    ck_assert_int_eq(etsmgr_table_insert(t, "k", 1, &v), ETSMGR_OK);
    ck_assert(dt_shm_exists(&e, "t1"));
    struct stat st;
    char path[256];
    tu_shm_path(&e, geteuid(), "t1", path, sizeof path);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    cJSON *s = dt_status(fd, "t1");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(dt_str(s, "state"), "owned");
    ck_assert_int_eq((int)dt_num(s, "owner_pid"), getpid());
    ck_assert_str_eq(dt_str(s, "heir_data"), "h1");
    ck_assert_int_eq((int)dt_num(s, "entries"), 1);
    ck_assert_int_eq((int)dt_num(s, "transfers"), 0);
    ck_assert_int_gt((int)dt_num(s, "capacity"), 0);
    ck_assert_int_gt((int)dt_num(s, "bytes"), 0);
    ck_assert_msg(strlen(dt_str(s, "created")) >= 26, "created is not ISO-8601: %s", dt_str(s, "created"));
    cJSON_Delete(s);

    /* Asking again on the same connection: the same table. */
    etsmgr_table *t2 = dt_new_table(fd, "t1", "h1", &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t2, "k"), 41);
    etsmgr_table_close(t2);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_transfer_on_death)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    pid_t owner = dt_fork_owner(&e, "etscounter", "etscounter", 5);
    int fd = dt_connect(&e);
    cJSON *s = dt_status(fd, "etscounter");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(dt_str(s, "state"), "owned");
    ck_assert_int_eq((int)dt_num(s, "owner_pid"), owner);
    cJSON_Delete(s);

    tu_kill9(owner);
    dt_wait w = {fd, "etscounter"};
    ck_assert_msg(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS), "the owner's death was not noticed");
    char line[256];
    snprintf(line, sizeof line, "ETS-TRANSFER: for table=etscounter, from pid=%d, heir_data=etscounter.",
             (int)owner);
    ck_assert_msg(dt_log_has(&e, line), "no seed-like transfer line in the log:\n%s", dt_log(&e));
    snprintf(line, sizeof line, "EXIT: from pid=%d.", (int)owner);
    ck_assert_msg(dt_log_has(&e, line), "no EXIT line in the log");

    /* A new client gets the same table with its data. */
    bool created = true;
    etsmgr_table *t = dt_new_table(fd, "etscounter", "etscounter", &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t, "count"), 5);
    s = dt_status(fd, "etscounter");
    ck_assert_str_eq(dt_str(s, "state"), "owned");
    ck_assert_int_eq((int)dt_num(s, "owner_pid"), getpid());
    ck_assert_int_eq((int)dt_num(s, "transfers"), 2);
    cJSON_Delete(s);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), ETSMGR_OK);
    ck_assert_int_eq(info.owner_pid, getpid());
    ck_assert_int_eq(info.heir_pid, d);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_name_conflict)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    pid_t owner = dt_fork_owner(&e, "shared", "x", 1);
    int fd = dt_connect(&e);
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"new_table\",\"id\":2,\"name\":\"shared\"}");
    ck_assert_int_eq((int)dt_num(r, "owner_pid"), owner);
    dt_expect_err(r, "owned");
    /* add_table of a living owner's table is refused the same way. */
    char path[256];
    snprintf(path, sizeof path, "/%s:%lu:shared", e.instance, (unsigned long)geteuid());
    int sfd = shm_open(path, O_RDWR, 0);
    ck_assert_int_ge(sfd, 0);
    r = dt_call(fd, "{\"op\":\"add_table\",\"id\":3,\"name\":\"shared\"}", &sfd, 1, NULL);
    dt_expect_err(r, "owned");
    close(sfd);
    /* The connection is still usable, and once the owner dies it is ours. */
    tu_kill9(owner);
    dt_wait w = {fd, "shared"};
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));
    etsmgr_table *t = dt_new_table(fd, "shared", NULL, NULL);
    ck_assert_int_eq(dt_get_count(t, "count"), 1);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_give_away)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "gift", NULL, NULL);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 77, 0, &v), ETSMGR_OK);

    /* The receiver: connects, says it is there, waits for the event. */
    int pipe_fd;
    pid_t rcv = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(rcv, 0);
    if (rcv == 0) {
        char path[256];
        snprintf(path, sizeof path, "%s/etsmgrd.sock", e.dir);
        int c = sock_connect_unix(path);
        const char *hello = "{\"op\":\"hello\",\"id\":1}";
        cJSON *r = NULL, *ev = NULL;
        int tfd = -1, n = 0;
        if (c < 0 || frame_write(c, hello, strlen(hello), NULL, 0) < 0 ||
            frame_read_json(c, &r, NULL, NULL, 0, DT_TIMEOUT_MS) < 0)
            _exit(1);
        (void)!write(pipe_fd, "R", 1);
        if (frame_read_json(c, &ev, &tfd, &n, 1, DT_TIMEOUT_MS) < 0 || n != 1)
            _exit(2);
        const cJSON *evn = cJSON_GetObjectItemCaseSensitive(ev, "event");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(ev, "name");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(ev, "data");
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(ev, "from_pid");
        etsmgr_table *rt = NULL;
        char val[64];
        etsmgr_value got;
        if (!cJSON_IsString(evn) || strcmp(evn->valuestring, "transfer") || !cJSON_IsString(nm) ||
            strcmp(nm->valuestring, "gift") || !cJSON_IsString(dt) || strcmp(dt->valuestring, "present") ||
            !cJSON_IsNumber(fp) || (pid_t)fp->valuedouble != getppid())
            _exit(3);
        if (etsmgr_table_attach_fd(tfd, &rt) != ETSMGR_OK ||
            etsmgr_table_lookup(rt, "count", 5, &got, val, sizeof val) != ETSMGR_OK || got.i != 77)
            _exit(4);
        (void)!write(pipe_fd, "G", 1);
        for (;;)
            pause();
    }
    char c = 0;
    struct pollfd pfd = {.fd = pipe_fd, .events = POLLIN};
    ck_assert(poll(&pfd, 1, DT_TIMEOUT_MS) == 1 && read(pipe_fd, &c, 1) == 1 && c == 'R');

    /* Refusals first: an unconnected pid, a bad pid type. */
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"give_away\",\"id\":1,\"name\":\"gift\",\"pid\":%d}", 1),
                  "no_such_pid");
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"give_away\",\"id\":1,\"name\":\"nope\",\"pid\":%d}", (int)rcv),
                  "not_found");
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"give_away\",\"id\":2,\"name\":\"gift\",\"pid\":%d,\"data\":\"present\"}",
                        (int)rcv);
    ck_assert_int_eq((int)dt_num(r, "pid"), rcv);
    dt_expect_ok(r);
    ck_assert_msg(poll(&pfd, 1, DT_TIMEOUT_MS) == 1 && read(pipe_fd, &c, 1) == 1 && c == 'G',
                  "the receiver did not get the table with its data (status %d)", tu_wait(rcv, 1000));
    cJSON *s = dt_status(fd, "gift");
    ck_assert_int_eq((int)dt_num(s, "owner_pid"), rcv);
    ck_assert_int_eq((int)dt_num(s, "transfers"), 1);
    cJSON_Delete(s);
    /* The giver is no longer the owner. */
    r = dt_callf(fd, NULL, "{\"op\":\"give_away\",\"id\":3,\"name\":\"gift\",\"pid\":%d}", (int)getpid());
    ck_assert_int_eq((int)dt_num(r, "owner_pid"), rcv);
    dt_expect_err(r, "not_owner");
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"del_table\",\"id\":4,\"name\":\"gift\"}"), "not_owner");
    /* The receiver's death orphans it. */
    tu_kill9(rcv);
    dt_wait w = {fd, "gift"};
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));
    close(pipe_fd);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_del_table)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "d1", NULL, NULL);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 3, 0, &v), ETSMGR_OK);
    etsmgr_table_close(t);

    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"del_table\",\"id\":1,\"name\":\"d1\"}");
    ck_assert(!dt_bool(r, "unlinked"));
    dt_expect_ok(r);
    ck_assert_ptr_null(dt_status(fd, "d1"));
    ck_assert_msg(dt_shm_exists(&e, "d1"), "del_table without unlink removed the object");
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"del_table\",\"id\":2,\"name\":\"d1\"}"), "not_found");

    /* The object left in shared memory is adopted again, data intact. */
    bool created = true;
    t = dt_new_table(fd, "d1", NULL, &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t, "count"), 3);
    etsmgr_table_close(t);

    r = dt_callf(fd, NULL, "{\"op\":\"del_table\",\"id\":3,\"name\":\"d1\",\"unlink\":true}");
    ck_assert(dt_bool(r, "unlinked"));
    dt_expect_ok(r);
    ck_assert_msg(!dt_shm_exists(&e, "d1"), "del_table with unlink left the object");
    ck_assert_ptr_null(dt_status(fd, "d1"));
    /* A new table of that name starts empty. */
    t = dt_new_table(fd, "d1", NULL, &created);
    ck_assert(created);
    etsmgr_value got;
    char buf[16];
    ck_assert_int_eq(etsmgr_table_lookup(t, "count", 5, &got, buf, sizeof buf), ETSMGR_ENOTFOUND);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_unexpected_fd_no_leak)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    int fd = dt_connect(&e);
    dt_expect_ok(dt_callf(fd, NULL, "{\"op\":\"hello\",\"id\":0}"));
    int before = tu_count_fds(d);
    ck_assert_int_gt(before, 0);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int two[2] = {p[0], p[1]};
    for (int i = 0; i < 20; i++) {
        dt_expect_err(dt_call(fd, "{\"op\":\"hello\",\"id\":1}", two, 2, NULL), "unexpected_fd");
        dt_expect_err(dt_call(fd, "{\"op\":\"tables\",\"id\":2}", two, 1, NULL), "unexpected_fd");
        dt_expect_err(dt_call(fd, "{\"op\":\"new_table\",\"id\":3,\"name\":\"x\"}", two, 1, NULL),
                      "unexpected_fd");
        dt_expect_err(dt_call(fd, "{not json", two, 2, NULL), "bad_json");
        dt_expect_err(dt_call(fd, "{\"op\":\"nope\",\"id\":4}", two, 1, NULL), "unknown_op");
        dt_expect_err(dt_call(fd, "{\"op\":\"add_table\",\"id\":5,\"name\":\"x\"}", two, 2, NULL), "bad_fd");
    }
    ck_assert_ptr_null(dt_status(fd, "x"));
    ck_assert_int_eq(tu_count_fds(d), before);
    close(p[0]);
    close(p[1]);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

static bool few_connections(void *arg)
{
    cJSON *r = dt_callf(*(int *)arg, NULL, "{\"op\":\"info\"}");
    bool ok = dt_num(r, "connections") == 1;
    cJSON_Delete(r);
    return ok;
}

START_TEST(test_limits)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, "--max-tables", "2", "--max-connections", "3", NULL);
    int fd = dt_connect(&e);
    etsmgr_table *a = dt_new_table(fd, "a", NULL, NULL);
    etsmgr_table *b = dt_new_table(fd, "b", NULL, NULL);
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"new_table\",\"id\":1,\"name\":\"c\"}"), "too_many_tables");
    ck_assert(!dt_shm_exists(&e, "c"));
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"info\",\"id\":1}");
    ck_assert_int_eq((int)dt_num(r, "max_tables"), 2);
    ck_assert_int_eq((int)dt_num(r, "max_connections"), 3);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "tables")), 2);
    cJSON_Delete(r);

    int c2 = dt_connect(&e), c3 = dt_connect(&e);
    dt_expect_ok(dt_callf(c3, NULL, "{\"op\":\"hello\"}"));
    int c4 = dt_connect(&e); /* accepted by the kernel, refused by the daemon */
    cJSON *rr = NULL;
    int rc = frame_read_json(c4, &rr, NULL, NULL, 0, DT_TIMEOUT_MS);
    ck_assert_msg(rc == 0, "no refusal frame on the connection over the limit: %s", strerror(errno));
    dt_expect_err(rr, "too_many_connections");
    char ch;
    ck_assert_int_eq(read(c4, &ch, 1), 0);
    close(c4);
    close(c3);
    close(c2);
    /* Room again once others left (the daemon notices the closes). */
    ck_assert_msg(tu_eventually(few_connections, &fd, DT_TIMEOUT_MS), "the closes were not noticed");
    dt_hello_ok(&e, 0);
    etsmgr_table_close(a);
    etsmgr_table_close(b);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* The waiters of table name as etsmgrd lists them. */
static int waiter_count(int fd, const char *name)
{
    cJSON *st = dt_status(fd, name);
    ck_assert_ptr_nonnull(st);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "waiters"));
    cJSON_Delete(st);
    return n;
}

static bool no_waiters(void *arg)
{
    const dt_wait *w = arg;
    return waiter_count(w->fd, w->name) == 0;
}

/* One connection may queue 64 waits (MGRD_MAX_WAITS_PER_CONN); the 65th,
 * pipelined behind them, is refused too_many_waits, saying why, and the
 * connection, and the others, are served on: another connection still
 * queues, cancel_wait ends the 64, and then the connection may wait again
 * and gets the table with its request's id.  (Waits had no bound: a peer
 * of the table's uid grew the daemon's memory for as long as it liked.) */
START_TEST(test_waits_per_connection)
{
    enum { CAP = 64 };
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    pid_t owner = dt_fork_owner(&e, "w", "w", 1);
    int fd = dt_connect(&e), wfd = dt_connect(&e), other = dt_connect(&e);
    static char burst[(CAP + 1) * 80];
    size_t len = 0;
    for (int id = 1; id <= CAP + 1; id++) {
        char req[80];
        int n = snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":%d,\"name\":\"w\",\"wait\":true}", id);
        size_t fl;
        char *fr = frame_encode(req, (size_t)n, &fl);
        ck_assert_ptr_nonnull(fr);
        memcpy(burst + len, fr, fl);
        len += fl;
        free(fr);
    }
    ck_assert_int_eq(write(wfd, burst, len), (ssize_t)len); /* all at once: pipelined */
    cJSON *r = NULL;
    ck_assert_msg(frame_read_json(wfd, &r, NULL, NULL, 0, DT_TIMEOUT_MS) == 0, "no refusal of wait %d: %s",
                  CAP + 1, strerror(errno));
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg((int)dt_num(r, "id") == CAP + 1 && strcmp(dt_str(r, "error"), "too_many_waits") == 0, "got %s", s);
    ck_assert_msg(strstr(dt_str(r, "message"), "this connection already has 64 waits queued, the most etsmgrd keeps "
                                                "for one connection; this wait for table w was not queued"),
                  "the refusal does not say why: %s", s);
    free(s);
    cJSON_Delete(r);
    dt_expect_ok(dt_callf(wfd, NULL, "{\"op\":\"hello\",\"id\":\"still\"}"));
    ck_assert_int_eq(waiter_count(fd, "w"), CAP);
    const char *wait1 = "{\"op\":\"new_table\",\"id\":\"o\",\"name\":\"w\",\"wait\":true}";
    ck_assert_int_eq(frame_write(other, wait1, strlen(wait1), NULL, 0), 0);
    dt_expect_ok(dt_callf(other, NULL, "{\"op\":\"hello\"}")); /* replies in order: the wait is queued */
    ck_assert_int_eq(waiter_count(fd, "w"), CAP + 1);

    r = dt_callf(wfd, NULL, "{\"op\":\"cancel_wait\",\"id\":\"c\",\"name\":\"w\"}");
    ck_assert_str_eq(dt_str(r, "id"), "c");
    ck_assert(!dt_bool(r, "released"));
    dt_expect_ok(r);
    ck_assert_int_eq(waiter_count(fd, "w"), 1);
    close(other); /* its wait leaves with it, once the daemon sees the close */
    dt_wait dw = {fd, "w"};
    ck_assert_msg(tu_eventually(no_waiters, &dw, DT_TIMEOUT_MS), "the closed connection still waits");
    const char *again = "{\"op\":\"new_table\",\"id\":{\"k\":[1,\"x\"]},\"name\":\"w\",\"wait\":true}";
    ck_assert_int_eq(frame_write(wfd, again, strlen(again), NULL, 0), 0);
    tu_kill9(owner);
    int tfd = -1, nfds = 0;
    ck_assert_int_eq(frame_read_json(wfd, &r, &tfd, &nfds, 1, DT_TIMEOUT_MS), 0);
    ck_assert_int_eq(nfds, 1);
    close(tfd);
    dt_expect_ok(cJSON_Duplicate(r, 1));
    s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r, "id"));
    ck_assert_str_eq(s, "{\"k\":[1,\"x\"]}");
    free(s);
    cJSON_Delete(r);
    close(wfd);
    close(fd);
    dt_hello_ok(&e, d);
    tu_env_cleanup(&e);
}
END_TEST

/* A load with replace (new_table exclusive+replace) that is refused must
 * leave the orphan it would have replaced as it was: managed, with its data
 * and its snapshot.  Before, the orphan was destroyed first and the size
 * check, the table store's option check or the create refused afterwards,
 * so a request that failed had wiped the data it was meant to replace.
 * A replace that is accepted still gets a fresh table under the name, and
 * the orphan's bytes do not count against --max-uid-bytes (it goes). */
START_TEST(test_load_replace_refused_keeps_orphan)
{
    tu_env e;
    tu_env_init(&e);
    char snapdir[200], snap[300];
    snprintf(snapdir, sizeof snapdir, "%s/snap", e.dir);
    dt_start(&e, "--snapshot-dir", snapdir, "--max-table-bytes", "10M", "--max-uid-bytes", "12M", NULL);
    snprintf(snap, sizeof snap, "%s/%s/t.etsimg", snapdir, e.instance);
    int a = dt_connect(&e);
    int tfd = -1;
    cJSON *r =
        dt_callf(a, &tfd, "{\"op\":\"new_table\",\"id\":1,\"name\":\"t\",\"opts\":{\"size_hint\":8388608}}");
    dt_expect_ok(r);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_table_attach_fd(tfd, &t), ETSMGR_OK);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 7, 0, &v), ETSMGR_OK);
    etsmgr_table_close(t);
    dt_expect_ok(dt_callf(a, NULL, "{\"op\":\"snapshot\",\"id\":2}"));
    ck_assert_msg(access(snap, F_OK) == 0, "no snapshot %s", snap);
    close(a);
    int b = dt_connect(&e);
    dt_wait w = {b, "t"};
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));

    /* refused by the size check, then by the table store */
    dt_expect_err(dt_callf(b, NULL, "{\"op\":\"new_table\",\"id\":3,\"name\":\"t\",\"exclusive\":true,"
                                    "\"replace\":true,\"opts\":{\"size_hint\":1073741824}}"),
                  "too_large");
    dt_expect_err(dt_callf(b, NULL, "{\"op\":\"new_table\",\"id\":4,\"name\":\"t\",\"exclusive\":true,"
                                    "\"replace\":true,\"opts\":{\"max_bytes\":1}}"),
                  "bad_request");
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));
    ck_assert_msg(dt_shm_exists(&e, "t"), "a refused replace removed the table's object");
    ck_assert_msg(access(snap, F_OK) == 0, "a refused replace removed the snapshot");
    bool created = true;
    t = dt_new_table(b, "t", NULL, &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t, "count"), 7);
    etsmgr_table_close(t);
    close(b);

    /* accepted: a new, empty table under the name; the old one's 8 MiB
     * are not counted (8 + 8 > 12) */
    int c = dt_connect(&e);
    w.fd = c;
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));
    tfd = -1;
    r = dt_callf(c, &tfd, "{\"op\":\"new_table\",\"id\":5,\"name\":\"t\",\"exclusive\":true,\"replace\":true,"
                          "\"opts\":{\"size_hint\":8388608}}");
    ck_assert(dt_bool(r, "created"));
    dt_expect_ok(r);
    ck_assert_int_eq(etsmgr_table_attach_fd(tfd, &t), ETSMGR_OK);
    etsmgr_value got;
    char buf[16];
    ck_assert_int_eq(etsmgr_table_lookup(t, "count", 5, &got, buf, sizeof buf), ETSMGR_ENOTFOUND);
    etsmgr_table_close(t);
    ck_assert_msg(access(snap, F_OK) != 0, "the replaced table's snapshot stayed");
    r = dt_callf(c, NULL, "{\"op\":\"tables\",\"id\":6}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "tables")), 1);
    cJSON_Delete(r);
    close(c);
    tu_env_cleanup(&e);
}
END_TEST

/* add_table keeps the fd it accepts as the daemon's own attachment, which
 * every later owner gets: a read-only one (open_table with mode read hands
 * those to any process of the uid) is refused with bad_fd and closed, and
 * the table stays unmanaged, for a later new_table to adopt read-write.
 * Before, it was accepted, and later owners got O_RDONLY descriptors. */
START_TEST(test_add_table_read_only_fd_refused)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    int a = dt_connect(&e), b = dt_connect(&e);
    int tfd = -1;
    dt_expect_ok(dt_callf(a, &tfd,
                          "{\"op\":\"new_table\",\"id\":1,\"name\":\"r\","
                          "\"opts\":{\"access\":\"protected\"}}"));
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_table_attach_fd(tfd, &t), ETSMGR_OK);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 4, 0, &v), ETSMGR_OK);
    etsmgr_table_close(t);
    int ro = -1;
    dt_expect_ok(dt_callf(b, &ro, "{\"op\":\"open_table\",\"id\":2,\"name\":\"r\",\"mode\":\"read\"}"));
    ck_assert_int_ge(ro, 0);
    ck_assert_int_eq(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
    cJSON *r = dt_callf(a, NULL, "{\"op\":\"del_table\",\"id\":3,\"name\":\"r\"}");
    ck_assert(!dt_bool(r, "unlinked"));
    dt_expect_ok(r);

    int before = tu_count_fds(d);
    r = dt_call(b, "{\"op\":\"add_table\",\"id\":4,\"name\":\"r\"}", &ro, 1, NULL);
    ck_assert_msg(strstr(dt_str(r, "message"), "read-only"), "bad_fd without saying why: %s",
                  dt_str(r, "message"));
    dt_expect_err(r, "bad_fd");
    ck_assert_int_eq(tu_count_fds(d), before); /* closed, not kept */
    ck_assert_ptr_null(dt_status(b, "r"));
    close(ro);

    /* adopted read-write by a later new_table, data intact */
    tfd = -1;
    r = dt_callf(b, &tfd, "{\"op\":\"new_table\",\"id\":5,\"name\":\"r\"}");
    ck_assert(!dt_bool(r, "created"));
    dt_expect_ok(r);
    ck_assert_int_eq(fcntl(tfd, F_GETFL) & O_ACCMODE, O_RDWR);
    ck_assert_int_eq(etsmgr_table_attach_fd(tfd, &t), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 1, 0, &v), ETSMGR_OK);
    ck_assert_int_eq(v, 5);
    etsmgr_table_close(t);
    close(a);
    close(b);
    tu_env_cleanup(&e);
}
END_TEST

/* add_table with an fd of another own object of a managed table (its
 * object was replaced behind the daemon's back) takes the new object in
 * place of the managed one, but only once every check passed: one refused
 * (here invalid_table, the new object not being a table) leaves the managed
 * table as it was.  Before, the managed table was let go first, and its
 * data with it when its object was gone from /dev/shm. */
START_TEST(test_add_table_refused_keeps_managed)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int a = dt_connect(&e);
    etsmgr_table *t = dt_new_table(a, "x", NULL, NULL);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 3, 0, &v), ETSMGR_OK);
    etsmgr_table_close(t);
    close(a);
    int b = dt_connect(&e);
    dt_wait w = {b, "x"};
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));
    /* the object goes (the daemon's mapping keeps the data) and a file
     * that is no table takes its name */
    char path[256];
    tu_shm_path(&e, geteuid(), "x", path, sizeof path);
    ck_assert_int_eq(unlink(path), 0);
    int junk = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ck_assert_int_ge(junk, 0);
    char zeros[4096] = {0};
    ck_assert_int_eq(write(junk, zeros, sizeof zeros), (ssize_t)sizeof zeros);
    dt_expect_err(dt_call(b, "{\"op\":\"add_table\",\"id\":1,\"name\":\"x\"}", &junk, 1, NULL),
                  "invalid_table");
    close(junk);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert(tu_eventually(dt_is_orphaned, &w, DT_TIMEOUT_MS));
    bool created = true;
    t = dt_new_table(b, "x", NULL, &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t, "count"), 3);
    etsmgr_table_close(t);
    close(b);
    tu_env_cleanup(&e);
}
END_TEST

/* In a child running as uid 65534: send req, write the reply's error code
 * (or "ok") on out. */
static void other_uid_call(int fd, int out, const char *req)
{
    cJSON *r = NULL;
    char line[128];
    if (frame_write(fd, req, strlen(req), NULL, 0) < 0 || frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS) < 0) {
        snprintf(line, sizeof line, "io-error\n");
    } else {
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(r, "error");
        snprintf(line, sizeof line, "%s\n", cJSON_IsTrue(ok) ? "ok" : cJSON_IsString(code) ? code->valuestring : "?");
    }
    cJSON_Delete(r);
    (void)!write(out, line, strlen(line));
}

/* A table belongs to the uid that created it; SO_PEERCRED says who asks. */
START_TEST(test_other_uid)
{
    if (!tu_root_or_skip("test_other_uid"))
        return;
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "roots", NULL, NULL);
    char sock[256];
    tu_open_mgr_sock(&e, sock, sizeof sock);
    int pipe_fd;
    pid_t child = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(1);
        int c = sock_connect_unix(sock);
        if (c < 0)
            _exit(2);
        char req[256];
        other_uid_call(c, pipe_fd, "{\"op\":\"new_table\",\"name\":\"roots\"}");
        other_uid_call(c, pipe_fd, "{\"op\":\"del_table\",\"name\":\"roots\",\"unlink\":true}");
        other_uid_call(c, pipe_fd, "{\"op\":\"new_table\",\"name\":\"nobodys\"}");
        snprintf(req, sizeof req, "{\"op\":\"give_away\",\"name\":\"nobodys\",\"pid\":%d}", (int)getppid());
        other_uid_call(c, pipe_fd, req);
        _exit(0);
    }
    int st = tu_wait(child, DT_TIMEOUT_MS);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "uid 65534 client: status %d", st);
    char buf[256] = "";
    ssize_t n = read(pipe_fd, buf, sizeof buf - 1);
    close(pipe_fd);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    /* root's table is refused both ways; its own table is created and can
     * only go to a process of its uid. */
    ck_assert_str_eq(buf, "forbidden\nforbidden\nok\nno_such_pid\n");
    ck_assert(dt_shm_exists(&e, "roots"));
    struct stat sst;
    char path[256];
    tu_shm_path(&e, 65534, "nobodys", path, sizeof path); /* the name says whose it is */
    ck_assert_int_eq(stat(path, &sst), 0);
    ck_assert_int_eq(sst.st_uid, geteuid()); /* made by the daemon, never given away */
    cJSON *s = dt_status(fd, "nobodys");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq((int)dt_num(s, "uid"), 65534);
    cJSON_Delete(s);
    /* and root may not take it either */
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"new_table\",\"id\":1,\"name\":\"nobodys\"}"), "forbidden");
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* Tables whose lock a living process holds (their owner in a long
 * transaction, or stopped in one): etsmgrd reports them and answers about
 * them at once, without waiting for the lock.  (It read each header under
 * the lock, up to its 100 ms lock timeout: a `tables` of 8 such tables
 * took 800 ms, a few requests pipelined froze the daemon for every client
 * (here a hello on another connection), the statuses said "error", and
 * open_table was refused invalid_table.) */
START_TEST(test_locked_tables_answered_at_once)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e), other = dt_connect(&e);
    etsmgr_table *t[8];
    for (int i = 0; i < 8; i++) {
        char name[16];
        int64_t v;
        snprintf(name, sizeof name, "lk%d", i);
        t[i] = dt_new_table(fd, name, NULL, NULL);
        ck_assert_int_eq(etsmgr_table_update_counter(t[i], "count", 5, 1, 0, &v), ETSMGR_OK);
        ck_assert_int_eq(etsmgr_table_begin(t[i]), ETSMGR_OK); /* held until the end */
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *req = "{\"op\":\"tables\",\"id\":7}";
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(frame_write(fd, req, strlen(req), NULL, 0), 0);
    dt_expect_ok(dt_callf(other, NULL, "{\"op\":\"hello\",\"id\":1}"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    for (int k = 0; k < 4; k++) {
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS), 0);
        const cJSON *it;
        int n = 0;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r, "tables"))
        {
            ck_assert_msg(!cJSON_GetObjectItemCaseSensitive(it, "error"), "table %s: %s", dt_str(it, "name"),
                          dt_str(it, "error"));
            ck_assert_int_eq((int)dt_num(it, "entries"), 1);
            n++;
        }
        ck_assert_int_eq(n, 8);
        dt_expect_ok(r);
    }
    ck_assert_msg(ms < 400, "a hello waited %ld ms behind requests about locked tables", ms);
    int rfd = -1;
    cJSON *r = dt_callf(other, &rfd, "{\"op\":\"open_table\",\"id\":2,\"name\":\"lk0\"}");
    ck_assert_int_ge(rfd, 0);
    close(rfd);
    dt_expect_ok(r);
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(etsmgr_table_commit(t[i]), ETSMGR_OK);
        etsmgr_table_close(t[i]);
    }
    close(other);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* The header's bytes as this process's handle reads them (the lock is
 * free again). */
typedef struct dt_hdr_want {
    etsmgr_table *t;
    int32_t owner_pid;
} dt_hdr_want;

static bool dt_hdr_owner_is(void *arg)
{
    dt_hdr_want *w = arg;
    etsmgr_table_info info;
    return etsmgr_table_info_get(w->t, &info) == ETSMGR_OK && info.owner_pid == w->owner_pid;
}

/* Ownership changes of a table whose lock a living process holds (here
 * its owner, inside a transaction): etsmgrd does not wait for the lock to
 * record them in the header, and records the last one once the lock is
 * free.  (Each record waited up to the 100 ms lock timeout and was then
 * given up: release and new_table pipelined froze the daemon for every
 * client, 100 ms each, and the header kept naming an owner that had let
 * go.) */
START_TEST(test_owner_changes_do_not_wait_for_lock)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e), other = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "lo", NULL, NULL);
    ck_assert_int_eq(etsmgr_table_begin(t), ETSMGR_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *rel = "{\"op\":\"release\",\"id\":1,\"name\":\"lo\"}";
    const char *take = "{\"op\":\"new_table\",\"id\":2,\"name\":\"lo\"}";
    for (int k = 0; k < 9; k++) { /* released, taken, ..., released: orphaned in the end */
        const char *req = k % 2 ? take : rel;
        ck_assert_int_eq(frame_write(fd, req, strlen(req), NULL, 0), 0);
    }
    dt_expect_ok(dt_callf(other, NULL, "{\"op\":\"hello\",\"id\":1}"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    for (int k = 0; k < 9; k++) {
        cJSON *r = NULL;
        int rfds[FRAME_MAX_FDS], n = 0;
        ck_assert_int_eq(frame_read_json(fd, &r, rfds, &n, FRAME_MAX_FDS, DT_TIMEOUT_MS), 0);
        for (int i = 0; i < n; i++)
            close(rfds[i]);
        ck_assert_int_eq((int)dt_num(r, "id"), k % 2 ? 2 : 1);
        if (k % 2 == 0)
            ck_assert(dt_bool(r, "released"));
        dt_expect_ok(r);
    }
    ck_assert_msg(ms < 400, "a hello waited %ld ms behind ownership changes of a locked table", ms);
    dt_wait dw = {fd, "lo"};
    ck_assert(dt_is_orphaned(&dw));
    ck_assert_int_eq(etsmgr_table_commit(t), ETSMGR_OK);
    dt_hdr_want hw = {t, 0};
    ck_assert_msg(tu_eventually(dt_hdr_owner_is, &hw, DT_TIMEOUT_MS),
                  "the header still names an owner after the lock was let go");
    etsmgr_table_close(t);
    close(other);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* recover of a table whose lock a living process holds: `locked` at once,
 * every time; and its owner's add_table of it: ok at once.  (Each waited
 * up to the 100 ms lock timeout: any peer that may reach a table, any
 * member of the group with --group, could stall the daemon for every
 * client by pipelining them.) */
START_TEST(test_recover_does_not_wait_for_lock)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e), other = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "rc", NULL, NULL);
    ck_assert_int_eq(etsmgr_table_begin(t), ETSMGR_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const char *req = "{\"op\":\"recover\",\"id\":1,\"name\":\"rc\"}";
    for (int k = 0; k < 9; k++)
        ck_assert_int_eq(frame_write(fd, req, strlen(req), NULL, 0), 0);
    dt_expect_ok(dt_callf(other, NULL, "{\"op\":\"hello\",\"id\":1}"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    for (int k = 0; k < 9; k++) {
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS), 0);
        dt_expect_err(r, "locked");
    }
    ck_assert_msg(ms < 400, "a hello waited %ld ms behind recovers of a locked table", ms);
    /* nor does its owner's add_table of it, which it may pipeline too */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    req = "{\"op\":\"add_table\",\"id\":3,\"name\":\"rc\"}";
    int tfd = etsmgr_table_fd(t);
    for (int k = 0; k < 9; k++)
        ck_assert_int_eq(frame_write(fd, req, strlen(req), &tfd, 1), 0);
    for (int k = 0; k < 9; k++) {
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS), 0);
        dt_expect_ok(r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ck_assert_msg(ms < 400, "9 add_tables of a locked table took etsmgrd %ld ms", ms);
    ck_assert_int_eq(etsmgr_table_commit(t), ETSMGR_OK);
    dt_expect_ok(dt_callf(fd, NULL, "{\"op\":\"recover\",\"id\":2,\"name\":\"rc\"}"));
    etsmgr_table_close(t);
    close(other);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* An ownership change of a table whose lock a living process holds, and
 * etsmgrd stopped (SIGTERM) before the lock is free: the record is
 * written before it exits, once the lock is let go within its lock
 * timeout.  (The pending record was dropped: the header said orphaned
 * since long before, which a next etsmgrd with --orphan-ttl goes by, and
 * removed a table someone owned.) */
START_TEST(test_owner_record_written_at_exit)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    int fd = dt_connect(&e), other = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "ex", NULL, NULL);
    dt_expect_ok(dt_callf(fd, NULL, "{\"op\":\"release\",\"id\":1,\"name\":\"ex\"}"));
    dt_hdr_want hw = {t, 0};
    ck_assert(dt_hdr_owner_is(&hw)); /* orphaned, its lock free: recorded at once */
    ck_assert_int_eq(etsmgr_table_begin(t), ETSMGR_OK);
    etsmgr_table *t2 = dt_new_table(other, "ex", NULL, NULL); /* taken back while the lock is held */
    ck_assert_int_eq(kill(d, SIGTERM), 0);
    /* not a synchronisation: the lock is let go after etsmgrd has most
     * likely begun its exit, and well within its 100 ms wait */
    struct timespec pause = {0, 30 * 1000000};
    nanosleep(&pause, NULL);
    ck_assert_int_eq(etsmgr_table_commit(t), ETSMGR_OK);
    int st = tu_wait(d, DT_TIMEOUT_MS);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "etsmgrd after SIGTERM: status %d", st);
    hw.owner_pid = getpid();
    ck_assert_msg(dt_hdr_owner_is(&hw), "the header does not name the owner after an orderly exit: %s",
                  dt_log(&e));
    etsmgr_table_close(t2);
    etsmgr_table_close(t);
    close(other);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ready_and_hello);
    tcase_add_test(tc, test_notify_options_sigterm);
    tcase_add_test(tc, test_help_version_usage);
    tcase_add_test(tc, test_create);
    tcase_add_test(tc, test_transfer_on_death);
    tcase_add_test(tc, test_name_conflict);
    tcase_add_test(tc, test_give_away);
    tcase_add_test(tc, test_del_table);
    tcase_add_test(tc, test_unexpected_fd_no_leak);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_waits_per_connection);
    tcase_add_test(tc, test_load_replace_refused_keeps_orphan);
    tcase_add_test(tc, test_add_table_read_only_fd_refused);
    tcase_add_test(tc, test_add_table_refused_keeps_managed);
    tcase_add_test(tc, test_other_uid);
    tcase_add_test(tc, test_locked_tables_answered_at_once);
    tcase_add_test(tc, test_owner_changes_do_not_wait_for_lock);
    tcase_add_test(tc, test_owner_record_written_at_exit);
    tcase_add_test(tc, test_recover_does_not_wait_for_lock);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_sup.h: what the etssup and etsmgrctl suites share (header-only, so
 * it adds no suite): a private runtime dir and instance per test, etssup
 * started with its stderr in a log file and its READY=1 awaited on a notify
 * socket of the test (its exit status is kept when it exits instead), the
 * status op parsed, and /proc checks for zombies and leftovers.  Waiting for
 * a restart polls the status op: nothing else signals it. */
#ifndef TEST_SUP_H
#define TEST_SUP_H
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "notify.h"
#include "runcap.h"
#include "svcrun.h"
#include "testutil.h"

typedef struct st_env {
    char dir[108];
    char instance[65];
    char events[160], logpath[160], config[160], notify[160];
    char stub[512], sup_bin[512], ctl_bin[512], bindir[400];
    pid_t pid;       /* etssup, or -1 */
    int exit_status; /* when st_start saw it exit */
} st_env;

static inline long long st_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void st_nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline void st_cleanup(st_env *e);
static st_env *st_current; /* cleaned up at exit when a failed check ends the test early */
static inline void st_atexit(void)
{
    if (st_current)
        st_cleanup(st_current);
}

static inline void st_init(st_env *e)
{
    static int counter;
    if (counter == 0)
        atexit(st_atexit);
    memset(e, 0, sizeof *e);
    st_current = e;
    e->pid = -1;
    snprintf(e->dir, sizeof e->dir, "/tmp/etssup-t-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    snprintf(e->instance, sizeof e->instance, "s%dx%d", (int)getpid(), ++counter);
    snprintf(e->events, sizeof e->events, "%s/events", e->dir);
    snprintf(e->logpath, sizeof e->logpath, "%s/etssup.log", e->dir);
    snprintf(e->config, sizeof e->config, "%s/config.json", e->dir);
    snprintf(e->notify, sizeof e->notify, "%s/test.notify", e->dir);
    const char *bin = getenv("ETSMGR_BINDIR"), *tbin = getenv("ETSMGR_TEST_BINDIR");
    snprintf(e->bindir, sizeof e->bindir, "%s", bin ? bin : "build/bin");
    snprintf(e->sup_bin, sizeof e->sup_bin, "%s/etssup", e->bindir);
    snprintf(e->ctl_bin, sizeof e->ctl_bin, "%s/etsmgrctl", e->bindir);
    snprintf(e->stub, sizeof e->stub, "%s/sup_child", tbin ? tbin : "build/tests/bin");
    setenv("ETSMGR_RUNTIME_DIR", e->dir, 1);
    setenv("ETSMGR_INSTANCE", e->instance, 1);
}

static inline void st_config(st_env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void st_config(st_env *e, const char *fmt, ...)
{
    FILE *f = fopen(e->config, "w");
    ck_assert_ptr_nonnull(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    ck_assert_int_eq(fclose(f), 0);
}

/* Starts etssup (with e->config unless use_default) and waits for its
 * READY=1: its pid; 0 when it exited first (e->exit_status); -1 on timeout. */
static inline pid_t st_start_ex(st_env *e, bool use_default, int timeout_ms)
{
    unlink(e->notify);
    int nfd = notify_listen(e->notify);
    ck_assert_int_ge(nfd, 0);
    int logfd = open(e->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    ck_assert_int_ge(logfd, 0);
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(logfd, 2);
        setenv("NOTIFY_SOCKET", e->notify, 1);
        if (use_default)
            execl(e->sup_bin, e->sup_bin, "--runtime-dir", e->dir, "--instance", e->instance, "--log-level", "debug",
                  (char *)NULL);
        else
            execl(e->sup_bin, e->sup_bin, "--config", e->config, "--runtime-dir", e->dir, "--instance", e->instance,
                  "--log-level", "debug", (char *)NULL);
        _exit(127);
    }
    close(logfd);
    e->pid = pid;
    long long deadline = st_now_ms() + timeout_ms;
    pid_t ret = -1;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            e->exit_status = st;
            e->pid = -1;
            ret = 0;
            break;
        }
        long long left = deadline - st_now_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = nfd, .events = POLLIN};
        if (poll(&p, 1, left > 20 ? 20 : (int)left) <= 0)
            continue;
        char buf[512];
        int sender;
        int n = notify_recv(nfd, buf, sizeof buf, &sender);
        if (n > 0 && sender == pid && (strncmp(buf, "READY=1", 7) == 0 || strstr(buf, "\nREADY=1"))) {
            ret = pid;
            break;
        }
    }
    close(nfd);
    unlink(e->notify);
    return ret;
}

static inline pid_t st_start(st_env *e, int timeout_ms)
{
    return st_start_ex(e, false, timeout_ms);
}

static inline cJSON *st_request(st_env *e, const char *sock, const char *json)
{
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/%s", e->dir, sock);
    char *r = sv_request(path, json, 10000, err, sizeof err);
    if (!r)
        return NULL;
    cJSON *j = cJSON_Parse(r);
    free(r);
    return j;
}

static inline cJSON *st_status(st_env *e)
{
    return st_request(e, "etssup.sock", "{\"op\":\"status\",\"id\":1}");
}

/* pids of the children in config order (0 when none); their number */
static inline int st_pids(st_env *e, pid_t *out)
{
    cJSON *st = st_status(e);
    ck_assert_ptr_nonnull(st);
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "children")) out[n++] = (pid_t)cJSON_GetObjectItem(c, "pid")->valueint;
    cJSON_Delete(st);
    return n;
}

/* etssup started (its READY=1 within timeout_ms) and the pids of its n
 * children, in config order, in p */
static inline void st_start_pids(st_env *e, int timeout_ms, pid_t *p, int n)
{
    ck_assert_int_gt(st_start(e, timeout_ms), 0);
    ck_assert_int_eq(st_pids(e, p), n);
}

/* child k runs with another pid than old, and every child is running */
static inline bool st_wait_settled(st_env *e, int k, pid_t old, int timeout_ms)
{
    long long deadline = st_now_ms() + timeout_ms;
    while (st_now_ms() < deadline) {
        cJSON *st = st_status(e);
        if (st) {
            bool ok = true;
            int i = 0;
            const cJSON *c;
            cJSON_ArrayForEach(c, cJSON_GetObjectItem(st, "children")) {
                int pid = cJSON_GetObjectItem(c, "pid")->valueint;
                ok &= strcmp(cJSON_GetObjectItem(c, "state")->valuestring, "running") == 0 && pid > 0;
                if (i == k)
                    ok &= pid != old;
                i++;
            }
            cJSON_Delete(st);
            if (ok)
                return true;
        }
        st_nap(10);
    }
    return false;
}

static inline bool st_wait_state(st_env *e, int k, const char *state, int timeout_ms)
{
    long long deadline = st_now_ms() + timeout_ms;
    while (st_now_ms() < deadline) {
        cJSON *st = st_status(e);
        cJSON *c = st ? cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), k) : NULL;
        bool ok = c && strcmp(cJSON_GetObjectItem(c, "state")->valuestring, state) == 0;
        cJSON_Delete(st);
        if (ok)
            return true;
        st_nap(10);
    }
    return false;
}

/* etssup's wait status, or -1 when it did not exit in time (then killed) */
static inline int st_wait_exit(st_env *e, int timeout_ms)
{
    if (e->pid <= 0)
        return e->exit_status;
    long long deadline = st_now_ms() + timeout_ms;
    for (;;) {
        int st;
        if (waitpid(e->pid, &st, WNOHANG) == e->pid) {
            e->pid = -1;
            e->exit_status = st;
            return st;
        }
        if (st_now_ms() >= deadline) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, &st, 0);
            e->pid = -1;
            return -1;
        }
        st_nap(5);
    }
}

static inline void st_kill9_sup(st_env *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        int st;
        waitpid(e->pid, &st, 0);
        e->pid = -1;
    }
}

static inline bool st_wait_gone(pid_t pid, int timeout_ms)
{
    long long deadline = st_now_ms() + timeout_ms;
    while (sv_alive(pid)) {
        if (st_now_ms() >= deadline)
            return false;
        st_nap(5);
    }
    return true;
}

/* Kills etssup (its children follow by PDEATHSIG), waits for them, removes
 * the dir and the instance's shm objects. */
static inline void st_cleanup(st_env *e)
{
    st_current = NULL;
    pid_t kids[64];
    int n = e->pid > 0 ? sv_children(e->pid, kids, 64) : 0;
    st_kill9_sup(e);
    for (int i = 0; i < n; i++) {
        if (!st_wait_gone(kids[i], 3000))
            kill(kids[i], SIGKILL);
    }
    char *out = NULL;
    rc_sh(&out, 10000, "rm -rf '%s'; rm -f /dev/shm/'%s'.* /dev/shm/'%s':*", e->dir, e->instance, e->instance);
    free(out);
}
#endif

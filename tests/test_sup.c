/* SPDX-License-Identifier: Apache-2.0 */
/* test_sup.c: etssup against the sup_child stub: the three strategies, the
 * intensity limit, readiness and its timeout, start and stop order, the
 * shutdown timeout, PDEATHSIG, reaping (no zombies, orphans included) and
 * the socket handoff.  Every test has its own runtime dir and instance;
 * etssup is started with its stderr in a file of that dir (the log is part
 * of what is checked) and waited for through its own READY=1. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "runcap.h"
#include "sock.h"
#include "svcrun.h"
#include "test_sup.h"
#include "testutil.h"

START_TEST(test_strategies)
{
    static const char *const strategies[] = {"one_for_one", "one_for_all", "rest_for_one"};
    const char *strategy = strategies[_i];
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"strategy\":\"%s\",\"intensity\":100,\"period\":10,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\"],\"shutdown\":2000},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\"],\"ready\":\"none\"}]}",
              strategy, e.stub, e.events, e.stub, e.events, e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    for (int k = 0; k < 3; k++) {
        pid_t before[3], after[3];
        st_pids(&e, before);
        for (int i = 0; i < 3; i++)
            ck_assert_int_gt(before[i], 0);
        ck_assert_int_eq(kill(before[k], SIGKILL), 0);
        ck_assert_msg(st_wait_settled(&e, k, before[k], 15000), "%s: child %d not restarted", strategy, k);
        st_pids(&e, after);
        ck_assert_int_ne(after[k], before[k]);
        for (int i = 0; i < 3; i++) {
            if (i == k)
                continue;
            bool restarted = strcmp(strategy, "one_for_all") == 0 || (strcmp(strategy, "rest_for_one") == 0 && i > k);
            if (restarted)
                ck_assert_msg(after[i] != before[i] && !sv_alive(before[i]),
                              "%s: killing child %d should restart child %d", strategy, k, i);
            else
                ck_assert_msg(after[i] == before[i], "%s: killing child %d should leave child %d alone", strategy,
                              k, i);
        }
        ck_assert(!tu_has_zombie_children(e.pid));
    }
    /* the report names the child, its pid, the signal and the action */
    char *log = rc_slurp(e.logpath);
    ck_assert_ptr_nonnull(log);
    ck_assert_msg(strstr(log, "child a (pid") && strstr(log, "killed by signal SIGKILL (Killed): restarting it"),
                  "%s", log);
    free(log);
    cJSON *st = st_status(&e);
    ck_assert_ptr_nonnull(st);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 2); /* killed last */
    ck_assert_str_eq(cJSON_GetObjectItem(ch, "last_exit")->valuestring, "killed by signal SIGKILL (Killed)");
    ck_assert_int_ge(cJSON_GetObjectItem(ch, "restarts")->valueint, 1);
    ck_assert_str_eq(cJSON_GetObjectItem(st, "strategy")->valuestring, strategy);
    cJSON_Delete(st);
    st_cleanup(&e);
}
END_TEST

START_TEST(test_intensity)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"strategy\":\"one_for_one\",\"intensity\":2,\"period\":30,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\"]}]}",
              e.stub, e.events, e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t p[2];
    for (int round = 0; round < 2; round++) {
        st_pids(&e, p);
        kill(p[1], SIGKILL);
        ck_assert(st_wait_settled(&e, 1, p[1], 15000));
    }
    st_pids(&e, p);
    kill(p[1], SIGKILL); /* the third restart within 30 s: one too many */
    int status = st_wait_exit(&e, 15000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3, "etssup should exit 3, wait status 0x%x", status);
    ck_assert(!sv_alive(p[0]));
    char *log = rc_slurp(e.logpath), *ev = rc_slurp(e.events);
    ck_assert_msg(strstr(log, "restart intensity reached (more than 2 restarts in 30 s; raise \"intensity\" or "
                              "\"period\" in the config)"),
                  "%s", log);
    ck_assert_ptr_nonnull(strstr(log, "exiting 3"));
    char line[64];
    snprintf(line, sizeof line, "term a %d", (int)p[0]);
    ck_assert_msg(strstr(ev, line) != NULL, "a was not stopped with SIGTERM:\n%s", ev);
    free(log);
    free(ev);
    st_cleanup(&e);
}
END_TEST

/* pid's state letter in /proc (R, S, Z, ...), 0 when it is gone */
static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* after the command name, which may hold anything */
    return p && p[1] == ' ' ? p[2] : 0;
}

/* A child and its hot standby die at once (etssup is stopped meanwhile,
 * so that it meets both deaths in one go, as within the 2 ms it defers a
 * child's death to, SUP_STANDBY_REAP_DELAY_MS): each death counts against
 * the intensity, as an OTP supervisor counts each child's exit and as the
 * standby's death counts when alone; with intensity 1 that is one too
 * many (they counted as one restart, and etssup went on). */
START_TEST(test_standby_both_dead_count_twice)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"strategy\":\"one_for_one\",\"intensity\":1,\"period\":30,\"children\":["
              "{\"id\":\"a\",\"ready\":\"notify\",\"standby\":true,"
              "\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]}]}",
              e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t child = 0, sb = 0;
    long long deadline = st_now_ms() + 15000;
    while (!sb && st_now_ms() < deadline) {
        cJSON *st = st_status(&e);
        const cJSON *c = st ? cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 0) : NULL;
        const cJSON *sp = c ? cJSON_GetObjectItem(c, "standby_pid") : NULL;
        if (sp && sp->valueint > 0) {
            sb = (pid_t)sp->valueint;
            child = (pid_t)cJSON_GetObjectItem(c, "pid")->valueint;
        }
        cJSON_Delete(st);
        if (!sb)
            st_nap(10);
    }
    ck_assert_msg(sb > 0 && child > 0, "no standby started");
    ck_assert_int_eq(kill(e.pid, SIGSTOP), 0);
    kill(child, SIGKILL);
    kill(sb, SIGKILL);
    deadline = st_now_ms() + 15000;
    while ((proc_state(child) != 'Z' || proc_state(sb) != 'Z') && st_now_ms() < deadline)
        st_nap(5);
    ck_assert_int_eq(proc_state(child), 'Z');
    ck_assert_int_eq(proc_state(sb), 'Z');
    ck_assert_int_eq(kill(e.pid, SIGCONT), 0);
    int status = st_wait_exit(&e, 15000);
    char *log = rc_slurp(e.logpath);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 3,
                  "etssup should exit 3 (two restarts, intensity 1), wait status 0x%x:\n%s", status, log);
    ck_assert_msg(strstr(log, "as well: an ordinary restart"), "%s", log);
    ck_assert_msg(strstr(log, "restart intensity reached (more than 1 restarts in 30 s"), "%s", log);
    free(log);
    st_cleanup(&e);
}
END_TEST

START_TEST(test_start_timeout)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--no-ready\"],"
              "\"start_timeout\":300},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\"]}]}",
              e.stub, e.events, e.stub, e.events, e.stub, e.events);
    ck_assert_int_eq(st_start(&e, 15000), 0); /* exits instead of READY=1 */
    int status = e.exit_status;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 4, "etssup should exit 4, wait status 0x%x", status);
    char *log = rc_slurp(e.logpath), *ev = rc_slurp(e.events);
    ck_assert_ptr_nonnull(strstr(log, "child b (pid"));
    ck_assert_ptr_nonnull(strstr(log, "did not send READY=1 within 300 ms"));
    ck_assert_msg(strstr(ev, "term a ") != NULL, "a should be stopped:\n%s", ev);
    ck_assert_msg(strstr(ev, "start c ") == NULL, "c must never start:\n%s", ev);
    ck_assert_msg(strstr(ev, "ready b ") == NULL, "%s", ev);
    free(log);
    free(ev);
    st_cleanup(&e);
}
END_TEST

/* b is slow to get ready; c must not start before b's READY=1 */
START_TEST(test_start_order)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\",\"--ready-delay\",\"100\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--ready-delay\",\"300\"]},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\"]}]}",
              e.stub, e.events, e.stub, e.events, e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    char *ev = rc_slurp(e.events);
    const char *want[] = {"start a ", "ready a ", "start b ", "ready b ", "start c ", "ready c "};
    const char *at = ev;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        const char *f = strstr(at, want[i]);
        ck_assert_msg(f != NULL, "\"%s\" missing or out of order in:\n%s", want[i], ev);
        at = f;
    }
    /* what each child inherited */
    ck_assert_ptr_nonnull(strstr(ev, "notify=1"));
    ck_assert_ptr_null(strstr(ev, "pgid_ok=0"));
    char want_rt[300];
    snprintf(want_rt, sizeof want_rt, "rt=%s inst=%s", e.dir, e.instance);
    ck_assert_msg(strstr(ev, want_rt) != NULL, "runtime dir/instance not exported:\n%s", ev);
    free(ev);
    st_cleanup(&e);
}
END_TEST

static bool st_term_b_seen(void *arg)
{
    char *ev = rc_slurp(arg);
    bool seen = ev && strstr(ev, "term b ");
    free(ev);
    return seen;
}

/* A second SIGTERM while stopping changes nothing, as in OTP: the child that
 * ignores SIGTERM still gets its shutdown time before SIGKILL. */
START_TEST(test_second_sigterm_keeps_timeouts)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--ignore-term\"],"
              "\"shutdown\":1500}]}",
              e.stub, e.events, e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    kill(e.pid, SIGTERM);
    ck_assert_msg(tu_eventually(st_term_b_seen, e.events, 10000), "b got no SIGTERM");
    kill(e.pid, SIGTERM);
    int status = st_wait_exit(&e, 15000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status 0x%x", status);
    char *log = rc_slurp(e.logpath);
    ck_assert_msg(strstr(log, "did not exit within 1500 ms of SIGTERM: sending SIGKILL") &&
                      strstr(log, "again while stopping"),
                  "b was not given its shutdown time after the second SIGTERM:\n%s", log);
    free(log);
    st_cleanup(&e);
}
END_TEST

START_TEST(test_shutdown_order)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--ignore-term\"],"
              "\"shutdown\":400},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\"],\"shutdown\":\"brutal_kill\"},"
              "{\"id\":\"d\",\"argv\":[\"%s\",\"--id\",\"d\",\"--events\",\"%s\"]}]}",
              e.stub, e.events, e.stub, e.events, e.stub, e.events, e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t p[4];
    st_pids(&e, p);
    long long t0 = st_now_ms();
    kill(e.pid, SIGTERM);
    int status = st_wait_exit(&e, 15000);
    long long took = st_now_ms() - t0;
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "wait status 0x%x", status);
    ck_assert_msg(took >= 400, "b ignores SIGTERM: etssup must wait its 400 ms (took %lld)", took);
    for (int i = 0; i < 4; i++)
        ck_assert(!sv_alive(p[i]));
    char *ev = rc_slurp(e.events), *log = rc_slurp(e.logpath);
    /* d, then c (brutal_kill: no SIGTERM), then b (ignores it), then a */
    const char *d = strstr(ev, "term d "), *b = strstr(ev, "term b "), *a = strstr(ev, "term a ");
    ck_assert_msg(d && b && a && d < b && b < a, "stop order wrong:\n%s", ev);
    ck_assert_msg(strstr(ev, "term c ") == NULL, "brutal_kill must not send SIGTERM:\n%s", ev);
    ck_assert_ptr_nonnull(strstr(log, "child b (pid"));
    ck_assert_ptr_nonnull(strstr(log, "did not exit within 400 ms of SIGTERM: sending SIGKILL"));
    const char *lc = strstr(log, "stopping child c"), *lb = strstr(log, "stopping child b");
    ck_assert(lc && lb && lc < lb);
    free(ev);
    free(log);
    st_cleanup(&e);
}
END_TEST

/* kill -9 of etssup: PDEATHSIG takes the children; a new etssup starts */
START_TEST(test_pdeathsig)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--serve\"],"
              "\"sockets\":[{\"name\":\"a\",\"path\":\"a.sock\"}]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--ignore-term\"]}]}",
              e.stub, e.stub);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t p[2];
    st_pids(&e, p);
    st_kill9_sup(&e);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(st_wait_gone(p[i], 5000), "child %d (pid %d) outlived etssup", i, (int)p[i]);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t q[2];
    st_pids(&e, q);
    ck_assert(q[0] > 0 && q[1] > 0 && q[0] != p[0]);
    char err[256];
    char path[300];
    snprintf(path, sizeof path, "%s/a.sock", e.dir);
    char *r = sv_request(path, "{\"op\":\"ping\",\"id\":1}", 5000, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    free(r);
    st_cleanup(&e);
}
END_TEST

/* exits and orphans: everything below etssup is reaped */
START_TEST(test_no_zombies)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"intensity\":1000,\"period\":1,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--orphan\",\"50\"]},"
              "{\"id\":\"t\",\"argv\":[\"%s\",\"--id\",\"t\",\"--exit-after\",\"50\",\"--exit-code\",\"0\"],"
              "\"restart\":\"transient\"},"
              "{\"id\":\"f\",\"argv\":[\"%s\",\"--id\",\"f\",\"--exit-after\",\"30\",\"--exit-code\",\"2\"],"
              "\"restart\":\"temporary\"}]}",
              e.stub, e.stub, e.stub);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    /* t ends normally (transient: stays down), f fails (temporary: stays down) */
    ck_assert(st_wait_state(&e, 1, "stopped", 5000));
    ck_assert(st_wait_state(&e, 2, "stopped", 5000));
    /* a's orphaned grandchild exits after 50 ms and must be reaped by etssup */
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL); /* nothing reports the grandchild's end: give it time, then look */
    ck_assert(!tu_has_zombie_children(e.pid));
    cJSON *st = st_status(&e);
    cJSON *arr = cJSON_GetObjectItem(st, "children");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "last_exit")->valuestring,
                     "exited normally (status 0)");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 2), "last_exit")->valuestring,
                     "exited with status 2");
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(arr, 1), "restarts")->valueint, 0);
    cJSON_Delete(st);
    char *log = rc_slurp(e.logpath);
    ck_assert_ptr_nonnull(strstr(log, "child f (pid"));
    ck_assert_ptr_nonnull(strstr(log, "restart type temporary; action: none, it is not restarted"));
    free(log);
    st_cleanup(&e);
}
END_TEST

/* a client connecting while the child is down waits in the backlog and is
 * served by the next incarnation, never refused */
START_TEST(test_socket_handoff)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\",\"--serve\",\"--serve-delay\","
              "\"300\"],\"sockets\":[{\"name\":\"srv\",\"path\":\"a.sock\"},{\"name\":\"two\",\"path\":\"a2.sock\"}]}]}",
              e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    char *ev = rc_slurp(e.events);
    ck_assert_msg(strstr(ev, "listen_fds=2 listen_pid_ok=1 fdnames=srv:two") != NULL, "%s", ev);
    free(ev);
    pid_t p[1];
    st_pids(&e, p);
    char path[300];
    snprintf(path, sizeof path, "%s/a.sock", e.dir);
    for (int round = 0; round < 3; round++) {
        kill(p[0], SIGKILL);
        ck_assert(st_wait_gone(p[0], 5000));
        int fd = sock_connect_unix(path);
        ck_assert_msg(fd >= 0, "connect while the child is down: %s", strerror(errno));
        const char *req = "{\"op\":\"ping\",\"id\":7}";
        ck_assert_int_eq(frame_write(fd, req, strlen(req), NULL, 0), 0);
        char *reply = NULL;
        size_t len;
        ck_assert_int_eq(frame_read(fd, &reply, &len, NULL, NULL, 0, 10000), 0);
        close(fd);
        cJSON *r = cJSON_Parse(reply);
        free(reply);
        pid_t served = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
        cJSON_Delete(r);
        ck_assert_int_ne(served, p[0]);
        st_pids(&e, p);
        ck_assert_int_eq(served, p[0]);
    }
    st_cleanup(&e);
}
END_TEST

/* a restart of the control socket, and a second etssup of the same instance */
START_TEST(test_control_and_lock)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\"]}]}",
              e.stub, e.stub);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t p[2], q[2];
    st_pids(&e, p);
    char err[256], path[300];
    snprintf(path, sizeof path, "%s/etssup.sock", e.dir);
    char *r = sv_request(path, "{\"op\":\"restart\",\"id\":3,\"child\":\"a\"}", 10000, err, sizeof err);
    ck_assert_msg(r != NULL, "%s", err);
    cJSON *j = cJSON_Parse(r);
    free(r);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    ck_assert_int_eq(cJSON_GetObjectItem(j, "id")->valueint, 3);
    pid_t newpid = (pid_t)cJSON_GetObjectItem(j, "pid")->valueint;
    cJSON_Delete(j);
    st_pids(&e, q);
    ck_assert_int_eq(q[0], newpid);
    ck_assert_int_ne(q[0], p[0]);
    ck_assert_int_eq(q[1], p[1]); /* a manual restart touches that child only */
    r = sv_request(path, "{\"op\":\"restart\",\"id\":4,\"child\":\"zz\"}", 10000, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(r, "\"not_found\""));
    free(r);
    r = sv_request(path, "{\"op\":\"frobnicate\",\"id\":5}", 10000, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(r, "\"unknown_op\""));
    free(r);

    /* a second supervisor of the same instance refuses to start */
    char *argv[] = {(char *)e.sup_bin, "--config", e.config, "--runtime-dir", e.dir, "--instance", e.instance, NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 10000);
    /* 70, as etsmgrd and etscounterd when they cannot serve (was 1, no sysexits code) */
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 70, "second etssup: 0x%x %s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "another etssup is already running"));
    free(out);
    st_pids(&e, q);
    ck_assert_int_eq(q[1], p[1]);

    r = sv_request(path, "{\"op\":\"stop\",\"id\":6}", 10000, err, sizeof err);
    ck_assert_ptr_nonnull(strstr(r, "\"ok\":true"));
    free(r);
    st = st_wait_exit(&e, 15000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert(!sv_alive(q[0]) && !sv_alive(q[1]));
    snprintf(path, sizeof path, "%s/etssup.sock", e.dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    st_cleanup(&e);
}
END_TEST

/* etssup started with e->config: head (strategy, intensity, period), then
 * children a (the stub as it is) and id, the stub with args more on its
 * command line (a JSON fragment: ",\"--ignore-term\"", or "") and the
 * config fields more (a fragment: "\"shutdown\":1500", or ""); p: their
 * pids, once etssup is ready within timeout_ms */
static void st_start_ab(st_env *e, const char *head, const char *id, const char *args, const char *more,
                        int timeout_ms, pid_t p[2])
{
    st_config(e,
              "{%s,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"%s\",\"argv\":[\"%s\",\"--id\",\"%s\",\"--events\",\"%s\"%s]%s%s}]}",
              head, e->stub, e->events, id, e->stub, id, e->events, args, *more ? "," : "", more);
    st_start_pids(e, timeout_ms, p, 2);
}

/* Both children die, the later one first: while it is restarting (waiting
 * for its READY=1, which in real life may need the earlier child, as
 * etscounterd needs etsmgrd), the earlier one is restarted at once, not
 * after the later one's start. */
START_TEST(test_earlier_child_not_held_by_later_start)
{
    st_env e;
    st_init(&e);
    pid_t p[2];
    st_start_ab(&e, "\"strategy\":\"one_for_one\",\"intensity\":100,\"period\":10", "b",
                ",\"--ready-delay\",\"4000\"", "\"start_timeout\":20000", 20000, p);
    kill(p[1], SIGKILL);
    ck_assert(st_wait_state(&e, 1, "starting", 5000));
    long long t0 = st_now_ms();
    kill(p[0], SIGKILL);
    /* a is running again with a new pid while b is still starting */
    bool a_back = false;
    while (!a_back && st_now_ms() - t0 < 3000) {
        cJSON *st = st_status(&e);
        cJSON *a = st ? cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 0) : NULL;
        cJSON *b = st ? cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 1) : NULL;
        a_back = a && b && strcmp(cJSON_GetObjectItem(a, "state")->valuestring, "running") == 0 &&
                 cJSON_GetObjectItem(a, "pid")->valueint != p[0] &&
                 strcmp(cJSON_GetObjectItem(b, "state")->valuestring, "starting") == 0;
        cJSON_Delete(st);
        if (!a_back)
            st_nap(10);
    }
    ck_assert_msg(a_back, "child a was not restarted while b was still starting");
    ck_assert(st_wait_settled(&e, 1, p[1], 15000));
    st_cleanup(&e);
}
END_TEST

/* A control request sent now and answered later (restart waits for the
 * child's readiness): the connected fd. */
static int st_ctl_send(st_env *e, const char *json)
{
    char path[300];
    snprintf(path, sizeof path, "%s/etssup.sock", e->dir);
    int fd = sock_connect_unix(path);
    ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(errno));
    ck_assert_int_eq(frame_write(fd, json, strlen(json), NULL, 0), 0);
    return fd;
}

/* its reply (NULL when none came within timeout_ms); closes fd */
static cJSON *st_ctl_reply(int fd, int timeout_ms)
{
    char *reply = NULL;
    size_t len;
    int r = frame_read(fd, &reply, &len, NULL, NULL, 0, timeout_ms);
    close(fd);
    if (r != 0)
        return NULL;
    cJSON *j = cJSON_Parse(reply);
    free(reply);
    return j;
}

typedef struct st_grep {
    const char *path, *text;
} st_grep;

static bool st_file_has(void *arg)
{
    st_grep *g = arg;
    char *t = rc_slurp(g->path);
    bool has = t && strstr(t, g->text);
    free(t);
    return has;
}

/* the pid on the first event line starting with prefix ("noready b "), 0 if none */
static pid_t st_event_pid(st_env *e, const char *prefix)
{
    char *ev = rc_slurp(e->events);
    const char *l = ev ? strstr(ev, prefix) : NULL;
    pid_t pid = l ? (pid_t)atoi(l + strlen(prefix)) : 0;
    free(ev);
    return pid;
}

/* path made (empty): the stub's --no-ready-if holds READY=1 back */
static void st_touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
    close(fd);
}

/* etssup started (strategy, intensity 10 in 60 s) with a, then child id
 * with --no-ready-if hold (hold: its path, made once both run, so that
 * id's next run sends no READY=1) and the config fields more; p: the pids */
static void st_start_held(st_env *e, const char *strategy, const char *id, const char *more, char *hold,
                          size_t len, pid_t p[2])
{
    snprintf(hold, len, "%s/hold", e->dir);
    char head[128], args[300];
    snprintf(head, sizeof head, "\"strategy\":\"%s\",\"intensity\":10,\"period\":60", strategy);
    snprintf(args, sizeof args, ",\"--no-ready-if\",\"%s\"", hold);
    st_start_ab(e, head, id, args, more, 15000, p);
    st_touch(hold);
}

/* The start the pending_stop tests share, after st_config (a, then b with
 * "--no-ready-if" hold, then c): etssup started; hold made, so that b's
 * next run sends no READY=1; a restart of b requested (request id rid) on
 * the connection returned, and b's new run seen starting (*b1); hold
 * removed (b's run after that one is ready by itself); a SIGKILLed, so
 * that b is marked to be stopped while it starts.  p: the first pids. */
static int st_restart_b_kill_a(st_env *e, const char *hold, int rid, pid_t p[3], pid_t *b1)
{
    st_start_pids(e, 15000, p, 3);
    st_touch(hold);
    char req[80];
    snprintf(req, sizeof req, "{\"op\":\"restart\",\"id\":%d,\"child\":\"b\"}", rid);
    int fd = st_ctl_send(e, req);
    st_grep noready = {e->events, "noready b "};
    ck_assert_msg(tu_eventually(st_file_has, &noready, 15000), "b was not restarted");
    *b1 = st_event_pid(e, "noready b ");
    ck_assert_int_gt(*b1, 0);
    ck_assert_int_eq(unlink(hold), 0);
    ck_assert_int_eq(kill(p[0], SIGKILL), 0);
    return fd;
}

static int st_child_int(cJSON *st, int k, const char *field)
{
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), k);
    cJSON *v = c ? cJSON_GetObjectItem(c, field) : NULL;
    return v ? v->valueint : -1;
}

/* b is starting (restarted on request, no READY=1 yet) when a dies
 * (rest_for_one): b waits to be stopped while c, which ignores SIGTERM,
 * takes its shutdown time.  b's start timeout used to go off meanwhile:
 * SIGKILL of b while c still ran (out of reverse order), and its exit, seen
 * as a failed start, counted a second restart for a's one death (intensity
 * 1: etssup gave up, exit 3).  Now b is stopped in its turn, after c, with
 * SIGTERM, and one restart is counted. */
START_TEST(test_pending_stop_no_start_timeout)
{
    st_env e;
    st_init(&e);
    char hold[200];
    snprintf(hold, sizeof hold, "%s/hold", e.dir);
    st_config(&e,
              "{\"strategy\":\"rest_for_one\",\"intensity\":1,\"period\":60,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--no-ready-if\",\"%s\"],"
              "\"start_timeout\":1500},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\",\"--ignore-term\"],"
              "\"shutdown\":3000}]}",
              e.stub, e.events, e.stub, e.events, hold, e.stub, e.events);
    pid_t p[3], b1;
    int fd = st_restart_b_kill_a(&e, hold, 9, p, &b1);

    /* the restart request is answered once the new b is ready */
    cJSON *r = st_ctl_reply(fd, 15000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "restart b: %s", rs ? rs : "no reply");
    pid_t b2 = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
    free(rs);
    cJSON_Delete(r);
    ck_assert(st_wait_settled(&e, 0, p[0], 15000));
    pid_t q[3];
    st_pids(&e, q);
    ck_assert_int_eq(q[1], b2);
    ck_assert(q[1] != b1 && q[2] != p[2]);
    ck_assert_int_gt(e.pid, 0);
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0); /* etssup still runs */

    cJSON *st = st_status(&e);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "recent_restarts")->valueint, 1);
    ck_assert_int_eq(st_child_int(st, 0, "restarts"), 1);
    ck_assert_int_eq(st_child_int(st, 1, "restarts"), 2); /* the request, then a's death */
    ck_assert_int_eq(st_child_int(st, 2, "restarts"), 1);
    cJSON_Delete(st);

    /* reverse order: b got its SIGTERM after c was gone */
    char *log = rc_slurp(e.logpath), *ev = rc_slurp(e.events);
    char c_gone[64], b_stop[64], b_term[64];
    snprintf(c_gone, sizeof c_gone, "child c (pid %d) stopped", (int)p[2]);
    snprintf(b_stop, sizeof b_stop, "stopping child b (pid %d) with SIGTERM", (int)b1);
    snprintf(b_term, sizeof b_term, "term b %d", (int)b1);
    const char *lc = strstr(log, c_gone), *lb = strstr(log, b_stop);
    ck_assert_msg(lc && lb && lc < lb, "b must be stopped after c:\n%s", log);
    ck_assert_msg(strstr(ev, b_term), "b got no SIGTERM:\n%s", ev);
    ck_assert_msg(!strstr(log, "did not send READY=1"), "%s", log);
    free(log);
    free(ev);
    st_cleanup(&e);
}
END_TEST

/* how many event lines start with prefix ("start b ") */
static int st_event_count(st_env *e, const char *prefix)
{
    char *ev = rc_slurp(e->events);
    int n = 0;
    size_t l = strlen(prefix);
    for (const char *p = ev; p && *p;) {
        n += strncmp(p, prefix, l) == 0;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    free(ev);
    return n;
}

/* the event line "what id pid" (prefix of a line), or NULL; in ev */
static const char *st_event_at(const char *ev, const char *what, const char *id, pid_t pid)
{
    char l[96];
    snprintf(l, sizeof l, "%s %s %d", what, id, (int)pid);
    for (const char *p = ev; p && *p;) {
        if (strncmp(p, l, strlen(l)) == 0 && (p[strlen(l)] == ' ' || p[strlen(l)] == '\n'))
            return p;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return NULL;
}

/* b is starting (restarted on request, no READY=1 yet) when a dies, and is
 * marked to be stopped (one_for_all and rest_for_one alike) while c, which
 * ignores SIGTERM, takes its shutdown time; then b exits on its own, with
 * status 1, before its turn.  That exit is its stop: not a failed start
 * counted as a second restart for a's one death (intensity 1: etssup would
 * give up, exit 3), not a restart of b ahead of a; b gets no SIGTERM (it is
 * gone), and once c is stopped, a, b and c start again in that order, each
 * once, and the restart request is answered with the new b. */
START_TEST(test_pending_stop_starting_exits)
{
    static const char *const strategies[] = {"one_for_all", "rest_for_one"};
    const char *strategy = strategies[_i];
    st_env e;
    st_init(&e);
    char hold[200];
    snprintf(hold, sizeof hold, "%s/hold", e.dir);
    st_config(&e,
              "{\"strategy\":\"%s\",\"intensity\":1,\"period\":60,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--no-ready-if\",\"%s\","
              "\"--exit-code\",\"1\"],\"start_timeout\":20000},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\",\"--ignore-term\"],"
              "\"shutdown\":3000}]}",
              strategy, e.stub, e.events, e.stub, e.events, hold, e.stub, e.events);
    pid_t p[3], b1;
    int fd = st_restart_b_kill_a(&e, hold, 7, p, &b1);
    char c_term[64];
    snprintf(c_term, sizeof c_term, "term c %d", (int)p[2]);
    st_grep stopping = {e.events, c_term};
    ck_assert_msg(tu_eventually(st_file_has, &stopping, 15000), "%s: c was not stopped", strategy);
    ck_assert(st_wait_state(&e, 1, "starting", 1000)); /* b waits for its turn, not yet stopped */
    ck_assert_int_eq(kill(b1, SIGUSR1), 0);           /* and exits on its own */

    cJSON *r = st_ctl_reply(fd, 15000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "%s: restart b: %s", strategy,
                  rs ? rs : "no reply");
    pid_t b2 = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
    free(rs);
    cJSON_Delete(r);
    ck_assert_msg(st_wait_settled(&e, 0, p[0], 15000), "%s: a, b, c do not all run again", strategy);
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0); /* etssup still runs */
    pid_t q[3];
    st_pids(&e, q);
    ck_assert_int_eq(q[1], b2);
    ck_assert(q[0] != p[0] && q[1] != b1 && q[2] != p[2]);
    ck_assert(!sv_alive(p[0]) && !sv_alive(b1) && !sv_alive(p[2]));

    cJSON *st = st_status(&e);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "recent_restarts")->valueint, 1);
    ck_assert_int_eq(st_child_int(st, 0, "restarts"), 1);
    ck_assert_int_eq(st_child_int(st, 1, "restarts"), 2); /* the request, then a's death */
    ck_assert_int_eq(st_child_int(st, 2, "restarts"), 1);
    cJSON_Delete(st);

    /* each started once more, in order, after b's exit and c's stop */
    ck_assert_int_eq(st_event_count(&e, "start a "), 2);
    ck_assert_int_eq(st_event_count(&e, "start b "), 3);
    ck_assert_int_eq(st_event_count(&e, "start c "), 2);
    char *log = rc_slurp(e.logpath), *ev = rc_slurp(e.events);
    const char *b_exit = st_event_at(ev, "exit", "b", b1), *a2 = st_event_at(ev, "start", "a", q[0]),
               *b2s = st_event_at(ev, "start", "b", q[1]), *c2 = st_event_at(ev, "start", "c", q[2]);
    ck_assert_msg(b_exit && a2 && b2s && c2 && b_exit < a2 && a2 < b2s && b2s < c2, "%s: order wrong:\n%s",
                  strategy, ev);
    ck_assert_msg(!st_event_at(ev, "term", "b", b1), "%s: b got a SIGTERM after its exit:\n%s", strategy, ev);
    char b_gone[96], c_gone[64], a_start[64];
    snprintf(b_gone, sizeof b_gone, "child b (pid %d) exited with status 1 while waiting to be stopped", (int)b1);
    snprintf(c_gone, sizeof c_gone, "child c (pid %d) stopped", (int)p[2]);
    snprintf(a_start, sizeof a_start, "started child a (pid %d)", (int)q[0]);
    const char *lb = strstr(log, b_gone), *lc = strstr(log, c_gone), *la = strstr(log, a_start);
    ck_assert_msg(lb && lc && la && lb < lc && lc < la, "%s: b must exit before c's stop, a start after it:\n%s",
                  strategy, log);
    ck_assert_msg(!strstr(log, "restart intensity reached"), "%s", log);
    free(log);
    free(ev);
    st_cleanup(&e);
}
END_TEST

/* A restart on request of b, still starting, when a dies (rest_for_one):
 * b is marked to be stopped and waits while c, which ignores SIGTERM, takes
 * its shutdown time; meanwhile b sends READY=1.  That incarnation is about
 * to be stopped: the request used to be answered ok with its pid at once
 * (or, b temporary, ok for a child stopped and never started again).  Now
 * the answer waits for the b that stays, and a temporary b's is "exited". */
START_TEST(test_pending_stop_ready_not_answered)
{
    bool temporary = _i == 1;
    st_env e;
    st_init(&e);
    char hold[200];
    snprintf(hold, sizeof hold, "%s/hold", e.dir);
    st_config(&e,
              "{\"strategy\":\"rest_for_one\",\"intensity\":10,\"period\":60,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\",\"--no-ready-if\",\"%s\"],"
              "\"restart\":\"%s\",\"start_timeout\":20000},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\",\"--ignore-term\"],"
              "\"shutdown\":3000}]}",
              e.stub, e.events, e.stub, e.events, hold, temporary ? "temporary" : "permanent", e.stub, e.events);
    pid_t p[3], b1;
    int fd = st_restart_b_kill_a(&e, hold, 8, p, &b1);
    char c_term[64];
    snprintf(c_term, sizeof c_term, "term c %d", (int)p[2]);
    st_grep stopping = {e.events, c_term};
    ck_assert_msg(tu_eventually(st_file_has, &stopping, 15000), "c was not stopped");
    ck_assert_int_eq(kill(b1, SIGUSR2), 0); /* READY=1 while it waits for its turn */
    char b_ready[64];
    snprintf(b_ready, sizeof b_ready, "child b (pid %d) is ready", (int)b1);
    st_grep ready = {e.logpath, b_ready};
    ck_assert_msg(tu_eventually(st_file_has, &ready, 15000), "etssup did not see b's READY=1");

    cJSON *r = st_ctl_reply(fd, 15000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r, "restart b: no answer");
    ck_assert_int_eq(cJSON_GetObjectItem(r, "id")->valueint, 8);
    /* the answer came after b1 was stopped, in its turn after c */
    ck_assert_msg(!sv_alive(p[2]) && !sv_alive(b1), "restart b answered while b (pid %d) waits to be stopped: %s",
                  (int)b1, rs);
    if (temporary) {
        cJSON *err = cJSON_GetObjectItem(r, "error");
        ck_assert_msg(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")) && cJSON_IsString(err) &&
                          strcmp(err->valuestring, "exited") == 0,
                      "restart of temporary b: %s", rs);
        ck_assert(st_wait_state(&e, 2, "running", 15000));
        pid_t q[3];
        st_pids(&e, q);
        ck_assert_int_eq(q[1], 0); /* not started again */
    } else {
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "restart b: %s", rs);
        pid_t b2 = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
        ck_assert_msg(b2 > 0 && b2 != b1, "restart b: %s", rs);
        ck_assert(st_wait_settled(&e, 0, p[0], 15000));
        pid_t q[3];
        st_pids(&e, q);
        ck_assert_int_eq(q[1], b2);
    }
    free(rs);
    cJSON_Delete(r);
    /* b1 was stopped in its turn, after c, with SIGTERM */
    char *ev = rc_slurp(e.events);
    const char *tc = st_event_at(ev, "term", "c", p[2]), *tb = st_event_at(ev, "term", "b", b1);
    ck_assert_msg(tc && tb && tc < tb, "b must be stopped after c:\n%s", ev);
    free(ev);
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0);
    st_cleanup(&e);
}
END_TEST

/* Two causes to restart child id (p[1]), which ignores SIGTERM, while it
 * is being stopped: a restart request (id 3), and a's death (p[0]) under a
 * strategy that stops id too; the request first when request_first.  Each
 * is seen taken by etssup before the next: id's SIGTERM, a's death report,
 * the request's log line.  The connection the reply comes on. */
static int st_request_and_kill_a(st_env *e, const char *id, const pid_t p[2], bool request_first)
{
    char term[64], a_dead[64], asked[96], req[64];
    snprintf(term, sizeof term, "term %s %d", id, (int)p[1]);
    snprintf(a_dead, sizeof a_dead, "child a (pid %d) killed", (int)p[0]);
    snprintf(asked, sizeof asked, "restarting child %s (pid %d) on request", id, (int)p[1]);
    snprintf(req, sizeof req, "{\"op\":\"restart\",\"id\":3,\"child\":\"%s\"}", id);
    st_grep stopping = {e->events, term}, dead = {e->logpath, a_dead}, taken = {e->logpath, asked};
    int fd;
    if (request_first) {
        fd = st_ctl_send(e, req);
        ck_assert_msg(tu_eventually(st_file_has, &stopping, 15000), "%s was not stopped", id);
        ck_assert_int_eq(kill(p[0], SIGKILL), 0);
        ck_assert_msg(tu_eventually(st_file_has, &dead, 15000), "a's death not seen");
    } else {
        ck_assert_int_eq(kill(p[0], SIGKILL), 0);
        ck_assert_msg(tu_eventually(st_file_has, &stopping, 15000), "%s was not stopped", id);
        fd = st_ctl_send(e, req);
        ck_assert_msg(tu_eventually(st_file_has, &taken, 15000), "etssup did not take the restart request");
    }
    return fd;
}

/* b, which ignores SIGTERM, is being stopped for one restart when a second
 * cause to restart it comes: a restart request after a's death marked it
 * (variant 0), or a's death after a restart request (variant 1).  One
 * restart happens, b's old process is stopped once and one new one
 * started: its "restarts" is 1 (it was 2, each cause counted). */
START_TEST(test_pending_stop_restart_counted_once)
{
    bool request_first = _i == 1;
    st_env e;
    st_init(&e);
    pid_t p[2];
    st_start_ab(&e, "\"strategy\":\"rest_for_one\",\"intensity\":10,\"period\":60", "b", ",\"--ignore-term\"",
                "\"shutdown\":1500", 15000, p);
    int fd = st_request_and_kill_a(&e, "b", p, request_first);
    cJSON *r = st_ctl_reply(fd, 15000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "restart b: %s", rs ? rs : "no reply");
    /* queued behind the stop under way, as systemctl restart of a stopping
     * unit is: answered once the new b is ready, with its pid */
    pid_t b2 = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
    ck_assert_msg(b2 > 0 && b2 != p[1] && !sv_alive(p[1]), "restart b answered before b was restarted: %s", rs);
    free(rs);
    cJSON_Delete(r);
    ck_assert(st_wait_settled(&e, 0, p[0], 15000));
    pid_t q[2];
    st_pids(&e, q);
    ck_assert_int_eq(q[1], b2);
    ck_assert_int_eq(st_event_count(&e, "start b "), 2);
    cJSON *st = st_status(&e);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(st_child_int(st, 0, "restarts"), 1);
    ck_assert_int_eq(st_child_int(st, 1, "restarts"), 1);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "recent_restarts")->valueint, 1);
    cJSON_Delete(st);
    st_cleanup(&e);
}
END_TEST

/* etssup started (one_for_one, intensity 3 in 60 s) with a, and t of
 * restart type restart, whose program is a copy of the stub (in copy), so
 * that the test can take away its exec permission; p: their pids */
static void st_start_with_copy(st_env *e, const char *restart, char *copy, size_t len, pid_t p[2])
{
    snprintf(copy, len, "%s/stubcopy", e->dir);
    char *out = NULL;
    ck_assert_int_eq(rc_sh(&out, 10000, "cp '%s' '%s'", e->stub, copy), 0);
    free(out);
    st_config(e,
              "{\"strategy\":\"one_for_one\",\"intensity\":3,\"period\":60,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"t\",\"argv\":[\"%s\",\"--id\",\"t\",\"--events\",\"%s\"],\"restart\":\"%s\"}]}",
              e->stub, e->events, copy, e->events, restart);
    st_start_pids(e, 15000, p, 2);
}

/* A restart request of a temporary child that ended, whose program can no
 * longer be executed: the request is answered start_failed, and etssup
 * and the other children go on (a temporary child is never started again
 * by etssup itself, so its failed start is not retried). */
START_TEST(test_restart_request_spawn_fails)
{
    st_env e;
    st_init(&e);
    char copy[200];
    pid_t p[2];
    st_start_with_copy(&e, "temporary", copy, sizeof copy, p);
    ck_assert_int_eq(kill(p[1], SIGKILL), 0);
    ck_assert(st_wait_state(&e, 1, "stopped", 5000));
    ck_assert_int_eq(chmod(copy, 0600), 0);
    int fd = st_ctl_send(&e, "{\"op\":\"restart\",\"id\":4,\"child\":\"t\"}");
    cJSON *r = st_ctl_reply(fd, 10000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON *err = r ? cJSON_GetObjectItem(r, "error") : NULL;
    ck_assert_msg(err && cJSON_IsString(err) && strcmp(err->valuestring, "start_failed") == 0, "restart t: %s",
                  rs ? rs : "no reply");
    free(rs);
    cJSON_Delete(r);
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0); /* etssup still runs */
    pid_t q[2];
    ck_assert_int_eq(st_pids(&e, q), 2);
    ck_assert_int_eq(q[0], p[0]);
    ck_assert_int_eq(q[1], 0);
    cJSON *st = st_status(&e);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "recent_restarts")->valueint, 0);
    char why[300];
    snprintf(why, sizeof why, "failed to start: execve %s: Permission denied", copy);
    cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 1);
    ck_assert_str_eq(cJSON_GetObjectItem(t, "last_exit")->valuestring, why);
    cJSON_Delete(st);
    st_cleanup(&e);
}
END_TEST

/* A permanent child whose program can no longer be executed: it is tried
 * again at once (OTP's way), so the intensity is spent within
 * milliseconds and etssup exits 3.  Each attempt names the child, the
 * program and the errno's words, and so do the line that gives up (which
 * used to advise raising the intensity, no cure for it) and the last line
 * of all, the one systemctl status shows (which used to say only
 * "restart intensity reached"). */
START_TEST(test_spawn_fails_intensity)
{
    st_env e;
    st_init(&e);
    char copy[200];
    pid_t p[2];
    st_start_with_copy(&e, "permanent", copy, sizeof copy, p);
    ck_assert_int_eq(chmod(copy, 0600), 0);
    ck_assert_int_eq(kill(p[1], SIGKILL), 0);
    int status = st_wait_exit(&e, 15000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3, "etssup should exit 3, wait status 0x%x", status);
    char *log = rc_slurp(e.logpath);
    ck_assert_ptr_nonnull(log);
    char attempt[300], gives_up[400], last[400];
    snprintf(attempt, sizeof attempt, "cannot start child t: execve %s: Permission denied", copy);
    snprintf(gives_up, sizeof gives_up,
             "child t cannot be started, its program cannot be executed (execve %s: Permission denied)", copy);
    snprintf(last, sizeof last,
             "exiting with status 3 (restart intensity reached: child t cannot be started: execve %s: "
             "Permission denied)\n",
             copy);
    ck_assert_msg(strstr(log, attempt), "%s", log);
    ck_assert_msg(strstr(log, gives_up), "%s", log);
    ck_assert_msg(!strstr(log, "raise \"intensity\""), "%s", log);
    const char *tail = strstr(log, last);
    ck_assert_msg(tail && tail[strlen(last)] == 0, "the last line should say why:\n%s", log);
    free(log);
    ck_assert(!sv_alive(p[0]));
    st_cleanup(&e);
}
END_TEST

/* b sends no READY=1 and its start timeout SIGKILLs it; a restart request
 * of b comes before etssup reaps it.  The test holds that window open by
 * tracing b: a traced process's death is told to its tracer, and to its
 * parent (etssup) only once the tracer has reaped it.  The request used to
 * mark b to be stopped, and its exit then passed for that stop ("child b
 * ... stopped"): the failed start was forgiven, not counted towards the
 * intensity (recent_restarts 1).  Now it counts (2), b is restarted as a
 * permanent child is, and that restart answers the request. */
START_TEST(test_restart_request_after_start_timeout)
{
    st_env e;
    st_init(&e);
    char hold[200];
    pid_t p[2];
    st_start_held(&e, "one_for_one", "b", "\"start_timeout\":1000", hold, sizeof hold, p);
    ck_assert_int_eq(kill(p[1], SIGKILL), 0);
    st_grep noready = {e.events, "noready b "};
    ck_assert_msg(tu_eventually(st_file_has, &noready, 15000), "b was not restarted");
    pid_t b1 = st_event_pid(&e, "noready b ");
    ck_assert_int_gt(b1, 0);
    ck_assert_msg(ptrace(PTRACE_SEIZE, b1, NULL, (void *)(long)PTRACE_O_EXITKILL) == 0,
                  "PTRACE_SEIZE of b (pid %d), which has 1000 ms before its start timeout: %s", (int)b1,
                  strerror(errno));
    ck_assert_int_eq(unlink(hold), 0); /* the b after this one gets ready */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    ck_assert_int_eq(waitid(P_PID, (id_t)b1, &si, WEXITED | WNOWAIT), 0); /* the start timeout's SIGKILL */
    ck_assert_int_eq(si.si_code, CLD_KILLED);
    int fd = st_ctl_send(&e, "{\"op\":\"restart\",\"id\":6,\"child\":\"b\"}");
    char asked[96];
    snprintf(asked, sizeof asked, "restarting child b (pid %d) on request", (int)b1);
    st_grep taken = {e.logpath, asked};
    ck_assert_msg(tu_eventually(st_file_has, &taken, 15000), "etssup did not take the restart request");
    int st;
    ck_assert_int_eq(waitpid(b1, &st, 0), b1); /* now etssup learns of b's death */

    cJSON *r = st_ctl_reply(fd, 15000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "restart b: %s", rs ? rs : "no reply");
    pid_t b2 = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
    ck_assert_msg(b2 > 0 && b2 != b1, "restart b: %s", rs);
    free(rs);
    cJSON_Delete(r);
    cJSON *sj = st_status(&e);
    ck_assert_ptr_nonnull(sj);
    ck_assert_int_eq(cJSON_GetObjectItem(sj, "recent_restarts")->valueint, 2); /* the kill, the failed start */
    ck_assert_int_eq(st_child_int(sj, 1, "restarts"), 2);
    ck_assert_int_eq(st_child_int(sj, 1, "pid"), b2);
    cJSON_Delete(sj);
    char *log = rc_slurp(e.logpath);
    char report[128];
    snprintf(report, sizeof report, "child b (pid %d) did not send READY=1 within 1000 ms: restarting it", (int)b1);
    ck_assert_msg(strstr(log, report), "b's failed start was not dealt with as one:\n%s", log);
    free(log);
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0); /* etssup still runs */
    st_cleanup(&e);
}
END_TEST

/* b's standby pid (0: none), -1 when the status fails */
static int st_standby_pid(st_env *e, int k)
{
    cJSON *st = st_status(e);
    int pid = st ? st_child_int(st, k, "standby_pid") : -1;
    cJSON_Delete(st);
    return pid;
}

typedef struct st_sb_wait {
    st_env *e;
    int k;
    pid_t other; /* a standby other than this one */
} st_sb_wait;

static bool st_has_new_standby(void *arg)
{
    st_sb_wait *w = arg;
    int pid = st_standby_pid(w->e, w->k);
    return pid > 0 && pid != w->other;
}

/* rest_for_one: a dies; b (with a hot standby) waits to be stopped while c,
 * which ignores SIGTERM, takes its shutdown time, and dies on its own
 * meanwhile.  Its standby used to be left alive (the stop loop kills the
 * standbys of marked children only, and b no longer was), and the start
 * loop waited for it to go before starting b: b and c were never started
 * again.  Now it is killed with b's death, and all three run again. */
START_TEST(test_pending_stop_standby_dies)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"strategy\":\"rest_for_one\",\"intensity\":10,\"period\":60,\"children\":["
              "{\"id\":\"a\",\"argv\":[\"%s\",\"--id\",\"a\",\"--events\",\"%s\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\",\"--events\",\"%s\"],\"standby\":true},"
              "{\"id\":\"c\",\"argv\":[\"%s\",\"--id\",\"c\",\"--events\",\"%s\",\"--ignore-term\"],"
              "\"shutdown\":3000}]}",
              e.stub, e.events, e.stub, e.events, e.stub, e.events);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    st_sb_wait w = {&e, 1, 0};
    ck_assert_msg(tu_eventually(st_has_new_standby, &w, 5000), "b got no standby");
    pid_t p[3];
    ck_assert_int_eq(st_pids(&e, p), 3);
    pid_t sb = st_standby_pid(&e, 1);
    ck_assert_int_gt(sb, 0);
    ck_assert_int_eq(kill(p[0], SIGKILL), 0);
    char c_term[64];
    snprintf(c_term, sizeof c_term, "term c %d", (int)p[2]);
    st_grep stopping = {e.events, c_term};
    ck_assert_msg(tu_eventually(st_file_has, &stopping, 15000), "c was not stopped");
    ck_assert_int_eq(kill(p[1], SIGKILL), 0); /* while c still takes its shutdown time */
    ck_assert_msg(st_wait_settled(&e, 0, p[0], 15000), "a, b, c do not all run again");
    pid_t q[3];
    st_pids(&e, q);
    ck_assert(q[1] != p[1] && q[2] != p[2]);
    ck_assert_msg(st_wait_gone(sb, 5000), "b's old standby (pid %d) is still alive", (int)sb);
    w.other = sb;
    ck_assert_msg(tu_eventually(st_has_new_standby, &w, 5000), "b got no new standby");
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0); /* etssup still runs */
    st_cleanup(&e);
}
END_TEST

/* A restart on request of a temporary child, still starting, when a
 * sibling dies (one_for_all): the child is stopped and, temporary, not
 * started again.  The request used to wait for a readiness that never
 * came (until the client's timeout); now it is answered "exited". */
START_TEST(test_pending_stop_temporary_restart_answered)
{
    st_env e;
    st_init(&e);
    char hold[200];
    pid_t p[2];
    st_start_held(&e, "one_for_all", "t", "\"restart\":\"temporary\",\"start_timeout\":20000", hold, sizeof hold, p);
    int fd = st_ctl_send(&e, "{\"op\":\"restart\",\"id\":5,\"child\":\"t\"}");
    st_grep noready = {e.events, "noready t "};
    ck_assert_msg(tu_eventually(st_file_has, &noready, 15000), "t was not restarted");
    pid_t t1 = st_event_pid(&e, "noready t ");
    ck_assert_int_eq(kill(p[0], SIGKILL), 0);

    cJSON *r = st_ctl_reply(fd, 8000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r, "restart t: no answer within 8 s");
    cJSON *err = cJSON_GetObjectItem(r, "error"), *msg = cJSON_GetObjectItem(r, "message");
    ck_assert_msg(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")) && cJSON_IsString(err) &&
                      strcmp(err->valuestring, "exited") == 0 && cJSON_IsString(msg) &&
                      strstr(msg->valuestring, "child t: ") && strstr(msg->valuestring, "temporary"),
                  "restart t: %s", rs);
    ck_assert_int_eq(cJSON_GetObjectItem(r, "id")->valueint, 5);
    free(rs);
    cJSON_Delete(r);
    ck_assert(!sv_alive(t1));
    ck_assert(st_wait_state(&e, 0, "running", 5000));
    pid_t q[2];
    st_pids(&e, q);
    ck_assert(q[0] > 0 && q[0] != p[0]);
    ck_assert_int_eq(q[1], 0); /* t is not started again */
    cJSON *st = st_status(&e);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 1), "state")->valuestring,
                     "stopped");
    cJSON_Delete(st);
    st_cleanup(&e);
}
END_TEST

/* A temporary child t, which ignores SIGTERM, is being stopped when two
 * decisions about it meet: a restart request, and a sibling's death
 * (one_for_all), whose restart stops a temporary child for good.  The
 * later one decides, as a later job replaces an earlier one in systemd:
 * request first (variant 0), t is not started again, the request is
 * answered "exited" and the restart it had counted is taken back (t's
 * restarts 0); death first (variant 1), the request starts t again, ok
 * with its new pid, restarts 1.  Either way a's death is the one restart
 * counted towards the intensity. */
START_TEST(test_pending_stop_temporary_later_decides)
{
    bool request_first = _i == 0;
    st_env e;
    st_init(&e);
    pid_t p[2];
    st_start_ab(&e, "\"strategy\":\"one_for_all\",\"intensity\":10,\"period\":60", "t", ",\"--ignore-term\"",
                "\"restart\":\"temporary\",\"shutdown\":20000", 15000, p);
    int fd = st_request_and_kill_a(&e, "t", p, request_first);
    ck_assert_int_eq(kill(p[1], SIGUSR1), 0); /* t exits, its stop over */

    cJSON *r = st_ctl_reply(fd, 15000);
    char *rs = r ? cJSON_PrintUnformatted(r) : NULL;
    ck_assert_msg(r, "restart t: no answer");
    cJSON *err = cJSON_GetObjectItem(r, "error");
    pid_t t2 = 0;
    if (request_first)
        ck_assert_msg(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")) && cJSON_IsString(err) &&
                          strcmp(err->valuestring, "exited") == 0,
                      "restart t, then a's death: %s", rs);
    else {
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "a's death, then restart t: %s", rs);
        t2 = (pid_t)cJSON_GetObjectItem(r, "pid")->valueint;
        ck_assert_msg(t2 > 0 && t2 != p[1], "%s", rs);
    }
    free(rs);
    cJSON_Delete(r);
    ck_assert(st_wait_state(&e, 0, "running", 15000));
    cJSON *st = st_status(&e);
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(cJSON_GetObjectItem(st, "recent_restarts")->valueint, 1);
    ck_assert_int_eq(st_child_int(st, 0, "restarts"), 1);
    ck_assert_int_eq(st_child_int(st, 1, "restarts"), request_first ? 0 : 1);
    ck_assert_int_eq(st_child_int(st, 1, "pid"), t2);
    cJSON_Delete(st);
    ck_assert_int_eq(st_event_count(&e, "start t "), request_first ? 1 : 2);
    ck_assert_int_eq(waitpid(e.pid, NULL, WNOHANG), 0); /* etssup still runs */
    st_cleanup(&e);
}
END_TEST

Suite *sup_suite(void)
{
    Suite *s = suite_create("sup");
    TCase *tc = tcase_create("strategies");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_strategies, 0, 3);
    suite_add_tcase(s, tc);
    tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_intensity);
    tcase_add_test(tc, test_standby_both_dead_count_twice);
    tcase_add_test(tc, test_start_timeout);
    tcase_add_test(tc, test_start_order);
    tcase_add_test(tc, test_earlier_child_not_held_by_later_start);
    tcase_add_test(tc, test_shutdown_order);
    tcase_add_test(tc, test_second_sigterm_keeps_timeouts);
    tcase_add_test(tc, test_pdeathsig);
    tcase_add_test(tc, test_no_zombies);
    tcase_add_test(tc, test_socket_handoff);
    tcase_add_test(tc, test_control_and_lock);
    tcase_add_test(tc, test_restart_request_spawn_fails);
    tcase_add_test(tc, test_spawn_fails_intensity);
    tcase_add_test(tc, test_restart_request_after_start_timeout);
    suite_add_tcase(s, tc);
    /* children that wait to be stopped for a sibling's restart */
    tc = tcase_create("pending_stop");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pending_stop_no_start_timeout);
    tcase_add_test(tc, test_pending_stop_standby_dies);
    tcase_add_test(tc, test_pending_stop_temporary_restart_answered);
    tcase_add_loop_test(tc, test_pending_stop_starting_exits, 0, 2);
    tcase_add_loop_test(tc, test_pending_stop_ready_not_answered, 0, 2);
    tcase_add_loop_test(tc, test_pending_stop_restart_counted_once, 0, 2);
    tcase_add_loop_test(tc, test_pending_stop_temporary_later_decides, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

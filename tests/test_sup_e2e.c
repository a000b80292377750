/* SPDX-License-Identifier: Apache-2.0 */
/* test_sup_e2e.c: etssup with its built-in default, the real etsmgrd and
 * etscounterd found next to it.  Counting goes on across a SIGKILL of each
 * child, and across a SIGKILL of etssup itself: PDEATHSIG takes both
 * children down, the table stays in shared memory, and a new etssup starts
 * cleanly and the counter goes on from where it was.  The default keeps a
 * hot standby of etscounterd: the standby tests kill the active one, the
 * standby, both, and etsmgrd while the standby waits, and stop etssup
 * just after a takeover. */
#include <check.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcap.h"
#include "test_sup.h"

/* etscounter count: the new value, or -1 */
static long e2e_count(st_env *e)
{
    char bin[600];
    snprintf(bin, sizeof bin, "%s/etscounter", e->bindir);
    char *argv[] = {bin, "--runtime-dir", e->dir, "--instance", e->instance, "--timeout", "10000", "count", NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 20000);
    long v = rc_ok(st) && out ? strtol(out, NULL, 10) : -1;
    if (v < 0)
        fprintf(stderr, "etscounter count: status 0x%x: %s\n", st, out ? out : "");
    free(out);
    return v;
}

START_TEST(test_default_children)
{
    st_env e;
    st_init(&e);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    ck_assert_int_eq(e2e_count(&e), 1);
    ck_assert_int_eq(e2e_count(&e), 2);
    pid_t p[2];
    ck_assert_int_eq(st_pids(&e, p), 2);

    kill(p[1], SIGKILL); /* etscounterd */
    ck_assert(st_wait_settled(&e, 1, p[1], 15000));
    ck_assert_int_eq(e2e_count(&e), 3);
    kill(p[0], SIGKILL); /* etsmgrd */
    ck_assert(st_wait_settled(&e, 0, p[0], 15000));
    ck_assert_int_eq(e2e_count(&e), 4);
    ck_assert(!tu_has_zombie_children(e.pid));

    /* kill -9 of etssup: no child remains */
    st_pids(&e, p);
    st_kill9_sup(&e);
    for (int i = 0; i < 2; i++)
        ck_assert_msg(st_wait_gone(p[i], 5000), "child pid %d outlived etssup", (int)p[i]);
    /* a new etssup starts cleanly and the counter goes on */
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    ck_assert_int_eq(e2e_count(&e), 5);
    char *log = rc_slurp(e.logpath);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "child etscounterd \\(pid [0-9]+\\) killed by signal SIGKILL[^\n]*: its standby "
                                  "\\(pid [0-9]+\\) takes over",
                             REG_EXTENDED | REG_NEWLINE), 0);
    ck_assert_msg(regexec(&re, log, 0, NULL, 0) == 0, "no report of etscounterd's death:\n%s", log);
    regfree(&re);
    ck_assert_int_eq(regcomp(&re, "child etsmgrd \\(pid [0-9]+\\) killed by signal SIGKILL[^\n]*: restarting it",
                             REG_EXTENDED | REG_NEWLINE), 0);
    ck_assert_msg(regexec(&re, log, 0, NULL, 0) == 0, "no report of etsmgrd's death:\n%s", log);
    regfree(&re);
    free(log);
    st_cleanup(&e);
}
END_TEST

/* A new etssup started the instant the old one is SIGKILLed, while its
 * children are still dying and holding their locks: it waits for them
 * (the generation lock) instead of failing its first start. */
START_TEST(test_restart_at_once_after_kill9)
{
    st_env e;
    st_init(&e);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    ck_assert_int_eq(e2e_count(&e), 1);
    for (long round = 2; round <= 6; round++) {
        st_kill9_sup(&e);
        ck_assert_msg(st_start_ex(&e, true, 20000) > 0, "etssup restarted at once failed in round %ld", round);
        ck_assert_int_eq(e2e_count(&e), round);
    }
    st_cleanup(&e);
}
END_TEST

/* The mechanism behind the test above, made deterministic: a process that
 * still holds the generation lock (as a dying child of a SIGKILLed etssup
 * does) makes a new etssup wait; it starts its children once that process
 * is gone, not before. */
START_TEST(test_waits_for_previous_generation)
{
    st_env e;
    st_init(&e);
    char gen[200];
    snprintf(gen, sizeof gen, "%s/etssup.generation", e.dir);
    int fd = open(gen, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_SH), 0);
    pid_t holder = fork();
    ck_assert_int_ge(holder, 0);
    if (holder == 0) { /* the lingering "old child": holds the lock 1 s */
        st_nap(1000);
        _exit(0);
    }
    close(fd); /* now only the holder keeps the lock */
    long long t0 = st_now_ms();
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    long long waited = st_now_ms() - t0;
    int st;
    ck_assert_int_eq(waitpid(holder, &st, WNOHANG), holder); /* it was gone first */
    ck_assert_msg(waited >= 900, "etssup was ready after %lld ms, while the lock was still held", waited);
    char *log = rc_slurp(e.logpath);
    ck_assert_ptr_nonnull(strstr(log, "waiting for the children of an earlier etssup"));
    free(log);
    ck_assert_int_eq(e2e_count(&e), 1);
    st_cleanup(&e);
}
END_TEST

/* the standby pid of child k in etssup's status (0: none) */
static pid_t e2e_standby(st_env *e, int k)
{
    cJSON *st = st_status(e);
    ck_assert_ptr_nonnull(st);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), k);
    const cJSON *sb = c ? cJSON_GetObjectItem(c, "standby_pid") : NULL;
    pid_t pid = cJSON_IsNumber(sb) ? (pid_t)sb->valueint : -1;
    cJSON_Delete(st);
    return pid;
}

/* etsmgrd's waiters of table etscounter, as "pid,pid" ("" when none) */
static void e2e_waiters(st_env *e, char *out, size_t len)
{
    out[0] = 0;
    cJSON *r = st_request(e, "etsmgrd.sock", "{\"op\":\"tables\",\"id\":1}");
    const cJSON *t, *w;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(r, "tables")) {
        const cJSON *n = cJSON_GetObjectItem(t, "name");
        if (!cJSON_IsString(n) || strcmp(n->valuestring, "etscounter") != 0)
            continue;
        cJSON_ArrayForEach(w, cJSON_GetObjectItem(t, "waiters")) {
            size_t l = strlen(out);
            snprintf(out + l, len - l, "%s%d", l ? "," : "", (int)w->valuedouble);
        }
    }
    cJSON_Delete(r);
}

/* waits until etscounterd (child 1) has a standby other than old that
 * etsmgrd has queued for the table; returns it */
static pid_t e2e_wait_standby(st_env *e, pid_t old, int timeout_ms)
{
    long long deadline = st_now_ms() + timeout_ms;
    char w[64] = "", want[32] = "";
    pid_t sb = 0;
    while (st_now_ms() < deadline) {
        sb = e2e_standby(e, 1);
        if (sb > 0 && sb != old) {
            snprintf(want, sizeof want, "%d", (int)sb);
            e2e_waiters(e, w, sizeof w);
            if (strcmp(w, want) == 0)
                return sb;
        }
        st_nap(10);
    }
    ck_abort_msg("no new standby of etscounterd queued within %d ms (standby %d, waiters [%s])", timeout_ms, (int)sb,
                 w);
    return 0;
}

/* etssup with etscounterd's standby, one count made: the children's pids
 * in p; returns the standby's pid once etsmgrd has queued it */
static pid_t e2e_start_standby(st_env *e, pid_t p[2])
{
    st_init(e);
    ck_assert_int_gt(st_start_ex(e, true, 20000), 0);
    ck_assert_int_eq(e2e_count(e), 1);
    st_pids(e, p);
    return e2e_wait_standby(e, 0, 15000);
}

/* The active etscounterd is SIGKILLed: its standby is the child now, it
 * serves the next count with nothing lost or doubled, the restart counts,
 * and a new standby is started. */
START_TEST(test_standby_takes_over)
{
    st_env e;
    st_init(&e);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    ck_assert_int_eq(e2e_count(&e), 1);
    ck_assert_int_eq(e2e_count(&e), 2);
    pid_t p[2];
    ck_assert_int_eq(st_pids(&e, p), 2);
    pid_t sb = e2e_wait_standby(&e, 0, 15000);
    ck_assert_int_ne(sb, p[1]);

    kill(p[1], SIGKILL);
    ck_assert_int_eq(e2e_count(&e), 3); /* nothing lost, nothing doubled */
    ck_assert(st_wait_settled(&e, 1, p[1], 15000));
    pid_t now[2];
    st_pids(&e, now);
    ck_assert_int_eq(now[1], sb); /* the standby, not a fresh fork */
    ck_assert_int_eq(now[0], p[0]);
    pid_t sb2 = e2e_wait_standby(&e, sb, 15000);
    ck_assert_int_ne(sb2, p[1]);
    cJSON *st = st_status(&e);
    ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 1), "restarts")->valueint,
                     1);
    cJSON_Delete(st);
    ck_assert_int_eq(e2e_count(&e), 4);
    /* and again, with the new standby */
    kill(sb, SIGKILL);
    ck_assert_int_eq(e2e_count(&e), 5);
    ck_assert(st_wait_settled(&e, 1, sb, 15000));
    st_pids(&e, now);
    ck_assert_int_eq(now[1], sb2);
    ck_assert(!tu_has_zombie_children(e.pid));
    st_cleanup(&e);
}
END_TEST

/* The standby is SIGKILLed: a new standby is queued, and the active one
 * keeps its pid and counts on. */
START_TEST(test_standby_killed)
{
    st_env e;
    pid_t p[2];
    pid_t sb = e2e_start_standby(&e, p);
    kill(sb, SIGKILL);
    pid_t sb2 = e2e_wait_standby(&e, sb, 15000);
    ck_assert_int_ne(sb2, p[1]);
    pid_t now[2];
    st_pids(&e, now);
    ck_assert_int_eq(now[1], p[1]);
    ck_assert_int_eq(e2e_count(&e), 2);
    cJSON *st = st_status(&e);
    const cJSON *c1 = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "children"), 1);
    ck_assert_int_eq(cJSON_GetObjectItem(c1, "restarts")->valueint, 0);
    ck_assert_str_eq(cJSON_GetObjectItem(c1, "state")->valuestring, "running");
    cJSON_Delete(st);
    st_cleanup(&e);
}
END_TEST

/* Both are SIGKILLed at once: an ordinary restart, the count goes on, and
 * a standby is there again. */
START_TEST(test_standby_both_killed)
{
    st_env e;
    pid_t p[2];
    pid_t sb = e2e_start_standby(&e, p);
    kill(sb, SIGKILL);
    kill(p[1], SIGKILL);
    ck_assert(st_wait_settled(&e, 1, p[1], 15000));
    pid_t now[2];
    st_pids(&e, now);
    ck_assert_int_ne(now[1], sb);
    ck_assert_int_eq(e2e_count(&e), 2);
    pid_t sb2 = e2e_wait_standby(&e, sb, 15000);
    ck_assert_int_ne(sb2, now[1]);
    ck_assert(!tu_has_zombie_children(e.pid));
    st_cleanup(&e);
}
END_TEST

/* SIGTERM to etssup right after the active one's SIGKILL, while etssup
 * still holds back handling that death (SUP_STANDBY_REAP_DELAY_MS): it
 * stops everything in order and exits 0, leaving no process behind. */
START_TEST(test_standby_takeover_then_stop)
{
    st_env e;
    pid_t p[2];
    pid_t sb = e2e_start_standby(&e, p);
    kill(p[1], SIGKILL);
    kill(e.pid, SIGTERM);
    int st = st_wait_exit(&e, 15000);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "etssup: wait status 0x%x", st);
    ck_assert(st_wait_gone(p[0], 3000));
    ck_assert(st_wait_gone(p[1], 3000));
    ck_assert(st_wait_gone(sb, 3000));
    st_cleanup(&e);
}
END_TEST

/* etsmgrd is SIGKILLed while the standby waits: once etssup restarted it,
 * the active one still owns the table, the standby is queued again, and it
 * still takes over when the active one dies. */
START_TEST(test_standby_mgr_killed)
{
    st_env e;
    pid_t p[2];
    pid_t sb = e2e_start_standby(&e, p);
    kill(p[0], SIGKILL);
    ck_assert(st_wait_settled(&e, 0, p[0], 15000));
    ck_assert_int_eq(e2e_count(&e), 2);
    ck_assert_int_eq(e2e_wait_standby(&e, 0, 15000), sb); /* the same one, queued again */
    pid_t now[2];
    st_pids(&e, now);
    ck_assert_int_eq(now[1], p[1]);
    kill(p[1], SIGKILL);
    ck_assert_int_eq(e2e_count(&e), 3);
    ck_assert(st_wait_settled(&e, 1, p[1], 15000));
    st_pids(&e, now);
    ck_assert_int_eq(now[1], sb);
    st_cleanup(&e);
}
END_TEST

Suite *sup_e2e_suite(void)
{
    Suite *s = suite_create("sup_e2e");
    TCase *tc = tcase_create("default");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_default_children);
    tcase_add_test(tc, test_restart_at_once_after_kill9);
    tcase_add_test(tc, test_waits_for_previous_generation);
    tcase_add_test(tc, test_standby_takes_over);
    tcase_add_test(tc, test_standby_killed);
    tcase_add_test(tc, test_standby_both_killed);
    tcase_add_test(tc, test_standby_mgr_killed);
    tcase_add_test(tc, test_standby_takeover_then_stop);
    suite_add_tcase(s, tc);
    return s;
}

/* test_sup_e2e.c: etssup with its built-in default, the real etsmgrd and
 * etscounterd found next to it.  Counting goes on across a SIGKILL of each
 * child, and across a SIGKILL of etssup itself: PDEATHSIG takes both
 * children down, the table stays in shared memory, and a new etssup starts
 * cleanly and the counter goes on from where it was. */
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
    ck_assert(!st_has_zombies(e.pid));

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
    ck_assert_int_eq(regcomp(&re, "child etscounterd \\(pid [0-9]+\\) killed by signal SIGKILL[^\n]*: restarting it",
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

Suite *sup_e2e_suite(void)
{
    Suite *s = suite_create("sup_e2e");
    TCase *tc = tcase_create("default");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_default_children);
    tcase_add_test(tc, test_restart_at_once_after_kill9);
    tcase_add_test(tc, test_waits_for_previous_generation);
    suite_add_tcase(s, tc);
    return s;
}

/* test_sup_e2e.c: etssup with its built-in default, the real etsmgrd and
 * etscounterd found next to it.  Counting goes on across a SIGKILL of each
 * child, and across a SIGKILL of etssup itself: PDEATHSIG takes both
 * children down, the table stays in shared memory, and a new etssup starts
 * cleanly and the counter goes on from where it was. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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
    ck_assert_ptr_nonnull(strstr(log, "supervisor report: child etscounterd"));
    ck_assert_ptr_nonnull(strstr(log, "supervisor report: child etsmgrd"));
    free(log);
    st_cleanup(&e);
}
END_TEST

Suite *sup_e2e_suite(void)
{
    Suite *s = suite_create("sup_e2e");
    TCase *tc = tcase_create("default");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_default_children);
    suite_add_tcase(s, tc);
    return s;
}

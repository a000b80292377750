/* test_mgr_edges.c: the manager's corners that adversarial testing broke
 * (issue 12), each a regression test that failed before its fix.
 *
 *  - a late reply's fd belongs to that reply: after a new_table timed out,
 *    the next new_table gets its own table, and the stale fd is closed;
 *
 * Each test runs its own etsmgrd on a private runtime dir and instance
 * (testutil), and waits on readiness or replies, never on sleeps. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etsmgr.h"
#include "testutil.h"

#define ME_SPAWN_MS 15000

static tu_env E;
static int E_live;

static void me_cleanup(void)
{
    if (E_live) {
        E_live = 0;
        tu_env_cleanup(&E);
    }
}

static void me_setup(void)
{
    tu_env_init(&E);
    E_live = 1;
    atexit(me_cleanup); /* a failed check ends the test with exit() */
}

static pid_t me_mgr(void)
{
    char *argv[] = {"etsmgrd", "--log-level", "warning", NULL};
    pid_t p = tu_spawn_ready(&E, argv, ME_SPAWN_MS);
    ck_assert_msg(p > 0, "etsmgrd did not become ready");
    return p;
}

static etsmgr_client *me_connect(void)
{
    etsmgr_client *c = NULL;
    char msg[256] = "";
    int err = etsmgr_connect(NULL, NULL, &c, msg, sizeof msg);
    ck_assert_msg(err == ETSMGR_OK, "etsmgr_connect: %s: %s", etsmgr_strerror(err), msg);
    return c;
}

/* ------------------------------------------------------------------ item 2 */
/* new_table("A") times out (the daemon is stopped); its reply and fd come
 * late.  new_table("B") must return B, not A, and A's fd must not stay
 * open in the client. */
START_TEST(test_late_reply_fd_goes_with_it)
{
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_client_set_timeout(c, 300);
    ck_assert_int_eq(kill(d, SIGSTOP), 0);
    etsmgr_table *t = NULL;
    int err = etsmgr_new_table(c, "A", NULL, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_ETIMEDOUT, "new_table A with the daemon stopped: %s (%s)",
                  etsmgr_strerror(err), etsmgr_client_message(c));
    ck_assert_int_eq(kill(d, SIGCONT), 0);
    etsmgr_client_set_timeout(c, 10000);
    int before = tu_count_fds(getpid());
    err = etsmgr_new_table(c, "B", NULL, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_OK, "new_table B: %s", etsmgr_client_message(c));
    ck_assert_str_eq(etsmgr_table_name(t), "B");
    /* B's fd is new; A's late fd was closed with its reply */
    ck_assert_int_eq(tu_count_fds(getpid()), before + 1);
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k", 1, 1, 0, &v), ETSMGR_OK);
    etsmgr_client_close(c);
}
END_TEST

Suite *mgr_edges_suite(void)
{
    Suite *s = suite_create("mgr_edges");
    TCase *tc = tcase_create("client");
    tcase_add_checked_fixture(tc, me_setup, me_cleanup);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_late_reply_fd_goes_with_it);
    suite_add_tcase(s, tc);
    return s;
}

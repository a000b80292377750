/* SPDX-License-Identifier: Apache-2.0 */
/* test_watchdog.c: etssup sends WATCHDOG=1 only while its loop turns and
 * its children answer.
 *
 * etssup runs as systemd would run it with WatchdogSec=1s: WATCHDOG_USEC
 * and a NOTIFY_SOCKET of the test.  Its pings come every half second; with
 * etsmgrd SIGSTOPped (alive, not answering) they must stop, and come back
 * once it is continued.  Absence has no signal of its own, so it is
 * measured: a gap of more than two periods between two pings, within a
 * generous deadline (the machine is shared, so a late ping alone proves
 * nothing; only a long silence while the child is stopped, and pings again
 * after, do). */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "svcrun.h"
#include "testutil.h"

#define TW_PERIOD_MS 1000

/* Waits up to timeout_ms for a WATCHDOG=1 from etssup; its time, or -1. */
static long long tw_next_ping(sv_proc *p, int timeout_ms)
{
    long long end = tu_now_ms() + timeout_ms;
    for (;;) {
        long long left = end - tu_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = p->notify_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        char buf[512];
        int pid = 0;
        if (notify_recv(p->notify_fd, buf, sizeof buf, &pid) < 0)
            continue;
        if (pid == (int)p->pid && strstr(buf, "WATCHDOG=1"))
            return tu_now_ms();
    }
}

static pid_t tw_child(pid_t sup, const char *name)
{
    pid_t kids[8];
    int n = sv_children(sup, kids, 8);
    for (int i = 0; i < n; i++) {
        char comm[32];
        sv_comm(kids[i], comm, sizeof comm);
        if (strcmp(comm, name) == 0)
            return kids[i];
    }
    return -1;
}

START_TEST(test_watchdog_withheld_while_a_child_is_stopped)
{
    tu_env e;
    tu_env_init(&e);
    char notify[256], err[256], usec[64];
    snprintf(notify, sizeof notify, "%s/systemd-notify", e.dir);
    snprintf(usec, sizeof usec, "WATCHDOG_USEC=%d", TW_PERIOD_MS * 1000);
    char *argv[] = {(char *)tu_bin("etssup", false), NULL};
    char *env[] = {usec, NULL};
    sv_proc p;
    ck_assert_msg(sv_start(&p, argv, env, notify, -1, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(sv_wait_ready(&p, 30000, NULL, 0) > 0, "etssup sent no READY=1");

    ck_assert_msg(tw_next_ping(&p, 10 * TW_PERIOD_MS) > 0, "no WATCHDOG=1 from etssup with WATCHDOG_USEC set");
    pid_t mgrd = tw_child(p.pid, "etsmgrd");
    ck_assert_int_gt(mgrd, 0);
    ck_assert_int_eq(kill(mgrd, SIGSTOP), 0);

    /* a silence of more than two periods must come, within 20 s */
    long long end = tu_now_ms() + 20000, last = tu_now_ms();
    bool silent = false;
    while (!silent && tu_now_ms() < end) {
        long long t = tw_next_ping(&p, 3 * TW_PERIOD_MS);
        if (t < 0)
            silent = true;
        else
            last = t;
    }
    kill(mgrd, SIGCONT);
    ck_assert_msg(silent, "etssup kept sending WATCHDOG=1 with etsmgrd stopped (last ping %lld ms ago)",
                  tu_now_ms() - last);
    ck_assert_msg(tw_next_ping(&p, 10 * TW_PERIOD_MS) > 0, "no WATCHDOG=1 after etsmgrd was continued");

    int ws = sv_stop(&p, SIGTERM, 25000);
    ck_assert_msg(ws != -1, "etssup did not stop on SIGTERM");
    tu_env_cleanup(&e);
}
END_TEST

Suite *watchdog_suite(void)
{
    Suite *s = suite_create("watchdog");
    TCase *tc = tcase_create("watchdog");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_watchdog_withheld_while_a_child_is_stopped);
    suite_add_tcase(s, tc);
    return s;
}

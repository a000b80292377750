/* SPDX-License-Identifier: Apache-2.0 */
/* test_lock_timeout.c: a process that holds a table's lock and does not let
 * go (stopped with SIGSTOP, not dead, so the robust mutex does not help)
 * must not freeze a server that reads the table: a handle with a lock
 * timeout gives ETSMGR_ELOCKED, and etsmgrd keeps answering. */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "table.h"
#include "test_daemon.h"
#include "testutil.h"

/* Forks a child that takes t's lock (an open group) and stops itself;
 * returns once it holds the lock. */
static pid_t lt_fork_holder(etsmgr_table *t)
{
    int pipe_fd;
    pid_t pid = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (etsmgr_table_begin(t) != ETSMGR_OK)
            _exit(1);
        int64_t v;
        etsmgr_table_update_counter(t, "count", 5, 1000, 0, &v); /* uncommitted */
        if (write(pipe_fd, "x", 1) != 1)
            _exit(1);
        raise(SIGSTOP);
        _exit(0);
    }
    char c;
    ck_assert_int_eq(read(pipe_fd, &c, 1), 1);
    close(pipe_fd);
    return pid;
}

static void lt_kill_holder(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
}

START_TEST(test_table_lock_timeout)
{
    char name[64];
    snprintf(name, sizeof name, "/t%dx%d.lock", (int)getpid(), 0);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_create(name, "lock", NULL, &t), ETSMGR_OK);
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 1, 0, &v), ETSMGR_OK);

    pid_t holder = lt_fork_holder(t);
    etsmgr_table_set_lock_timeout(t, 50);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 1, 0, &v), ETSMGR_ELOCKED);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), ETSMGR_ELOCKED);
    long long took = tu_now_ms() - t0;
    ck_assert_msg(took >= 90 && took < 5000, "two 50 ms timeouts took %lld ms", took);
    ck_assert_str_ne(etsmgr_strerror(ETSMGR_ELOCKED), "");

    /* the holder dies: its open group is rolled back, the lock is free */
    lt_kill_holder(holder);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 1, 0, &v), ETSMGR_OK);
    ck_assert_int_eq(v, 2);
    etsmgr_table_close(t);
    ck_assert_int_eq(tbl_unlink(name), ETSMGR_OK);
}
END_TEST

START_TEST(test_daemon_answers_while_owner_stopped_in_lock)
{
    tu_env e;
    tu_env_init(&e);
    pid_t daemon = dt_start(&e, NULL);
    int fd = dt_connect(&e);
    bool created = false;
    etsmgr_table *t = dt_new_table(fd, "stuck", "h", &created);
    ck_assert(created);

    pid_t holder = lt_fork_holder(t);
    long long t0 = tu_now_ms();
    /* answered at once, from the header's words as they are (the holder's
     * change in progress shows), without waiting for the lock */
    cJSON *s = dt_status(fd, "stuck");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(dt_str(s, "error"), "");
    ck_assert_int_eq((int)dt_num(s, "entries"), 1);
    cJSON_Delete(s);
    dt_hello_ok(&e, daemon); /* and it serves others meanwhile */
    ck_assert_msg(tu_now_ms() - t0 < 5000, "etsmgrd was slow to answer while a lock was held");

    lt_kill_holder(holder);
    s = dt_status(fd, "stuck");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(dt_str(s, "error"), "");
    ck_assert_int_eq((int)dt_num(s, "entries"), 0); /* the holder's uncommitted change was rolled back */
    cJSON_Delete(s);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

Suite *lock_timeout_suite(void)
{
    Suite *s = suite_create("lock_timeout");
    TCase *tc = tcase_create("stuck_holder");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_table_lock_timeout);
    tcase_add_test(tc, test_daemon_answers_while_owner_stopped_in_lock);
    suite_add_tcase(s, tc);
    return s;
}

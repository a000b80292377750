/* SPDX-License-Identifier: Apache-2.0 */
/* test_daemon_recovery.c: etsmgrd dying and coming back.
 *
 * The daemon is SIGKILLed while a client holds a table (the mapping keeps
 * working, the restarted daemon rediscovers the table, add_table accepts the
 * very same object and nothing else), with the owner dying too, a second
 * daemon for the instance, the stale socket a SIGKILL leaves, objects that
 * are not tables (reported, never touched), and a listening socket handed
 * in by socket activation whose backlog keeps a client waiting across a
 * restart. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "notify.h"
#include "runcap.h"
#include "sock.h"
#include "table.h"
#include "test_daemon.h"

static void add_table_refused(int fd, const int *fds, int nfds, const char *code)
{
    dt_expect_err(dt_call(fd, "{\"op\":\"add_table\",\"id\":9,\"name\":\"r\"}", fds, nfds, NULL), code);
}

START_TEST(test_daemon_killed_client_holds)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d1 = dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "r", "r-heir", NULL);
    etsmgr_table *other = dt_new_table(fd, "other", NULL, NULL);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 7, 0, &v), ETSMGR_OK);

    tu_kill9(d1);
    /* The mapping does not depend on the daemon. */
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 1, 0, &v), ETSMGR_OK);
    ck_assert_int_eq(v, 8);
    char ch;
    ck_assert_int_eq(read(fd, &ch, 1), 0); /* our life line is gone */
    close(fd);

    pid_t d2 = dt_start(&e, NULL);
    ck_assert_int_ne(d1, d2);
    fd = dt_connect(&e);
    cJSON *s = dt_status(fd, "r");
    ck_assert_msg(s != NULL, "the restarted daemon did not rediscover table r:\n%s", dt_log(&e));
    ck_assert_str_eq(dt_str(s, "state"), "orphaned");
    ck_assert_int_eq((int)dt_num(s, "entries"), 1);
    cJSON_Delete(s);
    ck_assert(dt_log_has(&e, "rediscovered table=r "));

    /* Everything but the very same object is refused, and every fd closed. */
    int before = tu_count_fds(d2);
    add_table_refused(fd, NULL, 0, "no_fd");
    int ofd = etsmgr_table_fd(other);
    add_table_refused(fd, &ofd, 1, "bad_fd");
    char path[256];
    snprintf(path, sizeof path, "%s/copy-of-r", e.dir);
    char *cmd = NULL;
    int st = rc_sh(&cmd, 10000, "cp /dev/shm/%s:%lu:r %s", e.instance, (unsigned long)geteuid(), path);
    ck_assert_msg(rc_ok(st), "cp: %s", cmd);
    free(cmd);
    int reg = open(path, O_RDWR);
    ck_assert_int_ge(reg, 0);
    add_table_refused(fd, &reg, 1, "bad_fd"); /* same bytes, not the same object */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    add_table_refused(fd, &p[0], 1, "bad_fd");
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    add_table_refused(fd, &sp[0], 1, "bad_fd");
    char foreign[160];
    snprintf(foreign, sizeof foreign, "/%sz:%lu:r", e.instance, (unsigned long)geteuid());
    etsmgr_table *ft = NULL;
    ck_assert_int_eq(tbl_create(foreign, "r", NULL, &ft), ETSMGR_OK);
    int ffd = etsmgr_table_fd(ft);
    add_table_refused(fd, &ffd, 1, "bad_fd"); /* another instance's table "r" */
    int tfd = etsmgr_table_fd(t);
    int two[2] = {tfd, tfd};
    add_table_refused(fd, two, 2, "bad_fd");
    ck_assert_int_eq(tu_count_fds(d2), before);
    s = dt_status(fd, "r");
    ck_assert_str_eq(dt_str(s, "state"), "orphaned");
    cJSON_Delete(s);

    cJSON *r = dt_call(fd, "{\"op\":\"add_table\",\"id\":10,\"name\":\"r\",\"heir_data\":\"back\"}", &tfd, 1, NULL);
    ck_assert_str_eq(dt_str(r, "name"), "r");
    dt_expect_ok(r);
    s = dt_status(fd, "r");
    ck_assert_str_eq(dt_str(s, "state"), "owned");
    ck_assert_int_eq((int)dt_num(s, "owner_pid"), getpid());
    ck_assert_str_eq(dt_str(s, "heir_data"), "back");
    cJSON_Delete(s);
    /* The daemon holds one more fd now (the table), not more. */
    ck_assert_int_le(tu_count_fds(d2), before + 1);
    ck_assert_int_eq(dt_get_count(t, "count"), 8);

    tbl_unlink(foreign);
    etsmgr_table_close(ft);
    close(reg);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    etsmgr_table_close(t);
    etsmgr_table_close(other);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* etsmgrd is SIGKILLed while its owner is inside a transaction (it holds
 * the table's lock): the owner adds the table back, lock still held, and
 * gets it.  (add_table read the header under the lock, timed out and
 * refused the table as "no longer a valid table": it stayed orphaned while
 * its owner wrote on, for the next new_table of its uid to take as well.) */
START_TEST(test_add_table_while_owner_holds_lock)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d1 = dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "tx", "tx", NULL);
    ck_assert_int_eq(etsmgr_table_begin(t), ETSMGR_OK);
    tu_kill9(d1);
    close(fd);
    dt_start(&e, NULL);
    fd = dt_connect(&e);
    int tfd = etsmgr_table_fd(t);
    dt_expect_ok(dt_call(fd, "{\"op\":\"add_table\",\"id\":1,\"name\":\"tx\"}", &tfd, 1, NULL));
    cJSON *s = dt_status(fd, "tx");
    ck_assert_str_eq(dt_str(s, "state"), "owned");
    ck_assert_int_eq((int)dt_num(s, "owner_pid"), getpid());
    cJSON_Delete(s);
    ck_assert_int_eq(etsmgr_table_commit(t), ETSMGR_OK);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* Owner and daemon SIGKILLed at once: the restarted daemon rediscovers, the
 * restarted client takes the table back with new_table. */
static bool orphaned_c(void *arg)
{
    int fd = dt_connect(arg);
    cJSON *s = dt_status(fd, "c");
    bool o = s && strcmp(dt_str(s, "state"), "orphaned") == 0;
    cJSON_Delete(s);
    close(fd);
    return o;
}

/* After a clean stop (the owner let go, the daemon got SIGTERM) there is no
 * last owner: the next daemon says so instead of "last owner pid=0". */
START_TEST(test_clean_stop_no_pid_zero)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d1 = dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "c", NULL, NULL);
    close(fd); /* the owner goes: etsmgrd is heir */
    etsmgr_table_close(t);
    ck_assert_msg(tu_eventually(orphaned_c, &e, 10000), "etsmgrd did not see the owner go");
    kill(d1, SIGTERM);
    int st = tu_wait(d1, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "etsmgrd on SIGTERM: %#x", st);
    dt_start(&e, NULL);
    fd = dt_connect(&e);
    cJSON *s = dt_status(fd, "c");
    ck_assert_msg(s != NULL, "table c was not rediscovered:\n%s", dt_log(&e));
    cJSON_Delete(s);
    close(fd);
    ck_assert_msg(dt_log_has(&e, "rediscovered table=c ") && !dt_log_has(&e, "pid=0"),
                  "the log names a pid 0:\n%s", dt_log(&e));
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_both_killed)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d1 = dt_start(&e, NULL);
    pid_t owner = dt_fork_owner(&e, "etscounter", "etscounter", 6);
    kill(owner, SIGKILL);
    kill(d1, SIGKILL);
    tu_kill9(owner);
    tu_kill9(d1);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    bool created = true;
    etsmgr_table *t = dt_new_table(fd, "etscounter", "etscounter", &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t, "count"), 6);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_two_daemons)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d1 = dt_start(&e, NULL);
    char *argv[] = {(char *)tu_bin("etsmgrd", false), NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 70, "second daemon: status %d, output:\n%s", st, out);
    ck_assert_msg(strstr(out, "another etsmgrd already runs"), "no clear message:\n%s", out);
    free(out);
    dt_hello_ok(&e, d1); /* the first one is unharmed */
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_stale_socket)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d1 = dt_start(&e, NULL);
    tu_kill9(d1);
    char path[256];
    snprintf(path, sizeof path, "%s/etsmgrd.sock", e.dir);
    struct stat st;
    ck_assert_msg(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode), "SIGKILL left no socket file to test with");
    ck_assert_int_lt(sock_connect_unix(path), 0);
    ck_assert_int_eq(errno, ECONNREFUSED);
    pid_t d2 = dt_start(&e, NULL);
    dt_hello_ok(&e, d2);
    tu_env_cleanup(&e);
}
END_TEST

static void write_shm(const tu_env *e, const char *name, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "/%s:%lu:%s", e->instance, (unsigned long)geteuid(), name);
    int fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_msg(fd >= 0, "shm_open %s: %s", path, strerror(errno));
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static char *read_shm(const tu_env *e, const char *name)
{
    char path[256];
    tu_shm_path(e, geteuid(), name, path, sizeof path);
    return rc_slurp(path);
}

START_TEST(test_rediscover_invalid_untouched)
{
    tu_env e;
    tu_env_init(&e);
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)('a' + (i * 7) % 26);
    junk[sizeof junk - 1] = '\0';
    write_shm(&e, "junk", junk, sizeof junk - 1);
    write_shm(&e, "empty", "", 0);
    char shm[160];
    snprintf(shm, sizeof shm, "/%s:%lu:good", e.instance, (unsigned long)geteuid());
    etsmgr_table *g = NULL;
    ck_assert_int_eq(tbl_create(shm, "good", NULL, &g), ETSMGR_OK);
    etsmgr_value v = {.type = ETSMGR_INT, .i = 3};
    ck_assert_int_eq(etsmgr_table_insert(g, "k", 1, &v), ETSMGR_OK);
    etsmgr_table_close(g);

    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    cJSON *s = dt_status(fd, "good");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(dt_str(s, "state"), "orphaned");
    ck_assert_int_eq((int)dt_num(s, "entries"), 1);
    cJSON_Delete(s);
    ck_assert_ptr_null(dt_status(fd, "junk"));
    ck_assert_ptr_null(dt_status(fd, "empty"));
    char *log = dt_log(&e);
    ck_assert_msg(strstr(log, ":junk is not a valid table:") && strstr(log, ":empty is not a valid table:"),
                  "invalid objects not reported with a reason:\n%s", log);
    free(log);
    /* Asking for it by name does not touch it either. */
    dt_expect_err(dt_callf(fd, NULL, "{\"op\":\"new_table\",\"id\":1,\"name\":\"junk\"}"), "invalid_table");
    char *after = read_shm(&e, "junk");
    ck_assert_msg(after && strcmp(after, junk) == 0, "the invalid object was changed");
    free(after);
    ck_assert(dt_shm_exists(&e, "empty"));
    /* The valid one is handed over with its data. */
    etsmgr_table *t = dt_new_table(fd, "good", NULL, NULL);
    ck_assert_int_eq(dt_get_count(t, "k"), 3);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* Socket activation: start etsmgrd with fd 3 = lfd, named "etsmgrd"; wait
 * for READY=1 on nfd.  Returns the pid. */
static pid_t start_activated(const tu_env *e, int lfd, int nfd, const char *npath)
{
    const char *bin = tu_bin("etsmgrd", false);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (dup2(lfd, 3) < 0)
            _exit(127);
        char spid[32];
        snprintf(spid, sizeof spid, "%d", (int)getpid());
        setenv("LISTEN_PID", spid, 1);
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_FDNAMES", "etsmgrd", 1);
        setenv("NOTIFY_SOCKET", npath, 1);
        char logp[256];
        snprintf(logp, sizeof logp, "%s/etsmgrd.log", e->dir);
        int l = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (l >= 0)
            dup2(l, 2);
        execl(bin, "etsmgrd", (char *)NULL);
        _exit(127);
    }
    struct pollfd pfd = {.fd = nfd, .events = POLLIN};
    char buf[512];
    int from = 0;
    while (poll(&pfd, 1, DT_TIMEOUT_MS) == 1) {
        if (notify_recv(nfd, buf, sizeof buf, &from) > 0 && from == pid && strstr(buf, "READY=1"))
            return pid;
    }
    tu_kill9(pid);
    ck_abort_msg("socket-activated etsmgrd sent no READY=1:\n%s", dt_log(e));
    return -1;
}

START_TEST(test_inherited_socket)
{
    tu_env e;
    tu_env_init(&e);
    char lpath[256], npath[256], own[256], err[256];
    snprintf(lpath, sizeof lpath, "%s/handed.sock", e.dir);
    snprintf(npath, sizeof npath, "%s/notify", e.dir);
    snprintf(own, sizeof own, "%s/etsmgrd.sock", e.dir);
    int lfd = sock_listen_unix(lpath, 0600, 16, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    int nfd = notify_listen(npath);
    ck_assert_int_ge(nfd, 0);

    pid_t d1 = start_activated(&e, lfd, nfd, npath);
    ck_assert_msg(access(own, F_OK) != 0, "etsmgrd made its own socket although one was handed in");
    int fd = sock_connect_unix(lpath);
    ck_assert_int_ge(fd, 0);
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"hello\",\"id\":1}");
    ck_assert_int_eq((int)dt_num(r, "pid"), d1);
    cJSON_Delete(r);
    close(fd);

    /* While no daemon runs, a client's connection waits in the backlog of
     * the socket we hold, and the next daemon serves it. */
    tu_kill9(d1);
    fd = sock_connect_unix(lpath);
    ck_assert_msg(fd >= 0, "connect during the restart was refused: %s", strerror(errno));
    const char *hello = "{\"op\":\"hello\",\"id\":2}";
    ck_assert_int_eq(frame_write(fd, hello, strlen(hello), NULL, 0), 0);
    pid_t d2 = start_activated(&e, lfd, nfd, npath);
    cJSON *rr = NULL;
    ck_assert_int_eq(frame_read_json(fd, &rr, NULL, NULL, 0, DT_TIMEOUT_MS), 0);
    ck_assert_int_eq((int)dt_num(rr, "pid"), d2);
    cJSON_Delete(rr);
    close(fd);

    ck_assert_int_eq(kill(d2, SIGTERM), 0);
    int st = tu_wait(d2, DT_TIMEOUT_MS);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    ck_assert_msg(access(lpath, F_OK) == 0, "etsmgrd removed a socket it did not create");
    close(lfd);
    close(nfd);
    tu_env_cleanup(&e);
}
END_TEST

Suite *daemon_recovery_suite(void)
{
    Suite *s = suite_create("daemon_recovery");
    TCase *tc = tcase_create("recovery");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_daemon_killed_client_holds);
    tcase_add_test(tc, test_clean_stop_no_pid_zero);
    tcase_add_test(tc, test_both_killed);
    tcase_add_test(tc, test_two_daemons);
    tcase_add_test(tc, test_stale_socket);
    tcase_add_test(tc, test_rediscover_invalid_untouched);
    tcase_add_test(tc, test_inherited_socket);
    tcase_add_test(tc, test_add_table_while_owner_holds_lock);
    suite_add_tcase(s, tc);
    return s;
}

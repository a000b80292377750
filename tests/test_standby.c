/* SPDX-License-Identifier: Apache-2.0 */
/* test_standby.c: hot standby (docs/design.md, "Hot standby").  Waiters
 * queued by new_table "wait" get the table the moment its owner dies, in
 * order; a waiter that goes leaves the queue; a waiter that may not own the
 * table, or asks for the other type, is refused at once; a wait that times
 * out is cancelled.  Then etscounterd --standby: it takes over from a
 * SIGKILLed active one with nothing lost or doubled, its own death goes
 * unnoticed by the active one, a SIGTERM while it waits ends it with
 * status 0, and it queues again after a restart of etsmgrd. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <linux/kcmp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "procstat.h"
#include "runcap.h"
#include "svcrun.h"
#include "sock.h"
#include "table_int.h" /* tbl_once_put, the request-id region's header */
#include "test_daemon.h"
#include "testutil.h"

#define SB_MS 10000

/* A forked waiter: connects with the library, waits for table name (up to
 * wait_ms, -1 forever) and reports on its pipe "G<count>" when it got the
 * table (holding it until killed), or "E<etsmgr error>".  With spare, it
 * opens a second connection, idle, after the waiting one: the process's
 * newest. */
typedef struct sb_waiter {
    pid_t pid;
    int rd;
} sb_waiter;

static sb_waiter sb_fork_waiter_spare(const tu_env *e, const char *name, int wait_ms, uid_t as_uid, bool spare)
{
    int pipe_fd;
    pid_t pid = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (as_uid && (setgid(as_uid) < 0 || setuid(as_uid) < 0))
            _exit(3);
        etsmgr_client *c = NULL;
        char msg[256], line[64];
        etsmgr_client *idle = NULL;
        if (etsmgr_connect(e->dir, e->instance, &c, msg, sizeof msg) != ETSMGR_OK ||
            (spare && etsmgr_connect(e->dir, e->instance, &idle, msg, sizeof msg) != ETSMGR_OK))
            _exit(2);
        etsmgr_table *t = NULL;
        int err = etsmgr_new_table_wait(c, name, NULL, "standby", wait_ms, &t, NULL);
        if (err == ETSMGR_OK) {
            etsmgr_value v;
            char buf[32];
            int64_t n = -1;
            if (etsmgr_table_lookup(t, "count", 5, &v, buf, sizeof buf) == ETSMGR_OK && v.type == ETSMGR_INT)
                n = v.i;
            snprintf(line, sizeof line, "G%lld\n", (long long)n);
            (void)!write(pipe_fd, line, strlen(line));
            for (;;)
                pause();
        }
        snprintf(line, sizeof line, "E%d\n", err);
        (void)!write(pipe_fd, line, strlen(line));
        etsmgr_client_close(c);
        _exit(0);
    }
    return (sb_waiter){pid, pipe_fd};
}

static sb_waiter sb_fork_waiter(const tu_env *e, const char *name, int wait_ms, uid_t as_uid)
{
    return sb_fork_waiter_spare(e, name, wait_ms, as_uid, false);
}

/* The waiter's report, or "" when none came within ms. */
static void sb_report(const sb_waiter *w, int ms, char *buf, size_t len)
{
    struct pollfd pfd = {.fd = w->rd, .events = POLLIN};
    buf[0] = '\0';
    if (poll(&pfd, 1, ms) == 1) {
        ssize_t n = read(w->rd, buf, len - 1);
        buf[n > 0 ? n : 0] = '\0';
    }
}

static bool sb_silent(const sb_waiter *w)
{
    struct pollfd pfd = {.fd = w->rd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

/* Table name's waiters as etsmgrd shows them, "pid,pid" ("" when none). */
typedef struct sb_want {
    int fd;
    const char *name;
    char waiters[128];
    long owner;
    const char *expect;
} sb_want;

static void sb_read_status(sb_want *s)
{
    cJSON *st = dt_status(s->fd, s->name);
    s->waiters[0] = '\0';
    s->owner = -1;
    if (!st)
        return;
    s->owner = strcmp(dt_str(st, "state"), "owned") == 0 ? (long)dt_num(st, "owner_pid") : 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(st, "waiters"))
    {
        size_t l = strlen(s->waiters);
        snprintf(s->waiters + l, sizeof s->waiters - l, "%s%d", l ? "," : "", (int)w->valuedouble);
    }
    cJSON_Delete(st);
}

static bool sb_waiters_are(void *arg)
{
    sb_want *s = arg;
    sb_read_status(s);
    return strcmp(s->waiters, s->expect) == 0;
}

static void sb_expect_waiters(int fd, const char *name, const char *expect)
{
    sb_want s = {.fd = fd, .name = name, .expect = expect};
    ck_assert_msg(tu_eventually(sb_waiters_are, &s, SB_MS), "table %s: waiters [%s], expected [%s]", name, s.waiters,
                  expect);
}

typedef struct sb_owner_want {
    sb_want s;
    long pid;
} sb_owner_want;

static bool sb_owner_is(void *arg)
{
    sb_owner_want *o = arg;
    sb_read_status(&o->s);
    return o->s.owner == o->pid;
}

/* eventually: after a restart of etsmgrd the owner adds its table back
 * through its watch, a moment after the daemon is ready */
static void sb_expect_owner(int fd, const char *name, pid_t pid)
{
    sb_owner_want o = {.s = {.fd = fd, .name = name}, .pid = pid};
    ck_assert_msg(tu_eventually(sb_owner_is, &o, SB_MS), "table %s is owned by %ld, not %d", name, o.s.owner,
                  (int)pid);
}

/* Two waiters for table name, queued in this order (each seen in the
 * queue before the next is forked, so the order is theirs). */
static void sb_queue_two(const tu_env *e, int fd, const char *name, sb_waiter *w1, sb_waiter *w2)
{
    char exp[64];
    *w1 = sb_fork_waiter(e, name, -1, 0);
    snprintf(exp, sizeof exp, "%d", (int)w1->pid);
    sb_expect_waiters(fd, name, exp);
    *w2 = sb_fork_waiter(e, name, -1, 0);
    snprintf(exp, sizeof exp, "%d,%d", (int)w1->pid, (int)w2->pid);
    sb_expect_waiters(fd, name, exp);
}

START_TEST(test_queue_order)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    pid_t owner = dt_fork_owner(&e, "q", "q", 6);
    sb_waiter w1, w2;
    sb_queue_two(&e, fd, "q", &w1, &w2);
    char exp[64];
    ck_assert(sb_silent(&w1) && sb_silent(&w2)); /* nobody got it while the owner lives */

    tu_kill9(owner);
    char rep[64];
    sb_report(&w1, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G6\n"); /* the first waiter, data intact */
    ck_assert(sb_silent(&w2));
    sb_expect_owner(fd, "q", w1.pid);
    snprintf(exp, sizeof exp, "%d", (int)w2.pid);
    sb_expect_waiters(fd, "q", exp);

    tu_kill9(w1.pid);
    sb_report(&w2, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G6\n");
    sb_expect_owner(fd, "q", w2.pid);
    sb_expect_waiters(fd, "q", "");
    ck_assert(dt_log_has(&e, "handed at once to the waiting pid"));
    tu_kill9(w2.pid);
    close(w1.rd);
    close(w2.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

START_TEST(test_waiter_disconnects)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    pid_t owner = dt_fork_owner(&e, "d", "d", 2);
    sb_waiter w1, w2;
    sb_queue_two(&e, fd, "d", &w1, &w2);
    char exp[64];
    tu_kill9(w1.pid); /* the first one goes before the owner dies */
    snprintf(exp, sizeof exp, "%d", (int)w2.pid);
    sb_expect_waiters(fd, "d", exp);
    tu_kill9(owner);
    char rep[64];
    sb_report(&w2, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G2\n");
    sb_expect_owner(fd, "d", w2.pid);
    tu_kill9(w2.pid);
    close(w1.rd);
    close(w2.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A wait that times out leaves the queue: the table, when its owner dies,
 * is orphaned (nobody is handed a table it does not know of). */
START_TEST(test_wait_timeout_cancels)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    pid_t owner = dt_fork_owner(&e, "to", "to", 1);
    sb_waiter w = sb_fork_waiter(&e, "to", 200, 0);
    char rep[64];
    sb_report(&w, SB_MS, rep, sizeof rep);
    snprintf(rep + 32, 32, "E%d\n", ETSMGR_ETIMEDOUT);
    ck_assert_str_eq(rep, rep + 32);
    ck_assert_int_ge(tu_wait(w.pid, SB_MS), 0);
    sb_expect_waiters(fd, "to", "");
    tu_kill9(owner);
    dt_wait dw = {fd, "to"};
    ck_assert(tu_eventually(dt_is_orphaned, &dw, SB_MS));
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* Waiting changes when a process gets a table, never whether: another
 * uid's table is refused at once, not queued. */
START_TEST(test_waiter_other_uid_refused)
{
    if (!tu_root_or_skip("test_waiter_other_uid_refused"))
        return;
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    pid_t owner = dt_fork_owner(&e, "mine", "mine", 1);
    char sock[256];
    tu_open_mgr_sock(&e, sock, sizeof sock);
    sb_waiter w = sb_fork_waiter(&e, "mine", -1, 65534);
    char rep[64], want[32];
    sb_report(&w, SB_MS, rep, sizeof rep);
    snprintf(want, sizeof want, "E%d\n", ETSMGR_EREFUSED);
    ck_assert_str_eq(rep, want);
    sb_expect_waiters(fd, "mine", "");
    tu_kill9(owner);
    tu_wait(w.pid, SB_MS);
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* ... and so is a table of the other type: a wait for an ordered_set of a
 * set is wrong_type at once, as a plain new_table's would be.  Before, the
 * wait was queued before the type was looked at, and the standby got the
 * set when its owner went. */
START_TEST(test_waiter_wrong_type_refused)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int own = dt_connect(&e);
    etsmgr_table *t = dt_new_table(own, "typed", NULL, NULL); /* a set */
    int w = dt_connect(&e);
    const char *req = "{\"op\":\"new_table\",\"id\":1,\"name\":\"typed\",\"wait\":true,"
                      "\"opts\":{\"type\":\"ordered_set\"}}";
    ck_assert_int_eq(frame_write(w, req, strlen(req), NULL, 0), 0);
    cJSON *r = NULL;
    int fds[FRAME_MAX_FDS], nfds = 0;
    int rc = frame_read_json(w, &r, fds, &nfds, FRAME_MAX_FDS, 2000);
    ck_assert_msg(rc == 0, "no answer to a wait for the other type within 2 s (queued?): %s",
                  strerror(errno));
    ck_assert_int_eq(nfds, 0);
    dt_expect_err(r, "wrong_type");
    sb_want s = {.fd = own, .name = "typed"};
    sb_read_status(&s);
    ck_assert_msg(s.waiters[0] == '\0', "table typed has waiters [%s]", s.waiters);
    /* the owner goes: the table is orphaned, handed to nobody */
    etsmgr_table_close(t);
    close(own);
    dt_wait dw = {w, "typed"};
    ck_assert(tu_eventually(dt_is_orphaned, &dw, SB_MS));
    close(w);
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ etscounterd --standby */

static long sb_cli_number(const char *args)
{
    char *out = NULL;
    int st = rc_sh(&out, 20000, "%s %s", tu_bin("etscounter", false), args);
    ck_assert_msg(rc_ok(st), "etscounter %s failed: %s", args, out ? out : "");
    const char *num = strstr(out, "count = "); /* check prints "table etscounter:\n  count = N" */
    long v = strtol(num ? num + 8 : out, NULL, 10);
    free(out);
    return v;
}

/* etsmgrd started in e and ready (again, after a kill): its pid. */
static pid_t sb_spawn_mgr(tu_env *e)
{
    char *mgr[] = {"etsmgrd", "--log-level", "warning", NULL};
    pid_t d = tu_spawn_ready(e, mgr, SB_MS);
    ck_assert_msg(d > 0, "etsmgrd did not become ready");
    return d;
}

/* A standby etscounterd logging at level to standby.log, once etsmgrd
 * (asked on fd) has it queued for the table: its pid. */
static pid_t sb_standby_queued(tu_env *e, int fd, const char *level)
{
    char *sb[] = {"etscounterd", "--log-level", (char *)level, "--standby", NULL};
    pid_t standby = tu_spawn_logged(e, sb, "standby.log", 0);
    ck_assert_int_gt(standby, 0);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)standby);
    sb_expect_waiters(fd, "etscounter", exp);
    return standby;
}

/* A fresh environment with etsmgrd started in it. */
static pid_t sb_start_mgr(tu_env *e)
{
    tu_env_init(e);
    return sb_spawn_mgr(e);
}

static pid_t sb_counterd(tu_env *e, bool standby)
{
    char *ready[] = {"etscounterd", "--log-level", "error", NULL};
    char *sb[] = {"etscounterd", "--log-level", "error", "--standby", NULL};
    if (!standby) {
        pid_t p = tu_spawn_ready(e, ready, SB_MS);
        ck_assert_msg(p > 0, "etscounterd did not become ready");
        return p;
    }
    pid_t p = tu_spawn(e, sb);
    ck_assert_int_gt(p, 0);
    return p;
}

START_TEST(test_counterd_standby_takes_over)
{
    tu_env e;
    sb_start_mgr(&e);
    int fd = dt_connect(&e);
    pid_t active = sb_counterd(&e, false);
    for (long i = 1; i <= 3; i++)
        ck_assert_int_eq(sb_cli_number("count"), i);
    pid_t standby = sb_counterd(&e, true);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)standby);
    sb_expect_waiters(fd, "etscounter", exp);
    ck_assert_int_eq(sb_cli_number("count"), 4); /* the active one still serves */
    /* queued, the standby blocks: no CPU while it waits (it does not run
     * its loop, so --poll-us cannot make it spin) */
    proc_stat p0, p1;
    ck_assert_int_eq(proc_stat_read(standby, &p0), 0);
    struct timespec wait = {0, 300 * 1000000L};
    while (nanosleep(&wait, &wait) < 0 && errno == EINTR)
        ;
    ck_assert_int_eq(proc_stat_read(standby, &p1), 0);
    ck_assert_msg(p1.cpu_ticks - p0.cpu_ticks <= 1, "the queued standby used %llu ticks of CPU in 300 ms",
                  p1.cpu_ticks - p0.cpu_ticks);
    char *out = NULL;
    int st = rc_sh(&out, 20000, "%s tables", tu_bin("etsmgrctl", false));
    ck_assert_msg(rc_ok(st) && strstr(out, "WAITERS") && strstr(out, exp), "etsmgrctl tables: %s", out);
    free(out);

    tu_kill9(active);
    ck_assert_int_eq(sb_cli_number("count"), 5); /* served by the standby: nothing lost or doubled */
    sb_expect_owner(fd, "etscounter", standby);
    ck_assert_int_eq(sb_cli_number("check"), 5);
    /* and it goes on serving, and stops on SIGTERM with status 0: the
     * thread that took the signals while it waited ends cleanly (it was
     * cancelled, which under SANITIZE=1 left ASan's poisoning of its stack
     * behind: the standby died with status 1 right after the takeover) */
    ck_assert_int_eq(sb_cli_number("count"), 6);
    ck_assert_int_eq(kill(standby, 0), 0);
    ck_assert_int_eq(kill(standby, SIGTERM), 0);
    int ws = tu_wait(standby, SB_MS);
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "the new owner ended with %#x on SIGTERM, not status 0", ws);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* The standby dies: the active one never notices. */
START_TEST(test_counterd_standby_killed)
{
    tu_env e;
    sb_start_mgr(&e);
    int fd = dt_connect(&e);
    pid_t active = sb_counterd(&e, false);
    ck_assert_int_eq(sb_cli_number("count"), 1);
    pid_t standby = sb_counterd(&e, true);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)standby);
    sb_expect_waiters(fd, "etscounter", exp);
    tu_kill9(standby);
    sb_expect_waiters(fd, "etscounter", "");
    ck_assert_int_eq(sb_cli_number("count"), 2);
    sb_expect_owner(fd, "etscounter", active);
    ck_assert_int_eq(kill(active, 0), 0);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A SIGTERM or SIGINT to a queued standby ends it with status 0, at once,
 * as etscounterd(8) says: it leaves the queue, says so in its log, and
 * removes nothing of the active etscounterd's, which goes on owning the
 * table and counting.  (It died by the signal: its handlers were made only
 * after a takeover.) */
static void sb_stop_queued(int sig)
{
    tu_env e;
    sb_start_mgr(&e);
    int fd = dt_connect(&e);
    pid_t active = sb_counterd(&e, false);
    ck_assert_int_eq(sb_cli_number("count"), 1);
    pid_t standby = sb_standby_queued(&e, fd, "notice");
    ck_assert_int_eq(kill(standby, sig), 0);
    int st = tu_wait(standby, SB_MS);
    ck_assert_msg(st != -1, "the standby did not stop within %d ms of %s", SB_MS, strsignal(sig));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the standby ended %s %d on %s, not with status 0",
                  WIFEXITED(st) ? "with status" : "by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                  strsignal(sig));
    char *log = tu_log(&e, "standby.log");
    ck_assert_msg(strstr(log, "standby: stopping on SIG"), "the standby's log: %s", log);
    free(log);
    sb_expect_waiters(fd, "etscounter", "");
    sb_expect_owner(fd, "etscounter", active);
    char sockp[sizeof e.dir + 32];
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", e.dir);
    struct stat sst;
    ck_assert_msg(stat(sockp, &sst) == 0, "the active etscounterd's %s is gone: %s", sockp, strerror(errno));
    ck_assert_int_eq(sb_cli_number("count"), 2);
    ck_assert_int_eq(kill(active, 0), 0);
    close(fd);
    tu_env_cleanup(&e);
}

START_TEST(test_counterd_standby_sigterm_while_queued) { sb_stop_queued(SIGTERM); }
END_TEST

START_TEST(test_counterd_standby_sigint_while_queued) { sb_stop_queued(SIGINT); }
END_TEST

/* etsmgrd at its fd limit when the active etscounterd dies: the handover
 * to the standby fails (internal, "wait again"), and the standby asks
 * again until it goes through, then serves with nothing lost.  (It exited
 * with 70, and the table was left to nobody.) */
START_TEST(test_counterd_standby_handover_refused)
{
    tu_env e;
    pid_t d = sb_start_mgr(&e);
    int fd = dt_connect(&e);
    pid_t active = sb_counterd(&e, false);
    ck_assert_int_eq(sb_cli_number("count"), 1);
    pid_t standby = sb_counterd(&e, true);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)standby);
    sb_expect_waiters(fd, "etscounter", exp);
    struct rlimit old;
    ck_assert(tu_fds_exhaust(d, &old));
    tu_kill9(active);
    dt_wait w = {fd, "etscounter"};
    ck_assert(tu_eventually(dt_is_orphaned, &w, SB_MS)); /* the handover failed: nobody's */
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, &old, NULL), 0);
    sb_expect_owner(fd, "etscounter", standby); /* it asked again */
    ck_assert_int_eq(kill(standby, 0), 0);
    ck_assert_int_eq(sb_cli_number("count"), 2);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A queued standby started with --wait-timeout 300 outlives an etsmgrd
 * that stays down longer than that: the timeout is the start's, and the
 * standby queues again when etsmgrd is back.  (It exited with 69.) */
START_TEST(test_counterd_standby_outlives_wait_timeout)
{
    tu_env e;
    pid_t d = sb_start_mgr(&e);
    pid_t active = sb_counterd(&e, false);
    char *sbw[] = {"etscounterd", "--log-level", "error", "--standby", "--wait-timeout", "300", NULL};
    pid_t standby = tu_spawn(&e, sbw);
    ck_assert_int_gt(standby, 0);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)standby);
    int fd = dt_connect(&e);
    sb_expect_waiters(fd, "etscounter", exp);
    close(fd);
    tu_kill9(d);
    struct timespec down = {0, 800 * 1000000L}; /* the scenario: down for longer than 300 ms */
    while (nanosleep(&down, &down) < 0 && errno == EINTR)
        ;
    ck_assert_msg(kill(standby, 0) == 0 || errno != ESRCH, "the standby is gone");
    sb_spawn_mgr(&e);
    fd = dt_connect(&e);
    sb_expect_waiters(fd, "etscounter", exp); /* queued again */
    tu_kill9(active);
    sb_expect_owner(fd, "etscounter", standby);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* etsmgrd is killed while a standby waits: the active one adds its table
 * back (its watch), the standby queues again and still takes over. */
START_TEST(test_counterd_standby_mgr_restart)
{
    tu_env e;
    pid_t d = sb_start_mgr(&e);
    pid_t active = sb_counterd(&e, false);
    ck_assert_int_eq(sb_cli_number("count"), 1);
    pid_t standby = sb_counterd(&e, true);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)standby);
    int fd = dt_connect(&e);
    sb_expect_waiters(fd, "etscounter", exp);
    close(fd);

    tu_kill9(d);
    sb_spawn_mgr(&e);
    fd = dt_connect(&e);
    sb_expect_waiters(fd, "etscounter", exp);
    sb_expect_owner(fd, "etscounter", active); /* the standby did not snatch it */
    ck_assert_int_eq(sb_cli_number("count"), 2);

    tu_kill9(active);
    ck_assert_int_eq(sb_cli_number("count"), 3);
    sb_expect_owner(fd, "etscounter", standby);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* The standby got the table while its predecessor's etscounterd.lock is
 * still held (the kernel releases a dead process's lock with its last fds,
 * a moment after etsmgrd saw its connection close).  Here the test is that
 * predecessor: it owns the table through the library and holds the lock.
 * The standby gets the table, waits on the lock (blocked in flock, not
 * polling), and serves as soon as the lock is free; held for good, it gives
 * up after its 2 s with status 70 and says why. */
static void sb_lock_case(bool release)
{
    tu_env e;
    sb_start_mgr(&e);
    int fd = dt_connect(&e);
    char lockp[300], sockp[300];
    snprintf(lockp, sizeof lockp, "%s/etscounterd.lock", e.dir);
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", e.dir);
    int lk = sock_lock_file(lockp);
    ck_assert_int_ge(lk, 0);
    etsmgr_client *c = NULL;
    etsmgr_table *t = NULL;
    char msg[256];
    ck_assert_int_eq(etsmgr_connect(e.dir, e.instance, &c, msg, sizeof msg), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_new_table(c, "etscounter", NULL, "etscounter", &t, NULL), ETSMGR_OK);
    pid_t standby = sb_standby_queued(&e, fd, "error");

    long long t0 = tu_now_ms();
    etsmgr_client_close(c); /* our "death": the standby gets the table */
    sb_expect_owner(fd, "etscounter", standby);
    if (release) {
        /* not a synchronisation: the time the lock stays held */
        struct timespec hold = {0, 300 * 1000000L};
        nanosleep(&hold, NULL);
        struct stat st;
        ck_assert_msg(stat(sockp, &st) < 0, "the standby served while the lock was held");
        ck_assert_int_eq(kill(standby, 0), 0);
        close(lk);
        ck_assert_int_eq(sb_cli_number("count"), 1);
        char *out = NULL;
        ck_assert(rc_ok(rc_sh(&out, 20000, "%s ping", tu_bin("etscounter", false))));
        const char *pid = strstr(out, "(pid "); /* "etscounterd (pid N) is serving ..." */
        ck_assert_msg(pid && strtol(pid + 5, NULL, 10) == standby, "etscounter ping: %s", out);
        free(out);
    } else {
        int st = tu_wait(standby, SB_MS);
        long long took = tu_now_ms() - t0;
        ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 70, "standby: wait status 0x%x", st);
        ck_assert_msg(took >= 1900, "the standby gave up the lock after %lld ms, not 2 s", took);
        /* says what happened: it did take the table, and someone else holds the lock */
        char *log = tu_log(&e, "standby.log");
        ck_assert_msg(strstr(log, "standby: took table etscounter over, but ") && strstr(log, "fuser -v ") &&
                          !strstr(log, "another etscounterd serves"),
                      "the standby's log: %s", log);
        free(log);
        close(lk);
    }
    close(fd);
    tu_env_cleanup(&e);
}

START_TEST(test_counterd_standby_waits_for_lock)
{
    sb_lock_case(true);
}
END_TEST

START_TEST(test_counterd_standby_lock_timeout)
{
    sb_lock_case(false);
}
END_TEST

/* The ring records of the request-id region (its word 1; 0 without
 * one), read through a fresh read-only mapping of the table's object, fd
 * (the owner may have grown it since we mapped it) */
static uint64_t sb_once_cap(int fd)
{
    etsmgr_table *v = NULL;
    ck_assert_int_eq(tbl_attach_fd_ro(fcntl(fd, F_DUPFD_CLOEXEC, 0), &v), 0);
    uint64_t off = __atomic_load_n(&v->h->once_off, __ATOMIC_ACQUIRE);
    uint64_t cap = off && off < v->map_size ? tbl_word(v, off)[1] : 0;
    etsmgr_table_close(v);
    return cap;
}

static bool sb_once_small(void *arg)
{
    return sb_once_cap(*(int *)arg) <= 64;
}

/* A standby takes over a table whose request-id region a burst left
 * huge and expired (150,000 records, more than one look of the tidy
 * drops): it sweeps them all and shrinks the region by itself, with no
 * count sent, look after look, instead of leaving the rest to the next
 * owners (before, each promoted standby swept another 65,536 records, and
 * every takeover until the shrink met a dying owner with the sweep's and
 * the huge index's pages mapped: docs/performance.md, "Hot standby",
 * fourth pass).  The ids still kept are still known. */
START_TEST(test_counterd_standby_tidies_burst)
{
    tu_env e;
    sb_start_mgr(&e);
    int fd = dt_connect(&e);
    etsmgr_client *c = NULL;
    etsmgr_table *t = NULL;
    char msg[256];
    ck_assert_int_eq(etsmgr_connect(e.dir, e.instance, &c, msg, sizeof msg), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_new_table(c, "etscounter", NULL, "etscounter", &t, NULL), ETSMGR_OK);
    int tfd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
    ck_assert_int_ge(tfd, 0);
    uint8_t rid[ETSMGR_RID_LEN] = {0};
    int64_t far = etsmgr_mono_ms() + 3600000;
    for (uint32_t i = 0; i < 150000 + 20; i++) { /* the burst, then 20 more */
        memcpy(rid, &i, sizeof i);
        ck_assert_int_eq(tbl_once_put(t, rid, 1, far), 0);
    }
    ck_assert_uint_ge(sb_once_cap(tfd), 262144);
    /* the burst's keep time has passed (ring records of 4 words after the
     * region's 8: rid, value, keep_until) */
    ck_assert_int_eq(tbl_op_begin(t, "test_expire", false), 0);
    uint64_t *reg = tbl_word(t, t->h->once_off);
    for (uint64_t p = reg[3]; p < reg[3] + 150000; p++)
        reg[8 + 4 * (p & (reg[1] - 1)) + 3] = 1;
    ck_assert_int_eq(tbl_op_end(t, 0), 0);
    pid_t standby = sb_standby_queued(&e, fd, "error");
    etsmgr_client_close(c); /* our "death" (t goes with c): the standby gets the table */
    sb_expect_owner(fd, "etscounter", standby);
    ck_assert_msg(tu_eventually(sb_once_small, &tfd, SB_MS), "the region still has %llu records",
                  (unsigned long long)sb_once_cap(tfd));
    /* a kept id is still known: its count is answered as a duplicate
     * with the value it was recorded with, and not counted again */
    memcpy(rid, &(uint32_t){150000}, 4);
    char req[128], sockp[300];
    int n = snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":1,\"rid\":\"");
    for (int i = 0; i < ETSMGR_RID_LEN; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "%02x", rid[i]);
    snprintf(req + n, sizeof req - (size_t)n, "\"}");
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", e.dir);
    int cfd = sock_connect_unix(sockp);
    ck_assert_int_ge(cfd, 0);
    cJSON *rep = NULL;
    ck_assert_int_eq(frame_write(cfd, req, strlen(req), NULL, 0), 0);
    ck_assert_int_ge(frame_read_json(cfd, &rep, NULL, NULL, 0, SB_MS), 0);
    char *txt = cJSON_PrintUnformatted(rep);
    ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "duplicate")) &&
                      cJSON_GetObjectItemCaseSensitive(rep, "count")->valuedouble == 1,
                  "the kept id's count: %s", txt);
    free(txt);
    cJSON_Delete(rep);
    close(cfd);
    ck_assert_int_eq(sb_cli_number("check"), 0);
    close(tfd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

static bool sb_gone(void *arg) { return proc_exited(*(pid_t *)arg); }

/* etscounterd's memory keeper (client/etscounterd/keeper.c): a child that
 * shares its address space, so that a SIGKILL closes etscounterd's sockets
 * (what etsmgrd and the clients wait for) without first tearing its memory
 * down.  It holds no fd of its own (every close waited for is still
 * etscounterd's), shares the address space (kcmp), and goes when
 * etscounterd is killed (PDEATHSIG), so nothing is left behind. */
START_TEST(test_counterd_memory_keeper)
{
    tu_env e;
    sb_start_mgr(&e);
    pid_t active = sb_counterd(&e, false);
    ck_assert_int_eq(sb_cli_number("count"), 1);
    pid_t kids[4];
    int nk = sv_children(active, kids, 4);
    ck_assert_msg(nk == 1, "etscounterd has %d children, expected its memory keeper", nk);
    pid_t keeper = kids[0];
    char comm[64];
    sv_comm(keeper, comm, sizeof comm);
    ck_assert_str_eq(comm, "etscounterd-mm");
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)keeper);
    DIR *d = opendir(path);
    ck_assert_msg(d != NULL, "%s: %s", path, strerror(errno));
    int nfd = 0;
    for (struct dirent *de; (de = readdir(d));)
        nfd += de->d_name[0] != '.';
    closedir(d);
    ck_assert_msg(nfd == 0, "the keeper holds %d fds: a socket among them would not close with etscounterd", nfd);
    long same = syscall(SYS_kcmp, active, keeper, KCMP_VM, 0L, 0L);
    if (same < 0)
        fprintf(stderr, "test_counterd_memory_keeper: kcmp: %s (the shared address space is not checked)\n",
                strerror(errno));
    else
        ck_assert_msg(same == 0, "the keeper does not share etscounterd's address space");
    tu_kill9(active);
    ck_assert_msg(tu_eventually(sb_gone, &keeper, SB_MS), "the keeper %d outlived its etscounterd", (int)keeper);
    tu_env_cleanup(&e);
}
END_TEST

/* Under valgrind etscounterd makes no keeper and serves: valgrind does not
 * refuse a CLONE_VM clone without CLONE_THREAD, it ends the whole process,
 * so etscounterd must not try one there (keeper.c).  Skipped where valgrind
 * is not installed (make memcheck brings it). */
START_TEST(test_counterd_serves_under_valgrind)
{
#if defined(__SANITIZE_ADDRESS__)
    fprintf(stderr, "test_counterd_serves_under_valgrind: skipped, valgrind cannot run an ASan build\n");
    return;
#endif
    const char *vg = access("/usr/bin/valgrind", X_OK) == 0 ? "/usr/bin/valgrind" : NULL;
    if (vg == NULL) {
        fprintf(stderr, "test_counterd_serves_under_valgrind: skipped, /usr/bin/valgrind is not installed\n");
        return;
    }
    tu_env e;
    sb_start_mgr(&e);
    char *argv[] = {(char *)vg, "-q", "--error-exitcode=99", (char *)tu_bin("etscounterd", false), "--log-level",
                    "error", NULL};
    pid_t c = tu_spawn_ready(&e, argv, 45000);
    ck_assert_msg(c > 0, "etscounterd under valgrind did not become ready (a clone valgrind cannot run ends it)");
    ck_assert_int_eq(sb_cli_number("count"), 1);
    ck_assert_int_eq(sb_cli_number("count"), 2);
    pid_t kids[4];
    int nk = sv_children(c, kids, 4);
    ck_assert_msg(nk == 0, "etscounterd under valgrind has %d children: no keeper expected there", nk);
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ handovers that cannot be told */

/* A table found at start (etsmgrd SIGKILLed and started again) whose last
 * owner lives on (a raw client: nothing adds it back), and a standby
 * queued for it, held back while that owner lives: the setup of the two
 * tests below.  Returns the daemon's pid. */
static pid_t sb_found_at_start(tu_env *e, const char *name, pid_t *owner, sb_waiter *w, int *fd)
{
    pid_t d = dt_start(e, NULL);
    *owner = dt_fork_owner(e, name, name, 4);
    tu_kill9(d);
    d = dt_start(e, NULL);
    *fd = dt_connect(e);
    *w = sb_fork_waiter(e, name, -1, 0);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)w->pid);
    sb_expect_waiters(*fd, name, exp);
    return d;
}

/* A new_table that takes such a table over and whose reply cannot go (the
 * daemon at its fd limit: no copy of the table's fd) is undone: the table
 * is as it was, last owner, orphaned-since, heir data and transfers; the
 * standby stays held back while the last owner lives and gets the table
 * once it is gone.  (It was left orphaned with the taker as last owner and
 * no found-at-start mark: the standby snatched it at the next poll, from
 * a living last owner.) */
START_TEST(test_take_undone_as_it_was)
{
    tu_env e;
    tu_env_init(&e);
    pid_t owner;
    sb_waiter w;
    int fd;
    pid_t d = sb_found_at_start(&e, "fa", &owner, &w, &fd);
    cJSON *st = dt_status(fd, "fa");
    ck_assert_ptr_nonnull(st);
    char since[64], heir[64];
    snprintf(since, sizeof since, "%s", dt_str(st, "orphaned_since"));
    snprintf(heir, sizeof heir, "%s", dt_str(st, "heir_data"));
    double transfers = dt_num(st, "transfers");
    cJSON_Delete(st);

    struct rlimit old;
    ck_assert(tu_fds_exhaust(d, &old));
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"new_table\",\"id\":2,\"name\":\"fa\",\"heir_data\":\"taker\"}");
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, &old, NULL), 0);
    ck_assert_msg(strstr(dt_str(r, "message"), "Too many open files") &&
                      strstr(dt_str(r, "message"), "stays orphaned"),
                  "%s", dt_str(r, "message"));
    dt_expect_err(r, "internal");

    /* not a synchronisation: ten rounds of the 20 ms poll that would hand
     * the table over, had it forgotten the last owner */
    struct timespec polls = {0, 200 * 1000000L};
    nanosleep(&polls, NULL);
    ck_assert_msg(sb_silent(&w), "the standby got the table while its last owner lives");
    st = dt_status(fd, "fa");
    ck_assert_str_eq(dt_str(st, "state"), "orphaned");
    ck_assert_str_eq(dt_str(st, "orphaned_since"), since);
    ck_assert_str_eq(dt_str(st, "heir_data"), heir); /* not the taker's */
    ck_assert(dt_num(st, "transfers") == transfers);
    cJSON_Delete(st);

    tu_kill9(owner);
    char rep[64];
    sb_report(&w, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G4\n");
    sb_expect_owner(fd, "fa", w.pid);
    tu_kill9(w.pid);
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* The standby's turn comes but its reply cannot carry the fd (the daemon
 * at its fd limit): it is told so, in words, rather than left waiting for
 * good (etscounterd --standby waits without a deadline), and the table
 * stays orphaned for the next taker. */
START_TEST(test_waiter_told_when_fd_cannot_go)
{
    tu_env e;
    tu_env_init(&e);
    pid_t owner;
    sb_waiter w;
    int fd;
    pid_t d = sb_found_at_start(&e, "fb", &owner, &w, &fd);
    struct rlimit old;
    ck_assert(tu_fds_exhaust(d, &old));
    tu_kill9(owner); /* the poll finds it gone and hands the table over */
    char rep[64], want[32];
    sb_report(&w, SB_MS, rep, sizeof rep);
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, &old, NULL), 0);
    snprintf(want, sizeof want, "E%d\n", ETSMGR_EREFUSED);
    ck_assert_str_eq(rep, want);
    ck_assert(dt_log_has(&e, "could not be sent table=fb"));
    sb_expect_waiters(fd, "fb", "");
    cJSON *st = dt_status(fd, "fb");
    ck_assert_str_eq(dt_str(st, "state"), "orphaned");
    cJSON_Delete(st);
    bool created = true;
    etsmgr_table *t = dt_new_table(fd, "fb", "fb", &created);
    ck_assert(!created);
    ck_assert_int_eq(dt_get_count(t, "count"), 4);
    etsmgr_table_close(t);
    tu_wait(w.pid, SB_MS);
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A child that owns table name with count 4 and then holds the table's
 * lock (a group it never commits: a long transaction, or a process
 * stopped in one) until killed. */
static pid_t sb_fork_locking_owner(const tu_env *e, const char *name)
{
    int pipe_fd;
    pid_t pid = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        etsmgr_client *c = NULL;
        etsmgr_table *t = NULL;
        char msg[256];
        int64_t v;
        if (etsmgr_connect(e->dir, e->instance, &c, msg, sizeof msg) != ETSMGR_OK ||
            etsmgr_new_table(c, name, NULL, name, &t, NULL) != ETSMGR_OK ||
            etsmgr_table_update_counter(t, "count", 5, 4, 0, &v) != ETSMGR_OK ||
            etsmgr_table_begin(t) != ETSMGR_OK) {
            (void)!write(pipe_fd, "F", 1);
            _exit(1);
        }
        (void)!write(pipe_fd, "K", 1);
        for (;;)
            pause();
    }
    char c = 0;
    struct pollfd pfd = {.fd = pipe_fd, .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, SB_MS) == 1 && read(pipe_fd, &c, 1) == 1 && c == 'K',
                  "the owner child could not take table %s and its lock", name);
    close(pipe_fd);
    return pid;
}

/* etsmgrd is SIGKILLed and started again while a table's owner lives and
 * holds the table's lock (a long transaction): the table found at start
 * still names that owner, so a standby queued for it is held back until
 * the owner is gone, as for any table found at start.  (Rediscovery read
 * the header under the lock, gave up after the lock timeout and left the
 * table unmarked: the standby got it at once, while the owner, alive and
 * writing, was about to add it back.) */
START_TEST(test_found_at_start_locked_by_owner)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    pid_t owner = sb_fork_locking_owner(&e, "lk");
    tu_kill9(d);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    sb_waiter w = sb_fork_waiter(&e, "lk", -1, 0);
    /* not a synchronisation: the waiter connects and asks within these
     * 300 ms, and gets the table in them if it is not held back */
    struct timespec settle = {0, 300 * 1000000L};
    nanosleep(&settle, NULL);
    ck_assert_msg(sb_silent(&w), "the standby got the table while its owner lives");
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)w.pid);
    sb_expect_waiters(fd, "lk", exp);
    tu_kill9(owner);
    char rep[64];
    sb_report(&w, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G4\n");
    sb_expect_owner(fd, "lk", w.pid);
    tu_kill9(w.pid);
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A table found at start whose last owner is killed and not reaped (a
 * zombie: its parent has not waited for it, which may be never): the
 * standby gets the table.  (kill(pid, 0) says a zombie lives: the standby
 * waited for as long as the parent did not reap it.) */
START_TEST(test_found_at_start_owner_zombie)
{
    tu_env e;
    tu_env_init(&e);
    pid_t owner;
    sb_waiter w;
    int fd;
    sb_found_at_start(&e, "zo", &owner, &w, &fd);
    ck_assert_int_eq(kill(owner, SIGKILL), 0); /* not reaped: this process does not wait for it yet */
    char rep[64];
    sb_report(&w, 3000, rep, sizeof rep);
    tu_wait(owner, SB_MS);
    ck_assert_str_eq(rep, "G4\n");
    sb_expect_owner(fd, "zo", w.pid);
    tu_kill9(w.pid);
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

static void *sb_pause_thread(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

/* The same, but the last owner's main thread has exited and another one
 * runs on: the leader shows as a zombie, the process lives and holds the
 * table, and the standby is held back until the whole process is gone. */
START_TEST(test_found_at_start_owner_leader_exited)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    int pipe_fd;
    pid_t owner = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(owner, 0);
    if (owner == 0) {
        etsmgr_client *c = NULL;
        etsmgr_table *t = NULL;
        char msg[256];
        int64_t v;
        pthread_t th;
        if (etsmgr_connect(e.dir, e.instance, &c, msg, sizeof msg) != ETSMGR_OK ||
            etsmgr_new_table(c, "zl", NULL, "zl", &t, NULL) != ETSMGR_OK ||
            etsmgr_table_update_counter(t, "count", 5, 4, 0, &v) != ETSMGR_OK ||
            pthread_create(&th, NULL, sb_pause_thread, NULL) != 0)
            _exit(1);
        (void)!write(pipe_fd, "K", 1);
        pthread_exit(NULL);
    }
    char c = 0;
    struct pollfd pfd = {.fd = pipe_fd, .events = POLLIN};
    ck_assert_msg(poll(&pfd, 1, SB_MS) == 1 && read(pipe_fd, &c, 1) == 1 && c == 'K',
                  "the owner child failed");
    close(pipe_fd);
    tu_kill9(d);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    sb_waiter w = sb_fork_waiter(&e, "zl", -1, 0);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)w.pid);
    sb_expect_waiters(fd, "zl", exp);
    /* not a synchronisation: ten rounds of the 20 ms poll */
    struct timespec polls = {0, 200 * 1000000L};
    nanosleep(&polls, NULL);
    ck_assert_msg(sb_silent(&w), "the standby got the table while its owner's other thread runs");
    tu_kill9(owner);
    char rep[64];
    sb_report(&w, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G4\n");
    tu_kill9(w.pid);
    close(w.rd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* The last owner of a table found at start asks for it with "wait" (its
 * handover's reply was lost with the daemon, and it waits again, as
 * etsmgr_new_table_wait's ENOTCONN says to): it gets it at once, as a
 * plain new_table would.  (It was queued, held back while the last owner
 * lives, that is, behind itself, for good.) */
START_TEST(test_last_owner_waits_for_nobody)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "self", "self", NULL);
    etsmgr_table_close(t);
    tu_kill9(d); /* while this process owns the table: its header names it */
    close(fd);
    dt_start(&e, NULL);
    fd = dt_connect(&e);
    int tfd = -1;
    cJSON *r = dt_callf(fd, &tfd, "{\"op\":\"new_table\",\"id\":1,\"name\":\"self\",\"wait\":true}");
    ck_assert_int_ge(tfd, 0);
    close(tfd);
    ck_assert(!dt_bool(r, "created"));
    dt_expect_ok(r);
    sb_expect_owner(fd, "self", getpid());
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A give_away to a process whose connection waiting for the table is not
 * its newest: the waiting one gets it, answering its wait.  (The newest
 * got the transfer event, which nothing read, while the wait went on.) */
START_TEST(test_give_away_finds_the_waiting_connection)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "gw", "gw", NULL);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 2, 0, &v), ETSMGR_OK);
    sb_waiter w = sb_fork_waiter_spare(&e, "gw", -1, 0, true);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)w.pid);
    sb_expect_waiters(fd, "gw", exp);
    dt_expect_ok(dt_callf(fd, NULL, "{\"op\":\"give_away\",\"id\":2,\"name\":\"gw\",\"pid\":%d}", (int)w.pid));
    char rep[64];
    sb_report(&w, SB_MS, rep, sizeof rep);
    ck_assert_str_eq(rep, "G2\n");
    sb_expect_waiters(fd, "gw", "");
    tu_kill9(w.pid);
    close(w.rd);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ cancel_wait */

/* etsmgrd started in e, two raw connections (fd to look, wfd waiting),
 * table name owned by a forked owner; wfd asks for it with wait (id 1),
 * and once it is queued the owner is killed: the table goes to wfd. */
static void sb_raw_wait_then_owner_dies(tu_env *e, const char *name, int *fd, int *wfd)
{
    dt_start(e, NULL);
    *fd = dt_connect(e);
    *wfd = dt_connect(e);
    pid_t owner = dt_fork_owner(e, name, name, 1);
    char req[128], exp[32];
    snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":1,\"name\":\"%s\",\"wait\":true}", name);
    ck_assert_int_eq(frame_write(*wfd, req, strlen(req), NULL, 0), 0);
    snprintf(exp, sizeof exp, "%d", (int)getpid());
    sb_expect_waiters(*fd, name, exp);
    tu_kill9(owner);
}

/* A raw waiter handed the table as the reply to its wait, which cancels
 * the wait afterwards (a library caller whose wait timed out just before):
 * the table is let go again (released), nobody owns it unknowingly. */
START_TEST(test_cancel_wait_releases_handed_table)
{
    tu_env e;
    tu_env_init(&e);
    int fd, wfd;
    sb_raw_wait_then_owner_dies(&e, "h", &fd, &wfd);
    sb_expect_owner(fd, "h", getpid());
    /* the handover's reply is left unread, like a timed-out call's */
    cJSON *r = dt_callf(wfd, NULL, "{\"op\":\"cancel_wait\",\"id\":2,\"name\":\"h\"}");
    ck_assert_int_eq((int)dt_num(r, "id"), 1); /* the handover, first */
    cJSON_Delete(r);
    r = NULL;
    ck_assert_int_eq(frame_read_json(wfd, &r, NULL, NULL, 0, SB_MS), 0);
    ck_assert_int_eq((int)dt_num(r, "id"), 2);
    ck_assert(dt_bool(r, "released"));
    dt_expect_ok(r);
    dt_wait dw = {fd, "h"};
    ck_assert(tu_eventually(dt_is_orphaned, &dw, SB_MS));
    close(wfd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A raw client with two waits for one table pipelined, handed the table by
 * the first, cancels: every wait of its for the table ends before the
 * table is let go, so its second wait does not get it back (a reply it
 * will not read either).  (The release served the queue with the second
 * wait still in it: the client owned the table again, unknowingly.) */
START_TEST(test_cancel_wait_ends_every_wait)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e), wfd = dt_connect(&e);
    pid_t owner = dt_fork_owner(&e, "pp", "pp", 1);
    for (int id = 1; id <= 2; id++) {
        char req[96];
        int n = snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":%d,\"name\":\"pp\",\"wait\":true}", id);
        ck_assert_int_eq(frame_write(wfd, req, (size_t)n, NULL, 0), 0);
    }
    char exp[32];
    snprintf(exp, sizeof exp, "%d,%d", (int)getpid(), (int)getpid());
    sb_expect_waiters(fd, "pp", exp);
    tu_kill9(owner);
    sb_expect_owner(fd, "pp", getpid());
    const char *req = "{\"op\":\"cancel_wait\",\"id\":3,\"name\":\"pp\"}";
    ck_assert_int_eq(frame_write(wfd, req, strlen(req), NULL, 0), 0);
    cJSON *r = NULL;
    int fds[FRAME_MAX_FDS], nfds = 0;
    for (;;) { /* the handover (id 1), then the cancel's reply */
        ck_assert_int_eq(frame_read_json(wfd, &r, fds, &nfds, FRAME_MAX_FDS, SB_MS), 0);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (dt_num(r, "id") == 3)
            break;
        cJSON_Delete(r);
    }
    ck_assert(dt_bool(r, "released"));
    dt_expect_ok(r);
    dt_wait dw = {fd, "pp"};
    ck_assert_msg(tu_eventually(dt_is_orphaned, &dw, SB_MS), "the canceller owns the table again");
    sb_expect_waiters(fd, "pp", "");
    close(wfd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A raw waiter handed the table as the reply to its wait, which it reads,
 * asks for the table again (new_table: "again", told once more) and then
 * cancels a wait for it (a library caller's etsmgr_new_table_wait with a
 * short timeout, answered "again" just too late): the table stays its
 * own, as the cancel's "released: false" says.  (The mark of the wait's
 * handover outlived the reply that told the owner again: the cancel let
 * go of a table the process held, and the next taker got it too.) */
START_TEST(test_cancel_wait_keeps_table_told_again)
{
    tu_env e;
    tu_env_init(&e);
    int fd, wfd;
    sb_raw_wait_then_owner_dies(&e, "ta", &fd, &wfd);
    cJSON *r = NULL;
    int tfd = -1, n = 0;
    ck_assert_int_eq(frame_read_json(wfd, &r, &tfd, &n, 1, SB_MS), 0);
    ck_assert_int_eq((int)dt_num(r, "id"), 1); /* the handover, read */
    ck_assert_int_eq(n, 1);
    close(tfd);
    dt_expect_ok(r);
    r = dt_callf(wfd, &tfd, "{\"op\":\"new_table\",\"id\":2,\"name\":\"ta\"}");
    ck_assert_int_ge(tfd, 0);
    close(tfd);
    ck_assert(!dt_bool(r, "created"));
    dt_expect_ok(r);
    r = dt_callf(wfd, NULL, "{\"op\":\"cancel_wait\",\"id\":3,\"name\":\"ta\"}");
    ck_assert_msg(!dt_bool(r, "released"), "cancel_wait let go of a table its owner was told of");
    dt_expect_ok(r);
    sb_expect_owner(fd, "ta", getpid());
    close(wfd);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

/* A table given by give_away to a process blocked waiting for that very
 * table answers its wait: the process owns it and knows it, and the
 * waiter queued before it does not get it.  (The transfer event queued
 * unread while the wait went on, for good without a deadline; with one,
 * the wait timed out and its cancel_wait let go of the table the process
 * had been told was its own: the daemon handed it to the waiter queued
 * first, while the receiver held it too.) */
START_TEST(test_give_away_answers_wait)
{
    tu_env e;
    tu_env_init(&e);
    dt_start(&e, NULL);
    int fd = dt_connect(&e);
    etsmgr_table *t = dt_new_table(fd, "g", "g", NULL);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 3, 0, &v), ETSMGR_OK);
    sb_waiter first = sb_fork_waiter(&e, "g", -1, 0);
    char exp[32];
    snprintf(exp, sizeof exp, "%d", (int)first.pid);
    sb_expect_waiters(fd, "g", exp);
    int pipe_fd;
    pid_t child = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        etsmgr_client *c = NULL;
        char msg[256], line[64];
        if (etsmgr_connect(e.dir, e.instance, &c, msg, sizeof msg) != ETSMGR_OK)
            _exit(2);
        etsmgr_table *got = NULL, *more = NULL;
        int werr = etsmgr_new_table_wait(c, "g", NULL, "g", 5000, &got, NULL);
        etsmgr_value val = {0};
        char buf[32];
        int64_t n = werr == ETSMGR_OK && etsmgr_table_lookup(got, "count", 5, &val, buf, sizeof buf) == ETSMGR_OK
                        ? val.i
                        : -1;
        int terr = etsmgr_take_transfer(c, 0, &more, NULL); /* no second handle */
        snprintf(line, sizeof line, "%d %lld %d\n", werr, (long long)n, terr);
        (void)!write(pipe_fd, line, strlen(line));
        for (;;)
            pause();
    }
    snprintf(exp, sizeof exp, "%d,%d", (int)first.pid, (int)child);
    sb_expect_waiters(fd, "g", exp);
    dt_expect_ok(dt_callf(fd, NULL, "{\"op\":\"give_away\",\"id\":3,\"name\":\"g\",\"pid\":%d}", (int)child));
    sb_waiter w = {child, pipe_fd};
    char rep[64], want[64];
    sb_report(&w, SB_MS, rep, sizeof rep);
    snprintf(want, sizeof want, "%d 3 %d\n", ETSMGR_OK, ETSMGR_ETIMEDOUT);
    ck_assert_str_eq(rep, want); /* the wait got the table, data and all */
    snprintf(exp, sizeof exp, "%d", (int)first.pid);
    sb_expect_waiters(fd, "g", exp);
    sb_expect_owner(fd, "g", child);
    ck_assert_msg(sb_silent(&first), "the first waiter got the table the second one holds");
    tu_kill9(child);
    close(pipe_fd);
    tu_kill9(first.pid);
    close(first.rd);
    etsmgr_table_close(t);
    close(fd);
    tu_env_cleanup(&e);
}
END_TEST

Suite *standby_suite(void)
{
    Suite *s = suite_create("standby");
    TCase *tc = tcase_create("standby");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_queue_order);
    tcase_add_test(tc, test_waiter_disconnects);
    tcase_add_test(tc, test_wait_timeout_cancels);
    tcase_add_test(tc, test_waiter_other_uid_refused);
    tcase_add_test(tc, test_waiter_wrong_type_refused);
    tcase_add_test(tc, test_counterd_standby_takes_over);
    tcase_add_test(tc, test_counterd_standby_killed);
    tcase_add_test(tc, test_counterd_standby_sigterm_while_queued);
    tcase_add_test(tc, test_counterd_standby_sigint_while_queued);
    tcase_add_test(tc, test_counterd_standby_mgr_restart);
    tcase_add_test(tc, test_counterd_standby_handover_refused);
    tcase_add_test(tc, test_counterd_standby_outlives_wait_timeout);
    tcase_add_test(tc, test_counterd_standby_waits_for_lock);
    tcase_add_test(tc, test_counterd_standby_lock_timeout);
    tcase_add_test(tc, test_counterd_standby_tidies_burst);
    tcase_add_test(tc, test_counterd_memory_keeper);
    tcase_add_test(tc, test_counterd_serves_under_valgrind);
    tcase_add_test(tc, test_take_undone_as_it_was);
    tcase_add_test(tc, test_waiter_told_when_fd_cannot_go);
    tcase_add_test(tc, test_last_owner_waits_for_nobody);
    tcase_add_test(tc, test_cancel_wait_releases_handed_table);
    tcase_add_test(tc, test_give_away_answers_wait);
    tcase_add_test(tc, test_give_away_finds_the_waiting_connection);
    tcase_add_test(tc, test_cancel_wait_ends_every_wait);
    tcase_add_test(tc, test_cancel_wait_keeps_table_told_again);
    tcase_add_test(tc, test_found_at_start_locked_by_owner);
    tcase_add_test(tc, test_found_at_start_owner_zombie);
    tcase_add_test(tc, test_found_at_start_owner_leader_exited);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_client.c: libetsmgr's manager client against the real etsmgrd.
 *
 * What an application relies on: waiting for the daemon (and giving up on
 * time), getting a table and getting it back with its data after closing,
 * the errors it can act on (owned, bad name, not connected), give_away to
 * another process, and the libuv watch: SIGKILL the daemon under a running
 * loop, the table stays usable, and once a new daemon is up the table is
 * registered again (the daemon says who owns it), as many times as it takes.
 * Last, a program using only etsmgr.h is built with the pkg-config file, as a
 * user would, and run. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "etsmgr.h"
#include "frame.h"
#include "sock.h"
#include "runcap.h"
#include "testutil.h"

#define CT_SPAWN_MS 15000

static tu_env E;

/* the fixture: tu_env_init, and tu_env_cleanup after each test; a test
 * that ends with exit() is cleaned by testutil's own atexit handler */
static void ct_setup(void) { tu_env_init(&E); }

static void ct_cleanup(void) { tu_env_cleanup(&E); }

static pid_t ct_mgr(void)
{
    char *argv[] = { "etsmgrd", "--log-level", "warning", NULL };
    pid_t p = tu_spawn_ready(&E, argv, CT_SPAWN_MS);
    ck_assert_msg(p > 0, "etsmgrd did not become ready");
    return p;
}

static etsmgr_client *ct_connect(void)
{
    etsmgr_client *c = NULL;
    char msg[256] = "";
    int err = etsmgr_connect(NULL, NULL, &c, msg, sizeof msg);
    ck_assert_msg(err == ETSMGR_OK, "etsmgr_connect: %s: %s", etsmgr_strerror(err), msg);
    return c;
}

/* the daemon's view of a table: owner pid when owned, 0 orphaned, -1 absent */
static long ct_owner(etsmgr_client *c, const char *name)
{
    etsmgr_info *info;
    int err = etsmgr_info_get(c, &info);
    ck_assert_msg(err == ETSMGR_OK, "info: %s", etsmgr_client_message(c));
    long owner = -1;
    for (size_t i = 0; i < info->ntables; i++)
        if (strcmp(info->tables[i].name, name) == 0)
            owner = info->tables[i].owned ? info->tables[i].owner_pid : 0;
    etsmgr_info_free(info);
    return owner;
}

/* ------------------------------------------------------------------ waiting */
START_TEST(test_wait_gives_up)
{
    etsmgr_client *c = (etsmgr_client *)&c;
    char msg[256] = "";
    int err = etsmgr_connect(NULL, NULL, &c, msg, sizeof msg);
    ck_assert_int_eq(err, ETSMGR_ENOTCONN);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(msg, E.dir) && strstr(msg, "etsmgrd.sock") && strstr(msg, E.instance),
                  "the message does not name the runtime dir, socket and instance: %s", msg);
    int64_t t0 = tu_now_ms();
    err = etsmgr_wait(NULL, NULL, 20, 300, &c, msg, sizeof msg);
    int64_t took = tu_now_ms() - t0;
    ck_assert_int_eq(err, ETSMGR_ETIMEDOUT);
    ck_assert_msg(took >= 250 && took < 5000, "waited %lld ms for a 300 ms timeout", (long long)took);
    ck_assert_msg(strstr(msg, "300 ms"), "%s", msg);
    ck_assert_str_ne(etsmgr_strerror(ETSMGR_ETIMEDOUT), "");
    ck_assert_str_ne(etsmgr_strerror(ETSMGR_ENOTCONN), etsmgr_strerror(ETSMGR_ETIMEDOUT));
}
END_TEST

START_TEST(test_wait_for_late_daemon)
{
    char *argv[] = { "etsmgrd", "--log-level", "warning", NULL };
    pid_t d = tu_spawn(&E, argv); /* not waiting for READY: etsmgr_wait does */
    ck_assert_int_gt(d, 0);
    etsmgr_client *c = NULL;
    char msg[256] = "";
    int err = etsmgr_wait(NULL, NULL, 10, 15000, &c, msg, sizeof msg);
    ck_assert_msg(err == ETSMGR_OK, "%s", msg);
    ck_assert_int_eq(etsmgr_client_daemon_pid(c), d);
    ck_assert_int_eq(etsmgr_client_connected(c), 1);
    ck_assert_str_eq(etsmgr_client_instance(c), E.instance);
    ck_assert_str_eq(etsmgr_client_runtime_dir(c), E.dir);
    etsmgr_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------ tables */
/* new_table carries the type; the other type for an existing name is
 * refused with words (wrong_type), and the table is left as it was */
START_TEST(test_table_type)
{
    ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t, *u = NULL;
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    int err = etsmgr_new_table(c, "ord", &o, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_int_eq(info.type, ETSMGR_ORDERED_SET);
    etsmgr_value v = {.type = ETSMGR_INT, .i = 1};
    ck_assert_int_eq(etsmgr_table_insert(t, "b", 1, &v), 0);
    ck_assert_int_eq(etsmgr_table_insert(t, "a", 1, &v), 0);
    char k[8];
    size_t kl;
    ck_assert_int_eq(etsmgr_table_first(t, k, sizeof k, &kl), 0);
    ck_assert_mem_eq(k, "a", 1);
    etsmgr_client_close(c); /* orphaned */
    c = ct_connect();
    err = etsmgr_new_table(c, "ord", NULL, NULL, &u, NULL); /* a set asked for */
    ck_assert_int_eq(err, ETSMGR_EREFUSED);
    ck_assert_msg(strstr(etsmgr_client_message(c), "ordered_set") != NULL, "%s", etsmgr_client_message(c));
    ck_assert_ptr_null(u);
    err = etsmgr_new_table(c, "ord", &o, NULL, &u, NULL);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(etsmgr_table_last(u, k, sizeof k, &kl), 0);
    ck_assert_mem_eq(k, "b", 1);
    o.type = 7;
    ck_assert_int_eq(etsmgr_new_table(c, "other", &o, NULL, &t, NULL), ETSMGR_EINVAL);
    etsmgr_client_close(c);
}
END_TEST

/* new_table of the other type for a table the daemon does not manage (let
 * go with del_table without unlink): refused as wrong_type and nothing
 * changes, the object is not adopted (it was: an orphan under management,
 * that --orphan-ttl could then remove); the right type adopts it, data and all */
START_TEST(test_table_type_unmanaged)
{
    ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t, *u = NULL;
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    int err = etsmgr_new_table(c, "loose", &o, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    etsmgr_value v = {.type = ETSMGR_INT, .i = 7};
    ck_assert_int_eq(etsmgr_table_insert(t, "a", 1, &v), 0);
    err = etsmgr_del_table(c, t, 0); /* let go: the object and its data stay */
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(ct_owner(c, "loose"), -1);
    ck_assert_int_eq(tu_count_shm(&E), 1);

    err = etsmgr_new_table(c, "loose", NULL, NULL, &u, NULL); /* a set asked for */
    ck_assert_int_eq(err, ETSMGR_EREFUSED);
    ck_assert_str_eq(etsmgr_client_error(c), "wrong_type");
    ck_assert_ptr_null(u);
    ck_assert_msg(ct_owner(c, "loose") == -1, "a refused new_table left the table managed (owner %ld)",
                  ct_owner(c, "loose"));
    ck_assert_int_eq(tu_count_shm(&E), 1);

    etsmgr_grant g;
    err = etsmgr_new_table(c, "loose", &o, NULL, &u, &g);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(g.created, 0);
    ck_assert_int_eq(ct_owner(c, "loose"), getpid());
    etsmgr_value got;
    ck_assert_int_eq(etsmgr_table_lookup(u, "a", 1, &got, NULL, 0), 0);
    ck_assert_int_eq(got.i, 7);
    etsmgr_client_close(c);
}
END_TEST

START_TEST(test_table_comes_back)
{
    ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t;
    etsmgr_grant g;
    int err = etsmgr_new_table(c, "t1", NULL, "mine", &t, &g);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(g.created, 1);
    ck_assert_str_eq(g.data, "etsmgr");
    ck_assert_int_eq(g.from_pid, etsmgr_client_daemon_pid(c));
    ck_assert_str_eq(etsmgr_table_name(t), "t1");
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k", 1, 41, 0, &v), ETSMGR_OK);
    size_t n;
    etsmgr_table *const *held = etsmgr_client_tables(c, &n);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_eq(held[0], t);
    ck_assert_int_eq(ct_owner(c, "t1"), getpid());
    etsmgr_client_close(c); /* the daemon becomes heir */

    c = ct_connect();
    ck_assert_int_eq(ct_owner(c, "t1"), 0);
    err = etsmgr_new_table(c, "t1", NULL, NULL, &t, &g);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(g.created, 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k", 1, 1, 0, &v), ETSMGR_OK);
    ck_assert_int_eq(v, 42); /* the data survived */

    /* errors an application acts on */
    etsmgr_table *bad;
    ck_assert_int_eq(etsmgr_new_table(c, "a/b", NULL, NULL, &bad, NULL), ETSMGR_ENAME);
    ck_assert_int_eq(etsmgr_new_table(c, "", NULL, NULL, &bad, NULL), ETSMGR_ENAME);
    ck_assert_int_eq(etsmgr_new_table(NULL, "x", NULL, NULL, &bad, NULL), ETSMGR_EINVAL);

    /* del_table with unlink: gone from the daemon and from /dev/shm */
    ck_assert_int_eq(tu_count_shm(&E), 1);
    err = etsmgr_del_table(c, t, 1);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    etsmgr_client_tables(c, &n);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(ct_owner(c, "t1"), -1);
    ck_assert_int_eq(tu_count_shm(&E), 0);
    etsmgr_client_close(c);
}
END_TEST

/* a child that holds table name until told to go (a byte on its stdin pipe) */
static pid_t ct_holder(const char *name, int *go)
{
    int ready[2], gp[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(gp), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        close(gp[1]);
        etsmgr_client *c;
        etsmgr_table *t;
        char b = 'n';
        if (etsmgr_connect(NULL, NULL, &c, NULL, 0) == ETSMGR_OK &&
            etsmgr_new_table(c, name, NULL, NULL, &t, NULL) == ETSMGR_OK)
            b = 'y';
        if (write(ready[1], &b, 1) != 1 || b != 'y')
            _exit(1);
        ssize_t r = read(gp[0], &b, 1);
        _exit(r == 1 ? 0 : 2);
    }
    close(ready[1]);
    close(gp[0]);
    char b = 0;
    ck_assert_int_eq(read(ready[0], &b, 1), 1);
    ck_assert_int_eq(b, 'y');
    close(ready[0]);
    *go = gp[1];
    return pid;
}

START_TEST(test_owned_by_another)
{
    ct_mgr();
    int go;
    pid_t kid = ct_holder("t2", &go);
    etsmgr_client *c = ct_connect();
    etsmgr_table *t;
    etsmgr_grant g;
    int err = etsmgr_new_table(c, "t2", NULL, NULL, &t, &g);
    ck_assert_int_eq(err, ETSMGR_EOWNED);
    ck_assert_int_eq(g.from_pid, kid);
    ck_assert_str_eq(etsmgr_client_error(c), "owned");
    ck_assert_msg(strlen(etsmgr_client_message(c)) > 0, "no message");
    /* the connection stays usable after a refusal */
    ck_assert_int_eq(ct_owner(c, "t2"), kid);
    ck_assert_int_eq(write(go, "x", 1), 1);
    int st = tu_wait(kid, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    etsmgr_client_close(c);
}
END_TEST

START_TEST(test_give_away)
{
    ct_mgr();
    int ready[2], res[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(res), 0);
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        etsmgr_client *c;
        if (etsmgr_connect(NULL, NULL, &c, NULL, 0) != ETSMGR_OK)
            _exit(1);
        if (write(ready[1], "r", 1) != 1)
            _exit(2);
        etsmgr_table *t;
        etsmgr_grant g;
        int64_t v = -1;
        if (etsmgr_take_transfer(c, 10000, &t, &g) != ETSMGR_OK)
            _exit(3);
        etsmgr_table_update_counter(t, "k", 1, 0, 0, &v);
        char line[300];
        int n = snprintf(line, sizeof line, "%s %lld %s %d", etsmgr_table_name(t), (long long)v, g.data,
                         (int)g.from_pid);
        _exit(write(res[1], line, (size_t)n) == n ? 0 : 4);
    }
    close(ready[1]);
    close(res[1]);
    char b;
    ck_assert_int_eq(read(ready[0], &b, 1), 1);
    etsmgr_client *c = ct_connect();
    etsmgr_table *t;
    ck_assert_int_eq(etsmgr_new_table(c, "gift", NULL, NULL, &t, NULL), ETSMGR_OK);
    int64_t v;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k", 1, 7, 0, &v), ETSMGR_OK);
    int err = etsmgr_give_away(c, t, kid, "present");
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    size_t n;
    etsmgr_client_tables(c, &n);
    ck_assert_int_eq(n, 0);
    char line[300] = "";
    ssize_t got = read(res[0], line, sizeof line - 1);
    ck_assert_int_gt(got, 0);
    line[got] = '\0';
    char want[300];
    snprintf(want, sizeof want, "gift 7 present %d", (int)getpid());
    ck_assert_str_eq(line, want);
    int st = tu_wait(kid, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* giving to a pid with no connection is refused, with the daemon's words */
    ck_assert_int_eq(etsmgr_new_table(c, "gift2", NULL, NULL, &t, NULL), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_give_away(c, t, kid, NULL), ETSMGR_EREFUSED);
    ck_assert_str_eq(etsmgr_client_error(c), "no_such_pid");
    etsmgr_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------ reattachment */
struct ct_watch {
    int downs, ups, readded, failed, transfers;
    pid_t down_pid, up_pid;
    char reason[128];
};

static void ct_down(etsmgr_client *c, pid_t pid, const char *reason, void *arg)
{
    (void)c;
    struct ct_watch *w = arg;
    w->downs++;
    w->down_pid = pid;
    snprintf(w->reason, sizeof w->reason, "%s", reason);
}
static void ct_up(etsmgr_client *c, pid_t pid, void *arg)
{
    (void)c;
    struct ct_watch *w = arg;
    w->ups++;
    w->up_pid = pid;
}
static void ct_readded(etsmgr_client *c, etsmgr_table *t, void *arg)
{
    (void)c;
    (void)t;
    ((struct ct_watch *)arg)->readded++;
}
static void ct_failed(etsmgr_client *c, etsmgr_table *t, int err, const char *msg, void *arg)
{
    (void)c;
    (void)t;
    (void)err;
    (void)msg;
    ((struct ct_watch *)arg)->failed++;
}

static void ct_tick(uv_timer_t *h) { (void)h; }

/* runs the loop until *counter reaches want (or the deadline) */
static int ct_run_until(uv_loop_t *loop, const int *counter, int want, int timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, ct_tick, 5, 5);
    int64_t end = tu_now_ms() + timeout_ms;
    while (*counter < want && tu_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return *counter >= want;
}

START_TEST(test_watch_reattaches)
{
    pid_t d = ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t, *t2;
    ck_assert_int_eq(etsmgr_new_table(c, "w1", NULL, "heir-w1", &t, NULL), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_new_table(c, "w2", NULL, NULL, &t2, NULL), ETSMGR_OK);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ct_watch w = { 0 };
    etsmgr_watch_cbs cbs = { .down = ct_down, .up = ct_up, .readded = ct_readded, .failed = ct_failed,
                             .retry_ms = 10 };
    ck_assert_int_eq(etsmgr_watch_start(c, &loop, &cbs, &w), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_watch_start(c, &loop, &cbs, &w), ETSMGR_EINVAL); /* once */
    /* synchronous calls work while the watch runs */
    ck_assert_int_eq(ct_owner(c, "w1"), getpid());

    for (int round = 1; round <= 2; round++) {
        tu_kill9(d);
        ck_assert_msg(ct_run_until(&loop, &w.downs, round, 10000), "round %d: no down callback", round);
        ck_assert_int_eq(w.down_pid, d);
        ck_assert_str_eq(w.reason, "connection closed");
        ck_assert_int_eq(etsmgr_client_connected(c), 0);
        /* the tables stay usable while no daemon runs */
        int64_t v;
        ck_assert_int_eq(etsmgr_table_update_counter(t, "n", 1, 1, 0, &v), ETSMGR_OK);
        ck_assert_int_eq(v, round);
        etsmgr_table *x;
        ck_assert_int_eq(etsmgr_new_table(c, "w3", NULL, NULL, &x, NULL), ETSMGR_ENOTCONN);
        /* a new daemon: up, then both tables registered again */
        d = ct_mgr();
        ck_assert_msg(ct_run_until(&loop, &w.readded, 2 * round, 10000), "round %d: tables not re-added (%d, failed %d)",
                      round, w.readded, w.failed);
        ck_assert_int_eq(w.ups, round);
        ck_assert_int_eq(w.up_pid, d);
        ck_assert_int_eq(w.failed, 0);
        ck_assert_int_eq(etsmgr_client_connected(c), 1);
        ck_assert_int_eq(etsmgr_client_daemon_pid(c), d);
        ck_assert_int_eq(ct_owner(c, "w1"), getpid());
        ck_assert_int_eq(ct_owner(c, "w2"), getpid());
    }
    /* the heir data given at new_table went along with add_table */
    etsmgr_info *info;
    ck_assert_int_eq(etsmgr_info_get(c, &info), ETSMGR_OK);
    ck_assert_int_eq(info->pid, d);
    ck_assert_uint_eq(info->ntables, 2);
    ck_assert_str_eq(info->tables[0].name, "w1");
    ck_assert_str_eq(info->tables[0].heir_data, "heir-w1");
    ck_assert_uint_ge(info->tables[0].entries, 1);
    etsmgr_info_free(info);
    etsmgr_watch_stop(c);
    etsmgr_client_close(c);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&loop), 0); /* every handle of the watch was closed */
}
END_TEST

static void ct_transfer(etsmgr_client *c, etsmgr_table *t, const etsmgr_grant *g, void *arg)
{
    (void)c;
    (void)t;
    (void)g;
    ((struct ct_watch *)arg)->transfers++;
}

/* Ten tables given to a watched client before its loop runs: all ten are
 * its own (transfer called, held).  Each transfer's fd ends a read of its
 * own, and the watch decoded only once the socket was empty, while the fd
 * ledger keeps eight reads: the ninth and tenth fds were closed on
 * arrival, their tables owned by this process in the daemon's record and
 * held by nobody. */
START_TEST(test_watch_takes_many_transfers)
{
    enum { N = 10 };
    ct_mgr();
    etsmgr_client *g[N];
    etsmgr_table *t[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%d", i);
        g[i] = ct_connect();
        ck_assert_int_eq(etsmgr_new_table(g[i], name, NULL, NULL, &t[i], NULL), ETSMGR_OK);
    }
    etsmgr_client *c = ct_connect(); /* this pid's newest connection: the receiver */
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ct_watch w = { 0 };
    etsmgr_watch_cbs cbs = { .transfer = ct_transfer, .retry_ms = 10 };
    ck_assert_int_eq(etsmgr_watch_start(c, &loop, &cbs, &w), ETSMGR_OK);
    for (int i = 0; i < N; i++) /* each answered once its event went to c */
        ck_assert_msg(etsmgr_give_away(g[i], t[i], getpid(), "many") == ETSMGR_OK, "%s",
                      etsmgr_client_message(g[i]));
    ck_assert_msg(ct_run_until(&loop, &w.transfers, N, 10000), "%d of %d transfers", w.transfers, N);
    size_t n;
    etsmgr_client_tables(c, &n);
    ck_assert_uint_eq(n, N);
    etsmgr_watch_stop(c);
    etsmgr_client_close(c);
    for (int i = 0; i < N; i++)
        etsmgr_client_close(g[i]);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* etsmgr_take_transfer with a timeout of 0 takes a transfer that has
 * arrived: it looks at the socket once.  (It gave ETSMGR_ETIMEDOUT
 * without reading, so a poll for transfers never saw one.) */
START_TEST(test_take_transfer_without_waiting)
{
    ct_mgr();
    etsmgr_client *g = ct_connect();
    etsmgr_table *t;
    ck_assert_int_eq(etsmgr_new_table(g, "now", NULL, NULL, &t, NULL), ETSMGR_OK);
    etsmgr_client *c = ct_connect(); /* the receiver */
    etsmgr_table *x;
    ck_assert_int_eq(etsmgr_take_transfer(c, 0, &x, NULL), ETSMGR_ETIMEDOUT); /* nothing yet */
    ck_assert_int_eq(etsmgr_give_away(g, t, getpid(), NULL), ETSMGR_OK); /* the event went before this reply */
    etsmgr_grant gr;
    int err = etsmgr_take_transfer(c, 0, &x, &gr);
    ck_assert_msg(err == ETSMGR_OK, "%s: %s", etsmgr_strerror(err), etsmgr_client_message(c));
    ck_assert_str_eq(etsmgr_table_name(x), "now");
    etsmgr_client_close(c);
    etsmgr_client_close(g);
}
END_TEST

/* A request over the frame limit (a 70,000-byte give_away data) is refused
 * before a byte goes: ETSMGR_EINVAL, and the connection stays, with the
 * tables it holds.  (It was taken for a lost connection: dropped, and
 * every table of the process orphaned while it went on writing them.) */
START_TEST(test_oversized_request_keeps_connection)
{
    ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t;
    ck_assert_int_eq(etsmgr_new_table(c, "keep", NULL, NULL, &t, NULL), ETSMGR_OK);
    size_t len = 70000;
    char *data = malloc(len + 1);
    ck_assert_ptr_nonnull(data);
    memset(data, 'd', len);
    data[len] = '\0';
    ck_assert_int_eq(etsmgr_give_away(c, t, getpid(), data), ETSMGR_EINVAL);
    free(data);
    ck_assert_msg(strstr(etsmgr_client_message(c), "frame limit") != NULL, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(etsmgr_client_connected(c), 1);
    ck_assert_int_eq(ct_owner(c, "keep"), getpid());
    size_t n;
    etsmgr_client_tables(c, &n);
    ck_assert_uint_eq(n, 1); /* still held */
    etsmgr_client_close(c);
}
END_TEST

/* accept on a listening socket of sock_listen_unix, which is non-blocking
 * (for a loop): a stand-in's accept that ran before the client's connect
 * got EAGAIN, and the stand-in was gone (a flake seen under the
 * sanitizers, where the client is slower). */
static int ct_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    return poll(&p, 1, 10000) == 1 ? accept(lfd, NULL, NULL) : -1;
}

/* A table z made by an etsmgrd that is then killed (its fd for a
 * stand-in to hand out): the client that holds it. */
static etsmgr_client *ct_table_z_daemon_killed(etsmgr_table **t0)
{
    pid_t d = ct_mgr();
    etsmgr_client *c0 = ct_connect();
    ck_assert_int_eq(etsmgr_new_table(c0, "z", NULL, NULL, t0, NULL), ETSMGR_OK);
    tu_kill9(d);
    return c0;
}

/* A stand-in for etsmgrd listens on DIR/etsmgrd.sock (a killed daemon's
 * socket file replaced): the listening fd. */
static int ct_stand_in_listen(void)
{
    char path[300], err[200];
    snprintf(path, sizeof path, "%s/etsmgrd.sock", E.dir);
    unlink(path);
    int lfd = sock_listen_unix(path, 0600, 4, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    return lfd;
}

/* In the stand-in: the client's connection, its hello read (*hello) and
 * answered; -1 (said on stderr) when it did not come. */
static int ct_stand_in_hello(int lfd, cJSON **hello)
{
    int cfd = ct_accept(lfd);
    char buf[128];
    if (cfd < 0 || frame_read_json(cfd, hello, NULL, NULL, 0, 10000) < 0) {
        fprintf(stderr, "stand-in etsmgrd: %s: %s\n", cfd < 0 ? "accept" : "reading hello", strerror(errno));
        return -1;
    }
    int n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d,\"protocol\":1,\"pid\":%d}",
                     (int)cJSON_GetObjectItemCaseSensitive(*hello, "id")->valuedouble, (int)getpid());
    return frame_write(cfd, buf, (size_t)n, NULL, 0) < 0 ? -1 : cfd;
}

/* A stand-in for etsmgrd on DIR/etsmgrd.sock: answers hello, and once
 * told (a byte on go), sends the event transfer of table name with fd and
 * closes at once, as a daemon that gives a table and is killed. */
static pid_t ct_fake_daemon(const char *name, int fd, int *go)
{
    int lfd = ct_stand_in_listen();
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        close(p[1]);
        cJSON *req = NULL;
        char buf[256], b;
        int cfd = ct_stand_in_hello(lfd, &req);
        if (cfd < 0)
            _exit(1);
        if (read(p[0], &b, 1) != 1)
            _exit(2);
        int n = snprintf(buf, sizeof buf, "{\"event\":\"transfer\",\"name\":\"%s\",\"from_pid\":1,\"data\":null,"
                     "\"generation\":1}", name);
        _exit(frame_write(cfd, buf, (size_t)n, &fd, 1) < 0 ? 3 : 0);
    }
    close(lfd);
    close(p[0]);
    *go = p[1];
    return kid;
}

/* A daemon that gives this process a table and dies at once: the event and
 * the end of the connection come in one read.  The event is this process's
 * all the same (it was dropped with the connection): the watch delivers the
 * table, and registers it with the next daemon, which then knows its
 * owner.  (Dropped, the table stayed orphaned in the next daemon, its last
 * owner this living process, so a standby waiting for it never got it.) */
START_TEST(test_watch_keeps_transfer_read_with_eof)
{
    etsmgr_table *t0;
    etsmgr_client *c0 = ct_table_z_daemon_killed(&t0);
    int go;
    pid_t fake = ct_fake_daemon("z", etsmgr_table_fd(t0), &go);
    etsmgr_client *c = ct_connect();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ct_watch w = { 0 };
    etsmgr_watch_cbs cbs = { .down = ct_down, .up = ct_up, .readded = ct_readded, .failed = ct_failed,
                             .transfer = ct_transfer, .retry_ms = 10 };
    ck_assert_int_eq(etsmgr_watch_start(c, &loop, &cbs, &w), ETSMGR_OK);
    ck_assert_int_eq(write(go, "g", 1), 1);
    int st = tu_wait(fake, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fake daemon: status 0x%x", st);
    close(go);
    ck_assert(ct_run_until(&loop, &w.downs, 1, 10000));
    ct_mgr();
    ck_assert_msg(ct_run_until(&loop, &w.transfers, 1, 10000), "the transfer was lost (ups %d)", w.ups);
    ck_assert_int_eq(ct_owner(c, "z"), getpid());
    etsmgr_watch_stop(c);
    etsmgr_client_close(c);
    etsmgr_client_close(c0);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* A stand-in for the next etsmgrd: takes the watch's re-registration
 * (hello, then one add_table), says so on *got, and once told (a byte on
 * *go) answers hello, and refuses the add_table with "owned", as a daemon
 * whose table another process took meanwhile; then waits for the close. */
static pid_t ct_refusing_daemon(int *got, int *go)
{
    int lfd = ct_stand_in_listen();
    int g[2], o[2];
    ck_assert_int_eq(pipe(g), 0);
    ck_assert_int_eq(pipe(o), 0);
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        close(g[0]);
        close(o[1]);
        int cfd = ct_accept(lfd);
        cJSON *hello = NULL, *add = NULL;
        if (cfd < 0 || frame_read_json(cfd, &hello, NULL, NULL, 0, 10000) < 0 ||
            frame_read_json(cfd, &add, NULL, NULL, 0, 10000) < 0) {
            fprintf(stderr, "stand-in etsmgrd: %s: %s\n", cfd < 0 ? "accept" : "reading", strerror(errno));
            _exit(1);
        }
        char buf[256], b;
        if (write(g[1], "r", 1) != 1 || read(o[0], &b, 1) != 1)
            _exit(2);
        int n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d,\"protocol\":1,\"pid\":%d}",
                         (int)cJSON_GetObjectItemCaseSensitive(hello, "id")->valuedouble, (int)getpid());
        if (frame_write(cfd, buf, (size_t)n, NULL, 0) < 0)
            _exit(3);
        n = snprintf(buf, sizeof buf, "{\"ok\":false,\"id\":%d,\"error\":\"owned\",\"message\":\"pid 1 "
                     "owns it\",\"owner_pid\":1}", (int)cJSON_GetObjectItemCaseSensitive(add, "id")->valuedouble);
        if (frame_write(cfd, buf, (size_t)n, NULL, 0) < 0)
            _exit(4);
        _exit(read(cfd, &b, 1) == 0 ? 0 : 5); /* until the client closes */
    }
    close(lfd);
    close(g[1]);
    close(o[0]);
    *got = g[0];
    *go = o[1];
    return kid;
}

static void ct_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    (*(int *)h->data)++;
    uv_poll_stop(h);
}

struct ct_failed_one {
    struct ct_watch w;
    etsmgr_table *t;
    int err;
};
static void ct_failed_which(etsmgr_client *c, etsmgr_table *t, int err, const char *msg, void *arg)
{
    struct ct_failed_one *f = arg;
    ct_failed(c, t, err, msg, &f->w);
    f->t = t;
    f->err = err;
}

/* A transfer not taken yet when etsmgrd went away, taken by the
 * application while the watch re-registers it with the next daemon, and
 * refused there (another process took the table meanwhile): the table is
 * the application's now, held like any other, so the refusal is told with
 * the failed callback, as for a held table.  (It was handled as a transfer
 * still pending: "dropped" from a pending list it had left, no callback,
 * and the application held, unknowing, a table another process owned.) */
START_TEST(test_watch_transfer_taken_while_registering_refused)
{
    etsmgr_table *t0;
    etsmgr_client *c0 = ct_table_z_daemon_killed(&t0);
    int go;
    pid_t fake = ct_fake_daemon("z", etsmgr_table_fd(t0), &go);
    etsmgr_client *c = ct_connect();
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct ct_failed_one f = { 0 };
    etsmgr_watch_cbs cbs = { .down = ct_down, .up = ct_up, .readded = ct_readded, .failed = ct_failed_which,
                             .retry_ms = 10 };
    ck_assert_int_eq(etsmgr_watch_start(c, &loop, &cbs, &f), ETSMGR_OK);
    ck_assert_int_eq(write(go, "g", 1), 1);
    int st = tu_wait(fake, 10000); /* the transfer and the end of stream, both there before the loop reads */
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fake daemon: status 0x%x", st);
    close(go);
    int got;
    pid_t next = ct_refusing_daemon(&got, &go);
    int registering = 0;
    uv_poll_t gp;
    ck_assert_int_eq(uv_poll_init(&loop, &gp, got), 0);
    gp.data = &registering;
    ck_assert_int_eq(uv_poll_start(&gp, UV_READABLE, ct_readable), 0);
    ck_assert_msg(ct_run_until(&loop, &registering, 1, 10000), "no re-registration (downs %d)", f.w.downs);
    ck_assert_int_eq(f.w.downs, 1);
    ck_assert_int_eq(f.w.ups, 0); /* the replies are held back: still registering */
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_take_transfer(c, 0, &t, NULL), ETSMGR_OK);
    ck_assert_str_eq(etsmgr_table_name(t), "z");
    ck_assert_int_eq(write(go, "g", 1), 1);
    ck_assert(ct_run_until(&loop, &f.w.ups, 1, 10000));
    ck_assert_int_eq(f.w.failed, 1);
    ck_assert_ptr_eq(f.t, t);
    ck_assert_int_eq(f.err, ETSMGR_EOWNED);
    etsmgr_watch_stop(c);
    etsmgr_client_close(c);
    st = tu_wait(next, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the refusing stand-in: status 0x%x", st);
    close(go);
    uv_close((uv_handle_t *)&gp, NULL);
    close(got);
    etsmgr_client_close(c0);
    tu_remove_shm(&E); /* z's: its daemon was killed */
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* a stand-in etsmgrd that answers hello and a first
 * new_table (with fd); reads a second new_table and a give_away without
 * answering; once both are read, answers the new_table (ok, with fd) at
 * once, and the give_away (refused: no_such_pid) only after the client's
 * next request, which it then answers ok; reads on until the client
 * closes.  Exits 7 when the client sent release at any time. */
static int rv_id(const cJSON *req) { return (int)cJSON_GetObjectItemCaseSensitive(req, "id")->valuedouble; }

static int rv_is_release(const cJSON *req)
{
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "op"));
    return op && strcmp(op, "release") == 0;
}

static pid_t rv_crossing_daemon(int tfd)
{
    int lfd = ct_stand_in_listen();
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        cJSON *hello = NULL, *nt1 = NULL, *nt2 = NULL, *ga = NULL, *next = NULL;
        char buf[256];
        int released = 0;
        int cfd = ct_stand_in_hello(lfd, &hello);
        if (cfd < 0)
            _exit(1);
        if (frame_read_json(cfd, &nt1, NULL, NULL, 0, 10000) < 0)
            _exit(2);
        int n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d,\"name\":\"z\",\"created\":false}", rv_id(nt1));
        if (frame_write(cfd, buf, (size_t)n, &tfd, 1) < 0 || frame_read_json(cfd, &nt2, NULL, NULL, 0, 10000) < 0 ||
            frame_read_json(cfd, &ga, NULL, NULL, 0, 10000) < 0)
            _exit(3);
        /* the new_table's answer comes while the client still waits for the give_away's */
        n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d,\"name\":\"z\",\"created\":false}", rv_id(nt2));
        if (frame_write(cfd, buf, (size_t)n, &tfd, 1) < 0)
            _exit(4);
        for (;;) { /* the client's next request; a release before it counts */
            if (frame_read_json(cfd, &next, NULL, NULL, 0, 10000) < 0)
                _exit(5);
            if (!rv_is_release(next))
                break;
            released = 1;
            cJSON_Delete(next);
        }
        n = snprintf(buf, sizeof buf, "{\"ok\":false,\"id\":%d,\"error\":\"no_such_pid\",\"message\":\"no "
                     "connection of pid 1\"}", rv_id(ga));
        if (frame_write(cfd, buf, (size_t)n, NULL, 0) < 0)
            _exit(6);
        n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d}", rv_id(next));
        if (frame_write(cfd, buf, (size_t)n, NULL, 0) < 0)
            _exit(6);
        cJSON *more;
        while (frame_read_json(cfd, &more, NULL, NULL, 0, 10000) == 0) {
            released |= rv_is_release(more);
            n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d}", rv_id(more));
            (void)frame_write(cfd, buf, (size_t)n, NULL, 0);
            cJSON_Delete(more);
        }
        _exit(released ? 7 : 0);
    }
    close(lfd);
    return kid;
}

/* the application holds z; a new_table z (again) times out,
 * then a give_away of z times out (the handle is in doubt, unheld); the
 * new_table's late ok comes first and queues a release of z, which goes
 * before the next request because nothing holds z at that moment; the
 * give_away's refusal comes after it and holds z again.  The daemon has
 * orphaned z (released), the application holds it: two owners. */
START_TEST(test_release_crosses_timed_out_give_away)
{
    etsmgr_table *t0;
    etsmgr_client *c0 = ct_table_z_daemon_killed(&t0);
    pid_t fake = rv_crossing_daemon(etsmgr_table_fd(t0));
    etsmgr_client *c = ct_connect();
    etsmgr_table *h1 = NULL, *h2 = NULL;
    int err = etsmgr_new_table(c, "z", NULL, NULL, &h1, NULL);
    ck_assert_msg(err == ETSMGR_OK, "new_table z: %s", etsmgr_client_message(c));
    etsmgr_client_set_timeout(c, 300);
    ck_assert_int_eq(etsmgr_new_table(c, "z", NULL, NULL, &h2, NULL), ETSMGR_ETIMEDOUT);
    ck_assert_int_eq(etsmgr_give_away(c, h1, 1, "x"), ETSMGR_ETIMEDOUT);
    etsmgr_client_set_timeout(c, 10000);
    etsmgr_info *info;
    err = etsmgr_info_get(c, &info);
    ck_assert_msg(err == ETSMGR_OK, "info: %s", etsmgr_client_message(c));
    etsmgr_info_free(info);
    size_t n;
    etsmgr_table *const *held = etsmgr_client_tables(c, &n);
    ck_assert_uint_eq(n, 1); /* the refusal gave h1 back */
    ck_assert_ptr_eq(held[0], h1);
    etsmgr_client_close(c);
    int st = tu_wait(fake, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "the stand-in: status 0x%x (exit 7: the client released z, which it holds)", st);
    etsmgr_client_close(c0);
    tu_remove_shm(&E);
}
END_TEST

/* a stand-in etsmgrd that answers hello, then new_table with the fd of
 * table tfd (named otherwise); exits 0 when the client's next frame is a
 * release of the name it asked for, 8 otherwise */
static pid_t rv_wrong_table_daemon(int tfd)
{
    int lfd = ct_stand_in_listen();
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        cJSON *hello = NULL, *nt = NULL, *next = NULL;
        char buf[256];
        int cfd = ct_stand_in_hello(lfd, &hello);
        if (cfd < 0)
            _exit(1);
        if (frame_read_json(cfd, &nt, NULL, NULL, 0, 10000) < 0)
            _exit(2);
        const char *asked = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(nt, "name"));
        int n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d,\"name\":\"%s\",\"created\":true}", rv_id(nt),
                     asked ? asked : "");
        if (frame_write(cfd, buf, (size_t)n, &tfd, 1) < 0 || frame_read_json(cfd, &next, NULL, NULL, 0, 10000) < 0)
            _exit(3);
        const char *rel = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(next, "name"));
        _exit(rv_is_release(next) && asked && rel && strcmp(rel, asked) == 0 ? 0 : 8);
    }
    close(lfd);
    return kid;
}

/* A new_table answered with a table the client refuses (another table
 * than the one asked for; one that cannot be attached goes the same way)
 * gives the table etsmgrd made this process's back at once: it sends
 * release for it.  (The daemon kept this living process as the owner of a
 * table it never held, until it exited.) */
START_TEST(test_refused_table_given_back)
{
    etsmgr_table *t0;
    etsmgr_client *c0 = ct_table_z_daemon_killed(&t0);
    pid_t fake = rv_wrong_table_daemon(etsmgr_table_fd(t0));
    etsmgr_client *c = ct_connect();
    etsmgr_table *y = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "y", NULL, NULL, &y, NULL), ETSMGR_EPROTO);
    ck_assert_ptr_null(y);
    ck_assert_msg(strstr(etsmgr_client_message(c), "answered new_table y with the table z"), "%s",
                  etsmgr_client_message(c));
    int st = tu_wait(fake, 15000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the stand-in: status 0x%x (not 0: no release of y came)", st);
    etsmgr_client_close(c);
    etsmgr_client_close(c0);
    tu_remove_shm(&E);
}
END_TEST

START_TEST(test_reconnect_sync)
{
    pid_t d = ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t;
    ck_assert_int_eq(etsmgr_new_table(c, "r1", NULL, NULL, &t, NULL), ETSMGR_OK);
    tu_kill9(d);
    etsmgr_info *info;
    ck_assert_int_eq(etsmgr_info_get(c, &info), ETSMGR_ENOTCONN);
    ck_assert_int_eq(etsmgr_reconnect(c, 10, 200), ETSMGR_ETIMEDOUT);
    d = ct_mgr();
    int err = etsmgr_reconnect(c, 10, 10000);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(etsmgr_client_daemon_pid(c), d);
    ck_assert_int_eq(ct_owner(c, "r1"), getpid());
    etsmgr_client_close(c);
}
END_TEST

/* Numbers out of uint64_t's range in what comes back (an id of 1e30, of
 * -5, a generation of 1e300) are no id and no generation, not a
 * conversion the C standard leaves undefined (UBSan's float-cast-overflow
 * stopped the client on them: make check SANITIZE=1). */
START_TEST(test_reply_numbers_out_of_range)
{
    int lfd = ct_stand_in_listen();
    pid_t kid = fork(); /* a stand-in for etsmgrd */
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        int cfd = ct_accept(lfd);
        cJSON *req = NULL;
        char buf[256];
        if (cfd < 0 || frame_read_json(cfd, &req, NULL, NULL, 0, 10000) < 0)
            _exit(1);
        int id = (int)cJSON_GetObjectItemCaseSensitive(req, "id")->valuedouble;
        const char *odd[] = {"{\"ok\":true,\"id\":1e30}", "{\"ok\":true,\"id\":-5}",
                             "{\"ok\":true,\"id\":1.8446744073709552e19}"};
        for (int i = 0; i < 3; i++)
            if (frame_write(cfd, odd[i], strlen(odd[i]), NULL, 0) < 0)
                _exit(2);
        int n = snprintf(buf, sizeof buf, "{\"ok\":true,\"id\":%d,\"protocol\":1,\"pid\":%d}", id, (int)getpid());
        if (frame_write(cfd, buf, (size_t)n, NULL, 0) < 0)
            _exit(3);
        const char *ev = "{\"event\":\"transfer\",\"name\":\"big\",\"from_pid\":1,\"data\":null,"
                         "\"generation\":1e300}";
        char b;
        _exit(frame_write(cfd, ev, strlen(ev), NULL, 0) < 0 || read(cfd, &b, 1) < 0 ? 4 : 0);
    }
    close(lfd);
    etsmgr_client *c = ct_connect(); /* the odd replies are dropped, the real one taken */
    ck_assert_int_eq(etsmgr_client_daemon_pid(c), kid);
    etsmgr_table *t;
    ck_assert_int_eq(etsmgr_take_transfer(c, 200, &t, NULL), ETSMGR_ETIMEDOUT); /* no fd: not a table */
    etsmgr_client_close(c);
    int st;
    ck_assert_int_eq(waitpid(kid, &st, 0), kid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the stand-in: %#x", st);
}
END_TEST

/* When etsmgr_reconnect cannot add back one of its tables, the client's
 * error is that table's: the daemon's code ("owned") and its words, named.
 * (The code used to be the last call's, "" after the next table was added
 * back, so a caller could not tell owned from any other refusal.) */
START_TEST(test_reconnect_reports_first_refusal)
{
    pid_t d = ct_mgr();
    etsmgr_client *c = ct_connect();
    etsmgr_table *t1, *t2;
    ck_assert_int_eq(etsmgr_new_table(c, "q1", NULL, NULL, &t1, NULL), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_new_table(c, "q2", NULL, NULL, &t2, NULL), ETSMGR_OK);
    tu_kill9(d);
    d = ct_mgr(); /* finds both, orphaned */
    int res[2], bye[2];
    ck_assert_int_eq(pipe(res), 0);
    ck_assert_int_eq(pipe(bye), 0);
    pid_t kid = fork(); /* takes q1 while this process is away */
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        close(res[0]);
        close(bye[1]);
        etsmgr_client *k;
        etsmgr_table *x;
        char b;
        if (etsmgr_connect(NULL, NULL, &k, NULL, 0) != ETSMGR_OK ||
            etsmgr_new_table(k, "q1", NULL, NULL, &x, NULL) != ETSMGR_OK || write(res[1], "t", 1) != 1)
            _exit(1);
        _exit(read(bye[0], &b, 1) >= 0 ? 0 : 2); /* owns q1 until told */
    }
    close(res[1]);
    close(bye[0]);
    char b;
    ck_assert_int_eq(read(res[0], &b, 1), 1);
    int err = etsmgr_reconnect(c, 10, 10000);
    ck_assert_int_eq(err, ETSMGR_EOWNED);
    ck_assert_str_eq(etsmgr_client_error(c), "owned");
    ck_assert_msg(strncmp(etsmgr_client_message(c), "q1: ", 4) == 0, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(ct_owner(c, "q2"), getpid()); /* the other one came back */
    close(bye[1]);
    int st;
    ck_assert_int_eq(waitpid(kid, &st, 0), kid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(res[0]);
    etsmgr_client_close(c);
}
END_TEST

/* A table given to this process whose transfer it has not taken yet when
 * etsmgrd restarts is its own all the same: etsmgr_reconnect adds it back
 * with the tables it holds, so that the new daemon knows its owner.  (Only
 * the held ones were added: etsmgr_take_transfer then handed out a table
 * the new daemon had as orphaned, for any process of the uid to take: two
 * owners writing one table.) */
START_TEST(test_reconnect_keeps_pending_transfer)
{
    pid_t d = ct_mgr();
    etsmgr_client *giver = ct_connect();
    etsmgr_client *c = ct_connect(); /* this pid's newest connection: the receiver */
    etsmgr_table *t;
    ck_assert_int_eq(etsmgr_new_table(giver, "p1", NULL, NULL, &t, NULL), ETSMGR_OK);
    int err = etsmgr_give_away(giver, t, getpid(), "later");
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(giver));
    etsmgr_client_close(giver);
    /* a call reads the transfer event on the way and keeps it for later */
    ck_assert_int_eq(ct_owner(c, "p1"), getpid());
    tu_kill9(d);
    d = ct_mgr();
    err = etsmgr_reconnect(c, 10, 10000);
    ck_assert_msg(err == ETSMGR_OK, "%s", etsmgr_client_message(c));
    etsmgr_grant g;
    ck_assert_int_eq(etsmgr_take_transfer(c, 0, &t, &g), ETSMGR_OK);
    ck_assert_str_eq(etsmgr_table_name(t), "p1");
    ck_assert_int_eq(ct_owner(c, "p1"), getpid());
    /* so nobody else may take it */
    etsmgr_client *other = ct_connect();
    etsmgr_table *x;
    ck_assert_int_eq(etsmgr_new_table(other, "p1", NULL, NULL, &x, NULL), ETSMGR_EOWNED);
    etsmgr_client_close(other);
    etsmgr_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------ a library user */
START_TEST(test_pkg_config_user)
{
    const char *libdir = getenv("ETSMGR_LIBDIR"), *src = getenv("ETSMGR_SRCDIR");
    ck_assert_msg(libdir && src, "ETSMGR_LIBDIR and ETSMGR_SRCDIR are set by make check");
#if defined(__SANITIZE_ADDRESS__)
    const char *san = "-fsanitize=address,undefined";
#else
    const char *san = "";
#endif
    char *out = NULL;
    /* shared: exactly what a user types */
    int st = rc_sh(&out, 120000,
                   "export PKG_CONFIG_PATH=%s/pkgconfig && cc %s -std=c11 -Wall -Wextra -Werror -o %s/ex-shared "
                   "%s/tests/progs/client_example.c $(pkg-config --cflags --libs etsmgr) 2>&1",
                   libdir, san, E.dir, src);
    ck_assert_msg(rc_ok(st), "building with pkg-config --cflags --libs etsmgr failed: %s", out);
    free(out);
    /* static: --static links libetsmgr.a and pulls in what it needs */
    st = rc_sh(&out, 120000,
               "export PKG_CONFIG_PATH=%s/pkgconfig && cc %s -std=c11 -Wall -Werror -o %s/ex-static "
               "%s/tests/progs/client_example.c $(pkg-config --static --cflags --libs etsmgr) 2>&1",
               libdir, san, E.dir, src);
    ck_assert_msg(rc_ok(st), "static build with pkg-config --static failed: %s", out);
    free(out);

    ct_mgr();
    /* the build tree's etsmgr.pc carries an rpath: no LD_LIBRARY_PATH */
    st = rc_sh(&out, 20000, "env -u LD_LIBRARY_PATH %s/ex-shared", E.dir);
    ck_assert_msg(rc_ok(st), "the shared example failed: %s", out);
    ck_assert_msg(strstr(out, "runs = 1 (new table)"), "%s", out);
    free(out);
    st = rc_sh(&out, 20000, "%s/ex-static", E.dir);
    ck_assert_msg(rc_ok(st), "the static example failed: %s", out);
    ck_assert_msg(strstr(out, "runs = 2 (data kept)"), "the second run did not get the data back: %s", out);
    free(out);
}
END_TEST

Suite *client_suite(void)
{
    Suite *s = suite_create("client");
    TCase *tc = tcase_create("connect");
    tcase_add_checked_fixture(tc, ct_setup, ct_cleanup);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_wait_gives_up);
    tcase_add_test(tc, test_wait_for_late_daemon);
    suite_add_tcase(s, tc);
    tc = tcase_create("tables");
    tcase_add_checked_fixture(tc, ct_setup, ct_cleanup);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_table_comes_back);
    tcase_add_test(tc, test_table_type);
    tcase_add_test(tc, test_table_type_unmanaged);
    tcase_add_test(tc, test_owned_by_another);
    tcase_add_test(tc, test_give_away);
    suite_add_tcase(s, tc);
    tc = tcase_create("reattach");
    tcase_add_checked_fixture(tc, ct_setup, ct_cleanup);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_watch_reattaches);
    tcase_add_test(tc, test_reconnect_sync);
    tcase_add_test(tc, test_reconnect_reports_first_refusal);
    tcase_add_test(tc, test_reconnect_keeps_pending_transfer);
    tcase_add_test(tc, test_watch_takes_many_transfers);
    tcase_add_test(tc, test_take_transfer_without_waiting);
    tcase_add_test(tc, test_oversized_request_keeps_connection);
    tcase_add_test(tc, test_reply_numbers_out_of_range);
    tcase_add_test(tc, test_watch_keeps_transfer_read_with_eof);
    tcase_add_test(tc, test_watch_transfer_taken_while_registering_refused);
    tcase_add_test(tc, test_release_crosses_timed_out_give_away);
    tcase_add_test(tc, test_refused_table_given_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("user");
    tcase_add_checked_fixture(tc, ct_setup, ct_cleanup);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_pkg_config_user);
    suite_add_tcase(s, tc);
    return s;
}

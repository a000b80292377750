/* SPDX-License-Identifier: Apache-2.0 */
/* test_mgr_edges.c: the manager's corners that adversarial testing broke
 * (issue 12), each a regression test that failed before its fix.
 *
 *  - a late reply's fd belongs to that reply: after a new_table timed out,
 *    the next new_table gets its own table, and the stale fd is closed;
 *  - at its fd limit the daemon still answers new_table, and the table it
 *    could not hand over is not left created; a give_away it cannot carry
 *    out says why and leaves the table with the giver;
 *  - 4,096 tables list (info comes in pages under the frame limit);
 *  - info shows a peer only its own uid's tables (root sees all);
 *  - errors say what happened: a system failure is "internal", another
 *    user's object is "forbidden" with its owner and the --instance hint;
 *  - instances whose names share a dot prefix (P, P.q) share no table;
 *  - a daemon killed while it creates a table blocks nothing: the next one
 *    removes the half-made object and creates the table;
 *  - another uid's object under a table's name does not stop the service;
 *  - one etsmgrd per instance on the machine, whatever its runtime dir, and
 *    another uid holding the lock's name does not keep it from starting;
 *  - size_hint and max_bytes are bounded per table, and a uid's tables
 *    together, by default and by option;
 *  - two users' daemons of one instance (the default's case) run side by
 *    side, each with its own table of the same name;
 *
 * Each test runs its own etsmgrd on a private runtime dir and instance
 * (testutil), and waits on readiness or replies, never on sleeps. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "etsmgr.h"
#include "frame.h"
#include "runcap.h"
#include "sock.h"
#include "testutil.h"
#include "../daemon/etsmgrd.h"

#define ME_SPAWN_MS 15000

static tu_env E;

/* the fixture: tu_env_init, and tu_env_cleanup after each test; a test
 * that ends with exit() is cleaned by testutil's own atexit handler */
static void me_setup(void) { tu_env_init(&E); }

static void me_cleanup(void) { tu_env_cleanup(&E); }

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


/* ------------------------------------------------------------------ raw requests */
static int me_sock(const tu_env *e)
{
    char path[256];
    snprintf(path, sizeof path, "%s/etsmgrd.sock", e->dir);
    int fd = sock_connect_unix(path);
    ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(errno));
    return fd;
}

/* One request; the reply (caller frees); received fds are closed. */
static cJSON *me_call(int fd, const char *json)
{
    ck_assert_int_eq(frame_write(fd, json, strlen(json), NULL, 0), 0);
    cJSON *r = NULL;
    int fds[FRAME_MAX_FDS], nfds = 0;
    int rc = frame_read_json(fd, &r, fds, &nfds, FRAME_MAX_FDS, 10000);
    ck_assert_msg(rc == 0, "no reply to %s: %s", json, strerror(errno));
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return r;
}

static const char *me_str(const cJSON *o, const char *f)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, f));
    return s ? s : "";
}

/* the daemon's view of a table: owner pid when owned, 0 orphaned, -1 not managed */
static long me_owner(etsmgr_client *c, const char *name)
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

static size_t me_nheld(const etsmgr_client *c)
{
    size_t n;
    etsmgr_client_tables(c, &n);
    return n;
}

/* new_table("A") times out, and etsmgrd, stopped meanwhile, creates A and
 * answers.  The application was told ETSMGR_ETIMEDOUT and holds nothing,
 * so A must not stay this process's: the library gives it back (release)
 * before its next request.  (The late reply was dropped with its fd, and
 * A stayed owned by this living process, which never had it: every other
 * process got "owned" for it until this one exited.) */
START_TEST(test_late_new_table_given_back)
{
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_client_set_timeout(c, 300);
    ck_assert_int_eq(kill(d, SIGSTOP), 0);
    etsmgr_table *t = NULL;
    int err = etsmgr_new_table(c, "A", NULL, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_ETIMEDOUT, "new_table A with the daemon stopped: %s (%s)",
                  etsmgr_strerror(err), etsmgr_client_message(c));
    ck_assert_ptr_null(t);
    char said[256];
    snprintf(said, sizeof said, "%s", etsmgr_client_message(c));
    ck_assert_int_eq(kill(d, SIGCONT), 0);
    etsmgr_client_set_timeout(c, 10000);
    ck_assert_int_eq(etsmgr_new_table(c, "B", NULL, NULL, &t, NULL), ETSMGR_OK); /* reads A's reply */
    ck_assert_uint_eq(me_nheld(c), 1);
    ck_assert_int_eq(me_owner(c, "A"), 0); /* orphaned: the release went before info */
    ck_assert_int_eq(me_owner(c, "B"), getpid());
    etsmgr_client *c2 = me_connect();
    etsmgr_table *a = NULL;
    etsmgr_grant g;
    err = etsmgr_new_table(c2, "A", NULL, NULL, &a, &g);
    ck_assert_msg(err == ETSMGR_OK, "another client's new_table A: %s", etsmgr_client_message(c2));
    ck_assert_int_eq(g.created, 0);
    /* a release of a table the caller does not own changes nothing */
    int fd = me_sock(&E);
    cJSON *r = me_call(fd, "{\"op\":\"release\",\"id\":1,\"name\":\"A\"}");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")));
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r, "released")));
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(me_owner(c, "A"), getpid()); /* c2's */
    ck_assert_msg(strstr(said, "given back"), "the timeout said: %s", said);
    etsmgr_client_close(c2);
    etsmgr_client_close(c);
}
END_TEST

/* The application retries the new_table that timed out: whichever comes
 * first, the late reply's release or the retry, the retry's table stays
 * the application's (a release sent after it would take it away). */
START_TEST(test_late_new_table_retry_keeps_it)
{
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_client_set_timeout(c, 300);
    ck_assert_int_eq(kill(d, SIGSTOP), 0);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "A", NULL, NULL, &t, NULL), ETSMGR_ETIMEDOUT);
    ck_assert_int_eq(kill(d, SIGCONT), 0);
    etsmgr_client_set_timeout(c, 10000);
    int err = etsmgr_new_table(c, "A", NULL, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_OK, "new_table A again: %s", etsmgr_client_message(c));
    ck_assert_int_eq(me_owner(c, "A"), getpid());
    ck_assert_int_eq(me_owner(c, "A"), getpid()); /* still, a call later */
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k", 1, 1, 0, &v), ETSMGR_OK);
    etsmgr_client_close(c);
}
END_TEST

/* del_table times out: etsmgrd may have done it, so the handle is no
 * longer held as this process's (a reconnect would add it back); the late
 * ok closes it.  (It stayed held, listed in etsmgr_client_tables, and
 * registered again by a reconnect, after the daemon had let go of it.) */
START_TEST(test_late_del_table_settles)
{
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "D", NULL, NULL, &t, NULL), ETSMGR_OK);
    etsmgr_client_set_timeout(c, 300);
    ck_assert_int_eq(kill(d, SIGSTOP), 0);
    int err = etsmgr_del_table(c, t, 0);
    ck_assert_msg(err == ETSMGR_ETIMEDOUT, "del_table with the daemon stopped: %s (%s)",
                  etsmgr_strerror(err), etsmgr_client_message(c));
    char said[256];
    snprintf(said, sizeof said, "%s", etsmgr_client_message(c));
    ck_assert_uint_eq(me_nheld(c), 0);
    ck_assert_int_eq(kill(d, SIGCONT), 0);
    etsmgr_client_set_timeout(c, 10000);
    int before = tu_count_fds(getpid());
    ck_assert_int_eq(me_owner(c, "D"), -1); /* reads the late ok */
    ck_assert_int_eq(tu_count_fds(getpid()), before - 1); /* the handle's fd, closed */
    ck_assert_uint_eq(me_nheld(c), 0);
    ck_assert_msg(strstr(said, "unknown"), "the timeout said: %s", said);
    etsmgr_client_close(c);
}
END_TEST

/* give_away times out and etsmgrd refuses it (no such pid) when it comes
 * to it: the table is still this process's, and the handle is held again,
 * the same one. */
START_TEST(test_late_give_away_refused_held_again)
{
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "G", NULL, "heir-g", &t, NULL), ETSMGR_OK);
    etsmgr_client_set_timeout(c, 300);
    ck_assert_int_eq(kill(d, SIGSTOP), 0);
    int err = etsmgr_give_away(c, t, 1, "gift"); /* pid 1 has no connection */
    ck_assert_msg(err == ETSMGR_ETIMEDOUT, "give_away with the daemon stopped: %s (%s)",
                  etsmgr_strerror(err), etsmgr_client_message(c));
    ck_assert_uint_eq(me_nheld(c), 0);
    ck_assert_int_eq(kill(d, SIGCONT), 0);
    etsmgr_client_set_timeout(c, 10000);
    ck_assert_int_eq(me_owner(c, "G"), getpid()); /* reads the late refusal */
    size_t n;
    etsmgr_table *const *held = etsmgr_client_tables(c, &n);
    ck_assert_uint_eq(n, 1);
    ck_assert_ptr_eq(held[0], t);
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k", 1, 1, 0, &v), ETSMGR_OK);
    /* and it is given away for real now, heir data and all */
    etsmgr_info *info;
    ck_assert_int_eq(etsmgr_info_get(c, &info), ETSMGR_OK);
    ck_assert_str_eq(info->tables[0].heir_data, "heir-g");
    etsmgr_info_free(info);
    ck_assert_int_eq(etsmgr_del_table(c, t, 1), ETSMGR_OK);
    ck_assert_uint_eq(me_nheld(c), 0);
    etsmgr_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------ item 10 */
/* The daemon can create the table but not duplicate its fd for the reply
 * (EMFILE): it must answer, and not leave the table created and owned. */
START_TEST(test_new_table_at_fd_limit_answers)
{
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_client_set_timeout(c, 5000);
    int h[2];
    ck_assert_int_eq(tu_free_fds(d, h, 2), 2);
    struct rlimit old, lim;
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, NULL, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)h[1]; /* one free fd: the table's; none for its copy */
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, &lim, NULL), 0);
    etsmgr_table *t = NULL;
    int err = etsmgr_new_table(c, "t", NULL, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_EREFUSED, "new_table at the fd limit: %s (%s)", etsmgr_strerror(err),
                  etsmgr_client_message(c));
    ck_assert_str_eq(etsmgr_client_error(c), "internal");
    ck_assert_msg(strstr(etsmgr_client_message(c), "Too many open files") &&
                      strstr(etsmgr_client_message(c), "not created"),
                  "%s", etsmgr_client_message(c));
    ck_assert_int_eq(tu_count_shm(&E), 0); /* rolled back */
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, &old, NULL), 0);
    etsmgr_grant g;
    err = etsmgr_new_table(c, "t", NULL, NULL, &t, &g);
    ck_assert_msg(err == ETSMGR_OK, "new_table after the limit is raised: %s", etsmgr_client_message(c));
    ck_assert_int_eq(g.created, 1);
    etsmgr_client_close(c);
}
END_TEST

/* A give_away whose transfer event cannot carry the fd (the daemon at its
 * fd limit) says so, "internal" with the reason, and the table stays the
 * giver's.  (It answered "no_such_pid: the connection of process N is
 * closing", of a receiver alive and well.) */
START_TEST(test_give_away_at_fd_limit)
{
    pid_t d = me_mgr();
    int giver = me_sock(&E);
    cJSON_Delete(me_call(giver, "{\"op\":\"new_table\",\"id\":1,\"name\":\"ga\"}"));
    int to = me_sock(&E); /* this pid's newest connection: the receiver */
    cJSON_Delete(me_call(to, "{\"op\":\"hello\",\"id\":1}")); /* accepted */
    struct rlimit old;
    ck_assert(tu_fds_exhaust(d, &old));
    char req[128];
    snprintf(req, sizeof req, "{\"op\":\"give_away\",\"id\":2,\"name\":\"ga\",\"pid\":%d}", (int)getpid());
    cJSON *r = me_call(giver, req);
    ck_assert_int_eq(prlimit(d, RLIMIT_NOFILE, &old, NULL), 0);
    ck_assert_str_eq(me_str(r, "error"), "internal");
    ck_assert_msg(strstr(me_str(r, "message"), "Too many open files"), "%s", me_str(r, "message"));
    cJSON_Delete(r);
    r = me_call(giver, req); /* still the giver's to give */
    ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")), "%s", me_str(r, "message"));
    cJSON_Delete(r);
    close(to);
    close(giver);
}
END_TEST

/* ------------------------------------------------------------------ item 11 */
START_TEST(test_info_lists_4096_tables)
{
    me_mgr();
    int fd = me_sock(&E);
    /* heir data escaped six-fold in JSON: the longest status a table has */
    char hd[MGRD_HEIR_DATA_MAX * 6 + 1] = "";
    for (int i = 0; i < MGRD_HEIR_DATA_MAX; i++)
        strcat(hd, "\\u0001");
    enum { N = 4096 };
    char *req = malloc(8192);
    ck_assert_ptr_nonnull(req);
    for (int i = 0; i < N; i++) {
        snprintf(req, 8192,
                 "{\"op\":\"new_table\",\"id\":%d,\"name\":\"t%063d\",\"heir_data\":\"%s\","
                 "\"opts\":{\"size_hint\":1}}",
                 i, i, hd);
        cJSON *r = me_call(fd, req);
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")), "table %d: %s", i,
                      me_str(r, "message"));
        cJSON_Delete(r);
    }
    free(req);
    /* a page is a frame under the limit and says there is more */
    cJSON *r = me_call(fd, "{\"op\":\"tables\",\"id\":1}");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")));
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "more")));
    ck_assert_int_gt(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "tables")), 0);
    cJSON_Delete(r);
    /* and the library puts the pages together */
    etsmgr_client *c = me_connect();
    etsmgr_info *info = NULL;
    int err = etsmgr_info_get(c, &info);
    ck_assert_msg(err == ETSMGR_OK, "info: %s", etsmgr_client_message(c));
    ck_assert_int_eq(info->ntables, N);
    for (size_t i = 0; i < info->ntables; i++) {
        char want[80];
        snprintf(want, sizeof want, "t%063zu", i);
        ck_assert_str_eq(info->tables[i].name, want);
    }
    etsmgr_info_free(info);
    etsmgr_client_close(c);
    close(fd);
    /* etsmgrctl tables --json: one object with every table, no "more" */
    char *out = NULL;
    int st = rc_sh(&out, 60000, "'%s' --json tables", tu_bin("etsmgrctl", false));
    ck_assert_msg(rc_ok(st), "etsmgrctl --json tables failed: %.300s", out ? out : "");
    cJSON *all = cJSON_Parse(out);
    free(out);
    ck_assert_ptr_nonnull(all);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(all, "tables")), N);
    ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(all, "more"));
    cJSON_Delete(all);
}
END_TEST

/* ------------------------------------------------------------------ other uids */
/* Runs fn in a child as uid/gid 65534; its output lines come back. */
static void me_as_nobody(void (*fn)(int out, void *arg), void *arg, char *buf, size_t len)
{
    int pipe_fd;
    pid_t child = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(1);
        fn(pipe_fd, arg);
        _exit(0);
    }
    int st = tu_wait(child, 15000);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "uid 65534 child: status %d", st);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(pipe_fd, buf + got, len - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(pipe_fd);
}

static void nobody_info(int out, void *arg)
{
    const char *sock = arg;
    int fd = sock_connect_unix(sock);
    if (fd < 0)
        _exit(2);
    const char *req = "{\"op\":\"new_table\",\"id\":1,\"name\":\"mine\"}";
    cJSON *r = NULL;
    int fds[FRAME_MAX_FDS], nfds = 0;
    if (frame_write(fd, req, strlen(req), NULL, 0) < 0 ||
        frame_read_json(fd, &r, fds, &nfds, FRAME_MAX_FDS, 10000) < 0)
        _exit(3);
    cJSON_Delete(r);
    req = "{\"op\":\"info\",\"id\":2}";
    if (frame_write(fd, req, strlen(req), NULL, 0) < 0 || frame_read_json(fd, &r, NULL, NULL, 0, 10000) < 0)
        _exit(4);
    const cJSON *tb;
    cJSON_ArrayForEach(tb, cJSON_GetObjectItemCaseSensitive(r, "tables"))
        dprintf(out, "%s\n", me_str(tb, "name"));
    cJSON_Delete(r);
    req = "{\"op\":\"info\",\"id\":3,\"name\":\"roots\"}";
    if (frame_write(fd, req, strlen(req), NULL, 0) < 0 || frame_read_json(fd, &r, NULL, NULL, 0, 10000) < 0)
        _exit(5);
    dprintf(out, "%s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")) ? "ok" : me_str(r, "error"));
    cJSON_Delete(r);
}

/* info shows a peer the tables of its own uid; root sees every table. */
START_TEST(test_info_shows_own_tables_only)
{
    me_mgr();
    int fd = me_sock(&E);
    cJSON_Delete(me_call(fd, "{\"op\":\"new_table\",\"id\":1,\"name\":\"roots\"}"));
    char sock[256];
    tu_open_mgr_sock(&E, sock, sizeof sock);
    char buf[512];
    me_as_nobody(nobody_info, sock, buf, sizeof buf);
    ck_assert_str_eq(buf, "mine\nnot_found\n");
    cJSON *r = me_call(fd, "{\"op\":\"info\",\"id\":2}");
    cJSON *tabs = cJSON_GetObjectItemCaseSensitive(r, "tables");
    ck_assert_int_eq(cJSON_GetArraySize(tabs), 2);
    ck_assert_str_eq(me_str(cJSON_GetArrayItem(tabs, 0), "name"), "mine");
    ck_assert_str_eq(me_str(cJSON_GetArrayItem(tabs, 1), "name"), "roots");
    cJSON_Delete(r);
    close(fd);
}
END_TEST

/* ------------------------------------------------------------------ item 12 */
/* A system failure while opening a table is not "invalid_table". */
START_TEST(test_open_error_classified)
{
    cJSON *req = cJSON_Parse("{\"op\":\"new_table\",\"id\":1}");
    cJSON *r = mgrd_open_error(req, "/nowhere:t", ETSMGR_ESYS, EMFILE);
    ck_assert_str_eq(me_str(r, "error"), "internal");
    ck_assert_msg(strstr(me_str(r, "message"), "Too many open files") &&
                      strstr(me_str(r, "message"), "system failure"),
                  "%s", me_str(r, "message"));
    cJSON_Delete(r);
    r = mgrd_open_error(req, "/nowhere:t", ETSMGR_ENOMEM, 0);
    ck_assert_str_eq(me_str(r, "error"), "internal");
    cJSON_Delete(r);
    r = mgrd_open_error(req, "/nowhere:t", ETSMGR_EBADMAGIC, 0);
    ck_assert_str_eq(me_str(r, "error"), "invalid_table");
    cJSON_Delete(r);
    cJSON_Delete(req);
}
END_TEST

/* ------------------------------------------------------------------ item 3 */
static pid_t me_mgr_at(const char *dir, const char *instance)
{
    char *argv[] = {"etsmgrd", "--log-level", "warning", "--runtime-dir", (char *)dir, "--instance",
                    (char *)instance, NULL};
    pid_t p = tu_spawn_ready(&E, argv, ME_SPAWN_MS);
    ck_assert_msg(p > 0, "etsmgrd for %s did not become ready", instance);
    return p;
}

static etsmgr_client *me_connect_to(const char *dir, const char *instance)
{
    etsmgr_client *c = NULL;
    char msg[256] = "";
    int err = etsmgr_connect(dir, instance, &c, msg, sizeof msg);
    ck_assert_msg(err == ETSMGR_OK, "etsmgr_connect %s: %s", instance, msg);
    return c;
}

/* Instance P's table "q.etscounter" and instance P.q's table "etscounter"
 * are two tables: P's daemon neither rediscovers nor hands out P.q's. */
START_TEST(test_dot_prefix_instances_apart)
{
    char dp[160], dq[160], inst_q[80];
    snprintf(dp, sizeof dp, "%s/p", E.dir);
    snprintf(dq, sizeof dq, "%s/q", E.dir);
    snprintf(inst_q, sizeof inst_q, "%s.q", E.instance);
    me_mgr_at(dq, inst_q);
    etsmgr_client *cq = me_connect_to(dq, inst_q);
    etsmgr_table *tq = NULL;
    ck_assert_int_eq(etsmgr_new_table(cq, "etscounter", NULL, NULL, &tq, NULL), ETSMGR_OK);
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(tq, "count", 5, 7, 0, &v), ETSMGR_OK);

    me_mgr_at(dp, E.instance);
    etsmgr_client *cp = me_connect_to(dp, E.instance);
    etsmgr_info *info = NULL;
    ck_assert_int_eq(etsmgr_info_get(cp, &info), ETSMGR_OK);
    ck_assert_msg(info->ntables == 0, "instance %s rediscovered %zu table(s), first %s", E.instance,
                  info->ntables, info->ntables ? info->tables[0].name : "");
    etsmgr_info_free(info);
    etsmgr_table *tp = NULL;
    etsmgr_grant g;
    ck_assert_int_eq(etsmgr_new_table(cp, "q.etscounter", NULL, NULL, &tp, &g), ETSMGR_OK);
    ck_assert_msg(g.created, "P's q.etscounter was not created: it is P.q's etscounter");
    etsmgr_value val;
    ck_assert_int_eq(etsmgr_table_lookup(tp, "count", 5, &val, NULL, 0), ETSMGR_ENOTFOUND);
    etsmgr_client_close(cp);
    etsmgr_client_close(cq);
}
END_TEST

/* ------------------------------------------------------------------ item 6 */
/* The daemon dies in the middle of creating a table (a file size limit
 * makes its posix_fallocate raise SIGXFSZ).  The next daemon must create
 * the table, and leave no half-made object behind. */
START_TEST(test_killed_while_creating_blocks_nothing)
{
    pid_t d = me_mgr();
    struct rlimit lim = {65536, 65536};
    ck_assert_int_eq(prlimit(d, RLIMIT_FSIZE, &lim, NULL), 0);
    int fd = me_sock(&E);
    const char *req = "{\"op\":\"new_table\",\"id\":1,\"name\":\"t\",\"opts\":{\"size_hint\":1048576}}";
    ck_assert_int_eq(frame_write(fd, req, strlen(req), NULL, 0), 0);
    int st = tu_wait(d, 10000);
    ck_assert_msg(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGXFSZ,
                  "etsmgrd did not die of SIGXFSZ while creating (status %#x)", st);
    close(fd);
    me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_table *t = NULL;
    etsmgr_grant g;
    int err = etsmgr_new_table(c, "t", NULL, NULL, &t, &g);
    ck_assert_msg(err == ETSMGR_OK, "new_table after a daemon died creating it: %s", etsmgr_client_message(c));
    ck_assert(g.created);
    ck_assert_int_eq(tu_count_shm(&E), 1); /* the table, and no half-made object */
    etsmgr_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------ item 7 */
static void me_squat(const char *path)
{
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
    ck_assert_int_eq(fchown(fd, 65534, 65534), 0);
    close(fd);
}

/* Another uid creates an object under the table's name before the service
 * does (old and new naming both): the service still gets its table, keeps
 * it across a daemon restart, and leaves the other object alone. */
START_TEST(test_foreign_object_does_not_stop_service)
{
    char now[256], old[256];
    tu_shm_path(&E, geteuid(), "etscounter", now, sizeof now);
    snprintf(old, sizeof old, "/dev/shm/%s.etscounter", E.instance);
    me_squat(now);
    me_squat(old);
    pid_t d = me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_table *t = NULL;
    etsmgr_grant g;
    int err = etsmgr_new_table(c, "etscounter", NULL, NULL, &t, &g);
    ck_assert_msg(err == ETSMGR_OK, "new_table with another uid's object under its name: %s",
                  etsmgr_client_message(c));
    ck_assert(g.created);
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 3, 0, &v), ETSMGR_OK);
    etsmgr_client_close(c);
    /* a new daemon finds the table again, beside the squatter's object */
    tu_kill9(d);
    me_mgr();
    c = me_connect();
    err = etsmgr_new_table(c, "etscounter", NULL, NULL, &t, &g);
    ck_assert_msg(err == ETSMGR_OK, "new_table after a restart: %s", etsmgr_client_message(c));
    ck_assert(!g.created);
    etsmgr_value val;
    ck_assert_int_eq(etsmgr_table_lookup(t, "count", 5, &val, NULL, 0), ETSMGR_OK);
    ck_assert_int_eq(val.i, 3);
    etsmgr_client_close(c);
    struct stat st;
    ck_assert_int_eq(stat(now, &st), 0);
    ck_assert_int_eq(st.st_uid, 65534);
    ck_assert_int_eq(st.st_size, 0);
}
END_TEST

/* ------------------------------------------------------------------ item 4 */
/* A second etsmgrd of the same instance with another runtime dir refuses to
 * start (exit 70, naming the first), and the first keeps its table. */
START_TEST(test_second_daemon_other_dir_refused)
{
    char d1[160], d2[160];
    snprintf(d1, sizeof d1, "%s/one", E.dir);
    snprintf(d2, sizeof d2, "%s/two", E.dir);
    pid_t first = me_mgr_at(d1, E.instance);
    etsmgr_client *c = me_connect_to(d1, E.instance);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "t", NULL, NULL, &t, NULL), ETSMGR_OK);
    char *argv[] = {"etsmgrd", "--log-level", "warning", "--runtime-dir", d2, "--instance", E.instance, NULL};
    pid_t second = tu_spawn(&E, argv);
    ck_assert_int_gt(second, 0);
    int st = tu_wait(second, 10000);
    ck_assert_msg(st >= 0, "a second etsmgrd of instance %s (another runtime dir) kept running", E.instance);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 70, "the second etsmgrd: status %#x", st);
    ck_assert_int_eq(kill(first, 0), 0);
    long owner = -1;
    etsmgr_info *info = NULL;
    ck_assert_int_eq(etsmgr_info_get(c, &info), ETSMGR_OK);
    if (info->ntables == 1)
        owner = info->tables[0].owned ? info->tables[0].owner_pid : 0;
    etsmgr_info_free(info);
    ck_assert_int_eq(owner, getpid());
    etsmgr_client_close(c);
}
END_TEST

/* uid 65534 binds the first name of the lock and listens: etsmgrd still
 * starts (it takes the next name), and a second one is still refused. */
START_TEST(test_lock_squatter_routed_around)
{
    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid_t sq = fork();
    ck_assert_int_ge(sq, 0);
    if (sq == 0) {
        close(up[0]);
        close(down[1]);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(1);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int n = snprintf(sa.sun_path + 1, sizeof sa.sun_path - 1, "etsmgr/etsmgrd/%s/0", E.instance);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                                                  (size_t)n)) < 0 || listen(fd, 4) < 0)
            _exit(2);
        if (write(up[1], "r", 1) != 1)
            _exit(3);
        char go;
        (void)!read(down[0], &go, 1);
        _exit(0);
    }
    close(up[1]);
    close(down[0]);
    char r;
    ck_assert_int_eq(read(up[0], &r, 1), 1);
    me_mgr(); /* ready in spite of the squatter */
    char d2[160];
    snprintf(d2, sizeof d2, "%s/two", E.dir);
    char *argv[] = {"etsmgrd", "--log-level", "warning", "--runtime-dir", d2, NULL};
    pid_t second = tu_spawn(&E, argv);
    int st = tu_wait(second, 10000);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 70, "the second etsmgrd: status %#x", st);
    close(down[1]);
    close(up[0]);
    tu_wait(sq, 10000);
}
END_TEST

/* ------------------------------------------------------------------ size limits */
static const char *me_code(cJSON *r)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")))
        return "ok";
    return me_str(r, "error");
}

static void me_expect(int fd, const char *json, const char *code)
{
    cJSON *r = me_call(fd, json);
    ck_assert_msg(strcmp(me_code(r), code) == 0, "%s: expected %s, got %s (%s)", json, code, me_code(r),
                  me_str(r, "message"));
    cJSON_Delete(r);
}

/* By default a peer cannot ask for more than a quarter of /dev/shm.  (The
 * max_bytes request comes first: a daemon without the bound creates that
 * table cheaply, where it would fallocate a size_hint.) */
START_TEST(test_size_hint_bounded_by_default)
{
    struct statvfs sv;
    ck_assert_int_eq(statvfs("/dev/shm", &sv), 0);
    unsigned long long over = (unsigned long long)sv.f_blocks * sv.f_frsize / 4 + (1u << 20);
    me_mgr();
    int fd = me_sock(&E);
    char req[200];
    snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":1,\"name\":\"huge\",\"opts\":{\"max_bytes\":%llu}}", over);
    me_expect(fd, req, "too_large");
    snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":2,\"name\":\"huge\",\"opts\":{\"size_hint\":%llu}}", over);
    me_expect(fd, req, "too_large");
    ck_assert_int_eq(tu_count_shm(&E), 0);
    me_expect(fd, "{\"op\":\"new_table\",\"id\":3,\"name\":\"small\"}", "ok");
    close(fd);
}
END_TEST

/* --max-table-bytes and --max-uid-bytes: the per-uid sum counts the tables'
 * sizes now, the new one's included. */
START_TEST(test_size_limits_by_option)
{
    char *argv[] = {"etsmgrd", "--log-level", "warning", "--max-table-bytes", "1M", "--max-uid-bytes", "3M",
                    NULL};
    ck_assert_int_gt(tu_spawn_ready(&E, argv, ME_SPAWN_MS), 0);
    int fd = me_sock(&E);
    me_expect(fd, "{\"op\":\"new_table\",\"id\":1,\"name\":\"a\",\"opts\":{\"size_hint\":2097152}}", "too_large");
    me_expect(fd, "{\"op\":\"new_table\",\"id\":2,\"name\":\"a\",\"opts\":{\"size_hint\":1048576}}", "ok");
    me_expect(fd, "{\"op\":\"new_table\",\"id\":3,\"name\":\"b\",\"opts\":{\"size_hint\":1048576}}", "ok");
    me_expect(fd, "{\"op\":\"new_table\",\"id\":4,\"name\":\"c\",\"opts\":{\"size_hint\":1048576}}", "ok");
    me_expect(fd, "{\"op\":\"new_table\",\"id\":5,\"name\":\"d\",\"opts\":{\"size_hint\":1048576}}", "too_large");
    /* an existing table is given back whatever the limits */
    me_expect(fd, "{\"op\":\"new_table\",\"id\":6,\"name\":\"a\"}", "ok");
    cJSON *r = me_call(fd, "{\"op\":\"info\",\"id\":7}");
    ck_assert_int_eq((int64_t)cJSON_GetObjectItemCaseSensitive(r, "max_table_bytes")->valuedouble, 1 << 20);
    ck_assert_int_eq((int64_t)cJSON_GetObjectItemCaseSensitive(r, "max_uid_bytes")->valuedouble, 3 << 20);
    cJSON_Delete(r);
    close(fd);
}
END_TEST

/* ------------------------------------------------------------------ users apart */
/* Root's daemon and uid 65534's daemon, same instance, each its own runtime
 * dir: both run, and each gets its own "etscounter" (before, the second
 * met the first one's object: "not a valid table: Permission denied"). */
START_TEST(test_two_users_same_instance_apart)
{
    char dn[160];
    snprintf(dn, sizeof dn, "%s/nobody", E.dir);
    ck_assert_int_eq(chmod(E.dir, 0711), 0);
    ck_assert_int_eq(mkdir(dn, 0700), 0);
    ck_assert_int_eq(chown(dn, 65534, 65534), 0);
    me_mgr();
    etsmgr_client *c = me_connect();
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "etscounter", NULL, NULL, &t, NULL), ETSMGR_OK);
    int64_t v = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "count", 5, 10, 0, &v), ETSMGR_OK);

    pid_t d = fork();
    ck_assert_int_ge(d, 0);
    if (d == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(1);
        execl(tu_bin("etsmgrd", false), "etsmgrd", "--log-level", "warning", "--runtime-dir", dn,
              "--instance", E.instance, (char *)NULL);
        _exit(127);
    }
    etsmgr_client *cn = NULL;
    char msg[256] = "";
    int err = etsmgr_wait(dn, E.instance, 20, 15000, &cn, msg, sizeof msg);
    if (err != ETSMGR_OK) {
        kill(d, SIGKILL);
        tu_wait(d, 5000);
    }
    ck_assert_msg(err == ETSMGR_OK, "uid 65534's etsmgrd of instance %s: %s", E.instance, msg);
    /* uid 65534's daemon serves root's request, as a daemon of its own uid:
     * its table is its own object, not root's */
    etsmgr_table *tn = NULL;
    etsmgr_grant g;
    err = etsmgr_new_table(cn, "etscounter", NULL, NULL, &tn, &g);
    ck_assert_msg(err == ETSMGR_OK, "the second daemon's new_table: %s", etsmgr_client_message(cn));
    ck_assert(g.created);
    etsmgr_value val;
    ck_assert_int_eq(etsmgr_table_lookup(tn, "count", 5, &val, NULL, 0), ETSMGR_ENOTFOUND);
    struct stat st;
    ck_assert_int_eq(fstat(etsmgr_table_fd(tn), &st), 0);
    ck_assert_int_eq(st.st_uid, 65534);
    ck_assert_int_eq(fstat(etsmgr_table_fd(t), &st), 0);
    ck_assert_int_eq(st.st_uid, 0);
    etsmgr_client_close(cn);
    etsmgr_client_close(c);
    kill(d, SIGTERM);
    ck_assert_int_ge(tu_wait(d, 10000), 0);
}
END_TEST

Suite *mgr_edges_suite(void)
{
    Suite *s = suite_create("mgr_edges");
    TCase *tc = tcase_create("client");
    tcase_add_checked_fixture(tc, me_setup, me_cleanup);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_late_reply_fd_goes_with_it);
    tcase_add_test(tc, test_late_new_table_given_back);
    tcase_add_test(tc, test_late_new_table_retry_keeps_it);
    tcase_add_test(tc, test_late_del_table_settles);
    tcase_add_test(tc, test_late_give_away_refused_held_again);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_add_checked_fixture(tc, me_setup, me_cleanup);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_new_table_at_fd_limit_answers);
    tcase_add_test(tc, test_give_away_at_fd_limit);
    tcase_add_test(tc, test_info_lists_4096_tables);
    tcase_add_test(tc, test_info_shows_own_tables_only);
    tcase_add_test(tc, test_open_error_classified);
    tcase_add_test(tc, test_dot_prefix_instances_apart);
    tcase_add_test(tc, test_killed_while_creating_blocks_nothing);
    tcase_add_test(tc, test_foreign_object_does_not_stop_service);
    tcase_add_test(tc, test_second_daemon_other_dir_refused);
    tcase_add_test(tc, test_lock_squatter_routed_around);
    tcase_add_test(tc, test_size_hint_bounded_by_default);
    tcase_add_test(tc, test_size_limits_by_option);
    tcase_add_test(tc, test_two_users_same_instance_apart);
    suite_add_tcase(s, tc);
    return s;
}

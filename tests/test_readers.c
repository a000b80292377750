/* SPDX-License-Identifier: Apache-2.0 */
/* test_readers.c: other processes using a table, through etsmgrd (ETS
 * access modes, etsmgr_open_table), against the real daemon.
 *
 * A reader of a protected table sees the owner's writes, growth included;
 * a private table, a write-open of a protected one and a process of
 * another uid are refused with ETSMGR_EPERM; every write on a read handle
 * is ETSMGR_EPERM and the mapping itself is read-only; a public table
 * takes writes from two processes with an exact total.  A reader keeps
 * reading across kill -9 of the owner, of etsmgrd and of both.  A writer
 * killed mid-change: etsmgrd rolls it back for a read handle; without
 * etsmgrd the read handle gets ETSMGR_EDEADWRITER, never a hang, and a
 * handle that may write rolls it back itself.  etsmgrctl tables shows the
 * access mode, etsmgrctl dump prints a live table. */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etsmgr.h"
#include "runcap.h"
#include "table_int.h"
#include "testutil.h"

#define RD_SPAWN_MS 15000

static tu_env E;

/* the fixture: tu_env_init, and tu_env_cleanup after each test; a test
 * that ends with exit() is cleaned by testutil's own atexit handler */
static void rd_setup(void) { tu_env_init(&E); }

static void rd_cleanup(void) { tu_env_cleanup(&E); }

static pid_t rd_mgr(void)
{
    char *argv[] = {"etsmgrd", "--log-level", "warning", NULL};
    pid_t p = tu_spawn_ready(&E, argv, RD_SPAWN_MS);
    ck_assert_msg(p > 0, "etsmgrd did not become ready");
    return p;
}

static etsmgr_client *rd_connect(void)
{
    etsmgr_client *c = NULL;
    char msg[256] = "";
    int err = etsmgr_connect(NULL, NULL, &c, msg, sizeof msg);
    ck_assert_msg(err == ETSMGR_OK, "etsmgr_connect: %s: %s", etsmgr_strerror(err), msg);
    return c;
}

static etsmgr_table *rd_new(etsmgr_client *c, const char *name, etsmgr_access access)
{
    etsmgr_table_opts o = {.access = access};
    etsmgr_table *t = NULL;
    int err = etsmgr_new_table(c, name, &o, NULL, &t, NULL);
    ck_assert_msg(err == ETSMGR_OK, "new_table %s: %s", name, etsmgr_client_message(c));
    return t;
}

static etsmgr_table *rd_open(etsmgr_client *c, const char *name, int mode)
{
    etsmgr_table *t = NULL;
    int err = etsmgr_open_table(c, name, mode, &t);
    ck_assert_msg(err == ETSMGR_OK, "open_table %s: %s", name, etsmgr_client_message(c));
    return t;
}

static int64_t rd_int(etsmgr_table *t, const char *key, int *rc)
{
    etsmgr_value v;
    *rc = etsmgr_table_lookup(t, key, strlen(key), &v, NULL, 0);
    return *rc == 0 ? v.i : -1;
}

static void rd_put(etsmgr_table *t, const char *key, int64_t i)
{
    etsmgr_value v = {.type = ETSMGR_INT, .i = i};
    int err = etsmgr_table_insert(t, key, strlen(key), &v);
    ck_assert_msg(err == 0, "insert %s: %s", key, etsmgr_strerror(err));
}

/* ------------------------------------------------------------------ modes */

static void rd_segv(int sig)
{
    (void)sig;
    _exit(42);
}

START_TEST(test_protected_reader)
{
    rd_mgr();
    etsmgr_client *owner = rd_connect(), *other = rd_connect();
    etsmgr_table *t = rd_new(owner, "prot", ETSMGR_PROTECTED);
    rd_put(t, "k", 1);
    etsmgr_table *r = rd_open(other, "prot", ETSMGR_READ);
    int rc;
    ck_assert_int_eq(rd_int(r, "k", &rc), 1);
    rd_put(t, "k", 2);
    ck_assert_int_eq(rd_int(r, "k", &rc), 2);
    /* growth: the reader remaps */
    char key[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "g%d", i);
        rd_put(t, key, i);
    }
    for (int i = 0; i < 20000; i += 97) {
        snprintf(key, sizeof key, "g%d", i);
        ck_assert_int_eq(rd_int(r, key, &rc), i);
    }
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(r, &info), 0);
    ck_assert_int_eq(info.writable, 0);
    ck_assert_int_eq(info.access, ETSMGR_PROTECTED);
    ck_assert_uint_eq(info.entries, 20001);
    /* every write is refused, in words */
    etsmgr_value v = {.type = ETSMGR_INT, .i = 9};
    int64_t nv;
    ck_assert_int_eq(etsmgr_table_insert(r, "k", 1, &v), ETSMGR_EPERM);
    ck_assert_int_eq(etsmgr_table_insert_new(r, "new", 3, &v), ETSMGR_EPERM);
    ck_assert_int_eq(etsmgr_table_update_counter(r, "k", 1, 1, 0, &nv), ETSMGR_EPERM);
    ck_assert_int_eq(etsmgr_table_delete(r, "k", 1), ETSMGR_EPERM);
    ck_assert_int_eq(etsmgr_table_begin(r), ETSMGR_EPERM);
    ck_assert_int_eq(etsmgr_table_verify(r, NULL, 0), ETSMGR_EPERM);
    ck_assert_ptr_nonnull(strstr(etsmgr_strerror(ETSMGR_EPERM), "opened for reading"));
    ck_assert_int_eq(rd_int(t, "k", &rc), 2);
    /* and the kernel refuses a write to the mapping itself */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* our handler, not the sanitizer's report */
        struct sigaction sa = {.sa_handler = rd_segv};
        sigaction(SIGSEGV, &sa, NULL);
        r->base[TBL_HDR_SIZE] = 1;
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 42, "a write to a read mapping: status %#x", st);
    /* a protected table is not opened for writing */
    etsmgr_table *w = NULL;
    ck_assert_int_eq(etsmgr_open_table(other, "prot", ETSMGR_WRITE, &w), ETSMGR_EPERM);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(etsmgr_client_message(other), "protected"));
    ck_assert_int_eq(etsmgr_open_table(other, "nosuch", ETSMGR_READ, &w), ETSMGR_EREFUSED);
    ck_assert_str_eq(etsmgr_client_error(other), "not_found");
    /* the opener is not an owner: closing it changes nothing */
    etsmgr_table_close(r);
    etsmgr_client_close(other);
    etsmgr_info *in;
    ck_assert_int_eq(etsmgr_info_get(owner, &in), 0);
    ck_assert_uint_eq(in->ntables, 1);
    ck_assert_int_eq(in->tables[0].owned, 1);
    ck_assert_int_eq(in->tables[0].owner_pid, getpid());
    ck_assert_int_eq(in->tables[0].access, ETSMGR_PROTECTED);
    etsmgr_info_free(in);
    etsmgr_client_close(owner);
}
END_TEST

START_TEST(test_private_refused)
{
    rd_mgr();
    etsmgr_client *owner = rd_connect(), *other = rd_connect();
    rd_new(owner, "mine", ETSMGR_PRIVATE);
    etsmgr_table *r = NULL;
    ck_assert_int_eq(etsmgr_open_table(other, "mine", ETSMGR_READ, &r), ETSMGR_EPERM);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(etsmgr_client_error(other), "not_permitted");
    ck_assert_ptr_nonnull(strstr(etsmgr_client_message(other), "private"));
    ck_assert_int_eq(etsmgr_open_table(other, "mine", ETSMGR_WRITE, &r), ETSMGR_EPERM);
    /* etsmgrctl tables shows the mode */
    char *out = NULL;
    int st = rc_sh(&out, 10000, "%s --json tables", tu_bin("etsmgrctl", false));
    ck_assert_msg(rc_ok(st), "etsmgrctl tables: %s", out ? out : "");
    ck_assert_msg(strstr(out, "\"access\":\"private\""), "%s", out);
    free(out);
    st = rc_sh(&out, 10000, "%s tables", tu_bin("etsmgrctl", false));
    ck_assert_msg(rc_ok(st) && strstr(out, "ACCESS") && strstr(out, "private"), "%s", out);
    free(out);
    etsmgr_client_close(other);
    etsmgr_client_close(owner);
}
END_TEST

/* Uid 65534 (no group) is refused a root table, whatever its access. */
START_TEST(test_other_uid_refused)
{
    if (!tu_root_or_skip("test_other_uid_refused"))
        return;
    rd_mgr();
    etsmgr_client *owner = rd_connect();
    rd_new(owner, "pub", ETSMGR_PUBLIC);
    char sock[256];
    tu_open_mgr_sock(&E, sock, sizeof sock);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(10);
        etsmgr_client *c = NULL;
        if (etsmgr_connect(NULL, NULL, &c, NULL, 0) != 0)
            _exit(11);
        etsmgr_table *t = NULL;
        int r = etsmgr_open_table(c, "pub", ETSMGR_READ, &t);
        if (r != ETSMGR_EPERM || t || strcmp(etsmgr_client_error(c), "forbidden") != 0)
            _exit(12);
        if (etsmgr_open_table(c, "pub", ETSMGR_WRITE, &t) != ETSMGR_EPERM)
            _exit(13);
        _exit(0);
    }
    int st = tu_wait(pid, 20000);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "uid 65534 client: status %#x", st);
    etsmgr_client_close(owner);
}
END_TEST

START_TEST(test_public_two_writers)
{
    rd_mgr();
    etsmgr_client *owner = rd_connect();
    etsmgr_table *t = rd_new(owner, "pub", ETSMGR_PUBLIC);
    enum { N = 20000 };
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] == 0) {
            etsmgr_client *c = NULL;
            etsmgr_table *w = NULL;
            if (etsmgr_connect(NULL, NULL, &c, NULL, 0) != 0 || etsmgr_open_table(c, "pub", ETSMGR_WRITE, &w) != 0)
                _exit(10);
            int64_t nv;
            for (int i = 0; i < N; i++)
                if (etsmgr_table_update_counter(w, "n", 1, 1, 0, &nv) != 0)
                    _exit(11);
            etsmgr_table_close(w);
            etsmgr_client_close(c);
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st = tu_wait(pids[k], 60000);
        ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer %d: status %#x", k, st);
    }
    int rc;
    ck_assert_int_eq(rd_int(t, "n", &rc), 2 * N);
    ck_assert_int_eq(etsmgr_table_verify(t, NULL, 0), 0);
    etsmgr_client_close(owner);
}
END_TEST

/* ------------------------------------------------------------------ kills */

/* The owner: takes "live" (created or back from the heir), then counts
 * "tick" and adds a key every 16 ticks, until killed.  Reports on the pipe
 * once it holds the table. */
static pid_t rd_fork_owner(void)
{
    int pipe_fd;
    pid_t pid = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        etsmgr_client *c = NULL;
        etsmgr_table *t = NULL;
        if (etsmgr_wait(NULL, NULL, 10, 10000, &c, NULL, 0) != 0)
            _exit(10);
        etsmgr_table_opts o = {.access = ETSMGR_PROTECTED};
        int r;
        for (int tries = 0; (r = etsmgr_new_table(c, "live", &o, NULL, &t, NULL)) == ETSMGR_EOWNED && tries < 500;
             tries++)
            usleep(10000); /* the daemon has not yet seen the last owner's death */
        if (r)
            _exit(11);
        if (write(pipe_fd, "x", 1) != 1)
            _exit(12);
        char key[32];
        for (int64_t i = 0;; i++) {
            int64_t nv;
            if (etsmgr_table_update_counter(t, "tick", 4, 1, 0, &nv) != 0)
                _exit(13);
            if (nv % 16 == 0) {
                etsmgr_value v = {.type = ETSMGR_INT, .i = nv};
                snprintf(key, sizeof key, "key%lld", (long long)nv);
                if (etsmgr_table_insert(t, key, strlen(key), &v) != 0)
                    _exit(14);
            }
        }
    }
    char x;
    ck_assert_int_eq(read(pipe_fd, &x, 1), 1);
    close(pipe_fd);
    return pid;
}

/* The reader sees tick move past from (the owner is alive and counting),
 * and every key that tick implies. */
static int64_t rd_see_progress(etsmgr_table *r, int64_t from)
{
    int rc;
    int64_t v = 0;
    double end = tu_mono_s() + 20;
    while ((v = rd_int(r, "tick", &rc)) <= from + 1000 && tu_mono_s() < end)
        ck_assert_msg(rc == 0 || rc == ETSMGR_ENOTFOUND, "lookup: %s", etsmgr_strerror(rc));
    ck_assert_msg(v > from + 1000, "tick stays at %lld", (long long)v);
    /* key m went in before tick moved past m */
    int64_t m = (v - 1) / 16 * 16;
    char key[32];
    snprintf(key, sizeof key, "key%lld", (long long)m);
    ck_assert_int_eq(rd_int(r, key, &rc), m);
    return v;
}

/* Stable while nobody writes: the same value twice, and the walk agrees. */
static int64_t rd_still(etsmgr_table *r)
{
    int rc;
    int64_t a = rd_int(r, "tick", &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(rd_int(r, "tick", &rc), a);
    return a;
}

START_TEST(test_reader_survives_kills)
{
    pid_t d = rd_mgr();
    pid_t o = rd_fork_owner();
    etsmgr_client *c = rd_connect();
    etsmgr_table *r = rd_open(c, "live", ETSMGR_READ);
    etsmgr_client_close(c); /* the handle does not need the client */
    int64_t v = rd_see_progress(r, 0);
    /* the owner dies: the reader keeps reading the last value */
    tu_kill9(o);
    v = rd_still(r);
    /* a new owner takes it back; the reader sees it counting on */
    o = rd_fork_owner();
    v = rd_see_progress(r, v);
    /* etsmgrd dies: nothing changes for the reader */
    tu_kill9(d);
    v = rd_see_progress(r, v);
    d = rd_mgr();
    v = rd_see_progress(r, v);
    /* both die: the last value stays, and a new pair carries on */
    tu_kill9(o);
    tu_kill9(d);
    v = rd_still(r);
    d = rd_mgr();
    o = rd_fork_owner();
    v = rd_see_progress(r, v);
    tu_kill9(o);
    etsmgr_table_close(r);
}
END_TEST

/* ------------------------------------------------------------------ dead writer */

static void die_mid_update(const char *op, int step)
{
    /* step 1 of update_counter in a group: the new value is in place,
     * uncommitted (outside a group an update in place is one store, its
     * own commit point: there is no uncommitted moment to die in) */
    if (strcmp(op, "update_counter") == 0 && step == 1)
        _exit(77);
}

/* Fork a writer on t that dies in the middle of an update of "n". */
static void rd_kill_writer_mid_update(etsmgr_table *t)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int64_t nv;
        if (etsmgr_table_begin(t) != 0) _exit(1);
        tbl_crashpoint = die_mid_update;
        etsmgr_table_update_counter(t, "n", 1, 100, 0, &nv);
        _exit(0);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 77, "the writer did not die mid-change: %#x", st);
}

START_TEST(test_dead_writer)
{
    pid_t d = rd_mgr();
    etsmgr_client *owner = rd_connect(), *c = rd_connect();
    etsmgr_table *t = rd_new(owner, "dw", ETSMGR_PUBLIC);
    rd_put(t, "n", 5);
    etsmgr_table *r = rd_open(c, "dw", ETSMGR_READ);
    /* etsmgrd runs: the read handle has it rolled back */
    rd_kill_writer_mid_update(t);
    int rc;
    double t0 = tu_mono_s();
    ck_assert_int_eq(rd_int(r, "n", &rc), 5);
    ck_assert_int_eq(rc, 0);
    double took = tu_mono_s() - t0;
    ck_assert_msg(took < 5, "the reader waited %.3f s", took); /* no hang; the bound is 10 ms plus a round trip */
    /* no etsmgrd: a clear error, never a hang */
    tu_kill9(d);
    rd_kill_writer_mid_update(t);
    t0 = tu_mono_s();
    ck_assert_int_eq(rd_int(r, "n", &rc), -1);
    ck_assert_int_eq(rc, ETSMGR_EDEADWRITER);
    took = tu_mono_s() - t0;
    ck_assert_msg(took < 5, "the reader waited %.3f s", took);
    /* a handle that may write rolls it back itself; then the reader goes on */
    ck_assert_int_eq(rd_int(t, "n", &rc), 5);
    ck_assert_int_eq(rd_int(r, "n", &rc), 5);
    ck_assert_int_eq(etsmgr_table_verify(t, NULL, 0), 0);
    etsmgr_table_close(r);
    etsmgr_client_close(c);
    etsmgr_client_close(owner);
}
END_TEST

/* etsmgrd stopped (SIGSTOP) with its backlog full: asking it to recover
 * must not hold the reader (a blocking connect would wait for the daemon
 * to accept, for ever); the reader says ETSMGR_EDEADWRITER in bounded time. */
START_TEST(test_dead_writer_daemon_stopped)
{
    pid_t d = rd_mgr();
    etsmgr_client *owner = rd_connect(), *c = rd_connect();
    etsmgr_table *t = rd_new(owner, "dws", ETSMGR_PUBLIC);
    rd_put(t, "n", 5);
    etsmgr_table *r = rd_open(c, "dws", ETSMGR_READ);
    ck_assert_int_eq(kill(d, SIGSTOP), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char path[256];
    snprintf(path, sizeof path, "%s/etsmgrd.sock", E.dir);
    ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    static int fill[5000];
    int nfill = 0;
    while (nfill < 5000) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            ck_assert_msg(errno == EAGAIN, "connect: %s", strerror(errno));
            close(fd);
            break;
        }
        fill[nfill++] = fd;
    }
    ck_assert_int_lt(nfill, 5000);
    rd_kill_writer_mid_update(t);
    int rc;
    double t0 = tu_mono_s();
    ck_assert_int_eq(rd_int(r, "n", &rc), -1);
    ck_assert_int_eq(rc, ETSMGR_EDEADWRITER);
    ck_assert_msg(tu_mono_s() - t0 < 5, "the reader waited %.3f s", tu_mono_s() - t0);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    ck_assert_int_eq(kill(d, SIGCONT), 0);
    /* etsmgrd is back and rolls it back, once it has drained the backlog */
    double end = tu_mono_s() + 20;
    int64_t n;
    while ((n = rd_int(r, "n", &rc)) == -1 && rc == ETSMGR_EDEADWRITER && tu_mono_s() < end)
        usleep(1000);
    ck_assert_int_eq(n, 5);
    etsmgr_table_close(r);
    etsmgr_client_close(c);
    etsmgr_client_close(owner);
}
END_TEST

/* ------------------------------------------------------------------ dump */

START_TEST(test_dump)
{
    rd_mgr();
    etsmgr_client *owner = rd_connect();
    etsmgr_table *t = rd_new(owner, "shown", ETSMGR_PROTECTED);
    rd_put(t, "count", 42);
    etsmgr_value b = {.type = ETSMGR_BYTES, .data = "hello \"x\"", .len = 9};
    ck_assert_int_eq(etsmgr_table_insert(t, "greeting", 8, &b), 0);
    /* a key that starts with a NUL byte is the application's too (only an
     * older etscounterd's request-id entries are bookkeeping) */
    ck_assert_int_eq(etsmgr_table_insert(t, "\0shown", 6, &b), 0);
    char *out = NULL;
    int st = rc_sh(&out, 10000, "%s dump shown --json", tu_bin("etsmgrctl", false));
    ck_assert_msg(rc_ok(st), "etsmgrctl dump --json: %s", out ? out : "");
    /* a set: its three entries in the order of its keys' hashes */
    static const char *const member[] = {"\"count\":42", "\"greeting\":\"hello \\\"x\\\"\"",
                                         "\"\\u0000shown\":\"hello \\\"x\\\"\""};
    size_t want = 3; /* {, two commas: the newline counted below */
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(strstr(out, member[i]), "no %s in %s", member[i], out);
        want += strlen(member[i]);
    }
    ck_assert_msg(out[0] == '{' && strlen(out) == want + 2 && !strcmp(out + want, "}\n"), "%s", out);
    free(out);
    st = rc_sh(&out, 10000, "%s dump shown", tu_bin("etsmgrctl", false));
    ck_assert_msg(rc_ok(st) && strstr(out, "table shown:") && strstr(out, "  count = 42\n") &&
                      strstr(out, "  greeting = \"hello \"x\"\"\n") &&
                      strstr(out, "  \\x00shown = \"hello \"x\"\"\n"),
                  "%s", out);
    free(out);
    st = rc_sh(&out, 10000, "%s dump nosuch", tu_bin("etsmgrctl", false));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 66 && strstr(out, "nosuch"), "%s", out);
    free(out);
    st = rc_sh(&out, 10000, "%s dump", tu_bin("etsmgrctl", false));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "%s", out);
    free(out);
    etsmgr_client_close(owner);
}
END_TEST

Suite *readers_suite(void)
{
    Suite *s = suite_create("readers");
    TCase *tc = tcase_create("readers");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, rd_setup, rd_cleanup);
    tcase_add_test(tc, test_protected_reader);
    tcase_add_test(tc, test_private_refused);
    tcase_add_test(tc, test_other_uid_refused);
    tcase_add_test(tc, test_public_two_writers);
    tcase_add_test(tc, test_reader_survives_kills);
    tcase_add_test(tc, test_dead_writer);
    tcase_add_test(tc, test_dead_writer_daemon_stopped);
    tcase_add_test(tc, test_dump);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_table_grow.c: tables grow without anyone guessing a capacity, other
 * handles follow the growth, and a table that cannot grow (its max_bytes,
 * or no shared memory left) says ETSMGR_EFULL and keeps what it has.
 * Running out of shared memory is simulated with RLIMIT_FSIZE, which
 * makes the same posix_fallocate fail (EFBIG) as a full /dev/shm (ENOSPC). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "table_int.h"
#include "test_table_util.h"

static void teardown(void) { tt_cleanup(); }

static uint64_t key_of(uint64_t i) { return i * 0x9e3779b97f4a7c15ull + 12345; }

START_TEST(grow_to_a_million)
{
    /* from the smallest table there is */
    etsmgr_table *t = tt_create(NULL, 1, 0);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    uint64_t first_total = info.bytes_total;
    /* under valgrind a tenth (ETSMGR_TEST_VALGRIND, tests/memcheck.mk):
     * the same growth code, and a million took 197 s there, past the
     * case's 120 s on a slower machine */
    const uint64_t n = getenv("ETSMGR_TEST_VALGRIND") ? 100000 : 1000000;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = key_of(i);
        etsmgr_value v = tt_int((int64_t)i);
        int r = etsmgr_table_insert_new(t, &k, 8, &v);
        ck_assert_msg(r == 0, "insert %llu: %s", (unsigned long long)i, etsmgr_strerror(r));
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t k = key_of(i);
        etsmgr_value v;
        ck_assert_int_eq(etsmgr_table_lookup(t, &k, 8, &v, NULL, 0), 0);
        ck_assert_int_eq(v.i, (int64_t)i);
    }
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.entries, n);
    ck_assert_uint_gt(info.bytes_total, first_total * 100);
    /* small entries stay small: at most 64 bytes each, all included */
    ck_assert_msg(info.bytes_total <= 64 * n, "%llu bytes for %llu entries",
                  (unsigned long long)info.bytes_total, (unsigned long long)n);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(other_handles_follow)
{
    const char *name;
    etsmgr_table *a = tt_create(&name, 0, 0), *b;
    ck_assert_int_eq(tbl_open(name, &b), 0);
    int64_t nv;
    ck_assert_int_eq(etsmgr_table_update_counter(b, "c", 1, 1, 0, &nv), 0);
    etsmgr_table_info before, after;
    ck_assert_int_eq(etsmgr_table_info_get(b, &before), 0);
    char key[32];
    static char val[3000];
    for (long i = 0; i < 20000; i++) {
        etsmgr_value v = tt_bytes(val, (size_t)(i % 3000));
        ck_assert_int_eq(etsmgr_table_insert(a, key, tt_key(key, sizeof key, "k", i), &v), 0);
    }
    /* b's mapping is now far too short; its next operations remap */
    ck_assert_int_eq(etsmgr_table_update_counter(b, "c", 1, 1, 0, &nv), 0);
    ck_assert_int_eq(nv, 2);
    ck_assert_int_eq(etsmgr_table_info_get(b, &after), 0);
    ck_assert_uint_gt(after.bytes_total, before.bytes_total * 10);
    static char buf[3000];
    etsmgr_value v;
    ck_assert_int_eq(etsmgr_table_lookup(b, "k19999", 6, &v, buf, sizeof buf), 0);
    ck_assert_uint_eq(v.len, 19999 % 3000);
    tt_check(b);
    tt_check(a);
    etsmgr_table_close(a);
    etsmgr_table_close(b);
}
END_TEST

START_TEST(full_at_max_bytes)
{
    const uint64_t max = 256 * 1024;
    etsmgr_table *t = tt_create(NULL, 0, max);
    char key[32], val[100];
    long n;
    int r = 0;
    for (n = 0; n < 100000; n++) {
        memset(val, (int)n, sizeof val);
        etsmgr_value v = tt_bytes(val, sizeof val);
        r = etsmgr_table_insert(t, key, tt_key(key, sizeof key, "k", n), &v);
        if (r) break;
    }
    ck_assert_int_eq(r, ETSMGR_EFULL);
    ck_assert_int_gt(n, 1000);
    /* smaller entries may still fit: fill with those too */
    long m;
    for (m = 0; m < 100000; m++) {
        etsmgr_value v = tt_int(m);
        if ((r = etsmgr_table_insert(t, key, tt_key(key, sizeof key, "i", m), &v)) != 0) break;
    }
    ck_assert_int_eq(r, ETSMGR_EFULL);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.entries, (uint64_t)(n + m));
    ck_assert_uint_le(info.bytes_total, max);
    ck_assert_uint_eq(info.max_bytes, max);
    /* still full; nothing stored is harmed */
    etsmgr_value v = tt_bytes(val, sizeof val);
    ck_assert_int_eq(etsmgr_table_insert(t, "another", 7, &v), ETSMGR_EFULL);
    int64_t nv;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "newctr", 6, 1, 0, &nv), ETSMGR_EFULL);
    for (long i = 0; i < m; i++) {
        int rc;
        tt_key(key, sizeof key, "i", i);
        ck_assert_int_eq(tt_get_int(t, key, &rc), i);
    }
    for (long i = 0; i < n; i++) {
        static char buf[100];
        etsmgr_value o;
        ck_assert_int_eq(etsmgr_table_lookup(t, key, tt_key(key, sizeof key, "k", i), &o, buf, sizeof buf), 0);
        ck_assert_uint_eq(o.len, 100);
        ck_assert_int_eq(buf[0], (char)i);
        ck_assert_int_eq(buf[99], (char)i);
    }
    tt_check(t);
    /* room comes back with deletes (the same keys: a new key might land on
     * an empty slot and need a rehash, for which a full table has no room;
     * a deleted key's slot is a tombstone to reuse, or empty and counted
     * out) */
    for (long i = 0; i < 10; i++)
        ck_assert_int_eq(etsmgr_table_delete(t, key, tt_key(key, sizeof key, "k", i)), 0);
    for (long i = 0; i < 10; i++)
        ck_assert_int_eq(etsmgr_table_insert(t, key, tt_key(key, sizeof key, "k", i), &v), 0);
    /* in a group, the change that does not fit fails alone */
    ck_assert_int_eq(etsmgr_table_insert(t, "another", 7, &v), ETSMGR_EFULL);
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "k2", 2, 1, 0, &nv), ETSMGR_ETYPE);
    ck_assert_int_eq(etsmgr_table_delete(t, "k1", 2), 0);
    /* a block freed in a group is reusable only after its commit (the
     * heap may have a block that size left, or not) */
    int r1 = etsmgr_table_insert(t, "k1", 2, &v);
    ck_assert(r1 == 0 || r1 == ETSMGR_EFULL);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    ck_assert_int_eq(etsmgr_table_insert(t, "k1", 2, &v), 0);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(full_when_shm_runs_out)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* a file size limit makes fallocate fail as a full /dev/shm would */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1 << 20, 1 << 20};
        if (setrlimit(RLIMIT_FSIZE, &rl) < 0) _exit(2);
        char name[48];
        snprintf(name, sizeof name, "/t%dx90.tbl", (int)getpid());
        etsmgr_table_opts o = {.size_hint = 4 << 20};
        etsmgr_table *t;
        if (tbl_create(name, "x", &o, &t) != ETSMGR_EFULL) _exit(3);
        if (tbl_open(name, &t) != ETSMGR_ENOTFOUND) _exit(4); /* not left behind */
        o.size_hint = 0;
        if (tbl_create(name, "x", &o, &t) != 0) _exit(5);
        char key[32], val[200];
        long n;
        int r = 0;
        for (n = 0; n < 100000; n++) {
            etsmgr_value v = tt_bytes(val, sizeof val);
            memset(val, (int)n, sizeof val);
            if ((r = etsmgr_table_insert(t, key, tt_key(key, sizeof key, "k", n), &v)) != 0) break;
        }
        int code = 0;
        if (r != ETSMGR_EFULL || n < 1000) code = 6;
        for (long i = 0; i < n && !code; i++) {
            char buf[200];
            etsmgr_value o2;
            if (etsmgr_table_lookup(t, key, tt_key(key, sizeof key, "k", i), &o2, buf, sizeof buf) ||
                o2.len != 200 || buf[199] != (char)i)
                code = 7;
        }
        if (!code && etsmgr_table_verify(t, NULL, 0)) code = 8;
        etsmgr_table_close(t);
        shm_unlink(name);
        _exit(code);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}
END_TEST

/* A writer that grows the table from tiny is SIGKILLed at random moments;
 * every key it reported as inserted is there, and the table verifies. */
START_TEST(sigkill_while_growing)
{
    etsmgr_table *t = tt_create(NULL, 1, 0);
    uint64_t done = 0;
    /* at least 8 kills, and on until the table has grown past 1000 entries
     * (a slow machine or valgrind inserts less between two kills): the
     * rounds, not the clock, decide; each round inserts at least once */
    for (int round = 0; round < 8 || (done <= 1000 && round < 2000); round++) {
        int pipe_fd;
        pid_t pid = tu_fork_pipe(&pipe_fd);
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (uint64_t i = done;; i++) {
                uint64_t k = key_of(i);
                etsmgr_value v = tt_int((int64_t)i);
                int r = etsmgr_table_insert(t, &k, 8, &v);
                if (r) _exit(2);
                if (write(pipe_fd, &i, sizeof i) != sizeof i) _exit(3);
            }
        }
        /* the child's first insert reported: the kill lands among its
         * inserts (valgrind on a slow machine can take longer to start a
         * child than the longest moment below: rounds of no insert) */
        uint64_t i, last = done;
        bool any = false;
        if (read(pipe_fd, &i, sizeof i) == sizeof i) last = i, any = true;
        struct timespec ts = {0, (long)(1 + round * 7 % 13) * 1000000L};
        nanosleep(&ts, NULL); /* a random moment, not a synchronisation */
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        ck_assert_msg(WIFSIGNALED(st), "the writer ended by itself (status %#x)", st);
        while (read(pipe_fd, &i, sizeof i) == sizeof i) last = i, any = true;
        close(pipe_fd);
        uint64_t reported = any ? last + 1 : done;
        etsmgr_table_info info;
        ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
        ck_assert_msg(info.entries == reported || info.entries == reported + 1, "entries %llu, reported %llu",
                      (unsigned long long)info.entries, (unsigned long long)reported);
        for (uint64_t j = 0; j < info.entries; j++) {
            uint64_t k = key_of(j);
            etsmgr_value v;
            ck_assert_int_eq(etsmgr_table_lookup(t, &k, 8, &v, NULL, 0), 0);
            ck_assert_int_eq(v.i, (int64_t)j);
        }
        tt_check(t);
        done = info.entries;
    }
    ck_assert_uint_gt(done, 1000);
    etsmgr_table_close(t);
}
END_TEST

Suite *table_grow_suite(void)
{
    Suite *s = suite_create("table_grow");
    TCase *tc = tcase_create("grow");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grow_to_a_million);
    tcase_add_test(tc, other_handles_follow);
    tcase_add_test(tc, full_at_max_bytes);
    tcase_add_test(tc, full_when_shm_runs_out);
    tcase_add_test(tc, sigkill_while_growing);
    suite_add_tcase(s, tc);
    return s;
}

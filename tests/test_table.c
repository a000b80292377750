/* SPDX-License-Identifier: Apache-2.0 */
/* test_table.c: every table operation and every error it can return, in one
 * process (crash, corruption and growth have their own suites:
 * table_crash, table_attach, table_grow). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "table_int.h"
#include "test_table_once.h"
#include "test_table_util.h"
#include "testutil.h"

static void teardown(void) { tt_cleanup(); }

START_TEST(create_open_close_unlink)
{
    const char *name;
    etsmgr_table *t = tt_create(&name, 0, 0);
    ck_assert_str_eq(etsmgr_table_name(t), "test");
    ck_assert_int_ge(etsmgr_table_fd(t), 0);
    etsmgr_table *t2 = NULL;
    etsmgr_table_opts o = {0};
    ck_assert_int_eq(tbl_create(name, "test", &o, &t2), ETSMGR_EEXIST);
    ck_assert_int_eq(tbl_open(name, &t2), 0);
    etsmgr_value v = tt_int(42);
    ck_assert_int_eq(etsmgr_table_insert(t, "a", 1, &v), 0);
    int rc;
    ck_assert_int_eq(tt_get_int(t2, "a", &rc), 42);
    etsmgr_table_close(t2);
    /* attach from a dup'd fd, as a client receiving it over a socket */
    int fd = dup(etsmgr_table_fd(t));
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(etsmgr_table_attach_fd(fd, &t2), 0);
    ck_assert_int_eq(tt_get_int(t2, "a", &rc), 42);
    etsmgr_table_close(t2);
    etsmgr_table_close(t);
    ck_assert_int_eq(tbl_open(name, &t2), 0); /* data outlives every handle */
    ck_assert_int_eq(tt_get_int(t2, "a", &rc), 42);
    etsmgr_table_close(t2);
    ck_assert_int_eq(tbl_unlink(name), 0);
    ck_assert_int_eq(tbl_unlink(name), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(tbl_open(name, &t2), ETSMGR_ENOTFOUND);
}
END_TEST

START_TEST(create_errors)
{
    etsmgr_table *t = NULL;
    etsmgr_table_opts o = {0};
    ck_assert_int_eq(tbl_create(tt_name(), "bad/name", &o, &t), ETSMGR_ENAME);
    ck_assert_int_eq(tbl_create(tt_name(), "", &o, &t), ETSMGR_ENAME);
    ck_assert_int_eq(tbl_create(tt_name(), "..", &o, &t), ETSMGR_ENAME);
    char longname[80];
    memset(longname, 'x', 65);
    longname[65] = 0;
    ck_assert_int_eq(tbl_create(tt_name(), longname, &o, &t), ETSMGR_ENAME);
    longname[64] = 0;
    const char *n = tt_name();
    ck_assert_int_eq(tbl_create(n, longname, &o, &t), 0);
    ck_assert_str_eq(etsmgr_table_name(t), longname);
    etsmgr_table_close(t);
    ck_assert_int_eq(tbl_create(NULL, "x", &o, &t), ETSMGR_EINVAL);
    ck_assert_int_eq(tbl_create(tt_name(), "x", &o, NULL), ETSMGR_EINVAL);
    o.max_bytes = 100; /* below the smallest table */
    ck_assert_int_eq(tbl_create(tt_name(), "x", &o, &t), ETSMGR_EINVAL);
    ck_assert_int_eq(tbl_open(NULL, &t), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_attach_fd(-1, &t), ETSMGR_EINVAL);
    ck_assert_int_eq(tbl_unlink(NULL), ETSMGR_EINVAL);
    ck_assert_int_eq(tbl_open("no-slash-is-invalid/x", &t) < 0, 1);
}
END_TEST

START_TEST(create_mode)
{
    const char *n = tt_name();
    etsmgr_table *t = NULL;
    etsmgr_table_opts o = {0};
    ck_assert_int_eq(tbl_create(n, "m", &o, &t), 0);
    struct stat st;
    ck_assert_int_eq(fstat(etsmgr_table_fd(t), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    etsmgr_table_close(t);
    n = tt_name();
    o.mode = 0660;
    mode_t old = umask(077);
    ck_assert_int_eq(tbl_create(n, "m", &o, &t), 0);
    umask(old);
    ck_assert_int_eq(fstat(etsmgr_table_fd(t), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0660);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(insert_lookup_types)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value v = tt_int(-5), out;
    ck_assert_int_eq(etsmgr_table_insert(t, "int", 3, &v), 0);
    char buf[16];
    ck_assert_int_eq(etsmgr_table_lookup(t, "int", 3, &out, buf, sizeof buf), 0);
    ck_assert_int_eq(out.type, ETSMGR_INT);
    ck_assert_int_eq(out.i, -5);
    v = tt_bytes("hello", 5);
    ck_assert_int_eq(etsmgr_table_insert(t, "str", 3, &v), 0);
    ck_assert_int_eq(etsmgr_table_lookup(t, "str", 3, &out, buf, sizeof buf), 0);
    ck_assert_int_eq(out.type, ETSMGR_BYTES);
    ck_assert_uint_eq(out.len, 5);
    ck_assert_ptr_eq(out.data, buf);
    ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
    /* buffer too small: ERANGE with the needed length */
    ck_assert_int_eq(etsmgr_table_lookup(t, "str", 3, &out, buf, 4), ETSMGR_ERANGE);
    ck_assert_uint_eq(out.len, 5);
    ck_assert_int_eq(etsmgr_table_lookup(t, "str", 3, &out, NULL, 0), ETSMGR_ERANGE);
    /* empty byte string */
    v = tt_bytes(NULL, 0);
    ck_assert_int_eq(etsmgr_table_insert(t, "empty", 5, &v), 0);
    ck_assert_int_eq(etsmgr_table_lookup(t, "empty", 5, &out, NULL, 0), 0);
    ck_assert_uint_eq(out.len, 0);
    ck_assert_int_eq(out.type, ETSMGR_BYTES);
    /* overwrite changes type both ways, and sizes */
    v = tt_int(7);
    ck_assert_int_eq(etsmgr_table_insert(t, "str", 3, &v), 0);
    int rc;
    ck_assert_int_eq(tt_get_int(t, "str", &rc), 7);
    static char big[ETSMGR_VALUE_MAX];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    v = tt_bytes(big, sizeof big);
    ck_assert_int_eq(etsmgr_table_insert(t, "int", 3, &v), 0);
    static char back[ETSMGR_VALUE_MAX];
    ck_assert_int_eq(etsmgr_table_lookup(t, "int", 3, &out, back, sizeof back), 0);
    ck_assert_uint_eq(out.len, sizeof big);
    ck_assert_int_eq(memcmp(back, big, sizeof big), 0);
    v = tt_bytes("x", 1);
    ck_assert_int_eq(etsmgr_table_insert(t, "int", 3, &v), 0);
    ck_assert_int_eq(etsmgr_table_lookup(t, "int", 3, &out, back, sizeof back), 0);
    ck_assert_uint_eq(out.len, 1);
    /* longest key; keys are bytes, NUL included */
    char key[ETSMGR_KEY_MAX];
    memset(key, 0, sizeof key);
    key[100] = 1;
    v = tt_int(255);
    ck_assert_int_eq(etsmgr_table_insert(t, key, sizeof key, &v), 0);
    ck_assert_int_eq(etsmgr_table_lookup(t, key, sizeof key, &out, NULL, 0), 0);
    ck_assert_int_eq(out.i, 255);
    ck_assert_int_eq(etsmgr_table_lookup(t, key, sizeof key - 1, &out, NULL, 0), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_lookup(t, "nope", 4, &out, NULL, 0), ETSMGR_ENOTFOUND);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(insert_new_and_delete)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value v = tt_int(1), w = tt_int(2);
    ck_assert_int_eq(etsmgr_table_insert_new(t, "k", 1, &v), 0);
    ck_assert_int_eq(etsmgr_table_insert_new(t, "k", 1, &w), ETSMGR_EEXIST);
    int rc;
    ck_assert_int_eq(tt_get_int(t, "k", &rc), 1);
    ck_assert_int_eq(etsmgr_table_delete(t, "k", 1), 0);
    ck_assert_int_eq(etsmgr_table_delete(t, "k", 1), ETSMGR_ENOTFOUND);
    tt_get_int(t, "k", &rc);
    ck_assert_int_eq(rc, ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_insert_new(t, "k", 1, &w), 0);
    ck_assert_int_eq(tt_get_int(t, "k", &rc), 2);
    /* many deletes and reinserts: tombstones and reuse stay consistent */
    char key[32], val[64] = "some bytes";
    for (int round = 0; round < 5; round++) {
        for (long i = 0; i < 3000; i++) {
            etsmgr_value x = round % 2 ? tt_bytes(val, (size_t)(i % 40)) : tt_int(i);
            size_t kl = tt_key(key, sizeof key, "key", i);
            ck_assert_int_eq(etsmgr_table_insert(t, key, kl, &x), 0);
        }
        for (long i = round % 3; i < 3000; i += 3) {
            size_t kl = tt_key(key, sizeof key, "key", i);
            ck_assert_int_eq(etsmgr_table_delete(t, key, kl), 0);
        }
        tt_check(t);
    }
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.entries, 2000 + 1);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(update_counter)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t nv = 0;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "c", 1, 5, 100, &nv), 0);
    ck_assert_int_eq(nv, 105);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "c", 1, -10, 100, &nv), 0);
    ck_assert_int_eq(nv, 95);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "c", 1, 1, 0, NULL), 0);
    int rc;
    ck_assert_int_eq(tt_get_int(t, "c", &rc), 96);
    etsmgr_value v = tt_int(INT64_MAX);
    ck_assert_int_eq(etsmgr_table_insert(t, "max", 3, &v), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "max", 3, 1, 0, &nv), 0);
    ck_assert_int_eq(nv, INT64_MIN); /* wraps, documented */
    v = tt_bytes("abc", 3);
    ck_assert_int_eq(etsmgr_table_insert(t, "s", 1, &v), 0);
    nv = 12345;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "s", 1, 1, 0, &nv), ETSMGR_ETYPE);
    ck_assert_int_eq(nv, 12345);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "", 0, 1, 0, &nv), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_update_counter(NULL, "c", 1, 1, 0, &nv), ETSMGR_EINVAL);
    for (int i = 0; i < 100000; i++) ck_assert_int_eq(etsmgr_table_update_counter(t, "c", 1, 1, 0, &nv), 0);
    ck_assert_int_eq(nv, 100096);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

struct fe {
    int n, ints, stop_at;
    int64_t sum;
};
static int fe_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct fe *f = arg;
    ck_assert_uint_ge(klen, 1);
    ck_assert_ptr_nonnull(key);
    f->n++;
    if (v->type == ETSMGR_INT) {
        f->ints++;
        f->sum += v->i;
    }
    return f->stop_at && f->n == f->stop_at ? 99 : 0;
}

START_TEST(foreach_and_info)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    struct fe f = {0};
    ck_assert_int_eq(etsmgr_table_foreach(t, fe_cb, &f), 0);
    ck_assert_int_eq(f.n, 0);
    char key[32];
    for (long i = 1; i <= 100; i++) {
        etsmgr_value v = i % 2 ? tt_int(i) : tt_bytes("b", 1);
        ck_assert_int_eq(etsmgr_table_insert(t, key, tt_key(key, sizeof key, "k", i), &v), 0);
    }
    f = (struct fe){0};
    ck_assert_int_eq(etsmgr_table_foreach(t, fe_cb, &f), 0);
    ck_assert_int_eq(f.n, 100);
    ck_assert_int_eq(f.ints, 50);
    ck_assert_int_eq(f.sum, 2500);
    f = (struct fe){.stop_at = 10};
    ck_assert_int_eq(etsmgr_table_foreach(t, fe_cb, &f), 99);
    ck_assert_int_eq(f.n, 10);
    ck_assert_int_eq(etsmgr_table_foreach(t, NULL, &f), ETSMGR_EINVAL);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_str_eq(info.name, "test");
    ck_assert_uint_eq(info.entries, 100);
    ck_assert_uint_ge(info.capacity, 100);
    ck_assert_uint_gt(info.bytes_used, 100 * 24);
    ck_assert_uint_ge(info.bytes_total, info.bytes_used);
    ck_assert_uint_eq(info.max_bytes, 0);
    ck_assert_uint_eq(info.generation, 0);
    ck_assert_int_gt(info.ctime_us, 1600000000000000LL);
    ck_assert_int_eq(info.owner_pid, 0);
    ck_assert_int_eq(tbl_orphaned_since(t), 0);
    ck_assert_int_eq(tbl_set_owner(t, 1234, 99, 0), 0);
    ck_assert_int_eq(tbl_set_owner(t, 1235, 99, 5), 0);
    ck_assert_int_eq(tbl_orphaned_since(t), 0); /* owned: no orphaned time */
    ck_assert_int_eq(tbl_set_owner(t, -1, 99, 0), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.generation, 2);
    ck_assert_int_eq(info.owner_pid, 1235);
    ck_assert_int_eq(info.heir_pid, 99);
    ck_assert_int_eq(tbl_set_owner(t, 0, 99, 1700000000123456), 0);
    ck_assert_int_eq(tbl_orphaned_since(t), 1700000000123456);
    ck_assert_int_eq(tbl_set_owner(t, 0, 99, -1), ETSMGR_EINVAL);
    ck_assert_int_eq(tbl_set_owner(t, 7, 99, 0), 0);
    ck_assert_int_eq(tbl_orphaned_since(t), 0);
    ck_assert_int_eq(etsmgr_table_info_get(t, NULL), ETSMGR_EINVAL);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(argument_errors)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value v = tt_int(1), out;
    char key[ETSMGR_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    ck_assert_int_eq(etsmgr_table_insert(t, key, 0, &v), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_insert(t, key, ETSMGR_KEY_MAX + 1, &v), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_insert(t, NULL, 1, &v), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_insert(t, key, 1, NULL), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_insert(NULL, key, 1, &v), ETSMGR_EINVAL);
    etsmgr_value bad = {.type = 9};
    ck_assert_int_eq(etsmgr_table_insert(t, key, 1, &bad), ETSMGR_EINVAL);
    static char big[ETSMGR_VALUE_MAX + 1];
    bad = tt_bytes(big, sizeof big);
    ck_assert_int_eq(etsmgr_table_insert_new(t, key, 1, &bad), ETSMGR_EINVAL);
    bad = tt_bytes(NULL, 3);
    ck_assert_int_eq(etsmgr_table_insert(t, key, 1, &bad), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_lookup(t, key, 0, &out, NULL, 0), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_lookup(t, key, 1, NULL, NULL, 0), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_delete(t, key, 256), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_delete(NULL, key, 1), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_verify(NULL, NULL, 0), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_begin(NULL), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_commit(NULL), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_abort(NULL), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_fd(NULL), -1);
    etsmgr_table_close(NULL);
    tt_check(t);
    ck_assert_int_eq(etsmgr_table_verify(t, NULL, 0), 0);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(groups)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int rc;
    int64_t nv;
    ck_assert_int_eq(etsmgr_table_commit(t), ETSMGR_EGROUP);
    ck_assert_int_eq(etsmgr_table_abort(t), ETSMGR_EGROUP);
    etsmgr_value v = tt_int(10), req = tt_bytes("req-1", 5);
    ck_assert_int_eq(etsmgr_table_insert(t, "old", 3, &v), 0);
    /* commit: every change lands */
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    ck_assert_int_eq(etsmgr_table_begin(t), ETSMGR_EGROUP);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "ctr", 3, 1, 0, &nv), 0);
    ck_assert_int_eq(etsmgr_table_insert(t, "last", 4, &req), 0);
    ck_assert_int_eq(etsmgr_table_delete(t, "old", 3), 0);
    ck_assert_int_eq(tt_get_int(t, "ctr", &rc), 1); /* reads see the group's own changes */
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    ck_assert_int_eq(tt_get_int(t, "ctr", &rc), 1);
    tt_get_int(t, "old", &rc);
    ck_assert_int_eq(rc, ETSMGR_ENOTFOUND);
    /* abort: none lands */
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "ctr", 3, 1, 0, &nv), 0);
    ck_assert_int_eq(etsmgr_table_insert(t, "old", 3, &v), 0);
    ck_assert_int_eq(etsmgr_table_delete(t, "last", 4), 0);
    ck_assert_int_eq(etsmgr_table_abort(t), 0);
    ck_assert_int_eq(tt_get_int(t, "ctr", &rc), 1);
    tt_get_int(t, "old", &rc);
    ck_assert_int_eq(rc, ETSMGR_ENOTFOUND);
    etsmgr_value out;
    char buf[8];
    ck_assert_int_eq(etsmgr_table_lookup(t, "last", 4, &out, buf, sizeof buf), 0);
    /* too many changes: EGROUP, the group stays open and can be aborted */
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    for (int i = 0; i < ETSMGR_GROUP_MAX; i++)
        ck_assert_int_eq(etsmgr_table_update_counter(t, "ctr", 3, 1, 0, &nv), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "ctr", 3, 1, 0, &nv), ETSMGR_EGROUP);
    ck_assert_int_eq(etsmgr_table_lookup(t, "ctr", 3, &out, NULL, 0), 0); /* reads are not changes */
    ck_assert_int_eq(out.i, 1 + ETSMGR_GROUP_MAX);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    ck_assert_int_eq(tt_get_int(t, "ctr", &rc), 1 + ETSMGR_GROUP_MAX);
    /* an error inside a group undoes that change only */
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "ctr", 3, 1, 0, &nv), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "last", 4, 1, 0, &nv), ETSMGR_ETYPE);
    ck_assert_int_eq(etsmgr_table_insert_new(t, "ctr", 3, &v), ETSMGR_EEXIST);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    ck_assert_int_eq(tt_get_int(t, "ctr", &rc), 2 + ETSMGR_GROUP_MAX);
    /* a group that grows the index, then aborts */
    etsmgr_table_info before, after;
    ck_assert_int_eq(etsmgr_table_info_get(t, &before), 0);
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    static char big[60000];
    for (int i = 0; i < ETSMGR_GROUP_MAX; i++) {
        char key[32];
        etsmgr_value b = tt_bytes(big, sizeof big);
        ck_assert_int_eq(etsmgr_table_insert(t, key, tt_key(key, sizeof key, "g", i), &b), 0);
    }
    ck_assert_int_eq(etsmgr_table_abort(t), 0);
    ck_assert_int_eq(etsmgr_table_info_get(t, &after), 0);
    ck_assert_uint_eq(after.entries, before.entries);
    ck_assert_uint_eq(after.bytes_used, before.bytes_used);
    tt_check(t);
    /* close inside a group aborts it */
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    ck_assert_int_eq(etsmgr_table_update_counter(t, "ctr", 3, 1000, 0, &nv), 0);
    int fd = dup(etsmgr_table_fd(t));
    etsmgr_table_close(t);
    ck_assert_int_eq(etsmgr_table_attach_fd(fd, &t), 0);
    ck_assert_int_eq(tt_get_int(t, "ctr", &rc), 2 + ETSMGR_GROUP_MAX);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* exactly-once update_counter: a known rid answers its value and changes
 * nothing; a deadline refuses unknown rids only; records outlive 3/4 fills
 * (rebuilds) until their keep time; max_records refuses, never forgets;
 * the table stays valid (verify) and becomes layout version 4. */
static etsmgr_once once_of(uint64_t i, int64_t keep)
{
    etsmgr_once o = {.keep_until_ms = keep};
    memcpy(o.rid, &i, sizeof i);
    return o;
}

/* once_of with a bound on the records kept */
static etsmgr_once once_cap(uint64_t i, int64_t keep, uint64_t max_records)
{
    etsmgr_once o = once_of(i, keep);
    o.max_records = max_records;
    return o;
}

START_TEST(update_counter_once)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    ck_assert_uint_eq(tbl_vbase(t->h->version), 3);
    etsmgr_once o = once_of(1, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 5, &o, &v, &dup), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(dup, 0);
    ck_assert_uint_eq(tbl_vbase(t->h->version), TBL_VERSION_ONCE4); /* request-id records of layout 4 */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 5, &o, &v, &dup), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(dup, 1);
    /* past its deadline: known rid -> its value; unknown -> refused */
    o.deadline_ms = 1;
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 5, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 1);
    etsmgr_once late = once_of(2, far);
    late.deadline_ms = 1;
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 5, &late, &v, &dup), ETSMGR_EEXPIRED);
    ck_assert_int_eq(tt_get_int(t, "c", &dup), 5);
    /* bad arguments */
    etsmgr_once bad = once_of(3, 0);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &bad, &v, &dup), ETSMGR_EINVAL);
    bad = once_of(3, 10);
    bad.deadline_ms = 20;
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &bad, &v, &dup), ETSMGR_EINVAL);
    /* 20000 more, each kept: all remembered through the rebuilds */
    for (uint64_t i = 10; i < 20010; i++) {
        o = once_of(i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 0);
    }
    for (uint64_t i = 10; i < 20010; i += 7) {
        o = once_of(i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, 5 + (int64_t)(i - 9));
    }
    tt_check(t);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.entries, 1); /* the records are not entries */
    etsmgr_table_close(t);
}
END_TEST

/* Group commit (tbl_once_count_many): every request of a batch answered
 * as if counted alone, in order; the whole batch one change.  Checked
 * against the same requests counted one at a time on a second table. */
static tbl_once_req many_req(uint64_t i, int64_t keep, int64_t deadline)
{
    tbl_once_req q = {.once = once_of(i, keep)};
    q.once.deadline_ms = deadline;
    return q;
}

/* counts q[0..n) with tbl_once_count_many until every one is answered */
static void many_all(etsmgr_table *t, tbl_once_req *q, size_t n)
{
    for (size_t at = 0; at < n;) {
        int k = tbl_once_count_many(t, "c", 1, 1, q + at, n - at);
        ck_assert_int_gt(k, 0);
        at += (size_t)k;
    }
}

START_TEST(update_counter_once_many)
{
    etsmgr_table *t = tt_create(NULL, 0, 0), *u = tt_create(NULL, 0, 0);
    int64_t far = etsmgr_mono_ms() + 3600000, v;
    int dup;
    /* rids 1..3 recorded before */
    for (uint64_t i = 1; i <= 3; i++) {
        etsmgr_once o = once_of(i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(etsmgr_table_update_counter_once(u, "c", 1, 1, &o, &v, &dup), 0);
    }
    tbl_once_req q[] = {
        many_req(10, far, far - 1), /* new */
        many_req(2, far, far - 1),  /* recorded before: its value */
        many_req(10, far, far - 1), /* repeated in the batch: a duplicate of the first */
        many_req(11, far, 1),       /* unknown, deadline passed: refused, nothing written */
        many_req(12, 0, 0),         /* bad: no keep time */
        many_req(13, far, 0),       /* new, no deadline */
        many_req(11, far, far - 1), /* the refused rid again, in time: counted now */
        many_req(3, far, 1),        /* recorded, past its deadline: still its value */
    };
    size_t n = sizeof q / sizeof q[0];
    ck_assert_int_eq(tbl_once_count_many(t, "c", 1, 1, q, n), (int)n);
    for (size_t i = 0; i < n; i++) {
        int64_t want = 0;
        int wdup = 0, r = etsmgr_table_update_counter_once(u, "c", 1, 1, &q[i].once, &want, &wdup);
        ck_assert_msg(q[i].rc == r, "request %zu: rc %d, alone %d", i, q[i].rc, r);
        if (r == 0) {
            ck_assert_msg(q[i].value == want && q[i].dup == wdup, "request %zu: %lld/%d, alone %lld/%d", i,
                          (long long)q[i].value, q[i].dup, (long long)want, wdup);
        }
    }
    ck_assert_int_eq(q[0].value, 4);
    ck_assert_int_eq(q[1].value, 2);
    ck_assert(q[1].dup && q[2].dup && q[7].dup);
    ck_assert_int_eq(q[2].value, 4);
    ck_assert_int_eq(q[3].rc, ETSMGR_EEXPIRED);
    ck_assert_int_eq(q[4].rc, ETSMGR_EINVAL);
    ck_assert_int_eq(q[5].value, 5);
    ck_assert_int_eq(q[6].value, 6);
    ck_assert_int_eq(tt_get_int(t, "c", &dup), 6);
    tt_check(t);
    /* 20000 more in batches of 64 from a fresh table: the region grows and
     * is rebuilt inside batches, and every rid is still known after */
    etsmgr_table *w = tt_create(NULL, 0, 0);
    static tbl_once_req b[64];
    for (uint64_t i = 0; i < 20000; i += 64) {
        for (uint64_t j = 0; j < 64; j++) b[j] = many_req(100 + i + j, far, far - 1);
        many_all(w, b, 64);
        for (uint64_t j = 0; j < 64; j++) {
            ck_assert_int_eq(b[j].rc, 0);
            ck_assert_int_eq(b[j].dup, 0);
            ck_assert_int_eq(b[j].value, (int64_t)(i + j + 1));
        }
    }
    for (uint64_t i = 0; i < 20032; i += 7) {
        etsmgr_once o = once_of(100 + i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(w, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, (int64_t)i + 1);
    }
    tt_check(w);
    /* inside a group: refused, as a change of its own */
    ck_assert_int_eq(etsmgr_table_begin(w), 0);
    ck_assert_int_eq(tbl_once_count_many(w, "c", 1, 1, b, 1), ETSMGR_EGROUP);
    ck_assert_int_eq(etsmgr_table_abort(w), 0);
    etsmgr_table_close(w);
    etsmgr_table_close(u);
    etsmgr_table_close(t);
}
END_TEST

/* The batch's last deadline check comes after its last write: a count
 * whose deadline passes inside the batch (here: already passed, with the
 * handle's early clock letting the first check through) is refused, the
 * batch done again without it, and the others keep their answers; a
 * later request of the same rid, still in time, is the one counted. */
START_TEST(update_counter_once_many_late)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t far = etsmgr_mono_ms() + 3600000;
    tbl_once_req q[] = {
        many_req(1, far, far - 1),
        many_req(2, far, etsmgr_mono_ms() - 1), /* passed a millisecond ago */
        many_req(3, far, far - 1),
        many_req(2, far, far - 1),
    };
    t->once_now = 1; /* the first checks pass: only the last one refuses */
    ck_assert_int_eq(tbl_once_count_many(t, "c", 1, 1, q, 4), 4);
    ck_assert_int_eq(q[0].rc, 0);
    ck_assert_int_eq(q[0].value, 1);
    ck_assert_int_eq(q[1].rc, ETSMGR_EEXPIRED);
    ck_assert_int_eq(q[2].rc, 0);
    ck_assert_int_eq(q[2].value, 2);
    ck_assert_int_eq(q[3].rc, 0);
    ck_assert_int_eq(q[3].dup, 0);
    ck_assert_int_eq(q[3].value, 3);
    int rc;
    ck_assert_int_eq(tt_get_int(t, "c", &rc), 3);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A full store (max_records) refuses the batch's new rids and still
 * answers its known ones; the refusals write nothing. */
START_TEST(update_counter_once_many_full)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t far = etsmgr_mono_ms() + 3600000, v;
    int dup;
    for (uint64_t i = 0; i < 50; i++) {
        etsmgr_once o = once_cap(i, far, 50);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    tbl_once_req q[6];
    for (int i = 0; i < 6; i++) {
        q[i] = many_req(i % 2 ? 1000 + (uint64_t)i : (uint64_t)i, far, 0);
        q[i].once.max_records = 50;
    }
    ck_assert_int_eq(tbl_once_count_many(t, "c", 1, 1, q, 6), 6);
    for (int i = 0; i < 6; i++) {
        if (i % 2) {
            ck_assert_int_eq(q[i].rc, ETSMGR_ERIDFULL);
        } else {
            ck_assert_int_eq(q[i].rc, 0);
            ck_assert_int_eq(q[i].dup, 1);
            ck_assert_int_eq(q[i].value, i + 1);
        }
    }
    ck_assert_int_eq(tt_get_int(t, "c", &dup), 50);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A count with a deadline takes this handle's previous clock read for now
 * (one clock read per count, see table_once.c).  That read is early: it
 * must not make an expired record look live where that matters, refusing
 * a full region with ETSMGR_ERIDFULL that has room. */
START_TEST(update_counter_once_stale_clock)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    etsmgr_once a = once_cap(1, 1, 1); /* no deadline, kept until 1 ms: expired */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &a, &v, &dup), 0);
    t->once_now = 1; /* as if the handle's last read were long ago */
    etsmgr_once b = once_of(2, far);
    b.deadline_ms = far - 1;
    b.max_records = 1;
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &b, &v, &dup), 0);
    ck_assert_int_eq(v, 2);
    ck_assert_int_eq(dup, 0);
    ck_assert_int_gt(t->once_now, 1); /* the clock was read again */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &b, &v, &dup), 0);
    ck_assert_int_eq(dup, 1);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* The last check before the commit must see at least the true time: a
 * count whose deadline passed a moment ago is refused, however early the
 * handle's previous read (which the first check uses) is.  It once read
 * CLOCK_MONOTONIC_COARSE plus its resolution, taken for an upper bound;
 * here that clock lags the true time by 3 to 7 ms (up to 30 ms under
 * load) with a resolution of 4 ms, and about a third of these counts were
 * committed after their deadline (the counts are spread over the tick's
 * phases: how far behind that clock is depends on the phase). */
START_TEST(update_counter_once_never_late)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 1; i <= 200; i++) {
        etsmgr_once o = once_of(i, far);
        o.deadline_ms = etsmgr_mono_ms() - 1; /* passed a millisecond ago */
        t->once_now = 1; /* the first check passes: only the last one refuses */
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), ETSMGR_EEXPIRED);
        nanosleep(&(struct timespec){.tv_nsec = 300000}, NULL); /* the next one at another phase of the tick */
    }
    int rc;
    tt_get_int(t, "c", &rc);
    ck_assert_int_eq(rc, ETSMGR_ENOTFOUND); /* never counted */
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(update_counter_once_limit)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    /* expired records (keep time passed) make room */
    for (uint64_t i = 0; i < 1000; i++) {
        etsmgr_once o = once_cap(i, 1, 50);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    for (uint64_t i = 1000; i < 1050; i++) {
        etsmgr_once o = once_cap(i, far, 50);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    etsmgr_once o = once_cap(5000, far, 50);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), ETSMGR_ERIDFULL);
    ck_assert_int_eq(tt_get_int(t, "c", &dup), 1050);
    /* refused again, at once (the handle knows it is full until a keep time) */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), ETSMGR_ERIDFULL);
    for (uint64_t i = 1000; i < 1050; i++) {
        o = once_cap(i, far, 50);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
    }
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* Keep times out of arrival order: the ring's tail stops at a kept record,
 * the ring fills with expired ones behind it and is rebuilt without them;
 * every kept rid stays known through it all, and the store stays within
 * max_records. */
START_TEST(update_counter_once_mixed_keep)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 0; i < 6000; i++) {
        etsmgr_once o = once_cap(i, i % 3 == 0 ? far : 1, 2500);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 0);
    }
    for (uint64_t i = 0; i < 6000; i += 3) {
        etsmgr_once o = once_cap(i, far, 2500);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, (int64_t)i + 1);
    }
    ck_assert_int_eq(tt_get_int(t, "c", &dup), 6000);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A table written by an older library, its records in layout 1 (32-byte
 * records open-addressed, table version 4): its rids are still known, the
 * first count rebuilds the region into layout 3, and the table then says
 * version 10. */
START_TEST(update_counter_once_layout1)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    ck_assert_int_eq(etsmgr_table_update_counter(t, "c", 1, 10, 0, &v), 0);
    /* the old region by hand: magic, cap, used, key, then 64 records */
    uint64_t off, size = 8 * (8 + 4 * 64);
    ck_assert_int_eq(tbl_op_begin(t, "old", true), 0);
    ck_assert_int_eq(tbl_alloc(t, size, &off), 0);
    uint64_t *w = tbl_word(t, off);
    memset(w, 0, size);
    w[0] = 0x31454f4e4f4d5445ull; /* "ETMONOE1" */
    w[1] = 64;
    w[2] = 3;
    for (uint64_t i = 0; i < 3; i++) {
        uint64_t *rec = w + 8 + 4 * (i * 17);
        etsmgr_once o = once_of(100 + i, far);
        memcpy(&rec[0], o.rid, 8);
        memcpy(&rec[1], o.rid + 8, 8);
        rec[2] = 1000 + i;
        rec[3] = (uint64_t)(i == 2 ? 1 : far); /* the last one expired */
    }
    tbl_set(t, TBL_HOFF(once_off), off);
    tbl_set(t, TBL_HOFF(live_bytes), t->h->live_bytes + size);
    t->h->version = TBL_VERSION_ONCE | (t->h->version & TBL_VERSION_SEEDED);
    ck_assert_int_eq(tbl_op_end(t, 0), 0);
    tt_check(t);
    etsmgr_once o = once_of(101, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 1);
    ck_assert_int_eq(v, 1001);
    ck_assert_uint_eq(tbl_vbase(t->h->version), TBL_VERSION_ONCE4);
    ck_assert_uint_ne(t->h->once_off, off);
    o = once_of(100, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 1);
    ck_assert_int_eq(v, 1000);
    o = once_of(102, far); /* expired: dropped by the rebuild, counted anew */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 0);
    ck_assert_int_eq(v, 11);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* Many senders, each numbering its rids (a random prefix and a counter, as
 * docs/design.md recommends for high-rate senders), interleaved: every rid
 * is counted once and found again with its value through the rebuilds, and
 * a sender's four consecutive rids (a group: the counter without its low 2
 * bits) have their index entries in one bucket or the next, the locality
 * layout 3 is for (with the whole rid's hash deciding, as in layout 2,
 * groups would land in random buckets), and its 32 consecutive rids (a
 * run: the counter without its low 5 bits) in one page of the index, the
 * locality layout 4 adds (with layout 3's buckets a run's eight groups
 * land on eight random pages). */
#define SENDERS 64
#define PER_SENDER 300
START_TEST(update_counter_once_senders)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    uint64_t base = 0x5eed000000000000ull, next[SENDERS] = {0}, rng = 12345;
    static int64_t got[SENDERS][PER_SENDER];
    for (uint64_t n = 0; n < (uint64_t)SENDERS * PER_SENDER;) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t s = (rng >> 33) % SENDERS;
        if (next[s] == PER_SENDER) continue;
        etsmgr_once o = to_seq_rid(base + s, next[s], far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 0);
        ck_assert_int_eq(v, (int64_t)++n);
        got[s][next[s]++] = v;
    }
    tt_check(t);
    for (uint64_t s = 0; s < SENDERS; s++)
        for (uint64_t q = 0; q < PER_SENDER; q++) {
            etsmgr_once o = to_seq_rid(base + s, q, far);
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
            ck_assert_int_eq(dup, 1);
            ck_assert_int_eq(v, got[s][q]);
        }
    /* where each rid's entry is */
    static uint64_t bucket[SENDERS][PER_SENDER];
    uint64_t *reg = to_reg(t), *idx = to_idx(t), nb = to_buckets(t), seen = 0;
    for (uint64_t i = 0; i < nb * TO_BUCKET; i++) {
        if (!idx[i]) continue;
        uint64_t *rec = to_rec(reg, (uint32_t)idx[i] - 1u), s = rec[0] - base, q = __builtin_bswap64(rec[1]);
        ck_assert(s < SENDERS && q < PER_SENDER);
        bucket[s][q] = i / TO_BUCKET;
        seen++;
    }
    ck_assert_uint_eq(seen, (uint64_t)SENDERS * PER_SENDER);
    unsigned together = 0, groups = 0;
    for (uint64_t s = 0; s < SENDERS; s++)
        for (uint64_t q = 0; q + 4 <= PER_SENDER; q += 4, groups++) {
            bool near = true;
            for (unsigned k = 1; k < 4; k++)
                near = near && ((bucket[s][q + k] - bucket[s][q]) & (nb - 1)) <= 1;
            together += near;
        }
    ck_assert_msg(together * 10 >= groups * 9, "only %u of %u groups of 4 consecutive rids share a bucket", together,
                  groups);
    ck_assert_uint_ge(nb, 64u * 64u); /* pages enough that a random page is seldom the same */
    unsigned one_page = 0, runs = 0;
    for (uint64_t s = 0; s < SENDERS; s++)
        for (uint64_t q = 0; q + 32 <= PER_SENDER; q += 32, runs++) {
            bool same = true;
            for (unsigned k = 1; k < 32; k++) same = same && bucket[s][q + k] / 64 == bucket[s][q] / 64;
            one_page += same;
        }
    ck_assert_msg(one_page * 10 >= runs * 9, "only %u of %u runs of 32 consecutive rids share an index page",
                  one_page, runs);
    etsmgr_table_close(t);
}
END_TEST

/* The longest run of full buckets in the table's index. */
static uint64_t once_full_run(etsmgr_table *t)
{
    uint64_t *idx = to_idx(t), nb = to_buckets(t), run = 0, longest = 0;
    for (uint64_t b = 0; b < 2 * nb; b++) { /* twice round: a run may wrap */
        bool full = true;
        for (unsigned j = 0; j < TO_BUCKET; j++) full = full && idx[TO_BUCKET * (b & (nb - 1)) + j];
        run = full ? run + 1 : 0;
        if (run > longest) longest = run;
    }
    return longest;
}

/* A sender who picks rids to pile them into one bucket: the home page is
 * a keyed hash of the prefix and the counter's run (its bucket in the
 * page an offset that hash gives and the counter's group), so rids that
 * differ only in the prefix, or only in the counter's high bits, or whose
 * counter is the prefix again, or that are one group of each run, or the
 * same group index of runs that differ in the prefix, still spread like
 * random ones: no long run of full buckets (each such run lengthens every
 * probe through it), and every rid is still found. */
static etsmgr_once hostile_rid(int pattern, uint64_t i, int64_t far)
{
    switch (pattern) {
    case 0: return to_seq_rid(i, 7, far);                    /* one counter, many prefixes */
    case 1: return to_seq_rid(7, i << 40, far);              /* counters far apart */
    case 2: return to_seq_rid(i << 2, i << 2, far);          /* counter = prefix */
    case 3: return to_seq_rid(7, (i >> 2) << 5 | (i & 3), far); /* the first group of each run */
    default: return to_seq_rid(i >> 2, 8 + (i & 3), far);    /* group 2 of one run of each prefix */
    }
}
START_TEST(update_counter_once_hostile)
{
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (int pattern = 0; pattern < 5; pattern++) {
        etsmgr_table *t = tt_create(NULL, 0, 0);
        for (uint64_t i = 0; i < 6000; i++) {
            etsmgr_once o = hostile_rid(pattern, i, far);
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
            ck_assert_int_eq(dup, 0);
        }
        uint64_t run = once_full_run(t);
        ck_assert_msg(run <= 6, "pattern %d: %llu full buckets in a row", pattern, (unsigned long long)run);
        for (uint64_t i = 0; i < 6000; i += 11) {
            etsmgr_once o = hostile_rid(pattern, i, far);
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
            ck_assert_int_eq(dup, 1);
            ck_assert_int_eq(v, (int64_t)i + 1);
        }
        tt_check(t);
        etsmgr_table_close(t);
    }
}
END_TEST

/* A burst of 5000 counts (sender 1) whose keep time has passed, then 20
 * kept (sender 2, values 5001..5020): a region left sparse by a burst. */
static void to_expired_burst(etsmgr_table *t, int64_t far)
{
    int64_t v;
    int dup;
    for (uint64_t i = 0; i < 5000; i++) { /* the burst */
        etsmgr_once o = to_seq_rid(1, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    for (uint64_t i = 0; i < 20; i++) { /* kept */
        etsmgr_once o = to_seq_rid(2, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    ck_assert_uint_ge(to_cap(t), 8192);
    to_set_keep(t, to_reg(t)[3], to_reg(t)[3] + 5000, 1); /* the burst's keep time has passed */
}

/* tbl_once_tidy, etscounterd's look for a shrink off the count path (once
 * its first answers are out): after a burst whose records expired, the
 * region is rebuilt small without a count, every kept record is found
 * after it, and the handle's own next look is a check interval off. */
START_TEST(update_counter_once_tidy)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    ck_assert_int_eq(tbl_once_tidy(t), 0); /* no region yet: nothing to do */
    to_expired_burst(t, far);
    uint64_t off = t->h->once_off;
    ck_assert_int_eq(tbl_once_tidy(t), 0);
    ck_assert_uint_ne(t->h->once_off, off);
    ck_assert_uint_eq(to_cap(t), 64);
    ck_assert_int_gt(t->once_check_ms, etsmgr_mono_ms());
    ck_assert_int_eq(tt_get_int(t, "c", &dup), 5020); /* nothing counted */
    tt_check(t);
    for (uint64_t i = 0; i < 20; i++) {
        etsmgr_once o = to_seq_rid(2, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, 5001 + (int64_t)i);
    }
    /* a region with nothing to drop stays as it is */
    off = t->h->once_off;
    ck_assert_int_eq(tbl_once_tidy(t), 0);
    ck_assert_uint_eq(t->h->once_off, off);
    etsmgr_table_close(t);
}
END_TEST

/* The look for a shrink is neither a fresh handle's first count (a process
 * that just took the table over, a hot standby, answers at once; after a
 * burst the sweep cost milliseconds on its first count) nor unbounded: a
 * look drops at most ONCE_SWEEP (65,536) expired records, and a shrink
 * is decided only by a look that reached a kept one. */
START_TEST(update_counter_once_sweep_bounded)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    enum { BURST = 100000 };
    for (uint64_t i = 0; i < BURST; i++) {
        etsmgr_once o = to_seq_rid(1, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    uint64_t off = t->h->once_off, tail0 = to_reg(t)[3];
    to_set_keep(t, tail0, tail0 + BURST, 1); /* the burst's keep time has passed */
    /* a handle that has not counted yet (as after a takeover) */
    t->once_armed = false;
    t->once_check_ms = 0;
    etsmgr_once o = to_seq_rid(2, 0, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_uint_le(to_reg(t)[3] - tail0, 4); /* the tail steps only */
    ck_assert_uint_eq(t->h->once_off, off);
    ck_assert_int_gt(t->once_check_ms, etsmgr_mono_ms());
    /* a look: 65,536 records dropped at most, no shrink decided yet */
    int looks = 0;
    do {
        uint64_t before = to_reg(t)[3];
        t->once_check_ms = 0;
        t->once_sparse_since = 1; /* sparse for long, were it known */
        o = to_seq_rid(2, (uint64_t)++looks, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        if (t->h->once_off == off)
            ck_assert_uint_le(to_reg(t)[3] - before, 65536 + 4);
    } while (t->h->once_off == off && looks < 10);
    ck_assert_int_eq(looks, 2); /* 100,000 expired: two looks */
    ck_assert_uint_eq(to_cap(t), 64);
    ck_assert_int_eq(v, BURST + 3);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* After a burst whose records have expired, the region is rebuilt smaller
 * by the first count that looks (once a second per handle, not before),
 * and every record still kept is found after it. */
START_TEST(update_counter_once_shrink)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    to_expired_burst(t, far);
    uint64_t off = t->h->once_off, live = t->h->live_bytes;
    /* not yet time to look: the region stays as it is */
    t->once_check_ms = etsmgr_mono_ms() + 60000;
    etsmgr_once o = to_seq_rid(3, 0, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_uint_eq(t->h->once_off, off);
    /* time to look: sparse, but not for long yet (a sender that bursts every
     * few seconds must not see it shrink and regrow each time) */
    t->once_check_ms = 0;
    o = to_seq_rid(3, 1, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_uint_eq(t->h->once_off, off);
    ck_assert_int_gt(t->once_sparse_since, 0);
    /* sparse at every look for 30 s: rebuilt at twice the 23 live records (the smallest region) */
    t->once_sparse_since -= 30001;
    t->once_check_ms = 0;
    o = to_seq_rid(3, 2, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(v, 5023);
    ck_assert_uint_ne(t->h->once_off, off);
    ck_assert_uint_eq(to_cap(t), 64);
    ck_assert_uint_lt(t->h->live_bytes, live);
    ck_assert_int_gt(t->once_check_ms, etsmgr_mono_ms()); /* the next look is a while off */
    tt_check(t);
    for (uint64_t i = 0; i < 20; i++) { /* retries after the shrink */
        o = to_seq_rid(2, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, 5001 + (int64_t)i);
    }
    o = to_seq_rid(1, 4999, far); /* expired: gone, counted anew */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 0);
    ck_assert_int_eq(v, 5024);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A count's record takes over the index entry of a dropped record that
 * its probe meets before an empty one (its slot outside the ring's
 * window, which the entry says without reading the record), so the index
 * fills more slowly and is rebuilt less often: under a steady load (one
 * count a millisecond, each kept 1 s, a simulated clock as in
 * update_counter_once_steady) about a quarter of the counts take one
 * over; before, every count took an empty entry.  Retries are answered throughout, and the
 * table verifies. */
START_TEST(update_counter_once_takes_dropped_entries)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, now = etsmgr_mono_ms();
    int dup;
    uint64_t took = 0, counted = 0;
    for (uint64_t seq = 0; seq < 25000; seq++, now++) {
        etsmgr_once o = to_seq_rid(9, seq, now + 1000);
        o.deadline_ms = now + 1000; /* the real clock is behind the simulated one */
        t->once_now = now;
        uint64_t off = t->h->once_off, filled = off ? to_reg(t)[6] : 0;
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 0);
        ck_assert_int_eq(v, (int64_t)seq + 1);
        if (seq >= 5000 && t->h->once_off == off) { /* settled, and not rebuilt by this count */
            counted++;
            took += to_reg(t)[6] == filled;
        }
        if (seq >= 500 && seq % 97 == 0) { /* a retry of a rid kept for another half second */
            o = to_seq_rid(9, seq - 500, now + 500);
            o.deadline_ms = now + 500;
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
            ck_assert_int_eq(dup, 1);
            ck_assert_int_eq(v, (int64_t)(seq - 500) + 1);
        }
        if (seq % 5000 == 0) tt_check(t);
    }
    ck_assert_uint_ge(took * 8, counted); /* about a quarter here; none before */
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A full ring grows to twice its live records: 64 -> 128, not 256 (it
 * sized for twice the live records and one more, so a full ring of R
 * became 4R, half of it never used by a steady load). */
START_TEST(update_counter_once_grows_twice)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 0; i < 64; i++) {
        etsmgr_once o = to_seq_rid(4, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    ck_assert_uint_eq(to_cap(t), 64);
    etsmgr_once o = to_seq_rid(4, 64, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_uint_eq(to_cap(t), 128);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* An index full of entries of dropped records (as an older library leaves
 * it, or a look's sweep) is rebuilt at the same size, never smaller: the
 * shrink is the sparse rule's, which waits for the load to have gone;
 * sized for a lull, the region would regrow through every size in the
 * next burst. */
START_TEST(update_counter_once_crowded_keeps_size)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    to_expired_burst(t, far);
    uint64_t off = t->h->once_off, cap = to_cap(t);
    /* the index as crowded as a rebuild's threshold: a count must rebuild */
    ck_assert_int_eq(tbl_op_begin(t, "crowd", true), 0);
    to_reg(t)[6] = cap * TO_IDX_PER_REC / 2;
    ck_assert_int_eq(tbl_op_end(t, 0), 0);
    t->once_check_ms = etsmgr_mono_ms() + 60000; /* no look for a shrink */
    etsmgr_once o = to_seq_rid(3, 0, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(v, 5021);
    ck_assert_uint_ne(t->h->once_off, off);
    ck_assert_uint_eq(to_cap(t), cap);
    ck_assert_uint_eq(to_reg(t)[6], 21);
    tt_check(t);
    for (uint64_t i = 0; i < 20; i++) { /* retries after the rebuild */
        o = to_seq_rid(2, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, 5001 + (int64_t)i);
    }
    etsmgr_table_close(t);
}
END_TEST

/* verify refuses an index whose bucket has a used entry after an empty
 * one: a lookup stops at the empty one and would never find it. */
START_TEST(update_counter_once_verify_gap)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 0; i < 40; i++) {
        etsmgr_once o = to_seq_rid(5, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    tt_check(t);
    uint64_t *idx = to_idx(t), nb = to_buckets(t), b = 0;
    while (b < nb && !(idx[TO_BUCKET * b] && idx[TO_BUCKET * b + 1])) b++;
    ck_assert_uint_lt(b, nb); /* 40 records in groups of four: some bucket holds two */
    uint64_t keep = idx[TO_BUCKET * b];
    idx[TO_BUCKET * b] = 0;
    char why[200];
    ck_assert_int_eq(etsmgr_table_verify(t, why, sizeof why), ETSMGR_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(why, "after an empty one"));
    idx[TO_BUCKET * b] = keep;
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* Hysteresis: a steady load (one count a millisecond, each kept 1 s: about
 * 1,000 live records) with the region looked at on every count settles
 * on one size and stays there, through the rebuilds that clear its index;
 * when the load falls to one count in 20 ms (about 50 live) the region
 * shrinks, and grows again when the load comes back.  The handle's clock
 * is simulated (a count with a deadline takes the handle's last read for
 * now, see table_once.c), so the test does not depend on the machine's
 * speed. */
START_TEST(update_counter_once_steady)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, now = etsmgr_mono_ms();
    int dup;
    uint64_t seq = 0, settled = 0;
    for (int phase = 0; phase < 3; phase++) {
        int64_t step = phase == 1 ? 20 : 1;
        uint64_t lo = UINT64_MAX, hi = 0;
        for (int i = 0; i < 20000; i++, now += step) {
            etsmgr_once o = to_seq_rid(9, seq++, now + 1000);
            o.deadline_ms = now + 1000; /* the real clock is behind the simulated one */
            t->once_now = now;
            t->once_check_ms = 0;
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
            ck_assert_int_eq(dup, 0);
            if (i >= 5000) { /* settled */
                uint64_t c = to_cap(t);
                lo = c < lo ? c : lo;
                hi = c > hi ? c : hi;
            }
        }
        ck_assert_msg(lo == hi, "phase %d: the region went between %llu and %llu records", phase,
                      (unsigned long long)lo, (unsigned long long)hi);
        if (phase == 0) settled = lo;
        if (phase == 1) ck_assert_uint_le(lo * 8, settled);
        if (phase == 2) ck_assert_uint_eq(lo, settled);
    }
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A table whose records a library of layout 2 wrote (table version 6; 9
 * for an ordered set), or one of layout 3 (10; 11): verify reads it, the
 * first count (a retry here) rebuilds it into layout 4 (version 12; 13),
 * and every rid is still known after. */
static void once_older_layout(int layout)
{
    uint64_t magic = layout == 2 ? TO_MAGIC2 : TO_MAGIC3;
    for (int ordered = 0; ordered < 2; ordered++) {
        etsmgr_table *t = NULL;
        etsmgr_table_opts opts = {.type = ordered ? ETSMGR_ORDERED_SET : ETSMGR_SET};
        ck_assert_int_eq(tbl_create(tt_name(), "test", &opts, &t), 0);
        int64_t v, far = etsmgr_mono_ms() + 3600000;
        int dup;
        for (uint64_t i = 0; i < 300; i++) {
            etsmgr_once o = to_seq_rid(i % 3, i, far);
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        }
        ck_assert_uint_eq(tbl_vbase(t->h->version), ordered ? TBL_VERSION_BTREE_ONCE4 : TBL_VERSION_ONCE4);
        to_make_layout(t, layout);
        uint64_t off = t->h->once_off;
        uint32_t made = layout == 2 ? (ordered ? TBL_VERSION_BTREE_ONCE2 : TBL_VERSION_ONCE2)
                                    : (ordered ? TBL_VERSION_BTREE_ONCE3 : TBL_VERSION_ONCE3);
        ck_assert_uint_eq(tbl_vbase(t->h->version), made);
        tt_check(t); /* verify finds each record through the older layout's index */
        ck_assert_uint_eq(to_reg(t)[0], magic);
        etsmgr_once o = to_seq_rid(2, 299, far); /* a retry: the region is converted first */
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, 300);
        ck_assert_uint_ne(t->h->once_off, off);
        ck_assert_uint_eq(to_reg(t)[0], TO_MAGIC4);
        ck_assert_uint_eq(tbl_vbase(t->h->version), ordered ? TBL_VERSION_BTREE_ONCE4 : TBL_VERSION_ONCE4);
        for (uint64_t i = 0; i < 300; i++) {
            o = to_seq_rid(i % 3, i, far);
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
            ck_assert_int_eq(dup, 1);
            ck_assert_int_eq(v, (int64_t)i + 1);
        }
        tt_check(t);
        etsmgr_table_close(t);
    }
}
START_TEST(update_counter_once_layout2) { once_older_layout(2); }
END_TEST
START_TEST(update_counter_once_layout3) { once_older_layout(3); }
END_TEST

/* A count that fails after it has converted the region (or made the
 * first one) is rolled back whole, the table's version with it: the
 * version word is not in the undo log, and a version left at 12 (13) over
 * the layout 2 or 3 region the rollback gave back, or over no region at
 * all, made an older library refuse a table it reads. */
START_TEST(update_counter_once_rollback_keeps_version)
{
    for (int k = 0; k < 4; k++) {
        int ordered = k & 1, layout = k < 2 ? 2 : 3;
        uint32_t older = layout == 2 ? (ordered ? TBL_VERSION_BTREE_ONCE2 : TBL_VERSION_ONCE2)
                                     : (ordered ? TBL_VERSION_BTREE_ONCE3 : TBL_VERSION_ONCE3);
        uint32_t now4 = ordered ? TBL_VERSION_BTREE_ONCE4 : TBL_VERSION_ONCE4;
        uint64_t magic = layout == 2 ? TO_MAGIC2 : TO_MAGIC3;
        etsmgr_table *t = NULL;
        etsmgr_table_opts opts = {.type = ordered ? ETSMGR_ORDERED_SET : ETSMGR_SET};
        ck_assert_int_eq(tbl_create(tt_name(), "test", &opts, &t), 0);
        uint32_t fresh = tbl_vbase(t->h->version);
        ck_assert_uint_eq(fresh, ordered ? TBL_VERSION_BTREE : TBL_VERSION);
        etsmgr_value b = tt_bytes("x", 1);
        ck_assert_int_eq(etsmgr_table_insert(t, "b", 1, &b), 0);
        int64_t v, far = etsmgr_mono_ms() + 3600000;
        int dup;
        /* the first region, made and rolled back: a counter of bytes */
        etsmgr_once o = to_seq_rid(9, 1, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "b", 1, 1, &o, &v, &dup), ETSMGR_ETYPE);
        ck_assert_uint_eq(t->h->once_off, 0);
        ck_assert_uint_eq(tbl_vbase(t->h->version), fresh);
        for (uint64_t i = 0; i < 10; i++) {
            o = to_seq_rid(1, i, far);
            ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        }
        to_make_layout(t, layout);
        uint64_t off = t->h->once_off;
        /* the older region, converted and rolled back */
        o = to_seq_rid(9, 2, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "b", 1, 1, &o, &v, &dup), ETSMGR_ETYPE);
        ck_assert_uint_eq(t->h->once_off, off);
        ck_assert_uint_eq(to_reg(t)[0], magic);
        ck_assert_uint_eq(tbl_vbase(t->h->version), older);
        /* ... and in a group: the version follows the region, whichever
         * change made it */
        ck_assert_int_eq(etsmgr_table_begin(t), 0);
        o = to_seq_rid(9, 3, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_uint_eq(tbl_vbase(t->h->version), now4);
        o = to_seq_rid(9, 4, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "b", 1, 1, &o, &v, &dup), ETSMGR_ETYPE);
        ck_assert_uint_eq(to_reg(t)[0], TO_MAGIC4); /* the group's first change stands */
        ck_assert_uint_eq(tbl_vbase(t->h->version), now4);
        ck_assert_int_eq(etsmgr_table_abort(t), 0);
        ck_assert_uint_eq(t->h->once_off, off);
        ck_assert_uint_eq(tbl_vbase(t->h->version), older);
        tt_check(t);
        /* converted for good by a count that commits */
        o = to_seq_rid(1, 3, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_uint_eq(tbl_vbase(t->h->version), now4);
        tt_check(t);
        etsmgr_table_close(t);
    }
}
END_TEST

/* Pages of [p, p + len) present in this process's page tables
 * (/proc/self/pagemap, bit 63 of each page's word). */
static uint64_t present_pages(const char *p, uint64_t len)
{
    int fd = open("/proc/self/pagemap", O_RDONLY);
    ck_assert_int_ge(fd, 0);
    uint64_t n = 0;
    for (uint64_t a = (uint64_t)(uintptr_t)p & ~4095ull; a < (uint64_t)(uintptr_t)p + len; a += 4096) {
        uint64_t w;
        ck_assert_int_eq(pread(fd, &w, 8, (off_t)(a / 4096 * 8)), 8);
        n += w >> 63;
    }
    close(fd);
    return n;
}

/* A region replaced by a smaller one (a shrink) leaves the page tables of
 * the process that replaced it (a process that served a burst would
 * otherwise keep every page of it mapped, and its exit tear them down one
 * by one); one replaced by growth stays mapped (this process will use its
 * pages again); the bytes stay in the object either way. */
START_TEST(update_counter_once_unmaps_old_region)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    uint64_t i = 0, off = 0, len = 0;
    for (; t->h->once_off == 0 || to_cap(t) < 32768; i++) {
        if (t->h->once_off && to_cap(t) == 16384) {
            off = t->h->once_off;
            len = tbl_once_bytes(t, off);
        }
        etsmgr_once o = to_seq_rid(4, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    ck_assert_uint_ge(len, 1u << 20); /* grown from it: still mapped */
    ck_assert_uint_gt(present_pages(t->base + off, len), len / 4096 / 4);
    /* all but the last 10 expire; the next count that looks shrinks the region */
    to_set_keep(t, to_reg(t)[3], to_reg(t)[2] - 10, 1);
    off = t->h->once_off;
    len = tbl_once_bytes(t, off);
    ck_assert_uint_gt(present_pages(t->base + off, len), len / 4096 / 4);
    t->once_check_ms = 0;
    t->once_sparse_since = 1; /* sparse for long */
    etsmgr_once o = to_seq_rid(4, i, far);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_uint_eq(to_cap(t), 64);
    ck_assert_uint_le(present_pages(t->base + off + 4096, len - 8192), 0);
    o = to_seq_rid(4, i - 1, far); /* what was in it is still known */
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 1);
    ck_assert_int_eq(v, (int64_t)i);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* tbl_once_tidy after a burst bigger than one look: each look drops at
 * most 65,536 expired records and says 1 (more to drop) until one reaches
 * a kept record and shrinks the region, so a caller that looks again
 * finishes the sweep in one process (etscounterd does, a millisecond
 * apart), not one look per short-lived owner; and the ring pages a look
 * dropped leave this process's page tables (an owner killed after its
 * tidy would otherwise tear them down before its sockets close, which a
 * hot standby's takeover waits for). */
/* A region left by a burst: burst rids of sender 5 whose keep time has
 * passed, then kept rids of sender 6; the ring's tail before the burst. */
static uint64_t to_burst_expired(etsmgr_table *t, uint64_t burst, uint64_t kept, int64_t far)
{
    int64_t v;
    int dup;
    for (uint64_t i = 0; i < burst; i++) {
        etsmgr_once o = to_seq_rid(5, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    for (uint64_t i = 0; i < kept; i++) {
        etsmgr_once o = to_seq_rid(6, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    uint64_t tail0 = to_reg(t)[3];
    to_set_keep(t, tail0, tail0 + burst, 1); /* the burst's keep time has passed */
    return tail0;
}

/* Every kept rid of to_burst_expired (every step-th) is still known. */
static void to_kept_known(etsmgr_table *t, uint64_t burst, uint64_t kept, uint64_t step, int64_t far)
{
    int64_t v;
    int dup;
    for (uint64_t i = 0; i < kept; i += step) {
        etsmgr_once o = to_seq_rid(6, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 1);
        ck_assert_int_eq(v, (int64_t)(burst + 1 + i));
    }
}

START_TEST(update_counter_once_tidy_steps)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t far = etsmgr_mono_ms() + 3600000;
    enum { BURST = 150000, LOOK = 65536 };
    uint64_t tail0 = to_burst_expired(t, BURST, 20, far);
    uint64_t off = t->h->once_off, cap = to_cap(t);
    ck_assert_uint_ge(cap, 262144);
    /* the first look's records, whole pages inside them (no wrap: the
     * ring is bigger than the burst) */
    ck_assert_uint_le((tail0 & (cap - 1)) + LOOK, cap);
    const char *swept = t->base + off + 8u * (TO_HDR_WORDS + TO_REC_WORDS * (tail0 & (cap - 1)));
    uint64_t len = 8u * TO_REC_WORDS * LOOK - 8192;
    swept = (const char *)(((uintptr_t)swept + 4095u) & ~(uintptr_t)4095u);
    ck_assert_uint_gt(present_pages(swept, len), len / 4096 / 2); /* written here, so mapped */
    ck_assert_int_eq(tbl_once_tidy(t), 1);
    ck_assert_uint_eq(t->h->once_off, off);
    ck_assert_uint_eq(to_reg(t)[3] - tail0, LOOK);
    ck_assert_uint_eq(present_pages(swept, len), 0);
    ck_assert_int_eq(tbl_once_tidy(t), 1);
    ck_assert_uint_eq(to_reg(t)[3] - tail0, 2 * LOOK);
    ck_assert_int_eq(tbl_once_tidy(t), 0); /* reached the kept ones: shrunk */
    ck_assert_uint_ne(t->h->once_off, off);
    ck_assert_uint_eq(to_cap(t), 64);
    ck_assert_int_eq(tbl_once_tidy(t), 0);
    tt_check(t);
    to_kept_known(t, BURST, 20, 1, far);
    etsmgr_table_close(t);
}
END_TEST

/* The smaller block a tidy look writes when it shrinks the region leaves
 * the tidying process's page tables (a standby that tidied and is killed
 * soon after would otherwise have its exit tear down the whole block
 * first), and what it holds is all there. */
START_TEST(update_counter_once_tidy_unmaps_new_region)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t far = etsmgr_mono_ms() + 3600000;
    enum { BURST = 150000, KEPT = 20000 };
    (void)to_burst_expired(t, BURST, KEPT, far);
    uint64_t off = t->h->once_off;
    int r;
    while ((r = tbl_once_tidy(t)) == 1) {}
    ck_assert_int_eq(r, 0);
    ck_assert_uint_ne(t->h->once_off, off); /* shrunk */
    uint64_t cap = to_cap(t), len = 8u * (TO_HDR_WORDS + TO_REC_WORDS * cap) + 8u * TO_IDX_PER_REC * cap;
    ck_assert_uint_ge(len, 1u << 22); /* 65,536 records: 4 MiB, worth unmapping */
    ck_assert_uint_le(present_pages(t->base + t->h->once_off, len), 2); /* at most the partial edge pages */
    tt_check(t);
    to_kept_known(t, BURST, KEPT, 97, far);
    etsmgr_table_close(t);
}
END_TEST

/* A handle's first counts write a rid's index line before they read it
 * (once_touch), so that each maps one page of the index and not the
 * sixteen a read fault maps (fault-around): a hot standby that took a
 * burst-sized region over and is killed in turn tears down fewer pages. */
START_TEST(update_counter_once_maps_one_index_page)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 0; i < 150000; i++) { /* a region of 262,144 records: an 8 MiB index */
        etsmgr_once o = to_seq_rid(7, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    }
    uint64_t off = t->h->once_off, len = 8u * TO_IDX_PER_REC * to_cap(t);
    char *idx = (char *)to_idx(t), *end = idx + len;
    ck_assert_uint_ge(len, 8u << 20);
    idx = (char *)(((uintptr_t)idx + 4095u) & ~(uintptr_t)4095u); /* whole pages */
    len = (uint64_t)((uintptr_t)end & ~(uintptr_t)4095u) - (uint64_t)(uintptr_t)idx;
    /* as a process that has just attached: none of the index mapped */
    ck_assert_int_eq(madvise(idx, len, MADV_DONTNEED), 0);
    ck_assert_uint_eq(present_pages(idx, len), 0);
    t->once_touches = 0;
    enum { COUNTS = 8 };
    for (uint64_t i = 0; i < COUNTS; i++) {
        etsmgr_once o = to_seq_rid(1000 + 7919 * i, 0, far); /* new senders: random lines */
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
        ck_assert_int_eq(dup, 0);
    }
    ck_assert_uint_eq(t->h->once_off, off);
    uint64_t mapped = present_pages(idx, len);
    /* valgrind runs the atomic OR as a load, then a compare-and-swap: a
     * read first (tests/memcheck.mk) */
    if (!getenv("ETSMGR_TEST_VALGRIND"))
        ck_assert_msg(mapped >= 1 && mapped <= COUNTS, "%llu index pages mapped by %d counts",
                      (unsigned long long)mapped, COUNTS);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A full store gets room when its first record's keep time passes. */
static etsmgr_table *room_t;
static bool once_room(void *arg)
{
    (void)arg;
    etsmgr_once o = once_cap(999999, etsmgr_mono_ms() + 3600000, 10);
    int64_t v;
    int dup;
    return etsmgr_table_update_counter_once(room_t, "c", 1, 1, &o, &v, &dup) == ETSMGR_OK;
}

START_TEST(update_counter_once_room_later)
{
    room_t = tt_create(NULL, 0, 0);
    int64_t v, now = etsmgr_mono_ms();
    int dup;
    for (uint64_t i = 0; i < 10; i++) {
        etsmgr_once o = once_cap(i, i == 0 ? now + 300 : now + 3600000, 10);
        ck_assert_int_eq(etsmgr_table_update_counter_once(room_t, "c", 1, 1, &o, &v, &dup), 0);
    }
    etsmgr_once o = once_cap(999999, now + 3600000, 10);
    ck_assert_int_eq(etsmgr_table_update_counter_once(room_t, "c", 1, 1, &o, &v, &dup), ETSMGR_ERIDFULL);
    ck_assert_msg(tu_eventually(once_room, NULL, 10000), "no room after the first keep time passed");
    ck_assert_int_eq(tt_get_int(room_t, "c", &dup), 11);
    tt_check(room_t);
    etsmgr_table_close(room_t);
}
END_TEST

/* Hash flooding.  The index's hash of before was fixed and invertible for
 * 8-byte keys, so anyone could compute keys that all share one home slot:
 * each insert and lookup then probed past all the others (quadratic
 * inserts, a lookup as slow as a scan).  Now each table hashes with a
 * random key of its own (TBL_VERSION_SEEDED).  The 8-byte keys below
 * invert the unseeded hash (fl_unhash): in a table without the key they
 * all land on one home (the test shows the keys are what it says), in a
 * new table they spread like any keys.  So must keys of 16 bytes and more
 * that differ by a block's top bit and, in the next block, by what that
 * bit becomes in the state of the hash of before (2^63 | 2^34): those
 * collided whatever key was merely xored into its first state. */
static uint64_t fl_inv_mul(uint64_t a) /* a * x == 1 mod 2^64, a odd (Newton) */
{
    uint64_t x = a;
    for (int i = 0; i < 6; i++) x *= 2 - a * x;
    return x;
}
static uint64_t fl_unhash(uint64_t hv) /* the 8-byte key whose unseeded tbl_hash is hv */
{
    uint64_t z = hv ^ (hv >> 32);                       /* h ^= h >> 32 */
    uint64_t y = z * fl_inv_mul(0xc4ceb9fe1a85ec53ull); /* h *= C2 */
    y = y ^ (y >> 29) ^ (y >> 58);                      /* h ^= h >> 29 */
    uint64_t x = y * fl_inv_mul(0xff51afd7ed558ccdull); /* h = (h ^ w) * C1 */
    return x ^ 0x9e3779b97f4a7c15ull ^ (8ull * 0xc2b2ae3d27d4eb4full);
}
/* The mean distance of t's keys from their home slots, in slots (linear
 * probing: a lookup of a key steps over that many others).  The mean, not
 * the longest: at the index's 3/4 load a few long runs are normal, while
 * the mean of many keys moves little from one random key to the next. */
static double fl_mean_probe(etsmgr_table *t)
{
    const uint64_t *idx = (const uint64_t *)(const void *)(t->base + t->h->idx_off);
    uint64_t mask = t->h->idx_mask, sum = 0, n = 0;
    unsigned shift = 64u - (unsigned)__builtin_ctzll(mask + 1);
    for (uint64_t i = 0; i <= mask; i++) {
        if (tbl_unused(idx[i])) continue;
        struct tbl_ent hc;
        const struct tbl_ent *e = tbl_ent_hdr(t, (idx[i] & TBL_OFF_MASK) << 3, &hc);
        ck_assert_ptr_nonnull(e);
        sum += (i - tbl_home(tbl_hash(t->hseed, tbl_ent_key(e), hc.klen), shift)) & mask;
        n++;
    }
    return n ? (double)sum / (double)n : 0;
}
#define FL_KEYS 1500
static double fl_fill(etsmgr_table *t)
{
    etsmgr_value v = tt_int(1);
    for (uint64_t i = 0; i < FL_KEYS; i++) {
        /* the top 24 bits (the home in any index up to 2^24 slots) the
         * same, the rest differing */
        uint64_t k = fl_unhash(0x5a5a5aull << 40 | (i * 0x9e3779b97full & ((1ull << 40) - 1)));
        ck_assert_int_eq(etsmgr_table_insert(t, &k, 8, &v), 0);
    }
    return fl_mean_probe(t);
}
/* 1,024 keys of 160 bytes (20 blocks, 10 pairs): pair j's first block's
 * top bit flipped, its second block's 2^63 | 2^34, for the bits of i */
#define FL_LONG 1024
static double fl_fill_long(etsmgr_table *t)
{
    etsmgr_value v = tt_int(1);
    for (uint64_t i = 0; i < FL_LONG; i++) {
        uint64_t k[20];
        for (int b = 0; b < 20; b++) k[b] = 0x6161616161616161ull;
        for (int j = 0; j < 10; j++)
            if (i >> j & 1) k[2 * j] ^= 1ull << 63, k[2 * j + 1] ^= 1ull << 63 | 1ull << 34;
        ck_assert_int_eq(etsmgr_table_insert(t, k, sizeof k, &v), 0);
    }
    return fl_mean_probe(t);
}
/* A table of before: made by this library, its flag taken away before
 * any key went in (the unseeded hash). */
static etsmgr_table *fl_unseeded(void)
{
    const char *n;
    etsmgr_table *t = tt_create(&n, 0, 0);
    t->h->version &= ~TBL_VERSION_SEEDED;
    etsmgr_table_close(t);
    ck_assert_int_eq(tbl_open(n, &t), 0);
    ck_assert_uint_eq(t->hseed[0] | t->hseed[1], 0);
    return t;
}
START_TEST(hash_seeded_per_table)
{
    etsmgr_table *b = tt_create(NULL, 0, 0), *c = tt_create(NULL, 0, 0);
    ck_assert(b->h->version & TBL_VERSION_SEEDED);
    ck_assert(b->hseed[0] | b->hseed[1]);
    ck_assert(b->hseed[0] != c->hseed[0] || b->hseed[1] != c->hseed[1]);
    /* the inverse is right */
    ck_assert_uint_eq(fl_unhash(tbl_hash(NULL, "12345678", 8)), 0x3837363534333231ull);
    etsmgr_table *a = fl_unseeded(), *d = fl_unseeded();
    double unseeded = fl_fill(a), seeded = fl_fill(b);
    printf("hash flooding, %d keys: mean probe %.1f slots unseeded, %.2f seeded\n", FL_KEYS, unseeded, seeded);
    ck_assert_msg(unseeded > FL_KEYS / 3, "the crafted keys collide without a seed: mean probe %.1f", unseeded);
    ck_assert_msg(seeded < 10, "with the table's seed they spread: mean probe %.2f", seeded);
    double ulong = fl_fill_long(d), slong = fl_fill_long(c);
    printf("hash flooding, %d keys of 160 bytes: mean probe %.1f slots unseeded, %.2f seeded\n", FL_LONG, ulong,
           slong);
    ck_assert_msg(ulong > FL_LONG / 3, "the long keys collide without a seed: mean probe %.1f", ulong);
    ck_assert_msg(slong < 10, "with the table's key they spread: mean probe %.2f", slong);
    /* every table is whole: verify clean (it checks the key too) */
    char why[200];
    ck_assert_int_eq(etsmgr_table_verify(a, why, sizeof why), 0);
    ck_assert_int_eq(etsmgr_table_verify(b, why, sizeof why), 0);
    ck_assert_int_eq(etsmgr_table_verify(c, why, sizeof why), 0);
    ck_assert_int_eq(etsmgr_table_verify(d, why, sizeof why), 0);
    /* a key changed after attach is a corrupt table, said by verify */
    c->h->hash_seed[1] ^= 1;
    ck_assert_int_eq(etsmgr_table_verify(c, why, sizeof why), ETSMGR_ECORRUPT);
    ck_assert_msg(strstr(why, "hash key"), "%s", why);
    c->h->hash_seed[1] ^= 1;
    etsmgr_table_close(a);
    etsmgr_table_close(b);
    etsmgr_table_close(c);
    etsmgr_table_close(d);
}
END_TEST

/* A partial rollback inside an operation (tbl_once_count_many undoes one
 * refused count of its batch and goes on with the next) put the header's
 * words back but not the handle's view of them: the heap top stayed where
 * the refused count had bumped it, so the next count allocated past a hole
 * that no free list or entry accounted for. */
START_TEST(rollback_refreshes_cached_state)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    ck_assert_int_eq(tbl_op_begin(t, "test", true), 0);
    uint64_t top0 = t->h->heap_top, mark = t->un, off;
    ck_assert_uint_eq(t->top, top0);
    ck_assert_int_eq(tbl_alloc(t, 64, &off), 0);
    ck_assert_uint_eq(off, top0);
    ck_assert_uint_eq(t->top, top0 + 64);
    ck_assert_int_eq(tbl_rollback_to(t, mark), 0);
    ck_assert_uint_eq(t->h->heap_top, top0);
    ck_assert_uint_eq(t->top, top0); /* the handle's view follows */
    ck_assert_int_eq(tbl_alloc(t, 64, &off), 0);
    ck_assert_uint_eq(off, top0); /* the same block again: no hole */
    ck_assert_int_eq(tbl_op_end(t, ETSMGR_EINVAL), ETSMGR_EINVAL); /* undo that one too */
    char why[200];
    ck_assert_msg(etsmgr_table_verify(t, why, sizeof why) == 0, "%s", why);
    etsmgr_table_close(t);
}
END_TEST

/* What a dump leaves out: only an older etscounterd's request-id entries,
 * not every key that starts with a NUL byte (etsmgrctl dump hid big-endian
 * integer keys below 2^56, the usual keys of an ordered_set of numbers). */
START_TEST(bookkeeping_is_only_the_rid_shape)
{
    unsigned char rid[TBL_RID_KEY_LEN] = {0};
    memcpy(rid, TBL_RID_PREFIX, TBL_RID_PREFIX_LEN);
    etsmgr_value v16 = tt_bytes("0123456789abcdef", 16), v15 = tt_bytes("0123456789abcde", 15), vi = tt_int(16);
    ck_assert(tbl_is_bookkeeping(rid, sizeof rid, &v16));
    ck_assert(!tbl_is_bookkeeping(rid, sizeof rid, &v15));
    ck_assert(!tbl_is_bookkeeping(rid, sizeof rid, &vi));
    ck_assert(!tbl_is_bookkeeping(rid, sizeof rid - 1, &v16));
    ck_assert(!tbl_is_bookkeeping("\0\0\0\7", 4, &vi));
    ck_assert(!tbl_is_bookkeeping("\0hidden", 7, &v16));
}
END_TEST

START_TEST(strerror_all)
{
    /* every code etsmgr.h declares has its own words: manpages'
     * test_every_error_documented reads the codes from the header */
    ck_assert_str_eq(etsmgr_strerror(ETSMGR_OK), "success");
    ck_assert_str_eq(etsmgr_strerror(-1000), "unknown etsmgr error");
    ck_assert_str_eq(etsmgr_strerror(5), "unknown etsmgr error");
}
END_TEST

Suite *table_suite(void)
{
    Suite *s = suite_create("table");
    TCase *tc = tcase_create("ops");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, create_open_close_unlink);
    tcase_add_test(tc, hash_seeded_per_table);
    tcase_add_test(tc, bookkeeping_is_only_the_rid_shape);
    tcase_add_test(tc, rollback_refreshes_cached_state);
    tcase_add_test(tc, create_errors);
    tcase_add_test(tc, create_mode);
    tcase_add_test(tc, insert_lookup_types);
    tcase_add_test(tc, insert_new_and_delete);
    tcase_add_test(tc, update_counter);
    tcase_add_test(tc, foreach_and_info);
    tcase_add_test(tc, argument_errors);
    tcase_add_test(tc, groups);
    tcase_add_test(tc, update_counter_once);
    tcase_add_test(tc, update_counter_once_limit);
    tcase_add_test(tc, update_counter_once_many);
    tcase_add_test(tc, update_counter_once_many_late);
    tcase_add_test(tc, update_counter_once_many_full);
    tcase_add_test(tc, update_counter_once_stale_clock);
    tcase_add_test(tc, update_counter_once_never_late);
    tcase_add_test(tc, update_counter_once_room_later);
    tcase_add_test(tc, update_counter_once_mixed_keep);
    tcase_add_test(tc, update_counter_once_layout1);
    tcase_add_test(tc, update_counter_once_layout2);
    tcase_add_test(tc, update_counter_once_layout3);
    tcase_add_test(tc, update_counter_once_rollback_keeps_version);
    tcase_add_test(tc, update_counter_once_senders);
    tcase_add_test(tc, update_counter_once_hostile);
    tcase_add_test(tc, update_counter_once_shrink);
    tcase_add_test(tc, update_counter_once_sweep_bounded);
    tcase_add_test(tc, update_counter_once_tidy);
    tcase_add_test(tc, update_counter_once_steady);
    tcase_add_test(tc, update_counter_once_takes_dropped_entries);
    tcase_add_test(tc, update_counter_once_grows_twice);
    tcase_add_test(tc, update_counter_once_crowded_keeps_size);
    tcase_add_test(tc, update_counter_once_verify_gap);
    tcase_add_test(tc, update_counter_once_unmaps_old_region);
    tcase_add_test(tc, update_counter_once_tidy_steps);
    tcase_add_test(tc, update_counter_once_maps_one_index_page);
    tcase_add_test(tc, update_counter_once_tidy_unmaps_new_region);
    tcase_add_test(tc, strerror_all);
    suite_add_tcase(s, tc);
    return s;
}

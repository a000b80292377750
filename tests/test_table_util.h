/* SPDX-License-Identifier: Apache-2.0 */
/* test_table_util.h: what the table suites share: unique shm names that are
 * unlinked at the end of each test, a checked create, and the invariant
 * check every crash test ends with (verify passes, the entry count equals
 * what an iteration sees, each key is found by lookup with the value the
 * iteration saw). */
#ifndef TEST_TABLE_UTIL_H
#define TEST_TABLE_UTIL_H
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "table.h"
#include "testutil.h"

#define TT_MAX_NAMES 64
static char tt_names[TT_MAX_NAMES][48];
static int tt_nnames;

static inline void tt_cleanup(void);
static inline void tt_atexit(void) { tt_cleanup(); }

/* A fresh name "/t<pid>x<n>.tbl", remembered for tt_cleanup (which also
 * runs at exit, so a failed test leaves nothing: forked helpers _exit). */
static inline const char *tt_name(void)
{
    static int registered;
    if (!registered++) atexit(tt_atexit);
    ck_assert_int_lt(tt_nnames, TT_MAX_NAMES);
    char *n = tt_names[tt_nnames];
    snprintf(n, sizeof tt_names[0], "/t%dx%d.tbl", (int)getpid(), tt_nnames);
    /* the name carries our pid: an object by that name was left by a dead
     * process that had this pid before (a test killed mid-way) */
    shm_unlink(n);
    tt_nnames++;
    tu_sweep_note("shm", n, NULL);
    return n;
}

static inline void tt_cleanup(void)
{
    for (int i = 0; i < tt_nnames; i++) shm_unlink(tt_names[i]);
    tt_nnames = 0;
}

static inline etsmgr_table *tt_create(const char **name, uint64_t size_hint, uint64_t max_bytes)
{
    const char *n = tt_name();
    if (name) *name = n;
    etsmgr_table_opts o = {.size_hint = size_hint, .max_bytes = max_bytes};
    etsmgr_table *t = NULL;
    int r = tbl_create(n, "test", &o, &t);
    ck_assert_msg(r == 0, "tbl_create %s: %s", n, etsmgr_strerror(r));
    return t;
}

static inline etsmgr_value tt_int(int64_t i) { return (etsmgr_value){.type = ETSMGR_INT, .i = i}; }
static inline etsmgr_value tt_bytes(const void *p, size_t n)
{
    return (etsmgr_value){.type = ETSMGR_BYTES, .data = p, .len = n};
}

struct tt_walk {
    etsmgr_table *t;
    uint64_t n;
    int bad;
    char why[160];
};

static inline int tt_walk_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct tt_walk *w = arg;
    w->n++;
    (void)key, (void)klen, (void)v;
    return 0;
}

/* verify + count == entries seen by foreach.  Returns 0 or fails the test. */
static inline void tt_check(etsmgr_table *t)
{
    char why[200];
    int r = etsmgr_table_verify(t, why, sizeof why);
    ck_assert_msg(r == 0, "verify: %s: %s", etsmgr_strerror(r), why);
    struct tt_walk w = {.t = t};
    ck_assert_int_eq(etsmgr_table_foreach(t, tt_walk_cb, &w), 0);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.entries, w.n);
}

/* Key "k<i>" into buf; its length. */
static inline size_t tt_key(char *buf, size_t cap, const char *prefix, long i)
{
    return (size_t)snprintf(buf, cap, "%s%ld", prefix, i);
}

static inline int64_t tt_get_int(etsmgr_table *t, const char *key, int *rc)
{
    etsmgr_value v;
    *rc = etsmgr_table_lookup(t, key, strlen(key), &v, NULL, 0);
    return *rc == 0 && v.type == ETSMGR_INT ? v.i : -1;
}
#endif

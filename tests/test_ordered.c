/* SPDX-License-Identifier: Apache-2.0 */
/* test_ordered.c: ordered_set tables (table_ordered.c, a B+tree).
 *
 * - api: order (bytewise, a prefix first), first/last/next/prev at and
 *   between keys and past either end, ERANGE, ranges with open and closed
 *   ends, foreach in order, what a set answers.
 * - shared_prefix: keys alike in their first bytes, in a tree of two
 *   levels (a regression test).
 * - short_separators: every key of 1 to 4 bytes over {0x00, 0x01, 'a'}, in
 *   a scrambled order, on nodes of 3 slots: separators made from the
 *   3-byte prefixes of leaf slots must drop their trailing zero bytes (the
 *   prefix of "a" is "a\0\0", which is above "a"), or verify finds keys
 *   outside their separators and walks lose keys.
 * - model: random inserts, overwrites (int and bytes), deletes and counter
 *   updates against a sorted in-memory model; after every operation its
 *   result, a lookup, next/prev of a random key, and every 16 operations
 *   first/last and a range are compared with the model, and the whole table
 *   every 10,000 (verify included).  1,000,000 operations in make check,
 *   with or without SANITIZE=1, on nodes of 3 slots (tbl_ord_fill: a tree
 *   five to seven levels deep that splits, removes nodes, grows and
 *   shrinks its root all the time), then a quarter as many on full-size
 *   nodes (the checks in its loop call check only on failure, see M_TRUE);
 *   ETSMGR_MODEL_OPS sets the number (make crash: CRASH_MODEL_OPS, 5M).
 * - crash points: for insert, overwrite, delete, update_counter, a group and
 *   an insert that grows the index and the table, a forked child dies at
 *   each numbered step in turn; the parent then checks verify (which walks
 *   the B+tree: count = reachable slots, keys strictly increasing and
 *   within their separators, every slot's entry the indexed one, the leaf
 *   links), and that the table in key order is exactly the state before or
 *   the state after the change.  On nodes of 3 slots: one insert that
 *   splits a leaf, its parent and grandparent and grows the root
 *   (split_all), one delete that removes a leaf and the three inner nodes
 *   above it and shrinks the root (merge_all), an insert into a full leaf
 *   whose neighbour takes a slot instead of a split (lend), and two runs, 24
 *   inserts into 12 keys (splits and lends at every level, the root
 *   growing) and deletes of all of 28 keys (removals and root shrinks at
 *   every level, down to an empty leaf), where the state after each crash
 *   must be the one after some prefix of the operations.
 * - descent_prefetches_compiled: the compiled table_ordered.o (x86-64)
 *   holds the prefetches of its descents: GCC 12 had found the helper
 *   that asks for a node's lines const and deleted every call to it, which
 *   nothing but the time can show (a regression test); and the walk's
 *   prefetch of the next leaf's entries into the outer caches only
 *   (prefetcht1), which only the time shows too. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "runcap.h"
#include "table_int.h"
#include "test_table_util.h"

static void teardown(void) { tt_cleanup(); }

static etsmgr_table *oc_create(const char **name, uint64_t size_hint)
{
    const char *n = tt_name();
    if (name) *name = n;
    etsmgr_table_opts o = {.size_hint = size_hint, .type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    int r = tbl_create(n, "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    return t;
}

static void put_int(etsmgr_table *t, const char *k, int64_t v)
{
    etsmgr_value x = tt_int(v);
    ck_assert_int_eq(etsmgr_table_insert(t, k, strlen(k), &x), 0);
}

/* ------------------------------------------------------------ api */

struct collect {
    char keys[64][16];
    int n;
    int stop_at;
};

static int collect_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)v;
    struct collect *c = arg;
    ck_assert_uint_lt(klen, 16);
    memcpy(c->keys[c->n], key, klen);
    c->keys[c->n][klen] = 0;
    c->n++;
    return c->n == c->stop_at ? 7 : 0;
}

START_TEST(api)
{
    etsmgr_table *t = oc_create(NULL, 0);
    const char *ks[] = {"b", "ab", "a", "abc", "c", "ba"};
    for (int i = 0; i < 6; i++) put_int(t, ks[i], i);
    char out[16];
    size_t n;
    ck_assert_int_eq(etsmgr_table_first(t, out, sizeof out, &n), 0);
    ck_assert_mem_eq(out, "a", n);
    ck_assert_int_eq(etsmgr_table_last(t, out, sizeof out, &n), 0);
    ck_assert_mem_eq(out, "c", n);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(etsmgr_table_next(t, "a", 1, out, sizeof out, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "ab", 2);
    ck_assert_int_eq(etsmgr_table_next(t, "abb", 3, out, sizeof out, &n), 0); /* absent key */
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(out, "abc", 3);
    ck_assert_int_eq(etsmgr_table_prev(t, "b", 1, out, sizeof out, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(etsmgr_table_prev(t, "bb", 2, out, sizeof out, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "ba", 2);
    ck_assert_int_eq(etsmgr_table_next(t, "c", 1, out, sizeof out, &n), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_prev(t, "a", 1, out, sizeof out, &n), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_next(t, "a", 1, out, 1, &n), ETSMGR_ERANGE);
    ck_assert_uint_eq(n, 2);
    struct collect c = {.stop_at = -1};
    ck_assert_int_eq(etsmgr_table_foreach(t, collect_cb, &c), 0);
    ck_assert_int_eq(c.n, 6);
    const char *want[] = {"a", "ab", "abc", "b", "ba", "c"};
    for (int i = 0; i < 6; i++) ck_assert_str_eq(c.keys[i], want[i]);
    c = (struct collect){.stop_at = -1};
    ck_assert_int_eq(etsmgr_table_foreach_range(t, "ab", 2, "ba", 2, collect_cb, &c), 0);
    ck_assert_int_eq(c.n, 3);
    ck_assert_str_eq(c.keys[0], "ab");
    ck_assert_str_eq(c.keys[2], "b");
    c = (struct collect){.stop_at = -1};
    ck_assert_int_eq(etsmgr_table_foreach_range(t, NULL, 0, "abc", 3, collect_cb, &c), 0);
    ck_assert_int_eq(c.n, 2);
    c = (struct collect){.stop_at = -1};
    ck_assert_int_eq(etsmgr_table_foreach_range(t, "bb", 2, NULL, 0, collect_cb, &c), 0);
    ck_assert_int_eq(c.n, 1);
    ck_assert_str_eq(c.keys[0], "c");
    c = (struct collect){.stop_at = 2};
    ck_assert_int_eq(etsmgr_table_foreach_range(t, NULL, 0, NULL, 0, collect_cb, &c), 7);
    ck_assert_int_eq(etsmgr_table_delete(t, "a", 1), 0);
    ck_assert_int_eq(etsmgr_table_first(t, out, sizeof out, &n), 0);
    ck_assert_mem_eq(out, "ab", 2);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_int_eq(info.type, ETSMGR_ORDERED_SET);
    tt_check(t);
    etsmgr_table_close(t);

    /* an empty ordered table, and a set */
    t = oc_create(NULL, 0);
    ck_assert_int_eq(etsmgr_table_first(t, out, sizeof out, &n), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_last(t, out, sizeof out, &n), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_next(t, "x", 1, out, sizeof out, &n), ETSMGR_ENOTFOUND);
    etsmgr_table_close(t);
    t = tt_create(NULL, 0, 0);
    put_int(t, "x", 1);
    ck_assert_int_eq(etsmgr_table_first(t, out, sizeof out, &n), 0);
    ck_assert_mem_eq(out, "x", 1);
    ck_assert_int_eq(etsmgr_table_last(t, out, sizeof out, &n), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_next(t, "x", 1, out, sizeof out, &n), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_prev(t, "x", 1, out, sizeof out, &n), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_foreach_range(t, NULL, 0, NULL, 0, collect_cb, &c), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_int_eq(info.type, ETSMGR_SET);
    etsmgr_table_close(t);
}
END_TEST

/* Keys that share their first 4 bytes (the prefix a node keeps) are told
 * apart by reading them; memcmp's result is any int, and a comparison that
 * passed it on as is once took 2 ('2' - '0') for "malformed" (fails then:
 * next gives ETSMGR_ECORRUPT). */
START_TEST(shared_prefix)
{
    etsmgr_table *t = oc_create(NULL, 0);
    char k[16], out[16];
    size_t n;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%06d", i);
        put_int(t, k, i);
    }
    for (int i = 0; i < 99; i++) {
        snprintf(k, sizeof k, "k%06d", i);
        ck_assert_int_eq(etsmgr_table_next(t, k, 7, out, sizeof out, &n), 0);
        snprintf(k, sizeof k, "k%06d", i + 1);
        ck_assert_mem_eq(out, k, 7);
        etsmgr_value b = tt_bytes("xyz", 3); /* a new block in the leaf's slot */
        ck_assert_int_eq(etsmgr_table_insert(t, k, 7, &b), 0);
    }
    tt_check(t);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k%06d", (i * 37) % 100);
        ck_assert_int_eq(etsmgr_table_delete(t, k, 7), 0);
    }
    ck_assert_int_eq(etsmgr_table_first(t, out, sizeof out, &n), ETSMGR_ENOTFOUND);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(short_separators)
{
    enum { NK = 3 + 9 + 27 + 81 };
    static const unsigned char al[] = {0x00, 0x01, 'a'};
    unsigned char keys[NK][4];
    size_t lens[NK];
    int nk = 0;
    for (size_t len = 1; len <= 4; len++) {
        int count = 1;
        for (size_t j = 0; j < len; j++) count *= 3;
        for (int c = 0; c < count; c++, nk++) {
            for (size_t j = 0, x = (size_t)c; j < len; j++, x /= 3) keys[nk][len - 1 - j] = al[x % 3];
            lens[nk] = len;
        }
    }
    tbl_ord_fill = 3;
    etsmgr_table *t = oc_create(NULL, 0);
    for (int i = 0; i < NK; i++) {
        int k = (i * 47) % NK; /* 47 is prime to 120: every key once, scrambled */
        etsmgr_value v = tt_int(k);
        ck_assert_int_eq(etsmgr_table_insert(t, keys[k], lens[k], &v), 0);
    }
    tt_check(t);
    /* in order: each key's next is the smallest key above it */
    unsigned char cur[ETSMGR_KEY_MAX];
    size_t cl, seen = 0;
    int r = etsmgr_table_first(t, cur, sizeof cur, &cl);
    while (r == 0) {
        seen++;
        size_t nl;
        unsigned char nx[ETSMGR_KEY_MAX];
        r = etsmgr_table_next(t, cur, cl, nx, sizeof nx, &nl);
        if (r == 0) {
            size_t m = cl < nl ? cl : nl;
            int c = memcmp(cur, nx, m);
            ck_assert_msg(c < 0 || (c == 0 && cl < nl), "next is not above its key");
            memcpy(cur, nx, nl);
            cl = nl;
        }
    }
    ck_assert_int_eq(r, ETSMGR_ENOTFOUND);
    ck_assert_uint_eq(seen, NK);
    for (int i = 0; i < NK; i++) { /* and every key is found through the tree */
        unsigned char pv[ETSMGR_KEY_MAX];
        size_t pl;
        int rp = etsmgr_table_prev(t, keys[i], lens[i], pv, sizeof pv, &pl);
        ck_assert_int_eq(rp, lens[i] == 1 && keys[i][0] == 0 ? ETSMGR_ENOTFOUND : 0);
    }
    tbl_ord_fill = 0;
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ model */

#define MK 1500 /* distinct keys: key i is a variable-length byte string */

/* check's ck_assert_* write the assertion's place to the runner's pipe
 * every time one passes (a write(2) each: most of the model test's time at
 * a million operations); these call check only when the condition fails. */
static long m_step; /* the operation being checked, for the messages */
#define M_TRUE(expr, ...)                                                                          \
    do {                                                                                           \
        if (!(expr)) ck_assert_msg(expr, __VA_ARGS__);                                             \
    } while (0)
#define M_EQ(x, y)                                                                                 \
    do {                                                                                           \
        long long x_ = (long long)(x), y_ = (long long)(y);                                        \
        if (x_ != y_) ck_abort_msg("step %ld: %s == %s failed: %lld != %lld", m_step, #x, #y, x_, y_); \
    } while (0)

struct mval {
    bool live;
    bool isint;
    int64_t i;
    uint16_t blen;
    unsigned char b[24];
};

static struct mval model[MK];
static unsigned char mkeys[MK][8];
static size_t mklen[MK];
static int morder[MK]; /* key ids in bytewise key order */

static int mkey_cmp(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    size_t l = mklen[x] < mklen[y] ? mklen[x] : mklen[y];
    int c = memcmp(mkeys[x], mkeys[y], l);
    return c ? c : (mklen[x] > mklen[y]) - (mklen[x] < mklen[y]);
}

static uint64_t rs = 88172645463325252ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void model_keys(void)
{
    for (int i = 0; i < MK; i++) {
        /* 1..5 bytes from a small alphabet, including 0x00 and 0xff, so
         * that prefixes and bytes above 0x7f are common */
        static const unsigned char al[] = {0x00, 0x01, 'a', 'b', 'c', 0x7f, 0x80, 0xff};
        for (;;) {
            mklen[i] = 1 + rnd() % 5;
            for (size_t j = 0; j < mklen[i]; j++) mkeys[i][j] = al[rnd() % sizeof al];
            bool dup = false;
            for (int k = 0; k < i && !dup; k++)
                dup = mklen[k] == mklen[i] && memcmp(mkeys[k], mkeys[i], mklen[i]) == 0;
            if (!dup) break;
        }
        morder[i] = i;
    }
    qsort(morder, MK, sizeof morder[0], mkey_cmp);
}

/* rank of key id in morder */
static int mrank[MK];

static int model_next(int rank, int dir) /* first live at rank+dir.., or -1 */
{
    for (int r = rank + dir; r >= 0 && r < MK; r += dir)
        if (model[morder[r]].live) return morder[r];
    return -1;
}

static void expect_key(int rc, const char *out, size_t n, int id, const char *what, long step)
{
    if (id < 0) {
        M_TRUE(rc == ETSMGR_ENOTFOUND, "step %ld %s: rc %d, want none", step, what, rc);
    } else {
        M_TRUE(rc == 0 && n == mklen[id] && memcmp(out, mkeys[id], n) == 0, "step %ld %s: rc %d, wrong key",
                      step, what, rc);
    }
}

struct rwalk {
    int rank; /* next rank to expect from */
    int left; /* entries expected up to the end */
    int end;  /* rank bound (exclusive) */
    long step;
};

static int range_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct rwalk *w = arg;
    int id = model_next(w->rank - 1, 1);
    M_TRUE(id >= 0 && mrank[id] < w->end, "step %ld: range gave an extra key", w->step);
    M_TRUE(klen == mklen[id] && memcmp(key, mkeys[id], klen) == 0, "step %ld: range key differs", w->step);
    const struct mval *m = &model[id];
    if (m->isint)
        M_TRUE(v->type == ETSMGR_INT && v->i == m->i, "step %ld: range value differs", w->step);
    else
        M_TRUE(v->type == ETSMGR_BYTES && v->len == m->blen && memcmp(v->data, m->b, m->blen) == 0,
                      "step %ld: range bytes differ", w->step);
    w->rank = mrank[id] + 1;
    return 0;
}

static void model_compare_range(etsmgr_table *t, int a, int b, long step)
{
    /* [key a, key b) by rank; a or b == -1: open */
    struct rwalk w = {.rank = a < 0 ? 0 : mrank[a], .end = b < 0 ? MK : mrank[b], .step = step};
    int r = etsmgr_table_foreach_range(t, a < 0 ? NULL : mkeys[a], a < 0 ? 0 : mklen[a], b < 0 ? NULL : mkeys[b],
                                       b < 0 ? 0 : mklen[b], range_cb, &w);
    M_EQ(r, 0);
    int id = model_next(w.rank - 1, 1);
    M_TRUE(id < 0 || mrank[id] >= w.end, "step %ld: range stopped early", step);
}

/* The issue asks for at least a million in make check; ASan+UBSan cost
 * about 2x here, so SANITIZE=1 runs as many. */
static long model_ops(void)
{
    const char *e = getenv("ETSMGR_MODEL_OPS");
    long n = e && *e ? atol(e) : 0;
    return n > 0 ? n : 1000000;
}

START_TEST(model_based)
{
    /* _i 0: nodes of 3 slots, deep trees; 1: full nodes, a quarter as many */
    tbl_ord_fill = _i == 0 ? 3 : 0;
    model_keys();
    for (int r = 0; r < MK; r++) mrank[morder[r]] = r;
    memset(model, 0, sizeof model);
    etsmgr_table *t = oc_create(NULL, 0);
    long nops = _i == 0 ? model_ops() : model_ops() / 4;
    char out[ETSMGR_KEY_MAX];
    size_t n;
    for (long step = 0; step < nops; step++) {
        m_step = step;
        int id = (int)(rnd() % MK);
        struct mval *m = &model[id];
        unsigned op = (unsigned)(rnd() % 100);
        int rc;
        if (op < 35) { /* insert an integer */
            etsmgr_value v = tt_int((int64_t)rnd());
            M_EQ(etsmgr_table_insert(t, mkeys[id], mklen[id], &v), 0);
            *m = (struct mval){.live = true, .isint = true, .i = v.i};
        } else if (op < 45) { /* insert bytes */
            struct mval nv = {.live = true, .blen = (uint16_t)(rnd() % 25)};
            for (int j = 0; j < nv.blen; j++) nv.b[j] = (unsigned char)rnd();
            etsmgr_value v = tt_bytes(nv.b, nv.blen);
            M_EQ(etsmgr_table_insert(t, mkeys[id], mklen[id], &v), 0);
            *m = nv;
        } else if (op < 75) {
            rc = etsmgr_table_delete(t, mkeys[id], mklen[id]);
            M_EQ(rc, m->live ? 0 : ETSMGR_ENOTFOUND);
            m->live = false;
        } else {
            int64_t nv;
            rc = etsmgr_table_update_counter(t, mkeys[id], mklen[id], 3, 100, &nv);
            if (m->live && !m->isint) {
                M_EQ(rc, ETSMGR_ETYPE);
            } else {
                M_EQ(rc, 0);
                m->i = m->live ? m->i + 3 : 103;
                m->live = m->isint = true;
                M_EQ(nv, m->i);
            }
        }
        /* after every step: the key, and the neighbours of a random key */
        etsmgr_value v;
        unsigned char vb[32];
        rc = etsmgr_table_lookup(t, mkeys[id], mklen[id], &v, vb, sizeof vb);
        M_EQ(rc, m->live ? 0 : ETSMGR_ENOTFOUND);
        int q = (int)(rnd() % MK);
        rc = etsmgr_table_next(t, mkeys[q], mklen[q], out, sizeof out, &n);
        expect_key(rc, out, n, model_next(mrank[q], 1), "next", step);
        rc = etsmgr_table_prev(t, mkeys[q], mklen[q], out, sizeof out, &n);
        expect_key(rc, out, n, model_next(mrank[q], -1), "prev", step);
        if (step % 16 == 0) {
            rc = etsmgr_table_first(t, out, sizeof out, &n);
            expect_key(rc, out, n, model_next(-1, 1), "first", step);
            rc = etsmgr_table_last(t, out, sizeof out, &n);
            expect_key(rc, out, n, model_next(MK, -1), "last", step);
            int a = (int)(rnd() % MK), b = morder[(mrank[a] + (int)(rnd() % 40)) % MK];
            model_compare_range(t, rnd() % 8 ? a : -1, rnd() % 8 ? b : -1, step);
        }
        if (step % 10000 == 9999) {
            model_compare_range(t, -1, -1, step);
            tt_check(t);
        }
    }
    tt_check(t);
    etsmgr_table_close(t);
    tbl_ord_fill = 0;
}
END_TEST

/* ------------------------------------------------------------ crash points */

static long cp_target, cp_calls;
static void cp_hook(const char *op, int step)
{
    (void)op, (void)step;
    if (cp_calls++ == cp_target) _exit(77);
}

/* A table's contents in key order as one string ("key=value;..."),
 * failing when the walk's keys are not strictly increasing. */
struct dump {
    char *s;
    size_t n, cap;
    unsigned char pk[ETSMGR_KEY_MAX];
    size_t pklen; /* 0: no previous key */
    int bad;
};

static int dump_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct dump *d = arg;
    if (d->pklen) {
        size_t l = d->pklen < klen ? d->pklen : klen;
        int c = memcmp(d->pk, key, l);
        if (c > 0 || (c == 0 && d->pklen >= klen)) d->bad = 1;
    }
    memcpy(d->pk, key, klen);
    d->pklen = klen;
    char tmp[600];
    int m = v->type == ETSMGR_INT ? snprintf(tmp, sizeof tmp, "%.*s=%lld;", (int)klen, (const char *)key, (long long)v->i)
                                  : snprintf(tmp, sizeof tmp, "%.*s=b%.*s;", (int)klen, (const char *)key,
                                             (int)(v->len > 64 ? 64 : v->len), (const char *)v->data);
    if (d->n + (size_t)m + 1 > d->cap) {
        d->cap = (d->cap + (size_t)m + 1) * 2;
        d->s = realloc(d->s, d->cap);
        ck_assert_ptr_nonnull(d->s);
    }
    memcpy(d->s + d->n, tmp, (size_t)m + 1);
    d->n += (size_t)m;
    return 0;
}

static char *dump_table(etsmgr_table *t)
{
    struct dump d = {.s = calloc(1, 1), .cap = 1};
    ck_assert_ptr_nonnull(d.s);
    ck_assert_int_eq(etsmgr_table_foreach(t, dump_cb, &d), 0);
    ck_assert_msg(!d.bad, "keys not strictly increasing");
    return d.s;
}

static void each_key_once(etsmgr_table *t)
{
    /* walking with next from the first key gives every key once, each
     * findable by lookup, as many as the count */
    char k[ETSMGR_KEY_MAX], nk[ETSMGR_KEY_MAX];
    size_t kl, nkl;
    uint64_t seen = 0;
    int r = etsmgr_table_first(t, k, sizeof k, &kl);
    while (r == 0) {
        etsmgr_value v;
        char vb[ETSMGR_VALUE_MAX];
        ck_assert_int_eq(etsmgr_table_lookup(t, k, kl, &v, vb, sizeof vb), 0);
        seen++;
        r = etsmgr_table_next(t, k, kl, nk, sizeof nk, &nkl);
        memcpy(k, nk, nkl);
        kl = nkl;
    }
    ck_assert_int_eq(r, ETSMGR_ENOTFOUND);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    ck_assert_uint_eq(info.entries, seen);
}

struct oscen {
    const char *name;
    uint64_t size_hint;
    int nsetup;                       /* keys "k<i>" = i before the change */
    int (*action)(etsmgr_table *t); /* in the child */
    unsigned fill;                    /* != 0: nodes of this many slots, and the keys "k%03d", in order */
    bool multi;                       /* many changes: the state after any prefix of them is fine */
};

/* Multi-change actions call this after each change (the parent's dry run
 * collects the states). */
static void (*after_change)(etsmgr_table *t);

static int a_insert(etsmgr_table *t)
{
    etsmgr_value v = tt_int(-1);
    return etsmgr_table_insert(t, "k55x", 4, &v);
}
static int a_overwrite_bytes(etsmgr_table *t)
{
    etsmgr_value v = tt_bytes("a longer value than eight", 25);
    return etsmgr_table_insert(t, "k17", 3, &v);
}
static int a_delete(etsmgr_table *t) { return etsmgr_table_delete(t, "k42", 3); }
static int a_counter_new(etsmgr_table *t) { return etsmgr_table_update_counter(t, "k0a", 3, 5, 10, NULL); }
static int a_counter_old(etsmgr_table *t) { return etsmgr_table_update_counter(t, "k3", 2, 5, 10, NULL); }
static int a_group(etsmgr_table *t)
{
    int r = etsmgr_table_begin(t);
    if (r) return r;
    etsmgr_value v = tt_int(7), b = tt_bytes("xyz", 3);
    if ((r = etsmgr_table_insert(t, "a", 1, &v)) || (r = etsmgr_table_insert(t, "zz", 2, &b)) ||
        (r = etsmgr_table_delete(t, "k1", 2)) || (r = etsmgr_table_delete(t, "k9", 2)) ||
        (r = etsmgr_table_update_counter(t, "k5", 2, 1, 0, NULL)) || (r = etsmgr_table_insert(t, "k5", 2, &b)))
        return r;
    return etsmgr_table_commit(t);
}
static int a_grow(etsmgr_table *t)
{
    /* enough new keys to rehash the index and grow the object */
    for (int i = 0; i < 100; i++) {
        char k[16];
        etsmgr_value v = tt_int(i);
        size_t n = tt_key(k, sizeof k, "g", i);
        int r = etsmgr_table_insert(t, k, n, &v);
        if (r) return r;
    }
    return 0;
}

/* nodes of 3 slots, 81 keys in order: 27 full leaves under 9 full nodes
 * under 3 under a full root; one insert in the middle splits all four
 * levels and grows the root */
static int a_split_all(etsmgr_table *t)
{
    etsmgr_value v = tt_int(-1);
    return etsmgr_table_insert(t, "k040x", 5, &v);
}
/* 82 keys in order: the 82nd grew the root, whose right child is a chain
 * of one-child nodes down to a leaf of one key; deleting it removes the
 * leaf and the three nodes above it, and the root shrinks */
static int a_merge_all(etsmgr_table *t) { return etsmgr_table_delete(t, "k081", 4); }
/* 4 keys in order: leaves [k000 k001 k002] [k003]; an insert into the
 * full first one moves k002 over to the second (no split: the root keeps
 * its two children) and makes a new separator */
static int a_lend(etsmgr_table *t)
{
    etsmgr_value v = tt_int(-1);
    return etsmgr_table_insert(t, "k001x", 5, &v);
}
static int a_many_inserts(etsmgr_table *t)
{
    for (int i = 0; i < 24; i++) {
        char k[16];
        etsmgr_value v = tt_int(i);
        snprintf(k, sizeof k, "m%03d", (i * 7) % 24); /* not in order */
        int r = etsmgr_table_insert(t, k, strlen(k), &v);
        if (r) return r;
        if (after_change) after_change(t);
    }
    return 0;
}
static int a_delete_all(etsmgr_table *t)
{
    for (int i = 0; i < 28; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%03d", (i * 5) % 28);
        int r = etsmgr_table_delete(t, k, strlen(k));
        if (r) return r;
        if (after_change) after_change(t);
    }
    return 0;
}

static const struct oscen oscens[] = {
    {"insert", 0, 200, a_insert, 0, false},
    {"overwrite_bytes", 0, 200, a_overwrite_bytes, 0, false},
    {"delete", 0, 200, a_delete, 0, false},
    {"counter_new", 0, 200, a_counter_new, 0, false},
    {"counter_old", 0, 200, a_counter_old, 0, false},
    {"group", 0, 200, a_group, 0, false},
    {"grow", 1, 8, a_grow, 0, false}, /* the smallest table: the index rehashes and the object grows */
    {"split_all", 0, 81, a_split_all, 3, false},
    {"merge_all", 0, 82, a_merge_all, 3, false},
    {"lend", 0, 4, a_lend, 3, false},
    {"many_inserts", 0, 12, a_many_inserts, 3, true},
    {"delete_all", 0, 28, a_delete_all, 3, true},
};

static etsmgr_table *oscen_table(const char *name, const struct oscen *sc)
{
    etsmgr_table_opts o = {.size_hint = sc->size_hint, .type = ETSMGR_ORDERED_SET};
    etsmgr_table *t;
    shm_unlink(name);
    ck_assert_int_eq(tbl_create(name, "crash", &o, &t), 0);
    tbl_ord_fill = sc->fill;
    for (int i = 0; i < sc->nsetup; i++) {
        char k[16];
        if (sc->fill)
            snprintf(k, sizeof k, "k%03d", i);
        else
            tt_key(k, sizeof k, "k", i);
        put_int(t, k, i);
    }
    return t;
}

/* the tree's height: the root's level + 1 (0: no root) */
static unsigned tree_height(etsmgr_table *t)
{
    uint64_t root = t->h->ord_head;
    return root ? (unsigned)((*(const uint64_t *)(const void *)(t->base + root) >> 16) & 0xffffu) + 1 : 0;
}
/* the root's slots */
static unsigned root_slots(etsmgr_table *t)
{
    uint64_t root = t->h->ord_head;
    return root ? (unsigned)(*(const uint64_t *)(const void *)(t->base + root) & 0xffffu) : 0;
}

static char **states;
static int nstates;
static void collect_state(etsmgr_table *t)
{
    states = realloc(states, sizeof *states * (size_t)(nstates + 1));
    ck_assert_ptr_nonnull(states);
    states[nstates++] = dump_table(t);
}

START_TEST(crash_points)
{
    const struct oscen *sc = &oscens[_i];
    const char *name = tt_name();
    /* the states before and after, in key order */
    etsmgr_table *t = oscen_table(name, sc);
    char *before = dump_table(t);
    unsigned h0 = tree_height(t);
    nstates = 0;
    collect_state(t);
    after_change = sc->multi ? collect_state : NULL;
    ck_assert_int_eq(sc->action(t), 0);
    after_change = NULL;
    char *after = dump_table(t);
    /* the two cascades do what they are meant to */
    if (sc->action == a_split_all) ck_assert_uint_eq(tree_height(t), h0 + 1);
    if (sc->action == a_merge_all) ck_assert_uint_eq(tree_height(t), h0 - 1);
    if (sc->action == a_split_all) ck_assert_uint_eq(h0, 4);
    if (sc->action == a_lend) ck_assert_uint_eq(root_slots(t), 2);
    if (sc->action == a_many_inserts) ck_assert_uint_gt(tree_height(t), h0);
    if (sc->action == a_delete_all) ck_assert_uint_ge(h0, 4);
    if (sc->action == a_delete_all) ck_assert_uint_eq(tree_height(t), 1);
    etsmgr_table_close(t);
    ck_assert_str_ne(before, after);
    long step;
    for (step = 0;; step++) {
        ck_assert_msg(step < 200000, "%s: no end of crash points", sc->name);
        t = oscen_table(name, sc);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            cp_target = step;
            cp_calls = 0;
            tbl_crashpoint = cp_hook;
            int r = sc->action(t);
            _exit(r == 0 ? 0 : 10);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77), "%s step %ld: child failed",
                      sc->name, step);
        tt_check(t); /* verify: skiplist and index agree, count = reachable */
        char *now = dump_table(t);
        bool done = WEXITSTATUS(st) == 0;
        /* a grow scenario is many changes: any prefix of them is a state;
         * a single change or a group is before or after, nothing between */
        if (sc->action == a_grow) {
            ck_assert_msg(!done || strcmp(now, after) == 0, "%s step %ld", sc->name, step);
        } else if (sc->multi) {
            int k = 0;
            while (k < nstates && strcmp(now, states[k]) != 0) k++;
            ck_assert_msg(k < nstates && (!done || k == nstates - 1), "%s step %ld: not a state after a prefix",
                          sc->name, step);
        } else
            ck_assert_msg(strcmp(now, done ? after : before) == 0 || strcmp(now, after) == 0,
                          "%s step %ld: neither the old nor the new state", sc->name, step);
        free(now);
        each_key_once(t);
        /* still works after recovery */
        ck_assert_int_eq(etsmgr_table_update_counter(t, "after", 5, 1, 0, NULL), 0);
        tt_check(t);
        etsmgr_table_close(t);
        if (done) break;
    }
    /* a one-word change (an integer in place) has three: before its one
     * store, after it, the commit; every other change more */
    ck_assert_int_gt(step, sc->action == a_counter_old ? 2 : 3);
    tbl_ord_fill = 0;
    for (int k = 0; k < nstates; k++) free(states[k]);
    free(states);
    states = NULL;
    nstates = 0;
    shm_unlink(name);
    free(before);
    free(after);
}
END_TEST

/* ord_prefetch asks for every line of a node on a descent's path; a
 * static function with nothing but __builtin_prefetch in it is "const" to
 * GCC 12, which then deletes its calls (so no descent asked for anything,
 * 17-20 % of a range's time at 1M and 10M entries).  The object must hold
 * the prefetches of the descents (each of its seven call sites), of the
 * walk's entries (four) and of the insert's index slot: at least 12; the
 * build without always_inline had 5.  Two of the walk's (the next leaf's
 * entries, both lines) are prefetcht1: into L2, not L1, 5 to 11 % of a
 * range's time at 1M and 10M entries. */
START_TEST(descent_prefetches_compiled)
{
#if defined(__x86_64__)
    const char *libdir = getenv("ETSMGR_LIBDIR");
    ck_assert_msg(libdir != NULL, "ETSMGR_LIBDIR is not set (run through make check)");
    char *out = NULL;
    int st = rc_sh(&out, 60000,
                   "command -v objdump >/dev/null || { echo 'objdump (binutils) not found'; exit 1; }; "
                   "objdump -d '%s/libetsmgr.a' | awk '/^table_ordered.o:/ {f = 1; next} /file format/ {f = 0} "
                   "f && /prefetch/ {n++} f && /prefetcht1/ {m++} END {print n + 0, m + 0}'",
                   libdir);
    ck_assert_msg(rc_ok(st) && out, "objdump of %s/libetsmgr.a failed: %s", libdir, out ? out : "");
    char *end;
    long n = strtol(out, &end, 10), n1 = strtol(end, NULL, 10);
    ck_assert_msg(n >= 12, "table_ordered.o holds %ld prefetch instructions, at least 12 expected: the compiler "
                           "dropped the descents' prefetches (see ord_prefetch)", n);
    ck_assert_msg(n1 >= 2, "table_ordered.o holds %ld prefetcht1 instructions, 2 expected: a walk asks for the next "
                           "leaf's entries into the outer caches only (see ord_prefetch_ents)", n1);
    free(out);
#endif
}
END_TEST

Suite *ordered_suite(void)
{
    Suite *s = suite_create("ordered");
    TCase *tc = tcase_create("ordered");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, api);
    tcase_add_test(tc, shared_prefix);
    tcase_add_test(tc, short_separators);
    tcase_add_test(tc, descent_prefetches_compiled);
    tcase_add_loop_test(tc, crash_points, 0, (int)(sizeof oscens / sizeof oscens[0]));
    suite_add_tcase(s, tc);
    /* a case of its own, so that make crash runs it alone, longer */
    TCase *model_tc = tcase_create("model");
    tcase_add_checked_fixture(model_tc, NULL, teardown);
    tcase_set_timeout(model_tc, 600);
    tcase_add_loop_test(model_tc, model_based, 0, 2);
    suite_add_tcase(s, model_tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_ordered_review.c: an adversarial review of the ordered_set B+tree
 * (table_ordered.c), from outside its own tests.
 *
 * - hostile_*: a table whose tree was scribbled on (a child pointing at
 *   its own node, a root claiming a depth or a slot count no tree can
 *   have, a leaf's prev link to itself) gives errors from verify, and
 *   every reader finishes: a walk never calls back more often than there
 *   are entries, nor out of order, and next() never answers with a key
 *   that is not greater than the one asked about (a caller looping on
 *   next would otherwise loop for ever).  The node layout is written here
 *   by hand (header, next, prev, then the slots: a leaf's words, an inner
 *   node's prefixes, children, separators), as table_ordered.c has it.
 * - group_abort_after_splits / group_empty_and_refill: a group that
 *   splits and lends (small nodes), empties leaves (merges), replaces
 *   values by others of another size and type, or empties the whole tree;
 *   aborted, it leaves the table exactly as before (same root, ord_seq
 *   even: the readers not held up); committed, the table is what the
 *   group saw inside it, and verifies; killed at any numbered step, it is
 *   wholly there or wholly gone after recovery (group_crash_points).
 * - hostile_lend_parent_count: a scribbler changes the parent's slot count
 *   between an insert's descent and its lend to a neighbour: ECORRUPT,
 *   never separator 24 of 24.
 * - walk_across_splits: a forked writer inserts keys between the keys of
 *   a fixed set and deletes them again (small nodes: splits, lends,
 *   merges, root growth and shrink all the time) while this process walks:
 *   every fixed key is seen exactly once per walk, all keys in increasing
 *   order. */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "table.h"
#include "table_int.h"
#include "test_table_util.h"

static void teardown(void)
{
    tbl_ord_fill = 0;
    tt_cleanup();
}

static etsmgr_table *rv_create(const char **name)
{
    const char *n = tt_name();
    if (name) *name = n;
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    int r = tbl_create(n, "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    return t;
}

static void put(etsmgr_table *t, const char *k, int64_t v)
{
    etsmgr_value x = tt_int(v);
    int r = etsmgr_table_insert(t, k, strlen(k), &x);
    ck_assert_msg(r == 0, "insert %s: %s", k, etsmgr_strerror(r));
}

/* ------------------------------------------------------------ node words */

#define N_HDR 0u
#define N_NEXT 8u
#define N_PREV 16u
#define N_SLOTS 24u                /* leaf slots; an inner node's prefixes */
#define N_PTR (24u + 4u * 24u)     /* an inner node's children */
static uint64_t *word(etsmgr_table *t, uint64_t off) { return (uint64_t *)(void *)(t->base + off); }
static unsigned n_level(etsmgr_table *t, uint64_t off) { return (unsigned)((*word(t, off + N_HDR) >> 16) & 0xffffu); }
static uint64_t leftmost_leaf(etsmgr_table *t)
{
    uint64_t x = t->h->ord_head;
    while (n_level(t, x)) x = *word(t, x + N_PTR);
    return x;
}

static uint64_t last_leaf(etsmgr_table *t)
{
    uint64_t x = leftmost_leaf(t);
    while (*word(t, x + N_NEXT)) x = *word(t, x + N_NEXT);
    return x;
}

/* ------------------------------------------------------------ hostile */

struct hw {
    int calls;
    int bad;
    char last[32];
    size_t lastlen;
};

static int hw_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)v;
    struct hw *w = arg;
    if (klen >= sizeof w->last) return 9;
    if (w->calls) {
        size_t m = klen < w->lastlen ? klen : w->lastlen;
        int c = memcmp(w->last, key, m);
        if (c > 0 || (c == 0 && w->lastlen >= klen)) w->bad++;
    }
    memcpy(w->last, key, klen);
    w->lastlen = klen;
    return ++w->calls >= 10000 ? 9 : 0; /* an endless walk: stop it here */
}

static void fill_keys(etsmgr_table *t, int n)
{
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        put(t, k, i);
    }
}

/* Every reader on the scribbled table t of n entries finishes, in order,
 * each key at most once; verify says corrupt. */
static void readers_survive(etsmgr_table *t, int n, const char *what)
{
    char why[256] = "";
    int r = etsmgr_table_verify(t, why, sizeof why);
    ck_assert_msg(r == ETSMGR_ECORRUPT, "%s: verify gave %s (%s), not ECORRUPT", what, etsmgr_strerror(r), why);
    /* a caller walking with next() must reach the end */
    char k[64];
    size_t kl = 0;
    r = etsmgr_table_first(t, k, sizeof k, &kl);
    int steps = 0;
    while (r == 0 && steps <= n) {
        char nk[64];
        size_t nl = 0;
        r = etsmgr_table_next(t, k, kl, nk, sizeof nk, &nl);
        if (r) break;
        size_t m = kl < nl ? kl : nl;
        int c = memcmp(k, nk, m);
        ck_assert_msg(c < 0 || (c == 0 && kl < nl), "%s: next(%.*s) answered %.*s, not a greater key", what,
                      (int)kl, k, (int)nl, nk);
        memcpy(k, nk, nl);
        kl = nl;
        steps++;
    }
    ck_assert_msg(steps <= n, "%s: next() walked %d steps for %d entries", what, steps, n);
    ck_assert_msg(r == ETSMGR_ENOTFOUND || r == ETSMGR_ECORRUPT, "%s: next walk ended with %s", what,
                  etsmgr_strerror(r));
    struct hw w = {0};
    r = etsmgr_table_foreach(t, hw_cb, &w);
    ck_assert_msg(w.calls <= n, "%s: foreach called back %d times for %d entries (rc %s)", what, w.calls, n,
                  etsmgr_strerror(r));
    ck_assert_msg(w.bad == 0, "%s: foreach gave %d keys out of order", what, w.bad);
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT, "%s: foreach: %s", what, etsmgr_strerror(r));
    /* the other ends and lookups finish too */
    r = etsmgr_table_last(t, k, sizeof k, &kl);
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT || r == ETSMGR_ENOTFOUND, "%s: last: %s", what, etsmgr_strerror(r));
    r = etsmgr_table_prev(t, "k0002", 5, k, sizeof k, &kl);
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT || r == ETSMGR_ENOTFOUND, "%s: prev: %s", what, etsmgr_strerror(r));
    struct hw w2 = {0};
    r = etsmgr_table_foreach_range(t, "k0001", 5, "k9", 2, hw_cb, &w2);
    ck_assert_msg(w2.calls <= n, "%s: range called back %d times for %d entries", what, w2.calls, n);
    /* a writer refuses, or works; it does not fault or loop */
    etsmgr_value v = tt_int(1);
    r = etsmgr_table_insert(t, "k0001x", 6, &v);
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT, "%s: insert: %s", what, etsmgr_strerror(r));
}

/* one leaf (the root) whose next link is itself */
START_TEST(hostile_leaf_self_link)
{
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 3);
    uint64_t root = t->h->ord_head;
    ck_assert_uint_eq(n_level(t, root), 0);
    *word(t, root + N_NEXT) = root;
    readers_survive(t, 3, "leaf linked to itself");
    etsmgr_table_close(t);
}
END_TEST

/* several leaves: the last one's next link goes back to the first */
START_TEST(hostile_leaf_cycle)
{
    tbl_ord_fill = 3;
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 12);
    ck_assert_uint_ge(n_level(t, t->h->ord_head), 1);
    uint64_t first = leftmost_leaf(t), last = last_leaf(t);
    ck_assert_uint_ne(first, last);
    *word(t, last + N_NEXT) = first;
    readers_survive(t, 12, "last leaf linked to the first");
    etsmgr_table_close(t);
}
END_TEST

/* an inner node whose first child is itself */
START_TEST(hostile_child_self)
{
    tbl_ord_fill = 3;
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 12);
    uint64_t root = t->h->ord_head;
    ck_assert_uint_ge(n_level(t, root), 1);
    *word(t, root + N_PTR) = root;
    readers_survive(t, 12, "child pointer to its own node");
    etsmgr_table_close(t);
}
END_TEST

/* a root that says it is level 39 (of slots no tree of any size needs) */
START_TEST(hostile_depth)
{
    tbl_ord_fill = 3;
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 12);
    uint64_t root = t->h->ord_head;
    uint64_t *h = word(t, root + N_HDR);
    *h = (*h & ~(0xffffull << 16)) | 39ull << 16;
    readers_survive(t, 12, "root of level 39");
    /* and an absurd slot count */
    *h = (*h & ~(0xffffull << 16)) | (uint64_t)1 << 16;
    *h = (*h & ~0xffffull) | 0xffffu;
    readers_survive(t, 12, "root of 65535 slots");
    etsmgr_table_close(t);
}
END_TEST

/* next and first answer from the entry they need and read no further: a
 * damaged entry after the answer (its key length scribbled to 0) is not
 * theirs to meet.  (next("a") read "c" too and failed with ECORRUPT.) */
START_TEST(hostile_entry_after_answer)
{
    etsmgr_table *t = rv_create(NULL);
    put(t, "a", 0);
    put(t, "b", 1);
    put(t, "c", 2);
    uint64_t pos;
    struct tbl_ent *e;
    ck_assert_int_eq(tbl_find(t, "c", 1, tbl_hash(t->hseed, "c", 1), &pos, &e), 1);
    uint64_t *w = (uint64_t *)e, save = *w;
    *w = save & ~0xffull; /* klen 0 */
    char k[8];
    size_t kl = 0;
    ck_assert_int_eq(etsmgr_table_next(t, "a", 1, k, sizeof k, &kl), 0);
    ck_assert(kl == 1 && k[0] == 'b');
    ck_assert_int_eq(etsmgr_table_first(t, k, sizeof k, &kl), 0);
    ck_assert(kl == 1 && k[0] == 'a');
    ck_assert_int_eq(etsmgr_table_next(t, "b", 1, k, sizeof k, &kl), ETSMGR_ECORRUPT); /* this one meets it */
    *w = save;
    char why[256] = "";
    ck_assert_int_eq(etsmgr_table_verify(t, why, sizeof why), 0);
    etsmgr_table_close(t);
}
END_TEST

/* a leaf's prev link pointing at itself: last/prev walk backwards */
START_TEST(hostile_prev_self)
{
    tbl_ord_fill = 3;
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 12);
    uint64_t first = leftmost_leaf(t), second = *word(t, first + N_NEXT);
    ck_assert_uint_ne(second, 0);
    *word(t, second + N_PREV) = second;
    char why[256] = "";
    ck_assert_int_eq(etsmgr_table_verify(t, why, sizeof why), ETSMGR_ECORRUPT);
    /* prev of the second leaf's first key walks back through the bad link */
    char k[16];
    size_t kl = 0;
    int r = etsmgr_table_prev(t, "k0002", 5, k, sizeof k, &kl);
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT || r == ETSMGR_ENOTFOUND, "prev: %s", etsmgr_strerror(r));
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ groups */

struct dump {
    char *s;
    size_t len, cap;
};

static int dump_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct dump *d = arg;
    char line[600];
    int n;
    if (v->type == ETSMGR_INT)
        n = snprintf(line, sizeof line, "%.*s=i%lld\n", (int)klen, (const char *)key, (long long)v->i);
    else
        n = snprintf(line, sizeof line, "%.*s=b%zu:%.*s\n", (int)klen, (const char *)key, v->len,
                     (int)(v->len < 200 ? v->len : 200), (const char *)v->data);
    if (d->len + (size_t)n + 1 > d->cap) {
        d->cap = (d->cap + (size_t)n + 1) * 2;
        d->s = realloc(d->s, d->cap);
        ck_assert_ptr_nonnull(d->s);
    }
    memcpy(d->s + d->len, line, (size_t)n + 1);
    d->len += (size_t)n;
    return 0;
}

static char *dump(etsmgr_table *t)
{
    struct dump d = {0};
    ck_assert_int_eq(etsmgr_table_foreach(t, dump_cb, &d), 0);
    if (!d.s) d.s = calloc(1, 1);
    return d.s;
}

static void verify_ok(etsmgr_table *t, const char *what)
{
    char why[256] = "";
    int r = etsmgr_table_verify(t, why, sizeof why);
    ck_assert_msg(r == 0, "%s: verify: %s: %s", what, etsmgr_strerror(r), why);
}

/* a group of 16 changes that split (leaves and inner nodes, the root
 * grows), empty leaves, and replace values by others of another size */
static int big_group_rc(etsmgr_table *t)
{
    char big[300];
    memset(big, 'v', sizeof big);
    int r;
    for (int i = 0; i < 8; i++) { /* between existing keys: splits, lends */
        char k[16];
        snprintf(k, sizeof k, "k%04d5", i * 3);
        etsmgr_value v = tt_bytes(big, 40 + (size_t)i * 30);
        if ((r = etsmgr_table_insert(t, k, strlen(k), &v)) != 0) return r;
    }
    for (int i = 20; i < 24; i++) { /* a run of deletes: leaves empty, nodes go */
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        if ((r = etsmgr_table_delete(t, k, strlen(k))) != 0) return r;
    }
    etsmgr_value b = tt_bytes(big, sizeof big); /* int -> bytes */
    if ((r = etsmgr_table_insert(t, "k0001", 5, &b)) != 0) return r;
    etsmgr_value i = tt_int(-7); /* bytes -> int, then bytes of another size */
    if ((r = etsmgr_table_insert(t, "k00005", 6, &i)) != 0) return r;
    etsmgr_value s = tt_bytes("x", 1);
    if ((r = etsmgr_table_insert(t, "k00035", 6, &s)) != 0) return r;
    int64_t nv = 0;
    if ((r = etsmgr_table_update_counter(t, "k0002", 5, 5, 0, &nv)) != 0) return r;
    return nv == 7 ? 0 : ETSMGR_ECORRUPT;
}

static void big_group(etsmgr_table *t)
{
    int r = big_group_rc(t);
    ck_assert_msg(r == 0, "the group: %s", etsmgr_strerror(r));
}

START_TEST(group_abort_after_splits)
{
    tbl_ord_fill = 3;
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 30);
    char *before = dump(t);
    uint64_t root = t->h->ord_head;
    unsigned height = n_level(t, root);
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    big_group(t);
    char *inside = dump(t); /* a walk inside the group sees the group's state */
    ck_assert_str_ne(inside, before);
    ck_assert_int_eq(etsmgr_table_abort(t), 0);
    /* the readers are not held up and see the old table */
    char *after = dump(t);
    ck_assert_str_eq(after, before);
    ck_assert_uint_eq(t->h->ord_head, root);
    ck_assert_uint_eq(n_level(t, root), height);
    ck_assert_uint_eq(t->h->ord_seq & 1u, 0);
    verify_ok(t, "after abort");
    /* the same group again, committed: the same state as inside the first */
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    big_group(t);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    char *committed = dump(t);
    ck_assert_str_eq(committed, inside);
    verify_ok(t, "after commit");
    free(before), free(inside), free(after), free(committed);
    etsmgr_table_close(t);
}
END_TEST

/* The same group killed at every numbered step (tbl_crashpoint): after
 * the next locker's recovery the table is exactly the state before or
 * after the whole group, verifies, and every key is found once. */
static long cp_target, cp_calls;
static void cp_hook(const char *op, int step)
{
    (void)op, (void)step;
    if (cp_calls++ == cp_target) _exit(77);
}

static etsmgr_table *crash_table(const char *name)
{
    shm_unlink(name);
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    int r = tbl_create(name, "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    fill_keys(t, 30);
    return t;
}

START_TEST(group_crash_points)
{
    tbl_ord_fill = 3;
    const char *name = tt_name();
    etsmgr_table *t = crash_table(name);
    char *before = dump(t);
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    big_group(t);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    char *after = dump(t);
    etsmgr_table_close(t);
    long step, mid = 0;
    for (step = 0;; step++) {
        ck_assert_msg(step < 100000, "no end of crash points");
        t = crash_table(name);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            cp_target = step;
            cp_calls = 0;
            tbl_crashpoint = cp_hook;
            int r = etsmgr_table_begin(t);
            if (!r) r = big_group_rc(t);
            if (!r) r = etsmgr_table_commit(t);
            _exit(r == 0 ? 0 : 10);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 77), "step %ld: child failed (%d)",
                      step, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        bool done = WEXITSTATUS(st) == 0;
        /* the first use takes the lock and rolls back (or finds it whole) */
        verify_ok(t, "after the kill");
        char *now = dump(t);
        ck_assert_msg(strcmp(now, after) == 0 || (!done && strcmp(now, before) == 0),
                      "step %ld: neither the state before nor after the group", step);
        mid += strcmp(now, before) == 0;
        /* every key of the walk is found by a lookup and by next from its predecessor */
        struct hw w = {0};
        ck_assert_int_eq(etsmgr_table_foreach(t, hw_cb, &w), 0);
        ck_assert_int_eq(w.bad, 0);
        etsmgr_table_info info;
        ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
        ck_assert_int_eq((int)info.entries, w.calls);
        free(now);
        ck_assert_int_eq(etsmgr_table_update_counter(t, "zz", 2, 1, 0, NULL), 0);
        verify_ok(t, "a change after the recovery");
        etsmgr_table_close(t);
        if (done) break;
    }
    ck_assert_int_gt(step, 100); /* the group is long: splits, lends, removals */
    ck_assert_int_ge(mid, step - 3); /* killed before its commit point: rolled back */
    shm_unlink(name);
    free(before), free(after);
}
END_TEST

/* groups that empty the whole tree and fill it again, aborted and committed */
START_TEST(group_empty_and_refill)
{
    tbl_ord_fill = 3;
    etsmgr_table *t = rv_create(NULL);
    fill_keys(t, 16);
    char *before = dump(t);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(etsmgr_table_begin(t), 0);
        for (int i = 0; i < 16; i++) {
            char k[16];
            snprintf(k, sizeof k, "k%04d", i);
            ck_assert_int_eq(etsmgr_table_delete(t, k, strlen(k)), 0);
        }
        char k[16];
        ck_assert_int_eq(etsmgr_table_first(t, k, sizeof k, NULL), ETSMGR_ENOTFOUND);
        if (round == 0) {
            ck_assert_int_eq(etsmgr_table_abort(t), 0);
            char *after = dump(t);
            ck_assert_str_eq(after, before);
            free(after);
            verify_ok(t, "after the emptying group's abort");
        } else {
            ck_assert_int_eq(etsmgr_table_commit(t), 0);
            verify_ok(t, "empty");
        }
    }
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    fill_keys(t, 16);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    char *again = dump(t);
    ck_assert_str_eq(again, before);
    verify_ok(t, "refilled");
    free(before), free(again);
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ walks */

#define WA_FIXED 400 /* the fixed keys: "w%05d" of even numbers */

struct wa {
    int seen[WA_FIXED];
    int calls, bad;
    char last[32];
    size_t lastlen;
};

static int wa_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct wa *w = arg;
    ck_assert_uint_lt(klen, sizeof w->last);
    if (w->calls) {
        size_t m = klen < w->lastlen ? klen : w->lastlen;
        int c = memcmp(w->last, key, m);
        if (c > 0 || (c == 0 && w->lastlen >= klen)) w->bad++;
    }
    memcpy(w->last, key, klen);
    w->lastlen = klen;
    w->calls++;
    char buf[32];
    memcpy(buf, key, klen);
    buf[klen] = 0;
    int num = atoi(buf + 1);
    if (num % 2 == 0) {
        ck_assert_int_lt(num / 2, WA_FIXED);
        w->seen[num / 2]++;
        if (v->type != ETSMGR_INT || v->i != num) w->bad++;
    }
    return 0;
}

START_TEST(walk_across_splits)
{
    tbl_ord_fill = 3;
    const char *name;
    etsmgr_table *t = rv_create(&name);
    for (int i = 0; i < WA_FIXED; i++) {
        char k[16];
        snprintf(k, sizeof k, "w%05d", 2 * i);
        put(t, k, 2 * i);
    }
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) { /* the writer: odd keys in and out, in varying orders */
        etsmgr_table *w = NULL;
        if (tbl_open(name, &w) != 0) _exit(3);
        close(ready[0]);
        if (write(ready[1], "r", 1) != 1) _exit(4);
        close(ready[1]);
        for (unsigned round = 0;; round++) {
            unsigned stride = 1 + round % 7;
            for (unsigned s = 0; s < stride; s++)
                for (unsigned i = s; i < WA_FIXED; i += stride) {
                    char k[16];
                    unsigned j = round & 1 ? WA_FIXED - 1 - i : i;
                    snprintf(k, sizeof k, "w%05u", 2 * j + 1);
                    etsmgr_value v = tt_int(2 * j + 1);
                    if (etsmgr_table_insert(w, k, strlen(k), &v) != 0) _exit(5);
                }
            for (unsigned i = 0; i < WA_FIXED; i++) {
                char k[16];
                snprintf(k, sizeof k, "w%05u", 2 * ((i * 7919u) % WA_FIXED) + 1);
                if (etsmgr_table_delete(w, k, strlen(k)) != 0) _exit(6);
            }
        }
    }
    close(ready[1]);
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    struct wa *w = malloc(sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (int walk = 0; walk < 300; walk++) {
        memset(w, 0, sizeof *w);
        int r = walk % 3 == 2 ? etsmgr_table_foreach_range(t, "w00100", 6, "w00700", 6, wa_cb, w)
                              : etsmgr_table_foreach(t, wa_cb, w);
        ck_assert_msg(r == 0, "walk %d: %s", walk, etsmgr_strerror(r));
        ck_assert_msg(w->bad == 0, "walk %d: %d keys out of order or wrong values", walk, w->bad);
        for (int i = 0; i < WA_FIXED; i++) {
            int want = walk % 3 == 2 ? (2 * i >= 100 && 2 * i < 700) : 1;
            ck_assert_msg(w->seen[i] == want, "walk %d: w%05d seen %d times, not %d", walk, 2 * i, w->seen[i],
                          want);
        }
        /* next/prev of a fixed key against the writer */
        char k[16], out[16];
        int j = (walk * 37) % (WA_FIXED - 1);
        snprintf(k, sizeof k, "w%05d", 2 * j);
        size_t ol = 0;
        ck_assert_int_eq(etsmgr_table_next(t, k, strlen(k), out, sizeof out, &ol), 0);
        out[ol] = 0;
        int nx = atoi(out + 1);
        ck_assert_msg(nx == 2 * j + 1 || nx == 2 * j + 2, "next(%s) = %s", k, out);
        if (j > 0) {
            ck_assert_int_eq(etsmgr_table_prev(t, k, strlen(k), out, sizeof out, &ol), 0);
            out[ol] = 0;
            int pv = atoi(out + 1);
            ck_assert_msg(pv == 2 * j - 1 || pv == 2 * j - 2, "prev(%s) = %s", k, out);
        }
    }
    free(w);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFSIGNALED(st), "the writer stopped by itself: exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* the writer died anywhere: the next locker rolls back, the tree holds */
    etsmgr_value v = tt_int(1);
    ck_assert_int_eq(etsmgr_table_insert(t, "w99999", 6, &v), 0);
    verify_ok(t, "after the writer's kill");
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ full */

/* A table at its max_bytes: an insert fails with EFULL at whichever
 * allocation runs out, the entry's or, after the tree began to change, a
 * split's (a node, a separator, a new root: counted as mid, at least one);
 * every failure, alone or inside a group that goes on and commits, leaves
 * the tree whole and the table as it was (model: the keys that went in). */
START_TEST(full_mid_split)
{
    tbl_ord_fill = 3;
    const char *n = tt_name();
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET, .max_bytes = 256 * 1024};
    etsmgr_table *t = NULL;
    int r = tbl_create(n, "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    enum { NK = 20000 };
    static unsigned char in[NK];
    memset(in, 0, sizeof in);
    int fulls = 0, fulls_group = 0, mid = 0;
    char big[200];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < NK && fulls < 200; i++) {
        unsigned j = (unsigned)i * 7919u % NK;
        char k[16];
        snprintf(k, sizeof k, "f%05u", j);
        etsmgr_value v = i % 5 ? tt_int(j) : tt_bytes(big, 1 + j % sizeof big);
        bool group = i % 4 == 0;
        if (group) ck_assert_int_eq(etsmgr_table_begin(t), 0);
        uint64_t seq0 = t->h->ord_seq;
        r = etsmgr_table_insert(t, k, strlen(k), &v);
        /* outside a group, ord_seq moved: the tree had begun to change */
        if (r == ETSMGR_EFULL && !group && t->h->ord_seq != seq0) mid++;
        ck_assert_msg(r == 0 || r == ETSMGR_EFULL, "insert %s: %s", k, etsmgr_strerror(r));
        if (r == 0) in[j] = 1;
        if (group) {
            /* the group goes on after its failed change, and commits */
            if (j % 3 == 0 && in[(j + 1) % NK]) {
                char d[16];
                snprintf(d, sizeof d, "f%05u", (j + 1) % NK);
                ck_assert_int_eq(etsmgr_table_delete(t, d, strlen(d)), 0);
                in[(j + 1) % NK] = 0;
            }
            ck_assert_int_eq(etsmgr_table_commit(t), 0);
        }
        if (r == ETSMGR_EFULL) {
            fulls++;
            fulls_group += group;
            if (fulls % 20 == 1) {
                verify_ok(t, "after EFULL");
                int64_t got = 0;
                for (unsigned x = 0; x < NK; x++) {
                    if (!in[x]) continue;
                    char q[16];
                    snprintf(q, sizeof q, "f%05u", x);
                    etsmgr_value lv;
                    char lb[sizeof big];
                    int lr = etsmgr_table_lookup(t, q, strlen(q), &lv, lb, sizeof lb);
                    ck_assert_msg(lr == 0, "%s lost: %s", q, etsmgr_strerror(lr));
                    got++;
                }
                etsmgr_table_info info;
                ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
                ck_assert_int_eq((int64_t)info.entries, got);
            }
            /* make a little room: later inserts fail at other points */
            if (fulls % 3 == 0)
                for (unsigned x = j % 97; x < NK; x += 97)
                    if (in[x]) {
                        char d[16];
                        snprintf(d, sizeof d, "f%05u", x);
                        ck_assert_int_eq(etsmgr_table_delete(t, d, strlen(d)), 0);
                        in[x] = 0;
                        break;
                    }
        }
    }
    ck_assert_int_ge(fulls, 20);
    ck_assert_int_ge(fulls_group, 1);
    ck_assert_msg(mid >= 1, "no EFULL came after the tree began to change (%d EFULL)", fulls);
    verify_ok(t, "at the end");
    struct hw w = {0};
    ck_assert_int_eq(etsmgr_table_foreach(t, hw_cb, &w), 0);
    ck_assert_int_eq(w.bad, 0);
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ words changed under a writer */

/* A scribbler (it need not take the lock) changes a node between the
 * writer's descent, which checked it, and the change's use of it: here the
 * root's slot count, checked at 24 on the way down, says 25 by the time a
 * full last leaf looks for a neighbour to lend to, and the word after its
 * 24 children (its separator 0, where a 25th child would be) names a leaf
 * with room.  The insert refuses (ECORRUPT) rather than take separator 24
 * of its 24-slot copy of the root: off the copy (a stack overflow under
 * ASan) and, written back, a word past the root's block. */
static etsmgr_table *sc_t;
static void sc_root_count_25(const char *op, int step)
{
    (void)op;
    if (step != 0) return;
    uint64_t root = sc_t->h->ord_head;
    *word(sc_t, root + N_HDR) = (*word(sc_t, root + N_HDR) & ~0xffffull) | 25u;
    *word(sc_t, root + N_PTR + 8u * 24u) = *word(sc_t, root + N_PTR); /* "child 24": the first leaf */
}
START_TEST(hostile_lend_parent_count)
{
    etsmgr_table *t = rv_create(NULL);
    /* 24 full leaves under the root: ascending keys fill each before the next */
    for (int i = 0; i < 24 * 24; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%06d", 2 * i);
        put(t, k, i);
    }
    uint64_t root = t->h->ord_head, h0 = *word(t, root + N_HDR);
    ck_assert_uint_eq(h0 & 0xffffffffu, 1u << 16 | 24u); /* level 1, 24 children */
    for (int i = 0; i < 12; i++) { /* room in the first leaf */
        char k[16];
        snprintf(k, sizeof k, "k%06d", 2 * i);
        ck_assert_int_eq(etsmgr_table_delete(t, k, strlen(k)), 0);
    }
    ck_assert_uint_eq(t->h->ord_head, root);
    uint64_t sep0 = *word(t, root + N_PTR + 8u * 24u);
    sc_t = t;
    tbl_crashpoint = sc_root_count_25;
    etsmgr_value v = tt_int(-1);
    int r = etsmgr_table_insert(t, "k001105", 7, &v); /* into the middle of the last leaf, full */
    tbl_crashpoint = NULL;
    ck_assert_msg(r == ETSMGR_ECORRUPT, "insert: %s", etsmgr_strerror(r));
    /* the scribbler's words put back: the failed insert left nothing */
    *word(t, root + N_HDR) = h0;
    *word(t, root + N_PTR + 8u * 24u) = sep0;
    verify_ok(t, "after the refused insert");
    ck_assert_int_eq(etsmgr_table_insert(t, "k001105", 7, &v), 0);
    verify_ok(t, "after the insert");
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ old layouts */

/* A table of an older build's ordered layout (5, 7: a skiplist) is refused
 * with words that say what to do (save with the old build, load with
 * this one), naming commands that exist. */
START_TEST(old_layouts_refused)
{
    static const uint64_t vers[] = {5, 7};
    for (int i = 0; i < 2; i++) {
        const char *n;
        etsmgr_table *t = rv_create(&n);
        fill_keys(t, 3);
        t->h->version = vers[i];
        etsmgr_table_close(t);
        etsmgr_table *o = NULL;
        int r = tbl_open(n, &o);
        ck_assert_msg(r == ETSMGR_EVERSION, "version %llu: %s", (unsigned long long)vers[i], etsmgr_strerror(r));
        const char *why = tbl_last_why();
        ck_assert_msg(strstr(why, "etsmgrctl save") && strstr(why, "etsmgrctl load") && strstr(why, "older build"),
                      "version %llu: %s", (unsigned long long)vers[i], why);
    }
}
END_TEST

Suite *ordered_review_suite(void)
{
    Suite *s = suite_create("ordered_review");
    TCase *tc = tcase_create("ordered_review");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, hostile_leaf_self_link);
    tcase_add_test(tc, hostile_leaf_cycle);
    tcase_add_test(tc, hostile_child_self);
    tcase_add_test(tc, hostile_depth);
    tcase_add_test(tc, hostile_prev_self);
    tcase_add_test(tc, hostile_entry_after_answer);
    tcase_add_test(tc, group_abort_after_splits);
    tcase_add_test(tc, group_empty_and_refill);
    tcase_add_test(tc, group_crash_points);
    tcase_add_test(tc, walk_across_splits);
    tcase_add_test(tc, full_mid_split);
    tcase_add_test(tc, old_layouts_refused);
    tcase_add_test(tc, hostile_lend_parent_count);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_ordered_walk.c: lock-free walks of an ordered table against writers
 * that only change integer values in place (table_ordered.c, "Readers").
 *
 * - counters_leave_ord_seq: update_counter and an integer written over an
 *   integer, alone (one store) or in a group (logged, under the key's
 *   stripe), never move ord_seq, the word every ordered reader validates
 *   its batches against (when they moved it, a writer updating counters in
 *   a loop kept every walk starting over); an insert of a new key, a
 *   delete and a value replaced by a new block do move it.  This is the test that
 *   fails when counters move ord_seq: a walk against a counter writer
 *   (next test) starves only while both run at once on two free cores, and
 *   on a loaded machine the writer's time slices end often enough to let
 *   walks through.
 * - walk_against_counter_writer: a process runs update_counter on one key
 *   of a 20,000-entry table in a loop; walks in another process each see
 *   every key once, in order, the hot value never going back, and finish
 *   within a generous bound (the values' stripe checks under a writer).
 * - walk_after_dead_counter_writer: a writer dies in a group right after
 *   writing a counter in place, before its commit; a walk then reports the old value
 *   (the value's stripe is checked and the dead change rolled back), never
 *   the uncommitted one (fails when a walk trusts ord_seq alone for
 *   integer values).
 * - walk_changes_between_batches: a walk whose callback inserts and
 *   deletes keys ahead of it (the tree changes between batches, leaves
 *   ahead empty and go, their blocks are reused by splits), on leaves of 3
 *   slots and of 24: keys come strictly increasing and every key present
 *   throughout is seen once.  A batch ends with its leaf and the next one
 *   starts at the leaf after without a descent only while ord_seq is
 *   unchanged: this fails when the next batch starts there regardless.
 * - walk_node_header_loaded_once, compare_entry_header_loaded_once: a
 *   node's header, an entry's, changes between a reader's loads of it (a
 *   watch on the word makes it certain); the reader goes by the word it
 *   checked, and so never reads past the block (they fail, a SIGSEGV,
 *   when the slot count or the key length is loaded again).
 * - update_entry_header_loaded_once, update_once_entry_header_loaded_once:
 *   the same for update_counter's entry and the exactly-once count's (a
 *   writer, under the lock): it goes by the header tbl_find checked.
 * - verify_once_head_loaded_once, verify_entry_header_loaded_once: the
 *   same for verify's walk of the request-id ring (it ends at the head it
 *   checked) and of the entries (it hashes the key length it checked).
 * - save_entry_header_loaded_once: the same for a save's last copy under
 *   the lock (table_image.c, img_fixup): it copies the entry by the
 *   header it checked (a second load sized the copy: a key length of 255
 *   read past the block, and a value length of a BYTES entry could make it
 *   copy gigabytes past the image's buffer: etsmgrd saves tables, so a
 *   process writing the object crashed the daemon).
 * - insert_node_header_changing, insert_node_level_changing: the same for
 *   an insert into a full leaf (a writer, under the lock, that a scribbler
 *   need not take): it ends (done or ECORRUPT) and never copies 65536
 *   slots into its arrays, nor an inner node's size from a leaf. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>

#include "table_image.h"
#include "table_int.h"
#include "test_flip_watch.h"
#include "test_table_util.h"

static void teardown(void) { tt_cleanup(); }

static etsmgr_table *ow_create(int nkeys)
{
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    const char *n = tt_name();
    int r = tbl_create(n, "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    for (int i = 0; i < nkeys; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "k%06d", i);
        etsmgr_value v = tt_int(i);
        ck_assert_int_eq(etsmgr_table_insert(t, k, (size_t)kl, &v), 0);
    }
    return t;
}

static uint64_t ord_seq(etsmgr_table *t) { return __atomic_load_n(&t->h->ord_seq, __ATOMIC_ACQUIRE); }

START_TEST(counters_leave_ord_seq)
{
    etsmgr_table *t = ow_create(100);
    uint64_t s0 = ord_seq(t);
    int64_t nv;
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(etsmgr_table_update_counter(t, "k000042", 7, 1, 0, &nv), 0);
    ck_assert_int_eq(nv, 42 + 1000);
    etsmgr_value v = tt_int(-5);
    ck_assert_int_eq(etsmgr_table_insert(t, "k000007", 7, &v), 0); /* integer over integer: in place */
    for (int i = 0; i < 100; i++) { /* in groups: logged, the keys' stripes odd until the commit */
        ck_assert_int_eq(etsmgr_table_begin(t), 0);
        ck_assert_int_eq(etsmgr_table_update_counter(t, "k000042", 7, 1, 0, &nv), 0);
        ck_assert_int_eq(etsmgr_table_update_counter(t, "k000043", 7, 1, 0, &nv), 0);
        ck_assert_int_eq(etsmgr_table_insert(t, "k000007", 7, &v), 0);
        ck_assert_int_eq(etsmgr_table_commit(t), 0);
    }
    ck_assert_int_eq(nv, 43 + 100);
    ck_assert_uint_eq(ord_seq(t), s0);
    /* changes of the skiplist do move it */
    ck_assert_int_eq(etsmgr_table_update_counter(t, "new", 3, 1, 0, &nv), 0);
    ck_assert_uint_eq(ord_seq(t), s0 + 2);
    ck_assert_int_eq(etsmgr_table_delete(t, "new", 3), 0);
    ck_assert_uint_eq(ord_seq(t), s0 + 4);
    etsmgr_value b = tt_bytes("xyz", 3);
    ck_assert_int_eq(etsmgr_table_insert(t, "k000008", 7, &b), 0); /* a new block takes its place */
    ck_assert_uint_eq(ord_seq(t), s0 + 6);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

#define NWALK 20000
#define HOT "k010000"

struct walk_state {
    int n;
    int64_t hot;
    char last[16];
    size_t lastlen;
    int bad;
};

static int walk_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct walk_state *w = arg;
    if (klen >= sizeof w->last || v->type != ETSMGR_INT) {
        w->bad = 1;
        return 1;
    }
    if (w->n && (klen != w->lastlen || memcmp(key, w->last, klen) <= 0)) w->bad = 2; /* not increasing */
    memcpy(w->last, key, klen);
    w->last[klen] = 0;
    w->lastlen = klen;
    if (klen == 7 && memcmp(key, HOT, 7) == 0) {
        if (v->i < w->hot) w->bad = 3; /* a counter went back */
        w->hot = v->i;
    } else if (v->i != atoi(w->last + 1)) {
        w->bad = 4;
    }
    w->n++;
    return 0;
}

struct shared {
    atomic_int writer_ready, stop;
    atomic_long writes;
};

START_TEST(walk_against_counter_writer)
{
    etsmgr_table *t = ow_create(NWALK);
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(sh, MAP_FAILED);
    pid_t writer = fork();
    ck_assert_int_ge(writer, 0);
    if (writer == 0) {
        int64_t nv;
        long n = 0;
        while (!atomic_load(&sh->stop)) {
            /* alone (one store) and in a group (under the key's stripe) */
            if (etsmgr_table_update_counter(t, HOT, 7, 1, 0, &nv) != 0) _exit(1);
            if (etsmgr_table_begin(t) || etsmgr_table_update_counter(t, HOT, 7, 1, 0, &nv) ||
                etsmgr_table_commit(t))
                _exit(2);
            atomic_store(&sh->writes, n += 2);
            atomic_store(&sh->writer_ready, 1);
        }
        _exit(0);
    }
    while (!atomic_load(&sh->writer_ready)) /* the writer's first update is its readiness */
        tbl_pause();
    long w0 = atomic_load(&sh->writes);
    pid_t walker = fork();
    ck_assert_int_ge(walker, 0);
    if (walker == 0) {
        struct walk_state w = {.hot = 0};
        /* at least 5 walks, and on until the writer has made 1,000 more
         * updates meanwhile (on a loaded machine it may get no CPU for a
         * while) */
        for (int round = 0; round < 5 || atomic_load(&sh->writes) < w0 + 1000; round++) {
            w.n = 0;
            int r = etsmgr_table_foreach(t, walk_cb, &w);
            if (r || w.bad || w.n != NWALK) _exit(10 + (r ? 1 : w.bad ? 1 + w.bad : 9));
        }
        _exit(0);
    }
    /* a walk of 20,000 entries takes milliseconds; one starved by the
     * writer never ends */
    int st = tu_wait(walker, 60000);
    long w1 = atomic_load(&sh->writes);
    atomic_store(&sh->stop, 1);
    int wst = tu_wait(writer, 10000);
    ck_assert_msg(st != -1, "the walks did not finish within 60 s against a counter writer");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "walker failed: status %d", st);
    ck_assert_msg(wst != -1 && WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "writer failed");
    ck_assert_msg(w1 >= w0 + 1000, "the writer made %ld updates while the walks ran", w1 - w0);
    tt_check(t);
    munmap(sh, sizeof *sh);
    etsmgr_table_close(t);
}
END_TEST

static void die_after_value_write(const char *op, int step)
{
    /* update_counter of an existing key in a group: step 0 before its one
     * logged write, step 1 after it (the value is new, nothing committed;
     * outside a group the store is its own commit point) */
    if (strcmp(op, "update_counter") == 0 && step == 1) _exit(77);
}

START_TEST(walk_after_dead_counter_writer)
{
    etsmgr_table *t = ow_create(200);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int64_t nv;
        if (etsmgr_table_begin(t) != 0) _exit(1);
        tbl_crashpoint = die_after_value_write;
        etsmgr_table_update_counter(t, "k000100", 7, 1000, 0, &nv);
        _exit(0); /* not reached */
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 77, "the writer did not die mid-change: %#x", st);
    /* the uncommitted value is in the table's memory, its stripe odd */
    struct walk_state w = {.hot = 0};
    ck_assert_int_eq(etsmgr_table_foreach(t, walk_cb, &w), 0);
    ck_assert_int_eq(w.bad, 0); /* k000100 reported as 100, not 1100 */
    ck_assert_int_eq(w.n, 200);
    etsmgr_value v;
    ck_assert_int_eq(etsmgr_table_lookup(t, "k000100", 7, &v, NULL, 0), 0);
    ck_assert_int_eq(v.i, 100);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

#define CB_KEYS 2000
struct cb_walk {
    etsmgr_table *t;
    long last;            /* the last key number seen; -1: none */
    bool gone[CB_KEYS + 8]; /* deleted by the callback */
    unsigned char seen[CB_KEYS + 8];
    int bad;
    char why[120];
};

static int changing_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct cb_walk *w = arg;
    (void)v;
    char k[16];
    long i = klen > 1 && klen < sizeof k ? strtol((const char *)key + 1, NULL, 10) : -1;
    if (i < 0 || i >= CB_KEYS || i <= w->last) {
        if (!w->bad++) snprintf(w->why, sizeof w->why, "key %.*s after k%06ld", (int)klen, (const char *)key, w->last);
        return 1;
    }
    w->last = i;
    w->seen[i]++;
    /* delete an even key ahead, insert the odd one right after this one
     * (not for a key deleted already: a batch copied before the delete
     * may still give it) */
    if (i % 2 == 0 && !w->gone[i]) {
        int kl = snprintf(k, sizeof k, "k%06ld", i + 6);
        int r = etsmgr_table_delete(w->t, k, (size_t)kl);
        if (r == 0) w->gone[i + 6] = true;
        kl = snprintf(k, sizeof k, "k%06ld", i + 1);
        etsmgr_value nv = tt_int(i + 1);
        if (etsmgr_table_insert(w->t, k, (size_t)kl, &nv) != 0 && !w->bad++) snprintf(w->why, sizeof w->why, "insert");
    }
    return 0;
}

START_TEST(walk_changes_between_batches)
{
    tbl_ord_fill = _i == 0 ? 3 : 0;
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    int r = tbl_create(tt_name(), "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    for (int i = 0; i < CB_KEYS; i += 2) {
        char k[16];
        int kl = snprintf(k, sizeof k, "k%06d", i);
        etsmgr_value v = tt_int(i);
        ck_assert_int_eq(etsmgr_table_insert(t, k, (size_t)kl, &v), 0);
    }
    struct cb_walk *w = calloc(1, sizeof *w);
    ck_assert_ptr_nonnull(w);
    w->t = t;
    w->last = -1;
    ck_assert_int_eq(etsmgr_table_foreach(t, changing_cb, w), 0);
    ck_assert_msg(w->bad == 0, "%s", w->why);
    int evens = 0;
    for (int i = 0; i < CB_KEYS; i += 2) {
        if (w->gone[i]) continue;
        ck_assert_msg(w->seen[i] == 1, "k%06d, present throughout, seen %d times", i, w->seen[i]);
        evens++;
    }
    ck_assert_int_gt(evens, CB_KEYS / 8); /* the walk went the whole way */
    tbl_ord_fill = 0;
    tt_check(t);
    free(w);
    etsmgr_table_close(t);
}
END_TEST

/* Words changing between a reader's loads of them (a node or an entry
 * freed and its block reused meanwhile, or a scribbler): a reader checks
 * the word it loads and must then go by what it checked, not load it
 * again, or a bad second load walks it off the block and the mapping.
 * Made certain here by watching the word (test_flip_watch.h): the reader
 * flips it between a good and a bad value right after each of its loads
 * of it.  The reader's process makes the page after the block unreadable,
 * so a read past the block is a SIGSEGV. */
#define OW_LEAF_SIZE 216u /* table_ordered.c: a leaf's header, links and 24 slots */
static int ow_count_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)key, (void)klen, (void)v;
    ++*(int *)arg;
    return 0;
}
/* An ordered table of 1 MiB with keys k000000..k000023 (one leaf); *pg: a
 * page above its heap, free to scribble on. */
static etsmgr_table *ow_one_leaf(uint64_t *pg)
{
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET, .size_hint = 1u << 20};
    etsmgr_table *t = NULL;
    int r = tbl_create(tt_name(), "ordered", &o, &t);
    ck_assert_msg(r == 0, "tbl_create: %s", etsmgr_strerror(r));
    for (int i = 0; i < 24; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "k%06d", i);
        etsmgr_value v = tt_int(i);
        ck_assert_int_eq(etsmgr_table_insert(t, k, (size_t)kl, &v), 0);
    }
    ck_assert_uint_eq(*tbl_word(t, t->h->ord_head) & 0xffffffffu, 24); /* one leaf (level 0) of 24 slots */
    *pg = ((t->top + 4095u) & ~(uint64_t)4095u) + 4096u;
    ck_assert_uint_le(*pg + 4096u, t->limit);
    return t;
}

/* A walk of the one leaf, moved to end right before the page, its slot
 * count flipped between 24 and 65535 (fails, a SIGSEGV, when ord_try loads
 * the count again after checking it). */
static int ow_walk(etsmgr_table *t)
{
    int n = 0, r = etsmgr_table_foreach(t, ow_count_cb, &n);
    return r == 0 && n == 24 ? 0 : 3;
}
START_TEST(walk_node_header_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t leaf = pg - OW_LEAF_SIZE, h0 = *tbl_word(t, t->h->ord_head);
    memcpy(t->base + leaf, t->base + t->h->ord_head, OW_LEAF_SIZE);
    t->h->ord_head = leaf;
    fw_flip_watched(t, pg, tbl_word(t, leaf), h0, h0 | 0xffffu, ow_walk);
    etsmgr_table_close(t);
#endif
}
END_TEST

/* next() after k000010 with a 32-byte key that begins with k000010's
 * 16 bytes of key and value: k000010's entry is moved to end right before
 * the page, and its key length flipped between 7 and 255 (fails, a
 * SIGSEGV, when the leaf search's compare loads the length again after
 * ord_ent checked it: the compare then reads on past the entry). */
static unsigned char ow_q[32];
static int ow_next(etsmgr_table *t)
{
    char k[ETSMGR_KEY_MAX];
    size_t kl;
    int r = etsmgr_table_next(t, ow_q, sizeof ow_q, k, sizeof k, &kl);
    return r == 0 && kl == 7 && memcmp(k, "k000011", 7) == 0 ? 0 : 3;
}
START_TEST(compare_entry_header_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t leaf = t->h->ord_head, *slot = tbl_word(t, leaf + 24u + 8u * 10);
    uint64_t eoff = (*slot & TBL_OFF_MASK) << 3, noff = pg - 24u;
    uint64_t h0 = *tbl_word(t, eoff);
    ck_assert_uint_eq(h0 & 0xffu, 7); /* "k000010": 8 bytes of header, 8 of key, 8 of value */
    memcpy(t->base + noff, t->base + eoff, 24);
    *slot = (*slot & ~TBL_OFF_MASK) | noff >> 3;
    memcpy(ow_q, t->base + noff + 8, 16);
    memset(ow_q + 16, 'z', sizeof ow_q - 16);
    fw_flip_watched(t, pg, tbl_word(t, noff), h0, h0 | 0xffu, ow_next);
    etsmgr_table_close(t);
#endif
}
END_TEST

/* An insert into the full leaf (under the lock, but a scribbler need not
 * take it), its slot count flipped between 24 and 65535: the insert ends
 * (done, or ECORRUPT) and never copies 65536 slots into its 25-slot
 * arrays (fails, a SIGSEGV or a sanitizer's report, when the count is
 * taken from a second copy of the header). */
static int ow_insert(etsmgr_table *t)
{
    etsmgr_value v = tt_int(-1);
    int r = etsmgr_table_insert(t, "k000010x", 8, &v);
    return r == 0 || r == ETSMGR_ECORRUPT ? 0 : 3;
}
START_TEST(insert_node_header_changing)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t leaf = t->h->ord_head, h0 = *tbl_word(t, leaf);
    fw_flip_watched(t, pg, tbl_word(t, leaf), h0, h0 | 0xffffu, ow_insert);
    etsmgr_table_close(t);
#endif
}
END_TEST

/* An insert into the full leaf, moved to end right before the page, its
 * level flipped from 0 to 1 after the insert has loaded the header twice
 * (the descent's check, the in-place test) and back after the next load:
 * the private copy of the node is taken at the level the descent checked,
 * or refused (ECORRUPT), and never at an inner node's 504 bytes from a
 * leaf's 216 (fails, a SIGSEGV, when the copy's size comes from a third,
 * unchecked load). */
START_TEST(insert_node_level_changing)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t leaf = pg - OW_LEAF_SIZE, h0 = *tbl_word(t, t->h->ord_head);
    memcpy(t->base + leaf, t->base + t->h->ord_head, OW_LEAF_SIZE);
    t->h->ord_head = leaf;
    t->h->heap_top = pg + 4096u; /* a writer looks below the heap's top only */
    fw_flip_watched_at(t, pg, tbl_word(t, leaf), h0, h0 | 1u << 16, ow_insert, 1u << 1 | 1u << 2);
    etsmgr_table_close(t);
#endif
}
END_TEST

/* k000010's entry (8 bytes of header, 8 of key, 8 of value) copied to
 * noff and its index slot pointed there; its key's hash. */
static uint64_t ow_move_k10(etsmgr_table *t, uint64_t noff)
{
    uint64_t pos = 0, hv = tbl_hash(t->hseed, "k000010", 7);
    struct tbl_ent *e = NULL;
    ck_assert_int_eq(tbl_op_begin(t, "test", true), 0);
    ck_assert_int_eq(tbl_find(t, "k000010", 7, hv, &pos, &e), 1);
    memcpy(t->base + noff, e, 24);
    t->idx[pos] = tbl_tag(hv) << 40 | noff >> 3;
    ck_assert_int_eq(tbl_op_end(t, 0), 0);
    return hv;
}

/* update_counter of k000010, whose entry is moved to end right before the
 * page, its key length flipped from 7 to 255 after the writer's k-th load
 * of the header, for each k (the writer holds the lock; a scribbler need
 * not take it): the count goes by the header it checked, and never writes
 * its value 256 bytes on, past the block and the mapping (fails, a
 * SIGSEGV, when the key length or type is loaded again after tbl_find
 * checked it). */
static int ow_update(etsmgr_table *t)
{
    int64_t nv = 0;
    int r = etsmgr_table_update_counter(t, "k000010", 7, 1, 0, &nv);
    return r == 0 && nv == 11 ? 0 : r == ETSMGR_ECORRUPT ? 0 : 3;
}
START_TEST(update_entry_header_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t noff = pg - 24u;
    ow_move_k10(t, noff);
    t->h->heap_top = pg + 4096u; /* a writer looks below the heap's top only */
    uint64_t h0 = *tbl_word(t, noff);
    ck_assert_uint_eq(h0 & 0xffu, 7);
    for (unsigned k = 0; k < 8; k++) {
        *tbl_word(t, noff + 16) = 10;
        fw_flip_watched_at(t, pg, tbl_word(t, noff), h0, h0 | 0xffu, ow_update, 1ul << k);
    }
    etsmgr_table_close(t);
#endif
}
END_TEST

/* The same for the exactly-once count (table_once.c: once_count_locked,
 * which the group commit shares): it goes by the header tbl_find checked,
 * a new request id each time so that each one reads the counter. */
static unsigned ow_rid;
static int ow_update_once(etsmgr_table *t)
{
    etsmgr_once o = {.keep_until_ms = INT64_MAX / 4};
    memcpy(o.rid, &ow_rid, sizeof ow_rid);
    int64_t nv = 0;
    int dup = 0, r = etsmgr_table_update_counter_once(t, "k000010", 7, 1, &o, &nv, &dup);
    return r == 0 && nv == 11 && !dup ? 0 : r == ETSMGR_ECORRUPT ? 0 : 3;
}
START_TEST(update_once_entry_header_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t noff = pg - 24u;
    ow_move_k10(t, noff);
    t->h->heap_top = pg + 4096u;
    uint64_t h0 = *tbl_word(t, noff);
    for (unsigned k = 0; k < 8; k++) {
        *tbl_word(t, noff + 16) = 10;
        ow_rid = k + 1;
        fw_flip_watched_at(t, pg, tbl_word(t, noff), h0, h0 | 0xffu, ow_update_once, 1ul << k);
    }
    etsmgr_table_close(t);
#endif
}
END_TEST

/* verify of a table with request-id records, their full ring's head word
 * flipped to 2^62 after verify's k-th load of it, for each k: verify goes
 * by the head it checked, and its walk of the ring ends (it walked on
 * towards 2^62, every slot a record found again, when it loaded the head
 * again at each step). */
static int ow_verify(etsmgr_table *t)
{
    char why[256];
    int r = etsmgr_table_verify(t, why, sizeof why);
    return r == 0 || r == ETSMGR_ECORRUPT ? 0 : 3;
}
START_TEST(verify_once_head_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (int i = 0; i < 64; i++) { /* the first region's ring full: every slot a record */
        etsmgr_once q = {.keep_until_ms = far};
        snprintf((char *)q.rid, sizeof q.rid, "rid%012d", i);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &q, &v, &dup), 0);
    }
    uint64_t *head = tbl_word(t, t->h->once_off + 16);
    ck_assert_uint_eq(*head, 64);
    /* the unreadable page past the region, which the counts put where the
     * leaf's page was (a layout 4 region of 64 records takes 8 KiB) */
    pg = ((t->top + 4095u) & ~(uint64_t)4095u) + 4096u;
    ck_assert_uint_le(pg + 4096u, t->limit);
    for (unsigned k = 0; k < 4; k++)
        fw_flip_watched_at(t, pg, head, 64, 1ull << 62, ow_verify, 1ul << k);
    tt_check(t);
    etsmgr_table_close(t);
#endif
}
END_TEST

/* verify of the table, k000010's entry moved to end right before the
 * page and its key length flipped from 7 to 255 after verify's k-th load
 * of the header, for each k: verify goes by the header it checked (it
 * hashed 255 bytes of key from there, past the block and the mapping: a
 * SIGSEGV). */
START_TEST(verify_entry_header_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t noff = pg - 24u;
    ow_move_k10(t, noff);
    t->h->heap_top = pg + 4096u; /* verify looks below the heap's top only */
    uint64_t h0 = *tbl_word(t, noff);
    for (unsigned k = 0; k < 6; k++)
        fw_flip_watched_at(t, pg, tbl_word(t, noff), h0, h0 | 0xffu, ow_verify, 1ul << k);
    etsmgr_table_close(t);
#endif
}
END_TEST

/* A save of the table, k000010's entry moved to end right at the heap's
 * top (before the unreadable page) and its stripe moved between the
 * save's lock-free rounds and its last step (the save's test step 11), so
 * that the last step copies it again; its key length flipped from 7 to
 * 255 after the save's k-th load of the header, for each k.  A save that
 * sized that copy by a second load read 255 bytes from there, into the
 * unreadable page: a SIGSEGV. */
static etsmgr_table *ow_save_t;
static unsigned ow_save_stripe;
static void ow_save_step(const char *op, int step)
{
    if (strcmp(op, "save") == 0 && step == 11) ow_save_t->h->stripe[ow_save_stripe] += 2;
}
static int ow_save(etsmgr_table *t)
{
    char path[128], why[256];
    snprintf(path, sizeof path, "/tmp/etsmgr-ow-save-%ld.etsimg", (long)getpid());
    ow_save_t = t;
    tbl_crashpoint = ow_save_step;
    (void)img_save(t, path, NULL, why, sizeof why); /* a good or a refused image: either will do */
    tbl_crashpoint = NULL;
    unlink(path);
    return 0;
}
START_TEST(save_entry_header_loaded_once)
{
#if defined(__x86_64__)
    uint64_t pg;
    etsmgr_table *t = ow_one_leaf(&pg);
    uint64_t top = pg - 4096u, noff = top - 24u;
    ck_assert_uint_ge(noff, t->top); /* above what the table uses */
    ow_save_stripe = (unsigned)(tbl_tag(ow_move_k10(t, noff)) & (TBL_NSTRIPES - 1u));
    t->h->heap_top = top; /* the save copies below the heap's top only */
    /* the unreadable page right at the top: pg itself is left readable */
    uint64_t h0 = *tbl_word(t, noff);
    ck_assert_uint_eq(h0 & 0xffu, 7);
    for (unsigned k = 0; k < 24; k++) /* a save loads the word about 17 times */
        fw_flip_watched_at(t, top, tbl_word(t, noff), h0, h0 | 0xffu, ow_save, 1ul << k);
    etsmgr_table_close(t);
#endif
}
END_TEST

Suite *ordered_walk_suite(void)
{
    Suite *s = suite_create("ordered_walk");
    TCase *tc = tcase_create("ordered_walk");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, counters_leave_ord_seq);
    tcase_add_test(tc, walk_against_counter_writer);
    tcase_add_test(tc, walk_after_dead_counter_writer);
    tcase_add_loop_test(tc, walk_changes_between_batches, 0, 2);
    tcase_add_test(tc, walk_node_header_loaded_once);
    tcase_add_test(tc, compare_entry_header_loaded_once);
    tcase_add_test(tc, insert_node_header_changing);
    tcase_add_test(tc, insert_node_level_changing);
    tcase_add_test(tc, update_entry_header_loaded_once);
    tcase_add_test(tc, update_once_entry_header_loaded_once);
    tcase_add_test(tc, verify_once_head_loaded_once);
    tcase_add_test(tc, verify_entry_header_loaded_once);
    tcase_add_test(tc, save_entry_header_loaded_once);
    suite_add_tcase(s, tc);
    return s;
}

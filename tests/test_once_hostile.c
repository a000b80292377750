/* SPDX-License-Identifier: Apache-2.0 */
/* test_once_hostile.c: the request-id region (client/lib/table_once.c)
 * changed by a scribbler while a count is under way.
 *
 * A count checks the region when it starts (tbl_once_bytes: a size that
 * fits the heap, a power-of-two ring, head and tail within it) and then
 * writes its record steps later, after the counter's own change, perhaps
 * a rebuild of the region, each step with its crash points.  A process
 * with write access to the object need not take the lock, so the region
 * may say anything by then.  The crash-point hook (tbl_crashpoint) stands
 * in for such a scribbler here: it writes garbage at one numbered step of
 * the count, which makes the change certain to fall between the count's
 * check and its use.  Whatever it writes, the count ends, with an answer
 * or ETSMGR_ECORRUPT: never an access outside the mapping (a SIGSEGV) nor
 * a walk of 2^62 ring positions.
 *
 * - count_once_region_moved: once_off itself, changed after the count
 *   checked it (step 0), names no region (a SIGSEGV when the count read
 *   the word again to place its record).
 * - count_once_ring_resized: the ring's size word changed at step 0 to a
 *   bigger power of two, its head far along it (a SIGSEGV reading a record
 *   2 GB past the region when the size was read again).
 * - count_once_ring_resized_before_write: the same change made while the
 *   counter is inserted, after the record's place was chosen (a SIGSEGV
 *   writing the record there when once_write read the size again).
 * - count_once_rebuild_head_moved: while a full ring is rebuilt, after
 *   the rebuild counted its live records, the old ring's head is moved to
 *   2^62 and every record expired (a walk of 2^62 positions, reading the
 *   head again at each, when the copy went by the scribbled head).
 * - once_cap_loaded_once: the ring's size word flipped from 64 to 512
 *   right after the k-th load of it (test_flip_watch.h: certain, not a
 *   race), for each of the first k, under each use of the region: a count
 *   (its index line's first write, its lookup, its drop of expired
 *   records at a tail far along the ring), a group of counts, a put, a
 *   tidy and verify.  Each goes by the size it checked (once_load) and
 *   ends with an answer or ETSMGR_ECORRUPT; the unreadable pages right
 *   after the region are where a size of 512 puts the index, and the
 *   records at that tail, so that a use that loads the word again is a
 *   SIGSEGV there (it was, for once_touch, once_find and the tail's drop,
 *   which read the word again after once_load had checked it). */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "table_int.h"
#include "test_flip_watch.h"
#include "test_table_once.h"
#include "test_table_util.h"

static void teardown(void)
{
    tbl_crashpoint = NULL;
    tt_cleanup();
}

static etsmgr_table *oh_t;      /* the table the hook scribbles on */
static const char *oh_op;       /* at the first crash point of this operation */
static int oh_step;             /* ... numbered this or later */
static void (*oh_scribble)(etsmgr_table *t);
static int oh_done;
static void oh_hook(const char *op, int step)
{
    if (oh_done || !op || strcmp(op, oh_op) != 0 || step < oh_step) return;
    oh_done = 1;
    oh_scribble(oh_t);
}

/* A table with n counts recorded on "c" (rids to_seq_rid(1, i)). */
static etsmgr_table *oh_table(int n)
{
    etsmgr_table *t = NULL;
    etsmgr_table_opts o = {0};
    ck_assert_int_eq(tbl_create(tt_name(), "once", &o, &t), 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (int i = 0; i < n; i++) {
        etsmgr_once q = to_seq_rid(1, (uint64_t)i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &q, &v, &dup), 0);
    }
    return t;
}

/* A new rid counted on key with the hook armed for op's step: the
 * count's answer (it must end: a SIGSEGV or a hang fails the test).
 * Step 0 of count_once: checked, nothing written yet; step 1: the first
 * write after the record's place was chosen (the counter's). */
static int oh_count(etsmgr_table *t, const char *key, const char *op, int step, void (*scribble)(etsmgr_table *t))
{
    oh_t = t;
    oh_op = op;
    oh_step = step;
    oh_scribble = scribble;
    oh_done = 0;
    tbl_crashpoint = oh_hook;
    etsmgr_once q = to_seq_rid(2, 7, etsmgr_mono_ms() + 3600000);
    int64_t v;
    int dup, r = etsmgr_table_update_counter_once(t, key, strlen(key), 1, &q, &v, &dup);
    tbl_crashpoint = NULL;
    ck_assert_int_eq(oh_done, 1); /* the scribble happened */
    return r;
}

static uint64_t oh_saved_off;
static void oh_move_region(etsmgr_table *t)
{
    oh_saved_off = t->h->once_off;
    t->h->once_off = (1ull << 40) + 64; /* 1 TB in: far past the mapping */
}
START_TEST(count_once_region_moved)
{
    etsmgr_table *t = oh_table(10);
    int r = oh_count(t, "c", "count_once", 0, oh_move_region);
    ck_assert_msg(r == ETSMGR_ECORRUPT, "count: %s", etsmgr_strerror(r));
    t->h->once_off = oh_saved_off;
    tt_check(t); /* rolled back: the table as it was */
    etsmgr_table_close(t);
}
END_TEST

static uint64_t oh_saved[4];
/* the ring says 2^27 records (a power of two the checks allow), its head
 * and tail at 2^26: the next record's slot 2 GB past the region */
static void oh_resize_ring(etsmgr_table *t)
{
    uint64_t *reg = to_reg(t);
    memcpy(oh_saved, reg + 1, sizeof oh_saved);
    reg[1] = 1ull << 27;
    reg[2] = 1ull << 26;
    reg[3] = (1ull << 26) - 1;
}
static void oh_unresize_ring(etsmgr_table *t) { memcpy(to_reg(t) + 1, oh_saved, sizeof oh_saved); }
START_TEST(count_once_ring_resized)
{
    etsmgr_table *t = oh_table(10);
    int r = oh_count(t, "c", "count_once", 0, oh_resize_ring);
    ck_assert_msg(r == ETSMGR_ECORRUPT, "count: %s", etsmgr_strerror(r));
    oh_unresize_ring(t);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* the count of a new key: the scribble comes while the counter's entry is
 * inserted, after the record's place was chosen */
START_TEST(count_once_ring_resized_before_write)
{
    etsmgr_table *t = oh_table(10);
    uint64_t off = t->h->once_off;
    int r = oh_count(t, "new", "count_once", 1, oh_resize_ring);
    /* its place was chosen in the region as it was checked: the record
     * goes there (or the count refuses) */
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT, "count: %s", etsmgr_strerror(r));
    ck_assert_uint_eq(t->h->once_off, off);
    etsmgr_table_close(t);
}
END_TEST

/* the old ring of a rebuild, once its live records are counted: every
 * record expired, the head at 2^62 (tail, size and records as they were) */
static void oh_head_far(etsmgr_table *t)
{
    uint64_t *reg = to_reg(t);
    for (uint64_t s = 0; s < reg[1]; s++) to_rec(reg, s)[3] = 1;
    reg[2] = 1ull << 62;
}
START_TEST(count_once_rebuild_head_moved)
{
    etsmgr_table *t = oh_table(64); /* the first region's ring is full: the next count rebuilds it */
    ck_assert_uint_eq(to_cap(t), 64);
    int r = oh_count(t, "c", "once_rebuild", 0, oh_head_far);
    ck_assert_msg(r == 0 || r == ETSMGR_ECORRUPT, "count: %s", etsmgr_strerror(r));
    etsmgr_table_close(t);
}
END_TEST

/* once_cap_loaded_once's uses of the region, each a child's action
 * (fw_flip_watched_pages): 0 when it ends with an answer or ECORRUPT */
#define OH_CAP_GOOD 64u
#define OH_CAP_BAD 512u
#define OH_CAP_PAGES 8u
static uint64_t oh_cap_seq; /* the next new rid's number, set by the parent */
static int oh_cap_ok(int r) { return r >= 0 || r == ETSMGR_ECORRUPT || r == ETSMGR_EEXIST ? 0 : 3; }
static int oh_cap_count(etsmgr_table *t)
{
    etsmgr_once q = to_seq_rid(2, oh_cap_seq, etsmgr_mono_ms() + 3600000);
    int64_t v;
    int dup;
    return oh_cap_ok(etsmgr_table_update_counter_once(t, "c", 1, 1, &q, &v, &dup));
}
static int oh_cap_count_untouched(etsmgr_table *t)
{
    t->once_touches = UINT32_MAX; /* past a handle's first counts: no once_touch, once_find reads the line */
    return oh_cap_count(t);
}
static int oh_cap_many(etsmgr_table *t)
{
    tbl_once_req q[4];
    memset(q, 0, sizeof q);
    for (unsigned i = 0; i < 4; i++) q[i].once = to_seq_rid(3, 4 * oh_cap_seq + i, etsmgr_mono_ms() + 3600000);
    return oh_cap_ok(tbl_once_count_many(t, "c", 1, 1, q, 4));
}
static int oh_cap_put(etsmgr_table *t)
{
    etsmgr_once q = to_seq_rid(4, oh_cap_seq, 0);
    return oh_cap_ok(tbl_once_put(t, q.rid, 1, etsmgr_mono_ms() + 3600000));
}
static int oh_cap_tidy(etsmgr_table *t) { return oh_cap_ok(tbl_once_tidy(t)); }
static int oh_cap_verify(etsmgr_table *t)
{
    char why[256];
    return oh_cap_ok(etsmgr_table_verify(t, why, sizeof why));
}
static const struct {
    int (*action)(etsmgr_table *t);
    int wrapped; /* the ring's positions 448 on: its tail's record, read with a size of 512, in the pages */
} oh_cap_uses[] = {
    {oh_cap_count, 0},           /* once_touch's OR */
    {oh_cap_count_untouched, 0}, /* once_find's read of the home line */
    {oh_cap_count, 1},           /* the drop of expired records at the tail */
    {oh_cap_many, 0},            /* the same in a group commit */
    {oh_cap_put, 0},             /* once_find */
    {oh_cap_tidy, 1},            /* its drop and sweep */
    {oh_cap_verify, 0},          /* once_find of each record */
};
START_TEST(once_cap_loaded_once)
{
#if defined(__x86_64__)
    etsmgr_table *t = tt_create(NULL, 1u << 20, 0);
    etsmgr_value zero = tt_int(0);
    ck_assert_int_eq(etsmgr_table_insert(t, "c", 1, &zero), 0); /* the counter below the region */
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 0; i < 10; i++) {
        etsmgr_once q = to_seq_rid(1, i, far);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &q, &v, &dup), 0);
    }
    /* the first region (64 records), the heap's last block: its index at
     * idx, a page of 2 KiB of entries, and after it only the block's
     * slack (a size's worst alignment) and free space */
    uint64_t off = t->h->once_off, *reg = to_reg(t), idx = (uint64_t)((char *)to_idx(t) - t->base);
    ck_assert_uint_eq(reg[0], TO_MAGIC4);
    ck_assert_uint_eq(reg[1], OH_CAP_GOOD);
    ck_assert_uint_eq(idx & 4095u, 0);
    ck_assert_uint_le(t->h->heap_top, off + 8u * (TO_HDR_WORDS + TO_REC_WORDS * 64u) + 4096u + 2048u + 64u);
    /* unreadable in the child: the OH_CAP_PAGES pages after the index's,
     * where a size of 512 puts the index (16 KiB of it) and the record of
     * slot 448, the tail's when wrapped */
    uint64_t pg = idx + 4096u, end = pg + OH_CAP_PAGES * 4096u;
    uint64_t idx_bad = (off + 8u * (TO_HDR_WORDS + TO_REC_WORDS * OH_CAP_BAD) + 4095u) & ~(uint64_t)4095u;
    uint64_t rec_bad = off + 8u * (TO_HDR_WORDS + TO_REC_WORDS * 448u);
    ck_assert_uint_ge(idx_bad, pg);
    ck_assert_uint_le(idx_bad + 8u * TO_IDX_PER_REC * OH_CAP_BAD, end);
    ck_assert_uint_ge(rec_bad, pg);
    ck_assert_uint_le(rec_bad + 32u, end);
    ck_assert_uint_le(end, t->limit);
    if (oh_cap_uses[_i].wrapped) {
        /* the same records at positions 448 on: slot 448 & 63 = 0 as before */
        reg[2] += 448;
        reg[3] += 448;
    }
    for (unsigned k = 0; k < 4; k++) {
        oh_cap_seq = 100 + k;
        fw_flip_watched_pages(t, pg, OH_CAP_PAGES, &reg[1], OH_CAP_GOOD, OH_CAP_BAD, oh_cap_uses[_i].action,
                              1ul << k);
    }
    ck_assert_uint_eq(t->h->once_off, off);
    tt_check(t); /* what the children committed is a good store */
    etsmgr_table_close(t);
#endif
}
END_TEST

Suite *once_hostile_suite(void)
{
    Suite *s = suite_create("once_hostile");
    TCase *tc = tcase_create("once_hostile");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, count_once_region_moved);
    tcase_add_test(tc, count_once_ring_resized);
    tcase_add_test(tc, count_once_ring_resized_before_write);
    tcase_add_test(tc, count_once_rebuild_head_moved);
    tcase_add_loop_test(tc, once_cap_loaded_once, 0, (int)(sizeof oh_cap_uses / sizeof oh_cap_uses[0]));
    suite_add_tcase(s, tc);
    return s;
}

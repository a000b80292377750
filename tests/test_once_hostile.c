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
 *   head again at each, when the copy went by the scribbled head). */
#include <check.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "table_int.h"
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
    suite_add_tcase(s, tc);
    return s;
}

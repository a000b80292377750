/* SPDX-License-Identifier: Apache-2.0 */
/* test_table_once.h: what the table suites read and write of the
 * request-id region of etsmgr_table_update_counter_once directly
 * (client/lib/table_once.c; docs/design.md has its layouts): the rids a
 * high-rate sender sends (a prefix and a big-endian counter), where a
 * record's index entry lies, and the region rewritten as layout 2, the way
 * an older library left it, so that the conversion to layout 3 is tested
 * on the real format.  The layouts are the tests' to know: a region is a
 * file format, kept readable across versions. */
#ifndef TEST_TABLE_ONCE_H
#define TEST_TABLE_ONCE_H
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "table_int.h"

#define TO_HDR_WORDS 8u
#define TO_REC_WORDS 4u
#define TO_IDX_PER_REC 4u
#define TO_BUCKET 8u
#define TO_MAGIC2 0x32454f4e4f4d5445ull /* "ETMONOE2" */
#define TO_MAGIC3 0x33454f4e4f4d5445ull /* "ETMONOE3" */

/* rid = 8 bytes of prefix, then seq as 8 big-endian bytes (32 hex digits
 * "%016llx%016llx" on the wire) */
static inline etsmgr_once to_seq_rid(uint64_t prefix, uint64_t seq, int64_t keep)
{
    etsmgr_once o = {.keep_until_ms = keep};
    memcpy(o.rid, &prefix, 8);
    for (int i = 0; i < 8; i++) o.rid[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
    return o;
}

static inline uint64_t *to_reg(etsmgr_table *t)
{
    ck_assert_uint_ne(t->h->once_off, 0);
    return tbl_word(t, t->h->once_off);
}
static inline uint64_t to_cap(etsmgr_table *t) { return to_reg(t)[1]; }
static inline uint64_t *to_rec(uint64_t *reg, uint64_t slot) { return reg + TO_HDR_WORDS + TO_REC_WORDS * slot; }
static inline uint64_t *to_idx(etsmgr_table *t)
{
    uint64_t off = t->h->once_off, cap = to_cap(t);
    return tbl_word(t, (off + 8u * (TO_HDR_WORDS + TO_REC_WORDS * cap) + 63u) & ~(uint64_t)63u);
}
static inline uint64_t to_buckets(etsmgr_table *t) { return to_cap(t) * TO_IDX_PER_REC / TO_BUCKET; }

/* murmur3's finaliser: layout 2's hash is mix(mix(r0 ^ k0) ^ r1 ^ k1),
 * its low bits the bucket, its high 32 the tag */
static inline uint64_t to_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Rewrites the table's layout 3 region in place as layout 2 (its index
 * rebuilt with layout 2's buckets, the table version 6 or 9), as a library
 * before layout 3 would have left it. */
static inline void to_make_layout2(etsmgr_table *t)
{
    ck_assert_int_eq(tbl_op_begin(t, "to_layout2", true), 0);
    uint64_t *reg = to_reg(t), cap = reg[1], nb = to_buckets(t), *idx = to_idx(t), filled = 0;
    ck_assert_uint_eq(reg[0], TO_MAGIC3);
    reg[0] = TO_MAGIC2;
    memset(idx, 0, 8u * TO_IDX_PER_REC * cap);
    for (uint64_t p = reg[3]; p < reg[2]; p++) {
        uint64_t s = p & (cap - 1), *rec = to_rec(reg, s);
        uint64_t h = to_mix(to_mix(rec[0] ^ reg[4]) ^ rec[1] ^ reg[5]), b = h & (nb - 1);
        for (unsigned j = 0;; j++) {
            if (j == TO_BUCKET) {
                j = 0;
                b = (b + 1) & (nb - 1);
            }
            if (!idx[TO_BUCKET * b + j]) {
                idx[TO_BUCKET * b + j] = (h >> 32) << 32 | (s + 1u);
                break;
            }
        }
        filled++;
    }
    reg[6] = filled;
    if (t->h->version == TBL_VERSION_ONCE3) t->h->version = TBL_VERSION_ONCE2;
    if (t->h->version == TBL_VERSION_BTREE_ONCE3) t->h->version = TBL_VERSION_BTREE_ONCE2;
    ck_assert_int_eq(tbl_op_end(t, 0), 0);
}

/* Sets the keep time of the records at ring positions [from, to) of the
 * region (as if they had been sent with that one). */
static inline void to_set_keep(etsmgr_table *t, uint64_t from, uint64_t to, int64_t keep)
{
    uint64_t *reg = to_reg(t);
    for (uint64_t p = from; p < to; p++) to_rec(reg, p & (reg[1] - 1))[3] = (uint64_t)keep;
}
#endif

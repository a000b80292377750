/* SPDX-License-Identifier: Apache-2.0 */
/* test_table_once.h: what the table suites read and write of the
 * request-id region of etsmgr_table_update_counter_once directly
 * (client/lib/table_once.c; docs/design.md has its layouts): the rids a
 * high-rate sender sends (a prefix and a big-endian counter), where a
 * record's index entry lies, and the region rewritten as layout 2 or 3, the
 * way an older library left it, so that the conversion to layout 4 is
 * tested on the real format.  The layouts are the tests' to know: a region is a
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
#define TO_MAGIC4 0x34454f4e4f4d5445ull /* "ETMONOE4" */

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
/* the index: at the first 64-byte boundary after the records (layouts 2
 * and 3), the first page boundary (layout 4) */
static inline uint64_t to_align(uint64_t magic) { return magic == TO_MAGIC4 ? 4096u : 64u; }
static inline uint64_t *to_idx(etsmgr_table *t)
{
    uint64_t off = t->h->once_off, cap = to_cap(t), a = to_align(to_reg(t)[0]);
    return tbl_word(t, (off + 8u * (TO_HDR_WORDS + TO_REC_WORDS * cap) + a - 1u) & ~(a - 1u));
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

/* Layout 4's home of rid (r0, r1) in region reg (table_once.c's
 * once_home4): the page from a keyed hash of the prefix and the sequence
 * number without its low 5 bits, the bucket in it every 8th from an offset
 * that hash gives, by the sequence number's bits 2 to 4; the caller takes
 * it & (buckets - 1). */
static inline uint64_t to_home4(const uint64_t *reg, uint64_t r0, uint64_t r1)
{
    uint64_t q = __builtin_bswap64(r1), h = to_mix(to_mix(r0 ^ reg[4]) ^ (q >> 5) ^ reg[5]);
    return (h & ~63ull) | (((h >> 32) + ((q >> 2) & 7u) * 8u) & 63u);
}

/* Rewrites the table's layout 4 region as layout `layout` (2 or 3), as a
 * library of that layout would have left it: a new block of that layout's
 * size (its index at a 64-byte boundary) holding the same header, ring and
 * key, its index built with that layout's buckets, the table version 6 or
 * 9 (10 or 11); the old block freed. */
static inline void to_make_layout(etsmgr_table *t, int layout)
{
    ck_assert_int_eq(tbl_op_begin(t, "to_layout", true), 0);
    uint64_t *old = to_reg(t), cap = old[1], nb = to_buckets(t), filled = 0, oo = t->h->once_off;
    ck_assert_uint_eq(old[0], TO_MAGIC4);
    uint64_t rbytes = 8u * (TO_HDR_WORDS + TO_REC_WORDS * cap), size = rbytes + 64u + 8u * TO_IDX_PER_REC * cap;
    uint64_t osize = rbytes + 4096u + 8u * TO_IDX_PER_REC * cap, noff;
    ck_assert_int_eq(tbl_alloc(t, size, &noff), 0); /* may move the mapping */
    old = to_reg(t);
    uint64_t *reg = tbl_word(t, noff), *idx = tbl_word(t, (noff + rbytes + 63u) & ~(uint64_t)63u);
    memcpy(reg, old, rbytes);
    reg[0] = layout == 2 ? TO_MAGIC2 : TO_MAGIC3;
    memset(idx, 0, 8u * TO_IDX_PER_REC * cap);
    for (uint64_t p = reg[3]; p < reg[2]; p++) {
        uint64_t s = p & (cap - 1), *rec = to_rec(reg, s), a = to_mix(rec[0] ^ reg[4]);
        uint64_t h = to_mix(a ^ rec[1] ^ reg[5]);
        uint64_t b = (layout == 2 ? h : to_mix(a ^ (__builtin_bswap64(rec[1]) >> 2) ^ reg[5])) & (nb - 1);
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
    tbl_set(t, TBL_HOFF(once_off), noff);
    tbl_set(t, TBL_HOFF(live_bytes), t->h->live_bytes + size - osize);
    ck_assert_int_eq(tbl_defer_free(t, oo, osize), 0);
    uint32_t seeded = t->h->version & TBL_VERSION_SEEDED; /* the index's hash stays the table's */
    bool btree = tbl_vbase(t->h->version) == TBL_VERSION_BTREE_ONCE4;
    ck_assert(btree || tbl_vbase(t->h->version) == TBL_VERSION_ONCE4);
    if (layout == 2) t->h->version = (btree ? TBL_VERSION_BTREE_ONCE2 : TBL_VERSION_ONCE2) | seeded;
    else t->h->version = (btree ? TBL_VERSION_BTREE_ONCE3 : TBL_VERSION_ONCE3) | seeded;
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

/* SPDX-License-Identifier: Apache-2.0 */
/* table_verify.c: etsmgr_table_verify, a read-only walk that checks every
 * invariant the store relies on, under the lock (so after recovery of a
 * dead holder's change):
 *   - the header passes the same checks as attach;
 *   - every index slot is empty, a tombstone or a well-formed entry whose
 *     tag is its key's, and a lookup of its key lands on that very slot
 *     (so each key is findable, and exactly once);
 *   - count, tombs and live_bytes equal what the walk counted;
 *   - on an ordered table, the B+tree (table_ordered.c) holds exactly the
 *     indexed entries, keys strictly increasing, every key between its
 *     separators, every node well formed, leaves at one depth and linked
 *     both ways in order, its blocks counted in the bytes used;
 *   - the request-id records (table_once.c), when there are any, are one
 *     well-formed block whose used count matches its records;
 *   - entries, the index, the request-id records and the free blocks never
 *     overlap and lie in the heap (a sort of all blocks by offset).
 * The walk is bounded by the sizes it validated first, so a scribbled
 * table gives ETSMGR_ECORRUPT, never a loop or a fault. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "table_int.h"

static int tbl_blk_cmp(const void *a, const void *b)
{
    const struct tbl_blk *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int tbl_say(char *why, size_t whylen, int err, const char *fmt, ...)
{
    if (why && whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return err;
}

uint64_t tbl_verify_heap_blocks = 1u << 24; /* test hook (table.h) */

static int tbl_verify_locked(etsmgr_table *t, char *why, size_t whylen)
{
    struct tbl_hdr *h = t->h;
    struct stat st;
    if (fstat(t->fd, &st) < 0) return ETSMGR_ESYS;
    int r = tbl_check_header(h, (uint64_t)st.st_size);
    if (r) return tbl_say(why, whylen, ETSMGR_ECORRUPT, "header: %s", tbl_last_why());
    if (h->undo_n != t->un) return tbl_say(why, whylen, ETSMGR_ECORRUPT, "undo log has %llu records, expected %llu",
                                           (unsigned long long)h->undo_n, (unsigned long long)t->un);
    /* the hash key is cached at attach: one changed since (a scribble)
     * would make handles attached after it hash every key elsewhere */
    uint64_t key[2] = {0, 0};
    if (h->version & TBL_VERSION_SEEDED) memcpy(key, h->hash_seed, sizeof key);
    if (memcmp(key, t->hseed, sizeof key) != 0)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "the header's hash key is not the one the table was opened with");
    uint64_t live = 0, tombs = 0, bytes = (t->mask + 1) * 8, nblk = 0;
    /* blocks: the entries, the index, the request-id block, the B+tree's
     * and the free blocks, every one appended only while nblk < maxblk.
     * The count is loaded once and bounded again: the header check read
     * it, and a process that writes the object need not take the lock,
     * so 3 * count loaded again could wrap to a list of a few blocks. */
    uint64_t count = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
    if (count > t->mask + 1) return tbl_say(why, whylen, ETSMGR_ECORRUPT, "entry count out of range");
    uint64_t maxblk = 3 * count + 3 + (t->top - TBL_HDR_SIZE) / 16 + 1;
    if (maxblk > 3 * count + 3 + tbl_verify_heap_blocks) maxblk = 3 * count + 3 + tbl_verify_heap_blocks;
    struct tbl_blk *blk = malloc(maxblk * sizeof *blk);
    if (!blk) return ETSMGR_ENOMEM;
    blk[nblk++] = (struct tbl_blk){(uint64_t)((char *)t->idx - t->base), bytes};
    r = 0;
    for (uint64_t i = 0; i <= t->mask && !r; i++) {
        uint64_t s = t->idx[i], pos;
        if (s == TBL_SLOT_EMPTY) continue;
        if (tbl_tomb(s)) {
            tombs++;
            continue;
        }
        uint64_t off = (s & TBL_OFF_MASK) << 3;
        struct tbl_ent hc, *f = NULL; /* the header as checked, loaded once (tbl_ent_at) */
        struct tbl_ent *e = tbl_ent_hdr(t, off, &hc);
        if (!e) {
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "slot %llu: entry at %llu malformed or outside the heap",
                        (unsigned long long)i, (unsigned long long)off);
            break;
        }
        uint64_t hv = tbl_hash(t->hseed, tbl_ent_key(e), hc.klen);
        if (tbl_tag(hv) != s >> 40) {
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "slot %llu: tag does not match its key", (unsigned long long)i);
            break;
        }
        int fr = tbl_find(t, tbl_ent_key(e), hc.klen, hv, &pos, &f);
        if (fr != 1 || pos != i) {
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "slot %llu: key %s", (unsigned long long)i,
                        fr == 1 ? "is stored twice" : "cannot be found from its hash");
            break;
        }
        if (hc.links != 0) {
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "slot %llu: entry has %u skiplist links",
                        (unsigned long long)i, (unsigned)hc.links);
            break;
        }
        uint64_t size = tbl_ent_block(&hc);
        if (live + 1 >= maxblk) {
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "more live slots than the heap can hold");
            break;
        }
        blk[nblk++] = (struct tbl_blk){off, size};
        live++;
        bytes += size;
    }
    if (!r && h->once_off) {
        /* the request-id records (table_once.c): one block, its counts
         * and index matching its records */
        uint64_t osz = tbl_once_bytes(t, h->once_off);
        if (!osz)
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "request-id records at %llu malformed or outside the heap",
                        (unsigned long long)h->once_off);
        else if (tbl_once_verify(t, why, whylen))
            r = ETSMGR_ECORRUPT; /* why says what does not match */
        else if (nblk >= maxblk) /* the entries' walk may have filled the list (test
                                  * table_attach/verify_blocks_past_the_bound) */
            r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "more blocks than the heap can hold");
        else {
            blk[nblk++] = (struct tbl_blk){h->once_off, osz};
            bytes += osz;
        }
    }
    if (!r && t->ordered) /* the B+tree: its nodes, order, and agreement with the index */
        r = tbl_ord_verify(t, blk, &nblk, maxblk, &bytes, why, whylen);
    if (!r && live != h->count)
        r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "count says %llu entries, index holds %llu",
                    (unsigned long long)h->count, (unsigned long long)live);
    if (!r && tombs != h->tombs)
        r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "tombstone count says %llu, index holds %llu",
                    (unsigned long long)h->tombs, (unsigned long long)tombs);
    if (!r && bytes != h->live_bytes)
        r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "bytes used says %llu, entries and index take %llu",
                    (unsigned long long)h->live_bytes, (unsigned long long)bytes);
    for (unsigned c = 0; c <= TBL_NCLASS && !r; c++) {
        uint64_t f = c < TBL_NCLASS ? h->free_head[c] : h->large_head;
        while (f && !r) {
            uint64_t w0, w1, size;
            if ((f & 7u) || f < TBL_HDR_SIZE || f > t->top - 16) {
                r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "free list %u: block %llu outside the heap", c,
                            (unsigned long long)f);
                break;
            }
            w0 = *tbl_word(t, f);
            w1 = *tbl_word(t, f + 8);
            size = w0 & ~TBL_FREE_TAGMASK;
            if ((w0 & TBL_FREE_TAGMASK) != TBL_FREE_TAG || size < 16 || (size & 7u) ||
                size > t->top - f || (c < TBL_NCLASS && size != c * 8u)) {
                r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "free list %u: block %llu malformed", c, (unsigned long long)f);
                break;
            }
            if (nblk >= maxblk) {
                r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "free list %u loops or is too long", c);
                break;
            }
            blk[nblk++] = (struct tbl_blk){f, size};
            f = w1;
        }
    }
    if (!r) {
        qsort(blk, nblk, sizeof *blk, tbl_blk_cmp);
        for (uint64_t i = 0; i < nblk && !r; i++) {
            if (blk[i].off < TBL_HDR_SIZE || blk[i].size > t->top - blk[i].off)
                r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "block at %llu outside the heap", (unsigned long long)blk[i].off);
            else if (i + 1 < nblk && blk[i].off + blk[i].size > blk[i + 1].off)
                r = tbl_say(why, whylen, ETSMGR_ECORRUPT, "blocks at %llu and %llu overlap", (unsigned long long)blk[i].off,
                            (unsigned long long)blk[i + 1].off);
        }
    }
    free(blk);
    return r;
}

int etsmgr_table_verify(etsmgr_table *t, char *why, size_t whylen)
{
    if (!t) return ETSMGR_EINVAL;
    if (why && whylen) why[0] = 0;
    int r = tbl_op_begin(t, "verify", false);
    if (r == ETSMGR_ECORRUPT) return tbl_say(why, whylen, ETSMGR_ECORRUPT, "header state out of range");
    if (r) return r;
    r = tbl_verify_locked(t, why, whylen);
    int rr = tbl_op_end(t, 0);
    return r ? r : rr;
}

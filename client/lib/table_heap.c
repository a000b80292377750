/* SPDX-License-Identifier: Apache-2.0 */
/* table_heap.c: space inside a table: allocation, deferred frees, growth of
 * the object and of the index.
 *
 * Allocation tries, in order: the exact-size free list (blocks up to
 * TBL_SMALL_MAX bytes, so small entries of one shape reuse each other's
 * space with no search), a bounded first fit in the list of larger free
 * blocks (carving from the end of a block changes only its size word), and
 * the bump pointer.  When the bump pointer reaches the end, the object
 * grows by a quarter (at least what is needed): posix_fallocate first, so
 * that a full /dev/shm is an error here and not a SIGBUS later, then the
 * header's total_bytes is set through the undo log.  A crash between the
 * two leaves an object longer than its header says, which is harmless.
 *
 * The index grows by building a complete new array in fresh space, then
 * switching idx_off/idx_mask through the undo log, the layout word odd
 * from just before the switch until after the commit (lock-free readers
 * use the old array until then); the old array is freed at commit.  A crash before commit rolls the switch back, and the old array,
 * never touched, is the index again.
 *
 * Frees are deferred to the commit of the change (or group) so that no
 * block a rollback would bring back can have been handed out again. */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "table_int.h"

/* Record the word at off in the undo log without changing it (it is about
 * to be overwritten as part of a block). */
static void tbl_log(etsmgr_table *t, uint64_t off) { tbl_set(t, off, *tbl_word(t, off)); }

static bool tbl_free_block_ok(etsmgr_table *t, uint64_t f, uint64_t *size, uint64_t *next)
{
    if ((f & 7u) || f < TBL_HDR_SIZE || f > t->top - 16) return false;
    uint64_t w0 = *tbl_word(t, f), w1 = *tbl_word(t, f + 8);
    if ((w0 & TBL_FREE_TAGMASK) != TBL_FREE_TAG) return false;
    uint64_t s = w0 & ~TBL_FREE_TAGMASK;
    if (s < 16 || (s & 7u) || s > t->top - f) return false;
    if (w1 && ((w1 & 7u) || w1 < TBL_HDR_SIZE || w1 > t->top - 16)) return false;
    *size = s;
    *next = w1;
    return true;
}

static int tbl_grow(etsmgr_table *t, uint64_t need)
{
    struct tbl_hdr *h = t->h;
    uint64_t old = t->limit, want = t->top + need;
    uint64_t nt = old + (old < (1u << 20) ? old : old / 4);
    if (nt < want) nt = want;
    nt = (nt + TBL_GROW_STEP - 1) & ~(uint64_t)(TBL_GROW_STEP - 1);
    uint64_t max = h->max_bytes;
    if (max && nt > max) nt = max & ~7ull;
    if (nt > (TBL_OFF_MASK << 3)) nt = TBL_OFF_MASK << 3;
    if (want > nt) return ETSMGR_EFULL;
    tbl_cp(t);
    struct stat st;
    if (fstat(t->fd, &st) < 0) return ETSMGR_ESYS;
    int r = tbl_reserve(t->fd, old, nt);
    if (r) {
        int e = errno;
        /* give back what a partial fallocate took; the table never saw it */
        if ((uint64_t)st.st_size < nt && ftruncate(t->fd, st.st_size) < 0) { /* best effort */
        }
        errno = e;
        return r;
    }
    tbl_cp(t);
    /* mremap keeps the contents; the header mapping (and its mutex) stay */
    if (nt > t->map_size && (r = tbl_map(t, nt)) != 0) return r;
    tbl_set(t, TBL_HOFF(total_bytes), nt);
    t->limit = nt;
    return tbl_state(t); /* base may have moved */
}

int tbl_alloc(etsmgr_table *t, uint64_t size, uint64_t *out)
{
    struct tbl_hdr *h = t->h;
    uint64_t bs, next;
    if (size <= TBL_SMALL_MAX) {
        uint64_t f = h->free_head[size / 8];
        if (f) {
            if (!tbl_free_block_ok(t, f, &bs, &next) || bs != size) return ETSMGR_ECORRUPT;
            tbl_set(t, TBL_HOFF(free_head[size / 8]), next);
            tbl_log(t, f);
            tbl_log(t, f + 8);
            *out = f;
            return 0;
        }
    }
    uint64_t prev = TBL_HOFF(large_head), f = h->large_head;
    for (int steps = 0; f && steps < TBL_LARGE_WALK; steps++) {
        if (!tbl_free_block_ok(t, f, &bs, &next)) return ETSMGR_ECORRUPT;
        if (bs == size) {
            tbl_set(t, prev, next);
            tbl_log(t, f);
            tbl_log(t, f + 8);
            *out = f;
            return 0;
        }
        if (bs >= size + 16) {
            tbl_set(t, f, TBL_FREE_TAG | (bs - size));
            *out = f + bs - size;
            return 0;
        }
        prev = f + 8;
        f = next;
    }
    if (size > t->limit - t->top) {
        int r = tbl_grow(t, size);
        if (r) return r;
    }
    *out = t->top;
    tbl_set(t, TBL_HOFF(heap_top), t->top + size);
    t->top += size;
    return 0;
}

int tbl_defer_free(etsmgr_table *t, uint64_t off, uint64_t size)
{
    if (t->npend >= TBL_PEND_MAX) return ETSMGR_EGROUP;
    t->pend[t->npend].off = off;
    t->pend[t->npend].size = size;
    t->npend++;
    return 0;
}

void tbl_apply_frees(etsmgr_table *t)
{
    t->cp_op = "free";
    for (int i = 0; i < t->npend; i++) {
        uint64_t off = t->pend[i].off, size = t->pend[i].size;
        uint64_t head = size <= TBL_SMALL_MAX ? TBL_HOFF(free_head[size / 8]) : TBL_HOFF(large_head);
        tbl_set(t, off + 8, *tbl_word(t, head));
        tbl_set(t, off, TBL_FREE_TAG | size);
        tbl_set(t, head, off);
    }
    t->npend = 0;
}

int tbl_rehash(etsmgr_table *t, uint64_t newcap)
{
    struct tbl_hdr *h = t->h;
    if (newcap - 1 > TBL_MAX_MASK) return ETSMGR_EFULL;
    const char *op = t->cp_op;
    t->cp_op = "grow";
    uint64_t old_off = h->idx_off, old_cap = t->mask + 1, bytes = newcap * 8, noff;
    int r = tbl_alloc(t, bytes, &noff);
    if (r) return r;
    uint64_t *nidx = tbl_word(t, noff), nmask = newcap - 1, n = 0;
    unsigned nshift = 64u - (unsigned)__builtin_ctzll(nmask + 1);
    memset(nidx, 0, bytes);
    tbl_cp(t);
    const uint64_t *oidx = tbl_word(t, old_off);
    for (uint64_t i = 0; i < old_cap; i++) {
        /* entries are scattered: ask for the one a few slots ahead now, so
         * the misses overlap instead of following each other */
        if (i + 16 < old_cap) {
            uint64_t a = (oidx[i + 16] & TBL_OFF_MASK) << 3;
            if (a >= TBL_HDR_SIZE && a < t->top) __builtin_prefetch(t->base + a);
        }
        uint64_t s = oidx[i];
        if (tbl_unused(s)) continue;
        struct tbl_ent hc; /* the header as checked, loaded once (tbl_ent_at) */
        struct tbl_ent *e = tbl_ent_hdr(t, (s & TBL_OFF_MASK) << 3, &hc);
        if (!e) return ETSMGR_ECORRUPT;
        uint64_t hv = tbl_hash(t->hseed, tbl_ent_key(e), hc.klen), j = tbl_home(hv, nshift), k;
        for (k = 0; k < newcap && nidx[j]; k++) j = (j + 1) & nmask;
        if (k == newcap) return ETSMGR_ECORRUPT;
        nidx[j] = (tbl_tag(hv) << 40) | (s & TBL_OFF_MASK);
        n++;
    }
    if (n != h->count) return ETSMGR_ECORRUPT;
    tbl_cp(t);
    tbl_touch_layout(t);
    tbl_set(t, TBL_HOFF(idx_off), noff);
    tbl_set(t, TBL_HOFF(idx_mask), nmask);
    if (h->tombs) tbl_set(t, TBL_HOFF(tombs), 0);
    tbl_set(t, TBL_HOFF(live_bytes), h->live_bytes + bytes - old_cap * 8);
    if ((r = tbl_defer_free(t, old_off, old_cap * 8)) != 0) return r;
    t->cp_op = op;
    return tbl_state(t);
}

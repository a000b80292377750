/* SPDX-License-Identifier: Apache-2.0 */
/* table_ordered.c: ordered_set tables, a skiplist over the entries.
 *
 * An ordered table is a set (the hash index finds keys, lock-free, exactly
 * as in table_ops.c/table_read.c) plus a skiplist that links every entry in
 * bytewise key order (memcmp, a prefix first).  The skiplist's node is the
 * entry itself: an ordered table's entry block carries, after its value,
 * h link words (next entry at levels 0..h-1; 0: the end), h being kept in
 * the entry header's links field (0 in a set: tbl_ent_block).  So a small
 * entry costs 24 + 8h bytes, and a step of a search reads the links and
 * the key it compares from one block, usually one cache line.
 *
 * The head (h->ord_head, allocated zeroed at creation) is a separate block
 * of ORD_MAX links after two unused words.  Heights are random with p = 1/4
 * per level, so the links of an entry average 8 * 4/3 bytes.
 *
 * Crash safety is the set's (table_int.h): a new entry is written whole,
 * links included, in unreachable space, then linked by logged writes
 * (tbl_set) of its predecessors' links, lowest level first; an unlink is
 * the same logged writes the other way, and the block is freed only at
 * commit.  A value replaced by one of another size is a new block of the
 * same height that takes the old one's place at every level.  So every
 * step of an insert, a delete or a group is undone by the next locker, and
 * nothing else is needed: there are no splits, merges or rebalancing, and
 * growth of the table is the heap's (already logged).
 *
 * Readers take no lock: every change of the skiplist (a link, so also every
 * block that is freed) makes ord_seq odd (tbl_touch_ord) until after its
 * commit; a reader copies what it needs (a batch of entries, bounded in
 * bytes) between two even, equal readings of ord_seq and retries
 * otherwise.  The one change that is not the skiplist's, an integer value
 * written in place (update_counter, an integer over an integer), never
 * moves ord_seq: outside a group it is one store, its own commit point
 * (tbl_set_one), read with one load; inside a group it moves only its
 * key's stripe, as for a set, so the reader checks each integer it copied
 * against that stripe and reads again the few that moved.  So no stream of
 * counter updates makes a walk start over; a stream of inserts or deletes
 * still can (one sequence word for the whole order).  Every pointer a
 * reader follows is checked against the mapping first, so a torn read
 * gives a retry, never a fault.  A walk continues after the last key of
 * its previous batch: every entry present throughout is seen exactly
 * once, in order, with a committed value.  Writers are never held up. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "table_int.h"

#define ORD_MAX TBL_LINKS_MAX
#define ORD_BATCH 64                                           /* entries per batch of a walk */
#define ORD_BUF 16384u                                         /* bytes per batch, at first */
#define ORD_BUF_MAX (ETSMGR_KEY_MAX + ETSMGR_VALUE_MAX)      /* enough for any one entry */

static inline uint64_t ld(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_RELAXED); }

uint64_t tbl_ord_head_size(void) { return 16u + 8u * ORD_MAX; }

/* memcmp order, a prefix first: 8 bytes at a time as big-endian words (a
 * search compares small keys at every step; memcmp's call was a seventh
 * of an insert). */
static inline int ord_cmp(const unsigned char *a, size_t al, const unsigned char *b, size_t bl)
{
    size_t n = al < bl ? al : bl, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y) return __builtin_bswap64(x) < __builtin_bswap64(y) ? -1 : 1;
    }
    int c = i < n ? memcmp(a + i, b + i, n - i) : 0;
    return c ? c : (al > bl) - (al < bl);
}

/* Where node n's links start (its height in *hg), 0 when n is not a
 * well-formed node below lim.  Unvalidated reads: the caller validates by
 * ord_seq or holds the lock.  The header word is read whole (the layout of
 * struct tbl_ent, as table_read.c reads it). */
static inline uint64_t ord_links(etsmgr_table *t, uint64_t n, uint64_t lim, unsigned *hg)
{
    if (__builtin_expect(n == ld(&t->h->ord_head), 0)) {
        *hg = ORD_MAX;
        return n + 16u;
    }
    if ((n & 7u) || n < TBL_HDR_SIZE || lim < 16 || n > lim - 16) return 0;
    uint64_t w = ld(tbl_word(t, n)), kl = w & 0xffu, ty = (w >> 8) & 0xffu, h = (w >> 16) & 0xffffu, vl = w >> 32;
    if (!kl || h < 1 || h > ORD_MAX || (ty == ETSMGR_INT ? vl != 8 : ty != ETSMGR_BYTES || vl > ETSMGR_VALUE_MAX))
        return 0;
    uint64_t es = tbl_ent_size(kl, vl);
    if (es + 8u * h > lim - n) return 0;
    *hg = (unsigned)h;
    return n + es;
}

enum { ORD_GE, ORD_GT, ORD_LT, ORD_LAST };

/* Descend from the head.  preds[i]: where the links start of the last node
 * at level i before the position mode asks for (ORD_GE: keys < key;
 * ORD_GT, ORD_LT with key NULL = ORD_LAST: keys <= key); *last: that node
 * at level 0 (the head when none).  1: done; 0: malformed (a torn read or
 * a scribbled table: the caller decides). */
static int ord_descend(etsmgr_table *t, int mode, const void *key, size_t klen, uint64_t lim,
                       uint64_t preds[ORD_MAX], uint64_t *last)
{
    uint64_t x = ld(&t->h->ord_head), steps = 0;
    uint64_t bound = (ld(&t->h->count) + 64) * (ORD_MAX + 1);
    if (bound > (lim / 16 + 64) * (ORD_MAX + 1)) bound = (lim / 16 + 64) * (ORD_MAX + 1);
    if ((x & 7u) || x < TBL_HDR_SIZE || lim < tbl_ord_head_size() || x > lim - tbl_ord_head_size()) return 0;
    uint64_t xl = x + 16u;
    for (int i = ORD_MAX - 1; i >= 0; i--) {
        for (;;) {
            uint64_t nx = ld(tbl_word(t, xl) + i);
            if (!nx) break;
            /* a search is a chain of cache misses: when nx stops us, the
             * next node one level down is the next miss; ask for it now so
             * that the two overlap (x's links are in cache already) */
            if (i > 0) {
                uint64_t dn = ld(tbl_word(t, xl) + i - 1);
                if (dn != nx && dn < lim) __builtin_prefetch(t->base + dn);
            }
            if (++steps > bound) return 0;
            unsigned hg;
            uint64_t nl = ord_links(t, nx, lim, &hg);
            if (!nl || hg <= (unsigned)i) return 0;
            const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(t->base + nx);
            int c = mode == ORD_LAST ? -1 : !key ? 1 : ord_cmp(tbl_ent_key(e), e->klen, key, klen);
            if (c < 0 || (c == 0 && mode != ORD_GE && mode != ORD_LT)) {
                x = nx;
                xl = nl;
                continue;
            }
            break;
        }
        preds[i] = xl;
    }
    *last = x;
    return 1;
}

/* ------------------------------------------------------------ writers */

static uint64_t ord_rand(void)
{
    static _Thread_local uint64_t s;
    if (!s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&s ^ 0x9e3779b97f4a7c15ull;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

unsigned tbl_ord_rand_height(void)
{
    /* two bits per level: the count of trailing zero pairs, at most ORD_MAX - 1 */
    uint64_t r = ord_rand() | (1ull << (2 * (ORD_MAX - 1)));
    return 1u + (unsigned)__builtin_ctzll(r) / 2u;
}

/* Under the lock: the predecessors of key (link starts) and the node
 * holding it (0: none; *hl: its links, *hg its height). */
static int ord_search(etsmgr_table *t, const void *key, size_t klen, uint64_t preds[ORD_MAX], uint64_t *hit,
                      uint64_t *hl, unsigned *hg)
{
    uint64_t last;
    if (!ord_descend(t, ORD_GE, key, klen, t->top, preds, &last)) return ETSMGR_ECORRUPT;
    uint64_t nx = *tbl_word(t, preds[0]);
    *hit = 0;
    if (nx) {
        if (!(*hl = ord_links(t, nx, t->top, hg))) return ETSMGR_ECORRUPT;
        const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(t->base + nx);
        if (ord_cmp(tbl_ent_key(e), e->klen, key, klen) == 0) *hit = nx;
    }
    return 0;
}

int tbl_ord_insert(etsmgr_table *t, const void *key, size_t klen, uint64_t eoff)
{
    uint64_t preds[ORD_MAX], hit, hl;
    unsigned hg, nh;
    int r = ord_search(t, key, klen, preds, &hit, &hl, &hg);
    if (r) return r;
    if (hit) return ETSMGR_ECORRUPT; /* the index said absent */
    uint64_t nl = ord_links(t, eoff, t->top, &nh);
    if (!nl) return ETSMGR_ECORRUPT;
    uint64_t *p = tbl_word(t, nl); /* unreachable yet: written freely */
    for (unsigned i = 0; i < nh; i++) p[i] = *tbl_word(t, preds[i] + 8u * i);
    tbl_cp(t);
    tbl_touch_ord(t);
    for (unsigned i = 0; i < nh; i++) tbl_set(t, preds[i] + 8u * i, eoff);
    return 0;
}

int tbl_ord_replace(etsmgr_table *t, const void *key, size_t klen, uint64_t eoff)
{
    uint64_t preds[ORD_MAX], hit, hl;
    unsigned hg, nh;
    int r = ord_search(t, key, klen, preds, &hit, &hl, &hg);
    if (r) return r;
    uint64_t nl = ord_links(t, eoff, t->top, &nh);
    if (!hit || !nl || nh != hg) return ETSMGR_ECORRUPT;
    uint64_t *p = tbl_word(t, nl); /* unreachable yet: written freely */
    for (unsigned i = 0; i < nh; i++) p[i] = *tbl_word(t, hl + 8u * i);
    tbl_cp(t);
    tbl_touch_ord(t);
    for (unsigned i = 0; i < nh; i++) {
        if (*tbl_word(t, preds[i] + 8u * i) != hit) return ETSMGR_ECORRUPT;
        tbl_set(t, preds[i] + 8u * i, eoff);
    }
    return 0;
}

int tbl_ord_remove(etsmgr_table *t, const void *key, size_t klen)
{
    uint64_t preds[ORD_MAX], hit, hl;
    unsigned hg;
    int r = ord_search(t, key, klen, preds, &hit, &hl, &hg);
    if (r) return r;
    if (!hit) return ETSMGR_ECORRUPT;
    tbl_touch_ord(t);
    for (unsigned i = 0; i < hg; i++) {
        if (*tbl_word(t, preds[i] + 8u * i) != hit) return ETSMGR_ECORRUPT;
        tbl_set(t, preds[i] + 8u * i, *tbl_word(t, hl + 8u * i));
    }
    return 0; /* the block, links included, is the entry's: its delete frees it */
}

static int ord_bad(char *why, size_t whylen, const char *what, uint64_t at)
{
    if (why && whylen) snprintf(why, whylen, "ordered index: %s (node %llu)", what, (unsigned long long)at);
    return ETSMGR_ECORRUPT;
}

int tbl_ord_verify(etsmgr_table *t, struct tbl_blk *blk, uint64_t *nblk, uint64_t maxblk, uint64_t *bytes,
                   char *why, size_t whylen)
{
    uint64_t head = t->h->ord_head, lim = t->top, n = 0;
    if ((head & 7u) || head < TBL_HDR_SIZE || lim < tbl_ord_head_size() || head > lim - tbl_ord_head_size())
        return ord_bad(why, whylen, "head outside the heap", head);
    if (*nblk >= maxblk) return ord_bad(why, whylen, "too many blocks", head);
    blk[(*nblk)++] = (struct tbl_blk){head, tbl_ord_head_size()};
    *bytes += tbl_ord_head_size(); /* the nodes' links are in their entries' blocks */
    uint64_t above[ORD_MAX] = {0}; /* nodes seen at level 0 with a level i */
    const struct tbl_ent *prev = NULL;
    unsigned hg;
    for (uint64_t x = *tbl_word(t, head + 16u), xl; x; x = *tbl_word(t, xl)) {
        if (!(xl = ord_links(t, x, lim, &hg)) || x == head) return ord_bad(why, whylen, "malformed node", x);
        const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(t->base + x);
        if (++n > t->h->count) return ord_bad(why, whylen, "more nodes than entries", x);
        if (prev && ord_cmp(tbl_ent_key(prev), prev->klen, tbl_ent_key(e), e->klen) >= 0)
            return ord_bad(why, whylen, "keys not strictly increasing", x);
        struct tbl_ent *f = NULL;
        uint64_t pos;
        if (tbl_find(t, tbl_ent_key(e), e->klen, tbl_hash(tbl_ent_key(e), e->klen), &pos, &f) != 1 ||
            (const struct tbl_ent *)f != e)
            return ord_bad(why, whylen, "node's entry is not the indexed one", x);
        for (unsigned i = 1; i < hg; i++) above[i]++;
        prev = e;
    }
    if (n != t->h->count) return ord_bad(why, whylen, "fewer nodes than entries", n);
    for (unsigned i = 1; i < ORD_MAX; i++) {
        uint64_t m = 0;
        const struct tbl_ent *pe = NULL;
        for (uint64_t x = *tbl_word(t, head + 16u + 8u * i), xl; x; x = *tbl_word(t, xl + 8u * i)) {
            if (!(xl = ord_links(t, x, lim, &hg)) || x == head || hg <= i || ++m > above[i])
                return ord_bad(why, whylen, "upper level is not a sub-list", x);
            const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(t->base + x);
            if (pe && ord_cmp(tbl_ent_key(pe), pe->klen, tbl_ent_key(e), e->klen) >= 0)
                return ord_bad(why, whylen, "upper level out of order", x);
            pe = e;
        }
        if (m != above[i]) return ord_bad(why, whylen, "upper level misses nodes", i);
    }
    return 0;
}

/* ------------------------------------------------------------ readers */

struct ord_rec {
    size_t koff, klen, voff, vlen;
    int type;
    int64_t i;
    /* an integer value is changed in place (update_counter) under its
     * key's stripe only: where it is, the stripe, its reading before */
    uint64_t iw, q;
    uint32_t stripe;
};

struct ord_batch {
    struct ord_rec rec[ORD_BATCH];
    int n, max;
    bool end;      /* the last entry of the table is in the batch (or none follows) */
    bool values;   /* copy values too */
    unsigned char *buf;
    size_t cap, used;
};

/* Copy node n's entry (checked by ord_links) into b.  0: no room (not copied; with b->n == 0 the
 * buffer must grow); 1: copied; -1: malformed. */
static int ord_copy(etsmgr_table *t, uint64_t n, struct ord_batch *b)
{
    const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(t->base + n);
    struct tbl_ent c;
    memcpy(&c, e, sizeof c);
    if (c.klen == 0) return -1;
    size_t need = c.klen + (b->values && c.type == ETSMGR_BYTES ? c.vlen : 0);
    if (need > ORD_BUF_MAX) return -1;
    if (b->n == b->max || b->used + need > b->cap) return 0;
    struct ord_rec *r = &b->rec[b->n];
    r->koff = b->used;
    r->klen = c.klen;
    memcpy(b->buf + b->used, tbl_ent_key(e), c.klen);
    b->used += c.klen;
    r->type = c.type;
    r->vlen = c.vlen;
    r->voff = b->used;
    if (b->values) {
        const char *v = (const char *)e + tbl_ent_voff(&c);
        if (c.type == ETSMGR_INT) {
            if (c.vlen != 8) return -1;
            r->stripe = (uint32_t)(tbl_hash(tbl_ent_key(e), c.klen) & (TBL_NSTRIPES - 1));
            r->q = __atomic_load_n(&t->h->stripe[r->stripe], __ATOMIC_ACQUIRE);
            r->iw = (uint64_t)(v - t->base);
            r->i = (int64_t)ld((const uint64_t *)(const void *)v);
        } else if (c.type == ETSMGR_BYTES) {
            memcpy(b->buf + b->used, v, c.vlen);
            b->used += c.vlen;
        } else {
            return -1;
        }
    }
    b->n++;
    return 1;
}

/* One unvalidated try: fill b from the position mode asks for.  1: done;
 * 2: the first entry does not fit the buffer; 0: malformed. */
static int ord_try(etsmgr_table *t, int mode, const void *key, size_t klen, struct ord_batch *b)
{
    uint64_t lim = t->limit, preds[ORD_MAX], last;
    unsigned hg;
    b->n = 0;
    b->used = 0;
    b->end = false;
    if (!ord_descend(t, mode, key, klen, lim, preds, &last)) return 0;
    if (mode == ORD_LT || mode == ORD_LAST) {
        b->end = true;
        return last == ld(&t->h->ord_head) ? 1 : ord_copy(t, last, b) == 1;
    }
    uint64_t x = ld(tbl_word(t, preds[0]));
    for (uint64_t steps = 0; x; steps++) {
        uint64_t xl = ord_links(t, x, lim, &hg);
        if (!xl || steps > lim / 16) return 0;
        uint64_t nx = ld(tbl_word(t, xl));
        /* the next entry is a cache miss of its own: ask for it now, so
         * that it overlaps the copy of this one */
        if (nx < lim) __builtin_prefetch(t->base + nx);
        int c = ord_copy(t, x, b);
        if (c < 0) return 0;
        if (c == 0) return b->n ? 1 : 2;
        x = nx;
    }
    b->end = true;
    return 1;
}

/* The integer values of a batch whose stripes moved (or were odd) while
 * they were copied, read again one at a time like a lookup does.  The
 * entries themselves stay put while ord_seq does (the caller checks it
 * again after this).  0, or an error of the wait. */
static int ord_fix_ints(etsmgr_table *t, struct ord_batch *b, int64_t ws[2])
{
    for (int i = 0; i < b->n; i++) {
        struct ord_rec *r = &b->rec[i];
        if (!b->values || r->type != ETSMGR_INT) continue;
        const uint64_t *sp = &t->h->stripe[r->stripe];
        if (!(r->q & 1u) && ld(sp) == r->q) continue;
        for (;;) {
            int e = tbl_rd_wait_even(t, sp, &r->q, ws);
            if (e) return e;
            if (r->iw > t->limit - 8) return ETSMGR_ECORRUPT; /* checked at copy time */
            r->i = (int64_t)ld(tbl_word(t, r->iw));
            atomic_thread_fence(memory_order_acquire);
            if (ld(sp) == r->q) break;
        }
    }
    return 0;
}

/* A consistent batch: tries until one ran between two equal even readings
 * of ord_seq, every integer value also between two equal even readings of
 * its key's stripe (inside a group the lock is ours and the state is our
 * own). */
static int ord_read(etsmgr_table *t, int mode, const void *key, size_t klen, struct ord_batch *b)
{
    int64_t ws[2] = {0, 0};
    for (;;) {
        uint64_t s0 = 0;
        int r;
        if (!t->in_group && (r = tbl_rd_wait_even(t, &t->h->ord_seq, &s0, ws)) != 0) return r;
        int k = ord_try(t, mode, key, klen, b);
        atomic_thread_fence(memory_order_acquire);
        if (!t->in_group && __atomic_load_n(&t->h->ord_seq, __ATOMIC_RELAXED) != s0) continue;
        if (!t->in_group && k == 1) {
            if ((r = ord_fix_ints(t, b, ws)) != 0) return r;
            atomic_thread_fence(memory_order_acquire);
            if (__atomic_load_n(&t->h->ord_seq, __ATOMIC_RELAXED) != s0) continue;
        }
        if (k == 2) { /* a value bigger than the batch buffer: make room for any */
            unsigned char *nb = b->cap < ORD_BUF_MAX ? realloc(b->buf, ORD_BUF_MAX) : NULL;
            if (!nb) return ETSMGR_ENOMEM;
            b->buf = nb;
            b->cap = ORD_BUF_MAX;
            continue;
        }
        if (k) return 0;
        uint64_t lim = t->limit; /* stable but malformed: did the table grow past our mapping? */
        if ((r = tbl_sync_map(t)) != 0) return r;
        if (t->limit > lim) continue;
        return ETSMGR_ECORRUPT;
    }
}

static int ord_check_key(const void *key, size_t klen)
{
    return key && klen >= 1 && klen <= ETSMGR_KEY_MAX ? 0 : ETSMGR_EINVAL;
}

/* One key: the first/last, or the next/previous of key. */
static int ord_one(etsmgr_table *t, int mode, const void *key, size_t klen, void *out, size_t cap, size_t *outlen)
{
    unsigned char kb[ETSMGR_KEY_MAX];
    struct ord_batch b = {.max = 1, .values = false, .buf = kb, .cap = sizeof kb};
    int r = ord_read(t, mode, key, klen, &b);
    if (r) return r;
    if (b.n == 0) return ETSMGR_ENOTFOUND;
    if (outlen) *outlen = b.rec[0].klen;
    if (b.rec[0].klen > cap) return ETSMGR_ERANGE;
    if (out) memcpy(out, kb, b.rec[0].klen);
    return 0;
}

struct ord_first {
    void *out;
    size_t cap, *klen;
    int r;
};

static int ord_first_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)v;
    struct ord_first *f = arg;
    if (f->klen) *f->klen = klen;
    if (klen > f->cap) {
        f->r = ETSMGR_ERANGE;
    } else {
        if (f->out) memcpy(f->out, key, klen);
        f->r = 0;
    }
    return 1;
}

int etsmgr_table_first(etsmgr_table *t, void *key, size_t cap, size_t *klen)
{
    if (!t) return ETSMGR_EINVAL;
    if (t->ordered) return ord_one(t, ORD_GE, NULL, 0, key, cap, klen);
    /* a set: any key (hash order) */
    struct ord_first f = {key, cap, klen, ETSMGR_ENOTFOUND};
    int r = etsmgr_table_foreach(t, ord_first_cb, &f);
    return r < 0 ? r : f.r;
}

int etsmgr_table_last(etsmgr_table *t, void *key, size_t cap, size_t *klen)
{
    if (!t || !t->ordered) return ETSMGR_EINVAL;
    return ord_one(t, ORD_LAST, NULL, 0, key, cap, klen);
}

int etsmgr_table_next(etsmgr_table *t, const void *key, size_t klen, void *out, size_t cap, size_t *outlen)
{
    if (!t || !t->ordered || ord_check_key(key, klen)) return ETSMGR_EINVAL;
    return ord_one(t, ORD_GT, key, klen, out, cap, outlen);
}

int etsmgr_table_prev(etsmgr_table *t, const void *key, size_t klen, void *out, size_t cap, size_t *outlen)
{
    if (!t || !t->ordered || ord_check_key(key, klen)) return ETSMGR_EINVAL;
    return ord_one(t, ORD_LT, key, klen, out, cap, outlen);
}

int etsmgr_table_foreach_range(etsmgr_table *t, const void *from, size_t flen, const void *to, size_t tlen,
                               etsmgr_foreach_cb cb, void *arg)
{
    if (!t || !t->ordered || !cb || (from && ord_check_key(from, flen)) || (to && ord_check_key(to, tlen)))
        return ETSMGR_EINVAL;
    struct ord_batch *b = malloc(sizeof *b);
    unsigned char *buf = malloc(ORD_BUF);
    if (!b || !buf) {
        free(b);
        free(buf);
        return ETSMGR_ENOMEM;
    }
    *b = (struct ord_batch){.max = ORD_BATCH, .values = true, .buf = buf, .cap = ORD_BUF};
    unsigned char cur[ETSMGR_KEY_MAX];
    size_t clen = 0;
    int mode = ORD_GE, r = 0;
    const void *k = from;
    size_t kl = from ? flen : 0;
    for (;;) {
        if ((r = ord_read(t, mode, k, kl, b)) != 0) break;
        bool stop = false;
        for (int i = 0; i < b->n && !stop; i++) {
            const struct ord_rec *e = &b->rec[i];
            unsigned char *buf = b->buf;
            if (to && ord_cmp(buf + e->koff, e->klen, to, tlen) >= 0) {
                stop = true;
                break;
            }
            etsmgr_value v = {.type = e->type};
            if (e->type == ETSMGR_INT)
                v.i = e->i;
            else {
                v.data = buf + e->voff;
                v.len = e->vlen;
            }
            if ((r = cb(buf + e->koff, e->klen, &v, arg)) != 0) stop = true;
        }
        if (stop || b->end || b->n == 0) break;
        const struct ord_rec *l = &b->rec[b->n - 1];
        memcpy(cur, b->buf + l->koff, l->klen);
        clen = l->klen;
        mode = ORD_GT;
        k = cur;
        kl = clen;
    }
    free(b->buf);
    free(b);
    return r;
}

int tbl_ord_foreach(etsmgr_table *t, etsmgr_foreach_cb cb, void *arg)
{
    return etsmgr_table_foreach_range(t, NULL, 0, NULL, 0, cb, arg);
}

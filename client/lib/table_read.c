/* SPDX-License-Identifier: Apache-2.0 */
/* table_read.c: lookup and foreach without the lock, on any handle.
 *
 * A reader never writes to the mapping (a read handle's is PROT_READ).  It
 * reads the sequence word of its key's stripe (and the layout word), waits
 * while it is odd, reads the slots and the entry, then reads the word
 * again: equal means no change of a key of that stripe (and no index
 * switch) overlapped the read, so what it read was committed and whole.
 * Writers make the word odd before the first write a reader could see and
 * even only after the commit point (table_int.h, tbl_touch/tbl_untouch),
 * except for an integer written in place outside a group, which is one
 * store and its own commit point (tbl_set_one): an integer value is
 * therefore always read with one atomic load, old or new, never a mix;
 * an entry a reader may be reading is freed, and so reused, only by a
 * change of its own key, which moves the stripe word.  Probing past other
 * keys' slots needs no validation: while a key exists, the slots between
 * its home and its slot are never empty, whatever other keys do.
 * docs/design.md has the whole argument, with the dead-writer case: a word
 * odd for a while with the lock's holder dead (the kernel marked the robust
 * mutex) is rolled back by this handle when it may write, else etsmgrd is
 * asked (tbl_set_recover), and after 10 ms the reader gives up with
 * ETSMGR_EDEADWRITER instead of hanging.  That rollback may remap the table
 * (tbl_sync_map), which moves every pointer of the cached view: after any
 * wait on a sequence word the view is checked again (r_lay) before use.
 *
 * foreach visits entries in the order of their keys' hashes.  Homes are the
 * hash's top bits, so that order survives a rehash: the walk remembers only
 * the last hash it reported (and the keys reported with exactly that hash),
 * and after an index switch it carries on from there in the new index.
 *
 * Memory order: the writer's odd store is followed by a release fence, its
 * even store is a release; the reader loads the word with acquire, its data
 * relaxed, then an acquire fence before the second load (the seqlock
 * pattern).  On x86 all of it compiles to plain moves. */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "table_int.h"

#define TBL_DEAD_WAIT_NS 10000000ll /* how long a reader waits for a dead writer's rollback */

void tbl_even_all(etsmgr_table *t)
{
    for (unsigned i = 0; i < TBL_NSTRIPES; i++) tbl_seq_even(&t->h->stripe[i]);
    tbl_seq_even(&t->h->layout_seq);
    tbl_seq_even(&t->h->ord_seq);
}

static inline uint64_t ld_acq(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }
static inline uint64_t ld(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_RELAXED); }

static int64_t tbl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void tbl_nap(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ waiting */

struct tbl_wait {
    int64_t t0; /* first stall of this call */
    bool asked; /* etsmgrd was asked to recover */
};

/* The holder of the lock died and nobody has taken the lock since (the
 * kernel set FUTEX_OWNER_DIED and cleared the owner), or nobody holds it
 * while a sequence word is odd (only a dead holder leaves that). */
static bool tbl_holder_dead(etsmgr_table *t)
{
#if COMPAT_MUTEX_WORD
    unsigned lw = compat_mutex_word(&t->h->lock);
    return (lw & FUTEX_OWNER_DIED) || (lw & FUTEX_TID_MASK) == 0;
#else
    (void)t;
    return false;
#endif
}

/* *w was v, odd: a change is in progress.  Wait a little; 0: look again. */
static int tbl_stall(etsmgr_table *t, const uint64_t *w, uint64_t v, struct tbl_wait *ws)
{
    for (int i = 0; i < 64; i++) {
        tbl_pause();
        if (ld(w) != v) return 0;
    }
    int64_t now = tbl_mono_ns();
    if (!ws->t0) ws->t0 = now;
    int64_t waited = now - ws->t0;
    bool dead = tbl_holder_dead(t);
    atomic_thread_fence(memory_order_acquire);
    if (ld(w) != v) return 0; /* the word moved while we looked at the lock: not stuck */
    if (dead) {
        if (!t->rdonly && !t->in_group) {
            /* we may write: taking the lock rolls the dead change back */
            return tbl_recover_now(t);
        }
        if (t->recover_cb && t->rsock && !ws->asked && waited < TBL_DEAD_WAIT_NS) {
            ws->asked = true;
            int left_ms = (int)((TBL_DEAD_WAIT_NS - waited) / 1000000);
            t->recover_cb(t->rsock, t->name, left_ms > 0 ? left_ms : 1);
            return 0; /* whatever it said, the word tells */
        }
        if (waited >= TBL_DEAD_WAIT_NS) return ETSMGR_EDEADWRITER;
        tbl_nap(100000);
        return 0;
    }
    if (t->lock_timeout_ms && waited >= (int64_t)t->lock_timeout_ms * 1000000) return ETSMGR_ELOCKED;
    if (waited > 1000000)
        tbl_nap(50000);
    else if (waited > 50000)
        sched_yield();
    return 0;
}

/* An even value of *w (waiting while it is odd). */
static int tbl_even(etsmgr_table *t, const uint64_t *w, uint64_t *out, struct tbl_wait *ws)
{
    for (;;) {
        uint64_t v = ld_acq(w);
        if (__builtin_expect(!(v & 1u), 1)) {
            *out = v;
            return 0;
        }
        int r = tbl_stall(t, w, v, ws);
        if (r) return r;
    }
}

/* ------------------------------------------------------------ the view */

/* Whether an index of mask + 1 slots at off lies inside [0, lim).  Written
 * so that nothing wraps: off and mask come from memory other processes
 * write, and the sum off + (mask + 1) * 8 wraps for an off near 2^64 (off
 * 2^64 - 2^39 with mask 2^36 - 1 summed to 0 and passed, and lookups then
 * read 2^39 bytes before the mapping).  (mask + 1) * 8 itself cannot wrap:
 * mask is at most TBL_MAX_MASK when this is asked. */
_Static_assert(TBL_MAX_MASK < UINT64_MAX / 8, "(mask + 1) * 8 must not wrap");
static inline bool tbl_idx_inside(uint64_t off, uint64_t mask, uint64_t lim)
{
    return off <= lim && (mask + 1) * 8 <= lim - off;
}

/* An even layout word, with the cached index matching it (remapped first
 * when the table grew past what we map). */
static int tbl_layout(etsmgr_table *t, uint64_t *lay, struct tbl_wait *ws)
{
    struct tbl_hdr *h = t->h;
    for (;;) {
        uint64_t L;
        int r = tbl_even(t, &h->layout_seq, &L, ws);
        if (r) return r;
        if (__builtin_expect(L == t->r_lay, 1)) {
            *lay = L;
            return 0;
        }
        uint64_t off = ld(&h->idx_off), mask = ld(&h->idx_mask);
        atomic_thread_fence(memory_order_acquire);
        if (ld(&h->layout_seq) != L) continue;
        if ((off & 7u) || off < TBL_HDR_SIZE || mask > TBL_MAX_MASK || (mask & (mask + 1)) ||
            mask + 1 < TBL_MIN_CAP)
            return ETSMGR_ECORRUPT;
        if (!tbl_idx_inside(off, mask, t->limit)) {
            uint64_t lim = t->limit;
            if ((r = tbl_sync_map(t)) != 0) return r;
            if (t->limit <= lim && !tbl_idx_inside(off, mask, t->limit)) return ETSMGR_ECORRUPT;
            continue; /* the mapping may have moved: look again */
        }
        t->r_idx = tbl_word(t, off);
        t->r_mask = mask;
        t->r_shift = 64u - (unsigned)__builtin_ctzll(mask + 1);
        t->r_lay = L;
        *lay = L;
        return 0;
    }
}

int tbl_rd_sync(etsmgr_table *t)
{
    struct tbl_wait ws = {0};
    uint64_t L;
    int r = tbl_sync_map(t);
    return r ? r : tbl_layout(t, &L, &ws);
}

/* Did the table grow past our mapping?  0: remapped, look again. */
static int tbl_grew(etsmgr_table *t)
{
    uint64_t lim = t->limit;
    int r = tbl_sync_map(t);
    if (r) return r;
    return t->limit > lim ? 0 : ETSMGR_ECORRUPT;
}

/* What one unvalidated read found. */
enum { RD_ABSENT, RD_FOUND, RD_REMAP, RD_BAD };

struct tbl_got {
    const unsigned char *key; /* in the mapping */
    size_t klen;
    uint64_t off; /* of the entry */
    int type;
    uint64_t vlen;
    const char *val; /* in the mapping */
};

/* Read the entry at off (unvalidated: it may be changing under us). */
static int tbl_rd_entry(etsmgr_table *t, uint64_t off, struct tbl_got *g)
{
    uint64_t lim = t->limit;
    if ((off & 7u) || off < TBL_HDR_SIZE) return RD_BAD;
    if (off > lim - 16) return RD_REMAP;
    uint64_t w = ld(tbl_word(t, off));
    g->off = off;
    g->klen = w & 0xffu;
    g->type = (int)((w >> 8) & 0xffu);
    g->vlen = w >> 32;
    if (g->klen == 0) return RD_BAD;
    if (g->type == ETSMGR_INT) {
        if (g->vlen != 8) return RD_BAD;
    } else if (g->type != ETSMGR_BYTES || g->vlen > ETSMGR_VALUE_MAX) {
        return RD_BAD;
    }
    if (tbl_ent_size(g->klen, g->vlen) > lim - off) return RD_REMAP;
    g->key = (const unsigned char *)t->base + off + 8;
    g->val = t->base + off + 8 + tbl_a8(g->klen);
    return RD_FOUND;
}

/* Probe for key in the cached view. */
static int tbl_rd_find(etsmgr_table *t, const void *key, size_t klen, uint64_t hv, struct tbl_got *g)
{
    const uint64_t *idx = t->r_idx;
    uint64_t mask = t->r_mask, i = tbl_home(hv, t->r_shift), tag = tbl_tag(hv);
    for (uint64_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        uint64_t s = ld(&idx[i]);
        if (s == TBL_SLOT_EMPTY) return RD_ABSENT;
        if (tbl_tomb(s) || (s >> 40) != tag) continue;
        int r = tbl_rd_entry(t, (s & TBL_OFF_MASK) << 3, g);
        /* another key's entry with our tag may be mid-change: only our own
         * stripe is validated, so its oddities are not ours to judge */
        if (r != RD_FOUND) {
            if (r == RD_REMAP) return r;
            continue;
        }
        if (g->klen == klen && memcmp(g->key, key, klen) == 0) return RD_FOUND;
    }
    return RD_BAD; /* a consistent index always has an empty slot */
}

/* ------------------------------------------------------------ lookup */

static int tbl_copy_value(const struct tbl_got *g, etsmgr_value *out, void *buf, size_t cap)
{
    out->type = (etsmgr_type)g->type;
    if (g->type == ETSMGR_INT) {
        out->i = (int64_t)ld((const uint64_t *)(const void *)g->val);
        out->data = NULL;
        out->len = 0;
        return 0;
    }
    out->i = 0;
    out->len = g->vlen;
    out->data = buf;
    if (g->vlen > cap || (g->vlen && !buf)) return ETSMGR_ERANGE;
    if (g->vlen) memcpy(buf, g->val, g->vlen);
    return 0;
}

/* Inside a group this handle holds the lock and must see its own changes. */
static int tbl_lookup_locked(etsmgr_table *t, const void *key, size_t klen, uint64_t hv,
                             etsmgr_value *out, void *buf, size_t cap)
{
    int r = tbl_op_begin(t, "lookup", false);
    if (r) return r;
    struct tbl_ent *e = NULL;
    uint64_t pos;
    r = tbl_find(t, key, klen, hv, &pos, &e);
    if (r == 1) {
        const struct tbl_ent *hc = &t->found; /* the header tbl_find checked, not e's */
        struct tbl_got g = {.type = hc->type, .vlen = hc->vlen, .val = (const char *)e + tbl_ent_voff(hc)};
        r = tbl_copy_value(&g, out, buf, cap);
    } else if (r == 0) {
        r = ETSMGR_ENOTFOUND;
    }
    return tbl_op_end(t, r); /* ERANGE and ENOTFOUND changed nothing */
}

int etsmgr_table_lookup(etsmgr_table *t, const void *key, size_t klen, etsmgr_value *out,
                        void *buf, size_t cap)
{
    if (!t || !out || !key || klen < 1 || klen > ETSMGR_KEY_MAX) return ETSMGR_EINVAL;
    uint64_t hv = tbl_hash(t->hseed, key, klen);
    if (t->in_group) return tbl_lookup_locked(t, key, klen, hv, out, buf, cap);
    const uint64_t *sp = &t->h->stripe[hv & (TBL_NSTRIPES - 1)];
    struct tbl_wait ws = {0};
    for (;;) {
        uint64_t L, q;
        int r = tbl_layout(t, &L, &ws);
        if (!r) r = tbl_even(t, sp, &q, &ws);
        if (r) return r;
        if (t->r_lay != L) continue; /* tbl_even rolled a dead writer back and remapped: view gone */
        struct tbl_got g;
        int f = tbl_rd_find(t, key, klen, hv, &g);
        int rc = f == RD_FOUND ? tbl_copy_value(&g, out, buf, cap) : 0;
        atomic_thread_fence(memory_order_acquire);
        if (ld(sp) != q || ld(&t->h->layout_seq) != L) continue; /* a change overlapped: again */
        switch (f) {
        case RD_FOUND: return rc;
        case RD_ABSENT: return ETSMGR_ENOTFOUND;
        case RD_REMAP:
            if ((r = tbl_grew(t)) != 0) return r;
            continue;
        default: return ETSMGR_ECORRUPT;
        }
    }
}

/* ------------------------------------------------------------ foreach */

struct tbl_cand {
    uint64_t hv, slot;
};

struct tbl_walk {
    etsmgr_table *t;
    struct tbl_wait ws;
    uint64_t H;         /* every entry with a hash below H has been dealt with */
    unsigned char *tie; /* keys reported with hash == H: [klen][key]... */
    size_t ntie, tiecap;
    struct tbl_cand *c;
    size_t nc, ccap;
    unsigned char key[ETSMGR_KEY_MAX];
    char *val; /* ETSMGR_VALUE_MAX bytes */
};

static int tbl_cand_cmp(const void *a, const void *b)
{
    const struct tbl_cand *x = a, *y = b;
    return x->hv < y->hv ? -1 : x->hv > y->hv;
}

static bool tbl_tied(const struct tbl_walk *w, const unsigned char *key, size_t klen)
{
    for (size_t i = 0; i < w->ntie; i += 1u + w->tie[i])
        if (w->tie[i] == klen && memcmp(w->tie + i + 1, key, klen) == 0) return true;
    return false;
}

static int tbl_reported(struct tbl_walk *w, uint64_t hv, const unsigned char *key, size_t klen)
{
    if (hv != w->H) w->ntie = 0;
    w->H = hv;
    if (w->ntie + 1 + klen > w->tiecap) {
        size_t nc = (w->tiecap + klen + 1) * 2;
        unsigned char *n = realloc(w->tie, nc);
        if (!n) return ETSMGR_ENOMEM;
        w->tie = n;
        w->tiecap = nc;
    }
    w->tie[w->ntie] = (unsigned char)klen;
    memcpy(w->tie + w->ntie + 1, key, klen);
    w->ntie += 1 + klen;
    return 0;
}

/* The hash of the key in slot j under layout L, validated.  1: *hv set;
 * 0: the slot is empty (*s tells EMPTY) or a tombstone; 2: the layout
 * changed; <0: error. */
static int tbl_slot_hash(struct tbl_walk *w, uint64_t L, uint64_t j, uint64_t *s, uint64_t *hv)
{
    etsmgr_table *t = w->t;
    for (;;) {
        int r;
        uint64_t L2, q;
        if ((r = tbl_layout(t, &L2, &w->ws)) != 0) return r;
        if (L2 != L) return 2;
        uint64_t v = ld(&t->r_idx[j]);
        *s = v;
        /* an empty slot is never the work of a change in progress (deletes
         * leave tombstones); a tombstone is, until its key's stripe says
         * the delete is committed */
        if (v == TBL_SLOT_EMPTY) return 0;
        const uint64_t *sp = &t->h->stripe[(v >> 40) & (TBL_NSTRIPES - 1)];
        if ((r = tbl_even(t, sp, &q, &w->ws)) != 0) return r;
        if (t->r_lay != L) continue; /* remapped by a rollback: r_idx is stale */
        if (ld(&t->r_idx[j]) != v) continue;
        if (tbl_tomb(v)) {
            atomic_thread_fence(memory_order_acquire);
            if (ld(sp) != q || ld(&t->h->layout_seq) != L) continue;
            return 0;
        }
        struct tbl_got g;
        int f = tbl_rd_entry(t, (v & TBL_OFF_MASK) << 3, &g);
        uint64_t h = f == RD_FOUND ? tbl_hash(t->hseed, g.key, g.klen) : 0;
        atomic_thread_fence(memory_order_acquire);
        if (ld(sp) != q || ld(&t->h->layout_seq) != L) continue;
        if (f == RD_REMAP) {
            if ((r = tbl_grew(t)) != 0) return r;
            continue;
        }
        if (f != RD_FOUND || tbl_tag(h) != v >> 40) return ETSMGR_ECORRUPT;
        *hv = h;
        return 1;
    }
}

/* Collect the candidates of the run that starts at home b: every entry
 * whose home lies in [b, end), end being the first empty slot from b on.
 * *end_abs: end, counted past the table's end when the run wraps.
 * 1: done; 2: the layout changed; <0: error. */
static int tbl_collect(struct tbl_walk *w, uint64_t L, uint64_t b, uint64_t *end_abs)
{
    etsmgr_table *t = w->t;
    uint64_t mask = t->r_mask;
    unsigned shift = t->r_shift;
    w->nc = 0;
    for (uint64_t n = 0; n <= mask; n++) {
        uint64_t j = (b + n) & mask, s = 0, hv = 0;
        int r = tbl_slot_hash(w, L, j, &s, &hv);
        if (r < 0 || r == 2) return r;
        if (r == 0) {
            if (s != TBL_SLOT_EMPTY) continue;
            *end_abs = b + n;
            /* homes past the run's end belong to a later run (only
             * possible for a run that went all the way round) */
            size_t k = 0;
            for (size_t i = 0; i < w->nc; i++) {
                uint64_t home = tbl_home(w->c[i].hv, shift);
                if (home >= b && home < b + n) w->c[k++] = w->c[i];
            }
            w->nc = k;
            return 1;
        }
        if (hv < w->H) continue; /* dealt with already (or a home before b) */
        if (w->nc == w->ccap) {
            size_t nc = w->ccap ? w->ccap * 2 : 64;
            struct tbl_cand *c = realloc(w->c, nc * sizeof *c);
            if (!c) return ETSMGR_ENOMEM;
            w->c = c;
            w->ccap = nc;
        }
        w->c[w->nc++] = (struct tbl_cand){hv, j};
    }
    return ETSMGR_ECORRUPT; /* no empty slot */
}

/* Report candidate c if its key is still in its slot.  0: reported or
 * gone; 2: the layout changed; >0 from cb, <0 error: stop. */
static int tbl_report(struct tbl_walk *w, uint64_t L, const struct tbl_cand *c, etsmgr_foreach_cb cb,
                      void *arg, int *cbr)
{
    etsmgr_table *t = w->t;
    const uint64_t *sp = &t->h->stripe[c->hv & (TBL_NSTRIPES - 1)];
    for (;;) {
        int r;
        uint64_t L2, q;
        if ((r = tbl_layout(t, &L2, &w->ws)) != 0) return r;
        if (L2 != L) return 2;
        if ((r = tbl_even(t, sp, &q, &w->ws)) != 0) return r;
        if (t->r_lay != L) continue; /* remapped by a rollback: r_idx is stale */
        uint64_t s = ld(&t->r_idx[c->slot]);
        struct tbl_got g;
        int f = RD_ABSENT;
        etsmgr_value v = {0};
        if (!tbl_unused(s) && (s >> 40) == tbl_tag(c->hv)) {
            f = tbl_rd_entry(t, (s & TBL_OFF_MASK) << 3, &g);
            if (f == RD_FOUND) {
                memcpy(w->key, g.key, g.klen);
                v.type = (etsmgr_type)g.type;
                if (g.type == ETSMGR_INT) {
                    v.i = (int64_t)ld((const uint64_t *)(const void *)g.val);
                } else {
                    memcpy(w->val, g.val, g.vlen);
                    v.data = w->val;
                    v.len = g.vlen;
                }
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (ld(&t->h->layout_seq) != L) return 2;
        if (ld(sp) != q) continue;
        if (f == RD_REMAP) {
            if ((r = tbl_grew(t)) != 0) return r;
            continue;
        }
        if (f == RD_BAD) return ETSMGR_ECORRUPT;
        /* gone: deleted, or its slot now holds another key */
        if (f == RD_ABSENT || tbl_hash(t->hseed, w->key, g.klen) != c->hv) return 0;
        if (c->hv == w->H && tbl_tied(w, w->key, g.klen)) return 0;
        if ((r = tbl_reported(w, c->hv, w->key, g.klen)) != 0) return r;
        *cbr = cb(w->key, g.klen, &v, arg);
        return 0;
    }
}

static int tbl_walk(struct tbl_walk *w, etsmgr_foreach_cb cb, void *arg)
{
    etsmgr_table *t = w->t;
    for (;;) {
        uint64_t L, end;
        int r = tbl_layout(t, &L, &w->ws);
        if (r) return r;
        r = tbl_collect(w, L, tbl_home(w->H, t->r_shift), &end);
        if (r < 0) return r;
        if (r == 2) continue;
        if (w->nc > 1) qsort(w->c, w->nc, sizeof *w->c, tbl_cand_cmp);
        bool again = false;
        for (size_t i = 0; i < w->nc && !again; i++) {
            int cbr = 0;
            r = tbl_report(w, L, &w->c[i], cb, arg, &cbr);
            if (r < 0) return r;
            if (cbr) return cbr;
            again = r == 2;
        }
        if (again) continue; /* the index was switched: carry on from H in the new one */
        /* the run is done: every home up to end has been dealt with (no
         * entry had its home at the empty slot end when we read it) */
        if (end >= t->r_mask) return 0;
        w->H = (end + 1) << t->r_shift;
        w->ntie = 0;
    }
}

/* Inside a group: the lock is ours, walk the index as it is. */
static int tbl_foreach_locked(etsmgr_table *t, etsmgr_foreach_cb cb, void *arg)
{
    int r = tbl_op_begin(t, "foreach", false);
    if (r) return r;
    for (uint64_t i = 0; i <= t->mask && r == 0; i++) {
        uint64_t s = t->idx[i];
        if (tbl_unused(s)) continue;
        struct tbl_ent hc; /* the header as checked, loaded once (tbl_ent_at) */
        struct tbl_ent *e = tbl_ent_hdr(t, (s & TBL_OFF_MASK) << 3, &hc);
        if (!e) {
            r = ETSMGR_ECORRUPT;
            break;
        }
        const char *vp = (const char *)e + tbl_ent_voff(&hc);
        etsmgr_value v = {.type = (etsmgr_type)hc.type};
        if (hc.type == ETSMGR_INT) {
            v.i = *(const int64_t *)(const void *)vp;
        } else {
            v.data = vp;
            v.len = hc.vlen;
        }
        r = cb(tbl_ent_key(e), hc.klen, &v, arg);
    }
    int rr = tbl_op_end(t, 0); /* the callback's value is not a failure to roll back */
    return r ? r : rr;
}

int tbl_rd_wait_even(etsmgr_table *t, const uint64_t *w, uint64_t *out, int64_t ws[2])
{
    struct tbl_wait s = {ws[0], ws[1] != 0};
    int r = tbl_even(t, w, out, &s);
    ws[0] = s.t0;
    ws[1] = s.asked;
    return r;
}

int etsmgr_table_foreach(etsmgr_table *t, etsmgr_foreach_cb cb, void *arg)
{
    if (t && cb && t->ordered) return tbl_ord_foreach(t, cb, arg); /* key order: table_ordered.c */
    if (!t || !cb) return ETSMGR_EINVAL;
    if (t->in_group) return tbl_foreach_locked(t, cb, arg);
    struct tbl_walk w = {.t = t};
    w.val = malloc(ETSMGR_VALUE_MAX);
    if (!w.val) return ETSMGR_ENOMEM;
    int r = tbl_walk(&w, cb, arg);
    free(w.val);
    free(w.c);
    free(w.tie);
    return r;
}

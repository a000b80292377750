/* SPDX-License-Identifier: Apache-2.0 */
/* table_ordered.c: ordered_set tables, a B+tree over the entries.
 *
 * An ordered table is a set (the hash index finds keys, lock-free, exactly
 * as in table_ops.c/table_read.c) plus a B+tree that holds every entry in
 * bytewise key order (memcmp, a prefix first).  The entries stay where the
 * set puts them; the tree only points at them, so the index, images and
 * the entry blocks are the set's.  (Carving a leaf's entries from an area
 * of its parent's instead, so that they share pages, was measured: a
 * 100-key range at 10M entries touched a fifth of the pages and was no
 * faster, and the areas' free tails cost more bytes per entry than the
 * target leaves room for; what would make ranges in huge tables faster is
 * the entries inside the leaves, in key order: docs/performance.md, "The
 * 10M range, a third pass".  Moving a full leaf's entries into one block
 * in key order when it splits or lends, within the set's heap, was built
 * and measured as well: each move leaves a hole that only a later insert
 * fills, which caps it at about one move per insert, so only part of a
 * leaf lies in order, and 10M ranges were 0 to 3 % faster for 18 % more
 * instructions per insert: docs/performance.md, "a fifth pass".)
 *
 * Nodes are heap blocks (struct ord_node).  A leaf holds up to ORD_CAP
 * slots in key order, each one word like an index slot: the first 3 bytes
 * of the key as a big-endian number (its prefix) << 40 | the entry's
 * offset / 8; and links to the leaves before and after it, so that a walk
 * goes leaf to leaf and asks for all of a leaf's entries (and the next
 * leaf's, into L2 only) at once: their cache misses overlap instead of
 * following each other, as a skiplist's did.  An inner node holds up to ORD_CAP
 * children and, for each child i > 0, a separator: every key under child
 * i - 1 is smaller than separator i, every key under child i is at least
 * that (inner slots: a 4-byte prefix, a child, a separator).  A separator
 * is a key in a small block of its own, made when a leaf splits or lends:
 * the right leaf's first key, or only its first bytes when they already
 * tell the two leaves apart (ord_newsep: no entry read).  So it never
 * dangles when an entry goes, and a delete never has to touch an inner
 * node unless a node goes away.  A search compares prefixes first (a
 * binary search without branches on the data) and reads a key only on a
 * tie.  A full leaf first lends half the difference to a neighbour under
 * the same parent with a third of a node free (the one with more room),
 * and splits only when neither has: random inserts leave leaves about
 * 78 % full, so a small entry costs the tree about 14 bytes, within the
 * issue's 64 bytes per entry with the entry (24) and the index (about 17).
 *
 * Changes: a node changes by building its new image in local memory and
 * writing, through the undo log (tbl_set), every word that differs; the
 * common change, a slot into a leaf with room, writes the words it shifts
 * in place (logged, one a slot) without an image.  A lend logs both leaves' images and the parent's separator.  A split writes the new right node (and a separator
 * block, and for root growth the new root) whole in unreachable space,
 * then makes it reachable with logged writes: the left node's image (its
 * count, its next link), the right neighbour's prev link, the parent's new
 * slot (splitting the parent in turn when full) or the header's root word.
 * A sequential insert at the right end of the tree splits unevenly (the
 * left node keeps everything), so ascending keys fill nodes.  Deletes
 * merge only when a node becomes empty: a leaf that loses its last entry
 * is unlinked from its neighbours and removed from its parent (with the
 * separator of its slot), a parent left with no child goes the same way,
 * and a root with one child is replaced by that child (root shrink).  So
 * nodes never rebalance, and a tree that shrank may be sparse; it stays
 * correct, and every node still holds at least one key.  Freed nodes and
 * separators are freed at commit (tbl_defer_free).  Every step of all of
 * it is a logged write or a write to unreachable space, so the next locker
 * rolls back any prefix of it: nothing is ever half split or half merged.
 * Before it writes, a change checks that its worst case fits the undo log
 * (and the deferred frees) left in its group; ETSMGR_EGROUP otherwise.
 *
 * Readers take no lock: every change of the tree makes ord_seq odd
 * (tbl_touch_ord) until after its commit; a reader copies what it needs (a
 * batch of entries, bounded in bytes) between two even, equal readings of
 * ord_seq and retries otherwise.  The one change that is not the tree's,
 * an integer value written in place (update_counter, an integer over an
 * integer), never moves ord_seq: outside a group it is one store, its own
 * commit point (tbl_set_one), read with one load; inside a group it moves
 * only its key's stripe, as for a set, so the reader checks each integer
 * it copied against that stripe and reads again the few that moved.  So no
 * stream of counter updates makes a walk start over; a stream of inserts
 * or deletes still can (one sequence word for the whole order).  Every
 * offset a reader follows is checked against the mapping first, a node's
 * header is loaded once and checked (ord_node_hdr), node levels must step
 * down by one and the walk is bounded, so a torn read gives a retry, never
 * a fault or a loop.  A walk's batch ends with a
 * leaf, so a walk its callback stops early copies (and waits for) at most
 * a leaf beyond what it delivers; the next batch starts at the next leaf
 * with no descent while ord_seq reads as it did, and otherwise descends to
 * the key after the last one delivered: every entry present throughout is
 * seen exactly once, in order, with a committed value.  Writers are never held
 * up.  docs/design.md, "Ordered tables", has the argument in full. */
#include <stdio.h>
#include <stdlib.h>

#include "table_int.h"

#define ORD_BATCH 128                                     /* entries per batch of a walk */
#define ORD_BUF 16384u                                    /* bytes per batch, at first */
#define ORD_BUF_MAX (ETSMGR_KEY_MAX + ETSMGR_VALUE_MAX) /* enough for any one entry */

#define ORD_CAP 24                 /* slots of a node */
#define ORD_DEPTH 40               /* levels a path may have (a bound for torn reads) */
#define ORD_NMAGIC 0x6f72000000000000ull /* "or" in a node's top bytes */
#define ORD_SMAGIC 0x7370000000000000ull /* "sp": a separator block */
#define ORD_MMASK 0xffff000000000000ull

/* A node.  hdr: ORD_NMAGIC | level << 16 | n (level 0: a leaf).  A leaf's
 * slot is one word, like an index slot: the key's prefix without its last
 * byte (3 bytes) << 40 | the entry's offset / 8; it ends after its slots
 * (ORD_LEAF_SIZE).  An inner node's slot i is a 4-byte prefix, a child and
 * a separator. */
struct ord_node {
    uint64_t hdr;
    uint64_t next, prev; /* leaves: the neighbours in key order (0: none) */
    union {
        uint64_t ls[ORD_CAP]; /* leaf: slots */
        struct {
            uint32_t pfx[ORD_CAP]; /* separator i's prefix (slot 0: none, 0) */
            uint64_t ptr[ORD_CAP]; /* children */
            uint64_t sep[ORD_CAP]; /* separator blocks (slot 0: none, 0) */
        };
    };
};
#define ORD_LEAF_SIZE ((uint64_t)offsetof(struct ord_node, ls) + 8u * ORD_CAP)
#define ORD_INNER_SIZE ((uint64_t)sizeof(struct ord_node))
static inline uint64_t ord_lslot(uint32_t pfx, uint64_t eoff) { return (uint64_t)(pfx >> 8) << 40 | eoff >> 3; }
static inline uint64_t ord_lent(uint64_t slot) { return (slot & TBL_OFF_MASK) << 3; }
_Static_assert(ORD_INNER_SIZE <= TBL_SMALL_MAX, "nodes come from the exact free lists");
_Static_assert(ORD_LEAF_SIZE % 8 == 0, "nodes are words");

unsigned tbl_ord_fill; /* test hook (table.h): slots a node may fill, 2..ORD_CAP; 0: ORD_CAP */

static inline uint64_t ld(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_RELAXED); }
static inline unsigned ord_fill(void)
{
    unsigned f = tbl_ord_fill;
    return f >= 2 && f <= ORD_CAP ? f : ORD_CAP;
}
static inline uint64_t ord_nsize(unsigned level) { return level ? ORD_INNER_SIZE : ORD_LEAF_SIZE; }
static inline uint64_t ord_ssize(size_t klen) { return 8u + tbl_a8(klen); }

uint64_t tbl_ord_head_size(void) { return ORD_LEAF_SIZE; }

/* memcmp order, a prefix first: 8 bytes at a time as big-endian words. */
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
    return c ? (c > 0) - (c < 0) : (al > bl) - (al < bl); /* -1, 0 or 1: ORD_BAD is none of them */
}

/* The first 4 bytes of a key, zero-padded, as a number: prefixes compare
 * like the keys do, except that equal prefixes say nothing. */
static inline uint32_t ord_pfx(const unsigned char *k, size_t kl)
{
    if (kl >= 4) {
        uint32_t w;
        memcpy(&w, k, 4);
        return __builtin_bswap32(w);
    }
    uint32_t p = 0;
    for (size_t i = 0; i < 4; i++) p = p << 8 | (i < kl ? k[i] : 0u);
    return p;
}

/* The node at off, checked to lie below lim, to be a node of the level
 * asked (-1: any) with at most ORD_CAP slots; NULL otherwise.  *hdr: the
 * header word that was checked.  Unvalidated reads: the caller validates
 * by ord_seq or holds the lock; a lock-free reader must then go by *hdr,
 * not load the word again (a node freed and its block reused meanwhile
 * may say anything by then: a count of 65535 would walk it off the node;
 * test ordered_walk/walk_node_header_loaded_once). */
static inline const struct ord_node *ord_node_hdr(etsmgr_table *t, uint64_t off, uint64_t lim, int level, uint64_t *hdr)
{
    if ((off & 7u) || off < TBL_HDR_SIZE || lim < ORD_LEAF_SIZE || off > lim - ORD_LEAF_SIZE) return NULL;
    const struct ord_node *nd = (const struct ord_node *)(const void *)(t->base + off);
    uint64_t h = ld(&nd->hdr), lv = (h >> 16) & 0xffffffffu;
    if ((h & ORD_MMASK) != ORD_NMAGIC || (h & 0xffffu) > ORD_CAP || lv >= ORD_DEPTH) return NULL;
    if (level >= 0 ? lv != (uint64_t)level : false) return NULL;
    if (lv && off > lim - ORD_INNER_SIZE) return NULL;
    *hdr = h;
    return nd;
}
static inline const struct ord_node *ord_node_at(etsmgr_table *t, uint64_t off, uint64_t lim, int level)
{
    uint64_t h;
    return ord_node_hdr(t, off, lim, level, &h);
}
static inline unsigned ord_n(const struct ord_node *nd) { return (unsigned)(ld(&nd->hdr) & 0xffffu); }
static inline unsigned ord_level(const struct ord_node *nd) { return (unsigned)((ld(&nd->hdr) >> 16) & 0xffffu); }

/* The entry at off (in an ordered table: no skiplist links), checked to
 * lie below lim; NULL otherwise.  Its header word is read whole, once:
 * *klen is the key length checked, which a lock-free reader must use
 * rather than load e->klen again (the block may be reused meanwhile; test
 * ordered_walk/compare_entry_header_loaded_once). */
static inline const struct tbl_ent *ord_ent_kl(etsmgr_table *t, uint64_t off, uint64_t lim, size_t *klen)
{
    if ((off & 7u) || off < TBL_HDR_SIZE || lim < 16 || off > lim - 16) return NULL;
    uint64_t w = ld(tbl_word(t, off)), kl = w & 0xffu, ty = (w >> 8) & 0xffu, lk = (w >> 16) & 0xffffu, vl = w >> 32;
    if (!kl || lk || (ty == ETSMGR_INT ? vl != 8 : ty != ETSMGR_BYTES || vl > ETSMGR_VALUE_MAX)) return NULL;
    if (tbl_ent_size(kl, vl) > lim - off) return NULL;
    *klen = (size_t)kl;
    return (const struct tbl_ent *)(const void *)(t->base + off);
}
static inline const struct tbl_ent *ord_ent(etsmgr_table *t, uint64_t off, uint64_t lim)
{
    size_t kl;
    return ord_ent_kl(t, off, lim, &kl);
}

/* A separator block's key (its length in *kl), NULL when malformed. */
static inline const unsigned char *ord_sep(etsmgr_table *t, uint64_t off, uint64_t lim, size_t *kl)
{
    if ((off & 7u) || off < TBL_HDR_SIZE || lim < 16 || off > lim - 16) return NULL;
    uint64_t w = ld(tbl_word(t, off)), l = w & 0xffffu;
    if ((w & ~0xffffull) != ORD_SMAGIC || !l || l > ETSMGR_KEY_MAX || ord_ssize(l) > lim - off) return NULL;
    *kl = (size_t)l;
    return (const unsigned char *)t->base + off + 8;
}

/* The key of slot i (a leaf's entry, an inner node's separator) compared
 * with key: <0, 0, >0; ORD_BAD when the slot is malformed. */
#define ORD_BAD 2
__attribute__((noinline)) /* rare (ties of prefixes): kept out of the searches, which inline */
static int ord_cmp_slot(etsmgr_table *t, const struct ord_node *nd, bool leaf, unsigned i, uint32_t kp,
                        const unsigned char *key, size_t klen, uint64_t lim)
{
    if (leaf) {
        uint64_t s = ld(&nd->ls[i]);
        if ((s >> 40) != kp >> 8) return (s >> 40) < kp >> 8 ? -1 : 1;
        size_t ekl;
        const struct tbl_ent *e = ord_ent_kl(t, ord_lent(s), lim, &ekl);
        if (!e) return ORD_BAD;
        return ord_cmp(tbl_ent_key(e), ekl, key, klen);
    }
    uint32_t p = __atomic_load_n(&nd->pfx[i], __ATOMIC_RELAXED);
    if (p != kp) return p < kp ? -1 : 1;
    size_t sl;
    const unsigned char *s = ord_sep(t, ld(&nd->sep[i]), lim, &sl);
    if (!s) return ORD_BAD;
    return ord_cmp(s, sl, key, klen);
}

/* The child of an inner node of n >= 1 children that key belongs under:
 * the last one whose separator is <= key.  -1: malformed. */
static inline int ord_child(etsmgr_table *t, const struct ord_node *nd, unsigned n, uint32_t kp, const unsigned char *key,
                     size_t klen, uint64_t lim)
{
    /* the first separator whose prefix is not below key's, by a binary
     * search without branches on the data (a compare-and-move a step:
     * a scan's exit, a coin toss for the branch predictor, cost more than
     * the scan); the prefixes of a well-formed node do not decrease, and
     * a torn read still gives a slot of [1, n] */
    unsigned i = 1, len = n > ORD_CAP ? ORD_CAP - 1 : n - 1;
    while (len > 1) {
        unsigned half = len / 2;
        i = __atomic_load_n(&nd->pfx[i + half - 1], __ATOMIC_RELAXED) < kp ? i + half : i;
        len -= half;
    }
    i += len == 1 && __atomic_load_n(&nd->pfx[i], __ATOMIC_RELAXED) < kp;
    /* then the ties: the keys decide */
    for (; i < n && __atomic_load_n(&nd->pfx[i], __ATOMIC_RELAXED) == kp; i++) {
        int c = ord_cmp_slot(t, nd, false, i, kp, key, klen, lim);
        if (c == ORD_BAD) return -1;
        if (c > 0) break;
    }
    return (int)i - 1;
}

/* The first slot of a leaf of n whose key is >= key (gt: > key); n when
 * none; -1: malformed. */
static inline int ord_lpos(etsmgr_table *t, const struct ord_node *nd, unsigned n, uint32_t kp, const unsigned char *key,
                    size_t klen, uint64_t lim, bool gt)
{
    unsigned i = 0, len = n > ORD_CAP ? ORD_CAP : n; /* as in ord_child */
    uint64_t k24 = kp >> 8;
    while (len > 1) {
        unsigned half = len / 2;
        i = (ld(&nd->ls[i + half - 1]) >> 40) < k24 ? i + half : i;
        len -= half;
    }
    i += len == 1 && (ld(&nd->ls[i]) >> 40) < k24;
    for (; i < n && (ld(&nd->ls[i]) >> 40) == k24; i++) {
        int c = ord_cmp_slot(t, nd, true, i, kp, key, klen, lim);
        if (c == ORD_BAD) return -1;
        if (c > 0 || (c == 0 && !gt)) break;
    }
    return (int)i;
}

/* Ask for every line of the node at off (level: its level) at once: a
 * descent is a chain of misses, one per level, and a node's lines would
 * otherwise come one after the other as the scan reaches them.
 * always_inline because a function that only prefetches has no effect
 * GCC must keep: GCC 12 found this one const and deleted every call, so
 * that until 2026-11-30 no descent asked for any node (nor a walk for the
 * leaf after next); inlined, the prefetches are the caller's and stay.
 * Asking for real: 100-key ranges at 1M and 10M entries 17 to 20 % faster,
 * random inserts 11 to 20 % (docs/performance.md, "The 10M range, a third
 * pass"); test ordered/descent_prefetches_compiled. */
__attribute__((always_inline)) static inline void ord_prefetch(etsmgr_table *t, uint64_t off, unsigned level,
                                                               uint64_t lim)
{
    uint64_t size = ord_nsize(level);
    if (!off || off >= lim || size > lim - off) return;
    const char *p = t->base + off;
    for (uint64_t b = 0; b < size; b += 64) __builtin_prefetch(p + b);
    __builtin_prefetch(p + size - 1);
}

/* ------------------------------------------------------------ writers */

/* A root-to-leaf path: node[0] the root, node[d - 1] the leaf; idx[k] the
 * child taken at inner node k, idx[d - 1] the key's position in the leaf
 * (the first slot >= key).  hit: the leaf's slot holds key. */
struct ord_path {
    int d;
    bool hit;
    bool rightmost; /* every step took the last child */
    uint64_t node[ORD_DEPTH];
    int idx[ORD_DEPTH];
};

static inline struct ord_node *ord_w(etsmgr_table *t, uint64_t off)
{
    return (struct ord_node *)(void *)(t->base + off);
}

/* Under the lock: the path to key (p->d == 0: the tree is empty). */
static int ord_wpath(etsmgr_table *t, const unsigned char *key, size_t klen, struct ord_path *p)
{
    uint64_t x = t->h->ord_head, lim = t->top;
    uint32_t kp = ord_pfx(key, klen);
    p->d = 0;
    p->hit = false;
    p->rightmost = true;
    if (!x) return 0;
    int level = -1;
    for (;;) {
        uint64_t hd;
        const struct ord_node *nd = ord_node_hdr(t, x, lim, level, &hd);
        if (!nd || p->d >= ORD_DEPTH) return ETSMGR_ECORRUPT;
        unsigned n = (unsigned)(hd & 0xffffu), lv = (unsigned)((hd >> 16) & 0xffffu);
        if (p->d == 0 && lv >= ORD_DEPTH - 1) return ETSMGR_ECORRUPT;
        p->node[p->d] = x;
        if (lv == 0) {
            if (n >= ord_fill() && p->d > 0) { /* an insert here lends to a neighbour or splits: ask for them */
                const struct ord_node *par = ord_w(t, p->node[p->d - 1]);
                int c = p->idx[p->d - 1];
                if (c > 0) ord_prefetch(t, par->ptr[c - 1], 0, lim);
                if (c + 1 < ORD_CAP && c + 1 < (int)ord_n(par)) ord_prefetch(t, par->ptr[c + 1], 0, lim);
            }
            int i = ord_lpos(t, nd, n, kp, key, klen, lim, false);
            if (i < 0) return ETSMGR_ECORRUPT;
            p->idx[p->d++] = i;
            if (i < (int)n) {
                int c = ord_cmp_slot(t, nd, true, (unsigned)i, kp, key, klen, lim);
                p->hit = c == 0;
            }
            if (nd->next) p->rightmost = false;
            return 0;
        }
        if (n == 0) return ETSMGR_ECORRUPT;
        int c = ord_child(t, nd, n, kp, key, klen, lim);
        if (c < 0) return ETSMGR_ECORRUPT;
        if (c != (int)n - 1) p->rightmost = false;
        p->idx[p->d++] = c;
        x = nd->ptr[c];
        level = (int)lv - 1;
        ord_prefetch(t, x, (unsigned)level, lim);
    }
}

/* A private image of the node at off, to change and ord_put back, of the
 * level its path says (0: a leaf; its size in *size).  The header is
 * checked again for that level, so that the copy is never an inner node's
 * size taken from a leaf's block (a scribbler need not take the lock);
 * the caller still checks the copy's slot count.  0 or ETSMGR_ECORRUPT. */
static int ord_get(etsmgr_table *t, uint64_t off, unsigned level, struct ord_node *img, uint64_t *size)
{
    uint64_t h;
    if (!ord_node_hdr(t, off, t->top, (int)level, &h)) return ETSMGR_ECORRUPT;
    *size = ord_nsize(level);
    memcpy(img, ord_w(t, off), *size);
    return 0;
}

/* Write bytes [from, to) of img (rounded out to words) over the node at
 * off, logging only the words that differ. */
static void ord_put_part(etsmgr_table *t, uint64_t off, const struct ord_node *img, uint64_t from, uint64_t to)
{
    const uint64_t *nw = (const uint64_t *)(const void *)img;
    for (uint64_t w = from / 8; w < (to + 7) / 8; w++)
        if (*tbl_word(t, off + 8 * w) != nw[w]) tbl_set(t, off + 8 * w, nw[w]);
}
static void ord_put(etsmgr_table *t, uint64_t off, const struct ord_node *img, uint64_t bytes)
{
    ord_put_part(t, off, img, 0, bytes);
}

static int ord_bytes(etsmgr_table *t, int64_t delta)
{
    if (delta) tbl_set(t, TBL_HOFF(live_bytes), t->h->live_bytes + (uint64_t)delta);
    return 0;
}

/* Undo records and deferred frees a change may take, at worst: a node's
 * image (1.5 words a leaf slot, 2.5 an inner one, the header, the links),
 * an allocation (4), a neighbour's link; per level. */
#define ORD_W_LEAF (4 + (3 * ORD_CAP + 1) / 2)
#define ORD_W_INNER (2 + (5 * ORD_CAP + 1) / 2)
#define ORD_W_ALLOC 4
static int ord_room(etsmgr_table *t, uint64_t words, int frees)
{
    if (t->un + words + 3u * (uint64_t)(t->npend + frees + 4) > TBL_UNDO_MAX || t->npend + frees + 4 > TBL_PEND_MAX)
        return ETSMGR_EGROUP;
    return 0;
}

/* Allocate a node block and write its header (the rest: the caller's). */
static int ord_alloc(etsmgr_table *t, unsigned level, uint64_t *off, int64_t *db)
{
    int r = tbl_alloc(t, ord_nsize(level), off);
    if (r) return r;
    *db += (int64_t)ord_nsize(level);
    memset(t->base + *off, 0, ord_nsize(level));
    ord_w(t, *off)->hdr = ORD_NMAGIC | (uint64_t)level << 16;
    return 0;
}

static inline void ord_set_n(struct ord_node *nd, unsigned n)
{
    nd->hdr = (nd->hdr & ~0xffffull) | n;
}

/* Slot j of a node image: a leaf's slot word c, or an inner node's (p, c, s). */
static inline void ord_put_slot(struct ord_node *nd, bool leaf, unsigned j, uint32_t p, uint64_t c, uint64_t s)
{
    if (leaf) {
        nd->ls[j] = c;
        return;
    }
    nd->pfx[j] = p, nd->ptr[j] = c, nd->sep[j] = s;
}

/* A new separator block (*soff, its prefix *pfx) between two neighbour
 * leaf slots (slot words lslot < rslot), written while unreachable.  Any
 * key s with lkey < s <= rkey separates them.  When the slots' 3-byte
 * prefixes differ, rkey's prefix without its trailing zero bytes is one
 * (a prefix of rkey, so <= it; and were lkey >= it, lkey's own prefix
 * would be at least rkey's), found without reading an entry: the miss
 * that the copy of rkey cost on every split and lend.  Otherwise it is a
 * copy of rkey. */
static int ord_newsep(etsmgr_table *t, uint64_t lslot, uint64_t rslot, uint64_t *soff, uint32_t *pfx, int64_t *db)
{
    uint64_t rp = rslot >> 40;
    unsigned char pk[3] = {(unsigned char)(rp >> 16), (unsigned char)(rp >> 8), (unsigned char)rp};
    const unsigned char *k = pk;
    size_t kl = 3;
    const struct tbl_ent *e = NULL;
    if ((lslot >> 40) < rp) {
        while (!pk[kl - 1]) kl--; /* rp > 0: one byte at least is not zero */
    } else {
        if (!(e = ord_ent_kl(t, ord_lent(rslot), t->top, &kl))) return ETSMGR_ECORRUPT;
    }
    int r = tbl_alloc(t, ord_ssize(kl), soff);
    if (r) return r;
    *db += (int64_t)ord_ssize(kl);
    if (e) k = tbl_ent_key((const struct tbl_ent *)(const void *)(t->base + ord_lent(rslot))); /* the mapping may have moved */
    uint64_t *sw = tbl_word(t, *soff);
    sw[ord_ssize(kl) / 8 - 1] = 0;
    sw[0] = ORD_SMAGIC | kl;
    memcpy(sw + 1, k, kl);
    *pfx = ord_pfx(k, kl);
    return 0;
}

/* A full leaf (the node at level k of p, its n1 = fill + 1 slot words
 * with the new one in C) that a neighbour under the same parent has room
 * for: half the difference moves over, the separator between the two
 * becomes a new copy of the right one's first key (the old one is freed),
 * and no node is added.  Random inserts then fill leaves to about 80 %
 * instead of the 70 % of splits alone (the bytes per entry).  1: done;
 * 0: no neighbour has room (at least 2 free slots); <0: error. */
static int ord_lend(etsmgr_table *t, struct ord_path *p, int k, const uint64_t *C, unsigned n1, int64_t *db)
{
    unsigned fill = ord_fill();
    uint64_t poff = p->node[k - 1], off = p->node[k];
    unsigned c = (unsigned)p->idx[k - 1];
    struct ord_node pimg, img, simg;
    memcpy(&pimg, ord_w(t, poff), ORD_INNER_SIZE);
    /* the copy's count, not the one the descent checked: a scribbler's 25
     * would take child and separator 24 of arrays of 24 (test
     * ordered_review/hostile_lend_parent_count) */
    unsigned pn = ord_n(&pimg);
    if (c >= pn || pn > ORD_CAP) return ETSMGR_ECORRUPT;
    /* the neighbour with more room, and only when it has a third of a
     * node free: a lend of one or two slots left both leaves full again
     * within an insert or two, and a lend costs as much as a split (two
     * leaves and the parent rewritten): 2670 -> 2380 instructions per
     * random insert, 54.4 -> 55.1 bytes per entry at 1M */
    uint64_t rh = 0, lh = 0; /* the neighbours' headers, loaded once and checked */
    const struct ord_node *rs = c + 1 < pn ? ord_node_hdr(t, pimg.ptr[c + 1], t->top, 0, &rh) : NULL;
    const struct ord_node *ls = c > 0 ? ord_node_hdr(t, pimg.ptr[c - 1], t->top, 0, &lh) : NULL;
    unsigned rn = rs ? (unsigned)(rh & 0xffffu) : fill, ln = ls ? (unsigned)(lh & 0xffffu) : fill;
    unsigned rroom = rn < fill ? fill - rn : 0, lroom = ln < fill ? fill - ln : 0;
    bool right = rroom >= lroom;
    if ((right ? rroom : lroom) < (fill / 3 > 2 ? fill / 3 : 2)) return 0;
    uint64_t soff = right ? pimg.ptr[c + 1] : pimg.ptr[c - 1];
    unsigned sn_n = right ? rn : ln, q = (n1 - sn_n) / 2; /* slots that move */
    if (sn_n + 2 > fill) return ETSMGR_ECORRUPT; /* its room says not: a guard for the shifts below */
    unsigned sepi = right ? c + 1 : c;              /* the separator between the two */
    size_t osl;
    uint64_t osep = pimg.sep[sepi];
    if (!ord_sep(t, osep, t->top, &osl)) return ETSMGR_ECORRUPT;
    uint64_t nsep;
    uint32_t npf;
    unsigned fr = right ? n1 - q : q; /* the first slot of the right one */
    int r = ord_newsep(t, C[fr - 1], C[fr], &nsep, &npf, db); /* may move the mapping */
    if (r) return r;
    memcpy(&img, ord_w(t, off), ORD_LEAF_SIZE);
    memcpy(&simg, ord_w(t, soff), ORD_LEAF_SIZE);
    if (right) { /* this leaf keeps C[0, n1 - q); the right one gets C[n1 - q, n1) before its own */
        for (unsigned j = 0; j < n1 - q; j++) img.ls[j] = C[j];
        ord_set_n(&img, n1 - q);
        for (unsigned j = sn_n; j-- > 0;) simg.ls[j + q] = simg.ls[j];
        for (unsigned j = 0; j < q; j++) simg.ls[j] = C[n1 - q + j];
    } else { /* the left one gets C[0, q) after its own; this leaf keeps C[q, n1) */
        for (unsigned j = 0; j < q; j++) simg.ls[sn_n + j] = C[j];
        for (unsigned j = q; j < n1; j++) img.ls[j - q] = C[j];
        ord_set_n(&img, n1 - q);
    }
    ord_set_n(&simg, sn_n + q);
    tbl_cp(t);
    ord_put(t, off, &img, ORD_LEAF_SIZE);
    ord_put(t, soff, &simg, ORD_LEAF_SIZE);
    pimg.pfx[sepi] = npf; /* the parent's two words that change, not its 51 compared */
    pimg.sep[sepi] = nsep;
    uint64_t pf = offsetof(struct ord_node, pfx) + 4u * sepi, sp = offsetof(struct ord_node, sep) + 8u * sepi;
    ord_put_part(t, poff, &pimg, pf, pf + 4);
    ord_put_part(t, poff, &pimg, sp, sp + 8);
    *db -= (int64_t)ord_ssize(osl);
    if ((r = tbl_defer_free(t, osep, ord_ssize(osl))) != 0) return r;
    return 1;
}

/* Insert (pfx, ptr, sep) as slot i of the node at level k of path p,
 * splitting it (and so on up) when full.  For a leaf sep is unused. */
static int ord_ins(etsmgr_table *t, struct ord_path *p, int k, unsigned i, uint32_t pf, uint64_t pt, uint64_t sp,
                   int64_t *db)
{
    uint64_t off = p->node[k], size;
    struct ord_node *w = ord_w(t, off);
    uint64_t h = w->hdr;
    if (!((h >> 16) & 0xffffu) && (h & 0xffffu) + 1 <= ord_fill()) {
        /* a leaf with room, the common case: the slots after i move up
         * one (the last first, each word logged as it is overwritten),
         * then the new slot and the count; no image to build and compare */
        unsigned n = (unsigned)(h & 0xffffu);
        if (i > n) return ETSMGR_ECORRUPT;
        uint64_t ls = off + offsetof(struct ord_node, ls);
        for (unsigned j = n; j > i; j--) tbl_set(t, ls + 8u * j, w->ls[j - 1]);
        tbl_set(t, ls + 8u * i, pt);
        tbl_set(t, off, h + 1);
        return 0;
    }
    struct ord_node img;
    unsigned level = (unsigned)(p->d - 1 - k);
    if (ord_get(t, off, level, &img, &size)) return ETSMGR_ECORRUPT;
    bool leaf = level == 0;
    unsigned n = ord_n(&img);
    if (n > ORD_CAP || i > n) return ETSMGR_ECORRUPT; /* the copy's header, not the one checked: a scribbler's */
    uint32_t P[ORD_CAP + 1];
    uint64_t C[ORD_CAP + 1], S[ORD_CAP + 1];
    /* leaves: C holds the slot words, P and S are unused */
    for (unsigned j = 0, s = 0; j <= n; j++) {
        if (j == i) {
            P[j] = pf, C[j] = pt, S[j] = sp;
            continue;
        }
        if (leaf)
            P[j] = 0, C[j] = img.ls[s], S[j] = 0;
        else
            P[j] = img.pfx[s], C[j] = img.ptr[s], S[j] = img.sep[s];
        s++;
    }
    if (n + 1 <= ord_fill()) {
        for (unsigned j = i; j <= n; j++) ord_put_slot(&img, leaf, j, P[j], C[j], S[j]);
        ord_set_n(&img, n + 1);
        ord_put(t, off, &img, size);
        return 0;
    }
    int r;
    if (leaf && k > 0 && !(p->rightmost && i == n)) { /* a neighbour with room takes some */
        if ((r = ord_lend(t, p, k, C, n + 1, db)) != 0) return r < 0 ? r : 0;
    }
    /* split: the left keeps [0, m), a new right node takes [m, n]; at the
     * right end of the tree the left keeps all it had (ascending keys) */
    unsigned m = p->rightmost && i == n ? n : (n + 1) / 2;
    uint64_t roff, soff = 0;
    r = ord_alloc(t, level, &roff, db);
    if (r) return r;
    uint32_t upp = P[m];
    uint64_t ups = S[m];
    if (leaf) { /* the separator: a copy of the right leaf's first key */
        if ((r = ord_newsep(t, C[m - 1], C[m], &soff, &upp, db)) != 0) return r;
        ups = soff;
    }
    struct ord_node *rn = ord_w(t, roff); /* unreachable yet: written freely */
    for (unsigned j = m; j <= n; j++) ord_put_slot(rn, leaf, j - m, P[j], C[j], S[j]);
    if (!leaf) rn->pfx[0] = 0, rn->sep[0] = 0;
    ord_set_n(rn, n + 1 - m);
    if (leaf) {
        rn->next = img.next;
        rn->prev = off;
    }
    tbl_cp(t);
    for (unsigned j = i; j < m; j++) ord_put_slot(&img, leaf, j, P[j], C[j], S[j]);
    ord_set_n(&img, m);
    if (leaf) {
        uint64_t nx = img.next;
        img.next = roff;
        if (nx) {
            if (!ord_node_at(t, nx, t->top, 0)) return ETSMGR_ECORRUPT;
            tbl_set(t, nx + offsetof(struct ord_node, prev), roff);
        }
    }
    ord_put(t, off, &img, size);
    if (k > 0) return ord_ins(t, p, k - 1, (unsigned)p->idx[k - 1] + 1, upp, roff, ups, db);
    /* root growth: a new root over the two */
    uint64_t nr;
    if ((r = ord_alloc(t, level + 1, &nr, db)) != 0) return r;
    struct ord_node *root = ord_w(t, nr);
    root->ptr[0] = off;
    root->ptr[1] = roff;
    root->pfx[1] = upp;
    root->sep[1] = ups;
    ord_set_n(root, 2);
    tbl_cp(t);
    tbl_set(t, TBL_HOFF(ord_head), nr);
    return 0;
}

/* The path of the insert in progress on this thread, found before the
 * index probe (tbl_ord_pre) so that the probe's cache miss overlaps the
 * descent's instead of following them.  Valid only from tbl_ord_pre to the
 * tbl_ord_insert or tbl_ord_pre_done of the same call, under the same
 * lock: nothing between them changes the tree (a rehash or the heap's
 * growth moves no node; offsets survive a remap). */
static _Thread_local struct {
    bool ok;
    etsmgr_table *t;
    const void *key;
    size_t klen;
    struct ord_path p;
} ord_pre;

void tbl_ord_pre(etsmgr_table *t, const void *key, size_t klen, uint64_t hv)
{
    __builtin_prefetch(&t->idx[tbl_home(hv, t->shift)]);
    ord_pre.ok = ord_wpath(t, key, klen, &ord_pre.p) == 0;
    ord_pre.t = t;
    ord_pre.key = key;
    ord_pre.klen = klen;
}

void tbl_ord_pre_done(void) { ord_pre.ok = false; }

int tbl_ord_insert(etsmgr_table *t, const void *key, size_t klen, uint64_t eoff)
{
    struct ord_path own, *pp = &ord_pre.p; /* the path found by tbl_ord_pre, not copied: 0.5 KB */
    int64_t db = 0;
    int r = 0;
    if (ord_pre.ok && ord_pre.t == t && ord_pre.key == key && ord_pre.klen == klen) {
        ord_pre.ok = false;
    } else if ((r = ord_wpath(t, key, klen, pp = &own)) != 0) {
        return r;
    }
    struct ord_path *const p = pp;
    if (p->hit) return ETSMGR_ECORRUPT; /* the index said absent */
    /* the worst case: every node on the path splits, and the root grows */
    if ((r = ord_room(t, 2 * ORD_W_LEAF + ORD_W_ALLOC * 2 + (uint64_t)p->d * (ORD_W_INNER + ORD_W_ALLOC) + 8, 1)) != 0)
        return r;
    uint32_t kp = ord_pfx(key, klen);
    tbl_touch_ord(t);
    if (p->d == 0) { /* the first key: a root leaf */
        uint64_t off;
        if ((r = ord_alloc(t, 0, &off, &db)) != 0) return r;
        struct ord_node *nd = ord_w(t, off);
        nd->ls[0] = ord_lslot(kp, eoff);
        ord_set_n(nd, 1);
        tbl_cp(t);
        tbl_set(t, TBL_HOFF(ord_head), off);
    } else if ((r = ord_ins(t, p, p->d - 1, (unsigned)p->idx[p->d - 1], 0, ord_lslot(kp, eoff), 0, &db)) != 0) {
        return r;
    }
    return ord_bytes(t, db);
}

int tbl_ord_replace(etsmgr_table *t, const void *key, size_t klen, uint64_t eoff)
{
    struct ord_path p;
    int r = ord_wpath(t, key, klen, &p);
    if (r) return r;
    if (!p.hit) return ETSMGR_ECORRUPT;
    tbl_touch_ord(t);
    tbl_set(t, p.node[p.d - 1] + offsetof(struct ord_node, ls) + 8u * (unsigned)p.idx[p.d - 1],
            ord_lslot(ord_pfx(key, klen), eoff));
    return 0;
}

/* Remove slot i of the node at level k of path p; a node left empty (not
 * the root) goes too, from its parent, and so on up. */
static int ord_del(etsmgr_table *t, struct ord_path *p, int k, unsigned i, int64_t *db)
{
    uint64_t off = p->node[k], size;
    struct ord_node img;
    unsigned level = (unsigned)(p->d - 1 - k);
    if (ord_get(t, off, level, &img, &size)) return ETSMGR_ECORRUPT;
    bool leaf = level == 0;
    unsigned n = ord_n(&img);
    if (i >= n || n > ORD_CAP) return ETSMGR_ECORRUPT;
    if (n > 1 || k == 0) {
        int r;
        if (!leaf) { /* the separator of the slot that goes (of slot 1 when slot 0 goes) */
            unsigned s = i ? i : 1;
            if (s < n) {
                size_t sl;
                if (!ord_sep(t, img.sep[s], t->top, &sl)) return ETSMGR_ECORRUPT;
                if ((r = tbl_defer_free(t, img.sep[s], ord_ssize(sl))) != 0) return r;
                *db -= (int64_t)ord_ssize(sl);
            }
        }
        for (unsigned j = i; j + 1 < n; j++) {
            if (leaf)
                img.ls[j] = img.ls[j + 1];
            else
                img.pfx[j] = img.pfx[j + 1], img.ptr[j] = img.ptr[j + 1], img.sep[j] = img.sep[j + 1];
        }
        if (!leaf) img.pfx[0] = 0, img.sep[0] = 0;
        ord_set_n(&img, n - 1);
        ord_put(t, off, &img, size);
        if (n - 1 == 0 && !leaf) { /* the root lost its last child: the tree is empty */
            tbl_set(t, TBL_HOFF(ord_head), 0);
            *db -= (int64_t)size;
            return tbl_defer_free(t, off, size);
        }
        return 0;
    }
    /* the node's last slot: the node goes */
    if (leaf) {
        uint64_t pv = img.prev, nx = img.next;
        if (pv) {
            if (!ord_node_at(t, pv, t->top, 0)) return ETSMGR_ECORRUPT;
            tbl_set(t, pv + offsetof(struct ord_node, next), nx);
        }
        if (nx) {
            if (!ord_node_at(t, nx, t->top, 0)) return ETSMGR_ECORRUPT;
            tbl_set(t, nx + offsetof(struct ord_node, prev), pv);
        }
    }
    int r = tbl_defer_free(t, off, size);
    if (r) return r;
    *db -= (int64_t)size;
    return ord_del(t, p, k - 1, (unsigned)p->idx[k - 1], db);
}

int tbl_ord_remove(etsmgr_table *t, const void *key, size_t klen)
{
    struct ord_path p;
    int64_t db = 0;
    int r = ord_wpath(t, key, klen, &p);
    if (r) return r;
    if (!p.hit) return ETSMGR_ECORRUPT;
    if ((r = ord_room(t, ORD_W_LEAF + (uint64_t)p.d * (ORD_W_INNER + 4) + 8, 3 * p.d + 2)) != 0) return r;
    tbl_touch_ord(t);
    if ((r = ord_del(t, &p, p.d - 1, (unsigned)p.idx[p.d - 1], &db)) != 0) return r;
    /* root shrink: a root with one child gives way to it */
    for (int steps = 0; steps < ORD_DEPTH; steps++) {
        uint64_t root = t->h->ord_head, hd;
        const struct ord_node *nd = root ? ord_node_hdr(t, root, t->top, -1, &hd) : NULL;
        if (!nd || !((hd >> 16) & 0xffffu) || (hd & 0xffffu) != 1) break; /* by the header checked */
        tbl_set(t, TBL_HOFF(ord_head), nd->ptr[0]);
        if ((r = tbl_defer_free(t, root, ORD_INNER_SIZE)) != 0) return r;
        db -= (int64_t)ORD_INNER_SIZE;
    }
    return ord_bytes(t, db);
}

/* ------------------------------------------------------------ verify */

struct ord_vfy {
    etsmgr_table *t;
    struct tbl_blk *blk;
    uint64_t *nblk, maxblk, *bytes, entries, leaf_prev;
    const struct tbl_ent *last; /* the previous entry in key order */
    int depth;                  /* the leaves' depth, once known (-1) */
    char *why;
    size_t whylen;
};

static int ord_bad(struct ord_vfy *v, const char *what, uint64_t at)
{
    return tbl_say(v->why, v->whylen, ETSMGR_ECORRUPT, "ordered index: %s (node %llu)", what, (unsigned long long)at);
}

static int ord_vblk(struct ord_vfy *v, uint64_t off, uint64_t size)
{
    if (*v->nblk >= v->maxblk) return ord_bad(v, "too many blocks", off);
    v->blk[(*v->nblk)++] = (struct tbl_blk){off, size};
    *v->bytes += size;
    return 0;
}

/* The subtree at off, its keys in [lo, hi) (NULL: open). */
static int ord_vnode(struct ord_vfy *v, uint64_t off, int level, int d, const unsigned char *lo, size_t lol,
                     const unsigned char *hi, size_t hil)
{
    etsmgr_table *t = v->t;
    uint64_t lim = t->top;
    const struct ord_node *nd = ord_node_at(t, off, lim, level);
    if (!nd) return ord_bad(v, "malformed node", off);
    unsigned n = ord_n(nd), lv = ord_level(nd);
    int r = ord_vblk(v, off, ord_nsize(lv));
    if (r) return r;
    if (n == 0 && !(d == 0 && lv == 0)) return ord_bad(v, "empty node below the root", off);
    if (d == 0 && lv > 0 && n < 2) return ord_bad(v, "root with one child", off);
    if (lv == 0) {
        if (v->depth >= 0 && v->depth != d) return ord_bad(v, "leaves at different depths", off);
        v->depth = d;
        if (nd->prev != v->leaf_prev) return ord_bad(v, "leaf's prev link is not the leaf before", off);
        if (v->leaf_prev && ord_w(t, v->leaf_prev)->next != off)
            return ord_bad(v, "leaf's next link is not the leaf after", v->leaf_prev);
        v->leaf_prev = off;
        for (unsigned i = 0; i < n; i++) {
            const struct tbl_ent *e = ord_ent(t, ord_lent(nd->ls[i]), lim);
            if (!e) return ord_bad(v, "slot's entry malformed", off);
            const unsigned char *k = tbl_ent_key(e);
            if (nd->ls[i] != ord_lslot(ord_pfx(k, e->klen), ord_lent(nd->ls[i])))
                return ord_bad(v, "slot's prefix is not its key's", off);
            if (v->last && ord_cmp(tbl_ent_key(v->last), v->last->klen, k, e->klen) >= 0)
                return ord_bad(v, "keys not strictly increasing", off);
            if ((lo && ord_cmp(k, e->klen, lo, lol) < 0) || (hi && ord_cmp(k, e->klen, hi, hil) >= 0))
                return ord_bad(v, "key outside its separators", off);
            struct tbl_ent *f = NULL;
            uint64_t pos;
            uint64_t hv = tbl_hash(t->hseed, k, e->klen);
            if (tbl_find(t, k, e->klen, hv, &pos, &f) != 1 || (const struct tbl_ent *)f != e)
                return ord_bad(v, "slot's entry is not the indexed one", off);
            if (++v->entries > t->h->count) return ord_bad(v, "more slots than entries", off);
            v->last = e;
        }
        return 0;
    }
    if (d + 1 >= ORD_DEPTH) return ord_bad(v, "too deep", off);
    for (unsigned i = 0; i < n; i++) {
        const unsigned char *a = lo, *b = hi;
        size_t al = lol, bl = hil;
        if (i > 0) {
            if (!(a = ord_sep(t, nd->sep[i], lim, &al))) return ord_bad(v, "separator malformed", off);
            if (nd->pfx[i] != ord_pfx(a, al)) return ord_bad(v, "separator's prefix is not its key's", off);
            if ((r = ord_vblk(v, nd->sep[i], ord_ssize(al))) != 0) return r;
            if ((lo && ord_cmp(a, al, lo, lol) <= 0) || (hi && ord_cmp(a, al, hi, hil) >= 0))
                return ord_bad(v, "separator outside its parent's", off);
        } else if (nd->sep[0] || nd->pfx[0]) {
            return ord_bad(v, "slot 0 has a separator", off);
        }
        if (i + 1 < n) {
            if (!(b = ord_sep(t, nd->sep[i + 1], lim, &bl))) return ord_bad(v, "separator malformed", off);
            if (i > 0 && ord_cmp(a, al, b, bl) >= 0) return ord_bad(v, "separators not increasing", off);
        }
        if ((r = ord_vnode(v, nd->ptr[i], (int)lv - 1, d + 1, a, al, b, bl)) != 0) return r;
    }
    return 0;
}

int tbl_ord_verify(etsmgr_table *t, struct tbl_blk *blk, uint64_t *nblk, uint64_t maxblk, uint64_t *bytes,
                   char *why, size_t whylen)
{
    struct ord_vfy v = {.t = t, .blk = blk, .nblk = nblk, .maxblk = maxblk, .bytes = bytes, .depth = -1,
                        .why = why, .whylen = whylen};
    uint64_t root = t->h->ord_head;
    int r = root ? ord_vnode(&v, root, -1, 0, NULL, 0, NULL, 0) : 0;
    if (r) return r;
    if (v.leaf_prev && ord_w(t, v.leaf_prev)->next) return ord_bad(&v, "last leaf has a next link", v.leaf_prev);
    if (v.entries != t->h->count) return ord_bad(&v, "fewer slots than entries", v.entries);
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
    /* a forward batch ends with a leaf: the next batch starts at the leaf
     * after it (next), with no descent, if ord_seq still reads seq, the
     * value the batch was validated with (the tree is the same bytes) */
    uint64_t next, seq;
};

/* Copy the entry at n (checked by ord_ent) into b.  0: no room (not copied; with b->n == 0 the
 * buffer must grow); 1: copied; -1: malformed. */
static int ord_copy(etsmgr_table *t, uint64_t n, struct ord_batch *b)
{
    const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(t->base + n);
    struct tbl_ent c;
    memcpy(&c, e, sizeof c);
    /* read again since ord_ent checked it: a block reused meanwhile must
     * not size a copy that runs past the mapping (the try is retried) */
    if (c.klen == 0 || tbl_ent_size(c.klen, c.vlen) > t->limit - n) return -1;
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
            r->stripe = (uint32_t)(tbl_hash(t->hseed, tbl_ent_key(e), c.klen) & (TBL_NSTRIPES - 1));
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

enum { ORD_GE, ORD_GT, ORD_LT, ORD_LAST };

/* Ask for the entries of slots [from, n) of leaf nd: each one's first 24
 * bytes (a small entry whole), which straddle two cache lines for a
 * quarter of them (entries are 8-byte aligned); asking only for the first
 * line left that quarter's second line a miss waited for, one after the
 * other, as the copy reached each (a 100-key range at 1M entries took
 * 5.9 us against 4.1 with both lines asked for).  near: into the L1 cache,
 * for the leaf being copied; otherwise into the outer caches only
 * (prefetcht1), for the leaf after it: asked for into L1 a leaf ahead, its
 * 40 or so lines took the L1's few outstanding-miss slots that the leaf
 * being copied was waiting on (that ask did not even bring them in: only
 * the second one, at the leaf's own start, counted).  Into L2 a leaf ahead
 * and into L1 at the leaf's start, 100-key ranges at 1M and 10M entries
 * took 5 to 11 % less time (docs/performance.md, "The 10M range, a fourth
 * pass").  always_inline so that near is a constant in each call. */
__attribute__((always_inline)) static inline void ord_prefetch_ents(etsmgr_table *t, const struct ord_node *nd,
                                                                    unsigned from, unsigned n, uint64_t lim,
                                                                    bool near)
{
    for (unsigned j = from; j < n && j < ORD_CAP; j++) {
        uint64_t eo = ord_lent(ld(&nd->ls[j]));
        if (eo < lim && lim - eo >= 24) {
            if (near) {
                __builtin_prefetch(t->base + eo, 0, 3);
                __builtin_prefetch(t->base + eo + 23, 0, 3);
            } else {
                __builtin_prefetch(t->base + eo, 0, 2);
                __builtin_prefetch(t->base + eo + 23, 0, 2);
            }
        }
    }
}

/* Whether the entry just copied into b stands where mode asked: after the
 * one copied before it, and after (ORD_GT), at or after (ORD_GE) or before
 * (ORD_LT) key.  Bounding the hops of one try is not enough: a scribbled
 * leaf linked back to itself or to an earlier leaf would fill every batch
 * with keys a walk has already seen, so the walk would go round for ever
 * and next() could answer a smaller key.  Checked on every entry, the keys
 * a reader sees only increase, a walk ends after at most count entries,
 * and a stable disorder is ECORRUPT (ord_read). */
static bool ord_in_order(const struct ord_batch *b, int mode, const void *key, size_t klen)
{
    const struct ord_rec *r = &b->rec[b->n - 1];
    const unsigned char *k = b->buf + r->koff;
    if (b->n > 1) {
        const struct ord_rec *p = r - 1;
        return ord_cmp(b->buf + p->koff, p->klen, k, r->klen) < 0;
    }
    if (!key) return true;
    int c = ord_cmp(k, r->klen, key, klen);
    return mode == ORD_GT ? c > 0 : mode == ORD_GE ? c >= 0 : mode == ORD_LT ? c < 0 : true;
}

/* One unvalidated try: fill b from the position mode asks for.  1: done;
 * 2: the first entry does not fit the buffer; 0: malformed (a torn read or
 * a scribbled table: the caller decides). */
static int ord_try(etsmgr_table *t, int mode, const void *key, size_t klen, struct ord_batch *b, uint64_t from)
{
    uint64_t lim = t->limit, x = from ? from : ld(&t->h->ord_head);
    b->n = 0;
    b->used = 0;
    b->end = false;
    b->next = 0;
    if (!x) {
        b->end = true;
        return 1;
    }
    uint32_t kp = key ? ord_pfx(key, klen) : 0;
    const struct ord_node *nd;
    uint64_t hd; /* nd's header as checked: its count and level (never loaded again) */
    int level = from ? 0 : -1;
    for (int d = 0;; d++) {
        if (d >= ORD_DEPTH || !(nd = ord_node_hdr(t, x, lim, level, &hd))) return 0;
        unsigned n = (unsigned)(hd & 0xffffu), lv = (unsigned)((hd >> 16) & 0xffffu);
        if (lv == 0) break;
        if (n == 0) return 0;
        int c = mode == ORD_LAST ? (int)n - 1 : !key ? 0 : ord_child(t, nd, n, kp, key, klen, lim);
        if (c < 0) return 0;
        x = ld(&nd->ptr[c]);
        level = (int)lv - 1;
        ord_prefetch(t, x, (unsigned)level, lim);
        if (lv == 1 && b->max > 1 && (mode == ORD_GE || mode == ORD_GT) && (unsigned)c + 1 < n)
            ord_prefetch(t, ld(&nd->ptr[c + 1]), 0, lim); /* a walk's second leaf, with its first */
    }
    unsigned n = (unsigned)(hd & 0xffffu);
    int pos = mode == ORD_LAST ? (int)n : !key || from ? 0 : ord_lpos(t, nd, n, kp, key, klen, lim, mode == ORD_GT);
    if (pos < 0) return 0;
    uint64_t hops = 0, maxhops = lim / ORD_LEAF_SIZE;
    if (mode == ORD_LT || mode == ORD_LAST) {
        b->end = true;
        while (pos == 0) { /* the last key of the leaves before */
            if (!(x = ld(&nd->prev))) return 1;
            if (++hops > maxhops || !(nd = ord_node_hdr(t, x, lim, 0, &hd))) return 0;
            pos = (int)(hd & 0xffffu);
        }
        const struct tbl_ent *e = ord_ent(t, ord_lent(ld(&nd->ls[pos - 1])), lim);
        return e && ord_copy(t, (uint64_t)((const char *)e - t->base), b) == 1 && ord_in_order(b, mode, key, klen);
    }
    /* ahead: the leaf whose entries were asked for a leaf early (0: none) */
    uint64_t ahead = 0;
    for (bool fresh = true;;) {
        if ((unsigned)pos >= n) {
            if (!(x = ld(&nd->next))) {
                b->end = true;
                return 1;
            }
            if (b->n && b->max > 1) { /* a batch ends with its leaf: a walk copies no more than it is asked for */
                b->next = x;
                return 1;
            }
            if (++hops > maxhops || !(nd = ord_node_hdr(t, x, lim, 0, &hd))) return 0;
            n = (unsigned)(hd & 0xffffu);
            pos = 0;
            fresh = true;
            continue;
        }
        if (fresh) {
            /* a leaf's entries are scattered: ask for all of them at once,
             * so that their misses overlap, and a leaf ahead: the next
             * leaf's entries (its node was asked for a leaf ago, or with
             * the first leaf: the descent's parent has both), into the
             * outer caches, and the node after it, so that a walk keeps
             * one leaf of misses in flight across its batches too (the
             * batch before asked for this leaf's entries into L2 already;
             * now they come into L1) */
            if (x != ahead) ord_prefetch_ents(t, nd, (unsigned)pos, n, lim, true);
            uint64_t nx = ld(&nd->next);
            const struct ord_node *nn;
            if (b->max == 1) {
                ord_prefetch(t, nx, 0, lim);
            } else if (nx && (nn = ord_node_at(t, nx, lim, 0)) != NULL) {
                ord_prefetch_ents(t, nn, 0, ord_n(nn), lim, false);
                ord_prefetch(t, ld(&nn->next), 0, lim);
                ahead = nx;
            }
            fresh = false;
        }
        const struct tbl_ent *e = ord_ent(t, ord_lent(ld(&nd->ls[pos])), lim);
        if (!e) return 0;
        int c = ord_copy(t, (uint64_t)((const char *)e - t->base), b);
        if (c < 0) return 0;
        if (c == 0) return b->n ? 1 : 2;
        if (!ord_in_order(b, mode, key, klen)) return 0;
        /* one key (first, next, prev): it is here; the entry after it is
         * none of this call's business (damaged, it made next fail) */
        if (b->max == 1) return 1;
        pos++;
    }
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
    uint64_t from = mode == ORD_GT ? b->next : 0;
    for (;;) {
        uint64_t s0 = 0;
        int r;
        if (!t->in_group && (r = tbl_rd_wait_even(t, &t->h->ord_seq, &s0, ws)) != 0) return r;
        if (t->in_group || s0 != b->seq) from = 0; /* in a group the callback may have changed the tree */
        int k = ord_try(t, mode, key, klen, b, from);
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
        if (k) {
            b->seq = s0;
            return 0;
        }
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
    struct ord_batch b; /* not zeroed whole: 8 KB of records for one */
    b.max = 1;
    b.values = false;
    b.buf = kb;
    b.cap = sizeof kb;
    b.next = b.seq = 0;
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
    b->max = ORD_BATCH; /* not zeroed whole: 8 KB of records */
    b->values = true;
    b->buf = buf;
    b->cap = ORD_BUF;
    b->next = b->seq = 0;
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

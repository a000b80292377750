/* SPDX-License-Identifier: Apache-2.0 */
/* table_int.h: the shared-memory layout of a table and the helpers every
 * table_*.c file uses under the table's lock.
 *
 * One table is one POSIX shm object:
 *
 *   [0, TBL_HDR_SIZE)      header: identity, the robust mutex, the mutable
 *                          state words, the undo log
 *   [TBL_HDR_SIZE, top)    heap: entries, the index array, free blocks
 *   [top, total)           not yet allocated
 *
 * The index is an array of 2^k 64-bit slots with linear probing from the
 * key's home slot, the top k bits of its hash (so doubling the index keeps
 * the order of homes, which the lock-free foreach relies on): 0 is empty,
 * tag << 40 | 1 a tombstone, anything else (24-bit tag << 40 | entry
 * offset / 8), the tag being the low 24 bits of the hash.
 * Entries live in the heap, each exactly as big as it needs (8-byte header,
 * key, value, each rounded to 8 bytes), so a small entry costs 24 bytes plus
 * its share of the index; an ordered table also keeps a B+tree whose
 * leaves point at its entries (table_ordered.c).
 *
 * Crash safety rests on one rule: a word reachable from the header is only
 * written through tbl_set(), which first appends (offset, old value) to the
 * undo log in the header and bumps undo_n.  Memory that is not reachable
 * (fresh heap above top, the inside of free blocks) is written freely.  The
 * commit point of a change (or of a whole group) is undo_n = 0.  Whoever
 * takes the lock and finds undo_n != 0 (EOWNERDEAD: the last holder died)
 * restores the logged words in reverse order, which gives back exactly the
 * state before the change; doing that twice is harmless, so dying during
 * recovery is fine too.  Blocks freed by a change are only put on a free
 * list at its commit, so nothing a rollback restores can have been reused.
 * The one exception: a change that is a single word of an entry (an integer
 * in place, outside a group) is one store, which is its own commit point
 * (tbl_set_one): a SIGKILL lands before it or after it.
 *
 * Readers take no lock (table_read.c): a change also makes the sequence
 * word of its key's stripe (and, when it switches the index, the layout
 * word) odd before its first write a reader could see, and even again only
 * after its commit point; a reader validates what it read against those
 * words.  Recovery makes every odd word even.  A one-word change needs no
 * odd word: it never has an uncommitted moment.  See docs/design.md.
 *
 * Every offset read from shared memory is checked against the mapped size
 * before use: other processes can write anything there. */
#ifndef ETSMGR_TABLE_INT_H
#define ETSMGR_TABLE_INT_H
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "etsmgr.h"
#include "compat.h"
#include "table.h"

#define TBL_MAGIC 0x314c42544d535445ull /* "ETSMTBL1" little-endian */
#define TBL_VERSION 3u          /* 3: stripes and homes by the hash's top bits */
#define TBL_VERSION_ONCE 4u     /* 3 with request-id records (once_off != 0): a v3 reader refuses it */
#define TBL_VERSION_ORDERED 5u  /* 4 with ttype = ETSMGR_ORDERED_SET and its skiplist: older readers refuse it */
#define TBL_VERSION_ONCE2 6u    /* 4 with the request-id records of layout 2 (table_once.c): older readers refuse it */
#define TBL_VERSION_ORDERED_ONCE2 7u /* 5 with the request-id records of layout 2 */
/* 5 and 7 are refused since the B+tree (an older build's skiplist: save it
 * with that build, load the image with this one) */
#define TBL_VERSION_BTREE 8u       /* 6 with ttype = ETSMGR_ORDERED_SET and its B+tree (table_ordered.c) */
#define TBL_VERSION_BTREE_ONCE2 9u /* 8 with the request-id records of layout 2 */
/* layout 3 of the request-id records files a sender's consecutive rids in
 * one index bucket: a library of layout 2 would look for them in the wrong
 * bucket and count a retry again, so it must refuse these */
#define TBL_VERSION_ONCE3 10u       /* 6 with the request-id records of layout 3 (table_once.c) */
#define TBL_VERSION_BTREE_ONCE3 11u /* 9 with the request-id records of layout 3 */
/* layout 4 files 32 consecutive rids of a sender in one index page (and
 * aligns the index to pages): a library of layout 3 would look for them in
 * the wrong bucket, so it must refuse these too */
#define TBL_VERSION_ONCE4 12u       /* 6 with the request-id records of layout 4 (table_once.c) */
#define TBL_VERSION_BTREE_ONCE4 13u /* 9 with the request-id records of layout 4 */
/* A flag on any of the versions above: the index hashes keys with the
 * header's hash_seed, random per table (tbl_hash), so that keys chosen to
 * collide in one table's index (hash flooding) need its seed, which only
 * processes that can map the table read.  Every table made since has it;
 * a table without it (hash_seed 0: the hash of before) is read as it was.
 * A library from before the flag sees an unknown version and refuses the
 * table, as it must: it would look its keys up with the unseeded hash. */
#define TBL_VERSION_SEEDED 0x10000u
static inline uint32_t tbl_vbase(uint32_t version) { return version & ~TBL_VERSION_SEEDED; }
#define TBL_HDR_SIZE 36864u     /* header incl. undo log and stripes; the heap starts here */
#define TBL_NSTRIPES 2048u      /* sequence words readers validate against */
#define TBL_TOUCH_MAX 32        /* stripes one change or group may make odd */
#define TBL_TAG_MASK 0xffffffull
#define TBL_UNDO_MAX 1100u      /* undo records in the header */
#define TBL_OP_WORDS 160u       /* most undo records one change can need */
#define TBL_SMALL_MAX 512u      /* blocks up to this size have exact free lists */
#define TBL_NCLASS (TBL_SMALL_MAX / 8u + 1u)
#define TBL_LARGE_WALK 32       /* first-fit steps in the large free list */
#define TBL_PEND_MAX 64         /* frees deferred to commit */
#define TBL_MIN_CAP 16u         /* smallest index */
/* A new table's first index has room for as many of the smallest entries
 * (24 bytes, the index at most 3/4 full) as its first size holds: one slot
 * for each 104 bytes of it past the header (tbl_create; a load sizes its
 * table by it, img_table_opts). */
#define TBL_HINT_SLOT_BYTES (8u * 4u + 24u * 3u)
#define TBL_MAX_MASK ((1ull << 36) - 1)
#define TBL_DEFAULT_SIZE 65536u
#define TBL_GROW_STEP 65536u

#define TBL_SLOT_EMPTY 0ull
#define TBL_SLOT_TOMB 1ull /* in the offset field; the tag field keeps the deleted key's tag */
#define TBL_OFF_MASK ((1ull << 40) - 1)
#define TBL_FREE_TAG 0xfee0000000000000ull /* word 0 of a free block: tag | size */
#define TBL_FREE_TAGMASK 0xfff0000000000000ull

struct tbl_undo {
    uint64_t off;
    uint64_t old;
};

/* The header.  Fields up to `lock` are written once at creation (but the
 * version, which a request-id conversion raises and a rollback of it sets
 * back: tbl_once_settle_version); the state words from total_bytes to
 * state_end are the only header words tbl_set may write, and the only ones
 * an undo record may name. */
struct tbl_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t hdr_size;
    int64_t ctime_us;
    uint64_t max_bytes;
    char name[ETSMGR_NAME_MAX + 8]; /* NUL-terminated */
    uint32_t access;                /* etsmgr_access, fixed at creation */
    uint32_t ttype;                 /* etsmgr_table_type, fixed at creation (was padding: 0 = set) */
    uint64_t hash_seed[2];          /* tbl_hash's key with TBL_VERSION_SEEDED (was padding: 0) */

    /* the lock, the log length and the first undo record share one cache
     * line: a change that logs one word (update_counter) moves only this
     * line and the value's between processes */
    alignas(64) pthread_mutex_t lock;
    uint64_t undo_n; /* records of the change in progress; 0: none */
    struct tbl_undo undo[TBL_UNDO_MAX];

    alignas(64) uint64_t total_bytes; /* size of the table (the object may be larger) */
    uint64_t idx_off;                 /* index array: offset and slot mask */
    uint64_t idx_mask;
    uint64_t heap_top; /* bump pointer: [top, total) is unallocated */
    uint64_t count;    /* live entries */
    uint64_t tombs;    /* tombstone slots */
    uint64_t live_bytes;
    uint64_t generation;
    uint64_t owner_pid;
    uint64_t heir_pid;
    uint64_t large_head;            /* free blocks > TBL_SMALL_MAX */
    uint64_t free_head[TBL_NCLASS]; /* free blocks of exactly 8*i bytes */
    uint64_t once_off;              /* request-id records (table_once.c); 0: none.  A
                                     * version 3 table has 0 here: the word was past
                                     * its header struct, zero since creation */
    uint64_t ord_head;              /* ordered tables: the B+tree's root node
                                     * (table_ordered.c); 0: none yet, and in a set */
    uint64_t orphaned_us;           /* since when etsmgrd holds the table as orphaned (µs,
                                     * wall clock; tbl_set_owner); 0: owned, or not known.
                                     * Was state_end before: 0 in older tables */
    uint64_t state_end;             /* marks the end of the logged words */

    /* Not logged, never restored: odd while a change a reader could see is
     * in progress (from before its first such write until after its commit
     * point).  layout: the index switch of a rehash; stripe[tag % N]: a
     * change of a key with that tag. */
    alignas(64) uint64_t layout_seq;
    alignas(64) uint64_t stripe[TBL_NSTRIPES];
    /* ordered tables: odd while a change of the B+tree is in
     * progress (readers of the key order validate against it, and integer
     * values against their stripes, table_ordered.c) */
    alignas(64) uint64_t ord_seq;
};
_Static_assert(sizeof(struct tbl_hdr) <= TBL_HDR_SIZE, "header too big");
_Static_assert(offsetof(struct tbl_hdr, hash_seed) == 112 && offsetof(struct tbl_hdr, lock) == 128,
               "hash_seed took the padding before the lock (16 bytes): nothing after it moved");
/* The words readers use live in tables made by every version: a new state
 * word must not move them (there is room for none after orphaned_us) */
_Static_assert(offsetof(struct tbl_hdr, layout_seq) == offsetof(struct tbl_hdr, total_bytes) + 640,
               "a state word moved layout_seq");
#define TBL_STATE_BEGIN offsetof(struct tbl_hdr, total_bytes)
#define TBL_STATE_END offsetof(struct tbl_hdr, state_end)

/* An entry: header, key (klen bytes), value (int64 or vlen bytes), each part
 * padded to 8 bytes; then `links` words, which only the skiplist of layouts
 * 5 and 7 used (0 in every table this library reads). */
struct tbl_ent {
    uint8_t klen;
    uint8_t type;   /* ETSMGR_INT or ETSMGR_BYTES */
    uint16_t links; /* 0 (layouts 5 and 7: skiplist links) */
    uint32_t vlen;  /* 8 for integers */
};
#define TBL_LINKS_MAX 24u

static inline uint64_t tbl_a8(uint64_t n) { return (n + 7u) & ~7ull; }
static inline uint64_t tbl_ent_size(uint64_t klen, uint64_t vlen)
{
    return 8u + tbl_a8(klen) + tbl_a8(vlen);
}
/* The whole block of an entry, its links included. */
static inline uint64_t tbl_ent_block(const struct tbl_ent *e)
{
    return tbl_ent_size(e->klen, e->vlen) + 8u * e->links;
}

struct tbl_pend {
    uint64_t off, size;
};

/* A handle.  The fields every operation touches come first, so that a
 * change reads and writes as few of the handle's cache lines as it can. */
struct etsmgr_table {
    int fd;
    bool rdonly;     /* O_RDONLY fd, PROT_READ mappings: every write is ETSMGR_EPERM */
    bool in_group;
    bool touch_layout; /* this change or group made the layout word odd */
    bool ordered;      /* the header's ttype is ETSMGR_ORDERED_SET (cached at attach) */
    bool touch_ord;    /* this change or group made ord_seq odd */
    uint64_t hseed[2]; /* tbl_hash's key: the header's hash_seed with TBL_VERSION_SEEDED, else 0 (cached
                        * at attach: a key changed later would be another table's hash) */
    unsigned shift;  /* 64 - log2(mask + 1): home = hash >> shift */
    struct tbl_hdr *h; /* header mapping: never moves (the mutex lives here) */
    char *base;        /* whole-table mapping: moves when the table grows */
    uint64_t map_size; /* bytes mapped at base */
    uint64_t limit;    /* the header's total_bytes as last validated (<= map_size, and never below
                        * TBL_HDR_SIZE + 8 * TBL_MIN_CAP: limit - 16 does not wrap) */
    /* per-operation view of the state, validated by tbl_state() */
    uint64_t *idx;
    uint64_t mask;
    uint64_t top;
    /* the change in progress */
    uint64_t un;     /* == h->undo_n while we hold the lock */
    uint64_t mark;   /* undo records before the current operation */
    int npend, pend_mark;
    const char *cp_op; /* crash-point bookkeeping */
    int cp_step;
    /* stripes this change or group made odd */
    int ntouch;
    uint16_t touch[TBL_TOUCH_MAX];
    /* the readers' cached view, valid while layout_seq == r_lay */
    uint64_t r_lay;
    uint64_t *r_idx;
    uint64_t r_mask;
    unsigned r_shift;
    int group_changes;
    unsigned lock_timeout_ms; /* 0: wait as long as it takes */
    int64_t once_full_until;  /* table_once.c: the records hold once_full_max live ones */
    uint64_t once_full_max;   /* until then at least (0: not known to be full) */
    struct tbl_ent found;     /* tbl_find: the header of the entry it found, as checked */
    int64_t once_now;         /* table_once.c: this handle's last clock read (0: none) */
    int64_t once_check_ms;    /* table_once.c: when this handle next checks the region for a shrink */
    bool once_armed;          /* table_once.c: once_check_ms set by a count of this handle */
    uint32_t once_touches;    /* table_once.c: index lines this handle's counts wrote first */
    int64_t once_sparse_since; /* table_once.c: the first of this handle's looks since which the
                                * region was sparse at every look (0: it was not, at the last) */
    uint64_t once_ct_off;     /* table_once.c: the region whose tail this change moved first (0: */
    uint64_t once_ct_tail;    /* none), and its tail as committed, before that move */
    uint64_t once_unmap_off;  /* table_once.c: a region this handle replaced, to drop from its */
    uint64_t once_unmap_len;  /* page tables once the change is over (0: none) */
    /* a read-only handle asks etsmgrd at this socket (malloc'd; NULL: none)
     * to roll back a dead writer's change, through recover_cb */
    char *rsock;
    int (*recover_cb)(const char *sock, const char *table, int timeout_ms);
    struct tbl_pend pend[TBL_PEND_MAX];
    char name[ETSMGR_NAME_MAX + 1];
};

/* A 128-bit key for a hash that input must not be able to aim at (a file's
 * keys, peers' request ids): getrandom(2); before the kernel has entropy
 * (early boot), the clock, the pid and addresses (salt's, ASLR), which are
 * unknown to whoever chose the input beforehand too. */
void tbl_random_key(uint64_t key[2], const void *salt);

/* How an image carries a request id kept by update_counter_once: an
 * entry of this key (the prefix, then the 16-byte rid) with a 16-byte
 * BYTES value (table_image.c).  An application's entry of that very shape
 * would load back as a request id, so an insert refuses it. */
#define TBL_RID_PREFIX "\0etsmgr.rid\0"
#define TBL_RID_PREFIX_LEN 12u
#define TBL_RID_KEY_LEN (TBL_RID_PREFIX_LEN + ETSMGR_RID_LEN)
static inline bool tbl_is_rid_shape(const void *key, size_t klen, unsigned type, uint64_t vlen)
{
    return klen == TBL_RID_KEY_LEN && type == ETSMGR_BYTES && vlen == 16 &&
           memcmp(key, TBL_RID_PREFIX, TBL_RID_PREFIX_LEN) == 0;
}

/* The index's hash of a key.  The top bits choose the home slot, the low
 * 24 are the tag (and the low 11 the stripe).
 *
 * A table made before TBL_VERSION_SEEDED hashes with tbl_hash_v1: 8 bytes
 * at a time, multiply-xorshift, fixed.  For 8-byte keys it is a bijection
 * anyone can invert, and for longer ones a flip of a block's top bit
 * passes its multiply unchanged, so keys that collide can be computed
 * offline (hash flooding, docs/security.md).  A table made since hashes
 * with the 128-bit key of its header (hash_seed, random per table):
 * each 8-byte block is folded in by a 64 x 64 -> 128-bit multiply of
 * (block ^ key) by (state ^ constant), high and low halves xored, so that
 * what a block's difference does to the state depends on the key and the
 * state: no difference cancels another whatever the key, as a top bit's
 * did when the key was only xored in first.  Not a cryptographic hash, but
 * the per-table key is what stops keys computed in advance; one multiply a
 * block, as before. */
static inline uint64_t tbl_hash_v1(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)n * 0xc2b2ae3d27d4eb4full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 32;
    return h;
}
static inline uint64_t tbl_fold_mul(uint64_t a, uint64_t b)
{
    __extension__ typedef unsigned __int128 tbl_u128;
    tbl_u128 r = (tbl_u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}
static inline uint64_t tbl_hash_keyed(const uint64_t seed[2], const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = seed[0] ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = tbl_fold_mul(w ^ seed[1], h ^ 0xe7037ed1a0b428dbull);
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        for (size_t i = 0; i < n; i++) w |= (uint64_t)p[i] << (8 * i);
        h = tbl_fold_mul(w ^ seed[1], h ^ 0x8ebc6af09c88c6e3ull);
    }
    return tbl_fold_mul(h ^ 0xa0761d6478bd642full, seed[0] ^ 0x589965cc75374cc3ull);
}
/* seed: the table's (t->hseed); NULL or all zero: the hash of before */
static inline uint64_t tbl_hash(const uint64_t *seed, const void *key, size_t n)
{
    if (!seed || !(seed[0] | seed[1])) return tbl_hash_v1(key, n);
    return tbl_hash_keyed(seed, key, n);
}
static inline uint64_t tbl_tag(uint64_t hv) { return hv & TBL_TAG_MASK; }
/* A tombstone keeps the tag of the key deleted there, so that a lock-free
 * walk can tell, from that key's stripe, whether the delete is committed. */
static inline bool tbl_tomb(uint64_t s) { return (s & TBL_OFF_MASK) == TBL_SLOT_TOMB; }
static inline bool tbl_unused(uint64_t s) { return s == TBL_SLOT_EMPTY || tbl_tomb(s); }
static inline uint64_t tbl_home(uint64_t hv, unsigned shift) { return hv >> shift; }

static inline uint64_t *tbl_word(etsmgr_table *t, uint64_t off)
{
    return (uint64_t *)(void *)(t->base + off);
}

/* Crash points: a test hook called before and after every logged write and
 * at the steps of growth and commit. */
static inline void tbl_cp(etsmgr_table *t)
{
    if (__builtin_expect(tbl_crashpoint != NULL, 0)) tbl_crashpoint(t->cp_op, t->cp_step++);
}

/* Log the word at off, then write v there. */
static inline void tbl_set(etsmgr_table *t, uint64_t off, uint64_t v)
{
    uint64_t *w = tbl_word(t, off);
    uint64_t n = t->un;
    t->h->undo[n].off = off;
    t->h->undo[n].old = *w;
    atomic_signal_fence(memory_order_seq_cst);
    t->h->undo_n = t->un = n + 1;
    atomic_signal_fence(memory_order_seq_cst);
    tbl_cp(t);
    *w = v;
    atomic_signal_fence(memory_order_seq_cst);
    tbl_cp(t);
}
#define TBL_HOFF(field) ((uint64_t)offsetof(struct tbl_hdr, field))

/* A change that is one aligned word of an entry and nothing else (an
 * integer value in place), outside a group: write it with one store, no
 * undo record and no odd sequence word.  A SIGKILL lands before or after a
 * single 8-byte store, never inside it, so that store is the change's
 * commit point: before it the old value is committed, after it the new one,
 * and there is no moment with anything to roll back, nor anything
 * uncommitted for a reader to see (readers load such a word whole, with one
 * atomic load).  docs/design.md, "One-word changes". */
static inline void tbl_set_one(etsmgr_table *t, uint64_t off, uint64_t v)
{
    tbl_cp(t);
    __atomic_store_n(tbl_word(t, off), v, __ATOMIC_RELAXED);
    atomic_signal_fence(memory_order_seq_cst);
    tbl_cp(t);
}

/* Make a sequence word odd (it is even whenever the lock is free). */
static inline void tbl_seq_odd(uint64_t *w)
{
    uint64_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
    if (!(v & 1u)) __atomic_store_n(w, v + 1, __ATOMIC_RELAXED);
    /* readers that see a later write see the odd word too */
    atomic_thread_fence(memory_order_release);
}
static inline void tbl_seq_even(uint64_t *w)
{
    uint64_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
    if (v & 1u) __atomic_store_n(w, v + 1, __ATOMIC_RELEASE);
}

/* Before the first write readers could see for a key with this hash. */
static inline int tbl_touch(etsmgr_table *t, uint64_t hv)
{
    uint16_t s = (uint16_t)(hv & (TBL_NSTRIPES - 1));
    if (__builtin_expect(t->ntouch != 0, 0)) { /* a group, or a change of several words */
        for (int i = 0; i < t->ntouch; i++)
            if (t->touch[i] == s) return 0;
        if (t->ntouch == TBL_TOUCH_MAX) return ETSMGR_EGROUP;
    }
    t->touch[t->ntouch++] = s;
    tbl_seq_odd(&t->h->stripe[s]);
    return 0;
}
/* Before the first write of a B+tree word (table_ordered.c): the readers
 * of the order validate against ord_seq. */
static inline void tbl_touch_ord(etsmgr_table *t)
{
    if (t->touch_ord) return;
    t->touch_ord = true;
    tbl_seq_odd(&t->h->ord_seq);
}
static inline void tbl_touch_layout(etsmgr_table *t)
{
    if (t->touch_layout) return;
    t->touch_layout = true;
    tbl_seq_odd(&t->h->layout_seq);
}
/* After the commit point (undo_n = 0) or a complete rollback. */
static inline void tbl_untouch(etsmgr_table *t)
{
    for (int i = 0; i < t->ntouch; i++) tbl_seq_even(&t->h->stripe[t->touch[i]]);
    t->ntouch = 0;
    if (t->touch_layout) tbl_seq_even(&t->h->layout_seq);
    t->touch_layout = false;
    if (t->touch_ord) tbl_seq_even(&t->h->ord_seq);
    t->touch_ord = false;
}

/* Validate the state words the operations use and cache them in t.
 * ETSMGR_ECORRUPT when any is out of range. */
static inline int tbl_state(etsmgr_table *t)
{
    struct tbl_hdr *h = t->h;
    uint64_t top = h->heap_top, off = h->idx_off, mask = h->idx_mask;
    if (top > t->limit || top < TBL_HDR_SIZE || (off & 7u) || off < TBL_HDR_SIZE ||
        mask > TBL_MAX_MASK || (mask & (mask + 1)) || mask + 1 < TBL_MIN_CAP ||
        off > top || (mask + 1) * 8 > top - off)
        return ETSMGR_ECORRUPT;
    t->top = top;
    if (__builtin_expect(mask != t->mask, 0)) {
        t->mask = mask;
        t->shift = 64u - (unsigned)__builtin_ctzll(mask + 1);
    }
    t->idx = tbl_word(t, off);
    return 0;
}

/* The entry at off, checked to lie inside the heap and to be well formed;
 * NULL otherwise.  Its header word is loaded once, into *hc (tbl_ent_hdr),
 * which a caller that reads the entry must go by rather than load the
 * header again: a process that writes the object need not take the lock,
 * and a key length or type loaded after the check may put a value's
 * address past the block and the mapping (test
 * ordered_walk/update_entry_header_loaded_once). */
static inline struct tbl_ent *tbl_ent_hdr(etsmgr_table *t, uint64_t off, struct tbl_ent *hc)
{
    if (off < TBL_HDR_SIZE || off > t->top - 16) return NULL;
    struct tbl_ent *e = (struct tbl_ent *)(void *)(t->base + off);
    uint64_t w = __atomic_load_n((const uint64_t *)(const void *)e, __ATOMIC_RELAXED);
    memcpy(hc, &w, sizeof *hc);
    if (hc->klen == 0) return NULL;
    if (hc->type == ETSMGR_INT) {
        if (hc->vlen != 8) return NULL;
    } else if (hc->type != ETSMGR_BYTES || hc->vlen > ETSMGR_VALUE_MAX) {
        return NULL;
    }
    if (hc->links > TBL_LINKS_MAX || tbl_ent_block(hc) > t->top - off) return NULL;
    return e;
}
static inline struct tbl_ent *tbl_ent_at(etsmgr_table *t, uint64_t off)
{
    struct tbl_ent hc;
    return tbl_ent_hdr(t, off, &hc);
}
static inline const unsigned char *tbl_ent_key(const struct tbl_ent *e)
{
    return (const unsigned char *)e + 8;
}
static inline uint64_t tbl_ent_voff(const struct tbl_ent *e) { return 8u + tbl_a8(e->klen); }

/* Probe for key.  1: found at *pos, *ep its entry and t->found the header
 * that was checked (the caller goes by that, not by *ep's header); 0:
 * absent, *pos is where it would go
 * (the first tombstone or empty slot on its path); <0: error.  Bounded by
 * the index size, so a scribbled index cannot loop forever. */
__attribute__((always_inline)) static inline int tbl_find(etsmgr_table *t, const void *key, size_t klen, uint64_t hv,
                           uint64_t *pos, struct tbl_ent **ep)
{
    uint64_t mask = t->mask, i = tbl_home(hv, t->shift), tag = tbl_tag(hv), fp = UINT64_MAX;
    const uint64_t *idx = t->idx;
    for (uint64_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        uint64_t s = idx[i];
        if (s == TBL_SLOT_EMPTY) {
            *pos = fp == UINT64_MAX ? i : fp;
            return 0;
        }
        if (tbl_tomb(s)) {
            if (fp == UINT64_MAX) fp = i;
            continue;
        }
        if ((s >> 40) != tag) continue;
        struct tbl_ent hc;
        struct tbl_ent *e = tbl_ent_hdr(t, (s & TBL_OFF_MASK) << 3, &hc);
        if (!e) return ETSMGR_ECORRUPT;
        if (hc.klen == klen && memcmp(tbl_ent_key(e), key, klen) == 0) {
            *pos = i;
            *ep = e;
            t->found = hc;
            return 1;
        }
    }
    return ETSMGR_ECORRUPT; /* a well-formed index always has an empty slot */
}

static inline void tbl_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* (The mutex's lock word: compat_mutex_word, in compat.h.) */

/* table.c */
int tbl_lock_slow(etsmgr_table *t, int r);
int tbl_op_begin_slow(etsmgr_table *t, int r);
int tbl_op_end_full(etsmgr_table *t, int rc);
int tbl_sync_map(etsmgr_table *t);
int tbl_group_check(etsmgr_table *t, bool change);
int tbl_rollback_to(etsmgr_table *t, uint64_t mark); /* 0, or ETSMGR_ECORRUPT: the state words left are not valid */
void tbl_unlock(etsmgr_table *t);
int64_t tbl_now_us(void);
int tbl_reserve(int fd, uint64_t from, uint64_t size);
int tbl_map(etsmgr_table *t, uint64_t size);
int tbl_check_header(const struct tbl_hdr *h, uint64_t objsize);
/* table_verify.c: err, with the reason printed into why (when given); the
 * one way the checks of a table and of an image say what is wrong */
int tbl_say(char *why, size_t whylen, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* table_heap.c */
int tbl_alloc(etsmgr_table *t, uint64_t size, uint64_t *off);
int tbl_defer_free(etsmgr_table *t, uint64_t off, uint64_t size);
void tbl_apply_frees(etsmgr_table *t);
int tbl_rehash(etsmgr_table *t, uint64_t newcap);
/* table_read.c */
void tbl_even_all(etsmgr_table *t);
int tbl_rd_sync(etsmgr_table *t);
/* table_ops.c: insert a key known to be absent at *pos (from tbl_find) */
int tbl_put_new(etsmgr_table *t, const void *key, size_t klen, uint64_t hv, uint64_t pos,
                const etsmgr_value *v);
/* table_ordered.c: keep the B+tree in step with the index (under the
 * lock, on ordered tables only; eoff: an entry block written whole in
 * unreachable space), the smallest node (for attach's checks), check it
 * for verify */
int tbl_ord_insert(etsmgr_table *t, const void *key, size_t klen, uint64_t eoff);
/* an insert finds its path before its index probe (the two overlap);
 * tbl_ord_insert of the same key in the same call uses it, _done drops it */
void tbl_ord_pre(etsmgr_table *t, const void *key, size_t klen, uint64_t hv);
void tbl_ord_pre_done(void);
int tbl_ord_replace(etsmgr_table *t, const void *key, size_t klen, uint64_t eoff);
int tbl_ord_remove(etsmgr_table *t, const void *key, size_t klen);
uint64_t tbl_ord_head_size(void);
int tbl_ord_foreach(etsmgr_table *t, etsmgr_foreach_cb cb, void *arg);
struct tbl_blk {
    uint64_t off, size;
};
int tbl_ord_verify(etsmgr_table *t, struct tbl_blk *blk, uint64_t *nblk, uint64_t maxblk,
                   uint64_t *bytes, char *why, size_t whylen);
/* table_read.c: an even value of a sequence word, waiting (and recovering
 * a dead writer's change) like the lock-free lookups do; ws: zeroed per call */
int tbl_rd_wait_even(etsmgr_table *t, const uint64_t *w, uint64_t *out, int64_t ws[2]);
/* table_once.c: the request-id region's size (0 when once_off is not a
 * well-formed region inside the heap) and its verification */
uint64_t tbl_once_bytes(etsmgr_table *t, uint64_t off);
void tbl_once_settle_version(etsmgr_table *t);
int tbl_once_verify(etsmgr_table *t, char *why, size_t whylen);
/* for images (table_image.c): put one record back (no counter changes;
 * ETSMGR_EEXIST when rid is there), and visit the records still kept at
 * now (t may be a view over a copy; cb's non-zero stops and is returned) */
/* One bounded look for a shrink of the request-id region, as its own
 * change (table_once.c): for a process to call off its requests' path.
 * 0 done, 1 more expired records remain past the look's bound (call it
 * again), or an error. */
int tbl_once_tidy(etsmgr_table *t);
int tbl_once_put(etsmgr_table *t, const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep_until);
int tbl_once_each(etsmgr_table *t, int64_t now,
                  int (*cb)(const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep_until, void *arg),
                  void *arg);

/* Take the lock (or, inside a group, just open a new operation), recover
 * from a dead holder, remap if the table grew, validate the state.  change:
 * the operation may write (it counts against the group's limits).  Inline
 * is only the common case (the lock free, nothing to recover, the same
 * size): everything else is tbl_op_begin_slow, so the hot path stays small
 * enough to be inlined into each operation. */
static inline int tbl_op_begin(etsmgr_table *t, const char *op, bool change)
{
    t->cp_op = op;
    t->cp_step = 0;
    if (__builtin_expect(t->rdonly | t->in_group, 0)) {
        if (t->rdonly) return ETSMGR_EPERM;
        return tbl_group_check(t, change);
    }
    int r = pthread_mutex_trylock(&t->h->lock);
    if (__builtin_expect(r != 0 || t->h->undo_n != 0 || t->h->total_bytes != t->limit, 0))
        return tbl_op_begin_slow(t, r);
    t->un = t->mark = 0;
    t->npend = t->pend_mark = 0;
    if (__builtin_expect((r = tbl_state(t)) != 0, 0)) tbl_unlock(t);
    return r;
}

/* Finish an operation: on error undo what it wrote; outside a group commit
 * (apply deferred frees, clear the undo log: the commit point), make the
 * sequence words it touched even, unlock.  Inline is only the case of an
 * operation that logged nothing and touched no word (a read, a one-word
 * change, tbl_set_one): crash point, unlock.  The rest: tbl_op_end_full. */
static inline int tbl_op_end(etsmgr_table *t, int rc)
{
    if (__builtin_expect(rc < 0 || t->in_group || t->npend || t->un || t->ntouch || t->touch_layout ||
                             t->touch_ord,
                         0))
        return tbl_op_end_full(t, rc);
    atomic_signal_fence(memory_order_seq_cst);
    tbl_cp(t); /* the commit step, as in tbl_op_end_full */
    tbl_unlock(t);
    return rc;
}

#endif

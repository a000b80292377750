/* SPDX-License-Identifier: Apache-2.0 */
/* table_once.c: exactly-once update_counter, with the request-id records in
 * one fixed-layout region of the table.
 *
 * Why a region and not entries: a count that records "rid -> value" as
 * ordinary entries costs four changes (the counter, evict an old rid, insert
 * the rid, insert a ring slot), each hashing, probing and allocating.  Here
 * a count is: one lock, one probe of the counter, one probe of the index
 * below, and three or four undo-logged word writes (the index entry, the
 * filled count, the ring head, perhaps the ring tail) plus the record's four
 * plain stores.  It stays one atomic change of the table (table_int.h): a
 * SIGKILL anywhere inside leaves neither the increment nor the record.
 *
 * Why this layout (layout 2's, which layouts 3 and 4 keep): nearly every count
 * brings a new rid, and with records kept for seconds at a million counts
 * a second the region is far bigger than the caches, so what a count costs
 * is the cache lines it misses.  Layout 1 (32-byte records open-addressed on the rid, probed to
 * the first empty one at up to 3/4 load) walked several records, often
 * across lines: 43% of etscounterd's time under the pipelined bench
 * (docs/performance.md).  Layout 2 keeps the records in arrival order in a
 * ring, which a count appends to (the head's line is warm), and finds them
 * through a compact index of 64-byte buckets, each one cache line of eight
 * (32-bit hash tag, ring slot) entries, at most half full: a new rid's
 * lookup reads one line and ends at an empty entry in it; a record is read
 * only when its tag matches (a retry, or a 1 in 2^32 false match).
 *
 * Layout 3 differed from layout 2 only in which bucket is a rid's home.
 * In layout 2 the bucket came from the whole rid's hash: every new rid a
 * random line of an index of hundreds of MB, and so, with 4 KiB
 * pages, a cache miss, a TLB miss and a page walk per count (the profile's
 * top symbol at 50 x 16).  A high-rate sender numbers its rids (a random
 * 8-byte prefix and a big-endian counter in the last 8 bytes, what
 * docs/design.md recommends and the bench's load generator sends), so
 * layout 3 takes the bucket from a keyed hash of the prefix and the
 * counter without its low ONCE_SHARE_BITS: four consecutive rids share a
 * line and a page.  The tag still hashes the whole rid.  Groups fill
 * buckets unevenly, so more probes go on to the next bucket (at half full:
 * 1.23 lines a new rid against 1.01), which is why groups are four: eight
 * cost 1.64 lines, a group of 64 spread over one page 1.7 (whole pages
 * overflow).  The key keeps a sender from piling more than its own group
 * into a bucket.  Random rids (the CLI's) land at random as before.
 *
 * Layout 4 (this one) differs from layout 3 in which bucket is home and in
 * where the index starts.  In layout 3 each group of four still went to a
 * random page of the index: a TLB miss and a page walk (nested on a VM)
 * per four counts, which held the prefetch's instruction from retiring
 * (14.5% of etscounterd's samples at 50 x 16 after group commit).  Layout
 * 4 takes the home PAGE from a keyed hash of the prefix and the counter
 * without its low ONCE_RUN_BITS (5: a run of 32 rids), and the bucket
 * within it from that hash's offset plus the group's index times 8 (the
 * run's 8 groups on every 8th bucket); the index starts on a page boundary
 * so that 64 buckets are a page of the mapping.  A sender's 32 consecutive
 * rids then cost one page walk, not eight.  Why runs of 32 and a stride
 * (a simulation of the index filled to its rebuild mark, lines read per
 * new rid in the last quarter: layout 3 1.44; runs of 32 on every 8th
 * bucket 1.51, of 64 on every 4th 3.1, of 256, one per page, 28): a page
 * gets whole runs, so the longer they are the more unevenly pages fill and
 * the more a probe walks; and a run on consecutive buckets overflows into
 * its own next group's bucket (4.1 lines at 32), where with a stride the
 * next bucket is another run's, whose load is independent, as in layout 3.
 * The probe is layout 3's (the next bucket, into the next page after a
 * page's last), so only a page's last bucket's overflow leaves the page.
 * The key keeps a sender from choosing which runs share a page, or where a
 * run lies in it: its rids still pile at most a group of four into a
 * bucket (test table/update_counter_once_hostile).
 *
 * The region (its offset is the header's state word once_off):
 *   word 0  magic ("ETMONOE4"; "ETMONOE3", "ETMONOE2": layouts 3 and 2)
 *   word 1  R: ring records, a power of two
 *   word 2  head   word 3  tail: records appended since the rebuild, and
 *           dropped from the ring's start; the ring holds [tail, head),
 *           slot = position mod R
 *   words 4-5  a random key for the hash, so that a sender cannot choose
 *           rids that all land in one bucket
 *   word 6  filled: index entries used (those of dropped records too)
 *   word 7  zero
 *   then R records of 4 words: rid (2 words), value, keep_until;
 *   then the index, 4R entries of 8 bytes (R/2 buckets), at the first
 *   4096-byte boundary after the records (layouts 2 and 3: 64-byte): an
 *   entry is tag << 32 | (slot + 1), 0 empty.
 * Only the records in [tail, head) are the store.  A record is written
 * with plain stores into the slot at head (outside that window, so no one
 * reads it) and becomes part of the store when the logged head moves over
 * it; a rollback restores head and the slot drops out of the window again.
 * Except in a full ring whose oldest records the count drops: the slot at
 * head is then the tail's, in the window until the commit, so the record
 * is written through the undo log there (a rollback gives the old one
 * back).
 * Index entries are never emptied: an entry whose slot is out of the
 * window, or holds another rid by now, is skipped by lookups, and a new
 * record takes over the first entry of its probe whose slot is out of the
 * window (its record dropped, or being dropped by this count), before an
 * empty one: a lookup stops only at an empty entry, so an entry on some
 * rid's way may change hands but never empty.  So the index fills, more
 * slowly (about a quarter of a steady load's counts take an entry over),
 * and at half full (filled = 2R) the region is rebuilt at the same size.
 * Why not fewer rebuilds still: under a steady high rate each such rebuild
 * of millions of records (a block of 64 bytes a record, its pages faulted
 * in, the index zeroed, the live records copied and hashed) takes 0.1 to
 * 0.5 s inside one count (docs/performance.md, "Rebuilds of the request-id
 * region").  Emptying each dropped record's entry (tried: a layout with
 * each entry's distance from its home bucket, so that an entry could be
 * emptied where no probe went past it) ended those rebuilds, but cost a
 * cache miss per dropped record on a cold bucket: a count after a burst
 * drops four, and the 50-connection rows, which drop the burst before
 * them, took 2 to 5 times as long per count in process.
 *
 * A record is never dropped before its keep_until: a sender may still send
 * that rid again until then.  Each count first drops up to ONCE_TAIL_STEPS
 * records at the tail whose keep time has passed (keep times mostly come
 * in arrival order); when the ring is full all it can; when it is still
 * full, or the index half full, the region is rebuilt: a new block sized
 * for twice the live records (at least ONCE_MIN_CAP; a full ring of R
 * becomes 2R, where sizing for twice them and one more made it 4R; after
 * a crowded index, never smaller than it was, since shrinking is the
 * sparse rule's below: sized for the live records of a lull between
 * bursts, the region regrew through every size in the next) is filled in
 * unreachable space with the live records in order and their index, then
 * once_off is switched through the undo log and the old block freed at
 * commit, like the index's rehash.  Shrinking: once a second (per handle,
 * on a count, not its first) up to ONCE_SWEEP expired records at the tail
 * are dropped, and when the window holds fewer than R/8 records, and has
 * at every look for ONCE_SPARSE_MS, the region is rebuilt the same way
 * at twice them (tbl_once_tidy: one such look as a change of its own,
 * without the wait, for a process that just took the table over; it
 * says when more expired records wait past its bound, so that the caller
 * finishes the sweep, and unmaps the ring pages it dropped); after a
 * rebuild they fill R/4 to R/2, so a steady load
 * neither shrinks (needs 4x fewer) nor grows (2x more) again.  Without
 * it a region sized for a burst stays that big for 2R more counts, each
 * touching a random page of it.  A rebuild also comes first when the
 * window's records (expired ones too, so live <= window <= max_records
 * always) would exceed max_records; when more than max_records would be
 * live even after it, nothing changes: ETSMGR_ERIDFULL.  A full region is
 * known to stay full until its earliest keep time (the handle remembers
 * it), so the requests refused meanwhile cost no scan.
 *
 * Layout 1 regions (tables of layout version 4, written by older
 * libraries; their ordered tables, 5, are no longer read at all), layout 2
 * ones (versions 6 and 9) and layout 3 ones (10 and 11) are read, and
 * rebuilt into layout 4 by the first change that meets them; the table's
 * version then says 12 (13 when a B+tree ordered table), which older
 * libraries refuse in words rather than misread: a library of layout 2 or
 * 3 would look for a rid in the wrong bucket and count its retry again.
 *
 * Group commit (tbl_once_count_many, for etscounterd's pipelined counts):
 * the counts of a batch are one change, so that lock, clock read and commit
 * are paid once per batch instead of once per count (about 290 of a
 * count's 1,160 instructions in the store, docs/performance.md).  Each
 * count is the single count's body (once_count_locked) with the undo log's
 * length as its mark: a refused one rolls back to it and the rest go on;
 * the last deadline check, one clock read after the batch's last write,
 * redoes the batch without any count it finds late (docs/design.md, "Group
 * commit").
 *
 * Deadlines: an unrecorded rid is refused once its deadline has passed,
 * checked before any write and again as the last step before the commit
 * (after the writes), so that a process stopped or descheduled inside the
 * change cannot commit a count its sender has given up on when it comes
 * back.  Only that last check reads the clock; the first, and the expiry
 * of records, use the handle's previous read (once_now), which is earlier
 * than the truth and so errs towards keeping records and towards the
 * last check refusing (one clock read per count: on a VM each read costs
 * hundreds of ns).  A count without a deadline reads the coarse clock
 * for that (once_early_ms), which is behind the truth too.  The last
 * check reads the precise clock: the coarse one lags by more than its
 * resolution (3 to 7 ms here, up to 30 ms under load, with ticks of 4 ms),
 * so no bound of it is sure to be at least the true time.  Before a
 * rebuild or a rid_store_full refusal the clock is read again (precisely),
 * so that an old read never refuses a region with room.  (Between that
 * last check and the commit store there are a few instructions;
 * docs/design.md says what a sender can conclude.)  Times
 * are CLOCK_MONOTONIC: one clock for every process of the machine, which
 * a wall-clock step does not move, and a table lives in /dev/shm, which
 * does not outlive the boot that clock counts from.
 *
 * Trust: the region's words are checked before use (tbl_once_bytes), and a
 * change goes by the words it checked (struct once_view), loaded once, not
 * by the region's words later: a process that may write the object need not
 * take the lock, and between a count's check and its record's write lie
 * crash points (step 0, a rebuild's allocation, the counter's own change)
 * where it may have changed any of them, and it may change them between
 * any two loads.  So each step takes the view its own check loaded
 * (once_region's for the lookup: the tail's drop, once_touch, once_find;
 * tbl_once_tidy's, tbl_once_put's and verify's likewise), the place is
 * checked again after step 0 and after a rebuild, and the record is
 * written where the words checked then say: a scribbled region gives
 * ETSMGR_ECORRUPT or a record in it, never an address outside it nor a
 * walk to a head of 2^62 (suite once_hostile). */
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

#include "table_int.h"

#define ONCE_MAGIC1 0x31454f4e4f4d5445ull /* "ETMONOE1" little-endian: layout 1 */
#define ONCE_MAGIC2 0x32454f4e4f4d5445ull /* "ETMONOE2": layout 2 */
#define ONCE_MAGIC3 0x33454f4e4f4d5445ull /* "ETMONOE3": layout 3 */
#define ONCE_MAGIC 0x34454f4e4f4d5445ull  /* "ETMONOE4": layout 4 */
#define ONCE_SHARE_BITS 2u /* layouts 3 and 4: 2^this consecutive rids of a sender share a home bucket */
/* layout 4: 2^this consecutive rids of a sender share a home page (part of
 * the format, as ONCE_SHARE_BITS: a region written with another value would
 * be looked up in the wrong buckets) */
#define ONCE_RUN_BITS 5u
#define ONCE_PAGE 4096u /* layout 4: the index starts on a page, a page is ONCE_PAGE_BUCKETS buckets */
#define ONCE_PAGE_BUCKETS 64u
#define ONCE_HDR_WORDS 8u
#define ONCE_REC_WORDS 4u
#define ONCE_MIN_CAP 64u
#define ONCE_MAX_CAP (1ull << 28)
#define ONCE_IDX_PER_REC 4u /* index entries per ring record */
#define ONCE_BUCKET 8u      /* index entries per 64-byte bucket */
#define ONCE_TAIL_STEPS 4u  /* expired records a count drops at most */
#define ONCE_TOUCHES 4096u  /* a handle's counts whose index line is written first (once_touch) */
#define ONCE_CHECK_MS 1000  /* how often a handle looks whether its region has become sparse */
#define ONCE_SPARSE 8u      /* ... which it is below 1/this of its records live: rebuilt smaller */
#define ONCE_SWEEP 65536u   /* expired records a look drops at most (2 MB of the ring read) */
#define ONCE_SPARSE_MS 30000 /* how long a count's looks must find it sparse before it shrinks */
#define ONCE_UNMAP_MIN (1u << 20) /* regions this big replaced by smaller ones leave this process's page tables */

int64_t etsmgr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC as of the last tick (the coarse clock: the vDSO returns
 * it without reading the TSC, a quarter of the cost on this project's
 * VMs): never ahead of the true time, so what record expiry and the first
 * deadline check may use (they only keep records longer or leave the
 * refusal to the last check); never the last check, which needs a time at
 * least the true one.  Without the coarse clock, the precise read. */
static int64_t once_early_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return etsmgr_mono_ms();
}


static uint64_t once_size1(uint64_t cap) { return 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * cap); }
/* How far layout magic aligns its index: a cache line (layouts 2 and 3),
 * a page (4: its home pages must be pages of the mapping) */
static uint64_t once_align(uint64_t magic) { return magic == ONCE_MAGIC ? ONCE_PAGE : 64u; }
/* header, ring, up to align - 8 bytes to align the index, index (+8: rounding) */
static uint64_t once_size(uint64_t cap, uint64_t magic)
{
    return 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * cap) + once_align(magic) + 8u * ONCE_IDX_PER_REC * cap;
}

static uint64_t *once_rec(uint64_t *reg, uint64_t slot) { return reg + ONCE_HDR_WORDS + ONCE_REC_WORDS * slot; }

/* The index of the layout 2, 3 or 4 region at off: the first 64-byte (4:
 * 4096-byte) boundary after its records (the mapping is page-aligned, so
 * offsets align as addresses). */
static uint64_t once_idx_off(uint64_t off, uint64_t cap, uint64_t magic)
{
    uint64_t a = once_align(magic);
    return (off + 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * cap) + a - 1u) & ~(a - 1u);
}

/* The region at off as checked, each of its words loaded once: what a
 * change goes by from one of its steps to the next, rather than the words
 * themselves.  A process with write access to the object need not take
 * the lock, and a change's crash points (a rebuild's allocation, the
 * counter's own change) leave it time to: a size or a head read again
 * after its check may then say anything, and an address made from it
 * fall outside the mapping, or a walk to it last 2^62 steps (suite
 * once_hostile).  Layout 1 (magic ETMONOE1): head is its record count,
 * tail 0. */
struct once_view {
    uint64_t *reg; /* the region's words: valid until the mapping moves (tbl_alloc) */
    uint64_t off;  /* where they are (once_off when loaded; 0: no region, once_region) */
    uint64_t magic, cap, head, tail, filled, size;
};

static inline uint64_t once_ld(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_RELAXED); }

__attribute__((always_inline)) static inline bool once_load(etsmgr_table *t, uint64_t off, struct once_view *v)
{
    if (!off || (off & 7u) || off < TBL_HDR_SIZE || off > t->top - 64) return false;
    uint64_t *w = tbl_word(t, off), magic = once_ld(&w[0]), cap = once_ld(&w[1]);
    if ((magic != ONCE_MAGIC && magic != ONCE_MAGIC3 && magic != ONCE_MAGIC2 && magic != ONCE_MAGIC1) ||
        cap < ONCE_MIN_CAP ||
        cap > ONCE_MAX_CAP || (cap & (cap - 1)))
        return false;
    uint64_t size = magic != ONCE_MAGIC1 ? once_size(cap, magic) : once_size1(cap);
    if (size > t->top - off) return false;
    uint64_t head = once_ld(&w[2]), tail = magic != ONCE_MAGIC1 ? once_ld(&w[3]) : 0;
    uint64_t filled = magic != ONCE_MAGIC1 ? once_ld(&w[6]) : 0;
    if (magic == ONCE_MAGIC1 ? head > cap : tail > head || head - tail > cap || filled > ONCE_IDX_PER_REC * cap)
        return false;
    *v = (struct once_view){.reg = w, .off = off, .magic = magic, .cap = cap, .head = head, .tail = tail,
                            .filled = filled, .size = size};
    return true;
}

uint64_t tbl_once_bytes(etsmgr_table *t, uint64_t off)
{
    struct once_view v;
    return once_load(t, off, &v) ? v.size : 0;
}

/* After a rollback (tbl_rollback_to, tbl_recover), before its undo_n
 * store: the table's version as the region the rollback left needs it.
 * The version word is no state word (an undo record names only those), so
 * once_rebuild raises it to 12 (13) with a plain store, which a rollback of
 * that change would leave over the older region it gives back, or over no
 * region: an older library would then refuse a table it reads.  (10 and 11
 * are the versions a library of layout 3 raised to, and a crash of one
 * may have left them so before this library recovers the table.)  Only a
 * raised version goes back (the region a rollback leaves is as old as the
 * version before the change or newer); a scribbled region is left to
 * verify. */
void tbl_once_settle_version(etsmgr_table *t)
{
    struct tbl_hdr *h = t->h;
    uint32_t v = tbl_vbase(h->version), seeded = h->version & TBL_VERSION_SEEDED; /* the flag stays */
    bool v4 = v == TBL_VERSION_ONCE4 || v == TBL_VERSION_BTREE_ONCE4;
    bool btree = v == TBL_VERSION_BTREE_ONCE3 || v == TBL_VERSION_BTREE_ONCE4;
    if (v != TBL_VERSION_ONCE3 && v != TBL_VERSION_ONCE4 && !btree) return;
    uint64_t off = h->once_off, lim = h->total_bytes < t->map_size ? h->total_bytes : t->map_size, magic = 0;
    if (off) {
        if ((off & 7u) || off < TBL_HDR_SIZE || lim < 8 || off > lim - 8) return;
        magic = *tbl_word(t, off);
    }
    if (!off) v = btree ? TBL_VERSION_BTREE : TBL_VERSION;
    else if (magic == ONCE_MAGIC2) v = btree ? TBL_VERSION_BTREE_ONCE2 : TBL_VERSION_ONCE2;
    else if (magic == ONCE_MAGIC1 && !btree) v = TBL_VERSION_ONCE;
    else if (magic == ONCE_MAGIC3 && v4) v = btree ? TBL_VERSION_BTREE_ONCE3 : TBL_VERSION_ONCE3;
    else return;
    h->version = v | seeded;
}

/* murmur3's 64-bit finaliser: every input bit moves every output bit (rids
 * differ anywhere: the CLI's are random, a load generator's may count up
 * in their last bytes, which are the top bits of the second word) */
static uint64_t once_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* A rid's sequence number, for layouts 3 and 4: its last 8 bytes read as a
 * big-endian number, which is how the wire's 32 hex digits print it (a
 * high-rate sender's rid is a random prefix and a counter, see
 * docs/design.md) */
static uint64_t once_seq(uint64_t r1)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return r1;
#else
    return __builtin_bswap64(r1);
#endif
}

/* Layout 3's home, a = once_mix(r0 ^ reg[4]): a keyed hash of the rid's
 * first 8 bytes and its sequence number without its low ONCE_SHARE_BITS,
 * so that a sender's consecutive rids share one bucket (one cache line)
 * instead of each taking a random one; rids that are random throughout
 * (the CLI's) land at random as before, and a sender who does not know
 * the key can put no more rids in one bucket than the 2^ONCE_SHARE_BITS of
 * one group. */
static uint64_t once_home3(const uint64_t *reg, uint64_t a, uint64_t r1)
{
    return once_mix(a ^ (once_seq(r1) >> ONCE_SHARE_BITS) ^ reg[5]);
}

/* Layout 4's home (this one's): the page from a keyed hash of the prefix
 * and the sequence number without its low ONCE_RUN_BITS, so that a
 * sender's 32 consecutive rids share one index page (one TLB entry, one
 * page walk, where layout 3 took one per 4); within it the run's 8 groups
 * of 4 take every 8th bucket from an offset the same hash chooses (why a
 * stride and runs of 32: the opening comment).  The low 6 bits of the home
 * are the bucket within its page, the rest the page: home & (nb - 1) keeps
 * both, as nb is a multiple of 64 (but in the smallest region, 32 buckets,
 * half a page, where only the offset counts).  Always inlined: called per
 * count in once_find and the prefetch, and per record in a rebuild. */
__attribute__((always_inline)) static inline uint64_t once_home4(const uint64_t *reg, uint64_t a, uint64_t r1)
{
    uint64_t s = once_seq(r1), h = once_mix(a ^ (s >> ONCE_RUN_BITS) ^ reg[5]);
    uint64_t g = (s >> ONCE_SHARE_BITS) & ((1u << (ONCE_RUN_BITS - ONCE_SHARE_BITS)) - 1u);
    uint64_t in_page = ((h >> 32) + g * (ONCE_PAGE_BUCKETS >> (ONCE_RUN_BITS - ONCE_SHARE_BITS))) &
                       (ONCE_PAGE_BUCKETS - 1u);
    return (h & ~(uint64_t)(ONCE_PAGE_BUCKETS - 1u)) | in_page;
}

/* Where a rid goes in the index of region reg, of layout magic (the
 * checked one: struct once_view): *home's low bits pick its home bucket,
 * *tag (the high 32 bits of the whole rid's keyed hash) marks its entry.
 * Layout 2: the bucket from that same hash; layouts 3 and 4: their homes
 * above.  The key words are read here, not checked: any key is one, and a
 * changed key only sends a rid to another bucket of the same index. */
static void once_hash(const uint64_t *reg, uint64_t magic, uint64_t r0, uint64_t r1, uint64_t *home, uint32_t *tag)
{
    uint64_t a = once_mix(r0 ^ reg[4]), h = once_mix(a ^ r1 ^ reg[5]);
    *tag = (uint32_t)(h >> 32);
    *home = magic == ONCE_MAGIC ? once_home4(reg, a, r1) : magic == ONCE_MAGIC3 ? once_home3(reg, a, r1) : h;
}

/* once_hash's tag alone */
static uint32_t once_tag(const uint64_t *reg, uint64_t r0, uint64_t r1)
{
    return (uint32_t)(once_mix(once_mix(r0 ^ reg[4]) ^ r1 ^ reg[5]) >> 32);
}

/* The next record at or after position *i that is kept at now (INT64_MIN:
 * any record), in either layout, of the region v; NULL after the last.
 * Start with *i = 0. */
static const uint64_t *once_next(const struct once_view *v, uint64_t *i, int64_t now)
{
    bool ring = v->magic != ONCE_MAGIC1;
    uint64_t end = ring ? v->head : v->cap;
    if (ring && *i < v->tail) *i = v->tail;
    while (*i < end) {
        const uint64_t *rec = once_rec(v->reg, *i & (v->cap - 1));
        ++*i;
        if (rec[3] && (int64_t)rec[3] >= now) return rec;
    }
    return NULL;
}

/* In the layout 2, 3 or 4 region v (as once_load checked it, never its
 * words again: a scribbler's size word would put the index anywhere, test
 * once_hostile/once_cap_loaded_once): 1, rid (r0, r1) is in the store, its
 * record at ring slot *slot; 0, absent, *ent the entry its record is to
 * take: the first one of its probe that no lookup needs any more (an entry
 * whose slot is outside the window, as the entry says without reading the
 * record: its record was dropped, or is being dropped by this change,
 * whose tail will be at least gone; 0: the tail as it is), else the empty
 * entry ending the probe; <0, no empty entry at all (scribbled).
 *
 * Why an entry of a dropped record may be taken: a lookup goes on past any
 * entry that is not empty and stops at the first empty one, so what keeps
 * it right is only that no entry between a rid's home and its own entry is
 * ever emptied, and taking one over leaves it used.  (An entry whose slot
 * the ring has filled again with another rid is dead too, but only its
 * record would say so: it stays until that record drops as well.) */
static int once_find(etsmgr_table *t, const struct once_view *v, uint64_t r0, uint64_t r1, uint64_t gone,
                     uint64_t *ent, uint64_t *slot)
{
    uint64_t *reg = v->reg, cap = v->cap, nb = cap * ONCE_IDX_PER_REC / ONCE_BUCKET;
    uint64_t head = v->head, tail = v->tail, home, take = UINT64_MAX;
    if (gone < tail || gone > head) gone = tail;
    uint32_t tag;
    once_hash(reg, v->magic, r0, r1, &home, &tag);
    uint64_t b = home & (nb - 1);
    const uint64_t *idx = tbl_word(t, once_idx_off(v->off, cap, v->magic));
    for (uint64_t n = 0; n < nb; n++, b = (b + 1) & (nb - 1)) {
        const uint64_t *bk = idx + ONCE_BUCKET * b;
        for (unsigned j = 0; j < ONCE_BUCKET; j++) {
            uint64_t e = bk[j];
            if (!e) {
                *ent = take != UINT64_MAX ? take : ONCE_BUCKET * b + j;
                return 0;
            }
            uint64_t s = (uint32_t)e - 1u;
            if (take == UINT64_MAX && (s >= cap || ((s - gone) & (cap - 1)) >= head - gone))
                take = ONCE_BUCKET * b + j; /* its record dropped, or being dropped */
            if ((uint32_t)(e >> 32) != tag) continue;
            if (s >= cap || ((s - tail) & (cap - 1)) >= head - tail) continue; /* dropped */
            const uint64_t *rec = once_rec(reg, s);
            if (rec[0] == r0 && rec[1] == r1 && rec[3]) {
                *slot = s;
                return 1;
            }
        }
    }
    return ETSMGR_ECORRUPT;
}

/* Before a count of one of a handle's first ONCE_TOUCHES reads the index
 * line of a rid's home: makes the line's first access a write (an atomic
 * OR of 0, under the lock; it changes no bit, so no reader and no crash
 * can see a difference).  Why: the index is a shared mapping of a file, so
 * the kernel answers a read fault by mapping that page and up to 15 more
 * around it (fault-around; MADV_RANDOM does not stop it here), and a write
 * fault by mapping that one page.  A process that just took a big region
 * over (a hot standby after a burst; docs/performance.md, "A fourth pass")
 * touches a random page of it per count, and when it is killed in turn
 * the kernel tears down every page it mapped before its sockets close, on
 * the next takeover's path: sixteen for each read fault.  The count writes
 * the line anyway (its record's entry), so this only puts the write
 * first; after the first ONCE_TOUCHES counts of a handle the pages its
 * counts meet are mostly mapped, and the OR would be an instruction for
 * nothing. */
static void once_touch(etsmgr_table *t, const struct once_view *v, uint64_t r0, uint64_t r1)
{
    /* by the checked size, as once_find: an OR at an address a size word
     * read again made up is a fault, or a write into another block */
    uint64_t cap = v->cap, nb = cap * ONCE_IDX_PER_REC / ONCE_BUCKET, home;
    uint32_t tag;
    once_hash(v->reg, v->magic, r0, r1, &home, &tag);
    uint64_t *line = tbl_word(t, once_idx_off(v->off, cap, v->magic)) + ONCE_BUCKET * (home & (nb - 1));
    (void)__atomic_fetch_or(line, 0, __ATOMIC_RELAXED);
}

/* A rid's entry in the index being built (unreachable: plain stores). */
static int once_index_add(uint64_t *idx, uint64_t nb, uint64_t home, uint32_t tag, uint64_t slot)
{
    uint64_t b = home & (nb - 1);
    for (uint64_t n = 0; n < nb; n++, b = (b + 1) & (nb - 1))
        for (unsigned j = 0; j < ONCE_BUCKET; j++)
            if (!idx[ONCE_BUCKET * b + j]) {
                idx[ONCE_BUCKET * b + j] = (uint64_t)tag << 32 | (slot + 1u);
                return 0;
            }
    return ETSMGR_ECORRUPT;
}

/* A new layout 4 region for the live records of the old one (old_off 0:
 * none; any layout) plus one more; switches once_off to it through the
 * undo log.  from: a ring position of the old region before which every
 * record is known to have expired (0: none known), so that they are not
 * read twice.  min_cap: the fewest records the new ring takes (0: as few as
 * the live records need). */
static int once_rebuild(etsmgr_table *t, uint64_t old_off, int64_t now, uint64_t max_records, uint64_t from,
                        uint64_t min_cap)
{
    struct tbl_hdr *h = t->h;
    uint64_t live = 0, old_size = 0, seed[2], i = from;
    int64_t first_expiry = INT64_MAX;
    struct once_view ov; /* the old region as checked: its words may change at the crash points below */
    if (old_off) {
        if (!once_load(t, old_off, &ov)) return ETSMGR_ECORRUPT;
        uint64_t *old = ov.reg;
        old_size = ov.size;
        for (const uint64_t *rec; (rec = once_next(&ov, &i, now)) != NULL; live++)
            if ((int64_t)rec[3] < first_expiry) first_expiry = (int64_t)rec[3];
        seed[0] = ov.magic != ONCE_MAGIC1 ? old[4] : old[3];
        seed[1] = ov.magic != ONCE_MAGIC1 ? old[5] : old[4];
    } else {
        tbl_random_key(seed, t);
    }
    if (max_records && live + 1 > max_records) {
        /* no record can go before the first keep time: until then, refuse
         * without scanning again (a peer at the limit must not make each
         * of its counts cost a walk of the whole region) */
        t->once_full_until = first_expiry;
        t->once_full_max = max_records;
        return ETSMGR_ERIDFULL;
    }
    uint64_t cap = ONCE_MIN_CAP;
    /* twice the live records (this one's room among them): a full ring of
     * R becomes 2R, not 4R as when it was twice the live records and one */
    while ((cap < 2 * live || cap < min_cap) && cap < ONCE_MAX_CAP) cap *= 2;
    if (cap < 2 * live) return ETSMGR_ERIDFULL;
    uint64_t size = once_size(cap, ONCE_MAGIC), noff;
    const char *op = t->cp_op;
    t->cp_op = "once_rebuild";
    int r = tbl_alloc(t, size, &noff); /* may move the mapping */
    if (r) {
        t->cp_op = op;
        return r;
    }
    uint64_t *nw = tbl_word(t, noff), ioff = once_idx_off(noff, cap, ONCE_MAGIC), nb = cap * ONCE_IDX_PER_REC / ONCE_BUCKET;
    uint64_t *idx = tbl_word(t, ioff);
    /* the header and the index start empty; ring slots past head are never
     * read, so they need no clearing */
    memset(nw, 0, 8u * ONCE_HDR_WORDS);
    memset(idx, 0, 8u * ONCE_IDX_PER_REC * cap);
    nw[0] = ONCE_MAGIC;
    nw[1] = cap;
    nw[4] = seed[0];
    nw[5] = seed[1];
    if (old_off) {
        uint64_t n = 0;
        ov.reg = tbl_word(t, old_off); /* the mapping may have moved */
        i = from;
        for (const uint64_t *rec; (rec = once_next(&ov, &i, now)) != NULL && n < live; n++) {
            memcpy(once_rec(nw, n), rec, 8 * ONCE_REC_WORDS);
            uint64_t home;
            uint32_t tag;
            once_hash(nw, ONCE_MAGIC, rec[0], rec[1], &home, &tag);
            if (once_index_add(idx, nb, home, tag, n)) return ETSMGR_ECORRUPT;
        }
        nw[2] = nw[6] = n;
    }
    /* a plain store (no state word): a rollback sets it back from the
     * region it restores (tbl_once_settle_version) */
    uint32_t v = tbl_vbase(h->version), seeded = h->version & TBL_VERSION_SEEDED;
    if (v == TBL_VERSION || v == TBL_VERSION_ONCE || v == TBL_VERSION_ONCE2 || v == TBL_VERSION_ONCE3)
        h->version = TBL_VERSION_ONCE4 | seeded; /* see table_int.h */
    else if (v == TBL_VERSION_BTREE || v == TBL_VERSION_BTREE_ONCE2 || v == TBL_VERSION_BTREE_ONCE3)
        h->version = TBL_VERSION_BTREE_ONCE4 | seeded;
    tbl_cp(t);
    tbl_set(t, TBL_HOFF(once_off), noff);
    tbl_set(t, TBL_HOFF(live_bytes), h->live_bytes + size - old_size);
    if (old_off && (r = tbl_defer_free(t, old_off, old_size)) != 0) return r;
    if (old_size >= ONCE_UNMAP_MIN && size < old_size) {
        t->once_unmap_off = old_off;
        t->once_unmap_len = old_size;
    }
    t->cp_op = op;
    return 0;
}

/* After the change that replaced a big region by a smaller one (a shrink):
 * the old one's pages leave this process's page tables (MADV_DONTNEED on a
 * shared mapping drops only the mappings; the object keeps the bytes, so
 * it is safe whatever happened to the change, and a later use of those
 * bytes faults them in again).  A process that served a burst otherwise
 * keeps hundreds of MB of the old region mapped, which its exit (a SIGKILL
 * before a standby's takeover) must tear down page by page; a process that
 * shrank a region it never served (a fresh etscounterd) would keep the old
 * ring it just read.  Not after growth or a same-size rebuild: under a
 * steady high rate those alternate between blocks that this process will
 * use again, and each reuse would fault every page back in. */
static void once_unmap(etsmgr_table *t)
{
    uint64_t off = t->once_unmap_off, end = off + t->once_unmap_len;
    t->once_unmap_off = t->once_unmap_len = 0;
    off = (off + 4095u) & ~(uint64_t)4095u;
    end &= ~(uint64_t)4095u;
    if (end > t->map_size) end = t->map_size & ~(uint64_t)4095u;
    if (off < end) (void)madvise(t->base + off, end - off, MADV_DONTNEED); /* a hint: nothing to do if refused */
}

/* Where a new record goes (once_place), written by once_write. */
struct once_spot {
    uint64_t off;  /* the region */
    uint64_t ent;  /* the index entry the record takes (once_find's) */
    uint64_t tail; /* the ring's tail after dropping expired records */
    /* the region's words as once_place checked them (struct once_view),
     * which once_write goes by: a scribbler may change them meanwhile */
    uint64_t cap, head, tail0, filled;
};

/* Drops expired records from the ring's tail, at most steps of them, in
 * the ring of reg as checked (cap, head, tail: struct once_view's); the
 * new tail (not written: once_write logs it with the rest). */
static uint64_t once_drop_from(const uint64_t *reg, uint64_t cap, uint64_t head, uint64_t tail, int64_t now,
                               uint64_t steps)
{
    for (; steps && tail < head; steps--, tail++)
        if ((int64_t)once_rec((uint64_t *)reg, tail & (cap - 1))[3] >= now) break;
    return tail;
}

/* The spot of rid (r0, r1) in the region at once_off after a rebuild:
 * the word loaded once and the region checked, as a scribbler may have
 * changed either at the rebuild's crash points. */
static int once_spot_rebuilt(etsmgr_table *t, uint64_t r0, uint64_t r1, struct once_spot *sp)
{
    struct once_view v;
    uint64_t o = once_ld(&t->h->once_off), ent, slot;
    if (!once_load(t, o, &v) || v.magic != ONCE_MAGIC) return ETSMGR_ECORRUPT;
    if (once_find(t, &v, r0, r1, 0, &ent, &slot) != 0 || ent >= ONCE_IDX_PER_REC * v.cap) return ETSMGR_ECORRUPT;
    *sp = (struct once_spot){
        .off = o, .ent = ent, .tail = v.tail, .cap = v.cap, .head = v.head, .tail0 = v.tail, .filled = v.filled};
    return 0;
}

/* Under the lock, rid (r0, r1) known to be absent from the layout 4 region
 * at once_off (if any), ent what once_find said of it given gone (the
 * tail it expects this change to drop to).  Makes room for its record (a
 * rebuild first when needed, which may move the mapping) and says where it
 * goes. */
static int once_place(etsmgr_table *t, uint64_t r0, uint64_t r1, int64_t now, uint64_t max_records, uint64_t ent,
                      uint64_t gone, struct once_spot *sp)
{
    struct tbl_hdr *h = t->h;
    uint64_t o = once_ld(&h->once_off);
    bool again = false;
    for (;;) {
        uint64_t tail = 0, min_cap = 0;
        if (o) {
            /* checked again: the count's check of it came before a crash
             * point (step 0), where a scribbler may have changed anything */
            struct once_view v;
            if (!once_load(t, o, &v) || v.magic != ONCE_MAGIC || ent >= ONCE_IDX_PER_REC * v.cap)
                return ETSMGR_ECORRUPT;
            uint64_t *reg = v.reg, cap = v.cap, head = v.head;
            tail = once_drop_from(reg, cap, head, v.tail, now, ONCE_TAIL_STEPS);
            /* at least as far as once_find was told (the same drop with the
             * same or an earlier now): ent may be an entry of one of them */
            if (tail < gone && gone <= head) tail = gone;
            bool sparse = false;
            if (!t->once_armed) {
                /* a handle's first count: its first look comes a check
                 * interval later, so that a process that just took the
                 * table over (a hot standby, a restart) answers its first
                 * counts without the sweep below, which after a burst can
                 * cost milliseconds (docs/performance.md, issue 17) */
                t->once_armed = true;
                if (t->once_check_ms == 0) t->once_check_ms = now + ONCE_CHECK_MS;
            }
            if (now >= t->once_check_ms) {
                /* now and then (once a second per handle): after a burst
                 * the region keeps the burst's size, and each count would
                 * touch a random page of it.  Drop every expired record at
                 * the tail (each is dropped once, so this costs no more
                 * than the tail steps would) and see how many are left;
                 * below 1/8 of the ring, rebuild at twice the live records
                 * (a quarter of the size or less).  The next shrink needs
                 * the live records to fall by 4x again, and growth comes
                 * only at a full ring: a steady load never flaps. */
                t->once_check_ms = now + ONCE_CHECK_MS;
                /* at most ONCE_SWEEP records a look (about a millisecond):
                 * the rest at the next looks; the live count is known, and
                 * a shrink decided, only once a look reached a kept record */
                tail = once_drop_from(reg, cap, head, tail, now, cap < ONCE_SWEEP ? cap : ONCE_SWEEP);
                bool swept = tail == head || (int64_t)once_rec(reg, tail & (cap - 1))[3] >= now;
                sparse = swept && cap > ONCE_MIN_CAP && head - tail < cap / ONCE_SPARSE &&
                         (!max_records || head - tail + 1 <= max_records);
                /* and sparse for a while: a sender that bursts every few
                 * seconds would otherwise see the region shrink between its
                 * bursts and regrow in each (rebuilding millions of index
                 * entries, about 0.1 s each time); tbl_once_tidy, called by
                 * a process that just took the table over, does not wait */
                if (!sparse) t->once_sparse_since = 0;
                else if (!t->once_sparse_since) t->once_sparse_since = now, sparse = false;
                else if (now - t->once_sparse_since < ONCE_SPARSE_MS) sparse = false;
            }
            bool full = head - tail == cap || (max_records && head - tail + 1 > max_records);
            if (full) tail = once_drop_from(reg, cap, head, tail, now, cap); /* all it can, before anything dearer */
            full = head - tail == cap || (max_records && head - tail + 1 > max_records);
            bool crowded = v.filled + 1 > cap * ONCE_IDX_PER_REC / 2;
            struct once_spot here = {
                .off = o, .ent = ent, .tail = tail, .cap = cap, .head = head, .tail0 = v.tail, .filled = v.filled};
            if (!full && !crowded && !sparse) {
                *sp = here;
                return 0;
            }
            if (sparse && !full && !crowded) {
                int r = once_rebuild(t, o, now, max_records, tail, 0);
                if (r && (r == ETSMGR_ECORRUPT || once_ld(&h->once_off) != o)) return r;
                if (r == 0) return once_spot_rebuilt(t, r0, r1, sp);
                /* no room for the smaller block: the region as it is will do */
                *sp = here;
                return 0;
            }
            if (full && !again) {
                /* about to rebuild or refuse: now may be this handle's last
                 * clock read (see etsmgr_table_update_counter_once), too
                 * early to see records that have expired since; read the
                 * clock and look again */
                again = true;
                int64_t fresh_now = etsmgr_mono_ms();
                if (fresh_now > now) {
                    now = t->once_now = fresh_now;
                    continue;
                }
            }
            if (full && max_records && head - tail + 1 > max_records && max_records <= t->once_full_max &&
                now <= t->once_full_until)
                return ETSMGR_ERIDFULL; /* full, and nothing has expired since it was found so */
            /* crowded but not full: the index ran out, not the ring, so the
             * same size again, never smaller (shrinking is the sparse
             * rule's, which waits for the load to have gone: sized for the
             * live records of a lull between bursts, the region regrew
             * through every size in the next burst) */
            min_cap = full ? 0 : cap;
        } else {
            now = t->once_now = etsmgr_mono_ms();
        }
        int r = once_rebuild(t, o, now, max_records, tail, min_cap);
        if (r) return r;
        return once_spot_rebuilt(t, r0, r1, sp);
    }
}

/* Appends the record at the ring's head of the region once_place chose. */
static void once_write(etsmgr_table *t, const struct once_spot *sp, uint64_t r0, uint64_t r1, int64_t value,
                       int64_t keep)
{
    /* by the words once_place checked, not the region's now: a scribbler
     * may have changed them at the crash points since (suite once_hostile) */
    uint64_t *reg = tbl_word(t, sp->off), cap = sp->cap, head = sp->head, slot = head & (cap - 1);
    uint64_t *rec = once_rec(reg, slot);
    /* the window a rollback would bring back starts at the committed tail:
     * sp->tail0 is the region's tail now, which an earlier count of this
     * change (a batch, a group) may have moved already, uncommitted; a slot
     * it dropped was written here without the log, and a rollback (a late
     * count refused, a crash) left this record in a live slot of the old
     * window: a rebuild then answered its rid as counted */
    uint64_t tail_c = t->once_ct_off == sp->off ? t->once_ct_tail : sp->tail0;
    if (head - tail_c < cap) {
        /* outside the window [tail, head): nobody reads it until head moves */
        rec[0] = r0;
        rec[1] = r1;
        rec[2] = (uint64_t)value;
        rec[3] = (uint64_t)keep;
    } else {
        /* a full ring whose oldest records this count drops (sp->tail):
         * the slot at head is the tail's, in the window until the commit
         * moves the tail, so its old record must come back with a
         * rollback, not stay there as a record of this rid without its
         * increment (a rebuild or an image would then answer its retry
         * as done) */
        uint64_t roff = sp->off + 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * slot);
        tbl_set(t, roff, r0);
        tbl_set(t, roff + 8, r1);
        tbl_set(t, roff + 16, (uint64_t)value);
        tbl_set(t, roff + 24, (uint64_t)keep);
    }
    tbl_cp(t);
    uint64_t tag = once_tag(reg, r0, r1), eoff = once_idx_off(sp->off, cap, ONCE_MAGIC) + 8u * sp->ent;
    bool was_empty = *tbl_word(t, eoff) == 0; /* else a dropped record's entry, taken over */
    tbl_set(t, eoff, tag << 32 | (slot + 1u));
    if (was_empty) tbl_set(t, sp->off + 48, sp->filled + 1);
    if (sp->tail != sp->tail0) {
        if (t->once_ct_off != sp->off) t->once_ct_off = sp->off, t->once_ct_tail = sp->tail0; /* the first move */
        tbl_set(t, sp->off + 24, sp->tail);
    }
    tbl_set(t, sp->off + 16, head + 1);
}

/* The layout 4 region of the table as checked (v->off 0: none), an older
 * one rebuilt first.  Its caller goes by *v, not by the region's words,
 * until its next crash point. */
__attribute__((always_inline)) static inline int once_region(etsmgr_table *t, int64_t now, struct once_view *v)
{
    uint64_t off = once_ld(&t->h->once_off);
    v->off = 0;
    if (!off) return 0;
    if (!once_load(t, off, v)) return ETSMGR_ECORRUPT;
    if (v->magic == ONCE_MAGIC) return 0;
    int r = once_rebuild(t, off, now, 0, 0, 0);
    if (r) return r;
    /* loaded and checked again: the rebuild's crash points came between */
    off = once_ld(&t->h->once_off);
    if (!once_load(t, off, v) || v->magic != ONCE_MAGIC) return ETSMGR_ECORRUPT;
    return 0;
}

/* One count under the lock, inside a change the caller began and ends
 * (commits, or rolls back to before this count): everything but the last
 * deadline check, which the caller makes after its last write.  *nv: the
 * new value, or the recorded one when *dup (then nothing was written). */
static int once_count_locked(etsmgr_table *t, const void *key, size_t klen, uint64_t hv, int64_t incr,
                             const etsmgr_once *once, int64_t now, int64_t *nvp, int *dup)
{
    uint64_t r0, r1, pos, ent = 0, slot, gone = 0;
    memcpy(&r0, once->rid, 8);
    memcpy(&r1, once->rid + 8, 8);
    *dup = 0;
    struct once_view v; /* up to step 0, the region as checked here */
    int r = once_region(t, now, &v);
    if (r) return r;
    if (v.off) {
        /* the tail this count drops to (once_place drops at least these):
         * their entries are free for the new record */
        gone = once_drop_from(v.reg, v.cap, v.head, v.tail, now, ONCE_TAIL_STEPS);
        if (t->once_touches < ONCE_TOUCHES) {
            t->once_touches++;
            once_touch(t, &v, r0, r1);
        }
        int found = once_find(t, &v, r0, r1, gone, &ent, &slot);
        if (found < 0) return found;
        if (found) {
            *nvp = (int64_t)once_rec(v.reg, slot)[2];
            *dup = 1;
            return 0;
        }
    }
    if (once->deadline_ms && now > once->deadline_ms) return ETSMGR_EEXPIRED;
    tbl_cp(t); /* step 0: checked, nothing written yet (a test stops the process here) */
    struct once_spot sp;
    r = once_place(t, r0, r1, now, once->max_records, ent, gone, &sp);
    if (r) return r;
    /* the counter, found after any rebuild (the mapping may have moved) */
    struct tbl_ent *e = NULL;
    r = tbl_find(t, key, klen, hv, &pos, &e);
    int64_t nv = incr;
    if (r == 1 && t->found.type != ETSMGR_INT) { /* the header tbl_find checked, not e's (read again) */
        return ETSMGR_ETYPE;
    } else if (r == 1) {
        uint64_t voff = (uint64_t)((char *)e - t->base) + tbl_ent_voff(&t->found);
        nv = (int64_t)(*tbl_word(t, voff) + (uint64_t)incr); /* wraps like the hardware */
        r = tbl_touch(t, hv); /* lock-free readers of the counter */
        if (r) return r;
        tbl_set(t, voff, (uint64_t)nv);
    } else if (r == 0) {
        etsmgr_value v = {.type = ETSMGR_INT, .i = incr};
        r = tbl_put_new(t, key, klen, hv, pos, &v); /* may grow and move the mapping */
        if (r) return r;
    } else {
        return r;
    }
    once_write(t, &sp, r0, r1, nv, once->keep_until_ms);
    *nvp = nv;
    return 0;
}

static bool once_args_ok(const etsmgr_once *once)
{
    return once && once->keep_until_ms > 0 && once->deadline_ms >= 0 &&
           (!once->deadline_ms || once->keep_until_ms >= once->deadline_ms);
}

int etsmgr_table_update_counter_once(etsmgr_table *t, const void *key, size_t klen, int64_t incr,
                                     const etsmgr_once *once, int64_t *newval, int *dup)
{
    if (!t || !key || klen < 1 || klen > ETSMGR_KEY_MAX || !once_args_ok(once)) return ETSMGR_EINVAL;
    uint64_t hv = tbl_hash(t->hseed, key, klen);
    if (dup) *dup = 0;
    int r = tbl_op_begin(t, "count_once", true);
    if (r) return r;
    /* One clock read per count (on a VM each costs hundreds of ns).  With a
     * deadline the read that counts is the last step before the commit,
     * below; until then this handle's previous read stands in for now.  It
     * is earlier than the true time, so it can only take a record for
     * live that has expired (kept longer, never dropped early) and pass a
     * deadline the last check then refuses; once_place reads the clock
     * before it rebuilds or refuses a full region.  Read under the lock:
     * the handle's threads share once_now. */
    int64_t now = t->once_now, nv = 0;
    if (!once->deadline_ms || now <= 0) now = t->once_now = once_early_ms();
    int d = 0;
    r = once_count_locked(t, key, klen, hv, incr, once, now, &nv, &d);
    /* the last step before the commit: has the deadline passed meanwhile?
     * (the precise clock: a coarse read may be behind by several ms) */
    if (r == 0 && !d && once->deadline_ms && (t->once_now = etsmgr_mono_ms()) > once->deadline_ms)
        r = ETSMGR_EEXPIRED;
    r = tbl_op_end(t, r);
    if (t->once_unmap_len) once_unmap(t);
    if (r == 0) {
        if (newval) *newval = nv;
        if (dup) *dup = d;
    }
    return r;
}

/* Group commit (etscounterd's pipelined counts): the counts of q[0..n) as
 * ONE change, with one lock, one clock read and one commit, where each
 * count alone takes all three (at 16 counts a read, a third of what the
 * store costs a count beyond its cache misses).  Each request keeps its
 * own answer, as if counted alone in that order: a rid repeated in the
 * batch is a duplicate of its first; a refused one (expired,
 * rid_store_full, ...) writes nothing and the others go on, since its own
 * writes are rolled back to where it began (the group's mark).
 *
 * The deadlines: the last check must come after every write of the change
 * that commits a count, so it is one clock read after the batch's last
 * write.  When a counted request's deadline has passed by then, the whole
 * batch is rolled back and done again without it (refused: expired), and
 * checked again; each pass drops at least one, and on this machine a batch
 * takes microseconds against deadlines of seconds, so this is all but
 * never taken.
 *
 * Bounds: the undo log holds about five records a count (the counter, the
 * index entry, filled, head; a full ring's reused slot four more) and a
 * rebuild's alloc and switch; before each count the batch checks there is
 * room for the largest single change (TBL_OP_WORDS) and deferred frees, as
 * a group does, and stops there otherwise: the counts after it are left
 * for another call (the return value says how many were answered).
 * ETSMGR_ECORRUPT in any count rolls the whole batch back. */
int tbl_once_count_many(etsmgr_table *t, const void *key, size_t klen, int64_t incr, tbl_once_req *q, size_t n)
{
    if (!t || !key || klen < 1 || klen > ETSMGR_KEY_MAX || !q) return ETSMGR_EINVAL;
    if (t->in_group) return ETSMGR_EGROUP;
    if (n == 0) return 0;
    uint64_t hv = tbl_hash(t->hseed, key, klen);
    bool early = false; /* one request without a deadline: the coarse clock for now */
    for (size_t i = 0; i < n; i++) {
        q[i].rc = once_args_ok(&q[i].once) ? 0 : ETSMGR_EINVAL;
        q[i].dup = 0;
        q[i].value = 0;
        if (!q[i].once.deadline_ms) early = true;
    }
    int r = tbl_op_begin(t, "count_once_many", true);
    if (r) return r;
    int64_t now = t->once_now;
    if (early || now <= 0) now = t->once_now = once_early_ms();
    size_t done;
    for (;;) {
        bool dl = false; /* a request counted with a deadline: the last check reads the clock */
        for (done = 0; done < n; done++) {
            tbl_once_req *x = &q[done];
            if (x->rc == ETSMGR_EINVAL || x->rc == ETSMGR_EEXPIRED) continue;
            if (t->un + TBL_OP_WORDS + 3u * (uint64_t)(t->npend + 4) > TBL_UNDO_MAX || t->npend + 4 > TBL_PEND_MAX)
                break; /* no room for another change: the rest are the next call's */
            uint64_t mark = t->un;
            int pend_mark = t->npend;
            x->rc = once_count_locked(t, key, klen, hv, incr, &x->once, now, &x->value, &x->dup);
            if (x->rc < 0 && x->rc != ETSMGR_ECORRUPT && tbl_rollback_to(t, mark) != 0)
                x->rc = ETSMGR_ECORRUPT; /* this one's writes only undone, and what is left not valid */
            if (x->rc == ETSMGR_ECORRUPT) {
                tbl_rollback_to(t, 0);
                t->npend = 0;
                return tbl_op_end(t, ETSMGR_ECORRUPT);
            }
            if (x->rc < 0) {
                t->npend = pend_mark;
            } else if (!x->dup && x->once.deadline_ms) {
                dl = true;
            }
            /* once_place may have read the clock (before a rebuild) */
            if (t->once_now > now) now = t->once_now;
        }
        if (!dl) break;
        /* the last step before the commit, for every count of the batch */
        int64_t last = t->once_now = etsmgr_mono_ms();
        bool late = false;
        for (size_t i = 0; i < done; i++)
            if (q[i].rc == 0 && !q[i].dup && q[i].once.deadline_ms && last > q[i].once.deadline_ms) {
                q[i].rc = ETSMGR_EEXPIRED;
                late = true;
            }
        if (!late) break;
        /* a count whose deadline passed inside the batch: undo the batch and
         * do it again without those (the others' answers may change: a
         * later duplicate of a refused rid is now the one counted) */
        if (tbl_rollback_to(t, 0) != 0) {
            t->npend = 0;
            return tbl_op_end(t, ETSMGR_ECORRUPT);
        }
        t->npend = 0;
        for (size_t i = 0; i < n; i++)
            if (q[i].rc != ETSMGR_EINVAL && q[i].rc != ETSMGR_EEXPIRED) q[i].rc = 0, q[i].dup = 0;
        now = t->once_now;
    }
    r = tbl_op_end(t, 0); /* the commit of every count left in the batch */
    if (t->once_unmap_len) once_unmap(t);
    if (r) {
        for (size_t i = 0; i < done; i++)
            if (q[i].rc == 0) q[i].rc = r;
        return r;
    }
    return (int)done;
}

/* The pages of ring slots [from, to) leave this process's page tables
 * (whole pages only; the ring is circular).  For tbl_once_tidy's dropped
 * records: this process will not read them again, and a process that keeps
 * what it swept mapped makes its own exit slower (the kernel tears a dying
 * process's pages down before its sockets close: for an owner killed
 * under a hot standby, each 2 MB swept delayed the takeover).  As in
 * once_unmap, the object keeps the bytes, so this is safe whatever the
 * change's fate; the head's appends fault the pages in again when the
 * ring wraps round to them. */
static void once_unmap_slots(etsmgr_table *t, uint64_t off, uint64_t cap, uint64_t from, uint64_t to)
{
    if (to - from >= cap) from = 0, to = cap;
    uint64_t a = from & (cap - 1), n = to - from, ranges[2][2] = {{a, a + n}, {0, 0}};
    if (a + n > cap) ranges[0][1] = cap, ranges[1][1] = a + n - cap;
    for (int i = 0; i < 2; i++) {
        uint64_t lo = off + 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * ranges[i][0]);
        uint64_t hi = off + 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * ranges[i][1]);
        lo = (lo + 4095u) & ~(uint64_t)4095u;
        hi &= ~(uint64_t)4095u;
        if (hi > t->map_size) hi = t->map_size & ~(uint64_t)4095u;
        if (lo < hi) (void)madvise(t->base + lo, hi - lo, MADV_DONTNEED); /* a hint: nothing to do if refused */
    }
}

/* One look for a shrink (once_place's, with the same bounds) as a change of
 * its own, not inside a count: what a process calls off its requests'
 * path, so that a region left sparse by a burst is made small even by
 * owners that live less than a check interval (a hot standby promoted
 * after each of many kills: etscounterd calls it once its first answers
 * are out).  The handle's own next look is a check interval later.
 * Returns 1 when the look stopped at its bound (ONCE_SWEEP records
 * dropped) with more expired records behind them: the caller should call
 * again soon (between its requests), so that one process finishes the
 * sweep and the shrink, instead of every short-lived owner sweeping
 * another 2 MB of a burst's ring (millions of records: 64 owners at
 * 65,536 a look) while each of its counts touches a random page of the
 * burst-sized index.  The records it dropped leave its page tables. */
int tbl_once_tidy(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    int r = tbl_op_begin(t, "once_tidy", true);
    if (r) return r;
    int64_t now = t->once_now = etsmgr_mono_ms();
    t->once_armed = true;
    t->once_check_ms = now + ONCE_CHECK_MS;
    struct once_view v; /* the region as checked: its words may say anything by now */
    if ((r = once_region(t, now, &v)) != 0 || !v.off) return tbl_op_end(t, r);
    uint64_t off = v.off, cap = v.cap, head = v.head, from = v.tail;
    uint64_t tail = once_drop_from(v.reg, cap, head, from, now, cap < ONCE_SWEEP ? cap : ONCE_SWEEP);
    bool swept = tail == head || (int64_t)once_rec(v.reg, tail & (cap - 1))[3] >= now;
    if (swept && cap > ONCE_MIN_CAP && head - tail < cap / ONCE_SPARSE) {
        r = once_rebuild(t, off, now, 0, tail, 0);
        if (r && r != ETSMGR_ECORRUPT && t->h->once_off == off) r = 0; /* no room for it: as it is */
    }
    /* the region kept: the expired records dropped (one logged word) */
    bool kept = r == 0 && t->h->once_off == off;
    if (kept && tail != from) tbl_set(t, off + 24, tail);
    uint64_t noff = r == 0 && !kept ? t->h->once_off : 0, nlen = noff ? tbl_once_bytes(t, noff) : 0;
    r = tbl_op_end(t, r);
    if (t->once_unmap_len) once_unmap(t);
    else if (r == 0 && kept && tail != from) once_unmap_slots(t, off, cap, from, tail);
    if (r == 0 && nlen >= ONCE_UNMAP_MIN) {
        /* the smaller block this look wrote leaves this process's page
         * tables too: the process that tidies has just taken the table
         * over (a hot standby), and if it is killed before it has served
         * much, its exit would first tear down every page of the block it
         * wrote (tens of MB after a burst: 2 to 7 ms on the next
         * takeover's path, docs/performance.md); the pages its counts
         * need come back one fault at a time */
        t->once_unmap_off = noff;
        t->once_unmap_len = nlen;
        once_unmap(t);
    }
    return r ? r : !swept;
}

int tbl_once_put(etsmgr_table *t, const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep_until)
{
    if (!t || !rid || keep_until <= 0) return ETSMGR_EINVAL;
    uint64_t r0, r1, ent = 0, slot;
    memcpy(&r0, rid, 8);
    memcpy(&r1, rid + 8, 8);
    int64_t now = etsmgr_mono_ms();
    int r = tbl_op_begin(t, "once_put", true);
    if (r) return r;
    struct once_view v;
    if ((r = once_region(t, now, &v)) != 0) return tbl_op_end(t, r);
    if (v.off) {
        r = once_find(t, &v, r0, r1, 0, &ent, &slot);
        if (r) return tbl_op_end(t, r < 0 ? r : ETSMGR_EEXIST);
    }
    struct once_spot sp;
    r = once_place(t, r0, r1, now, 0, ent, 0, &sp);
    if (r) return tbl_op_end(t, r);
    once_write(t, &sp, r0, r1, value, keep_until);
    r = tbl_op_end(t, 0);
    if (t->once_unmap_len) once_unmap(t);
    return r;
}

int tbl_once_each(etsmgr_table *t, int64_t now,
                  int (*cb)(const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep_until, void *arg),
                  void *arg)
{
    uint64_t off = once_ld(&t->h->once_off), i = 0;
    struct once_view v;
    if (!off) return 0;
    if (!once_load(t, off, &v)) return ETSMGR_ECORRUPT;
    for (const uint64_t *rec; (rec = once_next(&v, &i, now)) != NULL;) {
        uint8_t rid[ETSMGR_RID_LEN];
        memcpy(rid, &rec[0], 8);
        memcpy(rid + 8, &rec[1], 8);
        int r = cb(rid, (int64_t)rec[2], (int64_t)rec[3], arg);
        if (r) return r;
    }
    return 0;
}

int tbl_once_verify(etsmgr_table *t, char *why, size_t whylen)
{
    uint64_t off = once_ld(&t->h->once_off);
    struct once_view v; /* the loops go by the words checked, loaded once */
    if (!off) return 0;
    if (!once_load(t, off, &v)) return ETSMGR_ECORRUPT;
    uint64_t *reg = v.reg, cap = v.cap, used = 0;
    if (v.magic == ONCE_MAGIC1) {
        for (uint64_t i = 0; i < cap; i++)
            if (once_rec(reg, i)[3]) used++;
        if (used == v.head) return 0;
        snprintf(why, whylen, "request-id records: %llu filled, the region says %llu", (unsigned long long)used,
                 (unsigned long long)v.head);
        return ETSMGR_ECORRUPT;
    }
    /* every record of the ring is filled and found through the index; the
     * index's used entries are as many as it says */
    const uint64_t *idx = tbl_word(t, once_idx_off(off, cap, v.magic));
    for (uint64_t i = 0; i < cap * ONCE_IDX_PER_REC; i++) {
        if (!idx[i]) continue;
        used++;
        if (i % ONCE_BUCKET && !idx[i - 1]) {
            /* a lookup stops at the first empty entry, so this one could
             * never be found (entries are only ever taken in probe order,
             * never emptied: a bucket's empty entries are its last) */
            snprintf(why, whylen, "request-id index: entry %llu is used after an empty one in its bucket",
                     (unsigned long long)i);
            return ETSMGR_ECORRUPT;
        }
    }
    if (used != v.filled) {
        snprintf(why, whylen, "request-id index: %llu entries used, the region says %llu",
                 (unsigned long long)used, (unsigned long long)v.filled);
        return ETSMGR_ECORRUPT;
    }
    for (uint64_t p = v.tail; p < v.head; p++) {
        const uint64_t *rec = once_rec(reg, p & (cap - 1));
        uint64_t ent, slot;
        if (!rec[3] || once_find(t, &v, rec[0], rec[1], 0, &ent, &slot) != 1) {
            snprintf(why, whylen, "request-id record %llu of the ring is empty or not indexed",
                     (unsigned long long)p);
            return ETSMGR_ECORRUPT;
        }
    }
    return 0;
}

void tbl_once_prefetch(etsmgr_table *t, const uint8_t rid[ETSMGR_RID_LEN])
{
    /* without the lock: every word read here may be changing, so each is
     * checked against the mapping before use, and the worst a torn read
     * does is fetch a useless line */
    uint64_t off = __atomic_load_n(&t->h->once_off, __ATOMIC_RELAXED), lim = t->map_size;
    if (!off || (off & 7u) || off < TBL_HDR_SIZE || off > lim - 64) return;
    const uint64_t *reg = (const uint64_t *)(t->base + off);
    uint64_t cap = __atomic_load_n(&reg[1], __ATOMIC_RELAXED), r0, r1;
    if (reg[0] != ONCE_MAGIC || cap < ONCE_MIN_CAP || cap > ONCE_MAX_CAP || (cap & (cap - 1)) ||
        once_size(cap, ONCE_MAGIC) > lim - off)
        return;
    memcpy(&r0, rid, 8);
    memcpy(&r1, rid + 8, 8);
    uint64_t b = once_home4(reg, once_mix(r0 ^ reg[4]), r1) & (cap * ONCE_IDX_PER_REC / ONCE_BUCKET - 1);
    __builtin_prefetch(t->base + once_idx_off(off, cap, ONCE_MAGIC) + 8u * ONCE_BUCKET * b, 1, 3);
}

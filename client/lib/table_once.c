/* SPDX-License-Identifier: Apache-2.0 */
/* table_once.c: exactly-once update_counter, with the request-id records in
 * one fixed-layout region of the table.
 *
 * Why a region and not entries: a count that records "rid -> value" as
 * ordinary entries costs four changes (the counter, evict an old rid, insert
 * the rid, insert a ring slot), each hashing, probing and allocating.  Here
 * the records are fixed-size words in one heap block, found by open
 * addressing on the rid itself, so a count is: one lock, one probe of the
 * counter, one probe of the records, and five or six undo-logged word writes
 * (the record's four words, perhaps the used count, the counter).  It stays
 * one atomic change of the table (table_int.h): a SIGKILL anywhere inside
 * leaves neither the increment nor the record.
 *
 * The region (its offset is the header's state word once_off):
 *   word 0  magic          word 1  cap (records, a power of two)
 *   word 2  used           (records ever filled since the last rebuild)
 *   words 3-4  a random key for the slot hash, so that a sender cannot
 *           choose rids that all land on one probe chain
 *   words 5-7  zero
 *   then cap records of 4 words: rid (2 words), value, keep_until.
 * A record with keep_until == 0 is empty; one with keep_until < now is
 * expired: it may be overwritten by a new rid, and a rebuild drops it.  A
 * record is never dropped or overwritten before its keep_until: a sender
 * may still send that rid again until then.  Expired records still answer
 * a lookup of their rid while they are there (they are still true).
 *
 * Lookup probes from hash(rid) to the first empty record.  Insertion takes
 * the first expired record on that path, else the empty one; when that
 * would fill more than 3/4 of the records, the region is rebuilt first:
 * a new block sized for twice the live records (at least ONCE_MIN_CAP) is
 * filled in unreachable space, then once_off is switched through the undo
 * log and the old block freed at commit, like the index's rehash.  A
 * rebuild also comes first when the filled records would exceed
 * max_records (filled counts expired ones too, so live <= filled <=
 * max_records always); when more than max_records would be live even after
 * it, nothing changes: ETSMGR_ERIDFULL.  A full region is known to stay
 * full until its earliest keep time (the handle remembers it), so the
 * requests refused meanwhile cost no scan.
 *
 * Deadlines: an unrecorded rid is refused once its deadline has passed,
 * checked before any write and again as the last step before the commit
 * (after the writes), so that a process stopped or descheduled inside the
 * change cannot commit a count its sender has given up on when it comes
 * back.  Only that last check reads the clock; the first, and the expiry
 * of records, use the handle's previous read (once_now), which is earlier
 * than the truth and so errs towards keeping records and towards the
 * last check refusing (one clock read per count: on a VM each read costs
 * hundreds of ns).  Before a rebuild or a rid_store_full refusal the
 * clock is read again, so that an old read never refuses a region with
 * room.  (Between that last check and the commit store there are a few
 * instructions; docs/design.md says what a sender can conclude.)  Times
 * are CLOCK_MONOTONIC: one clock for every process of the machine, which
 * a wall-clock step does not move, and a table lives in /dev/shm, which
 * does not outlive the boot that clock counts from. */
#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "table_int.h"

#define ONCE_MAGIC 0x31454f4e4f4d5445ull /* "ETMONOE1" little-endian */
#define ONCE_HDR_WORDS 8u
#define ONCE_REC_WORDS 4u
#define ONCE_MIN_CAP 64u
#define ONCE_MAX_CAP (1ull << 28)

int64_t etsmgr_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t once_size(uint64_t cap) { return 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * cap); }

uint64_t tbl_once_bytes(etsmgr_table *t, uint64_t off)
{
    if (!off || (off & 7u) || off < TBL_HDR_SIZE || off > t->top - 64) return 0;
    const uint64_t *w = tbl_word(t, off);
    uint64_t cap = w[1];
    if (w[0] != ONCE_MAGIC || cap < ONCE_MIN_CAP || cap > ONCE_MAX_CAP || (cap & (cap - 1))) return 0;
    uint64_t size = once_size(cap);
    if (size > t->top - off || w[2] > cap) return 0;
    return size;
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

static uint64_t once_slot(const uint64_t *reg, uint64_t r0, uint64_t r1)
{
    return once_mix(once_mix(r0 ^ reg[3]) ^ r1 ^ reg[4]) & (reg[1] - 1);
}

static uint64_t *once_rec(uint64_t *reg, uint64_t i) { return reg + ONCE_HDR_WORDS + ONCE_REC_WORDS * i; }

/* 1: rid found at *pos; 0: absent, *pos the empty record ending its chain
 * and *reuse the first expired one before it (UINT64_MAX: none); <0: the
 * region has no empty record (scribbled). */
static int once_find(uint64_t *reg, uint64_t r0, uint64_t r1, int64_t now, uint64_t *pos, uint64_t *reuse)
{
    uint64_t cap = reg[1], mask = cap - 1, i = once_slot(reg, r0, r1);
    *reuse = UINT64_MAX;
    for (uint64_t n = 0; n < cap; n++, i = (i + 1) & mask) {
        const uint64_t *rec = once_rec(reg, i);
        if (rec[3] == 0) {
            *pos = i;
            return 0;
        }
        if (rec[0] == r0 && rec[1] == r1) {
            *pos = i;
            return 1;
        }
        if (*reuse == UINT64_MAX && (int64_t)rec[3] < now) *reuse = i;
    }
    return ETSMGR_ECORRUPT;
}

/* A new region for the live records of the old one (old_off 0: none) plus
 * one more; switches once_off to it through the undo log. */
static int once_rebuild(etsmgr_table *t, uint64_t old_off, int64_t now, uint64_t max_records)
{
    struct tbl_hdr *h = t->h;
    uint64_t live = 0, old_cap = 0, old_size = 0, seed[2];
    int64_t first_expiry = INT64_MAX;
    if (old_off) {
        uint64_t *old = tbl_word(t, old_off);
        old_cap = old[1];
        old_size = once_size(old_cap);
        for (uint64_t i = 0; i < old_cap; i++) {
            uint64_t k = once_rec(old, i)[3];
            if (k && (int64_t)k >= now) {
                live++;
                if ((int64_t)k < first_expiry) first_expiry = (int64_t)k;
            }
        }
        seed[0] = old[3];
        seed[1] = old[4];
    } else if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        /* no entropy yet (early boot): any key works, it only spreads chains */
        seed[0] = (uint64_t)now * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)t;
        seed[1] = (uint64_t)tbl_now_us() * 0xc2b2ae3d27d4eb4full;
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
    while (cap < 2 * (live + 1) && cap < ONCE_MAX_CAP) cap *= 2;
    if (cap < 2 * (live + 1)) return ETSMGR_ERIDFULL;
    uint64_t size = once_size(cap), noff;
    const char *op = t->cp_op;
    t->cp_op = "once_rebuild";
    int r = tbl_alloc(t, size, &noff); /* may move the mapping */
    if (r) return r;
    uint64_t *nw = tbl_word(t, noff);
    memset(nw, 0, size);
    nw[0] = ONCE_MAGIC;
    nw[1] = cap;
    nw[2] = live;
    nw[3] = seed[0];
    nw[4] = seed[1];
    if (old_off) {
        uint64_t *old = tbl_word(t, old_off);
        for (uint64_t i = 0; i < old_cap; i++) {
            const uint64_t *rec = once_rec(old, i);
            if (!rec[3] || (int64_t)rec[3] < now) continue;
            uint64_t j = once_slot(nw, rec[0], rec[1]), k;
            for (k = 0; k < cap && once_rec(nw, j)[3]; k++) j = (j + 1) & (cap - 1);
            if (k == cap) return ETSMGR_ECORRUPT;
            memcpy(once_rec(nw, j), rec, 8 * ONCE_REC_WORDS);
        }
    }
    tbl_cp(t);
    tbl_set(t, TBL_HOFF(once_off), noff);
    tbl_set(t, TBL_HOFF(live_bytes), h->live_bytes + size - old_size);
    if (old_off && (r = tbl_defer_free(t, old_off, old_size)) != 0) return r;
    t->cp_op = op;
    return 0;
}

/* Under the lock, rid (r0, r1) known to be absent: pos and reuse are what
 * once_find said of the region at once_off (unused when there is none), so
 * that a new rid's chain is walked once, not again here.  Makes room for
 * its record (a rebuild first when needed, which may move the mapping)
 * and says where it goes: *off the region, *slot the record, *fresh whether
 * it fills an empty record (else it overwrites an expired one). */
static int once_place(etsmgr_table *t, uint64_t r0, uint64_t r1, int64_t now, uint64_t max_records, uint64_t pos,
                      uint64_t reuse, uint64_t *off, uint64_t *slot, int *fresh)
{
    struct tbl_hdr *h = t->h;
    uint64_t o = h->once_off;
    /* a rebuild first when the new record would fill the region past 3/4,
     * or make the filled records (live or expired) exceed max_records: the
     * rebuild drops the expired ones and says whether there is room */
    uint64_t used = o ? tbl_word(t, o)[2] : 0;
    bool crowded = o && ((used + 1) * 4 > tbl_word(t, o)[1] * 3 || (max_records && used + 1 > max_records));
    if (reuse == UINT64_MAX && crowded) {
        /* about to rebuild or refuse: now may be this handle's last clock
         * read (see etsmgr_table_update_counter_once), too early to see
         * records that have expired since; read the clock and look again */
        int64_t fresh_now = etsmgr_mono_ms();
        if (fresh_now > now) {
            now = t->once_now = fresh_now;
            if (once_find(tbl_word(t, o), r0, r1, now, &pos, &reuse) != 0) return ETSMGR_ECORRUPT;
        }
    }
    if (o && reuse == UINT64_MAX && max_records && used + 1 > max_records && max_records <= t->once_full_max &&
        now <= t->once_full_until)
        return ETSMGR_ERIDFULL; /* full, and nothing has expired since it was found so */
    if (!o || (reuse == UINT64_MAX && crowded)) {
        if (!o && h->version == TBL_VERSION) h->version = TBL_VERSION_ONCE; /* see table_int.h */
        if (!o) now = t->once_now = etsmgr_mono_ms();
        int r = once_rebuild(t, o, now, max_records);
        if (r) return r;
        o = h->once_off;
        if (once_find(tbl_word(t, o), r0, r1, now, &pos, &reuse) != 0) return ETSMGR_ECORRUPT;
    }
    *off = o;
    *slot = reuse != UINT64_MAX ? reuse : pos;
    *fresh = reuse == UINT64_MAX;
    return 0;
}

/* Writes the record at slot of the region at off (see once_place). */
static void once_write(etsmgr_table *t, uint64_t off, uint64_t slot, int fresh, uint64_t r0, uint64_t r1,
                       int64_t value, int64_t keep)
{
    uint64_t roff = off + 8u * (ONCE_HDR_WORDS + ONCE_REC_WORDS * slot);
    if (fresh) tbl_set(t, off + 16, tbl_word(t, off)[2] + 1);
    tbl_set(t, roff, r0);
    tbl_set(t, roff + 8, r1);
    tbl_set(t, roff + 16, (uint64_t)value);
    tbl_set(t, roff + 24, (uint64_t)keep);
}

int etsmgr_table_update_counter_once(etsmgr_table *t, const void *key, size_t klen, int64_t incr,
                                     const etsmgr_once *once, int64_t *newval, int *dup)
{
    if (!t || !key || klen < 1 || klen > ETSMGR_KEY_MAX || !once || once->keep_until_ms <= 0 ||
        once->deadline_ms < 0 || (once->deadline_ms && once->keep_until_ms < once->deadline_ms))
        return ETSMGR_EINVAL;
    uint64_t r0, r1, hv = tbl_hash(key, klen), pos, rpos = 0, reuse = UINT64_MAX;
    memcpy(&r0, once->rid, 8);
    memcpy(&r1, once->rid + 8, 8);
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
    int64_t now = t->once_now;
    if (!once->deadline_ms || now <= 0) now = t->once_now = etsmgr_mono_ms();
    struct tbl_hdr *h = t->h;
    uint64_t off = h->once_off;
    if (off) {
        if (!tbl_once_bytes(t, off)) return tbl_op_end(t, ETSMGR_ECORRUPT);
        int found = once_find(tbl_word(t, off), r0, r1, now, &rpos, &reuse);
        if (found < 0) return tbl_op_end(t, found);
        if (found) {
            int64_t v = (int64_t)once_rec(tbl_word(t, off), rpos)[2];
            r = tbl_op_end(t, 0);
            if (r == 0) {
                if (newval) *newval = v;
                if (dup) *dup = 1;
            }
            return r;
        }
    }
    if (once->deadline_ms && now > once->deadline_ms) return tbl_op_end(t, ETSMGR_EEXPIRED);
    tbl_cp(t); /* step 0: checked, nothing written yet (a test stops the process here) */
    uint64_t slot;
    int fresh;
    r = once_place(t, r0, r1, now, once->max_records, rpos, reuse, &off, &slot, &fresh);
    if (r) return tbl_op_end(t, r);
    /* the counter, found after any rebuild (the mapping may have moved) */
    struct tbl_ent *e = NULL;
    r = tbl_find(t, key, klen, hv, &pos, &e);
    int64_t nv = incr;
    if (r == 1 && e->type != ETSMGR_INT) {
        r = ETSMGR_ETYPE;
    } else if (r == 1) {
        uint64_t voff = (uint64_t)((char *)e - t->base) + tbl_ent_voff(e);
        nv = (int64_t)(*tbl_word(t, voff) + (uint64_t)incr); /* wraps like the hardware */
        r = tbl_touch(t, hv); /* lock-free readers of the counter */
        if (r) return tbl_op_end(t, r);
        tbl_set(t, voff, (uint64_t)nv);
        r = 0;
    } else if (r == 0) {
        etsmgr_value v = {.type = ETSMGR_INT, .i = incr};
        r = tbl_put_new(t, key, klen, hv, pos, &v); /* may grow and move the mapping */
    }
    if (r) return tbl_op_end(t, r);
    once_write(t, h->once_off, slot, fresh, r0, r1, nv, once->keep_until_ms);
    /* the last step before the commit: has the deadline passed meanwhile? */
    if (once->deadline_ms && (t->once_now = etsmgr_mono_ms()) > once->deadline_ms)
        return tbl_op_end(t, ETSMGR_EEXPIRED);
    r = tbl_op_end(t, 0);
    if (r == 0 && newval) *newval = nv;
    return r;
}

int tbl_once_put(etsmgr_table *t, const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep_until)
{
    if (!t || !rid || keep_until <= 0) return ETSMGR_EINVAL;
    uint64_t r0, r1, pos = 0, reuse = UINT64_MAX, off, slot;
    memcpy(&r0, rid, 8);
    memcpy(&r1, rid + 8, 8);
    int64_t now = etsmgr_mono_ms();
    int fresh, r = tbl_op_begin(t, "once_put", true);
    if (r) return r;
    off = t->h->once_off;
    if (off) {
        if (!tbl_once_bytes(t, off)) return tbl_op_end(t, ETSMGR_ECORRUPT);
        r = once_find(tbl_word(t, off), r0, r1, now, &pos, &reuse);
        if (r) return tbl_op_end(t, r < 0 ? r : ETSMGR_EEXIST);
    }
    r = once_place(t, r0, r1, now, 0, pos, reuse, &off, &slot, &fresh);
    if (r) return tbl_op_end(t, r);
    once_write(t, off, slot, fresh, r0, r1, value, keep_until);
    return tbl_op_end(t, 0);
}

int tbl_once_each(etsmgr_table *t, int64_t now,
                  int (*cb)(const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep_until, void *arg),
                  void *arg)
{
    uint64_t off = t->h->once_off;
    if (!off) return 0;
    if (!tbl_once_bytes(t, off)) return ETSMGR_ECORRUPT;
    uint64_t *reg = tbl_word(t, off), cap = reg[1];
    for (uint64_t i = 0; i < cap; i++) {
        const uint64_t *rec = once_rec(reg, i);
        if (!rec[3] || (int64_t)rec[3] < now) continue;
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
    (void)why;
    (void)whylen;
    uint64_t off = t->h->once_off;
    if (!off) return 0;
    if (!tbl_once_bytes(t, off)) return ETSMGR_ECORRUPT;
    uint64_t *reg = tbl_word(t, off), used = 0;
    for (uint64_t i = 0; i < reg[1]; i++)
        if (once_rec(reg, i)[3]) used++;
    return used == reg[2] ? 0 : ETSMGR_ECORRUPT;
}

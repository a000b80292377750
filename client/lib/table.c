/* SPDX-License-Identifier: Apache-2.0 */
/* table.c: a table's life (create, open, attach, close, unlink), its lock,
 * and recovery after a holder died.
 *
 * A table is mapped twice: a fixed mapping of the header, which holds the
 * robust mutex and so must never move while locked (glibc and the kernel
 * keep the mutex's address on the thread's robust list), and a mapping of
 * the whole object, which is remapped (and may move) when another process
 * grew the table.  Attaching reads the header with pread, not through a
 * mapping, so a truncated or garbage object is judged without touching a
 * page that is not there (no SIGBUS).
 *
 * Recovery is the undo log (see table_int.h): the next locker restores the
 * logged words in reverse and clears the log, then marks the mutex
 * consistent.  It validates every record before applying any. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "runtime.h"
#include "table_int.h"

void (*tbl_crashpoint)(const char *op, int step);

static _Thread_local char tbl_why_buf[320]; /* the longest reason (layout 5/7: what to do) is ~215 */

const char *tbl_last_why(void) { return tbl_why_buf; }

/* Records why (printf-style) for tbl_last_why() and returns err.  The
 * numbers are header fields, uint64_t: callers pass them through ULL(). */
static int tbl_why(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int tbl_why(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tbl_why_buf, sizeof tbl_why_buf, fmt, ap);
    va_end(ap);
    return err;
}
#define ULL(x) ((unsigned long long)(x))

int64_t tbl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

_Static_assert(ETSMGR_NAME_MAX == RT_NAME_MAX, "table names follow runtime.h's one name rule");

/* ------------------------------------------------------------ validation */

/* Check a header copy against the object's size.  Each failure has its own
 * code; the reason is kept for tbl_last_why(). */
int tbl_check_header(const struct tbl_hdr *h, uint64_t objsize)
{
    if (h->magic != TBL_MAGIC) return tbl_why(ETSMGR_EBADMAGIC, "wrong magic %#llx", ULL(h->magic));
    uint32_t v = tbl_vbase(h->version); /* with or without TBL_VERSION_SEEDED */
    if (v == TBL_VERSION_ORDERED || v == TBL_VERSION_ORDERED_ONCE2)
        return tbl_why(ETSMGR_EVERSION,
                       "layout version %#llx is an ordered_set of an older build (a skiplist); this library's ordered "
                       "tables are B+trees: save the table with the older build (etsmgrctl save) and load the image "
                       "with this one (etsmgrctl load)",
                       ULL(h->version));
    if (v < TBL_VERSION || v > TBL_VERSION_BTREE_ONCE4)
        return tbl_why(ETSMGR_EVERSION,
                       "layout version %#llx, this library reads %llu to %llu (4, 6 and 9 to 13 with "
                       "request-id records, 8, 9, 11 and 13 ordered; not 5 and 7, an older build's ordered "
                       "tables), each with or without a seeded hash (%#llx)",
                       ULL(h->version), ULL(TBL_VERSION), ULL(TBL_VERSION_BTREE_ONCE4),
                       ULL(TBL_VERSION_SEEDED));
    if (h->hdr_size != TBL_HDR_SIZE)
        return tbl_why(ETSMGR_ECORRUPT, "header size %llu, expected %llu", ULL(h->hdr_size),
                       ULL(TBL_HDR_SIZE));
    if (h->total_bytes > objsize)
        return tbl_why(ETSMGR_ETRUNCATED, "header says %llu bytes, object has %llu", ULL(h->total_bytes),
                       ULL(objsize));
    if (h->total_bytes < TBL_HDR_SIZE + 8u * TBL_MIN_CAP || (h->total_bytes & 7u) ||
        h->total_bytes > (TBL_OFF_MASK << 3))
        return tbl_why(ETSMGR_ECORRUPT, "table size %llu out of range", ULL(h->total_bytes));
    if (h->max_bytes && h->max_bytes < h->total_bytes)
        return tbl_why(ETSMGR_ECORRUPT, "max_bytes %llu below size %llu", ULL(h->max_bytes),
                       ULL(h->total_bytes));
    size_t nl = strnlen(h->name, sizeof h->name);
    if (nl == sizeof h->name || !rt_valid_name(h->name, nl))
        return tbl_why(ETSMGR_ECORRUPT, "table name invalid");
    uint64_t top = h->heap_top, mask = h->idx_mask, off = h->idx_off;
    if (top < TBL_HDR_SIZE || top > h->total_bytes || (top & 7u))
        return tbl_why(ETSMGR_ECORRUPT, "heap top %llu out of range (size %llu)", ULL(top),
                       ULL(h->total_bytes));
    if (mask > TBL_MAX_MASK || (mask & (mask + 1)) || mask + 1 < TBL_MIN_CAP)
        return tbl_why(ETSMGR_ECORRUPT, "capacity %llu out of range", ULL(mask + 1));
    if ((off & 7u) || off < TBL_HDR_SIZE || off > top || (mask + 1) * 8 > top - off)
        return tbl_why(ETSMGR_ECORRUPT, "index at %llu outside the heap (top %llu)", ULL(off), ULL(top));
    if (h->count > mask + 1 || h->tombs > mask + 1 || h->count + h->tombs > mask + 1)
        return tbl_why(ETSMGR_ECORRUPT, "entry count %llu out of range (capacity %llu)", ULL(h->count),
                       ULL(mask + 1));
    if (h->live_bytes > top)
        return tbl_why(ETSMGR_ECORRUPT, "bytes used %llu beyond heap top %llu", ULL(h->live_bytes), ULL(top));
    if (h->undo_n > TBL_UNDO_MAX)
        return tbl_why(ETSMGR_ECORRUPT, "undo log length %llu out of range", ULL(h->undo_n));
    if (h->access > ETSMGR_PUBLIC)
        return tbl_why(ETSMGR_ECORRUPT, "access mode %llu out of range", ULL(h->access));
    if (h->owner_pid > INT32_MAX || h->heir_pid > INT32_MAX)
        return tbl_why(ETSMGR_ECORRUPT, "owner/heir pid out of range %llu %llu", ULL(h->owner_pid),
                       ULL(h->heir_pid));
    if ((h->ttype == ETSMGR_ORDERED_SET) !=
            (v == TBL_VERSION_BTREE || v == TBL_VERSION_BTREE_ONCE2 || v == TBL_VERSION_BTREE_ONCE3 ||
             v == TBL_VERSION_BTREE_ONCE4) ||
        h->ttype > ETSMGR_ORDERED_SET)
        return tbl_why(ETSMGR_ECORRUPT, "table type %llu does not match layout version %#llx", ULL(h->ttype),
                       ULL(h->version));
    if (h->ttype == ETSMGR_ORDERED_SET && h->ord_head &&
        ((h->ord_head & 7u) || h->ord_head < TBL_HDR_SIZE || h->ord_head > top - tbl_ord_head_size()))
        return tbl_why(ETSMGR_ECORRUPT, "ordered index head at %llu outside the heap (top %llu)", ULL(h->ord_head),
                       ULL(top));
    if (h->once_off && (v == TBL_VERSION || (h->once_off & 7u) || h->once_off < TBL_HDR_SIZE ||
                        h->once_off > top - 64))
        return tbl_why(ETSMGR_ECORRUPT, "request-id records at %llu outside the heap (top %llu)", ULL(h->once_off),
                       ULL(top));
    for (unsigned i = 0; i <= TBL_NCLASS; i++) {
        uint64_t f = i < TBL_NCLASS ? h->free_head[i] : h->large_head;
        if (f && (f < TBL_HDR_SIZE || f > top - 16 || (f & 7u)))
            return tbl_why(ETSMGR_ECORRUPT, "free list %llu head %llu outside the heap", ULL(i), ULL(f));
    }
    return 0;
}

/* ------------------------------------------------------------ mapping */

int tbl_map(etsmgr_table *t, uint64_t size)
{
    void *p;
    if (t->base)
        p = mremap(t->base, t->map_size, size, MREMAP_MAYMOVE);
    else
        p = mmap(NULL, size, t->rdonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
    if (p == MAP_FAILED) return ETSMGR_ESYS;
    t->base = p;
    t->map_size = size;
    t->r_lay = 1; /* the readers' cached pointers were into the old mapping */
    return 0;
}

/* Whether a total_bytes read from the header may become t->limit: a
 * header and the smallest index fit, 8-byte aligned, addressable by a
 * slot.  Every limit passes this (attach's is tbl_check_header's, which
 * asks the same), which is what keeps the checks of the form
 * off > limit - 16 from wrapping. */
static bool tbl_size_ok(uint64_t tot)
{
    return tot >= TBL_HDR_SIZE + 8u * TBL_MIN_CAP && !(tot & 7u) && tot <= (TBL_OFF_MASK << 3);
}

/* Make the mapping cover the header's total_bytes (checked against the
 * object's real size, so a scribbled size cannot make us touch pages past
 * its end). */
int tbl_sync_map(etsmgr_table *t)
{
    uint64_t tot = t->h->total_bytes;
    if (!tbl_size_ok(tot)) return ETSMGR_ECORRUPT;
    if (tot > t->map_size) {
        struct stat st;
        if (fstat(t->fd, &st) < 0) return ETSMGR_ESYS;
        if ((uint64_t)st.st_size < tot) return ETSMGR_ECORRUPT;
        int r = tbl_map(t, tot);
        if (r) return r;
    }
    t->limit = tot;
    return 0;
}

/* ------------------------------------------------------------ lock and recovery */

/* An undo record may name a state word of the header or a word of the heap,
 * nothing else (never the mutex or the log itself).  The gate of the
 * rollbacks' writes, so written not to wrap even if the limit were below 8
 * (it never is: tbl_size_ok). */
static bool tbl_undo_off_ok(const etsmgr_table *t, uint64_t off)
{
    if (off & 7u) return false;
    if (off >= TBL_STATE_BEGIN && off < TBL_STATE_END) return true;
    return off >= TBL_HDR_SIZE && off < t->limit && t->limit - off >= 8;
}

/* Check every undo record, then restore them in reverse.  The log is in
 * memory others can write while we restore (a process that writes the
 * object need not take the lock), so the restore goes by a copy of each
 * record, loaded once (atomic loads: the compiler may not load them again)
 * and checked again, as tbl_ent_hdr goes by a copy of an entry's header.
 * An offset checked in the first pass and loaded again for the write could
 * be another by then: a record changed between the passes was written
 * 4 TiB away.  The first pass still refuses a bad log before anything is
 * written; a record that turns bad after it stops the restore with
 * ECORRUPT and leaves the log as it is (restoring is idempotent: the next
 * locker starts over, and fails the same way while the record stays bad).
 * A copy of the whole log would make one pass do, but it is 17 KiB, on the
 * stack of whichever thread's lookup happened to recover. */
static int tbl_recover(etsmgr_table *t)
{
    struct tbl_hdr *h = t->h;
    int r = tbl_sync_map(t);
    if (r) return r;
    uint64_t n = h->undo_n;
    if (n > TBL_UNDO_MAX) return ETSMGR_ECORRUPT;
    for (uint64_t i = 0; i < n; i++)
        if (!tbl_undo_off_ok(t, h->undo[i].off)) return ETSMGR_ECORRUPT;
    const char *op = t->cp_op;
    t->cp_op = "recover";
    t->cp_step = 0;
    for (uint64_t i = n; i-- > 0;) {
        struct tbl_undo u;
        u.off = __atomic_load_n(&h->undo[i].off, __ATOMIC_RELAXED);
        u.old = __atomic_load_n(&h->undo[i].old, __ATOMIC_RELAXED);
        if (!tbl_undo_off_ok(t, u.off)) {
            t->cp_op = op;
            t->cp_step = 0;
            return ETSMGR_ECORRUPT;
        }
        *tbl_word(t, u.off) = u.old;
        atomic_signal_fence(memory_order_seq_cst);
        tbl_cp(t);
    }
    tbl_once_settle_version(t);
    atomic_signal_fence(memory_order_seq_cst);
    h->undo_n = 0;
    t->un = 0;
    atomic_signal_fence(memory_order_seq_cst);
    /* the dead change's stripes (and ours, none yet) are released only now
     * that the rolled-back state is complete */
    tbl_even_all(t);
    t->ntouch = 0;
    t->touch_layout = false;
    t->cp_op = op;
    t->cp_step = 0;
    return tbl_sync_map(t);
}

void tbl_unlock(etsmgr_table *t) { pthread_mutex_unlock(&t->h->lock); }

/* trylock said r: spin a while (the lock is held for tens of nanoseconds),
 * then block; on EOWNERDEAD roll the dead holder's change back. */
int tbl_lock_slow(etsmgr_table *t, int r)
{
    pthread_mutex_t *m = &t->h->lock;
    if (r == EBUSY) {
        /* Spin a while before sleeping in the kernel: the lock is held for
         * tens of nanoseconds.  Between looks, pause without touching the
         * lock's line, so the holder keeps its lines and can run a few
         * changes in a row; a short fixed pause measured best on two cores
         * (exponential backoff starved slow critical sections). */
        for (int i = 0; i < 4000 && r == EBUSY; i++) {
            for (unsigned k = 0; k < 16; k++) tbl_pause();
            if (compat_mutex_word(m) != 0) continue; /* a look that does not write */
            r = pthread_mutex_trylock(m);
        }
        if (r == EBUSY && t->lock_timeout_ms == 0) r = pthread_mutex_lock(m);
        else if (r == EBUSY) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += t->lock_timeout_ms / 1000;
            until.tv_nsec += (long)(t->lock_timeout_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            r = pthread_mutex_timedlock(m, &until);
            if (r == ETIMEDOUT) return ETSMGR_ELOCKED;
        }
    }
    if (r == 0) return 0;
    if (r == EOWNERDEAD) {
        int rr = tbl_recover(t);
        pthread_mutex_consistent(m);
        if (rr) {
            pthread_mutex_unlock(m);
            return rr;
        }
        return 0;
    }
    if (r == ENOTRECOVERABLE || r == EINVAL) return ETSMGR_ECORRUPT;
    errno = r;
    return ETSMGR_ESYS;
}

/* tbl_op_begin past its common case: r from the trylock (wait for the
 * lock, or take it from a dead holder), then roll back a change left in
 * the undo log (a dead holder's, or one interrupted without the kernel
 * noticing) or remap a table that grew, then as tbl_op_begin. */
int tbl_op_begin_slow(etsmgr_table *t, int r)
{
    if (r != 0 && (r = tbl_lock_slow(t, r)) != 0) return r;
    if (t->h->undo_n != 0 || t->h->total_bytes != t->limit) {
        r = t->h->undo_n ? tbl_recover(t) : tbl_sync_map(t);
        if (r) {
            tbl_unlock(t);
            return r;
        }
    }
    t->un = t->mark = 0;
    t->npend = t->pend_mark = 0;
    if ((r = tbl_state(t)) != 0) tbl_unlock(t);
    return r;
}

/* tbl_op_end when the operation failed, is inside a group, logged words,
 * deferred frees or touched sequence words. */
int tbl_op_end_full(etsmgr_table *t, int rc)
{
    if (rc < 0) {
        tbl_rollback_to(t, t->mark);
        t->npend = t->pend_mark;
    }
    if (t->in_group) return rc;
    if (t->npend) tbl_apply_frees(t);
    atomic_signal_fence(memory_order_seq_cst);
    tbl_cp(t);
    if (t->un) {
        t->h->undo_n = t->un = 0;
        atomic_signal_fence(memory_order_seq_cst);
    }
    t->once_ct_off = 0; /* committed: the window is the region's own again */
    if (t->ntouch || t->touch_layout || t->touch_ord) {
        tbl_cp(t); /* committed, readers still held off: recovery must release them */
        tbl_untouch(t);
    }
    tbl_unlock(t);
    return rc;
}

int tbl_group_check(etsmgr_table *t, bool change)
{
    t->mark = t->un;
    t->pend_mark = t->npend;
    if (change) {
        if (t->group_changes >= ETSMGR_GROUP_MAX) return ETSMGR_EGROUP;
        if (t->un + TBL_OP_WORDS + 3u * (uint64_t)(t->npend + 4) > TBL_UNDO_MAX) return ETSMGR_EGROUP;
        if (t->npend + 4 > TBL_PEND_MAX) return ETSMGR_EGROUP;
        t->group_changes++;
    }
    return tbl_state(t);
}

int tbl_rollback_to(etsmgr_table *t, uint64_t mark)
{
    struct tbl_hdr *h = t->h;
    for (uint64_t i = t->un; i-- > mark;) {
        /* ours, but in memory others can write: checked and used as one load */
        uint64_t off = __atomic_load_n(&h->undo[i].off, __ATOMIC_RELAXED);
        if (tbl_undo_off_ok(t, off)) *tbl_word(t, off) = h->undo[i].old;
    }
    if (t->un > mark) tbl_once_settle_version(t);
    atomic_signal_fence(memory_order_seq_cst);
    h->undo_n = t->un = mark;
    atomic_signal_fence(memory_order_seq_cst);
    if (mark == 0) t->once_ct_off = 0; /* the whole change undone */
    /* The limit follows the size back (a growth this rolled back), never
     * above map_size.  But the size is a word others can write, and the
     * limit is what every offset is checked against: a limit of 0 from a
     * scribbled total_bytes made off <= limit - 8 (the undo records) and
     * off > limit - 16 (the readers' entries) wrap and pass any offset,
     * and the next abort wrote through a scribbled record 4 TiB away.  A
     * size that fails tbl_sync_map's check leaves the limit as it was
     * (validated, mapped); the next tbl_op_begin sees the size differ from
     * it and says ECORRUPT, as do the readers when they look (tbl_grew). */
    uint64_t tot = h->total_bytes;
    if (tbl_size_ok(tot)) t->limit = tot < t->map_size ? tot : t->map_size;
    /* and the operation's view of the state (heap top, index) follows the
     * words it restored: an operation that goes on after a partial rollback
     * (tbl_once_count_many, a count of the batch refused) allocated from
     * the heap top it had bumped, leaving a hole nothing accounted for, and
     * after a rolled-back rehash would have written into the index it gave
     * up.  A state that fails the check is said by the return value. */
    return tbl_state(t);
}

/* Take the lock (which rolls back a dead holder's change) and release the
 * readers: with the lock ours and nothing changed yet, a sequence word left
 * odd can only be a dead writer's (or a scribble). */
int tbl_recover_now(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    int r = tbl_op_begin(t, "recover", false);
    if (r) return r;
    if (!t->in_group) tbl_even_all(t);
    return tbl_op_end(t, 0);
}

/* tbl_op_begin that never waits: ETSMGR_ELOCKED while a living process
 * holds the lock; a free one, or a dead holder's (its change rolled back),
 * begins op as tbl_op_begin does.  Not for a read handle or inside a
 * group (the callers decide what those do). */
static int tbl_op_begin_nowait(etsmgr_table *t, const char *op)
{
    int r = pthread_mutex_trylock(&t->h->lock);
    if (r == EBUSY) return ETSMGR_ELOCKED;
    t->cp_op = op;
    t->cp_step = 0;
    return tbl_op_begin_slow(t, r);
}

int tbl_recover_nowait(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    if (t->rdonly || t->in_group) return tbl_recover_now(t);
    int r = tbl_op_begin_nowait(t, "recover");
    if (r) return r;
    tbl_even_all(t);
    return tbl_op_end(t, 0);
}

/* ------------------------------------------------------------ life */

static int tbl_attach(int fd, bool rdonly, etsmgr_table **out)
{
    struct tbl_hdr *hc = malloc(sizeof *hc);
    if (!hc) return ETSMGR_ENOMEM;
    int r;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        free(hc);
        return ETSMGR_ESYS;
    }
    if (!S_ISREG(st.st_mode)) {
        free(hc);
        return tbl_why(ETSMGR_EBADMAGIC, "not a shared-memory object");
    }
    /* the header first, then the size: a table growing meanwhile is only
     * ever longer than the header read says */
    ssize_t got = pread(fd, hc, sizeof *hc, 0);
    if (got < 0 || fstat(fd, &st) < 0) {
        free(hc);
        return ETSMGR_ESYS;
    }
    if ((size_t)got < sizeof hc->magic) {
        free(hc);
        return tbl_why(ETSMGR_ETRUNCATED, "object is %llu bytes", ULL(got));
    }
    if (hc->magic != TBL_MAGIC) {
        r = tbl_why(ETSMGR_EBADMAGIC, "wrong magic %#llx", ULL(hc->magic));
        free(hc);
        return r;
    }
    if ((size_t)got < sizeof *hc || (uint64_t)st.st_size < TBL_HDR_SIZE) {
        free(hc);
        return tbl_why(ETSMGR_ETRUNCATED, "object is %llu bytes, a header needs %llu", ULL(st.st_size),
                       ULL(TBL_HDR_SIZE));
    }
    r = tbl_check_header(hc, (uint64_t)st.st_size);
    if (r) {
        free(hc);
        return r;
    }
    etsmgr_table *t = calloc(1, sizeof *t);
    if (!t) {
        free(hc);
        return ETSMGR_ENOMEM;
    }
    t->fd = fd;
    t->rdonly = rdonly;
    t->ordered = hc->ttype == ETSMGR_ORDERED_SET;
    if (hc->version & TBL_VERSION_SEEDED) memcpy(t->hseed, hc->hash_seed, sizeof t->hseed);
    t->r_lay = 1; /* odd: nothing cached */
    memcpy(t->name, hc->name, strnlen(hc->name, ETSMGR_NAME_MAX));
    uint64_t tot = hc->total_bytes;
    free(hc);
    void *hp = mmap(NULL, TBL_HDR_SIZE, rdonly ? PROT_READ : PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (hp == MAP_FAILED) {
        free(t);
        return ETSMGR_ESYS;
    }
    t->h = hp;
    if ((r = tbl_map(t, tot)) != 0) {
        munmap(hp, TBL_HDR_SIZE);
        free(t);
        return r;
    }
    t->limit = tot;
    *out = t;
    return 0;
}

int etsmgr_table_attach_fd(int fd, etsmgr_table **out)
{
    if (fd < 0 || !out) return ETSMGR_EINVAL;
    tbl_why_buf[0] = 0;
    /* an fd opened O_RDONLY can only be mapped for reading */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return ETSMGR_ESYS;
    return tbl_attach(fd, (fl & O_ACCMODE) == O_RDONLY, out);
}

int tbl_attach_fd_ro(int fd, etsmgr_table **out)
{
    if (fd < 0 || !out) return ETSMGR_EINVAL;
    tbl_why_buf[0] = 0;
    return tbl_attach(fd, true, out);
}

int tbl_set_recover(etsmgr_table *t, const char *sock,
                    int (*cb)(const char *sock, const char *table, int timeout_ms))
{
    char *c = sock ? strdup(sock) : NULL;
    if (sock && !c) return ETSMGR_ENOMEM;
    free(t->rsock);
    t->rsock = c;
    t->recover_cb = cb;
    return 0;
}

int tbl_open(const char *shm_name, etsmgr_table **out)
{
    if (!shm_name || !out) return ETSMGR_EINVAL;
    int fd = shm_open(shm_name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) return errno == ENOENT ? ETSMGR_ENOTFOUND : ETSMGR_ESYS;
    int r = etsmgr_table_attach_fd(fd, out);
    if (r) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return r;
}

/* Extend fd to size with real pages, so that a full /dev/shm shows up here
 * as ENOSPC and not later as SIGBUS. */
int tbl_reserve(int fd, uint64_t from, uint64_t size)
{
    int e = posix_fallocate(fd, (off_t)from, (off_t)(size - from));
    if (e == 0) return 0;
    errno = e;
    return e == ENOSPC || e == EFBIG || e == ENOMEM ? ETSMGR_EFULL : ETSMGR_ESYS;
}

/* A new table in fd (shm_name NULL: a private memfd), its object removed
 * again on failure. */
static int tbl_create_in(const char *shm_name, const char *table_name, const etsmgr_table_opts *opts,
                         etsmgr_table **out)
{
    if (!table_name || !out) return ETSMGR_EINVAL;
    if (!rt_valid_name(table_name, strlen(table_name))) return ETSMGR_ENAME;
    etsmgr_table_opts o = {0};
    if (opts) o = *opts;
    if ((unsigned)o.access > ETSMGR_PUBLIC || (unsigned)o.type > ETSMGR_ORDERED_SET) return ETSMGR_EINVAL;
    unsigned mode = o.mode ? (o.mode & 0777u) : 0600u;
    uint64_t size = o.size_hint ? o.size_hint : TBL_DEFAULT_SIZE;
    const uint64_t min = TBL_HDR_SIZE + 4096u;
    if (size < min) size = min;
    if (size > (TBL_OFF_MASK << 3)) return ETSMGR_EINVAL;
    size = (size + 4095u) & ~4095ull;
    if (o.max_bytes) {
        if (o.max_bytes < min) return ETSMGR_EINVAL;
        if (size > o.max_bytes) size = o.max_bytes & ~7ull;
    }
    /* the initial index: room for the entries the size hint suggests */
    uint64_t cap = TBL_MIN_CAP;
    while (cap * TBL_HINT_SLOT_BYTES < size - TBL_HDR_SIZE && cap < (1ull << 30)) cap *= 2;
    while (cap > TBL_MIN_CAP && cap * 8 > size - TBL_HDR_SIZE) cap /= 2;

    int fd = shm_name ? shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
                      : memfd_create("etsmgr-private-table", MFD_CLOEXEC);
    if (fd < 0) return errno == EEXIST ? ETSMGR_EEXIST : ETSMGR_ESYS;
    int r = 0;
    if (fchmod(fd, mode) < 0) r = ETSMGR_ESYS;
    if (!r) r = tbl_reserve(fd, 0, size);
    struct tbl_hdr *h = NULL;
    if (!r) {
        h = mmap(NULL, TBL_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h == MAP_FAILED) {
            h = NULL;
            r = ETSMGR_ESYS;
        }
    }
    pthread_mutexattr_t ma;
    if (!r) {
        if (pthread_mutexattr_init(&ma) || pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) ||
            pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) || pthread_mutex_init(&h->lock, &ma))
            r = ETSMGR_ESYS;
        pthread_mutexattr_destroy(&ma);
    }
    uint64_t seed[2];
    if (!r) tbl_random_key(seed, h);
    if (!r) {
        h->version = TBL_VERSION | TBL_VERSION_SEEDED;
        if (tbl_hash_seed_fixed) seed[0] = tbl_hash_seed_fixed, seed[1] = ~tbl_hash_seed_fixed;
        if (!(seed[0] | seed[1])) seed[0] = 1; /* all zero is the unseeded hash */
        memcpy(h->hash_seed, seed, sizeof h->hash_seed);
        h->hdr_size = TBL_HDR_SIZE;
        h->ctime_us = tbl_now_us();
        h->max_bytes = o.max_bytes;
        h->access = (uint32_t)o.access;
        memcpy(h->name, table_name, strlen(table_name) + 1);
        h->total_bytes = size;
        h->idx_off = TBL_HDR_SIZE;
        h->idx_mask = cap - 1;
        h->heap_top = TBL_HDR_SIZE + cap * 8;
        h->live_bytes = cap * 8;
        if (o.type == ETSMGR_ORDERED_SET) {
            /* the B+tree's root comes with the first key (ord_head 0) */
            h->version = TBL_VERSION_BTREE | TBL_VERSION_SEEDED;
            h->ttype = ETSMGR_ORDERED_SET;
        }
        /* the index pages are zero already: a new object reads as zeros */
        atomic_thread_fence(memory_order_seq_cst);
        h->magic = TBL_MAGIC;
        munmap(h, TBL_HDR_SIZE);
        r = etsmgr_table_attach_fd(fd, out);
    } else if (h) {
        munmap(h, TBL_HDR_SIZE);
    }
    if (r) {
        int e = errno;
        close(fd);
        if (shm_name) shm_unlink(shm_name);
        errno = e;
    }
    return r;
}

int tbl_create(const char *shm_name, const char *table_name, const etsmgr_table_opts *opts,
               etsmgr_table **out)
{
    if (!shm_name) return ETSMGR_EINVAL;
    return tbl_create_in(shm_name, table_name, opts, out);
}

int tbl_create_private(const char *table_name, const etsmgr_table_opts *opts, etsmgr_table **out)
{
    return tbl_create_in(NULL, table_name, opts, out);
}

uint64_t tbl_hash_seed_fixed; /* test hook (table.h) */

void tbl_random_key(uint64_t key[2], const void *salt)
{
    if (getrandom(key, 2 * sizeof *key, GRND_NONBLOCK) == (ssize_t)(2 * sizeof *key)) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    key[0] = ((uint64_t)ts.tv_nsec << 32 ^ (uint64_t)ts.tv_sec) * 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    key[1] = (uint64_t)(uintptr_t)salt * 0xc2b2ae3d27d4eb4fu ^ (uint64_t)(uintptr_t)&ts;
}

bool tbl_is_bookkeeping(const void *key, size_t klen, const etsmgr_value *v)
{
    return v && v->type == ETSMGR_BYTES && tbl_is_rid_shape(key, klen, v->type, v->len);
}

int tbl_unlink(const char *shm_name)
{
    if (!shm_name) return ETSMGR_EINVAL;
    if (shm_unlink(shm_name) == 0) return 0;
    return errno == ENOENT ? ETSMGR_ENOTFOUND : ETSMGR_ESYS;
}

void etsmgr_table_close(etsmgr_table *t)
{
    if (!t) return;
    if (t->in_group) etsmgr_table_abort(t);
    if (t->base) munmap(t->base, t->map_size);
    if (t->h) munmap(t->h, TBL_HDR_SIZE);
    close(t->fd);
    free(t->rsock);
    free(t);
}

int etsmgr_table_fd(const etsmgr_table *t) { return t ? t->fd : -1; }

void etsmgr_table_set_lock_timeout(etsmgr_table *t, unsigned ms)
{
    if (t) t->lock_timeout_ms = ms;
}
const char *etsmgr_table_name(const etsmgr_table *t) { return t ? t->name : ""; }

/* ------------------------------------------------------------ header */

/* tbl_set_owner's change, under the lock */
static int tbl_owner_words(etsmgr_table *t, int32_t owner_pid, int32_t heir_pid, int64_t orphaned_us)
{
    /* one change: a crash leaves the old owner and time, or the new ones */
    tbl_set(t, TBL_HOFF(owner_pid), (uint64_t)owner_pid);
    tbl_set(t, TBL_HOFF(heir_pid), (uint64_t)heir_pid);
    tbl_set(t, TBL_HOFF(orphaned_us), owner_pid ? 0 : (uint64_t)orphaned_us);
    tbl_set(t, TBL_HOFF(generation), t->h->generation + 1);
    return tbl_op_end(t, 0);
}

int tbl_set_owner(etsmgr_table *t, int32_t owner_pid, int32_t heir_pid, int64_t orphaned_us)
{
    if (!t || owner_pid < 0 || heir_pid < 0 || orphaned_us < 0) return ETSMGR_EINVAL;
    int r = tbl_op_begin(t, "set_owner", true);
    if (r) return r;
    return tbl_owner_words(t, owner_pid, heir_pid, orphaned_us);
}

int tbl_set_owner_nowait(etsmgr_table *t, int32_t owner_pid, int32_t heir_pid, int64_t orphaned_us)
{
    if (!t || owner_pid < 0 || heir_pid < 0 || orphaned_us < 0) return ETSMGR_EINVAL;
    if (t->rdonly || t->in_group) return tbl_set_owner(t, owner_pid, heir_pid, orphaned_us);
    int r = tbl_op_begin_nowait(t, "set_owner");
    if (r) return r;
    return tbl_owner_words(t, owner_pid, heir_pid, orphaned_us);
}

int64_t tbl_orphaned_since(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    int r = tbl_op_begin(t, "info", false);
    if (r) return r;
    uint64_t v = t->h->owner_pid ? 0 : t->h->orphaned_us;
    tbl_op_end(t, 0);
    return v > (uint64_t)INT64_MAX ? 0 : (int64_t)v;
}

/* The header's words as they are, without the lock: a writer need not
 * hold it to write them (design.md, "Trust"), so none is trusted beyond a
 * number, and a change in progress may show half done. */
/* etsmgr_table_info from the header's words, each loaded once; the index's
 * mask and the size are the caller's (its validated view, or the words). */
static void tbl_info_fill(const etsmgr_table *t, uint64_t mask, uint64_t total, etsmgr_table_info *out)
{
    const struct tbl_hdr *h = t->h;
    memset(out, 0, sizeof *out);
    memcpy(out->name, t->name, sizeof out->name);
    uint64_t owner = __atomic_load_n(&h->owner_pid, __ATOMIC_RELAXED);
    uint64_t heir = __atomic_load_n(&h->heir_pid, __ATOMIC_RELAXED);
    uint32_t access = __atomic_load_n(&h->access, __ATOMIC_RELAXED);
    out->entries = __atomic_load_n(&h->count, __ATOMIC_RELAXED);
    out->capacity = (mask + 1) / 4 * 3;
    out->bytes_used = TBL_HDR_SIZE + __atomic_load_n(&h->live_bytes, __ATOMIC_RELAXED);
    out->bytes_total = total;
    out->max_bytes = __atomic_load_n(&h->max_bytes, __ATOMIC_RELAXED);
    out->generation = __atomic_load_n(&h->generation, __ATOMIC_RELAXED);
    out->ctime_us = __atomic_load_n(&h->ctime_us, __ATOMIC_RELAXED);
    out->owner_pid = (int32_t)(owner & 0x7fffffff);
    out->heir_pid = (int32_t)(heir & 0x7fffffff);
    out->access = access <= ETSMGR_PUBLIC ? (etsmgr_access)access : ETSMGR_PRIVATE;
    out->writable = !t->rdonly;
    out->type = t->ordered ? ETSMGR_ORDERED_SET : ETSMGR_SET;
}

static void tbl_peek_info(const etsmgr_table *t, etsmgr_table_info *out, int64_t *orphaned_us)
{
    const struct tbl_hdr *h = t->h;
    tbl_info_fill(t, __atomic_load_n(&h->idx_mask, __ATOMIC_RELAXED),
                  __atomic_load_n(&h->total_bytes, __ATOMIC_RELAXED), out);
    uint64_t since = out->owner_pid ? 0 : __atomic_load_n(&h->orphaned_us, __ATOMIC_RELAXED);
    *orphaned_us = since > (uint64_t)INT64_MAX ? 0 : (int64_t)since;
}

int tbl_info_nowait(etsmgr_table *t, etsmgr_table_info *out, int64_t *orphaned_us)
{
    if (!t || !out) return ETSMGR_EINVAL;
    int64_t since;
    if (!orphaned_us) orphaned_us = &since;
    if (t->rdonly || t->in_group) {
        tbl_peek_info(t, out, orphaned_us);
        return ETSMGR_OK;
    }
    /* free, or its holder dead (EOWNERDEAD: rolled back now): read under
     * it, as etsmgr_table_info_get; a living holder: as the words are */
    int r = tbl_op_begin_nowait(t, "info");
    if (r == ETSMGR_ELOCKED) {
        tbl_peek_info(t, out, orphaned_us);
        return ETSMGR_OK;
    }
    if (r) return r;
    tbl_peek_info(t, out, orphaned_us);
    return tbl_op_end(t, 0);
}

int etsmgr_table_info_get(etsmgr_table *t, etsmgr_table_info *out)
{
    if (!t || !out) return ETSMGR_EINVAL;
    int r = t->rdonly ? tbl_rd_sync(t) : tbl_op_begin(t, "info", false);
    if (r) return r;
    tbl_info_fill(t, t->rdonly ? t->r_mask : t->mask, t->limit, out);
    return t->rdonly ? 0 : tbl_op_end(t, 0);
}

/* ------------------------------------------------------------ groups */

int etsmgr_table_begin(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    if (t->in_group) return ETSMGR_EGROUP;
    int r = tbl_op_begin(t, "begin", false);
    if (r) return r;
    t->in_group = true;
    t->group_changes = 0;
    return 0;
}

int etsmgr_table_commit(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    if (!t->in_group) return ETSMGR_EGROUP;
    t->in_group = false;
    t->cp_op = "commit";
    t->cp_step = 0;
    t->mark = t->un;
    t->pend_mark = t->npend;
    return tbl_op_end(t, 0);
}

int etsmgr_table_abort(etsmgr_table *t)
{
    if (!t) return ETSMGR_EINVAL;
    if (!t->in_group) return ETSMGR_EGROUP;
    t->in_group = false;
    tbl_rollback_to(t, 0);
    t->npend = t->pend_mark = 0;
    tbl_untouch(t);
    tbl_unlock(t);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_table_attach.c: attaching validates everything before trusting it,
 * and a table scribbled on after attach gives ETSMGR_ECORRUPT, never a
 * crash or a hang: random bytes, truncated objects, each header field
 * corrupted (each with its own error code), then targeted and random
 * corruption of a live table. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "table_int.h"
#include "test_table_util.h"

static void teardown(void) { tt_cleanup(); }

static uint64_t rs = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static int raw_object(const char *name, size_t size, const void *bytes)
{
    shm_unlink(name);
    int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    if (size) ck_assert_int_eq(pwrite(fd, bytes, size, 0), (ssize_t)size);
    return fd;
}

static int attach_rc(int fd)
{
    etsmgr_table *t = NULL;
    int r = etsmgr_table_attach_fd(fd, &t);
    if (r == 0) etsmgr_table_close(t);
    else close(fd); /* on failure the fd stays the caller's */
    return r;
}

START_TEST(random_bytes)
{
    const char *name = tt_name();
    static unsigned char buf[65536];
    const size_t sizes[] = {0, 1, 7, 8, 100, 4096, TBL_HDR_SIZE - 1, TBL_HDR_SIZE, 65536};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int trial = 0; trial < 20; trial++) {
            for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)rnd();
            int r = attach_rc(raw_object(name, sizes[s], buf));
            ck_assert_msg(r == ETSMGR_EBADMAGIC || r == ETSMGR_ETRUNCATED, "size %zu: %d", sizes[s], r);
            if (sizes[s] >= 8) ck_assert_int_eq(r, ETSMGR_EBADMAGIC);
            ck_assert_str_ne(tbl_last_why(), "");
            /* with the right magic and version, the rest random */
            uint64_t magic = TBL_MAGIC;
            uint32_t ver = TBL_VERSION;
            memcpy(buf, &magic, 8);
            memcpy(buf + 8, &ver, 4);
            r = attach_rc(raw_object(name, sizes[s], buf));
            ck_assert_msg(r == ETSMGR_ETRUNCATED || r == ETSMGR_ECORRUPT || r == ETSMGR_EBADMAGIC,
                          "size %zu: %d", sizes[s], r);
        }
    }
    /* not a regular object at all */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(attach_rc(p[0]), ETSMGR_EBADMAGIC);
    close(p[1]);
    shm_unlink(name);
}
END_TEST

/* A valid table with some entries; its fd. */
static int good_table(const char **name)
{
    etsmgr_table *t = tt_create(name, 0, 0);
    char key[32];
    for (long i = 0; i < 300; i++) {
        etsmgr_value v = i % 3 ? tt_int(i) : tt_bytes(key, 20);
        ck_assert_int_eq(etsmgr_table_insert(t, key, tt_key(key, sizeof key, "k", i), &v), 0);
    }
    for (long i = 0; i < 300; i += 7)
        ck_assert_int_eq(etsmgr_table_delete(t, key, tt_key(key, sizeof key, "k", i)), 0);
    int fd = dup(etsmgr_table_fd(t));
    etsmgr_table_close(t);
    return fd;
}

START_TEST(truncated)
{
    const char *name;
    int fd = good_table(&name);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    const off_t sizes[] = {st.st_size - 8, st.st_size - 4096, TBL_HDR_SIZE, TBL_HDR_SIZE - 1, 100, 8, 4, 0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ck_assert_int_eq(ftruncate(fd, sizes[i]), 0);
        etsmgr_table *t;
        int r = etsmgr_table_attach_fd(fd, &t);
        ck_assert_msg(r == ETSMGR_ETRUNCATED, "size %lld: %d (%s)", (long long)sizes[i], r, tbl_last_why());
    }
    close(fd);
}
END_TEST

struct field_case {
    const char *what;
    size_t off;
    int width; /* 8 or 4 bytes, or 0: the name */
    int64_t delta;
    int absolute; /* value = delta, else old + delta */
    int expect;
};

#define F(field) offsetof(struct tbl_hdr, field)
static const struct field_case fields[] = {
    {"magic", F(magic), 8, 1, 0, ETSMGR_EBADMAGIC},
    /* 3 -> 14: 4, 6 and 9 to 13 have request-id records, 8, 9, 11 and 13
     * are ordered (a B+tree); 5 and 7, an older build's ordered tables (a
     * skiplist), are refused like an unknown version */
    {"version", F(version), 4, 11, 0, ETSMGR_EVERSION},
    {"ordered type in a version 3 table", F(ttype), 4, 1, 1, ETSMGR_ECORRUPT},
    {"table type out of range", F(ttype), 4, 7, 1, ETSMGR_ECORRUPT},
    {"version 5 (an older build's ordered table)", F(version), 4, 5, 1, ETSMGR_EVERSION},
    {"version 7 (an older build's ordered table, request-id records of layout 2)", F(version), 4, 7, 1,
     ETSMGR_EVERSION},
    {"version 8 (ordered) in a set", F(version), 4, 8, 1, ETSMGR_ECORRUPT},
    {"version 9 (ordered, request-id records of layout 2) in a set", F(version), 4, 9, 1, ETSMGR_ECORRUPT},
    {"version 11 (ordered, request-id records of layout 3) in a set", F(version), 4, 11, 1, ETSMGR_ECORRUPT},
    {"version 13 (ordered, request-id records of layout 4) in a set", F(version), 4, 13, 1, ETSMGR_ECORRUPT},
    {"once_off in a version 1 table", F(once_off), 8, 1ll << 16, 1, ETSMGR_ECORRUPT},
    {"version 0", F(version), 4, 0, 1, ETSMGR_EVERSION},
    {"hdr_size", F(hdr_size), 4, 4096, 1, ETSMGR_ECORRUPT},
    {"total_bytes past the object", F(total_bytes), 8, 4096, 0, ETSMGR_ETRUNCATED},
    {"total_bytes tiny", F(total_bytes), 8, 100, 1, ETSMGR_ECORRUPT},
    {"total_bytes unaligned", F(total_bytes), 8, -3, 0, ETSMGR_ECORRUPT},
    {"max_bytes below size", F(max_bytes), 8, 30000, 1, ETSMGR_ECORRUPT},
    {"heap_top past size", F(heap_top), 8, 1 << 24, 0, ETSMGR_ECORRUPT},
    {"heap_top in header", F(heap_top), 8, 64, 1, ETSMGR_ECORRUPT},
    {"idx_mask not 2^k-1", F(idx_mask), 8, 1000, 1, ETSMGR_ECORRUPT},
    {"idx_mask huge", F(idx_mask), 8, -1, 1, ETSMGR_ECORRUPT},
    {"idx_mask past heap", F(idx_mask), 8, (1 << 20) - 1, 1, ETSMGR_ECORRUPT},
    {"idx_off unaligned", F(idx_off), 8, 3, 0, ETSMGR_ECORRUPT},
    {"idx_off in header", F(idx_off), 8, 64, 1, ETSMGR_ECORRUPT},
    {"count > capacity", F(count), 8, 1 << 20, 1, ETSMGR_ECORRUPT},
    {"count negative", F(count), 8, -1, 1, ETSMGR_ECORRUPT},
    {"tombs huge", F(tombs), 8, -5, 1, ETSMGR_ECORRUPT},
    {"live_bytes", F(live_bytes), 8, 1ll << 40, 1, ETSMGR_ECORRUPT},
    {"undo_n", F(undo_n), 8, TBL_UNDO_MAX + 1, 1, ETSMGR_ECORRUPT},
    {"owner_pid", F(owner_pid), 8, 1ll << 40, 1, ETSMGR_ECORRUPT},
    {"heir_pid", F(heir_pid), 8, -1, 1, ETSMGR_ECORRUPT},
    {"free list head", F(free_head[3]), 8, 5, 1, ETSMGR_ECORRUPT},
    {"large list head", F(large_head), 8, 1ll << 40, 1, ETSMGR_ECORRUPT},
    {"name unterminated", F(name), 0, 0, 0, ETSMGR_ECORRUPT},
    {"name invalid", F(name), 0, 1, 0, ETSMGR_ECORRUPT},
};

START_TEST(header_field_corrupted)
{
    const struct field_case *fc = &fields[_i];
    const char *name;
    int fd = good_table(&name);
    unsigned char orig[TBL_HDR_SIZE];
    ck_assert_int_eq(pread(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);
    if (fc->width == 8) {
        int64_t v;
        memcpy(&v, orig + fc->off, 8);
        v = fc->absolute ? fc->delta : v + fc->delta;
        ck_assert_int_eq(pwrite(fd, &v, 8, (off_t)fc->off), 8);
    } else if (fc->width == 4) {
        int32_t v;
        memcpy(&v, orig + fc->off, 4);
        v = fc->absolute ? (int32_t)fc->delta : v + (int32_t)fc->delta;
        ck_assert_int_eq(pwrite(fd, &v, 4, (off_t)fc->off), 4);
    } else {
        char nm[ETSMGR_NAME_MAX + 8];
        memset(nm, 'a', sizeof nm);
        if (fc->delta) strcpy(nm, "a/b");
        ck_assert_int_eq(pwrite(fd, nm, sizeof nm, (off_t)fc->off), (ssize_t)sizeof nm);
    }
    etsmgr_table *t;
    int r = etsmgr_table_attach_fd(fd, &t);
    ck_assert_msg(r == fc->expect, "%s: got %d (%s), want %d", fc->what, r, tbl_last_why(), fc->expect);
    ck_assert_str_ne(tbl_last_why(), "");
    /* put it back: attach works again */
    ck_assert_int_eq(pwrite(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);
    ck_assert_int_eq(etsmgr_table_attach_fd(fd, &t), 0);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ after attach */

/* A table and a second, raw view of its object to scribble through. */
struct live {
    etsmgr_table *t;
    char *raw;
    size_t size;
    const char *name; /* the shm object's */
};

static struct live live_table(int n)
{
    struct live l;
    l.t = tt_create(&l.name, 0, 0);
    char key[32], val[64] = "value";
    for (long i = 0; i < n; i++) {
        etsmgr_value v = i % 3 ? tt_int(i) : tt_bytes(val, (size_t)(i % 50));
        ck_assert_int_eq(etsmgr_table_insert(l.t, key, tt_key(key, sizeof key, "k", i), &v), 0);
    }
    for (long i = 0; i < n; i += 5)
        ck_assert_int_eq(etsmgr_table_delete(l.t, key, tt_key(key, sizeof key, "k", i)), 0);
    struct stat st;
    ck_assert_int_eq(fstat(etsmgr_table_fd(l.t), &st), 0);
    l.size = (size_t)st.st_size;
    l.raw = mmap(NULL, l.size, PROT_READ | PROT_WRITE, MAP_SHARED, etsmgr_table_fd(l.t), 0);
    ck_assert_ptr_ne(l.raw, MAP_FAILED);
    return l;
}

static void live_close(struct live *l)
{
    munmap(l->raw, l->size);
    etsmgr_table_close(l->t);
}

static uint64_t *hw(struct live *l, size_t off) { return (uint64_t *)(void *)(l->raw + off); }

/* Every operation once; returns how many returned ECORRUPT. */
static int exercise(etsmgr_table *t, int n)
{
    char key[32], buf[64];
    int corrupt = 0, r;
    etsmgr_value v;
    int64_t nv;
    for (long i = 0; i < n; i++) {
        r = etsmgr_table_lookup(t, key, tt_key(key, sizeof key, "k", i), &v, buf, sizeof buf);
        corrupt += r == ETSMGR_ECORRUPT;
    }
    v = tt_int(1);
    corrupt += etsmgr_table_insert(t, "new1", 4, &v) == ETSMGR_ECORRUPT;
    corrupt += etsmgr_table_update_counter(t, "k1", 2, 1, 0, &nv) == ETSMGR_ECORRUPT;
    corrupt += etsmgr_table_update_counter(t, "k2", 2, 1, 0, &nv) == ETSMGR_ECORRUPT;
    corrupt += etsmgr_table_delete(t, "k4", 2) == ETSMGR_ECORRUPT;
    v = tt_bytes(buf, sizeof buf);
    corrupt += etsmgr_table_insert(t, "k6", 2, &v) == ETSMGR_ECORRUPT;
    for (long i = 0; i < 40; i++) {
        v = tt_int(i);
        corrupt += etsmgr_table_insert(t, key, tt_key(key, sizeof key, "more", i), &v) == ETSMGR_ECORRUPT;
    }
    struct tt_walk w = {0};
    corrupt += etsmgr_table_foreach(t, tt_walk_cb, &w) == ETSMGR_ECORRUPT;
    etsmgr_table_info info;
    corrupt += etsmgr_table_info_get(t, &info) == ETSMGR_ECORRUPT;
    char why[160];
    corrupt += etsmgr_table_verify(t, why, sizeof why) == ETSMGR_ECORRUPT;
    if (etsmgr_table_begin(t) == 0) {
        etsmgr_table_update_counter(t, "g", 1, 1, 0, &nv);
        etsmgr_table_insert(t, "k9", 2, &v);
        if (rnd() % 2)
            etsmgr_table_commit(t);
        else
            etsmgr_table_abort(t);
    }
    return corrupt;
}

static void expect_verify_corrupt(etsmgr_table *t)
{
    char why[160];
    ck_assert_int_eq(etsmgr_table_verify(t, why, sizeof why), ETSMGR_ECORRUPT);
    ck_assert_str_ne(why, "");
}

START_TEST(corrupt_slot)
{
    struct live l = live_table(100);
    uint64_t *idx = hw(&l, l.t->h->idx_off);
    uint64_t s = 0;
    for (uint64_t i = 0; i <= l.t->h->idx_mask; i++)
        if (idx[i] > 1) {
            s = i;
            break;
        }
    idx[s] = (idx[s] & ~TBL_OFF_MASK) | ((l.size * 4) >> 3); /* far past the end */
    expect_verify_corrupt(l.t);
    ck_assert_int_gt(exercise(l.t, 100), 0);
    idx[s] = (idx[s] & ~TBL_OFF_MASK) | (64 >> 3); /* into the header */
    expect_verify_corrupt(l.t);
    ck_assert_int_gt(exercise(l.t, 100), 0);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_entry)
{
    struct live l = live_table(100);
    uint64_t *idx = hw(&l, l.t->h->idx_off);
    for (uint64_t i = 0; i <= l.t->h->idx_mask; i++) {
        if (idx[i] <= 1) continue;
        struct tbl_ent *e = (struct tbl_ent *)(void *)(l.raw + ((idx[i] & TBL_OFF_MASK) << 3));
        switch (i % 4) {
        case 0: e->klen = 0; break;
        case 1: e->type = 7; break;
        case 2: e->vlen = 0xffffffffu; break;
        case 3: e->type = ETSMGR_INT, e->vlen = 9; break;
        }
    }
    expect_verify_corrupt(l.t);
    ck_assert_int_gt(exercise(l.t, 100), 0);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_counts)
{
    struct live l = live_table(100);
    l.t->h->count++;
    expect_verify_corrupt(l.t);
    l.t->h->count--;
    tt_check(l.t);
    l.t->h->tombs += 1;
    expect_verify_corrupt(l.t);
    l.t->h->tombs -= 1;
    l.t->h->live_bytes -= 8;
    expect_verify_corrupt(l.t);
    l.t->h->live_bytes += 8;
    tt_check(l.t);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_sizes_after_attach)
{
    /* Changes read the state words under the lock and refuse them all (48
     * per exercise).  Lock-free lookups and foreach read no state word but
     * the index's place and size, and those only after the layout word
     * moves (as a writer switching the index moves it): then they refuse a
     * scribbled one too. */
    struct live l = live_table(100);
    struct tbl_hdr *h = (struct tbl_hdr *)(void *)l.raw;
    uint64_t tot = h->total_bytes, mask = h->idx_mask, top = h->heap_top, off = h->idx_off;
    h->total_bytes = tot + (1u << 30); /* beyond the object: must not be mapped and touched */
    ck_assert_int_eq(exercise(l.t, 100), 47);
    h->total_bytes = tot;
    h->idx_mask = (1ull << 30) - 1;
    h->layout_seq += 2;
    ck_assert_int_eq(exercise(l.t, 100), 100 + 48);
    h->idx_mask = mask;
    h->heap_top = tot + 8;
    ck_assert_int_eq(exercise(l.t, 100), 47);
    h->heap_top = top;
    h->idx_off = tot - 8;
    h->layout_seq += 2;
    ck_assert_int_eq(exercise(l.t, 100), 100 + 48);
    h->idx_off = off;
    tt_check(l.t);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_index_place_wraps)
{
    /* The lock-free readers check the index's place when the layout word
     * moves; an offset near 2^64 must not wrap that check: with 2^36 slots
     * at 2^64 - 2^39 the index's end sums to 0.  Readers of a writable
     * handle and of a read-only one (PROT_READ, never takes the lock) both
     * say ECORRUPT; the changes' own check (tbl_state) refuses it too. */
    struct live l = live_table(100);
    struct tbl_hdr *h = (struct tbl_hdr *)(void *)l.raw;
    int rfd = shm_open(l.name, O_RDONLY | O_CLOEXEC, 0);
    ck_assert_int_ge(rfd, 0);
    etsmgr_table *ro = NULL;
    ck_assert_int_eq(etsmgr_table_attach_fd(rfd, &ro), 0);
    etsmgr_value v;
    char buf[64];
    struct tt_walk w = {0};
    /* both handles have a cached view of the index to drop */
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "k1", 2, &v, buf, sizeof buf), 0);
    ck_assert_int_eq(etsmgr_table_lookup(ro, "k1", 2, &v, buf, sizeof buf), 0);
    uint64_t mask = h->idx_mask, off = h->idx_off;
    h->idx_mask = TBL_MAX_MASK;
    h->idx_off = 0ull - ((TBL_MAX_MASK + 1) * 8);
    h->layout_seq += 2;
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "k1", 2, &v, buf, sizeof buf), ETSMGR_ECORRUPT);
    ck_assert_int_eq(etsmgr_table_lookup(ro, "k1", 2, &v, buf, sizeof buf), ETSMGR_ECORRUPT);
    ck_assert_int_eq(etsmgr_table_foreach(l.t, tt_walk_cb, &w), ETSMGR_ECORRUPT);
    ck_assert_int_eq(etsmgr_table_foreach(ro, tt_walk_cb, &w), ETSMGR_ECORRUPT);
    ck_assert_uint_eq(w.n, 0);
    ck_assert_int_eq(exercise(l.t, 100), 100 + 48);
    /* a smaller wrap: the index's end sums to a few bytes into the table */
    h->idx_off = 0ull - ((TBL_MAX_MASK + 1) * 8) + TBL_HDR_SIZE;
    h->layout_seq += 2;
    ck_assert_int_eq(etsmgr_table_lookup(ro, "k1", 2, &v, buf, sizeof buf), ETSMGR_ECORRUPT);
    h->idx_mask = mask;
    h->idx_off = off;
    h->layout_seq += 2;
    ck_assert_int_eq(etsmgr_table_lookup(ro, "k1", 2, &v, buf, sizeof buf), 0);
    tt_check(l.t);
    etsmgr_table_close(ro);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_size_in_group)
{
    /* A rollback sets the handle's limit back from total_bytes, a word
     * others write.  Scribbled to 0 in a group, it made the limit 0, after
     * which limit - 8 and limit - 16 wrapped: the abort wrote through a
     * scribbled undo record 4 TiB away and a lookup read an entry as far.
     * Now the limit keeps its validated value, the bad record is skipped
     * and the lookup and the next change say ECORRUPT. */
    struct live l = live_table(10);
    struct tbl_hdr *h = (struct tbl_hdr *)(void *)l.raw;
    etsmgr_value v = tt_int(1), out;
    char buf[64];
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "k1", 2, &out, buf, sizeof buf), 0); /* caches the view */
    uint64_t tot = h->total_bytes, lim = l.t->limit;
    ck_assert_int_eq(etsmgr_table_begin(l.t), 0);
    ck_assert_int_eq(etsmgr_table_insert(l.t, "g", 1, &v), 0);
    ck_assert_uint_gt(h->undo_n, 0);
    struct tbl_undo u0 = h->undo[0];
    h->total_bytes = 0;
    h->undo[0].off = 1ull << 42;
    /* a failed operation rolls back to its mark: nothing to restore, but the limit is set again */
    ck_assert_int_eq(etsmgr_table_delete(l.t, "nokey", 5), ETSMGR_ENOTFOUND);
    ck_assert_uint_eq(l.t->limit, lim);
    ck_assert_int_eq(etsmgr_table_abort(l.t), 0); /* skips the far record, restores the rest */
    ck_assert_uint_eq(l.t->limit, lim);
    /* k1's home slot, with its tag, now points 4 TiB in */
    uint64_t hv = tbl_hash(l.t->hseed, "k1", 2), *idx = hw(&l, h->idx_off);
    uint64_t home = tbl_home(hv, 64u - (unsigned)__builtin_ctzll(h->idx_mask + 1)), slot = idx[home];
    idx[home] = (tbl_tag(hv) << 40) | ((1ull << 42) >> 3);
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "k1", 2, &out, buf, sizeof buf), ETSMGR_ECORRUPT);
    ck_assert_int_eq(etsmgr_table_insert(l.t, "new", 3, &v), ETSMGR_ECORRUPT);
    /* put back what was scribbled, and the one record the abort rightly
     * skipped: the table is whole again, "g" never in it */
    idx[home] = slot;
    h->total_bytes = tot;
    *hw(&l, u0.off) = u0.old;
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "g", 1, &out, buf, sizeof buf), ETSMGR_ENOTFOUND);
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "k1", 2, &out, buf, sizeof buf), 0);
    tt_check(l.t);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_index_full)
{
    /* no empty slot anywhere: probes must still end */
    struct live l = live_table(100);
    uint64_t *idx = hw(&l, l.t->h->idx_off);
    for (uint64_t i = 0; i <= l.t->h->idx_mask; i++)
        if (idx[i] == 0) idx[i] = TBL_SLOT_TOMB;
    etsmgr_value v;
    ck_assert_int_eq(etsmgr_table_lookup(l.t, "absent", 6, &v, NULL, 0), ETSMGR_ECORRUPT);
    expect_verify_corrupt(l.t);
    exercise(l.t, 100);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_undo_log)
{
    struct live l = live_table(100);
    struct tbl_hdr *h = l.t->h;
    h->undo[0].off = l.size * 2; /* outside */
    h->undo[0].old = 1;
    h->undo_n = 1;
    /* the lock's takers roll back; lock-free lookups do not look */
    int64_t nv;
    ck_assert_int_eq(etsmgr_table_update_counter(l.t, "k1", 2, 1, 0, &nv), ETSMGR_ECORRUPT);
    ck_assert_int_eq(etsmgr_table_update_counter(l.t, "k1", 2, 1, 0, &nv), ETSMGR_ECORRUPT); /* stays so */
    h->undo[0].off = offsetof(struct tbl_hdr, lock); /* the mutex is never a target */
    ck_assert_int_eq(etsmgr_table_update_counter(l.t, "k1", 2, 1, 0, &nv), ETSMGR_ECORRUPT);
    h->undo[0].off = offsetof(struct tbl_hdr, stripe); /* nor a sequence word */
    ck_assert_int_eq(etsmgr_table_update_counter(l.t, "k1", 2, 1, 0, &nv), ETSMGR_ECORRUPT);
    h->undo[0].off = offsetof(struct tbl_hdr, generation); /* a valid record is applied */
    h->undo[0].old = 77;
    ck_assert_int_eq(etsmgr_table_update_counter(l.t, "k1", 2, 1, 0, &nv), 0);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(l.t, &info), 0);
    ck_assert_uint_eq(info.generation, 77);
    tt_check(l.t);
    live_close(&l);
}
END_TEST

/* Stands in for a process that writes the undo log while the recovery
 * runs: after the recovery's first restore (records are restored from the
 * last), point record 0 far outside the object, once. */
static struct tbl_hdr *rec_h;
static int rec_hooked;
static void rec_scribble(const char *op, int step)
{
    if (op && strcmp(op, "recover") == 0 && step == 0 && !rec_hooked++) rec_h->undo[0].off = 1ull << 42;
}

START_TEST(corrupt_undo_log_during_recovery)
{
    /* The recovery checks every record, then restores them; a record
     * loaded again for the write could have changed since its check.  It
     * goes by the copy it checks: the changed record is refused and not
     * written through, the log stays for the next locker. */
    struct live l = live_table(10);
    struct tbl_hdr *h = (struct tbl_hdr *)(void *)l.raw;
    uint64_t gen = h->generation, tombs = h->tombs;
    h->undo[0].off = TBL_HOFF(generation); /* a dead writer's log: two well-formed records */
    h->undo[0].old = 77;
    h->undo[1].off = TBL_HOFF(tombs);
    h->undo[1].old = tombs;
    h->undo_n = 2;
    rec_h = h;
    rec_hooked = 0;
    tbl_crashpoint = rec_scribble;
    etsmgr_value v = tt_int(1);
    ck_assert_int_eq(etsmgr_table_insert(l.t, "new", 3, &v), ETSMGR_ECORRUPT);
    tbl_crashpoint = NULL;
    ck_assert_int_eq(rec_hooked, 1);
    ck_assert_uint_eq(h->undo_n, 2);
    ck_assert_uint_eq(h->generation, gen); /* record 0 not applied */
    /* the bad record stays bad: the next locker's first pass refuses it */
    ck_assert_int_eq(etsmgr_table_insert(l.t, "new", 3, &v), ETSMGR_ECORRUPT);
    /* put right, the log is restored whole */
    h->undo[0].off = TBL_HOFF(generation);
    ck_assert_int_eq(etsmgr_table_insert(l.t, "new", 3, &v), 0);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(l.t, &info), 0);
    ck_assert_uint_eq(info.generation, 77);
    ck_assert_uint_eq(h->undo_n, 0);
    tt_check(l.t);
    live_close(&l);
}
END_TEST

START_TEST(corrupt_free_lists)
{
    struct live l = live_table(200);
    struct tbl_hdr *h = l.t->h;
    int found = 0;
    for (unsigned c = 0; c < TBL_NCLASS; c++) {
        uint64_t f = h->free_head[c];
        if (!f) continue;
        found++;
        *hw(&l, f + 8) = f; /* a loop */
    }
    ck_assert_int_gt(found, 0);
    expect_verify_corrupt(l.t);
    exercise(l.t, 200);
    for (unsigned c = 0; c < TBL_NCLASS; c++)
        if (h->free_head[c]) *hw(&l, h->free_head[c]) = 12345; /* not a free block */
    exercise(l.t, 200);
    live_close(&l);
}
END_TEST

/* verify's list of blocks has room for maxblk of them: three per entry the
 * header counts, plus one per 16 bytes of heap, but at most 2^24 for the
 * heap (tbl_verify_heap_blocks), so that a big table does not cost a list
 * of its whole size.  A header that counts no entries over an index of
 * that many + 2 well-formed ones fills the list in the entries' walk; the
 * request-id block came after it unchecked, one block (16 bytes) past the
 * end of the list (a heap overflow under SANITIZE=1).  It must be refused
 * for too many blocks.  At 2^24 that takes a table of 512 MiB, so the
 * test lowers the bound to 64 (the hook): 65 entries of 16 bytes. */
START_TEST(verify_blocks_past_the_bound)
{
    const char *name;
    etsmgr_table *t = tt_create(&name, 0, 0);
    int64_t v;
    int dup;
    etsmgr_once o = {.keep_until_ms = etsmgr_mono_ms() + 3600000};
    memset(o.rid, 7, sizeof o.rid);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "c", 1, 1, &o, &v, &dup), 0);
    etsmgr_table_close(t);

    int fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct tbl_hdr *h = mmap(NULL, TBL_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert(h != MAP_FAILED);
    const uint64_t bound = 64, cap = 256, n = bound + 1, esz = 16;
    uint64_t idx_off = (h->heap_top + 4095) & ~4095ull, ents = idx_off + 8 * cap, top = ents + n * esz;
    uint64_t size = (top + 4095) & ~4095ull;
    if (size < h->total_bytes) size = h->total_bytes;
    ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
    char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert(base != MAP_FAILED);
    uint64_t *idx = (uint64_t *)(void *)(base + idx_off), *old = (uint64_t *)(void *)(base + h->idx_off);
    memset(idx, 0, 8 * cap);
    unsigned shift = 64u - 8u;
    uint64_t seed[2] = {0, 0}; /* the table's hash key */
    if (h->version & TBL_VERSION_SEEDED) memcpy(seed, h->hash_seed, sizeof seed);
    /* the counter "c" (its request-id record names no entry) and n more */
    for (uint64_t i = 0; i <= h->idx_mask; i++) {
        if (tbl_unused(old[i])) continue;
        uint64_t eo = (old[i] & TBL_OFF_MASK) << 3;
        const struct tbl_ent *e = (const struct tbl_ent *)(void *)(base + eo);
        uint64_t hv = tbl_hash(seed, base + eo + 8, e->klen), j = tbl_home(hv, shift);
        while (idx[j]) j = (j + 1) & (cap - 1);
        idx[j] = old[i];
    }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t eo = ents + i * esz;
        struct tbl_ent e = {.klen = 8, .type = ETSMGR_BYTES, .links = 0, .vlen = 0};
        memcpy(base + eo, &e, sizeof e);
        memcpy(base + eo + 8, &i, 8);
        uint64_t hv = tbl_hash(seed, &i, 8), j = tbl_home(hv, shift);
        while (idx[j]) j = (j + 1) & (cap - 1);
        idx[j] = tbl_tag(hv) << 40 | eo >> 3;
    }
    h->total_bytes = size;
    h->heap_top = top;
    h->idx_off = idx_off;
    h->idx_mask = cap - 1;
    h->count = 0; /* the lie: maxblk = 3 + 64, the walk finds 64 + 2 */
    h->tombs = 0;
    ck_assert_int_eq(munmap(base, size), 0);
    ck_assert_int_eq(munmap(h, TBL_HDR_SIZE), 0);

    ck_assert_int_eq(etsmgr_table_attach_fd(fd, &t), 0);
    char why[200] = "";
    tbl_verify_heap_blocks = bound;
    int r = etsmgr_table_verify(t, why, sizeof why);
    tbl_verify_heap_blocks = 1u << 24;
    ck_assert_int_eq(r, ETSMGR_ECORRUPT);
    ck_assert_msg(strstr(why, "more blocks than"), "verify: %s", why);
    etsmgr_table_close(t);
    close(fd);
}
END_TEST

/* Random words and bytes anywhere but the mutex itself: whatever the
 * operations return, they return. */
START_TEST(corrupt_random)
{
    for (int trial = 0; trial < 150; trial++) {
        struct live l = live_table(150);
        size_t lock_lo = offsetof(struct tbl_hdr, lock), lock_hi = lock_lo + sizeof(pthread_mutex_t);
        int n = 1 + (int)(rnd() % 8);
        size_t lo = trial % 2 ? TBL_HDR_SIZE : offsetof(struct tbl_hdr, undo_n);
        for (int k = 0; k < n; k++) {
            size_t off = lo + rnd() % (l.size - lo - 8);
            if (off + 8 > lock_lo && off < lock_hi) continue;
            if (rnd() % 2)
                *(uint64_t *)(void *)(l.raw + (off & ~7ul)) = rnd() % 4 ? rnd() : rnd() % l.size;
            else
                l.raw[off] = (char)rnd();
        }
        exercise(l.t, 150);
        live_close(&l);
        tt_cleanup();
    }
}
END_TEST

Suite *table_attach_suite(void)
{
    Suite *s = suite_create("table_attach");
    TCase *tc = tcase_create("attach");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, random_bytes);
    tcase_add_test(tc, truncated);
    tcase_add_loop_test(tc, header_field_corrupted, 0, (int)(sizeof fields / sizeof fields[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("scribbled");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, corrupt_slot);
    tcase_add_test(tc, corrupt_entry);
    tcase_add_test(tc, corrupt_counts);
    tcase_add_test(tc, corrupt_sizes_after_attach);
    tcase_add_test(tc, corrupt_index_place_wraps);
    tcase_add_test(tc, corrupt_size_in_group);
    tcase_add_test(tc, corrupt_index_full);
    tcase_add_test(tc, corrupt_undo_log);
    tcase_add_test(tc, corrupt_undo_log_during_recovery);
    tcase_add_test(tc, corrupt_free_lists);
    tcase_add_test(tc, corrupt_random);
    tcase_add_test(tc, verify_blocks_past_the_bound);
    suite_add_tcase(s, tc);
    return s;
}

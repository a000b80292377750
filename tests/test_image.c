/* SPDX-License-Identifier: Apache-2.0 */
/* test_image.c: table images (etsmgr_table_save, the image reader), without
 * a daemon: round trips compared entry by entry, a save while a writer runs
 * atomic groups (the image must be a consistent cut), a SIGKILL at every
 * step of a save (crash-point injection), a full disk (a 1 MiB tmpfs in a
 * private mount namespace), and every kind of damaged file.
 *
 * Loading goes through img_read + img_fill into a table made with
 * tbl_create here; etsmgr_table_load, which asks etsmgrd for the table, is
 * tested in test_snapshot.c. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "table_image.h"
#include "table_int.h"
#include "test_table_util.h"

static char T_dir[64];

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[512];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void setup(void)
{
    snprintf(T_dir, sizeof T_dir, "/tmp/etsimg-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(T_dir));
}

static void teardown(void)
{
    tt_cleanup();
    rm_dir(T_dir);
}

static const char *tpath(const char *name)
{
    static char p[4][128];
    static int n;
    char *b = p[n++ % 4];
    snprintf(b, 128, "%s/%s", T_dir, name);
    return b;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* Load the image at path into a fresh table (the reader's path). */
static etsmgr_table *load_plain(const char *path, int *rc, char *why, size_t whylen)
{
    img *im = NULL;
    *rc = img_read(path, &im, why, whylen);
    if (*rc) return NULL;
    etsmgr_table_opts o;
    img_table_opts(im, &o);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_create(tt_name(), im->info.name, &o, &t), 0);
    *rc = img_fill(t, im, why, whylen);
    img_free(im);
    if (*rc) {
        etsmgr_table_close(t);
        return NULL;
    }
    return t;
}

/* Every entry of a is in b with the same value, and both have as many. */
struct cmp {
    etsmgr_table *other;
    uint64_t n;
    unsigned char *buf;
};
static int cmp_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct cmp *c = arg;
    c->n++;
    etsmgr_value w;
    int r = etsmgr_table_lookup(c->other, key, klen, &w, c->buf, ETSMGR_VALUE_MAX);
    if (r) return 1000 + (-r);
    if (w.type != v->type) return 2;
    if (v->type == ETSMGR_INT) return v->i == w.i ? 0 : 3;
    return v->len == w.len && memcmp(v->data, w.data, v->len) == 0 ? 0 : 4;
}
static void assert_same(etsmgr_table *a, etsmgr_table *b)
{
    struct cmp c = {.other = b, .buf = malloc(ETSMGR_VALUE_MAX)};
    int r = etsmgr_table_foreach(a, cmp_cb, &c);
    free(c.buf);
    ck_assert_msg(r == 0, "entry %llu differs (%d)", (unsigned long long)c.n, r);
    etsmgr_table_info ia, ib;
    ck_assert_int_eq(etsmgr_table_info_get(a, &ia), 0);
    ck_assert_int_eq(etsmgr_table_info_get(b, &ib), 0);
    ck_assert_uint_eq(ia.entries, ib.entries);
    ck_assert_uint_eq(ia.max_bytes, ib.max_bytes);
    tt_check(b);
}

static void roundtrip(etsmgr_table *t)
{
    const char *p = tpath("rt.etsimg");
    char why[256] = "";
    int r = img_save(t, p, NULL, why, sizeof why);
    ck_assert_msg(r == 0, "save: %s: %s", etsmgr_strerror(r), why);
    ck_assert_int_eq(count_files(T_dir), 1); /* no temporary file left */
    etsmgr_table *u = load_plain(p, &r, why, sizeof why);
    ck_assert_msg(u != NULL, "load: %s: %s", etsmgr_strerror(r), why);
    assert_same(t, u);
    assert_same(u, t);
    etsmgr_table_close(u);
}

START_TEST(test_roundtrip_empty)
{
    etsmgr_table *t = tt_create(NULL, 0, 1u << 20);
    roundtrip(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(test_roundtrip_small)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    char k[32], v[100];
    for (long i = 0; i < 100; i++) {
        size_t kl = tt_key(k, sizeof k, "k", i);
        etsmgr_value val = i % 2 ? tt_int(i * -7) : tt_bytes(v, (size_t)snprintf(v, sizeof v, "v%ld", i));
        ck_assert_int_eq(etsmgr_table_insert(t, k, kl, &val), 0);
    }
    for (long i = 0; i < 100; i += 3) { /* holes and tombstones */
        size_t kl = tt_key(k, sizeof k, "k", i);
        ck_assert_int_eq(etsmgr_table_delete(t, k, kl), 0);
    }
    etsmgr_value e = tt_bytes("", 0); /* an empty value */
    ck_assert_int_eq(etsmgr_table_insert(t, "\0empty", 6, &e), 0);
    roundtrip(t);
    etsmgr_table_close(t);
}
END_TEST

/* The request-id records (etsmgr_table_update_counter_once) are no
 * entries; an image keeps the ones still within their keep time, a load puts
 * them back: a retry of a request counted before the save is not counted
 * again after the load.  An expired one is not carried. */
START_TEST(test_roundtrip_request_ids)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    for (uint64_t i = 0; i < 500; i++) {
        etsmgr_once o = {.keep_until_ms = i == 7 ? 1 : far};
        memcpy(o.rid, &i, sizeof i);
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "count", 5, 1, &o, &v, &dup), 0);
    }
    roundtrip(t); /* the entries: count only */
    const char *p = tpath("rid.etsimg");
    char why[256] = "";
    ck_assert_int_eq(img_save(t, p, NULL, why, sizeof why), 0);
    int r;
    etsmgr_table *u = load_plain(p, &r, why, sizeof why);
    ck_assert_msg(u != NULL, "load: %s: %s", etsmgr_strerror(r), why);
    for (uint64_t i = 0; i < 500; i++) {
        etsmgr_once o = {.keep_until_ms = far};
        memcpy(o.rid, &i, sizeof i);
        ck_assert_int_eq(etsmgr_table_update_counter_once(u, "count", 5, 1, &o, &v, &dup), 0);
        ck_assert_msg(dup == (i != 7), "rid %llu: dup %d", (unsigned long long)i, dup);
        if (i != 7) ck_assert_int_eq(v, (int64_t)i + 1);
    }
    tt_check(u);
    etsmgr_table_close(u);
    etsmgr_table_close(t);
}
END_TEST

/* An entry of the application whose key is a request-id record's (the
 * reserved prefix and a request id kept in the table) but whose type is
 * another is a distinct record: the fill puts the one into the entries and
 * the other into the request-id region.  The repeated-key check called
 * them a repeat, so a table the library saved without complaint did not
 * load ("entry 1 repeats the key of entry 0"). */
START_TEST(test_roundtrip_rid_shaped_key)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    int64_t v, far = etsmgr_mono_ms() + 3600000;
    int dup;
    etsmgr_once o = {.keep_until_ms = far};
    memset(o.rid, 7, sizeof o.rid);
    ck_assert_int_eq(etsmgr_table_update_counter_once(t, "count", 5, 41, &o, &v, &dup), 0);
    unsigned char key[28];
    memcpy(key, "\0etsmgr.rid\0", 12);
    memcpy(key + 12, o.rid, 16);
    etsmgr_value iv = tt_int(5);
    ck_assert_int_eq(etsmgr_table_insert(t, key, sizeof key, &iv), 0);
    /* the very shape of a request id in an image (a 16-byte BYTES value)
     * is refused: it would load back as a request id, not as an entry */
    etsmgr_value bv = {.type = ETSMGR_BYTES, .data = "0123456789abcdef", .len = 16};
    ck_assert_int_eq(etsmgr_table_insert(t, key, sizeof key, &bv), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_insert_new(t, key, sizeof key, &bv), ETSMGR_EINVAL);
    bv.len = 15; /* any other is an entry like any */
    ck_assert_int_eq(etsmgr_table_insert(t, key, sizeof key, &bv), 0);
    ck_assert_int_eq(etsmgr_table_insert(t, key, sizeof key, &iv), 0);
    const char *p = tpath("ridkey.etsimg");
    char why[256] = "";
    img_info in;
    ck_assert_int_eq(img_save(t, p, &in, why, sizeof why), 0);
    ck_assert_uint_eq(in.entries, 3); /* count, the key, the request id */
    int r;
    etsmgr_table *u = load_plain(p, &r, why, sizeof why);
    ck_assert_msg(u != NULL, "load: %s: %s", etsmgr_strerror(r), why);
    etsmgr_value got;
    ck_assert_int_eq(etsmgr_table_lookup(u, key, sizeof key, &got, NULL, 0), 0);
    ck_assert_int_eq(got.type, ETSMGR_INT);
    ck_assert_int_eq(got.i, 5);
    ck_assert_int_eq(etsmgr_table_update_counter_once(u, "count", 5, 41, &o, &v, &dup), 0);
    ck_assert_int_eq(dup, 1);
    ck_assert_int_eq(v, 41);
    tt_check(u);
    etsmgr_table_close(u);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(test_roundtrip_grown)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    char k[32];
    for (long i = 0; i < 1000000; i++) {
        size_t kl = tt_key(k, sizeof k, "key", i);
        etsmgr_value v = tt_int(i);
        ck_assert_int_eq(etsmgr_table_insert(t, k, kl, &v), 0);
    }
    roundtrip(t);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(test_roundtrip_values)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    unsigned char *v = malloc(ETSMGR_VALUE_MAX);
    char k[ETSMGR_KEY_MAX + 1];
    for (long i = 0; i < 64; i++) {
        size_t vl = i == 0 ? ETSMGR_VALUE_MAX : (size_t)(i * 997) % ETSMGR_VALUE_MAX;
        for (size_t j = 0; j < vl; j++) v[j] = (unsigned char)(j * 31 + (size_t)i);
        memset(k, 'a' + (int)(i % 26), sizeof k);
        size_t kl = i == 1 ? ETSMGR_KEY_MAX : tt_key(k, sizeof k, "big", i);
        etsmgr_value val = tt_bytes(v, vl);
        ck_assert_int_eq(etsmgr_table_insert(t, k, kl, &val), 0);
    }
    free(v);
    roundtrip(t);
    etsmgr_table_close(t);
}
END_TEST

/* An ordered table comes back ordered, with its keys in the same order,
 * and every table keeps its access mode (both were lost by version 1). */
struct keys {
    size_t n;
    char k[600][16];
    size_t kl[600];
};
static int keys_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)v;
    struct keys *ks = arg;
    if (ks->n == 600 || klen > 16) return 1;
    memcpy(ks->k[ks->n], key, klen);
    ks->kl[ks->n++] = klen;
    return 0;
}
START_TEST(test_roundtrip_ordered)
{
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET, .access = ETSMGR_PUBLIC};
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_create(tt_name(), "ord", &o, &t), 0);
    char k[16];
    for (long i = 0; i < 500; i++) { /* inserted out of order, and with a prefix key */
        long j = (i * 7919) % 500;
        etsmgr_value v = tt_int(j);
        ck_assert_int_eq(etsmgr_table_insert(t, k, tt_key(k, sizeof k, "k", j), &v), 0);
    }
    etsmgr_value v = tt_int(-1);
    ck_assert_int_eq(etsmgr_table_insert(t, "k", 1, &v), 0);
    roundtrip(t);
    const char *p = tpath("ord.etsimg");
    char why[256] = "";
    ck_assert_int_eq(img_save(t, p, NULL, why, sizeof why), 0);
    int r;
    etsmgr_table *u = load_plain(p, &r, why, sizeof why);
    ck_assert_msg(u != NULL, "load: %s: %s", etsmgr_strerror(r), why);
    etsmgr_table_info iu;
    ck_assert_int_eq(etsmgr_table_info_get(u, &iu), 0);
    ck_assert_int_eq(iu.type, ETSMGR_ORDERED_SET);
    ck_assert_int_eq(iu.access, ETSMGR_PUBLIC);
    static struct keys a, b;
    a.n = b.n = 0;
    ck_assert_int_eq(etsmgr_table_foreach(t, keys_cb, &a), 0);
    ck_assert_int_eq(etsmgr_table_foreach(u, keys_cb, &b), 0);
    ck_assert_uint_eq(a.n, 501);
    ck_assert_uint_eq(b.n, 501);
    for (size_t i = 0; i < a.n; i++)
        ck_assert_msg(a.kl[i] == b.kl[i] && memcmp(a.k[i], b.k[i], a.kl[i]) == 0, "key %zu differs", i);
    ck_assert_uint_eq(b.kl[0], 1); /* "k" first: the order is the key order, not the hashes' */
    size_t kl;
    ck_assert_int_eq(etsmgr_table_last(u, k, sizeof k, &kl), 0);
    ck_assert(kl == a.kl[500] && memcmp(k, a.k[500], kl) == 0);
    etsmgr_table_close(u);
    etsmgr_table_close(t);
    /* a set keeps its access mode too */
    etsmgr_table_opts o2 = {.access = ETSMGR_PRIVATE};
    ck_assert_int_eq(tbl_create(tt_name(), "priv", &o2, &t), 0);
    ck_assert_int_eq(img_save(t, p, NULL, why, sizeof why), 0);
    u = load_plain(p, &r, why, sizeof why);
    ck_assert_ptr_nonnull(u);
    ck_assert_int_eq(etsmgr_table_info_get(u, &iu), 0);
    ck_assert_int_eq(iu.type, ETSMGR_SET);
    ck_assert_int_eq(iu.access, ETSMGR_PRIVATE);
    etsmgr_table_close(u);
    etsmgr_table_close(t);
}
END_TEST

/* An ordered table filled to its max_bytes loads back from its image: in
 * ascending (_i 0), descending (1) and scattered (2) key order.  Ascending
 * keys (a time, a sequence number) leave every leaf of the B+tree full;
 * the image's records come in hash order, and inserted in that order they
 * left leaves about 78 % full: the tree took more room than the table had,
 * and the load (the restore of etsmgrd's snapshot at boot) failed with
 * ETSMGR_EFULL at entry 16,063 of 17,436. */
START_TEST(test_roundtrip_ordered_full)
{
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET, .max_bytes = 1u << 20};
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_create(tt_name(), "ordfull", &o, &t), 0);
    char k[16];
    long n = 0;
    for (int r = 0; r == 0; n++) {
        long j = _i == 0 ? n : _i == 1 ? 1000000 - n : (n * 7919) % 1000003;
        etsmgr_value v = tt_int(n);
        r = etsmgr_table_insert(t, k, (size_t)snprintf(k, sizeof k, "k%07ld", j), &v);
        ck_assert_msg(r == 0 || r == ETSMGR_EFULL, "insert %ld: %s", n, etsmgr_strerror(r));
    }
    ck_assert_int_gt(n, 10000);
    roundtrip(t);
    etsmgr_table_close(t);
}
END_TEST

/* A set (_i 0) and an ordered table (1) of 1000-byte values, filled to
 * their max_bytes, load back from their images.  The load asked for a
 * table of the image's size, and a table's first index has room for as
 * many of the smallest entries as its size would hold: 16,384 slots
 * (128 KiB) for a table of 972 entries whose own index had 2,048, and
 * the last tenth of the entries did not fit (ETSMGR_EFULL). */
START_TEST(test_roundtrip_full_large_values)
{
    etsmgr_table_opts o = {.type = _i ? ETSMGR_ORDERED_SET : ETSMGR_SET, .max_bytes = 1u << 20};
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_create(tt_name(), "bigvals", &o, &t), 0);
    static char val[1000];
    char k[16];
    long n = 0;
    for (int r = 0; r == 0; n++) {
        memset(val, (int)(n & 0xff), sizeof val);
        etsmgr_value v = tt_bytes(val, sizeof val);
        r = etsmgr_table_insert(t, k, tt_key(k, sizeof k, "k", (n * 7919) % 100003), &v);
        ck_assert_msg(r == 0 || r == ETSMGR_EFULL, "insert %ld: %s", n, etsmgr_strerror(r));
    }
    ck_assert_int_gt(n, 900);
    roundtrip(t);
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ consistent cut */

/* The writer: atomic groups that set a<i> and b<i> to the same new value;
 * a save that cut a group in two would show a<i> != b<i>. */
/* grow: each group also inserts a new key and deletes an older one, so
 * the table grows, rehashes and reuses freed blocks while it is saved */
static void pair_writer(etsmgr_table *t, int ready_fd, const void *grow_p)
{
    bool grow = *(const bool *)grow_p;
    char ka[16], kb[16], kf[16];
    for (int64_t n = 1;; n++) {
        int i = (int)(n % 97);
        size_t la = tt_key(ka, sizeof ka, "a", i), lb = tt_key(kb, sizeof kb, "b", i);
        etsmgr_value v = tt_int(n);
        if (etsmgr_table_begin(t) || etsmgr_table_insert(t, ka, la, &v)) _exit(3);
        /* a bytes value too, so that groups also allocate and free */
        char s[40];
        etsmgr_value sv = tt_bytes(s, (size_t)snprintf(s, sizeof s, "%lld", (long long)n));
        if (etsmgr_table_insert(t, "s", 1, &sv)) _exit(4);
        if (grow) {
            etsmgr_value fv = tt_bytes(s, 40);
            if (etsmgr_table_insert(t, kf, tt_key(kf, sizeof kf, "f", (long)n), &fv)) _exit(6);
            int dr = n > 3000 ? etsmgr_table_delete(t, kf, tt_key(kf, sizeof kf, "f", (long)n - 3000)) : 0;
            if (dr && dr != ETSMGR_ENOTFOUND) _exit(7);
        }
        if (etsmgr_table_insert(t, kb, lb, &v) || etsmgr_table_commit(t)) _exit(4);
        if (n == 200 && write(ready_fd, "r", 1) != 1) _exit(5);
    }
}

/* What a forked writer runs on its own handle of the table: it writes one
 * byte to ready_fd once it has been running a while, and never returns. */
typedef void writer_fn(etsmgr_table *w, int ready_fd, const void *arg);

/* Forks a writer on the table called name and returns its pid once the
 * writer says it is under way, so that the saves that follow race it. */
static pid_t start_writer(const char *name, writer_fn *run, const void *arg)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        etsmgr_table *w;
        if (tbl_open(name, &w)) _exit(2);
        run(w, pfd[1], arg);
        _exit(9);
    }
    close(pfd[1]);
    char c;
    ck_assert_int_eq(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    return pid;
}

/* Every pair a<i>, b<i> of pair_writer in the image u is whole: both
 * there with one value, or both absent.  Returns how many are there. */
static int assert_pairs_whole(etsmgr_table *u, int round)
{
    char ka[16], kb[16];
    int pairs = 0;
    for (int i = 0; i < 97; i++) {
        int ra, rb;
        tt_key(ka, sizeof ka, "a", i);
        tt_key(kb, sizeof kb, "b", i);
        int64_t a = tt_get_int(u, ka, &ra), b = tt_get_int(u, kb, &rb);
        ck_assert_int_eq(ra, rb); /* both there or both absent */
        ck_assert_msg(a == b, "round %d: a%d = %lld but b%d = %lld", round, i, (long long)a, i, (long long)b);
        pairs += ra == 0;
    }
    return pairs;
}

/* Fills t with n keys k<i> of vlen zero bytes: a table big enough that a
 * save of it takes a while. */
static void fill_zeros(etsmgr_table *t, long n, size_t vlen)
{
    static const unsigned char zeros[1000];
    ck_assert_uint_le(vlen, sizeof zeros);
    char k[16];
    for (long i = 0; i < n; i++) {
        etsmgr_value v = tt_bytes(zeros, vlen);
        ck_assert_int_eq(etsmgr_table_insert(t, k, tt_key(k, sizeof k, "k", i), &v), 0);
    }
}

/* Saves while a writer runs atomic groups: every image has each pair
 * whole.  Both ways of copying (the lock-free rounds with a fix-up under
 * the lock, and one copy under the lock), with a writer that only updates
 * and one that also grows the table, rehashes and frees. */
START_TEST(test_consistent_cut)
{
    bool locked = _i & 1, grow = _i & 2;
    const char *name;
    etsmgr_table *t = tt_create(&name, 0, 0);
    pid_t pid = start_writer(name, pair_writer, &grow);
    img_force_locked_copy = locked;
    const char *p = tpath("cut.etsimg");
    char why[256] = "";
    uint64_t rounds_total = 0;
    for (int round = 0; round < 30; round++) {
        int r = img_save(t, p, NULL, why, sizeof why);
        uint64_t rounds;
        bool fell_back;
        img_last_copy_stats(NULL, &rounds, &fell_back);
        rounds_total += rounds;
        ck_assert(!locked || fell_back); /* forced: always the locked copy */
        ck_assert_msg(r == 0, "save: %s: %s", etsmgr_strerror(r), why);
        etsmgr_table *u = load_plain(p, &r, why, sizeof why);
        ck_assert_msg(u != NULL, "load: %s", why);
        ck_assert_int_gt(assert_pairs_whole(u, round), 0);
        etsmgr_table_close(u);
    }
    img_force_locked_copy = false;
    if (!locked) ck_assert_uint_gt(rounds_total, 0); /* the rounds ran */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* The writer: counts one key, "hot", for ever. */
static void hot_writer(etsmgr_table *w, int ready_fd, const void *arg)
{
    (void)arg;
    for (long n = 1;; n++) {
        int64_t v;
        if (etsmgr_table_update_counter(w, "hot", 3, 1, 0, &v)) _exit(3);
        if (n == 1000 && write(ready_fd, "r", 1) != 1) _exit(4);
    }
}

/* A save while the owner keeps changing one key copies little while it
 * holds the lock: the changed stripe's entries, the index and the header,
 * not the whole table (what a save copied under the lock before). */
START_TEST(test_save_copies_little_under_lock)
{
    const char *name;
    etsmgr_table *t = tt_create(&name, 0, 0);
    fill_zeros(t, 8000, 1000);
    pid_t pid = start_writer(name, hot_writer, NULL);
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    char why[256] = "";
    const char *p = tpath("hot.etsimg");
    for (int i = 0; i < 5; i++) {
        ck_assert_msg(img_save(t, p, NULL, why, sizeof why) == 0, "%s", why);
        uint64_t locked;
        bool fell_back;
        img_last_copy_stats(&locked, NULL, &fell_back);
        ck_assert(!fell_back);
        ck_assert_msg(locked < info.bytes_used / 4, "%llu bytes copied under the lock of %llu",
                      (unsigned long long)locked, (unsigned long long)info.bytes_used);
        int r;
        etsmgr_table *u = load_plain(p, &r, why, sizeof why);
        ck_assert_msg(u != NULL, "%s", why);
        ck_assert_int_gt(tt_get_int(u, "hot", &r), 0);
        ck_assert_int_eq(r, 0);
        etsmgr_table_close(u);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    etsmgr_table_close(t);
}
END_TEST

/* An integer changed in place outside a group is one store that moves no
 * stripe word (table_ops.c): the save must still see it.  The writer
 * counts c, then writes the count it got into d as bytes (a change that
 * does move d's stripe), so at every instant c >= d; an image with c < d
 * kept c from before d's change. */
static void count_writer(etsmgr_table *w, int ready_fd, const void *arg)
{
    (void)arg;
    for (long n = 1;; n++) {
        int64_t c;
        if (etsmgr_table_update_counter(w, "c", 1, 1, 0, &c)) _exit(3);
        etsmgr_value d = tt_bytes(&c, sizeof c);
        if (etsmgr_table_insert(w, "d", 1, &d)) _exit(4);
        if (n == 1000 && write(ready_fd, "r", 1) != 1) _exit(5);
    }
}
START_TEST(test_consistent_cut_counters)
{
    const char *name;
    etsmgr_table *t = tt_create(&name, 0, 0);
    fill_zeros(t, 20000, 200);
    pid_t pid = start_writer(name, count_writer, NULL);
    const char *p = tpath("ctr.etsimg");
    char why[256] = "";
    for (int round = 0; round < 20; round++) {
        ck_assert_msg(img_save(t, p, NULL, why, sizeof why) == 0, "%s", why);
        int r;
        etsmgr_table *u = load_plain(p, &r, why, sizeof why);
        ck_assert_msg(u != NULL, "%s", why);
        int64_t c = tt_get_int(u, "c", &r), d;
        ck_assert_int_eq(r, 0);
        etsmgr_value dv;
        unsigned char buf[16];
        ck_assert_int_eq(etsmgr_table_lookup(u, "d", 1, &dv, buf, sizeof buf), 0);
        ck_assert_uint_eq(dv.len, sizeof d);
        memcpy(&d, dv.data, sizeof d);
        ck_assert_msg(c >= d, "round %d: c = %lld but d = %lld: c is older than d", round, (long long)c,
                      (long long)d);
        etsmgr_table_close(u);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    etsmgr_table_close(t);
}
END_TEST

/* A writer SIGKILLed in the middle of an atomic group while saves run:
 * every image is still a consistent cut (the save's last step takes the
 * lock and so rolls the dead writer's group back first). */
static long wd_calls;
static void wd_hook(const char *op, int step)
{
    (void)op, (void)step;
    if (++wd_calls == 150000) _exit(78); /* somewhere inside a group */
}
static void dying_pair_writer(etsmgr_table *w, int ready_fd, const void *arg)
{
    (void)arg;
    static const bool grow = true;
    tbl_crashpoint = wd_hook;
    pair_writer(w, ready_fd, &grow);
}
START_TEST(test_save_with_writer_killed)
{
    const char *name;
    etsmgr_table *t = tt_create(&name, 0, 0);
    pid_t pid = start_writer(name, dying_pair_writer, NULL);
    const char *p = tpath("kill.etsimg");
    char why[256] = "";
    bool dead = false;
    for (int round = 0; round < 400 && !dead; round++) {
        int st;
        dead = waitpid(pid, &st, WNOHANG) == pid; /* one more save after its death */
        if (dead) ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 78, "writer: %d", st);
        ck_assert_msg(img_save(t, p, NULL, why, sizeof why) == 0, "%s", why);
        int r;
        etsmgr_table *u = load_plain(p, &r, why, sizeof why);
        ck_assert_msg(u != NULL, "%s", why);
        assert_pairs_whole(u, round);
        etsmgr_table_close(u);
    }
    if (!dead) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    ck_assert_msg(dead, "the writer did not reach its crash point");
    tt_check(t);
    etsmgr_table_close(t);
}
END_TEST

/* A key deleted after the save's first copy whose block a new key then
 * takes: the rounds copy the new key through its own slot, so the old slot
 * must leave the copy's index too (it pointed at the same block: the image
 * had the new key twice, "repeats an earlier key", seen once in
 * consistent_cut with the growing writer). */
static etsmgr_table *mv_table;
static bool mv_done;
static void mv_hook(const char *op, int step)
{
    if (mv_done || strcmp(op, "save") != 0 || step != 14) return;
    mv_done = true;
    char v[40];
    memset(v, 'x', sizeof v);
    etsmgr_value bv = tt_bytes(v, sizeof v);
    for (int i = 0; i < 40; i += 2) { /* every other one: the deleted blocks are taken again */
        char k[16];
        ck_assert_int_eq(etsmgr_table_delete(mv_table, k, tt_key(k, sizeof k, "f", i)), 0);
        ck_assert_int_eq(etsmgr_table_insert(mv_table, k, tt_key(k, sizeof k, "g", i), &bv), 0);
    }
}
START_TEST(test_cut_block_taken_by_new_key)
{
    const char *name;
    mv_table = tt_create(&name, 0, 0);
    char v[40], k[16], why[256] = "";
    memset(v, 'x', sizeof v);
    etsmgr_value bv = tt_bytes(v, sizeof v);
    for (int i = 0; i < 40; i++)
        ck_assert_int_eq(etsmgr_table_insert(mv_table, k, tt_key(k, sizeof k, "f", i), &bv), 0);
    mv_done = false;
    tbl_crashpoint = mv_hook;
    const char *p = tpath("moved.etsimg");
    int r = img_save(mv_table, p, NULL, why, sizeof why);
    tbl_crashpoint = NULL;
    ck_assert(mv_done);
    ck_assert_msg(r == 0, "save: %s", why);
    etsmgr_table *u = load_plain(p, &r, why, sizeof why);
    ck_assert_msg(u != NULL, "load: %s", why);
    for (int i = 0; i < 40; i++) {
        etsmgr_value out;
        char buf[64];
        int ef = etsmgr_table_lookup(u, k, tt_key(k, sizeof k, "f", i), &out, buf, sizeof buf);
        int eg = etsmgr_table_lookup(u, k, tt_key(k, sizeof k, "g", i), &out, buf, sizeof buf);
        ck_assert_msg(i % 2 ? ef == 0 && eg == ETSMGR_ENOTFOUND : ef == ETSMGR_ENOTFOUND && eg == 0,
                      "key %d: f %d g %d", i, ef, eg);
    }
    tt_check(u);
    etsmgr_table_close(u);
    etsmgr_table_close(mv_table);
}
END_TEST

/* ------------------------------------------------------------ crash points */

static long cp_target, cp_calls;
static void cp_hook(const char *op, int step)
{
    (void)op, (void)step;
    if (cp_calls++ == cp_target) _exit(77);
}

static int64_t image_gen(const char *path)
{
    int r;
    char why[256] = "";
    etsmgr_table *u = load_plain(path, &r, why, sizeof why);
    ck_assert_msg(u != NULL, "after a crash the file at %s is not an image: %s: %s", path,
                  etsmgr_strerror(r), why);
    int64_t g = tt_get_int(u, "gen", &r);
    ck_assert_int_eq(r, 0);
    etsmgr_table_close(u);
    return g;
}

START_TEST(test_save_crash_points)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value g1 = tt_int(1);
    ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g1), 0);
    const char *p = tpath("crash.etsimg");
    ck_assert_int_eq(etsmgr_table_save(t, p), 0);
    /* the new version: big enough for several write buffers */
    unsigned char *v = calloc(1, ETSMGR_VALUE_MAX);
    char k[16];
    for (long i = 0; i < 40; i++) {
        etsmgr_value val = tt_bytes(v, ETSMGR_VALUE_MAX);
        ck_assert_int_eq(etsmgr_table_insert(t, k, tt_key(k, sizeof k, "v", i), &val), 0);
    }
    free(v);
    etsmgr_value g2 = tt_int(2);
    ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g2), 0);
    long step;
    int olds = 0;
    for (step = 0;; step++) {
        ck_assert_msg(step < 1000, "no end of crash points");
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            cp_target = step;
            cp_calls = 0;
            img_force_locked_copy = _i; /* the rounds and fix-up, or one locked copy */
            tbl_crashpoint = cp_hook;
            _exit(etsmgr_table_save(t, p) == 0 ? 0 : 10);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFEXITED(st));
        int code = WEXITSTATUS(st);
        ck_assert_msg(code == 0 || code == 77, "step %ld: save failed (%d)", step, code);
        int64_t g = image_gen(p); /* old and whole, or new and whole */
        ck_assert_msg(g == 1 || g == 2, "step %ld: gen %lld", step, (long long)g);
        if (code == 0) {
            ck_assert_int_eq(g, 2);
            break;
        }
        olds += g == 1;
        /* a saver that died holding the table's lock left it usable: the
         * next locker (this change) recovers */
        ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g2), 0);
        if (g == 2) { /* a crash after the rename: put the old one back for the next step */
            ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g1), 0);
            ck_assert_int_eq(etsmgr_table_save(t, p), 0);
            ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g2), 0);
        }
        tt_check(t);
    }
    ck_assert_int_gt(step, 8); /* the save has its steps, each was tried */
    ck_assert_int_gt(olds, 5);
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ full disk */

START_TEST(test_save_full_disk)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value g1 = tt_int(1);
    ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g1), 0);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* a private mount namespace: the tmpfs is ours alone and goes
         * away with this process */
        close(pfd[0]);
        char msg[200] = "";
        int code = 0;
        if (unshare(CLONE_NEWNS) < 0) {
            snprintf(msg, sizeof msg, "unshare(CLONE_NEWNS): %s", strerror(errno));
            code = 99;
        } else if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                   mount("etsimg-test", T_dir, "tmpfs", 0, "size=1m,mode=0700") < 0) {
            snprintf(msg, sizeof msg, "mount tmpfs: %s", strerror(errno));
            code = 99;
        }
        if (code == 0) {
            const char *p = tpath("full.etsimg");
            if (etsmgr_table_save(t, p) != 0) code = 10; /* the old snapshot fits */
            unsigned char *v = calloc(1, ETSMGR_VALUE_MAX);
            char k[16];
            etsmgr_value g2 = tt_int(2);
            for (long i = 0; code == 0 && i < 40; i++) {
                etsmgr_value val = tt_bytes(v, ETSMGR_VALUE_MAX);
                if (etsmgr_table_insert(t, k, tt_key(k, sizeof k, "v", i), &val)) code = 11;
            }
            if (code == 0 && etsmgr_table_insert(t, "gen", 3, &g2)) code = 12;
            int r = code ? 0 : etsmgr_table_save(t, p);
            if (code == 0 && r != ETSMGR_EFULL) {
                snprintf(msg, sizeof msg, "save on a full disk gave %d (%s), not ETSMGR_EFULL", r,
                         etsmgr_strerror(r));
                code = 13;
            }
            if (code == 0 && image_gen(p) != 1) code = 14;
            if (code == 0 && count_files(T_dir) != 1) code = 15; /* the temporary file is gone */
            free(v);
        }
        if (write(pfd[1], msg, strlen(msg)) < 0) code = 16;
        tt_cleanup(); /* the tables image_gen made here; _exit runs no atexit */
        _exit(code);
    }
    close(pfd[1]);
    char msg[201] = "";
    ssize_t n = read(pfd[0], msg, 200);
    close(pfd[0]);
    if (n > 0) msg[n] = 0;
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    if (WEXITSTATUS(st) == 99) {
        printf("test_save_full_disk: SKIPPED: no private mount namespace here (%s)\n", msg);
        fflush(stdout);
    } else {
        ck_assert_msg(WEXITSTATUS(st) == 0, "full-disk check %d failed %s", WEXITSTATUS(st), msg);
    }
    etsmgr_table_close(t);
}
END_TEST

/* ------------------------------------------------------------ damaged files */

static unsigned char *good_image(size_t *len)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    char k[16];
    for (long i = 0; i < 50; i++) {
        etsmgr_value v = i % 2 ? tt_int(i) : tt_bytes("hello", 5);
        ck_assert_int_eq(etsmgr_table_insert(t, k, tt_key(k, sizeof k, "k", i), &v), 0);
    }
    const char *p = tpath("good.etsimg");
    ck_assert_int_eq(etsmgr_table_save(t, p), 0);
    etsmgr_table_close(t);
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    unsigned char *b = malloc(1 << 20);
    *len = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void fix_header_crc(unsigned char *b)
{
    uint32_t c = img_crc32c(0, b, IMG_HDR_SIZE - 4);
    for (int i = 0; i < 4; i++) b[IMG_HDR_SIZE - 4 + i] = (unsigned char)(c >> (8 * i));
}
static void fix_records_crc(unsigned char *b, size_t len)
{
    uint32_t c = img_crc32c(0, b + IMG_HDR_SIZE, len - IMG_HDR_SIZE - IMG_TRAILER_SIZE);
    for (int i = 0; i < 4; i++) b[len - 8 + i] = (unsigned char)(c >> (8 * i));
}
static void put64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* The file variant: written, read back with img_read: code and words. */
static void expect_file(const unsigned char *b, size_t len, int want, const char *words)
{
    const char *p = tpath("bad.etsimg");
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len, f), len);
    fclose(f);
    char why[256] = "";
    int r;
    etsmgr_table *u = load_plain(p, &r, why, sizeof why);
    ck_assert_msg(u == NULL && r == want, "wanted %s, got %d (%s): %s", etsmgr_strerror(want), r,
                  etsmgr_strerror(r), why);
    ck_assert_msg(strstr(why, words) != NULL, "the words \"%s\" do not say \"%s\"", why, words);
}

START_TEST(test_damaged_files)
{
    size_t len;
    unsigned char *g = good_image(&len), *b = malloc(len + 64);
    img_info in;
    char why[256];
    ck_assert_int_eq(img_parse(g, len, &in, why, sizeof why), 0);
    ck_assert_uint_eq(in.entries, 50);
    ck_assert_str_eq(in.name, "test");

    /* truncated anywhere */
    size_t cuts[] = {0, 3, 8, 15, 100, IMG_HDR_SIZE, IMG_HDR_SIZE + 9, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        memcpy(b, g, len);
        expect_file(b, cuts[i], ETSMGR_ETRUNCATED, "truncated");
    }
    /* not an image */
    memcpy(b, g, len);
    b[1] = 'X';
    expect_file(b, len, ETSMGR_EBADMAGIC, "magic");
    expect_file((const unsigned char *)"hello, world\n", 13, ETSMGR_EBADMAGIC, "magic");
    /* newer version */
    memcpy(b, g, len);
    b[8] = IMG_VERSION + 1;
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_EVERSION, "newer");
    b[8] = 200; /* even with a header this version cannot read */
    expect_file(b, 40, ETSMGR_EVERSION, "newer");
    /* a flipped bit in the header, in an entry */
    memcpy(b, g, len);
    b[50] ^= 4;
    expect_file(b, len, ETSMGR_ECORRUPT, "header checksum");
    memcpy(b, g, len);
    b[IMG_HDR_SIZE + 20] ^= 1;
    expect_file(b, len, ETSMGR_ECORRUPT, "checksum of the entries");
    /* absurd counts, checksums made to match */
    memcpy(b, g, len);
    put64le(b + 24, UINT64_C(1) << 60);
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "impossible");
    memcpy(b, g, len);
    put64le(b + 32, UINT64_C(1) << 62);
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "impossible");
    memcpy(b, g, len);
    put64le(b + 32, UINT64_C(1) << 40); /* plausible count, far more than the file */
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ETRUNCATED, "truncated");
    memcpy(b, g, len);
    put64le(b + 24, 49);
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "entries, the header says 49");
    memcpy(b, g, len);
    b[IMG_HDR_SIZE] = 0; /* the first key length */
    fix_records_crc(b, len);
    expect_file(b, len, ETSMGR_ECORRUPT, "key length 0");
    memcpy(b, g, len);
    /* the first value length, too long for an integer (the first record's
     * type made one: records come in the index's order, which the table's
     * hash key makes random, and 65535 bytes would fit a byte string) */
    b[IMG_HDR_SIZE + 1] = ETSMGR_INT;
    b[IMG_HDR_SIZE + 4] = 0xff;
    b[IMG_HDR_SIZE + 5] = 0xff;
    fix_records_crc(b, len);
    expect_file(b, len, ETSMGR_ECORRUPT, "value length");
    /* the same key twice: a later key of the same length made equal to the first */
    memcpy(b, g, len);
    unsigned char *r0 = b + IMG_HDR_SIZE, *r1 = r0 + IMG_REC_HDR + r0[0] + r0[4];
    while (r1[0] != r0[0]) r1 += IMG_REC_HDR + r1[0] + r1[4];
    ck_assert(r1 < b + len - IMG_TRAILER_SIZE);
    memcpy(r1 + IMG_REC_HDR, r0 + IMG_REC_HDR, r0[0]);
    fix_records_crc(b, len);
    expect_file(b, len, ETSMGR_ECORRUPT, "repeats");
    /* found by the reader itself, before a loader makes (or replaces) a
     * table: the fill met it only after (test_snapshot's
     * test_load_replace_repeated_key_keeps_table) */
    ck_assert_int_eq(img_parse(b, len, &in, why, sizeof why), ETSMGR_ECORRUPT);
    ck_assert_msg(strstr(why, "repeats the key of entry 0"), "%s", why);
    /* garbage after the end, an invalid name */
    memcpy(b, g, len);
    memset(b + len, 'x', 10);
    expect_file(b, len + 10, ETSMGR_ECORRUPT, "follow the end");
    memcpy(b, g, len);
    b[81] = '/';
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "name");
    /* version 2's fields: out of range, or in a version 1 file (where they
     * were reserved); a version 1 file without them loads as a protected set */
    memcpy(b, g, len);
    b[148] = 3;
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "access mode 3");
    memcpy(b, g, len);
    b[152] = 2;
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "table type 2");
    memcpy(b, g, len);
    b[163] = 0x80;
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "before 1970");
    memcpy(b, g, len);
    b[170] = 1;
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "reserved header byte 170");
    memcpy(b, g, len);
    b[8] = 1;
    b[152] = 1;
    fix_header_crc(b);
    expect_file(b, len, ETSMGR_ECORRUPT, "reserved header byte 152");
    b[152] = 0;
    fix_header_crc(b);
    ck_assert_int_eq(img_parse(b, len, &in, why, sizeof why), 0);
    ck_assert_uint_eq(in.type, ETSMGR_SET);
    ck_assert_uint_eq(in.access, ETSMGR_PROTECTED);
    ck_assert_uint_eq(in.entries, 50);
    /* a directory, a missing file */
    char w2[256];
    img *im;
    ck_assert_int_eq(img_read(T_dir, &im, w2, sizeof w2), ETSMGR_EBADMAGIC);
    ck_assert_int_eq(img_read(tpath("nothing"), &im, w2, sizeof w2), ETSMGR_ENOTFOUND);
    free(g);
    free(b);
}
END_TEST

/* The repeated-key check's hash before it was keyed (a copy, to make keys
 * collide under it): for 8-byte keys it is a bijection a writer can invert. */
static uint64_t old_key_hash8(uint64_t w)
{
    uint64_t h = (0x9e3779b97f4a7c15u ^ 8) ^ w;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 32;
    h *= 0xc4ceb9fe1a85ec53u; /* the tail: no bytes left, w = 0 */
    return h ^ (h >> 29);
}
static uint64_t inv_mul(uint64_t a)
{
    uint64_t x = a;
    for (int i = 0; i < 6; i++) x *= 2 - a * x;
    return x;
}
static uint64_t inv_xorshift(uint64_t h, int s)
{
    uint64_t x = h;
    for (int i = 0; i < 64 / s + 1; i++) x = h ^ (x >> s);
    return x;
}
/* The 8-byte key whose old hash is want. */
static uint64_t old_key_for(uint64_t want)
{
    uint64_t h = inv_xorshift(want, 29) * inv_mul(0xc4ceb9fe1a85ec53u);
    h = inv_xorshift(h, 32) * inv_mul(0xff51afd7ed558ccdu);
    return h ^ (0x9e3779b97f4a7c15u ^ 8);
}

/* Hash flooding: an image whose keys all share the low 24 bits of the
 * unkeyed hash (every slot index of the check's set, which has fewer than
 * 2^24 slots here) made the check probe one run of slots, quadratic in the
 * entries (80 000 entries: 13 s; 800 000: 20 min).  Keyed, the keys spread:
 * the longest probe stays short.  The cost is counted, not timed. */
START_TEST(test_parse_flooded_keys)
{
    enum { N = 8192 };
    etsmgr_table *t = tt_create(NULL, 0, 0);
    for (long i = 0; i < N; i++) {
        char k[24];
        snprintf(k, sizeof k, "k%07ld", i); /* 8 bytes, as the crafted ones */
        etsmgr_value v = tt_int(i);
        ck_assert_int_eq(etsmgr_table_insert(t, k, 8, &v), 0);
    }
    const char *p = tpath("flood.etsimg");
    ck_assert_int_eq(etsmgr_table_save(t, p), 0);
    etsmgr_table_close(t);
    img *im = NULL;
    char why[256];
    ck_assert_int_eq(img_read(p, &im, why, sizeof why), 0);
    size_t len = im->len;
    unsigned char *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, im->buf, len);
    img_free(im);
    /* the same records, their keys replaced by colliding ones */
    unsigned char *r = b + IMG_HDR_SIZE;
    for (uint64_t i = 0; i < N; i++) {
        ck_assert_uint_eq(r[0], 8);
        uint64_t w = old_key_for((i + 1) << 24);
        ck_assert_uint_eq(old_key_hash8(w) & 0xffffff, 0);
        memcpy(r + IMG_REC_HDR, &w, 8);
        r += IMG_REC_HDR + 8 + 8;
    }
    ck_assert_ptr_eq(r, b + len - IMG_TRAILER_SIZE);
    fix_records_crc(b, len);
    img_info in;
    ck_assert_msg(img_parse(b, len, &in, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(in.entries, N);
    /* unkeyed: N - 1; keyed, at most a few dozen at this load (2/3) */
    ck_assert_msg(img_last_repeat_max_probe() < 100, "a record probed %llu slots",
                  (unsigned long long)img_last_repeat_max_probe());
    /* a repeat among them is still found */
    memcpy(b + len - IMG_TRAILER_SIZE - 16, b + IMG_HDR_SIZE + IMG_REC_HDR, 8);
    fix_records_crc(b, len);
    ck_assert_int_eq(img_parse(b, len, &in, why, sizeof why), ETSMGR_ECORRUPT);
    ck_assert_msg(strstr(why, "entry 8191 repeats the key of entry 0"), "%s", why);
    free(b);
}
END_TEST

/* The CPU's crc32 instruction (when there is one) and the tables agree,
 * on the standard check value and on every length and split. */
START_TEST(test_crc32c)
{
    ck_assert_uint_eq(img_crc32c(0, "123456789", 9), 0xe3069283u);
    ck_assert_uint_eq(img_crc32c_portable(0, "123456789", 9), 0xe3069283u);
    unsigned char b[300];
    for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)(i * 131 + 7);
    for (size_t len = 0; len <= sizeof b; len++) {
        uint32_t want = img_crc32c_portable(0, b, len);
        ck_assert_uint_eq(img_crc32c(0, b, len), want);
        size_t cut = len / 3;
        ck_assert_uint_eq(img_crc32c(img_crc32c(0, b, cut), b + cut, len - cut), want);
    }
}
END_TEST

/* A save killed mid-way leaves ".NAME.tmp-PID-N"; a later process with the
 * same pid (a container's application has the same small pid at every
 * start) met that leftover with its O_EXCL create: its save failed with
 * "File exists".  It must pick another name and succeed. */
START_TEST(test_save_past_leftover_tmp)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value g1 = tt_int(1);
    ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g1), 0);
    char leftover[200];
    for (int k = 0; k < 64; k++) {
        snprintf(leftover, sizeof leftover, "%s/.same.etsimg.tmp-%d-%d", T_dir, (int)getpid(), k);
        int fd = open(leftover, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(close(fd), 0);
    }
    char why[256] = "";
    int r = img_save(t, tpath("same.etsimg"), NULL, why, sizeof why);
    ck_assert_msg(r == 0, "save beside leftovers: %s: %s", etsmgr_strerror(r), why);
    ck_assert_int_eq(image_gen(tpath("same.etsimg")), 1);
    ck_assert_int_eq(count_files(T_dir), 65); /* the leftovers are not ours to remove */
    etsmgr_table_close(t);
}
END_TEST

/* Every temporary name a save tries taken (1000 retries): the save fails
 * and removes nothing.  It unlinked the last name it had tried, which it
 * never created: another save's file, under way. */
START_TEST(test_save_all_tmp_names_taken)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    char why[256] = "", p[200];
    /* the next sequence number, from the name a failed save tried */
    snprintf(p, sizeof p, "%s/nodir/x.etsimg", T_dir);
    ck_assert_int_eq(img_save(t, p, NULL, why, sizeof why), ETSMGR_ESYS);
    const char *at = strstr(why, ".tmp-");
    ck_assert_msg(at != NULL, "%s", why);
    unsigned n = (unsigned)strtoul(strchr(at + 5, '-') + 1, NULL, 10) + 1;
    enum { TAKEN = 1002 };
    for (unsigned k = n; k < n + TAKEN; k++) {
        snprintf(p, sizeof p, "%s/.busy.etsimg.tmp-%d-%u", T_dir, (int)getpid(), k);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(close(fd), 0);
    }
    int r = img_save(t, tpath("busy.etsimg"), NULL, why, sizeof why);
    ck_assert_int_eq(r, ETSMGR_ESYS);
    ck_assert_msg(strstr(why, "cannot create") && strstr(why, strerror(EEXIST)), "%s", why);
    ck_assert_int_eq(count_files(T_dir), TAKEN); /* none removed */
    etsmgr_table_close(t);
}
END_TEST

/* A FIFO (or a device) given as an image is refused at once: the open
 * blocked until a writer came, so etsmgrctl load of a FIFO hung for good,
 * before any check could say it is not a regular file. */
START_TEST(test_read_fifo_refused)
{
    const char *p = tpath("fifo.etsimg");
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* the hang, reported as SIGALRM (check's handler, inherited, would
         * kill the whole test's process group) */
        signal(SIGALRM, SIG_DFL);
        alarm(3);
        img *im = NULL;
        char why[256] = "";
        int r = img_read(p, &im, why, sizeof why);
        _exit(r == ETSMGR_EBADMAGIC && strstr(why, "not a regular file") ? 0 : 1);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(!WIFSIGNALED(st), "img_read of a FIFO hung (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "img_read of a FIFO: not refused as not a regular file");
    unlink(p);
}
END_TEST

/* A huge file is judged by its header before it is read: img_read read
 * the whole file into memory first, so `etsmgrctl load` of a big file
 * that is no image (or a big garbage .etsimg in the snapshot directory at
 * etsmgrd's start) cost its size in memory before "not a table image".
 * Sparse files of 1 GiB (no disk), read in a child whose peak RSS is
 * compared before and after: it must grow by far less than the file. */
#define HUGE_FILE (UINT64_C(1) << 30)

static void expect_huge_refused(const char *p, int want, const char *words)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(pfd[0]);
        struct rusage ru0, ru1;
        getrusage(RUSAGE_SELF, &ru0);
        img *im = NULL;
        char why[256] = "";
        int r = img_read(p, &im, why, sizeof why);
        getrusage(RUSAGE_SELF, &ru1);
        img_free(im);
        char msg[400];
        int n = snprintf(msg, sizeof msg, "%d %ld %s", r, ru1.ru_maxrss - ru0.ru_maxrss, why);
        _exit(write(pfd[1], msg, (size_t)n) == n ? 0 : 1);
    }
    close(pfd[1]);
    char msg[401] = "";
    ssize_t n, got = 0;
    while ((n = read(pfd[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0) got += n;
    close(pfd[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the reader's child failed (%d): %s", st, msg);
    int r = -1;
    long grew_kb = -1;
    int off = 0;
    ck_assert_int_eq(sscanf(msg, "%d %ld %n", &r, &grew_kb, &off), 2);
    ck_assert_msg(r == want && strstr(msg + off, words), "wanted %s (\"%s\"), got %s: %s", etsmgr_strerror(want),
                  words, etsmgr_strerror(r), msg + off);
    ck_assert_msg(grew_kb < 64 * 1024, "refusing a %llu-byte file took %ld KiB of memory",
                  (unsigned long long)HUGE_FILE, grew_kb);
}

START_TEST(test_read_huge_file_header_first)
{
    /* no image at all: garbage at its start, a hole after */
    const char *p = tpath("huge.etsimg");
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    static const char junk[] = "this is not a table image, just a big file\n";
    ck_assert_int_eq(write(fd, junk, sizeof junk - 1), (ssize_t)sizeof junk - 1);
    ck_assert_int_eq(ftruncate(fd, (off_t)HUGE_FILE), 0);
    ck_assert_int_eq(close(fd), 0);
    expect_huge_refused(p, ETSMGR_EBADMAGIC, "not a table image:");

    /* a good image with a gigabyte after its end: the header's sizes are
     * compared with the file's before the rest is read */
    size_t len;
    unsigned char *g = good_image(&len);
    fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, g, len), (ssize_t)len);
    ck_assert_int_eq(ftruncate(fd, (off_t)HUGE_FILE), 0);
    ck_assert_int_eq(close(fd), 0);
    char words[80];
    snprintf(words, sizeof words, "corrupt: %llu bytes follow the end of the image",
             (unsigned long long)(HUGE_FILE - len));
    expect_huge_refused(p, ETSMGR_ECORRUPT, words);
    free(g);
    unlink(p);
}
END_TEST

/* Regression: a save that failed at the fsync of the directory, after its
 * rename, said so ("is written, but fsync of its directory ... failed"),
 * but its callers added "FILE is unchanged" (etsmgrctl) and "the previous
 * snapshot stays" (etsmgrd), both false then: the new image is the file
 * and the old one is gone.  img_last_in_place tells them apart from the
 * failures before the rename, and *saved is filled. */
START_TEST(test_save_dir_fsync_fails)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    etsmgr_value g = tt_int(1);
    ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g), 0);
    const char *p = tpath("d.etsimg");
    char why[256] = "";
    img_info info;
    ck_assert_int_eq(img_save(t, p, &info, why, sizeof why), 0);
    ck_assert(img_last_in_place());
    g = tt_int(2);
    ck_assert_int_eq(etsmgr_table_insert(t, "gen", 3, &g), 0);
    etsmgr_value x = tt_bytes("x", 1);
    ck_assert_int_eq(etsmgr_table_insert(t, "more", 4, &x), 0);
    memset(&info, 0, sizeof info);
    img_test_dir_fsync_errno = EIO;
    int r = img_save(t, p, &info, why, sizeof why);
    img_test_dir_fsync_errno = 0;
    ck_assert_int_eq(r, ETSMGR_ESYS);
    ck_assert_int_eq(errno, EIO);
    ck_assert_msg(img_last_in_place(), "a failure past the rename is not told apart: %s", why);
    ck_assert_msg(strstr(why, "is written and in place") && strstr(why, "power cut") && strstr(why, strerror(EIO)),
                  "%s", why);
    ck_assert_uint_eq(info.entries, 2);
    /* the new image is the file, and nothing else is left */
    ck_assert_int_eq(image_gen(p), 2);
    ck_assert_int_eq(count_files(T_dir), 1);
    /* a failure before the rename is not in place */
    ck_assert_int_eq(img_save(t, "/nonexistent-dir/x", NULL, why, sizeof why), ETSMGR_ESYS);
    ck_assert(!img_last_in_place());
    ck_assert_int_eq(image_gen(p), 2);
    etsmgr_table_close(t);
}
END_TEST

START_TEST(test_save_errors)
{
    etsmgr_table *t = tt_create(NULL, 0, 0);
    ck_assert_int_eq(etsmgr_table_save(t, "/nonexistent-dir/x"), ETSMGR_ESYS);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_int_eq(etsmgr_table_save(t, ""), ETSMGR_EINVAL);
    ck_assert_int_eq(etsmgr_table_begin(t), 0);
    ck_assert_int_eq(etsmgr_table_save(t, tpath("g")), ETSMGR_EGROUP);
    ck_assert_int_eq(etsmgr_table_commit(t), 0);
    /* the file is private: it holds the table's data */
    ck_assert_int_eq(etsmgr_table_save(t, tpath("m")), 0);
    struct stat st;
    ck_assert_int_eq(stat(tpath("m"), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    etsmgr_table_close(t);
}
END_TEST

Suite *image_suite(void)
{
    Suite *s = suite_create("image");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_roundtrip_empty);
    tcase_add_test(tc, test_roundtrip_small);
    tcase_add_test(tc, test_roundtrip_request_ids);
    tcase_add_test(tc, test_roundtrip_rid_shaped_key);
    tcase_add_test(tc, test_roundtrip_grown);
    tcase_add_test(tc, test_roundtrip_values);
    tcase_add_test(tc, test_roundtrip_ordered);
    tcase_add_loop_test(tc, test_roundtrip_ordered_full, 0, 3);
    tcase_add_loop_test(tc, test_roundtrip_full_large_values, 0, 2);
    tcase_add_loop_test(tc, test_consistent_cut, 0, 4);
    tcase_add_test(tc, test_save_copies_little_under_lock);
    tcase_add_test(tc, test_cut_block_taken_by_new_key);
    tcase_add_test(tc, test_consistent_cut_counters);
    tcase_add_test(tc, test_save_with_writer_killed);
    suite_add_tcase(s, tc);
    tc = tcase_create("safety");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_save_crash_points, 0, 2);
    tcase_add_test(tc, test_save_full_disk);
    tcase_add_test(tc, test_damaged_files);
    tcase_add_test(tc, test_parse_flooded_keys);
    tcase_add_test(tc, test_save_errors);
    tcase_add_test(tc, test_read_fifo_refused);
    tcase_add_test(tc, test_read_huge_file_header_first);
    tcase_add_test(tc, test_save_dir_fsync_fails);
    tcase_add_test(tc, test_save_past_leftover_tmp);
    tcase_add_test(tc, test_save_all_tmp_names_taken);
    tcase_add_test(tc, test_crc32c);
    suite_add_tcase(s, tc);
    return s;
}

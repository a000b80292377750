/* SPDX-License-Identifier: Apache-2.0 */
/* range_probe.c: where the time of an ordered table's range walk goes, for
 * work on table_ordered.c (docs/performance.md, "The 10M range, a third
 * pass").  bench_table's range rows give one figure per table size, from
 * a table built afresh by that build; comparing two builds that way
 * compares two tables as well, and on a loaded machine the difference
 * drowns.  Here a table is made once, left in /dev/shm, and every build
 * of this program attaches it: two builds taking turns walk the very same
 * bytes, and each run gives the median time of one range (a median of
 * many thousands: other processes' bursts move the mean, seldom it).
 *
 *   range_probe make NAME ENTRIES [inorder FILL]
 *       /ordprobe_NAME with ENTRIES of bench_table's keys (8 bytes,
 *       splitmix64 of 0, 1, ...; integer values) in random key order; or
 *       inserted in key order with nodes filled to FILL slots (the test
 *       hook tbl_ord_fill: the tree shaped like a random one's, each
 *       leaf's entries right after it in the heap)
 *   range_probe walk NAME KEYS REPS [PASSES]
 *       REPS walks of KEYS keys (0: etsmgr_table_next alone) from random
 *       keys: CPU microseconds per walk, the median and 25th percentile;
 *       then the mean on the wall clock and the tail (90th, 99th, 99.9th
 *       percentiles, the longest); PASSES times in this one process, each
 *       from other keys (the first pass pays the process's first touches
 *       of the table's pages: "First touches in a fresh process")
 *   range_probe layout NAME
 *       distinct 4 KiB pages and 64-byte lines that the entries of a
 *       100-key range lie in, over 2,000 ranges (the first line of each)
 *   range_probe drop NAME
 *
 * A tool, not a test: nothing is asserted, and the tables stay until
 * dropped (a 10M table is about 550 MB of /dev/shm). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchutil.h"
#include "table_int.h"

static char shm[96];

static void die(const char *what, int r)
{
    fprintf(stderr, "range_probe: %s %s: %s\n", what, shm, etsmgr_strerror(r));
    exit(1);
}

static double secs(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}
static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void put(etsmgr_table *t, uint64_t k, uint64_t i)
{
    etsmgr_value v = {.type = ETSMGR_INT, .i = (int64_t)i};
    int r = etsmgr_table_insert(t, &k, 8, &v);
    if (r) die("insert into", r);
}

static void make(uint64_t n, unsigned fill)
{
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t;
    tbl_unlink(shm); /* a table of that name from before: made again */
    int r = tbl_create(shm, "range_probe", &o, &t);
    if (r) die("create", r);
    if (!fill) {
        for (uint64_t i = 0; i < n; i++) put(t, bu_mixed_key(i), i);
    } else {
        /* the keys' bytes compare like the big-endian numbers do */
        uint64_t *ks = malloc(n * sizeof *ks);
        if (!ks) die("memory for the keys of", ETSMGR_ENOMEM);
        for (uint64_t i = 0; i < n; i++) ks[i] = __builtin_bswap64(bu_mixed_key(i));
        qsort(ks, n, sizeof *ks, cmp_u64);
        tbl_ord_fill = fill;
        for (uint64_t i = 0; i < n; i++) put(t, __builtin_bswap64(ks[i]), i);
        tbl_ord_fill = 0;
        free(ks);
    }
    etsmgr_table_info info;
    if ((r = etsmgr_table_info_get(t, &info)) != 0) die("info of", r);
    printf("%s: %llu entries, %.1f bytes each (object), %.1f used\n", shm, (unsigned long long)info.entries,
           (double)info.bytes_total / (double)info.entries, (double)info.bytes_used / (double)info.entries);
    etsmgr_table_close(t);
}

static unsigned want;
static int count_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)key, (void)klen, (void)v;
    return ++*(unsigned *)arg >= want;
}

static void walk(etsmgr_table *t, unsigned keys, int reps, uint64_t seed)
{
    double *dt = malloc((size_t)reps * sizeof *dt);
    if (!dt) die("memory for the times of", ETSMGR_ENOMEM);
    uint64_t x = 88172645463325252ull ^ seed;
    want = keys;
    double c0 = secs(CLOCK_PROCESS_CPUTIME_ID);
    for (int i = 0; i < reps; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double t0 = secs(CLOCK_MONOTONIC);
        int r;
        if (keys == 0) {
            uint64_t k;
            size_t kl;
            r = etsmgr_table_next(t, &x, 8, &k, sizeof k, &kl);
            if (r == ETSMGR_ENOTFOUND) r = 0;
        } else {
            unsigned seen = 0;
            r = etsmgr_table_foreach_range(t, &x, 8, NULL, 0, count_cb, &seen);
            if (r > 0) r = 0;
        }
        if (r) die("walk of", r);
        dt[i] = secs(CLOCK_MONOTONIC) - t0;
    }
    double cpu = secs(CLOCK_PROCESS_CPUTIME_ID) - c0;
    qsort(dt, (size_t)reps, sizeof *dt, cmp_dbl);
    printf("%s, walks of %u keys: %.3f us CPU per walk; median %.3f us, 25th percentile %.3f us\n", shm, keys,
           cpu / reps * 1e6, dt[reps / 2] * 1e6, dt[reps / 4] * 1e6);
    /* the tail: on a VM whose hypervisor fills its own page tables
     * lazily, a few walks stall for hundreds of microseconds (counted as
     * this process's CPU), and the mean is theirs, not the walk's
     * (docs/performance.md, "The 10M range on a PVM guest") */
    double sum = 0;
    for (int i = 0; i < reps; i++) sum += dt[i];
    printf("%s, walks of %u keys: mean %.3f us, 90th percentile %.3f, 99th %.3f, 99.9th %.3f, longest %.1f\n", shm,
           keys, sum / reps * 1e6, dt[(size_t)reps * 9 / 10] * 1e6, dt[(size_t)reps * 99 / 100] * 1e6,
           dt[(size_t)reps * 999 / 1000] * 1e6, dt[reps - 1] * 1e6);
    free(dt);
}

#define LAYOUT_RANGES 2000
static uint64_t (*rk)[100];
static int nrk[LAYOUT_RANGES], cur;
static int keep_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)v, (void)arg;
    if (klen == 8) memcpy(&rk[cur][nrk[cur]++], key, 8);
    return nrk[cur] == 100;
}

/* The ranges' keys are gathered first (walks take no lock), then found in
 * the index under the lock, as a writer finds them: where their entries
 * lie. */
static void layout(etsmgr_table *t)
{
    uint64_t x = 88172645463325252ull, pages = 0, lines = 0;
    if (!(rk = calloc(LAYOUT_RANGES, sizeof *rk))) die("memory for the keys of", ETSMGR_ENOMEM);
    int r = 0;
    for (cur = 0; cur < LAYOUT_RANGES; cur++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        if ((r = etsmgr_table_foreach_range(t, &x, 8, NULL, 0, keep_cb, NULL)) < 0) die("walk of", r);
    }
    if ((r = tbl_op_begin(t, "range_probe layout", false)) != 0) die("lock of", r);
    for (int i = 0; i < LAYOUT_RANGES && !r; i++) {
        uint64_t pg[100], ln[100];
        for (int j = 0; j < nrk[i]; j++) {
            uint64_t pos;
            struct tbl_ent *e;
            if (tbl_find(t, &rk[i][j], 8, tbl_hash(t->hseed, &rk[i][j], 8), &pos, &e) != 1) {
                r = ETSMGR_ECORRUPT; /* a key walked a moment ago: someone else changes the table */
                break;
            }
            uint64_t off = (uint64_t)((char *)e - t->base);
            pg[j] = off >> 12;
            ln[j] = off >> 6;
        }
        qsort(pg, (size_t)nrk[i], 8, cmp_u64);
        qsort(ln, (size_t)nrk[i], 8, cmp_u64);
        for (int j = 0; j < nrk[i]; j++) {
            pages += !j || pg[j] != pg[j - 1];
            lines += !j || ln[j] != ln[j - 1];
        }
    }
    int e = tbl_op_end(t, 0);
    if (r || e) die("layout of", r ? r : e);
    printf("%s: the entries of a 100-key range lie in %.1f pages and %.1f lines (first lines)\n", shm,
           (double)pages / LAYOUT_RANGES, (double)lines / LAYOUT_RANGES);
    free(rk);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: range_probe make NAME ENTRIES [inorder FILL] | walk NAME KEYS REPS [PASSES] | layout NAME | "
                        "drop NAME\n");
        return 64;
    }
    snprintf(shm, sizeof shm, "/ordprobe_%s", argv[2]);
    if (strcmp(argv[1], "make") == 0 && argc >= 4) {
        unsigned fill = argc >= 6 && strcmp(argv[4], "inorder") == 0 ? (unsigned)atoi(argv[5]) : 0;
        if (argc >= 5 && (fill < 2 || fill > 24)) {
            fprintf(stderr, "range_probe: inorder FILL is 2 to 24 slots\n");
            return 64;
        }
        make(strtoull(argv[3], NULL, 10), fill);
        return 0;
    }
    if (strcmp(argv[1], "drop") == 0) {
        int r = tbl_unlink(shm);
        if (r) die("drop", r);
        return 0;
    }
    etsmgr_table *t;
    int r = tbl_open(shm, &t);
    if (r) die("open (made by 'range_probe make'?)", r);
    if (strcmp(argv[1], "walk") == 0 && argc >= 5 && atoi(argv[4]) > 0)
        for (int p = 0; p < (argc >= 6 ? atoi(argv[5]) : 1); p++)
            walk(t, (unsigned)atoi(argv[3]), atoi(argv[4]), (uint64_t)p * 0x9e3779b97f4a7c15ull);
    else if (strcmp(argv[1], "layout") == 0)
        layout(t);
    else {
        fprintf(stderr, "range_probe: unknown command or arguments: %s\n", argv[1]);
        return 64;
    }
    etsmgr_table_close(t);
    return 0;
}

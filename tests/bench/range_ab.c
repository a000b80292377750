/* SPDX-License-Identifier: Apache-2.0 */
/* range_ab.c: two builds of libetsmgr walking an ordered table's ranges in
 * one process, in turns, for work on table_ordered.c (docs/performance.md,
 * "The 10M range, a fourth pass").  Comparing two builds run one after
 * the other on a machine that other processes load measures the load as
 * much as the builds; here both walk the same table in the same seconds,
 * so a burst of load falls on both alike.
 *
 *   make range-ab A=before/libetsmgr.a B=after/libetsmgr.a
 *   build/tests/bench/range_ab NAME KEYS RUNS [LABEL_A LABEL_B]
 *
 * make range-ab links A's library as it is and B's with every global
 * symbol renamed B_... (objcopy --redefine-syms), so each build has its
 * own code and its own statics.  Both attach /ordprobe_NAME (made by
 * range_probe make), walk it whole once (a fresh mapping's page faults
 * are not a range's), then take turns in blocks of 1,000 walks of KEYS
 * keys from random keys, A B B A ..., RUNS blocks each; each build's
 * median and 25th percentile of the walks' wall times and its CPU time
 * per walk follow.  Build it twice with A and B swapped as well: the
 * build linked first ran up to 5 % slower at 10M entries in copies of one
 * build.  With NAME_B, B walks /ordprobe_NAME_B instead: two tables (made
 * by two builds, say) walked in turns, to compare layouts rather than
 * code (A and B may then be one library).  A tool, not a test: nothing is
 * asserted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table_int.h"

/* B's build, renamed */
int B_tbl_open(const char *shm_name, etsmgr_table **out);
int B_etsmgr_table_foreach_range(etsmgr_table *t, const void *from, size_t flen, const void *to, size_t tlen,
                                 etsmgr_foreach_cb cb, void *arg);

#define BLOCK 1000

static unsigned want;
static int count_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)key, (void)klen, (void)v;
    return ++*(unsigned *)arg >= want;
}

static double secs(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int walk(int side, etsmgr_table *t, const void *from, size_t flen, unsigned *seen)
{
    return side ? B_etsmgr_table_foreach_range(t, from, flen, NULL, 0, count_cb, seen)
                : etsmgr_table_foreach_range(t, from, flen, NULL, 0, count_cb, seen);
}

int main(int argc, char **argv)
{
    if (argc < 4 || atoi(argv[2]) < 1 || atoi(argv[3]) < 1) {
        fprintf(stderr, "usage: range_ab NAME KEYS RUNS [LABEL_A LABEL_B [NAME_B]]\n");
        return 64;
    }
    char shms[2][96];
    snprintf(shms[0], sizeof shms[0], "/ordprobe_%s", argv[1]);
    snprintf(shms[1], sizeof shms[1], "/ordprobe_%s", argc > 6 ? argv[6] : argv[1]);
    const char *label[2] = {argc > 5 ? argv[4] : "A", argc > 5 ? argv[5] : "B"};
    etsmgr_table *t[2];
    int r = tbl_open(shms[0], &t[0]);
    if (!r) r = B_tbl_open(shms[1], &t[1]);
    if (r) {
        fprintf(stderr, "range_ab: open %s or %s (made by 'range_probe make'?): %s\n", shms[0], shms[1],
                etsmgr_strerror(r));
        return 1;
    }
    int runs = atoi(argv[3]);
    double *dt[2] = {malloc(sizeof(double) * (size_t)runs * BLOCK), malloc(sizeof(double) * (size_t)runs * BLOCK)};
    double cpu[2] = {0, 0};
    if (!dt[0] || !dt[1]) {
        fprintf(stderr, "range_ab: out of memory\n");
        return 1;
    }
    for (int s = 0; s < 2; s++) {
        unsigned all = 0;
        want = ~0u;
        if ((r = walk(s, t[s], NULL, 0, &all)) < 0) {
            fprintf(stderr, "range_ab: walk of %s: %s\n", shms[s], etsmgr_strerror(r));
            return 1;
        }
    }
    want = (unsigned)atoi(argv[2]);
    uint64_t x = 88172645463325252ull;
    for (int b = 0; b < 2 * runs; b++) {
        int s = (b & 1) ^ ((b >> 1) & 1); /* A B B A: neither always second */
        double c0 = secs(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < BLOCK; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned seen = 0;
            double t0 = secs(CLOCK_MONOTONIC);
            if ((r = walk(s, t[s], &x, 8, &seen)) < 0) {
                fprintf(stderr, "range_ab: walk of %s: %s\n", shms[s], etsmgr_strerror(r));
                return 1;
            }
            dt[s][(b / 2) * BLOCK + i] = secs(CLOCK_MONOTONIC) - t0;
        }
        cpu[s] += secs(CLOCK_THREAD_CPUTIME_ID) - c0;
    }
    size_t n = (size_t)runs * BLOCK;
    for (int s = 0; s < 2; s++) {
        qsort(dt[s], n, sizeof(double), cmp_dbl);
        printf("%-10s %s, walks of %s keys: median %.3f us, 25th percentile %.3f us, %.3f us CPU per walk\n",
               label[s], shms[s], argv[2], dt[s][n / 2] * 1e6, dt[s][n / 4] * 1e6, cpu[s] / (double)n * 1e6);
    }
    free(dt[0]);
    free(dt[1]);
    return 0;
}

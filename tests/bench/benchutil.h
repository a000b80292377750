/* SPDX-License-Identifier: Apache-2.0 */
/* benchutil.h: what the benchmark programs of tests/bench share: a monotonic
 * clock, percentiles of a sample, and the result row.
 *
 * Every bench program prints its results as rows, one JSON object per line
 * on stdout (fields: name, value, unit, reference, reference_value, ratio,
 * and any extra detail), and nothing else there; words for people go to
 * stderr.  tests/bench/report.c folds the rows of one run into the table and
 * build/bench/results.json, resolving a reference that names another row of
 * the same run (so a row measured by one program can be the reference of a
 * row measured by another). */
#ifndef ETSMGR_BENCHUTIL_H
#define ETSMGR_BENCHUTIL_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* Seconds on CLOCK_MONOTONIC. */
double bu_now(void);
/* This process's CPU seconds (CLOCK_PROCESS_CPUTIME_ID). */
double bu_cpu_now(void);
/* The ordered rows' i-th key (splitmix64's finalizer of i): random in
 * memcmp order, the same in bench_table, range_probe and lmdb_bench, so
 * that all of them walk the same keys. */
static inline uint64_t bu_mixed_key(uint64_t i)
{
    uint64_t z = i * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Sleeps ms milliseconds (restarts on EINTR). */
void bu_sleep_ms(double ms);
/* Sorts v[0..n) in place and returns the nearest-rank p-th percentile
 * (0 < p <= 100); NAN when n == 0. */
double bu_percentile(double *v, size_t n, double p);

/* A new row; reference may be NULL (no reference).  ref_value < 0: the
 * reference is the name of another row, resolved by the report. */
cJSON *bu_row(const char *name, double value, const char *unit, const char *reference, double ref_value);
/* Prints the row as one line on stdout, flushes, and frees it. */
void bu_row_print(cJSON *row);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* benchutil.c: see benchutil.h.  Percentiles are nearest-rank over the
 * whole sample (the samples are kept, not bucketed: a run holds at most a few
 * million of them), so p99 of 100 kills is the 99th slowest, no guess. */
#include "benchutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double bu_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void bu_sleep_ms(double ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(fmod(ms, 1000.0) * 1e6) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int bu_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bu_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return NAN;
    qsort(v, n, sizeof *v, bu_cmp);
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

cJSON *bu_row(const char *name, double value, const char *unit, const char *reference, double ref_value)
{
    cJSON *r = cJSON_CreateObject();
    if (!r) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    cJSON_AddStringToObject(r, "name", name);
    cJSON_AddNumberToObject(r, "value", value);
    cJSON_AddStringToObject(r, "unit", unit);
    if (reference)
        cJSON_AddStringToObject(r, "reference", reference);
    else
        cJSON_AddNullToObject(r, "reference");
    if (reference && ref_value >= 0) {
        cJSON_AddNumberToObject(r, "reference_value", ref_value);
        if (ref_value > 0)
            cJSON_AddNumberToObject(r, "ratio", value / ref_value);
        else
            cJSON_AddNullToObject(r, "ratio");
    } else {
        cJSON_AddNullToObject(r, "reference_value");
        cJSON_AddNullToObject(r, "ratio");
    }
    return r;
}

void bu_row_print(cJSON *row)
{
    char *s = cJSON_PrintUnformatted(row);
    if (!s) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(row);
}

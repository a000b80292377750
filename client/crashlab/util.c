/* SPDX-License-Identifier: Apache-2.0 */
/* util.c: the lab's clock, its random numbers and its lists of words.
 *
 * One clock for everything (CLOCK_MONOTONIC in nanoseconds), so kill times,
 * readiness messages and acknowledgements recorded by different threads can
 * be compared directly.  The random numbers are xoroshiro128+ seeded through
 * splitmix64: tiny, fast and, above all, the same sequence for the same
 * --seed on every machine, which is what makes a run's schedule of targets
 * and intervals repeatable.  Failures, notes and leftovers are collected as
 * sentences under the run's mutex, because every thread may add one and the
 * report prints them as they are. */
#include "lab.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile sig_atomic_t lab_interrupted;

int64_t lab_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

double lab_ms(int64_t ns)
{
    return (double)ns / 1e6;
}

void lab_sleep_ms(int ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !lab_interrupted)
        ;
}

static uint64_t lab_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t lab_rand(uint64_t s[2])
{
    uint64_t s0 = s[0], s1 = s[1], r = s0 + s1;
    s1 ^= s0;
    s[0] = lab_rotl(s0, 24) ^ s1 ^ (s1 << 16);
    s[1] = lab_rotl(s1, 37);
    return r;
}

static uint64_t lab_splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void lab_seed(uint64_t s[2], uint64_t seed)
{
    s[0] = lab_splitmix(&seed);
    s[1] = lab_splitmix(&seed);
    if (s[0] == 0 && s[1] == 0)
        s[1] = 1;
}

static void lab_add(lab *l, char ***list, size_t *n, const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        return;
    pthread_mutex_lock(&l->mu);
    char **nl = realloc(*list, (*n + 1) * sizeof *nl);
    if (nl) {
        nl[(*n)++] = s;
        *list = nl;
    } else
        free(s);
    pthread_mutex_unlock(&l->mu);
}

void lab_fail(lab *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lab_add(l, &l->failures, &l->nfailures, fmt, ap);
    va_end(ap);
}

void lab_note(lab *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lab_add(l, &l->notes, &l->nnotes, fmt, ap);
    va_end(ap);
}

void lab_leftover(lab *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lab_add(l, &l->leftovers, &l->nleftovers, fmt, ap);
    va_end(ap);
}

void lab_log(lab *l, const char *fmt, ...)
{
    if (!l->o.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "etsmgr-crashlab: %8.3f s: ", l->t0_ns ? lab_ms(lab_now_ns() - l->t0_ns) / 1000 : 0.0);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *lab_target_name(lab_target t)
{
    switch (t) {
    case LAB_T_COUNTERD: return "etscounterd";
    case LAB_T_MGRD: return "etsmgrd";
    case LAB_T_BOTH: return "both";
    case LAB_T_SUP: return "etssup";
    default: return "?";
    }
}

const char *lab_target_color(lab_target t)
{
    switch (t) {
    case LAB_T_COUNTERD: return "#d62728";
    case LAB_T_MGRD: return "#1f77b4";
    case LAB_T_BOTH: return "#9467bd";
    case LAB_T_SUP: return "#ff7f0e";
    default: return "#7f7f7f";
    }
}

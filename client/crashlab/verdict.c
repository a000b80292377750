/* SPDX-License-Identifier: Apache-2.0 */
/* verdict.c: what the records say, in numbers and in words.
 *
 * The counter is checked against the set of acknowledged values, not just
 * their number, so that loss and duplication cannot hide each other: with
 * exactly-once working, the acknowledged values are exactly the integers
 * initial+1 .. final, each once.  Then
 *   lost        = acknowledgements the final count does not account for: a
 *                 value acknowledged twice (the counter went back and
 *                 counted it again) or outside (initial, final] (the counter
 *                 ended below a value some client was told);
 *   duplicated  = integers in (initial, final] nobody was told: increments
 *                 applied without an acknowledgement, which is what a
 *                 retried count does when the id is not remembered.
 * The lost count is also final - initial - acknowledged when nothing else
 * happened, but computed this way both are exact even when both occur.
 * These functions take plain arrays so the tests can feed them made-up
 * records and check the verdict logic on its own. */
#include "lab.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int lab_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int lab_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void lab_tally_compute(int64_t initial, int64_t final, int64_t *values, size_t n, lab_tally *t)
{
    memset(t, 0, sizeof *t);
    t->initial = initial;
    t->final = final;
    t->acked = n;
    if (n)
        qsort(values, n, sizeof *values, lab_cmp_i64);
    uint64_t in_range = 0;
    for (size_t i = 0; i < n; i++) {
        bool first = i == 0 || values[i] != values[i - 1];
        t->distinct += first;
        if (values[i] <= initial || values[i] > final)
            t->out_of_range++;
        else if (first)
            in_range++;
        else
            t->repeated++;
    }
    t->lost = t->repeated + t->out_of_range;
    int64_t delta = final - initial;
    t->duplicated = delta > (int64_t)in_range ? (uint64_t)(delta - (int64_t)in_range) : 0;
}

void lab_stats_compute(double *ms, size_t n, lab_stats *s)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    if (n == 0)
        return;
    qsort(ms, n, sizeof *ms, lab_cmp_double);
    s->min = ms[0];
    s->max = ms[n - 1];
    size_t r50 = (size_t)ceil(0.50 * (double)n), r99 = (size_t)ceil(0.99 * (double)n);
    s->median = ms[(r50 ? r50 : 1) - 1];
    s->p99 = ms[(r99 ? r99 : 1) - 1];
}

size_t lab_verdict(lab *l, const lab_tally *t)
{
    if (l->have_final) {
        if (t->lost)
            lab_fail(l, "lost: %llu acknowledged count%s not in the final count (final %lld, initial %lld, "
                        "%llu acknowledged; %llu value%s acknowledged more than once, %llu outside "
                        "(initial, final])",
                     (unsigned long long)t->lost, t->lost == 1 ? " is" : "s are", (long long)t->final,
                     (long long)t->initial, (unsigned long long)t->acked, (unsigned long long)t->repeated,
                     t->repeated == 1 ? "" : "s", (unsigned long long)t->out_of_range);
        if (t->duplicated)
            lab_fail(l, "duplicated: %llu increment%s applied that no client was told about (final %lld, "
                        "initial %lld, %llu distinct values acknowledged); a count retried after its reply was "
                        "lost counts twice unless its request id is remembered (exactly-once is %s)",
                     (unsigned long long)t->duplicated, t->duplicated == 1 ? " was" : "s were",
                     (long long)t->final, (long long)t->initial, (unsigned long long)(t->acked - t->lost),
                     l->o.exactly_once ? "on" : "off");
    }
    for (int i = 0; l->w && i < l->o.workers; i++) {
        const lab_worker *w = &l->w[i];
        if (w->not_increasing)
            lab_fail(l, "worker %d: %lu acknowledged value%s did not increase; the first %s", i,
                     w->not_increasing, w->not_increasing == 1 ? "" : "s", w->first_problem);
        if (w->errors)
            lab_fail(l, "worker %d: %lu count%s got an error reply; the first: %s", i, w->errors,
                     w->errors == 1 ? "" : "s", w->first_problem);
        if (w->gave_up)
            lab_fail(l, "worker %d: %s", i, w->first_problem);
    }
    for (size_t i = 0; i < l->nleftovers; i++)
        lab_fail(l, "left behind: %s", l->leftovers[i]);
    return l->nfailures;
}

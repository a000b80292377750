/* SPDX-License-Identifier: Apache-2.0 */
/* report.c: the report, for a person (a table on stdout) and for a program
 * (--json FILE, the same facts).
 *
 * Both are built from the same computed values (lab_tally, the per-target
 * recovery statistics), so they cannot disagree.  The person's report ends
 * with each invariant marked ok or FAIL, every failure in words, then the
 * verdict, which is the last line and matches the exit status. */
#include "lab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

typedef struct lab_rec {
    lab_stats ack, ready;
    size_t kills;
    size_t no_ack, no_ready;
} lab_rec;

static void lab_recovery(lab *l, lab_target tg, lab_rec *r)
{
    memset(r, 0, sizeof *r);
    double *a = calloc(l->nkills + 1, sizeof *a), *b = calloc(l->nkills + 1, sizeof *b);
    size_t na = 0, nb = 0;
    for (size_t i = 0; i < l->nkills && a && b; i++) {
        const lab_kill *k = &l->kills[i];
        if (k->target != tg)
            continue;
        r->kills++;
        if (k->ack_ns >= 0)
            a[na++] = lab_ms(k->ack_ns - k->t_ns);
        else
            r->no_ack++;
        if (k->ready_ns >= 0)
            b[nb++] = lab_ms(k->ready_ns - k->t_ns);
        else
            r->no_ready++;
    }
    lab_stats_compute(a, na, &r->ack);
    lab_stats_compute(b, nb, &r->ready);
    free(a);
    free(b);
}

static unsigned long lab_sum(lab *l, size_t off)
{
    unsigned long s = 0;
    for (int i = 0; l->w && i < l->o.workers; i++)
        s += *(const unsigned long *)((const char *)&l->w[i] + off);
    return s;
}
#define LAB_SUM(l, field) lab_sum(l, offsetof(lab_worker, field))

static double lab_run_s(lab *l)
{
    return l->end_ns > l->t0_ns ? lab_ms(l->end_ns - l->t0_ns) / 1000 : 0;
}

static void lab_targets_text(lab *l, char *buf, size_t len)
{
    size_t n[LAB_T_N] = { 0 };
    for (size_t i = 0; i < l->nkills; i++)
        n[l->kills[i].target]++;
    buf[0] = 0;
    size_t off = 0;
    for (int t = 0; t < LAB_T_N; t++)
        if (l->o.targets & (1u << t))
            off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s %zu", off ? ", " : "",
                                    lab_target_name((lab_target)t), n[t]);
}

static void lab_stat_row(FILE *f, const char *what, size_t n, const lab_stats *s)
{
    if (s->n == 0)
        fprintf(f, "  %-39s %5zu %8s %8s %8s %8s\n", what, n, "-", "-", "-", "-");
    else
        fprintf(f, "  %-39s %5zu %8.1f %8.1f %8.1f %8.1f\n", what, n, s->min, s->median, s->p99, s->max);
}

void lab_report_text(lab *l, const lab_tally *t, FILE *f)
{
    char tg[256];
    lab_targets_text(l, tg, sizeof tg);
    double secs = lab_run_s(l);
    fprintf(f, "etsmgr-crashlab report\n");
    fprintf(f, "  run        %.1f s%s, %d worker%s, seed %llu, instance %s (%s)\n", secs,
            l->interrupted ? " (interrupted)" : "", l->o.workers, l->o.workers == 1 ? "" : "s",
            (unsigned long long)l->o.seed, l->rt.instance, l->o.attach ? "attached" : "fresh, under etssup");
    fprintf(f, "  scheme     strategy %s, on manager death: %s, exactly-once: %s, standby: %s\n",
            l->o.attach ? "(as configured)" : l->o.strategy, l->o.attach ? "(as configured)" : l->o.exit_on_manager_death ? "exit" : "keep",
            l->o.attach ? "(as configured)" : l->o.exactly_once ? "on" : "off",
            l->o.attach ? "(as configured)" : l->o.standby ? "on" : "off");
    fprintf(f, "  kills      %zu (%s), pause %d..%d ms after each recovery\n", l->nkills, tg,
            l->o.interval_min_ms, l->o.interval_max_ms);
    fprintf(f, "\ncounts\n");
    if (l->have_final) {
        fprintf(f, "  %-22s %12lld\n", "initial", (long long)t->initial);
        fprintf(f, "  %-22s %12lld\n", "final", (long long)t->final);
    } else {
        fprintf(f, "  %-22s %12lld\n", "initial", (long long)t->initial);
        fprintf(f, "  %-22s %12s\n", "final", "unknown");
    }
    fprintf(f, "  %-22s %12llu   (%.0f per second)\n", "acknowledged", (unsigned long long)t->acked,
            secs > 0 ? (double)t->acked / secs : 0.0);
    fprintf(f, "  %-22s %12llu\n", "lost", (unsigned long long)t->lost);
    fprintf(f, "  %-22s %12llu\n", "duplicated", (unsigned long long)t->duplicated);
    fprintf(f, "  %-22s %12lu   (the same request id sent again after a failure)\n", "retried requests",
            LAB_SUM(l, retries));
    fprintf(f, "  %-22s %12lu   (a retry of a count already applied, answered from its record)\n",
            "answered from record", LAB_SUM(l, dup_replies));
    fprintf(f, "  %-22s %12lu\n", "error replies", LAB_SUM(l, errors));

    fprintf(f, "\n%-41s %5s %8s %8s %8s %8s\n", "recovery after SIGKILL, ms", "kills", "min", "median", "p99",
            "max");
    for (int tt = 0; tt < LAB_T_N; tt++) {
        if (!(l->o.targets & (1u << tt)))
            continue;
        lab_rec r;
        lab_recovery(l, (lab_target)tt, &r);
        char what[64];
        snprintf(what, sizeof what, "%-11s to first acknowledged count", lab_target_name((lab_target)tt));
        lab_stat_row(f, what, r.kills, &r.ack);
        snprintf(what, sizeof what, "%-11s to supervisor ready", "");
        lab_stat_row(f, what, r.kills, &r.ready);
    }
    if (l->o.attach)
        fprintf(f, "  (supervisor ready: every child \"running\" in etssup's status op, polled every 2 ms)\n");
    else
        fprintf(f, "  (supervisor ready: etssup's STATUS \"N of N children running\" on the lab's notify socket,\n"
                   "   confirmed with its status op; after a kill of etssup, the new etssup's READY=1)\n");

    unsigned long nonmono = LAB_SUM(l, not_increasing);
    unsigned long unanswered = LAB_SUM(l, errors) + LAB_SUM(l, gave_up);
    fprintf(f, "\ninvariants\n");
    fprintf(f, "  %-5s final count = acknowledged counts (lost %llu, duplicated %llu)%s\n",
            l->have_final && !t->lost && !t->duplicated ? "ok" : "FAIL", (unsigned long long)t->lost,
            (unsigned long long)t->duplicated, l->have_final ? "" : ": the final count could not be read");
    fprintf(f, "  %-5s every worker saw strictly increasing values (%d workers, %lu out of order)\n",
            nonmono ? "FAIL" : "ok", l->o.workers, nonmono);
    fprintf(f, "  %-5s every count was answered (%lu error replies or abandoned requests)\n",
            unanswered ? "FAIL" : "ok", unanswered);
    fprintf(f, "  %-5s every kill was recovered from within %d ms\n", l->recovery_failed ? "FAIL" : "ok",
            l->o.recovery_timeout_ms);
    /* a zombie for the moment before its parent reaps it is normal: the
     * invariant is about ones that stay */
    fprintf(f, "  %-5s every zombie was reaped within %d ms (%lu seen briefly, %lu left longer)\n",
            l->persistent_zombies ? "FAIL" : "ok", l->o.zombie_grace_ms, l->transient_zombies,
            l->persistent_zombies);
    if (l->o.attach)
        fprintf(f, "  %-5s nothing left behind (not checked with --attach)\n", "-");
    else
        fprintf(f, "  %-5s nothing left behind: no shm object, socket or process of the run (%zu found)\n",
                l->nleftovers ? "FAIL" : "ok", l->nleftovers);
    if (l->nfailures) {
        fprintf(f, "\nfailures\n");
        for (size_t i = 0; i < l->nfailures; i++)
            fprintf(f, "  - %s\n", l->failures[i]);
    }
    if (l->nnotes) {
        fprintf(f, "\nnotes\n");
        for (size_t i = 0; i < l->nnotes; i++)
            fprintf(f, "  - %s\n", l->notes[i]);
    }
    if (l->nfailures)
        fprintf(f, "\nverdict: FAIL (%zu failure%s)\n", l->nfailures, l->nfailures == 1 ? "" : "s");
    else if (l->interrupted) /* not a pass: the run did not do what was asked */
        fprintf(f, "\nverdict: INTERRUPTED after %zu kills (no invariant failed on what was done)\n", l->nkills);
    else
        fprintf(f, "\nverdict: PASS (every invariant holds)\n");
}

static cJSON *lab_stats_json(const lab_stats *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", (double)s->n);
    if (s->n) {
        cJSON_AddNumberToObject(o, "min", s->min);
        cJSON_AddNumberToObject(o, "median", s->median);
        cJSON_AddNumberToObject(o, "p99", s->p99);
        cJSON_AddNumberToObject(o, "max", s->max);
    } else {
        cJSON_AddNullToObject(o, "min");
        cJSON_AddNullToObject(o, "median");
        cJSON_AddNullToObject(o, "p99");
        cJSON_AddNullToObject(o, "max");
    }
    return o;
}

static cJSON *lab_strings(char **s, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(s[i]));
    return a;
}

int lab_report_json(lab *l, const lab_tally *t, const char *path, char *err, size_t errlen)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "verdict", l->nfailures ? "fail" : l->interrupted ? "interrupted" : "pass");
    cJSON_AddItemToObject(r, "failures", lab_strings(l->failures, l->nfailures));
    cJSON_AddItemToObject(r, "notes", lab_strings(l->notes, l->nnotes));

    cJSON *c = cJSON_AddObjectToObject(r, "config");
    cJSON_AddBoolToObject(c, "attach", l->o.attach);
    cJSON_AddStringToObject(c, "runtime_dir", l->rt.dir);
    cJSON_AddStringToObject(c, "instance", l->rt.instance);
    if (l->o.attach) {
        cJSON_AddNullToObject(c, "strategy");
        cJSON_AddNullToObject(c, "on_manager_death");
        cJSON_AddNullToObject(c, "exactly_once");
        cJSON_AddNullToObject(c, "standby");
    } else {
        cJSON_AddStringToObject(c, "strategy", l->o.strategy);
        cJSON_AddStringToObject(c, "on_manager_death", l->o.exit_on_manager_death ? "exit" : "keep");
        cJSON_AddBoolToObject(c, "exactly_once", l->o.exactly_once);
        cJSON_AddBoolToObject(c, "standby", l->o.standby);
    }
    cJSON_AddNumberToObject(c, "workers", l->o.workers);
    cJSON *tg = cJSON_AddArrayToObject(c, "targets");
    for (int i = 0; i < LAB_T_N; i++)
        if (l->o.targets & (1u << i))
            cJSON_AddItemToArray(tg, cJSON_CreateString(lab_target_name((lab_target)i)));
    cJSON *iv = cJSON_AddArrayToObject(c, "interval_ms");
    cJSON_AddItemToArray(iv, cJSON_CreateNumber(l->o.interval_min_ms));
    cJSON_AddItemToArray(iv, cJSON_CreateNumber(l->o.interval_max_ms));
    cJSON_AddNumberToObject(c, "kills", (double)l->o.kills);
    cJSON_AddNumberToObject(c, "duration_s", l->o.duration_s);
    cJSON_AddNumberToObject(c, "seed", (double)l->o.seed);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)l->o.seed);
    cJSON_AddStringToObject(c, "seed_text", seed); /* exact, beyond 2^53 */
    cJSON_AddNumberToObject(c, "recovery_timeout_ms", l->o.recovery_timeout_ms);
    cJSON_AddNumberToObject(c, "zombie_grace_ms", l->o.zombie_grace_ms);

    cJSON_AddNumberToObject(r, "duration_s", lab_run_s(l));
    cJSON_AddBoolToObject(r, "interrupted", l->interrupted);
    cJSON *n = cJSON_AddObjectToObject(r, "counts");
    cJSON_AddNumberToObject(n, "initial", (double)t->initial);
    if (l->have_final)
        cJSON_AddNumberToObject(n, "final", (double)t->final);
    else
        cJSON_AddNullToObject(n, "final");
    cJSON_AddNumberToObject(n, "acknowledged", (double)t->acked);
    cJSON_AddNumberToObject(n, "distinct", (double)t->distinct);
    cJSON_AddNumberToObject(n, "lost", (double)t->lost);
    cJSON_AddNumberToObject(n, "duplicated", (double)t->duplicated);
    cJSON_AddNumberToObject(n, "repeated", (double)t->repeated);
    cJSON_AddNumberToObject(n, "out_of_range", (double)t->out_of_range);
    cJSON_AddNumberToObject(n, "retries", (double)LAB_SUM(l, retries));
    cJSON_AddNumberToObject(n, "answered_from_record", (double)LAB_SUM(l, dup_replies));
    cJSON_AddNumberToObject(n, "errors", (double)LAB_SUM(l, errors));
    cJSON_AddNumberToObject(n, "gave_up", (double)LAB_SUM(l, gave_up));
    double secs = lab_run_s(l);
    cJSON_AddNumberToObject(n, "per_second", secs > 0 ? (double)t->acked / secs : 0);

    cJSON *wa = cJSON_AddArrayToObject(r, "workers");
    for (int i = 0; l->w && i < l->o.workers; i++) {
        const lab_worker *w = &l->w[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(wa, o);
        cJSON_AddNumberToObject(o, "acknowledged", (double)w->nacks);
        cJSON_AddBoolToObject(o, "strictly_increasing", w->not_increasing == 0);
        cJSON_AddNumberToObject(o, "not_increasing", (double)w->not_increasing);
        cJSON_AddNumberToObject(o, "retries", (double)w->retries);
        cJSON_AddNumberToObject(o, "reconnects", (double)w->reconnects);
        cJSON_AddNumberToObject(o, "errors", (double)w->errors);
        cJSON_AddNumberToObject(o, "gave_up", (double)w->gave_up);
    }

    cJSON *k = cJSON_AddObjectToObject(r, "kills");
    cJSON_AddNumberToObject(k, "total", (double)l->nkills);
    cJSON *rec = cJSON_AddObjectToObject(r, "recovery_ms");
    for (int tt = 0; tt < LAB_T_N; tt++) {
        if (!(l->o.targets & (1u << tt)))
            continue;
        lab_rec rr;
        lab_recovery(l, (lab_target)tt, &rr);
        cJSON_AddNumberToObject(k, lab_target_name((lab_target)tt), (double)rr.kills);
        cJSON *o = cJSON_AddObjectToObject(rec, lab_target_name((lab_target)tt));
        cJSON_AddNumberToObject(o, "kills", (double)rr.kills);
        cJSON_AddItemToObject(o, "to_first_ack", lab_stats_json(&rr.ack));
        cJSON_AddItemToObject(o, "to_ready", lab_stats_json(&rr.ready));
    }
    cJSON_AddStringToObject(r, "ready_measured_by", l->ready_method ? l->ready_method : "notify");
    cJSON *log = cJSON_AddArrayToObject(r, "kill_log");
    for (size_t i = 0; i < l->nkills; i++) {
        const lab_kill *kl = &l->kills[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(log, o);
        cJSON_AddNumberToObject(o, "t_ms", lab_ms(kl->t_ns - l->t0_ns));
        cJSON_AddStringToObject(o, "target", lab_target_name(kl->target));
        cJSON *p = cJSON_AddArrayToObject(o, "pids");
        for (int j = 0; j < kl->npids; j++)
            cJSON_AddItemToArray(p, cJSON_CreateNumber(kl->pids[j]));
        if (kl->ack_ns >= 0)
            cJSON_AddNumberToObject(o, "to_first_ack_ms", lab_ms(kl->ack_ns - kl->t_ns));
        else
            cJSON_AddNullToObject(o, "to_first_ack_ms");
        if (kl->ready_ns >= 0)
            cJSON_AddNumberToObject(o, "to_ready_ms", lab_ms(kl->ready_ns - kl->t_ns));
        else
            cJSON_AddNullToObject(o, "to_ready_ms");
    }
    cJSON *z = cJSON_AddObjectToObject(r, "zombies");
    cJSON_AddNumberToObject(z, "unreaped", (double)l->persistent_zombies);
    cJSON_AddNumberToObject(z, "reaped_in_time", (double)l->transient_zombies);
    if (l->o.attach)
        cJSON_AddNullToObject(r, "leftovers");
    else
        cJSON_AddItemToObject(r, "leftovers", lab_strings(l->leftovers, l->nleftovers));
    if (l->sup_final_status >= 0)
        cJSON_AddNumberToObject(r, "etssup_exit_status", l->sup_final_status);
    else
        cJSON_AddNullToObject(r, "etssup_exit_status");

    char *text = cJSON_Print(r);
    cJSON_Delete(r);
    if (!text) {
        snprintf(err, errlen, "out of memory building the JSON report");
        return -1;
    }
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write the JSON report to %s: %s", path, strerror(errno));
        free(text);
        return -1;
    }
    int bad = fputs(text, f) < 0 || fputc('\n', f) < 0;
    bad |= f == stdout ? fflush(f) != 0 : fclose(f) != 0;
    free(text);
    if (bad) {
        snprintf(err, errlen, "writing the JSON report to %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* report.c: turns the rows of one bench run into the table people read and
 * the results.json programs read.
 *
 *   report ROWS.jsonl RESULTS.json
 *
 * ROWS.jsonl holds, one JSON object per line, in the order the driver ran
 * them: result rows (benchutil.h), headings {"section": "..."} and notes
 * {"note": "..."} (printed, not kept in results.json).  A row measured in
 * several rounds appears once per round; the round with the median value
 * is kept, with all the values in "rounds" (sorted) and "rounds_in_order".
 * Two rows measured round for round (etscounterd's and Redis's, back to
 * back in each round) have as ratio the median of the per-round ratios
 * ("round_ratios"), which a change of load between rounds does not move.
 * A row whose
 * "reference" names another row of the file and has no reference_value gets
 * that row's value, and its ratio; so a comparison can span two programs
 * (etscounterd's row and Redis's row come from two loadgen runs).
 *
 * A row may carry a "target": "OP N" (OP one of >=, >, <=, <) compares the
 * ratio with N, "value OP N" the value itself.  The table says met or MISSED
 * for each; nothing fails on a miss (the numbers belong to the machine, the
 * verdicts to docs/performance.md).
 *
 * results.json is an array of the row objects, with the references resolved
 * and "met" (true/false) added to rows with a target.
 * Exit status: 0, 1 a file cannot be read or written, 64 usage error. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const cJSON *rp_find(const cJSON *rows, const char *name)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, rows)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "name");
        if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
            return r;
    }
    return NULL;
}

static double rp_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *rp_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void rp_set_num(cJSON *o, const char *k, double v)
{
    cJSON *n = isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
    if (cJSON_GetObjectItemCaseSensitive(o, k))
        cJSON_ReplaceItemInObjectCaseSensitive(o, k, n);
    else
        cJSON_AddItemToObject(o, k, n);
}

/* 1234567.8 -> "1,234,568" */
static void rp_thousands(double v, char *buf, size_t len)
{
    char raw[64];
    snprintf(raw, sizeof raw, "%.0f", v);
    size_t n = strlen(raw), j = 0;
    for (size_t i = 0; i < n && j + 2 < len; i++) {
        buf[j++] = raw[i];
        size_t left = n - i - 1;
        if (left && left % 3 == 0 && raw[i] != '-')
            buf[j++] = ',';
    }
    buf[j] = 0;
}

static void rp_fmt(double v, const char *unit, char *buf, size_t len)
{
    char num[40];
    if (!isfinite(v))
        snprintf(num, sizeof num, "-");
    else if (strcmp(unit, "req/s") == 0)
        rp_thousands(v, num, sizeof num);
    else if (fabs(v) >= 100)
        snprintf(num, sizeof num, "%.0f", v);
    else if (fabs(v) >= 10)
        snprintf(num, sizeof num, "%.1f", v);
    else if (fabs(v) >= 1)
        snprintf(num, sizeof num, "%.2f", v);
    else
        snprintf(num, sizeof num, "%.3f", v);
    snprintf(buf, len, "%s %.20s", num, unit);
}

/* "met", "MISSED", or "" when the target cannot be read. */
static const char *rp_verdict(const char *target, double value, double ratio, int *met)
{
    const char *p = target;
    double x = ratio;
    if (strncmp(p, "value", 5) == 0) {
        x = value;
        p += 5;
    }
    while (*p == ' ')
        p++;
    char op[3] = { 0 };
    size_t k = 0;
    while ((*p == '<' || *p == '>' || *p == '=') && k < 2)
        op[k++] = *p++;
    char *end;
    double n = strtod(p, &end);
    if (end == p || !isfinite(x))
        return "";
    if (strcmp(op, ">=") == 0)
        *met = x >= n;
    else if (strcmp(op, ">") == 0)
        *met = x > n;
    else if (strcmp(op, "<=") == 0)
        *met = x <= n;
    else if (strcmp(op, "<") == 0)
        *met = x < n;
    else
        return "";
    return *met ? "met" : "MISSED";
}

#define RP_NAMEW 44 /* the row column; longer names take a line of their own */
#define RP_REFW 22  /* the reference column, after what it shares with the row */
#define RP_COLS 100 /* notes are wrapped to this width */

/* text after first, then continuation lines after cont, words wrapped */
static void rp_wrap(const char *first, const char *text, const char *cont)
{
    size_t col = strlen(first);
    fputs(first, stdout);
    size_t at_start = col;
    const char *p = text;
    int opened = strcmp(first + strlen(first) - 1, "(") == 0;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (!w)
            break;
        if (col > at_start && col + 1 + w > RP_COLS) {
            printf("\n%s", cont);
            col = at_start = strlen(cont);
        } else if (col > at_start) {
            putchar(' ');
            col++;
        }
        fwrite(p, 1, w, stdout);
        col += w;
        p += w;
    }
    printf("%s\n", opened ? ")" : "");
}

/* a value in a few characters: 986k/s, 1.23M/s, 28.6 M/s, 1.17 ms */
static void rp_short(double v, const char *unit, char *buf, size_t len)
{
    if (!isfinite(v))
        snprintf(buf, len, "-");
    else if (strcmp(unit, "req/s") == 0)
        snprintf(buf, len, v >= 1e6 ? "%.2fM/s" : "%.0fk/s", v >= 1e6 ? v / 1e6 : v / 1e3);
    else if (strcmp(unit, "bytes") == 0)
        snprintf(buf, len, "%.1f B", v);
    else if (strcmp(unit, "M ops/s") == 0)
        snprintf(buf, len, "%.3g M/s", v);
    else if (strcmp(unit, "x per free core") == 0)
        snprintf(buf, len, "%.2fx/core", v);
    else
        rp_fmt(v, unit, buf, len);
}

/* The reference as the table shows it: without the end it shares with the
 * row's name from a ", " or ": " on ("Redis INCR, 50 conns" next to
 * "count, 50 conns" is "Redis INCR"), and without a "prefix: " both begin
 * with; cut to the column. */
static void rp_ref_label(const char *ref, const char *name, char *buf, size_t len)
{
    /* a "table: " both begin with says nothing either */
    size_t skip = 0;
    const char *colon = strstr(ref, ": ");
    if (colon && strncmp(ref, name, (size_t)(colon - ref) + 2) == 0)
        skip = (size_t)(colon - ref) + 2;
    ref += skip;
    name += skip <= strlen(name) ? skip : 0;
    size_t rl = strlen(ref), nl = strlen(name), k = 0;
    while (k < rl && k < nl && ref[rl - 1 - k] == name[nl - 1 - k])
        k++;
    size_t cut = rl;
    for (size_t i = rl - k; i + 1 < rl; i++)
        if ((ref[i] == ',' || ref[i] == ':') && ref[i + 1] == ' ' && i > 0) {
            cut = i;
            break;
        }
    if (cut >= len)
        snprintf(buf, len, "%.*s...", (int)(len - 4), ref);
    else
        snprintf(buf, len, "%.*s", (int)cut, ref);
}

/* a profile row: where the server's time went, by part, then the top symbols */
static void rp_profile(const char *name, const cJSON *prof)
{
    char line[2048];
    size_t n = 0;
    const cJSON *g;
    n += (size_t)snprintf(line + n, sizeof line - n, "%s (%s):", name, rp_str(prof, "event") ? rp_str(prof, "event") : "perf");
    int i = 0;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(prof, "groups"))
    if (n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %s %.0f%%", i++ ? "," : "", rp_str(g, "part"),
                              rp_num(g, "pct"));
    rp_wrap("  ", line, "      ");
    n = 0;
    i = 0;
    line[0] = 0;
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(prof, "top"))
    if (n < sizeof line && i < 8)
        n += (size_t)snprintf(line + n, sizeof line - n, "%s%s %.1f%%", i++ ? ", " : "top symbols: ",
                              rp_str(g, "symbol"), rp_num(g, "pct"));
    if (i)
        rp_wrap("    ", line, "      ");
}

/* Two rows measured in the same rounds (run back to back in each): the
 * median of the per-round ratios, so that a change of the machine's load
 * between rounds cancels out (the ratio of the two medians mixes rounds);
 * NAN when they were not measured round for round. */
static double rp_round_ratio(cJSON *r, const cJSON *other)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, "rounds_in_order");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(other, "rounds_in_order");
    int k = cJSON_GetArraySize(a);
    if (k < 2 || k != cJSON_GetArraySize(b) || k > 64)
        return NAN;
    double q[64];
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < k; i++) {
        double x = cJSON_GetArrayItem(a, i)->valuedouble, y = cJSON_GetArrayItem(b, i)->valuedouble;
        q[i] = y != 0 ? x / y : NAN;
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(q[i]));
        for (int j = i; j > 0 && q[j] < q[j - 1]; j--) {
            double t = q[j];
            q[j] = q[j - 1];
            q[j - 1] = t;
        }
    }
    if (cJSON_GetObjectItemCaseSensitive(r, "round_ratios"))
        cJSON_ReplaceItemInObjectCaseSensitive(r, "round_ratios", arr);
    else
        cJSON_AddItemToObject(r, "round_ratios", arr);
    return k % 2 ? q[k / 2] : (q[k / 2 - 1] + q[k / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: report ROWS.jsonl RESULTS.json\n");
        return 64;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) {
        fprintf(stderr, "report: open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    cJSON *all = cJSON_CreateArray();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (n <= 1)
            continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            fprintf(stderr, "report: %s:%d: not a JSON object, skipped: %s", argv[1], lineno, line);
            cJSON_Delete(o);
            continue;
        }
        cJSON_AddItemToArray(all, o);
    }
    free(line);
    fclose(f);

    /* rows measured in several rounds (the same name more than once): the
     * round with the median value stands for them all, in the place of the
     * first, with every round's value in "rounds" */
    cJSON *merged = cJSON_CreateArray();
    int nall = cJSON_GetArraySize(all);
    char *used = calloc((size_t)nall + 1, 1);
    double *vals = calloc((size_t)nall + 1, sizeof *vals);
    int *idx = calloc((size_t)nall + 1, sizeof *idx);
    if (!merged || !used || !vals || !idx) {
        fprintf(stderr, "report: out of memory\n");
        return 1;
    }
    for (int i = 0; i < nall; i++) {
        if (used[i])
            continue;
        cJSON *o = cJSON_GetArrayItem(all, i);
        const char *name = rp_str(o, "name");
        int k = 0;
        for (int j = i; j < nall; j++) {
            const char *nj = rp_str(cJSON_GetArrayItem(all, j), "name");
            if (j == i || (name && nj && strcmp(name, nj) == 0)) {
                used[j] = 1;
                idx[k++] = j;
            }
        }
        /* the values in the order they were measured, for per-round ratios */
        cJSON *inorder = k > 1 ? cJSON_CreateArray() : NULL;
        for (int a = 0; a < k; a++)
            cJSON_AddItemToArray(inorder, cJSON_CreateNumber(rp_num(cJSON_GetArrayItem(all, idx[a]), "value")));
        /* sort the k rounds by value (insertion sort: a handful) */
        for (int a = 0; a < k; a++)
            vals[a] = rp_num(cJSON_GetArrayItem(all, idx[a]), "value");
        for (int a = 1; a < k; a++)
            for (int b = a; b > 0 && vals[b] < vals[b - 1]; b--) {
                double tv = vals[b];
                vals[b] = vals[b - 1];
                vals[b - 1] = tv;
                int ti = idx[b];
                idx[b] = idx[b - 1];
                idx[b - 1] = ti;
            }
        cJSON *pick = cJSON_Duplicate(cJSON_GetArrayItem(all, idx[(k - 1) / 2]), 1);
        if (k > 1) {
            cJSON *arr = cJSON_AddArrayToObject(pick, "rounds");
            for (int a = 0; a < k; a++)
                cJSON_AddItemToArray(arr, cJSON_CreateNumber(vals[a]));
            cJSON_AddItemToObject(pick, "rounds_in_order", inorder);
        }
        cJSON_AddItemToArray(merged, pick);
    }
    free(used);
    free(vals);
    free(idx);
    cJSON_Delete(all);
    all = merged;

    /* a row compared with several others: one more row per comparison,
     * right after it, with the same measurement */
    cJSON *flat = cJSON_CreateArray();
    for (cJSON *o = all->child; o; o = o->next) {
        const cJSON *also = cJSON_GetObjectItemCaseSensitive(o, "also");
        cJSON *copy = cJSON_Duplicate(o, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "also");
        cJSON_AddItemToArray(flat, copy);
        const cJSON *a;
        cJSON_ArrayForEach(a, also)
        {
            const char *ref = rp_str(a, "reference"), *tg = rp_str(a, "target");
            if (!ref)
                continue;
            cJSON *c = cJSON_Duplicate(copy, 1);
            cJSON_DeleteItemFromObjectCaseSensitive(c, "target");
            cJSON_DeleteItemFromObjectCaseSensitive(c, "reference_value");
            cJSON_DeleteItemFromObjectCaseSensitive(c, "ratio");
            cJSON_DeleteItemFromObjectCaseSensitive(c, "name");
            cJSON_DeleteItemFromObjectCaseSensitive(c, "reference");
            char name[512];
            snprintf(name, sizeof name, "%s [vs %s]", rp_str(o, "name"), ref);
            cJSON_AddStringToObject(c, "name", name);
            cJSON_AddStringToObject(c, "reference", ref);
            if (tg)
                cJSON_AddStringToObject(c, "target", tg);
            cJSON_AddTrueToObject(c, "same_measurement");
            cJSON_AddItemToArray(flat, c);
        }
    }
    cJSON_Delete(all);
    all = flat;

    /* resolve references that name rows, then the ratios */
    cJSON *r;
    cJSON_ArrayForEach(r, all)
    {
        if (!rp_str(r, "name"))
            continue;
        const char *ref = rp_str(r, "reference");
        double rv = rp_num(r, "reference_value");
        if (ref && !isfinite(rv)) {
            const cJSON *other = rp_find(all, ref);
            if (other) {
                rv = rp_num(other, "value");
                rp_set_num(r, "reference_value", rv);
                if (!rp_str(r, "reference_unit") && rp_str(other, "unit"))
                    cJSON_AddStringToObject(r, "reference_unit", rp_str(other, "unit"));
            }
        }
        /* CPU per request against the reference's (> 1: this row needs less
         * CPU), which a loaded machine moves less than the throughput */
        const cJSON *other = ref ? rp_find(all, ref) : NULL;
        double cr = rp_num(r, "server_cpu_us_per_req"), co = other ? rp_num(other, "server_cpu_us_per_req") : NAN;
        if (isfinite(cr) && isfinite(co) && cr > 0)
            rp_set_num(r, "server_cpu_ratio", co / cr);
        double v = rp_num(r, "value");
        double pr = other ? rp_round_ratio(r, other) : NAN;
        if (!isfinite(rp_num(r, "ratio")))
            rp_set_num(r, "ratio", isfinite(pr) ? pr : ref && isfinite(rv) && rv != 0 ? v / rv : NAN);
        const char *target = rp_str(r, "target");
        int met = 0;
        if (target && *rp_verdict(target, v, rp_num(r, "ratio"), &met))
            cJSON_AddBoolToObject(r, "met", met);
    }

    /* the table */
    int nmet = 0, nmissed = 0;
    cJSON *missed = cJSON_CreateArray();
    const char *prev_name = "";
    bool header = false; /* the column heads, before a section's first row */
    cJSON_ArrayForEach(r, all)
    {
        const char *sec = rp_str(r, "section"), *note = rp_str(r, "note"), *name = rp_str(r, "name");
        if (!name) {
            if (sec) {
                printf("\n");
                rp_wrap("== ", sec, "   ");
                header = true;
            }
            if (note)
                rp_wrap("   (", note, "    ");
            continue;
        }
        if (header) {
            printf("  %-*s %10s %7s  %-*s %6s  %s\n", RP_NAMEW, "row", "value", "cpu", RP_REFW, "vs", "ratio",
                   "target");
            header = false;
        }
        const cJSON *prof = cJSON_GetObjectItemCaseSensitive(r, "profile");
        if (prof) {
            rp_profile(name, prof);
            continue;
        }
        const char *unit = rp_str(r, "unit") ? rp_str(r, "unit") : "";
        bool same = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "same_measurement"));
        char val[64] = "", cpu[16] = "", ratio[16] = "", tg[48] = "", refs[RP_REFW + 1] = "";
        if (!same) {
            rp_short(rp_num(r, "value"), unit, val, sizeof val);
            double us = rp_num(r, "server_cpu_us_per_req");
            if (isfinite(us))
                snprintf(cpu, sizeof cpu, "%.2fus", us);
            prev_name = name;
        }
        const char *ref = rp_str(r, "reference");
        if (ref)
            rp_ref_label(ref, same ? prev_name : name, refs, sizeof refs);
        if (isfinite(rp_num(r, "ratio")))
            snprintf(ratio, sizeof ratio, "%.2fx", rp_num(r, "ratio"));
        const char *target = rp_str(r, "target");
        int met = 0;
        if (target) {
            const char *v = rp_verdict(target, rp_num(r, "value"), rp_num(r, "ratio"), &met);
            snprintf(tg, sizeof tg, "%s %s", target, v);
            if (*v) {
                if (met)
                    nmet++;
                else {
                    nmissed++;
                    cJSON_AddItemToArray(missed, cJSON_Duplicate(r, 1));
                }
            }
        }
        const char *shown = same ? "" : name;
        if (strlen(shown) > RP_NAMEW)
            printf("  %s\n  %-*s", shown, RP_NAMEW, "");
        else
            printf("  %-*s", RP_NAMEW, shown);
        printf(" %10s %7s  %-*s %6s  %s\n", val, cpu, RP_REFW, refs, ratio, tg);
        if (rp_str(r, "note"))
            rp_wrap("    (", rp_str(r, "note"), "     ");
    }

    /* the verdict, plainly, last */
    printf("\n");
    if (nmet + nmissed == 0)
        printf("No targets in this run.\n");
    else if (nmissed == 0)
        printf("Targets: all %d met.\n", nmet);
    else {
        printf("Targets: %d met, %d MISSED:\n", nmet, nmissed);
        cJSON_ArrayForEach(r, missed)
        {
            char val[64], line[600];
            const char *target = rp_str(r, "target");
            if (strncmp(target, "value", 5) == 0) {
                rp_short(rp_num(r, "value"), rp_str(r, "unit") ? rp_str(r, "unit") : "", val, sizeof val);
                snprintf(line, sizeof line, "%s: %s (target %s)", rp_str(r, "name"), val, target);
            } else {
                snprintf(line, sizeof line, "%s: %.2fx %s (target %s)", rp_str(r, "name"), rp_num(r, "ratio"),
                         rp_str(r, "reference") ? rp_str(r, "reference") : "", target);
            }
            rp_wrap("  - ", line, "    ");
        }
    }
    cJSON_Delete(missed);

    cJSON *rows = cJSON_CreateArray();
    cJSON_ArrayForEach(r, all)
    if (rp_str(r, "name"))
        cJSON_AddItemToArray(rows, cJSON_Duplicate(r, 1));
    char *out = cJSON_Print(rows);
    FILE *w = out ? fopen(argv[2], "w") : NULL;
    if (!w || fputs(out, w) < 0 || fputc('\n', w) < 0 || fclose(w) != 0) {
        fprintf(stderr, "report: write %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    free(out);
    cJSON_Delete(rows);
    cJSON_Delete(all);
    return 0;
}

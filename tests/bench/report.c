/* report.c: turns the rows of one bench run into the table people read and
 * the results.json programs read.
 *
 *   report ROWS.jsonl RESULTS.json
 *
 * ROWS.jsonl holds, one JSON object per line, in the order the driver ran
 * them: result rows (benchutil.h), headings {"section": "..."} and notes
 * {"note": "..."} (printed, not kept in results.json).  A row measured in
 * several rounds appears once per round; the round with the median value
 * is kept, with all the values in "rounds".  A row whose
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
        double v = rp_num(r, "value");
        if (!isfinite(rp_num(r, "ratio")))
            rp_set_num(r, "ratio", ref && isfinite(rv) && rv != 0 ? v / rv : NAN);
        const char *target = rp_str(r, "target");
        int met = 0;
        if (target && *rp_verdict(target, v, rp_num(r, "ratio"), &met))
            cJSON_AddBoolToObject(r, "met", met);
    }

    /* the table */
    cJSON_ArrayForEach(r, all)
    {
        const char *sec = rp_str(r, "section"), *note = rp_str(r, "note"), *name = rp_str(r, "name");
        if (!name) {
            if (sec)
                printf("\n== %s\n", sec);
            if (note)
                printf("   (%s)\n", note);
            continue;
        }
        const char *unit = rp_str(r, "unit") ? rp_str(r, "unit") : "";
        char val[64], extra[96] = "", refv[64] = "", ratio[32] = "", tg[64] = "";
        rp_fmt(rp_num(r, "value"), unit, val, sizeof val);
        if (isfinite(rp_num(r, "p50_us")))
            snprintf(extra, sizeof extra, "p50 %.0f us, p99 %.0f us", rp_num(r, "p50_us"), rp_num(r, "p99_us"));
        else if (isfinite(rp_num(r, "p99")))
            snprintf(extra, sizeof extra, "p99 %.3g %s", rp_num(r, "p99"), unit);
        const char *ref = rp_str(r, "reference");
        if (isfinite(rp_num(r, "reference_value"))) {
            const char *ru = rp_str(r, "reference_unit") ? rp_str(r, "reference_unit") : unit;
            rp_fmt(rp_num(r, "reference_value"), ru, refv, sizeof refv);
        }
        if (isfinite(rp_num(r, "ratio")))
            snprintf(ratio, sizeof ratio, "%.2fx", rp_num(r, "ratio"));
        const char *target = rp_str(r, "target");
        int met;
        if (target)
            snprintf(tg, sizeof tg, "%s%s: %s", target, strncmp(target, "value", 5) ? "x" : "",
                     rp_verdict(target, rp_num(r, "value"), rp_num(r, "ratio"), &met));
        /* a second comparison of the row above: said as such, to keep the
         * name column narrow (results.json has the full name) */
        const char *shown = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "same_measurement"))
                                ? "  \" (same measurement)"
                                : name;
        if (strlen(shown) > 62)
            printf("  %s\n  %-62s", shown, "");
        else
            printf("  %-62s", shown);
        printf(" %16s  %-26s %7s  %-22s", val, extra, ratio, tg);
        if (ref)
            printf("  vs %s%s%s%s", ref, refv[0] ? " (" : "", refv, refv[0] ? ")" : "");
        printf("\n");
        if (rp_str(r, "note"))
            printf("  %-62s (%s)\n", "", rp_str(r, "note"));
    }

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

/* SPDX-License-Identifier: Apache-2.0 */
/* plot.c: --plot FILE.svg, the experiment at a glance.
 *
 * The counter's acknowledged values over time as one line, and each kill as
 * a vertical line coloured by its target, so a pause in counting after a
 * kill shows as a flat step right after a coloured line.  Written by hand
 * (SVG is text), with no library: the values are bucketed per horizontal
 * pixel (the highest value acknowledged in that slice of time), so the file
 * stays small however long the run was.  Every kill line carries a <title>
 * with its number, target and recovery times, which a browser shows on
 * hover. */
#include "lab.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PW 960
#define PH 480
#define ML 80
#define MR 20
#define MT 70
#define MB 70

static double lab_nice_step(double span, int ticks)
{
    double raw = span / ticks, mag = pow(10, floor(log10(raw > 0 ? raw : 1)));
    double f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

int lab_plot_svg(lab *l, const lab_tally *t, const char *path, char *err, size_t errlen)
{
    const int cols = PW - ML - MR, rows = PH - MT - MB;
    double secs = l->end_ns > l->t0_ns ? lab_ms(l->end_ns - l->t0_ns) / 1000 : 1;
    if (secs <= 0)
        secs = 1;
    int64_t *top = malloc((size_t)cols * sizeof *top);
    if (!top) {
        snprintf(err, errlen, "out of memory drawing the plot");
        return -1;
    }
    for (int i = 0; i < cols; i++)
        top[i] = INT64_MIN;
    int64_t ymax = l->have_final ? t->final : t->initial, ymin = t->initial;
    for (int w = 0; l->w && w < l->o.workers; w++)
        for (size_t i = 0; i < l->w[w].nacks; i++) {
            const lab_ack *a = &l->w[w].acks[i];
            int x = (int)((double)(a->t_ns - l->t0_ns) / 1e9 / secs * (cols - 1));
            if (x < 0 || x >= cols)
                continue;
            if (a->value > top[x])
                top[x] = a->value;
            if (a->value > ymax)
                ymax = a->value;
        }
    if (ymax <= ymin)
        ymax = ymin + 1;
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write the plot to %s: %s", path, strerror(errno));
        free(top);
        return -1;
    }
#define X(sec) (ML + (sec) / secs * (cols - 1))
#define Y(v) (MT + rows - ((double)((v) - ymin) / (double)(ymax - ymin)) * rows)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            PW, PH, PW, PH);
    fprintf(f, "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">etsmgr-crashlab: the counter over "
               "time, %zu kills, %s</text>\n",
            ML, l->nkills, l->nfailures ? "FAIL" : "PASS");
    /* two lines: at 12 px one line of both ran past the right edge */
    fprintf(f, "<text x=\"%d\" y=\"40\" fill=\"#555\">strategy %s, on manager death %s, exactly-once %s, %d "
               "workers, seed %llu</text>\n",
            ML, l->o.attach ? "(attached)" : l->o.strategy, l->o.exit_on_manager_death ? "exit" : "keep",
            l->o.exactly_once ? "on" : "off", l->o.workers, (unsigned long long)l->o.seed);
    fprintf(f, "<text x=\"%d\" y=\"56\" fill=\"#555\">final %lld, acknowledged %llu, lost %llu, duplicated "
               "%llu</text>\n",
            ML, (long long)(l->have_final ? t->final : -1), (unsigned long long)t->acked,
            (unsigned long long)t->lost, (unsigned long long)t->duplicated);
    /* axes and ticks */
    fprintf(f, "<g stroke=\"#000\" stroke-width=\"1\"><line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
               "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/></g>\n",
            ML, MT + rows, ML + cols, MT + rows, ML, MT, ML, MT + rows);
    double xs = lab_nice_step(secs, 10);
    for (double s = 0; s <= secs + 1e-9; s += xs)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#000\"/>"
                   "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n",
                X(s), MT + rows, X(s), MT + rows + 5, X(s), MT + rows + 19, s);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">seconds</text>\n", ML + cols / 2, MT + rows + 36);
    double ys = lab_nice_step((double)(ymax - ymin), 6);
    for (double v = ceil((double)ymin / ys) * ys; v <= (double)ymax + 1e-9; v += ys) {
        double y = MT + rows - (v - (double)ymin) / (double)(ymax - ymin) * rows;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n",
                ML + 1, y, ML + cols, y, ML - 6, y + 4, v);
    }
    fprintf(f, "<text transform=\"translate(16 %d) rotate(-90)\" text-anchor=\"middle\">count</text>\n",
            MT + rows / 2);
    /* kills */
    for (size_t i = 0; i < l->nkills; i++) {
        const lab_kill *k = &l->kills[i];
        double x = X((double)(k->t_ns - l->t0_ns) / 1e9);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" stroke-opacity=\"0.55\">"
                   "<title>kill %zu: %s at %.3f s; first ack after %.1f ms, supervisor ready after %.1f ms"
                   "</title></line>\n",
                x, MT, x, MT + rows, lab_target_color(k->target), i + 1, lab_target_name(k->target),
                (double)(k->t_ns - l->t0_ns) / 1e9, k->ack_ns >= 0 ? lab_ms(k->ack_ns - k->t_ns) : -1.0,
                k->ready_ns >= 0 ? lab_ms(k->ready_ns - k->t_ns) : -1.0);
    }
    /* the counter */
    fprintf(f, "<polyline fill=\"none\" stroke=\"#000\" stroke-width=\"1.5\" points=\"");
    int64_t last = ymin;
    fprintf(f, "%d,%.1f", ML, Y(ymin));
    for (int x = 0; x < cols; x++) {
        if (top[x] == INT64_MIN)
            continue;
        if (top[x] > last)
            last = top[x];
        fprintf(f, " %d,%.1f", ML + x, Y(last));
    }
    fprintf(f, "\"/>\n");
    /* legend */
    int lx = ML;
    for (int tt = 0; tt < LAB_T_N; tt++) {
        if (!(l->o.targets & (1u << tt)))
            continue;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>"
                   "<text x=\"%d\" y=\"%d\">kill %s</text>\n",
                lx, PH - 12, lx + 18, PH - 12, lab_target_color((lab_target)tt), lx + 23, PH - 8,
                lab_target_name((lab_target)tt));
        lx += 150;
    }
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\" stroke-width=\"1.5\"/>"
               "<text x=\"%d\" y=\"%d\">highest acknowledged count</text>\n",
            lx, PH - 12, lx + 18, PH - 12, lx + 23, PH - 8);
    fprintf(f, "</svg>\n");
#undef X
#undef Y
    free(top);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "writing the plot to %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

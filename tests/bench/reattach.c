/* SPDX-License-Identifier: Apache-2.0 */
/* reattach.c: what it costs a restarted client to get its table back, for
 * tables of growing size.  The promise of the design is that this does not
 * grow with the table: the data never moves, the new process only maps the
 * object the daemon hands it (SCM_RIGHTS) and checks its header.
 *
 * For each size, a table is created through etsmgrd with that size reserved
 * (size_hint: the table store fallocates it, so the pages are real) and
 * filled with 60 KiB values up to nearly its size (the data must be there for
 * the claim to mean anything), plus one small entry, "probe" = 42.  The
 * creating client then closes: the daemon becomes heir.  Each repetition
 * forks a fresh process, which stands for the restarted client, and times,
 * from its first instruction: connect + hello, new_table (the daemon's work,
 * the fd passing and the attach with its validation), and a lookup of probe
 * (the first touch of the mapping).  The child then exits without closing,
 * as a crash would, and the parent waits until the daemon shows the table
 * orphaned again before the next repetition.  All the tables exist at once
 * and the sizes take turns, repetition by repetition, so that a change of
 * load on the machine does not land on one size only.
 *
 * 1 GiB needs that much free in /dev/shm (and memory): when statvfs says
 * there is not, the largest size is halved until it fits, and the row says
 * so.
 *
 * Output: result rows (benchutil.h) on stdout; progress on stderr.
 * Exit status: 0, 1 a step failed, 64 usage error. */
#include "benchutil.h"
#include "etsmgr.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#define RA_EX_USAGE 64
#define RA_VALUE_BYTES (60u * 1024u)

static const char *ra_dir, *ra_instance;

static void ra_fail(const char *what, const char *detail)
{
    fprintf(stderr, "reattach: %s: %s\n", what, detail);
    exit(1);
}

static etsmgr_client *ra_connect(void)
{
    etsmgr_client *c;
    char msg[256];
    if (etsmgr_connect(ra_dir, ra_instance, &c, msg, sizeof msg) != ETSMGR_OK)
        ra_fail("cannot connect to etsmgrd", msg);
    return c;
}

static void ra_size_label(uint64_t size, char *buf, size_t len)
{
    if (size >= (1ull << 30) && size % (1ull << 30) == 0)
        snprintf(buf, len, "%" PRIu64 " GiB", size >> 30);
    else if (size >= (1ull << 20) && size % (1ull << 20) == 0)
        snprintf(buf, len, "%" PRIu64 " MiB", size >> 20);
    else if (size >= 1024 && size % 1024 == 0)
        snprintf(buf, len, "%" PRIu64 " KiB", size >> 10);
    else
        snprintf(buf, len, "%" PRIu64 " bytes", size);
}

/* Waits until the daemon shows name orphaned (its last owner is gone). */
static void ra_wait_orphaned(etsmgr_client *obs, const char *name)
{
    double t0 = bu_now();
    for (;;) {
        etsmgr_info *info;
        int r = etsmgr_info_get(obs, &info);
        if (r)
            ra_fail("info", etsmgr_client_message(obs));
        int orphaned = 0;
        for (size_t i = 0; i < info->ntables; i++)
            if (strcmp(info->tables[i].name, name) == 0)
                orphaned = !info->tables[i].owned;
        etsmgr_info_free(info);
        if (orphaned)
            return;
        if (bu_now() - t0 > 10)
            ra_fail(name, "not orphaned 10 s after its owner exited");
        bu_sleep_ms(0.5);
    }
}

/* The restarted client: fills t[0..3) with the times of connect, new_table
 * and the first lookup, in ms. */
static void ra_child(const char *name, int wfd)
{
    double t[3], t0 = bu_now();
    etsmgr_client *c = ra_connect();
    double t1 = bu_now();
    etsmgr_table *tab;
    etsmgr_grant g;
    int r = etsmgr_new_table(c, name, NULL, NULL, &tab, &g);
    if (r)
        ra_fail("new_table in the restarted client", etsmgr_client_message(c));
    double t2 = bu_now();
    etsmgr_value v;
    r = etsmgr_table_lookup(tab, "probe", 5, &v, NULL, 0);
    double t3 = bu_now();
    if (r || v.type != ETSMGR_INT || v.i != 42 || g.created)
        ra_fail(name, "the restarted client did not get its data back intact");
    t[0] = (t1 - t0) * 1e3;
    t[1] = (t2 - t1) * 1e3;
    t[2] = (t3 - t2) * 1e3;
    if (write(wfd, t, sizeof t) != (ssize_t)sizeof t)
        ra_fail("write to the parent", strerror(errno));
    _exit(0); /* no close: the kernel closes the connection, as after a crash */
}

/* One table of the run. */
typedef struct ra_tab {
    uint64_t size;
    char label[32], name[64];
    etsmgr_table_info info;
    double *tot, *conn, *nt, *lk;
} ra_tab;

/* Creates x's table through etsmgrd and fills it; the daemon is left heir. */
static void ra_fill(ra_tab *x)
{
    ra_size_label(x->size, x->label, sizeof x->label);
    snprintf(x->name, sizeof x->name, "bench-reattach-%" PRIu64, x->size);
    etsmgr_client *owner = ra_connect();
    etsmgr_table *t;
    etsmgr_table_opts o = { .size_hint = x->size };
    etsmgr_grant g;
    if (etsmgr_new_table(owner, x->name, &o, NULL, &t, &g))
        ra_fail("new_table", etsmgr_client_message(owner));
    if (!g.created)
        ra_fail(x->name, "a table of that name was left over by an earlier run; remove it first");
    etsmgr_value probe = { .type = ETSMGR_INT, .i = 42 };
    if (etsmgr_table_insert(t, "probe", 5, &probe))
        ra_fail(x->name, "insert of probe failed");
    char *val = malloc(RA_VALUE_BYTES);
    if (!val)
        ra_fail("malloc", strerror(ENOMEM));
    double f0 = bu_now();
    for (uint32_t i = 0;; i++) {
        etsmgr_table_info_get(t, &x->info);
        if (x->info.bytes_used + 2u * RA_VALUE_BYTES + 4096u > x->info.bytes_total)
            break; /* the next one could make it grow */
        char key[16];
        int kl = snprintf(key, sizeof key, "v%08" PRIu32, i);
        memset(val, (int)(i & 0xff), RA_VALUE_BYTES);
        etsmgr_value v = { .type = ETSMGR_BYTES, .data = val, .len = RA_VALUE_BYTES };
        int r = etsmgr_table_insert(t, key, (size_t)kl, &v);
        if (r)
            ra_fail("filling the table", etsmgr_strerror(r));
    }
    free(val);
    etsmgr_table_info_get(t, &x->info);
    fprintf(stderr, "reattach: %s table: %" PRIu64 " entries, %" PRIu64 " bytes used of %" PRIu64
                    " (filled in %.2f s)\n",
            x->label, x->info.entries, x->info.bytes_used, x->info.bytes_total, bu_now() - f0);
    etsmgr_client_close(owner); /* the daemon is heir now */
}

/* One restarted client for x's table: repetition i. */
static void ra_once(ra_tab *x, int i, etsmgr_client *obs)
{
    int p[2];
    if (pipe(p) < 0)
        ra_fail("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        ra_fail("fork", strerror(errno));
    if (pid == 0) {
        close(p[0]);
        ra_child(x->name, p[1]);
    }
    close(p[1]);
    double tt[3];
    ssize_t n = read(p[0], tt, sizeof tt);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    if (n != (ssize_t)sizeof tt || !WIFEXITED(st) || WEXITSTATUS(st))
        ra_fail(x->name, "the restarted client failed (see above)");
    x->conn[i] = tt[0];
    x->nt[i] = tt[1];
    x->lk[i] = tt[2];
    x->tot[i] = tt[0] + tt[1] + tt[2];
    ra_wait_orphaned(obs, x->name);
}

static void ra_row(ra_tab *x, int reps, const char *ref, const char *target, const char *note)
{
    char rowname[200], small[160];
    snprintf(rowname, sizeof rowname, "reattach a %s table, median", x->label);
    double med = bu_percentile(x->tot, (size_t)reps, 50);
    cJSON *row = bu_row(rowname, med, "ms", ref, -1);
    cJSON_AddNumberToObject(row, "p99", bu_percentile(x->tot, (size_t)reps, 99));
    cJSON_AddNumberToObject(row, "connect_ms", bu_percentile(x->conn, (size_t)reps, 50));
    cJSON_AddNumberToObject(row, "new_table_ms", bu_percentile(x->nt, (size_t)reps, 50));
    cJSON_AddNumberToObject(row, "first_lookup_ms", bu_percentile(x->lk, (size_t)reps, 50));
    cJSON_AddNumberToObject(row, "samples", reps);
    cJSON_AddNumberToObject(row, "bytes_total", (double)x->info.bytes_total);
    cJSON_AddNumberToObject(row, "entries", (double)x->info.entries);
    if (target)
        cJSON_AddStringToObject(row, "target", target);
    if (!note && x->info.bytes_total != x->size) {
        snprintf(small, sizeof small, "the object is %" PRIu64 " bytes: the smallest table the store makes",
                 x->info.bytes_total);
        note = small;
    }
    if (note)
        cJSON_AddStringToObject(row, "note", note);
    bu_row_print(row);
}

static const char ra_usage[] =
    "Usage: reattach [--runtime-dir DIR] [--instance NAME] [--reps N] [--max-size BYTES]\n"
    "Time a restarted client getting back a table of 4 KiB, 1 MiB, 64 MiB and\n"
    "1 GiB (or --max-size) from a running etsmgrd; result rows (JSON) on stdout.\n"
    "Exit status: 0 done, 1 a step failed, 64 usage error.\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "runtime-dir", required_argument, NULL, 'd' }, { "instance", required_argument, NULL, 'i' },
        { "reps", required_argument, NULL, 'r' },        { "max-size", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },              { NULL, 0, NULL, 0 },
    };
    int reps = 20, o;
    uint64_t max = 1ull << 30;
    while ((o = getopt_long(argc, argv, "d:i:r:m:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': ra_dir = optarg; break;
        case 'i': ra_instance = optarg; break;
        case 'r': reps = atoi(optarg); break;
        case 'm': max = strtoull(optarg, NULL, 0); break;
        case 'h': fputs(ra_usage, stdout); return 0;
        default: fputs(ra_usage, stderr); return RA_EX_USAGE;
        }
    }
    if (reps < 1 || max < 4096 || optind < argc) {
        fputs(ra_usage, stderr);
        return RA_EX_USAGE;
    }
    char note[256] = "";
    /* all the tables exist at once: room for the largest and the others */
    struct statvfs sv;
    if (statvfs("/dev/shm", &sv) < 0)
        ra_fail("statvfs /dev/shm", strerror(errno));
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize, want = max;
    while (max > (1ull << 20) && max + max / 4 + (80ull << 20) > avail)
        max /= 2;
    if (max != want) {
        char a[32], b[32];
        ra_size_label(want, a, sizeof a);
        ra_size_label(max, b, sizeof b);
        snprintf(note, sizeof note, "sized down from %s: /dev/shm has %" PRIu64 " MiB free", a, avail >> 20);
        fprintf(stderr, "reattach: %s; the largest table is %s\n", note, b);
    }
    const uint64_t sizes[] = { 4096, 1ull << 20, 64ull << 20, max };
    ra_tab tabs[4];
    int nt = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t sz = sizes[i] < max ? sizes[i] : max;
        if (nt > 0 && sz <= tabs[nt - 1].size)
            continue; /* sized down onto a smaller one */
        ra_tab *x = &tabs[nt++];
        memset(x, 0, sizeof *x);
        x->size = sz;
        x->tot = calloc((size_t)reps, sizeof(double));
        x->conn = calloc((size_t)reps, sizeof(double));
        x->nt = calloc((size_t)reps, sizeof(double));
        x->lk = calloc((size_t)reps, sizeof(double));
        if (!x->tot || !x->conn || !x->nt || !x->lk)
            ra_fail("calloc", strerror(ENOMEM));
        ra_fill(x);
    }
    /* the sizes take turns, so that a change of load hits them all alike */
    etsmgr_client *obs = ra_connect();
    for (int x = 0; x < nt; x++)
        ra_wait_orphaned(obs, tabs[x].name);
    for (int i = 0; i < reps; i++)
        for (int x = 0; x < nt; x++)
            ra_once(&tabs[x], i, obs);
    char ref[200];
    snprintf(ref, sizeof ref, "reattach a %s table, median", tabs[0].label);
    for (int x = 0; x < nt; x++) {
        ra_row(&tabs[x], reps, x ? ref : NULL, x == nt - 1 && x > 0 ? "<= 2" : NULL,
               x == nt - 1 && note[0] ? note : NULL);
        /* remove it: take it back, then delete with unlink */
        etsmgr_table *mine;
        if (etsmgr_new_table(obs, tabs[x].name, NULL, NULL, &mine, NULL) || etsmgr_del_table(obs, mine, 1))
            fprintf(stderr, "reattach: could not remove table %s: %s\n", tabs[x].name, etsmgr_client_message(obs));
        free(tabs[x].tot);
        free(tabs[x].conn);
        free(tabs[x].nt);
        free(tabs[x].lk);
    }
    etsmgr_client_close(obs);
    return 0;
}

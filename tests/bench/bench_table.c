/* SPDX-License-Identifier: Apache-2.0 */
/* bench_table.c: operations per second of the table store, next to the
 * machine's limit measured in the same run: a bare atomic_fetch_add on a
 * MAP_SHARED mapping (what any counter shared between processes costs at
 * the least).  Two-process rows fork two workers on the same table (and the
 * same key for update_counter) and count their total.  Last, the table's
 * size at 1,000,000 entries with 8-byte keys and integer values.
 *
 * The "ordered_set" rows do the same on an ETSMGR_ORDERED_SET table (issue
 * 15): insert of 1,000,000 keys in random order, random lookups, an
 * in-order walk (foreach) of all of them, the bytes per entry, and walks
 * of 100 keys from a random key in tables of 10,000, 1,000,000 and
 * 10,000,000 entries (the last is the 1M table grown in place), and in a
 * table of 10,000,000 keys inserted in ascending order (time-ordered keys:
 * timers, log offsets), with the ratios of their times.  The range rows
 * take turns in RANGE_ROUNDS rounds and each ratio is the median of the
 * rounds' own.  The 10M tables take about 1.3 GB of /dev/shm for a minute.
 *
 * The "readers:" rows are about lock-free reads (docs/design.md, "Readers
 * without locks"): lookups in 2 processes against 1 (how they scale, with
 * no lock and no shared write between them), and readers while another
 * process runs update_counter in a loop, against the same readers alone.
 *
 *   build/tests/bench/bench_table [seconds-per-row [ordered]]     (make bench-table)
 *
 * "ordered": the ordered_set rows only (make bench-table BENCH_ONLY=ordered).
 *
 * Not a test: numbers depend on the machine and its load. */
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"
#include "table_int.h" /* the mapping, for the workers' warm-up */

static double row_secs = 1.0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct shared {
    atomic_int go;
    atomic_int ready;
    atomic_int stop_bg; /* the background writer's stop */
    _Alignas(64) atomic_uint_fast64_t ops[2];
    double cpu[2]; /* each worker's CPU seconds */
    _Alignas(64) atomic_uint_fast64_t ref;
};
static struct shared *sh;
static etsmgr_table *tab;
static char shm_name[64];

typedef uint64_t (*work_fn)(int who, double secs);

/* The ordered rows' tables: several are open at once (the range rows take
 * turns on them), so each keeps its own shm name, and die() removes them
 * all. */
#define ORD_TABLES 4
static char ord_names[ORD_TABLES][64];

static void ord_unlink_all(void)
{
    for (int i = 0; i < ORD_TABLES; i++)
        if (ord_names[i][0]) tbl_unlink(ord_names[i]), ord_names[i][0] = 0;
}

static void die(const char *what, int r)
{
    fprintf(stderr, "bench_table: %s: %s\n", what, etsmgr_strerror(r));
    tbl_unlink(shm_name);
    ord_unlink_all();
    exit(1);
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The last run's operations per CPU-second of its workers: what a worker
 * does with a core of its own, whatever else the machine runs (a loaded
 * machine lowers the per-second figures, not this one; contention between
 * the workers, a lock or a cache line they both write, does). */
static double cpu_rate;

/* A forked worker reads a byte of every page of the table's mapping before
 * its row starts, so that the row measures a process that has the table
 * mapped already: its owner, which built it, or ETS's process.  A new
 * process's first touch of a page is a page fault, and on a VM whose
 * hypervisor fills its own page tables lazily (a PVM guest) a fill of
 * those as well, about 5 us each: at 10M entries 134,000 pages, which made
 * half of a 1-second range row's time (docs/performance.md, "First touches
 * in a fresh process"). */
static void warm_mapping(void)
{
    if (!tab) return;
    const volatile char *p = (const volatile char *)tab->base;
    for (uint64_t off = 0; off < tab->limit; off += 4096) (void)p[off]; /* volatile: each read happens */
}

/* Run fn in nproc forked processes at once; total ops per second. */
static double run(work_fn fn, int nproc)
{
    atomic_store(&sh->go, 0);
    atomic_store(&sh->ready, 0);
    pid_t pids[2];
    for (int i = 0; i < nproc; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("bench_table: fork");
            exit(1);
        }
        if (pids[i] == 0) {
            warm_mapping();
            atomic_fetch_add(&sh->ready, 1);
            while (!atomic_load(&sh->go)) {
            }
            double c0 = cpu_now();
            atomic_store(&sh->ops[i], fn(i, row_secs));
            sh->cpu[i] = cpu_now() - c0;
            _exit(0);
        }
    }
    while (atomic_load(&sh->ready) < nproc) {
    }
    double t0 = now();
    atomic_store(&sh->go, 1);
    uint64_t total = 0;
    double cpu = 0;
    for (int i = 0; i < nproc; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) {
            fprintf(stderr, "bench_table: worker failed\n");
            exit(1);
        }
        total += atomic_load(&sh->ops[i]);
        cpu += sh->cpu[i];
    }
    cpu_rate = cpu > 0 ? (double)total / cpu : 0;
    return (double)total / (now() - t0);
}

#define BATCH 4096

static uint64_t w_ref(int who, double secs)
{
    (void)who;
    uint64_t n = 0;
    double end = now() + secs;
    do {
        for (int i = 0; i < BATCH; i++) atomic_fetch_add_explicit(&sh->ref, 1, memory_order_seq_cst);
        n += BATCH;
    } while (now() < end);
    return n;
}

static uint64_t w_counter(int who, double secs)
{
    (void)who;
    uint64_t n = 0;
    int64_t v;
    double end = now() + secs;
    do {
        for (int i = 0; i < BATCH; i++) {
            int r = etsmgr_table_update_counter(tab, "counter!", 8, 1, 0, &v);
            if (r) die("update_counter", r);
        }
        n += BATCH;
    } while (now() < end);
    return n;
}

/* The background writer of the "readers with a writer" rows: update_counter
 * in a loop on its own key until told to stop. */
static pid_t bg_writer(void)
{
    atomic_store(&sh->stop_bg, 0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_table: fork");
        exit(1);
    }
    if (pid == 0) {
        int64_t v;
        while (!atomic_load_explicit(&sh->stop_bg, memory_order_relaxed))
            for (int i = 0; i < 256; i++) {
                int r = etsmgr_table_update_counter(tab, "writer!!", 8, 1, 0, &v);
                if (r) die("update_counter", r);
            }
        _exit(0);
    }
    return pid;
}

static void bg_stop(pid_t pid)
{
    atomic_store(&sh->stop_bg, 1);
    int st;
    waitpid(pid, &st, 0);
}

#define NKEYS 1000000u

/* The set rows' keys: i times an odd constant (distinct; in hash order
 * any keys are random).  The ordered rows' keys must be random in key
 * (memcmp) order too, where a product's low byte, its first, depends only
 * on i mod 256: they go through splitmix64's finalizer, a bijection. */
static bool mixed_keys;
static uint64_t key_of(uint64_t i)
{
    return mixed_keys ? bu_mixed_key(i) : i * 0x9e3779b97f4a7c15ull;
}

static uint64_t ins_next[2];
static uint64_t w_insert(int who, double secs)
{
    uint64_t n = 0, i = ins_next[who];
    double end = now() + secs;
    do {
        for (int b = 0; b < BATCH; b++, i += 2) {
            uint64_t k = key_of(i + 10 * NKEYS + (uint64_t)who);
            etsmgr_value v = {.type = ETSMGR_INT, .i = (int64_t)i};
            int r = etsmgr_table_insert(tab, &k, 8, &v);
            if (r) die("insert", r);
        }
        n += BATCH;
    } while (now() < end);
    return n;
}

static uint64_t lookup_keys = NKEYS;
static uint64_t w_lookup(int who, double secs)
{
    uint64_t n = 0, x = 88172645463325252ull + (uint64_t)who;
    double end = now() + secs;
    do {
        for (int b = 0; b < BATCH; b++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t k = key_of(x % lookup_keys);
            etsmgr_value v;
            int r = etsmgr_table_lookup(tab, &k, 8, &v, NULL, 0);
            if (r) die("lookup", r);
        }
        n += BATCH;
    } while (now() < end);
    return n;
}

static int walk_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)key, (void)klen, (void)v;
    ++*(uint64_t *)arg;
    return 0;
}

/* In-order walks of the whole table, counting entries. */
static uint64_t w_walk(int who, double secs)
{
    (void)who;
    uint64_t n = 0;
    double end = now() + secs;
    do {
        uint64_t before = n;
        int r = etsmgr_table_foreach(tab, walk_cb, &n);
        if (r) die("foreach", r);
        if (n - before != lookup_keys) die("foreach (entries missed)", ETSMGR_ECORRUPT);
    } while (now() < end);
    return n;
}

#define RANGE_N 100
static int range_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)key, (void)klen, (void)v;
    return ++*(uint64_t *)arg % RANGE_N == 0; /* stop after RANGE_N */
}

/* Walks of RANGE_N keys from a random key; keys walked counted. */
static uint64_t w_range(int who, double secs)
{
    uint64_t n = 0, seen = 0, x = 88172645463325252ull + (uint64_t)who;
    double end = now() + secs;
    do {
        for (int b = 0; b < 64; b++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t before = seen;
            int r = etsmgr_table_foreach_range(tab, &x, 8, NULL, 0, range_cb, &seen);
            if (r < 0) die("foreach_range", r);
            if (seen - before < RANGE_N) seen = before + RANGE_N; /* ran off the end: rare */
        }
        n += 64 * RANGE_N;
    } while (now() < end);
    return n;
}

static void row(const char *name, double ops, double ref)
{
    printf("%-36s %8.2f M/s   ref %8.2f M/s   ratio %.2f   (%.2f M per CPU-s)\n", name, ops / 1e6, ref / 1e6,
           ops / ref, cpu_rate / 1e6);
    fflush(stdout);
}

/* A ratio of two rows of this run, with the target: on the wall
 * clock, and from the rows' rates per CPU-second (what the ratio would be
 * with a free core for every process; on a loaded machine the wall-clock
 * one mostly measures the load).  cpus_a/cpus_b: processes of each row. */
static void fill_table(uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++) {
        uint64_t k = key_of(i);
        etsmgr_value val = {.type = ETSMGR_INT, .i = (int64_t)i};
        int r = etsmgr_table_insert(tab, &k, 8, &val);
        if (r) die("insert", r);
    }
}

static void ratio_row(const char *name, double a, double ca, int cpus_a, double b, double cb, int cpus_b,
                      const char *target)
{
    printf("%-36s %8.2fx wall   %.2fx per free core   (target %s)\n", name, a / b,
           (ca * cpus_a) / (cb * cpus_b), target);
    fflush(stdout);
}

/* Lookups of nproc readers with the background writer running. */
static double run_with_writer(int nproc)
{
    pid_t w = bg_writer();
    double ops = run(w_lookup, nproc);
    bg_stop(w);
    return ops;
}

static etsmgr_table *new_ordered(const char *name)
{
    snprintf(shm_name, sizeof shm_name, "/bench%d%s.tbl", (int)getpid(), name);
    for (int i = 0; i < ORD_TABLES; i++)
        if (!ord_names[i][0]) {
            snprintf(ord_names[i], sizeof ord_names[i], "%s", shm_name);
            break;
        }
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t;
    int r = tbl_create(shm_name, name, &o, &t);
    if (r) die("create (ordered)", r);
    return t;
}

static void verify_drop(etsmgr_table *t)
{
    char why[200];
    int r = etsmgr_table_verify(t, why, sizeof why);
    if (r) {
        fprintf(stderr, "bench_table: verify (ordered): %s: %s\n", etsmgr_strerror(r), why);
        ord_unlink_all();
        exit(1);
    }
    etsmgr_table_close(t);
}

/* Range rows in rounds: each round walks every table once (a forked worker
 * each, row_secs long), in turns, and a ratio is the median of the rounds'
 * own ratios.  One row of each table, a minute apart, let the machine's
 * load of that minute decide: the 10K row alone moved between 26 and 46 M
 * keys per CPU-second from one run to the next, and with it 10M / 10K
 * between 1.6x and 3.2x for the same code (docs/performance.md, "The 10M
 * range, a sixth pass"). */
#define RANGE_ROUNDS 5
struct range_row {
    const char *name;
    etsmgr_table *t;
    double rate[RANGE_ROUNDS], cpu[RANGE_ROUNDS];
};

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++) /* n is tiny: insertion sort */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1], v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void range_rounds(struct range_row *rows, int n, double ref1)
{
    for (int r = 0; r < RANGE_ROUNDS; r++)
        for (int i = 0; i < n; i++) {
            tab = rows[i].t;
            rows[i].rate[r] = run(w_range, 1);
            rows[i].cpu[r] = cpu_rate;
        }
    tab = NULL;
    for (int i = 0; i < n; i++) {
        double w[RANGE_ROUNDS], c[RANGE_ROUNDS];
        memcpy(w, rows[i].rate, sizeof w);
        memcpy(c, rows[i].cpu, sizeof c);
        double mw = median(w, RANGE_ROUNDS);
        cpu_rate = median(c, RANGE_ROUNDS);
        row(rows[i].name, mw, ref1);
    }
}

/* Row i's time over row 0's (the small table), per round; the median. */
static void range_ratio(const char *name, const struct range_row *rows, int i)
{
    double w[RANGE_ROUNDS], c[RANGE_ROUNDS];
    char each[RANGE_ROUNDS * 8 + 1] = "";
    for (int r = 0; r < RANGE_ROUNDS; r++) {
        w[r] = rows[0].rate[r] / rows[i].rate[r];
        c[r] = rows[0].cpu[r] / rows[i].cpu[r];
        snprintf(each + strlen(each), sizeof each - strlen(each), " %.2fx", c[r]);
    }
    double mw = median(w, RANGE_ROUNDS), mc = median(c, RANGE_ROUNDS);
    printf("%-36s %8.2fx wall   %.2fx per free core   (target <= 2.0x)\n", name, mw, mc);
    printf("  each round, per free core:%s\n", each);
    fflush(stdout);
}

/* The ordered_set rows (issue 15), each on a fresh ordered table. */
static void bench_ordered(double ref1)
{
    mixed_keys = true;
    etsmgr_table *small = tab = new_ordered("o10k");
    fill_table(0, 10000);

    etsmgr_table *big = tab = new_ordered("o1m");
    double t0 = now(), c0 = cpu_now();
    fill_table(0, NKEYS);
    double fill = (double)NKEYS / (now() - t0);
    cpu_rate = (double)NKEYS / (cpu_now() - c0);
    row("ordered_set insert 1M random keys", fill, ref1);
    etsmgr_table_info info;
    etsmgr_table_info_get(tab, &info);
    lookup_keys = NKEYS;
    row("ordered_set lookup 1M keys at random, 1 proc", run(w_lookup, 1), ref1);
    row("ordered_set walk 1M entries in order (foreach)", run(w_walk, 1), ref1);
    printf("%-36s %8.1f bytes (object %llu bytes, %llu entries; used %.1f bytes/entry)\n",
           "ordered_set bytes per entry at 1,000,000", (double)info.bytes_total / (double)info.entries,
           (unsigned long long)info.bytes_total, (unsigned long long)info.entries,
           (double)info.bytes_used / (double)info.entries);
    struct range_row r1[2] = {{"ordered_set range walks of 100 keys, 10K entries", small, {0}, {0}},
                              {"ordered_set range walks of 100 keys, 1M entries", big, {0}, {0}}};
    range_rounds(r1, 2, ref1);
    range_ratio("ordered_set range time, 1M / 10K entries", r1, 1);

    /* the same table grown to 10M (built once: several seconds), and 10M
     * keys inserted in ascending order, as time-ordered keys are (timers,
     * log offsets): there each leaf's entries lie together in the heap */
    tab = big;
    fill_table(NKEYS, 10 * (uint64_t)NKEYS);
    etsmgr_table *asc = tab = new_ordered("o10ma");
    for (uint64_t i = 0; i < 10 * (uint64_t)NKEYS; i++) {
        /* big-endian, so that memcmp order is i's; spread over the key
         * space, as the random start keys are */
        uint64_t k = __builtin_bswap64(i * (UINT64_MAX / (10 * (uint64_t)NKEYS)));
        etsmgr_value val = {.type = ETSMGR_INT, .i = (int64_t)i};
        int r = etsmgr_table_insert(tab, &k, 8, &val);
        if (r) die("insert", r);
    }
    struct range_row r2[3] = {{"ordered_set range walks of 100 keys, 10K entries (10M rounds)", small, {0}, {0}},
                              {"ordered_set range walks of 100 keys, 10M entries", big, {0}, {0}},
                              {"ordered_set range walks of 100 keys, 10M ascending", asc, {0}, {0}}};
    range_rounds(r2, 3, ref1);
    range_ratio("ordered_set range time, 10M / 10K entries", r2, 1);
    range_ratio("ordered_set range time, 10M ascending / 10K", r2, 2);
    verify_drop(small);
    verify_drop(big);
    verify_drop(asc);
    ord_unlink_all();
}

int main(int argc, char **argv)
{
    if (argc > 1) row_secs = atof(argv[1]);
    if (row_secs <= 0) row_secs = 1.0;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("bench_table: mmap");
        return 1;
    }
    snprintf(shm_name, sizeof shm_name, "/bench%d.tbl", (int)getpid());
    etsmgr_table_opts o = {0};
    int r = tbl_create(shm_name, "bench", &o, &tab);
    if (r) die("create", r);
    int64_t v;
    etsmgr_table_update_counter(tab, "counter!", 8, 1, 0, &v);

    printf("table store benchmark: %.1f s per row; reference = bare atomic_fetch_add on a shared mapping\n",
           row_secs);
    double ref1 = run(w_ref, 1), ref2 = run(w_ref, 2);
    if (argc > 2 && strcmp(argv[2], "ordered") == 0) { /* the ordered_set rows alone */
        etsmgr_table_close(tab);
        tbl_unlink(shm_name);
        bench_ordered(ref1);
        return 0;
    }
    row("update_counter, 1 process", run(w_counter, 1), ref1);
    row("update_counter, 2 processes, 1 key", run(w_counter, 2), ref2);

    /* 1,000,000 small entries, from the default (small) table */
    double t0 = now(), c0 = cpu_now();
    fill_table(0, NKEYS);
    double fill = (double)NKEYS / (now() - t0);
    cpu_rate = (double)NKEYS / (cpu_now() - c0);
    etsmgr_table_info info;
    etsmgr_table_info_get(tab, &info);
    row("insert 1M new keys (with growth)", fill, ref1);
    double rnd1 = run(w_lookup, 1), c_rnd1 = cpu_rate;
    row("lookup 1M keys at random, 1 proc", rnd1, ref1);
    double rnd2 = run(w_lookup, 2), c_rnd2 = cpu_rate;
    row("lookup 1M keys at random, 2 procs", rnd2, ref2);
    ratio_row("readers: 1M random, 2 procs / 1", rnd2, c_rnd2, 2, rnd1, c_rnd1, 1, ">= 1.8x");
    /* with a writer: the per-CPU ratio leaves out that the writer takes a
     * core of the machine's two; what remains is the writer's effect on
     * the readers' caches and waits */
    double rw2 = run_with_writer(2), c_rw2 = cpu_rate;
    row("readers: 1M random, 2 + a writer", rw2, rnd2);
    ratio_row("readers: 2 with writer / without", rw2, c_rw2, 1, rnd2, c_rnd2, 1, ">= 0.8x");
    lookup_keys = 1000;
    double hot1 = run(w_lookup, 1), c_hot1 = cpu_rate;
    row("lookup 1,000 hot keys, 1 proc", hot1, ref1);
    double hot2 = run(w_lookup, 2), c_hot2 = cpu_rate;
    row("lookup 1,000 hot keys, 2 procs", hot2, ref2);
    ratio_row("readers: 1,000 hot, 2 procs / 1", hot2, c_hot2, 2, hot1, c_hot1, 1, ">= 1.8x");
    double hw2 = run_with_writer(2), c_hw2 = cpu_rate;
    row("readers: 1,000 hot, 2 + a writer", hw2, hot2);
    ratio_row("readers: hot, 2 with writer / without", hw2, c_hw2, 1, hot2, c_hot2, 1, ">= 0.8x");
    lookup_keys = NKEYS;
    double ins1 = run(w_insert, 1);
    row("insert new keys (1M+), 1 proc", ins1, ref1);
    ins_next[0] = 1u << 30;
    ins_next[1] = (1u << 30) + 1;
    row("insert new keys (1M+), 2 procs", run(w_insert, 2), ref2);
    printf("%-36s %8.1f bytes (object %llu bytes, %llu entries; used %.1f bytes/entry)\n",
           "bytes per entry at 1,000,000", (double)info.bytes_total / (double)info.entries,
           (unsigned long long)info.bytes_total, (unsigned long long)info.entries,
           (double)info.bytes_used / (double)info.entries);
    char why[200];
    if ((r = etsmgr_table_verify(tab, why, sizeof why)) != 0) {
        fprintf(stderr, "bench_table: verify: %s: %s\n", etsmgr_strerror(r), why);
        tbl_unlink(shm_name);
        return 1;
    }
    etsmgr_table_close(tab);
    tbl_unlink(shm_name);
    bench_ordered(ref1);
    return 0;
}

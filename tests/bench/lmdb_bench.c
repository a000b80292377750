/* SPDX-License-Identifier: Apache-2.0 */
/* lmdb_bench.c: bench_table's ordered_set rows done in LMDB, the best-known
 * crash-safe ordered store (a copy-on-write B+tree with the entries in its
 * leaves), in the same run, so that the ordered rows compare with LMDB
 * measured on this machine at this moment as they do with ETS.
 *
 *   build/tests/bench/lmdb_bench [SECONDS-PER-ROW]        (make bench-table)
 *
 * Prints one result row per line (JSON, benchutil.h's shape, named
 * "LMDB: ...", with per_cpu_second as ets_bench.escript's rows have) and
 * nothing else on stdout.  The environment is a file in /dev/shm, so that
 * both stores live in the same memory, with what makes LMDB cheapest
 * there and keeps it as crash-safe as our table against a process's death
 * (not the machine's, which tmpfs does not survive for either):
 * MDB_WRITEMAP, MDB_NOSYNC and MDB_NOMETASYNC.  Its lock file stays, so
 * readers register in LMDB's reader table as any reader must.
 *
 * The operations, each as our table does it:
 * - insert 1,000,000 of bench_table's random 8-byte keys (integer values,
 *   8 bytes here) one write transaction each: our insert is atomic and
 *   survives the inserter's crash on its own, which in LMDB takes a
 *   commit; and, for context, 1,000 to a transaction;
 * - lookups of those keys at random, each in a read transaction renewed
 *   for it (mdb_txn_renew; a reader that kept one snapshot would not see
 *   later writes, as ours does);
 * - in-order walks of all of it with a cursor (one transaction a walk);
 * - the bytes per entry: pages used (last page number + 1) times the page
 *   size, over the entries;
 * - walks of 100 keys from a random key (MDB_SET_RANGE, then MDB_NEXT; a
 *   transaction renewed per walk; each key and value copied out, as our
 *   walk's callback gets copies) in environments of 10,000, 1,000,000 and
 *   10,000,000 entries (the 1M one grown in place, as bench_table's) and
 *   10,000,000 inserted in ascending order, in RANGE_ROUNDS rounds taking
 *   turns, and the ratios of their times (medians of the rounds' own), as
 *   bench_table prints its own.
 * The 10M environments take about 2 GB of /dev/shm for their rows; every
 * file this makes is removed at exit, on failure too.
 *
 * Not a test: numbers depend on the machine and its load. */
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "benchutil.h"

#define NKEYS 1000000u
#define RANGE_ROUNDS 5
#define ENVS 3

static double row_secs = 1.0;

struct env {
    MDB_env *env;
    MDB_dbi dbi;
    char path[96];
};
static struct env envs[ENVS];

static void env_drop(struct env *e)
{
    if (e->env)
        mdb_env_close(e->env), e->env = NULL;
    if (e->path[0]) {
        char lock[128];
        snprintf(lock, sizeof lock, "%s-lock", e->path);
        unlink(e->path);
        unlink(lock);
        e->path[0] = 0;
    }
}

static void drop_all(void)
{
    for (int i = 0; i < ENVS; i++)
        env_drop(&envs[i]);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "lmdb_bench: %s: %s\n", what, mdb_strerror(rc));
    drop_all();
    exit(1);
}

static struct env *env_new(int slot, const char *name)
{
    struct env *e = &envs[slot];
    snprintf(e->path, sizeof e->path, "/dev/shm/lmdb_bench%d%s", (int)getpid(), name);
    int rc = mdb_env_create(&e->env);
    if (rc)
        die("mdb_env_create", rc);
    if ((rc = mdb_env_set_mapsize(e->env, (size_t)3 << 30)) != 0)
        die("mdb_env_set_mapsize", rc);
    rc = mdb_env_open(e->env, e->path,
                      MDB_NOSUBDIR | MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC | MDB_NORDAHEAD, 0600);
    if (rc)
        die(e->path, rc);
    MDB_txn *tx;
    if ((rc = mdb_txn_begin(e->env, NULL, 0, &tx)) != 0)
        die("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(tx, NULL, 0, &e->dbi)) != 0)
        die("mdb_dbi_open", rc);
    if ((rc = mdb_txn_commit(tx)) != 0)
        die("mdb_txn_commit", rc);
    return e;
}

/* keys key(i) for i in [from, to), per_txn to a write transaction */
static void fill(struct env *e, uint64_t from, uint64_t to, unsigned per_txn, uint64_t (*key)(uint64_t))
{
    MDB_txn *tx = NULL;
    int rc;
    for (uint64_t i = from; i < to; i++) {
        if (!tx && (rc = mdb_txn_begin(e->env, NULL, 0, &tx)) != 0)
            die("mdb_txn_begin", rc);
        uint64_t k = key(i), v = i;
        MDB_val K = {8, &k}, V = {8, &v};
        if ((rc = mdb_put(tx, e->dbi, &K, &V, 0)) != 0)
            die("mdb_put", rc);
        if ((i - from + 1) % per_txn == 0 || i + 1 == to) {
            if ((rc = mdb_txn_commit(tx)) != 0)
                die("mdb_txn_commit", rc);
            tx = NULL;
        }
    }
}

static void row(const char *name, double mops, double per_cpu)
{
    cJSON *r = bu_row(name, mops, "M ops/s", NULL, 0);
    cJSON_AddNumberToObject(r, "per_cpu_second", per_cpu);
    bu_row_print(r);
}

/* A reader's transaction, renewed for each read (LMDB's way to see the
 * latest commit without a new reader slot each time). */
struct reader {
    MDB_txn *tx;
    MDB_cursor *cur;
};

static struct reader reader_open(struct env *e)
{
    struct reader r;
    int rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &r.tx);
    if (rc)
        die("mdb_txn_begin (read)", rc);
    if ((rc = mdb_cursor_open(r.tx, e->dbi, &r.cur)) != 0)
        die("mdb_cursor_open", rc);
    mdb_txn_reset(r.tx);
    return r;
}

static void reader_renew(struct reader *r)
{
    int rc = mdb_txn_renew(r->tx);
    if (rc)
        die("mdb_txn_renew", rc);
    if ((rc = mdb_cursor_renew(r->tx, r->cur)) != 0)
        die("mdb_cursor_renew", rc);
}

static void reader_close(struct reader *r)
{
    mdb_cursor_close(r->cur);
    mdb_txn_abort(r->tx);
}

static volatile uint64_t sink;

static double lookups(struct env *e, double *per_cpu)
{
    struct reader r = reader_open(e);
    uint64_t n = 0, x = 88172645463325252ull;
    double t0 = bu_now(), c0 = bu_cpu_now(), end = t0 + row_secs;
    do {
        for (int b = 0; b < 1000; b++, n++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t k = bu_mixed_key(x % NKEYS), v;
            MDB_val K = {8, &k}, V;
            reader_renew(&r);
            int rc = mdb_get(r.tx, e->dbi, &K, &V);
            if (rc)
                die("mdb_get", rc);
            memcpy(&v, V.mv_data, 8);
            sink += v;
            mdb_txn_reset(r.tx);
        }
    } while (bu_now() < end);
    *per_cpu = (double)n / (bu_cpu_now() - c0) / 1e6;
    reader_close(&r);
    return (double)n / (bu_now() - t0) / 1e6;
}

static double walks(struct env *e, double *per_cpu)
{
    struct reader r = reader_open(e);
    uint64_t n = 0;
    double t0 = bu_now(), c0 = bu_cpu_now(), end = t0 + row_secs;
    do {
        reader_renew(&r);
        MDB_val K, V;
        uint64_t seen = 0;
        for (int rc = mdb_cursor_get(r.cur, &K, &V, MDB_FIRST); rc == 0;
             rc = mdb_cursor_get(r.cur, &K, &V, MDB_NEXT)) {
            unsigned char buf[16];
            memcpy(buf, K.mv_data, 8), memcpy(buf + 8, V.mv_data, 8);
            sink += buf[0];
            seen++;
        }
        mdb_txn_reset(r.tx);
        if (seen != NKEYS)
            die("the walk (entries missed)", MDB_CORRUPTED);
        n += seen;
    } while (bu_now() < end);
    *per_cpu = (double)n / (bu_cpu_now() - c0) / 1e6;
    reader_close(&r);
    return (double)n / (bu_now() - t0) / 1e6;
}

/* Walks of 100 keys from random keys for row_secs: keys per second on the
 * clock; *per_cpu per CPU-second. */
static double ranges(struct env *e, double *per_cpu)
{
    struct reader r = reader_open(e);
    uint64_t n = 0, x = 88172645463325252ull;
    double t0 = bu_now(), c0 = bu_cpu_now(), end = t0 + row_secs;
    do {
        for (int b = 0; b < 64; b++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t k = x;
            MDB_val K = {8, &k}, V;
            reader_renew(&r);
            int rc = mdb_cursor_get(r.cur, &K, &V, MDB_SET_RANGE);
            for (int seen = 0; rc == 0; rc = mdb_cursor_get(r.cur, &K, &V, MDB_NEXT)) {
                unsigned char buf[16];
                memcpy(buf, K.mv_data, 8), memcpy(buf + 8, V.mv_data, 8);
                sink += buf[0];
                n++;
                if (++seen == 100)
                    break;
            }
            if (rc && rc != MDB_NOTFOUND)
                die("mdb_cursor_get", rc);
            mdb_txn_reset(r.tx);
        }
    } while (bu_now() < end);
    *per_cpu = (double)n / (bu_cpu_now() - c0) / 1e6;
    reader_close(&r);
    return (double)n / (bu_now() - t0) / 1e6;
}

static double median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1], v[j - 1] = x;
        }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct range_row {
    const char *name;
    struct env *e;
    double rate[RANGE_ROUNDS], cpu[RANGE_ROUNDS];
};

static void range_rounds(struct range_row *rows, int n)
{
    for (int r = 0; r < RANGE_ROUNDS; r++)
        for (int i = 0; i < n; i++)
            rows[i].rate[r] = ranges(rows[i].e, &rows[i].cpu[r]);
    for (int i = 0; i < n; i++) {
        double w[RANGE_ROUNDS], c[RANGE_ROUNDS];
        memcpy(w, rows[i].rate, sizeof w);
        memcpy(c, rows[i].cpu, sizeof c);
        row(rows[i].name, median(w, RANGE_ROUNDS), median(c, RANGE_ROUNDS));
    }
}

/* Row i's time over row 0's per CPU-second, per round; the median, with
 * each round's in the row. */
static void range_ratio(const char *name, const struct range_row *rows, int i)
{
    double c[RANGE_ROUNDS];
    cJSON *each = cJSON_CreateArray();
    for (int r = 0; r < RANGE_ROUNDS; r++) {
        c[r] = rows[0].cpu[r] / rows[i].cpu[r];
        cJSON_AddItemToArray(each, cJSON_CreateNumber((double)(long)(c[r] * 100 + 0.5) / 100));
    }
    cJSON *o = bu_row(name, median(c, RANGE_ROUNDS), "x per CPU-second", NULL, 0);
    cJSON_AddItemToObject(o, "rounds", each);
    bu_row_print(o);
}

static void bytes_row(struct env *e)
{
    MDB_stat st;
    MDB_envinfo ei;
    int rc = mdb_env_stat(e->env, &st);
    if (rc || (rc = mdb_env_info(e->env, &ei)) != 0)
        die("mdb_env_stat", rc);
    double bytes = (double)(ei.me_last_pgno + 1) * st.ms_psize;
    cJSON *o = bu_row("LMDB: ordered_set bytes per entry, 1M small entries", bytes / (double)st.ms_entries,
                      "bytes", NULL, 0);
    cJSON_AddNumberToObject(o, "table_bytes", bytes);
    cJSON_AddNumberToObject(o, "entries", (double)st.ms_entries);
    cJSON_AddNumberToObject(o, "depth", st.ms_depth);
    bu_row_print(o);
}

/* 10M keys in ascending order, spread over the key space as the random
 * start keys are (big-endian, so that memcmp order is i's): bench_table's
 * "10M ascending" table */
static uint64_t asc_key(uint64_t i)
{
    return __builtin_bswap64(i * (UINT64_MAX / (10 * (uint64_t)NKEYS)));
}

int main(int argc, char **argv)
{
    if (argc > 1)
        row_secs = atof(argv[1]);
    if (row_secs <= 0)
        row_secs = 1.0;
    int major, minor, patch;
    mdb_version(&major, &minor, &patch);
    cJSON *note = cJSON_CreateObject();
    char text[160];
    snprintf(
        text, sizeof text,
        "LMDB %d.%d.%d, environments in /dev/shm (MDB_WRITEMAP | MDB_NOSYNC | MDB_NOMETASYNC), 8-byte keys "
        "and values",
        major, minor, patch);
    cJSON_AddStringToObject(note, "note", text);
    bu_row_print(note);

    struct env *small = env_new(0, "o10k");
    fill(small, 0, 10000, 1000, bu_mixed_key);

    struct env *big = env_new(1, "o1m");
    double t0 = bu_now(), c0 = bu_cpu_now();
    fill(big, 0, NKEYS, 1, bu_mixed_key);
    row("LMDB: ordered_set insert 1M random keys", NKEYS / (bu_now() - t0) / 1e6,
        NKEYS / (bu_cpu_now() - c0) / 1e6);
    bytes_row(big);
    double pc, mops = lookups(big, &pc);
    row("LMDB: ordered_set lookup 1M keys at random, 1 proc", mops, pc);
    mops = walks(big, &pc);
    row("LMDB: ordered_set walk 1M entries in order (cursor)", mops, pc);

    struct env *batch = env_new(2, "o1mb");
    t0 = bu_now(), c0 = bu_cpu_now();
    fill(batch, 0, NKEYS, 1000, bu_mixed_key);
    row("LMDB: ordered_set insert 1M random keys, 1,000 a transaction", NKEYS / (bu_now() - t0) / 1e6,
        NKEYS / (bu_cpu_now() - c0) / 1e6);
    env_drop(batch);

    struct range_row r1[2] = {{"LMDB: ordered_set range walks of 100 keys, 10K entries", small, {0}, {0}},
                              {"LMDB: ordered_set range walks of 100 keys, 1M entries", big, {0}, {0}}};
    range_rounds(r1, 2);
    range_ratio("LMDB: ordered_set range time, 1M / 10K entries", r1, 1);

    fill(big, NKEYS, 10 * (uint64_t)NKEYS, 1000, bu_mixed_key);
    struct env *asc = env_new(2, "o10ma");
    fill(asc, 0, 10 * (uint64_t)NKEYS, 1000, asc_key);
    struct range_row r2[3] = {
        {"LMDB: ordered_set range walks of 100 keys, 10K entries (10M rounds)", small, {0}, {0}},
        {"LMDB: ordered_set range walks of 100 keys, 10M entries", big, {0}, {0}},
        {"LMDB: ordered_set range walks of 100 keys, 10M ascending", asc, {0}, {0}}};
    range_rounds(r2, 3);
    range_ratio("LMDB: ordered_set range time, 10M / 10K entries", r2, 1);
    range_ratio("LMDB: ordered_set range time, 10M ascending / 10K", r2, 2);
    drop_all();
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_ordered_kill.c: an ordered_set writer SIGKILLed at random moments
 * while lock-free reader processes walk the table in key order.
 *
 * The writer inserts (integers and byte strings of varying length),
 * overwrites, deletes, counts (update_counter) and runs groups of up to 6
 * changes on the keys "k0".."k3999" (so "k1" < "k10" < "k100": prefixes
 * everywhere), except every 20th key, which is written once before the
 * readers start and never again: those 200 "stable" keys are present
 * throughout every walk.  Every value says which key and which version it
 * is (an integer: version << 16 | id; bytes: id, version, then filler bytes
 * that depend on both and a length that does too), and versions are never
 * reused (a counter in shared memory).  A version's bit is set in a shared
 * bitmap once its change is committed: by the writer after the call
 * returns, or, for the change it was killed in, by the parent after
 * recovery when the table holds it.
 *
 * Two readers, read-only handles of their own, repeat: a lookup; a whole
 * foreach; a foreach_range between random bounds (open or not); a chain of
 * next from first; a chain of prev from last.  They check that every walk
 * is strictly increasing (and a range stays in its bounds), that every key
 * is one the writer uses, that every value is whole and the key's own,
 * that each stable key is met exactly once in every whole walk (once in a
 * range that holds it), and note every version whose bit is not set yet
 * (committed a moment ago, or never: a torn read or a phantom); at the end
 * every noted version must have its bit.  After each kill the parent rolls
 * back at once (as etsmgrd would) and verifies the table.
 *
 * 2.5 s (and at least 10 kills) in make check; ETSMGR_READERS_SOAK_S sets
 * the seconds (make crash: CRASH_READERS_SECONDS). */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "table_int.h"
#include "test_table_util.h"

#define OK_NK 4000           /* key ids */
#define OK_STABLE_EVERY 20   /* id % 20 == 0: written once, before the readers */
#define OK_NSTABLE (OK_NK / OK_STABLE_EVERY)
#define OK_VERBITS (1u << 26) /* versions the bitmap holds (8 MiB, touched as used) */
#define OK_NR 2              /* reader processes */
#define OK_UNCONF 65536      /* versions a reader may note for the end */

struct ok_reader {
    atomic_int stop;
    int fail;
    char why[240];
    uint64_t lookups, walks[4], gave_up, unconf_n;
    uint64_t unconf[OK_UNCONF]; /* id << 48 | version */
};

struct ok_shared {
    atomic_ullong next_ver;   /* the next version to hand out */
    atomic_int npending;      /* the writer's change in progress: */
    int pend_id[ETSMGR_GROUP_MAX];
    uint64_t pend_ver[ETSMGR_GROUP_MAX]; /* 0: a delete */
    struct ok_reader r[OK_NR];
};

static struct ok_shared *S;
static _Atomic uint64_t *Bits; /* committed versions */

static void teardown(void) { tt_cleanup(); }

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static bool is_stable(int id) { return id % OK_STABLE_EVERY == 0; }

static size_t ok_key(char *buf, int id) { return (size_t)snprintf(buf, 8, "k%d", id); }

/* The id of key "k<digits>", or -1 when it is not one of ours. */
static int ok_id(const void *key, size_t klen)
{
    const char *k = key;
    if (klen < 2 || klen > 5 || k[0] != 'k' || (klen > 2 && k[1] == '0')) return -1;
    int id = 0;
    for (size_t i = 1; i < klen; i++) {
        if (k[i] < '0' || k[i] > '9') return -1;
        id = id * 10 + (k[i] - '0');
    }
    return id < OK_NK ? id : -1;
}

static int ok_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

/* A bytes value of (id, ver): its length, its filler byte. */
static size_t ok_blen(int id, uint64_t ver) { return 16 + (size_t)((ver * 7 + (uint64_t)id) % 240); }
static unsigned char ok_fill(int id, uint64_t ver) { return (unsigned char)(ver * 31 + (uint64_t)id * 17 + 1); }

static etsmgr_value ok_value(int id, uint64_t ver, bool as_int, unsigned char *buf)
{
    if (as_int) return tt_int((int64_t)(ver << 16 | (uint64_t)id));
    size_t n = ok_blen(id, ver);
    uint32_t id32 = (uint32_t)id;
    memcpy(buf, &id32, 4);
    memset(buf + 4, 0, 4);
    memcpy(buf + 8, &ver, 8);
    memset(buf + 16, ok_fill(id, ver), n - 16);
    return tt_bytes(buf, n);
}

/* The version of v if it is a whole value of key id, else 0. */
static uint64_t ok_decode(int id, const etsmgr_value *v)
{
    if (v->type == ETSMGR_INT) {
        uint64_t i = (uint64_t)v->i;
        return (int)(i & 0xffff) == id ? i >> 16 : 0;
    }
    if (v->type != ETSMGR_BYTES || v->len < 16) return 0;
    const unsigned char *p = v->data;
    uint32_t id32;
    uint64_t ver;
    memcpy(&id32, p, 4);
    memcpy(&ver, p + 8, 8);
    if (id32 != (uint32_t)id || ver == 0 || ver >= OK_VERBITS || v->len != ok_blen(id, ver)) return 0;
    unsigned char f = ok_fill(id, ver);
    for (size_t i = 16; i < v->len; i++)
        if (p[i] != f) return 0;
    return ver;
}

static bool bit_get(uint64_t ver) { return (atomic_load(&Bits[ver / 64]) >> (ver % 64)) & 1; }
static void bit_set(uint64_t ver) { atomic_fetch_or(&Bits[ver / 64], 1ull << (ver % 64)); }

/* ------------------------------------------------------------ the writer */

static uint64_t new_ver(void)
{
    uint64_t v = atomic_fetch_add(&S->next_ver, 1);
    if (v >= OK_VERBITS) pause(); /* out of versions: wait for the kill */
    return v;
}

static void writer(etsmgr_table *t, uint64_t seed)
{
    uint64_t rs = seed | 1;
    unsigned char buf[ETSMGR_GROUP_MAX][256];
    char key[ETSMGR_GROUP_MAX][8];
    for (;;) {
        unsigned op = (unsigned)(xs(&rs) % 100);
        int n = op >= 90 ? 2 + (int)(xs(&rs) % 5) : 1;
        int ids[ETSMGR_GROUP_MAX];
        for (int i = 0; i < n; i++) {
            int id;
            bool dup;
            do { /* a volatile id, distinct within a group */
                id = (int)(xs(&rs) % OK_NK);
                dup = is_stable(id);
                for (int j = 0; j < i; j++) dup |= ids[j] == id;
            } while (dup);
            ids[i] = id;
        }
        if (op >= 65 && op < 80) { /* update_counter: version += delta, in the integer encoding */
            size_t kl = ok_key(key[0], ids[0]);
            etsmgr_value cur;
            int r = etsmgr_table_lookup(t, key[0], kl, &cur, NULL, 0);
            if (r == 0 && cur.type == ETSMGR_INT) {
                uint64_t old = ok_decode(ids[0], &cur), ver = new_ver();
                if (old == 0) _exit(3);
                S->pend_id[0] = ids[0];
                S->pend_ver[0] = ver;
                atomic_store(&S->npending, 1);
                int64_t nv;
                if (etsmgr_table_update_counter(t, key[0], kl, (int64_t)((ver - old) << 16), 0, &nv) ||
                    (uint64_t)nv != (ver << 16 | (uint64_t)ids[0]))
                    _exit(4);
                bit_set(ver);
                atomic_store(&S->npending, 0);
                continue;
            }
            if (r == 0) op = 0; /* bytes: overwrite it instead */
        }
        /* the change's plan, in shared memory before it starts */
        bool del[ETSMGR_GROUP_MAX];
        for (int i = 0; i < n; i++) {
            del[i] = (op >= 40 && op < 65) || (n > 1 && xs(&rs) % 3 == 0);
            S->pend_id[i] = ids[i];
            S->pend_ver[i] = del[i] ? 0 : new_ver();
        }
        atomic_store(&S->npending, n);
        if (n > 1 && etsmgr_table_begin(t)) _exit(5);
        for (int i = 0; i < n; i++) {
            size_t kl = ok_key(key[i], ids[i]);
            if (del[i]) {
                int r = etsmgr_table_delete(t, key[i], kl);
                if (r && r != ETSMGR_ENOTFOUND) _exit(6);
            } else {
                etsmgr_value v = ok_value(ids[i], S->pend_ver[i], xs(&rs) % 4 == 0, buf[i]);
                if (etsmgr_table_insert(t, key[i], kl, &v)) _exit(7);
            }
        }
        if (n > 1 && etsmgr_table_commit(t)) _exit(8);
        for (int i = 0; i < n; i++)
            if (S->pend_ver[i]) bit_set(S->pend_ver[i]);
        atomic_store(&S->npending, 0);
    }
}

/* After a kill and the rollback: a change the writer was killed in after
 * its commit point is in the table; its versions are committed. */
static void resolve_pending(etsmgr_table *t)
{
    int n = atomic_load(&S->npending);
    for (int i = 0; i < n; i++) {
        if (!S->pend_ver[i]) continue;
        char key[8];
        unsigned char buf[512];
        etsmgr_value v;
        int r = etsmgr_table_lookup(t, key, ok_key(key, S->pend_id[i]), &v, buf, sizeof buf);
        if (r == 0 && ok_decode(S->pend_id[i], &v) == S->pend_ver[i]) bit_set(S->pend_ver[i]);
    }
    atomic_store(&S->npending, 0);
}

/* ------------------------------------------------------------ the readers */

static char StableKey[OK_NSTABLE][8];
static size_t StableLen[OK_NSTABLE];

static void rfail(struct ok_reader *r, const char *what, const void *key, size_t klen)
{
    if (r->fail++) return;
    snprintf(r->why, sizeof r->why, "%s (key \"%.*s\")", what, (int)klen, (const char *)key);
}

/* A version met: fine when committed; else noted, to be committed by the end. */
static void met(struct ok_reader *r, int id, uint64_t ver)
{
    if (bit_get(ver)) return;
    if (r->unconf_n < OK_UNCONF) r->unconf[r->unconf_n] = (uint64_t)id << 48 | ver;
    r->unconf_n++;
}

struct walk {
    struct ok_reader *r;
    char prev[8];
    size_t plen;
    const void *from, *to; /* the range's bounds, NULL: open */
    size_t flen, tlen;
    int stable_seen[OK_NSTABLE];
};

/* One key of a walk, in the order met; its id, or -1 after a failure. */
static int walk_key(struct walk *w, const void *key, size_t klen)
{
    int id = ok_id(key, klen);
    if (id < 0) {
        rfail(w->r, "a walk met a key nobody wrote", key, klen);
        return -1;
    }
    if (w->plen && ok_cmp(w->prev, w->plen, key, klen) >= 0) {
        rfail(w->r, "a walk went back or met a key twice", key, klen);
        return -1;
    }
    if ((w->from && ok_cmp(key, klen, w->from, w->flen) < 0) || (w->to && ok_cmp(key, klen, w->to, w->tlen) >= 0)) {
        rfail(w->r, "a range walk left its range", key, klen);
        return -1;
    }
    memcpy(w->prev, key, klen);
    w->plen = klen;
    if (is_stable(id)) w->stable_seen[id / OK_STABLE_EVERY]++;
    return id;
}

static int walk_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct walk *w = arg;
    int id = walk_key(w, key, klen);
    if (id < 0) return 1;
    uint64_t ver = ok_decode(id, v);
    if (!ver) {
        rfail(w->r, "a walk met a torn value or another key's", key, klen);
        return 1;
    }
    met(w->r, id, ver);
    return 0;
}

/* Every stable key inside the walk's bounds was met exactly once. */
static void walk_end(struct walk *w, const char *what)
{
    for (int s = 0; s < OK_NSTABLE; s++) {
        bool in = (!w->from || ok_cmp(StableKey[s], StableLen[s], w->from, w->flen) >= 0) &&
                  (!w->to || ok_cmp(StableKey[s], StableLen[s], w->to, w->tlen) < 0);
        if (w->stable_seen[s] != (in ? 1 : 0)) {
            char m[80];
            snprintf(m, sizeof m, "%s met a key present throughout %d times", what, w->stable_seen[s]);
            rfail(w->r, m, StableKey[s], StableLen[s]);
            return;
        }
    }
}

/* An error a walk may end with while a writer lies dead mid-change. */
static bool transient(int r) { return r == ETSMGR_EDEADWRITER || r == ETSMGR_ELOCKED; }

static void reader(const char *name, struct ok_reader *r, uint64_t seed)
{
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    etsmgr_table *t = NULL;
    if (fd < 0 || etsmgr_table_attach_fd(fd, &t) != 0) _exit(20);
    uint64_t rs = seed | 1;
    static unsigned char buf[ETSMGR_VALUE_MAX];
    for (uint64_t n = 0; !atomic_load(&r->stop) && !r->fail; n++) {
        char key[8], k2[8];
        int id = (int)(xs(&rs) % OK_NK);
        size_t kl = ok_key(key, id);
        etsmgr_value v;
        int rc = etsmgr_table_lookup(t, key, kl, &v, buf, sizeof buf);
        r->lookups++;
        if (rc == 0) {
            uint64_t ver = ok_decode(id, &v);
            if (!ver) rfail(r, "a lookup gave a torn value or another key's", key, kl);
            else met(r, id, ver);
        } else if (rc == ETSMGR_ENOTFOUND ? is_stable(id) : !transient(rc)) {
            rfail(r, rc == ETSMGR_ENOTFOUND ? "a key present throughout was not found" : "a lookup failed", key, kl);
        }
        if (n % 4) continue;
        struct walk w = {.r = r};
        int kind = (int)(n / 4 % 4);
        if (kind == 0) { /* the whole table */
            rc = etsmgr_table_foreach(t, walk_cb, &w);
        } else if (kind == 1) { /* a range, either end open one time in 8 */
            size_t l2 = ok_key(k2, (int)(xs(&rs) % OK_NK));
            if (ok_cmp(key, kl, k2, l2) > 0) {
                char tmp[8];
                memcpy(tmp, key, 8);
                memcpy(key, k2, 8);
                memcpy(k2, tmp, 8);
                size_t tl = kl;
                kl = l2;
                l2 = tl;
            }
            if (xs(&rs) % 8) w.from = key, w.flen = kl;
            if (xs(&rs) % 8) w.to = k2, w.tlen = l2;
            rc = etsmgr_table_foreach_range(t, w.from, w.flen, w.to, w.tlen, walk_cb, &w);
        } else { /* next from first, or prev from last: keys only */
            char cur[8];
            size_t cl;
            rc = kind == 2 ? etsmgr_table_first(t, cur, sizeof cur, &cl) : etsmgr_table_last(t, cur, sizeof cur, &cl);
            while (rc == 0) {
                if (kind == 3) { /* the walk_key checks, in the mirror */
                    if (w.plen && ok_cmp(cur, cl, w.prev, w.plen) >= 0) {
                        rfail(r, "a prev chain went forward or met a key twice", cur, cl);
                        break;
                    }
                    int cid = ok_id(cur, cl);
                    if (cid < 0) {
                        rfail(r, "a prev chain met a key nobody wrote", cur, cl);
                        break;
                    }
                    if (is_stable(cid)) w.stable_seen[cid / OK_STABLE_EVERY]++;
                    memcpy(w.prev, cur, cl);
                    w.plen = cl;
                } else if (walk_key(&w, cur, cl) < 0) {
                    break;
                }
                char nx[8];
                size_t nl;
                rc = kind == 2 ? etsmgr_table_next(t, cur, cl, nx, sizeof nx, &nl)
                               : etsmgr_table_prev(t, cur, cl, nx, sizeof nx, &nl);
                if (rc == 0) {
                    memcpy(cur, nx, nl);
                    cl = nl;
                }
            }
            if (rc == ETSMGR_ENOTFOUND) rc = 0; /* the end */
        }
        if (r->fail) break;
        if (rc == 0) {
            r->walks[kind]++;
            static const char *what[] = {"a foreach", "a foreach_range", "a next chain", "a prev chain"};
            walk_end(&w, what[kind]);
        } else if (transient(rc)) {
            r->gave_up++;
        } else {
            char m[80];
            snprintf(m, sizeof m, "walk %d failed: %s", kind, etsmgr_strerror(rc));
            rfail(r, m, "", 0);
        }
    }
    etsmgr_table_close(t);
    _exit(0);
}

/* ------------------------------------------------------------ the loop */

START_TEST(random_sigkill_ordered_readers)
{
    const char *name = tt_name();
    etsmgr_table_opts o = {.type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_create(name, "okill", &o, &t), 0);
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    Bits = mmap(NULL, OK_VERBITS / 8, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(S != MAP_FAILED && Bits != MAP_FAILED);
    atomic_store(&S->next_ver, 1);
    for (int s = 0; s < OK_NSTABLE; s++) {
        int id = s * OK_STABLE_EVERY;
        StableLen[s] = ok_key(StableKey[s], id);
        uint64_t ver = atomic_fetch_add(&S->next_ver, 1);
        unsigned char buf[256];
        etsmgr_value v = ok_value(id, ver, s % 2, buf);
        ck_assert_int_eq(etsmgr_table_insert(t, StableKey[s], StableLen[s], &v), 0);
        bit_set(ver);
    }
    pid_t rp[OK_NR];
    for (int i = 0; i < OK_NR; i++) {
        rp[i] = fork();
        ck_assert_int_ge(rp[i], 0);
        if (rp[i] == 0) reader(name, &S->r[i], 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1));
    }
    const char *soak = getenv("ETSMGR_READERS_SOAK_S");
    double secs = soak && atof(soak) > 0 ? atof(soak) : 2.5;
    uint64_t rs = 0x2545f4914f6cdd1dull;
    int rounds = 0;
    double end = mono() + secs;
    while (mono() < end || rounds < 10) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            writer(t, (uint64_t)rounds * 7919 + 11);
            _exit(0);
        }
        usleep((useconds_t)(xs(&rs) % 20000));
        kill(pid, SIGKILL);
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the writer failed: status %#x", st);
        ck_assert_int_eq(tbl_recover_now(t), 0); /* as etsmgrd would, at once */
        resolve_pending(t);
        tt_check(t); /* verify walks the skiplist: count, order, each key once */
        rounds++;
        bool failed = false;
        for (int i = 0; i < OK_NR; i++) failed |= S->r[i].fail != 0;
        if (failed) break;
    }
    for (int i = 0; i < OK_NR; i++) atomic_store(&S->r[i].stop, 1);
    for (int i = 0; i < OK_NR; i++) {
        int st;
        ck_assert_int_eq(waitpid(rp[i], &st, 0), rp[i]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader %d: status %#x", i, st);
    }
    uint64_t unconf = 0;
    for (int i = 0; i < OK_NR; i++) {
        struct ok_reader *r = &S->r[i];
        ck_assert_msg(!r->fail, "reader %d: %s", i, r->why);
        for (int k = 0; k < 4; k++)
            ck_assert_msg(r->walks[k] > 0, "reader %d finished no walk of kind %d (%llu lookups)", i, k,
                          (unsigned long long)r->lookups);
        ck_assert_msg(r->unconf_n <= OK_UNCONF, "reader %d: %llu versions to check, room for %d", i,
                      (unsigned long long)r->unconf_n, OK_UNCONF);
        for (uint64_t k = 0; k < r->unconf_n; k++) {
            uint64_t ver = r->unconf[k] & ((1ull << 48) - 1);
            ck_assert_msg(bit_get(ver), "reader %d met version %llu of k%llu, which was never committed", i,
                          (unsigned long long)ver, (unsigned long long)(r->unconf[k] >> 48));
        }
        unconf += r->unconf_n;
    }
    etsmgr_table_info info;
    ck_assert_int_eq(etsmgr_table_info_get(t, &info), 0);
    fprintf(stderr,
            "random_sigkill_ordered_readers: %d kills, %llu versions, %llu entries at the end; readers: "
            "%llu+%llu walks (%llu+%llu lookups), %llu+%llu walks cut by a dead writer, %llu versions met before "
            "their bit\n",
            rounds, (unsigned long long)atomic_load(&S->next_ver) - 1, (unsigned long long)info.entries,
            (unsigned long long)(S->r[0].walks[0] + S->r[0].walks[1] + S->r[0].walks[2] + S->r[0].walks[3]),
            (unsigned long long)(S->r[1].walks[0] + S->r[1].walks[1] + S->r[1].walks[2] + S->r[1].walks[3]),
            (unsigned long long)S->r[0].lookups, (unsigned long long)S->r[1].lookups,
            (unsigned long long)S->r[0].gave_up, (unsigned long long)S->r[1].gave_up, (unsigned long long)unconf);
    munmap(Bits, OK_VERBITS / 8);
    munmap(S, sizeof *S);
    etsmgr_table_close(t);
}
END_TEST

Suite *ordered_kill_suite(void)
{
    Suite *s = suite_create("ordered_kill");
    TCase *tc = tcase_create("kill_readers");
    tcase_add_checked_fixture(tc, NULL, teardown);
    const char *soak = getenv("ETSMGR_READERS_SOAK_S");
    tcase_set_timeout(tc, 90 + (soak ? atof(soak) : 0));
    tcase_add_test(tc, random_sigkill_ordered_readers);
    suite_add_tcase(s, tc);
    return s;
}

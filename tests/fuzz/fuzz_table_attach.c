/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_table_attach: a table whose bytes another process wrote, attached
 * and used.  Any process that can open a table's shm object can scribble
 * on it, so attach_fd must refuse what it cannot trust and every operation
 * on an attached table must stay inside the mapping (ASan sees every
 * access: the mapping is exactly the object, and the fuzzer's inputs set
 * the offsets the table code follows).
 *
 * Input byte 0 picks the object:
 *   raw      the remaining bytes are the whole object;
 *   patched  a real table (a generic one, an ordered_set whose B+tree has
 *            nodes of 3 slots so that 40 keys make a tree of several
 *            levels, or the counter etscounterd keeps, with request
 *            records: 200 numbered ones, expired, then 10 random-looking
 *            ones, so that the first count shrinks the region) with the
 *            remaining bytes applied as
 *            patches [3-byte offset][length][bytes], optionally cut short.
 * Patches never touch the pthread mutex: a scribbled lock word can make
 * every user wait forever (see docs/security.md); everything else is fair
 * game, the undo log included, so recovery from hostile undo records runs.
 *
 * Then: every read op (info, lookup, foreach touching each byte, verify,
 * the counter's check, an ordered table's first/last/next/prev/range),
 * then writes (insert, update_counter, delete, a
 * group), then verify again. */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "counter.h"
#include "fuzz_util.h"
#include "table_int.h"

#define NTMPL 3
static char *tmpl[NTMPL];
static size_t tmpl_len[NTMPL];

static void snapshot(etsmgr_table *t, int i)
{
    int fd = etsmgr_table_fd(t);
    tmpl_len[i] = (size_t)lseek(fd, 0, SEEK_END);
    tmpl[i] = malloc(tmpl_len[i]);
    if (!tmpl[i] || pread(fd, tmpl[i], tmpl_len[i], 0) != (ssize_t)tmpl_len[i])
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_limit_files();
    tbl_hash_seed_fixed = 0x5eed5eed5eed5eedull; /* the same index layouts when an input is replayed */
    char shm[80];
    etsmgr_table *t = NULL;
    /* a generic table: integers and byte strings, some deleted */
    snprintf(shm, sizeof shm, "/fz%dtab.t", (int)getpid());
    if (tbl_create(shm, "t", NULL, &t) < 0)
        abort();
    tbl_unlink(shm);
    for (int i = 0; i < 40; i++) {
        char k[16], v[64];
        int kl = snprintf(k, sizeof k, "key%d", i);
        memset(v, 'a' + i % 26, sizeof v);
        etsmgr_value val = i % 2 ? (etsmgr_value){.type = ETSMGR_INT, .i = i}
                                 : (etsmgr_value){.type = ETSMGR_BYTES, .data = v, .len = (size_t)i};
        if (etsmgr_table_insert(t, k, (size_t)kl, &val) < 0)
            abort();
        if (i % 7 == 0)
            etsmgr_table_delete(t, k, (size_t)kl);
    }
    snapshot(t, 0);
    etsmgr_table_close(t);
    /* the counter with request records, as etscounterd leaves it */
    snprintf(shm, sizeof shm, "/fz%dtab.etscounter", (int)getpid());
    if (tbl_create(shm, CTR_TABLE, NULL, &t) < 0)
        abort();
    tbl_unlink(shm);
    int64_t v;
    int dup;
    if (ctr_init(t, &v) < 0)
        abort();
    for (int i = 0; i < 200; i++) { /* a sender's numbered rids: prefix, big-endian counter */
        uint8_t rid[CTR_RID_LEN] = {0x5e, 0xed};
        rid[14] = (uint8_t)(i >> 8);
        rid[15] = (uint8_t)i;
        ctr_req q = {.rid = rid, .keep_until_ms = INT64_MAX / 4};
        if (ctr_count(t, &q, &v, &dup) < 0)
            abort();
    }
    for (int i = 0; i < 10; i++) {
        uint8_t rid[CTR_RID_LEN];
        memset(rid, i, sizeof rid);
        ctr_req q = {.rid = rid, .keep_until_ms = INT64_MAX / 4};
        if (ctr_count(t, &q, &v, &dup) < 0)
            abort();
    }
    /* the numbered ones expire (their keep time, by hand): the region is
     * then 8x what it keeps, which the first count that looks shrinks */
    uint64_t *reg = tbl_word(t, t->h->once_off);
    for (uint64_t p = reg[3]; p < reg[3] + 200; p++)
        reg[8 + 4 * (p & (reg[1] - 1)) + 3] = 1;
    snapshot(t, 1);
    etsmgr_table_close(t);
    /* an ordered_set: a B+tree of small nodes, some leaves emptied (gone) */
    snprintf(shm, sizeof shm, "/fz%dtab.o", (int)getpid());
    etsmgr_table_opts oo = {.type = ETSMGR_ORDERED_SET};
    tbl_ord_fill = 3;
    if (tbl_create(shm, "o", &oo, &t) < 0)
        abort();
    tbl_unlink(shm);
    for (int i = 0; i < 40; i++) {
        char k[16], b[32];
        int kl = snprintf(k, sizeof k, "key%d", i);
        memset(b, 'a' + i % 26, sizeof b);
        etsmgr_value val = i % 2 ? (etsmgr_value){.type = ETSMGR_INT, .i = i}
                                 : (etsmgr_value){.type = ETSMGR_BYTES, .data = b, .len = (size_t)i % 32};
        if (etsmgr_table_insert(t, k, (size_t)kl, &val) < 0)
            abort();
    }
    for (int i = 10; i < 16; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "key%d", i);
        if (etsmgr_table_delete(t, k, (size_t)kl) < 0)
            abort();
    }
    tbl_ord_fill = 0;
    snapshot(t, 2);
    etsmgr_table_close(t);
    return 0;
}

static volatile unsigned sink;

static int touch(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)arg;
    const unsigned char *k = key;
    for (size_t i = 0; i < klen; i++)
        sink += k[i];
    if (v->type == ETSMGR_BYTES)
        for (size_t i = 0; i < v->len; i++)
            sink += ((const unsigned char *)v->data)[i];
    return 0;
}

static void use_table(etsmgr_table *t, fz_in *in)
{
    etsmgr_table_info info;
    (void)etsmgr_table_info_get(t, &info);
    char why[256];
    (void)etsmgr_table_verify(t, why, sizeof why);
    static const char *keys[] = {"key1", "key2", "key39", "count", "nokey"};
    unsigned char buf[ETSMGR_VALUE_MAX];
    etsmgr_value out;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        (void)etsmgr_table_lookup(t, keys[i], strlen(keys[i]), &out, buf, sizeof buf);
    (void)etsmgr_table_foreach(t, touch, NULL);
    /* the ordered readers (EINVAL on a set) */
    char kb[ETSMGR_KEY_MAX];
    size_t kl;
    (void)etsmgr_table_first(t, kb, sizeof kb, &kl);
    (void)etsmgr_table_last(t, kb, sizeof kb, &kl);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        (void)etsmgr_table_next(t, keys[i], strlen(keys[i]), kb, sizeof kb, &kl);
        (void)etsmgr_table_prev(t, keys[i], strlen(keys[i]), kb, sizeof kb, &kl);
    }
    (void)etsmgr_table_foreach_range(t, "key2", 4, "key35", 5, touch, NULL);
    cJSON *data = cJSON_CreateObject();
    char erl[1024];
    (void)ctr_check(t, data, erl, sizeof erl, why, sizeof why);
    cJSON_Delete(data);

    /* writes */
    int64_t nv;
    etsmgr_value iv = {.type = ETSMGR_INT, .i = 7};
    etsmgr_value bv = {.type = ETSMGR_BYTES, .data = "hostile", .len = 7};
    (void)etsmgr_table_update_counter(t, "count", 5, 1, 0, &nv);
    /* the request-id records: a known rid, a new one (may rebuild them) */
    for (int i = 0; i < 3; i++) {
        etsmgr_once o = {.keep_until_ms = INT64_MAX / 4, .max_records = 100};
        memset(o.rid, i == 2 ? 0xee : i, sizeof o.rid);
        int dup;
        (void)etsmgr_table_update_counter_once(t, "count", 5, 1, &o, &nv, &dup);
    }
    (void)etsmgr_table_insert(t, "new", 3, &bv);
    (void)etsmgr_table_insert_new(t, "key3", 4, &iv);
    (void)etsmgr_table_delete(t, "key5", 4);
    if (etsmgr_table_begin(t) == ETSMGR_OK) {
        (void)etsmgr_table_insert(t, "g1", 2, &iv);
        (void)etsmgr_table_delete(t, "key9", 4);
        if (fz_u8(in) & 1)
            (void)etsmgr_table_abort(t);
        else
            (void)etsmgr_table_commit(t);
    }
    for (int i = 0; i < 20; i++) { /* may grow the table */
        char k[8];
        int kl = snprintf(k, sizeof k, "n%d", i);
        (void)etsmgr_table_insert(t, k, (size_t)kl, &bv);
    }
    (void)etsmgr_table_verify(t, why, sizeof why);
    (void)etsmgr_table_foreach(t, touch, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int before = fz_count_fds();
    fz_in in = {data + 1, size - 1};
    unsigned mode = data[0];
    int fd = memfd_create("table", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (mode % 4 == 0) {
        if (in.n && write(fd, in.p, in.n) != (ssize_t)in.n)
            abort();
    } else {
        int w = mode % 4 == 3 ? 1 : mode % 4 == 2 ? 2 : 0; /* 1: generic, 2: ordered, 3: counter */
        char *b = malloc(tmpl_len[w]);
        if (!b)
            abort();
        memcpy(b, tmpl[w], tmpl_len[w]);
        size_t lock_lo = offsetof(struct tbl_hdr, lock), lock_hi = lock_lo + sizeof(pthread_mutex_t);
        while (in.n >= 4) {
            size_t off = fz_u8(&in);
            off = off << 8 | fz_u8(&in);
            off = off << 8 | fz_u8(&in);
            off %= tmpl_len[w];
            size_t len = fz_u8(&in) % 17;
            const unsigned char *p = fz_take(&in, &len);
            for (size_t i = 0; i < len && off + i < tmpl_len[w]; i++)
                if (off + i < lock_lo || off + i >= lock_hi)
                    b[off + i] = (char)p[i];
        }
        size_t n = tmpl_len[w];
        if (mode & 0x80) /* cut short */
            n = n * ((mode >> 2) & 31) / 32;
        if (write(fd, b, n) != (ssize_t)n)
            abort();
        free(b);
    }
    etsmgr_table *t = NULL;
    if (etsmgr_table_attach_fd(fd, &t) == ETSMGR_OK) {
        use_table(t, &in);
        etsmgr_table_close(t);
    } else {
        close(fd);
    }
    fz_check_fds(before, "one input");
    return 0;
}

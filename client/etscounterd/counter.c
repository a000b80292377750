/* counter.c: exactly-once counting on top of the table store.
 *
 * A CLI that lost its reply (etscounterd was SIGKILLed after counting but
 * before answering) retries with the same request id; to answer that retry
 * without counting again, the increment and the note "rid -> new value" are
 * written in ONE atomic group (etsmgr_table_begin/commit): a SIGKILL inside
 * the group leaves neither, after the commit leaves both.
 *
 * Keys (user keys are printable, so a leading NUL byte is reserved for
 * bookkeeping and check hides every such entry):
 *   "count"               the counter (integer)
 *   "\0r" + 16-byte rid   the value that request got (integer)
 *   "\0s" + 2-byte slot   the rid recorded in slot value % 4096 (16 bytes)
 * The counter itself numbers the counted requests, so slot = value % 4096 is
 * a ring: recording request v evicts the rid of request v - 4096.  Exactly
 * the last 4096 rids are remembered, in 2 x 4096 small entries, with no
 * separate cursor to keep consistent.  One count is 4 changes in a group
 * (update_counter, delete the evicted rid, insert rid, insert slot).
 *
 * A request may carry a deadline: the time after which its sender stops
 * waiting.  A request that waited in a socket's backlog (etscounterd was
 * restarting) and arrives after its sender gave up must not count, or the
 * sender's "failed" would be a lie.  So an unrecorded rid past its deadline
 * is refused, while a recorded one still gets its value: the sender can
 * retry after its deadline to learn, for sure, whether it was counted. */
#include "counter.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CTR_RID_KEY_LEN (2 + CTR_RID_LEN)
#define CTR_SLOT_KEY_LEN 4

static void ctr_rid_key(uint8_t key[CTR_RID_KEY_LEN], const uint8_t *rid)
{
    key[0] = 0;
    key[1] = 'r';
    memcpy(key + 2, rid, CTR_RID_LEN);
}

static void ctr_slot_key(uint8_t key[CTR_SLOT_KEY_LEN], int64_t value)
{
    unsigned slot = (unsigned)(value % CTR_RID_KEEP);
    key[0] = 0;
    key[1] = 's';
    key[2] = (uint8_t)(slot >> 8);
    key[3] = (uint8_t)slot;
}

int ctr_init(etsmgr_table *t, int64_t *value)
{
    etsmgr_value v = { .type = ETSMGR_INT, .i = 0 };
    int err = etsmgr_table_insert_new(t, CTR_KEY, strlen(CTR_KEY), &v);
    if (err && err != ETSMGR_EEXIST)
        return err;
    etsmgr_value out;
    err = etsmgr_table_lookup(t, CTR_KEY, strlen(CTR_KEY), &out, NULL, 0);
    if (err)
        return err;
    if (out.type != ETSMGR_INT)
        return ETSMGR_ETYPE;
    *value = out.i;
    return ETSMGR_OK;
}

int ctr_parse_rid(const char *hex, uint8_t rid[CTR_RID_LEN])
{
    if (!hex || strlen(hex) != 2 * CTR_RID_LEN)
        return -1;
    for (size_t i = 0; i < 2 * CTR_RID_LEN; i++) {
        char ch = hex[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0'
              : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
              : -1;
        if (d < 0)
            return -1;
        if (i % 2 == 0)
            rid[i / 2] = (uint8_t)(d << 4);
        else
            rid[i / 2] |= (uint8_t)d;
    }
    return 0;
}

static int64_t ctr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctr_count(etsmgr_table *t, const uint8_t *rid, int64_t deadline_ms, int64_t *value, int *dup,
              int die_after_commit)
{
    *dup = 0;
    if (!rid)
        return etsmgr_table_update_counter(t, CTR_KEY, strlen(CTR_KEY), 1, 0, value);

    uint8_t rkey[CTR_RID_KEY_LEN], skey[CTR_SLOT_KEY_LEN];
    ctr_rid_key(rkey, rid);
    int err = etsmgr_table_begin(t);
    if (err)
        return err;
    etsmgr_value v;
    err = etsmgr_table_lookup(t, rkey, sizeof rkey, &v, NULL, 0);
    if (err == ETSMGR_OK && v.type == ETSMGR_INT) {
        *value = v.i;
        *dup = 1;
        etsmgr_table_abort(t); /* nothing changed: just release the lock */
        return ETSMGR_OK;
    }
    if (err != ETSMGR_OK && err != ETSMGR_ENOTFOUND)
        goto fail;
    if (deadline_ms > 0 && ctr_wall_ms() > deadline_ms) {
        etsmgr_table_abort(t);
        return CTR_EXPIRED;
    }
    err = etsmgr_table_update_counter(t, CTR_KEY, strlen(CTR_KEY), 1, 0, value);
    if (err)
        goto fail;
    ctr_slot_key(skey, *value);
    uint8_t old[CTR_RID_LEN];
    err = etsmgr_table_lookup(t, skey, sizeof skey, &v, old, sizeof old);
    if (err == ETSMGR_OK && v.type == ETSMGR_BYTES && v.len == CTR_RID_LEN) {
        uint8_t okey[CTR_RID_KEY_LEN];
        ctr_rid_key(okey, old);
        err = etsmgr_table_delete(t, okey, sizeof okey);
        if (err && err != ETSMGR_ENOTFOUND)
            goto fail;
    } else if (err != ETSMGR_OK && err != ETSMGR_ENOTFOUND && err != ETSMGR_ERANGE) {
        goto fail;
    }
    etsmgr_value rv = { .type = ETSMGR_INT, .i = *value };
    err = etsmgr_table_insert(t, rkey, sizeof rkey, &rv);
    if (err)
        goto fail;
    etsmgr_value sv = { .type = ETSMGR_BYTES, .data = rid, .len = CTR_RID_LEN };
    err = etsmgr_table_insert(t, skey, sizeof skey, &sv);
    if (err)
        goto fail;
    err = etsmgr_table_commit(t);
    if (err)
        return err;
    if (die_after_commit)
        raise(SIGKILL); /* test hook: counted and recorded, reply never sent */
    return ETSMGR_OK;
fail:
    etsmgr_table_abort(t);
    return err;
}

/* ------------------------------------------------------------------ check */
struct ctr_walk {
    cJSON *data;
    char *erl;
    size_t erllen, pos;
    int n;
    int oom;
};

static void ctr_put(struct ctr_walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctr_put(struct ctr_walk *w, const char *fmt, ...)
{
    if (w->pos >= w->erllen)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->erl + w->pos, w->erllen - w->pos, fmt, ap);
    va_end(ap);
    if (n > 0)
        w->pos += (size_t)n < w->erllen - w->pos ? (size_t)n : w->erllen - w->pos - 1;
}

/* bytes as an Erlang-ish literal: an atom when it looks like one */
static void ctr_put_bytes(struct ctr_walk *w, const unsigned char *p, size_t n, int atom_ok)
{
    int atom = atom_ok && n > 0 && p[0] >= 'a' && p[0] <= 'z';
    for (size_t i = 0; atom && i < n; i++)
        atom = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
               (p[i] >= '0' && p[i] <= '9') || p[i] == '_';
    if (atom) {
        ctr_put(w, "%.*s", (int)n, (const char *)p);
        return;
    }
    ctr_put(w, "<<\"");
    for (size_t i = 0; i < n && i < 200; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            ctr_put(w, "%c", p[i]);
        else
            ctr_put(w, "\\x%02x", p[i]);
    }
    ctr_put(w, n > 200 ? "...\">>" : "\">>");
}

static int ctr_walk_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct ctr_walk *w = arg;
    const unsigned char *k = key;
    if (klen == 0 || k[0] == 0)
        return 0; /* bookkeeping */
    char name[ETSMGR_KEY_MAX + 1];
    memcpy(name, key, klen);
    name[klen] = '\0';
    ctr_put(w, "%s{", w->n++ ? "," : "");
    ctr_put_bytes(w, k, klen, 1);
    ctr_put(w, ",");
    cJSON *val;
    if (v->type == ETSMGR_INT) {
        ctr_put(w, "%lld", (long long)v->i);
        val = cJSON_CreateNumber((double)v->i);
    } else {
        ctr_put_bytes(w, v->data, v->len, 0);
        char *s = malloc(v->len + 1);
        val = NULL;
        if (s) {
            memcpy(s, v->data, v->len);
            s[v->len] = '\0';
            val = cJSON_CreateString(s);
            free(s);
        }
    }
    ctr_put(w, "}");
    if (!val || strlen(name) != klen || !cJSON_AddItemToObject(w->data, name, val)) {
        if (strlen(name) == klen)
            w->oom = !val;
        cJSON_Delete(val);
    }
    return 0;
}

int ctr_check(etsmgr_table *t, cJSON *data, char *erl, size_t erllen, char *why, size_t whylen)
{
    int err = etsmgr_table_verify(t, why, whylen);
    if (err)
        return err;
    struct ctr_walk w = { .data = data, .erl = erl, .erllen = erllen };
    if (erllen)
        erl[0] = '\0';
    ctr_put(&w, "[");
    err = etsmgr_table_foreach(t, ctr_walk_cb, &w);
    ctr_put(&w, "]");
    if (err)
        return err;
    return w.oom ? ETSMGR_ENOMEM : ETSMGR_OK;
}

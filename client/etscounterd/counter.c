/* SPDX-License-Identifier: Apache-2.0 */
/* counter.c: exactly-once counting on top of the table store.
 *
 * A CLI that lost its reply (etscounterd was SIGKILLed after counting but
 * before answering) retries with the same request id; to answer that retry
 * without counting again, the increment and the note "rid -> new value" are
 * ONE atomic change of the table: etsmgr_table_update_counter_once, whose
 * records live in a region of the table (client/lib/table_once.c).  A SIGKILL
 * inside the change leaves neither, after the commit leaves both.
 *
 * A pipelining server counts many at once (ctr_count_many, serve.c's
 * group commit): the same change for all of them, each answered as if
 * alone; no reply is sent before that change's commit.
 *
 * How long a rid is remembered is the sender's to say: until the last
 * moment it may send it again (its deadline plus its grace), never a fixed
 * number of requests.  The store grows for that, up to a limit; at the
 * limit a new request is refused (ETSMGR_ERIDFULL), an old rid is never
 * forgotten early.
 *
 * A request may carry a deadline: the time after which its sender stops
 * waiting.  A request that waited in a socket's backlog (etscounterd was
 * restarting) and arrives after its sender gave up must not count, or the
 * sender's "failed" would be a lie.  So an unrecorded rid past its deadline
 * is refused (checked before the writes and again just before the commit),
 * while a recorded one still gets its value: the sender can retry after its
 * deadline to learn, for sure, whether it was counted.
 *
 * Tables written by etscounterd before the request-id region kept the last 4096 rids as
 * entries with a leading NUL byte ("\0r"+rid, "\0s"+slot).  They are still
 * hidden by check; they are no longer consulted (see docs/protocol.md). */
#include "counter.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table.h" /* the crash-point hook, for the stop-in-commit test hook only */
#include "table_int.h" /* tbl_once_tidy */

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

/* test hook: stop (SIGSTOP) once, after the deadline check and before the
 * writes of a count, so a test can hold etscounterd inside a commit */
static int ctr_stop_armed;
static void ctr_stop_hook(const char *op, int step)
{
    if (ctr_stop_armed && step == 0 && strcmp(op, "count_once") == 0) {
        ctr_stop_armed = 0;
        raise(SIGSTOP);
    }
}

int ctr_count(etsmgr_table *t, const ctr_req *q, int64_t *value, int *dup)
{
    *dup = 0;
    if (!q->rid)
        return etsmgr_table_update_counter(t, CTR_KEY, strlen(CTR_KEY), 1, 0, value);
    etsmgr_once o = { .deadline_ms = q->deadline_ms, .keep_until_ms = q->keep_until_ms,
                      .max_records = q->max_records };
    memcpy(o.rid, q->rid, CTR_RID_LEN);
    if (q->stop_in_commit) {
        ctr_stop_armed = 1;
        tbl_crashpoint = ctr_stop_hook;
    }
    int err = etsmgr_table_update_counter_once(t, CTR_KEY, strlen(CTR_KEY), 1, &o, value, dup);
    if (q->stop_in_commit) {
        tbl_crashpoint = NULL;
        ctr_stop_armed = 0;
    }
    if (err == ETSMGR_OK && q->die_after_commit)
        raise(SIGKILL); /* test hook: counted and recorded, reply never sent */
    return err;
}

int ctr_count_many(etsmgr_table *t, tbl_once_req *q, size_t n)
{
    return tbl_once_count_many(t, CTR_KEY, strlen(CTR_KEY), 1, q, n);
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

int ctr_tidy(etsmgr_table *t) { return tbl_once_tidy(t); }

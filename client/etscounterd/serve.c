/* SPDX-License-Identifier: Apache-2.0 */
/* serve.c: the requests etscounterd answers on etscounter.sock.
 *
 * Every handler runs to completion inside the frame callback, so replies are
 * queued in request order and a pipelining client gets them in order; conn.c
 * writes all the replies one read produced in one go.  The table operations
 * never wait for etsmgrd: the counter lives in our mapping, which stays valid
 * whatever happens to the manager, so count and check go on while it is down.
 *
 * Requests of the usual shapes (count, check, ping with an integer id) are
 * read by fastparse.c without building a cJSON tree; everything else goes
 * through cJSON.  Both readings end in an ecd_req, and the handlers look
 * only at that, so a request gets the same reply whichever parser read it.
 * The count's reply is written by hand (no cJSON), its integers two digits
 * at a time; at 50 connections this code is about a tenth of the CPU a
 * request costs, the rest being the kernel's recvmsg, send and epoll_wait
 * (docs/performance.md, "The 50-connection rows").
 *
 * Exactly-once counts the fast path read are counted in batches (group
 * commit, below ecd_count_reply): one change of the table for a turn's
 * counts, replies queued after its commit, before conn.c writes them.
 *
 * die must reply before dying: the reply is queued, the connection is closed
 * after its queue is written, and the close callback raises SIGKILL. */
#include "counterd.h"
#include "counter.h"
#include "fastparse.h"
#include "frame.h" /* FRAME_MAX */
#include "log.h"
#include "proto.h"
#include "table.h" /* tbl_once_prefetch */

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char ECD_DYING; /* conn data marker: SIGKILL ourselves on close */

_Static_assert(FP_RID_LEN == CTR_RID_LEN, "a request id is the same size for both parsers");

/* A request as the handlers see it: the cJSON tree (general path) or the
 * fast path's reading, exactly one of them. */
typedef struct ecd_req {
    const cJSON *json;
    const fp_req *fast;
} ecd_req;

/* After conn_send (r its result).  A reply that does not fit a frame (over
 * 64 KiB: an id of nearly that size echoed, a check of a table with that
 * many entries) cannot be sent, and left out it would give the next
 * request's reply its place in the order the protocol promises, so that a
 * client matching replies by order takes one for the other: the
 * connection is closed instead, after the replies before it (a count was
 * counted all the same, as one whose reply a crash lost). */
static void ecd_sent(conn *c, int r)
{
    if (r == 0)
        return;
    if (errno != EMSGSIZE) {
        log_debug("a reply was dropped: the connection is closing");
        return;
    }
    log_warning("a reply to pid %ld does not fit a frame (%u bytes): closing its connection",
                (long)conn_peer_pid(c), FRAME_MAX);
    conn_close(c);
}

static void ecd_send(conn *c, cJSON *reply)
{
    if (!reply) {
        log_error("out of memory building a reply; closing the connection");
        conn_close(c);
        return;
    }
    ecd_sent(c, conn_send_json(c, reply, -1));
    cJSON_Delete(reply);
}

/* The request as a cJSON object for the replies built with cJSON: the tree
 * itself, or for a fast-path request a new {"id": ...} in *tmp (the only
 * field proto_reply_ok/err read).  NULL when out of memory. */
static const cJSON *ecd_req_json(const ecd_req *r, cJSON **tmp)
{
    *tmp = NULL;
    if (r->json)
        return r->json;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = 1;
    if (r->fast->id_kind == FP_ID_NULL)
        ok = cJSON_AddNullToObject(o, "id") != NULL;
    else if (r->fast->id_kind == FP_ID_INT)
        ok = cJSON_AddNumberToObject(o, "id", (double)r->fast->id) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return *tmp = o;
}

static void ecd_ok(conn *c, const ecd_req *r, cJSON *(*fill)(cJSON *rep, void *arg), void *arg)
{
    cJSON *tmp;
    const cJSON *req = ecd_req_json(r, &tmp);
    cJSON *rep = req ? proto_reply_ok(req) : NULL;
    if (rep && fill)
        rep = fill(rep, arg); /* NULL (and rep freed) when out of memory */
    ecd_send(c, rep);
    cJSON_Delete(tmp);
}

static void ecd_err(conn *c, const ecd_req *r, proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void ecd_err(conn *c, const ecd_req *r, proto_err code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *tmp;
    const cJSON *req = ecd_req_json(r, &tmp);
    ecd_send(c, req ? proto_reply_err(req, code, "%s", msg) : NULL);
    cJSON_Delete(tmp);
}

/* The count reply is written by hand rather than through cJSON: printing
 * numbers with cJSON cost 57% of a count's instructions (docs/performance.md).
 * v in decimal at p; returns the end. */
/* two digits at a time, from a table: a division per two digits rather
 * than one per digit (the count's value has 6 to 9 digits in a bench run) */
static const char ecd_d2[201] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static char *ecd_put_i64(char *p, long long v)
{
    char tmp[24], *end = tmp + sizeof tmp, *q = end;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        q -= 2;
        memcpy(q, ecd_d2 + 2 * r, 2);
    }
    if (u >= 10) {
        q -= 2;
        memcpy(q, ecd_d2 + 2 * u, 2);
    } else {
        *--q = (char)('0' + u);
    }
    if (v < 0)
        *p++ = '-';
    memcpy(p, q, (size_t)(end - q));
    return p + (end - q);
}

static char *ecd_put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The request's id as JSON text: an integer (the usual case) by hand,
 * anything else through cJSON.  Returns the length, or -1 when it does not
 * fit (the caller then falls back to cJSON for the whole reply). */
static int ecd_id_text(const ecd_req *r, char *buf, size_t len)
{
    if (r->fast) {
        if (r->fast->id_kind != FP_ID_INT)
            return (int)(ecd_put(buf, "null", 4) - buf);
        return (int)(ecd_put_i64(buf, r->fast->id) - buf);
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(r->json, "id");
    int n;
    if (!id)
        n = snprintf(buf, len, "null");
    else if (cJSON_IsNumber(id) && id->valuedouble >= -9007199254740992.0 &&
             id->valuedouble <= 9007199254740992.0 && id->valuedouble == (double)(long long)id->valuedouble)
        n = (int)(ecd_put_i64(buf, (long long)id->valuedouble) - buf);
    else {
        char *s = cJSON_PrintUnformatted(id);
        n = s ? snprintf(buf, len, "%s", s) : -1;
        cJSON_free(s);
    }
    return n >= 0 && (size_t)n < len ? n : -1;
}

static cJSON *ecd_fill_count(cJSON *rep, void *arg)
{
    const long long *vd = arg; /* {value, dup} */
    if (!cJSON_AddNumberToObject(rep, "count", (double)vd[0]) || !cJSON_AddBoolToObject(rep, "duplicate", vd[1] != 0)) {
        cJSON_Delete(rep);
        return NULL;
    }
    return rep;
}

/* A count's time fields as either parser read them (has: present). */
typedef struct ecd_times {
    int has_mono, has_wall, has_retry;
    int64_t mono, wall, retry;
} ecd_times;

/* Far enough for any real deadline, and room to add a grace without
 * overflow. */
#define ECD_TIME_MAX (INT64_MAX / 4)

/* The count's deadline and how long its record is kept, in CLOCK_MONOTONIC
 * ms (see docs/protocol.md), given now, the event loop's time of this turn
 * (uv_now: read once per turn, not per request; it is the same clock, a
 * little early, which only makes a converted deadline earlier and a
 * default keep time shorter by as much, never a deadline later):
 *   deadline_mono     the sender's deadline on the shared monotonic clock;
 *   deadline          the same in wall-clock ms (older clients), turned
 *                     into monotonic time on arrival;
 *   retry_until_mono  the last moment the sender may send the rid again,
 *                     and the deadline when there is none;
 *                     absent: the deadline plus ECD_RETRY_GRACE_MS, or with
 *                     no deadline at all, now plus ECD_DEFAULT_KEEP_MS.
 * 0, or -1 with the reason in msg. */
static int ecd_count_times(int64_t now, const ecd_times *tm, ctr_req *q, char *msg, size_t msglen)
{
    if (tm->has_mono && tm->mono > 0) {
        q->deadline_ms = tm->mono < ECD_TIME_MAX ? tm->mono : ECD_TIME_MAX;
    } else if (tm->has_wall && tm->wall > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        int64_t left = (tm->wall < ECD_TIME_MAX ? tm->wall : ECD_TIME_MAX) - wall;
        q->deadline_ms = left > ECD_TIME_MAX - now ? ECD_TIME_MAX : now + left;
        if (q->deadline_ms < 1)
            q->deadline_ms = 1; /* long past: expired, not "no deadline" */
    }
    if (tm->has_retry && tm->retry > 0) {
        if (q->deadline_ms && tm->retry < q->deadline_ms) {
            snprintf(msg, msglen, "field \"retry_until_mono\" must not be before the deadline");
            return -1;
        }
        q->keep_until_ms = tm->retry < ECD_TIME_MAX ? tm->retry : ECD_TIME_MAX;
        /* without a deadline, retry_until_mono is one: a request read
         * after it (it waited in the socket's backlog) may be the retry of
         * one counted whose record has gone since, kept that long and no
         * longer, and counted again it would count twice; refused, it
         * counts nothing (expired), and a recorded one still gets its
         * value */
        if (!q->deadline_ms)
            q->deadline_ms = q->keep_until_ms;
    } else {
        q->keep_until_ms = q->deadline_ms ? q->deadline_ms + ECD_RETRY_GRACE_MS : now + ECD_DEFAULT_KEEP_MS;
    }
    return 0;
}

/* A refusal's lines are limited (log_limited); the lines a kind leaves out
 * are counted by its next line or, when none comes (a flood that stopped),
 * here once its window has ended: the first line left out in a window
 * calls this, which arms the timer for the earliest such end. */
static void ecd_on_log_timer(uv_timer_t *h) { ecd_log_flush(h->data, 0); }

void ecd_log_flush(ecd *d, int force)
{
    struct log_limit *k[] = { &d->log_expired, &d->log_ridfull, &d->log_locked, &d->log_failed };
    long long now = (long long)uv_now(d->loop), next = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        long long left = log_limit_flush(k[i], now, force);
        if (left > 0 && (next == 0 || left < next))
            next = left;
    }
    if (next > 0 && d->log_timer)
        uv_timer_start(d->log_timer, ecd_on_log_timer, (uint64_t)next, 0);
}

/* A count's answer, once the table has given it (err, value, dup): the
 * reply, and the log line of a refusal.  hex: the rid's text for the log. */
static void ecd_count_reply(ecd *d, conn *c, const ecd_req *r, const char *hex, int err, int64_t value, int dup)
{
    if (err == ETSMGR_EEXPIRED) {
        if (log_limited(&d->log_expired, (long long)uv_now(d->loop), LOG_LVL_INFO,
                        "request %.32s arrived after its deadline: not counted.", hex))
            ecd_log_flush(d, 0);
        ecd_err(c, r, PROTO_E_EXPIRED, "the request's deadline passed before it was counted: it was not counted");
        return;
    }
    if (err == ETSMGR_ERIDFULL) {
        if (log_limited(&d->log_ridfull, (long long)uv_now(d->loop), LOG_LVL_WARNING,
                        "request %.32s refused: %lu request ids are still remembered (--max-request-ids); not counted.",
                        hex, (unsigned long)d->max_rids))
            ecd_log_flush(d, 0);
        ecd_err(c, r, PROTO_E_RID_STORE_FULL,
                "etscounterd already remembers %lu request ids, each until its sender may retry it: this count "
                "was not counted; try again later (or raise etscounterd --max-request-ids)",
                (unsigned long)d->max_rids);
        return;
    }
    if (err == ETSMGR_ELOCKED) {
        if (log_limited(&d->log_locked, (long long)uv_now(d->loop), LOG_LVL_ERROR,
                        "count: table %s is locked by another process for more than %u ms (stopped?); not counted.",
                        CTR_TABLE, d->lock_timeout_ms))
            ecd_log_flush(d, 0);
        ecd_err(c, r, PROTO_E_TABLE_BUSY,
                "table %s is locked by another process for more than %u ms (stopped or stuck?): not counted",
                CTR_TABLE, d->lock_timeout_ms);
        return;
    }
    if (err) {
        if (log_limited(&d->log_failed, (long long)uv_now(d->loop), LOG_LVL_ERROR, "count failed on table %s: %s",
                        CTR_TABLE, etsmgr_strerror(err)))
            ecd_log_flush(d, 0);
        ecd_err(c, r, err == ETSMGR_EFULL ? PROTO_E_TABLE_FULL : PROTO_E_TABLE_ERROR, "count failed on table %s: %s",
                CTR_TABLE, etsmgr_strerror(err));
        return;
    }
    if (dup)
        log_notice("Counter %lld (request %.32s seen before: not counted again).", (long long)value, hex);
    else
        log_notice("Counter %lld.", (long long)value);
    char idt[256], out[400];
    int il = ecd_id_text(r, idt, sizeof idt);
    if (il >= 0) {
        char *p = ecd_put(out, "{\"ok\":true,\"id\":", 16);
        p = ecd_put(p, idt, (size_t)il);
        p = ecd_put(p, ",\"count\":", 9);
        p = ecd_put_i64(p, (long long)value);
        p = dup ? ecd_put(p, ",\"duplicate\":true}", 18) : ecd_put(p, ",\"duplicate\":false}", 19);
        ecd_sent(c, conn_send(c, out, (size_t)(p - out), -1));
        return;
    }
    long long vd[2] = {(long long)value, dup};
    ecd_ok(c, r, ecd_fill_count, vd);
}

/* Group commit.  An exactly-once count the fast path read is not counted
 * at once but kept here, up to ECD_BATCH_MAX of them from any connections,
 * and the batch is counted as one change of the table
 * (tbl_once_count_many: one lock, one clock read, one commit for all)
 * when conn.c has served the turn's reads (ecd_on_served, before it
 * writes the replies), when it is full, or before any other request is
 * served.  Replies are queued only after the commit: a SIGKILL inside the
 * batch rolls all of it back, and no sender has an answer, so each retry
 * counts exactly once.  Order: a connection's replies stay in its
 * requests' order, since every reply not from the batch flushes the batch
 * first, and the batch replies in its own order.  Delay: none beyond the
 * turn, whose replies all leave together in conn.c's flush after this.
 * A request that must be counted alone (the test hooks) flushes the batch
 * and goes on its own. */
#define ECD_BATCH_MAX 64
typedef struct ecd_pending {
    conn *c;
    fp_req f;
    char hex[2 * CTR_RID_LEN]; /* f.rid_hex points here: the payload is gone by the reply */
} ecd_pending;
static ecd_pending ecd_pend[ECD_BATCH_MAX];
static tbl_once_req ecd_batch[ECD_BATCH_MAX];
static size_t ecd_npend;

void ecd_on_served(void *arg)
{
    ecd *d = arg;
    size_t n = ecd_npend, at = 0;
    if (n == 0)
        return;
    ecd_npend = 0;
    while (at < n) {
        int k = ctr_count_many(d->t, ecd_batch + at, n - at);
        size_t upto = k > 0 ? at + (size_t)k : n;
        for (size_t i = at; i < upto; i++) {
            ecd_req r = {.fast = &ecd_pend[i].f};
            const tbl_once_req *q = &ecd_batch[i];
            ecd_count_reply(d, ecd_pend[i].c, &r, ecd_pend[i].hex, k > 0 ? q->rc : k == 0 ? ETSMGR_ESYS : k,
                            q->value, q->dup);
        }
        at = upto;
    }
}

/* The count itself, once the request is read.  rid: NULL for a plain count;
 * hex: its text for the log; f: the fast path's reading (NULL: cJSON's),
 * which an exactly-once count may join the batch with. */
static void ecd_count_run(ecd *d, conn *c, const ecd_req *r, const uint8_t *rid, const char *hex,
                          const ecd_times *tm)
{
    char msg[200];
    ctr_req q = { .max_records = d->max_rids };
    if (ecd_count_times((int64_t)uv_now(d->loop), tm, &q, msg, sizeof msg) < 0) {
        ecd_on_served(d);
        ecd_err(c, r, PROTO_E_BAD_REQUEST, "%s", msg);
        return;
    }
    if (rid && d->exactly_once) {
        q.rid = rid;
        q.die_after_commit = d->die_after_commit > 0 && --d->die_after_commit == 0;
        q.stop_in_commit = d->stop_in_commit > 0 && --d->stop_in_commit == 0;
        if (r->fast && !q.die_after_commit && !q.stop_in_commit) {
            ecd_pending *p = &ecd_pend[ecd_npend];
            tbl_once_req *b = &ecd_batch[ecd_npend];
            p->c = c;
            p->f = *r->fast;
            memcpy(p->hex, hex, sizeof p->hex);
            p->f.rid_hex = p->hex;
            *b = (tbl_once_req){.once = {.deadline_ms = q.deadline_ms, .keep_until_ms = q.keep_until_ms,
                                         .max_records = q.max_records}};
            memcpy(b->once.rid, rid, CTR_RID_LEN);
            if (++ecd_npend == ECD_BATCH_MAX)
                ecd_on_served(d);
            return;
        }
    }
    ecd_on_served(d); /* the batch's replies before this one */
    int64_t value = 0;
    int dup = 0;
    int err = ctr_count(d->t, &q, &value, &dup);
    ecd_count_reply(d, c, r, hex, err, value, dup);
}

/* count read by cJSON: its fields checked, with the reasons in words */
static void ecd_count(ecd *d, conn *c, const cJSON *req)
{
    ecd_req r = {.json = req};
    char msg[200];
    const char *hex = NULL;
    int got = proto_get_string(req, "rid", &hex, msg, sizeof msg);
    if (got < 0) {
        ecd_err(c, &r, PROTO_E_BAD_REQUEST, "%s", msg);
        return;
    }
    uint8_t rid[CTR_RID_LEN];
    if (got == 0 && ctr_parse_rid(hex, rid) < 0) {
        ecd_err(c, &r, PROTO_E_BAD_REQUEST, "field \"rid\" must be 32 hex digits (a 128-bit request id)");
        return;
    }
    ecd_times tm = {0};
    int hm = proto_get_int(req, "deadline_mono", 0, INT64_MAX, &tm.mono, msg, sizeof msg);
    int hw = hm < 0 ? 0 : proto_get_int(req, "deadline", 0, INT64_MAX, &tm.wall, msg, sizeof msg);
    int hr = hm < 0 || hw < 0 ? 0 : proto_get_int(req, "retry_until_mono", 0, INT64_MAX, &tm.retry, msg, sizeof msg);
    if (hm < 0 || hw < 0 || hr < 0) {
        ecd_err(c, &r, PROTO_E_BAD_REQUEST, "%s", msg);
        return;
    }
    tm.has_mono = hm == 0;
    tm.has_wall = hw == 0;
    tm.has_retry = hr == 0;
    ecd_count_run(d, c, &r, got == 0 ? rid : NULL, hex, &tm);
}

static cJSON *ecd_fill_check(cJSON *rep, void *arg)
{
    cJSON *data = arg;
    if (!cJSON_AddStringToObject(rep, "table", CTR_TABLE) || !cJSON_AddItemToObject(rep, "data", data)) {
        cJSON_Delete(rep);
        cJSON_Delete(data); /* data is rep's only once the last add succeeded */
        return NULL;
    }
    return rep;
}

/* A check walks (and first verifies) the whole table: it costs the
 * connection's turn in proportion, so a peer pipelining checks gives the
 * others their turn (conn_charge; issue 12, item 9). */
static void ecd_charge_walk(ecd *d, conn *c)
{
    etsmgr_table_info info;
    if (etsmgr_table_info_get(d->t, &info) == ETSMGR_OK)
        conn_charge(c, (unsigned)(info.entries / 128u < 1000u ? info.entries / 128u : 1000u));
}

static void ecd_check(ecd *d, conn *c, const ecd_req *r)
{
    ecd_charge_walk(d, c);
    cJSON *data = cJSON_CreateObject();
    char erl[1024], why[256] = "";
    int err = data ? ctr_check(d->t, data, erl, sizeof erl, why, sizeof why) : ETSMGR_ENOMEM;
    if (err) {
        cJSON_Delete(data);
        if (err == ETSMGR_ELOCKED) {
            log_error("check: table %s is locked by another process for more than %u ms (stopped?).", CTR_TABLE,
                      d->lock_timeout_ms);
            ecd_err(c, r, PROTO_E_TABLE_BUSY, "table %s is locked by another process for more than %u ms (stopped or stuck?)",
                    CTR_TABLE, d->lock_timeout_ms);
        } else if (err == ETSMGR_ECORRUPT) {
            log_error("Table: %s is corrupted: %s.", CTR_TABLE, why);
            ecd_err(c, r, PROTO_E_CORRUPT, "table %s is corrupted: %s", CTR_TABLE, why);
        } else {
            log_error("check of table %s failed: %s", CTR_TABLE, etsmgr_strerror(err));
            ecd_err(c, r, PROTO_E_TABLE_ERROR, "check of table %s failed: %s", CTR_TABLE, etsmgr_strerror(err));
        }
        return;
    }
    log_notice("Table: %s, Data %s.", CTR_TABLE, erl);
    cJSON *tmp;
    const cJSON *req = ecd_req_json(r, &tmp);
    cJSON *rep = req ? proto_reply_ok(req) : NULL;
    if (rep)
        rep = ecd_fill_check(rep, data);
    else
        cJSON_Delete(data);
    ecd_send(c, rep);
    cJSON_Delete(tmp);
}

static void ecd_die(conn *c, const cJSON *req)
{
    log_notice("die: asked to terminate; replying, then SIGKILL to myself (pid %d).", (int)getpid());
    cJSON *rep = proto_reply_ok(req);
    if (rep && !cJSON_AddNumberToObject(rep, "pid", (double)getpid())) {
        cJSON_Delete(rep);
        rep = NULL;
    }
    if (rep)
        conn_send_json(c, rep, -1);
    cJSON_Delete(rep);
    conn_set_data(c, &ECD_DYING);
    conn_close(c); /* ecd_on_close raises SIGKILL once the reply is written */
}

static cJSON *ecd_fill_ping(cJSON *rep, void *arg)
{
    (void)arg;
    if (!cJSON_AddNumberToObject(rep, "pid", (double)getpid())) {
        cJSON_Delete(rep);
        return NULL;
    }
    return rep;
}

/* A request the fast path read: it has no fd, and its fields are valid. */
static void ecd_serve_fast(ecd *d, conn *c, const fp_req *f)
{
    ecd_req r = {.fast = f};
    switch (f->op) {
    case FP_COUNT:
    {
        ecd_times tm = { .has_mono = f->has_deadline_mono, .has_wall = f->has_deadline, .has_retry = f->has_retry_until,
                         .mono = f->deadline_mono, .wall = f->deadline, .retry = f->retry_until };
        ecd_count_run(d, c, &r, f->has_rid ? f->rid : NULL, f->rid_hex, &tm);
        break;
    }
    case FP_CHECK:
        ecd_on_served(d); /* the batch's replies first, and its counts in what check sees */
        ecd_check(d, c, &r);
        break;
    case FP_PING:
        ecd_on_served(d);
        ecd_ok(c, &r, ecd_fill_ping, NULL);
        break;
    }
}

/* Looking ahead.  conn.c shows us a frame before it is served: the first
 * frame of each connection read in a loop turn, once all of the turn's
 * ready connections are read and before any is served, and, while frame k
 * is served, frame k+1 when a pipelining peer already sent it.  We read it
 * then and ask the table to start loading the index line its count will
 * touch (tbl_once_prefetch), so that its cache miss overlaps the reading
 * of other connections or the work of frame k instead of following it
 * (the request-id store is far bigger than the caches: that miss is most
 * of what a count costs).  The reading is kept for on_frame, which then
 * does not parse again: in a slot chosen by the connection and the
 * payload's address (50 connections read in one turn each keep theirs),
 * with the frame's bytes.  on_frame takes a slot only when its payload is
 * the same bytes, so a frame never dispatched, a buffer reused or two
 * frames sharing a slot can only miss (and parse again), never answer
 * wrongly. */
#define ECD_AHEAD_MAX 256
/* 4,096 slots: with 256, one connection in six of 50 shared its slot with
 * another and parsed its frame twice (callgrind); the slots in use stay
 * few and warm, as each connection's payload stays at one address */
#define ECD_AHEAD_BITS 12
typedef struct ecd_ahead {
    size_t len; /* 0: empty */
    size_t rid_at; /* f.rid_hex's offset in the payload */
    fp_req f;
    char bytes[ECD_AHEAD_MAX];
} ecd_ahead;
static ecd_ahead ecd_ah[1u << ECD_AHEAD_BITS];

static ecd_ahead *ecd_ahead_slot(const conn *c, const char *payload)
{
    uint64_t k = ((uint64_t)(uintptr_t)c ^ ((uint64_t)(uintptr_t)payload << 16)) * 0x9e3779b97f4a7c15ull;
    return &ecd_ah[k >> (64 - ECD_AHEAD_BITS)];
}

void ecd_on_ahead(conn *c, const char *payload, size_t len, void *arg)
{
    ecd *d = arg;
    if (len == 0 || len > ECD_AHEAD_MAX || conn_get_data(c) == &ECD_DYING)
        return;
    ecd_ahead *a = ecd_ahead_slot(c, payload);
    a->len = 0;
    if (!fp_parse(payload, len, &a->f))
        return;
    memcpy(a->bytes, payload, len);
    a->len = len;
    a->rid_at = a->f.rid_hex ? (size_t)(a->f.rid_hex - payload) : 0;
    if (a->f.op == FP_COUNT && a->f.has_rid && d->t && d->exactly_once)
        tbl_once_prefetch(d->t, a->f.rid);
}

/* 1: on_ahead read this payload already, *f its reading */
static int ecd_ahead_take(const conn *c, const char *payload, size_t len, fp_req *f)
{
    ecd_ahead *a = ecd_ahead_slot(c, payload);
    if (a->len == 0 || a->len != len || memcmp(a->bytes, payload, len) != 0) /* 0: an empty slot */
        return 0;
    *f = a->f;
    if (f->rid_hex)
        f->rid_hex = payload + a->rid_at;
    a->len = 0;
    return 1;
}

void ecd_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    ecd *d = arg;
    for (int i = 0; i < nfds; i++)
        close(fds[i]); /* no op of this socket takes fds */
    if (conn_get_data(c) == &ECD_DYING)
        return; /* dying: nothing after die is answered */
    fp_req f;
    if (nfds == 0 && (ecd_ahead_take(c, payload, len, &f) || fp_parse(payload, len, &f))) {
        d->served++;
        ecd_serve_fast(d, c, &f);
        return;
    }
    ecd_on_served(d); /* every reply below comes after the batch's */
    proto_err code = PROTO_OK;
    char msg[200];
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    if (!req) {
        ecd_send(c, proto_reply_err(NULL, code, "%s", msg));
        return;
    }
    d->served++;
    const char *op = proto_op(req);
    ecd_req r = {.json = req};
    if (nfds > 0)
        ecd_send(c, proto_reply_err(req, PROTO_E_UNEXPECTED_FD, "op %s takes no file descriptor; it was closed", op));
    else if (strcmp(op, "count") == 0)
        ecd_count(d, c, req);
    else if (strcmp(op, "check") == 0)
        ecd_check(d, c, &r);
    else if (strcmp(op, "die") == 0)
        ecd_die(c, req);
    else if (strcmp(op, "ping") == 0)
        ecd_ok(c, &r, ecd_fill_ping, NULL);
    else
        ecd_send(c, proto_reply_err(req, PROTO_E_UNKNOWN_OP, "unknown op \"%.64s\": etscounterd answers count, check, die, ping", op));
    cJSON_Delete(req);
}

void ecd_on_close(conn *c, void *arg)
{
    (void)arg;
    if (conn_get_data(c) == &ECD_DYING)
        raise(SIGKILL);
}

/* serve.c: the requests etscounterd answers on etscounter.sock.
 *
 * Every handler runs to completion inside the frame callback, so replies are
 * queued in request order and a pipelining client gets them in order; conn.c
 * writes all the replies one read produced in one go.  The table operations
 * never wait for etsmgrd: the counter lives in our mapping, which stays valid
 * whatever happens to the manager, so count and check go on while it is down.
 *
 * die must reply before dying: the reply is queued, the connection is closed
 * after its queue is written, and the close callback raises SIGKILL. */
#include "counterd.h"
#include "counter.h"
#include "log.h"
#include "proto.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char ECD_DYING; /* conn data marker: SIGKILL ourselves on close */

static void ecd_send(conn *c, cJSON *reply)
{
    if (!reply) {
        log_error("out of memory building a reply; closing the connection");
        conn_close(c);
        return;
    }
    if (conn_send_json(c, reply, -1) < 0)
        log_debug("a reply was dropped: the connection is closing");
    cJSON_Delete(reply);
}

/* The count reply is written by hand rather than through cJSON: printing
 * numbers with cJSON cost 57% of a count's instructions (docs/performance.md).
 * v in decimal at p; returns the end. */
static char *ecd_put_i64(char *p, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *p++ = '-';
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *ecd_put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* The request's id as JSON text: an integer (the usual case) by hand,
 * anything else through cJSON.  Returns the length, or -1 when it does not
 * fit (the caller then falls back to cJSON for the whole reply). */
static int ecd_id_text(const cJSON *req, char *buf, size_t len)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
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

static void ecd_count(ecd *d, conn *c, const cJSON *req)
{
    char msg[200];
    const char *hex = NULL;
    int r = proto_get_string(req, "rid", &hex, msg, sizeof msg);
    if (r < 0) {
        ecd_send(c, proto_reply_err(req, "bad_request", "%s", msg));
        return;
    }
    uint8_t rid[CTR_RID_LEN];
    if (r == 0 && ctr_parse_rid(hex, rid) < 0) {
        ecd_send(c, proto_reply_err(req, "bad_request",
                                    "field \"rid\" must be 32 hex digits (a 128-bit request id)"));
        return;
    }
    int64_t deadline = 0;
    if (proto_get_int(req, "deadline", 0, INT64_MAX, &deadline, msg, sizeof msg) < 0) {
        ecd_send(c, proto_reply_err(req, "bad_request", "%s", msg));
        return;
    }
    int use_rid = r == 0 && d->exactly_once;
    int die = use_rid && d->die_after_commit > 0 && --d->die_after_commit == 0;
    int64_t value;
    int dup;
    int err = ctr_count(d->t, use_rid ? rid : NULL, use_rid ? deadline : 0, &value, &dup, die);
    if (err == CTR_EXPIRED) {
        log_info("request %s arrived after its deadline: not counted.", hex);
        ecd_send(c, proto_reply_err(req, "expired",
                                    "the request's deadline passed before it was counted: it was not counted"));
        return;
    }
    if (err) {
        log_error("count failed on table %s: %s", CTR_TABLE, etsmgr_strerror(err));
        ecd_send(c, proto_reply_err(req, err == ETSMGR_EFULL ? "table_full" : "table_error",
                                    "count failed on table %s: %s", CTR_TABLE, etsmgr_strerror(err)));
        return;
    }
    if (dup)
        log_notice("Counter %lld (request %s seen before: not counted again).", (long long)value, hex);
    else
        log_notice("Counter %lld.", (long long)value);
    char idt[256], out[400];
    int il = ecd_id_text(req, idt, sizeof idt);
    if (il >= 0) {
        char *p = ecd_put(out, "{\"ok\":true,\"id\":", 16);
        p = ecd_put(p, idt, (size_t)il);
        p = ecd_put(p, ",\"count\":", 9);
        p = ecd_put_i64(p, (long long)value);
        p = dup ? ecd_put(p, ",\"duplicate\":true}", 18) : ecd_put(p, ",\"duplicate\":false}", 19);
        if (conn_send(c, out, (size_t)(p - out), -1) < 0)
            log_debug("a reply was dropped: the connection is closing");
        return;
    }
    cJSON *rep = proto_reply_ok(req);
    if (rep && (!cJSON_AddNumberToObject(rep, "count", (double)value) ||
                !cJSON_AddBoolToObject(rep, "duplicate", dup != 0))) {
        cJSON_Delete(rep);
        rep = NULL;
    }
    ecd_send(c, rep);
}

static void ecd_check(ecd *d, conn *c, const cJSON *req)
{
    cJSON *rep = proto_reply_ok(req);
    cJSON *data = cJSON_CreateObject();
    char erl[1024], why[256] = "";
    int err = data ? ctr_check(d->t, data, erl, sizeof erl, why, sizeof why) : ETSMGR_ENOMEM;
    if (err) {
        cJSON_Delete(rep);
        cJSON_Delete(data);
        if (err == ETSMGR_ECORRUPT) {
            log_error("Table: %s is corrupted: %s.", CTR_TABLE, why);
            ecd_send(c, proto_reply_err(req, "corrupt", "table %s is corrupted: %s", CTR_TABLE, why));
        } else {
            log_error("check of table %s failed: %s", CTR_TABLE, etsmgr_strerror(err));
            ecd_send(c, proto_reply_err(req, "table_error", "check of table %s failed: %s", CTR_TABLE,
                                        etsmgr_strerror(err)));
        }
        return;
    }
    log_notice("Table: %s, Data %s.", CTR_TABLE, erl);
    if (!rep || !cJSON_AddStringToObject(rep, "table", CTR_TABLE) || !cJSON_AddItemToObject(rep, "data", data)) {
        cJSON_Delete(rep); /* data is rep's only once the last add succeeded */
        cJSON_Delete(data);
        rep = NULL;
    }
    ecd_send(c, rep);
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

static void ecd_ping(conn *c, const cJSON *req)
{
    cJSON *rep = proto_reply_ok(req);
    if (rep && !cJSON_AddNumberToObject(rep, "pid", (double)getpid())) {
        cJSON_Delete(rep);
        rep = NULL;
    }
    ecd_send(c, rep);
}

void ecd_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    ecd *d = arg;
    for (int i = 0; i < nfds; i++)
        close(fds[i]); /* no op of this socket takes fds */
    if (conn_get_data(c) == &ECD_DYING)
        return; /* dying: nothing after die is answered */
    const char *code = NULL;
    char msg[200];
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    if (!req) {
        ecd_send(c, proto_reply_err(NULL, code, "%s", msg));
        return;
    }
    d->served++;
    const char *op = proto_op(req);
    if (nfds > 0)
        ecd_send(c, proto_reply_err(req, "unexpected_fd", "op %s takes no file descriptor; it was closed", op));
    else if (strcmp(op, "count") == 0)
        ecd_count(d, c, req);
    else if (strcmp(op, "check") == 0)
        ecd_check(d, c, req);
    else if (strcmp(op, "die") == 0)
        ecd_die(c, req);
    else if (strcmp(op, "ping") == 0)
        ecd_ping(c, req);
    else
        ecd_send(c, proto_reply_err(req, "unknown_op", "unknown op \"%.64s\": etscounterd answers count, check, die, ping", op));
    cJSON_Delete(req);
}

void ecd_on_close(conn *c, void *arg)
{
    (void)arg;
    if (conn_get_data(c) == &ECD_DYING)
        raise(SIGKILL);
}

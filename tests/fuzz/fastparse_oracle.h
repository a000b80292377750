/* SPDX-License-Identifier: Apache-2.0 */
/* fastparse_oracle.h: does etscounterd's fast path read a request as cJSON
 * does?  Shared by the unit tests (tests/test_fastparse.c) and the fuzz
 * harness (fuzz_fastparse.c), so both hold the fast path to one definition
 * of "agree".
 *
 * For a payload fp_parse accepted, the general path (proto_parse_request,
 * then the getters the handlers use) must accept it too and find the same
 * op, the same id (absent, null, or the same integer, printed as the same
 * digits in the reply), the same rid bytes and text, the same deadlines
 * (deadline, deadline_mono) and retry_until_mono, and no other field.  Returns NULL when they agree, else what differs. */
#ifndef ETSMGR_FASTPARSE_ORACLE_H
#define ETSMGR_FASTPARSE_ORACLE_H
#include <stdio.h>
#include <string.h>

#include "etscounterd/counter.h"
#include "etscounterd/fastparse.h"
#include "proto.h"

static inline const char *fp_oracle(const char *payload, size_t len, const fp_req *f)
{
    static char why[240];
    proto_err code = PROTO_OK;
    char msg[200];
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    if (!req)
        return snprintf(why, sizeof why, "cJSON refuses it: %.200s", msg), why;
    const char *res = NULL;
    static const char *const ops[] = { [FP_COUNT] = "count", [FP_CHECK] = "check", [FP_PING] = "ping" };
    int fields = 1;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    const char *hex = NULL;
    int got_rid = proto_get_string(req, "rid", &hex, msg, sizeof msg);
    int64_t deadline = -1;
    int got_dl = proto_get_int(req, "deadline", 0, INT64_MAX, &deadline, msg, sizeof msg);
    int64_t dl_mono = -1, retry = -1;
    int got_dm = proto_get_int(req, "deadline_mono", 0, INT64_MAX, &dl_mono, msg, sizeof msg);
    int got_rt = proto_get_int(req, "retry_until_mono", 0, INT64_MAX, &retry, msg, sizeof msg);
    uint8_t rid[CTR_RID_LEN];
    if (f->op < FP_COUNT || f->op > FP_PING || strcmp(proto_op(req), ops[f->op]) != 0)
        res = "op differs";
    else if ((f->id_kind == FP_ID_ABSENT) != (id == NULL))
        res = "id present for one, absent for the other";
    else if (f->id_kind == FP_ID_NULL && !cJSON_IsNull(id))
        res = "id null for the fast path only";
    else if (f->id_kind == FP_ID_INT && (!cJSON_IsNumber(id) || id->valuedouble != (double)f->id))
        res = "id value differs";
    else if ((got_rid == 0) != (f->has_rid != 0))
        res = "rid present for one only";
    else if (f->has_rid && (ctr_parse_rid(hex, rid) < 0 || memcmp(rid, f->rid, sizeof rid) != 0 ||
                            strncmp(hex, f->rid_hex, 2 * CTR_RID_LEN) != 0))
        res = "rid differs";
    else if (got_dl < 0 || (got_dl == 0) != (f->has_deadline != 0) || (f->has_deadline && deadline != f->deadline))
        res = "deadline differs";
    else if (got_dm < 0 || (got_dm == 0) != (f->has_deadline_mono != 0) ||
             (f->has_deadline_mono && dl_mono != f->deadline_mono))
        res = "deadline_mono differs";
    else if (got_rt < 0 || (got_rt == 0) != (f->has_retry_until != 0) || (f->has_retry_until && retry != f->retry_until))
        res = "retry_until_mono differs";
    if (!res && f->id_kind == FP_ID_INT) {
        /* the reply echoes the id: cJSON's printing and ours must match */
        char *s = cJSON_PrintUnformatted(id), mine[32];
        snprintf(mine, sizeof mine, "%lld", f->id);
        if (!s || strcmp(s, mine) != 0)
            res = "id prints differently";
        cJSON_free(s);
    }
    fields += f->id_kind != FP_ID_ABSENT;
    fields += f->has_rid != 0;
    fields += f->has_deadline != 0;
    fields += f->has_deadline_mono != 0;
    fields += f->has_retry_until != 0;
    if (!res && cJSON_GetArraySize(req) != fields)
        res = "cJSON sees other fields";
    cJSON_Delete(req);
    return res;
}
/* Do two readings of one payload say the same (fp_parse against
 * fp_parse_general: the straight-through reader of the CLI's form against
 * the reader of any order)?  NULL when they do, else the first field that
 * differs. */
static inline const char *fp_same(const fp_req *a, const fp_req *b)
{
    if (a->op != b->op)
        return "op";
    if (a->id_kind != b->id_kind || (a->id_kind == FP_ID_INT && a->id != b->id))
        return "id";
    if (a->has_rid != b->has_rid ||
        (a->has_rid && (memcmp(a->rid, b->rid, sizeof a->rid) != 0 || a->rid_hex != b->rid_hex)))
        return "rid";
    if (a->has_deadline != b->has_deadline || (a->has_deadline && a->deadline != b->deadline))
        return "deadline";
    if (a->has_deadline_mono != b->has_deadline_mono ||
        (a->has_deadline_mono && a->deadline_mono != b->deadline_mono))
        return "deadline_mono";
    if (a->has_retry_until != b->has_retry_until || (a->has_retry_until && a->retry_until != b->retry_until))
        return "retry_until_mono";
    return NULL;
}
#endif

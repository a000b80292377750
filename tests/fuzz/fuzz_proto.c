/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_proto.c: the request parser and the typed field getters on arbitrary
 * payloads, and the replies built from whatever parsed.  Checks: a parsed
 * request is an object with a string op; every getter answers 0, 1 or -1
 * and only 0 gives a value of the right type; the reply echoes the id. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static const char *const fields[] = {"op", "id", "name", "pid", "unlink", "opts", "data", "x"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proto_err code = PROTO_OK;
    char msg[256];
    cJSON *req = proto_parse_request((const char *)data, size, &code, msg, sizeof msg);
    if (!req) {
        if (code != PROTO_E_BAD_JSON && code != PROTO_E_BAD_REQUEST)
            abort();
        if (!memchr(msg, '\0', sizeof msg))
            abort();
        return 0;
    }
    if (!cJSON_IsObject(req) || !proto_op(req))
        abort();
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *s = NULL;
        bool b;
        int64_t v;
        int r = proto_get_string(req, fields[i], &s, msg, sizeof msg);
        if (r < -1 || r > 1 || (r == 0 && !s))
            abort();
        r = proto_get_bool(req, fields[i], &b, msg, sizeof msg);
        if (r < -1 || r > 1)
            abort();
        r = proto_get_int(req, fields[i], -1000, 1000, &v, msg, sizeof msg);
        if (r < -1 || r > 1 || (r == 0 && (v < -1000 || v > 1000)))
            abort();
        r = proto_get_int(req, fields[i], INT64_MIN, INT64_MAX, &v, msg, sizeof msg);
        if (r < -1 || r > 1)
            abort();
    }
    cJSON *ok = proto_reply_ok(req);
    cJSON *err = proto_reply_err(req, PROTO_E_UNKNOWN_OP, "no op %s", proto_op(req));
    if (!ok || !err)
        abort();
    /* compared as printed: cJSON_Compare says inf != inf (1e999 parses) */
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    char *a = id ? cJSON_PrintUnformatted(id) : NULL;
    char *b = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(ok, "id"));
    if (!b || (a && strcmp(a, b) != 0) || (!a && strcmp(b, "null") != 0))
        abort();
    cJSON_free(a);
    cJSON_free(b);
    char *s = cJSON_PrintUnformatted(err);
    cJSON_free(s);
    cJSON_Delete(ok);
    cJSON_Delete(err);
    cJSON_Delete(req);
    return 0;
}

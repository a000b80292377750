/* SPDX-License-Identifier: Apache-2.0 */
/* proto.c: request parsing and reply building for the framed JSON protocol.
 *
 * A payload is untrusted bytes with an explicit length, never a C string:
 * it is parsed with cJSON_ParseWithLength, and refused when anything but
 * whitespace follows the value.  cJSON stores strings NUL-terminated, so a
 * string holding a NUL (raw, or escaped as \u0000) would reach the handlers
 * silently shortened ("a\u0000/../x" read as "a"); such requests are refused
 * here once, instead of in every handler.
 *
 * Error replies carry a stable code for programs and a message for people. */
#include "proto.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void proto_msg(char *msg, size_t msglen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void proto_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || msglen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

/* In valid JSON every backslash is inside a string and starts an escape, so
 * scanning pairs finds every \u0000 without a full tokenizer. */
static bool proto_has_nul_escape(const char *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] != '\\')
            continue;
        if (p[i + 1] == 'u' && i + 5 < len && memcmp(p + i + 2, "0000", 4) == 0)
            return true;
        i++; /* skip the escaped character */
    }
    return false;
}

static const struct {
    const char *code, *words;
} proto_errs[PROTO_E_COUNT] = {
    [PROTO_OK] = {NULL, ""},
#define PROTO_ERR_ROW(name, code, err, words) [PROTO_E_##name] = {code, words},
    PROTO_ERRORS(PROTO_ERR_ROW)
#undef PROTO_ERR_ROW
};

const char *proto_err_code(proto_err e)
{
    return e > PROTO_OK && e < PROTO_E_COUNT ? proto_errs[e].code : NULL;
}

const char *proto_err_words(proto_err e)
{
    return e > PROTO_OK && e < PROTO_E_COUNT ? proto_errs[e].words : "";
}

proto_err proto_err_find(const char *code)
{
    for (int e = PROTO_OK + 1; code && e < PROTO_E_COUNT; e++)
        if (strcmp(proto_errs[e].code, code) == 0)
            return (proto_err)e;
    return PROTO_OK;
}

cJSON *proto_parse_request(const char *payload, size_t len, proto_err *code, char *msg, size_t msglen)
{
    if (len == 0) {
        *code = PROTO_E_BAD_JSON;
        proto_msg(msg, msglen, "empty payload: a request is a JSON object");
        return NULL;
    }
    if (memchr(payload, '\0', len)) {
        *code = PROTO_E_BAD_JSON;
        proto_msg(msg, msglen, "payload contains a NUL byte");
        return NULL;
    }
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithLengthOpts(payload, len, &end, false);
    if (!req) {
        *code = PROTO_E_BAD_JSON;
        size_t at = end && end >= payload && end <= payload + len ? (size_t)(end - payload) : 0;
        proto_msg(msg, msglen, "payload is not valid JSON (error near byte %zu)", at);
        return NULL;
    }
    if (end) {
        const char *e = payload + len;
        for (const char *q = end; q < e; q++) {
            if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
                cJSON_Delete(req);
                *code = PROTO_E_BAD_JSON;
                proto_msg(msg, msglen, "unexpected bytes after the JSON value (at byte %zu)",
                          (size_t)(q - payload));
                return NULL;
            }
        }
    }
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        *code = PROTO_E_BAD_REQUEST;
        proto_msg(msg, msglen, "a request must be a JSON object");
        return NULL;
    }
    if (proto_has_nul_escape(payload, len)) {
        cJSON_Delete(req);
        *code = PROTO_E_BAD_REQUEST;
        proto_msg(msg, msglen, "strings must not contain NUL (\\u0000)");
        return NULL;
    }
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
    if (!op) {
        cJSON_Delete(req);
        *code = PROTO_E_BAD_REQUEST;
        proto_msg(msg, msglen, "field \"op\" is missing: a request names its operation in \"op\"");
        return NULL;
    }
    if (!cJSON_IsString(op) || !op->valuestring) {
        cJSON_Delete(req);
        *code = PROTO_E_BAD_REQUEST;
        proto_msg(msg, msglen, "field \"op\" must be a string");
        return NULL;
    }
    return req;
}

const char *proto_op(const cJSON *req)
{
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
    return cJSON_IsString(op) && op->valuestring ? op->valuestring : "";
}

/* {"ok":ok,"id":<req's id or null>} */
static cJSON *proto_reply(const cJSON *req, bool ok)
{
    cJSON *r = cJSON_CreateObject();
    if (!r)
        return NULL;
    const cJSON *id = req ? cJSON_GetObjectItemCaseSensitive(req, "id") : NULL;
    cJSON *idc = id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull();
    if (!cJSON_AddBoolToObject(r, "ok", ok) || !idc) {
        cJSON_Delete(idc);
        cJSON_Delete(r);
        return NULL;
    }
    cJSON_AddItemToObject(r, "id", idc);
    return r;
}

cJSON *proto_reply_ok(const cJSON *req) { return proto_reply(req, true); }

cJSON *proto_reply_err(const cJSON *req, proto_err e, const char *fmt, ...)
{
    const char *code = proto_err_code(e);
    cJSON *r = code ? proto_reply(req, false) : NULL; /* (PROTO_OK is no error code) */
    if (!r)
        return NULL;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!cJSON_AddStringToObject(r, "error", code) || !cJSON_AddStringToObject(r, "message", msg)) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

int proto_get_string(const cJSON *req, const char *field, const char **out, char *msg, size_t msglen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, field);
    if (!v)
        return 1;
    if (!cJSON_IsString(v) || !v->valuestring) {
        proto_msg(msg, msglen, "field \"%s\" must be a string", field);
        return -1;
    }
    *out = v->valuestring;
    return 0;
}

int proto_get_bool(const cJSON *req, const char *field, bool *out, char *msg, size_t msglen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, field);
    if (!v)
        return 1;
    if (!cJSON_IsBool(v)) {
        proto_msg(msg, msglen, "field \"%s\" must be true or false", field);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A JSON number is read as a double (cJSON, as most parsers do), which
 * keeps 53 bits: above 2^53 an integer is read as the nearest double, so
 * INT64_MAX arrives as 2^63, one past it.  A number is therefore taken when
 * some integer from min to max reads as the same double, i.e. when its
 * double lies between the doubles min and max read as (rounding is
 * monotonic), and then as the nearest integer within the range: INT64_MAX,
 * the documented top of a deadline or a size, is accepted (as itself, and
 * so is 2^63, which no reader of doubles can tell from it), and whatever is
 * refused is outside the range the message names.  (Refusing 2^63 refused
 * INT64_MAX with a message that named it as allowed.) */
int proto_get_int(const cJSON *req, const char *field, int64_t min, int64_t max, int64_t *out,
                  char *msg, size_t msglen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, field);
    if (!v)
        return 1;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    double lo = (double)min, hi = (double)max;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi) {
        proto_msg(msg, msglen, "field \"%s\" must be an integer from %lld to %lld", field,
                  (long long)min, (long long)max);
        return -1;
    }
    /* lo or hi may lie just outside the range (2^63 does, and converts
     * to no int64_t): such a d is the range's end */
    int64_t i = d >= 9223372036854775808.0 ? max : (int64_t)d;
    *out = i < min ? min : i > max ? max : i;
    return 0;
}

/* proto.h: requests and replies of the framed JSON protocol (docs/protocol.md).
 * A request is an object with a string "op" and an "id" (any JSON value) that
 * the reply echoes.  A reply is {"ok":true,"id":...,...} or
 * {"ok":false,"id":...,"error":"<code>","message":"<words>"}. */
#ifndef ETSMGR_PROTO_H
#define ETSMGR_PROTO_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define PROTO_VERSION 1

/* Parse a payload into a request.  On failure returns NULL and sets *code
 * ("bad_json", "bad_request") and msg. */
cJSON *proto_parse_request(const char *payload, size_t len, const char **code, char *msg, size_t msglen);
const char *proto_op(const cJSON *req); /* the "op" string (parse checked it) */

cJSON *proto_reply_ok(const cJSON *req);
cJSON *proto_reply_err(const cJSON *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Field getters: 0 when present with the right type, 1 when absent (out
 * untouched), -1 when present with the wrong type or out of range (msg says
 * which field and what it must be). */
int proto_get_string(const cJSON *req, const char *field, const char **out, char *msg, size_t msglen);
int proto_get_bool(const cJSON *req, const char *field, bool *out, char *msg, size_t msglen);
int proto_get_int(const cJSON *req, const char *field, int64_t min, int64_t max, int64_t *out,
                  char *msg, size_t msglen);
#endif

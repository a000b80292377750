/* SPDX-License-Identifier: Apache-2.0 */
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

/* Every error code a socket of the project sends, once:
 *   X(NAME, "code", what libetsmgr returns for it, what it means)
 * The programs send PROTO_E_NAME (proto_reply_err takes nothing else),
 * libetsmgr maps a received code back to its etsmgr_err through the third
 * column (a code it does not know is ETSMGR_EREFUSED), and the test
 * proto/error_codes_documented checks that docs/protocol.md lists every
 * code.  A new code is one line here plus its line in docs/protocol.md.
 * (The third column names etsmgr.h's constants; only the library, which
 * includes it, expands that column.) */
#define PROTO_ERRORS(X)                                                                            \
    /* every socket, or several */                                                                 \
    X(BAD_JSON, "bad_json", ETSMGR_EREFUSED, "the payload is not valid JSON")                     \
    X(BAD_REQUEST, "bad_request", ETSMGR_EREFUSED, "a field is missing or of the wrong type")     \
    X(UNKNOWN_OP, "unknown_op", ETSMGR_EREFUSED, "no such op on this socket")                     \
    X(FRAME_TOO_LARGE, "frame_too_large", ETSMGR_EREFUSED, "the length prefix is over 65536")     \
    X(TOO_MANY_CONNECTIONS, "too_many_connections", ETSMGR_EREFUSED,                               \
      "the connection limit is reached")                                                           \
    X(UNEXPECTED_FD, "unexpected_fd", ETSMGR_EREFUSED, "an fd came with an op that takes none")   \
    X(TOO_MANY_FDS, "too_many_fds", ETSMGR_EREFUSED,                                               \
      "the server holds its limit of fds of unfinished frames; the connection is closed")          \
    X(NOT_FOUND, "not_found", ETSMGR_EREFUSED, "no such table, or no such child")                 \
    X(INTERNAL, "internal", ETSMGR_EREFUSED, "a system call failed in the server")                \
    /* etsmgrd */                                                                                  \
    X(BAD_NAME, "bad_name", ETSMGR_ENAME, "the table name is invalid")                            \
    X(OWNED, "owned", ETSMGR_EOWNED, "a living process owns the table")                           \
    X(EXISTS, "exists", ETSMGR_EEXIST, "new_table exclusive: the table or its object exists")     \
    X(NOT_OWNER, "not_owner", ETSMGR_EREFUSED, "the caller does not own the table")               \
    X(FORBIDDEN, "forbidden", ETSMGR_EREFUSED, "the table belongs to another uid")                \
    X(BAD_FD, "bad_fd", ETSMGR_EREFUSED, "the fd is not that table's shared-memory object")       \
    X(NO_FD, "no_fd", ETSMGR_EREFUSED, "add_table came without an fd")                            \
    X(TOO_MANY_TABLES, "too_many_tables", ETSMGR_EREFUSED, "the --max-tables limit is reached")   \
    X(INVALID_TABLE, "invalid_table", ETSMGR_EREFUSED, "the object is not a valid table")         \
    X(NO_SPACE, "no_space", ETSMGR_EREFUSED, "no shared memory left, or max_bytes too small")     \
    X(TOO_LARGE, "too_large", ETSMGR_EREFUSED, "over --max-table-bytes or --max-uid-bytes")        \
    X(NO_SUCH_PID, "no_such_pid", ETSMGR_EREFUSED, "no connection of that pid and uid")           \
    X(NO_SNAPSHOT_DIR, "no_snapshot_dir", ETSMGR_EREFUSED, "etsmgrd runs without --snapshot-dir") \
    X(SNAPSHOT_FAILED, "snapshot_failed", ETSMGR_EREFUSED, "some tables could not be saved")      \
    X(NOT_PERMITTED, "not_permitted", ETSMGR_EPERM, "the table's access mode refuses the open")   \
    X(LOCKED, "locked", ETSMGR_ELOCKED, "a live process holds the table's lock and does not let go") \
    X(WRONG_TYPE, "wrong_type", ETSMGR_EREFUSED, "new_table: the table exists with another type")  \
    X(TOO_MANY_WAITS, "too_many_waits", ETSMGR_EREFUSED,                                           \
      "new_table wait: the connection already has its limit of waits queued")                     \
    /* etscounterd */                                                                              \
    X(EXPIRED, "expired", ETSMGR_EEXPIRED, "the request's deadline passed; it was not counted")   \
    X(RID_STORE_FULL, "rid_store_full", ETSMGR_ERIDFULL,                                           \
      "too many request ids are still kept; it was not counted")                                   \
    X(TABLE_BUSY, "table_busy", ETSMGR_ELOCKED,                                                    \
      "another process held the table's lock past --lock-timeout; nothing was done")               \
    X(TABLE_ERROR, "table_error", ETSMGR_EREFUSED, "an operation on the table failed")            \
    X(TABLE_FULL, "table_full", ETSMGR_EREFUSED, "the table reached its max_bytes")               \
    X(CORRUPT, "corrupt", ETSMGR_EREFUSED, "the table failed validation")                         \
    /* etssup */                                                                                   \
    X(BUSY, "busy", ETSMGR_EREFUSED, "a restart of that child is already in progress")            \
    X(STOPPING, "stopping", ETSMGR_EREFUSED, "etssup is stopping")                                \
    X(START_FAILED, "start_failed", ETSMGR_EREFUSED, "the child could not be started")            \
    X(EXITED, "exited", ETSMGR_EREFUSED, "the child exited before it was ready")

typedef enum proto_err {
    PROTO_OK = 0, /* not a code: "no error" where one may be given */
#define PROTO_ERR_ENUM(name, code, err, words) PROTO_E_##name,
    PROTO_ERRORS(PROTO_ERR_ENUM)
#undef PROTO_ERR_ENUM
    PROTO_E_COUNT
} proto_err;

const char *proto_err_code(proto_err e);  /* "bad_json"; NULL for PROTO_OK or out of range */
const char *proto_err_words(proto_err e); /* what it means; "" for PROTO_OK */
proto_err proto_err_find(const char *code); /* PROTO_OK when no code is that */

/* Parse a payload into a request.  On failure returns NULL and sets *code
 * (PROTO_E_BAD_JSON, PROTO_E_BAD_REQUEST) and msg. */
cJSON *proto_parse_request(const char *payload, size_t len, proto_err *code, char *msg, size_t msglen);
const char *proto_op(const cJSON *req); /* the "op" string (parse checked it) */

cJSON *proto_reply_ok(const cJSON *req);
cJSON *proto_reply_err(const cJSON *req, proto_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Field getters: 0 when present with the right type, 1 when absent (out
 * untouched), -1 when present with the wrong type or out of range (msg says
 * which field and what it must be). */
int proto_get_string(const cJSON *req, const char *field, const char **out, char *msg, size_t msglen);
int proto_get_bool(const cJSON *req, const char *field, bool *out, char *msg, size_t msglen);
int proto_get_int(const cJSON *req, const char *field, int64_t min, int64_t max, int64_t *out,
                  char *msg, size_t msglen);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* fastparse.h: etscounterd's request fast path: the usual count, check and
 * ping requests read without building a cJSON tree (see fastparse.c). */
#ifndef ETSCOUNTERD_FASTPARSE_H
#define ETSCOUNTERD_FASTPARSE_H
#include <stddef.h>
#include <stdint.h>

#define FP_RID_LEN 16    /* bytes of a request id (32 hex digits) */
#define FP_INT_DIGITS 15 /* longest integer taken: below 2^53, exact as a double */

enum fp_op { FP_COUNT = 1, FP_CHECK, FP_PING };
enum fp_id { FP_ID_ABSENT = 0, FP_ID_NULL, FP_ID_INT };

typedef struct fp_req {
    enum fp_op op;
    enum fp_id id_kind;
    int has_rid;
    int has_deadline; /* wall clock, from older clients */
    int has_deadline_mono;
    int has_retry_until;
    long long id;        /* FP_ID_INT */
    const char *rid_hex; /* the 32 digits inside the payload (not NUL-terminated) */
    int64_t deadline;
    int64_t deadline_mono;
    int64_t retry_until; /* "retry_until_mono" */
    uint8_t rid[FP_RID_LEN];
} fp_req;

/* 1: payload[0..len) is a request of a known shape and *out says all it
 * holds; cJSON (proto_parse_request and the field getters) would read the
 * same.  0: anything else, for the general parser to read and, when it is
 * wrong, to explain (*out is then left in no particular state).  Never
 * allocates. */
int fp_parse(const char *payload, size_t len, fp_req *out);

/* The same answer from the reader of any key order and whitespace alone,
 * without the straight-through reader of the CLI's form that fp_parse
 * tries first (fastparse.c): for the tests and fuzz_fastparse, which hold
 * each reader to cJSON and the two to each other. */
int fp_parse_general(const char *payload, size_t len, fp_req *out);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* counter.h: the counter kept in the table "etscounter", with exactly-once
 * request records (see counter.c for the key layout). */
#ifndef ETSCOUNTERD_COUNTER_H
#define ETSCOUNTERD_COUNTER_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "etsmgr.h"
#include "table.h" /* tbl_once_req */

#define CTR_TABLE "etscounter"
#define CTR_KEY "count"
#define CTR_RID_LEN ETSMGR_RID_LEN /* a request id: 128 bits, 32 hex digits on the wire */

/* Creates count = 0 when it is missing (a new table, or one whose creator
 * died before the first insert).  *value: the current count. */
int ctr_init(etsmgr_table *t, int64_t *value);

/* 32 hex digits -> 16 bytes; -1 when the text is not that. */
int ctr_parse_rid(const char *hex, uint8_t rid[CTR_RID_LEN]);

/* One count.  With rid (not NULL): exactly once (see counter.c): the
 * increment and the record rid -> value are one atomic change; a rid
 * already recorded returns its value with *dup = 1 and changes nothing.
 * Without rid: a plain update_counter.  Errors are etsmgr's:
 * ETSMGR_EEXPIRED (deadline passed, not counted), ETSMGR_ERIDFULL (too
 * many rids still kept, not counted), ETSMGR_ELOCKED (lock timeout). */
typedef struct ctr_req {
    const uint8_t *rid;      /* NULL: no exactly-once */
    int64_t deadline_ms;     /* CLOCK_MONOTONIC ms; 0: none */
    int64_t keep_until_ms;   /* CLOCK_MONOTONIC ms: remember rid until then */
    uint64_t max_records;    /* rids kept at once, at most */
    int die_after_commit;    /* test hook: SIGKILL right after the commit */
    int stop_in_commit;      /* test hook: SIGSTOP inside the change, after the deadline check */
} ctr_req;
int ctr_count(etsmgr_table *t, const ctr_req *q, int64_t *value, int *dup);
/* Exactly-once counts of the counter as one change (group commit:
 * tbl_once_count_many): each q[i] answered as if counted alone; returns
 * how many were answered, from the first, or an error answering none. */
int ctr_count_many(etsmgr_table *t, tbl_once_req *q, size_t n);

/* The user entries (bookkeeping hidden) into data (a JSON object) and, in
 * the seed's Erlang notation, into erl ("[{count,2}]").  Verifies the table
 * first: ETSMGR_ECORRUPT with the reason in why. */
int ctr_check(etsmgr_table *t, cJSON *data, char *erl, size_t erllen, char *why, size_t whylen);
/* One bounded look at the request-id records for a shrink after a burst,
 * as a change of its own: called once the first answers are out, off the
 * path of any count (client/lib/table_once.c, tbl_once_tidy).  1 when
 * more expired records wait past the look's bound: call again. */
int ctr_tidy(etsmgr_table *t);
#endif

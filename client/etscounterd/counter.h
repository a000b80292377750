/* counter.h: the counter kept in the table "etscounter", with exactly-once
 * request records (see counter.c for the key layout). */
#ifndef ETSCOUNTERD_COUNTER_H
#define ETSCOUNTERD_COUNTER_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "etsmgr.h"

#define CTR_TABLE "etscounter"
#define CTR_KEY "count"
#define CTR_RID_LEN 16     /* a request id: 128 bits, 32 hex digits on the wire */
#define CTR_RID_KEEP 4096u /* request ids remembered */

/* Creates count = 0 when it is missing (a new table, or one whose creator
 * died before the first insert).  *value: the current count. */
int ctr_init(etsmgr_table *t, int64_t *value);

/* 32 hex digits -> 16 bytes; -1 when the text is not that. */
int ctr_parse_rid(const char *hex, uint8_t rid[CTR_RID_LEN]);

/* Counts once.  With rid (not NULL): the increment and the record rid ->
 * value are one atomic group; a rid already recorded returns its value with
 * *dup = 1 and changes nothing.  Without rid: a plain update_counter.
 * deadline_ms (wall clock, ms since the epoch; 0: none): a rid not recorded
 * yet is not counted once the deadline has passed; CTR_EXPIRED then.
 * die_after_commit: raise(SIGKILL) right after the commit (test hook). */
#define CTR_EXPIRED 1
int ctr_count(etsmgr_table *t, const uint8_t *rid, int64_t deadline_ms, int64_t *value, int *dup,
              int die_after_commit);

/* The user entries (bookkeeping hidden) into data (a JSON object) and, in
 * the seed's Erlang notation, into erl ("[{count,2}]").  Verifies the table
 * first: ETSMGR_ECORRUPT with the reason in why. */
int ctr_check(etsmgr_table *t, cJSON *data, char *erl, size_t erllen, char *why, size_t whylen);
#endif

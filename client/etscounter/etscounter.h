/* SPDX-License-Identifier: Apache-2.0 */
/* etscounter.h: the CLI's parts (main.c: options and output; call.c: the
 * request with retries). */
#ifndef ETSCOUNTER_H
#define ETSCOUNTER_H
#include <stddef.h>
#include <cjson/cJSON.h>

/* exit statuses (sysexits.h values; documented in etscounter(1)) */
#define EC_OK 0
#define EC_USAGE 64
#define EC_UNAVAILABLE 69
#define EC_FAIL 70
#define EC_IOERR 74 /* done, but the answer could not be written out */
#define EC_MAYBE 75 /* count: sent, and no final answer: it may have been counted */

/* Sends req to the socket at path and reads its reply, retrying the same
 * request while etscounterd restarts, until the request's retry_until_mono
 * (a count's), else until timeout_ms + grace_ms from the call (the grace is
 * for requests that carry a deadline of timeout_ms, see call.c).  resend:
 * the request may be sent again after a connection closed without a reply.
 * EC_OK with *reply (which may be an error reply), else EC_UNAVAILABLE or
 * EC_FAIL with words in why; *sent counts the times the request was
 * sent, in part or whole: 0, it never reached etscounterd; more, a count
 * may have been applied (2 or more: a connection broke with it in hand).
 * A connection refused unread (too_many_connections) is tried again and
 * is not counted in *sent.  EC_UNAVAILABLE
 * at once when nothing serves the instance rt and nothing will (no socket,
 * no lock held). */
#define EC_GRACE_MS 1000
/* The request etscounter sends for cmd (count, check, die, ping) with this
 * id; a count carries a fresh random request id and its deadlines
 * (timeout_ms from now, and the grace after).  NULL with words in why. */
cJSON *ec_request(const char *cmd, double id, int timeout_ms, char *why, size_t whylen);
/* Bench hook (tests/bench/recovery.c): when set, called with the connection
 * a reply came on, before it is closed (the bench looks whether the process
 * that answered has closed its end: it was the one it killed). */
extern void (*ec_reply_hook)(int fd);
struct rt_paths;
int ec_call(const struct rt_paths *rt, const char *path, const cJSON *req, int timeout_ms, int grace_ms, int resend,
            cJSON **reply, int *sent, char *why, size_t whylen);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* call.c: one request to etscounterd, retried while etscounterd restarts.
 *
 * A restart looks like one of: no socket file (ENOENT), nobody listening
 * (ECONNREFUSED), a full backlog (EAGAIN), or a connection that closes before
 * the reply comes (etscounterd died with our request in hand).  In each case
 * the SAME request, with the same request id, is sent again: the first
 * time at once, then after a backoff of 1 ms doubling to 100 ms, until the
 * deadline.  At once, because under etssup (or systemd) the listening
 * socket outlives etscounterd: the new connection waits in its backlog for
 * the hot standby or the restarted process, which answers it the moment it
 * serves; a first sleep (it was 5 ms) was most of what a client counting in
 * a loop lost to a kill (docs/performance.md, "Hot standby").  The backoff
 * is for a socket nobody holds (ENOENT, ECONNREFUSED).  Sending the same
 * id again is what makes a retried count safe: etscounterd recorded the id
 * with the increment, atomically, and answers a repeat with the recorded
 * value instead of counting twice.
 *
 * A request that must not be repeated once sent (die: it would kill the
 * restarted process too) is retried only while it could not be sent.
 *
 * A count also carries its deadline, and etscounterd refuses to count an
 * unknown request id past it (a request can wait in the backlog of a socket
 * handed over by etssup and be read after we gave up).  So for grace_ms
 * after the deadline we keep asking with the same id: the answer is then
 * final, the recorded value (it was counted: success) or "expired" (it was
 * not; read after retry_until_mono, though, it may come from a lookup made
 * once an earlier attempt's record was dropped: main.c's ec_count_unknown),
 * and "etscounter count exited 0" stays exactly "it was counted".
 *
 * Retrying is for a restart, not for a system that is not running: when the
 * socket is missing or refuses and no process holds the instance's locks
 * (etssup's, which restarts etscounterd, or etscounterd's own), nobody will
 * come, and the answer is given at once.  A wait longer than a second is
 * said once on stderr, so that a person knows what the silence is.
 *
 * When no answer at all came after a request was sent (etscounterd dead,
 * or stopped, for the whole time), nobody can say: the caller reports
 * "may have been counted" with its own exit status. */
#include "etscounter.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "runtime.h"
#include "sock.h"

static int64_t ec_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ec_new_rid(char hex[33])
{
    unsigned char b[16];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(hex + 2 * i, 3, "%02x", b[i]);
    return 0;
}

cJSON *ec_request(const char *cmd, double id, int timeout_ms, char *why, size_t whylen)
{
    cJSON *req = cJSON_CreateObject();
    if (!req || !cJSON_AddStringToObject(req, "op", cmd) || !cJSON_AddNumberToObject(req, "id", id))
        goto oom;
    if (strcmp(cmd, "count") == 0) {
        char rid[33];
        if (ec_new_rid(rid) < 0) {
            snprintf(why, whylen, "getrandom: %s", strerror(errno));
            cJSON_Delete(req);
            return NULL;
        }
        /* the deadline on the monotonic clock, which etscounterd reads too
         * and no clock step moves; the wall-clock one for older etscounterds */
        struct timespec mono, now;
        clock_gettime(CLOCK_MONOTONIC, &mono);
        clock_gettime(CLOCK_REALTIME, &now);
        double mono_ms = (double)mono.tv_sec * 1000 + (double)(mono.tv_nsec / 1000000);
        double deadline = (double)now.tv_sec * 1000 + (double)(now.tv_nsec / 1000000) + timeout_ms;
        if (!cJSON_AddStringToObject(req, "rid", rid) || !cJSON_AddNumberToObject(req, "deadline", deadline) ||
            !cJSON_AddNumberToObject(req, "deadline_mono", mono_ms + timeout_ms) ||
            !cJSON_AddNumberToObject(req, "retry_until_mono", mono_ms + timeout_ms + EC_GRACE_MS))
            goto oom;
    }
    return req;
oom:
    snprintf(why, whylen, "out of memory");
    cJSON_Delete(req);
    return NULL;
}

void (*ec_reply_hook)(int fd);

static int ec_retryable_connect(int e)
{
    return e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == ECONNRESET || e == EINTR;
}

/* too_many_connections: the server's answer to a connection over its
 * limit, sent before it reads anything of it */
static int ec_refused_unread(const cJSON *rep)
{
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "error"));
    return !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "ok")) && code &&
           strcmp(code, "too_many_connections") == 0;
}

static int ec_gave_up(const char *path, int attempts, int64_t took, const char *last, char *why, size_t whylen)
{
    snprintf(why, whylen,
             "etscounterd at %s did not answer: %d attempt%s in %lld ms with the same request, "
             "the last one failed with %s (is etscounterd running? try --timeout)",
             path, attempts, attempts == 1 ? "" : "s", (long long)took, last);
    return EC_UNAVAILABLE;
}

int ec_call(const rt_paths *rt, const char *path, const cJSON *req, int timeout_ms, int grace_ms, int resend,
            cJSON **reply, int *sentp, char *why, size_t whylen)
{
    int64_t start = ec_now_ms(), deadline = start + timeout_ms + grace_ms;
    /* a count's own retry_until_mono, not a later clock read's: etscounterd
     * keeps its request id until then and no longer, and a retry that came
     * after it (this clock read was a moment later, more on a busy machine)
     * could find it forgotten and be told "expired" of a count it made */
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(req, "retry_until_mono");
    if (cJSON_IsNumber(until))
        deadline = (int64_t)until->valuedouble;
    int attempts = 0, backoff = 0, told = 0;
    char last[200] = "nothing tried";
    *reply = NULL;
    *sentp = 0;
    for (;;) {
        attempts++;
        int fd = sock_connect_unix_within(path, 0); /* a full backlog is EAGAIN: tried again below */
        if (fd < 0) {
            int e = errno;
            snprintf(last, sizeof last, "connect: %s", strerror(e));
            if (!ec_retryable_connect(e)) {
                snprintf(why, whylen, "cannot connect to %s: %s", path, strerror(e));
                return EC_FAIL;
            }
            if ((e == ENOENT || e == ECONNREFUSED) && sock_instance_served(rt->dir, "etscounterd") == 0) {
                snprintf(why, whylen,
                         "etscounterd is not running: %s %s and no etssup or etscounterd holds the "
                         "instance's lock; start it with etssup (make run in the source tree), or see "
                         "`etsmgrctl env` if it runs elsewhere",
                         path, e == ENOENT ? "does not exist" : "refuses connections");
                return EC_UNAVAILABLE;
            }
        } else {
            int r = frame_write_json(fd, req, NULL, 0);
            if (r < 0) {
                snprintf(last, sizeof last, "sending the request: %s", strerror(errno));
                ++*sentp; /* part of it may have reached the socket */
                close(fd);
                /* not sent, or the peer died before reading: safe to send again */
            } else {
                ++*sentp;
                int64_t left = deadline - ec_now_ms();
                cJSON *rep = NULL;
                r = frame_read_json(fd, &rep, NULL, NULL, 0, left > 0 ? (int)left : 1);
                int e = errno;
                if (r == 0 && ec_reply_hook)
                    ec_reply_hook(fd);
                close(fd);
                if (r == 0 && !ec_refused_unread(rep)) {
                    *reply = rep;
                    return EC_OK;
                }
                if (r == 0) {
                    /* refused at accept, the request unread (conn.c's
                     * srv_refuse): it never reached etscounterd, and the
                     * limit is a moment's (a crowd reconnecting after a
                     * kill), so the same request goes again */
                    --*sentp;
                    cJSON_Delete(rep);
                    snprintf(last, sizeof last, "etscounterd refused the connection (too_many_connections)");
                } else if (e == ETIMEDOUT) {
                    snprintf(why, whylen,
                             "no reply from etscounterd at %s within %d ms (%d attempt%s; the last one "
                             "was sent and not answered)",
                             path, timeout_ms + grace_ms, attempts, attempts == 1 ? "" : "s");
                    return EC_UNAVAILABLE;
                } else if (e == EBADMSG || e == EMSGSIZE) {
                    snprintf(why, whylen, "etscounterd at %s sent a reply this program cannot read (%s)",
                             path, strerror(e));
                    return EC_FAIL;
                } else {
                    snprintf(last, sizeof last, "the connection closed before the reply (%s)", strerror(e));
                    if (!resend) {
                        snprintf(why, whylen, "%s: %s; not sent again", path, last);
                        return EC_UNAVAILABLE;
                    }
                }
            }
        }
        int64_t now = ec_now_ms();
        if (now + backoff > deadline)
            return ec_gave_up(path, attempts, now - start, last, why, whylen);
        if (!told && now - start >= 1000) {
            told = 1;
            fprintf(stderr, "etscounter: waiting for etscounterd at %s (instance %s; %s), for up to %lld ms more\n",
                    path, rt->instance, last, (long long)(deadline - now));
        }
        struct timespec ts = { 0, (long)backoff * 1000000L };
        while (backoff > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        /* a sleep may end late: nothing is sent past the deadline */
        if (backoff > 0 && (now = ec_now_ms()) > deadline)
            return ec_gave_up(path, attempts, now - start, last, why, whylen);
        backoff = backoff == 0 ? 1 : backoff * 2 > 100 ? 100 : backoff * 2;
    }
}

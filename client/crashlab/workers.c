/* SPDX-License-Identifier: Apache-2.0 */
/* workers.c: the counting clients.
 *
 * Each worker is a thread with one blocking connection to etscounter.sock,
 * speaking the wire protocol directly (frame.h), one request at a time:
 * the simplest client there is, which is what makes its record trustworthy.
 * Like the etscounter CLI, every count carries its own 128-bit request id,
 * and when the connection fails before the reply (etscounterd was killed,
 * the socket is gone while etssup restarts) the SAME request is sent again,
 * the first time at once (the socket etssup holds queues it for the next
 * etscounterd), then after a short backoff (1 ms doubling to 32 ms; the
 * CLI's up to 100 ms would blur the recovery times the lab measures).  A request is abandoned
 * when the recovery timeout has passed, or would before the backoff ends
 * (nothing is sent after it: see lab_count), and that is a failure of the run.
 *
 * Every acknowledged value is recorded with the time its reply arrived and
 * the time its connection was opened; the killer uses the latter to tell a
 * reply of the new etscounterd from one the old process sent just before
 * it died.  Request ids come from getrandom, never from --seed: two runs
 * with one seed against one --attach'ed table must not share ids.
 *
 * ETSMGR_CRASHLAB_TEST_FAULT (test hook, see etsmgr-crashlab(1)) makes
 * worker 0 misbehave on purpose, to show the verdict catches it:
 *   dup:N   after its N-th ack, it counts once more and forgets the reply
 *           (an increment nobody acknowledged: what a retry without
 *           exactly-once does)
 *   lose:N  it records its N-th ack twice (as if two requests had been
 *           told the same value: an increment lost) */
#include "lab.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "sock.h"

static void lab_problem(lab_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lab_problem(lab_worker *w, const char *fmt, ...)
{
    if (w->first_problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_problem, sizeof w->first_problem, fmt, ap);
    va_end(ap);
}

static int lab_record(lab_worker *w, int64_t value, int64_t t, int64_t conn_ns)
{
    if (w->nacks == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096;
        lab_ack *a = realloc(w->acks, cap * sizeof *a);
        if (!a)
            return -1;
        w->acks = a;
        w->cap = cap;
    }
    if (w->nacks > 0 && value <= w->last_value) {
        if (!w->not_increasing) {
            lab_problem(w, "was acknowledged %lld after %lld (values must strictly increase)", (long long)value,
                        (long long)w->last_value);
        }
        w->not_increasing++;
    }
    w->acks[w->nacks++] = (lab_ack){ .value = value, .t_ns = t, .conn_ns = conn_ns };
    w->last_value = value;
    lab *l = w->lab;
    long long prev = atomic_load(&l->last_ack_ns);
    while (prev < t && !atomic_compare_exchange_weak(&l->last_ack_ns, &prev, (long long)t))
        ;
    atomic_fetch_add(&l->acked_total, 1);
    return 0;
}

static bool lab_retryable(int e)
{
    return e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == ECONNRESET || e == EPIPE || e == EINTR ||
           e == ETIMEDOUT;
}

/* One count, retried with the same rid until answered.  1: *value is
 * acknowledged; 0: an error reply; -1: given up. */
static int lab_count(lab_worker *w, int *fd, int64_t *conn_ns, long id, int64_t *value, int64_t *t_ack)
{
    lab *l = w->lab;
    char rid[33], payload[160];
    for (int i = 0; i < 2; i++) {
        uint64_t x = lab_rand(w->rng);
        snprintf(rid + 16 * i, 17, "%016llx", (unsigned long long)x);
    }
    /* no deadline but the recovery timeout, sent as retry_until_mono: the
     * last moment this worker sends the request, which etscounterd keeps
     * the rid until and, without a deadline, takes as one: an attempt it
     * reads later is refused (expired), for its record may be gone */
    int64_t until = lab_now_ns() + (int64_t)l->o.recovery_timeout_ms * 1000000;
    int len = snprintf(payload, sizeof payload,
                       "{\"op\":\"count\",\"id\":%ld,\"rid\":\"%s\",\"retry_until_mono\":%lld}", id, rid,
                       (long long)(until / 1000000 + 1));
    int backoff = 0;
    bool sent = false;
    for (;;) {
        if (*fd < 0) {
            *fd = sock_connect_unix(l->counter_sock);
            if (*fd < 0) {
                int e = errno;
                if (!lab_retryable(e))
                    lab_problem(w, "could not connect to %s: %s", l->counter_sock, strerror(e));
            } else {
                *conn_ns = lab_now_ns();
                w->reconnects++;
            }
        }
        if (*fd >= 0) {
            if (sent)
                w->retries++;
            sent = true;
            if (frame_write(*fd, payload, (size_t)len, NULL, 0) == 0) {
                char *rep = NULL;
                size_t rl;
                if (frame_read(*fd, &rep, &rl, NULL, NULL, 0, 5000) == 0) {
                    int64_t t = lab_now_ns();
                    cJSON *r = cJSON_ParseWithLength(rep, rl);
                    free(rep);
                    const cJSON *c = cJSON_GetObjectItemCaseSensitive(r, "count");
                    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")) && cJSON_IsNumber(c)) {
                        *value = (int64_t)c->valuedouble;
                        *t_ack = t;
                        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "duplicate")))
                            w->dup_replies++;
                        cJSON_Delete(r);
                        return 1;
                    }
                    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "message"));
                    w->errors++;
                    lab_problem(w, "got an error reply to a count: %s (request %ld)", m ? m : "no message", id);
                    cJSON_Delete(r);
                    return 0;
                }
            }
            close(*fd);
            *fd = -1;
        }
        /* nothing is sent after until: a backoff that would end past it
         * gives up now (at most 32 ms early), a sleep that ended late too */
        bool past = lab_now_ns() + (int64_t)backoff * 1000000 > until;
        if (!past && backoff > 0) {
            lab_sleep_ms(backoff);
            past = lab_now_ns() > until;
        }
        if (past) {
            w->gave_up++;
            lab_problem(w, "gave up a count after %d ms of retries with the same request id: etscounterd "
                           "never answered", l->o.recovery_timeout_ms);
            return -1;
        }
        backoff = backoff == 0 ? 1 : backoff * 2 > 32 ? 32 : backoff * 2;
    }
}

static void *lab_worker_main(void *arg)
{
    lab_worker *w = arg;
    lab *l = w->lab;
    int fd = -1;
    int64_t conn_ns = 0;
    long id = 0;
    while (!atomic_load(&l->stop_load)) {
        int64_t v, t;
        int r = lab_count(w, &fd, &conn_ns, ++id, &v, &t);
        if (r < 0)
            break;
        if (r == 0)
            continue;
        if (lab_record(w, v, t, conn_ns) < 0) {
            lab_problem(w, "out of memory recording acknowledged counts (%zu acks)", w->nacks);
            break;
        }
        if (w->index == 0 && l->o.fault_kind && (long)w->nacks == l->o.fault_at) {
            if (l->o.fault_kind == 1) {
                int64_t v2, t2;
                lab_count(w, &fd, &conn_ns, ++id, &v2, &t2); /* counted, not recorded */
            } else if (lab_record(w, v, t, conn_ns) < 0) {
                break;
            }
            atomic_store(&l->fault_done, true);
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

int lab_workers_start(lab *l, char *err, size_t errlen)
{
    l->w = calloc((size_t)l->o.workers, sizeof *l->w);
    if (!l->w) {
        snprintf(err, errlen, "out of memory for %d workers", l->o.workers);
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the main thread's */
    for (int i = 0; i < l->o.workers; i++) {
        lab_worker *w = &l->w[i];
        w->lab = l;
        w->index = i;
        uint64_t s = 0;
        if (getrandom(&s, sizeof s, 0) != sizeof s)
            s = (uint64_t)lab_now_ns();
        lab_seed(w->rng, s ^ ((uint64_t)i << 48) ^ (uint64_t)getpid());
        int e = pthread_create(&w->thread, NULL, lab_worker_main, w);
        if (e) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            snprintf(err, errlen, "pthread_create (worker %d): %s", i, strerror(e));
            return -1;
        }
        w->started = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

void lab_workers_stop(lab *l)
{
    /* A test fault must happen before the load stops, or the verdict it is
     * meant to show is missing: a short run on a loaded machine could end
     * before worker 0 reached its N-th ack. */
    for (int64_t until = lab_now_ns() + (int64_t)l->o.recovery_timeout_ms * 1000000;
         l->o.fault_kind && !atomic_load(&l->fault_done) && lab_now_ns() < until;)
        lab_sleep_ms(1);
    atomic_store(&l->stop_load, true);
    for (int i = 0; l->w && i < l->o.workers; i++)
        if (l->w[i].started) {
            pthread_join(l->w[i].thread, NULL);
            l->w[i].started = false;
        }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* counterd.h: etscounterd's state, shared by main.c (start-up, options,
 * reattachment callbacks) and serve.c (the requests on etscounter.sock). */
#ifndef ETSCOUNTERD_H
#define ETSCOUNTERD_H
#include <uv.h>
#include "conn.h"
#include "etsmgr.h"
#include "log.h"
#include "runtime.h"

/* exit statuses (documented in etscounterd(8)) */
#define ECD_EXIT_USAGE 64       /* bad command line */
#define ECD_EXIT_UNAVAILABLE 69 /* etsmgrd did not answer within --wait-timeout */
#define ECD_EXIT_SOFTWARE 70    /* anything else that stops it from serving */
#define ECD_EXIT_MGR_DIED 75    /* --on-manager-death=exit and etsmgrd died */

/* A count's record is kept until its sender may no longer send it again:
 * retry_until_mono when the request says, else its deadline plus this grace
 * (the CLI retries for 1 s after its deadline), else, with no deadline at
 * all, this long from its arrival. */
#define ECD_RETRY_GRACE_MS 5000
#define ECD_DEFAULT_KEEP_MS 60000
#define ECD_DEFAULT_MAX_RIDS 4194304ul /* 350,000 counts/s (the 50 x 16 bench) x the CLI's 6 s: 2.1 M */
#define ECD_DEFAULT_LOCK_TIMEOUT_MS 2000u
#define ECD_DEFAULT_POLL_US 50u /* --poll-us: keep polling this long after a request (busypoll.c) */
#define ECD_MAX_POLL_US 1000000u

typedef struct ecd {
    uv_loop_t *loop;
    etsmgr_client *mgr;
    etsmgr_table *t;
    conn_server *srv;
    rt_paths rt;
    char sock_path[RT_PATH_MAX];
    int exactly_once;
    int exit_on_manager_death;
    long die_after_commit; /* test hook: SIGKILL after this many commits (0: off) */
    long stop_in_commit;   /* test hook: SIGSTOP inside this many-th count (0: off) */
    unsigned long max_rids;   /* --max-request-ids */
    unsigned lock_timeout_ms; /* --lock-timeout */
    int standby;              /* --standby: wait to take the table over, then serve */
    unsigned poll_us;         /* --poll-us (0: sleep in epoll_wait at once) */
    unsigned long served;
    /* count refusals come once per request: each kind's lines are limited
     * (log_limited), so that a flood of one does not cost a write per
     * request nor hide the others */
    struct log_limit log_expired, log_ridfull, log_locked, log_failed;
    /* fires when a kind that began leaving lines out ends its window, to
     * count them (ecd_log_flush); NULL: no timer (the fuzz harness) */
    uv_timer_t *log_timer;
} ecd;

/* serve.c */
void ecd_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg);
void ecd_on_close(conn *c, void *arg);
void ecd_on_ahead(conn *c, const char *payload, size_t len, void *arg);
/* Counts the exactly-once counts kept for group commit and queues their
 * replies (serve.c); conn.c calls it once a turn's frames are served */
void ecd_on_served(void *arg);
/* Says how many refusal lines were left out in windows that have ended
 * (all of them with force, before an exit); re-arms d->log_timer for the
 * next window that will end. */
void ecd_log_flush(ecd *d, int force);

/* busypoll.c: after a turn that served a request, poll without sleeping
 * for poll_us µs (0: off); -1 when libuv refused a handle */
int ecd_busypoll_start(uv_loop_t *loop, const unsigned long *served, unsigned poll_us);
/* whether the loop polls without sleeping now (a window is open) */
int ecd_busypoll_polling(void);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* waiters.c: hot standby.  A process that asks new_table with "wait" for a
 * table a living process owns is queued as its next owner instead of being
 * refused "owned".  When the owner's connection closes, the table goes to
 * the first waiter at once -- before the daemon logs or does anything else
 * for that death -- as the reply to the request it has been waiting on, fd
 * and all.  Nothing has to start: this is Erlang's heir receiving the table
 * the instant the owner dies, which no restart (OTP, systemd, s6 all exec a
 * process) can match.
 *
 * The queue is per table, first come first served.  A waiter is a peer (a
 * connection), so a waiter that dies or disconnects leaves its queues with
 * its connection (mgrd_wait_drop_peer from peers.c).  A waiter must be a
 * process that may take the table (same uid, the actor check in
 * requests.c): waiting changes only *when* it gets the table, never
 * *whether*.
 *
 * One corner: after a restart of etsmgrd, every table is orphaned until its
 * owner adds it back (its watch does so within milliseconds).  A waiter
 * must not snatch it in between, so a table found at start whose last owner
 * pid (from its header: a hint, used only to delay a waiter, never to grant
 * anything) is still alive stays with its owner; mgrd_wait_poll hands it
 * over once that pid is gone.
 *
 * A handover is the reply to the waiter's request, fd and all.  When that
 * reply cannot go (the daemon at its fd limit: no copy of the fd), the
 * give is taken back (mgrd_reg_ungive: the table as it was) and the waiter
 * is answered "internal" without an fd, which can still go: a standby
 * waiting without a deadline must hear that it did not get the table.  A
 * table handed over this way is marked by_wait, the only kind a
 * cancel_wait lets go of (requests.c).  A give_away to a process waiting
 * for that very table answers its wait the same way (mgrd_wait_answer), on
 * the connection that waits (mgrd_wait_peer): blocked in it, the process
 * reads no transfer event. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etsmgrd.h"
#include "log.h"
#include "procstat.h"

/* While a table found at start has waiters and a live last owner, a look
 * every 20 ms hands it over once that owner is gone (no event tells us:
 * that process has no connection to this daemon). */
#define WAIT_POLL_MS 20
static uv_timer_t wait_timer;
static bool wait_timer_on;

static void on_wait_timer(uv_timer_t *h)
{
    mgrd *m = h->data;
    mgrd_wait_poll(m);
    /* once every such table is owned again (its owner added it back, or a
     * waiter got it), events serve its waiters: the look is not needed
     * even while they wait, for as long as a standby lives */
    for (const mgrd_table *rt = m->tables; rt; rt = rt->next)
        if (rt->waiters && rt->found_at_start && !rt->owner)
            return;
    uv_timer_stop(h);
}

static void wait_timer_arm(mgrd *m)
{
    if (!wait_timer_on) {
        int rc = uv_timer_init(m->loop, &wait_timer);
        if (rc < 0) {
            log_warning("waiters: uv_timer_init: %s; a waiter gets a table found at start only when its "
                        "owner comes back and goes", uv_strerror(rc));
            return;
        }
        wait_timer.data = m;
        uv_unref((uv_handle_t *)&wait_timer);
        wait_timer_on = true;
    }
    if (!uv_is_active((uv_handle_t *)&wait_timer))
        uv_timer_start(&wait_timer, on_wait_timer, WAIT_POLL_MS, WAIT_POLL_MS);
}

void mgrd_wait_stop(void)
{
    if (wait_timer_on)
        uv_close((uv_handle_t *)&wait_timer, NULL);
    wait_timer_on = false;
}

typedef struct mgrd_waiter {
    mgrd_peer *p;
    /* of the request waited on, only its id, which goes into the reply:
     * the rest (up to a 64 KiB frame) would be kept for nothing */
    cJSON *req;
    char heir_data[MGRD_HEIR_DATA_MAX + 1];
    struct mgrd_waiter *next;
} mgrd_waiter;

int mgrd_wait_add(mgrd *m, mgrd_table *rt, mgrd_peer *p, const cJSON *req, const char *heir_data)
{
    mgrd_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    cJSON *idc = id ? cJSON_Duplicate(id, 1) : NULL;
    w->req = cJSON_CreateObject();
    if (!w->req || (id && (!idc || !cJSON_AddItemToObject(w->req, "id", idc)))) {
        cJSON_Delete(idc); /* (not w->req's: the add failed) */
        cJSON_Delete(w->req);
        free(w);
        return -1;
    }
    w->p = p;
    p->waits++;
    snprintf(w->heir_data, sizeof w->heir_data, "%s", heir_data ? heir_data : "");
    mgrd_waiter **pp = &rt->waiters;
    size_t pos = 1;
    while (*pp) {
        pp = &(*pp)->next;
        pos++;
    }
    *pp = w;
    m->nwaiters++;
    if (rt->found_at_start)
        wait_timer_arm(m);
    log_info("new_table: pid=%d waits for table=%s (owned by pid=%d), number %zu in its queue.", (int)p->pid,
             rt->name, (int)rt->owner_pid, pos);
    return 0;
}

static void wait_free(mgrd *m, mgrd_waiter *w)
{
    w->p->waits--;
    cJSON_Delete(w->req);
    free(w);
    m->nwaiters--;
}

/* pid is a zombie, its whole thread group gone: dead for good, whenever
 * its parent reaps it (which may be never), though kill(pid, 0) says it
 * lives.  A leader that exited before its other threads shows Z too, and
 * still holds its files and mappings: only a task directory with the
 * leader alone counts.  False when /proc cannot say. */
static bool wait_owner_zombie(pid_t pid)
{
    proc_stat st;
    if (proc_stat_read(pid, &st) < 0 || (st.state != 'Z' && st.state != 'X'))
        return false;
    char path[48];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return false;
    int tasks = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (de->d_name[0] != '.')
            tasks++;
    closedir(d);
    return tasks == 1;
}

bool mgrd_wait_may_take(mgrd_table *rt)
{
    if (!rt->found_at_start || rt->owner_pid <= 0)
        return true;
    /* EPERM: alive, another uid's; ESRCH: gone */
    if (kill(rt->owner_pid, 0) < 0 && errno == ESRCH)
        return true;
    return wait_owner_zombie(rt->owner_pid);
}

/* Answers w's wait with rt (fd and all), which its peer now owns; -1 with
 * errno when the reply cannot go (the fd limit), and then nothing changed.
 * The table is marked by_wait: its new owner may not read the reply (its
 * call timed out), and cancel_wait lets go of such a table (requests.c). */
static int wait_send_table(mgrd *m, mgrd_table *rt, const mgrd_waiter *w)
{
    int fd = -1;
    cJSON *r = mgrd_reply_table(m, w->req, rt, false, &fd);
    int rc = r ? conn_send_json(w->p->c, r, fd) : -1;
    int e = r ? errno : ENOMEM;
    cJSON_Delete(r);
    if (rc < 0) {
        errno = e;
        return -1;
    }
    if (w->heir_data[0])
        snprintf(rt->heir_data, sizeof rt->heir_data, "%s", w->heir_data);
    rt->by_wait = true;
    return 0;
}

bool mgrd_wait_serve(mgrd *m, mgrd_table *rt)
{
    while (rt->waiters && !rt->owner) {
        if (!mgrd_wait_may_take(rt)) {
            wait_timer_arm(m); /* the poll hands it over once that owner is gone */
            return false;
        }
        mgrd_waiter *w = rt->waiters;
        rt->waiters = w->next;
        pid_t from = rt->owner_pid;
        mgrd_was was;
        mgrd_reg_was(rt, &was);
        mgrd_reg_give(m, rt, w->p);
        if (wait_send_table(m, rt, w) == 0) {
            conn_flush_now(w->p->c); /* before anything else this turn does */
            log_notice("new_table: table=%s handed at once to the waiting pid=%d (from pid=%d).", rt->name,
                       (int)w->p->pid, (int)from);
            wait_free(m, w);
            return true;
        }
        /* Cannot send it the fd (the daemon at its fd limit): it does not
         * get the table, which is as it was, and the next waiter may.  It
         * hears so in a reply without an fd, which can still go: a standby
         * waiting without a deadline must not wait on for an answer that
         * never comes. */
        int e = errno;
        log_warning("new_table: the waiting pid=%d could not be sent table=%s: %s; trying the next waiter.",
                    (int)w->p->pid, rt->name, strerror(e));
        mgrd_reg_ungive(m, rt, &was);
        cJSON *r = proto_reply_err(w->req, PROTO_E_INTERNAL,
                                   "etsmgrd could not send table %s to this process: %s; it was not handed "
                                   "over: wait again, and if it repeats raise etsmgrd's fd limit "
                                   "(LimitNOFILE=, ulimit -n)",
                                   rt->name, strerror(e));
        if (r)
            conn_send_json(w->p->c, r, -1);
        cJSON_Delete(r);
        wait_free(m, w);
    }
    return false;
}

mgrd_peer *mgrd_wait_peer(const mgrd_table *rt, pid_t pid, uid_t uid)
{
    for (const mgrd_waiter *w = rt->waiters; w; w = w->next)
        if (w->p->pid == pid && w->p->uid == uid)
            return w->p;
    return NULL;
}

int mgrd_wait_answer(mgrd *m, mgrd_table *rt, mgrd_peer *p)
{
    for (mgrd_waiter **pp = &rt->waiters; *pp; pp = &(*pp)->next) {
        mgrd_waiter *w = *pp;
        if (w->p != p)
            continue;
        if (wait_send_table(m, rt, w) < 0)
            return -1;
        *pp = w->next;
        wait_free(m, w);
        return 1;
    }
    return 0;
}

void mgrd_wait_drop(mgrd *m, mgrd_table *rt, mgrd_peer *p)
{
    for (mgrd_waiter **pp = &rt->waiters; *pp;) {
        mgrd_waiter *w = *pp;
        if (w->p != p) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        log_info("new_table: pid=%d no longer waits for table=%s.", (int)p->pid, rt->name);
        wait_free(m, w);
    }
}

void mgrd_wait_drop_peer(mgrd *m, mgrd_peer *p)
{
    for (mgrd_table *rt = m->tables; rt && m->nwaiters; rt = rt->next)
        mgrd_wait_drop(m, rt, p);
}

void mgrd_wait_fail_all(mgrd *m, mgrd_table *rt, proto_err code, const char *why)
{
    while (rt->waiters) {
        mgrd_waiter *w = rt->waiters;
        rt->waiters = w->next;
        cJSON *r = proto_reply_err(w->req, code, "table %s: %s", rt->name, why);
        if (r)
            conn_send_json(w->p->c, r, -1);
        cJSON_Delete(r);
        wait_free(m, w);
    }
}

cJSON *mgrd_wait_status(const mgrd_table *rt)
{
    cJSON *a = cJSON_CreateArray();
    for (const mgrd_waiter *w = rt->waiters; a && w; w = w->next)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)w->p->pid));
    return a;
}

void mgrd_wait_poll(mgrd *m)
{
    if (!m->nwaiters)
        return;
    for (mgrd_table *rt = m->tables; rt; rt = rt->next)
        if (rt->waiters && !rt->owner)
            mgrd_wait_serve(m, rt);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* registry.c: the tables etsmgrd manages, who owns each, and who may act on
 * each: the ownership rules live here and only here (docs/design.md,
 * "Ownership state machine").
 *
 *               new_table, name unknown: created
 *                            |
 *                            v
 *                     +-------------+   give_away {pid}: the receiver gets
 *                     |    owned    |---+ the event "transfer" with the fd
 *                     | (owner pid) |<--+
 *                     +-------------+
 *      the owner's      |       ^   new_table by a process of the table's
 *      connection       |       |   uid (data intact, created:false), or
 *      closes:          v       |   add_table by its holder, with the fd
 *      ETS-TRANSFER   +-------------+
 *      EXIT           |  orphaned   |<--- daemon start: a valid object of
 *                     | (heir: the  |     the instance found in /dev/shm, or
 *                     |   daemon)   |     a snapshot of a table that has none
 *                     +-------------+     (snapshot.c)
 *      del_table (by the owner, or by the table's uid when orphaned; with
 *      force also when owned by another): no longer managed; with unlink
 *      the shared-memory object and its snapshot are removed.  --orphan-ttl
 *      does that to tables orphaned for too long (orphans.c).
 *
 * The state is not stored: a table is owned exactly when it has an owner
 * peer (mgrd_reg_state), so the two cannot disagree.  Only mgrd_reg_give
 * sets an owner and only reg_let_go clears one.  A give its receiver is
 * never told of (the reply with the fd could not be sent) is taken back
 * with mgrd_reg_ungive, which restores what the give changed: the last
 * owner pid, the found-at-start mark that holds waiters back while that
 * owner lives, orphaned-since (--orphan-ttl), the transfer count and the heir data.  An
 * orphan is not freshened by a take that did not happen.
 *
 * Who may act (mgrd_reg_may), like s6-supervise's table of actions: one row
 * per act, read left to right; the first column that refuses decides.
 *
 *   act           caller's uid   owned by another  owned by the caller  orphaned
 *   TAKE          the table's    OWNED_BY_OTHER    may                  may
 *   REPLACE       (any: the new  OWNED_BY_OTHER    may                  may
 *                  object's uid is checked by the caller)
 *   DELETE        the table's    OWNED_BY_OTHER    may                  may
 *   FORCE_DELETE  the table's    may               may                  may
 *   GIVE          the table's    OWNED_BY_OTHER    may                  NOT_HELD
 *   LOAD          the table's    may               may                  may
 *   ADD           the table's    may               may                  may
 *   LOAD_REPLACE  the table's    OWNED_BY_OTHER    NOT_ORPHAN           may
 *
 * A plain singly linked list: at most --max-tables entries (4096 by
 * default), looked up by name a few times per request, so a hash would buy
 * nothing measurable and cost code.  Each entry holds the daemon's own
 * attachment of the table, which is what new_table hands out (the daemon's
 * fd, sent as SCM_RIGHTS, so the client gets a descriptor of the same shm
 * object) and what the status is read from.
 *
 * Ownership is the daemon's memory, not the table's: the owner and heir pids
 * written into the table header (tbl_set_owner) are diagnostics for a person
 * or a later daemon, never trusted for decisions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "etsmgrd.h"
#include "log.h"
#include "table.h"

mgrd_table *mgrd_reg_find(mgrd *m, const char *name)
{
    for (mgrd_table *rt = m->tables; rt; rt = rt->next)
        if (strcmp(rt->name, name) == 0)
            return rt;
    return NULL;
}

mgrd_state mgrd_reg_state(const mgrd_table *rt)
{
    return rt->owner ? MGRD_OWNED : MGRD_ORPHANED;
}

/* The table above, as data: the caller's uid, then the verdict by state. */
static const struct {
    bool same_uid;
    mgrd_verdict other, self, orphan;
} reg_rules[] = {
    [MGRD_ACT_TAKE] = {true, MGRD_OWNED_BY_OTHER, MGRD_MAY, MGRD_MAY},
    [MGRD_ACT_REPLACE] = {false, MGRD_OWNED_BY_OTHER, MGRD_MAY, MGRD_MAY},
    [MGRD_ACT_DELETE] = {true, MGRD_OWNED_BY_OTHER, MGRD_MAY, MGRD_MAY},
    [MGRD_ACT_FORCE_DELETE] = {true, MGRD_MAY, MGRD_MAY, MGRD_MAY},
    [MGRD_ACT_GIVE] = {true, MGRD_OWNED_BY_OTHER, MGRD_MAY, MGRD_NOT_HELD},
    [MGRD_ACT_LOAD] = {true, MGRD_MAY, MGRD_MAY, MGRD_MAY},
    [MGRD_ACT_ADD] = {true, MGRD_MAY, MGRD_MAY, MGRD_MAY},
    [MGRD_ACT_LOAD_REPLACE] = {true, MGRD_OWNED_BY_OTHER, MGRD_NOT_ORPHAN, MGRD_MAY},
};

mgrd_verdict mgrd_reg_may(const mgrd_table *rt, const mgrd_peer *p, mgrd_act act)
{
    if (reg_rules[act].same_uid && rt->uid != p->uid)
        return MGRD_NOT_UID;
    if (!rt->owner)
        return reg_rules[act].orphan;
    return rt->owner == p ? reg_rules[act].self : reg_rules[act].other;
}

/* The owner goes; nothing else changes (the callers record and log). */
static void reg_let_go(mgrd_table *rt)
{
    if (rt->owner) {
        rt->owner->owned--;
        rt->orphaned_us = mgrd_now_us();
    }
    rt->owner = NULL;
    rt->by_wait = false;
}

mgrd_table *mgrd_reg_add(mgrd *m, const char *name, const char *shm_name, etsmgr_table *t, uid_t uid)
{
    mgrd_table *rt = calloc(1, sizeof *rt);
    if (!rt)
        return NULL;
    snprintf(rt->name, sizeof rt->name, "%s", name);
    snprintf(rt->shm_name, sizeof rt->shm_name, "%s", shm_name);
    rt->t = t;
    etsmgr_table_set_lock_timeout(t, MGRD_LOCK_TIMEOUT_MS);
    rt->uid = uid;
    rt->orphaned_us = mgrd_now_us(); /* it starts orphaned */
    uid_t ignored;
    if (mgrd_fd_ident(etsmgr_table_fd(t), &rt->dev, &rt->ino, &ignored) < 0)
        log_warning("fstat of table %s failed: %s", name, strerror(errno));
    rt->next = m->tables;
    m->tables = rt;
    m->ntables++;
    return rt;
}

void mgrd_reg_remove(mgrd *m, mgrd_table *rt)
{
    for (mgrd_table **pp = &m->tables; *pp; pp = &(*pp)->next) {
        if (*pp == rt) {
            *pp = rt->next;
            break;
        }
    }
    mgrd_wait_fail_all(m, rt, PROTO_E_NOT_FOUND, "it was deleted while this process waited for it");
    reg_let_go(rt);
    m->ntables--;
    /* an object left in place (del_table without unlink, an adoption
     * undone) is one a later new_table of the name must look for */
    struct stat st;
    if (mgrd_shm_stat(rt->shm_name, &st) == 0 && st.st_dev == rt->dev && st.st_ino == rt->ino)
        mgrd_obj_unmanaged(m, rt->name);
    etsmgr_table_close(rt->t);
    free(rt);
}

/* The header's record of an ownership change (diagnostics, and what the
 * next daemon goes by: the last owner that holds waiters back, orphaned
 * since) never waits for the table's lock: a peer holding it (stopped in a
 * transaction) would stall the daemon for everyone at each change it can
 * make, and give_away, release and new_table make them at will.  A record
 * that finds the lock held waits for a look every 20 ms, which writes the
 * latest one once the lock is free (before, it waited up to the lock
 * timeout and was then lost). */
#define REG_RECORD_RETRY_MS 20
static uv_timer_t rec_timer;
static bool rec_timer_on;

/* true when done (written, or failed for good: logged) */
static bool reg_try_record(mgrd *m, mgrd_table *rt)
{
    int rc = tbl_set_owner_nowait(rt->t, (int32_t)rt->rec_owner, (int32_t)m->pid, rt->rec_orphaned_us);
    if (rc == ETSMGR_ELOCKED)
        return false;
    rt->rec_pending = false;
    if (rc < 0)
        log_warning("table %s: could not record owner pid %d in its header: %s", rt->name, (int)rt->rec_owner,
                    etsmgr_strerror(rc));
    return true;
}

static void on_rec_timer(uv_timer_t *h)
{
    mgrd *m = h->data;
    bool left = false;
    for (mgrd_table *rt = m->tables; rt; rt = rt->next)
        if (rt->rec_pending && !reg_try_record(m, rt))
            left = true;
    if (!left)
        uv_timer_stop(h);
}

static void rec_timer_arm(mgrd *m)
{
    if (!m->loop || m->stopping)
        return;
    if (!rec_timer_on) {
        int rc = uv_timer_init(m->loop, &rec_timer);
        if (rc < 0) {
            log_warning("uv_timer_init: %s; owners are recorded in table headers only at the next change",
                        uv_strerror(rc));
            return;
        }
        rec_timer.data = m;
        uv_unref((uv_handle_t *)&rec_timer);
        rec_timer_on = true;
    }
    if (!uv_is_active((uv_handle_t *)&rec_timer))
        uv_timer_start(&rec_timer, on_rec_timer, REG_RECORD_RETRY_MS, REG_RECORD_RETRY_MS);
}

void mgrd_reg_record_pending(mgrd *m)
{
    /* Orderly exit: no timer will look again, and the header is what the
     * next daemon and the snapshots go by (an owner recorded as orphaned
     * since long ago, and --orphan-ttl removes a table someone owns).  A
     * record waits for the lock as a snapshot does (the lock timeout, once
     * per table still held); one that cannot be written is said. */
    for (mgrd_table *rt = m->tables; rt; rt = rt->next) {
        if (!rt->rec_pending)
            continue;
        rt->rec_pending = false;
        int rc = tbl_set_owner(rt->t, (int32_t)rt->rec_owner, (int32_t)m->pid, rt->rec_orphaned_us);
        if (rc < 0)
            log_warning("table %s: could not record owner pid %d in its header before exiting: %s; the next "
                        "etsmgrd goes by the one before",
                        rt->name, (int)rt->rec_owner, etsmgr_strerror(rc));
    }
}

void mgrd_reg_stop(void)
{
    if (rec_timer_on)
        uv_close((uv_handle_t *)&rec_timer, NULL);
    rec_timer_on = false;
}

static void reg_record_owner(mgrd *m, mgrd_table *rt, pid_t owner)
{
    rt->rec_owner = owner;
    rt->rec_orphaned_us = owner ? 0 : rt->orphaned_us;
    if (reg_try_record(m, rt))
        return;
    if (!rt->rec_pending)
        log_info("table %s: its lock is held; owner pid %d goes into its header once it is free.", rt->name,
                 (int)owner);
    rt->rec_pending = true;
    rec_timer_arm(m);
}

void mgrd_reg_give(mgrd *m, mgrd_table *rt, mgrd_peer *to)
{
    if (rt->owner == to) {
        /* given again (new_table, add_table): a reply that tells the owner,
         * so a wait's handover it may not have read is no longer the only
         * word it had, and cancel_wait must not take the table back */
        rt->by_wait = false;
        return;
    }
    reg_let_go(rt);
    rt->owner = to;
    rt->owner_pid = to->pid;
    rt->found_at_start = false;
    rt->ttl_owner_lives = false;
    rt->by_wait = false;
    rt->orphaned_us = 0;
    to->owned++;
    rt->transfers++;
    reg_record_owner(m, rt, to->pid);
}

void mgrd_reg_orphan(mgrd *m, mgrd_table *rt)
{
    if (!rt->owner)
        return;
    reg_let_go(rt);
    rt->transfers++;
    reg_record_owner(m, rt, 0);
}

void mgrd_reg_was(const mgrd_table *rt, mgrd_was *was)
{
    *was = (mgrd_was){rt->owner_pid, rt->found_at_start, rt->orphaned_us, rt->transfers, ""};
    memcpy(was->heir_data, rt->heir_data, sizeof was->heir_data);
}

void mgrd_reg_ungive(mgrd *m, mgrd_table *rt, const mgrd_was *was)
{
    if (!rt->owner)
        return;
    reg_let_go(rt);
    rt->owner_pid = was->owner_pid;
    rt->found_at_start = was->found_at_start;
    rt->orphaned_us = was->orphaned_us;
    rt->transfers = was->transfers;
    memcpy(rt->heir_data, was->heir_data, sizeof rt->heir_data);
    /* a table found at start named its living last owner in its header:
     * it does again, so that a daemon started next holds its waiters back
     * too; any other orphan's header says orphaned, since when it was */
    reg_record_owner(m, rt, was->found_at_start ? was->owner_pid : 0);
}

void mgrd_reg_orphan_all(mgrd *m, mgrd_peer *p)
{
    for (mgrd_table *rt = m->tables; rt && p->owned > 0; rt = rt->next) {
        if (rt->owner != p)
            continue;
        if (m->stopping) {
            /* Orderly exit: the header keeps its owner and no transfer is
             * counted, but the daemon holds no life line any more, so in
             * its memory the table is orphaned, like the next daemon will
             * see it (it used to stay "owned" by a freed peer). */
            reg_let_go(rt);
            continue;
        }
        mgrd_reg_orphan(m, rt);
        /* a waiting standby gets it before anything else happens */
        mgrd_wait_serve(m, rt);
        /* The seed's words, so a person comparing transcripts finds them. */
        log_notice("ETS-TRANSFER: for table=%s, from pid=%d, heir_data=%s.", rt->name, (int)p->pid,
                   rt->heir_data[0] ? rt->heir_data : "none");
    }
}

void mgrd_iso8601(int64_t us, char *buf, size_t len)
{
    time_t s = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        s--;
    }
    struct tm tm;
    if (!localtime_r(&s, &tm)) {
        snprintf(buf, len, "%lld", (long long)us);
        return;
    }
    char date[32], off[8];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(off, sizeof off, "%z", &tm); /* +0100 -> +01:00 */
    snprintf(buf, len, "%s.%06ld%.3s:%.2s", date, frac, off, off + 3);
}

cJSON *mgrd_reg_status(mgrd *m, mgrd_table *rt)
{
    (void)m;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", rt->name);
    bool owned = mgrd_reg_state(rt) == MGRD_OWNED;
    cJSON_AddStringToObject(o, "state", owned ? "owned" : "orphaned");
    cJSON_AddNumberToObject(o, "owner_pid", owned ? (double)rt->owner_pid : 0);
    cJSON_AddStringToObject(o, "heir_data", rt->heir_data);
    cJSON_AddNumberToObject(o, "transfers", (double)rt->transfers);
    cJSON_AddNumberToObject(o, "uid", (double)rt->uid);
    cJSON *waiters = mgrd_wait_status(rt);
    if (waiters)
        cJSON_AddItemToObject(o, "waiters", waiters);
    if (mgrd_reg_state(rt) == MGRD_ORPHANED && rt->orphaned_us) {
        char since[64];
        mgrd_iso8601(rt->orphaned_us, since, sizeof since);
        cJSON_AddStringToObject(o, "orphaned_since", since);
    } else {
        cJSON_AddNullToObject(o, "orphaned_since");
    }
    /* without waiting for the lock: a table whose lock a living process
     * holds (one stopped in a transaction) must not stall the daemon for
     * everyone, once per table and request (tbl_info_nowait) */
    etsmgr_table_info info;
    int rc = tbl_info_nowait(rt->t, &info, NULL);
    if (rc == ETSMGR_OK) {
        char created[64];
        mgrd_iso8601(info.ctime_us, created, sizeof created);
        cJSON_AddNumberToObject(o, "entries", (double)info.entries);
        cJSON_AddNumberToObject(o, "capacity", (double)info.capacity);
        cJSON_AddNumberToObject(o, "bytes", (double)info.bytes_used);
        cJSON_AddNumberToObject(o, "bytes_total", (double)info.bytes_total);
        cJSON_AddNumberToObject(o, "max_bytes", (double)info.max_bytes);
        cJSON_AddNumberToObject(o, "generation", (double)info.generation);
        cJSON_AddStringToObject(o, "access", mgrd_access_name(info.access));
        cJSON_AddStringToObject(o, "type", info.type == ETSMGR_ORDERED_SET ? "ordered_set" : "set");
        cJSON_AddStringToObject(o, "created", created);
    } else {
        cJSON_AddStringToObject(o, "error", etsmgr_strerror(rc));
    }
    return o;
}

void mgrd_reg_free_all(mgrd *m)
{
    m->unmanaged_all = true; /* the end: no lookup follows, nothing to note */
    while (m->tables)
        mgrd_reg_remove(m, m->tables);
    mgrd_obj_unmanaged_free(m);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* orphans.c: tables that nobody will claim again.
 *
 * An orphaned table waits for its owner to come back (new_table), possibly
 * forever: that is the point of an heir.  Two ways end the wait for good:
 * `etsmgrctl del TABLE` (del_table with unlink) and, when the operator asks
 * for it, --orphan-ttl SECONDS, which removes every table orphaned for
 * longer.  Removing a table means its shared memory and its snapshot: a
 * snapshot left behind would bring the table back after the next reboot.
 *
 * "Orphaned since" (mgrd_table.orphaned_us) outlives the daemon: the daemon
 * writes it into the table's header when it orphans the table, in the same
 * logged change as the owner pid (tbl_set_owner), so a crash leaves either
 * both or neither; an image carries it (docs/image-format.md).  So a table
 * rediscovered or restored at start keeps the moment its owner went, and
 * --orphan-ttl removes it on time across restarts.  Only a table whose
 * owner was alive when it was last recorded (a daemon killed or stopped
 * while the owner ran; a snapshot of an owned table) counts from this
 * daemon's start: nobody saw its owner go, and counting from the snapshot
 * would let --orphan-ttl remove it at boot before its owner could claim it;
 * and a table found at start is not removed while that owner lives (the
 * same look at its pid that holds standbys back, waiters.c): each look of
 * the TTL's that finds it alive moves "orphaned since" to that look, and the
 * first that finds it gone to that one, so the TTL counts from the owner's
 * death (give or take the second between looks, never less). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "etsmgrd.h"
#include "log.h"
#include "table.h"

int64_t mgrd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void mgrd_fmt_age(int64_t us, char *buf, size_t len)
{
    if (us < 0) {
        snprintf(buf, len, "from the future (the clock went back %.1f s)", (double)-us / 1e6);
        return;
    }
    int64_t s = us / 1000000;
    if (s < 120)
        snprintf(buf, len, "%.1f s", (double)us / 1e6);
    else if (s < 7200)
        snprintf(buf, len, "%lld min %lld s", (long long)(s / 60), (long long)(s % 60));
    else if (s < 172800)
        snprintf(buf, len, "%lld h %lld min", (long long)(s / 3600), (long long)(s % 3600 / 60));
    else
        snprintf(buf, len, "%lld d %lld h", (long long)(s / 86400), (long long)(s % 86400 / 3600));
}

int mgrd_table_destroy(mgrd *m, mgrd_table *rt, const char *why)
{
    int rc = tbl_unlink(rt->shm_name);
    if (rc != ETSMGR_OK && rc != ETSMGR_ENOTFOUND) {
        int e = errno;
        log_error("%s: cannot unlink %s: %s; table=%s stays managed", why, rt->shm_name, strerror(e),
                  rt->name);
        errno = e;
        return -1;
    }
    mgrd_snap_remove(m, rt->name);
    mgrd_reg_remove(m, rt);
    return 0;
}

/* A table found at start whose last owner still runs holds it (and writes
 * it) without this daemon: removed, its writes would go to an object nobody
 * else can open.  Not orphaned as far as anyone can tell, so every look
 * that finds that owner alive, and the first that finds it gone, restart
 * the count: it runs from the owner's death, not from this daemon's start
 * or from a look a whole TTL before that death.  True while it lives. */
static bool orphans_owner_lives(const mgrd *m, mgrd_table *rt, int64_t now_us)
{
    if (!rt->found_at_start || rt->owner_pid <= 0)
        return false;
    if (!mgrd_wait_may_take(rt)) {
        if (!rt->ttl_owner_lives)
            log_info("orphan-ttl: table=%s is kept: its last owner pid=%d still runs (it holds the table "
                     "without etsmgrd); --orphan-ttl %u s counts from when it goes.",
                     rt->name, (int)rt->owner_pid, m->orphan_ttl);
        rt->ttl_owner_lives = true;
        rt->orphaned_us = now_us;
        return true;
    }
    if (rt->ttl_owner_lives) {
        log_info("orphan-ttl: table=%s: its last owner pid=%d is gone; orphaned from now, for --orphan-ttl %u s.",
                 rt->name, (int)rt->owner_pid, m->orphan_ttl);
        rt->ttl_owner_lives = false;
        rt->orphaned_us = now_us;
    }
    return false;
}

size_t mgrd_orphans_expire(mgrd *m, int64_t now_us)
{
    if (!m->orphan_ttl)
        return 0;
    int64_t ttl_us = (int64_t)m->orphan_ttl * 1000000;
    size_t n = 0;
    mgrd_table *next;
    for (mgrd_table *rt = m->tables; rt; rt = next) {
        next = rt->next;
        if (rt->owner || !rt->orphaned_us || orphans_owner_lives(m, rt, now_us) ||
            now_us - rt->orphaned_us < ttl_us)
            continue;
        char since[64], age[48], name[ETSMGR_NAME_MAX + 1];
        mgrd_iso8601(rt->orphaned_us, since, sizeof since);
        mgrd_fmt_age(now_us - rt->orphaned_us, age, sizeof age);
        snprintf(name, sizeof name, "%s", rt->name);
        if (mgrd_table_destroy(m, rt, "orphan-ttl") == 0) {
            log_notice("orphan-ttl: removed table=%s, orphaned since %s (%s, over --orphan-ttl %u s): "
                       "its shared memory and snapshot are gone.", name, since, age, m->orphan_ttl);
            n++;
        }
    }
    return n;
}

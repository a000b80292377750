/* SPDX-License-Identifier: Apache-2.0 */
/* limits.c: how much shared memory a peer may make etsmgrd take.
 *
 * /dev/shm is shared by the whole machine, and every byte a new table
 * reserves is taken at once (posix_fallocate), in the daemon's name: so a
 * peer must not be able to ask for all of it.  Two bounds, checked when a
 * table is created (and a load, which creates):
 *   - per table: size_hint and max_bytes at most --max-table-bytes;
 *   - per uid: the current size of that uid's managed tables plus the new
 *     one's at most --max-uid-bytes (a load with replace: not counting the
 *     orphan it replaces, which goes).
 * The defaults follow the machine: a quarter and a half of /dev/shm's size,
 * so that one table, or one user, never takes it all.
 *
 * What this cannot bound: a table grows later in its owner's own process
 * (the table store enlarges the object through the owner's fd), so the
 * owner's growth is limited by its table's max_bytes, if it asked for one,
 * and by /dev/shm itself.  The per-uid sum counts that growth against the
 * next creation. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "etsmgrd.h"
#include "log.h"

#define LIMIT_FALLBACK_TABLE (1ull << 30) /* when /dev/shm cannot be measured */

void mgrd_size_limits(mgrd *m, uint64_t table, uint64_t uid)
{
    struct statvfs sv;
    uint64_t total = 0;
    if (statvfs(MGRD_SHM_DIR, &sv) == 0)
        total = (uint64_t)sv.f_blocks * (uint64_t)sv.f_frsize;
    else
        log_warning("statvfs(%s) failed: %s; default size limits of %llu MiB per table", MGRD_SHM_DIR,
                    strerror(errno), (unsigned long long)(LIMIT_FALLBACK_TABLE >> 20));
    m->max_table_bytes = table ? table : total ? total / 4 : LIMIT_FALLBACK_TABLE;
    m->max_uid_bytes = uid ? uid : total ? total / 2 : 4 * LIMIT_FALLBACK_TABLE;
}

/* The bytes the tables of uid take now, but going's: their objects' sizes,
 * from fstat (no table lock: an owner holding one must not slow a creation
 * down). */
static uint64_t uid_bytes(mgrd *m, uid_t uid, const mgrd_table *going)
{
    uint64_t sum = 0;
    for (mgrd_table *rt = m->tables; rt; rt = rt->next) {
        struct stat st;
        if (rt->uid == uid && rt != going && fstat(etsmgr_table_fd(rt->t), &st) == 0)
            sum += (uint64_t)st.st_size;
    }
    return sum;
}

int mgrd_size_check(mgrd *m, uid_t uid, const etsmgr_table_opts *o, uint64_t dflt, const mgrd_table *going,
                    char *msg, size_t len)
{
    if (o->size_hint > m->max_table_bytes || o->max_bytes > m->max_table_bytes) {
        snprintf(msg, len, "%s %llu is over this daemon's limit per table, %llu bytes (--max-table-bytes)",
                 o->size_hint > m->max_table_bytes ? "size_hint" : "max_bytes",
                 (unsigned long long)(o->size_hint > m->max_table_bytes ? o->size_hint : o->max_bytes),
                 (unsigned long long)m->max_table_bytes);
        return -1;
    }
    uint64_t want = o->size_hint > dflt ? o->size_hint : dflt;
    uint64_t used = uid_bytes(m, uid, going);
    if (used + want > m->max_uid_bytes) {
        snprintf(msg, len,
                 "the tables of uid %u take %llu bytes; %llu more would pass this daemon's limit per uid, "
                 "%llu bytes (--max-uid-bytes)",
                 (unsigned)uid, (unsigned long long)used, (unsigned long long)want,
                 (unsigned long long)m->max_uid_bytes);
        return -1;
    }
    return 0;
}

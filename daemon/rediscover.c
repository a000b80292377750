/* SPDX-License-Identifier: Apache-2.0 */
/* rediscover.c: take over the tables an earlier daemon left behind.
 *
 * A daemon killed with SIGKILL loses its memory of who owns what, but the
 * tables themselves are shm objects that outlive it.  At start the daemon
 * lists /dev/shm (where glibc's shm_open keeps POSIX shm objects on Linux)
 * for the objects of its instance (runtime.h gives the names) and takes
 * only what is provably its own (shmobj.c): an object owned by this
 * daemon's uid whose header names the table its object name says.  Those
 * are managed as orphaned: their owners, if still alive, claim them back
 * with add_table (or new_table after a restart of their own).
 *
 *  - A half-made object of its own (a daemon died while building it) is
 *    removed: no request ever saw it, and it would hold nothing.
 *  - An object of another uid is left alone with a log line: it may be
 *    another user's table, or someone squatting a name; either way it is
 *    not ours to manage, and it never stops the daemon.
 *  - An object with a version-1 name ("<instance>.<table>", development builds before 0.1.0) is renamed to its
 *    name now when it is our own and its header names that table (the old
 *    naming was ambiguous; the header says which table it is).
 *
 * Nothing else found here is ever deleted or repaired: an object that is not
 * a valid table may be a person's evidence of a bug, or belong to a newer
 * version of the program; it is reported with the reason and left alone. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "log.h"
#include "table.h"

/* Opens and registers one own object of table `name` of uid; false when it
 * is not a valid table of that name (logged). */
static bool take_over(mgrd *m, const char *shm_name, const char *name, uid_t uid)
{
    etsmgr_table *t = NULL;
    int rc = tbl_open(shm_name, &t);
    if (rc < 0) {
        char why[400];
        mgrd_open_why(shm_name, rc, errno, why, sizeof why);
        log_warning("rediscovery: %s; left untouched", why);
        return false;
    }
    if (strcmp(etsmgr_table_name(t), name) != 0) {
        log_warning("rediscovery: %s%s holds table %s, not %s as its name says; left untouched", MGRD_SHM_DIR,
                    shm_name, etsmgr_table_name(t), name);
        etsmgr_table_close(t);
        return false;
    }
    mgrd_table *rt = mgrd_reg_add(m, name, shm_name, t, uid);
    if (!rt) {
        log_error("rediscovery: out of memory registering table %s", name);
        etsmgr_table_close(t);
        return false;
    }
    /* orphaned before this start: the header says since when (written when
     * it was orphaned); a table whose header names a living owner, or an
     * owner that went while no daemon ran, counts from now.  Read without
     * waiting for the lock: a living process holds it (its owner, in a
     * transaction, as likely as any), and the table must name that owner
     * all the same, or a waiter would take it from it at once. */
    etsmgr_table_info info;
    int64_t since = 0, now = mgrd_now_us();
    rc = tbl_info_nowait(t, &info, &since);
    if (since > 0)
        rt->orphaned_us = since < now ? since : now;
    if (rc == ETSMGR_OK) {
        rt->owner_pid = info.owner_pid;
        rt->found_at_start = true; /* waiters.c: its owner may be about to add it back */
        /* pid 0: the owner let go (a clean stop), so there is no pid to name */
        char last[48] = "released by its owner";
        if (info.owner_pid > 0)
            snprintf(last, sizeof last, "last owner pid=%d", (int)info.owner_pid);
        log_notice("rediscovered table=%s (%llu %s, %s, uid=%u): orphaned until its owner claims it.",
                   name, (unsigned long long)info.entries, mgrd_entries_word(info.entries), last, (unsigned)uid);
    } else {
        log_notice("rediscovered table=%s (uid=%u): orphaned until its owner claims it.", name,
                   (unsigned)uid);
    }
    return true;
}

size_t mgrd_rediscover(mgrd *m)
{
    DIR *d = opendir(MGRD_SHM_DIR);
    if (!d) {
        log_warning("opendir(%s) failed: %s; tables left by an earlier daemon are not rediscovered",
                    MGRD_SHM_DIR, strerror(errno));
        return 0;
    }
    size_t found = 0, invalid = 0;
    int read_errno = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            read_errno = errno;
            break;
        }
        unsigned long uid;
        char name[ETSMGR_NAME_MAX + 1];
        rt_shm_kind kind = rt_shm_parse(m->rt.instance, de->d_name, &uid, name);
        if (kind == RT_SHM_OTHER)
            continue;
        char shm_name[MGRD_SHM_NAME_MAX];
        if (snprintf(shm_name, sizeof shm_name, "/%s", de->d_name) >= (int)sizeof shm_name)
            continue;
        struct stat st;
        if (mgrd_shm_stat(shm_name, &st) < 0)
            continue; /* gone meanwhile */
        if (!mgrd_obj_own(&st)) {
            log_warning("rediscovery: %s%s belongs to uid %u, not to this daemon (uid %u): another user's "
                        "object, left alone", MGRD_SHM_DIR, shm_name, (unsigned)st.st_uid, (unsigned)geteuid());
            continue;
        }
        if (kind == RT_SHM_PARTIAL) {
            if (mgrd_obj_reclaim(shm_name))
                log_notice("rediscovery: removed %s%s, a table a daemon was building when it died",
                           MGRD_SHM_DIR, shm_name);
            continue;
        }
        if (kind == RT_SHM_LEGACY) {
            /* a version-1 root daemon gave each table to its uid; ours are ours */
            char now[MGRD_SHM_NAME_MAX];
            etsmgr_table *t = NULL;
            int rc = tbl_open(shm_name, &t);
            bool same = rc == ETSMGR_OK && strcmp(etsmgr_table_name(t), name) == 0;
            etsmgr_table_close(t);
            if (!same)
                continue; /* another table's, or not a table: not provably ours */
            if (mgrd_obj_migrate(m, shm_name, st.st_uid, name, now, sizeof now) < 0) {
                log_warning("rediscovery: cannot rename %s%s (a version-1 name) to %s%s: %s; left untouched",
                            MGRD_SHM_DIR, shm_name, MGRD_SHM_DIR, now, strerror(errno));
                continue;
            }
            log_notice("rediscovery: renamed %s%s (a version-1 name) to %s%s", MGRD_SHM_DIR, shm_name, MGRD_SHM_DIR, now);
            snprintf(shm_name, sizeof shm_name, "%s", now);
            uid = st.st_uid;
        }
        mgrd_table *known = mgrd_reg_find(m, name);
        if (known && strcmp(known->shm_name, shm_name) == 0)
            continue; /* renamed above, and listed again under its name now */
        if (known) {
            mgrd_obj_unmanaged(m, name);
            log_warning("rediscovery: %s%s is another object of table %s (managed: %s%s); left untouched",
                        MGRD_SHM_DIR, shm_name, name, MGRD_SHM_DIR, known->shm_name);
            continue;
        }
        if (m->ntables >= m->max_tables) {
            mgrd_obj_unmanaged(m, name);
            log_error("rediscovery: table %s not managed: the limit of %zu tables is reached "
                      "(raise --max-tables)", name, m->max_tables);
            continue;
        }
        if (take_over(m, shm_name, name, (uid_t)uid)) {
            found++;
        } else {
            mgrd_obj_unmanaged(m, name);
            invalid++;
        }
    }
    if (read_errno != 0)
        log_warning("readdir(%s) failed: %s; rediscovery may be incomplete", MGRD_SHM_DIR, strerror(read_errno));
    closedir(d);
    if (invalid > 0)
        log_warning("rediscovery: %zu object(s) of instance %s are not valid tables (see above)", invalid,
                    m->rt.instance);
    return found;
}

/* rediscover.c: take over the tables an earlier daemon left behind.
 *
 * A daemon killed with SIGKILL loses its memory of who owns what, but the
 * tables themselves are shm objects that outlive it.  At start the daemon
 * lists /dev/shm (where glibc's shm_open keeps POSIX shm objects on Linux)
 * for "<instance>.<name>", opens each with the table store (which validates
 * the header before trusting it) and manages the valid ones as orphaned:
 * their owners, if still alive, claim them back with add_table (or
 * new_table after a restart of their own).
 *
 * Nothing found here is ever deleted or repaired: an object that is not a
 * valid table may be a person's evidence of a bug, or belong to a newer
 * version of the program; it is reported with the reason and left alone. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "etsmgrd.h"
#include "log.h"
#include "table.h"

#define SHM_DIR "/dev/shm"

size_t mgrd_rediscover(mgrd *m)
{
    DIR *d = opendir(SHM_DIR);
    if (!d) {
        log_warning("opendir(%s) failed: %s; tables left by an earlier daemon are not rediscovered",
                    SHM_DIR, strerror(errno));
        return 0;
    }
    size_t prefix_len = strlen(m->rt.instance) + 1;
    size_t found = 0, invalid = 0;
    int read_errno = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            read_errno = errno;
            break;
        }
        const char *ent = de->d_name;
        if (strncmp(ent, m->rt.instance, prefix_len - 1) != 0 || ent[prefix_len - 1] != '.')
            continue;
        const char *name = ent + prefix_len;
        if (!rt_valid_name(name, strlen(name))) {
            log_warning("rediscovery: %s/%s is not named like a table of instance %s; left untouched",
                        SHM_DIR, ent, m->rt.instance);
            invalid++;
            continue;
        }
        if (mgrd_reg_find(m, name))
            continue;
        char shm_name[MGRD_SHM_NAME_MAX];
        if (rt_shm_name(&m->rt, name, shm_name, sizeof shm_name) < 0)
            continue;
        if (m->ntables >= m->max_tables) {
            log_error("rediscovery: table %s not managed: the limit of %zu tables is reached "
                      "(raise --max-tables)", name, m->max_tables);
            continue;
        }
        etsmgr_table *t = NULL;
        int rc = tbl_open(shm_name, &t);
        if (rc < 0) {
            char why[400];
            mgrd_open_why(shm_name, rc, errno, why, sizeof why);
            log_warning("rediscovery: %s; left untouched", why);
            invalid++;
            continue;
        }
        etsmgr_table_set_lock_timeout(t, MGRD_LOCK_TIMEOUT_MS);
        dev_t dev;
        ino_t ino;
        uid_t uid = 0;
        if (mgrd_fd_ident(etsmgr_table_fd(t), &dev, &ino, &uid) < 0) {
            log_warning("rediscovery: fstat of %s failed: %s; left untouched", shm_name, strerror(errno));
            etsmgr_table_close(t);
            invalid++;
            continue;
        }
        mgrd_table *rt = mgrd_reg_add(m, name, shm_name, t, uid);
        if (!rt) {
            log_error("rediscovery: out of memory registering table %s", name);
            etsmgr_table_close(t);
            continue;
        }
        etsmgr_table_info info;
        if (etsmgr_table_info_get(t, &info) == ETSMGR_OK) {
            rt->owner_pid = info.owner_pid;
            /* pid 0: the owner let go (a clean stop), so there is no pid to name */
            char last[48] = "released by its owner";
            if (info.owner_pid > 0)
                snprintf(last, sizeof last, "last owner pid=%d", (int)info.owner_pid);
            log_notice("rediscovered table=%s (%llu entries, %s, uid=%u): orphaned until its owner claims it.",
                       name, (unsigned long long)info.entries, last, (unsigned)uid);
        } else {
            log_notice("rediscovered table=%s (uid=%u): orphaned until its owner claims it.", name,
                       (unsigned)uid);
        }
        found++;
    }
    if (read_errno != 0)
        log_warning("readdir(%s) failed: %s; rediscovery may be incomplete", SHM_DIR, strerror(read_errno));
    closedir(d);
    if (invalid > 0)
        log_warning("rediscovery: %zu object(s) of instance %s are not valid tables (see above)", invalid,
                    m->rt.instance);
    return found;
}

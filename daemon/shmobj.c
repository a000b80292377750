/* SPDX-License-Identifier: Apache-2.0 */
/* shmobj.c: the shared-memory objects behind the tables, as /dev/shm files.
 *
 * Three promises live here (docs/design.md, "Object names"):
 *
 *  - Names are injective: "/<instance>:<uid>:<table>" (runtime.h), and ':'
 *    is in no instance or table name, so instance P's table q.x and
 *    instance P.q's table x are two objects.
 *
 *  - Only provably own objects are taken.  /dev/shm is writable by every
 *    user and names are predictable, so a name proves nothing; what proves
 *    an object is this daemon's is its owner: only this daemon's uid (or
 *    root) can make a file owned by it, and this daemon never hands an
 *    object to another uid (a client gets an fd, which needs no ownership).
 *    An object of another uid is never opened as a table, renamed or
 *    removed; a table whose name it took is placed beside it, under
 *    "<name>:<16 random hex digits>", found again by listing the directory.
 *
 *  - A name appears only once its table is complete: a table is built under
 *    "<name>:new-<16 hex>" and renamed into place (renameat2 NOREPLACE, so
 *    an object that appeared meanwhile is never replaced; only a load with
 *    replace renames over the orphan it replaces, on purpose).  A daemon killed
 *    while building leaves only such a half-made object, which no request
 *    ever sees and the next start removes (mgrd_obj_reclaim, run while the
 *    instance lock is held, so no other daemon of the instance is building).
 *
 * glibc keeps POSIX shm objects as files of the tmpfs at /dev/shm, so
 * shm_open("/x") and /dev/shm/x are the same object. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "log.h"
#include "table.h"

#define OBJ_TRIES 8 /* fresh random names tried before giving up */

bool mgrd_obj_own(const struct stat *st)
{
    return S_ISREG(st->st_mode) && st->st_uid == geteuid();
}

static uint64_t obj_random(void)
{
    uint64_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    /* no entropy yet (early boot): uniqueness, not secrecy, is what a
     * name of our own needs, and the create is O_EXCL anyway */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_sec;
}

/* Rename without replacing: 0, or -1 with errno (EEXIST: to is taken). */
static int obj_rename(const char *from, const char *to)
{
    char a[sizeof MGRD_SHM_DIR + MGRD_SHM_NAME_MAX], b[sizeof MGRD_SHM_DIR + MGRD_SHM_NAME_MAX];
    snprintf(a, sizeof a, "%s%s", MGRD_SHM_DIR, from);
    snprintf(b, sizeof b, "%s%s", MGRD_SHM_DIR, to);
    if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* a file system without RENAME_NOREPLACE: link fails on a taken name too */
    if (link(a, b) < 0)
        return -1;
    if (unlink(a) < 0)
        log_warning("unlink %s after linking it to %s: %s", a, b, strerror(errno));
    return 0;
}

static size_t unmanaged_index(const mgrd *m, const char *table)
{
    for (size_t i = 0; i < m->n_unmanaged; i++)
        if (strcmp(m->unmanaged[i], table) == 0)
            return i;
    return (size_t)-1;
}

void mgrd_obj_unmanaged(mgrd *m, const char *table)
{
    if (m->unmanaged_all || unmanaged_index(m, table) != (size_t)-1)
        return;
    if (m->n_unmanaged == m->cap_unmanaged) {
        size_t cap = m->cap_unmanaged ? 2 * m->cap_unmanaged : 16;
        void *p = realloc(m->unmanaged, cap * sizeof *m->unmanaged);
        if (!p) {
            /* no memory to remember the name: every lookup lists, as safe as before */
            m->unmanaged_all = true;
            return;
        }
        m->unmanaged = p;
        m->cap_unmanaged = cap;
    }
    snprintf(m->unmanaged[m->n_unmanaged++], sizeof *m->unmanaged, "%s", table);
}

/* A listing found no own object of table: nothing of it is left unmanaged. */
static void unmanaged_drop(mgrd *m, const char *table)
{
    size_t i = unmanaged_index(m, table);
    if (i == (size_t)-1)
        return;
    m->n_unmanaged--;
    if (i != m->n_unmanaged)
        memcpy(m->unmanaged[i], m->unmanaged[m->n_unmanaged], sizeof *m->unmanaged);
}

void mgrd_obj_unmanaged_free(mgrd *m)
{
    free(m->unmanaged);
    m->unmanaged = NULL;
    m->n_unmanaged = m->cap_unmanaged = 0;
}

int mgrd_obj_find(mgrd *m, const char *table, uid_t uid, const mgrd_obj *match, mgrd_obj *out)
{
    if (!match) {
        /* the usual case, with no listing: the plain name of the caller's uid */
        struct stat st;
        if (rt_shm_name(&m->rt, (unsigned long)uid, table, out->shm_name, sizeof out->shm_name) == 0 &&
            mgrd_shm_stat(out->shm_name, &st) == 0 && mgrd_obj_own(&st)) {
            out->uid = uid;
            out->dev = st.st_dev;
            out->ino = st.st_ino;
            return 1;
        }
        if (!m->unmanaged_all && unmanaged_index(m, table) == (size_t)-1)
            return 0;
    }
    DIR *d = opendir(MGRD_SHM_DIR);
    if (!d)
        return -1;
    m->obj_listings++;
    int found = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        unsigned long uid;
        char t[ETSMGR_NAME_MAX + 1];
        rt_shm_kind k = rt_shm_parse(m->rt.instance, de->d_name, &uid, t);
        if ((k != RT_SHM_TABLE && k != RT_SHM_PLACED) || strcmp(t, table) != 0)
            continue;
        char name[MGRD_SHM_NAME_MAX];
        if (snprintf(name, sizeof name, "/%s", de->d_name) >= (int)sizeof name)
            continue;
        struct stat st;
        if (mgrd_shm_stat(name, &st) < 0 || !mgrd_obj_own(&st))
            continue;
        if (match && (st.st_dev != match->dev || st.st_ino != match->ino))
            continue;
        /* the plain name wins over a placed one */
        if (found && k != RT_SHM_TABLE)
            continue;
        snprintf(out->shm_name, sizeof out->shm_name, "%s", name);
        out->uid = (uid_t)uid;
        out->dev = st.st_dev;
        out->ino = st.st_ino;
        found = 1;
        if (k == RT_SHM_TABLE)
            break;
    }
    int e = errno;
    closedir(d);
    if (!found && e) {
        errno = e;
        return -1;
    }
    if (!found && !match)
        unmanaged_drop(m, table);
    return found;
}

void mgrd_obj_tmp_name(const char *base, char *buf, size_t len)
{
    snprintf(buf, len, "%s%cnew-%016llx", base, RT_SHM_SEP, (unsigned long long)obj_random());
}

int mgrd_obj_place(const char *tmp, const char *base, const char *table, char *shm_name, size_t len)
{
    const char *placed = base;
    char alt[MGRD_SHM_NAME_MAX + 24];
    if (obj_rename(tmp, base) < 0) {
        int e = errno;
        struct stat st;
        if (e != EEXIST || mgrd_shm_stat(base, &st) < 0) {
            errno = e;
            return ETSMGR_ESYS;
        }
        if (mgrd_obj_own(&st)) {
            snprintf(shm_name, len, "%s", base);
            return ETSMGR_EEXIST; /* ours, not managed: the caller adopts it */
        }
        /* Another user's object holds the name: ours goes beside it. */
        int r = -1;
        for (int i = 0; i < OBJ_TRIES && r < 0; i++) {
            snprintf(alt, sizeof alt, "%s%c%016llx", base, RT_SHM_SEP, (unsigned long long)obj_random());
            r = obj_rename(tmp, alt);
            if (r < 0 && errno != EEXIST)
                break;
        }
        if (r < 0)
            return ETSMGR_ESYS;
        log_warning("table %s: %s%s belongs to uid %u, not to this daemon (uid %u): someone else took the "
                    "name; the table is %s%s instead (remove that object to get the plain name back)",
                    table, MGRD_SHM_DIR, base, (unsigned)st.st_uid, (unsigned)geteuid(), MGRD_SHM_DIR, alt);
        placed = alt;
    }
    if ((size_t)snprintf(shm_name, len, "%s", placed) >= len) {
        tbl_unlink(placed);
        errno = ENAMETOOLONG;
        return ETSMGR_ESYS;
    }
    return ETSMGR_OK;
}

int mgrd_obj_build(mgrd *m, uid_t uid, const char *table, const etsmgr_table_opts *opts, etsmgr_table **out,
                   char *tmp, size_t len)
{
    char base[MGRD_SHM_NAME_MAX];
    if (rt_shm_name(&m->rt, (unsigned long)uid, table, base, sizeof base) < 0) {
        errno = ENAMETOOLONG;
        return ETSMGR_ENAME;
    }
    int rc = ETSMGR_EEXIST;
    for (int i = 0; i < OBJ_TRIES && rc == ETSMGR_EEXIST; i++) {
        mgrd_obj_tmp_name(base, tmp, len);
        rc = tbl_create(tmp, table, opts, out);
    }
    if (rc < 0)
        return rc;
    /* --group: the group may map it; the owner stays this daemon's uid */
    if (m->shared && fchown(etsmgr_table_fd(*out), (uid_t)-1, m->gid) < 0)
        log_warning("--group: fchown(%s, group %u) failed: %s", tmp, (unsigned)m->gid, strerror(errno));
    return ETSMGR_OK;
}

int mgrd_obj_create(mgrd *m, uid_t uid, const char *table, const etsmgr_table_opts *opts,
                    etsmgr_table **out, char *shm_name, size_t len)
{
    char base[MGRD_SHM_NAME_MAX], tmp[MGRD_SHM_NAME_MAX + 24];
    if (rt_shm_name(&m->rt, (unsigned long)uid, table, base, sizeof base) < 0) {
        errno = ENAMETOOLONG;
        return ETSMGR_ENAME;
    }
    etsmgr_table *t = NULL;
    int rc = mgrd_obj_build(m, uid, table, opts, &t, tmp, sizeof tmp);
    if (rc < 0)
        return rc;
    rc = mgrd_obj_place(tmp, base, table, shm_name, len);
    if (rc < 0) {
        int e = errno;
        etsmgr_table_close(t);
        tbl_unlink(tmp);
        errno = e;
        return rc;
    }
    *out = t;
    return ETSMGR_OK;
}

int mgrd_obj_replace(const char *tmp, const char *shm_name)
{
    char a[sizeof MGRD_SHM_DIR + MGRD_SHM_NAME_MAX + 24], b[sizeof MGRD_SHM_DIR + MGRD_SHM_NAME_MAX];
    snprintf(a, sizeof a, "%s%s", MGRD_SHM_DIR, tmp);
    snprintf(b, sizeof b, "%s%s", MGRD_SHM_DIR, shm_name);
    /* rename(2) replaces its target in one step: whoever opens the name
     * meanwhile gets the old table or the new one, never none */
    return rename(a, b);
}

bool mgrd_obj_reclaim(const char *shm_name)
{
    struct stat st;
    if (mgrd_shm_stat(shm_name, &st) < 0 || !mgrd_obj_own(&st))
        return false;
    if (tbl_unlink(shm_name) < 0) {
        log_warning("cannot remove the half-made object %s%s: %s", MGRD_SHM_DIR, shm_name, strerror(errno));
        return false;
    }
    return true;
}

int mgrd_obj_migrate(mgrd *m, const char *legacy, uid_t uid, const char *table, char *shm_name, size_t len)
{
    if (rt_shm_name(&m->rt, (unsigned long)uid, table, shm_name, len) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return obj_rename(legacy, shm_name);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* snapshot.c: etsmgrd --snapshot-dir, tables that survive a reboot.
 *
 * Shared memory is gone after a reboot; a snapshot is a table image
 * (docs/image-format.md) of every managed table in DIR/<instance>/<table>.etsimg,
 * written on SIGTERM/SIGINT (a clean stop, including a shutdown), every
 * --snapshot-interval seconds, and on `etsmgrctl snapshot`.  Each file is
 * replaced atomically (table_image.c), so a power cut during a snapshot
 * leaves the previous one.
 *
 * At start, after rediscovery, a snapshot whose table has no shm object
 * (the machine rebooted, or someone removed the object) is restored as an
 * orphaned table, exactly as if it had been rediscovered; its owner claims
 * it with new_table.  A table still in shared memory always wins: it is at
 * least as new as any snapshot of it.  A restored table is built under a
 * temporary shm name and renamed into place only when complete
 * (RENAME_NOREPLACE), so a daemon killed during a restore never leaves a
 * partial table that the next start would then prefer to the snapshot.
 *
 * Each save holds the table's lock only for an in-memory copy (see
 * table_image.c); the writing and fsyncs take much longer (seconds for a
 * GiB).  Interval snapshots therefore run on a libuv worker thread, with
 * their own attachments of the tables (a handle is for one thread), so the
 * daemon keeps answering: a client restarting meanwhile gets its table at
 * once.  The stop snapshot (SIGTERM) and `etsmgrctl snapshot` run on the
 * loop, and first wait for an interval snapshot in flight (snap_lock), so
 * that an older image can never be renamed over a newer one.  A table
 * deleted while the worker saved it has its new snapshot removed when the
 * worker is done (on the loop), or a reboot would bring it back. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "log.h"
#include "table.h"
#include "table_image.h"

#define SNAP_SUFFIX ".etsimg"

/* A save's temporary file (img_save: ".NAME.etsimg.tmp-PID-N"), not a
 * snapshot: only that exact shape.  Table names may begin with a dot
 * (".cache") or hold ".tmp-" (".x.tmp-1"): any dot file was taken for a
 * leftover, its snapshot skipped at a restore or removed at a start. */
static bool snap_is_tmp(const char *f)
{
    const char *p = f[0] == '.' ? strstr(f, SNAP_SUFFIX ".tmp-") : NULL;
    if (!p) return false;
    p += strlen(SNAP_SUFFIX ".tmp-");
    size_t a = strspn(p, "0123456789");
    if (!a || p[a] != '-') return false;
    p += a + 1;
    size_t b = strspn(p, "0123456789");
    return b && !p[b];
}

static int snap_path(const mgrd *m, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s%s", m->snap_dir, name, SNAP_SUFFIX);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int mgrd_snap_setup(mgrd *m, const char *dir)
{
    size_t len = strlen(dir) + 1 + strlen(m->rt.instance) + 1;
    m->snap_dir = malloc(len);
    if (!m->snap_dir) {
        log_error("--snapshot-dir: out of memory");
        return -1;
    }
    snprintf(m->snap_dir, len, "%s/%s", dir, m->rt.instance);
    /* tests only: the fsync of the directory after a save's rename fails
     * with this errno (test_snapshot) */
    const char *fail = getenv("ETSMGR_TEST_DIR_FSYNC_ERRNO");
    if (fail && *fail)
        img_test_dir_fsync_errno = atoi(fail);
    if (mkdir_p(m->snap_dir, 0700) < 0) {
        log_error("--snapshot-dir: cannot create %s: %s", m->snap_dir, strerror(errno));
        return -1;
    }
    /* Every directory a name is looked up in on the way (as given, from
     * the working directory for a relative path, and through each symlink,
     * a link to a link too) must be root's or ours and writable by no one
     * else unless sticky: whoever can write one can put a directory or a
     * symlink of their own in the place of the snapshot directory, and
     * decide what tables come back after a reboot.  From here on the path
     * without symlinks: a link on the given way could be changed later. */
    char resolved[4096], err[1536];
    if (rt_check_way(m->snap_dir, "the snapshot directory", resolved, sizeof resolved, err, sizeof err) < 0) {
        log_error("--snapshot-dir: %s (the snapshot directory decides what tables come back after a reboot)",
                  err);
        return -1;
    }
    char *real = strdup(resolved);
    if (!real) {
        log_error("--snapshot-dir: out of memory");
        return -1;
    }
    free(m->snap_dir);
    m->snap_dir = real;
    struct stat st;
    if (lstat(m->snap_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        log_error("--snapshot-dir: %s is not a directory", m->snap_dir);
        return -1;
    }
    if (st.st_uid != geteuid() || (st.st_mode & 0022)) {
        log_error("--snapshot-dir: %s must belong to uid %u and not be writable by others "
                  "(it is uid %u, mode %04o): anyone who can write there decides what tables "
                  "come back after a reboot", m->snap_dir, (unsigned)geteuid(), (unsigned)st.st_uid,
                  (unsigned)(st.st_mode & 07777));
        return -1;
    }
    /* what saves killed mid-way left behind (we hold the instance lock:
     * no other daemon of this instance is saving now) */
    DIR *d = opendir(m->snap_dir);
    if (!d) {
        log_error("--snapshot-dir: cannot open %s: %s", m->snap_dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!snap_is_tmp(de->d_name))
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            log_info("snapshot: removed %s/%s, left by a save that was interrupted", m->snap_dir,
                     de->d_name);
    }
    closedir(d);
    return 0;
}

/* ------------------------------------------------------------ restore */

static int snap_restore_one(mgrd *m, const char *file, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", m->snap_dir, file) >= (int)sizeof path)
        return -1;
    struct stat st;
    if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        log_warning("snapshot %s not restored: not a regular file of uid %u", path, (unsigned)geteuid());
        return -1;
    }
    img *im = NULL;
    char why[256];
    int rc = img_read(path, &im, why, sizeof why);
    if (rc) {
        log_error("snapshot %s not restored: %s; the file is left as it is", path, why);
        return -1;
    }
    if (strcmp(im->info.name, name) != 0) {
        log_error("snapshot %s not restored: it holds table %s, not %s; left as it is", path,
                  im->info.name, name);
        img_free(im);
        return -1;
    }
    /* built under a temporary name (a restore killed half-way leaves only
     * that, which rediscovery removes) and renamed into place (shmobj.c) */
    char base[MGRD_SHM_NAME_MAX], shm_name[MGRD_SHM_NAME_MAX], tmp_name[MGRD_SHM_NAME_MAX + 24];
    uid_t uid = (uid_t)im->info.uid;
    if (rt_shm_name(&m->rt, (unsigned long)uid, name, base, sizeof base) < 0) {
        img_free(im);
        return -1;
    }
    mgrd_obj_tmp_name(base, tmp_name, sizeof tmp_name);
    /* orphaned since then when it was orphaned at the snapshot; one that was
     * owned then had a living owner at least until the snapshot, and lost it
     * with the machine: it counts from this start, the first moment its
     * owner could claim it back (not from the snapshot, or --orphan-ttl
     * would remove it at boot, before its owner's service even started) */
    int64_t now = mgrd_now_us(), since = im->info.orphaned_us;
    if (since <= 0 || since > now)
        since = now;
    etsmgr_table_opts o;
    img_table_opts(im, &o);
    /* the permissions this daemon gives its tables now, as new_table
     * does: not the image's (a daemon that had --group and has it no
     * more, or an object someone opened up, made restored tables 0660 or
     * wider, for the daemon's group or anyone to map) */
    o.mode = m->shared ? 0660 : 0600;
    etsmgr_table *t = NULL;
    rc = tbl_create(tmp_name, name, &o, &t);
    if (rc == 0)
        rc = img_fill(t, im, why, sizeof why);
    else
        snprintf(why, sizeof why, "creating the shared-memory object: %s%s%s", etsmgr_strerror(rc),
                 rc == ETSMGR_ESYS ? ": " : "", rc == ETSMGR_ESYS ? strerror(errno) : "");
    if (rc == 0) {
        /* the object stays this daemon's (its uid is in its name); --group
         * lets the group map it */
        if (m->shared && fchown(etsmgr_table_fd(t), (uid_t)-1, m->gid) < 0)
            log_warning("snapshot: fchown of restored table %s to group %u failed: %s", name,
                        (unsigned)m->gid, strerror(errno));
        (void)tbl_set_owner(t, 0, (int32_t)m->pid, since);
        rc = mgrd_obj_place(tmp_name, base, name, shm_name, sizeof shm_name);
        if (rc == ETSMGR_EEXIST)
            snprintf(why, sizeof why, "an object of that name appeared in shared memory (not a valid "
                     "table?); it wins and is left untouched");
        else if (rc)
            snprintf(why, sizeof why, "%s", strerror(errno));
    }
    if (rc) {
        log_error("snapshot %s not restored: %s", path, why);
        if (t)
            etsmgr_table_close(t);
        tbl_unlink(tmp_name);
        img_free(im);
        return -1;
    }
    mgrd_table *rt = mgrd_reg_add(m, name, shm_name, t, uid);
    if (!rt) {
        log_error("snapshot: out of memory registering restored table %s (it stays in shared memory)",
                  name);
        etsmgr_table_close(t);
        img_free(im);
        return -1;
    }
    rt->orphaned_us = since;
    /* the image's records include the request ids: the filled table counts
     * only its entries */
    etsmgr_table_info ti;
    unsigned long long n = etsmgr_table_info_get(t, &ti) == ETSMGR_OK ? ti.entries : 0;
    char saved[64], age[48];
    mgrd_iso8601(im->info.saved_us, saved, sizeof saved);
    mgrd_fmt_age(mgrd_now_us() - im->info.saved_us, age, sizeof age);
    log_notice("restored table=%s (%llu %s, uid=%u) from the snapshot %s taken %s, %s old: "
               "orphaned until its owner claims it.", name, n, mgrd_entries_word(n), (unsigned)uid, path,
               saved, age);
    img_free(im);
    return 0;
}

size_t mgrd_snap_restore(mgrd *m)
{
    if (!m->snap_dir)
        return 0;
    DIR *d = opendir(m->snap_dir);
    if (!d) {
        log_error("snapshot: cannot list %s: %s; nothing restored", m->snap_dir, strerror(errno));
        return 0;
    }
    size_t restored = 0, kept = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *f = de->d_name;
        size_t fl = strlen(f), sl = strlen(SNAP_SUFFIX);
        if (snap_is_tmp(f) || fl <= sl || strcmp(f + fl - sl, SNAP_SUFFIX) != 0)
            continue;
        char name[ETSMGR_NAME_MAX + 1];
        if (fl - sl > ETSMGR_NAME_MAX || !rt_valid_name(f, fl - sl)) {
            log_warning("snapshot: %s/%s is not named like a table's snapshot; ignored", m->snap_dir, f);
            continue;
        }
        memcpy(name, f, fl - sl);
        name[fl - sl] = 0;
        if (mgrd_reg_find(m, name)) {
            log_info("snapshot of table=%s not restored: the table is still in shared memory, "
                     "which is newer", name);
            kept++;
            continue;
        }
        if (m->ntables >= m->max_tables) {
            log_error("snapshot of table=%s not restored: the limit of %zu tables is reached "
                      "(raise --max-tables)", name, m->max_tables);
            continue;
        }
        if (snap_restore_one(m, f, name) == 0)
            restored++;
    }
    closedir(d);
    if (restored || kept)
        log_notice("snapshot: %zu table(s) restored from %s, %zu still in shared memory.", restored,
                   m->snap_dir, kept);
    return restored;
}

/* ------------------------------------------------------------ save */

/* Held by whoever saves snapshots: the worker for a whole interval
 * snapshot, the loop for the others. */
static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;

/* What a snapshot run (on the loop or the worker) logs of one table that
 * failed, and of the whole run. */
static void snap_log_failed(const char *why, const char *name, int rc, const char *words)
{
    log_error("snapshot (%s): table=%s not saved, the previous snapshot stays: %s", why, name,
              words[0] ? words : etsmgr_strerror(rc));
}

/* A save that failed past its rename (img_last_in_place): the new snapshot
 * is the file now and the previous one is gone, but a power cut may still
 * undo the rename.  Counted as saved: a restart finds the new one. */
static void snap_log_not_durable(const char *why, const char *name, int rc, const char *words)
{
    log_error("snapshot (%s): table=%s saved, but not durably: %s", why, name,
              words[0] ? words : etsmgr_strerror(rc));
}

static void snap_log_run(const mgrd *m, const char *why, size_t saved, size_t failed, uint64_t bytes, int64_t t0,
                         uint64_t max_lock_ns)
{
    if (saved || failed)
        log_notice("snapshot (%s): %zu table(s) saved to %s (%llu bytes, %.1f ms, longest lock hold "
                   "%.3f ms)%s%zu failed.", why, saved, m->snap_dir, (unsigned long long)bytes,
                   (double)(mgrd_now_us() - t0) / 1000.0, max_lock_ns / 1e6, failed ? "; " : ", ", failed);
}

/* The size of an image file. */
static uint64_t snap_file_bytes(const img_info *info)
{
    return IMG_HDR_SIZE + info->records_bytes + IMG_TRAILER_SIZE;
}

size_t mgrd_snap_all(mgrd *m, const char *why, cJSON *report)
{
    if (!m->snap_dir)
        return 0;
    pthread_mutex_lock(&snap_lock);
    int64_t t0 = mgrd_now_us();
    size_t saved = 0, failed = 0;
    uint64_t bytes = 0, max_lock_ns = 0;
    cJSON *arr = report ? cJSON_AddArrayToObject(report, "tables") : NULL;
    for (mgrd_table *rt = m->tables; rt; rt = rt->next) {
        char path[4096], words[256] = "";
        img_info info;
        int rc = ETSMGR_EINVAL;
        bool in_place = false;
        if (snap_path(m, rt->name, path, sizeof path) == 0) {
            rc = img_save(rt->t, path, &info, words, sizeof words);
            in_place = rc && img_last_in_place();
        }
        cJSON *o = arr ? cJSON_CreateObject() : NULL;
        if (o) {
            cJSON_AddStringToObject(o, "name", rt->name);
            cJSON_AddStringToObject(o, "path", path);
            cJSON_AddItemToArray(arr, o);
        }
        if (rc && !in_place) {
            failed++;
            snap_log_failed(why, rt->name, rc, words);
            if (o)
                cJSON_AddStringToObject(o, "error", words[0] ? words : etsmgr_strerror(rc));
            continue;
        }
        if (in_place) {
            snap_log_not_durable(why, rt->name, rc, words);
            if (o)
                cJSON_AddStringToObject(o, "warning", words[0] ? words : etsmgr_strerror(rc));
        }
        saved++;
        uint64_t sz = snap_file_bytes(&info);
        bytes += sz;
        if (img_last_lock_ns() > max_lock_ns)
            max_lock_ns = img_last_lock_ns();
        /* the table's entries, as list_tables counts them: not its request ids */
        unsigned long long n = info.entries - info.rids;
        log_debug("snapshot (%s): table=%s, %llu %s, %llu bytes, lock held %.3f ms", why, rt->name, n,
                  mgrd_entries_word(n), (unsigned long long)sz, img_last_lock_ns() / 1e6);
        if (o) {
            cJSON_AddNumberToObject(o, "entries", (double)n);
            cJSON_AddNumberToObject(o, "bytes", (double)sz);
        }
    }
    snap_log_run(m, why, saved, failed, bytes, t0, max_lock_ns);
    if (report) {
        cJSON_AddStringToObject(report, "dir", m->snap_dir);
        cJSON_AddNumberToObject(report, "saved", (double)saved);
        cJSON_AddNumberToObject(report, "failed", (double)failed);
    }
    pthread_mutex_unlock(&snap_lock);
    return failed;
}

/* ------------------------------------------------------------ interval, off the loop */

typedef struct snap_item {
    char name[ETSMGR_NAME_MAX + 1];
    char path[4096];
    etsmgr_table *t; /* the worker's own attachment */
    dev_t dev;
    ino_t ino;
    dev_t fdev; /* the file the save wrote (fset), as renamed into place */
    ino_t fino;
    bool fset;
    int rc;
    bool in_place; /* rc, but the file is in place (img_last_in_place) */
    img_info info;
    uint64_t lock_ns;
    char why[256];
} snap_item;

typedef struct snap_job {
    uv_work_t w;
    mgrd *m;
    size_t n;
    snap_item *items;
    int64_t t0;
} snap_job;

static snap_job *snap_running; /* at most one interval snapshot at a time */

/* ETSMGRD_TEST_HOLD_SAVE=PATH (tests only): the worker, holding the save
 * lock, creates PATH.held and waits while PATH exists (30 s at most), so
 * that a test can act while an interval save is under way. */
static void snap_test_hold(void)
{
    const char *hold = getenv("ETSMGRD_TEST_HOLD_SAVE");
    if (!hold || !*hold)
        return;
    char held[4096];
    snprintf(held, sizeof held, "%s.held", hold);
    int fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    struct stat st;
    for (int i = 0; i < 30000 && stat(hold, &st) == 0; i++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

static void snap_work(uv_work_t *w)
{
    snap_job *j = w->data;
    pthread_mutex_lock(&snap_lock);
    snap_test_hold();
    for (size_t i = 0; i < j->n; i++) {
        snap_item *it = &j->items[i];
        it->rc = img_save(it->t, it->path, &it->info, it->why, sizeof it->why);
        it->lock_ns = img_last_lock_ns();
        it->in_place = it->rc && img_last_in_place();
        /* which file is ours: a save on the loop (etsmgrctl snapshot, the
         * SIGTERM one) may replace it before snap_done runs, and snap_done
         * must not remove that newer file */
        struct stat fs;
        it->fset = (it->rc == 0 || it->in_place) && stat(it->path, &fs) == 0;
        if (it->fset)
            it->fdev = fs.st_dev, it->fino = fs.st_ino;
    }
    pthread_mutex_unlock(&snap_lock);
}

static void snap_done(uv_work_t *w, int status)
{
    snap_job *j = w->data;
    mgrd *m = j->m;
    size_t saved = 0, failed = 0;
    uint64_t bytes = 0, max_lock_ns = 0;
    for (size_t i = 0; i < j->n; i++) {
        snap_item *it = &j->items[i];
        etsmgr_table_close(it->t);
        if (status < 0 || (it->rc && !it->in_place)) {
            failed++;
            snap_log_failed("interval", it->name, it->rc, status < 0 ? uv_strerror(status) : it->why);
            continue;
        }
        mgrd_table *rt = mgrd_reg_find(m, it->name);
        if (!rt || rt->dev != it->dev || rt->ino != it->ino) {
            /* deleted (or replaced) while we saved it: the file is the old
             * table's, unless a save on the loop has put the new table's
             * in its place since (then that one stays) */
            struct stat fs;
            if (it->fset && stat(it->path, &fs) == 0 && fs.st_dev == it->fdev && fs.st_ino == it->fino) {
                if (unlink(it->path) == 0)
                    log_info("snapshot (interval): table=%s went away during the save; its new snapshot "
                             "is removed", it->name);
            } else {
                log_info("snapshot (interval): table=%s went away during the save; a newer snapshot "
                         "of it is kept", it->name);
            }
            continue;
        }
        if (it->in_place)
            snap_log_not_durable("interval", it->name, it->rc, it->why);
        saved++;
        bytes += snap_file_bytes(&it->info);
        if (it->lock_ns > max_lock_ns)
            max_lock_ns = it->lock_ns;
    }
    snap_log_run(m, "interval", saved, failed, bytes, j->t0, max_lock_ns);
    free(j->items);
    free(j);
    snap_running = NULL;
}

/* Starts an interval snapshot on a worker thread; false when it could not
 * (then the caller saves on the loop). */
static bool snap_start_job(mgrd *m)
{
    snap_job *j = calloc(1, sizeof *j);
    snap_item *items = j && m->ntables ? calloc(m->ntables, sizeof *items) : NULL;
    if (!j || (m->ntables && !items)) {
        free(j);
        free(items);
        return false;
    }
    j->m = m;
    j->items = items;
    j->t0 = mgrd_now_us();
    for (mgrd_table *rt = m->tables; rt && j->n < m->ntables; rt = rt->next) {
        snap_item *it = &items[j->n];
        if (snap_path(m, rt->name, it->path, sizeof it->path) < 0) {
            log_error("snapshot (interval): table=%s skipped: its snapshot path under %s is too long; "
                      "give etsmgrd a shorter --snapshot-dir", rt->name, m->snap_dir);
            continue;
        }
        int fd = fcntl(etsmgr_table_fd(rt->t), F_DUPFD_CLOEXEC, 0);
        int rc = fd < 0 ? 0 : etsmgr_table_attach_fd(fd, &it->t);
        if (fd < 0 || rc != 0) {
            log_error("snapshot (interval): table=%s skipped: cannot attach it again: %s", rt->name,
                      fd < 0 ? strerror(errno) : etsmgr_strerror(rc));
            if (fd >= 0)
                close(fd);
            continue;
        }
        etsmgr_table_set_lock_timeout(it->t, MGRD_LOCK_TIMEOUT_MS);
        snprintf(it->name, sizeof it->name, "%s", rt->name);
        it->dev = rt->dev;
        it->ino = rt->ino;
        j->n++;
    }
    j->w.data = j;
    if (uv_queue_work(m->loop, &j->w, snap_work, snap_done) < 0) {
        for (size_t i = 0; i < j->n; i++)
            etsmgr_table_close(items[i].t);
        free(items);
        free(j);
        return false;
    }
    snap_running = j;
    return true;
}

void mgrd_snap_remove(mgrd *m, const char *name)
{
    if (!m->snap_dir)
        return;
    char path[4096];
    if (snap_path(m, name, path, sizeof path) < 0)
        return;
    if (unlink(path) == 0)
        log_info("snapshot %s removed with its table", path);
    else if (errno != ENOENT)
        log_warning("cannot remove the snapshot %s: %s; remove it by hand, or the table comes back "
                    "after a reboot", path, strerror(errno));
}

/* ------------------------------------------------------------ timers */

static uv_timer_t snap_timer, ttl_timer;
static bool snap_timer_on, ttl_timer_on;

static void on_snap_timer(uv_timer_t *h)
{
    mgrd *m = h->data;
    if (snap_running) {
        log_warning("snapshot (interval): the previous one is still being written; this one is skipped "
                    "(--snapshot-interval %u s is shorter than a snapshot takes)", m->snap_interval);
        return;
    }
    if (!snap_start_job(m))
        mgrd_snap_all(m, "interval", NULL);
}

static void on_ttl_timer(uv_timer_t *h)
{
    mgrd_orphans_expire(h->data, mgrd_now_us());
}

int mgrd_timers_start(mgrd *m)
{
    int rc;
    if (m->snap_dir && m->snap_interval) {
        uint64_t ms = (uint64_t)m->snap_interval * 1000u;
        if ((rc = uv_timer_init(m->loop, &snap_timer)) < 0 ||
            (rc = uv_timer_start(&snap_timer, on_snap_timer, ms, ms)) < 0) {
            log_error("--snapshot-interval: uv_timer_start: %s", uv_strerror(rc));
            return -1;
        }
        snap_timer.data = m;
        snap_timer_on = true;
    }
    if (m->orphan_ttl) {
        /* the TTL is whole seconds: a look every second is precise enough */
        if ((rc = uv_timer_init(m->loop, &ttl_timer)) < 0 ||
            (rc = uv_timer_start(&ttl_timer, on_ttl_timer, 1000, 1000)) < 0) {
            log_error("--orphan-ttl: uv_timer_start: %s", uv_strerror(rc));
            return -1;
        }
        ttl_timer.data = m;
        ttl_timer_on = true;
    }
    return 0;
}

void mgrd_timers_stop(mgrd *m)
{
    (void)m;
    if (snap_timer_on)
        uv_close((uv_handle_t *)&snap_timer, NULL);
    if (ttl_timer_on)
        uv_close((uv_handle_t *)&ttl_timer, NULL);
    snap_timer_on = ttl_timer_on = false;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* runtime.c: one resolution of "where does this instance live", shared by
 * every program, so a CLI run with no options finds the daemons a supervisor
 * started with none.
 *
 * The runtime dir holds the sockets and the instance lock, so it must be
 * private: created 0700, and an existing one is refused when another user
 * owns it or anyone else may write to it (someone else could then put their
 * own socket where our clients connect), and so is one on whose way a
 * directory others can write lies (they could put their own dir there).
 * A relative dir is made absolute at resolution, so every process of an
 * instance agrees on it whatever its working directory. */
#include "runtime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* room kept after the dir for "/<file>" (the longest is "etscounter.sock") */
#define RT_FILE_RESERVE 24
#define PATH_MAX_RT_BUF 4096

bool rt_valid_name(const char *name, size_t len)
{
    if (!name || len == 0 || len > RT_NAME_MAX)
        return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return false;
    }
    return true;
}

static const char *rt_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int rt_resolve(const char *opt_dir, const char *opt_instance, rt_paths *out, char *err, size_t errlen)
{
    const char *inst = opt_instance ? opt_instance : rt_env("ETSMGR_INSTANCE");
    out->instance_from = opt_instance ? "--instance" : inst ? "$ETSMGR_INSTANCE" : "the default";
    /* One default for every user: users' tables stay apart anyway, since a
     * table's object name holds its uid and a daemon takes only objects of
     * its own uid (docs/design.md, "Object names"). */
    const char *dflt = "etsmgr";
    if (!inst)
        inst = dflt;
    if (!rt_valid_name(inst, strlen(inst))) {
        snprintf(err, errlen,
                 "invalid instance name \"%.80s\": use 1 to 64 of A-Z a-z 0-9 _ . - (not \".\" or \"..\")",
                 inst);
        return -1;
    }

    char dir[PATH_MAX_RT_BUF];
    const char *d = opt_dir ? opt_dir : rt_env("ETSMGR_RUNTIME_DIR");
    bool chosen = d != NULL; /* given, not a default */
    int n;
    if (d) {
        if (!*d) {
            snprintf(err, errlen, "the runtime directory must not be empty");
            return -1;
        }
        out->dir_from = opt_dir ? "--runtime-dir" : "$ETSMGR_RUNTIME_DIR";
        n = snprintf(dir, sizeof dir, "%s", d);
    } else if ((d = rt_env("XDG_RUNTIME_DIR"))) {
        out->dir_from = "$XDG_RUNTIME_DIR/etsmgr ($ETSMGR_RUNTIME_DIR is not set)";
        n = snprintf(dir, sizeof dir, "%s/etsmgr", d);
    } else if (geteuid() == 0) {
        out->dir_from = "root's default ($ETSMGR_RUNTIME_DIR and $XDG_RUNTIME_DIR are not set)";
        n = snprintf(dir, sizeof dir, "/run/etsmgr");
    } else {
        out->dir_from = "the default for this uid ($ETSMGR_RUNTIME_DIR and $XDG_RUNTIME_DIR are not set)";
        n = snprintf(dir, sizeof dir, "/tmp/etsmgr-%lu", (unsigned long)geteuid());
    }
    /* a default dir of its own for every other instance, the one etsmgr@NAME
     * .service uses, so --instance NAME alone finds it */
    if (!chosen && n >= 0 && (size_t)n < sizeof dir && strcmp(inst, dflt) != 0) {
        n += snprintf(dir + n, sizeof dir - (size_t)n, "@%s", inst);
        out->dir_from = rt_env("XDG_RUNTIME_DIR") ? "$XDG_RUNTIME_DIR/etsmgr@INSTANCE (not the default instance)"
                        : geteuid() == 0           ? "root's default, @INSTANCE (not the default instance)"
                                                   : "the default for this uid, @INSTANCE (not the default instance)";
    }
    if (n < 0 || (size_t)n >= sizeof dir) {
        snprintf(err, errlen, "runtime directory path is too long");
        return -1;
    }
    if (dir[0] != '/') {
        char cwd[PATH_MAX_RT_BUF], abs[PATH_MAX_RT_BUF];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(err, errlen, "getcwd: %s (needed to make runtime dir \"%s\" absolute)",
                     strerror(errno), dir);
            return -1;
        }
        n = snprintf(abs, sizeof abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir);
        if (n < 0 || (size_t)n >= sizeof abs) {
            snprintf(err, errlen, "runtime directory path is too long");
            return -1;
        }
        memcpy(dir, abs, (size_t)n + 1);
    }
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dir[--dl] = '\0';
    if (dl + RT_FILE_RESERVE >= RT_PATH_MAX) {
        snprintf(err, errlen,
                 "runtime directory \"%.200s\" is too long: socket paths must fit in %d bytes, "
                 "so use a directory of at most %d characters",
                 dir, RT_PATH_MAX, RT_PATH_MAX - RT_FILE_RESERVE - 1);
        return -1;
    }
    memcpy(out->dir, dir, dl + 1);
    snprintf(out->instance, sizeof out->instance, "%s", inst);
    return 0;
}

/* One directory in which rt_check_way looks a name up: root's or ours, and
 * writable by no one else unless sticky. */
static int rt_way_dir_ok(const char *dir, const char *path, const char *what, char *err, size_t errlen)
{
    struct stat st;
    /* dir holds no symlink (rt_check_way followed them), so lstat is stat */
    if (lstat(dir, &st) < 0) {
        snprintf(err, errlen, "lstat %s, on the way to %s %s: %s", dir, what, path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s, on the way to %s %s, is not a directory", dir, what, path);
        return -1;
    }
    unsigned long me = (unsigned long)geteuid();
    bool owner_ok = st.st_uid == 0 || st.st_uid == geteuid();
    bool open_to_others = (st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX);
    if (owner_ok && !open_to_others)
        return 0;
    /* its owner can rename what is in it, sticky or not: chmod is no way out */
    char advice[PATH_MAX_RT_BUF + 64];
    if (owner_ok)
        snprintf(advice, sizeof advice, "run chmod go-w %s (or chmod +t %s: sticky, as /tmp), or ", dir, dir);
    else
        advice[0] = '\0';
    snprintf(err, errlen,
             "%s, on the way to %s %s, is %s (uid %lu, mode %04o): whoever can write it can put a "
             "directory or symlink of their own in place of %s; %suse a directory whose every "
             "parent belongs to root or uid %lu and is not writable by others (or is sticky, as /tmp)",
             dir, what, path, owner_ok ? "writable by others" : "another user's", (unsigned long)st.st_uid,
             (unsigned)(st.st_mode & 07777), what, advice, me);
    return -1;
}

/* An entry (st, lstat's) of dir, a directory that passed rt_way_dir_ok.
 * In a sticky directory others can write (/tmp), the entry's owner can
 * still remove or rename it and put another in its place: a symlink or a
 * directory there must be root's or ours.  stat would judge only a link's
 * target, and the kernel's fs.protected_symlinks, which refuses to follow
 * such a link, is often off in containers. */
static int rt_way_entry_ok(const char *dir, const char *entry, const struct stat *st, const char *path,
                           const char *what, char *err, size_t errlen)
{
    if (st->st_uid == 0 || st->st_uid == geteuid())
        return 0;
    struct stat ds;
    if (lstat(dir, &ds) < 0) {
        snprintf(err, errlen, "lstat %s, on the way to %s %s: %s", dir, what, path, strerror(errno));
        return -1;
    }
    if (!(ds.st_mode & S_ISVTX) || !(ds.st_mode & (S_IWGRP | S_IWOTH)))
        return 0; /* no one else can replace it (or rt_way_dir_ok judges it next) */
    snprintf(err, errlen,
             "%s, on the way to %s %s, is %s of uid %lu in %s, a sticky directory others can write (mode "
             "%04o): its owner can put another in its place; use a path through entries that belong to root "
             "or uid %lu",
             entry, what, path, S_ISLNK(st->st_mode) ? "a symlink" : S_ISDIR(st->st_mode) ? "a directory" : "a file",
             (unsigned long)st->st_uid, dir, (unsigned)(ds.st_mode & 07777), (unsigned long)geteuid());
    return -1;
}

/* The first component of *rest into comp (NUL-terminated), *rest moved past
 * it and the slashes after it: 1; 0 when nothing is left; -1 when it is
 * longer than comp holds (a name may be 255 bytes): cut, it would name
 * another file, one that may exist. */
static int rt_next_comp(const char **rest, char *comp, size_t len)
{
    const char *r = *rest;
    while (*r == '/')
        r++;
    if (!*r)
        return 0;
    size_t n = strcspn(r, "/");
    if (n >= len)
        return -1;
    memcpy(comp, r, n);
    comp[n] = '\0';
    r += strcspn(r, "/");
    while (*r == '/')
        r++;
    *rest = r;
    return 1;
}

/* Resolution by hand, as the kernel does it, so that every directory a
 * name is looked up in is judged, those behind symlinks too (a link to a
 * link: realpath's answer alone would skip the directory of the second). */
int rt_check_way(const char *path, const char *what, char *resolved, size_t rlen, char *err, size_t errlen)
{
    char cur[PATH_MAX_RT_BUF]; /* resolved so far: absolute, no symlinks */
    char todo[PATH_MAX_RT_BUF], next[PATH_MAX_RT_BUF], comp[256];
    if (path[0] == '/') {
        snprintf(cur, sizeof cur, "/");
    } else if (!getcwd(cur, sizeof cur)) {
        snprintf(err, errlen, "getcwd: %s (needed to check the way to %s %s)", strerror(errno), what, path);
        return -1;
    }
    if (snprintf(todo, sizeof todo, "%s", path) >= (int)sizeof todo) {
        snprintf(err, errlen, "%s %.200s: path too long", what, path);
        return -1;
    }
    /* the working directory's own way, then every step from it */
    if (path[0] != '/') {
        char cwd[PATH_MAX_RT_BUF];
        memcpy(cwd, cur, sizeof cwd);
        for (char *c = cwd; (c = strchr(c + 1, '/'));) {
            *c = '\0';
            int r = rt_way_dir_ok(cwd, path, what, err, errlen);
            *c = '/';
            if (r < 0)
                return -1;
        }
        if (rt_way_dir_ok("/", path, what, err, errlen) < 0)
            return -1;
    }
    int links = 0;
    const char *rest = todo;
    bool checked = false; /* cur judged already */
    for (int got; (got = rt_next_comp(&rest, comp, sizeof comp)) != 0;) {
        if (got < 0) {
            snprintf(err, errlen, "%s %.200s: a name on the way is longer than 255 bytes: %s", what, path,
                     strerror(ENAMETOOLONG));
            return -1;
        }
        /* a name is looked up in cur */
        if (!checked && rt_way_dir_ok(cur, path, what, err, errlen) < 0)
            return -1;
        checked = true;
        if (strcmp(comp, ".") == 0)
            continue;
        if (strcmp(comp, "..") == 0) {
            /* its parent was judged on the way here */
            char *slash = strrchr(cur, '/');
            if (slash == cur)
                cur[1] = '\0';
            else
                *slash = '\0';
            continue;
        }
        int n = snprintf(next, sizeof next, "%s/%s", strcmp(cur, "/") == 0 ? "" : cur, comp);
        if (n < 0 || (size_t)n >= sizeof next) {
            snprintf(err, errlen, "%s %.200s: path too long", what, path);
            return -1;
        }
        struct stat st;
        if (lstat(next, &st) < 0) {
            snprintf(err, errlen, "lstat %s, on the way to %s %s: %s", next, what, path, strerror(errno));
            return -1;
        }
        if (rt_way_entry_ok(cur, next, &st, path, what, err, errlen) < 0)
            return -1;
        if (S_ISLNK(st.st_mode)) {
            if (++links > 40) {
                snprintf(err, errlen, "%s %s: %s", what, path, strerror(ELOOP));
                return -1;
            }
            char target[PATH_MAX_RT_BUF], left[PATH_MAX_RT_BUF];
            ssize_t tl = readlink(next, target, sizeof target - 1);
            if (tl < 0) {
                snprintf(err, errlen, "readlink %s, on the way to %s %s: %s", next, what, path,
                         strerror(errno));
                return -1;
            }
            target[tl] = '\0';
            /* the link's target, then what was left after it */
            n = snprintf(left, sizeof left, "%s/%s", target, rest);
            if (n < 0 || (size_t)n >= sizeof left) {
                snprintf(err, errlen, "%s %.200s: path too long", what, path);
                return -1;
            }
            memcpy(todo, left, (size_t)n + 1);
            rest = todo;
            if (target[0] == '/') {
                snprintf(cur, sizeof cur, "/");
                checked = false;
            }
            continue;
        }
        memcpy(cur, next, (size_t)n + 1);
        checked = false;
    }
    if (resolved && snprintf(resolved, rlen, "%s", cur) >= (int)rlen) {
        snprintf(err, errlen, "%s %.200s: path too long", what, path);
        return -1;
    }
    return 0;
}

/* The final directory must be ours and private enough. */
static int rt_check_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        snprintf(err, errlen, "lstat %s: %s", dir, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        /* the link could be changed by whoever owns it or its directory
         * later; the directory it names can be used itself */
        snprintf(err, errlen,
                 "runtime directory %s is a symlink: use the directory it names as --runtime-dir "
                 "or ETSMGR_RUNTIME_DIR, or remove the link",
                 dir);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "runtime directory %s exists but is not a directory", dir);
        return -1;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen,
                 "runtime directory %s belongs to uid %lu, not to us (uid %lu): use another "
                 "--runtime-dir or ETSMGR_RUNTIME_DIR",
                 dir, (unsigned long)st.st_uid, (unsigned long)geteuid());
        return -1;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(err, errlen,
                 "runtime directory %s is writable by group or others (mode %04o): "
                 "run chmod 0700 %s, or use another directory",
                 dir, (unsigned)(st.st_mode & 07777), dir);
        return -1;
    }
    return 0;
}

/* A refused runtime dir says where its path came from: root that kept a
 * user's $XDG_RUNTIME_DIR (su without -, sudo -E) finds it under
 * /run/user/UID and must hear why, and what to set instead. */
static void rt_say_from(const rt_paths *rt, char *err, size_t errlen)
{
    size_t n = strlen(err);
    if (!rt->dir_from || n + 1 >= errlen)
        return;
    bool xdg = strncmp(rt->dir_from, "$XDG_RUNTIME_DIR", 16) == 0;
    snprintf(err + n, errlen - n, " (the runtime directory is %s%s)", rt->dir_from,
             xdg ? ": unset XDG_RUNTIME_DIR, or set ETSMGR_RUNTIME_DIR to a directory of this uid's" : "");
}

int rt_ensure_dir(const rt_paths *rt, char *err, size_t errlen)
{
    char path[RT_PATH_MAX];
    snprintf(path, sizeof path, "%s", rt->dir);
    size_t len = strlen(path);
    /* parents first (mkdir -p), with the usual 0755 */
    for (size_t i = 1; i < len; i++) {
        if (path[i] != '/')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
            return -1;
        }
        path[i] = '/';
    }
    bool made = mkdir(path, 0700) == 0;
    if (!made && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    /* the way before anything is done through it: in a directory others
     * can write, what we just made (or found) could be theirs by now, or
     * their link to a directory of ours that chmod would change */
    if (rt_check_way(path, "the runtime directory", NULL, 0, err, errlen) < 0) {
        rt_say_from(rt, err, errlen);
        return -1;
    }
    /* whatever the umask said */
    if (made && chmod(path, 0700) < 0) {
        snprintf(err, errlen, "chmod 0700 %s: %s", path, strerror(errno));
        return -1;
    }
    return rt_check_dir(path, err, errlen);
}

int rt_path(const rt_paths *rt, const char *file, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s", rt->dir, file);
    if (n < 0 || (size_t)n >= len || (size_t)n >= RT_PATH_MAX)
        return -1;
    return 0;
}

int rt_shm_name(const rt_paths *rt, unsigned long uid, const char *table, char *buf, size_t len)
{
    if (!table || !rt_valid_name(table, strlen(table)))
        return -1;
    int n = snprintf(buf, len, "/%s%c%lu%c%s", rt->instance, RT_SHM_SEP, uid, RT_SHM_SEP, table);
    if (n < 0 || (size_t)n >= len)
        return -1;
    return 0;
}

/* [0-9a-f]{16} */
static bool rt_hex16(const char *s)
{
    for (int i = 0; i < 16; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[16] == '\0';
}

rt_shm_kind rt_shm_parse(const char *instance, const char *ent, unsigned long *uid, char *table)
{
    size_t il = strlen(instance);
    if (strncmp(ent, instance, il) != 0)
        return RT_SHM_OTHER;
    const char *p = ent + il;
    if (*p == '.') { /* a version-1 name: "<instance>.<table>" */
        size_t tl = strlen(p + 1);
        if (!rt_valid_name(p + 1, tl))
            return RT_SHM_OTHER;
        memcpy(table, p + 1, tl + 1);
        *uid = 0;
        return RT_SHM_LEGACY;
    }
    if (*p++ != RT_SHM_SEP)
        return RT_SHM_OTHER;
    /* the uid: canonical decimal, so that one uid has one spelling */
    const char *u = p;
    unsigned long long v = 0;
    while (*p >= '0' && *p <= '9' && p - u < 10)
        v = v * 10 + (unsigned long long)(*p++ - '0');
    if (p == u || *p != RT_SHM_SEP || (u[0] == '0' && p - u > 1) || v > 0xfffffffeull)
        return RT_SHM_OTHER;
    p++;
    const char *t = p, *end = strchr(t, RT_SHM_SEP);
    size_t tl = end ? (size_t)(end - t) : strlen(t);
    if (!rt_valid_name(t, tl))
        return RT_SHM_OTHER;
    rt_shm_kind kind = RT_SHM_TABLE;
    if (end) {
        if (strncmp(end + 1, "new-", 4) == 0 && rt_hex16(end + 5))
            kind = RT_SHM_PARTIAL;
        else if (rt_hex16(end + 1))
            kind = RT_SHM_PLACED;
        else
            return RT_SHM_OTHER;
    }
    memcpy(table, t, tl);
    table[tl] = '\0';
    *uid = (unsigned long)v;
    return kind;
}

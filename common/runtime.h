/* SPDX-License-Identifier: Apache-2.0 */
/* runtime.h: where an instance lives.  Every program resolves the runtime
 * directory and instance name with rt_resolve, so a CLI finds the daemons
 * without options:
 *   dir:      --runtime-dir, else $ETSMGR_RUNTIME_DIR, else $XDG_RUNTIME_DIR/etsmgr,
 *             else /run/etsmgr for root, else /tmp/etsmgr-$UID; a default dir
 *             gets "@NAME" appended for an instance NAME other than etsmgr
 *             (/run/etsmgr@NAME: etsmgr@NAME.service's)
 *   instance: --instance, else $ETSMGR_INSTANCE, else "etsmgr" (users stay
 *             apart all the same: a table's object name holds its uid, and
 *             a daemon takes only objects of its own uid)
 * Shared-memory objects of an instance are "/<instance>:<uid>:<table>". */
#ifndef ETSMGR_RUNTIME_H
#define ETSMGR_RUNTIME_H
#include <stdbool.h>
#include <stddef.h>

#define RT_PATH_MAX 108 /* sun_path: socket paths must fit */
#define RT_NAME_MAX 64  /* instance and table names (etsmgr.h's ETSMGR_NAME_MAX) */
#define RT_INSTANCE_MAX RT_NAME_MAX

typedef struct rt_paths {
    char dir[RT_PATH_MAX];
    char instance[RT_INSTANCE_MAX + 1];
    /* where each came from, for people (etsmgrctl env): "--runtime-dir",
     * "$ETSMGR_RUNTIME_DIR", "$XDG_RUNTIME_DIR/etsmgr" ...; static strings */
    const char *dir_from, *instance_from;
} rt_paths;

/* opt_dir / opt_instance: the command line's values or NULL.  Returns 0, or
 * -1 with a message in err (instance name invalid, path too long). */
int rt_resolve(const char *opt_dir, const char *opt_instance, rt_paths *out, char *err, size_t errlen);
/* mkdir -p the runtime dir with mode 0700, then check it: the dir itself
 * must be ours, not a symlink and not writable by group or others, and
 * every directory on the way to it must pass rt_check_way (0 or -1 with a
 * message). */
int rt_ensure_dir(const rt_paths *rt, char *err, size_t errlen);
/* Every directory in which a name is looked up on the way to path (path as
 * given and every symlink on the way followed, the last component's too,
 * so the directories realpath(3) passes through are among them) must
 * belong to root or to our euid and be writable by no one else, unless it
 * is sticky (as /tmp: others cannot move what is ours there; a symlink or
 * directory on the way in a sticky directory others can write must then
 * be root's or ours itself, as its owner can replace it).  Otherwise
 * whoever can write one can put a directory or a symlink of their choosing
 * in the place of what follows, between our checks and our use.  path
 * must exist; it is not judged itself: that is the caller's own check.  A relative path
 * starts at the working directory, whose way is checked from "/".  what
 * names path for people ("the runtime directory").  resolved (may be NULL)
 * gets path without symlinks, "." or "..".  0, or -1 with a message in err
 * that names the directory, its owner and mode, and what to do. */
int rt_check_way(const char *path, const char *what, char *resolved, size_t rlen, char *err, size_t errlen);
/* DIR/<file> into buf; -1 when it does not fit a socket path. */
int rt_path(const rt_paths *rt, const char *file, char *buf, size_t len);
/* Shared-memory object names (docs/design.md, "Object names").  ':' is in
 * neither an instance nor a table name, so (instance, uid, table) maps to one
 * name and a name parses back to one triple:
 *   /<instance>:<uid>:<table>                  table <table> of uid <uid>
 *   /<instance>:<uid>:<table>:<16 hex>         the same, placed beside a name
 *                                              another user's object took first
 *   /<instance>:<uid>:<table>:new-<16 hex>     being created; renamed into place
 *                                              once complete
 *   /<instance>.<table>                        version-1 names (development builds before 0.1.0)
 *                                              (ambiguous: read only to migrate)
 * <uid> is decimal without leading zeros. */
#define RT_SHM_SEP ':'
/* "/<instance>:<uid>:<table>" into buf; -1 when the table name is invalid or
 * it does not fit. */
int rt_shm_name(const rt_paths *rt, unsigned long uid, const char *table, char *buf, size_t len);
typedef enum rt_shm_kind {
    RT_SHM_OTHER = 0, /* not an object of this instance */
    RT_SHM_TABLE,     /* /<instance>:<uid>:<table> */
    RT_SHM_PLACED,    /* /<instance>:<uid>:<table>:<16 hex> */
    RT_SHM_PARTIAL,   /* /<instance>:<uid>:<table>:new-<16 hex> */
    RT_SHM_LEGACY,    /* /<instance>.<table> */
} rt_shm_kind;
/* What the /dev/shm entry ent (no leading slash) is for instance; uid and
 * table (ETSMGR_NAME_MAX + 1 bytes) are filled for every kind but OTHER
 * (uid: 0 for LEGACY). */
rt_shm_kind rt_shm_parse(const char *instance, const char *ent, unsigned long *uid, char *table);

/* The one name rule, for instances and tables alike (the table store checks
 * table names with it too): [A-Za-z0-9_.-]{1,64}, and not "." or "..", so a
 * name is a safe file and shm name component. */
bool rt_valid_name(const char *name, size_t len);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* access.c: other processes' use of a table (ETS access modes), and the
 * rollback of a writer that died mid-change, on a reader's request.
 *
 * open_table hands a table to a process that is not its owner: an fd of its
 * own, opened O_RDONLY for a reader (so the kernel refuses its writes
 * whatever the library does), the daemon's O_RDWR one for a writer of a
 * public table.  Nothing is recorded: an opener is not an owner, and its
 * connection closing changes nothing.  Who may open is who may reach the
 * table today: the table's uid (and root) always; with --group every peer,
 * since only members of the group can connect to the 0660 socket.  Then the
 * table's access mode, read from its header (it survives daemon restarts
 * there): private tables are the owner's alone, protected ones are read by
 * others, public ones also written.
 *
 * recover takes the table's lock and releases it: a dead holder's change is
 * rolled back and the lock-free readers it held up go on (docs/design.md,
 * "Readers without locks").  The daemon is every table's heir, so this is
 * the path that works whatever process died. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "proto.h"
#include "table.h"

const char *mgrd_access_name(int access)
{
    switch (access) {
    case ETSMGR_PRIVATE: return "private";
    case ETSMGR_PUBLIC: return "public";
    default: return "protected";
    }
}

int mgrd_access_parse(const char *s)
{
    if (strcmp(s, "private") == 0) return ETSMGR_PRIVATE;
    if (strcmp(s, "protected") == 0) return ETSMGR_PROTECTED;
    if (strcmp(s, "public") == 0) return ETSMGR_PUBLIC;
    return -1;
}

static bool may_reach(mgrd *m, mgrd_table *rt, const mgrd_peer *p)
{
    return p->uid == rt->uid || p->uid == 0 || m->shared;
}

cJSON *mgrd_open_table(mgrd *m, const mgrd_peer *p, const cJSON *req, mgrd_table *rt, int *reply_fd,
                       bool *close_fd)
{
    const char *mode = "read";
    char msg[160];
    if (proto_get_string(req, "mode", &mode, msg, sizeof msg) < 0)
        return proto_reply_err(req, PROTO_E_BAD_REQUEST, "%s", msg);
    bool write = strcmp(mode, "write") == 0;
    if (!write && strcmp(mode, "read") != 0)
        return proto_reply_err(req, PROTO_E_BAD_REQUEST, "field \"mode\" must be \"read\" or \"write\", not \"%.32s\"",
                               mode);
    etsmgr_table_info info; /* the access mode, fixed at creation: no lock to wait for */
    int rc = tbl_info_nowait(rt->t, &info, NULL);
    if (rc < 0)
        return proto_reply_err(req, PROTO_E_INVALID_TABLE, "table %s cannot be read: %s", rt->name, etsmgr_strerror(rc));
    bool owner = rt->owner == p;
    if (!owner) {
        if (!may_reach(m, rt, p))
            return proto_reply_err(req, PROTO_E_FORBIDDEN, "table %s belongs to uid %u; the caller is uid %u", rt->name,
                                   (unsigned)rt->uid, (unsigned)p->uid);
        if (info.access == ETSMGR_PRIVATE)
            return proto_reply_err(req, PROTO_E_NOT_PERMITTED,
                                   "table %s is private: only its owner uses it (create it protected or "
                                   "public to share it)",
                                   rt->name);
        if (write && info.access != ETSMGR_PUBLIC)
            return proto_reply_err(req, PROTO_E_NOT_PERMITTED,
                                   "table %s is protected: its owner writes, others only read (open it for "
                                   "reading)",
                                   rt->name);
    }
    if (write) {
        *reply_fd = etsmgr_table_fd(rt->t); /* the registry's; not closed after sending */
    } else {
        int fd = shm_open(rt->shm_name, O_RDONLY | O_CLOEXEC, 0);
        dev_t dev;
        ino_t ino;
        uid_t uid;
        if (fd < 0)
            return proto_reply_err(req, PROTO_E_INTERNAL, "cannot open %s for reading: %s", rt->shm_name, strerror(errno));
        if (mgrd_fd_ident(fd, &dev, &ino, &uid) < 0 || dev != rt->dev || ino != rt->ino) {
            close(fd);
            return proto_reply_err(req, PROTO_E_INVALID_TABLE, "%s was replaced by another object", rt->shm_name);
        }
        *reply_fd = fd;
        *close_fd = true;
    }
    cJSON *r = proto_reply_ok(req);
    if (r) {
        cJSON_AddStringToObject(r, "name", rt->name);
        cJSON_AddStringToObject(r, "mode", write ? "write" : "read");
        cJSON_AddStringToObject(r, "access", mgrd_access_name(info.access));
        cJSON_AddNumberToObject(r, "owner_pid", mgrd_reg_state(rt) == MGRD_OWNED ? (double)rt->owner_pid : 0);
    }
    return r;
}

cJSON *mgrd_recover(mgrd *m, const mgrd_peer *p, const cJSON *req, mgrd_table *rt)
{
    if (!may_reach(m, rt, p))
        return proto_reply_err(req, PROTO_E_FORBIDDEN, "table %s belongs to uid %u; the caller is uid %u", rt->name,
                               (unsigned)rt->uid, (unsigned)p->uid);
    /* without waiting: a reader asks when the holder died (its lock then
     * comes at once); a living holder would make any peer able to stall
     * the daemon, a lock timeout per request it pipelines */
    int rc = tbl_recover_nowait(rt->t);
    if (rc == ETSMGR_ELOCKED)
        return proto_reply_err(req, PROTO_E_LOCKED, "table %s: its lock is held by a live process that does not let go",
                               rt->name);
    if (rc < 0)
        return proto_reply_err(req, PROTO_E_INVALID_TABLE, "table %s: %s", rt->name, etsmgr_strerror(rc));
    cJSON *r = proto_reply_ok(req);
    if (r)
        cJSON_AddStringToObject(r, "name", rt->name);
    return r;
}

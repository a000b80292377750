/* SPDX-License-Identifier: Apache-2.0 */
/* fdcheck.c: is a received fd really the table it is said to be?  And in
 * what words to say why an object could not be opened.
 *
 * add_table trusts nothing about the fd a client attaches: it could be a
 * pipe, a socket, a regular file, another instance's table, another table of
 * this instance, or an object someone else made under a table's name.  On
 * Linux a POSIX shm object is a regular file on the tmpfs mounted at
 * /dev/shm, so the fd must be S_ISREG and have the same st_dev/st_ino as an
 * own object of that table listed in /dev/shm now (shmobj.c).  Identity, not
 * content, decides: a copy of a table's bytes in another file is not the
 * table.  And it must be open read-write: the daemon keeps it as its own
 * attachment and hands it to every later owner.  The table's uid (from the
 * object's name, which only this daemon's uid can have made) goes back to
 * the caller, which decides who may act on it. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "proto.h"
#include "table.h"

int mgrd_fd_ident(int fd, dev_t *dev, ino_t *ino, uid_t *uid)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -1;
    *dev = st.st_dev;
    *ino = st.st_ino;
    *uid = st.st_uid;
    return 0;
}

static const char *fd_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a pipe";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISLNK(mode))
        return "a symbolic link";
    return "not a regular file";
}

int mgrd_fd_check(mgrd *m, const char *table, const mgrd_table *known, int fd, mgrd_obj *out,
                  proto_err *code, char *msg,
                  size_t msglen)
{
    struct stat got;
    if (fstat(fd, &got) < 0) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen, "fstat of the received fd failed: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(got.st_mode)) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen, "the received fd is %s, not a shared-memory object of table %s",
                 fd_kind(got.st_mode), table);
        return -1;
    }
    /* The accepted fd becomes the daemon's attachment, the one every later
     * owner is handed: it must be open for writing too.  A read-only one
     * is what open_table with mode read gives any process of the uid. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen, "fcntl(F_GETFL) of the received fd failed: %s", strerror(errno));
        return -1;
    }
    if ((fl & O_ACCMODE) != O_RDWR) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen,
                 "the received fd of table %s is open %s: etsmgrd manages a table only through a "
                 "read-write descriptor (a read-only one, as open_table with mode \"read\" gives, cannot "
                 "be managed); send the one new_table gave",
                 table, (fl & O_ACCMODE) == O_RDONLY ? "read-only" : "write-only");
        return -1;
    }
    if (known && known->dev == got.st_dev && known->ino == got.st_ino) {
        /* the very object the daemon manages (a client re-registering after
         * a daemon restart): no need to list /dev/shm */
        snprintf(out->shm_name, sizeof out->shm_name, "%s", known->shm_name);
        out->uid = known->uid;
        out->dev = known->dev;
        out->ino = known->ino;
        return 0;
    }
    mgrd_obj want = {.dev = got.st_dev, .ino = got.st_ino};
    int f = mgrd_obj_find(m, table, 0, &want, out);
    if (f < 0) {
        *code = PROTO_E_INTERNAL;
        snprintf(msg, msglen, "cannot list %s: %s", MGRD_SHM_DIR, strerror(errno));
        return -1;
    }
    if (f == 0) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen,
                 "the received fd is not a shared-memory object of table %s of instance %s made by this "
                 "daemon's uid (another file, another table, another user's object, or one unlinked)",
                 table, m->rt.instance);
        return -1;
    }
    return 0;
}

int mgrd_shm_stat(const char *shm_name, struct stat *st)
{
    char path[sizeof MGRD_SHM_DIR + MGRD_SHM_NAME_MAX];
    snprintf(path, sizeof path, "%s%s", MGRD_SHM_DIR, shm_name);
    return lstat(path, st);
}

void mgrd_open_why(const char *shm_name, int rc, int e, char *buf, size_t len)
{
    struct stat st;
    bool have = mgrd_shm_stat(shm_name, &st) == 0;
    if (rc == ETSMGR_ESYS && (e == EACCES || e == EPERM))
        snprintf(buf, len, "%s%s cannot be opened: %s; it belongs to uid %ld (mode %04o), not to this daemon "
                 "(uid %u): another user's object, so use another instance (--instance, ETSMGR_INSTANCE)",
                 MGRD_SHM_DIR, shm_name, strerror(e), have ? (long)st.st_uid : -1L, have ? (unsigned)(st.st_mode & 07777) : 0u,
                 (unsigned)geteuid());
    else if (rc == ETSMGR_ESYS || rc == ETSMGR_ENOMEM)
        snprintf(buf, len, "cannot open %s%s: %s (a system failure in etsmgrd, not a fault of the table)",
                 MGRD_SHM_DIR, shm_name, rc == ETSMGR_ESYS ? strerror(e) : etsmgr_strerror(rc));
    else if (rc == ETSMGR_ENOTFOUND)
        snprintf(buf, len, "%s%s disappeared while it was opened (removed by someone)", MGRD_SHM_DIR, shm_name);
    else
        snprintf(buf, len, "%s%s is not a valid table: %s%s%s (owner uid %ld)", MGRD_SHM_DIR, shm_name,
                 etsmgr_strerror(rc), tbl_last_why()[0] ? ": " : "", tbl_last_why(),
                 have ? (long)st.st_uid : -1L);
}

cJSON *mgrd_open_error(const cJSON *req, const char *shm_name, int rc, int e)
{
    char why[400];
    mgrd_open_why(shm_name, rc, e, why, sizeof why);
    proto_err code = PROTO_E_INVALID_TABLE;
    if (rc == ETSMGR_ESYS && (e == EACCES || e == EPERM))
        code = PROTO_E_FORBIDDEN;
    else if (rc == ETSMGR_ESYS || rc == ETSMGR_ENOMEM || rc == ETSMGR_ENOTFOUND)
        code = PROTO_E_INTERNAL;
    return proto_reply_err(req, code, "%s", why);
}

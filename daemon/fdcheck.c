/* fdcheck.c: is a received fd really the table it is said to be?
 *
 * add_table trusts nothing about the fd a client attaches: it could be a
 * pipe, a socket, a regular file, another instance's table or another
 * table of this instance.  On Linux a POSIX shm object is a regular file on
 * the tmpfs mounted at /dev/shm, so the fd must be S_ISREG and have the same
 * st_dev/st_ino as what shm_open("/<instance>.<name>") opens now.  Identity,
 * not content, decides: a copy of a table's bytes in another file is not the
 * table.  The object's owner uid (as the kernel records it) goes back to the
 * caller, which decides who may act on it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "proto.h"
#include "table.h"

#define SHM_DIR "/dev/shm"

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

int mgrd_fd_check(const char *shm_name, int fd, uid_t *obj_uid, proto_err *code, char *msg,
                  size_t msglen)
{
    struct stat got, want;
    if (fstat(fd, &got) < 0) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen, "fstat of the received fd failed: %s", strerror(errno));
        return -1;
    }
    if (!S_ISREG(got.st_mode)) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen, "the received fd is %s, not the shared-memory object %s",
                 fd_kind(got.st_mode), shm_name);
        return -1;
    }
    int sfd = shm_open(shm_name, O_RDONLY | O_CLOEXEC, 0);
    if (sfd < 0) {
        int e = errno;
        *code = e == ENOENT ? PROTO_E_BAD_FD : PROTO_E_INTERNAL;
        snprintf(msg, msglen, "shm_open(%s) failed: %s%s", shm_name, strerror(e),
                 e == ENOENT ? " (the object was unlinked; the received fd cannot be that table)" : "");
        return -1;
    }
    int rc = fstat(sfd, &want);
    int e = errno;
    close(sfd);
    if (rc < 0) {
        *code = PROTO_E_INTERNAL;
        snprintf(msg, msglen, "fstat of %s failed: %s", shm_name, strerror(e));
        return -1;
    }
    if (got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
        *code = PROTO_E_BAD_FD;
        snprintf(msg, msglen,
                 "the received fd is not the shared-memory object %s (another file or another table)",
                 shm_name);
        return -1;
    }
    *obj_uid = want.st_uid;
    return 0;
}

int mgrd_shm_stat(const char *shm_name, struct stat *st)
{
    char path[sizeof SHM_DIR + MGRD_SHM_NAME_MAX];
    snprintf(path, sizeof path, "%s%s", SHM_DIR, shm_name);
    return lstat(path, st);
}

void mgrd_open_why(const char *shm_name, int rc, int e, char *buf, size_t len)
{
    struct stat st;
    bool have = mgrd_shm_stat(shm_name, &st) == 0;
    if (rc == ETSMGR_ESYS && (e == EACCES || e == EPERM))
        snprintf(buf, len, "%s cannot be opened: %s; it belongs to uid %ld (mode %04o), not to this daemon "
                 "(uid %u): another user's object, so use another instance (--instance, ETSMGR_INSTANCE)",
                 shm_name, strerror(e), have ? (long)st.st_uid : -1L, have ? (unsigned)(st.st_mode & 07777) : 0u,
                 (unsigned)geteuid());
    else if (rc == ETSMGR_ESYS || rc == ETSMGR_ENOMEM)
        snprintf(buf, len, "cannot open %s: %s (a system failure in etsmgrd, not a fault of the table)",
                 shm_name, rc == ETSMGR_ESYS ? strerror(e) : etsmgr_strerror(rc));
    else if (rc == ETSMGR_ENOTFOUND)
        snprintf(buf, len, "%s disappeared while it was opened (removed by someone)", shm_name);
    else
        snprintf(buf, len, "%s is not a valid table: %s%s%s (owner uid %ld)", shm_name,
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

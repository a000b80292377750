/* SPDX-License-Identifier: Apache-2.0 */
/* instlock.c: one manager per instance on the whole machine.
 *
 * The lock file in the runtime dir only keeps out a second daemon that
 * uses the same dir; one started with another dir (another
 * XDG_RUNTIME_DIR, --runtime-dir) would take the same tables.  The tables'
 * names depend on the instance alone, so the lock must too, wherever the
 * dir is.  It is a listening socket in the abstract Unix namespace,
 * "\0etsmgr/<kind>/<instance>/<k>": machine-wide (per network namespace,
 * as /dev/shm is per mount namespace), released by the kernel when its
 * holder dies however it dies, and needing no file anyone could leave
 * behind.  A test's unique instance gets a lock of its own for free.
 *
 * Anyone can bind any abstract name, so another user could take the name
 * first to keep our daemon from starting.  The holder is known, though:
 * connecting gives its pid and uid (SO_PEERCRED).  So a name held by
 * another uid is skipped, and the lock is the first of K names that we can
 * bind; a holder of our uid on any of the K names means another daemon of
 * ours runs.  After binding, the other K-1 names are checked as well: of
 * two daemons starting at once, the second to listen sees the first, so
 * they never both run.  Only someone holding all K names keeps us out, and
 * the error then names them.
 *
 * Probes are connections that are never used; the holder accepts and closes
 * them (instlock_drain) so they never fill its backlog. */
#include "instlock.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define INSTLOCK_NAMES 8
#define INSTLOCK_BACKLOG 64

static socklen_t instlock_addr(const char *kind, const char *instance, int k, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    /* sun_path[0] = 0: the abstract namespace; the name is the bytes after it */
    int n = snprintf(sa->sun_path + 1, sizeof sa->sun_path - 1, "etsmgr/%s/%s/%d", kind, instance, k);
    if (n < 0 || (size_t)n >= sizeof sa->sun_path - 1)
        n = (int)sizeof sa->sun_path - 2;
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Who listens on name k: 1 with its creds, 0 nobody (or not listening, or
 * its backlog is full: not a daemon of ours that drains it). */
static int instlock_probe(const char *kind, const char *instance, int k, struct ucred *cr)
{
    struct sockaddr_un sa;
    socklen_t len = instlock_addr(kind, instance, k, &sa);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int held = 0;
    if (connect(fd, (struct sockaddr *)&sa, len) == 0) {
        socklen_t cl = sizeof *cr;
        held = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &cl) == 0;
    }
    close(fd);
    return held;
}

int instlock_take(const char *kind, const char *instance, pid_t *holder, char *err, size_t errlen)
{
    *holder = 0;
    uid_t me = geteuid();
    int fd = -1, held = -1;
    struct ucred other = {0};
    bool squatted = false;
    for (int k = 0; k < INSTLOCK_NAMES && held < 0; k++) {
        struct sockaddr_un sa;
        socklen_t len = instlock_addr(kind, instance, k, &sa);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errlen, "socket(AF_UNIX) for the instance lock: %s", strerror(errno));
            return -1;
        }
        if (bind(fd, (struct sockaddr *)&sa, len) == 0) {
            if (listen(fd, INSTLOCK_BACKLOG) < 0) {
                snprintf(err, errlen, "listen on the instance lock: %s", strerror(errno));
                close(fd);
                return -1;
            }
            held = k;
            break;
        }
        int e = errno;
        close(fd);
        fd = -1;
        if (e != EADDRINUSE) {
            snprintf(err, errlen, "bind of the instance lock @etsmgr/%s/%s/%d: %s", kind, instance, k,
                     strerror(e));
            return -1;
        }
        struct ucred cr = {0};
        if (instlock_probe(kind, instance, k, &cr) && cr.uid == me) {
            *holder = cr.pid;
            snprintf(err, errlen, "another %s (pid %ld) already runs for instance %s", kind, (long)cr.pid,
                     instance);
            errno = EWOULDBLOCK;
            return -1;
        }
        if (!squatted || cr.pid)
            other = cr;
        squatted = true;
    }
    if (held < 0) {
        snprintf(err, errlen,
                 "the %d lock names of instance %s (@etsmgr/%s/%s/0..%d) are all held by other users "
                 "(one is pid %ld of uid %ld); use another instance", INSTLOCK_NAMES, instance, kind,
                 instance, INSTLOCK_NAMES - 1, (long)other.pid, (long)other.uid);
        errno = EADDRINUSE;
        return -1;
    }
    for (int k = 0; k < INSTLOCK_NAMES; k++) {
        struct ucred cr;
        if (k == held || !instlock_probe(kind, instance, k, &cr) || cr.uid != me || cr.pid == getpid())
            continue;
        close(fd);
        *holder = cr.pid;
        snprintf(err, errlen, "another %s (pid %ld) already runs for instance %s", kind, (long)cr.pid,
                 instance);
        errno = EWOULDBLOCK;
        return -1;
    }
    return fd;
}

void instlock_drain(int fd)
{
    for (int i = 0; i < INSTLOCK_BACKLOG; i++) {
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0)
            return; /* EAGAIN: none left; anything else: the next wakeup retries */
        close(c);
    }
}

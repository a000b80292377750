/* SPDX-License-Identifier: Apache-2.0 */
/* journal.c: a journald stream of its own for each child.
 *
 * Under systemd, etssup's stderr is a journald stream whose identifier is
 * "etssup"; a child inheriting it would have every line filed under etssup.
 * So when etssup's own stderr is the journal (log_stderr_is_journal), each
 * child gets a new stream, opened the way systemd opens one for a service:
 * a connection to journald's stdout socket, then a header naming the
 * identifier (the program's file name, so `journalctl -t etsmgrd` finds
 * it), the default priority and "level prefix on" (journald reads "<N>"),
 * then the stream becomes the child's stdout and stderr, and JOURNAL_STREAM
 * its "device:inode".
 *
 * The socket is made before fork (its inode is what JOURNAL_STREAM names,
 * and the environment is prepared before fork), but connected in the child
 * after fork, so that journald's _PID for the stream is the child's own.
 * When the connection fails, the child keeps etssup's stderr and says so
 * there; its JOURNAL_STREAM then names a socket that is not its stderr, so
 * log.c writes lines for a person, with time, level and program name: the
 * lines lose their priority, never their meaning.  A timeout bounds the
 * connect, so a wedged journald cannot hold up a restart for long. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "sup.h"

#define SUP_JOURNAL_SOCKET "/run/systemd/journal/stdout"
#define SUP_JOURNAL_CONNECT_S 2

int sup_journal_prepare(const sup_child_cfg *cc, sup_journal *j)
{
    memset(j, 0, sizeof *j);
    j->fd = -1;
    if (!log_stderr_is_journal())
        return 0;
    const char *path = getenv("ETSMGR_JOURNAL_SOCKET");
    if (!path || !*path)
        path = SUP_JOURNAL_SOCKET;
    if (strlen(path) >= sizeof j->addr.sun_path) {
        log_warning("ETSMGR_JOURNAL_SOCKET %s is longer than a socket path may be; child %s logs through etssup's "
                    "stream", path, cc->id);
        return 0;
    }
    j->addr.sun_family = AF_UNIX;
    memcpy(j->addr.sun_path, path, strlen(path) + 1);
    const char *base = strrchr(cc->exe, '/');
    base = base ? base + 1 : cc->exe;
    /* identifier, unit id (journald finds it from the cgroup), priority of
     * lines without "<N>", level prefix, and no forwarding to syslog, kmsg
     * or the console */
    int hl = snprintf(j->header, sizeof j->header, "%s\n\n6\n1\n0\n0\n0\n", base);
    if (hl < 0 || (size_t)hl >= sizeof j->header) {
        log_warning("child %s: program name %s too long for a journal identifier; it logs through etssup's stream",
                    cc->id, base);
        return 0;
    }
    j->hlen = (size_t)hl;
    int written = snprintf(j->failmsg, sizeof j->failmsg,
                           "etssup: cannot connect child %s to journald (%s): its lines follow in etssup's stream\n",
                           cc->id, path);
    j->faillen = written > 0 && (size_t)written < sizeof j->failmsg ? (size_t)written : 0;
    j->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (j->fd < 0) {
        log_warning("child %s: socket for its journal stream: %s; it logs through etssup's stream", cc->id,
                    strerror(errno));
        return 0;
    }
    struct timeval tv = {.tv_sec = SUP_JOURNAL_CONNECT_S};
    struct stat st;
    if (setsockopt(j->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 || fstat(j->fd, &st) < 0) {
        log_warning("child %s: preparing its journal stream: %s; it logs through etssup's stream", cc->id,
                    strerror(errno));
        close(j->fd);
        j->fd = -1;
        return 0;
    }
    snprintf(j->env, sizeof j->env, "JOURNAL_STREAM=%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    return 0;
}

static int journal_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* In the child between fork and exec: async-signal-safe calls only. */
void sup_journal_attach(const sup_journal *j, int fd)
{
    if (fd < 0)
        return;
    int r;
    do
        r = connect(fd, (const struct sockaddr *)&j->addr, sizeof j->addr);
    while (r < 0 && errno == EINTR);
    struct timeval none = {0};
    if (r < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none) < 0 ||
        journal_write_all(fd, j->header, j->hlen) < 0 || dup2(fd, STDOUT_FILENO) < 0 ||
        dup2(fd, STDERR_FILENO) < 0) {
        if (j->faillen && write(STDERR_FILENO, j->failmsg, j->faillen) < 0)
            return; /* nowhere left to say it */
        return;
    }
    shutdown(fd, SHUT_RD); /* journald never writes back */
}

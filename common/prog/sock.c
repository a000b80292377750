/* SPDX-License-Identifier: Apache-2.0 */
/* sock.c: AF_UNIX stream sockets and the instance lock.
 *
 * A socket file outlives a SIGKILLed daemon, so listening replaces a stale
 * one; that is safe only because the caller holds the instance lock (an
 * flock, which the kernel drops with its holder, unlike a pid file that has
 * to be guessed about).  Only a socket is ever unlinked: a regular file at
 * the path is a mistake to report, not something to delete.  The mode is set
 * between bind and listen, so no client can connect before it applies. */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int sock_addr(const char *path, struct sockaddr_un *sa)
{
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof sa->sun_path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, len + 1);
    return 0;
}

int sock_listen_unix(const char *path, unsigned mode, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (sock_addr(path, &sa) < 0) {
        snprintf(err, errlen, "socket path %s is too long (at most %zu bytes)", path,
                 sizeof sa.sun_path - 1);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s exists and is not a socket; remove it or use another runtime dir",
                     path);
            return -1;
        }
        if (unlink(path) < 0 && errno != ENOENT) {
            snprintf(err, errlen, "unlink stale socket %s: %s", path, strerror(errno));
            return -1;
        }
    } else if (errno != ENOENT) {
        snprintf(err, errlen, "lstat %s: %s", path, strerror(errno));
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket(AF_UNIX): %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (chmod(path, mode) < 0) {
        snprintf(err, errlen, "chmod %04o %s: %s", mode, path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        snprintf(err, errlen, "listen %s: %s", path, strerror(errno));
        unlink(path);
        close(fd);
        return -1;
    }
    return fd;
}

/* Closes fd after a failed call on it, keeping that call's errno: -1. */
static int sock_fail(int fd)
{
    int e = errno;
    close(fd);
    errno = e;
    return -1;
}

int sock_connect_unix(const char *path)
{
    struct sockaddr_un sa;
    if (sock_addr(path, &sa) < 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    while (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        if (errno != EINTR)
            return sock_fail(fd);
    return fd;
}

/* A non-blocking connect to AF_UNIX does not wait for room in a full
 * backlog (EAGAIN at once; there is no EINPROGRESS to poll for), so the
 * wait is tries, 1 ms apart at first, 10 ms at most. */
int sock_connect_unix_within(const char *path, int timeout_ms)
{
    if (timeout_ms < 0)
        return sock_connect_unix(path);
    struct sockaddr_un sa;
    if (sock_addr(path, &sa) < 0)
        return -1;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long pause_ms = 1;; pause_ms = pause_ms < 10 ? pause_ms * 2 : 10) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -1;
        int r;
        while ((r = connect(fd, (struct sockaddr *)&sa, sizeof sa)) < 0 && errno == EINTR)
            ;
        if (r == 0) {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                return sock_fail(fd);
            return fd;
        }
        if (errno != EAGAIN)
            return sock_fail(fd);
        close(fd);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long spent = (long)(now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent + pause_ms > timeout_ms) {
            errno = EAGAIN;
            return -1;
        }
        struct timespec ts = {0, pause_ms * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

int sock_lock_file(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0)
        if (errno != EINTR)
            return sock_fail(fd);
    return fd;
}

/* /proc/locks rather than trying the lock: a probe that held it even for a
 * moment could make a daemon starting at that moment fail its own take. */
int sock_lock_held(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : -1;
    FILE *f = fopen("/proc/locks", "re");
    if (!f)
        return -1;
    char line[256];
    int held = 0;
    /* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (major:minor in hex) */
    while (!held && fgets(line, sizeof line, f)) {
        char type[16], dev[64];
        if (sscanf(line, "%*[^:]: %15s %*s %*s %*s %63s", type, dev) != 2 || strcmp(type, "FLOCK") != 0)
            continue;
        unsigned maj, min;
        unsigned long long ino;
        if (sscanf(dev, "%x:%x:%llu", &maj, &min, &ino) == 3 && ino == (unsigned long long)st.st_ino &&
            maj == major(st.st_dev) && min == minor(st.st_dev))
            held = 1;
    }
    fclose(f);
    return held;
}

int sock_instance_served(const char *dir, const char *daemon)
{
    /* a hot standby (etscounterd --standby) holds <daemon>.standby.lock
     * shared: between the active one's death and its own listen, a client
     * should wait for it rather than give up */
    char standby[128];
    snprintf(standby, sizeof standby, "%s.standby", daemon);
    const char *owners[] = {"etssup", daemon, standby};
    int unsure = 0;
    for (size_t i = 0; i < sizeof owners / sizeof owners[0]; i++) {
        char p[4096];
        if (snprintf(p, sizeof p, "%s/%s.lock", dir, owners[i]) >= (int)sizeof p)
            return -1;
        int h = sock_lock_held(p);
        if (h == 1)
            return 1;
        unsure |= h < 0;
    }
    return unsure ? -1 : 0;
}

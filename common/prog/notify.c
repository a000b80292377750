/* SPDX-License-Identifier: Apache-2.0 */
/* notify.c: the sd_notify datagram protocol, both ends, without libsystemd.
 *
 * Sender: one datagram to $NOTIFY_SOCKET ("@name" is the abstract
 * namespace).  No SCM_CREDENTIALS are attached by hand: the kernel adds the
 * sender's real pid itself when the receiver has SO_PASSCRED, which is what
 * lets a supervisor tell which child spoke, whatever the child claims.
 *
 * Receiver: any fds that arrive (FDSTORE=1 senders) are closed, since nobody
 * here stores them and they would leak otherwise.
 *
 * Watchdog: the pings come from a timer of the program's own event loop,
 * never from a thread, so they stop exactly when the loop is stuck. */
#include "notify.h"
#include "fdpass.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

/* sockaddr for "path" or "@abstract"; its length, or 0 when invalid */
static socklen_t notify_addr(const char *name, struct sockaddr_un *sa)
{
    size_t len = strlen(name);
    if (len < 2 && name[0] == '@')
        return 0;
    if (len == 0 || len >= sizeof sa->sun_path)
        return 0;
    if (name[0] != '/' && name[0] != '@')
        return 0;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, name, len);
    if (name[0] == '@') {
        sa->sun_path[0] = '\0';
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    return (socklen_t)sizeof *sa;
}

int notify_send(const char *msg)
{
    const char *name = getenv("NOTIFY_SOCKET");
    if (!name || !*name)
        return 0;
    struct sockaddr_un sa;
    socklen_t sl = notify_addr(name, &sa);
    if (sl == 0) {
        errno = EINVAL;
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ssize_t n;
    do {
        /* never block a daemon on a supervisor that does not read */
        n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa, sl);
    } while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0) {
        errno = e;
        return -1;
    }
    return 0;
}

int notify_sendf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) {
        errno = EINVAL;
        return -1;
    }
    return notify_send(buf); /* a longer STATUS= is cut, never refused */
}

int notify_listen(const char *path)
{
    struct sockaddr_un sa;
    socklen_t sl = notify_addr(path, &sa);
    if (sl == 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (path[0] == '/') {
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
            unlink(path); /* stale from an earlier run */
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    if (bind(fd, (struct sockaddr *)&sa, sl) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int notify_recv(int fd, char *buf, unsigned long len, int *pid)
{
    if (len == 0) {
        errno = EINVAL;
        return -1;
    }
    pid_t from = 0;
    /* no room for fds: fdpass_recv closes any that came (see the top) */
    ssize_t n = fdpass_recv(fd, buf, len - 1, MSG_DONTWAIT, NULL, 0, NULL, &from);
    if (n < 0)
        return -1;
    if (pid)
        *pid = (int)from;
    buf[n] = '\0';
    return (int)n;
}

unsigned long long notify_watchdog_usec(void)
{
    const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    if (!us || !*us)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(us, &end, 10);
    if (errno || *end || v == 0)
        return 0;
    if (pid && *pid) {
        long p = strtol(pid, &end, 10);
        if (*end || p != (long)getpid())
            return 0;
    }
    return v;
}

static uv_timer_t notify_wd_timer;
static bool notify_wd_on;

static void notify_wd_cb(uv_timer_t *t)
{
    (void)t;
    notify_send("WATCHDOG=1");
}

long long notify_watchdog_start(struct uv_loop_s *loop)
{
    unsigned long long us = notify_watchdog_usec();
    if (us == 0 || notify_wd_on)
        return notify_wd_on ? (long long)us : 0;
    uint64_t every_ms = us / 2000 ? us / 2000 : 1;
    int r = uv_timer_init(loop, &notify_wd_timer);
    if (r == 0)
        r = uv_timer_start(&notify_wd_timer, notify_wd_cb, 0, every_ms);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    uv_unref((uv_handle_t *)&notify_wd_timer);
    notify_wd_on = true;
    return (long long)us;
}

void notify_watchdog_stop(void)
{
    if (!notify_wd_on)
        return;
    notify_wd_on = false;
    if (!uv_is_closing((uv_handle_t *)&notify_wd_timer))
        uv_close((uv_handle_t *)&notify_wd_timer, NULL);
}

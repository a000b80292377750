/* SPDX-License-Identifier: Apache-2.0 */
/* listenfd.c: taking sockets handed in by socket activation (sd_listen_fds(3)).
 *
 * The LISTEN_* variables are read once, on the first call, and removed from
 * the environment right away, so no child started later believes the sockets
 * are its own (LISTEN_PID would not match it anyway, but a child of a child
 * could reuse our pid number).  The parsed table is kept, so a program that
 * takes several named sockets can call listenfd_take once per name; each fd
 * is handed out once.  Every inherited fd is set close-on-exec, as
 * sd_listen_fds does, so the sockets never leak into children.
 *
 * Which inherited fd is whose: the one whose LISTEN_FDNAMES entry is the
 * name asked for (systemd's FileDescriptorName=, etssup's socket name);
 * failing that, by convention, the one named "<name>.socket" (systemd's
 * default name, the socket unit's, when FileDescriptorName= is not set), or
 * the one bound to the path the program would have bound itself (a socket
 * unit with several ListenStream= gives them all one name, so the path is
 * what tells them apart).  An fd nobody takes is reported by
 * listenfd_leftover, and the programs refuse to start over it: a socket
 * silently ignored while the program binds its own file over the path
 * leaves the activating client waiting forever. */
#include "listenfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LISTENFD_START 3
#define LISTENFD_MAX 64

static bool lf_parsed;
static int lf_count;
static bool lf_named;
static char lf_names[LISTENFD_MAX][256];
static bool lf_taken[LISTENFD_MAX];

static void lf_parse(void)
{
    lf_parsed = true;
    const char *spid = getenv("LISTEN_PID");
    const char *sfds = getenv("LISTEN_FDS");
    const char *snames = getenv("LISTEN_FDNAMES");
    char *names = snames ? strdup(snames) : NULL;
    bool ours = false;
    long n = 0;
    if (spid && sfds) {
        char *end;
        errno = 0;
        long pid = strtol(spid, &end, 10);
        ours = errno == 0 && *end == '\0' && end != spid && pid == (long)getpid();
        n = strtol(sfds, &end, 10);
        if (errno != 0 || *end != '\0' || end == sfds || n < 0)
            ours = false;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (!ours) {
        free(names);
        return;
    }
    if (n > LISTENFD_MAX)
        n = LISTENFD_MAX;
    lf_count = (int)n;
    for (int i = 0; i < lf_count; i++) {
        int fd = LISTENFD_START + i;
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0)
            fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
    if (names) {
        lf_named = true;
        char *p = names;
        /* strtok_r would merge empty names; split by hand */
        for (int i = 0; i < lf_count && p; i++) {
            char *colon = strchr(p, ':');
            if (colon)
                *colon = '\0';
            strncpy(lf_names[i], p, sizeof lf_names[i] - 1);
            p = colon ? colon + 1 : NULL;
        }
        free(names);
    }
}

/* The path an AF_UNIX socket is bound to, or "" (abstract, unbound, not a
 * Unix socket, not a socket). */
static void lf_bound_path(int fd, char *buf, size_t len)
{
    struct sockaddr_un sa;
    socklen_t sl = sizeof sa;
    buf[0] = '\0';
    memset(&sa, 0, sizeof sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 || sa.sun_family != AF_UNIX ||
        sl <= offsetof(struct sockaddr_un, sun_path) || sa.sun_path[0] == '\0')
        return;
    size_t n = strnlen(sa.sun_path, sl - offsetof(struct sockaddr_un, sun_path));
    if (n >= len)
        n = len - 1;
    memcpy(buf, sa.sun_path, n);
    buf[n] = '\0';
}

static bool lf_matches(int i, const char *name, const char *path)
{
    if (name && lf_named) {
        if (strcmp(lf_names[i], name) == 0)
            return true;
        size_t nl = strlen(name);
        if (strncmp(lf_names[i], name, nl) == 0 && strcmp(lf_names[i] + nl, ".socket") == 0)
            return true;
    }
    if (path && *path) {
        char bound[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
        lf_bound_path(LISTENFD_START + i, bound, sizeof bound);
        if (strcmp(bound, path) == 0)
            return true;
    }
    return !lf_named && lf_count == 1; /* unnamed: only an unambiguous single fd */
}

int listenfd_take(const char *name, const char *path)
{
    if (!lf_parsed)
        lf_parse();
    /* an exact name first, so a conventional match cannot steal another's fd */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < lf_count; i++) {
            if (lf_taken[i])
                continue;
            bool match = pass == 0 ? name && lf_named && strcmp(lf_names[i], name) == 0 : lf_matches(i, name, path);
            if (!match)
                continue;
            int fd = LISTENFD_START + i;
            if (fcntl(fd, F_GETFD) < 0)
                return -1; /* announced but not open */
            lf_taken[i] = true;
            return fd;
        }
    }
    return -1;
}

int listenfd_leftover(char *msg, size_t len)
{
    if (!lf_parsed)
        lf_parse();
    int n = 0;
    size_t used = 0;
    if (len)
        msg[0] = '\0';
    for (int i = 0; i < lf_count; i++) {
        if (lf_taken[i])
            continue;
        char bound[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
        lf_bound_path(LISTENFD_START + i, bound, sizeof bound);
        if (used < len) {
            int w = snprintf(msg + used, len - used, "%sfd %d (name \"%s\", %s%s)", n ? "; " : "",
                             LISTENFD_START + i, lf_named ? lf_names[i] : "", bound[0] ? "bound to " : "not bound to a path",
                             bound);
            if (w > 0)
                used += (size_t)w;
        }
        n++;
    }
    return n;
}

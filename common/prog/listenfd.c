/* listenfd.c: taking sockets handed in by socket activation (sd_listen_fds(3)).
 *
 * The LISTEN_* variables are read once, on the first call, and removed from
 * the environment right away, so no child started later believes the sockets
 * are its own (LISTEN_PID would not match it anyway, but a child of a child
 * could reuse our pid number).  The parsed table is kept, so a program that
 * takes several named sockets can call listenfd_take once per name; each fd
 * is handed out once.  Every inherited fd is set close-on-exec, as
 * sd_listen_fds does, so the sockets never leak into children. */
#include "listenfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
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

int listenfd_take(const char *name)
{
    if (!lf_parsed)
        lf_parse();
    for (int i = 0; i < lf_count; i++) {
        if (lf_taken[i])
            continue;
        bool match;
        if (name && lf_named)
            match = strcmp(lf_names[i], name) == 0;
        else
            match = lf_count == 1; /* unnamed: only an unambiguous single fd */
        if (!match)
            continue;
        int fd = LISTENFD_START + i;
        if (fcntl(fd, F_GETFD) < 0)
            return -1; /* announced but not open */
        lf_taken[i] = true;
        return fd;
    }
    return -1;
}

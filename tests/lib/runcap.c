/* SPDX-License-Identifier: Apache-2.0 */
/* runcap.c: fork, exec, read one pipe until EOF or the deadline.  Both
 * stdout and stderr go into the same pipe so warnings and errors keep
 * their place among the normal output.  The child gets its own process
 * group so that a timeout kills what it started too (make runs cc, ...). */
#include "runcap.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void rc_set_out(char **out, const char *msg)
{
    if (out) {
        *out = strdup(msg);
    }
}

int rc_run(char *const argv[], char **out, int timeout_ms)
{
    if (out) {
        *out = NULL;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        rc_set_out(out, "pipe2 failed");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        rc_set_out(out, "fork failed");
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        dup2(p[1], 1);
        dup2(p[1], 2);
        execvp(argv[0], argv);
        fprintf(stderr, "execvp %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so kill(-pid) works whoever runs first */
    close(p[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    long long deadline = tu_now_ms() + timeout_ms;
    int timed_out = 0;
    for (;;) {
        long long left = deadline - tu_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            continue; /* timeout is handled at the top */
        }
        if (buf && len + 1024 > cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            } else {
                buf = nb;
            }
        }
        char tmp[1024];
        ssize_t r = read(p[0], buf ? buf + len : tmp, buf ? cap - len - 1 : sizeof tmp);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        if (buf) {
            len += (size_t)r;
        }
    }
    close(p[0]);
    if (timed_out) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (buf) {
        buf[len] = '\0';
    }
    if (timed_out) {
        if (out) {
            size_t m = len + 128;
            char *msg = malloc(m);
            if (msg) {
                snprintf(msg, m, "%s\n[timed out after %d ms: %s]", buf ? buf : "", timeout_ms, argv[0]);
            }
            *out = msg;
        }
        free(buf);
        return -1;
    }
    if (out) {
        *out = buf;
    } else {
        free(buf);
    }
    return status;
}

int rc_sh(char **out, int timeout_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0) {
        rc_set_out(out, "vasprintf failed");
        return -1;
    }
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = rc_run(argv, out, timeout_ms);
    free(cmd);
    return st;
}

int rc_ok(int status)
{
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

const char *rc_srcdir(void)
{
    const char *s = getenv("ETSMGR_SRCDIR");
    return s && *s ? s : ".";
}

int rc_make(char **out, int timeout_ms, const char *args)
{
    /* ETSMGR_BINDIR is <build>/bin; the Makefile's defaults are build and,
     * with SANITIZE=1, build/sanitize: name those the way the Makefile does
     * so its dependency files (relative paths) keep applying. */
    const char *bin = getenv("ETSMGR_BINDIR");
    char bdir[4096], def[4096 + 16], vars[4096 + 32];
    snprintf(bdir, sizeof bdir, "%s", bin && *bin ? bin : "build/bin");
    char *slash = strrchr(bdir, '/');
    if (slash) {
        *slash = '\0';
    }
    char *abs = realpath(bdir, NULL), *src = realpath(rc_srcdir(), NULL);
    snprintf(vars, sizeof vars, "BUILD='%s'", abs ? abs : bdir);
    if (abs && src) {
        snprintf(def, sizeof def, "%s/build", src);
        if (strcmp(abs, def) == 0) {
            vars[0] = '\0';
        }
        snprintf(def, sizeof def, "%s/build/sanitize", src);
        if (strcmp(abs, def) == 0) {
            snprintf(vars, sizeof vars, "SANITIZE=1");
        }
    }
    free(abs);
    free(src);
    return rc_sh(out, timeout_ms, "cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s %s %s 2>&1",
                 rc_srcdir(), vars, args);
}

char *rc_slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        if (r == 0) {
            break;
        }
        len += r;
    }
    fclose(f);
    if (buf) {
        buf[len] = '\0';
    }
    return buf;
}

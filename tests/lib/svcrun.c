/* SPDX-License-Identifier: Apache-2.0 */
/* svcrun.c: fork/exec with an exact argv and environment, a notify socket
 * read with poll, and /proc for the process tree.  Nothing here resolves a
 * program by name: the point of the tests using it is to run exactly the
 * file a unit or an installed tree names. */
#include "svcrun.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "notify.h"
#include "procstat.h"
#include "sock.h"
#include "testutil.h"

int sv_start(sv_proc *p, char *const argv[], char *const env_add[], const char *notify_path,
             int stderr_fd, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    snprintf(p->notify_path, sizeof p->notify_path, "%s", notify_path);
    p->notify_fd = notify_listen(notify_path);
    if (p->notify_fd < 0) {
        snprintf(err, errlen, "notify_listen(%s): %s", notify_path, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(p->notify_fd);
        p->notify_fd = -1;
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        for (char *const *e = env_add; e && *e; e++) {
            putenv(*e);
        }
        setenv("NOTIFY_SOCKET", notify_path, 1);
        if (stderr_fd >= 0) {
            dup2(stderr_fd, 2);
        }
        execv(argv[0], argv);
        fprintf(stderr, "execv %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

int sv_wait_ready(sv_proc *p, int timeout_ms, char *log, size_t loglen)
{
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = -1;
            return 0;
        }
        long long left = deadline - tu_now_ms();
        if (left <= 0) {
            return -1;
        }
        struct pollfd pfd = {.fd = p->notify_fd, .events = POLLIN};
        /* short slices so an early exit of the process is noticed */
        int n = poll(&pfd, 1, left < 50 ? (int)left : 50);
        if (n <= 0) {
            continue;
        }
        char buf[4096];
        int sender = 0;
        int len = notify_recv(p->notify_fd, buf, sizeof buf, &sender);
        if (len < 0) {
            continue;
        }
        buf[len] = '\0';
        if (log && loglen > 0) {
            size_t l = strlen(log);
            snprintf(log + l, loglen - l, "[pid %d] %s\n", sender, buf);
        }
        for (char *line = buf; line && *line;) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            if (ll == 7 && strncmp(line, "READY=1", 7) == 0) {
                return sender > 0 ? sender : 1;
            }
            line = nl ? nl + 1 : NULL;
        }
    }
}

int sv_stop(sv_proc *p, int sig, int timeout_ms)
{
    int ret = -1;
    if (p->pid > 0) {
        kill(p->pid, sig);
        long long deadline = tu_now_ms() + timeout_ms;
        for (;;) {
            int st;
            pid_t w = waitpid(p->pid, &st, WNOHANG);
            if (w == p->pid) {
                ret = st;
                break;
            }
            if (w < 0 && errno != EINTR) {
                break;
            }
            if (tu_now_ms() >= deadline) {
                kill(p->pid, SIGKILL);
                waitpid(p->pid, &st, 0);
                break;
            }
            struct timespec ts = {0, 5 * 1000000};
            nanosleep(&ts, NULL);
        }
        p->pid = -1;
    }
    if (p->notify_fd >= 0) {
        close(p->notify_fd);
        p->notify_fd = -1;
        unlink(p->notify_path);
    }
    return ret;
}

int sv_children(pid_t pid, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    int n = 0, c;
    while (n < max && fscanf(f, "%d", &c) == 1) {
        out[n++] = c;
    }
    fclose(f);
    return n;
}

void sv_comm(pid_t pid, char *buf, size_t len)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) {
        return;
    }
    if (fgets(buf, (int)len, f)) {
        buf[strcspn(buf, "\n")] = '\0';
    }
    fclose(f);
}

bool sv_alive(pid_t pid)
{
    return !proc_exited(pid);
}

char *sv_request(const char *path, const char *json, int timeout_ms, char *err, size_t errlen)
{
    int fd = sock_connect_unix(path);
    if (fd < 0) {
        snprintf(err, errlen, "connect %s: %s", path, strerror(errno));
        return NULL;
    }
    char *reply = NULL;
    size_t len = 0;
    if (frame_write(fd, json, strlen(json), NULL, 0) < 0) {
        snprintf(err, errlen, "write to %s: %s", path, strerror(errno));
    } else if (frame_read(fd, &reply, &len, NULL, NULL, 0, timeout_ms) < 0) {
        snprintf(err, errlen, "no reply from %s within %d ms: %s", path, timeout_ms, strerror(errno));
        reply = NULL;
    }
    close(fd);
    return reply;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* sup_child.c: a stand-in child for the etssup tests, with every behaviour
 * the tests need to provoke, chosen on the command line:
 *
 *   --id NAME          name used in its event lines
 *   --events FILE      append one line per event (start, ready, term, exit)
 *                      with O_APPEND, so lines of several children interleave
 *                      whole and in the order things happened
 *   --no-ready         never send READY=1 (start timeout tests)
 *   --ready-delay MS   wait before READY=1
 *   --no-ready-if FILE never send READY=1 when FILE exists at its start (the
 *                      test decides, run by run); logs a "noready" event
 *   --ignore-term      log SIGTERM and carry on (SIGKILL-after-shutdown tests)
 *   --exit-after MS    exit by itself after MS (with --exit-code N, default 0)
 *   SIGUSR1            exit at once with --exit-code N (a death of its own,
 *                      on the test's cue); logs "exit ID PID usr1"
 *   SIGUSR2            send READY=1 now if it has not (with --no-ready-if:
 *                      readiness on the test's cue)
 *   --serve            answer frames on the inherited LISTEN_FDS socket (fd 3)
 *                      with {"ok":true,"id":...,"pid":PID}
 *   --serve-delay MS   do not accept during the first MS (a slow restart)
 *   --orphan MS        leave a grandchild that exits after MS, orphaned at
 *                      once (it is reparented to the subreaper, etssup)
 *   --standby          what etssup appends for a hot standby: no change
 *                      (it sends READY=1 at once, as if it took over)
 *
 * The start line reports what it inherited: LISTEN_FDS, whether LISTEN_PID
 * is its own pid, LISTEN_FDNAMES, NOTIFY_SOCKET, the runtime dir/instance
 * and its process group, so the tests can check the hand-over exactly. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "notify.h"

static const char *g_id = "child";
static const char *g_events;
static int g_sigpipe[2];

static void ev_line(const char *what, const char *extra)
{
    if (!g_events)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "%s %s %d%s%s\n", what, g_id, (int)getpid(), extra ? " " : "",
                     extra ? extra : "");
    int fd = open(g_events, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (n > 0 && write(fd, line, (size_t)n) < 0)
        perror("sup_child: write events");
    close(fd);
}

static void on_signal(int sig)
{
    int e = errno;
    unsigned char b = (unsigned char)sig;
    if (write(g_sigpipe[1], &b, 1) < 0) {
        /* nothing to do in a handler */
    }
    errno = e;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void serve_one(int lfd)
{
    int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    int fl = fcntl(c, F_GETFL);
    if (fl >= 0)
        fcntl(c, F_SETFL, fl & ~O_NONBLOCK);
    for (;;) {
        cJSON *req = NULL;
        int nfds = 0;
        if (frame_read_json(c, &req, NULL, &nfds, 0, 5000) < 0)
            break;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddBoolToObject(r, "ok", 1);
        cJSON *id = cJSON_GetObjectItem(req, "id");
        cJSON_AddItemToObject(r, "id", id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
        cJSON_AddNumberToObject(r, "pid", getpid());
        cJSON_AddStringToObject(r, "child", g_id);
        frame_write_json(c, r, NULL, 0);
        cJSON_Delete(r);
        cJSON_Delete(req);
    }
    close(c);
}

int main(int argc, char **argv)
{
    bool no_ready = false, ignore_term = false, serve = false;
    long ready_delay = 0, exit_after = -1, serve_delay = 0, orphan = -1;
    const char *no_ready_if = NULL;
    int exit_code = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--id") && v) g_id = v, i++;
        else if (!strcmp(a, "--events") && v) g_events = v, i++;
        else if (!strcmp(a, "--no-ready")) no_ready = true;
        else if (!strcmp(a, "--ready-delay") && v) ready_delay = atol(v), i++;
        else if (!strcmp(a, "--no-ready-if") && v) no_ready_if = v, i++;
        else if (!strcmp(a, "--ignore-term")) ignore_term = true;
        else if (!strcmp(a, "--exit-after") && v) exit_after = atol(v), i++;
        else if (!strcmp(a, "--exit-code") && v) exit_code = atoi(v), i++;
        else if (!strcmp(a, "--serve")) serve = true;
        else if (!strcmp(a, "--serve-delay") && v) serve_delay = atol(v), i++;
        else if (!strcmp(a, "--orphan") && v) orphan = atol(v), i++;
        else if (!strcmp(a, "--standby")) continue; /* a hot standby behaves like the child here */
        else {
            fprintf(stderr, "sup_child: unknown argument %s\n", a);
            return 2;
        }
    }
    const char *lfds = getenv("LISTEN_FDS"), *lpid = getenv("LISTEN_PID"), *lnames = getenv("LISTEN_FDNAMES");
    const char *ns = getenv("NOTIFY_SOCKET"), *rt = getenv("ETSMGR_RUNTIME_DIR"), *inst = getenv("ETSMGR_INSTANCE");
    int nfds = lfds ? atoi(lfds) : 0;
    bool pid_ok = lpid && atol(lpid) == (long)getpid();
    char extra[768];
    snprintf(extra, sizeof extra, "listen_fds=%d listen_pid_ok=%d fdnames=%s notify=%d rt=%s inst=%s pgid_ok=%d",
             nfds, pid_ok, lnames ? lnames : "-", ns != NULL, rt ? rt : "-", inst ? inst : "-",
             getpgrp() == getpid());
    ev_line("start", extra);
    if (no_ready_if && access(no_ready_if, F_OK) == 0) {
        no_ready = true;
        ev_line("noready", NULL); /* decided: this run never sends READY=1 */
    }

    if (pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return 3;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);

    if (orphan >= 0) {
        pid_t mid = fork();
        if (mid == 0) {
            if (fork() == 0) {
                struct timespec ts = {orphan / 1000, (orphan % 1000) * 1000000L};
                nanosleep(&ts, NULL);
                _exit(0);
            }
            _exit(0);
        }
        if (mid > 0)
            waitpid(mid, NULL, 0);
    }

    long t0 = now_ms();
    bool ready_sent = no_ready; /* nothing (more) to do for READY=1 */
    bool ready_told = false;    /* READY=1 did go out */
    int lfd = serve && nfds >= 1 && pid_ok ? 3 : -1;
    for (;;) {
        long now = now_ms();
        if (!ready_sent && now - t0 >= ready_delay) {
            ev_line("ready", NULL); /* before READY=1: the line precedes the next child's start */
            notify_send("READY=1\nSTATUS=stub child running");
            ready_sent = ready_told = true;
        }
        if (exit_after >= 0 && now - t0 >= exit_after) {
            ev_line("exit", NULL);
            return exit_code;
        }
        long wait = 1000;
        if (!ready_sent)
            wait = ready_delay - (now - t0);
        if (exit_after >= 0 && exit_after - (now - t0) < wait)
            wait = exit_after - (now - t0);
        if (wait < 0)
            wait = 0;
        bool serving = lfd >= 0 && now - t0 >= serve_delay;
        if (lfd >= 0 && !serving && serve_delay - (now - t0) < wait)
            wait = serve_delay - (now - t0);
        struct pollfd p[2] = {{.fd = g_sigpipe[0], .events = POLLIN}, {.fd = lfd, .events = POLLIN}};
        int r = poll(p, serving ? 2 : 1, (int)wait);
        if (r < 0 && errno != EINTR)
            return 4;
        if (r > 0 && (p[0].revents & POLLIN)) {
            unsigned char b;
            while (read(g_sigpipe[0], &b, 1) == 1) {
                if (b == SIGUSR1) {
                    ev_line("exit", "usr1");
                    return exit_code;
                }
                if (b == SIGUSR2) {
                    if (!ready_told) {
                        ev_line("ready", "usr2");
                        notify_send("READY=1\nSTATUS=stub child running");
                        ready_sent = ready_told = true;
                    }
                    continue;
                }
                ev_line(b == SIGTERM ? "term" : "int", ignore_term ? "ignored" : NULL);
                if (!ignore_term) {
                    ev_line("exit", NULL);
                    return 0;
                }
            }
        }
        if (r > 0 && serving && (p[1].revents & POLLIN))
            serve_one(lfd);
    }
}

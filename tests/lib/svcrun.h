/* SPDX-License-Identifier: Apache-2.0 */
/* svcrun.h: run a program the way a service manager does, for the tests
 * that start etssup from an installed tree or from a unit's ExecStart=:
 * an exact argv (no PATH lookup, no name resolution), extra environment,
 * a NOTIFY_SOCKET the test owns, and stderr where the test wants it.
 * Readiness is READY=1 on that socket, never a sleep. */
#ifndef ETSMGR_SVCRUN_H
#define ETSMGR_SVCRUN_H
#include <stdbool.h>
#include <sys/types.h>

typedef struct sv_proc {
    pid_t pid;
    int notify_fd;
    char notify_path[108];
} sv_proc;

/* Binds notify_path, then forks and execs argv[0] (a path) with env_add
 * ("NAME=value" strings, NULL-ended, may be NULL) added to the environment
 * and NOTIFY_SOCKET=notify_path; stderr_fd >= 0 replaces stderr.  The child
 * gets SIGKILL if the test process dies, so a timed-out test leaves no
 * supervisor behind.  0, or -1 with a message in err. */
int sv_start(sv_proc *p, char *const argv[], char *const env_add[], const char *notify_path,
             int stderr_fd, char *err, size_t errlen);
/* Waits up to timeout_ms for a datagram containing the line READY=1.
 * Returns the sender's pid, 0 when p exited first, -1 on timeout.  Every
 * datagram seen is appended to log (may be NULL, size loglen). */
int sv_wait_ready(sv_proc *p, int timeout_ms, char *log, size_t loglen);
/* Sends sig, waits up to timeout_ms, SIGKILLs on timeout.  Returns the wait
 * status, or -1 when it had to be killed.  Closes the notify socket. */
int sv_stop(sv_proc *p, int sig, int timeout_ms);
/* The children of pid (from /proc/PID/task/PID/children): count, up to max. */
int sv_children(pid_t pid, pid_t *out, int max);
/* /proc/PID/comm into buf ("" when gone). */
void sv_comm(pid_t pid, char *buf, size_t len);
/* True while pid exists and is not a zombie. */
bool sv_alive(pid_t pid);
/* One request on the socket at path: the reply payload (malloc'd) or NULL
 * with a message in err. */
char *sv_request(const char *path, const char *json, int timeout_ms, char *err, size_t errlen);
#endif

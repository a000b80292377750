/* SPDX-License-Identifier: Apache-2.0 */
/* testutil.h: what the suites share: a private runtime dir and instance per
 * test, starting the real programs with readiness taken from a notify socket
 * (never a sleep), and cleaning up processes and shm objects afterwards. */
#ifndef ETSMGR_TESTUTIL_H
#define ETSMGR_TESTUTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct tu_env {
    char dir[108];     /* fresh runtime dir (mkdtemp under /tmp) */
    char instance[65]; /* unique: "t<pid>x<counter>" */
} tu_env;

/* Makes the dir and instance and exports ETSMGR_RUNTIME_DIR/ETSMGR_INSTANCE
 * so programs and the client library find them. */
void tu_env_init(tu_env *e);
/* Kills what tu_spawn started and is still running, unlinks every shm object
 * "/<instance>:*" (and "/<instance>.*"), removes the dir. */
void tu_env_cleanup(tu_env *e);

/* Path of a built program: $ETSMGR_BINDIR/name (or $ETSMGR_TEST_BINDIR for
 * test helpers when test_prog is true). */
const char *tu_bin(const char *name, bool test_prog);

/* Starts argv (argv[0] resolved with tu_bin) with NOTIFY_SOCKET pointing at a
 * socket of the test and waits up to timeout_ms for READY=1 from it.  Returns
 * the pid, or -1 when it exited or timed out (the child is then killed). */
pid_t tu_spawn_ready(tu_env *e, char *const argv[], int timeout_ms);
/* Starts argv without waiting; pid. */
pid_t tu_spawn(tu_env *e, char *const argv[]);
/* tu_spawn_ready (timeout_ms > 0) or tu_spawn (timeout_ms <= 0) with the
 * program's stderr appended to DIR/<log>, for a test that reads what it
 * logged (tu_log). */
pid_t tu_spawn_logged(tu_env *e, char *const argv[], const char *log, int timeout_ms);
/* DIR/<log> as text (malloc'd, "" when there is none). */
char *tu_log(const tu_env *e, const char *log);
/* fork() with a pipe from the child to the parent, for a child that
 * reports as it goes (that it is ready, what it saw): 0 in the child with
 * *fd the write end, the child's pid in the parent with *fd the read end;
 * -1 when the pipe or the fork failed (said on stderr). */
pid_t tu_fork_pipe(int *fd);
/* SIGKILL and reap; returns the wait status. */
int tu_kill9(pid_t pid);
/* Waits up to timeout_ms for pid to exit; its wait status, or -1 on timeout. */
int tu_wait(pid_t pid, int timeout_ms);
/* The monotonic clock, in milliseconds and in seconds (for deadlines and
 * for how long something took). */
long long tu_now_ms(void);
double tu_mono_s(void);
/* Polls cond every 5 ms up to timeout_ms (for states with no signal). */
bool tu_eventually(bool (*cond)(void *), void *arg, int timeout_ms);

/* One request/reply on DIR/<sock>: sends json text, returns the reply text
 * (malloc'd) or NULL; fds passed/received as SCM_RIGHTS. */
char *tu_request(tu_env *e, const char *sock, const char *json, const int *fds, int nfds,
                 int *rfds, int *nrfds);
/* Number of open fds of pid (from /proc/PID/fd). */
int tu_count_fds(pid_t pid);
/* The n lowest fd numbers free in pid (from /proc/PID/fd, below 4096):
 * how many were found. */
int tu_free_fds(pid_t pid, int *out, int n);
/* pid can open no more fds: its soft RLIMIT_NOFILE becomes its lowest free
 * fd number (the fds it holds stay valid).  Its limit before goes to *old,
 * for prlimit to put back; false when it could not be changed. */
struct rlimit;
bool tu_fds_exhaust(pid_t pid, struct rlimit *old);
/* Unlinks every shm object of the instance (what a reboot does to them). */
void tu_remove_shm(const tu_env *e);
/* Number of /dev/shm objects of the instance ("<instance>:..." and the
 * version-1 names, "<instance>.<table>") */
int tu_count_shm(const tu_env *e);
/* "/dev/shm/<instance>:<uid>:<table>", the object of a table of uid (a
 * daemon makes it under its own uid; docs/design.md, "Object names") */
void tu_shm_path(const tu_env *e, unsigned long uid, const char *table, char *buf, size_t len);
/* True when some process is a zombie child of pid (from /proc). */
bool tu_has_zombie_children(pid_t pid);

/* Tests that run a client as another uid (65534) need root: true as root,
 * else false after saying on stderr that test is skipped. */
bool tu_root_or_skip(const char *test);
/* Lets other uids reach the instance's etsmgrd socket (the dir 0711, the
 * socket 0666; the test owns both) and puts its path in sock. */
void tu_open_mgr_sock(const tu_env *e, char *sock, size_t len);

/* The runner's record of what tests create, so that it can remove and report
 * what a test left behind: a failed check assertion ends the test with
 * _exit() and a timed-out test is SIGKILLed, so no atexit handler runs.
 * tu_sweep_begin makes the record and exports its path; tu_sweep_note adds
 * one thing ("instance NAME DIR", "shm /NAME -"), a no-op outside the
 * runner; tu_sweep_collect removes what is left of the things noted since
 * its last call, says so on out and returns how many it found. */
int tu_sweep_begin(const char *path);
void tu_sweep_note(const char *kind, const char *name, const char *dir);
int tu_sweep_collect(FILE *out);

/* The sanitizers' reports (ASan, LSan, UBSan) in the runner's log at path,
 * from any program a test ran: a daemon the test started reports on its
 * stderr and dies, which a test need not notice (etscounterd's SANITIZE=1
 * build died after every takeover for a while, the tests passing).  Each
 * is named on out with the test whose output holds it (check's result
 * line after it); the number found. */
int tu_sanitizer_reports(const char *path, FILE *out);
#endif

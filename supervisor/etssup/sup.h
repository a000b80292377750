/* SPDX-License-Identifier: Apache-2.0 */
/* sup.h: what etssup's files share.
 *
 * etssup is one libuv loop and one struct sup.  The configuration (config.c)
 * is immutable once loaded; the run-time state of each child lives next to
 * it in a sup_child.  Everything that changes a child's state funnels into
 * one driver, sup_advance (strategy.c), which looks at the whole table of
 * children and does the next single step: stop the highest child that must
 * stop, else start the lowest child that must run.  Doing one step at a time
 * is what gives the OTP ordering guarantees (start in order, stop in reverse
 * order, never two children starting at once) without a separate state
 * machine per strategy.  Symbols carry the sup_ prefix because the program's
 * objects (all but main.o) are linked into the test runner too. */
#ifndef ETSSUP_SUP_H
#define ETSSUP_SUP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/un.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "conn.h"
#include "proto.h"
#include "runtime.h"

/* Exit statuses of etssup (documented in etssup(8)). */
#define SUP_EXIT_OK 0
/* could not run (runtime dir, lock, sockets, out of memory): EX_SOFTWARE,
 * as etsmgrd and etscounterd say they cannot serve for the same reasons */
#define SUP_EXIT_FAILURE 70
#define SUP_EXIT_INTENSITY 3  /* more than intensity restarts within period */
#define SUP_EXIT_START 4      /* a child failed its initial start */
#define SUP_EXIT_USAGE 64
#define SUP_EXIT_CONFIG 78

/* Defaults (documented in etssup(8) and docs/design.md). */
#define SUP_DEFAULT_INTENSITY 10
#define SUP_DEFAULT_PERIOD 10          /* seconds */
#define SUP_DEFAULT_START_TIMEOUT 10000 /* ms */
/* After a takeover, the child's next standby starts this long after the
 * death, not the instant the promoted standby is ready: it is then answering
 * the requests that waited through the takeover, and a fork+exec beside it
 * (a millisecond of CPU on a small machine) would delay them by as much.
 * The cost: for these 20 ms, a second death is an ordinary restart. */
#define SUP_STANDBY_DELAY_MS 20
/* The death of a child whose standby waits is handled (reaped, logged, the
 * standby recorded as the child) this long after SIGCHLD: the SIGCHLD comes
 * in the middle of the takeover, and on a small machine etssup's 0.06 ms of
 * work then ran before the standby's first answers in most takeovers
 * (docs/performance.md, "Hot standby").  Nothing waits for it: the standby
 * serves on its own, and its READY=1 may come first (child.c). */
#define SUP_STANDBY_REAP_DELAY_MS 2
#define SUP_DEFAULT_SHUTDOWN 5000      /* ms */
#define SUP_MAX_CHILDREN 64
#define SUP_MAX_SOCKETS 8              /* per child */
#define SUP_BRUTAL_KILL (-1)

typedef enum sup_strategy { SUP_ONE_FOR_ONE, SUP_ONE_FOR_ALL, SUP_REST_FOR_ONE } sup_strategy;
typedef enum sup_restart { SUP_PERMANENT, SUP_TRANSIENT, SUP_TEMPORARY } sup_restart;
typedef enum sup_ready { SUP_READY_NOTIFY, SUP_READY_NONE } sup_ready;

typedef struct sup_socket_cfg {
    char *name; /* LISTEN_FDNAMES entry */
    char *path; /* relative to the runtime dir */
} sup_socket_cfg;

typedef struct sup_child_cfg {
    char *id;
    char **argv; /* NULL-terminated */
    int argc;
    char *exe;   /* argv[0] resolved to an executable path */
    sup_restart restart;
    int shutdown_ms; /* SUP_BRUTAL_KILL or >= 0 */
    sup_ready ready;
    int start_timeout_ms;
    sup_socket_cfg *sockets;
    int nsockets;
    bool standby;        /* keep a hot standby: argv + "--standby" */
    char **standby_argv; /* NULL-terminated; strings borrowed from argv */
} sup_child_cfg;

typedef struct sup_config {
    sup_strategy strategy;
    int intensity;
    int period_s;
    int start_timeout_ms;
    sup_child_cfg *children;
    int nchildren;
} sup_config;

/* journal.c: a journald stream per child (only when etssup's own stderr
 * is one).  prepare runs before fork (fd -1: the child keeps etssup's
 * stderr; env is then ""), attach in the child after fork on fd, the
 * prepared socket moved where it is safe. */
typedef struct sup_journal {
    int fd;
    struct sockaddr_un addr;
    char header[160];
    size_t hlen;
    char env[64]; /* "JOURNAL_STREAM=dev:ino" */
    char failmsg[256];
    size_t faillen;
} sup_journal;
int sup_journal_prepare(const sup_child_cfg *cc, sup_journal *j);
void sup_journal_attach(const sup_journal *j, int fd);

/* config.c */
extern const char sup_default_config[];
/* Parses and validates text.  source names it in messages ("FILE" or
 * "built-in default"); exe_dir is where bare argv[0] names are looked up
 * first (then $PATH).  Each mistake is one line "source: path: reason" in
 * errs (NULL: not reported).  Returns the number of mistakes; cfg is
 * filled only when it is 0. */
int sup_config_parse(const char *text, const char *source, const char *exe_dir, sup_config *cfg, FILE *errs);
/* Reads path (NULL: the built-in default) and parses it as above; a file
 * that cannot be read counts as one mistake. */
int sup_config_load(const char *path, const char *exe_dir, sup_config *cfg, FILE *errs);
void sup_config_free(sup_config *cfg);
const char *sup_strategy_name(sup_strategy s);
const char *sup_restart_name(sup_restart r);

typedef enum sup_state {
    SUP_ST_IDLE,     /* no process */
    SUP_ST_STARTING, /* spawned, waiting for READY=1 */
    SUP_ST_RUNNING,
    SUP_ST_STOPPING  /* signalled by us, waiting for its exit */
} sup_state;
const char *sup_state_name(sup_state s);

struct sup;

typedef struct sup_child {
    const sup_child_cfg *cfg;
    struct sup *sup;
    int index;
    pid_t pid;
    sup_state state;
    bool want_run;     /* it should be running (false: temporary and ended) */
    bool pending_stop; /* to be stopped by sup_advance (then restarted if want_run) */
    bool start_failed; /* killed by us because its start timed out */
    bool ever_started;
    unsigned restarts;
    char last_exit[600]; /* "" until it first exits or fails to start */
    char status[128];   /* last STATUS= it sent */
    uint64_t started_ms;
    int *listen_fds;    /* sockets.c: one per cfg->sockets */
    unsigned inherited; /* bit j: listen_fds[j] came from systemd (never unlinked) */
    int notify_fd;
    char notify_path[RT_PATH_MAX];
    uv_poll_t notify_poll;
    uv_timer_t timer;   /* start timeout, or SIGKILL after shutdown time */
    uint64_t wd_last_ms; /* its last WATCHDOG=1 (watchdog.c) */
    bool wd_silent;      /* already reported as not pinging */
    /* its hot standby (cfg->standby): a second process of the same command
     * plus --standby, sharing the listening sockets and notify socket; it
     * sends READY=1 once it owns what the child owned (strategy.c) */
    pid_t sb_pid;
    uint64_t sb_started_ms;
    bool sb_ready;      /* READY=1 came from sb_pid before the child was reaped */
    bool sb_stopping;   /* SIGKILLed by us: not a failure */
    bool sb_died;       /* it died with the child and was reaped first: counted with the child's restart */
    uint64_t sb_after_ms; /* no standby starts before (SUP_STANDBY_DELAY_MS) */
    uv_timer_t sb_timer;  /* wakes sup_advance at sb_after_ms */
    conn *waiter;       /* control "restart" waiting for its readiness */
    cJSON *waiter_req;
} sup_child;

typedef struct sup {
    uv_loop_t *loop;
    const sup_config *cfg;
    rt_paths rt;
    pid_t pid;
    sup_child *children;
    int n;
    bool terminating;
    bool ready_once;   /* every child was ready once: the initial start is over */
    bool finished;
    int exit_code;
    char exit_why[640]; /* "" or why it gives up, for the last log line */
    uint64_t *restart_ms; /* ring of the last intensity+1 restart times */
    unsigned nrestarts;
    int lock_fd;
    int gen_fd; /* shared flock every child inherits: see sup_generation_lock */
    unsigned long long wd_usec; /* systemd's WATCHDOG_USEC for etssup, 0: off */
    uv_signal_t sig_chld, sig_term, sig_int;
    uv_timer_t reap_timer; /* SUP_STANDBY_REAP_DELAY_MS */
    bool reap_deferred;
    conn_server *ctl;
    char ctl_path[RT_PATH_MAX];
} sup;

uint64_t sup_now_ms(void);

/* watchdog.c: WATCHDOG=1 to systemd while the loop turns and every running
 * child pings (0, or -1 when the timer cannot start) */
int sup_watchdog_start(sup *s);
void sup_watchdog_stop(sup *s);

/* sockets.c: the listening sockets etssup holds for its children; 0, -1 on
 * a system error, -2 when an inherited socket matches no configured one */
int sup_sockets_open(sup *s);
void sup_sockets_close(sup *s);

/* child.c */
int sup_child_notify_open(sup_child *c); /* when ready=notify */
void sup_child_notify_close(sup_child *c);
/* fork+exec; 0 with c->pid set, or with a message in err: -2 when the
 * program could not be executed (execve's errno), -1 on any other failure */
int sup_child_spawn(sup_child *c, char *err, size_t errlen);
/* the same with --standby appended; 0 with c->sb_pid set */
int sup_child_spawn_standby(sup_child *c, char *err, size_t errlen);
/* SIGTERM (then SIGKILL after the shutdown time) or SIGKILL at once */
void sup_child_stop(sup_child *c, bool brutal);
/* (re)arm the child's timer: start timeout or SIGKILL, by its state */
void sup_child_timer(sup_child *c, uint64_t ms);
/* signal the child's process group (falls back to the pid) */
void sup_child_kill(sup_child *c, int sig);
/* words for a wait status: "exited with status 1", "killed by signal SIGKILL (Killed)" */
void sup_describe_status(int status, char *buf, size_t len);

/* strategy.c */
void sup_advance(sup *s);
void sup_child_started(sup_child *c);             /* spawned (state set by spawn) */
void sup_child_ready(sup_child *c);               /* READY=1 or ready=none */
void sup_child_exited(sup_child *c, int status);  /* reaped */
void sup_standby_exited(sup_child *c, int status); /* its standby reaped */
void sup_start_timeout(sup_child *c);
/* begin an orderly stop of everything; code is etssup's exit status */
void sup_terminate(sup *s, int code);
/* control "restart": stop (if running) and start again; 0 or -1 with err */
int sup_restart_child(sup_child *c, char *err, size_t errlen);
sup_child *sup_find_child(sup *s, const char *id);
unsigned sup_recent_restarts(sup *s);
void sup_notify_status(sup *s);
/* called once everything is stopped while terminating: closes every handle so uv_run returns */
void sup_finish(sup *s);

/* control.c: DIR/etssup.sock */
int sup_control_start(sup *s, char *err, size_t errlen);
void sup_control_stop(sup *s);
/* adds pid, instance, state, strategy, intensity, period, children[] to r */
int sup_status_add(sup *s, cJSON *r);
/* answer a restart waiter: ok with the child's pid, or an error */
void sup_control_answer(sup_child *c, proto_err errcode, const char *msg); /* PROTO_OK: the ok reply */
#endif

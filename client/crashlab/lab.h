/* SPDX-License-Identifier: Apache-2.0 */
/* lab.h: what the files of etsmgr-crashlab share.
 *
 * The lab is a handful of threads around one struct lab:
 *   main thread   options, then the killer loop (killer.c), then the verdict
 *   workers       counting clients speaking the wire protocol (workers.c)
 *   reaper        waitpid(-1) for etssup and, since the lab is a child
 *                 subreaper, for whatever etssup leaves behind (system.c)
 *   zombie scan   /proc every 100 ms (zombies.c)
 * Each worker owns its array of acknowledged counts and nobody else touches
 * it until the worker is joined; the few values the killer reads live (the
 * time of the last acknowledgement) are atomics.  The verdict (verdict.c)
 * and the statistics are pure functions of plain arrays, so the test suite
 * can check them on synthetic data.  Symbols carry the lab_ prefix because
 * every program's objects but main.o are linked into the test runner. */
#ifndef ETSMGR_CRASHLAB_H
#define ETSMGR_CRASHLAB_H
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

/* exit statuses (documented in etsmgr-crashlab(1)) */
#define LAB_EXIT_PASS 0
#define LAB_EXIT_FAIL 1         /* an invariant does not hold */
#define LAB_EXIT_USAGE 64
#define LAB_EXIT_UNAVAILABLE 69 /* the system could not be started or attached */
#define LAB_EXIT_SOFTWARE 70    /* the lab itself failed (a syscall, memory) */

typedef enum lab_target { LAB_T_COUNTERD, LAB_T_MGRD, LAB_T_BOTH, LAB_T_SUP, LAB_T_N } lab_target;
const char *lab_target_name(lab_target t);
const char *lab_target_color(lab_target t); /* for the plot */

/* ------------------------------------------------------------------ options */
typedef struct lab_opts {
    int workers;
    unsigned targets;          /* bit (1 << lab_target) */
    int interval_min_ms, interval_max_ms;
    long kills;                /* 0: no limit */
    double duration_s;         /* 0: no limit */
    uint64_t seed;
    bool seed_given;
    const char *strategy;      /* one_for_one, one_for_all, rest_for_one */
    bool exit_on_manager_death;
    bool exactly_once;
    bool standby;              /* "standby": true for etscounterd (etssup(8)) */
    int intensity, period_s;   /* the generated etssup config */
    int start_timeout_ms;
    bool attach;
    const char *runtime_dir, *instance; /* --attach */
    const char *json_path, *plot_path, *log_path;
    int zombie_grace_ms;
    int recovery_timeout_ms;
    bool verbose;
    /* test hook ETSMGR_CRASHLAB_TEST_FAULT: "dup:N" or "lose:N" (see workers.c) */
    int fault_kind; /* 0 none, 1 dup, 2 lose */
    long fault_at;
} lab_opts;

/* ------------------------------------------------------------------ records */
typedef struct lab_ack {
    int64_t value;
    int64_t t_ns;    /* reply received (lab clock, see lab_now_ns) */
    int64_t conn_ns; /* the connection it came on was opened at */
} lab_ack;

typedef struct lab_worker {
    struct lab *lab;
    int index;
    pthread_t thread;
    bool started;
    lab_ack *acks;
    size_t nacks, cap;
    int64_t last_value;
    unsigned long not_increasing; /* acks whose value was <= the previous one */
    unsigned long retries;        /* requests sent again with the same rid */
    unsigned long reconnects;
    unsigned long errors;         /* ok:false replies */
    unsigned long gave_up;        /* requests never answered */
    unsigned long dup_replies;    /* replies marked "duplicate": a retry answered from the record */
    char first_problem[256];
    uint64_t rng[2];
} lab_worker;

typedef struct lab_kill {
    int64_t t_ns;
    lab_target target;
    pid_t pids[2];
    int npids;
    int64_t ready_ns; /* supervisor whole again; -1: not seen */
    int64_t ack_ns;   /* first acknowledged count after it; -1: none (filled by lab_kill_acks) */
} lab_kill;

typedef struct lab_zombie {
    pid_t pid, ppid;
    char comm[32];
    int64_t first_ns, last_ns;
    bool reported;
} lab_zombie;

typedef struct lab_child_info {
    char id[64];
    pid_t pid;
    char state[16];
} lab_child_info;

/* ------------------------------------------------------------------ the run */
typedef struct lab {
    lab_opts o;
    rt_paths rt;
    char base[RT_PATH_MAX];      /* the lab's temp dir (fresh mode) */
    char config_path[RT_PATH_MAX + 32];
    char notify_path[RT_PATH_MAX];
    char log_file[4096];
    char bindir[4096];
    char counter_sock[RT_PATH_MAX], sup_sock[RT_PATH_MAX];
    int notify_fd;
    int64_t t0_ns;               /* start of the load */
    int64_t end_ns;

    /* etssup */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pid_t sup_pid;               /* current etssup (fresh mode), 0 when none */
    pid_t attach_sup_pid;        /* attach mode: from the status op */
    bool sup_exited;
    int sup_status;
    bool sup_killed_by_us;
    pid_t seen_pids[4096];       /* every process of the run, for the leftover check */
    int nseen;
    unsigned sup_starts;
    pthread_t reaper;
    bool reaper_started;
    atomic_bool reaper_stop;

    /* load */
    lab_worker *w;
    atomic_bool stop_load;
    atomic_bool fault_done; /* worker 0 has misbehaved as ETSMGR_CRASHLAB_TEST_FAULT asked */
    atomic_llong last_ack_ns;
    atomic_llong acked_total;
    int64_t initial_count, final_count;
    bool have_final;

    /* kills */
    lab_kill *kills;
    size_t nkills, kcap;
    uint64_t rng[2];
    const char *ready_method;    /* "notify" or "status poll" */

    /* zombies */
    pthread_t zscan;
    bool zscan_started;
    atomic_bool zscan_stop;
    lab_zombie *zombies;         /* tracked (and persistent ones kept) */
    size_t nzombies, zcap;
    unsigned long transient_zombies;
    unsigned long persistent_zombies;

    /* end of run */
    char **leftovers;            /* words, one per thing left behind */
    size_t nleftovers;
    char **failures;             /* every failure in words */
    size_t nfailures;
    char **notes;                /* things worth saying that are not failures */
    size_t nnotes;
    bool interrupted;
    bool recovery_failed;        /* a kill was not recovered from in time */
    int sup_final_status;        /* etssup's exit status on the final SIGTERM, -1 unknown */
} lab;

/* the signal (SIGINT, SIGTERM, SIGHUP) that asked the run to stop, 0 */
extern volatile sig_atomic_t lab_interrupted;

/* util.c */
int64_t lab_now_ns(void);
void lab_sleep_ms(int ms);
uint64_t lab_rand(uint64_t s[2]);              /* xoroshiro128+ */
void lab_seed(uint64_t s[2], uint64_t seed);   /* splitmix64 expansion */
void lab_fail(lab *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lab_note(lab *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lab_leftover(lab *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lab_log(lab *l, const char *fmt, ...) __attribute__((format(printf, 2, 3))); /* --verbose */
double lab_ms(int64_t ns);

/* system.c: the system under test */
int lab_sys_prepare(lab *l, char *err, size_t errlen);      /* temp dir, config, notify socket */
int lab_sys_start(lab *l, int64_t *ready_ns, char *err, size_t errlen); /* etssup until READY=1 */
int lab_sys_status(lab *l, lab_child_info *kids, int max, int *n, pid_t *sup_pid, char *err, size_t errlen);
/* waits until every child runs (and none of avoid[] is still the pid of
 * one), using notify messages when there is a notify socket; *ready_ns gets
 * the time the supervisor said so.  0, or -1 on timeout with err. */
int lab_sys_wait_whole(lab *l, const pid_t *avoid, int navoid, int timeout_ms, int64_t *ready_ns, char *err,
                       size_t errlen);
/* drains pending notify messages */
void lab_sys_drain_notify(lab *l);
/* etssup was SIGKILLed by us: wait for it and its children to go, start again */
int lab_sys_restart_sup(lab *l, const pid_t *old_kids, int nkids, int64_t *ready_ns, char *err, size_t errlen);
bool lab_sys_sup_gone(lab *l, int *status); /* etssup exited (not reaped by a restart yet) */
int lab_sys_check_count(lab *l, int64_t *count, int timeout_ms, char *err, size_t errlen);
/* final SIGTERM, then the leftover checks and the clean-up */
void lab_sys_shutdown(lab *l);
/* removes the temp dir; keep_log: leave the log file (and so the dir) */
void lab_sys_remove_base(lab *l, bool keep_log);
void lab_sys_reaper_start(lab *l);
void lab_sys_reaper_stop(lab *l);
void lab_remember_pid(lab *l, pid_t pid);
const char *lab_log_path(lab *l);

/* workers.c */
int lab_workers_start(lab *l, char *err, size_t errlen);
void lab_workers_stop(lab *l);

/* killer.c */
void lab_killer_run(lab *l);
/* first acknowledged count after each kill (from the workers' records) */
void lab_kill_acks(lab *l);

/* zombies.c */
void lab_zombies_start(lab *l);
void lab_zombies_stop(lab *l);

/* verdict.c: pure functions, tested on synthetic data */
typedef struct lab_tally {
    int64_t initial, final;
    uint64_t acked;          /* acknowledged counts */
    uint64_t distinct;       /* distinct acknowledged values */
    uint64_t lost;           /* acks the final count does not account for */
    uint64_t duplicated;     /* increments nobody acknowledged */
    uint64_t repeated;       /* a value acknowledged more than once (part of lost) */
    uint64_t out_of_range;   /* acked values <= initial or > final (part of lost) */
} lab_tally;
/* values is sorted in place */
void lab_tally_compute(int64_t initial, int64_t final, int64_t *values, size_t n, lab_tally *t);
typedef struct lab_stats {
    size_t n;
    double min, median, p99, max;
} lab_stats;
/* ms is sorted in place; nearest-rank percentiles */
void lab_stats_compute(double *ms, size_t n, lab_stats *s);
/* fills l->failures from the tally, the workers, zombies and leftovers;
 * returns the number of failures */
size_t lab_verdict(lab *l, const lab_tally *t);

/* report.c */
void lab_report_text(lab *l, const lab_tally *t, FILE *f);
int lab_report_json(lab *l, const lab_tally *t, const char *path, char *err, size_t errlen);
/* plot.c */
int lab_plot_svg(lab *l, const lab_tally *t, const char *path, char *err, size_t errlen);
#endif

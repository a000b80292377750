/* SPDX-License-Identifier: Apache-2.0 */
/* etsmgr-crashlab: kill -9 experiments with a verdict (etsmgr-crashlab(1)).
 *
 * People run this project to kill its processes and see whether anything
 * was lost.  The lab does it for them, with numbers: it starts the whole
 * system under etssup in a private runtime dir (or attaches to a running
 * one), keeps --workers clients counting, sends SIGKILL to a random target
 * at random moments, and at the end checks the invariants that the project
 * promises: the final count equals the acknowledged counts, every client
 * saw increasing values, no zombie, nothing left behind.  It exits 0 only
 * when every one holds, so it can run in CI.
 *
 * This file is the sequence of a run; the parts are in system.c (etssup and
 * the clean-up), workers.c, killer.c, zombies.c, verdict.c, report.c and
 * plot.c.  The order matters in two places: SIGCHLD is blocked before any
 * thread exists (the reaper waits for it with sigtimedwait), and the load
 * stops only after the last kill is recovered from, so every worker's last
 * request is answered before the final count is read. */
#include "lab.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static const char lab_usage[] =
    "Usage: etsmgr-crashlab [OPTION]...\n"
    "Run a kill -9 experiment on etsmgrd, etscounterd and etssup and say, with\n"
    "numbers, whether any count was lost or duplicated.\n"
    "\n"
    "Load and kills:\n"
    "  -w, --workers N             counting clients (default 4)\n"
    "  -t, --targets LIST          what to SIGKILL, a comma-separated mix of etscounterd,\n"
    "                              etsmgrd, both, etssup, or all (the default; all but\n"
    "                              etssup with --attach)\n"
    "  -I, --interval MIN:MAX      pause before each kill, in ms, random in MIN..MAX,\n"
    "                              counted from the previous kill's recovery (default 20:200)\n"
    "  -k, --kills K               stop after K kills\n"
    "  -D, --duration S            stop after S seconds (default, without -k or -D: 100 kills)\n"
    "  -s, --seed N                seed of the schedule of targets and pauses (default random;\n"
    "                              the report prints it so a run can be repeated)\n"
    "\n"
    "Recovery scheme (the generated etssup configuration):\n"
    "  -S, --strategy NAME         one_for_one (default), one_for_all or rest_for_one\n"
    "  -m, --on-manager-death WHAT keep: etscounterd serves on and re-registers its table\n"
    "                              (default); exit: it exits and etssup restarts it\n"
    "  -n, --no-exactly-once       etscounterd ignores request ids: a retried count\n"
    "                              counts again (to see what goes wrong without it)\n"
    "      --standby               etssup keeps a hot standby of etscounterd\n"
    "                              (\"standby\": true): a killed one is replaced by the\n"
    "                              standby already waiting, not by a new process\n"
    "      --intensity N           etssup's restart intensity (default 1000)\n"
    "      --period S              etssup's intensity period in seconds (default 10)\n"
    "      --start-timeout MS      etssup's start_timeout: a child not ready within MS is\n"
    "                              killed and restarted (default 10000)\n"
    "\n"
    "A running system instead:\n"
    "  -a, --attach                use the etssup already running for the instance below;\n"
    "                              nothing is started, stopped or unlinked\n"
    "  -d, --runtime-dir DIR       its runtime dir (default: $ETSMGR_RUNTIME_DIR,\n"
    "                              $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
    "                              else /tmp/etsmgr-$UID;\n"
    "                              @NAME appended for an instance NAME other than etsmgr)\n"
    "  -i, --instance NAME         its instance (default: $ETSMGR_INSTANCE or etsmgr)\n"
    "\n"
    "Output:\n"
    "  -j, --json FILE             write the report as JSON too (- for stdout)\n"
    "  -p, --plot FILE.svg         draw the counter over time with the kills marked\n"
    "  -L, --log FILE              write etssup's and its children's logs to FILE and keep\n"
    "                              it (default: a file in the lab's temp dir, kept only\n"
    "                              when the run fails)\n"
    "      --recovery-timeout MS   a kill not recovered from within MS is a failure\n"
    "                              (default 30000)\n"
    "      --zombie-grace MS       a zombie not reaped within MS is a failure (default 1000)\n"
    "  -v, --verbose               say what happens, kill by kill, on stderr\n"
    "  -h, --help                  show this help and exit\n"
    "  -V, --version               show the version and exit\n"
    "\n"
    "Exit status: 0 every invariant holds, 1 an invariant does not hold (the report\n"
    "says which), 64 usage error, 69 the system could not be started or attached,\n"
    "70 the lab itself failed.  Stopped by SIGINT, SIGTERM or SIGHUP, it cleans up,\n"
    "reports (verdict INTERRUPTED unless an invariant failed) and ends by that signal.\n";

static int lab_usage_error(const char *fmt, const char *arg)
{
    fputs("etsmgr-crashlab: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'etsmgr-crashlab --help' for more information.\n", stderr);
    return LAB_EXIT_USAGE;
}

static int lab_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int lab_parse_targets(const char *s, unsigned *out)
{
    char *dup = strdup(s), *save = NULL;
    if (!dup)
        return -1;
    *out = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "all") == 0)
            *out |= (1u << LAB_T_N) - 1;
        else if (strcmp(tok, "etscounterd") == 0)
            *out |= 1u << LAB_T_COUNTERD;
        else if (strcmp(tok, "etsmgrd") == 0)
            *out |= 1u << LAB_T_MGRD;
        else if (strcmp(tok, "both") == 0)
            *out |= 1u << LAB_T_BOTH;
        else if (strcmp(tok, "etssup") == 0)
            *out |= 1u << LAB_T_SUP;
        else {
            free(dup);
            return -1;
        }
    }
    free(dup);
    return *out ? 0 : -1;
}

enum { OPT_INTENSITY = 256, OPT_PERIOD, OPT_START, OPT_RECOVERY, OPT_GRACE, OPT_STANDBY };

static int lab_parse(lab *l, int argc, char **argv)
{
    static const struct option opts[] = {
        { "workers", required_argument, NULL, 'w' },
        { "targets", required_argument, NULL, 't' },
        { "interval", required_argument, NULL, 'I' },
        { "kills", required_argument, NULL, 'k' },
        { "duration", required_argument, NULL, 'D' },
        { "seed", required_argument, NULL, 's' },
        { "strategy", required_argument, NULL, 'S' },
        { "on-manager-death", required_argument, NULL, 'm' },
        { "no-exactly-once", no_argument, NULL, 'n' },
        { "standby", no_argument, NULL, OPT_STANDBY },
        { "intensity", required_argument, NULL, OPT_INTENSITY },
        { "period", required_argument, NULL, OPT_PERIOD },
        { "start-timeout", required_argument, NULL, OPT_START },
        { "attach", no_argument, NULL, 'a' },
        { "runtime-dir", required_argument, NULL, 'd' },
        { "instance", required_argument, NULL, 'i' },
        { "json", required_argument, NULL, 'j' },
        { "plot", required_argument, NULL, 'p' },
        { "log", required_argument, NULL, 'L' },
        { "recovery-timeout", required_argument, NULL, OPT_RECOVERY },
        { "zombie-grace", required_argument, NULL, OPT_GRACE },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    lab_opts *o = &l->o;
    o->workers = 4;
    o->interval_min_ms = 20;
    o->interval_max_ms = 200;
    o->strategy = "one_for_one";
    o->exactly_once = true;
    o->intensity = 1000;
    o->period_s = 10;
    o->start_timeout_ms = 10000;
    o->zombie_grace_ms = 1000;
    o->recovery_timeout_ms = 30000;
    bool targets_given = false;
    int c;
    long v;
    while ((c = getopt_long(argc, argv, "w:t:I:k:D:s:S:m:nad:i:j:p:L:vhV", opts, NULL)) != -1) {
        switch (c) {
        case 'w':
            if (lab_parse_long(optarg, 1, 256, &v) < 0)
                return lab_usage_error("--workers takes a number from 1 to 256, not \"%s\"", optarg);
            o->workers = (int)v;
            break;
        case 't':
            if (lab_parse_targets(optarg, &o->targets) < 0)
                return lab_usage_error("--targets takes a comma-separated list of etscounterd, etsmgrd, both, "
                                       "etssup or all, not \"%s\"", optarg);
            targets_given = true;
            break;
        case 'I': {
            long a, b;
            char buf[64], *colon;
            snprintf(buf, sizeof buf, "%s", optarg);
            colon = strchr(buf, ':');
            if (colon)
                *colon = 0;
            if (!colon || lab_parse_long(buf, 0, 3600000, &a) < 0 || lab_parse_long(colon + 1, 0, 3600000, &b) < 0 ||
                b < a)
                return lab_usage_error("--interval takes MIN:MAX in milliseconds with MIN <= MAX, not \"%s\"",
                                       optarg);
            o->interval_min_ms = (int)a;
            o->interval_max_ms = (int)b;
            break;
        }
        case 'k':
            if (lab_parse_long(optarg, 1, 100000000, &v) < 0)
                return lab_usage_error("--kills takes a positive number, not \"%s\"", optarg);
            o->kills = v;
            break;
        case 'D': {
            char *end;
            errno = 0;
            double d = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(d > 0) || d > 86400 * 365)
                return lab_usage_error("--duration takes a positive number of seconds, not \"%s\"", optarg);
            o->duration_s = d;
            break;
        }
        case 's': {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return lab_usage_error("--seed takes a non-negative integer, not \"%s\"", optarg);
            o->seed = s;
            o->seed_given = true;
            break;
        }
        case 'S':
            if (strcmp(optarg, "one_for_one") && strcmp(optarg, "one_for_all") && strcmp(optarg, "rest_for_one"))
                return lab_usage_error("--strategy takes one_for_one, one_for_all or rest_for_one, not \"%s\"",
                                       optarg);
            o->strategy = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "keep") == 0)
                o->exit_on_manager_death = false;
            else if (strcmp(optarg, "exit") == 0)
                o->exit_on_manager_death = true;
            else
                return lab_usage_error("--on-manager-death takes keep or exit, not \"%s\"", optarg);
            break;
        case 'n': o->exactly_once = false; break;
        case OPT_STANDBY: o->standby = true; break;
        case OPT_INTENSITY:
            if (lab_parse_long(optarg, 0, 100000000, &v) < 0)
                return lab_usage_error("--intensity takes a non-negative number, not \"%s\"", optarg);
            o->intensity = (int)v;
            break;
        case OPT_PERIOD:
            if (lab_parse_long(optarg, 1, 86400, &v) < 0)
                return lab_usage_error("--period takes seconds from 1 to 86400, not \"%s\"", optarg);
            o->period_s = (int)v;
            break;
        case OPT_START:
            if (lab_parse_long(optarg, 100, 3600000, &v) < 0)
                return lab_usage_error("--start-timeout takes milliseconds from 100 to 3600000, not \"%s\"", optarg);
            o->start_timeout_ms = (int)v;
            break;
        case 'a': o->attach = true; break;
        case 'd': o->runtime_dir = optarg; break;
        case 'i': o->instance = optarg; break;
        case 'j': o->json_path = optarg; break;
        case 'p': o->plot_path = optarg; break;
        case 'L': o->log_path = optarg; break;
        case OPT_RECOVERY:
            if (lab_parse_long(optarg, 100, 3600000, &v) < 0)
                return lab_usage_error("--recovery-timeout takes milliseconds from 100 to 3600000, not \"%s\"",
                                       optarg);
            o->recovery_timeout_ms = (int)v;
            break;
        case OPT_GRACE:
            if (lab_parse_long(optarg, 100, 3600000, &v) < 0)
                return lab_usage_error("--zombie-grace takes milliseconds from 100 to 3600000, not \"%s\"", optarg);
            o->zombie_grace_ms = (int)v;
            break;
        case 'v': o->verbose = true; break;
        case 'h': fputs(lab_usage, stdout); return -1;
        case 'V': printf("etsmgr-crashlab %s\n", ETSMGR_VERSION_STRING); return -1;
        default: fputs("Try 'etsmgr-crashlab --help' for more information.\n", stderr); return LAB_EXIT_USAGE;
        }
    }
    if (optind < argc)
        return lab_usage_error("unexpected argument \"%s\"", argv[optind]);
    if (!o->attach && (o->runtime_dir || o->instance))
        return lab_usage_error("%s", "--runtime-dir and --instance name a running system: use them with --attach "
                                     "(without it the lab makes a private runtime dir and instance)");
    if (!targets_given)
        o->targets = o->attach ? (1u << LAB_T_SUP) - 1 : (1u << LAB_T_N) - 1;
    if (o->attach && (o->targets & (1u << LAB_T_SUP)))
        return lab_usage_error("%s", "--attach cannot kill etssup: the lab could not start it again as it was "
                                     "started (choose among etscounterd, etsmgrd, both)");
    if (o->kills == 0 && o->duration_s == 0)
        o->kills = 100;
    if (!o->seed_given) {
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r)
            r = (uint32_t)lab_now_ns();
        o->seed = 1 + r % 999999999u;
    }
    const char *fault = getenv("ETSMGR_CRASHLAB_TEST_FAULT");
    if (fault && *fault) {
        if (strncmp(fault, "dup:", 4) == 0 && lab_parse_long(fault + 4, 1, 1000000000, &v) == 0)
            o->fault_kind = 1;
        else if (strncmp(fault, "lose:", 5) == 0 && lab_parse_long(fault + 5, 1, 1000000000, &v) == 0)
            o->fault_kind = 2;
        else
            return lab_usage_error("ETSMGR_CRASHLAB_TEST_FAULT takes dup:N or lose:N, not \"%s\"", fault);
        o->fault_at = v;
    }
    return 0;
}

/* The first signal asks for the clean-up (which can take half a minute:
 * etssup's own shutdown); a second ends the lab at once, by that signal,
 * leaving what it started behind, as a user who presses Ctrl-C twice asks
 * for.  Only async-signal-safe calls. */
static void lab_on_signal(int sig)
{
    if (lab_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    lab_interrupted = sig;
}

/* Catch sig, unless the lab was started with it ignored: nohup (SIGHUP)
 * and a shell's background jobs (SIGINT) ask that it go on through them. */
static void lab_catch(int sig, const struct sigaction *sa)
{
    struct sigaction old;
    if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
        return;
    sigaction(sig, sa, NULL);
}

/* After the clean-up, a run stopped by a signal ends by that signal, as a
 * program that catches SIGINT to clean up should: a shell loop or script
 * running the lab then stops too, and a CI job cancelled with SIGTERM is not
 * taken for a pass (it exited 0, "every invariant holds", and a loop of
 * runs went on after Ctrl-C). */
static int lab_end_by_signal(void)
{
    int sig = lab_interrupted;
    fflush(NULL);
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    return 128 + sig; /* not reached */
}

static lab L;

/* stop everything that was started, for the early exits; keep_log: the
 * start failed, and its log says why */
static void lab_abort_run(lab *l, bool keep_log)
{
    lab_workers_stop(l);
    lab_sys_shutdown(l);
    lab_sys_reaper_stop(l);
    lab_zombies_stop(l);
    lab_sys_remove_base(l, keep_log);
}

int main(int argc, char **argv)
{
    lab *l = &L;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cond, NULL);
    l->notify_fd = -1;
    l->sup_final_status = -1;
    int r = lab_parse(l, argc, argv);
    if (r != 0)
        return r < 0 ? 0 : r;

    /* before any thread: SIGCHLD is the reaper's, via sigtimedwait */
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = { .sa_handler = lab_on_signal };
    sigemptyset(&sa.sa_mask);
    /* SIGHUP too: a closed terminal or ssh session must not leave the
     * table in /dev/shm and the temp dir behind */
    lab_catch(SIGINT, &sa);
    lab_catch(SIGTERM, &sa);
    lab_catch(SIGHUP, &sa);

    char err[1024];
    if (l->o.attach) {
        if (rt_resolve(l->o.runtime_dir, l->o.instance, &l->rt, err, sizeof err) < 0)
            return lab_usage_error("%s", err);
    }
    r = lab_sys_prepare(l, err, sizeof err);
    if (r != 0) {
        fprintf(stderr, "etsmgr-crashlab: %s\n", err);
        lab_sys_remove_base(l, false);
        return r;
    }
    char tg[128] = "";
    for (int t = 0; t < LAB_T_N; t++)
        if (l->o.targets & (1u << t))
            snprintf(tg + strlen(tg), sizeof tg - strlen(tg), "%s%s", tg[0] ? "," : "",
                     lab_target_name((lab_target)t));
    char limit[64];
    if (l->o.kills && l->o.duration_s)
        snprintf(limit, sizeof limit, "%ld kills or %g s", l->o.kills, l->o.duration_s);
    else if (l->o.kills)
        snprintf(limit, sizeof limit, "%ld kills", l->o.kills);
    else
        snprintf(limit, sizeof limit, "%g s", l->o.duration_s);
    fprintf(stderr, "etsmgr-crashlab: %s system in %s (instance %s); %d workers, killing %s for %s, seed %llu\n",
            l->o.attach ? "attached to the" : "a fresh", l->rt.dir, l->rt.instance, l->o.workers, tg, limit,
            (unsigned long long)l->o.seed);

    lab_zombies_start(l);
    if (!l->o.attach) {
        lab_sys_reaper_start(l);
        int64_t ready;
        if (lab_sys_start(l, &ready, err, sizeof err) < 0) {
            if (lab_interrupted) { /* nothing to report, nothing to keep */
                fprintf(stderr, "etsmgr-crashlab: interrupted by SIG%s while etssup started\n",
                        sigabbrev_np(lab_interrupted));
                lab_abort_run(l, false);
                return lab_end_by_signal();
            }
            fprintf(stderr, "etsmgr-crashlab: cannot start the system: %s\n", err);
            lab_abort_run(l, true);
            return LAB_EXIT_UNAVAILABLE;
        }
    } else {
        lab_child_info kids[16];
        int n;
        pid_t sp;
        if (lab_sys_status(l, kids, 16, &n, &sp, err, sizeof err) < 0) {
            fprintf(stderr, "etsmgr-crashlab: --attach: cannot ask etssup for its children: %s (is etssup "
                            "running for this runtime dir and instance?)\n", err);
            lab_zombies_stop(l);
            return LAB_EXIT_UNAVAILABLE;
        }
        pthread_mutex_lock(&l->mu);
        l->attach_sup_pid = sp;
        pthread_mutex_unlock(&l->mu);
    }
    if (lab_sys_check_count(l, &l->initial_count, l->o.recovery_timeout_ms, err, sizeof err) < 0 ||
        lab_interrupted) {
        if (lab_interrupted)
            fprintf(stderr, "etsmgr-crashlab: interrupted by SIG%s before the load started\n",
                    sigabbrev_np(lab_interrupted));
        else
            fprintf(stderr, "etsmgr-crashlab: cannot read the initial count: %s\n", err);
        if (l->o.attach)
            lab_zombies_stop(l);
        else
            lab_abort_run(l, !lab_interrupted);
        return lab_interrupted ? lab_end_by_signal() : LAB_EXIT_UNAVAILABLE;
    }

    l->t0_ns = lab_now_ns();
    if (lab_workers_start(l, err, sizeof err) < 0) {
        fprintf(stderr, "etsmgr-crashlab: %s\n", err);
        lab_abort_run(l, true);
        return LAB_EXIT_SOFTWARE;
    }
    lab_killer_run(l);

    /* the last kill is recovered from (or failed): let every worker finish
     * its request, then read the count */
    if (!l->recovery_failed && !lab_interrupted) {
        int64_t ready;
        if (lab_sys_wait_whole(l, NULL, 0, l->o.recovery_timeout_ms, &ready, err, sizeof err) < 0)
            lab_fail(l, "at the end of the run: %s", err);
    }
    lab_workers_stop(l);
    l->end_ns = lab_now_ns();
    if (lab_sys_check_count(l, &l->final_count, l->o.recovery_timeout_ms, err, sizeof err) == 0)
        l->have_final = true;
    else
        lab_fail(l, "the final count could not be read: %s", err);
    lab_sys_shutdown(l);
    lab_sys_reaper_stop(l);
    lab_zombies_stop(l);

    lab_kill_acks(l);
    size_t n = 0;
    for (int i = 0; i < l->o.workers; i++)
        n += l->w[i].nacks;
    int64_t *values = malloc((n ? n : 1) * sizeof *values);
    if (!values) {
        fprintf(stderr, "etsmgr-crashlab: out of memory for %zu acknowledged values\n", n);
        return LAB_EXIT_SOFTWARE;
    }
    size_t k = 0;
    for (int i = 0; i < l->o.workers; i++)
        for (size_t j = 0; j < l->w[i].nacks; j++)
            values[k++] = l->w[i].acks[j].value;
    lab_tally t;
    lab_tally_compute(l->initial_count, l->have_final ? l->final_count : l->initial_count, values, n, &t);
    if (!l->have_final) {
        t.lost = t.duplicated = t.repeated = t.out_of_range = 0;
        t.final = l->initial_count;
    }
    free(values);
    if (lab_interrupted)
        l->interrupted = true; /* also when it came after the last kill */
    if (l->interrupted)
        lab_note(l, "interrupted by SIG%s after %zu kills; the invariants were checked on what was done",
                 sigabbrev_np(lab_interrupted), l->nkills);
    lab_verdict(l, &t);

    int rc = LAB_EXIT_PASS;
    if (l->o.json_path && lab_report_json(l, &t, l->o.json_path, err, sizeof err) < 0) {
        fprintf(stderr, "etsmgr-crashlab: %s\n", err);
        rc = LAB_EXIT_SOFTWARE;
    }
    if (l->o.plot_path && lab_plot_svg(l, &t, l->o.plot_path, err, sizeof err) < 0) {
        fprintf(stderr, "etsmgr-crashlab: %s\n", err);
        rc = LAB_EXIT_SOFTWARE;
    }
    FILE *out = l->o.json_path && strcmp(l->o.json_path, "-") == 0 ? stderr : stdout;
    lab_report_text(l, &t, out);
    fflush(out);
    bool fail = l->nfailures > 0;
    if (fail && !l->o.attach)
        fprintf(stderr, "etsmgr-crashlab: the logs of etssup and its children are in %s\n", lab_log_path(l));
    lab_sys_remove_base(l, fail);
    for (int i = 0; i < l->o.workers; i++)
        free(l->w[i].acks);
    free(l->w);
    free(l->kills);
    free(l->zombies);
    for (size_t i = 0; i < l->nfailures; i++)
        free(l->failures[i]);
    for (size_t i = 0; i < l->nnotes; i++)
        free(l->notes[i]);
    for (size_t i = 0; i < l->nleftovers; i++)
        free(l->leftovers[i]);
    free(l->failures);
    free(l->notes);
    free(l->leftovers);
    if (fail)
        return LAB_EXIT_FAIL;
    if (l->interrupted)
        return lab_end_by_signal();
    return rc;
}

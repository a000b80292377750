/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: etssup, a small OTP-style supervisor (see etssup(8)).
 *
 * Order of start-up matters and is chosen so that a mistake costs nothing:
 * options, then the whole configuration (exit 78 before anything exists),
 * then the instance lock (so two supervisors of one instance never fight
 * over sockets), then the held sockets, notify sockets and control socket,
 * and only then the first child.  etssup is a child subreaper, so every
 * process below it that loses its parent comes back to it and is reaped:
 * nothing it started stays a zombie.  The loop is libuv: SIGCHLD, SIGTERM
 * and SIGINT arrive as uv_signal callbacks, so no work is done in a signal
 * handler. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "runtime.h"
#include "sock.h"
#include "sup.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: etssup [--config FILE] [--runtime-dir DIR] [--instance NAME] [--log-level LEVEL]\n"
            "       etssup --check-config [--config FILE]\n"
            "       etssup --help | --version\n"
            "\n"
            "Start the children of the configuration in order, restart them by their\n"
            "strategy (one_for_one, one_for_all, rest_for_one) and stop them in reverse\n"
            "order on SIGTERM or SIGINT.  Without --config, the built-in default runs\n"
            "etsmgrd then etscounterd, found next to the etssup binary.\n"
            "\n"
            "  -c, --config FILE       JSON configuration (see etssup(8))\n"
            "  -d, --runtime-dir DIR   runtime directory (default: $ETSMGR_RUNTIME_DIR,\n"
            "                          $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
            "                          else /tmp/etsmgr-$UID;\n"
            "                          @NAME appended for an instance NAME other than etsmgr)\n"
            "  -i, --instance NAME     instance name (default: $ETSMGR_INSTANCE, else etsmgr)\n"
            "  -l, --log-level LEVEL   debug, info, notice, warning or error (default info)\n"
            "  -n, --check-config      validate the configuration and exit\n"
            "  -h, --help              show this help\n"
            "  -V, --version           show the version\n"
            "\n"
            "Exit status: 0 stopped on request, 3 restart intensity reached, 4 a child\n"
            "failed its initial start, 64 usage error, 70 could not run (lock, runtime\n"
            "dir, sockets), 78 configuration error.\n");
}

static sup g_sup;

/* A start that failed once the configuration was read: what main allocated
 * is freed before the exit, not for the kernel's sake but for
 * LeakSanitizer's, whose leak report would turn the exit status into 1. */
static int sup_give_up(sup *s, sup_config *cfg, int code)
{
    free(s->children);
    free(s->restart_ms);
    s->children = NULL;
    s->restart_ms = NULL;
    sup_config_free(cfg);
    return code;
}

static void sup_reap_all(sup *s)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0) {
            if (pid < 0 && errno != ECHILD)
                log_warning("waitpid: %s", strerror(errno));
            return;
        }
        sup_child *c = NULL;
        for (int i = 0; i < s->n && !c; i++)
            if (s->children[i].pid == pid)
                c = &s->children[i];
        sup_child *sb = NULL;
        for (int i = 0; i < s->n && !c && !sb; i++)
            if (s->children[i].sb_pid == pid)
                sb = &s->children[i];
        if (c)
            sup_child_exited(c, status);
        else if (sb)
            sup_standby_exited(sb, status);
        else {
            char why[128];
            sup_describe_status(status, why, sizeof why);
            log_debug("reaped pid %d (a descendant adopted as subreaper): %s", (int)pid, why);
        }
    }
}

static void sup_on_reap_timer(uv_timer_t *t)
{
    sup *s = t->data;
    s->reap_deferred = false;
    sup_reap_all(s);
}

/* SIGCHLD.  A child with a standby is reaped SUP_STANDBY_REAP_DELAY_MS
 * later (sup.h says why), and every other death with it; any other death
 * at once.  waitid WNOWAIT names a dead child without reaping it. */
static void sup_reap(uv_signal_t *h, int signum)
{
    sup *s = h->data;
    (void)signum;
    if (s->reap_deferred)
        return;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (!s->terminating && waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid > 0) {
        for (int i = 0; i < s->n; i++) {
            if (s->children[i].pid == si.si_pid && s->children[i].sb_pid > 0) {
                s->reap_deferred = true;
                uv_timer_start(&s->reap_timer, sup_on_reap_timer, SUP_STANDBY_REAP_DELAY_MS, 0);
                return;
            }
        }
    }
    sup_reap_all(s);
}

static void sup_on_term(uv_signal_t *h, int signum)
{
    sup *s = h->data;
    const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
    if (!s->terminating) {
        log_notice("got %s: stopping the children in reverse start order", name);
        sup_terminate(s, SUP_EXIT_OK);
        return;
    }
    /* as an OTP supervisor: the shutdown already under way keeps each
     * child's shutdown time; SIGKILL (of etssup) is the way to cut it short */
    log_notice("got %s again while stopping: still stopping in order, each child within its shutdown time", name);
}

static char *sup_exe_dir(void)
{
    static char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0)
        return NULL;
    buf[n] = 0;
    return dirname(buf);
}

/* The children of an etssup that was SIGKILLed die by PDEATHSIG a few
 * milliseconds later, still holding their own instance locks meanwhile; a new
 * etssup started in that window would see its etsmgrd refuse to start.  So
 * every child inherits one shared flock on DIR/etssup.generation (the fd is
 * deliberately not close-on-exec), and a new etssup first takes that lock
 * exclusively: it gets it only once every child of the previous run is gone.
 * Returns the fd, now held shared for our own children, or -1. */
static int sup_generation_lock(const rt_paths *rt)
{
    char path[RT_PATH_MAX];
    if (rt_path(rt, "etssup.generation", path, sizeof path) < 0) {
        log_error("the runtime dir %s is too long for its file paths; use a shorter one", rt->dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) {
        log_error("open %s: %s", path, strerror(errno));
        return -1;
    }
    const int wait_ms = 5000;
    bool told = false;
    for (int waited = 0;; waited += 10) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            break;
        if (errno != EWOULDBLOCK && errno != EINTR) {
            log_error("flock %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        if (waited >= wait_ms) {
            log_error("processes started by an earlier etssup still hold %s after %d ms; "
                      "find them with 'fuser %s' and stop them", path, wait_ms, path);
            close(fd);
            return -1;
        }
        if (!told) {
            log_notice("waiting for the children of an earlier etssup to exit");
            told = true;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    if (flock(fd, LOCK_SH) < 0) { /* converts: children share it with us */
        log_error("flock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"runtime-dir", required_argument, NULL, 'd'},
        {"instance", required_argument, NULL, 'i'}, {"log-level", required_argument, NULL, 'l'},
        {"check-config", no_argument, NULL, 'n'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0}};
    const char *config = NULL, *opt_dir = NULL, *opt_instance = NULL, *opt_level = NULL;
    bool check_only = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:d:i:l:nhV", opts, NULL)) != -1) {
        switch (o) {
        case 'c': config = optarg; break;
        case 'd': opt_dir = optarg; break;
        case 'i': opt_instance = optarg; break;
        case 'l': opt_level = optarg; break;
        case 'n': check_only = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("etssup %s\n", ETSMGR_VERSION_STRING); return 0;
        default: usage(stderr); return SUP_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "etssup: unexpected argument \"%s\" (etssup takes options only)\n", argv[optind]);
        usage(stderr);
        return SUP_EXIT_USAGE;
    }
    int level = LOG_LVL_INFO;
    if (opt_level && (level = log_level_parse(opt_level)) < 0) {
        fprintf(stderr, "etssup: --log-level %s: must be debug, info, notice, warning or error\n", opt_level);
        return SUP_EXIT_USAGE;
    }
    log_init("etssup", (enum log_level)level);

    sup_config cfg;
    int nerr = sup_config_load(config, sup_exe_dir(), &cfg, stderr);
    if (nerr) {
        fprintf(stderr, "etssup: %d mistake%s in the configuration%s%s; nothing was started\n", nerr,
                nerr == 1 ? "" : "s", config ? " " : " (built-in default)", config ? config : "");
        return SUP_EXIT_CONFIG;
    }
    if (check_only) {
        printf("etssup: configuration %s is valid: %d children, strategy %s, intensity %d in %d s\n",
               config ? config : "(built-in default)", cfg.nchildren, sup_strategy_name(cfg.strategy),
               cfg.intensity, cfg.period_s);
        sup_config_free(&cfg);
        return 0;
    }

    sup *s = &g_sup;
    char err[1024];
    if (rt_resolve(opt_dir, opt_instance, &s->rt, err, sizeof err) < 0 || rt_ensure_dir(&s->rt, err, sizeof err) < 0) {
        log_error("%s", err);
        return sup_give_up(s, &cfg, SUP_EXIT_FAILURE);
    }
    char lock_path[RT_PATH_MAX];
    if (rt_path(&s->rt, "etssup.lock", lock_path, sizeof lock_path) < 0) {
        log_error("the runtime dir %s is too long for its socket paths; use a shorter one", s->rt.dir);
        return sup_give_up(s, &cfg, SUP_EXIT_FAILURE);
    }
    s->lock_fd = sock_lock_file(lock_path);
    if (s->lock_fd < 0) {
        if (errno == EWOULDBLOCK)
            log_error("another etssup is already running for instance %s (%s is locked); stop it first",
                      s->rt.instance, lock_path);
        else
            log_error("cannot lock %s: %s", lock_path, strerror(errno));
        return sup_give_up(s, &cfg, SUP_EXIT_FAILURE);
    }
    s->gen_fd = sup_generation_lock(&s->rt);
    if (s->gen_fd < 0)
        return sup_give_up(s, &cfg, SUP_EXIT_FAILURE);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        log_warning("prctl(PR_SET_CHILD_SUBREAPER): %s; orphaned grandchildren will not be reaped here",
                    strerror(errno));
    signal(SIGPIPE, SIG_IGN);

    s->loop = uv_default_loop();
    s->cfg = &cfg;
    s->pid = getpid();
    s->n = cfg.nchildren;
    s->children = calloc(s->n, sizeof *s->children);
    s->restart_ms = calloc((size_t)cfg.intensity + 1, sizeof *s->restart_ms);
    if (!s->children || !s->restart_ms) {
        log_error("out of memory");
        return sup_give_up(s, &cfg, SUP_EXIT_FAILURE);
    }
    for (int i = 0; i < s->n; i++) {
        sup_child *c = &s->children[i];
        c->cfg = &cfg.children[i];
        c->sup = s;
        c->index = i;
        c->want_run = true;
        c->notify_fd = -1;
        uv_timer_init(s->loop, &c->timer);
        c->timer.data = c;
        uv_timer_init(s->loop, &c->sb_timer);
        c->sb_timer.data = c;
    }
    uv_signal_init(s->loop, &s->sig_chld);
    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    s->sig_chld.data = s->sig_term.data = s->sig_int.data = s;
    uv_timer_init(s->loop, &s->reap_timer);
    s->reap_timer.data = s;
    int r = uv_signal_start(&s->sig_chld, sup_reap, SIGCHLD);
    if (r == 0)
        r = uv_signal_start(&s->sig_term, sup_on_term, SIGTERM);
    if (r == 0)
        r = uv_signal_start(&s->sig_int, sup_on_term, SIGINT);
    if (r < 0) {
        log_error("uv_signal_start: %s", uv_strerror(r));
        return sup_give_up(s, &cfg, SUP_EXIT_FAILURE);
    }
    int so = sup_sockets_open(s);
    bool ok = so == 0;
    for (int i = 0; ok && i < s->n; i++)
        if (s->children[i].cfg->ready == SUP_READY_NOTIFY)
            ok = sup_child_notify_open(&s->children[i]) == 0;
    if (ok && sup_watchdog_start(s) < 0)
        ok = false;
    if (ok && sup_control_start(s, err, sizeof err) < 0) {
        log_error("control socket: %s", err);
        ok = false;
    }
    if (!ok) {
        for (int i = 0; i < s->n; i++)
            sup_child_notify_close(&s->children[i]);
        sup_sockets_close(s);
        sup_control_stop(s);
        sup_watchdog_stop(s);
        return sup_give_up(s, &cfg, so == -2 ? SUP_EXIT_CONFIG : SUP_EXIT_FAILURE);
    }
    log_notice("supervising %d children in %s, instance %s (strategy %s, intensity %d in %d s)", s->n, s->rt.dir,
               s->rt.instance, sup_strategy_name(cfg.strategy), cfg.intensity, cfg.period_s);
    sup_advance(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    int code = s->exit_code;
    uv_loop_close(s->loop);
    free(s->children);
    free(s->restart_ms);
    sup_config_free(&cfg);
    close(s->gen_fd);
    close(s->lock_fd);
    return code;
}

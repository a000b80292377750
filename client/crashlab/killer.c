/* SPDX-License-Identifier: Apache-2.0 */
/* killer.c: the kills, one at a time, each with its recovery measured.
 *
 * The schedule (the target of each kill and the pause before it) comes from
 * the seeded generator only, so --seed repeats it exactly; what the system
 * does in between cannot repeat to the microsecond, and the report does not
 * pretend it does.  The pause is counted from the moment the previous kill
 * was fully recovered: the supervisor said every child runs again AND a
 * count was acknowledged after that.  Kills therefore never pile up on a
 * system that is still restarting, every kill's recovery is measured on its
 * own, and a system that does not recover within --recovery-timeout is a
 * failure reported in words, not a hang.
 *
 * The pids come from etssup's status op just before each kill.  "both"
 * sends SIGKILL to etsmgrd and then to etscounterd while etssup is held in
 * SIGSTOP, and lets etssup go on only once both are dead, so that it sees
 * the two deaths at once.
 * "etssup" kills the supervisor, whose children die of their PDEATHSIG; the
 * lab then starts a new etssup with the same config and times its READY=1.
 *
 * The first acknowledged count after a kill is found afterwards in the
 * workers' records (lab_kill_acks): when the kill took etscounterd down,
 * only a reply that came on a connection opened after the kill counts, since
 * a reply the old process wrote just before dying may still be read after. */
#include "lab.h"
#include "procstat.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* a recovery this slow is worth a note in the report (not a failure) */
#define LAB_SLOW_NS 1000000000LL
/* how long "both" holds etssup stopped, at most, waiting for the two deaths */
#define LAB_BOTH_WAIT_MS 5000

/* A pidfd for pid (-1 when the kernel has none: then /proc is asked). */
static int lab_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Waits until pid has exited (true), at most ms. */
static bool lab_wait_dead(int pidfd, pid_t pid, int ms)
{
    int64_t deadline = lab_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        if (pidfd >= 0) {
            struct pollfd p = { .fd = pidfd, .events = POLLIN };
            int left = (int)((deadline - lab_now_ns()) / 1000000);
            int r = poll(&p, 1, left > 0 ? left : 0);
            if (r > 0)
                return true;
            if (r < 0 && errno == EINTR)
                continue;
            if (r == 0)
                return false;
            pidfd = -1; /* poll failed: ask /proc */
        }
        if (proc_exited(pid))
            return true;
        if (lab_now_ns() > deadline)
            return false;
        lab_sleep_ms(1);
    }
}

static int lab_add_kill(lab *l, const lab_kill *k)
{
    if (l->nkills == l->kcap) {
        size_t cap = l->kcap ? l->kcap * 2 : 256;
        lab_kill *n = realloc(l->kills, cap * sizeof *n);
        if (!n)
            return -1;
        l->kills = n;
        l->kcap = cap;
    }
    l->kills[l->nkills++] = *k;
    return 0;
}

/* etssup exited without being killed by the lab: say so and start it again,
 * so that the run can still end with a final count.  true when it happened */
static bool lab_sup_died_by_itself(lab *l)
{
    int st;
    if (l->o.attach || !lab_sys_sup_gone(l, &st))
        return false;
    char why[96];
    if (WIFEXITED(st))
        snprintf(why, sizeof why, "exited with status %d%s", WEXITSTATUS(st),
                 WEXITSTATUS(st) == 3 ? " (restart intensity reached)" : "");
    else
        snprintf(why, sizeof why, "was killed by signal %d", WTERMSIG(st));
    lab_fail(l, "etssup %s without being killed by the lab (after %zu kills); see %s", why, l->nkills,
             lab_log_path(l));
    char err[512];
    int64_t ready;
    if (lab_sys_start(l, &ready, err, sizeof err) < 0)
        lab_fail(l, "could not start etssup again to read the final count: %s", err);
    return true;
}

/* sleeps until 'until', reading readiness messages meanwhile */
static void lab_pause(lab *l, int64_t until)
{
    for (;;) {
        int64_t left = until - lab_now_ns();
        if (left <= 0 || lab_interrupted)
            return;
        int ms = (int)(left / 1000000) + 1;
        if (l->notify_fd >= 0) {
            struct pollfd p = { .fd = l->notify_fd, .events = POLLIN };
            if (poll(&p, 1, ms > 50 ? 50 : ms) > 0)
                lab_sys_drain_notify(l);
        } else
            lab_sleep_ms(ms > 50 ? 50 : ms);
    }
}

static bool lab_wait_ack_after(lab *l, int64_t after, int timeout_ms)
{
    int64_t deadline = lab_now_ns() + (int64_t)timeout_ms * 1000000;
    while (atomic_load(&l->last_ack_ns) <= after) {
        if (lab_now_ns() > deadline)
            return false;
        if (lab_interrupted && lab_now_ns() > after + 5000000000LL)
            return false;
        lab_sleep_ms(1);
    }
    return true;
}

/* A signal asked the run to stop: say that the clean-up is under way (it
 * can take half a minute) and how to cut it short. */
static void lab_stop_asked(lab *l)
{
    l->interrupted = true;
    fprintf(stderr, "etsmgr-crashlab: SIG%s: stopping the load and cleaning up after %zu kills; a second signal "
            "ends the lab at once, leaving its system behind\n", sigabbrev_np(lab_interrupted), l->nkills);
}

void lab_killer_run(lab *l)
{
    lab_target targets[LAB_T_N];
    int nt = 0;
    for (int t = 0; t < LAB_T_N; t++)
        if (l->o.targets & (1u << t))
            targets[nt++] = (lab_target)t;
    lab_seed(l->rng, l->o.seed);
    int64_t end = l->o.duration_s > 0 ? l->t0_ns + (int64_t)(l->o.duration_s * 1e9) : INT64_MAX;
    char err[512];
    for (long k = 0;; k++) {
        if (l->o.kills > 0 && k >= l->o.kills)
            break;
        if (lab_interrupted) {
            lab_stop_asked(l);
            break;
        }
        uint64_t r1 = lab_rand(l->rng), r2 = lab_rand(l->rng);
        int span = l->o.interval_max_ms - l->o.interval_min_ms + 1;
        int pause_ms = l->o.interval_min_ms + (int)(r1 % (uint64_t)span);
        lab_target tg = targets[r2 % (uint64_t)nt];
        int64_t wake = lab_now_ns() + (int64_t)pause_ms * 1000000;
        if (wake >= end) {
            lab_pause(l, end);
            break;
        }
        lab_pause(l, wake);
        if (lab_interrupted) {
            lab_stop_asked(l);
            break;
        }
        if (lab_sup_died_by_itself(l))
            break;

        lab_child_info kids[16];
        int n = 0;
        pid_t sup_pid = 0;
        if (lab_sys_status(l, kids, 16, &n, &sup_pid, err, sizeof err) < 0) {
            lab_fail(l, "before kill %ld: the status op failed: %s", k + 1, err);
            break;
        }
        pid_t mgr = 0, ctr = 0, all[16];
        for (int i = 0; i < n; i++) {
            all[i] = kids[i].pid;
            if (strcmp(kids[i].id, "etsmgrd") == 0)
                mgr = kids[i].pid;
            else if (strcmp(kids[i].id, "etscounterd") == 0)
                ctr = kids[i].pid;
        }
        lab_kill kl = { .target = tg, .ready_ns = -1, .ack_ns = -1 };
        switch (tg) {
        case LAB_T_COUNTERD: kl.pids[kl.npids++] = ctr; break;
        case LAB_T_MGRD: kl.pids[kl.npids++] = mgr; break;
        case LAB_T_BOTH:
            kl.pids[kl.npids++] = mgr;
            kl.pids[kl.npids++] = ctr;
            break;
        default: kl.pids[kl.npids++] = l->o.attach ? sup_pid : l->sup_pid; break;
        }
        bool missing = false;
        for (int i = 0; i < kl.npids; i++)
            missing |= kl.pids[i] <= 0;
        if (missing) {
            lab_fail(l, "before kill %ld: etssup's status names no running %s (children: %d)", k + 1,
                     lab_target_name(tg), n);
            break;
        }
        lab_sys_drain_notify(l);
        if (tg == LAB_T_SUP) {
            pthread_mutex_lock(&l->mu);
            l->sup_killed_by_us = true;
            pthread_mutex_unlock(&l->mu);
        }
        /* "both" must be both at once for etssup too: were etssup to run
         * between the two deaths, it would react to the first one alone
         * (one_for_all stops the other child itself).  kill() only queues
         * a SIGKILL, and the victim dies when next scheduled, so stopping
         * etssup around the two kill() calls is not enough: it is held in
         * SIGSTOP until both are really dead (their pidfds, opened before
         * the kills, turn readable at exit), and then sees both deaths in
         * one waitpid round. */
        int pfd[2] = { -1, -1 };
        pid_t frozen = 0;
        if (tg == LAB_T_BOTH && sup_pid > 0) {
            for (int i = 0; i < kl.npids; i++)
                pfd[i] = lab_pidfd_open(kl.pids[i]);
            if (kill(sup_pid, SIGSTOP) == 0)
                frozen = sup_pid;
            else
                lab_note(l, "kill %ld (both): kill(%d, SIGSTOP) of etssup: %s; the two kills are not "
                         "hidden from it", k + 1, (int)sup_pid, strerror(errno));
        }
        kl.t_ns = lab_now_ns();
        for (int i = 0; i < kl.npids; i++)
            if (kill(kl.pids[i], SIGKILL) < 0)
                lab_note(l, "kill %ld (%s): kill(%d, SIGKILL): %s: it had exited already", k + 1,
                         lab_target_name(tg), (int)kl.pids[i], strerror(errno));
        if (frozen) {
            for (int i = 0; i < kl.npids; i++)
                if (!lab_wait_dead(pfd[i], kl.pids[i], LAB_BOTH_WAIT_MS))
                    lab_note(l, "kill %ld (both): pid %d was not dead %d ms after SIGKILL; etssup was let go "
                             "on anyway, and may have seen the two deaths apart", k + 1, (int)kl.pids[i],
                             LAB_BOTH_WAIT_MS);
            if (kill(frozen, SIGCONT) < 0)
                lab_fail(l, "kill(%d, SIGCONT) to let etssup go on after killing both: %s", (int)frozen,
                         strerror(errno));
        }
        for (int i = 0; i < 2; i++)
            if (pfd[i] >= 0)
                close(pfd[i]);
        lab_log(l, "kill %ld: SIGKILL %s (pid %d%s)", k + 1, lab_target_name(tg), (int)kl.pids[0],
                kl.npids > 1 ? " and another" : "");
        int r;
        if (tg == LAB_T_SUP)
            r = lab_sys_restart_sup(l, all, n, &kl.ready_ns, err, sizeof err);
        else
            r = lab_sys_wait_whole(l, kl.pids, kl.npids, l->o.recovery_timeout_ms, &kl.ready_ns, err, sizeof err);
        if (lab_add_kill(l, &kl) < 0) {
            lab_fail(l, "out of memory recording kills");
            break;
        }
        if (r < 0) {
            l->recovery_failed = true;
            if (!lab_sup_died_by_itself(l))
                lab_fail(l, "kill %zu (%s at %.3f s): %s", l->nkills, lab_target_name(tg),
                         lab_ms(kl.t_ns - l->t0_ns) / 1000, err);
            break;
        }
        lab_log(l, "kill %ld: supervisor whole again after %.1f ms", k + 1, lab_ms(kl.ready_ns - kl.t_ns));
        if (kl.ready_ns - kl.t_ns > (int64_t)l->o.recovery_timeout_ms * 1000000) {
            l->recovery_failed = true;
            lab_fail(l, "kill %zu (%s at %.3f s): the supervisor was whole again only after %.0f ms, more than "
                     "--recovery-timeout %d ms", l->nkills, lab_target_name(tg), lab_ms(kl.t_ns - l->t0_ns) / 1000,
                     lab_ms(kl.ready_ns - kl.t_ns), l->o.recovery_timeout_ms);
            break;
        }
        if (kl.ready_ns - kl.t_ns > LAB_SLOW_NS)
            lab_note(l, "kill %zu (%s at %.3f s): slow recovery, the supervisor was whole again only after %.0f ms "
                     "(see the log of etssup around that time)", l->nkills, lab_target_name(tg),
                     lab_ms(kl.t_ns - l->t0_ns) / 1000, lab_ms(kl.ready_ns - kl.t_ns));
        int64_t after = kl.ready_ns > kl.t_ns ? kl.ready_ns : kl.t_ns;
        if (!lab_wait_ack_after(l, after, l->o.recovery_timeout_ms)) {
            if (lab_interrupted)
                l->interrupted = true;
            else {
                l->recovery_failed = true;
                lab_fail(l, "kill %zu (%s at %.3f s): no count was acknowledged within %d ms after the "
                         "supervisor reported every child running", l->nkills, lab_target_name(tg),
                         lab_ms(kl.t_ns - l->t0_ns) / 1000, l->o.recovery_timeout_ms);
            }
            break;
        }
    }
}

/* first ack after t: binary search in each worker's time-ordered record */
void lab_kill_acks(lab *l)
{
    for (size_t k = 0; k < l->nkills; k++) {
        lab_kill *kl = &l->kills[k];
        bool fresh = kl->target != LAB_T_MGRD; /* etscounterd died too */
        int64_t best = -1;
        for (int i = 0; i < l->o.workers; i++) {
            const lab_worker *w = &l->w[i];
            size_t lo = 0, hi = w->nacks;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (w->acks[mid].t_ns > kl->t_ns)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            for (size_t j = lo; j < w->nacks; j++) {
                if (best >= 0 && w->acks[j].t_ns >= best)
                    break;
                if (!fresh || w->acks[j].conn_ns > kl->t_ns) {
                    best = w->acks[j].t_ns;
                    break;
                }
            }
        }
        kl->ack_ns = best;
    }
}

/* SPDX-License-Identifier: Apache-2.0 */
/* strategy.c: OTP restart semantics, as one driver and a few event handlers.
 *
 * The events (a child was reaped, became ready, timed out, a restart was
 * asked for) only change flags on the children: want_run (it should run)
 * and pending_stop (it must be stopped first).  sup_advance then does the
 * next single step, looking at the whole table:
 *
 *   1. the highest child that must stop (everyone while terminating) is
 *      stopped, and nothing else happens until it is reaped: reverse order;
 *   2. while a child is being stopped, wait;
 *   3. else the lowest child that is not up decides: if it is starting
 *      (ready=notify, no READY=1 yet), the later ones wait for it; if it is
 *      idle and should run, it is started, even while a later child is still
 *      starting (that child may be waiting for this one).
 *
 * So one_for_all is "mark every other child pending_stop", rest_for_one is
 * "mark the later ones", one_for_one marks none, and the ordering falls out
 * of the driver.  A temporary child stopped because of a sibling is not
 * started again (OTP does the same).
 *
 * Intensity is OTP's: the times of the last intensity+1 restarts are kept
 * in a ring; when the oldest of them is less than period seconds old, there
 * were more than intensity restarts within period, and etssup gives up:
 * it stops everything (reverse order) and exits SUP_EXIT_INTENSITY so that
 * whatever supervises etssup (systemd Restart=) takes over.
 *
 * A child that fails its first start (exits or times out before READY=1)
 * makes etssup give up at once with SUP_EXIT_START, like an OTP supervisor
 * whose init fails; once everything has been up, a failed start is just
 * another death and counts towards the intensity.  A child marked
 * pending_stop (or any child while terminating) has no start timeout: it
 * waits for its turn, and if it exits first, that is its stop, not a death
 * (the restart that marked it is the one counted).
 *
 * Hot standby (a child with "standby": true): once the child runs, a second
 * process of the same command with --standby appended is kept beside it,
 * sharing its listening and notify sockets.  When the child dies and the
 * strategy restarts it alone, the standby is promoted instead of a fork:
 * its pid becomes the child's, the child is "starting" until the standby's
 * READY=1 (sent once it owns the table; it may arrive before the old child
 * is reaped, hence sb_ready), the restart counts against the intensity as
 * usual, and a fresh standby is started once the child runs again.  A
 * standby that dies is replaced (that also counts: a standby that cannot
 * start must not loop for ever) and the child never notices; when both die
 * at once, the child is restarted the ordinary way and the two deaths count
 * as two, as OTP counts each child's exit.  Whenever the
 * child itself is to be stopped (terminating, restart on request, a sibling's
 * strategy) its standby is SIGKILLed first and reaped, so it cannot take over
 * from the child being stopped; it holds nothing of its own while waiting.
 * A marked child that dies before its turn loses its standby the same way
 * (the stop loop no longer sees it as marked, and the start loop waits for
 * an idle child's standby to go). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "log.h"
#include "notify.h"
#include "sup.h"

uint64_t sup_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *sup_state_name(sup_state st)
{
    switch (st) {
    case SUP_ST_IDLE: return "stopped";
    case SUP_ST_STARTING: return "starting";
    case SUP_ST_RUNNING: return "running";
    case SUP_ST_STOPPING: return "stopping";
    }
    return "?";
}

sup_child *sup_find_child(sup *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->children[i].cfg->id, id) == 0)
            return &s->children[i];
    return NULL;
}

void sup_notify_status(sup *s)
{
    int running = 0;
    for (int i = 0; i < s->n; i++)
        running += s->children[i].state == SUP_ST_RUNNING;
    if (s->terminating)
        notify_sendf("STOPPING=1\nSTATUS=stopping: %d of %d children still running", running, s->n);
    else if (running == s->n)
        notify_sendf("%sSTATUS=%d of %d children running, %u restarts", s->ready_once ? "" : "READY=1\n", running,
                     s->n, s->nrestarts);
    else
        notify_sendf("STATUS=%d of %d children running, %u restarts", running, s->n, s->nrestarts);
}

/* Records a restart; true when it is one too many. */
static bool sup_intensity_exceeded(sup *s)
{
    unsigned cap = (unsigned)s->cfg->intensity + 1;
    uint64_t now = sup_now_ms();
    s->restart_ms[s->nrestarts % cap] = now;
    s->nrestarts++;
    if (s->nrestarts < cap)
        return false;
    uint64_t oldest = s->restart_ms[s->nrestarts % cap];
    return now - oldest < (uint64_t)s->cfg->period_s * 1000u;
}

/* restarts within the current period (for status) */
unsigned sup_recent_restarts(sup *s)
{
    unsigned cap = (unsigned)s->cfg->intensity + 1, n = 0;
    uint64_t now = sup_now_ms();
    for (unsigned i = 0; i < cap && i < s->nrestarts; i++)
        n += now - s->restart_ms[i] < (uint64_t)s->cfg->period_s * 1000u;
    return n;
}

void sup_terminate(sup *s, int code)
{
    if (!s->terminating) {
        s->terminating = true;
        s->exit_code = code;
        for (int i = 0; i < s->n; i++)
            if (s->children[i].waiter)
                sup_control_answer(&s->children[i], PROTO_E_STOPPING, "etssup is stopping; the child is not restarted");
        sup_notify_status(s);
    }
    sup_advance(s);
}

static void sup_close_cb(uv_handle_t *h)
{
    (void)h;
}

static void sup_finish_cb(uv_timer_t *t)
{
    sup *s = t->data;
    uv_close((uv_handle_t *)t, sup_close_cb);
    sup_control_stop(s);
    sup_watchdog_stop(s);
    for (int i = 0; i < s->n; i++) {
        sup_child *c = &s->children[i];
        sup_child_notify_close(c);
        uv_close((uv_handle_t *)&c->timer, sup_close_cb);
        uv_close((uv_handle_t *)&c->sb_timer, sup_close_cb);
    }
    sup_sockets_close(s);
    uv_close((uv_handle_t *)&s->sig_chld, sup_close_cb);
    uv_close((uv_handle_t *)&s->reap_timer, sup_close_cb);
    uv_close((uv_handle_t *)&s->sig_term, sup_close_cb);
    uv_close((uv_handle_t *)&s->sig_int, sup_close_cb);
}

static uv_timer_t g_finish_timer;

/* Everything is stopped.  The teardown waits one loop turn so that replies
 * already queued (the answer to "stop") are written before the control
 * socket closes: conn.c flushes in the check phase of the iteration that
 * queued them, and a 0 ms timer runs in the next one. */
void sup_finish(sup *s)
{
    if (s->finished)
        return;
    s->finished = true;
    if (s->exit_code == SUP_EXIT_OK)
        log_notice("all children stopped; exiting");
    else
        log_error("all children stopped; exiting with status %d (%s%s%s)", s->exit_code,
                  s->exit_code == SUP_EXIT_INTENSITY ? "restart intensity reached"
                  : s->exit_code == SUP_EXIT_START   ? "a child failed its initial start"
                                                     : "failure",
                  s->exit_why[0] ? ": " : "", s->exit_why);
    uv_timer_init(s->loop, &g_finish_timer);
    g_finish_timer.data = s;
    uv_timer_start(&g_finish_timer, sup_finish_cb, 0, 0);
}

static void standby_kill(sup_child *c);

/* The last lines of the log are what systemctl status shows: the final one
 * says why etssup gives up, not only which limit it hit. */
static void sup_exit_why(sup *s, const sup_child *c, const char *err)
{
    snprintf(s->exit_why, sizeof s->exit_why, "child %s cannot be started: %s", c->cfg->id, err);
}

static void sup_standby_due(uv_timer_t *t)
{
    sup_child *c = t->data;
    sup_advance(c->sup);
}

/* A standby for every running child that should have one and has none;
 * after a takeover, only SUP_STANDBY_DELAY_MS later. */
static void sup_standby_fill(sup *s)
{
    uint64_t now = sup_now_ms();
    for (int i = 0; i < s->n; i++) {
        sup_child *c = &s->children[i];
        if (!c->cfg->standby || c->sb_pid > 0 || c->state != SUP_ST_RUNNING || c->pending_stop)
            continue;
        if (now < c->sb_after_ms) {
            if (!uv_is_active((uv_handle_t *)&c->sb_timer))
                uv_timer_start(&c->sb_timer, sup_standby_due, c->sb_after_ms - now, 0);
            continue;
        }
        char err[512];
        if (sup_child_spawn_standby(c, err, sizeof err) < 0) {
            /* the child still runs; the next change of state tries again */
            log_error("cannot start the standby of child %s: %s", c->cfg->id, err);
            continue;
        }
        log_info("started a standby for child %s (pid %d)", c->cfg->id, (int)c->sb_pid);
    }
}

void sup_advance(sup *s)
{
    for (;;) {
        if (s->finished)
            return;
        for (int i = s->n - 1; i >= 0; i--) {
            sup_child *c = &s->children[i];
            if (c->state == SUP_ST_IDLE && c->sb_pid <= 0)
                continue;
            if (s->terminating || c->pending_stop) {
                if (c->sb_pid > 0) {
                    standby_kill(c);
                    return; /* its standby first: it must not take over */
                }
                if (c->state != SUP_ST_STOPPING && c->state != SUP_ST_IDLE)
                    sup_child_stop(c, false);
                if (c->state == SUP_ST_IDLE)
                    continue;
                return; /* one at a time, highest first */
            }
        }
        if (s->terminating) {
            sup_finish(s);
            return;
        }
        for (int i = 0; i < s->n; i++)
            if (s->children[i].state == SUP_ST_STOPPING)
                return;
        sup_standby_fill(s);
        /* The lowest child that is not up decides: one still starting makes
         * the later ones wait; an idle one is started now, even while a
         * later child waits for its READY=1, since that child may be waiting
         * for this one (etscounterd waits for etsmgrd): waiting in turn
         * would stall both until the start timeout. */
        sup_child *next = NULL;
        for (int i = 0; i < s->n && !next; i++) {
            if (s->children[i].state == SUP_ST_STARTING)
                return;
            if (s->children[i].state == SUP_ST_IDLE && s->children[i].want_run && s->children[i].sb_pid > 0)
                return; /* its old standby first goes, or it would own the table */
            if (s->children[i].state == SUP_ST_IDLE && s->children[i].want_run)
                next = &s->children[i];
        }
        if (!next) {
            bool all = true;
            for (int i = 0; i < s->n; i++)
                all &= s->children[i].state == SUP_ST_RUNNING || !s->children[i].want_run;
            if (all && !s->ready_once) {
                sup_notify_status(s);
                s->ready_once = true;
                log_notice("all %d children are running", s->n);
            } else if (all)
                sup_notify_status(s);
            return;
        }
        char err[512];
        int sr = sup_child_spawn(next, err, sizeof err);
        if (sr < 0) {
            log_error("cannot start child %s: %s", next->cfg->id, err);
            snprintf(next->last_exit, sizeof next->last_exit, "failed to start: %s", err);
            if (!s->ready_once) {
                sup_exit_why(s, next, err);
                log_error("child %s failed its initial start: stopping the others and exiting with status %d",
                          next->cfg->id, SUP_EXIT_START);
                next->want_run = false;
                sup_terminate(s, SUP_EXIT_START);
                return;
            }
            if (next->waiter)
                sup_control_answer(next, PROTO_E_START_FAILED, err);
            if (next->cfg->restart == SUP_TEMPORARY) {
                /* started on request (its initial start is dealt with
                 * above): never restarted, so not retried, and the request
                 * is not counted towards the intensity */
                log_error("child %s (restart type temporary) is not started again", next->cfg->id);
                next->want_run = false;
                continue;
            }
            if (sup_intensity_exceeded(s)) {
                /* tried again at once, as OTP does, so a program that
                 * cannot be executed spends the intensity within
                 * milliseconds: the line names it, and a higher intensity
                 * is no cure for it */
                if (sr == -2)
                    log_error("restart intensity reached (more than %d restarts in %d s): child %s cannot be "
                              "started, its program cannot be executed (%s); make it executable or fix argv[0] "
                              "in the config (etssup --check-config checks it); stopping every child, then "
                              "exiting %d",
                              s->cfg->intensity, s->cfg->period_s, next->cfg->id, err, SUP_EXIT_INTENSITY);
                else
                    log_error("restart intensity reached (more than %d restarts in %d s): child %s cannot be "
                              "started (%s); stopping every child, then exiting %d",
                              s->cfg->intensity, s->cfg->period_s, next->cfg->id, err, SUP_EXIT_INTENSITY);
                sup_exit_why(s, next, err);
                next->want_run = false;
                sup_terminate(s, SUP_EXIT_INTENSITY);
                return;
            }
            continue; /* try again: the intensity ends a loop of failures */
        }
        sup_child_started(next);
        if (next->state == SUP_ST_STARTING)
            return;
    }
}

void sup_child_started(sup_child *c)
{
    if (c->cfg->ready == SUP_READY_NOTIFY) {
        c->state = SUP_ST_STARTING;
        log_info("started child %s (pid %d), waiting up to %d ms for READY=1", c->cfg->id, (int)c->pid,
                 c->cfg->start_timeout_ms);
        sup_child_timer(c, (uint64_t)c->cfg->start_timeout_ms);
    } else {
        log_info("started child %s (pid %d)", c->cfg->id, (int)c->pid);
        c->state = SUP_ST_STARTING;
        sup_child_ready(c);
    }
}

void sup_child_ready(sup_child *c)
{
    uv_timer_stop(&c->timer);
    c->state = SUP_ST_RUNNING;
    if (c->cfg->ready == SUP_READY_NOTIFY)
        log_info("child %s (pid %d) is ready", c->cfg->id, (int)c->pid);
    /* one marked to be stopped (a sibling's restart came after the
     * request) is not the incarnation the request waits for: it is
     * answered by the next one's readiness, or, not started again, by its
     * stop (sup_child_exited) */
    if (c->waiter && !c->pending_stop)
        sup_control_answer(c, PROTO_OK, NULL);
    sup_advance(c->sup);
}

void sup_start_timeout(sup_child *c)
{
    if (c->pending_stop || c->sup->terminating) {
        /* it waits to be stopped, in reverse order and with its shutdown
         * time, maybe behind a later child still stopping: a SIGKILL now
         * would break that order, and count a second restart for the death
         * that is restarting it anyway */
        log_debug("child %s (pid %d): no READY=1 within %d ms, but it waits to be stopped anyway", c->cfg->id,
                  (int)c->pid, c->cfg->start_timeout_ms);
        return;
    }
    log_error("child %s (pid %d) did not send READY=1 within %d ms: killing it", c->cfg->id, (int)c->pid,
              c->cfg->start_timeout_ms);
    c->start_failed = true;
    c->state = SUP_ST_STOPPING;
    sup_child_kill(c, SIGKILL);
}

/* True when c's standby died on its own (not SIGKILLed by us) and was not
 * reaped yet, the child being dead too (both killed at once): it is reaped
 * here, and the child's restart falls back to the ordinary way. */
static bool standby_reap_dead(sup_child *c)
{
    if (c->sb_pid <= 0 || c->sb_stopping)
        return false;
    int st;
    pid_t r;
    while ((r = waitpid(c->sb_pid, &st, WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        return false;
    char why[128];
    if (r == c->sb_pid)
        sup_describe_status(st, why, sizeof why);
    else
        snprintf(why, sizeof why, "is gone (waitpid: %s)", strerror(errno));
    log_warning("the standby of child %s (pid %d) %s as well: an ordinary restart", c->cfg->id, (int)c->sb_pid,
                why);
    c->sb_pid = 0;
    c->sb_ready = false;
    return true;
}

/* True when c has a standby that can be promoted. */
static bool standby_alive(sup_child *c)
{
    return c->sb_pid > 0 && !c->sb_stopping && !standby_reap_dead(c);
}

/* SIGKILL of c's standby, reaped later by sup_standby_exited */
static void standby_kill(sup_child *c)
{
    if (c->sb_pid <= 0 || c->sb_stopping)
        return;
    log_info("stopping the standby of child %s (pid %d) with SIGKILL", c->cfg->id, (int)c->sb_pid);
    c->sb_stopping = true;
    if (kill(c->sb_pid, SIGKILL) < 0 && errno != ESRCH)
        log_warning("kill(%d, SIGKILL) of the standby of %s: %s", (int)c->sb_pid, c->cfg->id, strerror(errno));
}

/* The standby becomes the child: starting until its READY=1. */
static void sup_standby_promote(sup_child *c)
{
    c->sb_after_ms = sup_now_ms() + SUP_STANDBY_DELAY_MS;
    c->pid = c->sb_pid;
    c->started_ms = c->sb_started_ms;
    c->sb_pid = 0;
    c->state = SUP_ST_STARTING;
    c->ever_started = true;
    c->status[0] = 0;
    c->wd_last_ms = sup_now_ms();
    c->wd_silent = false;
    sup_child_timer(c, (uint64_t)c->cfg->start_timeout_ms);
}

void sup_standby_exited(sup_child *c, int status)
{
    sup *s = c->sup;
    pid_t pid = c->sb_pid;
    bool ours = c->sb_stopping;
    c->sb_pid = 0;
    c->sb_stopping = false;
    c->sb_ready = false;
    char why[128];
    sup_describe_status(status, why, sizeof why);
    if (ours || s->terminating || c->pending_stop) {
        log_info("the standby of child %s (pid %d) stopped: %s", c->cfg->id, (int)pid, why);
        sup_advance(s);
        return;
    }
    /* the child may have died at the same moment: then it is restarted the
     * ordinary way, now that there is no standby to promote */
    if (c->pid > 0) {
        int st;
        pid_t r;
        while ((r = waitpid(c->pid, &st, WNOHANG)) < 0 && errno == EINTR)
            ;
        if (r == c->pid) {
            log_warning("the standby of child %s (pid %d) %s", c->cfg->id, (int)pid, why);
            c->sb_died = true; /* counted with the child's restart */
            sup_child_exited(c, st);
            return;
        }
    }
    if (sup_intensity_exceeded(s)) {
        log_error("the standby of child %s (pid %d) %s; restart intensity reached (more than %d restarts in %d s; "
                  "raise \"intensity\" or \"period\" in the config): stopping every child, then exiting %d",
                  c->cfg->id, (int)pid, why, s->cfg->intensity, s->cfg->period_s, SUP_EXIT_INTENSITY);
        sup_terminate(s, SUP_EXIT_INTENSITY);
        return;
    }
    log_error("the standby of child %s (pid %d) %s: starting a new standby (restart %u of at most %d in %d s)",
              c->cfg->id, (int)pid, why, sup_recent_restarts(s), s->cfg->intensity, s->cfg->period_s);
    sup_advance(s);
}

void sup_child_exited(sup_child *c, int status)
{
    sup *s = c->sup;
    sup_state prev = c->state;
    pid_t pid = c->pid;
    bool timed_out = c->start_failed;
    bool failed_start = timed_out || prev == SUP_ST_STARTING;
    bool sb_died = c->sb_died;
    c->sb_died = false;
    uv_timer_stop(&c->timer);
    c->pid = 0;
    c->state = SUP_ST_IDLE;
    c->start_failed = false;
    /* whatever is left of its process group goes with it */
    kill(-pid, SIGKILL);

    char why[128];
    if (timed_out)
        snprintf(why, sizeof why, "did not send READY=1 within %d ms", c->cfg->start_timeout_ms);
    else
        sup_describe_status(status, why, sizeof why);
    snprintf(c->last_exit, sizeof c->last_exit, "%s", why);
    const char *rname = sup_restart_name(c->cfg->restart);

    /* one that waits to be stopped (a sibling's restart, a restart on
     * request) and exits first, starting or not, is stopped: it is not
     * another death, counted or acted on (the restart marking it is) */
    if ((prev == SUP_ST_STOPPING && !timed_out) || c->pending_stop) {
        if (prev == SUP_ST_STOPPING)
            log_info("child %s (pid %d) stopped: %s", c->cfg->id, (int)pid, why);
        else
            log_warning("child %s (pid %d) %s while waiting to be stopped", c->cfg->id, (int)pid, why);
        c->pending_stop = false;
        /* its standby, if it died before the stop loop (which kills the
         * standbys of marked children) reached it: no longer marked, it
         * would be left alive, and the start loop waits for it to go */
        standby_kill(c);
        /* a temporary child restarted on request, stopped by a sibling's
         * restart before it was ready: no readiness comes to answer it */
        if (!c->want_run && c->waiter)
            sup_control_answer(c, PROTO_E_EXITED, "stopped by the restart of its siblings and not started again "
                                                  "(restart type temporary)");
        sup_advance(s);
        return;
    }
    if (s->terminating) {
        log_warning("child %s (pid %d) %s while etssup is stopping", c->cfg->id, (int)pid, why);
        sup_advance(s);
        return;
    }
    if (failed_start && !s->ready_once) {
        log_error("supervisor report: child %s (pid %d) failed to start: %s; restart type %s; action: stop the "
                  "other children and exit with status %d (an initial start failed)",
                  c->cfg->id, (int)pid, why, rname, SUP_EXIT_START);
        c->want_run = false;
        sup_terminate(s, SUP_EXIT_START);
        return;
    }
    bool normal = !failed_start && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    bool restart = c->cfg->restart == SUP_PERMANENT || (c->cfg->restart == SUP_TRANSIENT && !normal);
    if (!restart) {
        log_msg(normal ? LOG_LVL_NOTICE : LOG_LVL_ERROR,
                "supervisor report: child %s (pid %d) %s; restart type %s; action: none, it is not restarted",
                c->cfg->id, (int)pid, why, rname);
        c->want_run = false;
        c->pending_stop = false;
        standby_kill(c);
        if (c->waiter)
            sup_control_answer(c, PROTO_E_EXITED, why);
        sup_advance(s);
        return;
    }
    /* a standby that died with it (reaped here, or first by its own
     * handler: sb_died) is a death of its own, and is replaced: it counts
     * too, as an OTP supervisor counts the exit of each child, and as it
     * counts when it dies alone */
    sb_died = standby_reap_dead(c) || sb_died;
    if (sup_intensity_exceeded(s) || (sb_died && sup_intensity_exceeded(s))) {
        log_error("child %s (pid %d) %s; restart intensity reached (more than %d restarts in %d s; raise "
                  "\"intensity\" or \"period\" in the config): stopping the others, then exiting %d",
                  c->cfg->id, (int)pid, why, s->cfg->intensity, s->cfg->period_s, SUP_EXIT_INTENSITY);
        sup_terminate(s, SUP_EXIT_INTENSITY);
        return;
    }
    c->restarts++;
    char also[512] = "";
    for (int i = 0; i < s->n; i++) {
        sup_child *o = &s->children[i];
        bool hit = (s->cfg->strategy == SUP_ONE_FOR_ALL && i != c->index) ||
                   (s->cfg->strategy == SUP_REST_FOR_ONE && i > c->index);
        if (!hit || o->state == SUP_ST_IDLE)
            continue;
        /* already to be stopped and started again (a restart request, an
         * earlier sibling's death): one restart, already counted */
        bool counted = o->pending_stop && o->want_run;
        o->pending_stop = true;
        if (o->cfg->restart == SUP_TEMPORARY) {
            o->want_run = false;
            if (counted)
                o->restarts--; /* the request's: it is not started again */
        } else if (!counted)
            o->restarts++;
        size_t l = strlen(also);
        snprintf(also + l, sizeof also - l, "%s%s%s", l ? ", " : "", o->cfg->id,
                 o->cfg->restart == SUP_TEMPORARY ? " (stopped only: temporary)" : "");
    }
    c->pending_stop = false;
    if (!*also && standby_alive(c)) {
        sup_standby_promote(c);
        log_error("child %s (pid %d) %s: its standby (pid %d) takes over (%s, %s; restart %u of at most %d in %d s)",
                  c->cfg->id, (int)pid, why, (int)c->pid, rname, sup_strategy_name(s->cfg->strategy),
                  sup_recent_restarts(s), s->cfg->intensity, s->cfg->period_s);
        if (c->sb_ready)
            sup_child_ready(c); /* it took over before we reaped the old one */
        else
            sup_advance(s);
        return;
    }
    standby_kill(c); /* restarted with its siblings: a fresh standby follows */
    /* the OTP supervisor report's facts, in a line that a terminal wraps less */
    log_error("child %s (pid %d) %s: restarting it%s%s (%s, %s; restart %u of at most %d in %d s)", c->cfg->id,
              (int)pid, why, *also ? " and its siblings " : "", also, rname, sup_strategy_name(s->cfg->strategy),
              sup_recent_restarts(s), s->cfg->intensity, s->cfg->period_s);
    sup_advance(s);
}

int sup_restart_child(sup_child *c, char *err, size_t errlen)
{
    sup *s = c->sup;
    if (s->terminating) {
        snprintf(err, errlen, "etssup is stopping");
        return -1;
    }
    /* already waiting to be stopped and started again (a sibling's
     * restart): the request is that same restart, counted once */
    bool counted = c->pending_stop && c->want_run;
    if (c->start_failed && !c->pending_stop) {
        /* SIGKILLed for its start timeout, not reaped yet: its exit is a
         * failed start all the same, dealt with as one (counted towards
         * the intensity, or exit 4 before everything was up), and the
         * request waits for the restart its restart type calls for.
         * Marked to be stopped, that exit would pass for the stop the
         * request asked for, and the failed start would be forgiven. */
        log_notice("restarting child %s (pid %d) on request: it is being killed for sending no READY=1 within "
                   "%d ms, a failed start; the request is answered by the restart that follows it",
                   c->cfg->id, (int)c->pid, c->cfg->start_timeout_ms);
        return 0;
    }
    c->want_run = true;
    if (c->state != SUP_ST_IDLE) {
        log_notice("restarting child %s (pid %d) on request%s", c->cfg->id, (int)c->pid,
                   counted ? " (already to be restarted with its siblings)" : "");
        c->pending_stop = true;
        if (!counted)
            c->restarts++;
    } else
        log_notice("starting child %s on request", c->cfg->id);
    sup_advance(s);
    return 0;
}

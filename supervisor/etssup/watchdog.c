/* SPDX-License-Identifier: Apache-2.0 */
/* watchdog.c: etssup's side of systemd's watchdog (WatchdogSec=).
 *
 * systemd kills and restarts the service when WATCHDOG=1 stops coming.
 * etssup sends it from a timer of its own loop, every half period, so a
 * stuck (or SIGSTOPped) etssup stops it by itself.  But a stuck child must
 * stop it too, or systemd would never see it: so each child that speaks
 * the notify protocol gets the same WATCHDOG_USEC and pings etssup's
 * private notify socket (notify_watchdog_start does that in the daemons),
 * and etssup passes its own ping on only while every running child has
 * pinged within one period (a child just started counts as having pinged
 * at its start; one that is starting, stopping or dead is etssup's own
 * business, bounded by its start timeout, shutdown time and intensity).
 * The first period without a ping from a child is logged once, naming it,
 * so the journal says why systemd is about to restart the service. */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "notify.h"
#include "sup.h"

static uv_timer_t wd_timer;
static bool wd_on;

static void wd_cb(uv_timer_t *t)
{
    sup *s = t->data;
    uint64_t now = sup_now_ms(), period = s->wd_usec / 1000;
    for (int i = 0; i < s->n; i++) {
        sup_child *c = &s->children[i];
        if (c->state != SUP_ST_RUNNING || c->cfg->ready != SUP_READY_NOTIFY)
            continue;
        uint64_t last = c->wd_last_ms > c->started_ms ? c->wd_last_ms : c->started_ms;
        if (now - last > period) {
            if (!c->wd_silent)
                log_error("child %s (pid %d) sent no WATCHDOG=1 for %llu ms: withholding etssup's own, so "
                          "systemd restarts the service",
                          c->cfg->id, (int)c->pid, (unsigned long long)(now - last));
            c->wd_silent = true;
            return;
        }
        c->wd_silent = false;
    }
    notify_send("WATCHDOG=1");
}

int sup_watchdog_start(sup *s)
{
    s->wd_usec = notify_watchdog_usec();
    if (s->wd_usec == 0)
        return 0;
    uint64_t every = s->wd_usec / 2000 ? s->wd_usec / 2000 : 1;
    int r = uv_timer_init(s->loop, &wd_timer);
    if (r == 0) {
        wd_timer.data = s;
        r = uv_timer_start(&wd_timer, wd_cb, 0, every);
    }
    if (r < 0) {
        log_error("cannot start the watchdog timer: %s", uv_strerror(r));
        return -1;
    }
    uv_unref((uv_handle_t *)&wd_timer);
    wd_on = true;
    log_info("watchdog: WATCHDOG=1 every %llu ms while every child pings within %llu ms",
             (unsigned long long)every, (unsigned long long)(s->wd_usec / 1000));
    return 0;
}

void sup_watchdog_stop(sup *s)
{
    (void)s;
    if (wd_on && !uv_is_closing((uv_handle_t *)&wd_timer))
        uv_close((uv_handle_t *)&wd_timer, NULL);
    wd_on = false;
}

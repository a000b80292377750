/* SPDX-License-Identifier: Apache-2.0 */
/* busypoll.c: adaptive polling of etscounterd's event loop (--poll-us N).
 *
 * Why.  With one connection, a request costs little work (a few µs) and a
 * whole round trip (about 50 µs on the 2-core VM of docs/performance.md):
 * the server sleeps in epoll_wait after each reply and the kernel must wake
 * it for the next request, which is most of the round trip's server side.
 * A client that just got its reply usually sends the next request within
 * microseconds, so for a short while after a request the server keeps
 * looking (epoll_wait with a timeout of 0) instead of sleeping; the next
 * request is then read by a running process, with no wake-up to pay.
 *
 * How.  libuv polls with a timeout of 0 while an idle handle is active.  A
 * check handle (run after each poll) sees whether the turn served a request
 * (d->served moved): then it notes the time and starts the idle handle;
 * once N µs passed since the last request, it stops it, and the loop sleeps
 * in epoll_wait as without this option.  It also stops as soon as a turn
 * finds its core shared, and opens no window for a millisecond then
 * (bp_on_idle): polling only pays when the client runs on another core.
 * So the cost is CPU while a client is active (up to N µs of spinning
 * after each request), and none when idle: nothing spins before the first
 * request, nor N µs after the last.  A standby does not spin either: it
 * waits for the table outside the loop and only runs the loop once it
 * serves.
 *
 * The requests of a turn are served in conn.c's own check handle (the
 * look-ahead across connections), so ours must run after it: libuv runs
 * the check handles last started first, and conn.c starts its handle anew
 * in every turn that reads a request, while ours was started once.
 *
 * The clock is read (vDSO, no system call) once per turn that served
 * requests or spun, never per request; with N = 0 nothing here is set up
 * and the loop is exactly as before. */
#include "counterd.h"

#include <sched.h>
#include <stdint.h>

static struct {
    uv_check_t check;
    uv_idle_t idle;
    const unsigned long *served;
    unsigned long seen;
    uint64_t last_ns;   /* uv_hrtime() of the last turn that served a request */
    uint64_t window_ns; /* N µs */
    uint64_t calm_at;   /* uv_hrtime() before which no window opens (the core was shared) */
} bp;

/* Its being active is what makes uv_run poll without sleeping.  Each
 * turn of the spin also yields the core, and when the yield ran something
 * else, the core is shared (with the client itself, or with other work on
 * a loaded machine): the next request can only come once we give the core
 * up, and spinning would only delay it and the others.  The spin stops
 * then, and no window opens for BP_CALM_NS: a shared core stays shared for
 * a while, and finding it out again on every request costs a spin turn
 * each (measured on the loaded 2-core machine, client and server on one
 * core: 1.2 to 1.5 µs more of p50 and up to 1.5 µs of CPU a request
 * without the pause, none with it; with the client on the other core, the
 * gain of polling stays: p50 35 -> 22 µs).  With nothing else runnable,
 * sched_yield returns at once (under a microsecond here). */
#define BP_SHARED_NS 5000u
#define BP_CALM_NS 1000000u /* 1 ms */
static void bp_on_idle(uv_idle_t *h)
{
    uint64_t t = uv_hrtime();
    sched_yield();
    uint64_t now = uv_hrtime();
    if (now - t > BP_SHARED_NS) {
        uv_idle_stop(h);
        bp.calm_at = now + BP_CALM_NS;
    }
}

static void bp_on_check(uv_check_t *h)
{
    (void)h;
    if (*bp.served != bp.seen) {
        bp.seen = *bp.served;
        bp.last_ns = uv_hrtime();
        if (!uv_is_active((uv_handle_t *)&bp.idle) && bp.last_ns >= bp.calm_at)
            uv_idle_start(&bp.idle, bp_on_idle);
    } else if (uv_is_active((uv_handle_t *)&bp.idle) && uv_hrtime() - bp.last_ns >= bp.window_ns)
        uv_idle_stop(&bp.idle); /* the client went quiet: sleep in epoll_wait again */
}

int ecd_busypoll_start(uv_loop_t *loop, const unsigned long *served, unsigned poll_us)
{
    if (poll_us == 0)
        return 0;
    bp.served = served;
    bp.seen = *served;
    bp.window_ns = (uint64_t)poll_us * 1000u;
    if (uv_idle_init(loop, &bp.idle) < 0 || uv_check_init(loop, &bp.check) < 0 ||
        uv_check_start(&bp.check, bp_on_check) < 0)
        return -1;
    /* neither keeps the loop alive: it ends when the server's handles do */
    uv_unref((uv_handle_t *)&bp.idle);
    uv_unref((uv_handle_t *)&bp.check);
    return 0;
}

int ecd_busypoll_polling(void)
{
    return bp.served && uv_is_active((uv_handle_t *)&bp.idle);
}

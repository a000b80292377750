/* SPDX-License-Identifier: Apache-2.0 */
/* etscounterd: the example client of etsmgr, the C counterpart of the
 * seed's etscounter_srv.  It keeps a counter in the table "etscounter" that
 * etsmgrd manages, and serves count / check / die / ping on etscounter.sock.
 *
 * It is written against the public etsmgr.h only, to show what a user of the
 * library writes: wait for the daemon (etsmgr_wait), get the table
 * (etsmgr_new_table: a new one, or the one a previous incarnation of this
 * process left to the heir, data intact), and call etsmgr_watch_start once;
 * the watch then reattaches after any crash of the manager while this process
 * goes on serving from its mapping.  The seed's etscounter_srv crashed with a
 * badmatch when its manager restarted; here the manager's death is an event
 * that is logged, not an error.
 *
 * The rest (options, socket, readiness, logging) uses the project's common
 * infrastructure, like every daemon of the project. */
#include "counter.h"
#include "counterd.h"
#include "keeper.h"
#include "listenfd.h"
#include "log.h"
#include "notify.h"
#include "proto.h"
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/time.h>

static const char ecd_usage[] =
    "Usage: etscounterd [OPTION]...\n"
    "Keep a counter in the etsmgr table \"etscounter\" and serve it on DIR/etscounter.sock.\n"
    "\n"
    "  -d, --runtime-dir DIR         runtime directory (default: $ETSMGR_RUNTIME_DIR,\n"
    "                                $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
    "                                else /tmp/etsmgr-$UID;\n"
    "                                @NAME appended for an instance NAME other than etsmgr)\n"
    "  -i, --instance NAME           instance name (default: $ETSMGR_INSTANCE or etsmgr)\n"
    "  -l, --log-level LEVEL         debug, info, notice (default), warning or error;\n"
    "                                each count is logged at notice\n"
    "      --on-manager-death=WHAT   keep: go on serving and re-register the table when\n"
    "                                etsmgrd is back (default); exit: exit with status 75\n"
    "      --no-exactly-once         ignore request ids: a retried count counts again\n"
    "      --max-request-ids N       remember at most N request ids at once, each until\n"
    "                                its sender may retry it; more are refused, none is\n"
    "                                forgotten early (default 4194304)\n"
    "      --lock-timeout MS         give up a request with table_busy when the table's\n"
    "                                lock is held longer than MS ms (default 2000)\n"
    "      --poll-us N               after serving a request, keep polling the sockets\n"
    "                                without sleeping for N microseconds, so that a\n"
    "                                client's next request needs no wake-up; costs CPU\n"
    "                                only while clients are active (0: off; default 50)\n"
    "  -w, --wait-timeout MS         give up when etsmgrd is not up within MS\n"
    "                                milliseconds at start (default: wait forever)\n"
    "      --standby                 hot standby: connect, queue for the table while\n"
    "                                another etscounterd owns it, and take it over the\n"
    "                                moment that one dies; only then listen and send\n"
    "                                READY=1\n"
    "  -h, --help                    show this help and exit\n"
    "  -V, --version                 show the version and exit\n"
    "\n"
    "Exit status: 0 after SIGTERM or SIGINT, 64 usage error, 69 etsmgrd not up within\n"
    "--wait-timeout, 70 cannot serve (see the log), 75 etsmgrd died and\n"
    "--on-manager-death=exit was given.\n";

static ecd D;
static int ecd_own_socket; /* we created the socket file (not inherited) */
/* the loop's handlers, made once the table is ours (the stopper, below,
 * takes the two signals during the waits before) */
static uv_signal_t ecd_sigterm, ecd_sigint;
/* READY=1 goes this long after the loop starts: not before the first
 * answers (below) */
#define ECD_READY_DELAY_MS 2
static uv_timer_t ecd_ready_timer;
static uv_timer_t ecd_log_timer; /* D.log_timer: serve.c's ecd_log_flush */

/* The tidy's looks after the first: this long apart (each drops at most
 * 65,536 expired records, about half a millisecond of CPU here, so the
 * loop serves requests between them), and at most this many (the largest
 * region holds 2^28 records; a look that cannot finish is a bug, not a
 * reason to spin) */
#define ECD_TIDY_STEP_MS 1
#define ECD_TIDY_MAX_LOOKS 4096

/* A region of request ids left sparse by a burst is made small now,
 * after the first answers, rather than by a count a second later: an
 * owner promoted after each of many kills may not live that long, and
 * each would touch random pages of a huge index.  Look after look, until
 * the sweep is done: after a burst of millions of ids one look drops
 * only a part, and when each owner did one look, every takeover of a
 * hot standby before the shrink (64 of them after 4 million ids) met a
 * dying owner with the swept pages and a burst-sized index mapped, whose
 * teardown delayed it (docs/performance.md, "Hot standby: ... fourth
 * pass"). */
static void ecd_on_tidy_timer(uv_timer_t *h)
{
    static int looks;
    int r = D.t ? ctr_tidy(D.t) : 0;
    if (r < 0)
        log_warning("tidying the request ids of table %s: %s", CTR_TABLE, etsmgr_strerror(r));
    else if (r > 0 && ++looks < ECD_TIDY_MAX_LOOKS)
        uv_timer_start(h, ecd_on_tidy_timer, ECD_TIDY_STEP_MS, 0);
}

static void ecd_on_ready_timer(uv_timer_t *h)
{
    notify_sendf("READY=1\nSTATUS=serving %s", D.sock_path);
    ecd_on_tidy_timer(h);
}

static void ecd_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------------ stopping before serving */
/* A SIGTERM or SIGINT that comes while etscounterd waits (for etsmgrd to
 * start; for etsmgrd to see the table's last owner gone; or, a standby,
 * queued for the table) must end it with status 0, as one does while it
 * serves; the loop's handlers are made only after the first answers
 * (below), and the waits are the library's blocking calls, which no
 * handler can cut short (they go on after EINTR), nor can a flag be looked
 * at during them.  So, for those waits, the two signals are
 * blocked and a thread of ours takes them with sigwait, where it may log
 * as anywhere else, and ends the process: _exit closes our connection,
 * which is how etsmgrd takes a waiter out of the queue (and lets go of a
 * table handed to us that very moment, for the next waiter or its heir).
 * It removes only the socket file we made ourselves; a standby has made
 * none: the socket, the lock and the table are the active etscounterd's.
 *
 * Once the table is ours the stopper no longer stops us: a signal then
 * stays pending (blocked) until the loop's handlers are in place, and
 * stops us through them, cleanly, as while serving.  The phase says which:
 * whichever of the stopper and the main thread moves it off
 * ECD_STOP_WAITING first decides (the main thread also before it exits
 * for a failed wait, so that the status is one or the other's, not a race
 * between exit and _exit).
 *
 * The stopper ends by a signal of its own (ecd_stop_wake, also taken by
 * its sigwait) and is joined, not cancelled: glibc's sigwait runs with
 * asynchronous cancellation around the system call, so a cancel that came
 * just after it took a SIGTERM ended it before it passed the signal on,
 * and the SIGTERM was lost (etscounterd went on serving); and a cancelled
 * thread's frames, unwound, left ASan's stack poisoning behind, which
 * failed the SANITIZE=1 build at the thread's end after every takeover. */
enum { ECD_STOP_WAITING, ECD_STOP_TAKEN, ECD_STOP_STOPPING };
static int ecd_stop_phase;
static int ecd_stopper_on;
static pthread_t ecd_stopper, ecd_main_thread;
static sigset_t ecd_stop_sigs;
static int ecd_stop_wake; /* SIGRTMIN: ecd_stopper_end's, to the stopper only */
/* the live process etsmgrd says owns the table while we wait for it to
 * let go (0: we wait for etsmgrd itself); for the stopper's log line */
static pid_t ecd_stop_owner;

static void *ecd_stopper_main(void *arg)
{
    (void)arg;
    int sig;
    sigset_t set = ecd_stop_sigs;
    sigaddset(&set, ecd_stop_wake);
    if (sigwait(&set, &sig) != 0 || sig == ecd_stop_wake)
        return NULL; /* EINVAL only: the set is ours; or ecd_stopper_end */
    int waiting = ECD_STOP_WAITING;
    if (__atomic_compare_exchange_n(&ecd_stop_phase, &waiting, ECD_STOP_STOPPING, 0, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE)) {
        const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
        if (D.standby)
            log_notice("standby: stopping on %s while waiting to take table %s over; it goes to the next "
                       "in line (the etscounterd that serves it, while that one lives).",
                       name, CTR_TABLE);
        else {
            pid_t owner = __atomic_load_n(&ecd_stop_owner, __ATOMIC_ACQUIRE);
            if (owner > 0)
                log_notice("stopping on %s while waiting for table %s, still owned by pid %d; not taken, it "
                           "stays with that process.",
                           name, CTR_TABLE, (int)owner);
            else
                log_notice("stopping on %s while waiting for etsmgr; table %s was not taken.", name, CTR_TABLE);
        }
        if (ecd_own_socket && unlink(D.sock_path) < 0 && errno != ENOENT)
            log_warning("cannot remove %s: %s", D.sock_path, strerror(errno));
        _exit(0);
    }
    /* the table is ours: the main thread's, for the loop's handler */
    pthread_kill(ecd_main_thread, sig);
    return NULL;
}

/* Before a wait that may be long; once is enough. */
static void ecd_stopper_start(void)
{
    if (ecd_stopper_on)
        return;
    sigemptyset(&ecd_stop_sigs);
    sigaddset(&ecd_stop_sigs, SIGTERM);
    sigaddset(&ecd_stop_sigs, SIGINT);
    ecd_stop_wake = SIGRTMIN;
    ecd_main_thread = pthread_self();
    /* the stopper is made with every signal blocked, so that it takes
     * none but its two, by sigwait: a SIGALRM meant to cut our flock short
     * (ecd_lock) must find the main thread */
    sigset_t all, mask;
    sigfillset(&all);
    int r = pthread_sigmask(SIG_BLOCK, &all, &mask);
    if (r == 0) {
        r = pthread_create(&ecd_stopper, NULL, ecd_stopper_main, NULL);
        if (r == 0) {
            sigaddset(&mask, SIGTERM);
            sigaddset(&mask, SIGINT);
        }
        int e = pthread_sigmask(SIG_SETMASK, &mask, NULL);
        if (e != 0) { /* EINVAL only: not with these arguments */
            log_error("pthread_sigmask: %s", strerror(e));
            exit(ECD_EXIT_SOFTWARE);
        }
    }
    if (r != 0) {
        log_warning("cannot start a thread to stop on SIGTERM while waiting (%s): a SIGTERM or SIGINT "
                    "before etscounterd serves ends it by the signal, not with status 0",
                    strerror(r));
        return;
    }
    ecd_stopper_on = 1;
}

/* The table is ours, or the main thread is about to exit for a failed
 * wait: from now on the main thread decides how the process ends.  Costs
 * a takeover one atomic operation. */
static void ecd_stopper_taken(void)
{
    int waiting = ECD_STOP_WAITING;
    if (ecd_stopper_on && !__atomic_compare_exchange_n(&ecd_stop_phase, &waiting, ECD_STOP_TAKEN, 0,
                                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        for (;;)
            pause(); /* the stopper is ending the process (status 0); the table goes back with our connection */
}

/* The loop's handlers are in place: they take the signals from now on,
 * one that came meanwhile first. */
static void ecd_stopper_end(void)
{
    if (!ecd_stopper_on)
        return;
    /* told to end by its own signal and waited for: a SIGTERM it took
     * before is passed on to us (above) by then.  ESRCH when it ended
     * already (it passed one on); these fail otherwise only for a thread
     * not ours or a bad set. */
    (void)pthread_kill(ecd_stopper, ecd_stop_wake);
    (void)pthread_join(ecd_stopper, NULL);
    (void)pthread_sigmask(SIG_UNBLOCK, &ecd_stop_sigs, NULL);
    ecd_stopper_on = 0;
}

/* ------------------------------------------------------------------ reattachment */
static void ecd_mgr_down(etsmgr_client *c, pid_t pid, const char *reason, void *arg)
{
    (void)c;
    ecd *d = arg;
    log_warning("etsmgr (pid %d) has died, with Reason %s.", (int)pid, reason);
    if (d->exit_on_manager_death) {
        log_notice("exiting, as --on-manager-death=exit asks (status %d).", ECD_EXIT_MGR_DIED);
        ecd_log_flush(d, 1);
        exit(ECD_EXIT_MGR_DIED);
    }
    log_notice("waiting for etsmgr to restart.");
    notify_send("STATUS=serving; etsmgr is down, waiting for it to restart");
}

static void ecd_mgr_up(etsmgr_client *c, pid_t pid, void *arg)
{
    (void)c;
    (void)arg;
    log_info("etsmgr is back (pid %d); registering the table again.", (int)pid);
}

static void ecd_mgr_readded(etsmgr_client *c, etsmgr_table *t, void *arg)
{
    (void)arg;
    log_notice("got a table %s from pid %d, with data etsmgr.", etsmgr_table_name(t),
               (int)etsmgr_client_daemon_pid(c));
    notify_send("STATUS=serving; table managed by etsmgr again");
}

static void ecd_mgr_failed(etsmgr_client *c, etsmgr_table *t, int err, const char *msg, void *arg)
{
    (void)c;
    (void)err;
    (void)arg;
    log_error("etsmgr refused to manage table %s again: %s; still serving from the mapping, "
              "will try again when etsmgr restarts.", etsmgr_table_name(t), msg);
}

static void ecd_mgr_transfer(etsmgr_client *c, etsmgr_table *t, const etsmgr_grant *g, void *arg)
{
    (void)c;
    (void)arg;
    log_notice("got a table %s from pid %d, with data %s (not used by etscounterd).",
               etsmgr_table_name(t), (int)g->from_pid, g->data);
}

/* ------------------------------------------------------------------ start-up */
static etsmgr_client *ecd_wait_mgr(const ecd *d, int wait_ms)
{
    etsmgr_client *c = NULL;
    char msg[256];
    if (etsmgr_connect(d->rt.dir, d->rt.instance, &c, msg, sizeof msg) == ETSMGR_OK)
        return c;
    __atomic_store_n(&ecd_stop_owner, 0, __ATOMIC_RELEASE);
    ecd_stopper_start();
    log_notice("waiting for etsmgr to start (%s).", msg);
    int err = etsmgr_wait(d->rt.dir, d->rt.instance, 20, wait_ms, &c, msg, sizeof msg);
    if (err == ETSMGR_OK)
        return c;
    ecd_stopper_taken(); /* a SIGTERM came first: the stopper's status 0, not this line's */
    log_error("etsmgr is not available: %s", msg);
    exit(err == ETSMGR_ETIMEDOUT ? ECD_EXIT_UNAVAILABLE : ECD_EXIT_SOFTWARE);
}

/* new_table, patiently: after our own SIGKILL the daemon may not yet have
 * seen the old connection close, and answers "owned" by our dead
 * predecessor for a moment; and the daemon itself may restart meanwhile. */
static void ecd_get_table(ecd *d, int wait_ms)
{
    etsmgr_grant g;
    int owned_ms = 0, refused = 0;
    if (d->standby)
        log_notice("standby: waiting to take table %s over.", CTR_TABLE);
    for (;;) {
        /* a standby is queued by etsmgrd as the table's next owner and gets
         * it the moment the active one dies; after a restart of etsmgrd it
         * reconnects and queues again (below) */
        int err = d->standby ? etsmgr_new_table_wait(d->mgr, CTR_TABLE, NULL, CTR_TABLE, -1, &d->t, &g)
                             : etsmgr_new_table(d->mgr, CTR_TABLE, NULL, CTR_TABLE, &d->t, &g);
        if (err == ETSMGR_OK)
            break;
        if (err == ETSMGR_ENOTCONN || err == ETSMGR_ETIMEDOUT) {
            log_warning("etsmgr went away while asking for table %s: %s", CTR_TABLE,
                        etsmgr_client_message(d->mgr));
            etsmgr_client_close(d->mgr);
            /* --wait-timeout is for the start; a standby may wait for hours,
             * and a restart of etsmgrd meanwhile must not end it */
            d->mgr = ecd_wait_mgr(d, d->standby ? -1 : wait_ms);
            continue;
        }
        if (d->standby && err == ETSMGR_EREFUSED &&
            proto_err_find(etsmgr_client_error(d->mgr)) == PROTO_E_INTERNAL) {
            /* etsmgrd could not send us the table's fd (at its fd limit) and
             * says to wait again: it is orphaned now, ours at the first
             * handover that goes through (exiting left it to nobody, and
             * each restart by etssup counted toward its intensity) */
            if (refused++ == 0)
                log_warning("standby: etsmgr could not hand table %s over: %s; asking again every 100 ms.",
                            CTR_TABLE, etsmgr_client_message(d->mgr));
            ecd_sleep_ms(100);
            continue;
        }
        if (err == ETSMGR_EOWNED && owned_ms < 10000) {
            /* up to 10 s (the owner may be alive after all: some other
             * process of ours holding the table): a SIGTERM meanwhile must
             * end us with status 0 too */
            __atomic_store_n(&ecd_stop_owner, g.from_pid, __ATOMIC_RELEASE);
            ecd_stopper_start();
            if (owned_ms == 0)
                log_info("table %s is still owned by pid %d; waiting for etsmgr to see it is gone.",
                         CTR_TABLE, (int)g.from_pid);
            else if (owned_ms == 1000) /* no longer the moment after a restart: say so at the default level */
                log_notice("table %s is still owned by pid %d after 1 s: etsmgr hands it over when that "
                           "process is gone (is another etscounterd of instance %s running?); giving up "
                           "after 10 s.",
                           CTR_TABLE, (int)g.from_pid, d->rt.instance);
            ecd_sleep_ms(20);
            owned_ms += 20;
            continue;
        }
        ecd_stopper_taken(); /* as in ecd_wait_mgr */
        log_error("cannot get table %s from etsmgr: %s", CTR_TABLE, etsmgr_client_message(d->mgr));
        exit(ECD_EXIT_SOFTWARE);
    }
    ecd_stopper_taken();
    /* a process that may attach the table (same uid) can take its lock and
     * sit stopped; we answer table_busy then rather than freeze */
    etsmgr_table_set_lock_timeout(d->t, d->lock_timeout_ms);
    int64_t value;
    int err = ctr_init(d->t, &value);
    if (err) {
        log_error("table %s: cannot read or create the entry %s: %s", CTR_TABLE, CTR_KEY,
                  etsmgr_strerror(err));
        exit(ECD_EXIT_SOFTWARE);
    }
    log_notice("got a table %s from pid %d, with data %s.", CTR_TABLE, (int)g.from_pid, g.data);
    log_info("table %s %s; %s = %lld.", CTR_TABLE, g.created ? "created" : "taken back, data intact",
             CTR_KEY, (long long)value);
}

static void ecd_on_alarm(int sig)
{
    (void)sig; /* only to interrupt flock (no SA_RESTART) */
}

/* The instance's etscounterd lock, held until we exit.  A standby that just
 * took the table over may find its dead predecessor still holding it: the
 * kernel releases a dead process's lock with its last fds, a moment after
 * etsmgrd saw its connection close.  It then blocks in flock, woken the
 * instant the lock is free (a poll with sleeps cost up to a millisecond on
 * every takeover that met it), for at most wait_ms (SIGALRM interrupts). */
static void ecd_lock(const ecd *d, const char *lock_path, int wait_ms)
{
    if (sock_lock_file(lock_path) >= 0)
        return;
    int fd = -1, r = -1, e = errno;
    if (e == EWOULDBLOCK && wait_ms > 0) {
        fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        struct sigaction sa = { .sa_handler = ecd_on_alarm }, old;
        struct itimerval it = { .it_value = { wait_ms / 1000, (wait_ms % 1000) * 1000 } }, off = { 0 };
        sigemptyset(&sa.sa_mask);
        if (fd >= 0 && sigaction(SIGALRM, &sa, &old) == 0) {
            if (setitimer(ITIMER_REAL, &it, NULL) == 0)
                r = flock(fd, LOCK_EX);
            e = r < 0 && errno == EINTR ? EWOULDBLOCK : errno;
            setitimer(ITIMER_REAL, &off, NULL);
            sigaction(SIGALRM, &old, NULL);
        } else
            e = errno;
        if (r == 0)
            return; /* fd stays open: the lock is held until we exit */
        if (fd >= 0)
            close(fd);
    }
    if (e != EWOULDBLOCK) {
        log_error("lock %s: %s", lock_path, strerror(e));
        exit(ECD_EXIT_SOFTWARE);
    }
    if (wait_ms > 0)
        /* etsmgrd gave us the table, so the active one is gone: whoever
         * holds the lock now is not the etscounterd we replace */
        log_error("standby: took table %s over, but %s was still locked after %d ms: a process other "
                  "than the etscounterd it replaces holds it (etsmgrd saw that one go), such as a second "
                  "etscounterd or a child that inherited the lock's fd; not serving beside it. Stop that "
                  "process (fuser -v %s names it), then start etscounterd again; the table stays in "
                  "shared memory with etsmgr as heir.",
                  CTR_TABLE, lock_path, wait_ms, lock_path);
    else
        log_error("another etscounterd serves instance %s (it holds %s)", d->rt.instance, lock_path);
    exit(ECD_EXIT_SOFTWARE);
}

/* The socket handed in by etssup or systemd, or -1. */
static int ecd_listen_inherited(ecd *d)
{
    int fd = listenfd_take("etscounter", d->sock_path);
    char extra[1024];
    if (listenfd_leftover(extra, sizeof extra) > 0) {
        log_error("refusing to start: inherited socket(s) %s are not etscounterd's; it serves the one named "
                  "etscounter (FileDescriptorName=etscounter) or bound to %s",
                  extra, d->sock_path);
        exit(ECD_EXIT_SOFTWARE);
    }
    if (fd >= 0)
        log_info("serving the inherited socket (socket activation) as %s.", d->sock_path);
    return fd;
}

/* The inherited socket, or one of our own at d->sock_path. */
static int ecd_listen(ecd *d)
{
    int fd = ecd_listen_inherited(d);
    if (fd >= 0)
        return fd;
    char err[256];
    fd = sock_listen_unix(d->sock_path, 0600, 1024, err, sizeof err);
    if (fd < 0) {
        log_error("%s", err);
        exit(ECD_EXIT_SOFTWARE);
    }
    ecd_own_socket = 1;
    return fd;
}

/* A standby touches its heap before waiting, so that the takeover's
 * allocations (the attach copies the table's 36 KiB header) land on pages
 * already there rather than fault in a page at a time (measured: nine
 * faults, a tenth of the takeover).  malloc keeps the freed pages: they
 * are at its top, below its trim threshold. */
static void ecd_warm_heap(void)
{
    size_t n = 64 * 1024;
    char *p = malloc(n);
    if (p) {
        memset(p, 1, n);
        /* the compiler must not drop the memset of memory freed unread */
        __asm__ __volatile__("" : : "r"(p) : "memory");
        free(p);
    }
}

static void ecd_serve(const conn_server_cfg *cfg)
{
    if (conn_server_start(&D.srv, D.loop, cfg) < 0) {
        log_error("cannot serve %s (conn_server_start failed)", D.sock_path);
        exit(ECD_EXIT_SOFTWARE);
    }
}

static void ecd_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void ecd_on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    log_notice("stopping on %s; table %s stays in shared memory with etsmgr as heir.",
               signum == SIGTERM ? "SIGTERM" : "SIGINT", CTR_TABLE);
    if (ecd_own_socket)
        unlink(D.sock_path);
    conn_server_stop(D.srv);
    D.srv = NULL;
    ecd_log_flush(&D, 1); /* the refusals left out of the log, counted before we go */
    etsmgr_client_close(D.mgr); /* closes the watch and our connection: etsmgrd is heir */
    D.mgr = NULL;
    D.t = NULL;
    notify_watchdog_stop();
    uv_walk(D.loop, ecd_close_walk, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "runtime-dir", required_argument, NULL, 'd' },
        { "instance", required_argument, NULL, 'i' },
        { "log-level", required_argument, NULL, 'l' },
        { "on-manager-death", required_argument, NULL, 'm' },
        { "no-exactly-once", no_argument, NULL, 'n' },
        { "wait-timeout", required_argument, NULL, 'w' },
        { "max-request-ids", required_argument, NULL, 'R' },
        { "lock-timeout", required_argument, NULL, 'L' },
        { "standby", no_argument, NULL, 'S' },
        { "poll-us", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = NULL, *instance = NULL;
    int level = LOG_LVL_NOTICE, wait_ms = -1;
    D.exactly_once = 1;
    D.max_rids = ECD_DEFAULT_MAX_RIDS;
    D.lock_timeout_ms = ECD_DEFAULT_LOCK_TIMEOUT_MS;
    D.poll_us = ECD_DEFAULT_POLL_US;
    int o;
    while ((o = getopt_long(argc, argv, "d:i:l:w:hV", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'i': instance = optarg; break;
        case 'l':
            level = log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "etscounterd: unknown log level \"%s\" (debug, info, notice, warning, error)\n",
                        optarg);
                return ECD_EXIT_USAGE;
            }
            break;
        case 'm':
            if (strcmp(optarg, "keep") == 0)
                D.exit_on_manager_death = 0;
            else if (strcmp(optarg, "exit") == 0)
                D.exit_on_manager_death = 1;
            else {
                fprintf(stderr, "etscounterd: --on-manager-death takes keep or exit, not \"%s\"\n", optarg);
                return ECD_EXIT_USAGE;
            }
            break;
        case 'n': D.exactly_once = 0; break;
        case 'S': D.standby = 1; break;
        case 'w': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > 86400000) {
                fprintf(stderr, "etscounterd: --wait-timeout takes milliseconds (0 to 86400000), not \"%s\"\n",
                        optarg);
                return ECD_EXIT_USAGE;
            }
            wait_ms = (int)v;
            break;
        }
        case 'R':
        case 'L':
        case 'P': {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            long long min = o == 'P' ? 0 : 1;
            long long max = o == 'R' ? (1ll << 27) : o == 'L' ? 3600000 : ECD_MAX_POLL_US;
            const char *name = o == 'R' ? "--max-request-ids" : o == 'L' ? "--lock-timeout" : "--poll-us";
            const char *what = o == 'R' ? "a number of request ids" : o == 'L' ? "milliseconds" : "microseconds";
            if (errno || *end || end == optarg || v < min || v > max) {
                fprintf(stderr, "etscounterd: %s takes %s (%lld to %lld), not \"%s\"\n", name, what, min, max,
                        optarg);
                return ECD_EXIT_USAGE;
            }
            if (o == 'R')
                D.max_rids = (unsigned long)v;
            else if (o == 'L')
                D.lock_timeout_ms = (unsigned)v;
            else
                D.poll_us = (unsigned)v;
            break;
        }
        case 'h': fputs(ecd_usage, stdout); return 0;
        case 'V': printf("etscounterd %s\n", ETSMGR_VERSION_STRING); return 0;
        default: fputs("Try 'etscounterd --help' for more information.\n", stderr); return ECD_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "etscounterd: unexpected argument \"%s\"\nTry 'etscounterd --help' for more information.\n",
                argv[optind]);
        return ECD_EXIT_USAGE;
    }
    log_init("etscounterd", (enum log_level)level);
    signal(SIGPIPE, SIG_IGN);
    const char *stop = getenv("ETSCOUNTERD_TEST_STOP_IN_COMMIT");
    if (stop && *stop) {
        D.stop_in_commit = strtol(stop, NULL, 10);
        if (D.stop_in_commit > 0)
            log_warning("test hook: SIGSTOP inside count number %ld (ETSCOUNTERD_TEST_STOP_IN_COMMIT).",
                        D.stop_in_commit);
    }
    const char *hook = getenv("ETSCOUNTERD_TEST_DIE_AFTER_COMMIT");
    if (hook && *hook) {
        D.die_after_commit = strtol(hook, NULL, 10);
        if (D.die_after_commit > 0)
            log_warning("test hook: SIGKILL after commit number %ld (ETSCOUNTERD_TEST_DIE_AFTER_COMMIT).",
                        D.die_after_commit);
    }

    char err[1024]; /* a runtime dir refused names the directory and what to do */
    if (rt_resolve(dir, instance, &D.rt, err, sizeof err) < 0) {
        fprintf(stderr, "etscounterd: %s\n", err);
        return ECD_EXIT_USAGE;
    }
    if (rt_ensure_dir(&D.rt, err, sizeof err) < 0) {
        log_error("%s", err);
        return ECD_EXIT_SOFTWARE;
    }
    char lock_path[RT_PATH_MAX], sb_lock[RT_PATH_MAX];
    if (rt_path(&D.rt, "etscounter.sock", D.sock_path, sizeof D.sock_path) < 0 ||
        rt_path(&D.rt, "etscounterd.lock", lock_path, sizeof lock_path) < 0 ||
        (D.standby && rt_path(&D.rt, "etscounterd.standby.lock", sb_lock, sizeof sb_lock) < 0)) {
        log_error("runtime dir %s: path too long for a socket", D.rt.dir);
        return ECD_EXIT_SOFTWARE;
    }
    int lfd = -1;
    if (D.standby) {
        /* shared, held for life: tells a CLI that someone is about to serve
         * (sock_instance_served), so it waits through the takeover */
        int sfd = open(sb_lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (sfd < 0 || flock(sfd, LOCK_SH) < 0) {
            log_error("standby lock %s: %s", sb_lock, strerror(errno));
            return ECD_EXIT_SOFTWARE;
        }
        /* an inherited socket is set up for serving now, while nothing
         * waits: nothing is accepted before the loop runs, and it runs
         * only once the table and the lock are ours (below) */
        lfd = ecd_listen_inherited(&D);
    } else {
        ecd_lock(&D, lock_path, 0);
        lfd = ecd_listen(&D);
    }

    /* the loop too is made before the wait: a standby then has less to do
     * between the takeover and its first answer */
    D.loop = uv_default_loop();
    uv_timer_init(D.loop, &ecd_log_timer);
    ecd_log_timer.data = &D;
    D.log_timer = &ecd_log_timer;
    conn_server_cfg cfg = { .listen_fd = lfd, .max_conns = 1024, .on_frame = ecd_on_frame,
                            .on_close = ecd_on_close, .on_ahead = ecd_on_ahead,
                            .on_served = ecd_on_served, .arg = &D,
                            .no_fds = true };
    if (lfd >= 0)
        ecd_serve(&cfg);
    if (D.standby) {
        ecd_warm_heap();
        /* a SIGKILL then closes our sockets before our memory is torn
         * down, which was most of a takeover's wait (keeper.c); made now,
         * while nothing waits for us (a restart makes it after its first
         * answers, below) */
        (void)ecd_keeper_start();
        ecd_stopper_start();
    }
    D.mgr = ecd_wait_mgr(&D, wait_ms);
    ecd_get_table(&D, wait_ms);
    if (D.standby) {
        /* the table is ours, so the active one is dead: its lock goes with
         * its last fds, a moment after etsmgrd saw it die */
        ecd_lock(&D, lock_path, 2000);
        if (lfd < 0) {
            /* no inherited socket: our own, made only now that the
             * active one (which bound the path) is gone */
            cfg.listen_fd = lfd = ecd_listen(&D);
            ecd_serve(&cfg);
        }
        log_notice("standby: took table %s over; serving.", CTR_TABLE);
    }
    /* Two turns of the loop without blocking, before anything else: the
     * requests that waited in the socket's backlog (through a takeover or a
     * restart) are accepted in the first and read and answered in the
     * second (conn.c flushes replies within the turn).  The watch of
     * etsmgrd, the signal handlers, the polling and the watchdog are set up
     * only after them (a fifth of a takeover's own time in a trace): a
     * SIGTERM meanwhile kills us as it would have a moment before (after a
     * wait, it stays blocked until the handlers are in place: the stopper,
     * above), and etsmgrd's events wait in our connection.  READY=1 comes
     * ECD_READY_DELAY_MS later, not at once: it wakes the supervisor, which
     * on a small machine then runs before the clients just answered can
     * read their replies, and a client whose request was lost with its
     * connection (it comes back at once) is answered in the meantime too.
     * The supervisor loses nothing by 2 ms: it starts the next standby only
     * 20 ms after a takeover anyway. */
    uv_run(D.loop, UV_RUN_NOWAIT);
    uv_run(D.loop, UV_RUN_NOWAIT);
    if (!D.standby)
        (void)ecd_keeper_start();
    etsmgr_watch_cbs cbs = { .down = ecd_mgr_down, .up = ecd_mgr_up, .readded = ecd_mgr_readded,
                             .failed = ecd_mgr_failed, .transfer = ecd_mgr_transfer, .retry_ms = 20 };
    if (etsmgr_watch_start(D.mgr, D.loop, &cbs, &D) != ETSMGR_OK) {
        log_error("cannot watch etsmgr: %s", etsmgr_client_message(D.mgr));
        return ECD_EXIT_SOFTWARE;
    }
    uv_signal_init(D.loop, &ecd_sigterm);
    uv_signal_init(D.loop, &ecd_sigint);
    uv_signal_start(&ecd_sigterm, ecd_on_signal, SIGTERM);
    uv_signal_start(&ecd_sigint, ecd_on_signal, SIGINT);
    ecd_stopper_end();
    /* only now: a standby must not spin while it waits for the table */
    if (ecd_busypoll_start(D.loop, &D.served, D.poll_us) < 0) {
        log_error("cannot set up --poll-us %u (libuv refused a handle); start etscounterd with --poll-us 0 "
                  "to serve without polling", D.poll_us);
        return ECD_EXIT_SOFTWARE;
    }

    log_info("serving %s (exactly-once %s, on manager death: %s, polling %u µs after a request).", D.sock_path,
             D.exactly_once ? "on" : "off", D.exit_on_manager_death ? "exit" : "keep serving", D.poll_us);
    if (notify_watchdog_start(D.loop) < 0)
        log_warning("cannot start the watchdog timer: %s", strerror(errno));
    uv_timer_init(D.loop, &ecd_ready_timer);
    uv_timer_start(&ecd_ready_timer, ecd_on_ready_timer, ECD_READY_DELAY_MS, 0);
    uv_run(D.loop, UV_RUN_DEFAULT);
    uv_loop_close(D.loop);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* child.c: starting and stopping one child process.
 *
 * Spawning is fork+execve by hand rather than uv_spawn because the child
 * needs things uv_spawn cannot do between fork and exec: its own process
 * group, PR_SET_PDEATHSIG (so a kill -9 of etssup takes it down: the
 * re-check of getppid() closes the race where etssup dies before the prctl),
 * LISTEN_PID set to its own pid, the held sockets at fd 3 and up, and its
 * own journald stream connected from its own pid (journal.c).
 * Everything that allocates (the environment) is prepared before fork; the
 * child only makes async-signal-safe calls.  Signals are blocked across fork
 * so that no libuv signal handler can run in the child and write into the
 * loop's pipe, which it shares with etssup.  An exec failure comes back
 * through a close-on-exec pipe, so it is reported with its errno instead of
 * looking like a child that exited with 127.
 *
 * Readiness comes over a datagram socket of the child's own
 * (DIR/etssup-<id>.notify, its NOTIFY_SOCKET); a message counts only when
 * its SCM_CREDENTIALS pid is the child's, so a late message from a previous
 * incarnation cannot make a new one look ready.  A child's hot standby
 * (argv + "--standby") shares that socket: its READY=1, sent once it owns
 * what the child owned, is kept aside (sb_ready) until it is promoted. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "sup.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

extern char **environ;

void sup_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        if (WEXITSTATUS(status) == 0)
            snprintf(buf, len, "exited normally (status 0)");
        else
            snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        const char *abbrev = sigabbrev_np(sig);
        const char *desc = strsignal(sig);
        if (abbrev)
            snprintf(buf, len, "killed by signal SIG%s (%s)%s", abbrev, desc ? desc : "?",
                     WCOREDUMP(status) ? ", core dumped" : "");
        else
            snprintf(buf, len, "killed by signal %d%s", sig, WCOREDUMP(status) ? ", core dumped" : "");
    } else
        snprintf(buf, len, "wait status 0x%x", (unsigned)status);
}

void sup_child_kill(sup_child *c, int sig)
{
    if (c->pid <= 0)
        return;
    if (kill(-c->pid, sig) < 0) {
        /* the group may not exist yet (setpgid race) or any more */
        if (kill(c->pid, sig) < 0 && errno != ESRCH)
            log_warning("kill(%d, %s) of child %s: %s", (int)c->pid, sigabbrev_np(sig), c->cfg->id,
                        strerror(errno));
    }
}

static void child_timer_cb(uv_timer_t *t)
{
    sup_child *c = t->data;
    if (c->state == SUP_ST_STARTING) {
        sup_start_timeout(c);
    } else if (c->state == SUP_ST_STOPPING && c->pid > 0) {
        log_warning("child %s (pid %d) did not exit within %d ms of SIGTERM: sending SIGKILL", c->cfg->id,
                    (int)c->pid, c->cfg->shutdown_ms);
        sup_child_kill(c, SIGKILL);
    }
}

void sup_child_timer(sup_child *c, uint64_t ms)
{
    uv_timer_start(&c->timer, child_timer_cb, ms, 0);
}

void sup_child_stop(sup_child *c, bool brutal)
{
    if (c->pid <= 0)
        return;
    c->state = SUP_ST_STOPPING;
    uv_timer_stop(&c->timer);
    if (brutal || c->cfg->shutdown_ms == SUP_BRUTAL_KILL) {
        log_info("stopping child %s (pid %d) with SIGKILL%s", c->cfg->id, (int)c->pid,
                 brutal ? "" : " (shutdown brutal_kill)");
        sup_child_kill(c, SIGKILL);
        return;
    }
    log_info("stopping child %s (pid %d) with SIGTERM (SIGKILL after %d ms)", c->cfg->id, (int)c->pid,
             c->cfg->shutdown_ms);
    sup_child_kill(c, SIGTERM);
    sup_child_kill(c, SIGCONT); /* a stopped process cannot act on SIGTERM */
    sup_child_timer(c, (uint64_t)c->cfg->shutdown_ms);
}

static void child_notify_cb(uv_poll_t *h, int status, int events)
{
    sup_child *c = h->data;
    (void)events;
    if (status < 0) {
        log_warning("notify socket of child %s: %s", c->cfg->id, uv_strerror(status));
        return;
    }
    for (;;) {
        char buf[1024];
        int pid = 0;
        int n = notify_recv(c->notify_fd, buf, sizeof buf, &pid);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_warning("reading the notify socket of child %s: %s", c->cfg->id, strerror(errno));
            if (errno == EINTR)
                continue;
            return;
        }
        if (c->sb_pid > 0 && pid == (int)c->sb_pid) {
            /* the standby took over; its READY=1 may come before the old
             * child is reaped, so it is remembered for the promotion */
            if (strstr(buf, "READY=1")) {
                c->sb_ready = true;
                log_debug("child %s: its standby (pid %d) sent READY=1", c->cfg->id, pid);
            }
            continue;
        }
        if (c->pid <= 0 || pid != (int)c->pid) {
            log_debug("ignoring a notify message for child %s from pid %d (the child is pid %d)", c->cfg->id, pid,
                      (int)c->pid);
            continue;
        }
        bool ready = false;
        for (char *line = buf, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next)
                *next++ = 0;
            if (strcmp(line, "READY=1") == 0)
                ready = true;
            else if (strcmp(line, "WATCHDOG=1") == 0)
                c->wd_last_ms = sup_now_ms();
            else if (strncmp(line, "STATUS=", 7) == 0)
                snprintf(c->status, sizeof c->status, "%s", line + 7);
        }
        if (ready && c->state == SUP_ST_STARTING)
            sup_child_ready(c);
    }
}

int sup_child_notify_open(sup_child *c)
{
    char name[96];
    snprintf(name, sizeof name, "etssup-%s.notify", c->cfg->id);
    if (rt_path(&c->sup->rt, name, c->notify_path, sizeof c->notify_path) < 0) {
        log_error("notify socket of child %s: %s/%s is longer than a socket path may be; use a shorter runtime dir",
                  c->cfg->id, c->sup->rt.dir, name);
        return -1;
    }
    if (unlink(c->notify_path) < 0 && errno != ENOENT) {
        log_error("unlink %s (a stale notify socket): %s", c->notify_path, strerror(errno));
        return -1;
    }
    c->notify_fd = notify_listen(c->notify_path);
    if (c->notify_fd < 0) {
        log_error("cannot create the notify socket %s for child %s: %s", c->notify_path, c->cfg->id,
                  strerror(errno));
        c->notify_path[0] = 0;
        return -1;
    }
    int fl = fcntl(c->notify_fd, F_GETFL);
    if (fl < 0 || fcntl(c->notify_fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(c->notify_fd, F_SETFD, FD_CLOEXEC) < 0) {
        log_error("fcntl on the notify socket of child %s: %s", c->cfg->id, strerror(errno));
        close(c->notify_fd);
        c->notify_fd = -1;
        return -1;
    }
    int r = uv_poll_init(c->sup->loop, &c->notify_poll, c->notify_fd);
    if (r < 0) {
        log_error("uv_poll_init on the notify socket of child %s: %s", c->cfg->id, uv_strerror(r));
        close(c->notify_fd);
        c->notify_fd = -1;
        return -1;
    }
    c->notify_poll.data = c;
    r = uv_poll_start(&c->notify_poll, UV_READABLE, child_notify_cb);
    if (r < 0) {
        log_error("uv_poll on the notify socket of child %s: %s", c->cfg->id, uv_strerror(r));
        return -1;
    }
    return 0;
}

void sup_child_notify_close(sup_child *c)
{
    if (c->notify_fd >= 0) {
        if (!uv_is_closing((uv_handle_t *)&c->notify_poll))
            uv_close((uv_handle_t *)&c->notify_poll, NULL);
        close(c->notify_fd);
        c->notify_fd = -1;
    }
    if (c->notify_path[0]) {
        unlink(c->notify_path);
        c->notify_path[0] = 0;
    }
}

/* Environment variables etssup sets itself; inherited values are dropped. */
static bool child_env_ours(const char *e)
{
    static const char *const ours[] = {"NOTIFY_SOCKET=", "LISTEN_PID=",        "LISTEN_FDS=",
                                       "LISTEN_FDNAMES=", "ETSMGR_RUNTIME_DIR=", "ETSMGR_INSTANCE=",
                                       "WATCHDOG_PID=",   "WATCHDOG_USEC=",      "JOURNAL_STREAM=",
                                       NULL};
    for (const char *const *o = ours; *o; o++)
        if (strncmp(e, *o, strlen(*o)) == 0)
            return true;
    return false;
}

/* async-signal-safe decimal */
static void child_fmt_pid(char *out, pid_t pid)
{
    char tmp[24];
    int n = 0;
    unsigned long v = (unsigned long)pid;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *out++ = tmp[--n];
    *out = 0;
}

static void child_free_env(char **env, int from)
{
    if (!env)
        return;
    for (int i = from; env[i]; i++)
        free(env[i]);
    free(env);
}

static int child_spawn(sup_child *c, char *const *argv, bool standby, pid_t *out, char *err, size_t errlen)
{
    const sup_child_cfg *cc = c->cfg;
    sup *s = c->sup;
    int nenv = 0;
    while (environ && environ[nenv])
        nenv++;
    char **env = calloc(nenv + 10, sizeof *env);
    if (!env) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int k = 0;
    for (int i = 0; i < nenv; i++)
        if (!child_env_ours(environ[i]))
            env[k++] = environ[i];
    int first_own = k; /* entries from here on are ours to free */
    char fdnames[SUP_MAX_SOCKETS * 66 + 1] = "";
    for (int j = 0; j < cc->nsockets; j++) {
        size_t l = strlen(fdnames);
        snprintf(fdnames + l, sizeof fdnames - l, "%s%s", j ? ":" : "", cc->sockets[j].name);
    }
    char *listen_pid = NULL;
    sup_journal jr;
    sup_journal_prepare(cc, &jr);
    bool oom = asprintf(&env[k++], "ETSMGR_RUNTIME_DIR=%s", s->rt.dir) < 0;
    if (jr.fd >= 0)
        oom |= (env[k++] = strdup(jr.env)) == NULL;
    oom |= asprintf(&env[k++], "ETSMGR_INSTANCE=%s", s->rt.instance) < 0;
    if (cc->ready == SUP_READY_NOTIFY)
        oom |= asprintf(&env[k++], "NOTIFY_SOCKET=%s", c->notify_path) < 0;
    /* the child pings etssup as often as systemd wants etssup to (watchdog.c) */
    if (cc->ready == SUP_READY_NOTIFY && s->wd_usec)
        oom |= asprintf(&env[k++], "WATCHDOG_USEC=%llu", s->wd_usec) < 0;
    if (cc->nsockets) {
        oom |= asprintf(&env[k++], "LISTEN_FDS=%d", cc->nsockets) < 0;
        oom |= asprintf(&env[k++], "LISTEN_FDNAMES=%s", fdnames) < 0;
        oom |= asprintf(&listen_pid, "LISTEN_PID=%24s", "") < 0;
        env[k++] = listen_pid;
    }
    if (oom) {
        snprintf(err, errlen, "out of memory");
        child_free_env(env, first_own);
        if (jr.fd >= 0)
            close(jr.fd);
        return -1;
    }

    /* a late datagram from a previous incarnation is of no interest (but
     * the running child's are, when this is its standby) */
    if (c->notify_fd >= 0 && !standby) {
        char buf[256];
        int pid;
        while (notify_recv(c->notify_fd, buf, sizeof buf, &pid) >= 0)
            ;
    }

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe2: %s", strerror(errno));
        child_free_env(env, first_own);
        if (jr.fd >= 0)
            close(jr.fd);
        return -1;
    }
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        /* child: async-signal-safe calls only */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setpgid(0, 0);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127); /* etssup is already gone: so are we */
        int n = cc->nsockets;
        int errfd = fcntl(pfd[1], F_DUPFD_CLOEXEC, 3 + n);
        int hi[SUP_MAX_SOCKETS];
        for (int j = 0; j < n; j++)
            hi[j] = fcntl(c->listen_fds[j], F_DUPFD_CLOEXEC, 3 + n);
        int genfd = c->sup->gen_fd >= 0 ? fcntl(c->sup->gen_fd, F_DUPFD_CLOEXEC, 3 + n) : -1;
        int jfd = jr.fd >= 0 ? fcntl(jr.fd, F_DUPFD_CLOEXEC, 3 + n) : -1;
        int e; /* what goes back through the pipe */
        for (int j = 0; j < n; j++)
            if (hi[j] < 0 || dup2(hi[j], 3 + j) < 0) { /* dup2 clears close-on-exec on 3+j */
                e = -errno; /* negative: the sockets could not be handed over */
                goto fail;
            }
        sup_journal_attach(&jr, jfd);
        if (listen_pid)
            child_fmt_pid(listen_pid + strlen("LISTEN_PID="), getpid());
        /* nothing else of etssup's leaks into the child */
        if (close_range(3 + n, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
            for (int fd = 3 + n; fd < 1024; fd++)
                if (fd != errfd)
                    fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
        if (genfd >= 0)
            fcntl(genfd, F_SETFD, 0); /* the one fd kept on purpose */
        execve(cc->exe, argv, env);
        e = errno; /* positive: the program cannot be executed */
    fail:
        if (errfd >= 0 && write(errfd, &e, sizeof e) < 0)
            _exit(126);
        _exit(127);
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(pfd[1]);
    if (jr.fd >= 0)
        close(jr.fd); /* the child's now */
    if (pid < 0) {
        close(pfd[0]);
        child_free_env(env, first_own);
        snprintf(err, errlen, "fork: %s", strerror(fork_errno));
        return -1;
    }
    if (setpgid(pid, pid) < 0 && errno != EACCES && errno != ESRCH)
        log_debug("setpgid(%d): %s", (int)pid, strerror(errno));
    int child_errno = 0;
    ssize_t r;
    do
        r = read(pfd[0], &child_errno, sizeof child_errno);
    while (r < 0 && errno == EINTR);
    close(pfd[0]);
    child_free_env(env, first_own);
    if (r == (ssize_t)sizeof child_errno) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (child_errno < 0) {
            snprintf(err, errlen, "handing over its sockets: %s", strerror(-child_errno));
            return -1;
        }
        snprintf(err, errlen, "execve %s: %s", cc->exe, strerror(child_errno));
        return -2;
    }
    *out = pid;
    return 0;
}

int sup_child_spawn(sup_child *c, char *err, size_t errlen)
{
    pid_t pid;
    int r = child_spawn(c, c->cfg->argv, false, &pid, err, errlen);
    if (r < 0)
        return r;
    c->pid = pid;
    c->started_ms = sup_now_ms();
    c->ever_started = true;
    c->status[0] = 0;
    return 0;
}

int sup_child_spawn_standby(sup_child *c, char *err, size_t errlen)
{
    pid_t pid;
    int r = child_spawn(c, c->cfg->standby_argv, true, &pid, err, errlen);
    if (r < 0)
        return r;
    c->sb_pid = pid;
    c->sb_started_ms = sup_now_ms();
    c->sb_ready = false;
    c->sb_stopping = false;
    return 0;
}

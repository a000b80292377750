/* SPDX-License-Identifier: Apache-2.0 */
/* system.c: the system under test: etssup with etsmgrd and etscounterd.
 *
 * In the default (fresh) mode the lab owns everything: a private temp dir
 * with the runtime dir inside, a unique instance name, a generated etssup
 * config (the recovery scheme under test), and a notify socket of its own
 * given to etssup as NOTIFY_SOCKET.  etssup says READY=1 there once, then a
 * STATUS= line ("N of M children running, K restarts") after every change,
 * which is how the lab times "supervisor whole again" after a kill; every
 * such line is confirmed with the status op on etssup.sock, because a line
 * can say "2 of 2" before etssup has reaped a second victim.  With --attach
 * there is no notify socket of ours, so the status op is polled instead.
 *
 * The lab is a child subreaper: when it SIGKILLs etssup, etssup's children
 * (killed by their PDEATHSIG) come back to the lab and are reaped here, so
 * the lab can wait until they are really gone before it starts a new
 * etssup (the new children would otherwise find the old ones' locks).  The
 * reaper thread waits for SIGCHLD with sigtimedwait (SIGCHLD is blocked in
 * every thread), so it can also be told to stop.
 *
 * At the end the lab stops etssup with SIGTERM and then looks for what the
 * run left behind: processes (any process whose environment names the
 * run's instance), socket files in the runtime dir, and shared-memory
 * objects other than the counter's table.  The table outlives its processes
 * by design; the lab unlinks it (shm_unlink: no etsmgrd is left to ask for
 * del_table) and checks that nothing of the instance remains in /dev/shm. */
#include "lab.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "notify.h"
#include "sock.h"

extern char **environ;

#define LAB_TABLE "etscounter"

void lab_remember_pid(lab *l, pid_t pid)
{
    if (pid <= 0)
        return;
    pthread_mutex_lock(&l->mu);
    bool known = false;
    for (int i = 0; i < l->nseen && !known; i++)
        known = l->seen_pids[i] == pid;
    if (!known && l->nseen < (int)(sizeof l->seen_pids / sizeof l->seen_pids[0]))
        l->seen_pids[l->nseen++] = pid;
    pthread_mutex_unlock(&l->mu);
}

const char *lab_log_path(lab *l)
{
    return l->log_file;
}

/* ------------------------------------------------------------------ reaper */
static void *lab_reaper_main(void *arg)
{
    lab *l = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    while (!atomic_load(&l->reaper_stop)) {
        struct timespec ts = { 0, 50 * 1000000L };
        sigtimedwait(&set, NULL, &ts);
        for (;;) {
            int st;
            pid_t p = waitpid(-1, &st, WNOHANG);
            if (p < 0 && errno == EINTR)
                continue;
            if (p <= 0)
                break;
            pthread_mutex_lock(&l->mu);
            if (p == l->sup_pid) {
                l->sup_exited = true;
                l->sup_status = st;
                pthread_cond_broadcast(&l->cond);
            }
            pthread_mutex_unlock(&l->mu);
        }
    }
    return NULL;
}

void lab_sys_reaper_start(lab *l)
{
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        lab_note(l, "prctl(PR_SET_CHILD_SUBREAPER) failed (%s): children of a killed etssup are reaped by "
                    "init, not checked by the lab", strerror(errno));
    atomic_store(&l->reaper_stop, false);
    if (pthread_create(&l->reaper, NULL, lab_reaper_main, l) == 0)
        l->reaper_started = true;
}

void lab_sys_reaper_stop(lab *l)
{
    if (!l->reaper_started)
        return;
    atomic_store(&l->reaper_stop, true);
    pthread_join(l->reaper, NULL);
    l->reaper_started = false;
}

/* ------------------------------------------------------------------ an earlier run's leftovers */
static int lab_scan_procs(const char *instance, pid_t *out, int max);

/* Whether name (an entry of /dev/shm or /tmp, after its prefix) begins
 * with a lab's pid, its instance's or its temp dir's: the pid, or 0. */
static pid_t lab_stale_pid(const char *dir, const char *name, const char *prefix, char sep)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0)
        return 0;
    char *end;
    long pid = strtol(name + pl, &end, 10);
    if (end == name + pl || *end != sep || pid <= 0 || pid > INT32_MAX || pid == getpid())
        return 0;
    struct stat st;
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (lstat(p, &st) < 0 || st.st_uid != geteuid())
        return 0;
    /* alive (or another uid's pid, EPERM): not a leftover */
    if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
        return 0;
    return (pid_t)pid;
}

static void lab_rm_tree(const char *dir);

/* A lab killed before its clean-up (SIGKILL, or a second Ctrl-C) leaves
 * its counter table in /dev/shm and its temp dir; its processes stop on
 * their own (etssup's PDEATHSIG, then etssup stops its children).  A fresh
 * run removes what such runs of this uid left, once their pid is gone and
 * no process of their instance is left, and says so in its notes. */
static void lab_sweep_stale(lab *l)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        pid_t pid = lab_stale_pid("/dev/shm", e->d_name, "crashlab", 'x');
        const char *sep = strchr(e->d_name, RT_SHM_SEP);
        if (!pid || !sep || (size_t)(sep - e->d_name) > RT_INSTANCE_MAX)
            continue;
        char inst[RT_INSTANCE_MAX + 1], name[300];
        snprintf(inst, sizeof inst, "%.*s", (int)(sep - e->d_name), e->d_name);
        pid_t alive[1];
        if (lab_scan_procs(inst, alive, 1) > 0)
            continue; /* still stopping: the next run's */
        snprintf(name, sizeof name, "/%s", e->d_name);
        if (shm_unlink(name) == 0)
            lab_note(l, "removed /dev/shm%s, left by an earlier run (pid %d) that was killed before its clean-up",
                     name, (int)pid);
    }
    if (d)
        closedir(d);
    d = opendir("/tmp");
    while (d && (e = readdir(d))) {
        pid_t pid = lab_stale_pid("/tmp", e->d_name, "etsmgr-crashlab.", '.');
        if (!pid)
            continue;
        /* what a run's end removes (lab_sys_remove_base): the runtime dir,
         * the config, the notify socket; a finished run's dir keeps only a
         * failed run's log, and so does a killed one's */
        char base[4200], p[4300];
        snprintf(base, sizeof base, "/tmp/%s", e->d_name);
        snprintf(p, sizeof p, "%s/run", base);
        struct stat st;
        bool stale = lstat(p, &st) == 0;
        lab_rm_tree(p);
        snprintf(p, sizeof p, "%s/etssup.json", base);
        stale |= unlink(p) == 0;
        snprintf(p, sizeof p, "%s/notify.sock", base);
        stale |= unlink(p) == 0;
        if (!stale)
            continue;
        rmdir(base);
        snprintf(p, sizeof p, "%s/etssup.log", base);
        bool log = lstat(p, &st) == 0;
        lab_note(l, "removed the runtime dir and config of an earlier run (pid %d) that was killed before its "
                    "clean-up, in %s%s", (int)pid, base, log ? " (its log stays, as a failed run's does)" : "");
    }
    if (d)
        closedir(d);
}

/* ------------------------------------------------------------------ prepare */
static int lab_write_config(lab *l, char *err, size_t errlen)
{
    cJSON *c = cJSON_CreateObject();
    cJSON *kids = cJSON_AddArrayToObject(c, "children");
    char exe[2][4200];
    snprintf(exe[0], sizeof exe[0], "%s/etsmgrd", l->bindir);
    snprintf(exe[1], sizeof exe[1], "%s/etscounterd", l->bindir);
    cJSON_AddStringToObject(c, "strategy", l->o.strategy);
    cJSON_AddNumberToObject(c, "intensity", l->o.intensity);
    cJSON_AddNumberToObject(c, "period", l->o.period_s);
    cJSON_AddNumberToObject(c, "start_timeout", l->o.start_timeout_ms);
    for (int i = 0; i < 2 && kids; i++) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddItemToArray(kids, k);
        cJSON_AddStringToObject(k, "id", i == 0 ? "etsmgrd" : "etscounterd");
        cJSON *argv = cJSON_AddArrayToObject(k, "argv");
        cJSON_AddItemToArray(argv, cJSON_CreateString(exe[i]));
        cJSON_AddItemToArray(argv, cJSON_CreateString("--log-level"));
        /* etscounterd logs every count at notice: a 60 s run would write
         * a million lines nobody reads */
        cJSON_AddItemToArray(argv, cJSON_CreateString(i == 0 ? "notice" : "warning"));
        if (i == 1) {
            cJSON_AddItemToArray(argv, cJSON_CreateString(l->o.exit_on_manager_death ? "--on-manager-death=exit"
                                                                                     : "--on-manager-death=keep"));
            if (!l->o.exactly_once)
                cJSON_AddItemToArray(argv, cJSON_CreateString("--no-exactly-once"));
            /* the workers keep a rid for --recovery-timeout (30 s), at tens
             * of thousands of counts a second: more than the default */
            cJSON_AddItemToArray(argv, cJSON_CreateString("--max-request-ids"));
            cJSON_AddItemToArray(argv, cJSON_CreateString("8388608"));
        }
        cJSON_AddStringToObject(k, "restart", "permanent");
        cJSON_AddNumberToObject(k, "shutdown", 5000);
        cJSON_AddStringToObject(k, "ready", "notify");
        if (i == 1 && l->o.standby)
            cJSON_AddBoolToObject(k, "standby", true);
        cJSON *socks = cJSON_AddArrayToObject(k, "sockets");
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToArray(socks, s);
        cJSON_AddStringToObject(s, "name", i == 0 ? "etsmgrd" : "etscounter");
        cJSON_AddStringToObject(s, "path", i == 0 ? "etsmgrd.sock" : "etscounter.sock");
    }
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    if (!text) {
        snprintf(err, errlen, "out of memory writing the etssup configuration");
        return -1;
    }
    FILE *f = fopen(l->config_path, "w");
    if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0 || fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", l->config_path, strerror(errno));
        free(text);
        return -1;
    }
    free(text);
    return 0;
}

int lab_sys_prepare(lab *l, char *err, size_t errlen)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        snprintf(err, errlen, "readlink /proc/self/exe: %s (the lab finds etssup next to its own binary)",
                 strerror(errno));
        return LAB_EXIT_SOFTWARE;
    }
    self[n] = 0;
    snprintf(l->bindir, sizeof l->bindir, "%s", dirname(self));
    if (l->o.attach) {
        if (rt_path(&l->rt, "etscounter.sock", l->counter_sock, sizeof l->counter_sock) < 0 ||
            rt_path(&l->rt, "etssup.sock", l->sup_sock, sizeof l->sup_sock) < 0) {
            snprintf(err, errlen, "runtime dir %s: path too long for a socket", l->rt.dir);
            return LAB_EXIT_USAGE;
        }
        l->notify_fd = -1;
        l->ready_method = "status poll";
        return 0;
    }
    static const char *const progs[] = { "etssup", "etsmgrd", "etscounterd" };
    for (int i = 0; i < 3; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", l->bindir, progs[i]);
        if (access(p, X_OK) < 0) {
            snprintf(err, errlen, "%s: %s (the lab runs the %s built next to it; run make first)", p,
                     strerror(errno), progs[i]);
            return LAB_EXIT_UNAVAILABLE;
        }
    }
    lab_sweep_stale(l);
    snprintf(l->base, sizeof l->base, "/tmp/etsmgr-crashlab.%d.XXXXXX", (int)getpid());
    if (!mkdtemp(l->base)) {
        snprintf(err, errlen, "mkdtemp %s: %s", l->base, strerror(errno));
        return LAB_EXIT_SOFTWARE;
    }
    unsigned char r[4] = { 0 };
    if (getrandom(r, sizeof r, 0) < 0)
        memset(r, 0, sizeof r);
    snprintf(l->rt.instance, sizeof l->rt.instance, "crashlab%dx%02x%02x%02x", (int)getpid(), r[0], r[1], r[2]);
    if (snprintf(l->rt.dir, sizeof l->rt.dir, "%s/run", l->base) >= (int)sizeof l->rt.dir ||
        snprintf(l->notify_path, sizeof l->notify_path, "%s/notify.sock", l->base) >= (int)sizeof l->notify_path) {
        snprintf(err, errlen, "temp dir %s: path too long for a socket", l->base);
        return LAB_EXIT_SOFTWARE;
    }
    snprintf(l->config_path, sizeof l->config_path, "%s/etssup.json", l->base);
    if (rt_path(&l->rt, "etscounter.sock", l->counter_sock, sizeof l->counter_sock) < 0 ||
        rt_path(&l->rt, "etssup.sock", l->sup_sock, sizeof l->sup_sock) < 0) {
        snprintf(err, errlen, "temp dir %s: path too long for a socket", l->base);
        return LAB_EXIT_SOFTWARE;
    }
    if (l->o.log_path)
        snprintf(l->log_file, sizeof l->log_file, "%s", l->o.log_path);
    else
        snprintf(l->log_file, sizeof l->log_file, "%s/etssup.log", l->base);
    if (mkdir(l->rt.dir, 0700) < 0) {
        snprintf(err, errlen, "mkdir %s: %s", l->rt.dir, strerror(errno));
        return LAB_EXIT_SOFTWARE;
    }
    if (lab_write_config(l, err, errlen) < 0)
        return LAB_EXIT_SOFTWARE;
    l->notify_fd = notify_listen(l->notify_path);
    if (l->notify_fd < 0) {
        snprintf(err, errlen, "cannot listen for etssup's readiness on %s: %s", l->notify_path, strerror(errno));
        return LAB_EXIT_SOFTWARE;
    }
    l->ready_method = "notify";
    return 0;
}

/* ------------------------------------------------------------------ notify */
typedef struct lab_msg {
    int64_t t_ns;
    int pid;
    bool ready;     /* READY=1 */
    bool whole;     /* STATUS=N of N children running */
    char text[256];
} lab_msg;

/* one message within timeout_ms: 1, 0 when none came, -1 on error */
static int lab_notify_next(lab *l, int timeout_ms, lab_msg *m)
{
    struct pollfd p = { .fd = l->notify_fd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0)
        return r < 0 && errno != EINTR ? -1 : 0;
    char buf[1024];
    int pid = 0;
    int n = notify_recv(l->notify_fd, buf, sizeof buf, &pid);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
    m->t_ns = lab_now_ns();
    m->pid = pid;
    size_t tl = strlen(buf) < sizeof m->text - 1 ? strlen(buf) : sizeof m->text - 1;
    memcpy(m->text, buf, tl);
    m->text[tl] = 0;
    m->ready = false;
    m->whole = false;
    for (char *line = buf, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        int a, b;
        if (strcmp(line, "READY=1") == 0)
            m->ready = true;
        else if (sscanf(line, "STATUS=%d of %d children running", &a, &b) == 2 && a == b)
            m->whole = true;
    }
    for (char *c = m->text; *c; c++)
        if (*c == '\n')
            *c = ' ';
    return 1;
}

void lab_sys_drain_notify(lab *l)
{
    lab_msg m;
    if (l->notify_fd >= 0)
        while (lab_notify_next(l, 0, &m) == 1)
            ;
}

/* ------------------------------------------------------------------ etssup */
static char **lab_sup_env(lab *l)
{
    static const char *const drop[] = { "NOTIFY_SOCKET=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=",
                                        "ETSMGR_RUNTIME_DIR=", "ETSMGR_INSTANCE=", NULL };
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool skip = false;
        for (const char *const *d = drop; *d && !skip; d++)
            skip = strncmp(environ[i], *d, strlen(*d)) == 0;
        if (!skip)
            env[k++] = environ[i];
    }
    if (asprintf(&env[k++], "NOTIFY_SOCKET=%s", l->notify_path) < 0 ||
        asprintf(&env[k++], "ETSMGR_RUNTIME_DIR=%s", l->rt.dir) < 0 ||
        asprintf(&env[k++], "ETSMGR_INSTANCE=%s", l->rt.instance) < 0) {
        free(env);
        return NULL;
    }
    return env;
}

static void lab_print_log_tail(lab *l)
{
    FILE *f = fopen(l->log_file, "r");
    if (!f)
        return;
    char *lines[12] = { 0 };
    char buf[1024];
    int i = 0;
    while (fgets(buf, sizeof buf, f)) {
        free(lines[i % 12]);
        lines[i % 12] = strdup(buf);
        i++;
    }
    fclose(f);
    fprintf(stderr, "etsmgr-crashlab: the last lines of %s:\n", l->log_file);
    for (int k = i > 12 ? i - 12 : 0; k < i; k++)
        fprintf(stderr, "  %s", lines[k % 12] ? lines[k % 12] : "\n");
    for (int k = 0; k < 12; k++)
        free(lines[k]);
}

int lab_sys_start(lab *l, int64_t *ready_ns, char *err, size_t errlen)
{
    char sup[4200];
    snprintf(sup, sizeof sup, "%s/etssup", l->bindir);
    char *argv[] = { sup, "--config", l->config_path, "--runtime-dir", l->rt.dir, "--instance", l->rt.instance,
                     "--log-level", "info", NULL };
    char **env = lab_sup_env(l);
    if (!env) {
        snprintf(err, errlen, "out of memory preparing etssup's environment");
        return -1;
    }
    int logfd = open(l->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (logfd < 0) {
        snprintf(err, errlen, "open %s (etssup's log): %s", l->log_file, strerror(errno));
        return -1;
    }
    lab_sys_drain_notify(l);
    pid_t parent = getpid();
    pthread_mutex_lock(&l->mu);
    pid_t pid = fork();
    if (pid == 0) {
        /* async-signal-safe only from here: the lab has threads */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        setpgid(0, 0); /* a Ctrl-C at the terminal is the lab's to handle */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
            _exit(127);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        execve(sup, argv, env);
        _exit(127);
    }
    int fe = errno;
    if (pid > 0) {
        l->sup_pid = pid;
        l->sup_exited = false;
        l->sup_killed_by_us = false;
        l->sup_starts++;
    }
    pthread_mutex_unlock(&l->mu);
    close(logfd);
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], "NOTIFY_SOCKET=", 14) == 0 || strncmp(env[i], "ETSMGR_RUNTIME_DIR=", 19) == 0 ||
            strncmp(env[i], "ETSMGR_INSTANCE=", 16) == 0)
            free(env[i]);
    free(env);
    if (pid < 0) {
        snprintf(err, errlen, "fork (to start etssup): %s", strerror(fe));
        return -1;
    }
    lab_remember_pid(l, pid);
    lab_log(l, "started etssup (pid %d)", (int)pid);
    int64_t deadline = lab_now_ns() + (int64_t)l->o.recovery_timeout_ms * 1000000;
    while (lab_now_ns() < deadline) {
        lab_msg m;
        int r = lab_notify_next(l, 20, &m);
        if (r < 0) {
            snprintf(err, errlen, "reading %s: %s", l->notify_path, strerror(errno));
            return -1;
        }
        if (r == 1 && m.ready && m.pid == pid) {
            *ready_ns = m.t_ns;
            lab_log(l, "etssup (pid %d) is ready", (int)pid);
            return 0;
        }
        int st;
        if (lab_sys_sup_gone(l, &st)) {
            char why[64];
            if (WIFEXITED(st))
                snprintf(why, sizeof why, "exited with status %d", WEXITSTATUS(st));
            else
                snprintf(why, sizeof why, "was killed by signal %d", WTERMSIG(st));
            snprintf(err, errlen, "etssup (pid %d) %s before it was ready; its log is %s", (int)pid, why,
                     l->log_file);
            lab_print_log_tail(l);
            return -1;
        }
        if (lab_interrupted)
            break;
    }
    snprintf(err, errlen, "etssup (pid %d) did not send READY=1 within %d ms; its log is %s", (int)pid,
             l->o.recovery_timeout_ms, l->log_file);
    lab_print_log_tail(l);
    return -1;
}

bool lab_sys_sup_gone(lab *l, int *status)
{
    pthread_mutex_lock(&l->mu);
    bool gone = l->sup_pid > 0 && l->sup_exited;
    if (gone && status)
        *status = l->sup_status;
    pthread_mutex_unlock(&l->mu);
    return gone;
}

/* ------------------------------------------------------------------ requests */
static int lab_call(const char *path, const char *op, int timeout_ms, cJSON **reply, char *err, size_t errlen)
{
    int fd = sock_connect_unix(path);
    if (fd < 0) {
        snprintf(err, errlen, "connect %s: %s", path, strerror(errno));
        return -1;
    }
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", op);
    cJSON_AddNumberToObject(req, "id", 1);
    int r = frame_write_json(fd, req, NULL, 0);
    cJSON_Delete(req);
    if (r < 0) {
        snprintf(err, errlen, "sending %s to %s: %s", op, path, strerror(errno));
        close(fd);
        return -1;
    }
    r = frame_read_json(fd, reply, NULL, NULL, 0, timeout_ms);
    int e = errno;
    close(fd);
    if (r < 0) {
        snprintf(err, errlen, "reading the reply to %s from %s: %s", op, path, strerror(e));
        return -1;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*reply, "ok"))) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(*reply, "message"));
        snprintf(err, errlen, "%s on %s failed: %s", op, path, m ? m : "no message");
        cJSON_Delete(*reply);
        *reply = NULL;
        return -1;
    }
    return 0;
}

int lab_sys_status(lab *l, lab_child_info *kids, int max, int *n, pid_t *sup_pid, char *err, size_t errlen)
{
    cJSON *rep = NULL;
    if (lab_call(l->sup_sock, "status", 5000, &rep, err, errlen) < 0)
        return -1;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(rep, "pid");
    if (sup_pid)
        *sup_pid = cJSON_IsNumber(p) ? (pid_t)p->valuedouble : 0;
    *n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(rep, "children"))
    {
        if (*n >= max)
            break;
        lab_child_info *k = &kids[(*n)++];
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "state"));
        const cJSON *kp = cJSON_GetObjectItemCaseSensitive(c, "pid");
        snprintf(k->id, sizeof k->id, "%s", id ? id : "?");
        snprintf(k->state, sizeof k->state, "%s", st ? st : "?");
        k->pid = cJSON_IsNumber(kp) ? (pid_t)kp->valuedouble : 0;
        lab_remember_pid(l, k->pid);
    }
    cJSON_Delete(rep);
    return 0;
}

static bool lab_whole(lab *l, const pid_t *avoid, int navoid)
{
    lab_child_info kids[16];
    int n;
    char err[256];
    if (lab_sys_status(l, kids, 16, &n, NULL, err, sizeof err) < 0 || n == 0)
        return false;
    for (int i = 0; i < n; i++) {
        if (strcmp(kids[i].state, "running") != 0 || kids[i].pid <= 0)
            return false;
        for (int j = 0; j < navoid; j++)
            if (kids[i].pid == avoid[j])
                return false;
    }
    return true;
}

int lab_sys_wait_whole(lab *l, const pid_t *avoid, int navoid, int timeout_ms, int64_t *ready_ns, char *err,
                       size_t errlen)
{
    int64_t deadline = lab_now_ns() + (int64_t)timeout_ms * 1000000;
    int64_t next_poll = 0;
    while (lab_now_ns() < deadline) {
        if (l->notify_fd >= 0) {
            lab_msg m;
            int r = lab_notify_next(l, 10, &m);
            if (r == 1 && (m.whole || m.ready) && lab_whole(l, avoid, navoid)) {
                *ready_ns = m.t_ns;
                return 0;
            }
            /* a safety net, in case a STATUS line was missed: a status
             * poll every 100 ms (the time is then the poll's) */
            if (lab_now_ns() >= next_poll) {
                next_poll = lab_now_ns() + 100000000;
                if (lab_whole(l, avoid, navoid)) {
                    *ready_ns = lab_now_ns();
                    return 0;
                }
            }
        } else {
            if (lab_whole(l, avoid, navoid)) {
                *ready_ns = lab_now_ns();
                return 0;
            }
            lab_sleep_ms(2);
        }
        if (!l->o.attach && lab_sys_sup_gone(l, NULL)) {
            snprintf(err, errlen, "etssup exited while the lab waited for its children to run again");
            return -1;
        }
        if (lab_interrupted && timeout_ms > 5000)
            deadline = lab_now_ns() + 5000000000LL; /* interrupted: do not wait long */
    }
    snprintf(err, errlen, "the supervisor did not report every child running within %d ms", timeout_ms);
    return -1;
}

static bool lab_pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

int lab_sys_restart_sup(lab *l, const pid_t *old_kids, int nkids, int64_t *ready_ns, char *err, size_t errlen)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&l->mu);
    while (!l->sup_exited) {
        if (pthread_cond_timedwait(&l->cond, &l->mu, &until) == ETIMEDOUT)
            break;
    }
    bool gone = l->sup_exited;
    pid_t old = l->sup_pid;
    pthread_mutex_unlock(&l->mu);
    if (!gone) {
        snprintf(err, errlen, "etssup (pid %d) did not die within 10 s of SIGKILL", (int)old);
        return -1;
    }
    /* its children die of their PDEATHSIG; wait until they are gone, or
     * the new children would find their locks still held */
    int64_t deadline = lab_now_ns() + 10000000000LL;
    for (int i = 0; i < nkids; i++) {
        while (lab_pid_alive(old_kids[i]) && lab_now_ns() < deadline)
            lab_sleep_ms(1);
        if (lab_pid_alive(old_kids[i]))
            lab_fail(l, "a child of the killed etssup (pid %d) was still there 10 s later: PR_SET_PDEATHSIG did "
                        "not take it down, or nobody reaped it", (int)old_kids[i]);
    }
    return lab_sys_start(l, ready_ns, err, errlen);
}

int lab_sys_check_count(lab *l, int64_t *count, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = lab_now_ns() + (int64_t)timeout_ms * 1000000;
    int backoff = 2;
    for (;;) {
        cJSON *rep = NULL;
        if (lab_call(l->counter_sock, "check", 5000, &rep, err, errlen) == 0) {
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rep, "data"), "count");
            if (!cJSON_IsNumber(c)) {
                snprintf(err, errlen, "the reply to check on %s has no data.count", l->counter_sock);
                cJSON_Delete(rep);
                return -1;
            }
            *count = (int64_t)c->valuedouble;
            cJSON_Delete(rep);
            return 0;
        }
        if (lab_now_ns() + (int64_t)backoff * 1000000 > deadline)
            return -1;
        if (lab_interrupted && deadline > lab_now_ns() + 5000000000LL)
            deadline = lab_now_ns() + 5000000000LL; /* interrupted: do not wait long */
        lab_sleep_ms(backoff);
        backoff = backoff * 2 > 100 ? 100 : backoff * 2;
    }
}

/* ------------------------------------------------------------------ the end */
/* processes whose environment names the instance (etssup gives it to every
 * child, and the lab to etssup); the lab's own environment does not */
static int lab_scan_procs(const char *instance, pid_t *out, int max)
{
    char want[RT_INSTANCE_MAX + 32];
    int wl = snprintf(want, sizeof want, "ETSMGR_INSTANCE=%s", instance) + 1; /* with the NUL */
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid == getpid())
            continue;
        char p[64];
        snprintf(p, sizeof p, "/proc/%ld/environ", pid);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        static char buf[1 << 16];
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = 0;
        for (ssize_t i = 0; i + wl - 1 <= len; i += (ssize_t)strlen(buf + i) + 1)
            if (memcmp(buf + i, want, (size_t)wl) == 0) {
                out[n++] = (pid_t)pid;
                break;
            }
    }
    closedir(d);
    return n;
}

static void lab_comm(pid_t pid, char *buf, size_t len)
{
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(p, "r");
    buf[0] = 0;
    if (f) {
        if (fgets(buf, (int)len, f))
            buf[strcspn(buf, "\n")] = 0;
        fclose(f);
    }
    if (!buf[0])
        snprintf(buf, len, "?");
}

static void lab_rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            lab_rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

void lab_sys_shutdown(lab *l)
{
    if (l->o.attach) {
        lab_note(l, "--attach: the system was left running; nothing was unlinked and leftovers were not checked");
        return;
    }
    l->sup_final_status = -1;
    pthread_mutex_lock(&l->mu);
    pid_t sup = l->sup_exited ? 0 : l->sup_pid;
    pthread_mutex_unlock(&l->mu);
    if (sup > 0) {
        if (kill(sup, SIGTERM) < 0)
            lab_fail(l, "kill(%d, SIGTERM) to stop etssup: %s", (int)sup, strerror(errno));
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        pthread_mutex_lock(&l->mu);
        while (!l->sup_exited)
            if (pthread_cond_timedwait(&l->cond, &l->mu, &until) == ETIMEDOUT)
                break;
        bool gone = l->sup_exited;
        int st = l->sup_status;
        pthread_mutex_unlock(&l->mu);
        if (!gone) {
            lab_fail(l, "etssup (pid %d) did not exit within 30 s of SIGTERM; the lab killed it", (int)sup);
            kill(sup, SIGKILL);
        } else if (WIFEXITED(st)) {
            l->sup_final_status = WEXITSTATUS(st);
            if (WEXITSTATUS(st) != 0)
                lab_fail(l, "etssup exited with status %d after SIGTERM (an orderly stop exits 0); see %s",
                         WEXITSTATUS(st), l->log_file);
        } else
            lab_fail(l, "etssup was killed by signal %d while stopping on SIGTERM", WTERMSIG(st));
    }
    /* processes of the run: give stragglers a moment, then name them */
    pid_t left[64];
    int n = 0;
    int64_t deadline = lab_now_ns() + 5000000000LL;
    do {
        n = lab_scan_procs(l->rt.instance, left, 64);
        if (n == 0)
            break;
        lab_sleep_ms(10);
    } while (lab_now_ns() < deadline);
    for (int i = 0; i < n; i++) {
        char comm[64];
        lab_comm(left[i], comm, sizeof comm);
        lab_leftover(l, "process %d (%s) of instance %s still runs after etssup stopped", (int)left[i], comm,
                     l->rt.instance);
        kill(left[i], SIGKILL);
    }
    /* socket files in the runtime dir */
    DIR *d = opendir(l->rt.dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char p[4200];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", l->rt.dir, e->d_name);
            if (lstat(p, &st) == 0 && S_ISSOCK(st.st_mode))
                lab_leftover(l, "socket %s left behind after etssup stopped", p);
        }
        closedir(d);
    }
    /* shared memory: the counter's table is expected (it outlives its
     * processes by design); anything else of the instance is a leak */
    char prefix[RT_INSTANCE_MAX + 2];
    int pl = snprintf(prefix, sizeof prefix, "%s%c", l->rt.instance, RT_SHM_SEP);
    d = opendir("/dev/shm");
    int tables = 0;
    if (!d)
        lab_fail(l, "opendir /dev/shm: %s (cannot check for leftover shared memory)", strerror(errno));
    else {
        struct dirent *e;
        while ((e = readdir(d))) {
            unsigned long uid;
            char tname[RT_INSTANCE_MAX + 1]; /* table names are as long as instance names */
            rt_shm_kind k = rt_shm_parse(l->rt.instance, e->d_name, &uid, tname);
            if (k == RT_SHM_OTHER)
                continue;
            if (k == RT_SHM_TABLE && strcmp(tname, LAB_TABLE) == 0)
                tables++;
            else
                lab_leftover(l, "shared-memory object /dev/shm/%s is not a table of the run", e->d_name);
            char name[300];
            snprintf(name, sizeof name, "/%s", e->d_name);
            if (shm_unlink(name) < 0)
                lab_fail(l, "shm_unlink %s: %s", name, strerror(errno));
        }
        closedir(d);
        if (tables == 0)
            lab_fail(l, "the table %s of instance %s was gone from /dev/shm after the run: the counter's data "
                     "did not survive", LAB_TABLE, l->rt.instance);
        d = opendir("/dev/shm");
        while (d && (e = readdir(d)))
            if (strncmp(e->d_name, prefix, (size_t)pl) == 0)
                lab_leftover(l, "shared-memory object /dev/shm/%s remains after shm_unlink", e->d_name);
        if (d)
            closedir(d);
    }
    lab_rm_tree(l->rt.dir);
    struct stat st;
    if (stat(l->rt.dir, &st) == 0)
        lab_leftover(l, "runtime dir %s could not be removed", l->rt.dir);
}

void lab_sys_remove_base(lab *l, bool keep_log)
{
    if (l->o.attach || !l->base[0])
        return;
    if (l->notify_fd >= 0)
        close(l->notify_fd);
    l->notify_fd = -1;
    unlink(l->notify_path);
    unlink(l->config_path);
    lab_rm_tree(l->rt.dir);
    if (keep_log && !l->o.log_path) {
        rmdir(l->base); /* fails: the log is there, which is the point */
        return;
    }
    if (!l->o.log_path)
        unlink(l->log_file);
    rmdir(l->base);
}

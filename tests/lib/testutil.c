/* SPDX-License-Identifier: Apache-2.0 */
/* testutil.c: what every suite needs to run real programs without leftovers.
 *
 * Each test gets a fresh runtime dir and a unique instance, exported so the
 * programs and the client library resolve them with no options.  Readiness
 * comes from a notify socket made for each spawn (never a sleep); the child
 * that exits first, or stays silent past the timeout, fails the spawn at once
 * (a pidfd is polled next to the socket).
 *
 * Cleanup must work even when a test ends early.  The envs are recorded
 * here by value and an atexit handler (acting only in the process that made
 * them) cleans what tu_env_cleanup did not, for a test that calls exit().
 * check itself ends a failed assertion with _exit() and a timed-out test
 * with SIGKILL, where no atexit runs: for those, tu_env_init also notes the
 * instance and dir in the runner's record (tu_sweep_note), and the runner
 * cleans up after each test (tu_sweep_collect).  Spawned pids get SIGTERM
 * (so a supervisor stops its own children), then SIGKILL; any process still
 * carrying ETSMGR_INSTANCE=<instance> in its environment (an orphaned
 * grandchild) is killed too. */
#include "testutil.h"

#include "procstat.h"
#include "runcap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "notify.h"
#include "sock.h"

#define TU_MAX_ENVS 8
#define TU_MAX_PIDS 128

typedef struct tu_state {
    bool used;
    pid_t owner;
    char dir[108];
    char instance[65];
    pid_t pids[TU_MAX_PIDS];
    int npids;
    int nspawn;
} tu_state;

static tu_state tu_states[TU_MAX_ENVS];
static bool tu_atexit_set;
static unsigned tu_counter;

long long tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double tu_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static tu_state *tu_find(const tu_env *e)
{
    for (int i = 0; i < TU_MAX_ENVS; i++)
        if (tu_states[i].used && tu_states[i].owner == getpid() &&
            strcmp(tu_states[i].instance, e->instance) == 0)
            return &tu_states[i];
    return NULL;
}

static void tu_track(tu_env *e, pid_t pid)
{
    tu_state *st = tu_find(e);
    if (st && st->npids < TU_MAX_PIDS)
        st->pids[st->npids++] = pid;
}

static void tu_untrack(pid_t pid)
{
    for (int i = 0; i < TU_MAX_ENVS; i++) {
        tu_state *st = &tu_states[i];
        for (int j = 0; j < st->npids; j++)
            if (st->pids[j] == pid)
                st->pids[j] = st->pids[--st->npids];
    }
}

static void tu_state_cleanup(tu_state *st);

static void tu_atexit(void)
{
    for (int i = 0; i < TU_MAX_ENVS; i++)
        if (tu_states[i].used && tu_states[i].owner == getpid())
            tu_state_cleanup(&tu_states[i]);
}

void tu_env_init(tu_env *e)
{
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/etsmgr-tXXXXXX");
    if (!mkdtemp(e->dir)) {
        fprintf(stderr, "tu_env_init: mkdtemp %s: %s\n", e->dir, strerror(errno));
        abort();
    }
    snprintf(e->instance, sizeof e->instance, "t%ldx%u", (long)getpid(), tu_counter++);
    setenv("ETSMGR_RUNTIME_DIR", e->dir, 1);
    setenv("ETSMGR_INSTANCE", e->instance, 1);
    tu_state *st = NULL;
    for (int i = 0; i < TU_MAX_ENVS && !st; i++)
        if (!tu_states[i].used || tu_states[i].owner != getpid())
            st = &tu_states[i];
    if (!st) {
        fprintf(stderr, "tu_env_init: more than %d live envs in one test\n", TU_MAX_ENVS);
        abort();
    }
    memset(st, 0, sizeof *st);
    st->used = true;
    st->owner = getpid();
    memcpy(st->dir, e->dir, sizeof st->dir);
    memcpy(st->instance, e->instance, sizeof st->instance);
    if (!tu_atexit_set) {
        atexit(tu_atexit);
        tu_atexit_set = true;
    }
    tu_sweep_note("instance", e->instance, e->dir);
}

/* true when pid's environment holds ETSMGR_INSTANCE=<instance> */
static bool tu_proc_has_instance(pid_t pid, const char *instance)
{
    char path[64], want[128];
    snprintf(path, sizeof path, "/proc/%ld/environ", (long)pid);
    int n = snprintf(want, sizeof want, "ETSMGR_INSTANCE=%s", instance);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    static char buf[1 << 16];
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return false;
    buf[len] = '\0';
    for (char *p = buf; p < buf + len; p += strlen(p) + 1)
        if (strncmp(p, want, (size_t)n) == 0 && p[n] == '\0')
            return true;
    return false;
}

/* true when pid is already on its way out: a SIGKILL pending (in its own
 * or its group's set) or the kernel's exit begun.  Such a process is not
 * a leftover.  etscounterd's memory keeper (client/etscounterd/keeper.c)
 * is one: killed by its PDEATHSIG when etscounterd dies, it runs as
 * SCHED_IDLE and may wait a while for a CPU on a loaded machine before it
 * tears the shared address space down, and until then its environ still
 * names the instance. */
#define TU_PF_EXITING 0x4u /* include/linux/sched.h */
static bool tu_proc_dying(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true; /* gone */
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
        return true;
    buf[len] = '\0';
    static const char *const sets[] = { "\nSigPnd:", "\nShdPnd:" };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        const char *p = strstr(buf, sets[i]);
        unsigned long long mask;
        if (p && sscanf(p + strlen(sets[i]), "%llx", &mask) == 1 && (mask & (1ull << (SIGKILL - 1))))
            return true;
    }
    proc_stat st;
    return proc_stat_read(pid, &st) == 0 && (st.flags & TU_PF_EXITING);
}

/* Kill processes of this instance that are not ours to wait for. */
static int tu_kill_instance_strays(const char *instance)
{
    int total = 0;
    pid_t anc[64];
    int nanc = 0;
    for (pid_t p = getpid(); p > 1 && nanc < 64; p = proc_ppid(p))
        anc[nanc++] = p;
    for (int round = 0; round < 3; round++) {
        DIR *d = opendir("/proc");
        if (!d)
            return total;
        int killed = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
            char *end;
            long pid = strtol(de->d_name, &end, 10);
            bool mine = false;
            for (int i = 0; i < nanc; i++)
                mine = mine || anc[i] == (pid_t)pid;
            if (*end || pid <= 1 || mine)
                continue;
            if (tu_proc_has_instance((pid_t)pid, instance) && !tu_proc_dying((pid_t)pid)) {
                kill((pid_t)pid, SIGKILL);
                killed++;
            }
        }
        closedir(d);
        total += killed;
        if (!killed)
            return total;
        tu_sleep_ms(20);
    }
    return total;
}

static int tu_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0 && errno != ENOENT)
        fprintf(stderr, "tu_env_cleanup: remove %s: %s\n", path, strerror(errno));
    return 0;
}

static int tu_unlink_shm(const char *instance);

void tu_remove_shm(const tu_env *e) { tu_unlink_shm(e->instance); }

/* unlinks /dev/shm/<instance>.*; how many there were */
static int tu_unlink_shm(const char *instance)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    size_t il = strlen(instance);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, instance, il) == 0 && (de->d_name[il] == '.' || de->d_name[il] == ':')) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "/dev/shm/%s", de->d_name);
            n++;
            if (unlink(path) < 0 && errno != ENOENT)
                fprintf(stderr, "tu_env_cleanup: unlink %s: %s\n", path, strerror(errno));
        }
    }
    closedir(d);
    return n;
}

static void tu_state_cleanup(tu_state *st)
{
    /* SIGTERM first, so a supervisor stops its children in order */
    for (int i = 0; i < st->npids; i++)
        kill(st->pids[i], SIGTERM);
    long long deadline = tu_now_ms() + 3000;
    while (st->npids > 0) {
        for (int i = 0; i < st->npids;) {
            int status;
            pid_t r = waitpid(st->pids[i], &status, WNOHANG);
            if (r == st->pids[i] || (r < 0 && errno == ECHILD))
                st->pids[i] = st->pids[--st->npids];
            else
                i++;
        }
        if (st->npids == 0)
            break;
        if (tu_now_ms() >= deadline) {
            for (int i = 0; i < st->npids; i++) {
                kill(st->pids[i], SIGKILL);
                waitpid(st->pids[i], NULL, 0);
            }
            st->npids = 0;
            break;
        }
        tu_sleep_ms(5);
    }
    tu_kill_instance_strays(st->instance);
    tu_unlink_shm(st->instance);
    nftw(st->dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    st->used = false;
}

void tu_env_cleanup(tu_env *e)
{
    tu_state *st = tu_find(e);
    if (st) {
        tu_state_cleanup(st);
    } else { /* not made by tu_env_init in this process: files only */
        tu_unlink_shm(e->instance);
        nftw(e->dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* ------------------------------------------------------------ programs */

static const char *tu_default_dir(bool test_prog)
{
    static char dirs[2][PATH_MAX];
    char *d = dirs[test_prog];
    if (d[0])
        return d;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return test_prog ? "build/tests/bin" : "build/bin";
    exe[n] = '\0';
    char *slash = strrchr(exe, '/'); /* <build>/tests/etsmgr-tests */
    if (slash)
        *slash = '\0';
    if (test_prog) {
        snprintf(d, PATH_MAX, "%.*s/bin", PATH_MAX - 8, exe);
    } else {
        slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(d, PATH_MAX, "%.*s/bin", PATH_MAX - 8, exe);
    }
    return d;
}

const char *tu_bin(const char *name, bool test_prog)
{
    static char bufs[8][PATH_MAX];
    static unsigned next;
    char *b = bufs[next++ % 8];
    const char *dir = getenv(test_prog ? "ETSMGR_TEST_BINDIR" : "ETSMGR_BINDIR");
    if (!dir || !*dir)
        dir = tu_default_dir(test_prog);
    snprintf(b, PATH_MAX, "%s/%s", dir, name);
    return b;
}

/* argv[0]: a path as is, else a program, else a test helper */
static const char *tu_resolve(const char *name)
{
    if (strchr(name, '/'))
        return name;
    const char *p = tu_bin(name, false);
    if (access(p, X_OK) == 0)
        return p;
    return tu_bin(name, true);
}

static pid_t tu_fork_exec(char *const argv[], const char *notify_path)
{
    const char *path = tu_resolve(argv[0]);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tu_spawn: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        if (notify_path)
            setenv("NOTIFY_SOCKET", notify_path, 1);
        else
            unsetenv("NOTIFY_SOCKET");
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        execv(path, argv);
        fprintf(stderr, "tu_spawn: execv %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    return pid;
}

pid_t tu_spawn(tu_env *e, char *const argv[])
{
    pid_t pid = tu_fork_exec(argv, NULL);
    if (pid > 0)
        tu_track(e, pid);
    return pid;
}

static bool tu_has_ready(const char *msg)
{
    for (const char *p = msg; p && *p;) {
        if (strncmp(p, "READY=1", 7) == 0 && (p[7] == '\n' || p[7] == '\0'))
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

static void tu_describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "changed state 0x%x", status);
}

pid_t tu_spawn_ready(tu_env *e, char *const argv[], int timeout_ms)
{
    tu_state *st = tu_find(e);
    char npath[128];
    snprintf(npath, sizeof npath, "%s/notify-%d.sock", e->dir, st ? st->nspawn++ : (int)(tu_now_ms() % 100000));
    int nfd = notify_listen(npath);
    if (nfd < 0) {
        fprintf(stderr, "tu_spawn_ready: notify socket %s: %s\n", npath, strerror(errno));
        return -1;
    }
    pid_t pid = tu_fork_exec(argv, npath);
    if (pid < 0) {
        close(nfd);
        unlink(npath);
        return -1;
    }
    tu_track(e, pid);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    long long deadline = tu_now_ms() + timeout_ms;
    bool ready = false;
    int status = 0;
    bool exited = false;
    while (!ready && !exited) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            break;
        struct pollfd pf[2] = {{.fd = nfd, .events = POLLIN}, {.fd = pidfd, .events = POLLIN}};
        /* without a pidfd, look at the child every 20 ms */
        int t = pidfd >= 0 ? (int)left : (left < 20 ? (int)left : 20);
        int r = poll(pf, pidfd >= 0 ? 2 : 1, t);
        if (r < 0 && errno != EINTR)
            break;
        char msg[4096];
        int spid;
        while (notify_recv(nfd, msg, sizeof msg, &spid) >= 0)
            if (tu_has_ready(msg))
                ready = true;
        if (!ready && waitpid(pid, &status, WNOHANG) == pid)
            exited = true;
    }
    if (pidfd >= 0)
        close(pidfd);
    close(nfd);
    unlink(npath);
    if (ready)
        return pid;
    char what[128];
    if (exited) {
        tu_describe_status(status, what, sizeof what);
        tu_untrack(pid);
    } else {
        snprintf(what, sizeof what, "sent no READY=1 within %d ms (killed)", timeout_ms);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        tu_untrack(pid);
    }
    fprintf(stderr, "tu_spawn_ready: %s (pid %ld) %s\n", argv[0], (long)pid, what);
    return -1;
}

pid_t tu_spawn_logged(tu_env *e, char *const argv[], const char *log, int timeout_ms)
{
    char path[sizeof e->dir + 64];
    snprintf(path, sizeof path, "%s/%s", e->dir, log);
    int lf = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (lf < 0) {
        fprintf(stderr, "tu_spawn_logged: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* the child inherits fd 2: ours goes to the log for the fork's moment */
    fflush(stderr);
    int saved = dup(2);
    if (saved < 0 || dup2(lf, 2) < 0) {
        fprintf(stderr, "tu_spawn_logged: dup2: %s\n", strerror(errno));
        if (saved >= 0)
            close(saved);
        close(lf);
        return -1;
    }
    pid_t pid = timeout_ms > 0 ? tu_spawn_ready(e, argv, timeout_ms) : tu_spawn(e, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(lf);
    return pid;
}

char *tu_log(const tu_env *e, const char *log)
{
    char path[sizeof e->dir + 64];
    snprintf(path, sizeof path, "%s/%s", e->dir, log);
    char *s = rc_slurp(path);
    return s ? s : strdup("");
}

pid_t tu_fork_pipe(int *fd)
{
    int p[2];
    if (pipe(p) < 0) {
        fprintf(stderr, "tu_fork_pipe: pipe: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tu_fork_pipe: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    close(p[pid == 0 ? 0 : 1]);
    *fd = p[pid == 0 ? 1 : 0];
    return pid;
}

int tu_kill9(pid_t pid)
{
    int status = -1;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    tu_untrack(pid);
    return status;
}

int tu_wait(pid_t pid, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            if (pidfd >= 0)
                close(pidfd);
            tu_untrack(pid);
            return status;
        }
        if (r < 0 && errno != EINTR)
            break;
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            break;
        if (pidfd >= 0) {
            struct pollfd pf = {.fd = pidfd, .events = POLLIN};
            poll(&pf, 1, (int)left);
        } else {
            tu_sleep_ms(left < 5 ? (int)left : 5);
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return -1;
}

bool tu_eventually(bool (*cond)(void *), void *arg, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        if (cond(arg))
            return true;
        if (tu_now_ms() >= deadline)
            return false;
        tu_sleep_ms(5);
    }
}

char *tu_request(tu_env *e, const char *sock, const char *json, const int *fds, int nfds, int *rfds,
                 int *nrfds)
{
    char path[PATH_MAX];
    if (nrfds)
        *nrfds = 0;
    if (sock[0] == '/')
        snprintf(path, sizeof path, "%s", sock);
    else
        snprintf(path, sizeof path, "%s/%s", e->dir, sock);
    int fd = sock_connect_unix(path);
    if (fd < 0) {
        fprintf(stderr, "tu_request: connect %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (frame_write(fd, json, strlen(json), fds, nfds) < 0) {
        fprintf(stderr, "tu_request: write to %s: %s\n", path, strerror(errno));
        close(fd);
        return NULL;
    }
    char *reply = NULL;
    size_t len;
    int got[FRAME_MAX_FDS], ngot = 0;
    if (frame_read(fd, &reply, &len, got, &ngot, FRAME_MAX_FDS, 10000) < 0) {
        fprintf(stderr, "tu_request: read from %s: %s\n", path, strerror(errno));
        close(fd);
        return NULL;
    }
    close(fd);
    for (int i = 0; i < ngot; i++) {
        if (rfds)
            rfds[i] = got[i];
        else
            close(got[i]);
    }
    if (nrfds && rfds)
        *nrfds = ngot;
    return reply;
}

/* The fds open in pid, from /proc/PID/fd: how many (less the listing's own
 * when pid is this process), marked in used[0..4096) when used is not
 * NULL; -1 when pid's fds cannot be listed. */
static int fds_open(pid_t pid, bool *used)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        n++;
        int fd = atoi(de->d_name);
        if (used && fd >= 0 && fd < 4096)
            used[fd] = true;
    }
    closedir(d);
    if (pid == getpid())
        n--; /* the DIR's own fd */
    return n;
}

int tu_count_fds(pid_t pid)
{
    return fds_open(pid, NULL);
}

int tu_free_fds(pid_t pid, int *out, int n)
{
    static bool used[4096];
    memset(used, 0, sizeof used);
    if (fds_open(pid, used) < 0)
        return 0;
    int k = 0;
    for (int fd = 0; fd < 4096 && k < n; fd++)
        if (!used[fd])
            out[k++] = fd;
    return k;
}

bool tu_fds_exhaust(pid_t pid, struct rlimit *old)
{
    int low;
    if (tu_free_fds(pid, &low, 1) != 1 || prlimit(pid, RLIMIT_NOFILE, NULL, old) < 0)
        return false;
    struct rlimit lim = *old;
    lim.rlim_cur = (rlim_t)low;
    return prlimit(pid, RLIMIT_NOFILE, &lim, NULL) == 0;
}

int tu_count_shm(const tu_env *e)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return -1;
    size_t il = strlen(e->instance);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, e->instance, il) == 0 && (de->d_name[il] == '.' || de->d_name[il] == ':'))
            n++;
    closedir(d);
    return n;
}

void tu_shm_path(const tu_env *e, unsigned long uid, const char *table, char *buf, size_t len)
{
    snprintf(buf, len, "/dev/shm/%s:%lu:%s", e->instance, uid, table);
}

bool tu_root_or_skip(const char *test)
{
    if (geteuid() == 0)
        return true;
    fprintf(stderr, "%s: skipped, needs root to run a client as uid 65534\n", test);
    return false;
}

void tu_open_mgr_sock(const tu_env *e, char *sock, size_t len)
{
    snprintf(sock, len, "%s/etsmgrd.sock", e->dir);
    if (chmod(e->dir, 0711) < 0 || chmod(sock, 0666) < 0) {
        fprintf(stderr, "tu_open_mgr_sock: chmod %s or %s: %s\n", e->dir, sock, strerror(errno));
        abort();
    }
}

bool tu_has_zombie_children(pid_t pid)
{
    DIR *d = opendir("/proc");
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        char *end;
        long p = strtol(de->d_name, &end, 10);
        if (*end || p <= 0)
            continue;
        proc_stat st;
        if (proc_stat_read((pid_t)p, &st) == 0 && st.ppid == pid && st.state == 'Z')
            found = true;
    }
    closedir(d);
    return found;
}

/* ------------------------------------------------------------ the runner's sweep */

#define TU_SWEEP_ENV "ETSMGR_TEST_SWEEP"

int tu_sweep_begin(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "etsmgr-tests: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    close(fd);
    return setenv(TU_SWEEP_ENV, path, 1);
}

void tu_sweep_note(const char *kind, const char *name, const char *dir)
{
    static char path[PATH_MAX];
    if (!path[0]) { /* kept: a test may change its environment later */
        const char *p = getenv(TU_SWEEP_ENV);
        if (!p || !*p)
            return;
        snprintf(path, sizeof path, "%s", p);
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return;
    /* one write per line: concurrent tests' lines do not mix (O_APPEND) */
    char line[PATH_MAX + 256];
    int n = snprintf(line, sizeof line, "%s %s %s\n", kind, name, dir && *dir ? dir : "-");
    if (n > 0 && (size_t)n < sizeof line && write(fd, line, (size_t)n) != n)
        fprintf(stderr, "tu_sweep_note: write %s: %s\n", path, strerror(errno));
    close(fd);
}

int tu_sweep_collect(FILE *out)
{
    static long done; /* the record is read once, in order */
    const char *path = getenv(TU_SWEEP_ENV);
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return 0;
    if (fseek(f, done, SEEK_SET) < 0) {
        fclose(f);
        return 0;
    }
    int found = 0;
    char line[PATH_MAX + 320], kind[32], name[256], dir[PATH_MAX];
    while (fgets(line, sizeof line, f) && strchr(line, '\n')) {
        done = ftell(f);
        if (sscanf(line, "%31s %255s %4095s", kind, name, dir) != 3)
            continue;
        int procs = 0, shm = 0, dirs = 0;
        if (strcmp(kind, "instance") == 0) {
            procs = tu_kill_instance_strays(name);
            shm = tu_unlink_shm(name);
            struct stat st;
            if (dir[0] == '/' && lstat(dir, &st) == 0) {
                dirs = 1;
                nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
            }
        } else if (strcmp(kind, "shm") == 0) {
            shm = shm_unlink(name) == 0;
        }
        if (procs + shm + dirs > 0)
            fprintf(out, "left behind: %s %s: %d process(es), %d shm object(s), %d runtime dir (%s); removed now\n",
                    kind, name, procs, shm, dirs, dir);
        found += procs + shm + dirs;
    }
    fclose(f);
    return found;
}

int tu_sanitizer_reports(const char *path, FILE *out)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", ": runtime error: "};
    char line[4096], first[4096] = "";
    int found = 0, pending = 0;
    while (fgets(line, sizeof line, f)) {
        bool report = false;
        for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
            report = report || strstr(line, marks[i]);
        if (report) {
            if (!pending++)
                snprintf(first, sizeof first, "%s", line);
            continue;
        }
        /* check's result line: FILE:LINE:P|F|E:SUITE:TEST:I: ... */
        const char *r = strstr(line, ":P:");
        if (!r) r = strstr(line, ":F:");
        if (!r) r = strstr(line, ":E:");
        if (pending && r && strstr(line, "tests/test_")) {
            first[strcspn(first, "\n")] = 0;
            line[strcspn(line, "\n")] = 0;
            fprintf(out, "etsmgr-tests: %d sanitizer report%s in the output of %s; the first: %s\n", pending,
                    pending > 1 ? "s" : "", line, first);
            found += pending;
            pending = 0;
        }
    }
    if (pending) {
        first[strcspn(first, "\n")] = 0;
        fprintf(out, "etsmgr-tests: %d sanitizer report%s after the last test; the first: %s\n", pending,
                pending > 1 ? "s" : "", first);
        found += pending;
    }
    fclose(f);
    return found;
}

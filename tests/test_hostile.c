/* SPDX-License-Identifier: Apache-2.0 */
/* test_hostile.c: hostile peers against the real etsmgrd and etscounterd.
 *
 * Each test plays a peer no well-behaved client would be: a frame that
 * announces 4 GiB, a frame cut off by the peer's exit, a thousand
 * connections held open, a request sent one byte at a time, bytes that are
 * not JSON, every field of the wrong type, names that try to leave the
 * instance's namespace, fds where none belong.  Three things are asserted
 * every time, because they are what a daemon shared by many processes
 * owes the others:
 *   - the daemon survives (same pid) and answers its error code;
 *   - a well-behaved client is served meanwhile, and how long its request
 *     took is measured (printed as "hostile: ..." lines, copied into
 *     docs/security.md);
 *   - nothing is kept: every received fd is closed (/proc/PID/fd counted
 *     before and after), no shm object appears, memory returns to a
 *     bounded level after a flood (VmRSS, loose bound).
 * Waiting is on replies and on /proc states, never a bare sleep; the
 * "one byte a second" client sends a byte every 10 ms so the test stays
 * short, which is the same situation for an event loop. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "procstat.h"
#include "runcap.h"
#include "runtime.h"
#include "sock.h"
#include "table.h"
#include "test_hostile.h"

/* ------------------------------------------------------------ helpers */

double hs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static pid_t hs_start_logged(tu_env *e, const char *prog, const char *log, const char *const *extra)
{
    signal(SIGPIPE, SIG_IGN); /* a daemon that closes first makes a write fail, not the test die */
    const char *argv[24] = {prog};
    int n = 1;
    for (int i = 0; extra && extra[i] && n < 23; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = tu_spawn_logged(e, (char *const *)argv, log, HS_TIMEOUT_MS);
    ck_assert_msg(pid > 0, "%s did not become ready (see %s/%s)", prog, e->dir, log);
    return pid;
}

pid_t hs_start_mgrd(tu_env *e, const char *const *extra)
{
    return hs_start_logged(e, "etsmgrd", "etsmgrd.log", extra);
}

pid_t hs_start_counterd(tu_env *e) { return hs_start_logged(e, "etscounterd", "etscounterd.log", NULL); }

int hs_connect(const tu_env *e, const char *sock)
{
    char path[RT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", e->dir, sock);
    int fd = sock_connect_unix(path);
    ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(errno));
    return fd;
}

cJSON *hs_call(int fd, const char *payload, size_t len, const int *fds, int nfds, int *rfd)
{
    ck_assert_msg(frame_write(fd, payload, len, fds, nfds) == 0, "frame_write: %s", strerror(errno));
    cJSON *r = NULL;
    int got[FRAME_MAX_FDS], ngot = 0;
    int rc = frame_read_json(fd, &r, got, &ngot, FRAME_MAX_FDS, HS_TIMEOUT_MS);
    ck_assert_msg(rc == 0, "no reply to %.100s: %s", payload, strerror(errno));
    if (rfd)
        *rfd = ngot ? got[0] : -1;
    for (int i = rfd ? 1 : 0; i < ngot; i++)
        close(got[i]);
    return r;
}

const char *hs_code(const cJSON *r)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")))
        return "";
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "error"));
    return c ? c : "(no error code)";
}

void hs_expect(int fd, const char *payload, size_t len, const int *fds, int nfds, const char *code)
{
    cJSON *r = hs_call(fd, payload, len, fds, nfds, NULL);
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg(strcmp(hs_code(r), code) == 0, "%.120s: expected %s, got %s", payload,
                  code[0] ? code : "ok", s);
    if (code[0]) {
        const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "message"));
        ck_assert_msg(m && m[0], "%s without a message: %s", code, s);
    }
    free(s);
    cJSON_Delete(r);
}

double hs_request_ms(const tu_env *e, const char *sock, const char *json)
{
    double t0 = hs_now_ms();
    int fd = hs_connect(e, sock);
    cJSON *r = hs_call(fd, json, strlen(json), NULL, 0, NULL);
    double dt = hs_now_ms() - t0;
    ck_assert_msg(strcmp(hs_code(r), "") == 0, "%s on %s failed: %s", json, sock, hs_code(r));
    cJSON_Delete(r);
    close(fd);
    return dt;
}

long hs_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

bool hs_alive(pid_t pid)
{
    proc_stat st;
    return proc_stat_read(pid, &st) == 0 && st.state != 'Z' && st.state != 'X';
}

void hs_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "write: %s", strerror(errno));
        c += w;
        n -= (size_t)w;
    }
}

void hs_send_with_fds(int fd, const void *p, size_t n, const int *fds, int nfds)
{
    struct iovec iov = {(void *)p, n};
    ssize_t w = fdpass_send(fd, &iov, 1, 0, fds, nfds);
    ck_assert_msg(w == (ssize_t)n, "sendmsg with %d fds: %s", nfds, strerror(errno));
}

/* Whether this kernel has SO_PASSRIGHTS (Linux 6.16), with which
 * etscounterd's socket refuses fds: the sender's sendmsg fails with EPERM. */
static bool hs_kernel_refuses_fds(void)
{
    int probe = socket(AF_UNIX, SOCK_STREAM, 0), v = 0;
    socklen_t vl = sizeof v;
    bool has = probe >= 0 && getsockopt(probe, SOL_SOCKET, 83 /* SO_PASSRIGHTS */, &v, &vl) == 0;
    if (probe >= 0)
        close(probe);
    return has;
}

bool hs_raise_nofile(rlim_t n)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return false;
    if (rl.rlim_cur >= n)
        return true;
    if (rl.rlim_max < n)
        rl.rlim_max = n; /* only root may; fails otherwise */
    rl.rlim_cur = n;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/* A frame's bytes (prefix + payload) in a malloc'd buffer. */
static char *hs_frame(const char *payload, size_t *len)
{
    char *b = frame_encode(payload, strlen(payload), len);
    ck_assert_ptr_nonnull(b);
    return b;
}

typedef struct fd_wait {
    pid_t pid;
    int want;
} fd_wait;
static bool fds_at_most(void *arg)
{
    fd_wait *w = arg;
    int n = tu_count_fds(w->pid);
    return n >= 0 && n <= w->want;
}
/* The daemon's sockets only: a connection is one, while a transient fd (the
 * dup of a table fd queued with a reply to etscounterd at start) is not,
 * and counted in a baseline it made "accepted only 999 of 1000" when it
 * closed during the flood. */
static int hs_count_socks(pid_t pid)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char path[64 + sizeof de->d_name], target[64];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        ssize_t l = readlink(path, target, sizeof target - 1);
        if (l > 0 && (target[l] = '\0', strncmp(target, "socket:", 7) == 0))
            n++;
    }
    closedir(d);
    return n;
}
static bool socks_at_least(void *arg)
{
    fd_wait *w = arg;
    return hs_count_socks(w->pid) >= w->want;
}
/* No more fds than want (a daemon may have fewer: a transient one, such as
 * the dup of an fd queued with a reply, may have been counted in want). */
static void hs_expect_fds(pid_t pid, int want, const char *after)
{
    fd_wait w = {pid, want};
    ck_assert_msg(tu_eventually(fds_at_most, &w, HS_TIMEOUT_MS), "daemon %d has %d fds after %s, at most %d expected",
                  (int)pid, tu_count_fds(pid), after, want);
}

static const char *const daemon_socks[2] = {"etsmgrd.sock", "etscounter.sock"};
static const char *const daemon_names[2] = {"etsmgrd", "etscounterd"};
static const char *const good_req[2] = {"{\"op\":\"hello\",\"id\":1}", "{\"op\":\"ping\",\"id\":1}"};

/* ------------------------------------------------------------ framing */

/* A length prefix of 4 GiB - 1 (and 2 GiB, and FRAME_MAX + 1) on each
 * daemon: frame_too_large, the connection closed, nothing allocated for it,
 * and the next client is served. */
START_TEST(test_frame_too_large)
{
    tu_env e;
    tu_env_init(&e);
    pid_t pids[2];
    pids[0] = hs_start_mgrd(&e, NULL);
    pids[1] = hs_start_counterd(&e);
    static const unsigned char hdrs[3][4] = {{0xff, 0xff, 0xff, 0xff}, {0x80, 0, 0, 0}, {0, 1, 0, 1}};
    for (int d = 0; d < 2; d++) {
        int fd0 = tu_count_fds(pids[d]);
        long rss0 = hs_rss_kb(pids[d]);
        for (int h = 0; h < 3; h++) {
            int fd = hs_connect(&e, daemon_socks[d]);
            hs_write_all(fd, hdrs[h], 4);
            (void)!write(fd, "{\"op\":", 6); /* may find the connection closed already */
            cJSON *r = NULL;
            ck_assert_msg(frame_read_json(fd, &r, NULL, NULL, 0, HS_TIMEOUT_MS) == 0,
                          "%s: no reply to a frame of %02x%02x%02x%02x bytes: %s", daemon_names[d],
                          hdrs[h][0], hdrs[h][1], hdrs[h][2], hdrs[h][3], strerror(errno));
            ck_assert_str_eq(hs_code(r), "frame_too_large");
            cJSON_Delete(r);
            /* closed: end of file, or ECONNRESET when our extra bytes were
             * still unread in the daemon's socket as it closed it (AF_UNIX
             * reports that to the peer once the queued reply is read; seen
             * under SANITIZE=1, where the daemon is slower to close) */
            char c;
            ssize_t got = read(fd, &c, 1);
            ck_assert_msg(got == 0 || (got < 0 && errno == ECONNRESET),
                          "%s kept the connection open after frame_too_large (read %zd: %s)", daemon_names[d], got,
                          got < 0 ? strerror(errno) : "a byte");
            close(fd);
            ck_assert(hs_alive(pids[d]));
            hs_request_ms(&e, daemon_socks[d], good_req[d]);
        }
        hs_expect_fds(pids[d], fd0, "three oversized frames");
        long rss1 = hs_rss_kb(pids[d]);
        ck_assert_msg(rss1 - rss0 < 4096, "%s grew from %ld to %ld KiB on oversized frames", daemon_names[d],
                      rss0, rss1);
    }
    tu_env_cleanup(&e);
}
END_TEST

/* Half a frame, then the peer is gone (closes, or is SIGKILLed in the
 * middle): dropped silently, the fd closed, the daemon serves on. */
START_TEST(test_cut_frame)
{
    tu_env e;
    tu_env_init(&e);
    pid_t pids[2];
    pids[0] = hs_start_mgrd(&e, NULL);
    pids[1] = hs_start_counterd(&e);
    for (int d = 0; d < 2; d++) {
        int fd0 = tu_count_fds(pids[d]);
        size_t len;
        char *f = hs_frame(good_req[d], &len);
        for (size_t cut = 1; cut < len; cut += 3) {
            int fd = hs_connect(&e, daemon_socks[d]);
            hs_write_all(fd, f, cut);
            close(fd);
        }
        /* a child that dies with half a frame sent */
        pid_t child = fork();
        ck_assert_int_ge(child, 0);
        if (child == 0) {
            char path[RT_PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/%s", e.dir, daemon_socks[d]);
            int fd = sock_connect_unix(path);
            if (fd < 0 || write(fd, f, len / 2) < 0)
                _exit(1);
            raise(SIGKILL);
        }
        tu_wait(child, HS_TIMEOUT_MS);
        free(f);
        ck_assert(hs_alive(pids[d]));
        hs_request_ms(&e, daemon_socks[d], good_req[d]);
        hs_expect_fds(pids[d], fd0, "cut frames");
    }
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ floods */

/* 1,000 connections opened at once and held, half of them with a frame
 * started and never finished (each holding ~32 KiB of buffer in the
 * daemon); a well-behaved client's request completes meanwhile, in
 * measured time.  Twice, so that growth between rounds shows: the RSS
 * after the second flood must stay near the first's. */
#define HS_FLOOD 1000
#define HS_ROUNDS 3
START_TEST(test_flood_connections)
{
    if (!hs_raise_nofile(HS_FLOOD + 1024)) {
        fprintf(stderr, "hostile: SKIP 1,000 connections: cannot raise RLIMIT_NOFILE to %d\n", HS_FLOOD + 1024);
        return;
    }
    tu_env e;
    tu_env_init(&e);
    pid_t pids[2];
    pids[0] = hs_start_mgrd(&e, NULL); /* they inherit the raised limit */
    pids[1] = hs_start_counterd(&e);
    static char half[4 + 32768];
    half[0] = 0, half[1] = 1, half[2] = 0, half[3] = 0; /* announces 65536 bytes */
    memset(half + 4, ' ', sizeof half - 4);
    int *held = calloc(HS_FLOOD, sizeof *held);
    ck_assert_ptr_nonnull(held);
    for (int d = 0; d < 2; d++) {
        int fd0 = tu_count_fds(pids[d]), socks0 = hs_count_socks(pids[d]);
        long rss0 = hs_rss_kb(pids[d]), rss_peak[HS_ROUNDS] = {0}, rss_after[HS_ROUNDS] = {0};
        double worst = 0, sum = 0;
        int n = 0;
        for (int round = 0; round < HS_ROUNDS; round++) {
            double t0 = hs_now_ms();
            for (int i = 0; i < HS_FLOOD; i++) {
                held[i] = hs_connect(&e, daemon_socks[d]);
                if (i % 2)
                    hs_write_all(held[i], half, sizeof half);
            }
            fd_wait w = {pids[d], socks0 + HS_FLOOD};
            ck_assert_msg(tu_eventually(socks_at_least, &w, 30000), "%s accepted only %d of %d connections",
                          daemon_names[d], hs_count_socks(pids[d]) - socks0, HS_FLOOD);
            double t_open = hs_now_ms() - t0;
            for (int k = 0; k < 5; k++) {
                double ms = hs_request_ms(&e, daemon_socks[d], good_req[d]);
                sum += ms;
                n++;
                if (ms > worst)
                    worst = ms;
            }
            if (d == 1) { /* a count, the real work, completes too */
                double ms = hs_request_ms(&e, daemon_socks[d], "{\"op\":\"count\",\"id\":2}");
                if (ms > worst)
                    worst = ms;
            }
            rss_peak[round] = hs_rss_kb(pids[d]);
            for (int i = 0; i < HS_FLOOD; i++)
                close(held[i]);
            hs_expect_fds(pids[d], fd0, "the flood's connections closed");
            rss_after[round] = hs_rss_kb(pids[d]);
            printf("hostile: %s: %d connections opened and accepted in %.0f ms; RSS %ld KiB before, "
                   "%ld KiB held, %ld KiB after closing (round %d)\n",
                   daemon_names[d], HS_FLOOD, t_open, rss0, rss_peak[round], rss_after[round], round + 1);
        }
        printf("hostile: %s: a fresh client's request while %d connections are held: mean %.1f ms, "
               "worst %.1f ms (%d requests)\n",
               daemon_names[d], HS_FLOOD, sum / n, worst, n);
        ck_assert_msg(worst < 3000, "%s took %.0f ms to serve a client during the flood", daemon_names[d], worst);
        ck_assert(hs_alive(pids[d]));
        /* bounded: 1,000 half frames cost at most ~64 MiB + overhead while
         * held.  Later floods reuse the first one's memory: malloc's
         * fragmentation adds a few MiB at first, then levels off (measured:
         * 20.7, 23-29, 24-26 MiB held in rounds 1-3), while a leaked buffer
         * per unfinished frame would add 16 MiB per round. */
        ck_assert_msg(rss_peak[0] - rss0 < 200 * 1024, "%s: RSS %ld -> %ld KiB during the flood",
                      daemon_names[d], rss0, rss_peak[0]);
#if defined(__SANITIZE_ADDRESS__)
        /* ASan keeps freed memory in quarantine and does not reuse it at
         * once, so RSS grows flood after flood by design (the daemons are
         * built like this runner); LeakSanitizer at the daemon's exit below
         * is the leak check instead */
        (void)rss_after;
#else
        ck_assert_msg(rss_peak[HS_ROUNDS - 1] <= rss_peak[0] + 16384,
                      "%s: memory grows flood after flood (%ld, %ld, %ld KiB held; %ld, %ld, %ld after)",
                      daemon_names[d], rss_peak[0], rss_peak[1], rss_peak[2], rss_after[0], rss_after[1],
                      rss_after[2]);
#endif
    }
    free(held);
    /* an orderly exit frees everything: under ASan, LeakSanitizer reports
     * whatever the floods left unreachable and makes the exit status 23 */
    for (int d = 1; d >= 0; d--) {
        ck_assert_int_eq(kill(pids[d], SIGTERM), 0);
        int st = tu_wait(pids[d], HS_TIMEOUT_MS);
        char log[300], *text;
        snprintf(log, sizeof log, "%s/%s.log", e.dir, daemon_names[d]);
        text = rc_slurp(log);
        ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0 && !(text && strstr(text, "LeakSanitizer")),
                      "%s after the floods and SIGTERM: status %d, log:\n%s", daemon_names[d], st, text ? text : "");
        free(text);
    }
    tu_env_cleanup(&e);
}
END_TEST

/* Past --max-connections: too_many_connections and a close, at once; the
 * connections within the limit keep working. */
START_TEST(test_connection_limit)
{
    tu_env e;
    tu_env_init(&e);
    const char *const extra[] = {"--max-connections", "8", NULL};
    pid_t d = hs_start_mgrd(&e, extra);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = hs_connect(&e, "etsmgrd.sock");
        hs_expect(fds[i], "{\"op\":\"hello\"}", strlen("{\"op\":\"hello\"}"), NULL, 0, "");
    }
    for (int i = 0; i < 3; i++) {
        int fd = hs_connect(&e, "etsmgrd.sock");
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, HS_TIMEOUT_MS), 0);
        ck_assert_str_eq(hs_code(r), "too_many_connections");
        cJSON_Delete(r);
        close(fd);
    }
    hs_expect(fds[3], "{\"op\":\"hello\"}", strlen("{\"op\":\"hello\"}"), NULL, 0, "");
    for (int i = 0; i < 8; i++)
        close(fds[i]);
    ck_assert(hs_alive(d));
    tu_env_cleanup(&e);
}
END_TEST

/* A client that sends its request one byte at a time: while it dribbles,
 * another client is served after every byte, and the dribbler gets its
 * reply once its frame is whole. */
START_TEST(test_dribble)
{
    tu_env e;
    tu_env_init(&e);
    pid_t pids[2];
    pids[0] = hs_start_mgrd(&e, NULL);
    pids[1] = hs_start_counterd(&e);
    for (int d = 0; d < 2; d++) {
        size_t len;
        char *f = hs_frame(good_req[d], &len);
        int slow = hs_connect(&e, daemon_socks[d]);
        int fast = hs_connect(&e, daemon_socks[d]);
        double worst = 0;
        for (size_t i = 0; i < len; i++) {
            hs_write_all(slow, f + i, 1);
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL); /* the dribbler's pace, not a synchronisation */
            double t0 = hs_now_ms();
            hs_expect(fast, good_req[d], strlen(good_req[d]), NULL, 0, "");
            double ms = hs_now_ms() - t0;
            if (ms > worst)
                worst = ms;
        }
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(slow, &r, NULL, NULL, 0, HS_TIMEOUT_MS), 0);
        ck_assert_str_eq(hs_code(r), "");
        cJSON_Delete(r);
        printf("hostile: %s: while a client sent its %zu-byte request one byte at a time, another "
               "was served after each byte in at most %.1f ms\n",
               daemon_names[d], len, worst);
        ck_assert_msg(worst < 1000, "%s: %.0f ms for a request during a dribble", daemon_names[d], worst);
        ck_assert(hs_alive(pids[d]));
        close(slow);
        close(fast);
        free(f);
    }
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ garbage */

typedef struct bad_case {
    const char *payload; /* NULL ends the list */
    size_t len;          /* 0: strlen */
    const char *code;
} bad_case;

/* The same payloads for both daemons: what the shared parser refuses. */
static const bad_case bad_common[] = {
    {"not json at all", 0, "bad_json"},
    {"{", 0, "bad_json"},
    {"\xff\xfe\x80garbage", 0, "bad_json"},
    {"{\"op\":\"hello\"} trailing", 0, "bad_json"},
    {"{\"op\":\"hel\0lo\"}", 15, "bad_json"}, /* a raw NUL */
    {"", 0, "bad_json"},
    {"[1,2]", 0, "bad_request"},
    {"42", 0, "bad_request"},
    {"\"hello\"", 0, "bad_request"},
    {"null", 0, "bad_request"},
    {"true", 0, "bad_request"},
    {"{}", 0, "bad_request"},
    {"{\"id\":1}", 0, "bad_request"},
    {"{\"op\":5}", 0, "bad_request"},
    {"{\"op\":null}", 0, "bad_request"},
    {"{\"op\":[\"hello\"]}", 0, "bad_request"},
    {"{\"op\":{\"a\":1}}", 0, "bad_request"},
    {"{\"op\":\"hel\\u0000lo\"}", 0, "bad_request"},
    {"{\"op\":\"no_such_op\"}", 0, "unknown_op"},
    {"{\"op\":\"\"}", 0, "unknown_op"},
    {NULL, 0, NULL},
};

static const bad_case bad_mgrd[] = {
    /* each field of the wrong type */
    {"{\"op\":\"new_table\"}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":5}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":null}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":[\"t\"]}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"heir_data\":5}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"heir_data\":{}}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":5}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":[]}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"size_hint\":\"big\"}}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"size_hint\":-1}}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"size_hint\":1.5}}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"max_bytes\":1e300}}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"max_bytes\":true}}", 0, "bad_request"},
    {"{\"op\":\"del_table\",\"name\":\"t\",\"unlink\":\"yes\"}", 0, "bad_request"},
    {"{\"op\":\"del_table\",\"name\":\"t\",\"unlink\":1}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\"}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\",\"pid\":\"1\"}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\",\"pid\":0}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\",\"pid\":-5}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\",\"pid\":1e20}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\",\"pid\":2.5}", 0, "bad_request"},
    {"{\"op\":\"give_away\",\"name\":\"t\",\"pid\":1,\"data\":7}", 0, "bad_request"},
    {"{\"op\":\"info\",\"name\":5}", 0, "bad_request"},
    {"{\"op\":\"tables\",\"name\":false}", 0, "bad_request"},
    /* names that try to leave /dev/shm/<instance>.* */
    {"{\"op\":\"new_table\",\"name\":\"a/b\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"..\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\".\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"../../etc/passwd\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"/t\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"t t\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"caf\xc3\xa9\"}", 0, "bad_name"},
    {"{\"op\":\"new_table\",\"name\":\"a\\u0000b\"}", 0, "bad_request"},
    {"{\"op\":\"new_table\",\"name\":\"\\u0000\"}", 0, "bad_request"},
    {"{\"op\":\"del_table\",\"name\":\"../x\"}", 0, "bad_name"},
    {"{\"op\":\"give_away\",\"name\":\"a/b\",\"pid\":1}", 0, "bad_name"},
    {NULL, 0, NULL},
};

static const bad_case bad_counterd[] = {
    {"{\"op\":\"count\",\"rid\":5}", 0, "bad_request"},
    {"{\"op\":\"count\",\"rid\":null}", 0, "bad_request"},
    {"{\"op\":\"count\",\"rid\":\"xyz\"}", 0, "bad_request"},
    {"{\"op\":\"count\",\"rid\":\"0123456789abcdef0123456789abcdeg\"}", 0, "bad_request"},
    {"{\"op\":\"count\",\"rid\":\"0123456789abcdef0123456789abcdef0\"}", 0, "bad_request"},
    {"{\"op\":\"count\",\"rid\":\"../../0123456789abcdef0123456789\"}", 0, "bad_request"},
    {NULL, 0, NULL},
};

static void run_cases(int fd, const bad_case *cases)
{
    for (const bad_case *c = cases; c->payload; c++)
        hs_expect(fd, c->payload, c->len ? c->len : strlen(c->payload), NULL, 0, c->code);
}

/* Every malformed request on one connection (which must stay usable), then
 * the daemon is the same process, serves a fresh client, created no shm
 * object and holds no more fds than before. */
START_TEST(test_garbage)
{
    tu_env e;
    tu_env_init(&e);
    pid_t pids[2];
    pids[0] = hs_start_mgrd(&e, NULL);
    int shm0 = tu_count_shm(&e);
    int fd0 = tu_count_fds(pids[0]);
    int fd = hs_connect(&e, "etsmgrd.sock");
    run_cases(fd, bad_common);
    run_cases(fd, bad_mgrd);
    /* a name of 1,000 characters, with each op that takes a name */
    static const char *const ops[] = {"new_table", "del_table", "info", "give_away"};
    char big[1200], name[1001];
    memset(name, 'a', 1000);
    name[1000] = '\0';
    for (size_t i = 0; i < 4; i++) {
        snprintf(big, sizeof big, "{\"op\":\"%s\",\"name\":\"%s\",\"pid\":1}", ops[i], name);
        hs_expect(fd, big, strlen(big), NULL, 0, strcmp(ops[i], "info") == 0 ? "not_found" : "bad_name");
    }
    /* add_table checks the name before the fd (an fd must come, or no_fd) */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    snprintf(big, sizeof big, "{\"op\":\"add_table\",\"name\":\"%s\"}", name);
    hs_expect(fd, big, strlen(big), &devnull, 1, "bad_name");
    hs_expect(fd, "{\"op\":\"add_table\",\"name\":\"a/b\"}", strlen("{\"op\":\"add_table\",\"name\":\"a/b\"}"), &devnull, 1, "bad_name");
    close(devnull);
    /* deep nesting */
    char deep[4100];
    size_t k = (size_t)snprintf(deep, sizeof deep, "{\"op\":\"hello\",\"id\":");
    for (int i = 0; i < 2000; i++)
        deep[k++] = '[';
    for (int i = 0; i < 2000; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    deep[k] = '\0';
    cJSON *r = hs_call(fd, deep, k, NULL, 0, NULL);
    ck_assert_msg(strcmp(hs_code(r), "bad_json") == 0 || strcmp(hs_code(r), "") == 0, "deep nesting: %s",
                  hs_code(r));
    cJSON_Delete(r);
    hs_expect(fd, "{\"op\":\"hello\",\"id\":\"still here\"}", strlen("{\"op\":\"hello\",\"id\":\"still here\"}"), NULL, 0, "");
    close(fd);
    ck_assert(hs_alive(pids[0]));
    ck_assert_int_eq(tu_count_shm(&e), shm0);
    hs_expect_fds(pids[0], fd0, "malformed requests");

    pids[1] = hs_start_counterd(&e);
    fd0 = tu_count_fds(pids[1]);
    fd = hs_connect(&e, "etscounter.sock");
    run_cases(fd, bad_common);
    run_cases(fd, bad_counterd);
    hs_expect(fd, "{\"op\":\"ping\"}", strlen("{\"op\":\"ping\"}"), NULL, 0, "");
    close(fd);
    ck_assert(hs_alive(pids[1]));
    ck_assert(hs_alive(pids[0]));
    hs_expect_fds(pids[1], fd0, "malformed requests");
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ fds */

static int hs_pipe_end(void)
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    close(p[1]);
    return p[0];
}

/* Every kind of fd where it does not belong: refused with its code, and
 * the daemon's fd count is back where it was after each. */
START_TEST(test_fd_abuse)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = hs_start_mgrd(&e, NULL);
    int fd = hs_connect(&e, "etsmgrd.sock");
    int tfd = -1, t2fd = -1;
    cJSON *r = hs_call(fd, "{\"op\":\"new_table\",\"name\":\"t\"}", strlen("{\"op\":\"new_table\",\"name\":\"t\"}"), NULL, 0, &tfd);
    ck_assert_str_eq(hs_code(r), "");
    cJSON_Delete(r);
    r = hs_call(fd, "{\"op\":\"new_table\",\"name\":\"t2\"}", strlen("{\"op\":\"new_table\",\"name\":\"t2\"}"), NULL, 0, &t2fd);
    ck_assert_str_eq(hs_code(r), "");
    cJSON_Delete(r);
    ck_assert(tfd >= 0 && t2fd >= 0);
    /* one more round trip: the dup of t2's fd queued with the last reply is
     * closed by then */
    hs_expect(fd, "{\"op\":\"hello\"}", strlen("{\"op\":\"hello\"}"), NULL, 0, "");
    int base = tu_count_fds(d);

    /* fds on requests that take none */
    int one = hs_pipe_end();
    hs_expect(fd, "{\"op\":\"hello\"}", strlen("{\"op\":\"hello\"}"), &one, 1, "unexpected_fd");
    hs_expect_fds(d, base, "hello with an fd");
    int four[4];
    for (int i = 0; i < 4; i++)
        four[i] = hs_pipe_end();
    hs_expect(fd, "{\"op\":\"info\"}", strlen("{\"op\":\"info\"}"), four, 4, "unexpected_fd");
    hs_expect(fd, "{\"op\":\"del_table\",\"name\":\"nope\"}", strlen("{\"op\":\"del_table\",\"name\":\"nope\"}"), four, 4, "unexpected_fd");
    hs_expect(fd, "{\"op\":\"new_table\",\"name\":\"t\"}", strlen("{\"op\":\"new_table\",\"name\":\"t\"}"), &tfd, 1, "unexpected_fd");
    hs_expect_fds(d, base, "requests with fds they do not take");

    /* more fds than the protocol allows: 10, then 200, in one message */
    int many[200];
    for (int i = 0; i < 200; i++)
        many[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    size_t flen;
    char *f = hs_frame("{\"op\":\"hello\",\"id\":\"many\"}", &flen);
    for (int round = 0; round < 2; round++) {
        hs_send_with_fds(fd, f, flen, many, round ? 200 : 10);
        cJSON *rr = NULL;
        ck_assert_int_eq(frame_read_json(fd, &rr, NULL, NULL, 0, HS_TIMEOUT_MS), 0);
        ck_assert_str_eq(hs_code(rr), "unexpected_fd");
        cJSON_Delete(rr);
        hs_expect_fds(d, base, round ? "200 fds with a hello" : "10 fds with a hello");
    }
    free(f);
    f = hs_frame("{\"op\":\"add_table\",\"name\":\"t\"}", &flen);
    hs_send_with_fds(fd, f, flen, many, 10);
    cJSON *rr = NULL;
    ck_assert_int_eq(frame_read_json(fd, &rr, NULL, NULL, 0, HS_TIMEOUT_MS), 0);
    ck_assert_str_eq(hs_code(rr), "bad_fd");
    cJSON_Delete(rr);
    free(f);
    for (int i = 0; i < 200; i++)
        close(many[i]);
    hs_expect_fds(d, base, "10 fds with an add_table");

    /* add_table with the wrong fds */
    const char *add_t = "{\"op\":\"add_table\",\"name\":\"t\"}";
    hs_expect(fd, add_t, strlen(add_t), NULL, 0, "no_fd");
    int two[2] = {tfd, t2fd};
    hs_expect(fd, add_t, strlen(add_t), two, 2, "bad_fd");
    hs_expect(fd, add_t, strlen(add_t), &one, 1, "bad_fd"); /* a pipe */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    hs_expect(fd, add_t, strlen(add_t), &sv[0], 1, "bad_fd"); /* a socket */
    char path[RT_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/regular", e.dir);
    int reg = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(reg, 0);
    ck_assert_int_eq(pwrite(reg, "x", 1, 65535), 1);
    hs_expect(fd, add_t, strlen(add_t), &reg, 1, "bad_fd"); /* a regular file */
    int dir = open(e.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    hs_expect(fd, add_t, strlen(add_t), &dir, 1, "bad_fd"); /* a directory */
    int dn = open("/dev/null", O_RDWR | O_CLOEXEC);
    hs_expect(fd, add_t, strlen(add_t), &dn, 1, "bad_fd"); /* a device */
    int mfd = memfd_create("t", MFD_CLOEXEC);
    ck_assert_int_ge(mfd, 0);
    char *copy = malloc(65536);
    ssize_t got = pread(tfd, copy, 65536, 0);
    ck_assert_int_gt(got, 0);
    ck_assert_int_eq(pwrite(mfd, copy, (size_t)got, 0), got);
    free(copy);
    hs_expect(fd, add_t, strlen(add_t), &mfd, 1, "bad_fd"); /* a byte copy of the table */
    hs_expect(fd, add_t, strlen(add_t), &t2fd, 1, "bad_fd"); /* another table */
    /* another instance's table of the same name */
    char other[160];
    snprintf(other, sizeof other, "/%sx:%lu:t", e.instance, (unsigned long)geteuid());
    etsmgr_table *ot = NULL;
    ck_assert_int_eq(tbl_create(other, "t", NULL, &ot), 0);
    int ofd = etsmgr_table_fd(ot);
    hs_expect(fd, add_t, strlen(add_t), &ofd, 1, "bad_fd");
    etsmgr_table_close(ot);
    tbl_unlink(other);
    /* an unlinked table of this instance, under its old name */
    char gone[160];
    snprintf(gone, sizeof gone, "/%s:%lu:gone", e.instance, (unsigned long)geteuid());
    etsmgr_table *gt = NULL;
    ck_assert_int_eq(tbl_create(gone, "gone", NULL, &gt), 0);
    tbl_unlink(gone);
    int gfd = etsmgr_table_fd(gt);
    hs_expect(fd, "{\"op\":\"add_table\",\"name\":\"gone\"}", strlen("{\"op\":\"add_table\",\"name\":\"gone\"}"), &gfd, 1, "bad_fd");
    etsmgr_table_close(gt);
    hs_expect_fds(d, base, "add_table with wrong fds");
    /* the right one, from its owner: accepted, and the extra fd not kept */
    hs_expect(fd, add_t, strlen(add_t), &tfd, 1, "");
    hs_expect_fds(d, base, "add_table of a managed table");

    close(one);
    for (int i = 0; i < 4; i++)
        close(four[i]);
    close(sv[0]);
    close(sv[1]);
    close(reg);
    close(dir);
    close(dn);
    close(mfd);
    close(tfd);
    close(t2fd);
    close(fd);
    hs_expect_fds(d, base - 1, "the client's close");
    ck_assert(hs_alive(d));

    /* etscounterd takes no fd at all: its socket refuses them where the
     * kernel can (SO_PASSRIGHTS off, Linux 6.16: the sender's sendmsg
     * fails with EPERM and sends nothing), else it answers unexpected_fd
     * and closes them (test_conn_no_fds_refused_at_socket has both paths) */
    pid_t c = hs_start_counterd(&e);
    int cbase = tu_count_fds(c);
    int cfd = hs_connect(&e, "etscounter.sock");
    bool at_socket = hs_kernel_refuses_fds();
    int p = hs_pipe_end();
    int nul[50];
    for (int i = 0; i < 50; i++)
        nul[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    f = hs_frame("{\"op\":\"check\"}", &flen);
    if (at_socket) {
        size_t clen;
        char *cf = hs_frame("{\"op\":\"count\"}", &clen);
        struct iovec iov1 = {cf, clen}, iov50 = {f, flen};
        errno = 0;
        ck_assert_msg(fdpass_send(cfd, &iov1, 1, 0, &p, 1) == -1 && errno == EPERM,
                      "a count with an fd was not refused by etscounterd's socket: %s", strerror(errno));
        errno = 0;
        ck_assert_msg(fdpass_send(cfd, &iov50, 1, 0, nul, 50) == -1 && errno == EPERM,
                      "a check with 50 fds was not refused by etscounterd's socket: %s", strerror(errno));
        free(cf);
        hs_expect(cfd, "{\"op\":\"ping\"}", strlen("{\"op\":\"ping\"}"), four, 0, "");
    } else {
        hs_expect(cfd, "{\"op\":\"count\"}", strlen("{\"op\":\"count\"}"), &p, 1, "unexpected_fd");
        hs_expect(cfd, "{\"op\":\"ping\"}", strlen("{\"op\":\"ping\"}"), four, 0, "");
        hs_send_with_fds(cfd, f, flen, nul, 50);
        rr = NULL;
        ck_assert_int_eq(frame_read_json(cfd, &rr, NULL, NULL, 0, HS_TIMEOUT_MS), 0);
        ck_assert_str_eq(hs_code(rr), "unexpected_fd");
        cJSON_Delete(rr);
    }
    close(p);
    for (int i = 0; i < 50; i++)
        close(nul[i]);
    free(f);
    hs_expect_fds(c, cbase + 1, "fds sent to etscounterd");
    close(cfd);
    hs_expect_fds(c, cbase, "the client's close");
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ fd pinning and fairness */

/* The peer's bytes are all read by the daemon (nothing waits in the
 * socket: SIOCOUTQ counts what the receiver has not consumed yet). */
static bool hs_all_read(void *arg)
{
    const int *fds = arg;
    for (int i = 1; i <= fds[0]; i++) {
        int q = 0;
        if (ioctl(fds[i], SIOCOUTQ, &q) < 0 || q > 0)
            return false;
    }
    return true;
}

/* Issue 12, item 8: 40 connections each send a 4-byte frame prefix, then
 * six one-byte messages with 4 fds each.  Fds that came after their
 * frame's first byte belong to no frame, and both daemons close them on
 * arrival (they held up to 6 x 4 per connection: 600 such connections
 * pinned 16,384 fds).  Once every byte is read, each daemon holds its 40
 * sockets and at most FRAME_MAX_FDS per unfinished frame; a fresh client is
 * served; after the peers go, the fd count is back where it was. */
#define HS_PIN_CONNS 40
START_TEST(test_fd_pinning)
{
    tu_env e;
    tu_env_init(&e);
    pid_t pids[2];
    pids[0] = hs_start_mgrd(&e, NULL);
    pids[1] = hs_start_counterd(&e);
    bool refuses = hs_kernel_refuses_fds();
    for (int d = 0; d < 2; d++) {
        int probe = hs_connect(&e, daemon_socks[d]);
        hs_expect(probe, good_req[d], strlen(good_req[d]), NULL, 0, "");
        int base = tu_count_fds(pids[d]);
        int conns[HS_PIN_CONNS + 1];
        conns[0] = HS_PIN_CONNS;
        for (int i = 1; i <= HS_PIN_CONNS; i++) {
            conns[i] = hs_connect(&e, daemon_socks[d]);
            static const unsigned char prefix[4] = {0, 0, 0, 100};
            hs_write_all(conns[i], prefix, sizeof prefix);
            for (int k = 0; k < 6; k++) {
                int four[4];
                for (int j = 0; j < 4; j++)
                    four[j] = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (d == 1 && refuses) { /* etscounterd's socket takes none: nothing to pin */
                    struct iovec iov = {(void *)"x", 1};
                    errno = 0;
                    ck_assert_msg(fdpass_send(conns[i], &iov, 1, 0, four, 4) == -1 && errno == EPERM,
                                  "etscounterd's socket took fds: %s", strerror(errno));
                    hs_write_all(conns[i], "x", 1);
                } else {
                    hs_send_with_fds(conns[i], "x", 1, four, 4);
                }
                for (int j = 0; j < 4; j++)
                    close(four[j]);
            }
        }
        ck_assert_msg(tu_eventually(hs_all_read, conns, HS_TIMEOUT_MS), "%s did not read its peers' bytes",
                      daemon_names[d]);
        /* the kernel may hand the prefix and the first message over in one
         * read: that read holds the frame's first byte, and its fds (at
         * most FRAME_MAX_FDS) are kept until the frame is whole; none after */
        int now = tu_count_fds(pids[d]);
        ck_assert_msg(now <= base + HS_PIN_CONNS * (1 + FRAME_MAX_FDS),
                      "%s holds %d fds, %d before plus %d sockets: %d fds pinned, more than %d per connection",
                      daemon_names[d], now, base, HS_PIN_CONNS, now - base - HS_PIN_CONNS, FRAME_MAX_FDS);
        printf("hostile: %s: %d connections sending fds after their frames' first byte pin %d fds\n",
               daemon_names[d], HS_PIN_CONNS, now - base - HS_PIN_CONNS);
        hs_expect(probe, good_req[d], strlen(good_req[d]), NULL, 0, "");
        for (int i = 1; i <= HS_PIN_CONNS; i++)
            close(conns[i]);
        hs_expect_fds(pids[d], base, "the pinning peers went away");
        close(probe);
        ck_assert(hs_alive(pids[d]));
    }
    tu_env_cleanup(&e);
}
END_TEST

/* Issue 12, item 9: one connection pipelines checks of a table with 8,000
 * entries (each check walks and verifies them all) while another sends a
 * ping.  The ping is answered within its turn, not after the whole batch
 * (before: one read's frames were all handled in one go, seconds).  The
 * assertion is an order (how many checks were answered before the ping),
 * not a time. */
START_TEST(test_pipelined_checks_fair)
{
    tu_env e;
    tu_env_init(&e);
    hs_start_mgrd(&e, NULL);
    pid_t d = hs_start_counterd(&e);
    int a = hs_connect(&e, "etscounter.sock"), b = hs_connect(&e, "etscounter.sock");
    hs_expect(b, good_req[1], strlen(good_req[1]), NULL, 0, "");
    /* 8,000 entries check walks but does not show (a leading NUL byte) */
    rt_paths rt;
    char err[200], name[300];
    ck_assert_int_eq(rt_resolve(e.dir, e.instance, &rt, err, sizeof err), 0);
    ck_assert_int_eq(rt_shm_name(&rt, (unsigned long)geteuid(), "etscounter", name, sizeof name), 0);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_open(name, &t), ETSMGR_OK);
    for (int i = 0; i < 8000; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "%cbulk%d", 0, i);
        etsmgr_value v = {.type = ETSMGR_INT, .i = i};
        ck_assert_int_eq(etsmgr_table_insert(t, k, (size_t)kl, &v), ETSMGR_OK);
    }
    etsmgr_table_close(t);
    enum { N = 300 };
    size_t flen;
    char *f = hs_frame("{\"op\":\"check\",\"id\":1}", &flen);
    char *batch = malloc(flen * N);
    ck_assert_ptr_nonnull(batch);
    for (int i = 0; i < N; i++)
        memcpy(batch + flen * (size_t)i, f, flen);
    free(f);
    double t0 = hs_now_ms();
    hs_write_all(a, batch, flen * N);
    free(batch);
    /* the ping, sent once etscounterd has read the batch (so it is busy
     * with it: before, it handled the whole read in one go) */
    int q[2] = {1, a};
    ck_assert(tu_eventually(hs_all_read, q, HS_TIMEOUT_MS));
    hs_expect(b, good_req[1], strlen(good_req[1]), NULL, 0, "");
    double ping_ms = hs_now_ms() - t0;
    /* How many of the batch's replies were written before the ping's: a
     * few when each turn does a bounded share of a connection's work, all
     * N when one read's frames are handled in one go (the replies are
     * alike, and N of them fit the socket's buffer).  An order, counted
     * where etscounterd wrote it, so the test's own delays on a loaded
     * machine do not enter (a ratio of times did, and failed there). */
    int avail = 0;
    ck_assert_int_eq(ioctl(a, FIONREAD, &avail), 0);
    size_t ready = 0;
    if (avail >= 4) {
        unsigned char h[4];
        ck_assert_int_eq(recv(a, h, 4, MSG_PEEK), 4);
        size_t flen1 = 4 + ((size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | (size_t)h[3]);
        ready = (size_t)avail / flen1;
    }
    for (int i = 0; i < N; i++) {
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(a, &r, NULL, NULL, 0, 60000), 0);
        ck_assert_str_eq(hs_code(r), "");
        cJSON_Delete(r);
    }
    double all_ms = hs_now_ms() - t0;
    printf("hostile: %d pipelined checks of 8,000 entries took %.0f ms; a ping sent meanwhile %.1f ms, "
           "answered after %zu of them\n", N, all_ms, ping_ms, ready);
    ck_assert_msg(ready < N / 2, "the ping was answered after %zu of the %d checks: it waited for the batch", ready,
                  N);
    close(a);
    close(b);
    ck_assert(hs_alive(d));
    tu_env_cleanup(&e);
}
END_TEST

Suite *hostile_suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("framing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_frame_too_large);
    tcase_add_test(tc, test_cut_frame);
    suite_add_tcase(s, tc);
    tc = tcase_create("flood");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_flood_connections);
    tcase_add_test(tc, test_connection_limit);
    tcase_add_test(tc, test_dribble);
    suite_add_tcase(s, tc);
    tc = tcase_create("garbage");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_garbage);
    tcase_add_test(tc, test_fd_abuse);
    tcase_add_test(tc, test_fd_pinning);
    tcase_add_test(tc, test_pipelined_checks_fair);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_etscounter.c: etscounterd and the etscounter CLI, run for real.
 *
 * Each test starts the real etsmgrd and etscounterd on a private runtime dir
 * and instance (readiness from READY=1, never a sleep) and drives them with
 * the real etscounter binary, as a person would in the seed's transcript:
 * count, check, die, and SIGKILL of each process and of both.  There is no
 * supervisor here: the test restarts what it killed, as etssup would.
 *
 * The exactly-once tests use etscounterd's test hook
 * ETSCOUNTERD_TEST_DIE_AFTER_COMMIT=N (SIGKILL right after the N-th commit,
 * before the reply) to lose a reply at the worst moment, and check that the
 * CLI's retry with the same request id is counted once. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etscounter/etscounter.h"
#include "frame.h"
#include "procstat.h"
#include "runcap.h"
#include "runtime.h"
#include "table.h"
#include "sock.h"
#include "log.h"
#include "testutil.h"

#define ET_SPAWN_MS 15000

static tu_env E;
static int E_live;
static pid_t et_ctrs[64]; /* etscounterds started, killed first at cleanup */
static int et_nctrs;

static void et_cleanup(void)
{
    if (!E_live)
        return;
    E_live = 0;
    /* etscounterd before etsmgrd, so that it does not log the manager's death */
    for (int i = 0; i < et_nctrs; i++)
        if (waitpid(et_ctrs[i], NULL, WNOHANG) == 0) /* still running, not reaped */
            tu_kill9(et_ctrs[i]);
    et_nctrs = 0;
    tu_env_cleanup(&E);
}

/* a failed check ends the test with _exit(): the runner cleans up after it
 * (tu_sweep_collect); atexit covers a test that calls exit() */
static void et_setup(void)
{
    tu_env_init(&E);
    E_live = 1;
    atexit(et_cleanup);
}

static pid_t et_mgr(void)
{
    char *argv[] = { "etsmgrd", "--log-level", "warning", NULL };
    pid_t p = tu_spawn_ready(&E, argv, ET_SPAWN_MS);
    ck_assert_msg(p > 0, "etsmgrd did not become ready");
    return p;
}

static pid_t et_ctr_args(char *const extra[])
{
    char *argv[16] = { "etscounterd", "--log-level", "error" };
    int n = 3;
    for (int i = 0; extra && extra[i] && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t p = tu_spawn_ready(&E, argv, ET_SPAWN_MS);
    ck_assert_msg(p > 0, "etscounterd did not become ready");
    if (et_nctrs < 64)
        et_ctrs[et_nctrs++] = p;
    return p;
}

static pid_t et_ctr(void) { return et_ctr_args(NULL); }

/* Runs the CLI with args (a shell word list); exit status, output in *out. */
static int et_cli(char **out, const char *args)
{
    char *o = NULL;
    int st = rc_sh(&o, 20000, "%s %s", tu_bin("etscounter", false), args);
    if (out)
        *out = o;
    else
        free(o);
    return st;
}

static bool et_file_has_text(void *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static long et_count(void)
{
    char *out;
    int st = et_cli(&out, "count");
    ck_assert_msg(rc_ok(st), "etscounter count failed: %s", out ? out : "");
    char *end;
    long v = strtol(out, &end, 10);
    ck_assert_msg(end != out && (*end == '\n' || *end == '\0'), "count printed \"%s\", not a number", out);
    free(out);
    return v;
}

static long et_check(void)
{
    char *out;
    int st = et_cli(&out, "--json check");
    ck_assert_msg(rc_ok(st), "etscounter check failed: %s", out ? out : "");
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "check --json printed \"%s\"", out);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(j, "table")), "etscounter");
    cJSON *data = cJSON_GetObjectItem(j, "data");
    ck_assert_msg(cJSON_IsObject(data), "no data in %s", out);
    ck_assert_msg(cJSON_GetArraySize(data) == 1, "check shows bookkeeping entries: %s", out);
    cJSON *c = cJSON_GetObjectItem(data, "count");
    ck_assert(cJSON_IsNumber(c));
    long v = (long)c->valuedouble;
    cJSON_Delete(j);
    free(out);
    return v;
}

/* etsmgrd's view: the pid owning table etscounter, 0 when orphaned or
 * unknown, -1 when etsmgrd does not answer. */
static long et_owner(void)
{
    char *rep = tu_request(&E, "etsmgrd.sock", "{\"op\":\"tables\",\"id\":1}", NULL, 0, NULL, NULL);
    if (!rep)
        return -1;
    cJSON *j = cJSON_Parse(rep);
    free(rep);
    long owner = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(j, "tables"))
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(t, "name"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(t, "state"));
        if (name && strcmp(name, "etscounter") == 0 && state && strcmp(state, "owned") == 0)
            owner = (long)cJSON_GetObjectItem(t, "owner_pid")->valuedouble;
    }
    cJSON_Delete(j);
    return owner;
}

static pid_t et_want_owner;
static bool et_owned_by(void *arg)
{
    (void)arg;
    return et_owner() == et_want_owner;
}

static void et_expect_owner(pid_t pid)
{
    et_want_owner = pid;
    ck_assert_msg(tu_eventually(et_owned_by, NULL, 10000), "etsmgrd does not show etscounter owned by pid %d (owner %ld)",
                  (int)pid, et_owner());
}

static void et_expect_sigkill(pid_t pid)
{
    int st = tu_wait(pid, 10000);
    ck_assert_msg(st != -1, "pid %d did not die", (int)pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "pid %d ended with status 0x%x, not SIGKILL",
                  (int)pid, st);
}

/* ------------------------------------------------------------------ the seed's transcript */
START_TEST(test_transcript)
{
    pid_t mgr = et_mgr();
    pid_t ctr = et_ctr();
    et_expect_owner(ctr);
    ck_assert_int_eq(et_count(), 1);
    ck_assert_int_eq(et_count(), 2);
    ck_assert_int_eq(et_check(), 2);
    char *out;
    ck_assert(rc_ok(et_cli(&out, "check")));
    ck_assert_msg(strstr(out, "count = 2"), "check printed: %s", out);
    free(out);

    /* die: etscounterd kills itself; a new one (as a supervisor would start) has the data */
    ck_assert(rc_ok(et_cli(&out, "die")));
    char want[64];
    snprintf(want, sizeof want, "pid %d", (int)ctr);
    ck_assert_msg(strstr(out, want), "die printed: %s", out);
    free(out);
    et_expect_sigkill(ctr);
    pid_t ctr2 = et_ctr();
    ck_assert_int_ne(ctr2, ctr);
    ck_assert_int_eq(et_check(), 2);
    ck_assert_int_eq(et_count(), 3);
    ck_assert_int_eq(et_count(), 4);
    et_expect_owner(ctr2);

    /* SIGKILL of etscounterd */
    tu_kill9(ctr2);
    pid_t ctr3 = et_ctr();
    ck_assert_int_eq(et_check(), 4);
    ck_assert_int_eq(et_count(), 5);
    ck_assert_int_eq(et_count(), 6);

    /* SIGKILL of etsmgrd: etscounterd keeps its pid and counts on meanwhile */
    tu_kill9(mgr);
    ck_assert_int_eq(et_count(), 7);
    ck_assert_int_eq(et_count(), 8);
    ck_assert_int_eq(et_check(), 8);
    ck_assert_int_eq(kill(ctr3, 0), 0);
    ck_assert(rc_ok(et_cli(&out, "--json ping")));
    snprintf(want, sizeof want, "{\"pid\":%d}", (int)ctr3);
    ck_assert_msg(strstr(out, want), "ping printed %s, want %s", out, want);
    free(out);
    pid_t mgr2 = et_mgr();
    et_expect_owner(ctr3); /* the restarted daemon manages the table again */
    ck_assert_int_eq(et_count(), 9);
    ck_assert_int_eq(kill(ctr3, 0), 0);

    /* SIGKILL of both at once */
    kill(mgr2, SIGKILL);
    kill(ctr3, SIGKILL);
    et_expect_sigkill(mgr2);
    et_expect_sigkill(ctr3);
    et_mgr();
    pid_t ctr4 = et_ctr();
    ck_assert_int_eq(et_count(), 10);
    ck_assert_int_eq(et_check(), 10);
    et_expect_owner(ctr4);
    et_cleanup();
    ck_assert_int_eq(tu_count_shm(&E), 0);
}
END_TEST

/* ------------------------------------------------------------------ exactly once */
/* A test that restarts etscounterd by hand while a CLI retries plays its
 * supervisor: it holds DIR/etssup.lock, as etssup does, so that the CLI
 * knows someone will bring etscounterd back (without it, the CLI rightly
 * says at once that nothing runs). */
static int et_play_supervisor(void)
{
    char lockp[256];
    snprintf(lockp, sizeof lockp, "%s/etssup.lock", E.dir);
    int fd = sock_lock_file(lockp);
    ck_assert_msg(fd >= 0, "lock %s: %s", lockp, strerror(errno));
    return fd;
}

/* Starts the CLI with stdout on a pipe; *rd gets the read end. */
static pid_t et_cli_bg(const char *cmd, int *rd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(tu_bin("etscounter", false), "etscounter", "--timeout", "15000", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    *rd = p[0];
    return pid;
}

/* Count 1, then a CLI's count 2 that etscounterd commits and dies before
 * answering (ETSCOUNTERD_TEST_DIE_AFTER_COMMIT); the CLI is retrying when
 * this returns (its stdout on *rd), and no etscounterd runs. */
static pid_t et_lose_reply_of_count_2(int *rd)
{
    et_mgr();
    setenv("ETSCOUNTERD_TEST_DIE_AFTER_COMMIT", "2", 1);
    pid_t ctr = et_ctr();
    unsetenv("ETSCOUNTERD_TEST_DIE_AFTER_COMMIT");
    ck_assert_int_eq(et_count(), 1);
    pid_t cli = et_cli_bg("count", rd);
    et_expect_sigkill(ctr);
    return cli;
}

/* The CLI's retry of count 2 ends: exit 0, and it printed 2. */
static void et_expect_retry_got_2(pid_t cli, int rd)
{
    char buf[64] = "";
    ssize_t n, got = 0;
    while ((n = read(rd, buf + got, sizeof buf - 1 - (size_t)got)) > 0)
        got += n;
    close(rd);
    int st = tu_wait(cli, 20000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the CLI's retry failed (0x%x)", st);
    ck_assert_msg(strcmp(buf, "2\n") == 0, "the retried count printed \"%s\", not 2", buf);
}

START_TEST(test_exactly_once_lost_reply)
{
    int sup = et_play_supervisor();
    int rd;
    pid_t cli = et_lose_reply_of_count_2(&rd);
    et_ctr(); /* the CLI is retrying the same request id meanwhile */
    et_expect_retry_got_2(cli, rd);
    ck_assert_int_eq(et_check(), 2); /* counted once, not twice */
    ck_assert_int_eq(et_count(), 3);
    close(sup);
}
END_TEST

static cJSON *et_raw(int fd, const char *json)
{
    ck_assert_int_eq(frame_write(fd, json, strlen(json), NULL, 0), 0);
    cJSON *r = NULL;
    ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, 10000), 0);
    return r;
}

static int et_connect_ctr(void)
{
    char path[200];
    snprintf(path, sizeof path, "%s/etscounter.sock", E.dir);
    int fd = sock_connect_unix(path);
    ck_assert_msg(fd >= 0, "connect %s: %s", path, strerror(errno));
    return fd;
}

START_TEST(test_repeated_rid)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    const char *req = "{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\"}";
    cJSON *r = et_raw(fd, req);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "count")->valuedouble, 1);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "duplicate")));
    cJSON_Delete(r);
    r = et_raw(fd, req);
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "count")->valuedouble, 1);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
    cJSON_Delete(r);
    /* past its deadline, a known rid still gets its value; an unknown one
     * is refused as expired and not counted */
    r = et_raw(fd, "{\"op\":\"count\",\"id\":4,\"deadline\":1000,\"rid\":\"00112233445566778899aabbccddeeff\"}");
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "count")->valuedouble, 1);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
    cJSON_Delete(r);
    r = et_raw(fd, "{\"op\":\"count\",\"id\":5,\"deadline\":1000,\"rid\":\"ffeeddccbbaa99887766554433221100\"}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "expired");
    cJSON_Delete(r);
    r = et_raw(fd, "{\"op\":\"count\",\"id\":6,\"deadline\":\"soon\",\"rid\":\"ffeeddccbbaa99887766554433221100\"}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "bad_request");
    cJSON_Delete(r);
    /* the monotonic fields: an integer each, and no retry window that ends
     * before the deadline */
    r = et_raw(fd, "{\"op\":\"count\",\"id\":7,\"deadline_mono\":\"soon\",\"rid\":\"ffeeddccbbaa99887766554433221100\"}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "bad_request");
    cJSON_Delete(r);
    r = et_raw(fd, "{\"op\":\"count\",\"id\":8,\"deadline_mono\":9000000000,\"retry_until_mono\":5,"
                   "\"rid\":\"ffeeddccbbaa99887766554433221100\"}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "bad_request");
    cJSON_Delete(r);
    /* a monotonic deadline in the past: an unknown rid is refused */
    r = et_raw(fd, "{\"op\":\"count\",\"id\":9,\"deadline_mono\":1,\"rid\":\"ffeeddccbbaa99887766554433221100\"}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "expired");
    cJSON_Delete(r);
    /* a bad rid is refused, and the connection stays usable */
    r = et_raw(fd, "{\"op\":\"count\",\"id\":2,\"rid\":\"xyz\"}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "bad_request");
    cJSON_Delete(r);
    r = et_raw(fd, "{\"op\":\"nope\",\"id\":3}");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "unknown_op");
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(et_check(), 1);
}
END_TEST

/* The raw reply to one request (the bytes, not their meaning). */
static char *et_raw_text(int fd, const char *json)
{
    ck_assert_int_eq(frame_write(fd, json, strlen(json), NULL, 0), 0);
    char *p = NULL;
    size_t n;
    ck_assert_int_eq(frame_read(fd, &p, &n, NULL, NULL, 0, 10000), 0);
    return p;
}

/* The fast path (fastparse.c) and cJSON read the usual requests; a request
 * must get the same reply, byte for byte, whichever reads it.  The second of
 * each pair has a shape only cJSON reads (an extra field, 7.0 for 7). */
START_TEST(test_fast_and_general_replies_match)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    static const char *const same[][2] = {
        {"{\"op\":\"ping\",\"id\":7}", "{\"id\":7.0,\"op\":\"ping\",\"x\":0}"},
        {"{\"op\":\"ping\",\"id\":null}", "{\"op\":\"ping\",\"id\":null,\"y\":[]}"},
        {"{\"op\":\"ping\"}", "{\"op\":\"ping\",\"z\":1}"},
        {"{\"op\":\"check\",\"id\":-3}", "{\"op\":\"check\",\"id\":-3e0}"},
        /* the first counts, then both are duplicates of it */
        {"{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\"}",
         "{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\",\"x\":1}"},
        {"{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\"}",
         "{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\",\"x\":1}"},
        /* an error reply: an unknown rid past its deadline */
        {"{\"op\":\"count\",\"id\":5,\"deadline\":1000,\"rid\":\"ffeeddccbbaa99887766554433221100\"}",
         "{\"op\":\"count\",\"id\":5,\"deadline\":1000.0,\"rid\":\"ffeeddccbbaa99887766554433221100\"}"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        char *a = et_raw_text(fd, same[i][0]), *b = et_raw_text(fd, same[i][1]);
        if (i == 4) { /* the first of the pair counted; the second is its duplicate */
            ck_assert_str_eq(a, "{\"ok\":true,\"id\":1,\"count\":1,\"duplicate\":false}");
            ck_assert_str_eq(b, "{\"ok\":true,\"id\":1,\"count\":1,\"duplicate\":true}");
        } else {
            ck_assert_msg(strcmp(a, b) == 0, "%s -> %s\nbut %s -> %s", same[i][0], a, same[i][1], b);
        }
        free(a);
        free(b);
    }
    /* plain counts: the same reply but for the value */
    char *a = et_raw_text(fd, "{\"op\":\"count\",\"id\":123456789012345}");
    char *b = et_raw_text(fd, "{\"op\":\"count\",\"id\":123456789012345.0}");
    ck_assert_str_eq(a, "{\"ok\":true,\"id\":123456789012345,\"count\":2,\"duplicate\":false}");
    ck_assert_str_eq(b, "{\"ok\":true,\"id\":123456789012345,\"count\":3,\"duplicate\":false}");
    free(a);
    free(b);
    /* the reply's integers are written two digits at a time (serve.c): ids
     * of every length and sign, at both ends of each pair of digits */
    static const long long ids[] = {0, 9, 10, 99, 100, 101, 999, 1000, -1, -9, -10, -99, -100, -1000,
                                    12345, -98765, 100000000000000, 999999999999999, -999999999999999};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char req[96], want[160];
        snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%lld}", ids[i]);
        snprintf(want, sizeof want, "{\"ok\":true,\"id\":%lld,\"count\":%zu,\"duplicate\":false}", ids[i], 4 + i);
        a = et_raw_text(fd, req);
        ck_assert_str_eq(a, want);
        free(a);
    }
    close(fd);
    ck_assert_int_eq(et_check(), 3 + (int)(sizeof ids / sizeof ids[0]));
}
END_TEST

static void et_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        ck_assert_msg(w > 0, "write: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
}

/* n count requests with ids and rids first..first+n-1, in one write; then
 * the n replies, which must come in order and count on from base */
static void et_pipeline(int fd, int first, int n, long base)
{
    size_t cap = (size_t)n * 100, len = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    for (int i = first; i < first + n; i++) {
        char req[128];
        size_t fl;
        snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%032x\"}", i, i);
        char *f = frame_encode(req, strlen(req), &fl);
        ck_assert_ptr_nonnull(f);
        memcpy(buf + len, f, fl);
        len += fl;
        free(f);
    }
    et_write_all(fd, buf, len);
    free(buf);
    for (int i = first; i < first + n; i++) {
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, 10000), 0);
        ck_assert_int_eq((int)cJSON_GetObjectItem(r, "id")->valuedouble, i);
        ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, base + (i - first) + 1);
        cJSON_Delete(r);
    }
}

static long et_entries(void)
{
    char *rep = tu_request(&E, "etsmgrd.sock", "{\"op\":\"tables\",\"id\":1,\"name\":\"etscounter\"}", NULL, 0, NULL, NULL);
    ck_assert_ptr_nonnull(rep);
    cJSON *j = cJSON_Parse(rep);
    free(rep);
    cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0);
    ck_assert_ptr_nonnull(t);
    long n = (long)cJSON_GetObjectItem(t, "entries")->valuedouble;
    cJSON_Delete(j);
    return n;
}

/* Issue 12, item 1: a rid is remembered for as long as its sender may
 * retry it, not for the last 4096 counts.  5000 counts pipelined, then
 * rid 1 again: still a duplicate (the old ring of 4096 had forgotten it and
 * counted it a second time).  The records are no table entries. */
START_TEST(test_pipelined_rids_kept)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    int done = 0;
    while (done < 5000) {
        int n = 5000 - done < 512 ? 5000 - done : 512;
        et_pipeline(fd, done + 1, n, done);
        done += n;
    }
    ck_assert_int_eq(et_entries(), 1);
    cJSON *r = et_raw(fd, "{\"op\":\"count\",\"id\":1,\"rid\":\"00000000000000000000000000000001\"}");
    ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, 1);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")));
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(et_check(), 5000);
}
END_TEST

/* etscounterd reads the frame after the one it serves ahead of time (to
 * prefetch its request-id record) and keeps that reading: in one write, the
 * same count three times (identical bytes), an empty frame and garbage
 * between them, and a new rid last.  Each gets its own right reply, in
 * order: the first counted, the repeats duplicates of it, the empty and the
 * garbage frames bad_json (an empty frame once got no reply at all: an
 * empty look-ahead slot matched it). */
START_TEST(test_pipelined_lookahead)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    const char *reqs[] = {
        "{\"op\":\"count\",\"id\":7,\"rid\":\"000000000000000000000000000000aa\"}",
        "{\"op\":\"count\",\"id\":7,\"rid\":\"000000000000000000000000000000aa\"}",
        "",
        "{\"op\":\"count\",\"id\":7,\"rid\":\"000000000000000000000000000000aa\"}",
        "{\"op\":",
        "{\"op\":\"count\",\"id\":8,\"rid\":\"000000000000000000000000000000bb\"}",
    };
    const char *want[] = {"1", "1 dup", "bad_json", "1 dup", "bad_json", "2"};
    char buf[1024];
    size_t len = 0;
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        size_t fl;
        char *f = frame_encode(reqs[i], strlen(reqs[i]), &fl);
        ck_assert_ptr_nonnull(f);
        memcpy(buf + len, f, fl);
        len += fl;
        free(f);
    }
    et_write_all(fd, buf, len);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, 10000), 0);
        char got[64];
        const cJSON *err = cJSON_GetObjectItem(r, "error");
        if (cJSON_IsString(err))
            snprintf(got, sizeof got, "%s", err->valuestring);
        else
            snprintf(got, sizeof got, "%ld%s", (long)cJSON_GetObjectItem(r, "count")->valuedouble,
                     cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")) ? " dup" : "");
        ck_assert_msg(strcmp(got, want[i]) == 0, "reply %zu: %s, expected %s", i, got, want[i]);
        cJSON_Delete(r);
    }
    close(fd);
    ck_assert_int_eq(et_check(), 2);
}
END_TEST

/* etscounterd reads every ready connection of a loop turn before serving
 * any, and reads (and prefetches for) the first frame of each as it goes,
 * keeping the reading by connection and payload.  Written while it is
 * stopped, so that one turn finds them all ready: the same count on four
 * connections (identical bytes), three other counts, and on an eighth a
 * garbage frame followed by a count.  Each connection gets its own right
 * reply: of the four identical ones exactly one counted and the others
 * are its duplicates, every other count counted once, the garbage
 * bad_json. */
START_TEST(test_lookahead_across_connections)
{
    et_mgr();
    pid_t ctr = et_ctr();
    int fd[8];
    for (int i = 0; i < 8; i++)
        fd[i] = et_connect_ctr();
    ck_assert_int_eq(kill(ctr, SIGSTOP), 0);
    char req[128];
    for (int i = 0; i < 8; i++) {
        char buf[512];
        size_t len = 0, fl;
        if (i < 4)
            snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":7,\"rid\":\"%032x\"}", 0xaa);
        else
            snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%032x\"}", i, 0xb0 + i);
        if (i == 7) {
            char *g = frame_encode("{\"op\":", 6, &fl);
            ck_assert_ptr_nonnull(g);
            memcpy(buf, g, fl);
            len = fl;
            free(g);
        }
        char *f = frame_encode(req, strlen(req), &fl);
        ck_assert_ptr_nonnull(f);
        memcpy(buf + len, f, fl);
        len += fl;
        free(f);
        et_write_all(fd[i], buf, len);
    }
    ck_assert_int_eq(kill(ctr, SIGCONT), 0);
    long shared = -1, seen[6] = {0};
    int counted = 0;
    for (int i = 0; i < 8; i++) {
        cJSON *r = NULL;
        if (i == 7) {
            ck_assert_int_eq(frame_read_json(fd[i], &r, NULL, NULL, 0, 10000), 0);
            ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "bad_json");
            cJSON_Delete(r);
        }
        ck_assert_int_eq(frame_read_json(fd[i], &r, NULL, NULL, 0, 10000), 0);
        ck_assert_int_eq((int)cJSON_GetObjectItem(r, "id")->valuedouble, i < 4 ? 7 : i);
        long v = (long)cJSON_GetObjectItem(r, "count")->valuedouble;
        bool dup = cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate"));
        ck_assert_msg(v >= 1 && v <= 5, "connection %d: count %ld", i, v);
        if (i < 4) {
            ck_assert_msg(shared < 0 || shared == v, "connection %d: count %ld, another said %ld", i, v, shared);
            shared = v;
        } else {
            ck_assert_msg(!dup, "connection %d: a new rid taken for a duplicate", i);
        }
        if (!dup) {
            ck_assert_msg(seen[v] == 0, "count %ld given twice", v);
            seen[v] = 1;
            counted++;
        }
        cJSON_Delete(r);
        close(fd[i]);
    }
    ck_assert_int_eq(counted, 5);
    ck_assert_int_eq(et_check(), 5);
}
END_TEST

/* Group commit (serve.c): the exactly-once counts of a turn are counted as
 * one change and answered after it.  Written while etscounterd is stopped,
 * so that one turn reads them all: on one connection 100 pipelined counts
 * (more than a batch), with a repeated rid, a ping, an expired count and
 * a plain count among them; on two others counts of rids the first also
 * sends.  Every reply comes in its request's order, each rid is counted
 * once, a repeat answers the first's value, and a connection's new values
 * rise in its order. */
START_TEST(test_group_commit_in_order)
{
    et_mgr();
    pid_t ctr = et_ctr();
    int fd[3];
    for (int i = 0; i < 3; i++)
        fd[i] = et_connect_ctr();
    ck_assert_int_eq(kill(ctr, SIGSTOP), 0);
    static char buf[3][32768];
    size_t len[3] = {0, 0, 0};
    for (int c = 0; c < 3; c++) {
        int n = c == 0 ? 100 : 10;
        for (int k = 0; k < n; k++) {
            char req[200];
            if (c == 0 && k == 40)
                snprintf(req, sizeof req, "{\"op\":\"ping\",\"id\":%d}", k);
            else if (c == 0 && k == 50)
                snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%032x\",\"deadline_mono\":1}", k,
                         0xe0000);
            else if (c == 0 && k == 60)
                snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d}", k);
            else /* rid k on connection 0; connections 1 and 2 send rids 0, 10, 20, ... of it */
                snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%032x\"}", k,
                         c == 0 ? (k == 30 ? 20 : k) : 10 * k);
            size_t fl;
            char *f = frame_encode(req, strlen(req), &fl);
            ck_assert_ptr_nonnull(f);
            memcpy(buf[c] + len[c], f, fl);
            len[c] += fl;
            free(f);
        }
        et_write_all(fd[c], buf[c], len[c]);
    }
    ck_assert_int_eq(kill(ctr, SIGCONT), 0);
    long val[1000] = {0}; /* rid -> the value its replies said */
    int counted = 0;
    static int seen[400];
    for (int c = 0; c < 3; c++) {
        int n = c == 0 ? 100 : 10;
        long last = 0;
        for (int k = 0; k < n; k++) {
            cJSON *r = NULL;
            ck_assert_int_eq(frame_read_json(fd[c], &r, NULL, NULL, 0, 10000), 0);
            ck_assert_msg((int)cJSON_GetObjectItem(r, "id")->valuedouble == k, "connection %d: reply %d out of order",
                          c, k);
            if (c == 0 && k == 40) {
                ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")));
            } else if (c == 0 && k == 50) {
                ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "expired");
            } else {
                ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "connection %d request %d refused", c, k);
                long v = (long)cJSON_GetObjectItem(r, "count")->valuedouble;
                bool dup = cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate"));
                ck_assert_msg(v >= 1 && v < 400, "count %ld", v);
                if (!dup) {
                    ck_assert_msg(!seen[v], "count %ld given twice", v);
                    seen[v] = 1;
                    counted++;
                    ck_assert_msg(v > last, "connection %d: %ld after %ld", c, v, last);
                    last = v;
                }
                if (!(c == 0 && k == 60)) {
                    int rid = c == 0 ? (k == 30 ? 20 : k) : 10 * k;
                    ck_assert_msg(val[rid] == 0 || val[rid] == v, "rid %d: %ld and %ld", rid, val[rid], v);
                    val[rid] = v;
                }
            }
            cJSON_Delete(r);
        }
        close(fd[c]);
    }
    /* connection 0: 96 distinct rids (100 less the ping, the expired one,
     * the plain count and the repeat) and the plain count; 1 and 2: rids
     * 0, 10, ..., 90, of which 30, 40, 50 and 60 are not among connection
     * 0's (its requests 30 to 60 are the repeat, the ping, the expired
     * rid and the plain count): counted once between them */
    ck_assert_int_eq(counted, 101);
    ck_assert_int_eq(et_check(), 101);
}
END_TEST

/* A count frame of exactly size bytes (prefix included) at buf: rid
 * number rid, or none when rid < 0, padded with trailing spaces (which
 * the fast path reads too). */
static void et_count_frame(char *buf, size_t size, int id, int rid)
{
    char req[128];
    int n = rid < 0 ? snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d}", id)
                    : snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%032x\"}", id, rid);
    ck_assert(n > 0 && (size_t)n + 4 <= size);
    size_t len = size - 4;
    buf[0] = (char)(len >> 24);
    buf[1] = (char)(len >> 16);
    buf[2] = (char)(len >> 8);
    buf[3] = (char)len;
    memcpy(buf + 4, req, (size_t)n);
    memset(buf + 4 + n, ' ', len - (size_t)n);
}

/* The next reply on fd: to count id (so in order), ok, newly counted, with
 * the value want. */
static void et_expect_counted(int fd, int id, long want)
{
    cJSON *r = NULL;
    ck_assert_msg(frame_read_json(fd, &r, NULL, NULL, 0, 10000) == 0, "no reply to request %d: %s", id,
                  strerror(errno));
    char *text = cJSON_PrintUnformatted(r);
    ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "request %d: not its count's reply but %s", id,
                  text);
    cJSON_free(text);
    ck_assert_msg((int)cJSON_GetObjectItem(r, "id")->valuedouble == id, "reply %d out of order (id %d)", id,
                  (int)cJSON_GetObjectItem(r, "id")->valuedouble);
    ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, want);
    ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "duplicate")));
    cJSON_Delete(r);
}

/* The protocol promises a reply to every request, in order, before the
 * frame_too_large that closes the connection.  In one write: exactly-once
 * counts (which the server batches, group commit), a plain count among
 * them, then a length prefix of 70000.  Each count is answered, in order,
 * then frame_too_large, then the end; the counter says what the replies
 * said.  (The batched counts were once counted but not answered: their
 * replies came after the close and were dropped.) */
START_TEST(test_counts_answered_before_frame_too_large)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    static const int rid[] = {0x71, 0x72, -1, 0x73};
    enum { N = sizeof rid / sizeof rid[0], FS = 80 };
    char buf[N * FS + 4];
    for (int i = 0; i < N; i++)
        et_count_frame(buf + i * FS, FS, i + 1, rid[i]);
    static const unsigned char big[4] = {0x00, 0x01, 0x11, 0x70}; /* 70000 */
    memcpy(buf + N * FS, big, 4);
    et_write_all(fd, buf, sizeof buf);
    for (int i = 0; i < N; i++)
        et_expect_counted(fd, i + 1, i + 1);
    cJSON *r = NULL;
    ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, 10000), 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "frame_too_large");
    cJSON_Delete(r);
    char *p = NULL;
    size_t n;
    ck_assert_int_eq(frame_read(fd, &p, &n, NULL, NULL, 0, 10000), -1); /* closed after it */
    ck_assert_int_eq(errno, ECONNRESET);
    close(fd);
    ck_assert_int_eq(et_check(), N);
}
END_TEST

/* The three frames in one buffer, written as one: etscounterd closes the
 * connection once it has read the second, and a third written apart could
 * meet that close (EPIPE, on a loaded machine); even in one write the
 * kernel may copy the last bytes after the close, so the third alone may
 * fail, and only with EPIPE or ECONNRESET, which a peer that did not close
 * never gives. */
static void et_write_then_closed(int fd, const char *const payload[3], const size_t len[3])
{
    size_t total = 0, before_last = 0;
    for (int i = 0; i < 3; i++)
        total += 4 + len[i];
    char *buf = malloc(total), *p = buf;
    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < 3; i++) {
        p[0] = (char)(len[i] >> 24);
        p[1] = (char)(len[i] >> 16);
        p[2] = (char)(len[i] >> 8);
        p[3] = (char)len[i];
        memcpy(p + 4, payload[i], len[i]);
        p += 4 + len[i];
        if (i == 1)
            before_last = (size_t)(p - buf);
    }
    for (size_t off = 0; off < total;) {
        ssize_t w = send(fd, buf + off, total - off, MSG_NOSIGNAL); /* EPIPE, not SIGPIPE */
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && off >= before_last && (errno == EPIPE || errno == ECONNRESET))
            break;
        ck_assert_msg(w > 0, "write at %zu of %zu: %s", off, total, strerror(errno));
        off += (size_t)w;
    }
    free(buf);
}
/* A reply that does not fit a frame (over 64 KiB: here an id of 65,500
 * bytes, echoed by a plain count's reply and by an unknown op's) cannot be
 * sent.  It was left out and the connection went on, so the reply to the
 * next request came in its place, and a client matching replies to its
 * requests by their order (the protocol's promise) took it for this
 * one's.  Now the connection is closed after the replies before it. */
START_TEST(test_reply_too_large_closes)
{
    et_mgr();
    et_ctr();
    enum { IDLEN = 65500 };
    char *req = malloc(IDLEN + 64);
    ck_assert_ptr_nonnull(req);
    const char *ops[] = {"count", "bogus"};
    for (int i = 0; i < 2; i++) {
        int fd = et_connect_ctr();
        const char *ping1 = "{\"op\":\"ping\",\"id\":1}", *ping3 = "{\"op\":\"ping\",\"id\":3}";
        int n = snprintf(req, 64, "{\"op\":\"%s\",\"id\":\"", ops[i]);
        memset(req + n, 'x', IDLEN);
        n += IDLEN;
        n += snprintf(req + n, 8, "\"}");
        et_write_then_closed(fd, (const char *[]){ping1, req, ping3},
                             (size_t[]){strlen(ping1), (size_t)n, strlen(ping3)});
        cJSON *r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, 10000), 0);
        ck_assert_int_eq((int)cJSON_GetObjectItem(r, "id")->valuedouble, 1); /* the one before it */
        cJSON_Delete(r);
        char *p = NULL;
        size_t len;
        int got = frame_read(fd, &p, &len, NULL, NULL, 0, 10000);
        ck_assert_msg(got == -1, "%s: the connection went on, the next reply was %.*s", ops[i], (int)len, p);
        close(fd);
    }
    free(req);
    ck_assert_int_eq(et_check(), 1); /* the count was made, all the same */
}
END_TEST

/* A peer that half-closes (shutdown(SHUT_WR)) is answered everything it
 * sent before the connection is closed.  63 exactly-once counts of 65536
 * bytes in all (one full read of the server's) and the end of the stream,
 * written while etscounterd is stopped, so that one turn reads the counts
 * and the end together: 63 replies in order, then the end; the counter
 * is 63.  (The batched counts were once counted but not answered: the
 * connection was closing before their replies were queued.) */
START_TEST(test_counts_answered_before_half_close)
{
    et_mgr();
    pid_t ctr = et_ctr();
    int fd = et_connect_ctr();
    ck_assert_int_eq(kill(ctr, SIGSTOP), 0);
    int ws;
    ck_assert_int_eq(waitpid(ctr, &ws, WUNTRACED), ctr); /* stopped, not reading */
    ck_assert(WIFSTOPPED(ws));
    enum { N = 63, TOTAL = 65536, FS = TOTAL / N };
    static char buf[TOTAL];
    for (int i = 0; i < N; i++) /* the last one takes what is left */
        et_count_frame(buf + i * FS, i < N - 1 ? FS : TOTAL - (N - 1) * FS, i + 1, 0x6000 + i);
    et_write_all(fd, buf, sizeof buf);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    ck_assert_int_eq(kill(ctr, SIGCONT), 0);
    for (int i = 0; i < N; i++)
        et_expect_counted(fd, i + 1, i + 1);
    char *p = NULL;
    size_t n;
    ck_assert_int_eq(frame_read(fd, &p, &n, NULL, NULL, 0, 10000), -1); /* then the close */
    ck_assert_int_eq(errno, ECONNRESET);
    close(fd);
    ck_assert_int_eq(et_check(), N);
}
END_TEST

/* One count on fd with rid number i and extra fields; the reply. */
static cJSON *et_count_rid(int fd, int i, const char *extra)
{
    char req[256];
    snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%032x\"%s}", i, i, extra);
    return et_raw(fd, req);
}

/* A deadline of 0 is none (docs/protocol.md): counted, not expired, and
 * remembered for a retry; deadline 1 (long past) is expired. */
START_TEST(test_deadline_zero_is_none)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    const char *zero[] = {",\"deadline_mono\":0", ",\"deadline\":0", ",\"deadline_mono\":0,\"retry_until_mono\":0"};
    for (int i = 0; i < 3; i++) {
        for (int again = 0; again < 2; again++) {
            cJSON *r = et_count_rid(fd, 10 + i, zero[i]);
            ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "%s refused", zero[i]);
            ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, i + 1);
            ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")), again);
            cJSON_Delete(r);
        }
    }
    cJSON *r = et_count_rid(fd, 20, ",\"deadline_mono\":1");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "expired");
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(et_check(), 3);
}
END_TEST

/* A deadline of 9223372036854775807 (INT64_MAX: "none that matters") is
 * counted: it was refused, with a message naming that very number as the
 * top of the range (the JSON number reads as 2^63).  One past what a
 * double tells from it is refused with the range it is outside of, and
 * the store's records kept for ever do not overflow (retry_until_mono at
 * the top, and the deadline's grace added to the top). */
START_TEST(test_deadline_int64_max)
{
    et_mgr();
    et_ctr();
    int fd = et_connect_ctr();
    const char *top[] = {",\"deadline_mono\":9223372036854775807", ",\"deadline\":9223372036854775807",
                         ",\"deadline_mono\":9223372036854775807,\"retry_until_mono\":9223372036854775807"};
    for (int i = 0; i < 3; i++) {
        for (int again = 0; again < 2; again++) {
            cJSON *r = et_count_rid(fd, 30 + i, top[i]);
            char *s = cJSON_PrintUnformatted(r);
            ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "%s refused: %s", top[i], s);
            free(s);
            ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, i + 1);
            ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")), again);
            cJSON_Delete(r);
        }
    }
    cJSON *r = et_count_rid(fd, 40, ",\"deadline_mono\":9223372036854777856");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "bad_request");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "message")),
                     "field \"deadline_mono\" must be an integer from 0 to 9223372036854775807");
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(et_check(), 3);
}
END_TEST

/* Until CLOCK_MONOTONIC is past ms: the time a record is kept, passing */
static void et_wait_past(long long ms)
{
    while (etsmgr_mono_ms() <= ms) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Issue 12, item 1: a full store refuses a new rid with a clear error and
 * forgets none early; records past their sender's retry time make room. */
START_TEST(test_rid_store_full)
{
    et_mgr();
    char *args[] = { "--max-request-ids", "100", NULL };
    et_ctr_args(args);
    int fd = et_connect_ctr();
    /* 300 rids whose senders retry no more (their retry_until_mono passed
     * since), 100 at a time: each hundred fills the store, and its records
     * make room once that time has passed (a request whose
     * retry_until_mono has passed already is refused: expired) */
    long long until = 0;
    char extra[64];
    for (int i = 1; i <= 300; i++) {
        if (i % 100 == 1) {
            until = (long long)etsmgr_mono_ms() + 1000;
            snprintf(extra, sizeof extra, ",\"retry_until_mono\":%lld", until);
        }
        cJSON *r = et_count_rid(fd, i, extra);
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "count %d refused", i);
        cJSON_Delete(r);
        if (i % 100 == 0)
            et_wait_past(until);
    }
    /* 100 kept for a minute (no deadline): the store is full then */
    for (int i = 1001; i <= 1100; i++) {
        cJSON *r = et_count_rid(fd, i, "");
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "count %d refused", i);
        cJSON_Delete(r);
    }
    cJSON *r = et_count_rid(fd, 2000, "");
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "rid_store_full");
    ck_assert_msg(strstr(cJSON_GetStringValue(cJSON_GetObjectItem(r, "message")), "not counted"),
                  "message does not say it was not counted");
    cJSON_Delete(r);
    /* every kept rid is still known */
    for (int i = 1001; i <= 1100; i++) {
        r = et_count_rid(fd, i, "");
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")), "rid %d was forgotten", i);
        ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, 300 + i - 1000);
        cJSON_Delete(r);
    }
    close(fd);
    ck_assert_int_eq(et_check(), 400);
    char *out;
    ck_assert_int_eq(WEXITSTATUS(et_cli(&out, "count")), 69);
    ck_assert_msg(strstr(out, "rid_store_full"), "the CLI said: %s", out);
    free(out);
    ck_assert_int_eq(et_check(), 400);
}
END_TEST

/* The refusals the log accounts for: the lines printed, and the numbers
 * the tallies give (a tally quotes a line it counts, so it is told apart
 * by its "more lines like"). */
static unsigned long et_refusals_logged(char *log)
{
    unsigned long total = 0;
    for (char *line = log, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        const char *t = strstr(line, "(");
        if (t && strstr(line, " more lines like \"request "))
            total += strtoul(t + 1, NULL, 10); /* a tally */
        else if (strstr(line, "request ids are still remembered"))
            total++; /* a line printed */
        if (nl)
            *nl = '\n';
    }
    return total;
}

/* etscounterd (--max-request-ids 64, logging warnings) with its 64 ids
 * taken, then 40 counts refused as fast as they are answered: most of
 * them in one window of the log's limit */
static pid_t et_rid_full_flood(void)
{
    et_mgr();
    char *argv[] = { "etscounterd", "--log-level", "warning", "--max-request-ids", "64", NULL };
    pid_t p = tu_spawn_logged(&E, argv, "ctr.log", ET_SPAWN_MS);
    ck_assert_msg(p > 0, "etscounterd did not become ready");
    et_ctrs[et_nctrs++] = p;
    int fd = et_connect_ctr();
    for (int i = 1; i <= 64; i++) {
        cJSON *r = et_count_rid(fd, i, "");
        ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "count %d refused", i);
        cJSON_Delete(r);
    }
    for (int i = 1001; i <= 1040; i++) {
        cJSON *r = et_count_rid(fd, i, "");
        ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "rid_store_full");
        cJSON_Delete(r);
    }
    close(fd);
    return p;
}

/* A flood of refusals costs a bounded number of log lines (log_limited):
 * at most LOG_LIMIT_BURST a second of each kind, not one per request. */
START_TEST(test_rid_store_full_logs_limited)
{
    et_rid_full_flood();
    ck_assert_int_eq(et_check(), 64); /* a round trip: every refusal's line is written by now */
    char *log = tu_log(&E, "ctr.log");
    int lines = 0;
    /* the refusals' own lines (": request ..."), not the tallies that quote one */
    for (const char *w = log; (w = strstr(w, ": request ")); w++) {
        const char *m = strstr(w, "request ids are still remembered"), *nl = strchr(w, '\n');
        lines += m && (!nl || m < nl);
    }
    /* 40 refusals within a few seconds: one or two windows of at most 10 */
    ck_assert_msg(lines >= 1 && lines <= 2 * (int)LOG_LIMIT_BURST, "%d lines for 40 refusals: %.1500s", lines, log);
    free(log);
}
END_TEST

/* The refusals a flood's last window left out of the log are counted
 * there, although no later refusal comes to say it (ecd_log_flush, from a
 * timer once the window ends): the lines printed and the tallies add up to
 * the 40 refusals.  Without the timer the last window's 30 were never
 * mentioned. */
START_TEST(test_rid_store_full_logs_counted)
{
    et_rid_full_flood();
    /* the tallies come within a window (1 s) of the last refusal: the log
     * is read until the numbers add up, or for 20 s */
    unsigned long total = 0;
    char *log = NULL;
    for (int waited = 0; waited < 20000 && total != 40; waited += 50) {
        free(log);
        log = tu_log(&E, "ctr.log");
        if ((total = et_refusals_logged(log)) != 40)
            usleep(50 * 1000);
    }
    ck_assert_msg(strstr(log, "more lines like \"request ") != NULL, "no tally in the log: %.2000s", log);
    ck_assert_msg(total == 40, "the log accounts for %lu of 40 refusals: %.3000s", total, log);
    free(log);
}
END_TEST

/* Stopped right after a flood, before its window ended: the lines left out
 * are counted before etscounterd exits (ecd_on_signal), not lost with it. */
START_TEST(test_rid_store_full_logs_counted_at_exit)
{
    pid_t p = et_rid_full_flood();
    ck_assert_int_eq(kill(p, SIGTERM), 0);
    int st = tu_wait(p, 15000);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "etscounterd: wait status 0x%x", st);
    char *log = tu_log(&E, "ctr.log");
    unsigned long total = et_refusals_logged(log);
    ck_assert_msg(total == 40, "the log accounts for %lu of 40 refusals: %.3000s", total, log);
    free(log);
}
END_TEST

static long et_cpu_ticks(pid_t pid)
{
    proc_stat st;
    ck_assert_msg(proc_stat_read(pid, &st) == 0, "/proc/%d/stat: %s", (int)pid, strerror(errno));
    return (long)st.cpu_ticks;
}

/* ticks of CPU pid used over ms milliseconds (a measuring window: what is
 * asserted is whether it ran, not how fast) */
static long et_cpu_over(pid_t pid, int ms)
{
    long t0 = et_cpu_ticks(pid);
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return et_cpu_ticks(pid) - t0;
}

static pid_t et_quiet_pid;
static bool et_is_quiet(void *arg)
{
    (void)arg;
    return et_cpu_over(et_quiet_pid, 500) <= 1; /* a stray tick of the watch's timers, at most */
}

/* Issue 18: --poll-us keeps etscounterd polling after a request, and then
 * it sleeps again: an idle server costs no CPU however long the window was.
 * (Whether it spins within the window is not asserted: it stops spinning
 * when its core is shared, which a loaded test machine may make it.) */
START_TEST(test_poll_us_sleeps_when_idle)
{
    et_mgr();
    char *args[] = { "--poll-us", "1000000", NULL }; /* a 1 s window */
    pid_t ctr = et_ctr_args(args);
    ck_assert_msg(et_cpu_over(ctr, 300) <= 1, "etscounterd spins before any request");
    int fd = et_connect_ctr();
    for (int i = 1; i <= 200; i++) {
        cJSON *r = et_count_rid(fd, i, "");
        ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, i);
        cJSON_Delete(r);
    }
    /* after it: asleep in epoll_wait again, the connection still open */
    et_quiet_pid = ctr;
    ck_assert_msg(tu_eventually(et_is_quiet, NULL, 10000), "etscounterd still uses CPU %s after its last request",
                  "10 s");
    cJSON *r = et_count_rid(fd, 1000, "");
    ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, 201);
    cJSON_Delete(r);
    close(fd);
}
END_TEST

START_TEST(test_concurrent_clients)
{
    et_mgr();
    et_ctr();
    enum { KIDS = 4, EACH = 50 };
    pid_t kids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        kids[k] = fork();
        ck_assert_int_ge(kids[k], 0);
        if (kids[k] == 0) {
            char path[200];
            snprintf(path, sizeof path, "%s/etscounter.sock", E.dir);
            int fd = sock_connect_unix(path);
            long last = 0;
            for (int i = 0; fd >= 0 && i < EACH; i++) {
                char req[128];
                snprintf(req, sizeof req, "{\"op\":\"count\",\"id\":%d,\"rid\":\"%08x%024x\"}", i, k, i);
                cJSON *r = NULL;
                if (frame_write(fd, req, strlen(req), NULL, 0) < 0 ||
                    frame_read_json(fd, &r, NULL, NULL, 0, 10000) < 0)
                    _exit(2);
                long v = (long)cJSON_GetObjectItem(r, "count")->valuedouble;
                cJSON_Delete(r);
                if (v <= last)
                    _exit(3); /* each client sees strictly increasing values */
                last = v;
            }
            _exit(fd >= 0 ? 0 : 4);
        }
    }
    for (int k = 0; k < KIDS; k++) {
        int st = tu_wait(kids[k], 20000);
        ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "client %d failed (0x%x)", k, st);
    }
    ck_assert_int_eq(et_check(), KIDS * EACH);
}
END_TEST

START_TEST(test_no_exactly_once)
{
    et_mgr();
    char *extra[] = { "--no-exactly-once", NULL };
    et_ctr_args(extra);
    int fd = et_connect_ctr();
    const char *req = "{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\"}";
    cJSON *r = et_raw(fd, req);
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "count")->valuedouble, 1);
    cJSON_Delete(r);
    r = et_raw(fd, req);
    ck_assert_int_eq((int)cJSON_GetObjectItem(r, "count")->valuedouble, 2); /* counted twice */
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(et_entries(), 1); /* and nothing recorded */
}
END_TEST

START_TEST(test_on_manager_death_exit)
{
    pid_t mgr = et_mgr();
    char *extra[] = { "--on-manager-death=exit", NULL };
    pid_t ctr = et_ctr_args(extra);
    et_expect_owner(ctr);
    tu_kill9(mgr);
    int st = tu_wait(ctr, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 75, "etscounterd ended with 0x%x, not exit 75",
                  st);
    /* the scheme's restart: a new etsmgrd rediscovers, a new etscounterd takes the table back */
    et_mgr();
    et_ctr_args(extra);
    ck_assert_int_eq(et_count(), 1);
}
END_TEST

START_TEST(test_second_instance_refused)
{
    et_mgr();
    et_ctr();
    char *out = NULL;
    int st = rc_sh(&out, 20000, "%s --wait-timeout 2000", tu_bin("etscounterd", false));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 70, "second etscounterd: status 0x%x: %s", st, out);
    ck_assert_msg(strstr(out, "another etscounterd"), "second etscounterd said: %s", out);
    free(out);
    ck_assert_int_eq(et_count(), 1);
}
END_TEST

/* etscounterd started before etsmgrd waits for it (for ever by default): a
 * SIGTERM meanwhile ends it with status 0, as etscounterd(8) says, and the
 * socket file it made goes with it.  (It died by the signal: its handlers
 * were made only once it served.) */
static bool et_log_says(void *text)
{
    char *log = tu_log(&E, "ctr.log");
    bool yes = strstr(log, text) != NULL;
    free(log);
    return yes;
}

START_TEST(test_sigterm_while_waiting_for_mgr)
{
    char *argv[] = { "etscounterd", "--log-level", "notice", NULL };
    pid_t ctr = tu_spawn_logged(&E, argv, "ctr.log", 0);
    ck_assert_int_gt(ctr, 0);
    ck_assert_msg(tu_eventually(et_log_says, "waiting for etsmgr to start", ET_SPAWN_MS),
                  "etscounterd did not say it waits");
    char sockp[sizeof E.dir + 32];
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", E.dir);
    struct stat sst;
    ck_assert_msg(stat(sockp, &sst) == 0, "%s: %s", sockp, strerror(errno));
    ck_assert_int_eq(kill(ctr, SIGTERM), 0);
    int st = tu_wait(ctr, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "etscounterd waiting for etsmgrd ended with 0x%x on SIGTERM, not exit 0", st);
    ck_assert_msg(stat(sockp, &sst) < 0 && errno == ENOENT, "%s is left behind", sockp);
    char *log = tu_log(&E, "ctr.log");
    ck_assert_msg(strstr(log, "stopping on SIGTERM while waiting for etsmgr"), "its log: %s", log);
    free(log);
}
END_TEST

/* etscounterd started while etsmgrd says table etscounter is owned (after
 * a SIGKILL of the etscounterd before it, for a moment; here by a live
 * process, the test) asks again for up to 10 s: a SIGTERM meanwhile ends
 * it with status 0 too, not by the signal, and the owner keeps the table
 * as it was; after 1 s it says, at the default log level, which process
 * it waits for.  The table is the test's own, with an entry etscounterd would
 * never make, and no "count", which it would. */
START_TEST(test_sigterm_while_table_owned)
{
    et_mgr();
    etsmgr_client *c = NULL;
    char msg[256];
    ck_assert_msg(etsmgr_connect(E.dir, E.instance, &c, msg, sizeof msg) == ETSMGR_OK, "etsmgr_connect: %s", msg);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(etsmgr_new_table(c, "etscounter", NULL, "etscounter", &t, NULL), ETSMGR_OK);
    etsmgr_value v = { .type = ETSMGR_INT, .i = 41 };
    ck_assert_int_eq(etsmgr_table_insert(t, "held", 4, &v), ETSMGR_OK);
    et_expect_owner(getpid());

    /* at the default log level: after 1 s it says why it waits */
    char *argv[] = { "etscounterd", NULL };
    pid_t ctr = tu_spawn_logged(&E, argv, "ctr.log", 0);
    ck_assert_int_gt(ctr, 0);
    if (et_nctrs < 64)
        et_ctrs[et_nctrs++] = ctr;
    char owned[64];
    snprintf(owned, sizeof owned, "still owned by pid %d after 1 s", (int)getpid());
    ck_assert_msg(tu_eventually(et_log_says, owned, ET_SPAWN_MS), "etscounterd did not say \"%s\"", owned);
    ck_assert_int_eq(kill(ctr, SIGTERM), 0);
    int st = tu_wait(ctr, 10000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "etscounterd waiting for an owned table ended with 0x%x on SIGTERM, not exit 0", st);
    char sockp[sizeof E.dir + 32];
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", E.dir);
    struct stat sst;
    ck_assert_msg(stat(sockp, &sst) < 0 && errno == ENOENT, "%s is left behind", sockp);
    char *log = tu_log(&E, "ctr.log");
    ck_assert_msg(strstr(log, "stopping on SIGTERM while waiting for table etscounter"), "its log: %s", log);
    free(log);

    ck_assert_int_eq(et_owner(), getpid());
    ck_assert_int_eq(et_entries(), 1);
    etsmgr_value got;
    ck_assert_int_eq(etsmgr_table_lookup(t, "held", 4, &got, NULL, 0), ETSMGR_OK);
    ck_assert_int_eq(got.type, ETSMGR_INT);
    ck_assert_int_eq(got.i, 41);
    etsmgr_client_close(c);
}
END_TEST

/* ------------------------------------------------------------------ CLI and options */
START_TEST(test_cli_usage)
{
    char *out;
    int st = et_cli(&out, "");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "no command: 0x%x %s", st, out);
    free(out);
    st = et_cli(&out, "bogus");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64 && strstr(out, "unknown command"), "bogus: %s", out);
    free(out);
    st = et_cli(&out, "--timeout soon count");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "bad timeout: %s", out);
    free(out);
    st = et_cli(&out, "count extra");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "extra argument: %s", out);
    free(out);
    st = et_cli(&out, "--version");
    ck_assert_msg(rc_ok(st) && strcmp(out, "etscounter " ETSMGR_VERSION_STRING "\n") == 0, "--version: %s", out);
    free(out);
    st = et_cli(&out, "--help");
    ck_assert_msg(rc_ok(st) && strstr(out, "Usage: etscounter") && strstr(out, "--timeout MS"), "--help: %s", out);
    free(out);
    /* nothing runs and nothing restarts it: 69 at once, not after --timeout
     * (et_cli gives up after 20 s), saying where it looked and what to do */
    st = et_cli(&out, "--timeout 600000 count");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 69, "no server: 0x%x %s", st, out);
    ck_assert_msg(strstr(out, "not running") && strstr(out, E.instance) && strstr(out, E.dir) &&
                      strstr(out, "does not exist") && strstr(out, "etssup"),
                  "the message does not say what is missing, where, and how to start it: %s", out);
    ck_assert_msg(!strstr(out, "waiting"), "it waited: %s", out);
    free(out);
    /* a stale socket file (a daemon killed with no supervisor): the same */
    char sockp[256];
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", E.dir);
    char err[256];
    int lfd = sock_listen_unix(sockp, 0600, 1, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    close(lfd); /* the file stays, nobody listens */
    st = et_cli(&out, "--timeout 600000 count");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 69 && strstr(out, "refuses connections"), "stale: 0x%x %s",
                  st, out);
    free(out);

    const char *d = tu_bin("etscounterd", false);
    st = rc_sh(&out, 10000, "%s --version", d);
    ck_assert_msg(rc_ok(st) && strcmp(out, "etscounterd " ETSMGR_VERSION_STRING "\n") == 0, "%s", out);
    free(out);
    st = rc_sh(&out, 10000, "%s --help", d);
    ck_assert_msg(rc_ok(st) && strstr(out, "--on-manager-death") && strstr(out, "--no-exactly-once"), "%s", out);
    ck_assert_msg(!strstr(out, "TEST"), "--help shows a test-only variable: %s", out);
    free(out);
    st = rc_sh(&out, 10000, "%s --on-manager-death=maybe", d);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "bad option value: 0x%x %s", st, out);
    free(out);
    st = rc_sh(&out, 10000, "%s --poll-us -1", d);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64 && strstr(out, "--poll-us takes microseconds"),
                  "bad --poll-us: 0x%x %s", st, out);
    free(out);
    st = rc_sh(&out, 10000, "%s --poll-us 1000001", d);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "--poll-us above 1 s: 0x%x %s", st, out);
    free(out);
    st = rc_sh(&out, 10000, "%s --log-level loud", d);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 64, "bad log level: 0x%x %s", st, out);
    free(out);
    /* no etsmgrd within --wait-timeout: 69 */
    st = rc_sh(&out, 10000, "%s --wait-timeout 200", d);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 69, "no etsmgrd: 0x%x %s", st, out);
    free(out);
}
END_TEST

static int et_accept(int lfd)
{
    struct pollfd p = {.fd = lfd, .events = POLLIN}; /* sock_listen_unix's socket is non-blocking */
    return poll(&p, 1, 10000) == 1 ? accept(lfd, NULL, NULL) : -1;
}

static int et_reply(int fd, const cJSON *req, const char *fields)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "id");
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"id\":%d,%s}", id ? (int)id->valuedouble : 0, fields);
    return frame_write(fd, buf, (size_t)n, NULL, 0);
}

/* The stand-in's x: the CLI on c stopped, then the answer expired, then,
 * once req's retry_until_mono has passed, the CLI let go on. 0 or -1. */
static int et_expire_late(int c, const cJSON *req)
{
    struct ucred cr;
    socklen_t crl = sizeof cr;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "retry_until_mono");
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 || !cJSON_IsNumber(u) ||
        kill(cr.pid, SIGSTOP) < 0)
        return -1;
    char statp[64], st[512];
    snprintf(statp, sizeof statp, "/proc/%d/stat", (int)cr.pid);
    for (int i = 0;; i++) { /* stopped before the answer can be read */
        FILE *f = fopen(statp, "r");
        size_t n = f ? fread(st, 1, sizeof st - 1, f) : 0;
        if (f)
            fclose(f);
        st[n] = 0;
        const char *e = strrchr(st, ')');
        if (e && e[1] == ' ' && e[2] == 'T')
            break;
        if (i == 5000)
            return -1;
        usleep(1000);
    }
    int w =
        et_reply(c, req, "\"ok\":false,\"error\":\"expired\",\"message\":\"the request's deadline passed\"");
    while (etsmgr_mono_ms() <= (int64_t)u->valuedouble + 10)
        usleep(5000);
    return kill(cr.pid, SIGCONT) < 0 ? -1 : w;
}

/* A stand-in etscounterd on etscounter.sock, answering the CLI's
 * connections in turn as script says, a letter each:
 *   l  reads the request and closes without an answer (an etscounterd
 *      killed after its commit: the count made, its answer lost);
 *   m  too_many_connections without reading it, as conn.c's srv_refuse;
 *   M  the same to this connection and every later one;
 *   b, e  reads it and answers table_busy, table_error;
 *   d  reads it and answers {"count":7,"duplicate":true};
 *   o  reads it and answers ok without a count;
 *   s  reads it, puts a symlink loop at the socket's path (a connect
 *      then fails with ELOOP, which the CLI does not retry) and closes;
 *   x  reads it, stops the CLI (SIGSTOP; its pid from SO_PEERCRED),
 *      answers expired, and lets it go on only once the request's
 *      retry_until_mono has passed: the answer is read after it.
 * Each request read must carry the first one's rid.  Its pid; it exits 0
 * when the script was played to its end.  What a stand-in before it left
 * at the socket's path is removed first. */
static pid_t et_stand_in(const char *script)
{
    char sockp[256], err[256];
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", E.dir);
    ck_assert_msg(unlink(sockp) == 0 || errno == ENOENT, "unlink %s: %s", sockp, strerror(errno));
    int lfd = sock_listen_unix(sockp, 0600, 4, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid > 0) {
        close(lfd);
        return kid;
    }
    char rid[40] = "";
    for (const char *a = script; *a; a++) {
        int c = et_accept(lfd);
        if (c < 0)
            _exit(10);
        if (*a == 'm' || *a == 'M') {
            struct pollfd p = {.fd = c, .events = POLLIN}; /* the request has come, and stays unread */
            if (poll(&p, 1, 10000) != 1 || et_reply(c, NULL,
                                                    "\"ok\":false,\"error\":\"too_many_connections\","
                                                    "\"message\":\"the connection limit is reached\"") < 0)
                _exit(11);
            close(c);
            a -= *a == 'M'; /* the same letter again */
            continue;
        }
        cJSON *req = NULL;
        if (frame_read_json(c, &req, NULL, NULL, 0, 10000) < 0)
            _exit(12);
        const char *r = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req, "rid"));
        if (!r || (rid[0] && strcmp(rid, r) != 0))
            _exit(13); /* every attempt is the same request */
        snprintf(rid, sizeof rid, "%s", r);
        int w = 0;
        if (*a == 'b')
            w = et_reply(c, req,
                         "\"ok\":false,\"error\":\"table_busy\",\"message\":\"the table's lock is held\"");
        else if (*a == 'e')
            w = et_reply(c, req, "\"ok\":false,\"error\":\"table_error\",\"message\":\"count failed\"");
        else if (*a == 'd')
            w = et_reply(c, req, "\"ok\":true,\"count\":7,\"duplicate\":true");
        else if (*a == 'o')
            w = et_reply(c, req, "\"ok\":true");
        else if (*a == 's' && (unlink(sockp) < 0 || symlink(sockp, sockp) < 0))
            w = -1;
        else if (*a == 'x')
            w = et_expire_late(c, req);
        if (w < 0)
            _exit(14);
        cJSON_Delete(req);
        close(c);
    }
    _exit(0);
}

static void et_stand_in_done(pid_t kid)
{
    int st;
    ck_assert_int_eq(waitpid(kid, &st, 0), kid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the stand-in: 0x%x", st);
}

/* `etscounter ARGS count` against a stand-in playing script: it exits
 * code and says both words (word2 may be NULL). */
static void et_scripted_count(const char *script, const char *args, int code, const char *word1,
                              const char *word2)
{
    pid_t kid = et_stand_in(script);
    char *out, cmd[64];
    snprintf(cmd, sizeof cmd, "%s count", args);
    int st = et_cli(&out, cmd);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == code && strstr(out, word1) && (!word2 || strstr(out, word2)),
                  "stand-in \"%s\": 0x%x %s", script, st, out);
    free(out);
    et_stand_in_done(kid);
}

/* table_busy to a retry says nothing of the attempt before it, which may
 * have been counted before its answer was lost: the CLI says "count
 * unknown" (75), not "not counted" (69). */
START_TEST(test_cli_busy_after_lost_answer_is_unknown)
{
    et_scripted_count("lb", "--timeout 5000", 75, "count unknown", "table_busy");
}
END_TEST

/* Nor does any other error to a retry but expired and rid_store_full
 * (given after the request id was looked up), nor a retry that cannot
 * be made: the count is unknown (75).  The CLI said "count failed" (70)
 * of a count that may have been counted, and the final count was then
 * more than the counts that exited 0 and 75. */
START_TEST(test_cli_error_after_lost_answer_is_unknown)
{
    et_scripted_count("le", "--timeout 5000", 75, "count unknown", "table_error");
    et_scripted_count("ls", "--timeout 5000", 75, "count unknown", "symbolic links"); /* no retry possible */
    /* ok without the count: counted, says the answer, but it cannot be
     * printed, and 70 would say "not counted" */
    et_scripted_count("o", "--timeout 5000", 75, "count unknown", NULL);
    /* an error to the only attempt sent is final: not counted */
    et_scripted_count("e", "--timeout 5000", 70, "count failed", NULL);
}
END_TEST

/* too_many_connections comes before the request is read: the CLI sends it
 * again, as after a connection that closed, and it counts once the server
 * has room; it stopped at the first such answer with "count failed" (70),
 * even when an attempt before it had been counted. */
START_TEST(test_cli_retries_too_many_connections)
{
    pid_t kid = et_stand_in("lmmd");
    char *out;
    int st = et_cli(&out, "--timeout 5000 count");
    ck_assert_msg(rc_ok(st) && strcmp(out, "7\n") == 0, "0x%x %s", st, out);
    free(out);
    et_stand_in_done(kid);
    /* refused unread every time: never sent, so not counted (69).  But
     * the CLI's last attempt may start with a moment left to read its
     * answer, and a stand-in slow to answer it (a loaded machine) leaves
     * that attempt sent and unanswered: then, rightly, count unknown (75) */
    kid = et_stand_in("M");
    st = et_cli(&out, "--timeout 300 count");
    ck_assert_msg(WIFEXITED(st) && ((WEXITSTATUS(st) == 69 && strstr(out, "too_many_connections")) ||
                                    (WEXITSTATUS(st) == 75 && strstr(out, "count unknown") &&
                                     strstr(out, "the last one was sent and not answered"))),
                  "0x%x %s", st, out);
    free(out);
    tu_kill9(kid);
}
END_TEST

/* expired and rid_store_full say that no attempt was counted only when
 * etscounterd looked the request id up by its retry_until_mono, while the
 * record of an earlier attempt was still kept.  An answer the CLI reads
 * later may come from a lookup after it, the record dropped just before:
 * count unknown (75).  It said "not counted" (69). */
START_TEST(test_cli_expired_read_after_retry_until_is_unknown)
{
    et_scripted_count("lx", "--timeout 200", 75, "count unknown", "expired");
}
END_TEST

/* etscounterd's backlog full (it is stopped, and others wait to be
 * accepted): the CLI keeps to --timeout and gives up with 69.  Its
 * connect was blocking, and a blocking connect to a full AF_UNIX backlog
 * waits until the server accepts: it hung past any --timeout. */
START_TEST(test_cli_full_backlog_keeps_timeout)
{
    char sockp[256], err[256];
    snprintf(sockp, sizeof sockp, "%s/etscounter.sock", E.dir);
    int lfd = sock_listen_unix(sockp, 0600, 1, err, sizeof err); /* never accepts */
    ck_assert_msg(lfd >= 0, "%s", err);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(sockp), sizeof sa.sun_path);
    memcpy(sa.sun_path, sockp, strlen(sockp) + 1);
    int q[64], nq = 0;
    for (; nq < 64; nq++) { /* fill the backlog */
        q[nq] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(q[nq], 0);
        if (connect(q[nq], (struct sockaddr *)&sa, sizeof sa) < 0) {
            ck_assert_int_eq(errno, EAGAIN);
            close(q[nq]);
            break;
        }
    }
    ck_assert_int_lt(nq, 64);
    char *out;
    int st = et_cli(&out, "--timeout 500 ping"); /* et_cli kills it after 20 s */
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 69 && strstr(out, "gave up"), "0x%x %s", st, out);
    free(out);
    for (int i = 0; i < nq; i++)
        close(q[i]);
    close(lfd);
}
END_TEST

/* A supervisor holds the instance's lock while it restarts etscounterd: the
 * CLI keeps trying, says once after a second what it waits for, and counts
 * when etscounterd comes. */
START_TEST(test_cli_waits_for_a_restart)
{
    char lockp[256];
    snprintf(lockp, sizeof lockp, "%s/etssup.lock", E.dir);
    int lk = sock_lock_file(lockp); /* we play etssup */
    ck_assert_msg(lk >= 0, "lock %s: %s", lockp, strerror(errno));
    char *out;
    int st = et_cli(&out, "--timeout 1500 count");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 69, "no server, lock held: 0x%x %s", st, out);
    int said = 0;
    for (const char *w = out; (w = strstr(w, "waiting for etscounterd")); w++)
        said++;
    ck_assert_msg(said == 1 && strstr(out, "attempts"), "not said once what it waits for: %s", out);
    free(out);
    /* it counts once etscounterd comes, with the wait said on stderr */
    et_mgr();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s --timeout 30000 count > %s/out 2> %s/err", tu_bin("etscounter", false), E.dir,
             E.dir);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t cli = tu_spawn(&E, sh);
    ck_assert_int_gt(cli, 0);
    char errp[300];
    snprintf(errp, sizeof errp, "%s/err", E.dir);
    ck_assert_msg(tu_eventually(et_file_has_text, errp, 20000), "no word on stderr while waiting");
    et_ctr();
    st = tu_wait(cli, 30000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "count after the restart: 0x%x", st);
    close(lk);
}
END_TEST

/* The CLI's retries of a count end at the request's own retry_until_mono,
 * the moment until which etscounterd keeps its request id: a retry after
 * it could find the id forgotten and hear "expired" of a count that was
 * made.  The CLI took its deadline from a clock read of its own, a moment
 * after the request's (a preemption there, 200 ms here, made it that much
 * later).  A stand-in etscounterd reads each attempt and closes the
 * connection without a reply (etscounterd dying with it in hand), noting
 * when it came and the retry_until_mono it carried. */
START_TEST(test_cli_retries_end_at_retry_until)
{
    char path[sizeof E.dir + 32], err[256];
    snprintf(path, sizeof path, "%s/etscounter.sock", E.dir);
    int lfd = sock_listen_unix(path, 0600, 64, err, sizeof err);
    ck_assert_msg(lfd >= 0, "%s", err);
    int rd;
    pid_t srv = tu_fork_pipe(&rd);
    ck_assert_int_ge(srv, 0);
    if (srv == 0) {
        for (;;) { /* until the test kills it */
            int c = et_accept(lfd);
            if (c < 0)
                _exit(2);
            cJSON *req = NULL;
            if (frame_read_json(c, &req, NULL, NULL, 0, 5000) == 0) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                long long at = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
                const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "retry_until_mono");
                char line[64];
                int n = snprintf(line, sizeof line, "%lld %lld\n", at, cJSON_IsNumber(u) ? (long long)u->valuedouble : -1);
                if (write(rd, line, (size_t)n) != n)
                    _exit(3);
                cJSON_Delete(req);
            }
            close(c);
        }
    }
    close(lfd);
    char why[512];
    cJSON *req = ec_request("count", 1, 0, why, sizeof why);
    ck_assert_msg(req != NULL, "%s", why);
    long long until = (long long)cJSON_GetObjectItemCaseSensitive(req, "retry_until_mono")->valuedouble;
    struct timespec late = {0, 200 * 1000000L}; /* the scenario: the CLI descheduled after building it */
    while (nanosleep(&late, &late) < 0 && errno == EINTR)
        ;
    rt_paths rt;
    ck_assert_int_eq(rt_resolve(E.dir, E.instance, &rt, err, sizeof err), 0);
    cJSON *rep = NULL;
    int sent = 0;
    int rc = ec_call(&rt, path, req, 0, EC_GRACE_MS, 1, &rep, &sent, why, sizeof why);
    cJSON_Delete(req);
    ck_assert_msg(rc == EC_UNAVAILABLE && rep == NULL, "ec_call: %d (%s)", rc, why);
    tu_kill9(srv);
    FILE *f = fdopen(rd, "r");
    ck_assert_ptr_nonnull(f);
    long long at, u;
    int n = 0;
    while (fscanf(f, "%lld %lld", &at, &u) == 2) {
        n++;
        ck_assert_msg(u == until, "attempt %d carried retry_until_mono %lld, not the request's %lld", n, u, until);
        ck_assert_msg(at <= until, "attempt %d came at %lld, %lld ms after its retry_until_mono %lld", n, at,
                      at - until, until);
    }
    fclose(f);
    ck_assert_msg(n >= 2 && n == sent, "the stand-in read %d attempts, the CLI sent %d (%s)", n, sent, why);
}
END_TEST

/* A count made whose output cannot be written (stdout a full disk, a pipe
 * whose reader went) was counted: the CLI says so, with the value, and
 * exits 74, not 70, which says "not counted" (a script that counts again
 * on 70 counted twice).  Nor does it exit 0 then. */
START_TEST(test_cli_output_lost_after_count)
{
    et_mgr();
    et_ctr();
    char *out;
    int st = et_cli(&out, "count > /dev/full");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 74, "count > /dev/full: 0x%x %s", st, out);
    ck_assert_msg(strstr(out, "count 1 was counted") && strstr(out, "No space left"), "the CLI said: %s",
                  out);
    free(out);
    ck_assert_int_eq(et_check(), 1);
    st = et_cli(&out, "--json check > /dev/full");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 74, "check > /dev/full: 0x%x %s", st, out);
    free(out);
}
END_TEST

START_TEST(test_cli_json)
{
    et_mgr();
    et_ctr();
    char *out;
    ck_assert(rc_ok(et_cli(&out, "--json count")));
    ck_assert_str_eq(out, "{\"count\":1}\n");
    free(out);
    ck_assert(rc_ok(et_cli(&out, "--json check")));
    ck_assert_str_eq(out, "{\"table\":\"etscounter\",\"data\":{\"count\":1}}\n");
    free(out);
    ck_assert(rc_ok(et_cli(&out, "check")));
    ck_assert_str_eq(out, "table etscounter:\n  count = 1\n");
    free(out);
}
END_TEST

/* Issue 12, item 1, as found: a count commits, etscounterd dies before
 * replying, the CLI is stopped while 5000 other counts happen, then goes
 * on and retries with the same rid.  It must get its value back as a
 * duplicate, not be counted twice (the old ring of 4096 rids had forgotten
 * it by then). */
START_TEST(test_lost_reply_retried_after_5000)
{
    int sup = et_play_supervisor();
    int rd;
    pid_t cli = et_lose_reply_of_count_2(&rd); /* count 2 is committed, its reply lost */
    ck_assert_int_eq(kill(cli, SIGSTOP), 0);
    et_ctr();
    int fd = et_connect_ctr();
    for (int done = 0; done < 5000; done += 500)
        et_pipeline(fd, 100000 + done, 500, 2 + done);
    close(fd);
    ck_assert_int_eq(kill(cli, SIGCONT), 0);
    et_expect_retry_got_2(cli, rd);
    ck_assert_int_eq(et_check(), 5002);
    close(sup);
}
END_TEST

/* A retry sent before its retry_until_mono and read after it (it waited in
 * the socket's backlog while etscounterd was held up) must not be counted
 * again.  Its first attempt was counted, its answer lost; the record is
 * kept until retry_until_mono and no longer, so a count read after that
 * may drop it first (here another client's, which waited beside it), and
 * the retry, no longer found and without a deadline, was counted a
 * second time.  Now such a request is refused (expired) once its
 * retry_until_mono has passed, as one past its deadline. */
START_TEST(test_retry_read_after_retry_until)
{
    et_mgr();
    setenv("ETSCOUNTERD_TEST_DIE_AFTER_COMMIT", "1", 1);
    pid_t a = et_ctr();
    unsetenv("ETSCOUNTERD_TEST_DIE_AFTER_COMMIT");
    long long until = (long long)etsmgr_mono_ms() + 3000;
    char x[160];
    snprintf(x, sizeof x, "{\"op\":\"count\",\"id\":1,\"rid\":\"%032x\",\"retry_until_mono\":%lld}", 0xabc,
             until);
    int fd = et_connect_ctr();
    ck_assert_int_eq(frame_write(fd, x, strlen(x), NULL, 0), 0);
    cJSON *r = NULL;
    ck_assert_int_lt(frame_read_json(fd, &r, NULL, NULL, 0, 10000), 0); /* counted, and no answer */
    close(fd);
    et_expect_sigkill(a);
    pid_t b = et_ctr();
    int fy = et_connect_ctr(); /* accepted now (the ping says so): read first once b goes on */
    cJSON_Delete(et_raw(fy, "{\"op\":\"ping\",\"id\":0}"));
    ck_assert_int_eq(kill(b, SIGSTOP), 0);
    int ws;
    ck_assert_int_eq(waitpid(b, &ws, WUNTRACED), b);
    const char *y = "{\"op\":\"count\",\"id\":2,\"rid\":\"000000000000000000000000000000ff\"}";
    ck_assert_int_eq(frame_write(fy, y, strlen(y), NULL, 0), 0);
    int fx = et_connect_ctr(); /* the retry, in b's backlog */
    ck_assert_int_eq(frame_write(fx, x, strlen(x), NULL, 0), 0);
    ck_assert_msg(etsmgr_mono_ms() < until, "the retry was sent after its retry_until_mono (a slow start)");
    et_wait_past(until + 20); /* b held up past it */
    ck_assert_int_eq(kill(b, SIGCONT), 0);
    ck_assert_int_eq(frame_read_json(fy, &r, NULL, NULL, 0, 10000), 0);
    ck_assert_int_eq((long)cJSON_GetObjectItem(r, "count")->valuedouble, 2);
    cJSON_Delete(r);
    ck_assert_int_eq(frame_read_json(fx, &r, NULL, NULL, 0, 10000), 0);
    char *txt = cJSON_PrintUnformatted(r);
    ck_assert_msg(!cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")) &&
                      strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "error")), "expired") == 0,
                  "the late retry got %s", txt);
    free(txt);
    cJSON_Delete(r);
    close(fx);
    close(fy);
    ck_assert_int_eq(et_check(), 2); /* counted once, not twice */
}
END_TEST

/* Issue 12, item 5: etscounterd stopped inside a count, after its deadline
 * check, for longer than the CLI waits.  The CLI cannot know the outcome:
 * it exits 75 and says "may have been counted" (it said 69, "did not
 * answer").  When etscounterd goes on, the deadline check just before the
 * commit refuses the count, so it is not counted late. */
START_TEST(test_stalled_in_commit)
{
    et_mgr();
    setenv("ETSCOUNTERD_TEST_STOP_IN_COMMIT", "1", 1);
    pid_t ctr = et_ctr();
    unsetenv("ETSCOUNTERD_TEST_STOP_IN_COMMIT");
    char *out;
    int st = et_cli(&out, "--timeout 300 count");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 75, "the CLI exited 0x%x: %s", st, out);
    ck_assert_msg(strstr(out, "may have been counted"), "the CLI said: %s", out);
    free(out);
    /* etscounterd stopped itself inside the change */
    int ws;
    ck_assert_int_eq(waitpid(ctr, &ws, WUNTRACED | WNOHANG), ctr);
    ck_assert(WIFSTOPPED(ws));
    ck_assert_int_eq(kill(ctr, SIGCONT), 0);
    ck_assert_int_eq(et_check(), 0); /* the late commit was refused */
    ck_assert_int_eq(et_count(), 1);
}
END_TEST

/* Issue 12: a process that may attach the table takes its lock and stops.
 * etscounterd answers table_busy after its --lock-timeout instead of
 * freezing, and counts again once the lock is free. */
START_TEST(test_table_busy)
{
    et_mgr();
    char *args[] = { "--lock-timeout", "200", NULL };
    et_ctr_args(args);
    ck_assert_int_eq(et_count(), 1);
    rt_paths rt;
    char err[200], name[300];
    ck_assert_int_eq(rt_resolve(E.dir, E.instance, &rt, err, sizeof err), 0);
    ck_assert_int_eq(rt_shm_name(&rt, (unsigned long)geteuid(), "etscounter", name, sizeof name), 0);
    etsmgr_table *t = NULL;
    ck_assert_int_eq(tbl_open(name, &t), ETSMGR_OK);
    ck_assert_int_eq(etsmgr_table_begin(t), ETSMGR_OK); /* holds the lock */
    char *out;
    int st = et_cli(&out, "--timeout 3000 count");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 69, "the CLI exited 0x%x: %s", st, out);
    ck_assert_msg(strstr(out, "table_busy"), "the CLI said: %s", out);
    free(out);
    st = et_cli(&out, "--timeout 3000 check");
    ck_assert_msg(strstr(out, "table_busy"), "check said: %s", out);
    free(out);
    ck_assert_int_eq(etsmgr_table_abort(t), ETSMGR_OK);
    etsmgr_table_close(t);
    ck_assert_int_eq(et_count(), 2);
}
END_TEST

Suite *etscounter_suite(void)
{
    Suite *s = suite_create("etscounter");
    TCase *tc = tcase_create("transcript");
    tcase_add_checked_fixture(tc, et_setup, et_cleanup);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_transcript);
    suite_add_tcase(s, tc);
    tc = tcase_create("exactly_once");
    tcase_add_checked_fixture(tc, et_setup, et_cleanup);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exactly_once_lost_reply);
    tcase_add_test(tc, test_repeated_rid);
    tcase_add_test(tc, test_fast_and_general_replies_match);
    tcase_add_test(tc, test_no_exactly_once);
    tcase_add_test(tc, test_lost_reply_retried_after_5000);
    tcase_add_test(tc, test_retry_read_after_retry_until);
    tcase_add_test(tc, test_stalled_in_commit);
    tcase_add_test(tc, test_table_busy);
    suite_add_tcase(s, tc);
    tc = tcase_create("serve");
    tcase_add_checked_fixture(tc, et_setup, et_cleanup);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_pipelined_rids_kept);
    tcase_add_test(tc, test_pipelined_lookahead);
    tcase_add_test(tc, test_lookahead_across_connections);
    tcase_add_test(tc, test_group_commit_in_order);
    tcase_add_test(tc, test_counts_answered_before_frame_too_large);
    tcase_add_test(tc, test_counts_answered_before_half_close);
    tcase_add_test(tc, test_reply_too_large_closes);
    tcase_add_test(tc, test_rid_store_full);
    tcase_add_test(tc, test_deadline_zero_is_none);
    tcase_add_test(tc, test_deadline_int64_max);
    tcase_add_test(tc, test_rid_store_full_logs_limited);
    tcase_add_test(tc, test_rid_store_full_logs_counted);
    tcase_add_test(tc, test_rid_store_full_logs_counted_at_exit);
    tcase_add_test(tc, test_concurrent_clients);
    tcase_add_test(tc, test_poll_us_sleeps_when_idle);
    tcase_add_test(tc, test_on_manager_death_exit);
    tcase_add_test(tc, test_second_instance_refused);
    tcase_add_test(tc, test_sigterm_while_waiting_for_mgr);
    tcase_add_test(tc, test_sigterm_while_table_owned);
    suite_add_tcase(s, tc);
    tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, et_setup, et_cleanup);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cli_usage);
    tcase_add_test(tc, test_cli_waits_for_a_restart);
    tcase_add_test(tc, test_cli_busy_after_lost_answer_is_unknown);
    tcase_add_test(tc, test_cli_error_after_lost_answer_is_unknown);
    tcase_add_test(tc, test_cli_retries_too_many_connections);
    tcase_add_test(tc, test_cli_expired_read_after_retry_until_is_unknown);
    tcase_add_test(tc, test_cli_full_backlog_keeps_timeout);
    tcase_add_test(tc, test_cli_json);
    tcase_add_test(tc, test_cli_output_lost_after_count);
    tcase_add_test(tc, test_cli_retries_end_at_retry_until);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_testutil.c: the shared test helpers do what every other suite relies
 * on: readiness from a notify socket (and a quick failure when the child dies
 * or stays silent), cleanup that leaves no process, shm object or dir, and
 * tu_request against a real conn_server process (with fd counts from /proc);
 * and the runner shows a failed test's name, reason and output, hides a
 * passing one's, and removes what a failed or leaking test left. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procstat.h"
#include "testutil.h"

static bool proc_gone(void *arg)
{
    return proc_exited(*(pid_t *)arg); /* a zombie of someone else is gone for us */
}

START_TEST(test_tu_env_and_ready)
{
    tu_env e;
    tu_env_init(&e);
    ck_assert_str_eq(getenv("ETSMGR_RUNTIME_DIR"), e.dir);
    ck_assert_str_eq(getenv("ETSMGR_INSTANCE"), e.instance);
    ck_assert_int_eq(access(e.dir, W_OK), 0);
    tu_env e2;
    tu_env_init(&e2);
    ck_assert_str_ne(e.instance, e2.instance);
    ck_assert_str_ne(e.dir, e2.dir);
    tu_env_cleanup(&e2);
    ck_assert_int_eq(access(e2.dir, F_OK), -1);

    char *argv[] = {"notify_ready", NULL};
    pid_t pid = tu_spawn_ready(&e, argv, 10000);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_eq(kill(pid, 0), 0);
    ck_assert_int_gt(tu_count_fds(pid), 2);
    ck_assert(!tu_has_zombie_children(getpid()));
    /* a shm object of the instance, and one of another */
    char name[128];
    snprintf(name, sizeof name, "/%s:0:tbl", e.instance);
    int fd = shm_open(name, O_CREAT | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(tu_count_shm(&e), 1);
    FILE *f = fopen(tu_bin("x", false), "r"); /* just a path */
    if (f)
        fclose(f);
    tu_env_cleanup(&e);
    ck_assert_int_eq(tu_count_shm(&e), 0);
    ck_assert_int_eq(access(e.dir, F_OK), -1);
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1); /* already reaped */
    ck_assert_int_eq(errno, ECHILD);
}
END_TEST

START_TEST(test_tu_spawn_failures)
{
    tu_env e;
    tu_env_init(&e);
    long long t0 = tu_now_ms();
    char *dies[] = {"notify_ready", "--exit-before-ready", "3", NULL};
    ck_assert_int_eq(tu_spawn_ready(&e, dies, 10000), -1);
    ck_assert_msg(tu_now_ms() - t0 < 5000, "an exiting child must fail the spawn at once");
    t0 = tu_now_ms();
    char *silent[] = {"notify_ready", "--never-ready", NULL};
    ck_assert_int_eq(tu_spawn_ready(&e, silent, 300), -1);
    ck_assert_int_ge(tu_now_ms() - t0, 300);
    ck_assert(!tu_has_zombie_children(getpid()));
    char *missing[] = {"no-such-program-here", NULL};
    ck_assert_int_eq(tu_spawn_ready(&e, missing, 5000), -1);
    /* tu_spawn + tu_wait + tu_kill9 */
    char *ok[] = {"notify_ready", "--exit-before-ready", "5", NULL};
    pid_t pid = tu_spawn(&e, ok);
    ck_assert_int_gt(pid, 0);
    int st = tu_wait(pid, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 5);
    char *stay[] = {"notify_ready", "--never-ready", NULL};
    pid = tu_spawn(&e, stay);
    ck_assert_int_eq(tu_wait(pid, 50), -1);
    st = tu_kill9(pid);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    tu_env_cleanup(&e);
}
END_TEST

/* A child that ignores SIGTERM and leaves an orphan behind: cleanup still
 * removes both. */
START_TEST(test_tu_cleanup_escalates_and_strays)
{
    tu_env e;
    tu_env_init(&e);
    char script[1024];
    snprintf(script, sizeof script, "sleep 1000 & echo $! > %s/sleep.pid; exec %s --ignore-term", e.dir,
             tu_bin("notify_ready", true));
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    pid_t pid = tu_spawn_ready(&e, argv, 10000);
    ck_assert_int_gt(pid, 0);
    char path[160];
    snprintf(path, sizeof path, "%s/sleep.pid", e.dir);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    int spid = 0;
    ck_assert_int_eq(fscanf(f, "%d", &spid), 1);
    fclose(f);
    ck_assert_int_eq(kill(spid, 0), 0);
    tu_env_cleanup(&e);
    ck_assert(proc_gone(&pid));
    pid_t sp = spid;
    ck_assert_msg(tu_eventually(proc_gone, &sp, 5000), "orphan %d survived cleanup", spid);
}
END_TEST

/* A failed assertion exits the test process: the atexit cleanup runs. */
static void fail_after_spawn(const char *dirfile)
{
    tu_env e;
    tu_env_init(&e);
    FILE *f = fopen(dirfile, "w");
    char *argv[] = {"notify_ready", NULL};
    pid_t pid = tu_spawn_ready(&e, argv, 10000);
    fprintf(f, "%s %d\n", e.dir, (int)pid);
    fclose(f);
    exit(1); /* as ck_assert does */
}

START_TEST(test_tu_atexit_cleanup)
{
    char tmp[] = "/tmp/etsmgr-tuXXXXXX";
    int fd = mkstemp(tmp);
    ck_assert_int_ge(fd, 0);
    close(fd);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        fail_after_spawn(tmp);
    int st;
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    FILE *f = fopen(tmp, "r");
    char dir[128];
    int pid = 0;
    ck_assert_int_eq(fscanf(f, "%127s %d", dir, &pid), 2);
    fclose(f);
    unlink(tmp);
    ck_assert_int_gt(pid, 0);
    pid_t p = pid;
    ck_assert(tu_eventually(proc_gone, &p, 5000));
    ck_assert_int_eq(access(dir, F_OK), -1);
}
END_TEST

static int server_fds(tu_env *e)
{
    char *r = tu_request(e, "echo.sock", "{\"op\":\"fds\"}", NULL, 0, NULL, NULL);
    ck_assert_ptr_nonnull(r);
    const char *p = strstr(r, "\"fds\":");
    ck_assert_ptr_nonnull(p);
    int n = atoi(p + 6);
    free(r);
    return n;
}

/* tu_request against conn_echo, a conn_server in its own process. */
START_TEST(test_tu_request_conn_server_process)
{
    tu_env e;
    tu_env_init(&e);
    char *argv[] = {"conn_echo", NULL};
    pid_t pid = tu_spawn_ready(&e, argv, 10000);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_gt(tu_count_fds(pid), 3);
    int base = server_fds(&e);
    ck_assert_int_gt(base, 3);
    char *r = tu_request(&e, "echo.sock", "{\"op\":\"ping\",\"id\":1}", NULL, 0, NULL, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(r, "{\"ok\":true,\"id\":1,\"op\":\"ping\",\"nfds\":0}");
    free(r);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    for (int i = 0; i < 50; i++) {
        int rfds[4], nr = 0;
        int two[2] = {p[1], p[0]};
        r = tu_request(&e, "echo.sock", "{\"op\":\"fd\",\"id\":2}", two, 2, rfds, &nr);
        ck_assert_ptr_nonnull(r);
        ck_assert_ptr_nonnull(strstr(r, "\"nfds\":2"));
        ck_assert_int_eq(nr, 1);
        ck_assert_int_eq(write(rfds[0], "z", 1), 1);
        char ch;
        ck_assert_int_eq(read(p[0], &ch, 1), 1);
        close(rfds[0]);
        free(r);
    }
    /* bad input keeps the server up and leaks nothing */
    r = tu_request(&e, "echo.sock", "[]", p, 1, NULL, NULL);
    ck_assert_ptr_nonnull(strstr(r, "bad_request"));
    free(r);
    ck_assert_int_eq(server_fds(&e), base);
    r = tu_request(&e, "echo.sock", "{\"op\":\"exit\"}", NULL, 0, NULL, NULL);
    ck_assert_ptr_nonnull(r);
    free(r);
    int st = tu_wait(pid, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(p[0]);
    close(p[1]);
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ the runner
 * The runner (tests/runner.c) runs itself on the "probe" case: one test that
 * prints, starts a process, makes a shm object and fails; one that passes
 * but leaves a registered shm object; one that passes quietly.  The probes
 * act only when ETSMGR_RUNNER_PROBE names the file where they write what
 * they made; in a normal run they pass at once. */
static const char *probe_file(void)
{
    const char *f = getenv("ETSMGR_RUNNER_PROBE");
    return f && *f ? f : NULL;
}

static void probe_note(const char *fmt, const char *a, long b)
{
    FILE *f = fopen(probe_file(), "a");
    ck_assert_ptr_nonnull(f);
    fprintf(f, fmt, a, b);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(probe_fails)
{
    if (!probe_file())
        return;
    tu_env e;
    tu_env_init(&e);
    char *argv[] = {"notify_ready", "--ignore-term", NULL};
    pid_t pid = tu_spawn_ready(&e, argv, 10000);
    ck_assert_int_gt(pid, 0);
    char shm[128];
    snprintf(shm, sizeof shm, "/%s.probe", e.instance);
    int fd = shm_open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    probe_note("fails %s %ld\n", e.instance, (long)pid);
    probe_note("dir %s %ld\n", e.dir, 0);
    fprintf(stderr, "probe: what the failing test printed\n");
    ck_assert_msg(0, "the probe fails on purpose");
}
END_TEST

START_TEST(probe_leaks)
{
    if (!probe_file())
        return;
    char shm[64];
    snprintf(shm, sizeof shm, "/probe%ldleak", (long)getpid());
    tu_sweep_note("shm", shm, NULL);
    int fd = shm_open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    probe_note("leaks %s %ld\n", shm, 0);
}
END_TEST

START_TEST(probe_passes)
{
    if (probe_file())
        fprintf(stderr, "probe: what the passing test printed\n");
}
END_TEST

START_TEST(test_runner_captures_and_sweeps)
{
    char dir[] = "/tmp/etsmgr-probe.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char made[sizeof dir + 16], log[sizeof dir + 16], exe[4096];
    snprintf(made, sizeof made, "%s/made", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1); /* the runner: check forked us */
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "CK_RUN_SUITE=testutil CK_RUN_CASE=probe ETSMGR_RUNNER_PROBE=%s ETSMGR_TEST_LOG=%s '%s' 2>&1", made,
             log, exe);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char out[65536];
    size_t len = fread(out, 1, sizeof out - 1, p);
    out[len] = '\0';
    int st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "the runner exited %#x, not 1:\n%s", st, out);
    /* a failed test: its name, its reason, what it printed */
    ck_assert_msg(strstr(out, "FAILED probe:probe_fails") && strstr(out, "the probe fails on purpose") &&
                      strstr(out, "probe: what the failing test printed"),
                  "the failure is not shown with name, reason and output:\n%s", out);
    /* a passing test's output stays in the log */
    ck_assert_msg(!strstr(out, "what the passing test printed"), "a passing test's output was shown:\n%s", out);
    char *logtext = NULL;
    size_t loglen = 0;
    FILE *lf = fopen(log, "r");
    ck_assert_ptr_nonnull(lf);
    ck_assert_int_gt(getdelim(&logtext, &loglen, '\0', lf), 0);
    fclose(lf);
    ck_assert_msg(strstr(logtext, "what the passing test printed"), "the log lacks a test's output");
    free(logtext);
    ck_assert_msg(strstr(out, "LEFT BEHIND by probe:probe_leaks"), "a passing test's leftover is not reported:\n%s",
                  out);
    /* nothing of either is left */
    FILE *m = fopen(made, "r");
    ck_assert_ptr_nonnull(m);
    char kind[16], name[256];
    long pid;
    int seen = 0;
    while (fscanf(m, "%15s %255s %ld", kind, name, &pid) == 3) {
        char shm[300];
        if (strcmp(kind, "fails") == 0) {
            snprintf(shm, sizeof shm, "/dev/shm/%s.probe", name);
            pid_t pp = (pid_t)pid;
            ck_assert_msg(proc_gone(&pp), "the failed test's process %ld is still running", pid);
        } else if (strcmp(kind, "leaks") == 0) {
            snprintf(shm, sizeof shm, "/dev/shm%s", name);
        } else {
            snprintf(shm, sizeof shm, "%s", name); /* the runtime dir */
        }
        ck_assert_msg(access(shm, F_OK) < 0, "%s is still there", shm);
        seen++;
    }
    fclose(m);
    ck_assert_int_eq(seen, 3);
    unlink(made);
    unlink(log);
    char logc[sizeof log + 16];
    snprintf(logc, sizeof logc, "%s.created", log);
    unlink(logc);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* proc_stat's cpu_ticks (utime + stime, fields 14 and 15) against the
 * process's own CPU clock, after using 100 ms of CPU: the two agree within
 * a few ticks, so the right fields are read (the fields around them, the
 * page fault counts and the children's times, would not). */
static double tt_cpu_s(void)
{
    struct timespec ts;
    ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_proc_stat_cpu_ticks)
{
    double until = tt_cpu_s() + 0.1;
    volatile unsigned long spin = 0;
    while (tt_cpu_s() < until)
        for (int i = 0; i < 10000; i++)
            spin++;
    double cpu = tt_cpu_s();
    proc_stat st;
    ck_assert_int_eq(proc_stat_read(getpid(), &st), 0);
    double ticks_s = (double)st.cpu_ticks / (double)sysconf(_SC_CLK_TCK);
    ck_assert_msg(ticks_s > cpu - 0.05 && ticks_s < cpu + 0.05, "cpu_ticks says %.3f s of CPU, the CPU clock %.3f s",
                  ticks_s, cpu);
}
END_TEST

/* common/prog/procstat.c on a child whose name holds ") Z 1 (": the fields
 * come from after the last ')', so the name cannot pose as a zombie of
 * init; then the same child as a real zombie, then reaped. */
START_TEST(test_proc_stat_read)
{
    static const char name[] = "x) Z 1 (y";
    int ready[2], hold[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(hold), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(ready[0]);
        close(hold[1]);
        if (prctl(PR_SET_NAME, name) < 0)
            _exit(1);
        (void)!write(ready[1], "r", 1);
        char c;
        (void)!read(hold[0], &c, 1); /* until the parent closes hold[1] or kills us */
        _exit(0);
    }
    close(ready[1]);
    close(hold[0]);
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    proc_stat st;
    ck_assert_int_eq(proc_stat_read(child, &st), 0);
    ck_assert_str_eq(st.comm, name);
    ck_assert_msg(st.state == 'S' || st.state == 'R', "state %c", st.state);
    ck_assert_int_eq(st.ppid, getpid());
    ck_assert_int_eq(proc_ppid(child), getpid());
    ck_assert(!proc_exited(child));
    ck_assert_msg(!(st.flags & 0x4u), "flags %#lx: PF_EXITING on a living process", st.flags);
    /* a zombie: exited, not yet reaped (WNOWAIT leaves it so) */
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)child, &si, WEXITED | WNOWAIT), 0);
    ck_assert_int_eq(proc_stat_read(child, &st), 0);
    ck_assert_int_eq(st.state, 'Z');
    /* the stray sweep passes over a process whose exit has begun */
    ck_assert_msg(st.flags & 0x4u, "flags %#lx: no PF_EXITING on a zombie", st.flags);
    ck_assert(proc_exited(child));
    /* reaped: no such process */
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    errno = 0;
    ck_assert_int_eq(proc_stat_read(child, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert(proc_exited(child));
    ck_assert_int_eq(proc_ppid(child), -1);
    close(ready[0]);
    close(hold[1]);
}
END_TEST

/* A sanitizer's report in the log, from any program a test ran, is found
 * and named with the test whose output holds it; other text is not. */
START_TEST(test_sanitizer_reports_found)
{
    char path[] = "/tmp/etsmgr-sanscan-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    fputs("etscounterd: notice: serving\n"
          "tests/test_a.c:10:P:a:quiet:0: Passed\n"
          "==123==ERROR: AddressSanitizer: stack-buffer-underflow on address 0x1\n"
          "    #0 0x1 in f\n"
          "tests/test_a.c:20:P:a:loud:0: Passed\n"
          "x.c:3:4: runtime error: signed integer overflow\n"
          "==9==ERROR: LeakSanitizer: detected memory leaks\n"
          "tests/test_b.c:5:F:b:bad:0: Assertion failed\n"
          "a test that says runtime error in words\n"
          "tests/test_b.c:9:P:b:fine:0: Passed\n",
          f);
    ck_assert_int_eq(fclose(f), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&out, &len);
    ck_assert_ptr_nonnull(o);
    int n = tu_sanitizer_reports(path, o);
    fclose(o);
    unlink(path);
    ck_assert_int_eq(n, 3);
    ck_assert_msg(strstr(out, "1 sanitizer report in the output of tests/test_a.c:20:P:a:loud:0") &&
                      strstr(out, "stack-buffer-underflow"),
                  "%s", out);
    ck_assert_msg(strstr(out, "2 sanitizer reports in the output of tests/test_b.c:5:F:b:bad:0"), "%s", out);
    ck_assert_msg(!strstr(out, "quiet") && !strstr(out, "fine"), "%s", out);
    free(out);
    ck_assert_int_eq(tu_sanitizer_reports("/nonexistent/etsmgr-log", stderr), 0);
}
END_TEST

Suite *testutil_suite(void)
{
    Suite *s = suite_create("testutil");
    TCase *tc = tcase_create("testutil");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_tu_env_and_ready);
    tcase_add_test(tc, test_tu_spawn_failures);
    tcase_add_test(tc, test_tu_cleanup_escalates_and_strays);
    tcase_add_test(tc, test_tu_atexit_cleanup);
    tcase_add_test(tc, test_tu_request_conn_server_process);
    tcase_add_test(tc, test_proc_stat_read);
    tcase_add_test(tc, test_proc_stat_cpu_ticks);
    tcase_add_test(tc, test_sanitizer_reports_found);
    suite_add_tcase(s, tc);
    tc = tcase_create("runner");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_runner_captures_and_sweeps);
    suite_add_tcase(s, tc);
    tc = tcase_create("probe");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, probe_fails);
    tcase_add_test(tc, probe_leaks);
    tcase_add_test(tc, probe_passes);
    suite_add_tcase(s, tc);
    return s;
}

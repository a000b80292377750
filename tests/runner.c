/* SPDX-License-Identifier: Apache-2.0 */
/* runner.c: the one test program; it runs every suite listed in suites.h,
 * which the Makefile generates from tests/test_*.c.  Each test runs in a
 * forked child (check's default), so a crash fails one test, not the run;
 * each suite runs in a process of its own (run_suite_apart).
 * CK_RUN_SUITE=NAME / CK_RUN_CASE=NAME select a part (check's own variables).
 *
 * Quiet by default: many tests provoke errors on purpose, and the programs
 * they start say so on stderr.  Everything the tests print goes to a log
 * file (<build>/tests/last-run.log, or $ETSMGR_TEST_LOG), each test's output followed by check's
 * result line for it.  The terminal gets one line per suite and, for a
 * failed test, its name, check's reason and its output.
 * ETSMGR_TEST_OUTPUT=all shows everything as it happens instead (and does
 * not sweep).
 *
 * After each test the runner removes what the test registered and left
 * (tests/lib/testutil: instances with their processes, shm objects and
 * runtime dirs; table names): a failed assertion ends a test with _exit()
 * and a timeout with SIGKILL, where the tests' own atexit cleanup cannot
 * run.  A test that passed and still left something fails the run; so
 * does a sanitizer's report anywhere in the log (tu_sanitizer_reports). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define SUITE(name) Suite *name##_suite(void);
#include "suites.h"
#undef SUITE

typedef struct suite_entry {
    const char *name;
    Suite *(*make)(void);
} suite_entry;

static const suite_entry suites[] = {
#define SUITE(name) {#name, name##_suite},
#include "suites.h"
#undef SUITE
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* $ETSMGR_TEST_LOG, else <build>/tests/last-run.log, beside this program */
static void log_path(char *buf, size_t len)
{
    const char *env = getenv("ETSMGR_TEST_LOG");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(buf, len, "etsmgr-tests-last-run.log");
        return;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(buf, len, "%.*s/last-run.log", (int)(len > 32 ? len - 32 : 0), exe);
}

/* ------------------------------------------------------------ capture
 * check writes its result line for a test right after the test's process
 * has exited, so the output in the log since the previous result line is
 * that test's.  check's log goes to stdout ("-"), which is swapped for a
 * stream that notes where each test's output ends in the log (and writes the
 * line there too).  The forked tests inherit that stream: in them it passes
 * their text through to the log unchanged. */
typedef struct span {
    long from, to;     /* the test's output in the log */
    char name[160];    /* tcase:test from check's line */
    bool passed;
    char *left;        /* what the sweep found after it (malloc'd) or NULL */
} span;

static pid_t runner_pid;
static span *spans;
static size_t nspans, capspans;
static long seg_start;

static void write_all(const char *text)
{
    size_t n = strlen(text), done = 0;
    while (done < n) {
        ssize_t w = write(STDOUT_FILENO, text + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        done += (size_t)w;
    }
}

static ssize_t log_write(void *cookie, const char *buf, size_t n)
{
    (void)cookie;
    long end = lseek(STDOUT_FILENO, 0, SEEK_END);
    /* buf holds n bytes, not a C string: every look stays below lim */
    const char *lim = buf + n;
    const char *c = n > 2 ? memchr(buf, ':', n) : NULL;
    if (getpid() == runner_pid && c && memchr(buf, '\n', n)) {
        /* "file:line:R:..." with R = P, F or E starts a result */
        size_t k = 1;
        while (c + k < lim && c[k] >= '0' && c[k] <= '9')
            k++;
        if (k > 1 && c + k + 2 < lim && c[k] == ':' && c[k + 1] && strchr("PFE", c[k + 1]) && c[k + 2] == ':') {
            if (nspans == capspans) {
                capspans = capspans ? 2 * capspans : 256;
                spans = realloc(spans, capspans * sizeof *spans);
                if (!spans)
                    abort();
            }
            span *sp = &spans[nspans++];
            *sp = (span){.from = seg_start, .to = end, .passed = c[k + 1] == 'P'};
            /* "file:line:R:tcase:test:iteration: message" */
            const char *name = c + k + 3, *stop = name;
            for (int colons = 0; stop < lim && *stop && *stop != '\n' && colons < 2; stop++)
                colons += *stop == ':';
            snprintf(sp->name, sizeof sp->name, "%.*s", (int)(stop - name - 1 > 0 ? stop - name - 1 : 0), name);
            /* the test's process has exited: whatever it made is debris now */
            size_t len = 0;
            FILE *m = open_memstream(&sp->left, &len);
            if (m) {
                int found = tu_sweep_collect(m);
                fclose(m);
                if (!found) {
                    free(sp->left);
                    sp->left = NULL;
                }
            }
        }
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(STDOUT_FILENO, buf + done, n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return done ? (ssize_t)done : -1;
        done += (size_t)w;
    }
    if (getpid() == runner_pid) {
        if (nspans > 0 && spans[nspans - 1].left && spans[nspans - 1].to == end) /* into the log too */
            write_all(spans[nspans - 1].left);
        seg_start = lseek(STDOUT_FILENO, 0, SEEK_END);
    }
    return (ssize_t)n;
}

/* A failed test: its name, check's reason, and its output from the log. */
static void show_failure(TestResult *tr, const span *sp, FILE *tty)
{
    fprintf(tty, "\nFAILED %s (%s:%d): %s\n", sp ? sp->name : tr_tcname(tr), tr_lfile(tr), tr_lno(tr), tr_msg(tr));
    if (!sp) {
        fprintf(tty, "(its output is in the log)\n");
        return;
    }
    if (sp->left) /* after the output below; said first, as it is short */
        fprintf(tty, "%s", sp->left);
    long len = sp->to - sp->from;
    if (len <= 0) {
        fprintf(tty, "(it printed nothing)\n");
        return;
    }
    /* the end is what explains a failure; the log has it all */
    const long max = 12000;
    long from = len > max ? sp->to - max : sp->from;
    char *text = malloc((size_t)(sp->to - from) + 1);
    ssize_t got = text ? pread(STDOUT_FILENO, text, (size_t)(sp->to - from), from) : -1;
    if (got < 0) {
        fprintf(tty, "(its output is in the log)\n");
        free(text);
        return;
    }
    text[got] = '\0';
    fprintf(tty, "--- its output%s:\n%s%s--- end of its output\n", len > max ? " (the end; all of it is in the log)" : "",
            text, got > 0 && text[got - 1] != '\n' ? "\n" : "");
    free(text);
}

/* ------------------------------------------------------------ suites */

typedef struct suite_result {
    int total, failed, leaks;
} suite_result;

/* Runs one suite here: its line and its failures to tty. */
static suite_result run_suite(const suite_entry *se, bool capture, FILE *tty)
{
    suite_result r = {0, 0, 0};
    nspans = 0;
    SRunner *sr = srunner_create(se->make());
    if (capture)
        srunner_set_log(sr, "-");
    double t0 = now_s();
    srunner_run_all(sr, capture ? CK_SILENT : CK_NORMAL);
    int n = srunner_ntests_run(sr), nf = srunner_ntests_failed(sr);
    if (n > 0) /* else not selected by CK_RUN_SUITE / CK_RUN_CASE */
        r.total = n, r.failed = nf;
    if (n > 0 && capture) {
        fprintf(tty, "  %-20s %3d test%s %s %6.1f s\n", se->name, n, n == 1 ? " " : "s",
                nf ? "FAILED" : "ok    ", now_s() - t0);
        TestResult **res = srunner_results(sr);
        for (int k = 0; res && k < n; k++)
            if (tr_rtype(res[k]) != CK_PASS)
                show_failure(res[k], (size_t)n == nspans ? &spans[k] : NULL, tty);
        free(res);
        /* a test that passed but left something: a bug of the test */
        for (size_t k = 0; k < nspans; k++)
            if (spans[k].passed && spans[k].left) {
                fprintf(tty, "\nLEFT BEHIND by %s, which passed:\n%s", spans[k].name, spans[k].left);
                r.leaks++;
            }
    }
    for (size_t k = 0; k < nspans; k++)
        free(spans[k].left);
    srunner_free(sr);
    return r;
}

/* Runs one suite in a process of its own, forked from this one while it
 * is small.  Each test's process is forked from the suite's runner, and
 * a test that forks (the crash points: thousands of forks) copies that
 * process's page tables each time.  In one process for all suites the
 * runner grew with every suite run before it (to 528 MB before
 * table_crash under the sanitizers, 88 MB after the ordered suite alone),
 * and table_crash took 854 s instead of 73 s under the sanitizers on a
 * PVM guest, where a fork of a process with 64 MB touched takes 3 ms.
 * A suite whose runner dies (a sanitizer's report, a leak) counts as a
 * failure. */
static suite_result run_suite_apart(const suite_entry *se, bool capture, const char *sweepp, FILE *tty)
{
    suite_result r = {0, 0, 0};
    int p[2];
    fflush(tty);
    if (pipe2(p, O_CLOEXEC) < 0) {
        fprintf(tty, "etsmgr-tests: pipe2: %s\n", strerror(errno));
        r.failed = 1;
        return r;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(tty, "etsmgr-tests: fork for suite %s: %s\n", se->name, strerror(errno));
        close(p[0]);
        close(p[1]);
        r.failed = 1;
        return r;
    }
    if (pid == 0) {
        close(p[0]);
        runner_pid = getpid();
        /* the suites before collected all they noted: start the record afresh */
        if (capture && tu_sweep_begin(sweepp) < 0)
            _exit(EXIT_FAILURE);
        seg_start = lseek(STDOUT_FILENO, 0, SEEK_END);
        r = run_suite(se, capture, tty);
        fflush(tty);
        if (write(p[1], &r, sizeof r) != (ssize_t)sizeof r)
            _exit(EXIT_FAILURE);
        exit(EXIT_SUCCESS); /* exit, not _exit: LeakSanitizer checks this runner too */
    }
    close(p[1]);
    suite_result got;
    ssize_t n;
    while ((n = read(p[0], &got, sizeof got)) < 0 && errno == EINTR)
        ;
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof got)
        r = got;
    if (n != (ssize_t)sizeof got || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(tty, "etsmgr-tests: the runner of suite %s %s %d%s\n", se->name,
                WIFSIGNALED(st) ? "died of signal" : "exited with status",
                WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
                n == (ssize_t)sizeof got ? "" : " before it reported its results");
        r.failed++;
    }
    return r;
}

int main(void)
{
    const char *mode = getenv("ETSMGR_TEST_OUTPUT");
    bool capture = !(mode && strcmp(mode, "all") == 0);
    char logp[PATH_MAX];
    log_path(logp, sizeof logp);
    char sweepp[PATH_MAX + 16];
    snprintf(sweepp, sizeof sweepp, "%s.created", logp);
    if (capture && tu_sweep_begin(sweepp) < 0)
        return EXIT_FAILURE;

    /* the terminal stays on a copy of stdout; fds 1 and 2 go to the log */
    FILE *tty = stdout;
    if (capture) {
        /* close-on-exec: the programs the tests start must not inherit it */
        int ttyfd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        int fd = open(logp, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
        if (ttyfd < 0 || fd < 0 || !(tty = fdopen(ttyfd, "w"))) {
            fprintf(stderr, "etsmgr-tests: cannot write the log %s: %s\n", logp, strerror(errno));
            return EXIT_FAILURE;
        }
        fflush(stdout);
        if (dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0) {
            fprintf(stderr, "etsmgr-tests: dup2: %s\n", strerror(errno));
            return EXIT_FAILURE;
        }
        close(fd);
        runner_pid = getpid();
        FILE *logf = fopencookie(NULL, "w", (cookie_io_functions_t){.write = log_write});
        if (!logf) {
            fprintf(stderr, "etsmgr-tests: fopencookie: %s\n", strerror(errno));
            return EXIT_FAILURE;
        }
        /* each of check's lines reaches the log before the next test runs,
         * and the forked tests inherit no unwritten text */
        setvbuf(logf, NULL, _IONBF, 0);
        setvbuf(tty, NULL, _IOLBF, 0);
        stdout = logf;
        fprintf(tty, "etsmgr-tests: the tests' output goes to %s; shown here for a failed test\n", logp);
    }

    int total = 0, failed = 0, leaks = 0;
    double start = now_s();
    /* CK_FORK=no (check's own: a debugger's run) keeps every suite in this process */
    const char *ckfork = getenv("CK_FORK");
    bool own_process = !(ckfork && strcmp(ckfork, "no") == 0);
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        /* suite names are their files' names (test_NAME.c) */
        const char *only = getenv("CK_RUN_SUITE");
        if (only && *only && strcmp(only, suites[i].name) != 0)
            continue;
        suite_result r = own_process ? run_suite_apart(&suites[i], capture, sweepp, tty)
                                     : run_suite(&suites[i], capture, tty);
        total += r.total;
        failed += r.failed;
        leaks += r.leaks;
    }
    int pct = total ? (total - failed) * 100 / total : 0;
    fprintf(tty, "%d%%: Checks: %d, Failures: %d (%.0f s)%s\n", pct, total, failed, now_s() - start,
            leaks ? "; and passing tests left things behind (above)" : "");
    /* a program a test started may have reported and died unnoticed */
    int reports = capture ? tu_sanitizer_reports(logp, tty) : 0;
    if ((failed || leaks || reports) && capture)
        fprintf(tty, "etsmgr-tests: every test's output is in %s\n", logp);
    return failed == 0 && leaks == 0 && reports == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_examples.c: what a new user does first, done literally.
 *
 * The build commands are taken from README.md and etsmgr(3) themselves (the
 * lines that start with "cc" and use pkg-config), so the documents cannot
 * drift from what works: each is run in the source tree as written, with
 * only the output file moved into the test's dir (and build/ pointed at the
 * sanitizer build when the runner is one).  The programs they give must run
 * with no LD_LIBRARY_PATH; the --static one must not need libetsmgr.so.
 *
 * The word-count example is then killed with SIGKILL in the middle of a
 * stream; run again it finishes the file, and every count is exact.  And
 * a second make has nothing to build. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etsmgr.h"
#include "runcap.h"
#include "testutil.h"

#define TX_SPAWN_MS 10000
#define TX_CC_MS 120000

static tu_env E;

static void tx_setup(void)
{
    tu_env_init(&E);
}

static void tx_teardown(void)
{
    tu_env_cleanup(&E);
}

/* The build dir relative to the source tree ("build" or "build/sanitize"),
 * from ETSMGR_LIBDIR = <srcdir>/<build>/lib. */
static const char *tx_build_rel(void)
{
    static char rel[PATH_MAX];
    const char *lib = getenv("ETSMGR_LIBDIR"), *src = rc_srcdir();
    ck_assert_msg(lib && strncmp(lib, src, strlen(src)) == 0 && lib[strlen(src)] == '/',
                  "ETSMGR_LIBDIR (%s) is not under ETSMGR_SRCDIR (%s): run this through make check", lib ? lib : "unset",
                  src);
    snprintf(rel, sizeof rel, "%s", lib + strlen(src) + 1);
    char *slash = strrchr(rel, '/');
    ck_assert_ptr_nonnull(slash);
    *slash = '\0';
    return rel;
}

/* Undoes the troff escapes a man page's commands use: \- \e \(dq. */
static void tx_unescape(const char *in, char *out)
{
    for (; *in; in++) {
        if (in[0] == '\\' && (in[1] == '-' || in[1] == 'e')) {
            *out++ = in[1] == 'e' ? '\\' : '-';
            in++;
        } else if (strncmp(in, "\\(dq", 4) == 0) {
            *out++ = '"';
            in += 3;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
}

/* The documented commands of a file: each line that starts with "cc " (and
 * its continuation lines after a trailing backslash), using pkg-config; one
 * per line, malloc'd. */
static char *tx_doc_commands(const char *relpath)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", rc_srcdir(), relpath);
    char *text = rc_slurp(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    char *cmds = calloc(1, strlen(text) + 2), *cmd = calloc(1, strlen(text) + 2);
    ck_assert_ptr_nonnull(cmds);
    ck_assert_ptr_nonnull(cmd);
    bool in_cmd = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ')
            line++;
        if (!in_cmd && strncmp(line, "cc ", 3) != 0)
            continue;
        if (!in_cmd)
            cmd[0] = '\0';
        tx_unescape(line, cmd + strlen(cmd));
        size_t len = strlen(cmd);
        in_cmd = len > 0 && cmd[len - 1] == '\\';
        if (in_cmd) {
            cmd[len - 1] = '\0';
            continue;
        }
        if (strstr(cmd, "pkg-config"))
            strcat(strcat(cmds, cmd), "\n");
    }
    free(cmd);
    free(text);
    return cmds;
}

/* Runs one documented command: in the source tree, "-o wordcount" into the
 * test dir, "build/" as the runner's build.  Returns the program's path. */
static void tx_build(const char *cmd, const char *prog)
{
    const char *b = tx_build_rel();
    char *out = NULL;
#if defined(__SANITIZE_ADDRESS__)
    const char *san = "-fsanitize=address,undefined ";
#else
    const char *san = "";
#endif
    /* sed, not C: the substitutions must be visible in the failure message */
    int st = rc_sh(&out, TX_CC_MS,
                   "cd '%s' && c=$(printf '%%s\\n' '%s' | sed -e 's|^cc |cc %s|' -e 's| -o wordcount | -o %s |' "
                   "-e 's|build/|%s/|g') && echo \"$c\" && env -u LD_LIBRARY_PATH sh -c \"$c\" 2>&1",
                   rc_srcdir(), cmd, san, prog, b);
    ck_assert_msg(rc_ok(st), "the documented command failed (status %d): %s\n%s", st, cmd, out ? out : "");
    free(out);
}

static char *tx_needed(const char *prog)
{
    char *out = NULL;
    int st = rc_sh(&out, 10000, "readelf -d '%s' | grep -E 'NEEDED|RUNPATH|RPATH'", prog);
    ck_assert_msg(rc_ok(st), "readelf -d %s failed: %s", prog, out ? out : "");
    return out;
}

/* An input with known counts: n words drawn from a small vocabulary. */
static const char *tx_vocab[] = {"the", "table", "survives", "kill", "nine", "Shared", "MEMORY", "heir",
                                 "owner", "x", "etsmgr", "a1b2", "counts", "exactly", "once"};
#define TX_NVOCAB (sizeof tx_vocab / sizeof tx_vocab[0])

static long tx_write_input(const char *path, long nwords, long counts[TX_NVOCAB])
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
    unsigned long long x = 88172645463325252ULL;
    memset(counts, 0, sizeof(long) * TX_NVOCAB);
    for (long i = 0; i < nwords; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t w = (size_t)(x % TX_NVOCAB);
        counts[w]++;
        fputs(tx_vocab[w], f);
        fputs(x % 11 == 0 ? ",\n" : (x % 5 == 0 ? " -- " : " "), f);
    }
    long size = ftell(f);
    ck_assert_int_eq(fclose(f), 0);
    return size;
}

static void tx_lower(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
    out[i] = '\0';
}

/* the offset the table says was counted so far (-1: no table or key yet) */
typedef struct tx_progress {
    char shm[128];
    char key[PATH_MAX + 2];
    long offset;
} tx_progress;

static bool tx_started(void *arg)
{
    tx_progress *p = arg;
    int fd = shm_open(p->shm, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return false;
    etsmgr_table *t;
    if (etsmgr_table_attach_fd(fd, &t) != ETSMGR_OK) {
        close(fd);
        return false;
    }
    etsmgr_value v;
    int rc = etsmgr_table_lookup(t, p->key, strlen(p->key), &v, NULL, 0);
    etsmgr_table_close(t);
    p->offset = rc == ETSMGR_OK ? (long)v.i : -1;
    return p->offset > 0;
}

static void tx_check_counts(const char *out, const long counts[TX_NVOCAB])
{
    int lines = 0;
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (*l == '\n')
            continue;
        lines++;
        char w[64];
        long n;
        ck_assert_msg(sscanf(l, "%63s %ld", w, &n) == 2, "not a \"word count\" line: %.60s", l);
        size_t i = 0;
        char lw[64];
        for (; i < TX_NVOCAB; i++) {
            tx_lower(tx_vocab[i], lw, sizeof lw);
            if (strcmp(lw, w) == 0)
                break;
        }
        ck_assert_msg(i < TX_NVOCAB, "wordcount counted a word that is not in the input: %s", w);
        ck_assert_msg(n == counts[i], "%s counted %ld times, the input has it %ld times", w, n, counts[i]);
    }
    ck_assert_int_eq(lines, (int)TX_NVOCAB);
}

START_TEST(test_documented_build_runs_as_is)
{
    char *readme = tx_doc_commands("README.md"), *man = tx_doc_commands("docs/man/etsmgr.3");
    ck_assert_msg(strstr(readme, "pkg-config --cflags --libs etsmgr") &&
                      strstr(readme, "pkg-config --static --cflags --libs etsmgr"),
                  "README shows no shared and --static build command:\n%s", readme);
    ck_assert_msg(strcmp(readme, man) == 0, "README and etsmgr(3) give different commands:\n%s---\n%s", readme, man);
    char *tetsmgrd[] = {"etsmgrd", "--log-level", "warning", NULL};
    ck_assert_msg(tu_spawn_ready(&E, tetsmgrd, TX_SPAWN_MS) > 0, "etsmgrd did not become ready");
    char input[PATH_MAX];
    long counts[TX_NVOCAB];
    snprintf(input, sizeof input, "%s/words.txt", E.dir);
    tx_write_input(input, 300, counts);

    int n = 0;
    for (char *cmd = strtok(readme, "\n"); cmd; cmd = strtok(NULL, "\n"), n++) {
        char prog[PATH_MAX];
        snprintf(prog, sizeof prog, "%s/wordcount%d", E.dir, n);
        tx_build(cmd, prog);
        char *needed = tx_needed(prog);
        bool statik = strstr(cmd, "--static") != NULL;
        ck_assert_msg(statik == (strstr(needed, "libetsmgr.so") == NULL),
                      "%s links libetsmgr %s:\n%s", cmd, statik ? "shared, not static" : "statically", needed);
        free(needed);
        char *out = NULL;
        int st = rc_sh(&out, 30000, "env -u LD_LIBRARY_PATH '%s' %s 2>&1", prog, n == 0 ? input : "");
        ck_assert_msg(rc_ok(st), "%s failed without LD_LIBRARY_PATH (status %d):\n%s", prog, st, out ? out : "");
        tx_check_counts(out, counts);
        free(out);
    }
    ck_assert_int_eq(n, 2);
    free(readme);
    free(man);
}
END_TEST

START_TEST(test_wordcount_exact_after_kill9)
{
    char *tetsmgrd[] = {"etsmgrd", "--log-level", "warning", NULL};
    ck_assert_msg(tu_spawn_ready(&E, tetsmgrd, TX_SPAWN_MS) > 0, "etsmgrd did not become ready");
    char input[PATH_MAX], prog[PATH_MAX], cmd[3 * PATH_MAX];
    long counts[TX_NVOCAB];
    snprintf(input, sizeof input, "%s/words.txt", E.dir);
    long size = tx_write_input(input, 400000, counts);
    snprintf(prog, sizeof prog, "%s/../examples/wordcount", getenv("ETSMGR_LIBDIR"));
    ck_assert_msg(access(prog, X_OK) == 0, "make builds no %s", prog);

    /* at the lowest priority, so that on a busy machine this test, which
     * waits to see it start and then kills it, runs before it can finish
     * the whole file (it once did, and was then "not killed mid-stream") */
    snprintf(cmd, sizeof cmd, "exec nice -n 19 '%s' '%s' >/dev/null", prog, input);
    char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid = tu_spawn(&E, sh);
    ck_assert_int_gt(pid, 0);
    tx_progress p = {.offset = -1};
    snprintf(p.shm, sizeof p.shm, "/%s:%lu:wordcount", E.instance, (unsigned long)geteuid());
    snprintf(p.key, sizeof p.key, "@%s", input);
    ck_assert_msg(tu_eventually(tx_started, &p, 30000), "wordcount counted nothing within 30 s");
    int st = tu_kill9(pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "wordcount was not killed mid-stream (status %#x)", st);
    tx_started(&p);
    ck_assert_msg(p.offset > 0 && p.offset < size, "killed at offset %ld of %ld: not mid-stream", p.offset, size);

    char *out = NULL;
    st = rc_sh(&out, 120000, "'%s' '%s' 2>&1", prog, input);
    ck_assert_msg(rc_ok(st), "wordcount after the kill failed (status %d):\n%.2000s", st, out ? out : "");
    tx_check_counts(out, counts);
    free(out);
    /* a finished file adds nothing */
    st = rc_sh(&out, 60000, "'%s' '%s' 2>&1", prog, input);
    ck_assert_msg(rc_ok(st), "wordcount on a finished file failed (status %d):\n%.2000s", st, out ? out : "");
    tx_check_counts(out, counts);
    free(out);
}
END_TEST

/* make check, run again, compiles nothing: this runner comes from an
 * up-to-date build, so make for the same build has nothing to compile, link
 * or delete (chained objects are kept, not removed as intermediates). */
START_TEST(test_second_make_compiles_nothing)
{
    char *out = NULL;
    int st = rc_make(&out, 600000, "all build-tests");
    ck_assert_msg(rc_ok(st), "make all build-tests failed:\n%s", out ? out : "");
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        ck_assert_msg(strncmp(l, "cc ", 3) != 0 && strncmp(l, "ar ", 3) != 0 && strncmp(l, "rm ", 3) != 0,
                      "an up-to-date build did work again:\n%s", out);
    free(out);
}
END_TEST

Suite *examples_suite(void)
{
    Suite *s = suite_create("examples");
    TCase *tc = tcase_create("examples");
    tcase_add_checked_fixture(tc, tx_setup, tx_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_documented_build_runs_as_is);
    tcase_add_test(tc, test_wordcount_exact_after_kill9);
    tcase_add_test(tc, test_second_make_compiles_nothing);
    suite_add_tcase(s, tc);
    return s;
}

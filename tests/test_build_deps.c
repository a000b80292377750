/* SPDX-License-Identifier: Apache-2.0 */
/* test_build_deps.c: plain `make` and `make install` never run apt-get or
 * sudo; on a missing dependency they stop with one line naming the Debian
 * packages and `make deps`.  `make check` (and run, bench) still install
 * what they lack by themselves, as the README promises.
 *
 * A missing dependency is made by pointing pkg-config at an empty directory
 * (PKG_CONFIG_LIBDIR), and apt-get and sudo are replaced, through PATH, by
 * scripts that write their arguments into a log and fail: so nothing is
 * ever installed, and the log tells whether make tried to.  `make -n` keeps
 * the build goals from running anything: the dependency check happens while
 * the Makefile is read, before -n matters (`make deps` runs for real: its
 * only action is the fake apt-get). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcap.h"

#define TB_MAKE_MS 120000

typedef struct tb_fake {
    char dir[64];
    char log[96];
} tb_fake;

static void tb_fake_init(tb_fake *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/etsmgr-deps.XXXXXX");
    ck_assert_msg(mkdtemp(f->dir) != NULL, "mkdtemp: %s", strerror(errno));
    snprintf(f->log, sizeof f->log, "%s/called", f->dir);
    const char *tools[] = {"apt-get", "sudo", NULL};
    for (const char **t = tools; *t; t++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", f->dir, *t);
        FILE *fp = fopen(path, "w");
        ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
        fprintf(fp, "#!/bin/sh\necho \"%s $*\" >> '%s'\nexit 1\n", *t, f->log);
        ck_assert_int_eq(fclose(fp), 0);
        ck_assert_int_eq(chmod(path, 0755), 0);
    }
}

static void tb_fake_free(tb_fake *f)
{
    rc_sh(NULL, 10000, "rm -rf '%s'", f->dir);
}

/* make GOAL with nothing found by pkg-config and the fake tools first in
 * PATH; returns the status, *out the output. */
static int tb_make(tb_fake *f, char **out, const char *goal)
{
    return rc_sh(out, TB_MAKE_MS,
                 "cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL PATH='%s':\"$PATH\" "
                 "PKG_CONFIG_LIBDIR='%s' make --no-print-directory %s 2>&1",
                 rc_srcdir(), f->dir, f->dir, goal);
}

static int tb_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

START_TEST(test_plain_make_never_installs)
{
    const char *goals[] = {"-n all", "-n install DESTDIR=/nonexistent-etsmgr-destdir", NULL};
    for (const char **g = goals; *g; g++) {
        tb_fake f;
        tb_fake_init(&f);
        char *out = NULL;
        int st = tb_make(&f, &out, *g);
        ck_assert_msg(!rc_ok(st), "make %s succeeded with libuv and libcjson missing:\n%s", *g, out);
        ck_assert_msg(strstr(out, "libuv1-dev") && strstr(out, "libcjson-dev"),
                      "make %s did not name the missing Debian packages:\n%s", *g, out);
        ck_assert_msg(strstr(out, "make deps"), "make %s did not point at `make deps`:\n%s", *g, out);
        ck_assert_msg(tb_lines(out) == 1, "make %s said more than one line:\n%s", *g, out);
        ck_assert_msg(access(f.log, F_OK) != 0, "make %s ran apt-get or sudo:\n%s", *g, rc_slurp(f.log));
        free(out);
        tb_fake_free(&f);
    }
}
END_TEST

/* The other side: make check (and make deps) do reach for apt-get. */
START_TEST(test_check_and_deps_install)
{
    const char *goals[] = {"-n check", "deps", NULL};
    for (const char **g = goals; *g; g++) {
        tb_fake f;
        tb_fake_init(&f);
        char *out = NULL;
        int st = tb_make(&f, &out, *g);
        char *log = rc_slurp(f.log);
        ck_assert_msg(log && strstr(log, "apt-get"), "make %s did not try apt-get (status %d):\n%s", *g, st, out);
        ck_assert_msg(!rc_ok(st), "make %s succeeded although apt-get failed:\n%s", *g, out);
        free(log);
        free(out);
        tb_fake_free(&f);
    }
}
END_TEST

Suite *build_deps_suite(void)
{
    Suite *s = suite_create("build_deps");
    TCase *tc = tcase_create("deps");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_plain_make_never_installs);
    tcase_add_test(tc, test_check_and_deps_install);
    suite_add_tcase(s, tc);
    return s;
}

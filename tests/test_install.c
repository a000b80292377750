/* SPDX-License-Identifier: Apache-2.0 */
/* test_install.c: `make install DESTDIR=...` installs exactly the files a
 * user and a packager expect, the installed tree works on its own, and
 * `make uninstall` takes every one of them away again.
 *
 * The tests call the real make in the source tree (ETSMGR_SRCDIR), for the
 * build the runner itself comes from (build/ or build/sanitize/), with the
 * parent make's MAKEFLAGS removed so a `make check` around them does not
 * leak its jobserver into them.  "Works on its own" means: the installed
 * etssup, started with the installed config, runs the installed daemons
 * (etssup finds its children next to its own binary: /proc/PID/exe must
 * point into the DESTDIR, not at build/bin), and a program compiled with
 * nothing but `pkg-config --cflags --libs etsmgr` against the DESTDIR talks
 * to them through the installed shared library. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etsmgr.h"
#include "runcap.h"
#include "svcrun.h"
#include "testutil.h"

#define TI_PREFIX "/usr/local"
#define TI_MAKE_MS 600000 /* make install builds first when something is stale */
#define TI_DIRLEN 256      /* temp dirs: short, so paths under them always fit */

static const char *ti_required_progs[] = {"etsmgrd", "etscounterd", "etscounter", "etssup", "etsmgrctl", NULL};
static const char *ti_optional_progs[] = {"etsmgr-crashlab", NULL};

static const char *ti_srcdir(void)
{
    return rc_srcdir();
}

/* Whether the runner is the sanitizer build: then a program linked against
 * its (instrumented) library needs the sanitizer runtime too. */
static bool ti_sanitized(void)
{
    const char *bin = getenv("ETSMGR_BINDIR");
    return bin && strstr(bin, "/sanitize/") != NULL;
}

static int ti_make(char **out, const char *args)
{
    return rc_make(out, TI_MAKE_MS, args);
}

static void ti_mkdtemp(char *buf, size_t len, const char *what)
{
    snprintf(buf, len, "/tmp/etsmgr-%s.XXXXXX", what);
    ck_assert_msg(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf, strerror(errno));
}

static void ti_rmrf(const char *dir)
{
    rc_sh(NULL, 60000, "rm -rf '%s'", dir);
}

/* ------------------------------------------------------------ file lists */

typedef struct ti_list {
    char **items;
    size_t n, cap;
} ti_list;

static void ti_list_add(ti_list *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 32;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        ck_assert_ptr_nonnull(l->items);
    }
    l->items[l->n++] = strdup(s);
}

static bool ti_list_has(const ti_list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->items[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static void ti_list_free(ti_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static ti_list *ti_walk_list;
static size_t ti_walk_root_len;

static int ti_walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type != FTW_D && type != FTW_DP) {
        ti_list_add(ti_walk_list, path + ti_walk_root_len);
    }
    return 0;
}

/* Every non-directory under root, as "/usr/local/..." paths. */
static void ti_walk(const char *root, ti_list *out)
{
    ti_walk_list = out;
    ti_walk_root_len = strlen(root);
    ck_assert_int_eq(nftw(root, ti_walk_cb, 16, FTW_PHYS), 0);
}

/* What install must write, for the programs this build has. */
static void ti_expected(ti_list *l)
{
    char p[PATH_MAX];
    for (const char **n = ti_required_progs; *n; n++) {
        snprintf(p, sizeof p, TI_PREFIX "/bin/%s", *n);
        ti_list_add(l, p);
    }
    for (const char **n = ti_optional_progs; *n; n++) {
        if (access(tu_bin(*n, false), X_OK) == 0) {
            snprintf(p, sizeof p, TI_PREFIX "/bin/%s", *n);
            ti_list_add(l, p);
        }
    }
    ti_list_add(l, TI_PREFIX "/lib/libetsmgr.a");
    char so[64];
    snprintf(so, sizeof so, TI_PREFIX "/lib/libetsmgr.so.%s", etsmgr_version());
    ti_list_add(l, so);
    ti_list_add(l, TI_PREFIX "/lib/libetsmgr.so.0");
    ti_list_add(l, TI_PREFIX "/lib/libetsmgr.so");
    ti_list_add(l, TI_PREFIX "/lib/pkgconfig/etsmgr.pc");
    ti_list_add(l, TI_PREFIX "/include/etsmgr.h");
    ti_list_add(l, TI_PREFIX "/etc/etsmgr/etssup.json");
    ti_list_add(l, TI_PREFIX "/lib/systemd/system/etsmgr.service");
    ti_list_add(l, TI_PREFIX "/lib/systemd/system/etsmgr.socket");
    ti_list_add(l, TI_PREFIX "/lib/systemd/system/etsmgr@.service");
    ti_list_add(l, TI_PREFIX "/lib/systemd/system/etsmgr@.socket");
    ti_list_add(l, TI_PREFIX "/lib/sysusers.d/etsmgr.conf");
    char *pages = NULL;
    int st = rc_sh(&pages, 10000, "cd '%s/docs/man' && ls *.[0-9]", ti_srcdir());
    ck_assert_msg(rc_ok(st), "no man pages in docs/man: %s", pages ? pages : "");
    for (char *tok = strtok(pages, "\n"); tok; tok = strtok(NULL, "\n")) {
        snprintf(p, sizeof p, TI_PREFIX "/share/man/man%c/%s", tok[strlen(tok) - 1], tok);
        ti_list_add(l, p);
    }
    free(pages);
}

static void ti_require_programs(void)
{
    for (const char **n = ti_required_progs; *n; n++) {
        ck_assert_msg(access(tu_bin(*n, false), X_OK) == 0, "%s is not built: make install cannot install it",
                      tu_bin(*n, false));
    }
}

static void ti_install(const char *destdir)
{
    char *out = NULL, args[PATH_MAX + 64];
    snprintf(args, sizeof args, "install DESTDIR='%s' PREFIX=" TI_PREFIX, destdir);
    int st = ti_make(&out, args);
    ck_assert_msg(rc_ok(st), "make %s failed (status %d):\n%s", args, st, out ? out : "");
    free(out);
}

static void ti_uninstall_leaves_nothing(const char *destdir)
{
    char *out = NULL, args[PATH_MAX + 64];
    snprintf(args, sizeof args, "uninstall DESTDIR='%s' PREFIX=" TI_PREFIX, destdir);
    int st = ti_make(&out, args);
    ck_assert_msg(rc_ok(st), "make %s failed (status %d):\n%s", args, st, out ? out : "");
    free(out);
    ti_list left = {0};
    ti_walk(destdir, &left);
    char msg[4096] = "";
    for (size_t i = 0; i < left.n; i++) {
        strncat(msg, left.items[i], sizeof msg - strlen(msg) - 2);
        strncat(msg, "\n", sizeof msg - strlen(msg) - 1);
    }
    ck_assert_msg(left.n == 0, "make uninstall left %zu file(s):\n%s", left.n, msg);
    ti_list_free(&left);
}

/* ------------------------------------------------------------ tests */

START_TEST(test_install_file_list_and_uninstall)
{
    ti_require_programs();
    char dest[TI_DIRLEN];
    ti_mkdtemp(dest, sizeof dest, "destdir");
    ti_install(dest);

    ti_list want = {0}, got = {0};
    ti_expected(&want);
    ti_walk(dest, &got);
    char msg[8192] = "";
    int bad = 0;
    for (size_t i = 0; i < want.n; i++) {
        if (!ti_list_has(&got, want.items[i])) {
            snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "missing:    %s\n", want.items[i]);
            bad++;
        }
    }
    for (size_t i = 0; i < got.n; i++) {
        if (!ti_list_has(&want, got.items[i])) {
            snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "unexpected: %s\n", got.items[i]);
            bad++;
        }
    }
    ck_assert_msg(bad == 0, "installed files differ from the expected list:\n%s", msg);

    char p[PATH_MAX], link[PATH_MAX];
    struct stat st;
    /* programs executable, data not */
    snprintf(p, sizeof p, "%s" TI_PREFIX "/bin/etssup", dest);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0755, "etssup installed with mode %o", st.st_mode & 0777);
    snprintf(p, sizeof p, "%s" TI_PREFIX "/include/etsmgr.h", dest);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0644, "etsmgr.h installed with mode %o", st.st_mode & 0777);
    /* the development symlink points at the soname, which is the soname */
    snprintf(p, sizeof p, "%s" TI_PREFIX "/lib/libetsmgr.so", dest);
    ssize_t ll = readlink(p, link, sizeof link - 1);
    ck_assert_msg(ll > 0, "%s is not a symlink", p);
    link[ll] = '\0';
    ck_assert_str_eq(link, "libetsmgr.so.0");
    /* the soname links to the full version; a library is data: 0644 */
    snprintf(p, sizeof p, "%s" TI_PREFIX "/lib/libetsmgr.so.0", dest);
    ll = readlink(p, link, sizeof link - 1);
    ck_assert_msg(ll > 0, "%s is not a symlink", p);
    link[ll] = '\0';
    char want_so[64];
    snprintf(want_so, sizeof want_so, "libetsmgr.so.%s", etsmgr_version());
    ck_assert_str_eq(link, want_so);
    snprintf(p, sizeof p, "%s" TI_PREFIX "/lib/%s", dest, want_so);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0644, "%s installed with mode %o", want_so, st.st_mode & 0777);
    char *out = NULL;
    int rs = rc_sh(&out, 10000, "readelf -d '%s" TI_PREFIX "/lib/libetsmgr.so.0' | grep SONAME", dest);
    ck_assert_msg(rc_ok(rs) && strstr(out, "[libetsmgr.so.0]"), "installed library has no soname libetsmgr.so.0:\n%s",
                  out ? out : "");
    free(out);
    rs = rc_sh(&out, 10000, "ar t '%s" TI_PREFIX "/lib/libetsmgr.a'", dest);
    ck_assert_msg(rc_ok(rs) && strstr(out, ".o"), "libetsmgr.a is not an archive of objects:\n%s", out ? out : "");
    free(out);
    /* paths written into the installed files are the install paths */
    snprintf(p, sizeof p, "%s" TI_PREFIX "/lib/pkgconfig/etsmgr.pc", dest);
    char *pc = rc_slurp(p);
    ck_assert_ptr_nonnull(pc);
    ck_assert_msg(strstr(pc, "prefix=" TI_PREFIX "\n") && !strstr(pc, dest) && !strstr(pc, "/build"),
                  "etsmgr.pc does not name the install prefix:\n%s", pc);
    free(pc);
    snprintf(p, sizeof p, "%s" TI_PREFIX "/lib/systemd/system/etsmgr.service", dest);
    char *unit = rc_slurp(p);
    ck_assert_ptr_nonnull(unit);
    ck_assert_msg(strstr(unit, "\nExecStart=" TI_PREFIX "/bin/etssup --config " TI_PREFIX "/etc/etsmgr/etssup.json "),
                  "the installed unit's ExecStart does not run the installed etssup with the installed config:\n%s",
                  unit);
    ck_assert_msg(!strstr(unit, "@BINDIR@") && !strstr(unit, "@SYSCONFDIR@"), "unsubstituted template variable");
    free(unit);

    /* installing twice is harmless; then uninstall removes every file */
    ti_install(dest);
    ti_uninstall_leaves_nothing(dest);
    ti_list_free(&want);
    ti_list_free(&got);
    ti_rmrf(dest);
}
END_TEST

START_TEST(test_installed_tree_runs)
{
    ti_require_programs();
    tu_env e;
    tu_env_init(&e);
    char dest[TI_DIRLEN];
    ti_mkdtemp(dest, sizeof dest, "destdir");
    ti_install(dest);

    /* the installed supervisor with the installed config */
    char sup[PATH_MAX], conf[PATH_MAX], notify[PATH_MAX], bindir[TI_DIRLEN + 32];
    snprintf(bindir, sizeof bindir, "%s" TI_PREFIX "/bin", dest);
    snprintf(sup, sizeof sup, "%s/etssup", bindir);
    snprintf(conf, sizeof conf, "%s" TI_PREFIX "/etc/etsmgr/etssup.json", dest);
    snprintf(notify, sizeof notify, "%s/test-notify", e.dir);
    char *argv[] = {sup, "--config", conf, NULL};
    sv_proc p;
    char err[512];
    char logpath[PATH_MAX];
    snprintf(logpath, sizeof logpath, "%s/etssup.log", e.dir);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_msg(logfd >= 0, "open %s: %s", logpath, strerror(errno));
    ck_assert_msg(sv_start(&p, argv, NULL, notify, logfd, err, sizeof err) == 0, "%s", err);
    close(logfd);
    char nlog[4096] = "";
    int ready = sv_wait_ready(&p, 30000, nlog, sizeof nlog);
    if (ready <= 0) {
        char *log = rc_slurp(logpath);
        ck_abort_msg("installed etssup did not send READY=1 within 30 s (%s); notify log:\n%s\nits log:\n%s",
                     ready == 0 ? "it exited" : "timeout", nlog, log ? log : "");
    }

    /* its children are the installed daemons, not the build tree's */
    pid_t kids[8];
    int nk = sv_children(p.pid, kids, 8);
    ck_assert_msg(nk == 3, "installed etssup has %d children, expected etsmgrd, etscounterd and its standby", nk);
    for (int i = 0; i < nk; i++) {
        char exe_link[64], exe[PATH_MAX], comm[64], want[PATH_MAX];
        snprintf(exe_link, sizeof exe_link, "/proc/%d/exe", (int)kids[i]);
        ssize_t n = readlink(exe_link, exe, sizeof exe - 1);
        ck_assert_msg(n > 0, "readlink %s: %s", exe_link, strerror(errno));
        exe[n] = '\0';
        sv_comm(kids[i], comm, sizeof comm);
        snprintf(want, sizeof want, "%s/%s", bindir, comm);
        ck_assert_msg(strcmp(exe, want) == 0, "child %s (pid %d) runs %s, not the installed %s", comm, (int)kids[i],
                      exe, want);
    }

    /* a program built with pkg-config alone, against the installed library */
    char *out = NULL;
    char src[PATH_MAX], prog[PATH_MAX];
    snprintf(src, sizeof src, "%s/pc-user.c", e.dir);
    snprintf(prog, sizeof prog, "%s/pc-user", e.dir);
    FILE *f = fopen(src, "w");
    ck_assert_msg(f != NULL, "fopen %s: %s", src, strerror(errno));
    fputs("#include <etsmgr.h>\n"
          "#include <stdio.h>\n"
          "int main(void)\n"
          "{\n"
          "    char msg[256] = \"\";\n"
          "    etsmgr_client *c;\n"
          "    int rc = etsmgr_wait(NULL, NULL, 20, 10000, &c, msg, sizeof msg);\n"
          "    if (rc != ETSMGR_OK) { fprintf(stderr, \"wait: %s: %s\\n\", etsmgr_strerror(rc), msg); return 1; }\n"
          "    etsmgr_table *t;\n"
          "    etsmgr_grant g;\n"
          "    rc = etsmgr_new_table(c, \"pkgconfig_user\", NULL, \"pc\", &t, &g);\n"
          "    if (rc != ETSMGR_OK) { fprintf(stderr, \"new_table: %s\\n\", etsmgr_strerror(rc)); return 1; }\n"
          "    long long v = 0;\n"
          "    int64_t nv;\n"
          "    rc = etsmgr_table_update_counter(t, \"k\", 1, 41, 1, &nv);\n"
          "    v = nv;\n"
          "    if (rc != ETSMGR_OK) { fprintf(stderr, \"update_counter: %s\\n\", etsmgr_strerror(rc)); return 1; }\n"
          "    printf(\"value %lld created %d\\n\", v, g.created);\n"
          "    rc = etsmgr_del_table(c, t, 1);\n"
          "    if (rc != ETSMGR_OK) { fprintf(stderr, \"del_table: %s\\n\", etsmgr_strerror(rc)); return 1; }\n"
          "    etsmgr_client_close(c);\n"
          "    return 0;\n"
          "}\n",
          f);
    ck_assert_int_eq(fclose(f), 0);
    int san = ti_sanitized();
    int st = rc_sh(&out, 120000,
                   "export PKG_CONFIG_PATH='%s" TI_PREFIX "/lib/pkgconfig' PKG_CONFIG_SYSROOT_DIR='%s'; "
                   "cc -std=c11 -Wall -Werror %s -o '%s' '%s' $(pkg-config --cflags --libs etsmgr) 2>&1",
                   dest, dest, san ? "-fsanitize=address,undefined" : "", prog, src);
    ck_assert_msg(rc_ok(st), "building against the installed library with pkg-config failed:\n%s", out ? out : "");
    free(out);
    st = rc_sh(&out, 10000, "readelf -d '%s' | grep NEEDED", prog);
    ck_assert_msg(rc_ok(st) && strstr(out, "[libetsmgr.so.0]"), "the program does not use the shared libetsmgr.so.0:\n%s",
                  out ? out : "");
    free(out);
    st = rc_sh(&out, 30000, "LD_LIBRARY_PATH='%s" TI_PREFIX "/lib' '%s' 2>&1", dest, prog);
    ck_assert_msg(rc_ok(st) && strstr(out, "value 42 created 1"), "the pkg-config program failed (status %d):\n%s", st,
                  out ? out : "");
    free(out);

    /* orderly stop: children gone, exit 0 */
    st = sv_stop(&p, SIGTERM, 20000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                  "installed etssup did not exit 0 on SIGTERM (status %d)", st);
    for (int i = 0; i < nk; i++) {
        ck_assert_msg(!sv_alive(kids[i]), "child pid %d outlived etssup", (int)kids[i]);
    }
    ti_uninstall_leaves_nothing(dest);
    ti_rmrf(dest);
    tu_env_cleanup(&e);
}
END_TEST

Suite *install_suite(void)
{
    Suite *s = suite_create("install");
    TCase *tc = tcase_create("install");
    tcase_set_timeout(tc, 900); /* make install first brings the build up to date */
    tcase_add_test(tc, test_install_file_list_and_uninstall);
    tcase_add_test(tc, test_installed_tree_runs);
    suite_add_tcase(s, tc);
    return s;
}

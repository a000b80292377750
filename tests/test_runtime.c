/* SPDX-License-Identifier: Apache-2.0 */
/* test_runtime.c: runtime dir / instance resolution order, the private dir
 * checks, socket paths, lock file and stale-socket replacement (sock.c). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runcap.h"
#include "runtime.h"
#include "sock.h"
#include "testutil.h"

static char tmpd[64];

static void rt_setup(void)
{
    snprintf(tmpd, sizeof tmpd, "/tmp/etsmgr-rtXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpd));
    unsetenv("ETSMGR_RUNTIME_DIR");
    unsetenv("ETSMGR_INSTANCE");
    unsetenv("XDG_RUNTIME_DIR");
}

static void rt_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpd);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpd);
}

START_TEST(test_rt_resolve_order)
{
    rt_paths rt;
    char err[256];
    ck_assert_int_eq(rt_resolve(NULL, NULL, &rt, err, sizeof err), 0);
    ck_assert_str_eq(rt.instance, "etsmgr");
    if (geteuid() == 0) {
        ck_assert_str_eq(rt.dir, "/run/etsmgr");
    } else {
        char want[64];
        snprintf(want, sizeof want, "/tmp/etsmgr-%lu", (unsigned long)geteuid());
        ck_assert_str_eq(rt.dir, want);
    }
    /* another instance gets a default dir of its own (etsmgr@NAME.service's) */
    ck_assert_int_eq(rt_resolve(NULL, "blue", &rt, err, sizeof err), 0);
    if (geteuid() == 0)
        ck_assert_str_eq(rt.dir, "/run/etsmgr@blue");
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    ck_assert_int_eq(rt_resolve(NULL, NULL, &rt, err, sizeof err), 0);
    ck_assert_str_eq(rt.dir, "/run/user/1000/etsmgr");
    setenv("ETSMGR_INSTANCE", "blue", 1);
    ck_assert_int_eq(rt_resolve(NULL, NULL, &rt, err, sizeof err), 0);
    ck_assert_str_eq(rt.dir, "/run/user/1000/etsmgr@blue");
    ck_assert_int_eq(rt_resolve(NULL, "etsmgr", &rt, err, sizeof err), 0);
    ck_assert_str_eq(rt.dir, "/run/user/1000/etsmgr");
    unsetenv("ETSMGR_INSTANCE");
    setenv("ETSMGR_RUNTIME_DIR", "/var/tmp/x/", 1);
    setenv("ETSMGR_INSTANCE", "inst-1", 1);
    ck_assert_int_eq(rt_resolve(NULL, NULL, &rt, err, sizeof err), 0);
    ck_assert_str_eq(rt.dir, "/var/tmp/x");
    ck_assert_str_eq(rt.instance, "inst-1");
    ck_assert_int_eq(rt_resolve("/opt/d", "other", &rt, err, sizeof err), 0);
    ck_assert_str_eq(rt.dir, "/opt/d");
    ck_assert_str_eq(rt.instance, "other");
    /* relative: made absolute against the cwd */
    ck_assert_int_eq(chdir(tmpd), 0);
    ck_assert_int_eq(rt_resolve("rel", NULL, &rt, err, sizeof err), 0);
    char want[128];
    snprintf(want, sizeof want, "%s/rel", tmpd);
    ck_assert_str_eq(rt.dir, want);
}
END_TEST

START_TEST(test_rt_resolve_refuses)
{
    rt_paths rt;
    char err[256];
    ck_assert_int_eq(rt_resolve("/tmp/x", "a/b", &rt, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "invalid instance name"));
    ck_assert_int_eq(rt_resolve("/tmp/x", "..", &rt, err, sizeof err), -1);
    ck_assert_int_eq(rt_resolve("/tmp/x", "", &rt, err, sizeof err), -1);
    char longname[80];
    memset(longname, 'n', 65);
    longname[65] = '\0';
    ck_assert_int_eq(rt_resolve("/tmp/x", longname, &rt, err, sizeof err), -1);
    longname[64] = '\0';
    ck_assert_int_eq(rt_resolve("/tmp/x", longname, &rt, err, sizeof err), 0);
    char longdir[200] = "/tmp/";
    memset(longdir + 5, 'd', 150);
    longdir[155] = '\0';
    ck_assert_int_eq(rt_resolve(longdir, NULL, &rt, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

START_TEST(test_rt_names)
{
    ck_assert(rt_valid_name("abc_1.2-x", 9));
    ck_assert(!rt_valid_name(".", 1));
    ck_assert(!rt_valid_name("..", 2));
    ck_assert(rt_valid_name("...", 3));
    ck_assert(!rt_valid_name("a b", 3));
    ck_assert(!rt_valid_name("a\0b", 3));
    ck_assert(!rt_valid_name("", 0));
    rt_paths rt;
    char err[256], buf[256];
    ck_assert_int_eq(rt_resolve("/tmp/d", "inst", &rt, err, sizeof err), 0);
    ck_assert_int_eq(rt_shm_name(&rt, 1000, "counter", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/inst:1000:counter");
    ck_assert_int_eq(rt_shm_name(&rt, 0, "../x", buf, sizeof buf), -1);
    ck_assert_int_eq(rt_shm_name(&rt, 0, "a/b", buf, sizeof buf), -1);
    ck_assert_int_eq(rt_path(&rt, "etsmgrd.sock", buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "/tmp/d/etsmgrd.sock");
    char longfile[200];
    memset(longfile, 'f', 150);
    longfile[150] = '\0';
    ck_assert_int_eq(rt_path(&rt, longfile, buf, sizeof buf), -1);
}
END_TEST

START_TEST(test_rt_ensure_dir)
{
    rt_paths rt;
    char err[256], d[128];
    snprintf(d, sizeof d, "%s/a/b/run", tmpd);
    ck_assert_int_eq(rt_resolve(d, NULL, &rt, err, sizeof err), 0);
    mode_t old = umask(0);
    int r = rt_ensure_dir(&rt, err, sizeof err);
    umask(old);
    ck_assert_msg(r == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(d, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    /* again: exists, fine */
    ck_assert_int_eq(rt_ensure_dir(&rt, err, sizeof err), 0);
    /* group-writable: refused with a way out */
    ck_assert_int_eq(chmod(d, 0770), 0);
    ck_assert_int_eq(rt_ensure_dir(&rt, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "chmod 0700"));
    /* a file in the way */
    snprintf(d, sizeof d, "%s/file", tmpd);
    FILE *f = fopen(d, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(rt_resolve(d, NULL, &rt, err, sizeof err), 0);
    ck_assert_int_eq(rt_ensure_dir(&rt, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a directory"));
}
END_TEST

/* path under tmpd into buf */
static const char *rt_under(char *buf, size_t len, const char *rel)
{
    ck_assert_int_lt(snprintf(buf, len, "%s/%s", tmpd, rel), (int)len);
    return buf;
}

/* rt_ensure_dir on dir: its result, err filled */
static int rt_ensure_at(const char *dir, char *err, size_t errlen)
{
    rt_paths rt;
    ck_assert_int_eq(rt_resolve(dir, NULL, &rt, err, errlen), 0);
    return rt_ensure_dir(&rt, err, errlen);
}

/* The runtime dir holds the sockets clients connect to and the instance
 * lock, so a directory on the way to it that someone else can write (and
 * that is not sticky) is refused: they could rename our dir away and put
 * a directory or symlink of their own in its place between the check and
 * the bind.  Only the last directory was checked before. */
START_TEST(test_rt_ensure_dir_way_writable_by_others)
{
    char err[1024], open_dir[128], run[160];
    rt_under(open_dir, sizeof open_dir, "open");
    rt_under(run, sizeof run, "open/run");
    ck_assert_int_eq(mkdir(open_dir, 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0); /* as /tmp without its sticky bit */
    ck_assert_int_eq(rt_ensure_at(run, err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "writable by others") && strstr(err, "mode 0777") &&
                      strstr(err, "chmod go-w"),
                  "%s", err);
    /* the dir itself is ours and 0700 by now: no better, it can be renamed away */
    struct stat st;
    ck_assert_int_eq(lstat(run, &st), 0);
    ck_assert_int_eq(rt_ensure_at(run, err, sizeof err), -1);
    /* group-writable is as open */
    ck_assert_int_eq(chmod(open_dir, 0770), 0);
    ck_assert_int_eq(rt_ensure_at(run, err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "mode 0770"), "%s", err);
    /* sticky (as /tmp): others cannot move what is ours */
    ck_assert_int_eq(chmod(open_dir, 01777), 0);
    ck_assert_msg(rt_ensure_at(run, err, sizeof err) == 0, "%s", err);
    /* deeper than the parent, and a dir made there at this call */
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    ck_assert_int_eq(rt_ensure_at(rt_under(run, sizeof run, "open/a/b/run"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "writable by others"), "%s", err);
    /* another user's directory: its owner can rename what is in it, so no chmod advice */
    if (geteuid() == 0) {
        char theirs[128];
        rt_under(theirs, sizeof theirs, "theirs");
        ck_assert_int_eq(mkdir(theirs, 0755), 0);
        ck_assert_int_eq(chown(theirs, 65534, 65534), 0);
        ck_assert_int_eq(rt_ensure_at(rt_under(run, sizeof run, "theirs/run"), err, sizeof err), -1);
        ck_assert_msg(strstr(err, theirs) && strstr(err, "another user's") && strstr(err, "uid 65534") &&
                          !strstr(err, "chmod"),
                      "%s", err);
    }
}
END_TEST

/* Each program that makes the runtime dir says the refusal whole, its
 * advice at the end included (etscounterd cut it off at 256 bytes). */
START_TEST(test_runtime_dir_refusal_said_whole)
{
    char open_dir[128], run[160];
    rt_under(open_dir, sizeof open_dir, "open");
    rt_under(run, sizeof run, "open/a-long-enough-name-for-the-runtime-directory/run");
    ck_assert_int_eq(mkdir(open_dir, 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    const char *progs[] = {"etsmgrd", "etscounterd", "etssup"};
    for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
        char *out = NULL;
        int st = rc_sh(&out, 10000, "%s --runtime-dir %s --instance rtw 2>&1", tu_bin(progs[i], false), run);
        ck_assert_msg(!rc_ok(st) && out && strstr(out, "chmod go-w") &&
                          strstr(out, "(or is sticky, as /tmp)"),
                      "%s: status 0x%x: %s", progs[i], st, out ? out : "");
        free(out);
    }
}
END_TEST

/* Symlinks on the way are looked through, and every directory a name is
 * then looked up in is judged too: a link in a safe directory to a safe
 * directory is fine (/var/run -> /run); a link whose way, or the way of a
 * link it leads to, passes an open directory is not.  A symlink as the
 * runtime dir itself stays refused. */
START_TEST(test_rt_ensure_dir_way_symlinks)
{
    char err[1024], safe[128], link[128], open_dir[128], run[160], lnk2[160];
    ck_assert_int_eq(mkdir(rt_under(safe, sizeof safe, "safe"), 0700), 0);
    ck_assert_int_eq(mkdir(rt_under(open_dir, sizeof open_dir, "open"), 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    /* tmpd/link -> tmpd/safe: fine */
    ck_assert_int_eq(symlink(safe, rt_under(link, sizeof link, "link")), 0);
    ck_assert_msg(rt_ensure_at(rt_under(run, sizeof run, "link/run"), err, sizeof err) == 0, "%s", err);
    char resolved[256];
    ck_assert_msg(rt_check_way(run, "the runtime directory", resolved, sizeof resolved, err, sizeof err) == 0,
                  "%s", err);
    char want[256];
    ck_assert_str_eq(resolved, rt_under(want, sizeof want, "safe/run"));
    /* tmpd/via -> tmpd/open/real: the target's way passes the open dir */
    ck_assert_int_eq(mkdir(rt_under(lnk2, sizeof lnk2, "open/real"), 0700), 0);
    ck_assert_int_eq(symlink(lnk2, rt_under(link, sizeof link, "via")), 0);
    ck_assert_int_eq(rt_ensure_at(rt_under(run, sizeof run, "via/run"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "writable by others"), "%s", err);
    /* tmpd/chain -> tmpd/open/hop -> tmpd/safe: realpath says tmpd/safe/run,
     * all safe, yet whoever writes tmpd/open decides where hop leads */
    ck_assert_int_eq(symlink(safe, rt_under(lnk2, sizeof lnk2, "open/hop")), 0);
    ck_assert_int_eq(symlink(lnk2, rt_under(link, sizeof link, "chain")), 0);
    ck_assert_int_eq(rt_ensure_at(rt_under(run, sizeof run, "chain/run"), err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "writable by others"), "%s", err);
    /* relative links and ".." are followed as the kernel does */
    ck_assert_int_eq(symlink("../safe", rt_under(link, sizeof link, "safe/up")), 0);
    ck_assert_msg(rt_ensure_at(rt_under(run, sizeof run, "safe/up/run2"), err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(rt_check_way(run, "the runtime directory", resolved, sizeof resolved, err, sizeof err),
                     0);
    ck_assert_str_eq(resolved, rt_under(want, sizeof want, "safe/run2"));
    /* the runtime dir itself a link, even to a safe dir: refused, saying so */
    ck_assert_int_eq(symlink(safe, rt_under(link, sizeof link, "runlink")), 0);
    ck_assert_int_eq(rt_ensure_at(link, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "is a symlink"), "%s", err);
    /* the default places: /tmp is sticky, /var/run a link to /run */
    ck_assert_msg(rt_check_way(tmpd, "the runtime directory", NULL, 0, err, sizeof err) == 0, "%s", err);
    struct stat st;
    if (lstat("/var/run", &st) == 0 && S_ISLNK(st.st_mode) && stat("/var/run", &st) == 0 && geteuid() == 0)
        ck_assert_msg(rt_check_way("/var/run", "the runtime directory", NULL, 0, err, sizeof err) == 0, "%s",
                      err);
}
END_TEST

/* In a sticky directory others can write (as /tmp), what is in it can be
 * replaced by its owner: a symlink or directory of another user there is
 * refused, ours or root's not.  stat judged only a link's target; with
 * fs.protected_symlinks=0 (containers) the kernel follows such a link. */
START_TEST(test_rt_check_way_foreign_entry_in_sticky_dir)
{
    if (geteuid() != 0)
        return; /* lchown to another user needs root */
    char err[1024], sticky[128], safe[128], link[160], theirs[160];
    ck_assert_int_eq(mkdir(rt_under(safe, sizeof safe, "safe"), 0700), 0);
    ck_assert_int_eq(mkdir(rt_under(sticky, sizeof sticky, "sticky"), 0700), 0);
    ck_assert_int_eq(chmod(sticky, 01777), 0);
    ck_assert_int_eq(symlink(safe, rt_under(link, sizeof link, "sticky/lnk")), 0);
    ck_assert_msg(rt_check_way(link, "the runtime directory", NULL, 0, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(lchown(link, 65534, 65534), 0);
    ck_assert_int_eq(rt_check_way(link, "the runtime directory", NULL, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, link) && strstr(err, "a symlink of uid 65534") && strstr(err, "sticky"), "%s",
                  err);
    /* on the way, not only last */
    char below[200];
    snprintf(below, sizeof below, "%s/.", link);
    ck_assert_int_eq(rt_check_way(below, "the runtime directory", NULL, 0, err, sizeof err), -1);
    /* a directory of theirs there: they can rename it and put a link in its place */
    ck_assert_int_eq(mkdir(rt_under(theirs, sizeof theirs, "sticky/theirs"), 0700), 0);
    ck_assert_msg(rt_check_way(theirs, "the runtime directory", NULL, 0, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(chown(theirs, 65534, 65534), 0);
    ck_assert_int_eq(rt_check_way(theirs, "the runtime directory", NULL, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "a directory of uid 65534"), "%s", err);
    /* not sticky-open: another user's entry in our own directory is no way in */
    ck_assert_int_eq(chmod(sticky, 0700), 0);
    ck_assert_msg(rt_check_way(link, "the runtime directory", NULL, 0, err, sizeof err) == 0, "%s", err);
}
END_TEST

/* A relative path starts at the working directory, whose own way counts */
/* The walk's edges: a name longer than 255 bytes is refused, not cut to
 * 255 (it named another directory, which existed here: the snapshot
 * directory went there); a symlink loop ends with ELOOP, not a hang; ".."
 * after a link goes up from where the link led, as the kernel does, so
 * an open directory there is judged (a lexical ".." would skip it). */
START_TEST(test_rt_check_way_edges)
{
    char err[1024], d[600], l[200], open_dir[128];
    char name[261];
    memset(name, 'z', 260);
    name[260] = '\0';
    snprintf(d, sizeof d, "%s/%.255s", tmpd, name);
    ck_assert_int_eq(mkdir(d, 0700), 0); /* the first 255 bytes exist */
    snprintf(d, sizeof d, "%s/%s", tmpd, name);
    ck_assert_int_eq(rt_check_way(d, "the snapshot directory", NULL, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "longer than 255 bytes"), "%s", err);

    rt_under(l, sizeof l, "loop");
    ck_assert_int_eq(symlink(l, l), 0);
    snprintf(d, sizeof d, "%s/x", l);
    ck_assert_int_eq(rt_check_way(d, "the runtime directory", NULL, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, strerror(ELOOP)), "%s", err);

    ck_assert_int_eq(mkdir(rt_under(open_dir, sizeof open_dir, "open"), 0700), 0);
    ck_assert_int_eq(mkdir(rt_under(d, sizeof d, "open/deep"), 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    ck_assert_int_eq(symlink(d, rt_under(l, sizeof l, "l")), 0);
    snprintf(d, sizeof d, "%s/../run", l);
    ck_assert_int_eq(rt_check_way(d, "the runtime directory", NULL, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "writable by others"), "%s", err);
}
END_TEST

/* A runtime dir refused where $XDG_RUNTIME_DIR put it says so, and what to
 * set: root that kept a user's $XDG_RUNTIME_DIR (su without -, sudo -E)
 * was refused at /run/user/UID without a word of why it was there. */
START_TEST(test_rt_refusal_says_where_from)
{
    if (geteuid() != 0)
        return; /* needs a directory of another user */
    char err[1024], theirs[128];
    rt_under(theirs, sizeof theirs, "user");
    ck_assert_int_eq(mkdir(theirs, 0700), 0);
    ck_assert_int_eq(chown(theirs, 65534, 65534), 0);
    unsetenv("ETSMGR_RUNTIME_DIR");
    unsetenv("ETSMGR_INSTANCE");
    ck_assert_int_eq(setenv("XDG_RUNTIME_DIR", theirs, 1), 0);
    rt_paths rt;
    ck_assert_int_eq(rt_resolve(NULL, NULL, &rt, err, sizeof err), 0);
    ck_assert_int_eq(rt_ensure_dir(&rt, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "another user's") && strstr(err, "$XDG_RUNTIME_DIR") &&
                      strstr(err, "unset XDG_RUNTIME_DIR"),
                  "%s", err);
}
END_TEST

START_TEST(test_rt_check_way_relative)
{
    char err[1024], open_dir[128], d[160];
    ck_assert_int_eq(mkdir(rt_under(open_dir, sizeof open_dir, "open"), 0700), 0);
    ck_assert_int_eq(mkdir(rt_under(d, sizeof d, "open/cwd"), 0700), 0);
    ck_assert_int_eq(mkdir(rt_under(d, sizeof d, "open/cwd/run"), 0700), 0);
    ck_assert_int_eq(chdir(rt_under(d, sizeof d, "open/cwd")), 0);
    ck_assert_msg(rt_check_way("run", "the runtime directory", NULL, 0, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    ck_assert_int_eq(rt_check_way("run", "the runtime directory", NULL, 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, open_dir) && strstr(err, "writable by others"), "%s", err);
    ck_assert_int_eq(chdir("/"), 0);
}
END_TEST

START_TEST(test_sock_listen_stale_and_mode)
{
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/s.sock", tmpd);
    int a = sock_listen_unix(path, 0600, 16, err, sizeof err);
    ck_assert_msg(a >= 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    int c = sock_connect_unix(path);
    ck_assert_int_ge(c, 0);
    close(c);
    close(a); /* the file stays behind: stale */
    c = sock_connect_unix(path);
    ck_assert_int_eq(c, -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    int b = sock_listen_unix(path, 0660, 16, err, sizeof err);
    ck_assert_msg(b >= 0, "stale socket not replaced: %s", err);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0660);
    c = sock_connect_unix(path);
    ck_assert_int_ge(c, 0);
    close(c);
    close(b);
    /* never unlinks something that is not a socket */
    snprintf(path, sizeof path, "%s/regular", tmpd);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(sock_listen_unix(path, 0600, 16, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a socket"));
    ck_assert_int_eq(access(path, F_OK), 0);
    /* missing: ENOENT */
    snprintf(path, sizeof path, "%s/none.sock", tmpd);
    ck_assert_int_eq(sock_connect_unix(path), -1);
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_sock_lock)
{
    char path[128];
    snprintf(path, sizeof path, "%s/x.lock", tmpd);
    int a = sock_lock_file(path);
    ck_assert_int_ge(a, 0);
    int b = sock_lock_file(path);
    ck_assert_int_eq(b, -1);
    ck_assert_int_eq(errno, EWOULDBLOCK);
    close(a);
    b = sock_lock_file(path);
    ck_assert_int_ge(b, 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    close(b);
}
END_TEST

Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("runtime");
    tcase_add_checked_fixture(tc, rt_setup, rt_teardown);
    tcase_add_test(tc, test_rt_resolve_order);
    tcase_add_test(tc, test_rt_resolve_refuses);
    tcase_add_test(tc, test_rt_names);
    tcase_add_test(tc, test_rt_ensure_dir);
    tcase_add_test(tc, test_rt_ensure_dir_way_writable_by_others);
    tcase_add_test(tc, test_rt_ensure_dir_way_symlinks);
    tcase_add_test(tc, test_runtime_dir_refusal_said_whole);
    tcase_add_test(tc, test_rt_check_way_edges);
    tcase_add_test(tc, test_rt_refusal_says_where_from);
    tcase_add_test(tc, test_rt_check_way_relative);
    tcase_add_test(tc, test_rt_check_way_foreign_entry_in_sticky_dir);
    tcase_add_test(tc, test_sock_listen_stale_and_mode);
    tcase_add_test(tc, test_sock_lock);
    suite_add_tcase(s, tc);
    return s;
}

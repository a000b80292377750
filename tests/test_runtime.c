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

#include "runtime.h"
#include "sock.h"

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
    tcase_add_test(tc, test_sock_listen_stale_and_mode);
    tcase_add_test(tc, test_sock_lock);
    suite_add_tcase(s, tc);
    return s;
}

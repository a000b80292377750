/* SPDX-License-Identifier: Apache-2.0 */
/* test_notify.c: sd_notify both ways (path and abstract socket), the kernel's
 * sender pid, and socket activation (listenfd).  listenfd tests run in a
 * forked child: they must own fds 3 and up, which the check framework may
 * hold in the test process itself. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "listenfd.h"
#include "notify.h"

static int wait_readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 5000);
}

START_TEST(test_notify_path)
{
    char dir[] = "/tmp/etsmgr-ntXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/notify", dir);
    int fd = notify_listen(path);
    ck_assert_int_ge(fd, 0);
    char buf[256];
    int pid = -1;
    ck_assert_int_eq(notify_recv(fd, buf, sizeof buf, &pid), -1);
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);

    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(notify_send("READY=1"), 0); /* unset: nothing to do */
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(notify_send("READY=1"), 0);
    ck_assert_int_eq(wait_readable(fd), 1);
    ck_assert_int_eq(notify_recv(fd, buf, sizeof buf, &pid), 7);
    ck_assert_str_eq(buf, "READY=1");
    ck_assert_int_eq(pid, getpid());

    /* from a child: the pid is the child's, as the kernel saw it */
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(notify_sendf("STATUS=%s %d", "serving", 3) == 0 ? 0 : 1);
    int st;
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(wait_readable(fd), 1);
    ck_assert_int_eq(notify_recv(fd, buf, sizeof buf, &pid), 16);
    ck_assert_str_eq(buf, "STATUS=serving 3");
    ck_assert_int_eq(pid, child);

    /* a datagram longer than the buffer is cut, still terminated */
    ck_assert_int_eq(notify_send("STATUS=0123456789"), 0);
    ck_assert_int_eq(wait_readable(fd), 1);
    ck_assert_int_eq(notify_recv(fd, buf, 8, &pid), 7);
    ck_assert_str_eq(buf, "STATUS=");

    /* a stale socket file is replaced */
    close(fd);
    fd = notify_listen(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_notify_abstract)
{
    char name[64];
    snprintf(name, sizeof name, "@etsmgr-test-%d", (int)getpid());
    int fd = notify_listen(name);
    ck_assert_int_ge(fd, 0);
    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_int_eq(notify_send("READY=1\nSTATUS=ok"), 0);
    ck_assert_int_eq(wait_readable(fd), 1);
    char buf[64];
    int pid;
    ck_assert_int_eq(notify_recv(fd, buf, sizeof buf, &pid), 17);
    ck_assert_str_eq(buf, "READY=1\nSTATUS=ok");
    ck_assert_int_eq(pid, getpid());
    close(fd);
    /* nobody listening / nonsense name: an error, not a crash */
    ck_assert_int_eq(notify_send("READY=1"), -1);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);
    unsetenv("NOTIFY_SOCKET");
}
END_TEST

/* child side of the listenfd tests: exit code 0 = all good, else the line */
#define LF_CHECK(c)                                                                                \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "listenfd check failed at line %d: %s\n", __LINE__, #c);               \
            _exit(__LINE__ % 250 + 1);                                                             \
        }                                                                                          \
    } while (0)

static int run_child(void (*fn)(void))
{
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

static void set_env(const char *fds, const char *names, long pid)
{
    char p[32];
    snprintf(p, sizeof p, "%ld", pid);
    setenv("LISTEN_PID", p, 1);
    setenv("LISTEN_FDS", fds, 1);
    if (names)
        setenv("LISTEN_FDNAMES", names, 1);
    else
        unsetenv("LISTEN_FDNAMES");
}

static void lf_named(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3 && dup2(sp[1], 4) == 4);
    set_env("2", "etsmgrd:etscounterd", getpid());
    LF_CHECK(listenfd_take("etscounterd", NULL) == 4);
    LF_CHECK(getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
             getenv("LISTEN_FDNAMES") == NULL);
    LF_CHECK(fcntl(4, F_GETFD) & FD_CLOEXEC);
    LF_CHECK(fcntl(3, F_GETFD) & FD_CLOEXEC);
    LF_CHECK(listenfd_take("etscounterd", NULL) == -1); /* handed out once */
    LF_CHECK(listenfd_take("other", NULL) == -1);
    LF_CHECK(listenfd_take(NULL, NULL) == -1); /* two fds: ambiguous */
    LF_CHECK(listenfd_take("etsmgrd", NULL) == 3);
}

static void lf_single_unnamed(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3);
    set_env("1", NULL, getpid());
    LF_CHECK(listenfd_take("etsmgrd", NULL) == 3);
}

static void lf_other_pid(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3);
    set_env("1", "etsmgrd", getppid());
    LF_CHECK(listenfd_take("etsmgrd", NULL) == -1);
    LF_CHECK(getenv("LISTEN_PID") == NULL); /* still removed for children */
}

/* systemd's default name is the socket unit's: "etsmgrd.socket" */
static void lf_default_name(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3 && dup2(sp[1], 4) == 4);
    set_env("2", "etscounter.socket:etsmgrd.socket", getpid());
    LF_CHECK(listenfd_take("etsmgrd", NULL) == 4);
    LF_CHECK(listenfd_take("etscounter", NULL) == 3);
    char msg[256];
    LF_CHECK(listenfd_leftover(msg, sizeof msg) == 0);
}

/* One socket unit, two ListenStream=, one name: told apart by their paths;
 * an exact name wins over a path. */
static void lf_by_path(void)
{
    char dir[] = "/tmp/etsmgr-lf.XXXXXX";
    LF_CHECK(mkdtemp(dir) != NULL);
    char pa[128], pb[128];
    snprintf(pa, sizeof pa, "%s/etsmgrd.sock", dir);
    snprintf(pb, sizeof pb, "%s/etscounter.sock", dir);
    const char *paths[2] = {pa, pb};
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", paths[i]);
        LF_CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
        LF_CHECK(dup2(fd, 3 + i) == 3 + i);
    }
    set_env("2", "etsmgr:etsmgr", getpid());
    LF_CHECK(listenfd_take("etscounter", pb) == 4);
    LF_CHECK(listenfd_take("etsmgrd", "/elsewhere.sock") == -1);
    LF_CHECK(listenfd_take("etsmgrd", pa) == 3);
    unlink(pa);
    unlink(pb);
    rmdir(dir);
}

/* An fd no one asked for is reported, with its name and path. */
static void lf_leftover(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3 && dup2(sp[1], 4) == 4);
    set_env("2", "etsmgrd:stranger", getpid());
    LF_CHECK(listenfd_take("etsmgrd", "/nonexistent/etsmgrd.sock") == 3);
    char msg[256];
    LF_CHECK(listenfd_leftover(msg, sizeof msg) == 1);
    LF_CHECK(strstr(msg, "fd 4") && strstr(msg, "stranger"));
}

static void lf_none(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    LF_CHECK(listenfd_take("etsmgrd", NULL) == -1);
    LF_CHECK(listenfd_take(NULL, NULL) == -1);
}

START_TEST(test_listenfd)
{
    ck_assert_int_eq(run_child(lf_named), 0);
    ck_assert_int_eq(run_child(lf_single_unnamed), 0);
    ck_assert_int_eq(run_child(lf_other_pid), 0);
    ck_assert_int_eq(run_child(lf_none), 0);
    ck_assert_int_eq(run_child(lf_default_name), 0);
    ck_assert_int_eq(run_child(lf_by_path), 0);
    ck_assert_int_eq(run_child(lf_leftover), 0);
}
END_TEST

Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("notify");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_notify_path);
    tcase_add_test(tc, test_notify_abstract);
    tcase_add_test(tc, test_listenfd);
    suite_add_tcase(s, tc);
    return s;
}

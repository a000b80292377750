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
    LF_CHECK(listenfd_take("etscounterd") == 4);
    LF_CHECK(getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
             getenv("LISTEN_FDNAMES") == NULL);
    LF_CHECK(fcntl(4, F_GETFD) & FD_CLOEXEC);
    LF_CHECK(fcntl(3, F_GETFD) & FD_CLOEXEC);
    LF_CHECK(listenfd_take("etscounterd") == -1); /* handed out once */
    LF_CHECK(listenfd_take("other") == -1);
    LF_CHECK(listenfd_take(NULL) == -1); /* two fds: ambiguous */
    LF_CHECK(listenfd_take("etsmgrd") == 3);
}

static void lf_single_unnamed(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3);
    set_env("1", NULL, getpid());
    LF_CHECK(listenfd_take("etsmgrd") == 3);
}

static void lf_other_pid(void)
{
    int sp[2];
    LF_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
    LF_CHECK(dup2(sp[0], 3) == 3);
    set_env("1", "etsmgrd", getppid());
    LF_CHECK(listenfd_take("etsmgrd") == -1);
    LF_CHECK(getenv("LISTEN_PID") == NULL); /* still removed for children */
}

static void lf_none(void)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    LF_CHECK(listenfd_take("etsmgrd") == -1);
    LF_CHECK(listenfd_take(NULL) == -1);
}

START_TEST(test_listenfd)
{
    ck_assert_int_eq(run_child(lf_named), 0);
    ck_assert_int_eq(run_child(lf_single_unnamed), 0);
    ck_assert_int_eq(run_child(lf_other_pid), 0);
    ck_assert_int_eq(run_child(lf_none), 0);
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

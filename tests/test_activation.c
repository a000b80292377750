/* SPDX-License-Identifier: Apache-2.0 */
/* test_activation.c: sockets handed in by systemd (socket activation) are
 * placed by convention, and one that cannot be placed stops the program
 * with words, never silently.
 *
 * Each program is started the way systemd starts it: a listening socket at
 * fd 3, LISTEN_FDS=1, LISTEN_FDNAMES and LISTEN_PID set to the program's own
 * pid between fork and exec.  Before the fix, a socket carrying systemd's
 * default name ("etsmgrd.socket", the socket unit's name) was ignored: the
 * daemon bound its own file and the activating client waited forever. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* Starts prog (a built program) with a listening socket bound to path at fd
 * 3, announced under name; its stderr goes to *errfd (a pipe); extra: more
 * arguments, NULL-terminated (or NULL). */
static pid_t ta_start(const char *prog, const char *name, const char *path, int *errfd, char *const extra[])
{
    int p[2];
    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    /* bound before fork, so a client may connect at once, as with systemd */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 16) == 0, "bind %s: %s", path,
                  strerror(errno));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (dup2(fd, 3) < 0 || dup2(p[1], 2) < 0) /* dup2 clears close-on-exec */
            _exit(120);
        char pidbuf[32];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
        setenv("LISTEN_PID", pidbuf, 1);
        setenv("LISTEN_FDS", "1", 1);
        setenv("LISTEN_FDNAMES", name, 1);
        unsetenv("NOTIFY_SOCKET");
        char *argv[16] = {(char *)tu_bin(prog, false)};
        for (int i = 0; extra && extra[i] && i < 14; i++)
            argv[i + 1] = extra[i];
        execv(argv[0], argv);
        _exit(121);
    }
    close(p[1]);
    close(fd);
    *errfd = p[0];
    return pid;
}

static void ta_read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(fd);
}

/* systemd's default name for the fd of etsmgrd.socket is "etsmgrd.socket";
 * bound elsewhere than DIR/etsmgrd.sock, only the name can place it. */
START_TEST(test_etsmgrd_takes_default_named_socket)
{
    tu_env e;
    tu_env_init(&e);
    char path[256];
    snprintf(path, sizeof path, "%s/activated.sock", e.dir);
    int errfd;
    pid_t pid = ta_start("etsmgrd", "etsmgrd.socket", path, &errfd, NULL);
    char *reply = tu_request(&e, path, "{\"op\":\"hello\",\"id\":1}", NULL, 0, NULL, NULL);
    ck_assert_msg(reply != NULL, "etsmgrd did not answer on the socket systemd passed as etsmgrd.socket");
    ck_assert_msg(strstr(reply, "\"ok\""), "unexpected reply: %s", reply);
    free(reply);
    kill(pid, SIGTERM);
    ck_assert_int_ge(tu_wait(pid, 10000), 0);
    close(errfd);
    tu_env_cleanup(&e);
}
END_TEST

/* A socket that is neither etsmgrd's name nor its path: refuse, naming it. */
START_TEST(test_stray_socket_refused_loudly)
{
    const char *progs[] = {"etsmgrd", "etscounterd", "etssup", NULL};
    for (const char **prog = progs; *prog; prog++) {
        tu_env e;
        tu_env_init(&e);
        char path[256];
        snprintf(path, sizeof path, "%s/stray.sock", e.dir);
        int errfd;
        pid_t pid = ta_start(*prog, "stray", path, &errfd, NULL);
        int st = tu_wait(pid, 20000);
        if (st == -1) {
            kill(pid, SIGKILL);
            tu_wait(pid, 5000);
        }
        static char err[8192];
        ta_read_all(errfd, err, sizeof err);
        ck_assert_msg(st != -1, "%s kept running with a socket it cannot place:\n%s", *prog, err);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "%s did not fail (status %d):\n%s", *prog, st, err);
        ck_assert_msg(strstr(err, "stray") && strstr(err, path), "%s did not name the stray socket:\n%s", *prog, err);
        if (strcmp(*prog, "etssup") == 0)
            ck_assert_msg(WEXITSTATUS(st) == 78, "etssup: exit %d, not 78 (configuration):\n%s", WEXITSTATUS(st),
                          err);
        tu_env_cleanup(&e);
    }
}
END_TEST

Suite *activation_suite(void)
{
    Suite *s = suite_create("activation");
    TCase *tc = tcase_create("activation");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_etsmgrd_takes_default_named_socket);
    tcase_add_test(tc, test_stray_socket_refused_loudly);
    suite_add_tcase(s, tc);
    return s;
}

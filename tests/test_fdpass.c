/* SPDX-License-Identifier: Apache-2.0 */
/* test_fdpass.c: the one module that sends, receives and accounts for fds
 * (common/fdpass.c).  Each test counts this process's open fds around what
 * it does: every fd that arrives must be handed over or closed, and the
 * count says which.  Also: the fds that arrive are the ones sent (same
 * inode) and close-on-exec, credentials come through, the stream ledger
 * gives each frame exactly its fds, and the parser stops at a control
 * length the kernel would never write instead of reading past it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdpass.h"
#include "testutil.h"

static int count_fds(void)
{
    return tu_count_fds(getpid());
}

static void same_file(int a, int b)
{
    struct stat sa, sb;
    ck_assert_int_eq(fstat(a, &sa), 0);
    ck_assert_int_eq(fstat(b, &sb), 0);
    ck_assert(sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino);
}

static void send_fds(int sock, const char *bytes, const int *fds, int nfds)
{
    struct iovec iov = {(void *)bytes, strlen(bytes)};
    ck_assert_int_eq(fdpass_send(sock, &iov, 1, 0, fds, nfds), (ssize_t)strlen(bytes));
}

START_TEST(test_fdpass_roundtrip)
{
    int sp[2], p[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    ck_assert_int_eq(pipe(p), 0);
    int base = count_fds();
    send_fds(sp[0], "ab", p, 2);
    char buf[8];
    int got[4], n = -1;
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, got, 4, &n, NULL), 2);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(count_fds(), base + 2);
    same_file(got[0], p[0]);
    same_file(got[1], p[1]);
    ck_assert(fcntl(got[0], F_GETFD) & FD_CLOEXEC);
    ck_assert(fcntl(got[1], F_GETFD) & FD_CLOEXEC);
    fdpass_close_all(got, n);
    ck_assert_int_eq(count_fds(), base);
    /* no fds: an ordinary message */
    send_fds(sp[0], "c", NULL, 0);
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, got, 4, &n, NULL), 1);
    ck_assert_int_eq(n, 0);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
}
END_TEST

START_TEST(test_fdpass_recv_closes_surplus)
{
    int sp[2], p[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    ck_assert_int_eq(pipe(p), 0);
    int six[6] = {p[0], p[1], p[0], p[1], p[0], p[1]};
    int base = count_fds();
    char buf[8];
    int got[4], n = -1;
    /* room for one: one kept, five closed */
    send_fds(sp[0], "x", six, 6);
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, got, 1, &n, NULL), 1);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(count_fds(), base + 1);
    same_file(got[0], p[0]);
    close(got[0]);
    /* no array: all closed */
    send_fds(sp[0], "y", six, 6);
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, NULL, 4, &n, NULL), 1);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(count_fds(), base);
    /* more than the receive room: what the kernel delivers is closed too */
    int many[FDPASS_RECV_ROOM + 8];
    for (int i = 0; i < FDPASS_RECV_ROOM + 8; i++)
        many[i] = p[i % 2];
    send_fds(sp[0], "z", many, FDPASS_RECV_ROOM + 8);
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, got, 4, &n, NULL), 1);
    ck_assert_int_eq(n, 4);
    fdpass_close_all(got, n);
    ck_assert_int_eq(count_fds(), base);
    /* nothing to read: -1/EAGAIN, no fd, *nfds 0 */
    n = -1;
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, MSG_DONTWAIT, got, 4, &n, NULL), -1);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(n, 0);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
}
END_TEST

/* An empty datagram can carry fds; a read of no bytes belongs to no frame,
 * so they are closed even when the caller has room. */
START_TEST(test_fdpass_empty_read_closes)
{
    int sp[2], p[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp), 0);
    ck_assert_int_eq(pipe(p), 0);
    int base = count_fds();
    struct iovec iov = {NULL, 0};
    ck_assert_int_eq(fdpass_send(sp[0], &iov, 1, 0, p, 2), 0);
    char buf[8];
    int got[4], n = -1;
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, got, 4, &n, NULL), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(count_fds(), base);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
}
END_TEST

START_TEST(test_fdpass_credentials)
{
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp), 0);
    int one = 1;
    ck_assert_int_eq(setsockopt(sp[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one), 0);
    send_fds(sp[0], "READY=1", NULL, 0);
    char buf[16];
    pid_t pid = -1;
    ck_assert_int_eq(fdpass_recv(sp[1], buf, sizeof buf, 0, NULL, 0, NULL, &pid), 7);
    ck_assert_int_eq(pid, getpid());
    /* without SO_PASSCRED on the receiver: 0, not a stale value */
    pid = -1;
    send_fds(sp[1], "x", NULL, 0);
    ck_assert_int_eq(fdpass_recv(sp[0], buf, sizeof buf, 0, NULL, 0, NULL, &pid), 1);
    ck_assert_int_eq(pid, 0);
    close(sp[0]);
    close(sp[1]);
}
END_TEST

START_TEST(test_fdpass_send_limits)
{
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    struct iovec iov = {"a", 1};
    int fd = sp[0];
    errno = 0;
    ck_assert_int_eq(fdpass_send(sp[0], &iov, 1, 0, &fd, -1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(fdpass_send(sp[0], &iov, 1, 0, &fd, FDPASS_SEND_MAX + 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(fdpass_send(sp[0], &iov, 1, 0, NULL, 1), -1);
    ck_assert_int_eq(errno, EINVAL);
    /* a gone peer is EPIPE, not SIGPIPE (MSG_NOSIGNAL always) */
    close(sp[1]);
    ck_assert_int_eq(fdpass_send(sp[0], &iov, 1, 0, &fd, 1), -1);
    ck_assert_int_eq(errno, EPIPE);
    close(sp[0]);
}
END_TEST

/* dup'd /dev/null fds, so that the ledger has real fds to keep and close */
static void nulls(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fds[i], 0);
    }
}

START_TEST(test_fdpass_ledger_frames)
{
    int base = count_fds();
    fdpass_ledger l;
    fdpass_ledger_init(&l);
    int a[2], b[6], c[1], out[FDPASS_FRAME_MAX];
    nulls(a, 2);
    nulls(b, 6);
    nulls(c, 1);
    /* a read [5, 10) whose frame began at 5: kept for now */
    ck_assert_int_eq(fdpass_ledger_add(&l, 5, 10, 5, a, 2), 2);
    /* a read [10, 25) of 6 fds whose frame began at 10: FDPASS_FRAME_MAX
     * kept, 2 closed now */
    ck_assert_int_eq(fdpass_ledger_add(&l, 10, 25, 10, b, 6), FDPASS_FRAME_MAX);
    ck_assert_int_eq(count_fds(), base + 2 + FDPASS_FRAME_MAX + 1);
    ck_assert_int_eq(l.held, 2 + FDPASS_FRAME_MAX);
    ck_assert_int_eq(fdpass_ledger_add(&l, 35, 40, 35, c, 1), 1);
    /* frame [10, 30): the group ending at 10 ended before it (its frame was
     * [5, 10), decoded by nobody here): closed; the one ending at 25 is this
     * frame's; room for 3: the 4th closed */
    int n = fdpass_ledger_take(&l, 10, 30, out, 3);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(out[0], b[0]);
    ck_assert_int_eq(out[2], b[2]);
    ck_assert_int_eq(count_fds(), base + 3 + 1);
    ck_assert_int_eq(l.held, 1);
    fdpass_close_all(out, n);
    /* frame [30, 35): nothing ends inside it */
    ck_assert_int_eq(fdpass_ledger_take(&l, 30, 35, out, FDPASS_FRAME_MAX), 0);
    ck_assert_int_eq(count_fds(), base + 1);
    /* the connection goes away: what waits is closed */
    fdpass_ledger_close(&l);
    ck_assert_int_eq(count_fds(), base);
    ck_assert_int_eq(l.held, 0);
}
END_TEST

/* Issue 12, item 8: fds that arrive after their frame's first byte (a
 * 4-byte prefix, then one-byte messages with 4 fds each) belong to no
 * frame and are closed on arrival; a ledger never holds more than
 * FDPASS_HELD_MAX. */
START_TEST(test_fdpass_ledger_bounds)
{
    int base = count_fds();
    fdpass_ledger l;
    fdpass_ledger_init(&l);
    /* the frame began at 0; reads [4, 5), [5, 6) ... came after its first byte */
    for (uint64_t i = 4; i < 20; i++) {
        int four[4];
        nulls(four, 4);
        ck_assert_int_eq(fdpass_ledger_add(&l, i, i + 1, 0, four, 4), 0);
    }
    ck_assert_int_eq(count_fds(), base);
    ck_assert_int_eq(l.held, 0);
    /* frames that each begin in their own read: at most FDPASS_HELD_MAX in all */
    for (uint64_t i = 0; i < 5; i++) {
        int four[4];
        nulls(four, 4);
        fdpass_ledger_add(&l, 100 * i, 100 * i + 10, 100 * i, four, 4);
    }
    ck_assert_int_eq(l.held, FDPASS_HELD_MAX);
    ck_assert_int_eq(count_fds(), base + FDPASS_HELD_MAX);
    fdpass_ledger_close(&l);
    ck_assert_int_eq(count_fds(), base);
}
END_TEST

START_TEST(test_fdpass_ledger_full)
{
    int base = count_fds();
    fdpass_ledger l;
    fdpass_ledger_init(&l);
    for (int i = 0; i < FDPASS_GROUPS + 3; i++) {
        int fd;
        nulls(&fd, 1);
        fdpass_ledger_add(&l, (uint64_t)i, (uint64_t)(i + 1), (uint64_t)i, &fd, 1);
    }
    /* a full ledger closes what it cannot remember */
    ck_assert_int_eq(count_fds(), base + FDPASS_HELD_MAX);
    int out[FDPASS_FRAME_MAX];
    ck_assert_int_eq(fdpass_ledger_take(&l, 0, 1, out, FDPASS_FRAME_MAX), 1);
    close(out[0]);
    fdpass_ledger_close(&l);
    ck_assert_int_eq(count_fds(), base);
}
END_TEST

static int closed_calls;
static void count_close(int fd)
{
    (void)fd;
    closed_calls++;
}

/* Control bytes the kernel would never write: the parser stops instead of
 * reading past the buffer (ASan sees any over-read: the buffer is exact). */
START_TEST(test_fdpass_parse_hostile)
{
    size_t clen = CMSG_SPACE(sizeof(int) * 2);
    struct cmsghdr *c = calloc(1, clen);
    ck_assert_ptr_nonnull(c);
    struct msghdr mh = {.msg_control = c, .msg_controllen = clen};
    int fds[4];
    /* a length past the end */
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = clen + 64;
    closed_calls = 0;
    ck_assert_int_eq(fdpass_parse(&mh, fds, 4, NULL, count_close), 0);
    ck_assert_int_eq(closed_calls, 0);
    /* a length shorter than a header */
    c->cmsg_len = 2;
    ck_assert_int_eq(fdpass_parse(&mh, fds, 4, NULL, count_close), 0);
    /* well formed: two fds, one kept, one to closefn */
    c->cmsg_len = CMSG_LEN(sizeof(int) * 2);
    int two[2] = {1000, 1001};
    memcpy(CMSG_DATA(c), two, sizeof two);
    ck_assert_int_eq(fdpass_parse(&mh, fds, 1, NULL, count_close), 1);
    ck_assert_int_eq(fds[0], 1000);
    ck_assert_int_eq(closed_calls, 1);
    /* a control buffer shorter than a header */
    mh.msg_controllen = sizeof(struct cmsghdr) - 1;
    ck_assert_int_eq(fdpass_parse(&mh, fds, 4, NULL, count_close), 0);
    free(c);
}
END_TEST

Suite *fdpass_suite(void)
{
    Suite *s = suite_create("fdpass");
    TCase *tc = tcase_create("fdpass");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_fdpass_roundtrip);
    tcase_add_test(tc, test_fdpass_recv_closes_surplus);
    tcase_add_test(tc, test_fdpass_empty_read_closes);
    tcase_add_test(tc, test_fdpass_credentials);
    tcase_add_test(tc, test_fdpass_send_limits);
    tcase_add_test(tc, test_fdpass_ledger_frames);
    tcase_add_test(tc, test_fdpass_ledger_bounds);
    tcase_add_test(tc, test_fdpass_ledger_full);
    tcase_add_test(tc, test_fdpass_parse_hostile);
    suite_add_tcase(s, tc);
    return s;
}

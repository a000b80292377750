/* SPDX-License-Identifier: Apache-2.0 */
/* test_frame.c: the incremental reader (byte at a time, oversize prefix),
 * blocking frame_read/frame_write over a socketpair with fds both within and
 * beyond the caller's limit, timeouts, EOF, and no fd leaks on any path. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "testutil.h"

START_TEST(test_frame_reader_bytewise)
{
    frame_reader r;
    frame_reader_init(&r);
    size_t l1, l2, l3;
    char *f1 = frame_encode("{\"op\":\"a\"}", 10, &l1);
    char *f2 = frame_encode("", 0, &l2);
    char *f3 = frame_encode("{}", 2, &l3);
    ck_assert_uint_eq(l1, 14);
    ck_assert_uint_eq(l2, 4);
    ck_assert_int_eq(f1[3], 10);
    char all[64];
    memcpy(all, f1, l1);
    memcpy(all + l1, f2, l2);
    memcpy(all + l1 + l2, f3, l3);
    size_t total = l1 + l2 + l3;
    const char *p;
    size_t len;
    int got = 0;
    for (size_t i = 0; i < total; i++) {
        ck_assert_int_eq(frame_reader_feed(&r, all + i, 1), 0);
        int k;
        while ((k = frame_reader_next(&r, &p, &len)) == 1) {
            if (got == 0)
                ck_assert(len == 10 && memcmp(p, "{\"op\":\"a\"}", 10) == 0);
            else if (got == 1)
                ck_assert_uint_eq(len, 0);
            else
                ck_assert(len == 2 && memcmp(p, "{}", 2) == 0);
            got++;
        }
        ck_assert_int_eq(k, 0);
    }
    ck_assert_int_eq(got, 3);
    /* all at once */
    ck_assert_int_eq(frame_reader_feed(&r, all, total), 0);
    got = 0;
    while (frame_reader_next(&r, &p, &len) == 1)
        got++;
    ck_assert_int_eq(got, 3);
    free(f1);
    free(f2);
    free(f3);
    frame_reader_free(&r);
}
END_TEST

START_TEST(test_frame_reader_too_large)
{
    frame_reader r;
    frame_reader_init(&r);
    const char *p;
    size_t len;
    unsigned char max[4] = {0, 1, 0, 0}; /* exactly FRAME_MAX: allowed */
    ck_assert_int_eq(frame_reader_feed(&r, max, 4), 0);
    ck_assert_int_eq(frame_reader_next(&r, &p, &len), 0);
    char *body = calloc(1, FRAME_MAX);
    ck_assert_int_eq(frame_reader_feed(&r, body, FRAME_MAX), 0);
    ck_assert_int_eq(frame_reader_next(&r, &p, &len), 1);
    ck_assert_uint_eq(len, FRAME_MAX);
    unsigned char big[4] = {0, 1, 0, 1}; /* FRAME_MAX + 1: refused before its payload */
    ck_assert_int_eq(frame_reader_feed(&r, big, 4), 0);
    ck_assert_int_eq(frame_reader_next(&r, &p, &len), -1);
    unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
    frame_reader_free(&r);
    frame_reader_init(&r);
    ck_assert_int_eq(frame_reader_feed(&r, huge, 4), 0);
    ck_assert_int_eq(frame_reader_next(&r, &p, &len), -1);
    frame_reader_free(&r);
    size_t ol;
    ck_assert_ptr_null(frame_encode(body, FRAME_MAX + 1, &ol));
    free(body);
}
END_TEST

START_TEST(test_frame_rw_with_fds)
{
    int base = tu_count_fds(getpid());
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int send_fds[3] = {p[0], p[1], p[0]};
    ck_assert_int_eq(frame_write(sp[0], "{\"a\":1}", 7, send_fds, 3), 0);
    ck_assert_int_eq(frame_write(sp[0], "{\"b\":2}", 7, NULL, 0), 0);
    int fds[4];
    int nfds = -1;
    char *pl;
    size_t len;
    /* the caller takes at most 2: the third is closed, not leaked */
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 2, 1000), 0);
    ck_assert_str_eq(pl, "{\"a\":1}");
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(nfds, 2);
    ck_assert(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);
    /* the received pipe works */
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    char ch;
    ck_assert_int_eq(read(fds[0], &ch, 1), 1);
    close(fds[0]);
    close(fds[1]);
    free(pl);
    /* fds belong to their frame: the second frame has none */
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 4, 1000), 0);
    ck_assert_str_eq(pl, "{\"b\":2}");
    ck_assert_int_eq(nfds, 0);
    free(pl);
    /* json helpers; fds with a caller that takes none are closed */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", 5);
    ck_assert_int_eq(frame_write_json(sp[0], o, send_fds, 1), 0);
    cJSON_Delete(o);
    ck_assert_int_eq(frame_read_json(sp[1], &o, NULL, NULL, 0, 1000), 0);
    ck_assert_int_eq(cJSON_GetObjectItem(o, "n")->valueint, 5);
    cJSON_Delete(o);
    /* not an object: EBADMSG, the fd closed */
    ck_assert_int_eq(frame_write(sp[0], "[1]", 3, send_fds, 1), 0);
    ck_assert_int_eq(frame_read_json(sp[1], &o, fds, &nfds, 4, 1000), -1);
    ck_assert_int_eq(errno, EBADMSG);
    ck_assert_int_eq(nfds, 0);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    ck_assert_int_eq(tu_count_fds(getpid()), base);
}
END_TEST

START_TEST(test_frame_read_errors)
{
    int base = tu_count_fds(getpid());
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    char *pl = (char *)1;
    size_t len;
    int fds[4], nfds;
    /* nothing arrives: ETIMEDOUT */
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 4, 50), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_ptr_null(pl);
    /* half a frame then silence: ETIMEDOUT too, fd sent with it closed */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    unsigned char hdr[6] = {0, 0, 0, 10, '{', '}'};
    struct iovec iov = {hdr, sizeof hdr};
    ck_assert_int_eq(fdpass_send(sp[0], &iov, 1, 0, &p[0], 1), 6);
    close(p[0]);
    close(p[1]);
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 4, 50), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    ck_assert_int_eq(nfds, 0);
    /* the rest never comes: the peer is gone */
    close(sp[0]);
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 4, 1000), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    close(sp[1]);
    /* a 4 GiB announcement: EMSGSIZE without reading further */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(write(sp[0], huge, 4), 4);
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 4, 1000), -1);
    ck_assert_int_eq(errno, EMSGSIZE);
    /* writer limits */
    char *body = calloc(1, FRAME_MAX + 1);
    ck_assert_int_eq(frame_write(sp[0], body, FRAME_MAX + 1, NULL, 0), -1);
    ck_assert_int_eq(errno, EMSGSIZE);
    int five[5] = {0, 0, 0, 0, 0};
    ck_assert_int_eq(frame_write(sp[0], "{}", 2, five, 5), -1);
    ck_assert_int_eq(errno, EINVAL);
    free(body);
    close(sp[0]);
    close(sp[1]);
    ck_assert_int_eq(tu_count_fds(getpid()), base);
}
END_TEST

/* A frame bigger than the socket buffer: partial writes and reads. */
START_TEST(test_frame_large_nonblocking)
{
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp), 0);
    int sz = 4096;
    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    char *body = malloc(FRAME_MAX);
    for (size_t i = 0; i < FRAME_MAX; i++)
        body[i] = (char)('a' + i % 26);
    if (pid == 0) {
        close(sp[1]);
        int rc = frame_write(sp[0], body, FRAME_MAX, &sp[0], 1) == 0 ? 0 : 1;
        free(body); /* no leak for valgrind to report at _exit */
        _exit(rc);
    }
    close(sp[0]);
    char *pl;
    size_t len;
    int fds[1], nfds;
    ck_assert_int_eq(frame_read(sp[1], &pl, &len, fds, &nfds, 1, 5000), 0);
    ck_assert_uint_eq(len, FRAME_MAX);
    ck_assert(memcmp(pl, body, FRAME_MAX) == 0);
    ck_assert_int_eq(nfds, 1);
    close(fds[0]);
    free(pl);
    free(body);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(sp[1]);
}
END_TEST

Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_frame_reader_bytewise);
    tcase_add_test(tc, test_frame_reader_too_large);
    tcase_add_test(tc, test_frame_rw_with_fds);
    tcase_add_test(tc, test_frame_read_errors);
    tcase_add_test(tc, test_frame_large_nonblocking);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_fdpass.c: common/fdpass.c, on which "every fd is accounted for"
 * rests, two ways chosen by the first byte.
 *
 * Parser: the rest of the input is a control buffer, copied into an
 * allocation of exactly its size (so ASan sees a read one byte past it),
 * walked by fdpass_parse with a close function that only counts.  Checks:
 * it keeps at most what it was given room for, and every value it keeps or
 * closes is an int of the buffer (kept + closed never exceed what fits).
 *
 * Stream: the input is a script over a real socketpair: send N bytes with
 * up to 40 fds, receive into any room (0..7 fds), record each read in a
 * ledger, take frames of any length with any room.  Checks: a receive or a
 * take never returns more than its room, every fd handed over is open and
 * close-on-exec, and after the ledger and the socket are closed this
 * process has exactly the fds it had before the input. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdpass.h"
#include "fuzz_util.h"

static size_t closed;
static void count_close(int fd)
{
    (void)fd;
    closed++;
}

static void fuzz_parse(const uint8_t *data, size_t size)
{
    void *ctl = malloc(size ? size : 1);
    if (!ctl)
        return;
    memcpy(ctl, data, size);
    struct msghdr mh = {.msg_control = ctl, .msg_controllen = size};
    int fds[8];
    int room = size ? data[0] % 9 : 0;
    pid_t pid;
    closed = 0;
    int kept = fdpass_parse(&mh, fds, room, &pid, count_close);
    if (kept < 0 || kept > room || (size_t)kept + closed > size / sizeof(int))
        abort();
    free(ctl);
}

static void check_fd(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || !(fl & FD_CLOEXEC))
        abort();
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
    int before = fz_count_fds();
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        abort();
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null < 0)
        abort();
    int many[40];
    for (int i = 0; i < 40; i++)
        many[i] = null;
    fdpass_ledger l;
    fdpass_ledger_init(&l);
    uint64_t rx = 0, consumed = 0;
    char buf[256];
    memset(buf, 'x', sizeof buf);
    for (size_t i = 0; i + 2 < size; i += 3) {
        uint8_t op = data[i], a = data[i + 1], b = data[i + 2];
        if (op % 3 == 0) {
            struct iovec iov = {buf, 1 + a % 64u};
            if (fdpass_send(sp[0], &iov, 1, MSG_DONTWAIT, many, b % 41) < 0 && errno != EAGAIN &&
                errno != EWOULDBLOCK && errno != ETOOMANYREFS)
                abort();
        } else if (op % 3 == 1) {
            int fds[8], n = -1, room = a % 8;
            ssize_t r = fdpass_recv(sp[1], buf, 1 + b % 128u, MSG_DONTWAIT, fds, room, &n, NULL);
            if (n < 0 || n > room || (r <= 0 && n != 0))
                abort();
            for (int k = 0; k < n; k++)
                check_fd(fds[k]);
            if (r > 0) {
                /* the frame holding the read's last byte began at some
                 * point the input picks: inside this read, or before it */
                uint64_t begin = rx, fstart = a & 1 ? begin + (uint64_t)(b % (unsigned)r) : begin - (b % 3u < begin ? b % 3u : 0);
                rx += (uint64_t)r;
                int kept = fdpass_ledger_add(&l, begin, rx, fstart, fds, n);
                if (kept < 0 || kept > n || kept > FDPASS_FRAME_MAX || l.held > FDPASS_HELD_MAX)
                    abort();
            }
        } else {
            uint64_t end = consumed + a % 64u;
            if (end > rx)
                end = rx;
            int out[FDPASS_FRAME_MAX], room = b % (FDPASS_FRAME_MAX + 1);
            int n = fdpass_ledger_take(&l, consumed, end, out, room);
            if (n < 0 || n > room)
                abort();
            for (int k = 0; k < n; k++)
                check_fd(out[k]);
            fdpass_close_all(out, n);
            consumed = end;
        }
    }
    fdpass_ledger_close(&l);
    close(sp[0]);
    int n;
    while (fdpass_recv(sp[1], buf, sizeof buf, MSG_DONTWAIT, NULL, 0, &n, NULL) > 0)
        ;
    close(sp[1]);
    close(null);
    fz_check_fds(before, "a stream input");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        fuzz_stream(data + 1, size - 1);
    else
        fuzz_parse(data + 1, size - 1);
    return 0;
}

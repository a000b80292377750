/* SPDX-License-Identifier: Apache-2.0 */
/* frame.c: length-prefixed JSON frames, for event loops and blocking clients.
 *
 * The incremental reader keeps one buffer and a read offset; consumed bytes
 * are dropped only when more bytes are fed, so a payload pointer stays valid
 * until the next call.  A length prefix over FRAME_MAX is reported at once
 * (before its payload arrives): the stream has no way to resynchronise.
 *
 * The blocking frame_read reads exactly one frame (header, then payload) and
 * never a byte more, so any fds the kernel delivers during those reads belong
 * to that frame: a sender attaches them to the frame's first byte, and a
 * stream read never crosses into a message that carries fds.  Every fd that
 * arrives is either handed to the caller or closed, on every path, error
 * paths included: a client must not be able to exhaust our fd table. */
#include "frame.h"
#include "fdpass.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* an idle reader keeps at most this much buffer: a server holds one reader
 * per connection, and a thousand idle peers must not each pin a burst's
 * worth of memory */
#define FRAME_READER_KEEP 65536

void frame_reader_init(frame_reader *r) { memset(r, 0, sizeof *r); }

void frame_reader_free(frame_reader *r)
{
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int frame_reader_feed(frame_reader *r, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (r->off > 0) {
        memmove(r->buf, r->buf + r->off, r->len - r->off);
        r->len -= r->off;
        r->off = 0;
    }
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n)
            cap *= 2;
        char *nb = realloc(r->buf, cap);
        if (!nb)
            return -1;
        r->buf = nb;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    return 0;
}

int frame_reader_next(frame_reader *r, const char **payload, size_t *len)
{
    size_t avail = r->len - r->off;
    if (avail < 4) {
        if (avail == 0 && r->cap > FRAME_READER_KEEP) {
            /* a burst grew the buffer: give the memory back when idle */
            free(r->buf);
            r->buf = NULL;
            r->cap = r->len = r->off = 0;
        }
        return 0;
    }
    const unsigned char *p = (const unsigned char *)r->buf + r->off;
    uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if (n > FRAME_MAX)
        return -1;
    if (avail < 4 + (size_t)n)
        return 0;
    *payload = r->buf + r->off + 4;
    *len = n;
    r->off += 4 + (size_t)n;
    if (r->off == r->len && r->cap <= FRAME_READER_KEEP) {
        /* all consumed: the next feed needs no memmove (payload stays valid:
         * the bytes are not touched until then) */
        r->off = r->len = 0;
    }
    return 1;
}

uint64_t frame_reader_tail_start(const frame_reader *r, uint64_t consumed, uint64_t *scan)
{
    uint64_t total = consumed + (r->len - r->off);
    if (*scan < consumed)
        *scan = consumed; /* frames given out since: consumed is a frame start */
    while (*scan + 4 <= total) {
        const unsigned char *h = (const unsigned char *)r->buf + r->off + (*scan - consumed);
        uint64_t end = *scan + 4 + (((uint64_t)h[0] << 24) | ((uint64_t)h[1] << 16) | ((uint64_t)h[2] << 8) | h[3]);
        if (end >= total)
            break; /* this frame holds the last byte */
        *scan = end;
    }
    return *scan;
}

static void frame_put_len(char *p, uint32_t n)
{
    p[0] = (char)(n >> 24);
    p[1] = (char)(n >> 16);
    p[2] = (char)(n >> 8);
    p[3] = (char)n;
}

char *frame_encode(const char *payload, size_t len, size_t *outlen)
{
    if (len > FRAME_MAX) {
        errno = EMSGSIZE;
        return NULL;
    }
    char *b = malloc(4 + len);
    if (!b)
        return NULL;
    frame_put_len(b, (uint32_t)len);
    if (len)
        memcpy(b + 4, payload, len);
    *outlen = 4 + len;
    return b;
}

/* ------------------------------------------------------------ blocking I/O */

static long long frame_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (-1: forever); 0, or -1/ETIMEDOUT. */
static int frame_wait(int fd, short events, long long deadline)
{
    for (;;) {
        int t = -1;
        if (deadline >= 0) {
            long long left = deadline - frame_now_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            t = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int r = poll(&pfd, 1, t);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r > 0)
            return 0; /* ready, or an error the next call will report */
    }
}

int frame_write(int fd, const char *payload, size_t len, const int *fds, int nfds)
{
    if (len > FRAME_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (nfds < 0 || nfds > FRAME_MAX_FDS || (nfds > 0 && !fds)) {
        errno = EINVAL;
        return -1;
    }
    char hdr[4];
    frame_put_len(hdr, (uint32_t)len);
    size_t total = 4 + len, sent = 0;
    bool is_sock = true;
    while (sent < total) {
        struct iovec iov[2];
        int niov = 0;
        if (sent < 4) {
            iov[niov++] = (struct iovec){.iov_base = hdr + sent, .iov_len = 4 - sent};
            if (len)
                iov[niov++] = (struct iovec){.iov_base = (void *)payload, .iov_len = len};
        } else {
            iov[niov++] = (struct iovec){.iov_base = (void *)(payload + (sent - 4)),
                                         .iov_len = total - sent};
        }
        ssize_t n;
        if (is_sock) {
            n = fdpass_send(fd, iov, niov, 0, fds, sent == 0 ? nfds : 0);
            if (n < 0 && errno == ENOTSOCK && nfds == 0) {
                is_sock = false;
                continue;
            }
        } else {
            n = writev(fd, iov, niov);
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (frame_wait(fd, POLLOUT, -1) < 0)
                    return -1;
                continue;
            }
            return -1;
        }
        sent += (size_t)n;
    }
    return 0;
}

/* Accumulates the fds of one frame: keeps up to max, closes the rest. */
typedef struct frame_fdacc {
    int *fds;
    int n, max;
} frame_fdacc;

static void frame_fdacc_close(frame_fdacc *a)
{
    fdpass_close_all(a->fds, a->n);
    a->n = 0;
}

/* Read exactly n bytes (collecting fds) before deadline; 0 or -1/errno. */
static int frame_read_exact(int fd, char *buf, size_t n, long long deadline, frame_fdacc *a,
                            bool *is_sock)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r;
        if (*is_sock) {
            int k = 0;
            r = fdpass_recv(fd, buf + got, n - got, MSG_DONTWAIT, a->fds ? a->fds + a->n : NULL,
                            a->max - a->n, &k, NULL);
            if (r >= 0)
                a->n += k;
            else if (errno == ENOTSOCK) {
                *is_sock = false;
                continue;
            }
        } else {
            r = read(fd, buf + got, n - got);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (frame_wait(fd, POLLIN, deadline) < 0)
                    return -1;
                continue;
            }
            return -1;
        }
        if (r == 0) {
            errno = ECONNRESET;
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int frame_read(int fd, char **payload, size_t *len, int *fds, int *nfds, int maxfds, int timeout_ms)
{
    long long deadline = timeout_ms < 0 ? -1 : frame_now_ms() + timeout_ms;
    frame_fdacc a = {.fds = fds, .n = 0, .max = fds ? maxfds : 0};
    bool is_sock = true;
    unsigned char hdr[4];
    char *p = NULL;
    int e;
    if (nfds)
        *nfds = 0;
    *payload = NULL;
    if (frame_read_exact(fd, (char *)hdr, 4, deadline, &a, &is_sock) < 0)
        goto fail;
    uint32_t n = ((uint32_t)hdr[0] << 24) | ((uint32_t)hdr[1] << 16) | ((uint32_t)hdr[2] << 8) | hdr[3];
    if (n > FRAME_MAX) {
        errno = EMSGSIZE;
        goto fail;
    }
    p = malloc((size_t)n + 1);
    if (!p)
        goto fail;
    if (frame_read_exact(fd, p, n, deadline, &a, &is_sock) < 0)
        goto fail;
    p[n] = '\0';
    *payload = p;
    if (len)
        *len = n;
    if (nfds)
        *nfds = a.n;
    else
        frame_fdacc_close(&a);
    return 0;
fail:
    e = errno;
    free(p);
    frame_fdacc_close(&a);
    errno = e;
    return -1;
}

int frame_write_json(int fd, const cJSON *obj, const int *fds, int nfds)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    int r = frame_write(fd, s, strlen(s), fds, nfds);
    int e = errno;
    cJSON_free(s);
    errno = e;
    return r;
}

int frame_read_json(int fd, cJSON **obj, int *fds, int *nfds, int maxfds, int timeout_ms)
{
    char *p;
    size_t len;
    int n = 0;
    *obj = NULL;
    if (nfds)
        *nfds = 0;
    if (frame_read(fd, &p, &len, fds, &n, maxfds, timeout_ms) < 0)
        return -1;
    cJSON *j = cJSON_ParseWithLength(p, len);
    free(p);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        fdpass_close_all(fds, n);
        errno = EBADMSG;
        return -1;
    }
    *obj = j;
    if (nfds)
        *nfds = n;
    else
        fdpass_close_all(fds, n);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* fdpass.c: SCM_RIGHTS messages built, parsed and accounted for in one place
 * (see fdpass.h for the stream rule).
 *
 * Parsing trusts nothing about the control bytes: a header's length must
 * cover a header and end inside the buffer the kernel filled (msg_controllen),
 * and fds are copied out with memcpy, since CMSG_DATA need not be aligned
 * for an int.  The kernel never hands us anything else, but the parser is
 * what the fuzzer (tests/fuzz/fuzz_fdpass.c) feeds arbitrary bytes to, and
 * the same code serves both.
 *
 * Receiving always makes room for FDPASS_RECV_ROOM fds plus a credentials
 * record: room for fewer would make the kernel drop the surplus
 * (MSG_CTRUNC) where no one sees it; with room, fdpass_recv closes what the
 * caller does not keep, on purpose and in one place. */
#include "fdpass.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * FDPASS_SEND_MAX)];
} fdpass_sendbuf;

typedef union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * FDPASS_RECV_ROOM)];
} fdpass_recvbuf;

void fdpass_close_all(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void fdpass_close1(int fd) { close(fd); }

ssize_t fdpass_send(int sock, const struct iovec *iov, int niov, int flags, const int *fds,
                    int nfds)
{
    if (nfds < 0 || nfds > FDPASS_SEND_MAX || (nfds > 0 && !fds) || niov < 0) {
        errno = EINVAL;
        return -1;
    }
    ssize_t n;
    if (nfds == 0 && niov == 1) {
        /* one buffer and no fds (say, a batch of replies sharing a
         * segment): send(2), where sendmsg(2) first copies in a msghdr and
         * an iovec array, a measurable part of a small message's system
         * call (docs/performance.md) */
        do
            n = send(sock, iov[0].iov_base, iov[0].iov_len, flags | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n;
    }
    fdpass_sendbuf cb;
    struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)niov};
    if (nfds > 0) {
        size_t sz = sizeof(int) * (size_t)nfds;
        memset(cb.buf, 0, CMSG_SPACE(sz)); /* no uninitialised padding reaches the kernel */
        mh.msg_control = cb.buf;
        mh.msg_controllen = CMSG_SPACE(sz);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sz);
        memcpy(CMSG_DATA(c), fds, sz);
    }
    do
        n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

int fdpass_parse(const struct msghdr *mh, int *fds, int maxfds, pid_t *pid,
                 void (*closefn)(int fd))
{
    int kept = 0;
    if (pid)
        *pid = 0;
    if (!mh->msg_control)
        return 0;
    const char *lim = (const char *)mh->msg_control + mh->msg_controllen;
    /* CMSG_NXTHDR reads its argument through a non-const pointer only */
    struct msghdr *m = (struct msghdr *)mh;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_len < CMSG_LEN(0) || c->cmsg_len > (size_t)(lim - (const char *)c))
            break; /* a length the kernel would never write: stop before reading past it */
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        const unsigned char *data = CMSG_DATA(c);
        size_t dlen = c->cmsg_len - CMSG_LEN(0);
        if (c->cmsg_type == SCM_CREDENTIALS && dlen >= sizeof(struct ucred)) {
            struct ucred uc;
            memcpy(&uc, data, sizeof uc);
            if (pid)
                *pid = uc.pid;
        } else if (c->cmsg_type == SCM_RIGHTS) {
            for (size_t i = 0; i < dlen / sizeof(int); i++) {
                int fd;
                memcpy(&fd, data + i * sizeof(int), sizeof fd);
                if (fds && kept < maxfds)
                    fds[kept++] = fd;
                else
                    closefn(fd);
            }
        }
    }
    return kept;
}

ssize_t fdpass_recv(int sock, void *buf, size_t len, int flags, int *fds, int maxfds, int *nfds,
                    pid_t *pid)
{
    fdpass_recvbuf cb;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr mh;
    ssize_t n;
    if (nfds)
        *nfds = 0;
    do {
        mh = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cb.buf, .msg_controllen = sizeof cb.buf};
        n = recvmsg(sock, &mh, flags | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (pid)
            *pid = 0;
        return -1;
    }
    int kept = fdpass_parse(&mh, n > 0 ? fds : NULL, maxfds, pid, fdpass_close1);
    if (nfds)
        *nfds = kept;
    return n;
}

/* ------------------------------------------------------------ the ledger */

void fdpass_ledger_init(fdpass_ledger *l)
{
    l->ngrp = 0;
    l->held = 0;
}

int fdpass_ledger_add(fdpass_ledger *l, uint64_t begin, uint64_t end, uint64_t frame_start, const int *fds,
                      int nfds)
{
    int keep = 0;
    if (nfds > 0 && frame_start >= begin && frame_start < end && l->ngrp < FDPASS_GROUPS) {
        int room = FDPASS_HELD_MAX - l->held;
        int want = nfds < FDPASS_FRAME_MAX ? nfds : FDPASS_FRAME_MAX;
        if (want > room)
            want = room > 0 ? room : 0;
        if (want > 0) {
            l->grp[l->ngrp].end = end;
            l->grp[l->ngrp].n = 0;
            for (; keep < want; keep++)
                l->grp[l->ngrp].fds[l->grp[l->ngrp].n++] = fds[keep];
            l->ngrp++;
            l->held += keep;
        }
    }
    fdpass_close_all(fds + keep, nfds - keep);
    return keep;
}

int fdpass_ledger_take(fdpass_ledger *l, uint64_t start, uint64_t end, int *fds, int max)
{
    int n = 0, used = 0;
    for (; used < l->ngrp && l->grp[used].end <= end; used++) {
        for (int i = 0; i < l->grp[used].n; i++) {
            int fd = l->grp[used].fds[i];
            if (l->grp[used].end > start && n < max)
                fds[n++] = fd;
            else
                close(fd); /* over the limit, or no frame of its own */
        }
    }
    for (int g = 0; g < used; g++)
        l->held -= l->grp[g].n;
    if (used) {
        memmove(l->grp, l->grp + used, sizeof l->grp[0] * (size_t)(l->ngrp - used));
        l->ngrp -= used;
    }
    return n;
}

void fdpass_ledger_close(fdpass_ledger *l)
{
    for (int g = 0; g < l->ngrp; g++)
        fdpass_close_all(l->grp[g].fds, l->grp[g].n);
    l->ngrp = 0;
    l->held = 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* fdpass.h: file descriptors over Unix sockets (SCM_RIGHTS), in one place.
 *
 * Every program and the library send and receive fds only through these
 * functions, so "every fd that arrives is handed to a caller or closed" is
 * argued once, here: fdpass_recv closes what does not fit, and the ledger
 * closes what belongs to no frame or is never taken.
 *
 * Stream rule (the ledger).  A sender attaches a frame's fds to that frame's
 * first byte, and the kernel ends a stream read right after the message that
 * carried fds, so the fds of one read belong to the frame holding that
 * read's last byte, and that frame must have begun within the read (its
 * first byte came with it).  A reader that decodes frames from a buffer
 * records each read with fds as a group {stream offset just past the read,
 * fds}; when it decodes the frame [start, end), fdpass_ledger_take gives it
 * the groups that end inside the frame and closes those that ended before it.
 *
 * Bounds (issue 12: a peer sending 4-byte frame prefixes, then one-byte
 * messages with 4 fds each, pinned 27 fds per connection).  fds that came
 * with a read in which their frame did not begin cannot belong to any frame
 * and are closed on arrival; a frame keeps at most FDPASS_FRAME_MAX; a
 * ledger (one per connection) holds at most FDPASS_HELD_MAX in all. */
#ifndef ETSMGR_FDPASS_H
#define ETSMGR_FDPASS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define FDPASS_FRAME_MAX 4   /* fds accepted with one frame (FRAME_MAX_FDS) */
#define FDPASS_RECV_ROOM 32  /* fds one recvmsg makes room for; the kernel closes any beyond */
#define FDPASS_SEND_MAX 253  /* Linux's SCM_MAX_FD */
#define FDPASS_GROUPS 8      /* reads with fds a ledger remembers */
#define FDPASS_HELD_MAX 8    /* fds one ledger (connection) holds at most */

/* One sendmsg of iov with fds attached (nfds 0..FDPASS_SEND_MAX; 0: none;
 * one buffer without fds goes by send, which costs less).  MSG_NOSIGNAL
 * is always added to flags (a gone peer is EPIPE, not a signal); EINTR is
 * retried.  Bytes sent, or -1/errno (EINVAL for a bad
 * nfds).  The caller keeps its fds: the kernel installs copies. */
ssize_t fdpass_send(int sock, const struct iovec *iov, int niov, int flags, const int *fds,
                    int nfds);

/* One recvmsg of at most len bytes (flags | MSG_CMSG_CLOEXEC; EINTR retried).
 * Of the fds that came with it, the first maxfds go to fds (*nfds of them)
 * and the rest are closed; all are closed when fds is NULL or nothing was
 * read (0: end of stream, or an empty datagram).  pid, when not NULL, gets
 * the sender's SCM_CREDENTIALS pid (0 when none came; the socket needs
 * SO_PASSCRED).  Bytes read, or -1/errno with no fd received. */
ssize_t fdpass_recv(int sock, void *buf, size_t len, int flags, int *fds, int maxfds, int *nfds,
                    pid_t *pid);

/* The parsing half of fdpass_recv, for the fuzzer: walks control bytes as
 * the kernel left them in a msghdr, keeps up to maxfds fds, passes every
 * other fd to closefn.  Returns the number kept. */
struct msghdr;
int fdpass_parse(const struct msghdr *mh, int *fds, int maxfds, pid_t *pid,
                 void (*closefn)(int fd));

void fdpass_close_all(const int *fds, int n);

/* fds received on a stream, waiting for the frame they belong to */
typedef struct fdpass_ledger {
    struct {
        uint64_t end; /* stream offset just past the read that brought them */
        int n;
        int fds[FDPASS_FRAME_MAX];
    } grp[FDPASS_GROUPS];
    int ngrp;
    int held; /* fds in the groups */
} fdpass_ledger;

void fdpass_ledger_init(fdpass_ledger *l);
/* Records the fds of a read of the stream bytes [begin, end) whose last
 * byte lies in the frame that begins at frame_start (see
 * frame_reader_tail_start).  When frame_start < begin the fds came after
 * their frame's first byte: all are closed.  Otherwise up to
 * FDPASS_FRAME_MAX are kept while the ledger holds fewer than
 * FDPASS_HELD_MAX and has a free group, the rest closed.  Returns how many
 * were kept. */
int fdpass_ledger_add(fdpass_ledger *l, uint64_t begin, uint64_t end, uint64_t frame_start, const int *fds,
                      int nfds);
/* The frame [start, end) takes the fds of the groups that end inside it (up
 * to max into fds; returns how many); groups that ended at or before start
 * belong to no frame and are closed, as are fds beyond max. */
int fdpass_ledger_take(fdpass_ledger *l, uint64_t start, uint64_t end, int *fds, int max);
/* Closes every fd still waiting (a connection that goes away). */
void fdpass_ledger_close(fdpass_ledger *l);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* uring.h: the least of io_uring that conn.c needs to hand a loop turn's
 * socket sends (and receives) to the kernel in one system call: a ring set
 * up with raw system calls (<linux/io_uring.h>, no liburing), non-blocking
 * send and recv, submitted together and reaped at once.  Every operation
 * carries MSG_DONTWAIT, so the kernel finishes it (or fails it, EAGAIN
 * included) inside the submitting call: nothing is ever left in flight
 * between two calls of uring_run, and the ring needs no poll of its own.
 * uring.c's opening comment says why and what the fallback is. */
#ifndef ETSMGR_URING_H
#define ETSMGR_URING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct uring uring;

/* A ring of at least entries operations, or NULL with errno (ENOSYS: no
 * io_uring in this kernel; EPERM: refused by a seccomp filter or by
 * kernel.io_uring_disabled; EINVAL: too old for the flags it needs). */
uring *uring_open(unsigned entries);
void uring_close(uring *r);
/* Queue a send or recv of len bytes at buf on the socket fd (MSG_DONTWAIT
 * and, for sends, MSG_NOSIGNAL are added); tag comes back with its result.
 * At most the entries given to uring_open between two uring_run. */
void uring_send(uring *r, int fd, const void *buf, size_t len, uint64_t tag);
void uring_recv(uring *r, int fd, void *buf, size_t len, uint64_t tag);
/* Submit what is queued and wait until each has completed: 0, or -1 with
 * errno (the ring is then unusable: uring_close it and use system calls;
 * what the kernel took before the failure still gives its result below,
 * the rest was taken back off the ring and not done: redo each operation
 * that has no result).  Then uring_result gives each result once, in any
 * order: its tag and what send(2) or recv(2) would have returned, as
 * -errno on failure. */
int uring_run(uring *r);
bool uring_result(uring *r, uint64_t *tag, int32_t *res);
#endif

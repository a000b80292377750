/* SPDX-License-Identifier: Apache-2.0 */
/* uring.c: a minimal io_uring for conn.c's batches of socket I/O.
 *
 * Why: at 50 connections with a request in flight on each, etscounterd
 * makes one recv and one send a request, and on this VM a system call's
 * entry and exit alone cost about 165 ns (a null syscall); the turn's
 * sends and receives are known together (libuv's epoll reported them), so
 * each batch can go to the kernel in one io_uring_enter instead of one
 * system call each (docs/performance.md, "The 50-connection rows: a turn's
 * I/O in one system call").  liburing is not a dependency of the project:
 * the ring is set up and driven with the raw system calls, which is all a
 * submit-everything-then-reap-everything user needs.
 *
 * Nothing stays in flight.  Each operation carries MSG_DONTWAIT, which
 * io_uring turns into "complete it now or fail it with EAGAIN" (it never
 * arms its own poll for such a request), so every operation is finished by
 * the io_uring_enter that submits it, which also waits for all of them.
 * So the ring has no fd to watch, a connection can be closed between two
 * batches without a cancel, and libuv remains the event loop.
 *
 * Flags: SUBMIT_ALL (Linux 5.18: one bad request does not stop the
 * batch's others) is required; COOP_TASKRUN, SINGLE_ISSUER and
 * DEFER_TASKRUN (6.1) make completions cheaper and are dropped on a kernel
 * without them.  When io_uring_setup fails (ENOSYS, EPERM from a seccomp
 * filter or kernel.io_uring_disabled, EINVAL on an old kernel) the caller
 * goes on with ordinary system calls; when io_uring_enter fails later
 * (say, the ring is used from a forked child: SINGLE_ISSUER), uring_run
 * says so, the unsubmitted requests are taken back off the ring, and the
 * caller redoes the requests that got no result with system calls. */
#include "uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

struct uring {
    int fd;
    unsigned *sq_head, *sq_tail, sq_mask, sq_entries;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *sq_map, *sqe_map;
    size_t sq_map_len, sqe_map_len;
    unsigned queued; /* written to the ring since the last uring_run */
    unsigned tail;   /* our copy of *sq_tail */
};

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
    return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, unsigned submit, unsigned wait, unsigned flags)
{
    return (int)syscall(__NR_io_uring_enter, fd, submit, wait, flags, NULL, 0);
}

uring *uring_open(unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER |
            IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SUBMIT_ALL,
    };
    struct io_uring_params p;
    int fd = -1;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && fd < 0; i++) {
        memset(&p, 0, sizeof p);
        p.flags = tries[i];
        fd = sys_setup(entries, &p);
        if (fd < 0 && errno != EINVAL)
            return NULL; /* ENOSYS, EPERM, ENOMEM ...: no ring whatever the flags */
    }
    if (fd < 0)
        return NULL;
    /* one mapping for both rings (5.4) and no dropped completion (5.5):
     * every kernel with SUBMIT_ALL has them, but say so rather than assume */
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_NODROP)) {
        close(fd);
        errno = EINVAL;
        return NULL;
    }
    uring *r = calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    r->fd = fd;
    size_t sl = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cl = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    r->sq_map_len = sl > cl ? sl : cl;
    r->sqe_map_len = p.sq_entries * sizeof(struct io_uring_sqe);
    r->sq_map =
        mmap(NULL, r->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    r->sqe_map =
        mmap(NULL, r->sqe_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (r->sq_map == MAP_FAILED || r->sqe_map == MAP_FAILED) {
        int e = errno;
        if (r->sq_map == MAP_FAILED)
            r->sq_map = NULL;
        if (r->sqe_map == MAP_FAILED)
            r->sqe_map = NULL;
        uring_close(r);
        errno = e;
        return NULL;
    }
    char *q = r->sq_map;
    r->sq_head = (unsigned *)(q + p.sq_off.head);
    r->sq_tail = (unsigned *)(q + p.sq_off.tail);
    r->sq_mask = *(unsigned *)(q + p.sq_off.ring_mask);
    r->sq_entries = p.sq_entries;
    r->cq_head = (unsigned *)(q + p.cq_off.head);
    r->cq_tail = (unsigned *)(q + p.cq_off.tail);
    r->cq_mask = *(unsigned *)(q + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(q + p.cq_off.cqes);
    r->sqes = r->sqe_map;
    /* the indirection array, identity once and for all: slot i is sqes[i] */
    unsigned *array = (unsigned *)(q + p.sq_off.array);
    for (unsigned i = 0; i < p.sq_entries; i++)
        array[i] = i;
    r->tail = *r->sq_tail;
    return r;
}

void uring_close(uring *r)
{
    if (!r)
        return;
    if (r->sqe_map)
        munmap(r->sqe_map, r->sqe_map_len);
    if (r->sq_map)
        munmap(r->sq_map, r->sq_map_len);
    close(r->fd);
    free(r);
}

static void uring_queue(uring *r, uint8_t op, int fd, void *buf, size_t len, int flags, uint64_t tag)
{
    struct io_uring_sqe *e = &r->sqes[r->tail & r->sq_mask];
    memset(e, 0, sizeof *e);
    e->opcode = op;
    e->fd = fd;
    e->addr = (uint64_t)(uintptr_t)buf;
    e->len = len > 0x7fffffff ? 0x7fffffff : (unsigned)len;
    e->msg_flags = (unsigned)flags;
    e->user_data = tag;
    r->tail++;
    r->queued++;
}

void uring_send(uring *r, int fd, const void *buf, size_t len, uint64_t tag)
{
    uring_queue(r, IORING_OP_SEND, fd, (void *)buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, tag);
}

void uring_recv(uring *r, int fd, void *buf, size_t len, uint64_t tag)
{
    uring_queue(r, IORING_OP_RECV, fd, buf, len, MSG_DONTWAIT, tag);
}

static unsigned uring_ready(const uring *r)
{
    return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) - *r->cq_head;
}

int uring_run(uring *r)
{
    unsigned want = r->queued, done = 0;
    r->queued = 0;
    if (!want)
        return 0;
    __atomic_store_n(r->sq_tail, r->tail, __ATOMIC_RELEASE);
    int err = 0;
    /* usually once: submits all, and all complete inside the call */
    while (done < want) {
        int k = sys_enter(r->fd, want - done, want - done, IORING_ENTER_GETEVENTS);
        if (k < 0 && errno == EINTR)
            continue; /* nothing was submitted by this call */
        if (k <= 0) {
            err = k < 0 ? errno : EAGAIN;
            break;
        }
        done += (unsigned)k;
    }
    if (err) {
        /* take what the kernel did not consume back off the ring (it reads
         * the tail only inside io_uring_enter) */
        unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
        r->tail = head;
        __atomic_store_n(r->sq_tail, head, __ATOMIC_RELEASE);
    }
    /* what was submitted completes inside its submitting call (MSG_DONTWAIT);
     * should a completion still be missing, wait for it */
    while (uring_ready(r) < done) {
        int k = sys_enter(r->fd, 0, done - uring_ready(r), IORING_ENTER_GETEVENTS);
        if (k < 0 && errno != EINTR) {
            if (!err)
                err = errno;
            break;
        }
    }
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

bool uring_result(uring *r, uint64_t *tag, int32_t *res)
{
    unsigned h = *r->cq_head;
    if (h == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE))
        return false;
    const struct io_uring_cqe *c = &r->cqes[h & r->cq_mask];
    *tag = c->user_data;
    *res = c->res;
    __atomic_store_n(r->cq_head, h + 1, __ATOMIC_RELEASE);
    return true;
}

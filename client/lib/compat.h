/* SPDX-License-Identifier: Apache-2.0 */
/* compat.h: the one place libetsmgr looks inside a libc structure.  Fenced
 * here, with a fallback, so a libc that differs costs speed or a shortcut,
 * never correctness.
 *
 * The lock word of a pthread mutex.  glibc keeps it in m->__data.__lock:
 * 0 when free; for the robust process-shared mutexes of the tables, the
 * holder's tid, with FUTEX_OWNER_DIED set by the kernel when the holder
 * died holding it.  Two readers use it, both only as a hint:
 *  - the lock's slow path (tbl_lock_slow) spins a while before sleeping in
 *    the kernel, and between tries looks whether the lock seems free
 *    without writing to its cache line (a trylock is a locked
 *    compare-and-swap that takes the line away from the holder);
 *  - a lock-free reader that finds a change in progress for too long asks
 *    whether the writer died (table_read.c).
 * That is glibc's private layout, not an interface: the build probes that
 * the field exists (the Makefile's MUTEX_PEEK, defining
 * ETSMGR_HAVE_MUTEX_PEEK) instead of assuming it from __GLIBC__.  Without
 * it COMPAT_MUTEX_WORD is 0 and compat_mutex_word always says 0: the spin
 * lets trylock decide (more cache-line traffic), and a reader does not
 * take the dead-writer shortcut (it waits, then takes the lock, as
 * table_read.c does when it cannot tell). */
#ifndef ETSMGR_COMPAT_H
#define ETSMGR_COMPAT_H
#include <pthread.h>

#if defined(ETSMGR_HAVE_MUTEX_PEEK)
#define COMPAT_MUTEX_WORD 1
#else
#define COMPAT_MUTEX_WORD 0
#endif

/* The lock word of m, read without writing; 0 ("maybe free") when this
 * libc's layout is unknown (COMPAT_MUTEX_WORD 0). */
static inline unsigned compat_mutex_word(pthread_mutex_t *m)
{
#if COMPAT_MUTEX_WORD
    return (unsigned)__atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED);
#else
    (void)m;
    return 0;
#endif
}
#endif

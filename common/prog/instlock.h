/* SPDX-License-Identifier: Apache-2.0 */
/* instlock.h: the machine-wide lock of an instance (instlock.c says how). */
#ifndef ETSMGR_INSTLOCK_H
#define ETSMGR_INSTLOCK_H
#include <stddef.h>
#include <sys/types.h>

/* Takes the lock of (kind, instance), e.g. ("etsmgrd", "etsmgr"): a
 * listening socket, non-blocking and close-on-exec, kept open for as long as
 * the lock is held; or -1 with words in err, errno EWOULDBLOCK and the
 * holder's pid in *holder when a process of our uid holds it. */
int instlock_take(const char *kind, const char *instance, pid_t *holder, char *err, size_t errlen);
/* Accepts and closes the probes of other processes (call when fd is readable). */
void instlock_drain(int fd);
#endif

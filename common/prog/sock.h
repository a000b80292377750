/* SPDX-License-Identifier: Apache-2.0 */
/* sock.h: AF_UNIX stream sockets. */
#ifndef ETSMGR_SOCK_H
#define ETSMGR_SOCK_H
#include <stddef.h>
/* Bind and listen at path with the given mode, replacing a stale socket file
 * (callers hold the instance lock first, so a live one is never replaced).
 * Non-blocking, close-on-exec.  fd, or -1 with a message in err. */
int sock_listen_unix(const char *path, unsigned mode, int backlog, char *err, size_t errlen);
/* Blocking connect; fd or -1 (errno kept: ENOENT/ECONNREFUSED mean "not up").
 * A full backlog makes it wait until the server accepts: forever, for a
 * stopped server. */
int sock_connect_unix(const char *path);
/* The same within timeout_ms (< 0: as sock_connect_unix; 0: one try):
 * a full backlog (a server stopped, or swamped) is tried again until then,
 * and is EAGAIN after it.  The fd is blocking. */
int sock_connect_unix_within(const char *path, int timeout_ms);
/* Take an exclusive lock on path (created 0600): fd, or -1 with errno
 * EWOULDBLOCK when another process holds it. */
int sock_lock_file(const char *path);
/* Whether some process holds an flock on path (taken with sock_lock_file):
 * 1 yes, 0 no (or no such file), -1 cannot tell (errno).  Looks without
 * taking the lock. */
int sock_lock_held(const char *path);
/* Is anyone serving daemon ("etscounterd", "etsmgrd") of the instance whose
 * runtime dir is dir, or restarting it: a process holding DIR/etssup.lock
 * (its supervisor), DIR/<daemon>.lock, or DIR/<daemon>.standby.lock (a hot
 * standby about to take over).  1 yes, 0 no (a client may say
 * "not running" at once), -1 cannot tell (another user's locks). */
int sock_instance_served(const char *dir, const char *daemon);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* listenfd.h: the systemd socket-activation protocol (sd_listen_fds(3)):
 * LISTEN_PID = our pid, LISTEN_FDS = n, fds 3..3+n-1, LISTEN_FDNAMES =
 * "a:b".  Both systemd .socket units and etssup hand sockets in this way. */
#ifndef ETSMGR_LISTENFD_H
#define ETSMGR_LISTENFD_H
#include <stddef.h>

/* The inherited fd for name: the one named name, else (by convention) the
 * one named "<name>.socket" (systemd's default), or the one bound to path
 * (may be NULL), or the only one when LISTEN_FDNAMES is unset and n == 1;
 * -1 when none.  Set close-on-exec.  The first call unsets the LISTEN_*
 * variables so children do not inherit them. */
int listenfd_take(const char *name, const char *path);
/* How many inherited fds nobody took; msg describes each ("fd 3 (name
 * "x.socket", bound to /run/x.sock)").  A program that finds any should
 * refuse to start, naming them: silently ignored, such a socket leaves its
 * clients waiting. */
int listenfd_leftover(char *msg, size_t len);
#endif

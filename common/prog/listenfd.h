/* listenfd.h: the systemd socket-activation protocol (sd_listen_fds(3)):
 * LISTEN_PID = our pid, LISTEN_FDS = n, fds 3..3+n-1, LISTEN_FDNAMES =
 * "a:b".  Both systemd .socket units and etssup hand sockets in this way. */
#ifndef ETSMGR_LISTENFD_H
#define ETSMGR_LISTENFD_H
/* The inherited fd named name (or the only one when LISTEN_FDNAMES is unset
 * and n == 1), set close-on-exec; -1 when none.  Unsets the LISTEN_*
 * variables so children do not inherit them. */
int listenfd_take(const char *name);
#endif

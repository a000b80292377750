/* SPDX-License-Identifier: Apache-2.0 */
/* notify.h: the sd_notify protocol, written here so the daemons need no
 * libsystemd: a datagram "READY=1\nSTATUS=..." to the AF_UNIX socket named
 * by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * Used under systemd and under etssup alike. */
#ifndef ETSMGR_NOTIFY_H
#define ETSMGR_NOTIFY_H
/* Sends msg; 0 when sent or when $NOTIFY_SOCKET is unset, -1 on error. */
int notify_send(const char *msg);
int notify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The receiving side (etssup, tests): a bound SOCK_DGRAM socket at path,
 * with SO_PASSCRED so the sender's pid is known.  Returns the fd or -1. */
int notify_listen(const char *path);
/* Reads one datagram: text (NUL-terminated) and the sender's pid.
 * Returns its length, or -1 (errno EAGAIN when nothing is waiting). */
int notify_recv(int fd, char *buf, unsigned long len, int *pid);

/* The watchdog (sd_watchdog_enabled(3)): $WATCHDOG_USEC when it is meant
 * for this process ($WATCHDOG_PID unset or ours), else 0. */
unsigned long long notify_watchdog_usec(void);
/* When the watchdog is on, a timer on loop sends WATCHDOG=1 every half
 * period: the pings stop when the loop stops turning, which is the point.
 * The timer does not keep the loop alive; notify_watchdog_stop closes it.
 * Returns the period in microseconds, 0 when off, -1 on error (errno). */
struct uv_loop_s;
long long notify_watchdog_start(struct uv_loop_s *loop);
void notify_watchdog_stop(void);
#endif

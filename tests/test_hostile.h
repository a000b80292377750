/* SPDX-License-Identifier: Apache-2.0 */
/* test_hostile.h: helpers the hostile-input suites share (defined in
 * test_hostile.c).  A hostile test talks to the real daemons with plain
 * sockets and frame.h, never through the client library, because it must be
 * able to send what no well-behaved client would: any bytes, any fds, any
 * number of connections.  The daemons run with their stderr in a log file
 * of the test's runtime dir, so the noise a hostile input makes is kept and
 * can be searched. */
#ifndef TEST_HOSTILE_H
#define TEST_HOSTILE_H
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

#include "testutil.h"

#define HS_TIMEOUT_MS 10000

/* build/bin/etsmgrd on e (extra arguments: NULL-terminated, may be NULL),
 * stderr appended to DIR/etsmgrd.log; waits for READY=1. */
pid_t hs_start_mgrd(tu_env *e, const char *const *extra);
/* build/bin/etscounterd on e (etsmgrd must run), log DIR/etscounterd.log. */
pid_t hs_start_counterd(tu_env *e);
/* Connects to DIR/<sock>; asserts success. */
int hs_connect(const tu_env *e, const char *sock);
/* Sends payload (len bytes, with fds) as one frame and reads one reply
 * frame; asserts both.  *rfd (when not NULL) gets the fd of the reply or -1. */
cJSON *hs_call(int fd, const char *payload, size_t len, const int *fds, int nfds, int *rfd);
/* The reply's error code, "" for an ok reply. */
const char *hs_code(const cJSON *r);
/* hs_call, then asserts the reply is that error code ("" : ok) and has a
 * message; frees it. */
void hs_expect(int fd, const char *payload, size_t len, const int *fds, int nfds, const char *code);
/* A fresh connection, one request that must succeed; its round trip in ms. */
double hs_request_ms(const tu_env *e, const char *sock, const char *json);
/* VmRSS of pid in KiB (-1 when unknown). */
long hs_rss_kb(pid_t pid);
/* pid is alive (not a zombie). */
bool hs_alive(pid_t pid);
/* Writes all of p; asserts. */
void hs_write_all(int fd, const void *p, size_t n);
/* One sendmsg of p with any number of fds (beyond FRAME_MAX_FDS). */
void hs_send_with_fds(int fd, const void *p, size_t n, const int *fds, int nfds);
/* Raises RLIMIT_NOFILE to at least n (soft and, as root, hard); false when
 * that is impossible. */
bool hs_raise_nofile(rlim_t n);
/* Milliseconds of CLOCK_MONOTONIC. */
double hs_now_ms(void);
#endif

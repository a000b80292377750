/* SPDX-License-Identifier: Apache-2.0 */
/* test_daemon.h: helpers the etsmgrd suites share (defined in
 * test_daemon.c): a small blocking protocol client on frame.h, so the
 * daemon's tests do not depend on the client library, and a way to start
 * the real daemon with its log captured in a file, so tests can read the
 * lines a person would see.  Every helper asserts with check, so it is for
 * the test process itself; forked children use plain calls and _exit. */
#ifndef TEST_DAEMON_H
#define TEST_DAEMON_H
#include <stdbool.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

#include "etsmgr.h"
#include "testutil.h"

#define DT_TIMEOUT_MS 10000

/* Starts build/bin/etsmgrd (extra arguments NULL-terminated) on e, with its
 * stderr appended to DIR/etsmgrd.log, and waits for READY=1. */
pid_t dt_start(tu_env *e, ...) __attribute__((sentinel));
/* The daemon's log so far (malloc'd, NUL-ended; "" when none). */
char *dt_log(const tu_env *e);
bool dt_log_has(const tu_env *e, const char *needle);

/* Connects to DIR/etsmgrd.sock; asserts success. */
int dt_connect(const tu_env *e);
/* Sends json (with fds) and reads one frame back, asserting both work.
 * *rfd (when not NULL) gets the fd that came with the reply, or -1. */
cJSON *dt_call(int fd, const char *json, const int *fds, int nfds, int *rfd);
cJSON *dt_callf(int fd, int *rfd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Frees r after checking it is an error reply with that code. */
void dt_expect_err(cJSON *r, const char *code);
void dt_expect_ok(cJSON *r);

const char *dt_str(const cJSON *o, const char *key); /* "" when absent */
double dt_num(const cJSON *o, const char *key);      /* -1 when absent */
bool dt_bool(const cJSON *o, const char *key);

/* new_table name on fd: returns the attached table, asserting success. */
etsmgr_table *dt_new_table(int fd, const char *name, const char *heir_data, bool *created);
/* The status object of table name (a copy, to free), or NULL when not
 * managed. */
cJSON *dt_status(int fd, const char *name);
/* A fresh connection says hello and gets the daemon's pid back. */
void dt_hello_ok(const tu_env *e, pid_t daemon_pid);

/* A forked child that owns table name: it connects, takes the table with
 * new_table, adds add to its "count" and waits to be killed; returns once
 * it has done so. */
pid_t dt_fork_owner(const tu_env *e, const char *name, const char *heir, int64_t add);
/* For tu_eventually: is table name orphaned (asked on connection fd)? */
typedef struct dt_wait {
    int fd;
    const char *name;
} dt_wait;
bool dt_is_orphaned(void *arg);

bool dt_shm_exists(const tu_env *e, const char *name);
int64_t dt_get_count(etsmgr_table *t, const char *key);
#endif

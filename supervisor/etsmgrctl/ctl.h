/* SPDX-License-Identifier: Apache-2.0 */
/* ctl.h: what etsmgrctl's files share: the exit codes, one request/reply
 * on an instance socket, printing a reply as JSON. */
#ifndef ETSMGRCTL_CTL_H
#define ETSMGRCTL_CTL_H
#include <stdbool.h>
#include <cjson/cJSON.h>

#include "etsmgr.h"
#include "runtime.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_USAGE 64
#define CTL_EXIT_DATAERR 65 /* load: the file is not a good image */
#define CTL_EXIT_NOINPUT 66 /* load: the file cannot be opened */
#define CTL_EXIT_UNAVAILABLE 69
#define CTL_EXIT_SOFTWARE 70
#define CTL_EXIT_CANTCREAT 73 /* save: the file cannot be written */
#define CTL_EXIT_IOERR 74     /* the output (stdout) cannot be written */

extern bool g_json;

/* The error code of the last refusal ctl_call printed ("" after any other
 * outcome): what a command's hint may depend on. */
extern char ctl_refusal[32];

/* One request; 0 with *reply, else an exit status (message printed). */
int ctl_call(const rt_paths *rt, const char *sockname, const char *who, cJSON *req, int timeout_ms,
             int *conn_fd, cJSON **reply);
/* The same for a request that is only its op, {"op": op, "id": 1}, to
 * who ("etssup" or "etsmgrd", whose socket is who.sock). */
int ctl_call_op(const rt_paths *rt, const char *who, const char *op, int timeout_ms, cJSON **reply);
/* A library client for the commands that map tables (dump, load), within
 * timeout_ms from the start: a hello on the raw socket first, which keeps
 * to --timeout and tells etsmgrd not running (69) from not answering (70)
 * (etsmgr_connect's own hello waits its default 5 s), then etsmgr_connect
 * to a daemon that has just answered.  0, or an exit status (printed). */
int ctl_connect(const rt_paths *rt, int timeout_ms, etsmgr_client **out);
void ctl_print_json(cJSON *reply);
/* The exit status once the output is flushed: rc, or CTL_EXIT_IOERR when
 * some output was not written (said on stderr, except for a reader that
 * went away: EPIPE, as when piped into head). */
int ctl_output_status(int rc);
/* Keeps errno as the cause of a failed output, where a write's failure is
 * first seen (stdio may drop the buffer it could not write, and with it
 * the errno that ctl_output_status would otherwise find). */
void ctl_output_failed(void);

/* data.c: the data lifecycle commands */
int ctl_save(const rt_paths *rt, const char *table, const char *file, int timeout);
int ctl_load(const rt_paths *rt, const char *file, const char *as, bool replace, int timeout);
int ctl_snapshot(const rt_paths *rt, int timeout);
int ctl_del(const rt_paths *rt, const char *table, bool force, int timeout);

/* dump.c: etsmgrctl dump TABLE [--from KEY] [--to KEY] (NULL: that end
 * open); an exit status */
int ctl_dump(const rt_paths *rt, const char *name, const char *from, const char *to, int timeout, bool json);
#endif

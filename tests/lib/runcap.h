/* SPDX-License-Identifier: Apache-2.0 */
/* runcap.h: run a command and capture what it prints, for the tests that
 * drive external tools (make, groff, pkg-config, cc, systemd-analyze) and
 * the programs' --help.  Output is stdout and stderr merged, in order, as a
 * person would see it; a command that hangs is killed with its whole
 * process group after timeout_ms, so one stuck tool fails one test. */
#ifndef ETSMGR_RUNCAP_H
#define ETSMGR_RUNCAP_H

/* Runs argv (PATH searched).  *out gets the output (malloc'd, NUL-ended,
 * may be NULL when not wanted).  Returns the wait status, or -1 when it
 * could not be started or timed out (then *out says why). */
int rc_run(char *const argv[], char **out, int timeout_ms);
/* The same for a /bin/sh command line built with printf formatting. */
int rc_sh(char **out, int timeout_ms, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* True when status is a normal exit with code 0. */
int rc_ok(int status);
/* The source tree ($ETSMGR_SRCDIR, else "."). */
const char *rc_srcdir(void);
/* `make` in the source tree for the build this runner comes from (the one
 * $ETSMGR_BINDIR is in: build/, build/sanitize/ or another BUILD=), with the
 * caller's MAKEFLAGS removed so an enclosing `make check` does not leak its
 * jobserver into it.  args are appended as they are (shell words). */
int rc_make(char **out, int timeout_ms, const char *args);
/* Reads a whole file (malloc'd, NUL-ended) or NULL. */
char *rc_slurp(const char *path);
#endif

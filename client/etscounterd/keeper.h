/* SPDX-License-Identifier: Apache-2.0 */
/* keeper.h: a process sharing etscounterd's address space, so that a
 * SIGKILL closes etscounterd's sockets before its memory is torn down
 * (keeper.c says why and how). */
#ifndef ETSCOUNTERD_KEEPER_H
#define ETSCOUNTERD_KEEPER_H

/* Starts the keeper, and returns once it holds no fd (it closes its copy
 * of every fd we had), so it may be called at any time; it costs a wake-up
 * of the keeper, so not on a takeover's path.  Returns its pid, or -1
 * (logged; etscounterd goes on without one). */
int ecd_keeper_start(void);
#endif

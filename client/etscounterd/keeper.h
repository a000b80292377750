/* SPDX-License-Identifier: Apache-2.0 */
/* keeper.h: a process sharing etscounterd's address space, so that a
 * SIGKILL closes etscounterd's sockets before its memory is torn down
 * (keeper.c says why and how). */
#ifndef ETSCOUNTERD_KEEPER_H
#define ETSCOUNTERD_KEEPER_H

/* Starts the keeper; call before opening anything worth closing early (it
 * closes its copies of every fd anyway).  Returns its pid, or -1 (logged;
 * etscounterd goes on without one). */
int ecd_keeper_start(void);
#endif

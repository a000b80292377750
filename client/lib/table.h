/* SPDX-License-Identifier: Apache-2.0 */
/* table.h: the table store's internal side (the public one is etsmgr.h):
 * creating, opening and removing tables by shm name, ownership bookkeeping in
 * the header, and the crash-point hook used by the tests. */
#ifndef ETSMGR_TABLE_H
#define ETSMGR_TABLE_H
#include <stdbool.h>
#include "etsmgr.h"

/* shm_name is "/<instance>:<uid>:<table>" (see rt_shm_name); table_name is stored
 * in the header.  create fails with ETSMGR_EEXIST when the object exists. */
int tbl_create(const char *shm_name, const char *table_name, const etsmgr_table_opts *opts,
               etsmgr_table **out);
int tbl_open(const char *shm_name, etsmgr_table **out);
/* A table of this process alone, in a memfd (no name in /dev/shm, gone
 * with its last handle or the process): a trial, such as a load's fill
 * tried before anything is replaced (mgr_load.c). */
int tbl_create_private(const char *table_name, const etsmgr_table_opts *opts, etsmgr_table **out);
/* Attach for reading only (PROT_READ mappings; every change: ETSMGR_EPERM),
 * whatever fd's access mode.  On failure fd is left open. */
int tbl_attach_fd_ro(int fd, etsmgr_table **out);
/* Where a read handle asks for the rollback of a dead writer's change: cb
 * sends etsmgrd's "recover" request for table to the socket sock and waits
 * at most timeout_ms.  sock NULL: nowhere. */
int tbl_set_recover(etsmgr_table *t, const char *sock,
                    int (*cb)(const char *sock, const char *table, int timeout_ms));
int tbl_unlink(const char *shm_name);

/* Roll back a dead writer's change now and release the lock-free readers
 * it held up (etsmgrd's "recover" request; a writable handle's reader does
 * it by itself).  Harmless when there is nothing to do. */
int tbl_recover_now(etsmgr_table *t);
/* The same without waiting for the lock: ETSMGR_ELOCKED at once when a
 * living process holds it (a dead holder is what it is for: its change is
 * rolled back).  For etsmgrd's "recover", which any peer may send. */
int tbl_recover_nowait(etsmgr_table *t);

/* Record owner and heir pids (diagnostics), bump the generation, and record
 * since when the table is orphaned: orphaned_us (µs since the epoch) when
 * owner_pid is 0, else nothing (the word becomes 0).  The header keeps it
 * across a restart of etsmgrd, so --orphan-ttl counts from the real moment. */
int tbl_set_owner(etsmgr_table *t, int32_t owner_pid, int32_t heir_pid, int64_t orphaned_us);
/* The same without waiting for the lock: ETSMGR_ELOCKED at once when a
 * living process holds it (a dead holder's change is rolled back first). */
int tbl_set_owner_nowait(etsmgr_table *t, int32_t owner_pid, int32_t heir_pid, int64_t orphaned_us);
/* The header's orphaned-since time (0: owned, or not known; <0: error). */
int64_t tbl_orphaned_since(etsmgr_table *t);

/* Whether an entry is the project's bookkeeping, not the application's: a
 * request id that an older etscounterd recorded as an entry ("\0etsmgr.rid\0"
 * and 16 bytes, a 16-byte value; the library refuses to insert that shape,
 * and loads it from an image into the request-id region).  A dump leaves
 * those out and shows every other key, those that start with a NUL byte
 * (big-endian integers below 2^56) included. */
bool tbl_is_bookkeeping(const void *key, size_t klen, const etsmgr_value *v);

/* What etsmgr_table_info_get gives, and the orphaned-since time (as
 * tbl_orphaned_since; orphaned_us may be NULL), without ever waiting for
 * the lock: read under it when it is free or its holder died (whose change
 * is rolled back first), else, a living process holding it, from the
 * header's words as they are (a change in progress may show half done).
 * For etsmgrd, whose statuses and replies must not wait for a lock that a
 * process stopped inside a transaction holds (once per table and request,
 * for every client), nor give up on reading the owner's pid.  0 or the
 * table store's error. */
int tbl_info_nowait(etsmgr_table *t, etsmgr_table_info *out, int64_t *orphaned_us);

/* Why the last attach/open/create on this thread failed validation, in
 * words (e.g. "header says 8192 bytes, object has 4096"); "" when it did not. */
const char *tbl_last_why(void);

/* Test hook: when set, called at numbered steps inside every change
 * ("insert", "delete", "update_counter", "grow", "commit", ...).  A test
 * makes it _exit() at step N to simulate a SIGKILL there. */
extern void (*tbl_crashpoint)(const char *op, int step);
/* Test hook: the slots an ordered table's B+tree node may fill in this
 * process, 2 up to the node's size (0, the default: all), so that small
 * tests build deep trees and split, merge and shrink them often. */
extern unsigned tbl_ord_fill;
/* Test hook: when not 0, the hash key of every table this process makes
 * is derived from it instead of drawn at random, so that a fuzzer's input
 * meets the same index layout when it is replayed. */
extern uint64_t tbl_hash_seed_fixed;
/* Test hook: verify's bound on the heap's blocks in its list (2^24), so
 * that a test can fill the list with a small table. */
extern uint64_t tbl_verify_heap_blocks;
/* A hint, without the lock: start loading the index line a count with this
 * request id will read (table_once.c).  A caller that knows its next count
 * while doing this one overlaps the two counts' cache misses. */
void tbl_once_prefetch(etsmgr_table *t, const uint8_t rid[ETSMGR_RID_LEN]);
/* Group commit of exactly-once counts (table_once.c): the requests of q,
 * in order, as one change of the table (one lock, one clock read, one
 * commit), each with its own answer as if counted alone: rc 0 and value
 * (dup 1: the rid was recorded, value its recorded one), or rc the error
 * that refused it (nothing of it written).  Returns how many of q, from
 * the first, were answered (fewer than n when the undo log had no room
 * for more: call again with the rest), or an error answering none. */
typedef struct tbl_once_req {
    etsmgr_once once; /* in */
    int64_t value;    /* out */
    int rc;           /* out */
    int dup;          /* out */
} tbl_once_req;
int tbl_once_count_many(etsmgr_table *t, const void *key, size_t klen, int64_t incr, tbl_once_req *q,
                        size_t n);
#endif

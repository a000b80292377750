/* table.h: the table store's internal side (the public one is etsmgr.h):
 * creating, opening and removing tables by shm name, ownership bookkeeping in
 * the header, and the crash-point hook used by the tests. */
#ifndef ETSMGR_TABLE_H
#define ETSMGR_TABLE_H
#include "etsmgr.h"

/* shm_name is "/<instance>.<table>" (see rt_shm_name); table_name is stored
 * in the header.  create fails with ETSMGR_EEXIST when the object exists. */
int tbl_create(const char *shm_name, const char *table_name, const etsmgr_table_opts *opts,
               etsmgr_table **out);
int tbl_open(const char *shm_name, etsmgr_table **out);
int tbl_unlink(const char *shm_name);

/* Record owner and heir pids (diagnostics) and bump the generation. */
int tbl_set_owner(etsmgr_table *t, int32_t owner_pid, int32_t heir_pid);

/* Why the last attach/open/create on this thread failed validation, in
 * words (e.g. "header says 8192 bytes, object has 4096"); "" when it did not. */
const char *tbl_last_why(void);

/* Test hook: when set, called at numbered steps inside every change
 * ("insert", "delete", "update_counter", "grow", "commit", ...).  A test
 * makes it _exit() at step N to simulate a SIGKILL there. */
extern void (*tbl_crashpoint)(const char *op, int step);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* etsmgr.h: the one header an application includes.
 *
 * Two parts:
 *  - tables: a set of key -> value entries in one POSIX shared-memory object,
 *    safe against SIGKILL of any process using it at any instruction;
 *  - the manager client: talk to etsmgrd, which creates tables, hands their
 *    ownership to this process and is their heir when it dies.
 *
 * Every function returns ETSMGR_OK (0) or a negative etsmgr_err; none prints
 * or exits.  etsmgr_strerror() turns a code into words. */
#ifndef ETSMGR_H
#define ETSMGR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility: only what this header
 * declares is exported (and client/lib/libetsmgr.map keeps it so). */
#pragma GCC visibility push(default)

/* ----------------------------------------------------------------- version */
/* The version of this header; etsmgr_version() is the library's, which may
 * be newer (same major: compatible). */
#define ETSMGR_VERSION_MAJOR 0
#define ETSMGR_VERSION_MINOR 1
#define ETSMGR_VERSION_PATCH 0
/* "MAJOR.MINOR.PATCH" of the library actually loaded */
const char *etsmgr_version(void);

/* ------------------------------------------------------------------ errors */
typedef enum etsmgr_err {
    ETSMGR_OK = 0,
    ETSMGR_ENOTFOUND = -1,  /* no entry with that key */
    ETSMGR_EEXIST = -2,     /* insert_new: the key exists */
    ETSMGR_EFULL = -3,      /* table at its max_bytes, or no shared memory left */
    ETSMGR_EINVAL = -4,     /* bad argument (key length, value size, NULL ...) */
    ETSMGR_ETYPE = -5,      /* update_counter on a value that is not an integer */
    ETSMGR_ESYS = -6,       /* a system call failed; errno tells which error */
    ETSMGR_EBADMAGIC = -7,  /* not a table: wrong magic */
    ETSMGR_EVERSION = -8,   /* a table of another layout version */
    ETSMGR_ETRUNCATED = -9, /* object shorter than its header says */
    ETSMGR_ECORRUPT = -10,  /* a header field or an entry fails validation */
    ETSMGR_ERANGE = -11,    /* lookup: the caller's buffer is too small */
    ETSMGR_EGROUP = -12,    /* group misuse, or too many changes in one group */
    ETSMGR_ENOMEM = -13,    /* malloc failed */
    ETSMGR_ENOTCONN = -14,  /* etsmgrd is not reachable */
    ETSMGR_ETIMEDOUT = -15, /* waited for etsmgrd and gave up */
    ETSMGR_EPROTO = -16,    /* etsmgrd sent something this library cannot read */
    ETSMGR_EOWNED = -17,    /* new_table: a living process owns that table */
    ETSMGR_EREFUSED = -18,  /* etsmgrd refused; etsmgr_client_message() says why */
    ETSMGR_ENAME = -19,     /* table name not [A-Za-z0-9_.-]{1,64} */
    ETSMGR_ELOCKED = -20,   /* the lock timeout passed: another process holds the lock (stopped?) */
    ETSMGR_EEXPIRED = -21,  /* update_counter_once: the deadline passed first; nothing changed */
    ETSMGR_ERIDFULL = -22,  /* update_counter_once: max_records ids are all still kept; nothing changed */
    ETSMGR_EPERM = -23,     /* a write on a read handle, or an open the table's access mode refuses */
    ETSMGR_EDEADWRITER = -24, /* a writer died mid-change and nobody rolled it back (etsmgrd down?) */
} etsmgr_err;

/* Words for an error code; never NULL. */
const char *etsmgr_strerror(int err);

/* ------------------------------------------------------------------ tables */
#define ETSMGR_KEY_MAX 255u          /* keys are 1..255 bytes */
#define ETSMGR_VALUE_MAX 65536u      /* byte-string values are 0..64 KiB */
#define ETSMGR_NAME_MAX 64u          /* table names: [A-Za-z0-9_.-]{1,64} */

typedef struct etsmgr_table etsmgr_table;

/* Who may use a table besides its owner, as in ETS; fixed at creation and
 * recorded in the table's header.  Others open it with etsmgr_open_table. */
typedef enum etsmgr_access {
    ETSMGR_PROTECTED = 0, /* the owner writes, others read (the default) */
    ETSMGR_PRIVATE = 1,   /* the owner only */
    ETSMGR_PUBLIC = 2,    /* others read and write */
} etsmgr_access;

/* A table's type, fixed at creation and recorded in its header.  An
 * ordered set keeps its keys in bytewise order (memcmp; a key that is a
 * prefix of another comes first) for first/last/next/prev and ranges. */
typedef enum etsmgr_table_type {
    ETSMGR_SET = 0,         /* hashed (the default) */
    ETSMGR_ORDERED_SET = 1, /* hashed and ordered */
} etsmgr_table_type;

typedef struct etsmgr_table_opts {
    uint64_t size_hint; /* bytes to reserve at creation; 0: a small default */
    uint64_t max_bytes; /* upper bound of the object's size; 0: no bound */
    unsigned mode;      /* permission bits of the shm object; 0: 0600 */
    etsmgr_access access; /* 0: ETSMGR_PROTECTED */
    etsmgr_table_type type; /* 0: ETSMGR_SET */
} etsmgr_table_opts;

typedef enum etsmgr_type { ETSMGR_INT = 1, ETSMGR_BYTES = 2 } etsmgr_type;

typedef struct etsmgr_value {
    etsmgr_type type;
    int64_t i;        /* ETSMGR_INT */
    const void *data; /* ETSMGR_BYTES: len bytes */
    size_t len;
} etsmgr_value;

typedef struct etsmgr_table_info {
    char name[ETSMGR_NAME_MAX + 1];
    uint64_t entries;     /* live entries */
    uint64_t capacity;    /* entries the index holds before it grows */
    uint64_t bytes_used;  /* bytes of live entries and index */
    uint64_t bytes_total; /* size of the shm object */
    uint64_t max_bytes;   /* 0: unbounded */
    uint64_t generation;  /* +1 on every ownership change etsmgrd records in the header: changes
                           * made while a process held the table's lock count once (the last) */
    int64_t ctime_us;     /* creation, microseconds since the epoch */
    int32_t owner_pid;    /* diagnostics only: 0 when none */
    int32_t heir_pid;
    etsmgr_access access;
    int writable;         /* 0: a read handle (etsmgr_open_table with ETSMGR_READ) */
    etsmgr_table_type type;
} etsmgr_table_info;

/* Attach to the table behind fd (as received from etsmgrd).  Validates the
 * object before trusting it (magic, version, sizes, counts).  An fd opened
 * O_RDONLY gives a read handle (mapped PROT_READ; changes: ETSMGR_EPERM).
 * On success the table owns fd; on failure fd is left open for the caller. */
int etsmgr_table_attach_fd(int fd, etsmgr_table **out);
/* Unmap and close.  The shared-memory object and its data stay. */
void etsmgr_table_close(etsmgr_table *t);
int etsmgr_table_fd(const etsmgr_table *t);
const char *etsmgr_table_name(const etsmgr_table *t);

/* Set semantics, like an ETS set.  Each change takes the table's robust
 * lock, remaps first if another process grew the table, and is atomic
 * against SIGKILL of any process at any point.  Lookups and foreach take no
 * lock and write nothing to the table (see below).  A handle is for one
 * thread at a time (attach one handle per thread); any number of processes
 * and handles may share the table.  On a read handle every change returns
 * ETSMGR_EPERM. */
int etsmgr_table_insert(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v);
int etsmgr_table_insert_new(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v);
/* Copies the value out: an integer into out->i; bytes into buf (cap bytes),
 * with out->data = buf and out->len = the value's length.  ETSMGR_ERANGE when
 * cap is too small (out->len still tells the length needed).  Lock-free: the
 * value is one that was committed, never a mix of two, never one a writer
 * that then died had half written.  While a change of a key of the same
 * stripe is in progress it waits (spins, then sleeps); a writer that died
 * mid-change is rolled back by this handle if it may write, else by
 * etsmgrd when the handle came from etsmgr_open_table: ETSMGR_EDEADWRITER
 * when nobody did within 10 ms.  A live writer that holds on longer than
 * the handle's lock timeout gives ETSMGR_ELOCKED. */
int etsmgr_table_lookup(etsmgr_table *t, const void *key, size_t klen, etsmgr_value *out,
                        void *buf, size_t cap);
int etsmgr_table_delete(etsmgr_table *t, const void *key, size_t klen);
/* Adds incr to the integer at key and stores the result in *newval; a missing
 * key starts at dflt (so the first call stores dflt + incr).  The sum wraps
 * around like int64 hardware arithmetic. */
int etsmgr_table_update_counter(etsmgr_table *t, const void *key, size_t klen, int64_t incr,
                                int64_t dflt, int64_t *newval);

/* Exactly-once update_counter.  The sender of a request names it with a
 * request id (rid) it never uses for another request: 16 random bytes for
 * a one-off request; a sender of many should draw 8 random bytes once and
 * number its requests in the last 8 (big-endian), which the store files
 * together (four consecutive rids share one cache line of its index), so
 * its counts cost less.  The table remembers "rid -> the value it got" in
 * the same atomic change as the increment, so a sender that lost the reply
 * (the server died) can send the same rid again and get the same value with
 * *dup = 1, counted once.  A rid is remembered at least until keep_until_ms:
 * the sender must not send it again after that.  A rid not yet recorded is
 * not counted once deadline_ms has passed (ETSMGR_EEXPIRED; checked again
 * just before the commit).  Times are CLOCK_MONOTONIC milliseconds, the
 * clock every process of the machine shares and no clock step moves.  The
 * records live in one region of the table (fixed-size records in a ring,
 * a hashed index), grown as needed and shrunk after a burst; when
 * max_records rids (0: no limit but the table's size) would be live at
 * once, nothing changes and the call fails with ETSMGR_ERIDFULL: a rid is
 * never forgotten before its keep_until_ms.  A table with such records has
 * layout version 12 (13 when ordered; each with the flag 0x10000 of a table
 * made since the hash key per table; older libraries refuse it with
 * ETSMGR_EVERSION). */
#define ETSMGR_RID_LEN 16
typedef struct etsmgr_once {
    uint8_t rid[ETSMGR_RID_LEN];
    int64_t deadline_ms;   /* 0: no deadline */
    int64_t keep_until_ms; /* >= deadline_ms */
    uint64_t max_records;
} etsmgr_once;
int etsmgr_table_update_counter_once(etsmgr_table *t, const void *key, size_t klen, int64_t incr,
                                     const etsmgr_once *once, int64_t *newval, int *dup);
/* CLOCK_MONOTONIC in milliseconds: the clock of deadline_ms and keep_until_ms. */
int64_t etsmgr_mono_ms(void);

/* Calls cb for each entry, lock-free like lookup: key and value are copies,
 * valid only during the call, and cb may call table functions (except
 * inside a group of this handle, where the walk runs under the group's lock
 * and cb must not).  Every entry that exists for the whole walk is seen
 * exactly once, with a committed value; an entry inserted, overwritten or
 * deleted during the walk may or may not be seen, and no key is seen twice
 * (entries come in the order of their keys' hashes).  ETS's safe_fixtable
 * semantics, without fixing anything: writers are never held up.  cb
 * returns 0 to go on, anything else to stop (that value is returned). */
typedef int (*etsmgr_foreach_cb)(const void *key, size_t klen, const etsmgr_value *v, void *arg);
int etsmgr_table_foreach(etsmgr_table *t, etsmgr_foreach_cb cb, void *arg);

/* Ordered tables (ETSMGR_ORDERED_SET), lock-free like lookup.  first/last:
 * the smallest/greatest key; next/prev: the first key greater / the last
 * key smaller than key (which need not exist).  The key is copied to
 * key/out (cap bytes; ETSMGR_ERANGE when it does not fit, with the length
 * set); ETSMGR_ENOTFOUND past either end.  foreach_range walks from `from`
 * (inclusive) up to `to` (exclusive) in key order, NULL meaning that end is
 * open, with foreach's guarantees (and in order).  foreach itself walks an
 * ordered table in key order.  On a set: first gives some key, last, next,
 * prev and foreach_range give ETSMGR_EINVAL. */
int etsmgr_table_first(etsmgr_table *t, void *key, size_t cap, size_t *klen);
int etsmgr_table_last(etsmgr_table *t, void *key, size_t cap, size_t *klen);
int etsmgr_table_next(etsmgr_table *t, const void *key, size_t klen, void *out, size_t cap, size_t *outlen);
int etsmgr_table_prev(etsmgr_table *t, const void *key, size_t klen, void *out, size_t cap, size_t *outlen);
int etsmgr_table_foreach_range(etsmgr_table *t, const void *from, size_t flen, const void *to, size_t tlen,
                               etsmgr_foreach_cb cb, void *arg);

/* Under the lock on a handle that may write; on a read handle the counters
 * are read without it (each exact, together possibly from two moments). */
int etsmgr_table_info_get(etsmgr_table *t, etsmgr_table_info *out);
/* How long a call on this handle waits for the table's lock before it gives
 * up with ETSMGR_ELOCKED; 0 (the default) waits as long as it takes.  A lock
 * holder that dies is noticed at once either way (robust mutex); the timeout
 * is for one that is alive but stuck, e.g. stopped with SIGSTOP.  Servers that
 * must stay responsive (etsmgrd) set it. */
void etsmgr_table_set_lock_timeout(etsmgr_table *t, unsigned ms);
/* A full consistency check of header, index and entries (a read-only walk
 * under the lock: ETSMGR_EPERM on a read handle).
 * ETSMGR_ECORRUPT with a reason in why (when why != NULL) if anything is off. */
int etsmgr_table_verify(etsmgr_table *t, char *why, size_t whylen);

/* Atomic groups: between begin and commit the ordinary calls above act on the
 * table under one lock and one recovery record, so that a SIGKILL anywhere
 * inside leaves none of the group's changes (the next locker rolls it back).
 * abort rolls back on purpose.  At most ETSMGR_GROUP_MAX changes per group;
 * in an ordered table an insert or delete reserves its worst case first and
 * may get ETSMGR_EGROUP earlier (that change not done, the group intact:
 * etsmgr(3), "Ordered tables"). */
#define ETSMGR_GROUP_MAX 16
int etsmgr_table_begin(etsmgr_table *t);
int etsmgr_table_commit(etsmgr_table *t);
int etsmgr_table_abort(etsmgr_table *t);

/* Save a point-in-time image of the table to the file path (format:
 * docs/image-format.md).  The image is a consistent cut: every atomic group
 * is wholly in it or wholly out.  The table's lock is held only while the
 * used part of the table is copied in memory; encoding and writing happen
 * after.  Crash-safe: a temporary file in the same directory is written,
 * fsynced and renamed over path, then the directory is fsynced, so a
 * SIGKILL or a full disk (ETSMGR_EFULL) at any moment leaves the previous
 * file intact.  ETSMGR_ESYS: errno says why. */
int etsmgr_table_save(etsmgr_table *t, const char *path);

/* ------------------------------------------------------------------ manager client */
/* (section owned by client/lib: connection, new_table, add_table, del_table,
 * give_away, info, and the libuv watch that reattaches after a daemon crash) */

/* A connection to etsmgrd, the table manager.  The daemon creates tables,
 * hands them to this process (it becomes their owner: the connection is its
 * life line) and is their heir: when this process dies, the tables stay, and
 * a restarted process gets them back, data intact, with etsmgr_new_table.
 *
 * The client holds every table it got (new_table, add_table, a transfer): the
 * handles stay valid while etsmgrd is down (the mapping does not depend on
 * it), and a reconnect (etsmgr_reconnect, or the watch below) registers them
 * again with the new daemon.  Handles are freed by etsmgr_del_table,
 * etsmgr_give_away or etsmgr_client_close.
 *
 * Synchronous calls block, up to the client's timeout (etsmgr_client_set_timeout,
 * default 5000 ms).  A client is used by one thread at a time.  On
 * ETSMGR_EREFUSED (and most other errors) etsmgr_client_message() says why,
 * in the daemon's words; etsmgr_client_error() gives the daemon's error code
 * ("owned", "not_found", "bad_fd" ... see docs/protocol.md). */
typedef struct etsmgr_client etsmgr_client;

/* runtime_dir / instance: NULL resolves them like every program of the
 * project ($ETSMGR_RUNTIME_DIR, $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr or
 * /tmp/etsmgr-$UID; $ETSMGR_INSTANCE or "etsmgr").  Connects once and says
 * hello: ETSMGR_ENOTCONN when etsmgrd is not there.  On failure *out is
 * NULL, and when out_msg is not NULL it receives the reason (msglen bytes). */
int etsmgr_connect(const char *runtime_dir, const char *instance, etsmgr_client **out,
                   char *out_msg, size_t msglen);
/* The counterpart of etsmgr:wait4etsmgr/2: tries to connect every poll_ms
 * (0: 100) until it succeeds or timeout_ms passes (< 0: forever);
 * ETSMGR_ETIMEDOUT then. */
int etsmgr_wait(const char *runtime_dir, const char *instance, int poll_ms, int timeout_ms,
                etsmgr_client **out, char *out_msg, size_t msglen);
/* Closes the connection (the daemon becomes heir of the tables) and every
 * table handle the client holds.  Stops the watch.  NULL is fine. */
void etsmgr_client_close(etsmgr_client *c);
void etsmgr_client_set_timeout(etsmgr_client *c, int timeout_ms);

/* After ETSMGR_ENOTCONN (the daemon died) without a watch: wait for etsmgrd
 * as etsmgr_wait does, then add_table every held table again.  ETSMGR_OK when
 * all were registered; else the first error (the others are still tried).
 * A table given to this process whose transfer is not taken yet is added
 * too (one the daemon refuses is dropped, as if it had never come). */
int etsmgr_reconnect(etsmgr_client *c, int poll_ms, int timeout_ms);

int etsmgr_client_connected(const etsmgr_client *c); /* 1 or 0 */
pid_t etsmgr_client_daemon_pid(const etsmgr_client *c); /* 0 when not connected */
const char *etsmgr_client_runtime_dir(const etsmgr_client *c);
const char *etsmgr_client_instance(const etsmgr_client *c);
/* The last failure: the daemon's error code ("" when none or when it was
 * local) and words for a person (never NULL). */
const char *etsmgr_client_error(const etsmgr_client *c);
const char *etsmgr_client_message(const etsmgr_client *c);

/* What new_table and transfers tell about the table received. */
typedef struct etsmgr_grant {
    int created;        /* 1: a new empty table; 0: an existing one, data intact */
    pid_t from_pid;     /* who gave it (the daemon, or a give_away's sender) */
    char data[256];     /* the giver's data ("etsmgr" for the daemon) */
    uint64_t generation;
} etsmgr_grant;

/* Get the table name: create it, or take it over from the heir (the owner
 * died).  ETSMGR_EOWNED when a living process owns it (its pid in
 * grant->from_pid when grant is not NULL).  heir_data (NULL: the name) is
 * what the daemon logs on transfers.  opts may be NULL.  grant may be NULL. */
int etsmgr_new_table(etsmgr_client *c, const char *name, const etsmgr_table_opts *opts,
                     const char *heir_data, etsmgr_table **out, etsmgr_grant *grant);
/* new_table as a hot standby: where etsmgr_new_table would return
 * ETSMGR_EOWNED, wait instead, queued as the table's next owner.  The
 * moment the owner dies, etsmgrd hands the table to the first waiter
 * (before anything else it does for that death): nothing has to start.
 * Waiters are served in order; one that disconnects leaves the queue.
 * timeout_ms < 0 waits forever; on ETSMGR_ETIMEDOUT the wait is cancelled
 * (a table handed over meanwhile is let go again for the next waiter).  A
 * table given to the caller with etsmgr_give_away while it waits for it
 * ends the wait: the call returns it.  ETSMGR_EREFUSED (the daemon's words
 * in etsmgr_client_message) when etsmgrd could not send the table's fd
 * (it is at its fd limit): the table goes on to the next waiter; and when
 * the connection has 64 waits queued already (too_many_waits).
 * ETSMGR_ENOTCONN when etsmgrd went away: connect again and wait again.
 * The same rules as etsmgr_new_table decide whether the caller may own the
 * table at all (its uid); refusals come at once. */
int etsmgr_new_table_wait(etsmgr_client *c, const char *name, const etsmgr_table_opts *opts,
                          const char *heir_data, int timeout_ms, etsmgr_table **out, etsmgr_grant *grant);
/* Open a table another process owns, as ETS lets any process use a
 * protected or public table.  mode: ETSMGR_READ, or ETSMGR_WRITE (reads
 * too; a public table only).  etsmgrd checks the table's access mode and
 * this process's uid and group, then sends an fd: for ETSMGR_READ one
 * opened O_RDONLY and mapped PROT_READ, so the kernel itself refuses writes
 * (the write calls return ETSMGR_EPERM before trying).  ETSMGR_EPERM with
 * the daemon's words in etsmgr_client_message() when refused.  The handle
 * is this process's, not the client's: an opener is not an owner, its
 * death changes nothing, and the handle keeps working (following growth)
 * across restarts of the owner and of etsmgrd; close it with
 * etsmgr_table_close.  A read handle asks etsmgrd (on a short connection of
 * its own, to the socket this client used) to roll back a writer that died
 * mid-change (see lookup). */
#define ETSMGR_READ 1
#define ETSMGR_WRITE 2
int etsmgr_open_table(etsmgr_client *c, const char *name, int mode, etsmgr_table **out);
/* Ask the daemon to manage a table this process already holds (it survived a
 * daemon restart), from a handle (not held yet: the client takes it). */
int etsmgr_add_table(etsmgr_client *c, etsmgr_table *t);
/* End management of a held table and close the handle; with unlink, the
 * shared-memory object and its data are removed too (like ets:delete). */
int etsmgr_del_table(etsmgr_client *c, etsmgr_table *t, int unlink);
/* Pass a held table to another connected process of the same uid; the handle
 * is closed here on success.  data reaches the receiver (NULL: ""; etsmgrd
 * takes at most 256 bytes).  Any call whose request would be over the
 * protocol's 64 KiB frame gets ETSMGR_EINVAL, and nothing is sent: the
 * connection and every held table stay as they were. */
int etsmgr_give_away(etsmgr_client *c, etsmgr_table *t, pid_t pid, const char *data);
/* Wait up to timeout_ms (< 0: forever; 0: take one that has arrived, not
 * waiting) for a table given to this process (a give_away of another
 * process); the client then holds it. */
int etsmgr_take_transfer(etsmgr_client *c, int timeout_ms, etsmgr_table **out, etsmgr_grant *grant);

/* Create a table from an image file (etsmgr_table_save) through etsmgrd:
 * this process becomes its owner, as with etsmgr_new_table.  name NULL: the
 * name saved in the image.  The file is read and validated whole before
 * anything is created; a truncated (ETSMGR_ETRUNCATED), foreign
 * (ETSMGR_EBADMAGIC), newer (ETSMGR_EVERSION) or damaged (ETSMGR_ECORRUPT)
 * file is refused with words in etsmgr_client_message().  A table of that
 * name that exists is refused (ETSMGR_EEXIST) unless flags has
 * ETSMGR_LOAD_REPLACE and the table is orphaned: it is then removed (its
 * shared memory and its snapshot) and replaced; an owned one stays
 * ETSMGR_EOWNED.  A load that fails while filling deletes the table; a load
 * killed halfway, or one whose delete etsmgrd did not carry out (the error
 * says so), leaves a partly filled table, orphaned and never held by this
 * process: load again with ETSMGR_LOAD_REPLACE. */
#define ETSMGR_LOAD_REPLACE 1u
int etsmgr_table_load(etsmgr_client *c, const char *path, const char *name, unsigned flags,
                      etsmgr_table **out);

/* The held tables: *n of them in a client-owned array valid until the next
 * call that changes the set. */
etsmgr_table *const *etsmgr_client_tables(const etsmgr_client *c, size_t *n);

/* etsmgr:info(): every table the daemon manages. */
typedef struct etsmgr_managed {
    char name[ETSMGR_NAME_MAX + 1];
    int owned;           /* 1: owned by owner_pid; 0: orphaned (the daemon is heir) */
    pid_t owner_pid;
    char heir_data[256];
    uint64_t transfers, entries, capacity, bytes;
    char created[64];    /* ISO-8601 */
    etsmgr_access access;
} etsmgr_managed;
typedef struct etsmgr_info {
    pid_t pid;           /* the daemon's */
    char instance[ETSMGR_NAME_MAX + 1];
    uint64_t connections;
    size_t ntables;
    etsmgr_managed *tables;
} etsmgr_info;
int etsmgr_info_get(etsmgr_client *c, etsmgr_info **out);
void etsmgr_info_free(etsmgr_info *info);

/* The watch: reattachment in one call, for an application with a libuv loop.
 * It watches the connection without blocking the loop; when the daemon dies
 * (the connection closes) it calls down, retries every retry_ms, and when a
 * daemon answers again calls up, then add_table for every held table, calling
 * readded or failed for each.  Table handles stay usable throughout.  Tables
 * given to this process arrive through transfer (held from then on).
 * Callbacks may be NULL and may call the synchronous functions above (except
 * etsmgr_client_close).  The client must be connected when the watch starts.
 * The watch's handles are unref'd: they do not keep uv_run going alone. */
struct uv_loop_s;
typedef struct etsmgr_watch_cbs {
    void (*down)(etsmgr_client *c, pid_t daemon_pid, const char *reason, void *arg);
    void (*up)(etsmgr_client *c, pid_t daemon_pid, void *arg);
    void (*readded)(etsmgr_client *c, etsmgr_table *t, void *arg);
    void (*failed)(etsmgr_client *c, etsmgr_table *t, int err, const char *message, void *arg);
    void (*transfer)(etsmgr_client *c, etsmgr_table *t, const etsmgr_grant *g, void *arg);
    unsigned retry_ms; /* 0: 50 */
} etsmgr_watch_cbs;
int etsmgr_watch_start(etsmgr_client *c, struct uv_loop_s *loop, const etsmgr_watch_cbs *cbs, void *arg);
/* Stops watching (the handles close on the loop's next iteration). */
void etsmgr_watch_stop(etsmgr_client *c);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif

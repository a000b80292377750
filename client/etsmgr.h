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
} etsmgr_err;

/* Words for an error code; never NULL. */
const char *etsmgr_strerror(int err);

/* ------------------------------------------------------------------ tables */
#define ETSMGR_KEY_MAX 255u          /* keys are 1..255 bytes */
#define ETSMGR_VALUE_MAX 65536u      /* byte-string values are 0..64 KiB */
#define ETSMGR_NAME_MAX 64u          /* table names: [A-Za-z0-9_.-]{1,64} */

typedef struct etsmgr_table etsmgr_table;

typedef struct etsmgr_table_opts {
    uint64_t size_hint; /* bytes to reserve at creation; 0: a small default */
    uint64_t max_bytes; /* upper bound of the object's size; 0: no bound */
    unsigned mode;      /* permission bits of the shm object; 0: 0600 */
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
    uint64_t generation;  /* +1 on every ownership change */
    int64_t ctime_us;     /* creation, microseconds since the epoch */
    int32_t owner_pid;    /* diagnostics only: 0 when none */
    int32_t heir_pid;
} etsmgr_table_info;

/* Attach to the table behind fd (as received from etsmgrd).  Validates the
 * object before trusting it (magic, version, sizes, counts).  On success the
 * table owns fd; on failure fd is left open for the caller. */
int etsmgr_table_attach_fd(int fd, etsmgr_table **out);
/* Unmap and close.  The shared-memory object and its data stay. */
void etsmgr_table_close(etsmgr_table *t);
int etsmgr_table_fd(const etsmgr_table *t);
const char *etsmgr_table_name(const etsmgr_table *t);

/* Set semantics, like an ETS set.  Each call takes the table's robust lock,
 * remaps first if another process grew the table, and is atomic against
 * SIGKILL of any process at any point. */
int etsmgr_table_insert(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v);
int etsmgr_table_insert_new(etsmgr_table *t, const void *key, size_t klen, const etsmgr_value *v);
/* Copies the value out: an integer into out->i; bytes into buf (cap bytes),
 * with out->data = buf and out->len = the value's length.  ETSMGR_ERANGE when
 * cap is too small (out->len still tells the length needed). */
int etsmgr_table_lookup(etsmgr_table *t, const void *key, size_t klen, etsmgr_value *out,
                        void *buf, size_t cap);
int etsmgr_table_delete(etsmgr_table *t, const void *key, size_t klen);
/* Adds incr to the integer at key and stores the result in *newval; a missing
 * key starts at dflt (so the first call stores dflt + incr). */
int etsmgr_table_update_counter(etsmgr_table *t, const void *key, size_t klen, int64_t incr,
                                int64_t dflt, int64_t *newval);

/* Calls cb for each entry, under the table's lock: key and value point into
 * the table and are valid only during the call; cb must not call table
 * functions.  cb returns 0 to go on, anything else to stop (that value is
 * returned). */
typedef int (*etsmgr_foreach_cb)(const void *key, size_t klen, const etsmgr_value *v, void *arg);
int etsmgr_table_foreach(etsmgr_table *t, etsmgr_foreach_cb cb, void *arg);

int etsmgr_table_info_get(etsmgr_table *t, etsmgr_table_info *out);
/* A full consistency check of header, index and entries (a read-only walk).
 * ETSMGR_ECORRUPT with a reason in why (when why != NULL) if anything is off. */
int etsmgr_table_verify(etsmgr_table *t, char *why, size_t whylen);

/* Atomic groups: between begin and commit the ordinary calls above act on the
 * table under one lock and one recovery record, so that a SIGKILL anywhere
 * inside leaves none of the group's changes (the next locker rolls it back).
 * abort rolls back on purpose.  At most ETSMGR_GROUP_MAX changes per group. */
#define ETSMGR_GROUP_MAX 16
int etsmgr_table_begin(etsmgr_table *t);
int etsmgr_table_commit(etsmgr_table *t);
int etsmgr_table_abort(etsmgr_table *t);

/* ------------------------------------------------------------------ manager client */
/* (section owned by client/lib: connection, new_table, add_table, del_table,
 * give_away, info, and the libuv watch that reattaches after a daemon crash) */

#ifdef __cplusplus
}
#endif
#endif

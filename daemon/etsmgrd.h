/* SPDX-License-Identifier: Apache-2.0 */
/* etsmgrd.h: what the daemon's files share.
 *
 * The daemon is one libuv loop and one struct mgrd.  Two tables of state
 * live in it: the peers (one per connection, the "life line" of a client
 * process) and the registry of managed tables.  A table is either owned by a
 * peer or orphaned (the daemon is its heir); see docs/design.md, "Ownership
 * state machine".  Every file keeps its symbols under the mgrd_ prefix
 * because the program's objects (all but main.o) are also linked into the
 * test runner next to the other programs'. */
#ifndef ETSMGRD_H
#define ETSMGRD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>
#include <cjson/cJSON.h>

#include "conn.h"
#include "proto.h"
#include "etsmgr.h"
#include "runtime.h"

#define MGRD_DEFAULT_MAX_CONNS 1024
#define MGRD_DEFAULT_MAX_TABLES 4096
/* How long the daemon waits for a table's lock where it must (snapshot, an
 * owner record still to write at an orderly exit);
 * statuses, add_table's check, owner records and recover never wait
 * (tbl_info_nowait, registry.c, access.c).  An owner stopped while holding the lock
 * must not freeze the daemon. */
#define MGRD_LOCK_TIMEOUT_MS 100
/* what a table without size_hint takes at creation (the table store's default) */
#define MGRD_TABLE_DEFAULT_BYTES 65536
#define MGRD_HEIR_DATA_MAX 256   /* bytes of heir_data / give_away data */
/* Waits (new_table with "wait") one connection may have queued at once;
 * one more is refused too_many_waits.  A wait costs the daemon memory for
 * as long as the table's owner lives, and a peer of the table's uid could
 * pipeline them without end.  The library's etsmgr_new_table_wait blocks,
 * so a process has one wait per connection at a time (a timed-out one is
 * cancelled before the next); 64 leaves room to a raw client standing by
 * for many tables on one connection, and bounds what one connection makes
 * the daemon keep to 64 waits, each holding only its request's id (at
 * most a frame's worth). */
#define MGRD_MAX_WAITS_PER_CONN 64
/* bytes of table statuses in one info reply: the rest of the frame (64 KiB)
 * is left for the other fields, which are short and bounded */
#define MGRD_INFO_BUDGET 60000
/* where glibc's shm_open keeps POSIX shared memory: the daemon lists,
 * renames and stats its objects there, and names them so in its messages */
#define MGRD_SHM_DIR "/dev/shm"
/* "/<instance>:<uid>:<table>:<16 hex>" and a NUL; a temporary name adds "new-" (see shmobj.c) */
#define MGRD_SHM_NAME_MAX (1 + RT_INSTANCE_MAX + 1 + 10 + 1 + ETSMGR_NAME_MAX + 1 + 20 + 1)

/* "entry" or "entries": the log lines that count a table's entries (never
 * its request-id records, which an image holds as records too) */
static inline const char *mgrd_entries_word(unsigned long long n)
{
    return n == 1 ? "entry" : "entries";
}

typedef struct mgrd_peer mgrd_peer;

typedef enum mgrd_state { MGRD_OWNED = 1, MGRD_ORPHANED = 2 } mgrd_state;

/* What a peer asks to do to a table, for the one actor check
 * (mgrd_reg_may; the table of rules is at the top of registry.c). */
typedef enum mgrd_act {
    MGRD_ACT_TAKE,    /* new_table of a known name, add_table of the same object */
    MGRD_ACT_REPLACE, /* add_table of a new object under a managed name */
    MGRD_ACT_DELETE,  /* del_table */
    MGRD_ACT_FORCE_DELETE, /* del_table with force: even from a living owner */
    MGRD_ACT_GIVE,    /* give_away */
    MGRD_ACT_LOAD,    /* new_table exclusive of a managed name (then "exists") */
    MGRD_ACT_ADD,     /* add_table's first look, before the fd says which object */
    MGRD_ACT_LOAD_REPLACE, /* new_table exclusive+replace: only an orphan */
} mgrd_act;
typedef enum mgrd_verdict {
    MGRD_MAY = 0,
    MGRD_NOT_UID,      /* the table belongs to another uid */
    MGRD_OWNED_BY_OTHER, /* another living process owns it */
    MGRD_NOT_HELD,     /* orphaned, and the act needs the owner */
    MGRD_NOT_ORPHAN,   /* owned, even by the caller, and the act needs an orphan */
} mgrd_verdict;

/* One managed table.  The daemon keeps its own attachment (t) for the whole
 * time it manages the table: its fd is what new_table hands out, and its
 * header gives the status (entries, capacity, bytes). */
typedef struct mgrd_table {
    char name[ETSMGR_NAME_MAX + 1];
    char shm_name[MGRD_SHM_NAME_MAX];
    etsmgr_table *t;
    dev_t dev;               /* identity of the shm object we manage */
    ino_t ino;
    mgrd_peer *owner;        /* NULL when orphaned: the state is derived from it */
    pid_t owner_pid;         /* current owner, or the last one when orphaned */
    uid_t uid;               /* the uid the table belongs to */
    char heir_data[MGRD_HEIR_DATA_MAX + 1];
    uint64_t transfers;      /* ownership changes seen by this daemon */
    int64_t orphaned_us;     /* since when orphaned (µs, wall clock); 0 when owned */
    /* Found at start (rediscovery, restore), not orphaned by a death this
     * daemon saw: its last owner may still be alive and about to add it
     * back, so waiters do not take it while that pid lives (waiters.c). */
    bool found_at_start;
    /* --orphan-ttl's last look found that last owner alive (orphans.c):
     * the TTL counts from the first look that finds it gone */
    bool ttl_owner_lives;
    /* The owner got it as the reply to its wait (waiters.c), which it may
     * never read (its wait timed out): only such a table does cancel_wait
     * let go of; one that came by give_away, new_table or add_table the
     * owner was told of, and keeps, and so one it asked for again since
     * (mgrd_reg_give to its owner clears the mark). */
    bool by_wait;
    /* The owner to record in the header (tbl_set_owner), kept while a
     * living process holds the table's lock: the daemon does not wait for
     * it, a timer records it once the lock is free (registry.c). */
    bool rec_pending;
    pid_t rec_owner;
    int64_t rec_orphaned_us;
    struct mgrd_waiter *waiters; /* processes queued as its next owner, first first */
    struct mgrd_table *next;
} mgrd_table;

/* One connection.  Its close is the death of the client as far as the
 * daemon is concerned: the tables it owned become orphaned. */
struct mgrd_peer {
    conn *c;
    pid_t pid;
    uid_t uid;
    size_t owned;            /* tables this peer owns */
    size_t waits;            /* its queued waits, over all tables (waiters.c) */
    mgrd_peer *next;
};

typedef struct mgrd {
    rt_paths rt;
    uv_loop_t *loop;
    conn_server *srv;
    pid_t pid;
    size_t max_conns;
    size_t max_tables;
    bool stopping;           /* orderly exit: closing peers orphans nothing */
    /* Tables whose own object may exist while the registry does not hold
     * it (let go by del_table without unlink, invalid or doubled at
     * rediscovery): only a lookup of one of these names lists /dev/shm;
     * any other table's object is at its plain name (shmobj.c).  A name
     * leaves the list when a listing finds no object of it. */
    char (*unmanaged)[ETSMGR_NAME_MAX + 1];
    size_t n_unmanaged, cap_unmanaged;
    bool unmanaged_all;       /* the list could not grow: every lookup lists */
    unsigned long obj_listings; /* /dev/shm listings by lookups (tests count them) */
    uint64_t max_table_bytes; /* size_hint and max_bytes of a new table (limits.c) */
    uint64_t max_uid_bytes;   /* one uid's tables together */
    mgrd_table *tables;
    size_t ntables;
    size_t nwaiters;         /* queued new_table waiters over all tables */
    mgrd_peer *peers;
    size_t npeers;
    bool shared;             /* --group: dir 0750, socket and tables 0660 of gid */
    gid_t gid;
    char *snap_dir;          /* --snapshot-dir DIR/<instance>; NULL: no snapshots */
    unsigned snap_interval;  /* --snapshot-interval seconds; 0: none */
    unsigned orphan_ttl;     /* --orphan-ttl seconds; 0: orphans stay */
} mgrd;

/* registry.c: the managed tables */
mgrd_table *mgrd_reg_find(mgrd *m, const char *name);
/* Takes ownership of t (an attachment of shm_name); NULL when out of memory
 * (t is then left to the caller). */
mgrd_table *mgrd_reg_add(mgrd *m, const char *name, const char *shm_name, etsmgr_table *t, uid_t uid);
/* Forget a table: closes the daemon's attachment (the object stays). */
void mgrd_reg_remove(mgrd *m, mgrd_table *rt);
/* The table's state: owned exactly when it has an owner peer. */
mgrd_state mgrd_reg_state(const mgrd_table *rt);
/* May peer p do act to rt?  MGRD_MAY, or why not. */
mgrd_verdict mgrd_reg_may(const mgrd_table *rt, const mgrd_peer *p, mgrd_act act);
/* Ownership changes; each records the owner in the table header (bumping
 * its generation) and counts a transfer. */
void mgrd_reg_give(mgrd *m, mgrd_table *rt, mgrd_peer *to);
void mgrd_reg_orphan(mgrd *m, mgrd_table *rt);
/* What an orphaned table's give changes besides its owner, saved before a
 * give (mgrd_reg_was) that the receiver may not hear of, and put back by
 * mgrd_reg_ungive when it does not (a reply that could not be sent): the
 * table is then as it was, its last owner, found-at-start mark (which
 * holds its waiters back while that owner lives), orphaned-since,
 * transfer count and heir data included, and its header says so again. */
typedef struct mgrd_was {
    pid_t owner_pid;
    bool found_at_start;
    int64_t orphaned_us;
    uint64_t transfers;
    char heir_data[MGRD_HEIR_DATA_MAX + 1]; /* the taker's replaced it */
} mgrd_was;
void mgrd_reg_was(const mgrd_table *rt, mgrd_was *was);
void mgrd_reg_ungive(mgrd *m, mgrd_table *rt, const mgrd_was *was);
/* Every table p owns becomes orphaned, logged as the seed's ETS-TRANSFER.
 * During an orderly exit nothing is recorded or logged (the header keeps
 * its owner, the next daemon decides): the daemon only lets go of p. */
void mgrd_reg_orphan_all(mgrd *m, mgrd_peer *p);
/* Orderly exit: writes the owner records still to write (a table whose
 * lock was held at its change), waiting for each lock up to the lock
 * timeout, before the snapshots read the headers. */
void mgrd_reg_record_pending(mgrd *m);
/* Closes the timer of the owner records still to write (at exit). */
void mgrd_reg_stop(void);
/* The status object of one table (name, state, owner_pid, ...). */
cJSON *mgrd_reg_status(mgrd *m, mgrd_table *rt);
void mgrd_reg_free_all(mgrd *m);

/* peers.c: connections */
void mgrd_peer_open(conn *c, void *arg);
void mgrd_peer_close(conn *c, void *arg);
/* A connected peer of that pid and uid (the most recent one), or NULL. */
mgrd_peer *mgrd_peer_find(mgrd *m, pid_t pid, uid_t uid);

/* requests.c: the ops */
void mgrd_req_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg);

/* fdcheck.c: is fd an own object of table (shmobj.c)?  0 with the object in
 * *out, or -1 with the protocol error code in *code and words in msg.
 * known (may be NULL): the registered table, checked first without listing
 * /dev/shm. */
struct mgrd_obj;
int mgrd_fd_check(mgrd *m, const char *table, const mgrd_table *known, int fd, struct mgrd_obj *out,
                  proto_err *code, char *msg,
                  size_t msglen);
/* stat of the object shm_name (/dev/shm/...): 0 or -1 (errno) */
struct stat;
int mgrd_shm_stat(const char *shm_name, struct stat *st);
/* The reply for a table that could not be opened (rc, errno e from the table
 * store): a system failure (EMFILE, ENOMEM, ...) says so ("internal"),
 * a permission failure says whose object it is ("forbidden"), and only a
 * bad header is "invalid_table". */
cJSON *mgrd_open_error(const cJSON *req, const char *shm_name, int rc, int e);
/* The same classification in words, for log lines. */
void mgrd_open_why(const char *shm_name, int rc, int e, char *buf, size_t len);
/* st_dev/st_ino of fd; 0 or -1 (errno) */
int mgrd_fd_ident(int fd, dev_t *dev, ino_t *ino, uid_t *uid);

/* access.c: open_table and recover (the caller found rt by name).
 * open_table may set *reply_fd to an fd of its own, to close once sent
 * (*close_fd), or to the registry's. */
cJSON *mgrd_open_table(mgrd *m, const mgrd_peer *p, const cJSON *req, mgrd_table *rt, int *reply_fd,
                       bool *close_fd);
cJSON *mgrd_recover(mgrd *m, const mgrd_peer *p, const cJSON *req, mgrd_table *rt);
/* "private", "protected", "public" and back (-1: none of them) */
const char *mgrd_access_name(int access);
int mgrd_access_parse(const char *s);

/* shmobj.c: the objects behind the tables (names, ownership, creation) */
typedef struct mgrd_obj {
    char shm_name[MGRD_SHM_NAME_MAX];
    uid_t uid; /* the table's uid, from the name */
    dev_t dev;
    ino_t ino;
} mgrd_obj;
struct stat;
/* Made by this daemon: a regular file owned by its uid (nobody else can
 * make one, and the daemon never gives one away). */
bool mgrd_obj_own(const struct stat *st);
/* An own object of table (plain or placed name; any uid in the name), or
 * with match, the one with match's dev/ino: 1 found (*out), 0 none, -1
 * listing /dev/shm failed (errno).  Without match it looks at the plain
 * name of uid first and lists /dev/shm only when an own object of table
 * may be unmanaged (mgrd_obj_unmanaged); a listing that finds none drops
 * table from that list. */
int mgrd_obj_find(mgrd *m, const char *table, uid_t uid, const mgrd_obj *match, mgrd_obj *out);
/* An own object of table may stay while the registry does not hold it. */
void mgrd_obj_unmanaged(mgrd *m, const char *table);
void mgrd_obj_unmanaged_free(mgrd *m);
/* Build table of uid under a temporary name and rename it into place (or
 * beside another user's object that holds the name).  ETSMGR_OK with *out
 * and its name in shm_name; ETSMGR_EEXIST when an own object of that name
 * exists (its name in shm_name: adopt it); else the table store's error. */
int mgrd_obj_create(mgrd *m, uid_t uid, const char *table, const etsmgr_table_opts *opts,
                    etsmgr_table **out, char *shm_name, size_t len);
/* Build table of uid under a temporary name only (its name in tmp, which
 * holds MGRD_SHM_NAME_MAX + 24 bytes): ETSMGR_OK with *out, else the
 * table store's error (nothing is left behind). */
int mgrd_obj_build(mgrd *m, uid_t uid, const char *table, const etsmgr_table_opts *opts, etsmgr_table **out,
                   char *tmp, size_t len);
/* Rename the complete table at tmp over the own object shm_name, which it
 * replaces in one step: 0, or -1 with errno (both left as they were). */
int mgrd_obj_replace(const char *tmp, const char *shm_name);
/* The temporary name a table of base is built under (base:new-<16 hex>). */
void mgrd_obj_tmp_name(const char *base, char *buf, size_t len);
/* Rename the complete table at tmp into place: base, or beside base when
 * another user's object holds it (logged).  ETSMGR_OK with the name in
 * shm_name; ETSMGR_EEXIST when an own object holds base (tmp is left to
 * the caller); ETSMGR_ESYS (errno). */
int mgrd_obj_place(const char *tmp, const char *base, const char *table, char *shm_name, size_t len);
/* Remove a half-made object when it is our own; true when removed. */
bool mgrd_obj_reclaim(const char *shm_name);
/* Rename an object with a version-1 name to its name now (not replacing):
 * 0, or -1 with errno. */
int mgrd_obj_migrate(mgrd *m, const char *legacy, uid_t uid, const char *table, char *shm_name,
                     size_t len);

/* limits.c: size limits of new tables.  table/uid 0: the defaults (a
 * quarter and a half of /dev/shm). */
void mgrd_size_limits(mgrd *m, uint64_t table, uint64_t uid);
/* May uid create a table with opts (dflt: its size when size_hint is 0)?
 * going (NULL: none) is a table the new one replaces: its bytes are not
 * counted.  0, or -1 with words in msg. */
int mgrd_size_check(mgrd *m, uid_t uid, const etsmgr_table_opts *o, uint64_t dflt, const mgrd_table *going,
                    char *msg, size_t len);

/* waiters.c: processes queued to own a table next (new_table with "wait").
 * add queues p with its request's id (copied for the reply); the reply comes
 * when the table is handed over (or the table goes).  serve hands an
 * orphaned table to its first waiter, now: true when one took it. */
int mgrd_wait_add(mgrd *m, mgrd_table *rt, mgrd_peer *p, const cJSON *req, const char *heir_data);
bool mgrd_wait_serve(mgrd *m, mgrd_table *rt);
/* The first connection of process pid (of uid) waiting for rt, or NULL. */
mgrd_peer *mgrd_wait_peer(const mgrd_table *rt, pid_t pid, uid_t uid);
/* p, queued for rt, has just been given rt (give_away): its wait is
 * answered with the table, in place of the transfer event, so that a
 * process blocked in its wait learns that it owns the table.  1 answered,
 * 0 p does not wait for rt, -1 the reply could not be queued (errno). */
int mgrd_wait_answer(mgrd *m, mgrd_table *rt, mgrd_peer *p);
/* p leaves rt's queue (cancel_wait). */
void mgrd_wait_drop(mgrd *m, mgrd_table *rt, mgrd_peer *p);
/* The peer went: it leaves every queue. */
void mgrd_wait_drop_peer(mgrd *m, mgrd_peer *p);
/* The table goes: every waiter is answered with code and words. */
void mgrd_wait_fail_all(mgrd *m, mgrd_table *rt, proto_err code, const char *why);
/* The waiters' pids, first first, for the status (a new array). */
cJSON *mgrd_wait_status(const mgrd_table *rt);
/* May a waiter take the orphaned rt now?  False while a table found at start
 * still has its last owner alive. */
bool mgrd_wait_may_take(mgrd_table *rt);
/* Hands over tables whose found-at-start owner has died meanwhile (a timer
 * in main.c calls it while any table has waiters). */
void mgrd_wait_poll(mgrd *m);
/* Closes the poll timer (at exit). */
void mgrd_wait_stop(void);
/* The new_table reply that hands rt to its new owner (the fd to send with
 * it in *fd, the registry's own). */
cJSON *mgrd_reply_table(mgrd *m, const cJSON *req, mgrd_table *rt, bool created, int *fd);

/* rediscover.c: manage the shm objects an earlier daemon left, as orphaned.
 * Returns the number of tables taken over. */
size_t mgrd_rediscover(mgrd *m);

/* snapshot.c: --snapshot-dir.  setup makes DIR/<instance> (0700) and removes
 * the temporary files of saves that were killed; -1 with the reason logged. */
int mgrd_snap_setup(mgrd *m, const char *dir);
/* At start, after rediscovery: every snapshot whose table has no shm object
 * is restored as an orphaned table.  Returns how many. */
size_t mgrd_snap_restore(mgrd *m);
/* Save every managed table now (why: "SIGTERM", "interval", "etsmgrctl
 * snapshot").  Returns the number of failures; report (may be NULL) gets
 * "saved", "failed" and "tables". */
size_t mgrd_snap_all(mgrd *m, const char *why, cJSON *report);
/* The snapshot file of a table goes (it was deleted); quiet when none. */
void mgrd_snap_remove(mgrd *m, const char *name);
/* Starts the --snapshot-interval and --orphan-ttl timers (unref'd). */
int mgrd_timers_start(mgrd *m);
void mgrd_timers_stop(mgrd *m);

/* orphans.c: remove a table for good: its shm object, its snapshot, its
 * registry entry (rt is freed).  why goes to the log.  0, or -1 with errno
 * when the object could not be unlinked (the table then stays managed). */
int mgrd_table_destroy(mgrd *m, mgrd_table *rt, const char *why);
/* --orphan-ttl: remove the tables orphaned for longer; how many. */
size_t mgrd_orphans_expire(mgrd *m, int64_t now_us);
/* wall clock, µs since the epoch */
int64_t mgrd_now_us(void);
/* "4.2 s", "3 min 20 s", "5 h 2 min", "2 d 3 h" */
void mgrd_fmt_age(int64_t us, char *buf, size_t len);

/* ISO-8601 with microseconds and the local offset, from microseconds since
 * the epoch (for "created"). */
void mgrd_iso8601(int64_t us, char *buf, size_t len);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* mgr.h: the inside of libetsmgr's manager client, shared by the synchronous
 * calls (mgr_client.c, mgr_ops.c) and the libuv watch (mgr_watch.c).
 *
 * One connection, one reader.  Every byte from etsmgrd goes through
 * mc_recv_some into one frame_reader, whoever reads (a blocking call or the
 * watch's poll callback), so the stream can never be split between two
 * readers.  File descriptors arrive as SCM_RIGHTS with the first byte of the
 * frame that carries them; the fds of one read wait in a ledger (fdpass.h,
 * the same rule as common/prog/conn.c) until the frame they belong to is
 * decoded, and every fd is closed with its frame unless a handler takes it
 * (mc_pop_fd).  So a late reply to a call that timed out takes its table fd
 * with it when it is dropped, instead of leaving it for the next call to
 * pick up. */
#ifndef ETSMGR_MGR_H
#define ETSMGR_MGR_H
#include <stdint.h>
#include <sys/types.h>
#include <cjson/cJSON.h>
#include "etsmgr.h"
#include "frame.h"
#include "runtime.h"

#define MC_DEFAULT_TIMEOUT_MS 5000
#define MC_DEFAULT_POLL_MS 100

typedef struct mc_transfer {
    etsmgr_table *t;
    etsmgr_grant g;
} mc_transfer;

/* A request whose call timed out: its reply, when it comes, still tells
 * what the daemon did, and the client's state follows it (mc_late_reply). */
enum mc_late_kind {
    MC_LATE_NEW,    /* new_table (not a wait): an ok makes us owner of a table the app never got */
    MC_LATE_LET_GO, /* del_table, give_away: an ok means t is gone, a refusal that it is still ours */
};
typedef struct mc_late {
    uint64_t id;
    enum mc_late_kind kind;
    char name[ETSMGR_NAME_MAX + 1];
    etsmgr_table *t; /* LET_GO: the handle, unheld until the reply; NULL: nobody wants it back */
    char *heir;      /* LET_GO: its heir_data, to hold it again */
} mc_late;

struct mc_watch;

struct etsmgr_client {
    rt_paths rt;
    char sock_path[RT_PATH_MAX];
    int fd;           /* -1 when not connected */
    pid_t daemon_pid; /* 0 when not connected */
    int timeout_ms;
    uint64_t next_id;
    frame_reader rd;
    uint64_t rx_total, rx_consumed; /* stream offsets: bytes read, bytes decoded */
    uint64_t scan;                  /* frame_reader_tail_start's cursor */
    fdpass_ledger fdl;              /* fds read, waiting for their frame */
    int frame_fds[FRAME_MAX_FDS]; /* the fds of the frame mc_next_frame returned last */
    int frame_nfds;
    etsmgr_table **tables; /* held tables */
    char **heirs;          /* their heir_data (malloc'd), sent again on add_table */
    size_t ntables, captables;
    mc_transfer *pending; /* transfers received, not yet handed out */
    size_t npending, cappending;
    struct mc_errinfo {
        char code[32]; /* the daemon's error code; "" when none or local */
        char msg[1024]; /* words for a person: a path, the reason and what to do fit */
    } err;             /* the last failure (saved and put back whole) */
    uint64_t last_id;     /* the id of the request mc_call sent last */
    mc_late *late;        /* timed-out requests whose replies may still come */
    size_t nlate, caplate;
    char (*release)[ETSMGR_NAME_MAX + 1]; /* tables to give back at the next chance (mc_release_flush) */
    size_t nrelease, caprelease;
    struct mc_watch *watch;
};

/* mgr_client.c: connection and frames */
int mc_err(etsmgr_client *c, int err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void mc_clear_err(etsmgr_client *c);
/* Connects (non-blocking socket when nonblock) and resets the reader; 0 or
 * ETSMGR_ENOTCONN with the reason recorded. */
int mc_open(etsmgr_client *c, int nonblock);
/* Drops the connection: closes the fd and queued fds, resets the reader. */
void mc_drop(etsmgr_client *c);
/* One recvmsg (flags: 0 or MSG_DONTWAIT) into the reader: bytes read, 0 at
 * end of stream, -1 with errno. */
ssize_t mc_recv_some(etsmgr_client *c, int flags);
/* The next whole frame as JSON: 1 (*obj set), 0 need more bytes, -1 the
 * stream is broken (reason recorded).  The fds that came with it wait in
 * frame_fds until mc_pop_fd takes one or the next frame (or mc_frame_done)
 * closes them. */
int mc_next_frame(etsmgr_client *c, cJSON **obj);
int mc_pop_fd(etsmgr_client *c); /* the current frame's next fd; -1 when none */
void mc_frame_done(etsmgr_client *c); /* closes the current frame's fds not taken */
/* Handles an unsolicited frame (it has "event"); 1 when it was one. */
int mc_handle_event(etsmgr_client *c, cJSON *obj);
/* A pending transfer's table goes (closed), when it is still pending: whether it was. */
bool mc_pending_drop(etsmgr_client *c, const etsmgr_table *t);
/* After a restart of etsmgrd: add_table for every pending transfer, whose
 * table is ours too; one the daemon refuses is dropped. */
void mc_pending_readd(etsmgr_client *c);
/* Interprets a reply: ETSMGR_OK, or the daemon's error recorded and mapped. */
int mc_reply_status(etsmgr_client *c, const cJSON *reply);
/* A blocking request/reply (req is consumed; id added).  send_fd >= 0 goes
 * with the frame; when want_fd, an ok reply must carry one (in *rfd). */
int mc_call(etsmgr_client *c, cJSON *req, int send_fd, cJSON **reply, int want_fd, int *rfd);
int mc_hello(etsmgr_client *c, int timeout_ms);
/* The request mc_call sent last timed out: remember it (kind, table name;
 * t for LET_GO, which is unheld here and kept until the reply decides).
 * ETSMGR_OK, or ETSMGR_ENOMEM with nothing changed. */
int mc_late_add(etsmgr_client *c, enum mc_late_kind kind, const char *name, etsmgr_table *t);
/* A reply nobody waits for: when it answers a late request, the client's
 * state follows what the daemon did. */
void mc_late_reply(etsmgr_client *c, const cJSON *obj);
/* t, in doubt after a timed-out let-go, is closed now and not held again
 * whatever the reply says (a refusal gives the table back instead). */
void mc_late_disown(etsmgr_client *c, etsmgr_table *t);
/* name, made this process's by a reply the application does not get, is
 * to be given back (mc_release_flush); out of memory, it stays ours until
 * the connection closes. */
void mc_release_add(etsmgr_client *c, const char *name);
/* Sends "release" for each table made ours by a late reply that the
 * application does not hold; the replies are not waited for.  Only between
 * calls: never while a reply that could hand the app one of them is due. */
void mc_release_flush(etsmgr_client *c);
uint64_t mc_id(const cJSON *obj); /* the reply's numeric id, 0 when none */
/* A JSON number as uint64_t: 0 when not a number in (0, 2^64). */
uint64_t mc_json_u64(const cJSON *v);

/* held tables */
/* heir_data NULL: keep what is recorded, else the table's name */
int mc_hold(etsmgr_client *c, etsmgr_table *t, const char *heir_data);
ssize_t mc_held_index(const etsmgr_client *c, const etsmgr_table *t);
const char *mc_heir(const etsmgr_client *c, const etsmgr_table *t);
void mc_unhold(etsmgr_client *c, etsmgr_table *t);

/* mgr_ops.c */
/* new_table; create: 0 get or create, MC_CREATE_EXCLUSIVE only create
 * (ETSMGR_EEXIST when the name exists), MC_CREATE_REPLACE create, replacing
 * an orphaned table of that name. */
#define MC_CREATE_EXCLUSIVE 1
#define MC_CREATE_REPLACE 2
/* ... or queue as the next owner of a table a living process owns
 * (etsmgr_new_table_wait); not with the two above */
#define MC_CREATE_WAIT 4
int mc_new_table(etsmgr_client *c, const char *name, const etsmgr_table_opts *opts,
                 const char *heir_data, int create, etsmgr_table **out, etsmgr_grant *grant);
cJSON *mc_add_table_req(etsmgr_client *c, etsmgr_table *t);
int mc_grant_from(const cJSON *obj, const char *pid_field, etsmgr_grant *g);

/* mgr_watch.c */
void mc_watch_kick(etsmgr_client *c); /* deliver pending transfers soon */
int mc_watch_busy(const etsmgr_client *c); /* the watch is (re)connecting */
void mc_watch_free(etsmgr_client *c);
#endif

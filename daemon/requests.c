/* SPDX-License-Identifier: Apache-2.0 */
/* requests.c: the ops of etsmgrd's protocol (docs/protocol.md).
 *
 * One function per op.  Each returns its reply object (never NULL unless out
 * of memory) and may name an fd to send with it.  The received fds are the
 * dispatcher's: a handler that keeps one sets its slot to -1, and the
 * dispatcher closes whatever is left, so no path can leak a descriptor, and
 * an op that takes no fd gets `unexpected_fd` with its fds closed.
 *
 * Nothing a peer sends can stop the daemon: every field is checked for
 * presence and type (proto_get_*), every table name against
 * [A-Za-z0-9_.-]{1,64} before it becomes part of a shm name (proto.c has
 * already refused NULs, which cJSON's C strings would silently cut short). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "etsmgrd.h"
#include "log.h"
#include "proto.h"
#include "table.h"

typedef struct req_ctx {
    mgrd *m;
    conn *c;
    mgrd_peer *p;
    const cJSON *req;
    int *fds;
    int nfds;
    int reply_fd; /* sent with the reply; owned by the registry, not closed */
    /* What new_table did, undone when its reply cannot be sent with the fd
     * (the daemon at its fd limit): the caller hears of a failure and the
     * table is as it was. */
    enum { UNDO_NONE, UNDO_CREATED, UNDO_ADOPTED, UNDO_GIVEN } undo;
    mgrd_table *undo_rt;
    mgrd_was was; /* UNDO_GIVEN: the orphan as it was before the give */
    bool close_reply_fd; /* ... unless this says it was opened for the reply */
    bool deferred; /* no reply now: queued as a waiter (waiters.c answers later) */
} req_ctx;

typedef cJSON *(*op_fn)(req_ctx *x);

/* ------------------------------------------------------------ helpers */

/* The required "name" field, a valid table name; on failure *err is the
 * reply. */
static const char *get_name(req_ctx *x, cJSON **err)
{
    const char *name = NULL;
    char msg[160];
    int rc = proto_get_string(x->req, "name", &name, msg, sizeof msg);
    if (rc > 0) {
        *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "missing field \"name\" (a table name)");
        return NULL;
    }
    if (rc < 0) {
        *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "%s", msg);
        return NULL;
    }
    size_t len = strlen(name);
    if (!rt_valid_name(name, len)) {
        *err = proto_reply_err(x->req, PROTO_E_BAD_NAME,
                               "table name \"%.64s%s\" (%zu bytes) is invalid: it must match "
                               "[A-Za-z0-9_.-]{1,64} and not be \".\" or \"..\"",
                               name, len > 64 ? "..." : "", len);
        return NULL;
    }
    return name;
}

/* An optional string field of at most MGRD_HEIR_DATA_MAX bytes. */
static int get_short_string(req_ctx *x, const char *field, const char **out, cJSON **err)
{
    char msg[160];
    int rc = proto_get_string(x->req, field, out, msg, sizeof msg);
    if (rc < 0) {
        *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "%s", msg);
        return -1;
    }
    if (rc == 0 && strlen(*out) > MGRD_HEIR_DATA_MAX) {
        *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "field \"%s\" is longer than %d bytes", field,
                               MGRD_HEIR_DATA_MAX);
        return -1;
    }
    return rc;
}

static cJSON *err_owned(req_ctx *x, mgrd_table *rt, proto_err code)
{
    cJSON *r = proto_reply_err(x->req, code, "table %s is owned by the living process %d", rt->name,
                               (int)rt->owner_pid);
    if (r)
        cJSON_AddNumberToObject(r, "owner_pid", (double)rt->owner_pid);
    return r;
}

static cJSON *err_forbidden(req_ctx *x, mgrd_table *rt)
{
    return proto_reply_err(x->req, PROTO_E_FORBIDDEN,
                           "table %s belongs to uid %u; the caller is uid %u. Tables of one instance share "
                           "names: use another instance (--instance, ETSMGR_INSTANCE)",
                           rt->name, (unsigned)rt->uid, (unsigned)x->p->uid);
}

/* The one actor check (the rules are in registry.c): false when the caller
 * may do act to rt, else true with the refusal in *err.  Only the words
 * differ by act: taking or loading a table owned by a living process is a
 * name conflict ("owned"), deleting or giving it is "not_owner". */
static bool refused(req_ctx *x, mgrd_table *rt, mgrd_act act, cJSON **err)
{
    switch (mgrd_reg_may(rt, x->p, act)) {
    case MGRD_MAY:
        return false;
    case MGRD_NOT_UID:
        *err = err_forbidden(x, rt);
        break;
    case MGRD_OWNED_BY_OTHER:
    case MGRD_NOT_ORPHAN:
        *err = err_owned(x, rt, act == MGRD_ACT_DELETE || act == MGRD_ACT_GIVE ? PROTO_E_NOT_OWNER : PROTO_E_OWNED);
        break;
    case MGRD_NOT_HELD:
        *err = proto_reply_err(x->req, PROTO_E_NOT_OWNER, "table %s is orphaned; take it with new_table first",
                               rt->name);
        break;
    }
    return true;
}

/* Read without waiting for the lock, as every header word the daemon only
 * reports (tbl_info_nowait): a reply must not wait for a lock that its
 * owner holds.  It is the generation as recorded: only the daemon changes
 * it, but a change whose record waits for the lock (registry.c) is not
 * there yet, and the reply gives the one before. */
static uint64_t table_generation(mgrd_table *rt)
{
    etsmgr_table_info info;
    return tbl_info_nowait(rt->t, &info, NULL) == ETSMGR_OK ? info.generation : 0;
}

static void set_heir_data(mgrd_table *rt, const char *hd)
{
    if (hd)
        snprintf(rt->heir_data, sizeof rt->heir_data, "%s", hd);
}

static cJSON *too_many_tables(req_ctx *x)
{
    return proto_reply_err(x->req, PROTO_E_TOO_MANY_TABLES,
                           "the daemon manages %zu tables, its limit (--max-tables)", x->m->ntables);
}

/* ------------------------------------------------------------ ops */

static cJSON *op_hello(req_ctx *x)
{
    cJSON *r = proto_reply_ok(x->req);
    if (!r)
        return NULL;
    cJSON_AddNumberToObject(r, "protocol", PROTO_VERSION);
    cJSON_AddNumberToObject(r, "pid", (double)x->m->pid);
    cJSON_AddStringToObject(r, "instance", x->m->rt.instance);
    cJSON_AddStringToObject(r, "version", ETSMGR_VERSION_STRING);
    return r;
}

static int cmp_table_name(const void *a, const void *b)
{
    const mgrd_table *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Who sees a table in info: its own uid, and root. */
static bool may_see(const req_ctx *x, const mgrd_table *rt)
{
    return x->p->uid == 0 || rt->uid == x->p->uid;
}

/* info/tables.  A page holds the tables sorted by name after "after" (all
 * of them when absent) as long as the reply stays under MGRD_INFO_BUDGET
 * bytes, so that 4096 tables with the longest names and heir data list in
 * frames under FRAME_MAX; "more" says a next page exists (ask again with
 * "after" = the last name).  A client that does not know "more" sees the
 * first page, a daemon that does not know "after" answers everything. */
static cJSON *op_info(req_ctx *x)
{
    mgrd *m = x->m;
    const char *only = NULL, *after = NULL;
    char msg[160];
    if (proto_get_string(x->req, "name", &only, msg, sizeof msg) < 0 ||
        proto_get_string(x->req, "after", &after, msg, sizeof msg) < 0)
        return proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "%s", msg);
    mgrd_table **v = calloc(m->ntables ? m->ntables : 1, sizeof *v);
    if (!v)
        return proto_reply_err(x->req, PROTO_E_INTERNAL, "out of memory");
    size_t n = 0;
    for (mgrd_table *rt = m->tables; rt; rt = rt->next)
        if (may_see(x, rt) && (!only || strcmp(only, rt->name) == 0) &&
            (!after || strcmp(rt->name, after) > 0))
            v[n++] = rt;
    if (only && n == 0 && !after) {
        free(v);
        return proto_reply_err(x->req, PROTO_E_NOT_FOUND, "no table named \"%.64s\" of uid %u is managed", only,
                               (unsigned)x->p->uid);
    }
    qsort(v, n, sizeof *v, cmp_table_name);
    cJSON *r = proto_reply_ok(x->req);
    cJSON *arr = r ? cJSON_AddArrayToObject(r, "tables") : NULL;
    if (!arr) {
        free(v);
        cJSON_Delete(r);
        return NULL;
    }
    cJSON_AddNumberToObject(r, "pid", (double)m->pid);
    cJSON_AddStringToObject(r, "instance", m->rt.instance);
    cJSON_AddNumberToObject(r, "connections", (double)m->npeers);
    cJSON_AddNumberToObject(r, "max_connections", (double)m->max_conns);
    cJSON_AddNumberToObject(r, "max_tables", (double)m->max_tables);
    cJSON_AddNumberToObject(r, "max_table_bytes", (double)m->max_table_bytes);
    cJSON_AddNumberToObject(r, "max_uid_bytes", (double)m->max_uid_bytes);
    size_t used = 0, i = 0;
    for (; i < n; i++) {
        cJSON *st = mgrd_reg_status(m, v[i]);
        if (!st)
            break;
        char *txt = cJSON_PrintUnformatted(st);
        size_t len = txt ? strlen(txt) + 1 : 0;
        cJSON_free(txt);
        if (!txt || (i > 0 && used + len > MGRD_INFO_BUDGET)) {
            cJSON_Delete(st);
            break;
        }
        used += len;
        cJSON_AddItemToArray(arr, st);
    }
    cJSON_AddBoolToObject(r, "more", i < n);
    free(v);
    return r;
}

static int get_opts(req_ctx *x, etsmgr_table_opts *opts, cJSON **err)
{
    memset(opts, 0, sizeof *opts);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(x->req, "opts");
    if (!o || cJSON_IsNull(o))
        return 0;
    if (!cJSON_IsObject(o)) {
        *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "field \"opts\" must be an object");
        return -1;
    }
    char msg[160];
    int64_t v;
    int rc = proto_get_int(o, "size_hint", 0, INT64_MAX, &v, msg, sizeof msg);
    if (rc < 0)
        goto bad;
    if (rc == 0)
        opts->size_hint = (uint64_t)v;
    rc = proto_get_int(o, "max_bytes", 0, INT64_MAX, &v, msg, sizeof msg);
    if (rc < 0)
        goto bad;
    if (rc == 0)
        opts->max_bytes = (uint64_t)v;
    const char *access = NULL;
    rc = proto_get_string(o, "access", &access, msg, sizeof msg);
    if (rc < 0)
        goto bad;
    if (rc == 0) {
        int a = mgrd_access_parse(access);
        if (a < 0) {
            *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST,
                                   "opts: access must be \"private\", \"protected\" or \"public\", not \"%.32s\"",
                                   access);
            return -1;
        }
        opts->access = (etsmgr_access)a;
    }
    const char *type = NULL;
    rc = proto_get_string(o, "type", &type, msg, sizeof msg);
    if (rc < 0)
        goto bad;
    if (rc == 0) {
        if (strcmp(type, "set") == 0) {
            opts->type = ETSMGR_SET;
        } else if (strcmp(type, "ordered_set") == 0) {
            opts->type = ETSMGR_ORDERED_SET;
        } else {
            *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST,
                                   "opts: type must be \"set\" or \"ordered_set\", not \"%.32s\"", type);
            return -1;
        }
    }
    return 0;
bad:
    *err = proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "opts: %s", msg);
    return -1;
}

/* A table keeps the type it was created with: asking for the other one is
 * refused, in words, rather than handing out a table that behaves otherwise
 * than the caller expects.  NULL: the types agree. */
static cJSON *wrong_type(req_ctx *x, etsmgr_table *t, const char *name, const etsmgr_table_opts *opts)
{
    etsmgr_table_info info;
    if (tbl_info_nowait(t, &info, NULL) != ETSMGR_OK || info.type == opts->type)
        return NULL;
    static const char *const names[] = {"set", "ordered_set"};
    return proto_reply_err(x->req, PROTO_E_WRONG_TYPE, "table %s exists as an %s%s, not an %s%s; "
                           "delete it (del_table with unlink) to create it with the other type",
                           name, info.type == ETSMGR_ORDERED_SET ? "" : "ordinary ", names[info.type & 1],
                           opts->type == ETSMGR_ORDERED_SET ? "" : "ordinary ", names[opts->type & 1]);
}

cJSON *mgrd_reply_table(mgrd *m, const cJSON *req, mgrd_table *rt, bool created, int *fd)
{
    cJSON *r = proto_reply_ok(req);
    if (!r)
        return NULL;
    cJSON_AddStringToObject(r, "name", rt->name);
    cJSON_AddBoolToObject(r, "created", created);
    cJSON_AddNumberToObject(r, "from_pid", (double)m->pid);
    cJSON_AddStringToObject(r, "data", "etsmgr");
    cJSON_AddNumberToObject(r, "generation", (double)table_generation(rt));
    *fd = etsmgr_table_fd(rt->t);
    return r;
}

static cJSON *reply_table(req_ctx *x, mgrd_table *rt, bool created)
{
    return mgrd_reply_table(x->m, x->req, rt, created, &x->reply_fd);
}

/* new_table with "wait": queue the caller as the table's next owner (no
 * reply until it gets the table, or the table goes). */
static cJSON *queue_waiter(req_ctx *x, mgrd_table *rt, const char *heir_data)
{
    if (x->p->waits >= MGRD_MAX_WAITS_PER_CONN)
        return proto_reply_err(x->req, PROTO_E_TOO_MANY_WAITS,
                               "this connection already has %d waits queued, the most etsmgrd keeps for one "
                               "connection; this wait for table %s was not queued (cancel_wait ends the waits "
                               "for a table)",
                               MGRD_MAX_WAITS_PER_CONN, rt->name);
    if (mgrd_wait_add(x->m, rt, x->p, x->req, heir_data) < 0)
        return proto_reply_err(x->req, PROTO_E_INTERNAL, "out of memory queueing the wait for table %s", rt->name);
    x->deferred = true;
    return NULL;
}

/* An own object of the table exists but the daemon does not manage it (it
 * was let go with del_table, or appeared after the start-up scan, or was
 * invalid then): adopt it if it is a valid table of the caller's uid and
 * of the type asked for.  Every check comes before the registration: a
 * refused request leaves the object as unmanaged as it found it (adopted,
 * it would be an orphan that --orphan-ttl may remove, data and all). */
static mgrd_table *adopt_existing(req_ctx *x, const char *name, const mgrd_obj *o, const etsmgr_table_opts *opts,
                                  cJSON **err)
{
    if (o->uid != x->p->uid) {
        *err = proto_reply_err(x->req, PROTO_E_FORBIDDEN,
                               "table %s belongs to uid %u (its object is /dev/shm%s); the caller is uid %u. "
                               "Tables of one instance share names: use another instance (--instance, "
                               "ETSMGR_INSTANCE)",
                               name, (unsigned)o->uid, o->shm_name, (unsigned)x->p->uid);
        return NULL;
    }
    etsmgr_table *t = NULL;
    int rc = tbl_open(o->shm_name, &t);
    if (rc < 0) {
        *err = mgrd_open_error(x->req, o->shm_name, rc, errno);
        return NULL;
    }
    if (strcmp(etsmgr_table_name(t), name) != 0) {
        *err = proto_reply_err(x->req, PROTO_E_INVALID_TABLE, "%s%s holds table %.64s, not %s",
                               MGRD_SHM_DIR, o->shm_name, etsmgr_table_name(t), name);
        etsmgr_table_close(t);
        return NULL;
    }
    if ((*err = wrong_type(x, t, name, opts)) != NULL) {
        etsmgr_table_close(t);
        return NULL;
    }
    mgrd_table *rt = mgrd_reg_add(x->m, name, o->shm_name, t, o->uid);
    if (!rt) {
        etsmgr_table_close(t);
        *err = proto_reply_err(x->req, PROTO_E_INTERNAL, "out of memory");
    }
    return rt;
}

static cJSON *err_listing(req_ctx *x)
{
    return proto_reply_err(x->req, PROTO_E_INTERNAL, "cannot list /dev/shm: %s", strerror(errno));
}

/* The reply for a table the table store could not create (rc, errno e);
 * tail says what became of the rest ("" when nothing else was at stake). */
static cJSON *create_error(req_ctx *x, const char *name, int rc, int e, const char *tail)
{
    switch (rc) {
    case ETSMGR_EINVAL:
        return proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "opts rejected by the table store: %s%s",
                               etsmgr_strerror(rc), tail);
    case ETSMGR_EFULL:
        return proto_reply_err(x->req, PROTO_E_NO_SPACE, "cannot create table %s: %s%s", name,
                               etsmgr_strerror(rc), tail);
    case ETSMGR_ESYS:
        return proto_reply_err(x->req, PROTO_E_INTERNAL, "cannot create table %s: %s: %s%s", name,
                               etsmgr_strerror(rc), strerror(e), tail);
    default:
        return proto_reply_err(x->req, PROTO_E_INTERNAL, "cannot create table %s: %s%s", name,
                               etsmgr_strerror(rc), tail);
    }
}

/* A table just made (t, at shm_name) is registered and given to the
 * caller; undone when the reply cannot carry its fd. */
static cJSON *give_created(req_ctx *x, const char *name, const char *shm_name, etsmgr_table *t,
                           const char *heir_data)
{
    mgrd_table *rt = mgrd_reg_add(x->m, name, shm_name, t, x->p->uid);
    if (!rt) {
        etsmgr_table_close(t);
        tbl_unlink(shm_name);
        return proto_reply_err(x->req, PROTO_E_INTERNAL, "out of memory");
    }
    mgrd_reg_give(x->m, rt, x->p);
    rt->transfers = 0; /* creation is not a transfer */
    x->undo = UNDO_CREATED;
    x->undo_rt = rt;
    set_heir_data(rt, heir_data);
    log_info("new_table: created table=%s for pid=%d, heir_data=%s.", name, (int)x->p->pid,
             rt->heir_data[0] ? rt->heir_data : "none");
    return reply_table(x, rt, true);
}

/* A load with replace (exclusive+replace) of the orphan old.  Every check
 * that can refuse comes before the orphan goes, so that a refused request
 * leaves it as it was, data and snapshot included: the size limits (the
 * orphan's bytes not counted: they go), then the new table is built whole
 * under a temporary name (the table store's option checks, no_space), and
 * only then does it take the orphan's object's place, in one rename, under
 * the same name; the orphan's snapshot and registry entry go after that. */
static cJSON *load_replace(req_ctx *x, mgrd_table *old, const char *name, const etsmgr_table_opts *opts,
                           const char *heir_data)
{
    static const char kept[] = "; the orphaned table is left as it was";
    mgrd *m = x->m;
    char lmsg[300];
    if (mgrd_size_check(m, x->p->uid, opts, MGRD_TABLE_DEFAULT_BYTES, old, lmsg, sizeof lmsg) < 0)
        return proto_reply_err(x->req, PROTO_E_TOO_LARGE, "table %s not replaced: %s%s", name, lmsg, kept);
    char tmp[MGRD_SHM_NAME_MAX + 24], shm_name[MGRD_SHM_NAME_MAX];
    etsmgr_table *t = NULL;
    int rc = mgrd_obj_build(m, x->p->uid, name, opts, &t, tmp, sizeof tmp);
    if (rc < 0)
        return create_error(x, name, rc, errno, kept);
    snprintf(shm_name, sizeof shm_name, "%s", old->shm_name);
    if (mgrd_obj_replace(tmp, shm_name) < 0) {
        int e = errno;
        etsmgr_table_close(t);
        rc = tbl_unlink(tmp);
        if (rc < 0)
            log_warning("new_table: cannot remove the unused new table %s%s: %s", MGRD_SHM_DIR, tmp,
                        rc == ETSMGR_ESYS ? strerror(errno) : etsmgr_strerror(rc));
        return proto_reply_err(x->req, PROTO_E_INTERNAL, "cannot rename the new table %s over %s%s: %s%s",
                               name, MGRD_SHM_DIR, shm_name, strerror(e), kept);
    }
    /* the orphan's object is gone now: its snapshot and entry follow */
    mgrd_snap_remove(m, name);
    mgrd_reg_remove(m, old);
    log_notice("new_table: the orphaned table=%s is replaced (by pid=%d).", name, (int)x->p->pid);
    return give_created(x, name, shm_name, t, heir_data);
}

static cJSON *op_new_table(req_ctx *x)
{
    mgrd *m = x->m;
    cJSON *err = NULL;
    const char *name = get_name(x, &err);
    if (!name)
        return err;
    const char *heir_data = NULL;
    if (get_short_string(x, "heir_data", &heir_data, &err) < 0)
        return err;
    etsmgr_table_opts opts;
    if (get_opts(x, &opts, &err) < 0)
        return err;
    if (m->shared)
        opts.mode = 0660; /* --group: the group may map it; acting on it is still the uid's */
    /* exclusive (a load): only create; replace: an orphaned table of that
     * name is replaced, and its snapshot goes (load_replace) */
    bool exclusive = false, replace = false, wait = false;
    char bmsg[160];
    if (proto_get_bool(x->req, "wait", &wait, bmsg, sizeof bmsg) < 0 ||
        proto_get_bool(x->req, "exclusive", &exclusive, bmsg, sizeof bmsg) < 0 ||
        proto_get_bool(x->req, "replace", &replace, bmsg, sizeof bmsg) < 0)
        return proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "%s", bmsg);

    mgrd_table *rt = mgrd_reg_find(m, name);
    if (rt && exclusive) {
        if (refused(x, rt, replace ? MGRD_ACT_LOAD_REPLACE : MGRD_ACT_LOAD, &err))
            return err;
        if (!replace)
            return proto_reply_err(x->req, PROTO_E_EXISTS, "table %s exists (%s); replacing it takes "
                                   "\"replace\" (etsmgrctl load --replace), and only an orphaned one",
                                   name, rt->owner ? "owned" : "orphaned");
        return load_replace(x, rt, name, &opts, heir_data);
    }
    if (rt && wait && !exclusive) {
        /* a standby: wait where a plain new_table would hear "owned", and
         * for a table found at start while its last owner still lives --
         * unless the caller is that owner (its handover's reply went with
         * the daemon, and it waits again): it would wait behind itself */
        mgrd_verdict v = mgrd_reg_may(rt, x->p, MGRD_ACT_TAKE);
        if ((v == MGRD_OWNED_BY_OTHER) ||
            (v == MGRD_MAY && !rt->owner && !mgrd_wait_may_take(rt) && rt->owner_pid != x->p->pid)) {
            /* waiting changes when the caller gets the table, never
             * whether: the other type is refused now, as it would be
             * without wait.  Checked once: a managed table keeps its
             * object, and so its type, until it goes (its waiters then
             * hear not_found), so the handover need not look again. */
            if ((err = wrong_type(x, rt->t, name, &opts)) != NULL)
                return err;
            return queue_waiter(x, rt, heir_data);
        }
    }
    if (rt) {
        if (refused(x, rt, MGRD_ACT_TAKE, &err))
            return err;
        if ((err = wrong_type(x, rt->t, name, &opts)) != NULL)
            return err;
        bool again = rt->owner == x->p;
        if (!again) {
            x->undo = UNDO_GIVEN; /* it was orphaned */
            x->undo_rt = rt;
            mgrd_reg_was(rt, &x->was);
        }
        mgrd_reg_give(m, rt, x->p);
        set_heir_data(rt, heir_data);
        etsmgr_table_info info;
        unsigned long long entries = tbl_info_nowait(rt->t, &info, NULL) == ETSMGR_OK ? info.entries : 0;
        log_notice("new_table: table=%s given %sto pid=%d with its data (%llu %s), heir_data=%s.",
                   name, again ? "again " : "", (int)x->p->pid, entries, mgrd_entries_word(entries),
                   rt->heir_data[0] ? rt->heir_data : "none");
        return reply_table(x, rt, false);
    }

    if (m->ntables >= m->max_tables)
        return too_many_tables(x);
    mgrd_obj o;
    int f = mgrd_obj_find(m, name, x->p->uid, NULL, &o);
    if (f < 0)
        return err_listing(x);
    if (f == 0) {
        char lmsg[300];
        if (mgrd_size_check(m, x->p->uid, &opts, MGRD_TABLE_DEFAULT_BYTES, NULL, lmsg, sizeof lmsg) < 0)
            return proto_reply_err(x->req, PROTO_E_TOO_LARGE, "table %s not created: %s", name, lmsg);
    }
    char shm_name[MGRD_SHM_NAME_MAX];
    etsmgr_table *t = NULL;
    int rc = ETSMGR_EEXIST;
    if (f == 0)
        rc = mgrd_obj_create(m, x->p->uid, name, &opts, &t, shm_name, sizeof shm_name);
    if (rc == ETSMGR_EEXIST && exclusive)
        return proto_reply_err(x->req, PROTO_E_EXISTS, "table %s exists in shared memory but is not managed "
                               "(not a valid table?); it is left untouched", name);
    if (rc == ETSMGR_EEXIST) {
        /* an own object of that name, not managed: it keeps its data */
        if (f == 0 && (f = mgrd_obj_find(m, name, x->p->uid, NULL, &o)) <= 0)
            return f < 0 ? err_listing(x)
                         : proto_reply_err(x->req, PROTO_E_INTERNAL, "table %s appeared and vanished while it was "
                                           "created; try again", name);
        rt = adopt_existing(x, name, &o, &opts, &err);
        if (!rt)
            return err;
        mgrd_reg_give(m, rt, x->p);
        x->undo = UNDO_ADOPTED;
        x->undo_rt = rt;
        set_heir_data(rt, heir_data);
        log_notice("new_table: adopted the existing object %s; table=%s given to pid=%d with its data.",
                   o.shm_name, name, (int)x->p->pid);
        return reply_table(x, rt, false);
    }
    if (rc < 0)
        return create_error(x, name, rc, errno, "");
    return give_created(x, name, shm_name, t, heir_data);
}

static cJSON *op_add_table(req_ctx *x)
{
    mgrd *m = x->m;
    if (x->nfds == 0)
        return proto_reply_err(x->req, PROTO_E_NO_FD,
                               "add_table needs the table's fd attached (SCM_RIGHTS); none came");
    if (x->nfds > 1)
        return proto_reply_err(x->req, PROTO_E_BAD_FD, "add_table takes exactly one fd; %d came (all closed)",
                               x->nfds);
    cJSON *err = NULL;
    const char *name = get_name(x, &err);
    if (!name)
        return err;
    const char *heir_data = NULL;
    if (get_short_string(x, "heir_data", &heir_data, &err) < 0)
        return err;
    int fd = x->fds[0];
    mgrd_table *rt = mgrd_reg_find(m, name);
    if (rt && refused(x, rt, MGRD_ACT_ADD, &err))
        return err;
    /* Which object is the fd?  Identity decides (fdcheck.c): it must be an
     * own object of this table. */
    proto_err code = PROTO_OK;
    char msg[300];
    mgrd_obj o;
    if (mgrd_fd_check(m, name, rt, fd, &o, &code, msg, sizeof msg) < 0)
        return proto_reply_err(x->req, code, "%s", msg);
    mgrd_table *gone = NULL;
    if (rt && (rt->dev != o.dev || rt->ino != o.ino)) {
        /* The object the daemon held was let go and another one of the
         * table made meanwhile: the received fd's is the one to manage.
         * The held one goes only once the new one is registered, so that
         * a request refused on the way leaves it managed. */
        if (refused(x, rt, MGRD_ACT_REPLACE, &err))
            return err;
        gone = rt;
        rt = NULL;
    }
    if (rt) {
        if (refused(x, rt, MGRD_ACT_TAKE, &err))
            return err;
        /* checked under the lock when it is free, never waiting for it: a
         * lock a living process holds (the caller itself, in a transaction,
         * as likely as any) says nothing against the table (refused, its
         * owner would write on while another took it), and the caller
         * could pipeline add_tables, each a lock timeout for everyone */
        etsmgr_table_info info;
        int rc = tbl_info_nowait(rt->t, &info, NULL);
        if (rc < 0)
            return proto_reply_err(x->req, PROTO_E_INVALID_TABLE, "%s is no longer a valid table: %s", rt->shm_name,
                                   etsmgr_strerror(rc));
        mgrd_reg_give(m, rt, x->p);
    } else {
        if (o.uid != x->p->uid)
            return proto_reply_err(x->req, PROTO_E_FORBIDDEN, "table %s (/dev/shm%s) belongs to uid %u; the caller "
                                   "is uid %u", name, o.shm_name, (unsigned)o.uid, (unsigned)x->p->uid);
        if (!gone && m->ntables >= m->max_tables) /* (a replacement adds none) */
            return too_many_tables(x);
        etsmgr_table *t = NULL;
        int rc = etsmgr_table_attach_fd(fd, &t);
        if (rc < 0)
            return mgrd_open_error(x->req, o.shm_name, rc, errno);
        x->fds[0] = -1; /* the attachment owns it now */
        if (strcmp(etsmgr_table_name(t), name) != 0) {
            cJSON *r = proto_reply_err(x->req, PROTO_E_INVALID_TABLE, "%s%s holds table %.64s, not %s",
                                       MGRD_SHM_DIR, o.shm_name, etsmgr_table_name(t), name);
            etsmgr_table_close(t);
            return r;
        }
        rt = mgrd_reg_add(m, name, o.shm_name, t, o.uid);
        if (!rt) {
            etsmgr_table_close(t);
            return proto_reply_err(x->req, PROTO_E_INTERNAL, "out of memory");
        }
        if (gone) {
            log_warning("add_table: table=%s was replaced by a new object; managing the new one", name);
            mgrd_reg_remove(m, gone);
        }
        mgrd_reg_give(m, rt, x->p);
    }
    set_heir_data(rt, heir_data);
    log_notice("add_table: table=%s managed again, owner pid=%d, heir_data=%s.", name, (int)x->p->pid,
               rt->heir_data[0] ? rt->heir_data : "none");
    cJSON *r = proto_reply_ok(x->req);
    if (r) {
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddNumberToObject(r, "generation", (double)table_generation(rt));
    }
    return r;
}

/* The managed table called name; NULL with the reply in *err. */
static mgrd_table *find_managed(req_ctx *x, const char *name, cJSON **err)
{
    mgrd_table *rt = mgrd_reg_find(x->m, name);
    if (!rt)
        *err = proto_reply_err(x->req, PROTO_E_NOT_FOUND, "no table named %s is managed", name);
    return rt;
}

static cJSON *op_del_table(req_ctx *x)
{
    mgrd *m = x->m;
    cJSON *err = NULL;
    const char *name = get_name(x, &err);
    if (!name)
        return err;
    bool unlink_it = false, force = false;
    char msg[160];
    if (proto_get_bool(x->req, "unlink", &unlink_it, msg, sizeof msg) < 0 ||
        proto_get_bool(x->req, "force", &force, msg, sizeof msg) < 0)
        return proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "%s", msg);
    mgrd_table *rt = find_managed(x, name, &err);
    if (!rt)
        return err;
    if (refused(x, rt, force ? MGRD_ACT_FORCE_DELETE : MGRD_ACT_DELETE, &err))
        return err;
    if (rt->owner && rt->owner != x->p) /* (only a force gets here so) */
        log_warning("del_table: table=%s owned by pid=%d is deleted by pid=%d (force); the owner "
                    "keeps its mapping, but its changes are lost when it closes it.", name,
                    (int)rt->owner_pid, (int)x->p->pid);
    bool unlinked = false;
    if (unlink_it) {
        int rc = tbl_unlink(rt->shm_name);
        if (rc == ETSMGR_OK) {
            unlinked = true;
        } else if (!(rc == ETSMGR_ESYS && errno == ENOENT) && rc != ETSMGR_ENOTFOUND) {
            int e = errno;
            return proto_reply_err(x->req, PROTO_E_INTERNAL, "cannot unlink %s: %s%s%s; the table stays managed",
                                   rt->shm_name, etsmgr_strerror(rc), rc == ETSMGR_ESYS ? ": " : "",
                                   rc == ETSMGR_ESYS ? strerror(e) : "");
        }
    }
    log_info("del_table: table=%s no longer managed (pid=%d)%s.", name, (int)x->p->pid,
             unlinked ? "; its shared-memory object is removed" : "; its data stays in shared memory");
    if (unlink_it)
        mgrd_snap_remove(m, name);
    mgrd_reg_remove(m, rt);
    cJSON *r = proto_reply_ok(x->req);
    if (r) {
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddBoolToObject(r, "unlinked", unlinked);
    }
    return r;
}

static cJSON *op_give_away(req_ctx *x)
{
    mgrd *m = x->m;
    cJSON *err = NULL;
    const char *name = get_name(x, &err);
    if (!name)
        return err;
    char msg[160];
    int64_t pid;
    int rc = proto_get_int(x->req, "pid", 1, INT32_MAX, &pid, msg, sizeof msg);
    if (rc > 0)
        return proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "missing field \"pid\" (the receiving process)");
    if (rc < 0)
        return proto_reply_err(x->req, PROTO_E_BAD_REQUEST, "%s", msg);
    const char *data = NULL;
    if (get_short_string(x, "data", &data, &err) < 0)
        return err;
    mgrd_table *rt = find_managed(x, name, &err);
    if (!rt)
        return err;
    if (refused(x, rt, MGRD_ACT_GIVE, &err))
        return err;
    /* of a process with several connections, the one waiting for the
     * table, if any (its wait is answered below), else its newest */
    mgrd_peer *to = mgrd_wait_peer(rt, (pid_t)pid, rt->uid);
    if (!to)
        to = mgrd_peer_find(m, (pid_t)pid, rt->uid);
    if (!to)
        return proto_reply_err(x->req, PROTO_E_NO_SUCH_PID,
                               "no process %d of uid %u is connected to etsmgrd; it must connect first",
                               (int)pid, (unsigned)rt->uid);
    if (to != x->p) {
        uint64_t transfers = rt->transfers;
        mgrd_reg_give(m, rt, to);
        /* a receiver blocked waiting for this very table hears of it as the
         * answer to its wait (it reads nothing else meanwhile); any other
         * gets the transfer event */
        int sent = mgrd_wait_answer(m, rt, to), e = errno;
        if (sent == 0) {
            sent = -1;
            e = ENOMEM;
            cJSON *ev = cJSON_CreateObject();
            if (ev) {
                cJSON_AddStringToObject(ev, "event", "transfer");
                cJSON_AddStringToObject(ev, "name", rt->name);
                cJSON_AddNumberToObject(ev, "from_pid", (double)x->p->pid);
                if (data)
                    cJSON_AddStringToObject(ev, "data", data);
                else
                    cJSON_AddNullToObject(ev, "data");
                cJSON_AddNumberToObject(ev, "generation", (double)table_generation(rt));
                sent = conn_send_json(to->c, ev, etsmgr_table_fd(rt->t));
                e = errno;
                cJSON_Delete(ev);
            }
        }
        if (sent < 0) {
            /* the receiver is never told: the table stays the giver's, and
             * no transfer happened (the table was owned, not orphaned, so
             * registry.c's ungive, which puts an orphan back, does not fit:
             * giving it back to the giver and its count is the whole undo) */
            mgrd_reg_give(m, rt, x->p);
            rt->transfers = transfers;
            if (e == EPIPE || e == ENOBUFS)
                return proto_reply_err(x->req, PROTO_E_NO_SUCH_PID, "the connection of process %d is closing",
                                       (int)pid);
            return proto_reply_err(x->req, PROTO_E_INTERNAL, "etsmgrd could not send table %s to process %d: "
                                   "%s; it stays the caller's: try again, and if it repeats raise etsmgrd's "
                                   "fd limit (LimitNOFILE=, ulimit -n)", name, (int)pid, strerror(e));
        }
        /* written now, so that the receiver has it before the giver has
         * its reply (docs/protocol.md): the giver may tell the receiver
         * to look, and a look without waiting must find it */
        conn_flush_now(to->c);
        log_notice("give_away: table=%s from pid=%d to pid=%d, data=%s.", name, (int)x->p->pid, (int)pid,
                   data ? data : "none");
    }
    cJSON *r = proto_reply_ok(x->req);
    if (r) {
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddNumberToObject(r, "pid", (double)pid);
    }
    return r;
}

static cJSON *op_snapshot(req_ctx *x)
{
    if (!x->m->snap_dir)
        return proto_reply_err(x->req, PROTO_E_NO_SNAPSHOT_DIR, "etsmgrd runs without --snapshot-dir: "
                               "there is nowhere to save snapshots");
    cJSON *r = proto_reply_ok(x->req);
    if (!r)
        return NULL;
    size_t failed = mgrd_snap_all(x->m, "etsmgrctl snapshot", r);
    if (failed) {
        cJSON_Delete(r);
        return proto_reply_err(x->req, PROTO_E_SNAPSHOT_FAILED, "%zu table(s) could not be saved (the "
                               "daemon's log says why); their previous snapshots stay", failed);
    }
    return r;
}

/* The managed table the request names; NULL with the reply in *err. */
static mgrd_table *get_managed(req_ctx *x, cJSON **err)
{
    const char *name = get_name(x, err);
    return name ? find_managed(x, name, err) : NULL;
}

/* A managed table others may open (access.c decides). */
static cJSON *op_open_table(req_ctx *x)
{
    cJSON *err = NULL;
    mgrd_table *rt = get_managed(x, &err);
    return rt ? mgrd_open_table(x->m, x->p, x->req, rt, &x->reply_fd, &x->close_reply_fd) : err;
}

/* A waiter whose etsmgr_new_table_wait timed out: out of the queue; or, if
 * the table was handed to it meanwhile as the reply to that wait (its
 * owner went, or gave it the table: a reply it will never read), let go
 * again, to the next waiter.  A table it holds for another reason stays
 * its own: one it created, took or added, or got with a transfer event,
 * it was told of, and no wait's cancelling undoes that (ETS's give_away
 * is final). */
static cJSON *op_cancel_wait(req_ctx *x)
{
    cJSON *err = NULL;
    const char *name = get_name(x, &err);
    if (!name)
        return err;
    mgrd_table *rt = mgrd_reg_find(x->m, name);
    bool released = false;
    /* every wait of the caller's for it ends first: a release must not
     * serve the table back to a second wait of its, pipelined */
    if (rt)
        mgrd_wait_drop(x->m, rt, x->p);
    if (rt && rt->owner == x->p && rt->by_wait) {
        mgrd_reg_orphan(x->m, rt);
        log_notice("new_table: pid=%d gave up waiting; table=%s goes on to the next waiter.", (int)x->p->pid,
                   name);
        mgrd_wait_serve(x->m, rt);
        released = true;
    }
    cJSON *r = proto_reply_ok(x->req);
    if (r)
        cJSON_AddBoolToObject(r, "released", released);
    return r;
}

/* The caller lets go of a table it owns, as if its connection had closed
 * for that table alone: orphaned, the heir's log line, the first waiter
 * served.  libetsmgr sends it for a new_table whose reply came after the
 * call had timed out: the application was told the call failed and holds
 * nothing, so the table must not stay this process's until it exits.  A
 * table the caller does not own (any more) is left alone: released false,
 * never an error, so that a release that crossed a give_away or a delete
 * changes nothing. */
static cJSON *op_release(req_ctx *x)
{
    cJSON *err = NULL;
    const char *name = get_name(x, &err);
    if (!name)
        return err;
    mgrd_table *rt = mgrd_reg_find(x->m, name);
    bool released = rt && rt->owner == x->p;
    if (released) {
        mgrd_reg_orphan(x->m, rt);
        mgrd_wait_serve(x->m, rt);
        log_notice("ETS-TRANSFER: for table=%s, from pid=%d, heir_data=%s (released by its owner).", name,
                   (int)x->p->pid, rt->heir_data[0] ? rt->heir_data : "none");
    }
    cJSON *r = proto_reply_ok(x->req);
    if (r) {
        cJSON_AddStringToObject(r, "name", name);
        cJSON_AddBoolToObject(r, "released", released);
    }
    return r;
}

static cJSON *op_recover(req_ctx *x)
{
    cJSON *err = NULL;
    mgrd_table *rt = get_managed(x, &err);
    return rt ? mgrd_recover(x->m, x->p, x->req, rt) : err;
}

/* ------------------------------------------------------------ dispatch */

static const struct {
    const char *op;
    op_fn fn;
    bool takes_fd;
} ops[] = {
    {"hello", op_hello, false},         {"new_table", op_new_table, false},
    {"add_table", op_add_table, true},  {"del_table", op_del_table, false},
    {"give_away", op_give_away, false}, {"info", op_info, false},
    {"tables", op_info, false},         {"snapshot", op_snapshot, false},
    {"open_table", op_open_table, false}, {"recover", op_recover, false},
    {"cancel_wait", op_cancel_wait, false}, {"release", op_release, false},
};

static void close_fds(int *fds, int nfds)
{
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

static void send_reply(conn *c, cJSON *r, int fd)
{
    if (!r) {
        log_error("out of memory building a reply; closing the connection");
        conn_close(c);
        return;
    }
    if (conn_send_json(c, r, fd) < 0)
        log_debug("reply not sent: the connection is closing");
    cJSON_Delete(r);
}

/* The reply could not be queued while the connection is fine (no fd left to
 * duplicate the table's, no memory, too long): undo what new_table did, so
 * the table is as before the request, and say so. */
static cJSON *undo_and_explain(req_ctx *x, int e)
{
    mgrd *m = x->m;
    mgrd_table *rt = x->undo_rt;
    const char *what = "nothing was changed";
    switch (x->undo) {
    case UNDO_CREATED: {
        char shm_name[MGRD_SHM_NAME_MAX];
        snprintf(shm_name, sizeof shm_name, "%s", rt->shm_name);
        mgrd_reg_remove(m, rt);
        int rc = tbl_unlink(shm_name);
        if (rc < 0 && rc != ETSMGR_ENOTFOUND)
            log_warning("new_table: cannot remove %s after the failed reply: %s", shm_name,
                        strerror(errno));
        what = "the table was not created";
        break;
    }
    case UNDO_ADOPTED:
        mgrd_reg_remove(m, rt);
        what = "the existing object stays as it was, unmanaged";
        break;
    case UNDO_GIVEN:
        /* as it was, found-at-start mark and all: a standby queued while
         * the last owner lives must wait on (the poll goes on), one whose
         * wait that owner no longer holds back gets the table now */
        mgrd_reg_ungive(m, rt, &x->was);
        mgrd_wait_serve(m, rt);
        what = rt->owner ? "the table went to the process waiting for it" : "the table stays orphaned";
        break;
    case UNDO_NONE:
        break;
    }
    log_error("%s from pid=%d: the reply could not be sent: %s; %s", proto_op(x->req), (int)x->p->pid,
              strerror(e), what);
    return proto_reply_err(x->req, PROTO_E_INTERNAL, "etsmgrd could not send its reply%s: %s; %s",
                           x->reply_fd >= 0 ? " with the table's fd" : "", strerror(e), what);
}

void mgrd_req_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    mgrd *m = arg;
    mgrd_peer *p = conn_get_data(c);
    if (!p) {
        close_fds(fds, nfds);
        return;
    }
    proto_err code = PROTO_E_BAD_JSON;
    char msg[200] = "";
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    if (!req) {
        close_fds(fds, nfds);
        log_debug("pid=%d sent a bad request: %s", (int)p->pid, msg);
        send_reply(c, proto_reply_err(NULL, code, "%s", msg), -1);
        return;
    }
    const char *op = proto_op(req);
    op_fn fn = NULL;
    bool takes_fd = false;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (strcmp(ops[i].op, op) == 0) {
            fn = ops[i].fn;
            takes_fd = ops[i].takes_fd;
            break;
        }
    }
    cJSON *r;
    req_ctx x = {.m = m, .c = c, .p = p, .req = req, .fds = fds, .nfds = nfds, .reply_fd = -1};
    if (!fn) {
        r = proto_reply_err(req, PROTO_E_UNKNOWN_OP,
                            "unknown op \"%.64s\"; etsmgrd knows hello, new_table, add_table, del_table, "
                            "give_away, info, tables, snapshot, open_table, recover, cancel_wait",
                            op);
    } else if (!takes_fd && nfds > 0) {
        r = proto_reply_err(req, PROTO_E_UNEXPECTED_FD, "op %s takes no fd; the %d received were closed", op, nfds);
    } else {
        r = fn(&x);
    }
    close_fds(fds, nfds);
    if (!r && x.deferred) {
        cJSON_Delete(req);
        return;
    }
    if (r && conn_send_json(c, r, x.reply_fd) < 0 && errno != EPIPE && errno != ENOBUFS) {
        /* EPIPE/ENOBUFS: the connection is closing, its tables are orphaned
         * with it; anything else, it still waits for an answer. */
        int e = errno;
        cJSON_Delete(r);
        send_reply(c, undo_and_explain(&x, e), -1);
    } else if (r) {
        cJSON_Delete(r);
    } else {
        send_reply(c, NULL, -1);
    }
    if (x.close_reply_fd)
        close(x.reply_fd);
    cJSON_Delete(req);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* mgr_ops.c: the table operations of etsmgrd's protocol (docs/protocol.md),
 * each one blocking request/reply through mc_call.
 *
 * The client keeps every table it received (mc_hold) so that a reconnect can
 * register them again; a table leaves the set only when this process gives
 * it up for good (del_table, give_away), never because the daemon went away.
 * JSON stays inside the library: callers get plain C structs. */
#include "mgr.h"
#include "proto.h"

#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void mc_copy_str(char *dst, size_t cap, const cJSON *obj, const char *field)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, field));
    snprintf(dst, cap, "%s", s ? s : "");
}

static uint64_t mc_u64(const cJSON *obj, const char *field)
{
    return mc_json_u64(cJSON_GetObjectItemCaseSensitive(obj, field));
}

int mc_grant_from(const cJSON *obj, const char *pid_field, etsmgr_grant *g)
{
    memset(g, 0, sizeof *g);
    g->created = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, "created"));
    g->from_pid = (pid_t)mc_u64(obj, pid_field);
    mc_copy_str(g->data, sizeof g->data, obj, "data");
    g->generation = mc_u64(obj, "generation");
    return 0;
}

cJSON *mc_add_table_req(etsmgr_client *c, etsmgr_table *t)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return NULL;
    if (!cJSON_AddStringToObject(req, "op", "add_table") ||
        !cJSON_AddStringToObject(req, "name", etsmgr_table_name(t)) ||
        !cJSON_AddStringToObject(req, "heir_data", mc_heir(c, t))) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

static cJSON *mc_req(const char *op, const char *name)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return NULL;
    if (!cJSON_AddStringToObject(req, "op", op) || (name && !cJSON_AddStringToObject(req, "name", name))) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

int etsmgr_new_table(etsmgr_client *c, const char *name, const etsmgr_table_opts *opts,
                     const char *heir_data, etsmgr_table **out, etsmgr_grant *grant)
{
    return mc_new_table(c, name, opts, heir_data, 0, out, grant);
}

/* The daemon made name this process's with a reply the application does
 * not get (a table that cannot be attached, or is not the one asked for):
 * given back at once (release), unless the application holds a table of
 * that name already (the same table again, its handle still good), so
 * that no living process owns a table it does not hold.  The caller's
 * failure stays the one said. */
static void mc_give_back(etsmgr_client *c, const char *name)
{
    struct mc_errinfo saved = c->err;
    mc_release_add(c, name);
    mc_release_flush(c);
    c->err = saved;
}

int mc_new_table(etsmgr_client *c, const char *name, const etsmgr_table_opts *opts,
                 const char *heir_data, int create, etsmgr_table **out, etsmgr_grant *grant)
{
    if (!c || !name || !out)
        return ETSMGR_EINVAL;
    *out = NULL;
    if (grant)
        memset(grant, 0, sizeof *grant);
    if (!rt_valid_name(name, strlen(name)))
        return mc_err(c, ETSMGR_ENAME, "bad_name",
                      "table name \"%.80s\" is not 1 to 64 of [A-Za-z0-9_.-]", name);
    if (opts && (unsigned)opts->access > ETSMGR_PUBLIC)
        return mc_err(c, ETSMGR_EINVAL, "", "access mode %d is none of ETSMGR_PRIVATE, ETSMGR_PROTECTED, ETSMGR_PUBLIC",
                      (int)opts->access);
    if (opts && (unsigned)opts->type > ETSMGR_ORDERED_SET)
        return mc_err(c, ETSMGR_EINVAL, "", "table type %d is neither ETSMGR_SET nor ETSMGR_ORDERED_SET",
                      (int)opts->type);
    cJSON *req = mc_req("new_table", name);
    if (req && opts && (opts->size_hint || opts->max_bytes || opts->access || opts->type)) {
        static const char *const access[] = {"protected", "private", "public"};
        cJSON *o = cJSON_AddObjectToObject(req, "opts");
        if (!o || !cJSON_AddNumberToObject(o, "size_hint", (double)opts->size_hint) ||
            !cJSON_AddNumberToObject(o, "max_bytes", (double)opts->max_bytes) ||
            !cJSON_AddStringToObject(o, "access", access[opts->access]) ||
            (opts->type && !cJSON_AddStringToObject(o, "type", "ordered_set"))) {
            cJSON_Delete(req);
            req = NULL;
        }
    }
    if (req && create == MC_CREATE_WAIT && !cJSON_AddBoolToObject(req, "wait", 1)) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (req && create && create != MC_CREATE_WAIT && (!cJSON_AddBoolToObject(req, "exclusive", 1) ||
                          (create == MC_CREATE_REPLACE && !cJSON_AddBoolToObject(req, "replace", 1)))) {
        cJSON_Delete(req);
        req = NULL;
    }
    if (req && !cJSON_AddStringToObject(req, "heir_data", heir_data ? heir_data : name)) {
        cJSON_Delete(req);
        req = NULL;
    }
    cJSON *rep = NULL;
    int fd = -1;
    int err = mc_call(c, req, -1, &rep, 1, &fd);
    if (err == ETSMGR_ETIMEDOUT && create != MC_CREATE_WAIT) { /* (a wait's timeout: cancel_wait) */
        char why[sizeof c->err.msg];
        snprintf(why, sizeof why, "%s", c->err.msg);
        if (mc_late_add(c, MC_LATE_NEW, name, NULL) == ETSMGR_OK)
            mc_err(c, err, "", "new_table %s: %.150s; the table is not this process's: should the answer "
                   "come later, it is given back (released)", name, why);
        else
            mc_err(c, err, "", "new_table %s: %.150s; should the answer come later, this process owns the "
                   "table until its connection closes (out of memory to track it)", name, why);
    }
    if (err) {
        if (err == ETSMGR_EOWNED && grant && rep)
            grant->from_pid = (pid_t)mc_u64(rep, "owner_pid");
        cJSON_Delete(rep);
        return err;
    }
    etsmgr_grant g;
    mc_grant_from(rep, "from_pid", &g);
    cJSON_Delete(rep);
    etsmgr_table *t;
    err = etsmgr_table_attach_fd(fd, &t);
    if (err) {
        close(fd);
        err = mc_err(c, err, "", "the table %s that etsmgrd sent cannot be attached: %s", name,
                     etsmgr_strerror(err));
        mc_give_back(c, name);
        return err;
    }
    /* The fd came with this very reply (mgr.h), and the table says its own
     * name: a daemon that answered with another table is refused, not
     * believed. */
    if (strcmp(etsmgr_table_name(t), name) != 0) {
        err = mc_err(c, ETSMGR_EPROTO, "", "etsmgrd answered new_table %s with the table %.64s; refused",
                     name, etsmgr_table_name(t));
        etsmgr_table_close(t);
        mc_give_back(c, name);
        return err;
    }
    err = mc_hold(c, t, heir_data ? heir_data : name);
    if (err) {
        etsmgr_table_close(t);
        return err;
    }
    *out = t;
    if (grant)
        *grant = g;
    return ETSMGR_OK;
}

/* A wait that timed out: the daemon takes the caller out of the queue, or,
 * when the table was handed over meanwhile (its reply is dropped unread,
 * its fd closed with it: mc_read_until), lets go of it again for the next
 * waiter.  Either way the caller owns nothing it was not told of. */
static void mc_cancel_wait(etsmgr_client *c, const char *name)
{
    if (c->fd < 0)
        return;
    struct mc_errinfo saved = c->err;
    (void)mc_call(c, mc_req("cancel_wait", name), -1, NULL, 0, NULL);
    c->err = saved; /* the caller hears of the timeout */
}

int etsmgr_new_table_wait(etsmgr_client *c, const char *name, const etsmgr_table_opts *opts,
                          const char *heir_data, int timeout_ms, etsmgr_table **out, etsmgr_grant *grant)
{
    if (!c)
        return ETSMGR_EINVAL;
    int saved = c->timeout_ms;
    c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
    int err = mc_new_table(c, name, opts, heir_data, MC_CREATE_WAIT, out, grant);
    c->timeout_ms = saved;
    if (err == ETSMGR_ETIMEDOUT)
        mc_cancel_wait(c, name);
    return err;
}

/* A read handle's way to have a dead writer rolled back: its own short
 * connection (the client it was opened with may be gone or busy). */
static int mc_recover_cb(const char *sock, const char *table, int timeout_ms)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof sa.sun_path)
        return ETSMGR_EINVAL;
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    /* non-blocking connect: a full backlog (etsmgrd stopped) must not
     * hold the reader past its 10 ms; then blocking for frame_write, whose
     * small frame fits the socket buffer, and a bounded read */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return ETSMGR_ESYS;
    int fl;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || (fl = fcntl(fd, F_GETFL)) < 0 ||
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        close(fd);
        return ETSMGR_ENOTCONN;
    }
    cJSON *req = mc_req("recover", table), *rep = NULL;
    int r = req && frame_write_json(fd, req, NULL, 0) == 0 &&
                    frame_read_json(fd, &rep, NULL, NULL, 0, timeout_ms) == 0 &&
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "ok"))
                ? ETSMGR_OK
                : ETSMGR_EREFUSED;
    cJSON_Delete(req);
    cJSON_Delete(rep);
    close(fd);
    return r;
}

int etsmgr_open_table(etsmgr_client *c, const char *name, int mode, etsmgr_table **out)
{
    if (!c || !name || !out || (mode != ETSMGR_READ && mode != ETSMGR_WRITE))
        return ETSMGR_EINVAL;
    *out = NULL;
    if (!rt_valid_name(name, strlen(name)))
        return mc_err(c, ETSMGR_ENAME, "bad_name", "table name \"%.80s\" is not 1 to 64 of [A-Za-z0-9_.-]", name);
    cJSON *req = mc_req("open_table", name);
    if (req && !cJSON_AddStringToObject(req, "mode", mode == ETSMGR_WRITE ? "write" : "read")) {
        cJSON_Delete(req);
        req = NULL;
    }
    int fd = -1;
    int err = mc_call(c, req, -1, NULL, 1, &fd);
    if (err) {
        const char *code = etsmgr_client_error(c);
        if (err == ETSMGR_EREFUSED && proto_err_find(code) == PROTO_E_FORBIDDEN) /* for an opener: no permission */
            err = ETSMGR_EPERM;
        return err;
    }
    etsmgr_table *t;
    err = mode == ETSMGR_WRITE ? etsmgr_table_attach_fd(fd, &t) : tbl_attach_fd_ro(fd, &t);
    if (err) {
        close(fd);
        return mc_err(c, err, "", "the table %s that etsmgrd sent cannot be attached: %s", name,
                      etsmgr_strerror(err));
    }
    if ((err = tbl_set_recover(t, c->sock_path, mc_recover_cb)) != 0) {
        etsmgr_table_close(t);
        return mc_err(c, err, "", "out of memory");
    }
    *out = t;
    return ETSMGR_OK;
}

int etsmgr_add_table(etsmgr_client *c, etsmgr_table *t)
{
    if (!c || !t)
        return ETSMGR_EINVAL;
    int err = mc_call(c, mc_add_table_req(c, t), etsmgr_table_fd(t), NULL, 0, NULL);
    if (err)
        return err;
    return mc_hold(c, t, NULL);
}

/* Sends req (del_table, give_away) about t; once etsmgrd agreed, t is no
 * longer this process's: unheld and closed.  On an error t stays as it was,
 * but for a timeout: etsmgrd may have done it, so t is no longer held as
 * this process's (a reconnect must not add back a table given away), and
 * the reply, should it come, decides: an ok closes t, a refusal holds it
 * again (mc_late_reply). */
static int mc_call_let_go(etsmgr_client *c, cJSON *req, etsmgr_table *t, const char *what)
{
    int err = mc_call(c, req, -1, NULL, 0, NULL);
    if (err == ETSMGR_ETIMEDOUT && mc_held_index(c, t) >= 0) {
        char why[sizeof c->err.msg];
        snprintf(why, sizeof why, "%s", c->err.msg);
        if (mc_late_add(c, MC_LATE_LET_GO, etsmgr_table_name(t), t) == ETSMGR_OK)
            mc_err(c, err, "", "%s %s: %.120s; whether etsmgrd did it is unknown: the handle is no longer "
                   "this process's (do not use it); a refusal answered later gives it back "
                   "(etsmgr_client_tables)", what, etsmgr_table_name(t), why);
    }
    if (err)
        return err;
    mc_unhold(c, t);
    etsmgr_table_close(t);
    return ETSMGR_OK;
}

int etsmgr_del_table(etsmgr_client *c, etsmgr_table *t, int unlink)
{
    if (!c || !t)
        return ETSMGR_EINVAL;
    cJSON *req = mc_req("del_table", etsmgr_table_name(t));
    if (req && !cJSON_AddBoolToObject(req, "unlink", unlink != 0)) {
        cJSON_Delete(req);
        req = NULL;
    }
    return mc_call_let_go(c, req, t, "del_table");
}

int etsmgr_give_away(etsmgr_client *c, etsmgr_table *t, pid_t pid, const char *data)
{
    if (!c || !t || pid <= 0)
        return ETSMGR_EINVAL;
    cJSON *req = mc_req("give_away", etsmgr_table_name(t));
    if (req && (!cJSON_AddNumberToObject(req, "pid", (double)pid) ||
                !cJSON_AddStringToObject(req, "data", data ? data : ""))) {
        cJSON_Delete(req);
        req = NULL;
    }
    return mc_call_let_go(c, req, t, "give_away");
}

static void mc_managed_from(etsmgr_managed *x, const cJSON *e)
{
    mc_copy_str(x->name, sizeof x->name, e, "name");
    const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "state"));
    x->owned = st && strcmp(st, "owned") == 0;
    x->owner_pid = (pid_t)mc_u64(e, "owner_pid");
    mc_copy_str(x->heir_data, sizeof x->heir_data, e, "heir_data");
    x->transfers = mc_u64(e, "transfers");
    x->entries = mc_u64(e, "entries");
    x->capacity = mc_u64(e, "capacity");
    x->bytes = mc_u64(e, "bytes");
    mc_copy_str(x->created, sizeof x->created, e, "created");
    const char *acc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "access"));
    x->access = acc && strcmp(acc, "private") == 0  ? ETSMGR_PRIVATE
                : acc && strcmp(acc, "public") == 0 ? ETSMGR_PUBLIC
                                                    : ETSMGR_PROTECTED;
}

/* info comes in pages ("more": ask again after the last name); a daemon
 * that does not page answers everything at once and says no "more". */
int etsmgr_info_get(etsmgr_client *c, etsmgr_info **out)
{
    if (!c || !out)
        return ETSMGR_EINVAL;
    *out = NULL;
    etsmgr_info *info = calloc(1, sizeof *info);
    if (!info)
        return mc_err(c, ETSMGR_ENOMEM, "", "out of memory reading etsmgrd's info");
    size_t cap = 0;
    char after[ETSMGR_NAME_MAX + 1] = "";
    for (;;) {
        cJSON *req = mc_req("info", NULL);
        if (req && after[0] && !cJSON_AddStringToObject(req, "after", after)) {
            cJSON_Delete(req);
            req = NULL;
        }
        cJSON *rep = NULL;
        int err = mc_call(c, req, -1, &rep, 0, NULL);
        if (err) {
            cJSON_Delete(rep);
            etsmgr_info_free(info);
            return err;
        }
        const cJSON *tabs = cJSON_GetObjectItemCaseSensitive(rep, "tables");
        size_t n = cJSON_IsArray(tabs) ? (size_t)cJSON_GetArraySize(tabs) : 0;
        if (info->ntables + n > cap) {
            size_t ncap = info->ntables + n;
            etsmgr_managed *m = realloc(info->tables, (ncap ? ncap : 1) * sizeof *m);
            if (!m) {
                cJSON_Delete(rep);
                etsmgr_info_free(info);
                return mc_err(c, ETSMGR_ENOMEM, "", "out of memory reading etsmgrd's info");
            }
            info->tables = m;
            cap = ncap;
        }
        info->pid = (pid_t)mc_u64(rep, "pid");
        mc_copy_str(info->instance, sizeof info->instance, rep, "instance");
        info->connections = mc_u64(rep, "connections");
        const cJSON *e;
        cJSON_ArrayForEach(e, tabs)
        {
            if (!cJSON_IsObject(e))
                continue;
            etsmgr_managed *x = &info->tables[info->ntables++];
            memset(x, 0, sizeof *x);
            mc_managed_from(x, e);
        }
        int more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "more"));
        cJSON_Delete(rep);
        /* a page must move on, or a confused daemon would keep us here */
        if (!more || info->ntables == 0 ||
            strcmp(info->tables[info->ntables - 1].name, after) <= 0)
            break;
        snprintf(after, sizeof after, "%s", info->tables[info->ntables - 1].name);
    }
    *out = info;
    return ETSMGR_OK;
}

void etsmgr_info_free(etsmgr_info *info)
{
    if (!info)
        return;
    free(info->tables);
    free(info);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* control.c: etssup's control socket, DIR/etssup.sock (mode 0600).
 *
 * The same framing and request/reply shape as every socket of the project
 * (conn.h, proto.h), so etsmgrctl and the tests need nothing new.  Ops:
 *   status               the strategy, intensity and each child's state
 *   restart {"child":ID} stop the child if it runs, start it again; the reply
 *                        waits until it is running (or failed), so a script
 *                        can rely on it being up when the command returns
 *   stop                 orderly stop of everything, then etssup exits 0
 *   hello                pid, instance, version
 * The child is named by "child" because "id" is the request id every reply
 * echoes.  One pending restart per child: its connection is remembered in
 * the child (waiter) and forgotten if the client goes away first. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proto.h"
#include "sock.h"
#include "sup.h"

static void ctl_send(conn *c, cJSON *reply)
{
    if (!reply) {
        log_error("out of memory building a control reply");
        conn_close(c);
        return;
    }
    if (conn_send_json(c, reply, -1) < 0)
        conn_close(c);
    cJSON_Delete(reply);
}

int sup_status_add(sup *s, cJSON *r)
{
    cJSON_AddNumberToObject(r, "pid", (double)s->pid);
    cJSON_AddStringToObject(r, "instance", s->rt.instance);
    cJSON_AddStringToObject(r, "state", s->terminating ? "stopping" : s->ready_once ? "running" : "starting");
    cJSON_AddStringToObject(r, "strategy", sup_strategy_name(s->cfg->strategy));
    cJSON_AddNumberToObject(r, "intensity", s->cfg->intensity);
    cJSON_AddNumberToObject(r, "period", s->cfg->period_s);
    cJSON_AddNumberToObject(r, "recent_restarts", sup_recent_restarts(s));
    cJSON *arr = cJSON_AddArrayToObject(r, "children");
    uint64_t now = sup_now_ms();
    for (int i = 0; arr && i < s->n; i++) {
        sup_child *c = &s->children[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "id", c->cfg->id);
        cJSON_AddNumberToObject(o, "pid", (double)c->pid);
        cJSON_AddStringToObject(o, "state", sup_state_name(c->state));
        cJSON_AddStringToObject(o, "restart", sup_restart_name(c->cfg->restart));
        cJSON_AddNumberToObject(o, "restarts", c->restarts);
        if (c->last_exit[0])
            cJSON_AddStringToObject(o, "last_exit", c->last_exit);
        else
            cJSON_AddNullToObject(o, "last_exit");
        cJSON_AddNumberToObject(o, "uptime_s", c->pid > 0 ? (double)((now - c->started_ms) / 1000u) : 0);
        cJSON_AddStringToObject(o, "status", c->status);
        if (c->cfg->standby) /* 0: none running at the moment */
            cJSON_AddNumberToObject(o, "standby_pid", c->sb_pid > 0 && !c->sb_stopping ? (double)c->sb_pid : 0);
    }
    return arr && cJSON_GetArraySize(arr) == s->n ? 0 : -1;
}

void sup_control_answer(sup_child *c, proto_err errcode, const char *msg)
{
    conn *w = c->waiter;
    cJSON *req = c->waiter_req;
    c->waiter = NULL;
    c->waiter_req = NULL;
    if (!w) {
        cJSON_Delete(req);
        return;
    }
    conn_set_data(w, NULL);
    cJSON *r;
    if (errcode != PROTO_OK)
        r = proto_reply_err(req, errcode, "child %s: %s", c->cfg->id, msg);
    else {
        r = proto_reply_ok(req);
        if (r) {
            cJSON_AddStringToObject(r, "child", c->cfg->id);
            cJSON_AddNumberToObject(r, "pid", (double)c->pid);
        }
    }
    ctl_send(w, r);
    cJSON_Delete(req);
}

static void ctl_on_frame(conn *cn, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    sup *s = arg;
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    proto_err code;
    char msg[256];
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    if (!req) {
        ctl_send(cn, proto_reply_err(NULL, code, "%s", msg));
        return;
    }
    const char *op = proto_op(req);
    if (nfds > 0) {
        ctl_send(cn, proto_reply_err(req, PROTO_E_UNEXPECTED_FD, "etssup takes no file descriptors"));
    } else if (strcmp(op, "status") == 0) {
        cJSON *r = proto_reply_ok(req);
        if (!r || sup_status_add(s, r) < 0) {
            cJSON_Delete(r);
            r = proto_reply_err(req, PROTO_E_INTERNAL, "out of memory");
        }
        ctl_send(cn, r);
    } else if (strcmp(op, "hello") == 0) {
        cJSON *r = proto_reply_ok(req);
        if (r) {
            cJSON_AddNumberToObject(r, "protocol", PROTO_VERSION);
            cJSON_AddNumberToObject(r, "pid", (double)s->pid);
            cJSON_AddStringToObject(r, "instance", s->rt.instance);
            cJSON_AddStringToObject(r, "version", ETSMGR_VERSION_STRING);
        }
        ctl_send(cn, r);
    } else if (strcmp(op, "restart") == 0) {
        const char *id = NULL;
        int g = proto_get_string(req, "child", &id, msg, sizeof msg);
        sup_child *c = g == 0 ? sup_find_child(s, id) : NULL;
        char err[256];
        if (g != 0)
            ctl_send(cn, proto_reply_err(req, PROTO_E_BAD_REQUEST, "%s",
                                         g > 0 ? "restart needs \"child\": the id of the child to restart" : msg));
        else if (!c)
            ctl_send(cn, proto_reply_err(req, PROTO_E_NOT_FOUND, "no child with id \"%s\"", id));
        else if (c->waiter || conn_get_data(cn))
            ctl_send(cn, proto_reply_err(req, PROTO_E_BUSY, "a restart of child %s is already in progress", id));
        else {
            /* the waiter is in place before the restart begins: a start
             * that fails (or, ready=none, succeeds) at once answers it */
            c->waiter = cn;
            c->waiter_req = req;
            conn_set_data(cn, c);
            if (sup_restart_child(c, err, sizeof err) < 0) {
                c->waiter = NULL;
                c->waiter_req = NULL;
                conn_set_data(cn, NULL);
                ctl_send(cn, proto_reply_err(req, PROTO_E_STOPPING, "%s", err));
            } else
                return; /* answered by sup_control_answer, maybe already */
        }
    } else if (strcmp(op, "stop") == 0) {
        cJSON *r = proto_reply_ok(req);
        if (r)
            cJSON_AddNumberToObject(r, "pid", (double)s->pid);
        ctl_send(cn, r);
        log_notice("stop requested over the control socket (peer pid %d)", (int)conn_peer_pid(cn));
        sup_terminate(s, SUP_EXIT_OK);
    } else {
        ctl_send(cn, proto_reply_err(req, PROTO_E_UNKNOWN_OP, "unknown op \"%s\" (etssup knows status, restart, stop, hello)",
                                     op));
    }
    cJSON_Delete(req);
}

static void ctl_on_close(conn *cn, void *arg)
{
    (void)arg;
    sup_child *c = conn_get_data(cn);
    if (c && c->waiter == cn) {
        c->waiter = NULL;
        cJSON_Delete(c->waiter_req);
        c->waiter_req = NULL;
    }
}

int sup_control_start(sup *s, char *err, size_t errlen)
{
    if (rt_path(&s->rt, "etssup.sock", s->ctl_path, sizeof s->ctl_path) < 0) {
        snprintf(err, errlen, "%s/etssup.sock is longer than a socket path may be", s->rt.dir);
        return -1;
    }
    int fd = sock_listen_unix(s->ctl_path, 0600, 64, err, errlen);
    if (fd < 0) {
        s->ctl_path[0] = 0;
        return -1;
    }
    conn_server_cfg cfg = {.listen_fd = fd, .max_conns = 64, .on_frame = ctl_on_frame, .on_close = ctl_on_close,
                           .arg = s};
    if (conn_server_start(&s->ctl, s->loop, &cfg) < 0) {
        snprintf(err, errlen, "cannot serve %s: conn_server_start failed", s->ctl_path);
        close(fd);
        unlink(s->ctl_path);
        s->ctl_path[0] = 0;
        return -1;
    }
    return 0;
}

void sup_control_stop(sup *s)
{
    for (int i = 0; i < s->n; i++)
        if (s->children[i].waiter)
            sup_control_answer(&s->children[i], PROTO_E_STOPPING, "etssup is stopping");
    if (s->ctl) {
        conn_server_stop(s->ctl);
        s->ctl = NULL;
    }
    if (s->ctl_path[0]) {
        unlink(s->ctl_path);
        s->ctl_path[0] = 0;
    }
}

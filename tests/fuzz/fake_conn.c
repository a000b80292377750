/* SPDX-License-Identifier: Apache-2.0 */
/* fake_conn.c: a stand-in for common/prog/conn.c, so that the request handlers of
 * etsmgrd (mgrd_req_frame) and etscounterd (ecd_on_frame) can be fuzzed
 * without a socket or an event loop.  The handlers only ever talk to a
 * connection through conn.h, so linking this file instead of conn.c gives
 * them connections the harness makes up (any pid and uid), and every reply
 * they send is checked here: it must be a JSON object with a boolean "ok"
 * of at most FRAME_MAX bytes, and an fd sent with it must be open. */
#include "fake_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

conn *fz_conn_new(pid_t pid, uid_t uid, gid_t gid)
{
    conn *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->pid = pid;
    c->uid = uid;
    c->gid = gid;
    return c;
}

void fz_conn_free(conn *c) { free(c); }

int conn_send(conn *c, const char *payload, size_t len, int fd)
{
    if (!c || c->closing) {
        errno = EPIPE;
        return -1;
    }
    if (len > FRAME_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    cJSON *o = cJSON_ParseWithLength(payload, len);
    if (!cJSON_IsObject(o) || !(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(o, "ok")) ||
                                cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "event")))) {
        fprintf(stderr, "fuzz: a handler sent a frame that is not a reply: %.*s\n", (int)len, payload);
        abort();
    }
    cJSON_Delete(o);
    if (fd >= 0 && fcntl(fd, F_GETFD) < 0) {
        fprintf(stderr, "fuzz: a handler sent a closed fd %d with %.*s\n", fd, (int)len, payload);
        abort();
    }
    c->sent++;
    if (fd >= 0)
        c->sent_fds++;
    return 0;
}

int conn_send_json(conn *c, const cJSON *obj, int fd)
{
    char *s = cJSON_PrintUnformatted(obj);
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    int r = conn_send(c, s, strlen(s), fd);
    cJSON_free(s);
    return r;
}

/* nothing is queued here: conn_send has already "sent" */
void conn_flush_now(conn *c)
{
    (void)c;
}

/* no turns to end here: each input is one frame at a time */
void conn_charge(conn *c, unsigned units)
{
    (void)c;
    (void)units;
}

void conn_close(conn *c)
{
    if (c)
        c->closing = true;
}

pid_t conn_peer_pid(const conn *c) { return c->pid; }
uid_t conn_peer_uid(const conn *c) { return c->uid; }
gid_t conn_peer_gid(const conn *c) { return c->gid; }
void conn_set_data(conn *c, void *data) { c->data = data; }
void *conn_get_data(const conn *c) { return c->data; }

int conn_server_start(conn_server **out, uv_loop_t *loop, const conn_server_cfg *cfg)
{
    (void)loop;
    (void)cfg;
    *out = NULL;
    errno = ENOSYS;
    return -1;
}
void conn_server_stop(conn_server *s) { (void)s; }
size_t conn_server_count(const conn_server *s)
{
    (void)s;
    return 0;
}

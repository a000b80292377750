/* SPDX-License-Identifier: Apache-2.0 */
/* conn_echo.c: a conn_server in its own process, for tests that look at a
 * server from outside (fd counts in /proc, tu_request): listens on
 * $ETSMGR_RUNTIME_DIR/echo.sock, says READY=1, and answers each request
 * {"op":...} with {"ok":true,"id":...,"op":...,"nfds":N}, sending the first
 * received fd back with the reply.  Received fds are then closed.
 * op "fds" also reports "fds": the process's open fds less one per open
 * connection, a number that stays put unless something leaks.
 * op "exit" replies and stops the server; SIGTERM stops it too. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "log.h"
#include "notify.h"
#include "proto.h"
#include "runtime.h"
#include "sock.h"
#include "testutil.h"

static conn_server *ce_srv;
static uv_signal_t ce_sig;

static void ce_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg)
{
    (void)arg;
    proto_err code;
    char msg[256];
    cJSON *req = proto_parse_request(payload, len, &code, msg, sizeof msg);
    cJSON *r = req ? proto_reply_ok(req) : proto_reply_err(NULL, code, "%s", msg);
    if (req)
        cJSON_AddStringToObject(r, "op", proto_op(req));
    cJSON_AddNumberToObject(r, "nfds", nfds);
    if (req && strcmp(proto_op(req), "fds") == 0)
        cJSON_AddNumberToObject(r, "fds", tu_count_fds(getpid()) - nfds - (int)conn_server_count(ce_srv));
    conn_send_json(c, r, nfds > 0 ? fds[0] : -1);
    cJSON_Delete(r);
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (req && strcmp(proto_op(req), "exit") == 0) {
        conn_server_stop(ce_srv);
        uv_close((uv_handle_t *)&ce_sig, NULL);
    }
    cJSON_Delete(req);
}

static void ce_on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    conn_server_stop(ce_srv);
    uv_close((uv_handle_t *)h, NULL);
}

int main(void)
{
    log_init("conn_echo", LOG_LVL_INFO);
    rt_paths rt;
    char err[256], path[RT_PATH_MAX];
    if (rt_resolve(NULL, NULL, &rt, err, sizeof err) < 0 || rt_ensure_dir(&rt, err, sizeof err) < 0) {
        log_error("%s", err);
        return 78;
    }
    if (rt_path(&rt, "echo.sock", path, sizeof path) < 0) {
        log_error("socket path too long");
        return 78;
    }
    int lfd = sock_listen_unix(path, 0600, 128, err, sizeof err);
    if (lfd < 0) {
        log_error("%s", err);
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    conn_server_cfg cfg = {.listen_fd = lfd, .max_conns = 100, .on_frame = ce_on_frame};
    if (conn_server_start(&ce_srv, loop, &cfg) < 0) {
        log_error("conn_server_start failed");
        return 1;
    }
    uv_signal_init(loop, &ce_sig);
    uv_signal_start(&ce_sig, ce_on_signal, SIGTERM);
    notify_send("READY=1");
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    unlink(path);
    return 0;
}

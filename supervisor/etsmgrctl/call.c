/* SPDX-License-Identifier: Apache-2.0 */
/* call.c: one request/reply on an instance socket, for every etsmgrctl
 * command: the connection, the reply's "ok", and the exit status that tells a
 * script what went wrong (69 nobody answers, 70 an error reply or nonsense). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "frame.h"
#include "sock.h"

bool g_json;

char ctl_refusal[32];

/* One request; 0 with *reply, else an exit status (message printed). */
int ctl_call(const rt_paths *rt, const char *sockname, const char *who, cJSON *req, int timeout_ms,
             int *conn_fd, cJSON **reply)
{
    ctl_refusal[0] = '\0';
    char path[RT_PATH_MAX];
    if (rt_path(rt, sockname, path, sizeof path) < 0) {
        fprintf(stderr, "etsmgrctl: the runtime dir %s is too long for a socket path\n", rt->dir);
        return CTL_EXIT_SOFTWARE;
    }
    int fd = sock_connect_unix_within(path, timeout_ms);
    if (fd < 0) {
        int e = errno;
        if (e == EAGAIN) { /* its backlog stayed full for timeout_ms: stopped, or swamped */
            fprintf(stderr, "etsmgrctl: no answer from %s within %d ms (connect %s: its backlog is full: "
                            "is it stopped?)\n", who, timeout_ms, path);
            return CTL_EXIT_SOFTWARE;
        }
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
            fprintf(stderr,
                    "etsmgrctl: %s is not running for instance %s in runtime dir %s (connect %s: %s); "
                    "`etsmgrctl env` says where these come from\n",
                    who, rt->instance, rt->dir, path, strerror(e));
        else
            fprintf(stderr, "etsmgrctl: cannot reach %s of instance %s: connect %s: %s\n", who, rt->instance, path,
                    strerror(e));
        return CTL_EXIT_UNAVAILABLE;
    }
    if (frame_write_json(fd, req, NULL, 0) < 0) {
        int e = errno;
        close(fd);
        fprintf(stderr, "etsmgrctl: sending the request to %s (%s): %s\n", who, path, strerror(e));
        return e == EPIPE || e == ECONNRESET ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_SOFTWARE;
    }
    int nfds = 0;
    if (frame_read_json(fd, reply, NULL, &nfds, 0, timeout_ms) < 0) {
        int e = errno;
        close(fd);
        if (e == ECONNRESET) {
            fprintf(stderr, "etsmgrctl: %s closed the connection before answering (it may be restarting)\n", who);
            return CTL_EXIT_UNAVAILABLE;
        }
        if (e == ETIMEDOUT)
            fprintf(stderr, "etsmgrctl: no answer from %s within %d ms\n", who, timeout_ms);
        else if (e == EBADMSG)
            fprintf(stderr, "etsmgrctl: %s (%s) answered something that is not a JSON object: is it an etsmgr "
                            "daemon of this version?\n", who, path);
        else if (e == EMSGSIZE)
            fprintf(stderr, "etsmgrctl: %s (%s) announced an answer longer than a frame may be "
                            "(docs/protocol.md)\n", who, path);
        else
            fprintf(stderr, "etsmgrctl: reading the answer of %s: %s\n", who, strerror(e));
        return CTL_EXIT_SOFTWARE;
    }
    if (conn_fd)
        *conn_fd = fd;
    else
        close(fd);
    cJSON *ok = cJSON_GetObjectItemCaseSensitive(*reply, "ok");
    if (!cJSON_IsBool(ok)) {
        fprintf(stderr, "etsmgrctl: %s sent a reply without \"ok\"\n", who);
        goto fail;
    }
    if (!cJSON_IsTrue(ok)) {
        cJSON *code = cJSON_GetObjectItemCaseSensitive(*reply, "error");
        cJSON *msg = cJSON_GetObjectItemCaseSensitive(*reply, "message");
        fprintf(stderr, "etsmgrctl: %s: %s (%s)\n", who, cJSON_IsString(msg) ? msg->valuestring : "failed",
                cJSON_IsString(code) ? code->valuestring : "no error code");
        snprintf(ctl_refusal, sizeof ctl_refusal, "%s", cJSON_IsString(code) ? code->valuestring : "");
        goto fail;
    }
    return 0;
fail:
    if (conn_fd) {
        close(*conn_fd);
        *conn_fd = -1;
    }
    cJSON_Delete(*reply);
    *reply = NULL;
    return CTL_EXIT_SOFTWARE;
}

int ctl_call_op(const rt_paths *rt, const char *who, const char *op, int timeout_ms, cJSON **reply)
{
    char sockname[32];
    snprintf(sockname, sizeof sockname, "%s.sock", who);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", op);
    cJSON_AddNumberToObject(req, "id", 1);
    int rc = ctl_call(rt, sockname, who, req, timeout_ms, NULL, reply);
    cJSON_Delete(req);
    return rc;
}

int ctl_connect(const rt_paths *rt, int timeout_ms, etsmgr_client **out)
{
    *out = NULL;
    cJSON *reply = NULL;
    int rc = ctl_call_op(rt, "etsmgrd", "hello", timeout_ms, &reply);
    cJSON_Delete(reply);
    if (rc)
        return rc;
    char msg[300];
    int err = etsmgr_connect(rt->dir, rt->instance, out, msg, sizeof msg);
    if (err) {
        fprintf(stderr, "etsmgrctl: etsmgrd of instance %s: %s\n", rt->instance, msg);
        return err == ETSMGR_ENOTCONN ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_SOFTWARE;
    }
    etsmgr_client_set_timeout(*out, timeout_ms);
    return 0;
}

void ctl_print_json(cJSON *reply)
{
    cJSON_DeleteItemFromObjectCaseSensitive(reply, "ok");
    cJSON_DeleteItemFromObjectCaseSensitive(reply, "id");
    char *s = cJSON_PrintUnformatted(reply);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
}


/* The reader of stdout went away: a pipe's write end then polls POLLERR,
 * a stream socket whose peer closed POLLHUP (systemd's
 * StandardOutput=socket, say). */
static bool ctl_reader_gone(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

static int ctl_out_errno;

void ctl_output_failed(void)
{
    if (!ctl_out_errno)
        ctl_out_errno = errno;
}

/* The exit status, once stdout is written out and closed: a failure only
 * the close reports (a quota, NFS) is a failed output too.  Called once,
 * at exit. */
int ctl_output_status(int rc)
{
    bool bad = ferror(stdout) != 0;
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout))
        bad = true;
    if (!bad && fclose(stdout) != 0)
        bad = true;
    if (!bad)
        return rc;
    /* errno of the write that failed is gone when stdio dropped the
     * buffer it could not write */
    int e = errno ? errno : ctl_out_errno;
    if (e == 0 && ctl_reader_gone())
        e = EPIPE;
    if (e != EPIPE)
        fprintf(stderr, "etsmgrctl: writing the output: %s; it is incomplete\n", e ? strerror(e) : "write error");
    return rc ? rc : CTL_EXIT_IOERR;
}

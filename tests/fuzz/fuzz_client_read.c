/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_client_read: the blocking reader the clients use (libetsmgr, the
 * CLIs: every frame_read_json caller) on any
 * byte stream a peer could send back: the input is written into a
 * socketpair whose other end then closes, and frames are read until the
 * stream ends.  Each frame must be handed back or refused (EBADMSG, EMSGSIZE,
 * ECONNRESET) without overrunning or waiting: the writer is gone, so a wait
 * that times out is a bug.  The event-loop reader the daemons use is
 * fuzz_frame's job; table names (rt_valid_name) are checked on every
 * "name" string found, as the daemons do before building a shm name. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "fuzz_util.h"
#include "runtime.h"

static void blocking_reader(const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return;
    int sz = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(sv[0], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(sv[0]);
    for (int i = 0; i < 64; i++) {
        cJSON *o = NULL;
        int fds[FRAME_MAX_FDS], nfds = 0;
        if (frame_read_json(sv[1], &o, fds, &nfds, FRAME_MAX_FDS, 1000) < 0) {
            if (errno == ETIMEDOUT)
                abort(); /* the peer is gone: that is ECONNRESET, never a wait */
            if (errno != EBADMSG)
                break;
            continue;
        }
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        if (cJSON_IsString(name) && name->valuestring) {
            size_t len = strlen(name->valuestring);
            if (rt_valid_name(name->valuestring, len) && (len > 64 || strchr(name->valuestring, '/')))
                abort();
        }
        cJSON_Delete(o);
    }
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fds = fz_count_fds();
    blocking_reader(data, size);
    fz_check_fds(fds, "one input");
    return 0;
}

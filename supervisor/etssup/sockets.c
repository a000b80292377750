/* SPDX-License-Identifier: Apache-2.0 */
/* sockets.c: the listening sockets etssup holds on behalf of its children.
 *
 * A daemon that binds its own socket takes it down with it when it dies:
 * until the restarted one binds again, clients get ECONNREFUSED or ENOENT.
 * Here etssup creates each child's socket once, keeps it open for its whole
 * life and passes it in at every start (socket activation, listenfd.h).  A
 * dead child then only means nobody calls accept() for a moment: clients
 * that connect meanwhile wait in the kernel's backlog and are served by the
 * next incarnation.  The backlog is SOMAXCONN so a burst of waiting clients
 * is not refused either.  Our own copies are close-on-exec; child.c places
 * the ones a child needs at fd 3 and up.
 *
 * Under socket activation (etsmgr.socket) systemd made the sockets and
 * passed them to etssup: each is taken by its name or, as one socket unit
 * gives all its sockets one name, by the path it is bound to (listenfd.h).
 * Those are systemd's: etssup never unlinks them, or the next activation
 * would find no file to connect to.  An inherited socket that matches no
 * configured one stops etssup with a configuration error naming it. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listenfd.h"
#include "log.h"
#include "sock.h"
#include "sup.h"

int sup_sockets_open(sup *s)
{
    for (int i = 0; i < s->n; i++) {
        sup_child *c = &s->children[i];
        const sup_child_cfg *cc = c->cfg;
        if (cc->nsockets == 0)
            continue;
        c->listen_fds = malloc(cc->nsockets * sizeof *c->listen_fds);
        if (!c->listen_fds) {
            log_error("cannot hold the sockets of child %s: out of memory", cc->id);
            return -1;
        }
        for (int j = 0; j < cc->nsockets; j++)
            c->listen_fds[j] = -1;
        for (int j = 0; j < cc->nsockets; j++) {
            char path[RT_PATH_MAX], err[256];
            if (rt_path(&s->rt, cc->sockets[j].path, path, sizeof path) < 0) {
                log_error("socket %s of child %s: the path %s/%s is longer than a socket path may be (%d bytes); "
                          "use a shorter runtime dir",
                          cc->sockets[j].name, cc->id, s->rt.dir, cc->sockets[j].path, RT_PATH_MAX - 1);
                return -1;
            }
            int fd = listenfd_take(cc->sockets[j].name, path);
            if (fd >= 0) {
                c->inherited |= 1u << j;
                log_info("holding the socket systemd passed for %s (fd %d, name %s) for child %s", path, fd,
                         cc->sockets[j].name, cc->id);
            } else {
                fd = sock_listen_unix(path, 0600, SOMAXCONN, err, sizeof err);
                if (fd < 0) {
                    log_error("socket %s of child %s: %s", cc->sockets[j].name, cc->id, err);
                    return -1;
                }
                log_debug("holding %s (fd %d, name %s) for child %s", path, fd, cc->sockets[j].name, cc->id);
            }
            c->listen_fds[j] = fd;
        }
    }
    char extra[1024];
    if (listenfd_leftover(extra, sizeof extra) > 0) {
        log_error("inherited socket(s) %s match no socket of the configuration (by name or path): check the "
                  "socket unit's ListenStream= and FileDescriptorName= against the children's \"sockets\"",
                  extra);
        return -2;
    }
    return 0;
}

/* Close and unlink: after an orderly stop, clients should see "not running"
 * (ENOENT) at once rather than wait in a backlog nobody will accept. */
void sup_sockets_close(sup *s)
{
    for (int i = 0; i < s->n; i++) {
        sup_child *c = &s->children[i];
        if (!c->listen_fds)
            continue;
        for (int j = 0; j < c->cfg->nsockets; j++) {
            if (c->listen_fds[j] < 0)
                continue;
            char path[RT_PATH_MAX];
            if (!(c->inherited & (1u << j)) && rt_path(&s->rt, c->cfg->sockets[j].path, path, sizeof path) == 0)
                unlink(path);
            close(c->listen_fds[j]);
        }
        free(c->listen_fds);
        c->listen_fds = NULL;
    }
}

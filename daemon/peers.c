/* SPDX-License-Identifier: Apache-2.0 */
/* peers.c: one mgrd_peer per connection.
 *
 * The connection is the client's life line, the C counterpart of the Erlang
 * link between etsmgr_srv and an owner: the kernel closes it when the client
 * process dies however it dies (SIGKILL included), and conn.c reports that
 * as on_close.  At that moment every table the peer owned becomes orphaned
 * and the daemon is its heir.  The peer's pid and uid come from SO_PEERCRED
 * (conn_peer_pid/uid) when the connection is accepted, never from a
 * message, so a client cannot claim another's tables.
 *
 * Peers are kept in a list so that give_away can find the receiving
 * connection by pid. */
#include <stdlib.h>

#include "etsmgrd.h"
#include "log.h"

void mgrd_peer_open(conn *c, void *arg)
{
    mgrd *m = arg;
    mgrd_peer *p = calloc(1, sizeof *p);
    if (!p) {
        log_error("out of memory accepting a connection; closing it");
        conn_close(c);
        return;
    }
    p->c = c;
    p->pid = conn_peer_pid(c);
    p->uid = conn_peer_uid(c);
    p->next = m->peers;
    m->peers = p;
    m->npeers++;
    conn_set_data(c, p);
    log_debug("connection from pid=%d uid=%u", (int)p->pid, (unsigned)p->uid);
}

void mgrd_peer_close(conn *c, void *arg)
{
    mgrd *m = arg;
    mgrd_peer *p = conn_get_data(c);
    if (!p)
        return;
    conn_set_data(c, NULL);
    for (mgrd_peer **pp = &m->peers; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    m->npeers--;
    mgrd_wait_drop_peer(m, p);
    if (p->owned > 0) {
        bool log_exit = !m->stopping;
        mgrd_reg_orphan_all(m, p);
        if (log_exit)
            log_notice("EXIT: from pid=%d.", (int)p->pid);
    } else {
        log_debug("connection from pid=%d closed", (int)p->pid);
    }
    free(p);
}

mgrd_peer *mgrd_peer_find(mgrd *m, pid_t pid, uid_t uid)
{
    /* The list is newest first: a process with several connections gets the
     * table on the one it opened last (give_away looks for one of them
     * waiting for the table first: waiters.c). */
    for (mgrd_peer *p = m->peers; p; p = p->next)
        if (p->pid == pid && p->uid == uid)
            return p;
    return NULL;
}

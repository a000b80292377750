/* SPDX-License-Identifier: Apache-2.0 */
/* fake_conn.h: the connections fake_conn.c makes up for the harnesses. */
#ifndef ETSMGR_FAKE_CONN_H
#define ETSMGR_FAKE_CONN_H
#include <stdbool.h>
#include "conn.h"

struct conn {
    pid_t pid;
    uid_t uid;
    gid_t gid;
    void *data;
    bool closing;
    unsigned sent, sent_fds;
};

conn *fz_conn_new(pid_t pid, uid_t uid, gid_t gid);
void fz_conn_free(conn *c);
#endif

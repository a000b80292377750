/* counterd.h: etscounterd's state, shared by main.c (start-up, options,
 * reattachment callbacks) and serve.c (the requests on etscounter.sock). */
#ifndef ETSCOUNTERD_H
#define ETSCOUNTERD_H
#include <uv.h>
#include "conn.h"
#include "etsmgr.h"
#include "runtime.h"

/* exit statuses (documented in etscounterd(8)) */
#define ECD_EXIT_USAGE 64       /* bad command line */
#define ECD_EXIT_UNAVAILABLE 69 /* etsmgrd did not answer within --wait-timeout */
#define ECD_EXIT_SOFTWARE 70    /* anything else that stops it from serving */
#define ECD_EXIT_MGR_DIED 75    /* --on-manager-death=exit and etsmgrd died */

typedef struct ecd {
    uv_loop_t *loop;
    etsmgr_client *mgr;
    etsmgr_table *t;
    conn_server *srv;
    rt_paths rt;
    char sock_path[RT_PATH_MAX];
    int exactly_once;
    int exit_on_manager_death;
    long die_after_commit; /* test hook: SIGKILL after this many commits (0: off) */
    unsigned long served;
} ecd;

/* serve.c */
void ecd_on_frame(conn *c, const char *payload, size_t len, int *fds, int nfds, void *arg);
void ecd_on_close(conn *c, void *arg);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_etsmgrd_req: etsmgrd's whole request handling (mgrd_req_frame and
 * every op behind it, the registry, the fd checks), driven without a socket
 * through fake_conn.c.  Three made-up peers share one daemon state: two of
 * the same uid (so give_away has somewhere to go) and one of uid 65534 (so
 * the uid checks are exercised); each request comes with the fds the input
 * picks: none, a pipe, a regular file, a socket, a memfd, the real shm
 * object of a table, or too many.  After every input the daemon state is
 * torn down the way a real peer's disconnect and a daemon exit do it, and
 * the harness checks that every received fd was closed or kept by a table
 * (no fd leak) and every reply was a well-formed frame (fake_conn.c).
 * It runs in a /dev/shm of its own (fz_private_shm), so that the daemon's
 * listings of /dev/shm see this run's objects only, not the machine's.
 *
 * Input: records of [peer+fd byte][length byte][payload]; the payload is
 * the JSON of one request. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "etsmgrd.h"
#include "fake_conn.h"
#include "frame.h"
#include "fuzz_util.h"
#include "log.h"
#include "table.h"

static mgrd M;
static char prefix[80];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_private_shm();
    fz_limit_files();
    log_init("etsmgrd-fuzz", (enum log_level)(LOG_LVL_ERROR - 1)); /* silent: refusals log by design */
    char inst[40], err[200];
    snprintf(inst, sizeof inst, "fz%dmgrd", (int)getpid());
    if (rt_resolve("/tmp", inst, &M.rt, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
    snprintf(prefix, sizeof prefix, "%s:", inst);
    M.pid = getpid();
    M.max_conns = 1024;
    M.max_tables = 6;
    mgrd_size_limits(&M, 64u << 20, 256u << 20); /* size_hint claims stay small */
    return 0;
}

/* fds to send, by kind (0: none). */
static int make_fds(unsigned kind, int *fds)
{
    int n = 0, sv[2];
    char shm[MGRD_SHM_NAME_MAX];
    switch (kind % 8) {
    case 0:
        return 0;
    case 1:
        if (pipe2(sv, O_CLOEXEC) == 0) {
            fds[n++] = sv[0];
            close(sv[1]);
        }
        break;
    case 2:
        fds[n] = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        n += fds[n] >= 0;
        break;
    case 3:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
            fds[n++] = sv[0];
            close(sv[1]);
        }
        break;
    case 4:
        fds[n] = memfd_create("fuzz", MFD_CLOEXEC);
        n += fds[n] >= 0;
        break;
    case 5: /* the shm object of table "t" or "etscounter", when it exists */
    case 6:
        if (rt_shm_name(&M.rt, (unsigned long)geteuid(), kind % 8 == 5 ? "t" : "etscounter", shm,
                        sizeof shm) == 0) {
            fds[n] = shm_open(shm, O_RDWR | O_CLOEXEC, 0);
            n += fds[n] >= 0;
        }
        break;
    case 7: /* more than FRAME_MAX_FDS would ever deliver: conn.c caps them */
        for (int i = 0; i < FRAME_MAX_FDS; i++) {
            fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC);
            n += fds[n] >= 0;
        }
        break;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int before = fz_count_fds();
    conn *peers[3] = {fz_conn_new(getpid(), getuid(), getgid()), fz_conn_new(4242, getuid(), getgid()),
                      fz_conn_new(4343, 65534, 65534)};
    for (int i = 0; i < 3; i++)
        mgrd_peer_open(peers[i], &M);
    fz_in in = {data, size};
    while (in.n >= 2) {
        unsigned ctl = fz_u8(&in);
        size_t len = fz_u8(&in) * 4u + (ctl >> 6);
        const unsigned char *p = fz_take(&in, &len);
        conn *c = peers[(ctl & 7) % 3];
        int fds[FRAME_MAX_FDS], nfds = make_fds(ctl >> 3, fds);
        if (c->closing) { /* a closed connection gets no more frames */
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        mgrd_req_frame(c, (const char *)p, len, fds, nfds, &M);
    }
    /* the peers go away (their tables become orphaned), then the daemon exits */
    for (int i = 0; i < 3; i++) {
        mgrd_peer_close(peers[i], &M);
        fz_conn_free(peers[i]);
    }
    if (M.npeers != 0 || M.peers) {
        fprintf(stderr, "fuzz: %zu peers left after every connection closed\n", M.npeers);
        abort();
    }
    for (mgrd_table *rt = M.tables; rt; rt = rt->next)
        if (mgrd_reg_state(rt) != MGRD_ORPHANED || rt->owner) {
            fprintf(stderr, "fuzz: table %s still owned after its owner closed\n", rt->name);
            abort();
        }
    mgrd_reg_free_all(&M);
    fz_unlink_shm(prefix);
    fz_check_fds(before, "one input");
    return 0;
}

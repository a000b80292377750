/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_etscounterd_req: etscounterd's request handling (ecd_on_frame:
 * count with and without request ids, check, ping, die, unknown ops, fds
 * on a socket that takes none) on a real counter table, driven through
 * fake_conn.c.  The table is a fresh copy of a template for every input (a
 * memfd: nothing in /dev/shm), so inputs are independent; after the input
 * the table must still verify (no request may corrupt it) and every fd sent
 * along must have been closed.
 *
 * Input: records of [ctl byte][length byte][payload]; ctl picks whether a
 * fresh connection is used, whether an fd comes along, and whether the
 * frame is first shown to ecd_on_ahead as conn.c does (its reading kept
 * in a slot for on_frame), in a buffer whose last byte may change before
 * on_frame reads it (a reused buffer: the kept reading must not be
 * taken).  Exactly-once counts the fast path read wait for group commit
 * until a turn ends (ecd_on_served), which a ctl of 2 in its low bits
 * says, as does a new connection and the input's end. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "counter.h"
#include "counterd.h"
#include "fake_conn.h"
#include "fuzz_util.h"
#include "log.h"
#include "table.h"

static char *tmpl;
static size_t tmpl_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_limit_files();
    tbl_hash_seed_fixed = 0x5eed5eed5eed5eedull; /* the same index layouts when an input is replayed */
    log_init("etscounterd-fuzz", (enum log_level)(LOG_LVL_ERROR - 1));
    char shm[80];
    snprintf(shm, sizeof shm, "/fz%dctr.etscounter", (int)getpid());
    etsmgr_table *t = NULL;
    int64_t v;
    if (tbl_create(shm, CTR_TABLE, NULL, &t) < 0 || ctr_init(t, &v) < 0) {
        fprintf(stderr, "fuzz: cannot make the template table %s\n", shm);
        abort();
    }
    tbl_unlink(shm);
    int fd = etsmgr_table_fd(t);
    tmpl_len = (size_t)lseek(fd, 0, SEEK_END);
    tmpl = malloc(tmpl_len);
    if (!tmpl || pread(fd, tmpl, tmpl_len, 0) != (ssize_t)tmpl_len)
        abort();
    etsmgr_table_close(t);
    return 0;
}

static etsmgr_table *fresh_table(void)
{
    int fd = memfd_create("etscounter", MFD_CLOEXEC);
    if (fd < 0 || pwrite(fd, tmpl, tmpl_len, 0) != (ssize_t)tmpl_len)
        abort();
    etsmgr_table *t = NULL;
    if (etsmgr_table_attach_fd(fd, &t) < 0)
        abort();
    return t;
}

/* etscounterd takes the time of a count from its loop (uv_now: the loop's
 * time of this turn), so the handlers need one, though nothing runs on it */
static uv_loop_t *fuzz_loop(void)
{
    static uv_loop_t loop;
    static int ready;
    if (!ready) {
        if (uv_loop_init(&loop) != 0)
            abort();
        ready = 1;
    }
    uv_update_time(&loop);
    return &loop;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uv_loop_t *loop = fuzz_loop();
    int before = fz_count_fds();
    ecd d = {.t = fresh_table(), .exactly_once = 1, .loop = loop};
    conn *c = fz_conn_new(getpid(), getuid(), getgid());
    fz_in in = {data, size};
    while (in.n >= 2) {
        unsigned ctl = fz_u8(&in);
        size_t len = fz_u8(&in) * 2u + (ctl >> 7);
        const unsigned char *p = fz_take(&in, &len);
        if ((ctl & 3) == 3) {  /* a new connection */
            ecd_on_served(&d); /* the batch's replies (conn.c: at the turn's end) before it goes */
            fz_conn_free(c);
            c = fz_conn_new(getpid(), getuid(), getgid());
        }
        d.exactly_once = !(ctl & 4);
        int fds[2], nfds = 0;
        if (ctl & 8)
            fds[nfds++] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (ctl & 16)
            fds[nfds++] = memfd_create("x", MFD_CLOEXEC);
        if (ctl & 32) { /* looked ahead at, from one buffer (conn.c's) */
            static char buf[512];
            memcpy(buf, p, len);
            ecd_on_ahead(c, buf, len, &d);
            if ((ctl & 64) && len)
                buf[len - 1] ^= 1;
            ecd_on_frame(c, buf, len, fds, nfds, &d);
        } else
            ecd_on_frame(c, (const char *)p, len, fds, nfds, &d);
        if ((ctl & 3) == 2)
            ecd_on_served(&d); /* a turn ends here: the held exactly-once counts are done */
    }
    ecd_on_served(&d);
    fz_conn_free(c);
    char why[256] = "";
    if (etsmgr_table_verify(d.t, why, sizeof why) != ETSMGR_OK) {
        fprintf(stderr, "fuzz: requests left the counter table corrupt: %s\n", why);
        abort();
    }
    etsmgr_table_close(d.t);
    fz_check_fds(before, "one input");
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* save_stall.c: how long etsmgr_table_save stalls the table's owner
 * (`make bench-save`; not a test, numbers are printed, never asserted).
 *
 * For tables of about 4 KiB, 64 MiB and 1 GiB of data: a forked "owner"
 * runs update_counter in a loop (then, for 64 MiB and 1 GiB again, also
 * rewriting a bytes value, a change that moves its key's stripe word) and
 * records the longest single call, first for a quiet window as long as the
 * save, then while this process saves the table to a file.  The owner's
 * longest call during the save is its stall: it waits for the lock while
 * the save takes the stripe words and while it fixes up its copy
 * (table_image.c).  Also printed: the save's own lock hold
 * (img_last_lock_ns), what it copied while holding it, where the save's
 * time went (wall and CPU), the whole save's time and the file's size.  The save runs on a fresh attachment
 * (its pages not mapped in yet), as in etsmgrd and etsmgrctl.
 *
 *   bench_save [DIR]   DIR: where the image files go (default /tmp) */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "table.h"
#include "table_image.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The owner: counts until told to stop (a byte on cmd), then writes the
 * longest call and the number of calls. */
/* bytes: each call also rewrites a bytes value (a new block, its key's
 * stripe moves), so the save's last step must look through the index */
static void owner(const char *shm, int cmd, int res, bool bytes)
{
    etsmgr_table *t;
    if (tbl_open(shm, &t))
        _exit(2);
    fcntl(cmd, F_SETFL, O_NONBLOCK);
    for (;;) {
        char c;
        uint64_t worst = 0, n = 0;
        while (read(cmd, &c, 1) != 1) { /* a window: until the next byte */
            for (int i = 0; i < 1000; i++) {
                uint64_t t0 = now_ns();
                int64_t v;
                if (etsmgr_table_update_counter(t, "owner", 5, 1, 0, &v))
                    _exit(3);
                etsmgr_value b = {.type = ETSMGR_BYTES, .data = &v, .len = sizeof v};
                if (bytes && etsmgr_table_insert(t, "owner-bytes", 11, &b))
                    _exit(3);
                uint64_t d = now_ns() - t0;
                if (d > worst)
                    worst = d;
                n++;
            }
        }
        uint64_t r[2] = {worst, n};
        if (write(res, r, sizeof r) != sizeof r)
            _exit(4);
        if (c == 'q')
            _exit(0);
    }
}

static void window(int cmd, int res, char c, uint64_t *worst, uint64_t *n)
{
    if (write(cmd, &c, 1) != 1)
        exit(1);
    uint64_t r[2];
    if (read(res, r, sizeof r) != sizeof r)
        exit(1);
    *worst = r[0];
    *n = r[1];
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

static void one(const char *dir, const char *label, uint64_t data_bytes, bool bytes)
{
    char shm[64], path[512];
    snprintf(shm, sizeof shm, "/benchsave%d.t", (int)getpid());
    snprintf(path, sizeof path, "%s/bench-save-%d.etsimg", dir, (int)getpid());
    tbl_unlink(shm);
    etsmgr_table_opts o = {.size_hint = data_bytes + data_bytes / 4 + 65536};
    etsmgr_table *t;
    if (tbl_create(shm, "bench", &o, &t)) {
        fprintf(stderr, "bench_save: cannot create a %s table\n", label);
        exit(1);
    }
    /* entries of 1000-byte values (for 4 KiB: 4 of them) */
    static unsigned char val[1000];
    uint64_t n = data_bytes / 1024;
    if (n == 0)
        n = 1;
    for (uint64_t i = 0; i < n; i++) {
        char k[24];
        int kl = snprintf(k, sizeof k, "k%llu", (unsigned long long)i);
        memcpy(val, &i, sizeof i);
        etsmgr_value v = {.type = ETSMGR_BYTES, .data = val, .len = sizeof val};
        if (etsmgr_table_insert(t, k, (size_t)kl, &v)) {
            fprintf(stderr, "bench_save: insert failed at %llu\n", (unsigned long long)i);
            exit(1);
        }
    }
    etsmgr_table_info info;
    etsmgr_table_info_get(t, &info);
    /* one save before measuring, so the page cache and the file exist */
    if (etsmgr_table_save(t, path)) {
        fprintf(stderr, "bench_save: save to %s failed: %s\n", path, strerror(errno));
        exit(1);
    }
    int cmd[2], res[2];
    if (pipe(cmd) || pipe(res))
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(cmd[1]);
        close(res[0]);
        owner(shm, cmd[0], res[1], bytes);
    }
    close(cmd[0]);
    close(res[1]);
    uint64_t w0, n0, w1, n1, qw, qn;
    sleep_ns(100000000); /* the owner gets going */
    window(cmd[1], res[0], 'w', &w0, &n0); /* discard the start */
    /* the save from a fresh attachment, as etsmgrd and etsmgrctl save */
    etsmgr_table *s;
    if (tbl_open(shm, &s))
        exit(1);
    uint64_t t0 = now_ns();
    int rc = etsmgr_table_save(s, path);
    uint64_t save_ns = now_ns() - t0, lock_ns = img_last_lock_ns();
    uint64_t locked_bytes, rounds;
    bool fell_back;
    img_last_copy_stats(&locked_bytes, &rounds, &fell_back);
    uint64_t ph[IMG_NPHASES], pc[IMG_NPHASES];
    for (int i = 0; i < IMG_NPHASES; i++) {
        ph[i] = img_last_phase_ns(i);
        pc[i] = img_last_phase_cpu_ns(i);
    }
    window(cmd[1], res[0], 'w', &w1, &n1); /* during the save */
    sleep_ns(save_ns);
    window(cmd[1], res[0], 'q', &qw, &qn); /* a quiet window as long */
    waitpid(pid, NULL, 0);
    struct stat st;
    stat(path, &st);
    printf("%-8s %9llu entries  %7.1f MiB used  save %8.1f ms  lock held %8.3f ms  "
           "owner's longest call: %8.3f ms during the save, %6.3f ms in a quiet window  file %7.1f MiB%s\n",
           label, (unsigned long long)info.entries, info.bytes_used / 1048576.0, save_ns / 1e6, lock_ns / 1e6,
           w1 / 1e6, qw / 1e6, st.st_size / 1048576.0, rc ? "  (save FAILED)" : "");
    printf("%-8s   copied while holding the lock: %.2f MiB (%llu lock-free round(s)%s)\n", "",
           locked_bytes / 1048576.0, (unsigned long long)rounds, fell_back ? ", fell back to one locked copy" : "");
    printf("%-8s   the save's time (CPU time): copy %.1f ms (%.1f), encode and write %.1f ms (%.1f), "
           "fsync %.1f ms (%.1f), rename and directory fsync %.1f ms (%.1f)\n", "", ph[IMG_PH_COPY] / 1e6,
           pc[IMG_PH_COPY] / 1e6, ph[IMG_PH_WRITE] / 1e6, pc[IMG_PH_WRITE] / 1e6, ph[IMG_PH_FSYNC] / 1e6,
           pc[IMG_PH_FSYNC] / 1e6, ph[IMG_PH_RENAME] / 1e6, pc[IMG_PH_RENAME] / 1e6);
    fflush(stdout);
    unlink(path);
    etsmgr_table_close(s);
    etsmgr_table_close(t);
    tbl_unlink(shm);
    close(cmd[1]);
    close(res[0]);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    printf("the owner: update_counter of one key\n");
    one(dir, "4 KiB", 4096, false);
    one(dir, "64 MiB", 64ull << 20, false);
    one(dir, "1 GiB", 1ull << 30, false);
    printf("the owner: update_counter and a bytes value rewritten (its stripe moves)\n");
    one(dir, "64 MiB", 64ull << 20, true);
    one(dir, "1 GiB", 1ull << 30, true);
    return 0;
}

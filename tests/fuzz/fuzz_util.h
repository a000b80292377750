/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_util.h: what the libFuzzer harnesses share.
 *
 * A harness must find more than crashes: a descriptor or a shm object left
 * behind by one input is the slow leak a hostile peer would use, so each
 * harness counts its open fds around every input and aborts on a difference,
 * and removes the shm objects of its private instance after each input so
 * that inputs stay independent (a crash reproduces from its file alone).
 * Everything is static inline: each harness is one translation unit. */
#ifndef ETSMGR_FUZZ_UTIL_H
#define ETSMGR_FUZZ_UTIL_H
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Open descriptors of this process (from /proc/self/fd, minus the dir's). */
static inline int fz_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        perror("fuzz: opendir /proc/self/fd");
        abort();
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;
}

static inline void fz_check_fds(int before, const char *what)
{
    int after = fz_count_fds();
    if (after != before) {
        fprintf(stderr, "fuzz: FD LEAK: %d fds open before %s, %d after\n", before, what, after);
        abort();
    }
}

/* Removes every /dev/shm/<prefix>* object. */
static inline void fz_unlink_shm(const char *prefix)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return;
    size_t pl = strlen(prefix);
    struct dirent *de;
    char name[300];
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, pl) != 0)
            continue;
        snprintf(name, sizeof name, "/%s", de->d_name);
        shm_unlink(name);
    }
    closedir(d);
}

/* Tables may be asked to grow to any size: cap files at 64 MiB (EFBIG, not
 * SIGXFSZ) so an input cannot fill /dev/shm, and leave the shm objects of
 * this run's prefix behind on no exit path. */
static inline void fz_limit_files(void)
{
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl = {64u << 20, 64u << 20};
    if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
        perror("fuzz: setrlimit(RLIMIT_FSIZE)");
}

/* A little reader over the fuzz input. */
typedef struct fz_in {
    const unsigned char *p;
    size_t n;
} fz_in;
static inline unsigned fz_u8(fz_in *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}
static inline unsigned fz_u16(fz_in *in)
{
    unsigned hi = fz_u8(in);
    return hi << 8 | fz_u8(in);
}
static inline const unsigned char *fz_take(fz_in *in, size_t *len)
{
    if (*len > in->n)
        *len = in->n;
    const unsigned char *p = in->p;
    in->p += *len;
    in->n -= *len;
    return p;
}
#endif

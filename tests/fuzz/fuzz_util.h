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
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
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

static inline int fz_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

/* Gives this process a /dev/shm of its own: a fresh tmpfs in a private
 * mount namespace.  etsmgrd's new_table lists /dev/shm to find a table's
 * objects, and fz_unlink_shm lists it after every input; on a machine whose
 * /dev/shm holds thousands of other programs' objects those listings, not
 * the code under test, set the pace (fuzz_etsmgrd_req: 35 executions/s with
 * 20,000 foreign objects, thousands with none).  Private, it holds only this
 * run's objects, which vanish with the process even when it crashes, and an
 * input cannot fill the machine's /dev/shm.  Needs CAP_SYS_ADMIN or
 * unprivileged user namespaces, and must run before any thread starts
 * (LLVMFuzzerInitialize); without them the run goes on in the shared
 * /dev/shm, slower, and says so. */
static inline void fz_private_shm(void)
{
    char map[64];
    unsigned long uid = (unsigned long)geteuid(), gid = (unsigned long)getegid();
    if (unshare(CLONE_NEWNS) < 0) {
        /* not privileged: a user namespace where this uid is itself */
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
            goto shared;
        snprintf(map, sizeof map, "%lu %lu 1\n", uid, uid);
        if (fz_write_file("/proc/self/uid_map", map) < 0)
            goto shared;
        if (fz_write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
            goto shared;
        snprintf(map, sizeof map, "%lu %lu 1\n", gid, gid);
        if (fz_write_file("/proc/self/gid_map", map) < 0)
            goto shared;
    }
    /* private first, or the tmpfs would show in the namespace we came from */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("fuzz-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=1g") < 0)
        goto shared;
    return;
shared:
    fprintf(stderr,
            "fuzz: no private /dev/shm (%s); running in the shared one, slower when it holds many objects\n",
            strerror(errno));
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

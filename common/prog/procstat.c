/* SPDX-License-Identifier: Apache-2.0 */
/* procstat.c: /proc/PID/stat read with one read(2) (the kernel makes the
 * whole line at once, so one read sees a consistent line) and parsed from
 * the last ')' on, since the name before it may hold anything. */
#include "procstat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int proc_stat_read(pid_t pid, proc_stat *st)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
        ;
    int e = errno;
    close(fd);
    if (n <= 0) { /* it exited between open and read */
        errno = n == 0 || e == ESRCH ? ENOENT : e;
        return -1;
    }
    buf[n] = '\0';
    char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
    long ppid;
    unsigned long flags = 0;
    unsigned long long ut = 0, stime = 0;
    /* state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (!open_p || !close_p || close_p < open_p ||
        sscanf(close_p + 1, " %c %ld %*d %*d %*d %*d %lu %*u %*u %*u %*u %llu %llu", &st->state, &ppid, &flags,
               &ut, &stime) != 5) {
        errno = EPROTO;
        return -1;
    }
    st->ppid = (pid_t)ppid;
    st->flags = flags;
    st->cpu_ticks = ut + stime;
    size_t cl = (size_t)(close_p - open_p - 1);
    if (cl >= sizeof st->comm)
        cl = sizeof st->comm - 1;
    memcpy(st->comm, open_p + 1, cl);
    st->comm[cl] = '\0';
    return 0;
}

bool proc_exited(pid_t pid)
{
    proc_stat st;
    if (proc_stat_read(pid, &st) < 0)
        return errno != EPROTO;
    return st.state == 'Z' || st.state == 'X';
}

pid_t proc_ppid(pid_t pid)
{
    proc_stat st;
    return proc_stat_read(pid, &st) < 0 ? -1 : st.ppid;
}

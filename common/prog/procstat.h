/* SPDX-License-Identifier: Apache-2.0 */
/* procstat.h: the one reader of /proc/PID/stat, for the programs and the
 * tests that ask about another process (is it gone, a zombie, whose child
 * is it, how much CPU it used).  The line is "pid (comm) S ppid ...", and
 * comm may itself hold spaces and parentheses: the fields after it are
 * found from the last ')', which is what every reader must do and is why
 * this is in one place. */
#ifndef ETSMGR_PROCSTAT_H
#define ETSMGR_PROCSTAT_H
#include <stdbool.h>
#include <sys/types.h>

typedef struct proc_stat {
    char state;    /* R, S, D, T, Z (zombie), X (dead), ... */
    pid_t ppid;    /* the parent */
    unsigned long flags; /* the kernel's PF_* flags (PF_EXITING 0x4: its exit has begun) */
    char comm[32]; /* the name as the kernel keeps it (at most 15 bytes) */
    unsigned long long cpu_ticks; /* utime + stime, in clock ticks (sysconf(_SC_CLK_TCK)) */
} proc_stat;

/* Reads pid's stat line into *st: 0, or -1 with errno (ENOENT: no such
 * process; EPROTO: a line this reader cannot parse). */
int proc_stat_read(pid_t pid, proc_stat *st);

/* pid has exited: no such process, or a zombie or dead one (true); false
 * when it runs, and when its line cannot be parsed. */
bool proc_exited(pid_t pid);

/* The parent of pid, or -1 when pid is gone. */
pid_t proc_ppid(pid_t pid);
#endif

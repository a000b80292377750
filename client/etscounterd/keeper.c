/* SPDX-License-Identifier: Apache-2.0 */
/* keeper.c: a second process that shares etscounterd's address space, so
 * that a SIGKILLed etscounterd closes its sockets before its memory is torn
 * down, not after.
 *
 * Why.  When a process dies, the kernel's do_exit releases its address
 * space (exit_mm) before its files (exit_files).  If it was the last user
 * of that address space, exit_mm tears it down there and then: every page
 * it had mapped (libc's text, its heap, every page of a table it had
 * touched) is unmapped, and only then are its sockets closed, which is how
 * etsmgrd learns that the table's owner died, and how a client learns that
 * its connection broke.  That teardown was about half of a hot standby's
 * takeover (SIGKILL -> etsmgrd reads the EOF: 0.23 to 0.25 ms of 0.40 to
 * 0.45; more when the dying owner had touched pages of a large request-id
 * region: docs/performance.md, "Hot standby", the fourth to sixth passes).
 * A bare test on this project's 2-core VM: a child with 200 random pages of
 * a 256 MB object mapped, SIGKILLed, its socketpair's hang-up seen after
 * 0.42 ms median; with a keeper, 0.047 ms.
 *
 * How.  etscounterd clones a child with CLONE_VM (one address space, two
 * processes; not a thread: a SIGKILL of etscounterd does not reach it): a
 * standby at its start, while it waits for the table; an etscounterd
 * started without --standby after its first answers (the clone and the
 * wait below cost a wake-up and tens of microseconds, kept off a restart's
 * path; a kill before that finds it without a keeper, as before).  While the keeper lives, a dying
 * etscounterd is not the address space's last user, so exit_mm only drops
 * its reference and its files close at once.  The keeper:
 *   - closes every fd of its own fd table (a copy taken at the clone, not
 *     shared: CLONE_FILES is not set), so it holds no socket, lock or
 *     table fd: every close that etsmgrd, a client or etssup wait for is
 *     still etscounterd's own;
 *   - blocks every signal, so that no handler of etscounterd's ever runs
 *     in it; it sleeps until a SIGKILL;
 *   - asks for that SIGKILL when etscounterd dies (PR_SET_PDEATHSIG; the
 *     kernel sends it after the dying process's files are closed), and
 *     then tears the address space down itself;
 *   - runs as SCHED_IDLE (etscounterd sets it once the keeper has closed
 *     its fds: set before, etscounterd's wait for that would itself wait
 *     for an idle CPU), so that the teardown waits for a free CPU and does
 *     not compete with the takeover it was moved out of (at normal
 *     priority, woken by its SIGKILL, it ran the teardown ahead of the
 *     takeover on the same vCPU and gained nothing: docs/performance.md);
 *   - is named etscounterd-mm in ps (its command line is etscounterd's:
 *     /proc shows the shared memory's).
 * It never touches the table or any other memory of etscounterd's except
 * the argument block below, before it sleeps: the dead process's mapping
 * of the table lives on in it, for a few milliseconds, but nothing can
 * write through it (exactly-once stands on that: the dead owner writes
 * nothing after its death, and the keeper never writes).  The table's
 * robust lock is released by the dying thread itself (exit_mm_release
 * runs whatever the address space's users), as before.
 *
 * The keeper runs C on a small stack of its own with etscounterd's thread
 * pointer (no CLONE_SETTLS), so it calls only syscall(2), whose one write
 * to memory is errno when a call fails: etscounterd waits, blocked in a
 * read of a pipe, until the keeper has closed its fds (the pipe's write
 * end among them: that EOF is the signal), so such a write cannot meet one
 * of its own.  Its parent is etscounterd; once that dies it is reparented
 * (to etssup, a subreaper, or init), which reaps it.
 *
 * Best effort: a clone refused (a seccomp filter may) or a keeper that
 * could not close its fds leaves etscounterd as it was without one, with a
 * line in the log.  Under valgrind no clone is tried at all: valgrind does
 * not refuse a CLONE_VM without CLONE_THREAD, it ends the whole process
 * ("does not support general clone()"), so etscounterd asks first whether
 * it runs there (its preloaded vgpreload library, which valgrind puts in
 * LD_PRELOAD; valgrind.h, which would say so directly, is not among our
 * dependencies). */
#include "keeper.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

typedef struct {
    sigset_t all;
    pid_t parent;
    int state; /* 1: about to close its fds; < 0: a step failed, -errno; written before the pipe's EOF */
} keeper_args;

static keeper_args ecd_keeper_args;
/* syscall(2) and the clone wrapper's own frame are all that run on it */
static char ecd_keeper_stack[16384] __attribute__((aligned(64)));

/* no sanitizer: this runs on a stack ASan never set up for a thread */
__attribute__((no_sanitize("address", "undefined"), noinline)) static int ecd_keeper_main(void *arg)
{
    keeper_args *a = arg;
    long rc = syscall(SYS_rt_sigprocmask, SIG_BLOCK, &a->all, NULL, (long)(_NSIG / 8));
    if (rc == 0)
        rc = syscall(SYS_prctl, PR_SET_PDEATHSIG, (long)SIGKILL, 0L, 0L, 0L);
    /* etscounterd may have died before the prctl: then nobody will kill us */
    if (rc == 0 && syscall(SYS_getppid) != a->parent) {
        __atomic_store_n(&a->state, -ESRCH, __ATOMIC_RELEASE);
        syscall(SYS_exit, 0L);
    }
    if (rc != 0) {
        __atomic_store_n(&a->state, -EPERM, __ATOMIC_RELEASE);
        syscall(SYS_exit, 0L);
    }
    /* best effort: an unnamed keeper still does its work */
    static const char name[16] = "etscounterd-mm";
    (void)syscall(SYS_prctl, PR_SET_NAME, name, 0L, 0L, 0L);
    __atomic_store_n(&a->state, 1, __ATOMIC_RELEASE);
    if (syscall(SYS_close_range, 0L, (long)~0U, 0L) != 0) {
        __atomic_store_n(&a->state, -ENOSYS, __ATOMIC_RELEASE);
        syscall(SYS_exit, 0L); /* its exit closes them */
    }
    for (;;)
        syscall(SYS_pause);
    return 0;
}

/* valgrind preloads its vgpreload_*.so into the program it runs */
static int ecd_under_valgrind(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return pre != NULL && strstr(pre, "/vgpreload_") != NULL;
}

int ecd_keeper_start(void)
{
    if (ecd_under_valgrind()) {
        log_info("no memory keeper under valgrind (it cannot run a clone sharing the address space): a "
                 "SIGKILL will tear this process's memory down before its sockets close, a slower takeover");
        return -1;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        log_warning("no memory keeper (pipe: %s): a SIGKILL will tear this process's memory down before "
                    "its sockets close, a slower takeover",
                    strerror(errno));
        return -1;
    }
    keeper_args *a = &ecd_keeper_args;
    sigfillset(&a->all);
    a->parent = getpid();
    a->state = 0;
    /* exit signal 0: a keeper that dies before us (killed by hand) stays a
     * zombie until we die and it is reparented, and sends us no SIGCHLD */
    pid_t pid = clone(ecd_keeper_main, ecd_keeper_stack + sizeof ecd_keeper_stack, CLONE_VM, a);
    int clone_errno = errno;
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        log_info("no memory keeper (clone CLONE_VM: %s): a SIGKILL will tear this process's memory down "
                 "before its sockets close, a slower takeover",
                 strerror(clone_errno));
        return -1;
    }
    char c;
    ssize_t n;
    do
        n = read(p[0], &c, 1);
    while (n < 0 && errno == EINTR);
    close(p[0]);
    int st = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
    if (st != 1) {
        (void)waitpid(pid, NULL, __WALL); /* it exited (exit signal 0: only __WALL waits for it) */
        log_warning("the memory keeper (pid %d) gave up (%s): a SIGKILL will tear this process's memory "
                    "down before its sockets close, a slower takeover",
                    (int)pid, strerror(st < 0 ? -st : EIO));
        return -1;
    }
    /* only now, and by us: a keeper that made itself SCHED_IDLE before
     * closing its fds would have us wait for an idle CPU, milliseconds on
     * a busy machine, in the middle of a start */
    struct sched_param sp = { .sched_priority = 0 };
    if (sched_setscheduler(pid, SCHED_IDLE, &sp) < 0)
        log_info("memory keeper (pid %d): sched_setscheduler SCHED_IDLE: %s; it frees a dead etscounterd's "
                 "memory at normal priority",
                 (int)pid, strerror(errno));
    log_debug("memory keeper: pid %d shares this address space (keeper.c says why)", (int)pid);
    return (int)pid;
}

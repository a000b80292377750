/* SPDX-License-Identifier: Apache-2.0 */
/* test_flip_watch.h: a word of a table that changes between a process's
 * loads of it, made certain (x86-64 only).  A reader or a writer of the
 * table checks the words it loads and must then go by what it checked,
 * not load them again: another process with write access to the object
 * (a node freed and its block reused, a scribbler that takes no lock) may
 * change a word between any two loads, and a bad second load walks the
 * code off the block and the mapping.  fw_flip_watched_at runs the code
 * in a child that flips the word between a good and a bad value right
 * after chosen ones of its accesses to it, with pages of the table past
 * the block unreadable, so that a read past the block is a SIGSEGV.
 * Used by suites ordered_walk (nodes and entries) and once_hostile (the
 * request-id region). */
#ifndef TEST_FLIP_WATCH_H
#define TEST_FLIP_WATCH_H
#if defined(__x86_64__)
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include "table_int.h"

/* The watch, in the child.  The page holding the word is unreadable, so
 * every access to it faults; the SIGSEGV handler makes the page readable
 * and sets the trap flag, the access completes and traps (one instruction
 * stepped), and the SIGTRAP handler flips the word when the access began
 * at it, then makes the page unreadable again.  A fault anywhere else
 * (past the block, into the unreadable pages after it) gets the handler
 * that was there before: the default's death by SIGSEGV, or a sanitizer's
 * report.  This once used a hardware watchpoint through ptrace's debug
 * registers; a PVM guest accepts those and never fires them, so the tests
 * there saw no load at all. */
static struct {
    unsigned char *page; /* the watched page */
    uint64_t *w, good, bad;
    unsigned long flips;
    int *loads;   /* shared with the test: the accesses to the word so far */
    int stepping; /* the access being stepped began at the word */
    struct sigaction before;
} fw_watch;
static inline void fw_on_fault(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    unsigned char *a = si->si_addr;
    if (a < fw_watch.page || a >= fw_watch.page + 4096) {
        sigaction(SIGSEGV, &fw_watch.before, NULL); /* the access faults again, now for real */
        return;
    }
    fw_watch.stepping = a >= (unsigned char *)fw_watch.w && a < (unsigned char *)(fw_watch.w + 1);
    if (mprotect(fw_watch.page, 4096, PROT_READ | PROT_WRITE) != 0) _exit(5);
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EFL] |= 0x100; /* TF */
}
static inline void fw_on_step(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)si;
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_EFL] &= ~(greg_t)0x100;
    if (fw_watch.stepping) {
        int n = ++*fw_watch.loads;
        if (!fw_watch.flips || (n <= 64 && (fw_watch.flips >> (n - 1) & 1u)))
            __atomic_store_n(fw_watch.w, *fw_watch.w == fw_watch.good ? fw_watch.bad : fw_watch.good,
                             __ATOMIC_RELAXED);
        fw_watch.stepping = 0;
    }
    if (mprotect(fw_watch.page, 4096, PROT_NONE) != 0) _exit(5);
}

/* Runs action(t) in a child whose pages [pg, pg + 4096 * npages) of the
 * table are unreadable, with *w flipped between good and bad after the
 * child's accesses to it whose bits are set in flips (bit 0: the first;
 * 0: after every access); fails the test, saying how the child ended,
 * unless it exited 0 having loaded the word at least once.  *w is good
 * before and after. */
static inline void fw_flip_watched_pages(etsmgr_table *t, uint64_t pg, unsigned npages, uint64_t *w, uint64_t good,
                                         uint64_t bad, int (*action)(etsmgr_table *t), unsigned long flips)
{
    unsigned char *page = (unsigned char *)((uintptr_t)w & ~(uintptr_t)4095);
    /* the word is in the block, outside the unreadable pages */
    uint64_t wpg = (uint64_t)((char *)page - t->base);
    ck_assert(wpg < pg || wpg >= pg + 4096u * npages);
    ck_assert_uint_le(pg + 4096u * npages, t->map_size);
    int *loads = mmap(NULL, sizeof *loads, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert_msg(loads != MAP_FAILED, "mmap: %s", strerror(errno));
    *loads = 0;
    *w = good;
    pid_t rd = fork();
    ck_assert_int_ge(rd, 0);
    if (rd == 0) {
        fw_watch.page = page, fw_watch.w = w, fw_watch.good = good, fw_watch.bad = bad;
        fw_watch.flips = flips, fw_watch.loads = loads;
        struct sigaction sa = {.sa_flags = SA_SIGINFO};
        sigemptyset(&sa.sa_mask);
        sa.sa_sigaction = fw_on_step;
        if (sigaction(SIGTRAP, &sa, NULL) != 0) _exit(2);
        sa.sa_sigaction = fw_on_fault;
        if (sigaction(SIGSEGV, &sa, &fw_watch.before) != 0) _exit(2);
        if (mprotect(t->base + pg, 4096u * npages, PROT_NONE) != 0 || mprotect(page, 4096, PROT_NONE) != 0) _exit(2);
        _exit(action(t));
    }
    int st;
    ck_assert_int_eq(waitpid(rd, &st, 0), rd);
    int n = *loads;
    munmap(loads, sizeof *loads);
    *w = good;
    ck_assert_msg(!WIFSIGNALED(st), "the child got signal %d after %d loads of the word (it read past the block)",
                  WIFSIGNALED(st) ? WTERMSIG(st) : 0, n);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child: status %#x after %d loads of the word", st, n);
    ck_assert_int_ge(n, 1);
}
/* The same with one unreadable page, pg. */
static inline void fw_flip_watched_at(etsmgr_table *t, uint64_t pg, uint64_t *w, uint64_t good, uint64_t bad,
                                      int (*action)(etsmgr_table *t), unsigned long flips)
{
    fw_flip_watched_pages(t, pg, 1, w, good, bad, action, flips);
}
/* The same, flipping after every access. */
static inline void fw_flip_watched(etsmgr_table *t, uint64_t pg, uint64_t *w, uint64_t good, uint64_t bad,
                                   int (*action)(etsmgr_table *t))
{
    fw_flip_watched_at(t, pg, w, good, bad, action, 0);
}
#endif
#endif

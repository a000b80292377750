/* SPDX-License-Identifier: Apache-2.0 */
/* notify_ready.c: the smallest well-behaved daemon, for testutil's tests:
 * sends READY=1 to $NOTIFY_SOCKET and waits for SIGTERM (exit 0).
 *   notify_ready [--exit-before-ready CODE | --never-ready | --ignore-term]
 * --exit-before-ready: exits with CODE and never says READY;
 * --never-ready: stays silent; --ignore-term: only SIGKILL ends it (to test
 * that cleanup escalates). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "notify.h"

static volatile sig_atomic_t nr_term;
static void nr_on_term(int sig) { (void)sig; nr_term = 1; }

int main(int argc, char **argv)
{
    int ready = 1;
    if (argc > 2 && strcmp(argv[1], "--exit-before-ready") == 0)
        return atoi(argv[2]);
    if (argc > 1 && strcmp(argv[1], "--never-ready") == 0)
        ready = 0;
    if (argc > 1 && strcmp(argv[1], "--ignore-term") == 0)
        signal(SIGTERM, SIG_IGN);
    else
        signal(SIGTERM, nr_on_term);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    if (ready && notify_send("READY=1\nSTATUS=waiting for SIGTERM") < 0)
        return 2;
    while (!nr_term)
        sigsuspend(&old);
    return 0;
}

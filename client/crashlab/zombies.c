/* SPDX-License-Identifier: Apache-2.0 */
/* zombies.c: watching for zombies during the whole run.
 *
 * A process killed with SIGKILL is a zombie until its parent reaps it, so a
 * scan of /proc will catch some zombies for a few milliseconds after most
 * kills: that is normal, not a bug.  What is a bug is a zombie that stays:
 * the parent failed to reap it.  So every 100 ms the lab lists the Z-state
 * processes whose parent is etssup or the lab itself (a child subreaper,
 * so a killed etssup's children come back to it), remembers when it first
 * saw each, and reports the ones still there after --zombie-grace ms
 * (default 1000).  The ones that went away in time are only counted. */
#include "lab.h"

#include <dirent.h>

#include "procstat.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void lab_zscan_once(lab *l)
{
    pid_t me = getpid();
    pthread_mutex_lock(&l->mu);
    pid_t sup = l->o.attach ? l->attach_sup_pid : l->sup_pid;
    pthread_mutex_unlock(&l->mu);
    int64_t now = lab_now_ns();
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        proc_stat st;
        if (proc_stat_read((pid_t)pid, &st) < 0 || st.state != 'Z')
            continue;
        pid_t ppid = st.ppid;
        if (ppid != me && (sup <= 0 || ppid != sup))
            continue;
        size_t i;
        for (i = 0; i < l->nzombies; i++)
            if (l->zombies[i].pid == pid && l->zombies[i].ppid == ppid)
                break;
        if (i == l->nzombies) {
            if (l->nzombies == l->zcap) {
                size_t cap = l->zcap ? l->zcap * 2 : 16;
                lab_zombie *z = realloc(l->zombies, cap * sizeof *z);
                if (!z)
                    continue;
                l->zombies = z;
                l->zcap = cap;
            }
            lab_zombie *z = &l->zombies[l->nzombies++];
            *z = (lab_zombie){ .pid = (pid_t)pid, .ppid = ppid, .first_ns = now, .last_ns = now };
            snprintf(z->comm, sizeof z->comm, "%s", st.comm);
            continue;
        }
        lab_zombie *z = &l->zombies[i];
        z->last_ns = now;
        if (!z->reported && now - z->first_ns > (int64_t)l->o.zombie_grace_ms * 1000000) {
            z->reported = true;
            l->persistent_zombies++;
            lab_fail(l, "zombie: process %d (%s), child of %s (pid %d), was not reaped for more than %d ms",
                     (int)z->pid, z->comm, ppid == me ? "the lab" : "etssup", (int)ppid, l->o.zombie_grace_ms);
        }
    }
    closedir(d);
    /* the ones not seen this time are gone: forget them, counting those
     * that went within the grace time as transient */
    size_t k = 0;
    for (size_t i = 0; i < l->nzombies; i++) {
        lab_zombie *z = &l->zombies[i];
        if (z->last_ns == now)
            l->zombies[k++] = *z;
        else if (!z->reported)
            l->transient_zombies++;
    }
    l->nzombies = k;
}

static void *lab_zscan_main(void *arg)
{
    lab *l = arg;
    while (!atomic_load(&l->zscan_stop)) {
        lab_zscan_once(l);
        for (int i = 0; i < 10 && !atomic_load(&l->zscan_stop); i++)
            lab_sleep_ms(10);
    }
    return NULL;
}

void lab_zombies_start(lab *l)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    atomic_store(&l->zscan_stop, false);
    if (pthread_create(&l->zscan, NULL, lab_zscan_main, l) == 0)
        l->zscan_started = true;
    else
        lab_note(l, "pthread_create (zombie scan) failed: zombies were not watched");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void lab_zombies_stop(lab *l)
{
    if (!l->zscan_started)
        return;
    atomic_store(&l->zscan_stop, true);
    pthread_join(l->zscan, NULL);
    l->zscan_started = false;
    lab_zscan_once(l); /* one last look, after the shutdown */
}

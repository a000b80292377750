/* SPDX-License-Identifier: Apache-2.0 */
/* client_example: a program that uses libetsmgr as an application would,
 * through etsmgr.h only, built by the tests with
 *     cc client_example.c $(pkg-config --cflags --libs etsmgr)
 * to show the pkg-config file is enough.  It is also the example of etsmgr(3).
 *
 *   client_example [TABLE]          get TABLE (default "example") from etsmgrd,
 *                                   count one more run in it, print, exit
 *   client_example --watch [TABLE]  the same, then keep counting every 100 ms
 *                                   in a libuv loop, printing what the watch
 *                                   reports, until SIGINT or SIGTERM
 *
 * Run it twice: the second run gets the table back with its data, because the
 * daemon was the heir while no process owned it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* uv.h needs POSIX types under -std=c11 */
#endif
#include <etsmgr.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static etsmgr_table *tab;

static int count_run(const char *how)
{
    int64_t runs;
    int err = etsmgr_table_update_counter(tab, "runs", 4, 1, 0, &runs);
    if (err) {
        fprintf(stderr, "update_counter: %s\n", etsmgr_strerror(err));
        return -1;
    }
    printf("table %s: runs = %lld (%s)\n", etsmgr_table_name(tab), (long long)runs, how);
    fflush(stdout);
    return 0;
}

static void on_down(etsmgr_client *c, pid_t pid, const char *reason, void *arg)
{
    (void)c, (void)arg;
    printf("etsmgrd (pid %d) died: %s; the table stays usable\n", (int)pid, reason);
}
static void on_up(etsmgr_client *c, pid_t pid, void *arg)
{
    (void)c, (void)arg;
    printf("etsmgrd is back (pid %d)\n", (int)pid);
}
static void on_readded(etsmgr_client *c, etsmgr_table *t, void *arg)
{
    (void)c, (void)arg;
    printf("table %s is managed again\n", etsmgr_table_name(t));
}
static void on_failed(etsmgr_client *c, etsmgr_table *t, int err, const char *msg, void *arg)
{
    (void)c, (void)err, (void)arg;
    printf("table %s was not registered again: %s\n", etsmgr_table_name(t), msg);
}
static void on_tick(uv_timer_t *h)
{
    (void)h;
    count_run("counting");
}
static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    int watch = argc > 1 && strcmp(argv[1], "--watch") == 0;
    const char *name = argc > 1 + watch ? argv[1 + watch] : "example";
    etsmgr_client *c;
    char msg[256];
    /* NULL, NULL: the runtime dir and instance every program of etsmgr finds */
    int err = etsmgr_wait(NULL, NULL, 50, 5000, &c, msg, sizeof msg);
    if (err) {
        fprintf(stderr, "etsmgrd is not there: %s\n", msg);
        return 1;
    }
    etsmgr_grant g;
    err = etsmgr_new_table(c, name, NULL, "client_example", &tab, &g);
    if (err) {
        fprintf(stderr, "new_table %s: %s: %s\n", name, etsmgr_strerror(err), etsmgr_client_message(c));
        etsmgr_client_close(c);
        return 1;
    }
    printf("got table %s from pid %d, with data %s\n", name, (int)g.from_pid, g.data);
    if (count_run(g.created ? "new table" : "data kept") < 0)
        return 1;

    etsmgr_info *info;
    if (etsmgr_info_get(c, &info) == ETSMGR_OK) {
        for (size_t i = 0; i < info->ntables; i++)
            if (strcmp(info->tables[i].name, name) == 0)
                printf("etsmgrd (pid %d): %s is %s by pid %d\n", (int)info->pid, name,
                       info->tables[i].owned ? "owned" : "orphaned", (int)info->tables[i].owner_pid);
        etsmgr_info_free(info);
    }

    if (watch) {
        uv_loop_t *loop = uv_default_loop();
        etsmgr_watch_cbs cbs = { .down = on_down, .up = on_up, .readded = on_readded, .failed = on_failed };
        if (etsmgr_watch_start(c, loop, &cbs, NULL) != ETSMGR_OK) {
            fprintf(stderr, "watch: %s\n", etsmgr_client_message(c));
            return 1;
        }
        uv_timer_t tick;
        uv_signal_t sint, sterm;
        uv_timer_init(loop, &tick);
        uv_timer_start(&tick, on_tick, 100, 100);
        uv_signal_init(loop, &sint);
        uv_signal_init(loop, &sterm);
        uv_signal_start(&sint, on_signal, SIGINT);
        uv_signal_start(&sterm, on_signal, SIGTERM);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    /* Closing hands the table to the heir (etsmgrd); the data stays. */
    etsmgr_client_close(c);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* proctime.c: the whole-process time of a command, as a shell user pays it:
 * fork, exec, the program's own start-up, its work and its exit, until
 * waitpid returns.  Run --runs times in a row (stdout and stderr to
 * /dev/null), and the median and p99 reported.  Used for `etscounter count`
 * next to `redis-cli incr`: what a script that counts with the CLI gets.
 *
 *   proctime --runs N --name NAME [--reference ROW] -- COMMAND [ARG]...
 *
 * Output: one result row (benchutil.h) on stdout.
 * Exit status: 0, 1 the command could not run or exited non-zero, 64 usage
 * error. */
#include "benchutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char pt_usage[] =
    "Usage: proctime --runs N --name NAME [--reference ROW] [--target T] -- COMMAND [ARG]...\n"
    "Run COMMAND N times and print the median whole-process time (result row, JSON).\n"
    "Exit status: 0 done, 1 the command failed, 64 usage error.\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "runs", required_argument, NULL, 'n' }, { "name", required_argument, NULL, 'N' },
        { "reference", required_argument, NULL, 'r' }, { "target", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    int runs = 200, o;
    const char *name = NULL, *ref = NULL, *target = NULL;
    while ((o = getopt_long(argc, argv, "+n:N:r:T:h", opts, NULL)) != -1) {
        switch (o) {
        case 'n': runs = atoi(optarg); break;
        case 'N': name = optarg; break;
        case 'r': ref = optarg; break;
        case 'T': target = optarg; break;
        case 'h': fputs(pt_usage, stdout); return 0;
        default: fputs(pt_usage, stderr); return 64;
        }
    }
    if (!name || runs < 1 || optind >= argc) {
        fputs(pt_usage, stderr);
        return 64;
    }
    char **cmd = argv + optind;
    double *v = calloc((size_t)runs, sizeof *v);
    if (!v) {
        fprintf(stderr, "proctime: out of memory\n");
        return 1;
    }
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0) {
        fprintf(stderr, "proctime: open /dev/null: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < runs; i++) {
        double t0 = bu_now();
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "proctime: fork: %s\n", strerror(errno));
            return 1;
        }
        if (pid == 0) {
            dup2(null, 1);
            dup2(null, 2);
            execvp(cmd[0], cmd);
            _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR) {
                fprintf(stderr, "proctime: waitpid: %s\n", strerror(errno));
                return 1;
            }
        v[i] = (bu_now() - t0) * 1e3;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "proctime: %s: run %d of %s failed (status %d%s)\n", name, i + 1, cmd[0],
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), WIFEXITED(st) ? "" : ", a signal");
            return 1;
        }
    }
    double med = bu_percentile(v, (size_t)runs, 50);
    cJSON *row = bu_row(name, med, "ms", ref, -1);
    cJSON_AddNumberToObject(row, "p99", bu_percentile(v, (size_t)runs, 99));
    cJSON_AddNumberToObject(row, "min", v[0]);
    cJSON_AddNumberToObject(row, "samples", runs);
    if (target)
        cJSON_AddStringToObject(row, "target", target);
    bu_row_print(row);
    free(v);
    return 0;
}

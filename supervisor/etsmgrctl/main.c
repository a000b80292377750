/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: etsmgrctl, the operator's view of an instance (see etsmgrctl(1)).
 *
 * One request per run over the instance's sockets: status, restart and stop
 * go to etssup (DIR/etssup.sock), tables to etsmgrd (DIR/etsmgrd.sock, the
 * C counterpart of etsmgr:info()).  It resolves the runtime dir and instance
 * like every program of the project, so it needs no options next to a
 * running system.  Human output is aligned columns sized to the data;
 * --json prints the daemon's reply (without "ok" and "id") on one line for
 * scripts.  kill takes the pid from etssup's status (so it hits this
 * instance's child, never another user's), env tells what a program run here
 * would resolve.  The exit status tells a script what went wrong, one
 * meaning per status whichever the command: 69 when nobody answers (not
 * running, or it went away), 70 when it answered with an error or nonsense,
 * 64 for a usage mistake (an unknown child, a name no table can have), 66
 * for a table or file that does not exist, 74 when stdout cannot be
 * written. */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "frame.h"
#include "procstat.h"
#include "proto.h"
#include "runtime.h"
#include "sock.h"


static void ctl_usage(FILE *f)
{
    fprintf(f,
            "Usage: etsmgrctl [--runtime-dir DIR] [--instance NAME] [--json] [--timeout MS] COMMAND\n"
            "       etsmgrctl --help | --version\n"
            "\n"
            "Commands:\n"
            "  status        the supervisor's strategy and each child's state (asks etssup)\n"
            "  tables        the tables etsmgrd manages, like etsmgr:info() (asks etsmgrd)\n"
            "  dump TABLE [--from KEY] [--to KEY]\n"
            "                every entry of a live table, read without stopping its owner (an\n"
            "                ordered_set in key order); --from, --to (ordered_set only): the keys\n"
            "                from --from's on, up to but not including --to's; \\xNN in a KEY\n"
            "                is any byte (--json: one object mapping each key to its value;\n"
            "                a byte XX that is not UTF-8 as \\udcXX)\n"
            "  restart ID    stop child ID if it runs and start it again; returns once it is up\n"
            "  stop          stop every child in reverse order, then etssup; returns once done\n"
            "  save TABLE FILE      save the table to FILE (a table image; works without etsmgrd)\n"
            "  load FILE [--as NAME] [--replace]\n"
            "                load a table image through etsmgrd; the table is then orphaned until\n"
            "                its owner claims it; --replace replaces an orphaned table of that name\n"
            "  snapshot      etsmgrd saves every table to its --snapshot-dir now\n"
            "  del TABLE [--force]  remove an orphaned table: its shared memory and its snapshot;\n"
            "                --force also removes an owned one (its owner's changes are then lost)\n"
            "  kill ID       send a signal (--signal, default TERM) to child ID of this\n"
            "                instance's etssup, or to etssup itself (ID etssup): for experiments\n"
            "  env           print the runtime dir and instance a program would use here, and why\n"
            "\n"
            "Options:\n"
            "  -d, --runtime-dir DIR   runtime directory (default: $ETSMGR_RUNTIME_DIR,\n"
            "                          $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
            "                          else /tmp/etsmgr-$UID;\n"
            "                          @NAME appended for an instance NAME other than etsmgr)\n"
            "  -i, --instance NAME     instance name (default: $ETSMGR_INSTANCE, else etsmgr)\n"
            "  -j, --json              machine-readable output (one JSON object)\n"
            "  -s, --signal SIG        kill's signal: a name (KILL, SIGKILL) or a number\n"
            "  -t, --timeout MS        how long to wait for the answer (default 5000 for\n"
            "                          status, tables, dump and del, 60000 for restart, stop,\n"
            "                          save, load and snapshot)\n"
            "  -h, --help              show this help\n"
            "  -V, --version           show the version\n"
            "\n"
            "Exit status: 0 success, 64 usage error (also: no such child, a name no table\n"
            "can have), 65 load: not a good table image, 66 no such table or file (load,\n"
            "save, dump, del), 69 etssup or etsmgrd not reachable, 73 save: cannot write\n"
            "the file, 74 the output could not be written, 70 any other failure (an error\n"
            "reply, a bad reply, a timeout).\n");
}

static int64_t ctl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *ctl_str(const cJSON *o, const char *k, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double ctl_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void ctl_duration(double secs, char *buf, size_t len)
{
    long s = (long)secs;
    if (s < 60)
        snprintf(buf, len, "%lds", s);
    else if (s < 3600)
        snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else
        snprintf(buf, len, "%ldd%02ldh", s / 86400, (s % 86400) / 3600);
}

/* A table of strings printed with columns as wide as their widest cell. */
#define CTL_MAXCOL 13
typedef struct ctl_table {
    int ncol, nrow;
    char *(*cells)[CTL_MAXCOL];
} ctl_table;

static void ctl_row(ctl_table *t, const char *const *vals)
{
    assert(t->ncol <= CTL_MAXCOL);
    void *n = realloc(t->cells, (size_t)(t->nrow + 1) * sizeof *t->cells);
    if (!n)
        return;
    t->cells = n;
    for (int c = 0; c < t->ncol; c++)
        t->cells[t->nrow][c] = strdup(vals[c] ? vals[c] : "-");
    t->nrow++;
}

static void ctl_table_print(ctl_table *t)
{
    int w[CTL_MAXCOL] = {0};
    for (int r = 0; r < t->nrow; r++)
        for (int c = 0; c < t->ncol; c++)
            if (t->cells[r][c] && (int)strlen(t->cells[r][c]) > w[c])
                w[c] = (int)strlen(t->cells[r][c]);
    for (int r = 0; r < t->nrow; r++) {
        for (int c = 0; c < t->ncol; c++) {
            const char *v = t->cells[r][c] ? t->cells[r][c] : "";
            if (c == t->ncol - 1)
                printf("%s\n", v);
            else
                printf("%-*s  ", w[c], v);
            free(t->cells[r][c]);
        }
    }
    free(t->cells);
    t->cells = NULL;
    t->nrow = 0;
}

static int ctl_status(const rt_paths *rt, int timeout)
{
    cJSON *reply = NULL;
    int rc = ctl_call_op(rt, "etssup", "status", timeout, &reply);
    if (rc)
        return rc;
    /* an answer without them is no status to print ("pid 0", exit 0) */
    if (!(ctl_num(reply, "pid") >= 1) || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(reply, "children"))) {
        fprintf(stderr, "etsmgrctl: etssup of instance %s answered status without its pid or its children: "
                "is %s/etssup.sock an etssup of this version?\n", rt->instance, rt->dir);
        cJSON_Delete(reply);
        return CTL_EXIT_SOFTWARE;
    }
    if (g_json) {
        ctl_print_json(reply);
        cJSON_Delete(reply);
        return 0;
    }
    printf("etssup pid %.0f, instance %s: %s; strategy %s, intensity %.0f in %.0f s (%.0f recent restarts)\n",
           ctl_num(reply, "pid"), ctl_str(reply, "instance", "?"), ctl_str(reply, "state", "?"),
           ctl_str(reply, "strategy", "?"), ctl_num(reply, "intensity"), ctl_num(reply, "period"),
           ctl_num(reply, "recent_restarts"));
    ctl_table t = {.ncol = 8};
    const char *hdr[] = {"ID", "PID", "STANDBY", "STATE", "RESTART", "RESTARTS", "UPTIME", "LAST EXIT"};
    ctl_row(&t, hdr);
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(reply, "children")) {
        char pid[24], sb[24], restarts[24], up[24];
        double p = ctl_num(ch, "pid"), sp = ctl_num(ch, "standby_pid");
        snprintf(pid, sizeof pid, p > 0 ? "%.0f" : "-", p);
        snprintf(sb, sizeof sb, sp > 0 ? "%.0f" : "-", sp); /* "-": none configured or none running */
        snprintf(restarts, sizeof restarts, "%.0f", ctl_num(ch, "restarts"));
        if (p > 0)
            ctl_duration(ctl_num(ch, "uptime_s"), up, sizeof up);
        else
            snprintf(up, sizeof up, "-");
        const char *row[] = {ctl_str(ch, "id", "?"), pid, sb, ctl_str(ch, "state", "?"), ctl_str(ch, "restart", "?"),
                             restarts, up, ctl_str(ch, "last_exit", "-")};
        ctl_row(&t, row);
    }
    ctl_table_print(&t);
    cJSON_Delete(reply);
    return 0;
}

/* The WAITERS cell: the queue's pids in order, "-" for none; a queue too
 * long for the cell ends with how many were left out ("1,2,3 (+4 more)"),
 * so that it is not taken for the whole queue (--json lists every one). */
static void ctl_waiters(const cJSON *list, char *buf, size_t len)
{
    int n = cJSON_GetArraySize(list), shown = 0;
    size_t wl = 0;
    snprintf(buf, len, "-");
    const cJSON *w;
    cJSON_ArrayForEach(w, list) {
        char one[24];
        size_t ol = (size_t)snprintf(one, sizeof one, "%s%.0f", shown ? "," : "", w->valuedouble);
        if (wl + ol >= len)
            break;
        memcpy(buf + wl, one, ol + 1);
        wl += ol;
        shown++;
    }
    /* cut short: the last pids give way to the mark */
    while (shown > 0 && shown < n && wl + (size_t)snprintf(NULL, 0, " (+%d more)", n - shown) >= len) {
        char *comma = strrchr(buf, ',');
        wl = comma ? (size_t)(comma - buf) : 0;
        buf[wl] = '\0';
        shown--;
    }
    if (shown < n)
        snprintf(buf + wl, len - wl, "%s(+%d more)", shown ? " " : "", n - shown);
}

/* etsmgrd answers tables in pages of about 60 KB ("more": ask again after
 * the last name); the pages are put back together into one reply, so
 * --json prints one object with every table, as before paging.  Names come
 * sorted, so a page whose last name is not past the one asked after would
 * be asked for again and again: that is a bad reply, and --timeout bounds
 * the pages together, not each one. */
static int ctl_tables(const rt_paths *rt, int timeout)
{
    cJSON *reply = NULL;
    int64_t deadline = ctl_mono_ms() + timeout;
    char after[ETSMGR_NAME_MAX + 1] = "";
    for (int page = 1;; page++) {
        cJSON *req = cJSON_CreateObject(), *part = NULL;
        cJSON_AddStringToObject(req, "op", "tables");
        cJSON_AddNumberToObject(req, "id", page);
        if (reply)
            cJSON_AddStringToObject(req, "after", after);
        int64_t left = deadline - ctl_mono_ms();
        int rc = left > 0 ? ctl_call(rt, "etsmgrd.sock", "etsmgrd", req, (int)left, NULL, &part) : -1;
        if (rc < 0) {
            fprintf(stderr, "etsmgrctl: no answer from etsmgrd within %d ms (%d pages of tables)\n", timeout,
                    page - 1);
            rc = CTL_EXIT_SOFTWARE;
        }
        cJSON_Delete(req);
        if (rc) {
            cJSON_Delete(reply);
            return rc;
        }
        bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "more"));
        cJSON *tabs = cJSON_GetObjectItemCaseSensitive(part, "tables");
        int got = cJSON_IsArray(tabs) ? cJSON_GetArraySize(tabs) : 0;
        if (more && got > 0) {
            const char *last = ctl_str(cJSON_GetArrayItem(tabs, got - 1), "name", "");
            if (strcmp(last, after) <= 0 || strlen(last) >= sizeof after) {
                fprintf(stderr, "etsmgrctl: etsmgrd sent a page of tables that does not advance (after \"%s\", "
                                "its last name is \"%.64s\")\n", after, last);
                cJSON_Delete(part);
                cJSON_Delete(reply);
                return CTL_EXIT_SOFTWARE;
            }
            snprintf(after, sizeof after, "%s", last);
        }
        if (!reply) {
            reply = part;
        } else {
            cJSON *dst = cJSON_GetObjectItemCaseSensitive(reply, "tables");
            cJSON *tb;
            got = 0;
            while ((tb = cJSON_DetachItemFromArray(tabs, 0)) != NULL) {
                cJSON_AddItemToArray(dst, tb);
                got++;
            }
            cJSON_Delete(part);
        }
        if (!more || got == 0)
            break;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(reply, "more");
    if (g_json) {
        ctl_print_json(reply);
        cJSON_Delete(reply);
        return 0;
    }
    const cJSON *tabs = cJSON_GetObjectItemCaseSensitive(reply, "tables");
    int n = cJSON_GetArraySize(tabs);
    printf("etsmgrd pid %.0f, instance %s: %.0f connection%s, %d table%s\n", ctl_num(reply, "pid"),
           ctl_str(reply, "instance", "?"), ctl_num(reply, "connections"),
           ctl_num(reply, "connections") == 1 ? "" : "s", n, n == 1 ? "" : "s");
    if (n == 0) {
        cJSON_Delete(reply);
        return 0;
    }
    ctl_table t = {.ncol = 13};
    const char *hdr[] = {"NAME", "STATE", "OWNER", "WAITERS", "ACCESS", "TYPE", "ENTRIES", "CAPACITY", "BYTES",
                         "TRANSFERS", "HEIR DATA", "CREATED", "ORPHANED SINCE"};
    ctl_row(&t, hdr);
    const cJSON *tb;
    cJSON_ArrayForEach(tb, tabs) {
        char owner[24], entries[24], cap[24], bytes[24], tr[24], waiters[64] = "-";
        double o = ctl_num(tb, "owner_pid");
        snprintf(owner, sizeof owner, o > 0 ? "%.0f" : "-", o);
        snprintf(entries, sizeof entries, "%.0f", ctl_num(tb, "entries"));
        snprintf(cap, sizeof cap, "%.0f", ctl_num(tb, "capacity"));
        snprintf(bytes, sizeof bytes, "%.0f", ctl_num(tb, "bytes"));
        snprintf(tr, sizeof tr, "%.0f", ctl_num(tb, "transfers"));
        ctl_waiters(cJSON_GetObjectItemCaseSensitive(tb, "waiters"), waiters, sizeof waiters);
        const char *hd = ctl_str(tb, "heir_data", "");
        const char *row[] = {ctl_str(tb, "name", "?"), ctl_str(tb, "state", "?"), owner, waiters,
                             ctl_str(tb, "access", "-"), ctl_str(tb, "type", "set"), entries, cap, bytes, tr, *hd ? hd : "-",
                             ctl_str(tb, "created", "-"), ctl_str(tb, "orphaned_since", "-")};
        ctl_row(&t, row);
    }
    ctl_table_print(&t);
    cJSON_Delete(reply);
    return 0;
}

static int ctl_restart(const rt_paths *rt, const char *id, int timeout)
{
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "restart");
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "child", id);
    int rc = ctl_call(rt, "etssup.sock", "etssup", req, timeout, NULL, &reply);
    cJSON_Delete(req);
    if (rc && proto_err_find(ctl_refusal) == PROTO_E_NOT_FOUND)
        return CTL_EXIT_USAGE; /* no such child: as for kill */
    if (rc)
        return rc;
    if (g_json)
        ctl_print_json(reply);
    else
        printf("restarted %s: running as pid %.0f\n", id, ctl_num(reply, "pid"));
    cJSON_Delete(reply);
    return 0;
}

/* The pid of child id (or of etssup for "etssup"), from etssup's status;
 * 0 when it does not run; an exit status < 0 ... see ctl_kill. */
static int ctl_child_pid(const rt_paths *rt, const char *id, int timeout, pid_t *pid, pid_t *sup)
{
    cJSON *reply = NULL;
    int rc = ctl_call_op(rt, "etssup", "status", timeout, &reply);
    if (rc)
        return rc;
    *sup = (pid_t)ctl_num(reply, "pid");
    bool found = strcmp(id, "etssup") == 0;
    *pid = found ? *sup : 0;
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(reply, "children")) {
        if (!found && strcmp(ctl_str(ch, "id", ""), id) == 0) {
            found = true;
            *pid = (pid_t)ctl_num(ch, "pid");
        }
    }
    if (!found) {
        fprintf(stderr, "etsmgrctl: etssup of instance %s has no child \"%s\" (see etsmgrctl status)\n",
                rt->instance, id);
        rc = CTL_EXIT_USAGE;
    }
    cJSON_Delete(reply);
    return rc;
}

/* kill ID: the pid comes from this instance's etssup, and must still be its
 * child when the signal goes (not another user's or instance's process, as
 * a pgrep would find). */
static int ctl_kill(const rt_paths *rt, const char *id, int sig, int timeout)
{
    pid_t pid = 0, sup = 0;
    int rc = ctl_child_pid(rt, id, timeout, &pid, &sup);
    if (rc)
        return rc;
    if (pid <= 0) {
        fprintf(stderr, "etsmgrctl: child %s of instance %s is not running now\n", id, rt->instance);
        return CTL_EXIT_UNAVAILABLE;
    }
    if (pid != sup && proc_ppid(pid) != sup) {
        fprintf(stderr, "etsmgrctl: pid %ld is no longer etssup's child %s (it was just restarted?); try again\n",
                (long)pid, id);
        return CTL_EXIT_UNAVAILABLE;
    }
    if (kill(pid, sig) < 0) {
        fprintf(stderr, "etsmgrctl: kill %ld (%s): %s\n", (long)pid, id, strerror(errno));
        return errno == ESRCH ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_SOFTWARE;
    }
    if (g_json)
        printf("{\"killed\":\"%s\",\"pid\":%ld,\"signal\":%d}\n", id, (long)pid, sig);
    else
        printf("sent SIG%s to %s (pid %ld)\n", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", id, (long)pid);
    return 0;
}

/* KILL, SIGKILL, kill or 9 */
static int ctl_parse_signal(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    if (*s && !*end)
        return n > 0 && n < NSIG ? (int)n : -1;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (int i = 1; i < NSIG; i++) {
        const char *a = sigabbrev_np(i);
        if (a && strcasecmp(a, s) == 0)
            return i;
    }
    return -1;
}

/* etsmgrctl env: what rt_resolve gives here, and from where. */
static int ctl_env(const rt_paths *rt)
{
    if (g_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "runtime_dir", rt->dir);
        cJSON_AddStringToObject(o, "runtime_dir_from", rt->dir_from);
        cJSON_AddStringToObject(o, "instance", rt->instance);
        cJSON_AddStringToObject(o, "instance_from", rt->instance_from);
        ctl_print_json(o);
        cJSON_Delete(o);
        return 0;
    }
    printf("runtime dir  %s\n             from %s\n", rt->dir, rt->dir_from);
    printf("instance     %s\n             from %s\n", rt->instance, rt->instance_from);
    printf("sockets      %s/{etssup,etsmgrd,etscounter}.sock\n", rt->dir);
    printf("Every program and libetsmgr resolve these the same way: --runtime-dir and\n"
           "--instance, else $ETSMGR_RUNTIME_DIR and $ETSMGR_INSTANCE, else the defaults.\n"
           "Two shells with a different XDG_RUNTIME_DIR or ETSMGR_INSTANCE talk to\n"
           "different systems.\n");
    return 0;
}

static int ctl_stop(const rt_paths *rt, int timeout)
{
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "stop");
    cJSON_AddNumberToObject(req, "id", 1);
    int fd = -1;
    int rc = ctl_call(rt, "etssup.sock", "etssup", req, timeout, &fd, &reply);
    cJSON_Delete(req);
    if (rc)
        return rc;
    double pid = ctl_num(reply, "pid");
    cJSON_Delete(reply);
    /* etssup closes the connection once every child is stopped */
    char *payload = NULL;
    size_t len;
    int nfds = 0;
    int r = frame_read(fd, &payload, &len, NULL, &nfds, 0, timeout);
    int e = errno;
    free(payload);
    close(fd);
    if (r < 0 && e == ETIMEDOUT) {
        fprintf(stderr, "etsmgrctl: etssup (pid %.0f) is still stopping its children after %d ms\n", pid, timeout);
        return CTL_EXIT_SOFTWARE;
    }
    if (g_json)
        printf("{\"stopped\":true,\"pid\":%.0f}\n", pid);
    else
        printf("etssup (pid %.0f) stopped its children and exited\n", pid);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"runtime-dir", required_argument, NULL, 'd'},
                                         {"instance", required_argument, NULL, 'i'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"signal", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"as", required_argument, NULL, 1001},
                                         {"replace", no_argument, NULL, 1002},
                                         {"force", no_argument, NULL, 1003},
                                         {"from", required_argument, NULL, 1004},
                                         {"to", required_argument, NULL, 1005},
                                         {NULL, 0, NULL, 0}};
    const char *opt_as = NULL, *opt_from = NULL, *opt_to = NULL;
    bool opt_replace = false, opt_force = false;
    const char *opt_dir = NULL, *opt_instance = NULL;
    int timeout = -1, o, sig = SIGTERM;
    while ((o = getopt_long(argc, argv, "d:i:jt:s:hV", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            if ((sig = ctl_parse_signal(optarg)) < 0) {
                fprintf(stderr, "etsmgrctl: --signal %s: not a signal name (KILL, TERM ...) or number\n", optarg);
                return CTL_EXIT_USAGE;
            }
            break;
        case 'd': opt_dir = optarg; break;
        case 'i': opt_instance = optarg; break;
        case 'j': g_json = true; break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == 0 || *end || v <= 0 || v > 86400000) {
                fprintf(stderr, "etsmgrctl: --timeout %s: must be a number of milliseconds (1 to 86400000)\n",
                        optarg);
                return CTL_EXIT_USAGE;
            }
            timeout = (int)v;
            break;
        }
        case 'h': ctl_usage(stdout); return ctl_output_status(0);
        case 'V': printf("etsmgrctl %s\n", ETSMGR_VERSION_STRING); return ctl_output_status(0);
        case 1001: opt_as = optarg; break;
        case 1002: opt_replace = true; break;
        case 1003: opt_force = true; break;
        case 1004: opt_from = optarg; break;
        case 1005: opt_to = optarg; break;
        default: ctl_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "etsmgrctl: a command is needed: status, tables, dump TABLE, restart ID or stop\n");
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    bool is_restart = strcmp(cmd, "restart") == 0, is_kill = strcmp(cmd, "kill") == 0;
    static const struct { const char *cmd, *args; int n; } data_cmds[] = {
        {"save", "TABLE FILE", 2}, {"load", "FILE [--as NAME] [--replace]", 1},
        {"snapshot", "", 0}, {"del", "TABLE [--force]", 1}, {"dump", "TABLE [--from KEY] [--to KEY]", 1},
    };
    int dc = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(cmd, data_cmds[i].cmd) == 0)
            dc = i;
    if (strcmp(cmd, "status") && strcmp(cmd, "tables") && strcmp(cmd, "stop") && strcmp(cmd, "env") &&
        !is_restart && !is_kill && dc < 0) {
        fprintf(stderr, "etsmgrctl: unknown command \"%s\" (status, tables, dump, restart ID, stop, kill ID, env, save, "
                "load, snapshot or del)\n", cmd);
        return CTL_EXIT_USAGE;
    }
    if ((opt_as || opt_replace) && strcmp(cmd, "load") != 0) {
        fprintf(stderr, "etsmgrctl: --as and --replace go with load\n");
        return CTL_EXIT_USAGE;
    }
    if (opt_force && strcmp(cmd, "del") != 0) {
        fprintf(stderr, "etsmgrctl: --force goes with del\n");
        return CTL_EXIT_USAGE;
    }
    if ((opt_from || opt_to) && strcmp(cmd, "dump") != 0) {
        fprintf(stderr, "etsmgrctl: --from and --to go with dump\n");
        return CTL_EXIT_USAGE;
    }
    if (dc >= 0 && nargs != data_cmds[dc].n) {
        fprintf(stderr, "etsmgrctl: usage: etsmgrctl %s %s\n", cmd, data_cmds[dc].args);
        return CTL_EXIT_USAGE;
    }
    if (dc < 0 && nargs != (is_restart || is_kill ? 1 : 0)) {
        if (is_restart || is_kill)
            fprintf(stderr, "etsmgrctl: %s takes one child id, e.g. etsmgrctl %s etscounterd\n", cmd, cmd);
        else
            fprintf(stderr, "etsmgrctl: %s takes no argument (got \"%s\")\n", cmd, argv[optind + 1]);
        return CTL_EXIT_USAGE;
    }
    /* a name no table can have is the caller's mistake, whichever command
     * it goes to (save checks its own, for its message) */
    const char *tname = dc >= 0 && (strcmp(cmd, "dump") == 0 || strcmp(cmd, "del") == 0) ? argv[optind + 1]
                        : opt_as;
    if (tname && !rt_valid_name(tname, strlen(tname))) {
        fprintf(stderr, "etsmgrctl: \"%s\" is not a table name ([A-Za-z0-9_.-]{1,64}, not . or ..)\n", tname);
        return CTL_EXIT_USAGE;
    }
    rt_paths rt;
    char err[256];
    if (rt_resolve(opt_dir, opt_instance, &rt, err, sizeof err) < 0) {
        fprintf(stderr, "etsmgrctl: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    bool slow = is_restart || strcmp(cmd, "stop") == 0 ||
                (dc >= 0 && strcmp(cmd, "del") != 0 && strcmp(cmd, "dump") != 0);
    if (timeout < 0)
        timeout = slow ? 60000 : 5000;
    int rc;
    if (strcmp(cmd, "save") == 0)
        rc = ctl_save(&rt, argv[optind + 1], argv[optind + 2], timeout);
    else if (strcmp(cmd, "load") == 0)
        rc = ctl_load(&rt, argv[optind + 1], opt_as, opt_replace, timeout);
    else if (strcmp(cmd, "snapshot") == 0)
        rc = ctl_snapshot(&rt, timeout);
    else if (strcmp(cmd, "del") == 0)
        rc = ctl_del(&rt, argv[optind + 1], opt_force, timeout);
    else if (strcmp(cmd, "status") == 0)
        rc = ctl_status(&rt, timeout);
    else if (strcmp(cmd, "tables") == 0)
        rc = ctl_tables(&rt, timeout);
    else if (is_restart)
        rc = ctl_restart(&rt, argv[optind + 1], timeout);
    else if (is_kill)
        rc = ctl_kill(&rt, argv[optind + 1], sig, timeout);
    else if (strcmp(cmd, "env") == 0)
        rc = ctl_env(&rt);
    else if (strcmp(cmd, "dump") == 0)
        rc = ctl_dump(&rt, argv[optind + 1], opt_from, opt_to, timeout, g_json);
    else
        rc = ctl_stop(&rt, timeout);
    return ctl_output_status(rc);
}

/* main.c: etsmgrctl, the operator's view of an instance (see etsmgrctl(1)).
 *
 * One request per run over the instance's sockets: status, restart and stop
 * go to etssup (DIR/etssup.sock), tables to etsmgrd (DIR/etsmgrd.sock, the
 * C counterpart of etsmgr:info()).  It resolves the runtime dir and instance
 * like every program of the project, so it needs no options next to a
 * running system.  Human output is aligned columns sized to the data;
 * --json prints the daemon's reply (without "ok" and "id") on one line for
 * scripts.  The exit status tells a script what went wrong: 69 when nobody
 * answers (not running, or it went away), 70 when it answered with an error
 * or nonsense, 64 for a usage mistake. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "runtime.h"
#include "sock.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_USAGE 64
#define CTL_EXIT_UNAVAILABLE 69
#define CTL_EXIT_SOFTWARE 70

static bool g_json;

static void ctl_usage(FILE *f)
{
    fprintf(f,
            "Usage: etsmgrctl [--runtime-dir DIR] [--instance NAME] [--json] [--timeout MS] COMMAND\n"
            "       etsmgrctl --help | --version\n"
            "\n"
            "Commands:\n"
            "  status        the supervisor's strategy and each child's state (asks etssup)\n"
            "  tables        the tables etsmgrd manages, like etsmgr:info() (asks etsmgrd)\n"
            "  restart ID    stop child ID if it runs and start it again; returns once it is up\n"
            "  stop          stop every child in reverse order, then etssup; returns once done\n"
            "\n"
            "Options:\n"
            "  -d, --runtime-dir DIR   runtime directory (default: $ETSMGR_RUNTIME_DIR,\n"
            "                          $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
            "                          else /tmp/etsmgr-$UID)\n"
            "  -i, --instance NAME     instance name (default: $ETSMGR_INSTANCE, else etsmgr)\n"
            "  -j, --json              machine-readable output (one JSON object)\n"
            "  -t, --timeout MS        how long to wait for the answer (default 5000 for\n"
            "                          status and tables, 60000 for restart and stop)\n"
            "  -h, --help              show this help\n"
            "  -V, --version           show the version\n"
            "\n"
            "Exit status: 0 success, 64 usage error, 69 etssup or etsmgrd not reachable,\n"
            "70 any other failure (an error reply, a bad reply, a timeout).\n");
}

/* One request; 0 with *reply, else an exit status (message printed). */
static int ctl_call(const rt_paths *rt, const char *sockname, const char *who, cJSON *req, int timeout_ms,
                    int *conn_fd, cJSON **reply)
{
    char path[RT_PATH_MAX];
    if (rt_path(rt, sockname, path, sizeof path) < 0) {
        fprintf(stderr, "etsmgrctl: the runtime dir %s is too long for a socket path\n", rt->dir);
        return CTL_EXIT_SOFTWARE;
    }
    int fd = sock_connect_unix(path);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTDIR)
            fprintf(stderr, "etsmgrctl: %s is not running for instance %s (connect %s: %s)\n", who, rt->instance,
                    path, strerror(e));
        else
            fprintf(stderr, "etsmgrctl: cannot reach %s: connect %s: %s\n", who, path, strerror(e));
        return CTL_EXIT_UNAVAILABLE;
    }
    if (frame_write_json(fd, req, NULL, 0) < 0) {
        int e = errno;
        close(fd);
        fprintf(stderr, "etsmgrctl: sending the request to %s (%s): %s\n", who, path, strerror(e));
        return e == EPIPE || e == ECONNRESET ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_SOFTWARE;
    }
    int nfds = 0;
    if (frame_read_json(fd, reply, NULL, &nfds, 0, timeout_ms) < 0) {
        int e = errno;
        close(fd);
        if (e == ECONNRESET) {
            fprintf(stderr, "etsmgrctl: %s closed the connection before answering (it may be restarting)\n", who);
            return CTL_EXIT_UNAVAILABLE;
        }
        if (e == ETIMEDOUT)
            fprintf(stderr, "etsmgrctl: no answer from %s within %d ms\n", who, timeout_ms);
        else
            fprintf(stderr, "etsmgrctl: reading the answer of %s: %s\n", who, strerror(e));
        return CTL_EXIT_SOFTWARE;
    }
    if (conn_fd)
        *conn_fd = fd;
    else
        close(fd);
    cJSON *ok = cJSON_GetObjectItemCaseSensitive(*reply, "ok");
    if (!cJSON_IsBool(ok)) {
        fprintf(stderr, "etsmgrctl: %s sent a reply without \"ok\"\n", who);
        goto fail;
    }
    if (!cJSON_IsTrue(ok)) {
        cJSON *code = cJSON_GetObjectItemCaseSensitive(*reply, "error");
        cJSON *msg = cJSON_GetObjectItemCaseSensitive(*reply, "message");
        fprintf(stderr, "etsmgrctl: %s: %s (%s)\n", who, cJSON_IsString(msg) ? msg->valuestring : "failed",
                cJSON_IsString(code) ? code->valuestring : "no error code");
        goto fail;
    }
    return 0;
fail:
    if (conn_fd) {
        close(*conn_fd);
        *conn_fd = -1;
    }
    cJSON_Delete(*reply);
    *reply = NULL;
    return CTL_EXIT_SOFTWARE;
}

static void ctl_print_json(cJSON *reply)
{
    cJSON_DeleteItemFromObjectCaseSensitive(reply, "ok");
    cJSON_DeleteItemFromObjectCaseSensitive(reply, "id");
    char *s = cJSON_PrintUnformatted(reply);
    if (s) {
        printf("%s\n", s);
        free(s);
    }
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
#define CTL_MAXCOL 9
typedef struct ctl_table {
    int ncol, nrow;
    char *(*cells)[CTL_MAXCOL];
} ctl_table;

static void ctl_row(ctl_table *t, const char *const *vals)
{
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
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "status");
    cJSON_AddNumberToObject(req, "id", 1);
    int rc = ctl_call(rt, "etssup.sock", "etssup", req, timeout, NULL, &reply);
    cJSON_Delete(req);
    if (rc)
        return rc;
    if (g_json) {
        ctl_print_json(reply);
        cJSON_Delete(reply);
        return 0;
    }
    printf("etssup pid %.0f, instance %s: %s; strategy %s, intensity %.0f in %.0f s (%.0f recent restarts)\n",
           ctl_num(reply, "pid"), ctl_str(reply, "instance", "?"), ctl_str(reply, "state", "?"),
           ctl_str(reply, "strategy", "?"), ctl_num(reply, "intensity"), ctl_num(reply, "period"),
           ctl_num(reply, "recent_restarts"));
    ctl_table t = {.ncol = 7};
    const char *hdr[] = {"ID", "PID", "STATE", "RESTART", "RESTARTS", "UPTIME", "LAST EXIT"};
    ctl_row(&t, hdr);
    const cJSON *ch;
    cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(reply, "children")) {
        char pid[24], restarts[24], up[24];
        double p = ctl_num(ch, "pid");
        snprintf(pid, sizeof pid, p > 0 ? "%.0f" : "-", p);
        snprintf(restarts, sizeof restarts, "%.0f", ctl_num(ch, "restarts"));
        if (p > 0)
            ctl_duration(ctl_num(ch, "uptime_s"), up, sizeof up);
        else
            snprintf(up, sizeof up, "-");
        const char *row[] = {ctl_str(ch, "id", "?"), pid, ctl_str(ch, "state", "?"), ctl_str(ch, "restart", "?"),
                             restarts, up, ctl_str(ch, "last_exit", "-")};
        ctl_row(&t, row);
    }
    ctl_table_print(&t);
    cJSON_Delete(reply);
    return 0;
}

/* etsmgrd answers tables in pages of about 60 KB ("more": ask again after
 * the last name); the pages are put back together into one reply, so
 * --json prints one object with every table, as before paging. */
static int ctl_tables(const rt_paths *rt, int timeout)
{
    cJSON *reply = NULL;
    for (int page = 1;; page++) {
        cJSON *req = cJSON_CreateObject(), *part = NULL;
        cJSON_AddStringToObject(req, "op", "tables");
        cJSON_AddNumberToObject(req, "id", page);
        const cJSON *all = reply ? cJSON_GetObjectItemCaseSensitive(reply, "tables") : NULL;
        int have = all ? cJSON_GetArraySize(all) : 0;
        const char *last = have ? ctl_str(cJSON_GetArrayItem(all, have - 1), "name", "") : "";
        if (reply)
            cJSON_AddStringToObject(req, "after", last);
        int rc = ctl_call(rt, "etsmgrd.sock", "etsmgrd", req, timeout, NULL, &part);
        cJSON_Delete(req);
        if (rc) {
            cJSON_Delete(reply);
            return rc;
        }
        bool more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(part, "more"));
        cJSON *tabs = cJSON_GetObjectItemCaseSensitive(part, "tables");
        int got = cJSON_IsArray(tabs) ? cJSON_GetArraySize(tabs) : 0;
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
    ctl_table t = {.ncol = 9};
    const char *hdr[] = {"NAME", "STATE", "OWNER", "ENTRIES", "CAPACITY", "BYTES", "TRANSFERS", "HEIR DATA",
                         "CREATED"};
    ctl_row(&t, hdr);
    const cJSON *tb;
    cJSON_ArrayForEach(tb, tabs) {
        char owner[24], entries[24], cap[24], bytes[24], tr[24];
        double o = ctl_num(tb, "owner_pid");
        snprintf(owner, sizeof owner, o > 0 ? "%.0f" : "-", o);
        snprintf(entries, sizeof entries, "%.0f", ctl_num(tb, "entries"));
        snprintf(cap, sizeof cap, "%.0f", ctl_num(tb, "capacity"));
        snprintf(bytes, sizeof bytes, "%.0f", ctl_num(tb, "bytes"));
        snprintf(tr, sizeof tr, "%.0f", ctl_num(tb, "transfers"));
        const char *hd = ctl_str(tb, "heir_data", "");
        const char *row[] = {ctl_str(tb, "name", "?"), ctl_str(tb, "state", "?"), owner, entries, cap, bytes, tr,
                             *hd ? hd : "-", ctl_str(tb, "created", "-")};
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
    if (rc)
        return rc;
    if (g_json)
        ctl_print_json(reply);
    else
        printf("restarted %s: running as pid %.0f\n", id, ctl_num(reply, "pid"));
    cJSON_Delete(reply);
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
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *opt_dir = NULL, *opt_instance = NULL;
    int timeout = -1, o;
    while ((o = getopt_long(argc, argv, "d:i:jt:hV", opts, NULL)) != -1) {
        switch (o) {
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
        case 'h': ctl_usage(stdout); return 0;
        case 'V': printf("etsmgrctl %s\n", ETSMGR_VERSION_STRING); return 0;
        default: ctl_usage(stderr); return CTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "etsmgrctl: a command is needed: status, tables, restart ID or stop\n");
        ctl_usage(stderr);
        return CTL_EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    bool is_restart = strcmp(cmd, "restart") == 0;
    if (strcmp(cmd, "status") && strcmp(cmd, "tables") && strcmp(cmd, "stop") && !is_restart) {
        fprintf(stderr, "etsmgrctl: unknown command \"%s\" (status, tables, restart ID or stop)\n", cmd);
        return CTL_EXIT_USAGE;
    }
    if (nargs != (is_restart ? 1 : 0)) {
        if (is_restart)
            fprintf(stderr, "etsmgrctl: restart takes one child id, e.g. etsmgrctl restart etscounterd\n");
        else
            fprintf(stderr, "etsmgrctl: %s takes no argument (got \"%s\")\n", cmd, argv[optind + 1]);
        return CTL_EXIT_USAGE;
    }
    rt_paths rt;
    char err[256];
    if (rt_resolve(opt_dir, opt_instance, &rt, err, sizeof err) < 0) {
        fprintf(stderr, "etsmgrctl: %s\n", err);
        return CTL_EXIT_USAGE;
    }
    bool slow = is_restart || strcmp(cmd, "stop") == 0;
    if (timeout < 0)
        timeout = slow ? 60000 : 5000;
    if (strcmp(cmd, "status") == 0)
        return ctl_status(&rt, timeout);
    if (strcmp(cmd, "tables") == 0)
        return ctl_tables(&rt, timeout);
    if (is_restart)
        return ctl_restart(&rt, argv[optind + 1], timeout);
    return ctl_stop(&rt, timeout);
}

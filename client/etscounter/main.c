/* SPDX-License-Identifier: Apache-2.0 */
/* etscounter: the command line for etscounterd (count, check, die, ping),
 * the C counterpart of calling etscounter_srv:count/0 and friends from the
 * seed's Erlang shell.
 *
 * It is a one-shot client of DIR/etscounter.sock: one request, one reply,
 * printed for people or (--json) for programs.  A count carries a random
 * 128-bit request id from getrandom(2) (call.c's ec_request), and call.c
 * sends the same id again while etscounterd restarts, so that "final count
 * = number of `etscounter count` commands that exited 0 or 74, plus some of
 * those that exited 75" (docs/design.md) holds whatever is killed in
 * between. */
#include "etscounter.h"
#include "proto.h"
#include "runtime.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ec_usage[] =
    "Usage: etscounter [OPTION]... count|check|die|ping\n"
    "Talk to etscounterd, the counter kept in an etsmgr table.\n"
    "\n"
    "Commands:\n"
    "  count    add one to the counter and print its new value\n"
    "  check    print the table's entries\n"
    "  die      ask etscounterd to kill itself (SIGKILL), for its supervisor to restart it\n"
    "  ping     print etscounterd's pid\n"
    "\n"
    "Options:\n"
    "  -d, --runtime-dir DIR   runtime directory (default: $ETSMGR_RUNTIME_DIR,\n"
    "                          $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
    "                          else /tmp/etsmgr-$UID;\n"
    "                          @NAME appended for an instance NAME other than etsmgr)\n"
    "  -i, --instance NAME     instance name (default: $ETSMGR_INSTANCE or etsmgr)\n"
    "  -t, --timeout MS        retry while etscounterd restarts for up to MS\n"
    "                          milliseconds (default 5000)\n"
    "  -j, --json              print JSON: {\"count\":N}, {\"table\":...,\"data\":{...}}\n"
    "  -h, --help              show this help and exit\n"
    "  -V, --version           show the version and exit\n"
    "\n"
    "Exit status: 0 done (a count was counted, once), 64 usage error, 69 etscounterd\n"
    "is not running (said at once when nothing holds the instance's lock) or did not\n"
    "answer within --timeout (a count was not counted), 70 any other failure (a count\n"
    "was not counted), 74 the answer could not be written out (a count was counted),\n"
    "75 count only: it was sent but no final answer came (or an answer ok without a\n"
    "count), so it may have been counted.\n";

static int ec_usage_error(const char *fmt, const char *arg)
{
    fputs("etscounter: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'etscounter --help' for more information.\n", stderr);
    return EC_USAGE;
}

static void ec_print_json(const cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        puts(s);
        cJSON_free(s);
    }
}

/* check, for people: one "key = value" line per entry */
static void ec_print_check(const cJSON *rep)
{
    const char *table = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "table"));
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(rep, "data");
    printf("table %s:\n", table ? table : "?");
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, data)
    {
        n++;
        if (cJSON_IsNumber(e))
            printf("  %s = %.0f\n", e->string, e->valuedouble);
        else if (cJSON_IsString(e))
            printf("  %s = \"%s\"\n", e->string, e->valuestring);
        else {
            char *s = cJSON_PrintUnformatted(e);
            printf("  %s = %s\n", e->string, s ? s : "?");
            cJSON_free(s);
        }
    }
    if (n == 0)
        printf("  (no entries)\n");
}

/* Whether a count's outcome is unknown: an attempt was sent and no final
 * answer covers it.  Final are a value (ok), expired and rid_store_full:
 * etscounterd gives those after it looked the request id up, so they
 * answer for every attempt, if it looked by the count's retry_until_mono,
 * while it still kept the record of an earlier attempt.  late: the answer
 * was read after that; it may have come from a lookup just after, the
 * record dropped, and says nothing of the attempts before.  Any other error reply (table_busy, which
 * comes before the lookup, table_error, table_full ...) says only that
 * the attempt it answers did nothing; an attempt
 * before it may have been counted and its answer lost.  No reply at all
 * (given up, a reply that could not be read, a socket that could no
 * longer be reached) says nothing of the attempts sent. */
static int ec_count_unknown(int rc, const cJSON *rep, int sent, int late)
{
    if (rc != EC_OK)
        return sent > 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "ok")))
        return 0;
    proto_err code = proto_err_find(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "error")));
    if ((code == PROTO_E_EXPIRED || code == PROTO_E_RID_STORE_FULL) && !late)
        return 0;
    return sent > 1;
}

/* Whether now, once the answer is read, is past req's retry_until_mono
 * (ms on CLOCK_MONOTONIC, as etscounterd compares them): read after the
 * answer came, this errs on the side of late, never of in time. */
static int ec_past_retry_until(const cJSON *req)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "retry_until_mono");
    struct timespec ts;
    if (!cJSON_IsNumber(u) || clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return 1;
    return (double)ts.tv_sec * 1000 + (double)(ts.tv_nsec / 1000000) > u->valuedouble;
}

/* The exit status once the answer is printed: stdout written out and
 * closed (a failure only the close reports, a quota or NFS, is one too).
 * A failed output is EC_IOERR, never EC_FAIL: what was asked was done (a
 * count counted, which EC_FAIL would deny), only its printing failed. */
static int ec_output_status(int is_count, double counted)
{
    errno = 0;
    int bad = fflush(stdout) != 0 || ferror(stdout);
    if (!bad && fclose(stdout) != 0)
        bad = 1;
    if (!bad)
        return EC_OK;
    const char *e = errno ? strerror(errno) : "write error";
    if (is_count)
        fprintf(stderr, "etscounter: count %.0f was counted, but writing it out failed: %s\n", counted, e);
    else
        fprintf(stderr, "etscounter: writing the output: %s\n", e);
    return EC_IOERR;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "runtime-dir", required_argument, NULL, 'd' },
        { "instance", required_argument, NULL, 'i' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = NULL, *instance = NULL;
    int timeout_ms = 5000, json = 0, o;
    while ((o = getopt_long(argc, argv, "d:i:t:jhV", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'i': instance = optarg; break;
        case 't': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > 86400000)
                return ec_usage_error("--timeout takes milliseconds (0 to 86400000), not \"%s\"", optarg);
            timeout_ms = (int)v;
            break;
        }
        case 'j': json = 1; break;
        case 'h': fputs(ec_usage, stdout); return EC_OK;
        case 'V': printf("etscounter %s\n", ETSMGR_VERSION_STRING); return EC_OK;
        default: fputs("Try 'etscounter --help' for more information.\n", stderr); return EC_USAGE;
        }
    }
    if (optind >= argc)
        return ec_usage_error("%s", "a command is needed: count, check, die or ping");
    if (optind + 1 < argc)
        return ec_usage_error("unexpected argument \"%s\"", argv[optind + 1]);
    const char *cmd = argv[optind];
    if (strcmp(cmd, "count") && strcmp(cmd, "check") && strcmp(cmd, "die") && strcmp(cmd, "ping"))
        return ec_usage_error("unknown command \"%s\" (count, check, die or ping)", cmd);

    rt_paths rt;
    char err[256], path[RT_PATH_MAX];
    if (rt_resolve(dir, instance, &rt, err, sizeof err) < 0)
        return ec_usage_error("%s", err);
    if (rt_path(&rt, "etscounter.sock", path, sizeof path) < 0)
        return ec_usage_error("runtime dir \"%s\" is too long for a socket path", rt.dir);
    signal(SIGPIPE, SIG_IGN);

    char why[512];
    cJSON *req = ec_request(cmd, 1, timeout_ms, why, sizeof why);
    if (!req) {
        fprintf(stderr, "etscounter: %s\n", why);
        return EC_FAIL;
    }
    cJSON *rep = NULL;
    int is_count = strcmp(cmd, "count") == 0;
    int sent = 0;
    int rc = ec_call(&rt, path, req, timeout_ms, is_count ? EC_GRACE_MS : 0, strcmp(cmd, "die") != 0, &rep, &sent, why,
                     sizeof why);
    int late = is_count && ec_past_retry_until(req);
    cJSON_Delete(req);
    if (is_count && ec_count_unknown(rc, rep, sent, late)) {
        if (rc != EC_OK) {
            fprintf(stderr, "etscounter: count unknown: %s; it may have been counted (etscounter check shows the "
                            "count)\n", why);
        } else {
            const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "error"));
            const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "message"));
            fprintf(stderr, "etscounter: count unknown: etscounterd says: %s (%s), to attempt %d; an earlier "
                            "attempt may have been counted (etscounter check shows the count)\n",
                    msg ? msg : "no message", code ? code : "no error code", sent);
        }
        cJSON_Delete(rep);
        return EC_MAYBE;
    }
    if (rc != EC_OK) {
        fprintf(stderr, "etscounter: %s %s (instance %s, runtime dir %s): %s\n", cmd,
                rc == EC_UNAVAILABLE ? "gave up" : "failed", rt.instance, rt.dir, why);
        return rc;
    }
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "ok"))) {
        const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "error"));
        const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "message"));
        if (proto_err_find(code) == PROTO_E_EXPIRED) {
            /* etscounterd came back too late: it did not count, for sure */
            fprintf(stderr, "etscounter: count gave up: etscounterd at %s did not count within %d ms; it was "
                            "not counted\n", path, timeout_ms);
            cJSON_Delete(rep);
            return EC_UNAVAILABLE;
        }
        if (code && (proto_err_find(code) == PROTO_E_RID_STORE_FULL || proto_err_find(code) == PROTO_E_TABLE_BUSY)) {
            /* refused before anything was written: not counted, for sure
             * (rid_store_full comes after the request id was looked up,
             * so it covers the earlier attempts too; table_busy here was
             * the answer to the only attempt, ec_count_unknown) */
            fprintf(stderr, "etscounter: %s gave up: etscounterd says: %s (%s)\n", cmd, msg ? msg : "no message",
                    code);
            cJSON_Delete(rep);
            return EC_UNAVAILABLE;
        }
        fprintf(stderr, "etscounter: %s failed: etscounterd says: %s (%s)\n", cmd, msg ? msg : "no message",
                code ? code : "no error code");
        cJSON_Delete(rep);
        return EC_FAIL;
    }
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(rep, "pid");
    int ipid = cJSON_IsNumber(pid) ? pid->valueint : 0;
    double counted = 0;
    if (strcmp(cmd, "count") == 0) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(rep, "count");
        if (!cJSON_IsNumber(n)) {
            /* ok: counted, by what it says; how far, it does not say */
            fprintf(stderr, "etscounter: count unknown: etscounterd answered ok without the count; it may have "
                            "been counted (etscounter check shows the count)\n");
            cJSON_Delete(rep);
            return EC_MAYBE;
        }
        counted = n->valuedouble;
        if (json)
            printf("{\"count\":%.0f}\n", n->valuedouble);
        else
            printf("%.0f\n", n->valuedouble);
    } else if (strcmp(cmd, "check") == 0) {
        if (json) {
            cJSON *out = cJSON_CreateObject();
            cJSON *data = cJSON_DetachItemFromObjectCaseSensitive(rep, "data");
            const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rep, "table"));
            if (out && cJSON_AddStringToObject(out, "table", t ? t : "") && data &&
                cJSON_AddItemToObject(out, "data", data))
                data = NULL;
            ec_print_json(out);
            cJSON_Delete(out);
            cJSON_Delete(data);
        } else {
            ec_print_check(rep);
        }
    } else if (strcmp(cmd, "die") == 0) {
        if (json)
            printf("{\"died\":true,\"pid\":%d}\n", ipid);
        else
            printf("etscounterd (pid %d) killed itself with SIGKILL; its supervisor restarts it.\n", ipid);
    } else {
        if (json)
            printf("{\"pid\":%d}\n", ipid);
        else
            printf("etscounterd (pid %d) is serving %s\n", ipid, path);
    }
    cJSON_Delete(rep);
    return ec_output_status(is_count, counted);
}

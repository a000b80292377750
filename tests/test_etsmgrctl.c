/* SPDX-License-Identifier: Apache-2.0 */
/* test_etsmgrctl.c: etsmgrctl against etssup (stub children) and the real
 * etsmgrd: aligned human output, --json, restart, stop, kill, env, dump of
 * an ordered_set in key order and of its ranges (--from/--to), the entry
 * counts of save, snapshot, load and tables (the same, "1 entry"), and the
 * exit statuses 64 (usage), 66 (no such table), 69 (not reachable), 70
 * (error reply), 74 (output not written), one meaning each whatever the
 * command; dump --json is UTF-8 whatever the bytes; a WAITERS cell too long
 * for the column says how many it left out. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "etsmgr.h"
#include "frame.h"
#include "sock.h"
#include "runcap.h"
#include "table_image.h"
#include "test_sup.h"
#include "testutil.h"

static int ctl(st_env *e, char **out, const char *a1, const char *a2, const char *a3)
{
    char *argv[] = {e->ctl_bin, "--runtime-dir", e->dir, "--instance", e->instance, (char *)a1, (char *)a2,
                    (char *)a3, NULL};
    int st = rc_run(argv, out, 30000);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_ctl_status_restart_stop)
{
    st_env e;
    st_init(&e);
    st_config(&e,
              "{\"strategy\":\"rest_for_one\",\"children\":["
              "{\"id\":\"alpha\",\"argv\":[\"%s\",\"--id\",\"alpha\"]},"
              "{\"id\":\"b\",\"argv\":[\"%s\",\"--id\",\"b\"],\"restart\":\"transient\"}]}",
              e.stub, e.stub);
    ck_assert_int_gt(st_start(&e, 15000), 0);
    pid_t p[2];
    st_pids(&e, p);
    char *out = NULL;
    ck_assert_int_eq(ctl(&e, &out, "status", NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "strategy rest_for_one"));
    /* columns line up: "STATE" starts at the same offset in every row */
    const char *hdr = strstr(out, "ID ");
    ck_assert_ptr_nonnull(hdr);
    const char *r1 = strchr(hdr, '\n') + 1, *r2 = strchr(r1, '\n') + 1;
    ck_assert_int_eq(strstr(hdr, "STATE") - hdr, strstr(r1, "running") - r1);
    ck_assert_int_eq(strstr(hdr, "STATE") - hdr, strstr(r2, "running") - r2);
    ck_assert(strncmp(r1, "alpha", 5) == 0 && strncmp(r2, "b ", 2) == 0);
    free(out);

    ck_assert_int_eq(ctl(&e, &out, "--json", "status", NULL), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "not JSON: %s", out);
    free(out);
    ck_assert_ptr_null(cJSON_GetObjectItem(j, "ok"));
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "children"), 0);
    ck_assert_str_eq(cJSON_GetObjectItem(c0, "id")->valuestring, "alpha");
    ck_assert_int_eq(cJSON_GetObjectItem(c0, "pid")->valueint, p[0]);
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(c0, "uptime_s"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(c0, "restarts"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(c0, "last_exit"));
    cJSON_Delete(j);

    ck_assert_int_eq(ctl(&e, &out, "restart", "b", NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "restarted b: running as pid"));
    free(out);
    pid_t q[2];
    st_pids(&e, q);
    ck_assert_int_eq(q[0], p[0]);
    ck_assert_int_ne(q[1], p[1]);

    /* kill: the pid from etssup, the signal given; etssup restarts it */
    ck_assert_int_eq(ctl(&e, &out, "kill", "alpha", "--signal=KILL"), 0);
    char want[64];
    snprintf(want, sizeof want, "sent SIGKILL to alpha (pid %d)", (int)q[0]);
    ck_assert_msg(strstr(out, want), "%s", out);
    free(out);
    ck_assert_msg(st_wait_settled(&e, 0, q[0], 15000), "etssup did not restart alpha after etsmgrctl kill");
    ck_assert_int_eq(ctl(&e, &out, "kill", "nope", NULL), 64);
    ck_assert_ptr_nonnull(strstr(out, "no child \"nope\""));
    free(out);
    ck_assert_int_eq(ctl(&e, &out, "kill", "alpha", "--signal=LOUD"), 64);
    free(out);
    st_pids(&e, q);

    ck_assert_int_eq(ctl(&e, &out, "restart", "nope", NULL), 64); /* no such child: as for kill */
    ck_assert_ptr_nonnull(strstr(out, "no child with id \"nope\""));
    free(out);
    ck_assert_int_eq(ctl(&e, &out, "restart", NULL, NULL), 64);
    free(out);
    ck_assert_int_eq(ctl(&e, &out, "dance", NULL, NULL), 64);
    free(out);
    ck_assert_int_eq(ctl(&e, &out, "tables", NULL, NULL), 69); /* no etsmgrd in this config */
    ck_assert_ptr_nonnull(strstr(out, "etsmgrd is not running"));
    free(out);

    ck_assert_int_eq(ctl(&e, &out, "stop", NULL, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "stopped its children and exited"));
    free(out);
    int st = st_wait_exit(&e, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert(!sv_alive(q[0]) && !sv_alive(q[1]));
    ck_assert_int_eq(ctl(&e, &out, "status", NULL, NULL), 69);
    ck_assert_ptr_nonnull(strstr(out, "etssup is not running"));
    free(out);
    st_cleanup(&e);
}
END_TEST

START_TEST(test_ctl_tables)
{
    st_env e;
    st_init(&e);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0); /* etsmgrd + etscounterd */
    char *out = NULL;
    ck_assert_int_eq(ctl(&e, &out, "tables", NULL, NULL), 0);
    ck_assert_msg(strstr(out, "NAME") && strstr(out, "etscounter"), "%s", out);
    free(out);
    ck_assert_int_eq(ctl(&e, &out, "--json", "tables", NULL), 0);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "%s", out);
    free(out);
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0);
    ck_assert_ptr_nonnull(t0);
    ck_assert_str_eq(cJSON_GetObjectItem(t0, "name")->valuestring, "etscounter");
    cJSON_Delete(j);
    st_cleanup(&e);
}
END_TEST

/* del's hint about --force comes only when etsmgrd refused because a
 * living process owns the table (not_owner); a table that does not exist
 * or a daemon that is not there gets no such advice (it came after every
 * failure, and --force can destroy an owned table). */
START_TEST(test_ctl_del_hint_only_when_owned)
{
    st_env e;
    st_init(&e);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0); /* etsmgrd + etscounterd, which owns etscounter */
    char *out = NULL;
    ck_assert_int_ne(ctl(&e, &out, "del", "nosuch", NULL), 0);
    ck_assert_msg(strstr(out, "not_found") && !strstr(out, "--force"), "%s", out);
    free(out);
    ck_assert_int_ne(ctl(&e, &out, "del", "etscounter", NULL), 0);
    ck_assert_msg(strstr(out, "not_owner") && strstr(out, "only with --force"), "%s", out);
    free(out);
    st_cleanup(&e);
}
END_TEST

/* dump and load keep to --timeout while etsmgrd does not answer (it is
 * stopped), and say so with 70, like every other command; they waited
 * the library's 5 s whatever --timeout said, and load called a daemon
 * that does not answer "not running" (69). */
START_TEST(test_ctl_dump_load_keep_timeout)
{
    st_env e;
    st_init(&e);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    pid_t p[4];
    ck_assert_int_ge(st_pids(&e, p), 1);
    pid_t mgr = p[0];
    char *out = NULL;
    ck_assert_int_eq(ctl(&e, &out, "tables", NULL, NULL), 0); /* etsmgrd answers */
    ck_assert_msg(strstr(out, "etscounter"), "%s", out);
    free(out);
    ck_assert_int_eq(kill(mgr, SIGSTOP), 0);
    const char *cmd[][2] = {{"dump", "etscounter"}, {"load", "/nonexistent.etsimg"}};
    for (int i = 0; i < 2; i++) {
        int64_t t0 = tu_now_ms();
        int rc = ctl(&e, &out, "-t300", cmd[i][0], cmd[i][1]);
        int64_t took = tu_now_ms() - t0;
        ck_assert_msg(rc == 70 && strstr(out, "within 300 ms"), "%s: exit %d: %s", cmd[i][0], rc, out);
        ck_assert_msg(took < 4000, "%s: %lld ms for --timeout 300", cmd[i][0], (long long)took);
        free(out);
    }
    ck_assert_int_eq(kill(mgr, SIGCONT), 0);
    st_cleanup(&e);
}
END_TEST

/* env: what a program would resolve, and from where */
START_TEST(test_ctl_env)
{
    st_env e;
    st_init(&e);
    char *out = NULL;
    ck_assert_int_eq(ctl(&e, &out, "env", NULL, NULL), 0);
    ck_assert_msg(strstr(out, e.dir) && strstr(out, e.instance) && strstr(out, "from --runtime-dir") &&
                      strstr(out, "from --instance"),
                  "%s", out);
    free(out);
    int st = rc_sh(&out, 10000, "env -u ETSMGR_RUNTIME_DIR -u ETSMGR_INSTANCE XDG_RUNTIME_DIR=/nonexistent/x %s env",
                   e.ctl_bin);
    ck_assert_msg(rc_ok(st) && strstr(out, "/nonexistent/x/etsmgr\n") && strstr(out, "from $XDG_RUNTIME_DIR") &&
                      strstr(out, "from the default"),
                  "%s", out);
    free(out);
    st = rc_sh(&out, 10000, "ETSMGR_RUNTIME_DIR=/tmp/elsewhere ETSMGR_INSTANCE=other %s --json env", e.ctl_bin);
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(rc_ok(st) && j, "%s", out);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "runtime_dir")->valuestring, "/tmp/elsewhere");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "runtime_dir_from")->valuestring, "$ETSMGR_RUNTIME_DIR");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "instance")->valuestring, "other");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "instance_from")->valuestring, "$ETSMGR_INSTANCE");
    cJSON_Delete(j);
    free(out);
    /* an error names the instance and the runtime dir it tried */
    ck_assert_int_eq(ctl(&e, &out, "status", NULL, NULL), 69);
    ck_assert_msg(strstr(out, e.instance) && strstr(out, e.dir) && strstr(out, "etsmgrctl env"), "%s", out);
    free(out);
    st_cleanup(&e);
}
END_TEST

/* dump of an ordered_set: key order (bytewise, a prefix first), ranges
 * [from, to) with either end open, \xNN in a bound; a range of a set and
 * malformed bounds are usage errors (64).  Against etsmgrd alone. */
static tu_env D_env;
static int D_live;

static void d_cleanup(void)
{
    if (D_live) {
        D_live = 0;
        tu_env_cleanup(&D_env);
    }
}

/* D_env made, removed at exit (a failed check ends the test with exit()) */
static void d_begin(void)
{
    tu_env_init(&D_env);
    D_live = 1;
    atexit(d_cleanup);
}

static void d_start_mgr(void)
{
    char *mgr[] = {"etsmgrd", "--log-level", "warning", NULL};
    ck_assert_msg(tu_spawn_ready(&D_env, mgr, 15000) > 0, "etsmgrd did not become ready");
}

static etsmgr_client *d_connect(void)
{
    etsmgr_client *c = NULL;
    char msg[256] = "";
    ck_assert_msg(etsmgr_connect(NULL, NULL, &c, msg, sizeof msg) == 0, "%s", msg);
    return c;
}

/* etsmgrctl ARGS... (NULL-terminated) against D_env; the exit status, -1 if killed */
static int d_ctl(char **out, const char *a1, ...)
{
    char *argv[16] = {(char *)tu_bin("etsmgrctl", false), (char *)a1};
    int n = 2;
    va_list ap;
    va_start(ap, a1);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && n < 15)
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    int st = rc_run(argv, out, 30000);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void d_put(etsmgr_table *t, const char *key, size_t klen, const char *bytes, int64_t i)
{
    etsmgr_value v = bytes ? (etsmgr_value){.type = ETSMGR_BYTES, .data = bytes, .len = strlen(bytes)}
                           : (etsmgr_value){.type = ETSMGR_INT, .i = i};
    ck_assert_int_eq(etsmgr_table_insert(t, key, klen, &v), 0);
}

START_TEST(test_ctl_dump_ordered)
{
    d_begin();
    d_start_mgr();
    etsmgr_client *c = d_connect();
    etsmgr_table_opts o = {.access = ETSMGR_PROTECTED, .type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL, *set = NULL;
    ck_assert_msg(etsmgr_new_table(c, "jobs", &o, NULL, &t, NULL) == 0, "%s", etsmgr_client_message(c));
    o.type = ETSMGR_SET;
    ck_assert_msg(etsmgr_new_table(c, "plain", &o, NULL, &set, NULL) == 0, "%s", etsmgr_client_message(c));
    /* inserted out of order */
    d_put(t, "c", 1, "three", 0);
    d_put(t, "ab", 2, NULL, 12);
    d_put(t, "\xff" "z", 2, NULL, 255);
    d_put(t, "b", 1, NULL, 2);
    d_put(t, "a", 1, NULL, 1);
    /* a big-endian 7: keys that start with NULs are the application's too
     * (only an older etscounterd's request-id entries are bookkeeping,
     * tbl_is_bookkeeping); they were left out */
    d_put(t, "\0\0\0\7", 4, NULL, 7);
    d_put(set, "x", 1, NULL, 1);

    char *out = NULL;
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", NULL), 0);
    ck_assert_msg(strcmp(out, "table jobs:\n  \\x00\\x00\\x00\\x07 = 7\n  a = 1\n  ab = 12\n  b = 2\n  c = \"three\"\n"
                              "  \\xffz = 255\n") == 0,
                  "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--json", NULL), 0);
    ck_assert_msg(strcmp(out, "{\"\\u0000\\u0000\\u0000\\u0007\":7,\"a\":1,\"ab\":12,\"b\":2,\"c\":\"three\","
                              "\"\\udcffz\":255}\n") == 0,
                  "%s", out);
    free(out);
    /* and a range from one: what dump prints can be pasted back */
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--json", "--to", "\\x00\\x00\\x00\\x08", NULL), 0);
    ck_assert_msg(strcmp(out, "{\"\\u0000\\u0000\\u0000\\u0007\":7}\n") == 0, "%s", out);
    free(out);
    /* [ab, c): the bounds need not be keys of the table */
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--json", "--from", "ab", "--to", "c", NULL), 0);
    ck_assert_msg(strcmp(out, "{\"ab\":12,\"b\":2}\n") == 0, "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--json", "--from", "aa", "--to", "bb", NULL), 0);
    ck_assert_msg(strcmp(out, "{\"ab\":12,\"b\":2}\n") == 0, "%s", out);
    free(out);
    /* open ends */
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--json", "--to", "b", NULL), 0);
    ck_assert_msg(strcmp(out, "{\"\\u0000\\u0000\\u0000\\u0007\":7,\"a\":1,\"ab\":12}\n") == 0, "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--from", "b", NULL), 0);
    ck_assert_msg(strcmp(out, "table jobs, keys from b:\n  b = 2\n  c = \"three\"\n  \\xffz = 255\n") == 0, "%s",
                  out);
    free(out);
    /* \xNN in a bound: what dump prints can be pasted back */
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--from", "\\xffz", NULL), 0);
    ck_assert_msg(strcmp(out, "table jobs, keys from \\xffz:\n  \\xffz = 255\n") == 0, "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--from", "c", "--to", "\\xFF", NULL), 0);
    ck_assert_msg(strcmp(out, "table jobs, keys from c up to \\xff (not included):\n  c = \"three\"\n") == 0, "%s",
                  out);
    free(out);
    /* an empty range */
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--from", "c", "--to", "a", NULL), 0);
    ck_assert_msg(strstr(out, "(no entries)"), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--json", "--from", "\\xff\\xff", NULL), 0);
    ck_assert_str_eq(out, "{}\n");
    free(out);

    /* a set: whole dumps work, a range is a usage error that says why */
    ck_assert_int_eq(d_ctl(&out, "dump", "plain", NULL), 0);
    ck_assert_msg(strstr(out, "  x = 1\n"), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "plain", "--from", "a", NULL), 64);
    ck_assert_msg(strstr(out, "plain is a set") && strstr(out, "ordered_set"), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "plain", "--to", "a", "--json", NULL), 64);
    ck_assert_msg(strstr(out, "plain is a set") && !strchr(out, '{'), "%s", out);
    free(out);
    /* bad bounds, and --from elsewhere: usage errors before any request */
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--from", "", NULL), 64);
    ck_assert_msg(strstr(out, "1 to 255 bytes"), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--to", "a\\q", NULL), 64);
    ck_assert_msg(strstr(out, "\\xNN"), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--to", "\\x4", NULL), 64);
    free(out);
    char big[300];
    memset(big, 'k', 256);
    big[256] = 0;
    ck_assert_int_eq(d_ctl(&out, "dump", "jobs", "--from", big, NULL), 64);
    ck_assert_msg(strstr(out, "at most 255 bytes"), "%s", out);
    free(out);
    ck_assert_msg(d_ctl(&out, "tables", "--from", "a", NULL) == 64 && strstr(out, "--from and --to go with dump"), "%s",
                  out);
    free(out);

    etsmgr_client_close(c); /* and the tables it holds */
    d_cleanup();
}
END_TEST

/* the "entries" of the --json object in out, or of its tables[0] */
static double d_json_entries(const char *out)
{
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "%s", out);
    const cJSON *o = cJSON_GetObjectItem(j, "tables") ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0) : j;
    const cJSON *e = cJSON_GetObjectItem(o, "entries");
    ck_assert_msg(cJSON_IsNumber(e), "%s", out);
    double v = e->valuedouble;
    cJSON_Delete(j);
    return v;
}

/* Regression: save and snapshot counted the request-id records of
 * update_counter_once as entries ("4 entries" for a counter with 3 ids
 * kept) while load and tables said 1, and printed "1 entries".  Every
 * command counts the entries now, in words and in --json. */
START_TEST(test_ctl_entry_counts)
{
    d_begin();
    char snapdir[200], file[200];
    snprintf(snapdir, sizeof snapdir, "%s/snap", D_env.dir);
    snprintf(file, sizeof file, "%s/counts.etsimg", D_env.dir);
    char *mgr[] = {"etsmgrd", "--log-level", "warning", "--snapshot-dir", snapdir, NULL};
    ck_assert_msg(tu_spawn_ready(&D_env, mgr, 15000) > 0, "etsmgrd did not become ready");
    etsmgr_client *c = d_connect();
    etsmgr_table_opts o = {.access = ETSMGR_PROTECTED};
    etsmgr_table *t = NULL;
    ck_assert_msg(etsmgr_new_table(c, "counts", &o, NULL, &t, NULL) == 0, "%s", etsmgr_client_message(c));
    for (int i = 0; i < 3; i++) {
        etsmgr_once once = {.keep_until_ms = etsmgr_mono_ms() + 600000};
        once.rid[0] = (uint8_t)(i + 1);
        int64_t v;
        int dup;
        ck_assert_int_eq(etsmgr_table_update_counter_once(t, "n", 1, 1, &once, &v, &dup), 0);
    }

    char *out = NULL;
    ck_assert_int_eq(d_ctl(&out, "save", "counts", file, NULL), 0);
    ck_assert_msg(strstr(out, "saved table counts (1 entry) to "), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "--json", "save", "counts", file, NULL), 0);
    ck_assert_int_eq((int)d_json_entries(out), 1);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "snapshot", NULL), 0);
    ck_assert_msg(strstr(out, "  counts: 1 entry\n"), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "--json", "snapshot", NULL), 0);
    ck_assert_int_eq((int)d_json_entries(out), 1);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "--json", "tables", NULL), 0);
    ck_assert_int_eq((int)d_json_entries(out), 1);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "load", file, "--as", "copy", NULL), 0);
    ck_assert_msg(strstr(out, "loaded table copy (1 entry) from "), "%s", out);
    free(out);
    ck_assert_int_eq(d_ctl(&out, "--json", "load", file, "--as", "copy2", NULL), 0);
    ck_assert_int_eq((int)d_json_entries(out), 1);
    free(out);
    /* and more than one: "entries" */
    etsmgr_value two = {.type = ETSMGR_INT, .i = 2};
    ck_assert_int_eq(etsmgr_table_insert(t, "m", 1, &two), 0);
    ck_assert_int_eq(d_ctl(&out, "save", "counts", file, NULL), 0);
    ck_assert_msg(strstr(out, "saved table counts (2 entries) to "), "%s", out);
    free(out);

    etsmgr_client_close(c);
    d_cleanup();
}
END_TEST

/* Regression: when a save failed at the fsync of FILE's directory, after
 * its rename, etsmgrctl said "FILE is unchanged" while FILE was the new
 * image and the old one gone.  Now it says the table is saved but not
 * durably (a power cut may undo the rename), exit 73.  The failure is the
 * test hook ETSMGR_TEST_DIR_FSYNC_ERRNO (img_test_dir_fsync_errno). */
START_TEST(test_ctl_save_not_durable)
{
    d_begin();
    char file[200];
    snprintf(file, sizeof file, "%s/nd.etsimg", D_env.dir);
    d_start_mgr();
    etsmgr_client *c = d_connect();
    etsmgr_table_opts o = {.access = ETSMGR_PROTECTED};
    etsmgr_table *t = NULL;
    ck_assert_msg(etsmgr_new_table(c, "nd", &o, NULL, &t, NULL) == 0, "%s", etsmgr_client_message(c));
    d_put(t, "a", 1, NULL, 1);
    char *out = NULL;
    ck_assert_int_eq(d_ctl(&out, "save", "nd", file, NULL), 0);
    free(out);
    d_put(t, "b", 1, NULL, 2);
    ck_assert_int_eq(setenv("ETSMGR_TEST_DIR_FSYNC_ERRNO", "5", 1), 0); /* EIO */
    int st = d_ctl(&out, "save", "nd", file, NULL);
    unsetenv("ETSMGR_TEST_DIR_FSYNC_ERRNO");
    ck_assert_msg(st == 73, "exit %d: %s", st, out);
    ck_assert_msg(strstr(out, "table nd saved to ") && strstr(out, "(2 entries), but not durably: ") &&
                      strstr(out, "power cut") && strstr(out, strerror(EIO)),
                  "%s", out);
    ck_assert_msg(!strstr(out, "unchanged"), "%s", out);
    free(out);
    /* what it says: the file is the new image */
    img *im = NULL;
    char why[256] = "";
    ck_assert_msg(img_read(file, &im, why, sizeof why) == 0, "%s", why);
    ck_assert_uint_eq(im->info.entries, 2);
    img_free(im);
    etsmgr_client_close(c);
    d_cleanup();
}
END_TEST

/* the waiters' count in `tables --json` (the table "q") */
static bool d_waiters_are(void *arg)
{
    char *out = NULL;
    int want = *(int *)arg, got = -1;
    if (d_ctl(&out, "--json", "tables", NULL) == 0) {
        cJSON *j = cJSON_Parse(out);
        const cJSON *tb = j ? cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0) : NULL;
        got = tb ? cJSON_GetArraySize(cJSON_GetObjectItem(tb, "waiters")) : -1;
        cJSON_Delete(j);
    }
    free(out);
    return got == want;
}

/* Regression: WAITERS cut a long queue at 64 characters with no mark, so
 * a dozen standbys could read as seven; now the cell ends with "(+N more)"
 * and N is what it left out, while --json still lists them all. */
START_TEST(test_ctl_waiters_cut)
{
    /* the first owns "q", the others wait: 24 pids of at least 3 digits
     * and their commas are more than the cell's 64 bytes, whatever the
     * pids' size */
    enum { NKIDS = 25 };
    d_begin();
    d_start_mgr();
    pid_t kids[NKIDS];
    for (int i = 0; i < NKIDS; i++) {
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test leaves none behind */
            etsmgr_client *c = NULL;
            etsmgr_table *t = NULL;
            char msg[256];
            if (etsmgr_connect(NULL, NULL, &c, msg, sizeof msg) != 0 ||
                etsmgr_new_table_wait(c, "q", NULL, NULL, -1, &t, NULL) != 0)
                _exit(1);
            for (;;)
                pause();
        }
        /* one at a time: the first owns the table before the next asks */
        int want = i;
        ck_assert_msg(tu_eventually(d_waiters_are, &want, 15000), "%d waiters did not show", want);
    }
    char *out = NULL;
    ck_assert_int_eq(d_ctl(&out, "tables", NULL), 0);
    const char *hdr = strstr(out, "NAME "), *row = strstr(out, "\nq ");
    ck_assert_msg(hdr && row, "%s", out);
    /* the cell (at WAITERS' column): the queue's first pids in order, then
     * the mark counting the rest */
    const char *cell = row + 1 + (strstr(hdr, "WAITERS") - hdr), *p = cell;
    int shown = 0;
    while (shown < NKIDS - 1 && strtol(p, (char **)&p, 10) == kids[shown + 1]) {
        shown++;
        if (*p != ',')
            break;
        p++;
    }
    char mark[32];
    snprintf(mark, sizeof mark, " (+%d more) ", NKIDS - 1 - shown);
    ck_assert_msg(shown > 0 && shown < NKIDS - 1 && strncmp(p, mark, strlen(mark)) == 0,
                  "%d pids, then not \"%s\": %s", shown, mark, out);
    ck_assert_int_le(p + strlen(mark) - 1 - cell, 63); /* the cell's 64 bytes, with its NUL */
    free(out);
    int all = NKIDS - 1;
    ck_assert(d_waiters_are(&all));
    for (int i = 0; i < NKIDS; i++)
        tu_kill9(kids[i]);
    d_cleanup();
}
END_TEST

START_TEST(test_ctl_help_version)
{
    st_env e;
    st_init(&e);
    char *out = NULL;
    char *h[] = {e.ctl_bin, "--help", NULL};
    ck_assert(rc_ok(rc_run(h, &out, 10000)));
    ck_assert_ptr_nonnull(strstr(out, "restart ID"));
    free(out);
    char *v[] = {e.ctl_bin, "--version", NULL};
    ck_assert(rc_ok(rc_run(v, &out, 10000)));
    ck_assert_ptr_nonnull(strstr(out, "etsmgrctl " ETSMGR_VERSION_STRING));
    free(out);
    char *n[] = {e.ctl_bin, NULL};
    int st = rc_run(n, &out, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 64);
    free(out);
    char *t[] = {e.ctl_bin, "--timeout", "soon", "status", NULL};
    st = rc_run(t, &out, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 64);
    free(out);
    st_cleanup(&e);
}
END_TEST

/* dump --json is valid JSON, so UTF-8, whatever bytes the keys and values
 * hold: well-formed UTF-8 as it is, any other byte XX as \udcXX (it printed
 * the raw bytes, which a JSON parser rejects: Python's json.load said
 * "invalid start byte" for a key \xff), quotes, backslashes and control
 * bytes escaped; two keys never print the same. */
static bool d_utf8_ok(const unsigned char *p)
{
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xc2))
            return false;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return false;
    }
    return true;
}

START_TEST(test_ctl_dump_json_any_bytes)
{
    d_begin();
    d_start_mgr();
    etsmgr_client *c = d_connect();
    etsmgr_table_opts o = {.access = ETSMGR_PROTECTED, .type = ETSMGR_ORDERED_SET};
    etsmgr_table *t = NULL;
    ck_assert_msg(etsmgr_new_table(c, "bin", &o, NULL, &t, NULL) == 0, "%s", etsmgr_client_message(c));
    /* é in UTF-8, é in Latin-1, a UTF-16 surrogate in UTF-8 form (not
     * UTF-8), an overlong '/', a cut sequence, quotes and a control byte */
    d_put(t, "caf\xc3\xa9", 5, "\xe9t\xe9", 0);
    d_put(t, "q\"\\", 3, "\x1b[1m", 0);
    d_put(t, "\xc3\xa9", 2, NULL, 1);
    d_put(t, "\xe9", 1, NULL, 2);
    d_put(t, "\xed\xa0\x80", 3, NULL, 3);
    d_put(t, "\xc0\xaf", 2, NULL, 4);
    d_put(t, "\xf0\x9f\x98\x80", 4, NULL, 5);
    d_put(t, "\xf0\x9f", 2, NULL, 6);
    char *out = NULL;
    ck_assert_int_eq(d_ctl(&out, "dump", "bin", "--json", NULL), 0);
    ck_assert_msg(d_utf8_ok((const unsigned char *)out), "not UTF-8: %s", out);
    const char *want = "{\"caf\xc3\xa9\":\"\\udce9t\\udce9\",\"q\\\"\\\\\":\"\\u001b[1m\",\"\\udcc0\\udcaf\":4,"
                       "\"\xc3\xa9\":1,\"\\udce9\":2,\"\\udced\\udca0\\udc80\":3,\"\\udcf0\\udc9f\":6,"
                       "\"\xf0\x9f\x98\x80\":5}\n";
    ck_assert_msg(strcmp(out, want) == 0, "got  %swant %s", out, want);
    free(out);
    etsmgr_client_close(c);
    d_cleanup();
}
END_TEST

/* Output that cannot be written is an error (74, said on stderr), not a
 * success: `dump > /dev/full` exited 0 with nothing written.  A reader that
 * goes away is the exception a pipe into head makes: with SIGPIPE at its
 * default etsmgrctl dies of it quietly, like any Unix tool; with SIGPIPE
 * ignored (a caller's choice that its children inherit) it stops the walk at
 * once and exits 74 without a word (it walked the whole table into EPIPE,
 * and said 0). */
START_TEST(test_ctl_output_errors)
{
    d_begin();
    d_start_mgr();
    etsmgr_client *c = d_connect();
    etsmgr_table_opts o = {.access = ETSMGR_PROTECTED};
    etsmgr_table *t = NULL;
    ck_assert_msg(etsmgr_new_table(c, "many", &o, NULL, &t, NULL) == 0, "%s", etsmgr_client_message(c));
    for (int i = 0; i < 20000; i++) { /* far more than a pipe holds */
        char k[32];
        d_put(t, k, (size_t)snprintf(k, sizeof k, "key-%08d", i), NULL, i);
    }
    const char *ctl = tu_bin("etsmgrctl", false);
    char *out = NULL;
    int st = rc_sh(&out, 30000, "%s dump many >/dev/full", ctl);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 74 && strstr(out, "writing the output: No space left"),
                  "exit %d: %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    free(out);
    st = rc_sh(&out, 30000, "%s --json tables >/dev/full", ctl);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 74, "exit %d: %s", WIFEXITED(st) ? WEXITSTATUS(st) : -1, out);
    free(out);
    /* head takes one byte and goes; $? of etsmgrctl and its stderr kept */
    st = rc_sh(&out, 30000, "cd %s && trap '' PIPE && { %s dump many 2>ctl.err; echo $? >ctl.rc; } | head -c 1 "
               ">/dev/null; cat ctl.rc; echo \"stderr[$(cat ctl.err)]\"", D_env.dir, ctl);
    ck_assert_msg(rc_ok(st) && strcmp(out, "74\nstderr[]\n") == 0, "%s", out);
    free(out);
    st = rc_sh(&out, 30000, "cd %s && { %s dump many 2>ctl.err; echo $? >ctl.rc; } | head -c 1 >/dev/null; "
               "cat ctl.rc; echo \"stderr[$(cat ctl.err)]\"", D_env.dir, ctl);
    ck_assert_msg(rc_ok(st) && strcmp(out, "141\nstderr[]\n") == 0, "%s", out); /* 128 + SIGPIPE */
    free(out);
    /* stdout a stream socket whose peer reads a byte and closes (systemd's
     * StandardOutput=socket): quiet as for a pipe (it said "write error";
     * such a socket polls POLLHUP, not a pipe's POLLERR) */
    int sv[2], errp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ck_assert_int_eq(pipe(errp), 0);
    pid_t kid = fork();
    ck_assert_int_ge(kid, 0);
    if (kid == 0) {
        dup2(sv[1], 1);
        dup2(errp[1], 2);
        close(sv[0]);
        close(errp[0]);
        signal(SIGPIPE, SIG_IGN);
        execl(ctl, "etsmgrctl", "dump", "many", (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    close(errp[1]);
    char b;
    ck_assert_int_eq(read(sv[0], &b, 1), 1);
    close(sv[0]);
    char err[512];
    ssize_t n = read(errp[0], err, sizeof err - 1);
    close(errp[0]);
    err[n > 0 ? n : 0] = 0;
    int kst;
    ck_assert_int_eq(waitpid(kid, &kst, 0), kid);
    ck_assert_msg(WIFEXITED(kst) && WEXITSTATUS(kst) == 74 && err[0] == 0, "status 0x%x, stderr [%s]", kst, err);
    etsmgr_client_close(c);
    d_cleanup();
}
END_TEST

/* One meaning per exit status, whichever command: a name no table can have
 * is a usage error (64) before any request (save said 64, dump and del
 * 70); a table that does not exist is 66 (save said 66, dump and del 70);
 * a child etssup does not have is 64 (kill said 64, restart 70). */
START_TEST(test_ctl_exit_status_per_meaning)
{
    d_begin();
    d_start_mgr();
    char *out = NULL;
    const char *bad[] = {"a b", "..", "../x", "\x1b[31m"};
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(d_ctl(&out, "dump", bad[i], NULL) == 64 && strstr(out, "is not a table name"), "%s", out);
        free(out);
        ck_assert_msg(d_ctl(&out, "del", bad[i], NULL) == 64 && strstr(out, "is not a table name"), "%s", out);
        free(out);
        ck_assert_msg(d_ctl(&out, "save", bad[i], "/nonexistent/x", NULL) == 64, "%s", out);
        free(out);
        ck_assert_msg(d_ctl(&out, "load", "/nonexistent/x", "--as", bad[i], NULL) == 64, "%s", out);
        free(out);
    }
    ck_assert_msg(d_ctl(&out, "dump", "nosuch", NULL) == 66 && strstr(out, "not_found"), "%s", out);
    free(out);
    ck_assert_msg(d_ctl(&out, "del", "nosuch", NULL) == 66 && strstr(out, "not_found"), "%s", out);
    free(out);
    ck_assert_msg(d_ctl(&out, "save", "nosuch", "/nonexistent/x", NULL) == 66, "%s", out);
    free(out);
    d_cleanup();
}
END_TEST

/* A stand-in etsmgrd that answers every tables request with the same page
 * and "more": etsmgrctl tables asked for the next page for ever (a daemon's
 * bug or not an etsmgrd at all); now a page that does not advance is a bad
 * reply (70), and --timeout bounds the pages together. */
/* A stand-in on a listening socket: every connection gets reply to its
 * first request, then is closed; until the test shuts the socket down. */
struct d_canned {
    int ls;
    const char *reply;
};

static void *d_canned_answer(void *arg)
{
    const struct d_canned *c = arg;
    int ls = c->ls;
    for (;;) {
        struct pollfd p = {.fd = ls, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 || (p.revents & (POLLHUP | POLLERR | POLLNVAL)))
            return NULL; /* the test shut the listener down */
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        char *req = NULL;
        size_t len;
        int nfds = 0;
        if (frame_read(fd, &req, &len, NULL, &nfds, 0, 5000) == 0)
            (void)frame_write(fd, c->reply, strlen(c->reply), NULL, 0);
        free(req);
        close(fd);
    }
}

/* the stand-in c answering on DIR/sock, in thread *th */
static void d_canned_start(struct d_canned *c, const char *sock, pthread_t *th)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s", D_env.dir, sock);
    char err[256];
    c->ls = sock_listen_unix(path, 0600, 16, err, sizeof err);
    ck_assert_msg(c->ls >= 0, "%s", err);
    ck_assert_int_eq(pthread_create(th, NULL, d_canned_answer, c), 0);
}

static void d_canned_stop(struct d_canned *c, pthread_t th)
{
    shutdown(c->ls, SHUT_RDWR);
    pthread_join(th, NULL);
    close(c->ls);
}

/* status against an etssup whose answer has neither its pid nor its
 * children is a failure (70), said; it printed "etssup pid 0, instance ?"
 * and an empty table, and exited 0 */
START_TEST(test_ctl_status_needs_pid_and_children)
{
    d_begin();
    struct d_canned c = {.reply = "{\"ok\":true,\"id\":1}"};
    pthread_t th;
    d_canned_start(&c, "etssup.sock", &th);
    char *out = NULL;
    char *argv[] = {(char *)tu_bin("etsmgrctl", false), "status", NULL};
    int st = rc_run(argv, &out, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 70 && strstr(out, "without its pid or its children"),
                  "status 0x%x: %s", st, out);
    free(out);
    d_canned_stop(&c, th);
    d_cleanup();
}
END_TEST

START_TEST(test_ctl_tables_pages_must_advance)
{
    d_begin();
    struct d_canned c = {.reply = "{\"ok\":true,\"id\":1,\"pid\":1,\"instance\":\"x\",\"connections\":1,"
                                  "\"more\":true,\"tables\":[{\"name\":\"a\"}]}"};
    pthread_t th;
    d_canned_start(&c, "etsmgrd.sock", &th);
    char *out = NULL;
    int64_t t0 = tu_now_ms();
    char *argv[] = {(char *)tu_bin("etsmgrctl", false), "--timeout", "3000", "tables", NULL};
    int st = rc_run(argv, &out, 10000);
    ck_assert_msg(st != -1, "etsmgrctl tables still asking after 10 s: %s", out ? out : "");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 70 && strstr(out, "does not advance"), "%s", out);
    ck_assert_int_lt(tu_now_ms() - t0, 5000);
    free(out);
    d_canned_stop(&c, th);
    d_cleanup();
}
END_TEST

Suite *etsmgrctl_suite(void)
{
    Suite *s = suite_create("etsmgrctl");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ctl_status_restart_stop);
    tcase_add_test(tc, test_ctl_tables);
    tcase_add_test(tc, test_ctl_del_hint_only_when_owned);
    tcase_add_test(tc, test_ctl_dump_load_keep_timeout);
    tcase_add_test(tc, test_ctl_env);
    tcase_add_test(tc, test_ctl_dump_ordered);
    tcase_add_test(tc, test_ctl_entry_counts);
    tcase_add_test(tc, test_ctl_save_not_durable);
    tcase_add_test(tc, test_ctl_waiters_cut);
    tcase_add_test(tc, test_ctl_help_version);
    tcase_add_test(tc, test_ctl_dump_json_any_bytes);
    tcase_add_test(tc, test_ctl_output_errors);
    tcase_add_test(tc, test_ctl_exit_status_per_meaning);
    tcase_add_test(tc, test_ctl_tables_pages_must_advance);
    tcase_add_test(tc, test_ctl_status_needs_pid_and_children);
    suite_add_tcase(s, tc);
    return s;
}

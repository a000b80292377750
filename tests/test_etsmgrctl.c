/* SPDX-License-Identifier: Apache-2.0 */
/* test_etsmgrctl.c: etsmgrctl against etssup (stub children) and the real
 * etsmgrd: aligned human output, --json, restart, stop, kill, env, and the
 * exit statuses 64 (usage), 69 (not reachable), 70 (error reply). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "runcap.h"
#include "test_sup.h"

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

    ck_assert_int_eq(ctl(&e, &out, "restart", "nope", NULL), 70);
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

Suite *etsmgrctl_suite(void)
{
    Suite *s = suite_create("etsmgrctl");
    TCase *tc = tcase_create("cli");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ctl_status_restart_stop);
    tcase_add_test(tc, test_ctl_tables);
    tcase_add_test(tc, test_ctl_env);
    tcase_add_test(tc, test_ctl_help_version);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_snapshot_sup.c: the reboot test with the whole stack as it runs in
 * production: etssup with its built-in default (etsmgrd, then etscounterd),
 * the snapshot directory given the way the systemd unit gives it
 * ($ETSMGR_SNAPSHOT_DIR, inherited through etssup), a clean stop with
 * `etsmgrctl stop` (etssup stops etscounterd before etsmgrd, whose SIGTERM
 * snapshot then sees the final count), the instance's /dev/shm objects
 * removed (the reboot), and a new etssup: the count comes back from the
 * snapshot.  test_snapshot.c has the variants with the daemons alone
 * (kill -9 with an interval snapshot, a table in shared memory winning). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runcap.h"
#include "test_sup.h"

static long ss_cli(st_env *e, const char *cmd)
{
    char bin[600];
    snprintf(bin, sizeof bin, "%s/etscounter", e->bindir);
    char *argv[] = {bin, "--runtime-dir", e->dir, "--instance", e->instance, "--timeout", "10000", "--json",
                    (char *)cmd, NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 20000);
    ck_assert_msg(rc_ok(st), "etscounter %s: status 0x%x: %s", cmd, st, out ? out : "");
    cJSON *j = cJSON_Parse(out);
    ck_assert_msg(j != NULL, "etscounter --json %s printed %s", cmd, out);
    const cJSON *v = strcmp(cmd, "check") == 0
                         ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "data"), "count")
                         : cJSON_GetObjectItemCaseSensitive(j, "count");
    ck_assert_msg(cJSON_IsNumber(v), "etscounter --json %s printed %s", cmd, out);
    long n = (long)v->valuedouble;
    cJSON_Delete(j);
    free(out);
    return n;
}

START_TEST(test_reboot_under_etssup)
{
    st_env e;
    st_init(&e);
    char snap[200];
    snprintf(snap, sizeof snap, "%s/state", e.dir);
    setenv("ETSMGR_SNAPSHOT_DIR", snap, 1);
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    for (long i = 1; i <= 5; i++)
        ck_assert_int_eq(ss_cli(&e, "count"), i);
    /* a clean stop of the whole stack */
    char *out = NULL;
    ck_assert_msg(rc_ok(rc_sh(&out, 60000, "'%s' --runtime-dir '%s' --instance '%s' stop", e.ctl_bin, e.dir,
                              e.instance)), "etsmgrctl stop: %s", out);
    free(out);
    int st = st_wait_exit(&e, 30000);
    ck_assert_msg(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "etssup exit status 0x%x", st);
    /* the reboot: the instance's shared memory is gone */
    ck_assert(rc_ok(rc_sh(NULL, 5000, "rm -f /dev/shm/'%s'.* /dev/shm/'%s':*", e.instance, e.instance)));
    ck_assert(rc_ok(rc_sh(NULL, 5000, "! ls -d /dev/shm/'%s'* 2>/dev/null", e.instance)));
    ck_assert_int_gt(st_start_ex(&e, true, 20000), 0);
    ck_assert_int_eq(ss_cli(&e, "check"), 5);
    ck_assert_int_eq(ss_cli(&e, "count"), 6);
    char *log = rc_slurp(e.logpath);
    size_t ll = log ? strlen(log) : 0;
    const char *tail = ll > 1500 ? log + ll - 1500 : log ? log : "";
    ck_assert_msg(log && strstr(log, "snapshot (SIGTERM): 1 table(s) saved"), "no stop snapshot: ...%s", tail);
    ck_assert_msg(strstr(log, "restored table=etscounter (") && strstr(log, " old: orphaned until"),
                  "no restore: ...%s", tail);
    free(log);
    unsetenv("ETSMGR_SNAPSHOT_DIR");
    st_cleanup(&e);
}
END_TEST

Suite *snapshot_sup_suite(void)
{
    Suite *s = suite_create("snapshot_sup");
    TCase *tc = tcase_create("reboot");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reboot_under_etssup);
    suite_add_tcase(s, tc);
    return s;
}

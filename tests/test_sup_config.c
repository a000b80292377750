/* SPDX-License-Identifier: Apache-2.0 */
/* test_sup_config.c: every kind of configuration mistake makes etssup exit
 * 78 naming the field's JSON path, before it creates anything; and the
 * built-in default is exactly supervisor/etssup.json. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "runcap.h"
#include "test_sup.h"
#include "../supervisor/etssup/sup.h"

/* Each: a configuration (STUB is replaced by the stub's path) and the text
 * the message must contain. */
static const struct {
    const char *json, *want;
} cases[] = {
    {"this is not json", "line 1, column 1: not valid JSON"},
    {"{\"children\": [\n  {\"id\": \"a\",, }\n]}", "line 2"},
    {"[1,2]", "(top level): must be a JSON object"},
    {"{}", "children: missing"},
    {"{\"children\": []}", "children: must be an array of 1 to"},
    {"{\"children\": {}}", "children: must be an array"},
    {"{\"strategy\": \"one_for_two\", \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}",
     "strategy: must be \"one_for_one\", \"one_for_all\" or \"rest_for_one\", not \"one_for_two\""},
    {"{\"intensity\": -1, \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}", "intensity: must be between 0"},
    {"{\"intensity\": 1.5, \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}", "intensity: must be a whole number"},
    {"{\"period\": 0, \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}", "period: must be between 1"},
    {"{\"period\": \"10\", \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}", "period: must be a whole number"},
    {"{\"start_timeout\": 0, \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}", "start_timeout: must be between"},
    {"{\"strategi\": \"one_for_one\", \"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]}]}", "strategi: unknown field"},
    {"{\"children\": [42]}", "children[0]: must be an object"},
    {"{\"children\": [{\"argv\":[\"STUB\"]}]}", "children[0].id: missing"},
    {"{\"children\": [{\"id\":\"a b\",\"argv\":[\"STUB\"]}]}", "children[0].id: must be a name"},
    {"{\"children\": [{\"id\":\"a\"}]}", "children[0].argv: missing"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[]}]}", "children[0].argv: must be a non-empty array"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\", 3]}]}", "children[0].argv[1]: must be a string"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"/nonexistent/prog\"]}]}",
     "children[0].argv[0]: \"/nonexistent/prog\" is not an executable file"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"no-such-program-xyz\"]}]}",
     "children[0].argv[0]: no executable \"no-such-program-xyz\""},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"restart\":\"sometimes\"}]}",
     "children[0].restart: must be \"permanent\", \"transient\" or \"temporary\", not \"sometimes\""},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"shutdown\":\"later\"}]}",
     "children[0].shutdown: must be a number of milliseconds or \"brutal_kill\""},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"shutdown\":-5}]}", "children[0].shutdown: must be between 0"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"ready\":\"maybe\"}]}",
     "children[0].ready: must be \"notify\" or \"none\""},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"start_timeout\":true}]}",
     "children[0].start_timeout: must be a whole number"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"shutdwon\":5}]}", "children[0].shutdwon: unknown field"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"]},{\"id\":\"a\",\"argv\":[\"STUB\"]}]}",
     "children[1].id: \"a\" is already the id of children[0]"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":\"x\"}]}", "children[0].sockets: must be an array"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":[{\"path\":\"a.sock\"}]}]}",
     "children[0].sockets[0].name: missing"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":[{\"name\":\"a:b\",\"path\":\"a.sock\"}]}]}",
     "children[0].sockets[0].name: must be a name"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":[{\"name\":\"a\",\"path\":\"/tmp/a.sock\"}]}]}",
     "children[0].sockets[0].path: must be a file name in the runtime dir"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":[{\"name\":\"a\",\"path\":\"etssup.sock\"}]}]}",
     "children[0].sockets[0].path: \"etssup.sock\" is reserved"},
    /* a child named etssup: etsmgrctl kill etssup would signal the supervisor */
    {"{\"children\": [{\"id\":\"etssup\",\"argv\":[\"STUB\"]}]}", "children[0].id: \"etssup\" is reserved"},
    /* etssup's own generation file: accepted once, etssup then exited 70 at start */
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":[{\"name\":\"a\",\"path\":\"etssup.generation\"}]}]}",
     "children[0].sockets[0].path: \"etssup.generation\" is reserved"},
    {"{\"children\": [{\"id\":\"a\",\"argv\":[\"STUB\"],\"sockets\":[{\"name\":\"a\",\"path\":\"x.sock\"}]},"
     "{\"id\":\"b\",\"argv\":[\"STUB\"],\"sockets\":[{\"name\":\"b\",\"path\":\"x.sock\"}]}]}",
     "children[1].sockets[0].path: \"x.sock\" is already used by children[0].sockets[0]"},
};

static char *subst(const char *json, const char *stub)
{
    size_t cap = strlen(json) + 8 * strlen(stub) + 1;
    char *out = malloc(cap), *o = out;
    for (const char *p = json; *p;) {
        if (strncmp(p, "STUB", 4) == 0) {
            o += sprintf(o, "%s", stub);
            p += 4;
        } else
            *o++ = *p++;
    }
    *o = 0;
    return out;
}

START_TEST(test_config_error)
{
    st_env e;
    st_init(&e);
    char *json = subst(cases[_i].json, e.stub);
    st_config(&e, "%s", json);
    free(json);
    char rtdir[200];
    snprintf(rtdir, sizeof rtdir, "%s/rt", e.dir); /* must not come into existence */
    char *argv[] = {e.sup_bin, "--config", e.config, "--runtime-dir", rtdir, "--instance", e.instance, NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 78, "case %d: wait status 0x%x, output:\n%s", _i, st, out);
    ck_assert_msg(strstr(out, cases[_i].want) != NULL, "case %d: want \"%s\" in:\n%s", _i, cases[_i].want, out);
    ck_assert_msg(strstr(out, "nothing was started") != NULL, "%s", out);
    ck_assert_msg(strstr(out, e.config) != NULL, "the message names the file:\n%s", out);
    struct stat sb;
    ck_assert_int_ne(stat(rtdir, &sb), 0);
    free(out);
    st_cleanup(&e);
}
END_TEST

START_TEST(test_config_missing_file)
{
    st_env e;
    st_init(&e);
    char *argv[] = {e.sup_bin, "--config", "/nonexistent/etssup.json", NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 10000);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 78, "0x%x %s", st, out);
    ck_assert_ptr_nonnull(strstr(out, "/nonexistent/etssup.json: cannot open it"));
    free(out);
    st_cleanup(&e);
}
END_TEST

/* several mistakes: all of them are reported, not only the first */
START_TEST(test_config_all_mistakes)
{
    sup_config cfg;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int n = sup_config_parse("{\"strategy\":1,\"intensity\":-2,\"children\":[{\"id\":\"\",\"argv\":[\"/bin/sh\"],"
                             "\"restart\":\"never\"}]}",
                             "t", NULL, &cfg, f);
    fclose(f);
    ck_assert_int_eq(n, 4);
    ck_assert_ptr_nonnull(strstr(buf, "t: strategy:"));
    ck_assert_ptr_nonnull(strstr(buf, "t: intensity:"));
    ck_assert_ptr_nonnull(strstr(buf, "t: children[0].id:"));
    ck_assert_ptr_nonnull(strstr(buf, "t: children[0].restart:"));
    free(buf);
}
END_TEST

START_TEST(test_config_defaults)
{
    sup_config cfg;
    int n = sup_config_parse("{\"children\":[{\"id\":\"x\",\"argv\":[\"/bin/sh\",\"-c\",\"true\"]}]}", "t", NULL,
                             &cfg, stderr);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(cfg.strategy, SUP_ONE_FOR_ONE);
    ck_assert_int_eq(cfg.intensity, SUP_DEFAULT_INTENSITY);
    ck_assert_int_eq(cfg.period_s, SUP_DEFAULT_PERIOD);
    ck_assert_int_eq(cfg.children[0].restart, SUP_PERMANENT);
    ck_assert_int_eq(cfg.children[0].shutdown_ms, SUP_DEFAULT_SHUTDOWN);
    ck_assert_int_eq(cfg.children[0].ready, SUP_READY_NOTIFY);
    ck_assert_int_eq(cfg.children[0].start_timeout_ms, SUP_DEFAULT_START_TIMEOUT);
    ck_assert_int_eq(cfg.children[0].argc, 3);
    ck_assert_str_eq(cfg.children[0].argv[2], "true");
    ck_assert_ptr_null(cfg.children[0].argv[3]);
    sup_config_free(&cfg);
    n = sup_config_parse("{\"children\":[{\"id\":\"x\",\"argv\":[\"sh\"],\"shutdown\":\"brutal_kill\"}]}", "t",
                         "/nonexistent", &cfg, stderr);
    ck_assert_int_eq(n, 0); /* found in $PATH */
    ck_assert_int_eq(cfg.children[0].shutdown_ms, SUP_BRUTAL_KILL);
    ck_assert_ptr_nonnull(strstr(cfg.children[0].exe, "/sh"));
    sup_config_free(&cfg);
}
END_TEST

/* supervisor/etssup.json is the built-in default, and it is valid next to
 * the built programs */
START_TEST(test_default_matches_file)
{
    const char *src = getenv("ETSMGR_SRCDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/supervisor/etssup.json", src ? src : ".");
    char *text = rc_slurp(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    cJSON *a = cJSON_Parse(text), *b = cJSON_Parse(sup_default_config);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_msg(cJSON_Compare(a, b, 1), "supervisor/etssup.json differs from the built-in default");
    cJSON_Delete(a);
    cJSON_Delete(b);
    free(text);
    const char *bindir = getenv("ETSMGR_BINDIR");
    sup_config cfg;
    ck_assert_int_eq(sup_config_load(NULL, bindir ? bindir : "build/bin", &cfg, stderr), 0);
    ck_assert_int_eq(cfg.nchildren, 2);
    ck_assert_str_eq(cfg.children[0].id, "etsmgrd");
    ck_assert_str_eq(cfg.children[1].id, "etscounterd");
    ck_assert_str_eq(cfg.children[0].sockets[0].name, "etsmgrd");
    ck_assert_str_eq(cfg.children[1].sockets[0].name, "etscounter");
    sup_config_free(&cfg);
}
END_TEST

START_TEST(test_check_config_and_usage)
{
    st_env e;
    st_init(&e);
    st_config(&e, "{\"children\":[{\"id\":\"a\",\"argv\":[\"%s\"]}]}", e.stub);
    char *argv[] = {e.sup_bin, "--check-config", "--config", e.config, NULL};
    char *out = NULL;
    int st = rc_run(argv, &out, 10000);
    ck_assert_msg(rc_ok(st), "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "is valid: 1 children"));
    free(out);
    char *bad[] = {e.sup_bin, "--no-such-option", NULL};
    st = rc_run(bad, &out, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 64);
    free(out);
    char *lvl[] = {e.sup_bin, "--log-level", "loud", NULL};
    st = rc_run(lvl, &out, 10000);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 64);
    free(out);
    char *help[] = {e.sup_bin, "--help", NULL};
    st = rc_run(help, &out, 10000);
    ck_assert(rc_ok(st));
    ck_assert_ptr_nonnull(strstr(out, "--runtime-dir DIR"));
    free(out);
    char *ver[] = {e.sup_bin, "--version", NULL};
    st = rc_run(ver, &out, 10000);
    ck_assert(rc_ok(st));
    ck_assert_ptr_nonnull(strstr(out, "etssup " ETSMGR_VERSION_STRING));
    free(out);
    st_cleanup(&e);
}
END_TEST

Suite *sup_config_suite(void)
{
    Suite *s = suite_create("sup_config");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_config_error, 0, (int)(sizeof cases / sizeof *cases));
    tcase_add_test(tc, test_config_missing_file);
    tcase_add_test(tc, test_config_all_mistakes);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_default_matches_file);
    tcase_add_test(tc, test_check_config_and_usage);
    suite_add_tcase(s, tc);
    return s;
}

/* test_proto.c: what a request may be, what replies look like, and the
 * typed field getters' three answers (present, absent, wrong). */
#include <check.h>
#include <string.h>

#include "proto.h"

static cJSON *parse(const char *s, const char **code)
{
    char msg[256];
    *code = NULL;
    return proto_parse_request(s, strlen(s), code, msg, sizeof msg);
}

START_TEST(test_proto_parse)
{
    const char *code;
    cJSON *r = parse("{\"op\":\"hello\",\"id\":7}", &code);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(proto_op(r), "hello");
    cJSON_Delete(r);
    r = parse(" {\"op\":\"x\"}\n ", &code);
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);

    struct {
        const char *in, *code;
    } bad[] = {
        {"", "bad_json"},
        {"{", "bad_json"},
        {"not json", "bad_json"},
        {"{\"op\":\"a\"} trailing", "bad_json"},
        {"{\"op\":\"a\"}{}", "bad_json"},
        {"[1,2]", "bad_request"},
        {"\"op\"", "bad_request"},
        {"42", "bad_request"},
        {"{}", "bad_request"},
        {"{\"op\":1}", "bad_request"},
        {"{\"op\":null}", "bad_request"},
        {"{\"op\":\"new_table\",\"name\":\"a\\u0000/../x\"}", "bad_request"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = parse(bad[i].in, &code);
        ck_assert_msg(r == NULL, "accepted %s", bad[i].in);
        ck_assert_msg(code && strcmp(code, bad[i].code) == 0, "%s: got %s, want %s", bad[i].in,
                      code ? code : "(null)", bad[i].code);
    }
    /* an escaped backslash followed by u0000 is ordinary text */
    r = parse("{\"op\":\"a\",\"s\":\"\\\\u0000\"}", &code);
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);
    /* raw NUL inside the payload; parse stops at the length, not at a NUL */
    char msg[128];
    r = proto_parse_request("{\"op\":\"a\"}\0xx", 13, &code, msg, sizeof msg);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(code, "bad_json");
    r = proto_parse_request("{\"op\":\"a\"}GARBAGE", 10, &code, msg, sizeof msg);
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);
}
END_TEST

static char *print(cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

START_TEST(test_proto_replies)
{
    const char *code;
    cJSON *req = parse("{\"op\":\"x\",\"id\":{\"k\":[1,\"two\"]}}", &code);
    ck_assert_ptr_nonnull(req);
    char *s = print(proto_reply_ok(req));
    ck_assert_str_eq(s, "{\"ok\":true,\"id\":{\"k\":[1,\"two\"]}}");
    cJSON_free(s);
    s = print(proto_reply_err(req, "unknown_op", "no op %s here", proto_op(req)));
    ck_assert_str_eq(s, "{\"ok\":false,\"id\":{\"k\":[1,\"two\"]},\"error\":\"unknown_op\",\"message\":\"no op x here\"}");
    cJSON_free(s);
    cJSON_Delete(req);
    req = parse("{\"op\":\"x\"}", &code);
    s = print(proto_reply_ok(req));
    ck_assert_str_eq(s, "{\"ok\":true,\"id\":null}");
    cJSON_free(s);
    cJSON_Delete(req);
    s = print(proto_reply_err(NULL, "bad_json", "m"));
    ck_assert_str_eq(s, "{\"ok\":false,\"id\":null,\"error\":\"bad_json\",\"message\":\"m\"}");
    cJSON_free(s);
}
END_TEST

START_TEST(test_proto_getters)
{
    const char *code;
    char msg[256];
    cJSON *req = parse("{\"op\":\"x\",\"s\":\"str\",\"b\":true,\"i\":42,\"neg\":-3,\"f\":1.5,"
                       "\"big\":1e300,\"n\":null}",
                       &code);
    ck_assert_ptr_nonnull(req);
    const char *sv = NULL;
    ck_assert_int_eq(proto_get_string(req, "s", &sv, msg, sizeof msg), 0);
    ck_assert_str_eq(sv, "str");
    ck_assert_int_eq(proto_get_string(req, "missing", &sv, msg, sizeof msg), 1);
    ck_assert_str_eq(sv, "str");
    ck_assert_int_eq(proto_get_string(req, "i", &sv, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "field \"i\" must be a string");
    ck_assert_int_eq(proto_get_string(req, "n", &sv, msg, sizeof msg), -1);
    bool bv = false;
    ck_assert_int_eq(proto_get_bool(req, "b", &bv, msg, sizeof msg), 0);
    ck_assert(bv);
    ck_assert_int_eq(proto_get_bool(req, "s", &bv, msg, sizeof msg), -1);
    ck_assert_int_eq(proto_get_bool(req, "nope", &bv, msg, sizeof msg), 1);
    int64_t iv = 0;
    ck_assert_int_eq(proto_get_int(req, "i", 0, 100, &iv, msg, sizeof msg), 0);
    ck_assert_int_eq(iv, 42);
    ck_assert_int_eq(proto_get_int(req, "neg", -5, 5, &iv, msg, sizeof msg), 0);
    ck_assert_int_eq(iv, -3);
    ck_assert_int_eq(proto_get_int(req, "i", 0, 10, &iv, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "field \"i\" must be an integer from 0 to 10");
    ck_assert_int_eq(proto_get_int(req, "f", 0, 10, &iv, msg, sizeof msg), -1);
    ck_assert_int_eq(proto_get_int(req, "big", INT64_MIN, INT64_MAX, &iv, msg, sizeof msg), -1);
    ck_assert_int_eq(proto_get_int(req, "s", 0, 10, &iv, msg, sizeof msg), -1);
    ck_assert_int_eq(proto_get_int(req, "zz", 0, 10, &iv, msg, sizeof msg), 1);
    cJSON_Delete(req);
}
END_TEST

Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("proto");
    tcase_add_test(tc, test_proto_parse);
    tcase_add_test(tc, test_proto_replies);
    tcase_add_test(tc, test_proto_getters);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_proto.c: what a request may be, what replies look like, the typed
 * field getters' three answers (present, absent, wrong), and the table of
 * error codes: each code once, found back from its string, and documented
 * in docs/protocol.md (and nothing documented there that the table lacks). */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static cJSON *parse(const char *s, proto_err *code)
{
    char msg[256];
    *code = PROTO_OK;
    return proto_parse_request(s, strlen(s), code, msg, sizeof msg);
}

START_TEST(test_proto_parse)
{
    proto_err code;
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
        ck_assert_msg(proto_err_code(code) && strcmp(proto_err_code(code), bad[i].code) == 0,
                      "%s: got %s, want %s", bad[i].in, proto_err_code(code) ? proto_err_code(code) : "(null)",
                      bad[i].code);
    }
    /* an escaped backslash followed by u0000 is ordinary text */
    r = parse("{\"op\":\"a\",\"s\":\"\\\\u0000\"}", &code);
    ck_assert_ptr_nonnull(r);
    cJSON_Delete(r);
    /* raw NUL inside the payload; parse stops at the length, not at a NUL */
    char msg[128];
    r = proto_parse_request("{\"op\":\"a\"}\0xx", 13, &code, msg, sizeof msg);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(code, PROTO_E_BAD_JSON);
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
    proto_err code;
    cJSON *req = parse("{\"op\":\"x\",\"id\":{\"k\":[1,\"two\"]}}", &code);
    ck_assert_ptr_nonnull(req);
    char *s = print(proto_reply_ok(req));
    ck_assert_str_eq(s, "{\"ok\":true,\"id\":{\"k\":[1,\"two\"]}}");
    cJSON_free(s);
    s = print(proto_reply_err(req, PROTO_E_UNKNOWN_OP, "no op %s here", proto_op(req)));
    ck_assert_str_eq(s, "{\"ok\":false,\"id\":{\"k\":[1,\"two\"]},\"error\":\"unknown_op\",\"message\":\"no op x here\"}");
    cJSON_free(s);
    cJSON_Delete(req);
    req = parse("{\"op\":\"x\"}", &code);
    s = print(proto_reply_ok(req));
    ck_assert_str_eq(s, "{\"ok\":true,\"id\":null}");
    cJSON_free(s);
    cJSON_Delete(req);
    s = print(proto_reply_err(NULL, PROTO_E_BAD_JSON, "m"));
    ck_assert_str_eq(s, "{\"ok\":false,\"id\":null,\"error\":\"bad_json\",\"message\":\"m\"}");
    cJSON_free(s);
}
END_TEST

START_TEST(test_proto_getters)
{
    proto_err code;
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

/* The ends of int64_t: INT64_MAX, the documented top of a deadline or a
 * size, arrives as the double 2^63 and is taken as INT64_MAX (it was
 * refused, by a message naming INT64_MAX as allowed); a number above it
 * that reads as another double is refused with the range it is outside
 * of; a range whose ends are doubles exactly is kept to them. */
START_TEST(test_proto_get_int_ends)
{
    proto_err code;
    char msg[256];
    cJSON *req = parse("{\"op\":\"x\",\"max\":9223372036854775807,\"p63\":9223372036854775808,"
                       "\"cj\":9.2233720368547758e+18,\"over\":9223372036854777856,"
                       "\"min\":-9223372036854775808,\"under\":-9223372036854777856,"
                       "\"i32\":2147483647,\"o32\":2147483648,\"big53\":9007199254740993}",
                       &code);
    ck_assert_ptr_nonnull(req);
    int64_t iv = 0;
    ck_assert_int_eq(proto_get_int(req, "max", 0, INT64_MAX, &iv, msg, sizeof msg), 0);
    ck_assert(iv == INT64_MAX);
    iv = 0;
    ck_assert_int_eq(proto_get_int(req, "p63", 0, INT64_MAX, &iv, msg, sizeof msg), 0);
    ck_assert(iv == INT64_MAX);
    iv = 0;
    ck_assert_int_eq(proto_get_int(req, "cj", INT64_MIN, INT64_MAX, &iv, msg, sizeof msg), 0);
    ck_assert(iv == INT64_MAX);
    ck_assert_int_eq(proto_get_int(req, "over", 0, INT64_MAX, &iv, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "field \"over\" must be an integer from 0 to 9223372036854775807");
    ck_assert_int_eq(proto_get_int(req, "min", INT64_MIN, 0, &iv, msg, sizeof msg), 0);
    ck_assert(iv == INT64_MIN);
    ck_assert_int_eq(proto_get_int(req, "under", INT64_MIN, INT64_MAX, &iv, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "field \"under\" must be an integer from -9223372036854775808 to 9223372036854775807");
    ck_assert_int_eq(proto_get_int(req, "i32", 1, INT32_MAX, &iv, msg, sizeof msg), 0);
    ck_assert_int_eq(iv, INT32_MAX);
    ck_assert_int_eq(proto_get_int(req, "o32", 1, INT32_MAX, &iv, msg, sizeof msg), -1);
    ck_assert_str_eq(msg, "field \"o32\" must be an integer from 1 to 2147483647");
    /* above 2^53 an integer is the double it reads as */
    ck_assert_int_eq(proto_get_int(req, "big53", 0, INT64_MAX, &iv, msg, sizeof msg), 0);
    ck_assert(iv == 9007199254740992);
    /* a range end that is no double: a number reading as the double
     * nearest it is that end, never past it */
    ck_assert_int_eq(proto_get_int(req, "big53", 0, 9007199254740993, &iv, msg, sizeof msg), 0);
    ck_assert(iv == 9007199254740992);
    ck_assert_int_eq(proto_get_int(req, "max", 0, INT64_MAX - 1, &iv, msg, sizeof msg), 0);
    ck_assert(iv == INT64_MAX - 1);
    cJSON_Delete(req);
}
END_TEST

START_TEST(test_proto_error_table)
{
    ck_assert_ptr_null(proto_err_code(PROTO_OK));
    ck_assert_ptr_null(proto_err_code(PROTO_E_COUNT));
    ck_assert_int_eq(proto_err_find("no_such_code"), PROTO_OK);
    ck_assert_int_eq(proto_err_find(NULL), PROTO_OK);
    /* PROTO_OK is no code: no reply can carry it */
    ck_assert_ptr_null(proto_reply_err(NULL, PROTO_OK, "x"));
    for (int e = PROTO_OK + 1; e < PROTO_E_COUNT; e++) {
        const char *c = proto_err_code((proto_err)e);
        ck_assert_ptr_nonnull(c);
        ck_assert_msg(c[0] != '\0' && strspn(c, "abcdefghijklmnopqrstuvwxyz_") == strlen(c),
                      "code \"%s\" is not lowercase letters and _", c);
        ck_assert_msg(proto_err_words((proto_err)e)[0] != '\0', "code %s has no words", c);
        /* unique: the lookup finds this very entry */
        ck_assert_int_eq(proto_err_find(c), e);
    }
}
END_TEST

/* The codes in the first column ("| `code` |") of the tables under every
 * heading that says "error codes", appended to out (one string each). */
static int doc_codes(const char *path, char out[][40], int max)
{
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char line[1024];
    int n = 0, in = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') {
            char low[1024];
            size_t i = 0;
            for (; line[i] && i < sizeof low - 1; i++)
                low[i] = (char)tolower((unsigned char)line[i]);
            low[i] = '\0';
            in = strstr(low, "error codes") != NULL;
            continue;
        }
        if (!in || strncmp(line, "| `", 3) != 0)
            continue;
        const char *b = line + 3, *e = strchr(b, '`');
        if (!e || (size_t)(e - b) >= sizeof out[0] || strncmp(e, "` |", 3) != 0)
            continue;
        ck_assert_int_lt(n, max);
        snprintf(out[n++], sizeof out[0], "%.*s", (int)(e - b), b);
    }
    fclose(f);
    return n;
}

START_TEST(test_proto_error_codes_documented)
{
    const char *src = getenv("ETSMGR_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/protocol.md", src ? src : ".");
    static char doc[256][40];
    int n = doc_codes(path, doc, 256);
    ck_assert_int_gt(n, 0);
    for (int e = PROTO_OK + 1; e < PROTO_E_COUNT; e++) {
        const char *c = proto_err_code((proto_err)e);
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = strcmp(doc[i], c) == 0;
        ck_assert_msg(found, "error code \"%s\" (common/proto.h) has no row in an error-code table of %s", c,
                      path);
    }
    for (int i = 0; i < n; i++)
        ck_assert_msg(proto_err_find(doc[i]) != PROTO_OK,
                      "%s documents error code \"%s\", which common/proto.h does not have", path, doc[i]);
}
END_TEST

Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *tc = tcase_create("proto");
    tcase_add_test(tc, test_proto_parse);
    tcase_add_test(tc, test_proto_replies);
    tcase_add_test(tc, test_proto_getters);
    tcase_add_test(tc, test_proto_get_int_ends);
    tcase_add_test(tc, test_proto_error_table);
    tcase_add_test(tc, test_proto_error_codes_documented);
    suite_add_tcase(s, tc);
    return s;
}

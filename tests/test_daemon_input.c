/* SPDX-License-Identifier: Apache-2.0 */
/* test_daemon_input.c: every malformed input the protocol names, against
 * the real etsmgrd.  Each bad request gets its error code (and a message),
 * the connection stays usable when the stream is still in step, and after
 * each one a valid request on a fresh connection succeeds, so no input can
 * stop or wedge the daemon.  Inputs that break the framing (a length over
 * the limit, a frame cut off) close that connection only.  At the end no
 * table or shm object exists: nothing malformed created anything. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "test_daemon.h"

static void send_raw(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

/* One bad payload on a fresh connection: the code, then the same
 * connection still answers, then a fresh one does too. */
static void bad_payload(const tu_env *e, pid_t d, const char *payload, size_t len, const char *code)
{
    int fd = dt_connect(e);
    ck_assert_int_eq(frame_write(fd, payload, len, NULL, 0), 0);
    cJSON *r = NULL;
    int rc = frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS);
    ck_assert_msg(rc == 0, "no reply to %.80s: %s", payload, strerror(errno));
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg(strcmp(dt_str(r, "error"), code) == 0 && !dt_bool(r, "ok"), "%.100s: expected %s, got %s",
                  payload, code, s);
    ck_assert_msg(dt_str(r, "message")[0], "%s without a message", code);
    free(s);
    cJSON_Delete(r);
    dt_expect_ok(dt_callf(fd, NULL, "{\"op\":\"hello\",\"id\":\"again\"}"));
    close(fd);
    dt_hello_ok(e, d);
}

static void bad(const tu_env *e, pid_t d, const char *payload, const char *code)
{
    bad_payload(e, d, payload, strlen(payload), code);
}

START_TEST(test_malformed_requests)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);

    bad(&e, d, "{", "bad_json");
    bad(&e, d, "", "bad_json");
    bad(&e, d, "not json at all", "bad_json");
    bad(&e, d, "{\"op\":\"hello\"} trailing", "bad_json");
    bad(&e, d, "[1,2]", "bad_request");
    bad(&e, d, "42", "bad_request");
    bad(&e, d, "\"hello\"", "bad_request");
    bad(&e, d, "null", "bad_request");
    bad(&e, d, "{\"id\":1}", "bad_request");
    bad(&e, d, "{\"op\":5,\"id\":1}", "bad_request");
    bad(&e, d, "{\"op\":null}", "bad_request");
    bad(&e, d, "{\"op\":\"frobnicate\",\"id\":1}", "unknown_op");
    bad(&e, d, "{\"op\":\"\"}", "unknown_op");
    /* missing and mistyped fields, op by op */
    bad(&e, d, "{\"op\":\"new_table\"}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":5}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":null}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":[\"t\"]}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":\"t\",\"opts\":5}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"size_hint\":-1}}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"size_hint\":\"big\"}}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":\"t\",\"opts\":{\"max_bytes\":1.5}}", "bad_request");
    bad(&e, d, "{\"op\":\"new_table\",\"name\":\"t\",\"heir_data\":7}", "bad_request");
    bad(&e, d, "{\"op\":\"add_table\"}", "no_fd");
    bad(&e, d, "{\"op\":\"del_table\"}", "bad_request");
    bad(&e, d, "{\"op\":\"del_table\",\"name\":\"t\",\"unlink\":\"yes\"}", "bad_request");
    bad(&e, d, "{\"op\":\"del_table\",\"name\":\"t\",\"unlink\":1}", "bad_request");
    bad(&e, d, "{\"op\":\"give_away\",\"name\":\"t\"}", "bad_request");
    bad(&e, d, "{\"op\":\"give_away\",\"name\":\"t\",\"pid\":\"1\"}", "bad_request");
    bad(&e, d, "{\"op\":\"give_away\",\"name\":\"t\",\"pid\":0}", "bad_request");
    bad(&e, d, "{\"op\":\"give_away\",\"name\":\"t\",\"pid\":-5}", "bad_request");
    bad(&e, d, "{\"op\":\"give_away\",\"name\":\"t\",\"pid\":1e30}", "bad_request");
    bad(&e, d, "{\"op\":\"give_away\",\"name\":\"t\",\"pid\":1,\"data\":false}", "bad_request");
    bad(&e, d, "{\"op\":\"info\",\"name\":5}", "bad_request");
    bad(&e, d, "{\"op\":\"info\",\"name\":\"none\"}", "not_found");

    char big[400];
    memset(big, 'h', 300);
    big[300] = '\0';
    char req[2048];
    snprintf(req, sizeof req, "{\"op\":\"new_table\",\"name\":\"t\",\"heir_data\":\"%s\"}", big);
    bad(&e, d, req, "bad_request");

    /* names */
    static const char *names[] = {"a/b", "/etc", "..", ".", "../x", "x/..", "", "a b", "tab\\tle", "\\u00e9t\\u00e9",
                                  "a*", "a\\\\b"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":1,\"name\":\"%s\"}", names[i]);
        bad(&e, d, req, "bad_name");
        snprintf(req, sizeof req, "{\"op\":\"del_table\",\"id\":1,\"name\":\"%s\",\"unlink\":true}", names[i]);
        bad(&e, d, req, "bad_name");
    }
    char longname[1001];
    memset(longname, 'n', 1000);
    longname[1000] = '\0';
    snprintf(req, sizeof req, "{\"op\":\"new_table\",\"id\":1,\"name\":\"%s\"}", longname);
    bad(&e, d, req, "bad_name");
    bad(&e, d, "{\"op\":\"new_table\",\"id\":1,\"name\":\"ok\\u0000/../x\"}", "bad_request");
    static const char nul_inside[] = "{\"op\":\"hello\",\"x\":\"a\0b\"}";
    bad_payload(&e, d, nul_inside, sizeof nul_inside - 1, "bad_json");

    /* deep nesting inside the 64 KiB limit */
    size_t depth = 20000;
    char *deep = malloc(2 * depth + 1);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    bad(&e, d, deep, "bad_json");
    free(deep);

    /* Nothing malformed created a table. */
    int fd = dt_connect(&e);
    cJSON *r = dt_callf(fd, NULL, "{\"op\":\"tables\"}");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "tables")), 0);
    cJSON_Delete(r);
    close(fd);
    ck_assert_int_eq(tu_count_shm(&e), 0);
    ck_assert_int_eq(kill(d, 0), 0);
    tu_env_cleanup(&e);
}
END_TEST

/* The reply's code and message to one request on fd (freed here). */
static void expect_reply(int fd, const char *req, const char *code, const char *message)
{
    cJSON *r = dt_callf(fd, NULL, "%s", req);
    char *s = cJSON_PrintUnformatted(r);
    ck_assert_msg(strcmp(dt_str(r, "error"), code) == 0 && strcmp(dt_str(r, "message"), message) == 0,
                  "%s: expected %s \"%s\", got %s", req, code, message, s);
    free(s);
    cJSON_Delete(r);
}

/* A size of 9223372036854775807 (INT64_MAX, the documented top) is read
 * as that number: over --max-table-bytes, too_large names it.  (It was
 * refused as outside "0 to 9223372036854775807": the JSON number reads as
 * 2^63.)  A number past it is refused with the range it is outside of. */
START_TEST(test_int64_max_sizes)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, "--max-table-bytes", "1048576", NULL);
    int fd = dt_connect(&e);
    expect_reply(fd, "{\"op\":\"new_table\",\"id\":1,\"name\":\"t\",\"opts\":{\"max_bytes\":9223372036854775807}}",
                 "too_large",
                 "table t not created: max_bytes 9223372036854775807 is over this daemon's limit per table, 1048576 bytes "
                 "(--max-table-bytes)");
    expect_reply(fd, "{\"op\":\"new_table\",\"id\":2,\"name\":\"t\",\"opts\":{\"size_hint\":9223372036854775807}}",
                 "too_large",
                 "table t not created: size_hint 9223372036854775807 is over this daemon's limit per table, 1048576 bytes "
                 "(--max-table-bytes)");
    expect_reply(fd, "{\"op\":\"new_table\",\"id\":3,\"name\":\"t\",\"opts\":{\"max_bytes\":9223372036854777856}}",
                 "bad_request", "opts: field \"max_bytes\" must be an integer from 0 to 9223372036854775807");
    close(fd);
    dt_hello_ok(&e, d);
    ck_assert_int_eq(tu_count_shm(&e), 0);
    tu_env_cleanup(&e);
}
END_TEST

/* A length prefix over the limit: frame_too_large, then the connection is
 * closed.  Then a fresh connection works. */
static void oversized(const tu_env *e, pid_t d, const unsigned char hdr[4], const char *tail)
{
    int fd = dt_connect(e);
    send_raw(fd, hdr, 4);
    /* The daemon may already have refused and closed: the tail may not go. */
    if (tail)
        (void)!send(fd, tail, strlen(tail), MSG_NOSIGNAL);
    cJSON *r = NULL;
    int rc = frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS);
    ck_assert_msg(rc == 0, "no frame_too_large reply: %s", strerror(errno));
    dt_expect_err(r, "frame_too_large");
    char buf[64];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        ;
    /* ECONNRESET: it closed with our unread tail in its buffer */
    ck_assert_msg(n == 0 || (n < 0 && errno == ECONNRESET), "the connection was not closed after frame_too_large: %s",
                  strerror(errno));
    close(fd);
    dt_hello_ok(e, d);
}

START_TEST(test_broken_frames)
{
    tu_env e;
    tu_env_init(&e);
    pid_t d = dt_start(&e, NULL);

    static const unsigned char just_over[4] = {0x00, 0x01, 0x00, 0x01}; /* 65537 */
    static const unsigned char huge[4] = {0xff, 0xff, 0xff, 0xff};      /* 4 GiB */
    oversized(&e, d, just_over, NULL);
    oversized(&e, d, huge, "{\"op\":\"hello\"}");
    /* an HTTP request: "GET " read as a length */
    oversized(&e, d, (const unsigned char *)"GET ", "/ HTTP/1.1\r\nHost: x\r\n\r\n");

    /* A frame of exactly the limit is read (and refused as JSON). */
    char *max = malloc(FRAME_MAX);
    ck_assert_ptr_nonnull(max);
    memset(max, ' ', FRAME_MAX);
    max[0] = '{';
    bad_payload(&e, d, max, FRAME_MAX, "bad_json");
    free(max);

    /* A frame cut in half and the peer gone. */
    int fd = dt_connect(&e);
    static const unsigned char half[4] = {0, 0, 0, 100};
    send_raw(fd, half, 4);
    send_raw(fd, "{\"op\":\"hel", 10);
    close(fd);
    /* Only a header, then gone. */
    fd = dt_connect(&e);
    send_raw(fd, half, 2);
    close(fd);
    /* Half-closed: the request before the shutdown is still answered. */
    fd = dt_connect(&e);
    const char *hello = "{\"op\":\"hello\",\"id\":5}";
    ck_assert_int_eq(frame_write(fd, hello, strlen(hello), NULL, 0), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    cJSON *r = NULL;
    ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS), 0);
    dt_expect_ok(r);
    close(fd);

    dt_hello_ok(&e, d);
    /* Pipelined requests are answered in order on one connection. */
    fd = dt_connect(&e);
    for (int i = 0; i < 50; i++) {
        char q[64];
        snprintf(q, sizeof q, "{\"op\":\"%s\",\"id\":%d}", i % 2 ? "hello" : "nope", i);
        ck_assert_int_eq(frame_write(fd, q, strlen(q), NULL, 0), 0);
    }
    for (int i = 0; i < 50; i++) {
        r = NULL;
        ck_assert_int_eq(frame_read_json(fd, &r, NULL, NULL, 0, DT_TIMEOUT_MS), 0);
        ck_assert_int_eq((int)dt_num(r, "id"), i);
        ck_assert(dt_bool(r, "ok") == (i % 2 == 1));
        cJSON_Delete(r);
    }
    close(fd);
    ck_assert_int_eq(kill(d, 0), 0);
    tu_env_cleanup(&e);
}
END_TEST

Suite *daemon_input_suite(void)
{
    Suite *s = suite_create("daemon_input");
    TCase *tc = tcase_create("input");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_malformed_requests);
    tcase_add_test(tc, test_broken_frames);
    tcase_add_test(tc, test_int64_max_sizes);
    suite_add_tcase(s, tc);
    return s;
}

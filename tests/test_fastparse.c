/* SPDX-License-Identifier: Apache-2.0 */
/* test_fastparse.c: etscounterd's request fast path (fastparse.c): what it
 * takes, what it leaves to cJSON, and that whatever it takes, cJSON reads
 * the same (fuzz/fastparse_oracle.h; fuzz_fastparse does it on random
 * bytes). */
#include <check.h>
#include <string.h>

#include "etscounterd/fastparse.h"
#include "fuzz/fastparse_oracle.h"

static int take(const char *s, fp_req *f)
{
    memset(f, 0x5a, sizeof *f); /* nothing may leak from before */
    int r = fp_parse(s, strlen(s), f);
    if (r) {
        const char *why = fp_oracle(s, strlen(s), f);
        ck_assert_msg(why == NULL, "%s: fast path and cJSON disagree: %s", s, why);
    }
    return r;
}

START_TEST(test_fastparse_shapes)
{
    fp_req f;
    ck_assert_int_eq(take("{\"op\":\"count\",\"id\":1}", &f), 1);
    ck_assert_int_eq(f.op, FP_COUNT);
    ck_assert_int_eq(f.id_kind, FP_ID_INT);
    ck_assert_int_eq(f.id, 1);
    ck_assert_int_eq(f.has_rid, 0);
    ck_assert_int_eq(f.has_deadline, 0);

    const char *rid = "{\"op\":\"count\",\"id\":-42,\"rid\":\"00112233445566778899aabbccddEEFF\","
                      "\"deadline\":1795000000123}";
    ck_assert_int_eq(take(rid, &f), 1);
    ck_assert_int_eq(f.id, -42);
    ck_assert_int_eq(f.has_rid, 1);
    ck_assert_int_eq(f.rid[0], 0x00);
    ck_assert_int_eq(f.rid[1], 0x11);
    ck_assert_int_eq(f.rid[15], 0xff);
    ck_assert_int_eq(memcmp(f.rid_hex, "00112233445566778899aabbccddEEFF", 32), 0);
    ck_assert_int_eq(f.has_deadline, 1);
    ck_assert_int_eq(f.deadline, 1795000000123LL);

    ck_assert_int_eq(take(" \t\r\n{ \"id\" : null , \"op\" : \"check\" }\n ", &f), 1);
    ck_assert_int_eq(f.op, FP_CHECK);
    ck_assert_int_eq(f.id_kind, FP_ID_NULL);
    ck_assert_int_eq(take("{\"op\":\"ping\"}", &f), 1);
    ck_assert_int_eq(f.op, FP_PING);
    ck_assert_int_eq(f.id_kind, FP_ID_ABSENT);
    ck_assert_int_eq(take("{\"op\":\"count\",\"id\":0,\"deadline\":0}", &f), 1);
    ck_assert_int_eq(f.id, 0);
    ck_assert_int_eq(f.deadline, 0);
    /* the largest integers taken: 15 digits, exact as a double */
    ck_assert_int_eq(take("{\"op\":\"count\",\"id\":-999999999999999,\"deadline\":999999999999999}", &f), 1);
    ck_assert_int_eq(f.id, -999999999999999LL);
    ck_assert_int_eq(f.deadline, 999999999999999LL);
    /* what the CLI sends now: both deadlines and the retry window */
    ck_assert_int_eq(take("{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\","
                          "\"deadline\":1795000000123,\"deadline_mono\":86405000,\"retry_until_mono\":86406000}", &f),
                     1);
    ck_assert_int_eq(f.has_deadline_mono, 1);
    ck_assert_int_eq(f.deadline_mono, 86405000);
    ck_assert_int_eq(f.has_retry_until, 1);
    ck_assert_int_eq(f.retry_until, 86406000);
    ck_assert_int_eq(take("{\"op\":\"count\",\"deadline_mono\":1,\"deadline_mono\":2}", &f), 0);
    ck_assert_int_eq(take("{\"op\":\"count\",\"retry_until_mono\":-1}", &f), 0);
}
END_TEST

/* Each of these is left to cJSON: some are fine requests of another shape,
 * some are wrong and need cJSON's explanation. */
START_TEST(test_fastparse_declines)
{
    static const char *const no[] = {
        "",
        "{}",
        "[]",
        "{\"op\":\"count\"",                                   /* cut short */
        "{\"op\":\"count\",}",                                 /* trailing comma */
        "{\"op\":\"count\"} x",                                /* trailing bytes */
        "{\"op\":\"count\"}{}",
        "{\"id\":1}",                                          /* no op */
        "{\"op\":\"die\",\"id\":1}",                           /* not a fast op */
        "{\"op\":\"counts\"}",
        "{\"op\":\"Count\"}",
        "{\"op\":1}",
        "{\"op\":\"count\",\"op\":\"check\"}",                 /* duplicate key */
        "{\"op\":\"count\",\"id\":1,\"id\":2}",
        "{\"op\":\"count\",\"extra\":1}",                      /* unknown key */
        "{\"o\\u0070\":\"count\"}",                            /* an escape */
        "{\"op\":\"co\\u0075nt\"}",
        "{\"op\":\"count\",\"id\":1.0}",                       /* fraction, exponent */
        "{\"op\":\"count\",\"id\":1e3}",
        "{\"op\":\"count\",\"id\":1E3}",
        "{\"op\":\"count\",\"id\":01}",                        /* leading zero */
        "{\"op\":\"count\",\"id\":-0}",
        "{\"op\":\"count\",\"id\":-}",
        "{\"op\":\"count\",\"id\":+1}",
        "{\"op\":\"count\",\"id\":1000000000000000}",          /* 16 digits */
        "{\"op\":\"count\",\"id\":\"7\"}",                     /* a string id */
        "{\"op\":\"count\",\"id\":true}",
        "{\"op\":\"count\",\"id\":nul}",
        "{\"op\":\"count\",\"id\":nullx}",
        "{\"op\":\"count\",\"rid\":\"00112233445566778899aabbccddeef\"}",    /* 31 digits */
        "{\"op\":\"count\",\"rid\":\"00112233445566778899aabbccddeeff0\"}",  /* 33 */
        "{\"op\":\"count\",\"rid\":\"00112233445566778899aabbccddeefg\"}",   /* not hex */
        "{\"op\":\"count\",\"rid\":7}",
        "{\"op\":\"count\",\"deadline\":-1}",
        "{\"op\":\"count\",\"deadline\":1.5}",
        "{\"op\":\"count\",\"deadline\":\"1\"}",
        "{\"op\":\"count\",\"deadline\":00}",
        "\x01{\"op\":\"count\"}",                              /* cJSON's whitespace, not JSON's */
        "{\"op\":\"count\",\"id\":1}\x01",
        "{\"op\":\"co\tunt\"}",                                /* a control character in a string */
        "{\"op\":\"c\xc3\xa9\"}",                              /* non-ASCII */
        /* keys and words that begin or end like a known one (fastparse.c
         * compares them at once, without looking for the closing quote) */
        "{\"op\":\"count\",\"deadline_mon\":1}",
        "{\"op\":\"count\",\"deadline_monos\":1}",
        "{\"op\":\"count\",\"deadlin\":1}",
        "{\"op\":\"count\",\"ri\":1}",
        "{\"op\":\"count\",\"retry_until_mon\":1}",
        "{\"op\":\"count\",\"r\":1}",
        "{\"opp\":\"count\"}",
        "{\"o\":\"count\"}",
        "{\"op\":\"pin\"}",
        "{\"op\":\"pingg\"}",
        "{\"op\":\"count",
        "{\"op",
        "{\"",
        "{\"op\":\"count\",\"id",
    };
    fp_req f;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(fp_parse(no[i], strlen(no[i]), &f) == 0, "fast path took %s", no[i]);
    /* the length is the end, not a NUL: a NUL inside is not whitespace */
    ck_assert_int_eq(fp_parse("{\"op\":\"count\"}\0", 15, &f), 0);
    ck_assert_int_eq(fp_parse("{\"op\":\"count\"}GARBAGE", 14, &f), 1);
    ck_assert_int_eq(fp_parse("{\"op\":\"count\"}", 13, &f), 0);
}
END_TEST

/* Every prefix and every one-byte change of a good request: whatever the
 * fast path still takes, cJSON must read the same way (take() checks). */
START_TEST(test_fastparse_mutations_agree)
{
    const char *base = "{\"op\":\"count\",\"id\":12,\"rid\":\"0123456789abcdef0123456789ABCDEF\",\"deadline\":17}";
    size_t n = strlen(base);
    char buf[128];
    fp_req f;
    int taken = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        memcpy(buf, base, cut);
        buf[cut] = '\0';
        taken += take(buf, &f);
    }
    ck_assert_int_eq(taken, 1); /* only the whole request */
    static const char repl[] = " \"\\,:{}0123456789-.eEnulrdfa\x01\x7f";
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof repl - 1; k++) {
            memcpy(buf, base, n + 1);
            buf[i] = repl[k];
            take(buf, &f);
        }
}
END_TEST

Suite *fastparse_suite(void)
{
    Suite *s = suite_create("fastparse");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fastparse_shapes);
    tcase_add_test(tc, test_fastparse_declines);
    tcase_add_test(tc, test_fastparse_mutations_agree);
    suite_add_tcase(s, tc);
    return s;
}

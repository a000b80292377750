/* SPDX-License-Identifier: Apache-2.0 */
/* test_fastparse.c: etscounterd's request fast path (fastparse.c): what it
 * takes, what it leaves to cJSON, and that whatever it takes, cJSON reads
 * the same (fuzz/fastparse_oracle.h; fuzz_fastparse does it on random
 * bytes); that its two readers (the CLI's form straight through, any
 * order behind it) agree; and the word-at-a-time helpers
 * (fastparse_words.h) against a byte-at-a-time reference. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etscounterd/fastparse.h"
#include "etscounterd/fastparse_words.h"
#include "fuzz/fastparse_oracle.h"

/* fp_parse on n bytes copied to a buffer of exactly n (so that ASan sees
 * a read past the end under SANITIZE=1), held to cJSON and to
 * fp_parse_general */
static int take_n(const char *s, size_t n, fp_req *f)
{
    char *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    memcpy(b, s, n);
    memset(f, 0x5a, sizeof *f); /* nothing may leak from before */
    fp_req g;
    memset(&g, 0xa5, sizeof g);
    int r = fp_parse(b, n, f), rg = fp_parse_general(b, n, &g);
    ck_assert_msg(r == rg, "%.*s: fp_parse %d, fp_parse_general %d", (int)n, s, r, rg);
    if (r) {
        const char *why = fp_same(f, &g);
        ck_assert_msg(why == NULL, "%.*s: the two readers differ on %s", (int)n, s, why);
        why = fp_oracle(b, n, f);
        ck_assert_msg(why == NULL, "%.*s: fast path and cJSON disagree: %s", (int)n, s, why);
        if (f->has_rid) /* back into the caller's bytes */
            f->rid_hex = s + (f->rid_hex - b);
    }
    free(b);
    return r;
}

static int take(const char *s, fp_req *f) { return take_n(s, strlen(s), f); }

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
        ck_assert_msg(take(no[i], &f) == 0, "fast path took %s", no[i]);
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

/* The frames of the CLI and the load generator, read straight through
 * (each key order and literal of fp_canon), and the same keys in other
 * orders or with whitespace, read by the general reader: both readings
 * are the same (take_n checks). */
START_TEST(test_fastparse_canonical_forms)
{
    static const char *const ok[] = {
        /* the CLI (cJSON's printing) */
        "{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\",\"deadline\":1795000000123,"
        "\"deadline_mono\":86405000,\"retry_until_mono\":86406000}",
        /* the bench's load generator */
        "{\"op\":\"count\",\"id\":1,\"rid\":\"9f3a61c2b4d5e6f70000000000012345\",\"deadline_mono\":86405123,"
        "\"retry_until_mono\":86406123}",
        /* every subset of the keys, in order */
        "{\"op\":\"count\"}",
        "{\"op\":\"check\"}",
        "{\"op\":\"ping\"}",
        "{\"op\":\"count\",\"id\":1}",
        "{\"op\":\"check\",\"id\":null}",
        "{\"op\":\"ping\",\"id\":-7}",
        "{\"op\":\"count\",\"rid\":\"00112233445566778899AABBCCDDEEFF\"}",
        "{\"op\":\"count\",\"deadline\":5}",
        "{\"op\":\"count\",\"deadline_mono\":5}",
        "{\"op\":\"count\",\"retry_until_mono\":5}",
        "{\"op\":\"count\",\"deadline\":5,\"deadline_mono\":6}",
        "{\"op\":\"count\",\"deadline\":5,\"retry_until_mono\":7}",
        "{\"op\":\"count\",\"id\":null,\"rid\":\"00112233445566778899aabbccddeeff\",\"retry_until_mono\":0}",
        "{\"op\":\"count\",\"id\":2,\"deadline_mono\":12345678,\"retry_until_mono\":123456789}",
        /* other orders and whitespace: the general reader */
        "{\"id\":1,\"op\":\"count\"}",
        "{\"op\":\"count\",\"deadline_mono\":6,\"deadline\":5}",
        "{\"op\":\"count\",\"retry_until_mono\":7,\"rid\":\"00112233445566778899aabbccddeeff\",\"id\":3}",
        "{\"op\":\"count\", \"id\":1}",
        "{\"op\":\"count\",\"id\":1 }",
        "{\"op\":\"count\",\"id\":1}\n",
        " {\"op\":\"count\",\"id\":1}",
    };
    fp_req f;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(take(ok[i], &f) == 1, "not taken: %s", ok[i]);
    ck_assert_int_eq(take(ok[1], &f), 1);
    ck_assert_int_eq(f.op, FP_COUNT);
    ck_assert_int_eq(f.id, 1);
    ck_assert_int_eq(f.rid[0], 0x9f);
    ck_assert_int_eq(f.rid[15], 0x45);
    ck_assert_ptr_eq(f.rid_hex, ok[1] + 28);
    ck_assert_int_eq(f.has_deadline, 0);
    ck_assert_int_eq(f.deadline_mono, 86405123);
    ck_assert_int_eq(f.retry_until, 86406123);
    ck_assert_int_eq(take(ok[6], &f), 1);
    ck_assert_int_eq(f.op, FP_CHECK);
    ck_assert_int_eq(f.id_kind, FP_ID_NULL);
    ck_assert_int_eq(take(ok[13], &f), 1);
    ck_assert_int_eq(f.deadline, 5);
    ck_assert_int_eq(f.has_deadline_mono, 0);
    ck_assert_int_eq(f.retry_until, 7);
    ck_assert_int_eq(take(ok[15], &f), 1);
    ck_assert_int_eq(f.deadline_mono, 12345678);
    ck_assert_int_eq(f.retry_until, 123456789);
    /* a key twice stays declined, in order or not */
    ck_assert_int_eq(take("{\"op\":\"count\",\"id\":1,\"id\":1}", &f), 0);
    ck_assert_int_eq(take("{\"op\":\"count\",\"deadline\":1,\"deadline\":1}", &f), 0);
    ck_assert_int_eq(take("{\"op\":\"count\",\"retry_until_mono\":1,\"retry_until_mono\":1}", &f), 0);
    ck_assert_int_eq(take("{\"op\":\"count\",\"op\":\"count\"}", &f), 0);
}
END_TEST

/* Integers of every digit count, as the id (signed) and as each time
 * field, at the frame's end and before another key: 1 to 15 digits are
 * taken, 16 and 17 are not, nor a leading zero; each value is exact. */
START_TEST(test_fastparse_integer_lengths)
{
    static const char *const keys[] = { "id", "deadline", "deadline_mono", "retry_until_mono" };
    char num[24], req[160];
    fp_req f;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (int digits = 1; digits <= 17; digits++)
            for (int first = 0; first <= 9; first += 9) /* 1...: a leading 1, or 9... */
                for (int last = 0; last < 2; last++) {
                    long long v = first ? 9 : 1;
                    num[0] = (char)('0' + v);
                    for (int d = 1; d < digits; d++) {
                        num[d] = (char)('0' + (d * 7 + digits) % 10);
                        v = v * 10 + (d * 7 + digits) % 10;
                    }
                    num[digits] = '\0';
                    /* followed by the next key of the CLI's order (the
                     * last, retry_until_mono, by an id: the general reader) */
                    static const char *const next[] = { "\"rid\":\"00112233445566778899aabbccddeeff\"",
                                                        "\"deadline_mono\":5", "\"retry_until_mono\":99999",
                                                        "\"id\":3" };
                    if (last)
                        snprintf(req, sizeof req, "{\"op\":\"count\",\"%s\":%s}", keys[k], num);
                    else
                        snprintf(req, sizeof req, "{\"op\":\"count\",\"%s\":%s,%s}", keys[k], num, next[k]);
                    int r = take(req, &f);
                    ck_assert_msg(r == (digits <= FP_INT_DIGITS), "%s: %d", req, r);
                    if (!r)
                        continue;
                    long long got = k == 0 ? f.id : k == 1 ? f.deadline : k == 2 ? f.deadline_mono : f.retry_until;
                    ck_assert_msg(got == v, "%s: read %lld", req, got);
                    if (k == 0) { /* and negative */
                        snprintf(req, sizeof req, "{\"op\":\"ping\",\"id\":-%s}", num);
                        ck_assert_int_eq(take(req, &f), 1);
                        ck_assert_int_eq(f.id, -v);
                    }
                }
    /* no digit, a leading zero, a sign where none is taken */
    static const char *const no[] = {
        "{\"op\":\"count\",\"id\":}",
        "{\"op\":\"count\",\"id\":-}",
        "{\"op\":\"count\",\"id\":00}",
        "{\"op\":\"count\",\"id\":-0}",
        "{\"op\":\"count\",\"id\":-01}",
        "{\"op\":\"count\",\"id\":012345678}",
        "{\"op\":\"count\",\"deadline_mono\":}",
        "{\"op\":\"count\",\"deadline_mono\":-5}",
        "{\"op\":\"count\",\"deadline_mono\":05}",
        "{\"op\":\"count\",\"deadline_mono\":12345678.5}",
        "{\"op\":\"count\",\"deadline_mono\":12345678e1}",
        "{\"op\":\"count\",\"retry_until_mono\":123456789012345E1}",
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ck_assert_msg(take(no[i], &f) == 0, "fast path took %s", no[i]);
    ck_assert_int_eq(take("{\"op\":\"count\",\"id\":0}", &f), 1);
    ck_assert_int_eq(f.id, 0);
}
END_TEST

/* Every prefix (an exactly sized copy: the last byte read is the frame's
 * last) and every one-byte change of the frames the CLI, the load
 * generator and a plain count send: the two readers agree and cJSON
 * with them (take_n); only the whole frame is taken. */
START_TEST(test_fastparse_every_cut_and_byte)
{
    static const char *const base[] = {
        "{\"op\":\"count\",\"id\":1,\"rid\":\"00112233445566778899aabbccddeeff\",\"deadline\":1795000000123,"
        "\"deadline_mono\":86405000,\"retry_until_mono\":86406000}",
        "{\"op\":\"count\",\"id\":1,\"rid\":\"9f3a61c2b4d5e6f70000000000012345\",\"deadline_mono\":86405123,"
        "\"retry_until_mono\":86406123}",
        "{\"op\":\"count\",\"id\":1}",
        "{\"op\":\"ping\",\"id\":null}",
        "{\"op\":\"check\",\"id\":-12}",
    };
    static const char repl[] = " \"\\,:{}0123456789-.eEnulrdfaA_}\x01\x7f\x80\xff";
    fp_req f;
    char buf[256];
    for (size_t b = 0; b < sizeof base / sizeof base[0]; b++) {
        size_t n = strlen(base[b]);
        for (size_t cut = 0; cut < n; cut++)
            ck_assert_msg(take_n(base[b], cut, &f) == 0, "took %zu bytes of %s", cut, base[b]);
        ck_assert_int_eq(take_n(base[b], n, &f), 1);
        for (size_t i = 0; i < n; i++)
            for (size_t k = 0; k < sizeof repl - 1; k++) {
                memcpy(buf, base[b], n);
                buf[i] = repl[k];
                take_n(buf, n, &f);
                /* and the change as the last byte of a shorter frame */
                take_n(buf, i + 1, &f);
            }
    }
}
END_TEST

/* fp_hex32 (SSE2 where there is, else SWAR) and fp_hex32_swar against a
 * byte at a time: every byte value at every one of the 32 places. */
static int ref_hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

START_TEST(test_fastparse_words_hex)
{
    char s[33] = "0123456789abcdefABCDEF0f9a8B7c6D";
    uint8_t want[16], got[16], got2[16];
    for (int at = 0; at < 32; at++)
        for (int c = 0; c < 256; c++) {
            char t[32];
            memcpy(t, s, 32);
            t[at] = (char)c;
            int valid = 1;
            for (int i = 0; i < 16; i++) {
                int hi = ref_hex((unsigned char)t[2 * i]), lo = ref_hex((unsigned char)t[2 * i + 1]);
                if (hi < 0 || lo < 0)
                    valid = 0;
                else
                    want[i] = (uint8_t)(hi << 4 | lo);
            }
            int r1 = fp_hex32(t, got), r2 = fp_hex32_swar(t, got2);
            ck_assert_msg(r1 == (valid ? 0 : -1) && r2 == r1, "byte %#x at %d: %d %d", c, at, r1, r2);
            if (valid) {
                ck_assert_int_eq(memcmp(got, want, 16), 0);
                ck_assert_int_eq(memcmp(got2, want, 16), 0);
            }
        }
}
END_TEST

/* fp_ndigits and fp_digits_value against a byte at a time: every byte
 * value at every place of a word of digits, and every length's value. */
START_TEST(test_fastparse_words_digits)
{
    char t[16];
    for (int at = 0; at < 8; at++)
        for (int c = 0; c < 256; c++) {
            memcpy(t, "73920468", 8);
            memcpy(t + 8, "00000000", 8);
            t[at] = (char)c;
            unsigned want = 0;
            while (want < 8 && t[want] >= '0' && t[want] <= '9')
                want++;
            uint64_t w = fp_ld8(t, t + 16);
            ck_assert_msg(fp_ndigits(w) == want, "byte %#x at %d: %u digits, not %u", c, at, fp_ndigits(w), want);
            if (want) {
                uint64_t v = 0;
                for (unsigned i = 0; i < want; i++)
                    v = v * 10 + (uint64_t)(t[i] - '0');
                ck_assert_msg(fp_digits_value(w, want) == v, "byte %#x at %d", c, at);
            }
        }
    /* near the end: the word that ends there, shifted; zeros past it */
    const char *e = "12345678901";
    for (int left = 0; left <= 8; left++) {
        const char *p = e + 11 - left;
        uint64_t w = fp_ld8(p, e + 11);
        ck_assert_uint_eq(fp_ndigits(w), (unsigned)left);
        for (int i = 0; i < 8; i++)
            ck_assert_uint_eq((w >> (8 * i)) & 0xff, i < left ? (unsigned char)p[i] : 0);
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
    tcase_add_test(tc, test_fastparse_canonical_forms);
    tcase_add_test(tc, test_fastparse_integer_lengths);
    tcase_add_test(tc, test_fastparse_every_cut_and_byte);
    tcase_add_test(tc, test_fastparse_words_hex);
    tcase_add_test(tc, test_fastparse_words_digits);
    suite_add_tcase(s, tc);
    return s;
}

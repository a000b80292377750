/* SPDX-License-Identifier: Apache-2.0 */
/* fastparse.c: a non-allocating reader for etscounterd's usual requests.
 *
 * cJSON builds a tree with a malloc per value and converts every number
 * through strtod; for a count that was about a third of the server's
 * instructions once the reply no longer went through cJSON
 * (docs/performance.md).  The requests a client sends in a loop have one
 * shape: an object with "op" ("count", "check" or "ping"), an integer or
 * null "id", and for an exactly-once count a "rid" of 32 hex digits and the
 * integers "deadline_mono", "retry_until_mono" and (older clients)
 * "deadline".  This file reads exactly that shape, and nothing
 * else: it accepts a strict subset of JSON and answers "not mine" (0) for
 * anything outside it, which then goes through cJSON as before, with its
 * error messages.  So the fast path never has to explain a bad request.
 *
 * Why the two always agree: every input accepted here is plain JSON that
 * cJSON parses to the same values.  Whitespace is only the four JSON ones
 * (cJSON skips more); keys and strings are fixed words or hex digits, never
 * with an escape (so no \u0000 and no two spellings of a key); each known
 * key at most once
 * and no other key (cJSON's lookup takes the first of duplicates, and
 * unknown keys are left to it); integers have no sign for deadline, no
 * leading zero, no fraction or exponent, and at most 15 digits, so the
 * double cJSON makes of them is exact and prints back as the same digits.
 * fuzz_fastparse checks this against cJSON on arbitrary bytes. */
#include "fastparse.h"

#include <string.h>

typedef struct fp_in {
    const char *p, *end;
} fp_in;

static void fp_ws_skip(fp_in *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

/* Inlined: the usual case, no whitespace, is one compare at each of the
 * eight places a request may have some (a call each was a tenth of the
 * parse, callgrind). */
static inline __attribute__((always_inline)) void fp_ws(fp_in *in)
{
    if (in->p < in->end && (unsigned char)*in->p <= ' ')
        fp_ws_skip(in);
}

static int fp_lit(fp_in *in, char ch)
{
    if (in->p < in->end && *in->p == ch) {
        in->p++;
        return 1;
    }
    return 0;
}

/* A string's text in [*s, *s + *n), up to the first '"'.  No escape is
 * decoded and none needs to be: every string this file takes must equal a
 * fixed word or be 32 hex digits, so a text holding a backslash (or any
 * other byte outside those) is declined by the caller's comparison, and for
 * a text without a backslash the first '"' is its real end. */
static int fp_string(fp_in *in, const char **s, size_t *n)
{
    if (!fp_lit(in, '"'))
        return 0;
    const char *start = in->p, *q = start;
    while (q < in->end && *q != '"')
        q++;
    if (q == in->end)
        return 0;
    *s = start;
    *n = (size_t)(q - start);
    in->p = q + 1;
    return 1;
}

/* 0 | [1-9][0-9]{0,14}, with a '-' in front when neg_ok (but not "-0"). */
static int fp_int(fp_in *in, int neg_ok, long long *out)
{
    int neg = neg_ok && fp_lit(in, '-');
    const char *start = in->p;
    long long v = 0;
    while (in->p < in->end && *in->p >= '0' && *in->p <= '9') {
        if (in->p - start == FP_INT_DIGITS)
            return 0;
        v = v * 10 + (*in->p - '0');
        in->p++;
    }
    size_t n = (size_t)(in->p - start);
    if (n == 0 || (start[0] == '0' && (n > 1 || neg)))
        return 0;
    /* a fraction or an exponent makes it a number of another shape */
    if (in->p < in->end && (*in->p == '.' || *in->p == 'e' || *in->p == 'E'))
        return 0;
    *out = neg ? -v : v;
    return 1;
}

/* a hex digit's value + 1; 0 for any other byte (a table: the rid's 32
 * digits were a third of the parse when tested by comparisons) */
static const unsigned char fp_hexv[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static int fp_rid(fp_in *in, fp_req *r)
{
    const char *s = in->p + 1;
    if (in->end - in->p < 2 * FP_RID_LEN + 2 || in->p[0] != '"' || s[2 * FP_RID_LEN] != '"')
        return 0;
    for (size_t i = 0; i < FP_RID_LEN; i++) {
        int hi = fp_hexv[(unsigned char)s[2 * i]] - 1, lo = fp_hexv[(unsigned char)s[2 * i + 1]] - 1;
        if ((hi | lo) < 0)
            return 0;
        r->rid[i] = (uint8_t)(hi << 4 | lo);
    }
    r->rid_hex = s;
    r->has_rid = 1;
    in->p = s + 2 * FP_RID_LEN + 1;
    return 1;
}

static int fp_is(const char *k, size_t n, const char *word, size_t wn)
{
    return n == wn && memcmp(k, word, wn) == 0;
}
#define FP_IS(k, n, lit) fp_is(k, n, lit, sizeof lit - 1)

/* One "key": value.  seen: the keys read so far (a bit each). */
static int fp_member(fp_in *in, fp_req *r, unsigned *seen)
{
    const char *k, *s;
    size_t kn, n;
    if (!fp_string(in, &k, &kn))
        return 0;
    fp_ws(in);
    if (!fp_lit(in, ':'))
        return 0;
    fp_ws(in);
    unsigned bit;
    if (FP_IS(k, kn, "op")) {
        bit = 1;
        if (!fp_string(in, &s, &n))
            return 0;
        if (FP_IS(s, n, "count"))
            r->op = FP_COUNT;
        else if (FP_IS(s, n, "check"))
            r->op = FP_CHECK;
        else if (FP_IS(s, n, "ping"))
            r->op = FP_PING;
        else
            return 0;
    } else if (FP_IS(k, kn, "id")) {
        bit = 2;
        if (in->end - in->p >= 4 && memcmp(in->p, "null", 4) == 0) {
            in->p += 4;
            r->id_kind = FP_ID_NULL;
        } else if (fp_int(in, 1, &r->id)) {
            r->id_kind = FP_ID_INT;
        } else {
            return 0;
        }
    } else if (FP_IS(k, kn, "rid")) {
        bit = 4;
        if (!fp_rid(in, r))
            return 0;
    } else if (FP_IS(k, kn, "deadline")) {
        bit = 8;
        long long v;
        if (!fp_int(in, 0, &v))
            return 0;
        r->deadline = v;
        r->has_deadline = 1;
    } else if (FP_IS(k, kn, "deadline_mono")) {
        bit = 16;
        long long v;
        if (!fp_int(in, 0, &v))
            return 0;
        r->deadline_mono = v;
        r->has_deadline_mono = 1;
    } else if (FP_IS(k, kn, "retry_until_mono")) {
        bit = 32;
        long long v;
        if (!fp_int(in, 0, &v))
            return 0;
        r->retry_until = v;
        r->has_retry_until = 1;
    } else {
        return 0;
    }
    if (*seen & bit)
        return 0;
    *seen |= bit;
    return 1;
}

int fp_parse(const char *payload, size_t len, fp_req *out)
{
    fp_in in = { payload, payload + len };
    fp_req r;
    memset(&r, 0, sizeof r);
    unsigned seen = 0;
    fp_ws(&in);
    if (!fp_lit(&in, '{'))
        return 0;
    fp_ws(&in);
    if (!fp_lit(&in, '}')) {
        for (;;) {
            if (!fp_member(&in, &r, &seen))
                return 0;
            fp_ws(&in);
            if (fp_lit(&in, '}'))
                break;
            if (!fp_lit(&in, ','))
                return 0;
            fp_ws(&in);
        }
    }
    fp_ws(&in);
    if (in.p != in.end || !(seen & 1))
        return 0;
    *out = r;
    return 1;
}

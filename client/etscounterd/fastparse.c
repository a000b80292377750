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

/* 0 | [1-9][0-9]{0,14}, with a '-' in front when neg_ok (but not "-0"). */
static int fp_int(fp_in *in, int neg_ok, long long *out)
{
    int neg = neg_ok && fp_lit(in, '-');
    const char *start = in->p, *p = start;
    /* one digit past the longest taken, so that a longer one is seen */
    const char *lim = in->end - start > FP_INT_DIGITS ? start + FP_INT_DIGITS + 1 : in->end;
    long long v = 0;
    unsigned d;
    while (p < lim && (d = (unsigned)(unsigned char)*p - '0') <= 9) {
        v = v * 10 + d;
        p++;
    }
    in->p = p;
    if (p - start > FP_INT_DIGITS)
        return 0;
    size_t n = (size_t)(p - start);
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

/* 1 and past it when the input at in->p is the string "word" (its
 * quotes included; lit is the word with its closing quote).  No escape is
 * decoded and none needs to be: every string this file takes (but the
 * rid, fp_rid) must equal a fixed word, so a text holding a backslash or
 * any other byte is declined here; and as a word holds no quote, the
 * string's first quote, its real end, is the one right after it.  So the
 * closing quote is never looked for: the bytes are compared at once. */
static int fp_word(fp_in *in, const char *lit, size_t litlen)
{
    if ((size_t)(in->end - in->p) <= litlen || in->p[0] != '"' || memcmp(in->p + 1, lit, litlen) != 0)
        return 0;
    in->p += 1 + litlen;
    return 1;
}
#define FP_WORD(in, w) fp_word(in, w "\"", sizeof w)

/* The key at in->p (quotes included) as the bit fp_member gives it, or 0
 * for any other string or none.  Chosen by the first letter, then one
 * comparison: no scan for the closing quote (that scan and a comparison
 * for each candidate key were a fifth of an exactly-once count's parse,
 * callgrind). */
static unsigned fp_key(fp_in *in)
{
    if (in->end - in->p < 2)
        return 0;
    switch (in->p[1]) {
    case 'o':
        return FP_WORD(in, "op") ? 1 : 0;
    case 'i':
        return FP_WORD(in, "id") ? 2 : 0;
    case 'r':
        return FP_WORD(in, "rid") ? 4 : FP_WORD(in, "retry_until_mono") ? 32 : 0;
    case 'd':
        return FP_WORD(in, "deadline") ? 8 : FP_WORD(in, "deadline_mono") ? 16 : 0;
    default:
        return 0;
    }
}

/* One "key": value.  seen: the keys read so far (a bit each). */
static int fp_member(fp_in *in, fp_req *r, unsigned *seen)
{
    unsigned bit = fp_key(in);
    if (!bit)
        return 0;
    fp_ws(in);
    if (!fp_lit(in, ':'))
        return 0;
    fp_ws(in);
    if (bit == 1) {
        if (FP_WORD(in, "count"))
            r->op = FP_COUNT;
        else if (FP_WORD(in, "check"))
            r->op = FP_CHECK;
        else if (FP_WORD(in, "ping"))
            r->op = FP_PING;
        else
            return 0;
    } else if (bit == 2) {
        if (in->end - in->p >= 4 && memcmp(in->p, "null", 4) == 0) {
            in->p += 4;
            r->id_kind = FP_ID_NULL;
        } else if (fp_int(in, 1, &r->id)) {
            r->id_kind = FP_ID_INT;
        } else {
            return 0;
        }
    } else if (bit == 4) {
        if (!fp_rid(in, r))
            return 0;
    } else if (bit == 8) {
        long long v;
        if (!fp_int(in, 0, &v))
            return 0;
        r->deadline = v;
        r->has_deadline = 1;
    } else if (bit == 16) {
        long long v;
        if (!fp_int(in, 0, &v))
            return 0;
        r->deadline_mono = v;
        r->has_deadline_mono = 1;
    } else { /* 32 */
        long long v;
        if (!fp_int(in, 0, &v))
            return 0;
        r->retry_until = v;
        r->has_retry_until = 1;
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

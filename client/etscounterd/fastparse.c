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
 * fuzz_fastparse checks this against cJSON on arbitrary bytes.
 *
 * Two readers, the second behind the first.  Nearly every request comes
 * from the etscounter CLI (cJSON's printing: no whitespace, keys in the
 * order op, id, rid, deadline, deadline_mono, retry_until_mono) or from a
 * program written like the bench's load generator (the same order, some
 * keys left out).  fp_canon reads only that form, straight through: each
 * expected ',"key":' is compared at once with one to three 8-byte words,
 * where a key may be absent the word loaded for it is tested against the
 * next key, and the order itself stands for "each key at most once".
 * Anything else it declines at the first byte it does not expect, and the
 * general reader (fp_general: any order, whitespace, the same value rules)
 * reads the request from its start.  So fp_canon takes a subset of what
 * fp_general takes, to the same values, and adds nothing to what is
 * accepted; fuzz_fastparse holds both readers to cJSON on their own
 * (fp_parse_general) and to each other.
 *
 * Words, not bytes.  Keys and words are compared as whole 64-bit words,
 * and the rid's 32 hex digits and an integer's digits are tested and
 * converted many at a time (fastparse_words.h: SWAR, and SSE2 for the
 * rid), rather than a byte, a table look-up and a multiply at a time.  A
 * word reaching past the payload's end reads zeros there, which match no
 * key, digit or hex digit, so the end is tested only where a request may
 * end (FP_NEXT).  With both, the bench's exactly-once frame costs 332
 * instructions rather than 1,024, and a plain count's 107 rather than 296
 * (callgrind; docs/performance.md, "Reading a request in words"). */
#include "fastparse.h"
#include "fastparse_words.h"

#include <string.h>

static const uint64_t fp_pow10[8] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000};

/* JSON's unsigned integer, 0 | [1-9][0-9]{0,14}, at p, w being the word
 * there: the end of its digits and *v, or NULL for no digit, a leading
 * zero, or 16 digits or more.  What follows the digits is the caller's to
 * check: after a value only whitespace, ',' or '}' is taken (in fp_canon
 * only ',"' or the final '}'), so a fraction or an exponent, which would
 * make the number one of another shape, is declined there. */
static inline __attribute__((always_inline)) const char *fp_uint(const char *p, const char *end, uint64_t w,
                                                                 uint64_t *v)
{
    unsigned n = fp_ndigits(w);
    if (n == 0 || ((w & 0xff) == '0' && n > 1))
        return NULL;
    if (n == 1) { /* the usual id */
        *v = w & 0x0f;
        return p + 1;
    }
    uint64_t val = fp_digits_value(w, n);
    /* 8 digits were there (so p + 8 is within the payload): the next
     * word only when a 9th follows (a millisecond clock has 8 or 13) */
    if (n == 8 && end - p > 8 && (unsigned)(unsigned char)p[8] - '0' <= 9) {
        uint64_t w2 = fp_ld8(p + 8, end);
        unsigned n2 = fp_ndigits(w2);
        _Static_assert(FP_INT_DIGITS == 15, "two words hold 8 + 7 digits, and the 16th is seen");
        if (n2 == 8)
            return NULL;
        val = val * fp_pow10[n2] + fp_digits_value(w2, n2);
        n += n2;
    }
    *v = val;
    return p + n;
}

/* A time field's integer at p (fp_uint) into *v, with *has set; past it,
 * or NULL. */
static inline __attribute__((always_inline)) const char *fp_time(const char *p, const char *end, int64_t *v,
                                                                 int *has)
{
    uint64_t u;
    if (!(p = fp_uint(p, end, fp_ld8(p, end), &u)))
        return NULL;
    *v = (int64_t)u;
    *has = 1;
    return p;
}

/* "<32 hex digits>" at p (from its opening quote): past the closing quote
 * with r's rid, or NULL. */
static inline __attribute__((always_inline)) const char *fp_rid(const char *p, const char *end, fp_req *r)
{
    const char *s = p + 1;
    if (end - p < 2 * FP_RID_LEN + 2 || p[0] != '"' || s[2 * FP_RID_LEN] != '"' || fp_hex32(s, r->rid) < 0)
        return NULL;
    r->rid_hex = s;
    r->has_rid = 1;
    return s + 2 * FP_RID_LEN + 1;
}

/* The id's value at p: null or an integer (a '-' allowed, not "-0"); past
 * it, or NULL. */
static inline __attribute__((always_inline)) const char *fp_id(const char *p, const char *end, fp_req *r)
{
    uint64_t w = fp_ld8(p, end), v;
    if ((w & FP_MASK(4)) == FP_W("null\0\0\0\0")) {
        r->id_kind = FP_ID_NULL;
        return p + 4;
    }
    int neg = (w & 0xff) == '-';
    const char *q = neg ? fp_uint(p + 1, end, fp_ld8(p + 1, end), &v) : fp_uint(p, end, w, &v);
    if (!q || (neg && p[1] == '0'))
        return NULL;
    r->id_kind = FP_ID_INT;
    r->id = neg ? -(long long)v : (long long)v;
    return q;
}

/* ---- the CLI's form, straight through ---- */

/* 1 and *r when payload is the canonical form (see the top), else 0. */
static int fp_canon(const char *p, const char *end, fp_req *r)
{
    uint64_t w = fp_ld8(p, end);
    if ((w & FP_MASK(7)) != FP_W("{\"op\":\"\0"))
        return 0;
    p += 7; /* 7 bytes matched: p + 7 is within the payload */
    w = fp_ld8(p, end);
    if ((w & FP_MASK(6)) == FP_W("count\"\0\0")) {
        r->op = FP_COUNT;
        p += 6;
    } else if ((w & FP_MASK(6)) == FP_W("check\"\0\0")) {
        r->op = FP_CHECK;
        p += 6;
    } else if ((w & FP_MASK(5)) == FP_W("ping\"\0\0\0")) {
        r->op = FP_PING;
        p += 5;
    } else {
        return 0;
    }
/* After a value: the end, or the word at p for the keys that may follow.
 * Every ',"key":' with a value and the final '}' is 8 bytes or more, so
 * with fewer left only the '}' may be there. */
#define FP_NEXT()                             \
    do {                                      \
        if (!p)                               \
            return 0;                         \
        if (end - p < 8)                      \
            return end - p == 1 && *p == '}'; \
        w = fp_ld8(p, end);                   \
    } while (0)
    /* each key in turn, tested against w while the ones before are absent */
    FP_NEXT();
    if ((w & FP_MASK(6)) == FP_W(",\"id\":\0\0")) {
        p = fp_id(p + 6, end, r);
        FP_NEXT();
    }
    if (w == FP_W(",\"rid\":\"")) {
        p = fp_rid(p + 7, end, r);
        FP_NEXT();
    }
    /* ,"deadline": and ,"deadline_mono": share their first word (and
     * 8 bytes matched there make p + 8 part of the payload) */
    if (w == FP_W(",\"deadli") && (fp_ld8(p + 8, end) & FP_MASK(4)) == FP_W("ne\":\0\0\0\0")) {
        p = fp_time(p + 12, end, &r->deadline, &r->has_deadline);
        FP_NEXT();
    }
    if (w == FP_W(",\"deadli") && fp_ld8(p + 8, end) == FP_W("ne_mono\"") && end - p > 16 && p[16] == ':') {
        p = fp_time(p + 17, end, &r->deadline_mono, &r->has_deadline_mono);
        FP_NEXT();
    }
    if (w == FP_W(",\"retry_") && fp_ld8(p + 8, end) == FP_W("until_mo") &&
        (fp_ld8(p + 16, end) & FP_MASK(4)) == FP_W("no\":\0\0\0\0")) {
        p = fp_time(p + 20, end, &r->retry_until, &r->has_retry_until);
        FP_NEXT();
    }
#undef FP_NEXT
    return 0; /* a key of another order, whitespace, or anything else */
}

/* ---- any order, with whitespace ---- */

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
        if (!(in->p = fp_id(in->p, in->end, r)))
            return 0;
    } else if (bit == 4) {
        if (!(in->p = fp_rid(in->p, in->end, r)))
            return 0;
    } else if (bit == 8) {
        if (!(in->p = fp_time(in->p, in->end, &r->deadline, &r->has_deadline)))
            return 0;
    } else if (bit == 16) {
        if (!(in->p = fp_time(in->p, in->end, &r->deadline_mono, &r->has_deadline_mono)))
            return 0;
    } else { /* 32 */
        if (!(in->p = fp_time(in->p, in->end, &r->retry_until, &r->has_retry_until)))
            return 0;
    }
    if (*seen & bit)
        return 0;
    *seen |= bit;
    return 1;
}

static int fp_general(const char *payload, size_t len, fp_req *r)
{
    fp_in in = {payload, payload + len};
    unsigned seen = 0;
    fp_ws(&in);
    if (!fp_lit(&in, '{'))
        return 0;
    fp_ws(&in);
    if (!fp_lit(&in, '}')) {
        for (;;) {
            if (!fp_member(&in, r, &seen))
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
    return in.p == in.end && (seen & 1);
}

static inline __attribute__((always_inline)) void fp_clear(fp_req *r)
{
    *r = (fp_req){.op = 0};
}

/* {"op":"ping"}: no request of a shape read here is shorter, so every
 * payload read holds the 8 bytes fp_ld8 needs */
#define FP_SHORTEST 13

int fp_parse_general(const char *payload, size_t len, fp_req *out)
{
    if (len < FP_SHORTEST)
        return 0;
    fp_clear(out);
    return fp_general(payload, len, out);
}

int fp_parse(const char *payload, size_t len, fp_req *out)
{
    if (len >= FP_SHORTEST) {
        fp_clear(out);
        if (fp_canon(payload, payload + len, out))
            return 1;
    }
    return fp_parse_general(payload, len, out);
}

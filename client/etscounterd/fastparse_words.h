/* SPDX-License-Identifier: Apache-2.0 */
/* fastparse_words.h: fastparse.c's reading of bytes many at a time.
 *
 * The 32 hex digits of a request id and the digits of an integer are read
 * a word at a time rather than a byte at a time (a table look-up, a
 * compare and a multiply per byte were two thirds of the parse of an
 * exactly-once count, callgrind): each byte of a 64-bit word is tested and
 * converted at once with adds and masks that carry nothing from one byte
 * into the next (SWAR), and where the machine has SSE2 (every x86-64) the
 * rid's 32 digits are two 16-byte vectors.  The SWAR rid is what other
 * machines use; both are here, side by side, so that the unit tests hold
 * each to a byte-at-a-time reference on every machine
 * (test_fastparse_words).
 *
 * Words are little-endian whatever the machine (fp_ld8): the request's
 * first byte is a word's low byte.  Past the payload's end a word reads
 * zeros; no byte of a key, a digit or a hex digit is zero, so a comparison
 * or a run of digits that reaches past the end fails as at any other wrong
 * byte, and nothing is read outside the payload (a word that would cross
 * its end is the payload's last 8 bytes, shifted: fastparse.c declines a
 * payload shorter than the shortest request, which has more than 8). */
#ifndef ETSCOUNTERD_FASTPARSE_WORDS_H
#define ETSCOUNTERD_FASTPARSE_WORDS_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define FP_ONES 0x0101010101010101ull
#define FP_HIGH (FP_ONES * 0x80)

/* The 8 bytes at p, the first in the low byte; those at or past end read
 * as 0 (p <= end).  The payload must hold at least 8 bytes before end:
 * near the end, the word that ends there is loaded and shifted, rather
 * than a few bytes copied (which cost more than the rest of a plain
 * count's parse). */
static inline __attribute__((always_inline)) uint64_t fp_ld8(const char *p, const char *end)
{
    uint64_t v;
    ptrdiff_t left = end - p;
    if (left >= 8) {
        memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        v = __builtin_bswap64(v);
#endif
        return v;
    }
    memcpy(&v, end - 8, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    /* the bytes before p out: 8 - left of them, 1 to 8 (two shifts, as
     * one of 64 bits is undefined) */
    return v >> (8 * (7 - left)) >> 8;
}

/* A literal's first 8 bytes as fp_ld8 loads them (s holds at least 8:
 * shorter words are padded with \0 and compared under FP_MASK). */
#define FP_B(s, i) ((uint64_t)(unsigned char)(s)[i] << (8 * (i)))
#define FP_W(s) \
    (FP_B(s, 0) | FP_B(s, 1) | FP_B(s, 2) | FP_B(s, 3) | FP_B(s, 4) | FP_B(s, 5) | FP_B(s, 6) | FP_B(s, 7))
/* the low n bytes, 0 < n < 8 */
#define FP_MASK(n) ((1ull << (8 * (n))) - 1)

/* How many of the word's bytes, from the first, are decimal digits (0-8).
 * A byte is not a digit when its high bit is set, or, of its low 7 bits
 * b, when b + 0x46 reaches 0x80 (b >= '9' + 1) or b + 0x50 does not
 * (b < '0'); 7 bits plus either constant stays below 0x100, so no byte
 * carries into the next. */
static inline __attribute__((always_inline)) unsigned fp_ndigits(uint64_t w)
{
    uint64_t b = w & ~FP_HIGH;
    uint64_t non = (w | (b + FP_ONES * 0x46) | ~(b + FP_ONES * 0x50)) & FP_HIGH;
    return non ? (unsigned)__builtin_ctzll(non) >> 3 : 8;
}

/* The value of the word's first n digits (1 <= n <= 8, fp_ndigits said
 * so).  They are moved to the top of the word, so that the bytes below are
 * leading zeros, then pairs of bytes are joined into 16-bit lanes (10a +
 * b), pairs of those into 32-bit lanes (100a + b), and the two halves
 * (10000a + b): the first digit is the low byte, so each step's "a" is the
 * lane's low half. */
static inline __attribute__((always_inline)) uint64_t fp_digits_value(uint64_t w, unsigned n)
{
    uint64_t v = (w & (FP_ONES * 0x0f)) << (8 * (8 - n));
    v = (v * 10 + (v >> 8)) & 0x00ff00ff00ff00ffull;
    v = (v * 100 + (v >> 16)) & 0x0000ffff0000ffffull;
    return (v * 10000 + (v >> 32)) & 0xffffffffull;
}

/* 8 hex digits (a word, the first digit in its low byte) as 4 bytes, the
 * first digit the first byte's high nibble, in the low 32 bits; -1 when a
 * byte is not a hex digit.  A byte is a digit when 0x30 <= b <= 0x39, a
 * letter when b | 0x20 (the lower case) is 0x61 to 0x66, tested as in
 * fp_ndigits; its value is its low nibble, plus 9 for a letter. */
static inline __attribute__((always_inline)) int64_t fp_hex8_swar(uint64_t w)
{
    uint64_t b = w & ~FP_HIGH, l = b | (FP_ONES * 0x20);
    uint64_t digit = (b + FP_ONES * (0x80 - 0x30)) & ~(b + FP_ONES * (0x80 - 0x3a));
    uint64_t alpha = (l + FP_ONES * (0x80 - 0x61)) & ~(l + FP_ONES * (0x80 - 0x67));
    if (((digit | alpha) & ~w & FP_HIGH) != FP_HIGH)
        return -1;
    uint64_t nib = (w & (FP_ONES * 0x0f)) + ((alpha & FP_HIGH) >> 7) * 9;
    /* each 16-bit lane (first nibble low) to one byte (first nibble high),
     * then the four bytes side by side */
    uint64_t t = ((nib << 4) | (nib >> 8)) & 0x00ff00ff00ff00ffull;
    t = (t | (t >> 8)) & 0x0000ffff0000ffffull;
    return (int64_t)((t | (t >> 16)) & 0xffffffffull);
}

/* s[0..32) (all readable) as 16 bytes at out; 0, or -1 when one of them
 * is not a hex digit (out then undefined). */
static inline __attribute__((always_inline)) int fp_hex32_swar(const char *s, uint8_t *out)
{
    const char *e = s + 32;
    int64_t a = fp_hex8_swar(fp_ld8(s, e)), b = fp_hex8_swar(fp_ld8(s + 8, e));
    int64_t c = fp_hex8_swar(fp_ld8(s + 16, e)), d = fp_hex8_swar(fp_ld8(s + 24, e));
    if ((a | b | c | d) < 0)
        return -1;
    uint64_t lo = (uint64_t)a | (uint64_t)b << 32, hi = (uint64_t)c | (uint64_t)d << 32;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    lo = __builtin_bswap64(lo);
    hi = __builtin_bswap64(hi);
#endif
    memcpy(out, &lo, 8);
    memcpy(out + 8, &hi, 8);
    return 0;
}

#ifdef __SSE2__
/* The same with SSE2, 16 digits a vector.  Bytes compare as signed, so
 * one at 0x80 or above is below every bound and neither digit nor
 * letter.  A range lo..hi is one compare: b - lo + 0x80 (wrapping) is
 * below hi - lo + 1 - 0x80, as a signed byte, only for b in it. */
static inline __attribute__((always_inline)) __m128i fp_hex16_sse2(__m128i x, __m128i *bad)
{
    __m128i l = _mm_or_si128(x, _mm_set1_epi8(0x20));
    __m128i digit =
        _mm_cmplt_epi8(_mm_add_epi8(x, _mm_set1_epi8((char)(0x80 - 0x30))), _mm_set1_epi8((char)(0x80 + 10)));
    __m128i alpha =
        _mm_cmplt_epi8(_mm_add_epi8(l, _mm_set1_epi8((char)(0x80 - 0x61))), _mm_set1_epi8((char)(0x80 + 6)));
    *bad = _mm_or_si128(*bad, _mm_andnot_si128(_mm_or_si128(digit, alpha), _mm_set1_epi8(-1)));
    __m128i nib = _mm_add_epi8(_mm_and_si128(x, _mm_set1_epi8(0x0f)), _mm_and_si128(alpha, _mm_set1_epi8(9)));
    /* 16-bit lanes: the first nibble is the low byte */
    return _mm_and_si128(_mm_or_si128(_mm_slli_epi16(nib, 4), _mm_srli_epi16(nib, 8)),
                         _mm_set1_epi16(0x00ff));
}

static inline __attribute__((always_inline)) int fp_hex32_sse2(const char *s, uint8_t *out)
{
    __m128i bad = _mm_setzero_si128();
    __m128i a = fp_hex16_sse2(_mm_loadu_si128((const __m128i *)(const void *)s), &bad);
    __m128i b = fp_hex16_sse2(_mm_loadu_si128((const __m128i *)(const void *)(s + 16)), &bad);
    if (_mm_movemask_epi8(bad))
        return -1;
    _mm_storeu_si128((__m128i *)(void *)out, _mm_packus_epi16(a, b));
    return 0;
}
#define fp_hex32 fp_hex32_sse2
#else
#define fp_hex32 fp_hex32_swar
#endif

#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* dump.c: etsmgrctl dump TABLE, every user entry of a live table.
 *
 * It opens the table for reading through etsmgrd (open_table: an O_RDONLY
 * fd, mapped PROT_READ) and walks it with the lock-free foreach, so the
 * owner is never held up and nothing can be written by mistake.  The
 * project's own bookkeeping (request ids an older etscounterd recorded as
 * entries: tbl_is_bookkeeping) is left out; every other key is printed,
 * those that start with a NUL byte too (big-endian integer keys, the usual
 * way to order numbers in an ordered_set, start with NULs).  The JSON is
 * written here, not with cJSON: keys and values are bytes, and every byte
 * must come out (control bytes and NULs as \u00XX escapes, bytes that are
 * not UTF-8 as \udcXX, see put_json_string).  Integers print as numbers,
 * byte strings as strings: the shape of etscounter --json check's "data".
 *
 * An ordered_set table comes out in key order (its foreach walks the
 * B+tree); --from/--to print the range [from, to) with
 * etsmgr_table_foreach_range, either end open when not given.  A range of a
 * set has no meaning (its keys have no order), so it is refused as a usage
 * error once the table's type is known.  A KEY on the command line is its
 * bytes, with \xNN for any byte: the text output's own escape, so a key
 * printed by dump can be pasted back as a bound. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "etsmgr.h"
#include "table.h" /* tbl_is_bookkeeping */

struct dump {
    bool json;
    unsigned long n;
};

/* what dump_cb returns to stop the walk once stdout fails (the library's
 * own errors are negative): a closed pipe with SIGPIPE ignored, a full disk */
#define DUMP_OUTPUT_FAILED 1

/* The length of the well-formed UTF-8 sequence at p (at most n bytes), 0
 * when there is none: no overlong forms, no UTF-16 surrogates, nothing
 * above U+10FFFF (RFC 3629). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* JSON text is UTF-8, and keys and values are any bytes: well-formed UTF-8
 * goes out as it is, every other byte XX as \udcXX, a lone low surrogate
 * that no UTF-8 text can contain (Python's "surrogateescape"), so the
 * output is always valid UTF-8, two different keys never print the same,
 * and the bytes can be recovered (in Python:
 * s.encode("utf-8", "surrogateescape")). */
static void put_json_string(const unsigned char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = utf8_len(p + i, n - i);
        if (len == 0) {
            printf("\\udc%02x", c);
            i++;
        } else if (len > 1) {
            fwrite(p + i, 1, len, stdout);
            i += len;
        } else {
            if (c == '"' || c == '\\')
                printf("\\%c", c);
            else if (c < 0x20 || c == 0x7f)
                printf("\\u%04x", c);
            else
                putchar(c);
            i++;
        }
    }
    putchar('"');
}

/* For people: printable bytes as they are, the rest as \xNN. */
static void put_text(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
}

static int dump_cb(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    struct dump *d = arg;
    const unsigned char *k = key;
    if (ferror(stdout)) {
        ctl_output_failed();
        return DUMP_OUTPUT_FAILED; /* said by ctl_output_status */
    }
    if (tbl_is_bookkeeping(key, klen, v))
        return 0;
    if (d->json) {
        printf("%s", d->n ? "," : "{");
        put_json_string(k, klen);
        putchar(':');
        if (v->type == ETSMGR_INT)
            printf("%lld", (long long)v->i);
        else
            put_json_string(v->data, v->len);
    } else {
        printf("  ");
        put_text(k, klen);
        if (v->type == ETSMGR_INT) {
            printf(" = %lld\n", (long long)v->i);
        } else {
            printf(" = \"");
            put_text(v->data, v->len);
            printf("\"\n");
        }
    }
    d->n++;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A KEY argument to its bytes: \xNN is byte NN, \\ a backslash, the rest
 * as it is.  0, or -1 after saying what is wrong. */
static int parse_key(const char *opt, const char *s, unsigned char *out, size_t *len)
{
    size_t n = 0;
    for (const char *p = s; *p; n++) {
        if (n == ETSMGR_KEY_MAX) {
            fprintf(stderr, "etsmgrctl: %s: a key is at most %u bytes\n", opt, ETSMGR_KEY_MAX);
            return -1;
        }
        if (*p != '\\') {
            out[n] = (unsigned char)*p++;
        } else if (p[1] == '\\') {
            out[n] = '\\';
            p += 2;
        } else if (p[1] == 'x' && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
            out[n] = (unsigned char)(hexval(p[2]) * 16 + hexval(p[3]));
            p += 4;
        } else {
            fprintf(stderr, "etsmgrctl: %s \"%s\": a backslash starts \\xNN (a byte in hex) or \\\\\n", opt, s);
            return -1;
        }
    }
    if (n == 0) {
        fprintf(stderr, "etsmgrctl: %s: a key is 1 to %u bytes (leave %s out for an open end)\n", opt,
                ETSMGR_KEY_MAX, opt);
        return -1;
    }
    *len = n;
    return 0;
}

int ctl_dump(const rt_paths *rt, const char *name, const char *from, const char *to, int timeout, bool json)
{
    unsigned char fk[ETSMGR_KEY_MAX], tk[ETSMGR_KEY_MAX];
    size_t fl = 0, tl = 0;
    if ((from && parse_key("--from", from, fk, &fl) < 0) || (to && parse_key("--to", to, tk, &tl) < 0))
        return CTL_EXIT_USAGE;
    etsmgr_client *c = NULL;
    int r = ctl_connect(rt, timeout, &c);
    if (r)
        return r;
    etsmgr_table *t = NULL;
    r = etsmgr_open_table(c, name, ETSMGR_READ, &t);
    if (r) {
        fprintf(stderr, "etsmgrctl: dump %s: %s\n", name, etsmgr_client_message(c));
        /* no such table: 66, as for save */
        int rc = CTL_EXIT_SOFTWARE;
        if (strcmp(etsmgr_client_error(c), "not_found") == 0)
            rc = CTL_EXIT_NOINPUT;
        else if (r == ETSMGR_ENOTCONN || r == ETSMGR_ETIMEDOUT)
            rc = CTL_EXIT_UNAVAILABLE;
        etsmgr_client_close(c);
        return rc;
    }
    /* a writer stopped mid-change must not hold a person's terminal forever */
    etsmgr_table_set_lock_timeout(t, (unsigned)timeout);
    bool range = from || to;
    etsmgr_table_info info;
    if (range && (r = etsmgr_table_info_get(t, &info)) == 0 && info.type != ETSMGR_ORDERED_SET) {
        fprintf(stderr, "etsmgrctl: dump %s: --from and --to need an ordered_set table; %s is a set, "
                "whose keys have no order (dump it whole)\n", name, name);
        etsmgr_table_close(t);
        etsmgr_client_close(c);
        return CTL_EXIT_USAGE;
    }
    struct dump d = {.json = json};
    if (!json) {
        printf("table %s", name);
        if (from) {
            printf(", keys from ");
            put_text(fk, fl);
        }
        if (to) {
            printf(from ? " up to " : ", keys up to ");
            put_text(tk, tl);
            printf(" (not included)");
        }
        printf(":\n");
    }
    if (r == 0)
        r = range ? etsmgr_table_foreach_range(t, from ? fk : NULL, fl, to ? tk : NULL, tl, dump_cb, &d)
                  : etsmgr_table_foreach(t, dump_cb, &d);
    if (r == DUMP_OUTPUT_FAILED)
        r = 0;
    if (json)
        printf("%s\n", d.n ? "}" : "{}");
    else if (d.n == 0 && r == 0)
        printf("  (no entries)\n");
    etsmgr_table_close(t);
    etsmgr_client_close(c);
    if (r) {
        fflush(stdout);
        fprintf(stderr, "etsmgrctl: dump %s: reading the table failed: %s\n", name, etsmgr_strerror(r));
        return CTL_EXIT_SOFTWARE;
    }
    return 0;
}

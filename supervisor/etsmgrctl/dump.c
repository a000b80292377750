/* SPDX-License-Identifier: Apache-2.0 */
/* dump.c: etsmgrctl dump TABLE, every user entry of a live table.
 *
 * It opens the table for reading through etsmgrd (open_table: an O_RDONLY
 * fd, mapped PROT_READ) and walks it with the lock-free foreach, so the
 * owner is never held up and nothing can be written by mistake.  Keys that
 * start with a NUL byte are the project's own bookkeeping (etscounterd's
 * request records) and are left out, as etscounter check does.  The JSON is
 * written here, not with cJSON: keys and values are bytes, and every byte
 * must come out (control bytes and NULs as \u00XX escapes, others as
 * they are).  Integers print as numbers, byte strings as strings: the shape
 * of etscounter --json check's "data". */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "etsmgr.h"

struct dump {
    bool json;
    unsigned long n;
};

static void put_json_string(const unsigned char *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
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
    if (klen == 0 || k[0] == 0)
        return 0; /* bookkeeping */
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

int ctl_dump(const rt_paths *rt, const char *name, int timeout, bool json)
{
    etsmgr_client *c = NULL;
    char msg[300];
    int r = etsmgr_connect(rt->dir, rt->instance, &c, msg, sizeof msg);
    if (r) {
        fprintf(stderr, "etsmgrctl: %s\n", msg);
        return r == ETSMGR_ENOTCONN ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_SOFTWARE;
    }
    etsmgr_client_set_timeout(c, timeout);
    etsmgr_table *t = NULL;
    r = etsmgr_open_table(c, name, ETSMGR_READ, &t);
    if (r) {
        fprintf(stderr, "etsmgrctl: dump %s: %s\n", name, etsmgr_client_message(c));
        etsmgr_client_close(c);
        return r == ETSMGR_ENOTCONN || r == ETSMGR_ETIMEDOUT ? CTL_EXIT_UNAVAILABLE : CTL_EXIT_SOFTWARE;
    }
    /* a writer stopped mid-change must not hold a person's terminal forever */
    etsmgr_table_set_lock_timeout(t, (unsigned)timeout);
    struct dump d = {.json = json};
    if (!json)
        printf("table %s:\n", name);
    r = etsmgr_table_foreach(t, dump_cb, &d);
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

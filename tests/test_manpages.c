/* SPDX-License-Identifier: Apache-2.0 */
/* test_manpages.c: the man pages render without a single warning, have the
 * sections a reader looks for, and agree with each program's --help.
 *
 * The renderer is `mandoc -Tlint` when installed (the stricter linter),
 * else `groff -ww -man -z` (all warnings on, output discarded); groff exits
 * 0 on warnings, so any output at all is the failure, not the status.
 * Agreement with --help is checked both ways on option names: every option
 * the OPTIONS section lists as a .TP/.IP tag must appear in --help, and
 * every --long option --help prints must appear somewhere in the page.
 * Every error code etsmgr.h declares must be in etsmgr(3)'s EXIT STATUS
 * list and have its own words from etsmgr_strerror(); the codes are read
 * from the header itself, so a code added there is checked at once.
 * Each test collects every problem before failing, so one run lists all. */
#include <check.h>
#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etsmgr.h"
#include "runcap.h"
#include "testutil.h"

/* name, section, is a program */
static const struct mp_expect {
    const char *name;
    char section;
    bool program;
} mp_pages[] = {
    {"etsmgrd", '8', true},      {"etssup", '8', true},     {"etscounterd", '8', true},
    {"etscounter", '1', true},   {"etsmgrctl", '1', true},  {"etsmgr-crashlab", '1', true},
    {"etsmgr", '3', false},
};
#define MP_NPAGES (sizeof mp_pages / sizeof mp_pages[0])

typedef struct mp_report {
    char *buf;
    size_t len, cap;
    int problems;
} mp_report;

static void mp_add(mp_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mp_add(mp_report *r, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t l = strlen(line);
    if (r->len + l + 2 > r->cap) {
        r->cap = (r->len + l + 2) * 2;
        r->buf = realloc(r->buf, r->cap);
        ck_assert_ptr_nonnull(r->buf);
    }
    memcpy(r->buf + r->len, line, l);
    r->len += l;
    r->buf[r->len++] = '\n';
    r->buf[r->len] = '\0';
    r->problems++;
}

static void mp_finish(mp_report *r)
{
    ck_assert_msg(r->problems == 0, "%d problem(s):\n%s", r->problems, r->buf ? r->buf : "");
    free(r->buf);
}

static const char *mp_srcdir(void)
{
    const char *s = getenv("ETSMGR_SRCDIR");
    return s && *s ? s : ".";
}

static void mp_page_path(const struct mp_expect *p, char *buf, size_t len)
{
    snprintf(buf, len, "%s/docs/man/%s.%c", mp_srcdir(), p->name, p->section);
}

static bool mp_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The roff text with escapes a reader does not see removed: \- is '-',
 * font changes and zero-width \& vanish, quotes stay. */
static char *mp_unescape(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            *o++ = s[i];
            continue;
        }
        char c = s[i + 1];
        if (c == '-') {
            *o++ = '-';
            i++;
        } else if (c == '&') {
            i++;
        } else if (c == 'e') {
            *o++ = '\\';
            i++;
        } else if (c == 'f') { /* \fB \fR \f(CW \f[B] */
            i += 2;
            if (i < n && s[i] == '(') {
                i += 2;
            } else if (i < n && s[i] == '[') {
                while (i < n && s[i] != ']') {
                    i++;
                }
            }
        } else if (c == '(' && i + 3 < n && s[i + 2] == 'h' && s[i + 3] == 'y') {
            *o++ = '-';
            i += 3;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

/* Calls fn for each option token (-x or --long-name) in text. */
static void mp_each_option(const char *text, bool long_only, void (*fn)(const char *opt, void *arg), void *arg)
{
    for (const char *p = text; *p; p++) {
        if (*p != '-' || (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-'))) {
            continue;
        }
        const char *q = p + 1;
        bool dbl = *q == '-';
        if (dbl) {
            q++;
        }
        if (!isalpha((unsigned char)*q) || (long_only && !dbl)) {
            continue;
        }
        const char *e = q;
        while (isalnum((unsigned char)*e) || (*e == '-' && isalnum((unsigned char)e[1]))) {
            e++;
        }
        if (!dbl && e - q != 1) {
            continue; /* "-word" is prose, not a short option */
        }
        char opt[128];
        size_t l = (size_t)(e - p);
        if (l < sizeof opt) {
            memcpy(opt, p, l);
            opt[l] = '\0';
            fn(opt, arg);
        }
        p = e - 1;
    }
}

/* True when opt occurs in text as a whole token. */
static bool mp_has_token(const char *text, const char *opt)
{
    size_t l = strlen(opt);
    for (const char *p = strstr(text, opt); p; p = strstr(p + 1, opt)) {
        bool start_ok = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '-');
        bool end_ok = !(isalnum((unsigned char)p[l]) || (p[l] == '-' && isalnum((unsigned char)p[l + 1])));
        if (start_ok && end_ok) {
            return true;
        }
    }
    return false;
}

/* The section headers of a page, one per line, uppercased, unquoted. */
static bool mp_has_section(const char *page, const char *name)
{
    const char *p = page;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p) : strlen(p);
        if (l > 4 && strncmp(p, ".SH ", 4) == 0) {
            char h[128];
            size_t k = 0;
            for (size_t i = 4; i < l && k + 1 < sizeof h; i++) {
                if (p[i] != '"') {
                    h[k++] = (char)toupper((unsigned char)p[i]);
                }
            }
            while (k > 0 && isspace((unsigned char)h[k - 1])) {
                k--;
            }
            h[k] = '\0';
            if (strcmp(h, name) == 0) {
                return true;
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return false;
}

/* The OPTIONS section's tag lines (after .TP, or .IP's argument), joined. */
static char *mp_option_tags(const char *page)
{
    size_t cap = strlen(page) + 1, len = 0;
    char *tags = calloc(1, cap);
    ck_assert_ptr_nonnull(tags);
    bool in_opts = false, next_is_tag = false;
    const char *p = page;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(l < sizeof line ? l : sizeof line - 1), p);
        if (strncmp(line, ".SH", 3) == 0) {
            in_opts = strstr(line, "OPTIONS") != NULL;
            next_is_tag = false;
        } else if (in_opts) {
            const char *tag = NULL;
            if (next_is_tag) {
                tag = line;
                next_is_tag = false;
            } else if (strncmp(line, ".TP", 3) == 0) {
                next_is_tag = true;
            } else if (strncmp(line, ".IP ", 4) == 0) {
                tag = line + 4;
            }
            if (tag) {
                size_t tl = strlen(tag);
                memcpy(tags + len, tag, tl);
                len += tl;
                tags[len++] = '\n';
                tags[len] = '\0';
            }
        }
        p = eol ? eol + 1 : NULL;
    }
    return tags;
}

START_TEST(test_every_page_exists)
{
    mp_report r = {0};
    for (size_t i = 0; i < MP_NPAGES; i++) {
        char path[512];
        mp_page_path(&mp_pages[i], path, sizeof path);
        if (!mp_exists(path)) {
            mp_add(&r, "missing man page %s (%s(%c))", path, mp_pages[i].name, mp_pages[i].section);
        }
    }
    mp_finish(&r);
}
END_TEST

START_TEST(test_pages_render_without_warnings)
{
    mp_report r = {0};
    char *probe = NULL;
    bool mandoc = rc_ok(rc_sh(&probe, 5000, "command -v mandoc"));
    free(probe);
    bool man = rc_ok(rc_sh(&probe, 5000, "command -v man"));
    free(probe);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/docs/man", mp_srcdir());
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "opendir %s failed", dir);
    int rendered = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 3 || de->d_name[l - 2] != '.' || !isdigit((unsigned char)de->d_name[l - 1])) {
            continue;
        }
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        char *out = NULL;
        char *lint[] = {"mandoc", "-Tlint", "-Wwarning", path, NULL};
        char *gr[] = {"groff", "-ww", "-man", "-z", path, NULL};
        int st = rc_run(mandoc ? lint : gr, &out, 20000);
        if (!rc_ok(st) || (out && *out)) {
            mp_add(&r, "%s: %s says:\n%s", de->d_name, mandoc ? "mandoc -Tlint" : "groff -ww -man -z",
                   out ? out : "(no output)");
        }
        free(out);
        /* and as a reader sees it: man on an 80-column terminal (troff's
         * "cannot adjust line" shows only there) */
        if (man) {
            st = rc_sh(&out, 20000, "MANWIDTH=80 MAN_KEEP_FORMATTING= man --warnings -l '%s' 2>&1 >/dev/null", path);
            if (!rc_ok(st) || (out && *out))
                mp_add(&r, "%s: man --warnings says:\n%s", de->d_name, out ? out : "(no output)");
            free(out);
        }
        rendered++;
    }
    closedir(d);
    ck_assert_msg(rendered > 0, "no man pages in %s", dir);
    mp_finish(&r);
}
END_TEST

START_TEST(test_pages_have_sections)
{
    static const char *prog_sections[] = {"NAME",     "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT",
                                          "FILES",    "EXIT STATUS", "EXAMPLES", "SEE ALSO", NULL};
    /* a library has no options, and its "exit status" is a return value */
    static const char *lib_sections[] = {"NAME",  "SYNOPSIS", "DESCRIPTION", "ENVIRONMENT",
                                         "FILES", "EXAMPLES", "SEE ALSO",    NULL};
    mp_report r = {0};
    for (size_t i = 0; i < MP_NPAGES; i++) {
        char path[512];
        mp_page_path(&mp_pages[i], path, sizeof path);
        char *page = rc_slurp(path);
        if (!page) {
            continue; /* test_every_page_exists names it */
        }
        for (const char **s = mp_pages[i].program ? prog_sections : lib_sections; *s; s++) {
            if (!mp_has_section(page, *s)) {
                mp_add(&r, "%s.%c has no .SH %s section", mp_pages[i].name, mp_pages[i].section, *s);
            }
        }
        if (!mp_pages[i].program && !mp_has_section(page, "RETURN VALUE") && !mp_has_section(page, "EXIT STATUS")) {
            mp_add(&r, "%s.%c has neither a RETURN VALUE nor an EXIT STATUS section", mp_pages[i].name,
                   mp_pages[i].section);
        }
        free(page);
    }
    mp_finish(&r);
}
END_TEST

typedef struct mp_cmp {
    mp_report *r;
    const char *prog;
    const char *other; /* text the option must occur in */
    const char *where;
} mp_cmp;

static void mp_check_one(const char *opt, void *arg)
{
    mp_cmp *c = arg;
    if (!mp_has_token(c->other, opt)) {
        char line[512];
        snprintf(line, sizeof line, "%s: %s %s\n", c->prog, opt, c->where);
        if (!c->r->buf || !strstr(c->r->buf, line)) { /* once per option */
            mp_add(c->r, "%s: %s %s", c->prog, opt, c->where);
        }
    }
}

START_TEST(test_help_agrees_with_page)
{
    mp_report r = {0};
    int compared = 0;
    for (size_t i = 0; i < MP_NPAGES; i++) {
        if (!mp_pages[i].program) {
            continue;
        }
        char path[512];
        mp_page_path(&mp_pages[i], path, sizeof path);
        char *raw = rc_slurp(path);
        if (!raw) {
            continue; /* test_every_page_exists names it */
        }
        const char *bin = tu_bin(mp_pages[i].name, false);
        if (access(bin, X_OK) != 0) {
            mp_add(&r, "%s: its man page exists but %s is not built", mp_pages[i].name, bin);
            free(raw);
            continue;
        }
        char *help = NULL;
        char *argv[] = {(char *)bin, "--help", NULL};
        int st = rc_run(argv, &help, 10000);
        if (!rc_ok(st)) {
            mp_add(&r, "%s --help did not exit 0 (status %d):\n%s", bin, st, help ? help : "");
        } else {
            char *page = mp_unescape(raw);
            char *tags_raw = mp_option_tags(raw);
            char *tags = mp_unescape(tags_raw);
            if (!strstr(tags, "-")) {
                mp_add(&r, "%s: the OPTIONS section of %s lists no option (.TP tags)", mp_pages[i].name, path);
            }
            mp_cmp in_help = {&r, mp_pages[i].name, help, "is in the man page's OPTIONS but not in --help"};
            mp_each_option(tags, false, mp_check_one, &in_help);
            mp_cmp in_page = {&r, mp_pages[i].name, page, "is in --help but not in the man page"};
            mp_each_option(help, true, mp_check_one, &in_page);
            free(tags);
            free(tags_raw);
            free(page);
            compared++;
        }
        free(help);
        free(raw);
    }
    ck_assert_msg(compared > 0 || r.problems > 0, "no program page could be compared with --help");
    mp_finish(&r);
}
END_TEST

/* The text of the page's section `name` (up to the next .SH), or NULL. */
static char *mp_section_text(const char *page, const char *name)
{
    char head[128];
    snprintf(head, sizeof head, "\n.SH %s\n", name);
    const char *start = strstr(page, head);
    if (!start) {
        return NULL;
    }
    start += strlen(head);
    const char *end = strstr(start, "\n.SH ");
    size_t l = end ? (size_t)(end - start) : strlen(start);
    char *out = malloc(l + 1);
    ck_assert_ptr_nonnull(out);
    memcpy(out, start, l);
    out[l] = '\0';
    return out;
}

START_TEST(test_every_error_documented)
{
    char hpath[512], mpath[512];
    snprintf(hpath, sizeof hpath, "%s/client/include/etsmgr.h", mp_srcdir());
    snprintf(mpath, sizeof mpath, "%s/docs/man/etsmgr.3", mp_srcdir());
    char *header = rc_slurp(hpath), *raw = rc_slurp(mpath);
    ck_assert_msg(header != NULL, "cannot read %s", hpath);
    ck_assert_msg(raw != NULL, "cannot read %s", mpath);
    char *page = mp_unescape(raw);
    char *status = mp_section_text(page, "EXIT STATUS");
    ck_assert_msg(status != NULL, "etsmgr.3 has no EXIT STATUS section");
    mp_report r = {0};
    const char *words[64] = {0};
    int codes = 0;
    /* the enum's lines: "    ETSMGR_EXXX = -N, ..." */
    for (const char *p = strstr(header, "\n    ETSMGR_E"); p; p = strstr(p + 1, "\n    ETSMGR_E")) {
        char name[64];
        int code, used = 0;
        if (sscanf(p + 5, "%63[A-Z_] = %d,%n", name, &code, &used) != 2 || used == 0) {
            continue;
        }
        codes++;
        if (!mp_has_token(status, name)) {
            mp_add(&r, "%s is in etsmgr.h but not in etsmgr(3)'s EXIT STATUS list", name);
        }
        const char *w = etsmgr_strerror(code);
        if (strcmp(w, etsmgr_strerror(-100000)) == 0 || strlen(w) < 4) {
            mp_add(&r, "%s (%d) has no words from etsmgr_strerror", name, code);
        } else if (code < 0 && -code < 64) {
            for (int j = 0; j < 64; j++) {
                if (words[j] && strcmp(words[j], w) == 0) {
                    mp_add(&r, "%s (%d) has the same words as code %d: %s", name, code, -j, w);
                }
            }
            words[-code] = w;
        } else {
            mp_add(&r, "%s = %d: codes are expected in -1..-63", name, code);
        }
    }
    ck_assert_msg(codes >= 20, "found only %d error codes in %s: did its enum's layout change?", codes, hpath);
    free(status);
    free(page);
    free(raw);
    free(header);
    mp_finish(&r);
}
END_TEST

Suite *manpages_suite(void)
{
    Suite *s = suite_create("manpages");
    TCase *tc = tcase_create("manpages");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_page_exists);
    tcase_add_test(tc, test_pages_render_without_warnings);
    tcase_add_test(tc, test_pages_have_sections);
    tcase_add_test(tc, test_help_agrees_with_page);
    tcase_add_test(tc, test_every_error_documented);
    suite_add_tcase(s, tc);
    return s;
}

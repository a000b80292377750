/* SPDX-License-Identifier: Apache-2.0 */
/* test_abi.c: what libetsmgr.so exports is exactly the API of etsmgr.h, and
 * an accidental change of it fails here.
 *
 * The dynamic symbols (nm -D) are read from the built library: each must
 * be a function declared in etsmgr.h, under the version node ETSMGR_0, and
 * every function the header declares must be exported.  Before hidden
 * visibility and the version script, 89 internal symbols (frame_read,
 * proto_parse ...) were exported, and an application defining one of its
 * own would silently have replaced the library's.  The exports are then
 * compared with debian/libetsmgr0.symbols, the checked-in list a Debian
 * package build checks too: a symbol gone is an ABI break, a new one must
 * be added there, with the version that adds it, on purpose. */
#include <check.h>
#include <regex.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etsmgr.h"
#include "runcap.h"

#define TA_MAX 256

typedef struct ta_names {
    char *v[TA_MAX];
    int n;
} ta_names;

static void ta_add(ta_names *l, const char *s, size_t len)
{
    ck_assert_int_lt(l->n, TA_MAX);
    l->v[l->n++] = strndup(s, len);
}

static bool ta_has(const ta_names *l, const char *s)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return true;
    return false;
}

static void ta_free(ta_names *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

/* The functions etsmgr.h declares: "etsmgr_name(" after a space or '*'. */
static void ta_header_functions(ta_names *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/client/include/etsmgr.h", rc_srcdir());
    char *text = rc_slurp(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "[ *](etsmgr_[a-z0-9_]+)\\(", REG_EXTENDED), 0);
    regmatch_t m[2];
    for (const char *p = text; regexec(&re, p, 2, m, 0) == 0; p += m[0].rm_eo)
        {
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)(m[1].rm_eo - m[1].rm_so), p + m[1].rm_so);
            if (!ta_has(out, name))
                ta_add(out, name, strlen(name));
        }
    regfree(&re);
    free(text);
}

/* "name@@VERSION" of every defined dynamic symbol of the library. */
static void ta_exports(ta_names *out)
{
    const char *libdir = getenv("ETSMGR_LIBDIR");
    ck_assert_msg(libdir != NULL, "ETSMGR_LIBDIR is not set (run through make check)");
    char *text = NULL;
    int st = rc_sh(&text, 30000, "nm -D --defined-only '%s/libetsmgr.so.%s'", libdir, etsmgr_version());
    ck_assert_msg(rc_ok(st), "nm -D failed: %s", text ? text : "");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *sym = strrchr(line, ' ');
        ck_assert_msg(sym != NULL, "unexpected nm line: %s", line);
        sym++;
        /* nm shows the version node bare; dpkg-gensymbols as NODE@NODE */
        if (strcmp(sym, "ETSMGR_0") == 0)
            sym = "ETSMGR_0@@ETSMGR_0";
        ta_add(out, sym, strlen(sym));
    }
    free(text);
}

START_TEST(test_exports_are_the_header)
{
    ta_names hdr = {0}, exp = {0};
    ta_header_functions(&hdr);
    ta_exports(&exp);
    ck_assert_msg(hdr.n >= 30, "found only %d functions in etsmgr.h", hdr.n);
    char bad[8192] = "";
    for (int i = 0; i < exp.n; i++) {
        const char *s = exp.v[i];
        if (strcmp(s, "ETSMGR_0@@ETSMGR_0") == 0)
            continue; /* the version node itself */
        char name[128];
        snprintf(name, sizeof name, "%s", s);
        char *at = strstr(name, "@@");
        if (!at || strcmp(at, "@@ETSMGR_0") != 0) {
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "  %s: not under version ETSMGR_0\n", s);
            if (at)
                *at = '\0';
        } else
            *at = '\0';
        if (!ta_has(&hdr, name))
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "  %s: exported but not in etsmgr.h\n", name);
    }
    for (int i = 0; i < hdr.n; i++) {
        char v[160];
        snprintf(v, sizeof v, "%s@@ETSMGR_0", hdr.v[i]);
        if (!ta_has(&exp, v))
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "  %s: in etsmgr.h but not exported\n", hdr.v[i]);
    }
    ck_assert_msg(bad[0] == '\0', "libetsmgr.so exports differ from etsmgr.h:\n%s", bad);
    ta_free(&hdr);
    ta_free(&exp);
}
END_TEST

START_TEST(test_exports_match_symbols_file)
{
    ta_names exp = {0}, file = {0};
    ta_exports(&exp);
    char path[4096];
    snprintf(path, sizeof path, "%s/debian/libetsmgr0.symbols", rc_srcdir());
    char *text = rc_slurp(path);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    /* " name@VERSION minver" lines; the header line and "* field" lines aside */
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != ' ')
            continue;
        char sym[160];
        ck_assert_msg(sscanf(line, " %159s", sym) == 1, "bad line in %s: %s", path, line);
        char *at = strchr(sym, '@');
        ck_assert_msg(at != NULL, "no @VERSION in %s: %s", path, line);
        char full[170];
        snprintf(full, sizeof full, "%.*s@@%s", (int)(at - sym), sym, at + 1);
        ta_add(&file, full, strlen(full));
    }
    free(text);
    char bad[8192] = "";
    for (int i = 0; i < file.n; i++)
        if (!ta_has(&exp, file.v[i]))
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad),
                     "  %s: in the symbols file but no longer exported (an ABI break: bump the soname)\n", file.v[i]);
    for (int i = 0; i < exp.n; i++)
        if (!ta_has(&file, exp.v[i]))
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad),
                     "  %s: exported but not in debian/libetsmgr0.symbols (add it with the version that adds it)\n",
                     exp.v[i]);
    ck_assert_msg(bad[0] == '\0', "libetsmgr.so exports differ from debian/libetsmgr0.symbols:\n%s", bad);
    ta_free(&exp);
    ta_free(&file);
}
END_TEST

START_TEST(test_version)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", ETSMGR_VERSION_MAJOR, ETSMGR_VERSION_MINOR, ETSMGR_VERSION_PATCH);
    ck_assert_str_eq(etsmgr_version(), want);
    /* the programs' --version and the package's come from the same macros */
    ck_assert_str_eq(ETSMGR_VERSION_STRING, want);
}
END_TEST

Suite *abi_suite(void)
{
    Suite *s = suite_create("abi");
    TCase *tc = tcase_create("abi");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exports_are_the_header);
    tcase_add_test(tc, test_exports_match_symbols_file);
    tcase_add_test(tc, test_version);
    suite_add_tcase(s, tc);
    return s;
}

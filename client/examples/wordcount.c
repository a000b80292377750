/* SPDX-License-Identifier: Apache-2.0 */
/* wordcount.c: the shortest honest use of libetsmgr: word counts that survive
 * kill -9.
 *
 *   wordcount FILE    count the words of FILE into the table "wordcount",
 *                     then print every count ("word count" lines)
 *   wordcount         print the counts only
 *
 * A word is a run of ASCII letters and digits, lowercased.  The table lives
 * in shared memory and etsmgrd is its heir, so the counts outlive this
 * process.  To make them exact across a kill, the table also keeps how far
 * into FILE the counting got (key "@FILE"), changed in one atomic group with
 * each word's count: a SIGKILL anywhere leaves both or neither.  Run again
 * after a kill, wordcount goes on from that offset, so every word of FILE is
 * counted exactly once (and a finished FILE adds nothing).
 *
 * Build it like any program of yours (from the source tree):
 *   cc -o wordcount wordcount.c $(PKG_CONFIG_PATH=build/lib/pkgconfig pkg-config --cflags --libs etsmgr) */
#include <ctype.h>
#include <errno.h>
#include <etsmgr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, int rc, etsmgr_client *c)
{
    fprintf(stderr, "wordcount: %s: %s%s%s\n", what, etsmgr_strerror(rc), c ? "; " : "",
            c ? etsmgr_client_message(c) : "");
    return 1;
}

/* one word and the new offset, atomically */
static int count_word(etsmgr_table *t, const char *word, size_t len, const char *poskey, long pos)
{
    int64_t n;
    etsmgr_value v = {.type = ETSMGR_INT, .i = pos};
    int rc = etsmgr_table_begin(t);
    if (rc == ETSMGR_OK)
        rc = etsmgr_table_update_counter(t, word, len, 1, 0, &n);
    if (rc == ETSMGR_OK)
        rc = etsmgr_table_insert(t, poskey, strlen(poskey), &v);
    if (rc != ETSMGR_OK) {
        etsmgr_table_abort(t);
        return rc;
    }
    return etsmgr_table_commit(t);
}

static int count_file(etsmgr_table *t, const char *path)
{
    char poskey[ETSMGR_KEY_MAX + 1];
    if (snprintf(poskey, sizeof poskey, "@%s", path) >= (int)sizeof poskey) {
        fprintf(stderr, "wordcount: the path %s is too long for a key\n", path);
        return 1;
    }
    etsmgr_value done;
    int rc = etsmgr_table_lookup(t, poskey, strlen(poskey), &done, NULL, 0);
    if (rc != ETSMGR_OK && rc != ETSMGR_ENOTFOUND)
        return fail("reading the offset", rc, NULL);
    long pos = rc == ETSMGR_OK ? (long)done.i : 0;
    FILE *f = fopen(path, "r");
    if (!f || fseek(f, pos, SEEK_SET) < 0) {
        fprintf(stderr, "wordcount: %s: %s\n", path, strerror(errno));
        return 1;
    }
    char word[ETSMGR_KEY_MAX];
    size_t len = 0;
    int ch;
    while ((ch = getc(f)) != EOF) {
        pos++; /* the offset of the next byte */
        if (!isalnum(ch) || len == sizeof word) {
            /* a word ends; saved with the offset after its last byte (a
             * longer word than a key holds goes on as a new one) */
            long end = isalnum(ch) ? pos - 1 : pos;
            if (len > 0 && (rc = count_word(t, word, len, poskey, end)) != ETSMGR_OK)
                return fail("counting", rc, NULL);
            len = 0;
        }
        if (isalnum(ch))
            word[len++] = (char)tolower(ch);
    }
    if (len > 0 && (rc = count_word(t, word, len, poskey, pos)) != ETSMGR_OK)
        return fail("counting", rc, NULL);
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "wordcount: reading %s failed\n", path);
        return 1;
    }
    return 0;
}

static int print_one(const void *key, size_t klen, const etsmgr_value *v, void *arg)
{
    (void)arg;
    if (v->type == ETSMGR_INT && klen > 0 && *(const char *)key != '@')
        printf("%.*s %lld\n", (int)klen, (const char *)key, (long long)v->i);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: wordcount [FILE]\n");
        return 64;
    }
    /* etsmgrd of $ETSMGR_INSTANCE in $ETSMGR_RUNTIME_DIR (NULL: the defaults) */
    etsmgr_client *c;
    char msg[512];
    int rc = etsmgr_wait(NULL, NULL, 100, 5000, &c, msg, sizeof msg);
    if (rc != ETSMGR_OK) {
        fprintf(stderr, "wordcount: %s (start it with etssup, or make run)\n", msg);
        return 69;
    }
    /* our table: created empty, or given back with its data after a crash */
    etsmgr_table *t;
    rc = etsmgr_new_table(c, "wordcount", NULL, NULL, &t, NULL);
    if (rc != ETSMGR_OK)
        return fail("getting the table wordcount", rc, c);
    if (argc == 2 && count_file(t, argv[1]) != 0)
        return 1;
    rc = etsmgr_table_foreach(t, print_one, NULL);
    etsmgr_client_close(c); /* the table stays, with etsmgrd as its heir */
    return rc == ETSMGR_OK ? 0 : fail("listing", rc, NULL);
}

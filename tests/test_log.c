/* SPDX-License-Identifier: Apache-2.0 */
/* test_log.c: the log line format (seed transcript and journald forms),
 * level filtering and parsing.  stderr is swapped for a pipe (or a
 * pseudo-terminal, for the short terminal form) to read what a line really
 * looks like on the wire. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Runs fn with stderr on a pipe; returns what it wrote (static buffer). */
static const char *capture(void (*fn)(void))
{
    static char out[16384];
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    int saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(p[1], 2), 2);
    close(p[1]);
    fn();
    dup2(saved, 2);
    close(saved);
    size_t n = 0;
    ssize_t r;
    while ((r = read(p[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    close(p[0]);
    out[n] = '\0';
    return out;
}

static void emit_plain(void)
{
    unsetenv("JOURNAL_STREAM");
    log_init("/usr/bin/etscounterd", LOG_LVL_INFO);
    log_notice("Counter %d.", 1);
    log_debug("not shown");
    errno = EPIPE;
    log_error("broken: %s", "pipe");
}

START_TEST(test_log_plain_format)
{
    const char *out = capture(emit_plain);
    regex_t re;
    ck_assert_int_eq(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}"
                             "[+-][0-9]{2}:[0-9]{2} notice: etscounterd: Counter 1\\.\n"
                             "[0-9T:.+-]+ error: etscounterd: broken: pipe\n$",
                             REG_EXTENDED),
                     0);
    ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "unexpected log output: [%s]", out);
    regfree(&re);
}
END_TEST

/* JOURNAL_STREAM naming the current stderr, as systemd sets it. */
static void set_journal_stream_to_stderr(void)
{
    struct stat st;
    ck_assert_int_eq(fstat(2, &st), 0);
    char v[64];
    snprintf(v, sizeof v, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
}

static void emit_journal(void)
{
    set_journal_stream_to_stderr();
    log_init("etsmgrd", LOG_LVL_DEBUG);
    log_warning("w");
    log_debug("d\n");
}

START_TEST(test_log_journal_prefix)
{
    const char *out = capture(emit_journal);
    /* journald shows the stream's identifier: no program name repeated */
    ck_assert_str_eq(out, "<4>w\n<7>d\n");
}
END_TEST

/* A JOURNAL_STREAM inherited across a redirection of stderr names another
 * file: the line is then for a person, with time and program name. */
static void emit_stale_journal(void)
{
    setenv("JOURNAL_STREAM", "8:1234", 1);
    log_init("etsmgrd", LOG_LVL_INFO);
    log_warning("w");
}

START_TEST(test_log_stale_journal_stream_ignored)
{
    const char *out = capture(emit_stale_journal);
    ck_assert_msg(out[0] != '<' && strstr(out, " warning: etsmgrd: w\n") != NULL,
                  "a JOURNAL_STREAM that is not stderr was taken for journald: [%s]", out);
}
END_TEST

static void emit_long(void)
{
    set_journal_stream_to_stderr();
    log_init("x", LOG_LVL_INFO);
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info("%s", big);
}

START_TEST(test_log_long_line_whole)
{
    const char *out = capture(emit_long);
    ck_assert_uint_eq(strlen(out), strlen("<6>") + 4999 + 1);
    ck_assert_int_eq(out[strlen(out) - 1], '\n');
}
END_TEST

START_TEST(test_log_errno_preserved)
{
    int fd = open("/dev/null", O_WRONLY);
    int saved = dup(2);
    dup2(fd, 2);
    log_init("t", LOG_LVL_DEBUG);
    errno = ENOENT;
    log_error("x");
    ck_assert_int_eq(errno, ENOENT);
    dup2(saved, 2);
    close(saved);
    close(fd);
}
END_TEST

START_TEST(test_log_levels)
{
    ck_assert_int_eq(log_level_parse("debug"), LOG_LVL_DEBUG);
    ck_assert_int_eq(log_level_parse("WARNING"), LOG_LVL_WARNING);
    ck_assert_int_eq(log_level_parse("error"), LOG_LVL_ERROR);
    ck_assert_int_eq(log_level_parse("loud"), -1);
    ck_assert_int_eq(log_level_parse(NULL), -1);
    ck_assert_str_eq(log_level_name(LOG_LVL_NOTICE), "notice");
    log_set_level(LOG_LVL_WARNING);
    ck_assert_int_eq(log_get_level(), LOG_LVL_WARNING);
}
END_TEST

START_TEST(test_log_timestamp)
{
    char ts[64];
    log_timestamp(ts, sizeof ts);
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}[+-][0-9]{2}:[0-9]{2}$",
                             REG_EXTENDED),
                     0);
    ck_assert_msg(regexec(&re, ts, 0, NULL, 0) == 0, "bad timestamp %s", ts);
    regfree(&re);
    /* POSIX TZ strings need no tzdata: offsets show with a colon */
    setenv("TZ", "UTC0", 1);
    tzset();
    log_timestamp(ts, sizeof ts);
    ck_assert_msg(strstr(ts, "+00:00"), "UTC offset in %s", ts);
    setenv("TZ", "IST-05:30", 1);
    tzset();
    log_timestamp(ts, sizeof ts);
    ck_assert_msg(strstr(ts, "+05:30"), "+05:30 offset in %s", ts);
    setenv("TZ", "NST+03:30", 1);
    tzset();
    log_timestamp(ts, sizeof ts);
    ck_assert_msg(strstr(ts, "-03:30"), "-03:30 offset in %s", ts);
}
END_TEST

/* On a terminal: the short local time.  stderr is swapped for the slave
 * side of a pseudo-terminal and the line read from the master. */
START_TEST(test_log_tty_short_time)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(grantpt(m), 0);
    ck_assert_int_eq(unlockpt(m), 0);
    int sl = open(ptsname(m), O_RDWR | O_NOCTTY);
    ck_assert_int_ge(sl, 0);
    struct termios t;
    ck_assert_int_eq(tcgetattr(sl, &t), 0);
    t.c_oflag &= ~(tcflag_t)OPOST; /* no \n -> \r\n */
    ck_assert_int_eq(tcsetattr(sl, TCSANOW, &t), 0);
    int saved = dup(2);
    ck_assert_int_eq(dup2(sl, 2), 2);
    unsetenv("JOURNAL_STREAM");
    setenv("TZ", "UTC0", 1);
    tzset();
    log_init("etssup", LOG_LVL_INFO);
    log_notice("Counter %d.", 7);
    dup2(saved, 2);
    close(saved);
    close(sl);
    char out[512];
    ssize_t n = read(m, out, sizeof out - 1);
    close(m);
    ck_assert_int_gt(n, 0);
    out[n] = '\0';
    regex_t re;
    ck_assert_int_eq(regcomp(&re, "^[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} notice: etssup: Counter 7\\.\n$", REG_EXTENDED),
                     0);
    ck_assert_msg(regexec(&re, out, 0, NULL, 0) == 0, "not the short form on a terminal: [%s]", out);
    regfree(&re);
    log_init("etssup", LOG_LVL_INFO); /* stderr is no terminal again */
}
END_TEST

static void emit_limited(void)
{
    unsetenv("JOURNAL_STREAM");
    log_init("etscounterd", LOG_LVL_INFO);
    struct log_limit l = {0}, other = {0};
    for (int i = 0; i < 25; i++)
        log_limited(&l, 5000, LOG_LVL_WARNING, "refused %d", i);
    log_limited(&other, 5100, LOG_LVL_ERROR, "another kind"); /* its own budget */
    log_limited(&l, 5999, LOG_LVL_WARNING, "refused late");  /* same window: left out */
    log_limited(&l, 6000, LOG_LVL_WARNING, "refused %d", 99); /* a new window: the tally, then it */
    log_limited(&l, 6001, LOG_LVL_DEBUG, "below the level");
}

/* A message that comes once per request is limited per window, and the
 * lines left out are counted in the next window's first line. */
START_TEST(test_log_limited)
{
    const char *out = capture(emit_limited);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++) lines++;
    ck_assert_msg(lines == (int)LOG_LIMIT_BURST + 3, "expected %u lines, got %d: [%s]", LOG_LIMIT_BURST + 3, lines, out);
    ck_assert_ptr_nonnull(strstr(out, "refused 9\n"));
    ck_assert_ptr_null(strstr(out, "refused 10\n"));
    ck_assert_ptr_nonnull(strstr(out, "another kind\n"));
    ck_assert_ptr_null(strstr(out, "refused late"));
    const char *tally = strstr(out, "(16 more lines like the next one were left out in the 1000 ms before it)\n");
    ck_assert_msg(tally != NULL, "no tally of the 16 lines left out: [%s]", out);
    ck_assert_ptr_nonnull(strstr(tally, "refused 99\n"));
    ck_assert_ptr_null(strstr(out, "below the level"));
}
END_TEST

static int limited_first_left_out; /* log_limited's 1s, from emit_limited_flush */
static long long limited_left[4];     /* log_limit_flush's answers */

static void emit_limited_flush(void)
{
    unsetenv("JOURNAL_STREAM");
    log_init("etscounterd", LOG_LVL_INFO);
    struct log_limit l = {0};
    limited_first_left_out = 0;
    for (int i = 0; i < 25; i++)
        limited_first_left_out += log_limited(&l, 5000, LOG_LVL_WARNING, "refused %d", i);
    limited_left[0] = log_limit_flush(&l, 5400, 0); /* the window goes on: nothing yet */
    limited_left[1] = log_limit_flush(&l, 6000, 0); /* it ended, and no line came: the tally */
    limited_left[2] = log_limit_flush(&l, 6001, 0); /* said once */
    log_limited(&l, 6002, LOG_LVL_WARNING, "refused %d", 50); /* the window the tally began: printed */
    for (int i = 0; i < 12; i++)
        log_limited(&l, 6003, LOG_LVL_WARNING, "refused %d", 60 + i);
    limited_left[3] = log_limit_flush(&l, 6004, 1); /* before an exit: at once */
}

/* The lines left out in the last window of a flood are counted although
 * no later line comes: log_limited says when it starts leaving lines out,
 * and log_limit_flush counts them once the window has ended (or at once,
 * forced).  Without it the 15 lines were never mentioned. */
START_TEST(test_log_limited_flush)
{
    const char *out = capture(emit_limited_flush);
    ck_assert_int_eq(limited_first_left_out, 1);
    ck_assert_int_eq(limited_left[0], 600);
    ck_assert_int_eq(limited_left[1], 0);
    ck_assert_int_eq(limited_left[2], 0);
    ck_assert_int_eq(limited_left[3], 0);
    const char *tally = strstr(out, "warning: etscounterd: (15 more lines like \"refused 9\" were left out in the 1000 ms "
                                    "before this one)\n");
    ck_assert_msg(tally != NULL, "no tally of the 15 lines left out: [%s]", out);
    ck_assert_ptr_null(strstr(strstr(tally, "(15 more") + 1, "(15 more")); /* said once */
    const char *fresh = strstr(tally, "refused 50\n");
    ck_assert_msg(fresh != NULL, "the window after the tally printed nothing: [%s]", out);
    ck_assert_ptr_nonnull(strstr(fresh, "refused 68\n"));
    ck_assert_ptr_null(strstr(fresh, "refused 69\n"));
    ck_assert_msg(strstr(fresh, "(3 more lines like \"refused 68\" were left out in the 4 ms before this one)\n") != NULL,
                  "no forced tally: [%s]", out);
}
END_TEST

Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_log_plain_format);
    tcase_add_test(tc, test_log_journal_prefix);
    tcase_add_test(tc, test_log_stale_journal_stream_ignored);
    tcase_add_test(tc, test_log_long_line_whole);
    tcase_add_test(tc, test_log_errno_preserved);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_log_timestamp);
    tcase_add_test(tc, test_log_tty_short_time);
    tcase_add_test(tc, test_log_limited);
    tcase_add_test(tc, test_log_limited_flush);
    suite_add_tcase(s, tc);
    return s;
}

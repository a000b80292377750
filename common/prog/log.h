/* SPDX-License-Identifier: Apache-2.0 */
/* log.h: one log line per event on stderr, as in the seed transcript:
 *   2019-06-24T19:06:09.126790+01:00 notice: etscounterd: Counter 1.
 * When JOURNAL_STREAM names stderr (stderr is a journald stream), each line
 * is the syslog priority and the message, "<5>Counter 1.": journald adds the
 * timestamp and the stream's identifier (the program) itself. */
#ifndef ETSMGR_LOG_H
#define ETSMGR_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG = 7, LOG_LVL_INFO = 6, LOG_LVL_NOTICE = 5,
                 LOG_LVL_WARNING = 4, LOG_LVL_ERROR = 3 };

/* ident names the program in each line; level is the lowest one printed. */
void log_init(const char *ident, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "debug", "info", "notice", "warning", "error" -> level; -1 when unknown */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* One kind of message that may come once per request: log_limited prints
 * at most LOG_LIMIT_BURST of it per LOG_LIMIT_WINDOW_MS (now_ms: any
 * millisecond clock, e.g. uv_now), and says how many it left out with the
 * first line of a later window.  It returns 1 when it left out the first
 * line of a window: the caller then calls log_limit_flush once the window
 * has ended, or the lines left out in the last window of a flood would
 * never be counted.  Zero-initialise. */
#define LOG_LIMIT_BURST 10u
#define LOG_LIMIT_WINDOW_MS 1000
struct log_limit {
    long long window_ms;      /* when the current window began */
    unsigned printed;         /* lines printed in it */
    unsigned long suppressed; /* lines left out in it */
    enum log_level level;     /* theirs */
    char last[120];           /* the last line printed, named by a tally that follows no line */
};
int log_limited(struct log_limit *l, long long now_ms, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The lines l left out, said in a line of their own once their window has
 * ended (at once with force: before an exit).  Returns 0 when nothing is
 * left to say, else the milliseconds until the window ends (call again
 * then). */
long long log_limit_flush(struct log_limit *l, long long now_ms, int force);

/* 1 when $JOURNAL_STREAM is the "device:inode" of stderr, else 0. */
int log_stderr_is_journal(void);

/* Formats the current time as ISO-8601 with microseconds and UTC offset. */
void log_timestamp(char *buf, unsigned long len);
/* "23:17:28.238": local time to the millisecond, for a terminal. */
void log_timestamp_short(char *buf, unsigned long len);
#endif

/* SPDX-License-Identifier: Apache-2.0 */
/* log.c: one line per event on stderr.
 *
 * Each line is formatted completely in memory and handed to the kernel with a
 * single write(2), so lines from several processes sharing one stderr (etssup
 * and its children) never interleave mid-line, and a SIGKILL never leaves half
 * a line behind.  No stdio: stderr's FILE buffer would split long lines.
 *
 * When $JOURNAL_STREAM names stderr itself (its "device:inode", as
 * systemd's documentation asks us to check, so a stale variable inherited
 * across a redirection is ignored), stderr goes to journald, which stamps
 * lines itself, reads the "<N>" syslog prefix as the priority and tags each
 * line with the stream's identifier: the line then carries neither time nor
 * program name, which journald already shows.  etssup gives each child a
 * stream of its own, named after the program (journalctl -t etsmgrd).
 *
 * On a terminal a person reads the lines as they come: the time is the
 * short local "23:17:28.238", so that a line fits 80 columns more often.
 * Anywhere else (a file, a pipe) it is the full ISO 8601 timestamp with
 * microseconds and offset, for logs read later or by programs.
 *
 * A message that can come once per request (a count refused under load)
 * goes through log_limited: at most LOG_LIMIT_BURST lines of it a second,
 * then, with the first line of a later second, one line saying how many
 * were left out.  A million refusals a second would otherwise cost a
 * million writes, and bury everything else in the journal (which
 * rate-limits per service, dropping the other messages too).  The caller
 * passes the time (its loop's clock), so the rule costs no clock read.
 * When a flood stops, no later line comes to count the last window's
 * lines left out: log_limited tells the caller when it starts leaving
 * lines out, and the caller calls log_limit_flush (from a timer, and
 * before it exits) to say how many once the window has ended. */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static char log_ident[64] = "etsmgr";
static enum log_level log_level_cur = LOG_LVL_INFO;
static int log_journal = -1; /* -1: not decided yet (log_init not called) */
static int log_tty = -1;     /* stderr is a terminal: short times */

static const char *const log_names[8] = {
    NULL, NULL, NULL, "error", "warning", "notice", "info", "debug",
};

void log_init(const char *ident, enum log_level level)
{
    if (ident) {
        const char *base = strrchr(ident, '/');
        snprintf(log_ident, sizeof log_ident, "%s", base ? base + 1 : ident);
    }
    log_level_cur = level;
    log_journal = log_stderr_is_journal();
    log_tty = isatty(STDERR_FILENO);
}

int log_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    int used = 0;
    if (!js || sscanf(js, "%llu:%llu%n", &dev, &ino, &used) != 2 || js[used] != '\0')
        return 0;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_set_level(enum log_level level) { log_level_cur = level; }
enum log_level log_get_level(void) { return log_level_cur; }

int log_level_parse(const char *name)
{
    if (!name)
        return -1;
    for (int i = LOG_LVL_ERROR; i <= LOG_LVL_DEBUG; i++)
        if (strcasecmp(name, log_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    if ((int)level < LOG_LVL_ERROR || (int)level > LOG_LVL_DEBUG)
        return "unknown";
    return log_names[level];
}

/* Now, as local time; false (tv still set) when there is no local time. */
static bool log_now(struct timeval *tv, struct tm *tm)
{
    gettimeofday(tv, NULL);
    return localtime_r(&tv->tv_sec, tm) != NULL;
}

void log_timestamp(char *buf, unsigned long len)
{
    struct timeval tv;
    struct tm tm;
    if (len == 0)
        return;
    if (!log_now(&tv, &tm)) {
        snprintf(buf, len, "%lld.%06ld", (long long)tv.tv_sec, (long)tv.tv_usec);
        return;
    }
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    long off = tm.tm_gmtoff; /* seconds east of UTC */
    char sign = off < 0 ? '-' : '+';
    if (off < 0)
        off = -off;
    snprintf(buf, len, "%s.%06ld%c%02ld:%02ld", date, (long)tv.tv_usec, sign, off / 3600,
             (off % 3600) / 60);
}

void log_timestamp_short(char *buf, unsigned long len)
{
    struct timeval tv;
    struct tm tm;
    if (len == 0)
        return;
    if (!log_now(&tv, &tm)) {
        snprintf(buf, len, "%lld.%03ld", (long long)tv.tv_sec, (long)tv.tv_usec / 1000);
        return;
    }
    snprintf(buf, len, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
}

/* write(2) the whole line, retrying on EINTR and short writes. */
static void log_write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        p += w;
        n -= (size_t)w;
    }
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

int log_limited(struct log_limit *l, long long now_ms, enum log_level level, const char *fmt, ...)
{
    if ((int)level > (int)log_level_cur)
        return 0;
    if (now_ms - l->window_ms >= LOG_LIMIT_WINDOW_MS || now_ms < l->window_ms) {
        if (l->suppressed)
            log_msg(level, "(%lu more lines like the next one were left out in the %lld ms before it)", l->suppressed,
                    now_ms - l->window_ms);
        l->window_ms = now_ms;
        l->printed = 0;
        l->suppressed = 0;
    }
    if (l->printed >= LOG_LIMIT_BURST) {
        l->level = level;
        return ++l->suppressed == 1;
    }
    l->printed++;
    /* formatted here, to be kept for a tally that no later line brings */
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    snprintf(l->last, sizeof l->last, "%.*s", (int)sizeof l->last - 1, line);
    log_msg(level, "%s", line);
    return 0;
}

long long log_limit_flush(struct log_limit *l, long long now_ms, int force)
{
    if (!l->suppressed)
        return 0;
    long long left = l->window_ms + LOG_LIMIT_WINDOW_MS - now_ms;
    if (!force && left > 0 && now_ms >= l->window_ms)
        return left;
    log_msg(l->level, "(%lu more lines like \"%s\" were left out in the %lld ms before this one)", l->suppressed,
            l->last, now_ms - l->window_ms);
    l->window_ms = now_ms;
    l->printed = 0;
    l->suppressed = 0;
    return 0;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    if ((int)level > (int)log_level_cur)
        return;
    int saved_errno = errno; /* callers log, then look at errno */
    if (log_journal < 0) {
        log_journal = log_stderr_is_journal();
        log_tty = isatty(STDERR_FILENO);
    }

    char head[128];
    int hl;
    if (log_journal) {
        hl = snprintf(head, sizeof head, "<%d>", (int)level);
    } else {
        char ts[48];
        if (log_tty > 0)
            log_timestamp_short(ts, sizeof ts);
        else
            log_timestamp(ts, sizeof ts);
        hl = snprintf(head, sizeof head, "%s %s: %s: ", ts, log_level_name(level), log_ident);
    }
    if (hl < 0)
        hl = 0;
    if ((size_t)hl >= sizeof head)
        hl = sizeof head - 1;

    char stackbuf[2048];
    char *line = stackbuf;
    size_t cap = sizeof stackbuf;
    va_list ap2;
    va_copy(ap2, ap);
    int ml = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (ml < 0)
        ml = 0;
    size_t need = (size_t)hl + (size_t)ml + 2;
    if (need > cap) {
        char *big = malloc(need);
        if (big) {
            line = big;
            cap = need;
        }
    }
    memcpy(line, head, (size_t)hl);
    vsnprintf(line + hl, cap - (size_t)hl - 1, fmt, ap);
    size_t n = strlen(line + hl) + (size_t)hl;
    /* a message's own trailing newline would make an empty line */
    while (n > (size_t)hl && line[n - 1] == '\n')
        n--;
    line[n++] = '\n';
    log_write_all(line, n);
    if (line != stackbuf)
        free(line);
    errno = saved_errno;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* loadgen.c: the one load generator of `make bench`, for etscounterd and
 * for Redis alike, so that the two columns of a comparison differ only in
 * the server and its protocol, never in the client.
 *
 * One thread and one epoll set drive N connections to a Unix socket.  Each
 * connection is closed-loop, like redis-benchmark: it writes P requests in
 * one write(2), waits for their P replies, and writes the next P.  A
 * request's latency is from the write of its batch to the arrival of its
 * reply, so with P > 1 it includes its wait behind the others of the batch,
 * as a pipelining user sees it.  One thread is deliberate: the machine has
 * two cores, the server (etscounterd and redis-server are both
 * single-threaded) gets one and the load generator the other.
 *
 * Protocols: "json" is the project's framing (4-byte big-endian length, then
 * a JSON object; replies in request order) and "resp" is Redis's.  A reply
 * is checked only as far as telling success from error ("ok":true; ':' or
 * '+'): the reply's contents are the server's business, and parsing them
 * fully would make the client, not the server, the thing measured.
 *
 * After --warmup seconds the window of --secs seconds opens; replies that
 * arrive in it are counted and their latencies kept (all of them, sorted at
 * the end for exact percentiles).  With --server-pid, the server's CPU time
 * over the window is read from /proc, which says whether the server was the
 * bottleneck (near 100% of one core) or was waiting on its clients.
 *
 * Its own cost per request matters: on two cores it has one, and at 50
 * connections a server that needs less than it does waits on it, so the
 * row would measure the load generator.  So, like etscounterd (conn.c),
 * it reads the connections an epoll_wait reported with one io_uring_enter
 * and writes their next requests with another (common/prog/uring.c), the
 * same for both servers; where io_uring is refused, or with --syscalls,
 * it makes one read and one write per connection as before
 * (docs/performance.md, "The 50-connection rows: a turn's I/O in one
 * system call").
 *
 * Output: one result row (see benchutil.h) on stdout.
 * Exit status: 0, 64 usage error, 1 the run failed (connect, a connection
 * closed by the server, an error reply). */
#include "benchutil.h"
#include "uring.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LG_EX_USAGE 64
#define LG_MAX_CONNS 1000
#define LG_MAX_PIPELINE 1024

enum lg_proto { LG_JSON, LG_RESP };

typedef struct lg_conn {
    int fd;
    char *rbuf;
    size_t rlen, rcap;
    char *wbuf;
    size_t wlen, woff, wcap;
    int outstanding;
    double sent_at;
} lg_conn;

typedef struct lg {
    enum lg_proto proto;
    const char *op;
    int pipeline;
    /* request ids as docs/design.md recommends to a high-rate sender: a
     * random prefix for the process, then a counter (printed big-endian in
     * the last 16 hex digits), whose consecutive values etscounterd files
     * in one bucket of its request-id index */
    uint64_t rid_hi, rid_seq;
    /* count-rid's request, made cheaply (the generator shares two cores with
     * the server, so what it spends per request shows in the server's
     * throughput, and a RESP INCR costs it one memcpy): the fixed head with
     * the prefix printed once, and the deadline tail printed again only
     * when the millisecond changed */
    char rid_head[64], rid_tail[80];
    size_t rid_head_len, rid_tail_len;
    long long rid_tail_ms;
    double win_start, win_end;
    uint64_t done, errors;
    double *lat;
    size_t nlat, caplat;
    char first_error[200];
} lg;

static void lg_die(const char *fmt, const char *arg)
{
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void *lg_xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p)
        lg_die("%s", "out of memory");
    return p;
}

static void lg_put(lg_conn *c, const char *data, size_t n)
{
    if (c->wlen + n > c->wcap) {
        c->wcap = (c->wlen + n) * 2;
        c->wbuf = lg_xrealloc(c->wbuf, c->wcap);
    }
    memcpy(c->wbuf + c->wlen, data, n);
    c->wlen += n;
}

/* Appends one request of the run's op to c's output; now_ms is the batch's
 * CLOCK_MONOTONIC time in ms (read once per batch: a clock read costs
 * hundreds of ns on a VM, more than the rest of the request). */
static void lg_put_request(lg *g, lg_conn *c, long long now_ms)
{
    char body[160];
    int n;
    if (g->proto == LG_RESP) {
        if (strcmp(g->op, "incr") == 0)
            lg_put(c, "*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n", 27);
        else
            lg_put(c, "*1\r\n$4\r\nPING\r\n", 14);
        return;
    }
    if (strcmp(g->op, "count-rid") == 0) {
        /* like the CLI: a deadline 5 s ahead, retries for 1 s after it
         * (etscounterd keeps each rid that long, so the bench measures the
         * store at the size real use gives it) */
        if (now_ms != g->rid_tail_ms) {
            g->rid_tail_ms = now_ms;
            g->rid_tail_len = (size_t)snprintf(g->rid_tail, sizeof g->rid_tail,
                                               "\",\"deadline_mono\":%lld,\"retry_until_mono\":%lld}",
                                               now_ms + 5000, now_ms + 6000);
        }
        static const char hex[] = "0123456789abcdef";
        uint64_t seq = g->rid_seq++;
        memcpy(body, g->rid_head, g->rid_head_len);
        char *d = body + g->rid_head_len;
        for (int i = 15; i >= 0; i--, seq >>= 4)
            d[i] = hex[seq & 15];
        memcpy(d + 16, g->rid_tail, g->rid_tail_len);
        n = (int)(g->rid_head_len + 16 + g->rid_tail_len);
    }
    else
        n = snprintf(body, sizeof body, "{\"op\":\"%s\",\"id\":1}", g->op);
    unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                             (unsigned char)n };
    lg_put(c, (const char *)len, 4);
    lg_put(c, body, (size_t)n);
}

/* Writes what is pending; 0, or -1 when the connection failed. */
static int lg_flush(lg_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0; /* EPOLLOUT will tell */
            return -1;
        }
        c->woff += (size_t)n;
    }
    c->woff = c->wlen = 0;
    return 0;
}

/* The next batch of requests into c's output, not written yet. */
static void lg_fill_batch(lg *g, lg_conn *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (int i = 0; i < g->pipeline; i++)
        lg_put_request(g, c, now_ms);
    c->outstanding = g->pipeline;
    c->sent_at = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int lg_send_batch(lg *g, lg_conn *c)
{
    lg_fill_batch(g, c);
    return lg_flush(c);
}

static void lg_reply(lg *g, lg_conn *c, double t, int ok, const char *what, size_t len)
{
    c->outstanding--;
    if (t < g->win_start || t >= g->win_end)
        return;
    g->done++;
    if (!ok && g->errors++ == 0)
        snprintf(g->first_error, sizeof g->first_error, "%.*s", (int)(len > 150 ? 150 : len), what);
    if (g->nlat == g->caplat) {
        g->caplat = g->caplat ? g->caplat * 2 : 1 << 16;
        g->lat = lg_xrealloc(g->lat, g->caplat * sizeof *g->lat);
    }
    g->lat[g->nlat++] = (t - c->sent_at) * 1e6;
}

/* Consumes the whole replies in c's input; -1 on a reply this program cannot
 * read (the stream is lost). */
static int lg_parse(lg *g, lg_conn *c, double t)
{
    size_t off = 0;
    for (;;) {
        size_t avail = c->rlen - off;
        const char *p = c->rbuf + off;
        if (g->proto == LG_JSON) {
            if (avail < 4)
                break;
            uint32_t n = ((uint32_t)(unsigned char)p[0] << 24) | ((uint32_t)(unsigned char)p[1] << 16) |
                         ((uint32_t)(unsigned char)p[2] << 8) | (uint32_t)(unsigned char)p[3];
            if (n > 65536)
                return -1;
            if (avail < 4 + (size_t)n)
                break;
            int ok = (n >= 10 && memcmp(p + 4, "{\"ok\":true", 10) == 0) || memmem(p + 4, n, "\"ok\":true", 9);
            lg_reply(g, c, t, ok, p + 4, n);
            off += 4 + (size_t)n;
        } else {
            const char *eol = avail ? memmem(p, avail, "\r\n", 2) : NULL;
            if (!eol)
                break;
            if (p[0] != ':' && p[0] != '+' && p[0] != '-')
                return -1; /* no bulk or array replies to INCR or PING */
            lg_reply(g, c, t, p[0] != '-', p, (size_t)(eol - p));
            off += (size_t)(eol - p) + 2;
        }
    }
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return 0;
}

static int lg_connect(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof a.sun_path)
        lg_die("socket path too long: %s", path);
    strcpy(a.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        lg_die("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        fprintf(stderr, "loadgen: connect %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
        lg_die("fcntl O_NONBLOCK: %s", strerror(errno));
    return fd;
}

/* utime + stime of pid in seconds, from /proc/PID/stat; -1 when unreadable. */
static double lg_cpu_of(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command may hold spaces */
    if (!p)
        return -1;
    unsigned long ut, st;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double lg_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

static void lg_want_out(int ep, lg_conn *c, int out)
{
    struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One epoll_wait's events with the ring: the reads of every readable
 * connection in one io_uring_enter, their replies parsed, then the next
 * batch of each connection that has all its replies in another.  What the
 * ring leaves (a short write, EAGAIN) is finished as without it. */
static void lg_turn_ring(lg *g, uring *ring, int ep, struct epoll_event *evs, int n, double t, const char *name)
{
    for (int i = 0; i < n; i++) {
        lg_conn *c = evs[i].data.ptr;
        if (evs[i].events & EPOLLOUT) {
            if (lg_flush(c) < 0)
                lg_die("write: %s", strerror(errno));
            if (c->wlen == 0)
                lg_want_out(ep, c, 0);
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            uring_recv(ring, c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, (uint64_t)i);
    }
    if (uring_run(ring) < 0)
        lg_die("io_uring_enter: %s (try --syscalls)", strerror(errno));
    uint64_t tag;
    int32_t r;
    int nsend = 0;
    while (uring_result(ring, &tag, &r)) {
        lg_conn *c = evs[tag].data.ptr;
        if (r == -EAGAIN || r == -EINTR)
            continue;
        if (r < 0)
            lg_die("read: %s", strerror(-r));
        if (r == 0) {
            fprintf(stderr, "loadgen: %s: the server closed a connection (%" PRIu64 " replies so far)\n", name,
                    g->done);
            exit(1);
        }
        c->rlen += (size_t)r;
        if (lg_parse(g, c, t) < 0) {
            fprintf(stderr, "loadgen: %s: a reply this program cannot read\n", name);
            exit(1);
        }
        if (c->outstanding == 0) {
            lg_fill_batch(g, c);
            uring_send(ring, c->fd, c->wbuf + c->woff, c->wlen - c->woff, tag);
            nsend++;
        }
    }
    if (!nsend)
        return;
    if (uring_run(ring) < 0)
        lg_die("io_uring_enter: %s (try --syscalls)", strerror(errno));
    while (uring_result(ring, &tag, &r)) {
        lg_conn *c = evs[tag].data.ptr;
        if (r < 0 && r != -EAGAIN && r != -EINTR)
            lg_die("write: %s", strerror(-r));
        if (r > 0)
            c->woff += (size_t)r;
        if (lg_flush(c) < 0) /* the rest, if any */
            lg_die("write: %s", strerror(errno));
        if (c->wlen)
            lg_want_out(ep, c, 1);
    }
}

static const char lg_usage[] =
    "Usage: loadgen --socket PATH --proto json|resp --op OP --name NAME [OPTION]...\n"
    "Drive a server on a Unix socket with N closed-loop connections, P pipelined\n"
    "requests each, and print one result row (JSON) with req/s, p50 and p99.\n"
    "\n"
    "  -s, --socket PATH      the server's Unix socket\n"
    "  -p, --proto P          json (etscounterd's framing) or resp (Redis)\n"
    "  -o, --op OP            json: count, count-rid (with a fresh request id), ping;\n"
    "                         resp: incr, ping\n"
    "  -c, --conns N          connections (default 1)\n"
    "  -P, --pipeline N       requests written at once per connection (default 1)\n"
    "  -t, --secs S           measured seconds (default 2)\n"
    "  -w, --warmup S         seconds before the window opens (default 0.3)\n"
    "  -n, --name NAME        the row's name\n"
    "  -r, --reference NAME   the row it is compared with (resolved by the report)\n"
    "  -T, --target T         the target, \"OP N\" on the ratio (see report.c)\n"
    "  -A, --also REF[|T]     compare with another row too (repeatable, up to 4)\n"
    "  -S, --server-pid PID   report the server's CPU use over the window\n"
    "      --syscalls         one read and one write per connection, not io_uring\n"
    "\n"
    "Exit status: 0 done, 1 the run failed, 64 usage error.\n";

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },   { "proto", required_argument, NULL, 'p' },
        { "op", required_argument, NULL, 'o' },       { "conns", required_argument, NULL, 'c' },
        { "pipeline", required_argument, NULL, 'P' }, { "secs", required_argument, NULL, 't' },
        { "warmup", required_argument, NULL, 'w' },   { "name", required_argument, NULL, 'n' },
        { "reference", required_argument, NULL, 'r' }, { "target", required_argument, NULL, 'T' },
        { "server-pid", required_argument, NULL, 'S' }, { "also", required_argument, NULL, 'A' },
        { "syscalls", no_argument, NULL, 'Y' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL, *proto = NULL, *name = NULL, *ref = NULL, *target = NULL;
    lg g = { .pipeline = 1 };
    int nconns = 1, nalso = 0, syscalls = 0;
    const char *also[4];
    long server_pid = 0;
    double secs = 2, warmup = 0.3;
    int o;
    while ((o = getopt_long(argc, argv, "s:p:o:c:P:t:w:n:r:T:S:A:h", opts, NULL)) != -1) {
        switch (o) {
        case 's': path = optarg; break;
        case 'p': proto = optarg; break;
        case 'o': g.op = optarg; break;
        case 'c': nconns = atoi(optarg); break;
        case 'P': g.pipeline = atoi(optarg); break;
        case 't': secs = atof(optarg); break;
        case 'w': warmup = atof(optarg); break;
        case 'n': name = optarg; break;
        case 'r': ref = optarg; break;
        case 'T': target = optarg; break;
        case 'S': server_pid = atol(optarg); break;
        case 'A':
            if (nalso == 4) {
                fputs("loadgen: at most 4 --also\n", stderr);
                return LG_EX_USAGE;
            }
            also[nalso++] = optarg;
            break;
        case 'Y': syscalls = 1; break;
        case 'h': fputs(lg_usage, stdout); return 0;
        default: fputs(lg_usage, stderr); return LG_EX_USAGE;
        }
    }
    if (!path || !proto || !g.op || !name || optind < argc || nconns < 1 || nconns > LG_MAX_CONNS ||
        g.pipeline < 1 || g.pipeline > LG_MAX_PIPELINE || !(secs > 0) || warmup < 0) {
        fputs(lg_usage, stderr);
        return LG_EX_USAGE;
    }
    if (strcmp(proto, "json") == 0) {
        g.proto = LG_JSON;
        if (strcmp(g.op, "count") && strcmp(g.op, "count-rid") && strcmp(g.op, "ping")) {
            fprintf(stderr, "loadgen: op %s is not one of count, count-rid, ping for json\n", g.op);
            return LG_EX_USAGE;
        }
    } else if (strcmp(proto, "resp") == 0) {
        g.proto = LG_RESP;
        if (strcmp(g.op, "incr") && strcmp(g.op, "ping")) {
            fprintf(stderr, "loadgen: op %s is not one of incr, ping for resp\n", g.op);
            return LG_EX_USAGE;
        }
    } else {
        fprintf(stderr, "loadgen: protocol %s is not json or resp\n", proto);
        return LG_EX_USAGE;
    }
    if (getrandom(&g.rid_hi, sizeof g.rid_hi, 0) != sizeof g.rid_hi)
        lg_die("getrandom: %s", strerror(errno));
    g.rid_head_len = (size_t)snprintf(g.rid_head, sizeof g.rid_head, "{\"op\":\"count\",\"id\":1,\"rid\":\"%016" PRIx64,
                                      g.rid_hi);
    g.rid_tail_ms = -1;

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        lg_die("epoll_create1: %s", strerror(errno));
    lg_conn *cs = calloc((size_t)nconns, sizeof *cs);
    if (!cs)
        lg_die("%s", "out of memory");
    for (int i = 0; i < nconns; i++) {
        cs[i].fd = lg_connect(path);
        cs[i].rcap = 65536 + 4;
        cs[i].rbuf = lg_xrealloc(NULL, cs[i].rcap);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0)
            lg_die("epoll_ctl ADD: %s", strerror(errno));
    }
    double t0 = bu_now();
    g.win_start = t0 + warmup;
    g.win_end = g.win_start + secs;
    double cpu0 = -1, cpu1 = -1, self0 = 0, self1 = 0;
    int in_window = 0;
    for (int i = 0; i < nconns; i++)
        if (lg_send_batch(&g, &cs[i]) < 0)
            lg_die("write: %s", strerror(errno));

    struct epoll_event evs[64]; /* (64: the ring's entries, one operation per event) */
    uring *ring = syscalls ? NULL : uring_open(64);
    for (;;) {
        double now = bu_now();
        if (!in_window && now >= g.win_start) {
            in_window = 1;
            if (server_pid)
                cpu0 = lg_cpu_of(server_pid);
            self0 = lg_self_cpu();
        }
        if (now >= g.win_end)
            break;
        double until = (in_window ? g.win_end : g.win_start) - now;
        int n = epoll_wait(ep, evs, 64, (int)(until * 1000) + 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            lg_die("epoll_wait: %s", strerror(errno));
        }
        double t = bu_now();
        if (ring && n > 1) { /* (one: read and write cost less than two io_uring_enter) */
            lg_turn_ring(&g, ring, ep, evs, n, t, name);
            continue;
        }
        for (int i = 0; i < n; i++) {
            lg_conn *c = evs[i].data.ptr;
            if (evs[i].events & EPOLLOUT) {
                if (lg_flush(c) < 0)
                    lg_die("write: %s", strerror(errno));
                if (c->wlen == 0) {
                    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r < 0)
                lg_die("read: %s", strerror(errno));
            if (r == 0) {
                fprintf(stderr, "loadgen: %s: the server closed a connection (%" PRIu64 " replies so far)\n",
                        name, g.done);
                return 1;
            }
            c->rlen += (size_t)r;
            if (lg_parse(&g, c, t) < 0) {
                fprintf(stderr, "loadgen: %s: a reply this program cannot read\n", name);
                return 1;
            }
            if (c->outstanding == 0) {
                if (lg_send_batch(&g, c) < 0)
                    lg_die("write: %s", strerror(errno));
                if (c->wlen) {
                    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
        }
    }
    if (server_pid)
        cpu1 = lg_cpu_of(server_pid);
    self1 = lg_self_cpu();
    for (int i = 0; i < nconns; i++) {
        close(cs[i].fd);
        free(cs[i].rbuf);
        free(cs[i].wbuf);
    }
    free(cs);
    close(ep);
    uring_close(ring);

    if (g.errors) {
        fprintf(stderr, "loadgen: %s: %" PRIu64 " error replies, the first: %s\n", name, g.errors, g.first_error);
        return 1;
    }
    double rps = (double)g.done / secs;
    double p50 = bu_percentile(g.lat, g.nlat, 50), p99 = bu_percentile(g.lat, g.nlat, 99);
    cJSON *row = bu_row(name, rps, "req/s", ref, -1);
    cJSON_AddNumberToObject(row, "p50_us", p50);
    cJSON_AddNumberToObject(row, "p99_us", p99);
    cJSON_AddNumberToObject(row, "conns", nconns);
    cJSON_AddNumberToObject(row, "pipeline", g.pipeline);
    cJSON_AddNumberToObject(row, "secs", secs);
    cJSON_AddNumberToObject(row, "requests", (double)g.done);
    cJSON_AddStringToObject(row, "protocol", proto);
    cJSON_AddStringToObject(row, "op", g.op);
    if (cpu0 >= 0 && cpu1 >= 0) {
        cJSON_AddNumberToObject(row, "server_cpu_pct", round((cpu1 - cpu0) / secs * 1000) / 10);
        if (g.done)
            cJSON_AddNumberToObject(row, "server_cpu_us_per_req", (cpu1 - cpu0) / (double)g.done * 1e6);
    }
    cJSON_AddNumberToObject(row, "client_cpu_pct", round((self1 - self0) / secs * 1000) / 10);
    if (target)
        cJSON_AddStringToObject(row, "target", target);
    cJSON *arr = nalso ? cJSON_AddArrayToObject(row, "also") : NULL;
    for (int i = 0; arr && i < nalso; i++) {
        cJSON *a = cJSON_CreateObject();
        const char *bar = strchr(also[i], '|');
        char refname[256];
        snprintf(refname, sizeof refname, "%.*s", bar ? (int)(bar - also[i]) : 255, also[i]);
        cJSON_AddStringToObject(a, "reference", refname);
        if (bar)
            cJSON_AddStringToObject(a, "target", bar + 1);
        cJSON_AddItemToArray(arr, a);
    }
    bu_row_print(row);
    free(g.lat);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: etsmgrd's options, start-up and orderly exit.
 *
 * Start-up order matters and is the whole design of this file:
 *   1. resolve DIR and instance like every program (rt_resolve);
 *   2. take DIR/etsmgrd.lock (flock) before touching the socket: the lock,
 *      not a guess from the socket file, says whether a daemon runs, and the
 *      kernel drops it with its holder however it dies, so a stale socket of
 *      a SIGKILLed daemon can be replaced safely; then the instance's
 *      machine-wide lock (instlock.c), which keeps out a second daemon of the
 *      same instance whatever runtime dir it uses;
 *   3. rediscover the tables an earlier daemon left, so that no client can
 *      ask for a table before the daemon knows it exists;
 *   4. listen (or take the socket systemd or etssup hands in, named
 *      "etsmgrd", whose backlog kept clients waiting across our restart);
 *   5. READY=1 on $NOTIFY_SOCKET, only then.
 * etsmgrd never detaches itself: supervisors (etssup, systemd, s6) want
 * their child in the foreground; --foreground is accepted for scripts.
 *
 * Exit codes are sysexits', like every program of the project: 0 after
 * SIGTERM/SIGINT, 64 for a usage error, 70 when it cannot serve (another
 * daemon runs, the runtime dir or socket cannot be made).
 * Tables are never removed on exit: they belong to their owners. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "etsmgrd.h"
#include "instlock.h"
#include "listenfd.h"
#include "log.h"
#include "notify.h"
#include "proto.h"
#include "sock.h"

#define EXIT_USAGE 64  /* EX_USAGE */
#define EXIT_SYSTEM 70 /* EX_SOFTWARE: cannot serve, as etscounterd */
#define MGRD_BACKLOG 512

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: etsmgrd [--runtime-dir DIR] [--instance NAME] [--foreground]\n"
            "               [--log-level LEVEL] [--max-connections N] [--max-tables N]\n"
            "               [--group GROUP] [--snapshot-dir DIR [--snapshot-interval SECONDS]]\n"
            "               [--orphan-ttl SECONDS] [--max-table-bytes SIZE] [--max-uid-bytes SIZE]\n"
            "       etsmgrd --help | --version\n"
            "\n"
            "The etsmgr table manager: creates tables in POSIX shared memory, hands them\n"
            "to client processes over DIR/etsmgrd.sock and is their heir when they die.\n"
            "\n"
            "  -d, --runtime-dir DIR    sockets and lock file (default: $ETSMGR_RUNTIME_DIR,\n"
            "                           else $XDG_RUNTIME_DIR/etsmgr, /run/etsmgr for root,\n"
            "                           /tmp/etsmgr-$UID otherwise; @NAME appended for an\n"
            "                           instance NAME other than etsmgr)\n"
            "  -i, --instance NAME      instance name (default: $ETSMGR_INSTANCE, else etsmgr);\n"
            "                           the tables are the shm objects /NAME:<uid>:<table>, of\n"
            "                           this daemon's uid; one etsmgrd per instance and uid on\n"
            "                           the machine\n"
            "  -f, --foreground         run in the foreground (always the case; accepted for scripts)\n"
            "  -l, --log-level LEVEL    debug, info, notice (default), warning or error\n"
            "  -c, --max-connections N  connections served at once (default %d)\n"
            "  -t, --max-tables N       tables managed at once (default %d)\n"
            "      --max-table-bytes SIZE  largest size_hint and max_bytes a new table may ask\n"
            "                           for (default: a quarter of /dev/shm; a table without\n"
            "                           max_bytes grows up to /dev/shm); SIZE in bytes, or K, M, G, T\n"
            "      --max-uid-bytes SIZE the shared memory one uid's tables may take together, a\n"
            "                           new table's size included (default: half of /dev/shm)\n"
            "  -g, --group GROUP        share the instance with GROUP: runtime dir 0750, socket\n"
            "                           and new tables 0660, of that group (default: private,\n"
            "                           0700 and 0600; a client still acts only on its uid's tables;\n"
            "                           default: $ETSMGR_GROUP, which etsmgr.service sets)\n"
            "      --snapshot-dir DIR   (default: $ETSMGR_SNAPSHOT_DIR, else none)\n"
            "                           save every table to DIR/<instance>/<table>.etsimg on SIGTERM,\n"
            "                           SIGINT and etsmgrctl snapshot; at start, restore (as orphaned)\n"
            "                           the tables that have a snapshot but no shared memory (a reboot)\n"
            "      --snapshot-interval SECONDS  also save every SECONDS (default: only at stop)\n"
            "      --orphan-ttl SECONDS remove tables orphaned for longer than SECONDS, with their\n"
            "                           shared memory and snapshot (default: keep them)\n"
            "  -h, --help               this text\n"
            "  -V, --version            the version\n"
            "\n"
            "Exit status: 0 after SIGTERM or SIGINT, 64 usage error, 70 cannot serve\n"
            "(another etsmgrd runs for the instance, socket or runtime dir unusable).\n"
            "See etsmgrd(8).\n",
            MGRD_DEFAULT_MAX_CONNS, MGRD_DEFAULT_MAX_TABLES);
}

static int parse_count(const char *opt, const char *s, size_t max, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0 || v > max) {
        fprintf(stderr, "etsmgrd: %s wants a whole number from 1 to %zu, not \"%s\"\n", opt, max, s);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

typedef struct opts {
    const char *dir;
    const char *instance;
    int log_level;
    size_t max_conns;
    size_t max_tables;
    const char *group;
    const char *snap_dir;
    size_t snap_interval;
    size_t orphan_ttl;
    uint64_t max_table_bytes, max_uid_bytes; /* 0: the default */
} opts;

/* A size: bytes, or with a K, M, G or T suffix (powers of 1024). */
static int parse_size(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end && !end[1]) {
        const char *units = "KMGT", *u = strchr(units, *end == 'k' ? 'K' : *end);
        if (u && *u) {
            shift = 10 * (unsigned)(u - units + 1);
            end++;
        }
    }
    if (errno || end == s || *end || s[0] == '-' || v == 0 || (shift && v > (UINT64_MAX >> shift))) {
        fprintf(stderr, "etsmgrd: %s wants a size in bytes (a whole number, K, M, G or T after it), not \"%s\"\n",
                opt, s);
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

/* 0: run; 1: done (help/version printed); -1: usage error (reported). */
static int parse_args(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"runtime-dir", required_argument, NULL, 'd'},
        {"instance", required_argument, NULL, 'i'},
        {"foreground", no_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'},
        {"max-connections", required_argument, NULL, 'c'},
        {"max-tables", required_argument, NULL, 't'},
        {"group", required_argument, NULL, 'g'},
        {"snapshot-dir", required_argument, NULL, 1001},
        {"snapshot-interval", required_argument, NULL, 1002},
        {"orphan-ttl", required_argument, NULL, 1003},
        {"max-table-bytes", required_argument, NULL, 1004},
        {"max-uid-bytes", required_argument, NULL, 1005},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":d:i:fl:c:t:g:hV", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->dir = optarg;
            break;
        case 'i':
            o->instance = optarg;
            break;
        case 'f':
            break;
        case 'l':
            o->log_level = log_level_parse(optarg);
            if (o->log_level < 0) {
                fprintf(stderr, "etsmgrd: unknown log level \"%s\" (debug, info, notice, warning, error)\n",
                        optarg);
                return -1;
            }
            break;
        case 'c':
            if (parse_count("--max-connections", optarg, 1000000, &o->max_conns) < 0)
                return -1;
            break;
        case 't':
            if (parse_count("--max-tables", optarg, 1000000, &o->max_tables) < 0)
                return -1;
            break;
        case 'g':
            o->group = optarg;
            break;
        case 1001:
            if (!*optarg) {
                fprintf(stderr, "etsmgrd: --snapshot-dir wants a directory\n");
                return -1;
            }
            o->snap_dir = optarg;
            break;
        case 1002:
            if (parse_count("--snapshot-interval", optarg, 31536000, &o->snap_interval) < 0)
                return -1;
            break;
        case 1003:
            if (parse_count("--orphan-ttl", optarg, 315360000, &o->orphan_ttl) < 0)
                return -1;
            break;
        case 1004:
            if (parse_size("--max-table-bytes", optarg, &o->max_table_bytes) < 0)
                return -1;
            break;
        case 1005:
            if (parse_size("--max-uid-bytes", optarg, &o->max_uid_bytes) < 0)
                return -1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("etsmgrd %s (protocol %d)\n", ETSMGR_VERSION_STRING, PROTO_VERSION);
            return 1;
        case ':':
            fprintf(stderr, "etsmgrd: option %s needs a value\n", argv[optind - 1]);
            return -1;
        default:
            if (optopt)
                fprintf(stderr, "etsmgrd: unknown option -%c\n", optopt);
            else
                fprintf(stderr, "etsmgrd: unknown option %s\n", argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "etsmgrd: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return 0;
}

static uv_signal_t sig_term, sig_int;
static uv_poll_t inst_poll; /* the machine-wide instance lock */

/* Another process checked who holds the lock: let its probe go. */
static void on_lock_probe(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)h, &fd) == 0)
        instlock_drain(fd);
}

static void on_signal(uv_signal_t *h, int signum)
{
    mgrd *m = h->data;
    if (m->stopping)
        return;
    m->stopping = true;
    mgrd_timers_stop(m);
    mgrd_wait_stop();
    mgrd_reg_record_pending(m);
    mgrd_reg_stop();
    mgrd_snap_all(m, signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    log_notice("%s: exiting; %zu table(s) stay in shared memory for their owners.",
               signum == SIGTERM ? "SIGTERM" : "SIGINT", m->ntables);
    notify_send("STOPPING=1");
    notify_watchdog_stop();
    conn_server_stop(m->srv);
    m->srv = NULL;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&inst_poll, NULL); /* the lock itself is held until exit */
}

/* An inherited listening socket may be blocking; conn.c needs it not to
 * be.  (This changes the open file description etssup also holds, which is
 * harmless: etssup never accepts on it.) */
static int check_inherited(int fd)
{
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        log_error("the inherited fd %d named etsmgrd is not a socket: %s", fd, strerror(errno));
        return -1;
    }
    if (type != SOCK_STREAM) {
        log_error("the inherited socket %d named etsmgrd is not a stream socket", fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        log_error("fcntl(O_NONBLOCK) on the inherited socket failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* --group: a group name or number. */
static int resolve_group(const char *name, gid_t *gid)
{
    errno = 0;
    struct group *g = getgrnam(name);
    if (g) {
        *gid = g->gr_gid;
        return 0;
    }
    char *end;
    unsigned long v = strtoul(name, &end, 10);
    if (*name && !*end && name[0] != '-' && v < (unsigned long)(gid_t)-1) {
        *gid = (gid_t)v;
        return 0;
    }
    fprintf(stderr, "etsmgrd: --group %s: no such group%s%s\n", name, errno ? ": " : "",
            errno ? strerror(errno) : "");
    return -1;
}

/* Group access to a path we made: chown to the group, then the mode. */
static int share_path(const char *path, gid_t gid, mode_t mode)
{
    if (chown(path, (uid_t)-1, gid) < 0) {
        log_error("--group: chown(%s, group %u) failed: %s", path, (unsigned)gid, strerror(errno));
        return -1;
    }
    if (chmod(path, mode) < 0) {
        log_error("--group: chmod(%s, %04o) failed: %s", path, (unsigned)mode, strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    opts o = {.log_level = LOG_LVL_NOTICE, .max_conns = MGRD_DEFAULT_MAX_CONNS,
              .max_tables = MGRD_DEFAULT_MAX_TABLES};
    int pr = parse_args(argc, argv, &o);
    if (pr != 0) {
        if (pr < 0)
            fprintf(stderr, "etsmgrd: try etsmgrd --help\n");
        return pr > 0 ? 0 : EXIT_USAGE;
    }
    log_init("etsmgrd", (enum log_level)o.log_level);
    /* the systemd unit passes its StateDirectory this way, through etssup */
    if (!o.snap_dir && getenv("ETSMGR_SNAPSHOT_DIR") && *getenv("ETSMGR_SNAPSHOT_DIR"))
        o.snap_dir = getenv("ETSMGR_SNAPSHOT_DIR");
    if (o.snap_interval && !o.snap_dir) {
        log_error("--snapshot-interval needs --snapshot-dir (or $ETSMGR_SNAPSHOT_DIR)");
        return EXIT_USAGE;
    }

    static mgrd m;
    m.pid = getpid();
    /* the unit sets ETSMGR_GROUP: --group without editing etssup.json */
    if (!o.group && getenv("ETSMGR_GROUP") && *getenv("ETSMGR_GROUP"))
        o.group = getenv("ETSMGR_GROUP");
    if (o.group && resolve_group(o.group, &m.gid) < 0)
        return EXIT_USAGE;
    m.shared = o.group != NULL;
    m.max_conns = o.max_conns;
    m.max_tables = o.max_tables;
    mgrd_size_limits(&m, o.max_table_bytes, o.max_uid_bytes);
    m.snap_interval = (unsigned)o.snap_interval;
    m.orphan_ttl = (unsigned)o.orphan_ttl;
    char err[1024];
    if (rt_resolve(o.dir, o.instance, &m.rt, err, sizeof err) < 0) {
        log_error("%s", err);
        return EXIT_USAGE;
    }
    if (rt_ensure_dir(&m.rt, err, sizeof err) < 0) {
        log_error("%s", err);
        return EXIT_SYSTEM;
    }
    if (m.shared && share_path(m.rt.dir, m.gid, 0750) < 0)
        return EXIT_SYSTEM;

    char lock_path[RT_PATH_MAX], sock_path[RT_PATH_MAX];
    if (rt_path(&m.rt, "etsmgrd.lock", lock_path, sizeof lock_path) < 0 ||
        rt_path(&m.rt, "etsmgrd.sock", sock_path, sizeof sock_path) < 0) {
        log_error("runtime dir %s is too long for a socket path", m.rt.dir);
        return EXIT_USAGE;
    }
    int lock_fd = sock_lock_file(lock_path);
    if (lock_fd < 0) {
        if (errno == EWOULDBLOCK)
            log_error("another etsmgrd already runs for instance %s (it holds the lock %s); not starting",
                      m.rt.instance, lock_path);
        else
            log_error("cannot take the instance lock %s: %s", lock_path, strerror(errno));
        return EXIT_SYSTEM;
    }

    pid_t holder = 0;
    int inst_fd = instlock_take("etsmgrd", m.rt.instance, &holder, err, sizeof err);
    if (inst_fd < 0) {
        log_error("%s; not starting (the tables of an instance have one manager, whatever its runtime dir)",
                  err);
        return EXIT_SYSTEM;
    }

    signal(SIGPIPE, SIG_IGN);
    m.loop = uv_default_loop();
    int pr2 = uv_poll_init(m.loop, &inst_poll, inst_fd);
    if (pr2 == 0)
        pr2 = uv_poll_start(&inst_poll, UV_READABLE, on_lock_probe);
    if (pr2 < 0) {
        log_error("cannot watch the instance lock: %s", uv_strerror(pr2));
        return EXIT_SYSTEM;
    }
    if (o.snap_dir && mgrd_snap_setup(&m, o.snap_dir) < 0)
        return EXIT_SYSTEM;
    size_t found = mgrd_rediscover(&m);
    size_t restored = mgrd_snap_restore(&m);

    bool inherited = false;
    int lfd = listenfd_take("etsmgrd", sock_path);
    char extra[1024];
    if (listenfd_leftover(extra, sizeof extra) > 0) {
        log_error("refusing to start: inherited socket(s) %s are not etsmgrd's; etsmgrd serves the one named "
                  "etsmgrd (FileDescriptorName=etsmgrd) or bound to %s",
                  extra, sock_path);
        return EXIT_SYSTEM;
    }
    if (lfd >= 0) {
        if (check_inherited(lfd) < 0)
            return EXIT_SYSTEM;
        inherited = true;
    } else {
        lfd = sock_listen_unix(sock_path, 0600, MGRD_BACKLOG, err, sizeof err);
        if (lfd < 0) {
            log_error("%s", err);
            return EXIT_SYSTEM;
        }
        if (m.shared && share_path(sock_path, m.gid, 0660) < 0) {
            unlink(sock_path);
            return EXIT_SYSTEM;
        }
    }

    conn_server_cfg cfg = {.listen_fd = lfd, .max_conns = m.max_conns, .on_open = mgrd_peer_open,
                           .on_frame = mgrd_req_frame, .on_close = mgrd_peer_close, .arg = &m};
    if (conn_server_start(&m.srv, m.loop, &cfg) < 0) {
        log_error("cannot serve the socket: conn_server_start failed: %s", strerror(errno));
        if (!inherited)
            unlink(sock_path);
        return EXIT_SYSTEM;
    }
    int rc1 = uv_signal_init(m.loop, &sig_term), rc2 = uv_signal_init(m.loop, &sig_int);
    if (rc1 == 0)
        rc1 = uv_signal_start(&sig_term, on_signal, SIGTERM);
    if (rc2 == 0)
        rc2 = uv_signal_start(&sig_int, on_signal, SIGINT);
    if (rc1 < 0 || rc2 < 0) {
        log_error("uv_signal_start failed: %s", uv_strerror(rc1 < 0 ? rc1 : rc2));
        return EXIT_SYSTEM;
    }
    sig_term.data = sig_int.data = &m;
    if (mgrd_timers_start(&m) < 0)
        return EXIT_SYSTEM;

    log_notice("etsmgrd %s started, pid=%d, instance=%s, %s %s, %zu table(s) rediscovered%s.",
               ETSMGR_VERSION_STRING, (int)m.pid, m.rt.instance,
               inherited ? "serving the inherited socket" : "listening on", inherited ? "etsmgrd" : sock_path,
               found, restored ? ", some restored from snapshots (see above)" : "");
    if (notify_watchdog_start(m.loop) < 0)
        log_warning("cannot start the watchdog timer: %s", strerror(errno));
    if (notify_sendf("READY=1\nSTATUS=managing %zu table(s) of instance %s", m.ntables, m.rt.instance) < 0)
        log_warning("cannot send READY=1 to $NOTIFY_SOCKET: %s", strerror(errno));

    uv_run(m.loop, UV_RUN_DEFAULT);

    if (!inherited)
        unlink(sock_path);
    mgrd_reg_free_all(&m);
    free(m.snap_dir);
    int rc = uv_loop_close(m.loop);
    if (rc < 0)
        log_debug("uv_loop_close: %s", uv_strerror(rc));
    close(inst_fd);
    close(lock_fd);
    return 0;
}

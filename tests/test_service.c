/* SPDX-License-Identifier: Apache-2.0 */
/* test_service.c: the systemd unit is valid, and what its ExecStart= runs
 * behaves as Type=notify promises: READY=1 comes from etssup itself, and
 * only once both children are ready.
 *
 * The unit is the one `make install` writes, installed with PREFIX set to a
 * temporary directory so that its paths are real files (systemd-analyze
 * verify checks that ExecStart's binary exists and that the Documentation=
 * man pages resolve: MANPATH points at the installed ones).  The service is
 * then started the way systemd would: the ExecStart= command line exactly
 * as written in the unit, the unit's Environment= with %t replaced by a
 * temporary directory, the RuntimeDirectory= made beforehand, and a
 * NOTIFY_SOCKET of the test.  The one addition is ETSMGR_INSTANCE, so the
 * test's shared-memory objects cannot meet a real instance's.
 *
 * "Ready" is checked at the moment READY=1 arrives, before anything else
 * could catch up: both sockets answer, etssup reports both children
 * running, and etsmgrd already lists the table etscounter as owned by the
 * running etscounterd (which takes its table before its own READY=1).  As
 * etssup holds the listening sockets itself, a socket answering would not
 * prove readiness alone; the table's owner does. */
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runcap.h"
#include "svcrun.h"
#include "testutil.h"

#define TS_MAKE_MS 600000

typedef struct ts_unit {
    char prefix[256];      /* PREFIX the unit was installed with (a temp dir) */
    char path[PATH_MAX];   /* the installed unit file */
    char *text;
} ts_unit;

/* make install PREFIX=<temp dir> for the build the runner comes from. */
static void ts_install_unit(ts_unit *u)
{
    snprintf(u->prefix, sizeof u->prefix, "/tmp/etsmgr-unit.XXXXXX");
    ck_assert_msg(mkdtemp(u->prefix) != NULL, "mkdtemp: %s", strerror(errno));
    char *out = NULL;
    char args[512];
    snprintf(args, sizeof args, "install PREFIX='%s'", u->prefix);
    int st = rc_make(&out, TS_MAKE_MS, args);
    ck_assert_msg(rc_ok(st), "make install PREFIX=%s failed (status %d):\n%s", u->prefix, st, out ? out : "");
    free(out);
    snprintf(u->path, sizeof u->path, "%s/lib/systemd/system/etsmgr.service", u->prefix);
    u->text = rc_slurp(u->path);
    ck_assert_msg(u->text != NULL, "make install wrote no unit at %s", u->path);
}

static void ts_unit_free(ts_unit *u)
{
    free(u->text);
    rc_sh(NULL, 60000, "rm -rf '%s'", u->prefix);
}

/* The values of every "Key=" line of the unit, joined by '\n' (malloc'd). */
static char *ts_unit_values(const char *text, const char *key)
{
    size_t kl = strlen(key);
    char *vals = calloc(1, strlen(text) + 1);
    ck_assert_ptr_nonnull(vals);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p) : strlen(p);
        if (l > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            strncat(vals, p + kl + 1, l - kl - 1);
            strcat(vals, "\n");
        }
        p = eol ? eol + 1 : NULL;
    }
    return vals;
}

/* Replaces %t (and %%) as systemd does for a system service; any other
 * specifier fails the test, since the emulation would not be exact. */
static void ts_specifiers(const char *in, const char *runtime_root, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p && o + 1 < len; p++) {
        if (*p != '%') {
            out[o++] = *p;
            continue;
        }
        p++;
        if (*p == '%') {
            out[o++] = '%';
        } else if (*p == 't') {
            o += (size_t)snprintf(out + o, len - o, "%s", runtime_root);
        } else {
            ck_abort_msg("the unit uses specifier %%%c, which this test does not emulate", *p);
        }
    }
    out[o < len ? o : len - 1] = '\0';
}

/* Splits a command line at spaces, honouring double quotes, dropping
 * systemd's prefixes (-, @, :, +, !) from the first word. */
static int ts_split(char *line, char **argv, int max)
{
    int n = 0;
    char *p = line;
    while (*p && n + 1 < max) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!*p) {
            break;
        }
        char *w = p, *o = p;
        bool q = false;
        while (*p && (q || (*p != ' ' && *p != '\t'))) {
            if (*p == '"') {
                q = !q;
                p++;
                continue;
            }
            *o++ = *p++;
        }
        if (*p) {
            p++;
        }
        *o = '\0';
        if (n == 0) {
            while (strchr("-@:+!", *w) && *w) {
                w++;
            }
        }
        argv[n++] = w;
    }
    argv[n] = NULL;
    return n;
}

typedef struct ts_service {
    tu_env e;
    ts_unit u;
    char runtime_root[256];       /* what %t means for this run */
    char dir[PATH_MAX];          /* the service's ETSMGR_RUNTIME_DIR */
    char cmd[PATH_MAX * 2];
    char *argv[16];
    char envbuf[8][PATH_MAX];
    char *env[9];
    sv_proc p;
} ts_service;

/* Everything systemd would do before exec: environment, runtime dir. */
static void ts_prepare(ts_service *s)
{
    tu_env_init(&s->e);
    ts_install_unit(&s->u);
    snprintf(s->runtime_root, sizeof s->runtime_root, "%s", s->e.dir);

    char *exec = ts_unit_values(s->u.text, "ExecStart");
    ck_assert_msg(*exec != '\0', "no ExecStart= in %s", s->u.path);
    ck_assert_msg(strchr(exec, '\n') == exec + strlen(exec) - 1, "more than one ExecStart= line:\n%s", exec);
    exec[strlen(exec) - 1] = '\0';
    ts_specifiers(exec, s->runtime_root, s->cmd, sizeof s->cmd);
    free(exec);
    int argc = ts_split(s->cmd, s->argv, 16);
    ck_assert_msg(argc >= 1 && s->argv[0][0] == '/', "ExecStart= does not start with an absolute path: %s", s->cmd);
    ck_assert_msg(access(s->argv[0], X_OK) == 0, "ExecStart= names %s, which is not an installed program",
                  s->argv[0]);

    /* Environment=: NAME=value words, %t expanded */
    char *envs = ts_unit_values(s->u.text, "Environment");
    int ne = 0;
    for (char *line = strtok(envs, "\n"); line && ne < 7; line = strtok(NULL, "\n")) {
        char exp[PATH_MAX], *words[8];
        ts_specifiers(line, s->runtime_root, exp, sizeof exp);
        int nw = ts_split(exp, words, 8);
        for (int i = 0; i < nw && ne < 7; i++) {
            /* the test's own instance (added below) replaces the unit's */
            if (strncmp(words[i], "ETSMGR_INSTANCE=", 16) == 0)
                continue;
            /* the unit's group (etsmgr, made by sysusers at install) stands
             * for the test's own, which exists here */
            if (strncmp(words[i], "ETSMGR_GROUP=", 13) == 0) {
                struct group *g = getgrgid(getgid());
                ck_assert_ptr_nonnull(g);
                snprintf(s->envbuf[ne], sizeof s->envbuf[ne], "ETSMGR_GROUP=%s", g->gr_name);
                s->env[ne] = s->envbuf[ne];
                ne++;
                continue;
            }
            snprintf(s->envbuf[ne], sizeof s->envbuf[ne], "%s", words[i]);
            s->env[ne] = s->envbuf[ne];
            if (strncmp(words[i], "ETSMGR_RUNTIME_DIR=", 19) == 0) {
                snprintf(s->dir, sizeof s->dir, "%s", words[i] + 19);
            }
            ne++;
        }
    }
    free(envs);
    snprintf(s->envbuf[ne], sizeof s->envbuf[ne], "ETSMGR_INSTANCE=%s", s->e.instance);
    s->env[ne] = s->envbuf[ne];
    s->env[ne + 1] = NULL;
    ck_assert_msg(s->dir[0] != '\0', "the unit sets no Environment=ETSMGR_RUNTIME_DIR=");
    /* RuntimeDirectory=etsmgr, mode 0700: systemd makes it before exec */
    char *rd = ts_unit_values(s->u.text, "RuntimeDirectory");
    ck_assert_str_eq(rd, "etsmgr\n");
    free(rd);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/etsmgr", s->runtime_root);
    ck_assert_msg(strcmp(want, s->dir) == 0, "ETSMGR_RUNTIME_DIR=%s is not the RuntimeDirectory= %s", s->dir, want);
    ck_assert_msg(mkdir(s->dir, 0700) == 0, "mkdir %s: %s", s->dir, strerror(errno));
}

static void ts_start(ts_service *s, int stderr_fd)
{
    char notify[PATH_MAX], err[512];
    snprintf(notify, sizeof notify, "%s/systemd-notify", s->e.dir);
    ck_assert_msg(sv_start(&s->p, s->argv, s->env, notify, stderr_fd, err, sizeof err) == 0, "%s", err);
}

static void ts_finish(ts_service *s)
{
    ts_unit_free(&s->u);
    tu_env_cleanup(&s->e);
}

static cJSON *ts_ask(const char *dir, const char *sock, const char *json)
{
    char path[PATH_MAX], err[512];
    snprintf(path, sizeof path, "%s/%s", dir, sock);
    char *reply = sv_request(path, json, 5000, err, sizeof err);
    ck_assert_msg(reply != NULL, "%s: %s", sock, err);
    cJSON *r = cJSON_Parse(reply);
    ck_assert_msg(r != NULL && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok")), "%s answered %s to %s", sock, reply, json);
    free(reply);
    return r;
}

static int ts_num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valueint : -1;
}

static const char *ts_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* ------------------------------------------------------------ tests */

START_TEST(test_unit_verifies)
{
    char *out = NULL;
    if (!rc_ok(rc_sh(&out, 5000, "command -v systemd-analyze"))) {
        printf("test_service: systemd-analyze is not installed; unit verification skipped\n");
        free(out);
        return;
    }
    free(out);
    ts_unit u;
    ts_install_unit(&u);
    int st = rc_sh(&out, 60000, "MANPATH='%s/share/man' SYSTEMD_LOG_LEVEL=notice systemd-analyze verify '%s' 2>&1",
                   u.prefix, u.path);
    ck_assert_msg(rc_ok(st) && out && *out == '\0', "systemd-analyze verify %s (status %d) says:\n%s", u.path, st,
                  out ? out : "");
    free(out);

    /* the settings this project depends on, as written */
    static const char *must[] = {"Type=notify",     "Restart=on-failure", "RuntimeDirectory=etsmgr",
                                 "RuntimeDirectoryPreserve=yes", "KillMode=mixed", "RemoveIPC=no",
                                 "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict",
                                 "ProtectHome=yes", NULL};
    for (const char **m = must; *m; m++) {
        char line[128];
        snprintf(line, sizeof line, "\n%s\n", *m);
        ck_assert_msg(strstr(u.text, line), "the unit lacks %s", *m);
    }
    ck_assert_msg(!strstr(u.text, "\nDynamicUser=yes") && !strstr(u.text, "\nRemoveIPC=yes"),
                  "the unit would remove the tables' shared memory when it stops");
    ts_unit_free(&u);
}
END_TEST

/* etssup's default config keeps a hot standby of etscounterd:
 * "etscounterd --standby" (etssup(8)) */
static bool ts_is_standby(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    for (size_t i = 0; i < n;) {
        if (strcmp(buf + i, "--standby") == 0)
            return true;
        i += strlen(buf + i) + 1;
    }
    return false;
}

START_TEST(test_execstart_ready_after_children)
{
    ts_service s;
    memset(&s, 0, sizeof s);
    ts_prepare(&s);
    char logpath[PATH_MAX];
    snprintf(logpath, sizeof logpath, "%s/etssup.log", s.e.dir);
    int logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_msg(logfd >= 0, "open %s: %s", logpath, strerror(errno));
    ts_start(&s, logfd);
    close(logfd);
    char nlog[4096] = "";
    int sender = sv_wait_ready(&s.p, 30000, nlog, sizeof nlog);
    if (sender <= 0) {
        char *log = rc_slurp(logpath);
        ck_abort_msg("no READY=1 from ExecStart=%s within 30 s (%s); notify log:\n%s\nits log:\n%s", s.cmd,
                     sender == 0 ? "it exited" : "timeout", nlog, log ? log : "");
    }
    /* from here on, nothing may wait: this is the moment systemd trusts */
    ck_assert_msg(sender == s.p.pid, "READY=1 came from pid %d, not from etssup (pid %d)", sender, (int)s.p.pid);
    pid_t kids[8];
    int nk = sv_children(s.p.pid, kids, 8);
    ck_assert_msg(nk == 3, "at READY=1 etssup has %d children, not 3 (etsmgrd, etscounterd and its standby)", nk);
    pid_t mgrd = 0, ctrd = 0;
    for (int i = 0; i < nk; i++) {
        char comm[64];
        sv_comm(kids[i], comm, sizeof comm);
        if (strcmp(comm, "etsmgrd") == 0) {
            mgrd = kids[i];
        } else if (strcmp(comm, "etscounterd") == 0 && !ts_is_standby(kids[i])) {
            ctrd = kids[i];
        }
    }
    ck_assert_msg(mgrd > 0 && ctrd > 0, "at READY=1 the children are not etsmgrd and etscounterd");

    /* etscounterd had its table before READY=1 */
    cJSON *t = ts_ask(s.dir, "etsmgrd.sock", "{\"op\":\"tables\",\"id\":1}");
    ck_assert_int_eq(ts_num(t, "pid"), mgrd);
    const cJSON *tabs = cJSON_GetObjectItem(t, "tables"), *tab, *found = NULL;
    cJSON_ArrayForEach(tab, tabs)
    {
        if (strcmp(ts_str(tab, "name"), "etscounter") == 0) {
            found = tab;
        }
    }
    ck_assert_msg(found != NULL, "at READY=1 etsmgrd manages no table etscounter");
    ck_assert_str_eq(ts_str(found, "state"), "owned");
    ck_assert_int_eq(ts_num(found, "owner_pid"), ctrd);
    cJSON_Delete(t);

    cJSON *h = ts_ask(s.dir, "etsmgrd.sock", "{\"op\":\"hello\",\"id\":2}");
    ck_assert_int_eq(ts_num(h, "pid"), mgrd);
    cJSON_Delete(h);
    cJSON_Delete(ts_ask(s.dir, "etscounter.sock", "{\"op\":\"ping\",\"id\":3}"));

    cJSON *st = ts_ask(s.dir, "etssup.sock", "{\"op\":\"status\",\"id\":4}");
    const cJSON *ch, *kidsj = cJSON_GetObjectItem(st, "children");
    ck_assert_int_eq(cJSON_GetArraySize(kidsj), 2);
    cJSON_ArrayForEach(ch, kidsj)
    {
        ck_assert_msg(strcmp(ts_str(ch, "state"), "running") == 0, "at READY=1 child %s is %s", ts_str(ch, "id"),
                      ts_str(ch, "state"));
        int pid = ts_num(ch, "pid");
        ck_assert_msg(pid == mgrd || pid == ctrd, "etssup reports child %s as pid %d", ts_str(ch, "id"), pid);
    }
    cJSON_Delete(st);

    /* systemctl stop: SIGTERM to the main process only (KillMode=mixed) */
    int ws = sv_stop(&s.p, SIGTERM, 25000);
    ck_assert_msg(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
                  "etssup did not exit 0 on SIGTERM within 25 s (status %d): systemd would SIGKILL it", ws);
    ck_assert_msg(!sv_alive(mgrd) && !sv_alive(ctrd), "a child outlived etssup's orderly stop");
    /* the table outlives the service: this is what RemoveIPC=no keeps */
    ck_assert_msg(tu_count_shm(&s.e) >= 1, "no shared-memory object of the instance is left after the stop");
    ts_finish(&s);
}
END_TEST

/* The streams a fake journald (a listening socket of the test, named by
 * ETSMGR_JOURNAL_SOCKET) was given: each connection's text, header and all,
 * in buf, one after the other, NUL-separated; returns how many. */
static int ts_drain_streams(int lfd, char *buf, size_t cap)
{
    int n = 0;
    size_t len = 0;
    for (int fd; (fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0; n++) {
        ssize_t r;
        while (len + 2 < cap && (r = read(fd, buf + len, cap - 2 - len)) > 0)
            len += (size_t)r;
        buf[len++] = '\0';
        close(fd);
    }
    buf[len] = '\0';
    return n;
}

/* Every line of text is "<N>message" with N a syslog priority, and message
 * does not start with "prog: " (journald shows the identifier already). */
static void ts_check_journal_lines(char *text, const char *who)
{
    char copy[65536];
    snprintf(copy, sizeof copy, "%s", text);
    char *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>',
                      "a line of %s without a syslog priority prefix under JOURNAL_STREAM: %s", who, line);
        const char *names[] = {"etssup: ", "etsmgrd: ", "etscounterd: ", NULL};
        for (const char **nm = names; *nm; nm++)
            ck_assert_msg(strncmp(line + 3, *nm, strlen(*nm)) != 0,
                          "a line of %s repeats the program name after the priority: %s", who, line);
    }
}

START_TEST(test_journal_streams)
{
    ts_service s;
    memset(&s, 0, sizeof s);
    ts_prepare(&s);
    /* a stand-in for journald's stdout socket */
    char jpath[PATH_MAX];
    snprintf(jpath, sizeof jpath, "%s/journal.sock", s.e.dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(lfd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ck_assert_uint_lt(strlen(jpath), sizeof sa.sun_path);
    strcpy(sa.sun_path, jpath);
    ck_assert_msg(bind(lfd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s: %s", jpath, strerror(errno));
    ck_assert_int_eq(listen(lfd, 64), 0);
    ck_assert_int_eq(setenv("ETSMGR_JOURNAL_SOCKET", jpath, 1), 0);

    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    struct stat pst;
    ck_assert_int_eq(fstat(pfd[1], &pst), 0);
    /* what systemd sets when stderr is its journal stream */
    char js[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)pst.st_dev, (unsigned long long)pst.st_ino);
    ck_assert_int_eq(setenv("JOURNAL_STREAM", js, 1), 0);
    ts_start(&s, pfd[1]);
    unsetenv("JOURNAL_STREAM");
    unsetenv("ETSMGR_JOURNAL_SOCKET");
    close(pfd[1]);
    char nlog[4096] = "";
    int sender = sv_wait_ready(&s.p, 30000, nlog, sizeof nlog);
    ck_assert_msg(sender > 0, "no READY=1 within 30 s; notify log:\n%s", nlog);
    int ws = sv_stop(&s.p, SIGTERM, 25000);
    ck_assert_msg(ws != -1 && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "etssup did not exit 0 on SIGTERM (status %d)",
                  ws);

    /* etssup's own stream: its lines only, priority first, no name */
    static char buf[65536];
    size_t len = 0;
    ssize_t r;
    while (len + 1 < sizeof buf && (r = read(pfd[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)r;
    buf[len] = '\0';
    close(pfd[0]);
    /* the unit's --log-level notice: notices are <5>, info lines are left out */
    ck_assert_msg(strstr(buf, "<5>supervising 2 children"), "expected etssup's notices as <5>... in:\n%s", buf);
    ck_assert_msg(!strstr(buf, "<6>"), "info lines despite the unit's --log-level notice:\n%s", buf);
    ck_assert_msg(!strstr(buf, "Counter") && !strstr(buf, "ETS-TRANSFER") && !strstr(buf, "got a table"),
                  "a child's line came through etssup's stream:\n%s", buf);
    ts_check_journal_lines(buf, "etssup");

    /* one stream per child, named after its program */
    static char streams[131072];
    int n = ts_drain_streams(lfd, streams, sizeof streams);
    close(lfd);
    bool saw_mgrd = false, saw_ctrd = false;
    char *p = streams;
    for (int i = 0; i < n; i++) {
        char *next = p + strlen(p) + 1; /* before the header is cut up */
        char *body = p;
        char *hdr[7];
        for (int h = 0; h < 7; h++) {
            hdr[h] = body;
            char *nl = strchr(body, '\n');
            ck_assert_msg(nl != NULL, "journal stream %d of %d has a short header: [%s]", i, n, p);
            *nl = '\0';
            body = nl + 1;
        }
        bool mgrd = strcmp(hdr[0], "etsmgrd") == 0, ctrd = strcmp(hdr[0], "etscounterd") == 0;
        ck_assert_msg(mgrd || ctrd, "a journal stream with identifier '%s'", hdr[0]);
        /* unit from the cgroup, default priority info, "<N>" read, no forwarding */
        ck_assert_msg(!strcmp(hdr[1], "") && !strcmp(hdr[2], "6") && !strcmp(hdr[3], "1") && !strcmp(hdr[4], "0") &&
                          !strcmp(hdr[5], "0") && !strcmp(hdr[6], "0"),
                      "unexpected journal stream header for %s", hdr[0]);
        ts_check_journal_lines(body, hdr[0]);
        if (mgrd) {
            saw_mgrd = true;
            ck_assert_msg(strstr(body, "<5>etsmgrd 0") != NULL, "etsmgrd's start notice not at <5> in:\n%s", body);
        } else if (strstr(body, "<5>got a table etscounter") != NULL) {
            saw_ctrd = true;
        } else {
            /* the standby (etssup(8), "Hot standby"), started at READY=1 and
             * SIGKILLed first on stop, may not have written a line yet */
            ck_assert_msg(!*body || strstr(body, "<5>standby: waiting to take table etscounter over") != NULL,
                          "etscounterd's notice not at <5> in:\n%s", body);
        }
        p = next;
    }
    ck_assert_msg(saw_mgrd && saw_ctrd,
                  "expected a journal stream of etsmgrd and one of etscounterd with its notice at <5> (got %d streams)",
                  n);
    ts_finish(&s);
}
END_TEST

Suite *service_suite(void)
{
    Suite *s = suite_create("service");
    TCase *tc = tcase_create("service");
    tcase_set_timeout(tc, 900); /* make install first brings the build up to date */
    tcase_add_test(tc, test_unit_verifies);
    tcase_add_test(tc, test_execstart_ready_after_children);
    tcase_add_test(tc, test_journal_streams);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_hostile_shm.c: what a hostile process can do besides talking on a
 * socket: write into a live table's shared memory, or be another user.
 *
 * Scribbling: a process that can open a table's shm object can write
 * anything into it while etscounterd serves from it.  The test scribbles
 * random bytes over the header and over the entries of the live counter,
 * many times from a fixed seed, and after each round asks etscounterd to
 * check the table, asks it to count, and asks etsmgrd for the table's
 * status.  Both daemons must stay the same processes, and etscounterd's
 * verdict must be the table store's own: the test attaches its own view of
 * the same bytes and verifies it, and the two must agree (a scribble over
 * bytes nothing reads, such as unused undo records, is rightly not
 * corruption).  The mutex is never scribbled: see docs/security.md.  The
 * CLI's `etscounter check` of a corrupted table must say so, and fail.
 *
 * Permissions: what the daemons create is private by default (dir 0700,
 * sockets and lock files 0600, tables 0600), whatever the umask, under
 * etssup as well; and a client of another uid (65534, from a forked child
 * that drops root) can neither reach the private socket nor act on a root
 * table once it can reach the daemon, while its own table is handed to it
 * and belongs to it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "runcap.h"
#include "runtime.h"
#include "sock.h"
#include "table_int.h"
#include "test_hostile.h"

/* ------------------------------------------------------------ scribbling */

static unsigned long hs_rand_state;
static unsigned long hs_rand(void)
{
    hs_rand_state = hs_rand_state * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned long)(hs_rand_state >> 33);
}

/* etscounterd's check: true when it says the table is corrupted. */
static bool counterd_says_corrupt(int cfd, char *msg, size_t msglen)
{
    const char *req = "{\"op\":\"check\",\"id\":\"c\"}";
    cJSON *r = hs_call(cfd, req, strlen(req), NULL, 0, NULL);
    const char *code = hs_code(r);
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(r, "message"));
    snprintf(msg, msglen, "%s: %s", code[0] ? code : "ok", m ? m : "");
    bool corrupt = strcmp(code, "corrupt") == 0;
    ck_assert_msg(corrupt || code[0] == '\0', "check answered neither ok nor corrupt: %s", msg);
    if (corrupt)
        ck_assert_msg(strstr(m, "corrupt"), "a corrupt verdict that does not say so: %s", msg);
    cJSON_Delete(r);
    return corrupt;
}

/* The table store's own verdict on the same bytes, through a fresh view. */
static bool store_says_corrupt(const char *shm, char *why, size_t whylen)
{
    int fd = shm_open(shm, O_RDWR | O_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    etsmgr_table *t = NULL;
    int rc = etsmgr_table_attach_fd(fd, &t);
    if (rc != ETSMGR_OK) {
        snprintf(why, whylen, "attach: %s (%s)", etsmgr_strerror(rc), tbl_last_why());
        close(fd);
        return true;
    }
    rc = etsmgr_table_verify(t, why, whylen);
    etsmgr_table_close(t);
    return rc != ETSMGR_OK;
}

static void copy_but_lock(char *dst, const char *src, size_t n)
{
    size_t lo = offsetof(struct tbl_hdr, lock), hi = lo + sizeof(pthread_mutex_t);
    memcpy(dst, src, lo);
    memcpy(dst + hi, src + hi, n - hi);
}

START_TEST(test_scribble_live_table)
{
    tu_env e;
    tu_env_init(&e);
    pid_t mgrd = hs_start_mgrd(&e, NULL);
    pid_t ctr = hs_start_counterd(&e);
    int cfd = hs_connect(&e, "etscounter.sock");
    for (int i = 0; i < 5; i++) {
        char req[100];
        snprintf(req, sizeof req, "{\"op\":\"count\",\"rid\":\"%032d\"}", i);
        hs_expect(cfd, req, strlen(req), NULL, 0, "");
    }
    char shm[160], msg[600], why[300];
    snprintf(shm, sizeof shm, "/%s:%lu:etscounter", e.instance, (unsigned long)geteuid());
    int fd = shm_open(shm, O_RDWR | O_CLOEXEC, 0);
    ck_assert_msg(fd >= 0, "shm_open %s: %s", shm, strerror(errno));
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    size_t size = (size_t)st.st_size;
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ck_assert(map != MAP_FAILED);
    char *pristine = malloc(size);
    memcpy(pristine, map, size);
    const struct tbl_hdr *ph = (const struct tbl_hdr *)(void *)pristine;
    uint64_t top = ph->heap_top;
    size_t lock_lo = offsetof(struct tbl_hdr, lock), lock_hi = lock_lo + sizeof(pthread_mutex_t);
    ck_assert(!counterd_says_corrupt(cfd, msg, sizeof msg));

    hs_rand_state = 20261124;
    int rounds = 60, corrupt_rounds = 0, cli_checked = 0;
    for (int round = 0; round < rounds; round++) {
        int kind = round % 3; /* 0: identity and state words, 1: anywhere in the header, 2: entries */
        for (int k = 0; k < 4; k++) {
            size_t off, n = 1 + hs_rand() % 8;
            if (kind == 0)
                off = hs_rand() % 2 ? hs_rand() % lock_lo
                                    : TBL_STATE_BEGIN + hs_rand() % (TBL_STATE_END - TBL_STATE_BEGIN);
            else if (kind == 1)
                off = hs_rand() % TBL_HDR_SIZE;
            else
                off = TBL_HDR_SIZE + hs_rand() % (top - TBL_HDR_SIZE), n = 8 + hs_rand() % 56;
            for (size_t i = 0; i < n && off + i < size; i++)
                if (off + i < lock_lo || off + i >= lock_hi)
                    map[off + i] = (char)hs_rand();
        }
        bool said = counterd_says_corrupt(cfd, msg, sizeof msg);
        bool truth = store_says_corrupt(shm, why, sizeof why);
        ck_assert_msg(said == truth, "round %d: etscounterd says \"%s\", the table store says %s", round, msg,
                      truth ? why : "valid");
        if (said)
            corrupt_rounds++;
        /* a count on a scribbled table: an answer either way, no crash */
        const char *count = "{\"op\":\"count\"}";
        cJSON *r = hs_call(cfd, count, strlen(count), NULL, 0, NULL);
        const char *code = hs_code(r);
        ck_assert_msg(code[0] == '\0' || strcmp(code, "table_error") == 0 || strcmp(code, "table_full") == 0,
                      "round %d: count answered %s", round, code);
        cJSON_Delete(r);
        int mfd = hs_connect(&e, "etsmgrd.sock");
        const char *info = "{\"op\":\"info\",\"name\":\"etscounter\"}";
        hs_expect(mfd, info, strlen(info), NULL, 0, "");
        close(mfd);
        if (said && cli_checked < 2) { /* the CLI, as a person runs it */
            char *out = NULL;
            char *const argv[] = {(char *)tu_bin("etscounter", false), "check", NULL};
            int status = rc_run(argv, &out, HS_TIMEOUT_MS);
            ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 70 && out &&
                              strstr(out, "corrupt"),
                          "etscounter check of a corrupted table: status %d, said: %s", status, out);
            if (cli_checked++ == 0)
                printf("hostile: etscounter check of a scribbled table says: %s", out);
            free(out);
        }
        ck_assert_msg(hs_alive(mgrd) && hs_alive(ctr), "round %d: a daemon died", round);
        /* back to the real table (never the lock, which is live) */
        copy_but_lock(map, pristine, size);
        ck_assert_msg(!counterd_says_corrupt(cfd, msg, sizeof msg), "round %d: restored table: %s", round, msg);
    }
    printf("hostile: %d rounds of random bytes over a live etscounter table: %d detected as corrupt "
           "(the others touched bytes nothing reads); etsmgrd and etscounterd kept their pids\n",
           rounds, corrupt_rounds);
    ck_assert_msg(corrupt_rounds >= rounds / 4, "only %d of %d scribbles detected", corrupt_rounds, rounds);

    /* the whole heap and the whole header (but the lock) at once */
    for (int which = 0; which < 2; which++) {
        size_t from = which ? 0 : TBL_HDR_SIZE, to = which ? TBL_HDR_SIZE : top;
        for (size_t i = from; i < to; i++)
            if (i < lock_lo || i >= lock_hi)
                map[i] = (char)hs_rand();
        ck_assert_msg(counterd_says_corrupt(cfd, msg, sizeof msg), "random %s not detected: %s",
                      which ? "header" : "heap", msg);
        const char *count = "{\"op\":\"count\"}";
        cJSON *r = hs_call(cfd, count, strlen(count), NULL, 0, NULL);
        cJSON_Delete(r);
        copy_but_lock(map, pristine, size);
        ck_assert(hs_alive(mgrd) && hs_alive(ctr));
    }
    munmap(map, size);
    close(fd);
    free(pristine);
    close(cfd);
    tu_env_cleanup(&e);
}
END_TEST

/* ------------------------------------------------------------ permissions */

static void expect_mode(const char *path, mode_t type, unsigned mode)
{
    struct stat st;
    ck_assert_msg(lstat(path, &st) == 0, "lstat %s: %s", path, strerror(errno));
    ck_assert_msg((st.st_mode & S_IFMT) == type, "%s is not of the expected type", path);
    ck_assert_msg((st.st_mode & 07777) == mode, "%s has mode %04o, expected %04o", path,
                  (unsigned)(st.st_mode & 07777), mode);
}

/* With umask 0, the daemons still make a private dir, sockets, lock files
 * and tables; and etssup too, for the sockets it holds for its children. */
START_TEST(test_default_modes)
{
    tu_env e;
    tu_env_init(&e);
    mode_t old = umask(0);
    char run[200], path[300];
    snprintf(run, sizeof run, "%s/run", e.dir);
    setenv("ETSMGR_RUNTIME_DIR", run, 1);
    hs_start_mgrd(&e, NULL);
    hs_start_counterd(&e);
    expect_mode(run, S_IFDIR, 0700);
    snprintf(path, sizeof path, "%s/etsmgrd.sock", run);
    expect_mode(path, S_IFSOCK, 0600);
    snprintf(path, sizeof path, "%s/etscounter.sock", run);
    expect_mode(path, S_IFSOCK, 0600);
    snprintf(path, sizeof path, "%s/etsmgrd.lock", run);
    expect_mode(path, S_IFREG, 0600);
    snprintf(path, sizeof path, "%s/etscounterd.lock", run);
    expect_mode(path, S_IFREG, 0600);
    tu_shm_path(&e, geteuid(), "etscounter", path, sizeof path);
    expect_mode(path, S_IFREG, 0600);

    snprintf(run, sizeof run, "%s/sup", e.dir);
    setenv("ETSMGR_RUNTIME_DIR", run, 1);
    snprintf(path, sizeof path, "%s2", e.instance);
    setenv("ETSMGR_INSTANCE", path, 1);
    char *const argv[] = {"etssup", NULL};
    pid_t sup = tu_spawn_ready(&e, argv, 20000);
    ck_assert_msg(sup > 0, "etssup did not become ready");
    expect_mode(run, S_IFDIR, 0700);
    static const char *const socks[] = {"etssup.sock", "etsmgrd.sock", "etscounter.sock"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", run, socks[i]);
        expect_mode(path, S_IFSOCK, 0600);
    }
    snprintf(path, sizeof path, "/dev/shm/%s2:%lu:etscounter", e.instance, (unsigned long)geteuid());
    expect_mode(path, S_IFREG, 0600);
    umask(old);
    tu_env_cleanup(&e);
    snprintf(path, sizeof path, "/%s2:%lu:etscounter", e.instance, (unsigned long)geteuid());
    shm_unlink(path);
}
END_TEST

/* ------------------------------------------------------------ another uid */

#define NOBODY 65534

/* In the forked child (no check asserts there): one request, its code. */
static void child_call(int fd, const char *json, char *code, size_t len, int *rfd)
{
    cJSON *r = NULL;
    int got[FRAME_MAX_FDS], n = 0;
    *rfd = -1;
    if (frame_write(fd, json, strlen(json), NULL, 0) < 0 ||
        frame_read_json(fd, &r, got, &n, FRAME_MAX_FDS, HS_TIMEOUT_MS) < 0) {
        snprintf(code, len, "io-error:%s", strerror(errno));
        return;
    }
    snprintf(code, len, "%s", hs_code(r));
    if (!code[0])
        snprintf(code, len, "ok");
    if (n > 0)
        *rfd = got[0];
    for (int i = 1; i < n; i++)
        close(got[i]);
    cJSON_Delete(r);
}

static void child_report(int wfd, const char *fmt, const char *a, const char *b)
{
    char line[300];
    int n = snprintf(line, sizeof line, fmt, a, b);
    if (write(wfd, line, (size_t)n) < 0)
        _exit(3);
}

/* The uid-65534 client: reports one line per step on wfd, waits on rfd. */
static void nobody_client(const tu_env *e, int wfd, int rfd)
{
    if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) < 0) {
        child_report(wfd, "skip %s%s\n", strerror(errno), "");
        _exit(0);
    }
    char path[RT_PATH_MAX + 32], code[100], go;
    snprintf(path, sizeof path, "%s/etsmgrd.sock", e->dir);
    int fd = sock_connect_unix(path);
    child_report(wfd, "connect-private %s%s\n", fd < 0 ? strerror(errno) : "connected", "");
    if (fd >= 0)
        close(fd);
    if (read(rfd, &go, 1) != 1) /* the parent opens the dir and socket to others */
        _exit(4);
    fd = sock_connect_unix(path);
    if (fd < 0) {
        child_report(wfd, "connect-open %s%s\n", strerror(errno), "");
        _exit(5);
    }
    static const char *const steps[][2] = {
        {"new_table-mine", "{\"op\":\"new_table\",\"name\":\"mine\"}"},
        {"del_table-mine", "{\"op\":\"del_table\",\"name\":\"mine\"}"},
        {"del_table-mine-unlink", "{\"op\":\"del_table\",\"name\":\"mine\",\"unlink\":true}"},
        {"give_away-mine", "{\"op\":\"give_away\",\"name\":\"mine\",\"pid\":1}"},
        {"new_table-theirs", "{\"op\":\"new_table\",\"name\":\"theirs\"}"},
    };
    int tfd = -1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int rfd2;
        child_call(fd, steps[i][1], code, sizeof code, &rfd2);
        if (rfd2 >= 0) {
            if (tfd >= 0)
                close(tfd);
            tfd = rfd2;
        }
        child_report(wfd, "%s %s\n", steps[i][0], code);
    }
    char shm[160];
    snprintf(shm, sizeof shm, "/%s:0:mine", e->instance);
    int sfd = shm_open(shm, O_RDWR, 0);
    child_report(wfd, "shm_open-mine %s%s\n", sfd < 0 ? strerror(errno) : "opened", "");
    child_report(wfd, "theirs-fd %s%s\n", tfd >= 0 ? "received" : "none", "");
    child_report(wfd, "ready%s%s\n", "", "");
    if (read(rfd, &go, 1) < 0) /* hold the table until the parent is done */
        _exit(6);
    _exit(0);
}

/* Reads the child's next line and checks it is "step want". */
static void expect_line(FILE *f, const char *step, const char *want)
{
    char line[300], expect[300];
    ck_assert_msg(fgets(line, sizeof line, f), "the uid-65534 child stopped before %s", step);
    line[strcspn(line, "\n")] = '\0';
    snprintf(expect, sizeof expect, "%s%s%s", step, want[0] ? " " : "", want);
    ck_assert_msg(strcmp(line, expect) == 0, "uid 65534: expected \"%s\", got \"%s\"", expect, line);
}

START_TEST(test_other_uid)
{
    if (geteuid() != 0) {
        fprintf(stderr, "hostile: SKIP another uid: the tests do not run as root\n");
        return;
    }
    tu_env e;
    tu_env_init(&e);
    pid_t d = hs_start_mgrd(&e, NULL);
    int fd = hs_connect(&e, "etsmgrd.sock");
    const char *mine = "{\"op\":\"new_table\",\"name\":\"mine\"}";
    int mfd = -1;
    cJSON *r = hs_call(fd, mine, strlen(mine), NULL, 0, &mfd);
    ck_assert_str_eq(hs_code(r), "");
    cJSON_Delete(r);
    close(mfd);
    hs_expect(fd, "{\"op\":\"hello\"}", 14, NULL, 0, "");

    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(up[0]);
        close(down[1]);
        nobody_client(&e, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    FILE *f = fdopen(up[0], "r");
    char line[300];
    ck_assert(fgets(line, sizeof line, f));
    if (strncmp(line, "skip", 4) == 0) {
        fprintf(stderr, "hostile: SKIP another uid: cannot become uid %d: %s", NOBODY, line + 5);
        fclose(f);
        close(down[1]);
        tu_wait(child, HS_TIMEOUT_MS);
        tu_env_cleanup(&e);
        return;
    }
    ck_assert_msg(strcmp(line, "connect-private Permission denied\n") == 0,
                  "uid 65534 and the private runtime dir: %s", line);
    /* a shared deployment: others may reach the socket */
    char path[RT_PATH_MAX + 32];
    ck_assert_int_eq(chmod(e.dir, 0711), 0);
    snprintf(path, sizeof path, "%s/etsmgrd.sock", e.dir);
    ck_assert_int_eq(chmod(path, 0666), 0);
    ck_assert_int_eq(write(down[1], "g", 1), 1);
    expect_line(f, "new_table-mine", "forbidden");
    expect_line(f, "del_table-mine", "forbidden");
    expect_line(f, "del_table-mine-unlink", "forbidden");
    expect_line(f, "give_away-mine", "forbidden");
    expect_line(f, "new_table-theirs", "ok");
    expect_line(f, "shm_open-mine", "Permission denied");
    expect_line(f, "theirs-fd", "received");
    expect_line(f, "ready", "");

    /* the table it created is its own (its name says so), private: the
     * daemon's object, mode 0600, reached only through the fd it was given */
    tu_shm_path(&e, NOBODY, "theirs", path, sizeof path);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_uid, 0);
    ck_assert_int_eq(st.st_mode & 07777, 0600);
    tu_shm_path(&e, 0, "mine", path, sizeof path);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_uid, 0);
    /* and root may not take it either: identity is the uid, not privilege */
    int base = tu_count_fds(d);
    hs_expect(fd, "{\"op\":\"new_table\",\"name\":\"theirs\"}", strlen("{\"op\":\"new_table\",\"name\":\"theirs\"}"),
              NULL, 0, "forbidden");
    char shm[160];
    snprintf(shm, sizeof shm, "/%s:%d:theirs", e.instance, NOBODY);
    int tfd = shm_open(shm, O_RDWR | O_CLOEXEC, 0);
    ck_assert_int_ge(tfd, 0);
    hs_expect(fd, "{\"op\":\"add_table\",\"name\":\"theirs\"}", strlen("{\"op\":\"add_table\",\"name\":\"theirs\"}"),
              &tfd, 1, "forbidden");
    close(tfd);
    hs_expect(fd, "{\"op\":\"del_table\",\"name\":\"theirs\"}", strlen("{\"op\":\"del_table\",\"name\":\"theirs\"}"),
              NULL, 0, "forbidden");
    int fd0 = tu_count_fds(d);
    ck_assert_msg(fd0 <= base, "etsmgrd kept an fd of a refused add_table (%d -> %d)", base, fd0);
    ck_assert_int_eq(write(down[1], "e", 1), 1);
    int status = tu_wait(child, HS_TIMEOUT_MS);
    ck_assert_msg(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "uid-65534 child: status %d",
                  status);
    fclose(f);
    close(down[1]);
    close(fd);
    ck_assert(hs_alive(d));
    tu_env_cleanup(&e);
}
END_TEST

/* --group: the instance is shared with a group.  A member (uid 65534, gid
 * nogroup) reaches the daemon and gets its own table, 0660 of the group; a
 * process outside the group cannot even connect. */
static void group_child(const char *sock, gid_t gid, int wfd)
{
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0) {
        child_report(wfd, "skip %s%s\n", strerror(errno), "");
        _exit(0);
    }
    int fd = sock_connect_unix(sock);
    if (fd < 0) {
        child_report(wfd, "connect %s%s\n", strerror(errno), "");
        _exit(0);
    }
    char code[100];
    int tfd;
    child_call(fd, "{\"op\":\"new_table\",\"name\":\"g\"}", code, sizeof code, &tfd);
    child_report(wfd, "new_table-g %s%s\n", code, tfd >= 0 ? " fd" : "");
    _exit(0);
}

static void run_group_child(const char *sock, gid_t gid, char *line, size_t len)
{
    int pipe_fd;
    pid_t c = tu_fork_pipe(&pipe_fd);
    ck_assert_int_ge(c, 0);
    if (c == 0) {
        group_child(sock, gid, pipe_fd);
    }
    ssize_t n = read(pipe_fd, line, len - 1);
    line[n > 0 ? n : 0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    close(pipe_fd);
    tu_wait(c, HS_TIMEOUT_MS);
}

START_TEST(test_group_access)
{
    struct group *g = getgrnam("nogroup");
    if (geteuid() != 0 || !g) {
        fprintf(stderr, "hostile: SKIP --group: needs root and the group nogroup\n");
        return;
    }
    gid_t gid = g->gr_gid;
    tu_env e;
    tu_env_init(&e);
    ck_assert_int_eq(chmod(e.dir, 0711), 0); /* the test's dir: let others through to the shared one */
    char run[200], path[300];
    snprintf(run, sizeof run, "%s/shared", e.dir);
    setenv("ETSMGR_RUNTIME_DIR", run, 1);
    const char *const extra[] = {"--group", "nogroup", NULL};
    pid_t d = hs_start_mgrd(&e, extra);
    struct stat st;
    expect_mode(run, S_IFDIR, 0750);
    ck_assert_int_eq(stat(run, &st), 0);
    ck_assert_int_eq(st.st_gid, gid);
    char sock[300];
    snprintf(sock, sizeof sock, "%s/etsmgrd.sock", run);
    expect_mode(sock, S_IFSOCK, 0660);
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert_int_eq(st.st_gid, gid);
    snprintf(path, sizeof path, "%s/etsmgrd.lock", run);
    expect_mode(path, S_IFREG, 0600);

    char line[300];
    run_group_child(sock, gid, line, sizeof line);
    if (strncmp(line, "skip", 4) == 0) {
        fprintf(stderr, "hostile: SKIP --group: %s\n", line);
        tu_env_cleanup(&e);
        return;
    }
    ck_assert_msg(strcmp(line, "new_table-g ok fd") == 0, "a member of the group: %s", line);
    tu_shm_path(&e, NOBODY, "g", path, sizeof path);
    expect_mode(path, S_IFREG, 0660);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_uid, 0); /* the daemon's object; the group may map it */
    ck_assert_int_eq(st.st_gid, gid);
    run_group_child(sock, gid - 1, line, sizeof line);
    ck_assert_msg(strcmp(line, "connect Permission denied") == 0, "outside the group: %s", line);
    ck_assert(hs_alive(d));
    tu_env_cleanup(&e);
}
END_TEST

Suite *hostile_shm_suite(void)
{
    Suite *s = suite_create("hostile_shm");
    TCase *tc = tcase_create("scribble");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scribble_live_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("permissions");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_default_modes);
    tcase_add_test(tc, test_other_uid);
    tcase_add_test(tc, test_group_access);
    suite_add_tcase(s, tc);
    return s;
}

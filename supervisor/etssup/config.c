/* SPDX-License-Identifier: Apache-2.0 */
/* config.c: etssup's JSON configuration, parsed and validated in one pass.
 *
 * A supervisor that starts half of its children and then trips over a typo
 * in the third is worse than one that refuses to start, so validation is
 * complete before anything runs: every field is checked, unknown fields are
 * mistakes too (a misspelt "shutdwon" would otherwise silently mean the
 * default), and every mistake is reported, not only the first, each with the
 * field's JSON path so a person can go straight to it.  argv[0] is resolved
 * to an executable here for the same reason: a missing program is a
 * configuration mistake, not a crash loop.
 *
 * The built-in default is the same JSON text as supervisor/etssup.json (a
 * test keeps them equal), so the default is just another configuration. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sup.h"

/* Field paths are built into fixed buffers far larger than any real path
 * (ids and keys are short); a truncated path in a message is harmless. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

const char sup_default_config[] =
    "{\n"
    "  \"strategy\": \"one_for_one\",\n"
    "  \"intensity\": 10,\n"
    "  \"period\": 10,\n"
    "  \"start_timeout\": 10000,\n"
    "  \"children\": [\n"
    "    {\n"
    "      \"id\": \"etsmgrd\",\n"
    "      \"argv\": [\"etsmgrd\"],\n"
    "      \"restart\": \"permanent\",\n"
    "      \"shutdown\": 5000,\n"
    "      \"ready\": \"notify\",\n"
    "      \"sockets\": [{\"name\": \"etsmgrd\", \"path\": \"etsmgrd.sock\"}]\n"
    "    },\n"
    "    {\n"
    "      \"id\": \"etscounterd\",\n"
    "      \"argv\": [\"etscounterd\"],\n"
    "      \"restart\": \"permanent\",\n"
    "      \"shutdown\": 5000,\n"
    "      \"ready\": \"notify\",\n"
    "      \"standby\": true,\n"
    "      \"sockets\": [{\"name\": \"etscounter\", \"path\": \"etscounter.sock\"}]\n"
    "    }\n"
    "  ]\n"
    "}\n";

typedef struct cfg_ctx {
    const char *source;
    const char *exe_dir;
    FILE *errs;
    int nerr;
} cfg_ctx;

static void cfg_err(cfg_ctx *x, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cfg_err(cfg_ctx *x, const char *path, const char *fmt, ...)
{
    x->nerr++;
    if (!x->errs)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(x->errs, "etssup: config %s: %s: ", x->source, path);
    vfprintf(x->errs, fmt, ap);
    fputc('\n', x->errs);
    va_end(ap);
}

const char *sup_strategy_name(sup_strategy s)
{
    switch (s) {
    case SUP_ONE_FOR_ONE: return "one_for_one";
    case SUP_ONE_FOR_ALL: return "one_for_all";
    case SUP_REST_FOR_ONE: return "rest_for_one";
    }
    return "?";
}

const char *sup_restart_name(sup_restart r)
{
    switch (r) {
    case SUP_PERMANENT: return "permanent";
    case SUP_TRANSIENT: return "transient";
    case SUP_TEMPORARY: return "temporary";
    }
    return "?";
}

static const char *cfg_type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "invalid";
}

/* Unknown keys are mistakes; "comment" is allowed anywhere for notes. */
static void cfg_check_keys(cfg_ctx *x, const cJSON *obj, const char *path, const char *const *known)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) {
        bool ok = strcmp(it->string, "comment") == 0;
        for (const char *const *k = known; !ok && *k; k++)
            ok = strcmp(it->string, *k) == 0;
        if (ok) {
            /* a key given twice: cJSON keeps both, the first wins; say so */
            for (const cJSON *o = obj->child; o != it; o = o->next)
                if (strcmp(o->string, it->string) == 0) {
                    char p[256];
                    snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", it->string);
                    cfg_err(x, p, "given more than once");
                    break;
                }
            continue;
        }
        char p[256];
        snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", it->string);
        cfg_err(x, p, "unknown field (check its spelling; see etssup(8))");
    }
}

/* An integer in [min, max]; absent: *out untouched, 1. */
static int cfg_int(cfg_ctx *x, const cJSON *obj, const char *key, const char *path, long min, long max,
                   const char *unit, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 1;
    char p[256];
    snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble)) {
        cfg_err(x, p, "must be a whole number of %s, not %s", unit,
                cJSON_IsNumber(v) ? "a fraction" : cfg_type_name(v));
        return -1;
    }
    if (v->valuedouble < (double)min || v->valuedouble > (double)max) {
        cfg_err(x, p, "must be between %ld and %ld %s, not %.0f", min, max, unit, v->valuedouble);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

/* A string that must be one of names[]; index in *out. */
static int cfg_enum(cfg_ctx *x, const cJSON *obj, const char *key, const char *path, const char *const *names,
                    int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 1;
    char p[256], choices[160] = "";
    snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
    for (int i = 0; names[i]; i++) {
        size_t l = strlen(choices);
        snprintf(choices + l, sizeof choices - l, "%s\"%s\"", i == 0 ? "" : names[i + 1] ? ", " : " or ",
                 names[i]);
    }
    if (!cJSON_IsString(v)) {
        cfg_err(x, p, "must be %s, not %s", choices, cfg_type_name(v));
        return -1;
    }
    for (int i = 0; names[i]; i++)
        if (strcmp(v->valuestring, names[i]) == 0) {
            *out = i;
            return 0;
        }
    cfg_err(x, p, "must be %s, not \"%s\"", choices, v->valuestring);
    return -1;
}

static bool cfg_is_exec(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* argv[0]: a path when it has a '/', else the file next to etssup, else $PATH. */
static char *cfg_resolve_exe(cfg_ctx *x, const char *name, const char *path)
{
    char buf[PATH_MAX];
    if (strchr(name, '/')) {
        if (cfg_is_exec(name))
            return strdup(name);
        cfg_err(x, path, "\"%s\" is not an executable file (%s)", name,
                access(name, F_OK) == 0 ? "not executable or not a regular file" : strerror(errno));
        return NULL;
    }
    if (x->exe_dir && snprintf(buf, sizeof buf, "%s/%s", x->exe_dir, name) < (int)sizeof buf && cfg_is_exec(buf))
        return strdup(buf);
    const char *p = getenv("PATH");
    while (p && *p) {
        const char *e = strchrnul(p, ':');
        int n = e == p ? snprintf(buf, sizeof buf, "./%s", name)
                       : snprintf(buf, sizeof buf, "%.*s/%s", (int)(e - p), p, name);
        if (n > 0 && n < (int)sizeof buf && cfg_is_exec(buf))
            return strdup(buf);
        p = *e ? e + 1 : e;
    }
    cfg_err(x, path, "no executable \"%s\" next to etssup (%s) or in $PATH", name,
            x->exe_dir ? x->exe_dir : "unknown dir");
    return NULL;
}

static bool cfg_valid_name(const char *s)
{
    return rt_valid_name(s, strlen(s));
}

static void cfg_sockets(cfg_ctx *x, const cJSON *arr, const char *path, sup_child_cfg *c)
{
    if (!cJSON_IsArray(arr)) {
        cfg_err(x, path, "must be an array of {\"name\":..., \"path\":...} objects, not %s", cfg_type_name(arr));
        return;
    }
    int n = cJSON_GetArraySize(arr);
    if (n > SUP_MAX_SOCKETS) {
        cfg_err(x, path, "at most %d sockets per child, not %d", SUP_MAX_SOCKETS, n);
        return;
    }
    c->sockets = calloc(n ? n : 1, sizeof *c->sockets);
    if (!c->sockets) {
        cfg_err(x, path, "out of memory");
        return;
    }
    static const char *const known[] = {"name", "path", NULL};
    int i = 0;
    const cJSON *s;
    cJSON_ArrayForEach(s, arr) {
        char p[256], q[300];
        snprintf(p, sizeof p, "%s[%d]", path, i);
        if (!cJSON_IsObject(s)) {
            cfg_err(x, p, "must be an object {\"name\":..., \"path\":...}, not %s", cfg_type_name(s));
            i++;
            continue;
        }
        cfg_check_keys(x, s, p, known);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(s, "name");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(s, "path");
        snprintf(q, sizeof q, "%s.name", p);
        if (!nm)
            cfg_err(x, q, "missing (the LISTEN_FDNAMES name the child asks for)");
        else if (!cJSON_IsString(nm) || !cfg_valid_name(nm->valuestring))
            cfg_err(x, q, "must be a name of 1 to 64 characters among A-Z a-z 0-9 _ . -");
        else {
            for (int j = 0; j < i; j++)
                if (c->sockets[j].name && strcmp(c->sockets[j].name, nm->valuestring) == 0)
                    cfg_err(x, q, "\"%s\" is already the name of %s[%d]", nm->valuestring, path, j);
            c->sockets[i].name = strdup(nm->valuestring);
        }
        snprintf(q, sizeof q, "%s.path", p);
        if (!pa)
            cfg_err(x, q, "missing (a socket file name in the runtime dir)");
        else if (!cJSON_IsString(pa) || !cfg_valid_name(pa->valuestring))
            cfg_err(x, q, "must be a file name in the runtime dir (1 to 64 characters among A-Z a-z 0-9 _ . -)");
        else if (strcmp(pa->valuestring, "etssup.sock") == 0 || strcmp(pa->valuestring, "etssup.lock") == 0 ||
                 strcmp(pa->valuestring, "etssup.generation") == 0 || strncmp(pa->valuestring, "etssup-", 7) == 0)
            cfg_err(x, q, "\"%s\" is reserved for etssup itself", pa->valuestring);
        else
            c->sockets[i].path = strdup(pa->valuestring);
        i++;
    }
    c->nsockets = n;
}

static void cfg_child(cfg_ctx *x, const cJSON *o, const char *path, const sup_config *cfg, sup_child_cfg *c)
{
    static const char *const known[] = {"id", "argv", "restart", "shutdown", "ready", "start_timeout", "sockets",
                                        "standby", NULL};
    char p[256];
    c->restart = SUP_PERMANENT;
    c->shutdown_ms = SUP_DEFAULT_SHUTDOWN;
    c->ready = SUP_READY_NOTIFY;
    c->start_timeout_ms = cfg->start_timeout_ms;
    if (!cJSON_IsObject(o)) {
        cfg_err(x, path, "must be an object with at least \"id\" and \"argv\", not %s", cfg_type_name(o));
        return;
    }
    cfg_check_keys(x, o, path, known);

    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    snprintf(p, sizeof p, "%s.id", path);
    if (!id)
        cfg_err(x, p, "missing (every child needs an id)");
    else if (!cJSON_IsString(id) || !cfg_valid_name(id->valuestring))
        cfg_err(x, p, "must be a name of 1 to 64 characters among A-Z a-z 0-9 _ . -");
    else if (strcmp(id->valuestring, "etssup") == 0) /* etsmgrctl kill etssup means the supervisor */
        cfg_err(x, p, "\"etssup\" is reserved: it names etssup itself (etsmgrctl kill etssup)");
    else
        c->id = strdup(id->valuestring);

    const cJSON *argv = cJSON_GetObjectItemCaseSensitive(o, "argv");
    snprintf(p, sizeof p, "%s.argv", path);
    if (!argv)
        cfg_err(x, p, "missing (the program and its arguments, e.g. [\"etsmgrd\", \"--log-level\", \"info\"])");
    else if (!cJSON_IsArray(argv) || cJSON_GetArraySize(argv) < 1)
        cfg_err(x, p, "must be a non-empty array of strings, not %s",
                cJSON_IsArray(argv) ? "an empty array" : cfg_type_name(argv));
    else {
        int n = cJSON_GetArraySize(argv), i = 0;
        c->argv = calloc(n + 1, sizeof *c->argv);
        if (!c->argv) {
            cfg_err(x, p, "out of memory");
            return;
        }
        const cJSON *a;
        cJSON_ArrayForEach(a, argv) {
            char q[300];
            snprintf(q, sizeof q, "%s[%d]", p, i);
            if (!cJSON_IsString(a))
                cfg_err(x, q, "must be a string, not %s", cfg_type_name(a));
            else if (i == 0 && !*a->valuestring)
                cfg_err(x, q, "must name a program, not be empty");
            else {
                c->argv[i] = strdup(a->valuestring);
                if (i == 0)
                    c->exe = cfg_resolve_exe(x, a->valuestring, q);
            }
            i++;
        }
        c->argc = n;
    }

    static const char *const restarts[] = {"permanent", "transient", "temporary", NULL};
    int r;
    if (cfg_enum(x, o, "restart", path, restarts, &r) == 0)
        c->restart = (sup_restart)r;
    static const char *const readies[] = {"notify", "none", NULL};
    if (cfg_enum(x, o, "ready", path, readies, &r) == 0)
        c->ready = r == 0 ? SUP_READY_NOTIFY : SUP_READY_NONE;

    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, "shutdown");
    snprintf(p, sizeof p, "%s.shutdown", path);
    if (cJSON_IsString(sd)) {
        if (strcmp(sd->valuestring, "brutal_kill") == 0)
            c->shutdown_ms = SUP_BRUTAL_KILL;
        else
            cfg_err(x, p, "must be a number of milliseconds or \"brutal_kill\", not \"%s\"", sd->valuestring);
    } else if (sd && !cJSON_IsNumber(sd))
        cfg_err(x, p, "must be a number of milliseconds or \"brutal_kill\", not %s", cfg_type_name(sd));
    else
        cfg_int(x, o, "shutdown", path, 0, 3600000, "milliseconds", &c->shutdown_ms);

    cfg_int(x, o, "start_timeout", path, 1, 3600000, "milliseconds", &c->start_timeout_ms);

    /* a standby is the same command with --standby appended; it only means
     * something for a child that says when it took over (READY=1) */
    const cJSON *sb = cJSON_GetObjectItemCaseSensitive(o, "standby");
    snprintf(p, sizeof p, "%s.standby", path);
    if (sb && !cJSON_IsBool(sb))
        cfg_err(x, p, "must be true or false, not %s", cfg_type_name(sb));
    else if (cJSON_IsTrue(sb) && c->ready != SUP_READY_NOTIFY)
        cfg_err(x, p, "needs \"ready\": \"notify\" (a standby's READY=1 is the sign it took over)");
    else if (cJSON_IsTrue(sb) && c->argv) {
        c->standby = true;
        c->standby_argv = calloc(c->argc + 2, sizeof *c->standby_argv);
        if (!c->standby_argv)
            cfg_err(x, p, "out of memory");
        else {
            for (int i = 0; i < c->argc; i++)
                c->standby_argv[i] = c->argv[i]; /* borrowed: freed with argv */
            c->standby_argv[c->argc] = "--standby";
        }
    }

    const cJSON *socks = cJSON_GetObjectItemCaseSensitive(o, "sockets");
    if (socks) {
        snprintf(p, sizeof p, "%s.sockets", path);
        cfg_sockets(x, socks, p, c);
    }
}

static void cfg_line_col(const char *text, const char *at, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else
            (*col)++;
    }
}

int sup_config_parse(const char *text, const char *source, const char *exe_dir, sup_config *out, FILE *errs)
{
    cfg_ctx x = {.source = source, .exe_dir = exe_dir, .errs = errs};
    sup_config cfg = {.strategy = SUP_ONE_FOR_ONE,
                      .intensity = SUP_DEFAULT_INTENSITY,
                      .period_s = SUP_DEFAULT_PERIOD,
                      .start_timeout_ms = SUP_DEFAULT_START_TIMEOUT};
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, true);
    if (!root) {
        int line, col;
        cfg_line_col(text, end ? end : text, &line, &col);
        char p[64];
        snprintf(p, sizeof p, "line %d, column %d", line, col);
        cfg_err(&x, p, "not valid JSON here");
        return x.nerr;
    }
    if (!cJSON_IsObject(root)) {
        cfg_err(&x, "(top level)", "must be a JSON object, not %s", cfg_type_name(root));
        cJSON_Delete(root);
        return x.nerr;
    }
    static const char *const known[] = {"strategy", "intensity", "period", "start_timeout", "children", NULL};
    cfg_check_keys(&x, root, "", known);
    static const char *const strategies[] = {"one_for_one", "one_for_all", "rest_for_one", NULL};
    int r;
    if (cfg_enum(&x, root, "strategy", "", strategies, &r) == 0)
        cfg.strategy = (sup_strategy)r;
    cfg_int(&x, root, "intensity", "", 0, 100000, "restarts", &cfg.intensity);
    cfg_int(&x, root, "period", "", 1, 86400, "seconds", &cfg.period_s);
    cfg_int(&x, root, "start_timeout", "", 1, 3600000, "milliseconds", &cfg.start_timeout_ms);

    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "children");
    if (!ch)
        cfg_err(&x, "children", "missing (the list of children to supervise)");
    else if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) < 1 || cJSON_GetArraySize(ch) > SUP_MAX_CHILDREN)
        cfg_err(&x, "children", "must be an array of 1 to %d child objects, not %s", SUP_MAX_CHILDREN,
                cJSON_IsArray(ch) ? (cJSON_GetArraySize(ch) ? "a longer one" : "an empty array")
                                  : cfg_type_name(ch));
    else {
        cfg.nchildren = cJSON_GetArraySize(ch);
        cfg.children = calloc(cfg.nchildren, sizeof *cfg.children);
        if (!cfg.children) {
            cfg_err(&x, "children", "out of memory");
            cfg.nchildren = 0;
        }
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, ch) {
            if (i >= cfg.nchildren)
                break;
            char p[64];
            snprintf(p, sizeof p, "children[%d]", i);
            cfg_child(&x, c, p, &cfg, &cfg.children[i]);
            i++;
        }
        /* ids and socket paths are unique across children */
        for (int a = 0; a < cfg.nchildren; a++) {
            sup_child_cfg *ca = &cfg.children[a];
            for (int b = 0; b < a; b++) {
                sup_child_cfg *cb = &cfg.children[b];
                if (ca->id && cb->id && strcmp(ca->id, cb->id) == 0) {
                    char p[64];
                    snprintf(p, sizeof p, "children[%d].id", a);
                    cfg_err(&x, p, "\"%s\" is already the id of children[%d]", ca->id, b);
                }
                for (int i2 = 0; i2 < ca->nsockets; i2++)
                    for (int j2 = 0; j2 < cb->nsockets; j2++)
                        if (ca->sockets[i2].path && cb->sockets[j2].path &&
                            strcmp(ca->sockets[i2].path, cb->sockets[j2].path) == 0) {
                            char p[96];
                            snprintf(p, sizeof p, "children[%d].sockets[%d].path", a, i2);
                            cfg_err(&x, p, "\"%s\" is already used by children[%d].sockets[%d]",
                                    ca->sockets[i2].path, b, j2);
                        }
            }
            for (int i2 = 0; i2 < ca->nsockets; i2++)
                for (int j2 = 0; j2 < i2; j2++)
                    if (ca->sockets[i2].path && ca->sockets[j2].path &&
                        strcmp(ca->sockets[i2].path, ca->sockets[j2].path) == 0) {
                        char p[96];
                        snprintf(p, sizeof p, "children[%d].sockets[%d].path", a, i2);
                        cfg_err(&x, p, "\"%s\" is already used by children[%d].sockets[%d]",
                                ca->sockets[i2].path, a, j2);
                    }
        }
    }
    cJSON_Delete(root);
    if (x.nerr) {
        sup_config_free(&cfg);
        return x.nerr;
    }
    *out = cfg;
    return 0;
}

int sup_config_load(const char *path, const char *exe_dir, sup_config *cfg, FILE *errs)
{
    if (!path)
        return sup_config_parse(sup_default_config, "built-in default", exe_dir, cfg, errs);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errs)
            fprintf(errs, "etssup: config %s: cannot open it: %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            if (cap >= (1u << 22)) {
                if (errs)
                    fprintf(errs, "etssup: config %s: larger than 4 MiB; not a configuration\n", path);
                free(buf);
                fclose(f);
                return 1;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf || rerr) {
        if (errs)
            fprintf(errs, "etssup: config %s: cannot read it: %s\n", path, buf ? "read error" : "out of memory");
        free(buf);
        return 1;
    }
    buf[len] = 0;
    if (strlen(buf) != len) {
        if (errs)
            fprintf(errs, "etssup: config %s: contains a NUL byte; not a JSON text\n", path);
        free(buf);
        return 1;
    }
    int n = sup_config_parse(buf, path, exe_dir, cfg, errs);
    free(buf);
    return n;
}

void sup_config_free(sup_config *cfg)
{
    for (int i = 0; i < cfg->nchildren; i++) {
        sup_child_cfg *c = &cfg->children[i];
        free(c->id);
        for (int j = 0; c->argv && j < c->argc; j++)
            free(c->argv[j]);
        free(c->argv);
        free(c->standby_argv);
        free(c->exe);
        for (int j = 0; c->sockets && j < c->nsockets; j++) {
            free(c->sockets[j].name);
            free(c->sockets[j].path);
        }
        free(c->sockets);
    }
    free(cfg->children);
    memset(cfg, 0, sizeof *cfg);
}

/* SPDX-License-Identifier: Apache-2.0 */
/* data.c: etsmgrctl save, load, snapshot and del: a table's data beyond the
 * life of its shared memory.
 *
 * save opens the table's shared-memory object itself and saves it with
 * etsmgr_table_save: it needs no help from etsmgrd (a save works while the
 * daemon is down) and the kernel's permission check on the object is the
 * access control.  The object is the caller's uid's table
 * "/<instance>:<uid>:<table>", made by the daemon under the daemon's own
 * uid: a user of its own daemon can save it, a user of a root daemon asks
 * the daemon (snapshot) instead.  load goes through etsmgrd (etsmgr_table_load): this
 * process becomes the owner, then exits, so the loaded table is orphaned,
 * waiting for its application to claim it with new_table.  snapshot and
 * del are requests to etsmgrd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "etsmgr.h"
#include "proto.h"
#include "table.h"
#include "table_image.h"

/* "1 entry", "5 entries" */
static const char *entries_word(unsigned long long n)
{
    return n == 1 ? "entry" : "entries";
}

int ctl_save(const rt_paths *rt, const char *table, const char *file, int timeout)
{
    char shm[RT_INSTANCE_MAX + ETSMGR_NAME_MAX + 16];
    if (rt_shm_name(rt, (unsigned long)geteuid(), table, shm, sizeof shm) < 0) {
        fprintf(stderr, "etsmgrctl: \"%s\" is not a table name ([A-Za-z0-9_.-]{1,64})\n", table);
        return CTL_EXIT_USAGE;
    }
    etsmgr_table *t = NULL;
    int rc = tbl_open(shm, &t);
    if (rc) {
        int e = errno;
        if (rc == ETSMGR_ENOTFOUND)
            fprintf(stderr, "etsmgrctl: no table %s in instance %s (no shared-memory object %s)\n", table,
                    rt->instance, shm);
        else
            fprintf(stderr, "etsmgrctl: cannot open table %s (%s): %s%s%s\n", table, shm, etsmgr_strerror(rc),
                    rc == ETSMGR_ESYS ? ": " : "", rc == ETSMGR_ESYS ? strerror(e) : "");
        return rc == ETSMGR_ENOTFOUND ? CTL_EXIT_NOINPUT : CTL_EXIT_SOFTWARE;
    }
    /* an owner stopped while holding the lock must not hang us forever */
    etsmgr_table_set_lock_timeout(t, (unsigned)timeout);
    /* tests only: the fsync of FILE's directory fails with this errno */
    const char *fail = getenv("ETSMGR_TEST_DIR_FSYNC_ERRNO");
    if (fail && *fail)
        img_test_dir_fsync_errno = atoi(fail);
    img_info info;
    char why[512] = "";
    rc = img_save(t, file, &info, why, sizeof why);
    etsmgr_table_close(t);
    if (rc && img_last_in_place()) {
        /* past the rename: FILE is the new image, the old one is gone */
        unsigned long long n = info.entries - info.rids;
        fprintf(stderr, "etsmgrctl: table %s saved to %s (%llu %s), but not durably: %s\n", table, file, n,
                entries_word(n), why[0] ? why : etsmgr_strerror(rc));
        return CTL_EXIT_CANTCREAT;
    }
    if (rc) {
        fprintf(stderr, "etsmgrctl: table %s not saved: %s; %s is unchanged\n", table,
                why[0] ? why : etsmgr_strerror(rc), file);
        return rc == ETSMGR_ESYS || rc == ETSMGR_EFULL ? CTL_EXIT_CANTCREAT : CTL_EXIT_SOFTWARE;
    }
    unsigned long long bytes = IMG_HDR_SIZE + info.records_bytes + IMG_TRAILER_SIZE;
    /* the entries, as tables and load count them: the image also carries
     * the request ids of update_counter_once, which are no entries */
    unsigned long long entries = info.entries - info.rids;
    if (g_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", table);
        cJSON_AddStringToObject(o, "file", file);
        cJSON_AddNumberToObject(o, "entries", (double)entries);
        cJSON_AddNumberToObject(o, "bytes", (double)bytes);
        ctl_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("saved table %s (%llu %s) to %s (%llu bytes)\n", table, entries, entries_word(entries), file,
               bytes);
    }
    return 0;
}

int ctl_load(const rt_paths *rt, const char *file, const char *as, bool replace, int timeout)
{
    etsmgr_client *c = NULL;
    int rc = ctl_connect(rt, timeout, &c);
    if (rc)
        return rc;
    etsmgr_table *t = NULL;
    rc = etsmgr_table_load(c, file, as, replace ? ETSMGR_LOAD_REPLACE : 0, &t);
    if (rc) {
        int e = errno;
        fprintf(stderr, "etsmgrctl: not loaded: %s\n", etsmgr_client_message(c));
        etsmgr_client_close(c);
        switch (rc) {
        case ETSMGR_ETRUNCATED: case ETSMGR_EBADMAGIC: case ETSMGR_EVERSION: case ETSMGR_ECORRUPT:
            return CTL_EXIT_DATAERR;
        case ETSMGR_ENOTFOUND:
            return CTL_EXIT_NOINPUT;
        case ETSMGR_ESYS:
            return e == EACCES || e == EISDIR ? CTL_EXIT_NOINPUT : CTL_EXIT_SOFTWARE;
        case ETSMGR_ENOTCONN:
            return CTL_EXIT_UNAVAILABLE;
        default:
            return CTL_EXIT_SOFTWARE;
        }
    }
    etsmgr_table_info info;
    etsmgr_table_info_get(t, &info);
    char name[ETSMGR_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", etsmgr_table_name(t));
    /* closing the connection orphans the table: etsmgrd is its heir now */
    etsmgr_client_close(c);
    if (g_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "file", file);
        cJSON_AddNumberToObject(o, "entries", (double)info.entries);
        cJSON_AddStringToObject(o, "state", "orphaned");
        ctl_print_json(o);
        cJSON_Delete(o);
    } else {
        printf("loaded table %s (%llu %s) from %s; it is orphaned until its owner claims it\n", name,
               (unsigned long long)info.entries, entries_word(info.entries), file);
    }
    return 0;
}

int ctl_snapshot(const rt_paths *rt, int timeout)
{
    cJSON *reply = NULL;
    int rc = ctl_call_op(rt, "etsmgrd", "snapshot", timeout, &reply);
    if (rc)
        return rc;
    /* a table whose save failed past its rename (its directory's fsync):
     * etsmgrd counts it as saved, its new snapshot is in place, but a
     * power cut may still undo that: said on stderr, and the exit status
     * is not 0 */
    int status = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(reply, "tables")) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(w, "name");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(w, "warning");
        if (!cJSON_IsString(msg))
            continue;
        fprintf(stderr, "etsmgrctl: table %s saved, but not durably: %s\n",
                cJSON_IsString(n) ? n->valuestring : "?", msg->valuestring);
        status = CTL_EXIT_CANTCREAT;
    }
    if (g_json) {
        ctl_print_json(reply);
    } else {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(reply, "saved");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(reply, "dir");
        printf("saved %.0f table(s) to %s\n", cJSON_IsNumber(v) ? v->valuedouble : 0,
               cJSON_IsString(d) ? d->valuestring : "?");
        const cJSON *tb;
        cJSON_ArrayForEach(tb, cJSON_GetObjectItemCaseSensitive(reply, "tables")) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(tb, "name");
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(tb, "entries");
            double k = cJSON_IsNumber(e) ? e->valuedouble : 0;
            printf("  %s: %.0f %s\n", cJSON_IsString(n) ? n->valuestring : "?", k,
                   entries_word((unsigned long long)k));
        }
    }
    cJSON_Delete(reply);
    return status;
}

int ctl_del(const rt_paths *rt, const char *table, bool force, int timeout)
{
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "del_table");
    cJSON_AddNumberToObject(req, "id", 1);
    cJSON_AddStringToObject(req, "name", table);
    cJSON_AddBoolToObject(req, "unlink", 1);
    if (force)
        cJSON_AddBoolToObject(req, "force", 1);
    int rc = ctl_call(rt, "etsmgrd.sock", "etsmgrd", req, timeout, NULL, &reply);
    cJSON_Delete(req);
    if (rc) {
        if (!force && proto_err_find(ctl_refusal) == PROTO_E_NOT_OWNER) /* not for not_found, nor a daemon not running */
            fprintf(stderr, "etsmgrctl: (an owned table is deleted only with --force; see etsmgrctl(1))\n");
        return proto_err_find(ctl_refusal) == PROTO_E_NOT_FOUND ? CTL_EXIT_NOINPUT : rc;
    }
    if (g_json)
        ctl_print_json(reply);
    else
        printf("deleted table %s: its shared memory and its snapshot are removed\n", table);
    cJSON_Delete(reply);
    return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* mgr_load.c: etsmgr_table_load, a table created from an image file through
 * etsmgrd.
 *
 * Order matters: the file is read and validated whole first (table_image.c),
 * so a bad file is refused before anything exists or anything is replaced;
 * only then does the daemon create the table (new_table with "exclusive",
 * and "replace" to drop an orphaned one of that name), which makes this
 * process its owner, and the entries are inserted.  A failure while filling
 * deletes the new table again, so a load either gives a complete table or
 * none; only a load killed halfway, or one whose delete etsmgrd did not
 * carry out, can leave a partial table (orphaned, never held by this
 * process, and replaceable with ETSMGR_LOAD_REPLACE).
 *
 * With ETSMGR_LOAD_REPLACE the daemon removes the table replaced before
 * the fill starts, so a fill that fails would lose it.  The reader rules
 * out a damaged file first; what a valid file can still fail at is its own
 * max_bytes (an image whose entries do not fit the limit it carries), so
 * such an image's fill is tried first in a table of this process alone (a
 * memfd: load_trial), and nothing is replaced when that fails.  What stays
 * is /dev/shm or memory running out during the fill itself. */
#include "mgr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "table.h"
#include "table_image.h"

/* im's fill, tried in a private table with opts o: 0, or the error said
 * (nothing replaced). */
static int load_trial(etsmgr_client *c, const char *path, const img *im, const etsmgr_table_opts *o)
{
    etsmgr_table *t = NULL;
    char why[256];
    int r = tbl_create_private("load-trial", o, &t);
    if (r)
        return mc_err(c, r, "", "%s: the fill could not be tried before replacing (%s); nothing was replaced",
                      path, etsmgr_strerror(r));
    r = img_fill(t, im, why, sizeof why);
    etsmgr_table_close(t);
    if (r)
        return mc_err(c, r, "", "%s: %s; nothing was replaced", path, why);
    return 0;
}

int etsmgr_table_load(etsmgr_client *c, const char *path, const char *name, unsigned flags,
                      etsmgr_table **out)
{
    if (!c || !path || !out || (flags & ~ETSMGR_LOAD_REPLACE))
        return ETSMGR_EINVAL;
    *out = NULL;
    img *im = NULL;
    char why[256];
    int r = img_read(path, &im, why, sizeof why);
    if (r) {
        int e = errno;
        mc_err(c, r, "", "%s: %s", path, why);
        errno = e;
        return r;
    }
    if (!name)
        name = im->info.name;
    etsmgr_table_opts o;
    img_table_opts(im, &o);
    if ((flags & ETSMGR_LOAD_REPLACE) && o.max_bytes && (r = load_trial(c, path, im, &o)) != 0) {
        img_free(im);
        return r;
    }
    etsmgr_table *t = NULL;
    r = mc_new_table(c, name, &o, NULL, flags & ETSMGR_LOAD_REPLACE ? MC_CREATE_REPLACE : MC_CREATE_EXCLUSIVE,
                     &t, NULL);
    if (r) {
        img_free(im);
        return r;
    }
    r = img_fill(t, im, why, sizeof why);
    img_free(im);
    if (r) {
        /* leave nothing half-loaded behind (the daemon unlinks it) */
        char tname[ETSMGR_NAME_MAX + 1];
        snprintf(tname, sizeof tname, "%s", etsmgr_table_name(t));
        int dr = etsmgr_del_table(c, t, 1);
        if (dr == ETSMGR_OK)
            return mc_err(c, r, "", "%s: %s", path, why);
        /* etsmgrd did not delete it (gone, or refusing): this process lets
         * go of it all the same, as a load killed here would, so that the
         * half-filled table is never one of its own: not listed in
         * etsmgr_client_tables, not registered again by a reconnect as
         * if whole (test snapshot/test_load_failed_del_failed) */
        if (dr == ETSMGR_ETIMEDOUT && mc_held_index(c, t) < 0) {
            /* in a timed-out delete's doubt: closed, and not held again if
             * the delete is refused later (still held: the doubt could not
             * be recorded, out of memory, and it is let go below) */
            mc_late_disown(c, t);
        } else {
            mc_unhold(c, t);
            etsmgr_table_close(t);
        }
        return mc_err(c, r, "",
                      "%s: %s; the half-loaded table %s is left behind (etsmgrd did not delete it: %s): "
                      "delete it (etsmgrctl del %s) or load again with replace",
                      path, why, tname, etsmgr_strerror(dr), tname);
    }
    *out = t;
    return ETSMGR_OK;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* test_shmobj.c: etsmgrd's lookup of a table's object (daemon/shmobj.c) on
 * its own, without a socket, with real objects of a unique instance.
 *
 * Regression: once any table had been deleted, every new_table of a name
 * not managed listed all of /dev/shm (one flag, set by every removal and
 * never cleared), so each creation got slower with the objects there.  Now
 * only the names whose object may stay unmanaged are looked for by listing,
 * and a listing that finds nothing forgets the name.  The daemon counts its
 * listings (m->obj_listings), which is what is asserted here. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "etsmgr.h"
#include "table.h"
#include "../daemon/etsmgrd.h"

static mgrd M;
static char shm_a[MGRD_SHM_NAME_MAX], shm_b[MGRD_SHM_NAME_MAX];

static void setup(void)
{
    memset(&M, 0, sizeof M);
    M.pid = getpid();
    snprintf(M.rt.instance, sizeof M.rt.instance, "tshmobj%d", (int)getpid());
    shm_a[0] = shm_b[0] = '\0';
}

static void teardown(void)
{
    mgrd_reg_free_all(&M);
    if (shm_a[0])
        tbl_unlink(shm_a);
    if (shm_b[0])
        tbl_unlink(shm_b);
}

static mgrd_table *make(const char *name, char *shm, size_t len)
{
    etsmgr_table_opts o = {0};
    etsmgr_table *t = NULL;
    int rc = mgrd_obj_create(&M, getuid(), name, &o, &t, shm, len);
    ck_assert_msg(rc == ETSMGR_OK, "create %s: %s", name, etsmgr_strerror(rc));
    mgrd_table *rt = mgrd_reg_add(&M, name, shm, t, getuid());
    ck_assert_ptr_nonnull(rt);
    return rt;
}

static int find(const char *name, uid_t uid, mgrd_obj *o)
{
    int f = mgrd_obj_find(&M, name, uid, NULL, o);
    ck_assert_int_ge(f, 0);
    return f;
}

START_TEST(test_shmobj_lists_only_for_names_let_go)
{
    mgrd_obj o;
    mgrd_table *a = make("a", shm_a, sizeof shm_a);
    mgrd_table *b = make("b", shm_b, sizeof shm_b);

    /* a is deleted with its object (del_table --unlink): nothing stays */
    ck_assert_int_eq(tbl_unlink(shm_a), ETSMGR_OK);
    shm_a[0] = '\0';
    mgrd_reg_remove(&M, a);
    ck_assert_int_eq(find("c", getuid(), &o), 0);
    ck_assert_int_eq(find("a", getuid(), &o), 0);
    ck_assert_uint_eq(M.obj_listings, 0); /* was: a listing per lookup */

    /* b is let go with its data (plain del_table): only b is looked for */
    mgrd_reg_remove(&M, b);
    ck_assert_int_eq(find("c", getuid(), &o), 0);
    ck_assert_uint_eq(M.obj_listings, 0);
    /* another uid's new_table of b finds b's object under our uid's name */
    ck_assert_int_eq(find("b", getuid() + 1, &o), 1);
    ck_assert_str_eq(o.shm_name, shm_b);
    ck_assert_uint_eq(M.obj_listings, 1);

    /* once b's object is gone, one listing finds nothing and b is forgotten */
    ck_assert_int_eq(tbl_unlink(shm_b), ETSMGR_OK);
    shm_b[0] = '\0';
    ck_assert_int_eq(find("b", getuid() + 1, &o), 0);
    ck_assert_uint_eq(M.obj_listings, 2);
    ck_assert_int_eq(find("b", getuid() + 1, &o), 0);
    ck_assert_int_eq(find("c", getuid(), &o), 0);
    ck_assert_uint_eq(M.obj_listings, 2);
}
END_TEST

Suite *shmobj_suite(void)
{
    Suite *s = suite_create("shmobj");
    TCase *tc = tcase_create("shmobj");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_shmobj_lists_only_for_names_let_go);
    suite_add_tcase(s, tc);
    return s;
}

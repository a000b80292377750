/* SPDX-License-Identifier: Apache-2.0 */
/* test_registry.c: etsmgrd's ownership rules (daemon/registry.c) on their
 * own, without a socket: the registry is driven with peers made up here and
 * a real table, so each rule of the actor table and each transition is
 * checked directly.
 *
 *  - the actor check, every act against every state (its table is at the
 *    top of registry.c);
 *  - a closing owner orphans its tables, records the transfer in the header
 *    and counts it;
 *  - regression: during an orderly exit a closing owner left its tables
 *    "owned" by a peer that was then freed (state MGRD_OWNED, owner NULL):
 *    the status said owned by a dead pid, and a new process of the uid was
 *    refused with "owned".  Now the table is orphaned in the daemon's
 *    memory, while the header keeps its owner and no transfer is counted. */
#include <check.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "etsmgr.h"
#include "table.h"
#include "../daemon/etsmgrd.h"

static char shm[64];
static mgrd M;
static mgrd_table *T;
static mgrd_peer P1, P2, OTHER;

static void setup(void)
{
    memset(&M, 0, sizeof M);
    M.pid = getpid();
    snprintf(shm, sizeof shm, "/treg%d.tbl", (int)getpid());
    shm_unlink(shm); /* one left by a killed run of a process with our pid */
    etsmgr_table_opts o = {0};
    etsmgr_table *t = NULL;
    int rc = tbl_create(shm, "tbl", &o, &t);
    ck_assert_msg(rc == ETSMGR_OK, "tbl_create %s: %s", shm, etsmgr_strerror(rc));
    T = mgrd_reg_add(&M, "tbl", shm, t, getuid());
    ck_assert_ptr_nonnull(T);
    P1 = (mgrd_peer){.pid = 1001, .uid = getuid()};
    P2 = (mgrd_peer){.pid = 1002, .uid = getuid()};
    OTHER = (mgrd_peer){.pid = 1003, .uid = getuid() + 1};
}

static void teardown(void)
{
    mgrd_reg_free_all(&M);
    shm_unlink(shm);
}

static etsmgr_table_info info(void)
{
    etsmgr_table_info i;
    ck_assert_int_eq(etsmgr_table_info_get(T->t, &i), ETSMGR_OK);
    return i;
}

static const char *status_state(void)
{
    static char st[16];
    cJSON *o = mgrd_reg_status(&M, T);
    ck_assert_ptr_nonnull(o);
    snprintf(st, sizeof st, "%s", cJSON_GetObjectItem(o, "state")->valuestring);
    ck_assert_int_eq((int)cJSON_GetObjectItem(o, "owner_pid")->valuedouble,
                     strcmp(st, "owned") == 0 ? (int)T->owner_pid : 0);
    cJSON_Delete(o);
    return st;
}

START_TEST(test_registry_actor_rules)
{
    enum { N = 8 };
    static const mgrd_act acts[N] = {MGRD_ACT_TAKE,         MGRD_ACT_REPLACE, MGRD_ACT_DELETE,
                                     MGRD_ACT_FORCE_DELETE, MGRD_ACT_GIVE,    MGRD_ACT_LOAD,
                                     MGRD_ACT_LOAD_REPLACE, MGRD_ACT_ADD};
    /* orphaned: anyone of the uid may do anything but give it away;
     * another uid may only replace (its new object is checked) */
    ck_assert_int_eq(mgrd_reg_state(T), MGRD_ORPHANED);
    const mgrd_verdict orphaned[N] = {MGRD_MAY,      MGRD_MAY, MGRD_MAY, MGRD_MAY,
                                      MGRD_NOT_HELD, MGRD_MAY, MGRD_MAY, MGRD_MAY};
    const mgrd_verdict other_uid[N] = {MGRD_NOT_UID, MGRD_MAY,     MGRD_NOT_UID, MGRD_NOT_UID,
                                       MGRD_NOT_UID, MGRD_NOT_UID, MGRD_NOT_UID, MGRD_NOT_UID};
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mgrd_reg_may(T, &P1, acts[i]), orphaned[i]);
        ck_assert_int_eq(mgrd_reg_may(T, &OTHER, acts[i]), other_uid[i]);
    }
    /* owned by P1: P1 may do all but replace it by a load (only an orphan
     * is); P2 may only force a delete or load-check it; another uid is
     * refused for its uid first, except REPLACE */
    mgrd_reg_give(&M, T, &P1);
    ck_assert_int_eq(mgrd_reg_state(T), MGRD_OWNED);
    const mgrd_verdict self[N] = {MGRD_MAY, MGRD_MAY, MGRD_MAY,        MGRD_MAY,
                                  MGRD_MAY, MGRD_MAY, MGRD_NOT_ORPHAN, MGRD_MAY};
    const mgrd_verdict other[N] = {MGRD_OWNED_BY_OTHER, MGRD_OWNED_BY_OTHER,
                                   MGRD_OWNED_BY_OTHER, MGRD_MAY,
                                   MGRD_OWNED_BY_OTHER, MGRD_MAY,
                                   MGRD_OWNED_BY_OTHER, MGRD_MAY};
    const mgrd_verdict other_uid_owned[N] = {MGRD_NOT_UID, MGRD_OWNED_BY_OTHER, MGRD_NOT_UID, MGRD_NOT_UID,
                                             MGRD_NOT_UID, MGRD_NOT_UID,        MGRD_NOT_UID, MGRD_NOT_UID};
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(mgrd_reg_may(T, &P1, acts[i]), self[i]);
        ck_assert_int_eq(mgrd_reg_may(T, &P2, acts[i]), other[i]);
        ck_assert_int_eq(mgrd_reg_may(T, &OTHER, acts[i]), other_uid_owned[i]);
    }
}
END_TEST

START_TEST(test_registry_transitions)
{
    uint64_t gen0 = info().generation;
    mgrd_reg_give(&M, T, &P1);
    ck_assert_ptr_eq(T->owner, &P1);
    ck_assert_uint_eq(P1.owned, 1);
    ck_assert_str_eq(status_state(), "owned");
    ck_assert_int_eq(info().owner_pid, 1001);
    /* give_away: P1 -> P2 */
    mgrd_reg_give(&M, T, &P2);
    ck_assert_uint_eq(P1.owned, 0);
    ck_assert_uint_eq(P2.owned, 1);
    ck_assert_int_eq(info().owner_pid, 1002);
    /* the owner's connection closes: orphaned, recorded, counted */
    mgrd_reg_orphan_all(&M, &P2);
    ck_assert_int_eq(mgrd_reg_state(T), MGRD_ORPHANED);
    ck_assert_ptr_null(T->owner);
    ck_assert_uint_eq(P2.owned, 0);
    ck_assert_str_eq(status_state(), "orphaned");
    ck_assert_int_eq(info().owner_pid, 0);
    ck_assert_int_eq(info().heir_pid, (int)getpid());
    ck_assert_uint_eq(T->transfers, 3);
    ck_assert_uint_eq(info().generation, gen0 + 3);
    /* orphaning an orphan changes nothing */
    mgrd_reg_orphan(&M, T);
    ck_assert_uint_eq(T->transfers, 3);
}
END_TEST

START_TEST(test_registry_stop_orphans_in_memory_only)
{
    mgrd_reg_give(&M, T, &P1);
    uint64_t gen = info().generation, transfers = T->transfers;
    M.stopping = true;
    mgrd_reg_orphan_all(&M, &P1);
    /* the daemon no longer holds a life line: not owned by a freed peer */
    ck_assert_int_eq(mgrd_reg_state(T), MGRD_ORPHANED);
    ck_assert_ptr_null(T->owner);
    ck_assert_uint_eq(P1.owned, 0);
    ck_assert_str_eq(status_state(), "orphaned");
    ck_assert_int_eq(mgrd_reg_may(T, &P2, MGRD_ACT_TAKE), MGRD_MAY);
    /* ...but nothing is recorded: the header keeps its owner, no transfer */
    ck_assert_int_eq(info().owner_pid, 1001);
    ck_assert_uint_eq(info().generation, gen);
    ck_assert_uint_eq(T->transfers, transfers);
}
END_TEST

Suite *registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc = tcase_create("registry");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_registry_actor_rules);
    tcase_add_test(tc, test_registry_transitions);
    tcase_add_test(tc, test_registry_stop_orphans_in_memory_only);
    suite_add_tcase(s, tc);
    return s;
}

/* SPDX-License-Identifier: Apache-2.0 */
/* suite_decl.h: the prototype of a suite file's one exported function,
 * Suite *NAME_suite(void), which the runner calls (runner.c declares them
 * all from the generated suites.h).  The Makefile force-includes this into
 * tests/test_NAME.c with -DETSMGR_SUITE=NAME, so that -Wmissing-prototypes
 * holds for the test files too without each one repeating its declaration
 * (and a new suite file needs nothing extra). */
#ifndef ETSMGR_SUITE_DECL_H
#define ETSMGR_SUITE_DECL_H
#include <check.h>
#define ETSMGR_SUITE_FN2(n) n##_suite
#define ETSMGR_SUITE_FN(n) ETSMGR_SUITE_FN2(n)
Suite *ETSMGR_SUITE_FN(ETSMGR_SUITE)(void);
#endif

/* runner.c: the one test program; it runs every suite listed in suites.h,
 * which the Makefile generates from tests/test_*.c.  Each test runs in a
 * forked child (check's default), so a crash fails one test, not the run.
 * CK_RUN_SUITE=NAME / CK_RUN_CASE=NAME select a part (check's own variables). */
#include <check.h>
#include <stdlib.h>

#define SUITE(name) Suite *name##_suite(void);
#include "suites.h"
#undef SUITE

int main(void)
{
    SRunner *sr = srunner_create(NULL);
#define SUITE(name) srunner_add_suite(sr, name##_suite());
#include "suites.h"
#undef SUITE
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

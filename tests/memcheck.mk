# SPDX-License-Identifier: Apache-2.0
# tests/memcheck.mk: make memcheck runs the unit suites under valgrind's
# memcheck: any invalid access, use of uninitialised memory, or memory
# definitely or indirectly lost at exit fails the run.
#
# Check forks each test (CK_FORK stays on): valgrind follows a fork without
# being told, so each test's process is checked and reports its own leaks at
# its exit, and a leak makes that test fail ("early exit with return value
# 1") instead of ending the whole run.  Programs that tests exec are not
# traced (no --trace-children): the suites that start the daemons, CLIs or
# tools (client, daemon*, etscounter, etsmgrctl, hostile*, sup*, install,
# manpages, service, crashlab, testutil, lock_timeout) would run them under
# valgrind only to time out on this 2-core machine; their code runs here
# through the unit suites and under ASan in make check SANITIZE=1.
# table_crash is left out too: its random-SIGKILL loop wants more than 10
# rounds within a time budget, which valgrind's slowdown cannot meet (its
# other tests reported no memcheck error).  sup_config runs etssup
# natively for its --check cases.
#   make memcheck                      the unit suites below
#   make memcheck MEMCHECK_SUITES=NAME one suite
# ETSMGR_TEST_VALGRIND=1 tells a test that asserts what the kernel does for
# one machine instruction that valgrind runs a different one: it runs an
# atomic read-modify-write as a load and then a compare-and-swap, so the
# first access to a page is a read there (table/
# update_counter_once_maps_one_index_page counts the pages mapped); and
# table_grow/grow_to_a_million grows to 100,000 entries, not a million
# (197 s under valgrind on a PVM guest, for the same growth code).

MEMCHECK_SUITES ?= fdpass frame proto log runtime notify conn table table_attach table_grow sup_config
VALGRIND_FLAGS := --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --error-exitcode=1 --track-fds=no

.PHONY: memcheck
memcheck: all $(TEST_RUNNER) $(TEST_PROGS)
	@command -v valgrind >/dev/null || sh common/deps.sh install valgrind
	@rc=0; for s in $(MEMCHECK_SUITES); do \
	  echo "memcheck: suite $$s"; \
	  CK_RUN_SUITE=$$s CK_DEFAULT_TIMEOUT=120 ETSMGR_TEST_VALGRIND=1 $(TEST_ENV) valgrind $(VALGRIND_FLAGS) $(TEST_RUNNER) || rc=1; \
	done; exit $$rc

# SPDX-License-Identifier: Apache-2.0
# crash.mk: `make crash`, a kill -9 experiment of CRASH_SECONDS (60) seconds
# on a fresh system under etssup, killing every target (etscounterd,
# etsmgrd, both, etssup) at random, then the report; it fails when an
# invariant does not hold.  The JSON report, the SVG plot and the logs stay
# in $(BUILD)/crash/.  CRASH_ARGS adds options, e.g.
#   make crash CRASH_ARGS="--strategy one_for_all --on-manager-death exit"
# (see etsmgr-crashlab(1) and docs/crash-experiments.md).
# Then the table store's own loop of CRASH_READERS_SECONDS (30): a writer
# SIGKILLed at random while lock-free readers check every value they get
# (table_crash/random_sigkill_readers, 2.5 s of it in make check), and as
# long the same for an ordered_set, its readers walking in key order
# (ordered_kill).  Last, the ordered_set model test with CRASH_MODEL_OPS
# operations (1M in make check).
CRASH_SECONDS ?= 60
CRASH_READERS_SECONDS ?= 30
CRASH_MODEL_OPS ?= 5000000
CRASH_ARGS ?=
CRASH_OUT := $(BUILD)/crash

.PHONY: crash
crash: all $(TEST_RUNNER)
	@mkdir -p $(CRASH_OUT)
	@rm -f $(CRASH_OUT)/etssup.log
	$(BIN)/etsmgr-crashlab --duration $(CRASH_SECONDS) --targets all \
	  --json $(CRASH_OUT)/report.json --plot $(CRASH_OUT)/crash.svg --log $(CRASH_OUT)/etssup.log $(CRASH_ARGS)
	$(TEST_ENV) ETSMGR_READERS_SOAK_S=$(CRASH_READERS_SECONDS) CK_RUN_SUITE=table_crash \
	  CK_RUN_CASE=kill_readers $(TEST_RUNNER)
	$(TEST_ENV) ETSMGR_READERS_SOAK_S=$(CRASH_READERS_SECONDS) CK_RUN_SUITE=ordered_kill $(TEST_RUNNER)
	$(TEST_ENV) ETSMGR_MODEL_OPS=$(CRASH_MODEL_OPS) CK_RUN_SUITE=ordered CK_RUN_CASE=model $(TEST_RUNNER)
	@echo "crash: report $(CRASH_OUT)/report.json, plot $(CRASH_OUT)/crash.svg, logs $(CRASH_OUT)/etssup.log"

# SPDX-License-Identifier: Apache-2.0
# tests/bench/bench.mk: `make bench`, where the project stands against Redis,
# Erlang's ETS, the machine's limits and its own targets, measured in one run
# (docs/performance.md).  Not part of `make check`.
#
#   make bench                 everything, about 3 minutes; prints the table
#                              and writes build/bench/results.json
#   make bench BENCH_NET_SECS=3 BENCH_ROUNDS=5 BENCH_KILLS=200   longer, more
#   make bench BENCH_ETSCOUNTERD=/path/etscounterd  measure a patched etscounterd
#   make bench BENCH_ONLY=recovery  only the recovery sections (3 and 6), about
#                              a minute; BENCH_ONLY=standby: section 6 only;
#                              BENCH_ONLY=redis: section 2 only (Redis), 90 s;
#                              several joined by commas: BENCH_ONLY=redis,standby
#
# redis-server and redis-tools are installed on first use, the way the build
# installs its own dependencies (common/deps.sh); so are Erlang (erlang-base,
# for the ETS rows), LMDB (liblmdb-dev, for its ordered rows) and perf
# (linux-perf, for the profile), but without those three the bench goes on and says what it skipped.  bench-table (table.mk) is
# run as part of it and its rows are folded into the same table.
BENCH_DIR := $(BUILD)/tests/bench
BENCH_PROGS := $(addprefix $(BENCH_DIR)/,loadgen recovery reattach proctime report)
BENCH_UTIL_OBJ := $(OBJ)/tests/bench/benchutil.o
BENCH_NET_SECS ?= 1
BENCH_ROUNDS ?= 3
BENCH_KILLS ?= 100
BENCH_CLI_RUNS ?= 200
BENCH_REATTACH_REPS ?= 20
BENCH_ONLY ?=

$(BENCH_PROGS): $(BENCH_DIR)/%: $(OBJ)/tests/bench/%.o $(BENCH_UTIL_OBJ) $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PROG_A) $(LIB_A) $(LDLIBS)
# recovery counts in a loop with the CLI's own request and retry code
$(BENCH_DIR)/recovery: $(OBJ)/client/etscounter/call.o

.PHONY: bench bench-deps bench-progs
bench-deps:
	@missing=$$(sh common/deps.sh missing cmd:redis-server=redis-server cmd:redis-cli=redis-tools); \
	if [ -n "$$missing" ]; then \
	  echo "etsmgr: installing missing Debian packages: $$missing"; \
	  sh common/deps.sh install $$missing || { echo "etsmgr: could not install $$missing; install them with apt-get and run make bench again" >&2; exit 1; }; \
	fi
	@# Erlang (the ETS rows) and perf (the profile) are optional: without
	@# them the bench says so and skips only what needs them
	@$(MAKE) --no-print-directory bench-optional BENCH_OPTIONAL="cmd:escript=erlang-base lmdb=liblmdb-dev cmd:perf=linux-perf"

# Installs what BENCH_OPTIONAL names (deps.sh specs) when missing; a
# failure is a warning, since every bench goes on without them.
.PHONY: bench-optional
bench-optional:
	@missing=$$(sh common/deps.sh missing $(BENCH_OPTIONAL)); \
	if [ -n "$$missing" ]; then \
	  echo "etsmgr: installing for the bench: $$missing"; \
	  sh common/deps.sh install $$missing || echo "etsmgr: could not install $$missing; the bench goes on without (it says what it skips)" >&2; \
	fi

# (bench_table: its rule is in table.mk, which may be read after this file)
bench-progs: $(BENCH_PROGS) $(BENCH_DIR)/bench_table

# only the programs the bench runs (not `all`), so a half-written program
# elsewhere in the tree does not stop it
BENCH_SYSTEM := $(addprefix $(BIN)/,etssup etsmgrd etscounterd etscounter)
bench: bench-deps bench-progs $(BENCH_SYSTEM)
	@# LMDB's rows (lmdb_bench) only where bench-deps could install LMDB
	@if pkg-config --exists lmdb; then $(MAKE) --no-print-directory $(BENCH_DIR)/lmdb_bench; fi
	BENCH_SECS=$(BENCH_SECS) BENCH_NET_SECS=$(BENCH_NET_SECS) BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_KILLS=$(BENCH_KILLS) \
	  BENCH_CLI_RUNS=$(BENCH_CLI_RUNS) BENCH_REATTACH_REPS=$(BENCH_REATTACH_REPS) \
	  BENCH_ETSCOUNTERD=$(BENCH_ETSCOUNTERD) BENCH_ONLY=$(BENCH_ONLY) \
	  bash tests/bench/run.sh $(abspath $(BIN)) $(abspath $(BENCH_DIR)) $(abspath $(BUILD)/bench)

# SPDX-License-Identifier: Apache-2.0
# tests/bench/table.mk: `make bench-table`, the table store benchmark (not a
# test; see tests/bench/bench_table.c).  BENCH_SECS sets the seconds per row;
# BENCH_ONLY=ordered runs only the ordered_set rows.  ETS's same rows follow
# from ets_bench.escript, and LMDB's ordered rows from lmdb_bench.c, in the
# same run (JSON lines; make bench puts them all in one table): Erlang
# (erlang-base) and LMDB (liblmdb-dev) are installed on first use, as make
# bench does, and without them their rows are skipped, saying so.
BENCH_TABLE := $(BUILD)/tests/bench/bench_table
LMDB_BENCH := $(BUILD)/tests/bench/lmdb_bench
BENCH_SECS ?= 1
BENCH_ONLY ?=

$(BENCH_TABLE): $(OBJ)/tests/bench/bench_table.o $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# only built where LMDB is installed (a reference, never a dependency of
# the project itself)
$(LMDB_BENCH): $(OBJ)/tests/bench/lmdb_bench.o $(OBJ)/tests/bench/benchutil.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $$(pkg-config --libs lmdb) $(LDLIBS)

.PHONY: bench-table lmdb-bench
bench-table: $(BENCH_TABLE)
	@$(MAKE) --no-print-directory bench-optional BENCH_OPTIONAL="cmd:escript=erlang-base lmdb=liblmdb-dev"
	$(BENCH_TABLE) $(BENCH_SECS) $(BENCH_ONLY)
	@if command -v escript >/dev/null 2>&1; then \
	    echo "ETS (tests/bench/ets_bench.escript), the same rows:"; \
	    escript tests/bench/ets_bench.escript $(BENCH_SECS) $(BENCH_ONLY); \
	else echo "ETS rows skipped: Erlang (escript) is not installed"; fi
	@if pkg-config --exists lmdb; then \
	    $(MAKE) --no-print-directory $(LMDB_BENCH) >/dev/null && \
	    echo "LMDB (tests/bench/lmdb_bench.c), the ordered_set rows:" && \
	    $(LMDB_BENCH) $(BENCH_SECS); \
	else echo "LMDB rows skipped: LMDB (liblmdb-dev) is not installed"; fi

# the LMDB rows alone (about a minute)
lmdb-bench: $(LMDB_BENCH)
	$(LMDB_BENCH) $(BENCH_SECS)

# range_probe (tests/bench/range_probe.c): an ordered table's range walks
# taken apart, on tables made once and attached by every build; a tool for
# work on table_ordered.c, run by hand (docs/performance.md).
RANGE_PROBE := $(BUILD)/tests/bench/range_probe

$(RANGE_PROBE): $(OBJ)/tests/bench/range_probe.o $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: range-probe
range-probe: $(RANGE_PROBE)

# range_ab (tests/bench/range_ab.c): two builds' range walks in one process,
# in turns: make range-ab A=before/libetsmgr.a B=after/libetsmgr.a.  B's
# global symbols are renamed B_... so that both link (docs/performance.md,
# "The 10M range, a fourth pass").
RANGE_AB := $(BUILD)/tests/bench/range_ab

.PHONY: range-ab
range-ab:
	@if [ -z "$(A)" ] || [ -z "$(B)" ]; then \
	    echo "usage: make range-ab A=before/libetsmgr.a B=after/libetsmgr.a" >&2; exit 64; fi
	@mkdir -p $(dir $(RANGE_AB))
	nm -g --defined-only '$(B)' | awk 'NF == 3 {print $$3 " B_" $$3}' | sort -u > $(RANGE_AB).syms
	objcopy --redefine-syms=$(RANGE_AB).syms '$(B)' $(RANGE_AB).B.a
	$(CC) $(CPPFLAGS) $(INC_ALL) $(CFLAGS) -o $(RANGE_AB) tests/bench/range_ab.c '$(A)' $(RANGE_AB).B.a $(LDLIBS)

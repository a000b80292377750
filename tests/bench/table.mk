# SPDX-License-Identifier: Apache-2.0
# tests/bench/table.mk: `make bench-table`, the table store benchmark (not a
# test; see tests/bench/bench_table.c).  BENCH_SECS sets the seconds per row;
# BENCH_ONLY=ordered runs only the ordered_set rows.  ETS's same rows follow
# from ets_bench.escript, in the same run (JSON lines; make bench puts both
# in one table): Erlang (erlang-base) is installed on first use, as make
# bench does, and without it the ETS rows are skipped, saying so.
BENCH_TABLE := $(BUILD)/tests/bench/bench_table
BENCH_SECS ?= 1
BENCH_ONLY ?=

$(BENCH_TABLE): $(OBJ)/tests/bench/bench_table.o $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: bench-table
bench-table: $(BENCH_TABLE)
	@$(MAKE) --no-print-directory bench-optional BENCH_OPTIONAL="cmd:escript=erlang-base"
	$(BENCH_TABLE) $(BENCH_SECS) $(BENCH_ONLY)
	@if command -v escript >/dev/null 2>&1; then \
	    echo "ETS (tests/bench/ets_bench.escript), the same rows:"; \
	    escript tests/bench/ets_bench.escript $(BENCH_SECS) $(BENCH_ONLY); \
	else echo "ETS rows skipped: Erlang (escript) is not installed"; fi

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

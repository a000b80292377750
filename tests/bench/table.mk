# SPDX-License-Identifier: Apache-2.0
# tests/bench/table.mk: `make bench-table`, the table store benchmark (not a
# test; see tests/bench/bench_table.c).  BENCH_SECS sets the seconds per row;
# BENCH_ONLY=ordered runs only the ordered_set rows.
BENCH_TABLE := $(BUILD)/tests/bench/bench_table
BENCH_SECS ?= 1
BENCH_ONLY ?=

$(BENCH_TABLE): $(OBJ)/tests/bench/bench_table.o $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: bench-table
bench-table: $(BENCH_TABLE)
	$(BENCH_TABLE) $(BENCH_SECS) $(BENCH_ONLY)

# SPDX-License-Identifier: Apache-2.0
# tests/bench/save.mk: `make bench-save`, how long a save stalls the table's
# owner for 4 KiB, 64 MiB and 1 GiB tables (tests/bench/save_stall.c; about
# 30 s, needs 3 GiB of /dev/shm and memory and 1 GiB in BENCH_SAVE_DIR).
BENCH_SAVE := $(BUILD)/tests/bench/bench_save
BENCH_SAVE_DIR ?= /tmp

$(BENCH_SAVE): $(OBJ)/tests/bench/save_stall.o $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

.PHONY: bench-save
bench-save: $(BENCH_SAVE)
	$(BENCH_SAVE) $(BENCH_SAVE_DIR)

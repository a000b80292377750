# SPDX-License-Identifier: Apache-2.0
# tests/fuzz/fuzz.mk: libFuzzer harnesses (clang), built apart from the
# rest under build/fuzz with ASan+UBSan and libFuzzer's coverage.
#
#   make fuzz                     build and run every harness FUZZ_SECONDS (30) each
#   make fuzz FUZZ_SECONDS=N      the same, N seconds each
#   make fuzz-build               build only
#   make fuzz_NAME                run one, e.g. make fuzz_sup_config FUZZ_SECONDS=600
#
# Every tests/fuzz/fuzz_NAME.c is a harness (build/fuzz/bin/fuzz_NAME),
# linked with libetsmgr's sources (common/, client/lib/), common/prog/
# (but conn.c) and the program sources its
# FZ_SRCS_fuzz_NAME names; the daemons' request handlers are linked with
# tests/fuzz/fake_conn.c, which stands in for conn.c (see that file).
# A run starts from the seeds in tests/fuzz/corpus/fuzz_NAME/ plus what
# earlier runs found (build/fuzz/corpus/fuzz_NAME/, not committed), and
# fails on any crash, sanitizer report, leak, fd leak, or an input that
# takes over FUZZ_TIMEOUT seconds; the input is kept in
# build/fuzz/artifacts/fuzz_NAME/ (rerun: build/fuzz/bin/fuzz_NAME FILE).
# tests/fuzz/run.sh does one run; build/fuzz/summary.txt collects the
# executions of each.

FUZZ_SECONDS ?= 30
FUZZ_TIMEOUT ?= 10
FZ_DIR := build/fuzz
FZ_CC := clang
FZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FZ_CFLAGS := -std=c11 -g -O1 -Wall -Wextra -Wno-unknown-warning-option -D_GNU_SOURCE $(MUTEX_PEEK) \
	-DETSMGR_VERSION_STRING='"$(VERSION)"' $(FZ_SAN) -fsanitize=fuzzer-no-link \
	-Icommon -Icommon/prog -Iclient/include -Iclient/lib -Iclient -Idaemon -Iclient/etscounterd -Isupervisor/etssup -Itests/fuzz \
	$(PKG_CFLAGS)
FZ_LDFLAGS := $(FZ_SAN) -fsanitize=fuzzer
FZ_LDLIBS := $(PKG_LIBS) -lpthread -lrt -lm

FZ_BASE_SRCS := $(filter-out common/prog/conn.c,$(wildcard common/*.c client/lib/*.c common/prog/*.c))
FZ_HARNESSES := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FZ_SRCS_fuzz_etsmgrd_req := $(filter-out daemon/main.c,$(wildcard daemon/*.c)) tests/fuzz/fake_conn.c
FZ_SRCS_fuzz_etscounterd_req := client/etscounterd/serve.c client/etscounterd/counter.c \
	client/etscounterd/fastparse.c 	tests/fuzz/fake_conn.c
FZ_SRCS_fuzz_sup_config := supervisor/etssup/config.c
FZ_SRCS_fuzz_fastparse := client/etscounterd/fastparse.c client/etscounterd/counter.c
FZ_SRCS_fuzz_table_attach := client/etscounterd/counter.c
FZ_BINS := $(addprefix $(FZ_DIR)/bin/,$(FZ_HARNESSES))

# clang, and libFuzzer's runtime (Debian ships it apart, libclang-rt-N-dev),
# installed on first use through common/deps.sh as the build does.
.PHONY: fuzz-deps
fuzz-deps:
	@missing=$$(sh common/deps.sh missing cmd:clang=clang); \
	if [ -n "$$missing" ]; then \
	  echo "etsmgr: installing missing Debian packages: $$missing"; \
	  sh common/deps.sh install $$missing || { echo "etsmgr: could not install $$missing" >&2; exit 1; }; \
	fi; \
	probe='int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }'; \
	if ! echo "$$probe" | $(FZ_CC) -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then \
	  v=$$($(FZ_CC) -dumpversion | cut -d. -f1); \
	  echo "etsmgr: installing libFuzzer's runtime: libclang-rt-$$v-dev"; \
	  sh common/deps.sh install libclang-rt-$$v-dev || { echo "etsmgr: could not install libclang-rt-$$v-dev" >&2; exit 1; }; \
	fi

$(FZ_DIR)/obj/%.o: %.c | fuzz-deps
	@mkdir -p $(@D)
	$(FZ_CC) $(FZ_CFLAGS) -MMD -MP -c -o $@ $<

fz_objs = $(patsubst %.c,$(FZ_DIR)/obj/%.o,$(FZ_BASE_SRCS) $(FZ_SRCS_$(1)) tests/fuzz/$(1).c)

define FZ_RULE
$(FZ_DIR)/bin/$(1): $(call fz_objs,$(1))
	@mkdir -p $$(@D)
	$(FZ_CC) $(FZ_LDFLAGS) -o $$@ $$^ $(FZ_LDLIBS)
.PHONY: $(1)
$(1): $(FZ_DIR)/bin/$(1)
	sh tests/fuzz/run.sh $(1) $(FUZZ_SECONDS) $(FUZZ_TIMEOUT)
endef
$(foreach h,$(FZ_HARNESSES),$(eval $(call FZ_RULE,$(h))))

.PHONY: fuzz fuzz-build
fuzz-build: $(FZ_BINS)
fuzz: fuzz-build
	@rm -f $(FZ_DIR)/summary.txt; rc=0; \
	for h in $(FZ_HARNESSES); do sh tests/fuzz/run.sh $$h $(FUZZ_SECONDS) $(FUZZ_TIMEOUT) || rc=1; done; \
	echo "fuzz: $(FUZZ_SECONDS) s per harness:"; cat $(FZ_DIR)/summary.txt; exit $$rc

-include $(shell find $(FZ_DIR)/obj -name '*.d' 2>/dev/null)

# SPDX-License-Identifier: Apache-2.0
# etsmgr: tables in POSIX shared memory that survive the crash of their owner.
#
#   make               build everything under build/
#   make run           build, then run the whole system under etssup (foreground)
#   make check         build and run every test (SANITIZE=1: with ASan+UBSan)
#   make demo          play the README's session (kills included) by itself
#   make crash         60 s of kill -9 experiments (etsmgr-crashlab), with a verdict
#   make bench         measure tables, counter, recovery and CLI next to Redis
#   make bench-table   the table benchmark alone
#   make range-probe   build/tests/bench/range_probe: ordered ranges taken apart
#   make range-ab A=.. B=..  build/tests/bench/range_ab: two builds' ranges in one process
#   make memcheck      the suites under valgrind;  make fuzz: the fuzz harnesses
#   make check-systemd the systemd unit under a real systemd, in namespaces
#   make install       programs, library, man pages, unit (PREFIX, DESTDIR)
#   make uninstall     remove exactly what make install wrote
#   make deps          install the Debian packages the build and tests need
#   make clean         remove build/
#
# Layout conventions, so that a new module needs no Makefile edit:
#   client/include/etsmgr.h    the public header, the only one installed
#   client/lib/*.c             libetsmgr's own sources: the manager client and
#                              the table store (internal headers beside them)
#   common/*.c                 the lowest layer, shared by libetsmgr and the
#                              programs (framing, protocol, runtime dir); in
#                              libetsmgr; includes nothing from client/
#   common/prog/*.c            code only the programs share (connections,
#                              logging, sd_notify, socket activation, sockets):
#                              build/lib/libetsprog.a, never in libetsmgr
#   <program dir>/*.c          one program; main() lives in <dir>/main.c
#   client/examples/NAME.c     an example program, built against the public
#                              header and etsmgr.pc only (build/examples/NAME)
#   tests/test_*.c             check suites: test_NAME.c defines Suite *NAME_suite(void)
#   tests/progs/*.c            helper programs the tests start (build/tests/bin/NAME)
#   */*.mk, tests/*/*.mk, client/*/*.mk   extra targets (bench, fuzz, crash, install ...)

.DEFAULT_GOAL := all
SHELL := /bin/bash

# The version lives in the public header (ETSMGR_VERSION_*), read here.
ver_part = $(shell sed -n 's/^\#define ETSMGR_VERSION_$(1) \([0-9]*\)$$/\1/p' client/include/etsmgr.h)
VERSION := $(call ver_part,MAJOR).$(call ver_part,MINOR).$(call ver_part,PATCH)
SOVERSION := $(call ver_part,MAJOR)

# ---------------------------------------------------------------- dependencies
# Debian packages found through pkg-config (common/deps.sh).  Plain `make`
# and `make install` never run apt-get or sudo: a missing package stops them
# with one line naming it and `make deps`, which installs them.  The goals
# that run things (run, check, bench ...) install what they lack themselves,
# as the README promises, so a fresh CI machine needs no preparation.
BUILD_DEPS := libuv=libuv1-dev libcjson=libcjson-dev
TEST_DEPS := check=check
NODEPS_GOALS := clean help deps
AUTODEPS_GOALS := run check bench bench-table demo crash memcheck fuzz check-systemd check-deb
GOALS := $(or $(MAKECMDGOALS),all)
ifneq ($(filter-out $(NODEPS_GOALS),$(GOALS)),)
DEPS_MISSING := $(shell sh common/deps.sh missing $(BUILD_DEPS) \
	$(if $(filter $(AUTODEPS_GOALS),$(GOALS)),$(TEST_DEPS)))
ifneq ($(strip $(DEPS_MISSING)),)
ifneq ($(filter $(AUTODEPS_GOALS),$(GOALS)),)
$(info etsmgr: installing missing Debian packages: $(DEPS_MISSING))
DEPS_STATUS := $(shell sh common/deps.sh install $(DEPS_MISSING) >&2; echo $$?)
ifneq ($(DEPS_STATUS),0)
$(error etsmgr: could not install $(DEPS_MISSING); install them with apt-get and run make again)
endif
else
$(error missing Debian packages: $(DEPS_MISSING); run `make deps` (it uses apt-get, with sudo when not root))
endif
endif
endif

# ---------------------------------------------------------------- flags
ifeq ($(SANITIZE),1)
BUILD ?= build/sanitize
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O2
endif
BIN := $(BUILD)/bin
LIBDIR_B := $(BUILD)/lib
OBJ := $(BUILD)/obj

CC ?= cc
PKGS := libuv libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CFLAGS ?= $(OPT) -g
CFLAGS += -std=c11 -Wall -Wextra -Wmissing-prototypes -Werror -fPIC -D_GNU_SOURCE $(SANFLAGS)
CPPFLAGS += $(PKG_CFLAGS) -DETSMGR_VERSION_STRING='"$(VERSION)"' $(MUTEX_PEEK)
# compat: does this libc keep a mutex's lock word where client/lib/compat.h
# peeks (glibc's __data.__lock)?  Probed once per make, never assumed.
HASH := \#
MUTEX_PEEK := $(shell printf '%s\n' '$(HASH)include <pthread.h>' \
	'int f(pthread_mutex_t *m) { return __atomic_load_n(&m->__data.__lock, __ATOMIC_RELAXED); }' | \
	$(CC) -x c -fsyntax-only - >/dev/null 2>&1 && echo -DETSMGR_HAVE_MUTEX_PEEK)
# Include paths by layer, so that a wrong-way include fails to compile:
# common/ sees only itself, libetsmgr does not see common/prog/, and the
# programs and tests see everything.
INC_COMMON := -Icommon
INC_LIB := -Icommon -Iclient/include -Iclient/lib
INC_ALL := -Icommon -Icommon/prog -Iclient/include -Iclient/lib -Iclient
inc_for = $(if $(filter common/prog/%,$(1)),-Icommon -Icommon/prog,$(if $(filter common/%,$(1)),$(INC_COMMON),$(if $(filter client/lib/%,$(1)),$(INC_LIB),$(INC_ALL))))
LDFLAGS += $(SANFLAGS)
LDLIBS += $(PKG_LIBS) -lpthread -lrt -lm

# ---------------------------------------------------------------- libraries
COMMON_SRCS := $(wildcard common/*.c)
CLIENT_SRCS := $(wildcard client/lib/*.c)
LIB_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(COMMON_SRCS) $(CLIENT_SRCS))
LIB_A := $(LIBDIR_B)/libetsmgr.a
PROG_SRCS := $(wildcard common/prog/*.c)
PROG_A := $(LIBDIR_B)/libetsprog.a
LIB_SO := $(LIBDIR_B)/libetsmgr.so.$(VERSION)
LIB_MAP := client/lib/libetsmgr.map
LIB_PC := $(LIBDIR_B)/pkgconfig/etsmgr.pc

$(LIB_A): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

$(PROG_A): $(patsubst %.c,$(OBJ)/%.o,$(PROG_SRCS))
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $^

# The library's objects export nothing by default: etsmgr.h marks its
# declarations visible, and the version script keeps the rest local.
$(LIB_OBJS): CFLAGS += -fvisibility=hidden

# libetsmgr.so.MAJOR.MINOR.PATCH, soname libetsmgr.so.MAJOR, and the two links.
$(LIB_SO): $(LIB_OBJS) $(LIB_MAP)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libetsmgr.so.$(SOVERSION) -Wl,--version-script=$(LIB_MAP) -Wl,-z,defs \
	  $(LDFLAGS) -o $@ $(LIB_OBJS) $(LDLIBS)
	ln -sf libetsmgr.so.$(VERSION) $(LIBDIR_B)/libetsmgr.so.$(SOVERSION)
	ln -sf libetsmgr.so.$(SOVERSION) $(LIBDIR_B)/libetsmgr.so

# The text of etsmgr.pc: $(1) prefix, $(2) libdir, $(3) includedir, $(4)
# extra Libs.  `pkg-config --static` puts Cflags.private in front of Libs on
# one cc command line, so -Bstatic there makes -letsmgr take the archive while
# its dependencies (and libc) stay shared: Libs switches back right after it.
pc_text = printf '%s\n' 'prefix=$(1)' 'libdir=$(2)' 'includedir=$(3)' '' 'Name: etsmgr' \
	  'Description: tables in POSIX shared memory that survive their owner' \
	  'Version: $(VERSION)' 'Requires: libuv' 'Requires.private: libcjson' \
	  'Cflags: -I$${includedir}' 'Cflags.private: -Wl,-Bstatic' \
	  'Libs: -L$${libdir} $(4)-letsmgr -Wl,-Bdynamic' 'Libs.private: -lpthread -lrt'

# pkg-config file for a build-tree user (prefix = the build dir); install.mk
# writes the installed one.  This one carries an rpath, so that a program
# linked with it runs from the build tree as is, without LD_LIBRARY_PATH.
PC_RPATH := -Wl,-rpath,$${libdir} 
$(LIB_PC): Makefile
	@mkdir -p $(@D)
	@$(call pc_text,$(abspath $(BUILD)),$${prefix}/lib,$(abspath client/include),$(PC_RPATH)) > $@

# ---------------------------------------------------------------- programs
# name:directory; a directory with no .c files yet is skipped.
PROGRAMS := etsmgrd:daemon etscounterd:client/etscounterd etscounter:client/etscounter \
	etssup:supervisor/etssup etsmgrctl:supervisor/etsmgrctl \
	etsmgr-crashlab:client/crashlab

prog_name = $(word 1,$(subst :, ,$(1)))
prog_dir = $(word 2,$(subst :, ,$(1)))
prog_objs = $(patsubst %.c,$(OBJ)/%.o,$(wildcard $(call prog_dir,$(1))/*.c))

define PROGRAM_RULE
$(BIN)/$(call prog_name,$(1)): $(call prog_objs,$(1)) $(PROG_A) $(LIB_A)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $(call prog_objs,$(1)) $(PROG_A) $(LIB_A) $$(LDLIBS)
BUILT_PROGRAMS += $(BIN)/$(call prog_name,$(1))
PROGRAM_OBJS += $(call prog_objs,$(1))
endef
$(foreach p,$(PROGRAMS),$(if $(wildcard $(call prog_dir,$(p))/*.c),$(eval $(call PROGRAM_RULE,$(p)))))

# ---------------------------------------------------------------- examples
# client/examples/NAME.c -> $(BUILD)/examples/NAME, built the way etsmgr(3)
# tells a user to build a program: the public header and the build tree's
# etsmgr.pc, nothing else.
EXAMPLES := $(patsubst client/examples/%.c,$(BUILD)/examples/%,$(wildcard client/examples/*.c))
$(BUILD)/examples/%: client/examples/%.c $(LIB_SO) $(LIB_PC)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $$(PKG_CONFIG_PATH=$(LIBDIR_B)/pkgconfig pkg-config --cflags --libs etsmgr)

# ---------------------------------------------------------------- objects
$(OBJ)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(call inc_for,$<) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

# ---------------------------------------------------------------- tests
# One runner holds every suite, so make check ends with one check summary.
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_LIB_SRCS := $(wildcard tests/lib/*.c)
TEST_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(TEST_SRCS) $(TEST_LIB_SRCS))
TEST_SUITES := $(patsubst tests/test_%.c,%,$(TEST_SRCS))
TEST_RUNNER := $(BUILD)/tests/etsmgr-tests
TEST_LIST := $(BUILD)/tests/suites.h
# program internals (everything but main.c) are linkable from tests and fuzzers
PROGRAM_LIB_OBJS := $(filter-out %/main.o,$(PROGRAM_OBJS))
TEST_PROG_SRCS := $(wildcard tests/progs/*.c)
TEST_PROGS := $(patsubst tests/progs/%.c,$(BUILD)/tests/bin/%,$(TEST_PROG_SRCS))

$(TEST_LIST): $(TEST_SRCS) Makefile
	@mkdir -p $(@D)
	@{ for s in $(TEST_SUITES); do echo "SUITE($${s//-/_})"; done; } > $@.tmp && { cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@; }

$(OBJ)/tests/runner.o: tests/runner.c $(TEST_LIST)
	@mkdir -p $(@D)
	$(CC) $(INC_ALL) $(CPPFLAGS) $(CHECK_CFLAGS) -I$(BUILD)/tests -Itests/lib $(CFLAGS) -MMD -MP -c -o $@ $<

$(OBJ)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(CC) $(INC_ALL) $(CPPFLAGS) $(CHECK_CFLAGS) -Itests/lib $(CFLAGS) -MMD -MP -c -o $@ $<

# a suite file gets its NAME_suite prototype (-Wmissing-prototypes) from
# tests/lib/suite_decl.h, force-included
$(OBJ)/tests/test_%.o: tests/test_%.c
	@mkdir -p $(@D)
	$(CC) $(INC_ALL) $(CPPFLAGS) $(CHECK_CFLAGS) -Itests/lib -DETSMGR_SUITE=$(subst -,_,$*) \
	  -include tests/lib/suite_decl.h $(CFLAGS) -MMD -MP -c -o $@ $<

$(TEST_RUNNER): $(OBJ)/tests/runner.o $(TEST_OBJS) $(PROGRAM_LIB_OBJS) $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LDLIBS)

$(BUILD)/tests/bin/%: $(OBJ)/tests/progs/%.o $(patsubst %.c,$(OBJ)/%.o,$(TEST_LIB_SRCS)) $(PROG_A) $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---------------------------------------------------------------- targets
.PHONY: all run check clean help deps
# Objects made through a chain of rules (tests/progs) are kept: deleting them
# would make the next `make check` compile them again.
.SECONDARY:
all: $(LIB_A) $(LIB_SO) $(LIB_PC) $(PROG_A) $(BUILT_PROGRAMS) $(EXAMPLES)

# Tests find the programs through these; CK_RUN_SUITE=NAME runs one suite.
TEST_ENV = ETSMGR_BINDIR=$(abspath $(BIN)) ETSMGR_TEST_BINDIR=$(abspath $(BUILD)/tests/bin) \
	ETSMGR_SRCDIR=$(abspath .) ETSMGR_LIBDIR=$(abspath $(LIBDIR_B))
# what make check builds (and a test builds again, to see that nothing is redone)
.PHONY: build-tests
build-tests: $(TEST_RUNNER) $(TEST_PROGS)
check: all $(TEST_RUNNER) $(TEST_PROGS)
	@$(TEST_ENV) $(TEST_RUNNER)

# The runtime dir is the default one the CLIs resolve, so they need no options.
# etssup's exit status 3 is OTP's "restart intensity reached": say what to
# change, since killing things by hand is what make run invites.
run: all
	@echo "etsmgr: starting etssup; in another terminal try: $(BIN)/etscounter count   (Ctrl-C stops everything)"
	@echo "etsmgr: kill children with $(BIN)/etsmgrctl kill ID --signal KILL; more than 10 restarts in 10 s stop everything"
	@$(BIN)/etssup; rc=$$?; if [ $$rc = 3 ]; then \
	  echo "etsmgr: etssup stopped: more than 10 restarts within 10 s (its restart intensity, as in OTP); its last lines above say which child and why."; \
	  echo "etsmgr: if you were killing children: kill more slowly, or run etssup --config FILE with a higher \"intensity\" or \"period\" (see supervisor/etssup.json, etssup(8))."; \
	fi; exit $$rc

# The one goal besides run/check/bench allowed to run apt-get (with sudo
# when not root): every package the build and the tests need.
deps:
	@m=$$(sh common/deps.sh missing $(BUILD_DEPS) $(TEST_DEPS)); \
	if [ -z "$$m" ]; then echo "etsmgr: every Debian package the build and tests need is installed"; \
	else echo "etsmgr: installing $$m"; sh common/deps.sh install $$m; fi

clean:
	rm -rf build

help:
	@sed -n '4,/^#$$/p' Makefile | sed '$$d'

-include $(wildcard */*.mk tests/*/*.mk client/*/*.mk)
-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)

# SPDX-License-Identifier: Apache-2.0
# install.mk: `make install` and `make uninstall`, GNU style.
#
# Every path is a variable a packager may override (PREFIX, BINDIR, LIBDIR,
# INCLUDEDIR, MANDIR, SYSCONFDIR, SYSTEMDUNITDIR, SYSUSERSDIR) and DESTDIR is prepended to
# each, so a package can be staged in a directory.  Files whose content
# depends on the paths (the systemd unit, etsmgr.pc) are written straight
# into their destination by the same command that knows the paths: nothing
# path-dependent is shared in build/, so two installs with different
# prefixes running at once (tests do that) cannot mix their files.
#
# uninstall removes exactly the files install writes, by name, and nothing
# else; the one exception is a config file the administrator changed, which
# both install and uninstall leave alone (like a Debian conffile).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
# Under /usr, the Debian multiarch directory (/usr/lib/x86_64-linux-gnu), as
# a distribution package installs it; elsewhere PREFIX/lib.
MULTIARCH ?= $(shell $(CC) -print-multiarch 2>/dev/null)
LIBDIR ?= $(PREFIX)/lib$(if $(and $(filter /usr,$(PREFIX)),$(MULTIARCH)),/$(MULTIARCH))
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
# systemd reads units from /usr/local/lib/systemd/system as well as /usr/lib/...
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# systemd-sysusers reads /usr/local/lib/sysusers.d as well as /usr/lib/...
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL ?= install

INSTALL_PROGRAMS := etsmgrd etscounterd etscounter etssup etsmgrctl etsmgr-crashlab
INSTALL_MANPAGES := $(wildcard docs/man/*.[0-9])
INSTALL_CONFIG := supervisor/etssup.json
UNIT_TEMPLATE := supervisor/etsmgr.service.in
UNIT_BUILT := $(BUILD)/etsmgr.service

# The user is created at install only when the file lands where
# systemd-sysusers looks at boot: an install into a scratch PREFIX (tests)
# must not add users to the machine.
sysusers_reads = case '$(SYSUSERSDIR)' in /usr/lib/sysusers.d|/usr/local/lib/sysusers.d|/etc/sysusers.d|/lib/sysusers.d) true;; *) false;; esac
SOCKET_UNIT := supervisor/etsmgr.socket
SYSUSERS_CONF := supervisor/etsmgr.sysusers
UNIT_FILES := etsmgr.service etsmgr.socket etsmgr@.service etsmgr@.socket

# The one place the template's @VARS@ become paths.
unit_subst = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|@PREFIX@|$(PREFIX)|g' $(UNIT_TEMPLATE)
# etsmgr@NAME.service and .socket: the default units with instance NAME
# (%i) in the runtime dir, the instance and the socket unit, so that both
# stay one text; rt_resolve finds /run/etsmgr@NAME from --instance NAME.
instance_sed := -e 's|^\(Description=.*\)|\1, instance %i|' \
	-e 's|^Sockets=etsmgr.socket$$|Sockets=etsmgr@%i.socket|' \
	-e 's|^Environment=ETSMGR_RUNTIME_DIR=%t/etsmgr ETSMGR_INSTANCE=etsmgr$$|Environment=ETSMGR_RUNTIME_DIR=%t/etsmgr@%i ETSMGR_INSTANCE=%i|' \
	-e 's|^RuntimeDirectory=etsmgr$$|RuntimeDirectory=etsmgr@%i|' \
	-e 's|^StateDirectory=etsmgr$$|StateDirectory=etsmgr@%i|' \
	-e 's|^Environment=ETSMGR_SNAPSHOT_DIR=/var/lib/etsmgr$$|Environment=ETSMGR_SNAPSHOT_DIR=/var/lib/etsmgr@%i|' \
	-e 's|^ListenStream=%t/etsmgr/|ListenStream=%t/etsmgr@%i/|' \
	-e 's,^\# etsmgr\.\(service\|socket\): ,\# etsmgr@.\1 (made from etsmgr.\1 by install.mk): ,'

# The unit for the default (or given) paths, to read or to copy by hand;
# rewritten only when its content changes.
$(UNIT_BUILT): $(UNIT_TEMPLATE) FORCE
	@mkdir -p $(@D)
	@$(unit_subst) > $@.tmp.$$$$ && { cmp -s $@.tmp.$$$$ $@ && rm -f $@.tmp.$$$$ || mv -f $@.tmp.$$$$ $@; }
all: $(UNIT_BUILT)

.PHONY: install uninstall FORCE
FORCE:

install: all
	$(INSTALL) -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(LIBDIR)/pkgconfig' \
	  '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(SYSCONFDIR)/etsmgr' '$(DESTDIR)$(SYSTEMDUNITDIR)'
	@for p in $(INSTALL_PROGRAMS); do \
	  if [ -x '$(BIN)'/$$p ]; then \
	    echo "$(INSTALL) -m 0755 $(BIN)/$$p $(DESTDIR)$(BINDIR)/$$p"; \
	    $(INSTALL) -m 0755 '$(BIN)'/$$p '$(DESTDIR)$(BINDIR)'/$$p || exit 1; \
	  else echo "etsmgr: $$p is not built yet, not installed"; fi; \
	done
	$(INSTALL) -m 0644 $(LIB_A) '$(DESTDIR)$(LIBDIR)/libetsmgr.a'
	$(INSTALL) -m 0644 $(LIB_SO) '$(DESTDIR)$(LIBDIR)/libetsmgr.so.$(VERSION)'
	ln -sfn libetsmgr.so.$(VERSION) '$(DESTDIR)$(LIBDIR)/libetsmgr.so.$(SOVERSION)'
	ln -sfn libetsmgr.so.$(SOVERSION) '$(DESTDIR)$(LIBDIR)/libetsmgr.so'
	$(INSTALL) -m 0644 client/include/etsmgr.h '$(DESTDIR)$(INCLUDEDIR)/etsmgr.h'
	$(call pc_text,$(PREFIX),$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR)),$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))) > '$(DESTDIR)$(LIBDIR)/pkgconfig/etsmgr.pc'
	@for m in $(INSTALL_MANPAGES); do \
	  d='$(DESTDIR)$(MANDIR)'/man$${m##*.}; \
	  echo "$(INSTALL) -m 0644 $$m $$d/"; \
	  $(INSTALL) -d "$$d" && $(INSTALL) -m 0644 $$m "$$d"/ || exit 1; \
	done
	@c='$(DESTDIR)$(SYSCONFDIR)/etsmgr/etssup.json'; \
	if [ ! -f $(INSTALL_CONFIG) ]; then echo "etsmgr: $(INSTALL_CONFIG) does not exist yet, not installed"; \
	elif [ -e "$$c" ] && ! cmp -s $(INSTALL_CONFIG) "$$c"; then \
	  echo "etsmgr: keeping the changed $$c (the shipped one is $(INSTALL_CONFIG))"; \
	else echo "$(INSTALL) -m 0644 $(INSTALL_CONFIG) $$c"; $(INSTALL) -m 0644 $(INSTALL_CONFIG) "$$c"; fi
	$(unit_subst) > '$(DESTDIR)$(SYSTEMDUNITDIR)/etsmgr.service'
	$(unit_subst) | sed $(instance_sed) > '$(DESTDIR)$(SYSTEMDUNITDIR)/etsmgr@.service'
	sed $(instance_sed) $(SOCKET_UNIT) > '$(DESTDIR)$(SYSTEMDUNITDIR)/etsmgr@.socket'
	$(INSTALL) -m 0644 $(SOCKET_UNIT) '$(DESTDIR)$(SYSTEMDUNITDIR)/etsmgr.socket'
	chmod 0644 $(foreach u,$(UNIT_FILES),'$(DESTDIR)$(SYSTEMDUNITDIR)/$(u)')
	$(INSTALL) -d '$(DESTDIR)$(SYSUSERSDIR)'
	$(INSTALL) -m 0644 $(SYSUSERS_CONF) '$(DESTDIR)$(SYSUSERSDIR)/etsmgr.conf'
	@if [ -z '$(DESTDIR)' ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi; \
	  if [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null && $(sysusers_reads); then \
	    echo "systemd-sysusers $(SYSUSERSDIR)/etsmgr.conf"; systemd-sysusers '$(SYSUSERSDIR)/etsmgr.conf' || exit 1; \
	  else echo "etsmgr: create the user etsmgr (systemd-sysusers $(SYSUSERSDIR)/etsmgr.conf) before starting the service"; fi; \
	  echo "etsmgr: installed; start it with: systemctl daemon-reload && systemctl enable --now etsmgr"; \
	fi

uninstall:
	rm -f $(foreach p,$(INSTALL_PROGRAMS),'$(DESTDIR)$(BINDIR)/$(p)')
	rm -f '$(DESTDIR)$(LIBDIR)/libetsmgr.a' '$(DESTDIR)$(LIBDIR)/libetsmgr.so.$(SOVERSION)' \
	  '$(DESTDIR)$(LIBDIR)/libetsmgr.so.$(VERSION)' \
	  '$(DESTDIR)$(LIBDIR)/libetsmgr.so' '$(DESTDIR)$(LIBDIR)/pkgconfig/etsmgr.pc' \
	  '$(DESTDIR)$(INCLUDEDIR)/etsmgr.h' '$(DESTDIR)$(SYSUSERSDIR)/etsmgr.conf' \
	  $(foreach u,$(UNIT_FILES),'$(DESTDIR)$(SYSTEMDUNITDIR)/$(u)')
	rm -f $(foreach m,$(INSTALL_MANPAGES),'$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))')
	@c='$(DESTDIR)$(SYSCONFDIR)/etsmgr/etssup.json'; \
	if [ -e "$$c" ] && [ -f $(INSTALL_CONFIG) ] && ! cmp -s $(INSTALL_CONFIG) "$$c"; then \
	  echo "etsmgr: keeping the changed $$c; remove it by hand"; \
	else rm -f "$$c"; rmdir '$(DESTDIR)$(SYSCONFDIR)/etsmgr' 2>/dev/null || true; fi
	@if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

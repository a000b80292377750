# SPDX-License-Identifier: Apache-2.0
# systemd.mk: `make check-systemd`, the unit under a real systemd that is
# PID 1 of its own namespaces (tests/systemd/check-systemd.sh says how, and
# what it never touches).  Skipped, saying why, where that cannot run.
.PHONY: check-systemd
check-systemd: all
	tests/systemd/check-systemd.sh $(BUILD)

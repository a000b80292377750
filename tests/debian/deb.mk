# SPDX-License-Identifier: Apache-2.0
# deb.mk: `make check-deb`, the Debian packages built from a copy of the
# tracked source and checked (tests/debian/check-deb.sh).  Skipped, saying
# why, where debhelper or lintian are missing.
.PHONY: check-deb
check-deb:
	tests/debian/check-deb.sh

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# check-deb.sh: the Debian packages build, are lintian-clean, and hold the
# files they should.
#
# The tracked source is copied into a scratch directory (dpkg-buildpackage
# writes the .debs next to the source, never into the work tree), built with
# `dpkg-buildpackage -us -uc -b` (both cores), each .deb unpacked with
# `dpkg -x` into a scratch root and its file list compared with the one
# below, then checked with lintian: any error fails, warnings are printed
# (there are none today).  Skipped, saying why, where the tools are missing
# (.ci/run installs them: debhelper, lintian).
#
#   check-deb.sh                       (make check-deb)
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
t0=$(date +%s)
say() { echo "check-deb: $*"; }
for t in dpkg-buildpackage dh lintian fakeroot git; do
    command -v $t >/dev/null || { say "SKIPPED: no $t (make check-deb needs debhelper, lintian, fakeroot)"; exit 0; }
done
S=$(mktemp -d /tmp/etsmgr-deb.XXXXXX)
trap 'rm -rf "$S"' EXIT
fail() { say "FAILED: $*"; exit 1; }

mkdir "$S/src"
(cd "$src" && git ls-files -co --exclude-standard | grep -v '^build/' | tar -cf - -T -) | tar -xf - -C "$S/src" ||
    fail "cannot copy the source to $S/src"
(cd "$S/src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -b) \
    > "$S/build.log" 2>&1 ||
    { tail -40 "$S/build.log"; fail "dpkg-buildpackage -us -uc -b"; }
say "dpkg-buildpackage -us -uc -b: built in $(($(date +%s) - t0)) s"

ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
ver=$(cd "$S/src" && dpkg-parsechangelog -SVersion)
lib_ver=$(sed -n 's/^#define ETSMGR_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)$/\2/p' "$src/client/include/etsmgr.h" | paste -sd.)

# What each package holds (directories aside).  A new file must be placed on
# purpose: debian/*.install, and here.
want_etsmgr="/etc/etsmgr/etssup.json
/lib/systemd/system/etsmgr.service
/lib/systemd/system/etsmgr.socket
/lib/systemd/system/etsmgr@.service
/lib/systemd/system/etsmgr@.socket
/usr/bin/etscounter
/usr/bin/etscounterd
/usr/bin/etsmgr-crashlab
/usr/bin/etsmgrctl
/usr/bin/etsmgrd
/usr/bin/etssup
/usr/lib/sysusers.d/etsmgr.conf
/usr/share/doc/etsmgr/changelog.gz
/usr/share/doc/etsmgr/copyright
/usr/share/man/man1/etscounter.1.gz
/usr/share/man/man1/etsmgr-crashlab.1.gz
/usr/share/man/man1/etsmgrctl.1.gz
/usr/share/man/man8/etscounterd.8.gz
/usr/share/man/man8/etsmgrd.8.gz
/usr/share/man/man8/etssup.8.gz"
want_libetsmgr0="/usr/lib/$ma/libetsmgr.so.0
/usr/lib/$ma/libetsmgr.so.$lib_ver
/usr/share/doc/libetsmgr0/changelog.gz
/usr/share/doc/libetsmgr0/copyright"
want_libetsmgr_dev="/usr/include/etsmgr.h
/usr/lib/$ma/libetsmgr.a
/usr/lib/$ma/libetsmgr.so
/usr/lib/$ma/pkgconfig/etsmgr.pc
/usr/share/doc/libetsmgr-dev/changelog.gz
/usr/share/doc/libetsmgr-dev/copyright
/usr/share/man/man3/etsmgr.3.gz"

for pkg in etsmgr libetsmgr0 libetsmgr-dev; do
    deb="$S/${pkg}_${ver}_${arch}.deb"
    [ -f "$deb" ] || fail "no $deb"
    dpkg -x "$deb" "$S/root" || fail "dpkg -x $deb"
    got=$(dpkg -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' | sort)
    var=want_${pkg//-/_}
    want=$(sort <<< "${!var}")
    if [ "$got" != "$want" ]; then
        diff <(echo "$want") <(echo "$got") | sed 's/^/    /'
        fail "$pkg holds other files than expected (< expected, > in the package)"
    fi
done
say "ok - etsmgr, libetsmgr0, libetsmgr-dev hold exactly their files (dpkg -x into a scratch root)"

R="$S/root"
[ "$(stat -c %a "$R/usr/lib/$ma/libetsmgr.so.$lib_ver")" = 644 ] || fail "libetsmgr.so.$lib_ver is not mode 0644"
[ "$(readlink "$R/usr/lib/$ma/libetsmgr.so.0")" = "libetsmgr.so.$lib_ver" ] || fail "libetsmgr.so.0 does not point at the full version"
out=$(LD_LIBRARY_PATH="$R/usr/lib/$ma" "$R/usr/bin/etsmgrctl" --version 2>&1) || fail "the packaged etsmgrctl does not run: $out"
grep -q "$lib_ver" <<< "$out" || fail "etsmgrctl --version says '$out', not $lib_ver"
dpkg-deb -f "$S/etsmgr_${ver}_${arch}.deb" Depends | grep -q libetsmgr0 &&
    fail "etsmgr depends on libetsmgr0, but its programs link the library statically"
grep -q "systemd-sysusers" "$(dpkg-deb -e "$S/etsmgr_${ver}_${arch}.deb" "$S/ctl" && echo "$S/ctl/postinst")" ||
    fail "etsmgr's postinst does not create the user etsmgr"
say "ok - the library is 0644 with its soname link, the packaged programs run, the postinst creates the user"

(cd "$S" && lintian --tag-display-limit 0 "etsmgr_${ver}_${arch}.changes") > "$S/lintian.log" 2>&1
if grep -q '^E:' "$S/lintian.log"; then
    cat "$S/lintian.log"
    fail "lintian reports errors"
fi
warnings=$(grep -c '^W:' "$S/lintian.log")
say "ok - lintian: no errors, $warnings warning(s)$( [ "$warnings" -gt 0 ] && echo ':')"
grep '^W:' "$S/lintian.log" | sed 's/^/    /'
say "passed in $(($(date +%s) - t0)) s"

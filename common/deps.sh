#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# deps.sh: find and install the Debian packages the build needs.
#   deps.sh missing PKG...   print the Debian packages whose pkg-config module
#                            or command is absent (nothing when all are there)
#   deps.sh install DEB...   apt-get install them (sudo when not root), after
#                            one apt-get update
# A "PKG" is pkgconfig-module=debian-package or cmd:command=debian-package.
set -u
what=${1:-}; shift || true
case "$what" in
missing)
    out=
    for spec in "$@"; do
        probe=${spec%%=*}; deb=${spec#*=}
        case "$probe" in
        cmd:*) command -v "${probe#cmd:}" >/dev/null 2>&1 || out="$out $deb" ;;
        *)     pkg-config --exists "$probe" 2>/dev/null || out="$out $deb" ;;
        esac
    done
    # pkg-config itself is needed to find the others
    command -v pkg-config >/dev/null 2>&1 || out="pkg-config$out"
    echo $out
    ;;
install)
    [ $# -gt 0 ] || exit 0
    if [ "$(id -u)" -eq 0 ]; then sudo=; elif command -v sudo >/dev/null 2>&1; then sudo=sudo; else
        echo "etsmgr: need root or sudo to install: $*" >&2; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 || { echo "etsmgr: apt-get update failed" >&2; exit 1; }
    $sudo apt-get install -y -qq --no-install-recommends "$@" >&2 ||
        { echo "etsmgr: apt-get install $* failed" >&2; exit 1; }
    ;;
*)
    echo "usage: deps.sh missing|install ..." >&2; exit 100 ;;
esac

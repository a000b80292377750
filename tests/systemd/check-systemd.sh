#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# check-systemd.sh: the unit, proven under a real systemd.
#
# systemd runs as PID 1 of its own PID, mount, UTS and cgroup namespaces, in
# a cgroup made for the run (boot.sh gives it private /run, /tmp, /dev,
# /dev/shm and overlays on /usr, /etc, /var, so nothing of the machine is
# seen or changed: a real etsmgr running here loses nothing).  Commands run
# inside through nsenter: `make install PREFIX=/usr`, then the stories of
# scenarios.sh through systemctl, etscounter and journalctl.
#
# Skipped, with the reason printed, only where it cannot run: not root, no
# systemd binary, no namespaces, overlayfs or cgroup2.  Whatever happens, the
# exit trap kills systemd (which takes every process of its PID namespace,
# and with them the mount namespace), removes the cgroups it made and checks
# that nothing is left behind.
#
#   check-systemd.sh BUILD_DIR        (make check-systemd passes it)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "$src" && mkdir -p "${1:-build}" && cd "${1:-build}" && pwd)
t0=$(date +%s)

say() { echo "check-systemd: $*"; }
skip() { say "SKIPPED: $*"; exit 0; }

[ "$(id -u)" = 0 ] || skip "needs root, to run systemd as PID 1 of its own namespaces"
[ -x /lib/systemd/systemd ] || skip "no /lib/systemd/systemd (Debian package systemd)"
for t in unshare nsenter findmnt; do
    command -v $t >/dev/null || skip "no $t (Debian package util-linux)"
done
case "$src/" in
/tmp/* | /run/* | /dev/*) skip "the source tree $src is under /tmp, /run or /dev, which the test replaces with its own tmpfs; clone it elsewhere" ;;
esac
unshare --pid --fork --mount --uts --cgroup --mount-proc true 2>/dev/null ||
    skip "cannot create PID, mount, UTS and cgroup namespaces here"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
    skip "no overlayfs in this kernel"
cg2=$(findmnt -n -t cgroup2 -o TARGET | head -n 1)
[ -n "$cg2" ] || skip "no cgroup2 file system mounted"
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
CG="${cg2%/}${own%/}/etsmgr-check-systemd.$$"
mkdir "$CG" 2>/dev/null || skip "cannot create a cgroup in $cg2${own}"

scratch=$(mktemp -d "$build/check-systemd.XXXXXX")
P=           # systemd, as the machine sees it
upid=        # unshare
teardown() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$P" ] && kill -0 "$P" 2>/dev/null; then
        kill -KILL "$P" # takes every process of its PID namespace with it
    fi
    [ -n "$upid" ] && wait "$upid" 2>/dev/null
    # the cgroups empty themselves as the kernel reaps; remove them leaves first
    local left=
    for _ in $(seq 100); do
        find "$CG" -depth -type d -exec rmdir {} + 2>/dev/null
        [ -d "$CG" ] || break
        sleep 0.1
    done
    [ -d "$CG" ] && left="$left cgroup $CG;"
    grep -q "$scratch" /proc/self/mountinfo && left="$left a mount under $scratch;"
    rmdir "$scratch" 2>/dev/null || left="$left files in $scratch;"
    if [ -n "$left" ]; then
        say "FAILED to clean up:$left"
        rc=1
    fi
    say "$( [ $rc = 0 ] && echo passed || echo FAILED ) in $(($(date +%s) - t0)) s"
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# The fresh cgroup becomes the root of the new cgroup namespace.
(
    echo "$BASHPID" > "$CG/cgroup.procs" || exit 1
    exec unshare --pid --fork --kill-child --mount --uts --cgroup --mount-proc \
        "$here/boot.sh" "$scratch"
) > "$scratch.log" 2>&1 &
upid=$!
for _ in $(seq 300); do
    for c in $(cat /proc/$upid/task/*/children 2>/dev/null); do
        [ "$(cat /proc/$c/comm 2>/dev/null)" = systemd ] && P=$c
    done
    [ -n "$P" ] && break
    kill -0 $upid 2>/dev/null || break
    sleep 0.1
done
if [ -z "$P" ]; then
    say "systemd did not start:"; cat "$scratch.log"; rm -f "$scratch.log"; exit 1
fi
rm -f "$scratch.log"

# Run a command inside (all of systemd's namespaces, the source tree as cwd).
inside() { nsenter -t "$P" -a --wd="$src" "$@"; }
state=
for _ in $(seq 300); do
    state=$(inside systemctl is-system-running 2>/dev/null)
    case "$state" in running | degraded) break ;; esac
    sleep 0.1
done
case "$state" in
running) ;;
*) say "systemd did not come up (state '$state')"; inside systemctl --failed --no-pager; exit 1 ;;
esac
say "systemd $(inside systemctl --version | head -n 1 | cut -d' ' -f2) is PID 1 of its own namespaces (pid $P here), up in $(($(date +%s) - t0)) s"

. "$here/scenarios.sh"
run_scenarios

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# boot.sh SCRATCH: the inside of check-systemd.sh's namespaces.  Started by
# `unshare --pid --fork --mount --uts --cgroup --mount-proc` in a fresh
# cgroup, it gives this mount namespace its own world and then becomes
# systemd, PID 1 of the PID namespace:
#   - /usr, /etc, /var: overlays whose writable layer is a tmpfs, so that
#     `make install PREFIX=/usr`, sysusers and the journal write nowhere real;
#   - /run, /tmp, /dev and /dev/shm: fresh tmpfs, so no table, socket or file
#     of the machine (a real etsmgr included) is seen or touched; /dev holds
#     only null, zero, full, random, urandom, tty (bind mounts of the real
#     ones) and a console that is a plain file;
#   - /sys, /proc/sys and /proc/sysrq-trigger read-only, and /sys/fs/cgroup a
#     cgroup2 mount of its own (its root is the fresh cgroup);
#   - every generator masked, and every unit but journald's masked (targets
#     and slices stay: they only order things), then a target that wants
#     only journald.
# Everything set up here lives only in this mount namespace: it goes away
# with the last process of the PID namespace, whatever happens.
set -euo pipefail
S=$1
fail() { echo "check-systemd: boot: $*" >&2; exit 1; }

mount --make-rprivate /
mount -t tmpfs -o mode=0700 etsmgr-check "$S" || fail "tmpfs on $S"
for d in usr etc var; do
    mkdir -p "$S/$d.up" "$S/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$S/$d.up,workdir=$S/$d.work" "/$d" ||
        fail "overlay on /$d"
done

# The new /dev is assembled aside, then moved over the real one.
mkdir -p "$S/dev"
mount -t tmpfs -o mode=0755,nosuid etsmgr-dev "$S/dev"
for n in null zero full random urandom tty; do
    touch "$S/dev/$n"
    mount --bind "/dev/$n" "$S/dev/$n"
done
touch "$S/console" "$S/dev/console"
mount --bind "$S/console" "$S/dev/console"
mkdir -p "$S/dev/shm" "$S/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev etsmgr-shm "$S/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$S/dev/pts"
ln -s pts/ptmx "$S/dev/ptmx"
ln -s /proc/self/fd "$S/dev/fd"
for i in 0:stdin 1:stdout 2:stderr; do ln -s "/proc/self/fd/${i%%:*}" "$S/dev/${i#*:}"; done
mount --move "$S/dev" /dev

mount -t tmpfs -o mode=0755,nosuid,nodev etsmgr-run /run
mount -t tmpfs -o mode=1777,nosuid,nodev etsmgr-tmp /tmp

mount --bind /sys /sys
mount -o remount,bind,ro,nosuid,nodev,noexec /sys
mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 /sys/fs/cgroup
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
if [ -e /proc/sysrq-trigger ]; then
    mount --bind /proc/sysrq-trigger /proc/sysrq-trigger
    mount -o remount,bind,ro /proc/sysrq-trigger
fi

# Units: /etc/systemd/system is on the overlay, so masking writes nothing real.
keep=" systemd-journald.service systemd-journald.socket systemd-journald-dev-log.socket "
mkdir -p /etc/systemd/system /etc/systemd/system-generators
for u in /usr/lib/systemd/system/* /etc/systemd/system/*; do
    [ -e "$u" ] || [ -L "$u" ] || continue
    b=${u##*/}
    case "$b" in *.target | *.slice | *.wants | *.requires | *.d) continue ;; esac
    case "$keep" in *" $b "*) continue ;; esac
    [ -d "$u" ] && [ ! -L "$u" ] && continue
    rm -f "/etc/systemd/system/$b"
    ln -s /dev/null "/etc/systemd/system/$b"
done
for g in /usr/lib/systemd/system-generators/* /etc/systemd/system-generators/*; do
    [ -e "$g" ] || continue
    rm -f "/etc/systemd/system-generators/${g##*/}"
    ln -s /dev/null "/etc/systemd/system-generators/${g##*/}"
done
cat > /etc/systemd/system/etsmgr-check.target <<'T'
[Unit]
Description=etsmgr check-systemd: journald and nothing else
Wants=systemd-journald.socket systemd-journald.service
T
hostname etsmgr-check
echo etsmgr-check > /etc/hostname
# systemd then behaves as in a container: no clock, no modules, no reboot().
export container=etsmgr-check-systemd
exec /lib/systemd/systemd --system --unit=etsmgr-check.target --log-target=journal </dev/null >/dev/null 2>&1

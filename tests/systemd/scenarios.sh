# SPDX-License-Identifier: Apache-2.0
# scenarios.sh: what check-systemd.sh runs once systemd is up, sourced by it
# (it provides `inside`, which runs a command inside, and `say`).  Each scenario
# is a shell function; the first failed expectation prints what it saw and
# the journal's last lines, and ends the run (the exit trap cleans up).
#
# No sleeps as synchronisation: `systemctl start` returns once etssup sent
# READY=1 (Type=notify), and what has no signal (systemd restarting a killed
# service) is polled with a deadline.

n_ok=0
fail() {
    say "FAILED: $*"
    inside journalctl --no-pager -n 40 -o short-monotonic 2>/dev/null | sed 's/^/    | /'
    exit 1
}
ok() { n_ok=$((n_ok + 1)); say "ok $n_ok - $*"; }
expect_eq() { # got want what
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}
# until DEADLINE_S CMD...: run CMD until it succeeds, at most DEADLINE_S s.
until_ok() {
    local end=$(($(date +%s%N) / 1000000 + $1 * 1000))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ $(($(date +%s%N) / 1000000)) -lt $end ] || return 1
        sleep 0.05
    done
}
prop() { inside systemctl show -P "$2" "$1"; } # unit property
active_with_new_pid() { # unit oldpid
    [ "$(prop "$1" ActiveState)" = active ] && [ "$(prop "$1" MainPID)" != "$2" ] &&
        [ "$(prop "$1" MainPID)" != 0 ]
}
# journal_has PATTERN JOURNALCTL-ARGS...: journald reads the streams on its
# own time, so a line written a moment ago is waited for (10 s at most).
journal_grep() { local pat=$1; shift; inside journalctl --no-pager -o cat "$@" | grep -q -- "$pat"; }
journal_has() { until_ok 10 journal_grep "$@"; }
count() { inside etscounter "$@" count; }
child_pid() { # unit program: the pid of program in unit's cgroup (not a --standby)
    local cg
    cg=$(prop "$1" ControlGroup)
    for p in $(inside cat "/sys/fs/cgroup$cg/cgroup.procs"); do
        case "$(inside cat /proc/$p/cmdline | tr '\0' ' ')" in *--standby*) continue ;; esac
        [ "$(inside cat /proc/$p/comm)" = "$2" ] && { echo "$p"; return 0; }
    done
    return 1
}

sc_install() {
    inside make --no-print-directory -s install PREFIX=/usr >/dev/null 2>&1 || fail "make install PREFIX=/usr"
    inside systemctl daemon-reload
    inside getent passwd etsmgr >/dev/null || fail "make install did not create the user etsmgr (sysusers.d)"
    ok "make install PREFIX=/usr, inside the overlays, creates the user etsmgr through sysusers.d"
}

uid_of() { inside awk '/^Uid:/ { print $2 }' "/proc/$1/status"; }
owner() { inside stat -c '%U:%G %a' "$1"; }

# systemctl enable --now etsmgr: the service runs as etsmgr, its files are
# etsmgr's and shared with the group, members of the group can count and
# nobody else can.
sc_user_and_group() {
    local u main p
    u=$(inside id -u etsmgr)
    main=$(prop etsmgr MainPID)
    expect_eq "$(uid_of "$main")" "$u" "uid of etssup"
    for prog in etsmgrd etscounterd; do
        p=$(child_pid etsmgr $prog) || fail "no $prog running"
        expect_eq "$(uid_of "$p")" "$u" "uid of $prog"
    done
    expect_eq "$(owner /run/etsmgr)" "etsmgr:etsmgr 750" "owner and mode of /run/etsmgr"
    expect_eq "$(owner /run/etsmgr/etscounter.sock)" "etsmgr:etsmgr 660" "owner and mode of etscounter.sock"
    expect_eq "$(owner "/dev/shm/etsmgr:$u:etscounter")" "etsmgr:etsmgr 660" \
        "owner and mode of the table (/dev/shm: $(inside ls /dev/shm | tr '\n' ' '))"
    ok "systemctl enable --now etsmgr: etssup, etsmgrd, etscounterd run as etsmgr; dir 0750, sockets and table 0660 of group etsmgr"

    inside useradd -M -G etsmgr alice || fail "useradd alice"
    inside useradd -M bob || fail "useradd bob"
    local before out
    before=$(count)
    out=$(inside runuser -u alice -- env ETSMGR_RUNTIME_DIR=/run/etsmgr etscounter count 2>&1) ||
        fail "alice, in group etsmgr, could not count: $out"
    expect_eq "$out" $((before + 1)) "alice's count"
    out=$(inside runuser -u bob -- env ETSMGR_RUNTIME_DIR=/run/etsmgr etscounter -t 500 count 2>&1) &&
        fail "bob, not in group etsmgr, counted: $out"
    grep -qi "permission denied" <<< "$out" || fail "bob's refusal does not say why: $out"
    expect_eq "$(count)" $((before + 2)) "the count after bob's refused attempt"
    ok "a member of group etsmgr counts; anyone else is refused ('${out//$'\n'/ }')"
}

# The sockets are systemd's: with the service stopped, the first count
# starts it (etsmgr.socket), and the count goes on.
sc_socket_activation() {
    local before
    before=$(count)
    inside systemctl stop etsmgr 2>/dev/null || fail "systemctl stop etsmgr"
    expect_eq "$(prop etsmgr.socket ActiveState)" active "etsmgr.socket with the service stopped"
    expect_eq "$(prop etsmgr ActiveState)" inactive "etsmgr.service after stop"
    expect_eq "$(count)" $((before + 1)) "the first count with the service stopped"
    expect_eq "$(prop etsmgr ActiveState)" active "etsmgr.service after a client connected"
    ok "socket activation: with etsmgr.service stopped, etscounter count starts it through etsmgr.socket and is answered"
}

# etsmgr@NAME: an instance of its own, found by --instance alone.
sc_instances() {
    inside systemctl start etsmgr@blue.socket || fail "systemctl start etsmgr@blue.socket"
    expect_eq "$(inside etscounter --instance blue count)" 1 "the first count of instance blue (socket-activated)"
    expect_eq "$(inside env ETSMGR_INSTANCE=blue etscounter count)" 2 "the second count of instance blue (ETSMGR_INSTANCE)"
    expect_eq "$(prop etsmgr@blue ActiveState)" active "etsmgr@blue.service"
    inside test -S /run/etsmgr@blue/etscounter.sock || fail "no /run/etsmgr@blue/etscounter.sock"
    local u
    u=$(inside id -u etsmgr)
    inside test -e "/dev/shm/blue:$u:etscounter" || fail "no table /dev/shm/blue:$u:etscounter"
    local main
    main=$(prop etsmgr@blue MainPID)
    expect_eq "$(uid_of "$main")" "$(inside id -u etsmgr)" "uid of etsmgr@blue's etssup"
    local dflt
    dflt=$(inside etscounter -j check | sed -n 's/.*"count": *\([0-9]*\).*/\1/p')
    [ "$dflt" -gt 2 ] || fail "the default instance's count ($dflt) was disturbed by instance blue"
    inside systemctl stop etsmgr@blue.service etsmgr@blue.socket || fail "stop etsmgr@blue"
    ok "etsmgr@blue: its own runtime dir /run/etsmgr@blue and tables /dev/shm/blue:*, found by --instance blue or ETSMGR_INSTANCE=blue"
}

# The seed's story, through systemctl.
sc_seed_story() {
    inside systemctl enable --now etsmgr 2>/dev/null || fail "systemctl enable --now etsmgr"
    # Type=notify: start returned, so etssup reports both children running
    # and etsmgrd lists the table as owned by etscounterd, before any retry
    local st
    st=$(inside etsmgrctl status) || fail "etsmgrctl status, right after systemctl start"
    [ "$(grep -c running <<< "$st")" -ge 2 ] || fail "not both children running right after systemctl start: $st"
    inside etsmgrctl tables | grep -q etscounter || fail "no table etscounter right after systemctl start"
    expect_eq "$(count)" 1 "the first count"
    expect_eq "$(count)" 2 "the second count"
    ok "Type=notify: systemctl start returns with etsmgrd and etscounterd answering"

    local p
    for prog in etsmgrd etscounterd; do
        p=$(child_pid etsmgr $prog) || fail "no $prog in the service's cgroup"
        inside kill -KILL "$p"
        local want=$(($(inside etscounter -j check | sed -n 's/.*"count": *\([0-9]*\).*/\1/p') + 1))
        expect_eq "$(count)" "$want" "the count after kill -9 of $prog"
    done
    ok "kill -9 of etsmgrd, then of etscounterd: etssup restarts each, the count goes on"

    local main
    main=$(prop etsmgr MainPID)
    local before
    before=$(count)
    inside kill -KILL "$main"
    until_ok 20 active_with_new_pid etsmgr "$main" || fail "systemd did not restart etsmgr after kill -9 of etssup"
    expect_eq "$(count)" $((before + 1)) "the count after kill -9 of etssup"
    ok "kill -9 of etssup: systemd restarts the service (Restart=on-failure), the count goes on"

    before=$(count)
    inside systemctl restart etsmgr || fail "systemctl restart etsmgr"
    expect_eq "$(count)" $((before + 1)) "the count after systemctl restart"
    ok "systemctl restart keeps the count"
}

# etssup gives up after more than `intensity` restarts in `period`; systemd's
# Restart= takes over, and the count still goes on.
sc_intensity() {
    local before main restarts
    # systemd's own start limit (5 starts in 10 s by default, socket
    # activations included) counts the earlier scenarios' starts too: when
    # they ran within 10 s, the restart this scenario waits for was refused
    # ("Start request repeated too quickly"), a flaky failure that says
    # nothing of etssup.  reset-failed flushes that counter.
    inside systemctl reset-failed etsmgr.service etsmgr.socket || fail "systemctl reset-failed etsmgr"
    before=$(count)
    main=$(prop etsmgr MainPID)
    restarts=$(prop etsmgr NRestarts)
    local i last=
    for i in $(seq 12); do
        local p=
        until_ok 10 child_pid etsmgr etsmgrd || break
        p=$(child_pid etsmgr etsmgrd) || break
        [ "$p" = "$last" ] && { sleep 0.02; continue; }
        inside kill -KILL "$p" 2>/dev/null
        last=$p
        [ "$(prop etsmgr MainPID)" = "$main" ] || break
    done
    until_ok 20 active_with_new_pid etsmgr "$main" ||
        fail "etssup did not give up after repeated kills of etsmgrd, or systemd did not restart it"
    [ "$(prop etsmgr NRestarts)" -gt "$restarts" ] || fail "NRestarts did not grow"
    journal_has "intensity" -u etsmgr ||
        fail "no journal line says the restart intensity was reached"
    expect_eq "$(count)" $((before + 1)) "the count after etssup gave up and systemd restarted it"
    ok "restart intensity exceeded: etssup exits, systemd's Restart= starts it again, the count goes on"
}

# Priorities: a killed child is a warning or worse, a count a notice.
sc_journal_priorities() {
    journal_has "killed by signal SIGKILL" -u etsmgr -p warning ||
        fail "no warning-or-worse line in the journal for a child killed by SIGKILL"
    journal_has "Counter" -u etsmgr -p notice..notice ||
        fail "no notice-priority 'Counter N.' line in the journal"
    ok "journal priorities: deaths are warnings or errors, counts are notices"

    journal_has "Counter" -t etscounterd || fail "journalctl -t etscounterd has no 'Counter N.' line"
    journal_has "started, pid=" -t etsmgrd || fail "journalctl -t etsmgrd has no start line"
    journal_has "supervising" -t etssup || fail "journalctl -t etssup has no start line"
    inside journalctl -t etssup --no-pager -o cat | grep -q "Counter" &&
        fail "a line of etscounterd is filed under etssup"
    inside journalctl -u etsmgr --no-pager -o cat | grep -E -q "^(etssup|etsmgrd|etscounterd): " &&
        fail "a journal line repeats its program's name: $(inside journalctl -u etsmgr --no-pager -o cat |
            grep -E -m1 "^(etssup|etsmgrd|etscounterd): ")"
    ok "journal identifiers: journalctl -t etsmgrd, -t etscounterd, -t etssup each find their program's lines, with no name repeated"
}

sc_stop() {
    inside systemctl stop etsmgr.socket etsmgr || fail "systemctl stop etsmgr.socket etsmgr"
    expect_eq "$(prop etsmgr ActiveState)" inactive "state after systemctl stop"
    for prog in etssup etsmgrd etscounterd; do
        inside pgrep -x $prog >/dev/null && fail "$prog outlived systemctl stop"
    done
    inside sh -c 'ls /dev/shm/etsmgr:*' >/dev/null 2>&1 || fail "the tables did not outlive the stop"
    ok "systemctl stop: nothing left running, the tables stay in /dev/shm"
}

# WatchdogSec= (shortened by a drop-in, to keep the run short): a SIGSTOPped
# etssup, then a SIGSTOPped etsmgrd (etssup withholds its ping), gets the
# service killed and restarted by systemd, and the count goes on.
sc_watchdog() {
    inside mkdir -p /run/systemd/system/etsmgr.service.d
    printf '[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n' |
        inside tee /run/systemd/system/etsmgr.service.d/watchdog.conf >/dev/null
    inside systemctl daemon-reload
    inside systemctl restart etsmgr || fail "systemctl restart etsmgr with WatchdogSec=2s"
    local before main p
    for what in etssup etsmgrd; do
        before=$(count)
        main=$(prop etsmgr MainPID)
        if [ $what = etssup ]; then p=$main; else p=$(child_pid etsmgr etsmgrd) || fail "no etsmgrd"; fi
        inside kill -STOP "$p"
        until_ok 30 active_with_new_pid etsmgr "$main" ||
            fail "systemd did not restart etsmgr with $what stopped (WatchdogSec=2s)"
        expect_eq "$(count)" $((before + 1)) "the count after the watchdog restart ($what stopped)"
    done
    journal_has "sent no WATCHDOG=1" -t etssup || fail "etssup did not say which child stopped pinging"
    journal_has "Watchdog timeout" -u etsmgr || fail "systemd did not log a watchdog timeout"
    inside rm -r /run/systemd/system/etsmgr.service.d
    inside systemctl daemon-reload
    inside systemctl restart etsmgr || fail "systemctl restart etsmgr without the drop-in"
    ok "watchdog: a SIGSTOPped etssup, and a SIGSTOPped etsmgrd (etssup withholds WATCHDOG=1), get the service restarted; the count goes on"
}

run_scenarios() {
    sc_install
    sc_seed_story
    sc_user_and_group
    sc_socket_activation
    sc_intensity
    sc_watchdog
    sc_journal_priorities
    sc_instances
    sc_stop
}

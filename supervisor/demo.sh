#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh: plays the seed's etscounter transcript by itself with the real
# programs, so a newcomer sees in one minute what the project is for.
#
# Usage: supervisor/demo.sh BINDIR      (make demo runs it)
#
# Everything runs in a private runtime dir and instance, so a `make run` in
# another terminal is not disturbed.  After each step the demo prints the
# command, what it printed, and the log lines the daemons wrote meanwhile
# (etssup's stderr, which its children share), then checks the result it
# expects; it exits 1 when one differs, 0 when the whole story held.
# Waiting for a restarted process is done by the CLI itself, which retries
# the same request until it is served; the demo only polls for a new pid
# where the story needs one (kill -9), with a deadline.  Whatever happens,
# the EXIT trap stops etssup, unlinks the instance's shm objects and
# removes the runtime dir.
set -u

BIN=${1:?usage: demo.sh BINDIR}
BIN=$(cd "$BIN" && pwd) || exit 1
for p in etssup etsmgrd etscounterd etscounter; do
    if [ ! -x "$BIN/$p" ]; then
        echo "demo: $BIN/$p is not built; run make first" >&2
        exit 1
    fi
done

DIR=$(mktemp -d /tmp/etsmgr-demo.XXXXXX) || exit 1
export ETSMGR_RUNTIME_DIR=$DIR
export ETSMGR_INSTANCE=demo$$
unset NOTIFY_SOCKET LISTEN_FDS LISTEN_PID LISTEN_FDNAMES JOURNAL_STREAM
LOG=$DIR/etssup.log
LOG_SEEN=0
SUP=
FAILED=0
STEP=0

if [ -t 1 ]; then B=$'\e[1m' D=$'\e[2m' R=$'\e[31m' G=$'\e[32m' N=$'\e[0m'; else B= D= R= G= N=; fi

cleanup() {
    local kids="" pid
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        kids=$(pgrep -P "$SUP" 2>/dev/null)
        kill -TERM "$SUP" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SUP" 2>/dev/null
        { wait "$SUP"; } 2>/dev/null
    fi
    for pid in $kids; do kill -KILL "$pid" 2>/dev/null; done
    rm -f /dev/shm/"$ETSMGR_INSTANCE".* /dev/shm/"$ETSMGR_INSTANCE":*
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The log lines written since the last call, indented like the seed's.
show_log() {
    sleep 0.2 # let the daemons finish the lines of this step (display only)
    local total
    total=$(wc -l < "$LOG")
    if [ "$total" -gt "$LOG_SEEN" ]; then
        sed -n "$((LOG_SEEN + 1)),${total}p" "$LOG" | sed "s/^/    ${D}| /;s/\$/${N}/"
    fi
    LOG_SEEN=$total
}

step() {
    STEP=$((STEP + 1))
    printf '\n%s== %d. %s%s\n' "$B" "$STEP" "$1" "$N"
}

verdict() { # verdict OK|FAIL words
    if [ "$1" = OK ]; then
        printf '    %s-> ok: %s%s\n' "$G" "$2" "$N"
    else
        printf '    %s-> UNEXPECTED: %s%s\n' "$R" "$2" "$N"
        FAILED=1
    fi
}

# run_cli EXPECTED-REGEX ARGS...: runs etscounter, shows it, checks its output.
run_cli() {
    local want=$1 out rc
    shift
    printf '$ etscounter %s\n' "$*"
    out=$("$BIN/etscounter" --timeout 10000 "$@" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/  /'
    show_log
    if [ $rc -eq 0 ] && grep -Eq -- "$want" <<<"$out"; then
        verdict OK "exit 0, output matches /$want/"
    else
        verdict FAIL "exit $rc, wanted output matching /$want/"
    fi
}

count() { step "count"; run_cli "^$1\$" count; }
check() { step "check"; run_cli "count[^0-9]*$1([^0-9]|\$)" check; }

child_pid() { pgrep -P "$SUP" -x "$1" 2>/dev/null | head -1; }

# wait_new_pid NAME OLDPID: prints the pid of NAME's successor (30 s at most).
wait_new_pid() {
    local p
    for _ in $(seq 600); do
        p=$(child_pid "$1")
        if [ -n "$p" ] && [ "$p" != "$2" ]; then echo "$p"; return 0; fi
        sleep 0.05
    done
    return 1
}

start_sup() {
    printf '$ etssup &\n'
    "$BIN/etssup" 2>>"$LOG" &
    SUP=$!
    # The CLI's retries wait for the children; here only for the sockets.
    for _ in $(seq 200); do
        [ -S "$DIR/etscounter.sock" ] && [ -S "$DIR/etsmgrd.sock" ] && break
        kill -0 "$SUP" 2>/dev/null || break
        sleep 0.05
    done
}

kill9() { # kill9 NAME...: SIGKILLs the named children at once, waits for successors
    local name pids=() olds=()
    for name in "$@"; do
        olds+=("$(child_pid "$name")")
        pids+=("${olds[-1]}")
    done
    step "kill -9 $*"
    printf '$ kill -9 %s\n' "${pids[*]}"
    kill -KILL "${pids[@]}"
    local i=0 new
    for name in "$@"; do
        if new=$(wait_new_pid "$name" "${olds[$i]}"); then
            show_log
            verdict OK "etssup restarted $name: pid ${olds[$i]} -> $new"
        else
            show_log
            verdict FAIL "no new $name within 30 s"
        fi
        i=$((i + 1))
    done
}

printf '%sThe seed transcript, played with the real programs%s\n' "$B" "$N"
printf 'runtime dir %s, instance %s, programs from %s\n' "$DIR" "$ETSMGR_INSTANCE" "$BIN"

step "start the system"
: > "$LOG"
start_sup
show_log
if kill -0 "$SUP" 2>/dev/null; then
    verdict OK "etssup pid $SUP runs etsmgrd pid $(child_pid etsmgrd) and etscounterd pid $(child_pid etscounterd)"
else
    verdict FAIL "etssup exited at start"
    exit 1
fi

count 1
count 2
check 2

step "die (etscounterd kills itself; etssup restarts it)"
old=$(child_pid etscounterd)
printf '$ etscounter die\n'
"$BIN/etscounter" --timeout 10000 die 2>&1 | sed 's/^/  /'
if new=$(wait_new_pid etscounterd "$old"); then
    show_log
    verdict OK "etscounterd pid $old -> $new"
else
    show_log
    verdict FAIL "no new etscounterd within 30 s"
fi
check 2
count 3
count 4

kill9 etscounterd
check 4
count 5
count 6

ctr_before=$(child_pid etscounterd)
kill9 etsmgrd
check 6
count 7
count 8
ctr_after=$(child_pid etscounterd)
if [ "$ctr_before" = "$ctr_after" ]; then
    verdict OK "etscounterd kept its pid $ctr_after while etsmgrd restarted"
else
    verdict FAIL "etscounterd changed pid ($ctr_before -> $ctr_after) when only etsmgrd was killed"
fi

kill9 etsmgrd etscounterd
count 9

step "kill -9 etssup (its children die with it), then start it again"
olds="$(child_pid etsmgrd) $(child_pid etscounterd)"
printf '$ kill -9 %s\n' "$SUP"
# bash prints its "Killed" job notice when it notices the death, which may
# be during the kill itself: both go under the same redirection
{ kill -KILL "$SUP"; wait "$SUP"; } 2>/dev/null
SUP=
gone=1
for _ in $(seq 100); do
    gone=1
    for p in $olds; do kill -0 "$p" 2>/dev/null && gone=0; done
    [ $gone = 1 ] && break
    sleep 0.05
done
if [ $gone = 1 ]; then
    verdict OK "no child outlived etssup (pids $olds are gone)"
else
    verdict FAIL "a child of the killed etssup is still running"
fi
printf '    shared memory left behind: %s\n' "$(cd /dev/shm && ls -d "$ETSMGR_INSTANCE":* 2>/dev/null | tr '\n' ' ')"
start_sup
show_log
count 10

step "stop (SIGTERM to etssup)"
printf '$ kill -TERM %s\n' "$SUP"
kill -TERM "$SUP"
wait "$SUP"
rc=$?
SUP=
show_log
if [ $rc -eq 0 ]; then verdict OK "etssup stopped its children and exited 0"; else verdict FAIL "etssup exited $rc"; fi

echo
if [ $FAILED = 0 ]; then
    printf '%sdemo: every step gave the expected result%s\n' "$G" "$N"
else
    printf '%sdemo: some steps did not give the expected result (see UNEXPECTED above)%s\n' "$R" "$N"
fi
exit $FAILED

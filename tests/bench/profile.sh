#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# profile.sh: where a server's CPU time goes under one load, from perf's
# samples, as one row for the bench report (docs/performance.md).
#
# Usage: profile.sh PID SECS OUTFILE NAME -- LOADGEN ARGS...
#   runs LOADGEN for SECS (+ its warm-up) and samples PID with perf record
#   for SECS meanwhile; prints one JSON row {"name": NAME, "profile": {...}}
#   with the share of samples by part of the program and the top symbols;
#   OUTFILE gets perf's whole report (per symbol, with call chains).
#
# perf comes from Debian's linux-perf (make bench installs it when it can).
# Hardware events are used when the machine has them (perf stat -e
# instructions works); a VM without a PMU gets the cpu-clock software event,
# a timer sample of where the CPU is, which the row says.  Without a working
# perf the row is a note saying why, and the exit status is still 0: a
# missing profile must not stop the bench.
set -u
PID=${1:?usage} SECS=${2:?usage} OUTFILE=${3:?usage} NAME=${4:?usage}
shift 4
[ "${1:-}" = -- ] && shift
jnote() { local s=${1//\\/\\\\}; printf '{"note":"%s"}\n' "${s//\"/\\\"}"; }

if ! command -v perf >/dev/null 2>&1; then
    jnote "no profile: perf is not installed (Debian package linux-perf)"
    exit 0
fi
if perf stat -e instructions -x, true 2>&1 | grep -q '^[0-9]'; then
    EV=cycles WHY="perf, hardware cycles"
else
    EV=cpu-clock WHY="perf, cpu-clock samples: no hardware counters on this machine"
fi
TMP=$(mktemp -d /tmp/etsmgr-profile.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
if ! perf record -e "$EV" -o "$TMP"/probe.data -- true > "$TMP"/probe.log 2>&1; then
    jnote "no profile: perf record does not work here: $(tail -1 "$TMP"/probe.log)"
    exit 0
fi

"$@" -t "$SECS" -w 0.5 > "$TMP"/row.json &
LGPID=$!
sleep 0.3
perf record -e "$EV" -F 2999 -g -p "$PID" -o "$TMP"/perf.data -- sleep "$SECS" > "$TMP"/record.log 2>&1
rec=$?
wait "$LGPID" || { jnote "no profile: the load generator failed under perf"; exit 0; }
if [ $rec -ne 0 ]; then
    jnote "no profile: perf record -p $PID failed: $(tail -1 "$TMP"/record.log)"
    exit 0
fi
{
    echo "# profile.sh: $NAME; event $EV; $SECS s of samples of pid $PID"
    perf report -i "$TMP"/perf.data --stdio --no-children --sort sym -g none 2>/dev/null
    echo
    echo "# the same with call chains (callers of each symbol), down to 0.5 %"
    perf report -i "$TMP"/perf.data --stdio --no-children --sort sym --percent-limit 0.5 2>/dev/null
} > "$OUTFILE"
# flat: "  9.04%  [k] finish_task_switch.isra.0"
perf report -i "$TMP"/perf.data --stdio --no-children --sort sym -g none 2> /dev/null |
awk -v name="$NAME" -v why="$WHY" -v row="$(cat "$TMP"/row.json)" '
BEGIN { ntop = 0; total = 0 }
function group(sym, kern) {
    if (kern) return "kernel (system calls, wake-ups)"
    if (sym ~ /^(etsmgr_table_|tbl_|once_)/) return "table store (the count and its request record)"
    if (sym ~ /^(fp_|cJSON|proto_|parse_|frame_reader)/) return "reading requests"
    if (sym ~ /^(ecd_|ctr_)/) return "etscounterd handlers and replies"
    if (sym ~ /^(conn_|srv_|uv_|uv__|epoll)/) return "connections and event loop"
    if (sym ~ /(malloc|free|alloc)/) return "malloc and free"
    if (sym ~ /^__(mem|str)/) return "memcpy, memcmp and the like"
    return "other"
}
$1 !~ /^[0-9.]+%$/ || NF < 3 { next }
{
    pct = $1; sub(/%/, "", pct); kern = ($2 == "[k]")
    sym = $3; for (i = 4; i <= NF; i++) sym = sym " " $i
    g = group(sym, kern); share[g] += pct; total += pct
    if (ntop < 12) { top[ntop] = sym; toppct[ntop] = pct; ntop++ }
}
END {
    if (total == 0) { printf "{\"note\":\"no profile: perf recorded no samples of the server\"}\n"; exit }
    printf "{\"name\":\"%s\",\"profile\":{\"event\":\"%s\",\"groups\":[", name, why
    n = 0
    for (g in share) order[n++] = g
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (share[order[j]] > share[order[i]]) { t = order[i]; order[i] = order[j]; order[j] = t }
    for (i = 0; i < n; i++) printf "%s{\"part\":\"%s\",\"pct\":%.1f}", i ? "," : "", order[i], share[order[i]]
    printf "],\"top\":["
    for (i = 0; i < ntop; i++) { s = top[i]; gsub(/"/, "", s); printf "%s{\"symbol\":\"%s\",\"pct\":%.1f}", i ? "," : "", s, toppct[i] }
    printf "]"
    if (row != "") printf ",\"load_under_perf\":%s", row
    printf "}}\n"
}'

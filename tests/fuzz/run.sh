#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh HARNESS SECONDS TIMEOUT: one bounded libFuzzer run of
# build/fuzz/bin/HARNESS from its seeds (tests/fuzz/corpus/HARNESS) and the
# corpus earlier runs grew (build/fuzz/corpus/HARNESS).  Exit 0 when the
# run ended by its time limit with no crash, leak, sanitizer report or
# time-out; 1 otherwise, with the end of the log and the failing input's
# path.  Appends "HARNESS seconds executions exec/s" to build/fuzz/summary.txt.
set -u
h=$1 secs=$2 tmo=$3
top=$(cd "$(dirname "$0")/../.." && pwd)
fz=$top/build/fuzz
mkdir -p "$fz/corpus/$h" "$fz/artifacts/$h"
seeds=$top/tests/fuzz/corpus/$h
log=$fz/$h.log
# halt on the first UBSan report; leaks are checked at the end of each input
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$fz/bin/$h" -max_total_time="$secs" -timeout="$tmo" -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$fz/artifacts/$h/" \
    "$fz/corpus/$h" "$seeds" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
printf '%-16s %6ss %10s execs %8s exec/s  %s\n' "$h" "$secs" "${execs:-?}" "${rate:-?}" \
    "$([ $rc -eq 0 ] && echo ok || echo FAILED)" | tee -a "$fz/summary.txt"
if [ $rc -ne 0 ] || grep -q 'ERROR: \(AddressSanitizer\|LeakSanitizer\|libFuzzer\)\|runtime error:\|FD LEAK' "$log"; then
    echo "fuzz: $h failed (exit $rc); the end of $log:" >&2
    tail -40 "$log" >&2
    ls -1 "$fz/artifacts/$h/"* 2>/dev/null | sed 's/^/fuzz: failing input: /' >&2
    exit 1
fi
exit 0

#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# run.sh: the driver of `make bench` (docs/performance.md).
#
# Usage: tests/bench/run.sh BINDIR BENCHBINDIR OUTDIR
#   BINDIR       the built programs (build/bin)
#   BENCHBINDIR  the bench programs (build/tests/bench)
#   OUTDIR       where rows.jsonl, results.json, the profile and the logs go
#                (build/bench)
# Environment: BENCH_SECS (seconds per table row, 1), BENCH_NET_SECS
# (seconds per socket row, 1), BENCH_ROUNDS (rounds of the socket rows, 3),
# BENCH_KILLS (100), BENCH_CLI_RUNS (200), BENCH_REATTACH_REPS (20);
# BENCH_ETSCOUNTERD, another etscounterd binary to measure instead of
# BINDIR's (to try a patch: the table then says which); BENCH_ONLY, empty
# for every section, "recovery" for sections 3 and 6 only (about a minute,
# for work on recovery), "standby" for section 6 only, "redis" for section
# 2 only (the Redis comparison, about 90 s), or several of those joined by
# commas ("redis,standby": the standby's takeover right after the Redis
# rows' burst of request ids, in the table they left).
#
# Everything is measured in this one run on this machine, so each ratio
# compares two things that saw the same load.  Each bench program prints
# result rows (JSON lines) that are appended to OUTDIR/rows.jsonl, and
# report.c turns them into the table and results.json at the end.  The
# sections run in their numbered order:
#   1. the table store in process (bench_table.c) and the same operations in
#      Erlang's ETS (ets_bench.escript), and the ordered ones in LMDB
#      (lmdb_bench.c); without Erlang or LMDB, only their rows are skipped,
#      and the table says so;
#   2. count over the socket against Redis: plain and exactly-once counts at
#      1, 50 and 50 x 16 pipelined connections, with the server's CPU time
#      per request; the 1-connection counts again on a second instance with
#      --poll-us 0 (what the default's polling buys and costs); etscounterd's
#      CPU over a second of idle after the rows; and a perf profile of the
#      exactly-once count
#      (profile.sh; said and skipped where perf cannot sample);
#   3. recovery after SIGKILL; 4. reattach; 5. the CLIs' whole-process time.
#
# The project runs as in production: etssup supervising etsmgrd and
# etscounterd, both at --log-level warning (a count is logged at notice, so
# this is the setting where counts are not logged), in a private runtime dir
# and instance.  Redis runs as two private redis-servers on Unix sockets in
# the same dir, port 0 (no TCP), one without persistence and one with
# appendonly everysec; for each load the rows of etscounterd and of both
# Redis servers run back to back, in rounds, and the report keeps the
# median round.  Whatever happens, the EXIT trap stops every process this
# script started (by pid) and removes the instance's shm objects and the
# dir.
#
# Exit status: 0 every step ran; 1 a step failed (the table still shows what
# was measured, and the failure is said in it).
set -u

BIN=${1:?usage: run.sh BINDIR BENCHBINDIR OUTDIR}
BB=${2:?usage: run.sh BINDIR BENCHBINDIR OUTDIR}
OUT=${3:?usage: run.sh BINDIR BENCHBINDIR OUTDIR}
SECS=${BENCH_SECS:-1}
NET=${BENCH_NET_SECS:-1}
ROUNDS=${BENCH_ROUNDS:-3}
KILLS=${BENCH_KILLS:-100}
CLI_RUNS=${BENCH_CLI_RUNS:-200}
REPS=${BENCH_REATTACH_REPS:-20}
ECD=${BENCH_ETSCOUNTERD:-$BIN/etscounterd}
ONLY=${BENCH_ONLY:-}
for o in ${ONLY//,/ }; do
    case $o in
    recovery | standby | redis) ;;
    *) echo "bench: BENCH_ONLY=$ONLY: say recovery (sections 3 and 6), standby (section 6), redis (section 2), several joined by commas, or nothing (all)" >&2; exit 1 ;;
    esac
done
# want N: whether section N runs
want() {
    [ -z "$ONLY" ] && return 0
    local o
    for o in ${ONLY//,/ }; do
        case $o in
        recovery) [ "$1" = 3 ] || [ "$1" = 6 ] && return 0 ;;
        standby) [ "$1" = 6 ] && return 0 ;;
        redis) [ "$1" = 2 ] && return 0 ;;
        esac
    done
    return 1
}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ -x "$ECD" ] || { echo "bench: $ECD is not an executable" >&2; exit 1; }

for p in "$BIN"/etssup "$BIN"/etsmgrd "$BIN"/etscounterd "$BIN"/etscounter "$BB"/loadgen "$BB"/recovery \
         "$BB"/reattach "$BB"/proctime "$BB"/report "$BB"/bench_table; do
    [ -x "$p" ] || { echo "bench: $p is not built; run make bench" >&2; exit 1; }
done
for p in redis-server redis-cli; do
    command -v $p >/dev/null || { echo "bench: $p not found; make bench installs it (redis-server, redis-tools)" >&2; exit 1; }
done

mkdir -p "$OUT" || exit 1
ROWS=$OUT/rows.jsonl
: > "$ROWS"
DIR=$(mktemp -d /tmp/etsmgr-bench.XXXXXX) || exit 1
export ETSMGR_RUNTIME_DIR=$DIR
export ETSMGR_INSTANCE=bench$$
unset NOTIFY_SOCKET LISTEN_FDS LISTEN_PID LISTEN_FDNAMES JOURNAL_STREAM
SUP= REDIS= OFF= FAILED=0
T_START=$(date +%s)

cleanup() {
    [ -z "$OFF" ] || stop_off
    for pid in $REDIS; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
        local kids
        kids=$(pgrep -P "$SUP" 2>/dev/null)
        kill -TERM "$SUP" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SUP" 2>/dev/null
        wait "$SUP" 2>/dev/null
        for pid in $kids; do kill -KILL "$pid" 2>/dev/null; done
    fi
    rm -f /dev/shm/"$ETSMGR_INSTANCE".* /dev/shm/"$ETSMGR_INSTANCE":*
    # keep the daemons' logs with the results, for a look after a failure
    cp "$DIR"/*.log "$OUT"/ 2>/dev/null
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

jstr() { # a JSON string of $1
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}
section() { printf '{"section":%s}\n' "$(jstr "$1")" >> "$ROWS"; echo "bench: $1" >&2; }
note() { printf '{"note":%s}\n' "$(jstr "$1")" >> "$ROWS"; }
fail() { note "FAILED: $1"; echo "bench: FAILED: $1" >&2; FAILED=1; }
# rows CMD...: run a bench program, its rows into ROWS
rows() { "$@" >> "$ROWS" || fail "$(basename "$1") ${*:2}"; }

# ---------------------------------------------------------------- the machine
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
section "machine: $(nproc) cores ($cpu), $(uname -sr), load average at start $(cut -d' ' -f1-3 /proc/loadavg)"
note "$(redis-server --version | cut -d' ' -f1-3); etsmgr $("$BIN"/etsmgrd --version 2>/dev/null | awk '{print $2}') at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ "$ECD" = "$BIN/etscounterd" ] || note "etscounterd under test: $ECD (BENCH_ETSCOUNTERD), not the tree's"
[ -z "$ONLY" ] || note "BENCH_ONLY=$ONLY: only some sections ran"

# ---------------------------------------------------------------- 1. table ops
want 1 && section "1. table operations in process: the table store (bench-table) and Erlang's ETS, $SECS s per row"
want 1 && note "each table row is compared with the machine's floor, a bare atomic_fetch_add on a shared mapping (atomic add), and with the same operation in ETS (ETS: ...; 2-process lookups with read_concurrency)"
# ETS first, so that each table row can name its ETS counterpart
ETS_OK=0
if ! want 1; then
    :
elif command -v escript >/dev/null 2>&1; then
    if escript "$SRC"/tests/bench/ets_bench.escript "$SECS" > "$OUT"/ets_bench.jsonl 2> "$OUT"/ets_bench.err; then
        ETS_OK=1
    else
        fail "the ETS rows: escript tests/bench/ets_bench.escript failed (see $OUT/ets_bench.err)"
    fi
else
    note "ETS rows skipped: Erlang (escript) is not installed; make bench installs erlang-base when it can"
fi
# LMDB's ordered rows, when lmdb_bench was built (make bench builds it
# where it could install LMDB)
LMDB_OK=0
if ! want 1; then
    :
elif [ -x "$BB"/lmdb_bench ]; then
    if "$BB"/lmdb_bench "$SECS" > "$OUT"/lmdb_bench.jsonl 2> "$OUT"/lmdb_bench.err; then
        LMDB_OK=1
    else
        fail "the LMDB rows: lmdb_bench failed (see $OUT/lmdb_bench.err)"
    fi
else
    note "LMDB rows skipped: LMDB (liblmdb-dev) is not installed; make bench installs it when it can"
fi
# ets NAME [LMDB-NAME]: "also" comparisons with the ETS row NAME, when
# Erlang ran, and with the LMDB row LMDB-NAME, when LMDB ran
ets() {
    local a=
    [ $ETS_OK = 1 ] && [ -n "$1" ] && a=$(printf '{"reference":%s}' "$(jstr "ETS: $1")")
    [ $LMDB_OK = 1 ] && [ -n "${2:-}" ] && a="$a${a:+,}$(printf '{"reference":%s}' "$(jstr "LMDB: $2")")"
    [ -n "$a" ] && printf ',"also":[%s]' "$a"
}
# etst NAME TARGET [LMDB-NAME]: the same, with a target on the ratio to ETS's
etst() {
    local a=
    [ $ETS_OK = 1 ] && a=$(printf '{"reference":%s,"target":%s}' "$(jstr "ETS: $1")" "$(jstr "$2")")
    [ $LMDB_OK = 1 ] && [ -n "${3:-}" ] && a="$a${a:+,}$(printf '{"reference":%s}' "$(jstr "LMDB: $3")")"
    [ -n "$a" ] && printf ',"also":[%s]' "$a"
}
if ! want 1; then
    :
elif "$BB"/bench_table "$SECS" > "$OUT"/bench_table.txt; then
    # bench_table prints "NAME  X M/s   ref Y M/s   ratio Z   (W M per CPU-s)" rows,
    # "NAME  X.XXx wall   Y.YYx per free core   (target T)" ratios of two of
    # its rows (judged per free core: the wall clock needs an idle core per
    # process), and one bytes-per-entry line
    sed -nE 's/^(.*[^ ]) +([0-9.]+) M\/s +ref +([0-9.]+) M\/s +ratio +([0-9.]+)( +\(([0-9.]+) M per CPU-s\))?$/\1|\2|\3|\6/p' \
        "$OUT"/bench_table.txt |
    while IFS='|' read -r name v ref percpu; do
        case $name in *"2 proc"*) rn="atomic add, 2 procs" ;;
                      *) rn="atomic add, 1 proc" ;; esac
        refv=',"reference_value":'$ref
        ex=
        case $name in
        "update_counter, 1 process") ex=',"target":"value > 30"'$(ets "update_counter, 1 process") ;;
        "update_counter, 2 processes, 1 key") ex=$(ets "update_counter, 2 processes, 1 key") ;;
        "insert 1M new keys (with growth)") ex=$(ets "insert 1M new keys (with growth)") ;;
        "lookup 1M keys at random, 1 proc") ex=$(ets "lookup 1M keys at random, 1 proc") ;;
        "lookup 1M keys at random, 2 procs") ex=$(ets "lookup 1M keys at random, 2 procs") ;;
        # ordered tables against ETS ordered_set (issue 15's targets)
        "ordered_set insert 1M random keys") ex=$(etst "ordered_set insert 1M random keys" ">= 2.0" \
            "ordered_set insert 1M random keys") ;;
        "ordered_set lookup 1M keys at random, 1 proc") ex=$(etst "ordered_set lookup 1M keys at random, 1 proc" ">= 2.0" \
            "ordered_set lookup 1M keys at random, 1 proc") ;;
        "ordered_set walk 1M entries in order (foreach)") ex=$(etst "ordered_set walk 1M entries in order (foldl)" ">= 1.0" \
            "ordered_set walk 1M entries in order (cursor)") ;;
        "ordered_set range walks of 100 keys, 10K entries") ex=$(ets "ordered_set range walks of 100 keys (ets:next), 10K entries" \
            "ordered_set range walks of 100 keys, 10K entries") ;;
        "ordered_set range walks of 100 keys, 1M entries") ex=$(ets "ordered_set range walks of 100 keys (ets:next), 1M entries" \
            "ordered_set range walks of 100 keys, 1M entries") ;;
        "ordered_set range walks of 100 keys, 10M entries") ex=$(ets "ordered_set range walks of 100 keys (ets:next), 10M entries" \
            "ordered_set range walks of 100 keys, 10M entries") ;;
        # readers with a writer: compared with the same lookups without one
        "readers: 1M random, 2 + a writer") rn="table: lookup 1M keys at random, 2 procs" refv= ;;
        "readers: 1,000 hot, 2 + a writer") rn="table: lookup 1,000 hot keys, 2 procs" refv= ;;
        esac
        [ -n "$percpu" ] && ex="$ex,\"per_cpu_second\":$percpu"
        printf '{"name":%s,"value":%s,"unit":"M ops/s","reference":%s%s%s}\n' \
            "$(jstr "table: $name")" "$v" "$(jstr "$rn")" "$refv" "$ex" >> "$ROWS"
    done
    sed -nE 's/^(.*[^ ]) +([0-9.]+)x wall +([0-9.]+)x per free core +\(target (>=|>|<=|<) *([0-9.]+)x\)$/\1|\2|\3|\4 \5/p' \
        "$OUT"/bench_table.txt |
    while IFS='|' read -r name wall core tg; do
        printf '{"name":%s,"value":%s,"unit":"x per free core","wall_ratio":%s,"target":"value %s"}\n' \
            "$(jstr "table: $name")" "$core" "$wall" "$tg" >> "$ROWS"
    done
    bpe=$(sed -nE 's/^bytes per entry at 1,000,000 +([0-9.]+) bytes.*/\1/p' "$OUT"/bench_table.txt)
    if [ -n "$bpe" ]; then
        if [ $ETS_OK = 1 ]; then
            printf '{"name":"table: bytes per entry, 1M small entries","value":%s,"unit":"bytes","reference":"ETS: bytes per entry, 1M small entries","target":"<= 1.0"}\n' "$bpe" >> "$ROWS"
        else
            printf '{"name":"table: bytes per entry, 1M small entries","value":%s,"unit":"bytes","target":"value <= 64"}\n' "$bpe" >> "$ROWS"
        fi
    fi
    bpe=$(sed -nE 's/^ordered_set bytes per entry at 1,000,000 +([0-9.]+) bytes.*/\1/p' "$OUT"/bench_table.txt)
    [ -n "$bpe" ] &&
        printf '{"name":"table: ordered_set bytes per entry, 1M small entries","value":%s,"unit":"bytes","target":"value <= 64"%s}\n' \
            "$bpe" "$(ets "ordered_set bytes per entry, 1M small entries" "ordered_set bytes per entry, 1M small entries")" \
            >> "$ROWS"
    grep -q '"table: ' "$ROWS" || fail "bench_table's output format changed; see $OUT/bench_table.txt"
else
    fail "bench_table (see its messages above)"
fi
[ $ETS_OK = 1 ] && grep -v '^{"note"' "$OUT"/ets_bench.jsonl >> "$ROWS" && grep '^{"note"' "$OUT"/ets_bench.jsonl >> "$ROWS"
[ $LMDB_OK = 1 ] && grep -v '^{"note"' "$OUT"/lmdb_bench.jsonl >> "$ROWS" && grep '^{"note"' "$OUT"/lmdb_bench.jsonl >> "$ROWS"

# ---------------------------------------------------------------- the system under etssup
cat > "$DIR"/etssup.json <<EOF
{"strategy": "one_for_one", "intensity": 100000, "period": 1, "start_timeout": 10000,
 "children": [
  {"id": "etsmgrd", "argv": ["$BIN/etsmgrd", "--log-level", "warning"], "restart": "permanent",
   "shutdown": 5000, "ready": "notify", "sockets": [{"name": "etsmgrd", "path": "etsmgrd.sock"}]},
  {"id": "etscounterd", "argv": ["$ECD", "--log-level", "warning"], "restart": "permanent",
   "shutdown": 5000, "ready": "notify", "sockets": [{"name": "etscounter", "path": "etscounter.sock"}]}]}
EOF
"$BIN"/etssup --config "$DIR"/etssup.json --log-level warning 2> "$DIR"/etssup.log &
SUP=$!
# etscounter answers at once when nothing holds the instance's lock, so wait
# for etssup to be there (its control socket comes after its lock); then the
# CLI retries until etscounterd serves, once etsmgrd gave it the table
for _ in $(seq 400); do [ -S "$DIR"/etssup.sock ] && break; sleep 0.05; done
if ! "$BIN"/etscounter -t 20000 ping > /dev/null; then
    fail "etssup did not bring etsmgrd and etscounterd up within 20 s (see $OUT/etssup.log)"
    exit 1
fi
cpid() { "$BIN"/etscounter --json ping | sed -nE 's/.*"pid":([0-9]+).*/\1/p'; }

# ---------------------------------------------------------------- 2. count over the socket
PING="ping, 1 conn"
# The same system with --poll-us 0 (etsmgrd and etscounterd of another
# instance in DIR/off, idle but for its own rows): the 1-connection rows
# with polling off, beside the default's.
OFF_INST=${ETSMGR_INSTANCE}off
start_off() {
    mkdir -p "$DIR"/off || return 1
    local m c
    ETSMGR_RUNTIME_DIR=$DIR/off ETSMGR_INSTANCE=$OFF_INST "$BIN"/etsmgrd --log-level warning 2> "$DIR"/off-etsmgrd.log &
    m=$!
    ETSMGR_RUNTIME_DIR=$DIR/off ETSMGR_INSTANCE=$OFF_INST "$ECD" --log-level warning --poll-us 0 \
        2> "$DIR"/off-etscounterd.log &
    c=$!
    OFF="$c $m"
    for _ in $(seq 400); do
        ETSMGR_RUNTIME_DIR=$DIR/off ETSMGR_INSTANCE=$OFF_INST "$BIN"/etscounter -t 1000 ping > /dev/null 2>&1 && return 0
        kill -0 "$c" 2>/dev/null || break
        sleep 0.05
    done
    fail "etscounterd --poll-us 0 did not come up (see $OUT/off-etscounterd.log); no rows with polling off"
    stop_off
    return 1
}
stop_off() { # etscounterd first, so that it does not log the manager's death
    local pid
    for pid in $OFF; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    OFF=
    rm -f /dev/shm/"$OFF_INST".* /dev/shm/"$OFF_INST":*
}
LG=("$BB"/loadgen -t "$NET")

# start_redis NAME ARGS...: a private redis-server on DIR/NAME.sock; its pid
# is added to REDIS
start_redis() {
    local name=$1 pid; shift
    mkdir -p "$DIR/$name"
    redis-server --port 0 --unixsocket "$DIR/$name.sock" --unixsocketperm 700 --dir "$DIR/$name" \
        --logfile "$DIR/$name.log" --daemonize no "$@" &
    pid=$!
    REDIS="$REDIS $pid"
    for _ in $(seq 200); do
        [ "$(redis-cli -s "$DIR/$name.sock" ping 2>/dev/null)" = PONG ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.025
    done
    fail "redis-server $* did not answer PING (see $OUT/$name.log)"
    return 1
}
# cputicks PID: its user + system CPU time in clock ticks (/proc/PID/stat
# fields 14 and 15, counted after the ')' that ends the command name)
cputicks() { local st; st=$(cat /proc/"$1"/stat) || return 1; st=${st##*) }; set -- $st; echo $(( ${12} + ${13} )); }
rpid() { redis-cli -s "$1" info server | sed -nE 's/^process_id:([0-9]+).*/\1/p'; }

want 2 && section "2. count over a Unix socket, etscounterd against Redis: $ROUNDS rounds of $NET s per row, the median round shown; cpu: the server's CPU time per request"
want 2 && note "one load generator for both (tests/bench/loadgen.c); etsmgrd and etscounterd under etssup at --log-level warning (counts are logged at notice); exactly-once: every count carries a new request id, as etscounter sends"
want 2 && note "etscounterd runs with its default --poll-us (it polls for that long after a request instead of sleeping at once); the rows named --poll-us 0 are the same system with polling off, beside the default's"
want 2 && note "Redis: two private redis-servers on Unix sockets: --save '' --appendonly no (Redis INCR) and --appendonly yes --appendfsync everysec (Redis INCR everysec, what survives a kill -9 of the server)"
S=$DIR/etscounter.sock RN=$DIR/redis-nopersist.sock RA=$DIR/redis-aof.sock
REDIS_UP=0
if want 2 || want 5; then
    start_redis redis-nopersist --save '' --appendonly no &&
        start_redis redis-aof --save '' --appendonly yes --appendfsync everysec && REDIS_UP=1
fi
if [ $REDIS_UP = 1 ] && want 2; then
    P=$(cpid) PN=$(rpid "$RN") PA=$(rpid "$RA")
    start_off && PO=$(ETSMGR_RUNTIME_DIR=$DIR/off ETSMGR_INSTANCE=$OFF_INST cpid)
    # the rows of one load run back to back, and the rounds repeat the whole
    # set, so that a change of load on the machine hits both sides of a ratio
    for round in $(seq "$ROUNDS"); do
        echo "bench: round $round of $ROUNDS" >&2
        rows "${LG[@]}" -s "$S" -p json -o ping -c 1 -S "$P" -n "$PING"
        rows "${LG[@]}" -s "$RN" -p resp -o ping -c 1 -S "$PN" -n "Redis PING, 1 conn" -r "$PING"
        for load in "1 conn|-c 1" "50 conns|-c 50" "50 conns x16 pipelined|-c 50 -P 16"; do
            L=${load%%|*}
            read -r -a LA <<< "${load#*|}"
            also=()
            [ "$L" = "1 conn" ] && also=(-A "$PING|>= 0.9")
            rows "${LG[@]}" -s "$S" -p json -o count "${LA[@]}" -S "$P" -n "count, $L" \
                -r "Redis INCR, $L" -T ">= 1.2" -A "Redis INCR everysec, $L" "${also[@]}"
            rows "${LG[@]}" -s "$S" -p json -o count-rid "${LA[@]}" -S "$P" -n "count exactly-once, $L" \
                -r "Redis INCR, $L" -T ">= 1.0" -A "Redis INCR everysec, $L|>= 1.3"
            rows "${LG[@]}" -s "$RN" -p resp -o incr "${LA[@]}" -S "$PN" -n "Redis INCR, $L"
            rows "${LG[@]}" -s "$RA" -p resp -o incr "${LA[@]}" -S "$PA" -n "Redis INCR everysec, $L"
            # what etscounterd's default --poll-us buys and costs: the same
            # 1-connection rows with it off, beside the rows above
            if [ "$L" = "1 conn" ] && [ -n "$OFF" ]; then
                rows "${LG[@]}" -s "$DIR/off/etscounter.sock" -p json -o count -c 1 -S "$PO" \
                    -n "count, 1 conn, --poll-us 0" -r "Redis INCR, 1 conn" -A "count, 1 conn"
                rows "${LG[@]}" -s "$DIR/off/etscounter.sock" -p json -o count-rid -c 1 -S "$PO" \
                    -n "count exactly-once, 1 conn, --poll-us 0" -r "Redis INCR, 1 conn" \
                    -A "count exactly-once, 1 conn"
            fi
        done
    done
    stop_off
    # back asleep once the load stopped: its CPU time over a second of idle
    # (it polls for --poll-us after the last request, then sleeps)
    sleep 0.1
    t0=$(cputicks "$P") && sleep 1 && t1=$(cputicks "$P") &&
        printf '{"name":"etscounterd idle: its CPU time over 1 s after the rows","value":%s,"unit":"ms","target":"value <= 10"}\n' \
            "$(( (t1 - t0) * 1000 / $(getconf CLK_TCK) ))" >> "$ROWS" ||
        fail "cannot read etscounterd's CPU time in /proc/$P/stat"
    # where the exactly-once count's time goes, for the next person
    bash "$SRC"/tests/bench/profile.sh "$P" "$NET" "$OUT"/profile.txt \
        "profile: count exactly-once, 50 conns x16 pipelined" -- \
        "${LG[@]}" -s "$S" -p json -o count-rid -c 50 -P 16 -n "profiled run" >> "$ROWS" ||
        note "no profile of the exactly-once count: tests/bench/profile.sh failed (see $OUT/profile.txt)"
fi

# ---------------------------------------------------------------- 3. recovery
if want 3; then
    section "3. recovery after SIGKILL, $KILLS kills each, restarts by etssup (sockets held by etssup)"
    rows "$BB"/recovery -d "$DIR" --kills "$KILLS"
fi

# ---------------------------------------------------------------- 4. reattach
if want 4; then
    section "4. reattach: a restarted client gets its table back (connect + new_table + attach + first lookup), median of $REPS"
    rows "$BB"/reattach --reps "$REPS"
fi

# ---------------------------------------------------------------- 5. the CLI
want 5 && section "5. the CLI: whole-process time, median of $CLI_RUNS runs (fork, exec, connect, one request, exit)"
if [ $REDIS_UP = 1 ] && want 5; then
    rows "$BB"/proctime -n "$CLI_RUNS" -N "redis-cli incr" -- redis-cli -s "$RN" incr clicounter
    rows "$BB"/proctime -n "$CLI_RUNS" -N "etscounter count" -r "redis-cli incr" -- "$BIN"/etscounter count
fi
for pid in $REDIS; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
REDIS=

# ---------------------------------------------------------------- 6. hot standby
# the same system again, with "standby": true for etscounterd (issue 17):
# a kill meets a standby already queued, and no process has to start
kill -TERM "$SUP" 2>/dev/null
wait "$SUP"
st=$?
SUP=
[ $st -eq 0 ] || fail "etssup exited with status $st on SIGTERM (see $OUT/etssup.log)"
if want 6; then
    sed 's/"ready": "notify", "sockets": \[{"name": "etscounter"/"ready": "notify", "standby": true, "sockets": [{"name": "etscounter"/' \
        "$DIR"/etssup.json > "$DIR"/etssup-standby.json
    section "6. recovery with a hot standby of etscounterd (\"standby\": true), $KILLS kills, each once the standby is queued"
    "$BIN"/etssup --config "$DIR"/etssup-standby.json --log-level warning 2> "$DIR"/etssup-standby.log &
    SUP=$!
    for _ in $(seq 400); do [ -S "$DIR"/etssup.sock ] && break; sleep 0.05; done
    if "$BIN"/etscounter -t 20000 ping > /dev/null; then
        rows "$BB"/recovery -d "$DIR" --kills "$KILLS" --only counterd --standby
    else
        fail "etssup with a standby did not bring etscounterd up within 20 s (see $OUT/etssup-standby.log)"
    fi
    kill -TERM "$SUP" 2>/dev/null
    wait "$SUP"
    st=$?
    SUP=
    [ $st -eq 0 ] || fail "etssup exited with status $st on SIGTERM (see $OUT/etssup-standby.log)"
fi

# ---------------------------------------------------------------- stop and report
left=$(cd /dev/shm && ls -d "$ETSMGR_INSTANCE":* 2>/dev/null | sed "s/^$ETSMGR_INSTANCE:[0-9]*://" | tr '\n' ' ')
[ "$left" = "etscounter " ] && note "after etssup stopped, table etscounter stays in /dev/shm, as designed (the driver removes it)"
[ -n "$left" ] && [ "$left" != "etscounter " ] && note "shm objects left after etssup stopped: $left(the driver removes them)"
note "total time of the run: $(( $(date +%s) - T_START )) s"

echo
echo "etsmgr benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ)); a target is on the ratio unless it says value"
"$BB"/report "$ROWS" "$OUT"/results.json || FAILED=1
echo
echo "rows: $OUT/results.json; logs: $OUT/*.log"
exit $FAILED

#!/usr/bin/env bash
# tests/bench/run.sh - Keel's example app against a plain libmicrohttpd + jansson
# program doing the same work (tests/bench/plain_hello.c), with wrk on loopback.
#
# Runs from the repo root (./dev bench does `exec bash tests/bench/run.sh`).
# Environment:
#   BENCH_ROUNDS=3        rounds; servers alternate first/second each round
#   BENCH_SECONDS=5       duration of each wrk run
#   BENCH_CONNECTIONS="32 256"
#   BENCH_THREADS=2       wrk -t
#   BENCH_NOLOG=1         also run Keel with KEEL_LOG_REQUESTS=0 (extra column)
#   BENCH_SCALING=1       also run Keel with one I/O thread (extra column; 0 to skip)
#   BENCH_PORT=18480      first of three loopback ports used
#   BENCH_KEEL_LOG=/dev/null  where Keel's stderr (one JSON line per request,
#                         logging stays on as by default) goes; a file grows by
#                         ~100 MB per 5 s run
#   KEEL_BIN=build/tests/integration/testapp  the example's services plus the raw echo
#                         catch-all at /api/*path (the example app mounts its legacy router there)
#   KEEL_CLI=build/framework/keel   Keel is started as `keel run --app ...`, like
#                         ./dev run: that provisions the local PostgreSQL cluster
#                         (.keel/) the example app's databases need
# Exit status: 0, or 1 if any server answered non-2xx/3xx or wrk saw socket
# errors, or a server failed to start.  Ratios below target are reported, not fatal.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_CONNECTIONS:-"32 256"}
WRK_THREADS=${BENCH_THREADS:-2}
NOLOG=${BENCH_NOLOG:-0}
SCALING=${BENCH_SCALING:-1}
PORT0=${BENCH_PORT:-18480}
KEEL_BIN=${KEEL_BIN:-build/tests/integration/testapp}
KEEL_CLI=${KEEL_CLI:-build/framework/keel}
OUT=build/bench
KEEL_LOG=${BENCH_KEEL_LOG:-/dev/null}
LUA=tests/bench/report.lua

say() { printf '==> %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v curl >/dev/null || die "curl is not installed"
[ -x "$KEEL_BIN" ] || die "$KEEL_BIN not found: run ./dev build first"
[ -x "$KEEL_CLI" ] || die "$KEEL_CLI not found: run ./dev build first"

mkdir -p "$OUT"
# Run a snapshot of the build (binary + libkeel) under its own name, so a
# rebuild or a `pkill keel-example` elsewhere during the run cannot take it down.
SNAP=$OUT/snapshot
rm -rf "$SNAP" && mkdir -p "$SNAP"
KEEL_APP=$KEEL_BIN
KEEL_CLI_RUN=$KEEL_CLI
KEEL_ENV=()
if head -c4 "$KEEL_BIN" | grep -q 'ELF'; then
    KEEL_LIB=$(ldd "$KEEL_BIN" 2>/dev/null | awk '$1 == "libkeel.so.0" {print $3}') || true
    cp "$KEEL_BIN" "$SNAP/bench-keel"
    KEEL_APP=$PWD/$SNAP/bench-keel
    # The CLI too: libtool's wrapper script would put the live build's
    # library first on LD_LIBRARY_PATH, so run the real binary behind it.
    cli_real=$KEEL_CLI
    head -c4 "$KEEL_CLI" | grep -q 'ELF' || cli_real=$(dirname "$KEEL_CLI")/.libs/$(basename "$KEEL_CLI")
    if [ -n "$KEEL_LIB" ] && head -c4 "$cli_real" 2>/dev/null | grep -q 'ELF'; then
        cp -L "$KEEL_LIB" "$SNAP/libkeel.so.0"
        cp "$cli_real" "$SNAP/keel"
        KEEL_CLI_RUN=$PWD/$SNAP/keel
        KEEL_ENV=("LD_LIBRARY_PATH=$PWD/$SNAP${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
    fi
fi
# `keel run` execs the app, so the pid we get is the server's.
KEEL_RUN=(env "${KEEL_ENV[@]}" "$KEEL_CLI_RUN" run --app "$KEEL_APP")
say "compiling $OUT/plain_hello"
# shellcheck disable=SC2046 # pkg-config output is a list of flags
gcc -O2 -Wall -Wextra -o "$OUT/plain_hello" tests/bench/plain_hello.c \
    $(pkg-config --cflags --libs libmicrohttpd jansson)

# name -> pid / port
declare -A PID PORT
SERVERS=(keel plain)
[ "$NOLOG" = 1 ] && SERVERS+=(keel_nolog)
[ "$SCALING" = 1 ] && SERVERS+=(keel_1t)

cleanup() {
    local s
    for s in "${!PID[@]}"; do
        kill "${PID[$s]}" 2>/dev/null || true
    done
    for s in "${!PID[@]}"; do
        wait "${PID[$s]}" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" 2>/dev/null; }

start() {
    local name=$1 port=$2
    port_busy "$port" && die "port $port is already in use (set BENCH_PORT)"
    PORT[$name]=$port
    case $name in
    keel)       KEEL_HOST=127.0.0.1 PORT=$port "${KEEL_RUN[@]}" 2>"$KEEL_LOG" & ;;
    keel_nolog) KEEL_HOST=127.0.0.1 PORT=$port KEEL_LOG_REQUESTS=0 "${KEEL_RUN[@]}" 2>"$OUT/keel_nolog.log" & ;;
    keel_1t)    KEEL_HOST=127.0.0.1 PORT=$port KEEL_IO_THREADS=1 "${KEEL_RUN[@]}" 2>/dev/null & ;;
    plain)      "$OUT/plain_hello" "$port" 2>"$OUT/plain.log" & ;;
    esac
    PID[$name]=$!
}

# Dies with the reason when server $1 is no longer running (its exit status or
# the signal that ended it).  Runs in the main shell: `wait` needs the parent.
check_alive() {
    local s=$1 rc=0
    kill -0 "${PID[$s]}" 2>/dev/null && return 0
    wait "${PID[$s]}" 2>/dev/null || rc=$?
    unset "PID[$s]"
    if [ "$rc" -gt 128 ]; then
        die "$s died of signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo '?')); its stderr: $(logfile "$s")"
    fi
    die "$s exited with status $rc; its stderr: $(logfile "$s")"
}

logfile() { case $1 in keel) echo "$KEEL_LOG" ;; *) echo "$OUT/$1.log" ;; esac; }

wait_up() {
    local name=$1 i
    for i in $(seq 600); do # up to 60 s: the first `keel run` creates the cluster
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:${PORT[$name]}/hello/world" && return 0
        if ! kill -0 "${PID[$name]}" 2>/dev/null && [ "$name" != plain ] && [ "$KEEL_LOG" = /dev/null ]; then
            say "$name did not start; running it again to show why:"
            KEEL_HOST=127.0.0.1 PORT=${PORT[$name]} timeout 10 "${KEEL_RUN[@]}" 2>&1 | head -n 20 >&2 || true
        fi
        check_alive "$name"
        sleep 0.1
    done
    die "$name does not answer on port ${PORT[$name]}"
}

i=0
for s in "${SERVERS[@]}"; do
    start "$s" $((PORT0 + i))
    i=$((i + 1))
done
for s in "${SERVERS[@]}"; do wait_up "$s"; done

# Both must do the same work: show one reply of each for each case.
CASES=(/hello/world /api/v1/things)
for c in "${CASES[@]}"; do
    for s in "${SERVERS[@]}"; do
        printf '  %-10s %-16s %s\n' "$s" "$c" "$(curl -s "http://127.0.0.1:${PORT[$s]}$c")" >&2
    done
done

RESULTS=$OUT/results.txt
: >"$RESULTS"

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/${PID[$1]}/stat" 2>/dev/null || echo 0; } # utime + stime

run_wrk() { # server case conns round
    local s=$1 c=$2 n=$3 r=$4 out line t0 t1
    check_alive "$s"
    t0=$(cpu_ticks "$s")
    out=$(wrk -t"$WRK_THREADS" -c"$n" -d"${SECS}s" -s "$LUA" "http://127.0.0.1:${PORT[$s]}$c" 2>&1) ||
        { check_alive "$s"; die "wrk failed against $s: $out"; }
    t1=$(cpu_ticks "$s")
    check_alive "$s"
    line=$(printf '%s\n' "$out" | grep '^BENCH ' | tail -n1)
    [ -n "$line" ] || die "no BENCH line from wrk: $out"
    # Cross-check with wrk's own summary lines.
    local non2xx sockerr
    non2xx=$(printf '%s\n' "$out" | sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
    sockerr=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: *connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' |
              awk '{print $1+$2+$3+$4}')
    # Server CPU time per request (user + system): far less noisy than req/s
    # when wrk and other load share the cores.
    local reqs cpu_us
    reqs=$(printf '%s\n' "$line" | sed -n 's/.*requests=\([0-9]*\).*/\1/p')
    cpu_us=$(awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" 'BEGIN { printf "%.2f", n ? d * 1e6 / hz / n : 0 }')
    line="$line cpu_us=$cpu_us"
    printf '%s %s %s %s %s wrk_non2xx=%s wrk_sockerr=%s\n' "$s" "$c" "$n" "$r" "${line#BENCH }" \
        "${non2xx:-0}" "${sockerr:-0}" >>"$RESULTS"
    printf '  round %s %-10s %-16s c=%-4s %s\n' "$r" "$s" "$c" "$n" "${line#BENCH }" >&2
}

say "warm-up"
for s in "${SERVERS[@]}"; do
    for c in "${CASES[@]}"; do
        wrk -t"$WRK_THREADS" -c32 -d1s "http://127.0.0.1:${PORT[$s]}$c" >/dev/null 2>&1 || true
    done
done

say "$ROUNDS round(s) x ${SECS}s, wrk -t$WRK_THREADS, connections: $CONNS, $(nproc) cores"
for r in $(seq "$ROUNDS"); do
    # Alternate which server goes first so drift (thermal, page cache) is shared.
    order=("${SERVERS[@]}")
    if [ $((r % 2)) -eq 0 ]; then
        rev=(); for ((k = ${#order[@]} - 1; k >= 0; k--)); do rev+=("${order[k]}"); done
        order=("${rev[@]}")
    fi
    for c in "${CASES[@]}"; do
        for n in $CONNS; do
            for s in "${order[@]}"; do run_wrk "$s" "$c" "$n" "$r"; done
        done
    done
done

# Peak RSS of each server, in KiB, before they are stopped.
declare -A RSS
for s in "${SERVERS[@]}"; do
    RSS[$s]=$(awk '/^VmHWM:/ {print $2}' "/proc/${PID[$s]}/status" 2>/dev/null || echo 0)
    check_alive "$s"
done

echo
awk -v rss_keel="${RSS[keel]}" -v rss_plain="${RSS[plain]}" -v rss_nolog="${RSS[keel_nolog]:-}" \
    -v nolog="$NOLOG" -v scaling="$SCALING" -v cases="${CASES[*]}" -v conns="$CONNS" \
    -f tests/bench/summary.awk "$RESULTS"

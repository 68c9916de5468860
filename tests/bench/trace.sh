#!/usr/bin/env bash
# tests/bench/trace.sh - what tracing costs: GET /todo/:id on two instances
# of the example app side by side on one cluster, one with tracing off and
# one tracing every request and exporting OTLP/HTTP to a local receiver
# (otlp_sink.c), wrk on loopback in interleaved rounds at 32 and 256
# connections.  Reports traced/untraced (target >= 0.90), the spans exported
# and dropped (from /__keel/metrics), and non-2xx or socket errors (none).
# Runs from the repo root after ./dev build.  BENCH_ROUNDS (3), BENCH_SECONDS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
OUT=$PWD/build/bench/trace
KEEL=$PWD/build/framework/keel
APP=$PWD/build/services/keel-example
OFF=18590 ON=18591 SINK=18592
say() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$OUT"
gcc -O2 -Wall -Wextra -o "$OUT/otlp_sink" tests/bench/otlp_sink.c $(pkg-config --cflags --libs libmicrohttpd)

ROOT=$OUT/root
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ -f "$ROOT/.keel/pg.json" ]; then
        dir=$(sed -n 's/.*"cluster": *"\(.*\)".*/\1/p' "$ROOT/.keel/pg.json")
        runuser -u postgres -- "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

rm -rf "$ROOT"; mkdir -p "$ROOT"; chmod 711 "$ROOT"; cp -r migrations "$ROOT/"
"$OUT/otlp_sink" $SINK >"$OUT/sink.log" 2>&1 &
SINK_PID=$!; PIDS+=($SINK_PID)

# start PORT [env...]: keel run in $ROOT until the app answers.
start() {
    local port=$1; shift
    (cd "$ROOT" && env KEEL_APP_ROOT="$ROOT" KEEL_HOST=127.0.0.1 "$@" "$KEEL" run --app "$APP" --port "$port") \
        >"$OUT/keel-$port.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 600); do curl -sf "localhost:$port/hello/x" >/dev/null 2>&1 && return 0; sleep 0.05; done
    cat "$OUT/keel-$port.log" >&2; exit 1
}
say "starting the untraced and the traced app"
start $OFF
start $ON OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK OTEL_SERVICE_NAME=bench
curl -sf -X POST "localhost:$OFF/todo" -H 'Content-Type: application/json' -d '{"title":"benchmark item"}' >/dev/null

run_wrk() { # port conns -> "reqs non2xx errors"
    local out
    out=$(wrk -t2 -c"$2" -d"${SECS}s" "http://127.0.0.1:$1/todo/1" 2>&1)
    echo "$(awk '/^Requests\/sec/ {print $2}' <<<"$out") $(awk '/Non-2xx/ {print $NF}' <<<"$out" | grep . || echo 0) \
$(awk '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out" | grep . || echo 0)"
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A R
BAD=0
for c in 32 256; do
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
        for who in $order; do
            port=$OFF; [ "$who" = on ] && port=$ON
            res=$(run_wrk $port $c)
            say "c=$c round $r tracing $who: $res"
            set -- $res
            [ "$2" != 0 ] || [ "$3" != 0 ] && BAD=1
            R[$who$c]="${R[$who$c]:-} $1"
        done
    done
done
metric() { curl -sf "localhost:$ON/__keel/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
sleep 1.5 # the last batch
EXPORTED=$(metric keel_trace_spans_exported_total)
DROPPED=$(metric keel_trace_spans_dropped_total)
FAILED=$(metric keel_trace_spans_failed_total)
kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true

echo
printf '%-22s %14s %14s %8s\n' "GET /todo/:id" "untraced r/s" "traced r/s" "ratio"
for c in 32 256; do
    off=$(median <<<"${R[off$c]}"); on=$(median <<<"${R[on$c]}")
    printf '%-22s %14.0f %14.0f %8.3f\n' "-c$c" "$off" "$on" "$(echo "$on / $off" | bc -l)"
done
echo "target: traced/untraced >= 0.90 (tracing every request, exporting to a local receiver)"
echo "spans exported $EXPORTED, dropped (queue full) $DROPPED, failed exports $FAILED; receiver: $(cat "$OUT/sink.log")"
[ "$BAD" -eq 0 ] || { echo "non-2xx responses or socket errors seen" >&2; exit 1; }

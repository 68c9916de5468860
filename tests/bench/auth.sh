#!/usr/bin/env bash
# tests/bench/auth.sh - what authentication and middleware cost: GET
# /hello/:name on the example app, with a Bearer token its auth handler
# checks (the operator's token, compared in constant time) and the global
# timing middleware around it, against the same endpoint on the test app,
# which has neither.  Same build, same handler, same port layout; wrk on
# loopback, the two servers alternating first/second each round.  Prints
# the ratio of requests per second (target: within 5%).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
CONNS=${BENCH_AUTH_CONNECTIONS:-32}
OUT=build/bench
mkdir -p "$OUT"
say() { printf '==> %s\n' "$*" >&2; }
TOKEN=bench-admin-token-0123456789
root=$(mktemp -d /tmp/keel-bench-auth-XXXXXX)
chmod 711 "$root"
cp -r migrations "$root/"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -f "$root/.keel/pg.json" ] && (cd "$root" && KEEL_APP_ROOT="$root" "$OLDPWD/build/framework/keel" db stop >/dev/null 2>&1 || true)
    rm -rf "$root"
}
trap cleanup EXIT
start() { # name port app
    KEEL_APP_ROOT="$root" PORT=$2 KEEL_HOST=127.0.0.1 KEEL_LOG_REQUESTS=0 KEEL_SECRET_ADMIN_TOKEN=$TOKEN \
        KEEL_SECRET_EXTERNAL_DB_PASSWORD=unused KEEL_SECRET_GITHUB_WEBHOOK_SECRET=unused \
        build/framework/keel run --app "$3" >"$OUT/auth-$1.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$2/hello/x" >/dev/null 2>&1 && return 0; sleep 0.1; done
    say "$1 did not start: $(tail -5 "$OUT/auth-$1.log")"
    exit 1
}
start with 18491 build/services/keel-example
start without 18492 build/tests/integration/testapp
curl -sf -H "Authorization: Bearer $TOKEN" http://127.0.0.1:18491/hello/x -D - -o /dev/null | grep -qi '^server-timing:' ||
    { say "the example app did not run its middleware"; exit 1; }
rps() { # port header...
    local port=$1; shift
    wrk -t2 -c"$CONNS" -d"${SECS}s" "$@" "http://127.0.0.1:$port/hello/x" 2>&1 |
        awk '/Requests\/sec/ {print $2} /Non-2xx/ {bad=1} /Socket errors/ {bad=1} END {if (bad) print "ERRORS"}'
}
declare -a with_runs without_runs
for r in $(seq 1 "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
        w=$(rps 18491 -H "Authorization: Bearer $TOKEN"); o=$(rps 18492)
    else
        o=$(rps 18492); w=$(rps 18491 -H "Authorization: Bearer $TOKEN")
    fi
    case "$w$o" in *ERRORS*) say "errors or non-2xx answers in round $r"; exit 1 ;; esac
    with_runs+=("$w"); without_runs+=("$o")
    say "round $r: with auth + middleware $w req/s, without $o req/s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mw=$(median "${with_runs[@]}"); mo=$(median "${without_runs[@]}")
ratio=$(echo "scale=3; $mw / $mo" | bc)
printf 'auth+middleware: GET /hello/:name, %s connections, median of %s x %ss: %s req/s with the auth handler and the timing middleware, %s req/s without: ratio %s (target >= 0.95)\n' \
    "$CONNS" "$ROUNDS" "$SECS" "$mw" "$mo" "$ratio" | tee "$OUT/auth-summary.txt"

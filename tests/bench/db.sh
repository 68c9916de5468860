#!/usr/bin/env bash
# tests/bench/db.sh - the database half of ./dev bench:
#   1. GET /todo/:id on Keel against plain_todo.c (libmicrohttpd + libpq, same
#      query and JSON, one blocking connection per I/O thread) and against
#      pgbench running the same SELECT prepared without a pipeline (-c 8 -j 2),
#      wrk on loopback, interleaved rounds; Keel with one I/O thread too
#      (scaling); system calls per request (strace -c -f); peak RSS;
#   2. applying 1,000 small migrations with Keel against psql applying the same
#      files (each in its own transaction, in one session);
#   3. cold (initdb) and warm start of `keel run` until the app listens.
# Runs from the repo root after ./dev build.  BENCH_ROUNDS (3), BENCH_SECONDS (5).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-5}
OUT=$PWD/build/bench/db
KEEL=$PWD/build/framework/keel
APP=$PWD/build/services/keel-example
KPORT=18580 PPORT=18581
say() { printf '==> %s\n' "$*" >&2; }

mkdir -p "$OUT"
gcc -O2 -Wall -Wextra -o "$OUT/plain_todo" tests/bench/plain_todo.c \
    $(pkg-config --cflags --libs libmicrohttpd jansson libpq) -lpthread
gcc -O2 -Wall -Wextra -Iframework/include $(pkg-config --cflags libpq jansson) -o "$OUT/migrate_bench" \
    tests/bench/migrate_bench.c -Lbuild/framework/.libs -Wl,-rpath,"$PWD/build/framework/.libs" -lkeel \
    $(pkg-config --libs libpq jansson)

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

# Starts keel run in $ROOT on $KPORT; sets ELAPSED to the seconds until it
# listens and KEEL_PID.
start_keel() {
    local log=$OUT/keel.log t0 t1
    t0=$(date +%s.%N)
    (cd "$ROOT" && KEEL_APP_ROOT="$ROOT" KEEL_HOST=127.0.0.1 exec "$KEEL" run --app "$APP" --port $KPORT) >"$log" 2>&1 &
    KEEL_PID=$!
    PIDS+=($KEEL_PID)
    for _ in $(seq 600); do
        grep -q 'listening on' "$log" 2>/dev/null && break
        sleep 0.02
    done
    t1=$(date +%s.%N)
    grep -q 'listening on' "$log" || { cat "$log" >&2; exit 1; }
    ELAPSED=$(echo "$t1 - $t0" | bc -l)
}

stop_keel() {
    kill "$KEEL_PID"; wait "$KEEL_PID" 2>/dev/null || true
}

rm -rf "$ROOT"; mkdir -p "$ROOT"; chmod 711 "$ROOT"; cp -r migrations "$ROOT/"
say "keel run: cold start (creates the cluster)"
start_keel; COLD=$ELAPSED; stop_keel
say "keel run: warm start (cluster running)"
start_keel; WARM=$ELAPSED

curl -sf -X POST "localhost:$KPORT/todo" -H 'Content-Type: application/json' -d '{"title":"benchmark item"}' >/dev/null
URI=$(cd "$ROOT" && KEEL_APP_ROOT="$ROOT" "$KEEL" db conn-uri todo --write)
"$OUT/plain_todo" $PPORT "$URI" &
PIDS+=($!)
sleep 0.3
curl -sf "localhost:$PPORT/todo/1" >/dev/null || { echo "plain_todo does not answer" >&2; exit 1; }

run_wrk() { # port conns -> "reqs p99ms non2xx errors"
    local out
    out=$(wrk -t2 -c"$2" -d"${SECS}s" --latency "http://127.0.0.1:$1/todo/1" 2>&1)
    local rps p99 non2xx errs
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out"); errs=$(awk '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out")
    echo "$rps ${p99:-0} ${non2xx:-0} ${errs:-0}"
}

declare -A K P
BAD=0
for c in 32 256; do
    for r in $(seq "$ROUNDS"); do
        if [ $((r % 2)) -eq 1 ]; then order="keel plain"; else order="plain keel"; fi
        for who in $order; do
            port=$KPORT; [ "$who" = plain ] && port=$PPORT
            res=$(run_wrk $port $c)
            say "c=$c round $r $who: $res"
            set -- $res
            [ "$3" != 0 ] || [ "$4" != 0 ] && BAD=1
            if [ "$who" = keel ]; then K[$c]="${K[$c]:-} $1"; K[p$c]="${K[p$c]:-} $2"; else P[$c]="${P[$c]:-} $1"; P[p$c]="${P[p$c]:-} $2"; fi
        done
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# pgbench: the same SELECT, prepared, 8 clients on 2 threads, one statement at
# a time per client (no pipeline); rounds interleaved with nothing else running.
PGBENCH=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -n1)
PGB_SCRIPT=$OUT/pgbench_select.sql
echo 'SELECT id, title, done FROM todo_item WHERE id = 1;' >"$PGB_SCRIPT"
PGB=""
for r in $(seq "$ROUNDS"); do
    tps=$("$PGBENCH" -n -M prepared -c 8 -j 2 -T "$SECS" -f "$PGB_SCRIPT" "$URI" 2>/dev/null |
          awk '/^tps = / {print $3; exit}')
    say "pgbench round $r: $tps tps"
    PGB="$PGB ${tps:-0}"
done

# Peak RSS of Keel so far (KiB), then system calls per request under strace.
KEEL_RSS=$(awk '/^VmHWM:/ {print $2}' "/proc/$KEEL_PID/status" 2>/dev/null || echo 0)
STRACE_OUT=$OUT/strace.txt
if command -v strace >/dev/null; then
    strace -c -f -p "$KEEL_PID" -o "$STRACE_OUT" 2>/dev/null &
    SPID=$!
    sleep 1
    sreqs=$(wrk -t2 -c32 -d3s "http://127.0.0.1:$KPORT/todo/1" 2>&1 | awk '/requests in/ {print $1}')
    kill -INT "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true
fi

# Scaling: Keel with one I/O thread.
stop_keel
(cd "$ROOT" && KEEL_APP_ROOT="$ROOT" KEEL_HOST=127.0.0.1 KEEL_IO_THREADS=1 exec "$KEEL" run --app "$APP" --port $KPORT) \
    >"$OUT/keel_1t.log" 2>&1 &
KEEL_PID=$!; PIDS+=($KEEL_PID)
for _ in $(seq 300); do curl -sf "localhost:$KPORT/todo/1" >/dev/null 2>&1 && break; sleep 0.05; done
declare -A T
for c in 32 256; do
    for r in $(seq "$ROUNDS"); do
        res=$(run_wrk $KPORT $c); set -- $res
        say "c=$c round $r keel (1 I/O thread): $res"
        [ "$3" != 0 ] || [ "$4" != 0 ] && BAD=1
        T[$c]="${T[$c]:-} $1"
    done
done

# Migrations: 1,000 files, Keel's migrator against psql in one session.
MIG=$OUT/mig1000; rm -rf "$MIG"; mkdir -p "$MIG"
for i in $(seq 1000); do echo "CREATE TABLE t_$i (id int PRIMARY KEY, v text);" >"$MIG/${i}_t$i.up.sql"; done
ADMIN=$(cd "$ROOT" && KEEL_APP_ROOT="$ROOT" "$KEEL" db conn-uri todo --admin)
psql -q "$ADMIN" -c 'CREATE SCHEMA IF NOT EXISTS bench_keel; CREATE SCHEMA IF NOT EXISTS bench_psql' >/dev/null
KEEL_MS=$("$OUT/migrate_bench" "$ADMIN&options=-csearch_path%3Dbench_keel" "$MIG" | awk '{print $2}')
SCRIPT=$OUT/psql_script.sql; : >"$SCRIPT"
for i in $(seq 1000); do printf 'BEGIN;\n\\i %s/%d_t%d.up.sql\nCOMMIT;\n' "$MIG" "$i" "$i" >>"$SCRIPT"; done
t0=$(date +%s%N)
psql -q -v ON_ERROR_STOP=1 "$ADMIN&options=-csearch_path%3Dbench_psql" -f "$SCRIPT" >/dev/null
PSQL_MS=$(( ($(date +%s%N) - t0) / 1000000 ))

echo
PG_TPS=$(median <<<"$PGB")
printf '%-22s %12s %12s %8s %10s %10s %12s %8s %12s\n' "GET /todo/:id" "keel req/s" "plain req/s" "ratio" "keel p99" \
    "plain p99" "pgbench tps" "ratio" "1-thread r/s"
for c in 32 256; do
    k=$(median <<<"${K[$c]}"); p=$(median <<<"${P[$c]}")
    kp=$(median <<<"${K[p$c]}"); pp=$(median <<<"${P[p$c]}")
    t=$(median <<<"${T[$c]}")
    printf '%-22s %12.0f %12.0f %8.2f %8.2fms %8.2fms %12.0f %8.2f %12.0f\n' "-c$c" "$k" "$p" "$(echo "$k / $p" | bc -l)" \
        "$kp" "$pp" "$PG_TPS" "$(echo "$k / $PG_TPS" | bc -l)" "$t"
done
echo "targets: keel/plain >= 2 (at the very least 1.3); keel/pgbench (-M prepared -c 8 -j 2, no pipeline) >= 1.0"
printf 'keel peak RSS %.1f MB\n' "$(echo "$KEEL_RSS / 1024" | bc -l)"
if [ -s "$STRACE_OUT" ] && [ -n "${sreqs:-}" ]; then
    printf 'system calls per request (strace -c -f, %s requests at c32):' "$sreqs"
    awk -v n="$sreqs" '$NF ~ /^(futex|epoll_wait|epoll_ctl|sendto|recvfrom|read|write|writev|poll)$/ {
        printf " %s %.2f", $NF, $4 / n }
        $NF == "total" { printf " | total %.2f", $4 / n }' "$STRACE_OUT"
    echo
fi
printf '1,000 migrations: keel %.0f ms, psql (same files, one transaction each) %d ms, ratio %.2f (target <= 1.5)\n' \
    "$KEEL_MS" "$PSQL_MS" "$(echo "$KEEL_MS / $PSQL_MS" | bc -l)"
printf 'keel run start until listening: cold (initdb) %.2f s, warm %.2f s\n' "$COLD" "$WARM"
[ "$BAD" -eq 0 ] || { echo "non-2xx responses or socket errors seen" >&2; exit 1; }

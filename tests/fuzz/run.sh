#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS - builds the libFuzzer targets (tests/fuzz/build.sh)
# and runs each for SECONDS, one after the other, on a copy of its corpus
# (tests/fuzz/corpus/<target>), so that the checked-in seeds only change
# when someone copies new inputs there on purpose.  Prints the executions of
# each target and exits non-zero when any of them crashed, leaked, hung, ran
# out of memory or had a sanitizer report; the input that did it is kept in
# $OUT/artifacts/<target>/ and the report's head is printed.
#
#   KEEL_FUZZ_OUT      build and artifact directory (default build/fuzz)
#   KEEL_FUZZ_TARGETS  the targets to run (default: all)
set -uo pipefail
SECS=${1:-60}
case $SECS in '' | *[!0-9]*) echo "usage: tests/fuzz/run.sh SECONDS" >&2; exit 2 ;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${KEEL_FUZZ_OUT:-$ROOT/build/fuzz}
TARGETS=${KEEL_FUZZ_TARGETS:-"router schema migrate secrets webhook infra http_client framing"}
export KEEL_FUZZ_TARGETS="$TARGETS"

bash "$HERE/build.sh" "$OUT" || { echo "fuzz: build failed" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/keel-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# UBSan and ASan stop at the first report; leaks count as failures.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

failed=0
for t in $TARGETS; do
    corpus="$WORK/$t" artifacts="$OUT/artifacts/$t/" log="$WORK/$t.log"
    mkdir -p "$corpus" "$artifacts"
    cp -R "$HERE/corpus/$t/." "$corpus/" 2>/dev/null || true
    dict=()
    [ -f "$HERE/$t.dict" ] && dict=(-dict="$HERE/$t.dict")
    # -timeout: one input may take 10 s; `timeout`: the whole run may not
    # overstay by more than a minute (loading, a hang libFuzzer misses).  A
    # single malloc beyond the RSS limit is an out-of-memory failure too.
    rc=0
    timeout -k 10 $((SECS + 60)) "$OUT/fuzz_$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$artifacts" "$corpus" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|fuzz invariant failed' "$log"; then
        failed=$((failed + 1))
        echo "fuzz_$t: FAILED (exit $rc) after ${execs:-?} executions; inputs in $artifacts"
        grep -E -m1 -A25 'fuzz invariant failed|ERROR: |runtime error:|==[0-9]+==' "$log" | head -n 40 | sed 's/^/    /'
    else
        echo "fuzz_$t: ${execs:-?} executions in ${SECS} s, no crash, leak or sanitizer report"
    fi
done
[ "$failed" -eq 0 ]

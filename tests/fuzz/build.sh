#!/usr/bin/env bash
# tests/fuzz/build.sh OUTDIR - builds the libFuzzer targets of tests/fuzz into
# OUTDIR (OUTDIR/fuzz_<target>), with clang, straight from the framework
# sources each one needs.  It stays out of automake on purpose: the gcc build
# and its flags are untouched, and a fuzz build never lands in build/ or
# build-asan/ by accident.
#
# Framework sources are compiled once into OUTDIR/obj with coverage
# instrumentation (fuzzer-no-link), so that libFuzzer is guided by the
# framework's branches and not only the target's.  A target that needs a
# file's static functions #includes that .c file and does not link it.
# Rebuilds only what is older than its sources (or than this script).
set -euo pipefail
OUT=${1:?usage: tests/fuzz/build.sh OUTDIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CC=${KEEL_FUZZ_CC:-clang}

# The framework sources (framework/lib/<path>.c) each target links.
declare -A DEPS=(
    [router]="http/router error"
    [schema]="http/schema arena error"
    [migrate]="error sql/pg_error"
    [secrets]="error lazy config observe/span arena"
    [webhook]="secrets/webhook secrets/secure error observe/span arena"
    [infra]="sql/infra http/cors http/framing secrets/secrets http/schema arena error lazy config observe/span observe/trace_config observe/http_client"
    [http_client]="observe/http_client error"
    [framing]="http/framing arena error"
)
TARGETS=${KEEL_FUZZ_TARGETS:-"router schema migrate secrets webhook infra http_client framing"}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "tests/fuzz/build.sh: $CC not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi

mkdir -p "$OUT/obj"
PKGS=(jansson libpq libsodium libmicrohttpd)
read -ra PKG_CFLAGS <<<"$(pkg-config --cflags "${PKGS[@]}")"
read -ra PKG_LIBS <<<"$(pkg-config --libs "${PKGS[@]}")"
CFLAGS=(-std=c11 -D_GNU_SOURCE -g -O1 -pthread -fno-omit-frame-pointer
        -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
        -fno-sanitize-recover=all
        -I"$ROOT/framework/include" -I"$ROOT/framework/lib" -I"$HERE" "${PKG_CFLAGS[@]}")
LIBS=("${PKG_LIBS[@]}" -lm)

# Every header a framework or target file may include: a change to any of
# them rebuilds everything (simple; the whole build takes well under a minute).
HEADERS=("$ROOT"/framework/include/keel/*.h "$ROOT"/framework/lib/*.h "$ROOT"/framework/lib/*/*.h "$HERE"/fuzz.h
         "$HERE"/build.sh)

# stale OUTPUT INPUT...: true when OUTPUT is missing or older than an input.
stale() {
    local out=$1 f
    shift
    [ -e "$out" ] || return 0
    for f in "$@"; do
        [ "$f" -nt "$out" ] && return 0
    done
    return 1
}

for t in $TARGETS; do
    [ -n "${DEPS[$t]+x}" ] || { echo "tests/fuzz/build.sh: unknown target $t" >&2; exit 1; }
    objs=()
    for d in ${DEPS[$t]}; do
        src="$ROOT/framework/lib/$d.c" obj="$OUT/obj/${d//\//_}.o"
        if stale "$obj" "$src" "${HEADERS[@]}"; then
            "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
        fi
        objs+=("$obj")
    done
    src="$HERE/fuzz_$t.c" bin="$OUT/fuzz_$t"
    # The framework .c files the target #includes are inputs too.
    mapfile -t included < <(sed -n 's|^#include "\(\.\./\.\./framework/lib/[a-z_/]*\.c\)"$|'"$HERE"'/\1|p' "$src")
    if stale "$bin" "$src" "${objs[@]}" "${included[@]}" "${HEADERS[@]}"; then
        echo "==> building fuzz_$t" >&2
        "$CC" "${CFLAGS[@]}" -fsanitize=fuzzer,address,undefined "$src" "${objs[@]}" "${LIBS[@]}" -o "$bin"
    fi
done

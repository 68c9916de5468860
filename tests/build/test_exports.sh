#!/bin/sh
# tests/build/test_exports.sh - the shared library exports its public API
# and nothing else: every defined dynamic symbol of libkeel.so is a keel_
# function or object declared in framework/include/keel/ (the library is
# built with -fvisibility=hidden; the public headers push default
# visibility), and the private keel__ functions and the private keel_pool_*
# and keel_pipe_* ones stay inside.  libkeel-client.so exports keel/client.h
# alone, and only it links libcurl; libkeel-test exports keel/test.h alone.
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
lib=$(ls framework/.libs/libkeel.so.*.*.* 2>/dev/null | head -n1)
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

echo "1..11"
[ -n "$lib" ] && [ -f "$lib" ]
ok $? "the build has a shared libkeel ($lib)"
# AddressSanitizer adds an __odr_asan.<name> indicator beside each exported
# global of an instrumented build: its own, not the library's.
syms=$(nm -D --defined-only "$lib" 2>/dev/null | awk '$2 ~ /^[TDBRV]$/ && $3 !~ /^__odr_asan\./ {print $3}' | sort)
count=$(printf '%s\n' "$syms" | grep -c .)
[ "$count" -gt 100 ]
ok $? "it exports the public API ($count symbols)"
others=$(printf '%s\n' "$syms" | grep -v '^keel_[a-z0-9]' | tr '\n' ' ')
[ -z "$others" ]
ok $? "every exported symbol is keel_<name> (others: ${others:-none})"
private=$(printf '%s\n' "$syms" | grep -E '^keel__|^keel_pool_|^keel_pconn_|^keel_pipe_' | tr '\n' ' ')
[ -z "$private" ]
ok $? "no private function is exported (found: ${private:-none})"
# Each exported name is declared in a public header.
undeclared=""
for s in $syms; do
    grep -qw "$s" "$srcdir"/framework/include/keel/*.h || undeclared="$undeclared $s"
done
[ -z "$undeclared" ]
ok $? "each exported name is declared in framework/include/keel/ (undeclared:${undeclared:- none})"
printf '%s\n' "$syms" | grep -qx keel_main && printf '%s\n' "$syms" | grep -qx keel_db_query_row_args
ok $? "keel_main and keel_db_query_row_args are exported"
# The example app is built against the shared library alone.
nm -D --undefined-only services/.libs/keel-example 2>/dev/null | grep -q ' keel_main$' ||
    nm -D --undefined-only services/keel-example 2>/dev/null | grep -q ' keel_main$'
ok $? "the example app takes keel_main from the shared library"
clib=$(ls framework/.libs/libkeel-client.so.*.*.* 2>/dev/null | head -n1)
csyms=$(nm -D --defined-only "$clib" 2>/dev/null | awk '$2 ~ /^[TDBRV]$/ && $3 !~ /^__odr_asan\./ {print $3}' | sort | tr '\n' ' ')
[ "$csyms" = "keel_client_call keel_client_free keel_client_new keel_client_raw keel_client_set_header keel_client_set_max_response keel_client_set_timeout " ]
ok $? "libkeel-client exports keel/client.h's functions and nothing else (${csyms:-none})"
readelf -d "$clib" 2>/dev/null | grep NEEDED | grep -q 'libcurl' &&
    nm -D --undefined-only "$clib" | grep -q ' keel_schema_encode$'
ok $? "libkeel-client links libcurl and takes libkeel's API from the program (keel-client.pc requires keel)"
! readelf -d "$lib" 2>/dev/null | grep NEEDED | grep -q 'libcurl'
ok $? "libkeel does not link libcurl: an app that only serves never loads it"
tlib=$(ls framework/.libs/libkeel-test.so.*.*.* 2>/dev/null | head -n1)
tsyms=$(nm -D --defined-only "$tlib" 2>/dev/null | awk '$2 ~ /^[TDBRV]$/ && $3 !~ /^__odr_asan\./ {print $3}' | sort | tr '\n' ' ')
[ "$tsyms" = "keel_test_client keel_test_database keel_test_request keel_test_setup_ms keel_test_start keel_test_stop keel_test_url " ]
ok $? "libkeel-test exports keel/test.h's functions and nothing else (${tsyms:-none})"
exit $fail

#!/bin/sh
# tests/valgrind.sh - runs a test program under valgrind for ./dev test's leak
# pass: any leak or memory error makes it exit 99, which the TAP driver counts
# as an error.  Servers the tests start are run under valgrind by the harness
# itself (KEEL_TEST_VALGRIND=1).
exec valgrind -q --leak-check=full --show-leak-kinds=definite,indirect \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$@"

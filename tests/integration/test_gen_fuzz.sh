#!/bin/sh
# tests/integration/test_gen_fuzz.sh - keel gen's generators against random
# app models full of names, paths and docs hostile to generated code
# (tests/js/gen_fuzz.mjs), and against the test app's model: the TypeScript
# clients compile under tsc --strict and import without running anything of
# the model, the C clients compile with the project's warnings (gcc, C11),
# the OpenAPI documents validate.  A new seed each run, printed;
# KEEL_GEN_FUZZ_SEED repeats one, KEEL_GEN_FUZZ_MODELS sets how many models
# (default 30).  Skipped without the test's npm packages (tests/js).
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
cli=${KEEL_CLI:?run through make check}
app=${KEEL_TESTAPP:?run through make check}
js="$srcdir/tests/js"
if [ ! -x "$js/node_modules/.bin/tsc" ]; then
    echo "1..0 # SKIP the test's npm packages are not installed (./dev test installs them in tests/js)"
    exit 0
fi
work=$(mktemp -d /tmp/keel-gen-fuzz-XXXXXX)

# The project's own warning flags, as configure sets them.
warn=$(sed -n 's/.*KEEL_WARN_CFLAGS\], \["\([^"]*\)"\].*/\1/p' "$srcdir/configure.ac")
cc="gcc -std=c11 $warn -I$srcdir/framework/include $(pkg-config --cflags jansson 2>/dev/null)"

if ! "$cli" app-model --app "$app" >"$work/testapp.json"; then
    echo "Bail out! keel app-model --app $app failed"
    exit 1
fi
node "$js/gen_fuzz.mjs" --keel "$cli" --dir "$work/models" --cc "$cc" --models "${KEEL_GEN_FUZZ_MODELS:-30}" \
    ${KEEL_GEN_FUZZ_SEED:+--seed "$KEEL_GEN_FUZZ_SEED"} "$work/testapp.json"
rc=$?
# What failed stays for a look (the last line said where).
[ "$rc" -eq 0 ] && rm -rf "$work"
exit "$rc"

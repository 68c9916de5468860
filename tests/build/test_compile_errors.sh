#!/bin/sh
# tests/build/test_compile_errors.sh - mistakes in declaring endpoints and field
# tables are compile errors that say what to write, with gcc and with clang,
# with and without -Werror; correct declarations compile without a warning.
# Small programs are checked against the headers in framework/include
# (-fsyntax-only: nothing is linked).
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
work=$(mktemp -d /tmp/keel-compile-errors-XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

# The project's own warning flags, as configure sets them.
warn=$(sed -n 's/.*KEEL_WARN_CFLAGS\], \["\([^"]*\)"\].*/\1/p' "$srcdir/configure.ac")
deps=$(pkg-config --cflags libmicrohttpd jansson libpq 2>/dev/null)

# program FILE PARAMS FIELD: an app declaring a typed endpoint (a file-scope
# table, as apps write them) whose handler takes PARAMS after keel_req *, and
# a request table whose second field is FIELD.
program() {
    cat > "$1" <<EOF
#include <keel/keel.h>

typedef struct {
    const char *name; char *title; int64_t n; bool has_n; int has_m;
    const char **tags; size_t n_tags; int *ids; size_t n_ids;
} hello_req;
typedef struct { const char *greeting; } hello_resp;

static const keel_field hello_req_fields[] = KEEL_FIELDS(
    KEEL_STRING(hello_req, name, KEEL_IN_PATH),
    $3,
    KEEL_ARRAY_STRING(hello_req, tags, n_tags, KEEL_OPTIONAL)
);
static const keel_field hello_resp_fields[] = {
    KEEL_STRING(hello_resp, greeting),
    KEEL_END
};

static keel_error *get(keel_req *req, $2);
static keel_error *put(keel_req *req, const hello_req *in, hello_resp *out);

const keel_service hello_service = {
    .name = "hello",
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/hello/:name", get, hello_req, hello_resp),
        KEEL_TYPED("PUT", "/hello/:name", put, hello_req, hello_resp, KEEL_PRIVATE),
        KEEL_ENDPOINT_END
    },
};

static keel_error *get(keel_req *req, $2)
{
    (void)req; (void)in; (void)out;
    return NULL;
}

static keel_error *put(keel_req *req, const hello_req *in, hello_resp *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
EOF
}

good_params='const hello_req *in, hello_resp *out'
good_field='KEEL_INT64_OPT(hello_req, n, has_n)'
program "$work/good.c" "$good_params" "$good_field"
program "$work/swapped.c" 'const hello_resp *in, hello_req *out' "$good_field"
program "$work/field.c" "$good_params" 'KEEL_INT64(hello_req, title)'
program "$work/flag.c" "$good_params" 'KEEL_INT64_OPT(hello_req, n, has_m)'
program "$work/array.c" "$good_params" 'KEEL_ARRAY_INT64(hello_req, ids, n_ids)'

# compile CC FILE FLAGS...: status of cc -fsyntax-only, its output in $work/out.
compile() {
    cc=$1 file=$2
    shift 2
    # shellcheck disable=SC2086 # $deps holds several flags
    "$cc" -std=c11 -D_GNU_SOURCE -fsyntax-only "$@" -I"$srcdir/framework/include" $deps "$file" \
        >"$work/out" 2>&1
}

# has TEXT: the last compiler output contains TEXT.
has() { grep -qF -- "$1" "$work/out"; }

# show: the last compiler output, as TAP diagnostics, when a check failed.
show() { [ "$1" -eq 0 ] || sed 's/^/# /' "$work/out" | head -20; }

handler_msg='handler get must be: keel_error *get(keel_req *, const hello_req *, hello_resp *)'
field_msg='KEEL_INT64(hello_req, title): member title of hello_req must be int64_t'
flag_msg='KEEL_INT64_OPT(hello_req, n, has_m): presence flag has_m of hello_req must be bool'
array_msg='KEEL_ARRAY_INT64(hello_req, ids, n_ids): member ids of hello_req must be int64_t * (or const int64_t *)'

echo "1..17"
[ -n "$warn" ]; ok $? "the project's warning flags are found in configure.ac ($warn)"
for cc in gcc clang; do
    if ! command -v "$cc" >/dev/null; then
        echo "# $cc is not installed: ./dev installs it"
    fi
    # shellcheck disable=SC2086 # $warn holds several flags
    compile "$cc" "$work/good.c" $warn -Wno-error
    r=$?; [ $r -eq 0 ] && [ ! -s "$work/out" ]; r=$?; show $r
    ok $r "$cc: a correct endpoint and field table compile without any diagnostic ($warn)"
    # shellcheck disable=SC2086
    compile "$cc" "$work/good.c" $warn -Werror
    r=$?; show $r; ok $r "$cc: and with -Werror"

    compile "$cc" "$work/swapped.c"
    r=$?; [ $r -ne 0 ] && has "$handler_msg"; r=$?; show $r
    ok $r "$cc: a handler whose types do not match its endpoint is an error without -Werror, saying the signature"
    # shellcheck disable=SC2086
    compile "$cc" "$work/swapped.c" $warn -Werror
    r=$?; [ $r -ne 0 ] && has "$handler_msg" && ! has "pointer type mismatch"; r=$?; show $r
    ok $r "$cc: with the project's flags and -Werror the same message, without the old conditional's warning"

    compile "$cc" "$work/field.c"
    r=$?; [ $r -ne 0 ] && has "$field_msg" && ! has "association"; r=$?; show $r
    ok $r "$cc: KEEL_INT64 on a char * member fails naming the field and the type it must be, not _Generic's error"
    # shellcheck disable=SC2086
    compile "$cc" "$work/field.c" $warn -Werror
    r=$?; [ $r -ne 0 ] && has "$field_msg"; r=$?; show $r
    ok $r "$cc: and with the project's flags and -Werror"

    compile "$cc" "$work/flag.c"
    r=$?; [ $r -ne 0 ] && has "$flag_msg"; r=$?; show $r
    ok $r "$cc: a presence flag that is not bool fails naming it"

    compile "$cc" "$work/array.c"
    r=$?; [ $r -ne 0 ] && has "$array_msg"; r=$?; show $r
    ok $r "$cc: an array member of the wrong element type fails naming it"
done
# Not a check: the messages as the compilers print them, for the log.
compile gcc "$work/swapped.c"; grep -m1 'static assert' "$work/out" | sed 's/^/# gcc: /'
compile clang "$work/field.c"; grep -m1 'static_assert\|static assert' "$work/out" | sed 's/^/# clang: /'
exit $fail

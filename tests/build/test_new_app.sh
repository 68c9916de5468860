#!/bin/sh
# tests/build/test_new_app.sh - a team's own app, outside the Keel
# repository, as a new user makes it: Keel installed to a temporary prefix
# (make install prefix=DIR), `keel new notes`, built with its own Makefile
# (pkg-config, run path), run with `keel run --watch` from inside its folder
# (no --app, no KEEL_APP), a source change seen as new behaviour, a broken
# build leaving the old app serving, and the local cluster seen, stopped and
# started with keel db status|stop|start (a stopped cluster named in the
# errors of the commands that need it).  Another C program calls the app
# through the client `keel gen client --lang c` writes, built with
# pkg-config keel-client.
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
builddir=$(pwd)
work=$(mktemp -d /tmp/keel-newapp-XXXXXX)
chmod 755 "$work"
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
watcher=0
cleanup() {
    [ "$watcher" -gt 0 ] && kill "$watcher" 2>/dev/null && wait "$watcher" 2>/dev/null
    [ -x "$work/prefix/bin/keel" ] && (cd "$work/notes" 2>/dev/null && "$work/prefix/bin/keel" db stop >/dev/null 2>&1)
    rm -rf "$work"
}
trap cleanup EXIT
# until SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds.
until_ok() {
    t=$(( $1 * 5 )); shift
    while [ "$t" -gt 0 ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; t=$((t - 1)); done
    return 1
}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# The build's own compiler flags (sanitizers in build-asan) go to the app's
# build too: its libkeel.so is built with them.
cflags=$(sed -n 's/^CFLAGS = //p' "$builddir/Makefile")
ldflags=$(sed -n 's/^LDFLAGS = //p' "$builddir/Makefile")
slow=1
[ -n "${KEEL_TEST_VALGRIND:-}" ] && slow=4

echo "1..31"
make -s -C "$builddir" install prefix="$work/prefix" >"$work/install.log" 2>&1
ok $? "make install prefix=DIR installs Keel to a temporary prefix"
[ -x "$work/prefix/bin/keel" ] && [ -f "$work/prefix/include/keel/keel.h" ] && ls "$work/prefix/lib"/libkeel.so* >/dev/null 2>&1
ok $? "the keel command, the headers and libkeel.so are there"
grep -qx "libdir=$work/prefix/lib" "$work/prefix/lib/pkgconfig/keel.pc"
ok $? "keel.pc names the prefix it was installed to"

PATH="$work/prefix/bin:$PATH"
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# keel run's "make" takes them from the environment.
CFLAGS=$cflags
LDFLAGS=$ldflags
export PATH PKG_CONFIG_PATH CFLAGS LDFLAGS
unset KEEL_APP KEEL_APP_ROOT KEEL_INFRA_CONFIG
cd "$work" || exit 1
out=$(keel new notes 2>&1)
ok $? "keel new notes makes an app ($(printf '%s' "$out" | head -n1))"
[ -f notes/keel.json ] && [ -f notes/Makefile ] && [ -f notes/services/notes/notes.c ] &&
    [ -f notes/migrations/notes/1_create_note.up.sql ]
ok $? "with keel.json, a Makefile, a service and a migration"
grep -qx '/.keel/' notes/.gitignore && grep -qx '/secrets/\*.key' notes/.gitignore
ok $? "and a .gitignore for .keel/ and the secrets' keys"
keel new notes >/dev/null 2>&1
ok $((! $?)) "keel new refuses to overwrite an app"
keel new Bad-Name >"$work/badname.log" 2>&1
[ $? -eq 2 ] && grep -q "cannot name an app" "$work/badname.log"
ok $? "and refuses a name that cannot name a service and a database"

out=$(keel app-model 2>&1)
st=$?
case "$st:$out" in 0:*) r=1 ;; *"./dev build"*) r=1 ;; *"keel new"*) r=0 ;; *) r=1 ;; esac
ok $r "outside an app, keel says there is no keel.json and how to make one ($out)"
cd notes || exit 1
make -s >"$work/make.log" 2>&1
ok $? "the app builds with its own Makefile (pkg-config keel)"
readelf -d build/notes 2>/dev/null | grep -q "R.*PATH.*$work/prefix/lib"
ok $? "with the run path of the installed libkeel (no LD_LIBRARY_PATH)"

mkdir -p sub/dir
(cd sub/dir && keel app-model >"$work/model.json" 2>"$work/model.err")
grep -q '"name": *"notes"' "$work/model.json"
ok $? "keel finds the app from a subfolder without --app (keel.json)"

PORT=$port KEEL_HOST=127.0.0.1 keel run --watch >"$work/run.log" 2>&1 &
watcher=$!
url="http://127.0.0.1:$port"
until_ok $((60 * slow)) curl -sf "$url/notes/raw/x"
ok $? "keel run --watch builds, provisions and serves the app"
created=$(curl -s -H 'Content-Type: application/json' -d '{"text":"hello"}' "$url/notes")
case "$created" in *'"id":1'*'"text":"hello"'*) r=0 ;; *) r=1 ;; esac
ok $r "POST /notes stores a note in the app's own database ($created)"
got=$(curl -s "$url/notes/1")
case "$got" in *'"text":"hello"'*) r=0 ;; *) r=1 ;; esac
ok $r "GET /notes/1 reads it back"
mkdir -p "$work/caller"
keel gen client --lang c --out "$work/caller/notes_client.c" >"$work/gen.log" 2>&1 &&
    grep -q 'keel_error \*notes_notes_create(' "$work/caller/notes_client.h"
ok $? "keel gen client --lang c writes notes_client.[ch], prefixed with the app's name"
cat >"$work/caller/main.c" <<'EOF'
#include <stdio.h>
#include "notes_client.h"
int main(int argc, char **argv)
{
    keel_client *c = keel_client_new(argc > 1 ? argv[1] : "");
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    notes_notes_create_response made = {0};
    notes_notes_get_response got = {0};
    keel_error *err = notes_notes_create(c, &(notes_notes_create_request){.text = "from C"}, &made, &arena);
    if (!err)
        err = notes_notes_get(c, &(notes_notes_get_request){.id = made.id}, &got, &arena);
    if (!err)
        printf("%lld %s\n", (long long)got.id, got.text);
    keel_error *missing = notes_notes_get(c, &(notes_notes_get_request){.id = 999999}, &got, &arena);
    printf("%s\n", missing ? keel_code_name(missing->code) : "found");
    int rc = err ? 1 : 0;
    keel_error_free(err);
    keel_error_free(missing);
    keel_arena_release(&arena);
    keel_client_free(c);
    return rc;
}
EOF
(cd "$work/caller" && cc -std=c11 -Wall -Wextra -Werror $cflags -o caller main.c notes_client.c \
    $(pkg-config --cflags --libs keel-client) -Wl,-rpath,"$work/prefix/lib" $ldflags) >"$work/caller.log" 2>&1
ok $? "another C program builds with it (pkg-config keel-client)"
out=$("$work/caller/caller" "$url" 2>&1 | tr '\n' ' ')
case "$out" in "2 from C not_found ") r=0 ;; *) r=1 ;; esac
ok $r "and calls the running app: a note made and read back, a missing one not_found ($out)"
raw=$(curl -s -A tester "$url/notes/raw/a/b")
case "$raw" in "GET /notes/raw/a/b rest=a/b agent=tester") r=0 ;; *) r=1 ;; esac
ok $r "the raw endpoint sees method, path, path parameter and headers ($raw)"

sed -i 's/rest=%s agent=%s/REST=%s agent=%s/' services/notes/notes.c
until_ok $((60 * slow)) sh -c "curl -s '$url/notes/raw/z' | grep -q '^GET /notes/raw/z REST=z'"
ok $? "a changed source is rebuilt and the new behaviour served"
grep -q "keel run: restarting" "$work/run.log"
ok $? "keel run says it restarted the app"

printf 'this is not C;\n' >> services/notes/notes.c
until_ok $((60 * slow)) grep -q "the running app keeps serving" "$work/run.log"
ok $? "a broken build is reported"
grep -q "error:" "$work/run.log"
ok $? "with the compiler's errors"
curl -s "$url/notes/raw/q" | grep -q '^GET /notes/raw/q REST=q'
ok $? "and the old app keeps serving"
sed -i '$d' services/notes/notes.c
kill -INT "$watcher"
wait "$watcher"
ok $? "Ctrl-C stops keel run --watch and the app (exit status 0)"
watcher=0
curl -s "$url/notes/raw/x" >/dev/null 2>&1
ok $((! $?)) "the app is gone with it"

out=$(keel db status 2>&1)
case "$out" in running*) r=0 ;; *) r=1 ;; esac
ok $r "keel db status: the cluster keeps running after the app ($out)"
keel db stop >/dev/null 2>&1
out=$(keel db status 2>&1)
st=$?
case "$st:$out" in 1:stopped*"keel db start"*) r=0 ;; *) r=1 ;; esac
ok $r "keel db stop stops it; status says so and how to start it ($out)"
out=$(keel migrate status 2>&1)
st=$?
case "$st:$out" in 0:*) r=1 ;; *"keel db start"*) r=0 ;; *) r=1 ;; esac
ok $r "keel migrate status against the stopped cluster names keel db start ($(printf '%s' "$out" | tail -n1))"
out=$(echo "SELECT 1" | keel db shell notes 2>&1)
st=$?
case "$st:$out" in 0:*) r=1 ;; *"keel db start"*) r=0 ;; *) r=1 ;; esac
ok $r "keel db shell against the stopped cluster names keel db start ($out)"
keel db start >/dev/null 2>&1 && keel db status >/dev/null 2>&1
ok $? "keel db start starts it again"
exit $fail

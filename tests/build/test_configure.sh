#!/bin/sh
# tests/build/test_configure.sh - configure refuses a libmicrohttpd without the
# fix for CVE-2023-27371 and says what to install; the build it runs in shows
# the fixed library was accepted.
# The installed libmicrohttpd is stood in for by a .pc file of version 0.9.75
# and a dpkg-query that reports the Debian revision under test.
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
work=$(mktemp -d /tmp/keel-configure-XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

mkdir -p "$work/pc" "$work/bin"
real_pc=$(pkg-config --variable=pcfiledir libmicrohttpd)/libmicrohttpd.pc
sed 's/^Version:.*/Version: 0.9.75/' "$real_pc" > "$work/pc/libmicrohttpd.pc"

# configure_with REVISION: runs configure up to the check, in a tree of its own.
configure_with() {
    cat > "$work/bin/dpkg-query" <<EOT
#!/bin/sh
printf '%s' '$1'
EOT
    chmod +x "$work/bin/dpkg-query"
    rm -rf "$work/tree" && mkdir "$work/tree"
    (cd "$work/tree" && PATH="$work/bin:$PATH" PKG_CONFIG_PATH="$work/pc" "$srcdir/configure" -q >"$work/out" 2>&1)
}

echo "1..5"
configure_with 0.9.75-5
ok $((! $?)) "configure fails with Debian's libmicrohttpd 0.9.75-5"
grep -q "CVE-2023-27371" "$work/out"; ok $? "and names the CVE"
grep -q "apt-get install -y libmicrohttpd-dev" "$work/out"; ok $? "and says what to install"
# The accepting side: this build's own configure run, on this machine.
grep -q "^configure:[0-9]*: result: yes (\(Debian 0.9.75-[0-9]\|0.9.76\)" config.log
ok $? "this build's configure found a libmicrohttpd with the fix"
grep -q "CVE-2023-27371" "$work/out" && ! grep -q "CVE-2023-27371.*: no" config.log
ok $? "and did not refuse it"
exit $fail

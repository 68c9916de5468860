#!/bin/sh
# tests/build/test_infra_config.sh - the infra config's JSON Schema
# (doc/infra-config.schema.json) is a valid schema, the example configs in
# doc/examples validate against it with a real validator (Debian's
# python3-jsonschema), broken configs are rejected by it, and keel's own
# parser agrees: it reads the example and refuses what the schema refuses,
# naming the JSON path (the tracing settings' sampler and bounds too).
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
keel=${KEEL_CLI:?run through make check}
work=$(mktemp -d /tmp/keel-infra-schema-XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

# validate FILE: exit 0 when FILE validates against the schema.
validate() {
    python3 - "$srcdir/doc/infra-config.schema.json" "$1" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
errors = list(Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
for e in errors:
    print("# " + "/".join(str(p) for p in e.absolute_path) + ": " + e.message.splitlines()[0][:200])
sys.exit(1 if errors else 0)
PY
}

nexamples=$(ls "$srcdir"/doc/examples/infra.*.json | wc -l)
echo "1..$((15 + nexamples))"
python3 -c "
import json, sys
from jsonschema import Draft202012Validator
Draft202012Validator.check_schema(json.load(open('$srcdir/doc/infra-config.schema.json')))"
ok $? "doc/infra-config.schema.json is a valid draft 2020-12 schema"

for f in "$srcdir"/doc/examples/infra.*.json; do
    validate "$f"
    ok $? "$(basename "$f") validates against the schema"
done

# Broken copies of the example, made with python from the real one.
broken() {
    python3 - "$srcdir/doc/examples/infra.production.json" "$work/$1.json" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[3])
json.dump(c, open(sys.argv[2], "w"))
PY
}
broken misspelt 'c["sql_servers"][0]["databases"]["todo"]["pasword"] = "x"'
broken sslmode 'c["sql_servers"][0]["sslmode"] = "sometimes"'
broken port 'c["sql_servers"][1]["port"] = 70000'
for b in misspelt sslmode port; do
    validate "$work/$b.json" >/dev/null
    ok $((! $?)) "the schema rejects a config with a bad $b"
done

# keel reads the example as the app would (the passwords from the
# environment, standing in for the secrets store and the deploy's variables).
out=$(KEEL_INFRA_CONFIG="$srcdir/doc/examples/infra.production.json" KEEL_SECRET_TODO_DB_RO_PASSWORD='r0 p@ss' \
      "$keel" db conn-uri todo --env production 2>&1)
ok $? "keel reads the example config ($out)"
case "$out" in
postgresql://todo_ro:r0%20p%40ss@db.internal.example.com:5432/todo\?sslmode=verify-full\&sslrootcert=%2Fetc%2Fkeel%2Fdb-ca.pem) r=0 ;;
*) r=1 ;;
esac
ok $r "the read-only role's URI has the example's server, database, role, password and TLS settings"

out=$(KEEL_INFRA_CONFIG="$srcdir/doc/examples/infra.production.json" LEGACY_DB_HOST=crm.example.com \
      "$keel" db conn-uri legacy --write --env production 2>&1)
case "$out" in
postgresql://crm_app@crm.example.com:5432/crm\?sslmode=require) r=0 ;;
*) r=1; echo "# got: $out" ;;
esac
ok $r "an external database's host comes from {\"\$env\": ...}"

for b in misspelt sslmode; do
    out=$(KEEL_INFRA_CONFIG="$work/$b.json" "$keel" db conn-uri todo --env production 2>&1)
    status=$?
    case "$b:$out" in
    misspelt:*'sql_servers[0].databases.todo: unknown key "pasword"'*) r=$status ;;
    sslmode:*'sql_servers[0]: "sslmode" must be one of'*) r=$status ;;
    *) r=0; echo "# got: $out" ;;
    esac
    ok $((r == 0)) "keel refuses the config with a bad $b too, naming where"
done
# The tracing settings: every key the parser takes is in the schema, and
# both refuse the same bad values.
broken tracing_full 'c["tracing"].update(sampler="traceidratio", queue_spans=100, queue_bytes=1048576, batch_ms=200, shutdown_ms=500, sql_parameters=False)'
validate "$work/tracing_full.json"
ok $? "the schema takes every tracing key (sampler, queue_bytes, shutdown_ms...)"
out=$(KEEL_INFRA_CONFIG="$work/tracing_full.json" KEEL_SECRET_TODO_DB_RO_PASSWORD=x \
      "$keel" db conn-uri todo --env production 2>&1)
ok $? "and so does keel ($out)"
broken sampler 'c["tracing"]["sampler"] = "sometimes"'
broken queue_bytes 'c["tracing"]["queue_bytes"] = 1000'
broken shutdown_ms 'c["tracing"]["shutdown_ms"] = 60001'
for b in sampler queue_bytes shutdown_ms; do
    validate "$work/$b.json" >/dev/null
    s=$?
    out=$(KEEL_INFRA_CONFIG="$work/$b.json" KEEL_SECRET_TODO_DB_RO_PASSWORD=x \
          "$keel" db conn-uri todo --env production 2>&1)
    k=$?
    case "$out" in
    *"tracing.$b: expected"*) r=$((s == 0 || k == 0)) ;;
    *) r=1; echo "# got: $out" ;;
    esac
    ok $r "the schema and keel both refuse a bad tracing.$b, keel naming it"
done
python3 - "$srcdir/doc/infra-config.schema.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["properties"]["tracing"]["properties"]["sampler"]
sys.exit(0 if p.get("default") == "parentbased_traceidratio" and "traceidratio" in p["enum"] else 1)
PY
ok $? "the schema says parentbased_traceidratio is the default sampler"
exit $fail

#!/bin/sh
# tests/build/test_app_model.sh - the app model (--app-model) of the example
# app and of the test apps validates against doc/app-model.schema.json with a
# real JSON Schema validator (Debian's python3-jsonschema, draft 2020-12), it
# carries what the services declare (secrets, external databases, calls), and
# models broken on purpose are rejected, so the schema is not a blank cheque.
set -u
srcdir=${KEEL_SRCDIR:?run through make check}
schema="$srcdir/doc/app-model.schema.json"
work=$(mktemp -d /tmp/keel-app-model-XXXXXX)
trap 'rm -rf "$work"' EXIT
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

# validate.py SCHEMA MODEL: exit 0 when valid, 1 (errors on stderr) when not,
# 2 when the validator is missing or the schema is not a 2020-12 schema.
# Anything else going wrong (unreadable JSON...) is 2 as well: only a model
# the validator looked at and refused counts as rejected.
cat > "$work/validate.py" <<'EOT'
import json, sys
try:
    from jsonschema import Draft202012Validator
    schema = json.load(open(sys.argv[1]))
    Draft202012Validator.check_schema(schema)
    errors = list(Draft202012Validator(schema).iter_errors(json.load(open(sys.argv[2]))))
except Exception as e:
    print("cannot validate: %s: %s" % (type(e).__name__, str(e)[:300]), file=sys.stderr)
    sys.exit(2)
for e in errors:
    print("%s: %s" % ("/".join(str(p) for p in e.absolute_path), e.message[:300]), file=sys.stderr)
sys.exit(1 if errors else 0)
EOT

# query.py MODEL EXPR: exit 0 when the Python expression EXPR over the model
# (bound to m; svc(name) is that service) is true.
cat > "$work/query.py" <<'EOT'
import json, sys
m = json.load(open(sys.argv[1]))
def svc(name):
    return next(s for s in m["services"] if s["name"] == name)
sys.exit(0 if eval(sys.argv[2]) else 1)
EOT

# broken.py IN OUT HOW: writes the model IN damaged one way to OUT.
cat > "$work/broken.py" <<'EOT'
import json, sys
m = json.load(open(sys.argv[1]))
how = sys.argv[3]
hello = next(s for s in m["services"] if s["name"] == "hello")
ep = hello["endpoints"][0]
if how == "missing":
    del hello["calls"]
elif how == "type":
    ep["blocking"] = "no"
elif how == "extra":
    ep["timeout_ms"] = 100
elif how == "enum":
    ep["kind"] = "grpc"
elif how == "field":
    ep["request"][0]["type"] = "text"
elif how == "secret":
    next(s for s in m["services"] if s["name"] == "external")["external_databases"][0]["password_secret"] = 7
json.dump(m, open(sys.argv[2], "w"))
EOT

validate() { python3 "$work/validate.py" "$schema" "$1" 2>"$work/errors"; }
query() { python3 "$work/query.py" "$1" "$2"; }

echo "1..21"
python3 -c 'from jsonschema import Draft202012Validator' 2>"$work/errors"
ok $? "python3-jsonschema with draft 2020-12 is installed (apt-get install -y python3-jsonschema)"

for app in "${KEEL_EXAMPLE:?}" "${KEEL_TESTAPP:?}" "${KEEL_DBTESTAPP:?}"; do
    name=$(basename "$app")
    "$app" --app-model >"$work/$name.json" 2>"$work/$name.err"
    ok $? "$name --app-model starts and prints its model"
    validate "$work/$name.json"
    rc=$?
    [ $rc -ne 0 ] && sed 's/^/# /' "$work/errors"
    ok $rc "$name's model validates against doc/app-model.schema.json"
done

example="$work/keel-example.json"
"$KEEL_EXAMPLE" --app-model >"$work/again.json" 2>/dev/null
cmp -s "$example" "$work/again.json"
ok $? "the model is the same byte for byte on a second run"
query "$example" '[s["name"] for s in m["services"]] == ["hello", "legacy", "todo", "stats", "external", "webhooks", "auth"]'
ok $? "services come in the order main lists them"
query "$example" 'svc("webhooks")["secrets"] == ["GITHUB_WEBHOOK_SECRET"]'
ok $? "webhooks needs secret GITHUB_WEBHOOK_SECRET"
query "$example" 'svc("external")["external_databases"] == [{"name": "legacy", "password_secret": "EXTERNAL_DB_PASSWORD"}]'
ok $? "external uses external database legacy with its password secret EXTERNAL_DB_PASSWORD"
query "$example" '"EXTERNAL_DB_PASSWORD" in svc("external")["secrets"]'
ok $? "and declares that secret"
query "$example" 'svc("hello")["calls"] == [{"service": "hello", "endpoint": "compose"}]'
ok $? "hello declares its call to hello.compose"
query "$work/testapp.json" 'svc("test")["calls"] == [{"service": "test", "endpoint": "secret_double"}]'
ok $? "the test app's test service declares its call to test.secret_double"
query "$example" 'svc("stats")["databases"] == [{"name": "todo", "declared": False}] and svc("todo")["databases"][0]["declared"]'
ok $? "managed databases keep their shape (declared by todo, referred to by stats)"

for how in missing type extra enum field secret; do
    python3 "$work/broken.py" "$example" "$work/broken-$how.json" "$how"
    validate "$work/broken-$how.json"
    rc=$?
    [ $rc -ne 1 ] && sed 's/^/# /' "$work/errors"
    ok $((rc != 1)) "a model broken on purpose ($how) is rejected by the validator"
done
exit $fail

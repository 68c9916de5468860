/* tests/unit/test_infra.c - framework/lib/infra.c without a database: the
 * infra config's checks (each refusal names the file and the JSON path and
 * never a value), the settings built for each role (names, ports, passwords
 * inline, from $env and $secret, the code's default secret, TLS defaults by
 * host, pool defaults and overrides), and the URI made from them, which
 * libpq must parse back into the same settings whatever the characters. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/infra.h"
#include "tap.h"

#define PATH "infra.test.json"

static keel_infra *parse(const char *text, keel_error **err)
{
    keel_infra *infra = NULL;
    *err = keel__infra_parse(text, strlen(text), PATH, &infra);
    return infra;
}

/* The message of text's refusal ("" when it was accepted); caller frees. */
static char *refusal(const char *text)
{
    keel_error *err;
    keel_infra *infra = parse(text, &err);
    keel__infra_free(infra);
    char *msg = strdup(err ? err->message : "");
    keel_error_free(err);
    return msg;
}

static void refused(const char *text, const char *want, const char *what)
{
    char *msg = refusal(text);
    like(msg, want, "%s", what);
    ok(strstr(msg, PATH) != NULL, "  and the message names the file");
    free(msg);
}

static void test_checks(void)
{
    refused("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"d\": {\"user\": \"u\", \"pasword\": \"hunter2\"}}}]}",
            "sql_servers[0].databases.d: unknown key \"pasword\"", "a misspelt key is refused with its JSON path");
    char *msg = refusal("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"d\": {\"user\": \"u\", "
                        "\"pasword\": \"hunter2\"}}}]}");
    ok(!strstr(msg, "hunter2"), "the refusal never shows a value");
    free(msg);
    refused("{\"sql_servers\": [{\"host\": \"h\", \"sslmode\": \"sometimes\", \"databases\": {}}]}",
            "sql_servers[0]: \"sslmode\" must be one of", "an unknown sslmode is refused");
    refused("{\"sql_servers\": [{\"host\": \"h\", \"port\": 70000, \"databases\": {}}]}",
            "\"port\" must be a whole number from 1 to 65535", "a port out of range is refused");
    refused("{\"sql_servers\": [{\"databases\": {}}]}", "sql_servers[0]: \"host\" is required",
            "a server without a host is refused");
    refused("{\"sql_servers\": [{\"host\": \"h\"}]}", "\"databases\" is required", "a server without databases");
    refused("{\"sql_servers\": [{\"host\": \"a\", \"databases\": {\"d\": {\"user\": \"u\"}}}, "
            "{\"host\": \"b\", \"databases\": {\"d\": {\"user\": \"v\"}}}]}",
            "sql_servers[1].databases.d: database \"d\" is listed twice", "a database on two servers is refused");
    refused("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"Bad-Name\": {\"user\": \"u\"}}}]}",
            "a logical database name is [a-z][a-z0-9_]*", "a logical name that is not a name is refused");
    refused("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"d\": {\"user\": \"u\", \"password\": 5}}}]}",
            "sql_servers[0].databases.d.password: expected a string, {\"$env\": \"VAR\"} or {\"$secret\": \"NAME\"}",
            "a password of the wrong type is refused");
    refused("{\"sql_servers\": [{\"host\": {\"$secret\": \"H\"}, \"databases\": {}}]}",
            "sql_servers[0].host: expected a string or {\"$env\": \"VAR\"}", "a host cannot come from a secret");
    refused("{\"sql_servers\": [], \"pool\": {\"max_connections\": 0}}", "pool: \"max_connections\" must be",
            "a pool of no connections is refused");
    refused("{\"sql_servers\": [], \"extra\": 1}", "unknown key \"extra\"", "an unknown top-level key is refused");
    refused("{\"sql_servers\": [}", "line 1", "a syntax error names the line");
    refused("[1]", "expected an object", "a file that is not an object is refused");
    msg = refusal("{\"sql_servers\": [], \"s3cr3t value\": 1}");
    like(msg, "unknown key \"(not a name)\"", "a key that is not a name is not shown");
    free(msg);
}

static const char *param(const keel_db_settings *s, const char *k)
{
    const char *v = keel__conn_param(&s->conn, k);
    return v ? v : "(none)";
}

static void test_settings(void)
{
    setenv("TEST_INFRA_HOST", "db.example.com", 1);
    setenv("TEST_INFRA_PORT", "6543", 1);
    setenv("TEST_INFRA_ADMIN_PW", "adm!n pw", 1);
    setenv("KEEL_SECRET_TEST_RO_PW", "r0 'pw'\\", 1);
    setenv("KEEL_SECRET_TEST_EXT_PW", "ext pw", 1);
    unsetenv("TEST_INFRA_UNSET");
    keel_error *err;
    keel_infra *infra = parse(
        "{\"env\": \"staging\", \"pool\": {\"max_connections\": 7, \"checkout_timeout_ms\": 900},"
        " \"sql_servers\": ["
        "  {\"host\": {\"$env\": \"TEST_INFRA_HOST\"}, \"port\": {\"$env\": \"TEST_INFRA_PORT\"},"
        "   \"databases\": {\"todo\": {\"name\": \"todo_db\", \"user\": \"todo_app\", \"password\": \"p@ss:/?#% x\","
        "                  \"admin_user\": \"todo_admin\", \"admin_password\": {\"$env\": \"TEST_INFRA_ADMIN_PW\"},"
        "                  \"readonly_user\": \"todo_ro\", \"readonly_password\": {\"$secret\": \"TEST_RO_PW\"},"
        "                  \"pool\": {\"max_connections\": 3}}}},"
        "  {\"host\": \"/var/run/postgresql\", \"port\": 5433, \"databases\": {\"sock\": {\"user\": \"u\"}}},"
        "  {\"host\": \"127.0.0.1\", \"sslmode\": \"require\", \"sslrootcert\": \"/ca.pem\","
        "   \"databases\": {\"ext\": {\"user\": \"e\"}, \"unset\": {\"user\": \"x\", \"password\": {\"$env\": \"TEST_INFRA_UNSET\"}}}}]}",
        &err);
    ok(infra && !err, "a config with every feature is accepted (%s)", err ? err->message : "ok");
    if (!infra) {
        keel_error_free(err);
        return;
    }
    is_str(keel__infra_env(infra), "staging", "the file says which environment it is for");
    ok(keel__infra_has(infra, "todo") && keel__infra_has(infra, "ext") && !keel__infra_has(infra, "nope"),
       "it knows which databases it lists");

    keel_db_settings s;
    err = keel__infra_settings(infra, "todo", KEEL_ROLE_APP, NULL, &s);
    ok(!err, "the app role's settings");
    is_str(param(&s, "host"), "db.example.com", "host from {\"$env\"}");
    is_str(param(&s, "port"), "6543", "port from {\"$env\"}");
    is_str(param(&s, "dbname"), "todo_db", "the database's own name on the server");
    is_str(param(&s, "user"), "todo_app", "the app role");
    is_str(param(&s, "password"), "p@ss:/?#% x", "an inline password, untouched");
    is_str(param(&s, "sslmode"), "verify-full", "a host that is not this machine is verified by default");
    ok(s.sslmode_default, "and the settings say the mode was chosen, not configured");
    is_int(s.pool.max_connections, 3, "the database's pool overrides the file's");
    is_int(s.pool.checkout_timeout_ms, 900, "the file's pool overrides the default");
    is_int(s.pool.statement_timeout_ms, 30000, "the default statement timeout");
    char *uri = NULL;
    keel_error_free(keel__conn_uri(&s.conn, &uri));
    char *why = NULL;
    PQconninfoOption *back = uri ? PQconninfoParse(uri, &why) : NULL;
    int same = back != NULL;
    for (PQconninfoOption *o = back; o && o->keyword; o++) {
        const char *mine = keel__conn_param(&s.conn, o->keyword);
        if (mine && (!o->val || strcmp(mine, o->val) != 0))
            same = 0;
    }
    ok(same, "libpq parses the URI back into the same settings (%s)", uri ? uri : "no URI");
    PQconninfoFree(back);
    PQfreemem(why);
    free(uri);
    keel__db_settings_free(&s);
    ok(s.conn.keywords[0] == NULL, "freeing the settings empties them");

    err = keel__infra_settings(infra, "todo", KEEL_ROLE_ADMIN, NULL, &s);
    ok(!err && !strcmp(param(&s, "user"), "todo_admin") && !strcmp(param(&s, "password"), "adm!n pw"),
       "the admin role, its password from {\"$env\"}");
    keel__db_settings_free(&s);
    err = keel__infra_settings(infra, "todo", KEEL_ROLE_READONLY, NULL, &s);
    ok(!err && !strcmp(param(&s, "user"), "todo_ro") && !strcmp(param(&s, "password"), "r0 'pw'\\"),
       "the read-only role, its password from {\"$secret\"}");
    is_str(s.password_from, "secret TEST_RO_PW", "the settings say where the password came from");
    keel__db_settings_free(&s);

    err = keel__infra_settings(infra, "sock", KEEL_ROLE_APP, NULL, &s);
    ok(!err && !strcmp(param(&s, "sslmode"), "prefer") && !strcmp(param(&s, "port"), "5433") &&
           !strcmp(param(&s, "dbname"), "sock") && !keel__conn_param(&s.conn, "password"),
       "a socket directory: prefer, the logical name as database, no password");
    keel_error_free(keel__conn_uri(&s.conn, &uri));
    like(uri, "&host=%2Fvar%2Frun%2Fpostgresql", "a socket directory goes in the URI's query");
    free(uri);
    keel__db_settings_free(&s);

    err = keel__infra_settings(infra, "ext", KEEL_ROLE_APP, "TEST_EXT_PW", &s);
    ok(!err && !strcmp(param(&s, "password"), "ext pw"), "an entry without a password uses the code's secret");
    ok(!strcmp(param(&s, "sslmode"), "require") && !strcmp(param(&s, "sslrootcert"), "/ca.pem") &&
           !s.sslmode_default, "configured TLS settings are kept");
    ok(!keel__conn_param(&s.conn, "port"), "no port when none is configured (libpq's default)");
    keel__db_settings_free(&s);

    err = keel__infra_settings(infra, "ext", KEEL_ROLE_ADMIN, NULL, &s);
    ok(err && err->code == KEEL_NOT_FOUND, "a role the entry does not have is not_found");
    like(err ? err->message : NULL, "has no \"admin_user\"", "naming the missing key");
    keel_error_free(err);
    err = keel__infra_settings(infra, "unset", KEEL_ROLE_APP, NULL, &s);
    like(err ? err->message : NULL, "names environment variable TEST_INFRA_UNSET, which is not set",
         "a password from an unset variable says which");
    keel_error_free(err);
    err = keel__infra_settings(infra, "nope", KEEL_ROLE_APP, NULL, &s);
    ok(err && err->code == KEEL_NOT_FOUND, "an unlisted database is not_found");
    keel_error_free(err);

    ok(keel__infra_servers(infra) == 3, "three servers");
    const char *host = NULL;
    unsigned port = 0;
    err = keel__infra_server(infra, 0, &host, &port);
    ok(!err && host && !strcmp(host, "db.example.com") && port == 6543, "a server's host and port, resolved");
    keel_error_free(err);
    keel__infra_free(infra);
}

static void test_param_set(void)
{
    keel_conn_params p = {{NULL}, {NULL}};
    ok(keel__conn_param_set(&p, "host", "a") && keel__conn_param_set(&p, "user", "u") &&
           keel__conn_param_set(&p, "password", "pw"), "settings are added");
    ok(keel__conn_param_set(&p, "user", "postgres"), "a setting is replaced");
    is_str(keel__conn_param(&p, "user"), "postgres", "with the new value");
    ok(keel__conn_param_set(&p, "password", NULL) && !keel__conn_param(&p, "password"), "a setting is removed");
    ok(p.keywords[2] == NULL && !strcmp(p.keywords[1], "user"), "the arrays stay NULL-terminated without gaps");
    keel_db_settings s = {.conn = p};
    keel__db_settings_free(&s);
}

/* Read replicas: checked like the rest, and each one's settings are the
 * database's app role on the replica's host and port. */
static void test_replicas(void)
{
    refused("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"d\": {\"user\": \"u\", "
            "\"replicas\": [{\"hots\": \"r\"}]}}}]}",
            "sql_servers[0].databases.d.replicas[0]: unknown key \"hots\"", "a misspelt replica key is refused");
    refused("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"d\": {\"user\": \"u\", "
            "\"replicas\": {\"host\": \"r\"}}}}]}",
            "replicas: expected an array", "replicas that are not an array are refused");
    refused("{\"sql_servers\": [{\"host\": \"h\", \"databases\": {\"d\": {\"user\": \"u\", "
            "\"replicas\": [{\"host\": \"r\", \"port\": 0}]}}}]}",
            "\"port\" must be a whole number from 1 to 65535", "a replica port out of range is refused");
    keel_error *err;
    keel_infra *infra = parse("{\"sql_servers\": [{\"host\": \"127.0.0.1\", \"port\": 5432, \"databases\": "
                              "{\"d\": {\"user\": \"app\", \"password\": \"pw\", \"replicas\": "
                              "[{\"host\": \"127.0.0.1\", \"port\": 5433}, {\"host\": \"replica.example.com\"}]}, "
                              "\"e\": {\"user\": \"u\"}}}]}", &err);
    ok(infra && !err, "a config with two replicas is accepted");
    is_int((int)keel__infra_replicas(infra, "d"), 2, "d has two replicas");
    is_int((int)keel__infra_replicas(infra, "e"), 0, "e has none");
    keel_db_settings s;
    err = keel__infra_replica_settings(infra, "d", 0, &s);
    ok(!err, "the first replica's settings");
    is_str(keel__conn_param(&s.conn, "port"), "5433", "its own port");
    is_str(keel__conn_param(&s.conn, "user"), "app", "the app role's user");
    is_str(keel__conn_param(&s.conn, "password"), "pw", "and password");
    is_str(keel__conn_param(&s.conn, "sslmode"), "prefer", "sslmode prefer on this machine");
    keel__db_settings_free(&s);
    err = keel__infra_replica_settings(infra, "d", 1, &s);
    ok(!err, "the second replica's settings");
    is_str(keel__conn_param(&s.conn, "host"), "replica.example.com", "its own host");
    is_str(keel__conn_param(&s.conn, "port"), "5432", "the server's port when it names none");
    is_str(keel__conn_param(&s.conn, "sslmode"), "verify-full", "verify-full for another machine, though the "
           "primary is local");
    keel__db_settings_free(&s);
    err = keel__infra_replica_settings(infra, "d", 2, &s);
    is_str(err ? keel_code_name(err->code) : "ok", "not_found", "a replica that is not listed is not_found");
    keel_error_free(err);
    keel__infra_free(infra);
}

int main(void)
{
    plan(63 + 19);
    test_checks();
    test_settings();
    test_param_set();
    test_replicas();
    return tap_done();
}

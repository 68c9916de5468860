/* fuzz_infra.c - libFuzzer target for the infra config reader
 * (framework/lib/infra.c): the JSON file that says where every database,
 * managed or external, lives, the keyword/value settings handed to libpq and
 * the URIs built from them.
 *
 * The input is the file's text, read through keel__infra_parse.  Checks
 * beyond the sanitizers: an error never quotes the file (the text around an
 * error can be a password); for every database the file names and every
 * role, the settings are complete and libpq parses the URI made from them
 * into the same host, port, database, user, password and sslmode
 * (percent-encoding loses nothing). */
#include "sql/infra.h"
#include "fuzz.h"
#include "keel/http.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <string.h>

/* The infra reader checks the "cors" section with http/cors.c, whose other
 * half answers requests; nothing here answers one, so those two calls must
 * never happen (linking request.c would bring in the whole server). */
keel_error *keel_resp_header(keel_resp *resp, const char *name, const char *value)
{
    (void)resp;
    (void)name;
    (void)value;
    FUZZ_CHECK(0, "the infra reader answered a request");
    return NULL;
}

void keel_resp_status(keel_resp *resp, unsigned status)
{
    (void)resp;
    (void)status;
    FUZZ_CHECK(0, "the infra reader answered a request");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* {"$secret": NAME} looks in the environment, then in a store that does
     * not exist here; {"$env": VAR} reads the environment. */
    setenv("KEEL_SECRETS_DIR", "/nonexistent/keel-fuzz-secrets", 1);
    setenv("KEEL_ENV", "fuzz", 1);
    unsetenv("KEEL_SECRETS_KEY");
    setenv("KEEL_SECRET_DB_PASSWORD", "s3cret from 'the' env\\ @:/?#%", 1);
    setenv("FUZZ_PG_PASSWORD", "p@ss word:/?#%'\\\"", 1);
    setenv("FUZZ_PG_HOST", "db.example.com", 1);
    setenv("FUZZ_PG_PORT", "6543", 1);
    return 0;
}

/* The value of keyword in libpq's parsed options; "" for absent or empty
 * (libpq leaves an empty URI part unset). */
static const char *option(const PQconninfoOption *opts, const char *keyword)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, keyword) == 0)
            return o->val ? o->val : "";
    return "";
}

static void check_connection(const keel_infra *infra, const char *logical, keel_db_role role, const char *secret)
{
    keel_db_settings s;
    keel_error *err = keel__infra_settings(infra, logical, role, secret, &s);
    if (err) {
        FUZZ_CHECK(err->code == KEEL_NOT_FOUND || err->code == KEEL_FAILED_PRECONDITION ||
                       err->code == KEEL_INVALID_ARGUMENT || err->code == KEEL_RESOURCE_EXHAUSTED,
                   "infra error %s", err->message);
        keel_error_free(err);
        return;
    }
    static const char *const required[] = {"host", "dbname", "user", "sslmode"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        FUZZ_CHECK(keel__conn_param(&s.conn, required[i]), "settings without %s", required[i]);
    char *uri = NULL, *why = NULL;
    err = keel__conn_uri(&s.conn, &uri);
    FUZZ_CHECK(!err, "no URI: %s", err ? err->message : "");
    PQconninfoOption *b = PQconninfoParse(uri, &why);
    FUZZ_CHECK(b, "libpq refuses the URI %s: %s", uri, why ? why : "");
    static const char *const keys[] = {"host", "port", "dbname", "user", "password", "sslmode"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *mine = keel__conn_param(&s.conn, keys[i]);
        FUZZ_CHECK(strcmp(mine ? mine : "", option(b, keys[i])) == 0, "%s differs: \"%s\" in the settings, \"%s\" from %s",
                   keys[i], mine ? mine : "", option(b, keys[i]), uri);
    }
    PQconninfoFree(b);
    free(uri);
    keel__db_settings_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    keel_infra *infra = NULL;
    keel_error *err = keel__infra_parse((const char *)data, size, "fuzz.json", &infra);
    if (err) {
        FUZZ_CHECK(!infra && err->code == KEEL_FAILED_PRECONDITION, "load error %s", err->message);
        FUZZ_CHECK(!strstr(err->message, "near '"), "a parse error quotes the file: %s", err->message);
        keel_error_free(err);
        return 0;
    }
    /* Every database any server lists, and one none does. */
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(root, "keel__infra_parse accepted what jansson refuses");
    size_t i;
    json_t *server;
    json_array_foreach(json_object_get(root, "sql_servers"), i, server) {
        const char *logical;
        json_t *db;
        json_object_foreach(json_object_get(server, "databases"), logical, db) {
            FUZZ_CHECK(keel__infra_has(infra, logical), "database %s listed but not found", logical);
            for (int role = KEEL_ROLE_APP; role <= KEEL_ROLE_READONLY; role++)
                check_connection(infra, logical, (keel_db_role)role, role == KEEL_ROLE_APP ? "DB_PASSWORD" : NULL);
        }
    }
    for (i = 0; i < keel__infra_servers(infra); i++) {
        const char *host = NULL;
        unsigned port = 0;
        keel_error_free(keel__infra_server(infra, i, &host, &port));
    }
    check_connection(infra, "no_such_database", KEEL_ROLE_APP, NULL);
    json_decref(root);
    keel__infra_free(infra);
    return 0;
}

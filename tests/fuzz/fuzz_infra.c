/* fuzz_infra.c - libFuzzer target for the infra config reader
 * (framework/lib/infra.c): the JSON file that maps logical databases to
 * servers and credentials, and the libpq conninfo strings and URIs built
 * from it.
 *
 * The input is the file's text; it is read through keel__infra_load from a
 * memfd (/proc/self/fd/N), so nothing is written to disk.  Checks beyond the
 * sanitizers: a parse error never quotes the file (the text around an error
 * can be a password); for every database the file names and every role,
 * libpq parses the conninfo string and the URI, and both give the same
 * host, port, database, user, password and sslmode (quoting and
 * percent-encoding lose nothing). */
#include "infra.h"
#include "fuzz.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <unistd.h>

static int memfd = -1;
static char memfd_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    memfd = memfd_create("keel-fuzz-infra", MFD_CLOEXEC);
    FUZZ_CHECK(memfd >= 0, "memfd_create failed");
    snprintf(memfd_path, sizeof memfd_path, "/proc/self/fd/%d", memfd);
    /* {"$secret": NAME} looks in the environment, then in a store that does
     * not exist here; {"$env": VAR} reads the environment. */
    setenv("KEEL_SECRETS_DIR", "/nonexistent/keel-fuzz-secrets", 1);
    setenv("KEEL_ENV", "fuzz", 1);
    unsetenv("KEEL_SECRETS_KEY");
    setenv("KEEL_SECRET_DB_PASSWORD", "s3cret from 'the' env\\ @:/?#%", 1);
    setenv("FUZZ_PG_PASSWORD", "p@ss word:/?#%'\\\"", 1);
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

static void check_connection(const keel_infra *infra, const char *logical, keel_db_role role)
{
    char *conninfo = NULL, *uri = NULL;
    keel_error *e1 = keel__infra_conninfo(infra, logical, role, &conninfo);
    keel_error *e2 = keel__infra_uri(infra, logical, role, &uri);
    FUZZ_CHECK(!e1 == !e2, "conninfo %s but URI %s", e1 ? e1->message : "ok", e2 ? e2->message : "ok");
    if (e1) {
        FUZZ_CHECK(e1->code == e2->code && strcmp(e1->message, e2->message) == 0, "conninfo \"%s\", URI \"%s\"",
                   e1->message, e2->message);
        FUZZ_CHECK(e1->code == KEEL_NOT_FOUND || e1->code == KEEL_FAILED_PRECONDITION ||
                       e1->code == KEEL_INVALID_ARGUMENT, "infra error %s", e1->message);
        keel_error_free(e1);
        keel_error_free(e2);
        return;
    }
    char *why1 = NULL, *why2 = NULL;
    PQconninfoOption *a = PQconninfoParse(conninfo, &why1);
    PQconninfoOption *b = PQconninfoParse(uri, &why2);
    FUZZ_CHECK(a, "libpq refuses the conninfo %s: %s", conninfo, why1 ? why1 : "");
    FUZZ_CHECK(b, "libpq refuses the URI %s: %s", uri, why2 ? why2 : "");
    static const char *const keys[] = {"host", "port", "dbname", "user", "password", "sslmode"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        FUZZ_CHECK(strcmp(option(a, keys[i]), option(b, keys[i])) == 0,
                   "%s differs: \"%s\" from %s, \"%s\" from %s", keys[i], option(a, keys[i]), conninfo,
                   option(b, keys[i]), uri);
    PQconninfoFree(a);
    PQconninfoFree(b);
    free(conninfo);
    free(uri);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FUZZ_CHECK(ftruncate(memfd, 0) == 0 && pwrite(memfd, data, size, 0) == (ssize_t)size, "writing the memfd");
    keel_infra *infra = NULL;
    keel_error *err = keel__infra_load(memfd_path, &infra);
    if (err) {
        FUZZ_CHECK(!infra && err->code == KEEL_FAILED_PRECONDITION, "load error %s", err->message);
        FUZZ_CHECK(!strstr(err->message, "near '"), "a parse error quotes the file: %s", err->message);
        keel_error_free(err);
        return 0;
    }
    keel_pool_settings pool;
    keel__infra_pool(infra, &pool);

    /* Every database any server lists, and one none does. */
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(root, "keel__infra_load accepted what jansson refuses");
    size_t i;
    json_t *server;
    json_array_foreach(json_object_get(root, "sql_servers"), i, server) {
        const char *logical;
        json_t *db;
        json_object_foreach(json_object_get(server, "databases"), logical, db)
            for (int role = KEEL_ROLE_APP; role <= KEEL_ROLE_READONLY; role++)
                check_connection(infra, logical, (keel_db_role)role);
    }
    check_connection(infra, "no-such-database", KEEL_ROLE_APP);
    json_decref(root);
    keel__infra_free(infra);
    return 0;
}

/* infra.c - the infra config (see infra.h): one parser for the app and the
 * CLI.  The file is checked whole when it is read, so a typo is an error at
 * start-up naming its JSON path, not a database that quietly uses a default;
 * values ({"$env"}, {"$secret"}) are resolved when a database's settings are
 * asked for.  No message ever contains a value from the file: any of them
 * may be a password. */
#include "sql/infra.h"
#include "core.h"
#include "http/cors.h"
#include "observe/trace.h"
#include "json_text.h"
#include "keel/lazy.h"
#include "keel/secrets.h"
#include "wipe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_CONNECTIONS 20u
#define DEFAULT_CHECKOUT_MS 5000u
#define DEFAULT_STATEMENT_MS 30000u

/* With verify-full or verify-ca and no sslrootcert of its own, a server is
 * verified against the system's authorities (libpq 15 would otherwise want
 * ~/.postgresql/root.crt). */
#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

typedef struct infra_db {
    const char *logical;
    json_t *server; /* borrowed from root */
    json_t *entry;
} infra_db;

struct keel_infra {
    char *path;
    json_t *root;
    infra_db *dbs;
    size_t ndbs;
};

/* ---- checking the file ------------------------------------------------------ */

typedef struct checker {
    const char *path;
    keel_error *err; /* the first problem */
} checker;

static void problem(checker *c, const char *where, const char *fmt, ...) KEEL_PRINTF(3, 4);
static void problem(checker *c, const char *where, const char *fmt, ...)
{
    if (c->err)
        return;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    c->err = keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: %s%s%s", c->path, where, *where ? ": " : "",
                            what);
}

/* key as it may appear in a message: a key of the file is shown only when it
 * looks like a name (a key is never meant to hold a secret, but a file
 * edited by hand can hold anything). */
static const char *shown_key(const char *key)
{
    size_t n = 0;
    for (; key[n]; n++)
        if (!((key[n] >= 'a' && key[n] <= 'z') || (key[n] >= 'A' && key[n] <= 'Z') ||
              (key[n] >= '0' && key[n] <= '9') || key[n] == '_' || key[n] == '-' || key[n] == '$'))
            return "(not a name)";
    return n && n <= 64 ? key : "(not a name)";
}

/* Keys of obj not in allowed (NULL-terminated) are errors: a misspelt key
 * would otherwise be ignored. */
static void only_keys(checker *c, const char *where, json_t *obj, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool known = false;
        for (size_t i = 0; allowed[i] && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (!known) {
            char list[300] = "";
            for (size_t i = 0; allowed[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "", allowed[i]);
            problem(c, where, "unknown key \"%s\" (expected %s)", shown_key(key), list);
            return;
        }
    }
}

/* {"$env": "VAR"} or, where secret_ok, {"$secret": "NAME"}: the one key and
 * its name; NULL otherwise. */
static const char *reference(json_t *v, const char *kind)
{
    json_t *name = json_object_get(v, kind);
    return json_is_object(v) && json_object_size(v) == 1 && json_is_string(name) && *json_string_value(name)
               ? json_string_value(name) : NULL;
}

/* A string value: a string, or {"$env": "VAR"}, or also {"$secret": "NAME"}
 * for passwords. */
static void check_value(checker *c, const char *where, const char *key, json_t *v, bool secret_ok, bool required)
{
    char at[200];
    snprintf(at, sizeof at, "%s.%s", where, key);
    if (!v) {
        if (required)
            problem(c, where, "\"%s\" is required", key);
        return;
    }
    if (json_is_string(v) || reference(v, "$env") || (secret_ok && reference(v, "$secret")))
        return;
    problem(c, at, secret_ok ? "expected a string, {\"$env\": \"VAR\"} or {\"$secret\": \"NAME\"}"
                             : "expected a string or {\"$env\": \"VAR\"}");
}

static void check_number(checker *c, const char *where, json_t *obj, const char *key, long long min, long long max)
{
    json_t *v = json_object_get(obj, key);
    if (v && (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max))
        problem(c, where, "\"%s\" must be a whole number from %lld to %lld", key, min, max);
}

static void check_pool(checker *c, const char *where, json_t *pool)
{
    static const char *const keys[] = {"max_connections", "checkout_timeout_ms", "statement_timeout_ms", NULL};
    char at[200];
    snprintf(at, sizeof at, "%s%spool", where, *where ? "." : "");
    if (!pool)
        return;
    if (!json_is_object(pool)) {
        problem(c, at, "expected an object");
        return;
    }
    only_keys(c, at, pool, keys);
    check_number(c, at, pool, "max_connections", 1, 10000);
    check_number(c, at, pool, "checkout_timeout_ms", 1, 3600000);
    check_number(c, at, pool, "statement_timeout_ms", 0, 86400000);
}

static bool sslmode_known(const char *m)
{
    static const char *const modes[] = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full", NULL};
    for (size_t i = 0; modes[i]; i++)
        if (!strcmp(m, modes[i]))
            return true;
    return false;
}

/* "replicas": [{"host": ..., "port": ...}]: streaming replicas of the
 * database's server, for reads (keel_db_query_ro). */
static void check_replicas(checker *c, const char *where, json_t *list)
{
    static const char *const keys[] = {"host", "port", NULL};
    char at[300];
    snprintf(at, sizeof at, "%.200s.replicas", where);
    if (!list)
        return;
    if (!json_is_array(list)) {
        problem(c, at, "expected an array of {\"host\", \"port\"}");
        return;
    }
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r) {
        char one[340];
        snprintf(one, sizeof one, "%s[%zu]", at, i);
        if (!json_is_object(r)) {
            problem(c, one, "expected an object with \"host\" and, optionally, \"port\"");
            return;
        }
        only_keys(c, one, r, keys);
        check_value(c, one, "host", json_object_get(r, "host"), false, true);
        json_t *port = json_object_get(r, "port");
        if (port && !reference(port, "$env"))
            check_number(c, one, r, "port", 1, 65535);
    }
}

static void check_database(checker *c, const char *where, json_t *db)
{
    static const char *const keys[] = {"name", "user", "password", "admin_user", "admin_password",
                                       "readonly_user", "readonly_password", "pool", "replicas", NULL};
    if (!json_is_object(db)) {
        problem(c, where, "expected an object");
        return;
    }
    only_keys(c, where, db, keys);
    json_t *name = json_object_get(db, "name");
    if (name && (!json_is_string(name) || !*json_string_value(name)))
        problem(c, where, "\"name\" (the database's name on the server) must be a non-empty string");
    check_value(c, where, "user", json_object_get(db, "user"), false, true);
    check_value(c, where, "password", json_object_get(db, "password"), true, false);
    check_value(c, where, "admin_user", json_object_get(db, "admin_user"), false, false);
    check_value(c, where, "admin_password", json_object_get(db, "admin_password"), true, false);
    check_value(c, where, "readonly_user", json_object_get(db, "readonly_user"), false, false);
    check_value(c, where, "readonly_password", json_object_get(db, "readonly_password"), true, false);
    check_pool(c, where, json_object_get(db, "pool"));
    check_replicas(c, where, json_object_get(db, "replicas"));
}

static void check_server(checker *c, const char *where, json_t *s)
{
    static const char *const keys[] = {"host", "port", "sslmode", "sslrootcert", "local_cluster", "databases", NULL};
    if (!json_is_object(s)) {
        problem(c, where, "expected an object");
        return;
    }
    only_keys(c, where, s, keys);
    check_value(c, where, "host", json_object_get(s, "host"), false, true);
    json_t *port = json_object_get(s, "port");
    if (port && !reference(port, "$env"))
        check_number(c, where, s, "port", 1, 65535);
    json_t *mode = json_object_get(s, "sslmode");
    if (json_is_string(mode) && !sslmode_known(json_string_value(mode)))
        problem(c, where, "\"sslmode\" must be one of disable, allow, prefer, require, verify-ca, verify-full");
    else
        check_value(c, where, "sslmode", mode, false, false);
    check_value(c, where, "sslrootcert", json_object_get(s, "sslrootcert"), false, false);
    json_t *local = json_object_get(s, "local_cluster");
    if (local && !json_is_boolean(local))
        problem(c, where, "\"local_cluster\" must be true or false");
    json_t *dbs = json_object_get(s, "databases");
    if (!json_is_object(dbs))
        problem(c, where, "\"databases\" is required: an object mapping each logical database name to its entry");
}

static keel_error *check_and_index(keel_infra *infra)
{
    static const char *const keys[] = {"$schema", "env", "sql_servers", "pool", "cors", "tracing", NULL};
    checker c = {infra->path, NULL};
    json_t *root = infra->root;
    if (!json_is_object(root)) {
        problem(&c, "", "expected an object with an array \"sql_servers\"");
        return c.err;
    }
    only_keys(&c, "", root, keys);
    json_t *env = json_object_get(root, "env");
    if (env && !json_is_string(env))
        problem(&c, "", "\"env\" must be a string (the environment this file describes)");
    json_t *servers = json_object_get(root, "sql_servers");
    if (servers && !json_is_array(servers))
        problem(&c, "", "\"sql_servers\" must be an array");
    check_pool(&c, "", json_object_get(root, "pool"));
    /* CORS is checked by its own rules (http/cors.c), here too, so that the
     * file is checked whole wherever it is read. */
    keel_cors *cors = NULL;
    keel_error *cors_err = c.err ? NULL : keel__cors_new(json_object_get(root, "cors"), infra->path, &cors);
    keel__cors_free(cors);
    if (cors_err)
        c.err = cors_err;
    keel_error *tracing_err = c.err ? NULL : keel__trace_config_from_json(json_object_get(root, "tracing"), infra->path, NULL);
    if (tracing_err)
        c.err = tracing_err;
    size_t i, total = 0;
    json_t *s;
    json_array_foreach(servers, i, s) {
        char where[64];
        snprintf(where, sizeof where, "sql_servers[%zu]", i);
        check_server(&c, where, s);
        total += json_object_size(json_object_get(s, "databases"));
    }
    if (c.err)
        return c.err;
    infra->dbs = calloc(total ? total : 1, sizeof *infra->dbs);
    if (!infra->dbs)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    json_array_foreach(servers, i, s) {
        const char *logical;
        json_t *db;
        json_object_foreach(json_object_get(s, "databases"), logical, db) {
            char where[200];
            snprintf(where, sizeof where, "sql_servers[%zu].databases.%s", i, shown_key(logical));
            if (!keel__name_valid(logical))
                problem(&c, where, "a logical database name is [a-z][a-z0-9_]*, at most %d characters",
                        KEEL_NAME_MAX);
            for (size_t k = 0; k < infra->ndbs; k++)
                if (!strcmp(infra->dbs[k].logical, logical))
                    problem(&c, where, "database \"%s\" is listed twice (each logical database has one entry)",
                            shown_key(logical));
            check_database(&c, where, db);
            infra->dbs[infra->ndbs++] = (infra_db){logical, s, db};
        }
    }
    return c.err;
}

/* ---- loading ------------------------------------------------------------------ */

static keel_error *from_json(json_t *root, const char *path, keel_infra **out)
{
    keel_infra *infra = calloc(1, sizeof *infra);
    if (!infra || !(infra->path = strdup(path))) {
        free(infra);
        json_decref(root);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    infra->root = root;
    keel_error *err = check_and_index(infra);
    if (err) {
        keel__infra_free(infra);
        return err;
    }
    *out = infra;
    return NULL;
}

static keel_error *syntax_error(const char *path, json_error_t *e)
{
    return keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: line %d, column %d: %s", path, e->line,
                          e->column, keel__json_error_unquoted(e->text));
}

keel_error *keel__infra_load(const char *path, keel_infra **out)
{
    *out = NULL;
    if (access(path, R_OK) != 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: cannot read it: %s", path,
                              strerror(errno));
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    return root ? from_json(root, path, out) : syntax_error(path, &e);
}

keel_error *keel__infra_parse(const char *text, size_t len, const char *path, keel_infra **out)
{
    *out = NULL;
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    return root ? from_json(root, path, out) : syntax_error(path, &e);
}

void keel__infra_free(keel_infra *infra)
{
    if (!infra)
        return;
    json_decref(infra->root);
    free(infra->dbs);
    free(infra->path);
    free(infra);
}

static keel_error *process_load(void *arg, void **out)
{
    (void)arg;
    const char *path = getenv("KEEL_INFRA_CONFIG");
    if (!path || !*path)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "KEEL_INFRA_CONFIG is not set: run the app with `keel run` (which provisions the "
                              "local cluster and writes .keel/infra.local.json), or point KEEL_INFRA_CONFIG at "
                              "the infra config of its environment");
    keel_infra *infra = NULL;
    keel_error *err = keel__infra_load(path, &infra);
    *out = infra;
    return err;
}

keel_error *keel__infra_process(const keel_infra **out)
{
    static keel_lazy once = KEEL_LAZY_INIT;
    void *infra = NULL;
    keel_error *err = keel_lazy_get(&once, process_load, NULL, &infra);
    *out = infra;
    return err;
}

const char *keel__infra_path(const keel_infra *infra)
{
    return infra->path;
}

static const infra_db *find(const keel_infra *infra, const char *logical)
{
    for (size_t i = 0; i < infra->ndbs; i++)
        if (!strcmp(infra->dbs[i].logical, logical))
            return &infra->dbs[i];
    return NULL;
}

const struct json_t *keel__infra_cors(const keel_infra *infra)
{
    return json_object_get(infra->root, "cors");
}

const struct json_t *keel__infra_tracing(const keel_infra *infra)
{
    return json_object_get(infra->root, "tracing");
}

const char *keel__infra_env(const keel_infra *infra)
{
    return json_string_value(json_object_get(infra->root, "env"));
}

bool keel__infra_has(const keel_infra *infra, const char *logical)
{
    return find(infra, logical) != NULL;
}

/* ---- settings ----------------------------------------------------------------- */

/* A checked string value, resolved: NULL when absent.  from (may be NULL)
 * says where a password came from. */
static keel_error *resolve(const keel_infra *infra, const char *logical, const char *key, json_t *v,
                           const char **out, char *from, size_t from_len)
{
    *out = NULL;
    if (!v)
        return NULL;
    if (json_is_string(v)) {
        *out = json_string_value(v);
        if (from)
            snprintf(from, from_len, "the infra config");
        return NULL;
    }
    const char *secret = reference(v, "$secret");
    if (secret) {
        if (from)
            snprintf(from, from_len, "secret %s", secret);
        return keel_secret_lookup(secret, out);
    }
    const char *var = reference(v, "$env");
    if (from)
        snprintf(from, from_len, "$%s", var);
    *out = getenv(var);
    if (!*out)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "infra config %s: database \"%s\": \"%s\" names environment variable %s, which is not "
                              "set", infra->path, logical, key, var);
    return NULL;
}

/* True when every host of a libpq host list is this machine: a socket
 * directory, localhost or a loopback address.  Traffic to anything else is
 * encrypted and the server verified unless the config says otherwise. */
static bool host_is_local(const char *hosts)
{
    const char *h = hosts;
    for (;;) {
        size_t n = strcspn(h, ",");
        char one[INET6_ADDRSTRLEN + 1] = "";
        if (n < sizeof one)
            memcpy(one, h, n);
        one[n < sizeof one ? n : 0] = '\0';
        struct in_addr v4;
        struct in6_addr v6;
        /* Addresses are parsed, not matched by prefix: "127.db.example.com"
         * is a host name like any other. */
        bool local = (n > 0 && h[0] == '/') || !strcmp(one, "localhost") ||
                     (inet_pton(AF_INET, one, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127) ||
                     (inet_pton(AF_INET6, one, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6));
        if (!local)
            return false;
        if (!h[n])
            return true;
        h += n + 1;
    }
}

static bool user_root_cert_exists(void)
{
    const char *home = getenv("HOME");
    char path[600];
    if (!home || !*home)
        return false;
    snprintf(path, sizeof path, "%s/.postgresql/root.crt", home);
    return access(path, R_OK) == 0;
}

static bool param_add(keel_conn_params *p, const char *keyword, const char *value)
{
    size_t n = 0;
    while (p->keywords[n])
        n++;
    if (n >= KEEL_CONN_PARAMS_MAX || !(p->values[n] = strdup(value)))
        return false;
    p->keywords[n] = keyword;
    return true;
}

bool keel__conn_param_set(keel_conn_params *p, const char *keyword, const char *value)
{
    size_t i = 0;
    while (p->keywords[i] && strcmp(p->keywords[i], keyword) != 0)
        i++;
    if (!p->keywords[i])
        return !value || param_add(p, keyword, value);
    char *copy = value ? strdup(value) : NULL;
    if (value && !copy)
        return false;
    keel__free_secret(p->values[i]);
    p->values[i] = copy;
    if (!value) { /* close the gap: the arrays stay NULL-terminated */
        for (; p->keywords[i]; i++) {
            p->keywords[i] = p->keywords[i + 1];
            p->values[i] = p->values[i + 1];
        }
    }
    return true;
}

const char *keel__conn_param(const keel_conn_params *p, const char *keyword)
{
    for (size_t i = 0; p->keywords[i]; i++)
        if (!strcmp(p->keywords[i], keyword))
            return p->values[i];
    return NULL;
}

void keel__db_settings_free(keel_db_settings *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->conn.keywords[i]; i++) {
        keel__free_secret(s->conn.values[i]);
        s->conn.values[i] = NULL;
        s->conn.keywords[i] = NULL;
    }
}

static void pool_from(json_t *pool, keel_pool_settings *out)
{
    json_t *v;
    if ((v = json_object_get(pool, "max_connections")))
        out->max_connections = (unsigned)json_integer_value(v);
    if ((v = json_object_get(pool, "checkout_timeout_ms")))
        out->checkout_timeout_ms = (unsigned)json_integer_value(v);
    if ((v = json_object_get(pool, "statement_timeout_ms")))
        out->statement_timeout_ms = (unsigned)json_integer_value(v);
}

static const char *role_key(keel_db_role role, bool password)
{
    switch (role) {
    case KEEL_ROLE_ADMIN: return password ? "admin_password" : "admin_user";
    case KEEL_ROLE_READONLY: return password ? "readonly_password" : "readonly_user";
    default: return password ? "password" : "user";
    }
}

keel_error *keel__infra_settings(const keel_infra *infra, const char *logical, keel_db_role role,
                                 const char *default_secret, keel_db_settings *out)
{
    memset(out, 0, sizeof *out);
    const infra_db *d = find(infra, logical);
    if (!d)
        return keel_error_new(KEEL_NOT_FOUND, "infra config %s has no database \"%s\"", infra->path, logical);
    const char *host, *port = NULL, *sslmode, *sslrootcert, *user, *password;
    char portbuf[16];
    json_t *pv = json_object_get(d->server, "port");
    keel_error *err = resolve(infra, logical, "host", json_object_get(d->server, "host"), &host, NULL, 0);
    if (!err && json_is_integer(pv)) {
        snprintf(portbuf, sizeof portbuf, "%lld", (long long)json_integer_value(pv));
        port = portbuf;
    } else if (!err) {
        err = resolve(infra, logical, "port", pv, &port, NULL, 0);
    }
    if (!err)
        err = resolve(infra, logical, "sslmode", json_object_get(d->server, "sslmode"), &sslmode, NULL, 0);
    if (!err)
        err = resolve(infra, logical, "sslrootcert", json_object_get(d->server, "sslrootcert"), &sslrootcert, NULL, 0);
    if (!err)
        err = resolve(infra, logical, role_key(role, false), json_object_get(d->entry, role_key(role, false)), &user,
                      NULL, 0);
    if (!err && !user)
        err = keel_error_new(KEEL_NOT_FOUND, "infra config %s: database \"%s\" has no \"%s\"", infra->path, logical,
                             role_key(role, false));
    if (err)
        return err;
    json_t *pwv = json_object_get(d->entry, role_key(role, true));
    if (pwv) {
        err = resolve(infra, logical, role_key(role, true), pwv, &password, out->password_from,
                      sizeof out->password_from);
    } else if (default_secret) {
        snprintf(out->password_from, sizeof out->password_from, "secret %s", default_secret);
        err = keel_secret_lookup(default_secret, &password);
    } else {
        password = NULL;
    }
    if (err)
        return err;
    if (port) {
        char *end;
        errno = 0;
        long n = strtol(port, &end, 10);
        if (errno || *end || end == port || n < 1 || n > 65535)
            return keel_error_new(KEEL_FAILED_PRECONDITION,
                                  "infra config %s: database \"%s\": the port is not a number from 1 to 65535",
                                  infra->path, logical);
    }
    if (sslmode && !sslmode_known(sslmode))
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "infra config %s: database \"%s\": sslmode must be one of disable, allow, prefer, "
                              "require, verify-ca, verify-full", infra->path, logical);
    if (!sslmode) {
        out->sslmode_default = true;
        sslmode = host_is_local(host) ? "prefer" : "verify-full";
    }
    if (!sslrootcert && (!strcmp(sslmode, "verify-full") || !strcmp(sslmode, "verify-ca")) &&
        !user_root_cert_exists() && access(SYSTEM_CA_BUNDLE, R_OK) == 0)
        sslrootcert = SYSTEM_CA_BUNDLE;
    json_t *name = json_object_get(d->entry, "name");
    bool ok = param_add(&out->conn, "host", host) && (!port || param_add(&out->conn, "port", port)) &&
              param_add(&out->conn, "dbname", name ? json_string_value(name) : logical) &&
              param_add(&out->conn, "user", user) && (!password || param_add(&out->conn, "password", password)) &&
              param_add(&out->conn, "sslmode", sslmode) &&
              (!sslrootcert || param_add(&out->conn, "sslrootcert", sslrootcert));
    if (!ok) {
        keel__db_settings_free(out);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    out->pool = (keel_pool_settings){DEFAULT_MAX_CONNECTIONS, DEFAULT_CHECKOUT_MS, DEFAULT_STATEMENT_MS};
    pool_from(json_object_get(infra->root, "pool"), &out->pool);
    pool_from(json_object_get(d->entry, "pool"), &out->pool);
    return NULL;
}

size_t keel__infra_replicas(const keel_infra *infra, const char *logical)
{
    const infra_db *d = find(infra, logical);
    return d ? json_array_size(json_object_get(d->entry, "replicas")) : 0;
}

keel_error *keel__infra_replica_settings(const keel_infra *infra, const char *logical, size_t k,
                                         keel_db_settings *out)
{
    const infra_db *d = find(infra, logical);
    json_t *r = d ? json_array_get(json_object_get(d->entry, "replicas"), k) : NULL;
    if (!r)
        return keel_error_new(KEEL_NOT_FOUND, "infra config %s: database \"%s\" has no replica %zu", infra->path,
                              logical, k);
    keel_error *err = keel__infra_settings(infra, logical, KEEL_ROLE_APP, NULL, out);
    if (err)
        return err;
    const char *host = NULL, *port = NULL;
    char portbuf[16];
    json_t *pv = json_object_get(r, "port");
    err = resolve(infra, logical, "replicas[].host", json_object_get(r, "host"), &host, NULL, 0);
    if (!err && json_is_integer(pv)) {
        snprintf(portbuf, sizeof portbuf, "%lld", (long long)json_integer_value(pv));
        port = portbuf;
    } else if (!err) {
        err = resolve(infra, logical, "replicas[].port", pv, &port, NULL, 0);
    }
    /* The replica is another server: its own host and port, and sslmode
     * chosen for its host unless the config sets one. */
    if (!err && (!keel__conn_param_set(&out->conn, "host", host) ||
                 (port && !keel__conn_param_set(&out->conn, "port", port)) ||
                 (out->sslmode_default &&
                  !keel__conn_param_set(&out->conn, "sslmode", host_is_local(host) ? "prefer" : "verify-full"))))
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    if (err)
        keel__db_settings_free(out);
    return err;
}

/* ---- URIs and servers ------------------------------------------------------------ */

/* Appends s percent-encoded: everything but RFC 3986 unreserved characters. */
static void uri_add(FILE *f, const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
            *c == '.' || *c == '_' || *c == '~')
            fputc(*c, f);
        else
            fprintf(f, "%%%02X", *c);
    }
}

keel_error *keel__conn_uri(const keel_conn_params *p, char **out)
{
    const char *host = keel__conn_param(p, "host"), *port = keel__conn_param(p, "port");
    const char *user = keel__conn_param(p, "user"), *password = keel__conn_param(p, "password");
    const char *dbname = keel__conn_param(p, "dbname"), *sslmode = keel__conn_param(p, "sslmode");
    const char *rootcert = keel__conn_param(p, "sslrootcert");
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    fputs("postgresql://", f);
    if (user)
        uri_add(f, user);
    if (password) {
        fputc(':', f);
        uri_add(f, password);
    }
    fputc('@', f);
    bool socket_dir = host && host[0] == '/';
    if (host && !socket_dir)
        uri_add(f, host);
    if (port && !socket_dir)
        fprintf(f, ":%s", port);
    fputc('/', f);
    if (dbname)
        uri_add(f, dbname);
    fputs("?sslmode=", f);
    uri_add(f, sslmode ? sslmode : "prefer");
    if (rootcert) {
        fputs("&sslrootcert=", f);
        uri_add(f, rootcert);
    }
    if (socket_dir) {
        fputs("&host=", f);
        uri_add(f, host);
        if (port)
            fprintf(f, "&port=%s", port);
    }
    if (fclose(f) != 0) {
        keel__free_secret(text);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    *out = text;
    return NULL;
}

size_t keel__infra_servers(const keel_infra *infra)
{
    return json_array_size(json_object_get(infra->root, "sql_servers"));
}

keel_error *keel__infra_server(const keel_infra *infra, size_t i, const char **host, unsigned *port)
{
    json_t *s = json_array_get(json_object_get(infra->root, "sql_servers"), i);
    json_t *pv = json_object_get(s, "port");
    const char *p = NULL;
    keel_error *err = resolve(infra, "(server)", "host", json_object_get(s, "host"), host, NULL, 0);
    if (!err && !json_is_integer(pv))
        err = resolve(infra, "(server)", "port", pv, &p, NULL, 0);
    if (err)
        return err;
    *port = json_is_integer(pv) ? (unsigned)json_integer_value(pv) : p ? (unsigned)strtoul(p, NULL, 10) : 0;
    return NULL;
}

/* infra.c - the infra config: which server and credentials each logical
 * database uses in this environment.  Passwords may be given inline or as
 * {"$env": "VAR"}; they never appear in error messages. */
#include "infra.h"
#include "json_text.h"
#include "keel/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>

struct keel_infra {
    char *path;
    json_t *root;
};

keel_error *keel__infra_load(const char *path, keel_infra **out)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: line %d, column %d: %s", path, e.line,
                              e.column, keel__json_error_unquoted(e.text));
    json_t *servers = json_object_get(root, "sql_servers");
    if (!json_is_object(root) || (servers && !json_is_array(servers))) {
        json_decref(root);
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "infra config %s: expected an object with an array \"sql_servers\"", path);
    }
    keel_infra *infra = malloc(sizeof *infra);
    if (!infra || !(infra->path = strdup(path))) {
        free(infra);
        json_decref(root);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    infra->root = root;
    *out = infra;
    return NULL;
}

void keel__infra_free(keel_infra *infra)
{
    if (!infra)
        return;
    json_decref(infra->root);
    free(infra->path);
    free(infra);
}

/* Finds the server entry and database entry for logical. */
static bool find_database(const keel_infra *infra, const char *logical, json_t **server, json_t **db)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(infra->root, "sql_servers"), i, s) {
        json_t *d = json_object_get(json_object_get(s, "databases"), logical);
        if (json_is_object(d)) {
            *server = s;
            *db = d;
            return true;
        }
    }
    return false;
}

static const char *role_key(keel_db_role role, bool password)
{
    switch (role) {
    case KEEL_ROLE_ADMIN: return password ? "admin_password" : "admin_user";
    case KEEL_ROLE_READONLY: return password ? "readonly_password" : "readonly_user";
    default: return password ? "password" : "user";
    }
}

/* A password given inline or as {"$env": "VAR"}; NULL when absent. */
static keel_error *password_value(const keel_infra *infra, const char *logical, json_t *v, const char **out)
{
    *out = NULL;
    if (!v || json_is_null(v))
        return NULL;
    if (json_is_string(v)) {
        *out = json_string_value(v);
        return NULL;
    }
    const char *secret = json_string_value(json_object_get(v, "$secret"));
    if (secret)
        return keel_secret_lookup(secret, out);
    const char *var = json_string_value(json_object_get(v, "$env"));
    if (!var)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "infra config %s: database \"%s\": a password is a string, {\"$env\": \"VAR\"} "
                              "or {\"$secret\": \"NAME\"}",
                              infra->path, logical);
    *out = getenv(var);
    if (!*out)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "infra config %s: database \"%s\": environment variable %s is not set", infra->path,
                              logical, var);
    return NULL;
}

/* The pieces of a connection: all borrowed from the config or environment. */
typedef struct conn_parts {
    const char *host, *dbname, *user, *password, *sslmode;
    long long port;
} conn_parts;

static keel_error *connection_parts(const keel_infra *infra, const char *logical, keel_db_role role, conn_parts *p)
{
    json_t *server, *db;
    if (!find_database(infra, logical, &server, &db))
        return keel_error_new(KEEL_NOT_FOUND, "infra config %s has no database \"%s\"", infra->path, logical);
    p->host = json_string_value(json_object_get(server, "host"));
    p->port = json_integer_value(json_object_get(server, "port"));
    p->sslmode = json_string_value(json_object_get(server, "sslmode"));
    p->dbname = json_string_value(json_object_get(db, "name"));
    if (!p->dbname)
        p->dbname = logical;
    p->user = json_string_value(json_object_get(db, role_key(role, false)));
    if (!p->host || !p->user)
        return keel_error_new(KEEL_NOT_FOUND, "infra config %s: database \"%s\" needs \"host\" and \"%s\"",
                              infra->path, logical, role_key(role, false));
    return password_value(infra, logical, json_object_get(db, role_key(role, true)), &p->password);
}

/* Appends key='value' with libpq's quoting (backslash before ' and \). */
static void conninfo_add(FILE *f, const char *key, const char *value)
{
    fprintf(f, "%s='", key);
    for (const char *c = value; *c; c++) {
        if (*c == '\'' || *c == '\\')
            fputc('\\', f);
        fputc(*c, f);
    }
    fputs("' ", f);
}

keel_error *keel__infra_conninfo(const keel_infra *infra, const char *logical, keel_db_role role, char **out)
{
    conn_parts p;
    keel_error *err = connection_parts(infra, logical, role, &p);
    if (err)
        return err;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    conninfo_add(f, "host", p.host);
    if (p.port > 0)
        fprintf(f, "port=%lld ", p.port);
    conninfo_add(f, "dbname", p.dbname);
    conninfo_add(f, "user", p.user);
    if (p.password)
        conninfo_add(f, "password", p.password);
    conninfo_add(f, "sslmode", p.sslmode ? p.sslmode : "prefer");
    fclose(f);
    *out = text;
    return NULL;
}

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

keel_error *keel__infra_uri(const keel_infra *infra, const char *logical, keel_db_role role, char **out)
{
    conn_parts p;
    keel_error *err = connection_parts(infra, logical, role, &p);
    if (err)
        return err;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    fputs("postgresql://", f);
    uri_add(f, p.user);
    if (p.password) {
        fputc(':', f);
        uri_add(f, p.password);
    }
    fputc('@', f);
    bool socket_dir = p.host[0] == '/';
    if (!socket_dir)
        uri_add(f, p.host);
    if (p.port > 0 && !socket_dir)
        fprintf(f, ":%lld", p.port);
    fputc('/', f);
    uri_add(f, p.dbname);
    fprintf(f, "?sslmode=");
    uri_add(f, p.sslmode ? p.sslmode : "prefer");
    if (socket_dir) {
        fputs("&host=", f);
        uri_add(f, p.host);
        if (p.port > 0)
            fprintf(f, "&port=%lld", p.port);
    }
    fclose(f);
    *out = text;
    return NULL;
}

void keel__infra_pool(const keel_infra *infra, keel_pool_settings *out)
{
    json_t *pool = json_object_get(infra->root, "pool");
    json_t *v;
    out->max_connections = (v = json_object_get(pool, "max_connections")) ? (unsigned)json_integer_value(v) : 20;
    out->checkout_timeout_ms =
        (v = json_object_get(pool, "checkout_timeout_ms")) ? (unsigned)json_integer_value(v) : 5000;
    out->statement_timeout_ms =
        (v = json_object_get(pool, "statement_timeout_ms")) ? (unsigned)json_integer_value(v) : 30000;
}

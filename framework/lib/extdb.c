/* extdb.c - external databases (see keel/extdb.h): settings from a small JSON
 * file or the environment, the password from the secrets store, a libpq
 * conninfo with every value quoted, and a pool.c pool made on first use with
 * keel_lazy (so a database that is down at start-up costs a 503, not the app).
 * The set-up makes one connection before handing the pool out, so settings
 * problems (SSL, password) surface as clear errors instead of a vague 503. */
#include "keel/app.h"
#include "keel/extdb.h"
#include "json_text.h"
#include "keel/secrets.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <unistd.h>

#include "pool.h"
#include "wipe.h"

typedef struct settings {
    char host[512], dbname[128], user[128], sslmode[32], sslrootcert[512];
    bool sslmode_default; /* not configured: chosen from the host */
    long long port;
    unsigned max_conns, checkout_ms, statement_ms;
} settings;

static void copy_str(char *dst, size_t len, const char *src)
{
    if (src)
        snprintf(dst, len, "%s", src);
}

/* $KEEL_EXTDB_CONFIG, else <app root>/.keel/extdb.<env>.json. */
static void config_path(char *out, size_t len)
{
    const char *p = getenv("KEEL_EXTDB_CONFIG");
    if (p && *p)
        snprintf(out, len, "%s", p);
    else
        snprintf(out, len, "%s/.keel/extdb.%s.json", keel_app_root(), keel_secrets_env());
}

/* Fills s from the file's entry for name; a missing file is no error (the
 * environment may hold everything). */
static keel_error *from_file(const char *name, const char *path, settings *s)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root)
        return access(path, F_OK) == 0
                   ? keel_error_new(KEEL_FAILED_PRECONDITION, "external database config %s: line %d: %s", path,
                                    e.line, keel__json_error_unquoted(e.text))
                   : NULL;
    json_t *db = json_object_get(json_object_get(root, "databases"), name);
    json_t *pool = json_object_get(root, "pool"), *v;
    if (json_is_object(db)) {
        copy_str(s->host, sizeof s->host, json_string_value(json_object_get(db, "host")));
        copy_str(s->dbname, sizeof s->dbname, json_string_value(json_object_get(db, "dbname")));
        copy_str(s->user, sizeof s->user, json_string_value(json_object_get(db, "user")));
        copy_str(s->sslmode, sizeof s->sslmode, json_string_value(json_object_get(db, "sslmode")));
        copy_str(s->sslrootcert, sizeof s->sslrootcert, json_string_value(json_object_get(db, "sslrootcert")));
        if ((v = json_object_get(db, "port")))
            s->port = json_integer_value(v);
    }
    if ((v = json_object_get(pool, "max_connections")))
        s->max_conns = (unsigned)json_integer_value(v);
    if ((v = json_object_get(pool, "checkout_timeout_ms")))
        s->checkout_ms = (unsigned)json_integer_value(v);
    if ((v = json_object_get(pool, "statement_timeout_ms")))
        s->statement_ms = (unsigned)json_integer_value(v);
    json_decref(root);
    return NULL;
}

/* $KEEL_EXTDB_<NAME>_<FIELD>, when set. */
static const char *env_field(const char *name, const char *field)
{
    char var[160];
    int n = snprintf(var, sizeof var, "KEEL_EXTDB_");
    for (const char *p = name; *p && n < 120; p++)
        var[n++] = (char)toupper((unsigned char)*p);
    snprintf(var + n, sizeof var - (size_t)n, "_%s", field);
    const char *v = getenv(var);
    return v && *v ? v : NULL;
}

/* True when every host of a libpq host list is this machine: a socket
 * directory, localhost or a loopback address.  Traffic to anything else is
 * encrypted and the server verified unless the settings say otherwise. */
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

/* The certificate authorities of the system: with verify-full and no
 * sslrootcert of its own, a server is verified against them (libpq 15 would
 * otherwise want ~/.postgresql/root.crt). */
#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

static bool user_root_cert_exists(void)
{
    const char *home = getenv("HOME");
    char path[600];
    if (!home || !*home)
        return false;
    snprintf(path, sizeof path, "%s/.postgresql/root.crt", home);
    return access(path, R_OK) == 0;
}

static keel_error *load_settings(const char *name, settings *s)
{
    memset(s, 0, sizeof *s);
    s->checkout_ms = 5000;
    s->statement_ms = 30000;
    s->max_conns = 10;
    char path[700];
    config_path(path, sizeof path);
    keel_error *err = from_file(name, path, s);
    if (err)
        return err;
    copy_str(s->host, sizeof s->host, env_field(name, "HOST"));
    copy_str(s->dbname, sizeof s->dbname, env_field(name, "DBNAME"));
    copy_str(s->user, sizeof s->user, env_field(name, "USER"));
    copy_str(s->sslmode, sizeof s->sslmode, env_field(name, "SSLMODE"));
    if (env_field(name, "PORT"))
        s->port = atoll(env_field(name, "PORT"));
    if (!s->dbname[0])
        copy_str(s->dbname, sizeof s->dbname, name);
    copy_str(s->sslrootcert, sizeof s->sslrootcert, env_field(name, "SSLROOTCERT"));
    if (!s->sslmode[0]) {
        s->sslmode_default = true;
        copy_str(s->sslmode, sizeof s->sslmode, host_is_local(s->host) ? "prefer" : "verify-full");
    }
    if (!s->sslrootcert[0] && (!strcmp(s->sslmode, "verify-full") || !strcmp(s->sslmode, "verify-ca")) &&
        !user_root_cert_exists() && access(SYSTEM_CA_BUNDLE, R_OK) == 0)
        copy_str(s->sslrootcert, sizeof s->sslrootcert, SYSTEM_CA_BUNDLE);
    if (!s->host[0] || !s->user[0])
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "external database \"%s\" has no host or user: add it to %s or set KEEL_EXTDB_<NAME>_HOST "
                              "and _USER", name, path);
    return NULL;
}

/* Appends key='value' with libpq's quoting (a backslash before ' and \), so
 * any character (@ : / ? # % space) is taken literally. */
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

/* The conninfo (malloc'd; it holds the password: wipe it). */
static char *build_conninfo(const settings *s, const char *password)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    conninfo_add(f, "host", s->host);
    if (s->port > 0)
        fprintf(f, "port=%lld ", s->port);
    conninfo_add(f, "dbname", s->dbname);
    conninfo_add(f, "user", s->user);
    if (password)
        conninfo_add(f, "password", password);
    conninfo_add(f, "sslmode", s->sslmode);
    if (s->sslrootcert[0])
        conninfo_add(f, "sslrootcert", s->sslrootcert);
    fclose(f);
    return text;
}

/* What a client is told when the pool cannot be made: the name, nothing
 * more.  detail (consumed) says what went wrong and how to fix it (libpq's
 * text names the server, port and role; settings errors name files), so it
 * goes to the error's cause, which is logged and never sent. */
static keel_error *unavailable(const keel_extdb *x, keel_error *detail)
{
    keel_error *err = keel_error_new(KEEL_UNAVAILABLE, "external database \"%s\" is unavailable", x->name);
    keel_error_cause(err, "%s%s%s", detail->message, detail->cause ? ": " : "", detail->cause ? detail->cause : "");
    keel_error_free(detail);
    return err;
}

/* Turns the first connection's failure into a cause that says what to fix
 * when libpq's reason is a settings problem. */
static keel_error *explain(const keel_extdb *x, const settings *s, keel_error *err)
{
    const char *why = err->cause ? err->cause : "";
    char fix[700];
    fix[0] = '\0';
    if (strstr(why, "does not support SSL") || strstr(why, "certificate") || strstr(why, "SSL")) {
        snprintf(fix, sizeof fix,
                 "sslmode=%s%s: %s. To relax it, set \"sslmode\" (for example \"require\": encrypted, not "
                 "verified) for \"%s\" in the external database config or KEEL_EXTDB_<NAME>_SSLMODE; to verify "
                 "against your own authority, set \"sslrootcert\"",
                 s->sslmode,
                 s->sslmode_default && !strcmp(s->sslmode, "verify-full")
                     ? " (the default for a server that is not this machine)" : "",
                 why, x->name);
    } else if (strstr(why, "password authentication failed") || strstr(why, "no password supplied")) {
        snprintf(fix, sizeof fix, "password authentication failed for user \"%s\" (check the secret %s)", s->user,
                 x->password_secret ? x->password_secret : "(none)");
    }
    if (fix[0])
        keel_error_cause(err, "%s", fix);
    return unavailable(x, err);
}

/* The keel_lazy set-up: settings, password, pool, one trial connection. */
static keel_error *open_pool(void *arg, void **out)
{
    keel_extdb *x = arg;
    settings s;
    const char *password = NULL;
    keel_error *err = load_settings(x->name, &s);
    if (!err && x->password_secret)
        err = keel_secret_lookup(x->password_secret, &password);
    if (err)
        return unavailable(x, err); /* settings missing: unavailable to clients */
    char *conninfo = build_conninfo(&s, password);
    if (!conninfo)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_pool_config cfg = {x->name, conninfo, s.max_conns, s.checkout_ms, s.statement_ms};
    keel_pool *pool = NULL;
    err = keel_pool_new(&cfg, &pool);
    keel__free_secret(conninfo);
    keel_pconn *c = NULL;
    if (!err && (err = keel_pool_get(pool, &c)) != NULL) {
        keel_pool_free(pool);
        return explain(x, &s, err);
    }
    if (err)
        return err;
    keel_pool_put(pool, c, false);
    x->db.pool = pool; /* published to other threads by keel_lazy's lock */
    x->db.resolved = NULL;
    *out = pool;
    return NULL;
}

keel_error *keel_extdb_get(keel_extdb *x, keel_sqldb **out)
{
    *out = NULL;
    void *pool = NULL;
    keel_error *err = keel_lazy_get(&x->lazy, open_pool, x, &pool);
    if (err)
        return err;
    *out = &x->db;
    return NULL;
}

static void pool_destroy(void *pool)
{
    keel_pool_free(pool);
}

void keel_extdb_close(keel_extdb *x)
{
    keel_lazy_reset(&x->lazy, pool_destroy);
    x->db.pool = NULL;
}

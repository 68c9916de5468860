/* extdb.c - external databases (see keel/extdb.h): settings from the infra
 * config like managed databases (infra.c), the password from the secrets
 * store by default, and a pool.c pool made on first use with keel_lazy (so
 * a database that is down at start-up costs a 503, not the app).
 * The set-up makes one connection before handing the pool out, so settings
 * problems (SSL, password) surface as clear errors instead of a vague 503. */
#include "core.h"
#include "keel/extdb.h"
#include "keel/secrets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sql/infra.h"
#include "sql/pool.h"
#include "observe/trace.h"

/* The old settings file (extdb.<env>.json) and its KEEL_EXTDB_* overrides
 * are gone: they are found and refused with directions, so a team that
 * upgrades is told where its settings must go instead of losing them. */
keel_error *keel__extdb_check_legacy(void)
{
    extern char **environ;
    char path[1200];
    const char *given = getenv("KEEL_EXTDB_CONFIG");
    snprintf(path, sizeof path, "%s/.keel/extdb.%s.json", keel_app_root(), keel_secrets_env());
    const char *file = given && *given ? given : access(path, F_OK) == 0 ? path : NULL;
    if (file)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "external database settings are no longer read from %s%s: external databases are "
                              "listed in the infra config like managed ones. Move each entry of its \"databases\" "
                              "into a server of the infra config ($KEEL_INFRA_CONFIG; .keel/infra.local.json under "
                              "keel run): {\"host\": H, \"port\": P, \"sslmode\": M, \"databases\": {NAME: "
                              "{\"name\": DBNAME, \"user\": USER}}}, or run `keel db add-external NAME --host H "
                              "--port P --dbname DBNAME --user USER --sslmode M`; then delete %s",
                              file, given && *given ? " (KEEL_EXTDB_CONFIG)" : "", file);
    for (char **e = environ; e && *e; e++)
        if (!strncmp(*e, "KEEL_EXTDB_", 11))
            return keel_error_new(KEEL_FAILED_PRECONDITION,
                                  "%.*s is no longer read: external databases are listed in the infra config, where "
                                  "any of host, port, sslmode and sslrootcert may be {\"$env\": \"VAR\"}",
                                  (int)strcspn(*e, "="), *e);
    return NULL;
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
static keel_error *explain(const keel_extdb *x, const keel_db_settings *s, keel_error *err)
{
    const char *why = err->cause ? err->cause : "";
    const char *sslmode = keel__conn_param(&s->conn, "sslmode");
    char fix[700];
    fix[0] = '\0';
    if (strstr(why, "does not support SSL") || strstr(why, "certificate") || strstr(why, "SSL")) {
        snprintf(fix, sizeof fix,
                 "sslmode=%s%s: %s. To relax it, set \"sslmode\" (for example \"require\": encrypted, not "
                 "verified) on the server of \"%s\" in the infra config; to verify against your own authority, "
                 "set \"sslrootcert\"",
                 sslmode, s->sslmode_default && !strcmp(sslmode, "verify-full")
                              ? " (the default for a server that is not this machine)" : "",
                 why, x->name);
    } else if (strstr(why, "password authentication failed") || strstr(why, "no password supplied")) {
        snprintf(fix, sizeof fix, "password authentication failed for user \"%s\" (check the password: %s)",
                 keel__conn_param(&s->conn, "user"), s->password_from[0] ? s->password_from : "none is set");
    }
    if (fix[0])
        keel_error_cause(err, "%s", fix);
    return unavailable(x, err);
}

/* The keel_lazy set-up: settings, pool, one trial connection. */
static keel_error *open_pool(void *arg, void **out)
{
    keel_extdb *x = arg;
    const keel_infra *infra = NULL;
    keel_db_settings s;
    keel_error *err = keel__extdb_check_legacy();
    if (!err)
        err = keel__infra_process(&infra);
    if (!err && !keel__infra_has(infra, x->name))
        err = keel_error_new(KEEL_FAILED_PRECONDITION,
                             "external database \"%s\" is not in the infra config %s: add it to a server's "
                             "\"databases\" (or run `keel db add-external %s --host ... --user ...`)",
                             x->name, keel__infra_path(infra), x->name);
    if (!err)
        err = keel__infra_settings(infra, x->name, KEEL_ROLE_APP, x->password_secret, &s);
    if (err)
        return unavailable(x, err); /* settings missing: unavailable to clients */
    keel_pool_config cfg = {x->name, s.conn.keywords, (const char *const *)s.conn.values,
                            s.pool.max_connections, s.pool.checkout_timeout_ms, s.pool.statement_timeout_ms};
    keel_pool *pool = NULL;
    err = keel_pool_new(&cfg, &pool);
    keel_pconn *c = NULL;
    keel_req *req = keel__trace_current_req();
    char name[96];
    snprintf(name, sizeof name, "connect %s", x->name);
    keel_span *span = err ? NULL : keel__span_start(req, name, KEEL_SPAN_CLIENT);
    keel__span_attr_str(span, "db.system.name", "postgresql");
    keel__span_attr_str(span, "db.namespace", x->name);
    if (!err)
        err = keel_pool_get(pool, &c);
    keel__span_end(req, span, err);
    if (err && pool) {
        keel_pool_free(pool);
        err = explain(x, &s, err);
    }
    keel__db_settings_free(&s);
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

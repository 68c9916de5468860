/* databases.c - the app's managed databases: declarations checked and
 * references resolved at registration (no I/O), then at start-up each
 * database is migrated with its admin role and given a pool for the app role,
 * from the infra config.  The app binary owns this in every environment, so a
 * self-hosted deploy needs nothing else. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "sql/infra.h"
#include "sql/pg_error.h"
#include "sql/pool.h"
#include "sql/replica.h"
#include "observe/observe.h"
#include "wipe.h"

/* The index of the declaration called name, or -1. */
static long declared_index(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->ndbs; i++)
        if (strcmp(app->dbs[i]->name, name) == 0)
            return (long)i;
    return -1;
}

static keel_sqldb *find_declared(const keel_app *app, const char *name)
{
    long i = declared_index(app, name);
    return i < 0 ? NULL : app->dbs[i];
}

/* Adds one declaration; a second declaration of the same name is an error. */
static keel_error *declare(keel_app *app, const keel_service *svc, keel_sqldb *db)
{
    if (!keel__name_valid(db->name))
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "service %s: database name \"%s\" is invalid: use lower-case letters, digits and _, "
                              "starting with a letter (at most %d)",
                              svc->name, db->name ? db->name : "(null)", KEEL_NAME_MAX);
    long earlier = declared_index(app, db->name);
    if (earlier >= 0 && app->dbs[earlier] != db)
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "sqldb: database \"%s\" is declared by both %s and %s; "
                              "the second should use KEEL_SQLDB_NAMED(\"%s\")",
                              db->name, app->db_owner[earlier]->name, svc->name, db->name);
    if (earlier >= 0)
        return NULL;
    keel_sqldb **dbs = realloc(app->dbs, (app->ndbs + 1) * sizeof *dbs);
    const keel_service **owners = dbs ? realloc(app->db_owner, (app->ndbs + 1) * sizeof *owners) : NULL;
    if (dbs)
        app->dbs = dbs;
    if (!dbs || !owners)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    app->db_owner = owners;
    app->dbs[app->ndbs] = db;
    app->db_owner[app->ndbs] = svc;
    app->ndbs++;
    db->resolved = db;
    return NULL;
}

keel_error *keel__databases_register(keel_app *app)
{
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        for (size_t j = 0; s->databases && s->databases[j]; j++)
            if (s->databases[j]->migrations) {
                keel_error *err = declare(app, s, s->databases[j]);
                if (err)
                    return err;
            }
    }
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        for (size_t j = 0; s->databases && s->databases[j]; j++) {
            keel_sqldb *db = s->databases[j];
            if (db->migrations)
                continue;
            keel_sqldb *target = db->name ? find_declared(app, db->name) : NULL;
            if (!target)
                return keel_error_new(KEEL_INVALID_ARGUMENT, "sqldb: unknown database \"%s\" (used by service %s)",
                                      db->name ? db->name : "(null)", s->name);
            db->resolved = target;
        }
    }
    return NULL;
}

/* Where db's migrations are: its folder, relative to the app root. */
char *keel__db_migrations_path(const keel_sqldb *db)
{
    const char *root = keel_app_root();
    if (db->migrations[0] == '/' || strcmp(root, ".") == 0)
        return strdup(db->migrations);
    size_t n = strlen(root) + 1 + strlen(db->migrations) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", root, db->migrations);
    return p;
}

/* Notices from migration files go to the log rather than stderr. */
static void log_notice(void *arg, const char *message)
{
    keel_log(KEEL_LOG_INFO, "%s: %.*s", (const char *)arg, (int)strcspn(message, "\n"), message);
}

/* Applies pending migrations to db, connected with its admin role. */
static keel_error *migrate_database(const keel_infra *infra, keel_sqldb *db)
{
    char *dir = keel__db_migrations_path(db);
    keel_migration_set *set = NULL;
    keel_error *err = dir ? keel_migrations_load(dir, &set) : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    free(dir);
    if (err)
        return keel_error_prefix(err, "%s", db->name);
    keel_db_settings admin;
    err = keel__infra_settings(infra, db->name, KEEL_ROLE_ADMIN, NULL, &admin);
    if (err) {
        keel_migrations_free(set);
        return err;
    }
    PGconn *conn = PQconnectdbParams(admin.conn.keywords, (const char *const *)admin.conn.values, 0);
    keel__db_settings_free(&admin);
    if (PQstatus(conn) != CONNECTION_OK) {
        err = keel_error_new(KEEL_UNAVAILABLE, "%s: could not connect to the database to migrate it", db->name);
        keel__pg_cause(err, conn, NULL);
    } else {
        PQsetNoticeProcessor(conn, log_notice, (void *)db->name);
        int applied = 0;
        err = keel_migrate_up(conn, set, &applied);
        if (err)
            keel_error_prefix(err, "%s", db->name);
        else if (applied)
            keel_log(KEEL_LOG_INFO, "%s: applied %d migration%s", db->name, applied, applied == 1 ? "" : "s");
        else
            keel_log(KEEL_LOG_INFO, "%s: schema up to date", db->name);
    }
    PQfinish(conn);
    keel_migrations_free(set);
    return err;
}

/* Migrations at start-up are a trace of their own ("migrate todo"), with a
 * span per file applied, when tracing is on. */
static keel_error *migrate_database_traced(keel_app *app, const keel_infra *infra, keel_sqldb *db)
{
    if (!app->obs || !keel__observe_tracing(app->obs))
        return migrate_database(infra, db);
    keel_req *req = keel__req_detached_new();
    if (!req)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    char name[96];
    snprintf(name, sizeof name, "migrate %s", db->name);
    keel__trace_detached_begin(app, req, name);
    keel__span_attr_str(req->trace ? req->trace->spans : NULL, "db.namespace", db->name);
    keel_req *outer = keel__trace_set_current_req(req);
    keel_error *err = migrate_database(infra, db);
    keel__trace_set_current_req(outer);
    keel__trace_detached_end(req, err);
    keel__req_detached_free(req);
    return err;
}

static keel_error *open_pool(const keel_infra *infra, keel_sqldb *db)
{
    keel_db_settings app;
    keel_error *err = keel__infra_settings(infra, db->name, KEEL_ROLE_APP, NULL, &app);
    if (err)
        return err;
    keel_pool_config cfg = {db->name, app.conn.keywords, (const char *const *)app.conn.values,
                            app.pool.max_connections, app.pool.checkout_timeout_ms, app.pool.statement_timeout_ms};
    err = keel_pool_new(&cfg, &db->pool);
    keel__db_settings_free(&app);
    return err;
}

/* External databases connect on first use, so one the infra config does not
 * list would only show as 503s: it is named in the log at start-up. */
static void warn_unlisted_external(const keel_app *app, const keel_infra *infra)
{
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        for (size_t j = 0; s->external_databases && s->external_databases[j]; j++) {
            const char *name = s->external_databases[j]->name;
            if (!infra)
                keel_log(KEEL_LOG_WARN, "%s: external database \"%s\": KEEL_INFRA_CONFIG is not set, so it will "
                         "answer 503 until the app runs with an infra config that lists it", s->name, name);
            else if (!keel__infra_has(infra, name))
                keel_log(KEEL_LOG_WARN, "%s: external database \"%s\" is not in the infra config %s: its requests "
                         "will answer 503 (add it with keel db add-external)", s->name, name,
                         keel__infra_path(infra));
        }
    }
}

keel_error *keel__databases_open(keel_app *app)
{
    keel_error *err = keel__extdb_check_legacy();
    if (err)
        return err;
    const keel_infra *infra = NULL;
    const char *path = getenv("KEEL_INFRA_CONFIG");
    if (app->ndbs > 0 || (path && *path)) {
        err = keel__infra_process(&infra);
        if (err)
            return app->ndbs > 0 ? keel_error_prefix(err, "the app declares databases") : err;
    }
    warn_unlisted_external(app, infra);
    if (app->ndbs == 0)
        return NULL;
    for (size_t i = 0; !err && i < app->ndbs; i++) {
        err = migrate_database_traced(app, infra, app->dbs[i]);
        if (!err)
            err = open_pool(infra, app->dbs[i]);
        if (!err)
            err = keel__replicas_open(infra, app->dbs[i]->name, app->cfg.replica_check_ms, &app->dbs[i]->replicas);
    }
    return err;
}

void keel__databases_close(keel_app *app)
{
    for (size_t i = 0; i < app->ndbs; i++) {
        keel__replicas_free(app->dbs[i]->replicas);
        app->dbs[i]->replicas = NULL;
        keel_pool_free(app->dbs[i]->pool);
        app->dbs[i]->pool = NULL;
    }
    for (size_t i = 0; app->services && app->services[i]; i++) {
        const keel_service *s = app->services[i];
        for (size_t j = 0; s->databases && s->databases[j]; j++)
            s->databases[j]->resolved = NULL;
    }
    free(app->dbs);
    free(app->db_owner);
    app->dbs = NULL;
    app->db_owner = NULL;
    app->ndbs = 0;
}

json_t *keel__databases_model(const keel_app *app, const keel_service *svc)
{
    json_t *list = json_array();
    for (size_t j = 0; svc->databases && svc->databases[j]; j++) {
        keel_sqldb *db = svc->databases[j];
        json_t *d = json_pack("{s:s, s:b}", "name", db->name, "declared", db->migrations != NULL);
        if (db->migrations)
            json_object_set_new(d, "migrations", json_string(db->migrations));
        json_array_append_new(list, d);
    }
    (void)app;
    return list;
}

/* test.c - libkeel-test: the app inside a test program, on fresh copies of
 * its databases (keel/test.h).  `keel test` leaves an infra config of the
 * test cluster in KEEL_TEST_INFRA_CONFIG whose databases are the migrated
 * templates; each test copies them with CREATE DATABASE ... TEMPLATE as the
 * database's admin role, grants the app and read-only roles what keel's
 * provisioning grants, and points the app at the copies through an infra
 * config of its own.  A program's copies are named after its process id,
 * so programs may run side by side, and the app's infra config (which the
 * app reads once per process) stays the same from one test to the next. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "keel/test.h"

#define MAX_DATABASES 32

typedef struct test_db {
    char logical[64];
    char copy[64];
    char template_name[64];
    char user[64], ro_user[64];
    const char *keys[7];
    const char *values[7]; /* the admin role's connection (strings of the config) */
} test_db;

struct keel_test {
    keel_app *app;
    keel_client *client;
    keel_arena arena;
    char url[64];
    json_t *config; /* the test cluster's infra config: test_db's strings */
    test_db db[MAX_DATABASES];
    size_t ndb;
    char port[16];
    double setup_ms;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Names spliced into SQL are checked first: [a-z][a-z0-9_]*. */
static bool plain_name(const char *s)
{
    if (!s || !(*s >= 'a' && *s <= 'z') || strlen(s) > 60)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

static keel_error *sql_error(const char *what, PGconn *conn)
{
    const char *msg = PQerrorMessage(conn);
    return keel_error_new(KEEL_UNAVAILABLE, "keel test: %s: %.*s", what, (int)strcspn(msg, "\n"), msg);
}

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *admin_connect(const test_db *db, keel_error **err)
{
    PGconn *conn = PQconnectdbParams(db->keys, db->values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        *err = sql_error("cannot connect to the test cluster", conn);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet, NULL);
    return conn;
}

static bool command_ok(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

static void drop_copy(const test_db *db)
{
    keel_error *err = NULL;
    PGconn *conn = admin_connect(db, &err);
    char sql[200];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->copy);
    if (conn)
        command_ok(conn, sql);
    PQfinish(conn);
    keel_error_free(err);
}

/* Makes every database's copy from its template, all at once: one
 * connection per database (as its admin role, which owns the copy), the
 * CREATE DATABASE statements sent together and awaited together.  A copy
 * left by an earlier program with the same process id is dropped first. */
static keel_error *make_copies(keel_test *t)
{
    PGconn *conn[MAX_DATABASES] = {0};
    keel_error *err = NULL;
    char sql[600];
    for (size_t i = 0; !err && i < t->ndb; i++)
        conn[i] = admin_connect(&t->db[i], &err);
    for (int attempt = 0; !err && attempt < 2; attempt++) {
        bool again = false;
        for (size_t i = 0; i < t->ndb; i++) {
            /* FILE_COPY: with fsync off, copying the template's files is
             * about as fast as writing them through the WAL, and the
             * checkpoints it asks for are cheap. */
            snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE %s STRATEGY FILE_COPY", t->db[i].copy,
                     t->db[i].template_name);
            if (!PQsendQuery(conn[i], sql) && !err)
                err = sql_error("cannot copy a template database", conn[i]);
        }
        for (size_t i = 0; i < t->ndb; i++) {
            PGresult *r;
            while ((r = PQgetResult(conn[i])) != NULL) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                if (PQresultStatus(r) != PGRES_COMMAND_OK && state && strcmp(state, "42P04") == 0 && attempt == 0) {
                    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->db[i].copy);
                    again = true; /* a leftover: dropped below, made again */
                } else if (PQresultStatus(r) != PGRES_COMMAND_OK && !err) {
                    err = sql_error("cannot copy a template database", conn[i]);
                }
                PQclear(r);
            }
        }
        if (!again)
            break;
        for (size_t i = 0; i < t->ndb; i++) {
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->db[i].copy);
            command_ok(conn[i], sql); /* all of them, then all are made again */
        }
    }
    for (size_t i = 0; !err && i < t->ndb; i++) {
        const test_db *db = &t->db[i];
        snprintf(sql, sizeof sql,
                 "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s%s%s",
                 db->copy, db->copy, db->user, db->ro_user[0] ? ", " : "", db->ro_user);
        if (!command_ok(conn[i], sql))
            err = sql_error("cannot grant the roles their copy", conn[i]);
    }
    for (size_t i = 0; i < t->ndb; i++)
        PQfinish(conn[i]);
    return err;
}

/* Reads the test cluster's infra config into t->db and writes the app's:
 * the same with each database's name replaced by its copy's. */
static keel_error *configure(keel_test *t, const char *path)
{
    json_error_t je;
    t->config = json_load_file(path, 0, &je);
    json_t *server = json_array_get(json_object_get(t->config, "sql_servers"), 0);
    json_t *dbs = json_object_get(server, "databases");
    if (!json_is_object(dbs))
        return keel_error_new(KEEL_FAILED_PRECONDITION, "keel test: %s is not the test cluster's infra config", path);
    json_t *port = json_object_get(server, "port");
    snprintf(t->port, sizeof t->port, "%lld", (long long)json_integer_value(port));
    const char *logical;
    json_t *entry;
    json_object_foreach(dbs, logical, entry) {
        if (t->ndb == MAX_DATABASES)
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "keel test: more than %d databases", MAX_DATABASES);
        test_db *db = &t->db[t->ndb++];
        const char *name = json_string_value(json_object_get(entry, "name"));
        const char *user = json_string_value(json_object_get(entry, "user"));
        const char *ro = json_string_value(json_object_get(entry, "readonly_user"));
        if (!plain_name(logical) || !plain_name(name ? name : logical) || !plain_name(user) || (ro && !plain_name(ro)))
            return keel_error_new(KEEL_FAILED_PRECONDITION, "keel test: %s: database \"%s\" has names this library "
                                  "does not expect", path, logical);
        snprintf(db->logical, sizeof db->logical, "%s", logical);
        snprintf(db->template_name, sizeof db->template_name, "%s", name ? name : logical);
        snprintf(db->copy, sizeof db->copy, "%.40s_t%ld", logical, (long)getpid());
        snprintf(db->user, sizeof db->user, "%s", user);
        snprintf(db->ro_user, sizeof db->ro_user, "%s", ro ? ro : "");
        const char *keys[] = {"host", "port", "dbname", "user", "password", "sslmode", NULL};
        const char *values[] = {json_string_value(json_object_get(server, "host")), t->port, "postgres",
                                json_string_value(json_object_get(entry, "admin_user")),
                                json_string_value(json_object_get(entry, "admin_password")), "disable", NULL};
        memcpy(db->keys, keys, sizeof keys);
        memcpy(db->values, values, sizeof values);
        json_object_set_new(entry, "name", json_string(db->copy));
    }
    /* Beside the test cluster's own, in .keel/test (a folder of keel's). */
    char app_path[4200], tmp[4300];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    snprintf(app_path, sizeof app_path, "%.*s/infra.test-%ld.json", dir_len, slash ? path : ".", (long)getpid());
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", app_path);
    int fd = mkstemp(tmp);
    char *text = json_dumps(t->config, JSON_INDENT(2));
    bool ok = fd >= 0 && text && write(fd, text, strlen(text)) == (ssize_t)strlen(text) && close(fd) == 0 &&
              rename(tmp, app_path) == 0;
    if (!ok && fd >= 0)
        unlink(tmp);
    free(text);
    if (!ok)
        return keel_error_new(KEEL_INTERNAL, "keel test: cannot write %s: %s", app_path, strerror(errno));
    setenv("KEEL_INFRA_CONFIG", app_path, 1);
    return NULL;
}

keel_error *keel_test_start(const keel_service *const *services, keel_test **out)
{
    *out = NULL;
    const char *path = getenv("KEEL_TEST_INFRA_CONFIG");
    keel_test *t = calloc(1, sizeof *t);
    if (!t)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_arena_init(&t->arena, NULL, 0);
    keel_error *err = NULL;
    if (path && *path) {
        err = configure(t, path);
        double t0 = now_ms();
        if (!err && t->ndb)
            err = make_copies(t);
        t->setup_ms = now_ms() - t0;
    }
    keel_config cfg;
    keel_config_defaults(&cfg);
    if (!err)
        err = keel_config_from_env(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.log_requests = false;
    if (!err)
        err = keel_app_new(services, &cfg, &t->app);
    if (!err)
        err = keel_app_start(t->app);
    if (!err) {
        snprintf(t->url, sizeof t->url, "http://127.0.0.1:%u", keel_app_port(t->app));
        if (!(t->client = keel_client_new(t->url)))
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (err && (!path || !*path) && t->ndb == 0 && err->code == KEEL_FAILED_PRECONDITION)
        keel_error_prefix(err, "run the test under `keel test`, which makes the test databases (KEEL_TEST_INFRA_CONFIG "
                               "is not set)");
    if (err) {
        keel_test_stop(t);
        return err;
    }
    *out = t;
    return NULL;
}

void keel_test_stop(keel_test *t)
{
    if (!t)
        return;
    keel_client_free(t->client);
    if (t->app) {
        if (keel_app_port(t->app))
            keel_app_stop(t->app);
        keel_app_free(t->app);
    }
    for (size_t i = 0; i < t->ndb; i++)
        drop_copy(&t->db[i]);
    keel_arena_release(&t->arena);
    json_decref(t->config);
    free(t);
}

const char *keel_test_url(const keel_test *t)
{
    return t->url;
}

keel_client *keel_test_client(keel_test *t)
{
    return t->client;
}

keel_error *keel_test_request(keel_test *t, const char *method, const char *path, const char *json,
                              keel_client_answer *out)
{
    return keel_client_raw(t->client, method, path, json ? "application/json" : NULL, json, json ? strlen(json) : 0,
                           out, &t->arena);
}

const char *keel_test_database(const keel_test *t, const char *name)
{
    for (size_t i = 0; i < t->ndb; i++)
        if (strcmp(t->db[i].logical, name) == 0)
            return t->db[i].copy;
    return NULL;
}

double keel_test_setup_ms(const keel_test *t)
{
    return t->setup_ms;
}

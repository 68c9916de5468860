/* db.c - `keel db ...`: tools for the app's databases.  This file has the
 * dispatcher, conn-uri, and the helpers the db and migrate commands share
 * (which infra config to read, connection parameters per role); shell, proxy
 * and reset live in db_shell.c and db_proxy.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <unistd.h>

#include <jansson.h>
#include <keel/error.h>

#include "cli.h"
#include "local_pg.h"
#include "../lib/sql/pg_error.h"
#include "../lib/wipe.h"

bool cli_env_is_local(const char *env)
{
    return !env || strcmp(env, "local") == 0;
}

int cli_fail(const char *cmd, keel_error *err)
{
    fprintf(stderr, "%s: %s%s%s\n", cmd, err->message, err->cause ? ": " : "", err->cause ? err->cause : "");
    keel_error_free(err);
    return CLI_FAILED;
}

/* Environment names are plain words, so one can never smuggle a path in. */
static bool env_name_ok(const char *env)
{
    if (!*env)
        return false;
    for (const char *c = env; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              *c == '_'))
            return false;
    return true;
}

/* Which file holds env's infra config; NULL after printing why none does. */
static const char *infra_path(const char *cmd, const char *env, char *buf, size_t len)
{
    const char *given = getenv("KEEL_INFRA_CONFIG");
    if (env && !env_name_ok(env)) {
        fprintf(stderr, "%s: unknown environment \"%s\" (a name of letters, digits, - and _)\n", cmd, env);
        return NULL;
    }
    if (!env && given && *given)
        return given;
    if (cli_env_is_local(env)) {
        snprintf(buf, len, "%s/.keel/infra.local.json", keel_app_root());
        return buf;
    }
    if (!given || !*given) {
        fprintf(stderr,
                "%s: unknown environment \"%s\": KEEL_INFRA_CONFIG is not set "
                "(point it at the infra config of %s)\n",
                cmd, env, env);
        return NULL;
    }
    return given;
}

/* An infra config may say which environment it describes ("env"); a
 * mismatch means the wrong file is in KEEL_INFRA_CONFIG. */
static bool env_matches(const char *cmd, const keel_infra *infra, const char *env)
{
    const char *declared = keel__infra_env(infra);
    if (cli_env_is_local(env) || !declared || strcmp(declared, env) == 0)
        return true;
    fprintf(stderr, "%s: unknown environment \"%s\": KEEL_INFRA_CONFIG (%s) is for environment \"%s\"\n", cmd,
            env, keel__infra_path(infra), declared);
    return false;
}

keel_infra *cli_open_infra(const char *cmd, const char *env)
{
    char buf[1024];
    const char *path = infra_path(cmd, env, buf, sizeof buf);
    if (!path)
        return NULL;
    if (access(path, R_OK) != 0) {
        /* Say it plainly: the parser's "line -1" is no help here. */
        fprintf(stderr, "%s: cannot read infra config %s: %s%s\n", cmd, path, strerror(errno),
                path == buf ? " (run `keel run` once to provision the local databases)" : "");
        return NULL;
    }
    keel_infra *infra = NULL;
    keel_error *err = keel__infra_load(path, &infra);
    if (err) {
        bool local = path == buf;
        fprintf(stderr, "%s: %s%s\n", cmd, err->message,
                local ? " (run `keel run` once to provision the local databases)" : "");
        keel_error_free(err);
        return NULL;
    }
    if (!env_matches(cmd, infra, env)) {
        keel__infra_free(infra);
        return NULL;
    }
    return infra;
}

/* Turns the superuser request into the local socket connection: the cluster
 * trusts local connections from its owner (and root), no password. */
static keel_error *superuser_params(const char *env, keel_conn_params *p)
{
    if (!cli_env_is_local(env))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "--superuser works on the local environment only");
    local_pg pg;
    keel_error *err = local_pg_locate(keel_app_root(), &pg);
    if (err)
        return err;
    char port[16];
    snprintf(port, sizeof port, "%u", pg.port);
    bool ok = keel__conn_param_set(p, "host", pg.socket_dir) && keel__conn_param_set(p, "port", port) &&
              keel__conn_param_set(p, "user", "postgres") && keel__conn_param_set(p, "password", NULL) &&
              keel__conn_param_set(p, "sslmode", "disable") && keel__conn_param_set(p, "sslrootcert", NULL);
    return ok ? NULL : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

keel_error *cli_conn_params(keel_infra *infra, const char *env, const char *name, int role, keel_db_settings *out)
{
    keel_db_role r = role == CLI_ROLE_SUPERUSER ? KEEL_ROLE_APP : (keel_db_role)role;
    keel_error *err = keel__infra_settings(infra, name, r, NULL, out);
    if (!err && role == CLI_ROLE_SUPERUSER && (err = superuser_params(env, &out->conn)) != NULL)
        keel__db_settings_free(out);
    return err;
}

/* Keeps migration NOTICEs ("relation already exists, skipping") quiet. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

PGconn *cli_connect_admin(const char *cmd, keel_infra *infra, const char *name)
{
    keel_db_settings admin;
    keel_error *err = keel__infra_settings(infra, name, KEEL_ROLE_ADMIN, NULL, &admin);
    if (err) {
        cli_fail(cmd, err);
        return NULL;
    }
    PGconn *conn = PQconnectdbParams(admin.conn.keywords, (const char *const *)admin.conn.values, 0);
    keel__db_settings_free(&admin);
    if (PQstatus(conn) != CONNECTION_OK) {
        bool local = strstr(keel__infra_path(infra), "/.keel/infra.local.json") != NULL;
        const char *stopped = cli_stopped_hint(local ? NULL : "other");
        err = keel_error_new(KEEL_UNAVAILABLE, "cannot connect to database \"%s\"%s%s", name, stopped ? ": " : "",
                             stopped ? stopped : "");
        cli_fail(cmd, keel__pg_cause(err, conn, NULL));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet, NULL);
    return conn;
}

char *cli_migrations_dir(const char *cmd, json_t *model, const char *name)
{
    size_t i, j;
    json_t *svc, *db;
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "databases"), j, db) {
            const char *dir = json_string_value(json_object_get(db, "migrations"));
            const char *db_name = json_string_value(json_object_get(db, "name"));
            if (!json_is_true(json_object_get(db, "declared")) || !db_name || strcmp(db_name, name) != 0)
                continue;
            if (!dir) {
                fprintf(stderr, "%s: database \"%s\" declares no migrations folder\n", cmd, name);
                return NULL;
            }
            char *path = NULL;
            if (asprintf(&path, "%s/%s", dir[0] == '/' ? "" : keel_app_root(), dir) < 0)
                return NULL;
            return path;
        }
    }
    fprintf(stderr, "%s: the app declares no database \"%s\"\n", cmd, name);
    return NULL;
}

/* Reads a role flag; false when arg is not one. */
static bool role_flag(const char *arg, int *role)
{
    if (strcmp(arg, "--write") == 0)
        *role = KEEL_ROLE_APP;
    else if (strcmp(arg, "--admin") == 0)
        *role = KEEL_ROLE_ADMIN;
    else if (strcmp(arg, "--superuser") == 0)
        *role = CLI_ROLE_SUPERUSER;
    else if (strcmp(arg, "--read-only") == 0)
        *role = KEEL_ROLE_READONLY;
    else
        return false;
    return true;
}

int cli_db_args(int argc, char **argv, const char **name, const char **env, int *role, int *rest)
{
    *rest = argc;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            *rest = i + 1;
            break;
        } else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
            *env = argv[++i];
        } else if (role_flag(argv[i], role)) {
            continue;
        } else if (argv[i][0] != '-' && !*name) {
            *name = argv[i];
        } else {
            return CLI_USAGE;
        }
    }
    return *name ? CLI_OK : CLI_USAGE;
}

static int conn_uri(int argc, char **argv)
{
    const char *name = NULL, *env = NULL;
    int role = KEEL_ROLE_READONLY, rest;
    if (cli_db_args(argc, argv, &name, &env, &role, &rest) != CLI_OK || rest != argc) {
        cli_print_usage(stderr, "db");
        return CLI_USAGE;
    }
    keel_infra *infra = cli_open_infra("keel db conn-uri", env);
    if (!infra)
        return CLI_FAILED;
    char *uri = NULL;
    keel_db_settings s;
    keel_error *err = cli_conn_params(infra, env, name, role, &s);
    keel__infra_free(infra);
    if (!err) {
        err = keel__conn_uri(&s.conn, &uri);
        keel__db_settings_free(&s);
    }
    if (err)
        return cli_fail("keel db conn-uri", err);
    printf("%s\n", uri);
    keel__free_secret(uri);
    return CLI_OK;
}

/* keel db status|start|stop: the local cluster, which keeps running after
 * the app exits (so the next keel run starts in milliseconds). */
static int cluster_cmd(const char *sub, int argc)
{
    char cmd[32];
    snprintf(cmd, sizeof cmd, "keel db %s", sub);
    if (argc != 0) {
        cli_print_usage(stderr, "db");
        return CLI_USAGE;
    }
    local_pg pg;
    keel_error *err;
    if (!strcmp(sub, "start")) {
        err = local_pg_ensure(keel_app_root(), &pg);
        if (err)
            return cli_fail(cmd, err);
        printf("running on 127.0.0.1:%u (socket %s)\n", pg.port, pg.socket_dir);
        return CLI_OK;
    }
    err = local_pg_locate(keel_app_root(), &pg);
    if (err) {
        if (!strcmp(sub, "stop")) {
            keel_error_free(err);
            printf("no local cluster here (nothing to stop)\n");
            return CLI_OK;
        }
        return cli_fail(cmd, err);
    }
    if (!strcmp(sub, "stop")) {
        err = local_pg_stop(&pg);
        if (err)
            return cli_fail(cmd, err);
        printf("stopped (keel db start or keel run starts it again)\n");
        return CLI_OK;
    }
    bool running = local_pg_running(&pg);
    printf("%s on 127.0.0.1:%u (cluster %s)%s\n", running ? "running" : "stopped", pg.port, pg.pg_dir,
           running ? "" : "; start it with keel db start");
    return running ? CLI_OK : CLI_FAILED;
}

static int status_cmd(int argc, char **argv)
{
    (void)argv;
    return cluster_cmd("status", argc);
}

static int start_cmd(int argc, char **argv)
{
    (void)argv;
    return cluster_cmd("start", argc);
}

static int stop_cmd(int argc, char **argv)
{
    (void)argv;
    return cluster_cmd("stop", argc);
}

const char *cli_stopped_hint(const char *env)
{
    if (!cli_env_is_local(env))
        return NULL;
    local_pg pg;
    keel_error *err = local_pg_locate(keel_app_root(), &pg);
    if (err) {
        keel_error_free(err);
        return NULL;
    }
    return local_pg_running(&pg) ? NULL : "the local PostgreSQL cluster is stopped: start it with keel db start "
                                          "(keel run starts it too)";
}

int cli_db(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } subs[] = {{"conn-uri", conn_uri}, {"shell", cli_db_shell}, {"proxy", cli_db_proxy}, {"reset", cli_db_reset},
                 {"add-external", cli_db_add_external}, {"status", status_cmd}, {"start", start_cmd},
                 {"stop", stop_cmd}};
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        cli_print_usage(stdout, "db");
        return CLI_OK;
    }
    for (size_t i = 0; argc >= 1 && i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(argv[0], subs[i].name) == 0)
            return subs[i].fn(argc - 1, argv + 1);
    if (argc >= 1)
        fprintf(stderr, "keel db: unknown sub-command \"%s\"\n\n", argv[0]);
    cli_print_usage(stderr, "db");
    return CLI_USAGE;
}

/* db_external.c - the commands that edit an environment's infra config:
 * `keel db add-external` (an external database: the team's existing one)
 * and `keel infra set KEY JSON` (cors, pool, tracing, env), so settings are written
 * by a tool that checks them rather than by hand or by printf.  The result
 * is read back through the same parser the app uses before it replaces the
 * file. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "local_pg.h"
#include "../lib/core.h"
#include "../lib/wipe.h"

#define CMD "keel db add-external"

typedef struct ext_args {
    const char *name, *env, *host, *port, *dbname, *user, *sslmode, *sslrootcert, *secret;
} ext_args;

static int parse(int argc, char **argv, ext_args *a)
{
    struct { const char *flag; const char **slot; } flags[] = {
        {"--env", &a->env},         {"--host", &a->host},       {"--port", &a->port},
        {"--dbname", &a->dbname},   {"--user", &a->user},       {"--sslmode", &a->sslmode},
        {"--sslrootcert", &a->sslrootcert}, {"--password-secret", &a->secret},
    };
    for (int i = 0; i < argc; i++) {
        bool known = false;
        for (size_t f = 0; f < sizeof flags / sizeof *flags && !known; f++)
            if (!strcmp(argv[i], flags[f].flag) && i + 1 < argc) {
                *flags[f].slot = argv[++i];
                known = true;
            }
        if (known)
            continue;
        if (argv[i][0] == '-' || a->name)
            return CLI_USAGE;
        a->name = argv[i];
    }
    return a->name && a->host && a->user ? CLI_OK : CLI_USAGE;
}

/* The server entry with the same connection target, appended when none. */
static json_t *server_for(json_t *servers, const ext_args *a, json_int_t port)
{
    size_t i;
    json_t *s;
    json_array_foreach(servers, i, s) {
        json_t *sp = json_object_get(s, "port"), *mode = json_object_get(s, "sslmode");
        json_t *cert = json_object_get(s, "sslrootcert");
        if (json_is_true(json_object_get(s, "local_cluster")) ||
            !json_equal(json_object_get(s, "host"), json_string(a->host)))
            continue;
        bool same = (port ? json_integer_value(sp) == port : !sp) &&
                    (a->sslmode ? json_is_string(mode) && !strcmp(json_string_value(mode), a->sslmode) : !mode) &&
                    (a->sslrootcert ? json_is_string(cert) && !strcmp(json_string_value(cert), a->sslrootcert)
                                    : !cert);
        if (same)
            return s;
    }
    json_t *n = json_pack("{s:s, s:o}", "host", a->host, "databases", json_object());
    if (port)
        json_object_set_new(n, "port", json_integer(port));
    if (a->sslmode)
        json_object_set_new(n, "sslmode", json_string(a->sslmode));
    if (a->sslrootcert)
        json_object_set_new(n, "sslrootcert", json_string(a->sslrootcert));
    json_array_append_new(servers, n);
    return n;
}

int cli_db_add_external(int argc, char **argv)
{
    ext_args a = {0};
    if (parse(argc, argv, &a) != CLI_OK) {
        cli_print_usage(stderr, "db");
        return CLI_USAGE;
    }
    if (!keel__name_valid(a.name)) {
        fprintf(stderr, CMD ": \"%s\" is not a database name ([a-z][a-z0-9_]*, at most %d characters)\n", a.name,
                KEEL_NAME_MAX);
        return CLI_USAGE;
    }
    char *end = NULL;
    long port = a.port ? strtol(a.port, &end, 10) : 0;
    if (a.port && (*end || port < 1 || port > 65535)) {
        fprintf(stderr, CMD ": --port must be a number from 1 to 65535\n");
        return CLI_USAGE;
    }
    char path[1200];
    json_t *root = cli_infra_load(CMD, a.env, path, sizeof path);
    if (!root)
        return CLI_FAILED;
    json_t *servers = json_object_get(root, "sql_servers"), *s;
    size_t i;
    json_array_foreach(servers, i, s) {
        if (!json_object_get(json_object_get(s, "databases"), a.name))
            continue;
        if (json_is_true(json_object_get(s, "local_cluster"))) {
            fprintf(stderr, CMD ": \"%s\" is a database Keel manages on the local cluster\n", a.name);
            json_decref(root);
            return CLI_FAILED;
        }
        json_object_del(json_object_get(s, "databases"), a.name);
    }
    json_t *db = json_pack("{s:s, s:s}", "name", a.dbname ? a.dbname : a.name, "user", a.user);
    if (a.secret)
        json_object_set_new(db, "password", json_pack("{s:s}", "$secret", a.secret));
    json_object_set_new(json_object_get(server_for(servers, &a, port), "databases"), a.name, db);
    for (i = json_array_size(servers); i-- > 0;)
        if (!json_object_size(json_object_get(json_array_get(servers, i), "databases")))
            json_array_remove(servers, i);
    if (cli_infra_save(CMD, path, root) != CLI_OK)
        return CLI_FAILED;
    printf("%s: database \"%s\" on %s%s%s\n", path, a.name, a.host, a.port ? ":" : "", a.port ? a.port : "");
    return CLI_OK;
}

/* ---- editing an infra config (shared with keel infra set) ---------------------------- */

json_t *cli_infra_load(const char *cmd, const char *env, char *path, size_t len)
{
    const char *given = getenv("KEEL_INFRA_CONFIG");
    if (cli_env_is_local(env)) {
        snprintf(path, len, "%s/.keel/infra.local.json", keel_app_root());
    } else if (!given || !*given) {
        fprintf(stderr, "%s: environment \"%s\": KEEL_INFRA_CONFIG is not set (point it at its infra config)\n", cmd,
                env);
        return NULL;
    } else {
        snprintf(path, len, "%s", given);
    }
    json_error_t e;
    json_t *root = access(path, F_OK) == 0 ? json_load_file(path, JSON_REJECT_DUPLICATES | JSON_PRESERVE_ORDER, &e)
                                           : json_pack("{s:[]}", "sql_servers");
    if (!root || !json_is_object(root) ||
        (json_object_get(root, "sql_servers") && !json_is_array(json_object_get(root, "sql_servers")))) {
        fprintf(stderr, "%s: %s is not an infra config (fix it by hand: keel db conn-uri names the problem)\n", cmd,
                path);
        json_decref(root);
        return NULL;
    }
    if (!json_object_get(root, "sql_servers"))
        json_object_set_new(root, "sql_servers", json_array());
    return root;
}

int cli_infra_save(const char *cmd, const char *path, json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    keel_infra *check = NULL;
    keel_error *err = text ? keel__infra_parse(text, strlen(text), path, &check)
                           : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel__infra_free(check);
    if (!err)
        err = local_pg_write_private(path, text);
    keel__free_secret(text);
    return err ? cli_fail(cmd, err) : CLI_OK;
}

/* keel infra set KEY JSON [--env E]: a top-level setting of the infra config
 * other than its servers (cors, pool, env), checked by the app's own parser
 * before the file is replaced. */
int cli_infra(int argc, char **argv)
{
    const char *env = NULL, *key = NULL, *value = NULL;
    bool set = argc >= 1 && !strcmp(argv[0], "set");
    for (int i = 1; set && i < argc; i++) {
        if (!strcmp(argv[i], "--env") && i + 1 < argc)
            env = argv[++i];
        else if (!key)
            key = argv[i];
        else if (!value)
            value = argv[i];
        else
            set = false;
    }
    if (!set || !key || !value) {
        cli_print_usage(stderr, "infra");
        return CLI_USAGE;
    }
    if (!strcmp(key, "sql_servers")) {
        fprintf(stderr, "keel infra set: servers are added with keel db add-external (keel run writes the local "
                        "cluster's)\n");
        return CLI_USAGE;
    }
    json_error_t e;
    json_t *v = json_loads(value, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!v) {
        fprintf(stderr, "keel infra set: the value is not JSON: %s\n", e.text);
        return CLI_USAGE;
    }
    char path[1200];
    json_t *root = cli_infra_load("keel infra set", env, path, sizeof path);
    if (!root) {
        json_decref(v);
        return CLI_FAILED;
    }
    json_object_set_new(root, key, v);
    if (cli_infra_save("keel infra set", path, root) != CLI_OK)
        return CLI_FAILED;
    printf("%s: %s set\n", path, key);
    return CLI_OK;
}

/* migrate_cmd.c - `keel migrate status|up|down` and `keel db reset`: the
 * migrations of the app's databases, run by hand.  The migrations folder of
 * each database comes from the app model (the app binary knows it; the CLI
 * never guesses), and changes run as the database's admin (owner) role. */
#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <keel/migrate.h>

#include "cli.h"
#include "local_pg.h"

typedef struct mopts {
    const char *name, *env, *app;
    int steps;
    bool yes;
} mopts;

/* Parses [NAME] [--env E] [--app PATH] [--steps N] [--yes]; flags not in
 * allowed ("s" steps, "y" yes) are usage errors. */
static int parse(int argc, char **argv, mopts *o, const char *allowed)
{
    memset(o, 0, sizeof *o);
    o->steps = 1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "--env") == 0 && more) {
            o->env = argv[++i];
        } else if (strcmp(a, "--app") == 0 && more) {
            o->app = argv[++i];
        } else if (strcmp(a, "--steps") == 0 && more && strchr(allowed, 's')) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1000000) {
                fprintf(stderr, "keel migrate: --steps wants a positive number, not \"%s\"\n", argv[i]);
                return CLI_USAGE;
            }
            o->steps = (int)n;
        } else if ((strcmp(a, "--yes") == 0 || strcmp(a, "-y") == 0) && strchr(allowed, 'y')) {
            o->yes = true;
        } else if (a[0] != '-' && !o->name) {
            o->name = a;
        } else {
            return CLI_USAGE;
        }
    }
    return CLI_OK;
}

static json_t *load_model(const char *app)
{
    const char *path = cli_find_app(app);
    return path ? cli_load_app_model(path) : NULL;
}

/* Loads the migrations of database name (folder from the model). */
static keel_migration_set *load_set(const char *cmd, json_t *model, const char *name)
{
    char *dir = cli_migrations_dir(cmd, model, name);
    if (!dir)
        return NULL;
    keel_migration_set *set = NULL;
    keel_error *err = keel_migrations_load(dir, &set);
    free(dir);
    if (err)
        cli_fail(cmd, err);
    return set;
}

/* Names that look like a migration (they start with a digit) but do not end
 * in .sql, which loading ignores as golang-migrate does (3_x.up.sql.bak is
 * a backup); a .sql name that does not fit is an error already. */
static int looks_like_migration(const struct dirent *de)
{
    size_t n = strlen(de->d_name);
    return isdigit((unsigned char)de->d_name[0]) && !(n >= 4 && strcasecmp(de->d_name + n - 4, ".sql") == 0);
}

/* Lists the look-alikes of the folder, so that a file meant as a migration
 * (3_add_tag.up, 3_add_tag.up.sql.txt) is not skipped without a word. */
static void print_ignored(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, looks_like_migration, alphasort);
    for (int i = 0; i < n; i++) {
        printf("  ignored: %s (not <number>_<name>.up.sql: rename it if it is a migration)\n", names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

static void print_status(const char *name, const keel_migration_state *st, const keel_migration_set *set)
{
    size_t pending = 0;
    for (size_t i = 0; i < set->count; i++)
        pending += set->items[i].version > st->version;
    if (st->tracked)
        printf("%s: version %lld, %s, %zu pending\n", name, (long long)st->version, st->dirty ? "dirty" : "clean",
               pending);
    else
        printf("%s: version none, clean, %zu pending\n", name, pending);
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].version > st->version)
            printf("  pending: %s\n", set->items[i].name);
    print_ignored(set->dir);
    if (st->dirty)
        printf("  the last migration failed half-way: repair the schema by hand, then set "
               "schema_migrations.dirty to false\n");
}

/* What one database's status/up/down does once connected. */
typedef enum { ACT_STATUS, ACT_UP, ACT_DOWN } action;

static int act_one(const char *cmd, keel_infra *infra, json_t *model, const char *name, action act, int steps)
{
    keel_migration_set *set = load_set(cmd, model, name);
    PGconn *conn = set ? cli_connect_admin(cmd, infra, name) : NULL;
    if (!conn) {
        keel_migrations_free(set);
        return CLI_FAILED;
    }
    keel_migration_state st;
    int n = 0;
    keel_error *err = NULL;
    if (act == ACT_UP)
        err = keel_migrate_up(conn, set, &n);
    else if (act == ACT_DOWN)
        err = keel_migrate_down(conn, set, steps, &n);
    if (!err)
        err = keel_migrate_state(conn, &st);
    if (!err && act == ACT_STATUS)
        print_status(name, &st, set);
    else if (!err)
        printf("%s: %s %d migration%s, now at version %lld\n", name, act == ACT_UP ? "applied" : "reverted", n,
               n == 1 ? "" : "s", (long long)st.version);
    PQfinish(conn);
    keel_migrations_free(set);
    return err ? cli_fail(cmd, err) : CLI_OK;
}

int cli_migrate_up(const char *cmd, keel_infra *infra, json_t *model, const char *name)
{
    return act_one(cmd, infra, model, name, ACT_UP, 0);
}

/* Runs act on one database or, without a name, on every declared one. */
static int run_action(const char *cmd, const mopts *o, action act)
{
    json_t *model = load_model(o->app);
    keel_infra *infra = model ? cli_open_infra(cmd, o->env) : NULL;
    int rc = CLI_FAILED;
    if (infra && o->name) {
        rc = act_one(cmd, infra, model, o->name, act, o->steps);
    } else if (infra) {
        const char **names = cli_declared_databases(model);
        rc = CLI_OK;
        for (size_t i = 0; names && names[i]; i++)
            if (act_one(cmd, infra, model, names[i], act, o->steps) != CLI_OK)
                rc = CLI_FAILED;
        free(names);
    }
    keel__infra_free(infra);
    json_decref(model);
    return rc;
}

int cli_migrate(int argc, char **argv)
{
    mopts o;
    const char *sub = argc >= 1 ? argv[0] : "";
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        cli_print_usage(stdout, "migrate");
        return CLI_OK;
    }
    bool down = strcmp(sub, "down") == 0;
    if ((strcmp(sub, "status") != 0 && strcmp(sub, "up") != 0 && !down) ||
        parse(argc - 1, argv + 1, &o, down ? "s" : "") != CLI_OK || (down && !o.name)) {
        if (*sub && strcmp(sub, "status") && strcmp(sub, "up") && !down)
            fprintf(stderr, "keel migrate: unknown sub-command \"%s\"\n\n", sub);
        cli_print_usage(stderr, "migrate");
        return CLI_USAGE;
    }
    if (strcmp(sub, "status") == 0)
        return run_action("keel migrate status", &o, ACT_STATUS);
    return run_action(down ? "keel migrate down" : "keel migrate up", &o, down ? ACT_DOWN : ACT_UP);
}

/* ---- keel db reset ------------------------------------------------------- */

#define RESET "keel db reset"

/* Asks on the terminal; without one, --yes is required (a script must say
 * it means to destroy data).  Returns CLI_OK to go ahead. */
static int confirm(const char *name, bool yes)
{
    if (yes)
        return CLI_OK;
    if (!isatty(STDIN_FILENO)) {
        fprintf(stderr, RESET ": stdin is not a terminal: pass --yes to reset database \"%s\"\n", name);
        return CLI_USAGE;
    }
    fprintf(stderr, "Reset database %s? [y/N] ", name);
    char line[64] = "";
    if (!fgets(line, sizeof line, stdin) || (strcmp(line, "y\n") != 0 && strcmp(line, "yes\n") != 0)) {
        fprintf(stderr, RESET ": cancelled, database \"%s\" is unchanged\n", name);
        return CLI_FAILED;
    }
    return CLI_OK;
}

/* Drops the database, provisions it again (same roles and passwords) and
 * refreshes the local infra config for every declared database. */
static keel_error *recreate(json_t *model, const char *name)
{
    local_pg pg;
    const char *one[] = {name, NULL};
    const char **names = cli_declared_databases(model);
    char infra[1024];
    keel_error *err = local_pg_ensure(keel_app_root(), &pg);
    if (!err)
        err = local_pg_drop_database(&pg, name);
    if (!err)
        err = local_pg_provision(&pg, one);
    if (!err && names)
        err = local_pg_write_infra(&pg, names, infra, sizeof infra);
    free(names);
    return err;
}

int cli_db_reset(int argc, char **argv)
{
    mopts o;
    if (parse(argc, argv, &o, "y") != CLI_OK || !o.name) {
        cli_print_usage(stderr, "db");
        return CLI_USAGE;
    }
    if (!cli_env_is_local(o.env)) {
        fprintf(stderr, RESET ": works on the local environment only (not \"%s\")\n", o.env);
        return CLI_USAGE;
    }
    json_t *model = load_model(o.app);
    char *dir = model ? cli_migrations_dir(RESET, model, o.name) : NULL;
    bool known = dir != NULL;
    free(dir);
    int rc = known ? confirm(o.name, o.yes) : CLI_FAILED;
    keel_error *err = rc == CLI_OK ? recreate(model, o.name) : NULL;
    if (err)
        rc = cli_fail(RESET, err);
    if (rc == CLI_OK) {
        fprintf(stderr, "Database %s dropped and created again; applying migrations ...\n", o.name);
        mopts up = o;
        up.env = "local";
        rc = run_action(RESET, &up, ACT_UP);
    }
    json_decref(model);
    return rc;
}

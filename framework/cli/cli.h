/* cli.h - private: the keel command's sub-commands and shared helpers. */
#ifndef KEEL_CLI_H
#define KEEL_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <libpq-fe.h>

#include "keel/app.h"
#include "../lib/sql/infra.h"

/* Exit statuses of every keel command. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* keel.json (project.c): the app as its team describes it for the keel
 * command.  found is false when no keel.json was found (then error may say
 * why one could not be read). */
#define CLI_WATCH_MAX 32
typedef struct cli_project {
    bool found;
    char root[4096];          /* the folder holding keel.json: the app root */
    char app[4200];           /* the app binary, absolute */
    char build[1024];         /* the build command ("" when none) */
    char name[64];
    char watch[CLI_WATCH_MAX][256]; /* relative to root; none: the whole root */
    size_t nwatch;
    char error[4800];
} cli_project;

/* Looks for keel.json in $KEEL_APP_ROOT or the current folder and its
 * parents, once, at start; when found (and KEEL_APP_ROOT was not set) its
 * folder becomes KEEL_APP_ROOT for the command and the app it starts. */
void cli_project_init(void);
/* What cli_project_init found; never NULL. */
const cli_project *cli_project_get(void);

/* Runs keel.json's build command in the app root (nothing without one);
 * true when it succeeded.  Its output (the compiler's errors) goes straight
 * to the terminal; cmd prefixes the messages. */
bool cli_project_build(const cli_project *p, const char *cmd);
int cli_new(int argc, char **argv);
int cli_build(int argc, char **argv);      /* build.c */

/* When env is the local one and its cluster exists but is stopped: a
 * sentence saying so and which command starts it; else NULL. */
const char *cli_stopped_hint(const char *env);

/* Each command gets the arguments after its name. */
int cli_run(int argc, char **argv);
int cli_app_model(int argc, char **argv);
int cli_gen(int argc, char **argv);        /* gen.c */

int cli_db(int argc, char **argv);
int cli_secrets(int argc, char **argv);
int cli_db_shell(int argc, char **argv);
int cli_db_add_external(int argc, char **argv);
int cli_infra(int argc, char **argv);
/* The environment's infra config for editing (an empty one when the local
 * file does not exist yet) and its path in path; NULL after printing why. */
struct json_t *cli_infra_load(const char *cmd, const char *env, char *path, size_t len);
/* Checks root with the app's parser, then writes it to path (0600,
 * atomically); takes root.  CLI_OK, or CLI_FAILED after printing why. */
int cli_infra_save(const char *cmd, const char *path, struct json_t *root);
int cli_db_proxy(int argc, char **argv);
int cli_db_reset(int argc, char **argv);
int cli_migrate(int argc, char **argv);
int cli_secrets(int argc, char **argv); /* secrets_cmd.c */

/* Prints a command's usage text (from keel.c's table) on out; false when the
 * command is unknown. */
bool cli_print_usage(FILE *out, const char *command);

/* Runs the app binary with --app-model and parses what it prints; NULL after
 * printing the reason.  The caller owns the result. */
struct json_t *cli_load_app_model(const char *app_path);

/* The names of the databases the app declares (not references), in a
 * NULL-terminated array; the caller frees the array only (names are borrowed
 * from model). */
const char **cli_declared_databases(struct json_t *model);

/* Finds the application binary: --app PATH (consumed from argv by the caller),
 * $KEEL_APP, keel.json's "app", else (inside the Keel repository) the
 * example's build locations.  Returns a path or NULL after printing what was
 * tried and what to do. */
const char *cli_find_app(const char *given);

/* ---- shared by the db and migrate commands (db.c) ---- */

/* The roles a command may connect as: the infra roles plus the local
 * cluster's superuser (postgres over the Unix socket). */
enum { CLI_ROLE_SUPERUSER = 100 };

/* True when env names the local environment (NULL means the default). */
bool cli_env_is_local(const char *env);

/* Loads the infra config for env (NULL: $KEEL_INFRA_CONFIG, else the local
 * one; "local": the local one; other names: $KEEL_INFRA_CONFIG, required).
 * NULL after printing the reason, prefixed with cmd. */
keel_infra *cli_open_infra(const char *cmd, const char *env);

/* Prints "cmd: message: cause" on stderr, frees err, returns CLI_FAILED. */
int cli_fail(const char *cmd, keel_error *err);

/* The settings for database name as role (a keel_db_role or
 * CLI_ROLE_SUPERUSER, local only: the cluster's socket as postgres).  Free
 * with keel__db_settings_free; nothing to free on error. */
keel_error *cli_conn_params(keel_infra *infra, const char *env, const char *name, int role, keel_db_settings *out);

/* Connects to database name as its admin (owner) role; NULL after printing. */
PGconn *cli_connect_admin(const char *cmd, keel_infra *infra, const char *name);
/* Applies database name's pending migrations (folder from the model) with
 * its admin role and says how many; CLI_OK or CLI_FAILED after printing why
 * (migrate_cmd.c). */
int cli_migrate_up(const char *cmd, keel_infra *infra, struct json_t *model, const char *name);
int cli_test(int argc, char **argv);       /* test_cmd.c */

/* The migrations folder the app model declares for database name, joined to
 * the app root (malloc'd); NULL after printing (unknown database...). */
char *cli_migrations_dir(const char *cmd, struct json_t *model, const char *name);

/* Parses NAME [--env E] [--write|--admin|--superuser|--read-only] [-- REST...]
 * (*role keeps its value when no flag is given); *rest receives the index
 * after "--" (argc when absent).  Returns CLI_OK or CLI_USAGE (the caller
 * prints the usage). */
int cli_db_args(int argc, char **argv, const char **name, const char **env, int *role, int *rest);

#endif

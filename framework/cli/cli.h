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

/* Each command gets the arguments after its name. */
int cli_run(int argc, char **argv);
int cli_app_model(int argc, char **argv);

int cli_db(int argc, char **argv);
int cli_secrets(int argc, char **argv);
int cli_db_shell(int argc, char **argv);
int cli_db_add_external(int argc, char **argv);
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
 * $KEEL_APP, else the example's usual build locations.  Returns a path or NULL
 * after printing what was tried. */
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

/* The migrations folder the app model declares for database name, joined to
 * the app root (malloc'd); NULL after printing (unknown database...). */
char *cli_migrations_dir(const char *cmd, struct json_t *model, const char *name);

/* Parses NAME [--env E] [--write|--admin|--superuser|--read-only] [-- REST...]
 * (*role keeps its value when no flag is given); *rest receives the index
 * after "--" (argc when absent).  Returns CLI_OK or CLI_USAGE (the caller
 * prints the usage). */
int cli_db_args(int argc, char **argv, const char **name, const char **env, int *role, int *rest);

#endif

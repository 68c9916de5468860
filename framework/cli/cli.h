/* cli.h - private: the keel command's sub-commands and shared helpers. */
#ifndef KEEL_CLI_H
#define KEEL_CLI_H

/* Exit statuses of every keel command. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Each command gets the arguments after its name. */
int cli_run(int argc, char **argv);
int cli_app_model(int argc, char **argv);

int cli_db(int argc, char **argv);

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

#endif

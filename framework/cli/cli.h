/* cli.h - private: the keel command's sub-commands and shared helpers. */
#ifndef KEEL_CLI_H
#define KEEL_CLI_H

/* Exit statuses of every keel command. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Each command gets the arguments after its name. */
int cli_run(int argc, char **argv);
int cli_app_model(int argc, char **argv);

/* Finds the application binary: --app PATH (consumed from argv by the caller),
 * $KEEL_APP, else the example's usual build locations.  Returns a path or NULL
 * after printing what was tried. */
const char *cli_find_app(const char *given);

#endif

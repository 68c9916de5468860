/* keel.c - the keel command: dispatches to one sub-command per file. */
#include <stdio.h>
#include <string.h>

#include <keel/keel.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"run", cli_run, "run [--port N] [--app PATH]   start the app on http://localhost:4000"},
    {"db", cli_db, "db conn-uri NAME [--write|--admin] print a postgresql:// URI for a database"},
    {"app-model", cli_app_model, "app-model [--app PATH]        print the app's services, endpoints and schemas as JSON"},
};

static void print_help(FILE *out)
{
    fprintf(out, "keel %s - the Keel backend framework's command\n\nusage: keel COMMAND [ARGS]\n\ncommands:\n",
            KEEL_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  keel %s\n", commands[i].summary);
    fprintf(out, "\nexit status: 0 success, 1 failure, 2 usage error\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("keel %s\n", KEEL_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "keel: unknown command \"%s\"\n\n", argv[1]);
    print_help(stderr);
    return CLI_USAGE;
}

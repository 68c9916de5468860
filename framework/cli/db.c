/* db.c - `keel db ...`: tools for the app's databases.  This file has
 * conn-uri; the CLI issue adds shell, proxy and reset. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include <keel/error.h>

#include "../lib/infra.h"
#include "cli.h"

/* The infra config to read: $KEEL_INFRA_CONFIG, else the local one. */
static const char *infra_path(char *buf, size_t len)
{
    const char *env = getenv("KEEL_INFRA_CONFIG");
    if (env && *env)
        return env;
    const char *root = getenv("KEEL_APP_ROOT");
    snprintf(buf, len, "%s/.keel/infra.local.json", root && *root ? root : ".");
    return buf;
}

static int conn_uri(int argc, char **argv)
{
    const char *name = NULL;
    keel_db_role role = KEEL_ROLE_READONLY;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--write") == 0)
            role = KEEL_ROLE_APP;
        else if (strcmp(argv[i], "--admin") == 0)
            role = KEEL_ROLE_ADMIN;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "usage: keel db conn-uri NAME [--write | --admin]\n");
            return CLI_USAGE;
        }
    }
    if (!name) {
        fprintf(stderr, "usage: keel db conn-uri NAME [--write | --admin]\n");
        return CLI_USAGE;
    }
    char buf[1024];
    const char *path = infra_path(buf, sizeof buf);
    keel_infra *infra = NULL;
    keel_error *err = keel__infra_load(path, &infra);
    char *uri = NULL;
    if (!err)
        err = keel__infra_uri(infra, name, role, &uri);
    keel__infra_free(infra);
    if (err) {
        fprintf(stderr, "keel db conn-uri: %s%s\n", err->message,
                err->code == KEEL_FAILED_PRECONDITION ? " (run `keel run` once to provision the local databases)" : "");
        keel_error_free(err);
        return CLI_FAILED;
    }
    printf("%s\n", uri);
    sodium_memzero(uri, strlen(uri));
    free(uri);
    return CLI_OK;
}

int cli_db(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "conn-uri") == 0)
        return conn_uri(argc - 1, argv + 1);
    fprintf(stderr, "usage: keel db conn-uri NAME [--write | --admin]\n");
    return CLI_USAGE;
}

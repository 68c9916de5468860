/* app_model.c - `keel app-model`: asks the application binary for its model
 * (services, endpoints, schemas) and prints it; the CLI never parses C. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_app_model(int argc, char **argv)
{
    const char *app = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--app") == 0 && i + 1 < argc) {
            app = argv[++i];
        } else {
            fprintf(stderr, "usage: keel app-model [--app PATH]\n");
            return CLI_USAGE;
        }
    }
    const char *path = cli_find_app(app);
    if (!path)
        return CLI_FAILED;
    execl(path, path, "--app-model", (char *)NULL);
    fprintf(stderr, "keel app-model: cannot start %s: %s\n", path, strerror(errno));
    return CLI_FAILED;
}

json_t *cli_load_app_model(const char *app_path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --app-model", app_path);
    if (strchr(app_path, '\'')) {
        fprintf(stderr, "keel: the app path must not contain a single quote\n");
        return NULL;
    }
    FILE *p = popen(cmd, "r");
    if (!p) {
        fprintf(stderr, "keel: cannot run %s: %s\n", app_path, strerror(errno));
        return NULL;
    }
    json_error_t e;
    json_t *model = json_loadf(p, 0, &e);
    int status = pclose(p);
    if (!model || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "keel: %s --app-model failed (the app did not start: see the message above)\n", app_path);
        json_decref(model);
        return NULL;
    }
    return model;
}

const char **cli_declared_databases(json_t *model)
{
    size_t n = 0, i, j;
    json_t *svc, *db;
    json_array_foreach(json_object_get(model, "services"), i, svc)
        n += json_array_size(json_object_get(svc, "databases"));
    const char **names = calloc(n + 1, sizeof *names);
    if (!names)
        return NULL;
    n = 0;
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "databases"), j, db) {
            if (json_is_true(json_object_get(db, "declared")))
                names[n++] = json_string_value(json_object_get(db, "name"));
        }
    }
    return names;
}

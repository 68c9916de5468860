/* app_model.c - `keel app-model`: asks the application binary for its model
 * (services, endpoints, schemas) and prints it; the CLI never parses C. */
#include <errno.h>
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

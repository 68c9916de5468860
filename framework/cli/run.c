/* run.c - `keel run`: starts the application binary on a port, replacing this
 * process so that signals (Ctrl-C) reach the app directly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char *cli_find_app(const char *given)
{
    static const char *const usual[] = {"build/services/keel-example", "services/keel-example"};
    if (given)
        return access(given, X_OK) == 0 ? given : (fprintf(stderr, "keel: %s is not an executable\n", given), NULL);
    const char *env = getenv("KEEL_APP");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : (fprintf(stderr, "keel: KEEL_APP=%s is not an executable\n", env), NULL);
    for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++)
        if (access(usual[i], X_OK) == 0)
            return usual[i];
    fprintf(stderr, "keel: no application binary found: pass --app PATH or set KEEL_APP "
                    "(looked for build/services/keel-example and services/keel-example; run ./dev build)\n");
    return NULL;
}

int cli_run(int argc, char **argv)
{
    const char *app = NULL;
    const char *port = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc) {
            app = argv[++i];
        } else {
            fprintf(stderr, "usage: keel run [--port N] [--app PATH]\n");
            return CLI_USAGE;
        }
    }
    if (port) {
        char *end;
        long n = strtol(port, &end, 10);
        if (*end || n < 1 || n > 65535) {
            fprintf(stderr, "keel run: --port wants a number from 1 to 65535, not \"%s\"\n", port);
            return CLI_USAGE;
        }
        setenv("PORT", port, 1);
    }
    const char *path = cli_find_app(app);
    if (!path)
        return CLI_FAILED;
    fprintf(stderr, "keel run: starting %s on http://localhost:%s\n", path,
            getenv("PORT") ? getenv("PORT") : "4000");
    execl(path, path, (char *)NULL);
    fprintf(stderr, "keel run: cannot start %s: %s\n", path, strerror(errno));
    return CLI_FAILED;
}

/* run.c - `keel run`: starts the application binary on a port, replacing this
 * process so that signals (Ctrl-C) reach the app directly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <keel/error.h>

#include "cli.h"
#include "local_pg.h"

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

/* Provisions the local cluster and the app's databases, and points the app
 * at them through KEEL_INFRA_CONFIG.  Returns 0 or 1 (reason printed). */
static int prepare_databases(const char *app_path)
{
    json_t *model = cli_load_app_model(app_path);
    if (!model)
        return 1;
    const char **names = cli_declared_databases(model);
    int rc = 0;
    if (names && names[0]) {
        local_pg pg;
        char infra[1024];
        keel_error *err = local_pg_ensure(keel_app_root(), &pg);
        if (!err)
            err = local_pg_provision(&pg, names);
        if (!err)
            err = local_pg_write_infra(&pg, names, infra, sizeof infra);
        if (err) {
            fprintf(stderr, "keel run: %s%s%s\n", err->message, err->cause ? ": " : "", err->cause ? err->cause : "");
            keel_error_free(err);
            rc = 1;
        } else {
            setenv("KEEL_INFRA_CONFIG", infra, 1);
            setenv("KEEL_APP_ROOT", pg.root, 1);
        }
    }
    free(names);
    json_decref(model);
    return rc;
}

/* Replaces this process with the app, behind $KEEL_RUN_WRAPPER when set (a
 * command and its options split on spaces, e.g. "valgrind --leak-check=full"
 * or "gdb --args").  Returns only on failure. */
static void exec_app(const char *path)
{
    char *argv[64];
    size_t n = 0;
    const char *wrapper = getenv("KEEL_RUN_WRAPPER");
    char *copy = wrapper && *wrapper ? strdup(wrapper) : NULL;
    char *save = NULL;
    for (char *word = copy ? strtok_r(copy, " ", &save) : NULL; word && n < 62; word = strtok_r(NULL, " ", &save))
        argv[n++] = word;
    argv[n++] = (char *)path;
    argv[n] = NULL;
    execvp(argv[0], argv);
    free(copy);
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
    if (prepare_databases(path) != 0)
        return CLI_FAILED;
    fprintf(stderr, "keel run: starting %s on http://localhost:%s\n", path,
            getenv("PORT") ? getenv("PORT") : "4000");
    exec_app(path);
    fprintf(stderr, "keel run: cannot start %s: %s\n", path, strerror(errno));
    return CLI_FAILED;
}

/* db_shell.c - `keel db shell NAME`: replaces keel with the real psql,
 * connected to a database as one of its roles (read-only unless asked).
 * The password travels in PGPASSWORD, never in psql's arguments, so it
 * does not show in ps or /proc/PID/cmdline (the environment is readable by
 * the same user only).  Piped input stops at the first failing statement
 * with a non-zero exit, as a script should. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"

#define CMD "keel db shell"

/* Sets or clears an environment variable for psql from a parameter. */
static void env_from(const char *var, const char *value)
{
    if (value)
        setenv(var, value, 1);
    else
        unsetenv(var);
}

/* Whether the user's psql arguments set ON_ERROR_STOP themselves (-v, --set
 * or --variable, in any spelling): then theirs is left alone. */
static bool sets_on_error_stop(int argc, char **argv, int rest)
{
    for (int i = rest; i < argc; i++)
        if (strstr(argv[i], "ON_ERROR_STOP"))
            return true;
    return false;
}

/* Builds psql's argument vector: connection pieces without the password,
 * ON_ERROR_STOP for piped input, then whatever followed "--" on keel's
 * command line.  psql reading a script carries on after a failed statement
 * and exits 0, so `... | keel db shell` would report success after
 * "permission denied"; with ON_ERROR_STOP it stops there and exits 3. */
static char **psql_argv(const keel_conn_params *p, int argc, char **argv, int rest)
{
    char **out = calloc((size_t)(argc - rest) + 12, sizeof *out);
    if (!out)
        return NULL;
    size_t n = 0;
    out[n++] = "psql";
    const char *flags[] = {"-h", "host", "-p", "port", "-U", "user", "-d", "dbname"};
    for (size_t i = 0; i < 8; i += 2) {
        const char *v = keel__conn_param(p, flags[i + 1]);
        if (v) {
            out[n++] = (char *)flags[i];
            out[n++] = (char *)v;
        }
    }
    if (!isatty(STDIN_FILENO) && !sets_on_error_stop(argc, argv, rest)) {
        out[n++] = "-v";
        out[n++] = "ON_ERROR_STOP=1";
    }
    for (int i = rest; i < argc; i++)
        out[n++] = argv[i];
    return out;
}

int cli_db_shell(int argc, char **argv)
{
    const char *name = NULL, *env = NULL;
    int role = KEEL_ROLE_READONLY, rest;
    if (cli_db_args(argc, argv, &name, &env, &role, &rest) != CLI_OK) {
        cli_print_usage(stderr, "db");
        return CLI_USAGE;
    }
    keel_infra *infra = cli_open_infra(CMD, env);
    if (!infra)
        return CLI_FAILED;
    /* psql's own "Connection refused" would not say what to do. */
    const char *stopped = strstr(keel__infra_path(infra), "/.keel/infra.local.json") ? cli_stopped_hint(NULL) : NULL;
    if (stopped) {
        keel__infra_free(infra);
        fprintf(stderr, CMD ": %s\n", stopped);
        return CLI_FAILED;
    }
    keel_db_settings s;
    keel_error *err = cli_conn_params(infra, env, name, role, &s);
    keel__infra_free(infra);
    if (err)
        return cli_fail(CMD, err);
    env_from("PGPASSWORD", keel__conn_param(&s.conn, "password"));
    env_from("PGSSLMODE", keel__conn_param(&s.conn, "sslmode"));
    env_from("PGSSLROOTCERT", keel__conn_param(&s.conn, "sslrootcert"));
    /* Other PG* variables would override nothing we pass, but a stray
     * PGSERVICE or PGPASSFILE could; the connection is fully specified. */
    unsetenv("PGSERVICE");
    char **args = psql_argv(&s.conn, argc, argv, rest);
    if (args)
        execvp("psql", args);
    fprintf(stderr, CMD ": cannot start psql: %s (install it: apt-get install -y postgresql-client)\n",
            strerror(errno));
    free(args);
    keel__db_settings_free(&s);
    return CLI_FAILED;
}

/* keel.c - the keel command: dispatches to one sub-command per file and
 * holds every command's usage text (for `keel help COMMAND`, `keel COMMAND
 * --help` and usage errors), so the texts live in one place. */
#include <stdio.h>
#include <string.h>

#include <keel/keel.h>

#include "cli.h"

static int help_cmd(int argc, char **argv);

static const struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
    const char *usage;
} commands[] = {
    {"run", cli_run, "run [--port N] [--watch] [--app PATH]  build and start the app on http://localhost:4000",
     "usage: keel run [--port N] [--watch] [--app PATH] [--dashboard-port N | --no-dashboard]\n\n"
     "Builds the app with keel.json's \"build\" command, provisions the local PostgreSQL cluster (.keel/pg)\n"
     "and the app's databases, then replaces itself with the app (PORT, default 4000).  The app is\n"
     "--app PATH, $KEEL_APP, or keel.json's \"app\" (keel.json is looked for in this folder and its\n"
     "parents; its folder is the app root).\n"
     "--watch keeps keel running: when a watched file changes (keel.json's \"watch\", else the whole\n"
     "app folder but build/ and hidden files) it rebuilds; a good build restarts the app (the cluster\n"
     "stays up, new migrations are applied), a failed one prints the compiler's errors and leaves the\n"
     "running app serving.\n"
     "The app serves the local development dashboard on http://127.0.0.1:9400/ (--dashboard-port N,\n"
     "0 for any free port, or $KEEL_DASHBOARD_PORT; --no-dashboard for none): service catalog, API\n"
     "explorer, traces, architecture diagram, migrations and a read-only query box.\n"
     "$KEEL_RUN_WRAPPER (e.g. \"valgrind --leak-check=full\") runs the app under a wrapper.\n"},
    {"infra", cli_infra, "infra set KEY JSON [--env E]          change a setting of the infra config",
     "usage: keel infra set KEY JSON [--env E]\n\n"
     "Sets a top-level key of the environment's infra config (.keel/infra.local.json locally, else\n"
     "$KEEL_INFRA_CONFIG) to the JSON value, after checking the result with the app's own parser:\n"
     "  keel infra set cors '{\"allow_origins\": [\"http://localhost:5173\"]}'\n"
     "  keel infra set pool '{\"max_connections\": 40}'\n"
     "Servers are added with keel db add-external; keel run writes the local cluster's.\n"},
    {"new", cli_new, "new NAME [DIR]                         make a new app that builds and runs at once",
     "usage: keel new NAME [DIR]\n\n"
     "Creates DIR (default NAME) with keel.json, a Makefile (pkg-config keel, with the run path of the\n"
     "installed libkeel), main.c, one service NAME with its own database, a migration, typed and raw\n"
     "endpoints, a README and a .gitignore (build/, .keel/, secrets/*.key).  Then: cd DIR && keel run.\n"},
    {"db", cli_db, "db shell|conn-uri|status|start|stop ...  work with the app's databases",
     "usage:\n"
     "  keel db shell NAME [--env E] [--write | --admin | --superuser] [-- PSQL-ARGS...]\n"
     "      open psql on database NAME; read-only unless --write (NAME_app), --admin (the owner)\n"
     "      or --superuser (postgres over the local socket; local only).  Standard input may be piped:\n"
     "      it stops at the first failing statement (psql -v ON_ERROR_STOP=1, exit status 3).\n"
     "  keel db conn-uri NAME [--env E] [--write | --admin | --superuser]\n"
     "      print a postgresql:// URI for the database (read-only role by default)\n"
     "  keel db proxy [--port N] [--env E]\n"
     "      listen on 127.0.0.1:N (default 5439) and forward connections to the environment's server\n"
     "  keel db reset NAME [--yes] [--app PATH]\n"
     "      drop and recreate a local database, then apply its migrations (asks unless --yes)\n"
     "  keel db status | start | stop\n"
     "      the local PostgreSQL cluster, which keeps running after the app exits: whether it runs\n"
     "      (exit status 1 when stopped), start it (creating it on first use), stop it\n"
     "  keel db add-external NAME --host H --user U [--port P] [--dbname D] [--sslmode M]\n"
     "                       [--sslrootcert FILE] [--password-secret SECRET] [--env E]\n"
     "      list an external database in the environment's infra config (the password is the secret\n"
     "      its keel_extdb declares, unless --password-secret names another)\n\n"
     "--env E picks the environment: local (the default: .keel/infra.local.json under $KEEL_APP_ROOT)\n"
     "or another name, whose infra config is read from $KEEL_INFRA_CONFIG.\n"},
    {"migrate", cli_migrate, "migrate status|up|down ...            show or move the databases' migrations",
     "usage:\n"
     "  keel migrate status [NAME] [--env E] [--app PATH]\n"
     "      applied version, dirty flag and pending files of each database (or NAME)\n"
     "  keel migrate up [NAME] [--env E] [--app PATH]\n"
     "      apply pending migrations as the admin role\n"
     "  keel migrate down NAME [--steps N] [--env E] [--app PATH]\n"
     "      revert the last N (default 1) migrations with their .down.sql files\n\n"
     "Migrations folders come from the app model (--app PATH or $KEEL_APP), relative to $KEEL_APP_ROOT.\n"},
    {"secrets", cli_secrets, "secrets set|list|rm|rotate-key|check ...  the encrypted secrets store",
     "usage:\n"
     "  keel secrets set [--env NAME] SECRET_NAME     read the value from standard input (no echo)\n"
     "  keel secrets list [--env NAME]                names and when each was set; never values\n"
     "  keel secrets rm [--env NAME] SECRET_NAME\n"
     "  keel secrets rotate-key [--env NAME]          re-encrypt the store with a new key\n"
     "  keel secrets check [--env NAME] [--app PATH]  which secrets the app declares are missing\n"
     "                                                (exit 1 when one is)\n\n"
     "Stores are secrets/<env>.enc (XChaCha20-Poly1305); the key is $KEEL_SECRETS_KEY (base64) or\n"
     "secrets/<env>.key (0600, created by the first set, git-ignored).  The default env is local.\n"},
    {"build", cli_build, "build [--out DIR]                     a release: binary, libkeel, migrations, systemd unit",
     "usage: keel build [--out DIR] [--app PATH]\n\n"
     "Runs keel.json's build command (if any), then makes a release in DIR (default release/,\n"
     "which must not exist or be empty): bin/APP, lib/libkeel.so.0 when the app links it\n"
     "dynamically, the declared databases' migrations, infra.production.json (host, port and\n"
     "passwords from the environment), APP.env.example (every variable the app needs),\n"
     "APP.service (a hardened systemd unit), a run script and a README.  The release runs\n"
     "without the keel command: the app migrates its databases itself at start-up.\n\n"
     "DIR and every folder above it must not be a symbolic link, belong to another user (root\n"
     "may own the folders above) or be writable by their group or others (a folder above may\n"
     "be sticky, like /tmp).\n"},
    {"test", cli_test, "test PROGRAM...                      run test programs against the test cluster",
     "usage: keel test [--app PATH] PROGRAM...\n\n"
     "Runs keel.json's build command (if any), makes sure the test cluster runs (.keel/test,\n"
     "apart from keel run's, fsync off), provisions and migrates every declared database there\n"
     "as a template, then runs each PROGRAM with KEEL_TEST_INFRA_CONFIG and KEEL_APP_ROOT set.\n"
     "Programs use the test library (keel/test.h, pkg-config keel-test): keel_test_start runs\n"
     "the app in the program on a free port with a fresh copy of each database.  Exit status 1\n"
     "when a program fails.\n"},
    {"gen", cli_gen, "gen openapi|client --lang typescript|c   contracts generated from the app model",
     "usage:\n"
     "  keel gen openapi [--out FILE] [--app PATH | --model FILE]\n"
     "      an OpenAPI 3.1 document: paths with their path, query and header parameters, request and\n"
     "      response schemas, the Encore error shape with the statuses each endpoint can answer, raw\n"
     "      endpoints as free-form operations; private endpoints are left out\n"
     "  keel gen client --lang typescript [--out FILE] [--app PATH | --model FILE]\n"
     "      one TypeScript file with no dependency beyond fetch: new Client(baseURL, {headers}), a\n"
     "      method per endpoint grouped by service, errors thrown as APIError with the code\n"
     "  keel gen client --lang c [--prefix NAME] [--out FILE.c] [--app PATH | --model FILE]\n"
     "      FILE.c and FILE.h (default NAME_client.c here): per endpoint a request and a response\n"
     "      struct with their field tables and a function calling it through libkeel-client\n"
     "      (keel/client.h; build with pkg-config keel-client); NAME defaults to the app's name\n\n"
     "--model FILE reads the model that keel app-model printed instead of running the app.\n"
     "The same app model gives the same bytes, so generated files can be committed and reviewed.\n"},
    {"app-model", cli_app_model, "app-model [--app PATH]                print the app's services, endpoints and schemas",
     "usage: keel app-model [--app PATH]\n\nPrints the app model as JSON: each service's endpoints and schemas, databases,\n"
     "external databases, secrets and calls (its JSON Schema is doc/app-model.schema.json).\n"},
    {"help", help_cmd, "help [COMMAND]                        show the usage of a command",
     "usage: keel help [COMMAND]\n"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

bool cli_print_usage(FILE *out, const char *command)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, command) == 0) {
            fputs(commands[i].usage, out);
            return true;
        }
    return false;
}

static void print_help(FILE *out)
{
    fprintf(out, "keel %s - the Keel backend framework's command\n\nusage: keel COMMAND [ARGS]\n\ncommands:\n",
            KEEL_VERSION);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  keel %s\n", commands[i].summary);
    fprintf(out, "\n`keel help COMMAND` shows a command's usage; `man keel` has the details.\n"
                 "exit status: 0 success, 1 failure, 2 usage error\n");
}

static int help_cmd(int argc, char **argv)
{
    if (argc == 0) {
        print_help(stdout);
        return CLI_OK;
    }
    if (argc == 1 && cli_print_usage(stdout, argv[0]))
        return CLI_OK;
    fprintf(stderr, "keel help: unknown command \"%s\"\n\n", argv[0]);
    print_help(stderr);
    return CLI_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return help_cmd(0, NULL);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("keel %s\n", KEEL_VERSION);
        return CLI_OK;
    }
    cli_project_init();
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "keel: unknown command \"%s\"\n\n", argv[1]);
    print_help(stderr);
    return CLI_USAGE;
}

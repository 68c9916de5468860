/* test_cmd.c - `keel test PROGRAM...`: runs a team's test programs against
 * the test cluster, apart from the one `keel run` uses (.keel/test, fsync
 * off).  Each managed database is provisioned there, migrated once and
 * marked a template; the programs find it through KEEL_TEST_INFRA_CONFIG,
 * and the test library (keel/test.h) gives every test a fresh copy with
 * CREATE DATABASE ... TEMPLATE, Encore's approach. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "local_pg.h"

#define CMD "keel test"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The test cluster with every declared database migrated as a template;
 * the path of its infra config in infra. */
static int prepare(json_t *model, const char **dbs, char *infra, size_t len)
{
    local_pg pg;
    keel_error *err = local_pg_ensure_test(keel_app_root(), &pg);
    if (!err)
        err = local_pg_provision(&pg, dbs);
    if (!err)
        err = local_pg_write_infra(&pg, dbs, infra, len);
    if (err) {
        local_pg_unlock();
        return cli_fail(CMD, err);
    }
    keel_infra *config = NULL;
    err = keel__infra_load(infra, &config);
    int rc = err ? cli_fail(CMD, err) : CLI_OK;
    for (size_t i = 0; rc == CLI_OK && dbs[i]; i++)
        rc = cli_migrate_up(CMD, config, model, dbs[i]);
    keel__infra_free(config);
    if (rc == CLI_OK && (err = local_pg_make_templates(&pg, dbs)) != NULL)
        rc = cli_fail(CMD, err);
    local_pg_unlock();
    return rc;
}

/* Runs one test program; its exit status (or 128 + signal). */
static int run_program(const char *program)
{
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(program, program, (char *)NULL);
        fprintf(stderr, CMD ": cannot run %s: %s\n", program, strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0)
        return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int cli_test(int argc, char **argv)
{
    const char *given = NULL;
    int first = argc;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--app") == 0 && i + 1 < argc) {
            given = argv[++i];
        } else if (argv[i][0] == '-') {
            cli_print_usage(stderr, "test");
            return CLI_USAGE;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        cli_print_usage(stderr, "test");
        return CLI_USAGE;
    }
    const cli_project *project = cli_project_get();
    if (!cli_project_build(project, CMD))
        return CLI_FAILED;
    const char *app = cli_find_app(given);
    json_t *model = app ? cli_load_app_model(app) : NULL;
    if (!model)
        return CLI_FAILED;
    const char **dbs = cli_declared_databases(model);
    char infra[4096] = "";
    double t0 = now_s();
    int rc = dbs ? (dbs[0] ? prepare(model, dbs, infra, sizeof infra) : CLI_OK) : CLI_FAILED;
    free(dbs);
    json_decref(model);
    if (rc != CLI_OK)
        return rc;
    if (infra[0]) {
        fprintf(stderr, CMD ": the test cluster's templates are ready (%.2f s)\n", now_s() - t0);
        setenv("KEEL_TEST_INFRA_CONFIG", infra, 1);
    }
    setenv("KEEL_APP_ROOT", keel_app_root(), 1);
    unsetenv("KEEL_INFRA_CONFIG"); /* the test library writes each test's own */
    unsetenv("KEEL_DASHBOARD_PORT");
    int passed = 0, failed = 0;
    for (int i = first; i < argc; i++) {
        double t = now_s();
        int status = run_program(argv[i]);
        fprintf(stderr, CMD ": %s %s (%.2f s)\n", argv[i], status == 0 ? "passed" : "FAILED", now_s() - t);
        if (status == 0)
            passed++;
        else
            failed++;
    }
    fprintf(stderr, CMD ": %d passed, %d failed\n", passed, failed);
    return failed ? CLI_FAILED : CLI_OK;
}

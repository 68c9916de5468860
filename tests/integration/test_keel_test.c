/* tests/integration/test_keel_test.c - `keel test` (framework/cli/test_cmd.c)
 * and the test library (framework/testing/test.c), as a team uses them: the
 * example's own tests (services/todo/todo_test.c) run under keel test in an
 * app root of their own; the test cluster is apart from keel run's and runs
 * with fsync off; a failing program fails keel test. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "sql/pg_bin.h"
#include "tap.h"

int main(void)
{
    const char *srcdir = getenv("KEEL_SRCDIR"), *cli = getenv("KEEL_CLI"), *app = getenv("KEEL_EXAMPLE");
    const char *todo_test = getenv("KEEL_TODO_TEST");
    if (!srcdir || !cli || !app || !todo_test) {
        printf("Bail out! KEEL_SRCDIR, KEEL_CLI, KEEL_EXAMPLE and KEEL_TODO_TEST must be set (run through make check)\n");
        return 1;
    }
    char root[256], migrations[512], cmd[4096];
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);

    snprintf(cmd, sizeof cmd, "cd '%s' && KEEL_APP_ROOT='%s' '%s' test --app '%s' '%s' 2>&1", root, root, cli, app,
             todo_test);
    int passed = 0, failed = 0;
    int status = tap_relay(cmd, "todo_test", &passed, &failed);
    ok(status == 0 && passed >= 15 && failed == 0, "keel test ran the example's own tests: %d passed, %d failed",
       passed, failed);

    char path[400];
    snprintf(path, sizeof path, "%s/.keel/test/pg.json", root);
    json_t *pg = json_load_file(path, 0, NULL);
    const char *cluster = json_string_value(json_object_get(pg, "cluster"));
    ok(cluster && (strncmp(cluster, "/dev/shm/keel-test-", 19) == 0 || strstr(cluster, "/.keel/test/")),
       "the test cluster is recorded in .keel/test and lives in memory (/dev/shm) or there (%s)",
       cluster ? cluster : "?");
    snprintf(path, sizeof path, "%s/.keel/pg.json", root);
    ok(access(path, F_OK) != 0, "apart from keel run's cluster, which keel test did not need");
    char *out = NULL;
    if (cluster) {
        snprintf(cmd, sizeof cmd,
                 "runuser -u postgres -- '%s/psql' -h '%s/run' -p %lld -U postgres -d postgres -Atc "
                 "\"SELECT current_setting('fsync') || ' ' || string_agg(datname || ':' || datistemplate, ',' ORDER BY "
                 "datname) FROM pg_database WHERE datname IN ('todo', 'webhooks', 'accounts')\" 2>&1",
                 keel__pg_bindir() ? keel__pg_bindir() : "", cluster,
                 (long long)json_integer_value(json_object_get(pg, "port")));
        out = ht_shell(cmd, NULL);
    }
    like(out ? out : "", "off ", "the test cluster runs with fsync off (%s)", out ? out : "");
    like(out ? out : "", "accounts:true,todo:true,webhooks:true", "every database is a template");
    free(out);

    snprintf(cmd, sizeof cmd, "cd '%s' && KEEL_APP_ROOT='%s' '%s' test --app '%s' /bin/false 2>&1", root, root, cli,
             app);
    out = ht_shell(cmd, &status);
    ok(status != 0, "a failing program fails keel test");
    like(out, "/bin/false FAILED", "naming it");
    like(out, "0 passed, 1 failed", "and counting it");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' test 2>&1", cli);
    out = ht_shell(cmd, &status);
    ok(status == 2 * 256 || status == 2, "keel test without a program is a usage error");
    free(out);
    snprintf(cmd, sizeof cmd, "env -u KEEL_TEST_INFRA_CONFIG '%s' 2>&1", todo_test);
    out = ht_shell(cmd, &status);
    ok(status != 0 && strstr(out, "keel test"), "a test program run without keel test says to use it");
    free(out);

    /* Stop the test cluster and remove it with the root. */
    if (cluster) {
        snprintf(cmd, sizeof cmd, "runuser -u postgres -- '%s/pg_ctl' -D '%s/data' -m fast -w stop >/dev/null 2>&1; "
                 "rm -rf '%s'", keel__pg_bindir() ? keel__pg_bindir() : "", cluster, cluster);
        free(ht_shell(cmd, NULL));
    }
    json_decref(pg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    free(ht_shell(cmd, NULL));
    return tap_done();
}

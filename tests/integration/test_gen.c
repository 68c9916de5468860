/* tests/integration/test_gen.c - the contracts from `keel gen`, checked by
 * real tools against the running example app: the OpenAPI document by
 * @apidevtools/swagger-parser (tests/js/openapi_check.mjs), by Redocly's and
 * Spectral's linters (openapi_lint.mjs, the test app's document too), and
 * against real traffic: every answer to requests that trigger successes and
 * each error path must be a response the document declares, body validated
 * by its schema (contract_check.mjs, for the example app and the test
 * app), the TypeScript
 * client compiled by tsc --strict and run with Node's test runner
 * (tests/js/client_test.ts calls every public typed endpoint), and the C
 * client, which the build generates and compiles into example_client_check
 * (run here against the app).  Generating twice gives the same bytes.  The
 * TypeScript client of the test app, whose odd service has names hostile to
 * generators (odd_service.c), compiles too, imports without running anything
 * of the model and calls it (tests/js/odd_client_test.ts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv, odd_srv;
static char root[256];

/* tsc --strict over dir's FILES (client.ts and a test) into dir/out, as ES
 * modules.  Returns the exit status; *out gets what tsc said. */
static int tsc(const char *js, const char *dir, const char *files, char **out)
{
    char cmd[4096];
    int status;
    snprintf(cmd, sizeof cmd,
             "cd %s && printf '{\"type\":\"module\"}' >package.json && "
             "'%s/node_modules/.bin/tsc' --strict --noEmitOnError --target es2022 --module nodenext "
             "--moduleResolution nodenext --typeRoots '%s/node_modules/@types' --types node --outDir out "
             "%s 2>&1 && cp package.json out/", dir, js, js, files);
    *out = ht_shell(cmd, &status);
    return status;
}

static bool same_file(const char *a, const char *b)
{
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

int main(void)
{
    const char *srcdir = getenv("KEEL_SRCDIR"), *cli = getenv("KEEL_CLI"), *app = getenv("KEEL_EXAMPLE");
    if (!srcdir || !cli || !app || !getenv("KEEL_TESTAPP")) {
        printf("Bail out! KEEL_SRCDIR, KEEL_CLI, KEEL_EXAMPLE and KEEL_TESTAPP must be set (run through make check)\n");
        return 1;
    }
    char js[512], probe[700];
    snprintf(js, sizeof js, "%s/tests/js", srcdir);
    snprintf(probe, sizeof probe, "%s/node_modules/.bin/tsc", js);
    struct stat st;
    if (stat(probe, &st) != 0) {
        printf("1..0 # SKIP the test's npm packages are not installed (./dev test installs them in tests/js)\n");
        return 0;
    }
    char dir[] = "/tmp/keel-gen-XXXXXX";
    if (!mkdtemp(dir)) {
        printf("Bail out! no temporary folder\n");
        return 1;
    }
    char cmd[4096];
    int status;
    char *out;

    /* OpenAPI. */
    snprintf(cmd, sizeof cmd, "'%s' gen openapi --app '%s' --out %s/openapi.json 2>&1 && "
             "'%s' gen openapi --app '%s' --out %s/openapi2.json 2>&1", cli, app, dir, cli, app, dir);
    out = ht_shell(cmd, &status);
    is_int(status, 0, "keel gen openapi writes the document%s%s", status ? ": " : "", status ? out : "");
    free(out);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/openapi.json", dir);
    snprintf(b, sizeof b, "%s/openapi2.json", dir);
    ok(same_file(a, b), "generating twice gives identical bytes");
    snprintf(cmd, sizeof cmd, "'%s' app-model --app '%s' >%s/model.json && "
             "'%s' gen openapi --model %s/model.json --out %s/openapi2.json 2>&1", cli, app, dir, cli, dir, dir);
    out = ht_shell(cmd, &status);
    ok(status == 0 && same_file(a, b), "--model FILE, the model keel app-model printed, gives the same document%s%s",
       status ? ": " : "", status ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' gen openapi --model %s/openapi.json 2>&1", cli, dir);
    out = ht_shell(cmd, &status);
    ok(status == 256 || status == 1, "--model FILE that is no app model fails");
    like(out, "not an app model", "saying so");
    free(out);
    int passed, failed;
    snprintf(cmd, sizeof cmd, "cd '%s' && node openapi_check.mjs %s 2>&1", js, a);
    status = tap_relay(cmd, "openapi", &passed, &failed);
    ok(status == 0 && passed >= 10 && failed == 0, "the OpenAPI checks ran: %d passed, %d failed", passed, failed);
    snprintf(cmd, sizeof cmd, "cd '%s' && node openapi_lint.mjs %s 2>&1", js, a);
    status = tap_relay(cmd, "lint", &passed, &failed);
    ok(status == 0 && passed == 2 && failed == 0, "redocly and spectral find nothing in the example app's document: "
       "%d passed, %d failed", passed, failed);
    /* The test app's: its router tests register /test/route/{id}/more beside
     * /test/route/files/{rest} on purpose (Keel's precedence decides), which
     * Redocly's no-ambiguous-paths warns about. */
    char testdoc[600];
    snprintf(testdoc, sizeof testdoc, "%s/testapp.json", dir);
    snprintf(cmd, sizeof cmd, "'%s' gen openapi --app '%s' --out %s 2>&1 && cd '%s' && "
             "node openapi_lint.mjs %s no-ambiguous-paths 2>&1", cli, getenv("KEEL_TESTAPP"), testdoc, js, testdoc);
    status = tap_relay(cmd, "lint", &passed, &failed);
    ok(status == 0 && passed == 2 && failed == 0, "and nothing in the test app's: %d passed, %d failed", passed,
       failed);

    /* The TypeScript client, compiled with --strict. */
    snprintf(cmd, sizeof cmd, "'%s' gen client --lang typescript --app '%s' --out %s/client.ts 2>&1 && "
             "'%s' gen client --lang typescript --app '%s' --out %s/client2.ts 2>&1", cli, app, dir, cli, app, dir);
    out = ht_shell(cmd, &status);
    is_int(status, 0, "keel gen client --lang typescript writes the client%s%s", status ? ": " : "", status ? out : "");
    free(out);
    snprintf(a, sizeof a, "%s/client.ts", dir);
    snprintf(b, sizeof b, "%s/client2.ts", dir);
    ok(same_file(a, b), "generating twice gives identical bytes");
    snprintf(cmd, sizeof cmd, "cp '%s/client_test.ts' %s/", js, dir);
    free(ht_shell(cmd, NULL));
    status = tsc(js, dir, "client.ts client_test.ts", &out);
    is_int(status, 0, "tsc --strict compiles the client and its test%s%s", status ? ":\n" : "", status ? out : "");
    free(out);

    /* The test app's client: the odd service's catch-all closes a comment
     * and opens a class static block, its typed path holds quotes and a
     * backslash, its header field is X-Token. */
    const char *testapp = getenv("KEEL_TESTAPP");
    char odd[600];
    snprintf(odd, sizeof odd, "%s/odd", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p %s && cp '%s/odd_client_test.ts' %s/ && "
             "'%s' gen client --lang typescript --app '%s' --out %s/client.ts 2>&1", odd, js, odd, cli, testapp, odd);
    out = ht_shell(cmd, &status);
    is_int(status, 0, "keel gen client --lang typescript writes the test app's client%s%s", status ? ": " : "",
           status ? out : "");
    free(out);
    status = tsc(js, odd, "client.ts odd_client_test.ts", &out);
    is_int(status, 0, "tsc --strict compiles it, odd names and all%s%s", status ? ":\n" : "", status ? out : "");
    free(out);
    if (ht_start(&odd_srv, testapp, NULL)) {
        snprintf(cmd, sizeof cmd, "cd %s/out && KEEL_BASE_URL=http://127.0.0.1:%u "
                 "node --test --test-reporter=tap odd_client_test.js 2>&1", odd, odd_srv.port);
        status = tap_relay(cmd, "odd names", &passed, &failed);
        ok(status == 0 && passed >= 5 && failed == 0, "the odd service's client imports cleanly and calls it: "
           "%d passed, %d failed", passed, failed);
        snprintf(cmd, sizeof cmd, "cd '%s' && node contract_check.mjs %s http://127.0.0.1:%u testapp 2>&1", js, testdoc,
                 odd_srv.port);
        status = tap_relay(cmd, "contract", &passed, &failed);
        ok(status == 0 && passed >= 25 && failed == 0, "every answer of the test app to real requests (each error "
           "code included) is a response its document declares: %d passed, %d failed", passed, failed);
        is_int(ht_stop(&odd_srv), 0, "the test app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    } else {
        ok(false, "the test app starts");
        skip("no test app to call");
    }

    snprintf(cmd, sizeof cmd, "'%s' gen client --app '%s' 2>&1", cli, app);
    out = ht_shell(cmd, &status);
    ok(status == 2 * 256 || status == 2, "a client without --lang is a usage error");
    like(out, "--lang typescript or --lang c", "naming the languages");
    free(out);

    /* The C client: the same bytes twice, the header beside the source.  The
     * build compiled its own copy with the project's warnings into
     * example_client_check, which runs against the app below. */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/c1 %s/c2 && '%s' gen client --lang c --prefix example --app '%s' "
             "--out %s/c1/example_client.c 2>&1 && cd %s/c2 && '%s' gen client --lang c --prefix example --app '%s' 2>&1",
             dir, dir, cli, app, dir, dir, cli, app);
    out = ht_shell(cmd, &status);
    is_int(status, 0, "keel gen client --lang c writes the header and the source%s%s", status ? ": " : "",
           status ? out : "");
    like(out, "wrote example_client.c and example_client.h", "without --out, <prefix>_client.c and .h here");
    free(out);
    snprintf(a, sizeof a, "%s/c1/example_client.c", dir);
    snprintf(b, sizeof b, "%s/c2/example_client.c", dir);
    ok(same_file(a, b), "generating twice gives identical bytes (source)");
    snprintf(a, sizeof a, "%s/c1/example_client.h", dir);
    snprintf(b, sizeof b, "%s/c2/example_client.h", dir);
    ok(same_file(a, b), "generating twice gives identical bytes (header)");
    snprintf(cmd, sizeof cmd, "'%s' gen client --lang c --app '%s' --out %s/c1/client.txt 2>&1", cli, app, dir);
    out = ht_shell(cmd, &status);
    ok(status == 2 * 256 || status == 2, "--out that does not name a .c file is a usage error");
    like(out, "FILE.c", "saying what --out takes");
    free(out);

    /* Run against the example app. */
    char migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);
    /* make check lifts POST /todo's rate limit; this test trips it (last). */
    if (!ht_start_keel_run(&srv, root, (const char *const[]){"KEEL_RATE_LIMIT_TODO_CREATE=20/40", NULL})) {
        printf("Bail out! keel run did not start the example app\n");
        return 1;
    }
    snprintf(cmd, sizeof cmd,
             "cd %s/out && KEEL_BASE_URL=http://127.0.0.1:%u KEEL_ADMIN_TOKEN=\"$KEEL_SECRET_ADMIN_TOKEN\" "
             "node --test --test-reporter=tap client_test.js 2>&1", dir, srv.port);
    status = tap_relay(cmd, "TypeScript client", &passed, &failed);
    ok(status == 0 && passed >= 5 && failed == 0, "node --test ran the client's tests: %d passed, %d failed", passed, failed);
    const char *c_check = getenv("KEEL_EXAMPLE_CLIENT_CHECK");
    if (c_check) {
        snprintf(cmd, sizeof cmd, "KEEL_BASE_URL=http://127.0.0.1:%u KEEL_ADMIN_TOKEN=\"$KEEL_SECRET_ADMIN_TOKEN\" "
                 "%s%s%s'%s' 2>&1", srv.port, ht_valgrind() ? "sh '" : "", ht_valgrind() ? srcdir : "",
                 ht_valgrind() ? "/tests/valgrind.sh' " : "", c_check);
        status = tap_relay(cmd, "C client", &passed, &failed);
        ok(status == 0 && passed >= 30 && failed == 0, "the generated C client called every typed endpoint: "
           "%d passed, %d failed%s", passed, failed, ht_valgrind() ? ", no valgrind errors or leaks" : "");
    } else {
        skip("KEEL_EXAMPLE_CLIENT_CHECK is not set (run through make check)");
    }
    /* Last: its burst trips POST /todo's rate limit. */
    snprintf(cmd, sizeof cmd, "cd '%s' && KEEL_ADMIN_TOKEN=\"$KEEL_SECRET_ADMIN_TOKEN\" "
             "node contract_check.mjs %s/openapi.json http://127.0.0.1:%u example 2>&1", js, dir, srv.port);
    status = tap_relay(cmd, "contract", &passed, &failed);
    ok(status == 0 && passed >= 25 && failed == 0, "every answer of the example app to real requests (successes, "
       "400, 401, 403, 404, 413, 415, 429, mounted and raw answers) is a response its document declares: "
       "%d passed, %d failed", passed, failed);
    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    ht_remove_app_root(root);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    free(ht_shell(cmd, NULL));
    return tap_done();
}

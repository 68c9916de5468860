/* tests/integration/test_health.c - framework/lib/health.c and the drain in
 * main.c: /__keel/healthz and /__keel/readyz on the test app (no database)
 * and on the example app under keel run (its databases reachable, then its
 * cluster stopped and started again), and SIGTERM with KEEL_DRAIN_MS:
 * readyz answers 503 at once while requests are still served, the app
 * stops when the drain is over, and a second signal cuts the drain short. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static long status_of(const ht_server *srv, const char *method, const char *path, char **body)
{
    ht_response r = ht_request(srv, method, path, NULL, 0, NULL);
    long status = r.status;
    if (body)
        *body = strdup(r.body ? r.body : "");
    ht_free(&r);
    return status;
}

/* After an app this test stopped itself: its log removed and, under
 * valgrind, its report checked empty and removed. */
static void forget(const ht_server *srv, const char *what)
{
    unlink(srv->log_path);
    if (!srv->valgrind)
        return;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cat %s.* 2>/dev/null; rm -f %s.*", srv->vg_path, srv->vg_path);
    char *report = ht_shell(cmd, NULL);
    ok(!*report, "%s: no valgrind errors or leaks%s%s", what, *report ? ":\n" : "", report);
    free(report);
}

/* Waits for pid to exit, up to limit_s; its exit status or -1. */
static int wait_exit(pid_t pid, double limit_s)
{
    double until = ht_now_s() + limit_s;
    int status;
    while (ht_now_s() < until) {
        pid_t p = waitpid(pid, &status, WNOHANG);
        if (p == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(20000);
    }
    return -1;
}

static void without_databases(const char *testapp)
{
    ht_server srv;
    if (!ht_start(&srv, testapp, NULL)) {
        printf("Bail out! the test app did not start\n");
        exit(1);
    }
    char *body;
    is_int(status_of(&srv, "GET", "/__keel/healthz", &body), 200, "GET /__keel/healthz answers 200");
    is_str(body, "{\"status\":\"ok\"}", "with {\"status\":\"ok\"}");
    free(body);
    is_int(status_of(&srv, "GET", "/__keel/readyz", &body), 200, "GET /__keel/readyz answers 200: nothing to wait for");
    like(body, "\"databases\":{}", "no databases to check (%s)", body);
    free(body);
    is_int(status_of(&srv, "HEAD", "/__keel/readyz", NULL), 200, "HEAD /__keel/readyz too");
    is_int(status_of(&srv, "POST", "/__keel/readyz", NULL), 405, "POST /__keel/readyz is 405");
    is_int(status_of(&srv, "GET", "/__keel/ready", NULL), 404, "an unknown page under /__keel/ is 404");
    char *log = ht_log(&srv);
    ok(!strstr(log, "/__keel/healthz") && !strstr(log, "/__keel/readyz"),
       "health checks are not logged (balancers ask often)");
    free(log);
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
}

static void with_databases(const char *srcdir)
{
    char root[256], migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);
    ht_server srv;
    if (!ht_start_keel_run(&srv, root, NULL)) {
        printf("Bail out! keel run did not start the example app\n");
        exit(1);
    }
    char *body;
    is_int(status_of(&srv, "GET", "/__keel/readyz", &body), 200, "the example app is ready");
    like(body, "\"todo\":\"ok\"", "its todo database answers (%s)", body);
    like(body, "\"webhooks\":\"ok\"", "and its webhooks database");
    like(body, "\"secrets\":\"ok\"", "and its secrets are set");
    free(body);

    ok(ht_cluster_ctl(root, false), "the local cluster is stopped");
    is_int(status_of(&srv, "GET", "/__keel/readyz", &body), 503, "readyz answers 503 while a database is down");
    like(body, "\"code\":\"unavailable\"", "in Encore's error shape (%s)", body);
    like(body, "not ready: database todo", "naming the database");
    free(body);
    is_int(status_of(&srv, "GET", "/__keel/healthz", NULL), 200, "healthz still answers 200: the process serves");

    ok(ht_cluster_ctl(root, true), "the cluster is started again");
    long st = 0;
    for (int i = 0; i < 50 && (st = status_of(&srv, "GET", "/__keel/readyz", NULL)) != 200; i++)
        usleep(100000);
    is_int(st, 200, "readyz answers 200 again without a restart");
    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    ht_remove_app_root(root);
}

static void drain(const char *testapp)
{
    unsigned drain_ms = ht_valgrind() ? 4000 : 1500;
    char drain_env[64];
    snprintf(drain_env, sizeof drain_env, "KEEL_DRAIN_MS=%u", drain_ms);
    const char *env[] = {drain_env, NULL};
    ht_server srv;
    if (!ht_start(&srv, testapp, env)) {
        printf("Bail out! the test app did not start\n");
        exit(1);
    }
    is_int(status_of(&srv, "GET", "/__keel/readyz", NULL), 200, "ready before the signal");
    double sent = ht_now_s();
    kill(srv.pid, SIGTERM);
    long st = 200;
    for (int i = 0; i < 100 && st == 200; i++) {
        st = status_of(&srv, "GET", "/__keel/readyz", NULL);
        if (st == 200)
            usleep(10000);
    }
    char *body;
    is_int(status_of(&srv, "GET", "/__keel/readyz", &body), 503, "after SIGTERM, readyz answers 503");
    like(body, "draining", "saying the instance is draining (%s)", body);
    free(body);
    is_int(status_of(&srv, "GET", "/hello/drain", &body), 200, "while the app still serves requests");
    like(body, "Hello, drain!", "as before");
    free(body);
    is_int(status_of(&srv, "GET", "/__keel/healthz", NULL), 200, "and healthz answers 200");
    int rc = wait_exit(srv.pid, drain_ms / 1000.0 + (ht_valgrind() ? 30 : 10));
    double took = ht_now_s() - sent;
    srv.pid = 0;
    is_int(rc, 0, "the app exits 0 once the drain is over");
    ok(took >= drain_ms / 1000.0 - 0.05, "not before the %u ms drain (%.2f s)", drain_ms, took);
    char *log = ht_log(&srv);
    like(log, "draining for", "the log says it drains");
    free(log);
    forget(&srv, "the drained app");

    const char *long_env[] = {"KEEL_DRAIN_MS=600000", NULL};
    if (!ht_start(&srv, testapp, long_env)) {
        printf("Bail out! the test app did not start\n");
        exit(1);
    }
    kill(srv.pid, SIGTERM);
    for (int i = 0; i < 100 && status_of(&srv, "GET", "/__keel/readyz", NULL) == 200; i++)
        usleep(10000);
    sent = ht_now_s();
    kill(srv.pid, SIGTERM);
    rc = wait_exit(srv.pid, ht_valgrind() ? 60 : 10);
    srv.pid = 0;
    is_int(rc, 0, "a second SIGTERM cuts a 10-minute drain short (%.2f s)", ht_now_s() - sent);
    forget(&srv, "the app whose drain was cut short");
}

int main(void)
{
    const char *testapp = getenv("KEEL_TESTAPP"), *srcdir = getenv("KEEL_SRCDIR");
    if (!testapp || !srcdir) {
        printf("Bail out! KEEL_TESTAPP and KEEL_SRCDIR must be set (run through make check)\n");
        return 1;
    }
    without_databases(testapp);
    with_databases(srcdir);
    drain(testapp);
    return tap_done();
}

/* tests/integration/test_rolling.c - a rolling restart behind a real load
 * balancer: HAProxy with the repository's doc/examples/haproxy.cfg in front
 * of three instances of the example app on one PostgreSQL cluster (made by
 * keel run, then used through its infra config as a deploy would), checking
 * /__keel/readyz.  wrk keeps 64 connections busy on a database endpoint
 * while the instances are restarted one at a time, each after a new
 * migration was added: not one answer that is not 2xx, not one socket
 * error, and every migration applied exactly once. */
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define INSTANCES 3

static char env_infra[600], env_root[300], env_port[INSTANCES][32];

static bool start_instance(ht_server *srv, int i)
{
    const char *env[] = {env_infra, env_root, env_port[i], "KEEL_DRAIN_MS=1500", "KEEL_LOG_REQUESTS=0",
                         "KEEL_IO_THREADS=1", NULL};
    return ht_start(srv, getenv("KEEL_EXAMPLE"), env);
}

/* Runs argv (a program on PATH) with its output in out_path and the
 * environment entries env ("NAME=value", NULL-ended); its pid. */
static pid_t spawn(char *const argv[], const char *out_path, char *const env[])
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (size_t i = 0; env && env[i]; i++)
            putenv(env[i]);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static long ready_status(const ht_server *srv)
{
    ht_response r = ht_request(srv, "GET", "/__keel/readyz", NULL, 0, NULL);
    long st = r.status;
    ht_free(&r);
    return st;
}

/* The number of todo items called title, read through the balancer. */
static int count_titled(const ht_server *lb, const char *title)
{
    ht_response r = ht_request(lb, "GET", "/todo", NULL, 0, NULL);
    int n = 0;
    char needle[200];
    snprintf(needle, sizeof needle, "\"title\":\"%s\"", title);
    for (const char *p = r.body; r.status == 200 && p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    ht_free(&r);
    return n;
}

/* The figure after label in wrk's report (0 when the line is absent). */
static long long wrk_figure(const char *report, const char *label)
{
    const char *p = strstr(report, label);
    return p ? strtoll(p + strlen(label), NULL, 10) : 0;
}

/* The N of wrk's "  N requests in 20.00s, ..." line. */
static long long wrk_requests(const char *report)
{
    const char *p = strstr(report, " requests in ");
    if (!p)
        return 0;
    while (p > report && p[-1] != '\n')
        p--;
    return strtoll(p, NULL, 10);
}

int main(void)
{
    const char *srcdir = getenv("KEEL_SRCDIR");
    if (!srcdir || !getenv("KEEL_EXAMPLE") || !getenv("KEEL_CLI")) {
        printf("Bail out! KEEL_SRCDIR, KEEL_EXAMPLE and KEEL_CLI must be set (run through make check)\n");
        return 1;
    }
    if (system("command -v haproxy >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1") != 0) {
        printf("1..0 # SKIP haproxy or wrk is not installed (./dev test installs them)\n");
        return 0;
    }
    char root[256], migrations[512], cmd[4096];
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);

    /* keel run provisions the cluster and the databases, as in development;
     * the instances then use its infra config, as in production. */
    ht_server provision;
    if (!ht_start_keel_run(&provision, root, NULL)) {
        printf("Bail out! keel run did not provision the databases\n");
        return 1;
    }
    is_int(ht_stop(&provision), 0, "keel run provisioned the cluster and the databases");
    char pattern[400];
    snprintf(pattern, sizeof pattern, "%s/.keel/infra*.json", root);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) != 0 || g.gl_pathc != 1) {
        printf("Bail out! no infra config under %s/.keel\n", root);
        return 1;
    }
    snprintf(env_infra, sizeof env_infra, "KEEL_INFRA_CONFIG=%s", g.gl_pathv[0]);
    globfree(&g);
    snprintf(env_root, sizeof env_root, "KEEL_APP_ROOT=%s", root);

    ht_server app[INSTANCES];
    unsigned ports[INSTANCES];
    for (int i = 0; i < INSTANCES; i++) {
        ports[i] = ht_free_port();
        snprintf(env_port[i], sizeof env_port[i], "PORT=%u", ports[i]);
        if (!start_instance(&app[i], i)) {
            printf("Bail out! instance %d did not start\n", i + 1);
            return 1;
        }
    }
    ok(app[0].port == ports[0] && app[2].port == ports[2], "three instances of the example app on one cluster");

    /* HAProxy with the example configuration, unchanged. */
    ht_server lb = {.port = ht_free_port()};
    char conf[600], lb_log[300];
    snprintf(conf, sizeof conf, "%s/doc/examples/haproxy.cfg", srcdir);
    snprintf(lb_log, sizeof lb_log, "%s/haproxy.log", root);
    static char lb_env[5][64];
    snprintf(lb_env[0], sizeof lb_env[0], "KEEL_LB_BIND=127.0.0.1:%u", lb.port);
    for (int i = 0; i < INSTANCES; i++)
        snprintf(lb_env[1 + i], sizeof lb_env[1 + i], "KEEL_APP%d=127.0.0.1:%u", i + 1, ports[i]);
    snprintf(lb_env[4], sizeof lb_env[4], "KEEL_CHECK_INTER=200ms");
    char *env[] = {lb_env[0], lb_env[1], lb_env[2], lb_env[3], lb_env[4], NULL};
    char *check[] = {"haproxy", "-c", "-f", conf, NULL};
    int status = -1;
    waitpid(spawn(check, lb_log, env), &status, 0);
    snprintf(cmd, sizeof cmd, "cat '%s'", lb_log);
    char *out = ht_shell(cmd, NULL);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "haproxy -c accepts doc/examples/haproxy.cfg%s%s",
       status ? ": " : "", status ? out : "");
    free(out);
    char *serve[] = {"haproxy", "-db", "-f", conf, NULL};
    pid_t haproxy = spawn(serve, lb_log, env);
    long st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        ht_response r = ht_request(&lb, "GET", "/todo", NULL, 0, NULL);
        st = r.status;
        ht_free(&r);
        if (st != 200)
            usleep(100000);
    }
    is_int(st, 200, "HAProxy serves the app (GET /todo through the balancer)");

    /* wrk for the whole rolling restart. */
    char wrk_out[300];
    snprintf(wrk_out, sizeof wrk_out, "%s/wrk.txt", root);
    char url[100];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/todo", lb.port);
    char *load[] = {"wrk", "-t2", "-c64", "-d20s", "--timeout", "5s", url, NULL};
    pid_t wrk = spawn(load, wrk_out, NULL);
    sleep(2);

    for (int i = 0; i < INSTANCES; i++) {
        char file[700];
        snprintf(file, sizeof file, "%s/migrations/todo/%04d_rolling_%d.up.sql", root, 100 + i, i + 1);
        FILE *f = fopen(file, "w");
        if (f) {
            fprintf(f, "INSERT INTO todo_item (title) VALUES ('rolling migration %d');\n", i + 1);
            fclose(f);
        }
        int rc = ht_stop(&app[i]);
        is_int(rc, 0, "instance %d drained and stopped on SIGTERM", i + 1);
        bool started = start_instance(&app[i], i);
        ok(started, "instance %d started again with migration %d added", i + 1, 100 + i);
        if (!started)
            break;
        char *log = ht_log(&app[i]);
        like(log, "todo: applied 1 migration", "it applied that one migration");
        free(log);
        /* Until the balancer has it back (rise 2 x 200 ms) before the next. */
        for (int k = 0; k < 100 && ready_status(&app[i]) != 200; k++)
            usleep(50000);
        usleep(1000000);
    }

    int wstatus = 0;
    waitpid(wrk, &wstatus, 0);
    snprintf(cmd, sizeof cmd, "cat '%s'", wrk_out);
    char *report = ht_shell(cmd, NULL);
    long long requests = wrk_requests(report);
    const char *sock = strstr(report, "Socket errors:");
    long long non2xx = wrk_figure(report, "Non-2xx or 3xx responses:");
    ok(requests > 1000, "wrk sent %lld requests through the restarts", requests);
    is_int((int)non2xx, 0, "not one answer that is not 2xx");
    ok(!sock, "not one socket error%s%.*s", sock ? ": " : "", sock ? (int)strcspn(sock, "\n") : 0, sock ? sock : "");
    if (non2xx || sock || requests <= 1000) {
        diag("wrk said:\n%s", report);
        snprintf(cmd, sizeof cmd, "grep -v 'is UP' '%s' | tail -n 30", lb_log);
        char *said = ht_shell(cmd, NULL);
        diag("HAProxy said:\n%s", said);
        free(said);
    }
    free(report);

    for (int i = 0; i < INSTANCES; i++) {
        char title[64];
        snprintf(title, sizeof title, "rolling migration %d", i + 1);
        is_int(count_titled(&lb, title), 1, "migration %d was applied exactly once", 100 + i);
    }

    kill(haproxy, SIGTERM);
    waitpid(haproxy, NULL, 0);
    for (int i = 0; i < INSTANCES; i++)
        is_int(ht_stop(&app[i]), 0, "instance %d stops cleanly", i + 1);
    ht_remove_app_root(root);
    return tap_done();
}

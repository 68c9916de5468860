/* tests/integration/test_cli.c - the keel command's database tools against a
 * real local cluster: `keel run` provisions a fresh app root, then db shell
 * (read-only by default, --write/--admin/--superuser escalate, passwords
 * never in a child's argument list), conn-uri, the proxy under 20 concurrent
 * sessions and Ctrl-C, migrate status/up/down (with a missing down file),
 * db reset, help texts and exit statuses. */
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv;
static char root[256];

/* Runs a shell command in the app root and returns its output (malloc'd,
 * stdout and stderr) and exit status. */
static char *run(const char *cmd, int *status)
{
    char full[4096];
    snprintf(full, sizeof full, "cd '%s' && ( %s ) 2>&1", root, cmd);
    return ht_shell(full, status);
}

/* Runs cmd and checks its exit status and that its output contains want. */
static void check(const char *cmd, int want_status, const char *want, const char *what)
{
    int status;
    char *out = run(cmd, &status);
    if (!ok(status == want_status && tap_contains(out, want), "%s", what))
        printf("#   command: %s\n#   status %d (want %d), output: %s\n", cmd, status, want_status, out);
    free(out);
}

/* A generated password of the todo database's role ("ro", "app", "admin"). */
static char *password(const char *role)
{
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/passwords.json", root);
    json_t *j = json_load_file(path, 0, NULL);
    const char *pw = json_string_value(json_object_get(json_object_get(j, "todo"), role));
    char *copy = strdup(pw ? pw : "missing-password");
    json_decref(j);
    return copy;
}

static void test_help(void)
{
    check("\"$KEEL_CLI\" --help", 0, "keel migrate", "keel --help lists the commands");
    check("\"$KEEL_CLI\" help db", 0, "keel db shell NAME", "keel help db prints the db usage");
    check("\"$KEEL_CLI\" help migrate", 0, "--steps N", "keel help migrate prints the migrate usage");
    check("\"$KEEL_CLI\" db --help", 0, "keel db proxy", "keel db --help too");
    check("\"$KEEL_CLI\" nosuch", 2, "unknown command \"nosuch\"", "an unknown command exits 2");
    check("\"$KEEL_CLI\" help nosuch", 2, "nosuch", "help for an unknown command exits 2");
    check("\"$KEEL_CLI\" db", 2, "usage", "keel db without a sub-command exits 2");
    check("\"$KEEL_CLI\" db shell", 2, "usage", "keel db shell without a name exits 2");
    check("\"$KEEL_CLI\" migrate down", 2, "usage", "keel migrate down without a name exits 2");
    check("\"$KEEL_CLI\" migrate status --steps x", 2, "usage", "an unknown option exits 2");
}

static void test_shell(void)
{
    check("echo \"INSERT INTO todo_item (title) VALUES ('ro')\" | \"$KEEL_CLI\" db shell todo", 0,
          "permission denied", "the default shell is read-only: INSERT is refused");
    check("echo \"INSERT INTO todo_item (title) VALUES ('rw')\" | \"$KEEL_CLI\" db shell todo --write", 0,
          "INSERT 0 1", "--write can insert");
    check("echo 'select count(*) from todo_item' | \"$KEEL_CLI\" db shell todo -- -At", 0, "1\n",
          "piped standard input runs, and arguments after -- reach psql");
    check("\"$KEEL_CLI\" db shell todo --admin -- -Atc 'select current_user'", 0, "todo_admin\n",
          "--admin connects as the owner role");
    check("\"$KEEL_CLI\" db shell todo --superuser -- -Atc 'select current_user'", 0, "postgres\n",
          "--superuser connects as postgres over the local socket");
    check("\"$KEEL_CLI\" db shell todo -- -Atc 'select current_user'", 0, "todo_ro\n",
          "the default role is todo_ro");
    check("\"$KEEL_CLI\" db shell nosuch", 1, "\"nosuch\"", "an unknown database exits 1 naming it");
    check("\"$KEEL_CLI\" db shell todo --env staging", 1, "KEEL_INFRA_CONFIG",
          "another environment without KEEL_INFRA_CONFIG is a clear error");
    check("KEEL_INFRA_CONFIG=/nonexistent/infra.json \"$KEEL_CLI\" db shell todo --env staging", 1,
          "/nonexistent/infra.json", "a missing infra config is an error naming the file");
    check("KEEL_INFRA_CONFIG=.keel/infra.local.json \"$KEEL_CLI\" db shell todo --env staging -- -Atc 'select 7'", 0,
          "7\n", "--env reads KEEL_INFRA_CONFIG");
    check("KEEL_INFRA_CONFIG=.keel/infra.local.json \"$KEEL_CLI\" db shell todo --superuser --env staging", 1,
          "local environment only",
          "--superuser is refused outside the local environment");
}

static void test_conn_uri(void)
{
    int status;
    char *uri = run("\"$KEEL_CLI\" db conn-uri todo --env local", &status);
    is_int(status, 0, "keel db conn-uri --env local succeeds");
    uri[strcspn(uri, "\n")] = '\0';
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "psql '%s' -Atc 'SELECT version, dirty FROM schema_migrations'", uri);
    check(cmd, 0, "2|f", "psql connects with the printed URI");
    free(uri);
    check("psql \"$(\"$KEEL_CLI\" db conn-uri todo --superuser)\" -Atc 'select current_user'", 0, "postgres",
          "conn-uri --superuser gives a socket URI psql accepts");
    check("\"$KEEL_CLI\" db conn-uri nosuch", 1, "nosuch", "conn-uri of an unknown database exits 1");
}

/* True when some process's argument list contains needle; counts psql
 * processes seen in *psql. */
static bool any_cmdline_has(const char *needle, int *psql)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;
    while (d && (e = readdir(d))) {
        char path[300], buf[8192];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n > 0 ? n : 0] = '\0';
        found = found || strstr(buf, needle);
        *psql += strstr(buf, "psql") != NULL && strstr(buf, "pg_sleep") == NULL && strstr(buf, "-h") != NULL;
    }
    if (d)
        closedir(d);
    return found;
}

static void test_password_not_in_argv(void)
{
    char *pw = password("app");
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(root) != 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", "echo 'select pg_sleep(2)' | \"$KEEL_CLI\" db shell todo --write >/dev/null",
              (char *)NULL);
        _exit(127);
    }
    int psql = 0;
    bool leaked = false;
    for (int i = 0; i < 15; i++) {
        usleep(100 * 1000);
        leaked = any_cmdline_has(pw, &psql) || leaked;
    }
    int st;
    waitpid(pid, &st, 0);
    ok(psql > 0, "psql was running while the process table was read");
    ok(!leaked, "no process had the password in its argument list");
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "that shell session ended normally");
    free(pw);
}

/* Starts `keel db proxy --port 0` with stderr in log; returns its pid and
 * the port it announced (0 when it did not). */
static pid_t start_proxy(const char *log, unsigned *port, const char *infra_config)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        if (chdir(root) != 0)
            _exit(126);
        if (infra_config) {
            setenv("KEEL_INFRA_CONFIG", infra_config, 1);
            execl(getenv("KEEL_CLI"), "keel", "db", "proxy", "--port", "0", "--env", "staging", (char *)NULL);
        }
        execl(getenv("KEEL_CLI"), "keel", "db", "proxy", "--port", "0", (char *)NULL);
        _exit(127);
    }
    *port = 0;
    for (int i = 0; i < 100 && !*port; i++) {
        usleep(50 * 1000);
        char buf[512] = "";
        FILE *f = fopen(log, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        const char *at = strstr(buf, "listening on 127.0.0.1:");
        if (at)
            *port = (unsigned)atoi(at + strlen("listening on 127.0.0.1:"));
    }
    return pid;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --env staging forwards to the one server of KEEL_INFRA_CONFIG's file
 * (here the local config, standing in for another environment's). */
static void test_proxy_env(void)
{
    char log[300], infra[300], cmd[1024];
    unsigned port;
    snprintf(log, sizeof log, "%s/proxy-env.log", root);
    snprintf(infra, sizeof infra, "%s/.keel/infra.local.json", root);
    pid_t pid = start_proxy(log, &port, infra);
    char *pw = password("ro");
    snprintf(cmd, sizeof cmd, "PGPASSWORD=%s psql -h 127.0.0.1 -p %u -U todo_ro -d todo -Atc 'select 42'", pw, port);
    check(cmd, 0, "42\n", "the proxy with --env forwards to the infra config's server");
    free(pw);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "SIGTERM stops it with exit 0 too");
}

static void test_proxy(void)
{
    char log[300];
    unsigned port;
    snprintf(log, sizeof log, "%s/proxy.log", root);
    pid_t pid = start_proxy(log, &port, NULL);
    if (!ok(port > 0, "keel db proxy announces its port")) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return;
    }
    char *pw = password("ro");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "for i in $(seq 20); do PGPASSWORD=%s psql -h 127.0.0.1 -p %u -U todo_ro -d todo "
             "-Atc 'select pg_sleep(0.5), 1' & done; wait",
             pw, port);
    double t0 = now_s();
    int status;
    char *out = run(cmd, &status);
    double took = now_s() - t0;
    int n = 0;
    for (const char *p = out; (p = strstr(p, "|1")); p++)
        n++;
    is_int(n, 20, "20 concurrent psql sessions through the proxy all answer");
    ok(took < 5.0, "they ran at once (%.1f s for 20 x 0.5 s)", took);
    free(out);
    free(pw);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "Ctrl-C (SIGINT) stops the proxy with exit 0");
    check("cat proxy.log", 0, "stopped after 20 connections", "and it says how many it served");
    check("printf '{\"sql_servers\":[{\"host\":\"a\",\"databases\":{}},{\"host\":\"b\",\"databases\":{}}]}' "
          "> multi.json && KEEL_INFRA_CONFIG=multi.json \"$KEEL_CLI\" db proxy --env staging",
          1, "exactly one", "a config with several servers is refused clearly");
    check("\"$KEEL_CLI\" db proxy --port x", 2, "usage", "a bad --port is a usage error");
    test_proxy_env();
}

static void test_migrate(void)
{
    check("\"$KEEL_CLI\" migrate status", 0, "todo: version 2, clean, 0 pending", "migrate status shows the version");
    check("\"$KEEL_CLI\" migrate down todo", 0, "reverted 1 migration, now at version 1",
          "migrate down reverts one migration by default");
    check("\"$KEEL_CLI\" migrate status todo", 0, "pending: 0002_add_created_at.up.sql",
          "status lists the pending file");
    check("\"$KEEL_CLI\" migrate up", 0, "applied 1 migration, now at version 2", "migrate up applies it again");
    check("\"$KEEL_CLI\" migrate down todo --steps 2", 0, "reverted 2 migrations", "--steps 2 reverts two");
    check("\"$KEEL_CLI\" migrate up todo", 0, "now at version 2", "and up restores both");
    check("\"$KEEL_CLI\" db shell todo --admin -- -c 'UPDATE schema_migrations SET dirty = true' && "
          "\"$KEEL_CLI\" migrate status todo",
          0, "version 2, dirty", "status shows the dirty flag");
    check("\"$KEEL_CLI\" db shell todo --admin -- -c 'UPDATE schema_migrations SET dirty = false'", 0, "UPDATE 1",
          "(dirty flag cleared)");
    check("rm migrations/todo/0002_add_created_at.down.sql && \"$KEEL_CLI\" migrate down todo", 1,
          "0002_add_created_at.down.sql", "a missing down file fails, naming it");
    check("\"$KEEL_CLI\" migrate status todo", 0, "version 2, clean", "and the version did not move");
    check("\"$KEEL_CLI\" migrate status nosuch", 1, "nosuch", "an unknown database exits 1 naming it");
}

static void test_reset(void)
{
    check("echo \"INSERT INTO todo_item (title) VALUES ('doomed')\" | \"$KEEL_CLI\" db shell todo --write", 0,
          "INSERT 0 1", "a row is inserted before the reset");
    check("\"$KEEL_CLI\" db reset todo < /dev/null", 2, "--yes", "reset without a terminal and --yes is refused");
    check("\"$KEEL_CLI\" db reset todo --env staging --yes", 2, "local", "reset is local only");
    check("\"$KEEL_CLI\" db reset nosuch --yes", 1, "nosuch", "reset of an unknown database exits 1 naming it");
    /* script(1) gives the command a terminal, so it asks. */
    check("echo n | script -qec '\"$KEEL_CLI\" db reset todo' /dev/null", 1, "Reset database todo? [y/N]",
          "on a terminal, reset asks; answering n exits 1");
    check("\"$KEEL_CLI\" db shell todo -- -Atc 'select count(*) from todo_item'", 0, "1\n",
          "and the database is unchanged");
    check("echo y | script -qec '\"$KEEL_CLI\" db reset todo' /dev/null", 0, "applied 2 migrations",
          "answering y resets");
    check("echo \"INSERT INTO todo_item (title) VALUES ('doomed')\" | \"$KEEL_CLI\" db shell todo --write", 0,
          "INSERT 0 1", "another row is inserted");
    check("\"$KEEL_CLI\" db reset todo --yes", 0, "applied 2 migrations", "reset --yes recreates and migrates");
    check("\"$KEEL_CLI\" db shell todo -- -Atc 'select count(*) from todo_item'", 0, "0\n", "the rows are gone");
    check("\"$KEEL_CLI\" db shell todo -- -Atc 'select version, dirty from schema_migrations'", 0, "2|f\n",
          "schema_migrations is at the latest version");
    check("echo \"INSERT INTO todo_item (title) VALUES ('x')\" | \"$KEEL_CLI\" db shell todo", 0,
          "permission denied", "the roles still apply after the reset (read-only)");
    check("echo \"INSERT INTO todo_item (title) VALUES ('x')\" | \"$KEEL_CLI\" db shell todo --write", 0,
          "INSERT 0 1", "the roles still apply after the reset (write)");
}

int main(void)
{
    if (!getenv("KEEL_CLI") || !getenv("KEEL_SRCDIR") || !getenv("KEEL_EXAMPLE")) {
        printf("Bail out! KEEL_CLI, KEEL_EXAMPLE and KEEL_SRCDIR must be set (run through make check)\n");
        return 1;
    }
    char migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", getenv("KEEL_SRCDIR"));
    ht_make_app_root(root, sizeof root, migrations);
    if (!ht_start_keel_run(&srv, root, NULL)) {
        printf("Bail out! keel run did not start the app\n");
        return 1;
    }
    /* Every command below runs in the root and finds the app like a user's
     * shell would: KEEL_APP_ROOT and KEEL_APP. */
    setenv("KEEL_APP_ROOT", root, 1);
    setenv("KEEL_APP", getenv("KEEL_EXAMPLE"), 1);
    unsetenv("KEEL_INFRA_CONFIG");
    test_help();
    test_shell();
    test_conn_uri();
    test_password_not_in_argv();
    test_proxy();
    test_migrate();
    test_reset();
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
    ht_remove_app_root(root);
    return tap_done();
}

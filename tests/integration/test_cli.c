/* tests/integration/test_cli.c - the keel command's database tools against a
 * real local cluster: `keel run` provisions a fresh app root, then db shell
 * (read-only by default, --write/--admin/--superuser escalate, passwords
 * never in a child's argument list), conn-uri, the proxy under 20 concurrent
 * sessions and Ctrl-C (and its refusal of Unix-socket targets), migrate
 * status/up/down (with a missing down file), db reset, help texts and exit
 * statuses.  Also what keel, run as root, must not be tricked into: roles
 * reaching another service's data, app roots too long for keel's paths,
 * symlinks the postgres user puts in the cluster folder, and ./dev's
 * stand-in password on a command line or in clear on the wire.  keel db
 * stop and start keep the cluster's port while a stopped connection
 * lingers on it in TIME_WAIT, and the running app is ready again. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
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

/* Where keel run put the cluster (.keel/pg.json): its folder and port. */
static char cluster[512];
static unsigned pg_port;

static bool load_cluster(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/pg.json", root);
    json_t *j = json_load_file(path, 0, NULL);
    const char *dir = json_string_value(json_object_get(j, "cluster"));
    snprintf(cluster, sizeof cluster, "%s", dir ? dir : "");
    pg_port = (unsigned)json_integer_value(json_object_get(j, "port"));
    json_decref(j);
    return cluster[0] && pg_port;
}

/* The whole of a file (malloc'd; "" when it cannot be read). */
static char *slurp(const char *path)
{
    size_t cap = 65536, n = 0, got;
    char *buf = malloc(cap);
    FILE *f = buf ? fopen(path, "rb") : NULL;
    while (f && (got = fread(buf + n, 1, cap - 1 - n, f)) > 0) {
        n += got;
        char *bigger = n + 1 == cap ? realloc(buf, cap *= 2) : buf;
        if (!bigger)
            break;
        buf = bigger;
    }
    if (f)
        fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
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
    check("echo \"INSERT INTO todo_item (title) VALUES ('ro')\" | \"$KEEL_CLI\" db shell todo", 3,
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

/* A Unix-socket target would turn the proxy into an open TCP door to it:
 * with peer or trust authentication (the local cluster trusts its socket)
 * every local user would connect as the proxy's user.  Refused. */
static void test_proxy_socket_target(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "sed 's#\"127.0.0.1\"#\"%s/run\"#' .keel/infra.local.json > socket.json && grep -q '\"%s/run\"' "
             "socket.json && KEEL_INFRA_CONFIG=socket.json timeout 10 \"$KEEL_CLI\" db proxy --port 0 --env staging",
             cluster, cluster);
    check(cmd, 2, "Unix socket", "the proxy refuses a Unix-socket target (exit 2, saying why)");
    check("printf '{\"sql_servers\":[{\"host\":\"@abstract\",\"port\":5432,\"databases\":{}}]}' > abstract.json && "
          "KEEL_INFRA_CONFIG=abstract.json timeout 10 \"$KEEL_CLI\" db proxy --port 0 --env staging",
          2, "Unix socket", "and an abstract-namespace socket (@name) too");
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
    double t0 = ht_now_s();
    int status;
    char *out = run(cmd, &status);
    double took = ht_now_s() - t0;
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
    test_proxy_socket_target();
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
    check("echo \"INSERT INTO todo_item (title) VALUES ('x')\" | \"$KEEL_CLI\" db shell todo", 3,
          "permission denied", "the roles still apply after the reset (read-only)");
    check("echo \"INSERT INTO todo_item (title) VALUES ('x')\" | \"$KEEL_CLI\" db shell todo --write", 0,
          "INSERT 0 1", "the roles still apply after the reset (write)");
}

/* Each service's roles reach their own database only.  The cluster-wide
 * pg_read_all_data / pg_write_all_data let todo_app read and write any
 * database it could connect to (every one PUBLIC may connect to, like
 * ./dev's legacy stand-in); grants are now per database, with default
 * privileges covering what later migrations create. */
static void test_role_isolation(void)
{
    check("echo \"SELECT count(*) FROM webhook_event\" | \"$KEEL_CLI\" db shell todo --write -- -d webhooks", 2,
          "permission denied", "todo_app cannot read the webhooks service's tables");
    check("echo \"CREATE ROLE keel_other_owner; CREATE DATABASE keel_other OWNER keel_other_owner\" | "
          "\"$KEEL_CLI\" db shell todo --superuser -- -v ON_ERROR_STOP=1 && "
          "echo \"CREATE TABLE other_secret (v text); INSERT INTO other_secret VALUES ('other-data'); "
          "ALTER TABLE other_secret OWNER TO keel_other_owner\" | "
          "\"$KEEL_CLI\" db shell todo --superuser -- -v ON_ERROR_STOP=1 -d keel_other",
          0, "ALTER TABLE", "(another database, open to every role, with a table of its own)");
    int status;
    char *out = run("echo \"SELECT v FROM other_secret\" | \"$KEEL_CLI\" db shell todo --write -- -d keel_other",
                    &status);
    ok(tap_contains(out, "permission denied") && !tap_contains(out, "other-data"),
       "todo_app cannot read a table of a database every role may connect to");
    if (!tap_contains(out, "permission denied"))
        diag("output: %s", out);
    free(out);
    check("echo \"INSERT INTO other_secret VALUES ('todo-was-here')\" | \"$KEEL_CLI\" db shell todo --write -- "
          "-d keel_other",
          3, "permission denied", "nor write to it");
    check("echo \"SELECT v FROM other_secret\" | \"$KEEL_CLI\" db shell todo -- -d keel_other", 3,
          "permission denied", "nor can todo_ro read it");

    /* A cluster provisioned by an older keel: the memberships are revoked
     * by the next provisioning. */
    check("echo \"GRANT pg_read_all_data, pg_write_all_data TO todo_app; GRANT pg_read_all_data TO todo_ro\" | "
          "\"$KEEL_CLI\" db shell todo --superuser",
          0, "GRANT ROLE", "(the cluster-wide roles granted as an older keel did)");
    check("KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\"", 0, "starting",
          "provisioning runs again (keel run, app replaced by true)");
    check("\"$KEEL_CLI\" db shell todo --superuser -- -Atc \"SELECT r.rolname || ' in ' || m.rolname FROM "
          "pg_auth_members a JOIN pg_roles r ON r.oid = a.member JOIN pg_roles m ON m.oid = a.roleid WHERE "
          "m.rolname IN ('pg_read_all_data', 'pg_write_all_data') UNION ALL SELECT 'count ' || count(*) FROM "
          "pg_auth_members a JOIN pg_roles m ON m.oid = a.roleid WHERE m.rolname IN ('pg_read_all_data', "
          "'pg_write_all_data')\"",
          0, "count 0\n", "no role is a member of pg_read_all_data or pg_write_all_data after provisioning");
    out = run("echo \"SELECT v FROM other_secret\" | \"$KEEL_CLI\" db shell todo --write -- -d keel_other", &status);
    ok(tap_contains(out, "permission denied") && !tap_contains(out, "other-data"),
       "and todo_app cannot read the other database's table after it");
    free(out);

    /* Its own tables, including one a later migration adds (owned by
     * todo_admin, which runs migrations). */
    check("echo \"INSERT INTO todo_item (title) VALUES ('own')\" | \"$KEEL_CLI\" db shell todo --write", 0,
          "INSERT 0 1", "todo_app still writes its own table");
    check("printf 'CREATE TABLE todo_tag (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);\\n' > "
          "migrations/todo/0003_add_tag.up.sql && printf 'DROP TABLE todo_tag;\\n' > "
          "migrations/todo/0003_add_tag.down.sql && \"$KEEL_CLI\" migrate up todo",
          0, "now at version 3", "a later migration adds a table");
    check("echo \"INSERT INTO todo_tag (name) VALUES ('later') RETURNING id\" | \"$KEEL_CLI\" db shell todo --write",
          0, "INSERT 0 1", "todo_app writes the new table (and uses its sequence)");
    check("\"$KEEL_CLI\" db shell todo --write -- -Atc 'SELECT name FROM todo_tag'", 0, "later\n",
          "todo_app reads the new table");
    check("\"$KEEL_CLI\" db shell todo -- -Atc 'SELECT name FROM todo_tag'", 0, "later\n",
          "todo_ro reads the new table");
    check("echo \"INSERT INTO todo_tag (name) VALUES ('ro')\" | \"$KEEL_CLI\" db shell todo", 3, "permission denied",
          "todo_ro cannot write it");
    check("echo \"UPDATE todo_tag SET name = 'renamed'; DELETE FROM todo_tag\" | \"$KEEL_CLI\" db shell todo --write",
          0, "DELETE 1", "todo_app updates and deletes in it");
    check("\"$KEEL_CLI\" migrate down todo && rm migrations/todo/0003_add_tag.*.sql", 0, "now at version 2",
          "(the migration reverted)");
    check("echo \"DROP DATABASE keel_other; DROP ROLE keel_other_owner\" | \"$KEEL_CLI\" db shell todo --superuser", 0,
          "DROP ROLE", "(the other database dropped)");
}

/* Makes LONG_ROOT (environment, for the commands) a folder under the app
 * root whose path is exactly len bytes. */
static bool make_long_root(size_t len)
{
    char path[PATH_MAX];
    size_t n = (size_t)snprintf(path, sizeof path, "%s/long", root);
    while (n < len) {
        size_t seg = len - n - 1 < 200 ? len - n - 1 : 200;
        if (seg == 0) /* a lone "/" cannot end the path: take a byte back */
            seg = 1, n--;
        path[n++] = '/';
        memset(path + n, 'a', seg);
        n += seg;
        path[n] = '\0';
    }
    setenv("LONG_ROOT", path, 1);
    int status;
    free(run("mkdir -p \"$LONG_ROOT\"", &status));
    return status == 0 && strlen(path) == len;
}

/* realpath(3) once wrote the canonical app root into a 512-byte buffer:
 * past 512 bytes it overwrote the paths next to it, past about 2.6 KB the
 * caller's stack.  Now a root is refused with a clear error when what keel
 * derives from it does not fit, and otherwise works as any other. */
static void test_long_app_root(void)
{
    ok(make_long_root(600), "(a 600-byte app root)");
    check("cd \"$LONG_ROOT\" && KEEL_APP_ROOT=\"$LONG_ROOT\" KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app "
          "\"$KEEL_EXAMPLE\"",
          1, "too long", "keel run in it refuses: PostgreSQL's socket path would be too long");
    ok(make_long_root(3000), "(a 3000-byte app root)");
    check("KEEL_APP_ROOT=\"$LONG_ROOT\" timeout 10 \"$KEEL_CLI\" db proxy --port 0", 1,
          "no local PostgreSQL cluster under", "keel db proxy in it says there is no cluster there (no crash)");
    ok(make_long_root(PATH_MAX - 50), "(a %d-byte app root)", PATH_MAX - 50);
    check("KEEL_APP_ROOT=\"$LONG_ROOT\" timeout 10 \"$KEEL_CLI\" db proxy --port 0", 1, "too long",
          "keel db proxy in it refuses: keel's own paths under it would not fit");
    check("cd \"$LONG_ROOT\" && KEEL_APP_ROOT=\"$LONG_ROOT\" KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app "
          "\"$KEEL_EXAMPLE\"",
          1, "too long", "and so does keel run");
    unsetenv("LONG_ROOT");
    free(run("rm -rf long", NULL));
}

/* The owner of a path, or -1. */
static long owner_of(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 ? (long)st.st_uid : -1;
}

/* keel runs as root and the postgres user owns the cluster folder: a symlink
 * postgres puts there must not make root chown or write what it points to.
 * Runs with the app stopped (the cluster is stopped and started here). */
static void test_cluster_symlinks(void)
{
    if (geteuid() != 0) {
        skip("not root: the cluster folder is keel's own user's");
        return;
    }
    char victim[] = "/tmp/keel-victim-XXXXXX";
    if (!ok(mkdtemp(victim) != NULL, "(a folder of root's, standing in for /etc)"))
        return;
    setenv("VICTIM", victim, 1);
    setenv("CLUSTER", cluster, 1);

    /* <pg_dir>/run, the socket folder, replaced by a symlink. */
    ok(ht_cluster_ctl(root, false), "(the cluster stopped)");
    check("runuser -u postgres -- sh -c 'rm -rf \"$CLUSTER/run\" && ln -s \"$VICTIM\" \"$CLUSTER/run\"'", 0, "",
          "(the postgres user replaces run/ with a symlink to it)");
    check("KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\"", 1, "symlink",
          "keel run refuses the symlinked socket folder, saying so");
    is_int(owner_of(victim), 0, "and the symlink's target still belongs to root");
    check("rm \"$CLUSTER/run\" && KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\"", 0,
          "Starting PostgreSQL", "with the symlink gone, keel run starts the cluster again");

    /* initdb.log, which keel (root) opened for appending when it (re)ran
     * initdb: the cluster's logs are opened as postgres, never through a
     * symlink. */
    char target[300];
    snprintf(target, sizeof target, "%s/passwd", victim);
    FILE *f = fopen(target, "w");
    if (f) {
        fputs("root:x:0:0::/root:/bin/sh\n", f);
        fclose(f);
    }
    chmod(target, 0644);
    setenv("TARGET", target, 1);
    check("runuser -u postgres -- sh -c 'mv \"$CLUSTER/data/PG_VERSION\" \"$CLUSTER/data/PG_VERSION.moved\" && "
          "rm -f \"$CLUSTER/initdb.log\" && ln -s \"$TARGET\" \"$CLUSTER/initdb.log\"'",
          0, "", "(the postgres user makes keel recreate the cluster, with initdb.log a symlink)");
    check("KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\"", 1, "initdb.log: it is a symlink",
          "keel run refuses to write the cluster's log through the symlink, naming it");
    char *content = slurp(target);
    is_str(content, "root:x:0:0::/root:/bin/sh\n", "the symlink's target is unchanged");
    free(content);
    is_int(owner_of(target), 0, "and still belongs to root");
    check("runuser -u postgres -- sh -c 'rm \"$CLUSTER/initdb.log\" && "
          "mv \"$CLUSTER/data/PG_VERSION.moved\" \"$CLUSTER/data/PG_VERSION\"' && "
          "KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\"",
          0, "starting", "(the cluster restored)");
    /* rm -rf: without the fix the server put its socket in there. */
    free(run("rm -rf \"$VICTIM\"", NULL));
    unsetenv("VICTIM");
    unsetenv("CLUSTER");
    unsetenv("TARGET");
}

/* ./dev's standin_password sets the external stand-in's password.  Traced
 * with strace: the password is in no program's arguments and never on the
 * wire to PostgreSQL (only its SCRAM verifier is). */
static void test_standin_password(void)
{
    int status;
    free(run("strace -o /dev/null true", &status));
    if (status != 0) {
        skip("strace does not work here");
        return;
    }
    unsigned char raw[12];
    int rnd = open("/dev/urandom", O_RDONLY);
    bool got = rnd >= 0 && read(rnd, raw, sizeof raw) == (ssize_t)sizeof raw;
    if (rnd >= 0)
        close(rnd);
    char pw[64];
    size_t n = 0;
    for (size_t i = 0; i < sizeof raw; i++)
        n += (size_t)snprintf(pw + n, sizeof pw - n, "%02x", got ? raw[i] : (unsigned)i);
    snprintf(pw + n, sizeof pw - n, "@:/?#%% x"); /* the stand-in's own shape */
    char path[400];
    snprintf(path, sizeof path, "%s/standin.pw", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t w = fd >= 0 ? write(fd, pw, strlen(pw)) : -1;
    w += fd >= 0 ? write(fd, "\n", 1) : 0;
    if (fd >= 0)
        close(fd);
    ok(w == (ssize_t)strlen(pw) + 1, "(a stand-in password in a 0600 file)");
    check("echo \"CREATE ROLE keel_standin_t LOGIN\" | \"$KEEL_CLI\" db shell todo --superuser", 0, "CREATE ROLE",
          "(a role for it)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "strace -f -qq -s 65536 -e trace=execve,sendto,sendmsg -o standin.trace bash -c "
             "'set -euo pipefail; eval \"$(sed -n \"/^standin_password() {/,/^}/p\" \"$KEEL_SRCDIR/dev\")\" && "
             "standin_password \"$0\" \"$1\" keel_standin_t' '%s/run' %u < standin.pw",
             cluster, pg_port);
    check(cmd, 0, "", "./dev's standin_password runs");
    snprintf(path, sizeof path, "%s/standin.trace", root);
    char *trace = slurp(path);
    ok(tap_contains(trace, "psql\", [") && tap_contains(trace, "sendto("),
       "(strace saw psql start and talk to the server)");
    ok(!tap_contains(trace, pw), "the password is in no process's arguments and not sent to the server");
    ok(tap_contains(trace, "SCRAM-SHA-256$"), "a SCRAM verifier is sent instead");
    free(trace);
    snprintf(cmd, sizeof cmd,
             "PGPASSWORD=\"$(cat standin.pw)\" psql -X -h 127.0.0.1 -p %u -U keel_standin_t -d postgres "
             "-Atc 'SELECT current_user'",
             pg_port);
    check(cmd, 0, "keel_standin_t\n", "the role logs in with the password");
    check("echo \"DROP ROLE keel_standin_t\" | \"$KEEL_CLI\" db shell todo --superuser", 0, "DROP ROLE",
          "(the role dropped)");
    free(run("rm -f standin.pw standin.trace", NULL));
}

/* Piped input stops at the first failing statement with exit 3 (psql's
 * ON_ERROR_STOP); the user's own setting wins; migrate status names
 * misnamed files; a stopped local cluster is named with the command that
 * starts it. */
static void test_shell_stops_on_error(void)
{
    check("echo \"DROP DATABASE postgres\" | \"$KEEL_CLI\" db shell todo", 3, "must be owner",
          "piped input: a refused statement makes db shell exit 3");
    int status;
    char *out = run("printf \"INSERT INTO todo_item (title) VALUES ('ro');\\nSELECT 'after' || 'wards';\\n\" | "
                    "\"$KEEL_CLI\" db shell todo -- -At", &status);
    ok(status == 3 && tap_contains(out, "permission denied") && !tap_contains(out, "afterwards"),
       "piped input: nothing after the failing statement runs");
    free(out);
    check("printf \"SELECT 1/0;\\nSELECT 'after' || 'wards';\\n\" | \"$KEEL_CLI\" db shell todo -- -At -v ON_ERROR_STOP=0",
          0, "afterwards", "the user's own -v ON_ERROR_STOP=0 after -- is kept");
    check("touch migrations/todo/0003_tag.up && \"$KEEL_CLI\" migrate status todo; rc=$?; rm migrations/todo/0003_tag.up; exit $rc",
          0, "ignored: 0003_tag.up (not <number>_<name>.up.sql", "migrate status lists a look-alike it ignores");
    check("echo 'SELECT 1;' > migrations/todo/0003-tag.up.sql && \"$KEEL_CLI\" migrate status todo; rc=$?; "
          "rm migrations/todo/0003-tag.up.sql; exit $rc",
          1, "\"0003-tag.up.sql\" does not fit <number>_<name>.up.sql", "a misnamed .sql file: status exits 1 naming it");
}

/* keel run's infra config validates against the schema; an external
 * database added with keel db add-external is in it in the same shape, is
 * reachable with the same tools, and survives the next keel run. */
static void test_infra_config(void)
{
    char validate[1200];
    snprintf(validate, sizeof validate,
             "python3 -c \"import json, sys; from jsonschema import Draft202012Validator as V; "
             "V(json.load(open('%s/doc/infra-config.schema.json'))).validate(json.load(open('.keel/infra.local.json'))); "
             "print('valid')\"", getenv("KEEL_SRCDIR"));
    check(validate, 0, "valid", "keel run's .keel/infra.local.json validates against doc/infra-config.schema.json");
    check("grep -c '\"local_cluster\": true' .keel/infra.local.json", 0, "1",
          "it marks the local cluster's server as keel's");
    char add[600];
    snprintf(add, sizeof add,
             "\"$KEEL_CLI\" db add-external crm --host 127.0.0.1 --port %u --dbname todo --user todo_ro "
             "--sslmode disable --password-secret CRM_PASSWORD", pg_port);
    check(add, 0, "database \"crm\" on 127.0.0.1", "keel db add-external lists an external database");
    check(validate, 0, "valid", "the file still validates");
    char *ro = password("ro");
    char shell[700];
    snprintf(shell, sizeof shell, "KEEL_SECRET_CRM_PASSWORD='%s' \"$KEEL_CLI\" db shell crm --write -- -Atc "
             "'select current_user, current_database()'", ro ? ro : "");
    check(shell, 0, "todo_ro|todo", "keel db shell reaches it with the password from its secret");
    check("\"$KEEL_CLI\" db add-external todo --host 127.0.0.1 --user x", 1, "manages",
          "a managed database cannot be replaced by an external one");
    check("\"$KEEL_CLI\" db add-external Bad --host h --user u", 2, "not a database name",
          "a name that is not a database name is refused");
    check("\"$KEEL_CLI\" infra set cors '{\"allow_origins\": [\"http://localhost:5173\"]}'", 0, "cors set",
          "keel infra set writes a setting");
    check("\"$KEEL_CLI\" infra set cors '{\"allow_origins\": [\"http://x/path\"]}'", 1, "cors.allow_origins[0]",
          "and refuses one the app's parser refuses, naming where");
    check("KEEL_RUN_WRAPPER=true \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\"", 0, "starting",
          "keel run writes the local cluster's part again");
    check("grep -c 'localhost:5173' .keel/infra.local.json", 0, "1", "and keeps the CORS setting");
    check("grep -c '\"crm\"' .keel/infra.local.json", 0, "1", "and keeps the external database");
    check(shell, 0, "todo_ro|todo", "which still works");
    free(ro);
}

/* A TCP connection to the cluster whose server side closes first when the
 * cluster stops leaves that side in TIME_WAIT on the cluster's port.  keel db
 * stop then keel db start keeps the port (PostgreSQL binds with SO_REUSEADDR,
 * and so must keel's probe), and the running app, which knows no other port,
 * is ready again without a restart. */
static void test_port_kept_after_stop(void)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)pg_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ok(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "(a client connected to the cluster over TCP)");
    check("\"$KEEL_CLI\" db stop", 0, "stopped", "keel db stop stops the cluster with a client connected");
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char c;
    is_int(fd >= 0 ? read(fd, &c, 1) : -1, 0, "(the server closed the connection first)");
    if (fd >= 0)
        close(fd);
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    bool in_use = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) != 0 && errno == EADDRINUSE;
    if (probe >= 0)
        close(probe);
    ok(in_use, "(its side lingers on port %u: a bind without SO_REUSEADDR is refused)", pg_port);
    unsigned before = pg_port;
    char want[64];
    snprintf(want, sizeof want, "running on 127.0.0.1:%u (", before);
    check("\"$KEEL_CLI\" db start", 0, want, "keel db start starts the cluster on the same port");
    bool loaded = load_cluster();
    ok(loaded && pg_port == before, ".keel/pg.json still records port %u (now %u)", before, pg_port);
    long st = 0;
    for (int i = 0; i < 100 && st != 200; i++) {
        ht_response r = ht_request(&srv, "GET", "/__keel/readyz", NULL, 0, NULL);
        st = r.status;
        ht_free(&r);
        if (st != 200)
            usleep(100000);
    }
    is_int(st, 200, "the running app is ready again without a restart");
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
    if (!ht_start_keel_run(&srv, root, NULL) || !load_cluster()) {
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
    test_role_isolation();
    test_long_app_root();
    test_standin_password();
    test_infra_config();
    test_shell_stops_on_error();
    test_port_kept_after_stop();
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
    test_cluster_symlinks();
    ht_remove_app_root(root);
    return tap_done();
}

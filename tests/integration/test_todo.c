/* tests/integration/test_todo.c - the managed-database path end to end, as a
 * user meets it: `keel run` in a fresh app root creates the local cluster,
 * provisions the database and its roles, the app migrates and serves the todo
 * service; then restarts, shared databases, conn-uri with psql, a read-only
 * role, a PostgreSQL restart, a database that is down, a failing migration
 * (a syntax error, and semantic errors with and without a position), and two
 * keel runs racing on a fresh root. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv;
static char root[256];

static ht_response req(const char *method, const char *path, const char *body)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    return ht_request(&srv, method, path, body, body ? strlen(body) : 0, h);
}

static void test_first_run(void)
{
    char *log = ht_log(&srv);
    like(log, "Creating PostgreSQL cluster", "keel run creates the cluster on first use");
    like(log, "done (", "and says how long it took");
    like(log, "Creating database todo", "it provisions the todo database");
    like(log, "todo: applied 2 migrations", "the app applies the todo migrations");
    free(log);
    struct stat st;
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/infra.local.json", root);
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "the local infra config is private (0600)");
    snprintf(path, sizeof path, "%s/.keel/passwords.json", root);
    ok(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "generated passwords are private (0600)");
}

static void test_crud(void)
{
    ht_response r = req("POST", "/todo", "{\"title\":\"buy milk\"}");
    is_int(r.status, 200, "POST /todo creates");
    is_str(r.body, "{\"id\":1,\"title\":\"buy milk\",\"done\":false}", "and returns the item");
    ht_free(&r);
    const char *evil = "{\"title\":\"x'); DROP TABLE todo_item; --\"}";
    r = req("POST", "/todo", evil);
    is_str(r.body, "{\"id\":2,\"title\":\"x'); DROP TABLE todo_item; --\",\"done\":false}",
           "SQL in a value is stored as data");
    ht_free(&r);
    r = req("GET", "/todo/1", NULL);
    is_str(r.body, "{\"id\":1,\"title\":\"buy milk\",\"done\":false}", "GET /todo/1 reads it back");
    ht_free(&r);
    r = req("GET", "/todo/999", NULL);
    is_int(r.status, 404, "an absent item is 404");
    like(r.body, "\"code\":\"not_found\"", "with code not_found");
    ht_free(&r);
    r = req("GET", "/todo/abc", NULL);
    is_int(r.status, 400, "a non-numeric id is 400");
    ht_free(&r);
    r = req("PUT", "/todo/1/done", NULL);
    is_str(r.body, "{\"id\":1,\"title\":\"buy milk\",\"done\":true}", "PUT /todo/1/done marks it done");
    ht_free(&r);
    r = req("GET", "/todo", NULL);
    is_str(r.body,
           "{\"items\":[{\"id\":1,\"title\":\"buy milk\",\"done\":true},"
           "{\"id\":2,\"title\":\"x'); DROP TABLE todo_item; --\",\"done\":false}]}",
           "GET /todo lists every item from a streamed query");
    ht_free(&r);
    r = req("GET", "/stats/todo", NULL);
    is_str(r.body, "{\"total\":2,\"done\":1}", "another service reads the todo database by name");
    ht_free(&r);
    /* Pages: 7 more items read 3 at a time, each page pointing at the next. */
    for (int i = 0; i < 7; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"title\":\"page item %d\"}", i);
        r = req("POST", "/todo", body);
        ht_free(&r);
    }
    int pages = 0, items = 0, in_order = 1;
    long long after = 0, last = 0;
    bool more = true;
    while (more && pages < 10) {
        char path[64];
        snprintf(path, sizeof path, "/todo?limit=3&after=%lld", after);
        r = req("GET", path, NULL);
        json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
        json_t *list = json_object_get(j, "items"), *it;
        size_t k;
        json_array_foreach(list, k, it) {
            long long id = json_integer_value(json_object_get(it, "id"));
            in_order &= id > last;
            last = id;
            items++;
        }
        more = json_object_get(j, "next_after") != NULL;
        after = json_integer_value(json_object_get(j, "next_after"));
        in_order &= !more || after == last;
        pages++;
        json_decref(j);
        ht_free(&r);
    }
    is_int(items, 9, "GET /todo?limit=3 pages through all 9 items, each once");
    ok(pages == 3 && in_order, "in 3 pages, in id order, next_after naming each page's last id (%d pages)", pages);
    r = req("GET", "/todo?limit=1001", NULL);
    is_int(r.status, 400, "a page larger than 1000 is refused");
    like(r.body, "limit", "naming the field");
    ht_free(&r);
    r = req("GET", "/todo", NULL);
    ok(r.status == 200 && !strstr(r.body, "next_after"), "the default page (100) holds them all: no next_after");
    ht_free(&r);
    r = req("DELETE", "/todo/2", NULL);
    is_int(r.status, 200, "DELETE /todo/2 removes it");
    ht_free(&r);
    r = req("DELETE", "/todo/2", NULL);
    is_int(r.status, 404, "deleting it again is 404");
    ht_free(&r);
    r = req("POST", "/todo", "{\"title\":\"\"}");
    is_int(r.status, 400, "an empty title is refused");
    ht_free(&r);
}

static void test_conn_uri(void)
{
    char cmd[1024];
    int status;
    snprintf(cmd, sizeof cmd, "cd '%s' && \"$KEEL_CLI\" db conn-uri todo", root);
    char *uri = ht_shell(cmd, &status);
    is_int(status, 0, "keel db conn-uri todo succeeds");
    like(uri, "postgresql://todo_ro:", "it prints a postgresql:// URI for the read-only role");
    uri[strcspn(uri, "\n")] = '\0';
    snprintf(cmd, sizeof cmd, "psql '%s' -Atc 'SELECT version, dirty FROM schema_migrations' 2>&1", uri);
    char *out = ht_shell(cmd, &status);
    is_str(out, "2|f\n", "psql reads schema_migrations through that URI");
    free(out);
    snprintf(cmd, sizeof cmd, "psql '%s' -Atc \"INSERT INTO todo_item (title) VALUES ('ro')\" 2>&1", uri);
    out = ht_shell(cmd, &status);
    like(out, "permission denied", "the read-only role cannot write");
    free(out);
    free(uri);
    snprintf(cmd, sizeof cmd, "cd '%s' && \"$KEEL_CLI\" db conn-uri nosuch 2>&1", root);
    out = ht_shell(cmd, &status);
    is_int(status, 1, "an unknown database is an error");
    like(out, "nosuch", "naming it");
    free(out);
}

static void test_postgres_restart(void)
{
    ht_response r = req("GET", "/todo/1", NULL);
    is_int(r.status, 200, "the pool has a live connection before the restart");
    ht_free(&r);
    ok(ht_cluster_ctl(root, false), "PostgreSQL is stopped");
    r = req("GET", "/todo/1", NULL);
    is_int(r.status, 503, "with the database down, a request is 503");
    like(r.body, "\"code\":\"unavailable\"", "with code unavailable");
    ok(!tap_contains(r.body, "password"), "and no password in the message");
    ht_free(&r);
    ok(ht_cluster_ctl(root, true), "PostgreSQL is started again");
    r = req("GET", "/todo/1", NULL);
    is_int(r.status, 200, "the next request succeeds without restarting the app");
    ht_free(&r);
    ok(ht_cluster_ctl(root, false) && ht_cluster_ctl(root, true), "PostgreSQL restarts while the pool holds connections");
    int good = 0;
    for (int i = 0; i < 5; i++) {
        r = req("GET", "/todo/1", NULL);
        good += r.status == 200;
        ht_free(&r);
    }
    is_int(good, 5, "requests after a restart recover (broken pooled connections are replaced)");
    usleep(200 * 1000);
    char *log = ht_log(&srv);
    ok(!tap_contains(log, "password="), "the log holds no connection password");
    free(log);
}

/* A second start of the same root reuses the cluster and finds the schema
 * up to date. */
static void test_second_run(void)
{
    ht_server s2;
    if (!ok(ht_start_keel_run(&s2, root, NULL), "keel run starts again on the same root"))
        return;
    char *log = ht_log(&s2);
    ok(!tap_contains(log, "Creating PostgreSQL cluster"), "the cluster is reused");
    like(log, "todo: schema up to date", "no migration is applied twice");
    free(log);
    ht_server saved = srv;
    srv = s2;
    ht_response r = req("GET", "/todo/1", NULL);
    is_str(r.body, "{\"id\":1,\"title\":\"buy milk\",\"done\":true}", "the data is still there");
    ht_free(&r);
    srv = saved;
    is_int(ht_stop(&s2), 0, "the second app stops cleanly");
}

/* SIGTERM while 64 keep-alive clients load a database endpoint, several times
 * in a row: every time the app drains and exits 0 (no crash, no hang). */
static void test_shutdown_under_load(void)
{
    int rounds = ht_valgrind() ? 2 : 8;
    int clean = 0, loaded = 0;
    for (int i = 0; i < rounds; i++) {
        ht_server s;
        if (!ht_start_keel_run(&s, root, NULL))
            break;
        char url[128];
        snprintf(url, sizeof url, "http://127.0.0.1:%u/todo/1", s.port);
        pid_t wrk = fork();
        if (wrk == 0) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, 1);
            dup2(null, 2);
            execlp("wrk", "wrk", "-t", "2", "-c", "64", "-d", "30s", url, (char *)NULL);
            _exit(127);
        }
        /* SIGTERM only once the load is being served (seen in the log). */
        bool seen = false;
        for (int waited = 0; !seen && waited < (ht_valgrind() ? 600 : 100); waited++) {
            usleep(100 * 1000);
            char *log = ht_log(&s);
            seen = tap_contains(log, "\"/todo/:id\"");
            free(log);
        }
        loaded += seen;
        usleep((50 + 30 * i) * 1000);
        int status = ht_stop(&s);
        kill(wrk, SIGTERM);
        int wst;
        waitpid(wrk, &wst, 0);
        if (status != 0) {
            diag("round %d: the app exited with status %d", i + 1, status);
            break;
        }
        clean++;
    }
    is_int(clean, rounds, "SIGTERM under load from 64 keep-alive clients: exit 0 in every round");
    is_int(loaded, rounds, "the load reached the database endpoint before each SIGTERM");
}

/* A writer for test_restart_during_writes: POSTs until told to stop and
 * records the id of every creation the server acknowledged. */
typedef struct writer {
    int n;
    atomic_bool *stop;
    atomic_bool *restarted;   /* PostgreSQL is back */
    int64_t ids[4096];
    int acked, failed, other;
    int acked_after;          /* acknowledged once PostgreSQL was back */
} writer;

static void *write_loop(void *arg)
{
    writer *w = arg;
    for (int k = 0; !atomic_load(w->stop) && w->acked < 4096; k++) {
        char body[64];
        snprintf(body, sizeof body, "{\"title\":\"writer %d item %d\"}", w->n, k);
        ht_response r = req("POST", "/todo", body);
        json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
        if (j && json_is_integer(json_object_get(j, "id"))) {
            w->ids[w->acked++] = json_integer_value(json_object_get(j, "id"));
            w->acked_after += atomic_load(w->restarted);
        }
        else if (r.status == 503 || r.status == 0)
            w->failed++; /* the database was away: not acknowledged */
        else
            w->other++;
        json_decref(j);
        ht_free(&r);
    }
    return NULL;
}

/* PostgreSQL restarted (fast: sessions are cut) while 8 clients create
 * items: every creation the app acknowledged is in the table afterwards, and
 * nothing but "unavailable" is answered meanwhile. */
static void test_restart_during_writes(void)
{
    enum { WRITERS = 8 };
    static writer w[WRITERS];
    atomic_bool stop = false, back = false;
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer){.n = i, .stop = &stop, .restarted = &back};
        pthread_create(&t[i], NULL, write_loop, &w[i]);
    }
    usleep(ht_valgrind() ? 3000 * 1000 : 500 * 1000);
    bool restarted = ht_cluster_ctl(root, false) && ht_cluster_ctl(root, true);
    atomic_store(&back, true);
    usleep(ht_valgrind() ? 5000 * 1000 : 1000 * 1000);
    atomic_store(&stop, true);
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    ok(restarted, "PostgreSQL was restarted (-m fast) under 8 writing clients");
    int acked = 0, failed = 0, other = 0, missing = 0;
    for (int i = 0; i < WRITERS; i++) {
        acked += w[i].acked;
        failed += w[i].failed;
        other += w[i].other;
    }
    diag("%d creations acknowledged, %d refused as unavailable", acked, failed);
    ok(acked > 0, "creations were acknowledged (%d)", acked);
    is_int(other, 0, "every answer was a creation or 503 unavailable");
    for (int i = 0; i < WRITERS; i++) {
        for (int k = 0; k < w[i].acked; k++) {
            char path[64];
            snprintf(path, sizeof path, "/todo/%lld", (long long)w[i].ids[k]);
            ht_response r = req("GET", path, NULL);
            if (r.status != 200) {
                if (missing++ < 5)
                    diag("acknowledged item %lld answers %ld", (long long)w[i].ids[k], r.status);
            }
            ht_free(&r);
        }
    }
    is_int(missing, 0, "every acknowledged item is in the table after the restart");
    int served_after = 0;
    for (int i = 0; i < WRITERS; i++)
        served_after += w[i].acked_after > 0;
    is_int(served_after, WRITERS, "and every writer was served again once PostgreSQL was back");
}

/* The PostgreSQL server keel run started got none of keel's secrets in its
 * environment (the tests run with KEEL_SECRET_* set). */
static void test_postmaster_environment(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/pg.json", root);
    json_t *loc = json_load_file(path, 0, NULL);
    const char *cluster = json_string_value(json_object_get(loc, "cluster"));
    char pidfile[600];
    snprintf(pidfile, sizeof pidfile, "%s/data/postmaster.pid", cluster ? cluster : "/nonexistent");
    json_decref(loc);
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    if (f && fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    if (f)
        fclose(f);
    char envpath[64];
    snprintf(envpath, sizeof envpath, "/proc/%ld/environ", pid);
    f = fopen(envpath, "r");
    char buf[65536];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = '\n';
    buf[n] = '\0';
    ok(pid > 0 && n > 0, "the postmaster's environment can be read (pid %ld)", pid);
    ok(getenv("KEEL_SECRET_EXTERNAL_DB_PASSWORD") != NULL, "the tests run with a KEEL_SECRET_ variable set");
    ok(!tap_contains(buf, "KEEL_SECRET") && !tap_contains(buf, "KEEL_SECRETS_KEY"),
       "none of keel's secrets reached the PostgreSQL server's environment");
}

/* A broken infra config is reported with its file, line and column, never
 * with jansson's quote of the text around the error, which may be a password. */
static void test_infra_error_hides_password(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/.keel/infra.broken.json", root);
    FILE *f = fopen(path, "w");
    if (!ok(f != NULL, "a broken infra config is written"))
        return;
    fputs("{\"sql_servers\": [{\"host\": \"127.0.0.1\", \"databases\": {\"todo\": {\"name\": \"todo\",\n"
          "  \"user\": \"todo_app\", \"password\": \"hunter2-s3cret\n", f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "KEEL_APP_ROOT='%s' KEEL_INFRA_CONFIG='%s' PORT=0 \"$KEEL_EXAMPLE\" 2>&1", root, path);
    int status;
    char *out = ht_shell(cmd, &status);
    ok(status != 0, "the app refuses to start with a broken infra config");
    like(out, "infra.broken.json: line", "the error names the file and the line");
    ok(!tap_contains(out, "hunter2"), "and never quotes the text around the error (here a password): %s", out);
    free(out);
    unlink(path);
}

/* A broken migration stops start-up with the file, line and column. */
static void test_failing_migration(void)
{
    char bad[300];
    snprintf(bad, sizeof bad, "%s/migrations/todo/0003_broken.up.sql", root);
    FILE *f = fopen(bad, "w");
    fputs("CREATE TABLE half_done (id int);\n\n  SELECT * FROM no_such_table;\n", f);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && KEEL_APP_ROOT='%s' PORT=0 \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\" 2>&1",
             root, root);
    int status;
    char *out = ht_shell(cmd, &status);
    is_int(status, 1, "the app refuses to start when a migration fails");
    like(out, "0003_broken.up.sql", "the error names the file");
    like(out, "line 3, column 17", "and the line and column");
    like(out, "no_such_table", "and PostgreSQL's message");
    free(out);
    snprintf(cmd, sizeof cmd, "cd '%s' && \"$KEEL_CLI\" db conn-uri todo --admin", root);
    char *uri = ht_shell(cmd, &status);
    uri[strcspn(uri, "\n")] = '\0';
    snprintf(cmd, sizeof cmd,
             "psql '%s' -Atc \"SELECT version, dirty, to_regclass('half_done') IS NULL FROM schema_migrations\" 2>&1",
             uri);
    out = ht_shell(cmd, &status);
    is_str(out, "2|f|t\n", "the failed migration left no table behind and the version unchanged");
    free(out);
    free(uri);
    f = fopen(bad, "w");
    fputs("CREATE TABLE half_done (id int);\n", f);
    fclose(f);
    ht_server s3;
    ok(ht_start_keel_run(&s3, root, NULL), "after the file is fixed, keel run starts");
    char *log = ht_log(&s3);
    like(log, "todo: applied 1 migration", "and applies it");
    free(log);
    is_int(ht_stop(&s3), 0, "that app stops cleanly");
}

/* A migration failing on a semantic error, not a syntax error, also stops
 * keel run with the file, line and column, and start-up prints the
 * SQLSTATE (the error's cause) too.  PostgreSQL gives a position for the
 * UPDATE but none for CREATE INDEX: then the statement's start is named. */
static void test_semantic_migration_error(void)
{
    static const struct {
        const char *sql, *where, *message, *sqlstate;
    } cases[] = {
        {"ALTER TABLE todo_item ADD COLUMN x int; UPDATE todo_item SET tagz = 1;\n", "failed at line 1, column 62",
         "column \"tagz\" of relation \"todo_item\" does not exist", "SQLSTATE 42703"},
        {"ALTER TABLE todo_item ADD COLUMN x int;\n\nCREATE INDEX todo_item_tagz ON todo_item (tagz);\n",
         "failed in the statement at line 3, column 1", "column \"tagz\" does not exist", "SQLSTATE 42703"},
    };
    char bad[300];
    snprintf(bad, sizeof bad, "%s/migrations/todo/0004_semantic.up.sql", root);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(bad, "w");
        if (!ok(f != NULL, "semantic %zu: the migration is written", i))
            return;
        fputs(cases[i].sql, f);
        fclose(f);
        char cmd[1024];
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && KEEL_APP_ROOT='%s' PORT=0 \"$KEEL_CLI\" run --app \"$KEEL_EXAMPLE\" 2>&1", root, root);
        int status;
        char *out = ht_shell(cmd, &status);
        is_int(status, 1, "semantic %zu: the app refuses to start", i);
        char want[300];
        snprintf(want, sizeof want, "0004_semantic.up.sql %s: %s", cases[i].where, cases[i].message);
        like(out, want, "semantic %zu: keel run names the file, the place and PostgreSQL's message", i);
        like(out, cases[i].sqlstate, "semantic %zu: and the SQLSTATE", i);
        free(out);
    }
    unlink(bad);
}

/* Counts the lines of a file that contain needle. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Two keel runs on a fresh root at once: one creates the cluster, both serve,
 * each migration is applied once. */
static void test_racing_runs(const char *migrations)
{
    char fresh[256], alog[300];
    ht_make_app_root(fresh, sizeof fresh, migrations);
    snprintf(alog, sizeof alog, "/tmp/keel-race-%d.log", (int)getpid());
    pid_t pa = fork();
    if (pa == 0) {
        int fd = open(alog, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 2);
        if (chdir(fresh) != 0)
            _exit(126);
        setenv("PORT", "0", 1);
        setenv("KEEL_HOST", "127.0.0.1", 1);
        setenv("KEEL_APP_ROOT", fresh, 1);
        execl(getenv("KEEL_CLI"), "keel", "run", "--app", getenv("KEEL_EXAMPLE"), (char *)NULL);
        _exit(127);
    }
    ht_server b;
    ok(ht_start_keel_run(&b, fresh, NULL), "a second keel run starts while the first sets up");
    int waited = 0;
    while (count_lines(alog, "listening on") == 0 && waited++ < (ht_valgrind() ? 1200 : 300))
        usleep(100 * 1000);
    if (!ok(count_lines(alog, "listening on") == 1, "the first keel run serves too")) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "tail -n 15 '%s' | sed 's/^/#   /'", alog);
        if (system(cmd) != 0)
            diag("could not show %s", alog);
    }
    is_int(count_lines(alog, "Creating PostgreSQL cluster") + count_lines(b.log_path, "Creating PostgreSQL cluster"),
           1, "exactly one of them created the cluster");
    is_int(count_lines(alog, "todo: applied 2 migrations") + count_lines(b.log_path, "todo: applied 2 migrations"),
           1, "exactly one of them applied the migrations");
    ht_server saved = srv;
    srv = b;
    ht_response r = req("GET", "/stats/todo", NULL);
    is_str(r.body, "{\"total\":0,\"done\":0}", "the racing app serves its database");
    ht_free(&r);
    srv = saved;
    kill(pa, SIGTERM);
    int st;
    waitpid(pa, &st, 0);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the first app stops cleanly");
    is_int(ht_stop(&b), 0, "the second app stops cleanly");
    ht_remove_app_root(fresh);
    unlink(alog);
}

int main(void)
{
    if (!getenv("KEEL_CLI") || !getenv("KEEL_SRCDIR")) {
        printf("Bail out! KEEL_CLI and KEEL_SRCDIR must be set (run through make check)\n");
        return 1;
    }
    char migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", getenv("KEEL_SRCDIR"));
    ht_make_app_root(root, sizeof root, migrations);
    if (!ht_start_keel_run(&srv, root, NULL)) {
        printf("Bail out! keel run did not start the app\n");
        return 1;
    }
    test_first_run();
    test_postmaster_environment(); /* before test_postgres_restart restarts it from here */
    test_crud();
    test_conn_uri();
    test_postgres_restart();
    test_second_run();
    test_shutdown_under_load();
    test_restart_during_writes();
    test_failing_migration();
    test_semantic_migration_error();
    test_infra_error_hides_password();
    test_racing_runs(migrations);
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
    ht_remove_app_root(root);
    return tap_done();
}

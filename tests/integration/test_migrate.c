/* tests/integration/test_migrate.c - keel/migrate.h against a real, throw-away
 * PostgreSQL 15 cluster: folder loading and naming errors, applying in number
 * order, rollback and error positions (the failed statement when PostgreSQL
 * gives none, a DO body's statement), golang-migrate adoption, the dirty
 * flag, no-transaction files, several processes migrating at once, down
 * migrations, and a timing figure for 1,000 migrations.
 *
 * Fixture folders live in $KEEL_FIXTURES/migrations/<case>/ (default
 * "tests/fixtures" relative to the current folder); a fresh database is made
 * for each case. */
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"
#include "pg_harness.h"
#include "keel/migrate.h"

static pgh_cluster cluster;

/* $KEEL_FIXTURES/migrations/name; rotating static buffers (four at a time). */
static const char *fixture(const char *name)
{
    static char bufs[4][1024];
    static int next;
    const char *root = getenv("KEEL_FIXTURES");
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/migrations/%s", root && *root ? root : "tests/fixtures", name);
    return buf;
}

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* A connection to db as the superuser (notices silenced); NULL on failure,
 * which is a failed check: a case whose set-up fails must not pass quietly
 * with fewer checks. */
static PGconn *connect_db(const char *db)
{
    PGconn *conn = PQconnectdb(pgh_conninfo(&cluster, db));
    if (PQstatus(conn) != CONNECTION_OK) {
        ok(0, "set-up: connect to %s: %s", db, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notices, NULL);
    return conn;
}

/* Creates db afresh and connects to it; NULL (a failed check) on failure. */
static PGconn *fresh_db(const char *db)
{
    if (!ok(pgh_create_db(&cluster, db), "set-up: create database %s", db))
        return NULL;
    return connect_db(db);
}

/* The first value of sql's result as a new string; NULL on error or no row. */
static char *scalar(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    char *v = NULL;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strdup(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        diag("scalar: %s", PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

/* Whether sql's first value is exactly want. */
static bool scalar_is(PGconn *conn, const char *sql, const char *want)
{
    char *v = scalar(conn, sql);
    bool same = v && strcmp(v, want) == 0;
    if (!same)
        diag("%s -> %s (want %s)", sql, v ? v : "(null)", want);
    free(v);
    return same;
}

/* Whether a table, index... called name exists. */
static bool has_relation(PGconn *conn, const char *name)
{
    const char *params[1] = {name};
    PGresult *r = PQexecParams(conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, params, NULL, NULL, 0);
    bool yes = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return yes;
}

static keel_migration_state state_of(PGconn *conn)
{
    keel_migration_state st = {true, -1, true};
    keel_error *err = keel_migrate_state(conn, &st);
    if (err) {
        diag("keel_migrate_state: %s", err->message);
        keel_error_free(err);
    }
    return st;
}

/* Loads dir and applies it; *applied gets the count.  Returns the error. */
static keel_error *up_dir(PGconn *conn, const char *dir, int *applied)
{
    keel_migration_set *set = NULL;
    *applied = -1;
    keel_error *err = keel_migrations_load(dir, &set);
    if (!err)
        err = keel_migrate_up(conn, set, applied);
    keel_migrations_free(set);
    return err;
}

static keel_error *down_dir(PGconn *conn, const char *dir, int steps, int *reverted)
{
    keel_migration_set *set = NULL;
    *reverted = -1;
    keel_error *err = keel_migrations_load(dir, &set);
    if (!err)
        err = keel_migrate_down(conn, set, steps, reverted);
    keel_migrations_free(set);
    return err;
}

static const char *message_of(const keel_error *err)
{
    return err ? err->message : "(no error)";
}

static void report(const keel_error *err)
{
    if (err)
        diag("unexpected error: %s", err->message);
}

/* Whether another session could take the migration lock (it was released). */
static bool lock_is_free(const char *db)
{
    PGconn *other = connect_db(db);
    if (!other)
        return false;
    bool free_now = scalar_is(other, "SELECT pg_try_advisory_lock(hashtextextended('keel:migrate:' || "
                                     "current_database(), 0))", "t");
    PQfinish(other);
    return free_now;
}

/* A new temporary folder (static buffer); exits on failure. */
static const char *temp_dir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/keel-migrations-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    return dir;
}

static void write_file(const char *dir, const char *name, const char *content, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(content, 1, len, fp) != len) {
        perror(path);
        exit(1);
    }
    fclose(fp);
}

static void remove_dir(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
}

/* ------------------------------------------------------------------------ */

static void test_load_order(void)
{
    keel_migration_set *set = NULL;
    const char *dir = fixture("order");
    keel_error *err = keel_migrations_load(dir, &set);
    ok(!err && set, "order: loads");
    report(err);
    keel_error_free(err);
    if (!set)
        return;
    is_int(set->count, 4, "order: four migrations (README.md and notes.txt ignored)");
    int64_t want[4] = {1, 2, 3, 10};
    bool in_order = set->count == 4;
    for (size_t i = 0; in_order && i < 4; i++)
        in_order = set->items[i].version == want[i];
    ok(in_order, "order: sorted by number (1, 2, 3, 10), not by name");
    is_str(set->items[2].name, "0003_d.up.sql", "order: leading zeros kept in the name, parsed as 3");
    is_str(set->items[3].name, "10_c.up.sql", "order: 10 comes last");
    is_str(set->dir, dir, "order: set->dir is the folder as given");
    char want_path[1100];
    snprintf(want_path, sizeof want_path, "%s/0003_d.up.sql", dir);
    is_str(set->items[2].up_path, want_path, "order: up_path is folder/name");
    snprintf(want_path, sizeof want_path, "%s/1_a.down.sql", dir);
    is_str(set->items[0].down_path, want_path, "order: down file paired with its up file");
    ok(set->items[1].down_path == NULL, "order: no down file -> down_path NULL");
    keel_migrations_free(set);

    PGconn *conn = fresh_db("m_order");
    if (!conn)
        return;
    int applied;
    err = up_dir(conn, dir, &applied);
    ok(!err, "order: applies (10 depends on 2 and 3, so name order would fail)");
    report(err);
    keel_error_free(err);
    is_int(applied, 4, "order: four applied");
    ok(scalar_is(conn, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'", "2"),
       "order: migration 10 ran after 2 and 3");
    is_int(state_of(conn).version, 10, "order: version 10");
    PQfinish(conn);
}

/* Loading dir fails with invalid_argument; returns the message (caller frees). */
static char *load_error(const char *dir)
{
    static keel_migration_set sentinel;
    keel_migration_set *set = &sentinel; /* must be reset to NULL */
    keel_error *err = keel_migrations_load(dir, &set);
    if (!err || err->code != KEEL_INVALID_ARGUMENT || set != NULL) {
        diag("load %s: expected invalid_argument, got %s", dir, err ? keel_code_name(err->code) : "success");
        if (!err)
            keel_migrations_free(set);
        keel_error_free(err);
        return NULL;
    }
    char *msg = strdup(err->message);
    keel_error_free(err);
    return msg;
}

static void test_naming_errors(void)
{
    char want[1200];
    const char *dir = fixture("bad_name");
    char *msg = load_error(dir);
    snprintf(want, sizeof want, "%s: \"create.sql\" does not fit <number>_<name>.up.sql", dir);
    is_str(msg, want, "naming: a .sql file without a number is refused, naming it");
    free(msg);

    msg = load_error(fixture("bad_name_dot"));
    like(msg, "\"1_a.b.up.sql\" does not fit", "naming: a dot inside the name is refused");
    free(msg);
    msg = load_error(fixture("bad_name_underscore"));
    like(msg, "\"1_.up.sql\" does not fit", "naming: an empty name after '_' is refused");
    free(msg);
    msg = load_error(fixture("bad_name_direction"));
    like(msg, "\"1_x.sideways.sql\" does not fit", "naming: neither .up.sql nor .down.sql is refused");
    free(msg);

    msg = load_error(fixture("duplicate"));
    like(msg, "\"01_second.up.sql\" and \"1_first.up.sql\" both have number 1",
         "naming: two files with one number are refused, naming both");
    free(msg);

    msg = load_error(fixture("version_zero"));
    like(msg, "\"0_init.up.sql\" has number 0", "naming: version 0 is refused");
    free(msg);

    msg = load_error(fixture("down_without_up"));
    like(msg, "\"2_b.down.sql\" has no up file", "naming: a down file without its up file is refused");
    free(msg);

    msg = load_error(fixture("overflow"));
    like(msg, "\"9223372036854775808_big.up.sql\" has a number too large",
         "naming: a number beyond int64 is refused");
    free(msg);

    dir = fixture("does_not_exist");
    msg = load_error(dir);
    snprintf(want, sizeof want, "migration folder \"%s\" does not exist", dir);
    is_str(msg, want, "naming: a missing folder is reported");
    free(msg);

    dir = fixture("only_readme");
    msg = load_error(dir);
    snprintf(want, sizeof want, "migration folder \"%s\" has no migrations (expected files like 1_init.up.sql)",
             dir);
    is_str(msg, want, "naming: a folder with only non-.sql files has no migrations");
    free(msg);

    char empty[64];
    snprintf(empty, sizeof empty, "%s", temp_dir());
    msg = load_error(empty);
    snprintf(want, sizeof want, "migration folder \"%s\" has no migrations (expected files like 1_init.up.sql)",
             empty);
    is_str(msg, want, "naming: an empty folder has no migrations");
    free(msg);
    remove_dir(empty);
}

static void test_basic_and_down(void)
{
    PGconn *conn = fresh_db("m_basic");
    if (!conn)
        return;
    const char *dir = fixture("downs");
    keel_migration_state st = state_of(conn);
    ok(!st.tracked && st.version == 0 && !st.dirty, "state: no schema_migrations -> untracked, version 0");

    int n;
    keel_error *err = up_dir(conn, dir, &n);
    ok(!err, "basic: two migrations apply");
    report(err);
    keel_error_free(err);
    is_int(n, 2, "basic: applied == 2");
    ok(scalar_is(conn, "SELECT count(*) || ':' || max(version) || ':' || bool_or(dirty) FROM schema_migrations",
                 "1:2:false"),
       "basic: schema_migrations holds one row (2, false)");
    ok(has_relation(conn, "users") && has_relation(conn, "posts"), "basic: both tables exist");
    st = state_of(conn);
    ok(st.tracked && st.version == 2 && !st.dirty, "basic: state says tracked, version 2, clean");
    ok(PQtransactionStatus(conn) == PQTRANS_IDLE, "basic: connection left idle");
    ok(lock_is_free("m_basic"), "basic: the advisory lock is released");

    err = up_dir(conn, dir, &n);
    ok(!err && n == 0, "basic: running again applies 0");
    keel_error_free(err);

    err = down_dir(conn, dir, 1, &n);
    ok(!err && n == 1, "down: one step reverts one migration");
    report(err);
    keel_error_free(err);
    ok(!has_relation(conn, "posts") && has_relation(conn, "users"), "down: the down file ran (posts dropped)");
    st = state_of(conn);
    ok(st.tracked && st.version == 1 && !st.dirty, "down: version moved back to 1");

    err = down_dir(conn, dir, 5, &n);
    ok(!err && n == 1, "down: five steps from version 1 revert just one");
    keel_error_free(err);
    st = state_of(conn);
    ok(!st.tracked && st.version == 0 && !has_relation(conn, "users"),
       "down: below the first migration the row is deleted (version 0)");

    err = down_dir(conn, dir, 1, &n);
    ok(!err && n == 0, "down: nothing left to revert -> 0, no error");
    keel_error_free(err);

    err = up_dir(conn, dir, &n);
    ok(!err && n == 2 && has_relation(conn, "posts"), "down: up again re-applies both");
    keel_error_free(err);
    ok(lock_is_free("m_basic"), "down: the advisory lock is released");
    PQfinish(conn);
}

static void test_failure_and_fix(void)
{
    /* UTF-8 explicitly: positions are counted in characters. */
    if (!ok(pgh_exec(&cluster, "postgres", "DROP DATABASE IF EXISTS m_todo WITH (FORCE)") &&
                pgh_exec(&cluster, "postgres", "CREATE DATABASE m_todo TEMPLATE template0 ENCODING 'UTF8' "
                                               "LC_COLLATE 'C' LC_CTYPE 'C'"),
            "set-up: a UTF-8 database m_todo"))
        return;
    PGconn *conn = connect_db("m_todo");
    if (!conn)
        return;
    const char *v1 = fixture("todo_v1");
    int n;
    keel_error *err = up_dir(conn, v1, &n);
    ok(err && err->code == KEEL_FAILED_PRECONDITION, "failure: a failing migration is failed_precondition");
    is_int(n, 2, "failure: the two good migrations before it were applied");
    char want[1200];
    snprintf(want, sizeof want,
             "migration %s/0003_tags.up.sql failed at line 4, column 25: relation \"todo_tags\" does not exist", v1);
    is_str(message_of(err), want, "failure: the error names the file, line 4, column 25 (characters) and PG's message");
    ok(err && tap_contains(err->cause, "42P01"), "failure: the SQLSTATE is in the cause");
    keel_error_free(err);
    ok(!has_relation(conn, "tags"), "failure: rolled back completely (the table from its first statement is gone)");
    keel_migration_state st = state_of(conn);
    ok(st.version == 2 && !st.dirty, "failure: version unchanged (2) and not dirty");
    ok(PQtransactionStatus(conn) == PQTRANS_IDLE, "failure: connection left idle");
    ok(lock_is_free("m_todo"), "failure: the advisory lock is released");

    err = up_dir(conn, v1, &n);
    ok(err && n == 0, "failure: running the broken folder again fails again, applying 0");
    keel_error_free(err);

    err = up_dir(conn, fixture("todo_v2"), &n);
    ok(!err && n == 1, "fix: the fixed file applies on the next run");
    report(err);
    keel_error_free(err);
    ok(scalar_is(conn, "SELECT note FROM todo_tags", "é"), "fix: its data is there (UTF-8 intact)");
    is_int(state_of(conn).version, 3, "fix: version 3");

    err = down_dir(conn, fixture("todo_v2"), 1, &n);
    snprintf(want, sizeof want, "cannot revert migration 3: %s/0003_tags.down.sql does not exist",
             fixture("todo_v2"));
    is_str(message_of(err), want, "down: a missing down file stops with an error naming it");
    ok(err && err->code == KEEL_FAILED_PRECONDITION && n == 0, "down: failed_precondition, nothing reverted");
    keel_error_free(err);
    is_int(state_of(conn).version, 3, "down: version still 3");
    PQfinish(conn);
}

static void test_adoption_and_dirty(void)
{
    const char *golang_table = "CREATE TABLE schema_migrations (version bigint not null primary key, "
                               "dirty boolean not null);"
                               "CREATE TABLE adopt_a (id int); CREATE TABLE adopt_b (id int);";
    PGconn *conn = fresh_db("m_adopt");
    if (!conn || !ok(pgh_exec(&cluster, "m_adopt", golang_table) &&
                         pgh_exec(&cluster, "m_adopt", "INSERT INTO schema_migrations VALUES (2, false)"),
                     "set-up: a golang-migrate table at version 2")) {
        PQfinish(conn);
        return;
    }
    int n;
    keel_error *err = up_dir(conn, fixture("adopt"), &n);
    ok(!err && n == 2, "adopt: a golang-migrate database at version 2 gets only 3 and 4");
    report(err);
    keel_error_free(err);
    ok(has_relation(conn, "adopt_c") &&
           scalar_is(conn, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'adopt_c'", "2"),
       "adopt: 3 and 4 ran");
    ok(scalar_is(conn, "SELECT count(*) || ':' || max(version) FROM schema_migrations", "1:4"),
       "adopt: still one row, version 4");
    PQfinish(conn);

    conn = fresh_db("m_dirty");
    if (!conn || !ok(pgh_exec(&cluster, "m_dirty", golang_table) &&
                         pgh_exec(&cluster, "m_dirty", "INSERT INTO schema_migrations VALUES (2, true)"),
                     "set-up: a dirty golang-migrate table at version 2")) {
        PQfinish(conn);
        return;
    }
    err = up_dir(conn, fixture("adopt"), &n);
    ok(err && err->code == KEEL_FAILED_PRECONDITION && n == 0, "dirty: refused, nothing applied");
    diag("%s", message_of(err));
    like(message_of(err), "database is dirty at migration version 2", "dirty: the message names the version");
    like(message_of(err), "UPDATE schema_migrations SET dirty = false;", "dirty: and the SQL to accept it");
    like(message_of(err), "UPDATE schema_migrations SET version = 1, dirty = false;",
         "dirty: and the SQL to go back to the last good version");
    keel_error_free(err);
    ok(!has_relation(conn, "adopt_c"), "dirty: no migration ran");
    ok(lock_is_free("m_dirty"), "dirty: the advisory lock is released");
    pgh_exec(&cluster, "m_dirty", "UPDATE schema_migrations SET dirty = false");
    err = up_dir(conn, fixture("adopt"), &n);
    ok(!err && n == 2, "dirty: after the repair SQL the next run applies 3 and 4");
    keel_error_free(err);

    /* several rows (not golang-migrate's way): the newest counts */
    pgh_exec(&cluster, "m_dirty", "INSERT INTO schema_migrations VALUES (1, false), (7, true)");
    keel_migration_state st = state_of(conn);
    ok(st.tracked && st.version == 7 && st.dirty, "state: with several rows, max(version) and its dirty flag");
    pgh_exec(&cluster, "m_dirty", "DELETE FROM schema_migrations");
    st = state_of(conn);
    ok(!st.tracked && st.version == 0, "state: an empty schema_migrations is untracked, version 0");
    PQfinish(conn);
}

static void test_no_transaction(void)
{
    PGconn *conn = fresh_db("m_notx");
    if (!conn)
        return;
    int n;
    keel_error *err = up_dir(conn, fixture("no_tx"), &n);
    ok(!err && n == 2, "no-tx: CREATE INDEX CONCURRENTLY runs with the marker");
    report(err);
    keel_error_free(err);
    ok(scalar_is(conn, "SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid IN "
                       "('items_name'::regclass, 'items_id'::regclass)", "2"),
       "no-tx: both indexes exist and are valid (statements split correctly)");
    ok(scalar_is(conn, "SELECT obj_description('items_name'::regclass)", "names; looked up by the API"),
       "no-tx: a ';' inside a string does not split");
    keel_migration_state st = state_of(conn);
    ok(st.version == 2 && !st.dirty, "no-tx: version 2, clean");
    PQfinish(conn);

    conn = fresh_db("m_notx_missing");
    if (!conn)
        return;
    err = up_dir(conn, fixture("no_tx_missing"), &n);
    like(message_of(err), "2_index.up.sql failed", "no marker: the error names the file");
    like(message_of(err), "CREATE INDEX CONCURRENTLY cannot run inside a transaction block",
         "no marker: PostgreSQL's own message");
    like(message_of(err), "(put \"-- keel:no-transaction\" on the file's first line to run it outside a transaction)",
         "no marker: the hint");
    keel_error_free(err);
    st = state_of(conn);
    ok(n == 1 && st.version == 1 && !st.dirty && !has_relation(conn, "items_name"),
       "no marker: rolled back, version 1");
    PQfinish(conn);

    conn = fresh_db("m_notx_fail");
    if (!conn)
        return;
    err = up_dir(conn, fixture("no_tx_fail"), &n);
    like(message_of(err), "2_index.up.sql failed at line 3, column 10: column \"no_such_column\" does not exist",
         "no-tx failure: line and column within the file (third statement's offset)");
    like(message_of(err), "marked dirty at version 2", "no-tx failure: says the database is marked dirty");
    diag("%s", message_of(err));
    keel_error_free(err);
    st = state_of(conn);
    ok(st.version == 2 && st.dirty, "no-tx failure: schema_migrations says (2, dirty)");
    ok(has_relation(conn, "items_name") && !has_relation(conn, "items_id"),
       "no-tx failure: statements before the failure stay, later ones did not run");
    err = up_dir(conn, fixture("no_tx_fail"), &n);
    like(message_of(err), "database is dirty at migration version 2", "no-tx failure: the next start is refused");
    keel_error_free(err);
    PQfinish(conn);
}

/* A child: connects, migrates race/, exits with the applied count (or 100). */
static void race_child(void)
{
    PGconn *conn = connect_db("m_race");
    int n = -1;
    keel_error *err = conn ? up_dir(conn, fixture("race"), &n) : NULL;
    int status = conn && !err && n >= 0 ? n : 100;
    if (err)
        printf("# child %d: %s\n", (int)getpid(), err->message);
    fflush(stdout);
    keel_error_free(err);
    PQfinish(conn);
    _exit(status);
}

static void test_race(void)
{
    if (!ok(pgh_create_db(&cluster, "m_race"), "set-up: create database m_race"))
        return;
    fflush(stdout);
    pid_t kids[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = fork();
        if (kids[i] == 0)
            race_child();
    }
    int sum = 0, succeeded = 0;
    for (int i = 0; i < 4; i++) {
        int status = 0;
        if (kids[i] > 0 && waitpid(kids[i], &status, 0) == kids[i] && WIFEXITED(status) &&
            WEXITSTATUS(status) < 100) {
            succeeded++;
            sum += WEXITSTATUS(status);
        }
    }
    is_int(succeeded, 4, "race: four processes migrating one database all succeed");
    is_int(sum, 4, "race: each migration applied exactly once (sum of applied == 4)");
    PGconn *conn = connect_db("m_race");
    if (!conn)
        return;
    keel_migration_state st = state_of(conn);
    ok(st.version == 4 && !st.dirty, "race: final version 4, clean");
    ok(has_relation(conn, "r1") && has_relation(conn, "r4"), "race: the tables exist");
    PQfinish(conn);
}

/* The process applying a long migration is killed with SIGKILL half-way:
 * nothing of that migration is left (its first statement's table is gone,
 * the version is unchanged, not dirty), and the next run applies it cleanly. */
/* The number of other sessions on db whose query contains like (SQL LIKE). */
static long other_sessions(PGconn *conn, const char *db, const char *like)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' AND query LIKE '%s' "
             "AND pid <> pg_backend_pid()", db, like);
    char *v = scalar(conn, sql);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

static void test_killed_mid_migration(void)
{
    PGconn *conn = fresh_db("m_killed");
    if (!conn)
        return;
    const char *dir = temp_dir();
    const char *first = "CREATE TABLE k_first (id int);\n";
    const char *slow = "CREATE TABLE k_half (id int);\n"
                       "INSERT INTO k_half SELECT generate_series(1, 1000);\n"
                       "SELECT pg_sleep(3);\n"
                       "ALTER TABLE k_first ADD COLUMN late int;\n";
    write_file(dir, "1_first.up.sql", first, strlen(first));
    write_file(dir, "2_slow.up.sql", slow, strlen(slow));
    fflush(stdout);
    pid_t kid = fork();
    if (kid == 0) {
        PGconn *c = PQconnectdb(pgh_conninfo(&cluster, "m_killed"));
        int n;
        keel_error *err = up_dir(c, dir, &n);
        _exit(err ? 1 : 0);
    }
    /* Kill it once the slow statement is running (seen from the server). */
    bool sleeping = false;
    for (int i = 0; i < 100 && !sleeping; i++) {
        usleep(50 * 1000);
        sleeping = other_sessions(conn, "m_killed", "%pg_sleep(3)%") == 1;
    }
    ok(sleeping, "killed: the slow migration is running");
    kill(kid, SIGKILL);
    int status = 0;
    waitpid(kid, &status, 0);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed: the migrating process died of SIGKILL");
    /* Its server session notices only when it next writes to the client. */
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        gone = other_sessions(conn, "m_killed", "%") == 0;
        if (!gone)
            usleep(50 * 1000);
    }
    ok(gone, "killed: its server session has ended");
    keel_migration_state st = state_of(conn);
    ok(st.version == 1 && !st.dirty, "killed: version 1 (the finished migration), not dirty");
    ok(has_relation(conn, "k_first") && !has_relation(conn, "k_half"),
       "killed: nothing of the half-done migration is left");
    ok(scalar_is(conn, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'k_first' "
                       "AND column_name = 'late'", "0"),
       "killed: not even its change to an earlier table");
    ok(lock_is_free("m_killed"), "killed: the advisory lock went with the session");
    int n;
    keel_error *err = up_dir(conn, dir, &n);
    ok(!err && n == 1, "killed: the next run applies it cleanly");
    report(err);
    keel_error_free(err);
    ok(scalar_is(conn, "SELECT count(*) FROM k_half", "1000") && state_of(conn).version == 2,
       "killed: now complete, at version 2");
    PQfinish(conn);
    remove_dir(dir);
}

static void test_file_contents(void)
{
    PGconn *conn = fresh_db("m_files");
    if (!conn)
        return;
    int n;
    keel_error *err = up_dir(conn, fixture("empty_file"), &n);
    like(message_of(err), "1_empty.up.sql is empty", "files: an empty file is refused, naming it");
    keel_error_free(err);

    char dir[64];
    snprintf(dir, sizeof dir, "%s", temp_dir());
    write_file(dir, "1_nul.up.sql", "SELECT 1;\0SELECT 2;\n", 20);
    err = up_dir(conn, dir, &n);
    like(message_of(err), "1_nul.up.sql contains a NUL byte", "files: a file with a NUL byte is refused");
    keel_error_free(err);
    remove_dir(dir);

    snprintf(dir, sizeof dir, "%s", temp_dir());
    const char *boom = "DO $$ BEGIN RAISE EXCEPTION 'boom %', 42; END $$;\n";
    write_file(dir, "1_boom.up.sql", boom, strlen(boom));
    err = up_dir(conn, dir, &n);
    like(message_of(err),
         "1_boom.up.sql failed in the statement at line 1, column 1: boom 42 (PL/pgSQL function inline_code_block "
         "line 1 at RAISE)",
         "files: without a position the error names the statement and carries PostgreSQL's context");
    keel_error_free(err);
    remove_dir(dir);

    err = up_dir(conn, fixture("wrapped"), &n);
    ok(!err && n == 2, "files: a file with its own BEGIN/COMMIT (golang-migrate style) applies");
    report(err);
    keel_error_free(err);
    keel_migration_state st = state_of(conn);
    ok(st.version == 2 && !st.dirty && has_relation(conn, "wrapped"), "files: and its version is recorded");
    PQfinish(conn);

    conn = fresh_db("m_big");
    if (!conn)
        return;
    err = up_dir(conn, fixture("big_version"), &n);
    ok(!err && n == 2, "big: version 9223372036854775807 applies");
    keel_error_free(err);
    ok(state_of(conn).version == INT64_MAX, "big: recorded as INT64_MAX (bound as a parameter)");
    PQfinish(conn);
}

/* Where a failed migration is reported when PostgreSQL gives no statement
 * position: the statement that failed (most DDL errors), or the position
 * inside a DO body.  Each case rewrites 2_bad.up.sql over 1_note.up.sql;
 * a failure in a transaction leaves the database at version 1. */
static void test_error_places(void)
{
    PGconn *conn = fresh_db("m_places");
    if (!conn)
        return;
    char dir[64];
    snprintf(dir, sizeof dir, "%s", temp_dir());
    const char *note = "CREATE TABLE note (id int, tags text);\n";
    write_file(dir, "1_note.up.sql", note, strlen(note));
    static const struct {
        const char *sql, *want, *what;
    } cases[] = {
        {"-- add x; then index it\nALTER TABLE note ADD COLUMN x int;;\n/* the index */\n"
         "  CREATE INDEX note_tagz ON note (tagz);\n",
         "2_bad.up.sql failed in the statement at line 4, column 3: column \"tagz\" does not exist",
         "a DDL error without a position names the statement's line and column"},
        {"ALTER TABLE note ADD COLUMN x int; UPDATE note SET tagz = 1;\n",
         "2_bad.up.sql failed at line 1, column 52: column \"tagz\" of relation \"note\" does not exist",
         "a semantic error after another statement on the line has its position"},
        {"DO $$\nBEGIN\n  UPDATE note SET tagz = 1;\nEND $$;\n",
         "2_bad.up.sql failed at line 3, column 19: column \"tagz\" of relation \"note\" does not exist "
         "(PL/pgSQL function inline_code_block line 3 at SQL statement)",
         "an error inside a DO body is placed in the file, with PostgreSQL's context"},
        {"CREATE FUNCTION one() RETURNS int LANGUAGE sql\nBEGIN ATOMIC SELECT 1; END;\nCREATE TABLE note (id int);\n",
         "2_bad.up.sql failed: relation \"note\" already exists",
         "after a BEGIN ATOMIC body no statement is guessed"},
        {"CREATE TABLE c (id int);\nCOPY c FROM STDIN;\n",
         "2_bad.up.sql failed in the statement at line 2, column 1: COPY to or from the client is not possible",
         "COPY from the client names its statement"},
        {"-- keel:no-transaction\nCREATE TABLE nt (id int);\n\nCREATE TABLE nt (id int);\n",
         "2_bad.up.sql failed in the statement at line 4, column 1: relation \"nt\" already exists",
         "a no-transaction file names the statement that failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(dir, "2_bad.up.sql", cases[i].sql, strlen(cases[i].sql));
        int n;
        keel_error *err = up_dir(conn, dir, &n);
        like(message_of(err), cases[i].want, "places: %s", cases[i].what);
        if (i == 0) {
            ok(err && tap_contains(err->cause, "SQLSTATE 42703"), "places: the SQLSTATE is in the cause");
            ok(state_of(conn).version == 1 &&
                   scalar_is(conn, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'x'", "0"),
               "places: the file was rolled back (no column x), version 1");
        }
        keel_error_free(err);
    }
    PQfinish(conn);
    remove_dir(dir);
}

static void test_thousand(void)
{
    char dir[64];
    snprintf(dir, sizeof dir, "%s", temp_dir());
    for (int i = 1; i <= 1000; i++) {
        char name[64], sql[64];
        snprintf(name, sizeof name, "%04d_t%d.up.sql", i, i);
        int len = snprintf(sql, sizeof sql, "CREATE TABLE t_%d (id int);\n", i);
        write_file(dir, name, sql, (size_t)len);
    }
    PGconn *conn = fresh_db("m_thousand");
    if (!conn)
        return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n;
    keel_error *err = up_dir(conn, dir, &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ok(!err && n == 1000, "thousand: 1000 migrations apply");
    report(err);
    keel_error_free(err);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    diag("1000 migrations applied in %.0f ms", ms);
    is_int(state_of(conn).version, 1000, "thousand: version 1000");
    PQfinish(conn);
    remove_dir(dir);
}

int main(void)
{
    if (!pgh_start(&cluster)) {
        ok(0, "PostgreSQL test cluster starts");
        pgh_stop(&cluster);
        return tap_done();
    }
    test_load_order();
    test_naming_errors();
    test_basic_and_down();
    test_failure_and_fix();
    test_adoption_and_dirty();
    test_no_transaction();
    test_race();
    test_killed_mid_migration();
    test_file_contents();
    test_error_places();
    test_thousand();
    pgh_stop(&cluster);
    return tap_done();
}

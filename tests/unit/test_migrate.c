/* tests/unit/test_migrate.c - what framework/lib/migrate.c does without a
 * database: migration file names (parse_name, and keel_migrations_load on
 * real folders made with mkdtemp: ordering, pairing of down files, and every
 * refusal with a message naming the file), reading a file (empty, NUL byte,
 * byte order mark, the "-- keel:no-transaction" marker), the statement
 * splitter that runs no-transaction files (quotes, E'' strings, quoted
 * identifiers, dollar quotes, nested comments, empty and unterminated
 * statements), error positions (which statement failed, a DO body's
 * statement), hidden files and folders named like migrations, the repair
 * instructions for a dirty database,
 * and the argument checks of keel_migrate_up/down.
 *
 * The splitter, the name parser and the file reader are static, so this file
 * #includes migrate.c (as tests/fuzz/fuzz_migrate.c does) and is linked with
 * the two framework files migrate.c needs (error.c, pg_error.c) and libpq,
 * not with libkeel, whose own copy of migrate.c would clash with this one.
 *
 * The fixture files tests/integration/test_migrate.c applies are read from
 * $KEEL_FIXTURES/migrations (default tests/fixtures/migrations), for the
 * checks that need no server. */
#define KEEL_MIGRATE_STANDALONE 1 /* without the tracing code */
#include "../../framework/lib/sql/migrate.c"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

/* ------------------------------------------------------------------------
 * Folders and files
 * ------------------------------------------------------------------------ */

static const char *fixture(const char *name)
{
    static char bufs[4][1024];
    static int next;
    const char *root = getenv("KEEL_FIXTURES");
    char *buf = bufs[next++ % 4];
    snprintf(buf, sizeof bufs[0], "%s/migrations/%s", root && *root ? root : "tests/fixtures", name);
    return buf;
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

/* A new folder holding a file "SELECT 1;" for each name (NULL-terminated
 * list); a name ending in '/' is made a subfolder.  Returns a new string. */
static char *make_folder(const char *const *names)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = keel__format("%s/keel-unit-migrate-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!dir || !mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    for (size_t i = 0; names && names[i]; i++) {
        size_t n = strlen(names[i]);
        if (n > 0 && names[i][n - 1] == '/') {
            char *sub = keel__format("%s/%.*s", dir, (int)(n - 1), names[i]);
            if (!sub || mkdir(sub, 0700) != 0) {
                perror("mkdir");
                exit(1);
            }
            free(sub);
        } else
            write_file(dir, names[i], "SELECT 1;\n", 10);
    }
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        diag("could not remove %s", path);
    return 0;
}

/* Removes dir and everything in it, and frees the string. */
static void remove_folder(char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Loading dir fails with invalid_argument and leaves *out NULL; returns the
 * message (caller frees), or NULL when it did not fail that way. */
static char *load_error(const char *dir)
{
    static keel_migration_set sentinel;
    keel_migration_set *set = &sentinel; /* must be reset to NULL */
    keel_error *err = keel_migrations_load(dir, &set);
    if (!err || err->code != KEEL_INVALID_ARGUMENT || set != NULL) {
        diag("load %s: expected invalid_argument, got %s", dir ? dir : "(null)",
             err ? keel_code_name(err->code) : "success");
        if (!err)
            keel_migrations_free(set);
        keel_error_free(err);
        return NULL;
    }
    char *msg = strdup(err->message);
    keel_error_free(err);
    return msg;
}

/* Makes a folder of names, loads it, and checks the message is exactly
 * "<folder>: " + rest (the folder is only known once made). */
static void folder_refused(const char *const *names, const char *rest, const char *what)
{
    char *dir = make_folder(names);
    char *msg = load_error(dir);
    char *want = keel__format("%s: %s", dir, rest);
    is_str(msg, want, "load: %s", what);
    free(want);
    free(msg);
    remove_folder(dir);
}

/* ------------------------------------------------------------------------
 * File names
 * ------------------------------------------------------------------------ */

static void test_parse_name(void)
{
    static const struct {
        const char *name;
        name_fit fit;
        int64_t version;
        direction dir;
    } cases[] = {
        {"0001_create.up.sql", NAME_FITS, 1, DIRECTION_UP},
        {"2.up.sql", NAME_FITS, 2, DIRECTION_UP},
        {"2.down.sql", NAME_FITS, 2, DIRECTION_DOWN},
        {"12_add_index.down.sql", NAME_FITS, 12, DIRECTION_DOWN},
        {"3_with space-and-dash.up.sql", NAME_FITS, 3, DIRECTION_UP},
        {"0_init.up.sql", NAME_FITS, 0, DIRECTION_UP}, /* refused later, by consider_name */
        {"9223372036854775807_max.up.sql", NAME_FITS, INT64_MAX, DIRECTION_UP},
        {"0009223372036854775807.up.sql", NAME_FITS, INT64_MAX, DIRECTION_UP},
        {"9223372036854775808_big.up.sql", NAME_TOO_LARGE, 0, DIRECTION_UP},
        {"99999999999999999999999.down.sql", NAME_TOO_LARGE, 0, DIRECTION_DOWN},
        {"create.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"create.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"_1.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_a.b.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1.a.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_x.sideways.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_x.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_x.UP.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_x.up.SQL", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_x.up.sql.bak", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1_x.up.sql ", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1x.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"1-x.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {" 1_x.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"+1_x.up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {".up.sql", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
        {"", NAME_DOES_NOT_FIT, 0, DIRECTION_UP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t version = -7;
        direction dir = cases[i].dir == DIRECTION_UP ? DIRECTION_DOWN : DIRECTION_UP;
        name_fit fit = parse_name(cases[i].name, &version, &dir);
        bool good = fit == cases[i].fit;
        if (good && fit == NAME_FITS)
            good = version == cases[i].version && dir == cases[i].dir;
        else if (good)
            good = version == -7; /* untouched */
        if (!ok(good, "parse_name \"%s\": %s", cases[i].name,
                cases[i].fit == NAME_FITS      ? "fits"
                : cases[i].fit == NAME_TOO_LARGE ? "too large"
                                                 : "does not fit"))
            diag("fit %d, version %" PRId64 ", direction %d", (int)fit, version, (int)dir);
    }
}
#define PARSE_NAME_CHECKS 28

/* consider_name on one name: NULL and an entry for a migration, NULL and
 * nothing for a name to ignore, else the message. */
static void test_consider_name(void)
{
    entry_list list = {0};
    keel_error *err = consider_name("dir", "README.md", &list);
    ok(!err && list.count == 0, "consider_name: README.md is ignored");
    keel_error_free(err);
    err = consider_name("dir", "1_x.up.sql.orig", &list);
    ok(!err && list.count == 0, "consider_name: a name not ending in .sql is ignored");
    keel_error_free(err);
    err = consider_name("dir", "0001_create.up.sql", &list);
    ok(!err && list.count == 1 && list.items[0].version == 1 && list.items[0].dir == DIRECTION_UP &&
           strcmp(list.items[0].name, "0001_create.up.sql") == 0,
       "consider_name: a migration is added with its version, direction and name");
    keel_error_free(err);

    err = consider_name("dir", "create.sql", &list);
    is_str(err ? err->message : NULL, "dir: \"create.sql\" does not fit <number>_<name>.up.sql",
           "consider_name: a .sql file without a number is refused, naming folder and file");
    keel_error_free(err);
    err = consider_name("dir", "1_x.up.SQL", &list);
    is_str(err ? err->message : NULL, "dir: \"1_x.up.SQL\" does not fit <number>_<name>.up.sql",
           "consider_name: .SQL in capitals is looked at (and refused), not ignored");
    keel_error_free(err);
    err = consider_name("dir", "9223372036854775808_big.up.sql", &list);
    is_str(err ? err->message : NULL,
           "dir: \"9223372036854775808_big.up.sql\" has a number too large (at most 9223372036854775807)",
           "consider_name: a number beyond int64 is refused, saying the limit");
    keel_error_free(err);
    err = consider_name("dir", "0_init.up.sql", &list);
    is_str(err ? err->message : NULL, "dir: \"0_init.up.sql\" has number 0; migrations are numbered from 1",
           "consider_name: number 0 is refused");
    keel_error_free(err);
    err = consider_name("dir", "000.down.sql", &list);
    like(err ? err->message : NULL, "\"000.down.sql\" has number 0", "consider_name: 000 is number 0 too");
    keel_error_free(err);
    is_int(list.count, 1, "consider_name: refused names add nothing");
    entries_free(&list);
}
#define CONSIDER_NAME_CHECKS 9

static void test_load_good(void)
{
    static const char *const names[] = {"0001_create.up.sql", "0001_create.down.sql", "2.up.sql", "10_c.up.sql",
                                        "0003_d.up.sql", "3_d.down.sql", "README.md", "notes.txt", "sub/", NULL};
    char *dir = make_folder(names);
    keel_migration_set *set = NULL;
    keel_error *err = keel_migrations_load(dir, &set);
    ok(!err && set, "load: a good folder loads");
    if (err)
        diag("%s", err->message);
    keel_error_free(err);
    if (set) {
        is_int(set->count, 4, "load: four migrations (README.md, notes.txt and a subfolder ignored)");
        bool in_order = set->count == 4 && set->items[0].version == 1 && set->items[1].version == 2 &&
                        set->items[2].version == 3 && set->items[3].version == 10;
        ok(in_order, "load: sorted by number (1, 2, 3, 10), not by name; the gap 4-9 is allowed");
        is_str(set->dir, dir, "load: set->dir is the folder as given");
        if (set->count == 4) {
            is_str(set->items[0].name, "0001_create.up.sql", "load: leading zeros kept in the name");
            char *want = keel__format("%s/0003_d.up.sql", dir);
            is_str(set->items[2].up_path, want, "load: up_path is folder/name");
            free(want);
            want = keel__format("%s/0001_create.down.sql", dir);
            is_str(set->items[0].down_path, want, "load: a down file is paired with its up file");
            free(want);
            want = keel__format("%s/3_d.down.sql", dir);
            is_str(set->items[2].down_path, want, "load: 3_d.down.sql pairs with 0003_d.up.sql (same number)");
            free(want);
            ok(set->items[1].down_path == NULL && set->items[3].down_path == NULL,
               "load: no down file -> down_path NULL");
        } else {
            for (int i = 0; i < 5; i++)
                ok(0, "load: (set has %zu migrations, not 4)", set->count);
        }
        keel_migrations_free(set);
    } else {
        for (int i = 0; i < 8; i++)
            ok(0, "load: (no set)");
    }

    /* The folder given with a trailing slash: paths without a doubled one. */
    char *slashed = keel__format("%s/", dir);
    set = NULL;
    err = keel_migrations_load(slashed, &set);
    char *want = keel__format("%s/2.up.sql", dir);
    is_str(set && set->count == 4 ? set->items[1].up_path : NULL, want,
           "load: a trailing slash on the folder is not doubled in paths");
    free(want);
    keel_error_free(err);
    keel_migrations_free(set);
    free(slashed);
    remove_folder(dir);

    static const char *const one[] = {"7.up.sql", NULL};
    dir = make_folder(one);
    set = NULL;
    err = keel_migrations_load(dir, &set);
    ok(!err && set && set->count == 1 && set->items[0].version == 7 && strcmp(set->items[0].name, "7.up.sql") == 0,
       "load: a name without _<name> (7.up.sql) loads");
    keel_error_free(err);
    keel_migrations_free(set);
    remove_folder(dir);

    /* The integration test's fixture, loaded here without a cluster. */
    set = NULL;
    err = keel_migrations_load(fixture("order"), &set);
    ok(!err && set && set->count == 4 && set->items[3].version == 10 &&
           strcmp(set->items[2].name, "0003_d.up.sql") == 0 && set->items[0].down_path &&
           !set->items[1].down_path,
       "load: the order fixture gives 1, 2, 0003 and 10, with 1's down file");
    if (err)
        diag("%s", err->message);
    keel_error_free(err);
    keel_migrations_free(set);
}
#define LOAD_GOOD_CHECKS 12

static void test_load_refused(void)
{
    folder_refused((const char *const[]){"1_ok.up.sql", "create.sql", NULL},
                   "\"create.sql\" does not fit <number>_<name>.up.sql", "a .sql file without a number");
    folder_refused((const char *const[]){"1_a.b.up.sql", NULL}, "\"1_a.b.up.sql\" does not fit <number>_<name>.up.sql",
                   "a dot inside the name");
    folder_refused((const char *const[]){"1_.up.sql", NULL}, "\"1_.up.sql\" does not fit <number>_<name>.up.sql",
                   "an empty name after '_'");
    folder_refused((const char *const[]){"1_x.sideways.sql", NULL},
                   "\"1_x.sideways.sql\" does not fit <number>_<name>.up.sql", "neither .up.sql nor .down.sql");
    folder_refused((const char *const[]){"1_x.sql", NULL}, "\"1_x.sql\" does not fit <number>_<name>.up.sql",
                   "no direction at all");
    folder_refused((const char *const[]){"1_x.Up.Sql", NULL}, "\"1_x.Up.Sql\" does not fit <number>_<name>.up.sql",
                   "a suffix in other capitals");
    folder_refused((const char *const[]){"01_second.up.sql", "1_first.up.sql", "2_other.up.sql", NULL},
                   "\"01_second.up.sql\" and \"1_first.up.sql\" both have number 1 (up)",
                   "two up files with one number, naming both");
    folder_refused((const char *const[]){"1_a.up.sql", "1_a.down.sql", "01_b.down.sql", NULL},
                   "\"01_b.down.sql\" and \"1_a.down.sql\" both have number 1 (down)",
                   "two down files with one number, naming both");
    folder_refused((const char *const[]){"1_a.up.sql", "2_b.down.sql", NULL},
                   "\"2_b.down.sql\" has no up file (expected 2_<name>.up.sql)", "a down file without its up file");
    folder_refused((const char *const[]){"1_a.down.sql", NULL},
                   "\"1_a.down.sql\" has no up file (expected 1_<name>.up.sql)", "a folder with only a down file");
    folder_refused((const char *const[]){"0_init.up.sql", "1_next.up.sql", NULL},
                   "\"0_init.up.sql\" has number 0; migrations are numbered from 1", "number 0");
    folder_refused((const char *const[]){"9223372036854775808_big.up.sql", NULL},
                   "\"9223372036854775808_big.up.sql\" has a number too large (at most 9223372036854775807)",
                   "a number beyond int64");

    /* Folders that are not there or hold nothing. */
    char *dir = make_folder(NULL);
    char *missing = keel__format("%s/does_not_exist", dir);
    char *msg = load_error(missing);
    char *want = keel__format("migration folder \"%s\" does not exist", missing);
    is_str(msg, want, "load: a missing folder is reported");
    free(msg);
    free(want);
    free(missing);

    msg = load_error(dir);
    want = keel__format("migration folder \"%s\" has no migrations (expected files like 1_init.up.sql)", dir);
    is_str(msg, want, "load: an empty folder has no migrations");
    free(msg);
    free(want);

    write_file(dir, "README.md", "# notes\n", 8);
    msg = load_error(dir);
    want = keel__format("migration folder \"%s\" has no migrations (expected files like 1_init.up.sql)", dir);
    is_str(msg, want, "load: a folder with only non-.sql files has no migrations");
    free(msg);
    free(want);

    char *file = keel__format("%s/README.md", dir);
    msg = load_error(file);
    want = keel__format("migration folder \"%s\" is not a folder", file);
    is_str(msg, want, "load: a file given as the folder is reported");
    free(msg);
    free(want);
    free(file);

    if (geteuid() == 0)
        skip("an unreadable folder: running as root, which reads any folder");
    else {
        char *locked = keel__format("%s/locked", dir);
        mkdir(locked, 0);
        msg = load_error(locked);
        want = keel__format("cannot read migration folder \"%s\": Permission denied", locked);
        is_str(msg, want, "load: an unreadable folder is reported with the reason");
        free(msg);
        free(want);
        chmod(locked, 0700);
        free(locked);
    }
    remove_folder(dir);

    msg = load_error(NULL);
    is_str(msg, "no migration folder given", "load: a NULL folder is refused");
    free(msg);
    msg = load_error("");
    is_str(msg, "no migration folder given", "load: an empty folder name is refused");
    free(msg);

    /* The integration test's naming fixtures, without a cluster. */
    const char *fdir = fixture("bad_name");
    msg = load_error(fdir);
    want = keel__format("%s: \"create.sql\" does not fit <number>_<name>.up.sql", fdir);
    is_str(msg, want, "load: the bad_name fixture is refused, naming the file");
    free(msg);
    free(want);
    msg = load_error(fixture("duplicate"));
    like(msg, "\"01_second.up.sql\" and \"1_first.up.sql\" both have number 1",
         "load: the duplicate fixture is refused, naming both files");
    free(msg);
}
#define LOAD_REFUSED_CHECKS (12 + 5 + 2 + 2)

/* Hidden names are skipped (an editor's lock file must not stop the app),
 * and a folder named like a migration is refused when loading, not when it
 * would be applied after the migrations before it. */
static void test_hidden_and_folders(void)
{
    entry_list list = {0};
    static const char *const hidden[] = {".#0001_x.up.sql", "._0001_x.up.sql", ".0001_x.up.sql", ".x.sql"};
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        keel_error *err = consider_name("dir", hidden[i], &list);
        ok(!err && list.count == 0, "consider_name: hidden \"%s\" is skipped", hidden[i]);
        if (err)
            diag("%s", err->message);
        keel_error_free(err);
    }
    entries_free(&list);

    static const char *const editor[] = {"1_a.up.sql", ".#1_a.up.sql", "._1_a.up.sql", "._1_a.down.sql",
                                         ".2_b.up.sql/", NULL};
    char *dir = make_folder(editor);
    keel_migration_set *set = NULL;
    keel_error *err = keel_migrations_load(dir, &set);
    ok(!err && set && set->count == 1 && set->items[0].version == 1 && !set->items[0].down_path,
       "load: lock, AppleDouble and other hidden files and folders beside a migration are skipped");
    if (err)
        diag("%s", err->message);
    keel_error_free(err);
    keel_migrations_free(set);
    remove_folder(dir);

    folder_refused((const char *const[]){"1_a.up.sql", "2_b.up.sql/", NULL},
                   "\"2_b.up.sql\" is a folder, but a migration must be a file: rename or move the folder",
                   "a folder named like an up migration");
    folder_refused((const char *const[]){"1_a.up.sql", "1_a.down.sql/", NULL},
                   "\"1_a.down.sql\" is a folder, but a migration must be a file: rename or move the folder",
                   "a folder named like a down migration");
    folder_refused((const char *const[]){"1_a.up.sql", "old.sql/", NULL},
                   "\"old.sql\" does not fit <number>_<name>.up.sql", "a folder ending in .sql that does not fit");

    /* A symbolic link to a folder is a folder too; one to a file is a file. */
    dir = make_folder((const char *const[]){"1_a.up.sql", "real/", NULL});
    char *target = keel__format("%s/real", dir), *link_path = keel__format("%s/2_b.up.sql", dir);
    char *want = keel__format("%s: \"2_b.up.sql\" is a folder, but a migration must be a file: rename or move "
                              "the folder", dir);
    char *msg = symlink(target, link_path) == 0 ? load_error(dir) : NULL;
    is_str(msg, want, "load: a link to a folder, named like a migration, is refused");
    free(msg);
    free(want);
    unlink(link_path);
    free(target);
    target = keel__format("%s/1_a.up.sql", dir);
    set = NULL;
    err = symlink(target, link_path) == 0 ? keel_migrations_load(dir, &set) : keel_error_new(KEEL_INTERNAL, "symlink");
    ok(!err && set && set->count == 2, "load: a link to a file, named like a migration, loads");
    keel_error_free(err);
    keel_migrations_free(set);
    free(target);
    free(link_path);
    remove_folder(dir);
}
#define HIDDEN_AND_FOLDERS_CHECKS (4 + 1 + 3 + 2)

/* ------------------------------------------------------------------------
 * Reading a file, and the no-transaction marker
 * ------------------------------------------------------------------------ */

/* Writes content to a file of its own and reads it with read_sql_file. */
static keel_error *read_text(const char *content, size_t len, sql_file *f, char **dir_out, char **path_out)
{
    *dir_out = make_folder(NULL);
    write_file(*dir_out, "1_x.up.sql", content, len);
    *path_out = keel__format("%s/1_x.up.sql", *dir_out);
    return read_sql_file(*path_out, f);
}

/* Whether the file content has the marker as read_sql_file sees it. */
static bool marker_of(const char *content)
{
    sql_file f;
    char *dir, *path;
    keel_error *err = read_text(content, strlen(content), &f, &dir, &path);
    bool marked = !err && f.no_transaction;
    if (err)
        diag("%s", err->message);
    keel_error_free(err);
    free(f.text);
    free(path);
    remove_folder(dir);
    return marked;
}

static void test_marker(void)
{
    ok(marker_of("-- keel:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);\n"),
       "marker: on the first line, the file runs outside a transaction");
    ok(marker_of("-- keel:no-transaction"), "marker: a file of just the marker line (no newline)");
    ok(marker_of("  -- keel:no-transaction \t\r\nSELECT 1;\n"), "marker: blanks and CRLF around it are allowed");
    ok(marker_of("\xEF\xBB\xBF-- keel:no-transaction\nSELECT 1;\n"), "marker: after a UTF-8 byte order mark");
    ok(!marker_of("SELECT 1;\n-- keel:no-transaction\n"), "marker: on the second line it is an ordinary comment");
    ok(!marker_of("\n-- keel:no-transaction\nSELECT 1;\n"), "marker: after an empty first line it does not count");
    ok(!marker_of("-- keel:no-transaction please\nSELECT 1;\n"), "marker: with more text on the line it does not count");
    ok(!marker_of("--keel:no-transaction\nSELECT 1;\n"), "marker: without the space it does not count");
    ok(!marker_of("-- KEEL:NO-TRANSACTION\nSELECT 1;\n"), "marker: in capitals it does not count");
    ok(!marker_of("/* -- keel:no-transaction */\nSELECT 1;\n"), "marker: inside a block comment it does not count");
    ok(!marker_of("SELECT 1;\n"), "marker: an ordinary file runs in a transaction");

    sql_file f;
    keel_error *err = read_sql_file(fixture("no_tx/2_index.up.sql"), &f);
    ok(!err && f.no_transaction, "marker: the no_tx fixture has it");
    keel_error_free(err);
    free(f.text); /* NULL after an error */
    err = read_sql_file(fixture("no_tx_missing/2_index.up.sql"), &f);
    ok(!err && !f.no_transaction, "marker: the no_tx_missing fixture has not");
    keel_error_free(err);
    free(f.text);
}
#define MARKER_CHECKS 13

static void test_read_file(void)
{
    sql_file f;
    char *dir, *path, *want;
    keel_error *err = read_text("", 0, &f, &dir, &path);
    want = keel__format("migration %s is empty", path);
    ok(err && err->code == KEEL_FAILED_PRECONDITION && strcmp(err->message, want) == 0 && !f.text,
       "read: an empty file is refused as failed_precondition, naming it");
    if (err && strcmp(err->message, want) != 0)
        diag("got: %s", err->message);
    keel_error_free(err);
    free(want);
    free(path);
    remove_folder(dir);

    err = read_text(" \n\t\r\n", 5, &f, &dir, &path);
    like(err ? err->message : NULL, "1_x.up.sql is empty", "read: a file of blanks is empty");
    keel_error_free(err);
    free(path);
    remove_folder(dir);

    err = read_text("\xEF\xBB\xBF\n", 4, &f, &dir, &path);
    like(err ? err->message : NULL, "1_x.up.sql is empty", "read: a byte order mark and a newline are empty");
    keel_error_free(err);
    free(path);
    remove_folder(dir);

    err = read_text("SELECT 1;\0SELECT 2;\n", 20, &f, &dir, &path);
    want = keel__format("migration %s contains a NUL byte; is it really SQL text?", path);
    is_str(err ? err->message : NULL, want, "read: a file with a NUL byte is refused, naming it");
    keel_error_free(err);
    free(want);
    free(path);
    remove_folder(dir);

    dir = make_folder(NULL);
    path = keel__format("%s/9_gone.up.sql", dir);
    err = read_sql_file(path, &f);
    want = keel__format("cannot read migration %s: No such file or directory", path);
    is_str(err ? err->message : NULL, want, "read: a missing file is reported with the reason");
    keel_error_free(err);
    free(want);
    free(path);
    remove_folder(dir);

    err = read_text("\xEF\xBB\xBFSELECT 1;", 12, &f, &dir, &path);
    ok(!err && f.len == 9 && strcmp(f.text, "SELECT 1;") == 0 && strcmp(f.path, path) == 0,
       "read: a byte order mark is dropped, the rest kept and NUL-terminated");
    keel_error_free(err);
    free(f.text);
    free(path);
    remove_folder(dir);

    /* Past the first 4 KiB buffer, and exactly at its growth points. */
    static const size_t sizes[] = {4095, 4096, 100000};
    for (size_t k = 0; k < 3; k++) {
        size_t n = sizes[k];
        char *big = malloc(n);
        for (size_t i = 0; i < n; i++)
            big[i] = (char)('a' + i % 26);
        memcpy(big, "SELECT ", 7);
        err = read_text(big, n, &f, &dir, &path);
        ok(!err && f.len == n && f.text[n] == '\0' && memcmp(f.text, big, n) == 0,
           "read: a file of %zu bytes is read whole", n);
        keel_error_free(err);
        free(f.text);
        free(big);
        free(path);
        remove_folder(dir);
    }
}
#define READ_FILE_CHECKS 9

/* ------------------------------------------------------------------------
 * Splitting into statements
 * ------------------------------------------------------------------------ */

/* Splits sql as run_without_transaction does, from a buffer of exactly its
 * length (so that ASan sees a read past it), and renders the statements that
 * hold SQL, trimmed of blanks, joined by " | ".  *pieces gets the number of
 * pieces including blank and comment-only ones.  Also checks what the fuzz
 * target checks: progress, exact cover, ';' at every end but the last, and
 * the same split for a statement given alone; *sound says whether all held.
 * Returns a new string. */
static char *split(const char *sql, size_t *pieces, bool *sound)
{
    size_t len = strlen(sql);
    char *text = malloc(len ? len : 1);
    memcpy(text, sql, len);
    char *out = strdup("");
    *pieces = 0;
    *sound = true;
    for (size_t start = 0; start < len;) {
        bool has_sql;
        size_t end = statement_end(text, len, start, &has_sql);
        if (end <= start || end > len) {
            *sound = false;
            break;
        }
        if (end < len && text[end - 1] != ';')
            *sound = false;
        char *alone = malloc(end - start);
        memcpy(alone, text + start, end - start);
        bool alone_sql;
        if (statement_end(alone, end - start, 0, &alone_sql) != end - start || alone_sql != has_sql)
            *sound = false;
        free(alone);
        (*pieces)++;
        if (has_sql) {
            size_t a = start, b = end;
            while (a < b && isspace((unsigned char)text[a]))
                a++;
            while (b > a && isspace((unsigned char)text[b - 1]))
                b--;
            char *grown = keel__format("%s%s%.*s", out, *out ? " | " : "", (int)(b - a), text + a);
            free(out);
            out = grown;
        }
        start = end;
    }
    free(text);
    return out;
}

static void test_split(void)
{
    static const struct {
        const char *sql;
        const char *want;
        size_t pieces;
        const char *what;
    } cases[] = {
        {"SELECT 1; SELECT 2;", "SELECT 1; | SELECT 2;", 2, "two statements"},
        {"SELECT 1;\nSELECT 2", "SELECT 1; | SELECT 2", 2, "a trailing statement without ';'"},
        {"SELECT 1", "SELECT 1", 1, "one statement without ';'"},
        {";;SELECT 1;;  ;\n", "SELECT 1;", 6, "empty statements hold no SQL"},
        {"", "", 0, "an empty text"},
        {"INSERT INTO t VALUES ('a;b'); SELECT 2;", "INSERT INTO t VALUES ('a;b'); | SELECT 2;", 2,
         "';' inside a string"},
        {"SELECT 'it''s; fine'; SELECT 2;", "SELECT 'it''s; fine'; | SELECT 2;", 2, "a doubled quote in a string"},
        {"SELECT 'a\\'; SELECT 2;", "SELECT 'a\\'; | SELECT 2;", 2,
         "a backslash is no escape in a standard string"},
        {"SELECT E'a\\'; b'; SELECT 2;", "SELECT E'a\\'; b'; | SELECT 2;", 2, "a backslash escapes in E''"},
        {"SELECT e'\\\\'; SELECT 2;", "SELECT e'\\\\'; | SELECT 2;", 2, "an escaped backslash ends e'' at the quote"},
        {"SELECT E'\\''; SELECT 2;", "SELECT E'\\''; | SELECT 2;", 2, "E'\\'' is one string"},
        {"SELECT 'a' ||E'b\\';c'; SELECT 2;", "SELECT 'a' ||E'b\\';c'; | SELECT 2;", 2,
         "E'' right after an operator"},
        {"SELECT typE'a\\'; SELECT 2;", "SELECT typE'a\\'; | SELECT 2;", 2,
         "an identifier ending in E does not make an E'' string"},
        {"CREATE TABLE \"we;ird\" (\"a\"\"b;\" int); SELECT 2;", "CREATE TABLE \"we;ird\" (\"a\"\"b;\" int); | SELECT 2;",
         2, "';' and a doubled quote inside a quoted identifier"},
        {"CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql; SELECT 2;",
         "CREATE FUNCTION f() RETURNS int AS $$ BEGIN RETURN 1; END $$ LANGUAGE plpgsql; | SELECT 2;", 2,
         "a $$ body"},
        {"DO $body$ BEGIN PERFORM 1; $$ still; END $body$; SELECT 2;",
         "DO $body$ BEGIN PERFORM 1; $$ still; END $body$; | SELECT 2;", 2, "$$ does not end a $body$ quote"},
        {"DO $a$ x; $b$ y; $b$ z; $a$; SELECT 2;", "DO $a$ x; $b$ y; $b$ z; $a$; | SELECT 2;", 2,
         "another tag inside a dollar quote"},
        {"SELECT $a$x;$A$y;$a$; SELECT 2;", "SELECT $a$x;$A$y;$a$; | SELECT 2;", 2, "tags are case-sensitive"},
        {"SELECT $_t1$;$_t1$; SELECT 2;", "SELECT $_t1$;$_t1$; | SELECT 2;", 2, "a tag with '_' and a digit"},
        {"PREPARE p AS SELECT $1; SELECT 2;", "PREPARE p AS SELECT $1; | SELECT 2;", 2, "$1 is a parameter"},
        {"SELECT x$y$ FROM t; SELECT 2;", "SELECT x$y$ FROM t; | SELECT 2;", 2,
         "'$' inside an identifier opens no dollar quote"},
        {"SELECT 1 -- not; here\n; SELECT 2;", "SELECT 1 -- not; here\n; | SELECT 2;", 2, "';' in a -- comment"},
        {"SELECT /* a; b */ 1; SELECT 2;", "SELECT /* a; b */ 1; | SELECT 2;", 2, "';' in a block comment"},
        {"SELECT /* outer /* inner; */ still; */ 1; SELECT 2;",
         "SELECT /* outer /* inner; */ still; */ 1; | SELECT 2;", 2, "nested block comments"},
        {"SELECT 1; -- the end\n", "SELECT 1;", 2, "a trailing comment holds no SQL"},
        {"SELECT 1; /* a */ -- b\n ;SELECT 2;", "SELECT 1; | SELECT 2;", 3, "a comment-only statement holds no SQL"},
        {"SELECT '--'; SELECT '/*'; SELECT 3;", "SELECT '--'; | SELECT '/*'; | SELECT 3;", 3,
         "comment openers inside strings"},
        {"SELECT 'abc; SELECT 2;", "SELECT 'abc; SELECT 2;", 1, "an unterminated string runs to the end"},
        {"SELECT \"abc; SELECT 2;", "SELECT \"abc; SELECT 2;", 1, "an unterminated identifier runs to the end"},
        {"SELECT E'abc\\", "SELECT E'abc\\", 1, "a backslash at the very end of an E'' string"},
        {"SELECT 1 /* ; /* ; */ ;", "SELECT 1 /* ; /* ; */ ;", 1, "an unterminated comment runs to the end"},
        {"DO $$ ; ", "DO $$ ;", 1, "an unterminated dollar quote runs to the end"},
        {"SELECT 1 $", "SELECT 1 $", 1, "a lone '$' at the end"},
        {"SELECT 1 -", "SELECT 1 -", 1, "a lone '-' at the end"},
        {"SELECT 1 /", "SELECT 1 /", 1, "a lone '/' at the end"},
        {"SELECT 'é;ü'; SELECT 2;", "SELECT 'é;ü'; | SELECT 2;", 2, "UTF-8 text in a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t pieces;
        bool sound;
        char *got = split(cases[i].sql, &pieces, &sound);
        bool same = strcmp(got, cases[i].want) == 0 && pieces == cases[i].pieces && sound;
        if (!ok(same, "split: %s", cases[i].what))
            diag("got: '%s' in %zu pieces%s\n#   expected: '%s' in %zu pieces", got, pieces,
                 sound ? "" : " (unsound)", cases[i].want, cases[i].pieces);
        free(got);
    }

    /* The integration test's no-transaction fixture. */
    sql_file f;
    keel_error *err = read_sql_file(fixture("no_tx/2_index.up.sql"), &f);
    if (err) {
        ok(0, "split: read the no_tx fixture: %s", err->message);
        keel_error_free(err);
        return;
    }
    size_t pieces;
    bool sound;
    char *got = split(f.text, &pieces, &sound);
    char *tail = strstr(got, "CREATE INDEX CONCURRENTLY items_name ON items (name);");
    is_str(tail,
           "CREATE INDEX CONCURRENTLY items_name ON items (name); | "
           "COMMENT ON INDEX items_name IS 'names; looked up by the API'; | "
           "DO $$ BEGIN PERFORM 1; END $$; | "
           "CREATE INDEX CONCURRENTLY items_id ON items (id)",
           "split: the no_tx fixture gives its four statements");
    free(got);
    free(f.text);
}
#define SPLIT_CHECKS (36 + 1)

/* ------------------------------------------------------------------------
 * Error positions, repair instructions, argument checks
 * ------------------------------------------------------------------------ */

static void test_locate(void)
{
    unsigned long line = 0, column = 0;
    const char *t = "SELECT 1;\nSELECT 'ü', bad;";
    size_t len = strlen(t), second = 9; /* just past the first ';' */
    /* Statement 2 is "\nSELECT 'ü', bad;": "bad" is its 14th character
     * (PostgreSQL counts characters for UTF8 clients) and its 15th byte. */
    locate(t, len, second, 14, true, &line, &column);
    ok(line == 2 && column == 13, "locate: a character position in the second statement is line 2, column 13");
    if (line != 2 || column != 13)
        diag("got %lu:%lu", line, column);
    locate(t, len, second, 15, false, &line, &column);
    ok(line == 2 && column == 14, "locate: counted in bytes, 'ü' takes two columns");
    if (line != 2 || column != 14)
        diag("got %lu:%lu", line, column);
    locate(t, len, 0, 1, true, &line, &column);
    ok(line == 1 && column == 1, "locate: position 1 of the first statement is 1:1");
    locate(t, len, 0, 0, true, &line, &column);
    ok(line == 1 && column == 1, "locate: position 0 is taken as 1:1");
    locate(t, len, second, 1000, true, &line, &column);
    ok(line == 2 && column == 17, "locate: a position past the end stops just after the text");

    /* The integration test's no_tx_fail fixture: PostgreSQL reports position
     * 11 in its second statement ("\n  SELECT no_such_column ..."), which the
     * integration test expects as line 3, column 10. */
    sql_file f;
    keel_error *err = read_sql_file(fixture("no_tx_fail/2_index.up.sql"), &f);
    if (err) {
        ok(0, "locate: read the no_tx_fail fixture: %s", err->message);
        keel_error_free(err);
        return;
    }
    bool has_sql;
    size_t start = statement_end(f.text, f.len, 0, &has_sql); /* the second statement starts here */
    locate(f.text, f.len, start, 11, true, &line, &column);
    ok(line == 3 && column == 10, "locate: no_tx_fail's error is at line 3, column 10");
    free(f.text);
}
#define LOCATE_CHECKS 6

/* A sql_file over text, as read_sql_file would give it. */
static sql_file file_of(const char *text)
{
    return (sql_file){"m.up.sql", (char *)text, strlen(text), has_no_transaction_marker(text, strlen(text))};
}

/* The line:column where find_statement puts statement index (from byte
 * from), as a new string; "none" when it finds none. */
static char *statement_at(const char *text, size_t from, size_t index)
{
    sql_file f = file_of(text);
    size_t at = 0, end = 0;
    if (!find_statement(&f, from, index, &at, &end))
        return strdup("none");
    unsigned long line, column;
    locate(f.text, f.len, at, 1, true, &line, &column);
    return keel__format("%lu:%lu", line, column);
}

/* Which statement failed when PostgreSQL gives no position (most DDL), and
 * where a statement of a DO body that PostgreSQL reports by its internal
 * position is in the file. */
static void test_statements(void)
{
    const char *t = "-- keel:no-transaction\nCREATE TABLE a (id int);;\n/* c; */\n  -- x\n"
                    "  CREATE INDEX i ON a (tagz);\nSELECT 1";
    struct {
        size_t index;
        const char *want, *what;
    } cases[] = {
        {0, "2:1", "the first statement, past the marker comment"},
        {1, "5:3", "the second, past an empty statement, comments and blanks"},
        {2, "6:1", "the last, without ';'"},
        {3, "none", "no fourth statement"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = statement_at(t, 0, cases[i].index);
        is_str(got, cases[i].want, "statement %zu: %s", cases[i].index, cases[i].what);
        free(got);
    }
    char *got = statement_at(t, (size_t)(strstr(t, ";\n/*") - t) + 1, 0);
    is_str(got, "5:3", "statement: counted from an offset (a no-transaction file's piece)");
    free(got);
    const char *atomic = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC SELECT 1; END;\nSELECT 2;";
    got = statement_at(atomic, 0, 1);
    is_str(got, "none", "statement: after a BEGIN ATOMIC body the count is not trusted");
    free(got);
    got = statement_at(atomic, 0, 0);
    is_str(got, "1:1", "statement: but the first statement is still found");
    free(got);

    const char *body = "DO $$\nBEGIN\n  UPDATE note SET tagz = 1;\nEND $$;\n";
    sql_file f = file_of(body);
    size_t at = 0;
    unsigned long line = 0, column = 0;
    bool found = find_internal_query(&f, 0, f.len, "UPDATE note SET tagz = 1", &at);
    if (found)
        locate(f.text, f.len, at, 17, true, &line, &column);
    ok(found && line == 3 && column == 19, "internal: position 17 of the body's UPDATE is line 3, column 19");
    if (line != 3 || column != 19)
        diag("found %d at %lu:%lu", found, line, column);
    f = file_of("DO $$ BEGIN UPDATE t SET a = 1; UPDATE t SET a = 1; END $$;");
    ok(!find_internal_query(&f, 0, f.len, "UPDATE t SET a = 1", &at), "internal: a query found twice is not guessed");
    ok(!find_internal_query(&f, 0, f.len, "UPDATE t SET b = 1", &at), "internal: a query not in the file");
    ok(!find_internal_query(&f, 0, f.len, "", &at), "internal: an empty query");
    f = file_of(body);
    ok(!find_internal_query(&f, 0, 12, "UPDATE note SET tagz = 1", &at),
       "internal: only within the failed statement's bytes");

    char where[96];
    f = file_of(t);
    bool context = describe_place(NULL, &f, (failed_at){0, 1}, NULL, where, sizeof where);
    is_str(where, " in the statement at line 5, column 3", "place: without a position, the failed statement");
    ok(context, "place: and PostgreSQL's context follows the message");
    describe_place(NULL, &f, (failed_at){0, NO_STATEMENT}, NULL, where, sizeof where);
    is_str(where, "", "place: nothing when the statement is unknown (at COMMIT)");
}
#define STATEMENTS_CHECKS (4 + 1 + 2 + 5 + 3)

/* Whether previous_version(set, version) is want. */
static bool previous_is(const keel_migration_set *set, int64_t version, int64_t want)
{
    const int64_t *p = previous_version(set, version);
    return p && *p == want;
}

static void test_repair(void)
{
    int64_t two = 2;
    char *how = repair_instructions(3, &two);
    is_str(how,
           "fix the database by hand, then either record migration 3 as applied with: UPDATE schema_migrations SET "
           "dirty = false; or go back to the last good version, so that 3 runs again, with: UPDATE "
           "schema_migrations SET version = 2, dirty = false;",
           "repair: with a version before it, go back to that version");
    free(how);
    how = repair_instructions(1, NULL);
    like(how, "so that 1 runs again, with: DELETE FROM schema_migrations;",
         "repair: with none before it, empty schema_migrations");
    free(how);
    how = repair_instructions(INT64_MAX, &two);
    like(how, "record migration 9223372036854775807 as applied", "repair: the largest version fits the message");
    free(how);

    static const char *const names[] = {"1_a.up.sql", "2_b.up.sql", "2_b.down.sql", "5.up.sql", NULL};
    char *dir = make_folder(names);
    keel_migration_set *set = NULL;
    keel_error *err = keel_migrations_load(dir, &set);
    if (err || !set) {
        ok(0, "repair: load the set: %s", err ? err->message : "no set");
        keel_error_free(err);
        remove_folder(dir);
        return;
    }
    ok(previous_version(set, 1) == NULL && previous_is(set, 2, 1) && previous_is(set, 5, 2) &&
           previous_is(set, 4, 2) && previous_is(set, 100, 5),
       "repair: the version before another is the one just below it in the folder");
    ok(find_version(set, 2) == 1 && find_version(set, 5) == 2 && find_version(set, 3) == -1,
       "down: find_version finds a migration's index, -1 when absent");

    err = dirty_error(set, 5);
    like(err ? err->message : NULL,
         "database is dirty at migration version 5 (a migration that ran outside a transaction failed part-way, "
         "or another tool left it so): fix the database by hand",
         "dirty: the message says what happened");
    like(err ? err->message : NULL, "UPDATE schema_migrations SET version = 2, dirty = false;",
         "dirty: and how to go back to the version before it");
    ok(err && err->code == KEEL_FAILED_PRECONDITION, "dirty: failed_precondition");
    keel_error_free(err);

    err = missing_down_error(set, &set->items[2]);
    char *want = keel__format("cannot revert migration 5: %s/5.down.sql does not exist", dir);
    is_str(err ? err->message : NULL, want, "down: a missing down file is named (5.up.sql -> 5.down.sql)");
    free(want);
    keel_error_free(err);
    err = missing_down_error(set, &set->items[0]);
    want = keel__format("cannot revert migration 1: %s/1_a.down.sql does not exist", dir);
    is_str(err ? err->message : NULL, want, "down: 1_a.up.sql's down file is 1_a.down.sql");
    free(want);
    keel_error_free(err);

    /* keel_migrate_up and _down check their arguments before any query. */
    int n = 99;
    err = keel_migrate_up(NULL, set, &n);
    ok(err && err->code == KEEL_INVALID_ARGUMENT && n == 0 &&
           strcmp(err->message, "migrations: no connection or no migration set") == 0,
       "up: no connection is invalid_argument, nothing applied");
    keel_error_free(err);
    n = 99;
    err = keel_migrate_down(NULL, set, -1, &n);
    ok(err && err->code == KEEL_INVALID_ARGUMENT && n == 0 &&
           strcmp(err->message, "migrations: cannot revert -1 steps") == 0,
       "down: a negative step count is refused first");
    keel_error_free(err);
    /* A connection that never opened: a socket folder that does not exist. */
    PGconn *bad = PQconnectdb("host=/nonexistent-keel-unit-test port=1 connect_timeout=1");
    n = 99;
    err = keel_migrate_up(bad, set, &n);
    ok(err && err->code == KEEL_UNAVAILABLE && n == 0 &&
           strcmp(err->message, "migrations: the database connection is not open") == 0,
       "up: a closed connection is unavailable");
    keel_error_free(err);
    err = keel_migrate_down(bad, NULL, 1, &n);
    like(err ? err->message : NULL, "no connection or no migration set", "down: no set is refused");
    keel_error_free(err);
    PQfinish(bad);

    keel_migrations_free(set);
    remove_folder(dir);
}
#define REPAIR_CHECKS 14

int main(void)
{
    plan(PARSE_NAME_CHECKS + CONSIDER_NAME_CHECKS + LOAD_GOOD_CHECKS + LOAD_REFUSED_CHECKS +
         HIDDEN_AND_FOLDERS_CHECKS + MARKER_CHECKS + READ_FILE_CHECKS + SPLIT_CHECKS + LOCATE_CHECKS +
         STATEMENTS_CHECKS + REPAIR_CHECKS);
    test_parse_name();
    test_consider_name();
    test_load_good();
    test_load_refused();
    test_hidden_and_folders();
    test_marker();
    test_read_file();
    test_split();
    test_locate();
    test_statements();
    test_repair();
    return tap_done();
}

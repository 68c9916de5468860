/* migrate.c - schema migrations: a folder of numbered SQL files applied in
 * order and tracked in schema_migrations, the way golang-migrate and Encore
 * do it, so that a database migrated by either is picked up where it stands.
 *
 * Loading checks every name in the folder against
 *     ^([0-9]+)(_[^.]+)?\.(up|down)\.sql$
 * (a hand-written matcher) and refuses anything doubtful before touching the
 * database: a .sql name that does not fit, or a folder named like a
 * migration.  Hidden names (starting with '.': editors' lock files such as
 * .#1_x.up.sql, macOS's ._1_x.up.sql) are skipped, as golang-migrate skips
 * every name its pattern does not match.  Applying runs under a
 * session-level PostgreSQL advisory lock keyed on the database name, so
 * several instances starting at once apply each migration exactly once; the
 * state is read only after the lock is held.
 *
 * Each file runs in an explicit transaction together with its version update,
 * so a failure rolls back completely and schema_migrations never says dirty
 * because of Keel.  A file whose first line is "-- keel:no-transaction" runs
 * outside a transaction, statement by statement (PostgreSQL would otherwise
 * wrap a multi-statement query in an implicit transaction); it is marked
 * dirty while it runs, so a failure part-way blocks the next start with
 * instructions for repairing by hand.  A failure names the file, line and
 * column: PostgreSQL's position, else the statement that failed (counted
 * from the results of the statements before it).
 *
 * Every value sent to PostgreSQL (versions, flags) is a bound parameter; the
 * only SQL text Keel does not write itself is the migration files' own. */
#include "keel/migrate.h"
#ifndef KEEL_MIGRATE_STANDALONE
#include "observe/trace.h"
#endif
#include "format.h"
#include "sql/migrate_lock.h"
#include "sql/pg_error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define NO_TRANSACTION_MARKER "-- keel:no-transaction"
#define NO_TRANSACTION_HINT \
    "(put \"" NO_TRANSACTION_MARKER "\" on the file's first line to run it outside a transaction)"

/* One advisory lock per database, the same in every Keel process. */
#define LOCK_KEY KEEL_MIGRATE_LOCK_KEY

/* ------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------ */

static keel_error *out_of_memory(void)
{
    return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* dir + "/" + name as a new string (no doubled slash); NULL when out of memory. */
static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    bool slash = n > 0 && dir[n - 1] == '/';
    return keel__format("%s%s%s", dir, slash ? "" : "/", name);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool ends_with_nocase(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* ------------------------------------------------------------------------
 * Loading a folder
 * ------------------------------------------------------------------------ */

typedef enum direction { DIRECTION_UP, DIRECTION_DOWN } direction;

/* One .sql file found in the folder. */
typedef struct entry {
    int64_t version;
    direction dir;
    char *name; /* owned */
} entry;

typedef struct entry_list {
    entry *items;
    size_t count, cap;
} entry_list;

typedef enum name_fit { NAME_FITS, NAME_DOES_NOT_FIT, NAME_TOO_LARGE } name_fit;

/* Matches name against ^([0-9]+)(_[^.]+)?\.(up|down)\.sql$ and parses the
 * number (leading zeros allowed) into *version, which must fit int64. */
static name_fit parse_name(const char *name, int64_t *version, direction *dir)
{
    const char *p = name;
    int64_t v = 0;
    bool too_large = false;
    if (!isdigit((unsigned char)*p))
        return NAME_DOES_NOT_FIT;
    for (; isdigit((unsigned char)*p); p++) {
        int digit = *p - '0';
        if (v > (INT64_MAX - digit) / 10)
            too_large = true;
        else
            v = v * 10 + digit;
    }
    if (*p == '_') {
        const char *start = ++p;
        while (*p && *p != '.')
            p++;
        if (p == start)
            return NAME_DOES_NOT_FIT;
    }
    if (strcmp(p, ".up.sql") == 0)
        *dir = DIRECTION_UP;
    else if (strcmp(p, ".down.sql") == 0)
        *dir = DIRECTION_DOWN;
    else
        return NAME_DOES_NOT_FIT;
    if (too_large)
        return NAME_TOO_LARGE;
    *version = v;
    return NAME_FITS;
}

static void entries_free(entry_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i].name);
    free(list->items);
    list->items = NULL;
    list->count = list->cap = 0;
}

/* Appends a copy of name; false when out of memory. */
static bool entries_add(entry_list *list, int64_t version, direction dir, const char *name)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        entry *grown = realloc(list->items, cap * sizeof *grown);
        if (!grown)
            return false;
        list->items = grown;
        list->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return false;
    list->items[list->count++] = (entry){version, dir, copy};
    return true;
}

/* Orders by version, up before down, then by name (so that messages about
 * duplicates do not depend on the order readdir happens to return). */
static int compare_entries(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->version != y->version)
        return x->version < y->version ? -1 : 1;
    if (x->dir != y->dir)
        return x->dir == DIRECTION_UP ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether dir/name is a folder (a symbolic link to one counts); false when
 * it cannot be looked at, so that a file that vanished fails when read. */
static bool is_folder(const char *dir, const char *name)
{
    char *path = join_path(dir, name);
    struct stat st;
    bool folder = path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    free(path);
    return folder;
}

/* Checks one file name and, when it is a migration, adds it to list.  Names
 * not ending in .sql are ignored, and so are hidden ones: an editor's lock or
 * backup file (.#1_x.up.sql) must not stop the app.  Returns an error naming
 * the file. */
static keel_error *consider_name(const char *dir, const char *name, entry_list *list)
{
    if (name[0] == '.' || !ends_with_nocase(name, ".sql"))
        return NULL;
    int64_t version = 0;
    direction d = DIRECTION_UP;
    switch (parse_name(name, &version, &d)) {
    case NAME_DOES_NOT_FIT:
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: \"%s\" does not fit <number>_<name>.up.sql", dir,
                              name);
    case NAME_TOO_LARGE:
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "%s: \"%s\" has a number too large (at most %" PRId64 ")", dir, name,
                              INT64_MAX);
    case NAME_FITS:
        break;
    }
    if (version == 0)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: \"%s\" has number 0; migrations are numbered from 1",
                              dir, name);
    /* Refused here, not when it would be applied: by then the migrations
     * before it have run and the app is half-way. */
    if (is_folder(dir, name))
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "%s: \"%s\" is a folder, but a migration must be a file: rename or move the folder",
                              dir, name);
    return entries_add(list, version, d, name) ? NULL : out_of_memory();
}

/* Reads the names in dir, sorted; the caller frees each name and the array.
 * Errors: the folder is missing or unreadable. */
static keel_error *read_names(const char *dir, char ***out, size_t *count)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "migration folder \"%s\" does not exist", dir);
        if (errno == ENOTDIR)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "migration folder \"%s\" is not a folder", dir);
        return keel_error_new(KEEL_INVALID_ARGUMENT, "cannot read migration folder \"%s\": %s", dir,
                              strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    keel_error *err = NULL;
    struct dirent *de;
    while (!err && (de = readdir(d)) != NULL) {
        if (n == cap) {
            size_t grown_cap = cap ? cap * 2 : 32;
            char **grown = realloc(names, grown_cap * sizeof *grown);
            if (!grown) {
                err = out_of_memory();
                break;
            }
            names = grown;
            cap = grown_cap;
        }
        if (!(names[n] = strdup(de->d_name)))
            err = out_of_memory();
        else
            n++;
    }
    closedir(d);
    if (err) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return err;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, compare_names);
    *out = names;
    *count = n;
    return NULL;
}

/* Fills list with the folder's migration files, sorted (compare_entries). */
static keel_error *scan_folder(const char *dir, entry_list *list)
{
    char **names;
    size_t n;
    keel_error *err = read_names(dir, &names, &n);
    if (err)
        return err;
    for (size_t i = 0; i < n; i++) {
        if (!err)
            err = consider_name(dir, names[i], list);
        free(names[i]);
    }
    free(names);
    if (!err && list->count > 1)
        qsort(list->items, list->count, sizeof *list->items, compare_entries);
    return err;
}

/* Checks the sorted entries: no number twice in one direction, no down file
 * without its up file, at least one up file. */
static keel_error *check_entries(const char *dir, const entry_list *list)
{
    size_t ups = 0;
    for (size_t i = 0; i < list->count; i++) {
        const entry *e = &list->items[i];
        if (i > 0 && e[-1].version == e->version && e[-1].dir == e->dir)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: \"%s\" and \"%s\" both have number %" PRId64 " (%s)",
                                  dir, e[-1].name, e->name, e->version, e->dir == DIRECTION_UP ? "up" : "down");
        if (e->dir == DIRECTION_UP)
            ups++;
        else if (i == 0 || e[-1].version != e->version)
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "%s: \"%s\" has no up file (expected %" PRId64 "_<name>.up.sql)", dir, e->name,
                                  e->version);
    }
    if (ups == 0)
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "migration folder \"%s\" has no migrations (expected files like 1_init.up.sql)", dir);
    return NULL;
}

/* Builds the set from checked, sorted entries; the set owns what it holds. */
static keel_error *build_set(const char *dir, const entry_list *list, keel_migration_set *set)
{
    size_t ups = 0;
    for (size_t i = 0; i < list->count; i++)
        ups += list->items[i].dir == DIRECTION_UP;
    set->items = calloc(ups, sizeof *set->items);
    if (!set->items)
        return out_of_memory();
    for (size_t i = 0; i < list->count; i++) {
        const entry *e = &list->items[i];
        if (e->dir == DIRECTION_UP) {
            keel_migration *m = &set->items[set->count++];
            m->version = e->version;
            m->name = strdup(e->name);
            m->up_path = join_path(dir, e->name);
            if (!m->name || !m->up_path)
                return out_of_memory();
        } else {
            keel_migration *m = &set->items[set->count - 1]; /* its up file sorts just before */
            if (!(m->down_path = join_path(dir, e->name)))
                return out_of_memory();
        }
    }
    return NULL;
}

keel_error *keel_migrations_load(const char *dir, keel_migration_set **out)
{
    *out = NULL;
    if (!dir || !*dir)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "no migration folder given");
    keel_migration_set *set = calloc(1, sizeof *set);
    if (!set || !(set->dir = strdup(dir))) {
        free(set);
        return out_of_memory();
    }
    entry_list list = {0};
    keel_error *err = scan_folder(dir, &list);
    if (!err)
        err = check_entries(dir, &list);
    if (!err)
        err = build_set(dir, &list, set);
    entries_free(&list);
    if (err) {
        keel_migrations_free(set);
        return err;
    }
    *out = set;
    return NULL;
}

void keel_migrations_free(keel_migration_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->count; i++) {
        free(set->items[i].name);
        free(set->items[i].up_path);
        free(set->items[i].down_path);
    }
    free(set->items);
    free(set->dir);
    free(set);
}

/* ------------------------------------------------------------------------
 * Talking to PostgreSQL
 * ------------------------------------------------------------------------ */

static bool result_ok(const PGresult *r)
{
    ExecStatusType s = PQresultStatus(r);
    return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY;
}

/* An error for a failed bookkeeping query (not a migration file's): what we
 * were doing and PostgreSQL's message.  Does not take r. */
static keel_error *query_error(PGconn *conn, const PGresult *r, const char *what)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char *msg = keel__pg_clean_message(r && PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                           ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                                           : PQerrorMessage(conn));
    keel_error *err = keel_error_new(keel__pg_code(st, PQstatus(conn) != CONNECTION_OK), "migrations: %s: %s", what,
                                     msg ? msg : "out of memory");
    free(msg);
    return keel__pg_cause(err, conn, r);
}

/* Runs a statement with no parameters and discards its result. */
static keel_error *exec_simple(PGconn *conn, const char *sql, const char *what)
{
    PGresult *r = PQexec(conn, sql);
    keel_error *err = result_ok(r) ? NULL : query_error(conn, r, what);
    PQclear(r);
    return err;
}

/* Sets the one row of schema_migrations, in the caller's transaction: the
 * table is emptied, then (version, dirty) is inserted unless version is NULL
 * (no migration applied).  Both values are bound. */
static keel_error *write_version(PGconn *conn, const int64_t *version, bool dirty)
{
    keel_error *err = exec_simple(conn, "DELETE FROM schema_migrations", "clearing schema_migrations");
    if (err || !version)
        return err;
    char text[32];
    snprintf(text, sizeof text, "%" PRId64, *version);
    const char *params[2] = {text, dirty ? "true" : "false"};
    PGresult *r = PQexecParams(conn, "INSERT INTO schema_migrations (version, dirty) VALUES ($1::bigint, $2::boolean)",
                               2, NULL, params, NULL, NULL, 0);
    if (!result_ok(r))
        err = query_error(conn, r, "recording the version in schema_migrations");
    PQclear(r);
    return err;
}

/* write_version in a transaction of its own. */
static keel_error *write_version_now(PGconn *conn, const int64_t *version, bool dirty)
{
    keel_error *err = exec_simple(conn, "BEGIN", "starting a transaction");
    if (!err)
        err = write_version(conn, version, dirty);
    if (!err)
        return exec_simple(conn, "COMMIT", "committing the version");
    PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}

/* Waits for the database's migration lock (a session-level advisory lock). */
static keel_error *lock_acquire(PGconn *conn)
{
    return exec_simple(conn, "SELECT pg_advisory_lock(" LOCK_KEY ")", "taking the migration lock");
}

/* Leaves any transaction still open and releases the lock.  Errors are
 * ignored: a session lock also goes away when the connection closes. */
static void lock_release(PGconn *conn)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    PQclear(PQexec(conn, "SELECT pg_advisory_unlock(" LOCK_KEY ")"));
}

/* Whether schema_migrations is visible on the search path. */
static keel_error *table_exists(PGconn *conn, bool *exists)
{
    PGresult *r = PQexec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    keel_error *err = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        err = query_error(conn, r, "looking for schema_migrations");
    else
        *exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return err;
}

/* Creates schema_migrations as golang-migrate does, unless it exists (one
 * made by golang-migrate or Encore is used as it is).  Checking first keeps
 * CREATE TABLE IF NOT EXISTS from printing a notice on every start. */
static keel_error *ensure_table(PGconn *conn)
{
    bool exists = false;
    keel_error *err = table_exists(conn, &exists);
    if (err || exists)
        return err;
    return exec_simple(conn,
                       "CREATE TABLE IF NOT EXISTS schema_migrations "
                       "(version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)",
                       "creating schema_migrations");
}

keel_error *keel_migrate_state(PGconn *conn, keel_migration_state *out)
{
    *out = (keel_migration_state){false, 0, false};
    bool exists = false;
    keel_error *err = table_exists(conn, &exists);
    if (err || !exists)
        return err;
    /* golang-migrate keeps one row; should there be several, the newest counts. */
    PGresult *r = PQexec(conn, "SELECT version, dirty FROM schema_migrations ORDER BY version DESC LIMIT 1");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || (PQntuples(r) == 1 && PQnfields(r) != 2))
        err = query_error(conn, r, "reading schema_migrations");
    else if (PQntuples(r) == 1) {
        out->tracked = true;
        out->version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        out->dirty = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    }
    PQclear(r);
    return err;
}

/* ------------------------------------------------------------------------
 * Migration files
 * ------------------------------------------------------------------------ */

/* A migration file read into memory. */
typedef struct sql_file {
    const char *path; /* borrowed from the set */
    char *text;       /* owned, NUL-terminated, without a UTF-8 byte order mark */
    size_t len;
    bool no_transaction;
} sql_file;

/* Whether the first line, trimmed, is the no-transaction marker. */
static bool has_no_transaction_marker(const char *text, size_t len)
{
    const char *end = memchr(text, '\n', len);
    size_t n = end ? (size_t)(end - text) : len;
    while (n > 0 && isspace((unsigned char)*text)) {
        text++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    return n == strlen(NO_TRANSACTION_MARKER) && memcmp(text, NO_TRANSACTION_MARKER, n) == 0;
}

static bool is_blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)text[i]))
            return false;
    return true;
}

/* Reads path into f.  Errors (failed_precondition, naming the file): it cannot
 * be read, is empty, or holds a NUL byte.  The caller frees f->text. */
static keel_error *read_sql_file(const char *path, sql_file *f)
{
    *f = (sql_file){path, NULL, 0, false};
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot read migration %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = grown;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, fp);
        len += got;
        if (got == 0)
            break;
    }
    bool failed = ferror(fp);
    fclose(fp);
    if (!buf)
        return out_of_memory();
    if (failed) {
        free(buf);
        return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot read migration %s", path);
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        free(buf);
        return keel_error_new(KEEL_FAILED_PRECONDITION, "migration %s contains a NUL byte; is it really SQL text?",
                              path);
    }
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) { /* PostgreSQL would choke on a BOM */
        memmove(buf, buf + 3, len - 2);
        len -= 3;
    }
    if (is_blank(buf, len)) {
        free(buf);
        return keel_error_new(KEEL_FAILED_PRECONDITION, "migration %s is empty", path);
    }
    f->text = buf;
    f->len = len;
    f->no_transaction = has_no_transaction_marker(buf, len);
    return NULL;
}

/* ------------------------------------------------------------------------
 * Splitting a file into statements (for no-transaction files only)
 * ------------------------------------------------------------------------ */

static bool is_ident_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '$' || c >= 0x80;
}

/* The index just past the quoted text that starts with the quote s[i]; a
 * doubled quote stands for itself, and a backslash escapes when backslashes
 * is set (E'...' strings). */
static size_t skip_quoted(const char *s, size_t len, size_t i, char quote, bool backslashes)
{
    for (i++; i < len; i++) {
        if (backslashes && s[i] == '\\')
            i++;
        else if (s[i] == quote) {
            if (i + 1 < len && s[i + 1] == quote)
                i++;
            else
                return i + 1;
        }
    }
    return len;
}

/* When s[i] opens a dollar quote ($$ or $tag$), the index just past its
 * closing tag; else 0. */
static size_t skip_dollar_quoted(const char *s, size_t len, size_t i)
{
    if (i > 0 && is_ident_char((unsigned char)s[i - 1]))
        return 0; /* part of an identifier like a$b */
    size_t j = i + 1;
    if (j < len && (isalpha((unsigned char)s[j]) || s[j] == '_' || (unsigned char)s[j] >= 0x80))
        while (j < len && s[j] != '$' && is_ident_char((unsigned char)s[j]))
            j++;
    if (j >= len || s[j] != '$')
        return 0; /* $1 and the like */
    size_t tag_len = j + 1 - i;
    for (size_t k = j + 1; k + tag_len <= len; k++)
        if (s[k] == '$' && memcmp(s + k, s + i, tag_len) == 0)
            return k + tag_len;
    return len;
}

/* The index just past the comment starting at s[i] ("--" or a nested
 * slash-star comment). */
static size_t skip_comment(const char *s, size_t len, size_t i)
{
    if (s[i] == '-') {
        const char *nl = memchr(s + i, '\n', len - i);
        return nl ? (size_t)(nl - s) + 1 : len;
    }
    int depth = 0;
    while (i < len) {
        if (i + 1 < len && s[i] == '/' && s[i + 1] == '*') {
            depth++;
            i += 2;
        } else if (i + 1 < len && s[i] == '*' && s[i + 1] == '/') {
            i += 2;
            if (--depth == 0)
                return i;
        } else
            i++;
    }
    return len;
}

/* The index just past the statement starting at s[i] (its ';' included, or
 * the end of the text).  *has_sql says whether it holds more than blanks and
 * comments.  Understands quotes, dollar quotes and comments; not
 * CREATE FUNCTION ... BEGIN ATOMIC bodies (use a $$ body in such files). */
static size_t statement_end(const char *s, size_t len, size_t i, bool *has_sql)
{
    *has_sql = false;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if ((c == '-' && i + 1 < len && s[i + 1] == '-') || (c == '/' && i + 1 < len && s[i + 1] == '*')) {
            i = skip_comment(s, len, i);
            continue;
        }
        if (c == ';')
            return i + 1;
        if (!isspace(c))
            *has_sql = true;
        if (c == '\'') {
            bool e = i > 0 && (s[i - 1] == 'E' || s[i - 1] == 'e') &&
                     !(i > 1 && is_ident_char((unsigned char)s[i - 2]));
            i = skip_quoted(s, len, i, '\'', e);
        } else if (c == '"') {
            i = skip_quoted(s, len, i, '"', false);
        } else if (c == '$') {
            size_t end = skip_dollar_quoted(s, len, i);
            i = end ? end : i + 1;
        } else
            i++;
    }
    return len;
}

/* ------------------------------------------------------------------------
 * Error reports for migration files
 * ------------------------------------------------------------------------ */

/* Whether PostgreSQL counts error positions in UTF-8 characters (rather than
 * bytes) for text sent on conn. */
static bool positions_in_utf8(PGconn *conn)
{
    const char *server = PQparameterStatus(conn, "server_encoding");
    const char *client = PQparameterStatus(conn, "client_encoding");
    return !(server && strcmp(server, "SQL_ASCII") == 0) && client && strcmp(client, "UTF8") == 0;
}

/* Turns pos, PostgreSQL's 1-based character offset into the statement that
 * starts at byte start of text, into a 1-based line and column of text. */
static void locate(const char *text, size_t len, size_t start, unsigned long pos, bool utf8, unsigned long *line,
                   unsigned long *column)
{
    unsigned long l = 1, c = 1, left = pos > 0 ? pos - 1 : 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)text[i];
        if (utf8 && (b & 0xC0) == 0x80)
            continue; /* inside a character */
        if (i >= start) {
            if (left == 0)
                break;
            left--;
        }
        if (b == '\n') {
            l++;
            c = 1;
        } else
            c++;
    }
    *line = l;
    *column = c;
}

/* The index just past the blanks and comments starting at text[i] (at most
 * end): where the SQL of a statement piece begins. */
static size_t skip_blanks(const char *text, size_t end, size_t i)
{
    while (i < end) {
        unsigned char c = (unsigned char)text[i];
        if (isspace(c))
            i++;
        else if (i + 1 < end && ((c == '-' && text[i + 1] == '-') || (c == '/' && text[i + 1] == '*')))
            i = skip_comment(text, end, i);
        else
            break;
    }
    return i;
}

/* Finds the statement that failed: the index-th (from 0) piece holding SQL
 * from byte from of f.  Sets *at to where its SQL begins and *end just past
 * it.  False when there are fewer pieces, or when counting past the first
 * could go wrong: in a CREATE FUNCTION ... BEGIN ATOMIC body the splitter
 * sees ';' that PostgreSQL does not, and a wrong line is worse than none. */
static bool find_statement(const sql_file *f, size_t from, size_t index, size_t *at, size_t *end)
{
    if (index > 0 && strcasestr(f->text, "atomic"))
        return false;
    for (size_t i = from; i < f->len;) {
        bool has_sql;
        size_t next = statement_end(f->text, f->len, i, &has_sql);
        if (has_sql && index-- == 0) {
            *at = skip_blanks(f->text, next, i);
            *end = next;
            return true;
        }
        i = next;
    }
    return false;
}

/* Where query, PostgreSQL's internal query (a statement of a function or DO
 * body, which its INTERNAL_POSITION counts in), is in f's text between from
 * and to; false unless it is there exactly once (PL/pgSQL reports the
 * statement as written in the body, so a body in $$ quotes is found). */
static bool find_internal_query(const sql_file *f, size_t from, size_t to, const char *query, size_t *at)
{
    size_t n = strlen(query);
    if (n == 0 || to > f->len || from >= to)
        return false;
    const char *hit = memmem(f->text + from, to - from, query, n);
    if (!hit)
        return false;
    size_t first = (size_t)(hit - f->text);
    if (memmem(hit + 1, to - first - 1, query, n))
        return false; /* twice: which one failed is a guess */
    *at = first;
    return true;
}

/* What a failed run knows about where: PostgreSQL's positions count from
 * byte offset of the file (the text sent began there), and statement is the
 * index, among the pieces from there holding SQL, of the one that failed
 * (NO_STATEMENT: unknown, as at COMMIT). */
typedef struct failed_at {
    size_t offset;
    size_t statement;
} failed_at;

#define NO_STATEMENT SIZE_MAX

/* Formats into where (len bytes) the place of the error in f, and says
 * whether PostgreSQL's context should follow the message.  In order: the
 * position PostgreSQL gives in the statement ("at line L, column C"); its
 * position inside a function or DO body, when that body's statement is
 * found in the file (the context says which function); else the start of
 * the statement that failed ("in the statement at line L, column C"), as
 * most DDL errors carry no position at all. */
static bool describe_place(PGconn *conn, const sql_file *f, failed_at fa, const PGresult *r, char *where,
                           size_t len)
{
    const char *position = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
    const char *internal_pos = r ? PQresultErrorField(r, PG_DIAG_INTERNAL_POSITION) : NULL;
    const char *internal_query = r ? PQresultErrorField(r, PG_DIAG_INTERNAL_QUERY) : NULL;
    bool utf8 = positions_in_utf8(conn);
    unsigned long line, column, pos = position ? strtoul(position, NULL, 10) : 0;
    where[0] = '\0';
    if (pos > 0) {
        locate(f->text, f->len, fa.offset, pos, utf8, &line, &column);
        snprintf(where, len, " at line %lu, column %lu", line, column);
        return false;
    }
    size_t at = 0, end = f->len, query_at;
    bool found = fa.statement != NO_STATEMENT && find_statement(f, fa.offset, fa.statement, &at, &end);
    pos = internal_pos ? strtoul(internal_pos, NULL, 10) : 0;
    if (pos > 0 && internal_query && find_internal_query(f, found ? at : 0, end, internal_query, &query_at)) {
        locate(f->text, f->len, query_at, pos, utf8, &line, &column);
        snprintf(where, len, " at line %lu, column %lu", line, column);
    } else if (found) {
        locate(f->text, f->len, at, 1, utf8, &line, &column);
        snprintf(where, len, " in the statement at line %lu, column %lu", line, column);
    }
    return true;
}

/* The message of a failed migration file: "migration PATH failed at line L,
 * column C: message" (see describe_place), with PostgreSQL's context when
 * there is no statement position and a hint for statements that cannot run
 * in a transaction.  note (may be NULL) is appended.  SQLSTATE, detail and
 * hint go to the cause, which start-up prints too.  r may be NULL. */
static keel_error *file_error(PGconn *conn, const sql_file *f, failed_at fa, const PGresult *r, const char *note)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *context = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
    const char *sqlstate = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *hint = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL;
    char *fallback = NULL;
    if (!primary) {
        const char *m = PQerrorMessage(conn);
        size_t n = strlen(m);
        while (n > 0 && isspace((unsigned char)m[n - 1]))
            n--;
        fallback = keel__format("%.*s", (int)n, n ? m : "the connection failed");
        primary = fallback ? fallback : "the connection failed";
    }
    char where[96];
    bool with_context = describe_place(conn, f, fa, r, where, sizeof where) && context;
    bool in_tx_block = sqlstate && strcmp(sqlstate, "25001") == 0 && !f->no_transaction;
    keel_error *err = keel_error_new(KEEL_FAILED_PRECONDITION, "migration %s failed%s: %s%s%s%s%s%s%s", f->path,
                                     where, primary, with_context ? " (" : "", with_context ? context : "",
                                     with_context ? ")" : "", in_tx_block ? " " NO_TRANSACTION_HINT : "",
                                     note ? "; " : "", note ? note : "");
    if (sqlstate)
        keel_error_cause(err, "SQLSTATE %s%s%s%s%s", sqlstate, detail ? "; detail: " : "", detail ? detail : "",
                         hint ? "; hint: " : "", hint ? hint : "");
    free(fallback);
    return err;
}

/* The SQL that repairs a database left dirty at version, given the version
 * before it (NULL: none).  Returns a new string, or NULL when out of memory. */
static char *repair_instructions(int64_t version, const int64_t *previous)
{
    char back[96];
    if (previous)
        snprintf(back, sizeof back, "UPDATE schema_migrations SET version = %" PRId64 ", dirty = false;", *previous);
    else
        snprintf(back, sizeof back, "DELETE FROM schema_migrations;");
    return keel__format("fix the database by hand, then either record migration %" PRId64
                         " as applied with: UPDATE schema_migrations SET dirty = false; "
                         "or go back to the last good version, so that %" PRId64 " runs again, with: %s",
                         version, version, back);
}

/* The version of the migration in set just below version, if any. */
static const int64_t *previous_version(const keel_migration_set *set, int64_t version)
{
    const int64_t *prev = NULL;
    for (size_t i = 0; i < set->count && set->items[i].version < version; i++)
        prev = &set->items[i].version;
    return prev;
}

static keel_error *dirty_error(const keel_migration_set *set, int64_t version)
{
    char *how = repair_instructions(version, previous_version(set, version));
    keel_error *err = keel_error_new(KEEL_FAILED_PRECONDITION,
                                     "database is dirty at migration version %" PRId64
                                     " (a migration that ran outside a transaction failed part-way, or another "
                                     "tool left it so): %s",
                                     version, how ? how : "repair it by hand");
    free(how);
    return err;
}

/* ------------------------------------------------------------------------
 * Running a file
 * ------------------------------------------------------------------------ */

/* Ends a COPY that a migration file started, so that the connection can be
 * used again, and discards the remaining results. */
static void abandon_copy(PGconn *conn, ExecStatusType status)
{
    if (status == PGRES_COPY_IN)
        PQputCopyEnd(conn, "migrations cannot use COPY FROM STDIN");
    else if (status == PGRES_COPY_OUT) {
        char *buf;
        while (PQgetCopyData(conn, &buf, 0) > 0)
            PQfreemem(buf);
    }
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL)
        PQclear(r);
}

/* Sends sql as one simple query (several statements allowed) and reads
 * every result.  True on success; else *failed is the failed result for the
 * caller to report and PQclear (NULL when out of memory), and *copy is set
 * when the failure is a COPY to or from the client.  *done counts the
 * statements that completed first (PQexec would keep only the last result):
 * it says which statement failed when PostgreSQL gives no position. */
static bool run_sql(PGconn *conn, const char *sql, bool *copy, size_t *done, PGresult **failed)
{
    *copy = false;
    *done = 0;
    *failed = NULL;
    if (!PQsendQuery(conn, sql)) {
        *failed = PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR); /* holds the connection's message */
        return false;
    }
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
            abandon_copy(conn, s); /* reads the remaining results too */
            PQclear(*failed);
            *failed = r;
            *copy = true;
            return false;
        }
        if (!*failed && result_ok(r)) {
            (*done)++;
            PQclear(r);
        } else if (!*failed) {
            *failed = r;
        } else {
            PQclear(r); /* only the first failure counts */
        }
    }
    return *failed == NULL;
}

/* The error for a failed run_sql; consumes r. */
static keel_error *sql_failure(PGconn *conn, const sql_file *f, failed_at fa, PGresult *r, bool copy,
                               const char *note)
{
    keel_error *err;
    if (copy) {
        char where[96];
        describe_place(conn, f, fa, NULL, where, sizeof where);
        err = keel_error_new(KEEL_FAILED_PRECONDITION,
                             "migration %s failed%s: COPY to or from the client is not possible in a migration%s%s",
                             f->path, where, note ? "; " : "", note ? note : "");
    } else
        err = file_error(conn, f, fa, r, note);
    PQclear(r);
    return err;
}

/* What a run leaves in schema_migrations: the migration's version, the
 * version without it (NULL: none), and the one to record on success. */
typedef struct versions {
    int64_t version;
    const int64_t *below;
    const int64_t *target;
} versions;

/* Marks the database dirty at v->version after a failure that may have left
 * part of a file applied, and returns the note for the error message (a new
 * string; NULL when out of memory). */
static char *mark_dirty(PGconn *conn, const versions *v, const char *why)
{
    keel_error *mark = write_version_now(conn, &v->version, true);
    char *note;
    if (mark)
        note = keel__format("%s, and marking the database dirty failed (%s): check it by hand", why,
                             mark->message);
    else {
        char *how = repair_instructions(v->version, v->below);
        note = keel__format("%s, so the database is marked dirty at version %" PRId64 ": %s", why, v->version,
                             how ? how : "repair it by hand");
        free(how);
    }
    keel_error_free(mark);
    return note;
}

/* Runs f and then moves schema_migrations to v->target in one transaction.
 * On failure everything is rolled back and the error names the file, line
 * and column.  Should the file end Keel's transaction itself (a COMMIT in a
 * file written for golang-migrate), the version is recorded in a transaction
 * of its own; should the file then fail, part of it may be committed, so the
 * database is marked dirty. */
static keel_error *run_in_transaction(PGconn *conn, const sql_file *f, const versions *v)
{
    keel_error *err = exec_simple(conn, "BEGIN", "starting a transaction");
    if (err)
        return err;
    bool copy;
    size_t done;
    PGresult *r;
    bool failed = !run_sql(conn, f->text, &copy, &done, &r);
    failed_at fa = {0, done};
    PGTransactionStatusType tx = PQtransactionStatus(conn);
    if (failed && tx == PQTRANS_IDLE && PQstatus(conn) == CONNECTION_OK) {
        char *note = mark_dirty(conn, v, "the file ended Keel's transaction itself, so part of it may be committed");
        err = sql_failure(conn, f, fa, r, copy, note);
        free(note);
        return err;
    }
    if (failed) {
        err = sql_failure(conn, f, fa, r, copy, NULL);
        PQclear(PQexec(conn, "ROLLBACK"));
        return err;
    }
    if (tx == PQTRANS_IDLE) /* the file committed on its own */
        return write_version_now(conn, v->target, false);
    err = write_version(conn, v->target, false);
    if (err) {
        PQclear(PQexec(conn, "ROLLBACK"));
        return err;
    }
    r = PQexec(conn, "COMMIT");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) /* a deferred constraint, say */
        return sql_failure(conn, f, (failed_at){0, NO_STATEMENT}, r, false, "at COMMIT");
    PQclear(r);
    return NULL;
}

/* Runs f outside a transaction, statement by statement, with the database
 * marked dirty at v->version meanwhile; then moves it to v->target.  A
 * failure leaves it dirty and says how to repair it. */
static keel_error *run_without_transaction(PGconn *conn, const sql_file *f, const versions *v)
{
    keel_error *err = write_version_now(conn, &v->version, true);
    for (size_t start = 0; !err && start < f->len;) {
        bool has_sql;
        size_t end = statement_end(f->text, f->len, start, &has_sql);
        if (has_sql) {
            char *stmt = keel__format("%.*s", (int)(end - start), f->text + start);
            if (!stmt)
                return out_of_memory();
            bool copy;
            size_t done;
            PGresult *r;
            bool failed = !run_sql(conn, stmt, &copy, &done, &r);
            free(stmt);
            if (failed) {
                char *how = repair_instructions(v->version, v->below);
                char *note = keel__format("it ran outside a transaction, so the database is marked dirty at "
                                           "version %" PRId64 ": %s",
                                           v->version, how ? how : "repair it by hand");
                err = sql_failure(conn, f, (failed_at){start, 0}, r, copy, note);
                free(how);
                free(note);
                return err;
            }
        }
        start = end;
    }
    return err ? err : write_version_now(conn, v->target, false);
}

/* Reads the file at path and runs it (see versions). */
static keel_error *run_file(PGconn *conn, const char *path, const versions *v)
{
    sql_file f;
    keel_error *err = read_sql_file(path, &f);
    if (err)
        return err;
    if (f.no_transaction)
        err = run_without_transaction(conn, &f, v);
    else
        err = run_in_transaction(conn, &f, v);
    free(f.text);
    return err;
}

/* ------------------------------------------------------------------------
 * Up and down
 * ------------------------------------------------------------------------ */

/* Checks that conn and set can be used; conn must not be inside a transaction
 * (the lock and the files' transactions are Keel's own). */
static keel_error *check_ready(PGconn *conn, const keel_migration_set *set)
{
    if (!conn || !set)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "migrations: no connection or no migration set");
    if (PQstatus(conn) != CONNECTION_OK)
        return keel_error_new(KEEL_UNAVAILABLE, "migrations: the database connection is not open");
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "migrations: the connection is inside a transaction");
    return NULL;
}

/* Under the lock: makes sure schema_migrations exists, reads it and refuses
 * a dirty database. */
static keel_error *prepare(PGconn *conn, const keel_migration_set *set, keel_migration_state *state)
{
    keel_error *err = ensure_table(conn);
    if (!err)
        err = keel_migrate_state(conn, state);
    if (!err && state->dirty)
        err = dirty_error(set, state->version);
    return err;
}

/* A span per file applied, in the trace of the start-up's migration (the
 * detached request databases.c makes current).  The unit test and the
 * fuzzer compile this file alone, without the tracing code. */
#ifdef KEEL_MIGRATE_STANDALONE
typedef void keel_span;
#define migration_span_start(m) ((void)(m), (keel_span *)NULL)
#define migration_span_end(span, err) ((void)(span), (void)(err))
#else
static keel_span *migration_span_start(const keel_migration *m)
{
    keel_span *span = keel__span_start(keel__trace_current_req(), "migration", KEEL_SPAN_INTERNAL);
    keel__span_attr_str(span, "keel.migration.file", m->name);
    keel__span_attr_int(span, "keel.migration.version", m->version);
    return span;
}

static void migration_span_end(keel_span *span, const keel_error *err)
{
    keel__span_end(keel__trace_current_req(), span, err);
}
#endif

keel_error *keel_migrate_up(PGconn *conn, const keel_migration_set *set, int *applied)
{
    int count = 0;
    if (applied)
        *applied = 0;
    keel_error *err = check_ready(conn, set);
    if (err)
        return err;
    if ((err = lock_acquire(conn)))
        return err;
    keel_migration_state state;
    err = prepare(conn, set, &state);
    const int64_t *below = state.tracked ? &state.version : NULL;
    /* Numbers at or below the current version are done, even one that never
     * ran (golang-migrate's rule): gaps are allowed, history is not rewritten. */
    for (size_t i = 0; !err && i < set->count; i++) {
        const keel_migration *m = &set->items[i];
        if (m->version <= state.version)
            continue;
        versions v = {m->version, below, &m->version};
        keel_span *span = migration_span_start(m);
        err = run_file(conn, m->up_path, &v);
        migration_span_end(span, err);
        if (!err) {
            count++;
            below = &m->version;
        }
    }
    lock_release(conn);
    if (applied)
        *applied = count;
    return err;
}

/* The index in set of the migration with version, or -1. */
static long find_version(const keel_migration_set *set, int64_t version)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].version == version)
            return (long)i;
    return -1;
}

/* The error for a migration without a down file, naming the file expected. */
static keel_error *missing_down_error(const keel_migration_set *set, const keel_migration *m)
{
    size_t stem = strlen(m->name) - (ends_with(m->name, ".up.sql") ? strlen(".up.sql") : 0);
    char *name = keel__format("%.*s.down.sql", (int)stem, m->name);
    char *path = name ? join_path(set->dir, name) : NULL;
    keel_error *err = keel_error_new(KEEL_FAILED_PRECONDITION,
                                     "cannot revert migration %" PRId64 ": %s does not exist", m->version,
                                     path ? path : m->name);
    free(name);
    free(path);
    return err;
}

keel_error *keel_migrate_down(PGconn *conn, const keel_migration_set *set, int steps, int *reverted)
{
    int count = 0;
    if (reverted)
        *reverted = 0;
    if (steps < 0)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "migrations: cannot revert %d steps", steps);
    keel_error *err = check_ready(conn, set);
    if (err)
        return err;
    if ((err = lock_acquire(conn)))
        return err;
    keel_migration_state state;
    err = prepare(conn, set, &state);
    long i = -1;
    if (!err && state.tracked && state.version > 0 && (i = find_version(set, state.version)) < 0)
        err = keel_error_new(KEEL_FAILED_PRECONDITION,
                             "database is at migration version %" PRId64 ", which is not in folder \"%s\"",
                             state.version, set->dir);
    for (; !err && i >= 0 && count < steps; i--) {
        const keel_migration *m = &set->items[i];
        if (!m->down_path) {
            err = missing_down_error(set, m);
            break;
        }
        const int64_t *below = i > 0 ? &set->items[i - 1].version : NULL;
        versions v = {m->version, below, below};
        err = run_file(conn, m->down_path, &v);
        if (!err)
            count++;
    }
    lock_release(conn);
    if (reverted)
        *reverted = count;
    return err;
}

/* keel/sqldb.h - managed PostgreSQL databases: declaration, queries, rows,
 * transactions.
 *
 *     static keel_sqldb todo_db = KEEL_SQLDB("todo", "migrations/todo");
 *
 *     keel_row *row;
 *     keel_error *err = keel_db_query_row(req, &todo_db, &row,
 *         "SELECT id, title, done FROM todo_item WHERE id = $1", KEEL_ARG_INT64(in->id));
 *     if (!err)
 *         err = keel_row_scan(row, "itb", &out->id, &out->title, &out->done);
 *
 * Parameters are always bound ($1..$n): there is no function that splices a
 * value into SQL text.  Statements are prepared once per connection and reused.
 * Every call takes the request it works for: connections, results and strings
 * are released when the request completes.  On an I/O thread a call waits
 * without blocking the thread (other requests run meanwhile); elsewhere
 * (KEEL_BLOCKING handlers, the CLI) it blocks. */
#ifndef KEEL_SQLDB_H
#define KEEL_SQLDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "error.h"
#include "http.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef struct keel_pool keel_pool;

typedef struct keel_sqldb {
    const char *name;        /* logical name: [a-z][a-z0-9_]* */
    const char *migrations;  /* folder relative to the app root; NULL for a
                                reference to a database declared elsewhere */
    struct keel_sqldb *resolved; /* set at start-up: the declaring database */
    keel_pool *pool;         /* set at start-up */
    struct keel_replica_set *replicas; /* set at start-up: the read replicas the
                                          infra config lists; NULL: none */
} keel_sqldb;

/* Declares a database owned by this service, with its migrations folder. */
#define KEEL_SQLDB(db_name, dir) \
    { .name = (db_name), .migrations = (dir), .resolved = NULL, .pool = NULL, .replicas = NULL }
/* Uses a database that another service declares (Encore's SQLDatabase.named).
 * An unknown name fails start-up with: sqldb: unknown database "NAME". */
#define KEEL_SQLDB_NAMED(db_name) \
    { .name = (db_name), .migrations = NULL, .resolved = NULL, .pool = NULL, .replicas = NULL }

/* ---- parameters --------------------------------------------------------- */

typedef enum {
    KEEL__ARG_NONE = 0,
    KEEL_ARG_T_NULL,
    KEEL_ARG_T_TEXT,
    KEEL_ARG_T_INT64,
    KEEL_ARG_T_DOUBLE,
    KEEL_ARG_T_BOOL,
    KEEL_ARG_T_BYTEA,
    KEEL_ARG_T_JSON   /* a json_t *, sent as text; the caller keeps its reference */
} keel_arg_type;

typedef struct keel_arg {
    keel_arg_type type;
    const void *ptr;  /* TEXT (NUL-terminated), BYTEA, JSON */
    size_t len;       /* BYTEA */
    int64_t i;        /* INT64, BOOL */
    double d;         /* DOUBLE */
} keel_arg;

#define KEEL_ARG_NULL           { .type = KEEL_ARG_T_NULL }
#define KEEL_ARG_TEXT(s)        { .type = KEEL_ARG_T_TEXT, .ptr = (s) }
#define KEEL_ARG_INT64(n)       { .type = KEEL_ARG_T_INT64, .i = (int64_t)(n) }
#define KEEL_ARG_DOUBLE(x)      { .type = KEEL_ARG_T_DOUBLE, .d = (double)(x) }
#define KEEL_ARG_BOOL(b)        { .type = KEEL_ARG_T_BOOL, .i = (b) ? 1 : 0 }
#define KEEL_ARG_BYTEA(p, n)    { .type = KEEL_ARG_T_BYTEA, .ptr = (p), .len = (n) }
#define KEEL_ARG_JSON(j)        { .type = KEEL_ARG_T_JSON, .ptr = (j) }

/* Expands to "array, count" for the variadic query macros below. */
#define KEEL__ARGS(...) \
    ((const keel_arg[]){ {.type = KEEL__ARG_NONE} __VA_OPT__(,) __VA_ARGS__ }) + 1, \
    (sizeof((const keel_arg[]){ {.type = KEEL__ARG_NONE} __VA_OPT__(,) __VA_ARGS__ }) / sizeof(keel_arg) - 1)

/* ---- queries -------------------------------------------------------------- */

typedef struct keel_row keel_row;
typedef struct keel_rows keel_rows;

/* Runs a statement that returns no rows; *affected (may be NULL) receives the
 * number of rows it changed. */
#define keel_db_exec(req, db, affected, sql, ...) \
    keel_db_exec_args((req), (db), (affected), (sql), KEEL__ARGS(__VA_ARGS__))

/* Runs a query and returns its first row.  No row is a not_found error whose
 * message is "no rows" (keel_db_no_rows tells it apart); a typed handler that
 * returns it answers 404.  The row lives until the request completes. */
#define keel_db_query_row(req, db, row, sql, ...) \
    keel_db_query_row_args((req), (db), (row), (sql), KEEL__ARGS(__VA_ARGS__))

/* Runs a query whose rows are streamed one by one (libpq single-row mode):
 * a large result never sits whole in memory.  Iterate with keel_rows_next;
 * keel_rows_close (or the end of the request) releases the connection. */
#define keel_db_query(req, db, rows, sql, ...) \
    keel_db_query_args((req), (db), (rows), (sql), KEEL__ARGS(__VA_ARGS__))

/* Reads that may be slightly stale: the same as keel_db_query_row and
 * keel_db_query, sent to one of the database's read replicas (the infra
 * config's "replicas", round-robin among those that answer), or to the
 * primary when it has none, none is healthy, or req is inside a
 * transaction on db.  A replica that cannot be reached is left out and
 * the read goes to the primary instead of failing.  Never use them to
 * write, or to read what the same request just wrote: a replica replays
 * the primary's changes a little later (keel_db_replica_lag_seconds on
 * /__keel/metrics says how much). */
#define keel_db_query_row_ro(req, db, row, sql, ...) \
    keel_db_query_row_ro_args((req), (db), (row), (sql), KEEL__ARGS(__VA_ARGS__))
#define keel_db_query_ro(req, db, rows, sql, ...) \
    keel_db_query_ro_args((req), (db), (rows), (sql), KEEL__ARGS(__VA_ARGS__))

keel_error *keel_db_exec_args(keel_req *req, keel_sqldb *db, int64_t *affected, const char *sql,
                              const keel_arg *args, size_t nargs);
keel_error *keel_db_query_row_ro_args(keel_req *req, keel_sqldb *db, keel_row **row, const char *sql,
                                      const keel_arg *args, size_t nargs);
keel_error *keel_db_query_ro_args(keel_req *req, keel_sqldb *db, keel_rows **rows, const char *sql,
                                  const keel_arg *args, size_t nargs);
keel_error *keel_db_query_row_args(keel_req *req, keel_sqldb *db, keel_row **row, const char *sql,
                                   const keel_arg *args, size_t nargs);
keel_error *keel_db_query_args(keel_req *req, keel_sqldb *db, keel_rows **rows, const char *sql,
                               const keel_arg *args, size_t nargs);

/* Sets *row to the next row, or to NULL after the last.  The row itself is
 * valid until the next call; what a getter takes from it (text, bytes) is a
 * copy in the request's arena and lives until the request completes.  A
 * stream may be left unread: keel_rows_close, an error, or the end of the
 * request ends it (the server stops sending). */
keel_error *keel_rows_next(keel_rows *rows, keel_row **row);
void keel_rows_close(keel_rows *rows);

/* True when err is the "no rows" result of keel_db_query_row. */
bool keel_db_no_rows(const keel_error *err);

/* ---- transactions ----------------------------------------------------------- */

/* Starts a transaction on db for req: until keel_db_commit or keel_db_rollback,
 * every query req makes on db runs inside it.  A failing statement rolls the
 * transaction back at once (later calls fail until commit/rollback is called);
 * a transaction still open when the request completes is rolled back. */
keel_error *keel_db_begin(keel_req *req, keel_sqldb *db);
keel_error *keel_db_commit(keel_req *req, keel_sqldb *db);
keel_error *keel_db_rollback(keel_req *req, keel_sqldb *db);

/* ---- typed getters ------------------------------------------------------------ */

int keel_row_columns(const keel_row *row);
bool keel_row_is_null(const keel_row *row, int col);

/* Each getter converts column col (0-based).  SQL NULL gives out = NULL / 0
 * and *is_null = true when is_null is given (it is false otherwise), else an
 * invalid_argument error naming the column.  A column index out of range or a value that does not
 * convert (text into int64...) is an internal error naming the column. */
keel_error *keel_row_text(const keel_row *row, int col, const char **out, bool *is_null);
keel_error *keel_row_int64(const keel_row *row, int col, int64_t *out, bool *is_null);
keel_error *keel_row_double(const keel_row *row, int col, double *out, bool *is_null);
keel_error *keel_row_bool(const keel_row *row, int col, bool *out, bool *is_null);
keel_error *keel_row_bytea(const keel_row *row, int col, const uint8_t **out, size_t *len, bool *is_null);
/* Microseconds since the Unix epoch (UTC). */
keel_error *keel_row_timestamptz(const keel_row *row, int col, int64_t *out, bool *is_null);
/* A new reference the caller releases with json_decref (NULL for SQL NULL). */
keel_error *keel_row_json(const keel_row *row, int col, json_t **out, bool *is_null);

/* Scans columns in order by format: t text (const char **), i int64, d double,
 * b bool, x bytea (const uint8_t **, size_t *), T timestamptz (int64_t *),
 * j json (json_t **).  A column that may be NULL takes '?' before its letter
 * and then a bool * after its destination(s) receives is_null; without '?', NULL
 * is an error.  Strings and bytes live in the request's arena (see
 * keel_rows_next). */
keel_error *keel_row_scan(const keel_row *row, const char *format, ...);

/* For values that only pass through (a streamed response writing millions of
 * rows), where keel_row_text's copies would stay in the request's arena until
 * it ends: copies column col's text into dst, cut to cap - 1 bytes and
 * NUL-terminated when cap > 0, and sets *len to the value's whole length (a
 * value was cut when *len >= cap).  SQL NULL gives "" and *len 0, and is
 * handled as by the getters above. */
keel_error *keel_row_copy_text(const keel_row *row, int col, char *dst, size_t cap, size_t *len,
                               bool *is_null);


#pragma GCC visibility pop

#endif

/* tests/integration/test_sqldb.c - the query API, row streams, transactions,
 * typed getters and the connection pool against a real PostgreSQL cluster
 * (pg_harness): parameters that try injection, every type's round trip, a
 * million-row stream in bounded memory, pool exhaustion, statement timeouts,
 * and recovery after the server restarts. */
#include "tap.h"
#include "pg_harness.h"
#include "keel/sqldb.h"
#include "core.h"
#include "sql/pool.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DBNAME "keeltest"

#if defined(__SANITIZE_ADDRESS__)
/* AddressSanitizer keeps freed memory in quarantine (256 MiB by default), which
 * would count as growth in the bounded-memory check of the million-row stream. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=16";
}
#endif

static pgh_cluster cluster;
static bool under_valgrind;

/* libpq keyword/value arrays for the test database, with one extra setting
 * when extra_kw is not NULL; they live in *p. */
typedef struct test_params {
    const char *kw[8];
    const char *val[8];
    char port[16];
} test_params;

static keel_pool_config test_config(test_params *p, const char *extra_kw, const char *extra_val, unsigned max_conns,
                                    unsigned checkout_ms, unsigned stmt_timeout_ms)
{
    snprintf(p->port, sizeof p->port, "%u", cluster.port);
    const char *kw[] = {"host", "port", "dbname", "user", extra_kw, NULL};
    const char *val[] = {cluster.socket_dir, p->port, DBNAME, "postgres", extra_val, NULL};
    memcpy(p->kw, kw, sizeof kw);
    memcpy(p->val, val, sizeof val);
    return (keel_pool_config){"t", p->kw, p->val, max_conns, checkout_ms, stmt_timeout_ms};
}

static keel_pool *pool_make(unsigned max_conns, unsigned checkout_ms, unsigned stmt_timeout_ms)
{
    test_params tp;
    keel_pool_config cfg = test_config(&tp, NULL, NULL, max_conns, checkout_ms, stmt_timeout_ms);
    keel_pool *p = NULL;
    keel_error *err = keel_pool_new(&cfg, &p);
    if (err) {
        diag("keel_pool_new: %s", err->message);
        keel_error_free(err);
    }
    return p;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* The code of err (KEEL_OK for NULL), freeing err. */
static keel_code code_of(keel_error *err)
{
    keel_code c = err ? err->code : KEEL_OK;
    keel_error_free(err);
    return c;
}

static int64_t count_rows(keel_req *req, keel_sqldb *db, const char *sql)
{
    keel_row *row;
    int64_t n = -1;
    keel_error *err = keel_db_query_row(req, db, &row, sql);
    if (!err)
        err = keel_row_int64(row, 0, &n, NULL);
    if (err) {
        diag("count_rows: %s (%s)", err->message, err->cause ? err->cause : "");
        keel_error_free(err);
    }
    return n;
}

static void test_exec(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    int64_t n = -1;
    keel_error *err = keel_db_exec(req, db, &n,
        "INSERT INTO item (name, qty) VALUES ($1, $2), ($3, $4), ($5, $6)",
        KEEL_ARG_TEXT("a"), KEEL_ARG_INT64(1), KEEL_ARG_TEXT("b"), KEEL_ARG_INT64(2),
        KEEL_ARG_TEXT("c"), KEEL_ARG_INT64(3));
    ok(!err, "exec: insert succeeds");
    is_int(n, 3, "exec: insert reports 3 affected rows");
    keel_error_free(err);
    err = keel_db_exec(req, db, &n, "UPDATE item SET qty = qty + 1 WHERE name IN ('a', 'b')");
    is_int(n, 2, "exec: update reports 2 affected rows");
    keel_error_free(err);
    err = keel_db_exec(req, db, &n, "DELETE FROM item WHERE name = $1", KEEL_ARG_TEXT("nobody"));
    ok(!err && n == 0, "exec: delete of nothing reports 0");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "DELETE FROM item WHERE name = $1", KEEL_ARG_TEXT("c"));
    ok(!err, "exec: affected may be NULL");
    keel_error_free(err);
    keel__req_detached_free(req);
}

static void test_getters(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    keel_row *row = NULL;
    keel_error *err = keel_db_query_row(req, db, &row,
        "SELECT 42::bigint, 'hello'::text, 2.5::float8, true, '\\x00ff10'::bytea, "
        "'2026-01-02 03:04:05.123456+00'::timestamptz, '{\"a\":[1,2]}'::jsonb, "
        "NULL::bigint, NULL::text, NULL::bytea, NULL::jsonb, NULL::float8, NULL::bool, NULL::timestamptz");
    ok(!err && row, "query_row: returns a row");
    keel_error_free(err);
    if (!row) {
        keel__req_detached_free(req);
        return;
    }
    is_int(keel_row_columns(row), 14, "row has 14 columns");
    int64_t i = 0;
    bool isn = true;
    ok(!keel_row_int64(row, 0, &i, &isn) && i == 42 && !isn, "int64 getter");
    const char *s = NULL;
    ok(!keel_row_text(row, 1, &s, NULL), "text getter succeeds");
    is_str(s, "hello", "text getter value");
    double d = 0;
    ok(!keel_row_double(row, 2, &d, NULL) && d == 2.5, "double getter");
    bool b = false;
    ok(!keel_row_bool(row, 3, &b, NULL) && b, "bool getter");
    const uint8_t *bytes = NULL;
    size_t len = 0;
    ok(!keel_row_bytea(row, 4, &bytes, &len, NULL) && len == 3 && bytes[0] == 0 && bytes[1] == 0xff && bytes[2] == 0x10,
       "bytea getter");
    int64_t ts = 0;
    ok(!keel_row_timestamptz(row, 5, &ts, NULL), "timestamptz getter succeeds");
    is_int(ts, INT64_C(1767323045123456), "timestamptz is exact microseconds since the epoch");
    json_t *j = NULL;
    ok(!keel_row_json(row, 6, &j, NULL) && json_is_object(j) && json_array_size(json_object_get(j, "a")) == 2,
       "json getter returns the object");
    json_decref(j);

    /* NULLs */
    ok(keel_row_is_null(row, 7) && !keel_row_is_null(row, 0), "keel_row_is_null");
    i = 7;
    isn = false;
    ok(!keel_row_int64(row, 7, &i, &isn) && isn && i == 0, "NULL int64 with is_null: 0, is_null");
    err = keel_row_int64(row, 7, &i, NULL);
    ok(err && err->code == KEEL_INVALID_ARGUMENT, "NULL int64 without is_null is invalid_argument");
    keel_error_free(err);
    s = "x";
    ok(!keel_row_text(row, 8, &s, &isn) && isn && s == NULL, "NULL text gives NULL");
    ok(code_of(keel_row_text(row, 8, &s, NULL)) == KEEL_INVALID_ARGUMENT, "NULL text without is_null is invalid_argument");
    bytes = (const uint8_t *)"x";
    len = 9;
    ok(!keel_row_bytea(row, 9, &bytes, &len, &isn) && isn && !bytes && len == 0, "NULL bytea gives NULL, 0");
    ok(code_of(keel_row_bytea(row, 9, &bytes, &len, NULL)) == KEEL_INVALID_ARGUMENT, "NULL bytea without is_null is invalid_argument");
    j = json_true();
    ok(!keel_row_json(row, 10, &j, &isn) && isn && j == NULL, "NULL json gives NULL");
    ok(code_of(keel_row_json(row, 10, &j, NULL)) == KEEL_INVALID_ARGUMENT, "NULL json without is_null is invalid_argument");
    isn = false;
    ok(!keel_row_double(row, 11, &d, &isn) && isn && d == 0, "NULL double with is_null");
    isn = false;
    ok(!keel_row_bool(row, 12, &b, &isn) && isn && !b, "NULL bool with is_null");
    isn = false;
    ok(!keel_row_timestamptz(row, 13, &ts, &isn) && isn && ts == 0, "NULL timestamptz with is_null");

    /* scan */
    int64_t si = 0, sts = 0;
    const char *st = NULL, *snull = "x";
    double sd = 0;
    bool sb = false, n1 = true, n2 = false, n3 = false;
    const uint8_t *sx = NULL;
    size_t sxlen = 0;
    json_t *sj = NULL;
    err = keel_row_scan(row, "itdbxTj?i?t?d", &si, &st, &sd, &sb, &sx, &sxlen, &sts, &sj, &i, &n1, &snull,
                        &n2, &d, &n3);
    ok(!err, "scan with '?' succeeds");
    if (err)
        diag("scan: %s", err->message);
    keel_error_free(err);
    ok(si == 42 && st && !strcmp(st, "hello") && sd == 2.5 && sb && sxlen == 3 &&
       sts == INT64_C(1767323045123456) && json_is_object(sj), "scan fills every type");
    ok(n1 && n2 && n3 && snull == NULL, "scan reports NULLs through '?'");
    json_decref(sj);
    sj = NULL;
    err = keel_row_scan(row, "iiiiiiii", &si, &si, &si, &si, &si, &si, &si, &si);
    ok(err && err->code == KEEL_INTERNAL, "scan of a text column as int64 fails");
    keel_error_free(err);
    err = keel_row_scan(row, "itdbxTjt", &si, &st, &sd, &sb, &sx, &sxlen, &sts, &sj, &st);
    ok(err && err->code == KEEL_INVALID_ARGUMENT && tap_contains(err->message, "NULL"),
       "scan of a NULL without '?' is an error");
    ok(sj == NULL, "scan failure releases json it had produced");
    keel_error_free(err);

    /* column errors */
    err = keel_row_int64(row, 14, &i, NULL);
    ok(err && err->code == KEEL_INTERNAL, "column out of range is internal");
    is_str(err ? err->message : NULL, "column 14 out of range (result has 14 columns)", "out of range message");
    keel_error_free(err);
    err = keel_row_text(row, -1, &s, NULL);
    ok(err && err->code == KEEL_INTERNAL, "negative column is internal");
    keel_error_free(err);
    keel__req_detached_free(req);

    req = keel__req_detached_new();
    err = keel_db_query_row(req, db, &row, "SELECT 'abc' AS word, 'x' AS flag, '{' AS doc, 'nope' AS at");
    keel_error_free(err);
    err = keel_row_int64(row, 0, &i, NULL);
    ok(err && err->code == KEEL_INTERNAL && tap_contains(err->message, "\"word\"") &&
       tap_contains(err->message, "int64"), "int64 of 'abc' is internal naming column and type");
    keel_error_free(err);
    ok(code_of(keel_row_double(row, 0, &d, NULL)) == KEEL_INTERNAL, "double of 'abc' fails");
    ok(code_of(keel_row_bool(row, 1, &b, NULL)) == KEEL_INTERNAL, "bool of 'x' fails");
    j = NULL;
    ok(code_of(keel_row_json(row, 2, &j, NULL)) == KEEL_INTERNAL && !j, "json of '{' fails");
    ok(code_of(keel_row_timestamptz(row, 3, &ts, NULL)) == KEEL_INTERNAL, "timestamptz of 'nope' fails");
    keel__req_detached_free(req);
}

static void test_no_rows(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    keel_row *row = (keel_row *)1;
    keel_error *err = keel_db_query_row(req, db, &row, "SELECT id FROM item WHERE name = $1",
                                        KEEL_ARG_TEXT("missing"));
    ok(err && err->code == KEEL_NOT_FOUND, "no rows is not_found");
    ok(keel_db_no_rows(err), "keel_db_no_rows recognises it");
    ok(row == NULL, "row is NULL");
    keel_error_free(err);
    err = keel_error_new(KEEL_NOT_FOUND, "todo not found");
    ok(!keel_db_no_rows(err) && !keel_db_no_rows(NULL), "keel_db_no_rows rejects other errors");
    keel_error_free(err);
    keel__req_detached_free(req);
}

static void test_values(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    static const char *const texts[] = {
        "O'Reilly \"quoted\" back\\slash $1 %s",
        "'; DROP TABLE item; --",
        "Robert'); DROP TABLE item;--",
        "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89",
    };
    for (size_t k = 0; k < sizeof texts / sizeof *texts; k++) {
        keel_row *row = NULL;
        keel_error *err = keel_db_query_row(req, db, &row,
            "INSERT INTO item (name, note) VALUES ($1, $1) RETURNING name, note", KEEL_ARG_TEXT(texts[k]));
        const char *a = NULL, *c = NULL;
        if (!err)
            err = keel_row_scan(row, "tt", &a, &c);
        ok(!err && a && c && !strcmp(a, texts[k]) && !strcmp(c, texts[k]), "text parameter %zu round-trips as data",
           k);
        keel_error_free(err);
    }
    int64_t n = count_rows(req, db, "SELECT count(*) FROM item WHERE note IS NOT NULL");
    is_int(n, 4, "the table still exists and holds the 4 strings");

    uint8_t all[256];
    for (int k = 0; k < 256; k++)
        all[k] = (uint8_t)k;
    keel_row *row = NULL;
    keel_error *err = keel_db_query_row(req, db, &row, "INSERT INTO item (name, data) VALUES ('bin', $1) RETURNING data",
                                        KEEL_ARG_BYTEA(all, sizeof all));
    const uint8_t *got = NULL;
    size_t len = 0;
    if (!err)
        err = keel_row_bytea(row, 0, &got, &len, NULL);
    ok(!err && len == 256 && memcmp(got, all, 256) == 0, "bytea with every byte value 0..255 round-trips");
    keel_error_free(err);
    err = keel_db_query_row(req, db, &row, "SELECT length($1::bytea), $2::bytea = ''::bytea",
                            KEEL_ARG_BYTEA(all + 1, 255), KEEL_ARG_BYTEA(NULL, 0));
    int64_t l = 0;
    bool empty = false;
    if (!err)
        err = keel_row_scan(row, "ib", &l, &empty);
    ok(!err && l == 255 && empty, "bytea 1..255 is sent as 255 binary bytes; empty bytea works");
    keel_error_free(err);

    err = keel_db_query_row(req, db, &row, "SELECT $1::bigint, $2::bigint, $3::bigint",
                            KEEL_ARG_INT64(INT64_MIN), KEEL_ARG_INT64(INT64_MAX), KEEL_ARG_INT64(0));
    int64_t lo = 0, hi = 0, zero = 1;
    if (!err)
        err = keel_row_scan(row, "iii", &lo, &hi, &zero);
    ok(!err && lo == INT64_MIN && hi == INT64_MAX && zero == 0, "int64 extremes round-trip");
    keel_error_free(err);

    double vals[] = {0.1, 1e308, -2.5e-300, 3.141592653589793, 1.0 / 3.0};
    bool exact = true;
    for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) {
        double back = 0;
        err = keel_db_query_row(req, db, &row, "SELECT $1::float8", KEEL_ARG_DOUBLE(vals[k]));
        if (!err)
            err = keel_row_double(row, 0, &back, NULL);
        if (err || back != vals[k])
            exact = false;
        keel_error_free(err);
    }
    ok(exact, "doubles round-trip exactly");
    double inf = 0;
    err = keel_db_query_row(req, db, &row, "SELECT $1::float8", KEEL_ARG_DOUBLE(INFINITY));
    if (!err)
        err = keel_row_double(row, 0, &inf, NULL);
    ok(!err && isinf(inf) && inf > 0, "infinity round-trips");
    keel_error_free(err);

    bool t = false, f = true;
    err = keel_db_query_row(req, db, &row, "SELECT $1::bool, $2::bool", KEEL_ARG_BOOL(1), KEEL_ARG_BOOL(0));
    if (!err)
        err = keel_row_scan(row, "bb", &t, &f);
    ok(!err && t && !f, "bools round-trip");
    keel_error_free(err);

    json_t *doc = json_pack("{s:s, s:[i, f, b, n], s:{s:s}}", "name", "x'; --", "list", 1, 2.5, 1, "nested", "k",
                            "\xc3\xa9");
    json_t *back = NULL;
    err = keel_db_query_row(req, db, &row, "SELECT $1::jsonb, $2::jsonb IS NULL", KEEL_ARG_JSON(doc),
                            KEEL_ARG_JSON(NULL));
    bool was_null = false;
    if (!err)
        err = keel_row_scan(row, "jb", &back, &was_null);
    ok(!err && json_equal(doc, back), "json round-trips");
    ok(was_null, "a NULL json_t * is SQL NULL");
    json_decref(back);
    json_decref(doc);
    keel_error_free(err);

    /* timestamptz: fixed values and other offset styles, parsed from text */
    err = keel_db_query_row(req, db, &row,
        "SELECT $1::timestamptz, '2026-01-02 05:04:05.123456+02:00', '2026-01-01 21:34:05.123456-05:30', "
        "'1969-12-31 23:59:59.5+00'::timestamptz, '1970-01-01 00:00:00+00'::timestamptz, "
        "'2026-01-02 03:04:05.123456'::timestamp",
        KEEL_ARG_TEXT("2026-01-02 03:04:05.123456+00"));
    int64_t t1 = 0, t2 = 0, t3 = 0, t4 = 0, t5 = 1, t6 = 0;
    if (!err)
        err = keel_row_scan(row, "TTTTTT", &t1, &t2, &t3, &t4, &t5, &t6);
    ok(!err, "timestamptz scan succeeds");
    keel_error_free(err);
    is_int(t1, INT64_C(1767323045123456), "timestamptz parameter round-trips exactly");
    ok(t2 == t1 && t3 == t1, "+HH:MM and -HH:MM offsets are applied");
    is_int(t4, -500000, "timestamps before the epoch are negative");
    is_int(t5, 0, "the epoch is 0");
    is_int(t6, INT64_C(1767323045123456), "timestamp without time zone is read as UTC");
    keel__req_detached_free(req);
}

static void test_errors(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    keel_error *err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ($1)", KEEL_ARG_TEXT("a"));
    ok(err && err->code == KEEL_ALREADY_EXISTS, "unique violation is already_exists");
    ok(err && tap_contains(err->message, "duplicate key") && !tap_contains(err->message, "(name)=(a)"),
       "its message is PostgreSQL's primary message, without the detail");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name, qty) VALUES ($1, -5)", KEEL_ARG_TEXT("neg"));
    ok(err && err->code == KEEL_FAILED_PRECONDITION, "check violation is failed_precondition");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES (NULL)");
    ok(err && err->code == KEEL_INVALID_ARGUMENT, "not-null violation is invalid_argument");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "SELECT 1 / $1::int", KEEL_ARG_INT64(0));
    ok(err && err->code == KEEL_INVALID_ARGUMENT, "division by zero (22012) is invalid_argument");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "SELECT $1::int", KEEL_ARG_TEXT("abc"));
    ok(err && err->code == KEEL_INVALID_ARGUMENT, "bad input syntax (22P02) is invalid_argument");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "SELEC nonsense");
    ok(err && err->code == KEEL_INTERNAL, "syntax error is internal");
    is_str(err ? err->message : NULL, "database \"t\" error", "internal errors have a generic message");
    ok(err && tap_contains(err->cause, "42601"), "the cause has the SQLSTATE and PostgreSQL's message");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "SELECT 1; DROP TABLE item");
    ok(err && err->code == KEEL_INTERNAL, "several statements in one call are refused");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "SELECT $1::int, $2::int", KEEL_ARG_INT64(1));
    ok(err && err->code == KEEL_INTERNAL, "a wrong parameter count is internal");
    keel_error_free(err);
    is_int(count_rows(req, db, "SELECT count(*) FROM item WHERE name = 'a'"), 1,
           "the request goes on working after errors");

    keel_sqldb closed = KEEL_SQLDB("closed", NULL);
    err = keel_db_exec(req, &closed, NULL, "SELECT 1");
    ok(err && err->code == KEEL_INTERNAL && tap_contains(err->message, "database \"closed\" is not open"),
       "a database without a pool is internal: not open");
    keel_error_free(err);
    keel_sqldb ref = KEEL_SQLDB_NAMED("t");
    ref.resolved = db;
    is_int(count_rows(req, &ref, "SELECT 7"), 7, "a reference uses its resolved database's pool");
    keel__req_detached_free(req);
}

static void test_stream_million(keel_sqldb *db)
{
    if (under_valgrind) {
        skip("1,000,000-row stream under valgrind");
        skip("1,000,000-row stream under valgrind");
        skip("1,000,000-row stream under valgrind");
        return;
    }
    keel_req *req = keel__req_detached_new();
    long before = peak_rss_kb();
    keel_rows *rows = NULL;
    keel_error *err = keel_db_query(req, db, &rows, "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g");
    ok(!err && rows, "stream of 1,000,000 rows starts");
    keel_error_free(err);
    int64_t count = 0, last = 0;
    bool good = true;
    keel_row *row;
    while (rows && !(err = keel_rows_next(rows, &row)) && row) {
        int64_t g;
        char h[40];
        size_t hlen = 0;
        /* Values that only pass through are copied out, not kept in the
         * request's arena (keel_row_text's copies would be, a million times). */
        keel_error *e1 = keel_row_int64(row, 0, &g, NULL);
        keel_error *e2 = keel_row_copy_text(row, 1, h, sizeof h, &hlen, NULL);
        if (e1 || e2 || hlen != 32 || strlen(h) != 32)
            good = false;
        keel_error_free(e1);
        keel_error_free(e2);
        last = g;
        count++;
    }
    ok(!err && good && count == 1000000 && last == 1000000, "every row arrives in order (%" PRId64 ")", count);
    keel_error_free(err);
    long growth = peak_rss_kb() - before;
    ok(growth < 50 * 1024, "peak RSS grew by %ld KiB (< 50 MiB)", growth);
    keel__req_detached_free(req);
}

static void test_streams(keel_sqldb *db1)
{
    keel_req *req = keel__req_detached_new();
    keel_rows *rows;
    keel_row *row;
    keel_error *err = keel_db_query(req, db1, &rows, "SELECT g, repeat('x', g % 1000), decode(lpad(to_hex(g % 256), 2, '0'), 'hex') "
                                                      "FROM generate_series(1, 1000000) g");
    ok(!err, "stream on a one-connection pool starts");
    keel_error_free(err);
    int got = 0;
    bool good = true;
    for (int k = 1; k <= 3; k++) {
        err = keel_rows_next(rows, &row);
        int64_t g = 0;
        const char *s = NULL;
        const uint8_t *x = NULL;
        size_t xl = 0;
        if (err || !row || keel_row_scan(row, "itx", &g, &s, &x, &xl) || g != k || strlen(s) != (size_t)k ||
            xl != 1 || x[0] != k)
            good = false;
        got++;
        keel_error_free(err);
    }
    ok(good && got == 3, "streamed rows carry text and bytea values");
    double t0 = now_ms();
    keel_rows_close(rows);
    double took = now_ms() - t0;
    ok(took < 1000, "closing a large stream early cancels it (%.0f ms)", took);
    keel_rows_close(rows);
    err = keel_rows_next(rows, &row);
    ok(!err && row == NULL, "a closed stream yields no more rows");
    is_int(count_rows(req, db1, "SELECT 5"), 5, "after closing early, the same request queries again (connection returned)");

    err = keel_db_query(req, db1, &rows, "SELECT 1 WHERE false");
    ok(!err, "empty stream starts");
    err = keel_rows_next(rows, &row);
    ok(!err && !row, "empty stream ends at once");
    keel_error_free(err);

    err = keel_db_query(req, db1, &rows, "SELECT 10 / (5 - g) FROM generate_series(1, 10) g");
    int n = 0;
    keel_error *mid = NULL;
    if (!err)
        while (!(mid = keel_rows_next(rows, &row)) && row)
            n++;
    ok(!err && mid && mid->code == KEEL_INVALID_ARGUMENT && n == 4, "an error mid-stream arrives after the good rows");
    keel_error_free(err);
    keel_error_free(mid);
    is_int(count_rows(req, db1, "SELECT 6"), 6, "the connection is usable after a mid-stream error");

    /* left open: the end of the request closes it */
    err = keel_db_query(req, db1, &rows, "SELECT g FROM generate_series(1, 100000) g");
    keel_error_free(err);
    err = keel_rows_next(rows, &row);
    keel_error_free(err);
    keel__req_detached_free(req);
    req = keel__req_detached_new();
    is_int(count_rows(req, db1, "SELECT 8"), 8, "a stream left open is closed when its request ends");
    keel__req_detached_free(req);
}

static void test_transactions(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    keel_req *other = keel__req_detached_new();
    keel_error *err = keel_db_begin(req, db);
    ok(!err, "begin");
    keel_error_free(err);
    err = keel_db_begin(req, db);
    ok(err && err->code == KEEL_INTERNAL, "begin twice is internal");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('tx1')");
    ok(!err, "insert inside the transaction");
    keel_error_free(err);
    is_int(count_rows(other, db, "SELECT count(*) FROM item WHERE name = 'tx1'"), 0,
           "uncommitted row is invisible to another request");
    is_int(count_rows(req, db, "SELECT count(*) FROM item WHERE name = 'tx1'"), 1,
           "the transaction sees its own row");
    err = keel_db_commit(req, db);
    ok(!err, "commit");
    keel_error_free(err);
    is_int(count_rows(other, db, "SELECT count(*) FROM item WHERE name = 'tx1'"), 1, "committed row is visible");
    err = keel_db_commit(req, db);
    ok(err && err->code == KEEL_INTERNAL, "commit without a transaction is internal");
    keel_error_free(err);
    ok(!keel_db_rollback(req, db), "rollback without a transaction is harmless");

    err = keel_db_begin(req, db);
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('tx2')");
    keel_error_free(err);
    ok(!keel_db_rollback(req, db), "rollback");
    is_int(count_rows(other, db, "SELECT count(*) FROM item WHERE name = 'tx2'"), 0, "rolled back row is gone");

    err = keel_db_begin(req, db);
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('tx3')");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('a')");
    ok(err && err->code == KEEL_ALREADY_EXISTS, "a failing statement inside returns its own error");
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('tx3b')");
    ok(err && err->code == KEEL_ABORTED, "later calls fail with aborted");
    is_str(err ? err->message : NULL, "transaction was rolled back after an error", "aborted message");
    keel_error_free(err);
    keel_rows *rows = NULL;
    err = keel_db_query(req, db, &rows, "SELECT 1");
    ok(err && err->code == KEEL_ABORTED && !rows, "streams fail with aborted too");
    keel_error_free(err);
    is_int(count_rows(other, db, "SELECT count(*) FROM item WHERE name LIKE 'tx3%'"), 0,
           "the failed transaction was rolled back at once");
    err = keel_db_commit(req, db);
    ok(err && err->code == KEEL_ABORTED, "commit of the failed transaction returns aborted");
    keel_error_free(err);
    is_int(count_rows(req, db, "SELECT 3"), 3, "after commit the request works outside a transaction");

    /* a stream inside a transaction */
    err = keel_db_begin(req, db);
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('tx4')");
    keel_error_free(err);
    err = keel_db_query(req, db, &rows, "SELECT g FROM generate_series(1, 1000) g");
    keel_row *row;
    keel_error *e2 = keel_rows_next(rows, &row);
    keel_error_free(e2);
    e2 = keel_db_exec(req, db, NULL, "SELECT 1");
    ok(!err && e2 && e2->code == KEEL_INTERNAL, "a statement while the transaction's stream is open is refused");
    keel_error_free(err);
    keel_error_free(e2);
    keel_rows_close(rows);
    is_int(count_rows(req, db, "SELECT count(*) FROM item WHERE name = 'tx4'"), 1,
           "closing the stream keeps the transaction alive");
    err = keel_db_commit(req, db);
    ok(!err, "commit after a stream");
    keel_error_free(err);
    is_int(count_rows(other, db, "SELECT count(*) FROM item WHERE name = 'tx4'"), 1, "and its row is there");

    /* open at the end of the request */
    err = keel_db_begin(req, db);
    keel_error_free(err);
    err = keel_db_exec(req, db, NULL, "INSERT INTO item (name) VALUES ('tx5')");
    keel_error_free(err);
    keel__req_detached_free(req);
    is_int(count_rows(other, db, "SELECT count(*) FROM item WHERE name = 'tx5'"), 0,
           "a transaction open at the end of the request is rolled back");
    keel__req_detached_free(other);
}

static void test_session(keel_sqldb *db)
{
    keel_req *req = keel__req_detached_new();
    keel_row *row;
    const char *tz = NULL, *app = NULL, *enc = NULL, *ds = NULL;
    keel_error *err = keel_db_query_row(req, db, &row,
        "SELECT current_setting('TimeZone'), current_setting('application_name'), "
        "current_setting('client_encoding'), current_setting('DateStyle')");
    if (!err)
        err = keel_row_scan(row, "tttt", &tz, &app, &enc, &ds);
    ok(!err, "session settings read");
    keel_error_free(err);
    is_str(tz, "UTC", "connections use TimeZone UTC");
    is_str(app, "keel", "application_name is keel");
    is_str(enc, "UTF8", "client_encoding is UTF8");
    ok(tap_contains(ds, "ISO"), "DateStyle is ISO");
    keel__req_detached_free(req);

    test_params tp;
    keel_pool_config cfg = test_config(&tp, "pasword", "hunter2", 1, 0, 0);
    keel_pool *p = (keel_pool *)1;
    err = keel_pool_new(&cfg, &p);
    ok(err && err->code == KEEL_INVALID_ARGUMENT && !p, "a setting libpq does not know is refused at creation");
    ok(err && tap_contains(err->message, "\"pasword\"") && !tap_contains(err->message, "hunter2") &&
           !tap_contains(err->cause, "hunter2"), "naming it, without showing its value");
    keel_error_free(err);
}

typedef struct worker_arg {
    keel_sqldb *db;
    int failures;
    int done;
} worker_arg;

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    for (int k = 0; k < 100; k++) {
        keel_req *req = keel__req_detached_new();
        keel_row *row;
        int64_t v = 0;
        keel_error *err = keel_db_query_row(req, w->db, &row, "SELECT $1::bigint * 2", KEEL_ARG_INT64(k));
        if (!err)
            err = keel_row_int64(row, 0, &v, NULL);
        if (err || v != 2 * k)
            w->failures++;
        if (k % 10 == 0 && !err) {
            keel_error_free(err);
            err = keel_db_begin(req, w->db);
            if (!err)
                err = keel_db_exec(req, w->db, NULL, "SELECT 1");
            if (!err)
                err = keel_db_commit(req, w->db);
            if (err)
                w->failures++;
        }
        keel_error_free(err);
        keel__req_detached_free(req);
        w->done++;
    }
    return NULL;
}

static void test_threads(void)
{
    keel_sqldb db = KEEL_SQLDB("t", NULL);
    test_params tp;
    keel_pool_config cfg = test_config(&tp, "application_name", "keel_threads", 3, 10000, 0);
    keel_error_free(keel_pool_new(&cfg, &db.pool));
    enum { NTHREADS = 8 };
    pthread_t th[NTHREADS];
    worker_arg args[NTHREADS];
    for (int k = 0; k < NTHREADS; k++) {
        args[k] = (worker_arg){&db, 0, 0};
        pthread_create(&th[k], NULL, worker_main, &args[k]);
    }
    int failures = 0, done = 0;
    for (int k = 0; k < NTHREADS; k++) {
        pthread_join(th[k], NULL);
        failures += args[k].failures;
        done += args[k].done;
    }
    ok(done == NTHREADS * 100 && failures == 0, "8 threads share a 3-connection pool (%d requests, %d failures)",
       done, failures);
    keel_req *req = keel__req_detached_new();
    int64_t n = count_rows(req, &db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'keel_threads'");
    ok(n >= 1 && n <= 3, "the pool holds at most its size (%" PRId64 " sessions; its own application_name kept)", n);
    keel__req_detached_free(req);
    keel_pool_free(db.pool);
}

static void test_prepared(void)
{
    keel_sqldb db = KEEL_SQLDB("t", NULL);
    db.pool = pool_make(1, 0, 0);
    keel_req *req = keel__req_detached_new();
    keel_error *err = keel_db_begin(req, &db);
    keel_error_free(err);
    const char *sql = "SELECT name FROM item WHERE qty = $1";
    for (int k = 0; k < 3; k++) {
        keel_row *row;
        err = keel_db_query_row(req, &db, &row, sql, KEEL_ARG_INT64(1000 + k));
        ok(keel_db_no_rows(err), "statement run %d", k + 1);
        keel_error_free(err);
    }
    keel_row *row;
    int64_t same = -1, total = -1;
    err = keel_db_query_row(req, &db, &row,
        "SELECT (SELECT count(*) FROM pg_prepared_statements WHERE statement = $1), "
        "(SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'keel_s%')", KEEL_ARG_TEXT(sql));
    if (!err)
        err = keel_row_scan(row, "ii", &same, &total);
    keel_error_free(err);
    is_int(same, 1, "the statement was prepared once on the connection");
    is_int(total, 2, "only it and the counting query are prepared");
    keel__req_detached_free(req);
    keel_pool_free(db.pool);
}

static void test_timeout(void)
{
    keel_sqldb db = KEEL_SQLDB("t", NULL);
    db.pool = pool_make(2, 0, 200);
    keel_req *req = keel__req_detached_new();
    double t0 = now_ms();
    keel_error *err = keel_db_exec(req, &db, NULL, "SELECT pg_sleep(2)");
    double took = now_ms() - t0;
    ok(err && err->code == KEEL_DEADLINE_EXCEEDED, "statement timeout is deadline_exceeded");
    ok(took < 1500, "it stopped after about 200 ms (%.0f ms)", took);
    keel_error_free(err);
    is_int(count_rows(req, &db, "SELECT 9"), 9, "the pool works after a timeout");
    keel__req_detached_free(req);
    keel_pool_free(db.pool);
}

static void test_exhaustion(void)
{
    keel_sqldb db = KEEL_SQLDB("t", NULL);
    db.pool = pool_make(2, 300, 0);
    keel_req *a = keel__req_detached_new(), *b = keel__req_detached_new(), *c = keel__req_detached_new();
    keel_error *e1 = keel_db_begin(a, &db), *e2 = keel_db_begin(b, &db);
    ok(!e1 && !e2, "two transactions hold both connections");
    keel_error_free(e1);
    keel_error_free(e2);
    double t0 = now_ms();
    keel_error *err = keel_db_exec(c, &db, NULL, "SELECT 1");
    double took = now_ms() - t0;
    ok(err && err->code == KEEL_UNAVAILABLE, "a third query is unavailable");
    is_str(err ? err->message : NULL, "database \"t\": no connection available within 300 ms",
           "its message names the database and the wait");
    ok(took >= 280 && took < 1000, "it waited the checkout timeout (%.0f ms)", took);
    keel_error_free(err);
    keel__req_detached_free(a);
    is_int(count_rows(c, &db, "SELECT 4"), 4, "when a request ends its connection serves the waiting one");
    keel__req_detached_free(b);
    keel__req_detached_free(c);
    keel_pool_free(db.pool);
}

static void test_restart(void)
{
    keel_sqldb db = KEEL_SQLDB("t", NULL);
    db.pool = pool_make(4, 0, 0);
    keel_req *req = keel__req_detached_new();

    /* retry: the statement kills its own session the first time it runs */
    pgh_exec(&cluster, DBNAME, "CREATE SEQUENCE kill_once");
    bool survived = false;
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &db, &row,
        "SELECT CASE WHEN nextval('kill_once') = 1 THEN pg_terminate_backend(pg_backend_pid()) ELSE true END");
    if (!err)
        err = keel_row_bool(row, 0, &survived, NULL);
    ok(!err && survived, "a statement whose connection dies is retried once on a new connection");
    if (err)
        diag("%s: %s", err->message, err->cause ? err->cause : "");
    keel_error_free(err);
    is_int(count_rows(req, &db, "SELECT last_value FROM kill_once"), 2, "it ran exactly twice");

    err = keel_db_begin(req, &db);
    keel_error_free(err);
    err = keel_db_exec(req, &db, NULL, "SELECT pg_terminate_backend(pg_backend_pid())");
    ok(err && err->code == KEEL_UNAVAILABLE, "inside a transaction a dead connection is unavailable (no retry)");
    keel_error_free(err);
    err = keel_db_exec(req, &db, NULL, "SELECT 1");
    ok(err && err->code == KEEL_ABORTED, "and the transaction is over");
    keel_error_free(err);
    keel_error_free(keel_db_rollback(req, &db));
    keel__req_detached_free(req);

    req = keel__req_detached_new();
    is_int(count_rows(req, &db, "SELECT 11"), 11, "query before the restart");
    keel__req_detached_free(req);
    ok(pgh_pause(&cluster) && pgh_resume(&cluster), "PostgreSQL restarted");
    req = keel__req_detached_new();
    is_int(count_rows(req, &db, "SELECT 11"), 11, "the same (prepared) query succeeds after the restart");
    is_int(count_rows(req, &db, "SELECT 12"), 12, "and a new one too");
    keel__req_detached_free(req);

    ok(pgh_pause(&cluster), "PostgreSQL stopped");
    req = keel__req_detached_new();
    err = keel_db_exec(req, &db, NULL, "SELECT 1");
    ok(err && err->code == KEEL_UNAVAILABLE, "a query while the server is down is unavailable");
    ok(err && tap_contains(err->message, "\"t\"") && !tap_contains(err->message, "password") &&
       !tap_contains(err->message, "host="), "its message names the database and no connection settings");
    keel_error_free(err);
    keel__req_detached_free(req);

    test_params tp;
    keel_pool_config cfg = test_config(&tp, "password", "sekr1t-value", 1, 0, 0);
    keel_sqldb pdb = KEEL_SQLDB("t", NULL);
    err = keel_pool_new(&cfg, &pdb.pool);
    keel_error_free(err);
    req = keel__req_detached_new();
    err = keel_db_exec(req, &pdb, NULL, "SELECT 1");
    ok(err && err->code == KEEL_UNAVAILABLE && !tap_contains(err->message, "sekr1t") &&
       !tap_contains(err->cause, "sekr1t"), "a failed connect never shows the password");
    keel_error_free(err);
    keel__req_detached_free(req);
    keel_pool_free(pdb.pool);

    ok(pgh_resume(&cluster), "PostgreSQL started again");
    req = keel__req_detached_new();
    is_int(count_rows(req, &db, "SELECT 13"), 13, "the pool recovers once the server is back");
    keel__req_detached_free(req);
    keel_pool_free(db.pool);
}

int main(void)
{
    under_valgrind = getenv("KEEL_TEST_VALGRIND") != NULL;
    if (!pgh_start(&cluster)) {
        printf("1..0 # SKIP no PostgreSQL cluster\n");
        return 0;
    }
    bool ready = pgh_create_db(&cluster, DBNAME) &&
                 pgh_exec(&cluster, DBNAME,
                          "CREATE TABLE item (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, "
                          "qty bigint CHECK (qty >= 0), note text, data bytea)");
    ok(ready, "test database created");
    keel_sqldb db = KEEL_SQLDB("t", NULL);
    keel_sqldb db1 = KEEL_SQLDB("t", NULL);
    db.pool = pool_make(4, 0, 0);
    db1.pool = pool_make(1, 2000, 0);
    ok(db.pool && db1.pool, "pools created");
    if (ready && db.pool && db1.pool) {
        test_stream_million(&db);
        test_exec(&db);
        test_getters(&db);
        test_no_rows(&db);
        test_values(&db);
        test_errors(&db);
        test_streams(&db1);
        test_transactions(&db);
        test_session(&db);
        test_threads();
        test_prepared();
        test_timeout();
        test_exhaustion();
        test_restart();
    }
    keel_pool_free(db.pool);
    keel_pool_free(db1.pool);
    pgh_stop(&cluster);
    return tap_done();
}

/* tests/integration/dbtestapp.c - the todo service plus a service of
 * database endpoints that the execution-model tests need (and the example's
 * webhook, external-database and legacy services, which test_observe traces): a statement that
 * fails for one input only, a slow statement, the backend that served a
 * statement (to see several requests share one pipelined connection), and a
 * transaction with a row stream inside that commits or rolls back, and
 * reads that may go to a read replica. */
#include <keel/keel.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"
#include "legacy/mount.h"

static keel_sqldb todo_ref = KEEL_SQLDB_NAMED("todo");

typedef struct { int64_t n; } dbtest_num;
typedef struct { int64_t value; int64_t backend; } dbtest_out;
static const keel_field dbtest_num_fields[] = { KEEL_INT64(dbtest_num, n, KEEL_IN_PATH), KEEL_END };
static const keel_field dbtest_out_fields[] = {
    KEEL_INT64(dbtest_out, value),
    KEEL_INT64(dbtest_out, backend),
    KEEL_END
};

/* GET /dbtest/div/:n: 100 / n in SQL; n = 0 fails (division by zero). */
static keel_error *divide(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &todo_ref, &row, "SELECT 100 / $1::int, pg_backend_pid()",
                                        KEEL_ARG_INT64(in->n));
    return err ? err : keel_row_scan(row, "ii", &out->value, &out->backend);
}

/* GET /dbtest/sleep/:n: a statement that takes n milliseconds. */
static keel_error *sleep_ms(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &todo_ref, &row,
                                        "SELECT $1::int FROM pg_sleep($1::int / 1000.0)", KEEL_ARG_INT64(in->n));
    out->backend = 0;
    return err ? err : keel_row_scan(row, "i", &out->value);
}

typedef struct { const char *title; bool fail; } dbtest_tx_in;
typedef struct { int64_t id; int64_t seen; } dbtest_tx_out;
static const keel_field dbtest_tx_in_fields[] = {
    KEEL_STRING(dbtest_tx_in, title),
    KEEL_BOOL(dbtest_tx_in, fail),
    KEEL_END
};
static const keel_field dbtest_tx_out_fields[] = {
    KEEL_INT64(dbtest_tx_out, id),
    KEEL_INT64(dbtest_tx_out, seen),
    KEEL_END
};

/* POST /dbtest/tx: in one transaction, inserts an item, streams the items
 * with that title back (it sees its own insert), then fails (division by
 * zero: everything is rolled back) or commits. */
static keel_error *in_tx(keel_req *req, const dbtest_tx_in *in, dbtest_tx_out *out)
{
    keel_error *err = keel_db_begin(req, &todo_ref);
    if (err)
        return err;
    keel_row *row;
    err = keel_db_query_row(req, &todo_ref, &row, "INSERT INTO todo_item (title) VALUES ($1) RETURNING id",
                            KEEL_ARG_TEXT(in->title));
    if (!err)
        err = keel_row_scan(row, "i", &out->id);
    keel_rows *rows = NULL;
    if (!err)
        err = keel_db_query(req, &todo_ref, &rows, "SELECT id FROM todo_item WHERE title = $1",
                            KEEL_ARG_TEXT(in->title));
    while (!err && !(err = keel_rows_next(rows, &row)) && row)
        out->seen++;
    keel_rows_close(rows);
    if (!err && in->fail)
        err = keel_db_exec(req, &todo_ref, NULL, "SELECT 1 / 0");
    if (err) {
        keel_db_rollback(req, &todo_ref);
        return err;
    }
    return keel_db_commit(req, &todo_ref);
}

/* GET /dbtest/hold/:n: a transaction that holds its connection n ms. */
static keel_error *hold(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_error *err = keel_db_begin(req, &todo_ref);
    if (!err)
        err = keel_db_exec(req, &todo_ref, NULL, "SELECT pg_sleep($1::int / 1000.0)", KEEL_ARG_INT64(in->n));
    if (err) {
        keel_db_rollback(req, &todo_ref);
        return err;
    }
    out->value = in->n;
    return keel_db_commit(req, &todo_ref);
}

/* GET /dbtest/count/:n: streams n rows of 100 bytes and counts them. */
static keel_error *count_rows(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &todo_ref, &rows,
                                    "SELECT g, repeat('x', 100) FROM generate_series(1, $1::int) g",
                                    KEEL_ARG_INT64(in->n));
    keel_row *row;
    while (!err && !(err = keel_rows_next(rows, &row)) && row)
        out->value++;
    keel_rows_close(rows);
    return err;
}

/* GET /dbtest/ro/:n: a read that may go to a replica (value: 1 when the
 * server that answered is in recovery, a replica), n echoed in backend. */
static keel_error *read_ro(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_row *row;
    bool replica = false;
    keel_error *err = keel_db_query_row_ro(req, &todo_ref, &row, "SELECT pg_is_in_recovery()");
    if (!err)
        err = keel_row_scan(row, "b", &replica);
    out->value = replica;
    out->backend = in->n;
    return err;
}

/* GET /dbtest/ro-stream/:n: n rows streamed from a replica when there is
 * one; value counts the rows a replica sent. */
static keel_error *stream_ro(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_rows *rows;
    keel_error *err = keel_db_query_ro(req, &todo_ref, &rows,
                                       "SELECT pg_is_in_recovery() FROM generate_series(1, $1::int)",
                                       KEEL_ARG_INT64(in->n));
    keel_row *row;
    while (!err && !(err = keel_rows_next(rows, &row)) && row) {
        bool replica = false;
        if (!(err = keel_row_scan(row, "b", &replica)))
            out->value += replica;
    }
    keel_rows_close(rows);
    return err;
}

/* GET /dbtest/ro-tx/:n: the same read inside a transaction, which lives on
 * the primary (value 0). */
static keel_error *read_ro_in_tx(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_error *err = keel_db_begin(req, &todo_ref);
    if (!err)
        err = read_ro(req, in, out);
    if (err) {
        keel_db_rollback(req, &todo_ref);
        return err;
    }
    return keel_db_commit(req, &todo_ref);
}


/* ---- how a row stream can end (test_pipeline's test_stream_ends) ----------- */

static const char *const big_query = "SELECT g, 'item ' || g FROM generate_series(1, 100000) g";

/* GET /dbtest/first/:n: reads the first n rows of a large result and
 * returns, leaving the stream to the end of the request. */
static keel_error *first_rows(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &todo_ref, &rows, big_query);
    keel_row *row;
    while (!err && out->value < in->n && !(err = keel_rows_next(rows, &row)) && row)
        out->value++;
    return err;
}

/* GET /dbtest/first-close/:n: the first n rows, then keel_rows_close (twice:
 * harmless) and another statement (backend: its answer, 7). */
static keel_error *first_rows_close(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &todo_ref, &rows, big_query);
    keel_row *row;
    while (!err && out->value < in->n && !(err = keel_rows_next(rows, &row)) && row)
        out->value++;
    keel_rows_close(rows);
    keel_rows_close(rows);
    if (!err)
        err = keel_db_query_row(req, &todo_ref, &row, "SELECT 7");
    return err ? err : keel_row_scan(row, "i", &out->backend);
}

/* GET /dbtest/stream-error/:n: a stream whose statement fails at row n
 * (division by zero); value counts the rows read before the error. */
static keel_error *stream_error(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &todo_ref, &rows,
                                    "SELECT 10 / ($1::int - g) FROM generate_series(1, 100000) g",
                                    KEEL_ARG_INT64(in->n));
    keel_row *row;
    while (!err && !(err = keel_rows_next(rows, &row)) && row)
        out->value++;
    keel_rows_close(rows); /* after the error: nothing left to do */
    return err;
}

/* GET /dbtest/tx-first/:n: in a transaction, the first n rows of a stream,
 * closed early; a statement after it; then commit (or, with n = 0,
 * nothing: the open stream and transaction are left to the request's end). */
static keel_error *tx_first_rows(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    keel_error *err = keel_db_begin(req, &todo_ref);
    keel_rows *rows = NULL;
    if (!err)
        err = keel_db_query(req, &todo_ref, &rows, big_query);
    keel_row *row;
    for (int64_t i = 0; !err && i < (in->n ? in->n : 5); i++)
        if (!(err = keel_rows_next(rows, &row)))
            out->value++;
    if (!err && in->n == 0)
        return NULL; /* abandoned inside the transaction */
    keel_rows_close(rows);
    if (!err)
        err = keel_db_query_row(req, &todo_ref, &row, "SELECT 8");
    if (!err)
        err = keel_row_scan(row, "i", &out->backend);
    if (err) {
        keel_db_rollback(req, &todo_ref);
        return err;
    }
    return keel_db_commit(req, &todo_ref);
}

typedef struct { const char **titles; size_t count; int64_t bytes_ok; } dbtest_titles;
static const keel_field dbtest_titles_fields[] = {
    KEEL_ARRAY_STRING(dbtest_titles, titles, count),
    KEEL_INT64(dbtest_titles, bytes_ok),
    KEEL_END
};

/* GET /dbtest/titles/:n: the obvious loop, keeping what keel_row_scan gives
 * (text and bytea) from every row of a stream; bytes_ok counts the rows
 * whose bytes still equal their title after the loop. */
static keel_error *titles(keel_req *req, const dbtest_num *in, dbtest_titles *out)
{
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &todo_ref, &rows,
                                    "SELECT 'item ' || g, convert_to('item ' || g, 'UTF8') "
                                    "FROM generate_series(1, $1::int) g",
                                    KEEL_ARG_INT64(in->n));
    if (err)
        return err;
    const uint8_t **bytes = keel_arena_calloc(keel_req_arena(req), (size_t)in->n + 1, sizeof *bytes);
    size_t *lens = keel_arena_calloc(keel_req_arena(req), (size_t)in->n + 1, sizeof *lens);
    out->titles = keel_arena_calloc(keel_req_arena(req), (size_t)in->n + 1, sizeof *out->titles);
    if (!bytes || !lens || !out->titles)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_row *row;
    while (!(err = keel_rows_next(rows, &row)) && row && out->count < (size_t)in->n) {
        if ((err = keel_row_scan(row, "tx", &out->titles[out->count], &bytes[out->count], &lens[out->count])))
            break;
        out->count++;
    }
    for (size_t i = 0; i < out->count; i++)
        out->bytes_ok += lens[i] == strlen(out->titles[i]) && memcmp(bytes[i], out->titles[i], lens[i]) == 0;
    return err;
}

/* The streamed body of /dbtest/export/:n: reads its rows from PostgreSQL
 * as libmicrohttpd asks for more. */
typedef struct export_state {
    keel_req *req;
    keel_rows *rows;
    int64_t n;
    bool in_tx;
    bool done;
    char pending[96];      /* a line that did not fit the last chunk */
    size_t pending_len;
} export_state;

static ssize_t export_fill(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    export_state *st = cls;
    size_t used = 0;
    if (st->pending_len) {
        if (st->pending_len > max)
            return KEEL_STREAM_ERROR;
        memcpy(buf, st->pending, st->pending_len);
        used = st->pending_len;
        st->pending_len = 0;
    }
    if (st->done)
        return used ? (ssize_t)used : KEEL_STREAM_END;
    if (!st->rows) { /* opened by the first call, outside the handler */
        keel_error *err = keel_db_query(st->req, &todo_ref, &st->rows,
                                        "SELECT g, 'item ' || g FROM generate_series(1, $1::int) g",
                                        KEEL_ARG_INT64(st->n));
        if (err) {
            keel_error_free(err);
            return KEEL_STREAM_ERROR;
        }
    }
    while (used + sizeof st->pending <= max) {
        keel_row *row;
        keel_error *err = keel_rows_next(st->rows, &row);
        if (err) {
            keel_error_free(err);
            return KEEL_STREAM_ERROR;
        }
        if (!row) {
            int k;
            if (st->in_tx) {
                err = keel_db_commit(st->req, &todo_ref);
                k = snprintf(buf + used, max - used, "commit: %s\n", err ? keel_code_name(err->code) : "ok");
                keel_error_free(err);
            } else {
                k = snprintf(buf + used, max - used, "end\n");
            }
            used += (size_t)k;
            st->done = true;
            break;
        }
        int64_t g;
        char title[32];
        size_t len;
        if ((err = keel_row_int64(row, 0, &g, NULL)) || (err = keel_row_copy_text(row, 1, title, sizeof title, &len, NULL))) {
            keel_error_free(err);
            return KEEL_STREAM_ERROR;
        }
        used += (size_t)snprintf(buf + used, max - used, "%lld,%s\n", (long long)g, title);
    }
    return (ssize_t)used;
}

/* GET /dbtest/export/:n?tx=1&lazy=1: n rows streamed as CSV lines through a
 * streamed response, then "end" (or, with tx, after an insert in a
 * transaction committed by the fill function, "commit: ok").  lazy: the
 * query is started by the first fill instead of the handler. */
static keel_error *export_rows(keel_req *req, keel_resp *resp)
{
    const char *n = keel_req_param(req, "n");
    export_state *st = keel_arena_calloc(keel_req_arena(req), 1, sizeof *st);
    if (!st)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    st->req = req;
    st->n = strtoll(n, NULL, 10);
    st->in_tx = keel_req_query(req, "tx") != NULL;
    keel_error *err = NULL;
    if (st->in_tx) {
        err = keel_db_begin(req, &todo_ref);
        if (!err)
            err = keel_db_exec(req, &todo_ref, NULL, "INSERT INTO todo_item (title) VALUES ('export-tx')");
    }
    if (!err && !keel_req_query(req, "lazy"))
        err = keel_db_query(req, &todo_ref, &st->rows,
                            "SELECT g, 'item ' || g FROM generate_series(1, $1::int) g", KEEL_ARG_INT64(st->n));
    if (err)
        return err;
    keel_resp_header(resp, "Content-Type", "text/csv");
    keel_resp_stream(resp, KEEL_SIZE_UNKNOWN, export_fill, st, NULL);
    return NULL;
}

/* GET /dbtest/secret-param/:n: a statement with a parameter bound from a
 * secret (value: its length), which a trace must never record. */
static keel_error *secret_param(keel_req *req, const dbtest_num *in, dbtest_out *out)
{
    (void)in;
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &todo_ref, &row, "SELECT length($1)",
                                        KEEL_ARG_TEXT(keel_secret("ADMIN_TOKEN")));
    return err ? err : keel_row_scan(row, "i", &out->value);
}

static const keel_service dbtest_service = {
    .name = "dbtest",
    .databases = (keel_sqldb *const[]){ &todo_ref, NULL },
    .secrets = (const char *const[]){ "ADMIN_TOKEN", NULL },
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/dbtest/secret-param/:n", secret_param, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/div/:n", divide, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/sleep/:n", sleep_ms, dbtest_num, dbtest_out),
        KEEL_TYPED("POST", "/dbtest/tx", in_tx, dbtest_tx_in, dbtest_tx_out),
        KEEL_TYPED("GET", "/dbtest/hold/:n", hold, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/count/:n", count_rows, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/ro/:n", read_ro, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/ro-stream/:n", stream_ro, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/ro-tx/:n", read_ro_in_tx, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/first/:n", first_rows, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/first-close/:n", first_rows_close, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/stream-error/:n", stream_error, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/tx-first/:n", tx_first_rows, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/titles/:n", titles, dbtest_num, dbtest_titles),
        KEEL_RAW("GET", "/dbtest/export/:n", export_rows),
        KEEL_ENDPOINT_END
    },
};

int main(int argc, char **argv)
{
    return keel_main(argc, argv, (const keel_service *const[]){
        &hello_service,
        &todo_service,
        &auth_service,
        &webhooks_service,
        &external_service,
        &legacy_service,
        &dbtest_service,
        NULL
    });
}

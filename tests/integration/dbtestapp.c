/* tests/integration/dbtestapp.c - the todo service plus a service of
 * database endpoints that the execution-model tests need (and the example's
 * webhook, external-database and legacy services, which test_observe traces): a statement that
 * fails for one input only, a slow statement, the backend that served a
 * statement (to see several requests share one pipelined connection), and a
 * transaction with a row stream inside that commits or rolls back, and
 * reads that may go to a read replica. */
#include <keel/keel.h>

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

static const keel_service dbtest_service = {
    .name = "dbtest",
    .databases = (keel_sqldb *const[]){ &todo_ref, NULL },
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/dbtest/div/:n", divide, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/sleep/:n", sleep_ms, dbtest_num, dbtest_out),
        KEEL_TYPED("POST", "/dbtest/tx", in_tx, dbtest_tx_in, dbtest_tx_out),
        KEEL_TYPED("GET", "/dbtest/hold/:n", hold, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/count/:n", count_rows, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/ro/:n", read_ro, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/ro-stream/:n", stream_ro, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/ro-tx/:n", read_ro_in_tx, dbtest_num, dbtest_out),
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

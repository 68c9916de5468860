/* tests/integration/dbtestapp.c - the todo service plus a service of
 * database endpoints that the execution-model tests need: a statement that
 * fails for one input only, a slow statement, and the backend that served a
 * statement (to see several requests share one pipelined connection). */
#include <keel/keel.h>

#include "services.h"

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

static const keel_service dbtest_service = {
    .name = "dbtest",
    .databases = (keel_sqldb *const[]){ &todo_ref, NULL },
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/dbtest/div/:n", divide, dbtest_num, dbtest_out),
        KEEL_TYPED("GET", "/dbtest/sleep/:n", sleep_ms, dbtest_num, dbtest_out),
        KEEL_ENDPOINT_END
    },
};

int main(int argc, char **argv)
{
    return keel_main(argc, argv, (const keel_service *const[]){
        &hello_service,
        &todo_service,
        &dbtest_service,
        NULL
    });
}

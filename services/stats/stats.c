/* services/stats - reads another service's database by name: the todo
 * database is declared (and migrated) by the todo service; this service only
 * refers to it, as Encore's SQLDatabase.named("todo") does.  Counts may be a
 * moment old, so they are read with keel_db_query_row_ro: from a read
 * replica when the infra config lists one. */
#include <keel/keel.h>

#include "services.h"

typedef struct { int64_t total; int64_t done; } todo_stats;

static const keel_field todo_stats_fields[] = {
    KEEL_INT64(todo_stats, total),
    KEEL_INT64(todo_stats, done),
    KEEL_END
};

static keel_sqldb todo_ref = KEEL_SQLDB_NAMED("todo");

/* GET /stats/todo */
static keel_error *todo_counts(keel_req *req, const keel_empty *in, todo_stats *out)
{
    (void)in;
    keel_row *row;
    keel_error *err = keel_db_query_row_ro(req, &todo_ref, &row,
        "SELECT count(*), count(*) FILTER (WHERE done) FROM todo_item");
    return err ? err : keel_row_scan(row, "ii", &out->total, &out->done);
}

const keel_service stats_service = {
    .name = "stats",
    .databases = (keel_sqldb *const[]){ &todo_ref, NULL },
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/stats/todo", todo_counts, keel_empty, todo_stats),
        KEEL_ENDPOINT_END
    },
};

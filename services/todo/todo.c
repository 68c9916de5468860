/* services/todo - a typed CRUD service on its own managed PostgreSQL
 * database, "todo", whose schema lives in migrations/todo/. */
#include <keel/keel.h>

#include <string.h>

#include "services.h"

typedef struct { const char *title; } todo_new;
typedef struct { int64_t id; } todo_ref;
typedef struct { int64_t id; const char *title; bool done; } todo_item;
typedef struct { int64_t limit; bool has_limit; int64_t after; bool has_after; } todo_page;
typedef struct { todo_item *items; size_t count; int64_t next_after; bool has_next_after; } todo_list;

static const keel_field todo_new_fields[] = {
    KEEL_STRING(todo_new, title),
    KEEL_END
};
static const keel_field todo_ref_fields[] = {
    KEEL_INT64(todo_ref, id, KEEL_IN_PATH),
    KEEL_END
};
static const keel_field todo_item_fields[] = {
    KEEL_INT64(todo_item, id),
    KEEL_STRING(todo_item, title),
    KEEL_BOOL(todo_item, done),
    KEEL_END
};
static const keel_field todo_page_fields[] = {
    KEEL_INT64_OPT(todo_page, limit, has_limit, KEEL_IN_QUERY),
    KEEL_INT64_OPT(todo_page, after, has_after, KEEL_IN_QUERY),
    KEEL_END
};
static const keel_field todo_list_fields[] = {
    KEEL_ARRAY(todo_list, items, count, todo_item, todo_item_fields),
    KEEL_INT64_OPT(todo_list, next_after, has_next_after),
    KEEL_END
};

/* A page of GET /todo: the default and the most a caller may ask for. */
#define TODO_PAGE 100
#define TODO_PAGE_MAX 1000

static keel_sqldb todo_db = KEEL_SQLDB("todo", "migrations/todo");

/* POST /todo {"title": "..."} */
static keel_error *create(keel_req *req, const todo_new *in, todo_item *out)
{
    if (!*in->title)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "title must not be empty");
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &todo_db, &row,
        "INSERT INTO todo_item (title) VALUES ($1) RETURNING id, title, done",
        KEEL_ARG_TEXT(in->title));
    return err ? err : keel_row_scan(row, "itb", &out->id, &out->title, &out->done);
}

/* Reads one item; no such item is 404 not_found. */
static keel_error *fetch(keel_req *req, int64_t id, todo_item *out)
{
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &todo_db, &row,
        "SELECT id, title, done FROM todo_item WHERE id = $1", KEEL_ARG_INT64(id));
    if (err && keel_db_no_rows(err)) {
        keel_error_free(err);
        return keel_error_new(KEEL_NOT_FOUND, "todo %lld not found", (long long)id);
    }
    return err ? err : keel_row_scan(row, "itb", &out->id, &out->title, &out->done);
}

/* GET /todo/:id */
static keel_error *get(keel_req *req, const todo_ref *in, todo_item *out)
{
    return fetch(req, in->id, out);
}

/* GET /todo?limit=N&after=ID: a page of items in id order, read from a
 * streamed query; next_after, when present, asks for the next page. */
static keel_error *list(keel_req *req, const todo_page *in, todo_list *out)
{
    int64_t limit = in->has_limit ? in->limit : TODO_PAGE;
    if (limit < 1 || limit > TODO_PAGE_MAX)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "field \"limit\": must be from 1 to %d", TODO_PAGE_MAX);
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &todo_db, &rows,
                                    "SELECT id, title, done FROM todo_item WHERE id > $1 ORDER BY id LIMIT $2",
                                    KEEL_ARG_INT64(in->has_after ? in->after : 0), KEEL_ARG_INT64(limit + 1));
    if (err)
        return err;
    size_t cap = 0;
    keel_row *row;
    while (!(err = keel_rows_next(rows, &row)) && row) {
        if (out->count == (size_t)limit) { /* one more than asked: there is a next page */
            out->next_after = out->items[out->count - 1].id;
            out->has_next_after = true;
            break;
        }
        if (!keel_arena_grow(keel_req_arena(req), (void **)&out->items, out->count, &cap, sizeof *out->items)) {
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        todo_item *item = &out->items[out->count];
        err = keel_row_scan(row, "itb", &item->id, &item->title, &item->done);
        if (err)
            break;
        out->count++;
    }
    keel_rows_close(rows);
    return err;
}

/* PUT /todo/:id/done */
static keel_error *mark_done(keel_req *req, const todo_ref *in, todo_item *out)
{
    int64_t changed = 0;
    keel_error *err = keel_db_exec(req, &todo_db, &changed, "UPDATE todo_item SET done = true WHERE id = $1",
                                   KEEL_ARG_INT64(in->id));
    if (err)
        return err;
    if (changed == 0)
        return keel_error_new(KEEL_NOT_FOUND, "todo %lld not found", (long long)in->id);
    return fetch(req, in->id, out);
}

/* DELETE /todo/:id */
static keel_error *remove_item(keel_req *req, const todo_ref *in, keel_empty *out)
{
    (void)out;
    int64_t changed = 0;
    keel_error *err = keel_db_exec(req, &todo_db, &changed, "DELETE FROM todo_item WHERE id = $1",
                                   KEEL_ARG_INT64(in->id));
    if (!err && changed == 0)
        err = keel_error_new(KEEL_NOT_FOUND, "todo %lld not found", (long long)in->id);
    return err;
}

/* DELETE /todo: clears the list; only for authenticated callers, and of
 * those only admins (the auth data says which). */
typedef struct { int64_t deleted; } todo_cleared;
static const keel_field todo_cleared_fields[] = KEEL_FIELDS(KEEL_INT64(todo_cleared, deleted));

typedef struct { const char *user_id; bool admin; } todo_caller; /* auth's caller, as it encodes it */

static keel_error *clear_all(keel_req *req, const keel_empty *in, todo_cleared *out)
{
    (void)in;
    const todo_caller *who = keel_req_auth(req);
    if (!who->admin)
        return keel_error_new(KEEL_PERMISSION_DENIED, "only an admin may clear the list (you are %s)", who->user_id);
    return keel_db_exec(req, &todo_db, &out->deleted, "DELETE FROM todo_item");
}

/* At most 50 new items a second per client, in bursts of 50 (the
 * KEEL_RATE_LIMIT_TODO_CREATE variable changes it). */
static keel_rate_limit create_limit = KEEL_RATE_LIMIT("todo_create", 50, 50, KEEL_RATE_BY_IP);
static const keel_middleware create_limiter = KEEL_RATE_LIMIT_MIDDLEWARE(&create_limit, KEEL_TAGS("rate_limited"));

const keel_service todo_service = {
    .name = "todo",
    .databases = (keel_sqldb *const[]){ &todo_db, NULL },
    .middleware = (const keel_middleware *const[]){ &create_limiter, NULL },
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED_TAGS("POST", "/todo", create, todo_new, todo_item, KEEL_TAGS("rate_limited")),
        KEEL_TYPED("GET", "/todo/:id", get, todo_ref, todo_item),
        KEEL_TYPED("GET", "/todo", list, todo_page, todo_list),
        KEEL_TYPED("PUT", "/todo/:id/done", mark_done, todo_ref, todo_item),
        KEEL_TYPED("DELETE", "/todo/:id", remove_item, todo_ref, keel_empty),
        KEEL_TYPED("DELETE", "/todo", clear_all, keel_empty, todo_cleared, KEEL_AUTH),
        KEEL_ENDPOINT_END
    },
    .docs = KEEL_DOCS({"create", "Adds an item, not done yet."},
                      {"get", "Returns one item."},
                      {"list", "A page of items, oldest first (100 unless limit says up to 1000)."},
                      {"todo_page.limit", "How many items at most (1 to 1000; default 100)."},
                      {"todo_page.after", "Only items after this id: the previous page's next_after."},
                      {"todo_list.next_after", "Present when there are more items: pass it as after."},
                      {"mark_done", "Marks an item done."},
                      {"remove_item", "Deletes one item."},
                      {"clear_all", "Deletes every item (admin token needed)."},
                      {"todo_new.title", "What is to be done."},
                      {"todo_item.id", "The item's number."},
                      {"todo_list.items.title", "What is to be done."}),
};

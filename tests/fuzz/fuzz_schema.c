/* fuzz_schema.c - libFuzzer target for decoding requests against field tables
 * (framework/lib/schema.c): JSON bodies and text values (path segments,
 * query values, headers).
 *
 * The first byte (modulo 4) picks the mode:
 *   0  the body against a table with every field type (the unit tests' todo:
 *      scalars, optional scalars, nested and optional objects, arrays of
 *      objects and of every scalar), body fields only, as a typed endpoint;
 *   1  the same with IN_ fields read from the body too (keel_call);
 *   2  the body against a recursive table (a tree of nodes);
 *   3  text: the second byte picks a field, the rest is split at '&' into
 *      values given one by one (repeated query keys append to arrays).
 * A body that decodes must encode to JSON that parses and decodes back to
 * the same values; a text value that decodes must encode to valid JSON. */
#include "keel/schema.h"
#include "fuzz.h"

#include <math.h>
#include <stdbool.h>

typedef struct owner {
    const char *name;
    const char *email;
} owner;

static const keel_field owner_fields[] = {
    KEEL_STRING(owner, name),
    KEEL_STRING(owner, email, KEEL_OPTIONAL),
    KEEL_END
};

typedef struct item {
    const char *title;
    bool done;
    int64_t qty;
    bool has_qty;
} item;

static const keel_field item_fields[] = {
    KEEL_STRING(item, title),
    KEEL_BOOL(item, done),
    KEEL_INT64_OPT(item, qty, has_qty),
    KEEL_END
};

typedef struct todo {
    int64_t todo_id;
    const char *auth;
    int64_t page;
    bool has_page;
    const char *title;
    int64_t priority;
    bool has_priority;
    double weight;
    bool has_weight;
    bool urgent;
    bool has_urgent;
    double score;
    bool archived;
    const char *note;
    owner owner;
    owner reviewer;
    bool has_reviewer;
    item *items;
    size_t n_items;
    const char **tags;
    size_t n_tags;
    int64_t *ids;
    size_t n_ids;
    double *weights;
    size_t n_weights;
    bool *flags;
    size_t n_flags;
} todo;

static const keel_field todo_fields[] = {
    KEEL_INT64(todo, todo_id, KEEL_IN_PATH),
    KEEL_HEADER_STRING(todo, auth, "Authorization"),
    KEEL_INT64_OPT(todo, page, has_page, KEEL_IN_QUERY),
    KEEL_STRING(todo, title),
    KEEL_INT64_OPT(todo, priority, has_priority),
    KEEL_DOUBLE_OPT(todo, weight, has_weight),
    KEEL_BOOL_OPT(todo, urgent, has_urgent),
    KEEL_DOUBLE(todo, score),
    KEEL_BOOL(todo, archived),
    KEEL_STRING(todo, note, KEEL_OPTIONAL),
    KEEL_OBJECT(todo, owner, owner_fields),
    KEEL_OBJECT_OPT(todo, reviewer, has_reviewer, owner_fields),
    KEEL_ARRAY(todo, items, n_items, item, item_fields),
    KEEL_ARRAY_STRING(todo, tags, n_tags, KEEL_OPTIONAL),
    KEEL_ARRAY_INT64(todo, ids, n_ids, KEEL_OPTIONAL),
    KEEL_ARRAY_DOUBLE(todo, weights, n_weights, KEEL_OPTIONAL),
    KEEL_ARRAY_BOOL(todo, flags, n_flags, KEEL_OPTIONAL),
    KEEL_END
};

typedef struct node {
    const char *name;
    struct node *children;
    size_t n_children;
} node;

extern const keel_field node_fields[];
const keel_field node_fields[] = {
    KEEL_STRING(node, name),
    KEEL_ARRAY(node, children, n_children, node, node_fields, KEEL_OPTIONAL),
    KEEL_END
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    keel_error *err = keel_schema_check(todo_fields, "fuzz todo");
    FUZZ_CHECK(!err, "todo table: %s", err->message);
    err = keel_schema_check(node_fields, "fuzz node");
    FUZZ_CHECK(!err, "node table: %s", err->message);
    return 0;
}

#define IN_FLAGS (KEEL_IN_PATH | KEEL_IN_QUERY | KEEL_IN_HEADER)

static bool same_value(keel_type t, const keel_field *table, const char *a, const char *b);

/* Whether two structs decoded from the same table hold the same body values
 * (IN_ fields are not part of a body round trip).  Doubles compare with ==,
 * so 0 and -0 are the same value, as they are to JSON. */
static bool same_table(const keel_field *fields, const char *a, const char *b, bool top)
{
    for (const keel_field *f = fields; f->type != KEEL_T_END; f++) {
        if (top && (f->flags & IN_FLAGS))
            continue;
        if (f->has_offset != KEEL_NO_OFFSET) {
            bool ha = *(const bool *)(const void *)(a + f->has_offset);
            bool hb = *(const bool *)(const void *)(b + f->has_offset);
            if (ha != hb)
                return false;
            if (!ha)
                continue;
        }
        if (f->type != KEEL_T_ARRAY) {
            if (!same_value(f->type, f->fields, a + f->offset, b + f->offset))
                return false;
            continue;
        }
        size_t na = *(const size_t *)(const void *)(a + f->count_offset);
        size_t nb = *(const size_t *)(const void *)(b + f->count_offset);
        const char *ea = *(const char *const *)(const void *)(a + f->offset);
        const char *eb = *(const char *const *)(const void *)(b + f->offset);
        if (na != nb)
            return false;
        for (size_t i = 0; i < na; i++)
            if (!same_value(f->elem_type, f->fields, ea + i * f->elem_size, eb + i * f->elem_size))
                return false;
    }
    return true;
}

static bool same_value(keel_type t, const keel_field *table, const char *a, const char *b)
{
    switch (t) {
    case KEEL_T_STRING: {
        const char *sa = *(const char *const *)(const void *)a, *sb = *(const char *const *)(const void *)b;
        return (!sa && !sb) || (sa && sb && strcmp(sa, sb) == 0);
    }
    case KEEL_T_INT64:
        return *(const int64_t *)(const void *)a == *(const int64_t *)(const void *)b;
    case KEEL_T_DOUBLE:
        return *(const double *)(const void *)a == *(const double *)(const void *)b;
    case KEEL_T_BOOL:
        return *(const bool *)(const void *)a == *(const bool *)(const void *)b;
    case KEEL_T_OBJECT:
        return same_table(table, a, b, false);
    case KEEL_T_ARRAY:
    case KEEL_T_END:
        break;
    }
    return false;
}

/* Decodes body into out (zeroed) the way a typed endpoint does. */
static keel_error *decode_body(const keel_field *fields, const char *body, size_t len, void *out, size_t size,
                               keel_arena *arena, bool body_only)
{
    memset(out, 0, size);
    json_t *obj;
    keel_error *err = keel_schema_parse_json(body, len, &obj);
    if (err) {
        FUZZ_CHECK(!obj && err->code == KEEL_INVALID_ARGUMENT, "parse error %s", err->message);
        return err;
    }
    FUZZ_CHECK(json_is_object(obj), "parsed body is not an object");
    err = keel_schema_decode(fields, obj, out, arena, body_only);
    json_decref(obj);
    return err;
}

/* Error messages reach the client: they must be valid UTF-8 (jansson checks)
 * and free of control bytes. */
static void check_message(const keel_error *err)
{
    json_t *s = json_string(err->message);
    FUZZ_CHECK(s != NULL, "error message is not valid UTF-8: %s", err->message);
    json_decref(s);
    for (const unsigned char *c = (const unsigned char *)err->message; *c; c++)
        FUZZ_CHECK(*c >= 0x20 && *c != 0x7f, "control byte 0x%02x in error message", *c);
}

static void body_round_trip(const keel_field *fields, size_t size, const char *body, size_t len, bool body_only)
{
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    char *first = calloc(1, size), *second = calloc(1, size);
    keel_error *err = decode_body(fields, body, len, first, size, &arena, body_only);
    if (err) {
        check_message(err);
        keel_error_free(err);
        goto done;
    }
    keel_buf b;
    keel_buf_init(&b, &arena);
    keel_schema_encode(fields, first, &b);
    FUZZ_CHECK(!b.failed && b.data, "encoding failed");
    err = decode_body(fields, b.data, b.len, second, size, &arena, true);
    FUZZ_CHECK(!err, "the encoding of a decoded body does not decode: %s\n  body: %.*s\n  encoded: %.*s",
               err->message, (int)len, body, (int)b.len, b.data);
    FUZZ_CHECK(same_table(fields, first, second, true), "round trip changed a value\n  body: %.*s\n  encoded: %.*s",
               (int)len, body, (int)b.len, b.data);
    keel_buf b2;
    keel_buf_init(&b2, &arena);
    keel_schema_encode(fields, second, &b2);
    json_t *j1 = json_loadb(b.data, b.len, 0, NULL), *j2 = json_loadb(b2.data, b2.len, 0, NULL);
    FUZZ_CHECK(j1 && j2, "encoder output is not JSON");
    json_decref(j1);
    json_decref(j2);
done:
    free(first);
    free(second);
    keel_arena_release(&arena);
}

static void text_values(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t nfields = sizeof todo_fields / sizeof *todo_fields - 1;
    const keel_field *f = &todo_fields[data[0] % nfields];
    data++;
    size--;
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    todo t;
    memset(&t, 0, sizeof t);
    size_t start = 0, appended = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '&')
            continue;
        size_t before = f->type == KEEL_T_ARRAY ? *(size_t *)(void *)((char *)&t + f->count_offset) : 0;
        keel_error *err = keel_schema_decode_text(f, (const char *)data + start, i - start, &t, &arena);
        if (err) {
            FUZZ_CHECK(err->code == KEEL_INVALID_ARGUMENT, "text error %s", err->message);
            check_message(err);
            keel_error_free(err);
        } else if (f->type == KEEL_T_ARRAY) {
            size_t after = *(size_t *)(void *)((char *)&t + f->count_offset);
            FUZZ_CHECK(after == before + 1, "append went from %zu to %zu elements", before, after);
            appended++;
        }
        start = i + 1;
    }
    if (f->type == KEEL_T_ARRAY)
        FUZZ_CHECK(t.n_items + t.n_tags + t.n_ids + t.n_weights + t.n_flags == appended,
                   "array holds another count than was appended");
    keel_buf b;
    keel_buf_init(&b, &arena);
    keel_schema_encode(todo_fields, &t, &b);
    FUZZ_CHECK(!b.failed, "encoding failed");
    json_t *j = json_loadb(b.data, b.len, 0, NULL);
    FUZZ_CHECK(j && json_is_object(j), "encoding of text values is not JSON: %.*s", (int)b.len, b.data);
    json_decref(j);
    keel_arena_release(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: body_round_trip(todo_fields, sizeof(todo), body, len, true); break;
    case 1: body_round_trip(todo_fields, sizeof(todo), body, len, false); break;
    case 2: body_round_trip(node_fields, sizeof(node), body, len, true); break;
    default: text_values(data + 1, size - 1); break;
    }
    return 0;
}

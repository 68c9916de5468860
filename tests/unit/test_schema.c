/* test_schema.c - field tables: check, parse, decode (JSON and text), encode,
 * describe. */
#include "tap.h"
#include "keel/schema.h"
#include "http/schema_check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- realistic tables ---------------------------------------------------- */

typedef struct owner {
    const char *name;
    const char *email; /* optional */
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
    int64_t todo_id;          /* path */
    const char *auth;         /* header */
    int64_t page;             /* query, optional */
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
    const char *note;         /* optional string */
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

/* A recursive table: a tree node whose children are nodes. */
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

/* A small all-scalars struct for encoder tests. */
typedef struct scalars {
    const char *s;
    int64_t i;
    double d;
    bool b;
} scalars;

static const keel_field scalars_fields[] = {
    KEEL_STRING(scalars, s),
    KEEL_INT64(scalars, i),
    KEEL_DOUBLE(scalars, d),
    KEEL_BOOL(scalars, b),
    KEEL_END
};

typedef struct one_string { const char *s; } one_string;
static const keel_field one_string_fields[] = { KEEL_STRING(one_string, s), KEEL_END };

typedef struct one_double { double d; } one_double;
static const keel_field one_double_fields[] = { KEEL_DOUBLE(one_double, d), KEEL_END };

/* ---- helpers ------------------------------------------------------------- */

static keel_arena arena;

#define NO_ERR(expr, ...) do { \
        keel_error *e_ = (expr); \
        ok(e_ == NULL, __VA_ARGS__); \
        if (e_) diag("unexpected error: %s", e_->message); \
        keel_error_free(e_); \
    } while (0)

#define ERR_IS(expr, want, ...) do { \
        keel_error *e_ = (expr); \
        is_str(e_ ? e_->message : NULL, (want), __VA_ARGS__); \
        keel_error_free(e_); \
    } while (0)

#define ERR_LIKE(expr, needle, ...) do { \
        keel_error *e_ = (expr); \
        like(e_ ? e_->message : NULL, (needle), __VA_ARGS__); \
        keel_error_free(e_); \
    } while (0)

/* Parses json and decodes it into out (zeroed first). */
static keel_error *decode_json(const keel_field *fields, const char *json, void *out, size_t size,
                               bool body_only)
{
    json_t *obj;
    memset(out, 0, size);
    keel_error *err = keel_schema_parse_json(json, strlen(json), &obj);
    if (err)
        return err;
    err = keel_schema_decode(fields, obj, out, &arena, body_only);
    json_decref(obj);
    return err;
}

/* Decodes into a fresh todo. */
static keel_error *decode_todo(const char *json, todo *t)
{
    return decode_json(todo_fields, json, t, sizeof *t, true);
}

/* The JSON encoding of in, in the arena. */
static const char *encode(const keel_field *fields, const void *in)
{
    keel_buf b;
    keel_buf_init(&b, &arena);
    keel_schema_encode(fields, in, &b);
    return b.failed ? NULL : b.data;
}

static const char *encode_string_value(const char *s)
{
    one_string v = {s};
    return encode(one_string_fields, &v);
}

static const char *encode_double_value(double d)
{
    one_double v = {d};
    return encode(one_double_fields, &v);
}

static const keel_field *field_named(const keel_field *fields, const char *name)
{
    for (; fields->type != KEEL_T_END; fields++)
        if (strcmp(fields->name, name) == 0)
            return fields;
    return NULL;
}

static keel_error *text(const char *name, const char *value, todo *t)
{
    return keel_schema_decode_text(field_named(todo_fields, name), value, strlen(value), t, &arena);
}

static const char valid_todo[] =
    "{\"title\":\"Buy milk\",\"priority\":3,\"weight\":1.5,\"urgent\":true,\"score\":2,"
    "\"archived\":false,\"owner\":{\"name\":\"ann\",\"email\":\"a@x.io\",\"extra\":[1]},"
    "\"items\":[{\"title\":\"a\",\"done\":true,\"qty\":2},{\"title\":\"b\",\"done\":false}],"
    "\"tags\":[\"home\",\"shop\"],\"ids\":[9223372036854775807,-9223372036854775808],"
    "\"weights\":[0.5,1],\"flags\":[true,false,true],\"unknown\":{\"x\":null},"
    "\"todo_id\":\"ignored\",\"Authorization\":5}";

/* ---- tests --------------------------------------------------------------- */

static void test_type_names(void)
{
    is_str(keel_type_name(KEEL_T_STRING), "string", "type name string");
    is_str(keel_type_name(KEEL_T_INT64), "int64", "type name int64");
    is_str(keel_type_name(KEEL_T_DOUBLE), "double", "type name double");
    is_str(keel_type_name(KEEL_T_BOOL), "bool", "type name bool");
    is_str(keel_type_name(KEEL_T_OBJECT), "object", "type name object");
    is_str(keel_type_name(KEEL_T_ARRAY), "array", "type name array");
    is_str(keel_type_name((keel_type)99), "unknown", "type name out of range");
    ok(keel_empty_fields[0].type == KEEL_T_END && keel_empty_fields[0].name == NULL,
       "keel_empty_fields is just KEEL_END");
}

static void test_check(void)
{
    NO_ERR(keel_schema_check(todo_fields, "todo.create request"), "check accepts the todo table");
    NO_ERR(keel_schema_check(keel_empty_fields, "empty"), "check accepts the empty table");
    NO_ERR(keel_schema_check(node_fields, "tree"), "check terminates on a recursive table");

    static const keel_field no_name[] = {
        KEEL_STRING(owner, name),
        {.name = NULL, .type = KEEL_T_STRING, .has_offset = KEEL_NO_OFFSET, .count_offset = KEEL_NO_OFFSET},
        KEEL_END
    };
    ERR_IS(keel_schema_check(no_name, "t.get request"),
           "t.get request: field \"#1\": has no name", "check: NULL name");

    static const keel_field dup[] = { KEEL_STRING(owner, name), KEEL_STRING(owner, email), KEEL_STRING(owner, name), KEEL_END };
    ERR_IS(keel_schema_check(dup, "dup.post request"),
           "dup.post request: field \"name\": duplicate name (or the table has no KEEL_END and this is a field "
           "of the table after it)", "check: duplicate name, with the other way it arises");

    static const keel_field obj_no_table[] = {
        {.name = "o", .type = KEEL_T_OBJECT, .has_offset = KEEL_NO_OFFSET, .count_offset = KEEL_NO_OFFSET},
        KEEL_END
    };
    ERR_LIKE(keel_schema_check(obj_no_table, "x"), "field \"o\": object field has no member table",
             "check: object without table");

    static const keel_field arr_no_table[] = {
        {.name = "a", .type = KEEL_T_ARRAY, .elem_type = KEEL_T_OBJECT, .elem_size = 8,
         .has_offset = KEEL_NO_OFFSET, .count_offset = 8},
        KEEL_END
    };
    ERR_LIKE(keel_schema_check(arr_no_table, "x"), "field \"a\": array of objects has no member table",
             "check: array of objects without table");

    static const keel_field arr_bad_elem[] = {
        {.name = "a", .type = KEEL_T_ARRAY, .elem_type = KEEL_T_ARRAY, .elem_size = 8,
         .has_offset = KEEL_NO_OFFSET, .count_offset = 8},
        KEEL_END
    };
    ERR_LIKE(keel_schema_check(arr_bad_elem, "x"), "invalid element type", "check: array of arrays");

    static const keel_field obj_in_query[] = { KEEL_OBJECT(todo, owner, owner_fields, KEEL_IN_QUERY), KEEL_END };
    ERR_LIKE(keel_schema_check(obj_in_query, "x"), "field \"owner\": an object cannot come from",
             "check: object from the query string");

    static const keel_field arr_in_header[] = { KEEL_ARRAY(todo, items, n_items, item, item_fields, KEEL_IN_HEADER), KEEL_END };
    ERR_LIKE(keel_schema_check(arr_in_header, "x"), "field \"items\": an array of objects cannot come from",
             "check: array of objects from a header");

    static const keel_field two_in[] = { KEEL_INT64(todo, todo_id, KEEL_IN_PATH | KEEL_IN_QUERY), KEEL_END };
    ERR_LIKE(keel_schema_check(two_in, "x"), "more than one KEEL_IN_ flag", "check: two IN_ flags");

    static const keel_field bad_item[] = { KEEL_STRING(item, title), KEEL_STRING(item, title), KEEL_END };
    static const keel_field nested_bad[] = { KEEL_ARRAY(todo, items, n_items, item, bad_item), KEEL_END };
    ERR_IS(keel_schema_check(nested_bad, "todo.put request"),
           "todo.put request: field \"items[].title\": duplicate name (or the table has no KEEL_END and this is "
           "a field of the table after it)", "check: nested path in message");

    static const keel_field inner_bad[] = { KEEL_STRING(owner, name, KEEL_IN_HEADER), KEEL_END };
    static const keel_field outer[] = { KEEL_OBJECT(todo, owner, inner_bad), KEEL_END };
    ERR_LIKE(keel_schema_check(outer, "x"), "field \"owner.name\": KEEL_IN_ flags are only allowed",
             "check: IN_ flag in a nested table");

    ERR_LIKE(keel_schema_check(NULL, "nil"), "nil", "check: NULL table");
}

/* Tables without KEEL_END, and KEEL_FIELDS which cannot lack it. */
typedef struct person { const char *name; const char *email; } person;
typedef struct team { person lead; const char *title; } team;
/* person's table without KEEL_END, followed in memory by team's. */
static const keel_field person_then_team[] = {
    KEEL_STRING(person, name),
    KEEL_STRING(person, email),
    KEEL_OBJECT(team, lead, person_then_team),
    KEEL_STRING(team, title),
    KEEL_END
};

static void test_no_end(void)
{
    const keel_field *person_table = person_then_team, *team_table = &person_then_team[2];
    const keel_field *known[] = {person_table, team_table};
    keel__schema_sort_tables(known, 2);
    ERR_IS(keel__schema_check_known(team_table, "teams.get response", "team_fields", known, 2),
           "teams.get response: the member table of field \"lead\" has no KEEL_END: after its field \"email\" "
           "it runs on into another table; end it with KEEL_END, or write it as KEEL_FIELDS(...), which adds "
           "the end", "a nested table without KEEL_END that runs into a known table is named by its field");
    ERR_LIKE(keel__schema_check_known(person_table, "people.get request", "person_fields", known, 2),
             "people.get request: the field table person_fields has no KEEL_END: after its field \"email\"",
             "a top-level one is named by its table");
    const keel_field *reversed[] = {team_table, person_table};
    keel__schema_sort_tables(reversed, 2);
    ok(reversed[0] == known[0] && reversed[1] == known[1], "tables sort by address");
    NO_ERR(keel__schema_check_known(todo_fields, "todo.create request", "todo_fields", known, 2),
           "a sound table passes with known tables given");
    const keel_field *self[] = {todo_fields};
    NO_ERR(keel__schema_check_known(todo_fields, "todo.create request", "todo_fields", self, 1),
           "a table is not taken for running into itself");

    static const keel_field written[] = KEEL_FIELDS(
        KEEL_STRING(owner, name),
        KEEL_STRING(owner, email, KEEL_OPTIONAL)
    );
    ok(sizeof written == sizeof owner_fields && memcmp(written, owner_fields, sizeof written) == 0,
       "KEEL_FIELDS(...) is the same table as the fields and KEEL_END");
    static const keel_field none[] = KEEL_FIELDS();
    ok(sizeof none == sizeof(keel_field) && none[0].type == KEEL_T_END && none[0].name == NULL,
       "KEEL_FIELDS() is the empty table");
    NO_ERR(keel_schema_check(written, "owner"), "a KEEL_FIELDS table passes the check");
}

/* The field macros' compile-time type checks leave the values as they were. */
typedef struct consts { const int64_t *ids; size_t n_ids; char *s; const item *items; size_t n_items; } consts;

static void test_macro_values(void)
{
    const keel_field i = KEEL_INT64_OPT(todo, priority, has_priority);
    ok(i.offset == offsetof(todo, priority) && i.has_offset == offsetof(todo, has_priority) &&
           i.type == KEEL_T_INT64 && i.flags == KEEL_OPTIONAL, "KEEL_INT64_OPT: offsets, type and flags");
    const keel_field a = KEEL_ARRAY(todo, items, n_items, item, item_fields);
    ok(a.offset == offsetof(todo, items) && a.count_offset == offsetof(todo, n_items) &&
           a.elem_size == sizeof(item) && a.elem_type == KEEL_T_OBJECT && a.fields == item_fields,
       "KEEL_ARRAY: offsets, element size and table");
    const keel_field as = KEEL_ARRAY_STRING(todo, tags, n_tags);
    ok(as.elem_size == sizeof(const char *) && as.elem_type == KEEL_T_STRING, "KEEL_ARRAY_STRING: element size");
    const keel_field h = KEEL_HEADER_STRING(todo, auth, "Authorization", KEEL_OPTIONAL);
    ok(h.offset == offsetof(todo, auth) && h.flags == (KEEL_IN_HEADER | KEEL_OPTIONAL) &&
           strcmp(h.name, "Authorization") == 0, "KEEL_HEADER_STRING: offset, flags and name");
    /* const elements and a char * string are accepted (the checks would
     * stop this file compiling otherwise). */
    const keel_field c[] = KEEL_FIELDS(KEEL_ARRAY_INT64(consts, ids, n_ids), KEEL_STRING(consts, s),
                                       KEEL_ARRAY(consts, items, n_items, item, item_fields));
    ok(c[0].offset == offsetof(consts, ids) && c[1].offset == offsetof(consts, s) &&
           c[2].offset == offsetof(consts, items) && c[3].type == KEEL_T_END,
       "const element pointers and char * strings are accepted");
}

static void test_parse_json(void)
{
    json_t *v = NULL;
    NO_ERR(keel_schema_parse_json("{\"a\":1}", 7, &v), "parse: valid object");
    ok(json_is_object(v) && json_integer_value(json_object_get(v, "a")) == 1, "parse: object content");
    json_decref(v);

    NO_ERR(keel_schema_parse_json(NULL, 0, &v), "parse: empty body accepted");
    ok(json_is_object(v) && json_object_size(v) == 0, "parse: empty body is {}");
    json_decref(v);

    keel_error *err = keel_schema_parse_json("{\n  \"a\": 1,\n  \"b\": ]\n}", 21, &v);
    like(err ? err->message : NULL, "invalid JSON at line 3, column", "parse: malformed names line 3");
    ok(err && err->code == KEEL_INVALID_ARGUMENT, "parse: malformed is invalid_argument");
    ok(v == NULL, "parse: *out is NULL on error");
    keel_error_free(err);

    ERR_LIKE(keel_schema_parse_json("{\"a\":\"\xff\"}", 8, &v), "invalid JSON at line 1, column",
             "parse: invalid UTF-8 rejected");
    err = keel_schema_parse_json("{\"a\xc3\x28\":1}", 10, &v);
    json_t *msg = err ? json_string(err->message) : NULL;
    ok(msg != NULL, "parse: error message is valid UTF-8 itself");
    json_decref(msg);
    keel_error_free(err);
    ERR_IS(keel_schema_parse_json("[1,2]", 5, &v), "request body must be a JSON object", "parse: array body");
    ERR_IS(keel_schema_parse_json("42", 2, &v), "request body must be a JSON object", "parse: number body");
    ERR_IS(keel_schema_parse_json("{\"a\":1}\0", 8, &v),
           "invalid JSON at line 1, column 8: NUL byte in request body", "parse: raw NUL byte");
    ERR_LIKE(keel_schema_parse_json("{\"a\":1,\"a\":2}", 13, &v), "duplicate", "parse: duplicate keys rejected");
    ERR_LIKE(keel_schema_parse_json("{} x", 4, &v), "invalid JSON at line 1", "parse: trailing garbage");
    ERR_LIKE(keel_schema_parse_json("{\"a\":9223372036854775808}", 25, &v), "invalid JSON",
             "parse: integer beyond int64");
    ERR_LIKE(keel_schema_parse_json("{\"a\":1", 6, &v), "invalid JSON", "parse: truncated body");
}

static void test_decode_valid(void)
{
    todo t;
    NO_ERR(decode_todo(valid_todo, &t), "decode: valid todo");
    is_str(t.title, "Buy milk", "decode: string");
    ok(t.has_priority && t.priority == 3, "decode: optional int64 with has flag");
    ok(t.has_weight && t.weight == 1.5, "decode: optional double");
    ok(t.has_urgent && t.urgent, "decode: optional bool");
    ok(t.score == 2.0, "decode: integer accepted for double");
    ok(!t.archived, "decode: bool false");
    ok(t.note == NULL, "decode: missing optional string stays NULL");
    is_str(t.owner.name, "ann", "decode: nested object string");
    is_str(t.owner.email, "a@x.io", "decode: nested optional string");
    ok(!t.has_reviewer && t.reviewer.name == NULL, "decode: missing optional object has flag false");
    is_int(t.n_items, 2, "decode: array of objects count");
    ok(t.items && strcmp(t.items[1].title, "b") == 0 && !t.items[1].done, "decode: array element fields");
    ok(t.items[0].has_qty && t.items[0].qty == 2 && !t.items[1].has_qty, "decode: has flags in array elements");
    ok(t.n_tags == 2 && strcmp(t.tags[0], "home") == 0 && strcmp(t.tags[1], "shop") == 0, "decode: string array");
    ok(t.n_ids == 2 && t.ids[0] == INT64_MAX && t.ids[1] == INT64_MIN, "decode: int64 array at the limits");
    ok(t.n_weights == 2 && t.weights[0] == 0.5 && t.weights[1] == 1.0, "decode: double array");
    ok(t.n_flags == 3 && t.flags[0] && !t.flags[1] && t.flags[2], "decode: bool array");
    ok(t.todo_id == 0 && t.auth == NULL, "decode: body_only skips path and header fields");

    NO_ERR(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"},"
                       "\"reviewer\":{\"name\":\"r\"},\"items\":[],\"priority\":null,\"tags\":null}", &t),
           "decode: minimal todo");
    ok(t.has_reviewer && strcmp(t.reviewer.name, "r") == 0, "decode: optional object sets has flag");
    ok(t.n_items == 0 && t.items == NULL, "decode: empty array");
    ok(!t.has_priority, "decode: null optional scalar is absent");
    ok(t.tags == NULL && t.n_tags == 0, "decode: null optional array is absent");

    todo full;
    ERR_IS(decode_json(todo_fields, valid_todo, &full, sizeof full, false),
           "field \"todo_id\": expected integer, got string", "decode: body_only false reads IN_ fields");

    keel_empty e;
    NO_ERR(decode_json(keel_empty_fields, "{\"a\":1}", &e, sizeof e, true), "decode: empty table ignores everything");

    json_t *arr = json_array();
    ERR_IS(keel_schema_decode(todo_fields, arr, &t, &arena, true), "request body must be a JSON object",
           "decode: non-object rejected");
    json_decref(arr);
}

static void test_decode_errors(void)
{
    todo t;
    const char *base = "\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"},\"items\":[]";
    char json[512];

    snprintf(json, sizeof json, "{%s}", base);
    ERR_IS(decode_todo(json, &t), "missing required field \"title\"", "decode: missing required top-level");
    snprintf(json, sizeof json, "{\"title\":null,%s}", base);
    ERR_IS(decode_todo(json, &t), "missing required field \"title\"", "decode: null for required");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{},\"items\":[]}", &t),
           "missing required field \"owner.name\"", "decode: missing nested field");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"},\"items\":["
                       "{\"title\":\"a\",\"done\":true},{\"title\":\"b\",\"done\":true},{\"done\":true}]}", &t),
           "missing required field \"items[2].title\"", "decode: missing field in array element");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"}}", &t),
           "missing required field \"items\"", "decode: missing required array");

    snprintf(json, sizeof json, "{\"title\":7,%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"title\": expected string, got number", "decode: number for string");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"priority\":\"3\",%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"priority\": expected integer, got string", "decode: string for int64");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"priority\":1.5,%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"priority\": expected integer, got number", "decode: real for int64");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"priority\":2.0,%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"priority\": expected integer, got number", "decode: 2.0 for int64");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"weight\":true,%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"weight\": expected number, got boolean", "decode: bool for double");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"urgent\":1,%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"urgent\": expected boolean, got number", "decode: number for bool");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":[],\"items\":[]}", &t),
           "field \"owner\": expected object, got array", "decode: array for object");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"},\"items\":{}}", &t),
           "field \"items\": expected array, got object", "decode: object for array");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"},\"items\":[{\"title\":\"a\",\"done\":true},5]}", &t),
           "field \"items[1]\": expected object, got number", "decode: wrong element type");
    ERR_IS(decode_todo("{\"title\":\"t\",\"score\":1,\"archived\":true,\"owner\":{\"name\":\"n\"},\"items\":[{\"title\":\"a\",\"done\":\"yes\"}]}", &t),
           "field \"items[0].done\": expected boolean, got string", "decode: wrong type inside element");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"tags\":[\"a\",true],%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"tags[1]\": expected string, got boolean", "decode: string array element");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"ids\":[1,2.5],%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"ids[1]\": expected integer, got number", "decode: int64 array element");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"weights\":[null],%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"weights[0]\": expected number, got null", "decode: null array element");
    snprintf(json, sizeof json, "{\"title\":{},%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"title\": expected string, got object", "decode: object for string");
    snprintf(json, sizeof json, "{\"title\":\"a\\u0000b\",%s}", base);
    ERR_IS(decode_todo(json, &t), "field \"title\": string contains a NUL character", "decode: NUL in string");
    snprintf(json, sizeof json, "{\"title\":\"t\",\"unused\":\"a\\u0000b\",%s}", base);
    NO_ERR(decode_todo(json, &t), "decode: NUL in an unknown field is ignored");

    /* Deep nesting: the path is capped, never overflows. */
    char deep[40000];
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(deep + n, "{\"name\":\"x\",\"children\":[");
    n += (size_t)sprintf(deep + n, "{\"name\":5}");
    for (int i = 0; i < 1000; i++)
        n += (size_t)sprintf(deep + n, "]}");
    node root;
    keel_error *err = decode_json(node_fields, deep, &root, sizeof root, true);
    ok(err && strlen(err->message) < 300, "decode: deep path message is capped");
    like(err ? err->message : NULL, "field \"children[0].children[0]", "decode: deep path starts at the root");
    like(err ? err->message : NULL, "...\": expected string, got number", "decode: truncated path ends in ...");
    keel_error_free(err);
}

static void test_decode_text(void)
{
    todo t;
    memset(&t, 0, sizeof t);
    const keel_field *title = field_named(todo_fields, "title");
    NO_ERR(keel_schema_decode_text(title, "hello world", 5, &t, &arena), "text: string");
    is_str(t.title, "hello", "text: string uses len, not NUL");
    ERR_IS(keel_schema_decode_text(title, "a\0b", 3, &t, &arena),
           "field \"title\": string contains a NUL character", "text: NUL in string");
    ERR_IS(text("Authorization", "caf\xc3", &t), "field \"Authorization\": invalid UTF-8", "text: truncated UTF-8");
    ERR_IS(text("Authorization", "\xc0\xaf", &t), "field \"Authorization\": invalid UTF-8", "text: overlong UTF-8");
    NO_ERR(text("Authorization", "Bearer \xe2\x82\xac", &t), "text: valid UTF-8 header");
    NO_ERR(keel_schema_decode_text(title, "", 0, &t, &arena), "text: empty string");
    is_str(t.title, "", "text: empty string value");

    NO_ERR(text("todo_id", "42", &t), "text: int64");
    is_int(t.todo_id, 42, "text: int64 value");
    NO_ERR(text("todo_id", "-7", &t), "text: negative int64");
    is_int(t.todo_id, -7, "text: negative value");
    NO_ERR(text("todo_id", "9223372036854775807", &t), "text: INT64_MAX");
    ok(t.todo_id == INT64_MAX, "text: INT64_MAX value");
    NO_ERR(text("todo_id", "-9223372036854775808", &t), "text: INT64_MIN");
    ok(t.todo_id == INT64_MIN, "text: INT64_MIN value");
    NO_ERR(text("todo_id", "-0", &t), "text: -0");
    is_int(t.todo_id, 0, "text: -0 is 0");
    ERR_IS(text("todo_id", "9223372036854775808", &t), "field \"todo_id\": integer out of range", "text: above INT64_MAX");
    ERR_IS(text("todo_id", "-9223372036854775809", &t), "field \"todo_id\": integer out of range", "text: below INT64_MIN");
    ERR_IS(text("todo_id", "99999999999999999999999", &t), "field \"todo_id\": integer out of range", "text: far out of range");
    ERR_IS(text("todo_id", "abc", &t), "field \"todo_id\": expected integer, got \"abc\"", "text: int64 garbage");
    ERR_IS(text("todo_id", "12x", &t), "field \"todo_id\": expected integer, got \"12x\"", "text: int64 trailing garbage");
    ERR_IS(text("todo_id", " 1", &t), "field \"todo_id\": expected integer, got \" 1\"", "text: int64 leading space");
    ERR_IS(text("todo_id", "", &t), "field \"todo_id\": expected integer, got \"\"", "text: empty int64");
    ERR_IS(text("todo_id", "-", &t), "field \"todo_id\": expected integer, got \"-\"", "text: lone minus");
    ERR_IS(text("todo_id", "+1", &t), "field \"todo_id\": expected integer, got \"+1\"", "text: plus sign");
    ERR_IS(text("todo_id", "1.0", &t), "field \"todo_id\": expected integer, got \"1.0\"", "text: decimal for int64");
    ERR_IS(text("todo_id", "9\n\xff", &t), "field \"todo_id\": expected integer, got \"9??\"", "text: unsafe bytes quoted as ?");
    NO_ERR(keel_schema_decode_text(field_named(todo_fields, "todo_id"), "123456", 3, &t, &arena), "text: int64 within len");
    is_int(t.todo_id, 123, "text: int64 stops at len");
    memset(&t, 0, sizeof t);
    NO_ERR(text("page", "2", &t), "text: optional int64");
    ok(t.has_page && t.page == 2, "text: sets the has flag");

    NO_ERR(text("score", "1.5", &t), "text: double");
    ok(t.score == 1.5, "text: double value");
    NO_ERR(text("score", "-2e3", &t), "text: double exponent");
    ok(t.score == -2000.0, "text: double exponent value");
    NO_ERR(keel_schema_decode_text(field_named(todo_fields, "score"), "0.25xyz", 4, &t, &arena), "text: double within len");
    ok(t.score == 0.25, "text: double stops at len");
    ERR_IS(text("score", "abc", &t), "field \"score\": expected number, got \"abc\"", "text: double garbage");
    ERR_IS(text("score", "inf", &t), "field \"score\": expected number, got \"inf\"", "text: inf rejected");
    ERR_IS(text("score", "nan", &t), "field \"score\": expected number, got \"nan\"", "text: nan rejected");
    ERR_IS(text("score", "1e999", &t), "field \"score\": number out of range", "text: double overflow");
    ERR_IS(text("score", "1.5.", &t), "field \"score\": expected number, got \"1.5.\"", "text: double trailing garbage");
    ERR_IS(text("score", " 1", &t), "field \"score\": expected number, got \" 1\"", "text: double leading space");
    ERR_IS(text("score", "", &t), "field \"score\": expected number, got \"\"", "text: empty double");
    ERR_IS(text("score", "0x10", &t), "field \"score\": expected number, got \"0x10\"", "text: hex rejected");

    NO_ERR(text("archived", "true", &t), "text: bool true");
    ok(t.archived, "text: true value");
    NO_ERR(text("archived", "0", &t), "text: bool 0");
    ok(!t.archived, "text: 0 value");
    NO_ERR(text("archived", "1", &t), "text: bool 1");
    ok(t.archived, "text: 1 value");
    NO_ERR(text("archived", "false", &t), "text: bool false");
    ok(!t.archived, "text: false value");
    ERR_IS(text("archived", "yes", &t), "field \"archived\": expected boolean, got \"yes\"", "text: yes rejected");
    ERR_IS(text("archived", "TRUE", &t), "field \"archived\": expected boolean, got \"TRUE\"", "text: TRUE rejected");
    NO_ERR(text("urgent", "true", &t), "text: optional bool");
    ok(t.has_urgent && t.urgent, "text: optional bool has flag");

    static const char *const words[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    bool all_ok = true;
    for (size_t i = 0; i < 9; i++) {
        keel_error *err = text("tags", words[i], &t);
        all_ok = all_ok && !err;
        keel_error_free(err);
    }
    ok(all_ok, "text: nine appends to a string array");
    is_int(t.n_tags, 9, "text: string array count");
    ok(strcmp(t.tags[0], "a") == 0 && strcmp(t.tags[4], "e") == 0 && strcmp(t.tags[8], "i") == 0,
       "text: string array keeps every element");
    NO_ERR(text("ids", "5", &t), "text: int64 array append");
    NO_ERR(text("ids", "-6", &t), "text: int64 array second append");
    ok(t.n_ids == 2 && t.ids[0] == 5 && t.ids[1] == -6, "text: int64 array values");
    ERR_IS(text("ids", "x", &t), "field \"ids\": expected integer, got \"x\"", "text: bad array element");
    is_int(t.n_ids, 2, "text: failed append leaves count alone");
    NO_ERR(text("flags", "1", &t), "text: bool array append");
    NO_ERR(text("weights", "0.5", &t), "text: double array append");
    ok(t.n_flags == 1 && t.flags[0] && t.n_weights == 1 && t.weights[0] == 0.5, "text: bool and double arrays");

    /* Appending after a JSON-decoded array keeps the earlier elements. */
    todo d;
    NO_ERR(decode_todo(valid_todo, &d), "text: decode before append");
    NO_ERR(text("tags", "more", &d), "text: append to a decoded array");
    ok(d.n_tags == 3 && strcmp(d.tags[0], "home") == 0 && strcmp(d.tags[2], "more") == 0,
       "text: decoded array grows");

    ERR_LIKE(text("owner", "x", &t), "field \"owner\": an object cannot be decoded from text", "text: object rejected");
    ERR_LIKE(text("items", "x", &t), "field \"items\": an array of objects cannot", "text: array of objects rejected");
}

static void test_encode_scalars(void)
{
    scalars s = {"x", 1, 0.5, true};
    is_str(encode(scalars_fields, &s), "{\"s\":\"x\",\"i\":1,\"d\":0.5,\"b\":true}", "encode: scalars, no spaces");
    s.s = NULL;
    s.b = false;
    is_str(encode(scalars_fields, &s), "{\"s\":null,\"i\":1,\"d\":0.5,\"b\":false}", "encode: required NULL string is null");

    s.s = "";
    s.i = INT64_MIN;
    is_str(encode(scalars_fields, &s), "{\"s\":\"\",\"i\":-9223372036854775808,\"d\":0.5,\"b\":false}", "encode: INT64_MIN");
    s.i = INT64_MAX;
    is_str(encode(scalars_fields, &s), "{\"s\":\"\",\"i\":9223372036854775807,\"d\":0.5,\"b\":false}", "encode: INT64_MAX");
    s.i = 0;
    like(encode(scalars_fields, &s), "\"i\":0,", "encode: zero");
    s.i = -1;
    like(encode(scalars_fields, &s), "\"i\":-1,", "encode: minus one");
    s.i = 1234567890;
    like(encode(scalars_fields, &s), "\"i\":1234567890,", "encode: even digit count");
    s.i = 100;
    like(encode(scalars_fields, &s), "\"i\":100,", "encode: odd digit count");

    is_str(encode_double_value(0.1), "{\"d\":0.1}", "encode: 0.1");
    is_str(encode_double_value(1e300), "{\"d\":1e+300}", "encode: 1e300");
    is_str(encode_double_value(NAN), "{\"d\":null}", "encode: NaN is null");
    is_str(encode_double_value(-INFINITY), "{\"d\":null}", "encode: -inf is null");
    is_str(encode_double_value(-0.0), "{\"d\":-0}", "encode: -0.0");
    is_str(encode_double_value(3.0), "{\"d\":3}", "encode: integral double");
    is_str(encode_double_value(-42.0), "{\"d\":-42}", "encode: negative integral double");
    is_str(encode_double_value(999999999999999.0), "{\"d\":999999999999999}", "encode: 15-digit integral double");
    is_str(encode_double_value(1e15), "{\"d\":1e+15}", "encode: 1e15 uses an exponent");
    is_str(encode_double_value(0.1 + 0.2), "{\"d\":0.30000000000000004}", "encode: 17 digits when needed");
    const char *sub = encode_double_value(5e-324);
    ok(sub && strtod(sub + 5, NULL) == 5e-324, "encode: smallest subnormal reads back");
    is_str(encode_double_value(1e21), "{\"d\":1e+21}", "encode: large integral double");
    const double samples[] = {1.0 / 3, 2.0 / 3, 1e-7, 123456.789, 9007199254740993.0, 1.7976931348623157e308};
    bool round_trips = true;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        const char *j = encode_double_value(samples[i]);
        round_trips = round_trips && j && strtod(j + 5, NULL) == samples[i];
    }
    ok(round_trips, "encode: doubles read back exactly");
}

static void test_encode_strings(void)
{
    is_str(encode_string_value("a\"b\\c\n\t\r\b\f"), "{\"s\":\"a\\\"b\\\\c\\n\\t\\r\\b\\f\"}", "encode: short escapes");
    is_str(encode_string_value("\x01\x1f x"), "{\"s\":\"\\u0001\\u001f x\"}", "encode: control characters as \\u00XX");
    is_str(encode_string_value("del\x7f/"), "{\"s\":\"del\x7f/\"}", "encode: DEL and / pass through");
    is_str(encode_string_value("h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e"), "{\"s\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e\"}",
           "encode: valid UTF-8 unchanged");
    is_str(encode_string_value("a\xff" "b"), "{\"s\":\"a\xef\xbf\xbd" "b\"}", "encode: invalid byte replaced");
    is_str(encode_string_value("\xc0\xaf"), "{\"s\":\"\xef\xbf\xbd\xef\xbf\xbd\"}", "encode: overlong replaced");
    is_str(encode_string_value("\xe0\x80\xaf"), "{\"s\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}", "encode: 3-byte overlong replaced");
    is_str(encode_string_value("\xed\xa0\x80"), "{\"s\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}", "encode: surrogate replaced");
    is_str(encode_string_value("\xf4\x90\x80\x80"), "{\"s\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}",
           "encode: above U+10FFFF replaced");
    is_str(encode_string_value("ab\xe2\x82"), "{\"s\":\"ab\xef\xbf\xbd\"}", "encode: truncated sequence is one U+FFFD");
    is_str(encode_string_value("\xe2\x82x"), "{\"s\":\"\xef\xbf\xbdx\"}", "encode: interrupted sequence");

    char longer[200];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    longer[77] = '"';
    longer[150] = '\n';
    char want[220];
    snprintf(want, sizeof want, "{\"s\":\"%.77s\\\"%.72s\\n%.48s\"}", longer, longer, longer);
    is_str(encode_string_value(longer), want, "encode: long string with escapes in the middle");

    /* Random bytes: the output is always valid JSON, and strings that are
     * valid UTF-8 read back unchanged. */
    uint32_t seed = 12345;
    int bad_json = 0, changed = 0, valid_inputs = 0;
    for (int round = 0; round < 2000; round++) {
        char in[48];
        size_t n = (size_t)(round % 47);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned char c = (unsigned char)(seed >> 16);
            in[i] = (char)(c == 0 ? 'z' : (round & 1) ? c : (c & 0x7F) | (c & 0x80 && i % 3 ? 0x80 : 0));
        }
        in[n] = '\0';
        const char *out = encode_string_value(in);
        json_t *obj = out ? json_loads(out, 0, NULL) : NULL;
        if (!obj) {
            bad_json++;
            continue;
        }
        json_t *probe = json_string(in);
        if (probe) {
            valid_inputs++;
            if (strcmp(json_string_value(json_object_get(obj, "s")), in) != 0)
                changed++;
        }
        json_decref(probe);
        json_decref(obj);
    }
    is_int(bad_json, 0, "encode: random bytes always give valid JSON");
    is_int(changed, 0, "encode: valid UTF-8 among random strings is unchanged");
    ok(valid_inputs > 100, "encode: the random strings include valid UTF-8 (%d)", valid_inputs);

    /* The output must always be valid JSON that jansson reads back. */
    const char *j = encode_string_value("x\xff\x01\"\xed\xa0\x80y");
    json_error_t jerr;
    json_t *v = json_loads(j, 0, &jerr);
    ok(v != NULL, "encode: replaced output is valid JSON");
    json_decref(v);
}

static void test_encode_structs(void)
{
    item items[2] = {{"a", true, 5, true}, {"q\"", false, 0, false}};
    const char *tags[] = {"x", NULL};
    int64_t ids[] = {1, -2};
    double weights[] = {0.5, NAN};
    bool flags[] = {true};
    todo t = {.todo_id = 7, .auth = "secret", .page = 2, .has_page = true, .title = "T",
              .priority = 9, .has_priority = false, .weight = 2, .has_weight = true,
              .urgent = true, .has_urgent = false, .score = 1.25, .archived = false,
              .note = NULL, .owner = {"o", NULL}, .has_reviewer = false,
              .items = items, .n_items = 2, .tags = tags, .n_tags = 2, .ids = ids, .n_ids = 2,
              .weights = weights, .n_weights = 2, .flags = flags, .n_flags = 1};
    is_str(encode(todo_fields, &t),
           "{\"todo_id\":7,\"page\":2,\"title\":\"T\",\"weight\":2,\"score\":1.25,\"archived\":false,"
           "\"owner\":{\"name\":\"o\"},\"items\":[{\"title\":\"a\",\"done\":true,\"qty\":5},"
           "{\"title\":\"q\\\"\",\"done\":false}],\"tags\":[\"x\",null],\"ids\":[1,-2],"
           "\"weights\":[0.5,null],\"flags\":[true]}",
           "encode: full struct, absent optionals and header omitted");

    todo e = {.title = "", .note = "n", .owner = {"", "e"}, .reviewer = {"r", NULL}, .has_reviewer = true};
    is_str(encode(todo_fields, &e),
           "{\"todo_id\":0,\"title\":\"\",\"score\":0,\"archived\":false,\"note\":\"n\","
           "\"owner\":{\"name\":\"\",\"email\":\"e\"},\"reviewer\":{\"name\":\"r\"},\"items\":[],"
           "\"tags\":[],\"ids\":[],\"weights\":[],\"flags\":[]}",
           "encode: NULL arrays are [], present optional object and string emitted");

    keel_empty empty = {0};
    is_str(encode(keel_empty_fields, &empty), "{}", "encode: empty struct");

    node leaves[2] = {{"l1", NULL, 0}, {"l2", NULL, 0}};
    node root = {"root", leaves, 2};
    is_str(encode(node_fields, &root),
           "{\"name\":\"root\",\"children\":[{\"name\":\"l1\",\"children\":[]},{\"name\":\"l2\",\"children\":[]}]}",
           "encode: recursive table");

    /* Round trip: encode, parse, decode, compare (no nulls in arrays: the
     * decoder rightly refuses them). */
    const char *tags2[] = {"x", "y\u2028"};
    double weights2[] = {0.5, -1e-300};
    t.tags = tags2;
    t.weights = weights2;
    const char *json = encode(todo_fields, &t);
    todo back;
    NO_ERR(decode_todo(json, &back), "round trip: decodes");
    ok(strcmp(back.title, "T") == 0 && !back.has_priority && back.has_weight && back.weight == 2.0 &&
       back.score == 1.25 && !back.has_urgent, "round trip: scalars");
    ok(back.n_items == 2 && strcmp(back.items[1].title, "q\"") == 0 && back.items[0].has_qty &&
       back.items[0].qty == 5 && !back.items[1].has_qty, "round trip: array of objects");
    ok(back.n_ids == 2 && back.ids[1] == -2 && back.n_flags == 1 && back.flags[0] &&
       back.n_tags == 2 && strcmp(back.tags[1], "y\u2028") == 0 && back.weights[1] == -1e-300,
       "round trip: scalar arrays");
    ok(back.todo_id == 0 && back.auth == NULL, "round trip: IN_ fields not read from the body");

    scalars s = {"\xc3\xa9\n\"", INT64_MIN, 0.1 + 0.2, true}, s2;
    NO_ERR(decode_json(scalars_fields, encode(scalars_fields, &s), &s2, sizeof s2, true), "round trip scalars: decodes");
    ok(strcmp(s2.s, s.s) == 0 && s2.i == INT64_MIN && s2.d == s.d && s2.b, "round trip scalars: identical");
}

static void test_describe(void)
{
    json_t *d = keel_schema_describe(todo_fields);
    ok(json_is_array(d) && json_array_size(d) == 17, "describe: one entry per field");
    json_t *first = json_array_get(d, 0);
    is_str(json_string_value(json_object_get(first, "name")), "todo_id", "describe: name");
    is_str(json_string_value(json_object_get(first, "type")), "int64", "describe: type");
    is_str(json_string_value(json_object_get(first, "in")), "path", "describe: in path");
    ok(json_is_false(json_object_get(first, "optional")), "describe: required");
    is_str(json_string_value(json_object_get(json_array_get(d, 1), "name")), "Authorization", "describe: header name");
    is_str(json_string_value(json_object_get(json_array_get(d, 1), "in")), "header", "describe: in header");
    is_str(json_string_value(json_object_get(json_array_get(d, 2), "in")), "query", "describe: in query");
    is_str(json_string_value(json_object_get(json_array_get(d, 3), "in")), "body", "describe: in body");
    ok(json_is_true(json_object_get(json_array_get(d, 4), "optional")), "describe: optional");
    json_t *own = json_array_get(d, 10);
    ok(json_array_size(json_object_get(own, "fields")) == 2, "describe: object has fields");
    json_t *items = json_object_get(json_array_get(d, 12), "items");
    is_str(json_string_value(json_object_get(items, "type")), "object", "describe: array item type");
    ok(json_array_size(json_object_get(items, "fields")) == 3, "describe: array of objects has fields");
    json_t *tags = json_object_get(json_array_get(d, 13), "items");
    ok(json_is_string(json_object_get(tags, "type")) && !json_object_get(tags, "fields"),
       "describe: scalar array items have no fields");
    char *dump = json_dumps(json_array_get(d, 13), JSON_COMPACT | JSON_PRESERVE_ORDER);
    is_str(dump, "{\"name\":\"tags\",\"type\":\"array\",\"optional\":true,\"in\":\"body\",\"items\":{\"type\":\"string\"}}",
           "describe: exact shape");
    free(dump);
    json_decref(d);

    d = keel_schema_describe(node_fields);
    json_t *kids = json_object_get(json_array_get(d, 1), "items");
    is_str(json_string_value(json_object_get(kids, "type")), "object", "describe: recursive array item type");
    ok(json_is_true(json_object_get(kids, "recursive")) && !json_object_get(kids, "fields"),
       "describe: recursion marked instead of described again");
    json_decref(d);

    d = keel_schema_describe(keel_empty_fields);
    ok(json_is_array(d) && json_array_size(d) == 0, "describe: empty table");
    json_decref(d);
}

int main(void)
{
    plan(243);
    keel_arena_init(&arena, NULL, 0);
    test_type_names();
    test_check();
    test_no_end();
    test_macro_values();
    test_parse_json();
    test_decode_valid();
    test_decode_errors();
    test_decode_text();
    test_encode_scalars();
    test_encode_strings();
    test_encode_structs();
    test_describe();
    keel_arena_release(&arena);
    return tap_done();
}

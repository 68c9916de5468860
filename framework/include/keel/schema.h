/* keel/schema.h - field tables: the single description of a typed endpoint's
 * request and response structs.
 *
 * A table is an array of keel_field ending with KEEL_END; KEEL_FIELDS(...)
 * writes that end itself.  The same table drives decoding (JSON body, path,
 * query string, headers), validation errors that name the field path
 * ("items[2].title"), encoding the response, and the app model.
 *
 *     typedef struct { const char *title; int64_t priority; bool has_priority; } todo_new;
 *     static const keel_field todo_new_fields[] = KEEL_FIELDS(
 *         KEEL_STRING(todo_new, title),
 *         KEEL_INT64_OPT(todo_new, priority, has_priority)
 *     );
 *
 * The older spelling, a braced list whose last entry is KEEL_END, still works,
 * but a table that forgets KEEL_END has no end: everything reading it runs on
 * into whatever lies next in memory.  Start-up reports "... has no KEEL_END"
 * when that is another field table of the app, but what lies next is up to
 * the compiler and linker, so the omission can also show as a confusing error
 * about some other table's field, or a crash.  KEEL_FIELDS cannot forget it.
 *
 * Each field macro checks at compile time that the member has the C type the
 * macro stands for, e.g. "KEEL_INT64(todo_new, title): member title of todo_new
 * must be int64_t".
 *
 * Fields are required unless declared optional (KEEL_OPTIONAL flag, or the *_OPT
 * macros for scalars, which set a presence flag).  Unknown JSON fields are
 * ignored.  Strings are NUL-terminated, valid UTF-8 and live in the request's
 * arena.  Arrays are a pointer plus a size_t count member. */
#ifndef KEEL_SCHEMA_H
#define KEEL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "arena.h"
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef enum keel_type {
    KEEL_T_END = 0,
    KEEL_T_STRING,  /* const char *            JSON string  */
    KEEL_T_INT64,   /* int64_t                 JSON integer */
    KEEL_T_DOUBLE,  /* double                  JSON number  */
    KEEL_T_BOOL,    /* bool                    JSON boolean */
    KEEL_T_OBJECT,  /* an embedded struct      JSON object  */
    KEEL_T_ARRAY    /* T *member + size_t count JSON array  */
} keel_type;

/* Field flags.  Without an IN_ flag a request field comes from the JSON body,
 * or from the query string for GET, HEAD and DELETE. */
enum {
    KEEL_OPTIONAL  = 1u << 0,
    KEEL_IN_PATH   = 1u << 1, /* a ":name" or "*name" segment with the same name */
    KEEL_IN_QUERY  = 1u << 2, /* ?name=value; arrays take repeated keys */
    KEEL_IN_HEADER = 1u << 3  /* the header named by .name */
};

#define KEEL_NO_OFFSET ((size_t)-1)

typedef struct keel_field {
    const char *name;               /* JSON, query or header name */
    keel_type type;
    unsigned flags;
    size_t offset;                  /* of the member in its struct */
    size_t has_offset;              /* bool set when present, or KEEL_NO_OFFSET */
    const struct keel_field *fields;/* OBJECT, or ARRAY of OBJECT: member table */
    keel_type elem_type;            /* ARRAY: element type */
    size_t elem_size;               /* ARRAY: sizeof one element */
    size_t count_offset;            /* ARRAY: offset of the size_t count */
} keel_field;

/* Compile-time checks that a member has the C type a macro expects.
 * KEEL__ASSERT(cond, msg) is an integer constant expression of value 0 that
 * fails compilation with msg when cond is false: a _Static_assert is a
 * declaration, so it is wrapped in a struct inside sizeof to be usable inside
 * the initializers of field tables (a bare _Generic without a matching
 * association only says "not compatible with any association").  The selector
 * is the member's address, so its type is matched exactly (an array member is
 * not taken for a pointer, a const member not for a writable one). */
#define KEEL__ASSERT(cond, msg) (0 * sizeof(struct { _Static_assert(cond, msg); int keel__ok; }))
#define KEEL__IS(T, m, ctype) _Generic(&((T *)0)->m, ctype *: 1, default: 0)
/* The offset of member m of T, which must have type ctype; macro and role
 * name the declaration in the message ("KEEL_INT64(todo, title)", "member"). */
#define KEEL__OFF(T, m, ctype, macro, role) \
    (KEEL__ASSERT(KEEL__IS(T, m, ctype), macro ": " role " " #m " of " #T " must be " #ctype) + offsetof(T, m))
#define KEEL__STROFF(T, m, macro) \
    (KEEL__ASSERT(KEEL__IS(T, m, const char *) || KEEL__IS(T, m, char *), \
                  macro ": member " #m " of " #T " must be const char * (or char *)") + offsetof(T, m))
/* An array member: a pointer to elements of type ET (const or not); want
 * spells that type for the message. */
#define KEEL__ARROFF(T, m, ET, macro, want) \
    (KEEL__ASSERT(KEEL__IS(T, m, ET *) || KEEL__IS(T, m, const ET *), \
                  macro ": member " #m " of " #T " must be " want) + offsetof(T, m))
/* Optional trailing flag arguments.  Uses __VA_OPT__ (C23, provided in C11
 * mode by GCC >= 8 and clang >= 6). */
#define KEEL__FLAGS(...) (0u __VA_OPT__(| (__VA_ARGS__)))

#define KEEL__SCALAR(T, m, jname, typ, off, has, ...) \
    { .name = (jname), .type = (typ), .flags = KEEL__FLAGS(__VA_ARGS__), .offset = (off), \
      .has_offset = (has), .fields = NULL, .elem_type = KEEL_T_END, .elem_size = 0, \
      .count_offset = KEEL_NO_OFFSET }

/* Scalars.  The optional trailing argument holds flags: KEEL_OPTIONAL, KEEL_IN_*. */
#define KEEL_STRING(T, m, ...) KEEL__SCALAR(T, m, #m, KEEL_T_STRING, \
    KEEL__STROFF(T, m, "KEEL_STRING(" #T ", " #m ")"), KEEL_NO_OFFSET, __VA_ARGS__)
#define KEEL_INT64(T, m, ...)  KEEL__SCALAR(T, m, #m, KEEL_T_INT64, \
    KEEL__OFF(T, m, int64_t, "KEEL_INT64(" #T ", " #m ")", "member"), KEEL_NO_OFFSET, __VA_ARGS__)
#define KEEL_DOUBLE(T, m, ...) KEEL__SCALAR(T, m, #m, KEEL_T_DOUBLE, \
    KEEL__OFF(T, m, double, "KEEL_DOUBLE(" #T ", " #m ")", "member"), KEEL_NO_OFFSET, __VA_ARGS__)
#define KEEL_BOOL(T, m, ...)   KEEL__SCALAR(T, m, #m, KEEL_T_BOOL, \
    KEEL__OFF(T, m, bool, "KEEL_BOOL(" #T ", " #m ")", "member"), KEEL_NO_OFFSET, __VA_ARGS__)

/* Optional scalars: `has` is a bool member set to true when the value was
 * given (decoding) and consulted to omit the field (encoding). */
#define KEEL__SCALAR_OPT(T, m, has, typ, ctype, macro, ...) \
    KEEL__SCALAR(T, m, #m, typ, KEEL__OFF(T, m, ctype, macro "(" #T ", " #m ", " #has ")", "member"), \
                 KEEL__OFF(T, has, bool, macro "(" #T ", " #m ", " #has ")", "presence flag"), \
                 KEEL_OPTIONAL __VA_OPT__(| (__VA_ARGS__)))
#define KEEL_INT64_OPT(T, m, has, ...)  KEEL__SCALAR_OPT(T, m, has, KEEL_T_INT64, int64_t, "KEEL_INT64_OPT", __VA_ARGS__)
#define KEEL_DOUBLE_OPT(T, m, has, ...) KEEL__SCALAR_OPT(T, m, has, KEEL_T_DOUBLE, double, "KEEL_DOUBLE_OPT", __VA_ARGS__)
#define KEEL_BOOL_OPT(T, m, has, ...)   KEEL__SCALAR_OPT(T, m, has, KEEL_T_BOOL, bool, "KEEL_BOOL_OPT", __VA_ARGS__)

/* A string taken from a request header (or set as a response header). */
#define KEEL_HEADER_STRING(T, m, header, ...) KEEL__SCALAR(T, m, header, KEEL_T_STRING, \
    KEEL__STROFF(T, m, "KEEL_HEADER_STRING(" #T ", " #m ", " #header ")"), KEEL_NO_OFFSET, \
    KEEL_IN_HEADER __VA_OPT__(| (__VA_ARGS__)))

/* An embedded struct member described by its own table. */
#define KEEL_OBJECT(T, m, table, ...) \
    { .name = #m, .type = KEEL_T_OBJECT, .flags = KEEL__FLAGS(__VA_ARGS__), .offset = offsetof(T, m), \
      .has_offset = KEEL_NO_OFFSET, .fields = (table), .elem_type = KEEL_T_END, .elem_size = 0, \
      .count_offset = KEEL_NO_OFFSET }
#define KEEL_OBJECT_OPT(T, m, has, table, ...) \
    { .name = #m, .type = KEEL_T_OBJECT, .flags = KEEL_OPTIONAL __VA_OPT__(| (__VA_ARGS__)), .offset = offsetof(T, m), \
      .has_offset = KEEL__OFF(T, has, bool, "KEEL_OBJECT_OPT(" #T ", " #m ", " #has ")", "presence flag"), \
      .fields = (table), .elem_type = KEEL_T_END, .elem_size = 0, .count_offset = KEEL_NO_OFFSET }

/* Arrays: member m is a pointer to the elements (of type ET, const or not),
 * member count a size_t. */
#define KEEL__ARRAY(T, m, count, ET, want, et, table, macro, ...) \
    { .name = #m, .type = KEEL_T_ARRAY, .flags = KEEL__FLAGS(__VA_ARGS__), \
      .offset = KEEL__ARROFF(T, m, ET, macro "(" #T ", " #m ", " #count ")", want), \
      .has_offset = KEEL_NO_OFFSET, .fields = (table), .elem_type = (et), .elem_size = sizeof(ET), \
      .count_offset = KEEL__OFF(T, count, size_t, macro "(" #T ", " #m ", " #count ")", "count member") }
#define KEEL_ARRAY(T, m, count, ET, table, ...) \
    KEEL__ARRAY(T, m, count, ET, #ET " * (or const " #ET " *)", KEEL_T_OBJECT, table, "KEEL_ARRAY", __VA_ARGS__)
#define KEEL_ARRAY_STRING(T, m, count, ...) KEEL__ARRAY(T, m, count, char *, "const char ** (or char **)", \
    KEEL_T_STRING, NULL, "KEEL_ARRAY_STRING", __VA_ARGS__)
#define KEEL_ARRAY_INT64(T, m, count, ...) KEEL__ARRAY(T, m, count, int64_t, "int64_t * (or const int64_t *)", \
    KEEL_T_INT64, NULL, "KEEL_ARRAY_INT64", __VA_ARGS__)
#define KEEL_ARRAY_DOUBLE(T, m, count, ...) KEEL__ARRAY(T, m, count, double, "double * (or const double *)", \
    KEEL_T_DOUBLE, NULL, "KEEL_ARRAY_DOUBLE", __VA_ARGS__)
#define KEEL_ARRAY_BOOL(T, m, count, ...) KEEL__ARRAY(T, m, count, bool, "bool * (or const bool *)", \
    KEEL_T_BOOL, NULL, "KEEL_ARRAY_BOOL", __VA_ARGS__)

#define KEEL_END { .name = NULL, .type = KEEL_T_END, .flags = 0, .offset = 0, .has_offset = KEEL_NO_OFFSET, \
                   .fields = NULL, .elem_type = KEEL_T_END, .elem_size = 0, .count_offset = KEEL_NO_OFFSET }

/* The initializer of a whole field table, KEEL_END included:
 *     static const keel_field todo_new_fields[] = KEEL_FIELDS(KEEL_STRING(todo_new, title));
 * No comma after the last field; KEEL_FIELDS() is the empty table. */
#define KEEL_FIELDS(...) { __VA_ARGS__ __VA_OPT__(,) KEEL_END }

/* An empty request or response. */
typedef struct keel_empty { char unused_; } keel_empty;
extern const keel_field keel_empty_fields[];

/* Checks a table once at start-up: names present and unique, nested tables
 * present, flags consistent (a nested object cannot come from a header...).
 * what names the table in the message ("hello.get request").  Returns
 * invalid_argument naming the field, or NULL. */
keel_error *keel_schema_check(const keel_field *fields, const char *what);

/* Parses a request body as JSON.  Malformed input gives invalid_argument
 * "invalid JSON at line L, column C: reason"; invalid UTF-8 is rejected the same
 * way; a body that is not an object gives "request body must be a JSON object".
 * An empty body (len 0) parses as {}.  On success *out is a new reference the
 * caller releases with json_decref. */
keel_error *keel_schema_parse_json(const char *body, size_t len, json_t **out);

/* Decodes the members of the JSON object obj that the table describes into the
 * struct at out (which the caller zeroed).  Only fields without IN_ flags are
 * read when body_only is true.  Strings and arrays are copied into arena.  A
 * missing required field, a wrong type or an out-of-range number gives
 * invalid_argument naming the field path, e.g.
 *     field "items[2].title": expected string, got number
 *     missing required field "items[2].title"  */
keel_error *keel_schema_decode(const keel_field *fields, const json_t *obj, void *out,
                               keel_arena *arena, bool body_only);

/* Decodes one text value (a path segment, query value or header) into field f
 * of the struct at out.  For an ARRAY of scalars it appends one element (the
 * caller passes repeated query keys one by one).  Integers must be whole and in
 * range, doubles finite, booleans "true", "false", "1" or "0".  Errors as above. */
keel_error *keel_schema_decode_text(const keel_field *f, const char *text, size_t len,
                                    void *out, keel_arena *arena);

/* Appends the JSON encoding of the struct at in to buf: absent optional fields
 * are omitted, NULL strings and non-finite doubles are null, invalid UTF-8 in a
 * string is replaced by U+FFFD.  Fields marked IN_HEADER are skipped. */
void keel_schema_encode(const keel_field *fields, const void *in, keel_buf *buf);

/* False when field f of the struct at in is an optional field left out: its
 * presence flag is false, or it is an optional string that is NULL.  The
 * encoder omits such fields; so does a client building a query string. */
bool keel_schema_present(const keel_field *f, const void *in);

/* Describes a table for the app model: [{"name":..,"type":..,"optional":..,
 * "in":"body|path|query|header","fields":[..]|"items":..}].  New reference. */
json_t *keel_schema_describe(const keel_field *fields);

/* "string", "int64", ... */
const char *keel_type_name(keel_type t);

#pragma GCC visibility pop

#endif

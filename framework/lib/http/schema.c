/* schema.c - field tables at run time.
 *
 * This file owns everything a keel_field table drives: the start-up check of
 * a table, parsing a request body into JSON, decoding JSON values and text
 * values (path segments, query values, headers) into the described struct,
 * encoding a struct back to compact JSON (the hot path of every typed
 * response), and describing a table for the app model.
 *
 * Decisions worth knowing:
 *  - Bodies are parsed with JSON_REJECT_DUPLICATES: {"admin":false,"admin":true}
 *    means different things to different parsers, so it is refused outright.
 *  - Bodies are parsed with JSON_ALLOW_NUL so that a "\u0000" inside a string
 *    reaches the decoder, which rejects it naming the field (a C string would
 *    silently truncate there).  Strings in fields the table does not describe
 *    are never looked at.  A raw NUL byte in the body is rejected up front.
 *  - Numbers that do not fit an int64 (or a finite double) fail in jansson's
 *    parser, so they come back as "invalid JSON at line L, column C: ...".
 *  - Field paths in messages ("items[2].title") are only rendered when an
 *    error is reported; they are capped at PATH_TEXT_MAX bytes and end in
 *    "..." when truncated.
 *  - Arrays this file allocates always have room for next_pow2(count)
 *    elements, which lets keel_schema_decode_text append in amortised O(1)
 *    (repeated query keys cannot make decoding quadratic).
 *  - Doubles are printed with the shortest of %.15g, %.16g and %.17g that
 *    reads back to the same value; this assumes the "C" LC_NUMERIC locale.
 *  - IN_ flags are only meaningful on a top-level table; keel_schema_check
 *    rejects them inside nested tables. */
#include "keel/schema.h"
#include "json_text.h"
#include "schema_check.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN_FLAGS (KEEL_IN_PATH | KEEL_IN_QUERY | KEEL_IN_HEADER)
#define KNOWN_FLAGS (KEEL_OPTIONAL | IN_FLAGS)

const keel_field keel_empty_fields[] = {KEEL_END};

const char *keel_type_name(keel_type t)
{
    switch (t) {
    case KEEL_T_END: return "end";
    case KEEL_T_STRING: return "string";
    case KEEL_T_INT64: return "int64";
    case KEEL_T_DOUBLE: return "double";
    case KEEL_T_BOOL: return "bool";
    case KEEL_T_OBJECT: return "object";
    case KEEL_T_ARRAY: return "array";
    }
    return "unknown";
}

static bool is_scalar(keel_type t)
{
    return t == KEEL_T_STRING || t == KEEL_T_INT64 || t == KEEL_T_DOUBLE || t == KEEL_T_BOOL;
}

/* ------------------------------------------------------------------------ */
/* Field paths                                                               */

/* One step of a field path, kept on the C stack while decoding; the path is
 * only turned into text when an error needs it. */
typedef enum { SEG_NAME, SEG_INDEX, SEG_ANY_INDEX, SEG_POSITION } seg_kind;

typedef struct path_seg {
    const struct path_seg *parent;
    seg_kind kind;
    const char *name; /* SEG_NAME */
    size_t index;     /* SEG_INDEX, SEG_POSITION */
} path_seg;

#define PATH_TEXT_MAX 256

typedef struct path_text {
    char s[PATH_TEXT_MAX];
    size_t len;
    bool truncated;
} path_text;

static void path_put(path_text *p, const char *s, size_t n)
{
    if (p->truncated)
        return;
    size_t room = PATH_TEXT_MAX - sizeof "..." - p->len; /* keep room for "...\0" */
    if (n > room) {
        n = room;
        p->truncated = true;
    }
    memcpy(p->s + p->len, s, n);
    p->len += n;
}

static void path_put_seg(path_text *p, const path_seg *seg)
{
    char num[32];
    int n;
    switch (seg->kind) {
    case SEG_NAME:
        if (seg->parent)
            path_put(p, ".", 1);
        path_put(p, seg->name, strlen(seg->name));
        return;
    case SEG_INDEX:
        n = snprintf(num, sizeof num, "[%zu]", seg->index);
        path_put(p, num, (size_t)n);
        return;
    case SEG_ANY_INDEX:
        path_put(p, "[]", 2);
        return;
    case SEG_POSITION:
        n = snprintf(num, sizeof num, "%s#%zu", seg->parent ? "." : "", seg->index);
        path_put(p, num, (size_t)n);
        return;
    }
}

/* Recursion depth is the nesting depth of the data, which the decoder has
 * already recursed through. */
static void path_render_into(path_text *p, const path_seg *seg)
{
    if (!seg)
        return;
    path_render_into(p, seg->parent);
    path_put_seg(p, seg);
}

static void path_render(path_text *p, const path_seg *seg)
{
    p->len = 0;
    p->truncated = false;
    path_render_into(p, seg);
    if (p->truncated) {
        memcpy(p->s + p->len, "...", 3);
        p->len += 3;
    }
    p->s[p->len] = '\0';
}

static keel_error *field_error(const path_seg *seg, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* invalid_argument: field "<path>": <message>. */
static keel_error *field_error(const path_seg *seg, const char *fmt, ...)
{
    path_text p;
    path_render(&p, seg);
    va_list ap;
    va_start(ap, fmt);
    keel_error *err = keel_error_newv(KEEL_INVALID_ARGUMENT, fmt, ap);
    va_end(ap);
    return keel_error_prefix(err, "field \"%s\"", p.s);
}

static keel_error *missing_error(const path_seg *seg)
{
    path_text p;
    path_render(&p, seg);
    return keel_error_new(KEEL_INVALID_ARGUMENT, "missing required field \"%s\"", p.s);
}

static keel_error *oom_error(void)
{
    return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* ------------------------------------------------------------------------ */
/* UTF-8                                                                     */

/* For the non-ASCII byte at s (n >= 1 bytes available): the length of the
 * well-formed UTF-8 sequence starting there (Unicode table 3-7: no overlongs,
 * no surrogates, nothing above U+10FFFF), or 0 with *bad set to the length of
 * the maximal ill-formed subpart, which is replaced by one U+FFFD. */
static size_t utf8_sequence(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

static bool utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    while (s < end) {
        if (*s < 0x80) {
            s++;
            continue;
        }
        size_t bad, n = utf8_sequence(s, (size_t)(end - s), &bad);
        if (!n)
            return false;
        s += n;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* keel_schema_check                                                         */

typedef struct table_chain {
    const keel_field *table;
    const struct table_chain *up;
} table_chain;

/* What every step of one check shares. */
typedef struct check_ctx {
    const char *what;                /* "hello.get request" */
    const char *table_name;          /* the top-level table's name, or NULL */
    const keel_field *const *known;  /* the app's tables, sorted by address */
    size_t nknown;
} check_ctx;

static bool table_on_chain(const keel_field *table, const table_chain *chain)
{
    for (; chain; chain = chain->up)
        if (chain->table == table)
            return true;
    return false;
}

static int compare_tables(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(const keel_field *const *)a, y = (uintptr_t)*(const keel_field *const *)b;
    return x < y ? -1 : x > y;
}

void keel__schema_sort_tables(const keel_field **tables, size_t n)
{
    if (n > 1)
        qsort(tables, n, sizeof *tables, compare_tables);
}

static bool table_known(const check_ctx *ctx, const keel_field *entry)
{
    return ctx->nknown > 0 &&
           bsearch(&entry, ctx->known, ctx->nknown, sizeof *ctx->known, compare_tables) != NULL;
}

static keel_error *check_table(const check_ctx *ctx, const keel_field *fields, const path_seg *parent,
                               const table_chain *up);

static keel_error *check_error(const check_ctx *ctx, const path_seg *seg, const char *problem)
{
    path_text p;
    path_render(&p, seg);
    return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: field \"%s\": %s", ctx->what, p.s, problem);
}

/* Recurses into a member table unless it is already being checked further up
 * (a tree node whose children array has the node's own table). */
static keel_error *check_nested(const check_ctx *ctx, const keel_field *table, const path_seg *seg,
                                const table_chain *chain)
{
    if (table_on_chain(table, chain))
        return NULL;
    return check_table(ctx, table, seg, chain);
}

static keel_error *check_field(const check_ctx *ctx, const keel_field *f, const path_seg *seg,
                               const table_chain *chain)
{
    unsigned in = f->flags & IN_FLAGS;
    if (!f->name)
        return check_error(ctx, seg, "has no name");
    if (!f->name[0])
        return check_error(ctx, seg, "has an empty name");
    if (f->flags & ~(unsigned)KNOWN_FLAGS)
        return check_error(ctx, seg, "has unknown flags");
    if (in & (in - 1))
        return check_error(ctx, seg, "has more than one KEEL_IN_ flag");
    if (in && chain->up)
        return check_error(ctx, seg, "KEEL_IN_ flags are only allowed on top-level fields");
    if (is_scalar(f->type))
        return NULL;
    if (f->type == KEEL_T_OBJECT) {
        if (!f->fields)
            return check_error(ctx, seg, "object field has no member table");
        if (in)
            return check_error(ctx, seg, "an object cannot come from the path, query or a header");
        return check_nested(ctx, f->fields, seg, chain);
    }
    if (f->type != KEEL_T_ARRAY)
        return check_error(ctx, seg, "has an invalid type");
    if (f->count_offset == KEEL_NO_OFFSET)
        return check_error(ctx, seg, "array field has no count member");
    if (f->elem_size == 0)
        return check_error(ctx, seg, "array field has no element size");
    if (is_scalar(f->elem_type))
        return NULL;
    if (f->elem_type != KEEL_T_OBJECT)
        return check_error(ctx, seg, "array field has an invalid element type");
    if (!f->fields)
        return check_error(ctx, seg, "array of objects has no member table");
    if (in)
        return check_error(ctx, seg, "an array of objects cannot come from the path, query or a header");
    path_seg elems = {seg, SEG_ANY_INDEX, NULL, 0};
    return check_nested(ctx, f->fields, &elems, chain);
}

/* The error for a table without KEEL_END: the entry after last starts
 * another table.  parent is the field holding the table (NULL: top level). */
static keel_error *no_end_error(const check_ctx *ctx, const keel_field *last, const path_seg *parent)
{
    char table[PATH_TEXT_MAX + 40];
    if (parent) {
        path_text p;
        path_render(&p, parent);
        snprintf(table, sizeof table, "the member table of field \"%s\"", p.s);
    } else if (ctx->table_name) {
        snprintf(table, sizeof table, "the field table %s", ctx->table_name);
    } else {
        snprintf(table, sizeof table, "the field table");
    }
    return keel_error_new(KEEL_INVALID_ARGUMENT,
                          "%s: %s has no KEEL_END: after its field \"%s\" it runs on into another table; "
                          "end it with KEEL_END, or write it as KEEL_FIELDS(...), which adds the end",
                          ctx->what, table, last->name ? last->name : "?");
}

static keel_error *check_table(const check_ctx *ctx, const keel_field *fields, const path_seg *parent,
                               const table_chain *up)
{
    table_chain here = {fields, up};
    for (size_t i = 0; fields[i].type != KEEL_T_END; i++) {
        const keel_field *f = &fields[i];
        /* Checked before anything of the entry is read as this table's. */
        if (i > 0 && table_known(ctx, f))
            return no_end_error(ctx, &fields[i - 1], parent);
        path_seg seg = {parent, f->name ? SEG_NAME : SEG_POSITION, f->name, i};
        keel_error *err = check_field(ctx, f, &seg, &here);
        if (err)
            return err;
        /* Running off the end of a table (no KEEL_END) into another one that
         * the known tables do not include looks like this too, most often. */
        for (size_t j = 0; j < i; j++)
            if (fields[j].name && strcmp(fields[j].name, f->name) == 0)
                return check_error(ctx, &seg, "duplicate name (or the table has no KEEL_END and this "
                                              "is a field of the table after it)");
    }
    return NULL;
}

keel_error *keel__schema_check_known(const keel_field *fields, const char *what, const char *table_name,
                                     const keel_field *const *known, size_t nknown)
{
    check_ctx ctx = {what ? what : "schema", table_name, known, nknown};
    if (!fields)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: no field table", ctx.what);
    return check_table(&ctx, fields, NULL, NULL);
}

/* Returns invalid_argument "<what>: field "<path>": <problem>" (owned by the
 * caller) for the first problem found, or NULL when the table is sound. */
keel_error *keel_schema_check(const keel_field *fields, const char *what)
{
    return keel__schema_check_known(fields, what, NULL, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* keel_schema_parse_json                                                    */

/* Line and column (1-based, in bytes) of offset pos in body. */
static void text_position(const char *body, size_t pos, size_t *line, size_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < pos; i++) {
        if (body[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

/* On success *out is a new reference (release with json_decref).  Errors are
 * invalid_argument owned by the caller; *out is then NULL. */
keel_error *keel_schema_parse_json(const char *body, size_t len, json_t **out)
{
    *out = NULL;
    if (len == 0) {
        *out = json_object();
        return *out ? NULL : oom_error();
    }
    if (!body)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "request body must be a JSON object");
    const char *nul = memchr(body, '\0', len);
    if (nul) {
        size_t line, column;
        text_position(body, (size_t)(nul - body), &line, &column);
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "invalid JSON at line %zu, column %zu: NUL byte in request body",
                              line, column);
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (!root) {
        /* jansson quotes the offending input ("near '...'"), which may hold
         * invalid UTF-8 or control bytes: keep the message printable ASCII. */
        for (char *c = jerr.text; *c; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7F)
                *c = '?';
        return keel_error_new(KEEL_INVALID_ARGUMENT, "invalid JSON at line %d, column %d: %s",
                              jerr.line, jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return keel_error_new(KEEL_INVALID_ARGUMENT, "request body must be a JSON object");
    }
    *out = root;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* keel_schema_decode                                                        */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

/* The JSON word for what a field of type t accepts. */
static const char *expected_name(keel_type t)
{
    switch (t) {
    case KEEL_T_STRING: return "string";
    case KEEL_T_INT64: return "integer";
    case KEEL_T_DOUBLE: return "number";
    case KEEL_T_BOOL: return "boolean";
    case KEEL_T_OBJECT: return "object";
    case KEEL_T_ARRAY: return "array";
    case KEEL_T_END: break;
    }
    return "value";
}

static keel_error *type_error(keel_type want, const json_t *got, const path_seg *seg)
{
    return field_error(seg, "expected %s, got %s", expected_name(want), json_type_name(got));
}

/* Element capacity of an array this file allocates for count elements. */
static size_t array_capacity(size_t count)
{
    if (count == 0 || count > (SIZE_MAX >> 1))
        return count;
    size_t cap = 1;
    while (cap < count)
        cap <<= 1;
    return cap;
}

static void set_has(const keel_field *f, char *base)
{
    if (f->has_offset != KEEL_NO_OFFSET)
        *(bool *)(base + f->has_offset) = true;
}

static keel_error *decode_table(const keel_field *fields, const json_t *obj, char *base,
                                keel_arena *arena, bool body_only, const path_seg *parent);

static keel_error *decode_string(const json_t *v, const char **dst, keel_arena *arena,
                                 const path_seg *seg)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(s, '\0', len))
        return field_error(seg, "string contains a NUL character");
    char *copy = keel_arena_strndup(arena, s, len);
    if (!copy)
        return oom_error();
    *dst = copy;
    return NULL;
}

/* Decodes v into the scalar or embedded struct of type t at dst. */
static keel_error *decode_value(keel_type t, const keel_field *table, const json_t *v, char *dst,
                                keel_arena *arena, const path_seg *seg)
{
    switch (t) {
    case KEEL_T_STRING:
        if (!json_is_string(v))
            return type_error(t, v, seg);
        return decode_string(v, (const char **)(void *)dst, arena, seg);
    case KEEL_T_INT64:
        if (!json_is_integer(v))
            return type_error(t, v, seg);
        *(int64_t *)(void *)dst = (int64_t)json_integer_value(v);
        return NULL;
    case KEEL_T_DOUBLE:
        if (!json_is_number(v))
            return type_error(t, v, seg);
        *(double *)(void *)dst = json_number_value(v);
        return NULL;
    case KEEL_T_BOOL:
        if (!json_is_boolean(v))
            return type_error(t, v, seg);
        *(bool *)(void *)dst = json_is_true(v);
        return NULL;
    case KEEL_T_OBJECT:
        if (!json_is_object(v))
            return type_error(t, v, seg);
        return decode_table(table, v, dst, arena, false, seg);
    case KEEL_T_ARRAY:
    case KEEL_T_END:
        break;
    }
    return field_error(seg, "unsupported field type");
}

static keel_error *decode_array(const keel_field *f, const json_t *v, char *base, keel_arena *arena,
                                const path_seg *seg)
{
    if (!json_is_array(v))
        return type_error(KEEL_T_ARRAY, v, seg);
    size_t n = json_array_size(v);
    char *elems = NULL;
    if (n) {
        elems = keel_arena_calloc(arena, array_capacity(n), f->elem_size);
        if (!elems)
            return oom_error();
    }
    for (size_t i = 0; i < n; i++) {
        path_seg elem = {seg, SEG_INDEX, NULL, i};
        keel_error *err = decode_value(f->elem_type, f->fields, json_array_get(v, i),
                                       elems + i * f->elem_size, arena, &elem);
        if (err)
            return err;
    }
    *(void **)(void *)(base + f->offset) = elems;
    *(size_t *)(void *)(base + f->count_offset) = n;
    return NULL;
}

static keel_error *decode_table(const keel_field *fields, const json_t *obj, char *base,
                                keel_arena *arena, bool body_only, const path_seg *parent)
{
    if (!fields)
        fields = keel_empty_fields;
    for (const keel_field *f = fields; f->type != KEEL_T_END; f++) {
        if (body_only && (f->flags & IN_FLAGS))
            continue;
        path_seg seg = {parent, SEG_NAME, f->name, 0};
        const json_t *v = json_object_get(obj, f->name);
        if (!v || json_is_null(v)) {
            if (f->flags & KEEL_OPTIONAL)
                continue;
            return missing_error(&seg);
        }
        keel_error *err = f->type == KEEL_T_ARRAY
                              ? decode_array(f, v, base, arena, &seg)
                              : decode_value(f->type, f->fields, v, base + f->offset, arena, &seg);
        if (err)
            return err;
        set_has(f, base);
    }
    return NULL;
}

/* Fills the struct at out from obj.  Strings and arrays are allocated in
 * arena (owned by it).  Errors (invalid_argument naming the field path, or
 * resource_exhausted) are owned by the caller; out may then be partly
 * filled. */
keel_error *keel_schema_decode(const keel_field *fields, const json_t *obj, void *out,
                               keel_arena *arena, bool body_only)
{
    if (!fields)
        return NULL;
    if (!json_is_object(obj))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "request body must be a JSON object");
    return decode_table(fields, obj, out, arena, body_only, NULL);
}

/* ------------------------------------------------------------------------ */
/* keel_schema_decode_text                                                   */

/* The text quoted in an error: printable ASCII kept, other bytes shown as
 * '?', at most 64 bytes (then "..."), so the message is always safe. */
static void quote_text(char out[72], const char *text, size_t len)
{
    size_t n = len > 64 ? 64 : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    if (len > n) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

static keel_error *text_type_error(keel_type t, const char *text, size_t len, const path_seg *seg)
{
    char quoted[72];
    quote_text(quoted, text, len);
    return field_error(seg, "expected %s, got \"%s\"", expected_name(t), quoted);
}

/* Strict decimal: optional '-', digits only, within int64. */
static keel_error *text_int64(const char *text, size_t len, int64_t *dst, const path_seg *seg)
{
    size_t i = 0;
    bool neg = len > 0 && text[0] == '-';
    if (neg)
        i = 1;
    if (i == len)
        return text_type_error(KEEL_T_INT64, text, len, seg);
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    bool overflow = false;
    for (; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)text[i] - '0';
        if (d > 9)
            return text_type_error(KEEL_T_INT64, text, len, seg);
        if (v > (limit - d) / 10)
            overflow = true; /* keep scanning: garbage beats range */
        else
            v = v * 10 + d;
    }
    if (overflow)
        return field_error(seg, "integer out of range");
    if (!neg)
        *dst = (int64_t)v;
    else
        *dst = v ? -(int64_t)(v - 1) - 1 : 0; /* v - 1 fits even for INT64_MIN */
    return NULL;
}

/* Only digits, signs, '.' and exponents: strtod would also take spaces,
 * "inf", "nan" and hex. */
static bool number_chars_only(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'))
            return false;
    }
    return len > 0;
}

static keel_error *text_double(const char *text, size_t len, double *dst, keel_arena *arena,
                               const path_seg *seg)
{
    if (!number_chars_only(text, len))
        goto bad;
    char small[64];
    char *copy = small;
    if (len < sizeof small) {
        memcpy(small, text, len);
        small[len] = '\0';
    } else if (!(copy = keel_arena_strndup(arena, text, len))) {
        return oom_error();
    }
    char *end;
    double d = strtod(copy, &end);
    if (end != copy + len)
        goto bad;
    if (!isfinite(d))
        return field_error(seg, "number out of range");
    *dst = d;
    return NULL;
bad:
    return text_type_error(KEEL_T_DOUBLE, text, len, seg);
}

static keel_error *text_bool(const char *text, size_t len, bool *dst, const path_seg *seg)
{
    if ((len == 4 && memcmp(text, "true", 4) == 0) || (len == 1 && text[0] == '1'))
        *dst = true;
    else if ((len == 5 && memcmp(text, "false", 5) == 0) || (len == 1 && text[0] == '0'))
        *dst = false;
    else
        return text_type_error(KEEL_T_BOOL, text, len, seg);
    return NULL;
}

static keel_error *text_string(const char *text, size_t len, const char **dst, keel_arena *arena,
                               const path_seg *seg)
{
    if (len && memchr(text, '\0', len))
        return field_error(seg, "string contains a NUL character");
    if (!utf8_valid(text, len))
        return field_error(seg, "invalid UTF-8");
    char *copy = keel_arena_strndup(arena, len ? text : "", len);
    if (!copy)
        return oom_error();
    *dst = copy;
    return NULL;
}

/* Decodes text as a scalar of type t into dst. */
static keel_error *text_scalar(keel_type t, const char *text, size_t len, char *dst,
                               keel_arena *arena, const path_seg *seg)
{
    switch (t) {
    case KEEL_T_STRING: return text_string(text, len, (const char **)(void *)dst, arena, seg);
    case KEEL_T_INT64: return text_int64(text, len, (int64_t *)(void *)dst, seg);
    case KEEL_T_DOUBLE: return text_double(text, len, (double *)(void *)dst, arena, seg);
    case KEEL_T_BOOL: return text_bool(text, len, (bool *)(void *)dst, seg);
    case KEEL_T_OBJECT:
    case KEEL_T_ARRAY:
    case KEEL_T_END:
        break;
    }
    return field_error(seg, "an object cannot be decoded from text");
}

/* Appends one element to an array of scalars.  The array's capacity is
 * array_capacity(count), so a new block is only needed when count reaches a
 * power of two. */
static keel_error *text_append(const keel_field *f, const char *text, size_t len, char *base,
                               keel_arena *arena, const path_seg *seg)
{
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } tmp;
    memset(&tmp, 0, sizeof tmp);
    if (f->elem_size > sizeof tmp)
        return field_error(seg, "unsupported array element size");
    keel_error *err = text_scalar(f->elem_type, text, len, (char *)&tmp, arena, seg);
    if (err)
        return err;
    char **elems = (char **)(void *)(base + f->offset);
    size_t *count = (size_t *)(void *)(base + f->count_offset);
    size_t n = *elems ? *count : 0;
    if (n == array_capacity(n)) {
        char *grown = keel_arena_calloc(arena, n ? n * 2 : 1, f->elem_size);
        if (!grown)
            return oom_error();
        if (n)
            memcpy(grown, *elems, n * f->elem_size);
        *elems = grown;
    }
    memcpy(*elems + n * f->elem_size, &tmp, f->elem_size);
    *count = n + 1;
    return NULL;
}

/* Decodes one text value into field f of the struct at out.  For arrays the
 * array member must be NULL or have been built by this module (earlier calls
 * or keel_schema_decode).  Copies live in arena; errors (invalid_argument
 * naming the field, resource_exhausted) are owned by the caller. */
keel_error *keel_schema_decode_text(const keel_field *f, const char *text, size_t len,
                                    void *out, keel_arena *arena)
{
    path_seg seg = {NULL, SEG_NAME, f->name ? f->name : "?", 0};
    char *base = out;
    if (!text && len)
        return field_error(&seg, "no value");
    if (!text)
        text = "";
    if (f->type == KEEL_T_ARRAY) {
        if (!is_scalar(f->elem_type))
            return field_error(&seg, "an array of objects cannot be decoded from text");
        return text_append(f, text, len, base, arena, &seg);
    }
    keel_error *err = text_scalar(f->type, text, len, base + f->offset, arena, &seg);
    if (!err)
        set_has(f, base);
    return err;
}

/* ------------------------------------------------------------------------ */
/* keel_schema_encode                                                        */

enum { CH_SAFE = 0, CH_ESCAPE = 1, CH_UTF8 = 2 };

/* What a byte needs inside a JSON string: nothing, an escape, or UTF-8
 * validation. */
static const unsigned char char_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20  '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50  '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

#define BYTES_ONES UINT64_C(0x0101010101010101)
#define BYTES_HIGH UINT64_C(0x8080808080808080)

/* True when any of the 8 bytes in x is < 0x20, '"', '\\' or >= 0x80. */
static inline bool word_needs_care(uint64_t x)
{
    uint64_t ctl = (x - BYTES_ONES * 0x20) & ~x;
    uint64_t q = x ^ (BYTES_ONES * '"');
    uint64_t bs = x ^ (BYTES_ONES * '\\');
    q = (q - BYTES_ONES) & ~q;
    bs = (bs - BYTES_ONES) & ~bs;
    return ((ctl | q | bs | x) & BYTES_HIGH) != 0;
}

/* The escape for a byte of class CH_ESCAPE; returns its length. */
static size_t escape_byte(unsigned char c, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    char short_form = 0;
    switch (c) {
    case '"': short_form = '"'; break;
    case '\\': short_form = '\\'; break;
    case '\b': short_form = 'b'; break;
    case '\f': short_form = 'f'; break;
    case '\n': short_form = 'n'; break;
    case '\r': short_form = 'r'; break;
    case '\t': short_form = 't'; break;
    default: break;
    }
    out[0] = '\\';
    if (short_form) {
        out[1] = short_form;
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 0xF];
    return 6;
}

/* Appends s as a JSON string literal: runs of bytes that need nothing (ASCII
 * and well-formed UTF-8) go out in one append; ill-formed UTF-8 becomes
 * U+FFFD. */
char *keel__json_error_unquoted(char *text)
{
    char *near = strstr(text, " near '");
    if (near)
        *near = '\0';
    return text;
}

void keel__json_append_string(keel_buf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len, *run = s;
    keel_buf_putc(b, '"');
    while (s < end) {
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (word_needs_care(w))
                break;
            s += 8;
        }
        while (s < end && char_class[*s] == CH_SAFE)
            s++;
        if (s == end)
            break;
        if (char_class[*s] == CH_UTF8) {
            size_t bad, n = utf8_sequence(s, (size_t)(end - s), &bad);
            if (n) {
                s += n;
                continue;
            }
            keel_buf_append(b, run, (size_t)(s - run));
            keel_buf_append(b, "\xEF\xBF\xBD", 3);
            s += bad;
        } else {
            char esc[6];
            keel_buf_append(b, run, (size_t)(s - run));
            keel_buf_append(b, esc, escape_byte(*s, esc));
            s++;
        }
        run = s;
    }
    keel_buf_append(b, run, (size_t)(s - run));
    keel_buf_putc(b, '"');
}

/* Appends ,"name": (or "name": for the first member) in one append when the
 * name needs no escaping, which is always the case for identifiers. */
static void encode_key(keel_buf *b, const char *name, bool first)
{
    char key[128];
    size_t len = strlen(name), k = 0;
    if (len <= sizeof key - 4) {
        size_t i = 0;
        while (i < len && char_class[(unsigned char)name[i]] == CH_SAFE)
            i++;
        if (i == len) {
            if (!first)
                key[k++] = ',';
            key[k++] = '"';
            memcpy(key + k, name, len);
            k += len;
            key[k++] = '"';
            key[k++] = ':';
            keel_buf_append(b, key, k);
            return;
        }
    }
    if (!first)
        keel_buf_putc(b, ',');
    keel__json_append_string(b, name, len);
    keel_buf_putc(b, ':');
}

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* Appends v in decimal (INT64_MIN included) without printf. */
static void encode_int64(keel_buf *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * u, 2);
    } else {
        *--p = (char)('0' + u);
    }
    if (v < 0)
        *--p = '-';
    keel_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

/* Appends the shortest of %.15g/%.16g/%.17g that reads back as d; null for
 * NaN and infinities, which JSON cannot express. */
static void encode_double(keel_buf *b, double d)
{
    if (!isfinite(d)) {
        keel_buf_append(b, "null", 4);
        return;
    }
    /* Whole numbers below 1e15 print the same as %.15g would: skip printf. */
    if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d && !(d == 0 && signbit(d))) {
        encode_int64(b, (int64_t)d);
        return;
    }
    char tmp[40];
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    keel_buf_append(b, tmp, (size_t)n);
}

static void encode_table(const keel_field *fields, const char *base, keel_buf *b);

/* Appends the value of type t at p (an element or a struct member). */
static void encode_value(keel_type t, const keel_field *table, const char *p, keel_buf *b)
{
    switch (t) {
    case KEEL_T_STRING: {
        const char *s = *(const char *const *)(const void *)p;
        if (s)
            keel__json_append_string(b, s, strlen(s));
        else
            keel_buf_append(b, "null", 4);
        return;
    }
    case KEEL_T_INT64:
        encode_int64(b, *(const int64_t *)(const void *)p);
        return;
    case KEEL_T_DOUBLE:
        encode_double(b, *(const double *)(const void *)p);
        return;
    case KEEL_T_BOOL:
        if (*(const bool *)(const void *)p)
            keel_buf_append(b, "true", 4);
        else
            keel_buf_append(b, "false", 5);
        return;
    case KEEL_T_OBJECT:
        encode_table(table, p, b);
        return;
    case KEEL_T_ARRAY:
    case KEEL_T_END:
        break;
    }
    keel_buf_append(b, "null", 4);
}

static void encode_array(const keel_field *f, const char *base, keel_buf *b)
{
    const char *elems = *(const char *const *)(const void *)(base + f->offset);
    size_t n = elems ? *(const size_t *)(const void *)(base + f->count_offset) : 0;
    keel_buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            keel_buf_putc(b, ',');
        encode_value(f->elem_type, f->fields, elems + i * f->elem_size, b);
    }
    keel_buf_putc(b, ']');
}

bool keel_schema_present(const keel_field *f, const void *in)
{
    const char *base = in;
    if (f->has_offset != KEEL_NO_OFFSET && !*(const bool *)(const void *)(base + f->has_offset))
        return false;
    if (f->type == KEEL_T_STRING && (f->flags & KEEL_OPTIONAL) &&
        !*(const char *const *)(const void *)(base + f->offset))
        return false;
    return true;
}

static void encode_table(const keel_field *fields, const char *base, keel_buf *b)
{
    bool first = true;
    if (!fields)
        fields = keel_empty_fields;
    keel_buf_putc(b, '{');
    for (const keel_field *f = fields; f->type != KEEL_T_END; f++) {
        if ((f->flags & KEEL_IN_HEADER) || !keel_schema_present(f, base))
            continue;
        encode_key(b, f->name, first);
        first = false;
        if (f->type == KEEL_T_ARRAY)
            encode_array(f, base, b);
        else
            encode_value(f->type, f->fields, base + f->offset, b);
    }
    keel_buf_putc(b, '}');
}

/* Appends the compact JSON object for the struct at in.  Nothing is returned:
 * running out of memory sets buf->failed, which the caller checks. */
void keel_schema_encode(const keel_field *fields, const void *in, keel_buf *buf)
{
    encode_table(fields ? fields : keel_empty_fields, in, buf);
}

/* ------------------------------------------------------------------------ */
/* keel_schema_describe                                                      */

static json_t *describe_table(const keel_field *fields, const table_chain *up);

static const char *field_source(unsigned flags)
{
    if (flags & KEEL_IN_PATH)
        return "path";
    if (flags & KEEL_IN_QUERY)
        return "query";
    if (flags & KEEL_IN_HEADER)
        return "header";
    return "body";
}

/* Sets "fields" on desc, or "recursive":true for a table already being
 * described further up. */
static void describe_members(json_t *desc, const keel_field *table, const table_chain *chain)
{
    if (table_on_chain(table, chain))
        json_object_set_new(desc, "recursive", json_true());
    else
        json_object_set_new(desc, "fields", describe_table(table, chain));
}

static json_t *describe_field(const keel_field *f, const table_chain *chain)
{
    json_t *d = json_object();
    if (!d)
        return NULL;
    json_object_set_new(d, "name", json_string(f->name));
    json_object_set_new(d, "type", json_string(keel_type_name(f->type)));
    json_object_set_new(d, "optional", json_boolean(f->flags & KEEL_OPTIONAL));
    json_object_set_new(d, "in", json_string(field_source(f->flags)));
    if (f->type == KEEL_T_OBJECT && f->fields) {
        describe_members(d, f->fields, chain);
    } else if (f->type == KEEL_T_ARRAY) {
        json_t *items = json_object();
        json_object_set_new(items, "type", json_string(keel_type_name(f->elem_type)));
        if (f->elem_type == KEEL_T_OBJECT && f->fields && items)
            describe_members(items, f->fields, chain);
        json_object_set_new(d, "items", items);
    }
    return d;
}

static json_t *describe_table(const keel_field *fields, const table_chain *up)
{
    table_chain here = {fields, up};
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (const keel_field *f = fields; f->type != KEEL_T_END; f++)
        json_array_append_new(arr, describe_field(f, &here));
    return arr;
}

/* Returns a new reference (json_decref) or NULL when memory ran out. */
json_t *keel_schema_describe(const keel_field *fields)
{
    return describe_table(fields ? fields : keel_empty_fields, NULL);
}

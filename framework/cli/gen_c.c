/* gen_c.c - `keel gen client --lang c`: a header and a source file for
 * calling the app from another C program through libkeel-client.  Each
 * public typed endpoint gets a request and a response struct, their field
 * tables (written with the same KEEL_ macros a service uses, so the
 * compiler checks every member's type), a keel_client_endpoint and a
 * function.  Nested objects become structs of their own, named after the
 * path to them.  Raw and mounted endpoints are listed for keel_client_raw. */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "keel/keel.h"

/* What one generation writes to and the first reason it failed. */
typedef struct cgen {
    keel_buf h, c;
    json_t *globals; /* the file-scope names written so far */
    char why[512];
} cgen;

/* Keeps the first reason; returns false for the caller to return. */
static bool fail(cgen *g, const char *fmt, ...) KEEL_PRINTF(2, 3);
static bool fail(cgen *g, const char *fmt, ...)
{
    if (!g->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->why, sizeof g->why, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* C11's keywords (bool, true and false are <stdbool.h>'s), which no
 * member of the app's structs can be called. */
static const char *const c_keywords[] = {
    "auto", "bool", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "false", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "true", "typedef", "union", "unsigned", "void",
    "volatile", "while", NULL};
/* What the names the generator makes up avoid besides: the keywords of C23
 * and GNU C (the client may be built with any -std) and the lower-case
 * macros of the headers it includes. */
static const char *const c_reserved[] = {
    "alignas", "alignof", "constexpr", "nullptr", "static_assert", "thread_local", "typeof", "typeof_unqual", "asm",
    "noreturn", "complex", "imaginary", "errno", "stdin", "stdout", "stderr", "assert", "unix", "linux", NULL};

static bool listed(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* A name the app's C code can give a struct member: the JSON name of a
 * field declared with KEEL_STRING and the like. */
static bool is_ident(const char *s)
{
    if (!*s || isdigit((unsigned char)*s) || listed(c_keywords, s))
        return false;
    for (const char *p = s; *p; p++)
        if (!gen_is_alnum(*p) && *p != '_')
            return false;
    return true;
}

/* A C identifier from name: lower case, each run of anything else one '_'
 * ("X-Request-Id" -> "x_request_id"), never a leading '_' but before a
 * digit (names like __typeof are the compiler's), "x" when nothing is
 * left. */
static void ident_of(const char *name, char *buf, size_t len)
{
    size_t o = 0;
    bool gap = false;
    for (const char *p = name; *p && o + 3 < len; p++) {
        if (!gen_is_alnum(*p)) {
            gap = o > 0;
            continue;
        }
        if (gap || (o == 0 && isdigit((unsigned char)*p)))
            buf[o++] = '_';
        gap = false;
        buf[o++] = (char)tolower((unsigned char)*p);
    }
    if (o == 0)
        buf[o++] = 'x';
    buf[o] = '\0';
}

/* Makes a made-up member name in buf (a header field's, a presence flag, an
 * array's count) unique within used, and no keyword, by appending '_', then
 * records it.  The fields' own names were recorded first: they are their
 * JSON names and cannot change. */
static void claim(json_t *used, char *buf, size_t len)
{
    for (;;) {
        bool taken = json_object_get(used, buf) || listed(c_keywords, buf) || listed(c_reserved, buf);
        size_t n = strlen(buf);
        if (!taken || n + 2 > len)
            break;
        buf[n] = '_';
        buf[n + 1] = '\0';
    }
    json_object_set_new(used, buf, json_true());
}

/* Makes the file-scope name in buf unique (appending '_') with each of
 * suffixes, then records them all: "a" "b_c" and "a_b" "c" both spell
 * prefix_a_b_c, and a nested struct's name can be another endpoint's. */
static void claim_global(cgen *g, char *buf, size_t len, const char *const *suffixes)
{
    char name[600];
    for (;;) {
        bool taken = false;
        for (size_t i = 0; suffixes[i] && !taken; i++) {
            snprintf(name, sizeof name, "%s%s", buf, suffixes[i]);
            taken = json_object_get(g->globals, name) != NULL;
        }
        size_t n = strlen(buf);
        if (!taken || n + 2 > len)
            break;
        buf[n] = '_';
        buf[n + 1] = '\0';
    }
    for (size_t i = 0; suffixes[i]; i++) {
        snprintf(name, sizeof name, "%s%s", buf, suffixes[i]);
        json_object_set_new(g->globals, name, json_true());
    }
}

/* A C string literal's contents for s: quotes and backslashes escaped, other
 * control bytes in octal, '?' escaped (no trigraph can form). */
static void put_literal(keel_buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\' || c == '?') {
            keel_buf_putc(b, '\\');
            keel_buf_putc(b, (char)c);
        } else if (c < 0x20 || c == 0x7f) {
            keel_buf_printf(b, "\\%03o", c);
        } else {
            keel_buf_putc(b, (char)c);
        }
    }
}

/* The C type of a scalar of model type t; NULL for objects and arrays. */
static const char *scalar_ctype(const char *t)
{
    return strcmp(t, "string") == 0 ? "const char *"
           : strcmp(t, "int64") == 0 ? "int64_t "
           : strcmp(t, "double") == 0 ? "double "
           : strcmp(t, "bool") == 0 ? "bool "
                                    : NULL;
}

static const char *macro_of(const char *t)
{
    return strcmp(t, "string") == 0 ? "STRING"
           : strcmp(t, "int64") == 0 ? "INT64"
           : strcmp(t, "double") == 0 ? "DOUBLE"
                                      : "BOOL";
}

static bool struct_of(cgen *g, const char *type, json_t *fields, const char *where);

/* What a struct type's name stands for: the type and its field table. */
static const char *const type_suffixes[] = {"", "_fields", NULL};

/* One member of struct type (its declaration into decl, its table entry
 * into table); nested structs are written to the header first. */
static bool member(cgen *g, const char *type, json_t *f, json_t *used, keel_buf *decl, keel_buf *table,
                   const char *where)
{
    const char *name = gen_str(f, "name"), *t = gen_str(f, "type"), *in = gen_str(f, "in");
    bool optional = json_is_true(json_object_get(f, "optional"));
    char m[128], has[140], count[140], nested[400], flags[64] = "";
    if (json_is_true(json_object_get(f, "recursive")))
        return fail(g, "%s: field \"%s\" has a recursive type, which the C client cannot express yet", where, name);
    bool header_string = strcmp(in, "header") == 0 && strcmp(t, "string") == 0;
    if (header_string) {
        ident_of(name, m, sizeof m);
        claim(used, m, sizeof m);
    } else if (is_ident(name) && strlen(name) < sizeof m) {
        memcpy(m, name, strlen(name) + 1); /* #m is the JSON name: as it is */
    } else {
        return fail(g, "%s: field \"%s\" is not a C identifier", where, name);
    }
    snprintf(flags, sizeof flags, "%s%s",
             strcmp(in, "path") == 0 ? " | KEEL_IN_PATH" : strcmp(in, "query") == 0 ? " | KEEL_IN_QUERY"
             : strcmp(in, "header") == 0 && !header_string ? " | KEEL_IN_HEADER" : "",
             optional && (strcmp(t, "string") == 0 || strcmp(t, "array") == 0) ? " | KEEL_OPTIONAL" : "");
    const char *fl = flags[0] ? flags + 3 : NULL; /* without the leading " | " */
    if (*gen_str(f, "doc")) {
        keel_buf_puts(decl, "    /* ");
        gen_comment(decl, gen_str(f, "doc"));
        keel_buf_puts(decl, " */\n");
    }
    bool has_flag = optional && strcmp(t, "string") != 0 && strcmp(t, "array") != 0;
    if (has_flag) {
        snprintf(has, sizeof has, "has_%s", m);
        claim(used, has, sizeof has);
    }
    if (scalar_ctype(t)) {
        keel_buf_printf(decl, "    %s%s;\n", scalar_ctype(t), m);
        if (header_string) {
            keel_buf_printf(table, "    KEEL_HEADER_STRING(%s, %s, \"", type, m);
            put_literal(table, name);
            keel_buf_printf(table, "\"%s)", optional ? ", KEEL_OPTIONAL" : "");
        } else if (has_flag) {
            keel_buf_printf(table, "    KEEL_%s_OPT(%s, %s, %s%s%s)", macro_of(t), type, m, has, fl ? ", " : "",
                            fl ? fl : "");
        } else {
            keel_buf_printf(table, "    KEEL_%s(%s, %s%s%s)", macro_of(t), type, m, fl ? ", " : "", fl ? fl : "");
        }
    } else if (strcmp(t, "object") == 0) {
        snprintf(nested, sizeof nested, "%s_%s", type, m);
        claim_global(g, nested, sizeof nested, type_suffixes);
        if (!struct_of(g, nested, json_object_get(f, "fields"), where))
            return false;
        keel_buf_printf(decl, "    %s %s;\n", nested, m);
        if (has_flag)
            keel_buf_printf(table, "    KEEL_OBJECT_OPT(%s, %s, %s, %s_fields%s%s)", type, m, has, nested,
                            fl ? ", " : "", fl ? fl : "");
        else
            keel_buf_printf(table, "    KEEL_OBJECT(%s, %s, %s_fields%s%s)", type, m, nested, fl ? ", " : "",
                            fl ? fl : "");
    } else if (strcmp(t, "array") == 0) {
        json_t *items = json_object_get(f, "items");
        const char *et = gen_str(items, "type");
        snprintf(count, sizeof count, "%s_count", m);
        claim(used, count, sizeof count);
        if (scalar_ctype(et)) {
            keel_buf_printf(decl, "    %s*%s;\n    size_t %s;\n", scalar_ctype(et), m, count);
            keel_buf_printf(table, "    KEEL_ARRAY_%s(%s, %s, %s%s%s)", macro_of(et), type, m, count, fl ? ", " : "",
                            fl ? fl : "");
        } else if (strcmp(et, "object") == 0 && !json_is_true(json_object_get(items, "recursive"))) {
            snprintf(nested, sizeof nested, "%s_%s", type, m);
            claim_global(g, nested, sizeof nested, type_suffixes);
            if (!struct_of(g, nested, json_object_get(items, "fields"), where))
                return false;
            keel_buf_printf(decl, "    %s *%s;\n    size_t %s;\n", nested, m, count);
            keel_buf_printf(table, "    KEEL_ARRAY(%s, %s, %s, %s, %s_fields%s%s)", type, m, count, nested, nested,
                            fl ? ", " : "", fl ? fl : "");
        } else {
            return fail(g, "%s: field \"%s\" is an array of a type the C client cannot express", where, name);
        }
    } else {
        return fail(g, "%s: field \"%s\" has a type the C client does not know", where, name);
    }
    if (has_flag)
        keel_buf_printf(decl, "    bool %s;\n", has);
    return true;
}

/* The struct type for fields, its table's declaration in the header and
 * its definition in the source; nested structs first. */
static bool struct_of(cgen *g, const char *type, json_t *fields, const char *where)
{
    keel_arena a;
    keel_arena_init(&a, NULL, 0);
    keel_buf decl, table;
    keel_buf_init(&decl, &a);
    keel_buf_init(&table, &a);
    json_t *used = json_object(), *f;
    size_t i;
    bool ok = true;
    json_array_foreach(fields, i, f) {
        const char *name = gen_str(f, "name");
        if (!(gen_field_in(f, "header") && strcmp(gen_str(f, "type"), "string") == 0) && is_ident(name))
            json_object_set_new(used, name, json_true());
    }
    json_array_foreach(fields, i, f) {
        if (i)
            keel_buf_puts(&table, ",\n");
        if (!(ok = member(g, type, f, used, &decl, &table, where)))
            break;
    }
    json_decref(used);
    if (ok) {
        if (json_array_size(fields) == 0)
            keel_buf_printf(&g->h, "typedef keel_empty %s;\n", type);
        else
            keel_buf_printf(&g->h, "typedef struct %s {\n%.*s} %s;\n", type, (int)decl.len, decl.data, type);
        keel_buf_printf(&g->h, "extern const keel_field %s_fields[];\n\n", type);
        keel_buf_printf(&g->c, "const keel_field %s_fields[] = KEEL_FIELDS(%s%.*s%s);\n\n", type,
                        table.len ? "\n" : "", (int)table.len, table.data ? table.data : "", table.len ? "\n" : "");
        ok = !decl.failed && !table.failed;
    }
    keel_arena_release(&a);
    return ok;
}

static bool endpoint(cgen *g, const char *prefix, json_t *svc, json_t *ep)
{
    static const char *const fn_suffixes[] = {"", "_endpoint", "_request", "_request_fields", "_response",
                                              "_response_fields", NULL};
    char s[128], e[128], fn[400], type[420], where[300];
    ident_of(gen_str(svc, "name"), s, sizeof s);
    ident_of(gen_str(ep, "name"), e, sizeof e);
    snprintf(fn, sizeof fn, "%s_%s_%s", prefix, s, e);
    claim_global(g, fn, sizeof fn, fn_suffixes);
    snprintf(where, sizeof where, "%s.%s", gen_str(svc, "name"), gen_str(ep, "name"));
    const char *method = gen_str(ep, "method"), *path = gen_str(ep, "path");
    if (strcmp(method, "*") == 0)
        return fail(g, "%s: a typed endpoint for any method cannot be called by the C client", where);
    keel_buf_puts(&g->h, "/* ---- ");
    gen_comment(&g->h, where);
    keel_buf_puts(&g->h, ": ");
    gen_comment(&g->h, method);
    keel_buf_putc(&g->h, ' ');
    gen_comment(&g->h, path);
    keel_buf_puts(&g->h, " */\n\n");
    keel_buf_puts(&g->c, "/* ---- ");
    gen_comment(&g->c, where);
    keel_buf_puts(&g->c, " */\n\n");
    snprintf(type, sizeof type, "%s_request", fn);
    if (!struct_of(g, type, json_object_get(ep, "request"), where))
        return false;
    snprintf(type, sizeof type, "%s_response", fn);
    if (!struct_of(g, type, json_object_get(ep, "response"), where))
        return false;
    keel_buf_printf(&g->h, "extern const keel_client_endpoint %s_endpoint;\n\n", fn);
    if (*gen_str(ep, "doc")) {
        keel_buf_puts(&g->h, "/* ");
        gen_comment(&g->h, gen_str(ep, "doc"));
        keel_buf_puts(&g->h, " */\n");
    }
    keel_buf_printf(&g->h,
                    "keel_error *%s(keel_client *c, const %s_request *req,\n    %s_response *resp, keel_arena *arena);\n\n",
                    fn, fn, fn);
    keel_buf_printf(&g->c, "const keel_client_endpoint %s_endpoint = {\n    .name = \"", fn);
    put_literal(&g->c, where);
    keel_buf_printf(&g->c, "\",\n    .method = \"");
    put_literal(&g->c, method);
    keel_buf_printf(&g->c, "\",\n    .path = \"");
    put_literal(&g->c, path);
    keel_buf_printf(&g->c,
                    "\",\n    .request = %s_request_fields,\n    .response = %s_response_fields,\n};\n\n"
                    "keel_error *%s(keel_client *c, const %s_request *req,\n    %s_response *resp, keel_arena *arena)\n"
                    "{\n    return keel_client_call(c, &%s_endpoint, req, resp, arena);\n}\n\n",
                    fn, fn, fn, fn, fn, fn);
    return true;
}

bool gen_c(json_t *model, const char *prefix, const char *header_name, char **header, char **source)
{
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    cgen g = {.globals = json_object(), .why = ""};
    keel_buf_init(&g.h, &arena);
    keel_buf_init(&g.c, &arena);
    keel_buf raw;
    keel_buf_init(&raw, &arena);
    char guard[256];
    ident_of(header_name, guard, sizeof guard);
    for (char *p = guard; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    keel_buf_printf(&g.h,
                    "/* %s - generated by `keel gen client --lang c` from the app model: do not edit.\n"
                    " *\n"
                    " * A client of the app's public typed endpoints for another C program: per endpoint\n"
                    " * a request and a response struct with their field tables, and a function that\n"
                    " * calls it.  Build with libkeel-client:\n"
                    " *     cc ... $(pkg-config --cflags --libs keel-client)\n"
                    " * The strings and arrays of an answer live in the arena given to the call; an\n"
                    " * answer that is not 2xx is a keel_error with the app's code (keel/client.h). */\n"
                    "#ifndef %s\n#define %s\n\n#include <keel/client.h>\n\n",
                    header_name, guard, guard);
    keel_buf_printf(&g.c, "/* Generated by `keel gen client --lang c` from the app model: do not edit. */\n"
                          "#include \"%s\"\n\n", header_name);
    json_t *svc, *ep;
    size_t i, j;
    bool ok = true, any_raw = false;
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!ok || !gen_is_public(ep))
                continue;
            if (strcmp(gen_str(ep, "kind"), "typed") == 0) {
                ok = endpoint(&g, prefix, svc, ep);
                continue;
            }
            if (!any_raw)
                keel_buf_printf(&raw, "/* Raw and mounted endpoints: call them with keel_client_raw.\n");
            any_raw = true;
            keel_buf_puts(&raw, " *     ");
            gen_comment(&raw, gen_str(svc, "name"));
            keel_buf_putc(&raw, '.');
            gen_comment(&raw, gen_str(ep, "name"));
            keel_buf_puts(&raw, ": ");
            gen_comment(&raw, gen_str(ep, "method"));
            keel_buf_putc(&raw, ' ');
            gen_comment(&raw, gen_str(ep, "path"));
            keel_buf_putc(&raw, '\n');
        }
    }
    if (any_raw)
        keel_buf_printf(&g.h, "%.*s */\n\n", (int)raw.len, raw.data);
    keel_buf_printf(&g.h, "#endif\n");
    if (ok && (g.h.failed || g.c.failed || raw.failed))
        ok = fail(&g, "out of memory");
    if (!ok)
        fprintf(stderr, "keel gen client --lang c: %s\n", g.why);
    *header = ok ? strndup(g.h.data, g.h.len) : NULL;
    *source = ok ? strndup(g.c.data, g.c.len) : NULL;
    keel_arena_release(&arena);
    json_decref(g.globals);
    return ok && *header && *source;
}

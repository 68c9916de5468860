/* gen.c - `keel gen openapi` and `keel gen client --lang typescript`: the
 * contracts other teams consume, generated from the app model alone (the
 * CLI never parses C).  Output is deterministic: the model's order, no
 * timestamps, so generated files can be committed and their diffs read.
 * Private endpoints are left out of both. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keel/keel.h"

/* ---- the model ------------------------------------------------------------------- */

static bool is_public(json_t *ep)
{
    const char *access = json_string_value(json_object_get(ep, "access"));
    return !access || strcmp(access, "private") != 0;
}

static bool needs_auth(json_t *ep)
{
    const char *access = json_string_value(json_object_get(ep, "access"));
    return access && strcmp(access, "auth") == 0;
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static bool field_in(json_t *f, const char *where)
{
    return strcmp(str(f, "in"), where) == 0;
}

/* ---- OpenAPI 3.1 ----------------------------------------------------------------- */

static json_t *oa_object(json_t *fields, const char *where);

static json_t *oa_type(const char *type, json_t *node)
{
    if (strcmp(type, "string") == 0)
        return json_pack("{s:s}", "type", "string");
    if (strcmp(type, "int64") == 0)
        return json_pack("{s:s, s:s}", "type", "integer", "format", "int64");
    if (strcmp(type, "double") == 0)
        return json_pack("{s:s, s:s}", "type", "number", "format", "double");
    if (strcmp(type, "bool") == 0)
        return json_pack("{s:s}", "type", "boolean");
    if (strcmp(type, "object") == 0)
        return oa_object(json_object_get(node, "fields"), NULL);
    if (strcmp(type, "array") == 0) {
        json_t *items = json_object_get(node, "items");
        return json_pack("{s:s, s:o}", "type", "array", "items", oa_type(str(items, "type"), items));
    }
    return json_object(); /* any JSON */
}

static json_t *oa_field(json_t *f)
{
    json_t *s = oa_type(str(f, "type"), f);
    if (*str(f, "doc"))
        json_object_set_new(s, "description", json_string(str(f, "doc")));
    return s;
}

/* An object schema of the fields found in where ("body"; NULL: all). */
static json_t *oa_object(json_t *fields, const char *where)
{
    json_t *props = json_object(), *required = json_array(), *f;
    size_t i;
    json_array_foreach(fields, i, f) {
        if (where && !field_in(f, where))
            continue;
        json_object_set_new(props, str(f, "name"), oa_field(f));
        if (!json_is_true(json_object_get(f, "optional")))
            json_array_append_new(required, json_string(str(f, "name")));
    }
    json_t *o = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    if (json_array_size(required))
        json_object_set_new(o, "required", required);
    else
        json_decref(required);
    json_object_set_new(o, "additionalProperties", json_false());
    return o;
}

static bool has_body_fields(json_t *fields)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
        if (field_in(f, "body"))
            return true;
    return false;
}

/* "/todo/:id" -> "/todo/{id}", and a catch-all "*path" -> "{path}"; the
 * names of the parameters go to names. */
static char *oa_path(const char *pattern, json_t *names)
{
    size_t n = strlen(pattern);
    char *out = malloc(2 * n + 3), *o = out;
    for (const char *p = pattern; *p;) {
        if ((*p == ':' || *p == '*') && (p == pattern || p[-1] == '/')) {
            const char *e = p + 1;
            while (*e && *e != '/')
                e++;
            json_array_append_new(names, json_stringn(p + 1, (size_t)(e - p - 1)));
            *o++ = '{';
            memcpy(o, p + 1, (size_t)(e - p - 1));
            o += e - p - 1;
            *o++ = '}';
            p = e;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static json_t *error_response(const char *why)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", why, "content", "application/json", "schema", "$ref",
                     "#/components/schemas/APIError");
}

/* The error statuses an endpoint can answer, each with the Encore shape. */
static void oa_errors(json_t *responses, json_t *ep, const char *service_db_hint)
{
    json_t *req = json_object_get(ep, "request");
    bool typed = strcmp(str(ep, "kind"), "typed") == 0;
    struct { const char *status, *why; bool when; } all[] = {
        {"400", "invalid_argument: a field is missing, has the wrong type, or the body is not JSON",
         !typed || json_array_size(req) > 0},
        {"401", "unauthenticated: this endpoint needs credentials", needs_auth(ep)},
        {"404", "not_found", true},
        {"413", "the body is larger than the endpoint's limit", !typed || has_body_fields(req)},
        {"429", "resource_exhausted: a rate limit was reached", json_array_size(json_object_get(ep, "rate_limits")) > 0},
        {"500", "internal", true},
        {"503", "unavailable: a database or another dependency is unavailable", service_db_hint != NULL},
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (!all[i].when)
            continue;
        json_object_set_new(responses, all[i].status, error_response(all[i].why));
    }
}

static json_t *oa_operation(json_t *svc, json_t *ep, const char *method_lc, json_t *path_names, bool many_methods)
{
    const char *service = str(svc, "name"), *name = str(ep, "name");
    char opid[300];
    if (many_methods)
        snprintf(opid, sizeof opid, "%s.%s.%s", service, name, method_lc);
    else
        snprintf(opid, sizeof opid, "%s.%s", service, name);
    json_t *op = json_pack("{s:s, s:[s]}", "operationId", opid, "tags", service);
    if (*str(ep, "doc"))
        json_object_set_new(op, "summary", json_string(str(ep, "doc")));
    json_t *params = json_array();
    json_t *req = json_object_get(ep, "request"), *f;
    size_t i;
    bool typed = strcmp(str(ep, "kind"), "typed") == 0;
    if (typed) {
        json_array_foreach(req, i, f) {
            const char *in = str(f, "in");
            if (strcmp(in, "body") == 0)
                continue;
            json_t *p = json_pack("{s:s, s:s, s:b, s:o}", "name", str(f, "name"), "in", in, "required",
                                  strcmp(in, "path") == 0 || !json_is_true(json_object_get(f, "optional")), "schema",
                                  oa_field(f));
            json_array_append_new(params, p);
        }
        if (has_body_fields(req))
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content", "application/json", "schema",
                                          oa_object(req, "body")));
    } else {
        json_t *pn;
        json_array_foreach(path_names, i, pn)
            json_array_append_new(params, json_pack("{s:O, s:s, s:b, s:{s:s}, s:s}", "name", pn, "in", "path",
                                                    "required", 1, "schema", "type", "string", "description",
                                                    "the rest of the path, passed to the raw handler as it came"));
        if (strcmp(method_lc, "get") != 0 && strcmp(method_lc, "head") != 0 && strcmp(method_lc, "delete") != 0)
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b, s:{s:{s:{}}}}", "required", 0, "content", "*/*", "schema"));
        json_object_set_new(op, "description",
                            json_string(strcmp(str(ep, "kind"), "mounted") == 0
                                            ? "A mounted libmicrohttpd handler: free-form request and response."
                                            : "A raw endpoint: free-form request and response."));
    }
    if (json_array_size(params))
        json_object_set_new(op, "parameters", params);
    else
        json_decref(params);
    json_t *responses = json_object();
    if (typed) {
        json_t *resp = json_object_get(ep, "response");
        json_t *ok = json_pack("{s:s}", "description", "success");
        json_t *headers = json_object();
        json_array_foreach(resp, i, f)
            if (field_in(f, "header"))
                json_object_set_new(headers, str(f, "name"), json_pack("{s:o}", "schema", oa_field(f)));
        if (json_object_size(headers))
            json_object_set_new(ok, "headers", headers);
        else
            json_decref(headers);
        json_object_set_new(ok, "content", json_pack("{s:{s:o}}", "application/json", "schema", oa_object(resp, "body")));
        json_object_set_new(responses, "200", ok);
    } else {
        json_object_set_new(responses, "default", json_pack("{s:s}", "description", "whatever the handler answers"));
    }
    json_t *dbs = json_object_get(svc, "databases"), *xdbs = json_object_get(svc, "external_databases");
    oa_errors(responses, ep, json_array_size(dbs) || json_array_size(xdbs) ? "db" : NULL);
    json_object_set_new(op, "responses", responses);
    if (needs_auth(ep))
        json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
    return op;
}

static json_t *openapi_of(json_t *model, const char *title)
{
    json_t *codes = json_array();
    for (int c = KEEL_CANCELED; c <= KEEL_UNAUTHENTICATED; c++)
        json_array_append_new(codes, json_string(keel_code_name((keel_code)c)));
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:{}, s:{s:{s:{s:s, s:[s,s,s], s:{s:{s:s, s:o}, s:{s:s}, s:{s:[s,s]}}}}, "
        "s:{s:{s:s, s:s}}}}",
        "openapi", "3.1.0", "info", "title", title, "version", str(model, "keel_version"), "description",
        "Generated by keel gen openapi from the app model. Errors have Encore's shape: {code, message, details}.",
        "servers", "url", "http://localhost:4000", "paths", "components", "schemas", "APIError", "type", "object",
        "required", "code", "message", "details", "properties", "code", "type", "string", "enum", codes, "message",
        "type", "string", "details", "type", "object", "null", "securitySchemes", "bearer", "type", "http", "scheme",
        "bearer");
    json_t *paths = json_object_get(doc, "paths");
    json_t *svc, *ep;
    size_t i, j;
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!is_public(ep))
                continue;
            json_t *names = json_array();
            char *path = oa_path(str(ep, "path"), names);
            json_t *item = json_object_get(paths, path);
            if (!item) {
                item = json_object();
                json_object_set_new(paths, path, item);
            }
            const char *method = str(ep, "method");
            static const char *const any[] = {"get", "post", "put", "patch", "delete", NULL};
            char lc[32];
            size_t k = 0;
            for (; method[k] && k < sizeof lc - 1; k++)
                lc[k] = (char)tolower((unsigned char)method[k]);
            lc[k] = '\0';
            if (strcmp(method, "*") == 0) {
                for (size_t m = 0; any[m]; m++)
                    if (!json_object_get(item, any[m]))
                        json_object_set_new(item, any[m], oa_operation(svc, ep, any[m], names, true));
            } else if (!json_object_get(item, lc)) {
                json_object_set_new(item, lc, oa_operation(svc, ep, lc, names, false));
            }
            json_decref(names);
            free(path);
        }
    }
    return doc;
}

/* ---- TypeScript ------------------------------------------------------------------ */

/* "mark_done" -> "MarkDone" into buf. */
static const char *pascal(const char *name, char *buf, size_t len)
{
    size_t o = 0;
    bool up = true;
    for (const char *p = name; *p && o + 1 < len; p++) {
        if (*p == '_' || *p == '-' || *p == '.') {
            up = true;
            continue;
        }
        buf[o++] = (char)(up ? toupper((unsigned char)*p) : *p);
        up = false;
    }
    buf[o] = '\0';
    return buf;
}

/* "mark_done" -> "markDone". */
static const char *camel(const char *name, char *buf, size_t len)
{
    pascal(name, buf, len);
    buf[0] = (char)tolower((unsigned char)buf[0]);
    return buf;
}

static void ts_type(keel_buf *o, json_t *node);

/* A doc text that cannot end the comment it is put in (a static buffer: one
 * use per call site). */
static const char *comment_safe(const char *text)
{
    static char buf[1024];
    size_t o = 0;
    for (const char *p = text; *p && o + 3 < sizeof buf; p++) {
        if (p[0] == '*' && p[1] == '/') {
            buf[o++] = '*';
            buf[o++] = ' ';
            continue;
        }
        buf[o++] = (*p == '\n' || *p == '\r') ? ' ' : *p;
    }
    buf[o] = '\0';
    return buf;
}

static void ts_fields(keel_buf *o, json_t *fields, const char *where, const char *indent)
{
    size_t i;
    json_t *f;
    keel_buf_printf(o, "{\n");
    json_array_foreach(fields, i, f) {
        if (where && !field_in(f, where))
            continue;
        if (*str(f, "doc"))
            keel_buf_printf(o, "%s    /** %s */\n", indent, comment_safe(str(f, "doc")));
        keel_buf_printf(o, "%s    %s%s: ", indent, str(f, "name"), json_is_true(json_object_get(f, "optional")) ? "?" : "");
        ts_type(o, f);
        keel_buf_printf(o, ";\n");
    }
    keel_buf_printf(o, "%s}", indent);
}

static void ts_type(keel_buf *o, json_t *node)
{
    const char *t = str(node, "type");
    if (strcmp(t, "string") == 0)
        keel_buf_printf(o, "string");
    else if (strcmp(t, "int64") == 0 || strcmp(t, "double") == 0)
        keel_buf_printf(o, "number");
    else if (strcmp(t, "bool") == 0)
        keel_buf_printf(o, "boolean");
    else if (strcmp(t, "object") == 0)
        ts_fields(o, json_object_get(node, "fields"), NULL, "    ");
    else if (strcmp(t, "array") == 0) {
        keel_buf_printf(o, "Array<");
        ts_type(o, json_object_get(node, "items"));
        keel_buf_printf(o, ">");
    } else
        keel_buf_printf(o, "unknown");
}

static const char ts_prelude[] =
    "// Generated by `keel gen client --lang typescript` from the app model: do not edit.\n"
    "// One file, no dependencies beyond fetch.  int64 fields are numbers: exact up to 2^53.\n"
    "\n"
    "/** The error codes a Keel app answers with (Encore's). */\n"
    "export type ErrCode =\n";

static char *typescript_of(json_t *model)
{
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    keel_buf o;
    keel_buf_init(&o, &arena);
    keel_buf_printf(&o, "%s", ts_prelude);
    for (int c = KEEL_CANCELED; c <= KEEL_UNAUTHENTICATED; c++)
        keel_buf_printf(&o, "    | \"%s\"%s\n", keel_code_name((keel_code)c), c == KEEL_UNAUTHENTICATED ? ";" : "");
    keel_buf_printf(&o, "\n"
            "/** An answer that is not 2xx, in Encore's error shape. */\n"
            "export class APIError extends Error {\n"
            "    constructor(\n"
            "        public readonly status: number,\n"
            "        public readonly code: ErrCode,\n"
            "        message: string,\n"
            "        public readonly details: unknown,\n"
            "    ) {\n"
            "        super(message);\n"
            "        this.name = \"APIError\";\n"
            "    }\n"
            "}\n\n"
            "export interface ClientOptions {\n"
            "    /** Added to every request (Authorization, for example). */\n"
            "    headers?: Record<string, string>;\n"
            "    /** Another fetch (a test double, a proxy agent); default: the global one. */\n"
            "    fetch?: typeof fetch;\n"
            "}\n\n"
            "type Query = Record<string, string | number | boolean | undefined | Array<string | number | boolean>>;\n\n"
            "class Transport {\n"
            "    constructor(private readonly baseURL: string, private readonly options: ClientOptions) {}\n\n"
            "    async call(method: string, path: string, query: Query, headers: Record<string, string>, body: unknown): "
            "Promise<Response> {\n"
            "        const qs = new URLSearchParams();\n"
            "        for (const [k, v] of Object.entries(query)) {\n"
            "            if (v === undefined) continue;\n"
            "            for (const item of Array.isArray(v) ? v : [v]) qs.append(k, String(item));\n"
            "        }\n"
            "        const url = this.baseURL.replace(/\\/$/, \"\") + path + (qs.size ? \"?\" + qs.toString() : \"\");\n"
            "        const init: RequestInit = { method, headers: { ...this.options.headers, ...headers } };\n"
            "        if (body !== undefined) {\n"
            "            init.body = JSON.stringify(body);\n"
            "            (init.headers as Record<string, string>)[\"Content-Type\"] = \"application/json\";\n"
            "        }\n"
            "        const res = await (this.options.fetch ?? fetch)(url, init);\n"
            "        if (!res.ok) {\n"
            "            let e: { code?: ErrCode; message?: string; details?: unknown } = {};\n"
            "            try { e = await res.json(); } catch { /* not Encore's shape */ }\n"
            "            throw new APIError(res.status, e.code ?? \"unknown\", e.message ?? res.statusText, e.details ?? null);\n"
            "        }\n"
            "        return res;\n"
            "    }\n\n"
            "    async json<T>(method: string, path: string, query: Query, headers: Record<string, string>, body: unknown): "
            "Promise<T> {\n"
            "        return (await (await this.call(method, path, query, headers, body)).json()) as T;\n"
            "    }\n"
            "}\n");
    json_t *svc, *ep, *f;
    size_t i, j, k;
    char sname[128], ename[128], mname[128];
    /* The types of each service's typed endpoints. */
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!is_public(ep) || strcmp(str(ep, "kind"), "typed") != 0)
                continue;
            pascal(str(svc, "name"), sname, sizeof sname);
            pascal(str(ep, "name"), ename, sizeof ename);
            keel_buf_printf(&o, "\n/** %s %s (%s.%s) */\nexport interface %s%sRequest ", str(ep, "method"), str(ep, "path"),
                str(svc, "name"), str(ep, "name"), sname, ename);
            ts_fields(&o, json_object_get(ep, "request"), NULL, "");
            keel_buf_printf(&o, "\n\nexport interface %s%sResponse ", sname, ename);
            ts_fields(&o, json_object_get(ep, "response"), NULL, "");
            keel_buf_printf(&o, "\n");
        }
    }
    /* A class per service, a method per endpoint. */
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        pascal(str(svc, "name"), sname, sizeof sname);
        keel_buf_printf(&o, "\nexport class %sService {\n    constructor(private readonly t: Transport) {}\n", sname);
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!is_public(ep))
                continue;
            camel(str(ep, "name"), mname, sizeof mname);
            if (*str(ep, "doc"))
                keel_buf_printf(&o, "\n    /** %s */", comment_safe(str(ep, "doc")));
            if (strcmp(str(ep, "kind"), "typed") != 0) {
                keel_buf_printf(&o, "\n    /** %s %s: a %s endpoint; path is the whole path, body is sent as JSON. */\n"
                        "    async %s(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): "
                        "Promise<Response> {\n"
                        "        return this.t.call(method, path, {}, headers, body);\n"
                        "    }\n",
                    str(ep, "method"), str(ep, "path"), str(ep, "kind"), mname);
                continue;
            }
            pascal(str(ep, "name"), ename, sizeof ename);
            json_t *req = json_object_get(ep, "request");
            bool any = json_array_size(req) > 0;
            keel_buf_printf(&o, "\n    /** %s %s */\n    async %s(%s: %s%sRequest%s): Promise<%s%sResponse> {\n", str(ep, "method"),
                str(ep, "path"), mname, any ? "req" : "_req", sname, ename, any ? "" : " = {}", sname, ename);
            /* The path with its parameters. */
            keel_buf_printf(&o, "        const path = \"");
            for (const char *p = str(ep, "path"); *p;) {
                if (*p == ':' && (p == str(ep, "path") || p[-1] == '/')) {
                    const char *e = p + 1;
                    while (*e && *e != '/')
                        e++;
                    keel_buf_printf(&o, "\" + encodeURIComponent(String(req.%.*s)) + \"", (int)(e - p - 1), p + 1);
                    p = e;
                } else {
                    keel_buf_printf(&o, "%c", *p++);
                }
            }
            keel_buf_printf(&o, "\";\n        const query: Query = {};\n        const headers: Record<string, string> = {};\n");
            bool body = has_body_fields(req);
            if (body)
                keel_buf_printf(&o, "        const body: Record<string, unknown> = {};\n");
            json_array_foreach(req, k, f) {
                const char *n = str(f, "name");
                if (field_in(f, "query"))
                    keel_buf_printf(&o, "        query[\"%s\"] = req.%s;\n", n, n);
                else if (field_in(f, "header"))
                    keel_buf_printf(&o, "        if (req.%s !== undefined) headers[\"%s\"] = String(req.%s);\n", n, n, n);
                else if (field_in(f, "body"))
                    keel_buf_printf(&o, "        if (req.%s !== undefined) body[\"%s\"] = req.%s;\n", n, n, n);
            }
            keel_buf_printf(&o, "        return this.t.json<%s%sResponse>(\"%s\", path, query, headers, %s);\n    }\n", sname, ename,
                str(ep, "method"), body ? "body" : "undefined");
        }
        keel_buf_printf(&o, "}\n");
    }
    keel_buf_printf(&o, "\n/** The app's API, one property per service. */\nexport class Client {\n");
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        pascal(str(svc, "name"), sname, sizeof sname);
        keel_buf_printf(&o, "    readonly %s: %sService;\n", camel(str(svc, "name"), mname, sizeof mname), sname);
    }
    keel_buf_printf(&o, "\n    constructor(baseURL: string, options: ClientOptions = {}) {\n"
            "        const t = new Transport(baseURL, options);\n");
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        pascal(str(svc, "name"), sname, sizeof sname);
        keel_buf_printf(&o, "        this.%s = new %sService(t);\n", camel(str(svc, "name"), mname, sizeof mname), sname);
    }
    keel_buf_printf(&o, "    }\n}\n");
    char *text = o.failed ? NULL : strndup(o.data, o.len);
    keel_arena_release(&arena);
    return text;
}

/* ---- the command ----------------------------------------------------------------- */

static int write_out(const char *path, const char *text)
{
    if (!path) {
        fputs(text, stdout);
        return CLI_OK;
    }
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "keel gen: cannot write %s\n", path);
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cli_gen(int argc, char **argv)
{
    const char *what = argc > 0 ? argv[0] : "";
    const char *out_path = NULL, *app = NULL, *lang = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            app = argv[++i];
        else if (strcmp(argv[i], "--lang") == 0 && i + 1 < argc)
            lang = argv[++i];
        else {
            cli_print_usage(stderr, "gen");
            return CLI_USAGE;
        }
    }
    bool openapi = strcmp(what, "openapi") == 0, client = strcmp(what, "client") == 0;
    if (!openapi && !client) {
        cli_print_usage(stderr, "gen");
        return CLI_USAGE;
    }
    if (client && (!lang || strcmp(lang, "typescript") != 0)) {
        fprintf(stderr, "keel gen client: --lang typescript is the language this version generates\n");
        return CLI_USAGE;
    }
    const char *path = cli_find_app(app);
    if (!path)
        return CLI_FAILED;
    json_t *model = cli_load_app_model(path);
    if (!model)
        return CLI_FAILED;
    int rc;
    if (openapi) {
        const cli_project *p = cli_project_get();
        json_t *doc = openapi_of(model, p->found && p->name[0] ? p->name : "Keel app");
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
        if (!text) {
            json_decref(model);
            fprintf(stderr, "keel gen openapi: out of memory\n");
            return CLI_FAILED;
        }
        size_t n = strlen(text);
        char *nl = realloc(text, n + 2);
        if (nl) {
            text = nl;
            text[n] = '\n';
            text[n + 1] = '\0';
        }
        rc = write_out(out_path, text);
        free(text);
    } else {
        char *text = typescript_of(model);
        rc = text ? write_out(out_path, text) : CLI_FAILED;
        free(text);
    }
    json_decref(model);
    return rc;
}

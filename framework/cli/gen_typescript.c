/* gen_typescript.c - `keel gen client --lang typescript`: one file, no
 * dependencies beyond fetch; an interface per request and response, a class
 * per service with a method per public endpoint, errors as APIError. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "keel/keel.h"


/* ---- spelling model strings in TypeScript ---------------------------------------- */

/* A JavaScript string literal of s: JSON's escapes, and U+2028 and U+2029
 * escaped too (line terminators in older JavaScript).  The model is valid
 * UTF-8 (jansson read it). */
static void ts_string(keel_buf *o, const char *s)
{
    keel_buf_putc(o, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            keel_buf_putc(o, '\\');
            keel_buf_putc(o, (char)*p);
        } else if (*p < 0x20 || *p == 0x7f) {
            keel_buf_printf(o, "\\u%04x", *p);
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            keel_buf_printf(o, "\\u%04x", p[2] == 0xa8 ? 0x2028u : 0x2029u);
            p += 2;
        } else {
            keel_buf_putc(o, (char)*p);
        }
    }
    keel_buf_putc(o, '"');
}

/* A name TypeScript takes bare as a property name and after a dot. */
static bool ts_is_ident(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!gen_is_alnum(*s) && *s != '_' && *s != '$')
            return false;
    return true;
}

/* A property name in an interface: bare when it can be, quoted otherwise
 * ("X-Token"?: string). */
static void ts_prop(keel_buf *o, const char *name)
{
    if (ts_is_ident(name))
        keel_buf_puts(o, name);
    else
        ts_string(o, name);
}

/* obj's property name: obj.name, or obj["X-Token"]. */
static void ts_member(keel_buf *o, const char *obj, const char *name)
{
    keel_buf_puts(o, obj);
    if (ts_is_ident(name)) {
        keel_buf_putc(o, '.');
        keel_buf_puts(o, name);
    } else {
        keel_buf_putc(o, '[');
        ts_string(o, name);
        keel_buf_putc(o, ']');
    }
}

/* map[name] for a Record: always indexed (a compiler option,
 * noPropertyAccessFromIndexSignature, refuses map.name). */
static void ts_index(keel_buf *o, const char *map, const char *name)
{
    keel_buf_puts(o, map);
    keel_buf_putc(o, '[');
    ts_string(o, name);
    keel_buf_putc(o, ']');
}

/* Text in a comment that cannot end it. */
static void ts_comment(keel_buf *o, const char *before, const char *text, const char *after)
{
    keel_buf_puts(o, before);
    gen_comment(o, text);
    keel_buf_puts(o, after);
}

/* Claims want, or want_2, want_3... the first that no name in used has with
 * any of suffixes; records them all and writes the chosen stem into buf.  Two
 * model names can spell the same identifier ("a_b" and "a__b" are both AB),
 * or one the generated code already uses ("constructor", "t"). */
static const char *ts_claim(json_t *used, const char *want, const char *const *suffixes, char *buf, size_t len)
{
    char name[300];
    for (unsigned n = 1;; n++) {
        if (n == 1)
            snprintf(buf, len, "%s", want);
        else
            snprintf(buf, len, "%.*s_%u", (int)(len > 16 ? len - 16 : 0), want, n);
        bool taken = false;
        for (size_t i = 0; suffixes[i] && !taken; i++) {
            snprintf(name, sizeof name, "%s%s", buf, suffixes[i]);
            taken = json_object_get(used, name) != NULL;
        }
        if (!taken)
            break;
    }
    for (size_t i = 0; suffixes[i]; i++) {
        snprintf(name, sizeof name, "%s%s", buf, suffixes[i]);
        json_object_set_new(used, name, json_true());
    }
    return buf;
}

/* The TypeScript names of each service and endpoint, chosen once for the
 * whole file: [{"class", "property", "endpoints": [{"stem", "method"}]}],
 * in the model's order (so the same model gives the same names). */
static json_t *ts_names(json_t *model)
{
    static const char *const service_sfx[] = {"Service", NULL}, *const type_sfx[] = {"Request", "Response", NULL},
                             *const plain[] = {"", NULL};
    static const char *const file_names[] = {"ErrCode", "APIError", "ClientOptions", "Query", "Transport", "Client",
                                             "Request", "Response", NULL};
    json_t *names = json_array(), *types = json_object(), *props = json_object(), *svc, *ep;
    for (size_t i = 0; file_names[i]; i++)
        json_object_set_new(types, file_names[i], json_true());
    json_object_set_new(props, "constructor", json_true());
    size_t i, j;
    char sname[128], ename[128], want[300], buf[300];
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_t *methods = json_pack("{s:b, s:b}", "constructor", 1, "t", 1), *eps = json_array();
        gen_pascal(gen_str(svc, "name"), sname, sizeof sname);
        json_t *entry = json_pack("{s:s}", "class", ts_claim(types, sname[0] ? sname : "Api", service_sfx, buf, sizeof buf));
        json_object_set_new(entry, "property", json_string(ts_claim(props, gen_camel(gen_str(svc, "name"), want, sizeof want),
                                                                    plain, buf, sizeof buf)));
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            gen_pascal(gen_str(ep, "name"), ename, sizeof ename);
            snprintf(want, sizeof want, "%s%s", sname[0] ? sname : "Api", ename);
            json_t *e = json_pack("{s:s}", "stem", ts_claim(types, want, type_sfx, buf, sizeof buf));
            json_object_set_new(e, "method", json_string(ts_claim(methods, gen_camel(gen_str(ep, "name"), want, sizeof want),
                                                                  plain, buf, sizeof buf)));
            json_array_append_new(eps, e);
        }
        json_object_set_new(entry, "endpoints", eps);
        json_array_append_new(names, entry);
        json_decref(methods);
    }
    json_decref(types);
    json_decref(props);
    return names;
}

/* ---- types ----------------------------------------------------------------------- */

static void ts_type(keel_buf *o, json_t *node);

static void ts_fields(keel_buf *o, json_t *fields, const char *indent)
{
    size_t i;
    json_t *f;
    keel_buf_printf(o, "{\n");
    json_array_foreach(fields, i, f) {
        if (*gen_str(f, "doc")) {
            keel_buf_printf(o, "%s    /** ", indent);
            ts_comment(o, "", gen_str(f, "doc"), " */\n");
        }
        keel_buf_printf(o, "%s    ", indent);
        ts_prop(o, gen_str(f, "name"));
        keel_buf_printf(o, "%s: ", json_is_true(json_object_get(f, "optional")) ? "?" : "");
        ts_type(o, f);
        keel_buf_printf(o, ";\n");
    }
    keel_buf_printf(o, "%s}", indent);
}

static void ts_type(keel_buf *o, json_t *node)
{
    const char *t = gen_str(node, "type");
    if (strcmp(t, "string") == 0)
        keel_buf_printf(o, "string");
    else if (strcmp(t, "int64") == 0 || strcmp(t, "double") == 0)
        keel_buf_printf(o, "number");
    else if (strcmp(t, "bool") == 0)
        keel_buf_printf(o, "boolean");
    else if (strcmp(t, "object") == 0 && json_object_get(node, "fields"))
        ts_fields(o, json_object_get(node, "fields"), "    ");
    else if (strcmp(t, "array") == 0) {
        keel_buf_printf(o, "Array<");
        ts_type(o, json_object_get(node, "items"));
        keel_buf_printf(o, ">");
    } else
        keel_buf_printf(o, "unknown");
}

/* ---- requests -------------------------------------------------------------------- */

/* The expression for an endpoint's path: its static text percent-encoded
 * (RFC 3986 pchar and '/' kept; the router decodes the escapes of the bytes
 * a pattern may hold) in string literals, its parameters from req: ":name"
 * one encoded segment, "*name" and "!name" the rest of the path with its
 * slashes kept. */
static void ts_path(keel_buf *o, const char *path)
{
    static const char hex[] = "0123456789ABCDEF", keep[] = "-._~!$&'()*+,;=:@/";
    bool open = false, any = false;
    for (const char *p = path; *p;) {
        if ((*p == ':' || *p == '*' || *p == '!') && p > path && p[-1] == '/') {
            const char *e = p + 1;
            while (*e && *e != '/')
                e++;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(e - p - 1), p + 1);
            keel_buf_puts(o, open ? "\" + " : any ? " + " : "");
            if (*p == ':') {
                keel_buf_puts(o, "encodeURIComponent(String(");
                ts_member(o, "req", name);
                keel_buf_puts(o, "))");
            } else {
                keel_buf_puts(o, "String(");
                ts_member(o, "req", name);
                keel_buf_puts(o, ").split(\"/\").map(encodeURIComponent).join(\"/\")");
            }
            open = false;
            any = true;
            p = e;
            continue;
        }
        if (!open)
            keel_buf_puts(o, any ? " + \"" : "\"");
        open = any = true;
        unsigned char c = (unsigned char)*p++;
        if (gen_is_alnum((char)c) || (c && strchr(keep, c)))
            keel_buf_putc(o, (char)c);
        else
            keel_buf_printf(o, "%%%c%c", hex[c >> 4], hex[c & 15]);
    }
    keel_buf_puts(o, open ? "\"" : any ? "" : "\"\"");
}

/* The statements that put field f of req where method sends it. */
static void ts_put_field(keel_buf *o, json_t *f, const char *method)
{
    const char *n = gen_str(f, "name"), *place = gen_place(f, method), *t = gen_str(f, "type");
    const char *items = gen_str(json_object_get(f, "items"), "type");
    if (strcmp(place, "query") == 0) {
        /* An object cannot travel in a query string: it goes as JSON text
         * (which the app refuses; the model allows declaring it). */
        bool json = strcmp(t, "object") == 0 || (strcmp(t, "array") == 0 && strcmp(items, "object") == 0);
        keel_buf_puts(o, "        ");
        ts_index(o, "query", n);
        keel_buf_puts(o, " = ");
        if (json) {
            ts_member(o, "req", n);
            keel_buf_puts(o, " === undefined ? undefined : JSON.stringify(");
            ts_member(o, "req", n);
            keel_buf_puts(o, ")");
        } else {
            ts_member(o, "req", n);
        }
        keel_buf_puts(o, ";\n");
    } else if (strcmp(place, "header") == 0 || strcmp(place, "body") == 0) {
        bool header = strcmp(place, "header") == 0;
        keel_buf_puts(o, "        if (");
        ts_member(o, "req", n);
        keel_buf_puts(o, " !== undefined) ");
        ts_index(o, header ? "headers" : "body", n);
        keel_buf_puts(o, header ? " = String(" : " = ");
        ts_member(o, "req", n);
        keel_buf_puts(o, header ? ");\n" : ";\n");
    }
}

static const char ts_prelude[] =
    "// Generated by `keel gen client --lang typescript` from the app model: do not edit.\n"
    "// One file, no dependencies beyond fetch.  int64 fields are numbers: exact up to 2^53.\n"
    "\n"
    "/** The error codes a Keel app answers with (Encore's). */\n"
    "export type ErrCode =\n";

char *gen_typescript(json_t *model)
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
    json_t *names = ts_names(model), *svc, *ep, *f;
    size_t i, j, k;
    /* The types of each service's typed endpoints. */
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_t *svc_names = json_object_get(json_array_get(names, i), "endpoints");
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!gen_is_public(ep) || strcmp(gen_str(ep, "kind"), "typed") != 0)
                continue;
            const char *stem = gen_str(json_array_get(svc_names, j), "stem");
            ts_comment(&o, "\n/** ", gen_str(ep, "method"), " ");
            ts_comment(&o, "", gen_str(ep, "path"), " (");
            ts_comment(&o, "", gen_str(svc, "name"), ".");
            ts_comment(&o, "", gen_str(ep, "name"), ") */\n");
            keel_buf_printf(&o, "export interface %sRequest ", stem);
            ts_fields(&o, json_object_get(ep, "request"), "");
            keel_buf_printf(&o, "\n\nexport interface %sResponse ", stem);
            ts_fields(&o, json_object_get(ep, "response"), "");
            keel_buf_printf(&o, "\n");
        }
    }
    /* A class per service, a method per endpoint. */
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_t *svc_names = json_array_get(names, i);
        bool any_public = false;
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep)
            any_public = any_public || gen_is_public(ep);
        /* Without a method t would be unused (noUnusedLocals refuses that). */
        keel_buf_printf(&o, "\nexport class %sService {\n    constructor(%s: Transport) {}\n", gen_str(svc_names, "class"),
                        any_public ? "private readonly t" : "_t");
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!gen_is_public(ep))
                continue;
            json_t *ep_names = json_array_get(json_object_get(svc_names, "endpoints"), j);
            const char *mname = gen_str(ep_names, "method"), *stem = gen_str(ep_names, "stem");
            const char *method = gen_str(ep, "method");
            if (*gen_str(ep, "doc"))
                ts_comment(&o, "\n    /** ", gen_str(ep, "doc"), " */");
            ts_comment(&o, "\n    /** ", method, " ");
            gen_comment(&o, gen_str(ep, "path"));
            if (strcmp(gen_str(ep, "kind"), "typed") != 0) {
                ts_comment(&o, ": a ", gen_str(ep, "kind"), " endpoint; path is the whole path, body is sent as JSON. */\n");
                keel_buf_printf(&o, "    async %s(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): "
                        "Promise<Response> {\n"
                        "        return this.t.call(method, path, {}, headers, body);\n"
                        "    }\n", mname);
                continue;
            }
            json_t *req = json_object_get(ep, "request"), *resp = json_object_get(ep, "response");
            bool any = json_array_size(req) > 0, body = gen_has_body(req, method), resp_headers = false;
            json_array_foreach(resp, k, f)
                resp_headers = resp_headers || gen_field_in(f, "header");
            keel_buf_printf(&o, " */\n    async %s(%s: %sRequest%s): Promise<%sResponse> {\n", mname,
                            any ? "req" : "_req", stem, any ? "" : " = {}", stem);
            keel_buf_puts(&o, "        const path = ");
            ts_path(&o, gen_str(ep, "path"));
            /* No prototype: a field may be called __proto__. */
            keel_buf_puts(&o, ";\n        const query: Query = Object.create(null);\n"
                              "        const headers: Record<string, string> = Object.create(null);\n");
            if (body)
                keel_buf_printf(&o, "        const body: Record<string, unknown> = Object.create(null);\n");
            json_array_foreach(req, k, f)
                ts_put_field(&o, f, method);
            if (!resp_headers) {
                keel_buf_printf(&o, "        return this.t.json<%sResponse>(", stem);
                ts_string(&o, method);
                keel_buf_printf(&o, ", path, query, headers, %s);\n    }\n", body ? "body" : "undefined");
                continue;
            }
            /* The response's header fields come from the answer's headers. */
            keel_buf_puts(&o, "        const res = await this.t.call(");
            ts_string(&o, method);
            keel_buf_printf(&o, ", path, query, headers, %s);\n"
                                "        const out = (await res.json()) as %sResponse;\n"
                                "        let h: string | null;\n", body ? "body" : "undefined", stem);
            json_array_foreach(resp, k, f) {
                if (!gen_field_in(f, "header"))
                    continue;
                const char *t = gen_str(f, "type");
                if (strcmp(t, "array") == 0)
                    t = gen_str(json_object_get(f, "items"), "type");
                const char *value = strcmp(t, "int64") == 0 || strcmp(t, "double") == 0 ? "Number(h)"
                                    : strcmp(t, "bool") == 0                             ? "(h === \"true\" || h === \"1\")"
                                                                                         : "h";
                keel_buf_puts(&o, "        if ((h = res.headers.get(");
                ts_string(&o, gen_str(f, "name"));
                keel_buf_puts(&o, ")) !== null) ");
                ts_member(&o, "out", gen_str(f, "name"));
                keel_buf_printf(&o, strcmp(gen_str(f, "type"), "array") == 0 ? " = [%s];\n" : " = %s;\n", value);
            }
            keel_buf_puts(&o, "        return out;\n    }\n");
        }
        keel_buf_printf(&o, "}\n");
    }
    keel_buf_printf(&o, "\n/** The app's API, one property per service. */\nexport class Client {\n");
    json_array_foreach(names, i, svc)
        keel_buf_printf(&o, "    readonly %s: %sService;\n", gen_str(svc, "property"), gen_str(svc, "class"));
    keel_buf_printf(&o, "\n    constructor(baseURL: string, options: ClientOptions = {}) {\n"
            "        const t = new Transport(baseURL, options);\n");
    json_array_foreach(names, i, svc)
        keel_buf_printf(&o, "        this.%s = new %sService(t);\n", gen_str(svc, "property"), gen_str(svc, "class"));
    keel_buf_printf(&o, "    }\n}\n");
    json_decref(names);
    char *text = o.failed ? NULL : strndup(o.data, o.len);
    keel_arena_release(&arena);
    return text;
}
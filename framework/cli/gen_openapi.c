/* gen_openapi.c - `keel gen openapi`: an OpenAPI 3.1 document from the app
 * model, which the server must agree with on the wire.  Typed endpoints get
 * their parameters and schemas (request objects without
 * additionalProperties: false, as the server ignores unknown fields), raw
 * ones a free-form success; each of them lists the error statuses Keel
 * itself can answer, then a default in Keel's error shape (Encore's
 * {code, message, details}) for any other error a handler returns.  Mounted
 * libmicrohttpd handlers answer whatever they like: any status, any
 * content.  Every operation has a summary, a description, a declared tag
 * (its service) and its security (none, optional or required credentials:
 * a Bearer token, or the auth handler's cookie).  Private endpoints are
 * left out; those of an extension method (PURGE) are listed under the path
 * item's x-keel-operations. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "keel/keel.h"

static json_t *oa_object(json_t *fields, const char *where, bool closed);

/* What every operation depends on beyond its endpoint: the app's auth
 * handler (any endpoint may then answer 401 for a malformed Authorization
 * header and 403 for a cross-site cookie), and whether it reads a
 * database (a statement timeout is 504). */
typedef struct oa_app {
    bool auth;
    const char *cookie; /* the auth handler's cookie, or NULL */
    bool auth_db;       /* the auth handler's service has databases */
} oa_app;

static json_t *oa_type(const char *type, json_t *node, bool closed)
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
        return oa_object(json_object_get(node, "fields"), NULL, closed);
    if (strcmp(type, "array") == 0) {
        json_t *items = json_object_get(node, "items");
        return json_pack("{s:s, s:o}", "type", "array", "items", oa_type(gen_str(items, "type"), items, closed));
    }
    return json_object(); /* any JSON */
}

static json_t *oa_field(json_t *f, bool closed)
{
    json_t *s = oa_type(gen_str(f, "type"), f, closed);
    if (*gen_str(f, "doc"))
        json_object_set_new(s, "description", json_string(gen_str(f, "doc")));
    return s;
}

/* An object schema of the fields found in where ("body"; NULL: all).
 * closed: no other properties (what the server sends); a request's objects
 * are open, since the server ignores fields it does not know (a client may
 * send those of a newer version). */
static json_t *oa_object(json_t *fields, const char *where, bool closed)
{
    json_t *props = json_object(), *required = json_array(), *f;
    size_t i;
    json_array_foreach(fields, i, f) {
        if (where && !gen_field_in(f, where))
            continue;
        json_object_set_new(props, gen_str(f, "name"), oa_field(f, closed));
        if (!json_is_true(json_object_get(f, "optional")))
            json_array_append_new(required, json_string(gen_str(f, "name")));
    }
    json_t *o = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    if (json_array_size(required))
        json_object_set_new(o, "required", required);
    else
        json_decref(required);
    if (closed)
        json_object_set_new(o, "additionalProperties", json_false());
    return o;
}

/* "/todo/:id" -> "/todo/{id}", and a catch-all "*path" (or fallback
 * "!path") -> "{path}"; the names of the parameters go to names.  A brace
 * in static text is percent-encoded (the router decodes it), so that it
 * cannot read as a template. */
static char *oa_path(const char *pattern, json_t *names)
{
    size_t n = strlen(pattern);
    char *out = malloc(3 * n + 3), *o = out;
    if (!out)
        return NULL;
    for (const char *p = pattern; *p;) {
        if ((*p == ':' || *p == '*' || *p == '!') && (p == pattern || p[-1] == '/')) {
            const char *e = p + 1;
            while (*e && *e != '/')
                e++;
            json_array_append_new(names, json_stringn(p + 1, (size_t)(e - p - 1)));
            *o++ = '{';
            memcpy(o, p + 1, (size_t)(e - p - 1));
            o += e - p - 1;
            *o++ = '}';
            p = e;
        } else if (*p == '{' || *p == '}') {
            memcpy(o, *p++ == '{' ? "%7B" : "%7D", 3);
            o += 3;
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

/* A response of any content (raw and mounted handlers write their own). */
static json_t *free_response(const char *why)
{
    return json_pack("{s:s, s:{s:{s:{}}}}", "description", why, "content", "*/*", "schema");
}

/* Whether a raw or mounted operation of method takes a body. */
static bool method_has_body(const char *method_lc)
{
    return strcmp(method_lc, "get") != 0 && strcmp(method_lc, "head") != 0 && strcmp(method_lc, "delete") != 0;
}

/* The error statuses Keel itself answers for an endpoint (each in Keel's
 * error shape), then a default for any other a handler returns. */
static void oa_errors(json_t *responses, json_t *svc, json_t *ep, const char *method_lc, const oa_app *app)
{
    json_t *req = json_object_get(ep, "request");
    bool typed = strcmp(gen_str(ep, "kind"), "typed") == 0;
    bool body = typed ? gen_has_body(req, method_lc) : method_has_body(method_lc);
    bool db = json_array_size(json_object_get(svc, "databases")) || json_array_size(json_object_get(svc, "external_databases")) ||
              json_array_size(json_object_get(svc, "calls")) || (app->auth && app->auth_db);
    struct { const char *status, *why; bool when; } all[] = {
        {"400", "invalid_argument (or failed_precondition, out_of_range): a parameter or field is missing or "
                "malformed, the body is not valid JSON, or a header or query value holds a NUL byte", true},
        {"401", "unauthenticated: this endpoint needs credentials, the Authorization header is not \"Bearer <token>\", "
                "or an endpoint it calls needs credentials", gen_needs_auth(ep) || app->auth},
        {"403", "permission_denied: the credentials do not allow this, or a request that changes something, "
                "authenticated by the cookie, came from another site's page", app->auth},
        {"404", "not_found", true},
        {"413", "resource_exhausted: the body is larger than the endpoint's limit", body},
        {"415", "invalid_argument: unsupported media type: the body is not JSON (Content-Type: application/json)",
         typed && body},
        {"429", "resource_exhausted: a rate limit was reached (Retry-After says when to try again)",
         json_array_size(json_object_get(ep, "rate_limits")) > 0},
        {"500", "internal", true},
        {"503", "unavailable: the server is overloaded, or a database or another dependency is unavailable", true},
        {"504", "deadline_exceeded: a database statement or a call to another system took too long", db},
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i].when)
            json_object_set_new(responses, all[i].status, error_response(all[i].why));
    json_object_set_new(responses, "default",
                        typed ? error_response("any other error the handler returns, in Keel's error shape, with the "
                                               "status of its code")
                              : free_response("another status the handler chose, with content of its own (an error it "
                                              "returns has Keel's error shape)"));
}

/* Who may call: auth endpoints need credentials; public ones take them
 * when the app has an auth handler (an empty requirement: optional). */
static json_t *oa_security(json_t *ep, const oa_app *app)
{
    json_t *list = json_array();
    bool mounted = strcmp(gen_str(ep, "kind"), "mounted") == 0;
    if (!app->auth || mounted)
        return list;
    if (!gen_needs_auth(ep))
        json_array_append_new(list, json_object());
    json_array_append_new(list, json_pack("{s:[]}", "bearer"));
    if (app->cookie)
        json_array_append_new(list, json_pack("{s:[]}", "cookie"));
    return list;
}

static json_t *oa_operation(json_t *svc, json_t *ep, const char *method_lc, json_t *path_names, bool many_methods,
                            const oa_app *app)
{
    const char *service = gen_str(svc, "name"), *name = gen_str(ep, "name"), *kind = gen_str(ep, "kind");
    char opid[300];
    if (many_methods)
        snprintf(opid, sizeof opid, "%s.%s.%s", service, name, method_lc);
    else
        snprintf(opid, sizeof opid, "%s.%s", service, name);
    bool typed = strcmp(kind, "typed") == 0, mounted = strcmp(kind, "mounted") == 0;
    json_t *op = json_pack("{s:s, s:s, s:s, s:[s]}", "operationId", opid, "summary",
                           *gen_str(ep, "doc") ? gen_str(ep, "doc") : opid, "description",
                           typed ? "A typed endpoint: parameters and a JSON body in (fields it does not know are "
                                   "ignored), a JSON object out."
                           : mounted ? "A mounted libmicrohttpd handler: free-form request and response, any status."
                                     : "A raw endpoint: free-form request and response.",
                           "tags", service);
    json_t *params = json_array();
    json_t *req = json_object_get(ep, "request"), *f;
    size_t i;
    if (typed) {
        json_array_foreach(req, i, f) {
            const char *in = gen_place(f, method_lc);
            if (strcmp(in, "body") == 0)
                continue;
            json_t *p = json_pack("{s:s, s:s, s:b, s:o}", "name", gen_str(f, "name"), "in", in, "required",
                                  strcmp(in, "path") == 0 || !json_is_true(json_object_get(f, "optional")), "schema",
                                  oa_field(f, false));
            json_array_append_new(params, p);
        }
        if (gen_has_body(req, method_lc))
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content", "application/json", "schema",
                                          oa_object(req, "body", false)));
    } else {
        json_t *pn;
        json_array_foreach(path_names, i, pn)
            json_array_append_new(params, json_pack("{s:O, s:s, s:b, s:{s:s}, s:s}", "name", pn, "in", "path",
                                                    "required", 1, "schema", "type", "string", "description",
                                                    "the rest of the path, passed to the handler decoded; its slashes "
                                                    "may be sent encoded (items%2F1 for items/1)"));
        if (method_has_body(method_lc))
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b, s:{s:{s:{}}}}", "required", 0, "content", "*/*", "schema"));
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
            if (gen_field_in(f, "header"))
                json_object_set_new(headers, gen_str(f, "name"), json_pack("{s:o}", "schema", oa_field(f, true)));
        if (json_object_size(headers))
            json_object_set_new(ok, "headers", headers);
        else
            json_decref(headers);
        json_object_set_new(ok, "content",
                            json_pack("{s:{s:o}}", "application/json", "schema", oa_object(resp, "body", true)));
        json_object_set_new(responses, "200", ok);
    } else {
        json_object_set_new(responses, "2XX", free_response("success, as the handler answers"));
    }
    if (mounted) { /* the legacy code answers by itself, its errors included */
        json_object_set_new(responses, "4XX", free_response("a client error, as the handler answers it"));
        json_object_set_new(responses, "default", free_response("whatever else the handler answers"));
    } else {
        oa_errors(responses, svc, ep, method_lc, app);
    }
    json_object_set_new(op, "responses", responses);
    json_object_set_new(op, "security", oa_security(ep, app));
    return op;
}

json_t *gen_openapi(json_t *model, const char *title)
{
    json_t *codes = json_array();
    for (int c = KEEL_CANCELED; c <= KEEL_UNAUTHENTICATED; c++)
        json_array_append_new(codes, json_string(keel_code_name((keel_code)c)));
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s}], s:[], s:{}, s:{s:{s:{s:s, s:[s,s,s], s:{s:{s:s, s:o}, s:{s:s}, "
        "s:{s:[s,s]}}}}}}",
        "openapi", "3.1.0", "info", "title", title, "version", gen_str(model, "keel_version"), "description",
        "Generated by keel gen openapi from the app model. Errors have Keel's shape (Encore's): {code, message, "
        "details}.",
        "servers", "url", "http://127.0.0.1:4000", "description", "keel run's default address", "tags", "paths",
        "components", "schemas", "APIError", "type", "object", "required", "code", "message", "details",
        "properties", "code", "type", "string", "enum", codes, "message", "type", "string", "details", "type",
        "object", "null");
    oa_app app = {false, NULL, false};
    json_t *svc, *ep;
    size_t i, j;
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_t *h = json_object_get(svc, "auth_handler");
        if (!json_is_object(h))
            continue;
        app.auth = true;
        app.cookie = json_string_value(json_object_get(h, "cookie"));
        app.auth_db = json_array_size(json_object_get(svc, "databases")) ||
                      json_array_size(json_object_get(svc, "external_databases"));
    }
    if (app.auth) {
        json_t *schemes = json_pack("{s:{s:s, s:s, s:s}}", "bearer", "type", "http", "scheme", "bearer", "description",
                                    "Authorization: Bearer <token>, checked by the app's auth handler");
        if (app.cookie)
            json_object_set_new(schemes, "cookie",
                                json_pack("{s:s, s:s, s:s, s:s}", "type", "apiKey", "in", "cookie", "name", app.cookie,
                                          "description", "the same token in a cookie, for the app's own pages (a "
                                          "request that changes something must come from them)"));
        json_object_set_new(json_object_get(doc, "components"), "securitySchemes", schemes);
    }
    json_t *tags = json_object_get(doc, "tags");
    json_t *paths = json_object_get(doc, "paths");
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        bool tagged = false;
        json_array_foreach(json_object_get(svc, "endpoints"), j, ep) {
            if (!gen_is_public(ep))
                continue;
            if (!tagged) {
                tagged = true;
                json_array_append_new(tags, json_pack("{s:s, s:s}", "name", gen_str(svc, "name"), "description",
                                                      "the endpoints of this service"));
            }
            json_t *names = json_array();
            char *path = oa_path(gen_str(ep, "path"), names);
            if (!path) {
                json_decref(names);
                continue;
            }
            json_t *item = json_object_get(paths, path);
            if (!item) {
                item = json_object();
                json_object_set_new(paths, path, item);
            }
            const char *method = gen_str(ep, "method");
            static const char *const any[] = {"get", "post", "put", "patch", "delete", NULL};
            static const char *const standard[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace",
                                                   NULL};
            char lc[32];
            size_t k = 0;
            for (; method[k] && k < sizeof lc - 1; k++)
                lc[k] = (char)tolower((unsigned char)method[k]);
            lc[k] = '\0';
            bool is_standard = false;
            for (size_t m = 0; standard[m]; m++)
                is_standard = is_standard || strcmp(lc, standard[m]) == 0;
            if (strcmp(method, "*") == 0) {
                for (size_t m = 0; any[m]; m++)
                    if (!json_object_get(item, any[m]))
                        json_object_set_new(item, any[m], oa_operation(svc, ep, any[m], names, true, &app));
            } else if (is_standard) {
                if (!json_object_get(item, lc))
                    json_object_set_new(item, lc, oa_operation(svc, ep, lc, names, false, &app));
            } else {
                /* An extension method (PURGE) has no field of its own in
                 * OpenAPI 3.1's path item: it goes under an extension. */
                json_t *more = json_object_get(item, "x-keel-operations");
                if (!more)
                    json_object_set_new(item, "x-keel-operations", more = json_object());
                if (!json_object_get(more, method))
                    json_object_set_new(more, method, oa_operation(svc, ep, lc, names, false, &app));
            }
            json_decref(names);
            free(path);
        }
    }
    return doc;
}
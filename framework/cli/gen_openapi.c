/* gen_openapi.c - `keel gen openapi`: an OpenAPI 3.1 document from the app
 * model.  Typed endpoints get their parameters and schemas, raw and mounted
 * ones free-form operations; each operation lists the error statuses it can
 * answer with Encore's error shape.  Private endpoints are left out; those
 * of an extension method (PURGE) are listed under the path item's
 * x-keel-operations. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "keel/keel.h"

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
        return json_pack("{s:s, s:o}", "type", "array", "items", oa_type(gen_str(items, "type"), items));
    }
    return json_object(); /* any JSON */
}

static json_t *oa_field(json_t *f)
{
    json_t *s = oa_type(gen_str(f, "type"), f);
    if (*gen_str(f, "doc"))
        json_object_set_new(s, "description", json_string(gen_str(f, "doc")));
    return s;
}

/* An object schema of the fields found in where ("body"; NULL: all). */
static json_t *oa_object(json_t *fields, const char *where)
{
    json_t *props = json_object(), *required = json_array(), *f;
    size_t i;
    json_array_foreach(fields, i, f) {
        if (where && !gen_field_in(f, where))
            continue;
        json_object_set_new(props, gen_str(f, "name"), oa_field(f));
        if (!json_is_true(json_object_get(f, "optional")))
            json_array_append_new(required, json_string(gen_str(f, "name")));
    }
    json_t *o = json_pack("{s:s, s:o}", "type", "object", "properties", props);
    if (json_array_size(required))
        json_object_set_new(o, "required", required);
    else
        json_decref(required);
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

/* The error statuses an endpoint can answer, each with the Encore shape. */
static void oa_errors(json_t *responses, json_t *ep, const char *service_db_hint)
{
    json_t *req = json_object_get(ep, "request");
    bool typed = strcmp(gen_str(ep, "kind"), "typed") == 0;
    struct { const char *status, *why; bool when; } all[] = {
        {"400", "invalid_argument: a field is missing, has the wrong type, or the body is not JSON",
         !typed || json_array_size(req) > 0},
        {"401", "unauthenticated: this endpoint needs credentials", gen_needs_auth(ep)},
        {"404", "not_found", true},
        {"413", "the body is larger than the endpoint's limit", !typed || gen_has_body(req, gen_str(ep, "method"))},
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
    const char *service = gen_str(svc, "name"), *name = gen_str(ep, "name");
    char opid[300];
    if (many_methods)
        snprintf(opid, sizeof opid, "%s.%s.%s", service, name, method_lc);
    else
        snprintf(opid, sizeof opid, "%s.%s", service, name);
    json_t *op = json_pack("{s:s, s:[s]}", "operationId", opid, "tags", service);
    if (*gen_str(ep, "doc"))
        json_object_set_new(op, "summary", json_string(gen_str(ep, "doc")));
    json_t *params = json_array();
    json_t *req = json_object_get(ep, "request"), *f;
    size_t i;
    bool typed = strcmp(gen_str(ep, "kind"), "typed") == 0;
    if (typed) {
        json_array_foreach(req, i, f) {
            const char *in = gen_place(f, method_lc);
            if (strcmp(in, "body") == 0)
                continue;
            json_t *p = json_pack("{s:s, s:s, s:b, s:o}", "name", gen_str(f, "name"), "in", in, "required",
                                  strcmp(in, "path") == 0 || !json_is_true(json_object_get(f, "optional")), "schema",
                                  oa_field(f));
            json_array_append_new(params, p);
        }
        if (gen_has_body(req, method_lc))
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
                            json_string(strcmp(gen_str(ep, "kind"), "mounted") == 0
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
            if (gen_field_in(f, "header"))
                json_object_set_new(headers, gen_str(f, "name"), json_pack("{s:o}", "schema", oa_field(f)));
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
    if (gen_needs_auth(ep))
        json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearer"));
    return op;
}

json_t *gen_openapi(json_t *model, const char *title)
{
    json_t *codes = json_array();
    for (int c = KEEL_CANCELED; c <= KEEL_UNAUTHENTICATED; c++)
        json_array_append_new(codes, json_string(keel_code_name((keel_code)c)));
    json_t *doc = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:{}, s:{s:{s:{s:s, s:[s,s,s], s:{s:{s:s, s:o}, s:{s:s}, s:{s:[s,s]}}}}, "
        "s:{s:{s:s, s:s}}}}",
        "openapi", "3.1.0", "info", "title", title, "version", gen_str(model, "keel_version"), "description",
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
            if (!gen_is_public(ep))
                continue;
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
                        json_object_set_new(item, any[m], oa_operation(svc, ep, any[m], names, true));
            } else if (is_standard) {
                if (!json_object_get(item, lc))
                    json_object_set_new(item, lc, oa_operation(svc, ep, lc, names, false));
            } else {
                /* An extension method (PURGE) has no field of its own in
                 * OpenAPI 3.1's path item: it goes under an extension. */
                json_t *more = json_object_get(item, "x-keel-operations");
                if (!more)
                    json_object_set_new(item, "x-keel-operations", more = json_object());
                if (!json_object_get(more, method))
                    json_object_set_new(more, method, oa_operation(svc, ep, lc, names, false));
            }
            json_decref(names);
            free(path);
        }
    }
    return doc;
}
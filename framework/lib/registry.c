/* registry.c - the app's registry: services and endpoints checked and routed
 * once at start-up (read-only afterwards), the app model, and lookups by name
 * for service-to-service calls. */
#include "core.h"
#include "observe/metrics.h"
#include "observe/observe.h"
#include "http/conn_limit.h"
#include "http/schema_check.h"

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

/* Registers the endpoint's method in upper case: HTTP methods are
 * case-sensitive and clients send them in upper case, so a route declared
 * "get" would otherwise never match anything.  The endpoint is const data
 * (often in read-only memory), so the normalised copy lives in the route.
 * "*" (any method) is for raw and mounted endpoints: a typed endpoint decodes
 * its request by method (query string or body). */
static keel_error *normalise_method(keel_route *route)
{
    const keel_endpoint *ep = route->ep;
    const char *m = ep->method;
    if (!m || !*m)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: endpoint has no method: give one such as \"GET\"%s",
                              route->label, ep->kind == KEEL_EP_TYPED ? "" : ", or \"*\" for any method");
    if (strcmp(m, "*") == 0) {
        if (ep->kind == KEEL_EP_TYPED)
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "%s: a typed endpoint needs one method such as \"GET\", not \"*\" "
                                  "(KEEL_RAW takes any method)", route->label);
        memcpy(route->method, "*", 2);
        return NULL;
    }
    size_t len = strlen(m);
    if (len >= sizeof route->method)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: method \"%.*s...\" is longer than %zu characters",
                              route->label, 32, m, sizeof route->method - 1);
    for (size_t i = 0; i <= len; i++) {
        char c = m[i];
        bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
        if (c && !letter && (i == 0 || (c != '-' && c != '_')))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "%s: method \"%s\" is not an HTTP method: use letters (any case, registered "
                                  "in upper case), '-' and '_', such as \"GET\"", route->label, m);
        route->method[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    return NULL;
}

/* Finds the IN_PATH field called name (len bytes) in a request table. */
static const keel_field *path_field(const keel_field *fields, const char *name, size_t len)
{
    for (const keel_field *f = fields; f->type != KEEL_T_END; f++)
        if ((f->flags & KEEL_IN_PATH) && strlen(f->name) == len && memcmp(f->name, name, len) == 0)
            return f;
    return NULL;
}

/* True when pattern has a ":name", "*name" or "!name" segment called name. */
static bool pattern_has_param(const char *pattern, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = strchr(pattern, '/'); p; p = strchr(p + 1, '/')) {
        if ((p[1] == ':' || p[1] == '*' || p[1] == '!') && strncmp(p + 2, name, len) == 0 &&
            (p[2 + len] == '/' || p[2 + len] == '\0'))
            return true;
    }
    return false;
}

/* A typed endpoint's path parameters and its IN_PATH fields must match up. */
static keel_error *check_path_fields(const keel_route *route)
{
    const keel_endpoint *ep = route->ep;
    for (const char *p = strchr(ep->path, '/'); p; p = strchr(p + 1, '/')) {
        if (p[1] != ':' && p[1] != '*' && p[1] != '!')
            continue;
        const char *name = p + 2;
        size_t len = strcspn(name, "/");
        const keel_field *f = path_field(ep->req_fields, name, len);
        if (!f)
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "%s: path parameter \"%.*s\" of %s has no request field with KEEL_IN_PATH",
                                  route->label, (int)len, name, ep->path);
        if (f->type == KEEL_T_OBJECT || f->type == KEEL_T_ARRAY)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: path field \"%s\" must be a scalar",
                                  route->label, f->name);
    }
    for (const keel_field *f = ep->req_fields; f->type != KEEL_T_END; f++)
        if ((f->flags & KEEL_IN_PATH) && !pattern_has_param(ep->path, f->name))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "%s: request field \"%s\" is KEEL_IN_PATH but %s has no such parameter",
                                  route->label, f->name, ep->path);
    return NULL;
}

/* Every field table the app's typed endpoints reach (request and response
 * tables and the tables nested in them), sorted by address.  A table without
 * KEEL_END runs on into what follows it in memory, usually another of these:
 * knowing where they start lets the check say "has no KEEL_END" instead of
 * reporting the next table's fields as this one's. */
typedef struct known_tables {
    const keel_field **t;
    size_t n, cap;
} known_tables;

static bool known_add(known_tables *k, const keel_field *table)
{
    if (!table)
        return true;
    for (size_t i = 0; i < k->n; i++)
        if (k->t[i] == table)
            return true;
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        const keel_field **t = realloc(k->t, cap * sizeof *t);
        if (!t)
            return false;
        k->t = t;
        k->cap = cap;
    }
    k->t[k->n++] = table;
    return true;
}

/* True when entry is the start of a listed table. */
static bool known_listed(const known_tables *k, const keel_field *entry)
{
    for (size_t i = 0; i < k->n; i++)
        if (k->t[i] == entry)
            return true;
    return false;
}

static keel_error *known_collect(const keel_service *const *services, known_tables *k)
{
    bool ok = known_add(k, keel_empty_fields);
    for (size_t i = 0; ok && services[i]; i++)
        for (const keel_endpoint *ep = services[i]->endpoints; ok && ep && ep->kind != KEEL_EP_END; ep++)
            if (ep->kind == KEEL_EP_TYPED)
                ok = known_add(k, ep->req_fields) && known_add(k, ep->resp_fields);
    /* Nested tables, breadth first: a walk stops at the start of a table
     * already listed, as a table without KEEL_END runs into one. */
    for (size_t i = 0; ok && i < k->n; i++)
        for (const keel_field *f = k->t[i]; ok && f->type != KEEL_T_END; f++) {
            if (f != k->t[i] && known_listed(k, f))
                break;
            if (f->type == KEEL_T_OBJECT || (f->type == KEEL_T_ARRAY && f->elem_type == KEEL_T_OBJECT))
                ok = known_add(k, f->fields);
        }
    if (!ok)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel__schema_sort_tables(k->t, k->n);
    return NULL;
}

static keel_error *check_endpoint(keel_route *route, const known_tables *known)
{
    const keel_endpoint *ep = route->ep;
    if (!ep->name || !*ep->name || !ep->path)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: endpoint without name or path", route->label);
    if (strncmp(ep->path, "/__keel/", 8) == 0 || strcmp(ep->path, "/__keel") == 0)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: path \"%s\": /__keel/ is the framework's (metrics, health)",
                              route->label, ep->path);
    if (ep->kind != KEEL_EP_MHD && ep->kind != KEEL_EP_RAW && ep->kind != KEEL_EP_TYPED)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: unknown endpoint kind", route->label);
    keel_error *err = normalise_method(route);
    if (err)
        return err;
    if (ep->kind == KEEL_EP_MHD)
        return ep->mhd_handler ? NULL : keel_error_new(KEEL_INVALID_ARGUMENT, "%s: a mounted endpoint needs a handler",
                                                       route->label);
    if (ep->kind == KEEL_EP_RAW)
        return ep->raw ? NULL : keel_error_new(KEEL_INVALID_ARGUMENT, "%s: a raw endpoint needs a handler",
                                               route->label);
    if (!ep->typed)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: a typed endpoint needs a handler", route->label);
    if (!ep->req_fields || !ep->resp_fields)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: a typed endpoint needs request and response field tables",
                              route->label);
    char what[160], table[128];
    snprintf(what, sizeof what, "%s request", route->label);
    if (ep->req_type)
        snprintf(table, sizeof table, "%s_fields", ep->req_type);
    err = keel__schema_check_known(ep->req_fields, what, ep->req_type ? table : NULL,
                                   known->t, known->n);
    if (err)
        return err;
    snprintf(what, sizeof what, "%s response", route->label);
    if (ep->resp_type)
        snprintf(table, sizeof table, "%s_fields", ep->resp_type);
    err = keel__schema_check_known(ep->resp_fields, what, ep->resp_type ? table : NULL,
                                   known->t, known->n);
    if (err)
        return err;
    return check_path_fields(route);
}

const keel_route *keel__find_route(const keel_app *app, const char *service, const char *name)
{
    for (size_t i = 0; i < app->nroutes; i++) {
        const keel_route *r = &app->routes[i];
        if (strcmp(r->service->name, service) == 0 && strcmp(r->ep->name, name) == 0)
            return r;
    }
    return NULL;
}

static keel_error *check_docs(const keel_service *s);

/* Counts endpoints and checks service names; fills *count. */
static keel_error *check_services(const keel_service *const *services, size_t *count)
{
    size_t n = 0;
    for (size_t i = 0; services[i]; i++) {
        const keel_service *s = services[i];
        if (!keel__name_valid(s->name))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "service name \"%s\" is invalid: use lower-case letters, digits and _, "
                                  "starting with a letter (at most %d)",
                                  s->name ? s->name : "(null)", KEEL_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(services[j]->name, s->name) == 0)
                return keel_error_new(KEEL_INVALID_ARGUMENT, "service \"%s\" is listed twice", s->name);
        keel_error *err = check_docs(s);
        if (err)
            return err;
        for (const keel_endpoint *ep = s->endpoints; ep && ep->kind != KEEL_EP_END; ep++)
            n++;
    }
    *count = n;
    return NULL;
}

/* True when one of the first end entries of list is name. */
static bool listed_before(const char *const *list, size_t end, const char *name)
{
    for (size_t i = 0; i < end; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

/* True when s declares secret name in .secrets. */
static bool declares_secret(const keel_service *s, const char *name)
{
    for (size_t i = 0; s->secrets && s->secrets[i]; i++)
        if (strcmp(s->secrets[i], name) == 0)
            return true;
    return false;
}

/* Checked here (not only when secrets are looked up at start) so that the
 * app model never lists a name the store could not hold. */
static keel_error *check_secrets(const keel_service *s)
{
    for (size_t i = 0; s->secrets && s->secrets[i]; i++) {
        const char *name = s->secrets[i];
        if (!keel_secret_name_valid(name))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "service %s: .secrets: \"%s\" is not a valid secret name: use letters, digits "
                                  "and _, starting with a letter (at most 64)", s->name, name);
        if (listed_before(s->secrets, i, name))
            return keel_error_new(KEEL_INVALID_ARGUMENT, "service %s: .secrets: \"%s\" is listed twice",
                                  s->name, name);
    }
    return NULL;
}

/* An external database's password secret must be declared: only declared
 * secrets are checked at start-up, so an undeclared one would surface as a
 * 503 on the first request instead of a refusal to start. */
static keel_error *check_external_databases(const keel_service *s)
{
    for (size_t i = 0; s->external_databases && s->external_databases[i]; i++) {
        const keel_extdb *db = s->external_databases[i];
        if (!keel__name_valid(db->name))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "service %s: .external_databases: name \"%s\" is invalid: use lower-case "
                                  "letters, digits and _, starting with a letter (at most %d)",
                                  s->name, db->name ? db->name : "(null)", KEEL_NAME_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->external_databases[j]->name, db->name) == 0)
                return keel_error_new(KEEL_INVALID_ARGUMENT,
                                      "service %s: .external_databases: \"%s\" is listed twice", s->name, db->name);
        if (db->password_secret && !declares_secret(s, db->password_secret))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "service %s: .external_databases: the password secret %s of \"%s\" is not "
                                  "in .secrets: declare it there so that start-up checks it is set",
                                  s->name, db->password_secret, db->name);
    }
    return NULL;
}

/* A .calls entry that keel_call could only answer with not_found is refused
 * now rather than found by the first request that makes the call. */
static keel_error *check_call(const keel_app *app, const keel_service *s, const char *call)
{
    const char *dot = strchr(call, '.');
    size_t len = dot ? (size_t)(dot - call) : strlen(call);
    const keel_service *target = NULL;
    for (size_t i = 0; !target && app->services[i]; i++)
        if (strlen(app->services[i]->name) == len && memcmp(app->services[i]->name, call, len) == 0)
            target = app->services[i];
    if (!target)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "service %s: .calls: \"%s\" names no service of the app",
                              s->name, call);
    if (!dot)
        return NULL;
    const keel_route *r = keel__find_route(app, target->name, dot + 1);
    if (!r)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "service %s: .calls: \"%s\": service %s has no endpoint \"%s\"",
                              s->name, call, target->name, dot + 1);
    if (r->ep->kind != KEEL_EP_TYPED)
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "service %s: .calls: \"%s\" is not a typed endpoint (keel_call reaches typed "
                              "endpoints only)", s->name, call);
    return NULL;
}

/* Checks what each service declares it depends on (secrets, external
 * databases, calls); the routes must be registered (calls name endpoints). */
static keel_error *check_dependencies(const keel_app *app)
{
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        keel_error *err = check_secrets(s);
        if (!err)
            err = check_external_databases(s);
        for (size_t j = 0; !err && s->calls && s->calls[j]; j++) {
            err = check_call(app, s, s->calls[j]);
            if (!err && listed_before(s->calls, j, s->calls[j]))
                err = keel_error_new(KEEL_INVALID_ARGUMENT, "service %s: .calls: \"%s\" is listed twice",
                                     s->name, s->calls[j]);
        }
        if (err)
            return err;
    }
    return NULL;
}

/* Endpoint names come from handler names (#fn in the KEEL_ macros), which a
 * user reusing one function for two routes cannot guess: say so. */
static keel_error *declared_twice(const keel_route *first, const keel_route *again)
{
    return keel_error_new(KEEL_INVALID_ARGUMENT,
                          "endpoint %s is declared twice (%s %s and %s %s): an endpoint's name is its handler "
                          "function's name, and must be unique in its service; give each route a handler function "
                          "of its own (a wrapper that calls the shared code will do)",
                          again->label, first->method, first->ep->path, again->method, again->ep->path);
}

/* Registers every endpoint of every service.  app->router, which routes
 * requests from outside, holds only the endpoints reachable from outside:
 * a private endpoint must look exactly like a path nobody declared (no 404
 * where a public route would answer, no 405 or preflight naming its
 * method, no path taken from a public parameter or fallback route).  Conflicts are still checked across
 * all endpoints, private ones included, on a second router used only here. */
static keel_error *register_routes(keel_app *app)
{
    known_tables known = {NULL, 0, 0};
    keel_router *all = NULL;
    keel_error *err = keel_router_new(&all);
    if (!err)
        err = known_collect(app->services, &known);
    size_t n = 0;
    for (size_t i = 0; !err && app->services[i]; i++) {
        const keel_service *s = app->services[i];
        for (const keel_endpoint *ep = s->endpoints; !err && ep && ep->kind != KEEL_EP_END; ep++) {
            keel_route *route = &app->routes[n];
            route->service = s;
            route->ep = ep;
            snprintf(route->label, sizeof route->label, "%s.%s", s->name, ep->name ? ep->name : "?");
            err = check_endpoint(route, &known);
            if (err)
                break;
            const keel_route *first = keel__find_route(app, s->name, ep->name);
            if (first) {
                err = declared_twice(first, route);
                break;
            }
            app->nroutes = ++n;
            err = keel_router_add(all, route->method, ep->path, route, route->label);
            if (!err && !(ep->flags & KEEL_PRIVATE))
                err = keel_router_add(app->router, route->method, ep->path, route, route->label);
        }
    }
    keel_router_free(all);
    free(known.t);
    return err;
}

keel_error *keel_app_new(const keel_service *const *services, const keel_config *cfg, keel_app **out)
{
    if (sodium_init() < 0)
        return keel_error_new(KEEL_INTERNAL, "libsodium cannot be initialised");
    size_t count = 0;
    keel_error *err = check_services(services, &count);
    if (err)
        return err;
    keel_app *app = calloc(1, sizeof *app);
    if (!app || !(app->routes = calloc(count ? count : 1, sizeof *app->routes))) {
        free(app);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    app->cfg = *cfg;
    app->services = services;
    uint32_t prefix = randombytes_random();
    snprintf(app->id_prefix, sizeof app->id_prefix, "%08x", prefix);
    err = keel_router_new(&app->router);
    if (!err)
        err = register_routes(app);
    if (!err)
        err = check_dependencies(app);
    if (!err)
        err = keel__middleware_register(app);
    if (!err)
        err = keel__databases_register(app);
    if (err) {
        keel_app_free(app);
        return err;
    }
    *out = app;
    return NULL;
}

void keel_app_free(keel_app *app)
{
    if (!app || app->loops)
        return; /* loops still there mean the stop gave up: leave them */
    keel__databases_close(app);
    keel__observe_stop(app);
    keel__metrics_free(app);
    keel__middleware_free(app);
    keel__conn_limit_free(app->conn_limit);
    keel_router_free(app->router);
    free(app->routes);
    free(app);
}

static json_t *names_model(const char *const *names);

/* The description of name in s's docs, or NULL. */
static const char *doc_of(const keel_service *s, const char *name)
{
    for (const keel_doc *d = s->docs; d && d->name; d++)
        if (strcmp(d->name, name) == 0)
            return d->text;
    return NULL;
}

/* Adds "doc" to the described fields (keel_schema_describe's array) whose
 * "prefix.name" path the service documents, nested objects and arrays'
 * objects included. */
static void fields_docs(const keel_service *s, json_t *fields, const char *prefix)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        char path[512];
        snprintf(path, sizeof path, "%s.%s", prefix, json_string_value(json_object_get(f, "name")));
        const char *doc = doc_of(s, path);
        if (doc)
            json_object_set_new(f, "doc", json_string(doc));
        json_t *nested = json_object_get(f, "fields");
        if (!nested)
            nested = json_object_get(json_object_get(f, "items"), "fields");
        if (nested)
            fields_docs(s, nested, path);
    }
}

/* True when path ("field" or "field.sub...") names a field of fields. */
static bool field_path_exists(const keel_field *fields, const char *path)
{
    size_t n = strcspn(path, ".");
    for (const keel_field *f = fields; f && f->type != KEEL_T_END; f++) {
        if (strlen(f->name) != n || strncmp(f->name, path, n) != 0)
            continue;
        if (!path[n])
            return true;
        const keel_field *nested = f->fields;
        return nested && field_path_exists(nested, path + n + 1);
    }
    return false;
}

/* Every doc of s names an endpoint of s or a field of one of its typed
 * endpoints' structs: a misspelt name would document nothing, silently. */
static keel_error *check_docs(const keel_service *s)
{
    for (const keel_doc *d = s->docs; d && d->name; d++) {
        bool found = false;
        if (!d->text || !*d->text)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "service %s: .docs: \"%s\" has no text", s->name, d->name);
        const char *dot = strchr(d->name, '.');
        for (const keel_endpoint *ep = s->endpoints; ep && ep->kind != KEEL_EP_END && !found; ep++) {
            if (!dot) {
                found = ep->name && strcmp(ep->name, d->name) == 0;
                continue;
            }
            size_t tn = (size_t)(dot - d->name);
            if (ep->kind != KEEL_EP_TYPED)
                continue;
            if (ep->req_type && strlen(ep->req_type) == tn && strncmp(ep->req_type, d->name, tn) == 0 &&
                field_path_exists(ep->req_fields, dot + 1))
                found = true;
            if (ep->resp_type && strlen(ep->resp_type) == tn && strncmp(ep->resp_type, d->name, tn) == 0 &&
                field_path_exists(ep->resp_fields, dot + 1))
                found = true;
        }
        if (!found)
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "service %s: .docs: \"%s\" names no endpoint of the service and no field of its "
                                  "typed endpoints' request or response structs (\"endpoint\" or \"struct.field\")",
                                  s->name, d->name);
    }
    return NULL;
}

static json_t *endpoint_model(const keel_route *r)
{
    const keel_endpoint *ep = r->ep;
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", ep->name, "method", r->method,
                          "path", ep->path, "kind", ep->kind == KEEL_EP_TYPED ? "typed" : ep->kind == KEEL_EP_RAW ? "raw" : "mounted",
                          "access", (ep->flags & KEEL_PRIVATE) ? "private" : (ep->flags & KEEL_AUTH) ? "auth" : "public");
    if (!e)
        return NULL;
    json_object_set_new(e, "blocking", json_boolean((ep->flags & KEEL_BLOCKING) != 0));
    json_object_set_new(e, "tags", names_model(ep->tags));
    json_t *mws = json_array(), *limits = json_array();
    for (size_t i = 0; i < r->nmiddleware; i++) {
        const keel_middleware *mw = r->middleware[i];
        json_array_append_new(mws, json_string(mw->name));
        if (mw->rate_limit)
            json_array_append_new(limits, json_pack("{s:f, s:f, s:s}", "per_second", mw->rate_limit->per_second,
                                                    "burst", mw->rate_limit->burst, "by",
                                                    mw->rate_limit->by == KEEL_RATE_BY_SUBJECT ? "subject" : "ip"));
    }
    json_object_set_new(e, "middleware", mws);
    json_object_set_new(e, "rate_limits", limits);
    const char *doc = doc_of(r->service, ep->name);
    if (doc)
        json_object_set_new(e, "doc", json_string(doc));
    if (ep->kind == KEEL_EP_TYPED) {
        json_t *req = keel_schema_describe(ep->req_fields), *resp = keel_schema_describe(ep->resp_fields);
        if (ep->req_type)
            fields_docs(r->service, req, ep->req_type);
        if (ep->resp_type)
            fields_docs(r->service, resp, ep->resp_type);
        json_object_set_new(e, "request", req);
        json_object_set_new(e, "response", resp);
    } else if (ep->kind == KEEL_EP_RAW) {
        json_object_set_new(e, "streams_body", json_boolean(ep->on_body != NULL));
    }
    return e;
}

/* A NULL-terminated list of names (may be NULL) as a JSON array. */
static json_t *names_model(const char *const *names)
{
    json_t *list = json_array();
    for (size_t i = 0; list && names && names[i]; i++)
        json_array_append_new(list, json_string(names[i]));
    return list;
}

static json_t *external_databases_model(const keel_service *s)
{
    json_t *list = json_array();
    for (size_t i = 0; list && s->external_databases && s->external_databases[i]; i++) {
        const keel_extdb *db = s->external_databases[i];
        json_array_append_new(list, json_pack("{s:s, s:s?}", "name", db->name, "password_secret",
                                              db->password_secret));
    }
    return list;
}

/* Each entry split into service and endpoint (null: any of its endpoints),
 * so that readers need not parse the declaration's "service.endpoint". */
static json_t *calls_model(const keel_service *s)
{
    json_t *list = json_array();
    for (size_t i = 0; list && s->calls && s->calls[i]; i++) {
        const char *call = s->calls[i], *dot = strchr(call, '.');
        json_t *c = json_object();
        json_object_set_new(c, "service", dot ? json_stringn(call, (size_t)(dot - call)) : json_string(call));
        json_object_set_new(c, "endpoint", dot ? json_string(dot + 1) : json_null());
        json_array_append_new(list, c);
    }
    return list;
}

json_t *keel_app_model(const keel_app *app)
{
    json_t *services = json_array();
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        json_t *eps = json_array();
        for (size_t j = 0; j < app->nroutes; j++)
            if (app->routes[j].service == s)
                json_array_append_new(eps, endpoint_model(&app->routes[j]));
        json_t *svc = json_pack("{s:s, s:o, s:o, s:o, s:o, s:o}", "name", s->name,
                                "endpoints", eps, "databases", keel__databases_model(app, s),
                                "external_databases", external_databases_model(s),
                                "secrets", names_model(s->secrets), "calls", calls_model(s));
        json_t *mws = json_array();
        for (size_t j = 0; s->middleware && s->middleware[j]; j++)
            json_array_append_new(mws, json_pack("{s:s, s:b, s:o}", "name", s->middleware[j]->name, "global",
                                                 s->middleware[j]->global, "tags", names_model(s->middleware[j]->tags)));
        json_object_set_new(svc, "middleware", mws);
        if (s->auth)
            json_object_set_new(svc, "auth_handler",
                                json_pack("{s:s, s:s, s:o, s:o}", "name", s->auth->name, "data_type", s->auth->data_type,
                                          "data", keel_schema_describe(s->auth->data_fields),
                                          "cookie", s->auth->cookie ? json_string(s->auth->cookie) : json_null()));
        json_array_append_new(services, svc);
    }
    return json_pack("{s:s, s:o}", "keel_version", KEEL_VERSION, "services", services);
}

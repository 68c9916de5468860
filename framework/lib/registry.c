/* registry.c - the app's registry: services and endpoints checked and routed
 * once at start-up (read-only afterwards), the app model, and lookups by name
 * for service-to-service calls. */
#include "core.h"
#include "conn_limit.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

bool keel__name_valid(const char *name)
{
    if (!name || !islower((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
            return false;
    return strlen(name) <= KEEL_NAME_MAX;
}

static bool valid_method(const char *m, bool allow_any)
{
    if (!m || !*m)
        return false;
    if (strcmp(m, "*") == 0)
        return allow_any;
    for (const char *p = m; *p; p++)
        if (!isupper((unsigned char)*p))
            return false;
    return true;
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

static keel_error *check_endpoint(const keel_route *route)
{
    const keel_endpoint *ep = route->ep;
    if (!ep->name || !ep->path)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: endpoint without name or path", route->label);
    if (ep->kind == KEEL_EP_MHD) {
        if (!valid_method(ep->method, true) || !ep->mhd_handler)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: a mounted handler needs a method and a handler",
                                  route->label);
        return NULL;
    }
    if (ep->kind == KEEL_EP_RAW) {
        if (!valid_method(ep->method, true) || !ep->raw)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: raw endpoint needs a method and a handler",
                                  route->label);
        return NULL;
    }
    if (ep->kind != KEEL_EP_TYPED)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: unknown endpoint kind", route->label);
    if (!valid_method(ep->method, false) || !ep->typed || !ep->req_fields || !ep->resp_fields)
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "%s: typed endpoint needs one method (not \"*\"), a handler and field tables",
                              route->label);
    char what[160];
    snprintf(what, sizeof what, "%s request", route->label);
    keel_error *err = keel_schema_check(ep->req_fields, what);
    if (err)
        return err;
    snprintf(what, sizeof what, "%s response", route->label);
    err = keel_schema_check(ep->resp_fields, what);
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
        for (const keel_endpoint *ep = s->endpoints; ep && ep->kind != KEEL_EP_END; ep++)
            n++;
    }
    *count = n;
    return NULL;
}

/* Registers every endpoint of every service with the router. */
static keel_error *register_routes(keel_app *app)
{
    size_t n = 0;
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        for (const keel_endpoint *ep = s->endpoints; ep && ep->kind != KEEL_EP_END; ep++) {
            keel_route *route = &app->routes[n];
            route->service = s;
            route->ep = ep;
            snprintf(route->label, sizeof route->label, "%s.%s", s->name, ep->name ? ep->name : "?");
            keel_error *err = check_endpoint(route);
            if (err)
                return err;
            if (keel__find_route(app, s->name, ep->name))
                return keel_error_new(KEEL_INVALID_ARGUMENT, "endpoint %s is declared twice", route->label);
            app->nroutes = ++n;
            err = keel_router_add(app->router, ep->method, ep->path, route, route->label);
            if (err)
                return err;
        }
    }
    return NULL;
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
    keel__conn_limit_free(app->conn_limit);
    keel_router_free(app->router);
    free(app->routes);
    free(app);
}

static json_t *endpoint_model(const keel_route *r)
{
    const keel_endpoint *ep = r->ep;
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", ep->name, "method", ep->method,
                          "path", ep->path, "kind", ep->kind == KEEL_EP_TYPED ? "typed" : ep->kind == KEEL_EP_RAW ? "raw" : "mounted",
                          "access", (ep->flags & KEEL_PRIVATE) ? "private" : "public");
    if (!e)
        return NULL;
    json_object_set_new(e, "blocking", json_boolean((ep->flags & KEEL_BLOCKING) != 0));
    if (ep->kind == KEEL_EP_TYPED) {
        json_object_set_new(e, "request", keel_schema_describe(ep->req_fields));
        json_object_set_new(e, "response", keel_schema_describe(ep->resp_fields));
    } else if (ep->kind == KEEL_EP_RAW) {
        json_object_set_new(e, "streams_body", json_boolean(ep->on_body != NULL));
    }
    return e;
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
        json_array_append_new(services, json_pack("{s:s, s:o, s:o}", "name", s->name, "endpoints", eps,
                                                  "databases", keel__databases_model(app, s)));
    }
    return json_pack("{s:s, s:o}", "keel_version", KEEL_VERSION, "services", services);
}

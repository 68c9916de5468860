/* tests/unit/test_registry.c - the registry's start-up checks (routes, path
 * parameters, service and database names, declared dependencies) and the app
 * model.  Errors are tested in test_error.c, the arena in test_arena.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "keel/keel.h"
#include "core.h" /* the app's router, to see what a route was registered as */
#include "tap.h"

/* ---- the registry's start-up checks ---------------------------------------- */

typedef struct { const char *id; } id_req;
typedef struct { const char *id; } other_req;
static const keel_field id_req_fields[] = { KEEL_STRING(id_req, id, KEEL_IN_PATH), KEEL_END };
static const keel_field other_req_fields[] = { KEEL_STRING(other_req, id), KEEL_END };

static keel_error *by_id(keel_req *req, const id_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *by_id_too(keel_req *req, const id_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *no_path_field(keel_req *req, const other_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}

/* Builds an app from one service and returns the start-up error message. */
static char *startup_error(const keel_service *svc, const keel_service *svc2)
{
    static char message[512];
    keel_config cfg;
    keel_config_defaults(&cfg);
    keel_app *app = NULL;
    const keel_service *list[] = {svc, svc2, NULL};
    keel_error *err = keel_app_new(list, &cfg, &app);
    if (!err) {
        keel_app_free(app);
        return NULL;
    }
    snprintf(message, sizeof message, "%s", err->message);
    keel_error_free(err);
    return message;
}

static void test_registry(void)
{
    const keel_service conflict = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty),
        KEEL_TYPED("GET", "/orders/:id", by_id_too, id_req, keel_empty),
        KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    char *msg = startup_error(&conflict, NULL);
    like(msg, "orders.by_id", "a route conflict names the first registration");
    like(msg, "orders.by_id_too", "a route conflict names the second registration");
    /* Private endpoints are left out of the router that serves requests,
     * not out of the conflict check. */
    const keel_service private_conflict = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty),
        KEEL_TYPED("GET", "/orders/:id", by_id_too, id_req, keel_empty, KEEL_PRIVATE),
        KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&private_conflict, NULL), "orders.by_id_too",
         "a private endpoint with a public one's method and shape is a conflict too");

    const keel_service bad_pattern = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&bad_pattern, NULL), "orders.by_id", "an unparsable path names its endpoint");

    const keel_service missing_field = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", no_path_field, other_req, keel_empty), KEEL_ENDPOINT_END},
        NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&missing_field, NULL), "path parameter \"id\"",
         "a path parameter without a KEEL_IN_PATH field is refused");

    const keel_service extra_field = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&extra_field, NULL), "no such parameter", "a KEEL_IN_PATH field without a parameter is refused");

    const keel_service framework_path = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/__keel/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END},
        NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&framework_path, NULL), "/__keel/ is the framework's",
         "a path under /__keel/ is refused: the framework's pages never collide with the app's");

    const keel_service documented = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END},
        NULL, NULL, NULL, NULL, NULL, NULL,
        .docs = KEEL_DOCS({"by_id", "One order."}, {"id_req.id", "The order's number."})};
    ok(startup_error(&documented, NULL) == NULL, "docs of an endpoint and of a request field are accepted");
    const keel_service misdocumented = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END},
        NULL, NULL, NULL, NULL, NULL, NULL, .docs = KEEL_DOCS({"id_req.idd", "Misspelt."})};
    like(startup_error(&misdocumented, NULL), "\"id_req.idd\" names no endpoint",
         "a doc that documents nothing is refused, named");

    const keel_service bad_name = {"Orders", (const keel_endpoint[]){KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&bad_name, NULL), "service name", "an invalid service name is refused");

    const keel_service ok_svc = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&ok_svc, &ok_svc), "listed twice", "a service listed twice is refused");
    ok(startup_error(&ok_svc, NULL) == NULL, "a valid service builds");

    const keel_service other = {"billing", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id_too, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    msg = startup_error(&ok_svc, &other);
    ok(msg != NULL, "conflicts across services are found too");
    like(msg, "billing.by_id_too", "and name the other service's endpoint");

    static keel_sqldb orders_db = KEEL_SQLDB("orders", "migrations/orders");
    static keel_sqldb orders_again = KEEL_SQLDB("orders", "migrations/orders2");
    static keel_sqldb unknown_ref = KEEL_SQLDB_NAMED("ledger");
    static keel_sqldb orders_ref = KEEL_SQLDB_NAMED("orders");
    static keel_sqldb bad_db = KEEL_SQLDB("Orders!", "migrations/x");
    const keel_service with_db = {"orders", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                  (keel_sqldb *const[]){&orders_db, NULL}, NULL, NULL, NULL, NULL, NULL, NULL};
    const keel_service refers_unknown = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                         (keel_sqldb *const[]){&unknown_ref, NULL}, NULL, NULL, NULL, NULL, NULL, NULL};
    const keel_service refers_orders = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                        (keel_sqldb *const[]){&orders_ref, NULL}, NULL, NULL, NULL, NULL, NULL, NULL};
    const keel_service declares_again = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                         (keel_sqldb *const[]){&orders_again, NULL}, NULL, NULL, NULL, NULL, NULL, NULL};
    const keel_service bad_db_svc = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                     (keel_sqldb *const[]){&bad_db, NULL}, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&with_db, &refers_unknown), "sqldb: unknown database \"ledger\"",
         "a reference to an undeclared database fails start-up with sqldb: unknown database");
    ok(startup_error(&with_db, &refers_orders) == NULL, "a reference to a declared database resolves");
    like(startup_error(&with_db, &declares_again), "KEEL_SQLDB_NAMED",
         "two declarations of one database are refused with the fix");
    like(startup_error(&bad_db_svc, NULL), "database name", "an invalid database name is refused");

    /* Service and database names follow one rule: at most 48 bytes each. */
    static const char n48[] = "a23456789012345678901234567890123456789012345678";
    static const char n49[] = "a234567890123456789012345678901234567890123456789";
    static keel_sqldb db48 = KEEL_SQLDB(n48, "migrations/x");
    static keel_sqldb db49 = KEEL_SQLDB(n49, "migrations/x");
    const keel_service svc48 = {n48, (const keel_endpoint[]){KEEL_ENDPOINT_END}, (keel_sqldb *const[]){&db48, NULL},
                                NULL, NULL, NULL, NULL, NULL, NULL};
    const keel_service svc49 = {n49, (const keel_endpoint[]){KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    const keel_service db49_svc = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                   (keel_sqldb *const[]){&db49, NULL}, NULL, NULL, NULL, NULL, NULL, NULL};
    ok(startup_error(&svc48, NULL) == NULL, "a 48-byte service name with a 48-byte database name builds");
    like(startup_error(&svc49, NULL), "at most 48", "a 49-byte service name is refused, saying the limit");
    like(startup_error(&db49_svc, NULL), "at most 48", "a 49-byte database name is refused, saying the limit");
}

/* ---- start-up messages a new user meets (issue 12) -------------------------- */

/* Two tables laid out back to back, as the compiler often places separate
 * ones: the first has no KEEL_END, so it runs on into the second. */
typedef struct { const char *id; } unended_req;
typedef struct { const char *id; } next_req;
static const keel_field back_to_back[] = {
    KEEL_STRING(unended_req, id, KEEL_IN_PATH),
    /* KEEL_END forgotten here */
    KEEL_STRING(next_req, id, KEEL_IN_PATH),
    KEEL_END
};
#define unended_req_fields back_to_back
#define next_req_fields (&back_to_back[1])

/* The same, written with KEEL_FIELDS, which cannot forget the end. */
typedef struct { const char *id; } fields_req;
static const keel_field fields_req_fields[] = KEEL_FIELDS(KEEL_STRING(fields_req, id, KEEL_IN_PATH));
typedef struct { const char *id; } next_fields_req;
static const keel_field next_fields_req_fields[] = KEEL_FIELDS(KEEL_STRING(next_fields_req, id, KEEL_IN_PATH));

static keel_error *unended(keel_req *req, const unended_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *next_one(keel_req *req, const next_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *with_fields(keel_req *req, const fields_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *next_with_fields(keel_req *req, const next_fields_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *raw_ok(keel_req *req, keel_resp *resp)
{
    (void)req; (void)resp;
    return NULL;
}

/* What the app's router does with method on path ("found", "405" or "404"),
 * or NULL when svc does not build. */
static const char *route_of(const keel_service *svc, const char *method, const char *path)
{
    keel_config cfg;
    keel_config_defaults(&cfg);
    keel_app *app = NULL;
    const keel_service *list[] = {svc, NULL};
    keel_error *err = keel_app_new(list, &cfg, &app);
    if (err) {
        diag("unexpected error: %s", err->message);
        keel_error_free(err);
        return NULL;
    }
    char scratch[KEEL_ROUTER_SCRATCH(64)];
    keel_route_match match;
    keel_route_result r = keel_router_lookup(app->router, method, path, scratch, sizeof scratch, &match);
    keel_app_free(app);
    return r == KEEL_ROUTE_FOUND ? "found" : r == KEEL_ROUTE_METHOD_NOT_ALLOWED ? "405" : "404";
}

/* The method the app model gives the service's first endpoint. */
static char *model_method(const keel_service *svc)
{
    static char method[32];
    keel_config cfg;
    keel_config_defaults(&cfg);
    keel_app *app = NULL;
    const keel_service *list[] = {svc, NULL};
    keel_error *err = keel_app_new(list, &cfg, &app);
    if (err) {
        keel_error_free(err);
        return NULL;
    }
    json_t *model = keel_app_model(app);
    json_t *ep = json_array_get(json_object_get(json_array_get(json_object_get(model, "services"), 0),
                                                "endpoints"), 0);
    const char *m = json_string_value(json_object_get(ep, "method"));
    snprintf(method, sizeof method, "%s", m ? m : "(none)");
    json_decref(model);
    keel_app_free(app);
    return method;
}

static void test_startup_messages(void)
{
    /* Methods in any case are registered in upper case. */
    const keel_service lower = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("get", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    ok(startup_error(&lower, NULL) == NULL, "a lower-case method (\"get\") is accepted");
    is_str(route_of(&lower, "GET", "/orders/1"), "found", "and routes GET requests");
    is_str(route_of(&lower, "get", "/orders/1"), "405", "not requests whose method is spelled \"get\"");
    is_str(model_method(&lower), "GET", "the app model shows it in upper case");
    const keel_service mixed = {"orders", (const keel_endpoint[]){
        KEEL_RAW("Post", "/orders/ping", raw_ok), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    is_str(route_of(&mixed, "POST", "/orders/ping"), "found", "a raw endpoint's \"Post\" routes POST");
    const keel_service spaced = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GE T", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    is_str(startup_error(&spaced, NULL),
           "orders.by_id: method \"GE T\" is not an HTTP method: use letters (any case, registered in upper case), "
           "'-' and '_', such as \"GET\"", "a method that is no token is refused, saying what a method is");
    const keel_service any = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("*", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    is_str(startup_error(&any, NULL),
           "orders.by_id: a typed endpoint needs one method such as \"GET\", not \"*\" (KEEL_RAW takes any method)",
           "\"*\" on a typed endpoint is refused on its own, naming the alternative");
    const keel_service none = {"orders", (const keel_endpoint[]){
        KEEL_RAW("", "/orders/ping", raw_ok), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    like(startup_error(&none, NULL), "orders.raw_ok: endpoint has no method", "an empty method is refused");

    /* One function for two routes: the name clash is explained. */
    const keel_service reused = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty),
        KEEL_TYPED("delete", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    is_str(startup_error(&reused, NULL),
           "endpoint orders.by_id is declared twice (GET /orders/:id and DELETE /orders/:id): an endpoint's name is "
           "its handler function's name, and must be unique in its service; give each route a handler function of "
           "its own (a wrapper that calls the shared code will do)",
           "one handler on two routes: says names come from handler functions and what to do");

    /* A table without KEEL_END that runs into another table. */
    const keel_service unended_svc = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", unended, unended_req, keel_empty),
        KEEL_TYPED("GET", "/next/:id", next_one, next_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    is_str(startup_error(&unended_svc, NULL),
           "orders.unended request: the field table unended_req_fields has no KEEL_END: after its field \"id\" it "
           "runs on into another table; end it with KEEL_END, or write it as KEEL_FIELDS(...), which adds the end",
           "a field table without KEEL_END is reported as such, not as a duplicate name");
    const keel_service ended_svc = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", with_fields, fields_req, keel_empty),
        KEEL_TYPED("GET", "/next/:id", next_with_fields, next_fields_req, keel_empty), KEEL_ENDPOINT_END},
        NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    ok(startup_error(&ended_svc, NULL) == NULL, "tables written with KEEL_FIELDS build");
    static const keel_field empty_fields[] = KEEL_FIELDS();
    ok(empty_fields[0].type == KEEL_T_END && sizeof empty_fields == sizeof(keel_field),
       "KEEL_FIELDS() is the empty table");
    ok(sizeof fields_req_fields == 2 * sizeof(keel_field) && fields_req_fields[1].type == KEEL_T_END,
       "KEEL_FIELDS(field) is that field and KEEL_END");
}

/* ---- what services declare they depend on ------------------------------------ */

static keel_error *raw_ping(keel_req *req, keel_resp *resp)
{
    (void)req; (void)resp;
    return NULL;
}

static const keel_endpoint orders_endpoints[] = {
    KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty),
    KEEL_RAW("GET", "/orders/ping", raw_ping),
    KEEL_ENDPOINT_END
};

/* A billing service declaring calls, crm (NULL: no external database) and
 * secrets; valid until the next call (crm's list is static). */
static keel_service billing_with(const char *const *calls, keel_extdb *crm, const char *const *secrets)
{
    static keel_extdb *dbs[2];
    dbs[0] = crm;
    dbs[1] = NULL;
    static const keel_endpoint no_endpoints[] = {KEEL_ENDPOINT_END};
    return (keel_service){.name = "billing", .endpoints = no_endpoints,
                          .secrets = secrets, .external_databases = crm ? dbs : NULL, .calls = calls};
}

/* The error of the app made of orders and billing, or NULL when it builds. */
static char *billing_error(const keel_service *billing)
{
    const keel_service orders = {.name = "orders", .endpoints = orders_endpoints};
    return startup_error(&orders, billing);
}

static void test_dependencies(void)
{
    static const char *const none[] = {NULL};
    static const char *const crm_secret[] = {"CRM_DB_PASSWORD", NULL};
    static keel_extdb crm = KEEL_EXTDB("crm", "CRM_DB_PASSWORD");
    static keel_extdb no_password = KEEL_EXTDB("crm", NULL);
    static keel_extdb bad_crm = KEEL_EXTDB("Crm", NULL);
    keel_service b;

    b = billing_with((const char *const[]){"ledger.post", NULL}, NULL, NULL);
    char *msg = billing_error(&b);
    like(msg, "service billing: .calls: \"ledger.post\" names no service", "a call to an unknown service is refused");
    b = billing_with((const char *const[]){"ledger", NULL}, NULL, NULL);
    like(billing_error(&b), "\"ledger\" names no service", "so is a call to a whole unknown service");
    b = billing_with((const char *const[]){"orders.by_nothing", NULL}, NULL, NULL);
    like(billing_error(&b), "service billing: .calls: \"orders.by_nothing\": service orders has no endpoint",
         "a call to an unknown endpoint is refused, naming caller, field and target");
    b = billing_with((const char *const[]){"orders.raw_ping", NULL}, NULL, NULL);
    like(billing_error(&b), "not a typed endpoint", "a call to a raw endpoint (keel_call cannot reach it) is refused");
    b = billing_with((const char *const[]){"orders", "orders", NULL}, NULL, NULL);
    like(billing_error(&b), "\"orders\" is listed twice", "a call listed twice is refused");
    b = billing_with((const char *const[]){"orders", "orders.by_id", "billing", NULL}, NULL, none);
    ok(billing_error(&b) == NULL, "calls to a service, its typed endpoint and itself build");

    b = billing_with(NULL, &crm, NULL);
    like(billing_error(&b), "service billing: .external_databases: the password secret CRM_DB_PASSWORD of \"crm\" "
                            "is not in .secrets", "an external database's undeclared password secret is refused");
    b = billing_with(NULL, &crm, (const char *const[]){"OTHER", NULL});
    like(billing_error(&b), "not in .secrets", "another declared secret does not stand in for it");
    b = billing_with(NULL, &crm, crm_secret);
    ok(billing_error(&b) == NULL, "an external database with its secret declared builds");
    b = billing_with(NULL, &no_password, NULL);
    ok(billing_error(&b) == NULL, "an external database without a password needs no secret");
    b = billing_with(NULL, &bad_crm, NULL);
    like(billing_error(&b), "service billing: .external_databases: name \"Crm\" is invalid",
         "an invalid external database name is refused");
    b = billing_with(NULL, NULL, (const char *const[]){"NOT-A-NAME", NULL});
    like(billing_error(&b), "service billing: .secrets: \"NOT-A-NAME\" is not a valid secret name",
         "an invalid secret name is refused when the app is built, not only at start");
    b = billing_with(NULL, NULL, (const char *const[]){"A", "A", NULL});
    like(billing_error(&b), ".secrets: \"A\" is listed twice", "a secret listed twice is refused");

    /* The model carries every declaration. */
    b = billing_with((const char *const[]){"orders", "orders.by_id", NULL}, &crm, crm_secret);
    const keel_service orders = {.name = "orders", .endpoints = orders_endpoints};
    const keel_service *list[] = {&orders, &b, NULL};
    keel_config cfg;
    keel_config_defaults(&cfg);
    keel_app *app = NULL;
    keel_error *err = keel_app_new(list, &cfg, &app);
    ok(err == NULL, "the declaring app builds");
    keel_error_free(err);
    json_t *model = app ? keel_app_model(app) : NULL;
    json_t *svc = json_array_get(json_object_get(model, "services"), 1);
    json_t *ext = json_array_get(json_object_get(svc, "external_databases"), 0);
    json_t *call0 = json_array_get(json_object_get(svc, "calls"), 0);
    json_t *call1 = json_array_get(json_object_get(svc, "calls"), 1);
    is_str(json_string_value(json_array_get(json_object_get(svc, "secrets"), 0)), "CRM_DB_PASSWORD",
           "the model lists the service's secrets");
    is_str(json_string_value(json_object_get(ext, "name")), "crm", "its external databases");
    is_str(json_string_value(json_object_get(ext, "password_secret")), "CRM_DB_PASSWORD", "with their secret");
    is_str(json_string_value(json_object_get(call0, "service")), "orders", "its calls: the service");
    ok(json_is_null(json_object_get(call0, "endpoint")), "endpoint null for a whole service");
    is_str(json_string_value(json_object_get(call1, "endpoint")), "by_id", "and the endpoint when one is named");
    json_t *orders_model = json_array_get(json_object_get(model, "services"), 0);
    ok(json_array_size(json_object_get(orders_model, "secrets")) == 0 &&
           json_array_size(json_object_get(orders_model, "external_databases")) == 0 &&
           json_array_size(json_object_get(orders_model, "calls")) == 0,
       "a service that declares nothing has empty lists");
    json_decref(model);
    keel_app_free(app);
}

int main(void)
{
    plan(55);
    test_registry();
    test_startup_messages();
    test_dependencies();
    return tap_done();
}

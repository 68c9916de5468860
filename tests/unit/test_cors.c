/* tests/unit/test_cors.c - framework/lib/http/cors.c without a server: the
 * infra config's "cors" object is checked (each refusal is
 * failed_precondition naming the file and the JSON path, never the value);
 * origins match exactly, by a "*." wildcard (subdomains only, same scheme
 * and port) or by "*", with scheme and host in any case and default ports
 * filled in, and never "null" or a malformed Origin; actual responses get
 * Access-Control-Allow-Origin (+ Credentials, Expose-Headers) only for
 * allowed origins and always Vary: Origin; preflights answer 204 with the
 * Allow headers only when origin, method and every requested header are
 * allowed, and 404 when the path has no route; an Origin is the app's own
 * when it names the request's Host.  Responses are read back from a
 * detached request's keel_resp. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core.h"
#include "http/cors.h"
#include "tap.h"

#define PATH "cors.test.json"

/* The compiled cors object of text, or NULL; *err receives the refusal. */
static keel_cors *compile(const char *text, keel_error **err)
{
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!root) {
        diag("bad test JSON: %s", jerr.text);
        *err = keel_error_new(KEEL_INTERNAL, "bad test JSON");
        return NULL;
    }
    keel_cors *c = (keel_cors *)1; /* must be overwritten */
    *err = keel__cors_new(root, PATH, &c);
    json_decref(root);
    return c;
}

/* The message of text's refusal ("" when accepted); caller frees. */
static char *refusal(const char *text)
{
    keel_error *err;
    keel_cors *c = compile(text, &err);
    char *msg = strdup(err ? err->message : "");
    if (err && (err->code != KEEL_FAILED_PRECONDITION || c)) {
        msg[0] = '\0'; /* refused, but not as promised (*out must be NULL) */
        c = NULL;      /* possibly not an object: not freed */
    }
    keel_error_free(err);
    keel__cors_free(c);
    return msg;
}

/* One check: text is refused with a message containing want. */
static void refused(const char *text, const char *want, const char *what)
{
    char *msg = refusal(text);
    like(msg, want, "%s", what);
    free(msg);
}

static keel_cors *must_compile(const char *text)
{
    keel_error *err;
    keel_cors *c = compile(text, &err);
    if (err)
        diag("unexpected refusal: %s", err->message);
    keel_error_free(err);
    return c;
}

/* How many Access-Control-* headers resp has. */
static int ac_headers(const keel_resp *resp)
{
    int n = 0;
    for (const keel_header *h = resp->headers; h; h = h->next)
        n += strncasecmp(h->name, "Access-Control-", 15) == 0;
    return n;
}

static int all_headers(const keel_resp *resp)
{
    int n = 0;
    for (const keel_header *h = resp->headers; h; h = h->next)
        n++;
    return n;
}

static const char *hdr(const keel_req *req, const char *name)
{
    return keel__resp_header_get(&req->resp, name);
}

static bool allowed(const keel_cors *c, const char *origin, bool *cred)
{
    *cred = true; /* a value the function must overwrite when it refuses */
    return keel__cors_origin_allowed(c, origin, cred);
}

static void config_checks(void)
{
    refused("[]", "infra config " PATH ": cors: expected an object", "a cors that is not an object is refused");
    refused("{\"allow_origins\": \"https://a.com\"}", PATH ": cors.allow_origins: expected an array",
            "allow_origins that is not an array is refused");
    refused("{\"allow_origins\": [\"https://a.com\", 5]}", PATH ": cors.allow_origins[1]: expected a string",
            "an origin that is not a string is refused, with its index");
    refused("{\"allow_origins_with_credentials\": [\"https://a.com\", \"*\"]}",
            PATH ": cors.allow_origins_with_credentials[1]: \"*\" is never allowed with credentials",
            "\"*\" with credentials is refused");
    char *msg = refusal("{\"allow_origins\": [\"http://localhost:5173\", \"https://*.example.com\", \"https://a.secret.com/x\"]}");
    like(msg, "infra config " PATH ": cors.allow_origins[2]: not an origin: an origin has no path",
         "an origin with a path is refused at its index");
    ok(*msg && !strstr(msg, "secret"), "the message does not quote the value");
    free(msg);
    refused("{\"allow_origins\": [\"https://a.com/\"]}", "cors.allow_origins[0]: not an origin: an origin has no path",
            "a trailing / is refused");
    refused("{\"allow_origins\": [], \"allow_origin\": []}", PATH ": cors: unknown key \"allow_origin\" (expected",
            "an unknown key is refused, named");
    refused("{\"allow_origins\": [\"null\"]}", "cors.allow_origins[0]: not an origin: expected scheme://host[:port]",
            "\"null\" is not an origin to configure");
    refused("{\"allow_origins\": [\"https://a.*.example.com\"]}", "cors.allow_origins[0]: not an origin: a wildcard is one leading",
            "a wildcard that is not the leading label is refused");
    refused("{\"allow_origins\": [\"https://*.com\"]}", "cors.allow_origins[0]: not an origin: a wildcard must stand for subdomains",
            "a wildcard over a top-level domain is refused");
    refused("{\"allow_origins\": [\"https://a.com:70000\"]}", "cors.allow_origins[0]: not an origin: the port is not a number",
            "a port out of range is refused");
    refused("{\"allow_origins_with_credentials\": [\"https://a.com:\"]}",
            "cors.allow_origins_with_credentials[0]: not an origin: the port", "an empty port is refused");
    refused("{\"allow_headers\": \"X-Request-Id\"}", "cors.allow_headers: expected an array of header names",
            "allow_headers that is not an array is refused");
    refused("{\"allow_headers\": [\"X-Request-Id\", \"X Bad\"]}", "cors.allow_headers[1]: not a header name",
            "a header name with a space is refused");
    refused("{\"expose_headers\": [\"*\"]}", "cors.expose_headers[0]: \"*\" is not supported",
            "\"*\" as a header name is refused");
    refused("{\"expose_headers\": [true]}", "cors.expose_headers[0]: expected a string", "a header name that is not a string is refused");
    refused("{\"max_age_s\": \"600\"}", PATH ": cors.max_age_s: expected a whole number of seconds from 0 to 86400",
            "max_age_s that is not a number is refused");
    refused("{\"max_age_s\": 86401}", "cors.max_age_s: expected a whole number", "max_age_s above a day is refused");
    refused("{\"max_age_s\": -1}", "cors.max_age_s: expected a whole number", "a negative max_age_s is refused");

    keel_cors *c = (keel_cors *)1;
    keel_error *err = keel__cors_new(NULL, PATH, &c);
    ok(!err && !c, "no cors object: CORS off, no error and no object");
    keel_error_free(err);
    c = must_compile("{}");
    bool cred;
    ok(c && !allowed(c, "https://a.com", &cred), "an empty cors object allows no origin");
    keel__cors_free(c);
    c = must_compile("{\"allow_origins\": [\"http://localhost:5173\"], \"allow_origins_with_credentials\": [], "
                     "\"allow_headers\": [], \"expose_headers\": [], \"max_age_s\": 0}");
    ok(c != NULL, "every key with an empty or zero value is accepted");
    keel__cors_free(c);
}

static void matching_checks(void)
{
    keel_cors *c = must_compile(
        "{\"allow_origins\": [\"http://localhost:5173\", \"https://*.example.com\", \"HTTPS://Upper.Example.ORG\","
        "                     \"http://[::1]:8080\"],"
        " \"allow_origins_with_credentials\": [\"https://app.example.com\", \"https://*.corp.example.net:8443\"]}");
    bool cred;
    ok(allowed(c, "http://localhost:5173", &cred) && !cred, "an exact origin is allowed, without credentials");
    ok(!allowed(c, "http://localhost:5174", &cred) && !cred, "another port is refused (and no credentials)");
    ok(!allowed(c, "http://localhost", &cred), "the default port is not the configured one");
    ok(!allowed(c, "https://localhost:5173", &cred), "another scheme is refused");
    ok(allowed(c, "https://a.example.com", &cred) && !cred, "a subdomain matches the wildcard");
    ok(allowed(c, "https://a.b.example.com", &cred), "a deeper subdomain matches the wildcard");
    ok(!allowed(c, "https://example.com", &cred), "the wildcard's own domain does not match it");
    ok(!allowed(c, "https://badexample.com", &cred), "a host that only ends in the domain's text does not match");
    ok(!allowed(c, "http://a.example.com", &cred), "the wildcard keeps its scheme");
    ok(!allowed(c, "https://a.example.com:8443", &cred), "the wildcard keeps its port");
    ok(allowed(c, "https://a.example.com:443", &cred), "an explicit default port is the same origin");
    ok(allowed(c, "https://upper.example.org", &cred), "a configured origin's case does not matter");
    ok(allowed(c, "HTTPS://UPPER.EXAMPLE.ORG", &cred), "nor does the request's");
    ok(allowed(c, "http://[::1]:8080", &cred), "an IPv6 origin matches");
    ok(allowed(c, "https://app.example.com", &cred) && cred, "an origin with credentials is allowed with them");
    ok(allowed(c, "https://x.corp.example.net:8443", &cred) && cred, "a wildcard with credentials and a port matches");
    ok(!allowed(c, "https://x.corp.example.net", &cred), "and not without the port");
    ok(!allowed(c, "null", &cred), "the \"null\" origin is refused");
    ok(!allowed(c, "", &cred), "an empty origin is refused");
    ok(!allowed(c, "https://a.example.com/", &cred), "an origin with a path is refused");
    ok(!allowed(c, "https://*.example.com", &cred), "a wildcard sent as an origin is refused");
    ok(!allowed(c, "https://user@a.example.com", &cred), "an origin with user info is refused");
    ok(!keel__cors_origin_allowed(c, NULL, NULL), "no origin is not allowed (with_credentials may be NULL)");
    ok(!keel__cors_origin_allowed(NULL, "http://localhost:5173", NULL), "CORS off allows nothing");
    keel__cors_free(c);

    c = must_compile("{\"allow_origins\": [\"*\"], \"allow_origins_with_credentials\": [\"https://app.example.com\"]}");
    ok(allowed(c, "https://anything.test:1234", &cred) && !cred, "\"*\" allows any origin, without credentials");
    ok(allowed(c, "https://app.example.com", &cred) && cred, "a listed origin keeps its credentials beside \"*\"");
    ok(!allowed(c, "null", &cred), "\"*\" does not allow the \"null\" origin");
    keel__cors_free(c);
}

static void actual_checks(void)
{
    keel_cors *c = must_compile(
        "{\"allow_origins\": [\"http://localhost:5173\", \"https://*.example.com\"],"
        " \"allow_origins_with_credentials\": [\"https://app.example.com\"],"
        " \"expose_headers\": [\"X-Request-Id\", \"X-Total\"]}");
    keel_req *req = keel__req_detached_new();
    keel_error *err = keel__cors_actual(c, "http://localhost:5173", &req->resp);
    ok(!err, "an allowed origin's actual request is answered");
    is_str(hdr(req, "Access-Control-Allow-Origin"), "http://localhost:5173", "  Allow-Origin is the origin itself");
    ok(!hdr(req, "Access-Control-Allow-Credentials"), "  without credentials");
    is_str(hdr(req, "Access-Control-Expose-Headers"), "X-Request-Id, X-Total", "  Expose-Headers as configured");
    is_str(hdr(req, "Vary"), "Origin", "  Vary: Origin");
    keel__req_detached_free(req);

    req = keel__req_detached_new();
    err = keel__cors_actual(c, "https://evil.test", &req->resp);
    ok(!err && ac_headers(&req->resp) == 0, "a refused origin gets no Access-Control-* header");
    is_str(hdr(req, "Vary"), "Origin", "  but Vary: Origin");
    keel__req_detached_free(req);

    req = keel__req_detached_new();
    err = keel__cors_actual(c, "https://app.example.com", &req->resp);
    ok(!err, "an origin with credentials is answered");
    is_str(hdr(req, "Access-Control-Allow-Origin"), "https://app.example.com", "  with itself as Allow-Origin");
    is_str(hdr(req, "Access-Control-Allow-Credentials"), "true", "  and Allow-Credentials: true");
    keel__req_detached_free(req);

    req = keel__req_detached_new();
    err = keel__cors_actual(c, NULL, &req->resp);
    ok(!err && all_headers(&req->resp) == 0, "a request without Origin gets no header");
    err = keel__cors_actual(NULL, "http://localhost:5173", &req->resp);
    ok(!err && all_headers(&req->resp) == 0, "CORS off adds no header");
    keel__req_detached_free(req);
    keel__cors_free(c);

    c = must_compile("{\"allow_origins\": [\"*\"], \"allow_origins_with_credentials\": [\"https://app.example.com\"]}");
    req = keel__req_detached_new();
    err = keel__cors_actual(c, "https://anything.test", &req->resp);
    ok(!err, "an origin \"*\" allows is answered");
    is_str(hdr(req, "Access-Control-Allow-Origin"), "*", "  with Allow-Origin: *");
    ok(!hdr(req, "Access-Control-Expose-Headers"), "  and no Expose-Headers when none are configured");
    keel__req_detached_free(req);
    req = keel__req_detached_new();
    err = keel__cors_actual(c, "https://app.example.com", &req->resp);
    is_str(hdr(req, "Access-Control-Allow-Origin"), "https://app.example.com",
           "beside \"*\", an origin with credentials gets itself, never \"*\"");
    keel_error_free(err);
    keel__req_detached_free(req);
    keel__cors_free(c);
}

/* A preflight on a fresh request; returns it (caller frees). */
static keel_req *preflight(const keel_cors *c, const char *origin, const char *method, const char *headers,
                           const char *methods, keel_error **err)
{
    static const char *const endpoint_headers[] = {"X-Tenant", "Idempotency-Key", NULL};
    keel_req *req = keel__req_detached_new();
    *err = keel__cors_preflight(c, origin, method, headers, methods, endpoint_headers, &req->resp);
    return req;
}

/* true when req is a refused preflight: 204, nothing but Vary. */
static bool refused_preflight(const keel_req *req, const keel_error *err)
{
    return !err && req->resp.status == 204 && ac_headers(&req->resp) == 0 && hdr(req, "Vary") != NULL;
}

static void preflight_checks(void)
{
    keel_cors *c = must_compile(
        "{\"allow_origins\": [\"http://localhost:5173\"],"
        " \"allow_origins_with_credentials\": [\"https://app.example.com\"],"
        " \"allow_headers\": [\"X-Request-Id\"], \"max_age_s\": 600}");
    keel_error *err;
    keel_req *req = preflight(c, "http://localhost:5173", "POST", "content-type, x-request-id, x-tenant",
                              "GET, HEAD, POST", &err);
    ok(!err, "an allowed preflight returns no error");
    is_int(req->resp.status, 204, "  204");
    is_str(hdr(req, "Access-Control-Allow-Origin"), "http://localhost:5173", "  Allow-Origin is the origin");
    ok(!hdr(req, "Access-Control-Allow-Credentials"), "  no credentials for this origin");
    is_str(hdr(req, "Access-Control-Allow-Methods"), "GET, HEAD, POST", "  Allow-Methods: what the path takes");
    is_str(hdr(req, "Access-Control-Allow-Headers"), "content-type, x-request-id, x-tenant",
           "  Allow-Headers: the requested ones (configured, endpoint fields, Content-Type)");
    is_str(hdr(req, "Access-Control-Max-Age"), "600", "  Max-Age as configured");
    like(hdr(req, "Vary"), "Origin", "  Vary names Origin");
    like(hdr(req, "Vary"), "Access-Control-Request-Headers", "  and Access-Control-Request-Headers");
    keel__req_detached_free(req);

    req = preflight(c, "https://app.example.com", "PUT", "AUTHORIZATION,Idempotency-key , X-TENANT", "PUT", &err);
    ok(!err && hdr(req, "Access-Control-Allow-Methods"), "header names are allowed in any case, with blanks around them");
    is_str(hdr(req, "Access-Control-Allow-Credentials"), "true", "  and credentials for an origin that has them");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "GET", NULL, "GET, HEAD", &err);
    ok(!err && hdr(req, "Access-Control-Allow-Origin") && !hdr(req, "Access-Control-Allow-Headers"),
       "no requested headers: allowed, without Allow-Headers");
    keel__req_detached_free(req);

    req = preflight(c, "https://evil.test", "POST", NULL, "GET, POST", &err);
    ok(refused_preflight(req, err), "a refused origin: 204 without Allow headers");
    keel__req_detached_free(req);

    req = preflight(c, "null", "POST", NULL, "GET, POST", &err);
    ok(refused_preflight(req, err), "the \"null\" origin: refused");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "DELETE", NULL, "GET, POST", &err);
    ok(refused_preflight(req, err), "a method the path does not take: refused");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "post", NULL, "GET, POST", &err);
    ok(refused_preflight(req, err), "methods compare with their case, as browsers send them");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "POST", "x-request-id, x-secret", "GET, POST", &err);
    ok(refused_preflight(req, err), "a requested header that is not allowed: refused");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "POST", "x-request-id;", "GET, POST", &err);
    ok(refused_preflight(req, err), "a requested header that is not a name: refused");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "PATCH", NULL, "*", &err);
    is_str(hdr(req, "Access-Control-Allow-Methods"), "PATCH", "a path that takes any method allows the requested one");
    keel__req_detached_free(req);

    req = preflight(c, "http://localhost:5173", "POST", NULL, NULL, &err);
    ok(err && err->code == KEEL_NOT_FOUND && keel_error_http_status(err) == 404,
       "no route for the path: not_found (404)");
    ok(all_headers(&req->resp) == 0, "  and nothing added to the response");
    keel_error_free(err);
    keel__req_detached_free(req);
    req = preflight(c, "http://localhost:5173", "POST", NULL, "", &err);
    ok(err && err->code == KEEL_NOT_FOUND, "no methods (\"\"): not_found too");
    keel_error_free(err);
    keel__req_detached_free(req);
    keel__cors_free(c);

    c = must_compile("{\"allow_origins\": [\"http://localhost:5173\"]}");
    req = preflight(c, "http://localhost:5173", "POST", NULL, "POST", &err);
    ok(!err && hdr(req, "Access-Control-Allow-Origin") && !hdr(req, "Access-Control-Max-Age"),
       "no max_age_s: no Max-Age");
    keel__req_detached_free(req);
    req = preflight(c, "http://localhost:5173", "POST", "x-request-id", "POST", &err);
    ok(refused_preflight(req, err), "a header only another config allows: refused");
    keel__req_detached_free(req);
    keel__cors_free(c);

    req = preflight(NULL, "http://localhost:5173", "POST", NULL, "POST", &err);
    ok(!err && req->resp.status == 204 && all_headers(&req->resp) == 0, "CORS off: a preflight gets a bare 204");
    keel__req_detached_free(req);
}

/* keel__cors_same_origin: an Origin naming the request's Host (a page of
 * the app itself, for the cookie's cross-site check). */
static void same_origin_checks(void)
{
    static const struct { const char *origin, *host; bool same; } cases[] = {
        {"http://127.0.0.1:4000", "127.0.0.1:4000", true},
        {"https://App.Example.com", "app.example.com", true},      /* case; 443 left out on both sides */
        {"https://app.example.com", "app.example.com:443", true},
        {"http://app.example.com:80", "app.example.com", true},
        {"http://[::1]:4000", "[::1]:4000", true},
        {"http://127.0.0.1:4001", "127.0.0.1:4000", false},        /* another port is another origin */
        {"https://app.example.com", "app.example.com:80", false},
        {"https://evil.example", "app.example.com", false},
        {"https://app.example.com.evil.example", "app.example.com", false},
        {"https://app.example", "app.example.com", false},
        {"null", "app.example.com", false},
        {"http://a.example/path", "a.example", false},
        {"http://a.example", "a.example:", false},
        {"http://a.example", "a.example:+80", false},
        {"http://a.example", "a.example:80x", false},
        {"http://a.example", NULL, false},
        {NULL, "a.example", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ok(keel__cors_same_origin(cases[i].origin, cases[i].host) == cases[i].same, "same origin: %s with Host %s: %s",
           cases[i].origin ? cases[i].origin : "(none)", cases[i].host ? cases[i].host : "(none)",
           cases[i].same ? "same" : "another");
}

int main(void)
{
    plan(108);
    config_checks();
    matching_checks();
    actual_checks();
    preflight_checks();
    same_origin_checks();
    return tap_done();
}

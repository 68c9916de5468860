/* tests/integration/test_auth.c - auth, middleware, CORS and rate limits on
 * the example app over real HTTP, with its real databases (`keel run`):
 * missing, malformed, unknown and valid credentials (the operator's token
 * from the secrets store, and a token found by the auth handler's database
 * lookup); auth data reaching keel_call's target and a KEEL_AUTH endpoint;
 * the global timing middleware on answers and errors; CORS preflights and
 * actual requests from allowed, credentialed and refused origins (configured
 * in the infra config); the session cookie, and its unsafe requests refused
 * from another site's page; the POST /todo rate limit tripping at its rate with
 * Retry-After and recovering; and a spoofed X-Forwarded-For ignored unless
 * the peer is a trusted proxy. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define ADMIN "admin-token-for-tests"
#define USER_TOKEN "user-token-7f3a9"

static ht_server srv;
static char root[256];
/* POST /todo's limit in this test: 50 a second in bursts of 50, as the
 * example declares; under valgrind, where a request takes far longer, the
 * rate is 5 so that a burst still outruns it. */
static double rate = 50;
#define BURST 50

static ht_response send_req(const char *method, const char *path, const char *body, const char *const *headers)
{
    return ht_request(&srv, method, path, body, body ? strlen(body) : 0, headers);
}

static bool has_header(const ht_response *r, const char *name, const char *want)
{
    char v[512];
    return ht_header(r, name, v, sizeof v) && (!want || strcmp(v, want) == 0);
}

static void test_credentials(void)
{
    ht_response r = send_req("GET", "/auth/whoami", NULL, NULL);
    is_int(r.status, 401, "no credentials: a KEEL_AUTH endpoint answers 401");
    like(r.body, "\"code\":\"unauthenticated\"", "in the Encore shape");
    ht_free(&r);
    r = send_req("GET", "/auth/whoami", NULL, (const char *[]){"Authorization: Basic dXNlcjpwdw==", NULL});
    is_int(r.status, 401, "a malformed Authorization header is 401");
    like(r.body, "Bearer <token>", "saying what is expected");
    ht_free(&r);
    r = send_req("GET", "/auth/whoami", NULL, (const char *[]){"Authorization: Bearer nope", NULL});
    is_int(r.status, 401, "an unknown token is 401");
    ht_free(&r);
    r = send_req("GET", "/auth/whoami", NULL, (const char *[]){"Authorization: Bearer " ADMIN, NULL});
    is_int(r.status, 200, "the operator's token from the secrets store is accepted");
    like(r.body, "\"user_id\":\"admin\"", "and the handler sees its auth data");
    ht_free(&r);
    r = send_req("GET", "/auth/whoami", NULL, (const char *[]){"Authorization: bearer " USER_TOKEN, NULL});
    is_int(r.status, 200, "a token found by the auth handler's database lookup is accepted (scheme in any case)");
    like(r.body, "\"user_id\":\"alice\"", "with the user the database names");
    like(r.body, "\"admin\":false", "and her role");
    ht_free(&r);
    r = send_req("GET", "/hello/bob", NULL, (const char *[]){"Authorization: Bearer nope", NULL});
    is_int(r.status, 200, "a public endpoint serves a caller whose token is refused (without auth data)");
    ht_free(&r);
}

static void test_keel_call(void)
{
    ht_response r = send_req("GET", "/auth/via-call", NULL, (const char *[]){"Authorization: Bearer " USER_TOKEN, NULL});
    is_int(r.status, 200, "auth data reaches the endpoint keel_call calls");
    like(r.body, "\"user_id\":\"alice\"", "as the caller's");
    ht_free(&r);
    r = send_req("GET", "/auth/via-call", NULL, NULL);
    is_int(r.status, 401, "without auth data keel_call refuses a KEEL_AUTH target");
    ht_free(&r);
    r = send_req("GET", "/auth/internal/caller", NULL, (const char *[]){"Authorization: Bearer " ADMIN, NULL});
    is_int(r.status, 404, "the private endpoint itself cannot be reached from outside");
    ht_free(&r);
    r = send_req("PUT", "/auth/internal/caller", NULL, (const char *[]){"Authorization: Bearer " ADMIN, NULL});
    is_int(r.status, 404, "another method on it is 404 too, as on a path nobody declared");
    ok(!has_header(&r, "Allow", NULL), "with no Allow naming its method");
    ht_free(&r);
}

static void test_auth_endpoint(void)
{
    ht_response r = send_req("POST", "/todo", "{\"title\":\"one\"}", NULL);
    is_int(r.status, 200, "POST /todo stays public");
    ht_free(&r);
    r = send_req("DELETE", "/todo", NULL, NULL);
    is_int(r.status, 401, "DELETE /todo without credentials is 401 (the handler does not run)");
    ht_free(&r);
    r = send_req("GET", "/todo", NULL, NULL);
    like(r.body, "\"title\":\"one\"", "and nothing was deleted");
    ht_free(&r);
    r = send_req("DELETE", "/todo", NULL, (const char *[]){"Authorization: Bearer " USER_TOKEN, NULL});
    is_int(r.status, 403, "a non-admin's auth data reaches the handler, which refuses her");
    like(r.body, "you are alice", "naming her");
    ht_free(&r);
    r = send_req("DELETE", "/todo", NULL, (const char *[]){"Authorization: Bearer " ADMIN, NULL});
    is_int(r.status, 200, "the admin clears the list");
    like(r.body, "\"deleted\":1", "one item deleted");
    ht_free(&r);
}

static void test_timing_middleware(void)
{
    ht_response r = send_req("GET", "/hello/t", NULL, NULL);
    char v[128] = "";
    ok(ht_header(&r, "Server-Timing", v, sizeof v) && strncmp(v, "app;dur=", 8) == 0,
       "the global timing middleware adds Server-Timing (%s)", v);
    ht_free(&r);
    r = send_req("GET", "/auth/whoami", NULL, NULL);
    ok(has_header(&r, "Server-Timing", NULL), "to error answers too (a 401)");
    ht_free(&r);
    r = send_req("GET", "/todo/999999", NULL, NULL);
    ok(r.status == 404 && has_header(&r, "Server-Timing", NULL), "and to a handler's 404");
    ht_free(&r);
}

static void test_cors(void)
{
    const char *pre[] = {"Origin: http://localhost:5173", "Access-Control-Request-Method: POST",
                         "Access-Control-Request-Headers: content-type, authorization", NULL};
    ht_response r = send_req("OPTIONS", "/todo", NULL, pre);
    is_int(r.status, 204, "a preflight from the allowed origin is answered by the framework (204)");
    ok(has_header(&r, "Access-Control-Allow-Origin", "http://localhost:5173"), "echoing the origin");
    char v[256] = "";
    ok(ht_header(&r, "Access-Control-Allow-Methods", v, sizeof v) && strstr(v, "POST") && strstr(v, "GET"),
       "with the methods the path takes (%s)", v);
    ok(ht_header(&r, "Access-Control-Allow-Headers", v, sizeof v) && strcasestr(v, "authorization"),
       "allowing the Authorization header (%s)", v);
    ok(!has_header(&r, "Access-Control-Allow-Credentials", NULL), "without credentials for that origin");
    ht_free(&r);
    const char *pre_private[] = {"Origin: http://localhost:5173", "Access-Control-Request-Method: GET", NULL};
    r = send_req("OPTIONS", "/auth/internal/caller", NULL, pre_private);
    ok(r.status == 404 && !has_header(&r, "Access-Control-Allow-Methods", NULL),
       "a preflight to a private endpoint is 404 as to a path nobody declared (status %ld)", r.status);
    ht_free(&r);
    const char *pre_bad[] = {"Origin: https://evil.example", "Access-Control-Request-Method: POST", NULL};
    r = send_req("OPTIONS", "/todo", NULL, pre_bad);
    ok(!has_header(&r, "Access-Control-Allow-Origin", NULL), "a preflight from a refused origin gets no allow headers");
    ht_free(&r);
    r = send_req("GET", "/hello/c", NULL, (const char *[]){"Origin: http://localhost:5173", NULL});
    ok(r.status == 200 && has_header(&r, "Access-Control-Allow-Origin", "http://localhost:5173"),
       "an actual request from the allowed origin gets Access-Control-Allow-Origin");
    ok(has_header(&r, "Vary", NULL), "and Vary: Origin");
    ht_free(&r);
    r = send_req("GET", "/hello/c", NULL, (const char *[]){"Origin: https://app.example.com", NULL});
    ok(has_header(&r, "Access-Control-Allow-Credentials", "true") &&
           has_header(&r, "Access-Control-Allow-Origin", "https://app.example.com"),
       "an origin allowed with credentials gets Allow-Credentials");
    ht_free(&r);
    r = send_req("GET", "/hello/c", NULL, (const char *[]){"Origin: https://evil.example", NULL});
    ok(r.status == 200 && !has_header(&r, "Access-Control-Allow-Origin", NULL),
       "a refused origin's request is served without CORS headers (the browser blocks it)");
    ht_free(&r);
    r = send_req("GET", "/nope/x", NULL, (const char *[]){"Origin: http://localhost:5173", NULL});
    ok(r.status == 404 && has_header(&r, "Access-Control-Allow-Origin", "http://localhost:5173"),
       "error answers carry CORS headers too, so a browser can read them");
    ht_free(&r);
}

/* The session cookie carries the same tokens; a browser sends it with any
 * site's requests, so an unsafe one it authenticates must come from the
 * app's own pages or an origin allowed with credentials (no CSRF). */
static void test_cookie_origin(void)
{
    char own[80];
    snprintf(own, sizeof own, "Origin: http://127.0.0.1:%u", srv.port);
    ht_response r = send_req("GET", "/auth/whoami", NULL, (const char *[]){"Cookie: theme=dark; session=" USER_TOKEN, NULL});
    ok(r.status == 200 && r.body && strstr(r.body, "\"user_id\":\"alice\""), "the session cookie authenticates");
    ht_free(&r);
    r = send_req("GET", "/auth/whoami", NULL,
                 (const char *[]){"Cookie: session=" USER_TOKEN, "Origin: https://evil.example", NULL});
    is_int(r.status, 200, "a safe method from another site's page is served (the browser keeps the answer from it)");
    ht_free(&r);
    r = send_req("POST", "/todo", "{\"title\":\"kept\"}", NULL);
    is_int(r.status, 200, "set-up: an item to keep");
    ht_free(&r);
    r = send_req("DELETE", "/todo", NULL, (const char *[]){"Cookie: session=" ADMIN, "Origin: https://evil.example", NULL});
    is_int(r.status, 403, "DELETE with the admin's cookie from another site's page is 403");
    like(r.body, "\"code\":\"permission_denied\"", "permission_denied, in the Encore shape");
    like(r.body, "another site", "saying why");
    ht_free(&r);
    r = send_req("GET", "/todo", NULL, NULL);
    like(r.body, "\"title\":\"kept\"", "and nothing was deleted");
    ht_free(&r);
    static const char *const foreign[] = {"Origin: https://evil.example", "Origin: null",
                                          "Origin: http://localhost:5173", /* allowed, but not with credentials */
                                          "Origin: http://127.0.0.1:1", NULL};
    for (size_t i = 0; foreign[i]; i++) {
        r = send_req("POST", "/todo", "{\"title\":\"csrf\"}",
                     (const char *[]){"Cookie: session=" USER_TOKEN, foreign[i], NULL});
        is_int(r.status, 403, "a POST to a public endpoint with the cookie and %s is 403", foreign[i]);
        ht_free(&r);
    }
    const char *const *fine[] = {
        (const char *[]){"Cookie: session=" USER_TOKEN, own, NULL},
        (const char *[]){"Cookie: session=" USER_TOKEN, "Origin: https://app.example.com", NULL},
        (const char *[]){"Cookie: session=" USER_TOKEN, NULL},
        (const char *[]){"Authorization: Bearer " USER_TOKEN, "Origin: https://evil.example", NULL},
        (const char *[]){"Origin: https://evil.example", NULL},
    };
    static const char *const why[] = {"from the app's own origin", "from an origin allowed with credentials",
                                      "without Origin (no browser)", "authenticated by a Bearer header",
                                      "without credentials"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) {
        r = send_req("POST", "/todo", "{\"title\":\"fine\"}", fine[i]);
        is_int(r.status, 200, "a POST %s is served", why[i]);
        ht_free(&r);
    }
}

/* The body of the latest 429 a burst received. */
static char last_429[512];

/* POSTs n times as fast as possible with extra headers; counts 200s and 429s. */
static void burst(int n, const char *const *headers, int *okays, int *limited, char *retry, size_t retry_len)
{
    *okays = *limited = 0;
    for (int i = 0; i < n; i++) {
        ht_response r = send_req("POST", "/todo", "{\"title\":\"r\"}", headers);
        if (r.status == 200)
            (*okays)++;
        if (r.status == 429) {
            (*limited)++;
            snprintf(last_429, sizeof last_429, "%s", r.body ? r.body : "");
            if (retry && !retry[0])
                ht_header(&r, "Retry-After", retry, retry_len);
        }
        ht_free(&r);
    }
}

/* The sum of a metric's samples whose line starts with prefix. */
static double metric_sum(const char *page, const char *prefix)
{
    double sum = 0;
    size_t n = strlen(prefix);
    for (const char *p = page ? page : ""; *p;) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, n) == 0) {
            const char *sp = p + n;
            while (*sp && *sp != ' ' && *sp != '\n')
                sp++;
            if (*sp == ' ')
                sum += atof(sp + 1);
        }
        if (!nl)
            break;
        p = nl + 1;
    }
    return sum;
}

static void test_rate_limit(void)
{
    int okays, limited;
    char retry[32] = "";
    usleep((useconds_t)(1e6 * BURST / rate)); /* a full bucket */
    double t0 = ht_now_s();
    burst(BURST + 20, NULL, &okays, &limited, retry, sizeof retry);
    double refill = rate * (ht_now_s() - t0);
    ok(okays >= BURST && okays <= BURST + (int)refill + 1 && limited >= 1,
       "%d POSTs at once: the burst of %d passes, then the rate (%.0f a second) holds (%d passed, %d limited)",
       BURST + 20, BURST, rate, okays, limited);
    ok(atoi(retry) >= 1, "refusals are 429 with Retry-After (%s)", retry);
    like(last_429, "\"code\":\"resource_exhausted\"", "in the Encore shape");
    /* A limit by IP runs before the auth handler: refused requests cost no
     * token lookup. */
    ht_response m = send_req("GET", "/__keel/metrics", NULL, NULL);
    double before = metric_sum(m.body, "keel_db_statements_total{database=\"accounts\"");
    ht_free(&m);
    burst(10, (const char *[]){"Authorization: Bearer not-a-token-Vb2", NULL}, &okays, &limited, NULL, 0);
    m = send_req("GET", "/__keel/metrics", NULL, NULL);
    double after = metric_sum(m.body, "keel_db_statements_total{database=\"accounts\"");
    ht_free(&m);
    ok(limited >= 1 && after - before == okays,
       "requests refused by a rate limit by IP run no auth lookup (%d limited; %.0f lookups for %d passed)", limited,
       after - before, okays);
    ht_response r = send_req("GET", "/todo/1", NULL, NULL);
    ok(r.status != 429, "other endpoints are not limited");
    ht_free(&r);
    usleep((useconds_t)(1e6 * 20 / rate) + 100000);
    burst(20, NULL, &okays, &limited, NULL, 0);
    ok(okays == 20 && limited == 0, "it recovers at its rate: 20 tokens after %.1f s (%d of 20 passed)", 20 / rate,
       okays);
    /* The app does not trust the proxy header from a peer it does not know. */
    burst(30, (const char *[]){"X-Forwarded-For: 203.0.113.7", NULL}, &okays, &limited, NULL, 0);
    ok(limited > 0, "a spoofed X-Forwarded-For does not buy a fresh bucket (%d limited)", limited);
}

/* A second app that trusts 127.0.0.1 as its proxy: X-Forwarded-For then
 * names the client, and each client has its own bucket. */
static void test_trusted_proxy(void)
{
    ht_server proxied;
    const char *env[] = {"KEEL_TRUSTED_PROXIES=127.0.0.1/32,::1", "KEEL_RATE_LIMIT_TODO_CREATE=0.2/5", NULL};
    if (!ok(ht_start_keel_run(&proxied, root, env), "an app behind a trusted proxy starts"))
        return;
    ht_server saved = srv;
    srv = proxied;
    int okays, limited;
    burst(8, (const char *[]){"X-Forwarded-For: 198.51.100.1", NULL}, &okays, &limited, NULL, 0);
    ok(okays == 5 && limited == 3, "client 198.51.100.1 gets its 5 (%d passed, %d limited)", okays, limited);
    burst(8, (const char *[]){"X-Forwarded-For: 198.51.100.2", NULL}, &okays, &limited, NULL, 0);
    ok(okays == 5 && limited == 3, "client 198.51.100.2 has a bucket of its own (%d passed)", okays);
    burst(3, (const char *[]){"X-Forwarded-For: 198.51.100.1, 127.0.0.1", NULL}, &okays, &limited, NULL, 0);
    ok(limited == 3, "a trusted hop on the right is skipped: still client .1 (%d limited)", limited);
    /* HAProxy's option forwardfor adds a line of its own after the client's. */
    burst(3, (const char *[]){"X-Forwarded-For: 203.0.113.99", "X-Forwarded-For: 198.51.100.1", NULL}, &okays,
          &limited, NULL, 0);
    ok(limited == 3, "of two X-Forwarded-For lines the proxy's (the last) names the client: a forged first line "
       "buys no bucket (%d limited)", limited);
    burst(3, (const char *[]){"X-Forwarded-For: 203.0.113.98, 127.0.0.1", "X-Forwarded-For: 127.0.0.1", NULL},
          &okays, &limited, NULL, 0);
    ok(okays == 3, "entries are walked from the right across lines, trusted hops skipped: a new client (%d passed)",
       okays);
    /* One IPv6 host has a whole /64 to pick addresses from. */
    okays = limited = 0;
    for (int i = 0; i < 8; i++) {
        char xff[80];
        snprintf(xff, sizeof xff, "X-Forwarded-For: 2001:db8:1:2:%x::%x", i * 7 + 1, i + 1);
        ht_response r = send_req("POST", "/todo", "{\"title\":\"r\"}", (const char *[]){xff, NULL});
        okays += r.status == 200;
        limited += r.status == 429;
        ht_free(&r);
    }
    ok(okays == 5 && limited == 3, "8 addresses of one IPv6 /64 share one bucket (%d passed, %d limited)", okays,
       limited);
    burst(1, (const char *[]){"X-Forwarded-For: 2001:db8:1:3::1", NULL}, &okays, &limited, NULL, 0);
    ok(okays == 1, "the next /64 has a bucket of its own");
    srv = saved;
    is_int(ht_stop(&proxied), 0, "the proxied app stops cleanly");
}

static void test_model(void)
{
    int status;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "'%s' --app-model", getenv("KEEL_EXAMPLE"));
    char *out = ht_shell(cmd, &status);
    json_t *m = json_loads(out, 0, NULL);
    bool auth_ep = false, limited = false, tagged = false, handler = false;
    size_t i, j;
    json_t *s, *e;
    json_array_foreach(json_object_get(m, "services"), i, s) {
        if (json_object_get(s, "auth_handler"))
            handler = !strcmp(json_string_value(json_object_get(json_object_get(s, "auth_handler"), "name")),
                              "authenticate");
        json_array_foreach(json_object_get(s, "endpoints"), j, e) {
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *access = json_string_value(json_object_get(e, "access"));
            if (name && !strcmp(name, "clear_all"))
                auth_ep = access && !strcmp(access, "auth");
            if (name && !strcmp(name, "create")) {
                tagged = json_array_size(json_object_get(e, "tags")) == 1;
                json_t *rl = json_array_get(json_object_get(e, "rate_limits"), 0);
                limited = json_real_value(json_object_get(rl, "per_second")) == 50.0;
            }
        }
    }
    ok(status == 0 && handler, "the app model names the auth handler");
    ok(auth_ep, "shows DELETE /todo's auth requirement");
    ok(tagged && limited, "and POST /todo's tag and rate limit");
    json_decref(m);
    free(out);
}

int main(void)
{
    if (!getenv("KEEL_CLI") || !getenv("KEEL_SRCDIR") || !getenv("KEEL_EXAMPLE")) {
        printf("Bail out! KEEL_CLI, KEEL_EXAMPLE and KEEL_SRCDIR must be set (run through make check)\n");
        return 1;
    }
    plan(79);
    char migrations[512], path[400];
    snprintf(migrations, sizeof migrations, "%s/migrations", getenv("KEEL_SRCDIR"));
    ok(ht_make_app_root(root, sizeof root, migrations), "set-up: an app root");
    /* CORS is configured in the infra config; keel run keeps it. */
    snprintf(path, sizeof path, "%s/.keel", root);
    mkdir(path, 0711);
    snprintf(path, sizeof path, "%s/.keel/infra.local.json", root);
    FILE *f = fopen(path, "w");
    ok(f != NULL, "set-up: an infra config with CORS");
    if (f) {
        fputs("{\"cors\": {\"allow_origins\": [\"http://localhost:5173\"], "
              "\"allow_origins_with_credentials\": [\"https://app.example.com\"]}}\n", f);
        fclose(f);
    }
    static char limit[64];
    if (ht_valgrind())
        rate = 5;
    snprintf(limit, sizeof limit, "KEEL_RATE_LIMIT_TODO_CREATE=%g/%d", rate, BURST);
    const char *env[] = {limit, NULL};
    if (!ok(ht_start_keel_run(&srv, root, env), "set-up: keel run starts the example app")) {
        ht_remove_app_root(root);
        return tap_done();
    }
    char cmd[900];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && echo \"INSERT INTO api_token (token_sha256, user_id) VALUES "
             "(sha256(convert_to('" USER_TOKEN "', 'UTF8')), 'alice')\" | KEEL_APP_ROOT='%s' \"$KEEL_CLI\" db shell "
             "accounts --write",
             root, root);
    int status;
    free(ht_shell(cmd, &status));
    ok(status == 0, "set-up: a user token in the accounts database");
    test_credentials();
    test_keel_call();
    test_auth_endpoint();
    test_timing_middleware();
    test_cors();
    test_cookie_origin();
    test_rate_limit();
    test_trusted_proxy();
    test_model();
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
    ht_remove_app_root(root);
    return tap_done();
}

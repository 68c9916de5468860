/* middleware.c - what runs around handlers (see keel/middleware.h): the
 * app's auth handler and each request's cached auth data, the middleware
 * chain of every route (fixed at registration, so a request only walks an
 * array), response headers that middleware adds to whatever response goes
 * out, the client's address behind trusted proxies, the built-in rate limit
 * and the CORS answers (rules in cors.c). */
#include "core.h"
#include "http/client_ip.h"
#include "http/cors.h"
#include "http/ratelimit.h"
#include "sql/infra.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- auth ---------------------------------------------------------------------------- */

const void *keel_req_auth(keel_req *req)
{
    return req->auth;
}

void keel_auth_set_subject(keel_req *req, const char *subject)
{
    req->auth_subject = subject ? keel_arena_strdup(&req->arena, subject) : NULL;
}

const char *keel_req_auth_subject(keel_req *req)
{
    return req->auth ? req->auth_subject : NULL;
}

static keel_error *unauthenticated(const char *why)
{
    return keel_error_new(KEEL_UNAUTHENTICATED, "%s", why);
}

/* The value of cookie name in the Cookie header (copied into the arena), or
 * NULL. */
static const char *cookie_value(keel_req *req, const char *name)
{
    const char *header = keel_req_header(req, "Cookie");
    size_t n = strlen(name);
    for (const char *p = header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=')
            return keel_arena_strndup(&req->arena, p + n + 1, len - n - 1);
        p = end;
    }
    return NULL;
}

/* A browser sends an app's cookie with every request to it, whichever
 * site's page makes the request: a request that changes something (any
 * method but GET, HEAD, OPTIONS and TRACE) and whose credential is the
 * cookie must come from the app's own pages (an Origin naming its Host) or
 * from an origin the CORS config allows with credentials.  Browsers send
 * Origin on every such request; one without Origin is no browser's
 * cross-site request. */
static keel_error *check_cookie_origin(keel_req *req)
{
    static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof safe / sizeof *safe; i++)
        if (strcmp(req->method, safe[i]) == 0)
            return NULL;
    const char *origin = keel_req_header(req, "Origin");
    bool credentials = false;
    if (!origin || keel__cors_same_origin(origin, keel_req_header(req, "Host")) ||
        (keel__cors_origin_allowed(req->app->cors, origin, &credentials) && credentials))
        return NULL;
    return keel_error_new(KEEL_PERMISSION_DENIED, "a %s authenticated by the %s cookie must come from this app's "
                          "pages or an origin allowed with credentials, not from another site's", req->method,
                          req->app->auth->cookie);
}

/* The credential the request carries: *token NULL when none; an error when
 * an Authorization header is there but not "Bearer <token>" (a client that
 * tried to authenticate and got it wrong is told so), or when the cookie
 * carries it on a cross-site request that changes something. */
static keel_error *find_token(keel_req *req, const char **token)
{
    *token = NULL;
    const char *h = keel_req_header(req, "Authorization");
    if (h) {
        if (strncasecmp(h, "Bearer ", 7) != 0)
            return unauthenticated("the Authorization header must be \"Bearer <token>\"");
        const char *t = h + 7;
        while (*t == ' ')
            t++;
        if (!*t)
            return unauthenticated("the Authorization header has an empty token");
        *token = t;
        return NULL;
    }
    if (req->app->auth->cookie) {
        const char *c = cookie_value(req, req->app->auth->cookie);
        *token = c && *c ? c : NULL;
        if (*token)
            return check_cookie_origin(req);
    }
    return NULL;
}

keel_error *keel__auth_resolve(keel_req *req)
{
    if (req->auth_resolved)
        return NULL;
    req->auth_resolved = true;
    const keel_auth_handler *h = req->app ? req->app->auth : NULL;
    if (!h)
        return NULL;
    const char *token;
    keel_error *err = find_token(req, &token);
    if (err || !token)
        return err;
    void *data = keel_arena_calloc(&req->arena, 1, h->data_size ? h->data_size : 1);
    if (!data)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    req->in_auth = true;
    err = h->fn(req, token, data);
    req->in_auth = false;
    if (!err) {
        req->auth = data;
        return NULL;
    }
    /* Refused credentials leave a public endpoint without auth data; the
     * endpoint decides (KEEL_AUTH ones answer 401).  Anything else (the
     * handler's database is down) fails the request. */
    if (err->code == KEEL_UNAUTHENTICATED) {
        req->auth_subject = NULL;
        if (req->route && (req->route->ep->flags & KEEL_AUTH))
            return err;
        keel_error_free(err);
        return NULL;
    }
    return err;
}

/* ---- the middleware chain -------------------------------------------------------------- */

static bool has_tag(const char *const *tags, const char *tag)
{
    for (size_t i = 0; tags && tags[i]; i++)
        if (strcmp(tags[i], tag) == 0)
            return true;
    return false;
}

static bool applies(const keel_middleware *mw, const keel_route *route, const keel_service *owner)
{
    if (!mw->global && owner != route->service)
        return false;
    if (!mw->tags)
        return true;
    for (size_t i = 0; mw->tags[i]; i++)
        if (has_tag(route->ep->tags, mw->tags[i]))
            return true;
    return false;
}

/* Appends to route's list every middleware of owner that applies (global
 * ones when globals, else the service's own). */
static keel_error *collect(keel_route *route, const keel_service *owner, bool globals, size_t *cap)
{
    for (size_t i = 0; owner->middleware && owner->middleware[i]; i++) {
        const keel_middleware *mw = owner->middleware[i];
        if (mw->global != globals || !applies(mw, route, owner))
            continue;
        if (route->nmiddleware == *cap) {
            size_t want = *cap ? *cap * 2 : 4;
            const keel_middleware **grown = realloc(route->middleware, want * sizeof *grown);
            if (!grown)
                return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
            route->middleware = grown;
            *cap = want;
        }
        route->middleware[route->nmiddleware++] = mw;
    }
    return NULL;
}

keel_error *keel__middleware_register(keel_app *app)
{
    for (size_t i = 0; app->services[i]; i++) {
        const keel_service *s = app->services[i];
        if (s->auth) {
            if (app->auth)
                return keel_error_new(KEEL_INVALID_ARGUMENT,
                                      "service %s: .auth: the app already has an auth handler (%s); an app has one",
                                      s->name, app->auth->name);
            if (!s->auth->fn || !s->auth->data_fields)
                return keel_error_new(KEEL_INVALID_ARGUMENT,
                                      "service %s: .auth: declare it with KEEL_AUTH_HANDLER(fn, Type)", s->name);
            app->auth = s->auth;
        }
        for (size_t j = 0; s->middleware && s->middleware[j]; j++)
            if (!s->middleware[j]->name || (!s->middleware[j]->before && !s->middleware[j]->after))
                return keel_error_new(KEEL_INVALID_ARGUMENT,
                                      "service %s: .middleware[%zu]: a middleware has a name and a before or "
                                      "after function", s->name, j);
    }
    for (size_t r = 0; r < app->nroutes; r++) {
        keel_route *route = &app->routes[r];
        if ((route->ep->flags & KEEL_AUTH) && !app->auth)
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "%s is KEEL_AUTH but the app has no auth handler: declare one in a service's "
                                  ".auth (KEEL_AUTH_HANDLER)", route->label);
        size_t cap = 0;
        keel_error *err = NULL;
        for (size_t i = 0; !err && app->services[i]; i++)
            err = collect(route, app->services[i], true, &cap);
        if (!err)
            err = collect(route, route->service, false, &cap);
        if (err)
            return err;
    }
    /* The request header fields typed endpoints declare: a CORS preflight
     * allows them without configuration. */
    size_t n = 0;
    for (size_t r = 0; r < app->nroutes; r++)
        for (const keel_field *f = app->routes[r].ep->req_fields; f && f->type != KEEL_T_END; f++)
            n += (f->flags & KEEL_IN_HEADER) != 0;
    app->header_fields = calloc(n + 1, sizeof *app->header_fields);
    if (!app->header_fields)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    n = 0;
    for (size_t r = 0; r < app->nroutes; r++)
        for (const keel_field *f = app->routes[r].ep->req_fields; f && f->type != KEEL_T_END; f++)
            if (f->flags & KEEL_IN_HEADER)
                app->header_fields[n++] = f->name;
    return NULL;
}

void keel__middleware_free(keel_app *app)
{
    for (size_t r = 0; app->routes && r < app->nroutes; r++) {
        free(app->routes[r].middleware);
        app->routes[r].middleware = NULL;
        app->routes[r].nmiddleware = 0;
    }
    free(app->header_fields);
    app->header_fields = NULL;
    keel__cors_free(app->cors);
    app->cors = NULL;
    keel__trusted_proxies_free(app->trusted);
    app->trusted = NULL;
}

keel_error *keel__middleware_start(keel_app *app)
{
    keel_error *err = keel__trusted_proxies_parse(getenv("KEEL_TRUSTED_PROXIES"), &app->trusted);
    if (err)
        return keel_error_prefix(err, "KEEL_TRUSTED_PROXIES");
    const char *path = getenv("KEEL_INFRA_CONFIG");
    if (!path || !*path)
        return NULL;
    const keel_infra *infra = NULL;
    err = keel__infra_process(&infra);
    if (!err)
        err = keel__cors_new(keel__infra_cors(infra), keel__infra_path(infra), &app->cors);
    return err;
}

/* A rate limit by IP needs nothing the auth handler finds: it throttles
 * before the handler's lookup costs anything. */
static bool runs_before_auth(const keel_middleware *mw)
{
    return mw->before_auth || (mw->rate_limit && mw->rate_limit->by == KEEL_RATE_BY_IP);
}

keel_error *keel__middleware_before(keel_req *req, const void *typed_in, keel_mw_phase phase)
{
    const keel_route *route = req->route;
    for (size_t i = 0; route && i < route->nmiddleware; i++) {
        const keel_middleware *mw = route->middleware[i];
        if (!mw->before || (phase != KEEL__MW_ALL && runs_before_auth(mw) != (phase == KEEL__MW_PRE_AUTH)))
            continue;
        keel_error *err = mw->before(req, typed_in, mw->state);
        if (err)
            return err;
    }
    return NULL;
}

void keel__middleware_after(keel_req *req)
{
    /* Every after() sees every answer of its endpoints, a refusal by the
     * auth check or by an earlier before() included (a timing or logging
     * middleware must not miss the 401s and 429s). */
    const keel_route *route = req->route;
    for (size_t i = route ? route->nmiddleware : 0; i-- > 0;) {
        const keel_middleware *mw = route->middleware[i];
        if (mw->after)
            mw->after(req, &req->resp, mw->state);
    }
}

/* ---- response headers, client address, timing ------------------------------------------ */

keel_error *keel_req_add_response_header(keel_req *req, const char *name, const char *value)
{
    keel_header *h = keel_arena_alloc(&req->arena, sizeof *h);
    char *n = keel_arena_strdup(&req->arena, name);
    char *v = keel_arena_strdup(&req->arena, value);
    if (!h || !n || !v)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    if (strpbrk(n, "\r\n:") || strpbrk(v, "\r\n"))
        return keel_error_new(KEEL_INTERNAL, "response header %s: a name or value with a line break", n);
    h->name = n;
    h->value = v;
    h->next = NULL;
    if (!req->extra_tail)
        req->extra_tail = &req->extra_headers;
    *req->extra_tail = h;
    req->extra_tail = &h->next;
    return NULL;
}

void keel__resp_add_extras(keel_req *req)
{
    for (const keel_header *h = req->extra_headers; h; h = h->next)
        keel_resp_header(&req->resp, h->name, h->value);
    /* Without CORS configured there is nothing to add: no header lookup. */
    if (!req->app || !req->app->cors || !req->conn)
        return;
    bool preflight = !strcmp(req->method, "OPTIONS") && keel_req_header(req, "Access-Control-Request-Method");
    if (!preflight) {
        keel_error *err = keel__cors_actual(req->app->cors, keel_req_header(req, "Origin"), &req->resp);
        keel_error_free(err); /* out of memory: the response goes without them */
    }
}

/* Every X-Forwarded-For line, in order, as one list: a proxy such as
 * HAProxy (option forwardfor) adds a line of its own after the client's
 * instead of appending to it, and the rightmost entries are the ones we
 * trust. */
typedef struct xff_lines {
    keel_buf joined;
    unsigned n;
} xff_lines;

static int xff_line(void *cls, const char *name, const char *value)
{
    xff_lines *x = cls;
    if (strcasecmp(name, "X-Forwarded-For") != 0)
        return 0;
    if (x->n++)
        keel_buf_putc(&x->joined, ',');
    keel_buf_puts(&x->joined, value ? value : "");
    return 0;
}

static const char *forwarded_for(keel_req *req)
{
    if (!req->app->trusted) /* nothing is believed: no need to read it */
        return NULL;
    xff_lines x = {.n = 0};
    keel_buf_init(&x.joined, &req->arena);
    keel_req_each(req, KEEL_HEADERS, xff_line, &x);
    if (!x.n)
        return NULL;
    keel_buf_putc(&x.joined, '\0');
    return x.joined.failed ? "" : x.joined.data; /* out of memory: believe no hop */
}

const char *keel_req_client_ip(keel_req *req)
{
    if (req->client_ip[0] || !req->conn)
        return req->client_ip[0] ? req->client_ip : "";
    const struct sockaddr *peer = keel__req_peer(req);
    if (!peer)
        return "";
    keel__client_ip(req->app->trusted, peer, forwarded_for(req), req->client_ip,
                    sizeof req->client_ip);
    return req->client_ip;
}

uint64_t keel_req_elapsed_us(const keel_req *req)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)((now.tv_sec - req->started.tv_sec) * 1000000 + (now.tv_nsec - req->started.tv_nsec) / 1000);
}

/* ---- the built-in rate limit ---------------------------------------------------------------- */

/* KEEL_RATE_LIMIT_<NAME>: "PER_SECOND" or "PER_SECOND/BURST". */
static keel_error *limit_override(const keel_rate_limit *limit, double *rate, double *burst)
{
    char var[96];
    int n = snprintf(var, sizeof var, "KEEL_RATE_LIMIT_");
    for (const char *p = limit->name ? limit->name : ""; *p && n < (int)sizeof var - 1; p++)
        var[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 'a' + 'A' : *p);
    var[n] = '\0';
    const char *v = limit->name ? getenv(var) : NULL;
    if (!v)
        return NULL;
    char *end;
    double r = strtod(v, &end), b = r;
    if (*end == '/')
        b = strtod(end + 1, &end);
    if (*end || !(r > 0) || !(b >= 1))
        return keel_error_new(KEEL_FAILED_PRECONDITION, "%s=\"%s\": expected PER_SECOND or PER_SECOND/BURST "
                              "(numbers, the rate above 0, the burst at least 1)", var, v);
    *rate = r;
    *burst = b;
    return NULL;
}

static keel_error *limiter_new(void *arg, void **out)
{
    keel_rate_limit *limit = arg;
    double rate = limit->per_second, burst = limit->burst;
    keel_error *err = limit_override(limit, &rate, &burst);
    if (err)
        return err;
    return keel__ratelimiter_new(rate, burst, limit->max_keys ? limit->max_keys : 65536, (keel_ratelimiter **)out);
}

keel_error *keel_rate_limit_before(keel_req *req, const void *typed_in, void *state)
{
    (void)typed_in;
    keel_rate_limit *limit = state;
    void *rl = NULL;
    keel_error *err = keel_lazy_get(&limit->limiter, limiter_new, limit, &rl);
    if (err)
        return err;
    const char *subject = limit->by == KEEL_RATE_BY_SUBJECT ? keel_req_auth_subject(req) : NULL;
    char key[300];
    int n;
    unsigned char ip[16];
    const char *text = subject ? NULL : keel_req_client_ip(req);
    if (subject) {
        n = snprintf(key, sizeof key, "s:%s", subject);
    } else if (keel__ip_parse(text, strlen(text), ip)) {
        keel__ip_client_key(ip, limit->ipv6_prefix); /* an IPv6 client is its network */
        key[0] = 'i';
        key[1] = ':';
        memcpy(key + 2, ip, 16);
        n = 18;
    } else {
        n = snprintf(key, sizeof key, "i:%s", text); /* no address (a Unix socket) */
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint64_t retry_ms = 0;
    if (keel__ratelimiter_take(rl, key, n < 0 ? 0 : (size_t)n >= sizeof key ? sizeof key - 1 : (size_t)n,
                               (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec, &retry_ms))
        return NULL;
    char seconds[24];
    snprintf(seconds, sizeof seconds, "%llu", (unsigned long long)((retry_ms + 999) / 1000));
    keel_error_free(keel_req_add_response_header(req, "Retry-After", seconds));
    return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "rate limit exceeded: at most %g requests a second%s; retry in %s s",
                          limit->per_second, subject ? " per caller" : " per client", seconds);
}

/* ---- CORS preflights ------------------------------------------------------------------------ */

bool keel__cors_preflight_answer(keel_req *req)
{
    /* Every request passes here: the method is checked before any header
     * is looked up (libmicrohttpd scans the header list for each). */
    if (strcmp(req->method, "OPTIONS") != 0)
        return false;
    const char *origin = keel_req_header(req, "Origin");
    const char *wanted = keel_req_header(req, "Access-Control-Request-Method");
    if (!origin || !wanted)
        return false;
    /* The router says which methods the path takes (a 405's Allow). */
    const char *methods = req->method_not_allowed ? req->match.allow : NULL;
    keel_error *err = keel__cors_preflight(req->app->cors, origin, wanted,
                                           keel_req_header(req, "Access-Control-Request-Headers"), methods,
                                           req->app->header_fields, &req->resp);
    keel_error_free(req->error);
    req->error = err;
    req->method_not_allowed = false;
    req->state = REQ_READY;
    return true;
}

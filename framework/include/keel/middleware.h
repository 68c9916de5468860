/* keel/middleware.h - authentication, middleware and rate limits, declared
 * like everything else.
 *
 * The auth handler (one per app, declared by a service in .auth) turns a
 * request's credentials into typed auth data:
 *
 *     typedef struct { const char *user_id; bool admin; } user;
 *     static const keel_field user_fields[] = KEEL_FIELDS(KEEL_STRING(user, user_id), KEEL_BOOL(user, admin));
 *     static keel_error *authenticate(keel_req *req, const char *token, user *out) { ... }
 *     static const keel_auth_handler auth = KEEL_AUTH_HANDLER(authenticate, user);
 *
 * The token is the Bearer token of the Authorization header, else the value
 * of the handler's cookie (.cookie = "session").  Endpoints are public (the
 * default: auth data when credentials are present and valid), KEEL_AUTH
 * (401 unauthenticated without them; the endpoint's handler is not called)
 * or KEEL_PRIVATE.  The handler runs once per request, before middleware,
 * like any handler (it may query a database); its result is cached for the
 * request and keel_call passes it on.
 *
 * Middleware runs around handlers: every before() in order (global ones of
 * every service first, in the order main lists the services, then the
 * endpoint's own service's), then the handler, then every after() in
 * reverse order.  A before() that returns an error answers the request with
 * it (later befores and the handler do not run); the afters still run, as
 * they do for a 401 of the auth check, so that they see every answer.
 * Tags on endpoints (KEEL_TAGS) select which middleware applies.  For
 * mounted libmicrohttpd handlers only the befores run (and no auth handler:
 * the legacy code does its own). */
#ifndef KEEL_MIDDLEWARE_H
#define KEEL_MIDDLEWARE_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "http.h"
#include "lazy.h"
#include "schema.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

/* ---- authentication ------------------------------------------------------------ */

/* token: the credential (never NULL or empty); out: the zeroed auth data
 * struct.  Return NULL to accept, an unauthenticated error to refuse (on a
 * public endpoint the request then goes on without auth data), any other
 * error to fail the request with it (a database that is down: 503). */
typedef keel_error *(*keel_auth_fn)(keel_req *req, const char *token, void *out);

typedef struct keel_auth_handler {
    const char *name;              /* the handler function's name */
    keel_auth_fn fn;
    const keel_field *data_fields; /* the auth data's field table (app model) */
    size_t data_size;
    const char *data_type;
    const char *cookie;            /* a cookie carrying the token when there is no
                                      Authorization header; NULL: none */
} keel_auth_handler;

#define KEEL__AUTH_FN(handler, T) \
    (sizeof(struct { \
         _Static_assert(__builtin_types_compatible_p(__typeof__(1 ? (handler) : (handler)), \
                                                     keel_error *(*)(keel_req *, const char *, T *)), \
                        "KEEL_AUTH_HANDLER: " #handler " must be: keel_error *" #handler \
                        "(keel_req *, const char *token, " #T " *)"); \
         int keel__ok; }) ? (keel_auth_fn)(handler) : (keel_auth_fn)0)

/* The trailing arguments are more designated initializers: .cookie = "session". */
#define KEEL_AUTH_HANDLER(handler, T, ...) \
    { .name = #handler, .fn = KEEL__AUTH_FN(handler, T), .data_fields = T##_fields, .data_size = sizeof(T), \
      .data_type = #T, __VA_ARGS__ }

/* The request's auth data (the struct the auth handler filled), or NULL when
 * the request carries no valid credentials.  Read-only; lives as long as the
 * request. */
const void *keel_req_auth(keel_req *req);

/* Called by the auth handler: who the caller is, for rate limits per caller
 * and the log (copied into the request's arena). */
void keel_auth_set_subject(keel_req *req, const char *subject);
/* The subject the auth handler set, or NULL. */
const char *keel_req_auth_subject(keel_req *req);

/* ---- middleware ---------------------------------------------------------------- */

/* typed_in is the decoded request struct of a typed endpoint (NULL for raw
 * and mounted endpoints).  state is the middleware's own .state. */
typedef keel_error *(*keel_before_fn)(keel_req *req, const void *typed_in, void *state);
/* resp is the response about to be sent (an error response included): add
 * headers with keel_resp_header; status and body are read-only here. */
typedef void (*keel_after_fn)(keel_req *req, keel_resp *resp, void *state);

typedef struct keel_middleware {
    const char *name;
    keel_before_fn before;      /* may be NULL */
    keel_after_fn after;        /* may be NULL */
    const char *const *tags;    /* NULL: every endpoint in its scope; else only
                                   endpoints with one of these tags */
    bool global;                /* every service's endpoints, not only its own */
    bool before_auth;           /* before() runs ahead of the auth handler (and of
                                   decoding), typed_in NULL: for cheap checks that
                                   must throttle or refuse before credentials cost
                                   a lookup.  A rate limit by IP always does. */
    void *state;
    const struct keel_rate_limit *rate_limit; /* set by KEEL_RATE_LIMIT_MIDDLEWARE (app model) */
} keel_middleware;

/* A NULL-terminated list of tags for KEEL_TYPED_TAGS, KEEL_RAW_TAGS and
 * keel_middleware.tags. */
#define KEEL_TAGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* A response header added by middleware (or a handler) to whatever response
 * the request gets, an error response included (Retry-After with a 429). */
keel_error *keel_req_add_response_header(keel_req *req, const char *name, const char *value);

/* The client's IP address as text: the peer, or behind proxies listed in
 * KEEL_TRUSTED_PROXIES (addresses and CIDR blocks), the nearest address in
 * X-Forwarded-For that is not one of them.  Never NULL. */
const char *keel_req_client_ip(keel_req *req);

/* Microseconds since the request arrived. */
uint64_t keel_req_elapsed_us(const keel_req *req);

/* ---- rate limits ----------------------------------------------------------------- */

typedef enum { KEEL_RATE_BY_IP = 0, KEEL_RATE_BY_SUBJECT } keel_rate_key;

/* A token bucket per client (IP address, or auth subject falling back to the
 * IP address): per_second tokens a second, bursts of burst.  Refused
 * requests get 429 resource_exhausted with Retry-After.  At most max_keys
 * clients are tracked (0: 65536); the least recently seen is forgotten.
 * Operators may change a limit without a rebuild: KEEL_RATE_LIMIT_<NAME>
 * (NAME upper-cased) = "PER_SECOND" or "PER_SECOND/BURST", read at first use. */
typedef struct keel_rate_limit {
    const char *name;            /* [a-z][a-z0-9_]* */
    double per_second;
    double burst;
    keel_rate_key by;
    size_t max_keys;
    unsigned ipv6_prefix;        /* IPv6 clients are keyed by their first ipv6_prefix
                                    bits (0: 64, one customer's network; 128: each
                                    address): one host has a whole /64 to pick from */
    keel_lazy limiter;           /* made on first use */
} keel_rate_limit;

#define KEEL_RATE_LIMIT(limit_name, rate, burst_size, key) \
    { .name = (limit_name), .per_second = (rate), .burst = (burst_size), .by = (key), .max_keys = 0, \
      .ipv6_prefix = 0, .limiter = KEEL_LAZY_INIT }

/* The middleware enforcing limit on the endpoints with one of tags (NULL:
 * every endpoint of the declaring service; .global = true in a copy for
 * every service's). */
#define KEEL_RATE_LIMIT_MIDDLEWARE(limit, tag_list) \
    { .name = "rate_limit", .before = keel_rate_limit_before, .after = NULL, .tags = (tag_list), .global = false, \
      .state = (limit), .rate_limit = (limit) }

/* The before() of KEEL_RATE_LIMIT_MIDDLEWARE; state is a keel_rate_limit. */
keel_error *keel_rate_limit_before(keel_req *req, const void *typed_in, void *state);

#pragma GCC visibility pop

#endif

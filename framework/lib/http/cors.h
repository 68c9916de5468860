/* cors.h - private: cross-origin resource sharing as the infra config's
 * "cors" object configures it (see cors.c):
 *
 *   "cors": {"allow_origins": ["http://localhost:5173", WILDCARD],
 *            "allow_origins_with_credentials": ["https://app.example.com"],
 *            "allow_headers": ["X-Request-Id"], "expose_headers": ["X-Request-Id"],
 *            "max_age_s": 600}
 *
 * An origin is "scheme://host[:port]" (no path, no trailing /), or the same
 * with "*." as the host's first label (WILDCARD above: "https:", two
 * slashes, "*.example.com", which a C comment cannot spell out: any
 * subdomain of example.com, at any depth, with that scheme and port, never
 * example.com itself), or "*" (any origin) in allow_origins only.  The origins in
 * allow_origins_with_credentials are allowed with cookies and HTTP
 * authentication; "*" is never allowed there.  Scheme and host compare
 * case-insensitively, and a port left out is the scheme's default (80 for
 * http, 443 for https).  The "null" origin is never allowed.
 *
 * A compiled keel_cors is read-only: any number of threads may use it at
 * once.  NULL stands for "no cors object": CORS off, no cross-origin access. */
#ifndef KEEL_CORS_H
#define KEEL_CORS_H

#include <stdbool.h>
#include <jansson.h>

#include "keel/error.h"
#include "keel/http.h"

typedef struct keel_cors keel_cors;

/* Checks and compiles the infra config's "cors" object (NULL: CORS off: *out
 * is NULL, which every function below accepts).  Errors are
 * failed_precondition naming where ("infra config PATH: cors.allow_origins[2]:
 * ..."), never a value, with path the file's path for messages.  The caller
 * owns *out (keel__cors_free); on error *out is NULL. */
keel_error *keel__cors_new(const json_t *cors, const char *path, keel_cors **out);
void keel__cors_free(keel_cors *c);

/* An actual (non-preflight) request with Origin origin (NULL: not
 * cross-origin, nothing to do): when the origin is allowed, adds
 * Access-Control-Allow-Origin (the origin itself; "*" only when the origin is
 * allowed by "*" alone, so never when credentials are allowed for it),
 * Access-Control-Allow-Credentials: true when it is in
 * allow_origins_with_credentials, Access-Control-Expose-Headers when
 * configured; always adds Vary: Origin when CORS is on.  A refused origin
 * gets no Access-Control-* header (the browser then blocks the response).
 * Errors: only keel_resp_header's (out of memory). */
keel_error *keel__cors_actual(const keel_cors *c, const char *origin, keel_resp *resp);

/* A preflight (OPTIONS with Origin and Access-Control-Request-Method).
 * methods: what the path's routes take, e.g. "GET, HEAD, POST" ("*" in it:
 * any method); NULL or "": no route: returns not_found ("endpoint not
 * found", Keel's 404) and leaves resp alone.  endpoint_headers: NULL or
 * NULL-terminated header names that typed endpoints on this path declare as
 * header fields; they, the configured allow_headers, Authorization and
 * Content-Type are the headers a request may carry (compared
 * case-insensitively).  Fills resp: status 204,
 * Access-Control-Allow-Origin (+ -Allow-Credentials), -Allow-Methods (methods,
 * or the requested method when methods has "*"), -Allow-Headers (the
 * requested ones, when any), -Max-Age (when configured),
 * Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers.
 * A refused origin, a method the path does not take, or a requested header
 * that is not allowed: 204 with only the Vary header (the browser refuses);
 * returns NULL.  The caller sends resp. */
keel_error *keel__cors_preflight(const keel_cors *c, const char *origin, const char *request_method,
                                 const char *request_headers, const char *methods,
                                 const char *const *endpoint_headers, keel_resp *resp);

/* True when origin is allowed; *with_credentials (may be NULL) then says
 * whether with credentials.  False for NULL c or origin. */
bool keel__cors_origin_allowed(const keel_cors *c, const char *origin, bool *with_credentials);

/* True when origin ("scheme://host[:port]") names the host and port of the
 * request's Host header (host[:port], the port left out: the origin
 * scheme's default): a page of the app itself.  False for NULL or
 * malformed values. */
bool keel__cors_same_origin(const char *origin, const char *host);

#endif

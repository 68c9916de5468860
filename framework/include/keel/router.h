/* keel/router.h - the path router.
 *
 * Patterns are '/'-separated segments: static text, ":name" (one non-empty
 * segment), a final "*name" (the rest of the path, possibly empty) and a final
 * "!name" (a fallback that matches only when nothing else does).  Precedence is
 * static > param > wildcard > fallback at every position, whatever the order of
 * registration, with backtracking: "/a/b/c" still reaches "/a/:x/c" when "/a/b"
 * exists but has no child "c".  The router is built once at start-up and is
 * read-only afterwards, so lookups need no locks; a lookup does not allocate. */
#ifndef KEEL_ROUTER_H
#define KEEL_ROUTER_H

#include <stddef.h>
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

#define KEEL_MAX_PARAMS 16

typedef struct keel_router keel_router;

/* One captured parameter.  name is the route's copy of the parameter name
 * (NUL-terminated, lives as long as the router); value is
 * percent-decoded, NUL-terminated and points into the caller's scratch buffer. */
typedef struct keel_route_param {
    const char *name;
    const char *value;
    size_t len;
} keel_route_param;

typedef enum keel_route_result {
    KEEL_ROUTE_FOUND = 0,
    KEEL_ROUTE_NOT_FOUND,          /* -> 404 not_found */
    KEEL_ROUTE_METHOD_NOT_ALLOWED, /* -> 405; match->allow lists the methods */
    KEEL_ROUTE_BAD_PATH            /* a parameter decoded to NUL, '.', '..' or
                                      an invalid escape -> 400 invalid_argument */
} keel_route_result;

typedef struct keel_route_match {
    void *target;        /* what keel_router_add registered */
    const char *pattern; /* the registered pattern, e.g. "/hello/:name" */
    size_t nparams;
    keel_route_param params[KEEL_MAX_PARAMS];
    char allow[96];      /* "GET, HEAD, POST" for KEEL_ROUTE_METHOD_NOT_ALLOWED */
    const char *bad_param; /* for KEEL_ROUTE_BAD_PATH: the parameter's name */
} keel_route_match;

/* Creates an empty router; the caller owns it (keel_router_free).  Returns an
 * error only when memory is exhausted. */
keel_error *keel_router_new(keel_router **out);
void keel_router_free(keel_router *r);

/* Registers target for method and pattern.  method is an upper-case HTTP method
 * or "*" for any method.  label names the registration in error messages (for
 * example "hello.get"); both pattern and label must outlive the router.
 * Errors (invalid_argument): a pattern that cannot be parsed (not starting with
 * '/', empty or duplicate parameter names, a wildcard or fallback that is not
 * last, more than KEEL_MAX_PARAMS parameters) or a conflict: the same method and
 * the same shape (parameter names do not matter) as an earlier registration; the
 * message names both labels and patterns. */
keel_error *keel_router_add(keel_router *r, const char *method, const char *pattern,
                            void *target, const char *label);

/* The scratch buffer keel_router_lookup needs for a path of len bytes. */
#define KEEL_ROUTER_SCRATCH(len) (2 * ((len) + 1) + KEEL_MAX_PARAMS)

/* Finds the route for method and path (the URL path without the query string).
 * The path is first put in its canonical form: an escape of a byte a pattern
 * may hold (visible ASCII but '/', '?', '#' and '%') is decoded, so
 * "/api/%69tems/1" is "/api/items/1" and reaches the route that spelling
 * reaches; "%2F" and the others stay escapes, so they never match a static
 * segment.  An encoded '/' is refused in a :param, and is a separator in a
 * catch-all's value: the path is then looked up again with it decoded, so
 * "/api/items%2F1" reaches the route "/api/items/1" reaches.  Decoded parameter values are written to scratch, which must hold
 * at least KEEL_ROUTER_SCRATCH(strlen(path)) bytes.  A HEAD request matches a
 * GET route when no HEAD route exists. */
keel_route_result keel_router_lookup(const keel_router *r, const char *method,
                                     const char *path, char *scratch, size_t scratch_len,
                                     keel_route_match *match);

/* Calls fn for every registration in precedence order (used by the app model). */
void keel_router_each(const keel_router *r,
                      void (*fn)(void *cls, const char *method, const char *pattern, void *target),
                      void *cls);

#pragma GCC visibility pop

#endif

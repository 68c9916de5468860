/* fuzz_router.c - libFuzzer target for the path router (framework/lib/router.c).
 *
 * One router holds the routes of the unit tests and of the example services;
 * each input is a method (its first byte picks one) and a path (the rest, up
 * to a NUL, as libmicrohttpd hands it over).  Beyond the sanitizers, it checks
 * what the README promises a handler: a ":param" value never holds '/' or NUL
 * and is never "." or "..", a wildcard value never starts with '/' and has no
 * "." or ".." segment, values lie in the caller's scratch buffer; and that
 * routing is spelling-independent: the fully decoded path (what a mounted
 * libmicrohttpd handler sees) reaches the same route with the same values. */
#include "keel/router.h"
#include "fuzz.h"

#include <stdbool.h>

typedef struct fuzz_route {
    const char *method;
    const char *pattern;
} fuzz_route;

static const fuzz_route routes[] = {
    {"GET", "/"},
    {"GET", "/hello"},
    {"GET", "/hello/world"},
    {"GET", "/hello/:name"},
    {"POST", "/hello"},
    {"POST", "/hello/compose"},
    {"GET", "/a"},
    {"GET", "/a/"},
    {"GET", "/a/b"},
    {"POST", "/a/b"},
    {"DELETE", "/a/b"},
    {"GET", "/a/:x"},
    {"GET", "/a/:name/b"},
    {"GET", "/a/:x/c"},
    {"GET", "/a/b/:y/e"},
    {"GET", "/a/:x/c/d"},
    {"GET", "/a/:x/"},
    {"GET", "/a/*w"},
    {"GET", "/a/!f"},
    {"GET", "/users/:id/posts/:post"},
    {"GET", "/files/*path"},
    {"GET", "/s/b/c"},
    {"GET", "/s/*w"},
    {"GET", "/x/a"},
    {"GET", "/x/:p"},
    {"GET", "/u/:name"},
    {"GET", "/f/*path"},
    {"GET", "/two/:a/:b"},
    {"GET", "/!rest"},
    {"*", "/api/*path"},
    {"GET", "/api/!x"},
    {"GET", "/api/items/:id"},
    {"GET", "/api/a,b~c"},
    {"GET", "/api/users/:id"},
    {"GET", "/deep/:a/:b/*c"},
    {"POST", "/form"},
    {"GET", "/r"},
    {"POST", "/r"},
    {"PUT", "/p"},
    {"DELETE", "/p"},
    {"GET", "/h"},
    {"HEAD", "/h"},
    {"*", "/any"},
    {"PURGE", "/cache"},
    {"POST", "/m/a"},
    {"*", "/m/:x"},
    {"POST", "/n/b"},
    {"PUT", "/n/:x"},
    {"GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/*p"},
    {"GET", "/todo"},
    {"POST", "/todo"},
    {"GET", "/todo/:id"},
    {"DELETE", "/todo/:id"},
    {"PUT", "/todo/:id/done"},
    {"GET", "/test/route/:id"},
    {"GET", "/test/route/:id/more"},
    {"GET", "/test/route/files/*rest"},
    {"GET", "/test/route/static"},
    {"GET", "/test/!other"},
    {"POST", "/webhooks/github"},
    {"GET", "/webhooks/events"},
};
#define NROUTES (sizeof routes / sizeof *routes)

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "PURGE", "OPTIONS"};
#define NMETHODS (sizeof methods / sizeof *methods)

static keel_router *router;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    keel_error *err = keel_router_new(&router);
    FUZZ_CHECK(!err, "keel_router_new failed");
    for (size_t i = 0; i < NROUTES; i++) {
        err = keel_router_add(router, routes[i].method, routes[i].pattern, (void *)&routes[i],
                              routes[i].pattern);
        FUZZ_CHECK(!err, "route %s %s: %s", routes[i].method, routes[i].pattern,
                   err ? err->message : "");
    }
    return 0;
}

/* The parameter names of a pattern in order, and whether the last one is a
 * wildcard or fallback (which may hold '/'). */
static size_t pattern_names(const char *pattern, char names[KEEL_MAX_PARAMS][64], bool *has_rest)
{
    size_t n = 0;
    *has_rest = false;
    for (const char *p = pattern; (p = strchr(p, '/')) != NULL;) {
        p++;
        if (*p != ':' && *p != '*' && *p != '!')
            continue;
        size_t len = strcspn(p + 1, "/");
        FUZZ_CHECK(n < KEEL_MAX_PARAMS && len < 64, "pattern %s", pattern);
        memcpy(names[n], p + 1, len);
        names[n][len] = '\0';
        *has_rest = *p != ':';
        n++;
    }
    return n;
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* path with every valid escape decoded, as libmicrohttpd gives a mounted
 * handler.  NULL when that would not be a path the router can take as it is:
 * a '%' or NUL would come out of an escape. */
static char *decoded_path(const char *path)
{
    size_t len = strlen(path);
    char *out = malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = path[i];
        if (c == '%' && hex(path[i + 1]) >= 0 && hex(path[i + 2]) >= 0) { /* the NUL stops a short one */
            c = (char)(hex(path[i + 1]) * 16 + hex(path[i + 2]));
            i += 2;
        }
        if (c == '%' || c == '\0') {
            free(out);
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

static bool is_dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

/* Looks up method and path with a scratch buffer of exactly the documented
 * size, so that ASan sees any write past it, and checks the invariants of
 * the result.  *scratch_out receives the buffer (the caller frees it). */
static keel_route_result lookup_checked(const char *method, const char *path, keel_route_match *m,
                                        char **scratch_out)
{
    size_t need = KEEL_ROUTER_SCRATCH(strlen(path));
    char *scratch = malloc(need);
    *scratch_out = scratch;

    /* One byte short is a caller bug: refused without naming a parameter. */
    keel_route_result r = keel_router_lookup(router, method, path, scratch, need - 1, m);
    FUZZ_CHECK(path[0] != '/' ? r == KEEL_ROUTE_NOT_FOUND : r == KEEL_ROUTE_BAD_PATH && !m->bad_param,
               "short scratch gave %d for %s", (int)r, path);

    r = keel_router_lookup(router, method, path, scratch, need, m);
    FUZZ_CHECK(r == KEEL_ROUTE_FOUND || r == KEEL_ROUTE_NOT_FOUND || r == KEEL_ROUTE_METHOD_NOT_ALLOWED ||
                   r == KEEL_ROUTE_BAD_PATH, "result %d is not a keel_route_result", (int)r);
    const fuzz_route *rt = m->target;
    FUZZ_CHECK(!rt || (rt >= routes && rt < routes + NROUTES), "target is not a registered route");

    switch (r) {
    case KEEL_ROUTE_NOT_FOUND:
        FUZZ_CHECK(!m->target && !m->pattern && !m->nparams, "404 with a match for %s", path);
        return r;
    case KEEL_ROUTE_METHOD_NOT_ALLOWED: {
        FUZZ_CHECK(!m->target && m->pattern && m->allow[0], "405 without pattern or Allow for %s", path);
        /* The method itself can never be in Allow: that route would have taken it. */
        size_t mlen = strlen(method);
        for (const char *a = m->allow; *a;) {
            size_t n = strcspn(a, ",");
            FUZZ_CHECK(!(n == mlen && memcmp(a, method, n) == 0), "405 for %s %s allows %s", method, path,
                       m->allow);
            a += n;
            while (*a == ',' || *a == ' ')
                a++;
        }
        return r;
    }
    case KEEL_ROUTE_BAD_PATH:
    case KEEL_ROUTE_FOUND:
        break;
    }

    FUZZ_CHECK(rt && m->pattern == rt->pattern, "match without its route for %s", path);
    FUZZ_CHECK(strcmp(rt->method, method) == 0 || strcmp(rt->method, "*") == 0 ||
                   (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0),
               "%s %s reached %s %s", method, path, rt->method, rt->pattern);
    char names[KEEL_MAX_PARAMS][64];
    bool has_rest;
    size_t nnames = pattern_names(rt->pattern, names, &has_rest);

    if (r == KEEL_ROUTE_BAD_PATH) {
        bool named = false;
        for (size_t i = 0; i < nnames; i++)
            named |= m->bad_param && strcmp(m->bad_param, names[i]) == 0;
        FUZZ_CHECK(named, "400 for %s without a parameter of %s", path, rt->pattern);
        return r;
    }

    FUZZ_CHECK(m->nparams == nnames, "%zu params for %s (%zu expected)", m->nparams, rt->pattern, nnames);
    for (size_t i = 0; i < m->nparams; i++) {
        const keel_route_param *p = &m->params[i];
        FUZZ_CHECK(strcmp(p->name, names[i]) == 0, "param %zu is %s in %s", i, p->name, rt->pattern);
        FUZZ_CHECK(p->value >= scratch && p->value + p->len < scratch + need,
                   "value of %s is outside the scratch buffer", p->name);
        FUZZ_CHECK(p->value[p->len] == '\0' && strlen(p->value) == p->len,
                   "value of %s holds a NUL or is not terminated (%s)", p->name, path);
        bool rest = has_rest && i + 1 == m->nparams;
        if (!rest) {
            FUZZ_CHECK(p->len > 0 && !memchr(p->value, '/', p->len) && !is_dot_segment(p->value, p->len),
                       ":%s = \"%s\" from %s", p->name, p->value, path);
            continue;
        }
        FUZZ_CHECK(p->value[0] != '/', "wildcard %s = \"%s\" is absolute (%s)", p->name, p->value, path);
        for (const char *s = p->value;;) {
            size_t n = strcspn(s, "/");
            FUZZ_CHECK(!is_dot_segment(s, n), "wildcard %s = \"%s\" has a dot segment (%s)", p->name,
                       p->value, path);
            if (!s[n])
                break;
            s += n + 1;
        }
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *method = methods[data[0] % NMETHODS];
    char *path = malloc(size);
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';

    keel_route_match m;
    char *scratch;
    keel_route_result r = lookup_checked(method, path, &m, &scratch);

    if (r == KEEL_ROUTE_FOUND) {
        char *plain = decoded_path(path);
        if (plain) {
            keel_route_match m2;
            char *scratch2;
            keel_route_result r2 = lookup_checked(method, plain, &m2, &scratch2);
            FUZZ_CHECK(r2 == KEEL_ROUTE_FOUND && m2.target == m.target,
                       "%s reaches %s but its decoded form %s gives %d (%s)", path, m.pattern, plain, (int)r2,
                       m2.pattern ? m2.pattern : "-");
            for (size_t i = 0; i < m.nparams; i++)
                FUZZ_CHECK(m.params[i].len == m2.params[i].len &&
                               memcmp(m.params[i].value, m2.params[i].value, m.params[i].len) == 0,
                           "%s: %s differs between %s and %s", m.pattern, m.params[i].name, path, plain);
            free(scratch2);
            free(plain);
        }
    }
    free(scratch);
    free(path);
    return 0;
}

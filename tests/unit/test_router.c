/* test_router.c - unit tests for the path router (framework/lib/router.c):
 * matching, precedence and backtracking, methods, conflicts, parse errors,
 * percent-decoding, bad paths, enumeration and the scratch buffer contract.
 * Targets are label strings so that a match can be checked with is_str. */
#include "keel/router.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* Shared result of the last look(); its values point into scratch_buf. */
static keel_route_match M;
static char scratch_buf[4096];

/* Looks up method and path in r with the shared scratch buffer. */
static keel_route_result look(const keel_router *r, const char *method, const char *path)
{
    return keel_router_lookup(r, method, path, scratch_buf, sizeof scratch_buf, &M);
}

/* The label registered as target of the last match, or NULL. */
static const char *target(void)
{
    return (const char *)M.target;
}

/* The decoded value of the last match's parameter name, or NULL. */
static const char *param(const char *name)
{
    for (size_t i = 0; i < M.nparams; i++)
        if (strcmp(M.params[i].name, name) == 0)
            return M.params[i].value;
    return NULL;
}

static keel_router *new_router(void)
{
    keel_router *r = NULL;
    keel_error *err = keel_router_new(&r);
    if (err) {
        diag("keel_router_new: %s", err->message);
        keel_error_free(err);
        exit(1);
    }
    return r;
}

/* Registers a route whose target is its label; returns 1 on success. */
static int add(keel_router *r, const char *method, const char *pattern, const char *label)
{
    keel_error *err = keel_router_add(r, method, pattern, (void *)label, label);
    if (err) {
        diag("unexpected error: %s", err->message);
        keel_error_free(err);
        return 0;
    }
    return 1;
}

/* Registers a set of routes that must all succeed (one check). */
static void add_all(keel_router *r, const char *const routes[][3], size_t n, const char *what)
{
    int all = 1;
    for (size_t i = 0; i < n; i++)
        all &= add(r, routes[i][0], routes[i][1], routes[i][2]);
    ok(all, "%s: all routes registered", what);
}

/* Registers a route that must fail; checks the code and that the message
 * contains each of the needles (NULL-terminated). */
static void add_fails(keel_router *r, const char *method, const char *pattern,
                      const char *label, const char *const needles[])
{
    keel_error *err = keel_router_add(r, method, pattern, (void *)label, label);
    int good = err && err->code == KEEL_INVALID_ARGUMENT;
    for (size_t i = 0; good && needles[i]; i++)
        good = tap_contains(err->message, needles[i]);
    ok(good, "%s %s (%s) is rejected: %s", method ? method : "(null)",
       pattern ? pattern : "(null)", label, err ? err->message : "(no error)");
    keel_error_free(err);
}

static void test_static_and_root(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/", "root") && add(r, "GET", "/hello", "hello") &&
       add(r, "GET", "/hello/world", "hello.world"), "static: register");

    is_int(look(r, "GET", "/hello"), KEEL_ROUTE_FOUND, "static: /hello found");
    is_str(target(), "hello", "static: /hello target");
    is_str(M.pattern, "/hello", "static: /hello pattern");
    is_int(M.nparams, 0, "static: no params");
    is_int(look(r, "GET", "/hello/world"), KEEL_ROUTE_FOUND, "static: nested found");
    is_str(target(), "hello.world", "static: nested target");
    is_int(look(r, "GET", "/"), KEEL_ROUTE_FOUND, "root: / found");
    is_str(target(), "root", "root: / target");
    is_int(look(r, "GET", "/hell"), KEEL_ROUTE_NOT_FOUND, "404: prefix of a static");
    is_int(look(r, "GET", "/hello/world/x"), KEEL_ROUTE_NOT_FOUND, "404: longer path");
    ok(M.target == NULL && M.pattern == NULL && M.allow[0] == '\0', "404: match cleared");
    is_int(look(r, "GET", "/nope"), KEEL_ROUTE_NOT_FOUND, "404: unknown path");
    is_int(look(r, "GET", ""), KEEL_ROUTE_NOT_FOUND, "404: empty path");
    is_int(look(r, "GET", "hello"), KEEL_ROUTE_NOT_FOUND, "404: path without leading /");
    is_int(look(r, "GET", "/hel%6co"), KEEL_ROUTE_FOUND,
           "static segments compare the canonical path (an escaped letter matches)");
    is_int(look(r, "GET", "/hello/"), KEEL_ROUTE_NOT_FOUND,
           "trailing slash: /hello/ does not match /hello");
    keel_router_free(r);
}

static void test_trailing_slash(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/a", "a") && add(r, "GET", "/a/", "a.slash"),
       "trailing slash: /a and /a/ are distinct patterns");
    is_int(look(r, "GET", "/a"), KEEL_ROUTE_FOUND, "trailing slash: /a found");
    is_str(target(), "a", "trailing slash: /a -> /a");
    is_int(look(r, "GET", "/a/"), KEEL_ROUTE_FOUND, "trailing slash: /a/ found");
    is_str(target(), "a.slash", "trailing slash: /a/ -> /a/");
    is_int(look(r, "GET", "/a//"), KEEL_ROUTE_NOT_FOUND, "trailing slash: /a// not found");
    keel_router_free(r);
}

static void test_params(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/users/:id/posts/:post", "post") && add(r, "GET", "/a/:id", "a.id") &&
       add(r, "GET", "/a/:name/b", "a.name.b"), "params: register");

    is_int(look(r, "GET", "/users/42/posts/hello-world"), KEEL_ROUTE_FOUND, "params: found");
    is_str(target(), "post", "params: target");
    is_str(M.pattern, "/users/:id/posts/:post", "params: pattern");
    is_int(M.nparams, 2, "params: two captured");
    is_str(M.params[0].name, "id", "params: first name");
    is_str(M.params[0].value, "42", "params: first value");
    is_int(M.params[0].len, 2, "params: first length");
    is_str(M.params[1].name, "post", "params: second name");
    is_str(M.params[1].value, "hello-world", "params: second value");
    is_int(M.params[1].len, 11, "params: second length");

    is_int(look(r, "GET", "/a/5"), KEEL_ROUTE_FOUND, "params: /a/:id found");
    is_str(M.params[0].name, "id", "params: names are per route (id)");
    is_int(look(r, "GET", "/a/5/b"), KEEL_ROUTE_FOUND, "params: /a/:name/b found");
    is_str(M.params[0].name, "name", "params: names are per route (name)");
    is_str(param("name"), "5", "params: /a/:name/b value");

    is_int(look(r, "GET", "/a/"), KEEL_ROUTE_NOT_FOUND, "params: never match an empty segment");
    is_int(look(r, "GET", "/a//b"), KEEL_ROUTE_NOT_FOUND, "params: // is an empty segment");
    is_int(look(r, "GET", "/users//posts/x"), KEEL_ROUTE_NOT_FOUND,
           "params: empty segment in the middle");
    is_int(look(r, "GET", "/a/:id"), KEEL_ROUTE_FOUND, "params: a literal ':' is a value");
    is_str(param("id"), ":id", "params: value ':id'");
    keel_router_free(r);
}

static void test_max_params(void)
{
    keel_router *r = new_router();
    const char *p16 = "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/*p";
    ok(add(r, "GET", p16, "sixteen"), "max params: 16 parameters accepted");
    const char *path = "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/x/y";
    size_t need = KEEL_ROUTER_SCRATCH(strlen(path));
    char *exact = malloc(need);
    is_int(keel_router_lookup(r, "GET", path, exact, need, &M), KEEL_ROUTE_FOUND,
           "max params: found with an exactly sized scratch buffer");
    is_int(M.nparams, 16, "max params: 16 captured");
    is_str(M.params[9].value, "10", "max params: tenth value");
    is_str(M.params[15].name, "p", "max params: wildcard last");
    is_str(M.params[15].value, "x/y", "max params: wildcard value");
    free(exact);
    keel_router_free(r);
}

static void test_wildcard(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/files/*path", "files") && add(r, "GET", "/*all", "all"),
       "wildcard: register");
    is_int(look(r, "GET", "/files/a/b/c.txt"), KEEL_ROUTE_FOUND, "wildcard: multi-segment");
    is_str(target(), "files", "wildcard: multi-segment target");
    is_str(param("path"), "a/b/c.txt", "wildcard: multi-segment rest");
    is_int(M.params[0].len, 9, "wildcard: rest length");
    is_int(look(r, "GET", "/files/x"), KEEL_ROUTE_FOUND, "wildcard: one segment");
    is_str(param("path"), "x", "wildcard: one segment rest");
    is_int(look(r, "GET", "/files/"), KEEL_ROUTE_FOUND, "wildcard: empty rest");
    is_str(target(), "files", "wildcard: empty rest target");
    is_str(param("path"), "", "wildcard: empty rest is \"\"");
    is_int(M.params[0].len, 0, "wildcard: empty rest length 0");
    is_int(look(r, "GET", "/files/a//b/"), KEEL_ROUTE_FOUND, "wildcard: empty segments kept");
    is_str(param("path"), "a//b/", "wildcard: rest keeps slashes");
    is_int(look(r, "GET", "/files"), KEEL_ROUTE_FOUND, "wildcard: /files goes to /*all");
    is_str(target(), "all", "wildcard: /files is not /files/*path (needs the slash)");
    is_int(look(r, "GET", "/"), KEEL_ROUTE_FOUND, "wildcard: /*all matches /");
    is_str(param("all"), "", "wildcard: /*all rest of / is empty");
    keel_router_free(r);
}

/* The same routes registered in two orders must behave identically. */
static void check_precedence(const char *const routes[][3], size_t n, const char *order)
{
    keel_router *r = new_router();
    add_all(r, routes, n, order);
    is_int(look(r, "GET", "/a/b"), KEEL_ROUTE_FOUND, "%s: /a/b found", order);
    is_str(target(), "static", "%s: static beats param and wildcard", order);
    is_int(look(r, "GET", "/a/c"), KEEL_ROUTE_FOUND, "%s: /a/c found", order);
    is_str(target(), "param", "%s: param beats wildcard", order);
    is_int(look(r, "GET", "/a/c/d"), KEEL_ROUTE_FOUND, "%s: /a/c/d found", order);
    is_str(target(), "wild", "%s: wildcard takes the deeper path", order);
    is_int(look(r, "GET", "/a/"), KEEL_ROUTE_FOUND, "%s: /a/ found", order);
    is_str(target(), "wild", "%s: empty segment goes to the wildcard", order);
    is_int(look(r, "GET", "/x"), KEEL_ROUTE_FOUND, "%s: /x found", order);
    is_str(target(), "fallback", "%s: fallback when nothing else matches", order);
    is_str(param("rest"), "x", "%s: fallback value", order);
    keel_router_free(r);
}

static void test_precedence(void)
{
    const char *const routes[][3] = {
        {"GET", "/!rest", "fallback"},
        {"GET", "/a/*w", "wild"},
        {"GET", "/a/!f", "fallback.a"},
        {"GET", "/a/:x", "param"},
        {"GET", "/a/b", "static"},
    };
    const char *const reversed[][3] = {
        {"GET", "/a/b", "static"},
        {"GET", "/a/:x", "param"},
        {"GET", "/a/!f", "fallback.a"},
        {"GET", "/a/*w", "wild"},
        {"GET", "/!rest", "fallback"},
    };
    check_precedence(routes, 5, "precedence (fallback first)");
    check_precedence(reversed, 5, "precedence (static first)");
}

static void test_backtracking(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/a/b", "a.b") && add(r, "GET", "/a/:x/c", "a.x.c") &&
       add(r, "GET", "/a/b/:y/e", "a.b.y.e") && add(r, "GET", "/a/:x/c/d", "a.x.c.d") &&
       add(r, "GET", "/s/b/c", "s.b.c") && add(r, "GET", "/s/*w", "s.w"),
       "backtracking: register");
    is_int(look(r, "GET", "/a/b/c"), KEEL_ROUTE_FOUND, "backtracking: /a/b/c found");
    is_str(target(), "a.x.c", "backtracking: static /a/b has no c, param branch wins");
    is_str(param("x"), "b", "backtracking: param captured after backtracking");
    is_int(M.nparams, 1, "backtracking: no stale captures");
    is_int(look(r, "GET", "/a/b/c/d"), KEEL_ROUTE_FOUND, "backtracking: /a/b/c/d found");
    is_str(target(), "a.x.c.d", "backtracking: two levels deep");
    is_int(look(r, "GET", "/a/b/q/e"), KEEL_ROUTE_FOUND, "backtracking: /a/b/q/e found");
    is_str(target(), "a.b.y.e", "backtracking: static path still preferred");
    is_int(look(r, "GET", "/s/b/x"), KEEL_ROUTE_FOUND, "backtracking: /s/b/x found");
    is_str(target(), "s.w", "backtracking: static fails deeper, wildcard wins");
    is_str(param("w"), "b/x", "backtracking: wildcard value after backtracking");
    keel_router_free(r);
}

static void test_fallback(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/!spa", "spa") && add(r, "GET", "/api/!x", "api.fallback") &&
       add(r, "GET", "/api/users/:id", "user") && add(r, "POST", "/form", "form.post") &&
       add(r, "GET", "/deep/:a/:b/*c", "deep"), "fallback: register");
    is_int(look(r, "GET", "/api/users/7"), KEEL_ROUTE_FOUND, "fallback: param beats fallback");
    is_str(target(), "user", "fallback: /api/users/7 -> user");
    is_int(look(r, "GET", "/deep/1/2/3/4"), KEEL_ROUTE_FOUND, "fallback: deep wildcard found");
    is_str(target(), "deep", "fallback: a deeper wildcard beats a shallower fallback");
    is_int(look(r, "GET", "/api/users"), KEEL_ROUTE_FOUND, "fallback: /api/users found");
    is_str(target(), "api.fallback", "fallback: deeper fallback before shallower");
    is_str(param("x"), "users", "fallback: deeper fallback value");
    is_int(look(r, "GET", "/other/x/y"), KEEL_ROUTE_FOUND, "fallback: /other/x/y found");
    is_str(target(), "spa", "fallback: root fallback");
    is_str(param("spa"), "other/x/y", "fallback: root fallback value");
    is_int(look(r, "GET", "/"), KEEL_ROUTE_FOUND, "fallback: / found");
    is_str(param("spa"), "", "fallback: / gives an empty value");
    is_int(look(r, "GET", "/form"), KEEL_ROUTE_FOUND,
           "fallback: GET /form (POST only) found");
    is_str(target(), "spa", "fallback: beats 405 of a route without the method");
    is_int(look(r, "DELETE", "/form"), KEEL_ROUTE_METHOD_NOT_ALLOWED,
           "fallback: DELETE /form is 405");
    is_str(M.allow, "POST", "fallback: 405 Allow from the highest-precedence path");
    is_int(look(r, "DELETE", "/zzz"), KEEL_ROUTE_METHOD_NOT_ALLOWED,
           "fallback: path matched only by a GET fallback is 405");
    is_str(M.allow, "GET, HEAD", "fallback: fallback Allow");
    keel_router_free(r);
}

static void test_methods(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/r", "r.get") && add(r, "POST", "/r", "r.post") &&
       add(r, "PUT", "/p", "p.put") && add(r, "DELETE", "/p", "p.delete") &&
       add(r, "GET", "/h", "h.get") && add(r, "HEAD", "/h", "h.head") &&
       add(r, "*", "/any", "any") && add(r, "PURGE", "/cache", "purge") &&
       add(r, "POST", "/m/a", "m.a.post") && add(r, "*", "/m/:x", "m.x.any") &&
       add(r, "POST", "/n/b", "n.b.post") && add(r, "PUT", "/n/:x", "n.x.put"),
       "methods: register");

    is_int(look(r, "POST", "/r"), KEEL_ROUTE_FOUND, "methods: POST /r found");
    is_str(target(), "r.post", "methods: POST /r target");
    is_int(look(r, "DELETE", "/r"), KEEL_ROUTE_METHOD_NOT_ALLOWED, "405: DELETE /r");
    is_str(M.allow, "GET, HEAD, POST", "405: Allow lists GET, HEAD, POST");
    is_str(M.pattern, "/r", "405: pattern of the matched path");
    ok(M.target == NULL, "405: no target");
    is_int(look(r, "GET", "/p"), KEEL_ROUTE_METHOD_NOT_ALLOWED, "405: GET /p");
    is_str(M.allow, "DELETE, PUT", "405: no HEAD without GET");
    is_int(look(r, "POST", "/h"), KEEL_ROUTE_METHOD_NOT_ALLOWED, "405: POST /h");
    is_str(M.allow, "GET, HEAD", "405: HEAD listed once");
    is_int(look(r, "GET", "/cache"), KEEL_ROUTE_METHOD_NOT_ALLOWED, "405: GET /cache");
    is_str(M.allow, "PURGE", "405: custom method in Allow");
    is_int(look(r, "PURGE", "/cache"), KEEL_ROUTE_FOUND, "methods: custom upper-case token");

    is_int(look(r, "HEAD", "/r"), KEEL_ROUTE_FOUND, "HEAD: matches a GET route");
    is_str(target(), "r.get", "HEAD: served by the GET route");
    is_int(look(r, "HEAD", "/h"), KEEL_ROUTE_FOUND, "HEAD: explicit HEAD route found");
    is_str(target(), "h.head", "HEAD: explicit HEAD route preferred");
    is_int(look(r, "HEAD", "/p"), KEEL_ROUTE_METHOD_NOT_ALLOWED, "HEAD: no GET -> 405");

    is_int(look(r, "PATCH", "/any"), KEEL_ROUTE_FOUND, "*: PATCH matches any");
    is_int(look(r, "OPTIONS", "/any"), KEEL_ROUTE_FOUND, "*: OPTIONS matches any");
    is_str(target(), "any", "*: target");
    is_int(look(r, "GET", "/m/a"), KEEL_ROUTE_FOUND, "methods: GET /m/a found");
    is_str(target(), "m.x.any", "methods: static without the method falls to * param");
    is_int(look(r, "GET", "/n/b"), KEEL_ROUTE_METHOD_NOT_ALLOWED, "405: GET /n/b");
    is_str(M.allow, "POST", "405: Allow from the highest-precedence path (static)");
    is_int(look(r, "PUT", "/n/b"), KEEL_ROUTE_FOUND, "methods: PUT /n/b found");
    is_str(target(), "n.x.put", "methods: method mismatch backtracks to the param route");
    keel_router_free(r);
}

static void test_conflicts(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/a/:x", "a.get") && add(r, "GET", "/f/*x", "f.get") &&
       add(r, "*", "/s", "s.any") && add(r, "GET", "/fb/!x", "fb.get") &&
       add(r, "GET", "/st", "st.get"), "conflicts: register");

    keel_error *err = keel_router_add(r, "GET", "/a/:y", NULL, "b.get");
    ok(err && err->code == KEEL_INVALID_ARGUMENT, "conflict: param names ignored");
    is_str(err ? err->message : NULL,
           "route conflict: GET /a/:y (b.get) has the same shape as GET /a/:x (a.get)",
           "conflict: message names both labels and patterns");
    keel_error_free(err);

    add_fails(r, "GET", "/f/*y", "g.get",
              (const char *const[]){"conflict", "g.get", "f.get", "/f/*y", "/f/*x", NULL});
    add_fails(r, "GET", "/s", "s.get",
              (const char *const[]){"conflict", "s.get", "s.any", NULL});
    add_fails(r, "*", "/a/:z", "a.any",
              (const char *const[]){"conflict", "a.any", "a.get", NULL});
    add_fails(r, "GET", "/fb/!y", "fb2.get",
              (const char *const[]){"conflict", "fb2.get", "fb.get", NULL});
    add_fails(r, "GET", "/st", "st2.get",
              (const char *const[]){"conflict", "st2.get", "st.get", NULL});
    ok(add(r, "POST", "/a/:y", "a.post"), "no conflict: another method on the same shape");
    ok(add(r, "HEAD", "/a/:y", "a.head"), "no conflict: explicit HEAD next to GET");
    ok(add(r, "GET", "/a/*x", "a.wild") && add(r, "GET", "/a/!x", "a.fb") &&
       add(r, "GET", "/a/:x/", "a.slash"), "no conflict: different shapes");
    is_int(look(r, "GET", "/a/1"), KEEL_ROUTE_FOUND, "conflicts: first registration kept");
    is_str(target(), "a.get", "conflicts: rejected route not registered");
    keel_router_free(r);
}

static void test_parse_errors(void)
{
    keel_router *r = new_router();
    add_fails(r, "GET", "a/b", "e1", (const char *const[]){"e1", "a/b", "start with '/'", NULL});
    add_fails(r, "GET", "", "e2", (const char *const[]){"e2", "start with '/'", NULL});
    add_fails(r, "GET", NULL, "e3", (const char *const[]){"e3", "no pattern", NULL});
    add_fails(r, "GET", "/a/:", "e4", (const char *const[]){"e4", "/a/:", "empty parameter", NULL});
    add_fails(r, "GET", "/a/*", "e5", (const char *const[]){"e5", "/a/*", "empty parameter", NULL});
    add_fails(r, "GET", "/a/!", "e6", (const char *const[]){"e6", "/a/!", "empty parameter", NULL});
    add_fails(r, "GET", "/:x/b/:x", "e7",
              (const char *const[]){"e7", "/:x/b/:x", "duplicate parameter name \"x\"", NULL});
    add_fails(r, "GET", "/:x/*x", "e8", (const char *const[]){"e8", "duplicate", NULL});
    add_fails(r, "GET", "/a/*w/b", "e9",
              (const char *const[]){"e9", "/a/*w/b", "must be the last segment", NULL});
    add_fails(r, "GET", "/!f/b", "e10", (const char *const[]){"e10", "last segment", NULL});
    add_fails(r, "GET", "/a/*w/", "e11", (const char *const[]){"e11", "last segment", NULL});
    add_fails(r, "GET", "/:a/:b/:c/:d/:e/:f/:g/:h/:i/:j/:k/:l/:m/:n/:o/:p/:q", "e12",
              (const char *const[]){"e12", "more than 16 parameters", NULL});
    add_fails(r, "GET", "/a?b=1", "e13", (const char *const[]){"e13", "/a?b=1", "invalid character 0x3f at offset 2", NULL});
    add_fails(r, "GET", "/a#x", "e14", (const char *const[]){"e14", "invalid character", NULL});
    add_fails(r, "GET", "/a b", "e15", (const char *const[]){"e15", "invalid character", NULL});
    add_fails(r, "GET", "/a\tb", "e16", (const char *const[]){"e16", "invalid character", NULL});
    add_fails(r, "GET", "/a%20b", "e17", (const char *const[]){"e17", "invalid character", NULL});
    add_fails(r, "GET", "/:a b", "e18", (const char *const[]){"e18", "invalid character", NULL});
    add_fails(r, "GET", "/:a-b", "e19", (const char *const[]){"e19", "parameter names", NULL});
    add_fails(r, "GET", "/a//b", "e20", (const char *const[]){"e20", "empty segment", NULL});
    add_fails(r, "", "/a", "e21", (const char *const[]){"e21", "/a", "empty method", NULL});
    add_fails(r, NULL, "/a", "e22", (const char *const[]){"e22", "empty method", NULL});
    add_fails(r, "get", "/a", "e23", (const char *const[]){"e23", "upper-case", NULL});
    add_fails(r, "GE T", "/a", "e24", (const char *const[]){"e24", "upper-case", NULL});
    keel_router_each(r, NULL, NULL); /* a NULL callback is ignored */
    is_int(look(r, "GET", "/a"), KEEL_ROUTE_NOT_FOUND, "parse errors: nothing registered");
    keel_router_free(r);
}

static void test_decoding(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/u/:name", "u") && add(r, "GET", "/f/*path", "f") &&
       add(r, "GET", "/x/a", "x.a") && add(r, "GET", "/x/:p", "x.p"), "decoding: register");

    is_int(look(r, "GET", "/u/a%20b"), KEEL_ROUTE_FOUND, "decoding: %%20 found");
    is_str(param("name"), "a b", "decoding: %%20 is a space");
    is_int(M.params[0].len, 3, "decoding: decoded length");
    is_int(look(r, "GET", "/u/caf%C3%A9"), KEEL_ROUTE_FOUND, "decoding: UTF-8 found");
    is_str(param("name"), "caf\xC3\xA9", "decoding: %%C3%%A9 is two UTF-8 bytes");
    is_int(M.params[0].len, 5, "decoding: UTF-8 length in bytes");
    is_int(look(r, "GET", "/u/%c3%a9"), KEEL_ROUTE_FOUND, "decoding: lower-case hex");
    is_str(param("name"), "\xC3\xA9", "decoding: lower-case hex value");
    is_int(look(r, "GET", "/u/a+b"), KEEL_ROUTE_FOUND, "decoding: + found");
    is_str(param("name"), "a+b", "decoding: + is not a space in paths");
    is_int(look(r, "GET", "/u/..."), KEEL_ROUTE_FOUND, "decoding: ... is not a dot segment");
    is_int(look(r, "GET", "/f/a%20b/c%25d"), KEEL_ROUTE_FOUND, "decoding: wildcard found");
    is_str(param("path"), "a b/c%d", "decoding: wildcard decoded per segment");
    is_int(look(r, "GET", "/x/%61"), KEEL_ROUTE_FOUND, "decoding: /x/%%61 found");
    is_str(target(), "x.a", "decoding: encoded static text is the static route (canonical form)");
    is_int(look(r, "GET", "/x/%2561"), KEEL_ROUTE_FOUND, "decoding: /x/%%2561 found");
    is_str(target(), "x.p", "decoding: an encoded '%%' is not decoded twice");
    is_str(param("p"), "%61", "decoding: ... and the param gets %%61");
    keel_router_free(r);
}

/* One canonical form: however a client spells a path, it reaches the route
 * its decoded form names, so a catch-all (which a mounted handler sees fully
 * decoded) can never be reached around a more specific route. */
static void test_canonical(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/api/items/:id", "items") && add(r, "*", "/api/*path", "legacy") &&
       add(r, "GET", "/api/a,b~c", "punct"),
       "canonical: register a break-out beside a catch-all");
    const char *spellings[] = {"/api/items/1", "/api/%69tems/1", "/api/%69%74%65%6D%73/1", "/%61pi/items/1",
                               "/api/item%73/%31"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        is_int(look(r, "GET", spellings[i]), KEEL_ROUTE_FOUND, "canonical: %s found", spellings[i]);
        is_str(target(), "items", "canonical: %s reaches the break-out", spellings[i]);
        is_str(param("id"), "1", "canonical: %s gives id 1", spellings[i]);
    }
    is_int(look(r, "GET", "/api/a%2Cb%7Ec"), KEEL_ROUTE_FOUND, "canonical: escaped punctuation found");
    is_str(target(), "punct", "canonical: escaped sub-delimiters match a static segment");
    is_int(look(r, "GET", "/api/items%2F1"), KEEL_ROUTE_FOUND,
           "canonical: an encoded '/' in a catch-all's value (a client filling {path}) is a separator");
    is_str(target(), "items", "canonical: ... so it reaches the break-out, never the catch-all around it");
    is_str(param("id"), "1", "canonical: ... with id 1");
    is_int(look(r, "POST", "/api/items%2fform%2Fnew"), KEEL_ROUTE_FOUND, "canonical: %%2f too");
    is_str(target(), "legacy", "canonical: ... reaching the catch-all when nothing more specific takes it");
    is_str(param("path"), "items/form/new", "canonical: ... which gets the slashes");
    is_int(look(r, "POST", "/api/a%252Fb"), KEEL_ROUTE_FOUND, "canonical: an encoded '%%' before 2F");
    is_str(param("path"), "a%2Fb", "canonical: ... is decoded once, never into a separator");
    is_int(look(r, "GET", "/api/%69tems%3F/1"), KEEL_ROUTE_FOUND, "canonical: an encoded '?' stays encoded");
    is_str(target(), "legacy", "canonical: ... so it does not match a static segment");
    is_str(param("path"), "items?/1", "canonical: ... and the catch-all gets it decoded once");
    keel_router_free(r);
}

/* Checks one BAD_PATH case: result, bad_param and the route that would win. */
static void check_bad(const keel_router *r, const char *path, const char *bad,
                      const char *label)
{
    keel_route_result res = look(r, "GET", path);
    ok(res == KEEL_ROUTE_BAD_PATH && M.bad_param && strcmp(M.bad_param, bad) == 0 &&
       target() && strcmp(target(), label) == 0,
       "bad path: %s -> BAD_PATH, bad_param %s, route %s", path, bad, label);
}

static void test_bad_paths(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/u/:name", "u") && add(r, "GET", "/f/*path", "f") &&
       add(r, "GET", "/!rest", "fb") && add(r, "GET", "/two/:a/:b", "two"),
       "bad path: register");
    check_bad(r, "/u/%00", "name", "u");
    check_bad(r, "/u/a%00b", "name", "u");
    check_bad(r, "/u/..", "name", "u");
    check_bad(r, "/u/.", "name", "u");
    check_bad(r, "/u/%2e%2e", "name", "u");
    check_bad(r, "/u/%2E", "name", "u");
    check_bad(r, "/u/.%2e", "name", "u");
    check_bad(r, "/u/%zz", "name", "u");
    check_bad(r, "/u/%4", "name", "u");
    check_bad(r, "/u/%", "name", "u");
    check_bad(r, "/u/%g0", "name", "u");
    check_bad(r, "/f/a/../b", "path", "f");
    check_bad(r, "/f/./b", "path", "f");
    check_bad(r, "/f/a/%2e%2E", "path", "f");
    check_bad(r, "/u/a%2Fb", "name", "u");                 /* a :param is one segment */
    check_bad(r, "/f/a%2F..%2Fb", "path", "f");             /* a catch-all's encoded '/' splits segments */
    check_bad(r, "/f/a%2F%2e%2E", "path", "f");
    check_bad(r, "/f/%2Fetc%2Fpasswd", "path", "f");
    check_bad(r, "/f/%2F", "path", "f");
    check_bad(r, "/u/..%2F..%2Fetc%2Fpasswd", "name", "u");
    check_bad(r, "/f//etc/passwd", "path", "f");           /* never an absolute path */
    check_bad(r, "/f///", "path", "f");
    check_bad(r, "/f/a%2f..", "path", "f");
    check_bad(r, "/f/%00", "path", "f");
    check_bad(r, "/f/a%", "path", "f");
    check_bad(r, "/x/../etc", "rest", "fb");
    check_bad(r, "/two/ok/%zz", "b", "two");
    is_int(look(r, "GET", "/f/a%2Fb"), KEEL_ROUTE_FOUND, "bad path: a%%2Fb is fine in a catch-all");
    is_str(param("path"), "a/b", "bad path: ... as a/b");
    is_int(look(r, "GET", "/x/a%2Fb"), KEEL_ROUTE_FOUND, "bad path: so is a fallback's value");
    is_str(param("rest"), "x/a/b", "bad path: ... as x/a/b");
    is_int(look(r, "GET", "/f/a/.../b"), KEEL_ROUTE_FOUND, "bad path: ... segment is fine");
    is_int(look(r, "GET", "/f/.hidden"), KEEL_ROUTE_FOUND, "bad path: .hidden is fine");
    is_int(look(r, "GET", "/u/a%2E%2Eb"), KEEL_ROUTE_FOUND, "bad path: a..b is fine");
    keel_router_free(r);

    r = new_router();
    ok(add(r, "GET", "/only", "only"), "bad path: register a static route");
    is_int(look(r, "GET", "/other/%zz"), KEEL_ROUTE_NOT_FOUND,
           "bad path: decided only for a matching route (404 otherwise)");
    keel_router_free(r);
}

static void test_scratch(void)
{
    keel_router *r = new_router();
    ok(add(r, "GET", "/:a/:b/*c", "abc"), "scratch: register");
    const char *path = "/%41%42/y/%43/d";
    size_t need = KEEL_ROUTER_SCRATCH(strlen(path));
    char *exact = malloc(need);
    keel_route_match m;
    is_int(keel_router_lookup(r, "GET", path, exact, need, &m), KEEL_ROUTE_FOUND,
           "scratch: KEEL_ROUTER_SCRATCH(strlen(path)) is enough");
    ok(m.nparams == 3 && strcmp(m.params[0].value, "AB") == 0 &&
       strcmp(m.params[1].value, "y") == 0 && strcmp(m.params[2].value, "C/d") == 0,
       "scratch: values decoded into the buffer");
    ok(m.params[0].value >= exact && m.params[2].value < exact + need,
       "scratch: values point into the caller's buffer");
    is_int(keel_router_lookup(r, "GET", path, exact, need - 1, &m), KEEL_ROUTE_BAD_PATH,
           "scratch: one byte short is refused");
    ok(m.bad_param == NULL, "scratch: refused without naming a parameter");
    is_int(keel_router_lookup(r, "GET", path, NULL, 0, &m), KEEL_ROUTE_BAD_PATH,
           "scratch: NULL buffer is refused");
    free(exact);
    keel_router_free(r);
}

/* keel_router_each collector: "METHOD pattern target;" appended to a buffer. */
static void collect(void *cls, const char *method, const char *pattern, void *tgt)
{
    char *buf = cls;
    size_t used = strlen(buf);
    snprintf(buf + used, 1024 - used, "%s %s %s;", method, pattern, (const char *)tgt);
}

static void test_each(void)
{
    keel_router *r = new_router();
    const char *const routes[][3] = {
        {"GET", "/!fb", "1"},  {"POST", "/a/b", "2"}, {"GET", "/a/*w", "3"},
        {"GET", "/", "4"},     {"GET", "/a/:x", "5"}, {"GET", "/a/b", "6"},
        {"*", "/b", "7"},      {"GET", "/a/!f", "8"}, {"DELETE", "/a/b", "9"},
        {"GET", "/a", "10"},
    };
    add_all(r, routes, 10, "each");
    char buf[1024] = "";
    keel_router_each(r, collect, buf);
    is_str(buf,
           "GET / 4;GET /a 10;DELETE /a/b 9;GET /a/b 6;POST /a/b 2;GET /a/:x 5;"
           "GET /a/*w 3;* /b 7;GET /a/!f 8;GET /!fb 1;",
           "each: every route once, in precedence order, fallbacks last");
    keel_router_free(r);

    r = new_router();
    buf[0] = '\0';
    keel_router_each(r, collect, buf);
    is_str(buf, "", "each: empty router visits nothing");
    keel_router_free(r);
    keel_router_free(NULL); /* allowed: a crash here fails the test */
}

int main(void)
{
    plan(283);
    test_static_and_root();
    test_trailing_slash();
    test_params();
    test_max_params();
    test_wildcard();
    test_precedence();
    test_backtracking();
    test_fallback();
    test_methods();
    test_conflicts();
    test_parse_errors();
    test_decoding();
    test_bad_paths();
    test_canonical();
    test_scratch();
    test_each();
    return tap_done();
}

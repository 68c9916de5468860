/* router.c - the path router: pattern parsing, the segment trie, method
 * selection, conflict detection and lookup with percent-decoding.
 *
 * This file owns every node and route record of a keel_router; patterns and
 * labels belong to the caller (they must outlive the router) and static
 * segments point into them.  The trie is built by keel_router_add at start-up
 * and only read afterwards; keel_router_lookup never allocates.
 *
 * Segments.  A path (or pattern) is split on '/' after its leading '/', so
 * "/" is one empty segment, "/a" is ["a"], "/a/" is ["a", ""] and "/a//b" is
 * ["a", "", "b"].  A trailing slash is therefore significant: "/a/" and "/a"
 * are distinct patterns and "/a/" only matches the path "/a/".  In a pattern
 * an empty segment is allowed only last (the root "/" or a trailing slash).
 *
 * Pattern segments: static text (compared byte for byte with the request
 * segment in canonical form: escapes of bytes a pattern may hold decoded, the
 * others kept, so every spelling of a path reaches the same route, and a
 * mounted handler, which sees libmicrohttpd's fully decoded URL, is never
 * given a path that a more specific route should have taken), ":name" (one non-empty segment), "*name" (last:
 * one or more remaining segments joined by '/'; a wildcard after "/f/"
 * matches "/f/" with the value "" and "/f/a/b" with "a/b", but not "/f") and
 * "!name" (last, the same extent as "*name", tried only when nothing else
 * matches).  An encoded '/' ("%2F") is refused in a ":name" value, but in
 * the value a catch-all gets it is a separator (a client fills "{path}" with
 * "items/1" as "items%2F1"): the path is looked up again with those slashes
 * decoded, so it reaches what "/api/items/1" reaches.
 *
 * Precedence.  At every position: static > param > wildcard, with full
 * backtracking, independent of registration order.  A route counts only when
 * it also accepts the method, so "/a/:x" GET serves GET /a/b even when "/a/b"
 * exists for POST only.  Fallbacks come after every other route: a second pass
 * tries them, deeper fallbacks before shallower ones ("/api/!x" before "/!y").
 * Within one node the method is chosen as: the exact method, then GET for HEAD,
 * then "*".  When no route accepts the method, the first path match (in the
 * same order) gives 405 with its Allow list; otherwise 404.  The structural
 * match uses raw segments; only the winning route's parameters are decoded, and
 * a decoding failure gives KEEL_ROUTE_BAD_PATH for that route. */
#include "keel/router.h"

#include <stdlib.h>
#include <string.h>

typedef struct route {
    const char *pattern;  /* caller's */
    const char *label;    /* caller's, never NULL */
    void *target;
    const char *method;   /* points into strings */
    size_t nparams;
    int has_rest;         /* the last parameter is *name or !name */
    const char *names[KEEL_MAX_PARAMS]; /* NUL-terminated, point into strings */
    char strings[];       /* method and names, each NUL-terminated */
} route;

typedef struct node {
    const char *text;     /* static segment text (points into a pattern) */
    size_t len;
    struct node **statics; /* sorted by text (bytes, then length) */
    size_t nstatics, cap_statics;
    struct node *param, *wild, *fallback;
    route **routes;       /* sorted by method, "*" last */
    size_t nroutes;
} node;

struct keel_router {
    node root;
};

typedef enum seg_kind { SEG_STATIC, SEG_PARAM, SEG_WILD, SEG_FALLBACK } seg_kind;

/* One pattern segment: for parameters text/len is the name without its sigil. */
typedef struct pattern_seg {
    seg_kind kind;
    const char *text;
    size_t len;
} pattern_seg;

/* ---- segments --------------------------------------------------------- */

/* The end of the segment starting at s: the next '/' or the terminating NUL. */
static const char *segment_end(const char *s)
{
    while (*s && *s != '/')
        s++;
    return s;
}

/* Reads the pattern segment starting at *p into *out and advances *p to the
 * next segment, or to NULL after the last one. */
static void next_pattern_seg(const char **p, pattern_seg *out)
{
    const char *s = *p, *e = segment_end(s);
    *p = *e == '/' ? e + 1 : NULL;
    out->kind = SEG_STATIC;
    out->text = s;
    out->len = (size_t)(e - s);
    if (s < e && (*s == ':' || *s == '*' || *s == '!')) {
        out->kind = *s == ':' ? SEG_PARAM : *s == '*' ? SEG_WILD : SEG_FALLBACK;
        out->text = s + 1;
        out->len--;
    }
}

/* True for the bytes a parameter name may contain: [A-Za-z0-9_]. */
static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* True for the bytes a pattern may contain: visible ASCII except '?', '#' and
 * '%' (static segments are compared with the raw path, so an escape in a
 * pattern would depend on how the client chose to encode). */
static int is_pattern_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '%';
}

/* ---- errors ----------------------------------------------------------- */

/* A parse error naming the registration.  The caller owns the result. */
static keel_error *pattern_error(const char *method, const char *pattern, const char *label,
                                 const char *what)
{
    return keel_error_new(KEEL_INVALID_ARGUMENT, "invalid route %s \"%s\" (%s): %s",
                          method, pattern, label, what);
}

/* Checks that method is "*" or an upper-case token (A-Z, then A-Z, '-', '_').
 * Returns NULL or an invalid_argument error owned by the caller. */
static keel_error *check_method(const char *method, const char *pattern, const char *label)
{
    if (!method || !*method)
        return pattern_error("(no method)", pattern, label, "empty method");
    if (strcmp(method, "*") == 0)
        return NULL;
    if (!(method[0] >= 'A' && method[0] <= 'Z'))
        return pattern_error(method, pattern, label,
                             "method must be an upper-case token or \"*\"");
    for (const char *c = method; *c; c++)
        if (!((*c >= 'A' && *c <= 'Z') || *c == '-' || *c == '_'))
            return pattern_error(method, pattern, label,
                                 "method must be an upper-case token or \"*\"");
    return NULL;
}

/* Checks one segment's shape and, for a parameter, its name (characters have
 * been checked already).
 * Returns NULL or a description of the problem (a static string). */
static const char *check_segment(const pattern_seg *seg, int last)
{
    if (seg->kind == SEG_STATIC && seg->len == 0 && !last)
        return "empty segment (\"//\"); only a trailing slash may be empty";
    if (seg->kind == SEG_STATIC)
        return NULL;
    if (seg->len == 0)
        return "empty parameter name";
    for (size_t i = 0; i < seg->len; i++)
        if (!is_name_char(seg->text[i]))
            return "parameter names may only contain letters, digits and '_'";
    if ((seg->kind == SEG_WILD || seg->kind == SEG_FALLBACK) && !last)
        return "a wildcard (*name) or fallback (!name) must be the last segment";
    return NULL;
}

/* Validates pattern completely and collects its parameter names (pointers into
 * pattern, with lengths) into names, lens and *nparams.  Returns NULL or an
 * invalid_argument error owned by the caller.  Nothing is allocated on success. */
static keel_error *parse_pattern(const char *method, const char *pattern, const char *label,
                                 const char *names[KEEL_MAX_PARAMS],
                                 size_t lens[KEEL_MAX_PARAMS], size_t *nparams)
{
    *nparams = 0;
    if (!pattern)
        return pattern_error(method, "(null)", label, "no pattern");
    if (pattern[0] != '/')
        return pattern_error(method, pattern, label, "a pattern must start with '/'");
    for (const char *c = pattern; *c; c++)
        if (!is_pattern_char((unsigned char)*c))
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "invalid route %s \"%s\" (%s): invalid character 0x%02x at "
                                  "offset %zu (whitespace, control, non-ASCII, '?', '#' and "
                                  "'%%' are not allowed)", method, pattern, label,
                                  (unsigned)(unsigned char)*c, (size_t)(c - pattern));
    const char *p = pattern + 1;
    while (p) {
        pattern_seg seg;
        next_pattern_seg(&p, &seg);
        const char *what = check_segment(&seg, p == NULL);
        if (what)
            return pattern_error(method, pattern, label, what);
        if (seg.kind == SEG_STATIC)
            continue;
        if (*nparams == KEEL_MAX_PARAMS)
            return keel_error_new(KEEL_INVALID_ARGUMENT,
                                  "invalid route %s \"%s\" (%s): more than %d parameters",
                                  method, pattern, label, KEEL_MAX_PARAMS);
        for (size_t i = 0; i < *nparams; i++)
            if (lens[i] == seg.len && memcmp(names[i], seg.text, seg.len) == 0)
                return keel_error_new(KEEL_INVALID_ARGUMENT,
                                      "invalid route %s \"%s\" (%s): duplicate parameter "
                                      "name \"%.*s\"", method, pattern, label,
                                      (int)seg.len, seg.text);
        names[*nparams] = seg.text;
        lens[*nparams] = seg.len;
        (*nparams)++;
    }
    return NULL;
}

/* ---- building --------------------------------------------------------- */

/* Creates the route record with its own copies of method and the parameter
 * names.  Returns NULL when memory is exhausted; the caller owns the result. */
static route *route_new(const char *method, const char *pattern, const char *label,
                        void *target, const char *const names[], const size_t lens[],
                        size_t nparams, int has_rest)
{
    size_t mlen = strlen(method), size = mlen + 1;
    for (size_t i = 0; i < nparams; i++)
        size += lens[i] + 1;
    route *rt = malloc(sizeof *rt + size);
    if (!rt)
        return NULL;
    rt->pattern = pattern;
    rt->label = label;
    rt->target = target;
    rt->nparams = nparams;
    rt->has_rest = has_rest;
    char *s = rt->strings;
    memcpy(s, method, mlen + 1);
    rt->method = s;
    s += mlen + 1;
    for (size_t i = 0; i < nparams; i++) {
        memcpy(s, names[i], lens[i]);
        s[lens[i]] = '\0';
        rt->names[i] = s;
        s += lens[i] + 1;
    }
    return rt;
}

/* Orders static segments: by bytes, then shorter first. */
static int compare_text(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

/* Binary search among n's static children.  Returns the index of the child
 * with this text, or -1 after storing the insertion index in *at. */
static long find_static_index(const node *n, const char *text, size_t len, size_t *at)
{
    size_t lo = 0, hi = n->nstatics;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = compare_text(n->statics[mid]->text, n->statics[mid]->len, text, len);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at)
        *at = lo;
    return -1;
}

/* The static child of n for text, created (in sorted position) if missing.
 * Returns NULL when memory is exhausted; n owns the child. */
static node *static_child(node *n, const char *text, size_t len)
{
    size_t at = 0;
    long found = find_static_index(n, text, len, &at);
    if (found >= 0)
        return n->statics[found];
    if (n->nstatics == n->cap_statics) {
        size_t cap = n->cap_statics ? n->cap_statics * 2 : 4;
        node **grown = realloc(n->statics, cap * sizeof *grown);
        if (!grown)
            return NULL;
        n->statics = grown;
        n->cap_statics = cap;
    }
    node *child = calloc(1, sizeof *child);
    if (!child)
        return NULL;
    child->text = text;
    child->len = len;
    memmove(n->statics + at + 1, n->statics + at, (n->nstatics - at) * sizeof *n->statics);
    n->statics[at] = child;
    n->nstatics++;
    return child;
}

/* *slot, created empty if missing.  NULL when memory is exhausted. */
static node *slot_child(node **slot)
{
    if (!*slot)
        *slot = calloc(1, sizeof **slot);
    return *slot;
}

/* Walks pattern (already validated) from the root, creating nodes as needed.
 * Returns the node where the pattern ends, or NULL when memory is exhausted
 * (nodes created so far stay in the trie, empty and harmless). */
static node *ensure_path(keel_router *r, const char *pattern)
{
    node *n = &r->root;
    const char *p = pattern + 1;
    while (p && n) {
        pattern_seg seg;
        next_pattern_seg(&p, &seg);
        switch (seg.kind) {
        case SEG_STATIC: n = static_child(n, seg.text, seg.len); break;
        case SEG_PARAM: n = slot_child(&n->param); break;
        case SEG_WILD: n = slot_child(&n->wild); break;
        case SEG_FALLBACK: n = slot_child(&n->fallback); break;
        }
    }
    return n;
}

/* Orders methods alphabetically with "*" last. */
static int compare_method(const char *a, const char *b)
{
    int astar = strcmp(a, "*") == 0, bstar = strcmp(b, "*") == 0;
    if (astar || bstar)
        return astar - bstar;
    return strcmp(a, b);
}

/* Returns the route at n that conflicts with method (the same method, or
 * either one is "*"), or NULL. */
static const route *find_conflict(const node *n, const char *method)
{
    int star = strcmp(method, "*") == 0;
    for (size_t i = 0; i < n->nroutes; i++) {
        const char *m = n->routes[i]->method;
        if (star || strcmp(m, "*") == 0 || strcmp(m, method) == 0)
            return n->routes[i];
    }
    return NULL;
}

/* Adds rt to n in method order; n owns it on success.  Returns 0 when memory
 * is exhausted (rt is then still the caller's). */
static int node_add_route(node *n, route *rt)
{
    route **grown = realloc(n->routes, (n->nroutes + 1) * sizeof *grown);
    if (!grown)
        return 0;
    n->routes = grown;
    size_t at = 0;
    while (at < n->nroutes && compare_method(n->routes[at]->method, rt->method) < 0)
        at++;
    memmove(n->routes + at + 1, n->routes + at, (n->nroutes - at) * sizeof *n->routes);
    n->routes[at] = rt;
    n->nroutes++;
    return 1;
}

/* Frees everything n owns (not n itself). */
static void node_clear(node *n)
{
    for (size_t i = 0; i < n->nstatics; i++) {
        node_clear(n->statics[i]);
        free(n->statics[i]);
    }
    free(n->statics);
    node *tails[3] = {n->param, n->wild, n->fallback};
    for (size_t i = 0; i < 3; i++)
        if (tails[i]) {
            node_clear(tails[i]);
            free(tails[i]);
        }
    for (size_t i = 0; i < n->nroutes; i++)
        free(n->routes[i]);
    free(n->routes);
}

/* The root node is the empty prefix; it never holds routes itself. */
keel_error *keel_router_new(keel_router **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory creating the router");
    return NULL;
}

void keel_router_free(keel_router *r)
{
    if (!r)
        return;
    node_clear(&r->root);
    free(r);
}

keel_error *keel_router_add(keel_router *r, const char *method, const char *pattern,
                            void *target, const char *label)
{
    if (!label)
        label = "(no label)";
    if (!r)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "route %s: no router", label);
    keel_error *err = check_method(method, pattern ? pattern : "(null)", label);
    if (err)
        return err;
    const char *names[KEEL_MAX_PARAMS];
    size_t lens[KEEL_MAX_PARAMS], nparams;
    err = parse_pattern(method, pattern, label, names, lens, &nparams);
    if (err)
        return err;

    node *n = ensure_path(r, pattern);
    if (!n)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory adding route %s", label);
    const route *other = find_conflict(n, method);
    if (other)
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "route conflict: %s %s (%s) has the same shape as %s %s (%s)",
                              method, pattern, label, other->method, other->pattern,
                              other->label);
    const char *last = strrchr(pattern, '/') + 1;
    int has_rest = *last == '*' || *last == '!';
    route *rt = route_new(method, pattern, label, target, names, lens, nparams, has_rest);
    if (!rt || !node_add_route(n, rt)) {
        free(rt);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory adding route %s", label);
    }
    return NULL;
}

/* ---- lookup ----------------------------------------------------------- */

typedef struct span {
    const char *start;
    size_t len;
} span;

typedef enum pass { PASS_MAIN, PASS_FALLBACK } pass;

/* The state of one lookup; lives on the caller's stack. */
typedef struct search {
    const char *method;
    pass pass;
    span stack[KEEL_MAX_PARAMS]; /* captures along the current trie path */
    size_t depth;
    const route *found;          /* the winning route, once found */
    span caps[KEEL_MAX_PARAMS];  /* its captures */
    const node *first_path;      /* first node whose path matched (for 405) */
} search;

/* The route at n that accepts method: the exact method, then GET for HEAD,
 * then "*".  NULL when none does. */
static const route *pick_route(const node *n, const char *method)
{
    const route *get = NULL, *any = NULL;
    int head = strcmp(method, "HEAD") == 0;
    for (size_t i = 0; i < n->nroutes; i++) {
        const char *m = n->routes[i]->method;
        if (strcmp(m, method) == 0)
            return n->routes[i];
        if (head && strcmp(m, "GET") == 0)
            get = n->routes[i];
        else if (strcmp(m, "*") == 0)
            any = n->routes[i];
    }
    return get ? get : any;
}

/* Tries the routes that end at n, with rest (if not NULL) as one more capture.
 * Records the first path match and, on success, the route and its captures.
 * Returns 1 when a route accepts the method. */
static int try_routes(search *s, const node *n, const span *rest)
{
    if (!n->nroutes)
        return 0;
    if (!s->first_path)
        s->first_path = n;
    const route *rt = pick_route(n, s->method);
    if (!rt)
        return 0;
    size_t ncaps = s->depth + (rest != NULL);
    if (ncaps != rt->nparams) /* cannot happen: the trie path fixes the count */
        return 0;
    memcpy(s->caps, s->stack, s->depth * sizeof *s->stack);
    if (rest)
        s->caps[s->depth] = *rest;
    s->found = rt;
    return 1;
}

/* Depth-first search below n, in precedence order, for the segments starting
 * at seg (NULL when the whole path has been consumed).  In PASS_MAIN routes
 * ending at nodes and wildcards are tried; in PASS_FALLBACK only fallbacks,
 * each after everything deeper.  Returns 1 once a route has been found. */
static int search_node(search *s, const node *n, const char *seg)
{
    if (!seg)
        return s->pass == PASS_MAIN && try_routes(s, n, NULL);
    const char *end = segment_end(seg);
    const char *next = *end == '/' ? end + 1 : NULL;
    size_t len = (size_t)(end - seg);

    long i = n->nstatics ? find_static_index(n, seg, len, NULL) : -1;
    if (i >= 0 && search_node(s, n->statics[i], next))
        return 1;
    if (n->param && len > 0 && s->depth < KEEL_MAX_PARAMS) {
        s->stack[s->depth++] = (span){seg, len};
        int hit = search_node(s, n->param, next);
        s->depth--;
        if (hit)
            return 1;
    }
    const node *tail = s->pass == PASS_MAIN ? n->wild : n->fallback;
    if (tail && s->depth < KEEL_MAX_PARAMS) {
        span rest = {seg, strlen(seg)};
        return try_routes(s, tail, &rest);
    }
    return 0;
}

/* Appends ", method" (or just method) to buf if it fits completely. */
static void allow_append(char *buf, size_t size, const char *method)
{
    size_t used = strlen(buf), mlen = strlen(method), sep = used ? 2 : 0;
    if (used + sep + mlen + 1 > size)
        return;
    if (sep)
        memcpy(buf + used, ", ", 2);
    memcpy(buf + used + sep, method, mlen + 1);
}

/* True when n has a route registered for exactly method. */
static int has_method(const node *n, const char *method)
{
    for (size_t i = 0; i < n->nroutes; i++)
        if (strcmp(n->routes[i]->method, method) == 0)
            return 1;
    return 0;
}

/* Fills buf with the methods of n's routes in alphabetical order, adding HEAD
 * when GET is there and HEAD is not.  Methods that do not fit are left out. */
static void build_allow(const node *n, char *buf, size_t size)
{
    buf[0] = '\0';
    int need_head = has_method(n, "GET") && !has_method(n, "HEAD");
    for (size_t i = 0; i < n->nroutes; i++) {
        const char *m = n->routes[i]->method;
        if (need_head && strcmp(m, "HEAD") > 0) {
            allow_append(buf, size, "HEAD");
            need_head = 0;
        }
        allow_append(buf, size, m);
    }
    if (need_head)
        allow_append(buf, size, "HEAD");
}

/* The value of a hex digit, or -1. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes raw (len bytes) to out ('+' stays '+').  Returns the decoded
 * length, or -1 for an invalid or truncated escape, a NUL, or (unless
 * allow_slash) an encoded '/'.  out must hold len bytes. */
static long decode_into(const char *raw, size_t len, char *out, int allow_slash)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = raw[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hex_value(raw[i + 1]), lo = hex_value(raw[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
            if (c == '\0' || (c == '/' && !allow_slash))
                return -1;
        }
        out[o++] = c;
    }
    return (long)o;
}

/* True for "." and ".." (len bytes at s). */
static int is_dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

/* Decodes one ":name" value into out.  Returns the length or -1 (bad escape,
 * NUL, an encoded '/': a parameter is one segment, whatever its escapes, so
 * "..%2F..%2Fetc" never reaches a handler as a path; or a value of "." or
 * ".."). */
static long decode_param(span v, char *out)
{
    long n = decode_into(v.start, v.len, out, 0);
    if (n < 0 || is_dot_segment(out, (size_t)n))
        return -1;
    return n;
}

/* Decodes a wildcard or fallback value segment by segment into out.  Returns
 * the length or -1 (bad escape, NUL, an encoded '/', a "." or ".." segment,
 * raw or decoded, or an empty first segment: "/api//etc/passwd" must not give
 * the handler the absolute path "/etc/passwd"). */
static long decode_rest(span v, char *out)
{
    if (v.len && v.start[0] == '/')
        return -1;
    size_t o = 0, i = 0;
    for (;;) {
        size_t j = i;
        while (j < v.len && v.start[j] != '/')
            j++;
        long n = decode_into(v.start + i, j - i, out + o, 0);
        if (n < 0 || is_dot_segment(out + o, (size_t)n))
            return -1;
        o += (size_t)n;
        if (j == v.len)
            return (long)o;
        out[o++] = '/';
        i = j + 1;
    }
}

/* Decodes the winning route's captures into scratch (which holds at least the
 * sum of the capture lengths plus one byte per capture) and fills
 * match->params.  Returns 0, or -1 after setting match->bad_param. */
static int decode_captures(const search *s, char *scratch, size_t scratch_len,
                           keel_route_match *match)
{
    const route *rt = s->found;
    size_t used = 0;
    for (size_t i = 0; i < rt->nparams; i++) {
        span v = s->caps[i];
        char *out = scratch + used;
        int rest = rt->has_rest && i + 1 == rt->nparams;
        long n = v.len + 1 > scratch_len - used ? -1
                 : rest ? decode_rest(v, out) : decode_param(v, out);
        if (n < 0) {
            match->bad_param = rt->names[i];
            return -1;
        }
        out[n] = '\0';
        used += (size_t)n + 1;
        match->params[i] = (keel_route_param){rt->names[i], out, (size_t)n};
    }
    match->nparams = rt->nparams;
    return 0;
}

/* Clears everything lookup reports. */
static void match_reset(keel_route_match *match)
{
    match->target = NULL;
    match->pattern = NULL;
    match->nparams = 0;
    match->allow[0] = '\0';
    match->bad_param = NULL;
}

/* Writes the canonical form of path (len bytes) to out, NUL-terminated:
 * escapes of bytes a pattern may hold are decoded, every other byte is
 * copied.  Decoding those can make no new escape ('%' stays encoded), so
 * later decoding of a parameter decodes what the client sent exactly once. */
static void canonical_path(const char *path, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '%' && len - i >= 3) {
            int hi = hex_value(path[i + 1]), lo = hex_value(path[i + 2]);
            unsigned char c = (unsigned char)(hi * 16 + lo);
            if (hi >= 0 && lo >= 0 && is_pattern_char(c) && c != '/') {
                out[o++] = (char)c;
                i += 2;
                continue;
            }
        }
        out[o++] = path[i];
    }
    out[o] = '\0';
}

/* Runs both passes of a lookup of canon into a fresh *s. */
static void find(search *s, const keel_router *r, const char *method, const char *canon)
{
    *s = (search){.method = method, .pass = PASS_MAIN};
    if (!search_node(s, &r->root, canon + 1)) {
        s->pass = PASS_FALLBACK;
        search_node(s, &r->root, canon + 1);
    }
}

/* Turns each escaped '/' of a catch-all's value (the tail of the canonical
 * path, from rest on) into a separator, in place: clients percent-encode
 * the slashes of a value they fill in for {path}.  True when there was
 * one; the path is then looked up again, so the value cannot reach the
 * catch-all around a more specific route, and its segments are checked as
 * any others ("..", an empty first one). */
static int unescape_slashes(char *rest)
{
    int any = 0;
    char *o = rest;
    for (const char *p = rest; *p;) {
        if (p[0] == '%' && p[1] == '2' && (p[2] == 'F' || p[2] == 'f')) {
            *o++ = '/';
            p += 3;
            any = 1;
        } else if (p[0] == '%' && p[1] && p[2]) {
            memmove(o, p, 3); /* another escape, '%' of "%252F" included */
            o += 3;
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return any;
}

/* Lookup never allocates.  A path that does not start with '/' is not found.
 * A scratch buffer smaller than KEEL_ROUTER_SCRATCH(strlen(path)) (a caller
 * bug) gives KEEL_ROUTE_BAD_PATH with bad_param NULL, whatever the path.  For
 * 405 match->pattern is one of the patterns whose path matched; for BAD_PATH
 * target and pattern are those of the route that would have been chosen. */
keel_route_result keel_router_lookup(const keel_router *r, const char *method,
                                     const char *path, char *scratch, size_t scratch_len,
                                     keel_route_match *match)
{
    if (!match)
        return KEEL_ROUTE_NOT_FOUND;
    match_reset(match);
    if (!r || !method || !path || path[0] != '/')
        return KEEL_ROUTE_NOT_FOUND;
    size_t len = strlen(path);
    if (!scratch || scratch_len < KEEL_ROUTER_SCRATCH(len))
        return KEEL_ROUTE_BAD_PATH;
    char *canon = scratch; /* the first len + 1 bytes; captures point into it */
    canonical_path(path, len, canon);
    scratch += len + 1;
    scratch_len -= len + 1;

    search s;
    find(&s, r, method, canon);
    if (s.found && s.found->has_rest && unescape_slashes(canon + (s.caps[s.found->nparams - 1].start - canon)))
        find(&s, r, method, canon); /* "/api/items%2F1" reaches what "/api/items/1" reaches */
    if (s.found) {
        match->target = s.found->target;
        match->pattern = s.found->pattern;
        if (decode_captures(&s, scratch, scratch_len, match) < 0)
            return KEEL_ROUTE_BAD_PATH;
        return KEEL_ROUTE_FOUND;
    }
    if (s.first_path) {
        match->pattern = s.first_path->routes[0]->pattern;
        build_allow(s.first_path, match->allow, sizeof match->allow);
        return KEEL_ROUTE_METHOD_NOT_ALLOWED;
    }
    return KEEL_ROUTE_NOT_FOUND;
}

/* ---- enumeration ------------------------------------------------------ */

typedef void (*each_fn)(void *cls, const char *method, const char *pattern, void *target);

/* Calls fn for the routes that end at n, in method order ("*" last). */
static void each_routes(const node *n, each_fn fn, void *cls)
{
    for (size_t i = 0; i < n->nroutes; i++)
        fn(cls, n->routes[i]->method, n->routes[i]->pattern, n->routes[i]->target);
}

/* Pre-order over everything but fallbacks: a node's routes, then its static
 * children in order, the param child and the wildcard. */
static void each_main(const node *n, each_fn fn, void *cls)
{
    each_routes(n, fn, cls);
    for (size_t i = 0; i < n->nstatics; i++)
        each_main(n->statics[i], fn, cls);
    if (n->param)
        each_main(n->param, fn, cls);
    if (n->wild)
        each_routes(n->wild, fn, cls);
}

/* Fallbacks in lookup order: deeper ones before the node's own. */
static void each_fallback(const node *n, each_fn fn, void *cls)
{
    for (size_t i = 0; i < n->nstatics; i++)
        each_fallback(n->statics[i], fn, cls);
    if (n->param)
        each_fallback(n->param, fn, cls);
    if (n->fallback)
        each_routes(n->fallback, fn, cls);
}

void keel_router_each(const keel_router *r, each_fn fn, void *cls)
{
    if (!r || !fn)
        return;
    each_main(&r->root, fn, cls);
    each_fallback(&r->root, fn, cls);
}

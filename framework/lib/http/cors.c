/* cors.c - cross-origin resource sharing (issue 13): the infra config's
 * "cors" object, checked and compiled once, then the headers of actual and
 * preflight responses (see cors.h for the configuration and the contracts).
 *
 * Origins are compared as their parts, not as text: scheme and host without
 * regard to case, the port with the scheme's default filled in.  Origin
 * headers that are not "scheme://host[:port]" ("null", a path, a wildcard)
 * are refused.  What goes back in Access-Control-Allow-Origin is the
 * request's own Origin (checked: only host name characters), or "*" for an
 * origin that only "*" allows; every CORS answer carries Vary so that caches
 * keep answers for different origins apart.  A compiled keel_cors is never
 * written after keel__cors_new, so threads share it without locks. */
#include "http/cors.h"
#include "http/framing.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest Origin header looked at; longer ones are refused. */
#define ORIGIN_MAX 1024
/* Longest host name (RFC 1035), IPv6 literals included. */
#define HOST_MAX 253
/* Longest Access-Control-Max-Age that is kept: browsers cap it lower still
 * (Firefox a day, Chromium two hours). */
#define MAX_AGE_MAX 86400

typedef enum { ORIGIN_ANY, ORIGIN_EXACT, ORIGIN_WILDCARD } origin_kind;

/* One configured origin. */
typedef struct cors_origin {
    origin_kind kind;
    bool credentials;  /* from allow_origins_with_credentials */
    char *scheme;      /* lower case; NULL for ORIGIN_ANY */
    char *host;        /* lower case; for a wildcard the domain after "*." */
    unsigned port;     /* the port, or the scheme's default; 0: neither */
} cors_origin;

struct keel_cors {
    cors_origin *origins;
    size_t norigins;
    char **allow_headers;   /* configured, besides Authorization and Content-Type */
    size_t nallow_headers;
    char *expose_headers;   /* "A, B"; NULL: none configured */
    char max_age[12];       /* decimal; "": not configured */
};

/* How an origin is allowed, strongest last. */
typedef enum { MATCH_NONE = 0, MATCH_ANY, MATCH_LISTED, MATCH_CREDENTIALS } origin_match;

/* ---- origins ---------------------------------------------------------------- */

/* The parts of "scheme://host[:port]", pointing into the text. */
typedef struct origin_parts {
    const char *scheme;
    size_t scheme_len;
    const char *host;    /* without a leading "*." */
    size_t host_len;
    unsigned port;       /* the port, or the scheme's default; 0: neither */
    bool wildcard;       /* the host began with "*." */
} origin_parts;

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_label_char(char ch)
{
    return is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '_';
}

static bool is_hex(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* The port a browser leaves out of an Origin for scheme (0: none). */
static unsigned default_port(const char *scheme, size_t len)
{
    if (len == 4 && strncasecmp(scheme, "http", 4) == 0)
        return 80;
    if (len == 5 && strncasecmp(scheme, "https", 5) == 0)
        return 443;
    return 0;
}

/* Splits s into its parts.  wildcard_ok: the host may start with "*." (the
 * configuration); never in a request.  Returns NULL when s is an origin,
 * else what is wrong with it (static text, never quoting s). */
static const char *origin_parse(const char *s, bool wildcard_ok, origin_parts *out)
{
    static const char form[] = "expected scheme://host[:port], as in https://app.example.com";
    memset(out, 0, sizeof *out);
    if (strlen(s) > ORIGIN_MAX)
        return "too long";
    const char *p = s;
    if (!is_alpha(*p))
        return form;
    while (is_alpha(*p) || is_digit(*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0)
        return form;
    out->scheme = s;
    out->scheme_len = (size_t)(p - s);
    p += 3;

    if (p[0] == '*') {
        if (!wildcard_ok || p[1] != '.')
            return "a wildcard is one leading \"*.\" label, as in https://*.example.com";
        out->wildcard = true;
        p += 2;
    }
    out->host = p;
    if (*p == '[') { /* an IPv6 literal */
        if (out->wildcard)
            return "a wildcard needs a domain name after \"*.\", not an address";
        p++;
        while (is_hex(*p) || *p == ':' || *p == '.')
            p++;
        if (*p != ']' || p == out->host + 1)
            return "the host is not a host name or address";
        p++;
    } else {
        size_t labels = 0;
        for (;;) {
            const char *label = p;
            while (is_label_char(*p))
                p++;
            if (p == label) {
                if (*p == '*')
                    return "a wildcard is one leading \"*.\" label, as in https://*.example.com";
                return "the host is not a host name or address";
            }
            labels++;
            if (*p != '.')
                break;
            p++;
        }
        if (out->wildcard && labels < 2)
            return "a wildcard must stand for subdomains of a domain of two labels or more, as in *.example.com";
    }
    out->host_len = (size_t)(p - out->host);
    if (out->host_len > HOST_MAX)
        return "the host is too long";

    out->port = default_port(out->scheme, out->scheme_len);
    if (*p == ':') {
        p++;
        unsigned long port = 0;
        const char *digits = p;
        while (is_digit(*p) && p - digits < 6)
            port = port * 10 + (unsigned long)(*p++ - '0');
        if (p == digits || is_digit(*p) || port < 1 || port > 65535)
            return "the port is not a number from 1 to 65535";
        out->port = (unsigned)port;
    }
    if (*p == '/')
        return "an origin has no path and no trailing /: scheme://host[:port]";
    if (*p)
        return form;
    return NULL;
}

/* a (alen bytes) and b (NUL-terminated) are equal but for case. */
static bool equal_nocase(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

/* Whether o allows the origin with parts r. */
static bool entry_allows(const cors_origin *o, const origin_parts *r)
{
    if (o->kind == ORIGIN_ANY)
        return true;
    if (!equal_nocase(r->scheme, r->scheme_len, o->scheme) || r->port != o->port)
        return false;
    if (o->kind == ORIGIN_EXACT)
        return equal_nocase(r->host, r->host_len, o->host);
    size_t base = strlen(o->host); /* a subdomain: one label or more, then ".", then the domain */
    return r->host_len > base + 1 && r->host[r->host_len - base - 1] == '.' &&
           strncasecmp(r->host + r->host_len - base, o->host, base) == 0;
}

static origin_match match_origin(const keel_cors *c, const char *origin)
{
    origin_parts r;
    if (!c || !origin || origin_parse(origin, false, &r))
        return MATCH_NONE;
    origin_match best = MATCH_NONE;
    for (size_t i = 0; i < c->norigins && best != MATCH_CREDENTIALS; i++) {
        const cors_origin *o = &c->origins[i];
        if (!entry_allows(o, &r))
            continue;
        origin_match m = o->credentials ? MATCH_CREDENTIALS : o->kind == ORIGIN_ANY ? MATCH_ANY : MATCH_LISTED;
        if (m > best)
            best = m;
    }
    return best;
}

bool keel__cors_origin_allowed(const keel_cors *c, const char *origin, bool *with_credentials)
{
    origin_match m = match_origin(c, origin);
    if (with_credentials)
        *with_credentials = m == MATCH_CREDENTIALS;
    return m != MATCH_NONE;
}

bool keel__cors_same_origin(const char *origin, const char *host)
{
    origin_parts r;
    if (!origin || !host || origin_parse(origin, false, &r))
        return false;
    const char *end = host[0] == '[' ? strchr(host, ']') : strchr(host, ':');
    end = !end ? host + strlen(host) : host[0] == '[' ? end + 1 : end;
    unsigned port = default_port(r.scheme, r.scheme_len);
    if (*end == ':') {
        char *stop;
        unsigned long p = is_digit(end[1]) ? strtoul(end + 1, &stop, 10) : 0;
        if (!p || *stop || p > 65535)
            return false;
        port = (unsigned)p;
    } else if (*end) {
        return false;
    }
    return (size_t)(end - host) == r.host_len && strncasecmp(host, r.host, r.host_len) == 0 && port == r.port;
}

/* ---- header names ------------------------------------------------------------- */

/* The next element of a comma-separated list at *p, without the blanks
 * around it; false at the end.  Empty elements are skipped. */
static bool list_next(const char **p, const char **item, size_t *len)
{
    const char *s = *p;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (!*s) {
            *p = s;
            return false;
        }
        const char *start = s;
        while (*s && *s != ',')
            s++;
        const char *end = s;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        *p = s;
        *item = start;
        *len = (size_t)(end - start);
        return true;
    }
}

/* ---- the configuration ------------------------------------------------------- */

/* The failed_precondition for the problem at where. */
static keel_error *bad(const char *path, const char *where, const char *fmt, ...) KEEL_PRINTF(3, 4);
static keel_error *bad(const char *path, const char *where, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: %s: %s", path, where, what);
}

/* key as it may appear in a message: only when it looks like a name. */
static const char *shown_key(const char *key)
{
    size_t n = 0;
    for (; key[n]; n++)
        if (!is_label_char(key[n]) && key[n] != '$')
            return "(not a name)";
    return n && n <= 64 ? key : "(not a name)";
}

static char *lower_dup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < len; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : s[i];
    d[len] = '\0';
    return d;
}

static keel_error *out_of_memory(void)
{
    return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* Adds the origins of the array at key (absent: none). */
static keel_error *add_origins(keel_cors *c, const json_t *cors, const char *key, bool credentials, const char *path)
{
    const json_t *list = json_object_get(cors, key);
    char where[96];
    snprintf(where, sizeof where, "cors.%s", key);
    if (!list)
        return NULL;
    if (!json_is_array(list))
        return bad(path, where, "expected an array of origins, as in [\"https://app.example.com\"]");
    size_t n = json_array_size(list);
    cors_origin *grown = realloc(c->origins, (c->norigins + n + 1) * sizeof *grown);
    if (!grown)
        return out_of_memory();
    c->origins = grown;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(list, i);
        snprintf(where, sizeof where, "cors.%s[%zu]", key, i);
        if (!json_is_string(v))
            return bad(path, where, "expected a string");
        const char *s = json_string_value(v);
        cors_origin *o = &c->origins[c->norigins];
        memset(o, 0, sizeof *o);
        o->credentials = credentials;
        if (strcmp(s, "*") == 0) {
            if (credentials)
                return bad(path, where, "\"*\" is never allowed with credentials: list the origins");
            o->kind = ORIGIN_ANY;
            c->norigins++;
            continue;
        }
        origin_parts parts;
        const char *why = origin_parse(s, true, &parts);
        if (why)
            return bad(path, where, "not an origin: %s", why);
        o->kind = parts.wildcard ? ORIGIN_WILDCARD : ORIGIN_EXACT;
        o->port = parts.port;
        o->scheme = lower_dup(parts.scheme, parts.scheme_len);
        o->host = lower_dup(parts.host, parts.host_len);
        c->norigins++; /* counted now so that keel__cors_free frees what there is */
        if (!o->scheme || !o->host)
            return out_of_memory();
    }
    return NULL;
}

/* The header names of the array at key; *out and *count receive them. */
static keel_error *header_names(const json_t *cors, const char *key, const char *path, char ***out, size_t *count)
{
    const json_t *list = json_object_get(cors, key);
    char where[96];
    snprintf(where, sizeof where, "cors.%s", key);
    if (!list)
        return NULL;
    if (!json_is_array(list))
        return bad(path, where, "expected an array of header names, as in [\"X-Request-Id\"]");
    size_t n = json_array_size(list);
    *out = calloc(n + 1, sizeof **out);
    if (!*out)
        return out_of_memory();
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(list, i);
        snprintf(where, sizeof where, "cors.%s[%zu]", key, i);
        if (!json_is_string(v))
            return bad(path, where, "expected a string");
        const char *s = json_string_value(v);
        if (strcmp(s, "*") == 0)
            return bad(path, where, "\"*\" is not supported: list the header names");
        if (!keel__http_token(s, strlen(s)))
            return bad(path, where, "not a header name");
        if (!((*out)[i] = strdup(s)))
            return out_of_memory();
        *count = i + 1;
    }
    return NULL;
}

static void free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* names joined with ", " (NULL when n is 0 or out of memory: *oom says which). */
static char *join_names(char *const *names, size_t n, bool *oom)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 2;
    *oom = false;
    if (!n)
        return NULL;
    char *s = malloc(len);
    if (!s) {
        *oom = true;
        return NULL;
    }
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(s, ", ");
        strcat(s, names[i]);
    }
    return s;
}

static keel_error *compile(keel_cors *c, const json_t *cors, const char *path)
{
    static const char *const keys[] = {"allow_origins", "allow_origins_with_credentials", "allow_headers",
                                       "expose_headers", "max_age_s", NULL};
    if (!json_is_object(cors))
        return bad(path, "cors", "expected an object, as in {\"allow_origins\": [\"https://app.example.com\"]}");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cors, key, v) {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(key, keys[i]) == 0;
        if (!known)
            return bad(path, "cors",
                       "unknown key \"%s\" (expected \"allow_origins\", \"allow_origins_with_credentials\", "
                       "\"allow_headers\", \"expose_headers\", \"max_age_s\")",
                       shown_key(key));
    }
    keel_error *err = add_origins(c, cors, "allow_origins", false, path);
    if (!err)
        err = add_origins(c, cors, "allow_origins_with_credentials", true, path);
    if (!err)
        err = header_names(cors, "allow_headers", path, &c->allow_headers, &c->nallow_headers);
    char **expose = NULL;
    size_t nexpose = 0;
    if (!err)
        err = header_names(cors, "expose_headers", path, &expose, &nexpose);
    if (!err) {
        bool oom;
        c->expose_headers = join_names(expose, nexpose, &oom);
        if (oom)
            err = out_of_memory();
    }
    free_names(expose, nexpose);
    if (err)
        return err;
    const json_t *age = json_object_get(cors, "max_age_s");
    if (age) {
        if (!json_is_integer(age) || json_integer_value(age) < 0 || json_integer_value(age) > MAX_AGE_MAX)
            return bad(path, "cors.max_age_s", "expected a whole number of seconds from 0 to %d", MAX_AGE_MAX);
        snprintf(c->max_age, sizeof c->max_age, "%lld", (long long)json_integer_value(age));
    }
    return NULL;
}

keel_error *keel__cors_new(const json_t *cors, const char *path, keel_cors **out)
{
    *out = NULL;
    if (!cors)
        return NULL;
    keel_cors *c = calloc(1, sizeof *c);
    if (!c)
        return out_of_memory();
    keel_error *err = compile(c, cors, path ? path : "(unnamed)");
    if (err) {
        keel__cors_free(c);
        return err;
    }
    *out = c;
    return NULL;
}

void keel__cors_free(keel_cors *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->norigins; i++) {
        free(c->origins[i].scheme);
        free(c->origins[i].host);
    }
    free(c->origins);
    free_names(c->allow_headers, c->nallow_headers);
    free(c->expose_headers);
    free(c);
}

/* ---- responses ---------------------------------------------------------------- */

/* Access-Control-Allow-Origin and, with credentials, -Allow-Credentials. */
static keel_error *allow_origin(keel_resp *resp, const char *origin, origin_match m)
{
    keel_error *err = keel_resp_header(resp, "Access-Control-Allow-Origin", m == MATCH_ANY ? "*" : origin);
    if (!err && m == MATCH_CREDENTIALS)
        err = keel_resp_header(resp, "Access-Control-Allow-Credentials", "true");
    return err;
}

keel_error *keel__cors_actual(const keel_cors *c, const char *origin, keel_resp *resp)
{
    if (!c || !origin)
        return NULL;
    keel_error *err = keel_resp_header(resp, "Vary", "Origin");
    origin_match m = match_origin(c, origin);
    if (err || m == MATCH_NONE)
        return err;
    err = allow_origin(resp, origin, m);
    if (!err && c->expose_headers)
        err = keel_resp_header(resp, "Access-Control-Expose-Headers", c->expose_headers);
    return err;
}

/* Whether method is in methods ("GET, POST"; "*" takes any). */
static bool method_taken(const char *methods, const char *method)
{
    const char *p = methods, *item;
    size_t len;
    while (list_next(&p, &item, &len))
        if ((len == 1 && *item == '*') || (len == strlen(method) && strncmp(item, method, len) == 0))
            return true;
    return false;
}

static bool methods_any(const char *methods)
{
    const char *p = methods, *item;
    size_t len;
    while (list_next(&p, &item, &len))
        if (len == 1 && *item == '*')
            return true;
    return false;
}

/* Whether a request may carry header name (len bytes). */
static bool header_allowed(const keel_cors *c, const char *name, size_t len, const char *const *endpoint_headers)
{
    if (equal_nocase(name, len, "Authorization") || equal_nocase(name, len, "Content-Type"))
        return true;
    for (size_t i = 0; i < c->nallow_headers; i++)
        if (equal_nocase(name, len, c->allow_headers[i]))
            return true;
    for (size_t i = 0; endpoint_headers && endpoint_headers[i]; i++)
        if (equal_nocase(name, len, endpoint_headers[i]))
            return true;
    return false;
}

/* Whether every header in request_headers (a comma-separated list; NULL:
 * none) is a token that a request may carry; *any says whether it names one. */
static bool headers_allowed(const keel_cors *c, const char *request_headers, const char *const *endpoint_headers,
                            bool *any)
{
    *any = false;
    if (!request_headers)
        return true;
    const char *p = request_headers, *item;
    size_t len;
    while (list_next(&p, &item, &len)) {
        if (!keel__http_token(item, len) || !header_allowed(c, item, len, endpoint_headers))
            return false;
        *any = true;
    }
    return true;
}

keel_error *keel__cors_preflight(const keel_cors *c, const char *origin, const char *request_method,
                                 const char *request_headers, const char *methods,
                                 const char *const *endpoint_headers, keel_resp *resp)
{
    if (!methods || !*methods)
        return keel_error_new(KEEL_NOT_FOUND, "endpoint not found");
    keel_resp_status(resp, 204);
    if (!c)
        return NULL;
    keel_error *err = keel_resp_header(resp, "Vary", "Origin, Access-Control-Request-Method, "
                                                     "Access-Control-Request-Headers");
    if (err)
        return err;
    origin_match m = match_origin(c, origin);
    bool any_headers = false;
    if (m == MATCH_NONE || !request_method || !keel__http_token(request_method, strlen(request_method)) ||
        !method_taken(methods, request_method) ||
        !headers_allowed(c, request_headers, endpoint_headers, &any_headers))
        return NULL; /* refused: no Access-Control-Allow-* */
    err = allow_origin(resp, origin, m);
    if (!err)
        err = keel_resp_header(resp, "Access-Control-Allow-Methods", methods_any(methods) ? request_method : methods);
    if (!err && any_headers)
        err = keel_resp_header(resp, "Access-Control-Allow-Headers", request_headers);
    if (!err && c->max_age[0])
        err = keel_resp_header(resp, "Access-Control-Max-Age", c->max_age);
    return err;
}

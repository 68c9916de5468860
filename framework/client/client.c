/* client.c - libkeel-client: calls to a Keel app over HTTP with libcurl.
 * A request is laid out by the endpoint's field table exactly as the app
 * decodes it (path segments, query string, headers, JSON body) and a 2xx
 * answer is decoded by the response table with libkeel's own decoder;
 * anything else becomes a keel_error with the app's code.  See
 * keel/client.h for the contract. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel/client.h"

#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE ((size_t)64 << 20)
#define IN_FLAGS (KEEL_IN_PATH | KEEL_IN_QUERY | KEEL_IN_HEADER)

struct keel_client {
    CURL *curl;
    char *base;        /* no trailing '/' */
    char **headers;    /* "Name: value", each malloc'd */
    size_t n_headers;
    long timeout_ms;
    size_t max_response;
};

/* ---- the client ------------------------------------------------------------------ */

keel_client *keel_client_new(const char *base_url)
{
    if (!base_url || (strncasecmp(base_url, "http://", 7) != 0 && strncasecmp(base_url, "https://", 8) != 0))
        return NULL;
    /* Reference-counted and, since libcurl 7.84, thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    keel_client *c = calloc(1, sizeof *c);
    if (!c || !(c->curl = curl_easy_init()) || !(c->base = strdup(base_url))) {
        if (c && c->curl)
            curl_easy_cleanup(c->curl);
        free(c);
        curl_global_cleanup();
        return NULL;
    }
    size_t n = strlen(c->base);
    while (n > 0 && c->base[n - 1] == '/')
        c->base[--n] = '\0';
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    c->max_response = DEFAULT_MAX_RESPONSE;
    return c;
}

void keel_client_free(keel_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    for (size_t i = 0; i < c->n_headers; i++)
        free(c->headers[i]);
    free(c->headers);
    free(c->base);
    free(c);
    curl_global_cleanup();
}

void keel_client_set_timeout(keel_client *c, long ms)
{
    c->timeout_ms = ms > 0 ? ms : 0;
}

void keel_client_set_max_response(keel_client *c, size_t max_bytes)
{
    c->max_response = max_bytes;
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              strchr("!#$%&'*+-.^_`|~", ch)))
            return false;
    }
    return true;
}

/* A header value that cannot start another header or end the request's. */
static bool is_header_value(const char *s, size_t len)
{
    return !memchr(s, '\r', len) && !memchr(s, '\n', len) && strlen(s) == len;
}

keel_error *keel_client_set_header(keel_client *c, const char *name, const char *value)
{
    if (!name || !is_token(name))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "header name \"%s\" is not an HTTP token", name ? name : "(null)");
    if (value && !is_header_value(value, strlen(value)))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "header %s: the value contains CR or LF", name);
    size_t nlen = strlen(name), at = c->n_headers;
    for (size_t i = 0; i < c->n_headers; i++)
        if (strncasecmp(c->headers[i], name, nlen) == 0 && c->headers[i][nlen] == ':')
            at = i;
    if (!value) {
        if (at < c->n_headers) {
            free(c->headers[at]);
            memmove(c->headers + at, c->headers + at + 1, (c->n_headers - at - 1) * sizeof *c->headers);
            c->n_headers--;
        }
        return NULL;
    }
    char *line = malloc(nlen + strlen(value) + 3);
    if (!line)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    sprintf(line, "%s: %s", name, value);
    if (at == c->n_headers) {
        char **grown = realloc(c->headers, (c->n_headers + 1) * sizeof *grown);
        if (!grown) {
            free(line);
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        }
        c->headers = grown;
        c->n_headers++;
    } else {
        free(c->headers[at]);
    }
    c->headers[at] = line;
    return NULL;
}

/* ---- laying out a request ---------------------------------------------------------- */

/* Appends s percent-encoded: everything but RFC 3986's unreserved characters
 * (and '/' when keep_slash, for a catch-all segment). */
static void put_encoded(keel_buf *b, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '-' ||
            ch == '.' || ch == '_' || ch == '~' || (keep_slash && ch == '/')) {
            keel_buf_putc(b, (char)ch);
        } else {
            char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            keel_buf_append(b, esc, 3);
        }
    }
}

/* The text of a scalar of type t at p, as the app's keel_schema_decode_text
 * reads it back; NULL for a NULL string (or exhausted memory). */
static const char *scalar_text(keel_type t, const char *p, keel_arena *a)
{
    switch (t) {
    case KEEL_T_STRING:
        return *(const char *const *)(const void *)p;
    case KEEL_T_INT64:
        return keel_arena_printf(a, "%" PRId64, *(const int64_t *)(const void *)p);
    case KEEL_T_DOUBLE:
        return keel_arena_printf(a, "%.17g", *(const double *)(const void *)p);
    case KEEL_T_BOOL:
        return *(const bool *)(const void *)p ? "true" : "false";
    default:
        return NULL;
    }
}

static bool bodyless(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "DELETE") == 0;
}

/* Where a request field goes for this method. */
static unsigned field_place(const keel_field *f, const char *method)
{
    unsigned in = f->flags & IN_FLAGS;
    return in ? in : bodyless(method) ? KEEL_IN_QUERY : 0;
}

static const keel_field *path_field(const keel_field *table, const char *name, size_t len)
{
    for (const keel_field *f = table; f->type != KEEL_T_END; f++)
        if ((f->flags & KEEL_IN_PATH) && strncmp(f->name, name, len) == 0 && f->name[len] == '\0')
            return f;
    return NULL;
}

/* The path of ep with the request's values in its ":name" and "*name"
 * segments, then its query string, appended to url. */
static keel_error *put_path_and_query(keel_buf *url, const keel_client_endpoint *ep, const keel_field *table,
                                      const char *req, keel_arena *scratch)
{
    for (const char *p = ep->path; *p;) {
        if ((*p == ':' || *p == '*') && p > ep->path && p[-1] == '/') {
            const char *end = strchr(p, '/');
            size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
            const keel_field *f = path_field(table, p + 1, len);
            const char *text = f ? scalar_text(f->type, req + f->offset, scratch) : NULL;
            if (!f)
                return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: the request has no path field \"%.*s\"", ep->name,
                                      (int)len, p + 1);
            if (!text || (!*text && *p == ':'))
                return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: path parameter \"%s\" is %s", ep->name, f->name,
                                      text ? "empty" : "NULL");
            put_encoded(url, text, *p == '*');
            p += 1 + len;
        } else {
            keel_buf_putc(url, *p++);
        }
    }
    char sep = '?';
    for (const keel_field *f = table; f->type != KEEL_T_END; f++) {
        if (field_place(f, ep->method) != KEEL_IN_QUERY || !keel_schema_present(f, req))
            continue;
        bool array = f->type == KEEL_T_ARRAY;
        keel_type t = array ? f->elem_type : f->type;
        if (t == KEEL_T_OBJECT || t == KEEL_T_ARRAY)
            return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: field \"%s\" is an object and cannot go in a query string",
                                  ep->name, f->name);
        const char *elems = array ? *(const char *const *)(const void *)(req + f->offset) : req + f->offset;
        size_t n = array ? (elems ? *(const size_t *)(const void *)(req + f->count_offset) : 0) : 1;
        for (size_t i = 0; i < n; i++) {
            const char *text = scalar_text(t, elems + i * (array ? f->elem_size : 0), scratch);
            if (!text)
                continue; /* a NULL string: the app sees the field absent */
            keel_buf_putc(url, sep);
            sep = '&';
            put_encoded(url, f->name, false);
            keel_buf_putc(url, '=');
            put_encoded(url, text, false);
        }
    }
    return NULL;
}

/* The request's header fields, appended to *list. */
static keel_error *put_header_fields(struct curl_slist **list, const keel_client_endpoint *ep,
                                     const keel_field *table, const char *req, keel_arena *scratch)
{
    for (const keel_field *f = table; f->type != KEEL_T_END; f++) {
        if (!(f->flags & KEEL_IN_HEADER) || !keel_schema_present(f, req))
            continue;
        const char *text = scalar_text(f->type, req + f->offset, scratch);
        if (!text)
            continue;
        if (!is_header_value(text, strlen(text)))
            return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: header field \"%s\" contains CR or LF", ep->name, f->name);
        const char *line = keel_arena_printf(scratch, "%s: %s", f->name, text);
        struct curl_slist *grown = line ? curl_slist_append(*list, line) : NULL;
        if (!grown)
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        *list = grown;
    }
    return NULL;
}

/* A copy of table without the fields that have a flag of mask (NULL when
 * memory is exhausted): what goes in a JSON body, for libkeel's own encoder
 * and decoder. */
static const keel_field *fields_without(const keel_field *table, unsigned mask, keel_arena *scratch)
{
    size_t n = 0;
    for (const keel_field *f = table; f->type != KEEL_T_END; f++)
        n += !(f->flags & mask);
    keel_field *only = keel_arena_calloc(scratch, n + 1, sizeof *only);
    if (!only)
        return NULL;
    n = 0;
    for (const keel_field *f = table; f->type != KEEL_T_END; f++)
        if (!(f->flags & mask))
            only[n++] = *f;
    only[n].type = KEEL_T_END;
    return only;
}

/* ---- sending it -------------------------------------------------------------------- */

/* Appends the client's headers, then the lines a and b (either may be
 * NULL), then an empty Expect (no 100-continue round trip) to *list.
 * False when memory is exhausted. */
static bool add_headers(struct curl_slist **list, const keel_client *c, const char *a, const char *b)
{
    for (size_t i = 0; i < c->n_headers + 3; i++) {
        const char *line = i < c->n_headers ? c->headers[i] : i == c->n_headers ? a : i == c->n_headers + 1 ? b : "Expect:";
        if (!line)
            continue;
        struct curl_slist *grown = curl_slist_append(*list, line);
        if (!grown)
            return false;
        *list = grown;
    }
    return true;
}

typedef struct answer {
    keel_buf body;
    size_t max;
    bool too_big;
} answer;

static size_t on_data(char *data, size_t size, size_t count, void *userdata)
{
    answer *a = userdata;
    size_t n = size * count;
    if (n > a->max - a->body.len) {
        a->too_big = true;
        return 0;
    }
    keel_buf_append(&a->body, data, n);
    return a->body.failed ? 0 : n;
}

/* Sends the request laid out in url, headers and body (len bytes; NULL:
 * none) and reads the answer into ans; what names the call in messages. */
static keel_error *perform(keel_client *c, const char *what, const char *method, const char *url,
                           struct curl_slist *headers, const char *body, size_t len, answer *ans, unsigned *status)
{
    CURL *h = c->curl;
    char why[CURL_ERROR_SIZE] = "";
    curl_easy_reset(h); /* the options of the last call; its connection stays open */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, why);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, ans);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_WRITE_ERROR && ans->too_big)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "%s: the answer is larger than %zu bytes", what, ans->max);
    if (rc == CURLE_WRITE_ERROR && ans->body.failed)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "%s: out of memory reading the answer", what);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return keel_error_new(KEEL_DEADLINE_EXCEEDED, "%s: no answer from %s within %ld ms", what, c->base,
                              c->timeout_ms);
    if (rc != CURLE_OK)
        return keel_error_new(KEEL_UNAVAILABLE, "%s: cannot reach %s: %s", what, c->base,
                              why[0] ? why : curl_easy_strerror(rc));
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    *status = (unsigned)code;
    return NULL; /* a keel_buf is always NUL-terminated (or empty: data NULL) */
}

/* The code Encore gives status, for answers without its error shape. */
static keel_code code_of_status(unsigned status)
{
    switch (status) {
    case 400: return KEEL_INVALID_ARGUMENT;
    case 401: return KEEL_UNAUTHENTICATED;
    case 403: return KEEL_PERMISSION_DENIED;
    case 404: return KEEL_NOT_FOUND;
    case 409: return KEEL_ALREADY_EXISTS;
    case 413:
    case 429: return KEEL_RESOURCE_EXHAUSTED;
    case 499: return KEEL_CANCELED;
    case 501: return KEEL_UNIMPLEMENTED;
    case 503: return KEEL_UNAVAILABLE;
    case 504: return KEEL_DEADLINE_EXCEEDED;
    default: return status >= 500 ? KEEL_INTERNAL : KEEL_UNKNOWN;
    }
}

/* The error an answer that is not 2xx stands for: the app's code and
 * message from Encore's shape {code, message, details}, its status kept. */
static keel_error *error_of_answer(const char *what, unsigned status, const char *body, size_t len)
{
    keel_code code = code_of_status(status);
    json_t *obj = json_loadb(body, len, 0, NULL);
    const char *name = json_string_value(json_object_get(obj, "code"));
    const char *message = json_string_value(json_object_get(obj, "message"));
    for (int i = KEEL_CANCELED; name && i < KEEL_CODE_COUNT; i++)
        if (strcmp(name, keel_code_name((keel_code)i)) == 0)
            code = (keel_code)i;
    keel_error *err = message ? keel_error_new(code, "%s", message)
                              : keel_error_new(code, "%s: HTTP status %u", what, status);
    json_decref(obj);
    keel_error_status(err, status);
    return keel_error_cause(err, "%s answered %u", what, status);
}

/* ---- calls --------------------------------------------------------------------------- */

static const keel_field no_fields[] = KEEL_FIELDS();

/* The response's header fields, from the answer's headers. */
static keel_error *read_header_fields(CURL *h, const keel_client_endpoint *ep, const keel_field *table, void *resp,
                                      keel_arena *arena)
{
    for (const keel_field *f = table; f->type != KEEL_T_END; f++) {
        if (!(f->flags & KEEL_IN_HEADER))
            continue;
        struct curl_header *hv = NULL;
        if (curl_easy_header(h, f->name, 0, CURLH_HEADER, -1, &hv) != CURLHE_OK) {
            if (f->flags & KEEL_OPTIONAL)
                continue;
            return keel_error_new(KEEL_INTERNAL, "%s: the answer has no header %s", ep->name, f->name);
        }
        keel_error *err = keel_schema_decode_text(f, hv->value, strlen(hv->value), resp, arena);
        if (err)
            return keel_error_prefix(err, "%s: header %s of the answer", ep->name, f->name);
    }
    return NULL;
}

keel_error *keel_client_call(keel_client *c, const keel_client_endpoint *ep, const void *req, void *resp,
                             keel_arena *arena)
{
    const keel_field *in = ep->request ? ep->request : no_fields, *out = ep->response ? ep->response : no_fields;
    if (!req) { /* nothing to send: fine when every field may be left out */
        for (const keel_field *f = in; f->type != KEEL_T_END; f++)
            if (!(f->flags & KEEL_OPTIONAL))
                return keel_error_new(KEEL_INVALID_ARGUMENT, "%s: the request is NULL", ep->name);
        in = no_fields;
    }
    char inline_buf[4096];
    keel_arena scratch;
    keel_arena_init(&scratch, inline_buf, sizeof inline_buf);
    const char *what = keel_arena_printf(&scratch, "%s (%s %s)", ep->name, ep->method, ep->path);
    keel_buf url, body;
    keel_buf_init(&url, &scratch);
    keel_buf_init(&body, &scratch);
    answer ans = {.max = c->max_response};
    keel_buf_init(&ans.body, &scratch);
    struct curl_slist *headers = NULL;
    unsigned status = 0;
    keel_error *err = NULL;

    keel_buf_puts(&url, c->base);
    err = put_path_and_query(&url, ep, in, req, &scratch);
    if (!err)
        err = put_header_fields(&headers, ep, in, req, &scratch);
    bool with_body = !bodyless(ep->method);
    if (!err && with_body) {
        const keel_field *body_fields = fields_without(in, IN_FLAGS, &scratch);
        if (body_fields)
            keel_schema_encode(body_fields, req, &body);
        else
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (!err && !add_headers(&headers, c, "Accept: application/json",
                             with_body ? "Content-Type: application/json" : NULL))
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_buf_putc(&url, '\0');
    if (!err && (url.failed || body.failed || !what))
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    if (!err)
        err = perform(c, what, ep->method, url.data, headers, with_body ? (body.data ? body.data : "") : NULL,
                      body.len, &ans, &status);
    if (!err && (status < 200 || status > 299))
        err = error_of_answer(what, status, ans.body.data ? ans.body.data : "", ans.body.len);
    if (!err) {
        /* The app encodes every response field but its headers in the body. */
        const keel_field *body_fields = fields_without(out, KEEL_IN_HEADER, &scratch);
        json_t *obj = NULL;
        err = body_fields ? keel_schema_parse_json(ans.body.data ? ans.body.data : "", ans.body.len, &obj)
                          : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        if (!err)
            err = keel_schema_decode(body_fields, obj, resp, arena, false);
        json_decref(obj);
        if (!err)
            err = read_header_fields(c->curl, ep, out, resp, arena);
        if (err) {
            err->code = KEEL_INTERNAL; /* the app answered what its own table does not describe */
            err->http_status = 0;
            keel_error_prefix(err, "%s: the answer does not match the response", what);
        }
    }
    curl_slist_free_all(headers);
    keel_arena_release(&scratch);
    return err;
}

keel_error *keel_client_raw(keel_client *c, const char *method, const char *path_and_query,
                            const char *content_type, const void *body, size_t len, keel_client_answer *out,
                            keel_arena *arena)
{
    memset(out, 0, sizeof *out);
    if (!method || !is_token(method) || !path_and_query || path_and_query[0] != '/' ||
        !is_header_value(path_and_query, strlen(path_and_query)) || strchr(path_and_query, ' '))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "keel_client_raw: the method must be a token and the path "
                                                     "start with '/', without spaces, CR or LF");
    if (content_type && !is_header_value(content_type, strlen(content_type)))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "keel_client_raw: the content type contains CR or LF");
    char inline_buf[2048];
    keel_arena scratch;
    keel_arena_init(&scratch, inline_buf, sizeof inline_buf);
    const char *url = keel_arena_printf(&scratch, "%s%s", c->base, path_and_query);
    const char *what = keel_arena_printf(&scratch, "%s %s", method, path_and_query);
    const char *ct = content_type ? keel_arena_printf(&scratch, "Content-Type: %s", content_type) : NULL;
    struct curl_slist *headers = NULL;
    keel_error *err = NULL;
    if (!url || !what || (content_type && !ct) || !add_headers(&headers, c, ct, NULL))
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    answer ans = {.max = c->max_response};
    keel_buf_init(&ans.body, arena);
    unsigned status = 0;
    if (!err)
        err = perform(c, what, method, url, headers, body, body ? len : 0, &ans, &status);
    if (!err) {
        const char *type = NULL;
        curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &type);
        out->status = status;
        out->content_type = type ? keel_arena_strdup(arena, type) : NULL;
        out->body = ans.body.data ? ans.body.data : "";
        out->len = ans.body.len;
    }
    curl_slist_free_all(headers);
    keel_arena_release(&scratch);
    return err;
}

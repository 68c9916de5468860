/* request.c - the life of one request: creation, accessors for handlers, the
 * response that handlers fill, and turning it into a libmicrohttpd response.
 * Typed, raw and error replies all leave through keel__req_send. */
#include "core.h"
#include "http/conn_limit.h"
#include "http/stream.h"
#include "http/watchdog.h"
#include "observe/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Keeps a client-supplied request id only if it is short printable ASCII that
 * cannot break a log line or a header. */
static bool request_id_acceptable(const char *id)
{
    size_t n = 0;
    for (const char *p = id; *p; p++, n++) {
        unsigned char ch = (unsigned char)*p;
        if (n >= 128 || ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            return false;
    }
    return n > 0;
}

static const char *request_id_assign(keel_req *req)
{
    const char *given = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && request_id_acceptable(given))
        return given;
    uint64_t n = atomic_fetch_add_explicit(&req->app->next_request, 1, memory_order_relaxed);
    static const char hex[] = "0123456789abcdef";
    char *p = req->id_buf;
    memcpy(p, req->app->id_prefix, 8);
    p += 8;
    *p++ = '-';
    for (int shift = 60; shift >= 0; shift -= 4)
        *p++ = hex[(n >> shift) & 0xf];
    *p = '\0';
    return req->id_buf;
}

keel_req *keel__req_new(keel_app *app, struct MHD_Connection *conn, const char *url,
                        const char *method, const char *version)
{
    keel_req *req = malloc(sizeof *req);
    if (!req)
        return NULL;
    memset(req, 0, offsetof(keel_req, inline_mem));
    req->app = app;
    req->conn = conn;
    req->url = url;
    req->method = method;
    req->version = version;
    clock_gettime(CLOCK_MONOTONIC, &req->started);
    keel_arena_init(&req->arena, req->inline_mem, sizeof req->inline_mem);
    keel_buf_init(&req->body, &req->arena);
    keel_buf_init(&req->resp.buf, &req->arena);
    req->resp.status = 200;
    req->id = request_id_assign(req);
    return req;
}

/* The 503 for a body that does not fit the budget. */
static keel_error *budget_used_up(size_t budget)
{
    return keel_error_cause(
        keel_error_new(KEEL_UNAVAILABLE, "server busy: too many request bodies in memory, try again"),
        "the body budget of %zu bytes (KEEL_BODY_BUDGET) is used up", budget);
}

keel_error *keel__req_body_fits(const keel_req *req, size_t bytes)
{
    if (!req->app)
        return NULL;
    size_t budget = req->app->cfg.body_budget;
    size_t used = atomic_load_explicit(&req->app->body_bytes, memory_order_relaxed);
    return bytes > budget || used > budget - bytes ? budget_used_up(budget) : NULL;
}

keel_error *keel__req_hold_body(keel_req *req, size_t bytes)
{
    if (!req->app || !bytes)
        return NULL; /* a detached request serves no client */
    size_t budget = req->app->cfg.body_budget;
    size_t used = atomic_load_explicit(&req->app->body_bytes, memory_order_relaxed);
    do {
        if (bytes > budget || used > budget - bytes)
            return budget_used_up(budget);
    } while (!atomic_compare_exchange_weak_explicit(&req->app->body_bytes, &used, used + bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    req->body_held += bytes;
    return NULL;
}

const struct sockaddr *keel__req_peer(const keel_req *req)
{
    const union MHD_ConnectionInfo *ci =
        req->conn ? MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    return ci ? ci->client_addr : NULL;
}

void keel__req_free(keel_req *req)
{
    if (!req)
        return;
    if (req->body_held)
        atomic_fetch_sub_explicit(&req->app->body_bytes, req->body_held, memory_order_relaxed);
    if (req->resp_held) {
        atomic_fetch_sub_explicit(&req->app->resp_bytes, req->resp_held, memory_order_relaxed);
        keel__conn_limit_unhold(req->app->conn_limit, keel__req_peer(req), req->resp_held);
    }
    keel_error_free(req->error);
    keel_arena_release(&req->arena);
    free(req);
}

keel_req *keel__req_detached_new(void)
{
    static atomic_uint_fast64_t next_detached;
    keel_req *req = malloc(sizeof *req);
    if (!req)
        return NULL;
    memset(req, 0, offsetof(keel_req, inline_mem));
    req->method = "";
    req->url = req->path = "";
    req->version = "";
    clock_gettime(CLOCK_MONOTONIC, &req->started);
    keel_arena_init(&req->arena, req->inline_mem, sizeof req->inline_mem);
    keel_buf_init(&req->body, &req->arena);
    keel_buf_init(&req->resp.buf, &req->arena);
    snprintf(req->id_buf, sizeof req->id_buf, "detached-%llu",
             (unsigned long long)atomic_fetch_add(&next_detached, 1));
    req->id = req->id_buf;
    return req;
}

void keel__req_detached_free(keel_req *req)
{
    keel__req_free(req);
}

/* ---- accessors -------------------------------------------------------- */

const char *keel_req_method(const keel_req *req) { return req->method; }
const char *keel_req_path(const keel_req *req) { return req->path ? req->path : req->url; }
const char *keel_req_id(const keel_req *req) { return req->id; }
const char *keel_req_version(const keel_req *req) { return req->version; }
keel_arena *keel_req_arena(keel_req *req) { return &req->arena; }
void **keel_req_user(keel_req *req) { return &req->user; }
keel_resp *keel_req_resp(keel_req *req) { return &req->resp; }
struct MHD_Connection *keel_req_connection(const keel_req *req) { return req->conn; }

const char *keel_req_route(const keel_req *req)
{
    return req->route ? req->route->ep->path : NULL;
}

const char *keel_req_param(const keel_req *req, const char *name)
{
    for (size_t i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.params[i].name, name) == 0)
            return req->match.params[i].value;
    return NULL;
}

const char *keel_req_query(const keel_req *req, const char *name)
{
    if (!req->conn)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *keel_req_header(const keel_req *req, const char *name)
{
    if (!req->conn)
        return NULL;
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct each_ctx {
    int (*fn)(void *cls, const char *name, const char *value);
    void *cls;
};

static enum MHD_Result each_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    struct each_ctx *ctx = cls;
    return ctx->fn(ctx->cls, key, value ? value : "") ? MHD_NO : MHD_YES;
}

void keel_req_each(const keel_req *req, keel_kv_kind kind,
                   int (*fn)(void *cls, const char *name, const char *value), void *cls)
{
    struct each_ctx ctx = {fn, cls};
    if (!req->conn)
        return;
    MHD_get_connection_values(req->conn, kind == KEEL_QUERY ? MHD_GET_ARGUMENT_KIND : MHD_HEADER_KIND,
                              each_value, &ctx);
}

const char *keel_req_body(const keel_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data ? req->body.data : "";
}

/* ---- response --------------------------------------------------------- */

static keel_req *resp_owner(keel_resp *resp)
{
    return (keel_req *)((char *)resp - offsetof(keel_req, resp));
}

void keel_resp_status(keel_resp *resp, unsigned status)
{
    resp->status = status;
}

static bool header_text_safe(const char *s)
{
    for (; *s; s++)
        if (*s == '\r' || *s == '\n')
            return false;
    return true;
}

keel_error *keel_resp_header(keel_resp *resp, const char *name, const char *value)
{
    if (!name || !*name || !value || !header_text_safe(name) || !header_text_safe(value) ||
        strchr(name, ':'))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "invalid response header");
    keel_arena *a = &resp_owner(resp)->arena;
    keel_header *h = keel_arena_alloc(a, sizeof *h);
    if (!h || !(h->name = keel_arena_strdup(a, name)) || !(h->value = keel_arena_strdup(a, value)))
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    h->next = NULL;
    if (!resp->headers_tail)
        resp->headers_tail = &resp->headers;
    *resp->headers_tail = h;
    resp->headers_tail = &h->next;
    return NULL;
}

const char *keel__resp_header_get(const keel_resp *resp, const char *name)
{
    for (const keel_header *h = resp->headers; h; h = h->next)
        if (strcasecmp(h->name, name) == 0)
            return h->value;
    return NULL;
}

void keel_resp_body(keel_resp *resp, const void *data, size_t len)
{
    resp->kind = RESP_BUFFER;
    resp->use_buf = false;
    resp->data = data;
    resp->len = len;
}

keel_error *keel_resp_body_copy(keel_resp *resp, const void *data, size_t len)
{
    char *copy = keel_arena_alloc(&resp_owner(resp)->arena, len);
    if (!copy)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    memcpy(copy, data, len);
    keel_resp_body(resp, copy, len);
    return NULL;
}

keel_buf *keel_resp_buf(keel_resp *resp)
{
    resp->kind = RESP_BUFFER;
    resp->use_buf = true;
    return &resp->buf;
}

void keel_resp_stream(keel_resp *resp, uint64_t size, keel_stream_fn fn, void *cls,
                      void (*free_cls)(void *cls))
{
    if (resp->kind == RESP_STREAM && resp->stream_free)
        resp->stream_free(resp->stream_cls);
    resp->kind = RESP_STREAM;
    resp->stream = fn;
    resp->stream_cls = cls;
    resp->stream_free = free_cls;
    resp->stream_size = size;
}

/* Drops whatever the handler had put in the response. */
static void resp_clear(keel_resp *resp)
{
    if (resp->kind == RESP_STREAM && resp->stream_free)
        resp->stream_free(resp->stream_cls);
    resp->kind = RESP_NONE;
    resp->use_buf = false;
    resp->headers = NULL;
    resp->headers_tail = NULL;
    resp->stream = NULL;
    resp->stream_free = NULL;
    resp->buf.len = 0;
}

void keel__resp_set_error(keel_req *req, keel_error *err)
{
    keel_resp *resp = &req->resp;
    resp_clear(resp);
    resp->status = keel_error_http_status(err);
    req->error_code = keel_code_name(err->code);
    resp->content_type = "application/json";
    keel_buf *b = keel_resp_buf(resp);
    keel_buf_puts(b, "{\"code\":\"");
    keel_buf_puts(b, keel_code_name(err->code));
    keel_buf_puts(b, "\",\"message\":");
    keel__json_append_string(b, err->message, strlen(err->message));
    keel_buf_puts(b, ",\"details\":null}");
    if (err->cause || resp->status >= 500)
        keel_log(KEEL_LOG_ERROR, "request %s: %s: %s%s%s", req->id, keel_code_name(err->code),
                 err->message, err->cause ? ": " : "", err->cause ? err->cause : "");
    if (req->error != err)
        keel_error_free(err);
}

void keel_resp_error(keel_resp *resp, keel_error *err)
{
    keel__resp_set_error(resp_owner(resp), err);
}

/* A buffered body larger than this is handed to libmicrohttpd piece by
 * piece, so that the connection's watchdog sees how fast it is read. */
#define KEEL_WATCHED_BODY (64 * 1024)

static size_t resp_len(const keel_resp *resp)
{
    return resp->use_buf ? resp->buf.len : resp->len;
}

static ssize_t buffered_read(void *cls, uint64_t pos, char *out, size_t max)
{
    keel_req *req = cls;
    keel_resp *resp = &req->resp;
    const char *data = resp->use_buf ? resp->buf.data : resp->data;
    size_t len = resp_len(resp);
    if (pos >= len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = len - pos < max ? len - pos : max;
    memcpy(out, data + pos, n);
    if (req->wd)
        keel__watchdog_progress(req->wd, n);
    return (ssize_t)n;
}

/* Builds the libmicrohttpd response object for resp; NULL on exhaustion. */
static struct MHD_Response *resp_build(keel_resp *resp)
{
    keel_req *req = resp_owner(resp);
    if (resp->kind == RESP_STREAM)
        return keel__stream_response(req);
    const void *data = resp->use_buf ? resp->buf.data : resp->data;
    size_t len = resp_len(resp);
    if (resp->use_buf && resp->buf.failed)
        return NULL;
    if (len > KEEL_WATCHED_BODY && req->wd)
        return MHD_create_response_from_callback(len, KEEL_WATCHED_BODY, buffered_read, req, NULL);
    return MHD_create_response_from_buffer(len, (void *)(data ? data : ""), MHD_RESPMEM_PERSISTENT);
}

/* The 503 for an answer whose request does not fit the response budget. */
static keel_error *response_budget_used_up(size_t budget)
{
    return keel_error_cause(
        keel_error_new(KEEL_UNAVAILABLE, "server busy: too many answers waiting for slow clients, try again"),
        "the response budget of %zu bytes (KEEL_RESPONSE_BUDGET) is used up", budget);
}

/* Counts what req holds (its arena) against the response budget until it
 * is freed; false when it does not fit.  One client (an address, an IPv6
 * /64) may hold at most a quarter of the budget, so that a few addresses
 * reading slowly cannot take it all. */
static bool hold_response(keel_req *req)
{
    if (!req->app || !req->wd)
        return true; /* a detached request serves no client */
    size_t bytes = keel_arena_size(&req->arena), budget = req->app->cfg.response_budget;
    if (bytes == 0)
        return true; /* within its inline block: nothing to count, no shared counter touched */
    size_t used = atomic_load_explicit(&req->app->resp_bytes, memory_order_relaxed);
    do {
        if (bytes > budget || used > budget - bytes)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&req->app->resp_bytes, &used, used + bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    if (!keel__conn_limit_hold(req->app->conn_limit, keel__req_peer(req), bytes, budget / 4)) {
        atomic_fetch_sub_explicit(&req->app->resp_bytes, bytes, memory_order_relaxed);
        return false;
    }
    req->resp_held = bytes;
    return true;
}

enum MHD_Result keel__req_send(keel_req *req)
{
    keel_resp *resp = &req->resp;
    bool over_budget = !hold_response(req);
    if (over_budget) {
        keel_error_free(req->error);
        req->error = response_budget_used_up(req->app->cfg.response_budget);
        req->method_not_allowed = false;
        keel_error_free(keel_req_add_response_header(req, "Retry-After", "1"));
    }
    if (req->error) {
        keel__resp_set_error(req, req->error);
        if (req->method_not_allowed)
            keel_resp_header(resp, "Allow", req->match.allow);
    }
    keel__resp_add_extras(req);
    struct MHD_Response *r = resp_build(resp);
    if (!r) {
        keel__resp_set_error(req, keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory"));
        r = resp_build(resp);
        if (!r)
            return MHD_NO;
    }
    if (resp->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    MHD_add_response_header(r, "X-Request-Id", req->id);
    if (req->trace_hex[0])
        MHD_add_response_header(r, "X-Trace-Id", req->trace_hex);
    if (over_budget || atomic_load_explicit(&req->app->stopping, memory_order_relaxed))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close"); /* draining, or freeing memory */
    for (const keel_header *h = resp->headers; h; h = h->next)
        MHD_add_response_header(r, h->name, h->value);
    /* A small answer goes into the socket's buffer at once: only a large or
     * streamed one is watched while it is read. */
    if (req->wd)
        keel__watchdog_phase(req->wd, resp->kind == RESP_STREAM || resp_len(resp) > KEEL_WATCHED_BODY
                                          ? KEEL_WD_SENDING : KEEL_WD_OFF, 0);
    enum MHD_Result ret = MHD_queue_response(req->conn, resp->status, r);
    MHD_destroy_response(r);
    req->state = REQ_SENT;
    return ret;
}

/* tests/integration/test_service.c - a service that exercises what the example
 * app does not: every field type, every error code, slow (blocking) handlers,
 * streamed uploads and downloads, private endpoints, buffered raw bodies. */
#include <keel/keel.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- every field type ----------------------------------------------------- */

typedef struct { const char *title; int64_t qty; } line_item;
typedef struct { const char *city; double lat; } address;
typedef struct {
    const char *name;
    int64_t count;
    double ratio;
    bool active;
    address home;
    line_item *items;
    size_t items_count;
    const char **tags;
    size_t tags_count;
    int64_t limit;
    bool has_limit;
    const char *note;
    const char *trace;   /* header */
    const char *mode;    /* query */
} kitchen_sink;

static const keel_field line_item_fields[] = {
    KEEL_STRING(line_item, title),
    KEEL_INT64(line_item, qty),
    KEEL_END
};
static const keel_field address_fields[] = {
    KEEL_STRING(address, city),
    KEEL_DOUBLE(address, lat),
    KEEL_END
};
static const keel_field kitchen_sink_fields[] = {
    KEEL_STRING(kitchen_sink, name),
    KEEL_INT64(kitchen_sink, count),
    KEEL_DOUBLE(kitchen_sink, ratio),
    KEEL_BOOL(kitchen_sink, active),
    KEEL_OBJECT(kitchen_sink, home, address_fields),
    KEEL_ARRAY(kitchen_sink, items, items_count, line_item, line_item_fields),
    KEEL_ARRAY_STRING(kitchen_sink, tags, tags_count, KEEL_OPTIONAL),
    KEEL_INT64_OPT(kitchen_sink, limit, has_limit),
    KEEL_STRING(kitchen_sink, note, KEEL_OPTIONAL),
    KEEL_HEADER_STRING(kitchen_sink, trace, "X-Trace", KEEL_OPTIONAL),
    KEEL_STRING(kitchen_sink, mode, KEEL_IN_QUERY | KEEL_OPTIONAL),
    KEEL_END
};

/* POST /test/types: echoes the decoded struct. */
static keel_error *types(keel_req *req, const kitchen_sink *in, kitchen_sink *out)
{
    (void)req;
    *out = *in;
    return NULL;
}

/* ---- query-string decoding (GET takes plain fields from the query) ---------- */

typedef struct {
    const char *q;
    int64_t n;
    bool has_n;
    const char **tag;
    size_t tag_count;
    bool flag;
    bool has_flag;
} search_req;
typedef struct { const char *q; int64_t n; bool has_n; const char **tag; size_t tag_count; bool flag; bool has_flag; } search_resp;

static const keel_field search_req_fields[] = {
    KEEL_STRING(search_req, q),
    KEEL_INT64_OPT(search_req, n, has_n),
    KEEL_ARRAY_STRING(search_req, tag, tag_count, KEEL_OPTIONAL),
    KEEL_BOOL_OPT(search_req, flag, has_flag),
    KEEL_END
};
static const keel_field search_resp_fields[] = {
    KEEL_STRING(search_resp, q),
    KEEL_INT64_OPT(search_resp, n, has_n),
    KEEL_ARRAY_STRING(search_resp, tag, tag_count),
    KEEL_BOOL_OPT(search_resp, flag, has_flag),
    KEEL_END
};

static keel_error *search(keel_req *req, const search_req *in, search_resp *out)
{
    (void)req;
    memcpy(out, in, sizeof *out);
    return NULL;
}

/* ---- errors by name --------------------------------------------------------- */

typedef struct { const char *code; } code_req;
static const keel_field code_req_fields[] = {
    KEEL_STRING(code_req, code, KEEL_IN_PATH),
    KEEL_END
};

/* GET /test/error/:code answers with that error code. */
static keel_error *fail_with(keel_req *req, const code_req *in, keel_empty *out)
{
    (void)req;
    (void)out;
    for (int c = 1; c < KEEL_CODE_COUNT; c++)
        if (strcmp(keel_code_name((keel_code)c), in->code) == 0)
            return keel_error_cause(keel_error_new((keel_code)c, "failed with %s", in->code),
                                    "internal detail %s", "not for clients");
    return keel_error_new(KEEL_INVALID_ARGUMENT, "unknown code \"%s\"", in->code);
}

/* ---- a blocking handler --------------------------------------------------- */

typedef struct { int64_t ms; } slow_req;
typedef struct { int64_t slept_ms; } slow_resp;
static const keel_field slow_req_fields[] = {
    KEEL_INT64(slow_req, ms),
    KEEL_END
};
static const keel_field slow_resp_fields[] = {
    KEEL_INT64(slow_resp, slept_ms),
    KEEL_END
};

/* GET /test/slow?ms=N sleeps on a worker thread, like a slow query would. */
static keel_error *slow(keel_req *req, const slow_req *in, slow_resp *out)
{
    (void)req;
    if (in->ms < 0 || in->ms > 60000)
        return keel_error_new(KEEL_OUT_OF_RANGE, "ms must be from 0 to 60000");
    struct timespec ts = {(time_t)(in->ms / 1000), (long)(in->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    out->slept_ms = in->ms;
    return NULL;
}

/* ---- a private endpoint and a public caller ---------------------------------- */

typedef struct { int64_t value; } number;
static const keel_field number_fields[] = {
    KEEL_INT64(number, value),
    KEEL_END
};

static keel_error *secret_double(keel_req *req, const number *in, number *out)
{
    (void)req;
    out->value = in->value * 2;
    return NULL;
}

/* Private endpoints where public ones take the same path: POST /test/double
 * beside GET /test/double, and GET /test/route/hidden, which would win over
 * GET /test/route/:id.  From outside neither may show (test_http). */
static keel_error *secret_post(keel_req *req, const number *in, number *out)
{
    return secret_double(req, in, out);
}

static keel_error *secret_hidden(keel_req *req, const number *in, number *out)
{
    return secret_double(req, in, out);
}

/* GET /test/double?value=N calls the private endpoint in-process. */
static keel_error *public_double(keel_req *req, const number *in, number *out)
{
    return keel_call(req, "test", "secret_double", in, out);
}

/* ---- headers in and out ------------------------------------------------------ */

typedef struct { const char *token; } hdr_req;
typedef struct { const char *echo; const char *token; } hdr_resp;
static const keel_field hdr_req_fields[] = {
    KEEL_HEADER_STRING(hdr_req, token, "X-Token"),
    KEEL_END
};
static const keel_field hdr_resp_fields[] = {
    KEEL_HEADER_STRING(hdr_resp, echo, "X-Echo"),
    KEEL_STRING(hdr_resp, token),
    KEEL_END
};

static keel_error *headers(keel_req *req, const hdr_req *in, hdr_resp *out)
{
    (void)req;
    out->echo = in->token;
    out->token = in->token;
    return NULL;
}

/* ---- raw: streamed upload with a checksum ------------------------------------ */

typedef struct { uint64_t bytes; uint64_t sum; } upload_state;

static keel_error *upload_chunk(keel_req *req, const char *data, size_t len)
{
    upload_state **st = (upload_state **)keel_req_user(req);
    if (!*st && !(*st = calloc(1, sizeof **st)))
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < len; i++)
        (*st)->sum = (*st)->sum * 31 + (unsigned char)data[i];
    (*st)->bytes += len;
    return NULL;
}

static void upload_cleanup(keel_req *req)
{
    free(*keel_req_user(req));
}

static keel_error *upload_done(keel_req *req, keel_resp *resp)
{
    upload_state *st = *keel_req_user(req);
    keel_buf *b = keel_resp_buf(resp);
    keel_buf_printf(b, "{\"bytes\":%llu,\"sum\":%llu}", (unsigned long long)(st ? st->bytes : 0),
                    (unsigned long long)(st ? st->sum : 0));
    return keel_resp_header(resp, "Content-Type", "application/json");
}

/* ---- raw: streamed download -------------------------------------------------- */

static ssize_t fill_pattern(void *cls, uint64_t pos, char *buf, size_t max)
{
    uint64_t total = *(uint64_t *)cls;
    if (pos >= total)
        return KEEL_STREAM_END;
    size_t n = total - pos < max ? (size_t)(total - pos) : max;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (pos + i) % 26);
    return (ssize_t)n;
}

/* GET /test/download/:size streams size bytes of a b c ... */
static keel_error *download(keel_req *req, keel_resp *resp)
{
    char *end;
    unsigned long long size = strtoull(keel_req_param(req, "size"), &end, 10);
    if (*end)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "size must be a number");
    uint64_t *total = keel_arena_alloc(keel_req_arena(req), sizeof *total);
    if (!total)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    *total = size;
    keel_resp_stream(resp, size, fill_pattern, total, NULL);
    return NULL;
}

/* GET /test/big/:size answers size bytes of a b c ... built in the
 * request's arena (a large buffered answer). */
static keel_error *big(keel_req *req, keel_resp *resp)
{
    char *end;
    unsigned long long size = strtoull(keel_req_param(req, "size"), &end, 10);
    if (*end || size > (1ull << 30))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "size must be a number up to 2^30");
    char *data = keel_arena_alloc(keel_req_arena(req), (size_t)size);
    if (!data)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < size; i++)
        data[i] = (char)('a' + i % 26);
    keel_resp_body(resp, data, (size_t)size);
    return NULL;
}

/* ---- raw: buffered body echoed back, with a parameter report ----------------- */

static keel_error *echo_body(keel_req *req, keel_resp *resp)
{
    size_t len;
    const char *body = keel_req_body(req, &len);
    keel_resp_status(resp, 201);
    keel_resp_body(resp, body, len);
    return keel_resp_header(resp, "X-Body-Length", keel_arena_printf(keel_req_arena(req), "%zu", len));
}

/* Reports which route matched and its parameter, to test precedence via HTTP. */
static keel_error *which(keel_req *req, keel_resp *resp)
{
    const char *names[] = {"id", "rest", "other"};
    keel_buf *b = keel_resp_buf(resp);
    keel_buf_printf(b, "%s", keel_req_route(req));
    for (size_t i = 0; i < 3; i++) {
        const char *v = keel_req_param(req, names[i]);
        if (v)
            keel_buf_printf(b, " %s=%s", names[i], v);
    }
    return NULL;
}

/* Endpoint names are unique per service, so each route gets its own name. */
/* GET /test/hog?ms=N holds its I/O thread (the mistake KEEL_BLOCKING is
 * for): Keel names it in the log. */
static keel_error *hog(keel_req *req, const slow_req *in, slow_resp *out)
{
    return slow(req, in, out);
}

#define SAME_AS(name, fn) \
    static keel_error *name(keel_req *req, keel_resp *resp) { return fn(req, resp); }
SAME_AS(echo_body_put, echo_body)
SAME_AS(route_static, which)
SAME_AS(route_param, which)
SAME_AS(route_param_more, which)
SAME_AS(route_wildcard, which)
SAME_AS(route_fallback, which)
SAME_AS(route_static_gated, which)

/* Middleware order and early answers: "first" and "second" mark the
 * response in the order their befores and afters run; "gate" answers 403
 * before the handler of endpoints tagged "gated" when X-Let-In is absent,
 * and the afters still see that answer. */
static keel_error *mark_before(keel_req *req, const void *typed_in, void *state)
{
    (void)typed_in;
    return keel_req_add_response_header(req, "X-Before", state);
}

static void mark_after(keel_req *req, keel_resp *resp, void *state)
{
    (void)req;
    keel_error_free(keel_resp_header(resp, "X-After", state));
}

static keel_error *gate_before(keel_req *req, const void *typed_in, void *state)
{
    (void)typed_in;
    (void)state;
    if (keel_req_header(req, "X-Let-In"))
        return NULL;
    return keel_error_new(KEEL_PERMISSION_DENIED, "the gate middleware refused the request (send X-Let-In)");
}

/* The typed request reaches middleware decoded: "peek" copies the number's
 * value into a header. */
static keel_error *peek_before(keel_req *req, const void *typed_in, void *state)
{
    (void)state;
    if (!typed_in)
        return NULL;
    char v[32];
    snprintf(v, sizeof v, "%lld", (long long)((const number *)typed_in)->value);
    return keel_req_add_response_header(req, "X-Seen-N", v);
}

static const keel_middleware first = {.name = "first", .before = mark_before, .after = mark_after,
                                      .state = (void *)"first"};
static const keel_middleware second = {.name = "second", .before = mark_before, .after = mark_after,
                                       .state = (void *)"second"};
static const keel_middleware gate = {.name = "gate", .before = gate_before, .tags = KEEL_TAGS("gated")};
static const keel_middleware peek = {.name = "peek", .before = peek_before, .tags = KEEL_TAGS("peeked")};

const keel_service test_service = {
    .name = "test",
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("POST", "/test/types", types, kitchen_sink, kitchen_sink),
        KEEL_TYPED("GET", "/test/search", search, search_req, search_resp),
        KEEL_TYPED("GET", "/test/error/:code", fail_with, code_req, keel_empty),
        KEEL_TYPED("GET", "/test/slow", slow, slow_req, slow_resp, KEEL_BLOCKING),
        KEEL_TYPED("GET", "/test/hog", hog, slow_req, slow_resp),
        KEEL_TYPED("GET", "/test/secret", secret_double, number, number, KEEL_PRIVATE),
        KEEL_TYPED_TAGS("GET", "/test/double", public_double, number, number, KEEL_TAGS("peeked")),
        KEEL_TYPED("POST", "/test/double", secret_post, number, number, KEEL_PRIVATE),
        KEEL_TYPED("GET", "/test/route/hidden", secret_hidden, number, number, KEEL_PRIVATE),
        KEEL_RAW_TAGS("GET", "/test/gated", route_static_gated, KEEL_TAGS("gated")),
        KEEL_TYPED("GET", "/test/headers", headers, hdr_req, hdr_resp),
        KEEL_RAW_STREAM("POST", "/test/upload", upload_done, upload_chunk, upload_cleanup, 0),
        KEEL_RAW("GET", "/test/download/:size", download),
        KEEL_RAW("GET", "/test/big/:size", big),
        KEEL_RAW("POST", "/test/echo", echo_body),
        KEEL_RAW("PUT", "/test/echo", echo_body_put),
        KEEL_RAW("GET", "/test/route/static", route_static),
        KEEL_RAW("GET", "/test/route/:id", route_param),
        KEEL_RAW("GET", "/test/route/:id/more", route_param_more),
        KEEL_RAW("GET", "/test/route/files/*rest", route_wildcard),
        KEEL_RAW("GET", "/test/!other", route_fallback),
        KEEL_ENDPOINT_END
    },
    .calls = (const char *const[]){ "test.secret_double", NULL },
    .middleware = (const keel_middleware *const[]){ &first, &second, &gate, &peek, NULL },
};

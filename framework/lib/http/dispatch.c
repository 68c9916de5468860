/* dispatch.c - runs a matched endpoint: for typed endpoints decodes the request
 * struct from path, query, headers and JSON body, calls the handler and encodes
 * the response struct; for raw endpoints calls the handler with the request.
 * The result always ends up in req->resp (or req->error). */
#include "core.h"
#include "observe/trace.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

size_t keel__body_limit(const keel_app *app, const keel_endpoint *ep)
{
    if (ep->max_body)
        return ep->max_body;
    if ((ep->kind == KEEL_EP_RAW && ep->on_body) || ep->kind == KEEL_EP_MHD)
        return 0; /* streamed: the handler decides */
    return app->cfg.max_body;
}

/* Where a request field comes from when it has no explicit IN_ flag. */
static bool method_reads_query(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "DELETE") == 0;
}

struct query_array_ctx {
    const keel_field *field;
    void *out;
    keel_arena *arena;
    keel_error *err;
    bool seen;
};

static enum MHD_Result collect_query_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    (void)kind;
    struct query_array_ctx *ctx = cls;
    if (strcmp(key, ctx->field->name) != 0)
        return MHD_YES;
    ctx->seen = true;
    const char *v = value ? value : "";
    ctx->err = keel_schema_decode_text(ctx->field, v, strlen(v), ctx->out, ctx->arena);
    return ctx->err ? MHD_NO : MHD_YES;
}

static keel_error *missing_field(const keel_field *f, const char *where)
{
    return keel_error_new(KEEL_INVALID_ARGUMENT, "missing required %s \"%s\"", where, f->name);
}

/* Decodes one field that comes from the path, the query string or a header. */
static keel_error *decode_text_field(keel_req *req, const keel_field *f, unsigned source, void *in)
{
    const char *value;
    const char *where;
    if (source == KEEL_IN_PATH) {
        value = keel_req_param(req, f->name);
        where = "path parameter";
    } else if (source == KEEL_IN_HEADER) {
        value = keel_req_header(req, f->name);
        where = "header";
    } else if (f->type == KEEL_T_ARRAY) {
        struct query_array_ctx ctx = {f, in, &req->arena, NULL, false};
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_query_value, &ctx);
        if (ctx.err)
            return ctx.err;
        if (!ctx.seen && !(f->flags & KEEL_OPTIONAL))
            return missing_field(f, "query parameter");
        return NULL;
    } else {
        value = keel_req_query(req, f->name);
        where = "query parameter";
    }
    if (!value)
        return (f->flags & KEEL_OPTIONAL) ? NULL : missing_field(f, where);
    return keel_schema_decode_text(f, value, strlen(value), in, &req->arena);
}

/* True for a JSON media type: application/json or application/<anything>+json
 * (RFC 6839), in any case, with parameters after ';' of which a charset
 * must be UTF-8 (the only encoding JSON has, RFC 8259). */
static bool is_json_media_type(const char *ct)
{
    static const char app[] = "application/";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, app, sizeof app - 1) != 0)
        return false;
    const char *sub = ct + sizeof app - 1, *end = sub;
    while (*end && *end != ';' && *end != ' ' && *end != '\t')
        end++;
    size_t n = (size_t)(end - sub);
    if (!((n == 4 && strncasecmp(sub, "json", 4) == 0) ||
          (n > 5 && strncasecmp(end - 5, "+json", 5) == 0)))
        return false;
    for (const char *p = end; *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        if (*p++ != ';')
            return false;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *name = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        if (*p != '=')
            return false;
        size_t name_len = (size_t)(p - name);
        const char *value = ++p;
        bool quoted = *value == '"';
        if (quoted)
            p = strchr(value + 1, '"');
        else
            while (*p && *p != ';' && *p != ' ' && *p != '\t')
                p++;
        if (!p)
            return false;
        if (quoted)
            value++;
        size_t value_len = (size_t)(p - value);
        if (quoted)
            p++;
        if (name_len == 7 && strncasecmp(name, "charset", 7) == 0 &&
            !((value_len == 5 && strncasecmp(value, "utf-8", 5) == 0) ||
              (value_len == 4 && strncasecmp(value, "utf8", 4) == 0)))
            return false;
    }
    return true;
}

/* A typed endpoint reads only JSON: a body of another media type, or one
 * without a Content-Type, is refused with 415 before it is parsed.  Beyond
 * saying what the client got wrong, this closes a hole: a form or
 * text/plain POST is a "simple" request that a page on any site can make
 * without a CORS preflight, with the browser's cookies; JSON needs the
 * preflight, which CORS answers. */
static keel_error *check_media_type(keel_req *req, bool body_fields)
{
    size_t len;
    keel_req_body(req, &len);
    const char *ct = req->conn ? keel_req_header(req, "Content-Type") : NULL;
    if (!req->conn || (!len && !(body_fields && ct)) || (ct && is_json_media_type(ct)))
        return NULL;
    return keel_error_status(
        keel_error_new(KEEL_INVALID_ARGUMENT, "unsupported media type: %s; this endpoint reads a JSON body "
                       "(Content-Type: application/json)", ct ? "the body is not JSON" : "a body without a Content-Type"),
        415);
}

static keel_error *decode_typed_request(keel_req *req, const keel_endpoint *ep, void *in)
{
    bool query_default = method_reads_query(req->method);
    bool body_fields = false;
    for (const keel_field *f = ep->req_fields; f->type != KEEL_T_END; f++) {
        unsigned source = f->flags & (KEEL_IN_PATH | KEEL_IN_QUERY | KEEL_IN_HEADER);
        if (!source && query_default)
            source = KEEL_IN_QUERY;
        if (!source) {
            body_fields = true;
            continue;
        }
        keel_error *err = decode_text_field(req, f, source, in);
        if (err)
            return err;
    }
    keel_error *err = check_media_type(req, body_fields);
    if (err || !body_fields)
        return err;
    size_t len;
    const char *body = keel_req_body(req, &len);
    json_t *obj;
    err = keel_schema_parse_json(body, len, &obj);
    if (err)
        return err;
    err = keel_schema_decode(ep->req_fields, obj, in, &req->arena, true);
    json_decref(obj);
    return err;
}

/* Response fields marked IN_HEADER become response headers. */
static keel_error *encode_response_headers(keel_req *req, const keel_field *fields, const void *out)
{
    for (const keel_field *f = fields; f->type != KEEL_T_END; f++) {
        if (!(f->flags & KEEL_IN_HEADER) || f->type != KEEL_T_STRING)
            continue;
        const char *value = *(const char *const *)((const char *)out + f->offset);
        if (!value)
            continue;
        keel_error *err = keel_resp_header(&req->resp, f->name, value);
        if (err)
            return err;
    }
    return NULL;
}

static keel_error *run_typed(keel_req *req, const keel_endpoint *ep)
{
    void *in = keel_arena_calloc(&req->arena, 1, ep->req_size);
    void *out = keel_arena_calloc(&req->arena, 1, ep->resp_size);
    if (!in || !out)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_error *err = decode_typed_request(req, ep, in);
    if (!err)
        err = keel__middleware_before(req, in, KEEL__MW_POST_AUTH);
    if (err)
        return err;
    err = ep->typed(req, in, out);
    if (err)
        return err;
    err = encode_response_headers(req, ep->resp_fields, out);
    if (err)
        return err;
    keel_resp *resp = &req->resp;
    resp->content_type = "application/json";
    keel_schema_encode(ep->resp_fields, out, keel_resp_buf(resp));
    if (resp->buf.failed)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    return NULL;
}

static keel_error *run_raw(keel_req *req, const keel_endpoint *ep)
{
    keel_error *err = keel__middleware_before(req, NULL, KEEL__MW_POST_AUTH);
    return err ? err : ep->raw(req, &req->resp);
}

/* The auth handler runs once, like any handler, after the befores that run
 * ahead of it (a rate limit by IP); a KEEL_AUTH endpoint without auth data
 * is refused before anything else runs. */
static keel_error *authenticate(keel_req *req, const keel_endpoint *ep)
{
    keel_error *err = keel__auth_resolve(req);
    if (!err && (ep->flags & KEEL_AUTH) && !req->auth)
        err = keel_error_new(KEEL_UNAUTHENTICATED, "this endpoint needs credentials (Authorization: Bearer <token>)");
    return err;
}

void keel__dispatch(keel_req *req)
{
    const keel_endpoint *ep = req->route->ep;
    keel_error *err = keel__middleware_before(req, NULL, KEEL__MW_PRE_AUTH);
    if (!err)
        err = authenticate(req, ep);
    if (!err)
        err = ep->kind == KEEL_EP_TYPED ? run_typed(req, ep) : run_raw(req, ep);
    if (err)
        keel__resp_set_error(req, err);
    keel__middleware_after(req);
}

keel_error *keel_call(keel_req *req, const char *service, const char *endpoint, const void *in,
                      void *out)
{
    const keel_route *route = keel__find_route(req->app, service, endpoint);
    if (!route || route->ep->kind != KEEL_EP_TYPED)
        return keel_error_new(KEEL_NOT_FOUND, "no typed endpoint %s.%s", service, endpoint);
    /* The caller's auth data goes with the call (same request). */
    keel_error *err = keel__auth_resolve(req);
    if (!err && (route->ep->flags & KEEL_AUTH) && !req->auth)
        err = keel_error_new(KEEL_UNAUTHENTICATED, "%s.%s needs auth data, and this request has none", service,
                             endpoint);
    if (err)
        return err;
    keel_span *span = NULL;
    if (req->trace) {
        char name[300];
        snprintf(name, sizeof name, "call %s", route->label);
        span = keel__span_start(req, name, KEEL_SPAN_INTERNAL);
        keel__span_attr_str(span, "keel.service", service);
        keel__span_attr_str(span, "keel.endpoint", endpoint);
    }
    err = route->ep->typed(req, in, out);
    keel__span_end(req, span, err);
    return err;
}

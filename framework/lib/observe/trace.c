/* trace.c - the trace of each request: W3C trace context in (traceparent,
 * tracestate) and the sampling decision when it starts (OpenTelemetry's
 * samplers), the server span,
 * and the hand-over of the finished trace to observe.c (exporter,
 * dashboard); start-up work (migrations) as traces of its own.
 *
 * A request that is not recorded costs a header lookup and a random id: its
 * span calls get NULL and return at once. */
#include "core.h"
#include "observe/observe.h"
#include "observe/trace.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- sampling ---------------------------------------------------------------------- */

/* TraceIdRatioBased: the id's low 64 bits, read as a number, below ratio
 * times 2^64 (the same ids are kept by every service with the same ratio). */
static bool ratio_keeps(double ratio, const uint8_t id[16])
{
    if (ratio >= 1.0)
        return true;
    if (ratio <= 0.0)
        return false;
    uint64_t low = 0;
    for (int i = 8; i < 16; i++)
        low = low << 8 | id[i];
    return low < (uint64_t)ldexp(ratio, 64);
}

bool keel__trace_sampled(keel_sampler sampler, double ratio, const uint8_t id[16], bool has_parent,
                         bool parent_sampled)
{
    switch (sampler) {
    case KEEL_SAMPLER_RATIO: return ratio_keeps(ratio, id);
    case KEEL_SAMPLER_ALWAYS_ON: return true;
    case KEEL_SAMPLER_ALWAYS_OFF: return false;
    case KEEL_SAMPLER_PARENTBASED_ON: return has_parent ? parent_sampled : true;
    case KEEL_SAMPLER_PARENTBASED_OFF: return has_parent ? parent_sampled : false;
    case KEEL_SAMPLER_PARENTBASED_RATIO: break;
    }
    return has_parent ? parent_sampled : ratio_keeps(ratio, id);
}

/* ---- the server span --------------------------------------------------------------- */

void keel__trace_request_begin(keel_req *req)
{
    keel_observe *obs = req->app->obs;
    uint8_t id[16], parent[8], flags = 0;
    bool remote = false;
    const char *tp = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "traceparent");
    if (tp && keel__traceparent_parse(tp, id, parent, &flags))
        remote = true;
    else
        keel__random_bytes(id, sizeof id);
    keel__hex(id, 16, req->trace_hex);
    if (!obs || !keel__observe_tracing(obs) || (req->route && req->route->service->name[0] == '_'))
        return; /* the framework's own pages (metrics scrapes) are not traced */
    if (!keel__observe_sample(obs, id, remote, flags & 1))
        return;
    keel_trace *t = keel__trace_new(obs, id, (uint8_t)(flags | 1));
    if (!t)
        return;
    if (remote) {
        memcpy(t->remote_parent, parent, 8);
        t->has_remote_parent = true;
        const char *ts = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "tracestate");
        if (ts && keel__tracestate_acceptable(ts))
            t->tracestate = keel_arena_strdup(&t->arena, ts);
    }
    t->sql_parameters = keel__observe_sql_parameters(obs);
    const char *name = req->route ? req->route->ep->path : "unrouted";
    char label[300];
    snprintf(label, sizeof label, "%s %s", req->method, name);
    keel_span *root = keel__span_open(t, NULL, label, KEEL_SPAN_SERVER, keel__now_unix_ns());
    if (!root) {
        keel__trace_unref(t);
        return;
    }
    req->trace = t;
    keel__span_attr_str(root, "http.request.method", req->method);
    keel__span_attr_str(root, "url.path", req->path ? req->path : req->url);
    keel__span_attr_str(root, "keel.request_id", req->id);
    if (req->route) {
        keel__span_attr_str(root, "http.route", req->route->ep->path);
        keel__span_attr_str(root, "keel.service", req->route->service->name);
        keel__span_attr_str(root, "keel.endpoint", req->route->ep->name);
        if (req->route->ep->kind == KEEL_EP_MHD) /* a mounted legacy handler: one opaque span */
            keel__span_attr_bool(root, "keel.opaque", true);
    }
}

void keel__trace_request_end(keel_req *req, unsigned status)
{
    keel_trace *t = req->trace;
    if (!t)
        return;
    req->trace = NULL;
    keel_span *root = t->spans;
    keel__span_attr_int(root, "http.response.status_code", status);
    if (req->error_code)
        keel__span_attr_str(root, "keel.error_code", req->error_code);
    if (status >= 500) { /* server spans: 4xx is the client's error, not ours */
        root->status = KEEL_STATUS_ERROR;
        root->status_message = req->error_code ? req->error_code : "server error";
    }
    uint64_t end = keel__now_unix_ns();
    for (keel_span *s = t->spans; s; s = s->next)
        if (!s->end_ns) /* left open by an early return: ends with the request */
            keel__span_close(s, end);
    keel__observe_trace_done(t->obs, t);
}

void keel__trace_detached_begin(keel_app *app, keel_req *req, const char *name)
{
    keel_observe *obs = app->obs;
    uint8_t id[16];
    keel__random_bytes(id, sizeof id);
    keel__hex(id, 16, req->trace_hex);
    if (!obs || !keel__observe_tracing(obs) || !keel__observe_sample(obs, id, false, false))
        return;
    keel_trace *t = keel__trace_new(obs, id, 1);
    if (!t)
        return;
    if (!keel__span_open(t, NULL, name, KEEL_SPAN_INTERNAL, keel__now_unix_ns())) {
        keel__trace_unref(t);
        return;
    }
    req->trace = t;
}

void keel__trace_detached_end(keel_req *req, const keel_error *err)
{
    keel_trace *t = req->trace;
    if (!t)
        return;
    req->trace = NULL;
    keel__span_end(req, t->spans, err);
    uint64_t end = keel__now_unix_ns();
    for (keel_span *s = t->spans; s; s = s->next)
        if (!s->end_ns)
            keel__span_close(s, end);
    keel__observe_trace_done(t->obs, t);
}


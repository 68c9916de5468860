/* trace.c - the trace of each request: W3C trace context in and out, the
 * sampling decision, spans recorded into a trace that owns its memory, and
 * the hand-over of a finished trace to observe.c (exporter, dashboard).
 *
 * A request that is not recorded costs a header lookup and a random id: its
 * span calls get NULL and return at once. */
#include "core.h"
#include "observe/observe.h"
#include "observe/trace.h"
#include "format.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- ids ------------------------------------------------------------------------- */

/* splitmix64 per thread, seeded from the kernel once: ids must not repeat
 * across processes and threads, and need no cryptographic strength. */
static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
        }
        rng_seeded = true;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void random_bytes(uint8_t *out, size_t n)
{
    while (n) {
        uint64_t r = rng_next();
        size_t k = n < 8 ? n : 8;
        memcpy(out, &r, k);
        out += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

void keel__hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* W3C: lower case only */
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* version "-" trace-id "-" parent-id "-" flags (W3C Trace Context, level 1).
 * Version 00 is exactly 55 characters; a later version may append fields
 * after a "-", and ff is invalid. */
bool keel__traceparent_parse(const char *v, uint8_t trace_id[16], uint8_t parent_id[8], uint8_t *flags)
{
    size_t len = strlen(v);
    uint8_t version;
    if (len < 55 || !unhex(v, &version, 1) || version == 0xff || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if ((version == 0 && len != 55) || (len > 55 && v[55] != '-'))
        return false;
    if (!unhex(v + 3, trace_id, 16) || !unhex(v + 36, parent_id, 8) || !unhex(v + 53, flags, 1))
        return false;
    return !all_zero(trace_id, 16) && !all_zero(parent_id, 8);
}

/* tracestate is passed on only when it is short printable text. */
static bool tracestate_acceptable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f || n >= 512)
            return false;
    return n > 0;
}

/* ---- the current request of a thread ----------------------------------------------- */

static _Thread_local keel_req *current_req;

keel_req *keel__trace_current_req(void)
{
    return current_req;
}

keel_req *keel__trace_set_current_req(keel_req *req)
{
    keel_req *before = current_req;
    current_req = req;
    return before;
}

/* ---- traces and spans -------------------------------------------------------------- */

static uint64_t now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static keel_trace *trace_new(keel_observe *obs, const uint8_t id[16], uint8_t flags)
{
    keel_trace *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, offsetof(keel_trace, inline_mem));
    keel_arena_init(&t->arena, t->inline_mem, sizeof t->inline_mem);
    atomic_init(&t->refs, 1);
    memcpy(t->id, id, 16);
    t->flags = flags;
    t->obs = obs;
    t->tail = &t->spans;
    return t;
}

void keel__trace_unref(keel_trace *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        keel_arena_release(&t->arena);
        free(t);
    }
}

static keel_span *span_open(keel_trace *t, keel_span *parent, const char *name, keel_span_kind kind, uint64_t start)
{
    keel_span *s = keel_arena_calloc(&t->arena, 1, sizeof *s);
    if (!s)
        return NULL;
    s->name = keel_arena_strdup(&t->arena, name);
    if (!s->name)
        return NULL;
    random_bytes(s->id, sizeof s->id);
    s->trace = t;
    s->parent = parent;
    s->kind = kind;
    s->start_ns = start;
    s->attrs_tail = &s->attrs;
    *t->tail = s;
    t->tail = &s->next;
    t->nspans++;
    t->current = s;
    return s;
}

/* The trace a span belongs to: spans are only made in their trace's arena,
 * and the request points at its trace. */
static keel_trace *trace_of(const keel_req *req)
{
    return req ? req->trace : NULL;
}

keel_span *keel__span_start(keel_req *req, const char *name, keel_span_kind kind)
{
    keel_trace *t = trace_of(req);
    return t ? span_open(t, t->current, name, kind, now_unix_ns()) : NULL;
}

static keel_attr *attr_add(keel_span *s, const char *key, keel_attr_type type)
{
    if (!s)
        return NULL;
    keel_attr *a = keel_arena_alloc(&s->trace->arena, sizeof *a);
    if (!a)
        return NULL;
    a->next = NULL;
    a->key = key;
    a->type = type;
    *s->attrs_tail = a;
    s->attrs_tail = &a->next;
    s->nattrs++;
    return a;
}

void keel__span_attr_strn(keel_span *s, const char *key, const char *value, size_t len)
{
    if (!s || !value)
        return;
    char *copy = keel_arena_strndup(&s->trace->arena, value, len);
    keel_attr *a = copy ? attr_add(s, key, KEEL_ATTR_STR) : NULL;
    if (a)
        a->v.s = copy;
}

void keel__span_attr_str(keel_span *s, const char *key, const char *value)
{
    if (s && value)
        keel__span_attr_strn(s, key, value, strlen(value));
}

void keel__span_attr_int(keel_span *s, const char *key, int64_t value)
{
    keel_attr *a = attr_add(s, key, KEEL_ATTR_INT);
    if (a)
        a->v.i = value;
}

void keel__span_attr_bool(keel_span *s, const char *key, bool value)
{
    keel_attr *a = attr_add(s, key, KEEL_ATTR_BOOL);
    if (a)
        a->v.b = value;
}

static void span_close(keel_span *s, uint64_t end)
{
    s->end_ns = end > s->start_ns ? end : s->start_ns;
    if (s->trace->current == s)
        s->trace->current = s->parent;
}

void keel__span_end(keel_req *req, keel_span *s, const keel_error *err)
{
    (void)req;
    if (!s || s->end_ns)
        return;
    if (err) {
        s->status = KEEL_STATUS_ERROR;
        s->status_message = keel_code_name(err->code);
        keel__span_attr_str(s, "keel.error_code", keel_code_name(err->code));
    }
    span_close(s, now_unix_ns());
}

bool keel__span_sql_parameters(const keel_req *req)
{
    keel_trace *t = trace_of(req);
    return t && t->sql_parameters;
}

const char *keel__trace_id_hex(const keel_req *req)
{
    return req->trace_hex[0] ? req->trace_hex : NULL;
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
        random_bytes(id, sizeof id);
    keel__hex(id, 16, req->trace_hex);
    if (!obs || !keel__observe_tracing(obs) || (req->route && req->route->service->name[0] == '_'))
        return; /* the framework's own pages (metrics scrapes) are not traced */
    bool sampled = remote ? (flags & 1) : keel__observe_sample(obs, id);
    if (!sampled)
        return;
    keel_trace *t = trace_new(obs, id, (uint8_t)(flags | 1));
    if (!t)
        return;
    if (remote) {
        memcpy(t->remote_parent, parent, 8);
        t->has_remote_parent = true;
        const char *ts = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "tracestate");
        if (ts && tracestate_acceptable(ts))
            t->tracestate = keel_arena_strdup(&t->arena, ts);
    }
    t->sql_parameters = keel__observe_sql_parameters(obs);
    const char *name = req->route ? req->route->ep->path : "unrouted";
    char label[300];
    snprintf(label, sizeof label, "%s %s", req->method, name);
    keel_span *root = span_open(t, NULL, label, KEEL_SPAN_SERVER, now_unix_ns());
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
    uint64_t end = now_unix_ns();
    for (keel_span *s = t->spans; s; s = s->next)
        if (!s->end_ns) /* left open by an early return: ends with the request */
            span_close(s, end);
    keel__observe_trace_done(t->obs, t);
}

void keel__trace_detached_begin(keel_app *app, keel_req *req, const char *name)
{
    keel_observe *obs = app->obs;
    uint8_t id[16];
    random_bytes(id, sizeof id);
    keel__hex(id, 16, req->trace_hex);
    if (!obs || !keel__observe_tracing(obs) || !keel__observe_sample(obs, id))
        return;
    keel_trace *t = trace_new(obs, id, 1);
    if (!t)
        return;
    if (!span_open(t, NULL, name, KEEL_SPAN_INTERNAL, now_unix_ns())) {
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
    uint64_t end = now_unix_ns();
    for (keel_span *s = t->spans; s; s = s->next)
        if (!s->end_ns)
            span_close(s, end);
    keel__observe_trace_done(t->obs, t);
}

/* ---- configuration ----------------------------------------------------------------- */

static keel_error *config_problem(const char *path, const char *key, const char *what)
{
    return keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: tracing%s%s: %s", path, key ? "." : "",
                          key ? key : "", what);
}

static keel_error *endpoint_check(const char *url, const char *where)
{
    if (strncmp(url, "http://", 7) != 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "%s: the OTLP endpoint must be an http:// URL (send to a local collector, which "
                              "can forward over TLS)", where);
    return NULL;
}

keel_error *keel__trace_config_from_json(const json_t *obj, const char *path, keel_trace_config *out)
{
    keel_trace_config cfg = {NULL, NULL, 1.0, false, 8192, 1000};
    if (obj) {
        if (!json_is_object(obj))
            return config_problem(path, NULL, "expected an object");
        static const char *const keys[] = {"otlp_endpoint", "service_name", "sample_ratio", "sql_parameters",
                                           "queue_spans", "batch_ms", NULL};
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)obj, key, v) {
            size_t i = 0;
            while (keys[i] && strcmp(keys[i], key) != 0)
                i++;
            if (!keys[i])
                return config_problem(path, NULL, "unknown key (expected \"otlp_endpoint\", \"service_name\", "
                                      "\"sample_ratio\", \"sql_parameters\", \"queue_spans\", \"batch_ms\")");
        }
        json_t *ep = json_object_get(obj, "otlp_endpoint");
        json_t *sn = json_object_get(obj, "service_name");
        json_t *ratio = json_object_get(obj, "sample_ratio");
        json_t *params = json_object_get(obj, "sql_parameters");
        json_t *queue = json_object_get(obj, "queue_spans");
        json_t *batch = json_object_get(obj, "batch_ms");
        if (ep && !json_is_string(ep))
            return config_problem(path, "otlp_endpoint", "expected a string (http://host:port/v1/traces)");
        if (ep) {
            char where[300];
            snprintf(where, sizeof where, "infra config %s: tracing.otlp_endpoint", path);
            keel_error *err = endpoint_check(json_string_value(ep), where);
            if (err)
                return err;
        }
        if (sn && (!json_is_string(sn) || !*json_string_value(sn)))
            return config_problem(path, "service_name", "expected a non-empty string");
        if (ratio && (!json_is_number(ratio) || json_number_value(ratio) < 0 || json_number_value(ratio) > 1))
            return config_problem(path, "sample_ratio", "expected a number from 0 to 1");
        if (params && !json_is_boolean(params))
            return config_problem(path, "sql_parameters", "expected true or false");
        if (queue && (!json_is_integer(queue) || json_integer_value(queue) < 1 ||
                      json_integer_value(queue) > 1000000))
            return config_problem(path, "queue_spans", "expected an integer from 1 to 1000000");
        if (batch && (!json_is_integer(batch) || json_integer_value(batch) < 10 ||
                      json_integer_value(batch) > 60000))
            return config_problem(path, "batch_ms", "expected an integer from 10 to 60000");
        if (!out)
            return NULL;
        if (ratio)
            cfg.sample_ratio = json_number_value(ratio);
        if (params)
            cfg.sql_parameters = json_is_true(params);
        if (queue)
            cfg.queue_spans = (unsigned)json_integer_value(queue);
        if (batch)
            cfg.batch_ms = (unsigned)json_integer_value(batch);
        if ((ep && !(cfg.endpoint = strdup(json_string_value(ep)))) ||
            (sn && !(cfg.service_name = strdup(json_string_value(sn))))) {
            keel__trace_config_clear(&cfg);
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    if (out)
        *out = cfg;
    return NULL;
}

static keel_error *replace(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    free(*field);
    *field = copy;
    return NULL;
}

keel_error *keel__trace_config_env(keel_trace_config *cfg)
{
    keel_error *err = NULL;
    const char *traces = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (traces && *traces) {
        if (!(err = endpoint_check(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")))
            err = replace(&cfg->endpoint, traces);
    } else if (base && *base) {
        /* The base endpoint gets the signal's path (OTLP exporter spec). */
        size_t n = strlen(base);
        char *url = keel__format("%.*s/v1/traces", (int)(n && base[n - 1] == '/' ? n - 1 : n), base);
        if (!url)
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        if (!(err = endpoint_check(url, "OTEL_EXPORTER_OTLP_ENDPOINT")))
            err = replace(&cfg->endpoint, url);
        free(url);
    }
    if (err)
        return err;
    const char *name = getenv("OTEL_SERVICE_NAME");
    if (name && *name && (err = replace(&cfg->service_name, name)) != NULL)
        return err;
    const char *arg = getenv("OTEL_TRACES_SAMPLER_ARG");
    if (arg && *arg) {
        char *end;
        double r = strtod(arg, &end);
        if (*end || r < 0 || r > 1)
            return keel_error_new(KEEL_FAILED_PRECONDITION, "OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1");
        cfg->sample_ratio = r;
    }
    return NULL;
}

void keel__trace_config_clear(keel_trace_config *cfg)
{
    free(cfg->endpoint);
    free(cfg->service_name);
    cfg->endpoint = cfg->service_name = NULL;
}

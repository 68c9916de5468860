/* trace.h - private: W3C trace context and the spans of one trace
 * (observe/span.c, trace.c, trace_config.c).  Not installed.
 *
 * Every request has a trace id: the caller's (from `traceparent`) or a new
 * one; it goes back in X-Trace-Id and into the request's log line.  When
 * tracing is on and the request is sampled, its spans are recorded in a
 * keel_trace that the request owns until it ends, then hand it to the
 * exporter and the dashboard's list of recent traces (both counted
 * references).
 *
 * Span calls take NULL spans and do nothing with them, so instrumented code
 * reads the same whether or not its request is recorded:
 *
 *     keel_span *s = keel__span_start(req, "SELECT todo", KEEL_SPAN_CLIENT);
 *     keel__span_attr_str(s, "db.query.text", sql);
 *     ...
 *     keel__span_end(req, s, err);
 */
#ifndef KEEL_OBSERVE_TRACE_H
#define KEEL_OBSERVE_TRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/arena.h"
#include "keel/error.h"

typedef struct keel_req keel_req;
typedef struct keel_app keel_app;
struct json_t;

/* OTLP's Span.SpanKind values. */
typedef enum { KEEL_SPAN_INTERNAL = 1, KEEL_SPAN_SERVER = 2, KEEL_SPAN_CLIENT = 3 } keel_span_kind;
/* OTLP's Status.StatusCode values. */
typedef enum { KEEL_STATUS_UNSET = 0, KEEL_STATUS_OK = 1, KEEL_STATUS_ERROR = 2 } keel_span_status;

typedef enum { KEEL_ATTR_STR, KEEL_ATTR_INT, KEEL_ATTR_BOOL, KEEL_ATTR_DOUBLE } keel_attr_type;

typedef struct keel_attr {
    struct keel_attr *next;
    const char *key;          /* in the trace's arena */
    keel_attr_type type;
    union {
        const char *s;        /* in the trace's arena */
        int64_t i;
        bool b;
        double d;
    } v;
} keel_attr;

struct keel_trace;

typedef struct keel_span {
    struct keel_trace *trace; /* whose arena holds it */
    struct keel_span *next;   /* the trace's spans, in start order */
    struct keel_span *parent; /* NULL: the root (its parent may be remote) */
    uint8_t id[8];
    const char *name;
    keel_span_kind kind;
    keel_span_status status;
    const char *status_message;
    uint64_t start_ns, end_ns; /* Unix time; end 0 while open */
    keel_attr *attrs, **attrs_tail;
    size_t nattrs;
} keel_span;

typedef struct keel_trace {
    keel_arena arena;         /* owns the spans and their strings */
    atomic_int refs;
    struct keel_trace *next;  /* in the exporter's queue */
    struct keel_observe *obs; /* where it goes when finished */
    uint8_t id[16];
    uint8_t remote_parent[8]; /* the caller's span, when has_remote_parent */
    bool has_remote_parent;
    uint8_t flags;            /* W3C trace flags (01: sampled) */
    const char *tracestate;   /* the caller's, passed on; NULL: none */
    keel_span *spans, **tail;
    size_t nspans;
    keel_span *current;       /* where new spans attach */
    bool sql_parameters;      /* record statement parameters (off by default) */
    _Alignas(16) char inline_mem[1536];
} keel_trace;

/* Which traces are recorded, as OpenTelemetry's samplers decide
 * (OTEL_TRACES_SAMPLER's names): by the ratio of trace ids (TraceIdRatioBased),
 * always, never, and each of these for traces started here only while a
 * caller's traceparent decides for its own (ParentBased). */
typedef enum {
    KEEL_SAMPLER_PARENTBASED_RATIO,   /* "parentbased_traceidratio": the default */
    KEEL_SAMPLER_RATIO,               /* "traceidratio": the caller's flag is ignored */
    KEEL_SAMPLER_ALWAYS_ON,           /* "always_on" */
    KEEL_SAMPLER_ALWAYS_OFF,          /* "always_off" */
    KEEL_SAMPLER_PARENTBASED_ON,      /* "parentbased_always_on" */
    KEEL_SAMPLER_PARENTBASED_OFF,     /* "parentbased_always_off" */
} keel_sampler;

/* The sampler's name as written in the config (OTEL_TRACES_SAMPLER's). */
const char *keel__sampler_name(keel_sampler s);

/* Tracing settings: the infra config's "tracing" object, then OTEL_*
 * variables of the environment, which win. */
typedef struct keel_trace_config {
    char *endpoint;           /* OTLP/HTTP traces URL (http://host:port/v1/traces); NULL: no export */
    char *service_name;       /* the resource's service.name */
    keel_sampler sampler;
    double sample_ratio;      /* the ratio samplers' share of trace ids */
    bool sql_parameters;
    unsigned queue_spans;     /* spans waiting for export at most; more are dropped */
    size_t queue_bytes;       /* and the memory of the traces waiting or being sent */
    unsigned batch_ms;        /* how often the exporter sends */
    unsigned shutdown_ms;     /* how long stopping may spend sending what is left */
} keel_trace_config;

#define KEEL_TRACE_CONFIG_DEFAULTS \
    { .sampler = KEEL_SAMPLER_PARENTBASED_RATIO, .sample_ratio = 1.0, .queue_spans = 8192, \
      .queue_bytes = 16u << 20, .batch_ms = 1000, .shutdown_ms = 2000 }

/* Checks a "tracing" object (NULL: absent) of the infra config at path;
 * errors name the file and the key.  out may be NULL (check only); else
 * filled with the defaults and the file's values (caller frees with
 * keel__trace_config_clear). */
keel_error *keel__trace_config_from_json(const struct json_t *obj, const char *path, keel_trace_config *out);
/* Applies OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT
 * (+ "/v1/traces"), OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER and
 * OTEL_TRACES_SAMPLER_ARG (the ratio). */
keel_error *keel__trace_config_env(keel_trace_config *cfg);
void keel__trace_config_clear(keel_trace_config *cfg);

/* ---- per request ----------------------------------------------------------------- */

/* Reads traceparent/tracestate (or makes a new trace id), decides sampling,
 * and when the app records traces opens the server span.  Never fails: a
 * request that cannot be traced is served untraced. */
void keel__trace_request_begin(keel_req *req);
/* Closes the server span with the final status and hands the trace on. */
void keel__trace_request_end(keel_req *req, unsigned status);
/* A trace for work at start-up (migrations): a root span named name on a
 * detached request of app. */
void keel__trace_detached_begin(keel_app *app, keel_req *req, const char *name);
void keel__trace_detached_end(keel_req *req, const keel_error *err);

/* req's trace id as 32 lower-case hex digits, NUL-terminated, or NULL for a
 * request that has none (detached). */
const char *keel__trace_id_hex(const keel_req *req);

/* A new span under req's current span, which it becomes; NULL when req is
 * not recorded (or NULL). */
keel_span *keel__span_start(keel_req *req, const char *name, keel_span_kind kind);
/* Attribute values are copied; key must be a string literal. */
void keel__span_attr_str(keel_span *s, const char *key, const char *value);
void keel__span_attr_strn(keel_span *s, const char *key, const char *value, size_t len);
void keel__span_attr_int(keel_span *s, const char *key, int64_t value);
void keel__span_attr_bool(keel_span *s, const char *key, bool value);
/* Ends s (err: status error with its code, and keel.error_code); its
 * parent becomes current again. */
void keel__span_end(keel_req *req, keel_span *s, const keel_error *err);
/* True when statement parameters may be recorded on req's spans. */
bool keel__span_sql_parameters(const keel_req *req);

/* The request whose handler runs on this thread (set around coroutine
 * resumes and blocking jobs), for code that has no req at hand (keel_lazy,
 * webhook verification); NULL outside handlers. */
keel_req *keel__trace_current_req(void);
keel_req *keel__trace_set_current_req(keel_req *req);

/* Drops a reference; frees the trace with the last. */
void keel__trace_unref(keel_trace *t);

/* For trace.c: a new trace with one reference (NULL when memory is
 * exhausted); a span opened at start under parent, which becomes current;
 * a span closed at end (its parent becomes current). */
keel_trace *keel__trace_new(struct keel_observe *obs, const uint8_t id[16], uint8_t flags);
keel_span *keel__span_open(keel_trace *t, keel_span *parent, const char *name, keel_span_kind kind, uint64_t start);
void keel__span_close(keel_span *s, uint64_t end);
uint64_t keel__now_unix_ns(void);
/* n random bytes for ids (a per-thread generator seeded by the kernel). */
void keel__random_bytes(uint8_t *out, size_t n);
bool keel__tracestate_acceptable(const char *s);

/* The sampling decision for a trace with id: has_parent when a caller's
 * traceparent came with it, parent_sampled its sampled flag. */
bool keel__trace_sampled(keel_sampler sampler, double ratio, const uint8_t id[16], bool has_parent,
                         bool parent_sampled);

/* The memory a finished trace holds (itself and its arena's blocks). */
size_t keel__trace_memory(const keel_trace *t);

/* Hex of n bytes into out (2n+1 bytes). */
void keel__hex(const uint8_t *bytes, size_t n, char *out);

/* Parses a W3C traceparent header; false when invalid (then ignored). */
bool keel__traceparent_parse(const char *value, uint8_t trace_id[16], uint8_t parent_id[8], uint8_t *flags);

#endif

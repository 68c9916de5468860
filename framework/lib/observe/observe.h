/* observe.h - private: the app's observability state (observe/observe.c):
 * tracing settings, the OTLP exporter, the recent traces the dashboard
 * shows.  Not installed. */
#ifndef KEEL_OBSERVE_H
#define KEEL_OBSERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "keel/arena.h"
#include "keel/error.h"
#include "observe/trace.h"

typedef struct keel_app keel_app;
typedef struct keel_observe keel_observe;

/* Start-up, before the first request: tracing settings (the infra config's
 * "tracing", then OTEL_* variables), the exporter thread when an endpoint is
 * set, and the recent-trace list when the dashboard is on (dashboard true).
 * Fills app->obs. */
keel_error *keel__observe_start(keel_app *app, bool dashboard);
/* Sends what the exporter still holds (within tracing.shutdown_ms, at most
 * KEEL_SHUTDOWN_GRACE_MS), stops it and frees app->obs. */
void keel__observe_stop(keel_app *app);

/* True when requests may be recorded (an exporter or the dashboard). */
bool keel__observe_tracing(const keel_observe *obs);
/* The configured sampler's decision for a trace (keel__trace_sampled). */
bool keel__observe_sample(const keel_observe *obs, const uint8_t trace_id[16], bool has_parent, bool parent_sampled);
bool keel__observe_sql_parameters(const keel_observe *obs);
/* Takes the reference of a finished trace: to the exporter's queue (dropped
 * and counted when it is full) and the recent list. */
void keel__observe_trace_done(keel_observe *obs, keel_trace *t);

/* Counters for the metrics page. */
typedef struct keel_trace_stats {
    uint64_t exported;        /* spans the collector accepted */
    uint64_t dropped;         /* spans dropped: queue full (in spans or bytes) */
    uint64_t failed;          /* spans lost to failed exports */
} keel_trace_stats;
void keel__observe_trace_stats(const keel_observe *obs, keel_trace_stats *out);

/* The dashboard's view of recent traces, JSON into out: the list (newest
 * first), or one trace by its hex id (false when it is not kept). */
void keel__observe_recent_json(keel_observe *obs, keel_buf *out);
bool keel__observe_trace_json(keel_observe *obs, const char *hex_id, keel_buf *out);

/* ---- export.c ---------------------------------------------------------------------- */

typedef struct keel_exporter keel_exporter;
/* Starts the exporter thread for cfg->endpoint (which must be set). */
keel_error *keel__exporter_start(const keel_trace_config *cfg, keel_exporter **out);
/* Takes t's reference; never blocks on the network.  A trace over the
 * queue's bounds (cfg->queue_spans spans, cfg->queue_bytes of memory queued
 * or being sent) is dropped and its spans counted. */
void keel__exporter_push(keel_exporter *x, keel_trace *t);
void keel__exporter_stats(const keel_exporter *x, keel_trace_stats *out);
/* Sends what is queued, then stops and frees x, within cfg->shutdown_ms:
 * then the send in flight is abandoned (its spans count as failed). */
void keel__exporter_stop(keel_exporter *x);

/* ---- otlp.c ------------------------------------------------------------------------ */

/* An OTLP ExportTraceServiceRequest (protobuf) for n traces into out. */
void keel__otlp_encode(keel_buf *out, const char *service_name, keel_trace *const *traces, size_t n);

#endif

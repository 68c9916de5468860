/* metrics.h - private: what the app counts about itself, and the
 * framework's own routes under /__keel/ (observe/metrics.c): metrics,
 * healthz and readyz (health.c).  Not installed. */
#ifndef KEEL_OBSERVE_METRICS_H
#define KEEL_OBSERVE_METRICS_H

#include <stdint.h>
#include "keel/error.h"

typedef struct keel_app keel_app;
typedef struct keel_route keel_route;
typedef struct keel_metrics keel_metrics;

/* Counters for every route of app (and for requests no route took);
 * fills app->metrics. */
keel_error *keel__metrics_new(keel_app *app);
void keel__metrics_free(keel_app *app);

/* A request arrived / ended (route NULL: not routed).  Lock-free. */
void keel__metrics_request_start(keel_app *app);
void keel__metrics_request_end(keel_app *app, const keel_route *route, unsigned status, uint64_t duration_us);

/* A connection's watchdog closed it; reason: "headers", "body" or
 * "response".  Lock-free. */
void keel__metrics_connection_cut(keel_app *app, const char *reason);
/* The framework route for method and path under /__keel/, or NULL with
 * *status 404 (no such page) or 405 (another method). */
const keel_route *keel__framework_route(keel_app *app, const char *method, const char *path, unsigned *status);

#endif

/* keel/app.h - the application: configuration, the server's life cycle and
 * keel_main, the one-line main of a Keel program. */
#ifndef KEEL_APP_H
#define KEEL_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "error.h"
#include "service.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef struct keel_config {
    const char *host;            /* bind address; default "0.0.0.0" */
    unsigned port;               /* default 4000; 0 picks a free port */
    unsigned io_threads;         /* epoll threads; default: number of cores */
    unsigned workers;            /* threads for blocking handlers; default 16 */
    size_t max_body;             /* typed and buffered raw bodies; default 1 MiB */
    size_t body_budget;          /* request bodies held in memory at once, all
                                    requests together; default 256 MiB */
    unsigned max_conns_per_ip;   /* open connections from one client address;
                                    0: no limit; default 512 */
    size_t max_header;           /* request line + headers; default 32 KiB */
    unsigned conn_timeout_s;     /* idle connection timeout; default 30 */
    unsigned shutdown_grace_ms;  /* wait for in-flight requests; default 10000 */
    unsigned replica_check_ms;   /* how often each read replica is asked
                                    whether it answers and how far it lags;
                                    default 1000 */
    unsigned drain_ms;           /* keel_main, on SIGTERM or SIGINT: report not
                                    ready (/__keel/readyz 503) and keep serving
                                    this long before stopping, so that a load
                                    balancer takes the instance out first;
                                    default 0 */
    unsigned max_connections;    /* default 4096 */
    bool log_requests;           /* one JSON line per request; default true */
    int log_fd;                  /* default 2 (stderr) */
    unsigned header_timeout_ms;  /* a request's headers must be complete this long
                                    after its connection opened (or, on a kept-alive
                                    connection, after the idle timeout and this);
                                    trickling bytes does not extend it; default 20000 */
    unsigned min_rate;           /* bytes a second a body must arrive at and a
                                    response be read at, after rate_grace_ms: a
                                    slower connection is closed; 0: no minimum;
                                    default 1024 */
    unsigned rate_grace_ms;      /* default 20000 */
    size_t response_budget;      /* memory held by requests whose answers are
                                    being sent, all together (one client address:
                                    a quarter of it); an answer that does not fit
                                    is replaced by 503; default 256 MiB */
} keel_config;

/* Fills c with the defaults above. */
void keel_config_defaults(keel_config *c);

/* Overrides c from the environment: PORT, KEEL_HOST, KEEL_IO_THREADS,
 * KEEL_WORKERS, KEEL_MAX_BODY, KEEL_BODY_BUDGET, KEEL_MAX_CONNECTIONS,
 * KEEL_MAX_CONNECTIONS_PER_IP, KEEL_MAX_HEADER, KEEL_CONN_TIMEOUT,
 * KEEL_SHUTDOWN_GRACE_MS, KEEL_DRAIN_MS, KEEL_REPLICA_CHECK_MS, KEEL_LOG_REQUESTS
 * (0/1), KEEL_HEADER_TIMEOUT_MS, KEEL_MIN_RATE, KEEL_RATE_GRACE_MS,
 * KEEL_RESPONSE_BUDGET.  A malformed value gives
 * invalid_argument naming the variable. */
keel_error *keel_config_from_env(keel_config *c);

typedef struct keel_app keel_app;

/* The app's root folder, where migrations/, secrets/ and .keel/ live:
 * $KEEL_APP_ROOT, else the current folder (".").  Never NULL. */
const char *keel_app_root(void);

/* Builds the registry: checks every service, endpoint and field table and the
 * router (conflicts name both registrations).  Nothing is served yet.  The
 * services array (NULL-terminated) must outlive the app.  On success the caller
 * owns *out (keel_app_free). */
keel_error *keel_app_new(const keel_service *const *services, const keel_config *cfg,
                         keel_app **out);

/* Starts listening.  unavailable when the port cannot be bound. */
keel_error *keel_app_start(keel_app *app);

/* The port actually bound (useful with port 0). */
unsigned keel_app_port(const keel_app *app);

/* Marks the app as draining: from now on GET /__keel/readyz answers 503
 * ("draining") while every other request is served as before.  For a
 * shutdown behind a load balancer: drain, wait for the balancer to notice,
 * then keel_app_stop.  Safe from any thread. */
void keel_app_drain(keel_app *app);

/* Graceful stop: stops accepting, waits up to shutdown_grace_ms for in-flight
 * requests, then closes everything.  Safe to call once after start. */
void keel_app_stop(keel_app *app);

void keel_app_free(keel_app *app);

/* The app model, the complete description of the app for tools (the keel
 * command reads nothing else): {"keel_version", "services":[{"name",
 * "endpoints":[{"name","method","path","kind":"typed|raw|mounted",
 * "access":"public|private","blocking",("request","response")|"streams_body"}],
 * "databases":[{"name","declared","migrations"}], "external_databases":[{"name",
 * "password_secret"}], "secrets":[..], "calls":[{"service","endpoint"}]}]},
 * services in the order given, keys in a fixed order.  doc/app-model.schema.json
 * is its JSON Schema.  New reference. */
json_t *keel_app_model(const keel_app *app);

/* The whole life of a Keel program: parses the command line (--port N,
 * --app-model, --help), reads the environment, builds the app, serves until
 * SIGINT or SIGTERM, drains for cfg.drain_ms (a second signal cuts it short)
 * and shuts down gracefully.  Returns the exit status: 0 after
 * a clean shutdown, 1 when start-up failed (the reason is printed on stderr), 2
 * for a usage error. */
int keel_main(int argc, char **argv, const keel_service *const services[]);

#pragma GCC visibility pop

#endif

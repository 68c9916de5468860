/* main.c - keel_main: the whole life of a Keel program (command line, start,
 * serve until SIGINT/SIGTERM, graceful stop).  The only place in the library
 * that decides an exit status. */
#include "core.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: %s [--port N] [--app-model] [--help]\n"
    "  --port N      listen on port N (default: $PORT, else 4000)\n"
    "  --app-model   print the app model (services with their endpoints, schemas, databases,\n"
    "                secrets and calls) as JSON and exit\n"
    "environment: PORT KEEL_HOST KEEL_IO_THREADS KEEL_WORKERS KEEL_MAX_BODY KEEL_BODY_BUDGET\n"
    "             KEEL_MAX_HEADER KEEL_CONN_TIMEOUT KEEL_SHUTDOWN_GRACE_MS KEEL_DRAIN_MS\n"
    "             KEEL_REPLICA_CHECK_MS KEEL_MAX_CONNECTIONS KEEL_MAX_CONNECTIONS_PER_IP\n"
    "             KEEL_LOG_REQUESTS\n";

typedef struct {
    bool app_model;
    bool help;  /* --help: printed, nothing else to do */
    long port; /* -1: not given */
} main_args;

/* Parses argv; returns 0, or 2 after printing a usage error. */
static int parse_args(int argc, char **argv, main_args *a)
{
    a->app_model = false;
    a->help = false;
    a->port = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--app-model") == 0) {
            a->app_model = true;
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            a->port = strtol(argv[++i], &end, 10);
            if (*end || a->port < 0 || a->port > 65535) {
                fprintf(stderr, "%s: --port wants a number from 0 to 65535, not \"%s\"\n", argv[0], argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf(usage, argv[0]);
            a->help = true;
            return 0;
        } else {
            fprintf(stderr, "%s: unknown argument \"%s\"\n", argv[0], argv[i]);
            fprintf(stderr, usage, argv[0]);
            return 2;
        }
    }
    return 0;
}

static int print_model(const keel_app *app)
{
    json_t *model = keel_app_model(app);
    int rc = json_dumpf(model, stdout, JSON_INDENT(2)) == 0 ? 0 : 1;
    printf("\n");
    json_decref(model);
    return rc;
}

/* Prints a start-up failure on stderr with its cause: the operator reading
 * it has nothing else (PostgreSQL's SQLSTATE, detail and hint, why a
 * connection failed), and causes never hold secrets. */
static void print_failure(const char *what, const keel_error *err)
{
    fprintf(stderr, "keel: %s%s%s%s\n", what, err->message, err->cause ? ": " : "", err->cause ? err->cause : "");
}

/* Serves until SIGINT or SIGTERM, then drains for cfg.drain_ms (readyz
 * answers 503 while everything else is served) unless a second signal
 * comes first.  The signals are blocked in every thread (the mask is
 * inherited) and taken here synchronously with sigwait. */
static int serve(keel_app *app, const sigset_t *stop_signals)
{
    keel_error *err = keel_app_start(app);
    if (err) {
        print_failure("", err);
        keel_error_free(err);
        return 1;
    }
    keel_log(KEEL_LOG_INFO, "listening on http://%s:%u", app->cfg.host, keel_app_port(app));
    int sig = 0;
    sigwait(stop_signals, &sig);
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (app->cfg.drain_ms > 0) {
        keel_app_drain(app);
        keel_log(KEEL_LOG_INFO, "received %s, draining for %u ms: /__keel/readyz answers 503, requests are served",
                 name, app->cfg.drain_ms);
        struct timespec left = {(time_t)(app->cfg.drain_ms / 1000), (long)(app->cfg.drain_ms % 1000) * 1000000L};
        if (sigtimedwait(stop_signals, NULL, &left) > 0)
            keel_log(KEEL_LOG_INFO, "a second signal: draining cut short");
        keel_log(KEEL_LOG_INFO, "drained, shutting down");
    } else {
        keel_log(KEEL_LOG_INFO, "received %s, shutting down", name);
    }
    keel_app_stop(app);
    keel_log(KEEL_LOG_INFO, "stopped");
    return 0;
}

int keel_main(int argc, char **argv, const keel_service *const services[])
{
    main_args args;
    int rc = parse_args(argc, argv, &args);
    if (rc || args.help)
        return rc; /* the help was printed: done */
    keel_config cfg;
    keel_config_defaults(&cfg);
    keel_error *err = keel_config_from_env(&cfg);
    if (!err && args.port >= 0)
        cfg.port = (unsigned)args.port;
    keel_app *app = NULL;
    if (!err)
        err = keel_app_new(services, &cfg, &app);
    if (err) {
        print_failure("start-up failed: ", err);
        keel_error_free(err);
        return 1;
    }
    if (args.app_model) {
        rc = print_model(app);
        keel_app_free(app);
        return rc;
    }
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    keel__log_open(cfg.log_fd);
    rc = serve(app, &stop_signals);
    keel__log_close();
    keel_app_free(app);
    return rc;
}

/* core.h - private: the structures shared by the server core (registry,
 * request, dispatch, server, workers).  Not installed. */
#ifndef KEEL_CORE_H
#define KEEL_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <microhttpd.h>

#include "keel/keel.h"
#include "json_text.h"

typedef struct keel_workers keel_workers;
typedef struct keel_loop keel_loop;
typedef struct keel_coro keel_coro;

/* Work for the worker pool: run is called on a worker thread. */
typedef struct keel_job {
    void (*run)(struct keel_job *job);
    struct keel_job *next;
} keel_job;

/* One endpoint as registered: its service and its label for messages. */
typedef struct keel_route {
    const keel_service *service;
    const keel_endpoint *ep;
    char label[128];          /* "service.endpoint" */
    char method[32];          /* ep->method in upper case, as routed */
    atomic_bool warned_blocking; /* "held its thread" logged once */
    const keel_middleware **middleware; /* what runs around it, in order */
    size_t nmiddleware;
} keel_route;

struct keel_app {
    keel_config cfg;
    const keel_service *const *services;
    keel_router *router;
    keel_route *routes;       /* every endpoint, in registration order */
    size_t nroutes;
    keel_sqldb **dbs;         /* every declared database (not references) */
    const keel_service **db_owner; /* the service that declares dbs[i] */
    size_t ndbs;
    keel_loop **loops;        /* one per I/O thread, while started */
    unsigned nloops;
    keel_workers *workers;
    unsigned port;
    atomic_uint_fast64_t next_request;
    atomic_bool stopping;     /* set once by keel_app_stop */
    atomic_bool draining;     /* keel_app_drain: /__keel/readyz answers 503 */
    atomic_size_t body_bytes; /* request bodies held in memory: cfg.body_budget */
    atomic_size_t resp_bytes; /* memory of requests whose answers are being sent:
                                 cfg.response_budget */
    struct keel_conn_limit *conn_limit; /* per-client connections; NULL: no limit */
    const keel_auth_handler *auth; /* the app's auth handler; NULL: none */
    struct keel_trusted_proxies *trusted; /* KEEL_TRUSTED_PROXIES; NULL: none */
    struct keel_cors *cors;   /* the infra config's "cors"; NULL: no cross-origin access */
    const char **header_fields; /* every typed endpoint's request header fields
                                   (allowed in CORS preflights); NULL-terminated */
    char id_prefix[9];        /* random per process: request ids are prefix-counter */
    struct keel_observe *obs; /* tracing, its exporter, recent traces (observe/) */
    struct keel_metrics *metrics; /* counters for /__keel/metrics (observe/metrics.c) */
    struct keel_dashboard *dashboard; /* the local dashboard's server; NULL: off */
};

typedef enum {
    RESP_NONE = 0,  /* nothing set yet: empty body */
    RESP_BUFFER,    /* data/len, or buf when used */
    RESP_STREAM
} keel_resp_kind;

typedef struct keel_header {
    struct keel_header *next;
    const char *name;
    const char *value;
} keel_header;

struct keel_resp {
    unsigned status;
    keel_resp_kind kind;
    const void *data;
    size_t len;
    keel_buf buf;
    bool use_buf;
    keel_header *headers;     /* in the arena, in the order added */
    keel_header **headers_tail;
    const char *content_type; /* NULL: none added */
    keel_stream_fn stream;
    void *stream_cls;
    void (*stream_free)(void *);
    uint64_t stream_size;
};

typedef enum {
    REQ_HEADERS = 0,  /* first call seen */
    REQ_BODY,         /* receiving the body */
    REQ_QUEUED,       /* handed to a worker, connection suspended */
    REQ_RUNNING,      /* its coroutine is running or waiting */
    REQ_READY,        /* response built, waiting to be queued */
    REQ_SENT,         /* response queued */
    REQ_MOUNTED       /* handed to a mounted libmicrohttpd handler */
} keel_req_state;

struct keel_req {
    keel_app *app;
    keel_loop *loop;          /* the I/O thread that owns the connection */
    struct MHD_Connection *conn;
    const keel_route *route;  /* NULL when routing failed */
    keel_error *error;        /* the reply when set: routing, limits, handler */
    keel_req_state state;
    bool method_not_allowed;  /* answer 405 with Allow */
    bool linger;              /* answered before the body was read: see linger.c */
    const char *method;
    const char *url;          /* decoded by libmicrohttpd (what legacy code expects) */
    const char *path;         /* as received: what the router matches */
    const char *version;
    const char *id;
    struct timespec started;
    keel_route_match match;
    keel_arena arena;
    keel_buf body;            /* buffered body */
    size_t body_seen;         /* bytes received so far */
    size_t discarded;         /* bytes dropped since the answer was decided */
    size_t discard_max;       /* how much of that before closing instead */
    size_t body_held;         /* counted in app->body_bytes, given back at free */
    size_t resp_held;         /* counted in app->resp_bytes, given back at free */
    struct keel_watchdog *wd; /* the connection's deadlines (watchdog.c); NULL: none */
    size_t max_body;          /* 0: unlimited (streaming raw) */
    void *user;
    void *mounted_cls;        /* a mounted handler's own per-request pointer */
    keel_resp resp;
    keel_coro *coro;          /* while the handler runs as a coroutine */
    bool suspended;           /* the connection waits for the handler */
    struct keel_stream *stream_state; /* a streamed body being sent (stream.c) */
    keel_job job;             /* KEEL_BLOCKING: the handler as a worker job */
    const void *auth;         /* the auth data, once resolved; NULL: none */
    const char *auth_subject;
    bool auth_resolved;       /* the auth handler ran (or there was nothing to run) */
    bool in_auth;             /* the auth handler is running: its statements' parameters
                                 (the token) are never recorded */
    keel_header *extra_headers; /* keel_req_add_response_header: added to any response */
    keel_header **extra_tail;
    char client_ip[46];       /* "" until keel_req_client_ip computes it */
    struct keel_trace *trace; /* the spans being recorded; NULL: not recorded */
    const char *error_code;   /* the code of the error answered, for traces */
    char trace_hex[33];       /* the trace id ("" for detached requests) */
    char id_buf[40];
    _Alignas(16) char inline_mem[2048]; /* the arena's first block */
};

/* registry.c: service and database names: lower-case letters, digits and _,
 * starting with a letter, at most KEEL_NAME_MAX bytes (a database's roles
 * add "_admin", within PostgreSQL's 63). */
#define KEEL_NAME_MAX 48
bool keel__name_valid(const char *name);

/* secrets.c: every declared secret has a value; otherwise names each missing
 * one with the command that sets it.  keel_app_start calls it before opening
 * databases (not keel_app_new, so that --app-model works while a secret is
 * missing). */
keel_error *keel__secrets_check(keel_app *app);

/* secrets.c: true when the len bytes at v are the value of a secret (from
 * $KEEL_SECRET_<NAME> or the store): what a trace must never record. */
bool keel__secret_value(const char *v, size_t len);

/* request.c: the peer's address (what per-client limits key on), or NULL
 * (a detached request, a Unix socket's unknown peer). */
const struct sockaddr *keel__req_peer(const keel_req *req);

/* request.c */
/* A request context for work that is not an HTTP request (start-up tasks,
 * the CLI, tests): it has an arena and a request id, and owns connections
 * like a request does.  keel__req_detached_free releases them. */
keel_req *keel__req_detached_new(void);
void keel__req_detached_free(keel_req *req);
keel_req *keel__req_new(keel_app *app, struct MHD_Connection *conn, const char *url,
                        const char *method, const char *version);
void keel__req_free(keel_req *req);
/* Counts bytes more of req's body, kept in memory, against the budget all
 * requests share (cfg.body_budget); given back by keel__req_free.
 * unavailable (503) when it would be exceeded. */
keel_error *keel__req_hold_body(keel_req *req, size_t bytes);
/* unavailable (503) when bytes more would not fit the budget now; counts
 * nothing (a declared length is counted as it arrives, so a client that
 * declares much and sends nothing holds nothing). */
keel_error *keel__req_body_fits(const keel_req *req, size_t bytes);
/* Turns req->resp (or req->error) into a queued libmicrohttpd response. */
enum MHD_Result keel__req_send(keel_req *req);
/* Replaces the response with err in Keel's error shape; takes ownership. */
void keel__resp_set_error(keel_req *req, keel_error *err);
/* The value of the first header added to resp as name (case-insensitive),
 * or NULL. */
const char *keel__resp_header_get(const keel_resp *resp, const char *name);

/* extdb.c: an error with directions when the settings file or environment
 * overrides of external databases from before the infra config held them
 * are still there; NULL otherwise. */
keel_error *keel__extdb_check_legacy(void);

/* middleware.c: auth data, middleware, response headers added by
 * middleware, client addresses and CORS. */
/* Runs the auth handler once per request (token from the Authorization
 * header or the handler's cookie); an error only when the request must fail. */
keel_error *keel__auth_resolve(keel_req *req);
/* Runs the befores of req's route in order with typed_in; the first error
 * stops them.  Which ones: those that run ahead of the auth handler
 * (KEEL__MW_PRE_AUTH), the others (KEEL__MW_POST_AUTH), or all
 * (KEEL__MW_ALL: mounted handlers, which have no auth step). */
typedef enum { KEEL__MW_PRE_AUTH, KEEL__MW_POST_AUTH, KEEL__MW_ALL } keel_mw_phase;
keel_error *keel__middleware_before(keel_req *req, const void *typed_in, keel_mw_phase phase);
/* Runs every after() of req's route in reverse order (they see every answer). */
void keel__middleware_after(keel_req *req);
/* Fills every route's middleware list and app->auth; errors name the service. */
keel_error *keel__middleware_register(keel_app *app);
void keel__middleware_free(keel_app *app);
/* Start-up: KEEL_TRUSTED_PROXIES and the infra config's "cors". */
keel_error *keel__middleware_start(keel_app *app);
/* Adds req's extra headers and the CORS headers of an actual request to resp. */
void keel__resp_add_extras(keel_req *req);
/* An OPTIONS request with Origin and Access-Control-Request-Method: answers
 * it (req->resp filled, state REQ_READY) and returns true. */
bool keel__cors_preflight_answer(keel_req *req);

/* dispatch.c: runs the matched endpoint and leaves the response in req->resp. */
void keel__dispatch(keel_req *req);
/* Decides the body limit for req's endpoint. */
size_t keel__body_limit(const keel_app *app, const keel_endpoint *ep);

/* workers.c: a fixed pool of threads that run blocking handlers. */
keel_error *keel__workers_start(unsigned count, keel_workers **out);
/* Queues job; a worker calls job->run. */
void keel__workers_submit(keel_workers *w, keel_job *job);
/* Finishes queued jobs and joins the threads; frees w. */
void keel__workers_stop(keel_workers *w);

/* databases.c: the app's managed databases.  register: checks declarations
 * and resolves references (no I/O); open: reads the infra config, migrates,
 * creates the pools; close: frees the pools. */
keel_error *keel__databases_register(keel_app *app);
keel_error *keel__databases_open(keel_app *app);
void keel__databases_close(keel_app *app);
json_t *keel__databases_model(const keel_app *app, const keel_service *svc);
/* The folder of db's migrations (under KEEL_APP_ROOT unless absolute);
 * caller frees; NULL when memory is exhausted. */
char *keel__db_migrations_path(const keel_sqldb *db);

/* registry.c */
const keel_route *keel__find_route(const keel_app *app, const char *service, const char *name);

/* log.c */
void keel__log_open(int fd);
void keel__log_close(void);
void keel__log_request(const keel_req *req, unsigned status, int64_t duration_us);

#endif

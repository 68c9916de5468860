/* server.c - the HTTP server: libmicrohttpd's epoll thread pool, the access
 * handler that routes, enforces limits and buffers or streams bodies, hands
 * blocking handlers to the workers, and the graceful stop.
 *
 * libmicrohttpd calls the access handler once for the headers, once per body
 * chunk, and once more at the end (and again after a resume).  We never queue a
 * response on the first call unless the connection is to be closed anyway:
 * in 0.9.75 that would turn off keep-alive. */
#include "core.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-connection state: the request path exactly as the client sent it.
 * libmicrohttpd percent-decodes the URL in place before the access handler
 * sees it, which would let "%2F" or "%00" pass for structure; its unescape
 * callback runs for each query key and value first and for the path last, so
 * the last string it was given is the raw path.  The buffer is reused by every
 * request of a keep-alive connection. */
typedef struct keel_conn {
    char *raw;
    size_t len;
    size_t cap;
} keel_conn;

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(keel_conn));
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        keel_conn *kc = *socket_context;
        if (kc)
            free(kc->raw);
        free(kc);
        *socket_context = NULL;
    }
}

static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    keel_conn *kc = info ? info->socket_context : NULL;
    if (kc) {
        size_t n = strlen(s);
        if (n + 1 > kc->cap) {
            char *grown = realloc(kc->raw, n + 1);
            if (grown) {
                kc->raw = grown;
                kc->cap = n + 1;
            }
        }
        if (n + 1 <= kc->cap) {
            memcpy(kc->raw, s, n + 1);
            kc->len = n;
        } else {
            kc->len = 0;
        }
    }
    return MHD_http_unescape(s);
}

/* The raw path of the request being started on conn, copied into the arena. */
static const char *raw_path(keel_req *req)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    keel_conn *kc = info ? info->socket_context : NULL;
    if (!kc || !kc->raw)
        return NULL;
    return keel_arena_strndup(&req->arena, kc->raw, kc->len);
}

/* Routes req and records the outcome: a route, or the error to answer with. */
static void route_request(keel_req *req)
{
    keel_app *app = req->app;
    const char *raw = raw_path(req);
    if (!raw) {
        req->error = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    req->path = raw;
    size_t url_len = strlen(raw);
    size_t scratch_len = url_len + 1 + KEEL_MAX_PARAMS;
    char *scratch = keel_arena_alloc(&req->arena, scratch_len);
    if (!scratch) {
        req->error = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    keel_route_result r = keel_router_lookup(app->router, req->method, req->path, scratch,
                                             scratch_len, &req->match);
    const keel_route *route = r == KEEL_ROUTE_FOUND ? req->match.target : NULL;
    if (route && (route->ep->flags & KEEL_PRIVATE))
        r = KEEL_ROUTE_NOT_FOUND; /* private endpoints do not exist from outside */
    switch (r) {
    case KEEL_ROUTE_FOUND:
        req->route = route;
        req->max_body = keel__body_limit(app, route->ep);
        return;
    case KEEL_ROUTE_METHOD_NOT_ALLOWED:
        req->error = keel_error_status(
            keel_error_new(KEEL_UNIMPLEMENTED, "method %s not allowed", req->method), 405);
        req->method_not_allowed = true;
        return;
    case KEEL_ROUTE_BAD_PATH:
        req->error = keel_error_new(KEEL_INVALID_ARGUMENT, "invalid path parameter \"%s\"",
                                    req->match.bad_param ? req->match.bad_param : "?");
        return;
    case KEEL_ROUTE_NOT_FOUND:
    default:
        req->error = keel_error_new(KEEL_NOT_FOUND, "endpoint not found");
        return;
    }
}

static keel_error *body_too_large(size_t limit)
{
    return keel_error_status(
        keel_error_new(KEEL_RESOURCE_EXHAUSTED, "request body too large (limit %zu bytes)", limit), 413);
}

/* The declared Content-Length, or -1 when absent or unparsable. */
static long long declared_length(struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!v || !*v)
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return (errno || *end || n < 0) ? -1 : n;
}

/* Takes one chunk of the body: streams it to the endpoint or buffers it. */
static void take_body_chunk(keel_req *req, const char *data, size_t len)
{
    if (req->discard_body)
        return;
    req->body_seen += len;
    if (req->max_body && req->body_seen > req->max_body) {
        req->error = body_too_large(req->max_body);
        req->discard_body = true;
        return;
    }
    const keel_endpoint *ep = req->route->ep;
    if (ep->kind == KEEL_EP_RAW && ep->on_body) {
        keel_error *err = ep->on_body(req, data, len);
        if (err) {
            req->error = err;
            req->discard_body = true;
        }
        return;
    }
    keel_buf_append(&req->body, data, len);
    if (req->body.failed) {
        req->error = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        req->discard_body = true;
    }
}

/* The final call: answer now, or hand the request to a worker. */
static enum MHD_Result finish_request(keel_req *req)
{
    if (req->state == REQ_READY || req->error)
        return keel__req_send(req);
    if (req->route->ep->flags & KEEL_INLINE) {
        keel__dispatch(req);
        return keel__req_send(req);
    }
    MHD_suspend_connection(req->conn);
    keel__workers_submit(req->app->workers, req);
    return MHD_YES;
}

/* Passes a call through to a mounted libmicrohttpd handler, as its own daemon
 * would make it. */
static enum MHD_Result call_mounted(keel_req *req, struct MHD_Connection *conn, const char *url,
                                    const char *method, const char *version, const char *upload_data,
                                    size_t *upload_data_size)
{
    const keel_endpoint *ep = req->route->ep;
    return ep->mhd_handler(ep->mhd_cls, conn, url, method, version, upload_data, upload_data_size,
                           &req->mounted_cls);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    keel_app *app = cls;
    keel_req *req = *req_cls;
    if (!req) {
        req = keel__req_new(app, conn, url, method, version);
        if (!req)
            return MHD_NO;
        *req_cls = req;
        atomic_fetch_add(&app->inflight, 1);
        route_request(req);
        if (!req->error && req->route->ep->kind == KEEL_EP_MHD) {
            req->state = REQ_MOUNTED;
            return call_mounted(req, conn, url, method, version, upload_data, upload_data_size);
        }
        long long declared = declared_length(conn);
        if (!req->error && req->max_body && declared > (long long)req->max_body) {
            /* Refuse before reading: the connection closes after this reply. */
            req->error = body_too_large(req->max_body);
            return keel__req_send(req);
        }
        return MHD_YES;
    }
    if (req->state == REQ_MOUNTED)
        return call_mounted(req, conn, url, method, version, upload_data, upload_data_size);
    if (*upload_data_size) {
        if (req->route && !req->error)
            take_body_chunk(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->state == REQ_SENT || req->state == REQ_QUEUED)
        return MHD_YES;
    return finish_request(req);
}

/* The status that went out, or 499 when the client left before it. */
static unsigned final_status(const keel_req *req)
{
    if (req->state == REQ_MOUNTED) {
        const union MHD_ConnectionInfo *info = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_HTTP_STATUS);
        return info && info->http_status ? info->http_status : 499;
    }
    return req->state == REQ_SENT ? req->resp.status : 499;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    keel_app *app = cls;
    keel_req *req = *req_cls;
    if (!req)
        return;
    *req_cls = NULL;
    if (req->state == REQ_MOUNTED && req->route->ep->mhd_completed)
        req->route->ep->mhd_completed(req->route->ep->mhd_completed_cls, conn, &req->mounted_cls, toe);
    if (req->route && req->route->ep->cleanup)
        req->route->ep->cleanup(req);
    if (req->resp.kind == RESP_STREAM && req->resp.stream_free)
        req->resp.stream_free(req->resp.stream_cls); /* never handed to libmicrohttpd */
    if (app->cfg.log_requests) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t us = (int64_t)(now.tv_sec - req->started.tv_sec) * 1000000 +
                     (now.tv_nsec - req->started.tv_nsec) / 1000;
        keel__log_request(req, final_status(req), us);
    }
    keel__req_free(req);
    atomic_fetch_sub(&app->inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    keel_log(KEEL_LOG_WARN, "libmicrohttpd: %s", line);
}

keel_error *keel_app_start(keel_app *app)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)app->cfg.port);
    if (inet_pton(AF_INET, app->cfg.host, &addr.sin_addr) != 1)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "invalid listen address \"%s\" (want an IPv4 address)",
                              app->cfg.host);
    keel_error *err = keel__secrets_check(app);
    if (!err)
        err = keel__databases_open(app);
    if (err)
        return err;
    err = keel__workers_start(app->cfg.workers, &app->workers);
    if (err)
        return err;
    unsigned threads = app->cfg.io_threads;
    /* A single epoll thread in libmicrohttpd 0.9.75 stalls at 128/256/512
     * connections; two or more do not. */
    if (threads < 2)
        threads = 2;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    app->daemon = MHD_start_daemon(
        flags, (uint16_t)app->cfg.port, NULL, NULL, on_access, app,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, app,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, app,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, app,
        MHD_OPTION_CONNECTION_TIMEOUT, app->cfg.conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, app->cfg.max_header,
        MHD_OPTION_CONNECTION_LIMIT, app->cfg.max_connections,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    if (!app->daemon) {
        keel__workers_stop(app->workers);
        app->workers = NULL;
        return keel_error_new(KEEL_UNAVAILABLE, "cannot listen on %s:%u (is the port in use?)",
                              app->cfg.host, app->cfg.port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(app->daemon, MHD_DAEMON_INFO_BIND_PORT);
    app->port = info ? info->port : app->cfg.port;
    return NULL;
}

unsigned keel_app_port(const keel_app *app)
{
    return app->port;
}

void keel_app_stop(keel_app *app)
{
    if (!app->daemon)
        return;
    atomic_store(&app->stopping, true);
    MHD_socket listen_fd = MHD_quiesce_daemon(app->daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    struct timespec tick = {0, 5 * 1000 * 1000};
    unsigned waited_ms = 0;
    while (atomic_load(&app->inflight) > 0 && waited_ms < app->cfg.shutdown_grace_ms) {
        nanosleep(&tick, NULL);
        waited_ms += 5;
    }
    int left = atomic_load(&app->inflight);
    if (left > 0) {
        /* A handler is stuck: joining it could hang forever.  Leave the
         * daemon and workers to the process exit that follows. */
        keel_log(KEEL_LOG_WARN, "shutdown: %d request(s) still running after %u ms", left,
                 app->cfg.shutdown_grace_ms);
        return;
    }
    /* Workers finish what they hold and resume their connections before the
     * daemon goes, so no connection is left suspended. */
    keel__workers_stop(app->workers);
    app->workers = NULL;
    MHD_stop_daemon(app->daemon);
    app->daemon = NULL;
}

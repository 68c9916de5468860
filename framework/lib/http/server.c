/* server.c - the HTTP server: one libmicrohttpd daemon per I/O thread (each
 * run by its loop, loop.c, on a listening socket of its own bound with
 * SO_REUSEPORT so the kernel spreads connections evenly), the access handler
 * that routes, enforces limits and buffers or streams bodies, hands blocking
 * handlers to the workers, and the graceful stop.
 *
 * libmicrohttpd calls the access handler once for the headers, once per body
 * chunk, and once more at the end (and again after a resume).  We never queue a
 * response on the first call unless the connection is to be closed anyway:
 * in 0.9.75 that would turn off keep-alive. */
#include "core.h"
#include "http/coro.h"
#include "http/stream.h"
#include "http/watchdog.h"
#include "http/loop.h"
#include "http/conn_limit.h"
#include "http/framing.h"
#include "observe/dashboard.h"
#include "observe/metrics.h"
#include "observe/observe.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

/* Once the answer is decided at the headers (404, 413), at most this much of
 * the body still arriving is read and dropped to keep the connection; a
 * larger body is answered at once and the connection closed (a client
 * declaring a TiB is not waited for).  Go's net/http keeps the same amount.
 * An error found in the middle of a body is answered after the rest of a
 * body of accepted length; a chunked body gets this much more. */
#define KEEL_DISCARD_MAX (256u * 1024)

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
    size_t target_len;            /* keel__framing_target of the request's target */
    bool counted;                 /* in the per-client limit, under client */
    struct sockaddr_storage client;
    keel_watchdog wd;             /* deadlines trickling cannot reset */
} keel_conn;

/* Accept policy: a client at its connection limit is refused (closed at once). */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    keel_app *app = cls;
    return keel__conn_limit_allows(app->conn_limit, addr) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    keel_loop *loop = cls;
    keel_app *app = keel__loop_app(loop);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        keel_conn *kc = calloc(1, sizeof(keel_conn));
        if (kc)
            keel__watchdog_start(&kc->wd, loop, conn);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (kc && ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            memcpy(&kc->client, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : sizeof(struct sockaddr_in));
            kc->counted = keel__conn_limit_enter(app->conn_limit, sa);
        }
        *socket_context = kc;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        keel_conn *kc = *socket_context;
        if (kc) {
            keel__watchdog_stop(&kc->wd);
            if (kc->counted)
                keel__conn_limit_leave(app->conn_limit, (struct sockaddr *)&kc->client);
            free(kc->raw);
        }
        free(kc);
        *socket_context = NULL;
    }
}

static keel_conn *conn_state(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

/* libmicrohttpd shows the request target here before it cuts it at '?' and
 * decodes it in place: what it was is checked later (framing.c). */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    keel_conn *kc = conn_state(conn);
    if (kc)
        kc->target_len = keel__framing_target(uri);
    return NULL; /* the access handler's *req_cls: no request yet */
}

static size_t on_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    keel_conn *kc = conn_state(conn);
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
    keel_conn *kc = conn_state(req->conn);
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
    if (strncmp(raw, "/__keel/", 8) == 0) { /* the framework's own pages, never the app's */
        unsigned status;
        req->route = keel__framework_route(app, req->method, raw, &status);
        if (req->route)
            req->max_body = app->cfg.max_body;
        else if (status == 405)
            req->error = keel_error_status(keel_error_new(KEEL_UNIMPLEMENTED, "method %s not allowed", req->method), 405);
        else
            req->error = keel_error_new(KEEL_NOT_FOUND, "endpoint not found");
        return;
    }
    size_t scratch_len = KEEL_ROUTER_SCRATCH(strlen(raw));
    char *scratch = keel_arena_alloc(&req->arena, scratch_len);
    if (!scratch) {
        req->error = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    keel_route_result r = keel_router_lookup(app->router, req->method, req->path, scratch,
                                             scratch_len, &req->match);
    /* Private endpoints are not in this router (registry.c): from outside
     * they do not exist. */
    const keel_route *route = r == KEEL_ROUTE_FOUND ? req->match.target : NULL;
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

/* The first query argument or header whose name or decoded value holds a NUL
 * byte: libmicrohttpd hands them out as C strings, which would cut
 * "abc%00xyz" to "abc" without a word. */
typedef struct nul_search {
    const char *where;
    const char *name;
} nul_search;

static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                const char *value, size_t value_size)
{
    nul_search *ns = cls;
    if (strlen(key) == key_size && (!value || strlen(value) == value_size))
        return MHD_YES;
    ns->where = kind == MHD_HEADER_KIND ? "header" : "query parameter";
    ns->name = key;
    return MHD_NO;
}

/* A request with a NUL in a query argument or header is refused, naming it. */
static keel_error *refuse_nul(struct MHD_Connection *conn)
{
    nul_search ns = {NULL, NULL};
    MHD_get_connection_values_n(conn, MHD_GET_ARGUMENT_KIND | MHD_HEADER_KIND, find_nul, &ns);
    if (!ns.where)
        return NULL;
    return keel_error_new(KEEL_INVALID_ARGUMENT, "%s \"%s\" contains a NUL byte", ns.where, ns.name);
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

/* True when the endpoint's body is kept in memory, by the framework or (as
 * KEEL_KEEPS_BODY says) by its handler: it counts against the body budget. */
static bool keeps_body(const keel_endpoint *ep)
{
    return ep->kind == KEEL_EP_TYPED || (ep->kind == KEEL_EP_RAW && (!ep->on_body || (ep->flags & KEEL_KEEPS_BODY)));
}

/* Takes one chunk of the body: streams it to the endpoint or buffers it.
 * Sets req->error when the body cannot be taken. */
static void take_body_chunk(keel_req *req, const char *data, size_t len)
{
    req->body_seen += len;
    if (req->wd)
        keel__watchdog_progress(req->wd, len);
    if (req->max_body && req->body_seen > req->max_body) {
        req->error = body_too_large(req->max_body);
        return;
    }
    const keel_endpoint *ep = req->route->ep;
    if (keeps_body(ep) && req->body_seen > req->body_held &&
        (req->error = keel__req_hold_body(req, req->body_seen - req->body_held)))
        return;
    if (ep->kind == KEEL_EP_RAW && ep->on_body) {
        req->error = ep->on_body(req, data, len);
        return;
    }
    keel_buf_append(&req->body, data, len);
    if (req->body.failed)
        req->error = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* How much body is still to come when the answer is decided at the headers:
 * the declared length, SIZE_MAX for a chunked body (unknown), else 0. */
static size_t body_to_come(struct MHD_Connection *conn, long long declared)
{
    if (declared >= 0)
        return (size_t)declared;
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING) ? SIZE_MAX : 0;
}

/* KEEL_BLOCKING handlers: the worker runs the handler, then gives the
 * connection back to its I/O thread. */
static void blocking_job_run(keel_job *job)
{
    keel_req *req = (keel_req *)((char *)job - offsetof(keel_req, job));
    keel_req *outer = keel__trace_set_current_req(req);
    keel__dispatch(req);
    keel__trace_set_current_req(outer);
    req->state = REQ_READY;
    /* After the resume the I/O thread owns req again.  A daemon without a
     * thread of its own is not woken by libmicrohttpd: its loop is. */
    keel_loop *loop = req->loop;
    MHD_resume_connection(req->conn);
    keel__loop_wake(loop);
}

/* The body of a handler's coroutine. */
static void handler_main(void *arg)
{
    keel_req *req = arg;
    keel__dispatch(req);
    /* What the handler left open (on databases, say) is disposed of here,
     * where a wait is allowed; a streamed response may still read from it,
     * and keeps it until the request is freed. */
    if (req->resp.kind != RESP_STREAM)
        keel_arena_dispose(&req->arena);
    req->state = REQ_READY;
    req->coro = NULL;
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
        keel__loop_kick(req->loop);
    }
}

/* The final call: answer now, run the handler as a coroutine (answering at
 * once when it finishes without waiting), or hand it to a worker. */
static enum MHD_Result finish_request(keel_req *req)
{
    if (req->state == REQ_READY || req->error)
        return keel__req_send(req);
    if (req->wd) /* the app's time, not the client's */
        keel__watchdog_phase(req->wd, KEEL_WD_OFF, 0);
    if (req->route->ep->flags & KEEL_BLOCKING) {
        MHD_suspend_connection(req->conn);
        req->state = REQ_QUEUED;
        req->job.run = blocking_job_run;
        keel__workers_submit(req->app->workers, &req->job);
        return MHD_YES;
    }
    req->coro = keel__loop_coro_new(req->loop, handler_main, req);
    if (!req->coro) {
        req->error = keel_error_new(KEEL_UNAVAILABLE, "server busy (no coroutine stack available)");
        return keel__req_send(req);
    }
    req->state = REQ_RUNNING;
    keel__loop_run(req);
    if (req->state == REQ_READY)
        return keel__req_send(req);
    MHD_suspend_connection(req->conn);
    req->suspended = true;
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
    keel_loop *loop = cls;
    keel_req *req = *req_cls;
    if (!req) {
        req = keel__req_new(keel__loop_app(loop), conn, url, method, version);
        if (!req)
            return MHD_NO;
        req->loop = loop;
        *req_cls = req;
        keel_conn *kc = conn_state(conn);
        if (kc) {
            req->wd = &kc->wd;
            keel__watchdog_phase(req->wd, KEEL_WD_OFF, 0); /* the headers are in */
        }
        keel__loop_request_started(loop);
        keel__metrics_request_start(req->app);
        route_request(req);
        keel__trace_request_begin(req);
        /* Framing in doubt: answered before anything reads the body, and
         * the connection closed (RFC 9112). */
        if (keel__framing_refused(req, kc ? kc->target_len : SIZE_MAX))
            return keel__req_send(req);
        if (keel__cors_preflight_answer(req))
            return keel__req_send(req);
        if (!req->error)
            req->error = refuse_nul(conn);
        if (!req->error && req->route->ep->kind == KEEL_EP_MHD) {
            /* Only the befores: the legacy code answers by itself. */
            req->error = keel__middleware_before(req, NULL, KEEL__MW_ALL);
            if (!req->error) {
                req->state = REQ_MOUNTED;
                if (req->wd) /* the legacy code owns the connection (it may long-poll) */
                    keel__watchdog_phase(req->wd, KEEL_WD_OFF, 0);
                return call_mounted(req, conn, url, method, version, upload_data, upload_data_size);
            }
        }
        long long declared = declared_length(conn);
        if (req->wd && body_to_come(conn, declared) > 0) /* a body must now arrive at the minimum rate */
            keel__watchdog_phase(req->wd, KEEL_WD_BODY, 0);
        if (!req->error && req->max_body && declared > (long long)req->max_body)
            req->error = body_too_large(req->max_body);
        if (!req->error && declared > 0 && keeps_body(req->route->ep))
            req->error = keel__req_body_fits(req, (size_t)declared); /* refused before it is read */
        /* An error found later in a body of accepted length is answered
         * after the rest was read and dropped: the length is bounded by the
         * endpoint's own limit.  Without one, or for a chunked body, only
         * KEEL_DISCARD_MAX more is read before the connection is closed. */
        req->discard_max = declared >= 0 && req->max_body > KEEL_DISCARD_MAX ? req->max_body : KEEL_DISCARD_MAX;
        if (req->error && body_to_come(conn, declared) > KEEL_DISCARD_MAX) {
            /* Answer before reading; the connection closes after it. */
            req->linger = true;
            return keel__req_send(req);
        }
        return MHD_YES;
    }
    if (req->state == REQ_MOUNTED)
        return call_mounted(req, conn, url, method, version, upload_data, upload_data_size);
    if (*upload_data_size) {
        size_t len = *upload_data_size;
        *upload_data_size = 0;
        if (!req->error) {
            take_body_chunk(req, upload_data, len);
            return MHD_YES;
        }
        /* The answer is decided: what still arrives is dropped, within a
         * cap (discard_max), then answered.  Past the cap the connection is
         * closed: libmicrohttpd cannot answer in the middle of a body. */
        req->discarded += len;
        if (req->wd)
            keel__watchdog_progress(req->wd, len);
        return req->discarded > req->discard_max ? MHD_NO : MHD_YES;
    }
    if (req->state == REQ_SENT || req->state == REQ_QUEUED || req->state == REQ_RUNNING)
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
    keel_loop *loop = cls;
    keel_app *app = keel__loop_app(loop);
    keel_req *req = *req_cls;
    if (!req)
        return;
    *req_cls = NULL;
    if (req->linger && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        int fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        if (fd >= 0)
            keel__linger(loop, fd);
    }
    if (req->state == REQ_MOUNTED && req->route->ep->mhd_completed)
        req->route->ep->mhd_completed(req->route->ep->mhd_completed_cls, conn, &req->mounted_cls, toe);
    if (req->route && req->route->ep->cleanup)
        req->route->ep->cleanup(req);
    if (req->resp.kind == RESP_STREAM && req->resp.stream_free)
        req->resp.stream_free(req->resp.stream_cls); /* never handed to libmicrohttpd */
    keel__stream_request_done(req);
    if (req->wd) /* kept alive: the next request's headers; else closing */
        keel__watchdog_phase(req->wd, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? KEEL_WD_HEADERS : KEEL_WD_OFF,
                             app->cfg.conn_timeout_s * 1000u);
    unsigned status = final_status(req);
    keel_arena_dispose(&req->arena); /* what the request held may still end spans */
    keel__trace_request_end(req, status);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (int64_t)(now.tv_sec - req->started.tv_sec) * 1000000 + (now.tv_nsec - req->started.tv_nsec) / 1000;
    keel__metrics_request_end(app, req->route, status, us > 0 ? (uint64_t)us : 0);
    if (app->cfg.log_requests && !(req->route && req->route->service->name[0] == '_'))
        keel__log_request(req, status, us); /* not the framework's pages: balancers ask often */
    keel__req_free(req);
    keel__loop_request_finished(loop);
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

/* Binds one listening socket to the configured address.  reuse_port lets
 * every I/O thread bind a socket of its own to the same port. */
static int listen_socket(const struct addrinfo *ai, unsigned port, bool reuse_port)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (ai->ai_family == AF_INET6) /* "::" serves IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    struct sockaddr_storage addr;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    if (ai->ai_family == AF_INET6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&addr, ai->ai_addrlen) != 0 || (reuse_port && listen(fd, 1024) != 0)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        return 0;
    return addr.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&addr)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&addr)->sin_port);
}

/* Opens the n listening sockets, all on one port.  A first bind without
 * SO_REUSEPORT proves the port is free: with SO_REUSEPORT alone, a second
 * Keel on the same port would silently share it. */
static keel_error *open_listeners(keel_app *app, int *fds, unsigned n)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(app->cfg.host, NULL, &hints, &ai) != 0 || !ai)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "invalid listen address \"%s\" (want an IPv4 or IPv6 address)",
                              app->cfg.host);
    keel_error *err = NULL;
    int probe = listen_socket(ai, app->cfg.port, false);
    unsigned port = probe >= 0 ? bound_port(probe) : 0;
    if (probe < 0 || port == 0)
        err = keel_error_new(KEEL_UNAVAILABLE, "cannot listen on %s:%u: %s (is the port in use?)",
                             app->cfg.host, app->cfg.port, strerror(errno));
    for (unsigned i = 0; !err && i < n; i++) {
        fds[i] = listen_socket(ai, port, true);
        if (fds[i] < 0)
            err = keel_error_new(KEEL_UNAVAILABLE, "cannot listen on %s:%u: %s (is the port in use?)",
                                 app->cfg.host, port, strerror(errno));
    }
    if (probe >= 0)
        close(probe);
    freeaddrinfo(ai);
    app->port = port;
    return err;
}

static struct MHD_Daemon *daemon_start(keel_app *app, keel_loop *loop, int listen_fd, unsigned nloops)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned limit = app->cfg.max_connections / nloops;
    return MHD_start_daemon(
        flags, 0, on_accept, app, on_access, loop,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, listen_fd,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, loop,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, loop,
        MHD_OPTION_UNESCAPE_CALLBACK, on_unescape, NULL,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, app->cfg.conn_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, app->cfg.max_header,
        MHD_OPTION_CONNECTION_LIMIT, limit ? limit : 1u,
        MHD_OPTION_END);
}

/* Joins every loop; true when all drained.  Frees the loops that did. */
static bool loops_stop(keel_app *app)
{
    bool all = true;
    for (unsigned i = 0; i < app->nloops; i++) {
        if (!app->loops[i])
            continue;
        if (keel__loop_join(app->loops[i])) {
            keel__loop_free(app->loops[i]);
            app->loops[i] = NULL;
        } else {
            all = false;
        }
    }
    if (all) {
        free(app->loops);
        app->loops = NULL;
        app->nloops = 0;
    }
    return all;
}

keel_error *keel_app_start(keel_app *app)
{
    keel_error *err = keel__secrets_check(app);
    if (!err && !app->obs) /* before the databases: their migrations are traced */
        err = keel__observe_start(app, keel__dashboard_wanted());
    if (!err && !app->metrics)
        err = keel__metrics_new(app);
    if (!err)
        err = keel__databases_open(app);
    if (!err)
        err = keel__middleware_start(app);
    if (err)
        return err;
    unsigned n = app->cfg.io_threads ? app->cfg.io_threads : 1;
    int *fds = malloc(n * sizeof *fds);
    app->loops = calloc(n, sizeof *app->loops);
    if (!fds || !app->loops) {
        free(fds);
        free(app->loops);
        app->loops = NULL;
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    for (unsigned i = 0; i < n; i++)
        fds[i] = -1;
    app->nloops = n;
    if (app->cfg.max_conns_per_ip && !app->conn_limit)
        err = keel__conn_limit_new(app->cfg.max_conns_per_ip, app->cfg.max_connections + n, &app->conn_limit);
    if (!err)
        err = open_listeners(app, fds, n);
    if (!err)
        err = keel__workers_start(app->cfg.workers, &app->workers);
    for (unsigned i = 0; !err && i < n; i++) {
        err = keel__loop_new(app, i, &app->loops[i]);
        if (err)
            break;
        struct MHD_Daemon *d = daemon_start(app, app->loops[i], fds[i], n);
        if (!d) {
            err = keel_error_new(KEEL_UNAVAILABLE, "cannot start the HTTP server on %s:%u", app->cfg.host,
                                 app->port);
            break;
        }
        fds[i] = -1; /* the daemon owns it */
        err = keel__loop_attach(app->loops[i], d);
    }
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    for (unsigned i = 0; !err && i < n; i++)
        err = keel__loop_start(app->loops[i]);
    if (err) {
        atomic_store(&app->stopping, true);
        for (unsigned i = 0; i < n; i++)
            if (app->loops[i])
                keel__loop_wake(app->loops[i]);
        loops_stop(app);
        keel__workers_stop(app->workers);
        app->workers = NULL;
        atomic_store(&app->stopping, false);
    }
    if (!err)
        keel__dashboard_start(app);
    return err;
}

unsigned keel_app_port(const keel_app *app)
{
    return app->port;
}

void keel_app_stop(keel_app *app)
{
    if (!app->loops)
        return;
    keel__dashboard_stop(app); /* its explorer sends requests to the app */
    atomic_store_explicit(&app->stopping, true, memory_order_release);
    for (unsigned i = 0; i < app->nloops; i++)
        keel__loop_wake(app->loops[i]);
    if (!loops_stop(app)) {
        /* A handler is stuck: joining it could hang forever.  Leave the
         * workers and the loops that did not drain to the process exit. */
        return;
    }
    /* Every request has completed, so no job is queued or running. */
    keel__workers_stop(app->workers);
    app->workers = NULL;
}

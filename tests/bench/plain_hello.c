/* plain_hello.c - the baseline for ./dev bench: what a decently written,
 * hand-rolled libmicrohttpd + jansson service doing Keel's example work looks
 * like.  Same MHD mode as Keel (epoll internal thread pool, threads = cores but
 * at least 2), same connection timeout and backlog, JSON built per request with
 * jansson (no precomputed responses), keep-alive kept by answering on the
 * second access-handler call.  No per-request logging.
 *
 *   GET /hello/<name>  -> {"message":"Hello, <name>!"}
 *   *   /api/<rest>    -> {"method":..,"path":..,"rest":..,"body_length":N}
 *   anything else      -> 404 {"code":"not_found",...}
 *
 * libmicrohttpd hands the access handler an already percent-decoded path.
 * Usage: plain_hello [PORT]   (else $PORT, else 8081); binds 127.0.0.1. */
#include <microhttpd.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-request state, allocated on the first call, freed on completion. */
struct req {
    uint64_t body_length;
};

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *doc)
{
    if (!doc)
        return MHD_NO;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    struct req *r = *req_cls;
    if (!r) {
        /* Headers only: answering now would cost keep-alive in 0.9.75. */
        r = calloc(1, sizeof *r);
        if (!r)
            return MHD_NO;
        *req_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        r->body_length += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strncmp(url, "/hello/", 7) == 0 && strcmp(method, "GET") == 0) {
        const char *name = url + 7;
        if (*name && !strchr(name, '/'))
            return send_json(conn, MHD_HTTP_OK,
                             json_pack("{s:s++}", "message", "Hello, ", name, "!"));
    } else if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0) {
        const char *rest = url[4] ? url + 5 : "";
        return send_json(conn, MHD_HTTP_OK,
                         json_pack("{s:s, s:s, s:s, s:I}", "method", method, "path", url,
                                   "rest", rest, "body_length", (json_int_t)r->body_length));
    }
    return send_json(conn, MHD_HTTP_NOT_FOUND,
                     json_pack("{s:s, s:s, s:n}", "code", "not_found", "message",
                               "endpoint not found", "details"));
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*req_cls);
    *req_cls = NULL;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    const char *port_s = argc > 1 ? argv[1] : getenv("PORT");
    unsigned port = port_s ? (unsigned)strtoul(port_s, NULL, 10) : 8081;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = cores > 2 ? (unsigned)cores : 2;

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL, NULL,
        on_access, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "plain_hello: cannot listen on 127.0.0.1:%u\n", port);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    fprintf(stderr, "plain_hello: 127.0.0.1:%u, %u threads\n", port, threads);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    return 0;
}

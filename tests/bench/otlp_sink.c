/* tests/bench/otlp_sink.c - the local receiver the tracing benchmark exports
 * to: accepts OTLP/HTTP POSTs on /v1/traces, reads and discards them, answers
 * 200 with an empty ExportTraceServiceResponse, and on SIGTERM prints how
 * many requests and bytes it took.  (The tests decode the export with
 * OpenTelemetry's own classes; here only its cost to the app matters.)
 *   otlp_sink PORT */
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static atomic_ulong posts, bytes;
static volatile sig_atomic_t stop;

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state)
{
    (void)cls;
    (void)version;
    (void)data;
    if (!*state) {
        *state = (void *)1;
        return MHD_YES;
    }
    if (*size) {
        atomic_fetch_add(&bytes, *size);
        *size = 0;
        return MHD_YES;
    }
    unsigned status = strcmp(method, "POST") == 0 && strcmp(url, "/v1/traces") == 0 ? 200 : 404;
    if (status == 200)
        atomic_fetch_add(&posts, 1);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/x-protobuf");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: otlp_sink PORT\n");
        return 2;
    }
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]),
                                            NULL, NULL, on_request, NULL, MHD_OPTION_END);
    if (!d) {
        perror("otlp_sink");
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    printf("%lu posts %lu bytes\n", (unsigned long)posts, (unsigned long)bytes);
    return 0;
}

/* http_client.h - private: a small blocking HTTP/1.1 client for loopback
 * and local-network peers: the OTLP exporter's POSTs and the dashboard's
 * forwarded requests.  http:// only; one request per connection. */
#ifndef KEEL_HTTP_CLIENT_H
#define KEEL_HTTP_CLIENT_H

#include <stddef.h>
#include "keel/error.h"

typedef struct keel_http_target {
    char *host;               /* as written (the Host header) */
    char *port;
    char *path;               /* "/" when the URL has none */
} keel_http_target;

/* Parses http://host[:port][/path]; errors say what is wrong with it. */
keel_error *keel__http_target_parse(const char *url, keel_http_target *out);
void keel__http_target_clear(keel_http_target *t);

typedef struct keel_http_reply {
    unsigned status;
    char *headers;            /* the header lines, NUL-terminated; caller frees (clear) */
    char *body;               /* NUL-terminated */
    size_t body_len;
} keel_http_reply;

/* One exchange: connects (within timeout_ms), sends method path with
 * headers ("Name: value", NULL-ended; may be NULL) and body, and reads the
 * reply (at most 16 MiB), all within timeout_ms.  unavailable on network
 * failures, naming the peer. */
keel_error *keel__http_exchange(const keel_http_target *t, const char *method, const char *path,
                                const char *const *headers, const void *body, size_t len, unsigned timeout_ms,
                                keel_http_reply *out);
void keel__http_reply_clear(keel_http_reply *r);

#endif

/* http_client.h - private: a small blocking HTTP/1.1 client for loopback
 * and local-network peers: the OTLP exporter's POSTs and the dashboard's
 * forwarded requests.  http:// only; one request per connection. */
#ifndef KEEL_HTTP_CLIENT_H
#define KEEL_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include "keel/error.h"

typedef struct keel_http_target {
    char *host;               /* as written; an IPv6 address without its brackets */
    char *port;               /* digits */
    char *path;               /* "/" when the URL has none */
} keel_http_target;

/* Parses http://host[:port][/path] and http://[v6][:port][/path].  Only
 * visible ASCII is accepted (no control character, space or other byte
 * reaches the request line or the Host header); the host is a name or an
 * address of letters, digits, '.', '-' and '_' (an IPv6 address in
 * brackets), never empty; the port, 80 when absent, is a number from 1 to
 * 65535 (out->port holds it without leading zeros).  Errors
 * (invalid_argument) say what is wrong with the URL. */
keel_error *keel__http_target_parse(const char *url, keel_http_target *out);
void keel__http_target_clear(keel_http_target *t);

typedef struct keel_http_reply {
    unsigned status;
    char *headers;            /* the header lines, NUL-terminated; caller frees (clear) */
    char *body;               /* NUL-terminated */
    size_t body_len;
} keel_http_reply;

/* True when line starts with a status line, "HTTP/d.d ddd" followed by a
 * space or CR, the code from 100 to 599; *status is the code. */
bool keel__http_status_line(const char *line, unsigned *status);

/* Splits a whole reply, raw[0..len) with raw[len] == '\0', into its status,
 * headers and body (de-chunked, cut at its Content-Length); the body may be
 * rewritten in place.  unavailable when it is not an HTTP reply or its
 * chunks are malformed; out is then empty. */
keel_error *keel__http_reply_parse(char *raw, size_t len, keel_http_reply *out);

/* One exchange: connects (within timeout_ms), sends method path with
 * headers ("Name: value", NULL-ended; may be NULL) and body, and reads the
 * reply (at most 16 MiB), all within timeout_ms.  unavailable on network
 * failures, naming the peer; invalid_argument when method or path is not
 * visible ASCII or a header holds a line break.  When abort_fd (-1: none)
 * becomes readable the exchange is given up at once: canceled. */
keel_error *keel__http_exchange(const keel_http_target *t, const char *method, const char *path,
                                const char *const *headers, const void *body, size_t len, unsigned timeout_ms,
                                int abort_fd, keel_http_reply *out);
void keel__http_reply_clear(keel_http_reply *r);

#endif

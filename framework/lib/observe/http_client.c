/* http_client.c - see http_client.h.  HTTP/1.1 with "Connection: close":
 * the reply ends with the connection, or with its Content-Length, or its
 * last chunk. */
#include "observe/http_client.h"
#include "format.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX (16u * 1024 * 1024)

static keel_error *oom(void)
{
    return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* The index of the first byte of s that is not visible ASCII (a control
 * character, a space, DEL or a byte above 0x7f), or strlen(s). */
static size_t invisible_at(const char *s)
{
    size_t i = 0;
    while (s[i] && (unsigned char)s[i] > ' ' && (unsigned char)s[i] < 0x7f)
        i++;
    return i;
}

static keel_error *bad_url(const char *what)
{
    return keel_error_new(KEEL_INVALID_ARGUMENT, "%s", what);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The host of http://host[:port][/path], or of http://[v6][:port][/path]
 * (without its brackets) into *host and *len, its port (NULL when absent)
 * into *port and *port_len. */
static keel_error *split_authority(const char *auth, size_t n, const char **host, size_t *len, const char **port,
                                   size_t *port_len)
{
    *port = NULL;
    *port_len = 0;
    if (memchr(auth, '@', n))
        return bad_url("the URL holds user information (user@host): give the host alone");
    if (n && auth[0] == '[') {
        const char *close = memchr(auth, ']', n);
        if (!close)
            return bad_url("the URL's host has unbalanced brackets: '[' without ']'");
        *host = auth + 1;
        *len = (size_t)(close - *host);
        for (size_t i = 0; i < *len; i++)
            if (!is_hex((*host)[i]) && (*host)[i] != ':' && (*host)[i] != '.')
                return keel_error_new(KEEL_INVALID_ARGUMENT, "the URL's IPv6 address holds '%c'", (*host)[i]);
        if (*len && !memchr(*host, ':', *len))
            return bad_url("the URL's brackets hold no IPv6 address");
        size_t rest = n - (size_t)(close + 1 - auth);
        if (rest && close[1] != ':')
            return bad_url("the URL's host has characters after ']' (expected :port or /path)");
        if (rest) {
            *port = close + 2;
            *port_len = rest - 1;
        }
        return NULL;
    }
    const char *colon = memchr(auth, ':', n);
    *host = auth;
    *len = colon ? (size_t)(colon - auth) : n;
    if (colon) {
        *port = colon + 1;
        *port_len = n - *len - 1;
    }
    if (memchr(auth, '[', n) || memchr(auth, ']', n))
        return bad_url("the URL's host has unbalanced brackets (an IPv6 address is written [::1])");
    if (colon && memchr(colon + 1, ':', *port_len))
        return bad_url("the URL's host has more than one ':' (an IPv6 address is written in brackets: [::1])");
    for (size_t i = 0; i < *len; i++)
        if (!is_alnum((*host)[i]) && (*host)[i] != '-' && (*host)[i] != '.' && (*host)[i] != '_')
            return keel_error_new(KEEL_INVALID_ARGUMENT, "the URL's host holds '%c'", (*host)[i]);
    return NULL;
}

keel_error *keel__http_target_parse(const char *url, keel_http_target *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(url, "http://", 7) != 0)
        return bad_url("expected an http:// URL");
    /* The host and the path reach the request line and the Host header:
     * a CR or LF there would start a header or a request of the URL's. */
    size_t bad = invisible_at(url);
    if (url[bad]) {
        unsigned char c = (unsigned char)url[bad];
        return keel_error_new(KEEL_INVALID_ARGUMENT, "the URL holds %s at byte %zu (only visible ASCII is allowed)",
                              c == ' ' ? "a space" : c > 0x7f ? "a non-ASCII byte" : "a control character", bad);
    }
    const char *auth = url + 7;
    size_t n = strcspn(auth, "/");
    const char *host = NULL, *port = NULL;
    size_t len = 0, port_len = 0;
    keel_error *err = split_authority(auth, n, &host, &len, &port, &port_len);
    if (err)
        return err;
    if (!len)
        return bad_url("the URL has no host");
    unsigned long number = 80;
    if (port) {
        if (port_len < 1 || port_len > 5)
            return bad_url("the URL's port must be a number from 1 to 65535");
        number = 0;
        for (size_t i = 0; i < port_len; i++) {
            if (!is_digit(port[i]))
                return bad_url("the URL's port must be a number from 1 to 65535");
            number = number * 10 + (unsigned long)(port[i] - '0');
        }
        if (number < 1 || number > 65535)
            return bad_url("the URL's port must be a number from 1 to 65535");
    }
    out->host = strndup(host, len);
    out->port = keel__format("%lu", number);
    out->path = strdup(auth[n] ? auth + n : "/");
    if (!out->host || !out->port || !out->path) {
        keel__http_target_clear(out);
        return oom();
    }
    return NULL;
}

void keel__http_target_clear(keel_http_target *t)
{
    free(t->host);
    free(t->port);
    free(t->path);
    memset(t, 0, sizeof *t);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long an exchange may wait: until deadline (CLOCK_MONOTONIC ms), or
 * until abort_fd (when >= 0) becomes readable, which sets aborted. */
typedef struct limit {
    long long deadline;
    int abort_fd;
    bool aborted;
} limit;

/* Waits for events on fd within lim; false on timeout, abort or error. */
static bool wait_fd(int fd, short events, limit *lim)
{
    for (;;) {
        long long left = lim->deadline - now_ms();
        if (left <= 0)
            return false;
        struct pollfd p[2] = {{fd, events, 0}, {lim->abort_fd, POLLIN, 0}};
        int n = poll(p, lim->abort_fd >= 0 ? 2 : 1, (int)left);
        if (n > 0 && lim->abort_fd >= 0 && p[1].revents) {
            lim->aborted = true;
            return false;
        }
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static int connect_to(const keel_http_target *t, limit *lim)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(t->host, t->port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0 && !lim->aborted; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (errno == EINPROGRESS && wait_fd(fd, POLLOUT, lim) &&
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static bool send_all(int fd, const char *p, size_t n, limit *lim)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(fd, POLLOUT, lim))
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* Decodes a chunked body in place; false when it is malformed or cut. */
static bool dechunk(char *body, size_t len, size_t *out_len)
{
    size_t in = 0, out = 0;
    for (;;) {
        char *end;
        unsigned long long n = strtoull(body + in, &end, 16);
        if (end == body + in)
            return false;
        char *eol = memchr(end, '\n', len - (size_t)(end - body));
        if (!eol)
            return false;
        in = (size_t)(eol - body) + 1;
        if (n == 0)
            break;
        if (n > len - in)
            return false;
        memmove(body + out, body + in, n);
        out += n;
        in += n;
        if (in < len && body[in] == '\r')
            in++;
        if (in < len && body[in] == '\n')
            in++;
    }
    *out_len = out;
    body[out] = '\0';
    return true;
}

bool keel__http_status_line(const char *line, unsigned *status)
{
    if (strncmp(line, "HTTP/", 5) != 0 || !is_digit(line[5]) || line[6] != '.' || !is_digit(line[7]) ||
        line[8] != ' ')
        return false;
    const char *code = line + 9;
    if (code[0] < '1' || code[0] > '5' || !is_digit(code[1]) || !is_digit(code[2]) ||
        (code[3] != ' ' && code[3] != '\r'))
        return false;
    *status = (unsigned)(code[0] - '0') * 100 + (unsigned)(code[1] - '0') * 10 + (unsigned)(code[2] - '0');
    return true;
}

/* Splits the raw reply into status, headers and body. */
static keel_error *parse_reply(char *raw, size_t len, keel_http_reply *out)
{
    char *sep = strstr(raw, "\r\n\r\n");
    unsigned status;
    if (!sep || !keel__http_status_line(raw, &status))
        return keel_error_new(KEEL_UNAVAILABLE, "the peer's reply does not start with an HTTP status line");
    size_t head_len = (size_t)(sep - raw) + 2;
    char *body = sep + 4;
    size_t body_len = len - (size_t)(body - raw);
    out->headers = strndup(raw, head_len);
    if (!out->headers)
        return oom();
    bool chunked = false;
    long long length = -1;
    for (char *line = strstr(out->headers, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, "Transfer-Encoding:", 18) == 0 && strstr(h, "chunked") &&
            (size_t)(strstr(h, "chunked") - h) < (size_t)(strcspn(h, "\r")))
            chunked = true;
        else if (strncasecmp(h, "Content-Length:", 15) == 0)
            length = strtoll(h + 15, NULL, 10);
    }
    if (chunked && !dechunk(body, body_len, &body_len))
        return keel_error_new(KEEL_UNAVAILABLE, "the peer's chunked reply is cut or malformed");
    if (!chunked && length >= 0 && (size_t)length < body_len)
        body_len = (size_t)length;
    out->body = malloc(body_len + 1);
    if (!out->body)
        return oom();
    memcpy(out->body, body, body_len);
    out->body[body_len] = '\0';
    out->body_len = body_len;
    out->status = status;
    return NULL;
}

keel_error *keel__http_reply_parse(char *raw, size_t len, keel_http_reply *out)
{
    memset(out, 0, sizeof *out);
    keel_error *err = parse_reply(raw, len, out);
    if (err)
        keel__http_reply_clear(out);
    return err;
}

/* True when method and path are visible ASCII (what ends up in the request
 * line) and no header holds a line break. */
static bool request_line_ok(const char *method, const char *path, const char *const *headers)
{
    if (!*method || method[invisible_at(method)] || !*path || path[invisible_at(path)])
        return false;
    for (size_t i = 0; headers && headers[i]; i++)
        if (strpbrk(headers[i], "\r\n"))
            return false;
    return true;
}

static keel_error *abandoned(const keel_http_target *t)
{
    return keel_error_new(KEEL_CANCELED, "the exchange with %s:%s was abandoned", t->host, t->port);
}

keel_error *keel__http_exchange(const keel_http_target *t, const char *method, const char *path,
                                const char *const *headers, const void *body, size_t len, unsigned timeout_ms,
                                int abort_fd, keel_http_reply *out)
{
    memset(out, 0, sizeof *out);
    if (!request_line_ok(method, path, headers))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "the request to %s:%s holds a space, a control character or a "
                              "non-ASCII byte in its method or path, or a line break in a header", t->host, t->port);
    limit lim = {now_ms() + timeout_ms, abort_fd, false};
    int fd = connect_to(t, &lim);
    if (fd < 0 && lim.aborted)
        return abandoned(t);
    if (fd < 0)
        return keel_error_new(KEEL_UNAVAILABLE, "could not connect to %s:%s", t->host, t->port);
    keel_error *err = NULL;
    size_t cap = 4096, used = 0;
    char *head = NULL, *raw = NULL;
    size_t hn = 0;
    for (size_t i = 0; headers && headers[i]; i++)
        hn += strlen(headers[i]) + 2;
    head = malloc(strlen(method) + strlen(path) + strlen(t->host) + hn + 128);
    raw = malloc(cap);
    if (!head || !raw) {
        err = oom();
        goto done;
    }
    /* An IPv6 address is written in brackets in the Host header too. */
    bool v6 = strchr(t->host, ':') != NULL;
    int n = sprintf(head, "%s %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nConnection: close\r\n", method, path, v6 ? "[" : "",
                    t->host, v6 ? "]" : "", t->port);
    for (size_t i = 0; headers && headers[i]; i++)
        n += sprintf(head + n, "%s\r\n", headers[i]);
    if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0)
        n += sprintf(head + n, "Content-Length: %zu\r\n", len);
    n += sprintf(head + n, "\r\n");
    if (!send_all(fd, head, (size_t)n, &lim) || (len && !send_all(fd, body, len, &lim))) {
        err = lim.aborted ? abandoned(t) : keel_error_new(KEEL_UNAVAILABLE, "could not send to %s:%s", t->host, t->port);
        goto done;
    }
    for (;;) {
        if (used + 1 >= cap) {
            if (cap >= REPLY_MAX) {
                err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "the reply from %s:%s is over 16 MiB", t->host, t->port);
                goto done;
            }
            char *bigger = realloc(raw, cap * 2);
            if (!bigger) {
                err = oom();
                goto done;
            }
            raw = bigger;
            cap *= 2;
        }
        ssize_t r = recv(fd, raw + used, cap - used - 1, 0);
        if (r > 0) {
            used += (size_t)r;
        } else if (r == 0) {
            break;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (!wait_fd(fd, POLLIN, &lim)) {
                err = lim.aborted ? abandoned(t)
                                  : keel_error_new(KEEL_DEADLINE_EXCEEDED, "no reply from %s:%s within %u ms", t->host,
                                                   t->port, timeout_ms);
                goto done;
            }
        } else {
            err = keel_error_new(KEEL_UNAVAILABLE, "the connection to %s:%s failed", t->host, t->port);
            goto done;
        }
    }
    raw[used] = '\0';
    err = keel__http_reply_parse(raw, used, out);
done:
    free(head);
    free(raw);
    close(fd);
    return err;
}

void keel__http_reply_clear(keel_http_reply *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof *r);
}

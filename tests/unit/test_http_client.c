/* tests/unit/test_http_client.c - framework/lib/observe/http_client.c without
 * a peer: the URLs the OTLP exporter and the dashboard's client accept (and
 * the reasons they give for the ones they refuse: nothing that is not
 * visible ASCII, so no CR or LF reaches the request line; a host, balanced
 * brackets, a port from 1 to 65535), the status line (exactly three digits,
 * 100 to 599) and a whole reply split into status, headers and body; and
 * an exchange with a peer on loopback that never answers: it ends at its
 * deadline, or at once when its abort descriptor is written. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "observe/http_client.h"
#include "tap.h"

/* Parses url and checks its parts. */
static void accepts(const char *url, const char *host, const char *port, const char *path)
{
    keel_http_target t;
    keel_error *err = keel__http_target_parse(url, &t);
    if (!ok(!err && strcmp(t.host, host) == 0 && strcmp(t.port, port) == 0 && strcmp(t.path, path) == 0,
            "%s: host %s, port %s, path %s", url, host, port, path))
        printf("#   got %s / %s / %s (%s)\n", err ? "-" : t.host, err ? "-" : t.port, err ? "-" : t.path,
               err ? err->message : "no error");
    keel_error_free(err);
    keel__http_target_clear(&t);
}

/* Checks that url is refused, saying want, with nothing left to free. */
static void refuses(const char *shown, const char *url, const char *want)
{
    keel_http_target t;
    keel_error *err = keel__http_target_parse(url, &t);
    ok(err && err->code == KEEL_INVALID_ARGUMENT && strstr(err->message, want) && !t.host && !t.port && !t.path,
       "%s is refused: %s (%s)", shown, want, err ? err->message : "accepted");
    keel_error_free(err);
    keel__http_target_clear(&t);
}

static void test_urls(void)
{
    accepts("http://collector:4318/v1/traces", "collector", "4318", "/v1/traces");
    accepts("http://localhost", "localhost", "80", "/");
    accepts("http://127.0.0.1:4318", "127.0.0.1", "4318", "/");
    accepts("http://[::1]:4318/x", "::1", "4318", "/x");
    accepts("http://[::ffff:127.0.0.1]/v1/traces", "::ffff:127.0.0.1", "80", "/v1/traces");
    accepts("http://otel-collector.monitoring_ns:0080/a?b=c", "otel-collector.monitoring_ns", "80", "/a?b=c");
    accepts("http://x:65535/", "x", "65535", "/");

    refuses("a CR LF and a header in the host", "http://collector\r\nX-Injected: 1/v1/traces",
            "a control character at byte 16");
    refuses("a CR LF after the path", "http://collector:4318/v1/traces\r\nX-Injected: 1",
            "a control character at byte 31");
    refuses("a lone LF in the path", "http://collector/v1\n/traces", "a control character");
    refuses("a tab", "http://collector/\t", "a control character");
    refuses("DEL", "http://collector/\x7f", "a control character");
    refuses("a space in the path", "http://collector/v1/ traces HTTP/1.0", "a space at byte 20");
    refuses("a byte above 0x7f", "http://coll\xc3\xa9" "ctor/", "a non-ASCII byte");
    refuses("http://[U", "http://[U", "unbalanced brackets");
    refuses("http://[::1", "http://[::1", "unbalanced brackets");
    refuses("http://::1]/", "http://::1]/", "unbalanced brackets");
    refuses("http://a[b]/", "http://a[b]/", "unbalanced brackets");
    refuses("http://[]/", "http://[]/", "no host");
    refuses("http://[zz::1]/", "http://[zz::1]/", "IPv6 address holds 'z'");
    refuses("http://[127.0.0.1]/", "http://[127.0.0.1]/", "no IPv6 address");
    refuses("http://[::1]x/", "http://[::1]x/", "after ']'");
    refuses("http://::1:4318/", "http://::1:4318/", "in brackets");
    refuses("http://:80/", "http://:80/", "no host");
    refuses("http:///v1/traces", "http:///v1/traces", "no host");
    refuses("http://", "http://", "no host");
    refuses("http://user:pw@collector/", "http://user:pw@collector/", "user information");
    refuses("http://x%0d/", "http://x%0d/", "host holds '%'");
    refuses("http://x:/", "http://x:/", "port must be a number from 1 to 65535");
    refuses("http://x:0/", "http://x:0/", "port must be a number");
    refuses("http://x:65536/", "http://x:65536/", "port must be a number");
    refuses("http://x:123456/", "http://x:123456/", "port must be a number");
    refuses("http://x:-1/", "http://x:-1/", "port must be a number");
    refuses("http://x:port/", "http://x:port/", "port must be a number");
    refuses("https://x/", "https://x/", "expected an http:// URL");
    refuses("ftp://x", "ftp://x", "expected an http:// URL");
}

static void test_status_line(void)
{
    static const struct {
        const char *line;
        unsigned want; /* 0: refused */
    } lines[] = {
        {"HTTP/1.1 200 OK\r\n", 200},
        {"HTTP/1.0 404 Not Found\r\n", 404},
        {"HTTP/1.1 204\r\n", 204},
        {"HTTP/1.1 599 \r\n", 599},
        {"HTTP/1.1 100 Continue\r\n", 100},
        {"HTTP/1.1 -04 x\r\n", 0},
        {"HTTP/1.1 +20 x\r\n", 0},
        {"HTTP/1.1  200 OK\r\n", 0},
        {"HTTP/1.1 2000 OK\r\n", 0},
        {"HTTP/1.1 20 OK\r\n", 0},
        {"HTTP/1.1 2a0 OK\r\n", 0},
        {"HTTP/1.1 099 x\r\n", 0},
        {"HTTP/1.1 600 x\r\n", 0},
        {"HTTP/1.1 200", 0},
        {"HTTP/1.1 200\n", 0},
        {"HTTP/11 200 OK\r\n", 0},
        {"HTTP/1.x 200 OK\r\n", 0},
        {"http/1.1 200 OK\r\n", 0},
        {"ICY 200 OK\r\n", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        unsigned status = 0;
        bool parsed = keel__http_status_line(lines[i].line, &status);
        char shown[64];
        size_t n = strcspn(lines[i].line, "\r\n");
        snprintf(shown, sizeof shown, "\"%.*s\"", (int)n, lines[i].line);
        if (lines[i].want)
            ok(parsed && status == lines[i].want, "%s: status %u", shown, lines[i].want);
        else
            ok(!parsed, "%s is not a status line%s", shown, parsed ? " (accepted)" : "");
    }
}

/* Parses a copy of text as a whole reply. */
static keel_error *reply_of(const char *text, keel_http_reply *out)
{
    char *raw = strdup(text);
    keel_error *err = keel__http_reply_parse(raw, strlen(raw), out);
    free(raw);
    return err;
}

static void test_replies(void)
{
    keel_http_reply r;
    keel_error *err = reply_of("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhelloextra", &r);
    ok(!err && r.status == 200 && r.body_len == 5 && strcmp(r.body, "hello") == 0,
       "a reply with Content-Length: the body is cut at it");
    ok(r.headers && strstr(r.headers, "Content-Type: text/plain\r\n"), "its header lines are kept");
    keel__http_reply_clear(&r);
    err = reply_of("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
                   &r);
    ok(!err && r.status == 201 && r.body_len == 11 && strcmp(r.body, "hello world") == 0,
       "a chunked reply is de-chunked");
    keel__http_reply_clear(&r);
    err = reply_of("HTTP/1.1 500 Oops\r\n\r\n", &r);
    ok(!err && r.status == 500 && r.body_len == 0 && strcmp(r.body, "") == 0, "a reply without a body");
    keel__http_reply_clear(&r);

    err = reply_of("HTTP/1.1 -04 x\r\n\r\nbody", &r);
    ok(err && err->code == KEEL_UNAVAILABLE && strstr(err->message, "status line") && r.status == 0 && !r.headers &&
           !r.body,
       "HTTP/1.1 -04 is refused, not read as 4294967292 (%s)", err ? err->message : "accepted");
    keel_error_free(err);
    err = reply_of("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", &r);
    ok(err && !r.headers, "a reply whose header never ends is refused");
    keel_error_free(err);
    err = reply_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\nhello", &r);
    ok(err && strstr(err->message, "chunked") && !r.headers && !r.body, "a cut chunk is refused, nothing left to free");
    keel_error_free(err);
    err = reply_of("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", &r);
    ok(err != NULL, "a chunk size that is not hexadecimal is refused");
    keel_error_free(err);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* A listener that never accepts nor answers (the kernel completes the
 * handshake and takes what is sent). */
static void test_stalled_peer(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        ok(0, "a listener on loopback");
        return;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", ntohs(a.sin_port));
    keel_http_target t;
    keel_error *err = keel__http_target_parse(url, &t);
    ok(!err, "%s parses", url);
    keel_error_free(err);
    keel_http_reply rep;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    err = keel__http_exchange(&t, "POST", t.path, NULL, "x", 1, 300, -1, &rep);
    double secs = seconds_since(&t0);
    ok(err && err->code == KEEL_DEADLINE_EXCEEDED && secs >= 0.25 && secs < 2,
       "a peer that never answers: deadline_exceeded at the timeout (%.2f s)", secs);
    keel_error_free(err);
    int abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    uint64_t one = 1;
    ok(abort_fd >= 0 && write(abort_fd, &one, sizeof one) == sizeof one, "an abort descriptor, written");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    err = keel__http_exchange(&t, "POST", t.path, NULL, "x", 1, 10000, abort_fd, &rep);
    secs = seconds_since(&t0);
    ok(err && err->code == KEEL_CANCELED && secs < 1, "the exchange is abandoned at once: canceled (%.2f s)", secs);
    char said[200];
    snprintf(said, sizeof said, "%s", err ? err->message : "no error");
    like(said, "was abandoned", "saying so (%s)", said);
    keel_error_free(err);
    close(abort_fd);
    keel__http_target_clear(&t);
    close(fd);
}

int main(void)
{
    test_urls();
    test_status_line();
    test_replies();
    test_stalled_peer();
    return tap_done();
}

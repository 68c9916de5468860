/* tests/integration/test_framing.c - request heads written byte for byte on
 * a raw socket: where a request ends (Content-Length, Transfer-Encoding),
 * Host, field names, and NUL or CR bytes in the request line and in values
 * (RFC 9112, RFC 9110 5.5).  A head in doubt is answered 400 (501 for a
 * transfer coding Keel does not decode) in the Encore error shape, the
 * connection is closed after it, and a request smuggled behind it is never
 * answered; heads that are fine, bare-LF line ends and HTTP/1.0 included,
 * are still served and keep their connection. */
#include <ctype.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv;

/* Sent after every head in doubt: a server that took the head's framing
 * differently from a proxy in front would answer it as a second request. */
#define SMUGGLED "GET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

/* Sends len bytes on a fresh connection and reads until the server closes
 * it (or the receive timeout); *eof says whether it closed.  Caller frees. */
static char *exchange(const char *bytes, size_t len, bool *eof)
{
    int fd = ht_raw_connect(&srv, ht_valgrind() ? 30 : 5);
    if (fd < 0) {
        *eof = false;
        return strdup("");
    }
    send(fd, bytes, len, MSG_NOSIGNAL);
    char *got = ht_recv_all(fd, eof);
    close(fd);
    return got;
}

/* How many responses got holds: status lines, "HTTP/1.1 " and three digits
 * and a space (a message may say "HTTP/1.1" too). */
static int responses(const char *got)
{
    int n = 0;
    for (const char *p = got; (p = strstr(p, "HTTP/1.1 ")); p++)
        if (isdigit((unsigned char)p[9]) && isdigit((unsigned char)p[10]) && isdigit((unsigned char)p[11]) &&
            p[12] == ' ')
            n++;
    return n;
}

/* The body's "code" and "message" when it is the Encore error shape. */
static bool error_body(const char *got, char *code, size_t code_len, char *msg, size_t msg_len)
{
    const char *body = strstr(got, "\r\n\r\n");
    json_t *j = body ? json_loads(body + 4, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    const char *c = NULL, *m = NULL;
    json_t *details = NULL;
    bool shaped = j && json_unpack(j, "{s:s, s:s, s:o}", "code", &c, "message", &m, "details", &details) == 0 &&
                  json_is_null(details);
    if (shaped) {
        snprintf(code, code_len, "%s", c);
        snprintf(msg, msg_len, "%s", m);
    }
    json_decref(j);
    return shaped;
}

/* Sends head (len bytes, NULs allowed) then SMUGGLED; the answer must be
 * status in the Encore shape with fragment in its message, the only one,
 * and the connection closed.  fragment NULL: libmicrohttpd answers by itself
 * before Keel sees the request, with an HTML page whose status line and
 * headers 0.9.75 sends twice; only status, close and nothing smuggled are
 * checked. */
static void refused(const char *what, const char *head, size_t len, int status, const char *fragment)
{
    size_t total = len + strlen(SMUGGLED);
    char *bytes = malloc(total);
    memcpy(bytes, head, len);
    memcpy(bytes + len, SMUGGLED, strlen(SMUGGLED));
    bool eof;
    char *got = exchange(bytes, total, &eof);
    char want[32], code[64] = "", msg[512] = "";
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    ok(strncmp(got, want, strlen(want)) == 0, "%s: answered %d (got \"%.40s\")", what, status, got);
    if (fragment) {
        ok(error_body(got, code, sizeof code, msg, sizeof msg), "%s: in the Encore error shape", what);
        is_str(code, status == 501 ? "unimplemented" : "invalid_argument", "%s: code", what);
        like(msg, fragment, "%s: the message says why", what);
    }
    ok(eof, "%s: the connection is closed after the answer", what);
    if (fragment)
        is_int(responses(got), 1, "%s: one answer only", what);
    ok(!strstr(got, "Hello, smuggled"), "%s: the request behind it is never answered", what);
    free(got);
    free(bytes);
}

#define REFUSED(what, head, status, fragment) refused(what, head, sizeof head - 1, status, fragment)

/* Sends head and then a request that closes; both must be answered, the
 * first with 'want' in its answer, and the connection kept between them. */
static void served(const char *what, const char *head, const char *want)
{
    const char *next = "GET /hello/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    size_t hl = strlen(head), nl = strlen(next);
    char *bytes = malloc(hl + nl);
    memcpy(bytes, head, hl);
    memcpy(bytes + hl, next, nl);
    bool eof;
    char *got = exchange(bytes, hl + nl, &eof);
    like(got, want, "%s: served", what);
    ok(responses(got) == 2 && strstr(got, "Hello, next!"), "%s: and the connection carries the next request", what);
    free(got);
    free(bytes);
}

static void test_nul_and_cr(void)
{
    REFUSED("a NUL inside a header value", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: ab\0cd\r\n\r\n", 400,
            "header \"X-Token\" contains a NUL byte");
    REFUSED("a NUL ending a header value", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: ab\0\r\n\r\n", 400,
            "header \"X-Token\" contains a NUL byte");
    REFUSED("a NUL in a header value before another header",
            "GET /test/headers HTTP/1.1\r\nX-Token: ab\0cd\r\nHost: x\r\n\r\n", 400,
            "header \"X-Token\" contains a NUL byte");
    REFUSED("a NUL in a value that only has a NUL", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: \0\r\n\r\n",
            400, "contains a NUL byte");
    REFUSED("a bare CR in a header value", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: ab\rcd\r\n\r\n", 400,
            "header \"X-Token\" contains a CR");
    REFUSED("a bare CR ending a header value", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: ab\r\r\n\r\n", 400,
            "contains a CR");
    REFUSED("a NUL in the path", "GET /hello/ab\0cd HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request target");
    REFUSED("a NUL in the query", "GET /test/search?q=ab\0cd HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request target");
    REFUSED("a CR in the path", "GET /hello/ab\rcd HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request target");
    REFUSED("a space in the path", "GET /hello/a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request target");
    REFUSED("a NUL in the method", "GE\0T /hello/x HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method");
    REFUSED("a folded header line", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: ab\r\n cd\r\n\r\n", 400,
            "folding");
    REFUSED("a folded last header line", "GET /test/headers HTTP/1.1\r\nX-Token: ab\r\nHost: x\r\n\tcd\r\n\r\n", 400,
            "folding");

    /* What is fine still reaches the handler whole. */
    served("a header value with blanks around it", "GET /test/headers HTTP/1.1\r\nHost: x\r\nX-Token: \t t0k3n\r\n\r\n",
           "{\"token\":\"t0k3n\"}");
    served("an empty header beside others", "GET /test/headers HTTP/1.1\r\nX-Empty:\r\nHost: x\r\nX-Token: t\r\n\r\n",
           "{\"token\":\"t\"}");
    served("bare LF line ends", "GET /test/headers HTTP/1.1\nHost: x\nX-Token: lf\n\n", "{\"token\":\"lf\"}");
    served("mixed line ends", "GET /test/headers HTTP/1.1\r\nHost: x\nX-Token: mixed\r\n\n", "{\"token\":\"mixed\"}");
    served("a query and an escaped path", "GET /hello/J%C3%BCrgen?x=1&y HTTP/1.1\r\nHost: x\r\n\r\n", "Hello, J\xc3\xbcrgen!");

    /* Many fields and a long one: the head spans a grown read buffer. */
    static char big[24 * 1024];
    int n = snprintf(big, sizeof big, "GET /test/headers HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 60; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-Filler-%d: %d\r\n", i, i);
    n += snprintf(big + n, sizeof big - (size_t)n, "X-Long: ");
    memset(big + n, 'a', 12000);
    n += 12000;
    snprintf(big + n, sizeof big - (size_t)n, "\r\nX-Token: big\r\n\r\n");
    served("60 headers and a 12 KB one", big, "{\"token\":\"big\"}");
}

static void test_content_length(void)
{
    REFUSED("two Content-Length headers",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 41\r\n\r\n", 400,
            "more than one Content-Length");
    REFUSED("two equal Content-Length headers",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400,
            "more than one Content-Length");
    REFUSED("a Content-Length after an invalid one",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3x\r\n\r\nabc", 400,
            "more than one Content-Length");
    /* libmicrohttpd refuses a first Content-Length that is not a number itself. */
    REFUSED("a Content-Length list", "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400,
            NULL);
    REFUSED("a signed Content-Length", "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400,
            NULL);
    served("one Content-Length", "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "abc");
}

static void test_transfer_encoding(void)
{
    REFUSED("Transfer-Encoding with a space before the colon",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400,
            "\"Transfer-Encoding \" is not a token");
    REFUSED("a tab before the colon", "GET /hello/x HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n", 400, "not a token");
    REFUSED("Content-Length and Transfer-Encoding",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400, "both Content-Length and Transfer-Encoding");
    REFUSED("Transfer-Encoding and Content-Length",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            400, "both Content-Length and Transfer-Encoding");
    REFUSED("gzip, chunked", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            501, "transfer coding \"gzip\" is not supported");
    REFUSED("gzip then chunked in two fields",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            501, "\"gzip\" is not supported");
    REFUSED("xchunked", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400,
            "last transfer coding must be chunked");
    REFUSED("chunked, gzip", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            400, "last transfer coding must be chunked");
    REFUSED("chunked twice", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            400, "more than once");
    REFUSED("chunked in a second field",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400, "exactly one \"chunked\"");
    REFUSED("chunked with a trailing blank",
            "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked \r\n\r\n0\r\n\r\n", 400,
            "exactly one \"chunked\"");
    REFUSED("an empty Transfer-Encoding", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400,
            "last transfer coding must be chunked");
    REFUSED("Transfer-Encoding in HTTP/1.0",
            "POST /test/echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "HTTP/1.0");
    served("a chunked body", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           "5\r\nhello\r\n0\r\n\r\n", "hello");
    served("Chunked in another case", "POST /test/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
           "3\r\nabc\r\n0\r\n\r\n", "abc");
}

static void test_host(void)
{
    REFUSED("no Host in HTTP/1.1", "GET /hello/x HTTP/1.1\r\n\r\n", 400, "Host header is missing");
    REFUSED("two Host headers", "GET /hello/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host");
    REFUSED("two Host headers in HTTP/1.0", "GET /hello/x HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400,
            "more than one Host");
    REFUSED("a Host with a path", "GET /hello/x HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "not host[:port]");
    REFUSED("a Host with a space", "GET /hello/x HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "not host[:port]");
    REFUSED("a Host with user info", "GET /hello/x HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "not host[:port]");
    served("a Host with a port", "GET /hello/port HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", "Hello, port!");
    served("an IPv6 Host", "GET /hello/v6 HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "Hello, v6!");
    served("an empty Host", "GET /hello/empty HTTP/1.1\r\nHost:\r\n\r\n", "Hello, empty!");

    bool eof;
    const char *old = "GET /hello/old HTTP/1.0\r\n\r\n";
    char *got = exchange(old, strlen(old), &eof);
    like(got, "Hello, old!", "HTTP/1.0 without Host is served");
    free(got);
}

int main(void)
{
    if (!getenv("KEEL_TESTAPP")) {
        printf("Bail out! KEEL_TESTAPP is not set (run through make check)\n");
        return 1;
    }
    if (!ht_start(&srv, getenv("KEEL_TESTAPP"), NULL)) {
        printf("Bail out! the test app did not start\n");
        return 1;
    }
    test_nul_and_cr();
    test_content_length();
    test_transfer_encoding();
    test_host();
    ht_response r = ht_request(&srv, "GET", "/hello/after", NULL, 0, NULL);
    is_int(r.status, 200, "the server is fine after all of them");
    ht_free(&r);
    is_int(ht_stop(&srv), 0, "the app exits 0 on SIGTERM%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    return tap_done();
}

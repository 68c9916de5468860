/* tests/integration/test_slow.c - clients that are slow on purpose, against
 * the test app: headers trickled a byte at a time must be complete by a
 * deadline (on a fresh and on a kept-alive connection), bodies and answers
 * must move at a minimum rate, the memory held by answers waiting for slow
 * readers is bounded (503 past the budget), and near the connection cap a
 * few addresses cannot take every slot.  libmicrohttpd's own timeout is an
 * idle timeout, which trickling resets: each of these held before. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

/* Valgrind runs everything some times slower: deadlines scale with it. */
static double scale(void)
{
    return ht_valgrind() ? 4.0 : 1.0;
}

/* True when the server has closed fd (end of file or reset), reading and
 * dropping whatever came before; waits at most ms. */
static bool closed_within(int fd, int ms)
{
    double until = ht_now_s() + ms / 1000.0;
    char buf[65536];
    for (;;) {
        int left = (int)((until - ht_now_s()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left > 0 ? left : 0) > 0) {
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                return true;
        }
        if (ht_now_s() >= until)
            return false;
    }
}

/* Sends s a byte every step_ms until the server closes the connection or
 * max_s pass; returns the seconds it took (or max_s). */
static double trickle_until_closed(int fd, const char *s, int step_ms, double max_s)
{
    double t0 = ht_now_s();
    size_t i = 0, n = strlen(s);
    while (ht_now_s() - t0 < max_s) {
        if (send(fd, s + i % n, 1, MSG_NOSIGNAL) < 0)
            return ht_now_s() - t0;
        i++;
        if (closed_within(fd, step_ms))
            return ht_now_s() - t0;
    }
    return max_s;
}

static double metric(const ht_server *s, const char *line_prefix)
{
    ht_response r = ht_request(s, "GET", "/__keel/metrics", NULL, 0, NULL);
    const char *at = r.body ? strstr(r.body, line_prefix) : NULL;
    double v = at ? atof(at + strlen(line_prefix)) : -1;
    ht_free(&r);
    return v;
}

static void test_deadlines(void)
{
    ht_server s;
    char hto[64], grace[64];
    snprintf(hto, sizeof hto, "KEEL_HEADER_TIMEOUT_MS=%d", (int)(1500 * scale()));
    snprintf(grace, sizeof grace, "KEEL_RATE_GRACE_MS=%d", (int)(1500 * scale()));
    const char *env[] = {hto, grace, "KEEL_MIN_RATE=1000000", "KEEL_CONN_TIMEOUT=2", NULL};
    if (!ok(ht_start(&s, getenv("KEEL_TESTAPP"), env), "an app with a 1.5 s header deadline and 1 MB/s minimum rate"))
        return;
    double limit = 4.0 * scale();

    /* Headers a byte every 300 ms: the idle timeout (2 s) never fires. */
    int fd = ht_connect(&s);
    double took = trickle_until_closed(fd, "GET /hello/x HTTP/1.1\r\nHost: x\r\nX-Pad: ", 300, 3 * limit);
    ok(took >= 1.2 * scale() && took < limit,
       "headers trickled a byte every 300 ms are cut at their deadline (after %.1f s)", took);
    close(fd);

    /* The same on a kept-alive connection, after a first request. */
    fd = ht_raw_connect(&s, 10);
    const char *first = "GET /hello/first HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[4096];
    ssize_t got = send(fd, first, strlen(first), MSG_NOSIGNAL) > 0 ? recv(fd, buf, sizeof buf - 1, 0) : -1;
    ok(got > 12 && strncmp(buf, "HTTP/1.1 200", 12) == 0, "a first request on a kept-alive connection is answered");
    took = trickle_until_closed(fd, "GET /hello/x HTTP/1.1\r\nHost: x\r\nX-Pad: ", 300, 3 * limit + 2);
    ok(took < limit + 2 * scale(), "the next request's headers, trickled, are cut too (after %.1f s)", took);
    close(fd);

    ok(metric(&s, "keel_http_connections_cut_total{reason=\"headers\"} ") >= 2,
       "both are counted on /__keel/metrics (keel_http_connections_cut_total{reason=\"headers\"})");
    is_int(ht_stop(&s), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");

    /* The rates, with the default idle timeout (30 s), which a slow reader
     * keeps resetting. */
    const char *env2[] = {grace, "KEEL_MIN_RATE=1000000", NULL};
    if (!ok(ht_start(&s, getenv("KEEL_TESTAPP"), env2), "an app with a 1 MB/s minimum rate and a 30 s idle timeout"))
        return;

    /* A body at 50 bytes a second. */
    fd = ht_connect(&s);
    const char *head = "POST /test/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    send(fd, head, strlen(head), MSG_NOSIGNAL);
    double t0 = ht_now_s();
    bool cut = false;
    while (!cut && ht_now_s() - t0 < 3 * limit) {
        send(fd, "0123456789", 10, MSG_NOSIGNAL);
        cut = closed_within(fd, 200);
    }
    took = ht_now_s() - t0;
    ok(cut && took < limit, "a body sent at 50 bytes a second is cut after the grace period (%.1f s)", took);
    close(fd);

    /* A fast body and a fast reader are not. */
    size_t big = 900 * 1024;
    char *body = malloc(big);
    memset(body, 'b', big);
    ht_response r = ht_request(&s, "POST", "/test/echo", body, big, NULL);
    is_int(r.status, 201, "a 900 KiB body sent at full speed is taken");
    ht_free(&r);
    free(body);
    r = ht_request(&s, "GET", "/test/big/8000000", NULL, 0, NULL);
    ok(r.status == 200 && r.len == 8000000, "an 8 MB answer read at full speed arrives whole (%zu bytes)", r.len);
    ht_free(&r);

    /* An 8 MB answer read at 10 KB a second. */
    fd = ht_connect(&s);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char *get = "GET /test/big/8000000 HTTP/1.1\r\nHost: x\r\n\r\n";
    send(fd, get, strlen(get), MSG_NOSIGNAL);
    t0 = ht_now_s();
    size_t read_total = 0;
    cut = false;
    while (!cut && ht_now_s() - t0 < 20 * scale()) {
        ssize_t n = recv(fd, buf, 1000, MSG_DONTWAIT);
        if (n > 0)
            read_total += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            cut = true;
        usleep(100 * 1000);
    }
    ok(cut && read_total < 8000000, "an answer read at 10 KB a second is cut (after %.1f s, %zu bytes read)",
       ht_now_s() - t0, read_total);
    close(fd);
    ok(metric(&s, "keel_http_connections_cut_total{reason=\"body\"} ") >= 1 &&
           metric(&s, "keel_http_connections_cut_total{reason=\"response\"} ") >= 1,
       "each cut is counted on /__keel/metrics by reason (body %g, response %g)",
       metric(&s, "keel_http_connections_cut_total{reason=\"body\"} "),
       metric(&s, "keel_http_connections_cut_total{reason=\"response\"} "));
    r = ht_request(&s, "GET", "/hello/after", NULL, 0, NULL);
    is_int(r.status, 200, "the app serves on");
    ht_free(&r);
    is_int(ht_stop(&s), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
}

/* Answers waiting for readers that do not read hold their requests'
 * memory; past the budget new answers are 503 until they go. */
static void test_response_budget(void)
{
    ht_server s;
    /* No per-client limits (behind a proxy): the budget alone. */
    const char *env[] = {"KEEL_RESPONSE_BUDGET=20000000", "KEEL_MAX_CONNECTIONS_PER_IP=0", "KEEL_IO_THREADS=1", NULL};
    if (!ok(ht_start(&s, getenv("KEEL_TESTAPP"), env), "an app with a 20 MB response budget starts"))
        return;
    int small = 4096;
    int stuck = ht_connect(&s);
    setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char *get = "GET /test/big/12000000 HTTP/1.1\r\nHost: x\r\n\r\n";
    send(stuck, get, strlen(get), MSG_NOSIGNAL);
    usleep((useconds_t)(500 * 1000 * scale()));
    ht_response r = ht_request(&s, "GET", "/test/big/12000000", NULL, 0, NULL);
    is_int(r.status, 503, "while a 12 MB answer waits for a reader that does not read, a second one is 503");
    like(r.body, "server busy", "saying the server is busy");
    char retry[16] = "";
    ok(ht_header(&r, "Retry-After", retry, sizeof retry), "with Retry-After");
    ht_free(&r);
    r = ht_request(&s, "GET", "/hello/small", NULL, 0, NULL);
    is_int(r.status, 200, "small answers still fit");
    ht_free(&r);
    close(stuck);
    int ok200 = 0;
    for (int i = 0; i < 50 && ok200 == 0; i++) {
        usleep(100 * 1000);
        r = ht_request(&s, "GET", "/test/big/12000000", NULL, 0, NULL);
        ok200 = r.status == 200 && r.len == 12000000;
        ht_free(&r);
    }
    ok(ok200, "once the reader is gone, the budget is back: a 12 MB answer goes out whole");
    is_int(ht_stop(&s), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
}

/* GET path from the address src on a connection of its own; the status of
 * the answer (0: none) and, in *len, the bytes that came with it. */
static int get_from(const ht_server *s, const char *src, const char *path, size_t *len)
{
    int fd = ht_connect_from(s, src);
    if (fd < 0)
        return 0;
    char req[256];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    size_t total = 0;
    char head[16] = "";
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
        if (total == 0)
            memcpy(head, buf, n < 15 ? (size_t)n : 15);
        total += (size_t)n;
    }
    close(fd);
    *len = total;
    return strncmp(head, "HTTP/1.1 ", 9) == 0 ? atoi(head + 9) : 0;
}

/* One address may hold at most a quarter of the budget: a few slow readers
 * cannot take it all from everybody else. */
static void test_response_share(void)
{
    ht_server s;
    const char *env[] = {"KEEL_RESPONSE_BUDGET=40000000", "KEEL_IO_THREADS=1", NULL};
    if (!ok(ht_start(&s, getenv("KEEL_TESTAPP"), env), "an app with a 40 MB response budget starts"))
        return;
    int small = 4096;
    int stuck = ht_connect_from(&s, "127.0.0.2");
    setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char *get = "GET /test/big/8000000 HTTP/1.1\r\nHost: x\r\n\r\n";
    send(stuck, get, strlen(get), MSG_NOSIGNAL);
    usleep((useconds_t)(500 * 1000 * scale()));
    size_t len = 0;
    is_int(get_from(&s, "127.0.0.2", "/test/big/8000000", &len), 503,
           "an address holding an 8 MB answer it does not read gets 503 for a second one (over its 10 MB share)");
    int status = get_from(&s, "127.0.0.3", "/test/big/8000000", &len);
    ok(status == 200 && len > 8000000, "another address is served the same 8 MB answer (%d, %zu bytes)", status, len);
    close(stuck);
    is_int(ht_stop(&s), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
}

/* One address under its own limit cannot take every slot of the process. */
static void test_fair_share(void)
{
    ht_server s;
    const char *env[] = {"KEEL_MAX_CONNECTIONS=40", "KEEL_MAX_CONNECTIONS_PER_IP=40", "KEEL_IO_THREADS=1", NULL};
    if (!ok(ht_start(&s, getenv("KEEL_TESTAPP"), env), "an app with 40 connection slots starts"))
        return;
    int fds[40];
    for (int i = 0; i < 40; i++) {
        fds[i] = ht_connect_from(&s, "127.0.0.2");
        usleep(5000); /* accepted one by one */
    }
    usleep(300 * 1000);
    int open_ = 0;
    for (int i = 0; i < 40; i++)
        if (fds[i] >= 0 && !closed_within(fds[i], 1))
            open_++;
    ok(open_ >= 29 && open_ <= 32, "one address opening 40 idle connections keeps about three quarters (%d)", open_);
    int other = ht_connect_from(&s, "127.0.0.3");
    const char *get = "GET /hello/neighbour HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    bool eof = false;
    char *got = NULL;
    if (other >= 0 && send(other, get, strlen(get), MSG_NOSIGNAL) > 0)
        got = ht_recv_all(other, &eof);
    ok(got && strncmp(got, "HTTP/1.1 200", 12) == 0, "another address is still served");
    free(got);
    if (other >= 0)
        close(other);
    for (int i = 0; i < 40; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    is_int(ht_stop(&s), 0, "the app stops cleanly");
}

int main(void)
{
    if (!getenv("KEEL_TESTAPP")) {
        printf("Bail out! KEEL_TESTAPP is not set (run through make check)\n");
        return 1;
    }
    test_deadlines();
    test_response_budget();
    test_response_share();
    test_fair_share();
    return tap_done();
}

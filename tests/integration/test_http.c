/* tests/integration/test_http.c - the server end to end: real processes, real
 * sockets, real HTTP.  Typed success and every error class, typed bodies
 * refused unless JSON (415), raw streaming both ways, routing over HTTP,
 * limits, request ids and logs, private endpoints, a slow handler next to
 * fast ones, graceful shutdown, the app model. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv;

static ht_response get(const char *path)
{
    return ht_request(&srv, "GET", path, NULL, 0, NULL);
}

static ht_response post_json(const char *path, const char *body)
{
    const char *h[] = {"Content-Type: application/json", NULL};
    return ht_request(&srv, "POST", path, body, strlen(body), h);
}

/* The "code" and "message" of an error body; false if it is not that shape. */
static bool error_shape(const ht_response *r, char *code, size_t code_len, char *msg, size_t msg_len)
{
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    const char *c = NULL, *m = NULL;
    json_t *details = NULL;
    bool ok_shape = j && json_unpack(j, "{s:s, s:s, s:o}", "code", &c, "message", &m, "details", &details) == 0 &&
                    json_is_null(details) && json_object_size(j) == 3;
    if (ok_shape) {
        snprintf(code, code_len, "%s", c);
        snprintf(msg, msg_len, "%s", m);
    }
    json_decref(j);
    return ok_shape;
}

/* Checks status, error code and a fragment of the message in one go. */
static void expect_error(ht_response r, long status, const char *code, const char *fragment, const char *what)
{
    char c[64] = "", m[512] = "";
    is_int(r.status, status, "%s: status %ld", what, status);
    ok(error_shape(&r, c, sizeof c, m, sizeof m), "%s: Encore error shape", what);
    is_str(c, code, "%s: code %s", what ? what : "?", code ? code : "?");
    if (fragment)
        like(m, fragment, "%s: message names the problem", what);
    ht_free(&r);
}

static void test_hello(void)
{
    ht_response r = get("/hello/world");
    is_int(r.status, 200, "GET /hello/world is 200");
    is_str(r.body, "{\"message\":\"Hello, world!\"}", "GET /hello/world greets");
    char ct[128];
    ok(ht_header(&r, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0,
       "typed responses are application/json");
    ht_free(&r);

    r = get("/hello/J%C3%BCrgen%20K");
    is_str(r.body, "{\"message\":\"Hello, J\xc3\xbcrgen K!\"}", "path parameters are percent-decoded");
    ht_free(&r);

    r = post_json("/hello", "{\"name\":\"Ada\"}");
    is_int(r.status, 200, "POST /hello is 200");
    is_str(r.body, "{\"message\":\"Hello, Ada!\"}", "POST /hello greets from the JSON body (via a private endpoint)");
    ht_free(&r);

    r = post_json("/hello", "{\"name\":\"q\\\"uote\\n\"}");
    is_str(r.body, "{\"message\":\"Hello, q\\\"uote\\n!\"}", "response strings are JSON-escaped");
    ht_free(&r);

    r = ht_request(&srv, "HEAD", "/hello/world", NULL, 0, NULL);
    is_int(r.status, 200, "HEAD reaches a GET endpoint");
    is_int(r.len, 0, "HEAD has no body");
    ht_free(&r);
}

static void test_typed_errors(void)
{
    expect_error(post_json("/hello", "{\"name\": \"x\",\n \"oops\" }"), 400, "invalid_argument",
                 "line 2", "malformed JSON names the line");
    expect_error(post_json("/hello", "{\"name\": 12}"), 400, "invalid_argument", "\"name\"",
                 "a wrongly typed field is named");
    expect_error(post_json("/hello", "{}"), 400, "invalid_argument", "missing required field \"name\"",
                 "a missing field is named");
    expect_error(post_json("/hello", "[1,2]"), 400, "invalid_argument", "object", "a non-object body");
    expect_error(post_json("/hello", "{\"name\":\"\xff\xfe\"}"), 400, "invalid_argument", NULL,
                 "invalid UTF-8 is rejected");
    expect_error(post_json("/test/types",
                           "{\"name\":\"n\",\"count\":1,\"ratio\":0.5,\"active\":true,\"home\":{\"city\":\"c\",\"lat\":1},"
                           "\"items\":[{\"title\":\"a\",\"qty\":1},{\"title\":\"b\",\"qty\":2},{\"qty\":3}]}"),
                 400, "invalid_argument", "items[2].title", "a nested missing field names its path");
    expect_error(post_json("/test/types",
                           "{\"name\":\"n\",\"count\":1.5,\"ratio\":0.5,\"active\":true,\"home\":{\"city\":\"c\",\"lat\":1},\"items\":[]}"),
                 400, "invalid_argument", "count", "a fraction for an int64 is rejected");
    expect_error(get("/test/search"), 400, "invalid_argument", "q", "a missing query parameter is named");
    expect_error(get("/test/search?q=a&n=abc"), 400, "invalid_argument", "n", "a malformed query integer is named");
    expect_error(get("/test/headers"), 400, "invalid_argument", "X-Token", "a missing header is named");
    expect_error(get("/hello/%2e%2e"), 400, "invalid_argument", "name", "a '..' parameter never reaches a handler");
    expect_error(get("/hello/a%00b"), 400, "invalid_argument", "name", "a NUL parameter never reaches a handler");
    expect_error(get("/hello/..%2F..%2Fetc%2Fpasswd"), 400, "invalid_argument", "name",
                 "an encoded '/' never reaches a :param");
    expect_error(get("/api//etc/passwd"), 400, "invalid_argument", "path",
                 "an empty first segment never makes a wildcard value absolute");
    expect_error(get("/test/search?q=abc%00xyz"), 400, "invalid_argument", "query parameter \"q\" contains a NUL byte",
                 "a NUL in a query value is refused, not cut short");
    expect_error(get("/test/search?q=ok&t%00ag=x"), 400, "invalid_argument", "contains a NUL byte",
                 "a NUL in a query name is refused");
}

/* A typed endpoint reads JSON only: a body of another media type (a form or
 * text/plain post, which another site's page can send without a CORS
 * preflight) or without a Content-Type is 415 before the handler runs. */
static ht_response post_as(const char *path, const char *content_type, const char *body)
{
    char line[200];
    snprintf(line, sizeof line, "Content-Type:%s%s", content_type ? " " : "", content_type ? content_type : "");
    const char *h[] = {line, NULL};
    return ht_request(&srv, "POST", path, body, strlen(body), h);
}

static void test_media_types(void)
{
    static const char *const refused[] = {"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "text/json", "application/jsonp",
                                          "application/json; charset=latin1", "application/json-seq", NULL};
    const char *body = "{\"name\":\"Ada\"}";
    char what[160];
    for (size_t i = 0; refused[i]; i++) {
        snprintf(what, sizeof what, "a typed endpoint refuses a %s body", refused[i]);
        expect_error(post_as("/hello", refused[i], body), 415, "invalid_argument", "unsupported media type", what);
    }
    expect_error(post_as("/hello", NULL, body), 415, "invalid_argument", "without a Content-Type",
                 "a typed endpoint refuses a body without a Content-Type");
    static const char *const taken[] = {"application/json", "Application/JSON", "application/json; charset=utf-8",
                                        "application/json;charset=\"UTF-8\"", "application/vnd.api+json", NULL};
    for (size_t i = 0; taken[i]; i++) {
        ht_response r = post_as("/hello", taken[i], body);
        ok(r.status == 200 && r.body && strstr(r.body, "Hello, Ada!"), "a %s body is read (%ld)", taken[i], r.status);
        ht_free(&r);
    }
    ht_response r = ht_request(&srv, "GET", "/hello/plain", NULL, 0, (const char *[]){"Content-Type: text/plain", NULL});
    is_int(r.status, 200, "a request without a body is not asked for its Content-Type");
    ht_free(&r);
    r = post_as("/test/echo", "text/plain", "raw words");
    ok(r.status == 201 && r.body && strstr(r.body, "raw words"), "a raw endpoint reads any media type");
    ht_free(&r);
}

static void test_typed_success(void)
{
    const char *in =
        "{\"name\":\"n\",\"count\":-9007199254740993,\"ratio\":0.25,\"active\":true,"
        "\"home\":{\"city\":\"Z\\u00fcrich\",\"lat\":47.5},\"items\":[{\"title\":\"a\",\"qty\":1},{\"title\":\"b\",\"qty\":2}],"
        "\"tags\":[\"x\",\"y\"],\"limit\":10,\"unknown\":{\"ignored\":true}}";
    const char *h[] = {"Content-Type: application/json", "X-Trace: abc", NULL};
    ht_response r = ht_request(&srv, "POST", "/test/types?mode=fast", in, strlen(in), h);
    is_int(r.status, 200, "every field type decodes");
    json_t *j = json_loads(r.body, 0, NULL);
    ok(j != NULL, "the reply is JSON");
    json_int_t count = 0, qty = 0, limit = 0;
    double ratio = 0, lat = 0;
    int active = 0;
    const char *city = NULL, *title = NULL, *tag = NULL;
    json_t *first_item = NULL, *first_tag = NULL;
    json_error_t uerr;
    int unpacked = j ? json_unpack_ex(j, &uerr, 0, "{s:I, s:f, s:b, s:{s:s, s:f}, s:[o,{s:s,s:I}], s:[o,s], s:I}",
                                      "count", &count, "ratio", &ratio, "active", &active, "home", "city", &city,
                                      "lat", &lat, "items", &first_item, "title", &title, "qty", &qty,
                                      "tags", &first_tag, &tag, "limit", &limit)
                     : -1;
    ok(unpacked == 0, "the reply has every field (%s)", unpacked ? uerr.text : "ok");
    is_int(count, -9007199254740993LL, "int64 beyond 2^53 survives");
    ok(ratio == 0.25 && lat == 47.5, "doubles round-trip");
    ok(active, "bool round-trips");
    is_str(city, "Z\xc3\xbcrich", "nested object strings round-trip");
    is_str(title, "b", "array of objects round-trips");
    is_int(qty, 2, "array element integers round-trip");
    is_str(tag, "y", "array of strings round-trips");
    is_int(limit, 10, "optional int present is encoded");
    ok(j && !json_object_get(j, "note"), "absent optional string is omitted");
    ok(j && !json_object_get(j, "trace"), "header fields are not in the body");
    is_str(j ? json_string_value(json_object_get(j, "mode")) : NULL, "fast", "explicit query field on a POST");
    json_decref(j);
    ht_free(&r);

    r = get("/test/search?q=hi&tag=a&tag=b%20c&flag=true&n=-4");
    is_str(r.body, "{\"q\":\"hi\",\"n\":-4,\"tag\":[\"a\",\"b c\"],\"flag\":true}",
           "GET fields come from the query string, repeated keys make arrays");
    ht_free(&r);
    r = get("/test/search?q=only");
    is_str(r.body, "{\"q\":\"only\",\"tag\":[]}", "absent optional query fields are omitted");
    ht_free(&r);

    const char *th[] = {"X-Token: t0k3n", NULL};
    r = ht_request(&srv, "GET", "/test/headers", NULL, 0, th);
    is_str(r.body, "{\"token\":\"t0k3n\"}", "header fields decode");
    char v[64];
    ok(ht_header(&r, "X-Echo", v, sizeof v) && strcmp(v, "t0k3n") == 0, "response header fields are sent as headers");
    ht_free(&r);
}

static void test_error_codes(void)
{
    static const struct { const char *code; long status; } codes[] = {
        {"canceled", 499}, {"unknown", 500}, {"invalid_argument", 400}, {"deadline_exceeded", 504},
        {"not_found", 404}, {"already_exists", 409}, {"permission_denied", 403},
        {"resource_exhausted", 429}, {"failed_precondition", 400}, {"aborted", 409},
        {"out_of_range", 400}, {"unimplemented", 501}, {"internal", 500}, {"unavailable", 503},
        {"data_loss", 500}, {"unauthenticated", 401},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        char path[96];
        snprintf(path, sizeof path, "/test/error/%s", codes[i].code);
        ht_response r = get(path);
        char c[64] = "", m[256] = "";
        is_int(r.status, codes[i].status, "handler error %s is HTTP %ld", codes[i].code, codes[i].status);
        ok(error_shape(&r, c, sizeof c, m, sizeof m) && strcmp(c, codes[i].code) == 0, "body code is %s", codes[i].code);
        ok(!tap_contains(r.body, "not for clients"), "%s: the internal cause stays out of the body", codes[i].code);
        ht_free(&r);
    }
    usleep(200 * 1000); /* the log is flushed every 50 ms */
    char *log = ht_log(&srv);
    like(log, "internal detail", "the internal cause is logged");
    free(log);
}

static void test_routing(void)
{
    expect_error(get("/nope"), 404, "not_found", "endpoint not found", "unknown route");
    ht_response r = ht_request(&srv, "DELETE", "/hello/world", NULL, 0, NULL);
    is_int(r.status, 405, "a known path with another method is 405");
    char allow[64] = "";
    ok(ht_header(&r, "Allow", allow, sizeof allow), "405 carries an Allow header");
    is_str(allow, "GET, HEAD", "Allow lists the methods");
    ht_free(&r);

    struct { const char *path, *want; } cases[] = {
        {"/test/route/static", "/test/route/static"},
        {"/test/route/42", "/test/route/:id id=42"},
        {"/test/route/42/more", "/test/route/:id/more id=42"},
        {"/test/route/files/a/b.txt", "/test/route/files/*rest rest=a/b.txt"},
        {"/test/route/files/", "/test/route/files/*rest rest="},
        {"/test/route/files", "/test/route/:id id=files"},
        {"/test/anything/else", "/test/!other other=anything/else"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = get(cases[i].path);
        is_str(r.body, cases[i].want, "GET %s routes by precedence", cases[i].path);
        ht_free(&r);
    }
    r = get("/test/secret?value=2");
    is_str(r.body, "/test/!other other=secret",
           "a private endpoint is not reachable: its path falls to GET /test/!other as an undeclared one would");
    ht_free(&r);
    r = get("/test/double?value=21");
    is_str(r.body, "{\"value\":42}", "a public endpoint calls a private one in-process");
    ht_free(&r);
}

/* The status and Allow header of method path, as "405 GET, HEAD" ("404 "
 * without Allow). */
static void answer_of(const char *method, const char *path, char *out, size_t len)
{
    ht_response r = ht_request(&srv, method, path, "{}", 2, NULL);
    char allow[96] = "";
    ht_header(&r, "Allow", allow, sizeof allow);
    snprintf(out, len, "%ld %s", r.status, allow);
    ht_free(&r);
}

/* A private endpoint looks from outside exactly like a path nobody declared:
 * no 404 where its neighbours get 405, no method of its own in an Allow, no
 * static route of its own winning over a public parameter. */
static void test_private_unseen(void)
{
    static const struct { const char *method, *path, *like_path, *want; } cases[] = {
        {"POST", "/hello/compose", "/hello/nobody", "405 GET, HEAD"},   /* private POST, public GET /hello/:name */
        {"POST", "/test/double", "/test/route/static", "405 GET, HEAD"}, /* private POST beside public GET */
        {"DELETE", "/test/double", "/test/route/static", "405 GET, HEAD"},
        {"PUT", "/test/secret", "/test/never-declared", "405 GET, HEAD"}, /* under GET /test/!other */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[128], twin[128];
        answer_of(cases[i].method, cases[i].path, got, sizeof got);
        answer_of(cases[i].method, cases[i].like_path, twin, sizeof twin);
        is_str(got, cases[i].want, "%s %s answers 405 with the public methods only", cases[i].method,
               cases[i].path);
        is_str(got, twin, "%s %s answers as %s %s does", cases[i].method, cases[i].path, cases[i].method,
               cases[i].like_path);
    }
    ht_response r = get("/test/route/hidden");
    is_str(r.body, "/test/route/:id id=hidden", "a private GET /test/route/hidden does not hide GET /test/route/:id");
    ht_free(&r);
}

/* CORS preflights list the methods a path takes from outside, and never a
 * private endpoint's. */
static void test_private_preflight(void)
{
    char config[] = "/tmp/keel-test-http-cors-XXXXXX";
    int fd = mkstemp(config);
    const char *json = "{\"cors\": {\"allow_origins\": [\"http://localhost:5173\"]}}";
    ok(fd >= 0 && write(fd, json, strlen(json)) == (ssize_t)strlen(json), "a CORS infra config is written");
    if (fd >= 0)
        close(fd);
    char env_config[128];
    snprintf(env_config, sizeof env_config, "KEEL_INFRA_CONFIG=%s", config);
    const char *env[] = {env_config, NULL};
    ht_server s2;
    if (!ok(ht_start(&s2, getenv("KEEL_TESTAPP"), env), "an app allowing http://localhost:5173 starts")) {
        unlink(config);
        return;
    }
    static const struct { const char *path, *wanted, *want; } cases[] = {
        {"/test/double", "POST", "204 "},          /* refused: the POST is private */
        {"/test/double", "GET", "204 GET, HEAD"},
        {"/test/secret", "GET", "204 GET, HEAD"},  /* as any path under GET /test/!other */
        {"/test/never-declared", "GET", "204 GET, HEAD"},
        {"/hello/compose", "POST", "204 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char acrm[64];
        snprintf(acrm, sizeof acrm, "Access-Control-Request-Method: %s", cases[i].wanted);
        const char *h[] = {"Origin: http://localhost:5173", acrm, NULL};
        ht_response r = ht_request(&s2, "OPTIONS", cases[i].path, NULL, 0, h);
        char methods[96] = "", got[128];
        ht_header(&r, "Access-Control-Allow-Methods", methods, sizeof methods);
        snprintf(got, sizeof got, "%ld %s", r.status, methods);
        is_str(got, cases[i].want, "a preflight for %s %s lists the public methods only", cases[i].wanted,
               cases[i].path);
        ht_free(&r);
    }
    is_int(ht_stop(&s2), 0, "the CORS app stops cleanly");
    unlink(config);
}

static void test_raw(void)
{
    const char *body = "raw bytes \x01\x02 as-is";
    ht_response r = ht_request(&srv, "POST", "/test/echo", body, strlen(body), NULL);
    is_int(r.status, 201, "raw handler sets its status");
    ok(r.len == strlen(body) && memcmp(r.body, body, r.len) == 0, "raw handler sees the body byte for byte");
    char v[32];
    ok(ht_header(&r, "X-Body-Length", v, sizeof v) && atoi(v) == (int)strlen(body), "raw handler sets headers");
    ht_free(&r);

    r = ht_request(&srv, "PATCH", "/api/v1/things?x=1", "abc", 3, NULL);
    is_int(r.status, 200, "the /api catch-all takes any method");
    like(r.body, "\"method\":\"PATCH\"", "catch-all sees the method");
    like(r.body, "\"path\":\"/api/v1/things\"", "catch-all sees the full path");
    like(r.body, "\"rest\":\"v1/things\"", "catch-all sees the wildcard value");
    like(r.body, "\"body_length\":3", "catch-all sees the body");
    ht_free(&r);

    r = get("/test/download/1000000");
    is_int(r.status, 200, "streamed download succeeds");
    is_int(r.len, 1000000, "streamed download has the declared size");
    ok(r.len == 1000000 && r.body[0] == 'a' && r.body[999999] == (char)('a' + 999999 % 26), "streamed bytes are right");
    ht_free(&r);
}

/* Feeds a large upload to libcurl without holding it in memory. */
struct upload_src { size_t sent, total; uint64_t sum; };

static size_t upload_read(char *buf, size_t size, size_t n, void *cls)
{
    struct upload_src *u = cls;
    size_t max = size * n, left = u->total - u->sent, k = left < max ? left : max;
    for (size_t i = 0; i < k; i++) {
        buf[i] = (char)((u->sent + i) * 7 % 251);
        u->sum = u->sum * 31 + (unsigned char)buf[i];
    }
    u->sent += k;
    return k;
}

static void test_large_upload(void)
{
    size_t total = 50u * 1024 * 1024;
    long before = ht_peak_rss_kib(&srv);
    struct upload_src u = {0, total, 0};
    char url[128], *body = NULL;
    size_t len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/test/upload", srv.port);
    FILE *mem = open_memstream(&body, &len);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
    curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &u);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)total);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    fclose(mem);
    is_int(rc, CURLE_OK, "50 MiB upload completes");
    is_int(status, 200, "50 MiB upload is accepted by a streaming raw endpoint");
    char want[128];
    snprintf(want, sizeof want, "{\"bytes\":%zu,\"sum\":%llu}", total, (unsigned long long)u.sum);
    is_str(body, want, "every byte reached the handler in order (checksum)");
    free(body);
    long after = ht_peak_rss_kib(&srv);
    diag("server peak RSS before %ld KiB, after %ld KiB", before, after);
    if (!ht_valgrind())
        ok(after - before < 16 * 1024, "the upload did not buffer: peak RSS grew by %ld KiB (< 16 MiB)", after - before);
}

static void test_limits(void)
{
    size_t n = 1024 * 1024 + 10;
    char *big = malloc(n);
    memset(big, ' ', n);
    memcpy(big, "{\"name\":\"x\"}", 12);
    ht_response r = post_json("/hello", "{\"name\":\"x\"}");
    ht_free(&r);
    const char *h[] = {"Content-Type: application/json", NULL};
    expect_error(ht_request(&srv, "POST", "/hello", big, n, h), 413, "resource_exhausted",
                 "too large", "a body over 1 MiB on a typed endpoint");
    r = post_json("/hello", "{\"name\":\"after\"}");
    is_int(r.status, 200, "the server is fine after refusing a large body");
    ht_free(&r);
    free(big);

    /* Headers beyond the limit are refused by libmicrohttpd itself. */
    size_t hn = 40 * 1024;
    char *hdr = malloc(hn + 16);
    strcpy(hdr, "X-Big: ");
    memset(hdr + 7, 'a', hn);
    hdr[7 + hn] = '\0';
    const char *hh[] = {hdr, NULL};
    r = ht_request(&srv, "GET", "/hello/x", NULL, 0, hh);
    ok(r.status == 431 || r.status == 413 || r.status == 0, "an oversized header block is refused (got %ld)", r.status);
    ht_free(&r);
    free(hdr);
}

static void test_early_answers(void)
{
    unsigned patience = ht_valgrind() ? 30 : 5;

    /* A TiB declared to a route that does not exist: answered at once, and the
     * connection closed instead of held until a TiB arrives. */
    int fd = ht_raw_connect(&srv, patience);
    const char *tib = "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 1099511627776\r\n\r\n";
    send(fd, tib, strlen(tib), MSG_NOSIGNAL);
    ht_send_filler(fd, 4096);
    double t0 = ht_now_s();
    bool eof;
    char *got = ht_recv_all(fd, &eof);
    double waited = ht_now_s() - t0;
    like(got, "HTTP/1.1 404", "a 1 TiB body to an unknown route is answered 404 before it is read");
    ok(eof, "and the connection is closed after the answer");
    ok(waited < patience, "without waiting for the body (%.2f s)", waited);
    free(got);
    close(fd);

    /* 8 MiB sent in full to a 1 MiB endpoint: the 413 went out when the
     * headers came, and still reaches a client that only reads after sending
     * everything (a reset would have destroyed it). */
    fd = ht_raw_connect(&srv, patience);
    const char *big = "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      "Content-Length: 8388608\r\n\r\n";
    send(fd, big, strlen(big), MSG_NOSIGNAL);
    size_t sent = ht_send_filler(fd, 8u << 20);
    is_int((long)sent, 8L << 20, "a client sending 8 MiB after an early 413 can send all of it");
    got = ht_recv_all(fd, &eof);
    like(got, "HTTP/1.1 413", "and then reads the 413");
    like(got, "request body too large", "with its message");
    ok(eof, "followed by a clean end of file, not a reset");
    free(got);
    close(fd);

    /* A small body to an unknown route is read and dropped: the connection
     * carries the next request. */
    fd = ht_raw_connect(&srv, patience);
    const char *small = "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 10240\r\n\r\n";
    send(fd, small, strlen(small), MSG_NOSIGNAL);
    ht_send_filler(fd, 10240);
    const char *next = "GET /hello/again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(fd, next, strlen(next), MSG_NOSIGNAL);
    got = ht_recv_all(fd, &eof);
    like(got, "HTTP/1.1 404", "a 10 KiB body to an unknown route is answered 404");
    like(got, "Hello, again!", "and the same connection serves the next request");
    free(got);
    close(fd);

    /* A chunked body that goes past the limit: the server drops at most
     * 256 KiB more, then closes, instead of reading on for ever. */
    fd = ht_raw_connect(&srv, patience);
    const char *chunked = "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n";
    send(fd, chunked, strlen(chunked), MSG_NOSIGNAL);
    static char chunk[65536 + 16];
    int head = snprintf(chunk, sizeof chunk, "10000\r\n");
    memset(chunk + head, ' ', 65536);
    memcpy(chunk + head + 65536, "\r\n", 2);
    size_t chunk_len = (size_t)head + 65536 + 2, total = 0;
    while (total < (64u << 20)) {
        ssize_t w = send(fd, chunk, chunk_len, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        total += (size_t)w;
    }
    ok(total < (64u << 20), "a chunked body past the limit is cut off (%zu KiB were taken)", total / 1024);
    close(fd);

    ht_response r = get("/hello/after-early-answers");
    is_int(r.status, 200, "the server is fine after the early answers");
    ht_free(&r);
}

/* Bodies held in memory share one budget across connections: with 1 MiB,
 * two uploads with 400 KB in already leave no room for a third 400 KiB body,
 * which is refused before it is read; once they are gone, it is served.  A
 * declared length holds nothing until its bytes arrive. */
static void test_body_budget(void)
{
    ht_server s2;
    const char *env[] = {"KEEL_BODY_BUDGET=1048576", NULL};
    if (!ok(ht_start(&s2, getenv("KEEL_TESTAPP"), env), "an app with a 1 MiB body budget starts"))
        return;
    ht_server saved = srv;
    srv = s2;
    unsigned patience = ht_valgrind() ? 30 : 5;
    const char *head = "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Content-Length: 409600\r\n\r\n";
    int held[2];
    for (int i = 0; i < 2; i++) {
        held[i] = ht_raw_connect(&srv, patience);
        send(held[i], head, strlen(head), MSG_NOSIGNAL);
        ht_send_filler(held[i], 400000); /* the rest never comes */
    }
    usleep(ht_valgrind() ? 2000 * 1000 : 300 * 1000); /* their bytes are in */
    int third = ht_raw_connect(&srv, patience);
    send(third, head, strlen(head), MSG_NOSIGNAL);
    bool eof;
    char *got = ht_recv_all(third, &eof);
    like(got, "HTTP/1.1 503", "a third 400 KiB body while two hold 800 KB is refused with 503");
    like(got, "too many request bodies in memory", "saying the server holds too many bodies");
    free(got);
    close(third);
    for (int i = 0; i < 2; i++)
        close(held[i]);
    usleep(300 * 1000);
    ht_response r = post_json("/hello", "{\"name\":\"budget\"}");
    is_int(r.status, 200, "once they are gone, bodies are accepted again");
    ht_free(&r);
    char *log = ht_log(&s2);
    like(log, "KEEL_BODY_BUDGET", "the log names the setting");
    free(log);
    srv = saved;
    is_int(ht_stop(&s2), 0, "the budget app stops cleanly");
}

/* A connection from source address src (127.0.0.x) to s, or -1. */
/* One GET /hello/<name> on fd; true when it is answered 200. */
static bool hello_on(int fd, const char *name)
{
    char req[128];
    snprintf(req, sizeof req, "GET /hello/%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", name);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) <= 0)
        return false;
    bool eof;
    char *got = ht_recv_all(fd, &eof);
    bool answered = strncmp(got, "HTTP/1.1 200", 12) == 0;
    free(got);
    return answered;
}

/* One client holding its share of connections cannot take more, and other
 * clients are still served; the limit counts across I/O threads. */
static void test_conns_per_client(void)
{
    ht_server s2;
    const char *env[] = {"KEEL_MAX_CONNECTIONS_PER_IP=4", "KEEL_IO_THREADS=2", NULL};
    if (!ok(ht_start(&s2, getenv("KEEL_TESTAPP"), env), "an app allowing 4 connections per client starts"))
        return;
    int idle[4];
    for (int i = 0; i < 4; i++)
        idle[i] = ht_connect_from(&s2, "127.0.0.2");
    ok(idle[0] >= 0 && idle[3] >= 0, "a client opens 4 idle connections");
    usleep(300 * 1000);
    int fifth = ht_connect_from(&s2, "127.0.0.2");
    ok(fifth < 0 || !hello_on(fifth, "fifth"), "its fifth connection is refused");
    if (fifth >= 0)
        close(fifth);
    int other = ht_connect_from(&s2, "127.0.0.3");
    ok(other >= 0 && hello_on(other, "neighbour"), "another client is served meanwhile");
    if (other >= 0)
        close(other);
    close(idle[0]);
    usleep(300 * 1000);
    int again = ht_connect_from(&s2, "127.0.0.2");
    ok(again >= 0 && hello_on(again, "again"), "once one of its connections closes, the client is served again");
    if (again >= 0)
        close(again);
    for (int i = 1; i < 4; i++)
        if (idle[i] >= 0)
            close(idle[i]);
    is_int(ht_stop(&s2), 0, "the app stops cleanly");
}

/* 400 clients trickling their headers a byte at a time hold 400
 * connections, and a normal request is still answered in under a second. */
static void test_slow_clients(void)
{
    enum { SLOW = 400 };
    static int fds[SLOW];
    const char *start = "GET /hello/slow HTTP/1.1\r\nHost: x\r\nX-Trickle: ";
    int open_ = 0;
    for (int i = 0; i < SLOW; i++) {
        fds[i] = ht_connect(&srv);
        if (fds[i] >= 0 && send(fds[i], start, strlen(start), MSG_NOSIGNAL) > 0)
            open_++;
    }
    is_int(open_, SLOW, "400 slow clients connect and send part of their headers");
    double worst = 0;
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < SLOW; i++)
            if (fds[i] >= 0)
                send(fds[i], "a", 1, MSG_NOSIGNAL); /* one more byte each */
        double t0 = ht_now_s();
        ht_response r = get("/hello/punctual");
        double took = ht_now_s() - t0;
        if (r.status != 200)
            took = 1e9;
        if (took > worst)
            worst = took;
        ht_free(&r);
        usleep(100 * 1000);
    }
    double limit = ht_valgrind() ? 5.0 : 1.0;
    ok(worst < limit, "a normal request among them is answered in under %.0f s (slowest of 5: %.3f s)", limit, worst);
    for (int i = 0; i < SLOW; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_request_ids(void)
{
    const char *h[] = {"X-Request-Id: my-trace-123", NULL};
    ht_response r = ht_request(&srv, "GET", "/hello/ids", NULL, 0, h);
    char id[128] = "";
    ok(ht_header(&r, "X-Request-Id", id, sizeof id), "the response carries X-Request-Id");
    is_str(id, "my-trace-123", "an incoming request id is kept");
    ht_free(&r);
    r = get("/hello/ids2");
    ok(ht_header(&r, "X-Request-Id", id, sizeof id) && strlen(id) >= 16, "a request id is generated: %s", id);
    ht_free(&r);
    char id2[128] = "";
    r = get("/hello/ids3");
    ht_header(&r, "X-Request-Id", id2, sizeof id2);
    ok(strcmp(id, id2) != 0, "generated ids differ");
    ht_free(&r);
    const char *bad[] = {"X-Request-Id: has \"quote", NULL};
    r = ht_request(&srv, "GET", "/hello/ids4", NULL, 0, bad);
    ht_header(&r, "X-Request-Id", id2, sizeof id2);
    ok(!tap_contains(id2, "quote"), "an unsafe incoming id is replaced");
    ht_free(&r);

    r = post_json("/hello", "{\"name\":\"top-secret-body\"}");
    ht_free(&r);
    usleep(200 * 1000); /* the log is flushed every 50 ms */
    char *log = ht_log(&srv);
    char needle[200];
    snprintf(needle, sizeof needle, "\"request_id\":\"my-trace-123\",\"method\":\"GET\",\"route\":\"/hello/:name\"");
    like(log, needle, "the request log line has id, method and route pattern");
    like(log, "\"status\":200,\"duration_us\":", "the request log line has status and duration");
    ok(!tap_contains(log, "top-secret-body"), "bodies are never logged");
    /* Every log line is one JSON object. */
    int lines = 0, bad_lines = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] != '{')
            continue; /* valgrind or sanitizer output */
        json_t *j = json_loads(line, 0, NULL);
        lines++;
        if (!j)
            bad_lines++;
        json_decref(j);
    }
    ok(lines > 10 && bad_lines == 0, "all %d log lines are JSON objects", lines);
    free(log);
}

struct slow_call { ht_response r; const char *path; };

static void *call_in_thread(void *arg)
{
    struct slow_call *c = arg;
    c->r = get(c->path);
    return NULL;
}


static void test_slow_does_not_block(void)
{
    struct slow_call slow[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        slow[i].path = "/test/slow?ms=1500";
        pthread_create(&th[i], NULL, call_in_thread, &slow[i]);
    }
    usleep(200 * 1000);
    double t0 = ht_now_s();
    int fast_ok = 0;
    for (int i = 0; i < 20; i++) {
        ht_response r = get("/hello/fast");
        fast_ok += r.status == 200;
        ht_free(&r);
    }
    double elapsed = ht_now_s() - t0;
    is_int(fast_ok, 20, "20 fast requests succeed while 4 slow handlers run");
    ok(elapsed < 1.0 || ht_valgrind(), "the fast requests were not held up by the slow ones (%.3f s)", elapsed);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        is_str(slow[i].r.body, "{\"slept_ms\":1500}", "slow handler %d finished", i);
        ht_free(&slow[i].r);
    }
}

/* A handler that holds its I/O thread without KEEL_BLOCKING is named in the
 * log, once, with the advice to mark it. */
static void test_hog_is_named(void)
{
    for (int i = 0; i < 2; i++) {
        ht_response r = get("/test/hog?ms=120");
        is_int(r.status, 200, "a handler that holds its thread still answers (%d)", i + 1);
        ht_free(&r);
    }
    usleep(200 * 1000); /* the log is flushed every 50 ms */
    char *log = ht_log(&srv);
    like(log, "endpoint test.hog held its I/O thread for", "the log names the endpoint that held its thread");
    like(log, "mark it KEEL_BLOCKING", "and says what to do");
    const char *first = strstr(log, "test.hog held");
    ok(first && !strstr(first + 1, "test.hog held"), "the warning is given once per endpoint");
    ok(!tap_contains(log, "test.slow held"), "a KEEL_BLOCKING endpoint is never named");
    free(log);
}

static void test_slow_client_timeout(void)
{
    ht_server s2;
    const char *env[] = {"KEEL_CONN_TIMEOUT=1", NULL};
    if (!ok(ht_start(&s2, getenv("KEEL_TESTAPP"), env), "a second app with a 1 s connection timeout starts"))
        return;
    int fd = ht_connect(&s2);
    ok(fd >= 0, "a slow client connects");
    const char *partial = "GET /hello/x HTTP/1.1\r\nHost: x\r\n";
    ok(send(fd, partial, strlen(partial), 0) > 0, "it sends half a request");
    ht_server saved = srv;
    srv = s2;
    ht_response r = get("/hello/neighbour");
    is_int(r.status, 200, "other clients are served while the slow one dawdles");
    ht_free(&r);
    srv = saved;
    struct timeval tv = {ht_valgrind() ? 30 : 5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    double t0 = ht_now_s();
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    double waited = ht_now_s() - t0;
    ok(n == 0 || n < 0, "the slow client is disconnected");
    ok(waited < (ht_valgrind() ? 30 : 4), "within the timeout (%.2f s)", waited);
    close(fd);
    is_int(ht_stop(&s2), 0, "the second app stops cleanly");
}

static void test_graceful_shutdown(void)
{
    ht_server s2;
    if (!ok(ht_start(&s2, getenv("KEEL_TESTAPP"), NULL), "an app for the shutdown test starts"))
        return;
    ht_server saved = srv;
    srv = s2;
    struct slow_call c = {.path = "/test/slow?ms=1000"};
    pthread_t th;
    pthread_create(&th, NULL, call_in_thread, &c);
    usleep(300 * 1000);
    kill(s2.pid, SIGTERM);
    usleep(200 * 1000);
    int fd = ht_connect(&s2);
    ok(fd < 0, "after SIGTERM no new connections are accepted");
    if (fd >= 0)
        close(fd);
    pthread_join(th, NULL);
    is_int(c.r.status, 200, "the in-flight request finishes during shutdown");
    is_str(c.r.body, "{\"slept_ms\":1000}", "with its full response");
    ht_free(&c.r);
    int status = 0;
    waitpid(s2.pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the app exits 0 after a graceful shutdown (status %d)", status);
    srv = saved;
}

/* Middleware: befores in order, afters in reverse, a tagged gate answering
 * before the handler (its refusal still passes through the afters), and a
 * before that sees the decoded typed request. */
static void test_middleware(void)
{
    ht_response r = get("/test/route/static");
    char b[200] = "", a[200] = "";
    ok(r.status == 200 && ht_header(&r, "X-Before", b, sizeof b) && ht_header(&r, "X-After", a, sizeof a),
       "the service's middleware runs around a raw endpoint");
    like(r.headers, "X-Before: first\r\nX-Before: second", "befores run in the order declared");
    like(r.headers, "X-After: second\r\nX-After: first", "afters in reverse order");
    ht_free(&r);
    r = get("/test/gated");
    is_int(r.status, 403, "a tagged middleware answers early (403)");
    like(r.body, "the gate middleware refused", "with its own error in the Encore shape");
    ok(strstr(r.headers, "X-After: first") != NULL, "and the afters still see that answer");
    ht_free(&r);
    r = ht_request(&srv, "GET", "/test/gated", NULL, 0, (const char *[]){"X-Let-In: yes", NULL});
    is_int(r.status, 200, "with what it wants, the handler runs");
    ht_free(&r);
    r = get("/test/double?value=21");
    char seen[32] = "";
    ok(r.status == 200 && ht_header(&r, "X-Seen-N", seen, sizeof seen) && strcmp(seen, "21") == 0,
       "a before sees the decoded typed request (%s)", seen);
    ht_free(&r);
    r = get("/test/route/static");
    ok(!strstr(r.headers, "X-Seen-N"), "a tagged middleware leaves untagged endpoints alone");
    ht_free(&r);
}

static void test_app_model(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' app-model --app '%s'", getenv("KEEL_CLI"), getenv("KEEL_EXAMPLE"));
    FILE *p = popen(cmd, "r");
    json_error_t e;
    json_t *model = p ? json_loadf(p, 0, &e) : NULL;
    int rc = p ? pclose(p) : -1;
    is_int(rc, 0, "keel app-model exits 0");
    ok(model != NULL, "keel app-model prints JSON");
    json_t *services = json_object_get(model, "services");
    is_int(json_array_size(services), 7, "seven services in the example");
    json_t *hello = json_array_get(services, 0);
    is_str(json_string_value(json_object_get(hello, "name")), "hello", "first service is hello");
    json_t *ep = json_array_get(json_object_get(hello, "endpoints"), 0);
    is_str(json_string_value(json_object_get(ep, "path")), "/hello/:name", "endpoint path");
    is_str(json_string_value(json_object_get(ep, "kind")), "typed", "endpoint kind");
    is_str(json_string_value(json_object_get(ep, "access")), "public", "endpoint access");
    json_t *field = json_array_get(json_object_get(ep, "request"), 0);
    is_str(json_string_value(json_object_get(field, "in")), "path", "request schema says where a field comes from");
    json_t *priv = json_array_get(json_object_get(hello, "endpoints"), 2);
    is_str(json_string_value(json_object_get(priv, "access")), "private", "private endpoints are marked");
    json_t *mounted = json_array_get(json_object_get(json_array_get(services, 1), "endpoints"), 0);
    is_str(json_string_value(json_object_get(mounted, "kind")), "mounted", "mounted endpoints are marked");
    json_decref(model);
}

/* A port that was free a moment ago. */
static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_keel_run(void)
{
    unsigned port = free_port();
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%u", port);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        setenv("KEEL_HOST", "127.0.0.1", 1);
        execl(getenv("KEEL_CLI"), "keel", "run", "--app", getenv("KEEL_TESTAPP"), "--port", port_s, (char *)NULL);
        _exit(127);
    }
    ht_server s2 = {.pid = pid, .port = port};
    ht_response r = {0};
    for (int i = 0; i < (ht_valgrind() ? 600 : 100) && r.status != 200; i++) {
        usleep(50 * 1000);
        ht_free(&r);
        r = ht_request(&s2, "GET", "/hello/run", NULL, 0, NULL);
    }
    is_int(r.status, 200, "keel run --port %u serves the app on that port", port);
    is_str(r.body, "{\"message\":\"Hello, run!\"}", "keel run serves the app");
    ht_free(&r);
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "Ctrl-C stops keel run cleanly");
    FILE *p = popen("\"$KEEL_CLI\" run --port 99999 2>&1; echo \"exit=$?\"", "r");
    char out[512] = "";
    size_t n = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[n] = '\0';
    if (p)
        pclose(p);
    like(out, "exit=2", "keel run with a bad port is a usage error");
}

static void test_startup_errors(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "PORT=notaport '%s' 2>&1", getenv("KEEL_EXAMPLE"));
    FILE *p = popen(cmd, "r");
    char out[4096] = ""; /* the usage text names the binary's path, long in a distcheck tree */
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "a malformed PORT fails start-up with status 1");
    like(out, "PORT", "and names the variable");
    snprintf(cmd, sizeof cmd, "'%s' --bogus 2>&1", getenv("KEEL_EXAMPLE"));
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "an unknown flag is a usage error (2)");
    snprintf(cmd, sizeof cmd, "'%s' --help 2>&1", getenv("KEEL_EXAMPLE"));
    p = popen(cmd, "r");
    n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    rc = pclose(p);
    ok(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "--help exits 0");
    like(out, "usage:", "and prints the usage");
    like(out, "KEEL_MAX_CONNECTIONS_PER_IP", "naming every setting");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_ALL);
    if (!getenv("KEEL_TESTAPP")) {
        printf("Bail out! KEEL_TESTAPP is not set (run through make check)\n");
        return 1;
    }
    if (!ht_start(&srv, getenv("KEEL_TESTAPP"), NULL)) {
        printf("Bail out! the test app did not start\n");
        return 1;
    }
    test_hello();
    test_typed_errors();
    test_media_types();
    test_typed_success();
    test_error_codes();
    test_routing();
    test_private_unseen();
    test_private_preflight();
    test_raw();
    test_large_upload();
    test_limits();
    test_early_answers();
    test_body_budget();
    test_conns_per_client();
    test_slow_clients();
    test_request_ids();
    test_slow_does_not_block();
    test_hog_is_named();
    test_slow_client_timeout();
    test_graceful_shutdown();
    test_middleware();
    test_app_model();
    test_keel_run();
    test_startup_errors();
    is_int(ht_stop(&srv), 0, "the app exits 0 on SIGTERM%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    curl_global_cleanup();
    return tap_done();
}

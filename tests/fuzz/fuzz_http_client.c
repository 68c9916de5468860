/* fuzz_http_client.c - libFuzzer target for the parsers of the small HTTP
 * client (framework/lib/observe/http_client.c) that the OTLP exporter and
 * the dashboard use: the URL of a configured endpoint and the reply a peer
 * sends back.
 *
 * An input is a URL (up to the first '\n') and a reply (the rest, any
 * bytes).  Checks beyond the sanitizers: an accepted URL has a non-empty
 * host of the allowed characters (hex digits, ':' and '.' for an IPv6
 * address), a port from 1 to 65535 without leading zeros and a path of
 * visible ASCII starting with '/', so nothing in it can break the request
 * line or the Host header; writing its parts back as a URL parses to the
 * same parts; a refusal is invalid_argument and leaves nothing allocated.
 * An accepted reply starts with "HTTP/d.d " and the three digits of its
 * status, from 100 to 599; its body fits in the input and ends with a NUL;
 * a refused one is unavailable (or out of memory) and leaves the reply
 * empty. */
#include "observe/http_client.h"
#include "fuzz.h"

#include <stdbool.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static bool visible(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool host_char(char c, bool v6)
{
    bool digit = c >= '0' && c <= '9', lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
    if (v6)
        return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
    return digit || lower || upper || c == '-' || c == '.' || c == '_';
}

static void check_url(const char *url)
{
    keel_http_target t;
    keel_error *err = keel__http_target_parse(url, &t);
    if (err) {
        FUZZ_CHECK(err->code == KEEL_INVALID_ARGUMENT || err->code == KEEL_RESOURCE_EXHAUSTED,
                   "URL refused with code %d: %s", (int)err->code, err->message);
        FUZZ_CHECK(!t.host && !t.port && !t.path, "a refused URL left parts behind");
        keel_error_free(err);
        return;
    }
    FUZZ_CHECK(visible(url), "a URL with an invisible byte was accepted");
    bool v6 = strchr(t.host, ':') != NULL;
    FUZZ_CHECK(t.host[0], "empty host accepted from %s", url);
    for (const char *p = t.host; *p; p++)
        FUZZ_CHECK(host_char(*p, v6), "host %s holds '%c'", t.host, *p);
    size_t plen = strlen(t.port);
    FUZZ_CHECK(plen >= 1 && plen <= 5 && t.port[0] != '0' && strspn(t.port, "0123456789") == plen &&
                   atol(t.port) >= 1 && atol(t.port) <= 65535,
               "port %s", t.port);
    FUZZ_CHECK(t.path[0] == '/' && visible(t.path), "path %s", t.path);

    /* Written back, the URL parses to the same parts. */
    size_t n = strlen(t.host) + plen + strlen(t.path) + 16;
    char *again = malloc(n);
    FUZZ_CHECK(again != NULL, "out of memory");
    snprintf(again, n, "http://%s%s%s:%s%s", v6 ? "[" : "", t.host, v6 ? "]" : "", t.port, t.path);
    keel_http_target u;
    err = keel__http_target_parse(again, &u);
    FUZZ_CHECK(!err, "%s (from %s) is refused: %s", again, url, err ? err->message : "");
    FUZZ_CHECK(strcmp(t.host, u.host) == 0 && strcmp(t.port, u.port) == 0 && strcmp(t.path, u.path) == 0,
               "%s and %s parse differently", url, again);
    keel__http_target_clear(&u);
    free(again);
    keel__http_target_clear(&t);
}

static void check_reply(const char *data, size_t len)
{
    /* The client hands the parser its buffer NUL-terminated. */
    char *raw = malloc(len + 1);
    FUZZ_CHECK(raw != NULL, "out of memory");
    memcpy(raw, data, len);
    raw[len] = '\0';
    unsigned status = 0;
    bool status_line = keel__http_status_line(raw, &status);
    if (status_line)
        FUZZ_CHECK(status >= 100 && status <= 599 && strncmp(raw, "HTTP/", 5) == 0 &&
                       (unsigned)(raw[9] - '0') * 100 + (unsigned)(raw[10] - '0') * 10 + (unsigned)(raw[11] - '0') ==
                           status &&
                       raw[8] == ' ' && (raw[12] == ' ' || raw[12] == '\r'),
                   "status line read as %u", status);
    keel_http_reply r;
    keel_error *err = keel__http_reply_parse(raw, len, &r);
    if (err) {
        FUZZ_CHECK(err->code == KEEL_UNAVAILABLE || err->code == KEEL_RESOURCE_EXHAUSTED, "reply refused with %s",
                   err->message);
        FUZZ_CHECK(!r.headers && !r.body && !r.status && !r.body_len, "a refused reply left parts behind");
        keel_error_free(err);
    } else {
        FUZZ_CHECK(status_line && r.status == status, "reply status %u, status line %u", r.status, status);
        FUZZ_CHECK(r.headers && r.body && r.body_len <= len && r.body[r.body_len] == '\0', "reply body");
        keel__http_reply_clear(&r);
    }
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *fields[2];
    size_t reply_len = 0;
    char *block = fuzz_fields(data, size, fields, 2, &reply_len);
    check_url(fields[0]);
    check_reply(fields[1], reply_len);
    free(block);
    return 0;
}

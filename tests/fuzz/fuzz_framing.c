/* fuzz_framing.c - libFuzzer target for the request head checks
 * (framework/lib/http/framing.c).
 *
 * Each input is a request head.  It is taken apart as libmicrohttpd 0.9.75
 * does it in its read buffer (connection.c: empty lines before the request
 * line skipped, lines ending at CRLF or a bare LF, both overwritten with
 * NUL; the request line split at its first space and at its last; a field
 * line at its first ':' of the C string, the value's leading blanks skipped;
 * a line starting with a blank glued onto the previous field's name in
 * memory of its own; a line starting with NUL ending the head), and
 * keel__framing_check_head and keel__framing_check_fields run on what that
 * leaves.  Beyond the sanitizers it checks, on the raw bytes, that a head
 * they accept is one RFC 9112 accepts: nothing after a NUL in its line but
 * NULs and the line end (trailing NULs are what the check cannot always see,
 * framing.h), no CR but in CRLF, no folded
 * line, every field name a token, one Host in HTTP/1.1 (at most one in
 * HTTP/1.0), at most one Content-Length and all digits, and
 * Transfer-Encoding only as one field "chunked" in HTTP/1.1 without
 * Content-Length. */
#include "http/framing.h"
#include "fuzz.h"

#include <stdbool.h>
#include <stdint.h>
#include <strings.h>

#define MAX_FIELDS 64

/* A head as libmicrohttpd left it, and what it handed out. */
typedef struct parsed {
    keel_raw_head head;
    keel_field_line fields[MAX_FIELDS];
    size_t n;
    char *folded[MAX_FIELDS]; /* names moved out of the buffer by folding */
    size_t nfolded;
    size_t start, end;        /* the head in the input: request line to empty line */
    bool http_1_0;
} parsed;

/* The next line at *pos in buf (len bytes): overwrites its end with NUL(s)
 * and returns its start, or NULL when no line end comes. */
static char *next_line(char *buf, size_t len, size_t *pos, size_t *line_len)
{
    for (size_t i = *pos; i < len; i++) {
        if (buf[i] == '\r' && i + 1 < len && buf[i + 1] == '\n') {
            char *line = buf + *pos;
            *line_len = i - *pos;
            buf[i] = buf[i + 1] = '\0';
            *pos = i + 2;
            return line;
        }
        if (buf[i] == '\n') {
            char *line = buf + *pos;
            *line_len = i - *pos;
            buf[i] = '\0';
            *pos = i + 1;
            return line;
        }
    }
    return NULL;
}

/* The request line (line_len bytes), as parse_initial_message_line; false
 * when libmicrohttpd would refuse it. */
static bool request_line(parsed *p, char *line, size_t line_len)
{
    char *uri = memchr(line, ' ', line_len);
    if (!uri || uri == line)
        return false;
    *uri++ = '\0';
    while (*uri == ' ' && (size_t)(uri - line) < line_len)
        uri++;
    if ((size_t)(uri - line) == line_len)
        return false;
    char *v = line + line_len - 1;
    while (*v == ' ' && v > uri)
        v--;
    while (*v != ' ' && v > uri)
        v--;
    if (v <= uri)
        return false;
    *v = '\0';
    const char *version = v + 1;
    if (line_len - (size_t)(version - line) != 8 || strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
        version[7] > '9')
        return false;
    p->head.url = uri;
    p->head.target_len = keel__framing_target(uri);
    p->head.version = version;
    p->http_1_0 = version[7] == '0';
    char *q = strchr(uri, '?'); /* libmicrohttpd cuts the path there */
    if (q)
        *q = '\0';
    return true;
}

/* A field line as process_header_line: name, then the value. */
static bool field_line(char *line, char **name, char **value)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return false;
    *colon++ = '\0';
    while (*colon == ' ' || *colon == '\t')
        colon++;
    *name = line;
    *value = colon;
    return true;
}

static bool add_field(parsed *p, const char *name, const char *value)
{
    if (p->n == MAX_FIELDS)
        return false;
    p->fields[p->n++] = (keel_field_line){name, strlen(name), value, strlen(value)};
    return true;
}

/* Takes buf (a copy of the input) apart; false when libmicrohttpd would
 * refuse the head or wait for more. */
static bool parse(parsed *p, char *buf, size_t len)
{
    size_t pos = 0, line_len;
    char *line;
    do {
        p->start = pos;
        line = next_line(buf, len, &pos, &line_len);
        if (!line)
            return false;
    } while (!line[0]);
    if (!request_line(p, line, line_len))
        return false;
    p->head.block = line;
    char *name = NULL, *value = NULL;
    for (;;) {
        line = next_line(buf, len, &pos, &line_len);
        if (!line)
            return false;
        if (name && (line[0] == ' ' || line[0] == '\t')) {
            const char *more = line;
            while (*more == ' ' || *more == '\t')
                more++;
            size_t a = strlen(name), b = strlen(more);
            char *glued = malloc(a + b + 1);
            if (!glued || p->nfolded == MAX_FIELDS) {
                free(glued);
                return false;
            }
            memcpy(glued, name, a);
            memcpy(glued + a, more, b + 1);
            p->folded[p->nfolded++] = glued;
            name = glued;
            continue;
        }
        if (name && !add_field(p, name, value))
            return false;
        name = NULL;
        if (!line[0])
            break;
        if (!field_line(line, &name, &value))
            return false;
    }
    p->end = pos;
    p->head.size = pos - p->start;
    return true;
}

/* ---- the oracle, on the raw bytes ---------------------------------------- */

static bool raw_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* The raw head (len bytes from h) is one RFC 9112 accepts. */
static void check_accepted(const uint8_t *h, size_t len, bool http_1_0)
{
    for (size_t i = 0; i < len; i++) {
        if (h[i] == '\0') { /* only NULs (and a CR) may follow it to the line end */
            size_t k = i;
            while (k < len && h[k] == '\0')
                k++;
            if (k < len && h[k] == '\r')
                k++;
            FUZZ_CHECK(k < len && h[k] == '\n', "an accepted head has a NUL at %zu with more after it", i);
        }
        FUZZ_CHECK(h[i] != '\r' || (i + 1 < len && h[i + 1] == '\n'), "an accepted head has a bare CR at %zu", i);
        FUZZ_CHECK(!(h[i] == '\n' && i + 1 < len && (h[i + 1] == ' ' || h[i + 1] == '\t')),
                   "an accepted head has a folded line at %zu", i + 1);
    }
    size_t hosts = 0, lengths = 0, encodings = 0;
    bool chunked = false, digits = true;
    size_t i = 0;
    while (i < len && h[i] != '\n') /* the request line */
        i++;
    for (i++; i < len;) {
        size_t e = i;
        while (e < len && h[e] != '\n')
            e++;
        size_t end = e > i && h[e - 1] == '\r' ? e - 1 : e;
        if (end == i || h[i] == '\0') /* the empty line */
            break;
        while (end > i && h[end - 1] == '\0') /* not handed out */
            end--;
        size_t colon = i;
        while (colon < end && h[colon] != ':')
            colon++;
        FUZZ_CHECK(colon > i && colon < end, "an accepted field line has no name or no colon");
        for (size_t k = i; k < colon; k++)
            FUZZ_CHECK(raw_tchar(h[k]), "an accepted field name holds byte 0x%02x", h[k]);
        const char *name = (const char *)h + i;
        size_t nlen = colon - i, v = colon + 1;
        while (v < end && (h[v] == ' ' || h[v] == '\t'))
            v++;
        size_t vlen = end - v;
        if (nlen == 4 && strncasecmp(name, "host", 4) == 0)
            hosts++;
        if (nlen == 14 && strncasecmp(name, "content-length", 14) == 0) {
            lengths++;
            for (size_t k = v; k < end; k++)
                digits &= h[k] >= '0' && h[k] <= '9';
            digits &= vlen > 0;
        }
        if (nlen == 17 && strncasecmp(name, "transfer-encoding", 17) == 0) {
            encodings++;
            chunked = vlen == 7 && strncasecmp((const char *)h + v, "chunked", 7) == 0;
        }
        i = e + 1;
    }
    FUZZ_CHECK(http_1_0 ? hosts <= 1 : hosts == 1, "an accepted head has %zu Host fields", hosts);
    FUZZ_CHECK(lengths <= 1 && (!lengths || digits), "an accepted head has %zu Content-Length fields", lengths);
    FUZZ_CHECK(!encodings || (encodings == 1 && chunked && !lengths && !http_1_0),
               "an accepted head has Transfer-Encoding other than one \"chunked\"");
}

/* Runs the checks on data; returns whether the head was accepted (-1: not
 * a head libmicrohttpd would hand over). */
static int run(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    parsed p = {0};
    int accepted = -1;
    if (parse(&p, buf, size)) {
        keel_error *err = keel__framing_check_head(&p.head, p.fields, p.n);
        if (!err)
            err = keel__framing_check_fields(p.http_1_0, p.fields, p.n);
        accepted = !err;
        if (err) {
            unsigned status = keel_error_http_status(err);
            FUZZ_CHECK(status == 400 || status == 501, "a refusal is %u", status);
            FUZZ_CHECK(err->message && *err->message, "a refusal says why");
            keel_error_free(err);
        } else {
            check_accepted(data + p.start, p.end - p.start, p.http_1_0);
        }
    }
    for (size_t i = 0; i < p.nfolded; i++)
        free(p.folded[i]);
    free(buf);
    return accepted;
}

#define HEAD(s) run((const uint8_t *)(s), sizeof(s) - 1)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* The simulation and the checks agree on what is plainly fine or not. */
    FUZZ_CHECK(HEAD("GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 1, "a plain head is accepted");
    FUZZ_CHECK(HEAD("\r\nGET /a?b HTTP/1.1\nHost: [::1]:80\nX: \t y\n\n") == 1, "bare LF heads are accepted");
    FUZZ_CHECK(HEAD("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n") == 1, "chunked is accepted");
    FUZZ_CHECK(HEAD("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n") == 0, "a NUL is refused");
    FUZZ_CHECK(HEAD("GET / HTTP/1.1\r\nX: a\0\r\nHost: x\r\n\r\n") == 0, "a NUL before CRLF is refused");
    FUZZ_CHECK(HEAD("GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n") == 0, "folding is refused");
    FUZZ_CHECK(HEAD("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n") == 0,
               "two lengths are refused");
    FUZZ_CHECK(HEAD("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n") == 0,
               "a blank before the colon is refused");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    return 0;
}

/* framing.c - the request head checks libmicrohttpd 0.9.75 does not make
 * and RFC 9112 requires, so that where a request ends is never in doubt,
 * whatever proxy stands in front (see framing.h for the contracts).
 *
 * What libmicrohttpd 0.9.75 does by itself (connection.c), and why each
 * check is here:
 *  - Content-Length: it reads the first one and ignores the others, so with
 *    "Content-Length: 0" then "Content-Length: 40" a proxy that takes the
 *    last sees a body where Keel sees the next request.  Exactly one, all
 *    digits (RFC 9112 6.3 allows merging equal copies; refusing is simpler).
 *  - Transfer-Encoding: it looks at the first field only, and decodes a
 *    body only when that value is exactly "chunked"; "gzip, chunked" or
 *    "xchunked" make it read until the client closes, "chunked" in a second
 *    field is never seen, and with Content-Length too it takes the chunked
 *    body and keeps the connection.  RFC 9112 6.1 and 6.3: the last coding
 *    must be chunked (else 400), chunked only once, a coding not understood
 *    is 501, Content-Length with Transfer-Encoding and Transfer-Encoding in
 *    HTTP/1.0 are faulty framing; each is answered and the connection closed.
 *  - Field names: "Transfer-Encoding : chunked" is taken as a field named
 *    "Transfer-Encoding " (its check for blanks before the colon runs only
 *    in its most lenient mode, MHD_OPTION_STRICT_FOR_CLIENT -1), so the
 *    body's framing is not seen.  Every name must be a token (RFC 9112 5.1).
 *  - Host: not checked unless MHD_OPTION_STRICT_FOR_CLIENT is 1, and then
 *    only when missing (an HTML page, its head sent twice); a second Host
 *    passes, and a target with a space is dropped without an answer.  Strict
 *    mode (1 or -1) fixes nothing else listed here.  RFC 9112 3.2: exactly
 *    one Host in HTTP/1.1, at most one in HTTP/1.0, and host[:port].
 *  - Values: a bare CR stays in the value; a NUL ends it, what follows is
 *    dropped and the value's length says nothing (it is the C string's).
 *    The NUL is found by accounting for every byte of the head in the read
 *    buffer (keel__framing_check_head).  RFC 9110 5.5: refuse CR, LF, NUL.
 *  - Lines: a folded line (starting with a blank) is glued onto the previous
 *    field's name ("X-Token: a", " b" gives "X-Tokenb: a"): refused (RFC
 *    9112 5.2).  A NUL in the request target cuts the path or the query, a
 *    space in it is taken as part of it: refused (RFC 9112 3.2). */
#include "core.h"
#include "http/framing.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- syntax ----------------------------------------------------------- */

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* A token character (RFC 9110 5.6.2). */
static bool is_tchar(char c)
{
    return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool keel__http_token(const char *s, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar(s[i]))
            return false;
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* unreserved / sub-delims (RFC 3986 2.2, 2.3). */
static bool is_host_char(char c)
{
    return is_alnum(c) || (c && strchr("-._~!$&'()*+,;=", c));
}

/* len bytes at s equal the NUL-terminated name but for case. */
static bool is_named(const char *s, size_t len, const char *name)
{
    return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/* A Host value: uri-host [":" port] (RFC 9112 3.2, RFC 3986 3.2.2), where
 * uri-host is an IP literal in brackets or a reg-name (which may be empty). */
static bool is_host(const char *s, size_t len)
{
    size_t i = 0;
    if (len && s[0] == '[') {
        for (i = 1; i < len && (is_host_char(s[i]) || s[i] == ':'); i++)
            ;
        if (i == 1 || i == len || s[i] != ']')
            return false;
        i++;
    } else {
        while (i < len) {
            if (s[i] == '%' && len - i >= 3 && is_hex(s[i + 1]) && is_hex(s[i + 2]))
                i += 3;
            else if (is_host_char(s[i]))
                i++;
            else
                break;
        }
    }
    if (i < len && s[i] == ':')
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            ;
    return i == len;
}

static bool all_digits(const char *s, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* s (len bytes) fit for a message: at most 64 bytes, bytes outside printable
 * ASCII shown as '?'.  buf holds 68. */
static const char *shown(char buf[68], const char *s, size_t len)
{
    size_t n = len > 64 ? 64 : len;
    for (size_t i = 0; i < n; i++)
        buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    strcpy(buf + n, len > n ? "..." : "");
    return buf;
}

static keel_error *bad(const char *fmt, ...) KEEL_PRINTF(1, 2);
static keel_error *bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_error *err = keel_error_newv(KEEL_INVALID_ARGUMENT, fmt, ap);
    va_end(ap);
    return err;
}

/* ---- Transfer-Encoding ------------------------------------------------ */

/* What the Transfer-Encoding fields list, all of them as one list. */
typedef struct te_list {
    size_t codings;      /* transfer codings listed */
    size_t chunked;      /* how many of them are chunked */
    bool last_chunked;   /* the last one is chunked */
    bool chunked_params; /* a chunked has parameters (it takes none) */
    const char *other;   /* the first coding that is not chunked */
    size_t other_len;
} te_list;

static size_t skip_blanks(const char *s, size_t len, size_t i)
{
    while (i < len && is_blank(s[i]))
        i++;
    return i;
}

static size_t skip_token(const char *s, size_t len, size_t i)
{
    while (i < len && is_tchar(s[i]))
        i++;
    return i;
}

/* The end of the quoted-string at s[i] == '"', or 0 when it does not end. */
static size_t skip_quoted(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\' && i + 1 < len)
            c = (unsigned char)s[++i];
        if (c < 0x20 ? c != '\t' : c == 0x7f)
            return 0;
    }
    return 0;
}

/* The end of ";" name "=" (token / quoted-string) at s[i] == ';', or 0. */
static size_t skip_parameter(const char *s, size_t len, size_t i)
{
    i = skip_blanks(s, len, i + 1);
    size_t name = i;
    i = skip_blanks(s, len, skip_token(s, len, i));
    if (i == name || i == len || s[i] != '=')
        return 0;
    i = skip_blanks(s, len, i + 1);
    if (i < len && s[i] == '"')
        return skip_quoted(s, len, i);
    size_t value = i;
    i = skip_token(s, len, i);
    return i == value ? 0 : i;
}

/* Adds the transfer codings of one field value (len bytes) to *t: a list of
 * token *(";" parameter), empty elements allowed (RFC 9110 5.6.1, 10.1.4).
 * False when it is not such a list. */
static bool te_list_add(te_list *t, const char *v, size_t len)
{
    size_t i = 0;
    for (;;) {
        i = skip_blanks(v, len, i);
        if (i == len)
            return true;
        if (v[i] == ',') {
            i++;
            continue;
        }
        size_t start = i;
        i = skip_token(v, len, i);
        if (i == start)
            return false;
        bool chunked = is_named(v + start, i - start, "chunked"), params = false;
        for (;;) {
            size_t j = skip_blanks(v, len, i);
            if (j == len || v[j] != ';')
                break;
            i = skip_parameter(v, len, j);
            if (!i)
                return false;
            params = true;
        }
        t->codings++;
        t->last_chunked = chunked;
        if (chunked) {
            t->chunked++;
            t->chunked_params |= params;
        } else if (!t->other) {
            t->other = v + start;
            t->other_len = i - start;
        }
        i = skip_blanks(v, len, i);
        if (i < len && v[i] != ',')
            return false;
    }
}

/* ---- the fields ------------------------------------------------------- */

/* Where the fields say the body ends: Transfer-Encoding (te, the first of
 * nte fields) or Content-Length (cl, the first of ncl). */
static keel_error *check_body_framing(bool http_1_0, const keel_field_line *f, size_t n, const keel_field_line *te,
                                      size_t nte, const keel_field_line *cl, size_t ncl)
{
    char b[68];
    if (ncl > 1)
        return bad("more than one Content-Length header: the body's length is in doubt");
    if (cl && !all_digits(cl->value, cl->value_len))
        return bad("Content-Length \"%s\" is not a number of bytes", shown(b, cl->value, cl->value_len));
    if (!te)
        return NULL;
    if (http_1_0)
        return bad("Transfer-Encoding in an HTTP/1.0 request: the body's length is in doubt");
    if (cl)
        return bad("both Content-Length and Transfer-Encoding: the body's length is in doubt");
    te_list t = {0};
    for (size_t i = 0; i < n; i++)
        if (is_named(f[i].name, f[i].name_len, MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
            !te_list_add(&t, f[i].value, f[i].value_len))
            return bad("Transfer-Encoding \"%s\" is not a list of transfer codings",
                       shown(b, f[i].value, f[i].value_len));
    if (!t.last_chunked)
        return bad("Transfer-Encoding: the last transfer coding must be chunked, or the body's length is in doubt");
    if (t.chunked > 1 || t.chunked_params)
        return bad("Transfer-Encoding: chunked %s", t.chunked > 1 ? "is applied more than once" : "takes no parameters");
    if (t.other)
        return keel_error_new(KEEL_UNIMPLEMENTED, "transfer coding \"%s\" is not supported (only chunked is)",
                              shown(b, t.other, t.other_len));
    /* libmicrohttpd decodes chunked only when the first field is exactly
     * that: "chunked " or a first field of "" would have it read on until
     * the client closes. */
    if (nte > 1 || !is_named(te->value, te->value_len, "chunked"))
        return bad("Transfer-Encoding must be exactly one \"chunked\"");
    return NULL;
}

keel_error *keel__framing_check_fields(bool http_1_0, const keel_field_line *f, size_t n)
{
    char b[68];
    const keel_field_line *host = NULL, *te = NULL, *cl = NULL;
    size_t nhost = 0, nte = 0, ncl = 0;
    for (size_t i = 0; i < n; i++) {
        const keel_field_line *l = &f[i];
        if (!keel__http_token(l->name, l->name_len))
            return bad("header name \"%s\" is not a token (no space may come before the colon)",
                       shown(b, l->name, l->name_len));
        const char *cr = memchr(l->value, '\r', l->value_len), *lf = memchr(l->value, '\n', l->value_len);
        if (cr || lf || memchr(l->value, '\0', l->value_len))
            return bad("header \"%s\" contains a %s", shown(b, l->name, l->name_len),
                       cr ? "CR" : lf ? "LF" : "NUL byte");
        if (is_named(l->name, l->name_len, MHD_HTTP_HEADER_HOST) && !nhost++)
            host = l;
        else if (is_named(l->name, l->name_len, MHD_HTTP_HEADER_TRANSFER_ENCODING) && !nte++)
            te = l;
        else if (is_named(l->name, l->name_len, MHD_HTTP_HEADER_CONTENT_LENGTH) && !ncl++)
            cl = l;
    }
    if (!host && !http_1_0)
        return bad("the Host header is missing (HTTP/1.1 requires it)");
    if (nhost > 1)
        return bad("more than one Host header");
    if (host && !is_host(host->value, host->value_len))
        return bad("Host \"%s\" is not host[:port]", shown(b, host->value, host->value_len));
    return check_body_framing(http_1_0, f, n, te, nte, cl, ncl);
}

/* ---- the head's bytes ------------------------------------------------- */

size_t keel__framing_target(const char *target)
{
    if (!target)
        return SIZE_MAX;
    size_t i = 0;
    for (; target[i]; i++)
        if ((unsigned char)target[i] <= 0x20 || target[i] == 0x7f)
            return SIZE_MAX;
    return i;
}

/* The offset of p in the head, or SIZE_MAX when it points elsewhere. */
static size_t offset_of(const keel_raw_head *h, const char *p)
{
    uintptr_t b = (uintptr_t)h->block, q = (uintptr_t)p;
    return p && q >= b && q - b < h->size ? (size_t)(q - b) : SIZE_MAX;
}

/* Whether a line end starts at pos (a NUL: LF, or CR then a NUL: LF) and
 * the next line starts at next. */
static bool line_ends(const keel_raw_head *h, size_t pos, size_t next)
{
    return pos < h->size && h->block[pos] == '\0' &&
           (next == pos + 1 || (next == pos + 2 && h->block[pos + 1] == '\0'));
}

/* Why the next line does not start where the line ending at pos ends: more
 * of that line (past a NUL) than libmicrohttpd handed out as what (a
 * field's name, what_len bytes; NULL: the request line). */
static keel_error *line_overruns(const char *what, size_t what_len)
{
    char b[68];
    if (!what)
        return bad("the request line contains a NUL byte");
    return bad("header \"%s\" contains a NUL byte", shown(b, what, what_len));
}

keel_error *keel__framing_check_head(const keel_raw_head *h, const keel_field_line *f, size_t n)
{
    char b[68];
    size_t mlen = strnlen(h->block, h->size);
    if (!keel__http_token(h->block, mlen))
        return bad("the method \"%s\" is not a token", shown(b, h->block, mlen));
    size_t url = offset_of(h, h->url), version = offset_of(h, h->version);
    if (url == SIZE_MAX || version == SIZE_MAX || url <= mlen || version <= url)
        return bad("the request line is malformed");
    for (size_t i = mlen + 1; i < url; i++)
        if (h->block[i] != ' ')
            return bad("the method \"%s\" is not a token", shown(b, h->block, mlen));
    if (h->target_len == SIZE_MAX || url + h->target_len + 1 != version)
        return bad("the request target contains a NUL byte, a space or a control character");
    size_t pos = version + strnlen(h->version, h->size - version);
    const char *prev = NULL;
    size_t prev_len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t name = offset_of(h, f[i].name);
        if (name == SIZE_MAX) /* only a folded line's name is moved out */
            return bad("a header line starts with a blank (obsolete line folding is not accepted)");
        if (!line_ends(h, pos, name))
            return line_overruns(prev, prev_len);
        size_t colon = name + f[i].name_len, value = offset_of(h, f[i].value);
        if (colon >= h->size || h->block[colon] != '\0' || value == SIZE_MAX || value <= colon)
            return bad("header line %zu is malformed", i + 1);
        for (size_t j = colon + 1; j < value; j++)
            if (!is_blank(h->block[j]))
                return bad("header line %zu is malformed", i + 1);
        pos = value + f[i].value_len;
        prev = f[i].name;
        prev_len = f[i].name_len;
    }
    /* The last line's end and the empty line: two to four NULs, the end. */
    bool ends = pos < h->size && h->size - pos >= 2 && h->size - pos <= 4;
    for (size_t i = pos; ends && i < h->size; i++)
        ends = h->block[i] == '\0';
    return ends ? NULL : line_overruns(prev, prev_len);
}

/* ---- the access handler's check --------------------------------------- */

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                               const char *value, size_t value_size)
{
    (void)kind;
    keel_field_line **next = cls;
    **next = (keel_field_line){key, key_size, value ? value : "", value ? value_size : 0};
    (*next)++;
    return MHD_YES;
}

bool keel__framing_refused(keel_req *req, size_t target_len)
{
    struct MHD_Connection *conn = req->conn;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    int n = MHD_get_connection_values_n(conn, MHD_HEADER_KIND, NULL, NULL);
    keel_field_line *f = n > 0 ? keel_arena_alloc(&req->arena, (size_t)n * sizeof *f) : NULL;
    keel_error *err = NULL;
    if (!ci || n < 0 || (n > 0 && !f)) {
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        keel_field_line *next = f;
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, collect, &next);
        keel_raw_head h = {req->method, ci->header_size, req->url, target_len, req->version};
        err = keel__framing_check_head(&h, f, (size_t)n);
        if (!err)
            err = keel__framing_check_fields(strcmp(req->version, MHD_HTTP_VERSION_1_0) == 0, f, (size_t)n);
    }
    if (!err)
        return false;
    keel_error_free(req->error);
    req->error = err;
    req->method_not_allowed = false;
    req->linger = true;
    return true;
}

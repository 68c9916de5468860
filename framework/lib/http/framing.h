/* http/framing.h - private: the checks of a request's head that
 * libmicrohttpd 0.9.75 does not make and RFC 9112 requires (framing.c):
 * where the body ends (Content-Length, Transfer-Encoding), Host, field names
 * and values, and bytes libmicrohttpd would cut away unseen (a NUL). */
#ifndef KEEL_HTTP_FRAMING_H
#define KEEL_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

#include "keel/error.h"
#include "keel/http.h"

/* One header field line as libmicrohttpd split it: the name and the value
 * (without its leading blanks) with their lengths, in the order received. */
typedef struct keel_field_line {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} keel_field_line;

/* A request head as libmicrohttpd 0.9.75 leaves it in its read buffer when
 * the access handler first runs: block holds the size bytes from the method
 * to the end of the empty line, with every line end (CRLF or a bare LF), the
 * space after the method and the one before the version, and each field's
 * colon overwritten with NUL.  url (the request target's first byte) and
 * version point into it; the target itself has been cut at '?' and decoded
 * in place, so target_len is what keel__framing_target said of it before. */
typedef struct keel_raw_head {
    const char *block;
    size_t size;
    const char *url;
    size_t target_len;
    const char *version;
} keel_raw_head;

/* Whether len bytes at s are a token (RFC 9110 5.6.2): a method, a field
 * name, a transfer coding. */
bool keel__http_token(const char *s, size_t len);

/* The length of a request target as it arrived (libmicrohttpd ends it with a
 * NUL where the space before the version was), or SIZE_MAX when it holds a
 * space or a control byte; NULL gives SIZE_MAX. */
size_t keel__framing_target(const char *target);

/* NULL when every byte of the head is accounted for by the request line and
 * the fields f (n of them, in order); otherwise a 400 naming what is wrong:
 * a NUL in the request line or in a field line (libmicrohttpd hands a value
 * out cut short at the NUL, the rest silently gone), a method that is not a
 * token, a target with a space or a control byte, or a folded field line
 * (obs-fold, which libmicrohttpd glues onto the field's name).  A NUL with
 * anything after it in its line is always found.  NULs that end a value,
 * followed only by the line end, may not be: once libmicrohttpd has
 * overwritten line ends with NULs too, "v\0" and a bare LF read exactly as
 * "v" and a CRLF (and at the head's end, "v\0\0" and two bare LFs as "v"
 * and two CRLFs); the value is then handed out without its trailing NULs,
 * nothing after them being lost. */
keel_error *keel__framing_check_head(const keel_raw_head *h, const keel_field_line *f, size_t n);

/* NULL when the fields (n, in order) frame the request as RFC 9112 says and
 * libmicrohttpd will read it the same way; otherwise 400 invalid_argument:
 * a name that is not a token (such as "Transfer-Encoding " with a space
 * before the colon), a CR, LF or NUL in a value, no Host in HTTP/1.1 or more
 * than one, a Host that is not host[:port], more than one Content-Length or
 * one that is not a number, Content-Length with Transfer-Encoding, a
 * Transfer-Encoding in HTTP/1.0, or one whose last coding is not chunked,
 * or with chunked twice; or 501 unimplemented for a transfer coding other
 * than chunked ("gzip, chunked"). */
keel_error *keel__framing_check_fields(bool http_1_0, const keel_field_line *f, size_t n);

/* The access handler's first call: checks req's head with both of the above
 * (target_len from keel__framing_target).  When it is refused, req->error is
 * the answer (replacing any routing error), the connection is to be closed
 * after it (req->linger), and true is returned: send it at once, before
 * anything reads the body. */
bool keel__framing_refused(keel_req *req, size_t target_len);

#endif

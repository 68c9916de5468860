/* keel/http.h - the request and response that handlers see.
 *
 * A keel_req lives from the first byte of a request until its response has been
 * sent; everything reachable from it (strings, the arena, the response) is
 * released then.  Handlers must not keep pointers into it afterwards. */
#ifndef KEEL_HTTP_H
#define KEEL_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "arena.h"
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

struct MHD_Connection;

typedef struct keel_req keel_req;
typedef struct keel_resp keel_resp;

/* ---- request ---------------------------------------------------------- */

const char *keel_req_method(const keel_req *req);   /* "GET", ... */
const char *keel_req_path(const keel_req *req);     /* URL path as received, not decoded */
const char *keel_req_route(const keel_req *req);    /* matched pattern, "/hello/:name" */
const char *keel_req_id(const keel_req *req);       /* X-Request-Id, kept or generated */
const char *keel_req_version(const keel_req *req);  /* "HTTP/1.1" */

/* A path parameter (":name", "*name", "!name"), percent-decoded; NULL if the
 * route has no such parameter.  A wildcard that matched nothing is "". */
const char *keel_req_param(const keel_req *req, const char *name);

/* The first value of a query parameter (decoded), or NULL. */
const char *keel_req_query(const keel_req *req, const char *name);

/* A request header (case-insensitive name), or NULL. */
const char *keel_req_header(const keel_req *req, const char *name);

/* Calls fn for each query argument or header in the order received; fn returns
 * non-zero to stop.  kind is KEEL_QUERY or KEEL_HEADERS. */
typedef enum { KEEL_QUERY, KEEL_HEADERS } keel_kv_kind;
void keel_req_each(const keel_req *req, keel_kv_kind kind,
                   int (*fn)(void *cls, const char *name, const char *value), void *cls);

/* The buffered body of a raw endpoint without a body callback, or of a typed
 * endpoint.  Owned by the request; *len receives the size.  "" when empty. */
const char *keel_req_body(const keel_req *req, size_t *len);

/* The request's arena: memory that lives until the response has been sent. */
keel_arena *keel_req_arena(keel_req *req);

/* A slot for handler state that must survive between body chunks and the final
 * call of a raw endpoint.  Release anything it points to outside the arena in
 * the endpoint's cleanup callback. */
void **keel_req_user(keel_req *req);

/* The underlying libmicrohttpd connection, for code that was written against
 * libmicrohttpd (see the forklift adapter). */
struct MHD_Connection *keel_req_connection(const keel_req *req);

/* ---- response --------------------------------------------------------- */

/* The response that goes out for req; typed handlers may use it to add headers
 * or change the success status. */
keel_resp *keel_req_resp(keel_req *req);

void keel_resp_status(keel_resp *resp, unsigned status);

/* Adds a header; name and value are copied.  Returns invalid_argument for a
 * name or value containing CR, LF or NUL (header injection). */
keel_error *keel_resp_header(keel_resp *resp, const char *name, const char *value);

/* Sets the body to data, which must stay valid until the request completes
 * (static data or memory from the request's arena). */
void keel_resp_body(keel_resp *resp, const void *data, size_t len);

/* Copies data into the request's arena and makes it the body. */
keel_error *keel_resp_body_copy(keel_resp *resp, const void *data, size_t len);

/* A buffer in the request's arena that becomes the body; append to it. */
keel_buf *keel_resp_buf(keel_resp *resp);

/* Streams the body: fn is called from an I/O thread to fill buf with up to max
 * bytes starting at pos, and returns the count, KEEL_STREAM_END when done, or
 * KEEL_STREAM_ERROR to abort the connection.  It must not block for long.
 * size is the total length or KEEL_SIZE_UNKNOWN (chunked encoding).
 * free_cls (may be NULL) is called with cls when the response is finished. */
#define KEEL_STREAM_END ((ssize_t)-1)
#define KEEL_STREAM_ERROR ((ssize_t)-2)
#define KEEL_SIZE_UNKNOWN UINT64_MAX
typedef ssize_t (*keel_stream_fn)(void *cls, uint64_t pos, char *buf, size_t max);
void keel_resp_stream(keel_resp *resp, uint64_t size, keel_stream_fn fn, void *cls,
                      void (*free_cls)(void *cls));

/* Makes err the response ({"code","message","details"} with its status) and
 * frees err.  Used by raw handlers that want Keel's error shape. */
void keel_resp_error(keel_resp *resp, keel_error *err);

#pragma GCC visibility pop

#endif

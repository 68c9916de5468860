/* keel/client.h - calling a Keel app from another C program: the runtime of
 * the clients that `keel gen client --lang c` writes.
 *
 * It lives in its own library, libkeel-client (pkg-config keel-client),
 * which uses libcurl; an app that only serves never links it.  A generated
 * client declares a struct and a field table (keel/schema.h) per request and
 * response, and a function per endpoint that calls keel_client_call with a
 * keel_client_endpoint.  The field tables say where each request field goes,
 * exactly as the app decodes it: ":name" path segments, the query string
 * (IN_QUERY fields, and body fields of GET, HEAD and DELETE), headers, the
 * JSON body.
 *
 *     keel_client *c = keel_client_new("http://localhost:4000");
 *     keel_arena arena;
 *     keel_arena_init(&arena, NULL, 0);
 *     example_todo_create_response made = {0};
 *     keel_error *err = example_todo_create(c, &(example_todo_create_request){.title = "x"}, &made, &arena);
 *     if (err && err->code == KEEL_NOT_FOUND) ...
 *     keel_error_free(err);
 *     keel_arena_release(&arena);    // made's strings lived here
 *     keel_client_free(c);
 *
 * An answer that is not 2xx becomes a keel_error with the app's code (parsed
 * from Encore's error shape), its message, and the HTTP status it came with
 * (keel_error_http_status); a server that could not be reached is
 * unavailable, one that did not answer in time deadline_exceeded.  Programs
 * compare err->code, never message text.
 *
 * A keel_client holds one connection (kept alive between calls) and is not
 * safe to share between threads: make one per thread. */
#ifndef KEEL_CLIENT_H
#define KEEL_CLIENT_H

#include <stddef.h>
#include "arena.h"
#include "error.h"
#include "schema.h"

#pragma GCC visibility push(default)

typedef struct keel_client keel_client;

/* One endpoint as the generated client describes it. */
typedef struct keel_client_endpoint {
    const char *name;           /* "todo.create", for messages */
    const char *method;         /* "POST" */
    const char *path;           /* the route, with ":name" and catch-all segments */
    const keel_field *request;  /* field tables; NULL is the empty table */
    const keel_field *response;
} keel_client_endpoint;

/* A client of the app at base_url ("http://host:port", optionally with a
 * path prefix).  Returns NULL when base_url is not an http:// or https://
 * URL or memory is exhausted.  Free with keel_client_free. */
keel_client *keel_client_new(const char *base_url);

/* Releases c and its connection; NULL is allowed. */
void keel_client_free(keel_client *c);

/* Sends header name with value on every later call, replacing an earlier
 * value of the same name (ASCII case-insensitively); value NULL removes it.
 * A name that is not an HTTP token or a value with CR, LF or NUL gives
 * invalid_argument and changes nothing. */
keel_error *keel_client_set_header(keel_client *c, const char *name, const char *value);

/* Gives up on a call after ms milliseconds (deadline_exceeded); 0: never.
 * The default is 30 s. */
void keel_client_set_timeout(keel_client *c, long ms);

/* Answers larger than max_bytes are refused (resource_exhausted) instead of
 * being read into memory.  The default is 64 MiB. */
void keel_client_set_max_response(keel_client *c, size_t max_bytes);

/* Calls ep with the struct at req (described by ep->request; NULL when the
 * table is empty) and decodes a 2xx answer into the struct at resp, which
 * the caller zeroed; its strings and arrays are allocated in arena.  Errors:
 * the app's own (see above); invalid_argument when req cannot be sent (a
 * NULL path parameter, an object in a query string); internal when a 2xx
 * answer does not match ep->response.  The caller frees the error. */
keel_error *keel_client_call(keel_client *c, const keel_client_endpoint *ep, const void *req, void *resp,
                             keel_arena *arena);

/* The answer to a raw call. */
typedef struct keel_client_answer {
    unsigned status;
    const char *content_type; /* NULL when the answer had none */
    const char *body;         /* NUL-terminated after len bytes; in the arena */
    size_t len;
} keel_client_answer;

/* Sends method path_and_query (already percent-encoded, starting with '/')
 * with body (len bytes of content_type; body NULL: none) and gives back
 * whatever status came: for raw endpoints and mounted routers.  Only
 * transport failures are errors. */
keel_error *keel_client_raw(keel_client *c, const char *method, const char *path_and_query,
                            const char *content_type, const void *body, size_t len, keel_client_answer *out,
                            keel_arena *arena);

#pragma GCC visibility pop

#endif

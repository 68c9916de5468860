/* keel/service.h - services and their endpoints, declared as data.
 *
 *     static keel_error *get(keel_req *req, const hello_req *in, hello_resp *out);
 *     const keel_service hello_service = {
 *         .name = "hello",
 *         .endpoints = (const keel_endpoint[]){
 *             KEEL_TYPED("GET", "/hello/:name", get, hello_req, hello_resp),
 *             KEEL_ENDPOINT_END
 *         },
 *     };
 *
 * A typed endpoint names its request and response struct types; their field
 * tables must be called <type>_fields.  The handler's signature is checked at
 * compile time.  Services are listed explicitly in main (keel_main). */
#ifndef KEEL_SERVICE_H
#define KEEL_SERVICE_H

#include <stddef.h>
#include <microhttpd.h>

#include "error.h"
#include "http.h"
#include "schema.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

/* Endpoint flags.  Handlers run as coroutines on the I/O thread that owns
 * their connection: Keel's own waits (database statements) yield to other
 * requests, so a slow query never delays a neighbour.  Code that blocks the
 * thread in ways Keel cannot see (sleep, a blocking client library, heavy
 * computation) must say so with KEEL_BLOCKING. */
enum {
    KEEL_PUBLIC   = 0,       /* the default: reachable from outside */
    KEEL_PRIVATE  = 1u << 0, /* only reachable with keel_call (service to service) */
    KEEL_INLINE   = 1u << 1, /* accepted for compatibility; no effect (every
                                handler now runs on its I/O thread) */
    KEEL_BLOCKING = 1u << 2, /* the handler may block its thread: it runs on the
                                worker pool instead */
    KEEL_KEEPS_BODY = 1u << 3, /* KEEL_RAW_STREAM: the handler keeps the body in
                                memory, so it counts against the budget all
                                requests share (KEEL_BODY_BUDGET) as buffered
                                bodies do: a declared length before anything
                                is read (503 when the budget is used up), a
                                chunked body as it arrives */
    KEEL_AUTH     = 1u << 4  /* needs auth data (keel/middleware.h): without
                                valid credentials 401 unauthenticated, and the
                                handler is not called */
};

/* in lives in the request's arena; out is zeroed.  Return NULL on success. */
typedef keel_error *(*keel_typed_fn)(keel_req *req, const void *in, void *out);

/* Called once the whole request is in (buffered body, or after on_body has seen
 * every chunk).  Fill resp; return an error to answer in Keel's error shape. */
typedef keel_error *(*keel_raw_fn)(keel_req *req, keel_resp *resp);

/* Called on the I/O thread for each chunk of the body as it arrives; must not
 * block.  An error stops the upload and becomes the response. */
typedef keel_error *(*keel_body_fn)(keel_req *req, const char *data, size_t len);

/* Called when the request is finished, whatever happened (also after a client
 * disconnect), to release what *keel_req_user() points to. */
typedef void (*keel_cleanup_fn)(keel_req *req);

typedef enum { KEEL_EP_END = 0, KEEL_EP_TYPED, KEEL_EP_RAW, KEEL_EP_MHD } keel_endpoint_kind;

typedef struct keel_endpoint {
    keel_endpoint_kind kind;
    const char *method;   /* "GET", "POST", ... (any case: registered in upper
                             case) or "*" (raw and mounted only) */
    const char *path;     /* router pattern */
    const char *name;     /* the handler's name, unique in its service */
    unsigned flags;
    size_t max_body;      /* 0: the app's default */
    keel_typed_fn typed;
    const keel_field *req_fields;
    size_t req_size;
    const keel_field *resp_fields;
    size_t resp_size;
    keel_raw_fn raw;
    keel_body_fn on_body;
    keel_cleanup_fn cleanup;
    MHD_AccessHandlerCallback mhd_handler;     /* KEEL_EP_MHD */
    void *mhd_cls;
    MHD_RequestCompletedCallback mhd_completed; /* may be NULL */
    void *mhd_completed_cls;
    const char *req_type;  /* KEEL_TYPED: the struct names, for messages */
    const char *resp_type;
    const char *const *tags; /* KEEL_TAGS(...): which middleware applies; may be NULL */
} keel_endpoint;

/* The handler as a keel_typed_fn, after checking at compile time that its
 * type is exactly keel_error *fn(keel_req *, const Tin *, Tout *): a mismatch
 * is an error with every compiler and flag set, saying what the signature
 * must be (a conditional between the two pointer types was only a warning
 * about "pointer type mismatch").  Endpoint tables are file-scope constants,
 * so this must stay an address constant: the _Static_assert sits in a struct
 * inside sizeof, an integer constant expression, which selects between two
 * address constants.  __typeof__ of the ?: gives fn's type after decay, a
 * pointer to function, to compare with the pointer type wanted. */
#define KEEL__TYPED_FN(fn, Tin, Tout) \
    (sizeof(struct { \
         _Static_assert(__builtin_types_compatible_p(__typeof__(1 ? (fn) : (fn)), \
                                                     keel_error *(*)(keel_req *, const Tin *, Tout *)), \
                        "KEEL_TYPED: handler " #fn " must be: keel_error *" #fn "(keel_req *, const " \
                        #Tin " *, " #Tout " *)"); \
         int keel__ok; }) ? (keel_typed_fn)(fn) : (keel_typed_fn)0)

/* name is the handler's name: it names the endpoint (logs, metrics, keel_call,
 * the app model), so each route needs a handler function of its own.
 * req_type and resp_type name the structs in start-up messages. */
#define KEEL_TYPED(meth, pattern, fn, Tin, Tout, ...) \
    KEEL__TYPED(meth, pattern, fn, Tin, Tout, NULL, KEEL__FLAGS(__VA_ARGS__))
/* The same with tags (KEEL_TAGS("write", "limited")) that select middleware. */
#define KEEL_TYPED_TAGS(meth, pattern, fn, Tin, Tout, tag_list, ...) \
    KEEL__TYPED(meth, pattern, fn, Tin, Tout, tag_list, KEEL__FLAGS(__VA_ARGS__))
#define KEEL__TYPED(meth, pattern, fn, Tin, Tout, tag_list, flag_bits) \
    { .kind = KEEL_EP_TYPED, .method = (meth), .path = (pattern), .name = #fn, \
      .flags = (flag_bits), .max_body = 0, .typed = KEEL__TYPED_FN(fn, Tin, Tout), \
      .req_fields = Tin##_fields, .req_size = sizeof(Tin), \
      .resp_fields = Tout##_fields, .resp_size = sizeof(Tout), \
      .raw = NULL, .on_body = NULL, .cleanup = NULL, .req_type = #Tin, .resp_type = #Tout, .tags = (tag_list) }

#define KEEL_RAW(meth, pattern, fn, ...) KEEL__RAW(meth, pattern, fn, NULL, KEEL__FLAGS(__VA_ARGS__))
#define KEEL_RAW_TAGS(meth, pattern, fn, tag_list, ...) KEEL__RAW(meth, pattern, fn, tag_list, KEEL__FLAGS(__VA_ARGS__))
#define KEEL__RAW(meth, pattern, fn, tag_list, flag_bits) \
    { .kind = KEEL_EP_RAW, .method = (meth), .path = (pattern), .name = #fn, \
      .flags = (flag_bits), .max_body = 0, .typed = NULL, \
      .req_fields = NULL, .req_size = 0, .resp_fields = NULL, .resp_size = 0, \
      .raw = (fn), .on_body = NULL, .cleanup = NULL, .tags = (tag_list) }

/* A raw endpoint that sees the body chunk by chunk and releases its state in
 * cleanup.  max_body bounds the body (a larger declared length is refused with
 * 413 before anything is read, a longer stream is cut off); 0: no limit, for
 * endpoints that pass the body on without keeping it.  A handler that keeps
 * the body in memory says so with KEEL_KEEPS_BODY. */
#define KEEL_RAW_STREAM(meth, pattern, fn, body_fn, cleanup_fn, max_body_bytes, ...) \
    { .kind = KEEL_EP_RAW, .method = (meth), .path = (pattern), .name = #fn, \
      .flags = KEEL__FLAGS(__VA_ARGS__), .max_body = (max_body_bytes), .typed = NULL, \
      .req_fields = NULL, .req_size = 0, .resp_fields = NULL, .resp_size = 0, \
      .raw = (fn), .on_body = (body_fn), .cleanup = (cleanup_fn) }

/* Mounts an existing libmicrohttpd access handler, unchanged, under a route
 * (typically the catch-all "/api/ *path" written without the space): for every
 * request the route matches, handler is called exactly as its own daemon
 * would call it (same connection, the URL as libmicrohttpd decoded it, method,
 * version, upload chunks and its own per-request pointer), the responses it
 * queues go out unchanged, and completed (when given) is called as
 * MHD_OPTION_NOTIFY_COMPLETED would.  Keel still routes, logs and counts the
 * request (its X-Request-Id header is not added: the response is the legacy
 * code's own).  It runs on the I/O thread, as it did in its own daemon. */
#define KEEL_MOUNT_MHD(meth, pattern, handler, handler_cls, completed, completed_cls, ...) \
    { .kind = KEEL_EP_MHD, .method = (meth), .path = (pattern), .name = #handler, \
      .flags = KEEL__FLAGS(__VA_ARGS__), .max_body = 0, .typed = NULL, \
      .req_fields = NULL, .req_size = 0, .resp_fields = NULL, .resp_size = 0, \
      .raw = NULL, .on_body = NULL, .cleanup = NULL, .mhd_handler = (handler), .mhd_cls = (handler_cls), \
      .mhd_completed = (completed), .mhd_completed_cls = (completed_cls) }

#define KEEL_ENDPOINT_END { .kind = KEEL_EP_END, .method = NULL, .path = NULL, .name = NULL }

struct keel_sqldb;
struct keel_extdb;

/* A short description of an endpoint or a field, for the app model, OpenAPI,
 * the generated clients and the dashboard.  name is an endpoint's name (its
 * handler's) or "struct.field" for a field of a typed endpoint's request or
 * response struct (the type name given to KEEL_TYPED), "struct.field.sub"
 * for a field of a nested object or of an array's objects:
 *
 *     .docs = KEEL_DOCS({"get", "Returns one item."},
 *                       {"todo_item.title", "What is to be done."}),
 *
 * Start-up refuses a name that documents nothing. */
typedef struct keel_doc {
    const char *name;
    const char *text;
} keel_doc;
#define KEEL_DOCS(...) ((const keel_doc[]){ __VA_ARGS__, { NULL, NULL } })

/* Everything a service depends on is declared here, so that the app model
 * (--app-model) describes the whole app and start-up checks it. */
typedef struct keel_service {
    const char *name;                 /* [a-z][a-z0-9_]*, unique in the app */
    const keel_endpoint *endpoints;   /* ends with KEEL_ENDPOINT_END */
    struct keel_sqldb *const *databases; /* NULL-terminated; may be NULL */
    const char *const *secrets;       /* names the service needs (keel/secrets.h);
                                         NULL-terminated; may be NULL */
    struct keel_extdb *const *external_databases;
                                      /* the external databases it queries
                                         (keel/extdb.h); each one's password
                                         secret must be in .secrets.
                                         NULL-terminated; may be NULL */
    const char *const *calls;         /* what it calls with keel_call: "service"
                                         (any of its endpoints) or
                                         "service.endpoint" (a typed endpoint);
                                         start-up refuses targets the app does
                                         not have.  NULL-terminated; may be NULL */
    const struct keel_auth_handler *auth; /* the app's auth handler
                                         (keel/middleware.h); at most one
                                         service of the app declares one */
    const struct keel_middleware *const *middleware;
                                      /* in the order they run; .global ones
                                         apply to every service's endpoints.
                                         NULL-terminated; may be NULL */
    const keel_doc *docs;             /* KEEL_DOCS(...); may be NULL */
} keel_service;

/* Calls the typed endpoint "service.endpoint" in-process, public or private, as
 * part of req (same arena, same request id).  in and out are that endpoint's
 * request and response structs.  Returns not_found when no such typed endpoint
 * exists, else what the handler returns. */
keel_error *keel_call(keel_req *req, const char *service, const char *endpoint,
                      const void *in, void *out);

#pragma GCC visibility pop

#endif

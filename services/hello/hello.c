/* services/hello - the smallest typed service: a greeting by path parameter
 * or by JSON body, and a private endpoint the public ones share. */
#include <keel/keel.h>

#include <string.h>

#include "services.h"

typedef struct { const char *name; } hello_path;
typedef struct { const char *name; } hello_body;
typedef struct { const char *message; } hello_reply;

static const keel_field hello_path_fields[] = {
    KEEL_STRING(hello_path, name, KEEL_IN_PATH),
    KEEL_END
};
static const keel_field hello_body_fields[] = {
    KEEL_STRING(hello_body, name),
    KEEL_END
};
static const keel_field hello_reply_fields[] = {
    KEEL_STRING(hello_reply, message),
    KEEL_END
};

/* Builds "Hello, NAME!" in the request's arena. */
static keel_error *greet(keel_req *req, const char *name, hello_reply *out)
{
    if (!*name)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "name must not be empty");
    out->message = keel_arena_printf(keel_req_arena(req), "Hello, %s!", name);
    return out->message ? NULL : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* GET /hello/:name */
static keel_error *get(keel_req *req, const hello_path *in, hello_reply *out)
{
    return greet(req, in->name, out);
}

/* Private: reachable only through keel_call from other endpoints. */
static keel_error *compose(keel_req *req, const hello_body *in, hello_reply *out)
{
    return greet(req, in->name, out);
}

/* POST /hello {"name": "..."} */
static keel_error *post(keel_req *req, const hello_body *in, hello_reply *out)
{
    return keel_call(req, "hello", "compose", in, out);
}

const keel_service hello_service = {
    .name = "hello",
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/hello/:name", get, hello_path, hello_reply),
        KEEL_TYPED("POST", "/hello", post, hello_body, hello_reply),
        KEEL_TYPED("POST", "/hello/compose", compose, hello_body, hello_reply, KEEL_PRIVATE),
        KEEL_ENDPOINT_END
    },
    .calls = (const char *const[]){ "hello.compose", NULL },
};

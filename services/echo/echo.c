/* services/echo - a raw catch-all for everything under /api/ that reports what it received
 * (method, path, body length).  The body is counted as it streams in, never
 * buffered, so uploads of any size cost no memory.  The forklift example later
 * mounts a whole legacy router in its place. */
#include <keel/keel.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"

/* Counts body bytes in the request's user slot. */
static keel_error *count_body(keel_req *req, const char *data, size_t len)
{
    (void)data;
    uint64_t **count = (uint64_t **)keel_req_user(req);
    if (!*count) {
        *count = keel_arena_calloc(keel_req_arena(req), 1, sizeof **count);
        if (!*count)
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    **count += len;
    return NULL;
}

/* jansson's dump callback: appends straight into the response buffer (in the
 * request's arena), so the reply is neither malloc'd nor copied. */
static int append_to_buf(const char *data, size_t len, void *buf)
{
    keel_buf_append(buf, data, len);
    return ((keel_buf *)buf)->failed ? -1 : 0;
}

static keel_error *echo(keel_req *req, keel_resp *resp)
{
    uint64_t *count = *keel_req_user(req);
    json_t *reply = json_pack("{s:s, s:s, s:s, s:I}", "method", keel_req_method(req),
                              "path", keel_req_path(req), "rest", keel_req_param(req, "path"),
                              "body_length", (json_int_t)(count ? *count : 0));
    if (!reply)
        return keel_error_new(KEEL_INTERNAL, "cannot build reply");
    int rc = json_dump_callback(reply, append_to_buf, keel_resp_buf(resp), JSON_COMPACT);
    json_decref(reply);
    if (rc != 0)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "cannot encode reply");
    return keel_resp_header(resp, "Content-Type", "application/json");
}

const keel_service echo_service = {
    .name = "echo",
    .endpoints = (const keel_endpoint[]){
        KEEL_RAW_STREAM("*", "/api/*path", echo, count_body, NULL, 0),
        KEEL_ENDPOINT_END
    },
};

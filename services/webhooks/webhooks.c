/* services/webhooks - receives GitHub webhook deliveries, verifies their
 * signature while the body streams in, and stores each delivery once in its
 * own database, "webhooks" (migrations/webhooks/).
 *
 *   POST /webhooks/github   X-Hub-Signature-256, X-GitHub-Delivery, X-GitHub-Event
 *       200 {"status":"stored"}     a new delivery, verified and stored
 *       200 {"status":"duplicate"}  a delivery id or a body already stored (a
 *                                   redelivery, or a replay under another id:
 *                                   the id is not signed, the body is):
 *                                   acknowledged, not stored again
 *       401 unauthenticated         missing, malformed or wrong signature
 *       400 invalid_argument        no X-GitHub-Delivery / X-GitHub-Event
 *       413 resource_exhausted      a body over 25 MiB
 *       503 unavailable             the server's body budget is used up
 *   GET /webhooks/events            the stored deliveries, oldest first
 *
 * The signing secret is GITHUB_WEBHOOK_SECRET from the secrets store. */
#include <keel/keel.h>
#include <keel/webhook.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"

#define WEBHOOK_MAX_BODY (25u << 20)
#define WEBHOOK_SECRET "GITHUB_WEBHOOK_SECRET"
#define SIG_HEADER "X-Hub-Signature-256"

static keel_sqldb webhooks_db = KEEL_SQLDB("webhooks", "migrations/webhooks");

/* Per-request state, from the first body chunk to cleanup. */
typedef struct {
    keel_webhook wh;
    char *body;   /* the body, kept for storage (malloc'd) */
    size_t len, cap;
    size_t declared; /* Content-Length, 0 when unknown */
} github_upload;

static keel_error *upload_start(keel_req *req, github_upload **out)
{
    /* Without a signature nothing can be accepted: refuse before reading. */
    const char *sig = keel_req_header(req, SIG_HEADER);
    if (!sig || !*sig)
        return keel_error_new(KEEL_UNAUTHENTICATED, "missing %s header", SIG_HEADER);
    github_upload *up = calloc(1, sizeof *up);
    if (!up)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_error *err = keel_webhook_github_begin(&up->wh, keel_secret(WEBHOOK_SECRET));
    if (err) {
        free(up);
        return err;
    }
    /* The buffer grows with what arrives (the framework counts that against
     * the body budget), never past the declared length: a client that
     * declares 25 MiB and sends little makes the service keep little. */
    const char *cl = keel_req_header(req, "Content-Length");
    if (cl && *cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (!errno && !*end && n > 0 && n <= WEBHOOK_MAX_BODY)
            up->declared = (size_t)n; /* larger: refused by the framework (max_body) */
    }
    *keel_req_user(req) = up;
    *out = up;
    return NULL;
}

/* I/O thread: each chunk goes through the HMAC and into the buffer. */
static keel_error *github_chunk(keel_req *req, const char *data, size_t len)
{
    github_upload *up = *keel_req_user(req);
    keel_error *err;
    if (!up && (err = upload_start(req, &up)))
        return err;
    if (up->len + len > up->cap) {
        size_t cap = up->cap ? up->cap : 64 * 1024;
        while (cap < up->len + len)
            cap *= 2;
        if (up->declared >= up->len + len && cap > up->declared)
            cap = up->declared;
        if (cap > WEBHOOK_MAX_BODY)
            cap = WEBHOOK_MAX_BODY; /* the framework stops the body there */
        char *grown = realloc(up->body, cap);
        if (!grown)
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        up->body = grown;
        up->cap = cap;
    }
    memcpy(up->body + up->len, data, len);
    up->len += len;
    keel_webhook_update(&up->wh, data, len);
    return NULL;
}

static void github_cleanup(keel_req *req)
{
    github_upload *up = *keel_req_user(req);
    if (!up)
        return;
    keel_webhook_abort(&up->wh);
    free(up->body);
    free(up);
    *keel_req_user(req) = NULL;
}

/* Worker: the whole body has been seen; verify, then store once. */
static keel_error *github_receive(keel_req *req, keel_resp *resp)
{
    github_upload *up = *keel_req_user(req);
    keel_error *err;
    if (!up && (err = upload_start(req, &up))) /* an empty body */
        return err;
    if ((err = keel_webhook_github_finish(&up->wh, keel_req_header(req, SIG_HEADER))))
        return err;
    const char *delivery = keel_req_header(req, "X-GitHub-Delivery");
    const char *event = keel_req_header(req, "X-GitHub-Event");
    if (!delivery || !*delivery || strlen(delivery) > 200)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "missing or invalid X-GitHub-Delivery header");
    if (!event || !*event || strlen(event) > 200)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "missing or invalid X-GitHub-Event header");

    /* JSON bodies are also stored as jsonb (jansson refuses \u0000, which
     * jsonb cannot hold either); the exact bytes always go to payload_raw. */
    json_t *json = up->len ? json_loadb(up->body, up->len, JSON_DECODE_ANY, NULL) : NULL;
    keel_arg payload = KEEL_ARG_NULL;
    if (json)
        payload = (keel_arg)KEEL_ARG_JSON(json);
    int64_t inserted = 0;
    err = keel_db_exec(req, &webhooks_db, &inserted,
                       "INSERT INTO webhook_event (provider, delivery_id, event, payload, payload_raw, body_sha256) "
                       "VALUES ('github', $1, $2, $3::jsonb, $4, sha256($4)) ON CONFLICT DO NOTHING",
                       KEEL_ARG_TEXT(delivery), KEEL_ARG_TEXT(event), payload,
                       KEEL_ARG_BYTEA(up->len ? up->body : "", up->len));
    json_decref(json);
    if (err)
        return err;
    /* The body is no longer needed: release it now rather than at cleanup. */
    free(up->body);
    up->body = NULL;
    up->len = up->cap = 0;
    if ((err = keel_resp_header(resp, "Content-Type", "application/json")))
        return err;
    static const char stored[] = "{\"status\":\"stored\"}";
    static const char duplicate[] = "{\"status\":\"duplicate\"}";
    if (inserted)
        keel_resp_body(resp, stored, sizeof stored - 1);
    else
        keel_resp_body(resp, duplicate, sizeof duplicate - 1);
    return NULL;
}

/* ---- GET /webhooks/events ------------------------------------------------------ */

typedef struct {
    int64_t id;
    const char *provider;
    const char *delivery_id;
    const char *event;
    const char *received_at;
    int64_t size;
} webhook_event;
typedef struct { webhook_event *events; size_t count; } webhook_event_list;

static const keel_field webhook_event_fields[] = {
    KEEL_INT64(webhook_event, id),
    KEEL_STRING(webhook_event, provider),
    KEEL_STRING(webhook_event, delivery_id),
    KEEL_STRING(webhook_event, event),
    KEEL_STRING(webhook_event, received_at),
    KEEL_INT64(webhook_event, size),
    KEEL_END
};
static const keel_field webhook_event_list_fields[] = {
    KEEL_ARRAY(webhook_event_list, events, count, webhook_event, webhook_event_fields),
    KEEL_END
};

static keel_error *list_events(keel_req *req, const keel_empty *in, webhook_event_list *out)
{
    (void)in;
    keel_rows *rows;
    keel_error *err = keel_db_query(req, &webhooks_db, &rows,
        "SELECT id, provider, delivery_id, event, "
        "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
        "octet_length(payload_raw) FROM webhook_event ORDER BY id");
    if (err)
        return err;
    keel_arena *arena = keel_req_arena(req);
    size_t cap = 0;
    keel_row *row;
    while (!(err = keel_rows_next(rows, &row)) && row) {
        if (!keel_arena_grow(arena, (void **)&out->events, out->count, &cap, sizeof *out->events)) {
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
            break;
        }
        webhook_event *e = &out->events[out->count];
        const char *provider, *delivery, *event, *received;
        err = keel_row_scan(row, "itttti", &e->id, &provider, &delivery, &event, &received, &e->size);
        if (err)
            break;
        /* Streamed rows are released by the next call: keep copies. */
        e->provider = keel_arena_strdup(arena, provider);
        e->delivery_id = keel_arena_strdup(arena, delivery);
        e->event = keel_arena_strdup(arena, event);
        e->received_at = keel_arena_strdup(arena, received);
        out->count++;
    }
    keel_rows_close(rows);
    return err;
}

static const char *const webhooks_secrets[] = { WEBHOOK_SECRET, NULL };

const keel_service webhooks_service = {
    .name = "webhooks",
    .databases = (keel_sqldb *const[]){ &webhooks_db, NULL },
    .secrets = webhooks_secrets,
    .endpoints = (const keel_endpoint[]){
        KEEL_RAW_STREAM("POST", "/webhooks/github", github_receive, github_chunk, github_cleanup, WEBHOOK_MAX_BODY,
                        KEEL_KEEPS_BODY),
        KEEL_TYPED("GET", "/webhooks/events", list_events, keel_empty, webhook_event_list),
        KEEL_ENDPOINT_END
    },
};

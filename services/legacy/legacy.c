/* services/legacy/legacy.c - the legacy backend's router and handlers.
 *
 * Request life cycle, as libmicrohttpd drives it:
 *   1st call      allocate the request state in *req_cls, pick the route
 *   body calls    feed upload_data to the route (buffer / post processor /
 *                 checksum), consume it (*upload_data_size = 0)
 *   last call     (no more data) build and queue the response
 *   completed     legacy_completed frees the state, whatever happened */
#include "legacy.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON_BODY (64 * 1024)
#define MAX_FIELD (4 * 1024)

static atomic_long live_requests;
static atomic_long aborted_requests;

long legacy_live_requests(void) { return atomic_load(&live_requests); }
long legacy_aborted_requests(void) { return atomic_load(&aborted_requests); }

enum route {
    R_NOT_FOUND, R_BAD_METHOD, R_LIST, R_GET, R_CREATE_JSON, R_CREATE_FORM,
    R_UPLOAD, R_OLD_ITEMS, R_SESSION, R_STATS
};

typedef struct field { char *data; size_t len; int too_long; } field;

typedef struct lreq {
    enum route route;
    int64_t id;                 /* R_GET */
    const char *allow;          /* R_BAD_METHOD */
    char *body;                 /* R_CREATE_JSON */
    size_t len, cap;
    int too_large;
    struct MHD_PostProcessor *pp; /* R_CREATE_FORM */
    field name, qty;
    uint64_t bytes, hash;       /* R_UPLOAD: FNV-1a 64 */
} lreq;

/* ---- the store --------------------------------------------------------- */

static int store_add_locked(legacy_state *st, const char *name, int64_t qty, legacy_item *out)
{
    if (st->count == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 8;
        legacy_item *grown = realloc(st->items, cap * sizeof *grown);
        if (!grown)
            return 0;
        st->items = grown;
        st->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return 0;
    legacy_item *it = &st->items[st->count++];
    it->id = st->next_id++;
    it->name = copy;
    it->qty = qty;
    if (out) {
        *out = *it;
        out->name = strdup(copy);
        if (!out->name)
            return 0;
    }
    return 1;
}

static void seed_locked(legacy_state *st)
{
    if (!st->seeded) {
        st->seeded = 1;
        store_add_locked(st, "anvil", 1, NULL);
    }
}

legacy_state *legacy_state_new(void)
{
    legacy_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    pthread_mutex_init(&st->lock, NULL);
    st->next_id = 1;
    st->next_session = 1;
    return st;
}

void legacy_state_clear(legacy_state *st)
{
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->count; i++)
        free(st->items[i].name);
    free(st->items);
    st->items = NULL;
    st->count = st->cap = 0;
    pthread_mutex_unlock(&st->lock);
}

void legacy_state_free(legacy_state *st)
{
    if (!st)
        return;
    legacy_state_clear(st);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

int legacy_item_get(legacy_state *st, int64_t id, legacy_item *out)
{
    int found = 0;
    pthread_mutex_lock(&st->lock);
    seed_locked(st);
    for (size_t i = 0; i < st->count; i++) {
        if (st->items[i].id == id) {
            *out = st->items[i];
            out->name = strdup(st->items[i].name);
            found = out->name != NULL;
            break;
        }
    }
    pthread_mutex_unlock(&st->lock);
    return found;
}

int64_t legacy_parse_id(const char *s)
{
    if (!s || !*s || *s == '0' || strlen(s) > 19)
        return 0;
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

static json_t *item_to_json(const legacy_item *it)
{
    return json_pack("{s:I, s:s, s:I}", "id", (json_int_t)it->id, "name", it->name,
                     "qty", (json_int_t)it->qty);
}

char *legacy_item_json(const legacy_item *it)
{
    json_t *j = item_to_json(it);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

/* ---- responses --------------------------------------------------------- */

/* Queues a response copying body; extra is "Name", "value", ... NULL. */
static enum MHD_Result send_page(struct MHD_Connection *conn, unsigned status, const char *ctype,
                                 const char *body, size_t len, ...)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    va_list ap;
    va_start(ap, len);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        MHD_add_response_header(r, name, value);
    }
    va_end(ap);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *j, ...)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!text)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    va_list ap;
    va_start(ap, j);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        MHD_add_response_header(r, name, value);
    }
    va_end(ap);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    return send_json(conn, status, json_pack("{s:s}", "error", msg), NULL);
}

/* Appends s HTML-escaped. */
static void html_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        default: break;
        }
        if (rep) {
            size_t n = strlen(rep);
            memcpy(out + o, rep, n);
            o += n;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

static enum MHD_Result send_not_found(struct MHD_Connection *conn, const char *url)
{
    char esc[1024], page[1400];
    html_escape(esc, sizeof esc, url);
    int n = snprintf(page, sizeof page,
                     "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
                     "<body><h1>Not Found</h1><p>The requested URL %s was not found on this server.</p></body></html>\n",
                     esc);
    return send_page(conn, MHD_HTTP_NOT_FOUND, "text/html; charset=utf-8", page, (size_t)n, NULL);
}

static enum MHD_Result send_bad_method(struct MHD_Connection *conn, const char *allow)
{
    static const char page[] = "<!DOCTYPE html>\n<html><head><title>405 Method Not Allowed</title></head>\n"
                               "<body><h1>Method Not Allowed</h1></body></html>\n";
    return send_page(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/html; charset=utf-8", page, sizeof page - 1,
                     MHD_HTTP_HEADER_ALLOW, allow, NULL);
}

/* ---- routing ----------------------------------------------------------- */

static int is(const char *method, const char *m) { return strcmp(method, m) == 0; }

static enum route route_for(const char *url, const char *method, lreq *rq)
{
    int get = is(method, "GET") || is(method, "HEAD");
    if (strcmp(url, "/api/items") == 0) {
        if (get) return R_LIST;
        if (is(method, "POST")) return R_CREATE_JSON;
        rq->allow = "GET, HEAD, POST";
        return R_BAD_METHOD;
    }
    if (strcmp(url, "/api/items/form") == 0) {
        if (is(method, "POST")) return R_CREATE_FORM;
        rq->allow = "POST";
        return R_BAD_METHOD;
    }
    if (strncmp(url, "/api/items/", 11) == 0) {
        rq->id = legacy_parse_id(url + 11);
        if (!rq->id)
            return R_NOT_FOUND;
        if (get) return R_GET;
        rq->allow = "GET, HEAD";
        return R_BAD_METHOD;
    }
    if (strcmp(url, "/api/upload") == 0) {
        if (is(method, "POST") || is(method, "PUT")) return R_UPLOAD;
        rq->allow = "POST, PUT";
        return R_BAD_METHOD;
    }
    struct { const char *path; enum route r; } gets[] = {
        {"/api/old-items", R_OLD_ITEMS}, {"/api/session", R_SESSION}, {"/api/stats", R_STATS}};
    for (size_t i = 0; i < sizeof gets / sizeof *gets; i++) {
        if (strcmp(url, gets[i].path) == 0) {
            if (get) return gets[i].r;
            rq->allow = "GET, HEAD";
            return R_BAD_METHOD;
        }
    }
    return R_NOT_FOUND;
}

/* ---- bodies ------------------------------------------------------------ */

static void field_append(field *f, const char *data, size_t size)
{
    if (f->too_long || !size)
        return;
    if (f->len + size > MAX_FIELD) {
        f->too_long = 1;
        return;
    }
    char *grown = realloc(f->data, f->len + size + 1);
    if (!grown) {
        f->too_long = 1;
        return;
    }
    memcpy(grown + f->len, data, size);
    f->len += size;
    grown[f->len] = '\0';
    f->data = grown;
}

static enum MHD_Result form_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *filename, const char *content_type,
                                  const char *transfer_encoding, const char *data, uint64_t off,
                                  size_t size)
{
    (void)kind; (void)filename; (void)content_type; (void)transfer_encoding; (void)off;
    lreq *rq = cls;
    if (strcmp(key, "name") == 0)
        field_append(&rq->name, data, size);
    else if (strcmp(key, "qty") == 0)
        field_append(&rq->qty, data, size);
    return MHD_YES;
}

static void take_chunk(lreq *rq, const char *data, size_t size)
{
    switch (rq->route) {
    case R_CREATE_JSON:
        if (rq->too_large)
            return;
        if (rq->len + size > MAX_JSON_BODY) {
            rq->too_large = 1;
            return;
        }
        if (rq->len + size > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 1024;
            while (cap < rq->len + size)
                cap *= 2;
            char *grown = realloc(rq->body, cap);
            if (!grown) {
                rq->too_large = 1;
                return;
            }
            rq->body = grown;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, data, size);
        rq->len += size;
        return;
    case R_CREATE_FORM:
        if (rq->pp)
            MHD_post_process(rq->pp, data, size);
        return;
    case R_UPLOAD:
        for (size_t i = 0; i < size; i++) {
            rq->hash ^= (unsigned char)data[i];
            rq->hash *= UINT64_C(0x100000001b3);
        }
        rq->bytes += size;
        return;
    default:
        return; /* bodies of other requests are read and dropped */
    }
}

/* ---- handlers ---------------------------------------------------------- */

/* True for a usable item name: non-empty, valid UTF-8, no control characters. */
static int name_ok(const char *s, size_t len)
{
    if (!len || strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20)
            return 0;
    json_t *probe = json_stringn(s, len); /* NULL for invalid UTF-8 */
    json_decref(probe);
    return probe != NULL;
}

static enum MHD_Result create_item(struct MHD_Connection *conn, legacy_state *st, const char *name,
                                   size_t name_len, int64_t qty)
{
    if (!name || !name_ok(name, name_len))
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "name must be a non-empty string");
    if (qty < 0)
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "qty must be a non-negative integer");
    legacy_item it;
    pthread_mutex_lock(&st->lock);
    seed_locked(st);
    int added = store_add_locked(st, name, qty, &it);
    pthread_mutex_unlock(&st->lock);
    if (!added)
        return MHD_NO;
    char location[64];
    snprintf(location, sizeof location, "/api/items/%lld", (long long)it.id);
    json_t *j = item_to_json(&it);
    free(it.name);
    return send_json(conn, MHD_HTTP_CREATED, j, MHD_HTTP_HEADER_LOCATION, location, NULL);
}

static enum MHD_Result do_create_json(struct MHD_Connection *conn, legacy_state *st, lreq *rq)
{
    if (rq->too_large)
        return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
    json_error_t e;
    json_t *in = json_loadb(rq->body ? rq->body : "", rq->len, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(in)) {
        json_decref(in);
        return send_error(conn, MHD_HTTP_BAD_REQUEST, "body must be a JSON object");
    }
    json_t *name = json_object_get(in, "name"), *qty = json_object_get(in, "qty");
    int64_t q = 1;
    if (qty)
        q = json_is_integer(qty) ? (int64_t)json_integer_value(qty) : -1;
    enum MHD_Result ret = create_item(conn, st, json_is_string(name) ? json_string_value(name) : NULL,
                                      json_is_string(name) ? json_string_length(name) : 0, q);
    json_decref(in);
    return ret;
}

static enum MHD_Result do_create_form(struct MHD_Connection *conn, legacy_state *st, lreq *rq)
{
    if (!rq->pp)
        return send_error(conn, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
                          "expected application/x-www-form-urlencoded");
    if (rq->name.too_long || rq->qty.too_long)
        return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "field too long");
    int64_t q = 1;
    if (rq->qty.data) {
        q = legacy_parse_id(rq->qty.data);
        if (!q && strcmp(rq->qty.data, "0") != 0)
            q = -1;
    }
    return create_item(conn, st, rq->name.data, rq->name.len, q);
}

static enum MHD_Result do_list(struct MHD_Connection *conn, legacy_state *st)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&st->lock);
    seed_locked(st);
    for (size_t i = 0; i < st->count; i++)
        json_array_append_new(arr, item_to_json(&st->items[i]));
    size_t n = st->count;
    pthread_mutex_unlock(&st->lock);
    return send_json(conn, MHD_HTTP_OK, json_pack("{s:o, s:I}", "items", arr, "count", (json_int_t)n), NULL);
}

static enum MHD_Result do_get(struct MHD_Connection *conn, legacy_state *st, lreq *rq, const char *url)
{
    legacy_item it;
    if (!legacy_item_get(st, rq->id, &it))
        return send_not_found(conn, url);
    json_t *j = item_to_json(&it);
    free(it.name);
    return send_json(conn, MHD_HTTP_OK, j, NULL);
}

static enum MHD_Result do_redirect(struct MHD_Connection *conn)
{
    static const char page[] = "<!DOCTYPE html>\n<html><head><title>301 Moved Permanently</title></head>\n"
                               "<body><h1>Moved Permanently</h1><p>See <a href=\"/api/items\">/api/items</a>.</p></body></html>\n";
    return send_page(conn, MHD_HTTP_MOVED_PERMANENTLY, "text/html; charset=utf-8", page, sizeof page - 1,
                     MHD_HTTP_HEADER_LOCATION, "/api/items", NULL);
}

static enum MHD_Result do_session(struct MHD_Connection *conn, legacy_state *st)
{
    pthread_mutex_lock(&st->lock);
    unsigned long n = st->next_session++;
    pthread_mutex_unlock(&st->lock);
    char sid[32], cookie[96];
    snprintf(sid, sizeof sid, "sess-%06lu", n);
    snprintf(cookie, sizeof cookie, "legacy_session=%s; Path=/; HttpOnly", sid);
    return send_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "session", sid),
                     MHD_HTTP_HEADER_SET_COOKIE, cookie, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store", NULL);
}

static enum MHD_Result do_upload(struct MHD_Connection *conn, lreq *rq)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rq->hash);
    return send_json(conn, MHD_HTTP_OK,
                     json_pack("{s:I, s:s}", "bytes", (json_int_t)rq->bytes, "fnv1a64", hex), NULL);
}

static enum MHD_Result do_stats(struct MHD_Connection *conn)
{
    return send_json(conn, MHD_HTTP_OK,
                     json_pack("{s:I, s:I}", "live_requests", (json_int_t)legacy_live_requests(),
                               "aborted_requests", (json_int_t)legacy_aborted_requests()), NULL);
}

enum MHD_Result legacy_handler(void *cls, struct MHD_Connection *connection, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **req_cls)
{
    (void)version;
    legacy_state *st = cls;
    lreq *rq = *req_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        atomic_fetch_add(&live_requests, 1);
        *req_cls = rq;
        rq->route = route_for(url, method, rq);
        rq->hash = UINT64_C(0xcbf29ce484222325);
        if (rq->route == R_CREATE_FORM)
            rq->pp = MHD_create_post_processor(connection, 4096, form_field, rq);
        return MHD_YES;
    }
    if (*upload_data_size) {
        take_chunk(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    switch (rq->route) {
    case R_LIST: return do_list(connection, st);
    case R_GET: return do_get(connection, st, rq, url);
    case R_CREATE_JSON: return do_create_json(connection, st, rq);
    case R_CREATE_FORM: return do_create_form(connection, st, rq);
    case R_UPLOAD: return do_upload(connection, rq);
    case R_OLD_ITEMS: return do_redirect(connection);
    case R_SESSION: return do_session(connection, st);
    case R_STATS: return do_stats(connection);
    case R_BAD_METHOD: return send_bad_method(connection, rq->allow);
    case R_NOT_FOUND:
    default: return send_not_found(connection, url);
    }
}

void legacy_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls; (void)connection;
    lreq *rq = *req_cls;
    if (!rq)
        return;
    *req_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        atomic_fetch_add(&aborted_requests, 1);
    if (rq->pp)
        MHD_destroy_post_processor(rq->pp);
    free(rq->body);
    free(rq->name.data);
    free(rq->qty.data);
    free(rq);
    atomic_fetch_sub(&live_requests, 1);
}

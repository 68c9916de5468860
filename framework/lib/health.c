/* health.c - is this instance alive, and should it get traffic?
 *
 * GET /__keel/healthz answers 200 whenever the process serves requests: a
 * supervisor restarts an instance that stops answering it.  GET
 * /__keel/readyz answers 200 only while the instance should take traffic:
 * every declared secret is set, every managed database (migrated at
 * start-up: the app does not serve otherwise) answers a query now, and the
 * app is not draining.  Otherwise it answers 503 in Encore's error shape
 * with the reason, so a load balancer that checks it takes the instance
 * out before it stops (keel_app_drain, KEEL_DRAIN_MS) and puts it back once
 * it can serve.  Neither page is traced or logged: balancers ask often. */
#include "core.h"
#include "health.h"

#include <string.h>

void keel_app_drain(keel_app *app)
{
    atomic_store(&app->draining, true);
}

keel_error *keel__healthz_page(keel_req *req, keel_resp *resp)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    (void)req;
    keel_resp_body(resp, ok, sizeof ok - 1);
    return keel_resp_header(resp, "Content-Type", "application/json");
}

/* err, answered as 503 with "not ready: " before its message. */
static keel_error *not_ready(keel_error *err)
{
    err->code = KEEL_UNAVAILABLE;
    err->http_status = 0;
    return keel_error_prefix(err, "not ready");
}

keel_error *keel__readyz_page(keel_req *req, keel_resp *resp)
{
    keel_app *app = req->app;
    if (atomic_load(&app->draining) || atomic_load(&app->stopping))
        return keel_error_new(KEEL_UNAVAILABLE, "not ready: draining, the instance is shutting down");
    keel_error *err = keel__secrets_check(app);
    if (err)
        return not_ready(err);
    keel_buf *b = keel_resp_buf(resp);
    keel_buf_puts(b, "{\"status\":\"ready\",\"databases\":{");
    for (size_t i = 0; i < app->ndbs; i++) {
        keel_row *row;
        err = keel_db_query_row(req, app->dbs[i], &row, "SELECT 1");
        if (err)
            return not_ready(keel_error_prefix(err, "database %s", app->dbs[i]->name));
        keel_buf_printf(b, "%s\"%s\":\"ok\"", i ? "," : "", app->dbs[i]->name);
    }
    keel_buf_puts(b, "},\"secrets\":\"ok\"}");
    return keel_resp_header(resp, "Content-Type", "application/json");
}

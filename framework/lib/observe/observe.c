/* observe.c - the app's observability state: tracing settings read once at
 * start-up, the exporter, and the recent traces the dashboard lists. */
#include "core.h"
#include "json_text.h"
#include "observe/observe.h"
#include "sql/infra.h"

#include <stdlib.h>
#include <string.h>

#define RECENT_TRACES 100

struct keel_observe {
    keel_trace_config cfg;
    keel_exporter *exporter;
    bool dashboard;
    pthread_mutex_t recent_mu;
    keel_trace *recent[RECENT_TRACES]; /* a ring, newest at recent_next - 1 */
    size_t recent_next;
};

keel_error *keel__observe_start(keel_app *app, bool dashboard)
{
    keel_observe *obs = calloc(1, sizeof *obs);
    if (!obs)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    const keel_infra *infra = NULL;
    const char *path = getenv("KEEL_INFRA_CONFIG");
    keel_error *err = path && *path ? keel__infra_process(&infra) : NULL; /* an app without databases needs none */
    if (!err)
        err = keel__trace_config_from_json(infra ? keel__infra_tracing(infra) : NULL,
                                           infra ? keel__infra_path(infra) : "", &obs->cfg);
    if (!err)
        err = keel__trace_config_env(&obs->cfg);
    if (obs->cfg.shutdown_ms > app->cfg.shutdown_grace_ms) /* stopping takes no longer than asked */
        obs->cfg.shutdown_ms = app->cfg.shutdown_grace_ms;
    if (!err && obs->cfg.endpoint)
        err = keel__exporter_start(&obs->cfg, &obs->exporter);
    if (err) {
        keel__trace_config_clear(&obs->cfg);
        free(obs);
        return err;
    }
    obs->dashboard = dashboard;
    pthread_mutex_init(&obs->recent_mu, NULL);
    app->obs = obs;
    if (obs->exporter)
        keel_log(KEEL_LOG_INFO, "tracing: exporting OTLP to %s (sampler %s, ratio %g)", obs->cfg.endpoint,
                 keel__sampler_name(obs->cfg.sampler), obs->cfg.sample_ratio);
    return NULL;
}

void keel__observe_stop(keel_app *app)
{
    keel_observe *obs = app->obs;
    if (!obs)
        return;
    keel__exporter_stop(obs->exporter);
    for (size_t i = 0; i < RECENT_TRACES; i++)
        keel__trace_unref(obs->recent[i]);
    pthread_mutex_destroy(&obs->recent_mu);
    keel__trace_config_clear(&obs->cfg);
    free(obs);
    app->obs = NULL;
}

bool keel__observe_tracing(const keel_observe *obs)
{
    return obs->exporter || obs->dashboard;
}

bool keel__observe_sample(const keel_observe *obs, const uint8_t id[16], bool has_parent, bool parent_sampled)
{
    return keel__trace_sampled(obs->cfg.sampler, obs->cfg.sample_ratio, id, has_parent, parent_sampled);
}

bool keel__observe_sql_parameters(const keel_observe *obs)
{
    return obs->cfg.sql_parameters;
}

void keel__observe_trace_done(keel_observe *obs, keel_trace *t)
{
    if (obs->dashboard) {
        atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
        pthread_mutex_lock(&obs->recent_mu);
        keel_trace *old = obs->recent[obs->recent_next];
        obs->recent[obs->recent_next] = t;
        obs->recent_next = (obs->recent_next + 1) % RECENT_TRACES;
        pthread_mutex_unlock(&obs->recent_mu);
        keel__trace_unref(old);
    }
    if (obs->exporter)
        keel__exporter_push(obs->exporter, t);
    else
        keel__trace_unref(t);
}

void keel__observe_trace_stats(const keel_observe *obs, keel_trace_stats *out)
{
    memset(out, 0, sizeof *out);
    if (obs && obs->exporter)
        keel__exporter_stats(obs->exporter, out);
}

/* ---- the dashboard's JSON ------------------------------------------------------------ */

static const keel_attr *attr_find(const keel_span *s, const char *key)
{
    for (const keel_attr *a = s->attrs; a; a = a->next)
        if (strcmp(a->key, key) == 0)
            return a;
    return NULL;
}

static void put_json_str(keel_buf *b, const char *s)
{
    if (s)
        keel__json_append_string(b, s, strlen(s));
    else
        keel_buf_puts(b, "null");
}

static void put_attr_str(keel_buf *b, const keel_span *s, const char *key)
{
    const keel_attr *a = attr_find(s, key);
    put_json_str(b, a && a->type == KEEL_ATTR_STR ? a->v.s : NULL);
}

static void trace_summary(keel_buf *b, const keel_trace *t)
{
    const keel_span *root = t->spans;
    char hex[33];
    keel__hex(t->id, 16, hex);
    const keel_attr *status = attr_find(root, "http.response.status_code");
    keel_buf_printf(b, "{\"trace_id\":\"%s\",\"name\":", hex);
    put_json_str(b, root->name);
    keel_buf_puts(b, ",\"service\":");
    put_attr_str(b, root, "keel.service");
    keel_buf_puts(b, ",\"endpoint\":");
    put_attr_str(b, root, "keel.endpoint");
    keel_buf_puts(b, ",\"status\":");
    if (status && status->type == KEEL_ATTR_INT)
        keel_buf_printf(b, "%lld", (long long)status->v.i);
    else
        keel_buf_puts(b, "null");
    keel_buf_puts(b, ",\"error\":");
    put_attr_str(b, root, "keel.error_code");
    keel_buf_printf(b, ",\"start_ms\":%llu,\"duration_ms\":%.3f,\"spans\":%zu}",
                    (unsigned long long)(root->start_ns / 1000000),
                    (double)(root->end_ns - root->start_ns) / 1e6, t->nspans);
}

void keel__observe_recent_json(keel_observe *obs, keel_buf *out)
{
    keel_buf_puts(out, "{\"traces\":[");
    pthread_mutex_lock(&obs->recent_mu);
    bool first = true;
    for (size_t k = 1; k <= RECENT_TRACES; k++) {
        const keel_trace *t = obs->recent[(obs->recent_next + RECENT_TRACES - k) % RECENT_TRACES];
        if (!t)
            continue;
        if (!first)
            keel_buf_putc(out, ',');
        first = false;
        trace_summary(out, t);
    }
    pthread_mutex_unlock(&obs->recent_mu);
    keel_buf_puts(out, "]}");
}

static const char *kind_name(keel_span_kind k)
{
    return k == KEEL_SPAN_SERVER ? "server" : k == KEEL_SPAN_CLIENT ? "client" : "internal";
}

static void span_json(keel_buf *b, const keel_span *s, const keel_trace *t)
{
    char id[17], parent[17];
    keel__hex(s->id, 8, id);
    keel_buf_printf(b, "{\"span_id\":\"%s\",\"parent_id\":", id);
    if (s->parent || t->has_remote_parent) {
        keel__hex(s->parent ? s->parent->id : t->remote_parent, 8, parent);
        keel_buf_printf(b, "\"%s\"", parent);
    } else {
        keel_buf_puts(b, "null");
    }
    keel_buf_puts(b, ",\"name\":");
    put_json_str(b, s->name);
    keel_buf_printf(b, ",\"kind\":\"%s\",\"start_ns\":\"%llu\",\"end_ns\":\"%llu\",\"status\":\"%s\",\"status_message\":",
                    kind_name(s->kind), (unsigned long long)s->start_ns, (unsigned long long)s->end_ns,
                    s->status == KEEL_STATUS_ERROR ? "error" : s->status == KEEL_STATUS_OK ? "ok" : "unset");
    put_json_str(b, s->status_message);
    keel_buf_puts(b, ",\"attributes\":{");
    for (const keel_attr *a = s->attrs; a; a = a->next) {
        put_json_str(b, a->key);
        keel_buf_putc(b, ':');
        switch (a->type) {
        case KEEL_ATTR_STR: put_json_str(b, a->v.s); break;
        case KEEL_ATTR_INT: keel_buf_printf(b, "%lld", (long long)a->v.i); break;
        case KEEL_ATTR_BOOL: keel_buf_puts(b, a->v.b ? "true" : "false"); break;
        case KEEL_ATTR_DOUBLE: keel_buf_printf(b, "%.17g", a->v.d); break;
        }
        if (a->next)
            keel_buf_putc(b, ',');
    }
    keel_buf_puts(b, "}}");
}

bool keel__observe_trace_json(keel_observe *obs, const char *hex_id, keel_buf *out)
{
    bool found = false;
    pthread_mutex_lock(&obs->recent_mu);
    for (size_t i = 0; i < RECENT_TRACES && !found; i++) {
        const keel_trace *t = obs->recent[i];
        char hex[33];
        if (!t)
            continue;
        keel__hex(t->id, 16, hex);
        if (strcmp(hex, hex_id) != 0)
            continue;
        found = true;
        keel_buf_printf(out, "{\"trace_id\":\"%s\",\"spans\":[", hex);
        for (const keel_span *s = t->spans; s; s = s->next) {
            span_json(out, s, t);
            if (s->next)
                keel_buf_putc(out, ',');
        }
        keel_buf_puts(out, "]}");
    }
    pthread_mutex_unlock(&obs->recent_mu);
    return found;
}

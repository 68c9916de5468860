/* export.c - the OTLP/HTTP exporter: finished traces wait in a bounded
 * queue; one thread sends them as protobuf every batch_ms (or sooner when
 * many wait).  A request never waits for the network: when the queue is
 * full its spans are dropped and counted. */
#include "keel/log.h"
#include "observe/http_client.h"
#include "observe/observe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEND_SOON_SPANS 512   /* wake the thread before its period */
#define SEND_TIMEOUT_MS 5000

struct keel_exporter {
    keel_http_target target;
    char *service_name;
    unsigned queue_spans;
    unsigned batch_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    keel_trace *head, **tail;
    size_t queued;            /* spans in the queue */
    bool stopping;
    atomic_uint_fast64_t exported, dropped, failed;
    time_t last_warning;      /* one warning a minute while the collector fails */
};

static void send_batch(keel_exporter *x, keel_trace *list)
{
    size_t n = 0, spans = 0;
    for (keel_trace *t = list; t; t = t->next)
        n++;
    keel_trace **arr = malloc(n * sizeof *arr);
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    keel_buf body;
    keel_buf_init(&body, &arena);
    keel_error *err = NULL;
    if (!arr) {
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        size_t i = 0;
        for (keel_trace *t = list; t; t = t->next) {
            arr[i++] = t;
            spans += t->nspans;
        }
        keel__otlp_encode(&body, x->service_name, arr, n);
        if (body.failed)
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (!arr)
        for (keel_trace *t = list; t; t = t->next)
            spans += t->nspans;
    if (!err) {
        static const char *const headers[] = {"Content-Type: application/x-protobuf", NULL};
        keel_http_reply reply;
        err = keel__http_exchange(&x->target, "POST", x->target.path, headers, body.data, body.len,
                                  SEND_TIMEOUT_MS, &reply);
        if (!err && (reply.status < 200 || reply.status > 299))
            err = keel_error_new(KEEL_UNAVAILABLE, "the collector answered %u", reply.status);
        keel__http_reply_clear(&reply);
    }
    if (err) {
        atomic_fetch_add(&x->failed, spans);
        time_t now = time(NULL);
        if (now - x->last_warning >= 60) {
            x->last_warning = now;
            keel_log(KEEL_LOG_WARN, "tracing: %zu spans not exported to %s:%s%s: %s", spans, x->target.host,
                     x->target.port, x->target.path, err->message);
        }
        keel_error_free(err);
    } else {
        atomic_fetch_add(&x->exported, spans);
    }
    while (list) {
        keel_trace *next = list->next;
        keel__trace_unref(list);
        list = next;
    }
    free(arr);
    keel_arena_release(&arena);
}

static void *exporter_main(void *arg)
{
    keel_exporter *x = arg;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        if (!x->stopping && x->queued < SEND_SOON_SPANS) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += x->batch_ms / 1000;
            until.tv_nsec += (long)(x->batch_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&x->cv, &x->mu, &until);
        }
        keel_trace *list = x->head;
        x->head = NULL;
        x->tail = &x->head;
        x->queued = 0;
        bool stop = x->stopping;
        pthread_mutex_unlock(&x->mu);
        if (list)
            send_batch(x, list);
        if (stop)
            return NULL;
        pthread_mutex_lock(&x->mu);
    }
}

keel_error *keel__exporter_start(const keel_trace_config *cfg, keel_exporter **out)
{
    *out = NULL;
    keel_exporter *x = calloc(1, sizeof *x);
    if (!x)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_error *err = keel__http_target_parse(cfg->endpoint, &x->target);
    if (err) {
        free(x);
        return keel_error_prefix(err, "tracing: the OTLP endpoint");
    }
    x->service_name = strdup(cfg->service_name ? cfg->service_name : "keel-app");
    x->queue_spans = cfg->queue_spans;
    x->batch_ms = cfg->batch_ms;
    x->tail = &x->head;
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    if (!x->service_name || pthread_create(&x->thread, NULL, exporter_main, x) != 0) {
        keel__http_target_clear(&x->target);
        free(x->service_name);
        pthread_mutex_destroy(&x->mu);
        pthread_cond_destroy(&x->cv);
        free(x);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "tracing: could not start the exporter thread");
    }
    *out = x;
    return NULL;
}

void keel__exporter_push(keel_exporter *x, keel_trace *t)
{
    pthread_mutex_lock(&x->mu);
    if (x->stopping || x->queued + t->nspans > x->queue_spans) {
        pthread_mutex_unlock(&x->mu);
        atomic_fetch_add_explicit(&x->dropped, t->nspans, memory_order_relaxed);
        keel__trace_unref(t);
        return;
    }
    t->next = NULL;
    *x->tail = t;
    x->tail = &t->next;
    x->queued += t->nspans;
    if (x->queued >= SEND_SOON_SPANS)
        pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

void keel__exporter_stats(const keel_exporter *x, keel_trace_stats *out)
{
    out->exported = atomic_load_explicit(&((keel_exporter *)x)->exported, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&((keel_exporter *)x)->dropped, memory_order_relaxed);
    out->failed = atomic_load_explicit(&((keel_exporter *)x)->failed, memory_order_relaxed);
}

void keel__exporter_stop(keel_exporter *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    x->stopping = true;
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    pthread_join(x->thread, NULL);
    keel__http_target_clear(&x->target);
    free(x->service_name);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
}

/* export.c - the OTLP/HTTP exporter: finished traces wait in a queue
 * bounded in spans and in bytes (the memory of the traces waiting and of
 * those being sent); one thread sends them as protobuf every batch_ms (or
 * sooner when many wait).  A request never waits for the network: what does
 * not fit is dropped and counted.  Stopping sends what is left within
 * shutdown_ms, then abandons the send in flight: a stalled collector never
 * holds the process. */
#include "clock.h"
#include "keel/log.h"
#include "observe/http_client.h"
#include "observe/observe.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define SEND_SOON_SPANS 512   /* wake the thread before its period */
#define SEND_TIMEOUT_MS 5000

struct keel_exporter {
    keel_http_target target;
    char *service_name;
    unsigned queue_spans;
    size_t queue_bytes;
    unsigned batch_ms;
    unsigned shutdown_ms;
    int abort_fd;             /* an eventfd, written when the time to stop is up */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    keel_trace *head, **tail;
    size_t queued;            /* spans in the queue */
    size_t bytes;             /* memory of the traces queued or being sent */
    bool stopping;
    struct timespec stop_by;  /* CLOCK_MONOTONIC: when stopping, the end of the last sends */
    atomic_uint_fast64_t exported, dropped, failed;
    time_t last_warning;      /* one warning a minute while the collector fails */
};

/* Milliseconds from now until when (CLOCK_MONOTONIC); 0 when past. */
static unsigned ms_until(const struct timespec *when)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = keel__ms_between(&now, when);
    return ms <= 0 ? 0 : ms > UINT32_MAX ? UINT32_MAX : (unsigned)ms;
}

/* Sends list (within timeout_ms; stopping: the last sends) and frees it;
 * returns the memory freed. */
static size_t send_batch(keel_exporter *x, keel_trace *list, unsigned timeout_ms, bool stopping)
{
    size_t n = 0, spans = 0, bytes = 0;
    for (keel_trace *t = list; t; t = t->next) {
        n++;
        spans += t->nspans;
        bytes += keel__trace_memory(t);
    }
    keel_trace **arr = malloc(n * sizeof *arr);
    keel_arena arena;
    keel_arena_init(&arena, NULL, 0);
    keel_buf body;
    keel_buf_init(&body, &arena);
    keel_error *err = NULL;
    if (!timeout_ms) {
        err = keel_error_new(KEEL_DEADLINE_EXCEEDED, "no time was left to send them while stopping");
    } else if (!arr) {
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    } else {
        size_t i = 0;
        for (keel_trace *t = list; t; t = t->next)
            arr[i++] = t;
        keel__otlp_encode(&body, x->service_name, arr, n);
        if (body.failed)
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (!err) {
        static const char *const headers[] = {"Content-Type: application/x-protobuf", NULL};
        keel_http_reply reply;
        err = keel__http_exchange(&x->target, "POST", x->target.path, headers, body.data, body.len, timeout_ms,
                                  x->abort_fd, &reply);
        if (!err && (reply.status < 200 || reply.status > 299))
            err = keel_error_new(KEEL_UNAVAILABLE, "the collector answered %u", reply.status);
        keel__http_reply_clear(&reply);
    }
    if (err) {
        atomic_fetch_add(&x->failed, spans);
        time_t now = time(NULL);
        if (now - x->last_warning >= 60 || stopping) {
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
    return bytes;
}

static void *exporter_main(void *arg)
{
    keel_exporter *x = arg;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        if (!x->stopping && x->queued < SEND_SOON_SPANS && x->bytes < x->queue_bytes / 2) {
            struct timespec until = keel__deadline_ms(CLOCK_REALTIME, x->batch_ms);
            pthread_cond_timedwait(&x->cv, &x->mu, &until);
        }
        keel_trace *list = x->head;
        x->head = NULL;
        x->tail = &x->head;
        x->queued = 0;
        bool stop = x->stopping;
        unsigned timeout = stop ? ms_until(&x->stop_by) : SEND_TIMEOUT_MS;
        pthread_mutex_unlock(&x->mu);
        size_t freed = list ? send_batch(x, list, timeout < SEND_TIMEOUT_MS ? timeout : SEND_TIMEOUT_MS, stop) : 0;
        pthread_mutex_lock(&x->mu);
        x->bytes -= freed;
        if (stop && !x->head)
            break;
    }
    pthread_mutex_unlock(&x->mu);
    return NULL;
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
    x->queue_bytes = cfg->queue_bytes;
    x->batch_ms = cfg->batch_ms;
    x->shutdown_ms = cfg->shutdown_ms;
    x->tail = &x->head;
    x->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cv, NULL);
    if (!x->service_name || x->abort_fd < 0 || pthread_create(&x->thread, NULL, exporter_main, x) != 0) {
        keel__http_target_clear(&x->target);
        free(x->service_name);
        if (x->abort_fd >= 0)
            close(x->abort_fd);
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
    size_t mem = keel__trace_memory(t);
    pthread_mutex_lock(&x->mu);
    if (x->stopping || x->queued + t->nspans > x->queue_spans || x->bytes + mem > x->queue_bytes) {
        pthread_mutex_unlock(&x->mu);
        atomic_fetch_add_explicit(&x->dropped, t->nspans, memory_order_relaxed);
        keel__trace_unref(t);
        return;
    }
    t->next = NULL;
    *x->tail = t;
    x->tail = &t->next;
    x->queued += t->nspans;
    x->bytes += mem;
    if (x->queued >= SEND_SOON_SPANS || x->bytes >= x->queue_bytes / 2)
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
    x->stop_by = keel__deadline_ms(CLOCK_MONOTONIC, x->shutdown_ms);
    pthread_cond_signal(&x->cv);
    pthread_mutex_unlock(&x->mu);
    /* The send in flight (begun with up to SEND_TIMEOUT_MS) and the last
     * one get until stop_by; then the one still waiting is abandoned. */
    struct timespec by = keel__deadline_ms(CLOCK_REALTIME, x->shutdown_ms);
    if (pthread_timedjoin_np(x->thread, NULL, &by) != 0) {
        uint64_t one = 1;
        ssize_t w;
        do
            w = write(x->abort_fd, &one, sizeof one);
        while (w < 0 && errno == EINTR);
        pthread_join(x->thread, NULL);
    }
    keel__http_target_clear(&x->target);
    free(x->service_name);
    close(x->abort_fd);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
    free(x);
}

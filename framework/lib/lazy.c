/* lazy.c - see keel/lazy.h.  A mutex and a condition variable guard a small
 * state machine; the set-up itself runs unlocked so that slow set-ups (a
 * connection attempt) never hold the lock. */
#include "keel/lazy.h"
#include "observe/trace.h"

#include <stdlib.h>

/* Runs one attempt (the caller set state to 1) and publishes its outcome. */
static keel_error *attempt(keel_lazy *l, keel_lazy_init_fn init, void *arg, void **out)
{
    void *value = NULL;
    keel_req *req = keel__trace_current_req();
    keel_span *span = keel__span_start(req, "lazy init", KEEL_SPAN_INTERNAL);
    keel_error *err = init(arg, &value);
    keel__span_end(req, span, err);
    pthread_mutex_lock(&l->mu);
    keel_error_free(l->last_error);
    l->last_error = err ? keel_error_copy(err) : NULL;
    if (!err) {
        l->value = value;
        *out = value;
    }
    l->state = err ? 0 : 2;
    l->attempts++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return err;
}

keel_error *keel_lazy_get(keel_lazy *l, keel_lazy_init_fn init, void *arg, void **out)
{
    *out = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->state == 2) {
        *out = l->value;
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    if (l->state == 0) {
        l->state = 1;
        pthread_mutex_unlock(&l->mu);
        return attempt(l, init, arg, out);
    }
    /* Someone else is making it: wait for that attempt, then share its outcome. */
    unsigned long seen = l->attempts;
    while (l->attempts == seen)
        pthread_cond_wait(&l->cv, &l->mu);
    keel_error *err = NULL;
    if (l->state == 2)
        *out = l->value;
    else
        err = l->last_error ? keel_error_copy(l->last_error)
                            : keel_error_new(KEEL_UNAVAILABLE, "set-up failed");
    pthread_mutex_unlock(&l->mu);
    return err;
}

void *keel_lazy_peek(keel_lazy *l)
{
    pthread_mutex_lock(&l->mu);
    void *v = l->state == 2 ? l->value : NULL;
    pthread_mutex_unlock(&l->mu);
    return v;
}

void keel_lazy_reset(keel_lazy *l, void (*destroy)(void *value))
{
    pthread_mutex_lock(&l->mu);
    void *v = l->state == 2 ? l->value : NULL;
    l->value = NULL;
    if (l->state == 2)
        l->state = 0;
    keel_error_free(l->last_error);
    l->last_error = NULL;
    pthread_mutex_unlock(&l->mu);
    if (v && destroy)
        destroy(v);
}

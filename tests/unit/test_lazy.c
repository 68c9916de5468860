/* tests/unit/test_lazy.c - keel_lazy: 32 threads asking at once cause one
 * set-up and share its result; a failed set-up reaches every waiter and the
 * next call tries again; reset forgets the value. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <keel/keel.h>
#include "tap.h"

#define THREADS 32

static atomic_int calls;
static atomic_bool fail_next;
static int the_value = 42;

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Slow enough that every thread arrives while it runs. */
static keel_error *make(void *arg, void **out)
{
    (void)arg;
    atomic_fetch_add(&calls, 1);
    pause_ms(200);
    if (atomic_load(&fail_next))
        return keel_error_cause(keel_error_new(KEEL_UNAVAILABLE, "backend is down"), "connect refused");
    *out = &the_value;
    return NULL;
}

static keel_lazy lazy = KEEL_LAZY_INIT;
static pthread_barrier_t start;

typedef struct result {
    void *value;
    keel_error *err;
} result;

static void *worker(void *arg)
{
    result *r = arg;
    pthread_barrier_wait(&start);
    r->err = keel_lazy_get(&lazy, make, NULL, &r->value);
    return NULL;
}

/* Starts THREADS callers at once and waits for all of them. */
static void storm(result *res)
{
    pthread_t t[THREADS];
    memset(res, 0, THREADS * sizeof *res);
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, &res[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
}

static void test_failure_rearms(void)
{
    result res[THREADS];
    atomic_store(&fail_next, true);
    storm(res);
    is_int(atomic_load(&calls), 1, "32 concurrent first callers trigger one set-up");
    int errors = 0, same = 0;
    for (int i = 0; i < THREADS; i++) {
        errors += res[i].err != NULL;
        same += res[i].err && res[i].err->code == KEEL_UNAVAILABLE && !strcmp(res[i].err->message, "backend is down");
        keel_error_free(res[i].err);
    }
    is_int(errors, THREADS, "when it fails every caller gets an error");
    is_int(same, THREADS, "the set-up's own error (code and message)");
    ok(keel_lazy_peek(&lazy) == NULL, "nothing is cached after a failure");
}

static void test_success_shared(void)
{
    result res[THREADS];
    atomic_store(&fail_next, false);
    storm(res);
    is_int(atomic_load(&calls), 2, "after a failure the next callers try again, once");
    int shared = 0;
    for (int i = 0; i < THREADS; i++) {
        shared += !res[i].err && res[i].value == &the_value;
        keel_error_free(res[i].err);
    }
    is_int(shared, THREADS, "on success all 32 share the result");
    void *v = NULL;
    keel_error *err = keel_lazy_get(&lazy, make, NULL, &v);
    ok(!err && v == &the_value && atomic_load(&calls) == 2, "later calls reuse it without a set-up");
    keel_error_free(err);
}

static int destroyed;
static void destroy(void *v)
{
    destroyed += v == &the_value;
}

static void test_reset(void)
{
    keel_lazy_reset(&lazy, destroy);
    is_int(destroyed, 1, "reset hands the value to destroy");
    ok(keel_lazy_peek(&lazy) == NULL, "and forgets it");
    void *v = NULL;
    keel_error *err = keel_lazy_get(&lazy, make, NULL, &v);
    ok(!err && v == &the_value && atomic_load(&calls) == 3, "the next get makes a new one");
    keel_error_free(err);
    keel_lazy_reset(&lazy, NULL);
}

int main(void)
{
    plan(10);
    test_failure_rearms();
    test_success_shared();
    test_reset();
    return tap_done();
}

/* keel/lazy.h - create on first use: a once that re-arms on failure.
 *
 *     static keel_lazy client = KEEL_LAZY_INIT;
 *     static keel_error *connect_client(void *arg, void **out) { ... *out = c; return NULL; }
 *
 *     my_client *c;
 *     keel_error *err = keel_lazy_get(&client, connect_client, NULL, (void **)&c);
 *
 * Concurrent first callers trigger exactly one set-up: the others wait for it.
 * When it succeeds, everyone shares its result from then on; when it fails,
 * every caller that waited for that attempt receives (a copy of) its error and
 * the next call tries again.  Thread-safe; the set-up runs without the lock
 * held, so it may block (connect, resolve). */
#ifndef KEEL_LAZY_H
#define KEEL_LAZY_H

#include <pthread.h>
#include <stdbool.h>
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

/* Makes the value into *out, or returns an error (then *out is ignored). */
typedef keel_error *(*keel_lazy_init_fn)(void *arg, void **out);

typedef struct keel_lazy {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;                 /* 0 not made, 1 being made, 2 made */
    unsigned long attempts;    /* finished attempts: waiters watch it change */
    keel_error *last_error;    /* the last failed attempt's, copied to its waiters */
    void *value;
} keel_lazy;

#define KEEL_LAZY_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, NULL, NULL }

/* The value, making it with init(arg) when nobody has yet (see above). */
keel_error *keel_lazy_get(keel_lazy *lazy, keel_lazy_init_fn init, void *arg, void **out);

/* The value when it is made, else NULL; never starts a set-up. */
void *keel_lazy_peek(keel_lazy *lazy);

/* Forgets the value (passing it to destroy when given) so that the next get
 * makes a new one.  Only when no caller is using the value (shutdown, tests). */
void keel_lazy_reset(keel_lazy *lazy, void (*destroy)(void *value));

#pragma GCC visibility pop

#endif

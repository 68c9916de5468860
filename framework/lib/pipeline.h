/* pipeline.h - private: single statements from handler coroutines, sent
 * without blocking on connections their I/O thread owns, in libpq's pipeline
 * mode so that the statements of many requests share a connection. */
#ifndef KEEL_PIPELINE_H
#define KEEL_PIPELINE_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "keel/error.h"

typedef struct keel_req keel_req;
typedef struct keel_pool keel_pool;

/* One statement's parameters as libpq takes them. */
typedef struct keel_pipe_params {
    int n;
    const char *const *values;
    const int *lengths;
    const int *formats;
} keel_pipe_params;

/* On req's coroutine (on its I/O thread): prepares (once per connection) and
 * runs sql on one of the thread's connections to pool's database, and waits
 * for its result, which the caller then owns (*out).  *lost is true when the
 * connection broke before the result came: the statement may or may not have
 * run.  Errors are as keel__pg_error makes them. */
keel_error *keel__pipe_run(keel_req *req, keel_pool *pool, const char *sql, const keel_pipe_params *p,
                           PGresult **out, bool *lost);

#endif

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

/* A connection one request holds alone: a transaction, or a row stream. */
typedef struct keel_pipe_conn keel_pipe_conn;

/* On req's coroutine: takes one of the thread's connections to pool's
 * database for req alone (one with nothing in flight, or a new one within the
 * thread's share), waiting up to the checkout timeout (then unavailable). */
keel_error *keel__pipe_reserve(keel_req *req, keel_pool *pool, keel_pipe_conn **out);

/* keel__pipe_run on a reserved connection. */
keel_error *keel__pipe_run_on(keel_req *req, keel_pipe_conn *c, const char *sql, const keel_pipe_params *p,
                              PGresult **out, bool *lost);

/* Starts sql on a reserved connection in single-row mode; its results are
 * then read with keel__pipe_stream_next. */
keel_error *keel__pipe_stream_start(keel_req *req, keel_pipe_conn *c, const char *sql, const keel_pipe_params *p);

/* On req's coroutine: the stream's next result (the caller owns it), waiting
 * for it; NULL with *end when the statement is over, NULL without *end when
 * the connection broke.  Reads at most what the caller consumes. */
PGresult *keel__pipe_stream_next(keel_req *req, keel_pipe_conn *c, bool *end);

/* Gives a reserved connection back (any thread state: never waits); broken,
 * a connection inside a transaction or with a stream unfinished is closed. */
void keel__pipe_release(keel_pipe_conn *c, bool broken);

#endif

/* pool.h - private: one pool of libpq connections per database, shared by
 * managed and external databases.  Thread-safe; connects lazily; bounded size
 * with a checkout timeout; broken connections are dropped and replaced. */
#ifndef KEEL_POOL_H
#define KEEL_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "keel/error.h"
#include "sql/pg_error.h"

typedef struct keel_pool keel_pool;
typedef struct keel_pconn keel_pconn;

typedef struct keel_pool_config {
    const char *name;                /* logical database name, for messages */
    const char *const *keywords;     /* libpq's keyword/value arrays, */
    const char *const *values;       /* NULL-terminated; copied */
    unsigned max_conns;              /* 0: 20 */
    unsigned checkout_timeout_ms;    /* 0: 5000 */
    unsigned statement_timeout_ms;   /* 0: no limit */
} keel_pool_config;

/* Creates a pool; connects nothing yet.  The caller owns *out. */
keel_error *keel_pool_new(const keel_pool_config *cfg, keel_pool **out);
/* Closes every idle connection and frees the pool (none may be checked out). */
void keel_pool_free(keel_pool *pool);

/* Takes a connection, connecting a new one when none is idle and the pool is
 * below its size, else waiting up to the checkout timeout (then unavailable,
 * 503).  A connection that cannot be made is unavailable naming the database
 * (never the password). */
keel_error *keel_pool_get(keel_pool *pool, keel_pconn **out);
/* Returns a connection; broken=true (or a connection libpq reports as bad, or
 * one left inside a transaction) is closed instead of kept. */
void keel_pool_put(keel_pool *pool, keel_pconn *conn, bool broken);

PGconn *keel_pconn_pg(keel_pconn *conn);

/* What the metrics page shows of a pool, counted across the blocking pool
 * and the I/O threads' pipelined connections. */
typedef struct keel_pool_stats {
    uint64_t open;            /* connections that exist */
    uint64_t busy;            /* checked out, held alone, or with statements in flight */
    uint64_t waiting;         /* requests waiting for a connection */
    uint64_t checkouts;       /* connections obtained (keel_pool_get, keel__pipe_reserve) */
    uint64_t checkout_ns;     /* the time those took, in total */
    uint64_t statements_ok, statements_failed;
} keel_pool_stats;
void keel_pool_stats_read(const keel_pool *pool, keel_pool_stats *out);
/* Bookkeeping for pipeline.c and sqldb.c (relaxed atomics). */
void keel_pool_note_busy(keel_pool *pool, int delta);
void keel_pool_note_waiting(keel_pool *pool, int delta);
void keel_pool_note_checkout(keel_pool *pool, uint64_t ns);
void keel_pool_note_statement(keel_pool *pool, bool ok);

/* For connections an I/O thread owns (pipeline.c): starts a non-blocking
 * connect with the pool's settings (drive it with PQconnectPoll; hostaddr,
 * when not NULL, is the address of the pool's host), closes one,
 * and the pool's name, size and checkout timeout.  These connections are not
 * counted in the pool: each thread keeps its own within its share. */
keel_error *keel_pconn_start(keel_pool *pool, const char *hostaddr, keel_pconn **out);
/* The pool's host when it is a name to look up (not an address, a Unix
 * socket, a list or given a hostaddr), else NULL.  libpq would look it up
 * inside PQconnectStart, blocking its thread: an I/O thread resolves it on a
 * worker first and passes the address as hostaddr. */
const char *keel_pool_host_to_resolve(const keel_pool *pool);
void keel_pconn_close(keel_pconn *conn);
/* Asks the server to stop what pg is running (a blocking round trip on a
 * connection of its own); true when the request was delivered.  What was
 * already sent still arrives: read it to the end. */
bool keel__pg_cancel(PGconn *pg);
const char *keel_pool_name(const keel_pool *pool);
unsigned keel_pool_max(const keel_pool *pool);
unsigned keel_pool_checkout_ms(const keel_pool *pool);

/* For pipelined use: the name of sql's prepared statement on conn without
 * preparing it; *prepare is true when the caller must send the Prepare first
 * (the name is then taken as prepared).  keel_pconn_stmt_failed forgets that
 * sql is prepared after its Prepare failed. */
const char *keel_pconn_stmt(keel_pconn *conn, const char *sql, bool *prepare);
void keel_pconn_stmt_failed(keel_pconn *conn, const char *sql);

/* The name of the prepared statement for sql on conn, preparing it on first
 * use (statements are prepared once per connection and reused). */
keel_error *keel_pconn_prepare(keel_pconn *conn, const char *sql, int nparams, const char **stmt_name);


#endif

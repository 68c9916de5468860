/* replica.h - private: a managed database's read replicas (replica.c).
 * Not installed. */
#ifndef KEEL_REPLICA_H
#define KEEL_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

#include "keel/error.h"
#include "sql/infra.h"
#include "sql/pool.h"

typedef struct keel_replica_set keel_replica_set;

/* A pool per replica the infra config lists for logical, and a thread that
 * asks each one every check_ms whether it answers and how far it lags.
 * *out is NULL when there are none.  Connects nothing before the thread's
 * first round: a replica that is down at start-up is only left out. */
keel_error *keel__replicas_open(const keel_infra *infra, const char *logical, unsigned check_ms,
                                keel_replica_set **out);
/* Stops the thread and frees the pools (no connection may be checked out).
 * NULL is allowed. */
void keel__replicas_free(keel_replica_set *set);

/* The pool of the next healthy replica, round-robin; NULL when none is
 * healthy (the read goes to the primary).  Lock-free. */
keel_pool *keel__replica_pick(keel_replica_set *set);

/* A read on pool (one of set's) found no connection: the replica is left
 * out until the thread finds it answering again. */
void keel__replica_failed(keel_replica_set *set, keel_pool *pool);

/* For the metrics page: how many replicas, and for replica i its label
 * ("host:port"), whether it is healthy, and its replay lag in seconds (0
 * when it has replayed everything it received; negative: not known). */
size_t keel__replicas_count(const keel_replica_set *set);
void keel__replica_info(const keel_replica_set *set, size_t i, const char **label, bool *healthy, double *lag_s);
keel_pool *keel__replica_pool(const keel_replica_set *set, size_t i);

#endif

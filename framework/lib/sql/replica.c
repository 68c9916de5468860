/* replica.c - read replicas of a managed database.  Reads that may be a
 * little stale (keel_db_query_ro, keel_db_query_row_ro) go to the replicas
 * round-robin; writes and everything inside a transaction go to the
 * primary, and so does a read when no replica is healthy.
 *
 * A replica is healthy while it answers: one thread per database asks each
 * replica every check interval (its own connection, not the pool's) and
 * measures how far its replay lags behind; a read that finds no connection
 * takes the replica out at once, and the thread puts it back when it
 * answers again.  The caller retries such a read on the primary, so a
 * replica that stops costs no failed request. */
#include "sql/replica.h"
#include "clock.h"
#include "keel/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Caught up (it replayed all it received): lag 0; else the age of the last
 * transaction it replayed.  A promoted replica is no longer in recovery. */
#define LAG_SQL                                                                                         \
    "SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() " \
    "THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), -1) END::float8"

typedef struct replica {
    char label[160];
    keel_db_settings settings; /* for the checker's own connection */
    keel_pool *pool;
    PGconn *probe;             /* the checker's; only its thread touches it */
    atomic_bool healthy;
    _Atomic double lag_s;
} replica;

struct keel_replica_set {
    char *name;
    replica *r;
    size_t n;
    atomic_size_t next;
    unsigned check_ms;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock; /* with wake: the thread's sleep, cut short to stop */
    pthread_cond_t wake;
    bool stop;
};

static void check_one(keel_replica_set *set, replica *r)
{
    if (r->probe && PQstatus(r->probe) != CONNECTION_OK) {
        PQfinish(r->probe);
        r->probe = NULL;
    }
    if (!r->probe) {
        r->probe = PQconnectdbParams(r->settings.conn.keywords, (const char *const *)r->settings.conn.values, 0);
        if (PQstatus(r->probe) != CONNECTION_OK) {
            PQfinish(r->probe);
            r->probe = NULL;
        }
    }
    PGresult *res = r->probe ? PQexec(r->probe, LAG_SQL) : NULL;
    bool ok = res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;
    if (ok)
        atomic_store(&r->lag_s, strtod(PQgetvalue(res, 0, 0), NULL));
    PQclear(res);
    bool was = atomic_exchange(&r->healthy, ok);
    if (was != ok)
        keel_log(ok ? KEEL_LOG_INFO : KEEL_LOG_WARN, "%s: replica %s %s", set->name, r->label,
                 ok ? "answers: reads go to it" : "does not answer: reads go elsewhere");
}

static void *checker(void *arg)
{
    keel_replica_set *set = arg;
    pthread_mutex_lock(&set->lock);
    while (!set->stop) {
        pthread_mutex_unlock(&set->lock);
        for (size_t i = 0; i < set->n; i++)
            check_one(set, &set->r[i]);
        pthread_mutex_lock(&set->lock);
        struct timespec until = keel__deadline_ms(CLOCK_REALTIME, set->check_ms);
        while (!set->stop && pthread_cond_timedwait(&set->wake, &set->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&set->lock);
    return NULL;
}

keel_error *keel__replicas_open(const keel_infra *infra, const char *logical, unsigned check_ms,
                                keel_replica_set **out)
{
    *out = NULL;
    size_t n = infra ? keel__infra_replicas(infra, logical) : 0;
    if (!n)
        return NULL;
    keel_replica_set *set = calloc(1, sizeof *set);
    if (!set || !(set->r = calloc(n, sizeof *set->r)) || !(set->name = strdup(logical))) {
        if (set)
            free(set->r);
        free(set);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    set->check_ms = check_ms ? check_ms : 1000;
    pthread_mutex_init(&set->lock, NULL);
    pthread_cond_init(&set->wake, NULL);
    keel_error *err = NULL;
    for (size_t i = 0; !err && i < n; i++) {
        replica *r = &set->r[i];
        err = keel__infra_replica_settings(infra, logical, i, &r->settings);
        if (err)
            break;
        set->n++;
        atomic_init(&r->healthy, false);
        atomic_init(&r->lag_s, -1.0);
        const char *host = keel__conn_param(&r->settings.conn, "host");
        const char *port = keel__conn_param(&r->settings.conn, "port");
        snprintf(r->label, sizeof r->label, "%s:%s", host ? host : "?", port ? port : "5432");
        char name[200];
        snprintf(name, sizeof name, "%s (replica %s)", logical, r->label);
        keel_pool_config cfg = {name, r->settings.conn.keywords, (const char *const *)r->settings.conn.values,
                                r->settings.pool.max_connections, r->settings.pool.checkout_timeout_ms,
                                r->settings.pool.statement_timeout_ms};
        err = keel_pool_new(&cfg, &r->pool);
        /* The checker's own connection (the pool copied its settings):
         * a replica that stops answering must not hold the thread for the
         * kernel's whole connect timeout. */
        if (!err && !keel__conn_param_set(&r->settings.conn, "connect_timeout", "2"))
            err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (!err && pthread_create(&set->thread, NULL, checker, set) != 0)
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "%s: cannot start the replicas' checker thread", logical);
    if (err) {
        keel__replicas_free(set);
        return err;
    }
    set->running = true;
    *out = set;
    return NULL;
}

void keel__replicas_free(keel_replica_set *set)
{
    if (!set)
        return;
    if (set->running) {
        pthread_mutex_lock(&set->lock);
        set->stop = true;
        pthread_cond_signal(&set->wake);
        pthread_mutex_unlock(&set->lock);
        pthread_join(set->thread, NULL);
    }
    for (size_t i = 0; i < set->n; i++) {
        replica *r = &set->r[i];
        if (r->probe)
            PQfinish(r->probe);
        keel_pool_free(r->pool);
        keel__db_settings_free(&r->settings);
    }
    pthread_mutex_destroy(&set->lock);
    pthread_cond_destroy(&set->wake);
    free(set->r);
    free(set->name);
    free(set);
}

keel_pool *keel__replica_pick(keel_replica_set *set)
{
    size_t start = atomic_fetch_add_explicit(&set->next, 1, memory_order_relaxed);
    for (size_t k = 0; k < set->n; k++) {
        replica *r = &set->r[(start + k) % set->n];
        if (atomic_load_explicit(&r->healthy, memory_order_relaxed))
            return r->pool;
    }
    return NULL;
}

void keel__replica_failed(keel_replica_set *set, keel_pool *pool)
{
    for (size_t i = 0; i < set->n; i++)
        if (set->r[i].pool == pool && atomic_exchange(&set->r[i].healthy, false))
            keel_log(KEEL_LOG_WARN, "%s: replica %s lost its connection: reads go elsewhere until it answers",
                     set->name, set->r[i].label);
}

size_t keel__replicas_count(const keel_replica_set *set)
{
    return set ? set->n : 0;
}

void keel__replica_info(const keel_replica_set *set, size_t i, const char **label, bool *healthy, double *lag_s)
{
    const replica *r = &set->r[i];
    *label = r->label;
    *healthy = atomic_load(&r->healthy);
    *lag_s = atomic_load(&r->lag_s);
}

keel_pool *keel__replica_pool(const keel_replica_set *set, size_t i)
{
    return set->r[i].pool;
}

/* pool.c - see pool.h.  One mutex and one condition variable per pool guard an
 * idle list and a count of open connections; connecting happens outside the
 * lock.  Each connection carries its cache of prepared statements: an
 * open-addressing hash table keyed by the SQL text. */
#include "sql/pool.h"
#include "clock.h"
#include "wipe.h"

#include <errno.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define POOL_DEFAULT_MAX 20u
#define POOL_DEFAULT_CHECKOUT_MS 5000u
/* Beyond this many distinct statements on one connection, further ones use the
 * unnamed statement (parsed on every call) so the cache stays bounded. */
#define STMT_CACHE_MAX 1024u

typedef struct stmt {
    char *sql;
    uint64_t hash;
    bool prepared;      /* false after a pipelined Prepare failed */
    char name[24];
} stmt;

struct keel_pconn {
    PGconn *pg;
    struct timespec idle_since; /* when it was last given back */
    keel_pool *pool;
    keel_pconn *next;   /* idle list link */
    bool counted;       /* in the pool's st_open */
    stmt **slots;       /* open addressing, linear probing; NULL: empty */
    size_t nslots;      /* a power of two (0 before the first statement) */
    size_t nstmts;
    unsigned next_id;
};

struct keel_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *name;
    const char **keywords;  /* NULL-terminated, for PQconnectdbParams */
    char **values;          /* owned copies (scrubbed when freed) */
    size_t nparams;
    unsigned max_conns;
    unsigned checkout_ms;
    keel_pconn *idle;
    unsigned open;          /* connections that exist or are being made */
    /* For the metrics page (keel_pool_stats); every connection, pooled or
     * pipelined, is counted. */
    atomic_uint_fast64_t st_open, st_busy, st_waiting, st_checkouts, st_checkout_ns, st_ok, st_failed;
};

/* ---- pool ------------------------------------------------------------------ */

static void pool_destroy_params(keel_pool *p)
{
    for (size_t i = 0; i < p->nparams; i++) {
        if (p->values)
            keel__free_secret(p->values[i]);
        if (p->keywords)
            free((char *)p->keywords[i]);
    }
    free(p->values);
    free(p->keywords);
    p->values = NULL;
    p->keywords = NULL;
}

/* Appends keyword=value (both copied). */
static bool param_add(keel_pool *p, const char *kw, const char *val)
{
    char *k = strdup(kw);
    char *v = k ? strdup(val) : NULL;
    if (!v) {
        free(k);
        return false;
    }
    p->keywords[p->nparams] = k;
    p->values[p->nparams] = v;
    p->nparams++;
    return true;
}

/* Builds the keyword arrays: the given settings, then options with the
 * session settings Keel relies on (UTC, ISO dates, exact floats, the
 * statement timeout), UTF-8, an application name and a connect timeout
 * unless the settings give them. */
static keel_error *pool_build_params(keel_pool *p, const keel_pool_config *cfg)
{
    size_t n = 0;
    while (cfg->keywords[n])
        n++;
    /* A misspelt setting is refused now, naming it (never its value), not
     * at every connect. */
    PQconninfoOption *known = PQconndefaults();
    for (size_t i = 0; known && i < n; i++) {
        bool found = false;
        for (PQconninfoOption *o = known; o->keyword && !found; o++)
            found = !strcmp(o->keyword, cfg->keywords[i]);
        if (!found) {
            keel_error *err = keel_error_new(KEEL_INVALID_ARGUMENT,
                                             "database \"%s\": unknown connection setting \"%.64s\"", cfg->name,
                                             cfg->keywords[i]);
            PQconninfoFree(known);
            return err;
        }
    }
    PQconninfoFree(known);
    p->keywords = calloc(n + 6, sizeof *p->keywords);
    p->values = calloc(n + 6, sizeof *p->values);
    bool ok = p->keywords && p->values;
    const char *user_options = NULL;
    bool has_app = false, has_timeout = false, has_encoding = false;
    for (size_t i = 0; ok && i < n; i++) {
        const char *kw = cfg->keywords[i], *val = cfg->values[i];
        if (!val)
            continue;
        if (!strcmp(kw, "options")) {
            user_options = val;
            continue;
        }
        has_app |= !strcmp(kw, "application_name");
        has_timeout |= !strcmp(kw, "connect_timeout");
        has_encoding |= !strcmp(kw, "client_encoding");
        ok = param_add(p, kw, val);
    }
    char timeout[64] = "";
    if (cfg->statement_timeout_ms)
        snprintf(timeout, sizeof timeout, " -c statement_timeout=%u", cfg->statement_timeout_ms);
    static const char session[] = "-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3";
    size_t olen = (user_options ? strlen(user_options) + 1 : 0) + sizeof session + strlen(timeout);
    char *options = ok ? malloc(olen) : NULL;
    if (options) {
        snprintf(options, olen, "%s%s%s%s", user_options ? user_options : "", user_options ? " " : "", session,
                 timeout);
        ok = param_add(p, "options", options);
        free(options);
    } else {
        ok = false;
    }
    if (ok && !has_app)
        ok = param_add(p, "application_name", "keel");
    if (ok && !has_encoding)
        ok = param_add(p, "client_encoding", "UTF8");
    if (ok && !has_timeout) {
        char secs[16];
        unsigned s = (p->checkout_ms + 999) / 1000;
        snprintf(secs, sizeof secs, "%u", s < 2 ? 2 : s);
        ok = param_add(p, "connect_timeout", secs);
    }
    if (!ok) {
        pool_destroy_params(p);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    return NULL;
}

keel_error *keel_pool_new(const keel_pool_config *cfg, keel_pool **out)
{
    *out = NULL;
    if (!cfg || !cfg->name || !cfg->keywords || !cfg->values)
        return keel_error_new(KEEL_INTERNAL, "keel_pool_new: a name and connection settings are required");
    keel_pool *p = calloc(1, sizeof *p);
    if (!p)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    p->max_conns = cfg->max_conns ? cfg->max_conns : POOL_DEFAULT_MAX;
    p->checkout_ms = cfg->checkout_timeout_ms ? cfg->checkout_timeout_ms : POOL_DEFAULT_CHECKOUT_MS;
    p->name = strdup(cfg->name);
    if (!p->name) {
        free(p);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    keel_error *err = pool_build_params(p, cfg);
    if (err) {
        free(p->name);
        free(p);
        return err;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return NULL;
}

static void pconn_close(keel_pconn *c)
{
    if (!c)
        return;
    if (c->counted)
        atomic_fetch_sub_explicit(&c->pool->st_open, 1, memory_order_relaxed);
    PQfinish(c->pg);
    for (size_t i = 0; i < c->nslots; i++)
        if (c->slots[i]) {
            free(c->slots[i]->sql);
            free(c->slots[i]);
        }
    free(c->slots);
    free(c);
}

void keel_pool_free(keel_pool *pool)
{
    if (!pool)
        return;
    keel_pconn *c = pool->idle;
    while (c) {
        keel_pconn *next = c->next;
        pconn_close(c);
        c = next;
    }
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    pool_destroy_params(pool);
    free(pool->name);
    free(pool);
}

/* Notices (NOTICE, WARNING, an idle connection's FATAL at shutdown) would go
 * to stderr by default: the caller sees errors as results instead. */
static void notice_quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Opens a connection with the pool's settings: connected when wait, else
 * started for PQconnectPoll.  The error names the database, never the
 * password. */
static keel_error *pconn_open(keel_pool *pool, bool wait, const char *hostaddr, keel_pconn **out)
{
    keel_pconn *c = calloc(1, sizeof *c);
    if (!c)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    c->pool = pool;
    const char *const *keywords = pool->keywords, *const *values = (const char *const *)pool->values;
    /* With an address resolved elsewhere: the settings plus hostaddr (host
     * still names the server for TLS and the password file). */
    const char *kw_at[64], *val_at[64];
    if (hostaddr && pool->nparams + 2 <= sizeof kw_at / sizeof *kw_at) {
        for (size_t i = 0; i < pool->nparams; i++) {
            kw_at[i] = pool->keywords[i];
            val_at[i] = pool->values[i];
        }
        kw_at[pool->nparams] = "hostaddr";
        val_at[pool->nparams] = hostaddr;
        kw_at[pool->nparams + 1] = val_at[pool->nparams + 1] = NULL;
        keywords = kw_at;
        values = val_at;
    }
    c->pg = wait ? PQconnectdbParams(keywords, values, 0) : PQconnectStartParams(keywords, values, 0);
    ConnStatusType st = c->pg ? PQstatus(c->pg) : CONNECTION_BAD;
    if (wait ? st != CONNECTION_OK : st == CONNECTION_BAD) {
        keel_error *err = keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", pool->name);
        if (c->pg)
            keel__pg_cause(err, c->pg, NULL);
        else
            keel_error_cause(err, "out of memory");
        pconn_close(c);
        return err;
    }
    PQsetNoticeProcessor(c->pg, notice_quiet, NULL);
    c->counted = true;
    atomic_fetch_add_explicit(&pool->st_open, 1, memory_order_relaxed);
    *out = c;
    return NULL;
}

static keel_error *pconn_connect(keel_pool *pool, keel_pconn **out)
{
    return pconn_open(pool, true, NULL, out);
}

/* A cheap check of an idle connection: anything readable on its socket while
 * it is idle is the server saying goodbye (a restart closes every session). */
static bool pconn_alive(keel_pconn *c)
{
    if (PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return false;
    /* A connection given back within the last 100 ms is busy traffic: skip
     * the system call.  If the server went away meanwhile, the statement
     * fails on a bad connection and is retried once on a fresh one. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long idle_ms = (long long)(now.tv_sec - c->idle_since.tv_sec) * 1000 +
                        (now.tv_nsec - c->idle_since.tv_nsec) / 1000000;
    if (idle_ms < 100)
        return true;
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = POLLIN};
    if (pfd.fd < 0)
        return false;
    int n;
    do
        n = poll(&pfd, 1, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return true; /* nothing pending; a failure is left for the statement to find */
    if (!PQconsumeInput(c->pg) || PQstatus(c->pg) != CONNECTION_OK)
        return false;
    PGnotify *nf;
    while ((nf = PQnotifies(c->pg)) != NULL)
        PQfreemem(nf);
    return true;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static keel_error *pool_get(keel_pool *pool, keel_pconn **out);

keel_error *keel_pool_get(keel_pool *pool, keel_pconn **out)
{
    uint64_t t0 = mono_ns();
    keel_error *err = pool_get(pool, out);
    if (!err) {
        keel_pool_note_checkout(pool, mono_ns() - t0);
        keel_pool_note_busy(pool, 1);
    }
    return err;
}

static keel_error *pool_get(keel_pool *pool, keel_pconn **out)
{
    *out = NULL;
    struct timespec deadline = keel__deadline_ms(CLOCK_MONOTONIC, pool->checkout_ms);
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->idle) {
            keel_pconn *c = pool->idle;
            pool->idle = c->next;
            c->next = NULL;
            pthread_mutex_unlock(&pool->mu);
            if (pconn_alive(c)) {
                *out = c;
                return NULL;
            }
            pconn_close(c);
            pthread_mutex_lock(&pool->mu);
            pool->open--;
        }
        if (pool->open < pool->max_conns) {
            pool->open++;
            pthread_mutex_unlock(&pool->mu);
            keel_error *err = pconn_connect(pool, out);
            if (err) {
                pthread_mutex_lock(&pool->mu);
                pool->open--;
                pthread_cond_signal(&pool->cv);
                pthread_mutex_unlock(&pool->mu);
            }
            return err;
        }
        keel_pool_note_waiting(pool, 1);
        int rc = pthread_cond_timedwait(&pool->cv, &pool->mu, &deadline);
        keel_pool_note_waiting(pool, -1);
        if (rc == ETIMEDOUT && !pool->idle && pool->open >= pool->max_conns) {
            pthread_mutex_unlock(&pool->mu);
            return keel_error_new(KEEL_UNAVAILABLE, "database \"%s\": no connection available within %u ms",
                                  pool->name, pool->checkout_ms);
        }
    }
}

void keel_pool_put(keel_pool *pool, keel_pconn *conn, bool broken)
{
    if (!conn)
        return;
    keel_pool_note_busy(pool, -1);
    bool lost = PQstatus(conn->pg) != CONNECTION_OK;
    if (broken || lost || PQtransactionStatus(conn->pg) != PQTRANS_IDLE) {
        pconn_close(conn);
        pthread_mutex_lock(&pool->mu);
        pool->open--;
        pthread_cond_signal(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &conn->idle_since);
    pthread_mutex_lock(&pool->mu);
    conn->next = pool->idle;
    pool->idle = conn;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
}

PGconn *keel_pconn_pg(keel_pconn *conn)
{
    return conn->pg;
}

keel_error *keel_pconn_start(keel_pool *pool, const char *hostaddr, keel_pconn **out)
{
    *out = NULL;
    return pconn_open(pool, false, hostaddr, out);
}

const char *keel_pool_host_to_resolve(const keel_pool *pool)
{
    const char *host = NULL;
    for (size_t i = 0; i < pool->nparams; i++) {
        if (!strcmp(pool->keywords[i], "hostaddr"))
            return NULL; /* the settings give the address */
        if (!strcmp(pool->keywords[i], "host"))
            host = pool->values[i];
    }
    if (!host || !*host || host[0] == '/' || host[0] == '@' || strchr(host, ','))
        return NULL; /* a Unix socket, or a list libpq walks itself */
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        return NULL;
    return host;
}

bool keel__pg_cancel(PGconn *pg)
{
    if (PQstatus(pg) != CONNECTION_OK)
        return false;
    PGcancel *cn = PQgetCancel(pg);
    char why[256];
    bool sent = cn && PQcancel(cn, why, sizeof why);
    PQfreeCancel(cn);
    return sent;
}

void keel_pconn_close(keel_pconn *conn)
{
    pconn_close(conn);
}

void keel_pool_stats_read(const keel_pool *pool, keel_pool_stats *out)
{
    keel_pool *p = (keel_pool *)pool; /* atomics are read through a non-const pointer */
    out->open = atomic_load_explicit(&p->st_open, memory_order_relaxed);
    out->busy = atomic_load_explicit(&p->st_busy, memory_order_relaxed);
    out->waiting = atomic_load_explicit(&p->st_waiting, memory_order_relaxed);
    out->checkouts = atomic_load_explicit(&p->st_checkouts, memory_order_relaxed);
    out->checkout_ns = atomic_load_explicit(&p->st_checkout_ns, memory_order_relaxed);
    out->statements_ok = atomic_load_explicit(&p->st_ok, memory_order_relaxed);
    out->statements_failed = atomic_load_explicit(&p->st_failed, memory_order_relaxed);
    if (out->busy > out->open) /* read at different moments */
        out->busy = out->open;
}

void keel_pool_note_busy(keel_pool *pool, int delta)
{
    atomic_fetch_add_explicit(&pool->st_busy, (uint_fast64_t)(int_fast64_t)delta, memory_order_relaxed);
}

void keel_pool_note_waiting(keel_pool *pool, int delta)
{
    atomic_fetch_add_explicit(&pool->st_waiting, (uint_fast64_t)(int_fast64_t)delta, memory_order_relaxed);
}

void keel_pool_note_checkout(keel_pool *pool, uint64_t ns)
{
    atomic_fetch_add_explicit(&pool->st_checkouts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->st_checkout_ns, ns, memory_order_relaxed);
}

void keel_pool_note_statement(keel_pool *pool, bool ok)
{
    atomic_fetch_add_explicit(ok ? &pool->st_ok : &pool->st_failed, 1, memory_order_relaxed);
}

const char *keel_pool_name(const keel_pool *pool)
{
    return pool->name;
}

unsigned keel_pool_max(const keel_pool *pool)
{
    return pool->max_conns;
}

unsigned keel_pool_checkout_ms(const keel_pool *pool)
{
    return pool->checkout_ms;
}

/* ---- prepared statements ---------------------------------------------------- */

static uint64_t sql_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static stmt *stmt_find(const keel_pconn *c, const char *sql, uint64_t h)
{
    if (!c->nslots)
        return NULL;
    for (size_t i = (size_t)h & (c->nslots - 1);; i = (i + 1) & (c->nslots - 1)) {
        stmt *s = c->slots[i];
        if (!s)
            return NULL;
        if (s->hash == h && strcmp(s->sql, sql) == 0)
            return s;
    }
}

static void slot_insert(stmt **slots, size_t nslots, stmt *s)
{
    size_t i = (size_t)s->hash & (nslots - 1);
    while (slots[i])
        i = (i + 1) & (nslots - 1);
    slots[i] = s;
}

/* Keeps the table at most half full; false on exhaustion. */
static bool stmt_reserve(keel_pconn *c)
{
    if ((c->nstmts + 1) * 2 <= c->nslots)
        return true;
    size_t n = c->nslots ? c->nslots * 2 : 16;
    stmt **slots = calloc(n, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < c->nslots; i++)
        if (c->slots[i])
            slot_insert(slots, n, c->slots[i]);
    free(c->slots);
    c->slots = slots;
    c->nslots = n;
    return true;
}

/* The cache entry for sql, made (not yet prepared) when absent; NULL when
 * the cache is full or memory is short (the unnamed statement is used). */
static stmt *stmt_entry(keel_pconn *conn, const char *sql)
{
    uint64_t h = sql_hash(sql);
    stmt *s = stmt_find(conn, sql, h);
    if (s || conn->nstmts >= STMT_CACHE_MAX || !stmt_reserve(conn))
        return s;
    s = calloc(1, sizeof *s);
    if (s && !(s->sql = strdup(sql))) {
        free(s);
        return NULL;
    }
    if (!s)
        return NULL;
    s->hash = h;
    snprintf(s->name, sizeof s->name, "keel_s%u", ++conn->next_id);
    slot_insert(conn->slots, conn->nslots, s);
    conn->nstmts++;
    return s;
}

keel_error *keel_pconn_prepare(keel_pconn *conn, const char *sql, int nparams, const char **stmt_name)
{
    stmt *s = stmt_entry(conn, sql);
    if (s && s->prepared) {
        *stmt_name = s->name;
        return NULL;
    }
    const char *name = s ? s->name : "";
    PGresult *r = PQprepare(conn->pg, name, sql, nparams, NULL);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        keel_error *err = keel__pg_error(conn->pg, r, conn->pool->name);
        PQclear(r);
        return err;
    }
    PQclear(r);
    if (s)
        s->prepared = true;
    *stmt_name = name;
    return NULL;
}

const char *keel_pconn_stmt(keel_pconn *conn, const char *sql, bool *prepare)
{
    stmt *s = stmt_entry(conn, sql);
    *prepare = !s || !s->prepared;
    if (!s)
        return "";
    s->prepared = true;
    return s->name;
}

void keel_pconn_stmt_failed(keel_pconn *conn, const char *sql)
{
    stmt *s = stmt_find(conn, sql, sql_hash(sql));
    if (s)
        s->prepared = false;
}

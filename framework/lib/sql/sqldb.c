/* sqldb.c - queries, row streams, transactions and typed getters on the pools
 * of pool.c.
 *
 * Per request, a db_state (in the request's arena, registered with
 * keel_arena_alloc_shared) records for each database the request touched its
 * pinned transaction connection, plus the open row streams and the results
 * that keel_db_query_row handed out: the arena disposes of all of it
 * (state_dispose) when the request's work ends.
 *
 * Two ways to the server, one API: on a request's coroutine (its I/O thread)
 * statements go through pipeline.c without blocking: single statements
 * pipelined on the thread's shared connections, transactions and row streams
 * on a connection reserved until they end.  Elsewhere (KEEL_BLOCKING
 * handlers on workers, detached requests) they block on the pools of pool.c.
 *
 * Parameters are sent with PQexecPrepared / PQsendQueryPrepared as text
 * (int64, double, bool, JSON) or binary (bytea); results come back as text.
 * Outside a transaction, a statement that fails because its connection died
 * (PostgreSQL restarted while the connection sat idle) is retried once on
 * another connection (pool.c already drops idle connections that the server
 * closed, so this is the rare race; a statement whose connection died after
 * the server ran it could then run twice).  Inside a transaction nothing is
 * retried: the statement fails unavailable and the transaction is over.
 *
 * "no rows": keel_db_query_row's empty result is KEEL_NOT_FOUND "no rows"
 * with the detail KEEL_DETAIL_NO_ROWS, which keel_db_no_rows compares. */
#include "core.h"
#include "sql/pool.h"
#include "sql/replica.h"
#include "sql/pipeline.h"
#include "observe/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NO_ROWS_MESSAGE "no rows"
#define TX_ABORTED_MESSAGE "transaction was rolled back after an error"

typedef struct kept_result {
    struct kept_result *next;
    PGresult *res;
} kept_result;

typedef struct db_entry {
    struct db_entry *next;
    keel_sqldb *db;        /* the declaring (resolved) database */
    keel_pconn *tx;        /* pinned while a transaction is open (off the I/O threads) */
    keel_pipe_conn *atx;   /* the same on the request's I/O thread (pipeline.c) */
    bool tx_failed;        /* a statement failed: the transaction was rolled back */
    keel_rows *tx_stream;  /* a row stream open on tx */
    keel_span *tx_span;    /* the open transaction's span, when traced */
} db_entry;

struct keel_row {
    const PGresult *res;
    int idx;
    keel_req *req;
    keel_rows *stream;     /* NULL for keel_db_query_row's rows */
};

struct keel_rows {
    keel_rows *next_open;  /* the request's list of open streams */
    keel_req *req;
    struct db_state *state; /* the request's, which lists this stream */
    db_entry *entry;
    keel_pconn *conn;      /* off the I/O threads */
    keel_pool *pool;       /* conn's: the primary's or a replica's */
    keel_pipe_conn *aconn; /* on the request's I/O thread */
    bool in_tx;            /* conn is the transaction's: never returned by the stream */
    bool done;
    PGresult *pending;     /* the first result, read by keel_db_query */
    PGresult *cur;
    keel_row row;
};

typedef struct db_state {
    keel_req *req;
    db_entry *dbs;
    keel_rows *open;
    kept_result *kept;
} db_state;

static keel_error *oom(void)
{
    return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
}

/* ---- request state ------------------------------------------------------------ */

/* True on the request's coroutine on its I/O thread: statements go out
 * without blocking from here (pipeline.c); elsewhere (a KEEL_BLOCKING
 * handler on a worker, a detached request) they block on the shared pool. */
static bool on_loop(const keel_req *req)
{
    return req && req->coro;
}

static bool in_tx(const db_entry *e)
{
    return e->tx || e->atx;
}

static void state_dispose(void *p);

/* The request's database state; NULL when it has touched no database. */
static db_state *state_of(keel_req *req)
{
    return keel_arena_find_shared(&req->arena, state_dispose);
}

static const keel_pipe_params no_params = {0, NULL, NULL, NULL};

static keel_error *entry_for(keel_req *req, keel_sqldb *db, db_entry **out)
{
    *out = NULL;
    if (!req || !db)
        return keel_error_new(KEEL_INTERNAL, "sqldb: a request and a database are required");
    keel_sqldb *target = db->resolved ? db->resolved : db;
    if (!target->pool)
        return keel_error_new(KEEL_INTERNAL,
                              "sqldb: database \"%s\" is not open (is it listed in its service's .databases?)",
                              target->name ? target->name : "?");
    db_state *st = state_of(req);
    if (!st) {
        st = keel_arena_alloc_shared(&req->arena, sizeof *st, state_dispose);
        if (!st)
            return oom();
        st->req = req;
    }
    for (db_entry *e = st->dbs; e; e = e->next)
        if (e->db == target) {
            *out = e;
            return NULL;
        }
    db_entry *e = keel_arena_calloc(&req->arena, 1, sizeof *e);
    if (!e)
        return oom();
    e->db = target;
    e->next = st->dbs;
    st->dbs = e;
    *out = e;
    return NULL;
}

/* The usual checks before a statement: the transaction is usable and its
 * connection is not busy with a stream. */
static keel_error *entry_usable(const db_entry *e)
{
    if (in_tx(e) && e->tx_failed)
        return keel_error_new(KEEL_ABORTED, TX_ABORTED_MESSAGE);
    if (in_tx(e) && e->tx_stream)
        return keel_error_new(KEEL_INTERNAL,
                              "sqldb: a row stream is still open in the transaction on database \"%s\"; "
                              "close it first",
                              e->db->name);
    return NULL;
}

static void rows_unlink(keel_rows *rows)
{
    db_state *st = rows->state;
    for (keel_rows **p = &st->open; *p; p = &(*p)->next_open)
        if (*p == rows) {
            *p = rows->next_open;
            break;
        }
    rows->next_open = NULL;
}

/* Runs BEGIN, COMMIT or ROLLBACK on the transaction's connection. */
static keel_error *tx_command(keel_req *req, db_entry *e, const char *sql, PGresult **out)
{
    *out = NULL;
    if (e->atx) {
        bool lost;
        return keel__pipe_run_on(req, e->atx, sql, &no_params, out, &lost);
    }
    PGconn *pg = keel_pconn_pg(e->tx);
    PGresult *r = PQexec(pg, sql);
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
        *out = r;
        return NULL;
    }
    keel_error *err = keel__pg_error(pg, r, e->db->name);
    PQclear(r);
    return err;
}

/* Rolls the transaction back at once after a failed statement.  Off its
 * coroutine (the request is being freed) an I/O thread's transaction is left
 * to tx_end, which closes its connection: the server rolls it back. */
static void tx_fail(keel_req *req, db_entry *e)
{
    bool roll = e->atx ? on_loop(req)
                       : PQstatus(keel_pconn_pg(e->tx)) == CONNECTION_OK &&
                             PQtransactionStatus(keel_pconn_pg(e->tx)) != PQTRANS_IDLE;
    if (roll) {
        PGresult *r;
        keel_error_free(tx_command(req, e, "ROLLBACK", &r));
        PQclear(r);
    }
    e->tx_failed = true;
}

/* Returns the transaction's connection (closed if still inside the
 * transaction) and forgets the transaction. */
static void tx_end(db_entry *e, const char *outcome)
{
    if (e->tx_span) {
        keel__span_attr_str(e->tx_span, "keel.db.transaction", outcome);
        keel__span_end(NULL, e->tx_span, NULL);
        e->tx_span = NULL;
    }
    if (e->atx)
        keel__pipe_release(e->atx, false);
    else
        keel_pool_put(e->db->pool, e->tx, false);
    e->tx = NULL;
    e->atx = NULL;
    e->tx_failed = false;
    e->tx_stream = NULL;
}

/* ---- parameters ------------------------------------------------------------------ */

typedef struct params {
    int n;
    const char **values;
    int *lengths;
    int *formats;
    char *text;     /* n slots of 32 bytes for numbers */
    char **json;    /* json_dumps results, freed afterwards */
} params;

static void params_free(params *p)
{
    if (p->json)
        for (int i = 0; i < p->n; i++)
            free(p->json[i]);
    free(p->values);
    free(p->lengths);
    free(p->formats);
    free(p->text);
    free(p->json);
    memset(p, 0, sizeof *p);
}

static keel_error *params_build(const keel_arg *args, size_t nargs, params *p)
{
    memset(p, 0, sizeof *p);
    if (nargs == 0)
        return NULL;
    if (nargs > 65535)
        return keel_error_new(KEEL_INTERNAL, "sqldb: too many parameters (%zu)", nargs);
    p->n = (int)nargs;
    p->values = calloc(nargs, sizeof *p->values);
    p->lengths = calloc(nargs, sizeof *p->lengths);
    p->formats = calloc(nargs, sizeof *p->formats);
    p->text = calloc(nargs, 32);
    p->json = calloc(nargs, sizeof *p->json);
    if (!p->values || !p->lengths || !p->formats || !p->text || !p->json) {
        params_free(p);
        return oom();
    }
    for (size_t i = 0; i < nargs; i++) {
        const keel_arg *a = &args[i];
        char *num = p->text + i * 32;
        switch (a->type) {
        case KEEL_ARG_T_NULL:
            break;
        case KEEL_ARG_T_TEXT:
            p->values[i] = a->ptr;
            break;
        case KEEL_ARG_T_INT64:
            snprintf(num, 32, "%" PRId64, a->i);
            p->values[i] = num;
            break;
        case KEEL_ARG_T_DOUBLE:
            if (isnan(a->d))
                strcpy(num, "NaN");
            else if (isinf(a->d))
                strcpy(num, a->d > 0 ? "Infinity" : "-Infinity");
            else
                snprintf(num, 32, "%.17g", a->d);
            p->values[i] = num;
            break;
        case KEEL_ARG_T_BOOL:
            p->values[i] = a->i ? "t" : "f";
            break;
        case KEEL_ARG_T_BYTEA:
            if (a->len > INT_MAX) {
                params_free(p);
                return keel_error_new(KEEL_INVALID_ARGUMENT, "sqldb: parameter $%zu is too large", i + 1);
            }
            p->values[i] = a->ptr ? a->ptr : "";
            p->lengths[i] = (int)a->len;
            p->formats[i] = 1;
            break;
        case KEEL_ARG_T_JSON:
            if (!a->ptr)
                break;
            p->json[i] = json_dumps(a->ptr, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!p->json[i]) {
                params_free(p);
                return keel_error_new(KEEL_INVALID_ARGUMENT, "sqldb: parameter $%zu is not encodable JSON", i + 1);
            }
            p->values[i] = p->json[i];
            break;
        default:
            params_free(p);
            return keel_error_new(KEEL_INTERNAL, "sqldb: parameter $%zu has an unknown type", i + 1);
        }
    }
    return NULL;
}

/* ---- running statements --------------------------------------------------------------- */

/* Reads and discards what is left of the current command's results; true if
 * one of them was an error. */
static bool drain(PGconn *pg)
{
    bool failed = false;
    PGresult *r;
    while ((r = PQgetResult(pg)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE)
            failed = true;
        else if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH) {
            PQclear(r);
            break; /* the connection is unusable: the pool will close it */
        }
        PQclear(r);
    }
    return failed;
}

/* Prepares (once per connection) and runs sql on c, waiting for the whole
 * result. */
static keel_error *statement_run(keel_pconn *c, const char *dbname, const char *sql, const params *p,
                                 PGresult **out)
{
    *out = NULL;
    const char *name;
    keel_error *err = keel_pconn_prepare(c, sql, p->n, &name);
    if (err)
        return err;
    PGconn *pg = keel_pconn_pg(c);
    PGresult *r = PQexecPrepared(pg, name, p->n, p->values, p->lengths, p->formats, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        *out = r;
        return NULL;
    }
    if (r && (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH)) {
        PQclear(r);
        return keel_error_new(KEEL_INTERNAL, "database \"%s\" error", dbname);
    }
    err = keel__pg_error(pg, r, dbname);
    PQclear(r);
    return err;
}

/* Sends sql in single-row mode and reads its first result. */
static keel_error *stream_start(keel_pconn *c, const char *dbname, const char *sql, const params *p,
                                PGresult **first)
{
    *first = NULL;
    const char *name;
    keel_error *err = keel_pconn_prepare(c, sql, p->n, &name);
    if (err)
        return err;
    PGconn *pg = keel_pconn_pg(c);
    if (!PQsendQueryPrepared(pg, name, p->n, p->values, p->lengths, p->formats, 0))
        return keel__pg_error(pg, NULL, dbname);
    PQsetSingleRowMode(pg); /* if refused, whole results are iterated all the same */
    PGresult *r = PQgetResult(pg);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_COMMAND_OK;
    if (!r || s == PGRES_SINGLE_TUPLE || s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK) {
        *first = r;
        return NULL;
    }
    if (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH)
        err = keel_error_new(KEEL_INTERNAL, "database \"%s\" error", dbname);
    else
        err = keel__pg_error(pg, r, dbname);
    PQclear(r);
    drain(pg);
    return err;
}

/* What the blocking path runs on a connection. */
typedef enum { OP_STATEMENT, OP_STREAM, OP_BEGIN } op_kind;

static keel_error *op_run(op_kind kind, keel_pconn *c, const char *dbname, const char *sql, const params *p,
                          PGresult **out)
{
    if (kind == OP_STATEMENT)
        return statement_run(c, dbname, sql, p, out);
    if (kind == OP_STREAM)
        return stream_start(c, dbname, sql, p, out);
    *out = NULL;
    PGconn *pg = keel_pconn_pg(c);
    PGresult *r = PQexec(pg, "BEGIN");
    keel_error *err = r && PQresultStatus(r) == PGRES_COMMAND_OK ? NULL : keel__pg_error(pg, r, dbname);
    PQclear(r);
    return err;
}

/* The blocking path's one way to run kind on e's connection: the
 * transaction's, else a pooled one.  A pooled connection goes back to the
 * pool after an error (closed when it is dead), and an error on one found
 * dead (the server closed it while it sat in the pool) is retried once on a
 * fresh connection; an error in a transaction fails the transaction.  On
 * success *conn is the connection used, still checked out unless it is the
 * transaction's (the caller puts it back or keeps it). */
static keel_error *run_pooled(keel_req *req, db_entry *e, keel_pool *pool, op_kind kind, const char *sql,
                              const params *p, PGresult **out, keel_pconn **conn)
{
    *conn = NULL;
    for (int attempt = 0;; attempt++) {
        keel_pconn *c = e->tx;
        keel_error *err;
        if (!c && (err = keel_pool_get(pool, &c)) != NULL)
            return err;
        err = op_run(kind, c, e->db->name, sql, p, out);
        if (!err) {
            *conn = c;
            return NULL;
        }
        if (e->tx) {
            tx_fail(req, e);
            return err;
        }
        bool lost = PQstatus(keel_pconn_pg(c)) == CONNECTION_BAD;
        keel_pool_put(pool, c, lost);
        if (!lost || attempt > 0)
            return err;
        keel_error_free(err);
    }
}

/* ---- spans ------------------------------------------------------------------------- */

static const char *const parameter_keys[] = {
    "db.query.parameter.0", "db.query.parameter.1", "db.query.parameter.2", "db.query.parameter.3",
    "db.query.parameter.4", "db.query.parameter.5", "db.query.parameter.6", "db.query.parameter.7",
    "db.query.parameter.8", "db.query.parameter.9", "db.query.parameter.10", "db.query.parameter.11",
    "db.query.parameter.12", "db.query.parameter.13", "db.query.parameter.14", "db.query.parameter.15"};

/* Parameter values go into spans only when the infra config asks for them
 * (tracing.sql_parameters): they may hold personal data. */
static void span_parameters(keel_span *s, const keel_arg *args, size_t nargs)
{
    for (size_t i = 0; i < nargs && i < sizeof parameter_keys / sizeof *parameter_keys; i++) {
        const keel_arg *a = &args[i];
        char num[64];
        const char *key = parameter_keys[i];
        switch (a->type) {
        case KEEL_ARG_T_TEXT:
            if (keel__secret_value(a->ptr, strlen(a->ptr)))
                keel__span_attr_str(s, key, "(secret)");
            else
                keel__span_attr_strn(s, key, a->ptr, strnlen(a->ptr, 256));
            break;
        case KEEL_ARG_T_INT64:
            keel__span_attr_int(s, key, a->i);
            break;
        case KEEL_ARG_T_DOUBLE:
            snprintf(num, sizeof num, "%.17g", a->d);
            keel__span_attr_str(s, key, num);
            break;
        case KEEL_ARG_T_BOOL:
            keel__span_attr_bool(s, key, a->i != 0);
            break;
        case KEEL_ARG_T_BYTEA:
            snprintf(num, sizeof num, "(%zu bytes)", a->len);
            keel__span_attr_str(s, key, num);
            break;
        case KEEL_ARG_T_JSON:
            keel__span_attr_str(s, key, "(json)");
            break;
        default:
            keel__span_attr_str(s, key, "NULL");
            break;
        }
    }
}

/* A statement's span: "SELECT todo", with the statement as written (its
 * parameters are $1..., never spliced in). */
static keel_span *statement_span(keel_req *req, const keel_sqldb *db, const char *sql, const keel_arg *args,
                                 size_t nargs)
{
    if (!req->trace || !sql)
        return NULL;
    const char *p = sql;
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '(')
        p++;
    size_t oplen = 0;
    while (oplen < 16 && ((p[oplen] >= 'A' && p[oplen] <= 'Z') || (p[oplen] >= 'a' && p[oplen] <= 'z')))
        oplen++;
    char op[17];
    for (size_t i = 0; i < oplen; i++)
        op[i] = (char)(p[i] >= 'a' ? p[i] - 32 : p[i]);
    op[oplen] = '\0';
    char name[96];
    snprintf(name, sizeof name, "%s %s", oplen ? op : "SQL", db->name);
    keel_span *s = keel__span_start(req, name, KEEL_SPAN_CLIENT);
    keel__span_attr_str(s, "db.system.name", "postgresql");
    keel__span_attr_str(s, "db.namespace", db->name);
    if (oplen)
        keel__span_attr_str(s, "db.operation.name", op);
    keel__span_attr_str(s, "db.query.text", sql);
    /* The auth handler's statements bind the caller's credentials. */
    if (s && keel__span_sql_parameters(req) && !req->in_auth)
        span_parameters(s, args, nargs);
    return s;
}

static void statement_span_end(keel_req *req, keel_span *s, PGresult *r, keel_error *err)
{
    if (!s)
        return;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK)
        keel__span_attr_int(s, "db.response.returned_rows", PQntuples(r));
    else if (r && *PQcmdTuples(r))
        keel__span_attr_int(s, "keel.db.affected_rows", strtoll(PQcmdTuples(r), NULL, 10));
    keel__span_end(req, s, err);
}

static keel_error *execute_statement(keel_req *req, keel_sqldb *db, bool ro, const char *sql,
                                     const keel_arg *args, size_t nargs, PGresult **out, keel_pool **used);

/* Statements by pool (the database's, or the replica's that ran it) and
 * outcome, for the metrics page.  Before a pool was chosen (an external
 * database not yet opened, a request refused early) the database's own
 * pool counts the error, when it has one. */
static void statement_count(keel_sqldb *db, keel_pool *used, const keel_error *err)
{
    keel_sqldb *d = db->resolved ? db->resolved : db;
    keel_pool *pool = used ? used : d->pool;
    if (pool)
        keel_pool_note_statement(pool, !err);
}

/* Runs a statement to completion on the transaction's connection or a pooled
 * one, with one retry on a fresh connection when a pooled one turns out dead. */
static keel_error *execute(keel_req *req, keel_sqldb *db, bool ro, const char *sql, const keel_arg *args,
                           size_t nargs, PGresult **out)
{
    keel_span *s = statement_span(req, db, sql, args, nargs);
    keel_pool *used = NULL;
    keel_error *err = execute_statement(req, db, ro, sql, args, nargs, out, &used);
    statement_span_end(req, s, *out, err);
    statement_count(db, used, err);
    return err;
}

/* Where a read goes: a healthy replica when ro (and not inside a
 * transaction, which lives on the primary), else the primary. */
static keel_pool *read_pool(const db_entry *e, bool ro)
{
    keel_pool *replica = ro && !in_tx(e) && e->db->replicas ? keel__replica_pick(e->db->replicas) : NULL;
    return replica ? replica : e->db->pool;
}

/* A read on a replica that found no connection is tried again on the
 * primary, and the replica is left out until it answers: a stopped replica
 * costs no failed request.  True when err (or a lost connection) is that. */
static bool replica_unreachable(const db_entry *e, keel_pool *pool, const keel_error *err, bool lost)
{
    if (pool == e->db->pool || !(lost || err->code == KEEL_UNAVAILABLE))
        return false;
    keel__replica_failed(e->db->replicas, pool);
    return true;
}

/* Runs the statement on e's transaction or on a connection of pool. */
static keel_error *statement_on(keel_req *req, db_entry *e, keel_pool *pool, const char *sql, const params *p,
                                PGresult **out, bool *lost)
{
    keel_error *err;
    *lost = false;
    if (on_loop(req)) {
        keel_pipe_params pp = {p->n, p->values, p->lengths, p->formats};
        if (e->atx) {
            err = keel__pipe_run_on(req, e->atx, sql, &pp, out, lost);
            if (err)
                tx_fail(req, e);
            return err;
        }
        for (int attempt = 0;; attempt++) {
            err = keel__pipe_run(req, pool, sql, &pp, out, lost);
            if (!err || !*lost || attempt > 0)
                return err;
            keel_error_free(err);
        }
    }
    keel_pconn *c;
    err = run_pooled(req, e, pool, OP_STATEMENT, sql, p, out, &c);
    if (!err && !e->tx)
        keel_pool_put(pool, c, false);
    return err;
}

static keel_error *execute_statement(keel_req *req, keel_sqldb *db, bool ro, const char *sql,
                                     const keel_arg *args, size_t nargs, PGresult **out, keel_pool **used)
{
    *out = NULL;
    db_entry *e;
    keel_error *err = entry_for(req, db, &e);
    if (!err)
        err = entry_usable(e);
    if (err)
        return err;
    if (!sql)
        return keel_error_new(KEEL_INTERNAL, "sqldb: no SQL given");
    params p;
    if ((err = params_build(args, nargs, &p)) != NULL)
        return err;
    keel_pool *pool = read_pool(e, ro);
    bool lost;
    err = statement_on(req, e, pool, sql, &p, out, &lost);
    if (err && replica_unreachable(e, pool, err, lost)) {
        keel_error_free(err);
        pool = e->db->pool;
        err = statement_on(req, e, pool, sql, &p, out, &lost);
    }
    *used = pool;
    params_free(&p);
    return err;
}

keel_error *keel_db_exec_args(keel_req *req, keel_sqldb *db, int64_t *affected, const char *sql,
                              const keel_arg *args, size_t nargs)
{
    if (affected)
        *affected = 0;
    PGresult *r;
    keel_error *err = execute(req, db, false, sql, args, nargs, &r);
    if (err)
        return err;
    if (affected) {
        const char *n = PQcmdTuples(r);
        *affected = (n && *n) ? strtoll(n, NULL, 10) : 0;
    }
    PQclear(r);
    return NULL;
}

static keel_error *query_row(keel_req *req, keel_sqldb *db, bool ro, keel_row **row, const char *sql,
                             const keel_arg *args, size_t nargs)
{
    *row = NULL;
    PGresult *r;
    keel_error *err = execute(req, db, ro, sql, args, nargs, &r);
    if (err)
        return err;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return keel_error_detail(keel_error_new(KEEL_NOT_FOUND, NO_ROWS_MESSAGE), KEEL_DETAIL_NO_ROWS);
    }
    db_state *st = state_of(req);
    kept_result *k = keel_arena_alloc(&req->arena, sizeof *k);
    keel_row *rw = keel_arena_alloc(&req->arena, sizeof *rw);
    if (!k || !rw) {
        PQclear(r);
        return oom();
    }
    k->res = r;
    k->next = st->kept;
    st->kept = k;
    rw->res = r;
    rw->idx = 0;
    rw->req = req;
    rw->stream = NULL;
    *row = rw;
    return NULL;
}

keel_error *keel_db_query_row_args(keel_req *req, keel_sqldb *db, keel_row **row, const char *sql,
                                   const keel_arg *args, size_t nargs)
{
    return query_row(req, db, false, row, sql, args, nargs);
}

keel_error *keel_db_query_row_ro_args(keel_req *req, keel_sqldb *db, keel_row **row, const char *sql,
                                      const keel_arg *args, size_t nargs)
{
    return query_row(req, db, true, row, sql, args, nargs);
}

bool keel_db_no_rows(const keel_error *err)
{
    return err && err->detail == KEEL_DETAIL_NO_ROWS;
}

/* ---- row streams --------------------------------------------------------------------- */

/* The stream's command is over (its results all read): give the connection
 * back unless it belongs to the transaction. */
static void rows_finish(keel_rows *rows, bool failed)
{
    PQclear(rows->cur);
    PQclear(rows->pending);
    rows->cur = rows->pending = NULL;
    rows->row.res = NULL;
    db_entry *e = rows->entry;
    if (rows->in_tx) {
        e->tx_stream = NULL;
        if (failed)
            tx_fail(rows->req, e);
    } else if (rows->aconn) {
        keel__pipe_release(rows->aconn, false); /* closed unless the stream ended cleanly */
    } else if (rows->conn) { /* NULL: an I/O thread's stream whose connection was already closed */
        PGconn *pg = keel_pconn_pg(rows->conn);
        keel_pool_put(rows->pool, rows->conn, PQstatus(pg) != CONNECTION_OK);
    }
    rows->conn = NULL;
    rows->aconn = NULL;
    rows->done = true;
    rows_unlink(rows);
}

/* Reads and drops the rest of an I/O thread's stream; true if the statement
 * failed or the connection broke. */
static bool drain_async(keel_req *req, keel_pipe_conn *c)
{
    bool failed = false, end = false;
    PGresult *r;
    while ((r = keel__pipe_stream_next(req, c, &end)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        failed |= s == PGRES_FATAL_ERROR || s == PGRES_BAD_RESPONSE;
        PQclear(r);
    }
    return failed || !end;
}

/* keel_db_query on the request's I/O thread: the stream holds a connection
 * of its own (the transaction's, or one reserved until the stream ends). */
static keel_error *stream_start_async(keel_req *req, db_entry *e, keel_pool *pool, const char *sql,
                                      const params *p, keel_pipe_conn **out, PGresult **first)
{
    *out = NULL;
    *first = NULL;
    keel_pipe_conn *c = e->atx;
    keel_error *err = NULL;
    if (!c && (err = keel__pipe_reserve(req, pool, &c)) != NULL)
        return err;
    keel_pipe_params pp = {p->n, p->values, p->lengths, p->formats};
    err = keel__pipe_stream_start(req, c, sql, &pp);
    bool end = false;
    PGresult *r = err ? NULL : keel__pipe_stream_next(req, c, &end);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_COMMAND_OK;
    if (!err && !r && !end)
        err = keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", e->db->name);
    else if (r && s != PGRES_SINGLE_TUPLE && s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        err = (s == PGRES_COPY_IN || s == PGRES_COPY_OUT || s == PGRES_COPY_BOTH)
                  ? keel_error_new(KEEL_INTERNAL, "database \"%s\" error", e->db->name)
                  : keel__pg_error(NULL, r, e->db->name);
        PQclear(r);
        r = NULL;
        end = !drain_async(req, c);
    }
    if (err) {
        if (e->atx)
            tx_fail(req, e);
        else
            keel__pipe_release(c, !end);
        return err;
    }
    *out = c;
    *first = r; /* NULL with end: no result at all */
    return NULL;
}

static keel_error *query_start(keel_req *req, keel_sqldb *db, bool ro, keel_rows **rows, const char *sql,
                               const keel_arg *args, size_t nargs, keel_pool **used);

/* A row stream's span covers the statement's start (its first rows); the
 * rows read afterwards are the handler's time. */
static keel_error *query(keel_req *req, keel_sqldb *db, bool ro, keel_rows **rows, const char *sql,
                         const keel_arg *args, size_t nargs)
{
    keel_span *s = statement_span(req, db, sql, args, nargs);
    keel_pool *used = NULL;
    keel_error *err = query_start(req, db, ro, rows, sql, args, nargs, &used);
    keel__span_end(req, s, err);
    statement_count(db, used, err);
    return err;
}

keel_error *keel_db_query_args(keel_req *req, keel_sqldb *db, keel_rows **rows, const char *sql,
                               const keel_arg *args, size_t nargs)
{
    return query(req, db, false, rows, sql, args, nargs);
}

keel_error *keel_db_query_ro_args(keel_req *req, keel_sqldb *db, keel_rows **rows, const char *sql,
                                  const keel_arg *args, size_t nargs)
{
    return query(req, db, true, rows, sql, args, nargs);
}

/* Starts the stream on e's transaction or a connection of pool: *ac on the
 * I/O thread, else *c. */
static keel_error *stream_on(keel_req *req, db_entry *e, keel_pool *pool, const char *sql, const params *p,
                             keel_pipe_conn **ac, keel_pconn **c, PGresult **first)
{
    *ac = NULL;
    *c = NULL;
    if (on_loop(req))
        return stream_start_async(req, e, pool, sql, p, ac, first);
    return run_pooled(req, e, pool, OP_STREAM, sql, p, first, c);
}

static keel_error *query_start(keel_req *req, keel_sqldb *db, bool ro, keel_rows **rows, const char *sql,
                               const keel_arg *args, size_t nargs, keel_pool **used)
{
    *rows = NULL;
    db_entry *e;
    keel_error *err = entry_for(req, db, &e);
    if (!err)
        err = entry_usable(e);
    if (err)
        return err;
    if (!sql)
        return keel_error_new(KEEL_INTERNAL, "sqldb: no SQL given");
    keel_rows *rs = keel_arena_calloc(&req->arena, 1, sizeof *rs);
    if (!rs)
        return oom();
    params p;
    if ((err = params_build(args, nargs, &p)) != NULL)
        return err;
    keel_pconn *c = NULL;
    keel_pipe_conn *ac = NULL;
    PGresult *first = NULL;
    keel_pool *pool = read_pool(e, ro);
    err = stream_on(req, e, pool, sql, &p, &ac, &c, &first);
    if (err && replica_unreachable(e, pool, err, false)) {
        keel_error_free(err);
        pool = e->db->pool;
        err = stream_on(req, e, pool, sql, &p, &ac, &c, &first);
    }
    *used = pool;
    params_free(&p);
    if (err)
        return err;
    db_state *st = state_of(req);
    rs->req = req;
    rs->state = st;
    rs->entry = e;
    rs->conn = c;
    rs->pool = pool;
    rs->aconn = ac;
    rs->in_tx = in_tx(e);
    rs->pending = first;
    rs->row.req = req;
    rs->row.stream = rs;
    rs->next_open = st->open;
    st->open = rs;
    if (rs->in_tx)
        e->tx_stream = rs;
    if (!first) /* nothing at all came back */
        rows_finish(rs, false);
    *rows = rs;
    return NULL;
}

/* The stream's next result; NULL at its end, or when the connection broke
 * (*broken). */
static PGresult *rows_result(keel_rows *rows, bool *broken)
{
    *broken = false;
    if (!rows->aconn)
        return PQgetResult(keel_pconn_pg(rows->conn));
    bool end;
    PGresult *r = keel__pipe_stream_next(rows->req, rows->aconn, &end);
    *broken = !r && !end;
    return r;
}

keel_error *keel_rows_next(keel_rows *rows, keel_row **row)
{
    *row = NULL;
    if (!rows || rows->done)
        return NULL;
    if (rows->cur && rows->row.idx + 1 < PQntuples(rows->cur)) {
        rows->row.idx++;
        *row = &rows->row;
        return NULL;
    }
    PQclear(rows->cur);
    rows->cur = NULL;
    rows->row.res = NULL;
    PGconn *pg = rows->conn ? keel_pconn_pg(rows->conn) : NULL;
    for (;;) {
        PGresult *r = rows->pending;
        rows->pending = NULL;
        bool broken = false;
        if (!r)
            r = rows_result(rows, &broken);
        if (!r && broken) {
            rows_finish(rows, true);
            return keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", rows->entry->db->name);
        }
        if (!r) {
            rows_finish(rows, false);
            return NULL;
        }
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_SINGLE_TUPLE || s == PGRES_TUPLES_OK) {
            if (PQntuples(r) > 0) {
                rows->cur = r;
                rows->row.res = r;
                rows->row.idx = 0;
                *row = &rows->row;
                return NULL;
            }
            PQclear(r);
            continue;
        }
        if (s == PGRES_COMMAND_OK) {
            PQclear(r);
            continue;
        }
        keel_error *err = keel__pg_error(pg, r, rows->entry->db->name);
        PQclear(r);
        if (rows->aconn)
            drain_async(rows->req, rows->aconn);
        else
            drain(pg);
        rows_finish(rows, true);
        return err;
    }
}

/* Ends a stream before its last row: cancel tells the server to stop sending
 * (outside a transaction, or when the transaction is being rolled back
 * anyway); inside a live transaction the rest is read and dropped, since a
 * cancel would abort the transaction. */
static void rows_close(keel_rows *rows, bool cancel)
{
    if (!rows || rows->done)
        return;
    PQclear(rows->cur);
    PQclear(rows->pending);
    rows->cur = rows->pending = NULL;
    if (rows->aconn) {
        /* Closing the connection stops the server's work without a
         * blocking cancel request; off the coroutine nothing can wait. */
        if ((cancel && !rows->in_tx) || !on_loop(rows->req)) {
            if (!rows->in_tx)
                keel__pipe_release(rows->aconn, true);
            rows->aconn = NULL;
            rows_finish(rows, rows->in_tx);
            return;
        }
        bool failed = drain_async(rows->req, rows->aconn);
        rows_finish(rows, failed && rows->in_tx);
        return;
    }
    PGconn *pg = keel_pconn_pg(rows->conn);
    if (cancel)
        keel__pg_cancel(pg);
    bool failed = drain(pg);
    rows_finish(rows, failed && rows->in_tx);
}

void keel_rows_close(keel_rows *rows)
{
    if (rows)
        rows_close(rows, !rows->in_tx);
}

/* ---- transactions ---------------------------------------------------------------- */

static keel_error *begin_on(keel_req *req, db_entry *e);

keel_error *keel_db_begin(keel_req *req, keel_sqldb *db)
{
    db_entry *e;
    keel_error *err = entry_for(req, db, &e);
    if (err)
        return err;
    if (in_tx(e))
        return keel_error_new(KEEL_INTERNAL, "sqldb: a transaction is already open on database \"%s\"",
                              e->db->name);
    keel_span *span = NULL;
    if (req->trace) {
        char name[80];
        snprintf(name, sizeof name, "transaction %s", e->db->name);
        span = keel__span_start(req, name, KEEL_SPAN_INTERNAL);
        keel__span_attr_str(span, "db.namespace", e->db->name);
    }
    err = begin_on(req, e);
    if (err)
        keel__span_end(req, span, err);
    else
        e->tx_span = span;
    return err;
}

static keel_error *begin_on(keel_req *req, db_entry *e)
{
    keel_error *err;
    for (int attempt = 0; on_loop(req); attempt++) {
        keel_pipe_conn *c;
        if ((err = keel__pipe_reserve(req, e->db->pool, &c)) != NULL)
            return err;
        PGresult *r;
        bool lost;
        err = keel__pipe_run_on(req, c, "BEGIN", &no_params, &r, &lost);
        PQclear(r);
        if (!err) {
            e->atx = c;
            e->tx_failed = false;
            e->tx_stream = NULL;
            return NULL;
        }
        keel__pipe_release(c, true);
        if (!lost || attempt > 0)
            return err;
        keel_error_free(err);
    }
    keel_pconn *c;
    PGresult *none;
    if ((err = run_pooled(req, e, e->db->pool, OP_BEGIN, "BEGIN", NULL, &none, &c)) != NULL)
        return err;
    e->tx = c;
    e->tx_failed = false;
    e->tx_stream = NULL;
    return NULL;
}

keel_error *keel_db_commit(keel_req *req, keel_sqldb *db)
{
    db_entry *e;
    keel_error *err = entry_for(req, db, &e);
    if (err)
        return err;
    if (!in_tx(e))
        return keel_error_new(KEEL_INTERNAL, "sqldb: no transaction is open on database \"%s\"", e->db->name);
    if (e->tx_stream)
        rows_close(e->tx_stream, false);
    if (e->tx_failed) {
        tx_end(e, "rolled back");
        return keel_error_new(KEEL_ABORTED, TX_ABORTED_MESSAGE);
    }
    PGresult *r;
    err = tx_command(req, e, "COMMIT", &r);
    if (!err && strcmp(PQcmdStatus(r), "ROLLBACK") == 0) /* the server had aborted it */
        err = keel_error_new(KEEL_ABORTED, TX_ABORTED_MESSAGE);
    PQclear(r);
    tx_end(e, err ? "rolled back" : "committed");
    return err;
}

keel_error *keel_db_rollback(keel_req *req, keel_sqldb *db)
{
    db_entry *e;
    keel_error *err = entry_for(req, db, &e);
    if (err)
        return err;
    if (!in_tx(e)) /* nothing open (committed already): harmless, like a deferred rollback */
        return NULL;
    if (e->tx_stream)
        rows_close(e->tx_stream, true);
    if (!e->tx_failed)
        tx_fail(req, e);
    tx_end(e, "rolled back");
    return NULL;
}

/* What the request left open on databases: row streams closed, open
 * transactions rolled back, kept results freed. */
static void state_dispose(void *p)
{
    db_state *st = p;
    keel_req *req = st->req;
    while (st->open)
        rows_close(st->open, true);
    for (db_entry *e = st->dbs; e; e = e->next)
        if (in_tx(e)) {
            if (!e->tx_failed)
                tx_fail(req, e);
            tx_end(e, "rolled back");
        }
    for (kept_result *k = st->kept; k; k = k->next)
        PQclear(k->res);
    st->kept = NULL;
}

/* ---- getters ------------------------------------------------------------------------ */

int keel_row_columns(const keel_row *row)
{
    return row && row->res ? PQnfields(row->res) : 0;
}

bool keel_row_is_null(const keel_row *row, int col)
{
    if (!row || !row->res || col < 0 || col >= PQnfields(row->res))
        return false;
    return PQgetisnull(row->res, row->idx, col) != 0;
}

/* The text of column col (NULL for SQL NULL). */
static keel_error *cell(const keel_row *row, int col, const char **val, int *len)
{
    *val = NULL;
    if (len)
        *len = 0;
    if (!row || !row->res)
        return keel_error_new(KEEL_INTERNAL, "sqldb: no row");
    int n = PQnfields(row->res);
    if (col < 0 || col >= n)
        return keel_error_new(KEEL_INTERNAL, "column %d out of range (result has %d columns)", col, n);
    if (PQgetisnull(row->res, row->idx, col))
        return NULL;
    *val = PQgetvalue(row->res, row->idx, col);
    if (len)
        *len = PQgetlength(row->res, row->idx, col);
    return NULL;
}

static keel_error *null_value(const keel_row *row, int col, bool *is_null)
{
    if (is_null) {
        *is_null = true;
        return NULL;
    }
    return keel_error_new(KEEL_INVALID_ARGUMENT, "column \"%s\" is NULL", PQfname(row->res, col));
}

static keel_error *mismatch(const keel_row *row, int col, const char *type)
{
    return keel_error_new(KEEL_INTERNAL, "column \"%s\" does not convert to %s", PQfname(row->res, col), type);
}

/* A streamed row's result is freed by the next keel_rows_next: its text is
 * copied into the request's arena.  keel_db_query_row's results are kept
 * until the request ends, so their text is handed out as it is. */
keel_error *keel_row_text(const keel_row *row, int col, const char **out, bool *is_null)
{
    int len;
    keel_error *err = cell(row, col, out, &len);
    if (err)
        return err;
    if (!*out)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    if (row->stream && !(*out = keel_arena_strndup(&row->req->arena, *out, (size_t)len)))
        return oom();
    return NULL;
}

keel_error *keel_row_copy_text(const keel_row *row, int col, char *dst, size_t cap, size_t *len, bool *is_null)
{
    const char *v;
    int n;
    *len = 0;
    if (cap)
        dst[0] = '\0';
    keel_error *err = cell(row, col, &v, &n);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    *len = (size_t)n;
    if (cap) {
        size_t take = (size_t)n < cap ? (size_t)n : cap - 1;
        memcpy(dst, v, take);
        dst[take] = '\0';
    }
    return NULL;
}

keel_error *keel_row_int64(const keel_row *row, int col, int64_t *out, bool *is_null)
{
    const char *v;
    *out = 0;
    keel_error *err = cell(row, col, &v, NULL);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return mismatch(row, col, "int64");
    *out = (int64_t)n;
    return NULL;
}

keel_error *keel_row_double(const keel_row *row, int col, double *out, bool *is_null)
{
    const char *v;
    *out = 0;
    keel_error *err = cell(row, col, &v, NULL);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || (errno == ERANGE && isinf(d)))
        return mismatch(row, col, "double");
    *out = d;
    return NULL;
}

keel_error *keel_row_bool(const keel_row *row, int col, bool *out, bool *is_null)
{
    const char *v;
    *out = false;
    keel_error *err = cell(row, col, &v, NULL);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    if (!strcmp(v, "t"))
        *out = true;
    else if (strcmp(v, "f") != 0)
        return mismatch(row, col, "bool");
    return NULL;
}

/* Memory for a value taken from row: the request's arena, so that it lives
 * as long as the request whatever the row does next. */
static void *row_alloc(const keel_row *row, size_t n)
{
    return keel_arena_alloc(&row->req->arena, n);
}

keel_error *keel_row_bytea(const keel_row *row, int col, const uint8_t **out, size_t *len, bool *is_null)
{
    const char *v;
    *out = NULL;
    *len = 0;
    keel_error *err = cell(row, col, &v, NULL);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)v, &n);
    if (!raw)
        return mismatch(row, col, "bytea");
    uint8_t *copy = row_alloc(row, n);
    if (!copy) {
        PQfreemem(raw);
        return oom();
    }
    if (n)
        memcpy(copy, raw, n);
    PQfreemem(raw);
    *out = copy;
    *len = n;
    return NULL;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly n digits (n > 0) or, with n == 0, one or more. */
static bool digits(const char **p, int n, int64_t *out)
{
    const char *s = *p;
    int64_t v = 0;
    int count = 0;
    while (*s >= '0' && *s <= '9' && (n == 0 || count < n)) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*s - '0');
        s++;
        count++;
    }
    if (count == 0 || (n && count != n))
        return false;
    *p = s;
    *out = v;
    return true;
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]]" (ISO DateStyle) to microseconds
 * since the epoch; no offset means UTC (timestamp without time zone). */
static bool parse_timestamp(const char *s, int64_t *out)
{
    int64_t y, mo, d, h, mi, sec, frac = 0;
    if (!digits(&s, 0, &y) || *s++ != '-' || !digits(&s, 2, &mo) || *s++ != '-' || !digits(&s, 2, &d))
        return false;
    if (*s != ' ' && *s != 'T')
        return false;
    s++;
    if (!digits(&s, 2, &h) || *s++ != ':' || !digits(&s, 2, &mi) || *s++ != ':' || !digits(&s, 2, &sec))
        return false;
    if (*s == '.') {
        s++;
        int n = 0;
        while (*s >= '0' && *s <= '9') {
            if (n < 6) {
                frac = frac * 10 + (*s - '0');
                n++;
            }
            s++;
        }
        if (n == 0)
            return false;
        for (; n < 6; n++)
            frac *= 10;
    }
    int64_t offset = 0;
    if (*s == '+' || *s == '-') {
        int sign = *s++ == '-' ? -1 : 1;
        int64_t oh, om = 0, os = 0;
        if (!digits(&s, 2, &oh))
            return false;
        if (*s == ':' && !(s++, digits(&s, 2, &om)))
            return false;
        if (*s == ':' && !(s++, digits(&s, 2, &os)))
            return false;
        offset = sign * (oh * 3600 + om * 60 + os);
    } else if (*s == 'Z') {
        s++;
    }
    if (*s || y > 294276 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || sec > 60)
        return false;
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    *out = secs * 1000000 + frac;
    return true;
}

keel_error *keel_row_timestamptz(const keel_row *row, int col, int64_t *out, bool *is_null)
{
    const char *v;
    *out = 0;
    keel_error *err = cell(row, col, &v, NULL);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    if (!parse_timestamp(v, out))
        return mismatch(row, col, "timestamptz");
    return NULL;
}

keel_error *keel_row_json(const keel_row *row, int col, json_t **out, bool *is_null)
{
    const char *v;
    int len;
    *out = NULL;
    keel_error *err = cell(row, col, &v, &len);
    if (err)
        return err;
    if (!v)
        return null_value(row, col, is_null);
    if (is_null)
        *is_null = false;
    json_error_t jerr;
    json_t *j = json_loadb(v, (size_t)len, JSON_DECODE_ANY, &jerr);
    if (!j)
        return mismatch(row, col, "json");
    *out = j;
    return NULL;
}

/* ---- scan ---------------------------------------------------------------------------- */

keel_error *keel_row_scan(const keel_row *row, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    keel_error *err = NULL;
    json_t **taken[16]; /* json values already produced: released on failure */
    size_t ntaken = 0;
    int col = 0;
    bool nullable = false;
    for (const char *f = format; *f && !err; f++) {
        if (*f == '?') {
            nullable = true;
            continue;
        }
        bool was_null = false;
        bool *isn = nullable ? &was_null : NULL;
        switch (*f) {
        case 't':
            err = keel_row_text(row, col, va_arg(ap, const char **), isn);
            break;
        case 'i':
            err = keel_row_int64(row, col, va_arg(ap, int64_t *), isn);
            break;
        case 'd':
            err = keel_row_double(row, col, va_arg(ap, double *), isn);
            break;
        case 'b':
            err = keel_row_bool(row, col, va_arg(ap, bool *), isn);
            break;
        case 'T':
            err = keel_row_timestamptz(row, col, va_arg(ap, int64_t *), isn);
            break;
        case 'x': {
            const uint8_t **out = va_arg(ap, const uint8_t **);
            size_t *len = va_arg(ap, size_t *);
            err = keel_row_bytea(row, col, out, len, isn);
            break;
        }
        case 'j': {
            json_t **out = va_arg(ap, json_t **);
            err = keel_row_json(row, col, out, isn);
            if (!err && *out) {
                if (ntaken < sizeof taken / sizeof *taken) {
                    taken[ntaken++] = out;
                } else {
                    json_decref(*out);
                    *out = NULL;
                    err = keel_error_new(KEEL_INTERNAL, "keel_row_scan: too many json columns");
                }
            }
            break;
        }
        case ' ':
            continue;
        default:
            err = keel_error_new(KEEL_INTERNAL, "keel_row_scan: unknown format letter '%c'", *f);
            break;
        }
        if (err)
            break;
        if (nullable)
            *va_arg(ap, bool *) = was_null;
        nullable = false;
        col++;
    }
    va_end(ap);
    if (err)
        for (size_t i = 0; i < ntaken; i++) {
            json_decref(*taken[i]);
            *taken[i] = NULL;
        }
    return err;
}

/* pipeline.c - see pipeline.h.
 *
 * Each I/O thread keeps, per database, a lane: a few connections it alone
 * uses (no locks), at most its share of the database's pool size.  Every
 * connection is non-blocking and in pipeline mode.  A statement is a Prepare
 * (the first time on that connection), a Bind/Execute and a Sync: the Sync
 * makes each statement its own implicit transaction, so an error fails only
 * its own request.  Results come back in the order sent; the thread's epoll
 * reports the socket readable and each result goes to the coroutine at the
 * head of the connection's queue, which then runs again.
 *
 * Head-of-line blocking: a statement waiting on a lock holds back everything
 * behind it on its connection.  A connection with statements out that has
 * returned no result for STALL_MS takes no new statements while another
 * connection can (opening one, up to the share), so unrelated requests go
 * around it.  A busy connection that keeps returning results is not stalled:
 * load alone opens no connections beyond one per BUSY_STATEMENTS.
 *
 * Connecting is non-blocking too (PQconnectStart/PQconnectPoll), bounded by
 * the pool's checkout timeout; statements wait in the connection's queue
 * until it is up.  A host given by name is looked up first on a worker
 * thread (libpq would look it up inside PQconnectStart, and a slow resolver
 * would stall the whole thread); the connect then goes to the address.  A connection that breaks fails every statement on it with
 * unavailable and *lost set; the caller retries once on a fresh one. */
#include "sql/pipeline.h"
#include "core.h"
#include "http/coro.h"
#include "http/loop.h"
#include "sql/pool.h"
#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STALL_MS 5          /* no result for this long: stuck on a lock, or slow */
#define BUSY_STATEMENTS 64  /* past this many in flight, a new connection helps */

typedef struct pipe_op pipe_op;
typedef struct keel_pipe_conn pipe_conn;
typedef struct pipe_waiter pipe_waiter;
typedef struct pipe_lane pipe_lane;

/* A statement, in its request's arena, queued until its result is in. */
struct pipe_op {
    pipe_op *next;
    keel_req *req;
    const char *sql;
    const keel_pipe_params *params;
    int commands_left;      /* results still to end with NULL: Prepare, Execute */
    bool waiting;           /* its coroutine has yielded for it */
    bool done;
    bool lost;
    PGresult *result;
    keel_error *err;
};

/* A host name being looked up on a worker for a connection.  Whoever of the
 * worker and the loop finishes with it second frees it. */
typedef enum { RESOLVING, RESOLVED, ABANDONED } resolve_state;
typedef struct resolve_job {
    keel_job job;
    atomic_int state;
    int efd;                /* written once resolved; the loop watches it */
    char host[256];
    char addr[INET6_ADDRSTRLEN]; /* "" when the lookup failed */
    char why[128];
} resolve_job;

struct keel_pipe_conn {
    keel_watch watch;
    keel_watch resolve_watch;
    resolve_job *resolving; /* the host is being looked up */
    keel_timer connect_timer;
    pipe_conn *next;
    pipe_lane *lane;
    keel_pconn *pc;
    PGconn *pg;
    int fd;
    uint32_t events;        /* what epoll watches for */
    bool connecting;
    pipe_op *head, *tail;   /* sent, in order */
    pipe_op *wait_head, *wait_tail; /* waiting for the connection to be up */
    unsigned inflight;      /* sent and waiting together */
    bool reserved;          /* one request holds it alone (keel__pipe_reserve) */
    bool counted_busy;      /* in the pool's busy count (metrics) */
    bool broken;            /* closed while reserved: freed by its release */
    pipe_waiter *reserver;  /* waits for this new connection to be up */
    bool streaming;         /* a row stream is being read (no ops queued) */
    keel_req *stream_owner;
    bool stream_waiting;    /* the owner has yielded for more input */
    struct timespec progress; /* the last result read, the first send to an idle
                                 connection, or the start of the connect */
};

/* A request waiting to reserve a connection. */
struct pipe_waiter {
    pipe_waiter *next;
    keel_req *req;
    pipe_lane *lane;
    pipe_conn *got;
    keel_error *err;
    bool done;
    keel_timer timer;
};

struct pipe_lane {
    pipe_lane *next;
    pipe_waiter *waiters;   /* FIFO of keel__pipe_reserve calls at the cap */
    keel_pool *pool;
    keel_loop *loop;
    pipe_conn *conns;
    unsigned nconns;
    unsigned cap;
};

/* Keeps the pool's busy count (metrics) in step with c: busy while held
 * alone or with statements in flight.  Called after either changes. */
static void busy_sync(pipe_conn *c)
{
    bool busy = c->pc && (c->reserved || c->inflight > 0);
    if (busy != c->counted_busy) {
        keel_pool_note_busy(c->lane->pool, busy ? 1 : -1);
        c->counted_busy = busy;
    }
}

struct keel_pipes {
    pipe_lane *lanes;
};


/* ---- finishing statements ------------------------------------------------------ */

static void op_finish(pipe_lane *lane, pipe_op *op)
{
    op->done = true;
    if (op->waiting) /* else it failed before its coroutine yielded */
        keel__loop_ready(lane->loop, op->req);
}

static void queue_push(pipe_op **head, pipe_op **tail, pipe_op *op)
{
    op->next = NULL;
    if (*tail)
        (*tail)->next = op;
    else
        *head = op;
    *tail = op;
}

static void fail_list(pipe_lane *lane, pipe_op *op, const keel_error *why, bool lost)
{
    while (op) {
        pipe_op *next = op->next;
        if (!op->err)
            op->err = keel_error_copy(why);
        PQclear(op->result);
        op->result = NULL;
        op->lost = lost;
        op_finish(lane, op);
        op = next;
    }
}

static void waiter_finish(pipe_waiter *w, pipe_conn *got, keel_error *err)
{
    keel__loop_timer_cancel(w->lane->loop, &w->timer);
    w->got = got;
    w->err = err;
    w->done = true;
    keel__loop_ready(w->lane->loop, w->req);
}

static void resolve_abandon(keel_loop *loop, pipe_conn *c);

/* Closes c, failing what is on it with why (freed here).  A reserved
 * connection stays allocated, marked broken, until its holder releases it. */
static void conn_fail(pipe_conn *c, keel_error *why)
{
    pipe_lane *lane = c->lane;
    for (pipe_conn **p = &lane->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            lane->nconns--;
            break;
        }
    c->next = NULL;
    keel__loop_timer_cancel(lane->loop, &c->connect_timer);
    if (c->fd >= 0)
        keel__loop_unwatch(lane->loop, c->fd);
    c->fd = -1;
    if (c->resolving)
        resolve_abandon(lane->loop, c);
    fail_list(lane, c->head, why, true);
    fail_list(lane, c->wait_head, why, false);
    c->head = c->tail = c->wait_head = c->wait_tail = NULL;
    if (c->reserver) {
        waiter_finish(c->reserver, NULL, keel_error_copy(why));
        c->reserver = NULL;
        c->reserved = false; /* nobody holds it yet */
    }
    if (c->stream_waiting)
        keel__loop_ready(lane->loop, c->stream_owner);
    keel_error_free(why);
    if (c->pc)
        keel_pconn_close(c->pc);
    c->pc = NULL;
    c->pg = NULL;
    busy_sync(c);
    if (c->reserved) {
        c->broken = true;
        return;
    }
    free(c);
}

static keel_error *lost_error(pipe_conn *c)
{
    return keel__pg_error(c->pg, NULL, keel_pool_name(c->lane->pool));
}

/* ---- sending ---------------------------------------------------------------------- */

static void set_events(pipe_conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    keel_error *err = keel__loop_rewatch(c->lane->loop, c->fd, events, &c->watch);
    keel_error_free(err);
    c->events = events;
}

/* Queues op's messages on c; false when libpq refused (c is then broken). */
static bool op_send(pipe_conn *c, pipe_op *op)
{
    bool prepare;
    const keel_pipe_params *p = op->params;
    const char *name = keel_pconn_stmt(c->pc, op->sql, &prepare);
    op->commands_left = prepare ? 2 : 1;
    if (prepare && !PQsendPrepare(c->pg, name, op->sql, p->n, NULL))
        return false;
    if (!PQsendQueryPrepared(c->pg, name, p->n, p->values, p->lengths, p->formats, 0))
        return false;
    /* libpq 15's PQpipelineSync also flushes: one write per statement. */
    if (!PQpipelineSync(c->pg))
        return false;
    if (!c->head)
        c->progress = *keel__loop_now(c->lane->loop);
    queue_push(&c->head, &c->tail, op);
    return true;
}

/* Sends what waited for the connection; false when c broke. */
static bool send_waiting(pipe_conn *c)
{
    while (c->wait_head) {
        pipe_op *op = c->wait_head;
        c->wait_head = op->next;
        if (!c->wait_head)
            c->wait_tail = NULL;
        if (!op_send(c, op)) {
            queue_push(&c->head, &c->tail, op); /* fails with the rest */
            return false;
        }
    }
    int r = PQflush(c->pg);
    if (r < 0)
        return false;
    set_events(c, r ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return true;
}

/* ---- receiving -------------------------------------------------------------------- */

static void op_take_result(pipe_conn *c, pipe_op *op, PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    if (op->commands_left >= 2) { /* the Prepare */
        if (st != PGRES_COMMAND_OK && !op->err) {
            op->err = keel__pg_error(c->pg, r, keel_pool_name(c->lane->pool));
            keel_pconn_stmt_failed(c->pc, op->sql);
        }
        PQclear(r);
        return;
    }
    if ((st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) && !op->err && !op->result) {
        op->result = r;
        return;
    }
    if (!op->err) {
        if (st == PGRES_PIPELINE_ABORTED)
            op->err = keel_error_new(KEEL_INTERNAL, "database \"%s\" error", keel_pool_name(c->lane->pool));
        else if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            op->err = keel_error_new(KEEL_INTERNAL, "database \"%s\" error", keel_pool_name(c->lane->pool));
        else
            op->err = keel__pg_error(c->pg, r, keel_pool_name(c->lane->pool));
    }
    PQclear(r);
}

/* Gives an idle connection to the first request waiting to reserve one. */
static void hand_over(pipe_conn *c)
{
    pipe_waiter *w = c->lane->waiters;
    c->lane->waiters = w->next;
    c->reserved = true;
    busy_sync(c);
    waiter_finish(w, c, NULL);
}

/* Hands every complete result to its statement; false when c broke. */
static bool read_results(pipe_conn *c)
{
    while (c->head && !PQisBusy(c->pg)) {
        pipe_op *op = c->head;
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            if (op->commands_left == 0)
                break; /* nothing more is ready */
            op->commands_left--;
            continue;
        }
        c->progress = *keel__loop_now(c->lane->loop);
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            c->head = op->next;
            if (!c->head)
                c->tail = NULL;
            c->inflight--;
            busy_sync(c);
            if (!op->err && !op->result)
                op->err = keel_error_new(KEEL_INTERNAL, "database \"%s\" error", keel_pool_name(c->lane->pool));
            op_finish(c->lane, op);
            continue;
        }
        op_take_result(c, op, r);
    }
    if (!c->inflight && !c->reserved && c->lane->waiters)
        hand_over(c);
    return PQstatus(c->pg) == CONNECTION_OK;
}

/* ---- connecting ------------------------------------------------------------------- */

/* Advances the connect; true while c is usable. */
static bool connect_step(pipe_conn *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int fd = PQsocket(c->pg);
    if (fd != c->fd) { /* libpq moved to another address */
        if (c->fd >= 0)
            keel__loop_unwatch(c->lane->loop, c->fd);
        c->fd = fd;
        c->events = 0;
        if (fd >= 0 && keel__loop_watch(c->lane->loop, fd, EPOLLOUT, &c->watch) == NULL)
            c->events = EPOLLOUT;
    }
    switch (st) {
    case PGRES_POLLING_READING:
        set_events(c, EPOLLIN);
        return true;
    case PGRES_POLLING_WRITING:
        set_events(c, EPOLLOUT);
        return true;
    case PGRES_POLLING_OK:
        keel__loop_timer_cancel(c->lane->loop, &c->connect_timer);
        c->connecting = false;
        if (PQsetnonblocking(c->pg, 1) != 0 || !PQenterPipelineMode(c->pg) || !send_waiting(c))
            return false;
        if (c->reserver) {
            waiter_finish(c->reserver, c, NULL);
            c->reserver = NULL;
        }
        return true;
    default:
        return false;
    }
}

static keel_error *connect_error(pipe_conn *c)
{
    const char *name = keel_pool_name(c->lane->pool);
    keel_error *err = keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", name);
    keel_error *detail = keel__pg_error(c->pg, NULL, name);
    if (detail->cause)
        keel_error_cause(err, "%s", detail->cause);
    keel_error_free(detail);
    return err;
}

static void on_connect_timeout(keel_timer *t)
{
    pipe_conn *c = (pipe_conn *)((char *)t - offsetof(pipe_conn, connect_timer));
    keel_error *err = keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable",
                                     keel_pool_name(c->lane->pool));
    keel_error_cause(err, "no connection within %u ms", keel_pool_checkout_ms(c->lane->pool));
    conn_fail(c, err);
}

static void on_conn_event(keel_watch *w, uint32_t events)
{
    pipe_conn *c = (pipe_conn *)w;
    if (c->connecting) {
        if (!connect_step(c))
            conn_fail(c, c->connecting ? connect_error(c) : lost_error(c));
        return;
    }
    if (events & EPOLLOUT) {
        int r = PQflush(c->pg);
        if (r < 0) {
            conn_fail(c, lost_error(c));
            return;
        }
        if (r == 0)
            set_events(c, EPOLLIN);
    }
    if (c->streaming && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        /* Read once for the stream's owner, then stop watching until it asks
         * again: the server's rows stay in the socket, not in memory. */
        if (!PQconsumeInput(c->pg)) {
            conn_fail(c, lost_error(c));
            return;
        }
        set_events(c, c->events & EPOLLOUT);
        if (c->stream_waiting)
            keel__loop_ready(c->lane->loop, c->stream_owner);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (!PQconsumeInput(c->pg) || !read_results(c)) {
            conn_fail(c, lost_error(c));
            return;
        }
        /* A server that says goodbye (a restart) while nothing is out. */
        if (!c->head && (events & (EPOLLERR | EPOLLHUP)))
            conn_fail(c, lost_error(c));
    }
}

/* Starts the connect to the pool's server (at hostaddr when the host was
 * looked up here); an error leaves c for the caller to fail. */
static keel_error *conn_dial(pipe_conn *c, const char *hostaddr)
{
    pipe_lane *lane = c->lane;
    keel_error *err = keel_pconn_start(lane->pool, hostaddr, &c->pc);
    if (err)
        return err;
    c->pg = keel_pconn_pg(c->pc);
    /* libpq: before the first PQconnectPoll, wait as if it said "writing". */
    c->fd = PQsocket(c->pg);
    err = c->fd >= 0 ? keel__loop_watch(lane->loop, c->fd, EPOLLOUT, &c->watch)
                     : keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", keel_pool_name(lane->pool));
    if (err) {
        c->fd = -1;
        return err;
    }
    c->events = EPOLLOUT;
    return NULL;
}

/* ---- looking the host up ------------------------------------------------------- */

static void resolve_free(resolve_job *j)
{
    close(j->efd);
    free(j);
}

/* On a worker: the lookup, which may take as long as the resolver likes. */
static void resolve_run(keel_job *job)
{
    resolve_job *j = (resolve_job *)job;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(j->host, NULL, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(j->why, sizeof j->why, "cannot resolve host \"%.64s\": %s", j->host,
                 rc ? gai_strerror(rc) : "no address");
    } else {
        const void *a = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                                  : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        if (!inet_ntop(ai->ai_family, a, j->addr, sizeof j->addr))
            j->addr[0] = '\0';
    }
    if (ai)
        freeaddrinfo(ai);
    if (atomic_exchange(&j->state, RESOLVED) == ABANDONED) {
        resolve_free(j);
        return;
    }
    uint64_t one = 1;
    while (write(j->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* On the loop: the lookup is done; connect to the address. */
static void on_resolved(keel_watch *w, uint32_t events)
{
    (void)events;
    pipe_conn *c = (pipe_conn *)((char *)w - offsetof(pipe_conn, resolve_watch));
    resolve_job *j = c->resolving;
    keel__loop_unwatch(c->lane->loop, j->efd);
    c->resolving = NULL;
    keel_error *err = NULL;
    if (!j->addr[0]) {
        err = keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", keel_pool_name(c->lane->pool));
        keel_error_cause(err, "%s", j->why[0] ? j->why : "cannot resolve its host");
    } else {
        err = conn_dial(c, j->addr);
        busy_sync(c);
    }
    resolve_free(j);
    if (err)
        conn_fail(c, err);
}

static void resolve_abandon(keel_loop *loop, pipe_conn *c)
{
    resolve_job *j = c->resolving;
    c->resolving = NULL;
    keel__loop_unwatch(loop, j->efd);
    if (atomic_exchange(&j->state, ABANDONED) == RESOLVED)
        resolve_free(j); /* done, its wake-up not read: nobody else holds it */
}

static keel_error *resolve_start(pipe_conn *c, const char *host)
{
    resolve_job *j = calloc(1, sizeof *j);
    if (!j)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j->efd < 0) {
        free(j);
        return keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable: no eventfd",
                              keel_pool_name(c->lane->pool));
    }
    snprintf(j->host, sizeof j->host, "%s", host);
    atomic_init(&j->state, RESOLVING);
    j->job.run = resolve_run;
    c->resolve_watch.fn = on_resolved;
    keel_error *err = keel__loop_watch(c->lane->loop, j->efd, EPOLLIN, &c->resolve_watch);
    if (err) {
        resolve_free(j);
        return err;
    }
    c->resolving = j;
    keel__workers_submit(keel__loop_app(c->lane->loop)->workers, &j->job);
    return NULL;
}

/* A new connection for lane, connecting (or looking its host up first). */
static keel_error *conn_new(pipe_lane *lane, pipe_conn **out)
{
    *out = NULL;
    pipe_conn *c = calloc(1, sizeof *c);
    if (!c)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    c->watch.fn = on_conn_event;
    c->connect_timer.fn = on_connect_timeout;
    c->lane = lane;
    c->fd = -1;
    c->connecting = true;
    c->progress = *keel__loop_now(lane->loop);
    c->next = lane->conns;
    lane->conns = c;
    lane->nconns++;
    keel__loop_timer_arm(lane->loop, &c->connect_timer, keel_pool_checkout_ms(lane->pool));
    const char *host = keel_pool_host_to_resolve(lane->pool);
    keel_error *err = host ? resolve_start(c, host) : conn_dial(c, NULL);
    if (err) {
        conn_fail(c, keel_error_copy(err));
        return err;
    }
    *out = c;
    return NULL;
}

/* ---- choosing a connection ------------------------------------------------------- */

static pipe_lane *lane_for(keel_loop *loop, keel_pool *pool, keel_error **err)
{
    struct keel_pipes **slot = keel__loop_pipes(loop);
    if (!*slot && !(*slot = calloc(1, sizeof **slot))) {
        *err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    for (pipe_lane *l = (*slot)->lanes; l; l = l->next)
        if (l->pool == pool)
            return l;
    pipe_lane *l = calloc(1, sizeof *l);
    if (!l) {
        *err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    unsigned threads = keel__loop_app(loop)->nloops;
    l->pool = pool;
    l->loop = loop;
    l->cap = keel_pool_max(pool) / (threads ? threads : 1);
    if (l->cap < 1)
        l->cap = 1;
    l->next = (*slot)->lanes;
    (*slot)->lanes = l;
    return l;
}

/* A connection with statements out (or waiting for it to connect) that has
 * returned nothing for STALL_MS (or is still connecting after that long):
 * whatever is at its head holds back everything behind it. */
static bool stalled(const pipe_conn *c, const struct timespec *now)
{
    return (c->head || c->wait_head) && keel__ms_between(&c->progress, now) >= STALL_MS;
}

/* The connection for the next statement: the least busy one that is not
 * stalled; a new one when every one is stalled or busy and the share allows.
 * *out is NULL (and no error) when every connection is held alone and the
 * share is used up: the caller waits for one. */
static keel_error *pick(pipe_lane *lane, pipe_conn **out)
{
    *out = NULL;
    const struct timespec *now = keel__loop_now(lane->loop);
    pipe_conn *best = NULL, *any = NULL;
    for (pipe_conn *c = lane->conns; c; c = c->next) {
        if (c->reserved)
            continue;
        if (!any || c->inflight < any->inflight)
            any = c;
        if (stalled(c, now))
            continue;
        if (!best || c->inflight < best->inflight)
            best = c;
    }
    if (best && (best->inflight < BUSY_STATEMENTS || lane->nconns >= lane->cap)) {
        *out = best;
        return NULL;
    }
    if (lane->nconns < lane->cap) {
        keel_error *err = conn_new(lane, out);
        if (!err || !(best || any))
            return err;
        keel_error_free(err); /* a connection we have still serves */
    }
    *out = best ? best : any;
    return NULL;
}

/* ---- the statement ---------------------------------------------------------------- */

/* Sends one statement on c and waits for its result. */
static keel_error *run_on(keel_req *req, pipe_conn *c, const char *sql, const keel_pipe_params *p, PGresult **out,
                          bool *lost)
{
    *out = NULL;
    *lost = false;
    if (c->broken) {
        *lost = true;
        return keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", keel_pool_name(c->lane->pool));
    }
    /* In the request's arena: it outlives this frame only in the queues,
     * until its result is in. */
    pipe_op *op = keel_arena_calloc(&req->arena, 1, sizeof *op);
    if (!op)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    op->req = req;
    op->sql = sql;
    op->params = p;
    c->inflight++;
    busy_sync(c);
    if (c->connecting) {
        queue_push(&c->wait_head, &c->wait_tail, op);
    } else if (!op_send(c, op)) {
        queue_push(&c->head, &c->tail, op);
        conn_fail(c, lost_error(c));
    } else if (c->events != (EPOLLIN | EPOLLOUT)) {
        int r = PQflush(c->pg); /* nothing left to send: no system call */
        if (r < 0)
            conn_fail(c, lost_error(c));
        else
            set_events(c, r > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
    }
    op->waiting = true;
    while (!op->done)
        keel__coro_yield(req->coro);
    *lost = op->lost;
    if (op->err) {
        PQclear(op->result);
        return op->err;
    }
    *out = op->result;
    return NULL;
}

keel_error *keel__pipe_run(keel_req *req, keel_pool *pool, const char *sql, const keel_pipe_params *p,
                           PGresult **out, bool *lost)
{
    *out = NULL;
    *lost = false;
    keel_error *err = NULL;
    pipe_lane *lane = lane_for(req->loop, pool, &err);
    pipe_conn *c = NULL;
    if (lane)
        err = pick(lane, &c);
    if (err)
        return err;
    if (c)
        return run_on(req, c, sql, p, out, lost);
    /* Every connection of the lane is held alone (transactions, row
     * streams) and the lane is full: wait for one as they do, up to the
     * checkout timeout, and give it back after this one statement. */
    keel_pipe_conn *held;
    if ((err = keel__pipe_reserve(req, pool, &held)) != NULL)
        return err;
    err = run_on(req, held, sql, p, out, lost);
    keel__pipe_release(held, *lost);
    return err;
}

keel_error *keel__pipe_run_on(keel_req *req, keel_pipe_conn *c, const char *sql, const keel_pipe_params *p,
                              PGresult **out, bool *lost)
{
    return run_on(req, c, sql, p, out, lost);
}

/* ---- connections held alone ------------------------------------------------------- */

static void on_reserve_timeout(keel_timer *t)
{
    pipe_waiter *w = (pipe_waiter *)((char *)t - offsetof(pipe_waiter, timer));
    for (pipe_waiter **p = &w->lane->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    waiter_finish(w, NULL,
                  keel_error_new(KEEL_UNAVAILABLE, "database \"%s\": no connection available within %u ms",
                                 keel_pool_name(w->lane->pool), keel_pool_checkout_ms(w->lane->pool)));
}

keel_error *keel__pipe_reserve(keel_req *req, keel_pool *pool, keel_pipe_conn **out)
{
    *out = NULL;
    keel_error *err = NULL;
    pipe_lane *lane = lane_for(req->loop, pool, &err);
    if (!lane)
        return err;
    for (pipe_conn *c = lane->conns; c; c = c->next)
        if (!c->reserved && !c->connecting && !c->inflight) {
            c->reserved = true;
            busy_sync(c);
            keel_pool_note_checkout(pool, 0);
            *out = c;
            return NULL;
        }
    pipe_waiter w = {.req = req, .lane = lane, .timer = {.fn = on_reserve_timeout}};
    struct timespec t0 = *keel__loop_now(lane->loop);
    bool queued = false;
    if (lane->nconns < lane->cap) {
        pipe_conn *c;
        if ((err = conn_new(lane, &c)) != NULL)
            return err;
        c->reserved = true;
        busy_sync(c);
        c->reserver = &w;
    } else {
        pipe_waiter **tail = &lane->waiters;
        while (*tail)
            tail = &(*tail)->next;
        *tail = &w;
        keel__loop_timer_arm(lane->loop, &w.timer, keel_pool_checkout_ms(pool));
        keel_pool_note_waiting(pool, 1);
        queued = true;
    }
    while (!w.done)
        keel__coro_yield(req->coro);
    if (queued)
        keel_pool_note_waiting(pool, -1);
    *out = w.got;
    if (!w.err) {
        const struct timespec *t1 = keel__loop_now(lane->loop);
        int64_t ns = (int64_t)(t1->tv_sec - t0.tv_sec) * 1000000000 + (t1->tv_nsec - t0.tv_nsec);
        keel_pool_note_checkout(pool, ns > 0 ? (uint64_t)ns : 0);
    }
    return w.err;
}

keel_error *keel__pipe_stream_start(keel_req *req, keel_pipe_conn *c, const char *sql, const keel_pipe_params *p)
{
    if (c->broken)
        return keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", keel_pool_name(c->lane->pool));
    /* Not prepared: single-row mode applies only when the query itself is
     * the first thing in libpq's queue, and a Prepare would be. */
    int flushed = -1;
    if (PQsendQueryParams(c->pg, sql, p->n, NULL, p->values, p->lengths, p->formats, 0) &&
        PQpipelineSync(c->pg))
        flushed = PQflush(c->pg);
    if (flushed < 0) {
        keel_error *err = lost_error(c);
        keel_error *copy = keel_error_copy(err);
        conn_fail(c, err);
        return copy;
    }
    PQsetSingleRowMode(c->pg); /* if refused, whole results come all the same */
    c->streaming = true;
    c->stream_owner = req;
    set_events(c, flushed > 0 ? EPOLLIN | EPOLLOUT : EPOLLIN);
    return NULL;
}

/* The stream is over: the connection reads results for statements again. */
static void stream_end(pipe_conn *c)
{
    c->streaming = false;
    set_events(c, (c->events & EPOLLOUT) | EPOLLIN);
}

PGresult *keel__pipe_stream_next(keel_req *req, keel_pipe_conn *c, bool *end)
{
    *end = false;
    int nulls = 0;
    for (;;) {
        if (c->broken || !c->streaming)
            return NULL;
        if (!PQisBusy(c->pg)) {
            PGresult *r = PQgetResult(c->pg);
            if (!r) {
                if (++nulls > 1) { /* nothing more will come: treat as the end */
                    stream_end(c);
                    *end = true;
                    return NULL;
                }
                continue;
            }
            if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
                PQclear(r);
                stream_end(c);
                *end = true;
                return NULL;
            }
            return r;
        }
        set_events(c, (c->events & EPOLLOUT) | EPOLLIN);
        c->stream_waiting = true;
        keel__coro_yield(req->coro);
        c->stream_waiting = false;
    }
}

void keel__pipe_release(keel_pipe_conn *c, bool broken)
{
    if (c->broken) {
        free(c);
        return;
    }
    c->reserved = false;
    busy_sync(c);
    if (broken || c->streaming || c->inflight || PQstatus(c->pg) != CONNECTION_OK ||
        PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        conn_fail(c, keel_error_new(KEEL_UNAVAILABLE, "connection closed"));
        return;
    }
    set_events(c, EPOLLIN);
    if (c->lane->waiters)
        hand_over(c);
}

void keel__pipes_free(struct keel_pipes *pipes)
{
    if (!pipes)
        return;
    while (pipes->lanes) {
        pipe_lane *l = pipes->lanes;
        pipes->lanes = l->next;
        while (l->conns) {
            pipe_conn *c = l->conns;
            l->conns = c->next;
            if (c->resolving)
                resolve_abandon(l->loop, c);
            keel_pconn_close(c->pc);
            free(c);
        }
        free(l);
    }
    free(pipes);
}

/* loop.c - one event loop per I/O thread (see loop.h).
 *
 * Each turn: wait in epoll (bounded by libmicrohttpd's next timeout), call the
 * watches that fired, then let libmicrohttpd process its connections when its
 * epoll fd fired or its timeout came.  Stopping is the loop's own business: once
 * the app is stopping, the loop stops accepting (its listening socket is closed,
 * so the kernel sends new connections to no one), keeps serving what it has
 * (responses then carry Connection: close), and ends when no request is left,
 * or when the grace period is over. */
#include "http/loop.h"
#include "clock.h"
#include "core.h"
#include "http/coro.h"
#include "observe/trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* Once nothing is in flight, idle keep-alive connections get this long to
 * send a last request before the daemon closes them. */
#define DRAIN_IDLE_MS 100
#define MAX_EVENTS 128

struct keel_loop {
    keel_app *app;
    unsigned index;
    struct MHD_Daemon *daemon;
    pthread_t thread;
    bool ran;               /* its thread was started once */
    bool started;           /* its thread is not joined yet */
    bool drained;
    int epfd;
    int wake_fd;
    keel_watch wake_watch;
    keel_watch daemon_watch;
    bool daemon_ready;      /* the daemon's epoll fd fired this turn */
    unsigned inflight;      /* requests begun and not yet completed */
    bool quiesced;
    struct timespec quiesced_at;
    struct timespec idle_since; /* when inflight last dropped to 0 while quiesced */
    keel_coro_pool *stacks;
    keel_req **ready;           /* coroutines to run this turn (loop thread only) */
    size_t nready, ready_cap;
    keel_req **running;         /* the batch being run */
    size_t running_cap;
    struct timespec now;        /* when this turn began */
    keel_timer *timers;         /* armed deadlines, unsorted (there are few) */
    struct keel_pipes *pipes;
    struct keel_lingers *lingers;
};

static void on_wake(keel_watch *w, uint32_t events)
{
    (void)events;
    keel_loop *loop = (keel_loop *)((char *)w - offsetof(keel_loop, wake_watch));
    uint64_t n;
    while (read(loop->wake_fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
    loop->daemon_ready = true; /* a worker may have resumed a connection */
}

void keel__loop_ready(keel_loop *loop, keel_req *req)
{
    if (loop->nready == loop->ready_cap) {
        size_t cap = loop->ready_cap ? loop->ready_cap * 2 : 64;
        keel_req **grown = realloc(loop->ready, cap * sizeof *grown);
        if (!grown) {
            keel_log(KEEL_LOG_ERROR, "out of memory resuming request %s", req->id);
            abort(); /* the request would hang: a clear stop beats a silent one */
        }
        loop->ready = grown;
        loop->ready_cap = cap;
    }
    loop->ready[loop->nready++] = req;
}

/* Runs the coroutines made ready, including those made ready meanwhile. */
static void run_ready(keel_loop *loop)
{
    while (loop->nready) {
        keel_req **batch = loop->ready;
        size_t n = loop->nready, cap = loop->ready_cap;
        loop->ready = loop->running;
        loop->ready_cap = loop->running_cap;
        loop->nready = 0;
        loop->running = batch;
        loop->running_cap = cap;
        for (size_t i = 0; i < n; i++)
            keel__loop_run(batch[i]);
    }
}

const struct timespec *keel__loop_now(const keel_loop *loop)
{
    return &loop->now;
}

struct keel_pipes **keel__loop_pipes(keel_loop *loop)
{
    return &loop->pipes;
}

struct keel_lingers **keel__loop_lingers(keel_loop *loop)
{
    return &loop->lingers;
}

void keel__loop_timer_arm(keel_loop *loop, keel_timer *t, unsigned ms)
{
    if (t->armed)
        keel__loop_timer_cancel(loop, t);
    t->at = keel__deadline_ms(CLOCK_MONOTONIC, ms);
    t->prev = NULL;
    t->next = loop->timers;
    if (loop->timers)
        loop->timers->prev = t;
    loop->timers = t;
    t->armed = true;
}

void keel__loop_timer_cancel(keel_loop *loop, keel_timer *t)
{
    if (!t->armed)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        loop->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->armed = false;
}

/* Fires the timers whose deadline has passed. */
static void run_timers(keel_loop *loop)
{
    for (keel_timer *t = loop->timers; t;) {
        keel_timer *next = t->next;
        if (keel__ms_between(&t->at, &loop->now) >= 0) {
            keel__loop_timer_cancel(loop, t);
            t->fn(t);
            next = loop->timers; /* the list may have changed: start over */
        }
        t = next;
    }
}

keel_coro *keel__loop_coro_new(keel_loop *loop, void (*fn)(void *), void *arg)
{
    return keel__coro_new(loop->stacks, fn, arg);
}

void keel__loop_kick(keel_loop *loop)
{
    loop->daemon_ready = true;
}

void keel__loop_run(keel_req *req)
{
    const keel_route *route = req->route;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    keel_req *outer = keel__trace_set_current_req(req);
    keel__coro_resume(req->coro);
    keel__trace_set_current_req(outer);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t held = keel__ms_between(&t0, &t1);
    if (held > KEEL_HOLD_WARN_MS && route &&
        !atomic_exchange((atomic_bool *)&route->warned_blocking, true))
        keel_log(KEEL_LOG_WARN,
                 "endpoint %s held its I/O thread for %lld ms without waiting; every other connection of "
                 "that thread waited too. If it calls blocking code, mark it KEEL_BLOCKING",
                 route->label, (long long)held);
}

static void on_daemon(keel_watch *w, uint32_t events)
{
    (void)events;
    keel_loop *loop = (keel_loop *)((char *)w - offsetof(keel_loop, daemon_watch));
    loop->daemon_ready = true;
}

keel_error *keel__loop_new(keel_app *app, unsigned index, keel_loop **out)
{
    *out = NULL;
    keel_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    loop->app = app;
    loop->index = index;
    loop->wake_watch.fn = on_wake;
    loop->daemon_watch.fn = on_daemon;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    /* Idle stacks kept for reuse: enough for a busy thread's concurrent
     * handlers without mapping and unmapping on every request. */
    loop->stacks = keel__coro_pool_new(0, 256);
    keel_error *err = NULL;
    if (!loop->stacks)
        err = keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    else if (loop->epfd < 0 || loop->wake_fd < 0)
        err = keel_error_new(KEEL_INTERNAL, "cannot create the event loop: %s", strerror(errno));
    if (!err)
        err = keel__loop_watch(loop, loop->wake_fd, EPOLLIN, &loop->wake_watch);
    if (err) {
        keel__loop_free(loop);
        return err;
    }
    *out = loop;
    return NULL;
}

keel_error *keel__loop_attach(keel_loop *loop, struct MHD_Daemon *daemon)
{
    loop->daemon = daemon;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info)
        return keel_error_new(KEEL_INTERNAL, "libmicrohttpd gave no epoll fd");
    return keel__loop_watch(loop, info->epoll_fd, EPOLLIN, &loop->daemon_watch);
}

keel_app *keel__loop_app(const keel_loop *loop)
{
    return loop->app;
}

void keel__loop_request_started(keel_loop *loop)
{
    loop->inflight++;
}

void keel__loop_request_finished(keel_loop *loop)
{
    if (--loop->inflight == 0 && loop->quiesced)
        clock_gettime(CLOCK_MONOTONIC, &loop->idle_since);
}

keel_error *keel__loop_watch(keel_loop *loop, int fd, uint32_t events, keel_watch *w)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return keel_error_new(KEEL_INTERNAL, "epoll_ctl: %s", strerror(errno));
    return NULL;
}

keel_error *keel__loop_rewatch(keel_loop *loop, int fd, uint32_t events, keel_watch *w)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
        return keel_error_new(KEEL_INTERNAL, "epoll_ctl: %s", strerror(errno));
    return NULL;
}

void keel__loop_unwatch(keel_loop *loop, int fd)
{
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void keel__loop_wake(keel_loop *loop)
{
    uint64_t one = 1;
    while (write(loop->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* Stops accepting: the listening socket leaves the daemon and is closed. */
static void quiesce(keel_loop *loop)
{
    MHD_socket fd = MHD_quiesce_daemon(loop->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    loop->quiesced = true;
    clock_gettime(CLOCK_MONOTONIC, &loop->quiesced_at);
    loop->idle_since = loop->quiesced_at;
}

static unsigned open_connections(const keel_loop *loop)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(loop->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return info ? info->num_connections : 0;
}

/* While stopping: true when the loop is done (drained says how). */
static bool drain_done(keel_loop *loop)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (loop->inflight == 0 &&
        (open_connections(loop) == 0 || keel__ms_between(&loop->idle_since, &now) >= DRAIN_IDLE_MS)) {
        loop->drained = true;
        return true;
    }
    if (keel__ms_between(&loop->quiesced_at, &now) >= (int64_t)loop->app->cfg.shutdown_grace_ms) {
        keel_log(KEEL_LOG_WARN, "shutdown: %u request(s) still running on I/O thread %u after %u ms",
                 loop->inflight, loop->index, loop->app->cfg.shutdown_grace_ms);
        loop->drained = false;
        return true;
    }
    return false;
}

/* How long epoll may sleep: libmicrohttpd's next timeout, and a short tick
 * while draining. */
static int wait_ms(keel_loop *loop)
{
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    int ms = -1;
    if (MHD_get_timeout(loop->daemon, &mhd_ms) == MHD_YES)
        ms = mhd_ms > 60000 ? 60000 : (int)mhd_ms;
    if (loop->quiesced && (ms < 0 || ms > 10))
        ms = 10;
    for (const keel_timer *t = loop->timers; t; t = t->next) {
        int64_t left = keel__ms_between(&loop->now, &t->at) + 1;
        if (left < 0)
            left = 0;
        if (ms < 0 || left < ms)
            ms = (int)left;
    }
    return ms;
}

static void *loop_main(void *arg)
{
    keel_loop *loop = arg;
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        if (!loop->quiesced && atomic_load_explicit(&loop->app->stopping, memory_order_acquire))
            quiesce(loop);
        if (loop->quiesced && drain_done(loop))
            break;
        clock_gettime(CLOCK_MONOTONIC, &loop->now);
        int timeout = wait_ms(loop);
        int n = epoll_wait(loop->epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            keel_log(KEEL_LOG_ERROR, "I/O thread %u: epoll_wait: %s", loop->index, strerror(errno));
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &loop->now);
        loop->daemon_ready = n == 0; /* a timeout is libmicrohttpd's too */
        for (int i = 0; i < n; i++) {
            keel_watch *w = events[i].data.ptr;
            w->fn(w, events[i].events);
        }
        if (loop->timers)
            run_timers(loop);
        run_ready(loop);
        if (loop->daemon_ready)
            MHD_run(loop->daemon);
    }
    if (loop->drained) {
        MHD_stop_daemon(loop->daemon);
        loop->daemon = NULL;
        keel__pipes_free(loop->pipes); /* nothing is in flight any more */
        loop->pipes = NULL;
    }
    return NULL;
}

keel_error *keel__loop_start(keel_loop *loop)
{
    if (pthread_create(&loop->thread, NULL, loop_main, loop) != 0)
        return keel_error_new(KEEL_INTERNAL, "cannot start I/O thread %u", loop->index);
    loop->started = loop->ran = true;
    return NULL;
}

bool keel__loop_join(keel_loop *loop)
{
    if (!loop->ran)
        return true; /* never served: nothing can be in flight */
    if (loop->started) {
        pthread_join(loop->thread, NULL);
        loop->started = false;
    }
    return loop->drained;
}

void keel__loop_free(keel_loop *loop)
{
    if (!loop)
        return;
    if (loop->daemon)
        MHD_stop_daemon(loop->daemon);
    if (loop->epfd >= 0)
        close(loop->epfd);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    keel__lingers_free(loop->lingers);
    keel__coro_pool_free(loop->stacks);
    free(loop->ready);
    free(loop->running);
    free(loop);
}

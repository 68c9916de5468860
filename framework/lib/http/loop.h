/* loop.h - private: one event loop per I/O thread.
 *
 * A loop owns one epoll set and everything registered in it: its
 * libmicrohttpd daemon (external epoll, with a listening socket of its own),
 * an eventfd other threads use to wake it, and the file descriptors that code
 * running on the loop watches (PostgreSQL sockets).  Everything a loop owns is
 * touched only by its own thread, except keel__loop_wake. */
#ifndef KEEL_LOOP_H
#define KEEL_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <microhttpd.h>

#include "keel/error.h"

typedef struct keel_app keel_app;
typedef struct keel_loop keel_loop;

/* A registration in a loop's epoll set: fn runs on the loop's thread with the
 * epoll events that fired.  The watch must stay where it is until removed. */
typedef struct keel_watch {
    void (*fn)(struct keel_watch *w, uint32_t events);
} keel_watch;

/* Creates a loop with no daemon and no thread yet.  The caller owns *out. */
keel_error *keel__loop_new(keel_app *app, unsigned index, keel_loop **out);

/* Gives the loop its daemon (started with MHD_USE_EPOLL and no thread of its
 * own): the loop runs it, stops it and frees it from now on. */
keel_error *keel__loop_attach(keel_loop *loop, struct MHD_Daemon *daemon);

/* Starts the loop's thread. */
keel_error *keel__loop_start(keel_loop *loop);

/* Any thread: makes the loop look at its state (stopping, queued work) soon. */
void keel__loop_wake(keel_loop *loop);

/* Waits for the loop's thread to end (after keel_app_stop set the app's
 * stopping flag and woke it).  True when the loop drained: every request on
 * it finished and its daemon was stopped; false when the grace period ran out
 * with requests still running (the daemon is then left to the process exit). */
bool keel__loop_join(keel_loop *loop);

/* Frees a loop that never started or whose join returned true. */
void keel__loop_free(keel_loop *loop);

/* The loop's thread only: a request began / finished on this loop. */
void keel__loop_request_started(keel_loop *loop);
void keel__loop_request_finished(keel_loop *loop);

/* The loop's thread only: adds, changes or removes w for fd. */
keel_error *keel__loop_watch(keel_loop *loop, int fd, uint32_t events, keel_watch *w);
keel_error *keel__loop_rewatch(keel_loop *loop, int fd, uint32_t events, keel_watch *w);
void keel__loop_unwatch(keel_loop *loop, int fd);

keel_app *keel__loop_app(const keel_loop *loop);

typedef struct keel_req keel_req;

/* The loop's thread only: a coroutine for fn(arg) on one of the loop's
 * stacks; NULL when none can be had. */
struct keel_coro *keel__loop_coro_new(keel_loop *loop, void (*fn)(void *), void *arg);

/* The loop's thread only: runs req's coroutine until it waits or finishes.
 * A run that keeps the thread longer than KEEL_HOLD_WARN_MS is logged, once
 * per endpoint, naming it. */
#define KEEL_HOLD_WARN_MS 50
void keel__loop_run(keel_req *req);

/* The loop's thread only: libmicrohttpd has work (a connection resumed). */
void keel__loop_kick(keel_loop *loop);

/* The loop's thread only: req's coroutine runs again this turn, after the
 * watches (what it waited for is there). */
void keel__loop_ready(keel_loop *loop, keel_req *req);

/* The loop's thread only: the time this turn began (CLOCK_MONOTONIC). */
const struct timespec *keel__loop_now(const keel_loop *loop);

/* A deadline on the loop: fn runs on the loop's thread once it has passed,
 * unless cancelled first.  The timer must stay where it is while armed. */
typedef struct keel_timer {
    struct keel_timer *prev, *next;
    struct timespec at;
    void (*fn)(struct keel_timer *t);
    bool armed;
} keel_timer;
void keel__loop_timer_arm(keel_loop *loop, keel_timer *t, unsigned ms);
void keel__loop_timer_cancel(keel_loop *loop, keel_timer *t);

/* The loop's database connections (pipeline.c): a slot the loop frees with
 * keel__pipes_free when it ends. */
struct keel_pipes;
struct keel_pipes **keel__loop_pipes(keel_loop *loop);
void keel__pipes_free(struct keel_pipes *pipes);

/* linger.c: the loop's thread only.  Takes fd, a dup of a connection's socket
 * whose answer went out before its body was read, shuts its sending side and
 * drops what still arrives for a short while before closing it, so that the
 * client reads the answer instead of a reset.  Never fails: a socket that
 * cannot linger is closed at once. */
void keel__linger(keel_loop *loop, int fd);
struct keel_lingers;
struct keel_lingers **keel__loop_lingers(keel_loop *loop);
void keel__lingers_free(struct keel_lingers *lingers);

#endif

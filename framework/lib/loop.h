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

#endif

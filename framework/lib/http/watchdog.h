/* watchdog.h - private: per-connection deadlines that trickling cannot
 * reset (watchdog.c).  The loop's thread only. */
#ifndef KEEL_WATCHDOG_H
#define KEEL_WATCHDOG_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <microhttpd.h>

#include "http/loop.h"

typedef enum {
    KEEL_WD_OFF = 0,   /* the app's time (a handler runs), or a mounted handler's */
    KEEL_WD_HEADERS,   /* waiting for a request's headers: a fixed deadline */
    KEEL_WD_BODY,      /* receiving a body: a minimum rate */
    KEEL_WD_SENDING    /* sending a response: a minimum rate */
} keel_wd_phase;

typedef struct keel_watchdog {
    keel_timer timer;
    keel_loop *loop;
    struct MHD_Connection *conn;
    keel_wd_phase phase;
    struct timespec start;   /* when the phase began, moved on by pauses */
    struct timespec paused;  /* when a pause began; tv_sec 0: not paused */
    uint64_t progress;       /* bytes moved in this phase */
    unsigned headers_ms;     /* how long this HEADERS phase may take */
} keel_watchdog;

/* Starts watching conn (a connection just accepted): its first request's
 * headers must be complete within the app's header timeout. */
void keel__watchdog_start(keel_watchdog *w, keel_loop *loop, struct MHD_Connection *conn);

/* Enters phase now, with no progress yet.  KEEL_WD_HEADERS takes extra_ms
 * more than the header timeout (a keep-alive connection's idle time). */
void keel__watchdog_phase(keel_watchdog *w, keel_wd_phase phase, unsigned extra_ms);

/* bytes more were received or sent. */
void keel__watchdog_progress(keel_watchdog *w, size_t bytes);

/* Time the app spends (a streamed body waiting for PostgreSQL) is not the
 * client's: it does not count against the rate. */
void keel__watchdog_pause(keel_watchdog *w);
void keel__watchdog_resume(keel_watchdog *w);

/* The connection closes: no more deadlines. */
void keel__watchdog_stop(keel_watchdog *w);

#endif

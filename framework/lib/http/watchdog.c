/* watchdog.c - per-connection deadlines that trickling cannot reset.
 *
 * libmicrohttpd's connection timeout is an idle timeout: a client sending
 * or reading one byte every few seconds keeps a connection, its slot and
 * whatever its answer holds in memory for as long as it likes.  Each
 * connection's watchdog gives it instead:
 *   - a deadline for a request's headers (KEEL_HEADER_TIMEOUT_MS from the
 *     connection's start, or from the end of the previous answer plus the
 *     idle timeout on a kept-alive connection);
 *   - a minimum rate for a body being received and an answer being sent:
 *     after KEEL_RATE_GRACE_MS, at least KEEL_MIN_RATE bytes a second on
 *     average since the phase began (Apache's mod_reqtimeout rule);
 * and no deadline while the app works (a handler runs, a mounted handler
 * owns the connection, a streamed body waits for PostgreSQL).
 *
 * A connection past its deadline is shut down (shutdown(2) on its socket):
 * libmicrohttpd sees the hang-up on its next turn and closes it the usual
 * way, so its requests complete and are counted as they always are. */
#include "core.h"
#include "http/watchdog.h"
#include "clock.h"
#include "observe/metrics.h"

#include <sys/socket.h>

static const keel_config *cfg_of(const keel_watchdog *w)
{
    return &keel__loop_app(w->loop)->cfg;
}

/* How long the phase may have taken by now, given its progress. */
static int64_t allowed_ms(const keel_watchdog *w)
{
    const keel_config *c = cfg_of(w);
    if (w->phase == KEEL_WD_HEADERS)
        return w->headers_ms;
    return (int64_t)c->rate_grace_ms + (int64_t)(w->progress * 1000 / c->min_rate);
}

static void cut(keel_watchdog *w)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(w->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        /* Reset rather than finish: what the kernel still holds for a slow
         * reader is dropped with the connection. */
        struct linger reset = {1, 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        shutdown(ci->connect_fd, SHUT_RDWR);
    }
    keel__metrics_connection_cut(keel__loop_app(w->loop), w->phase == KEEL_WD_HEADERS ? "headers"
                                                          : w->phase == KEEL_WD_BODY  ? "body"
                                                                                      : "response");
    w->phase = KEEL_WD_OFF;
}

static void check(keel_timer *t)
{
    keel_watchdog *w = (keel_watchdog *)((char *)t - offsetof(keel_watchdog, timer));
    if (w->phase == KEEL_WD_OFF || w->paused.tv_sec)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t left = allowed_ms(w) - keel__ms_between(&w->start, &now);
    if (left <= 0) {
        cut(w);
        return;
    }
    keel__loop_timer_arm(w->loop, &w->timer, (unsigned)(left < 50 ? 50 : left));
}

static bool enabled(const keel_watchdog *w, keel_wd_phase phase)
{
    return phase == KEEL_WD_HEADERS || (phase != KEEL_WD_OFF && cfg_of(w)->min_rate > 0);
}

void keel__watchdog_start(keel_watchdog *w, keel_loop *loop, struct MHD_Connection *conn)
{
    w->loop = loop;
    w->conn = conn;
    w->timer.fn = check;
    w->timer.armed = false;
    keel__watchdog_phase(w, KEEL_WD_HEADERS, 0);
}

/* Phases change several times per request: a change writes a few fields and
 * moves the timer only when the new deadline comes before the armed one.
 * The timer, when it fires, looks at whatever phase is current and arms
 * itself again for that phase's deadline (or not at all when it is off). */
void keel__watchdog_phase(keel_watchdog *w, keel_wd_phase phase, unsigned extra_ms)
{
    if (!w->loop)
        return;
    w->phase = phase;
    w->progress = 0;
    w->paused.tv_sec = 0;
    w->headers_ms = cfg_of(w)->header_timeout_ms + extra_ms;
    if (!enabled(w, phase)) {
        w->phase = KEEL_WD_OFF;
        return;
    }
    w->start = *keel__loop_now(w->loop);
    int64_t ms = allowed_ms(w);
    struct timespec due = keel__ts_plus_ms(w->start, (uint64_t)ms);
    if (!w->timer.armed || keel__ms_between(&due, &w->timer.at) > 0)
        keel__loop_timer_arm(w->loop, &w->timer, (unsigned)ms);
}

void keel__watchdog_progress(keel_watchdog *w, size_t bytes)
{
    w->progress += bytes;
}

void keel__watchdog_pause(keel_watchdog *w)
{
    if (w->phase != KEEL_WD_OFF && !w->paused.tv_sec)
        clock_gettime(CLOCK_MONOTONIC, &w->paused);
}

void keel__watchdog_resume(keel_watchdog *w)
{
    if (!w->paused.tv_sec)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t ms = keel__ms_between(&w->paused, &now);
    w->start = keel__ts_plus_ms(w->start, ms > 0 ? (uint64_t)ms : 0);
    w->paused.tv_sec = 0;
    if (w->phase != KEEL_WD_OFF && !w->timer.armed)
        check(&w->timer);
}

void keel__watchdog_stop(keel_watchdog *w)
{
    if (w->loop)
        keel__loop_timer_cancel(w->loop, &w->timer);
    w->phase = KEEL_WD_OFF;
}

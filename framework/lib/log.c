/* log.c - the process's structured log: JSON lines on one file descriptor.
 *
 * Lines are appended to a buffer under a short lock and written by a flusher
 * thread every 50 ms or when the buffer fills, so a request's log line costs a
 * copy rather than a system call.  Before keel__log_open (and after close)
 * lines are written directly. */
#include "core.h"
#include "clock.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_BUFFER_SIZE (256 * 1024)
#define LOG_FLUSH_MS 50

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t flusher;
    bool running;
    bool stopping;
    bool writing;             /* the flusher is writing `spare` out */
    int fd;
    size_t len;
    char *data;               /* where lines are appended */
    char *spare;              /* the other buffer: written out without the lock */
    char buffers[2][LOG_BUFFER_SIZE];
} sink = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, false, false, 2, 0, NULL, NULL, {{0}}};

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return; /* nowhere to report a failing log */
        p += w;
        n -= (size_t)w;
    }
}

static void buffers_ready(void)
{
    if (!sink.data) {
        sink.data = sink.buffers[0];
        sink.spare = sink.buffers[1];
    }
}

/* Writes out what is buffered; called with the lock held.  The buffers are
 * swapped and the write happens with the lock released, so request threads
 * never wait for the disk or the terminal. */
static void flush_locked(void)
{
    buffers_ready();
    while (sink.writing)
        pthread_cond_wait(&sink.wake, &sink.lock);
    if (!sink.len)
        return;
    char *out = sink.data;
    size_t n = sink.len;
    sink.data = sink.spare;
    sink.spare = out;
    sink.len = 0;
    sink.writing = true;
    pthread_mutex_unlock(&sink.lock);
    write_all(sink.fd, out, n);
    pthread_mutex_lock(&sink.lock);
    sink.writing = false;
    pthread_cond_broadcast(&sink.wake);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sink.lock);
    while (!sink.stopping) {
        struct timespec until = keel__deadline_ms(CLOCK_REALTIME, LOG_FLUSH_MS);
        pthread_cond_timedwait(&sink.wake, &sink.lock, &until);
        flush_locked();
    }
    flush_locked();
    pthread_mutex_unlock(&sink.lock);
    return NULL;
}

void keel__log_open(int fd)
{
    pthread_mutex_lock(&sink.lock);
    sink.fd = fd;
    sink.stopping = false;
    if (!sink.running && pthread_create(&sink.flusher, NULL, flusher_main, NULL) == 0)
        sink.running = true;
    pthread_mutex_unlock(&sink.lock);
}

void keel__log_close(void)
{
    pthread_mutex_lock(&sink.lock);
    bool was_running = sink.running;
    sink.stopping = true;
    sink.running = false;
    pthread_cond_signal(&sink.wake);
    pthread_mutex_unlock(&sink.lock);
    if (was_running)
        pthread_join(sink.flusher, NULL);
}

/* Appends one complete line (with its newline). */
static void emit_line(const char *line, size_t n)
{
    pthread_mutex_lock(&sink.lock);
    buffers_ready();
    if (!sink.running || n > LOG_BUFFER_SIZE) {
        write_all(sink.fd, line, n);
    } else {
        if (sink.len + n > LOG_BUFFER_SIZE)
            flush_locked();
        memcpy(sink.data + sink.len, line, n);
        sink.len += n;
    }
    pthread_mutex_unlock(&sink.lock);
}

/* Appends the decimal digits of v. */
static void append_uint(keel_buf *b, uint64_t v)
{
    char digits[24];
    size_t n = sizeof digits;
    do {
        digits[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    keel_buf_append(b, digits + n, sizeof digits - n);
}

/* Appends {"time":"...","level":"..." to b.  The date and time up to the
 * second are formatted once per second per thread (a cache of the clock, not
 * of any request), so a log line costs no strftime. */
static void begin_line(keel_buf *b, const char *level)
{
    static __thread time_t cached_second = -1;
    static __thread char cached_stamp[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != cached_second) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        strftime(cached_stamp, sizeof cached_stamp, "%Y-%m-%dT%H:%M:%S.", &tm);
        cached_second = now.tv_sec;
    }
    char micros[7];
    long us = now.tv_nsec / 1000;
    for (int i = 5; i >= 0; i--, us /= 10)
        micros[i] = (char)('0' + us % 10);
    micros[6] = 'Z';
    keel_buf_puts(b, "{\"time\":\"");
    keel_buf_puts(b, cached_stamp);
    keel_buf_append(b, micros, sizeof micros);
    keel_buf_puts(b, "\",\"level\":\"");
    keel_buf_puts(b, level);
    keel_buf_putc(b, '"');
}

static void end_line(keel_buf *b)
{
    keel_buf_puts(b, "}\n");
    if (!b->failed)
        emit_line(b->data, b->len);
}

static const char *level_name(keel_log_level level)
{
    switch (level) {
    case KEEL_LOG_DEBUG: return "debug";
    case KEEL_LOG_INFO: return "info";
    case KEEL_LOG_WARN: return "warn";
    default: return "error";
    }
}

void keel_log(keel_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1;
    char mem[2048];
    keel_arena arena;
    keel_buf b;
    keel_arena_init(&arena, mem, sizeof mem);
    keel_buf_init(&b, &arena);
    begin_line(&b, level_name(level));
    keel_buf_puts(&b, ",\"msg\":");
    keel__json_append_string(&b, msg, len);
    end_line(&b);
    keel_arena_release(&arena);
}

void keel_log_error(const char *context, const keel_error *err)
{
    if (!err)
        return;
    keel_log(KEEL_LOG_ERROR, "%s: %s: %s%s%s", context, keel_code_name(err->code), err->message,
             err->cause ? ": " : "", err->cause ? err->cause : "");
}

void keel__log_request(const keel_req *req, unsigned status, int64_t duration_us)
{
    char mem[1024];
    keel_arena arena;
    keel_buf b;
    keel_arena_init(&arena, mem, sizeof mem);
    keel_buf_init(&b, &arena);
    begin_line(&b, "info");
    keel_buf_puts(&b, ",\"msg\":\"request\",\"request_id\":\"");
    keel_buf_puts(&b, req->id); /* validated: no characters that need escaping */
    keel_buf_puts(&b, "\",\"method\":");
    keel__json_append_string(&b, req->method, strlen(req->method));
    keel_buf_puts(&b, ",\"route\":");
    if (req->route)
        keel__json_append_string(&b, req->route->ep->path, strlen(req->route->ep->path));
    else
        keel_buf_puts(&b, "null");
    if (req->route) {
        keel_buf_puts(&b, ",\"endpoint\":\"");
        keel_buf_puts(&b, req->route->label);
        keel_buf_putc(&b, '"');
    }
    keel_buf_puts(&b, ",\"status\":");
    append_uint(&b, status);
    keel_buf_puts(&b, ",\"duration_us\":");
    append_uint(&b, duration_us > 0 ? (uint64_t)duration_us : 0);
    if (req->trace_hex[0]) {
        keel_buf_puts(&b, ",\"trace_id\":\"");
        keel_buf_puts(&b, req->trace_hex);
        keel_buf_putc(&b, '"');
    }
    end_line(&b);
    keel_arena_release(&arena);
}

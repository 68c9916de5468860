/* stream.c - streamed response bodies (keel_resp_stream).
 *
 * libmicrohttpd asks for the next piece of a streamed body from its own
 * processing, outside any handler.  The fill function a handler gave may
 * read a row stream or run a statement, which waits for PostgreSQL: so each
 * fill runs as a coroutine on the connection's I/O thread, like the handler
 * itself.  When it waits, the connection is suspended and libmicrohttpd is
 * told "nothing yet"; when the fill returns, the connection is resumed and
 * the bytes are handed over at libmicrohttpd's next call.
 *
 * The fill writes into a buffer of the stream's own (libmicrohttpd's buffer
 * is only lent for the duration of one call), copied out on delivery. */
#include "core.h"
#include "http/loop.h"
#include "http/stream.h"
#include "http/watchdog.h"

#include <stdlib.h>
#include <string.h>

#define STREAM_CHUNK (64 * 1024)

struct keel_stream {
    keel_req *req;           /* NULL once the request completed */
    keel_stream_fn fn;
    void *cls;
    void (*free_cls)(void *);
    char *buf;               /* STREAM_CHUNK bytes, what the fill writes */
    uint64_t pos;            /* body offset of buf[0] */
    size_t want;             /* how much the running fill may write */
    size_t len;              /* bytes the last fill wrote */
    size_t off;              /* of those, bytes handed to libmicrohttpd */
    ssize_t end;             /* KEEL_STREAM_END / KEEL_STREAM_ERROR once returned; 0 before */
    bool running;            /* a fill is running or waiting */
};

static void fill_main(void *arg)
{
    keel_stream *s = arg;
    keel_req *req = s->req;
    ssize_t n = s->fn(s->cls, s->pos, s->buf, s->want);
    if (n < 0)
        s->end = n == KEEL_STREAM_END ? KEEL_STREAM_END : KEEL_STREAM_ERROR;
    else
        s->len = (size_t)n > s->want ? s->want : (size_t)n;
    s->running = false;
    req->coro = NULL;
    if (req->suspended) {
        if (req->wd)
            keel__watchdog_resume(req->wd);
        req->suspended = false;
        MHD_resume_connection(req->conn);
        keel__loop_kick(req->loop);
    }
}

/* Hands out what the last fill wrote, from body offset pos. */
static ssize_t deliver(keel_stream *s, uint64_t pos, char *out, size_t max)
{
    if (s->off < s->len) {
        if (pos != s->pos + s->off)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* libmicrohttpd skipped: never seen */
        size_t n = s->len - s->off < max ? s->len - s->off : max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        if (s->req && s->req->wd)
            keel__watchdog_progress(s->req->wd, n);
        return (ssize_t)n;
    }
    if (s->end)
        return s->end == KEEL_STREAM_END ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    return 0; /* the fill wrote nothing: libmicrohttpd asks again */
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    keel_stream *s = cls;
    keel_req *req = s->req;
    if (!req || s->running)
        return req ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
    if (s->off < s->len || s->end)
        return deliver(s, pos, out, max);
    s->pos = pos;
    s->len = s->off = 0;
    s->want = max < STREAM_CHUNK ? max : STREAM_CHUNK;
    req->coro = keel__loop_coro_new(req->loop, fill_main, s);
    if (!req->coro)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* no stack: the body is cut, not garbled */
    s->running = true;
    keel__loop_run(req);
    if (s->running) { /* waiting for PostgreSQL: resumed by fill_main */
        if (req->wd) /* the app's time, not the client's */
            keel__watchdog_pause(req->wd);
        MHD_suspend_connection(req->conn);
        req->suspended = true;
        return 0;
    }
    if (req->wd) { /* a fill with nothing yet is the app's time, not the client's */
        if (s->len == 0 && !s->end)
            keel__watchdog_pause(req->wd);
        else
            keel__watchdog_resume(req->wd);
    }
    return deliver(s, pos, out, max);
}

static void stream_free(void *cls)
{
    keel_stream *s = cls;
    if (s->free_cls)
        s->free_cls(s->cls);
    if (s->req)
        s->req->stream_state = NULL;
    free(s->buf);
    free(s);
}

struct MHD_Response *keel__stream_response(keel_req *req)
{
    keel_resp *resp = &req->resp;
    keel_stream *s = calloc(1, sizeof *s);
    char *buf = s ? malloc(STREAM_CHUNK) : NULL;
    if (!buf) {
        free(s);
        return NULL;
    }
    s->req = req;
    s->fn = resp->stream;
    s->cls = resp->stream_cls;
    s->free_cls = resp->stream_free;
    s->buf = buf;
    uint64_t size = resp->stream_size == KEEL_SIZE_UNKNOWN ? MHD_SIZE_UNKNOWN : resp->stream_size;
    struct MHD_Response *r = MHD_create_response_from_callback(size, STREAM_CHUNK, stream_read, s, stream_free);
    if (!r) {
        free(buf);
        free(s);
        return NULL;
    }
    resp->stream_free = NULL; /* the stream owns cls now */
    req->stream_state = s;
    return r;
}

void keel__stream_request_done(keel_req *req)
{
    keel_stream *s = req->stream_state;
    if (!s)
        return;
    /* cls may live in the request's arena, released next: free it now. */
    if (s->free_cls)
        s->free_cls(s->cls);
    s->free_cls = NULL;
    s->req = NULL;
    req->stream_state = NULL;
}

/* stream.h - private: streamed response bodies whose fill function runs as a
 * coroutine on the connection's I/O thread (stream.c). */
#ifndef KEEL_STREAM_H
#define KEEL_STREAM_H

#include <microhttpd.h>

typedef struct keel_req keel_req;
typedef struct keel_stream keel_stream;

/* The libmicrohttpd response for req's streamed body (req->resp's stream,
 * whose cls it takes over); NULL on exhaustion (cls is then still the
 * response's).  The loop's thread only. */
struct MHD_Response *keel__stream_response(keel_req *req);

/* req completes: its stream's free function runs now (before the arena is
 * released) and the stream forgets req. */
void keel__stream_request_done(keel_req *req);

#endif

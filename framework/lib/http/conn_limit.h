/* conn_limit.h - private: open connections per client, shared by every I/O
 * thread (see conn_limit.c).  Thread-safe. */
#ifndef KEEL_CONN_LIMIT_H
#define KEEL_CONN_LIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "keel/error.h"

typedef struct keel_conn_limit keel_conn_limit;

/* A table for up to capacity open connections, each client allowed
 * per_client of them.  The caller owns *out (keel__conn_limit_free). */
keel_error *keel__conn_limit_new(unsigned per_client, unsigned capacity, keel_conn_limit **out);
void keel__conn_limit_free(keel_conn_limit *l);

/* True when the client at addr may open one more connection.  l may be NULL
 * (no limit). */
bool keel__conn_limit_allows(keel_conn_limit *l, const struct sockaddr *addr);

/* A connection from addr started: counted.  True when it was (then
 * keel__conn_limit_leave must follow when it closes). */
bool keel__conn_limit_enter(keel_conn_limit *l, const struct sockaddr *addr);
void keel__conn_limit_leave(keel_conn_limit *l, const struct sockaddr *addr);

/* Counts bytes of memory held for the client at addr (answers waiting to be
 * read); false, counting nothing, when its total would pass max.  A client
 * not counted (no connection entered) always fits.  keel__conn_limit_unhold
 * gives the bytes back. */
bool keel__conn_limit_hold(keel_conn_limit *l, const struct sockaddr *addr, size_t bytes, size_t max);
void keel__conn_limit_unhold(keel_conn_limit *l, const struct sockaddr *addr, size_t bytes);

#endif

/* ratelimit.h - private: token buckets per key (a client address, a user, an
 * API key), in bounded memory (see ratelimit.c).  Thread-safe. */
#ifndef KEEL_RATELIMIT_H
#define KEEL_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keel/error.h"

typedef struct keel_ratelimiter keel_ratelimiter;

/* A token bucket per key: rate tokens per second (> 0, at most 1e9), bursts
 * of up to burst (>= 1, at most 1e9) tokens, at most max_keys keys tracked
 * (>= 16, at most 2^24): when full, the least recently used key is
 * forgotten (bounded memory whatever the traffic; a forgotten key starts
 * again with a full bucket).  All memory is allocated here, none by take.
 * The caller owns *out (keel__ratelimiter_free); on error *out is NULL and
 * the error is invalid_argument (naming the argument) or
 * resource_exhausted. */
keel_error *keel__ratelimiter_new(double rate, double burst, size_t max_keys, keel_ratelimiter **out);
void keel__ratelimiter_free(keel_ratelimiter *rl);

/* Takes one token for key (len bytes, any bytes; key may be NULL when len
 * is 0) at now_ns (CLOCK_MONOTONIC nanoseconds): true when allowed; when
 * refused, *retry_after_ms (may be NULL) is how long until a token is there
 * (>= 1, rounded up).  A new key starts with a full bucket.  now_ns older
 * than the key's last take (threads racing) adds no tokens.  Keys longer
 * than 48 bytes are tracked by their keyed BLAKE2b-256 digest.  O(1). */
bool keel__ratelimiter_take(keel_ratelimiter *rl, const void *key, size_t len, uint64_t now_ns,
                            uint64_t *retry_after_ms);

/* Keys currently tracked (for tests and metrics). */
size_t keel__ratelimiter_keys(keel_ratelimiter *rl);

#endif

/* ratelimit.c - token buckets per key, in bounded memory.
 *
 * Owns the buckets of one limiter: a fixed array of max_keys of them
 * (allocated once), an open-addressing hash table (linear probing, deletion
 * by backward shift, so no tombstones) from key to bucket, and an LRU list
 * through the buckets: a key not seen yet takes a free bucket or, when all
 * are in use, the least recently used one.  Every take is O(1) and
 * allocates nothing, whatever the traffic.
 *
 * Keys are hashed with SipHash (crypto_shorthash) under a random key of this
 * limiter, so clients cannot choose addresses or tokens that collide and
 * turn probes into long scans.  Keys up to KEY_INLINE bytes are stored as
 * they are; longer ones as their BLAKE2b-256 digest under another random key
 * (told apart from a literal key of the same bytes by their length mark).
 *
 * Tokens are counted in billionths (nanotokens) in integers, and the refill
 * for elapsed nanoseconds is elapsed * rate nanotokens, so that whole rates
 * add exactly what they should however often take is called (no drift).
 * One mutex guards everything; the hashing is done before taking it. */
#include "http/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define NANO 1000000000ull         /* nanotokens in a token */
#define KEY_INLINE 48              /* longer keys are stored as a digest */
#define DIGEST_BYTES 32
#define KLEN_DIGEST 0xff           /* klen of a key stored as its digest */
#define NIL UINT32_MAX             /* no bucket (LRU list ends) */
#define MAX_KEYS ((size_t)1 << 24)

typedef struct bucket {
    uint64_t hash;      /* SipHash of the stored key: its home slot, a quick compare */
    uint64_t tokens;    /* nanotokens at last_ns, 0..burst */
    uint64_t last_ns;
    uint32_t prev, next; /* LRU list: prev is more recent */
    uint8_t klen;        /* bytes of key, or KLEN_DIGEST */
    unsigned char key[KEY_INLINE];
} bucket;

struct keel_ratelimiter {
    pthread_mutex_t mu;
    double rate;         /* tokens per second = nanotokens per nanosecond */
    uint64_t burst;      /* nanotokens */
    size_t max_keys;
    size_t used;         /* buckets handed out: nodes[0..used) */
    bucket *nodes;
    uint32_t *slots;     /* 0: empty, else a bucket's index + 1 */
    size_t mask;         /* slots - 1; slots is a power of two >= 2 * max_keys */
    uint32_t head, tail; /* most and least recently used */
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    unsigned char digest_key[crypto_generichash_KEYBYTES];
};

keel_error *keel__ratelimiter_new(double rate, double burst, size_t max_keys, keel_ratelimiter **out)
{
    *out = NULL;
    if (!(rate > 0 && rate <= 1e9))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "rate limit: the rate must be more than 0 and at most 1e9 "
                              "per second (got %g)", rate);
    if (!(burst >= 1 && burst <= 1e9))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "rate limit: the burst must be at least 1 and at most 1e9 "
                              "(got %g)", burst);
    if (max_keys < 16 || max_keys > MAX_KEYS)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "rate limit: the number of keys tracked must be at least 16 "
                              "and at most %zu (got %zu)", MAX_KEYS, max_keys);
    if (sodium_init() < 0)
        return keel_error_new(KEEL_INTERNAL, "rate limit: libsodium could not be initialised");
    size_t nslots = 32;
    while (nslots < 2 * max_keys)
        nslots *= 2;
    keel_ratelimiter *rl = calloc(1, sizeof *rl);
    if (rl) {
        rl->nodes = calloc(max_keys, sizeof *rl->nodes);
        rl->slots = calloc(nslots, sizeof *rl->slots);
    }
    if (!rl || !rl->nodes || !rl->slots || pthread_mutex_init(&rl->mu, NULL) != 0) {
        if (rl) {
            free(rl->nodes);
            free(rl->slots);
        }
        free(rl);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "rate limit: out of memory for %zu keys", max_keys);
    }
    rl->rate = rate;
    rl->burst = (uint64_t)(burst * (double)NANO + 0.5);
    rl->max_keys = max_keys;
    rl->mask = nslots - 1;
    rl->head = rl->tail = NIL;
    randombytes_buf(rl->hash_key, sizeof rl->hash_key);
    randombytes_buf(rl->digest_key, sizeof rl->digest_key);
    *out = rl;
    return NULL;
}

void keel__ratelimiter_free(keel_ratelimiter *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->mu);
    sodium_memzero(rl->hash_key, sizeof rl->hash_key);
    sodium_memzero(rl->digest_key, sizeof rl->digest_key);
    free(rl->nodes);
    free(rl->slots);
    free(rl);
}

/* ---- the LRU list (under mu) ---- */

static void lru_unlink(keel_ratelimiter *rl, uint32_t i)
{
    bucket *b = &rl->nodes[i];
    if (b->prev != NIL)
        rl->nodes[b->prev].next = b->next;
    else
        rl->head = b->next;
    if (b->next != NIL)
        rl->nodes[b->next].prev = b->prev;
    else
        rl->tail = b->prev;
}

static void lru_push_front(keel_ratelimiter *rl, uint32_t i)
{
    bucket *b = &rl->nodes[i];
    b->prev = NIL;
    b->next = rl->head;
    if (rl->head != NIL)
        rl->nodes[rl->head].prev = i;
    rl->head = i;
    if (rl->tail == NIL)
        rl->tail = i;
}

/* ---- the hash table (under mu) ---- */

/* Bucket i's slot is emptied; the entries after it in its probe run move
 * back where their probes would otherwise miss them (backward shift). */
static void table_remove(keel_ratelimiter *rl, uint32_t i)
{
    size_t s = rl->nodes[i].hash & rl->mask;
    while (rl->slots[s] != i + 1)
        s = (s + 1) & rl->mask;
    size_t j = s;
    for (;;) {
        j = (j + 1) & rl->mask;
        uint32_t v = rl->slots[j];
        if (!v)
            break;
        size_t home = rl->nodes[v - 1].hash & rl->mask;
        /* v stays when its home lies cyclically in (s, j]: a probe from
         * there reaches j without passing the hole */
        bool stays = s <= j ? (s < home && home <= j) : (s < home || home <= j);
        if (!stays) {
            rl->slots[s] = v;
            s = j;
        }
    }
    rl->slots[s] = 0;
}

/* ---- tokens ---- */

/* Refills b to now and takes a token: true when there was one; else
 * *retry_after_ms is the wait for one, in whole milliseconds (>= 1). */
static bool spend(const keel_ratelimiter *rl, bucket *b, uint64_t now_ns, uint64_t *retry_after_ms)
{
    if (now_ns > b->last_ns) {
        uint64_t missing = rl->burst - b->tokens;
        double add = (double)(now_ns - b->last_ns) * rl->rate;
        b->tokens = add >= (double)missing ? rl->burst : b->tokens + (uint64_t)add;
        b->last_ns = now_ns;
    }
    if (b->tokens >= NANO) {
        b->tokens -= NANO;
        return true;
    }
    double wait_ns = ceil((double)(NANO - b->tokens) / rl->rate);
    uint64_t ms = wait_ns >= 1.8e19 ? UINT64_MAX / 1000000 + 1
                                    : ((uint64_t)wait_ns + 999999) / 1000000;
    if (retry_after_ms)
        *retry_after_ms = ms ? ms : 1;
    return false;
}

bool keel__ratelimiter_take(keel_ratelimiter *rl, const void *key, size_t len, uint64_t now_ns,
                            uint64_t *retry_after_ms)
{
    if (retry_after_ms)
        *retry_after_ms = 0;
    if (!rl)
        return true; /* no limiter: no limit */
    if (!key && len) {
        if (retry_after_ms)
            *retry_after_ms = 1;
        return false;
    }
    unsigned char stored[KEY_INLINE] = {0};
    size_t n = len;
    uint8_t klen = (uint8_t)len;
    if (len > KEY_INLINE) {
        crypto_generichash(stored, DIGEST_BYTES, key, len, rl->digest_key, sizeof rl->digest_key);
        n = DIGEST_BYTES;
        klen = KLEN_DIGEST;
    } else if (len) {
        memcpy(stored, key, len);
    }
    uint64_t hash;
    crypto_shorthash((unsigned char *)&hash, stored, n, rl->hash_key);

    pthread_mutex_lock(&rl->mu);
    size_t s = hash & rl->mask;
    uint32_t v;
    while ((v = rl->slots[s]) != 0) {
        const bucket *b = &rl->nodes[v - 1];
        if (b->hash == hash && b->klen == klen && memcmp(b->key, stored, n) == 0)
            break;
        s = (s + 1) & rl->mask;
    }
    uint32_t i;
    if (v) {
        i = v - 1;
        if (rl->head != i) {
            lru_unlink(rl, i);
            lru_push_front(rl, i);
        }
    } else {
        if (rl->used < rl->max_keys) {
            i = (uint32_t)rl->used++;
        } else {
            i = rl->tail; /* forget the least recently used key */
            lru_unlink(rl, i);
            table_remove(rl, i);
            s = hash & rl->mask; /* the removal may have moved entries */
            while (rl->slots[s])
                s = (s + 1) & rl->mask;
        }
        bucket *b = &rl->nodes[i];
        b->hash = hash;
        b->klen = klen;
        memcpy(b->key, stored, n);
        b->tokens = rl->burst;
        b->last_ns = now_ns;
        rl->slots[s] = i + 1;
        lru_push_front(rl, i);
    }
    bool allowed = spend(rl, &rl->nodes[i], now_ns, retry_after_ms);
    pthread_mutex_unlock(&rl->mu);
    return allowed;
}

size_t keel__ratelimiter_keys(keel_ratelimiter *rl)
{
    if (!rl)
        return 0;
    pthread_mutex_lock(&rl->mu);
    size_t n = rl->used;
    pthread_mutex_unlock(&rl->mu);
    return n;
}

/* tests/unit/test_ratelimit.c - framework/lib/http/ratelimit.c: a burst is
 * allowed then refused; tokens come back at the rate (simulated time, no
 * sleeping) and retry_after says when, to the millisecond; keys are
 * independent (any bytes, long ones too); the number of keys stays bounded
 * under 100k distinct keys and the least recently used go first; 8 threads
 * on one key never get more than burst + rate * elapsed tokens (exactly
 * that, once drained); bad arguments are refused.  Prints take()'s
 * single-threaded throughput as a diagnostic. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <keel/keel.h>
#include "http/ratelimit.h"
#include "tap.h"

#define MS 1000000ull /* nanoseconds */
#define SEC 1000000000ull

/* True when new refused these arguments with invalid_argument mentioning
 * word, leaving *out NULL. */
static bool refused(double rate, double burst, size_t max_keys, const char *word)
{
    keel_ratelimiter *rl = (keel_ratelimiter *)&rl; /* not NULL: new must clear it */
    keel_error *err = keel__ratelimiter_new(rate, burst, max_keys, &rl);
    bool good = err && err->code == KEEL_INVALID_ARGUMENT && rl == NULL && tap_contains(err->message, word);
    if (!good)
        diag("got: %s", err ? err->message : "no error");
    keel_error_free(err);
    if (!err)
        keel__ratelimiter_free(rl);
    return good;
}

static keel_ratelimiter *make(double rate, double burst, size_t max_keys)
{
    keel_ratelimiter *rl = NULL;
    keel_error *err = keel__ratelimiter_new(rate, burst, max_keys, &rl);
    if (err) {
        diag("keel__ratelimiter_new: %s", err->message);
        keel_error_free(err);
        return NULL;
    }
    return rl;
}

static bool take(keel_ratelimiter *rl, const char *key, uint64_t now, uint64_t *retry)
{
    return keel__ratelimiter_take(rl, key, strlen(key), now, retry);
}

/* The retry_after of a take of key at now, or 0 when it was allowed. */
static uint64_t retry_of(keel_ratelimiter *rl, const char *key, uint64_t now)
{
    uint64_t retry = 12345;
    return take(rl, key, now, &retry) ? 0 : retry;
}

static void test_arguments(void)
{
    ok(refused(0, 1, 16, "rate"), "a rate of 0 is refused");
    ok(refused(-1, 1, 16, "rate"), "a negative rate is refused");
    ok(refused(NAN, 1, 16, "rate"), "a NaN rate is refused");
    ok(refused(INFINITY, 1, 16, "rate"), "an infinite rate is refused");
    ok(refused(1, 0.5, 16, "burst"), "a burst under 1 is refused");
    ok(refused(1, NAN, 16, "burst"), "a NaN burst is refused");
    ok(refused(1, 1, 15, "keys"), "fewer than 16 keys is refused");
    ok(refused(1, 1, (size_t)1 << 30, "keys"), "an absurd number of keys is refused");
    keel_ratelimiter *rl = make(1, 1, 16);
    ok(rl != NULL, "the smallest valid limiter (1/s, burst 1, 16 keys) is made");
    uint64_t retry = 0;
    ok(!keel__ratelimiter_take(rl, NULL, 3, 0, &retry) && retry == 1, "a NULL key with a length is refused");
    ok(keel__ratelimiter_take(NULL, "a", 1, 0, &retry), "no limiter (NULL) allows everything");
    ok(keel__ratelimiter_keys(NULL) == 0, "no limiter tracks no keys");
    keel__ratelimiter_free(rl);
    keel__ratelimiter_free(NULL);
}

static void test_refill(void)
{
    keel_ratelimiter *rl = make(10, 3, 64);
    const uint64_t t0 = 5 * SEC;
    int allowed = 0;
    for (int i = 0; i < 3; i++)
        allowed += take(rl, "a", t0, NULL);
    is_int(allowed, 3, "a burst of 3 is allowed at once");
    uint64_t retry = 0;
    ok(!take(rl, "a", t0, &retry), "the 4th take at the same time is refused");
    is_int(retry, 100, "at 10/s the next token is 100 ms away");
    ok(!take(rl, "a", t0 + 30 * MS, &retry), "30 ms later there is still no whole token");
    is_int(retry, 70, "and it is 70 ms away");
    is_int(retry_of(rl, "a", t0 + 30 * MS + 1), 70, "1 ns later it is 69.99... ms away: 70 (rounded up)");
    is_int(retry_of(rl, "a", t0 + 100 * MS - 1), 1, "1 ns before it: 1 ms (never 0)");
    ok(take(rl, "a", t0 + 100 * MS, NULL), "at exactly 100 ms the token is there");
    is_int(retry_of(rl, "a", t0 + 100 * MS), 100, "and the next one is 100 ms away again");
    allowed = 0;
    for (int i = 0; i < 4; i++)
        allowed += take(rl, "a", t0 + 1100 * MS, NULL);
    is_int(allowed, 3, "after 1 s (10 tokens' worth) the bucket holds only its burst of 3");
    is_int(retry_of(rl, "a", t0 + 1150 * MS), 50, "half a token after 50 ms: 50 ms to go");
    keel__ratelimiter_free(rl);

    rl = make(0.5, 1, 16);
    ok(take(rl, "slow", t0, NULL) && retry_of(rl, "slow", t0) == 2000,
       "at 0.5/s the next token is 2000 ms away");
    is_int(retry_of(rl, "slow", t0 + 1500 * MS), 500, "and 1.5 s later, 500 ms away");
    ok(!keel__ratelimiter_take(rl, "slow", 4, t0 + 1600 * MS, NULL), "a refusal without retry_after is fine");
    keel__ratelimiter_free(rl);
}

static void test_keys(void)
{
    keel_ratelimiter *rl = make(1, 2, 64);
    take(rl, "a", 0, NULL);
    take(rl, "a", 0, NULL);
    ok(take(rl, "b", 0, NULL) && take(rl, "b", 0, NULL), "with a drained, b still has its burst");
    ok(!take(rl, "a", 0, NULL) && !take(rl, "b", 0, NULL), "and both are drained now, each by its own takes");
    ok(keel__ratelimiter_take(rl, "x\0y", 3, 0, NULL) && keel__ratelimiter_take(rl, "x\0y", 3, 0, NULL) &&
       keel__ratelimiter_take(rl, "x\0z", 3, 0, NULL) && !keel__ratelimiter_take(rl, "x\0y", 3, 0, NULL),
       "keys are bytes: 'x\\0y' and 'x\\0z' differ");
    ok(keel__ratelimiter_take(rl, NULL, 0, 0, NULL) && keel__ratelimiter_take(rl, "", 0, 0, NULL) &&
       !keel__ratelimiter_take(rl, "", 0, 0, NULL), "the empty key is a key like any other");
    char long1[300], long2[300];
    memset(long1, 'k', sizeof long1);
    memcpy(long2, long1, sizeof long2);
    long2[299] = 'K';
    ok(keel__ratelimiter_take(rl, long1, sizeof long1, 0, NULL) &&
       keel__ratelimiter_take(rl, long1, sizeof long1, 0, NULL) &&
       keel__ratelimiter_take(rl, long2, sizeof long2, 0, NULL),
       "300-byte keys differing in the last byte are different keys");
    ok(!keel__ratelimiter_take(rl, long1, sizeof long1, 0, NULL) &&
       keel__ratelimiter_take(rl, long1, 299, 0, NULL),
       "the same long key is the same bucket; its 299-byte prefix is not");
    is_int(keel__ratelimiter_keys(rl), 8, "8 distinct keys are tracked");
    keel__ratelimiter_free(rl);
}

static void test_bound(void)
{
    enum { MAX = 1000, N = 100000 };
    keel_ratelimiter *rl = make(1, 1, MAX);
    size_t most = 0;
    for (uint32_t i = 0; i < N; i++) {
        keel__ratelimiter_take(rl, &i, sizeof i, SEC, NULL);
        size_t k = keel__ratelimiter_keys(rl);
        most = k > most ? k : most;
    }
    ok(most <= MAX, "100k distinct keys never make more than %d tracked (most: %zu)", MAX, most);
    is_int(keel__ratelimiter_keys(rl), MAX, "the table is full at the end");
    int kept = 0;
    for (uint32_t i = N - MAX; i < N; i++) /* most recent last: no evictions among them */
        kept += !keel__ratelimiter_take(rl, &i, sizeof i, SEC, NULL);
    is_int(kept, MAX, "the %d most recent keys all kept their drained bucket", MAX);
    uint32_t older = N - MAX - 1;
    ok(keel__ratelimiter_take(rl, &older, sizeof older, SEC, NULL),
       "the key just before them was forgotten: a full bucket again");
    keel__ratelimiter_free(rl);

    rl = make(1, 1, 16);
    char key[16];
    for (int i = 0; i < 16; i++) {
        snprintf(key, sizeof key, "k%d", i);
        take(rl, key, SEC, NULL); /* each drained */
    }
    take(rl, "k0", SEC, NULL); /* k0 is used again: now the most recent */
    for (int i = 1; i < 16; i++) {
        snprintf(key, sizeof key, "n%d", i);
        take(rl, key, SEC, NULL); /* evicts k1..k15 */
    }
    ok(!take(rl, "k0", SEC, NULL), "a recently used key kept its state through 15 evictions");
    ok(take(rl, "k1", SEC, NULL), "the least recently used key was forgotten");
    ok(!take(rl, "n2", SEC, NULL), "n2 is still tracked");
    ok(take(rl, "n1", SEC, NULL), "n1, then least recently used, went when k1 came back");
    is_int(keel__ratelimiter_keys(rl), 16, "16 keys tracked, no more");
    keel__ratelimiter_free(rl);
}

/* ---- 8 threads on one key, in simulated time ---- */

enum { THREADS = 8, STEPS = 20000 };
#define STEP_NS (100 * 1000ull) /* 0.1 token at 1000/s */

typedef struct hammer {
    keel_ratelimiter *rl;
    pthread_barrier_t *go;
    long allowed;
} hammer;

static void *hammer_run(void *arg)
{
    hammer *h = arg;
    pthread_barrier_wait(h->go);
    for (uint64_t i = 1; i <= STEPS; i++)
        h->allowed += keel__ratelimiter_take(h->rl, "shared", 6, i * STEP_NS, NULL);
    return NULL;
}

static void test_threads(void)
{
    keel_ratelimiter *rl = make(1000, 10, 64);
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, THREADS);
    long total = keel__ratelimiter_take(rl, "shared", 6, 0, NULL); /* the key starts at t = 0 */
    hammer h[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        h[i] = (hammer){rl, &go, 0};
        pthread_create(&th[i], NULL, hammer_run, &h[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += h[i].allowed;
    }
    pthread_barrier_destroy(&go);
    const long expect = 10 + 1000 * (long)(STEPS * STEP_NS / SEC); /* burst + rate * 2 s */
    ok(total <= expect, "8 threads got no more than burst + rate * elapsed = %ld tokens (got %ld)", expect, total);
    while (keel__ratelimiter_take(rl, "shared", 6, STEPS * STEP_NS, NULL))
        total++;
    is_int(total, expect, "with what was left drained, exactly burst + rate * elapsed");
    keel__ratelimiter_free(rl);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Not a check: how many takes a second one thread gets, on 16-byte keys
 * (an IPv6 client key) spread over 4096 clients. */
static void measure(void)
{
    keel_ratelimiter *rl = make(100, 50, 100000);
    if (!rl)
        return;
    enum { TAKES = 2000000 };
    unsigned char key[16] = {0};
    double t = seconds();
    long allowed = 0;
    for (uint32_t i = 0; i < TAKES; i++) {
        uint32_t client = (i * 2654435761u) & 4095;
        memcpy(key + 12, &client, 4);
        allowed += keel__ratelimiter_take(rl, key, sizeof key, (uint64_t)i * 1000, NULL);
    }
    t = seconds() - t;
    diag("take(): %.2f million per second single-threaded (%d takes in %.3f s, %ld allowed)",
         TAKES / t / 1e6, TAKES, t, allowed);
    keel__ratelimiter_free(rl);
}

int main(void)
{
    plan(44);
    test_arguments();
    test_refill();
    test_keys();
    test_bound();
    test_threads();
    measure();
    return tap_done();
}

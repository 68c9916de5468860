/* tests/unit/test_coro.c - coroutines (framework/lib/coro.c): they run until
 * they yield, resume where they left off with their locals intact, interleave
 * in any order, finish, and give their stacks back for reuse; a deep call
 * chain fits the default stack.  Runs under ASan and UBSan too, which check
 * the stack-switch annotations. */
#include "tap.h"
#include "http/coro.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct counter {
    keel_coro *co;
    int steps;      /* how many times it ran */
    int limit;      /* yields this many times, then returns */
    double carry;   /* a value kept in a local across yields, copied out */
    int finished;
} counter;

static void count_up(void *arg)
{
    counter *c = arg;
    double local = 1.5; /* must survive every switch */
    for (int i = 0; i < c->limit; i++) {
        c->steps++;
        local *= 2;
        keel__coro_yield(c->co);
    }
    c->steps++;
    c->carry = local;
    c->finished = 1;
}

/* A recursion that uses about depth * 256 bytes of stack. */
static uint64_t deep(int depth)
{
    volatile char pad[200];
    memset((char *)pad, depth & 0xff, sizeof pad);
    if (depth == 0)
        return pad[0];
    return deep(depth - 1) + pad[depth % 200];
}

typedef struct deep_call {
    int depth;
    uint64_t result;
} deep_call;

static void run_deep(void *arg)
{
    deep_call *d = arg;
    d->result = deep(d->depth);
}

int main(void)
{
    plan(12);
    keel_coro_pool *pool = keel__coro_pool_new(0, 4);
    ok(pool != NULL, "a stack pool is made");

    counter a = {.limit = 3}, b = {.limit = 5};
    a.co = keel__coro_new(pool, count_up, &a);
    b.co = keel__coro_new(pool, count_up, &b);
    ok(a.co && b.co, "two coroutines are made");
    is_int(a.steps, 0, "nothing runs before the first resume");
    ok(!keel__coro_resume(a.co), "the first resume runs it to its first yield");
    is_int(a.steps, 1, "it ran once");
    int a_done = 0, b_done = 0, rounds = 0;
    while ((!a_done || !b_done) && rounds++ < 20) {
        if (!b_done)
            b_done = keel__coro_resume(b.co);
        if (!a_done)
            a_done = keel__coro_resume(a.co);
    }
    ok(a_done && b_done, "both finish, interleaved");
    is_int(a.steps, 4, "the first ran once per yield and once more");
    is_int(b.steps, 6, "the second too");
    ok(a.carry == 12.0 && b.carry == 48.0, "locals survive the switches (%g, %g)", a.carry, b.carry);

    /* A thousand short-lived coroutines reuse a handful of stacks. */
    int finished = 0;
    for (int i = 0; i < 1000; i++) {
        counter c = {.limit = 1};
        c.co = keel__coro_new(pool, count_up, &c);
        if (!c.co)
            break;
        keel__coro_resume(c.co);
        finished += keel__coro_resume(c.co) && c.finished;
    }
    is_int(finished, 1000, "1000 coroutines run to the end on recycled stacks");

    /* About 100 KiB of frames (more under ASan): within the default 256 KiB. */
    deep_call d = {.depth = 400};
    keel_coro *co = keel__coro_new(pool, run_deep, &d);
    ok(co && keel__coro_resume(co), "a deep call chain runs to the end on a coroutine stack");
    uint64_t expected = deep(400); /* the same on the thread's own stack */
    ok(d.result == expected, "and returns what it returns on the thread's stack (%llu)", (unsigned long long)expected);

    keel__coro_pool_free(pool);
    return tap_done();
}

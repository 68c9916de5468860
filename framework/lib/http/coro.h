/* coro.h - private: stackful coroutines, the way handlers run on an I/O
 * thread.  A handler that waits (for PostgreSQL, for a blocking job) yields;
 * the loop resumes it when what it waits for is there, so its code reads
 * straight through.
 *
 * Stacks come from a per-thread pool (no locks): each is mmap'd once with a
 * guard page below it and reused.  A switch saves and restores only the
 * callee-saved registers (x86-64; ucontext elsewhere).  AddressSanitizer and
 * valgrind are told about every stack and every switch. */
#ifndef KEEL_CORO_H
#define KEEL_CORO_H

#include <stdbool.h>
#include <stddef.h>

typedef struct keel_coro keel_coro;
typedef struct keel_coro_pool keel_coro_pool;

/* A pool of stacks of stack_size bytes (0: the default, 256 KiB), keeping at
 * most keep idle ones.  NULL on exhaustion.  One thread only. */
keel_coro_pool *keel__coro_pool_new(size_t stack_size, unsigned keep);
/* Frees the idle stacks and the pool; every coroutine must have finished. */
void keel__coro_pool_free(keel_coro_pool *pool);

/* A coroutine that will run fn(arg) when first resumed; NULL when no stack
 * can be had. */
keel_coro *keel__coro_new(keel_coro_pool *pool, void (*fn)(void *arg), void *arg);

/* Runs co until it yields or returns.  True when fn has returned: co is then
 * recycled and must not be used again.  Never call from inside a coroutine. */
bool keel__coro_resume(keel_coro *co);

/* Inside co: back to whoever resumed it, until the next keel__coro_resume. */
void keel__coro_yield(keel_coro *co);

#endif

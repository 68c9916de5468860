/* keel/arena.h - the per-request arena.
 *
 * Everything a handler allocates for one request (decoded strings, response
 * strings, rows) comes from the request's arena and is released in one go when
 * the request completes.  Handlers never free what they take from it.  An arena
 * starts on an inline buffer, so small requests allocate nothing from malloc.
 *
 * A subsystem that holds other resources for a request (a pooled connection,
 * a result set, a span) allocates its per-request state with
 * keel_arena_alloc_shared and a dispose function; the arena runs it when the
 * request's work ends, so the request core knows nothing about SQL. */
#ifndef KEEL_ARENA_H
#define KEEL_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef struct keel_arena_chunk keel_arena_chunk;
typedef struct keel_arena_cleanup keel_arena_cleanup;

typedef struct keel_arena {
    char *cur;               /* next free byte in the current block */
    char *end;               /* end of the current block */
    keel_arena_chunk *chunks; /* malloc'd blocks, newest first */
    keel_arena_cleanup *cleanups; /* registered disposers, newest first */
} keel_arena;

/* Starts an arena on buf (not owned; may be NULL with len 0). */
void keel_arena_init(keel_arena *a, void *buf, size_t len);

/* Returns n bytes aligned for any type, or NULL when memory is exhausted.  The
 * memory belongs to the arena. */
void *keel_arena_alloc(keel_arena *a, size_t n);

/* Like keel_arena_alloc but zeroed and overflow-checked for count * size. */
void *keel_arena_calloc(keel_arena *a, size_t count, size_t size);

/* Room for one more item in an array of count items of size bytes kept in
 * the arena (*items, with room for *cap; both 0/NULL to start): when it is
 * full, *items becomes a zeroed copy twice as large (at least 16 items) and
 * *cap grows; the old array stays in the arena until it is released.
 * Returns false when memory is exhausted (*items and *cap unchanged).
 *
 *     if (!keel_arena_grow(arena, (void **)&out->items, out->count, &cap, sizeof *out->items))
 *         return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
 *     out->items[out->count++] = item; */
bool keel_arena_grow(keel_arena *a, void **items, size_t count, size_t *cap, size_t size);

/* n zeroed bytes from the arena, with dispose(ptr) registered to run once,
 * by keel_arena_dispose or at the latest by keel_arena_release, newest
 * registration first.  dispose must not allocate from or dispose the same
 * arena.  Returns NULL when memory is exhausted (nothing registered). */
void *keel_arena_alloc_shared(keel_arena *a, size_t n, void (*dispose)(void *));

/* The newest memory registered with dispose and not yet disposed, or NULL:
 * how a subsystem finds its own per-request state. */
void *keel_arena_find_shared(const keel_arena *a, void (*dispose)(void *));

/* Runs every registered dispose now, newest first, and forgets them; the
 * memory stays until keel_arena_release.  For a request, this is the end of
 * its handler's work (what it still streams keeps its state until release). */
void keel_arena_dispose(keel_arena *a);

/* NUL-terminated copies owned by the arena; NULL on exhaustion. */
char *keel_arena_strndup(keel_arena *a, const char *s, size_t n);
char *keel_arena_strdup(keel_arena *a, const char *s);
char *keel_arena_printf(keel_arena *a, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* The bytes the arena took from malloc so far (its inline buffer not
 * counted): what releasing it would give back. */
size_t keel_arena_size(const keel_arena *a);

/* Runs the registered disposers (keel_arena_dispose), then frees every block
 * the arena took from malloc; the arena may be reused after keel_arena_init. */
void keel_arena_release(keel_arena *a);

/* A growable byte buffer whose storage lives in an arena (used to build
 * response bodies without a final copy). */
typedef struct keel_buf {
    keel_arena *arena;
    char *data;
    size_t len;
    size_t cap;
    int failed; /* set once an append ran out of memory */
} keel_buf;

void keel_buf_init(keel_buf *b, keel_arena *a);
void keel_buf_append(keel_buf *b, const void *data, size_t n);
void keel_buf_putc(keel_buf *b, char c);
void keel_buf_puts(keel_buf *b, const char *s);
void keel_buf_printf(keel_buf *b, const char *fmt, ...) KEEL_PRINTF(2, 3);

#pragma GCC visibility pop

#endif

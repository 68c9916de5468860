/* arena.c - the per-request bump allocator and the arena-backed byte buffer.
 *
 * Blocks grow geometrically (4 KiB, doubling up to 64 KiB; larger requests get
 * a block of their own), so a request costs a handful of mallocs at most. */
#include "keel/arena.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_ALIGN 16u
#define ARENA_MIN_BLOCK 4096u
#define ARENA_MAX_BLOCK 65536u

struct keel_arena_cleanup {
    keel_arena_cleanup *next;
    void (*dispose)(void *);
    void *ptr;
};

struct keel_arena_chunk {
    keel_arena_chunk *next;
    size_t size;
    _Alignas(16) char data[];
};

void keel_arena_init(keel_arena *a, void *buf, size_t len)
{
    uintptr_t p = (uintptr_t)buf;
    uintptr_t aligned = (p + (ARENA_ALIGN - 1)) & ~(uintptr_t)(ARENA_ALIGN - 1);
    if (!buf || aligned - p >= len) {
        a->cur = a->end = NULL;
    } else {
        a->cur = (char *)aligned;
        a->end = (char *)buf + len;
    }
    a->chunks = NULL;
    a->cleanups = NULL;
}

/* Starts a new block that can hold at least n bytes; NULL on exhaustion. */
static void *arena_grow(keel_arena *a, size_t n)
{
    size_t last = a->chunks ? a->chunks->size : ARENA_MIN_BLOCK / 2;
    size_t size = last * 2 > ARENA_MAX_BLOCK ? ARENA_MAX_BLOCK : last * 2;
    if (size < n)
        size = n;
    if (size > SIZE_MAX - sizeof(keel_arena_chunk))
        return NULL;
    keel_arena_chunk *c = malloc(sizeof *c + size);
    if (!c)
        return NULL;
    c->size = size;
    c->next = a->chunks;
    a->chunks = c;
    a->cur = c->data + n;
    a->end = c->data + size;
    return c->data;
}

size_t keel_arena_size(const keel_arena *a)
{
    size_t n = 0;
    for (const keel_arena_chunk *c = a->chunks; c; c = c->next)
        n += sizeof *c + c->size;
    return n;
}

void *keel_arena_alloc(keel_arena *a, size_t n)
{
    if (n == 0)
        n = 1;
    if (n > SIZE_MAX - ARENA_ALIGN)
        return NULL;
    n = (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1);
    if (a->cur && (size_t)(a->end - a->cur) >= n) {
        void *p = a->cur;
        a->cur += n;
        return p;
    }
    return arena_grow(a, n);
}

void *keel_arena_calloc(keel_arena *a, size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = keel_arena_alloc(a, count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

bool keel_arena_grow(keel_arena *a, void **items, size_t count, size_t *cap, size_t size)
{
    if (count < *cap)
        return true;
    size_t want = *cap ? *cap * 2 : 16;
    if (want < count + 1 || want < *cap)
        return false; /* overflow */
    void *grown = keel_arena_calloc(a, want, size);
    if (!grown)
        return false;
    if (count)
        memcpy(grown, *items, count * size);
    *items = grown;
    *cap = want;
    return true;
}

char *keel_arena_strndup(keel_arena *a, const char *s, size_t n)
{
    char *d = keel_arena_alloc(a, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *keel_arena_strdup(keel_arena *a, const char *s)
{
    return keel_arena_strndup(a, s, strlen(s));
}

char *keel_arena_printf(keel_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = keel_arena_alloc(a, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void *keel_arena_alloc_shared(keel_arena *a, size_t n, void (*dispose)(void *))
{
    keel_arena_cleanup *c = keel_arena_alloc(a, sizeof *c);
    void *p = c ? keel_arena_calloc(a, 1, n) : NULL;
    if (!p)
        return NULL;
    c->dispose = dispose;
    c->ptr = p;
    c->next = a->cleanups;
    a->cleanups = c;
    return p;
}

void *keel_arena_find_shared(const keel_arena *a, void (*dispose)(void *))
{
    for (const keel_arena_cleanup *c = a->cleanups; c; c = c->next)
        if (c->dispose == dispose)
            return c->ptr;
    return NULL;
}

void keel_arena_dispose(keel_arena *a)
{
    /* Each is unlinked before it runs, so a disposer that looks for its own
     * state (or one that runs twice by mistake) finds it gone. */
    while (a->cleanups) {
        keel_arena_cleanup *c = a->cleanups;
        a->cleanups = c->next;
        c->dispose(c->ptr);
    }
}

void keel_arena_release(keel_arena *a)
{
    keel_arena_dispose(a);
    keel_arena_chunk *c = a->chunks;
    while (c) {
        keel_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->cur = a->end = NULL;
}

void keel_buf_init(keel_buf *b, keel_arena *a)
{
    b->arena = a;
    b->data = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

/* Makes room for n more bytes (plus a NUL); sets failed on exhaustion. */
static int buf_reserve(keel_buf *b, size_t n)
{
    if (b->failed)
        return 0;
    if (n <= b->cap - b->len && b->data)
        return 1;
    if (n > SIZE_MAX / 4 - b->len) {
        b->failed = 1;
        return 0;
    }
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    /* Growing in place when the buffer is the arena's most recent allocation
     * avoids a copy in the common case of one buffer being built at a time. */
    keel_arena *a = b->arena;
    size_t old_span = (b->cap + 1 + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    size_t new_span = (cap + 1 + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (b->data && b->data + old_span == a->cur && (size_t)(a->end - b->data) >= new_span) {
        a->cur = b->data + new_span;
        b->cap = cap;
        return 1;
    }
    char *d = keel_arena_alloc(a, cap + 1);
    if (!d) {
        b->failed = 1;
        return 0;
    }
    if (b->len)
        memcpy(d, b->data, b->len);
    b->data = d;
    b->cap = cap;
    return 1;
}

void keel_buf_append(keel_buf *b, const void *data, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void keel_buf_putc(keel_buf *b, char c)
{
    if (b->data && b->len < b->cap && !b->failed) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return;
    }
    keel_buf_append(b, &c, 1);
}

void keel_buf_puts(keel_buf *b, const char *s)
{
    keel_buf_append(b, s, strlen(s));
}

void keel_buf_printf(keel_buf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        keel_buf_append(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

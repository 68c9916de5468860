/* span.c - the parts of tracing that code all over the library calls:
 * trace and span ids, W3C traceparent parsing, the request whose handler
 * runs on this thread, and spans recorded into a trace that owns their
 * memory.  Nothing here starts, samples or exports a trace (trace.c,
 * observe.c), so a file that records a span links only this. */
#include "core.h"
#include "observe/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- ids ------------------------------------------------------------------------- */

/* splitmix64 per thread, seeded from the kernel once: ids must not repeat
 * across processes and threads, and need no cryptographic strength. */
static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_seeded;

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        if (getrandom(&rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rng_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
        }
        rng_seeded = true;
    }
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void keel__random_bytes(uint8_t *out, size_t n)
{
    while (n) {
        uint64_t r = rng_next();
        size_t k = n < 8 ? n : 8;
        memcpy(out, &r, k);
        out += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

void keel__hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* W3C: lower case only */
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* version "-" trace-id "-" parent-id "-" flags (W3C Trace Context, level 1).
 * Version 00 is exactly 55 characters; a later version may append fields
 * after a "-", and ff is invalid. */
bool keel__traceparent_parse(const char *v, uint8_t trace_id[16], uint8_t parent_id[8], uint8_t *flags)
{
    size_t len = strlen(v);
    uint8_t version;
    if (len < 55 || !unhex(v, &version, 1) || version == 0xff || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if ((version == 0 && len != 55) || (len > 55 && v[55] != '-'))
        return false;
    if (!unhex(v + 3, trace_id, 16) || !unhex(v + 36, parent_id, 8) || !unhex(v + 53, flags, 1))
        return false;
    return !all_zero(trace_id, 16) && !all_zero(parent_id, 8);
}

/* tracestate is passed on only when it is short printable text. */
bool keel__tracestate_acceptable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] >= 0x7f || n >= 512)
            return false;
    return n > 0;
}

/* ---- the current request of a thread ----------------------------------------------- */

static _Thread_local keel_req *current_req;

keel_req *keel__trace_current_req(void)
{
    return current_req;
}

keel_req *keel__trace_set_current_req(keel_req *req)
{
    keel_req *before = current_req;
    current_req = req;
    return before;
}

/* ---- traces and spans -------------------------------------------------------------- */

uint64_t keel__now_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

keel_trace *keel__trace_new(struct keel_observe *obs, const uint8_t id[16], uint8_t flags)
{
    keel_trace *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, offsetof(keel_trace, inline_mem));
    keel_arena_init(&t->arena, t->inline_mem, sizeof t->inline_mem);
    atomic_init(&t->refs, 1);
    memcpy(t->id, id, 16);
    t->flags = flags;
    t->obs = obs;
    t->tail = &t->spans;
    return t;
}

void keel__trace_unref(keel_trace *t)
{
    if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        keel_arena_release(&t->arena);
        free(t);
    }
}

size_t keel__trace_memory(const keel_trace *t)
{
    return sizeof *t + keel_arena_size(&t->arena);
}

keel_span *keel__span_open(keel_trace *t, keel_span *parent, const char *name, keel_span_kind kind, uint64_t start)
{
    keel_span *s = keel_arena_calloc(&t->arena, 1, sizeof *s);
    if (!s)
        return NULL;
    s->name = keel_arena_strdup(&t->arena, name);
    if (!s->name)
        return NULL;
    keel__random_bytes(s->id, sizeof s->id);
    s->trace = t;
    s->parent = parent;
    s->kind = kind;
    s->start_ns = start;
    s->attrs_tail = &s->attrs;
    *t->tail = s;
    t->tail = &s->next;
    t->nspans++;
    t->current = s;
    return s;
}

/* The trace a span belongs to: spans are only made in their trace's arena,
 * and the request points at its trace. */
static keel_trace *trace_of(const keel_req *req)
{
    return req ? req->trace : NULL;
}

keel_span *keel__span_start(keel_req *req, const char *name, keel_span_kind kind)
{
    keel_trace *t = trace_of(req);
    return t ? keel__span_open(t, t->current, name, kind, keel__now_unix_ns()) : NULL;
}

static keel_attr *attr_add(keel_span *s, const char *key, keel_attr_type type)
{
    if (!s)
        return NULL;
    keel_attr *a = keel_arena_alloc(&s->trace->arena, sizeof *a);
    if (!a)
        return NULL;
    a->next = NULL;
    a->key = key;
    a->type = type;
    *s->attrs_tail = a;
    s->attrs_tail = &a->next;
    s->nattrs++;
    return a;
}

void keel__span_attr_strn(keel_span *s, const char *key, const char *value, size_t len)
{
    if (!s || !value)
        return;
    char *copy = keel_arena_strndup(&s->trace->arena, value, len);
    keel_attr *a = copy ? attr_add(s, key, KEEL_ATTR_STR) : NULL;
    if (a)
        a->v.s = copy;
}

void keel__span_attr_str(keel_span *s, const char *key, const char *value)
{
    if (s && value)
        keel__span_attr_strn(s, key, value, strlen(value));
}

void keel__span_attr_int(keel_span *s, const char *key, int64_t value)
{
    keel_attr *a = attr_add(s, key, KEEL_ATTR_INT);
    if (a)
        a->v.i = value;
}

void keel__span_attr_bool(keel_span *s, const char *key, bool value)
{
    keel_attr *a = attr_add(s, key, KEEL_ATTR_BOOL);
    if (a)
        a->v.b = value;
}

void keel__span_close(keel_span *s, uint64_t end)
{
    s->end_ns = end > s->start_ns ? end : s->start_ns;
    if (s->trace->current == s)
        s->trace->current = s->parent;
}

void keel__span_end(keel_req *req, keel_span *s, const keel_error *err)
{
    (void)req;
    if (!s || s->end_ns)
        return;
    if (err) {
        s->status = KEEL_STATUS_ERROR;
        s->status_message = keel_code_name(err->code);
        keel__span_attr_str(s, "keel.error_code", keel_code_name(err->code));
    }
    keel__span_close(s, keel__now_unix_ns());
}

bool keel__span_sql_parameters(const keel_req *req)
{
    keel_trace *t = trace_of(req);
    return t && t->sql_parameters;
}

const char *keel__trace_id_hex(const keel_req *req)
{
    return req->trace_hex[0] ? req->trace_hex : NULL;
}


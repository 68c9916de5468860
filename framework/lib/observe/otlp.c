/* otlp.c - traces as an OTLP ExportTraceServiceRequest in protobuf
 * (opentelemetry-proto, collector/trace/v1), the default encoding of
 * OTLP/HTTP.  A message's length comes before its bytes: each is written
 * after five reserved bytes, and moved back once its length is known. */
#include "keel/keel.h"
#include "observe/observe.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* v as a base-128 varint into out (at most 10 bytes); returns its length. */
static size_t varint(uint64_t v, char out[10])
{
    size_t n = 0;
    do {
        out[n++] = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void put_varint(keel_buf *b, uint64_t v)
{
    char tmp[10];
    keel_buf_append(b, tmp, varint(v, tmp));
}

static void put_tag(keel_buf *b, unsigned field, unsigned wire)
{
    put_varint(b, (uint64_t)field << 3 | wire);
}

static void put_bytes(keel_buf *b, unsigned field, const void *data, size_t n)
{
    put_tag(b, field, WIRE_LEN);
    put_varint(b, n);
    keel_buf_append(b, data, n);
}

static void put_string(keel_buf *b, unsigned field, const char *s)
{
    put_bytes(b, field, s, strlen(s));
}

/* A fixed64 (size 8) or fixed32 (size 4) field, little-endian. */
static void put_fixed(keel_buf *b, unsigned field, uint64_t v, size_t size)
{
    char le[8];
    for (size_t i = 0; i < size; i++)
        le[i] = (char)(v >> (8 * i));
    put_tag(b, field, size == 8 ? WIRE_FIXED64 : WIRE_FIXED32);
    keel_buf_append(b, le, size);
}

/* Opens a length-delimited field: returns where its length goes. */
static size_t msg_open(keel_buf *b, unsigned field)
{
    put_tag(b, field, WIRE_LEN);
    size_t at = b->len;
    keel_buf_append(b, "\0\0\0\0\0", 5);
    return at;
}

static void msg_close(keel_buf *b, size_t at)
{
    if (b->failed)
        return;
    size_t body = b->len - at - 5;
    char tmp[10];
    size_t n = varint(body, tmp);
    memcpy(b->data + at, tmp, n);
    memmove(b->data + at + n, b->data + at + 5, body);
    b->len -= 5 - n;
}

/* KeyValue { key = 1; AnyValue value = 2 }, AnyValue { string_value = 1;
 * bool_value = 2; int_value = 3; double_value = 4 }. */
static void put_attr(keel_buf *b, unsigned field, const keel_attr *a)
{
    size_t kv = msg_open(b, field);
    put_string(b, 1, a->key);
    size_t any = msg_open(b, 2);
    switch (a->type) {
    case KEEL_ATTR_STR:
        put_string(b, 1, a->v.s);
        break;
    case KEEL_ATTR_BOOL:
        put_tag(b, 2, WIRE_VARINT);
        put_varint(b, a->v.b);
        break;
    case KEEL_ATTR_INT:
        put_tag(b, 3, WIRE_VARINT);
        put_varint(b, (uint64_t)a->v.i);
        break;
    case KEEL_ATTR_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &a->v.d, 8);
        put_fixed(b, 4, bits, 8);
        break;
    }
    }
    msg_close(b, any);
    msg_close(b, kv);
}

static void put_string_attr(keel_buf *b, unsigned field, const char *key, const char *value)
{
    keel_attr a = {NULL, key, KEEL_ATTR_STR, {.s = value}};
    put_attr(b, field, &a);
}

/* Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5,
 * kind 6, start 7, end 8, attributes 9, status 15 { message 2, code 3 },
 * flags 16. */
static void put_span(keel_buf *b, const keel_trace *t, const keel_span *s)
{
    size_t at = msg_open(b, 2);
    put_bytes(b, 1, t->id, 16);
    put_bytes(b, 2, s->id, 8);
    if (t->tracestate)
        put_string(b, 3, t->tracestate);
    if (s->parent)
        put_bytes(b, 4, s->parent->id, 8);
    else if (t->has_remote_parent)
        put_bytes(b, 4, t->remote_parent, 8);
    put_string(b, 5, s->name);
    put_tag(b, 6, WIRE_VARINT);
    put_varint(b, (uint64_t)s->kind);
    put_fixed(b, 7, s->start_ns, 8);
    put_fixed(b, 8, s->end_ns, 8);
    for (const keel_attr *a = s->attrs; a; a = a->next)
        put_attr(b, 9, a);
    if (s->status != KEEL_STATUS_UNSET) {
        size_t st = msg_open(b, 15);
        if (s->status_message)
            put_string(b, 2, s->status_message);
        put_tag(b, 3, WIRE_VARINT);
        put_varint(b, (uint64_t)s->status);
        msg_close(b, st);
    }
    /* SpanFlags: the W3C flags, and whether the parent is remote. */
    uint32_t flags = t->flags | 0x100u;
    if (!s->parent && t->has_remote_parent)
        flags |= 0x200u;
    put_fixed(b, 16, flags, 4);
    msg_close(b, at);
}

/* ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1 };
 * ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2 };
 * Resource { repeated KeyValue attributes = 1 };
 * ScopeSpans { InstrumentationScope scope = 1; repeated Span spans = 2 }. */
void keel__otlp_encode(keel_buf *out, const char *service_name, keel_trace *const *traces, size_t n)
{
    size_t rs = msg_open(out, 1);
    size_t res = msg_open(out, 1);
    put_string_attr(out, 1, "service.name", service_name);
    put_string_attr(out, 1, "telemetry.sdk.name", "keel");
    put_string_attr(out, 1, "telemetry.sdk.language", "c");
    put_string_attr(out, 1, "telemetry.sdk.version", KEEL_VERSION);
    keel_attr pid = {NULL, "process.pid", KEEL_ATTR_INT, {.i = (int64_t)getpid()}};
    put_attr(out, 1, &pid);
    msg_close(out, res);
    size_t ss = msg_open(out, 2);
    size_t scope = msg_open(out, 1);
    put_string(out, 1, "keel");
    put_string(out, 2, KEEL_VERSION);
    msg_close(out, scope);
    for (size_t i = 0; i < n; i++)
        for (const keel_span *s = traces[i]->spans; s; s = s->next)
            put_span(out, traces[i], s);
    msg_close(out, ss);
    msg_close(out, rs);
}

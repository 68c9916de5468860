/* error.c - keel_error values: creation, decoration, release, and the table of
 * Encore codes with their HTTP statuses. */
#include "keel/error.h"
#include "format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned status;
} code_table[KEEL_CODE_COUNT] = {
    [KEEL_OK] = {"ok", 200},
    [KEEL_CANCELED] = {"canceled", 499},
    [KEEL_UNKNOWN] = {"unknown", 500},
    [KEEL_INVALID_ARGUMENT] = {"invalid_argument", 400},
    [KEEL_DEADLINE_EXCEEDED] = {"deadline_exceeded", 504},
    [KEEL_NOT_FOUND] = {"not_found", 404},
    [KEEL_ALREADY_EXISTS] = {"already_exists", 409},
    [KEEL_PERMISSION_DENIED] = {"permission_denied", 403},
    [KEEL_RESOURCE_EXHAUSTED] = {"resource_exhausted", 429},
    [KEEL_FAILED_PRECONDITION] = {"failed_precondition", 400},
    [KEEL_ABORTED] = {"aborted", 409},
    [KEEL_OUT_OF_RANGE] = {"out_of_range", 400},
    [KEEL_UNIMPLEMENTED] = {"unimplemented", 501},
    [KEEL_INTERNAL] = {"internal", 500},
    [KEEL_UNAVAILABLE] = {"unavailable", 503},
    [KEEL_DATA_LOSS] = {"data_loss", 500},
    [KEEL_UNAUTHENTICATED] = {"unauthenticated", 401},
};

/* Returned when even the error cannot be allocated; never freed. */
static keel_error out_of_memory = {KEEL_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, KEEL_DETAIL_NONE};

const char *keel_code_name(keel_code code)
{
    if ((unsigned)code >= KEEL_CODE_COUNT)
        return "unknown";
    return code_table[code].name;
}

unsigned keel_code_http_status(keel_code code)
{
    if ((unsigned)code >= KEEL_CODE_COUNT)
        return 500;
    return code_table[code].status;
}

char *keel__vformat(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

char *keel__format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = keel__vformat(fmt, ap);
    va_end(ap);
    return s;
}

keel_error *keel_error_newv(keel_code code, const char *fmt, va_list ap)
{
    keel_error *err = malloc(sizeof *err);
    if (!err)
        return &out_of_memory;
    err->code = code;
    err->cause = NULL;
    err->http_status = 0;
    err->detail = KEEL_DETAIL_NONE;
    err->message = keel__vformat(fmt, ap);
    if (!err->message) {
        free(err);
        return &out_of_memory;
    }
    return err;
}

keel_error *keel_error_new(keel_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_error *err = keel_error_newv(code, fmt, ap);
    va_end(ap);
    return err;
}

keel_error *keel_error_cause(keel_error *err, const char *fmt, ...)
{
    if (!err || err == &out_of_memory)
        return err;
    va_list ap;
    va_start(ap, fmt);
    char *cause = keel__vformat(fmt, ap);
    va_end(ap);
    if (cause) {
        free(err->cause);
        err->cause = cause;
    }
    return err;
}

keel_error *keel_error_prefix(keel_error *err, const char *fmt, ...)
{
    if (!err || err == &out_of_memory)
        return err;
    va_list ap;
    va_start(ap, fmt);
    char *prefix = keel__vformat(fmt, ap);
    va_end(ap);
    if (!prefix)
        return err;
    size_t plen = strlen(prefix), mlen = strlen(err->message);
    char *joined = malloc(plen + 2 + mlen + 1);
    if (joined) {
        memcpy(joined, prefix, plen);
        memcpy(joined + plen, ": ", 2);
        memcpy(joined + plen + 2, err->message, mlen + 1);
        free(err->message);
        err->message = joined;
    }
    free(prefix);
    return err;
}

keel_error *keel_error_status(keel_error *err, unsigned status)
{
    if (err && err != &out_of_memory)
        err->http_status = status;
    return err;
}

keel_error *keel_error_detail(keel_error *err, keel_detail detail)
{
    if (err && err != &out_of_memory)
        err->detail = detail;
    return err;
}

keel_error *keel_error_copy(const keel_error *e)
{
    if (e == &out_of_memory)
        return &out_of_memory;
    keel_error *c = keel_error_new(e->code, "%s", e->message);
    if (e->cause)
        keel_error_cause(c, "%s", e->cause);
    keel_error_status(c, e->http_status);
    return keel_error_detail(c, e->detail);
}

unsigned keel_error_http_status(const keel_error *err)
{
    return err->http_status ? err->http_status : keel_code_http_status(err->code);
}

void keel_error_free(keel_error *err)
{
    if (!err || err == &out_of_memory)
        return;
    free(err->message);
    free(err->cause);
    free(err);
}

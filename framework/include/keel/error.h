/* keel/error.h - errors as values.
 *
 * Every fallible Keel function returns a keel_error * (NULL on success).  An error
 * carries an Encore-compatible code (which fixes the HTTP status), a message that
 * is safe to show to the client, and an optional internal cause that is only ever
 * logged.  Errors are heap objects owned by whoever receives them: return them up
 * the stack or release them with keel_error_free(). */
#ifndef KEEL_ERROR_H
#define KEEL_ERROR_H

#include <stdarg.h>

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef enum keel_code {
    KEEL_OK = 0,
    KEEL_CANCELED,
    KEEL_UNKNOWN,
    KEEL_INVALID_ARGUMENT,
    KEEL_DEADLINE_EXCEEDED,
    KEEL_NOT_FOUND,
    KEEL_ALREADY_EXISTS,
    KEEL_PERMISSION_DENIED,
    KEEL_RESOURCE_EXHAUSTED,
    KEEL_FAILED_PRECONDITION,
    KEEL_ABORTED,
    KEEL_OUT_OF_RANGE,
    KEEL_UNIMPLEMENTED,
    KEEL_INTERNAL,
    KEEL_UNAVAILABLE,
    KEEL_DATA_LOSS,
    KEEL_UNAUTHENTICATED,
    KEEL_CODE_COUNT
} keel_code;

/* What exactly went wrong, within a code, for programs to compare (as GNU
 * Taler's error codes): code says how to answer, detail says which case it
 * is.  Compare details, never message text. */
typedef enum keel_detail {
    KEEL_DETAIL_NONE = 0,
    KEEL_DETAIL_NO_ROWS,         /* keel_db_query_row: the query returned no row */
    KEEL_DETAIL_SECRET_NOT_SET   /* keel_secret_lookup: the secret has no value */
} keel_detail;

typedef struct keel_error {
    keel_code code;
    char *message; /* shown to the client; never contains secrets */
    char *cause;   /* internal detail for the log only; may be NULL */
    unsigned http_status; /* 0: the code's status; else a more precise one (413) */
    keel_detail detail;   /* KEEL_DETAIL_NONE unless set with keel_error_detail */
} keel_error;

#if defined(__GNUC__)
#define KEEL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define KEEL_PRINTF(fmt, args)
#endif

/* Creates an error with a printf-style client message.  The caller owns the
 * result.  Never returns NULL: on allocation failure a static "out of memory"
 * error is returned, which keel_error_free() recognises and leaves alone. */
keel_error *keel_error_new(keel_code code, const char *fmt, ...) KEEL_PRINTF(2, 3);
keel_error *keel_error_newv(keel_code code, const char *fmt, va_list ap);

/* Attaches an internal cause (printf-style) to err, replacing any earlier one, and
 * returns err so that it can be used in a return statement. */
keel_error *keel_error_cause(keel_error *err, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* Prefixes err's message with "prefix: " (printf-style) and returns err. */
keel_error *keel_error_prefix(keel_error *err, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* Makes err answer with HTTP status instead of its code's (for example 413
 * for resource_exhausted caused by a body that is too large); returns err. */
keel_error *keel_error_status(keel_error *err, unsigned status);

/* Marks err as the case detail (see keel_detail); returns err. */
keel_error *keel_error_detail(keel_error *err, keel_detail detail);

/* A copy of e (code, message, cause, status, detail) the caller owns, for
 * handing one outcome to several receivers.  Never returns NULL. */
keel_error *keel_error_copy(const keel_error *e);

/* The HTTP status err answers with. */
unsigned keel_error_http_status(const keel_error *err);

/* Releases err; NULL is allowed. */
void keel_error_free(keel_error *err);

/* "invalid_argument", ... for a code; "unknown" for values out of range. */
const char *keel_code_name(keel_code code);

/* The HTTP status Encore uses for code (invalid_argument 400, not_found 404...). */
unsigned keel_code_http_status(keel_code code);

#pragma GCC visibility pop

#endif

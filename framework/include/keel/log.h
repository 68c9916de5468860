/* keel/log.h - structured logging: one JSON object per line on the log fd.
 *
 * Lines are buffered and written whole by a background flusher, so logging on
 * the hot path costs a copy under a short lock, not a system call. */
#ifndef KEEL_LOG_H
#define KEEL_LOG_H

#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef enum { KEEL_LOG_DEBUG, KEEL_LOG_INFO, KEEL_LOG_WARN, KEEL_LOG_ERROR } keel_log_level;

/* Logs a message with a level; never pass secrets or request bodies. */
void keel_log(keel_log_level level, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* Logs err (code, message and internal cause) at error level, with context. */
void keel_log_error(const char *context, const keel_error *err);

#pragma GCC visibility pop

#endif

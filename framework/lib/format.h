/* format.h - private: printf into a new malloc'd string, the one helper the
 * library's C files share for it.  Implemented in error.c. */
#ifndef KEEL_FORMAT_H
#define KEEL_FORMAT_H

#include <stdarg.h>
#include "keel/error.h"

/* Returns a new string the caller frees, or NULL when memory is exhausted. */
char *keel__vformat(const char *fmt, va_list ap);
char *keel__format(const char *fmt, ...) KEEL_PRINTF(1, 2);

#endif

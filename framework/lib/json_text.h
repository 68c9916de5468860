/* json_text.h - private: writing JSON text straight into a keel_buf, shared
 * by the schema encoder, error replies and the log.  Implemented in schema.c. */
#ifndef KEEL_JSON_TEXT_H
#define KEEL_JSON_TEXT_H

#include <stddef.h>
#include "keel/arena.h"

/* Appends s (len bytes) as a JSON string literal with its quotes: control
 * characters escaped, invalid UTF-8 replaced by U+FFFD.  Failure to grow sets
 * b->failed. */
void keel__json_append_string(keel_buf *b, const char *s, size_t len);

/* Cuts jansson's quote of the input ("... near '<input>'") from an error
 * text, in place, and returns it: a configuration file's text can hold a
 * password, and the quote would carry it into a message. */
char *keel__json_error_unquoted(char *text);

#endif

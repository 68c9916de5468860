/* gen.h - what `keel gen`'s generators share: reading the app model (which
 * the CLI gets from the app binary; it never parses C), spelling names, and
 * the generators themselves, one file each.  Every generator is
 * deterministic: the model's order, no timestamps. */
#ifndef KEEL_CLI_GEN_H
#define KEEL_CLI_GEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "keel/arena.h"

/* An endpoint other programs may call: not private. */
bool gen_is_public(json_t *ep);
/* An endpoint that needs credentials. */
bool gen_needs_auth(json_t *ep);
/* obj's string member key, "" when absent; never NULL. */
const char *gen_str(json_t *obj, const char *key);
/* A field description's "in" is where ("body", "path", "query", "header"). */
bool gen_field_in(json_t *f, const char *where);
/* Where field f of a request goes for method: its "in", except that the
 * plain fields of GET, HEAD and DELETE come from the query string (as the
 * app decodes them). */
const char *gen_place(json_t *f, const char *method);
/* Whether a request with fields, sent with method, has a JSON body. */
bool gen_has_body(json_t *fields, const char *method);
/* "mark_done" -> "MarkDone" / "markDone", written into buf; returns buf.
 * Only ASCII letters and digits are kept, any other byte starts a word;
 * gen_camel's result is always an identifier (a leading digit, or nothing
 * left, gets a "_" first). */
const char *gen_pascal(const char *name, char *buf, size_t len);
const char *gen_camel(const char *name, char *buf, size_t len);
/* An ASCII letter or digit (whatever the locale). */
bool gen_is_alnum(char c);
/* Appends text on one line, with "*" "/" and "/" "*" split by a space, so
 * that it cannot end (or nest in) the C or JSDoc comment it is put in. */
void gen_comment(keel_buf *b, const char *text);

/* gen_openapi.c: the OpenAPI 3.1 document.  New reference. */
json_t *gen_openapi(json_t *model, const char *title);
/* gen_typescript.c: the TypeScript client.  Caller frees; NULL: out of memory. */
char *gen_typescript(json_t *model);
/* gen_c.c: the C client, a header and a source file whose names start with
 * prefix (a C identifier); header_name is how the source includes the
 * header.  Returns false with a message on stderr when the model has what
 * the C client cannot express; caller frees *header and *source. */
bool gen_c(json_t *model, const char *prefix, const char *header_name, char **header, char **source);

#endif

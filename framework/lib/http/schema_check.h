/* schema_check.h - private: the start-up check of field tables with what
 * only the registry knows.  Implemented in schema.c. */
#ifndef KEEL_SCHEMA_CHECK_H
#define KEEL_SCHEMA_CHECK_H

#include <stddef.h>
#include "keel/schema.h"

/* keel_schema_check, plus: a table without KEEL_END is reported as such when
 * it runs on into one of the known tables (the app's other tables; known is
 * sorted by address, nknown of them, and may be NULL).  C gives no way to
 * find the end of an unterminated array, so this catches the usual case
 * (tables sit next to each other in memory), not every case.  table_name
 * ("hello_req_fields", may be NULL) names fields in that message. */
keel_error *keel__schema_check_known(const keel_field *fields, const char *what, const char *table_name,
                                     const keel_field *const *known, size_t nknown);

/* Sorts tables (n of them) by address, as keel__schema_check_known needs. */
void keel__schema_sort_tables(const keel_field **tables, size_t n);

#endif

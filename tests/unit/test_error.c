/* tests/unit/test_error.c - framework/lib/error.c: the codes with their names
 * and HTTP statuses, and errors (message, cause, prefix, status, detail,
 * copy).  Moved from test_core.c (now test_registry.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel/keel.h"
#include "tap.h"

static void test_codes(void)
{
    static const struct { keel_code code; const char *name; unsigned status; } want[] = {
        {KEEL_OK, "ok", 200}, {KEEL_CANCELED, "canceled", 499}, {KEEL_UNKNOWN, "unknown", 500},
        {KEEL_INVALID_ARGUMENT, "invalid_argument", 400}, {KEEL_DEADLINE_EXCEEDED, "deadline_exceeded", 504},
        {KEEL_NOT_FOUND, "not_found", 404}, {KEEL_ALREADY_EXISTS, "already_exists", 409},
        {KEEL_PERMISSION_DENIED, "permission_denied", 403}, {KEEL_RESOURCE_EXHAUSTED, "resource_exhausted", 429},
        {KEEL_FAILED_PRECONDITION, "failed_precondition", 400}, {KEEL_ABORTED, "aborted", 409},
        {KEEL_OUT_OF_RANGE, "out_of_range", 400}, {KEEL_UNIMPLEMENTED, "unimplemented", 501},
        {KEEL_INTERNAL, "internal", 500}, {KEEL_UNAVAILABLE, "unavailable", 503},
        {KEEL_DATA_LOSS, "data_loss", 500}, {KEEL_UNAUTHENTICATED, "unauthenticated", 401},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        is_str(keel_code_name(want[i].code), want[i].name, "code %zu is named %s", i, want[i].name);
        is_int(keel_code_http_status(want[i].code), want[i].status, "%s maps to HTTP %u", want[i].name,
               want[i].status);
    }
    is_str(keel_code_name((keel_code)999), "unknown", "an out-of-range code is unknown");
    is_int(keel_code_http_status((keel_code)999), 500, "an out-of-range code is 500");
}

static void test_errors(void)
{
    keel_error *err = keel_error_new(KEEL_NOT_FOUND, "todo %d not found", 7);
    is_int(err->code, KEEL_NOT_FOUND, "error keeps its code");
    is_str(err->message, "todo 7 not found", "error formats its message");
    ok(err->cause == NULL, "no cause by default");
    keel_error_cause(err, "SELECT returned %d rows", 0);
    is_str(err->cause, "SELECT returned 0 rows", "cause is attached");
    keel_error_prefix(err, "todo.get");
    is_str(err->message, "todo.get: todo 7 not found", "prefix is prepended with a colon");
    keel_error_free(err);
    keel_error_free(NULL); /* allowed: a crash here fails the test */

    /* Details are for programs: set, compared and copied, never parsed from text. */
    keel_error *d = keel_error_status(keel_error_new(KEEL_NOT_FOUND, "no rows"), 410);
    ok(d->detail == KEEL_DETAIL_NONE, "an error has no detail by default");
    keel_error_cause(keel_error_detail(d, KEEL_DETAIL_NO_ROWS), "SELECT ...");
    keel_error *copy = keel_error_copy(d);
    ok(copy != d && copy->code == KEEL_NOT_FOUND && copy->detail == KEEL_DETAIL_NO_ROWS &&
           keel_error_http_status(copy) == 410 && strcmp(copy->message, "no rows") == 0 &&
           copy->cause && strcmp(copy->cause, "SELECT ...") == 0,
       "a copy keeps code, message, cause, status and detail");
    keel_error_free(copy);
    keel_error *same_text = keel_error_new(KEEL_NOT_FOUND, "no rows");
    ok(!keel_db_no_rows(same_text) && keel_db_no_rows(d), "keel_db_no_rows compares the detail, not the text");
    keel_error_free(same_text);
    keel_error_free(d);
}

int main(void)
{
    plan(44);
    test_codes();
    test_errors();
    return tap_done();
}

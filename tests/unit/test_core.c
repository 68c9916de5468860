/* tests/unit/test_core.c - errors (codes, statuses, decoration) and the arena
 * with its buffer. */
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

static void test_arena(void)
{
    char mem[256];
    keel_arena a;
    keel_arena_init(&a, mem, sizeof mem);
    void *p = keel_arena_alloc(&a, 10);
    ok(p >= (void *)mem && p < (void *)(mem + sizeof mem), "small allocations come from the inline buffer");
    ok(((uintptr_t)p % 16) == 0, "allocations are 16-byte aligned");
    void *q = keel_arena_alloc(&a, 1);
    ok((char *)q - (char *)p == 16, "allocations are packed");
    char *big = keel_arena_alloc(&a, 100000);
    ok(big != NULL && a.chunks != NULL, "a large allocation gets its own block");
    memset(big, 'x', 100000);
    char *s = keel_arena_strndup(&a, "hello world", 5);
    is_str(s, "hello", "strndup copies n bytes and terminates");
    is_str(keel_arena_printf(&a, "%s-%d", "id", 42), "id-42", "printf formats into the arena");
    ok(keel_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL, "calloc refuses an overflowing size");
    int *zeros = keel_arena_calloc(&a, 8, sizeof(int));
    int all_zero = 1;
    for (int i = 0; i < 8; i++)
        all_zero &= zeros[i] == 0;
    ok(all_zero, "calloc zeroes");
    static unsigned char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = keel_arena_alloc(&a, 300);
        if (blocks[i])
            memset(blocks[i], i & 0xff, 300);
    }
    int intact = 0;
    for (int i = 0; i < 1000; i++)
        intact += blocks[i] && blocks[i][0] == (i & 0xff) && blocks[i][299] == (i & 0xff);
    is_int(intact, 1000, "1000 allocations across blocks are distinct and keep what was written");
    long *nums = NULL;
    size_t ncap = 0, grows_ok = 0;
    for (size_t i = 0; i < 100; i++) {
        grows_ok += keel_arena_grow(&a, (void **)&nums, i, &ncap, sizeof *nums);
        nums[i] = (long)i * 3;
    }
    long sum = 0;
    for (size_t i = 0; i < 100; i++)
        sum += nums[i];
    ok(grows_ok == 100 && ncap == 128 && sum == 3 * 4950, "grow keeps 100 items through 16, 32, 64, 128");
    keel_arena_release(&a);
    ok(a.chunks == NULL, "release frees every block");
}

/* Disposers record the order they ran in. */
static char dispose_log[16];
static size_t dispose_len;

static void dispose_mark(void *p)
{
    const char *tag = p;
    if (dispose_len + 1 < sizeof dispose_log)
        dispose_log[dispose_len++] = tag[0];
    dispose_log[dispose_len] = '\0';
}

static void dispose_other(void *p)
{
    dispose_mark(p);
}

static void test_arena_shared(void)
{
    char mem[256];
    keel_arena a;
    keel_arena_init(&a, mem, sizeof mem);
    dispose_len = 0;
    dispose_log[0] = '\0';
    ok(keel_arena_find_shared(&a, dispose_mark) == NULL, "nothing is registered at first");
    char *x = keel_arena_alloc_shared(&a, 8, dispose_mark);
    char *y = keel_arena_alloc_shared(&a, 8, dispose_other);
    ok(x && y && x[0] == 0 && y[7] == 0, "shared memory comes zeroed");
    x[0] = 'a';
    y[0] = 'b';
    ok(keel_arena_find_shared(&a, dispose_mark) == x, "a subsystem finds its state by its disposer");
    ok(keel_arena_find_shared(&a, dispose_other) == y, "and another finds its own");
    keel_arena_dispose(&a);
    is_str(dispose_log, "ba", "dispose runs the newest registration first");
    ok(keel_arena_find_shared(&a, dispose_mark) == NULL, "a disposed state is no longer found");
    keel_arena_dispose(&a);
    is_str(dispose_log, "ba", "disposing twice runs nothing twice");
    char *z = keel_arena_alloc_shared(&a, 4000, dispose_mark);
    ok(z != NULL, "registration after a dispose works (in a block of its own)");
    z[0] = 'c';
    keel_arena_release(&a);
    is_str(dispose_log, "bac", "release runs what is still registered");
    ok(a.cleanups == NULL && a.chunks == NULL, "release leaves nothing behind");
}

static void test_buf(void)
{
    keel_arena a;
    keel_arena_init(&a, NULL, 0);
    keel_buf b;
    keel_buf_init(&b, &a);
    keel_buf_puts(&b, "{");
    for (int i = 0; i < 2000; i++)
        keel_buf_printf(&b, "\"k%d\":%d,", i, i);
    keel_buf_putc(&b, '}');
    ok(!b.failed, "buffer grows past several blocks");
    ok(b.len > 20000 && b.data[b.len] == '\0', "buffer stays NUL-terminated");
    ok(strncmp(b.data, "{\"k0\":0,\"k1\":1,", 15) == 0, "content survives growth");
    ok(b.data[b.len - 1] == '}', "last byte is the last appended");
    char long_text[300];
    memset(long_text, 'z', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    keel_buf c;
    keel_buf_init(&c, &a);
    keel_buf_printf(&c, "%s", long_text);
    is_int(c.len, 299, "printf longer than the small buffer");
    keel_arena_release(&a);
}

/* ---- the registry's start-up checks ---------------------------------------- */

typedef struct { const char *id; } id_req;
typedef struct { const char *id; } other_req;
static const keel_field id_req_fields[] = { KEEL_STRING(id_req, id, KEEL_IN_PATH), KEEL_END };
static const keel_field other_req_fields[] = { KEEL_STRING(other_req, id), KEEL_END };

static keel_error *by_id(keel_req *req, const id_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *by_id_too(keel_req *req, const id_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}
static keel_error *no_path_field(keel_req *req, const other_req *in, keel_empty *out)
{
    (void)req; (void)in; (void)out;
    return NULL;
}

/* Builds an app from one service and returns the start-up error message. */
static char *startup_error(const keel_service *svc, const keel_service *svc2)
{
    static char message[512];
    keel_config cfg;
    keel_config_defaults(&cfg);
    keel_app *app = NULL;
    const keel_service *list[] = {svc, svc2, NULL};
    keel_error *err = keel_app_new(list, &cfg, &app);
    if (!err) {
        keel_app_free(app);
        return NULL;
    }
    snprintf(message, sizeof message, "%s", err->message);
    keel_error_free(err);
    return message;
}

static void test_registry(void)
{
    const keel_service conflict = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty),
        KEEL_TYPED("GET", "/orders/:id", by_id_too, id_req, keel_empty),
        KEEL_ENDPOINT_END}, NULL, NULL};
    char *msg = startup_error(&conflict, NULL);
    like(msg, "orders.by_id", "a route conflict names the first registration");
    like(msg, "orders.by_id_too", "a route conflict names the second registration");

    const keel_service bad_pattern = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL};
    like(startup_error(&bad_pattern, NULL), "orders.by_id", "an unparsable path names its endpoint");

    const keel_service missing_field = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", no_path_field, other_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL};
    like(startup_error(&missing_field, NULL), "path parameter \"id\"",
         "a path parameter without a KEEL_IN_PATH field is refused");

    const keel_service extra_field = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL};
    like(startup_error(&extra_field, NULL), "no such parameter", "a KEEL_IN_PATH field without a parameter is refused");

    const keel_service bad_name = {"Orders", (const keel_endpoint[]){KEEL_ENDPOINT_END}, NULL, NULL};
    like(startup_error(&bad_name, NULL), "service name", "an invalid service name is refused");

    const keel_service ok_svc = {"orders", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL};
    like(startup_error(&ok_svc, &ok_svc), "listed twice", "a service listed twice is refused");
    ok(startup_error(&ok_svc, NULL) == NULL, "a valid service builds");

    const keel_service other = {"billing", (const keel_endpoint[]){
        KEEL_TYPED("GET", "/orders/:id", by_id_too, id_req, keel_empty), KEEL_ENDPOINT_END}, NULL, NULL};
    msg = startup_error(&ok_svc, &other);
    ok(msg != NULL, "conflicts across services are found too");
    like(msg, "billing.by_id_too", "and name the other service's endpoint");

    static keel_sqldb orders_db = KEEL_SQLDB("orders", "migrations/orders");
    static keel_sqldb orders_again = KEEL_SQLDB("orders", "migrations/orders2");
    static keel_sqldb unknown_ref = KEEL_SQLDB_NAMED("ledger");
    static keel_sqldb orders_ref = KEEL_SQLDB_NAMED("orders");
    static keel_sqldb bad_db = KEEL_SQLDB("Orders!", "migrations/x");
    const keel_service with_db = {"orders", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                  (keel_sqldb *const[]){&orders_db, NULL}, NULL};
    const keel_service refers_unknown = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                         (keel_sqldb *const[]){&unknown_ref, NULL}, NULL};
    const keel_service refers_orders = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                        (keel_sqldb *const[]){&orders_ref, NULL}, NULL};
    const keel_service declares_again = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                         (keel_sqldb *const[]){&orders_again, NULL}, NULL};
    const keel_service bad_db_svc = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                     (keel_sqldb *const[]){&bad_db, NULL}, NULL};
    like(startup_error(&with_db, &refers_unknown), "sqldb: unknown database \"ledger\"",
         "a reference to an undeclared database fails start-up with sqldb: unknown database");
    ok(startup_error(&with_db, &refers_orders) == NULL, "a reference to a declared database resolves");
    like(startup_error(&with_db, &declares_again), "KEEL_SQLDB_NAMED",
         "two declarations of one database are refused with the fix");
    like(startup_error(&bad_db_svc, NULL), "database name", "an invalid database name is refused");

    /* Service and database names follow one rule: at most 48 bytes each. */
    static const char n48[] = "a23456789012345678901234567890123456789012345678";
    static const char n49[] = "a234567890123456789012345678901234567890123456789";
    static keel_sqldb db48 = KEEL_SQLDB(n48, "migrations/x");
    static keel_sqldb db49 = KEEL_SQLDB(n49, "migrations/x");
    const keel_service svc48 = {n48, (const keel_endpoint[]){KEEL_ENDPOINT_END}, (keel_sqldb *const[]){&db48, NULL},
                                NULL};
    const keel_service svc49 = {n49, (const keel_endpoint[]){KEEL_ENDPOINT_END}, NULL, NULL};
    const keel_service db49_svc = {"billing", (const keel_endpoint[]){KEEL_ENDPOINT_END},
                                   (keel_sqldb *const[]){&db49, NULL}, NULL};
    ok(startup_error(&svc48, NULL) == NULL, "a 48-byte service name with a 48-byte database name builds");
    like(startup_error(&svc49, NULL), "at most 48", "a 49-byte service name is refused, saying the limit");
    like(startup_error(&db49_svc, NULL), "at most 48", "a 49-byte database name is refused, saying the limit");
}

int main(void)
{
    test_codes();
    test_errors();
    test_arena();
    test_arena_shared();
    test_buf();
    test_registry();
    return tap_done();
}

/* services/auth - the example app's authentication and cross-cutting
 * middleware: the auth handler (a Bearer token, or the same token in the
 * session cookie a browser page sends: the operator's ADMIN_TOKEN from the
 * secrets store, or a token whose SHA-256 is in the accounts database), GET /auth/whoami, GET /auth/via-call (auth data through
 * keel_call), and a global timing middleware that adds
 * Server-Timing to every response. */
#include <keel/keel.h>

#include <stdio.h>
#include <string.h>

#include "services.h"

typedef struct {
    const char *user_id;
    bool admin;
} caller;

static const keel_field caller_fields[] = KEEL_FIELDS(KEEL_STRING(caller, user_id), KEEL_BOOL(caller, admin));

static keel_sqldb accounts_db = KEEL_SQLDB("accounts", "migrations/accounts");

/* The operator's token is compared in constant time; any other token is
 * looked up by its hash, with the statement's parameter bound. */
static keel_error *authenticate(keel_req *req, const char *token, caller *out)
{
    const char *admin = keel_secret("ADMIN_TOKEN");
    if (admin && keel_secure_equal(token, strlen(token), admin, strlen(admin))) {
        out->user_id = "admin";
        out->admin = true;
        keel_auth_set_subject(req, "admin");
        return NULL;
    }
    keel_row *row;
    keel_error *err = keel_db_query_row(req, &accounts_db, &row,
        "SELECT user_id, admin FROM api_token WHERE token_sha256 = sha256(convert_to($1, 'UTF8'))",
        KEEL_ARG_TEXT(token));
    if (err && keel_db_no_rows(err)) {
        keel_error_free(err);
        return keel_error_new(KEEL_UNAUTHENTICATED, "unknown token");
    }
    if (!err)
        err = keel_row_scan(row, "tb", &out->user_id, &out->admin);
    if (!err)
        keel_auth_set_subject(req, out->user_id);
    return err;
}

static const keel_auth_handler auth_handler = KEEL_AUTH_HANDLER(authenticate, caller, .cookie = "session");

/* GET /auth/whoami: the caller as the auth handler saw it. */
static keel_error *whoami(keel_req *req, const keel_empty *in, caller *out)
{
    (void)in;
    *out = *(const caller *)keel_req_auth(req);
    return NULL;
}

/* A private endpoint that needs auth data, and a public one that reaches it
 * with keel_call: the caller's auth data goes with the call, and without any
 * the call is refused as the endpoint would be. */
static keel_error *caller_private(keel_req *req, const keel_empty *in, caller *out)
{
    return whoami(req, in, out);
}

static keel_error *via_call(keel_req *req, const keel_empty *in, caller *out)
{
    return keel_call(req, "auth", "caller_private", in, out);
}

/* Every response says how long the app took (Server-Timing, which browsers'
 * developer tools show). */
static void timing_after(keel_req *req, keel_resp *resp, void *state)
{
    (void)state;
    char value[48];
    unsigned long long us = keel_req_elapsed_us(req);
    snprintf(value, sizeof value, "app;dur=%llu.%03llu", us / 1000, us % 1000); /* milliseconds */
    keel_error_free(keel_resp_header(resp, "Server-Timing", value));
}

static const keel_middleware timing = {.name = "timing", .after = timing_after, .global = true};

const keel_service auth_service = {
    .name = "auth",
    .databases = (keel_sqldb *const[]){ &accounts_db, NULL },
    .secrets = (const char *const[]){ "ADMIN_TOKEN", NULL },
    .auth = &auth_handler,
    .middleware = (const keel_middleware *const[]){ &timing, NULL },
    .calls = (const char *const[]){ "auth.caller_private", NULL },
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/auth/whoami", whoami, keel_empty, caller, KEEL_AUTH),
        KEEL_TYPED("GET", "/auth/internal/caller", caller_private, keel_empty, caller, KEEL_PRIVATE | KEEL_AUTH),
        KEEL_TYPED("GET", "/auth/via-call", via_call, keel_empty, caller),
        KEEL_ENDPOINT_END
    },
};

/* keel/webhook.h - verifying signed webhook deliveries (GitHub, Stripe,
 * Standard Webhooks), incrementally so that a large body can be checked as it
 * streams in, without buffering it whole.
 *
 *     keel_webhook wh;
 *     keel_error *err = keel_webhook_github_begin(&wh, keel_secret("GITHUB_WEBHOOK_SECRET"));
 *     ... for each chunk: keel_webhook_update(&wh, data, len);
 *     err = keel_webhook_github_finish(&wh, keel_req_header(req, "X-Hub-Signature-256"));
 *
 *     // Stripe and Standard Webhooks sign a timestamp too: their headers are
 *     // given (and checked for format and age) at begin, the body after.
 *     err = keel_webhook_stripe_begin(&wh, secret, keel_req_header(req, "Stripe-Signature"), 0, 0);
 *     ... keel_webhook_update(&wh, data, len) ...
 *     err = keel_webhook_finish(&wh);
 *
 * HMAC-SHA256 with libsodium; signatures are compared in constant time
 * (sodium_memcmp).  Every failure - missing or malformed header, wrong
 * signature, stale or future timestamp - is an unauthenticated error (401)
 * whose message says which, and never contains the secret.  Keys and
 * intermediate state are wiped (sodium_memzero) by finish, by a failing begin
 * and by keel_webhook_abort; after begin succeeds, call finish or abort. */
#ifndef KEEL_WEBHOOK_H
#define KEEL_WEBHOOK_H

#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

/* Default accepted clock skew / age of a signed timestamp, in seconds. */
#define KEEL_WEBHOOK_TOLERANCE 300
/* The most signatures a Stripe-Signature or webhook-signature header may list. */
#define KEEL_WEBHOOK_MAX_SIGS 8

typedef enum {
    KEEL_WEBHOOK_NONE = 0,
    KEEL_WEBHOOK_GITHUB,
    KEEL_WEBHOOK_STRIPE,
    KEEL_WEBHOOK_STANDARD
} keel_webhook_provider;

/* Verifier state; treat as opaque.  May live on the stack or in a request's
 * arena; it holds no heap memory. */
typedef struct keel_webhook {
    alignas(16) unsigned char hmac[384]; /* crypto_auth_hmacsha256_state */
    keel_webhook_provider provider;      /* NONE: not begun, or finished */
    unsigned nsigs;                      /* expected signatures given at begin */
    unsigned char sigs[KEEL_WEBHOOK_MAX_SIGS][32];
    uint64_t bytes;                      /* body bytes seen */
} keel_webhook;

/* ---- incremental ---------------------------------------------------------- */

/* GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>.  The
 * header is only needed at finish.  Fails only for a NULL or empty secret. */
keel_error *keel_webhook_github_begin(keel_webhook *wh, const char *secret);

/* Stripe: Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...] over
 * "<t>.<body>", keyed with the whole endpoint secret ("whsec_..." as is).  Any
 * v1 may match; other schemes (v0) are ignored.  now is the current Unix time
 * (0: time(NULL)); tolerance in seconds (0: KEEL_WEBHOOK_TOLERANCE) applies
 * both ways.  A missing or malformed header or a timestamp out of tolerance
 * fails here, before any body is read. */
keel_error *keel_webhook_stripe_begin(keel_webhook *wh, const char *secret, const char *sig_header,
                                      int64_t now, int64_t tolerance);

/* Standard Webhooks: webhook-id, webhook-timestamp and webhook-signature
 * ("v1,<base64> v1,<base64>...", space-separated; other versions ignored)
 * over "<id>.<timestamp>.<body>", keyed with the base64 bytes of the secret
 * after its "whsec_" prefix (the prefix is optional).  now and tolerance as
 * for Stripe. */
keel_error *keel_webhook_standard_begin(keel_webhook *wh, const char *secret, const char *msg_id,
                                        const char *timestamp, const char *sig_header, int64_t now,
                                        int64_t tolerance);

/* Feeds the next len bytes of the body (any chunking gives the same result). */
void keel_webhook_update(keel_webhook *wh, const void *data, size_t len);

/* GitHub: checks the X-Hub-Signature-256 value (NULL: missing header). */
keel_error *keel_webhook_github_finish(keel_webhook *wh, const char *sig_header);

/* Stripe and Standard Webhooks: checks the signatures given at begin.  On a
 * GitHub verifier this fails (use keel_webhook_github_finish). */
keel_error *keel_webhook_finish(keel_webhook *wh);

/* Abandons a verification and wipes its state (safe on a finished one). */
void keel_webhook_abort(keel_webhook *wh);

/* ---- one shot ---------------------------------------------------------------- */

keel_error *keel_webhook_github_verify(const char *secret, const void *body, size_t len,
                                       const char *sig_header);
keel_error *keel_webhook_stripe_verify(const char *secret, const void *body, size_t len,
                                       const char *sig_header, int64_t now, int64_t tolerance);
keel_error *keel_webhook_standard_verify(const char *secret, const char *msg_id, const char *timestamp,
                                         const char *sig_header, const void *body, size_t len,
                                         int64_t now, int64_t tolerance);

/* ---- signing (for tests and for sending webhooks) ------------------------------ */

/* Writes "sha256=<64 hex>" (NUL-terminated) for body into out. */
#define KEEL_WEBHOOK_GITHUB_SIG_LEN (7 + 64 + 1)
void keel_webhook_github_sign(const char *secret, const void *body, size_t len,
                              char out[KEEL_WEBHOOK_GITHUB_SIG_LEN]);

#pragma GCC visibility pop

#endif

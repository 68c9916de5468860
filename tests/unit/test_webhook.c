/* tests/unit/test_webhook.c - webhook signature verification (keel/webhook.h)
 * against the providers' published test vectors, plus tampering, wrong
 * secrets, several signatures, stale and future timestamps, malformed
 * headers and a 10 MiB body fed in chunks.
 *
 * Vectors (each checked with `openssl dgst -sha256 -hmac` before use):
 * - GitHub docs ("Validating webhook deliveries"): secret "It's a Secret to
 *   Everybody", payload "Hello, World!", sha256=757107ea...3e17.
 * - Standard Webhooks spec example: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,
 *   msg_p5jXN8AQM9LWM0D4loKWxJek, 1614265330, {"test": 2432232314}
 *   -> v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
 * - Stripe (hand-computed): printf %s '1700000000.{"id":"evt_1","object":"event"}'
 *   | openssl dgst -sha256 -hmac whsec_test_secret -> 0c8670ed...6edd. */
#include <keel/keel.h>
#include <keel/webhook.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS "1614265330"
#define SW_NOW 1614265330
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

#define ST_SECRET "whsec_test_secret"
#define ST_T 1700000000
#define ST_BODY "{\"id\":\"evt_1\",\"object\":\"event\"}"
#define ST_V1 "0c8670ed117751cc551a20e35839447075c42800ea3cf3e8a2fbda99cd1e6edd"

/* Checks that err is unauthenticated (401), that its message contains want,
 * and that it does not contain secret; frees err. */
static void is_unauth(keel_error *err, const char *want, const char *secret, const char *name)
{
    if (!ok(err != NULL, "%s: refused", name))
        return;
    ok(err->code == KEEL_UNAUTHENTICATED && keel_error_http_status(err) == 401,
       "%s: unauthenticated (401)", name);
    like(err->message, want, "%s: message says why", name);
    ok(!secret || !strstr(err->message, secret), "%s: message does not echo the secret", name);
    keel_error_free(err);
}

static void is_ok(keel_error *err, const char *name)
{
    if (!ok(err == NULL, "%s", name))
        diag("error: %s", err->message);
    keel_error_free(err);
}

static void test_github(void)
{
    is_ok(keel_webhook_github_verify(GH_SECRET, GH_BODY, strlen(GH_BODY), GH_SIG),
          "github: the documented example verifies");
    char sig[KEEL_WEBHOOK_GITHUB_SIG_LEN];
    keel_webhook_github_sign(GH_SECRET, GH_BODY, strlen(GH_BODY), sig);
    is_str(sig, GH_SIG, "github: signing reproduces the documented signature");

    /* Uppercase hex digits are the same signature. */
    char upper[sizeof GH_SIG];
    strcpy(upper, GH_SIG);
    for (char *p = upper + 7; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    is_ok(keel_webhook_github_verify(GH_SECRET, GH_BODY, strlen(GH_BODY), upper), "github: uppercase hex accepted");

    /* The same one byte at a time. */
    keel_webhook wh;
    is_ok(keel_webhook_github_begin(&wh, GH_SECRET), "github: begin");
    for (size_t i = 0; i < strlen(GH_BODY); i++)
        keel_webhook_update(&wh, GH_BODY + i, 1);
    is_ok(keel_webhook_github_finish(&wh, GH_SIG), "github: byte-by-byte updates verify");
    ok(wh.provider == KEEL_WEBHOOK_NONE, "github: finish leaves the state wiped");

    is_unauth(keel_webhook_github_verify(GH_SECRET, "Hello, World?", 13, GH_SIG), "does not match", GH_SECRET,
              "github tampered body");
    is_unauth(keel_webhook_github_verify("It's a Secret to Nobody", GH_BODY, strlen(GH_BODY), GH_SIG),
              "does not match", "It's a Secret to Nobody", "github wrong secret");
    is_unauth(keel_webhook_github_verify(GH_SECRET, GH_BODY, strlen(GH_BODY), NULL), "missing X-Hub-Signature-256",
              GH_SECRET, "github missing header");
    is_unauth(keel_webhook_github_verify(GH_SECRET, GH_BODY, strlen(GH_BODY), ""), "missing", GH_SECRET,
              "github empty header");
    const char *malformed[] = {
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17a",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043eZZ",
        "sha256=",
        NULL,
    };
    for (int i = 0; malformed[i]; i++) {
        char name[64];
        snprintf(name, sizeof name, "github malformed header #%d", i + 1);
        is_unauth(keel_webhook_github_verify(GH_SECRET, GH_BODY, strlen(GH_BODY), malformed[i]), "malformed",
                  GH_SECRET, name);
    }

    keel_error *err = keel_webhook_github_begin(&wh, "");
    ok(err && err->code == KEEL_INTERNAL, "github: an empty secret is a server error, not a client one");
    keel_error_free(err);
    err = keel_webhook_github_begin(&wh, NULL);
    ok(err && err->code == KEEL_INTERNAL, "github: a NULL secret too");
    keel_error_free(err);
    err = keel_webhook_finish(&wh);
    ok(err && err->code == KEEL_INTERNAL, "finish on a verifier never begun is an error");
    keel_error_free(err);
}

/* A Stripe-Signature v1 for "<t>.<body>": the same HMAC GitHub uses. */
static void stripe_v1(const char *secret, long long t, const char *body, size_t len, char out[65])
{
    size_t plen = (size_t)snprintf(NULL, 0, "%lld.", t);
    char *msg = malloc(plen + len + 1);
    snprintf(msg, plen + 1, "%lld.", t);
    memcpy(msg + plen, body, len);
    char sig[KEEL_WEBHOOK_GITHUB_SIG_LEN];
    keel_webhook_github_sign(secret, msg, plen + len, sig);
    memcpy(out, sig + 7, 65);
    free(msg);
}

static void test_stripe(void)
{
    const size_t n = strlen(ST_BODY);
    const char *hdr = "t=1700000000,v1=" ST_V1;
    is_ok(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, hdr, ST_T, 0), "stripe: the openssl-computed vector verifies");
    char v1[65];
    stripe_v1(ST_SECRET, ST_T, ST_BODY, n, v1);
    is_str(v1, ST_V1, "stripe: self-consistent with the hand-checked value");

    is_ok(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n,
                                     "t=1700000000,v1=" "00000000000000000000000000000000000000000000000000000000000000ff"
                                     ",v0=abc,v1=" ST_V1 ",v1=1111111111111111111111111111111111111111111111111111111111111111",
                                     ST_T, 0),
          "stripe: several v1 values, one valid (and a v0), verifies");
    is_ok(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, "v1=" ST_V1 ", t=1700000000", ST_T, 0),
          "stripe: order and spaces do not matter");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n,
                                         "t=1700000000,v1=00000000000000000000000000000000000000000000000000000000000000ff,"
                                         "v1=1111111111111111111111111111111111111111111111111111111111111111",
                                         ST_T, 0),
              "does not match", ST_SECRET, "stripe several v1 none valid");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, "{\"id\":\"evt_2\",\"object\":\"event\"}", n, hdr, ST_T, 0),
              "does not match", ST_SECRET, "stripe tampered body");
    is_unauth(keel_webhook_stripe_verify("whsec_other", ST_BODY, n, hdr, ST_T, 0), "does not match", "whsec_other",
              "stripe wrong secret");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, "t=1700000001,v1=" ST_V1, ST_T, 0), "does not match",
              ST_SECRET, "stripe timestamp changed (it is signed)");

    /* Tolerance: 300 s both ways by default, configurable. */
    is_ok(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, hdr, ST_T + 300, 0), "stripe: 300 s old is accepted");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, hdr, ST_T + 301, 0), "too old", ST_SECRET,
              "stripe stale timestamp");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, hdr, ST_T - 301, 0), "future", ST_SECRET,
              "stripe future timestamp");
    is_ok(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, hdr, ST_T + 500, 600), "stripe: tolerance is configurable");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, hdr, 0, 0), "too old", ST_SECRET,
              "stripe 2023 timestamp against the real clock");

    const char *bad[] = {"v1=" ST_V1, "t=abc,v1=" ST_V1, "t=1700000000,t=1700000000,v1=" ST_V1, "t=,v1=" ST_V1,
                         "t=-1700000000,v1=" ST_V1, "garbage", NULL};
    for (int i = 0; bad[i]; i++) {
        char name[64];
        snprintf(name, sizeof name, "stripe malformed timestamp #%d", i + 1);
        is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, bad[i], ST_T, 0), "malformed", ST_SECRET, name);
    }
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, "t=1700000000", ST_T, 0), "no v1 signature", ST_SECRET,
              "stripe no v1");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, "t=1700000000,v1=abcd,v1=zz", ST_T, 0),
              "no valid v1", ST_SECRET, "stripe only malformed v1");
    is_unauth(keel_webhook_stripe_verify(ST_SECRET, ST_BODY, n, NULL, ST_T, 0), "missing Stripe-Signature", ST_SECRET,
              "stripe missing header");

    keel_webhook wh;
    keel_error *err = keel_webhook_stripe_begin(&wh, ST_SECRET, hdr, ST_T + 1000, 0);
    ok(err && err->code == KEEL_UNAUTHENTICATED && wh.provider == KEEL_WEBHOOK_NONE,
       "stripe: a stale timestamp is refused at begin, before the body");
    keel_error_free(err);
    is_ok(keel_webhook_stripe_begin(&wh, ST_SECRET, hdr, ST_T, 0), "stripe: begin");
    for (size_t i = 0; i < n; i += 5)
        keel_webhook_update(&wh, ST_BODY + i, n - i < 5 ? n - i : 5);
    is_ok(keel_webhook_finish(&wh), "stripe: chunked updates verify");
    is_ok(keel_webhook_stripe_begin(&wh, ST_SECRET, hdr, ST_T, 0), "stripe: begin again");
    keel_webhook_abort(&wh);
    ok(wh.provider == KEEL_WEBHOOK_NONE && wh.nsigs == 0, "stripe: abort wipes the state");
}

static void test_standard(void)
{
    const size_t n = strlen(SW_BODY);
    is_ok(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, SW_SIG, SW_BODY, n, SW_NOW, 0),
          "standard webhooks: the spec's example verifies");
    is_ok(keel_webhook_standard_verify("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SW_ID, SW_TS, SW_SIG, SW_BODY, n, SW_NOW, 0),
          "standard webhooks: the whsec_ prefix is optional");
    is_ok(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS,
                                       "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,abcdef " SW_SIG, SW_BODY, n,
                                       SW_NOW, 0),
          "standard webhooks: several signatures (one valid, one v1a) verify");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
                                           SW_BODY, n, SW_NOW, 0),
              "does not match", SW_SECRET, "standard wrong signature");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, SW_SIG, "{\"test\": 2432232315}", n, SW_NOW, 0),
              "does not match", SW_SECRET, "standard tampered body");
    is_unauth(keel_webhook_standard_verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SW_ID, SW_TS, SW_SIG,
                                           SW_BODY, n, SW_NOW, 0),
              "does not match", "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "standard wrong secret");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, "msg_other", SW_TS, SW_SIG, SW_BODY, n, SW_NOW, 0),
              "does not match", SW_SECRET, "standard other message id (it is signed)");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, "1614265331", SW_SIG, SW_BODY, n, SW_NOW, 0),
              "does not match", SW_SECRET, "standard other timestamp (it is signed)");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, SW_SIG, SW_BODY, n, SW_NOW + 301, 0), "too old",
              SW_SECRET, "standard stale timestamp");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, SW_SIG, SW_BODY, n, SW_NOW - 301, 0), "future",
              SW_SECRET, "standard future timestamp");
    is_ok(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, SW_SIG, SW_BODY, n, SW_NOW - 300, 0),
          "standard webhooks: 300 s ahead is accepted");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, NULL, SW_TS, SW_SIG, SW_BODY, n, SW_NOW, 0), "missing webhook-id",
              SW_SECRET, "standard missing id");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, NULL, SW_SIG, SW_BODY, n, SW_NOW, 0),
              "missing webhook-timestamp", SW_SECRET, "standard missing timestamp");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, NULL, SW_BODY, n, SW_NOW, 0),
              "missing webhook-signature", SW_SECRET, "standard missing signature");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, "16142653x0", SW_SIG, SW_BODY, n, SW_NOW, 0),
              "malformed webhook-timestamp", SW_SECRET, "standard malformed timestamp");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                           SW_BODY, n, SW_NOW, 0),
              "no v1 signature", SW_SECRET, "standard signature without version");
    is_unauth(keel_webhook_standard_verify(SW_SECRET, SW_ID, SW_TS, "v1,not*base64", SW_BODY, n, SW_NOW, 0),
              "no valid v1", SW_SECRET, "standard malformed base64");
    keel_error *err = keel_webhook_standard_verify("whsec_!!not base64!!", SW_ID, SW_TS, SW_SIG, SW_BODY, n, SW_NOW, 0);
    ok(err && err->code == KEEL_INTERNAL && !strstr(err->message, "!!not"),
       "standard webhooks: an undecodable secret is a server error that does not echo it");
    keel_error_free(err);

    keel_webhook wh;
    is_ok(keel_webhook_standard_begin(&wh, SW_SECRET, SW_ID, SW_TS, SW_SIG, SW_NOW, 0), "standard: begin");
    for (size_t i = 0; i < n; i++)
        keel_webhook_update(&wh, SW_BODY + i, 1);
    is_ok(keel_webhook_finish(&wh), "standard: byte-by-byte updates verify");
}

/* 10 MiB fed in uneven chunks, without holding a second copy. */
static void test_large(void)
{
    const size_t size = 10u << 20;
    char *body = malloc(size);
    for (size_t i = 0; i < size; i++)
        body[i] = (char)('a' + (i * 7919) % 26);
    char sig[KEEL_WEBHOOK_GITHUB_SIG_LEN];
    keel_webhook_github_sign(GH_SECRET, body, size, sig);
    keel_webhook wh;
    keel_webhook_github_begin(&wh, GH_SECRET);
    for (size_t off = 0, chunk = 1; off < size; off += chunk, chunk = chunk * 3 % 65521 + 1) {
        if (chunk > size - off)
            chunk = size - off;
        keel_webhook_update(&wh, body + off, chunk);
    }
    ok(wh.bytes == size, "large: every byte of 10 MiB was fed");
    is_ok(keel_webhook_github_finish(&wh, sig), "large: a 10 MiB body fed in uneven chunks verifies (github)");

    char v1[65], hdr[128];
    stripe_v1(ST_SECRET, ST_T, body, size, v1);
    snprintf(hdr, sizeof hdr, "t=%d,v1=%s", ST_T, v1);
    is_ok(keel_webhook_stripe_begin(&wh, ST_SECRET, hdr, ST_T, 0), "large: stripe begin");
    for (size_t off = 0; off < size; off += 65536)
        keel_webhook_update(&wh, body + off, 65536);
    is_ok(keel_webhook_finish(&wh), "large: a 10 MiB body in 64 KiB chunks verifies (stripe)");

    body[size / 2] ^= 1;
    keel_webhook_github_begin(&wh, GH_SECRET);
    for (size_t off = 0; off < size; off += 65536)
        keel_webhook_update(&wh, body + off, 65536);
    is_unauth(keel_webhook_github_finish(&wh, sig), "does not match", GH_SECRET, "large one flipped bit");
    free(body);
}

int main(void)
{
    plan(191);
    test_github();
    test_stripe();
    test_standard();
    test_large();
    return tap_done();
}

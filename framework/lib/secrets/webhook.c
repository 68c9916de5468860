/* webhook.c - incremental HMAC-SHA256 verification of webhook deliveries
 * (GitHub, Stripe, Standard Webhooks) with libsodium; see keel/webhook.h. */
#include "keel/webhook.h"
#include "observe/trace.h"
#include "keel/secrets.h"

#include <ctype.h>
#include <limits.h>
#include <sodium.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>

_Static_assert(sizeof(crypto_auth_hmacsha256_state) <= sizeof(((keel_webhook *)0)->hmac),
               "keel_webhook.hmac too small for crypto_auth_hmacsha256_state");
_Static_assert(alignof(crypto_auth_hmacsha256_state) <= 16, "keel_webhook.hmac alignment");
_Static_assert(crypto_auth_hmacsha256_BYTES == 32, "HMAC-SHA256 is 32 bytes");

#define HMAC(wh) ((crypto_auth_hmacsha256_state *)(void *)(wh)->hmac)

static keel_error *unauth(const char *fmt, const char *arg)
{
    return keel_error_new(KEEL_UNAUTHENTICATED, fmt, arg);
}

static void wipe(keel_webhook *wh)
{
    sodium_memzero(wh, sizeof *wh);
    wh->provider = KEEL_WEBHOOK_NONE;
}

void keel_webhook_abort(keel_webhook *wh)
{
    if (wh)
        wipe(wh);
}

static keel_error *start(keel_webhook *wh, keel_webhook_provider provider, const unsigned char *key,
                         size_t keylen)
{
    if (sodium_init() < 0)
        return keel_error_new(KEEL_INTERNAL, "libsodium could not be initialised");
    crypto_auth_hmacsha256_init(HMAC(wh), key, keylen);
    wh->provider = provider;
    wh->bytes = 0;
    return NULL;
}

static keel_error *check_secret(keel_webhook *wh, const char *secret)
{
    if (!secret || !*secret) {
        wipe(wh);
        return keel_error_new(KEEL_INTERNAL, "webhook secret is not set");
    }
    return NULL;
}

void keel_webhook_update(keel_webhook *wh, const void *data, size_t len)
{
    if (!wh || wh->provider == KEEL_WEBHOOK_NONE || !len)
        return;
    crypto_auth_hmacsha256_update(HMAC(wh), data, len);
    wh->bytes += len;
}

/* Finishes the HMAC and compares it with every expected signature (all of
 * them, in constant time); wipes wh. */
static bool mac_matches(keel_webhook *wh, const unsigned char (*sigs)[32], unsigned nsigs)
{
    unsigned char mac[32];
    crypto_auth_hmacsha256_final(HMAC(wh), mac);
    int found = 0;
    for (unsigned i = 0; i < nsigs; i++)
        found |= keel_secure_equal(mac, sizeof mac, sigs[i], sizeof mac);
    sodium_memzero(mac, sizeof mac);
    wipe(wh);
    return found != 0;
}

/* ---- timestamps ------------------------------------------------------------- */

/* Unix seconds from exactly [0-9]{1,18} in s[0..len). */
static bool parse_unix(const char *s, size_t len, int64_t *out)
{
    if (len == 0 || len > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static keel_error *check_age(int64_t ts, int64_t now, int64_t tolerance)
{
    if (now <= 0)
        now = (int64_t)time(NULL);
    if (tolerance <= 0)
        tolerance = KEEL_WEBHOOK_TOLERANCE;
    if (now - ts > tolerance)
        return keel_error_new(KEEL_UNAUTHENTICATED, "webhook timestamp too old (more than %lld s)",
                              (long long)tolerance);
    if (ts - now > tolerance)
        return keel_error_new(KEEL_UNAUTHENTICATED, "webhook timestamp too far in the future (more than %lld s)",
                              (long long)tolerance);
    return NULL;
}

/* ---- GitHub ------------------------------------------------------------------ */

keel_error *keel_webhook_github_begin(keel_webhook *wh, const char *secret)
{
    memset(wh, 0, sizeof *wh);
    keel_error *err = check_secret(wh, secret);
    if (err)
        return err;
    return start(wh, KEEL_WEBHOOK_GITHUB, (const unsigned char *)secret, strlen(secret));
}

/* The verification's span, on the request whose handler runs here. */
static keel_error *traced(const char *provider, keel_error *err, keel_span *span, keel_req *req)
{
    keel__span_attr_str(span, "keel.webhook.provider", provider);
    keel__span_attr_bool(span, "keel.webhook.verified", err == NULL);
    keel__span_end(req, span, err);
    return err;
}

static keel_error *github_finish(keel_webhook *wh, const char *sig_header);

keel_error *keel_webhook_github_finish(keel_webhook *wh, const char *sig_header)
{
    keel_req *req = keel__trace_current_req();
    keel_span *span = keel__span_start(req, "webhook verify", KEEL_SPAN_INTERNAL);
    return traced("github", github_finish(wh, sig_header), span, req);
}

static keel_error *github_finish(keel_webhook *wh, const char *sig_header)
{
    if (wh->provider != KEEL_WEBHOOK_GITHUB) {
        wipe(wh);
        return keel_error_new(KEEL_INTERNAL, "webhook verifier not begun for GitHub");
    }
    static const char *const name = "X-Hub-Signature-256";
    if (!sig_header || !*sig_header) {
        wipe(wh);
        return unauth("missing %s header", name);
    }
    unsigned char sig[1][32];
    size_t got = 0;
    const char *end = NULL;
    if (strncasecmp(sig_header, "sha256=", 7) != 0 || strlen(sig_header + 7) != 64 ||
        sodium_hex2bin(sig[0], sizeof sig[0], sig_header + 7, 64, NULL, &got, &end) != 0 || got != 32 ||
        *end) {
        wipe(wh);
        return unauth("malformed %s header (expected sha256=<64 hex digits>)", name);
    }
    if (!mac_matches(wh, (const unsigned char (*)[32])sig, 1))
        return unauth("%s does not match the body (wrong signature or secret)", name);
    return NULL;
}

keel_error *keel_webhook_github_verify(const char *secret, const void *body, size_t len, const char *sig_header)
{
    keel_webhook wh;
    keel_error *err = keel_webhook_github_begin(&wh, secret);
    if (err)
        return err;
    keel_webhook_update(&wh, body, len);
    return keel_webhook_github_finish(&wh, sig_header);
}

void keel_webhook_github_sign(const char *secret, const void *body, size_t len, char out[KEEL_WEBHOOK_GITHUB_SIG_LEN])
{
    unsigned char mac[32];
    crypto_auth_hmacsha256_state st;
    if (sodium_init() < 0) {
        out[0] = '\0';
        return;
    }
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, secret ? strlen(secret) : 0);
    crypto_auth_hmacsha256_update(&st, body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, 65, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
    sodium_memzero(mac, sizeof mac);
}

/* ---- Stripe -------------------------------------------------------------------- */

static void trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

keel_error *keel_webhook_stripe_begin(keel_webhook *wh, const char *secret, const char *sig_header,
                                      int64_t now, int64_t tolerance)
{
    static const char *const name = "Stripe-Signature";
    memset(wh, 0, sizeof *wh);
    keel_error *err = check_secret(wh, secret);
    if (err)
        return err;
    if (!sig_header || !*sig_header)
        return unauth("missing %s header", name);
    int64_t ts = -1;
    bool bad_t = false;
    unsigned v1_seen = 0;
    for (const char *p = sig_header; *p;) {
        size_t n = strcspn(p, ",");
        const char *item = p;
        size_t ilen = n;
        p += n + (p[n] == ',');
        trim(&item, &ilen);
        const char *eq = memchr(item, '=', ilen);
        if (!eq)
            continue; /* not a key=value pair: ignored, as Stripe's libraries do */
        size_t klen = (size_t)(eq - item);
        const char *val = eq + 1;
        size_t vlen = ilen - klen - 1;
        if (klen == 1 && item[0] == 't') {
            if (ts >= 0 || !parse_unix(val, vlen, &ts))
                bad_t = true;
        } else if (klen == 2 && memcmp(item, "v1", 2) == 0) {
            v1_seen++;
            size_t got = 0;
            const char *end = NULL;
            if (vlen != 64)
                continue;
            if (wh->nsigs == KEEL_WEBHOOK_MAX_SIGS) {
                wipe(wh);
                return keel_error_new(KEEL_UNAUTHENTICATED, "malformed %s header (more than %d signatures)", name,
                                      KEEL_WEBHOOK_MAX_SIGS);
            }
            if (sodium_hex2bin(wh->sigs[wh->nsigs], 32, val, vlen, NULL, &got, &end) == 0 && got == 32 &&
                end == val + vlen)
                wh->nsigs++;
        }
    }
    if (bad_t || ts < 0) {
        wipe(wh);
        return unauth("malformed %s header (expected one t=<unix seconds>)", name);
    }
    if (wh->nsigs == 0) {
        wipe(wh);
        return unauth(v1_seen ? "malformed %s header (no valid v1 signature)"
                              : "malformed %s header (no v1 signature)", name);
    }
    if ((err = check_age(ts, now, tolerance))) {
        wipe(wh);
        return err;
    }
    if ((err = start(wh, KEEL_WEBHOOK_STRIPE, (const unsigned char *)secret, strlen(secret)))) {
        wipe(wh);
        return err;
    }
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)ts);
    crypto_auth_hmacsha256_update(HMAC(wh), (const unsigned char *)prefix, (size_t)plen);
    return NULL;
}

keel_error *keel_webhook_stripe_verify(const char *secret, const void *body, size_t len,
                                       const char *sig_header, int64_t now, int64_t tolerance)
{
    keel_webhook wh;
    keel_error *err = keel_webhook_stripe_begin(&wh, secret, sig_header, now, tolerance);
    if (err)
        return err;
    keel_webhook_update(&wh, body, len);
    return keel_webhook_finish(&wh);
}

/* ---- Standard Webhooks ------------------------------------------------------------- */

keel_error *keel_webhook_standard_begin(keel_webhook *wh, const char *secret, const char *msg_id,
                                        const char *timestamp, const char *sig_header, int64_t now,
                                        int64_t tolerance)
{
    memset(wh, 0, sizeof *wh);
    keel_error *err = check_secret(wh, secret);
    if (err)
        return err;
    if (!msg_id || !*msg_id)
        return unauth("missing %s header", "webhook-id");
    if (!timestamp || !*timestamp)
        return unauth("missing %s header", "webhook-timestamp");
    if (!sig_header || !*sig_header)
        return unauth("missing %s header", "webhook-signature");
    int64_t ts;
    if (!parse_unix(timestamp, strlen(timestamp), &ts))
        return unauth("malformed %s header (expected unix seconds)", "webhook-timestamp");

    unsigned v1_seen = 0;
    for (const char *p = sig_header; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        const char *item = p;
        p += n;
        if (n < 3 || memcmp(item, "v1,", 3) != 0)
            continue; /* another version (v1a...) or noise: ignored */
        v1_seen++;
        const char *b64 = item + 3;
        size_t blen = n - 3;
        if (blen != 44) /* base64 of 32 bytes, padded */
            continue;
        if (wh->nsigs == KEEL_WEBHOOK_MAX_SIGS) {
            wipe(wh);
            return keel_error_new(KEEL_UNAUTHENTICATED, "malformed %s header (more than %d signatures)",
                                  "webhook-signature", KEEL_WEBHOOK_MAX_SIGS);
        }
        size_t got = 0;
        const char *end = NULL;
        if (sodium_base642bin(wh->sigs[wh->nsigs], 32, b64, blen, NULL, &got, &end,
                              sodium_base64_VARIANT_ORIGINAL) == 0 &&
            got == 32 && end == b64 + blen)
            wh->nsigs++;
    }
    if (wh->nsigs == 0) {
        wipe(wh);
        return unauth(v1_seen ? "malformed %s header (no valid v1 signature)"
                              : "malformed %s header (no v1 signature)", "webhook-signature");
    }
    if ((err = check_age(ts, now, tolerance))) {
        wipe(wh);
        return err;
    }

    /* The key: the base64 after "whsec_". */
    const char *b64 = strncmp(secret, "whsec_", 6) == 0 ? secret + 6 : secret;
    size_t blen = strlen(b64);
    unsigned char key[256];
    size_t keylen = 0;
    const char *end = NULL;
    bool decoded = blen <= 340 &&
        sodium_base642bin(key, sizeof key, b64, blen, NULL, &keylen, &end, sodium_base64_VARIANT_ORIGINAL) == 0 &&
        end == b64 + blen;
    if (!decoded && blen <= 340)
        decoded = sodium_base642bin(key, sizeof key, b64, blen, NULL, &keylen, &end,
                                    sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
                  end == b64 + blen;
    if (!decoded || keylen == 0) {
        sodium_memzero(key, sizeof key);
        wipe(wh);
        return keel_error_new(KEEL_INTERNAL, "webhook secret is not whsec_<base64>");
    }
    err = start(wh, KEEL_WEBHOOK_STANDARD, key, keylen);
    sodium_memzero(key, sizeof key);
    if (err) {
        wipe(wh);
        return err;
    }
    crypto_auth_hmacsha256_update(HMAC(wh), (const unsigned char *)msg_id, strlen(msg_id));
    crypto_auth_hmacsha256_update(HMAC(wh), (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(HMAC(wh), (const unsigned char *)timestamp, strlen(timestamp));
    crypto_auth_hmacsha256_update(HMAC(wh), (const unsigned char *)".", 1);
    return NULL;
}

keel_error *keel_webhook_standard_verify(const char *secret, const char *msg_id, const char *timestamp,
                                         const char *sig_header, const void *body, size_t len,
                                         int64_t now, int64_t tolerance)
{
    keel_webhook wh;
    keel_error *err = keel_webhook_standard_begin(&wh, secret, msg_id, timestamp, sig_header, now, tolerance);
    if (err)
        return err;
    keel_webhook_update(&wh, body, len);
    return keel_webhook_finish(&wh);
}

/* ---- finish (Stripe, Standard Webhooks) ------------------------------------------------ */

static keel_error *signed_finish(keel_webhook *wh);

keel_error *keel_webhook_finish(keel_webhook *wh)
{
    keel_req *req = keel__trace_current_req();
    const char *provider = wh->provider == KEEL_WEBHOOK_STRIPE ? "stripe" : "standard";
    keel_span *span = keel__span_start(req, "webhook verify", KEEL_SPAN_INTERNAL);
    return traced(provider, signed_finish(wh), span, req);
}

static keel_error *signed_finish(keel_webhook *wh)
{
    keel_webhook_provider p = wh->provider;
    if (p != KEEL_WEBHOOK_STRIPE && p != KEEL_WEBHOOK_STANDARD) {
        wipe(wh);
        return keel_error_new(KEEL_INTERNAL, p == KEEL_WEBHOOK_GITHUB
                                                 ? "use keel_webhook_github_finish for a GitHub verifier"
                                                 : "webhook verifier not begun");
    }
    unsigned char sigs[KEEL_WEBHOOK_MAX_SIGS][32];
    unsigned n = wh->nsigs;
    memcpy(sigs, wh->sigs, sizeof sigs);
    bool okay = mac_matches(wh, (const unsigned char (*)[32])sigs, n);
    sodium_memzero(sigs, sizeof sigs);
    if (!okay)
        return unauth("%s does not match the body (wrong signature or secret)",
                      p == KEEL_WEBHOOK_STRIPE ? "Stripe-Signature" : "webhook-signature");
    return NULL;
}

/* fuzz_webhook.c - libFuzzer target for webhook verification
 * (framework/lib/webhook.c): the signature header parsers of GitHub, Stripe
 * and Standard Webhooks and the streaming verifiers.
 *
 * An input is newline-separated fields:
 *   mode (first byte: provider and chunking), secret, signature header,
 *   webhook-id, webhook-timestamp, body (the rest, any bytes).
 * Checks beyond the sanitizers: a streamed verification (the body in chunks
 * whose sizes come from the input) decides exactly as the one-shot one; an
 * error is unauthenticated (401) or, for a bad secret, internal, and never
 * quotes the secret; a correct signature over the fuzzed body is accepted,
 * and a one-bit change to the body is refused. */
#include "keel/webhook.h"
#include "fuzz.h"

#include <sodium.h>
#include <stdbool.h>

#define NOW INT64_C(1700000000)
/* A secret the inputs do not choose, so that its absence from messages
 * means something whatever the headers hold. */
#define QUIET_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0, "sodium_init failed");
    return 0;
}

typedef struct delivery {
    unsigned provider; /* 0 GitHub, 1 Stripe, 2 Standard Webhooks */
    unsigned chunking; /* seeds the chunk sizes */
    const char *secret, *header, *msg_id, *timestamp;
    const unsigned char *body;
    size_t len;
} delivery;

static keel_error *verify_once(const delivery *d, const char *secret)
{
    switch (d->provider) {
    case 0: return keel_webhook_github_verify(secret, d->body, d->len, d->header);
    case 1: return keel_webhook_stripe_verify(secret, d->body, d->len, d->header, NOW, 0);
    default:
        return keel_webhook_standard_verify(secret, d->msg_id, d->timestamp, d->header, d->body, d->len, NOW, 0);
    }
}

static keel_error *verify_streamed(const delivery *d, const char *secret)
{
    keel_webhook wh;
    keel_error *err;
    switch (d->provider) {
    case 0: err = keel_webhook_github_begin(&wh, secret); break;
    case 1: err = keel_webhook_stripe_begin(&wh, secret, d->header, NOW, 0); break;
    default: err = keel_webhook_standard_begin(&wh, secret, d->msg_id, d->timestamp, d->header, NOW, 0); break;
    }
    if (err) {
        FUZZ_CHECK(wh.provider == KEEL_WEBHOOK_NONE, "a failed begin leaves the verifier begun");
        return err;
    }
    uint32_t state = d->chunking * 2654435761u + 1;
    for (size_t off = 0; off < d->len;) {
        state = state * 1103515245u + 12345u;
        size_t n = 1 + (state >> 16) % 97;
        if (n > d->len - off)
            n = d->len - off;
        keel_webhook_update(&wh, d->body + off, n);
        off += n;
    }
    FUZZ_CHECK(wh.bytes == d->len, "%llu body bytes counted of %zu", (unsigned long long)wh.bytes, d->len);
    err = d->provider == 0 ? keel_webhook_github_finish(&wh, d->header) : keel_webhook_finish(&wh);
    FUZZ_CHECK(wh.provider == KEEL_WEBHOOK_NONE && wh.nsigs == 0, "finish does not wipe the verifier");
    return err;
}

static void check_error(const keel_error *err, const char *secret)
{
    FUZZ_CHECK(err->code == KEEL_UNAUTHENTICATED || err->code == KEEL_INTERNAL, "webhook error %s",
               err->message);
    /* Only for the secret the input does not choose: a short fuzzed one
     * ("=") can be part of any message's wording. */
    FUZZ_CHECK(strcmp(secret, QUIET_SECRET) != 0 || !strstr(err->message, secret + 6),
               "the message quotes the secret: %s", err->message);
}

/* One-shot and streamed verification agree, with the input's secret and
 * with one the input does not know. */
static void check_agree(const delivery *d, const char *secret)
{
    keel_error *a = verify_once(d, secret), *b = verify_streamed(d, secret);
    FUZZ_CHECK(!a == !b, "one-shot %s, streamed %s", a ? a->message : "ok", b ? b->message : "ok");
    if (a) {
        FUZZ_CHECK(a->code == b->code && strcmp(a->message, b->message) == 0, "one-shot \"%s\", streamed \"%s\"",
                   a->message, b->message);
        check_error(a, secret);
    }
    keel_error_free(a);
    keel_error_free(b);
}

/* HMAC-SHA256 of the parts, computed here with libsodium directly. */
static void hmac(const unsigned char *key, size_t keylen, const void *p1, size_t l1, const void *p2, size_t l2,
                 unsigned char out[32])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, p1, l1);
    crypto_auth_hmacsha256_update(&st, p2, l2);
    crypto_auth_hmacsha256_final(&st, out);
}

/* Signs the fuzzed body correctly for the provider; the verifier must accept
 * it, and refuse the body with one bit changed. */
static void check_signed(const delivery *d)
{
    delivery s = *d;
    unsigned char mac[32];
    char header[160];
    const char *secret = *d->secret ? d->secret : "fallback-secret";
    s.secret = secret;
    if (d->provider == 0) {
        keel_webhook_github_sign(secret, d->body, d->len, header);
        hmac((const unsigned char *)secret, strlen(secret), "", 0, d->body, d->len, mac);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
        FUZZ_CHECK(strcmp(header + 7, hex) == 0 && !strncmp(header, "sha256=", 7), "github_sign differs: %s",
                   header);
    } else if (d->provider == 1) {
        char prefix[32];
        int plen = snprintf(prefix, sizeof prefix, "%lld.", (long long)NOW);
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)prefix, (size_t)plen);
        crypto_auth_hmacsha256_update(&st, d->body, d->len);
        crypto_auth_hmacsha256_final(&st, mac);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
        snprintf(header, sizeof header, "v1=%s,t=%lld", hex, (long long)NOW);
    } else {
        /* The key is base64; the fuzzed secret would rarely be, so use a
         * fixed one and fuzz the id and body. */
        static const unsigned char key[] = "keel fuzz standard webhook key!!";
        static char key_b64[64];
        sodium_bin2base64(key_b64, sizeof key_b64, key, 32, sodium_base64_VARIANT_ORIGINAL);
        char *signed_part = NULL;
        size_t sp_len = 0;
        FILE *f = open_memstream(&signed_part, &sp_len);
        const char *id = *d->msg_id ? d->msg_id : "msg_fuzz";
        fprintf(f, "%s.%lld.", id, (long long)NOW);
        fclose(f);
        hmac(key, 32, signed_part, sp_len, d->body, d->len, mac);
        free(signed_part);
        char b64[64];
        sodium_bin2base64(b64, sizeof b64, mac, sizeof mac, sodium_base64_VARIANT_ORIGINAL);
        snprintf(header, sizeof header, "v1,%s", b64);
        static char secret_buf[80];
        snprintf(secret_buf, sizeof secret_buf, "whsec_%s", key_b64);
        s.secret = secret_buf;
        s.msg_id = id;
        static char ts[32];
        snprintf(ts, sizeof ts, "%lld", (long long)NOW);
        s.timestamp = ts;
    }
    s.header = header;
    keel_error *a = verify_once(&s, s.secret), *b = verify_streamed(&s, s.secret);
    FUZZ_CHECK(!a && !b, "a correct signature is refused: %s", a ? a->message : b->message);
    if (d->len) {
        unsigned char *changed = malloc(d->len);
        memcpy(changed, d->body, d->len);
        changed[d->chunking % d->len] ^= (unsigned char)(1u << (d->chunking % 8));
        s.body = changed;
        a = verify_once(&s, s.secret);
        b = verify_streamed(&s, s.secret);
        FUZZ_CHECK(a && b && a->code == KEEL_UNAUTHENTICATED && b->code == KEEL_UNAUTHENTICATED,
                   "a changed body is accepted");
        keel_error_free(a);
        keel_error_free(b);
        free(changed);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *f[6];
    size_t body_len = 0;
    char *block = fuzz_fields(data + 1, size - 1, f, 6, &body_len);
    /* The body keeps its NULs: a private copy of exactly its bytes. */
    unsigned char *body = malloc(body_len ? body_len : 1);
    memcpy(body, f[5], body_len);
    delivery d = {data[0] % 3, data[0] / 3, f[0], f[1], f[2], f[3], body, body_len};
    check_agree(&d, d.secret);
    check_agree(&d, QUIET_SECRET);
    check_signed(&d);
    free(body);
    free(block);
    return 0;
}

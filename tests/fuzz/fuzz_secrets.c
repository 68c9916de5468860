/* fuzz_secrets.c - libFuzzer target for the secrets file reader
 * (framework/lib/secrets.c): the store's header, its decrypted records and
 * the key file's text.
 *
 * The reader's pieces are static, so this file #includes secrets.c (and does
 * not link it); nothing here touches the disk.  The first byte (modulo 3)
 * picks the mode:
 *   0  the rest is a whole store file, read with a fixed key (the header
 *      checks; a fuzzed file rarely authenticates);
 *   1  the rest is the plaintext records, sealed with the fixed key exactly
 *      as store_write seals them, then read (the record parser);
 *   2  the rest is a key file's text.
 * Whatever loads must write back and load again identically: entries are
 * serialised as store_write does, sealed, read into a second store and
 * compared, and serialising that one gives the same bytes.  A store that
 * opens but cannot be written back loses every secret on the next set. */
#include "../../framework/lib/secrets/secrets.c"
#include "fuzz.h"

static unsigned char fixed_key[KEY_LEN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0, "sodium_init failed");
    for (size_t i = 0; i < KEY_LEN; i++)
        fixed_key[i] = (unsigned char)(i * 7 + 1);
    return 0;
}

/* A store struct as keel_secrets_open leaves it before reading the file. */
static keel_secrets *store_new(void)
{
    keel_secrets *s = calloc(1, sizeof *s);
    snprintf(s->env, sizeof s->env, "fuzz");
    snprintf(s->dir, sizeof s->dir, "fuzz");
    snprintf(s->path, sizeof s->path, "fuzz/fuzz.enc");
    snprintf(s->keypath, sizeof s->keypath, "fuzz/fuzz.key");
    s->lock_fd = -1;
    s->key = sodium_malloc(KEY_LEN);
    memcpy(s->key, fixed_key, KEY_LEN);
    return s;
}

/* The store file for plaintext records, laid out as store_write lays it out
 * (malloc'd, so that ASan sees reads past its end). */
static unsigned char *seal(const unsigned char *plain, size_t plen, size_t *len)
{
    *len = HDR_LEN + plen + TAG_LEN;
    unsigned char *file = malloc(*len);
    memcpy(file, MAGIC, MAGIC_LEN);
    file[MAGIC_LEN] = STORE_VERSION;
    key_id(fixed_key, file + MAGIC_LEN + 1);
    put_be(file + MAGIC_LEN + 1 + KEYID_LEN, plen + TAG_LEN, 4);
    randombytes_buf(file + HDR_LEN - NONCE_LEN, NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(file + HDR_LEN, NULL, plain, plen, file, HDR_LEN, NULL,
                                               file + HDR_LEN - NONCE_LEN, fixed_key);
    return file;
}

/* What a loaded store may hold: names set accepts, once each, and values
 * with their terminating NUL where their length says. */
static void check_loaded(const keel_secrets *s)
{
    for (size_t i = 0; i < s->n; i++) {
        const entry *e = &s->entries[i];
        FUZZ_CHECK(keel_secret_name_valid(e->name), "loaded an entry named \"%s\"", e->name);
        FUZZ_CHECK(e->value && e->value[e->len] == '\0', "value of %s is not terminated", e->name);
        FUZZ_CHECK(keel_secrets_get(s, e->name) == e->value, "%s is shadowed by an earlier entry", e->name);
    }
}

/* Writes s back, reads it again and compares. */
static void round_trip(const keel_secrets *s)
{
    size_t plen = 0;
    unsigned char *plain = entries_serialise(s, &plen);
    FUZZ_CHECK(plain, "serialising failed");
    FUZZ_CHECK(HDR_LEN + plen + TAG_LEN <= MAX_STORE, "a loaded store writes back larger than it can be read");
    size_t flen;
    unsigned char *file = seal(plain, plen, &flen);
    keel_secrets *again = store_new();
    keel_error *err = store_decode(again, file, flen);
    FUZZ_CHECK(!err, "a store that loaded does not load after writing it back: %s", err->message);
    FUZZ_CHECK(again->n == s->n, "%zu entries became %zu", s->n, again->n);
    for (size_t i = 0; i < s->n; i++) {
        const entry *a = &s->entries[i], *b = &again->entries[i];
        FUZZ_CHECK(strcmp(a->name, b->name) == 0 && a->len == b->len && a->set_at == b->set_at &&
                       memcmp(a->value, b->value, a->len) == 0,
                   "entry %zu (%s) changed in the round trip", i, a->name);
    }
    size_t plen2 = 0;
    unsigned char *plain2 = entries_serialise(again, &plen2);
    FUZZ_CHECK(plain2 && plen2 == plen && memcmp(plain, plain2, plen) == 0, "serialising again differs");
    sodium_free(plain2);
    keel_secrets_free(again);
    free(file);
    sodium_free(plain);
}

/* Reads the records of plain without secrets.c's help and checks that s
 * holds exactly them: every name byte for byte (a name with a NUL must not
 * load as a shorter one), and for a name given twice the last value. */
static void check_records(const keel_secrets *s, const unsigned char *plain, size_t plen)
{
    size_t off = 0, distinct = 0;
    while (off < plen) {
        size_t nlen = plain[off++];
        FUZZ_CHECK(off + nlen + 12 <= plen, "loaded a truncated record");
        const unsigned char *name = plain + off;
        off += nlen;
        int64_t set_at = (int64_t)get_be(plain + off, 8);
        size_t vlen = (size_t)get_be(plain + off + 8, 4);
        off += 12;
        FUZZ_CHECK(vlen <= plen - off, "loaded a record longer than the store");
        const unsigned char *value = plain + off;
        off += vlen;
        const entry *e = NULL;
        for (size_t i = 0; i < s->n && !e; i++)
            if (strlen(s->entries[i].name) == nlen && memcmp(s->entries[i].name, name, nlen) == 0)
                e = &s->entries[i];
        FUZZ_CHECK(e, "record \"%.*s\" (%zu bytes) did not load as itself", (int)nlen, (const char *)name, nlen);
        bool later = false;
        for (size_t o = off; o < plen;) {
            size_t n2 = plain[o++];
            later |= n2 == nlen && memcmp(plain + o, name, nlen) == 0;
            o += n2;
            o += 12 + (size_t)get_be(plain + o + 8, 4);
        }
        if (!later) {
            FUZZ_CHECK(e->len == vlen && memcmp(e->value, value, vlen) == 0 && e->set_at == set_at,
                       "%s does not hold its last record's value", e->name);
            distinct++;
        }
    }
    FUZZ_CHECK(distinct == s->n, "%zu distinct records loaded as %zu entries", distinct, s->n);
}

static void read_store(const unsigned char *file, size_t len, const unsigned char *plain, size_t plen)
{
    keel_secrets *s = store_new();
    keel_error *err = store_decode(s, file, len);
    if (err) {
        FUZZ_CHECK(err->code == KEEL_DATA_LOSS || err->code == KEEL_FAILED_PRECONDITION ||
                       err->code == KEEL_RESOURCE_EXHAUSTED, "store error %s", err->message);
        FUZZ_CHECK(s->n == 0 && !s->entries, "a store that failed to load keeps entries");
        keel_error_free(err);
    } else {
        check_loaded(s);
        if (plain)
            check_records(s, plain, plen);
        round_trip(s);
    }
    keel_secrets_free(s);
}

static void read_key(const char *text, size_t len)
{
    unsigned char *key = NULL;
    keel_error *err = key_decode(text, len, "fuzz", &key);
    if (err) {
        FUZZ_CHECK(!key && err->code == KEEL_FAILED_PRECONDITION, "key error %s", err->message);
        keel_error_free(err);
        return;
    }
    char *encoded = key_encode(key);
    unsigned char *again = NULL;
    err = key_decode(encoded, strlen(encoded), "fuzz", &again);
    FUZZ_CHECK(!err && memcmp(key, again, KEY_LEN) == 0, "a key read from text does not write back the same");
    sodium_free(again);
    sodium_free(encoded);
    sodium_free(key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    unsigned char *rest = malloc(len ? len : 1);
    memcpy(rest, data + 1, len);
    switch (data[0] % 3) {
    case 0:
        read_store(rest, len, NULL, 0);
        break;
    case 1: {
        size_t flen;
        unsigned char *file = seal(rest, len, &flen);
        read_store(file, flen, rest, len);
        free(file);
        break;
    }
    default:
        read_key((const char *)rest, len);
        break;
    }
    free(rest);
    return 0;
}

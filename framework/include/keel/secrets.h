/* keel/secrets.h - the secrets store: per-environment files secrets/<env>.enc
 * whose contents are encrypted and authenticated with libsodium
 * (XChaCha20-Poly1305, a random nonce per write).  The key is $KEEL_SECRETS_KEY
 * (base64) or secrets/<env>.key (0600, git-ignored, created on first `set`).
 *
 *     static const char *const api_secrets[] = { "STRIPE_KEY", NULL };
 *     const keel_service api_service = { .name = "api", ..., .secrets = api_secrets };
 *
 *     const char *key = keel_secret("STRIPE_KEY");   // checked at start-up
 *
 * At start-up every declared secret of $KEEL_ENV (default "local") must exist,
 * in the store or as $KEEL_SECRET_<NAME>, or the app refuses to start naming
 * each missing one and the command that sets it.  Values live in
 * sodium_malloc'd memory for the life of the process and are never logged. */
#ifndef KEEL_SECRETS_H
#define KEEL_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

/* ---- in services ---------------------------------------------------------- */

/* The value of a secret of the current environment: $KEEL_SECRET_<NAME> when
 * set, else the store's.  NULL when it has neither (start-up checks declared
 * secrets, so a declared one is never NULL). */
const char *keel_secret(const char *name);

/* The same with the reason when it is missing (failed_precondition naming the
 * `keel secrets set` command; never a value).  For infra.c's {"$secret": "NAME"}. */
keel_error *keel_secret_lookup(const char *name, const char **out);

/* The environment in use: $KEEL_ENV, else "local". */
const char *keel_secrets_env(void);

/* Letters, digits and _, starting with a letter, at most 64 characters. */
bool keel_secret_name_valid(const char *name);

/* ---- the store (used by `keel secrets` and tests) -------------------------- */

typedef struct keel_secrets keel_secrets;

enum {
    KEEL_SECRETS_CREATE_KEY = 1u << 0, /* make secrets/<env>.key when no key exists */
    KEEL_SECRETS_WRITE = 1u << 1       /* hold secrets/<env>.lock until freed, so two
                                          writers (set, rm, rotate-key) never lose an update */
};

/* Opens the store of env in dir (NULL: $KEEL_SECRETS_DIR, else
 * $KEEL_APP_ROOT/secrets, else ./secrets).  A missing store is empty.  Errors
 * say which of: no key, wrong key, corrupted, truncated, not a store. */
keel_error *keel_secrets_open(const char *dir, const char *env, unsigned flags, keel_secrets **out);
void keel_secrets_free(keel_secrets *s);

/* The value (NUL-terminated, in guarded memory owned by s) or NULL. */
const char *keel_secrets_get(const keel_secrets *s, const char *name);

/* Sets or replaces name and rewrites the store atomically (0600). */
keel_error *keel_secrets_set(keel_secrets *s, const char *name, const char *value, size_t len);
/* Removes name (not_found when absent) and rewrites the store. */
keel_error *keel_secrets_rm(keel_secrets *s, const char *name);
/* Re-encrypts the store with a new random key written to the key file (not
 * possible when the key comes from $KEEL_SECRETS_KEY). */
keel_error *keel_secrets_rotate_key(keel_secrets *s);

/* The entries, for listing: name and when it was last set (Unix seconds). */
size_t keel_secrets_count(const keel_secrets *s);
const char *keel_secrets_name_at(const keel_secrets *s, size_t i, int64_t *set_at);
/* The store's path (for messages). */
const char *keel_secrets_path(const keel_secrets *s);

/* True when a (alen bytes) and b (blen bytes) are equal, in time that
 * depends on the lengths only, never on where they differ: for comparing a
 * presented token, signature or key with the expected one, where memcmp
 * would tell an attacker how many leading bytes were right. */
bool keel_secure_equal(const void *a, size_t alen, const void *b, size_t blen);

#pragma GCC visibility pop

#endif

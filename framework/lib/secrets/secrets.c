/* secrets.c - the encrypted secrets store (see keel/secrets.h) and the
 * app's start-up check of declared secrets.
 *
 * File format (all integers big-endian):
 *   "KEELSECR" | version (1 byte, 1) | key id (16 bytes) | ciphertext length (4)
 *   | nonce (24) | XChaCha20-Poly1305 ciphertext with the header as associated data
 * The key id (a hash of the key) lets a wrong key be told apart from a
 * corrupted file; the length lets a truncated file be told apart from a
 * changed byte.  The plaintext is a list of records
 *   name length (1) | name | set_at (8) | value length (4) | value
 * and only ever exists in sodium_malloc'd memory, wiped when freed. */
#include "core.h"
#include "keel/lazy.h"
#include "keel/secrets.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#define MAGIC "KEELSECR"
#define MAGIC_LEN 8
#define STORE_VERSION 1
#define KEYID_LEN 16
#define KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define HDR_LEN (MAGIC_LEN + 1 + KEYID_LEN + 4 + NONCE_LEN)
#define MAX_STORE (16u << 20)
#define MAX_VALUE (1u << 20)

typedef struct entry {
    char *name;          /* malloc'd: names are not secret */
    char *value;         /* sodium_malloc'd, NUL-terminated */
    size_t len;
    int64_t set_at;
} entry;

struct keel_secrets {
    char env[64];
    char dir[512];
    char path[640];
    char keypath[640];
    unsigned char *key;  /* sodium_malloc'd; NULL when no key is known */
    bool key_from_env;
    bool store_exists;   /* path was there when opened (a missing store is empty) */
    int lock_fd;         /* -1 unless opened with KEEL_SECRETS_WRITE */
    entry *entries;
    size_t n;
};

/* ---- names and places -------------------------------------------------------- */

bool keel_secret_name_valid(const char *name)
{
    if (!name || !isalpha((unsigned char)name[0]) || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

static bool env_name_valid(const char *env)
{
    if (!env || !*env || strlen(env) >= 64)
        return false;
    for (const char *p = env; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return false;
    return true;
}

const char *keel_secrets_env(void)
{
    const char *env = getenv("KEEL_ENV");
    return env && *env ? env : "local";
}

static void default_dir(char *out, size_t len)
{
    const char *dir = getenv("KEEL_SECRETS_DIR");
    if (dir && *dir)
        snprintf(out, len, "%s", dir);
    else
        snprintf(out, len, "%s/secrets", keel_app_root());
}

/* ---- files ---------------------------------------------------------------------- */

/* Writes data to path through a temporary file in the same folder: written,
 * fsynced, then renamed over path (or linked, when exclusive, so that an
 * existing file is never replaced: already_exists).  Mode 0600. */
static keel_error *write_atomic(const char *path, const void *data, size_t len, bool exclusive)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d.%08x", path, (int)getpid(), randombytes_random());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return keel_error_new(KEEL_INTERNAL, "cannot write %s: %s", path, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    bool ok = left == 0 && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    int rc = -1;
    if (ok)
        rc = exclusive ? link(tmp, path) : rename(tmp, path);
    int saved = errno;
    if (exclusive || rc != 0)
        unlink(tmp);
    if (rc != 0)
        return keel_error_new(exclusive && saved == EEXIST ? KEEL_ALREADY_EXISTS : KEEL_INTERNAL,
                              "cannot write %s: %s", path, strerror(saved));
    char dirbuf[700];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* the rename itself must survive a crash */
        fsync(dfd);
        close(dfd);
    }
    return NULL;
}

/* Reads a whole file (at most MAX_STORE bytes) into malloc'd memory;
 * not_found when it does not exist. */
static keel_error *read_file(const char *path, unsigned char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return keel_error_new(errno == ENOENT ? KEEL_NOT_FOUND : KEEL_INTERNAL, "cannot read %s: %s", path,
                              strerror(errno));
    unsigned char *buf = malloc(MAX_STORE + 1);
    size_t n = buf ? fread(buf, 1, MAX_STORE + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > MAX_STORE) {
        free(buf);
        return keel_error_new(KEEL_INTERNAL, "cannot read %s: %s", path, bad ? "read error" : "too large");
    }
    *out = buf;
    *len = n;
    return NULL;
}

/* ---- keys -------------------------------------------------------------------------- */

static void key_id(const unsigned char *key, unsigned char id[KEYID_LEN])
{
    static const unsigned char ctx[] = "keel secrets key id v1";
    crypto_generichash(id, KEYID_LEN, key, KEY_LEN, ctx, sizeof ctx - 1);
}

/* Decodes base64 text (surrounding whitespace allowed) into a new key. */
static keel_error *key_decode(const char *text, size_t len, const char *where, unsigned char **out)
{
    unsigned char *key = sodium_malloc(KEY_LEN + 1);
    if (!key)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    size_t got = 0;
    if (sodium_base642bin(key, KEY_LEN + 1, text, len, " \t\r\n", &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != KEY_LEN) {
        sodium_free(key);
        return keel_error_new(KEEL_FAILED_PRECONDITION, "%s is not a base64-encoded %u-byte key", where,
                              (unsigned)KEY_LEN);
    }
    *out = key;
    return NULL;
}

/* Base64 text of key, in guarded memory. */
static char *key_encode(const unsigned char *key)
{
    size_t n = sodium_base64_ENCODED_LEN(KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
    char *text = sodium_malloc(n + 1);
    if (text) {
        sodium_bin2base64(text, n, key, KEY_LEN, sodium_base64_VARIANT_ORIGINAL);
        strcat(text, "\n");
    }
    return text;
}

/* Writes key to path (exclusive: an existing key file is never replaced). */
static keel_error *key_write(const char *path, const unsigned char *key, bool exclusive)
{
    char *text = key_encode(key);
    if (!text)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_error *err = write_atomic(path, text, strlen(text), exclusive);
    sodium_free(text);
    return err;
}

static keel_error *key_read(const char *path, unsigned char **out)
{
    unsigned char *buf;
    size_t len;
    keel_error *err = read_file(path, &buf, &len);
    if (err)
        return err;
    err = key_decode((const char *)buf, len, path, out);
    sodium_memzero(buf, len);
    free(buf);
    return err;
}

/* $KEEL_SECRETS_KEY, else the key file, else (CREATE_KEY) a new key file. */
static keel_error *key_load(keel_secrets *s, unsigned flags)
{
    const char *env = getenv("KEEL_SECRETS_KEY");
    if (env && *env) {
        s->key_from_env = true;
        return key_decode(env, strlen(env), "KEEL_SECRETS_KEY", &s->key);
    }
    keel_error *err = key_read(s->keypath, &s->key);
    if (!err || err->code != KEEL_NOT_FOUND || !(flags & KEEL_SECRETS_CREATE_KEY)) {
        if (err && err->code == KEEL_NOT_FOUND) {
            keel_error_free(err);
            err = NULL; /* no key yet: fine until a store needs one */
        }
        return err;
    }
    keel_error_free(err);
    unsigned char *key = sodium_malloc(KEY_LEN);
    if (!key)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    err = key_write(s->keypath, key, true);
    sodium_free(key);
    if (err && err->code == KEEL_ALREADY_EXISTS) { /* another keel made it first: use theirs */
        keel_error_free(err);
        err = NULL;
    }
    return err ? err : key_read(s->keypath, &s->key);
}

/* ---- entries ---------------------------------------------------------------------------- */

static void entries_clear(keel_secrets *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->entries[i].name);
        sodium_free(s->entries[i].value);
    }
    free(s->entries);
    s->entries = NULL;
    s->n = 0;
}

static long entry_index(const keel_secrets *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* Adds an entry with a copy of value; replaces an existing one of that name. */
static keel_error *entry_put(keel_secrets *s, const char *name, size_t name_len, const char *value, size_t len,
                             int64_t set_at)
{
    char *v = sodium_malloc(len + 1);
    char *nm = strndup(name, name_len);
    entry *grown = (v && nm) ? realloc(s->entries, (s->n + 1) * sizeof *grown) : NULL;
    if (!grown) {
        if (v)
            sodium_free(v);
        free(nm);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    s->entries = grown;
    memcpy(v, value, len);
    v[len] = '\0';
    long old = entry_index(s, nm);
    if (old >= 0) {
        free(s->entries[old].name);
        sodium_free(s->entries[old].value);
        s->entries[old] = (entry){nm, v, len, set_at};
    } else {
        s->entries[s->n++] = (entry){nm, v, len, set_at};
    }
    return NULL;
}

static uint64_t get_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* Reads the plaintext records into s; false when they do not parse. */
static bool entries_parse(keel_secrets *s, const unsigned char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t nlen = p[off++];
        if (nlen == 0 || off + nlen + 12 > len)
            return false;
        const char *name = (const char *)p + off;
        char checked[256];
        memcpy(checked, name, nlen);
        checked[nlen] = '\0';
        /* Only names that set would accept: a name with a NUL byte would load
         * shortened and could never be written back as it was. */
        if (strlen(checked) != nlen || !keel_secret_name_valid(checked))
            return false;
        off += nlen;
        int64_t set_at = (int64_t)get_be(p + off, 8);
        size_t vlen = (size_t)get_be(p + off + 8, 4);
        off += 12;
        if (vlen > len - off || entry_put(s, name, nlen, (const char *)p + off, vlen, set_at))
            return false;
        off += vlen;
    }
    return true;
}

/* The plaintext records of s in guarded memory (the caller sodium_frees). */
static unsigned char *entries_serialise(const keel_secrets *s, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += 1 + strlen(s->entries[i].name) + 12 + s->entries[i].len;
    unsigned char *buf = sodium_malloc(n ? n : 1);
    if (!buf)
        return NULL;
    size_t off = 0;
    for (size_t i = 0; i < s->n; i++) {
        const entry *e = &s->entries[i];
        size_t nlen = strlen(e->name);
        buf[off++] = (unsigned char)nlen;
        memcpy(buf + off, e->name, nlen);
        off += nlen;
        put_be(buf + off, (uint64_t)e->set_at, 8);
        put_be(buf + off + 8, e->len, 4);
        off += 12;
        memcpy(buf + off, e->value, e->len);
        off += e->len;
    }
    *len = n;
    return buf;
}

/* ---- the encrypted file ------------------------------------------------------------------ */

static keel_error *store_error(const keel_secrets *s, keel_code code, const char *what)
{
    return keel_error_new(code, "secrets store %s: %s", s->path, what);
}

/* Checks the header and decrypts file into s's entries. */
static keel_error *store_decode(keel_secrets *s, const unsigned char *file, size_t len)
{
    size_t m = len < MAGIC_LEN ? len : MAGIC_LEN;
    if (memcmp(file, MAGIC, m) != 0)
        return store_error(s, KEEL_DATA_LOSS, "corrupted: not a Keel secrets store (bad magic)");
    if (len < HDR_LEN + TAG_LEN)
        return store_error(s, KEEL_DATA_LOSS, "truncated: the file is shorter than its header");
    if (file[MAGIC_LEN] != STORE_VERSION)
        return store_error(s, KEEL_DATA_LOSS, "corrupted or written by a newer Keel: unknown format version");
    size_t ct_len = (size_t)get_be(file + MAGIC_LEN + 1 + KEYID_LEN, 4);
    if (HDR_LEN + ct_len > len)
        return store_error(s, KEEL_DATA_LOSS, "truncated: the file is shorter than its header says");
    if (HDR_LEN + ct_len < len || ct_len < TAG_LEN)
        return store_error(s, KEEL_DATA_LOSS, "corrupted: the file's length does not match its header");
    if (!s->key)
        return store_error(s, KEEL_FAILED_PRECONDITION,
                           "no key: set KEEL_SECRETS_KEY or restore the key file next to the store");
    unsigned char id[KEYID_LEN];
    key_id(s->key, id);
    if (memcmp(id, file + MAGIC_LEN + 1, KEYID_LEN) != 0)
        return store_error(s, KEEL_FAILED_PRECONDITION,
                           s->key_from_env ? "wrong key: KEEL_SECRETS_KEY is not the key this store was written with"
                                           : "wrong key: the key file is not the key this store was written with");
    size_t plen = ct_len - TAG_LEN;
    unsigned char *plain = sodium_malloc(plen ? plen : 1);
    if (!plain)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_error *err = NULL;
    unsigned long long got = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &got, NULL, file + HDR_LEN, ct_len, file, HDR_LEN,
                                                   file + HDR_LEN - NONCE_LEN, s->key) != 0)
        err = store_error(s, KEEL_DATA_LOSS, "corrupted: authentication failed (the file was changed)");
    else if (!entries_parse(s, plain, (size_t)got))
        err = store_error(s, KEEL_DATA_LOSS, "corrupted: the decrypted records do not parse");
    sodium_free(plain);
    if (err)
        entries_clear(s);
    return err;
}

/* Encrypts the entries with a fresh nonce and replaces the store file. */
static keel_error *store_write(keel_secrets *s)
{
    size_t plen = 0;
    unsigned char *plain = entries_serialise(s, &plen);
    if (!plain)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    size_t len = HDR_LEN + plen + TAG_LEN;
    unsigned char *file = malloc(len);
    if (!file) {
        sodium_free(plain);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    memcpy(file, MAGIC, MAGIC_LEN);
    file[MAGIC_LEN] = STORE_VERSION;
    key_id(s->key, file + MAGIC_LEN + 1);
    put_be(file + MAGIC_LEN + 1 + KEYID_LEN, plen + TAG_LEN, 4);
    randombytes_buf(file + HDR_LEN - NONCE_LEN, NONCE_LEN);
    crypto_aead_xchacha20poly1305_ietf_encrypt(file + HDR_LEN, NULL, plain, plen, file, HDR_LEN, NULL,
                                               file + HDR_LEN - NONCE_LEN, s->key);
    sodium_free(plain);
    mkdir(s->dir, 0700);
    keel_error *err = write_atomic(s->path, file, len, false);
    free(file);
    return err;
}

/* ---- the store API ------------------------------------------------------------------------- */

/* Serialises writers of one environment: each reads the store after taking
 * the lock, so a concurrent set never overwrites another's entry. */
static keel_error *store_lock(keel_secrets *s)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.lock", s->dir, s->env);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return keel_error_new(KEEL_INTERNAL, "cannot create %s: %s", path, strerror(errno));
    while (flock(s->lock_fd, LOCK_EX) != 0)
        if (errno != EINTR)
            return keel_error_new(KEEL_INTERNAL, "cannot lock %s: %s", path, strerror(errno));
    return NULL;
}

/* A <key>.new left by a rotation that stopped half-way.  When the store was
 * already rewritten with it (the store's key id is the new key's), it is the
 * key: used, and with the store's lock held moved into place.  When the store
 * still has the old key's id, the rotation never got that far: with the lock
 * held, the unused file is removed. */
static keel_error *pending_key_adopt(keel_secrets *s, const unsigned char *file, size_t len, unsigned flags)
{
    if (s->key_from_env || len < HDR_LEN)
        return NULL;
    char pending[700];
    snprintf(pending, sizeof pending, "%s.new", s->keypath);
    unsigned char *key = NULL;
    keel_error *err = key_read(pending, &key);
    if (err) {
        bool absent = err->code == KEEL_NOT_FOUND;
        keel_error_free(err);
        return absent ? NULL
                      : keel_error_new(KEEL_FAILED_PRECONDITION,
                                       "%s is left from an unfinished key rotation and cannot be read", pending);
    }
    unsigned char id[KEYID_LEN];
    key_id(key, id);
    bool is_the_key = memcmp(id, file + MAGIC_LEN + 1, KEYID_LEN) == 0;
    if (!is_the_key) {
        sodium_free(key);
        if (flags & KEEL_SECRETS_WRITE)
            unlink(pending);
        return NULL;
    }
    if ((flags & KEEL_SECRETS_WRITE) && rename(pending, s->keypath) != 0) {
        sodium_free(key);
        return keel_error_new(KEEL_INTERNAL, "cannot finish the key rotation: moving %s to %s: %s", pending,
                              s->keypath, strerror(errno));
    }
    if (s->key)
        sodium_free(s->key);
    s->key = key;
    return NULL;
}

keel_error *keel_secrets_open(const char *dir, const char *env, unsigned flags, keel_secrets **out)
{
    *out = NULL;
    if (sodium_init() < 0)
        return keel_error_new(KEEL_INTERNAL, "libsodium cannot be initialised");
    if (!env_name_valid(env))
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "environment name \"%s\" is invalid: use letters, digits, _ and -", env ? env : "");
    keel_secrets *s = calloc(1, sizeof *s);
    if (!s)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    snprintf(s->env, sizeof s->env, "%s", env);
    if (dir)
        snprintf(s->dir, sizeof s->dir, "%s", dir);
    else
        default_dir(s->dir, sizeof s->dir);
    snprintf(s->path, sizeof s->path, "%s/%s.enc", s->dir, env);
    snprintf(s->keypath, sizeof s->keypath, "%s/%s.key", s->dir, env);
    s->lock_fd = -1;
    if (flags & (KEEL_SECRETS_CREATE_KEY | KEEL_SECRETS_WRITE))
        mkdir(s->dir, 0700);
    keel_error *err = (flags & KEEL_SECRETS_WRITE) ? store_lock(s) : NULL;
    if (!err)
        err = key_load(s, flags);
    unsigned char *file = NULL;
    size_t len = 0;
    if (!err && (err = read_file(s->path, &file, &len)) != NULL && err->code == KEEL_NOT_FOUND) {
        keel_error_free(err); /* no store yet: empty */
        err = NULL;
    } else if (!err) {
        s->store_exists = true;
        err = pending_key_adopt(s, file, len, flags);
        if (!err)
            err = store_decode(s, file, len);
    }
    free(file);
    if (err) {
        keel_secrets_free(s);
        return err;
    }
    *out = s;
    return NULL;
}

void keel_secrets_free(keel_secrets *s)
{
    if (!s)
        return;
    entries_clear(s);
    if (s->key)
        sodium_free(s->key);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    free(s);
}

const char *keel_secrets_get(const keel_secrets *s, const char *name)
{
    long i = s && name ? entry_index(s, name) : -1;
    return i < 0 ? NULL : s->entries[i].value;
}

static keel_error *need_key(const keel_secrets *s)
{
    return s->key ? NULL
                  : keel_error_new(KEEL_FAILED_PRECONDITION, "no key for %s: set KEEL_SECRETS_KEY or create %s",
                                   s->path, s->keypath);
}

/* The size of the store file once name holds a value of len bytes: a store
 * larger than MAX_STORE would be written but could never be read back. */
static size_t store_size_with(const keel_secrets *s, const char *name, size_t len)
{
    size_t n = HDR_LEN + TAG_LEN + 1 + strlen(name) + 12 + len;
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->entries[i].name, name) != 0)
            n += 1 + strlen(s->entries[i].name) + 12 + s->entries[i].len;
    return n;
}

keel_error *keel_secrets_set(keel_secrets *s, const char *name, const char *value, size_t len)
{
    if (!keel_secret_name_valid(name))
        return keel_error_new(KEEL_INVALID_ARGUMENT,
                              "secret name \"%s\" is invalid: use letters, digits and _, starting with a letter "
                              "(at most 64)", name ? name : "");
    if (len > MAX_VALUE)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "secret %s: a value is at most %u bytes", name, MAX_VALUE);
    if (store_size_with(s, name, len) > MAX_STORE)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED,
                              "secret %s: the store would grow past %u MiB, the most it can be read back at; "
                              "remove secrets first", name, MAX_STORE >> 20);
    keel_error *err = need_key(s);
    if (!err)
        err = entry_put(s, name, strlen(name), value, len, (int64_t)time(NULL));
    return err ? err : store_write(s);
}

keel_error *keel_secrets_rm(keel_secrets *s, const char *name)
{
    long i = entry_index(s, name ? name : "");
    if (i < 0)
        return keel_error_new(KEEL_NOT_FOUND, "secret %s is not set in environment %s", name ? name : "", s->env);
    keel_error *err = need_key(s);
    if (err)
        return err;
    free(s->entries[i].name);
    sodium_free(s->entries[i].value);
    s->entries[i] = s->entries[--s->n];
    return store_write(s);
}

/* The new key goes to <key>.new first, then the store is rewritten, then the
 * key file replaced: a crash in between leaves the new key next to the old. */
keel_error *keel_secrets_rotate_key(keel_secrets *s)
{
    if (s->key_from_env)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "the key comes from KEEL_SECRETS_KEY: unset it to rotate the key file, or re-encrypt "
                              "with a new KEEL_SECRETS_KEY through set");
    keel_error *err = need_key(s);
    if (err)
        return err;
    unsigned char *key = sodium_malloc(KEY_LEN);
    if (!key)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    crypto_aead_xchacha20poly1305_ietf_keygen(key);
    char pending[700];
    snprintf(pending, sizeof pending, "%s.new", s->keypath);
    err = key_write(pending, key, false);
    if (err) {
        sodium_free(key);
        return err;
    }
    unsigned char *old = s->key;
    s->key = key;
    err = store_write(s);
    if (err) {
        s->key = old; /* the store still holds the old key's encryption */
        sodium_free(key);
        unlink(pending);
        return err;
    }
    sodium_free(old);
    /* From here the store needs the new key: its file is never removed.  A
     * failed rename leaves it as <key>.new, which the next open picks up. */
    if (rename(pending, s->keypath) != 0)
        return keel_error_new(KEEL_INTERNAL,
                              "cannot replace %s: %s; the store is now encrypted with the new key in %s, "
                              "which is used from there until the next keel secrets set, rm or rotate-key "
                              "moves it into place",
                              s->keypath, strerror(errno), pending);
    return NULL;
}

size_t keel_secrets_count(const keel_secrets *s)
{
    return s ? s->n : 0;
}

const char *keel_secrets_name_at(const keel_secrets *s, size_t i, int64_t *set_at)
{
    if (!s || i >= s->n)
        return NULL;
    if (set_at)
        *set_at = s->entries[i].set_at;
    return s->entries[i].name;
}

const char *keel_secrets_path(const keel_secrets *s)
{
    return s->path;
}

/* ---- the process's secrets ---------------------------------------------------------------- */

/* The current environment's store, opened on first need and kept for the
 * life of the process (values must outlive every caller).  A failed open is
 * tried again on the next need (keel_lazy), so a key file restored while
 * the app runs is picked up. */
static keel_lazy g_store = KEEL_LAZY_INIT;

static keel_error *open_process_store(void *arg, void **out)
{
    (void)arg;
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(NULL, keel_secrets_env(), 0, &s);
    *out = s;
    return err;
}

static keel_error *process_store(const keel_secrets **out)
{
    void *s = NULL;
    keel_error *err = keel_lazy_get(&g_store, open_process_store, NULL, &s);
    *out = s;
    return err;
}

/* Where a missing secret was looked for besides $KEEL_SECRET_<NAME>: the
 * store file, or that there is none, so that a secret set for another app
 * root or with KEEL_SECRETS_DIR pointing elsewhere is found out at once. */
static void describe_store(const keel_secrets *s, char *out, size_t len)
{
    if (s->store_exists)
        snprintf(out, len, "the store %s", s->path);
    else
        snprintf(out, len, "no store: %s does not exist", s->path);
}

keel_error *keel_secret_lookup(const char *name, const char **out)
{
    *out = NULL;
    if (!keel_secret_name_valid(name))
        return keel_error_new(KEEL_INVALID_ARGUMENT, "secret name \"%s\" is invalid", name ? name : "");
    char var[96];
    snprintf(var, sizeof var, "KEEL_SECRET_%s", name);
    const char *v = getenv(var);
    if (v) { /* deploys without a key file inject secrets this way */
        *out = v;
        return NULL;
    }
    const keel_secrets *s;
    keel_error *err = process_store(&s);
    if (err)
        return err;
    *out = keel_secrets_get(s, name);
    if (*out)
        return NULL;
    const char *env = keel_secrets_env();
    char where[800];
    describe_store(s, where, sizeof where);
    return keel_error_detail(keel_error_new(KEEL_FAILED_PRECONDITION,
                                            "secret %s is not set for environment %s (looked in $%s%s%s): run "
                                            "`keel secrets set --env %s %s`",
                                            name, env, var, s->store_exists ? " and " : "; ", where, env, name),
                             KEEL_DETAIL_SECRET_NOT_SET);
}

extern char **environ;

bool keel__secret_value(const char *v, size_t len)
{
    if (!v || len == 0)
        return false;
    static const char prefix[] = "KEEL_SECRET_";
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        if (eq && strlen(eq + 1) == len && memcmp(eq + 1, v, len) == 0)
            return true;
    }
    const keel_secrets *s;
    keel_error *err = process_store(&s);
    if (err) {
        keel_error_free(err);
        return false;
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->entries[i].len == len && memcmp(s->entries[i].value, v, len) == 0)
            return true;
    return false;
}

const char *keel_secret(const char *name)
{
    const char *v = NULL;
    keel_error_free(keel_secret_lookup(name, &v));
    return v;
}

/* Checks every declared secret of every service; one error lists all the
 * missing ones with the command that sets each, and says where they were
 * looked for (the store file, or that none exists). */
keel_error *keel__secrets_check(struct keel_app *app)
{
    char *text = NULL;
    size_t len = 0, missing = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    const char *env = keel_secrets_env();
    keel_error *err = NULL;
    for (size_t i = 0; !err && app->services[i]; i++) {
        const keel_service *svc = app->services[i];
        for (size_t j = 0; !err && svc->secrets && svc->secrets[j]; j++) {
            const char *name = svc->secrets[j], *v;
            if (!keel_secret_name_valid(name)) {
                err = keel_error_new(KEEL_INVALID_ARGUMENT,
                                     "service %s: secret name \"%s\" is invalid: use letters, digits and _, "
                                     "starting with a letter", svc->name, name);
                break;
            }
            keel_error *e = keel_secret_lookup(name, &v);
            if (e && e->detail == KEEL_DETAIL_SECRET_NOT_SET) {
                fprintf(f, "\n  %s (service %s): keel secrets set --env %s %s", name, svc->name, env, name);
                missing++;
                keel_error_free(e);
            } else {
                err = e; /* the store itself is unreadable: say why */
            }
        }
    }
    fclose(f);
    const keel_secrets *s = NULL;
    if (!err && missing)
        err = process_store(&s); /* opened by the lookups above: no I/O */
    if (!err && missing) {
        char where[800];
        describe_store(s, where, sizeof where);
        err = keel_error_new(KEEL_FAILED_PRECONDITION,
                             "%zu secret%s missing for environment %s (looked in $KEEL_SECRET_<NAME>%s%s):%s",
                             missing, missing == 1 ? " is" : "s are", env, s->store_exists ? " and " : "; ", where,
                             text);
    }
    free(text);
    return err;
}

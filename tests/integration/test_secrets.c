/* tests/integration/test_secrets.c - the secrets store through the real
 * `keel secrets` command and the library: set/list/rm/rotate-key round trips,
 * no plaintext on disk, private file modes, tampered, truncated and wrong-key
 * stores, invalid names, $KEEL_SECRET_<NAME>, and the start-up check naming
 * every missing secret with the command that sets it and the store file it
 * read (or that there is none). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sodium.h>

#include "core.h"
#include "keel/secrets.h"
#include "tap.h"

static char dir[256];       /* the app root of these tests */
static char secrets[300];   /* its secrets/ folder */

/* Runs a shell command in dir and returns its stdout+stderr (malloc'd). */
static char *run(const char *cmd, int *status)
{
    char full[2048];
    snprintf(full, sizeof full, "cd '%s' && unset KEEL_SECRETS_KEY KEEL_SECRETS_DIR KEEL_APP_ROOT && (%s) 2>&1", dir,
             cmd);
    FILE *p = popen(full, "r");
    size_t cap = 8192, len = 0, got;
    char *out = malloc(cap);
    while (p && (got = fread(out + len, 1, cap - len - 1, p)) > 0)
        len += got;
    out[len] = '\0';
    int st = p ? pclose(p) : -1;
    if (status)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static int keel(const char *args, const char *stdin_text, char **out)
{
    char cmd[1024];
    if (stdin_text)
        snprintf(cmd, sizeof cmd, "printf '%%s' '%s' | '%s' secrets %s", stdin_text, getenv("KEEL_CLI"), args);
    else
        snprintf(cmd, sizeof cmd, "'%s' secrets %s </dev/null", getenv("KEEL_CLI"), args);
    int st;
    char *o = run(cmd, &st);
    if (out)
        *out = o;
    else
        free(o);
    return st;
}

static int mode_of(const char *name)
{
    char path[400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", secrets, name);
    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* Opens the store of env with the library (the key file in secrets/). */
static keel_error *open_store(const char *env, keel_secrets **s)
{
    return keel_secrets_open(secrets, env, 0, s);
}

static void test_round_trip(void)
{
    char *out;
    is_int(keel("set DB_PASSWORD", "correct-horse-battery-staple\n", &out), 0, "set reads the value from a pipe");
    free(out);
    is_int(mode_of("local.key"), 0600, "the first set creates secrets/local.key with mode 0600");
    is_int(mode_of("local.enc"), 0600, "the store is 0600");
    is_int(keel("set --env staging API_TOKEN", "tok-123", NULL), 0, "set --env staging");
    keel_secrets *s = NULL;
    keel_error *err = open_store("local", &s);
    ok(!err, "the library opens the local store");
    is_str(keel_secrets_get(s, "DB_PASSWORD"), "correct-horse-battery-staple",
           "the value round-trips (one trailing newline dropped)");
    keel_secrets_free(s);
    keel_error_free(err);
    is_int(keel("list", NULL, &out), 0, "list succeeds");
    like(out, "DB_PASSWORD", "list names the local secret");
    like(out, "API_TOKEN", "and the staging one");
    like(out, "staging", "with its environment");
    like(out, "Z", "and when it was set (UTC)");
    ok(!strstr(out, "correct-horse") && !strstr(out, "tok-123"), "list never prints a value");
    free(out);
    is_int(keel("list --env staging", NULL, &out), 0, "list --env staging");
    ok(strstr(out, "API_TOKEN") && !strstr(out, "DB_PASSWORD"), "shows only that environment");
    free(out);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -r -a -l -e correct-horse -e tok-123 '%s'", secrets);
    int st;
    free(run(cmd, &st));
    is_int(st, 1, "no file in secrets/ contains a value in the clear (grep finds nothing)");
    is_int(keel("set DB_PASSWORD", "second", NULL), 0, "set replaces a value");
    err = open_store("local", &s);
    is_str(s ? keel_secrets_get(s, "DB_PASSWORD") : NULL, "second", "the new value is read back");
    ok(s && keel_secrets_count(s) == 1, "still one secret");
    keel_secrets_free(s);
    keel_error_free(err);
    is_int(keel("rm --env staging API_TOKEN", NULL, NULL), 0, "rm removes a secret");
    is_int(keel("rm --env staging API_TOKEN", NULL, &out), 1, "rm of a missing secret fails");
    like(out, "not set", "and says so");
    free(out);
}

/* The store never grows past what its reader accepts (16 MiB): the set that
 * would cross it is refused, and everything before it still reads back. */
static void test_store_limit(void)
{
    if (getenv("KEEL_TEST_VALGRIND")) {
        skip("17 MiB of encryption is too slow under valgrind");
        return;
    }
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(secrets, "big", KEEL_SECRETS_CREATE_KEY, &s);
    static char value[1u << 20];
    memset(value, 'v', sizeof value);
    int stored = 0;
    keel_error *refused = NULL;
    for (int i = 0; !err && !refused && i < 20; i++) {
        char name[16];
        snprintf(name, sizeof name, "V%d", i);
        refused = keel_secrets_set(s, name, value, sizeof value);
        stored += refused == NULL;
    }
    keel_secrets_free(s);
    ok(!err && refused, "a set that would grow the store past 16 MiB is refused (%d values of 1 MiB stored)", stored);
    like(refused ? refused->message : "", "16 MiB", "and says why");
    keel_error_free(refused);
    keel_error_free(err);
    s = NULL;
    err = keel_secrets_open(secrets, "big", 0, &s);
    ok(!err && s && keel_secrets_count(s) == (size_t)stored, "the store still opens with all %d values", stored);
    keel_secrets_free(s);
    keel_error_free(err);
}

/* Appends one plaintext record (name may hold a NUL byte). */
static size_t put_record(unsigned char *p, const char *name, size_t nlen, const char *value)
{
    size_t off = 0, vlen = strlen(value);
    p[off++] = (unsigned char)nlen;
    memcpy(p + off, name, nlen);
    off += nlen;
    memset(p + off, 0, 8); /* set_at */
    off += 8;
    for (int i = 3; i >= 0; i--)
        p[off++] = (unsigned char)(vlen >> (8 * i));
    memcpy(p + off, value, vlen);
    return off + vlen;
}

/* A store whose records decrypt but hold a name that set would refuse (here
 * "A\0B", which would load as "A") is refused at open: whatever loads can
 * always be written back. */
static void test_record_names(void)
{
    unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    randombytes_buf(key, sizeof key);
    unsigned char plain[128];
    size_t plen = put_record(plain, "GOOD", 4, "one");
    plen += put_record(plain + plen, "A\0B", 3, "two");
    unsigned char file[512];
    size_t hdr = 8 + 1 + 16 + 4 + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
    memcpy(file, "KEELSECR", 8);
    file[8] = 1;
    static const unsigned char ctx[] = "keel secrets key id v1";
    crypto_generichash(file + 9, 16, key, sizeof key, ctx, sizeof ctx - 1);
    size_t clen = plen + crypto_aead_xchacha20poly1305_ietf_ABYTES;
    for (int i = 0; i < 4; i++)
        file[25 + i] = (unsigned char)(clen >> (8 * (3 - i)));
    randombytes_buf(file + 29, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(file + hdr, NULL, plain, plen, file, hdr, NULL, file + 29, key);
    char path[400];
    snprintf(path, sizeof path, "%s/nulname.enc", secrets);
    FILE *f = fopen(path, "wb");
    bool written = f && fwrite(file, 1, hdr + clen, f) == hdr + clen;
    if (f)
        fclose(f);
    char b64[64];
    sodium_bin2base64(b64, sizeof b64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    setenv("KEEL_SECRETS_KEY", b64, 1);
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(secrets, "nulname", 0, &s);
    unsetenv("KEEL_SECRETS_KEY");
    ok(written && err != NULL, "a store with a record named \"A\\0B\" is refused at open");
    like(err ? err->message : "", "do not parse", "as records that do not parse");
    keel_secrets_free(s);
    keel_error_free(err);
    unlink(path);
}

/* Eight writers at once: the lock keeps every one of their entries. */
static void test_concurrent_sets(void)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "for i in 1 2 3 4 5 6 7 8; do printf v$i | '%s' secrets set --env race RACE_$i & done; wait",
             getenv("KEEL_CLI"));
    free(run(cmd, NULL));
    keel_secrets *s = NULL;
    keel_error *err = open_store("race", &s);
    is_int(s ? (long long)keel_secrets_count(s) : -1, 8, "8 concurrent sets keep all 8 secrets");
    is_str(s ? keel_secrets_get(s, "RACE_5") : NULL, "v5", "each with its value");
    keel_secrets_free(s);
    keel_error_free(err);
}

static void test_rotate(void)
{
    char before[128] = "", after[128] = "", path[400];
    snprintf(path, sizeof path, "%s/local.key", secrets);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(before, sizeof before, f))
            before[0] = '\0';
        fclose(f);
    }
    char *out;
    is_int(keel("rotate-key", NULL, &out), 0, "rotate-key succeeds");
    free(out);
    f = fopen(path, "r");
    if (f) {
        if (!fgets(after, sizeof after, f))
            after[0] = '\0';
        fclose(f);
    }
    ok(before[0] && after[0] && strcmp(before, after) != 0, "the key file holds a new key");
    is_int(mode_of("local.key"), 0600, "still 0600");
    keel_secrets *s = NULL;
    keel_error *err = open_store("local", &s);
    is_str(s ? keel_secrets_get(s, "DB_PASSWORD") : NULL, "second", "values survive the rotation");
    keel_secrets_free(s);
    keel_error_free(err);
    snprintf(path, sizeof path, "%s/local.key.new", secrets);
    ok(access(path, F_OK) != 0, "no pending key is left behind");
}

/* A rotation whose last step (moving <key>.new into place) fails must keep
 * the new key, which the store now needs, and the next open must pick it up;
 * a <key>.new left by a rotation that never rewrote the store is dropped. */
static void test_rotate_interrupted(void)
{
    char keypath[400], pending[420], cmd[2400];
    snprintf(keypath, sizeof keypath, "%s/local.key", secrets);
    snprintf(pending, sizeof pending, "%s.new", keypath);
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(secrets, "local", KEEL_SECRETS_WRITE, &s);
    ok(!err, "the store opens for writing");
    keel_error_free(err);
    if (!s)
        return;
    /* The key file becomes a non-empty directory: the final rename fails. */
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s.saved' && rm '%s' && mkdir '%s' && touch '%s/x'", keypath, keypath,
             keypath, keypath, keypath);
    is_int(system(cmd), 0, "the key file is replaced by a directory");
    err = keel_secrets_rotate_key(s);
    ok(err != NULL, "rotate-key reports the failed rename");
    like(err ? err->message : "", "local.key.new", "and names where the new key is");
    keel_error_free(err);
    keel_secrets_free(s);
    ok(access(pending, F_OK) == 0, "the new key is kept in local.key.new");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", keypath);
    is_int(system(cmd), 0, "the directory is removed again");

    s = NULL;
    err = keel_secrets_open(secrets, "local", 0, &s);
    ok(!err, "a reader opens the store with the pending key (%s)", err ? err->message : "ok");
    is_str(s ? keel_secrets_get(s, "DB_PASSWORD") : NULL, "second", "and reads its values");
    keel_error_free(err);
    keel_secrets_free(s);
    char *out;
    is_int(keel("set AFTER_ROTATION", "yes", &out), 0, "the next keel command works (%s)", out);
    free(out);
    ok(access(pending, F_OK) != 0 && access(keypath, F_OK) == 0, "and it moved the new key into place");
    s = NULL;
    err = open_store("local", &s);
    is_str(s ? keel_secrets_get(s, "DB_PASSWORD") : NULL, "second", "every value survives");
    is_str(s ? keel_secrets_get(s, "AFTER_ROTATION") : NULL, "yes", "including the new one");
    keel_error_free(err);
    keel_secrets_free(s);

    /* A crash before the store was rewritten: the pending key was never used. */
    unsigned char key[32];
    randombytes_buf(key, sizeof key);
    char b64[64];
    sodium_bin2base64(b64, sizeof b64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    FILE *f = fopen(pending, "w");
    if (f) {
        fprintf(f, "%s\n", b64);
        fclose(f);
    }
    is_int(keel("set AFTER_CRASH", "ok", &out), 0, "a stale local.key.new does not stop the next set (%s)", out);
    free(out);
    ok(access(pending, F_OK) != 0, "and is removed, unused");
    s = NULL;
    err = open_store("local", &s);
    is_str(s ? keel_secrets_get(s, "AFTER_CRASH") : NULL, "ok", "the store still opens with its key");
    keel_error_free(err);
    keel_secrets_free(s);
    snprintf(cmd, sizeof cmd, "rm -f '%s.saved'", keypath);
    if (system(cmd) != 0)
        diag("could not remove %s.saved", keypath);
}

/* Copies local.enc aside, lets damage() change it, opens it, restores it. */
static char *damaged_open(void (*damage)(const char *path), const char *key_env)
{
    char path[400], cmd[1000];
    snprintf(path, sizeof path, "%s/local.enc", secrets);
    snprintf(cmd, sizeof cmd, "cp -p '%s' '%s.bak'", path, path);
    if (system(cmd) != 0)
        return strdup("");
    damage(path);
    if (key_env)
        setenv("KEEL_SECRETS_KEY", key_env, 1);
    keel_secrets *s = NULL;
    keel_error *err = open_store("local", &s);
    unsetenv("KEEL_SECRETS_KEY");
    char *msg = strdup(err ? err->message : "(opened)");
    keel_error_free(err);
    keel_secrets_free(s);
    snprintf(cmd, sizeof cmd, "mv '%s.bak' '%s'", path, path);
    if (system(cmd) != 0)
        printf("# could not restore %s\n", path);
    return msg;
}

static void flip_byte(const char *path)
{
    FILE *f = fopen(path, "r+b");
    if (!f)
        return;
    fseek(f, -5, SEEK_END);
    int c = fgetc(f);
    fseek(f, -5, SEEK_END);
    fputc(c ^ 0x01, f);
    fclose(f);
}

static void truncate_file(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && truncate(path, st.st_size - 7) != 0)
        printf("# truncate failed\n");
}

static void nothing(const char *path)
{
    (void)path;
}

static void garbage(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs("DB_PASSWORD=second\n", f);
        fclose(f);
    }
}

static void test_damage(void)
{
    char *m = damaged_open(flip_byte, NULL);
    like(m, "corrupted", "a flipped byte is reported as corrupted");
    ok(!strstr(m, "second"), "without the value");
    free(m);
    m = damaged_open(truncate_file, NULL);
    like(m, "truncated", "a truncated store is reported as truncated");
    free(m);
    unsigned char k[32];
    char b64[64];
    randombytes_buf(k, sizeof k);
    sodium_bin2base64(b64, sizeof b64, k, sizeof k, sodium_base64_VARIANT_ORIGINAL);
    m = damaged_open(nothing, b64);
    like(m, "wrong key", "another key is reported as the wrong key");
    like(m, "KEEL_SECRETS_KEY", "naming where the key came from");
    free(m);
    m = damaged_open(garbage, NULL);
    like(m, "not a Keel secrets store", "a file that is not a store says so");
    free(m);
    m = damaged_open(nothing, "not base64!");
    like(m, "not a base64", "a malformed KEEL_SECRETS_KEY is explained");
    free(m);
    char *out;
    char cmd[800];
    snprintf(cmd, sizeof cmd, "cp -p secrets/local.enc secrets/local.enc.bak && truncate -s -3 secrets/local.enc && "
                              "'%s' secrets list --env local; rc=$?; mv secrets/local.enc.bak secrets/local.enc; exit $rc",
             getenv("KEEL_CLI"));
    int st;
    out = run(cmd, &st);
    is_int(st, 1, "the command fails on a truncated store");
    like(out, "truncated", "and says it is truncated");
    free(out);
}

static void test_names(void)
{
    const char *bad[] = {"1ABC", "_X", "A-B", "A B", "Ä", "A.B", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[64], *out;
        snprintf(args, sizeof args, "set '%s'", bad[i]);
        int st = keel(args, "v", &out);
        ok((st == 2 || st == 1) && strstr(out, "not a valid secret name"),
           "name \"%s\" is rejected with a message", bad[i]);
        free(out);
    }
    ok(keel_secret_name_valid("Stripe_Key2"), "letters, digits and _ are fine");
}

static const char *const needs_two[] = {"DB_PASSWORD", "MISSING_ONE", "MISSING_TWO", NULL};
static const keel_service svc_a = {.name = "billing", .endpoints = NULL, .databases = NULL, .secrets = needs_two};

static void test_startup_check(void)
{
    /* The process's store, first opened with a wrong key, is opened again
     * on the next need once the key is right: a failure is not kept. */
    setenv("KEEL_SECRETS_DIR", secrets, 1);
    setenv("KEEL_SECRETS_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1);
    const char *early = NULL;
    keel_error *first = keel_secret_lookup("DB_PASSWORD", &early);
    like(first ? first->message : NULL, "wrong key", "with a wrong KEEL_SECRETS_KEY the process's store does not open");
    keel_error_free(first);
    unsetenv("KEEL_SECRETS_KEY");
    first = keel_secret_lookup("DB_PASSWORD", &early);
    ok(!first && early && strcmp(early, "second") == 0, "with the key file back in use, the next lookup opens it");
    keel_error_free(first);
    const keel_service *const services[] = {&svc_a, NULL};
    struct keel_app app;
    memset(&app, 0, sizeof app);
    app.services = services;
    keel_error *err = keel__secrets_check(&app);
    ok(err != NULL, "an app with missing secrets does not pass the check");
    const char *m = err ? err->message : "";
    like(m, "2 secrets are missing for environment local", "it counts them and names the environment");
    like(m, "MISSING_ONE (service billing): keel secrets set --env local MISSING_ONE", "names the first and its command");
    like(m, "keel secrets set --env local MISSING_TWO", "and the second");
    ok(!strstr(m, "DB_PASSWORD"), "a secret that is set is not listed");
    char where[600];
    snprintf(where, sizeof where,
             "missing for environment local (looked in $KEEL_SECRET_<NAME> and the store %s/local.enc):", secrets);
    like(m, where, "it names the store file it read and the variables");
    keel_error_free(err);
    setenv("KEEL_SECRET_MISSING_ONE", "from-env", 1);
    setenv("KEEL_SECRET_MISSING_TWO", "from-env-2", 1);
    err = keel__secrets_check(&app);
    ok(!err, "secrets given as KEEL_SECRET_<NAME> pass the check");
    keel_error_free(err);
    is_str(keel_secret("MISSING_ONE"), "from-env", "keel_secret reads KEEL_SECRET_<NAME>");
    is_str(keel_secret("DB_PASSWORD"), "second", "keel_secret reads the store");
    ok(keel_secret("NOPE") == NULL, "an unknown secret is NULL");
    const char *v;
    err = keel_secret_lookup("NOPE", &v);
    like(err ? err->message : NULL, "keel secrets set --env local NOPE", "keel_secret_lookup explains how to set it");
    snprintf(where, sizeof where,
             "secret NOPE is not set for environment local (looked in $KEEL_SECRET_NOPE and the store %s/local.enc): "
             "run `keel secrets set --env local NOPE`", secrets);
    is_str(err ? err->message : NULL, where, "and says where it looked: the variable and the store file");
    keel_error_free(err);
}

/* The example app declares EXTERNAL_DB_PASSWORD: started without it, it
 * refuses to start and prints the name and the command. */
static void test_app_refuses(void)
{
    const char *app = getenv("KEEL_EXAMPLE");
    if (!app) {
        skip("KEEL_EXAMPLE is not set");
        return;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p empty && unset KEEL_SECRET_EXTERNAL_DB_PASSWORD KEEL_ENV && "
                              "KEEL_SECRETS_DIR='%s/empty' PORT=0 '%s'", dir, app);
    int st;
    char *out = run(cmd, &st);
    is_int(st, 1, "the example app without its secret refuses to start");
    like(out, "EXTERNAL_DB_PASSWORD", "naming the missing secret");
    like(out, "keel secrets set --env local EXTERNAL_DB_PASSWORD", "and the command that sets it");
    char where[600];
    snprintf(where, sizeof where, "(looked in $KEEL_SECRET_<NAME>; no store: %s/empty/local.enc does not exist)", dir);
    like(out, where, "and that no store file exists where it looked");
    free(out);
}

/* `keel secrets check` takes the declared secrets from the example app's
 * model and reads them as start-up would: the store, else $KEEL_SECRET_<NAME>. */
static void test_check(void)
{
    const char *app = getenv("KEEL_EXAMPLE");
    if (!app) {
        skip("KEEL_EXAMPLE is not set");
        return;
    }
    ok(keel("set --env chk EXTERNAL_DB_PASSWORD", "chk-value-1", NULL) == 0, "the chk store has one of the two");
    char cmd[1400];
    const char *unset = "unset KEEL_SECRET_EXTERNAL_DB_PASSWORD KEEL_SECRET_GITHUB_WEBHOOK_SECRET KEEL_ENV";
    snprintf(cmd, sizeof cmd, "%s && '%s' secrets check --env chk --app '%s'", unset, getenv("KEEL_CLI"), app);
    int st;
    char *out = run(cmd, &st);
    is_int(st, 1, "check fails when a declared secret is missing");
    like(out, "missing: keel secrets set --env chk GITHUB_WEBHOOK_SECRET", "naming it with the command that sets it");
    like(out, "1 of 3 declared secrets are missing for environment chk", "and counting what the model declares");
    ok(!strstr(out, "set --env chk EXTERNAL_DB_PASSWORD"), "a secret in the store is not reported missing");
    ok(!strstr(out, "chk-value-1"), "no value is printed");
    free(out);
    snprintf(cmd, sizeof cmd, "%s && KEEL_SECRET_GITHUB_WEBHOOK_SECRET=x '%s' secrets check --env chk --app '%s'",
             unset, getenv("KEEL_CLI"), app);
    out = run(cmd, &st);
    is_int(st, 0, "check passes once the missing one comes from $KEEL_SECRET_<NAME>");
    like(out, "set ($KEEL_SECRET_GITHUB_WEBHOOK_SECRET)", "and says where it comes from");
    free(out);
    is_int(keel("list --app x", NULL, NULL), 2, "--app is only for check");
}

int main(void)
{
    if (!getenv("KEEL_CLI")) {
        printf("Bail out! KEEL_CLI is not set (run through make check)\n");
        return 1;
    }
    if (sodium_init() < 0)
        return 1;
    snprintf(dir, sizeof dir, "/tmp/keel-secrets-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(secrets, sizeof secrets, "%s/secrets", dir);
    unsetenv("KEEL_SECRETS_KEY");
    unsetenv("KEEL_ENV");
    test_round_trip();
    test_store_limit();
    test_record_names();
    test_concurrent_sets();
    test_rotate();
    test_rotate_interrupted();
    test_damage();
    test_names();
    test_startup_check();
    test_app_refuses();
    test_check();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}

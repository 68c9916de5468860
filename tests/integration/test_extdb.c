/* tests/integration/test_extdb.c - external databases on a real PostgreSQL:
 * a password full of URI-special characters (from the secrets store) works, a
 * wrong password is a clear error without the password, sslmode=require
 * against a server without SSL says so, a database down at the first request
 * is 503 and the next request after it comes back succeeds (no restart), and
 * 32 threads asking at once share one pool. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <keel/keel.h>
#include "core.h"
#include "pg_harness.h"
#include "tap.h"

#define SPECIAL "p@ss:w/o?r#d% 'q\\ x&=;"
#define SPECIAL_SQL "p@ss:w/o?r#d% ''q\\ x&=;"
#define WRONG "Wr0ng@pa:ss/#"

static pgh_cluster pg;
static char dir[256];

static keel_extdb ext = KEEL_EXTDB("ext", "EXT_PASSWORD");
static keel_extdb ext_wrong = KEEL_EXTDB("ext_wrong", "EXT_WRONG");
static keel_extdb ext_ssl = KEEL_EXTDB("ext_ssl", "EXT_PASSWORD");
static keel_extdb ext_down = KEEL_EXTDB("ext_down", "EXT_PASSWORD");
static keel_extdb ext_many = KEEL_EXTDB("ext_many", "EXT_PASSWORD");
static keel_extdb ext_remote = KEEL_EXTDB("ext_remote", "EXT_PASSWORD");
static char nonlocal_ip[INET_ADDRSTRLEN]; /* "" when the machine has none */

/* ---- a server that refuses SSL, as PostgreSQL without ssl=on does ------------- */

static int fake_fd = -1;
static unsigned fake_port;

static void *fake_server(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(fake_fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char req[8];
        if (read(c, req, sizeof req) == (ssize_t)sizeof req && write(c, "N", 1) != 1)
            printf("# fake server: write failed\n");
        close(c);
    }
}

/* The first IPv4 address of this machine that is not loopback, if any. */
static void find_nonlocal_ip(void)
{
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0)
        return;
    for (struct ifaddrs *i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct in_addr in = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if ((ntohl(in.s_addr) >> 24) == 127)
            continue;
        inet_ntop(AF_INET, &in, nonlocal_ip, sizeof nonlocal_ip);
        break;
    }
    freeifaddrs(list);
}

static bool fake_start(pthread_t *t)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
    socklen_t len = sizeof a;
    fake_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fake_fd < 0 || bind(fake_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fake_fd, 8) != 0 ||
        getsockname(fake_fd, (struct sockaddr *)&a, &len) != 0)
        return false;
    fake_port = ntohs(a.sin_port);
    return pthread_create(t, NULL, fake_server, NULL) == 0;
}

/* ---- set-up ------------------------------------------------------------------------- */

/* Password authentication for extuser on the socket (the harness trusts all). */
static bool require_passwords(void)
{
    char path[400], cmd[900];
    snprintf(path, sizeof path, "%s/data/pg_hba.conf", pg.dir);
    snprintf(cmd, sizeof cmd, "sed -i '1i local all extuser scram-sha-256' '%s'", path);
    return system(cmd) == 0 && pgh_exec(&pg, "postgres", "SELECT pg_reload_conf()");
}

/* The infra config, external databases in the same shape as managed ones:
 * four on the harness's socket, one on the fake server that refuses SSL, one
 * on a non-loopback address with sslmode left to its default. */
static bool write_config(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/infra.json", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    const char *names[] = {"ext", "ext_wrong", "ext_down", "ext_many"};
    fprintf(f, "{\"sql_servers\": [{\"host\": \"%s\", \"port\": %u, \"sslmode\": \"disable\", \"databases\": {",
            pg.socket_dir, pg.port);
    for (size_t i = 0; i < 4; i++)
        fprintf(f, "%s\"%s\": {\"name\": \"extdb\", \"user\": \"extuser\"}", i ? ", " : "", names[i]);
    fprintf(f, "}}, {\"host\": \"127.0.0.1\", \"port\": %u, \"sslmode\": \"require\", "
               "\"databases\": {\"ext_ssl\": {\"name\": \"extdb\", \"user\": \"extuser\"}}}, ", fake_port);
    fprintf(f, "{\"host\": \"%s\", \"port\": %u, \"databases\": {\"ext_remote\": {\"name\": \"extdb\", "
               "\"user\": \"extuser\"}}}], \"pool\": {\"checkout_timeout_ms\": %u}}\n",
            nonlocal_ip[0] ? nonlocal_ip : "192.0.2.1", fake_port,
            /* the connect timeout follows it: under valgrind, SCRAM alone can take seconds */
            getenv("KEEL_TEST_VALGRIND") ? 10000u : 2000u);
    fclose(f);
    setenv("KEEL_INFRA_CONFIG", path, 1);
    return true;
}

static bool store_passwords(void)
{
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(dir, "local", KEEL_SECRETS_CREATE_KEY, &s);
    if (!err)
        err = keel_secrets_set(s, "EXT_PASSWORD", SPECIAL, strlen(SPECIAL));
    if (!err)
        err = keel_secrets_set(s, "EXT_WRONG", WRONG, strlen(WRONG));
    keel_secrets_free(s);
    if (err)
        printf("# %s\n", err->message);
    keel_error_free(err);
    setenv("KEEL_SECRETS_DIR", dir, 1);
    unsetenv("KEEL_SECRETS_KEY");
    unsetenv("KEEL_ENV");
    return true;
}

/* ---- tests ---------------------------------------------------------------------------- */

static keel_error *ping(keel_extdb *x, int64_t *one, const char **version, keel_req *req)
{
    keel_sqldb *db;
    keel_row *row;
    keel_error *err = keel_extdb_get(x, &db);
    if (!err)
        err = keel_db_query_row(req, db, &row, "SELECT 1::int8, current_setting('server_version')");
    if (!err)
        err = keel_row_scan(row, "it", one, version);
    return err;
}

static void test_special_password(void)
{
    keel_req *req = keel__req_detached_new();
    int64_t one = 0;
    const char *version = NULL;
    keel_error *err = ping(&ext, &one, &version, req);
    ok(!err, "a password with @ : / ? # %% ' \\ space & = ; connects (%s)", err ? err->message : "ok");
    is_int(one, 1, "SELECT 1 on the external database");
    like(version, "15", "it reports the server version");
    keel_error_free(err);
    keel__req_detached_free(req);
}

static void test_wrong_password(void)
{
    keel_sqldb *db;
    keel_error *err = keel_extdb_get(&ext_wrong, &db);
    ok(err != NULL, "a wrong password fails");
    ok(err && keel_error_http_status(err) == 503, "as unavailable (503)");
    is_str(err ? err->message : NULL, "external database \"ext_wrong\" is unavailable",
           "clients are told the database is unavailable, nothing about its server or role");
    like(err ? err->cause : NULL, "password authentication failed for user \"extuser\"",
         "the logged cause says what failed");
    like(err ? err->cause : NULL, "EXT_WRONG", "naming the secret to check");
    ok(err && !strstr(err->message, WRONG) && !strstr(err->message, SPECIAL) &&
           (!err->cause || (!strstr(err->cause, WRONG) && !strstr(err->cause, SPECIAL))),
       "neither message nor cause contains a password");
    keel_error_free(err);
}

static void test_ssl_mismatch(void)
{
    keel_sqldb *db;
    keel_error *err = keel_extdb_get(&ext_ssl, &db);
    ok(err != NULL, "sslmode=require against a server without SSL fails");
    ok(err && !strstr(err->message, "127.0.0.1") && !strstr(err->message, "SSL"),
       "the message sent to clients names no server (%s)", err ? err->message : "");
    like(err ? err->cause : NULL, "sslmode=require: ", "the logged cause names the setting");
    like(err ? err->cause : NULL, "does not support SSL", "and says why");
    keel_error_free(err);
}

/* A server that is not this machine gets sslmode=verify-full unless the
 * settings say otherwise: the fake server on a non-loopback address of this
 * machine refuses SSL, so the connection fails instead of going on in clear. */
static void test_tls_by_default(void)
{
    if (!nonlocal_ip[0]) {
        skip("this machine has no non-loopback IPv4 address");
        return;
    }
    keel_sqldb *db;
    keel_error *err = keel_extdb_get(&ext_remote, &db);
    ok(err != NULL, "a server at %s without sslmode set is not used in clear", nonlocal_ip);
    like(err ? err->cause : NULL, "sslmode=verify-full (the default for a server that is not this machine)",
         "the cause names the default");
    like(err ? err->cause : NULL, "To relax it, set \"sslmode\"", "and how to relax it");
    keel_error_free(err);
}

static void test_down_then_up(void)
{
    keel_req *req = keel__req_detached_new();
    int64_t one = 0;
    const char *version;
    if (!ok(pgh_pause(&pg), "the server is stopped"))
        return;
    keel_error *err = ping(&ext_down, &one, &version, req);
    ok(err && err->code == KEEL_UNAVAILABLE && keel_error_http_status(err) == 503,
       "the first request while it is down is 503 unavailable");
    keel_error_free(err);
    err = ping(&ext, &one, &version, req);
    ok(err && keel_error_http_status(err) == 503, "an already open pool answers 503 too");
    keel_error_free(err);
    keel__req_detached_free(req);
    ok(pgh_resume(&pg), "the server is started again");
    req = keel__req_detached_new();
    one = 0;
    err = ping(&ext_down, &one, &version, req);
    ok(!err && one == 1, "the next request succeeds without a restart (%s)", err ? err->message : "ok");
    keel_error_free(err);
    one = 0;
    err = ping(&ext, &one, &version, req);
    ok(!err && one == 1, "and the pool made before the outage recovers");
    keel_error_free(err);
    keel__req_detached_free(req);
}

#define THREADS 32
static pthread_barrier_t barrier;

static void *get_many(void *arg)
{
    keel_sqldb **out = arg;
    pthread_barrier_wait(&barrier);
    keel_error *err = keel_extdb_get(&ext_many, out);
    if (err)
        *out = NULL;
    keel_error_free(err);
    return NULL;
}

/* Settings in the old places are refused with directions, and a database
 * the infra config does not list says where it must go. */
static keel_extdb ext_unlisted = KEEL_EXTDB("ext_unlisted", "EXT_PASSWORD");

static void test_settings_moved(void)
{
    keel_sqldb *db;
    keel_error *err = keel_extdb_get(&ext_unlisted, &db);
    ok(err && err->code == KEEL_UNAVAILABLE, "a database the infra config does not list is unavailable");
    like(err ? err->cause : NULL, "is not in the infra config", "the cause says it is not listed");
    like(err ? err->cause : NULL, "keel db add-external ext_unlisted", "and how to add it");
    keel_error_free(err);

    setenv("KEEL_EXTDB_EXT_HOST", "db.example.com", 1);
    err = keel__extdb_check_legacy();
    like(err ? err->message : NULL, "KEEL_EXTDB_EXT_HOST is no longer read", "an old override variable is named");
    like(err ? err->message : NULL, "{\"$env\": \"VAR\"}", "with what replaces it");
    keel_error_free(err);
    unsetenv("KEEL_EXTDB_EXT_HOST");

    char keel_dir[400], old[500];
    snprintf(keel_dir, sizeof keel_dir, "%s/.keel", dir);
    snprintf(old, sizeof old, "%s/extdb.local.json", keel_dir);
    FILE *f = (mkdir(keel_dir, 0700) == 0 || errno == EEXIST) ? fopen(old, "w") : NULL;
    if (f) {
        fputs("{\"databases\": {\"ext\": {\"host\": \"db.example.com\", \"user\": \"u\"}}}\n", f);
        fclose(f);
    }
    setenv("KEEL_APP_ROOT", dir, 1);
    err = keel__extdb_check_legacy();
    like(err ? err->message : NULL, "no longer read from", "an old extdb.local.json is refused");
    like(err ? err->message : NULL, old, "naming the file");
    like(err ? err->message : NULL, "keel db add-external", "and saying how to move it");
    keel_error_free(err);
    keel_sqldb *again = NULL;
    err = keel_extdb_get(&ext_unlisted, &again);
    like(err ? err->cause : NULL, "no longer read from", "first use says the same");
    keel_error_free(err);
    unlink(old);
    unsetenv("KEEL_APP_ROOT");
    ok(keel__extdb_check_legacy() == NULL, "with the old file gone, nothing is refused");
}

static void test_concurrent(void)
{
    pthread_t t[THREADS];
    keel_sqldb *got[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, get_many, &got[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    int same = 0;
    for (int i = 0; i < THREADS; i++)
        same += got[i] && got[i] == got[0] && got[i]->pool == got[0]->pool;
    is_int(same, THREADS, "32 threads asking at once share one pool");
}

int main(void)
{
    if (!pgh_start(&pg)) {
        printf("Bail out! cannot start PostgreSQL\n");
        return 1;
    }
    snprintf(dir, sizeof dir, "/tmp/keel-extdb-XXXXXX");
    pthread_t fake;
    find_nonlocal_ip();
    bool ready = mkdtemp(dir) && fake_start(&fake) && pgh_create_db(&pg, "extdb") &&
                 pgh_exec(&pg, "postgres", "CREATE ROLE extuser LOGIN PASSWORD '" SPECIAL_SQL "'") &&
                 require_passwords() && write_config() && store_passwords();
    if (!ok(ready, "set-up: database, role with a special password, config, secrets")) {
        pgh_stop(&pg);
        return tap_done();
    }
    test_special_password();
    test_wrong_password();
    test_ssl_mismatch();
    test_tls_by_default();
    test_concurrent();
    test_settings_moved();
    test_down_then_up();
    keel_extdb_close(&ext);
    keel_extdb_close(&ext_down);
    keel_extdb_close(&ext_many);
    shutdown(fake_fd, SHUT_RDWR);
    close(fake_fd);
    pthread_join(fake, NULL);
    pgh_stop(&pg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
    return tap_done();
}

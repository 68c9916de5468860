/* tests/integration/test_webhooks.c - the webhooks service end to end: `keel
 * run` in a fresh app root provisions its "webhooks" database, the app takes
 * GITHUB_WEBHOOK_SECRET from $KEEL_SECRET_GITHUB_WEBHOOK_SECRET, and signed
 * GitHub deliveries are verified as they stream in and stored once. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define SECRET "whk-test-secret \"quoted\" & spaced"
static const char *const webhook_env[] = {"KEEL_SECRET_GITHUB_WEBHOOK_SECRET=" SECRET, "KEEL_BODY_BUDGET=33554432",
                                          NULL};

static ht_server srv;
static char root[256];

/* "sha256=<hex HMAC-SHA256(secret, body)>" in a buffer of 4 used in turn. */
static const char *github_sig(const char *secret, const char *body, size_t len)
{
    static char bufs[4][7 + 64 + 1];
    static unsigned next;
    char *out = bufs[next++ % 4];
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, 65, mac, sizeof mac);
    return out;
}

/* POSTs a delivery; sig NULL sends no signature header, delivery NULL no
 * X-GitHub-Delivery. */
static ht_response deliver(const char *delivery, const char *event, const char *body, size_t len, const char *sig)
{
    char h_sig[128], h_id[128], h_ev[128];
    const char *h[6];
    int n = 0;
    h[n++] = "Content-Type: application/json";
    if (sig) {
        snprintf(h_sig, sizeof h_sig, "X-Hub-Signature-256: %s", sig);
        h[n++] = h_sig;
    }
    if (delivery) {
        snprintf(h_id, sizeof h_id, "X-GitHub-Delivery: %s", delivery);
        h[n++] = h_id;
    }
    snprintf(h_ev, sizeof h_ev, "X-GitHub-Event: %s", event);
    h[n++] = h_ev;
    h[n] = NULL;
    return ht_request(&srv, "POST", "/webhooks/github", body, len, h);
}

/* The stored events as JSON (caller decrefs). */
static json_t *events(void)
{
    ht_response r = ht_request(&srv, "GET", "/webhooks/events", NULL, 0, NULL);
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    if (!j)
        diag("GET /webhooks/events: %ld %s", r.status, r.body ? r.body : "");
    ht_free(&r);
    return json_object_get(j, "events") ? j : (json_decref(j), NULL);
}

static const char push_body[] = "{\"ref\":\"refs/heads/main\",\"action\":\"pushed\",\"n\":1}";

static void test_stored_once(void)
{
    char *log = ht_log(&srv);
    like(log, "Creating database webhooks", "keel run provisions the webhooks database");
    like(log, "webhooks: applied 2 migrations", "the app applies the webhooks migrations");
    free(log);

    const char *sig = github_sig(SECRET, push_body, strlen(push_body));
    ht_response r = deliver("d-0001", "push", push_body, strlen(push_body), sig);
    is_int(r.status, 200, "a correctly signed delivery is accepted");
    is_str(r.body, "{\"status\":\"stored\"}", "and stored");
    ht_free(&r);
    r = deliver("d-0001", "push", push_body, strlen(push_body), sig);
    is_int(r.status, 200, "the same delivery sent again is acknowledged");
    is_str(r.body, "{\"status\":\"duplicate\"}", "as a duplicate");
    ht_free(&r);
    /* The delivery id is not signed: a captured delivery replayed under a
     * new id carries a valid signature, and is still the same delivery. */
    r = deliver("d-replayed", "push", push_body, strlen(push_body), sig);
    is_int(r.status, 200, "the same signed body under another delivery id is acknowledged");
    is_str(r.body, "{\"status\":\"duplicate\"}", "as a duplicate, not stored again");
    ht_free(&r);

    json_t *j = events();
    json_t *list = json_object_get(j, "events");
    is_int(json_array_size(list), 1, "GET /webhooks/events lists it once");
    json_t *e = json_array_get(list, 0);
    is_str(json_string_value(json_object_get(e, "delivery_id")), "d-0001", "with its delivery id");
    is_str(json_string_value(json_object_get(e, "event")), "push", "its event type");
    is_int(json_integer_value(json_object_get(e, "size")), strlen(push_body), "and its size");
    ok(json_is_integer(json_object_get(e, "id")) && json_is_string(json_object_get(e, "received_at")),
       "and an id and a received_at time");
    json_decref(j);
}

static void test_refused(void)
{
    const char *good = github_sig(SECRET, push_body, strlen(push_body));
    char tampered[sizeof push_body];
    memcpy(tampered, push_body, sizeof push_body);
    tampered[strlen(tampered) - 2] = '2'; /* "n":2 */
    ht_response r = deliver("d-0002", "push", tampered, strlen(tampered), good);
    is_int(r.status, 401, "a tampered body is 401");
    like(r.body, "\"code\":\"unauthenticated\"", "with code unauthenticated");
    like(r.body, "does not match", "saying the signature does not match");
    ok(!tap_contains(r.body, "whk-test-secret"), "without the secret");
    ht_free(&r);

    const char *wrong = github_sig("another secret", push_body, strlen(push_body));
    r = deliver("d-0003", "push", push_body, strlen(push_body), wrong);
    is_int(r.status, 401, "a signature made with the wrong secret is 401");
    like(r.body, "\"code\":\"unauthenticated\"", "with code unauthenticated");
    ht_free(&r);

    r = deliver("d-0004", "push", push_body, strlen(push_body), NULL);
    is_int(r.status, 401, "a delivery without X-Hub-Signature-256 is 401");
    like(r.body, "missing X-Hub-Signature-256", "saying the header is missing");
    ht_free(&r);

    r = deliver("d-0005", "push", push_body, strlen(push_body), "sha1=0123456789abcdef");
    is_int(r.status, 401, "a malformed signature header is 401");
    like(r.body, "malformed", "saying it is malformed");
    ht_free(&r);

    r = deliver("d-0006", "push", "", 0, good);
    is_int(r.status, 401, "an empty body with another body's signature is 401");
    ht_free(&r);

    r = deliver(NULL, "push", push_body, strlen(push_body), good);
    is_int(r.status, 400, "a signed delivery without X-GitHub-Delivery is 400");
    ht_free(&r);

    json_t *j = events();
    is_int(json_array_size(json_object_get(j, "events")), 1, "nothing refused was stored");
    json_decref(j);
}

static void test_large(void)
{
    const size_t size = 10u << 20;
    char *body = malloc(size + 1);
    memcpy(body, "{\"blob\":\"", 9);
    for (size_t i = 9; i < size - 2; i++)
        body[i] = (char)('a' + i % 26);
    memcpy(body + size - 2, "\"}", 3);
    const char *sig = github_sig(SECRET, body, size);
    ht_response r = deliver("d-big", "push", body, size, sig);
    is_int(r.status, 200, "a 10 MiB payload streamed through verification is accepted");
    is_str(r.body, "{\"status\":\"stored\"}", "and stored");
    ht_free(&r);
    body[size / 2] = '!';
    r = deliver("d-big-2", "push", body, size, sig);
    is_int(r.status, 401, "the same 10 MiB with one byte changed is 401");
    ht_free(&r);
    free(body);

    const size_t over = (25u << 20) + 1;
    body = calloc(1, over);
    r = deliver("d-huge", "push", body, over, github_sig(SECRET, body, over));
    is_int(r.status, 413, "a body over 25 MiB is refused with 413");
    like(r.body, "\"code\":\"resource_exhausted\"", "with code resource_exhausted");
    ht_free(&r);
    free(body);

    const char form[] = "payload=%7B%22zen%22%3A%22hi%22%7D";
    r = deliver("d-form", "ping", form, strlen(form), github_sig(SECRET, form, strlen(form)));
    is_int(r.status, 200, "a body that is not JSON is stored too");
    ht_free(&r);

    json_t *j = events();
    json_t *list = json_object_get(j, "events");
    is_int(json_array_size(list), 3, "three deliveries are stored");
    is_str(json_string_value(json_object_get(json_array_get(list, 1), "delivery_id")), "d-big",
           "in the order received");
    is_int(json_integer_value(json_object_get(json_array_get(list, 1), "size")), size, "the large one whole");
    json_decref(j);
}

/* What a client can make the service keep in memory is bounded: a declared
 * body over 25 MiB is refused before it is read, and the bodies kept at once
 * share the process's budget (32 MiB here), whatever their signature header
 * says, since the signature is only known at the end.  A body refused that
 * way is still answered; an unsigned one is answered 401 after it is read. */
static void test_memory_bounds(void)
{
    unsigned patience = ht_valgrind() ? 30 : 5;
    const char *huge = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\n"
                       "X-GitHub-Delivery: d-huge-2\r\nX-GitHub-Event: push\r\nContent-Length: 27262976\r\n\r\n";
    int fd = ht_raw_connect(&srv, patience);
    send(fd, huge, strlen(huge), MSG_NOSIGNAL);
    bool eof;
    char *got = ht_recv_all(fd, &eof);
    like(got, "HTTP/1.1 413", "a declared 26 MiB delivery is refused with 413 before any of it is sent");
    free(got);
    close(fd);

    const char *twenty = "POST /webhooks/github HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: sha256=00\r\n"
                         "X-GitHub-Delivery: d-held\r\nX-GitHub-Event: push\r\nContent-Length: 24117248\r\n\r\n";
    int held = ht_raw_connect(&srv, patience);
    send(held, twenty, strlen(twenty), MSG_NOSIGNAL);
    ht_send_filler(held, 20u << 20); /* 20 MiB of a declared 23 MiB: kept while the rest is awaited */
    usleep(ht_valgrind() ? 3000 * 1000 : 500 * 1000);
    fd = ht_raw_connect(&srv, patience);
    send(fd, twenty, strlen(twenty), MSG_NOSIGNAL);
    got = ht_recv_all(fd, &eof);
    like(got, "HTTP/1.1 503", "a 20 MiB delivery while another holds 20 MiB is refused with 503 (32 MiB budget)");
    free(got);
    close(fd);
    close(held);
    usleep(300 * 1000);
    /* The missing signature is found at the first chunk: the rest of the
     * body (of accepted length) is read and dropped, and the 401 answered. */
    size_t big = 400u << 10;
    char *unsigned_body = calloc(1, big);
    memset(unsigned_body, ' ', big);
    ht_response u = deliver("d-unsigned-big", "push", unsigned_body, big, NULL);
    is_int(u.status, 401, "an unsigned 400 KiB delivery is answered 401, not cut off");
    ht_free(&u);
    free(unsigned_body);

    const char body[] = "{\"after\":\"the held one left\"}";
    ht_response r = deliver("d-after-held", "push", body, strlen(body), github_sig(SECRET, body, strlen(body)));
    is_int(r.status, 200, "once it is gone, deliveries are accepted again");
    ht_free(&r);
}

/* The rows as psql sees them: payload as jsonb, the exact bytes in payload_raw. */
static void test_storage(void)
{
    char cmd[1024];
    int status;
    snprintf(cmd, sizeof cmd, "cd '%s' && \"$KEEL_CLI\" db conn-uri webhooks", root);
    char *uri = ht_shell(cmd, &status);
    uri[strcspn(uri, "\n")] = '\0';
    snprintf(cmd, sizeof cmd,
             "psql '%s' -Atc \"SELECT delivery_id, event, payload->>'action', convert_from(payload_raw, 'UTF8'), "
             "payload IS NULL FROM webhook_event WHERE delivery_id IN ('d-0001', 'd-form') ORDER BY id\" 2>&1",
             uri);
    char *out = ht_shell(cmd, &status);
    is_str(out,
           "d-0001|push|pushed|{\"ref\":\"refs/heads/main\",\"action\":\"pushed\",\"n\":1}|f\n"
           "d-form|ping||payload=%7B%22zen%22%3A%22hi%22%7D|t\n",
           "JSON is stored as jsonb and every body verbatim");
    free(out);
    free(uri);
}

int main(void)
{
    if (!getenv("KEEL_CLI") || !getenv("KEEL_SRCDIR") || !getenv("KEEL_EXAMPLE")) {
        printf("Bail out! KEEL_CLI, KEEL_SRCDIR and KEEL_EXAMPLE must be set (run through make check)\n");
        return 1;
    }
    if (sodium_init() < 0) {
        printf("Bail out! libsodium\n");
        return 1;
    }
    char migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", getenv("KEEL_SRCDIR"));
    ht_make_app_root(root, sizeof root, migrations);
    if (!ht_start_keel_run(&srv, root, webhook_env)) {
        printf("Bail out! keel run did not start the app\n");
        return 1;
    }
    test_stored_once();
    test_refused();
    test_large();
    test_storage();
    test_memory_bounds();
    char *log = ht_log(&srv);
    ok(!tap_contains(log, "whk-test-secret"), "the log never holds the secret");
    free(log);
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
    ht_remove_app_root(root);
    return tap_done();
}

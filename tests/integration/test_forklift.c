/* tests/integration/test_forklift.c - the forklift: a legacy libmicrohttpd
 * backend (services/legacy) mounted unchanged in Keel with KEEL_MOUNT_MHD must
 * answer exactly as it does stand-alone.  Both run as real processes (the
 * stand-alone binary from KEEL_LEGACY; the Keel app is this program re-run
 * with --keel-app, or KEEL_FORKLIFT_APP when set) and get the same requests;
 * status, the headers that matter and bodies are compared byte for byte.
 * Then the break-out (typed GET /api/items/:id over the same store), Keel's
 * request log, paths with encoded slashes (as clients fill {path}), and the
 * legacy completed callback (no request state left
 * behind, also after a client disconnect). */
#include <keel/keel.h>

#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "legacy/mount.h"
#include "tap.h"

static ht_server legacy, keel;

typedef struct step {
    const char *method, *path;
    const char *body;      /* NULL: none; "@upload": the 1 MiB payload */
    const char *ctype;     /* request Content-Type */
    int typed;             /* served by the typed break-out on Keel */
} step;

static char *upload;
static const size_t upload_len = 1024 * 1024;

static ht_response send_step(const ht_server *srv, const step *s)
{
    char ct[128];
    const char *h[] = {ct, NULL};
    snprintf(ct, sizeof ct, "Content-Type: %s", s->ctype ? s->ctype : "application/octet-stream");
    const char *body = s->body;
    size_t len = body ? strlen(body) : 0;
    if (body && strcmp(body, "@upload") == 0) {
        body = upload;
        len = upload_len;
    }
    return ht_request(srv, s->method, s->path, body, len, s->ctype || body ? h : NULL);
}

static const char *hdr(const ht_response *r, const char *name, char *buf, size_t len)
{
    return ht_header(r, name, buf, len) ? buf : "(none)";
}

/* Sends s to both servers and compares the answers. */
static void compare(const step *s)
{
    ht_response a = send_step(&legacy, s), b = send_step(&keel, s);
    char what[160];
    snprintf(what, sizeof what, "%s %s", s->method, s->path);
    ok(a.status >= 200, "%s: legacy answers (%ld)", what, a.status);
    is_int(b.status, a.status, "%s: same status on Keel", what);
    ok(b.len == a.len && memcmp(a.body, b.body, a.len) == 0, "%s: same body, byte for byte (%zu bytes)", what,
       a.len);
    if (b.len != a.len || memcmp(a.body, b.body, a.len) != 0)
        printf("#   legacy: %.300s\n#   keel:   %.300s\n", a.body, b.body);
    static const char *const names[] = {"Content-Type", "Location", "Set-Cookie", "Allow", "Cache-Control",
                                        "Content-Length"};
    int same = 1;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char x[512], y[512];
        const char *va = hdr(&a, names[i], x, sizeof x), *vb = hdr(&b, names[i], y, sizeof y);
        if (strcmp(va, vb) != 0) {
            same = 0;
            printf("#   %s: legacy '%s', keel '%s'\n", names[i], va, vb);
        }
    }
    ok(same, "%s: same Content-Type, Location, Set-Cookie, Allow, Cache-Control, Content-Length", what);
    char id[128];
    if (s->typed)
        ok(ht_header(&b, "X-Request-Id", id, sizeof id), "%s: served by Keel's typed endpoint (X-Request-Id)", what);
    else
        ok(!ht_header(&b, "X-Request-Id", id, sizeof id), "%s: the legacy response goes out unchanged (no X-Request-Id)",
           what);
    ht_free(&a);
    ht_free(&b);
}

/* The "live_requests"/"aborted_requests" of GET /api/stats, retried until
 * live is 1 (the stats request itself) or ~5 s passed.  Completed callbacks
 * of earlier requests may run just after their response went out. */
static void stats(const ht_server *srv, long want_aborted, long *live, long *aborted)
{
    *live = *aborted = -1;
    for (int i = 0; i < 100; i++) {
        ht_response r = ht_request(srv, "GET", "/api/stats", NULL, 0, NULL);
        json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
        json_int_t l = -1, a = -1;
        if (j)
            json_unpack(j, "{s:I, s:I}", "live_requests", &l, "aborted_requests", &a);
        json_decref(j);
        ht_free(&r);
        *live = (long)l;
        *aborted = (long)a;
        if (*live == 1 && *aborted >= want_aborted)
            return;
        usleep(50000);
    }
}

/* Counts Keel request-log lines for route with status (status 0: any). */
static int log_lines(const char *log, const char *route, unsigned status)
{
    char r[128], st[32];
    snprintf(r, sizeof r, "\"route\":\"%s\"", route);
    snprintf(st, sizeof st, "\"status\":%u,", status);
    int n = 0;
    for (const char *line = log; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[2048];
        if (len < sizeof buf) {
            memcpy(buf, line, len);
            buf[len] = '\0';
            if (strstr(buf, "\"msg\":\"request\"") && strstr(buf, r) && (!status || strstr(buf, st)))
                n++;
        }
        line = eol ? eol + 1 : NULL;
    }
    return n;
}

/* Waits until the Keel log has at least want lines for route/status. */
static int wait_log_lines(const char *route, unsigned status, int want)
{
    int n = 0;
    for (int i = 0; i < 100; i++) {
        char *log = ht_log(&keel);
        n = log_lines(log, route, status);
        free(log);
        if (n >= want)
            break;
        usleep(50000);
    }
    return n;
}

/* Starts an upload of 1 MB, sends 1000 bytes and hangs up. */
static void abandon_upload(const ht_server *srv)
{
    int fd = ht_connect(srv);
    if (fd < 0)
        return;
    char req[256], junk[1000];
    int n = snprintf(req, sizeof req,
                     "POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\n\r\n");
    memset(junk, 'x', sizeof junk);
    ssize_t w = write(fd, req, (size_t)n);
    w += write(fd, junk, sizeof junk);
    (void)w;
    usleep(200000);
    close(fd);
}

/* Two requests on one kept-alive connection: both answered. */
static int keep_alive_answers(const ht_server *srv)
{
    int fd = ht_connect(srv);
    if (fd < 0)
        return 0;
    const char *req = "GET /api/old-items HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /api/session HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ssize_t w = write(fd, req, strlen(req));
    (void)w;
    char buf[8192];
    size_t got = 0;
    ssize_t n;
    while (got < sizeof buf - 1 && (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return strstr(buf, "HTTP/1.1 301") && strstr(buf, "HTTP/1.1 200") && strstr(buf, "legacy_session=");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--keel-app") == 0) {
        char *app_argv[] = {argv[0], NULL};
        return keel_main(1, app_argv, (const keel_service *const[]){&legacy_service, NULL});
    }
    const char *legacy_bin = getenv("KEEL_LEGACY");
    if (!legacy_bin) {
        printf("1..0 # SKIP KEEL_LEGACY not set\n");
        return 0;
    }
    char self[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return 1;
    self[sl] = '\0';
    const char *app = getenv("KEEL_FORKLIFT_APP");
    char *keel_argv[] = {app ? (char *)app : self, app ? NULL : "--keel-app", NULL};

    upload = malloc(upload_len);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < upload_len; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        upload[i] = (char)(x >> 24);
    }

    if (!ok(ht_start(&legacy, legacy_bin, NULL), "the stand-alone legacy backend starts") ||
        !ok(ht_start_cmd(&keel, keel_argv, (const char *const[]){"KEEL_LOG_REQUESTS=1", NULL}, NULL),
            "the Keel app with the legacy mount starts"))
        return tap_done();

    static const step steps[] = {
        {"GET", "/api/items", NULL, NULL, 0},
        {"GET", "/api/items/1", NULL, NULL, 1},
        {"POST", "/api/items", "{\"name\":\"bolt\",\"qty\":5}", "application/json", 0},
        {"POST", "/api/items/form", "name=caf%C3%A9+%22x%22&qty=2", "application/x-www-form-urlencoded", 0},
        {"GET", "/api/items/2", NULL, NULL, 1},
        {"GET", "/api/items/3", NULL, NULL, 1},
        {"POST", "/api/upload", "@upload", "application/octet-stream", 0},
        {"GET", "/api/old-items", NULL, NULL, 0},
        {"GET", "/api/session", NULL, NULL, 0},
        {"GET", "/api/session", NULL, NULL, 0},
        {"GET", "/api/nope%3Cscript%3E", NULL, NULL, 0},
        {"GET", "/api/items/1/extra", NULL, NULL, 0},
        {"HEAD", "/api/items", NULL, NULL, 0},
        {"HEAD", "/api/items/2", NULL, NULL, 1},
        {"GET", "/api/items/1?verbose=1", NULL, NULL, 1},
        {"DELETE", "/api/items/1", NULL, NULL, 0},
        {"POST", "/api/items", "{\"name\":", "application/json", 0},
        {"POST", "/api/items", "{\"name\":\"\\u0001\"}", "application/json", 0},
        {"POST", "/api/items/form", "{\"name\":\"x\"}", "application/json", 0},
        {"PUT", "/api/upload", "", "application/octet-stream", 0},
        {"GET", "/api/items?page=2", NULL, NULL, 0},
    };
    size_t nsteps = sizeof steps / sizeof *steps;
    for (size_t i = 0; i < nsteps; i++)
        compare(&steps[i]);

    /* The break-out: what the typed endpoint does differently, on purpose. */
    ht_response a = ht_request(&legacy, "GET", "/api/items/999", NULL, 0, NULL);
    ht_response b = ht_request(&keel, "GET", "/api/items/999", NULL, 0, NULL);
    char ct[128] = "";
    is_int(a.status, 404, "legacy: missing item is 404");
    ok(ht_header(&a, "Content-Type", ct, sizeof ct) && strncmp(ct, "text/html", 9) == 0,
       "legacy: its own HTML 404 page");
    is_int(b.status, 404, "Keel: missing item is 404");
    ok(ht_header(&b, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/json") == 0,
       "Keel: JSON 404");
    like(b.body, "{\"code\":\"not_found\",\"message\":\"item 999 not found\"", "Keel: not_found error shape");
    ht_free(&a);
    ht_free(&b);
    b = ht_request(&keel, "GET", "/api/items/abc", NULL, 0, NULL);
    is_int(b.status, 404, "Keel: a non-numeric id is not_found too");
    ht_free(&b);
    b = ht_request(&keel, "DELETE", "/api/items/2", NULL, 0, NULL);
    is_int(b.status, 405, "Keel: other methods on /api/items/:id still reach the legacy router");
    ht_free(&b);

    /* Keel's request log: the typed route and the mounted one, right status. */
    int mounted = 0, typed = 0;
    for (size_t i = 0; i < nsteps; i++)
        steps[i].typed ? typed++ : mounted++;
    is_int(wait_log_lines("/api/items/:id", 200, typed), typed, "Keel log: %d typed GET lines, status 200", typed);
    is_int(wait_log_lines("/api/items/:id", 404, 2), 2, "Keel log: the typed 404s");
    is_int(wait_log_lines("/api/*path", 0, mounted + 1), mounted + 1, "Keel log: a line per legacy request (%d)",
           mounted + 1);
    is_int(wait_log_lines("/api/*path", 201, 2), 2, "Keel log: legacy 201s");
    is_int(wait_log_lines("/api/*path", 301, 1), 1, "Keel log: legacy 301");
    is_int(wait_log_lines("/api/*path", 404, 2), 2, "Keel log: legacy 404s");
    is_int(wait_log_lines("/api/*path", 405, 2), 2, "Keel log: legacy 405s");
    is_int(wait_log_lines("/api/*path", 400, 2), 2, "Keel log: legacy 400s");
    is_int(wait_log_lines("/api/*path", 415, 1), 1, "Keel log: legacy 415");
    char *log = ht_log(&keel);
    like(log, "\"endpoint\":\"legacy.legacy_handler\"", "Keel log names the mounted handler");
    free(log);

    /* However the path is spelled, the break-out takes it: the legacy
     * handler sees libmicrohttpd's decoded URL, so an escape that missed the
     * typed route would hand it /api/items/999 around the typed endpoint. */
    const char *spellings[] = {"/api/%69tems/999", "/api/item%73/999", "/%61pi/items/999", "/api/items%2F999"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        b = ht_request(&keel, "GET", spellings[i], NULL, 0, NULL);
        like(b.body, "{\"code\":\"not_found\",\"message\":\"item 999 not found\"",
             "Keel: GET %s is served by the typed break-out", spellings[i]);
        ht_free(&b);
    }

    /* A client fills the mounted operation's {path} with "items/1/extra" as
     * "items%2F1%2Fextra": the legacy handler gets the path it would get
     * stand-alone. */
    compare(&(step){"GET", "/api/items%2F1%2Fextra", NULL, NULL, 0});
    compare(&(step){"POST", "/api/items%2Fform", "name=nut&qty=1", "application/x-www-form-urlencoded", 0});

    /* Keep-alive: the legacy handler answers on the call after the first. */
    ok(keep_alive_answers(&legacy), "legacy: two requests on one connection");
    ok(keep_alive_answers(&keel), "Keel: two requests on one connection");

    /* The completed callback ran for every request: no state left. */
    long live, aborted;
    stats(&legacy, 0, &live, &aborted);
    is_int(live, 1, "legacy: no request state left (only the stats request)");
    stats(&keel, 0, &live, &aborted);
    is_int(live, 1, "Keel: no request state left (completed called for every mounted request)");
    is_int(aborted, 0, "Keel: nothing aborted so far");

    /* A client that hangs up mid-upload: completed still runs (not OK). */
    abandon_upload(&legacy);
    abandon_upload(&keel);
    stats(&legacy, 1, &live, &aborted);
    is_int(live, 1, "legacy: abandoned upload's state freed");
    is_int(aborted, 1, "legacy: abandoned upload reported as aborted");
    stats(&keel, 1, &live, &aborted);
    is_int(live, 1, "Keel: abandoned upload's state freed");
    is_int(aborted, 1, "Keel: abandoned upload reported as aborted");
    is_int(wait_log_lines("/api/*path", 499, 1), 1, "Keel log: the abandoned upload is a 499");

    is_int(ht_stop(&legacy), 0, "legacy stops cleanly (no live request state)");
    is_int(ht_stop(&keel), 0, "Keel app stops cleanly%s", ht_valgrind() ? " (valgrind: no leaks)" : "");
    free(upload);
    return tap_done();
}

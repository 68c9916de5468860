/* tests/integration/test_observe.c - tracing end to end: the test app (the
 * example's services plus transactions) runs under `keel run` and exports
 * OTLP/HTTP to tests/js/otlp_receiver.mjs, which decodes every batch with
 * OpenTelemetry's own protobuf classes.  Checked: W3C trace context in and
 * out (traceparent, tracestate, sampling flag, X-Trace-Id, the log line),
 * the spans of an endpoint, its SQL (text with $n, never the values), a
 * transaction, keel_call, a lazy set-up, webhook verification, a mounted
 * legacy handler and the migrations at start-up; then that a collector
 * that is gone costs requests nothing, and that one that stalls costs
 * neither unbounded memory nor a slow stop. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static ht_server srv;
static char root[256];
static char spans_path[300];
static pid_t receiver = -1;
static unsigned receiver_port;
static json_t *spans; /* every span received so far, as the receiver wrote them */

/* Starts node otlp_receiver.mjs; false when it does not say where it listens. */
static bool receiver_start(const char *js_dir)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    receiver = fork();
    if (receiver == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        char script[600];
        snprintf(script, sizeof script, "%s/otlp_receiver.mjs", js_dir);
        execlp("node", "node", script, spans_path, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[128] = "";
    bool got = f && fgets(line, sizeof line, f) && sscanf(line, "listening %u", &receiver_port) == 1;
    if (f)
        fclose(f);
    return got;
}

static void receiver_stop(void)
{
    if (receiver > 0) {
        kill(receiver, SIGTERM);
        waitpid(receiver, NULL, 0);
        receiver = -1;
    }
}

/* Reads the receiver's file again into spans. */
static void spans_reload(void)
{
    json_decref(spans);
    spans = json_array();
    FILE *f = fopen(spans_path, "r");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *s = json_loads(line, 0, NULL);
        if (s)
            json_array_append_new(spans, s);
    }
    free(line);
    fclose(f);
}

static const char *str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static const json_t *attr(const json_t *span, const char *key)
{
    return json_object_get(json_object_get(span, "attributes"), key);
}

static const char *attr_str(const json_t *span, const char *key)
{
    return json_string_value(attr(span, key));
}

/* The first span of trace (NULL: any) named name (NULL: any) whose parent
 * is parent (NULL: any). */
static json_t *find_span(const char *trace, const char *name, const char *parent)
{
    size_t i;
    json_t *s;
    json_array_foreach(spans, i, s) {
        if ((!trace || (str(s, "trace_id") && strcmp(str(s, "trace_id"), trace) == 0)) &&
            (!name || (str(s, "name") && strcmp(str(s, "name"), name) == 0)) &&
            (!parent || (str(s, "parent_span_id") && strcmp(str(s, "parent_span_id"), parent) == 0)))
            return s;
    }
    return NULL;
}

static size_t count_trace(const char *trace)
{
    size_t i, n = 0;
    json_t *s;
    json_array_foreach(spans, i, s)
        if (str(s, "trace_id") && strcmp(str(s, "trace_id"), trace) == 0)
            n++;
    return n;
}

/* Waits until the trace has at least want spans (export runs every second). */
static size_t wait_trace(const char *trace, size_t want)
{
    int limit = ht_valgrind() ? 300 : 100;
    for (int i = 0; i < limit; i++) {
        spans_reload();
        if (count_trace(trace) >= want)
            break;
        usleep(100 * 1000);
    }
    return count_trace(trace);
}

static ht_response request(const char *method, const char *path, const char *body, const char *extra1,
                           const char *extra2)
{
    const char *h[4] = {"Content-Type: application/json", extra1, extra2, NULL};
    return ht_request(&srv, method, path, body, body ? strlen(body) : 0, h);
}

static bool is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

#define CALLER_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define CALLER_SPAN "00f067aa0ba902b7"

static void test_context(void)
{
    char id[64] = "";
    ht_response r = request("GET", "/todo/999999", NULL, NULL, NULL);
    is_int(r.status, 404, "an unknown todo is 404");
    ok(ht_header(&r, "X-Trace-Id", id, sizeof id) && is_hex(id, 32), "a request without traceparent gets a new trace id: %s", id);
    ht_free(&r);
    char needle[80];
    snprintf(needle, sizeof needle, "\"trace_id\":\"%s\"", id);
    char *log = NULL;
    for (int k = 0; k < 50; k++) { /* the log is written every 50 ms */
        free(log);
        log = ht_log(&srv);
        if (strstr(log, needle))
            break;
        usleep(100 * 1000);
    }
    like(log, needle, "the request's log line carries its trace id");
    free(log);
    ok(wait_trace(id, 2) >= 2, "its trace is exported: the endpoint and its statement");
    json_t *server = find_span(id, "GET /todo/:id", NULL);
    ok(server && json_integer_value(json_object_get(server, "kind")) == 2, "the endpoint's span is a server span named by route");
    ok(server && strcmp(str(server, "parent_span_id"), "") == 0, "with no parent");
    is_int(server ? json_integer_value(attr(server, "http.response.status_code")) : 0, 404, "it records the status");
    is_str(server ? attr_str(server, "keel.error_code") : NULL, "not_found", "and the error code");
    ok(server && json_integer_value(json_object_get(json_object_get(server, "status"), "code")) == 0,
       "a 404 is the client's error: the span's status stays unset");
    is_str(server ? attr_str(server, "keel.service") : NULL, "todo", "service attribute");
    is_str(server ? attr_str(server, "keel.endpoint") : NULL, "get", "endpoint attribute");
    is_str(server ? attr_str(server, "http.route") : NULL, "/todo/:id", "route attribute");
    is_str(server ? attr_str(server, "url.path") : NULL, "/todo/999999", "path attribute");
    json_t *sql = server ? find_span(id, "SELECT todo", str(server, "span_id")) : NULL;
    ok(sql && json_integer_value(json_object_get(sql, "kind")) == 3, "the statement is a client span under the endpoint's");
    is_str(sql ? attr_str(sql, "db.query.text") : NULL, "SELECT id, title, done FROM todo_item WHERE id = $1",
           "with the statement's text, parameters as $1");
    is_str(sql ? attr_str(sql, "db.namespace") : NULL, "todo", "and its database");
    ok(sql && !attr(sql, "db.query.parameter.0"), "parameter values are not recorded by default");
    is_int(sql ? json_integer_value(attr(sql, "db.response.returned_rows")) : -1, 0, "rows returned: 0");
    is_str(server ? str(json_object_get(server, "resource"), "service.name") : NULL, "keel-observe-test",
           "the resource is named by OTEL_SERVICE_NAME");

    /* A caller's context is continued. */
    const char *title = "{\"title\":\"private-title-7Qx\"}";
    r = request("POST", "/todo", title, "traceparent: 00-" CALLER_TRACE "-" CALLER_SPAN "-01",
                "tracestate: congo=t61rcWkgMzE");
    is_int(r.status, 200, "POST /todo with a caller's traceparent");
    ok(ht_header(&r, "X-Trace-Id", id, sizeof id) && strcmp(id, CALLER_TRACE) == 0, "X-Trace-Id is the caller's trace id");
    ht_free(&r);
    ok(wait_trace(CALLER_TRACE, 2) >= 2, "the caller's trace is exported");
    server = find_span(CALLER_TRACE, "POST /todo", NULL);
    is_str(server ? str(server, "parent_span_id") : NULL, CALLER_SPAN, "the endpoint's span is a child of the caller's span");
    is_str(server ? str(server, "trace_state") : NULL, "congo=t61rcWkgMzE", "tracestate is passed on");
    json_t *insert = server ? find_span(CALLER_TRACE, "INSERT todo", str(server, "span_id")) : NULL;
    ok(insert != NULL, "the INSERT is a span under it");
    char *dump = json_dumps(spans, 0);
    ok(dump && !strstr(dump, "private-title-7Qx"), "no span holds the parameter's value");
    free(dump);

    /* Not sampled by the caller: the id still flows, nothing is exported. */
    const char *quiet = "0af7651916cd43dd8448eb211c80319c";
    r = request("GET", "/todo/999999", NULL, "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", NULL);
    ok(ht_header(&r, "X-Trace-Id", id, sizeof id) && strcmp(id, quiet) == 0, "an unsampled caller's trace id is still returned");
    ht_free(&r);
    r = request("GET", "/todo/999999", NULL, "traceparent: 00-zz-not-a-traceparent", NULL);
    ok(ht_header(&r, "X-Trace-Id", id, sizeof id) && is_hex(id, 32) && strcmp(id, quiet) != 0,
       "a malformed traceparent is ignored: a new trace");
    ht_free(&r);
    wait_trace(id, 2);
    is_int((long)count_trace(quiet), 0, "the unsampled trace is not exported (parent-based sampling)");
}

static void test_spans(void)
{
    char id[64] = "";
    /* A transaction. */
    ht_response r = request("POST", "/dbtest/tx", "{\"title\":\"traced\",\"fail\":false}", NULL, NULL);
    is_int(r.status, 200, "a committed transaction");
    ht_header(&r, "X-Trace-Id", id, sizeof id);
    ht_free(&r);
    wait_trace(id, 5);
    json_t *tx = find_span(id, "transaction todo", NULL);
    is_str(tx ? attr_str(tx, "keel.db.transaction") : NULL, "committed", "its span says committed");
    ok(tx && find_span(id, "INSERT todo", str(tx, "span_id")) && find_span(id, "SELECT todo", str(tx, "span_id")),
       "and holds its statements");
    r = request("POST", "/dbtest/tx", "{\"title\":\"traced\",\"fail\":true}", NULL, NULL);
    is_int(r.status, 400, "a failing statement fails the transaction");
    ht_header(&r, "X-Trace-Id", id, sizeof id);
    ht_free(&r);
    wait_trace(id, 5);
    tx = find_span(id, "transaction todo", NULL);
    is_str(tx ? attr_str(tx, "keel.db.transaction") : NULL, "rolled back", "its span says rolled back");
    json_t *bad = tx ? find_span(id, "SELECT todo", str(tx, "span_id")) : NULL;
    size_t i;
    json_t *s;
    bad = NULL;
    json_array_foreach(spans, i, s)
        if (strcmp(str(s, "trace_id"), id) == 0 && attr_str(s, "db.query.text") &&
            strcmp(attr_str(s, "db.query.text"), "SELECT 1 / 0") == 0)
            bad = s;
    ok(bad && json_integer_value(json_object_get(json_object_get(bad, "status"), "code")) == 2,
       "the failed statement's span has status error");
    is_str(bad ? str(json_object_get(bad, "status"), "message") : NULL, "invalid_argument", "with the error code as message");

    /* keel_call between services. */
    r = request("GET", "/auth/via-call", NULL, "Authorization: Bearer admin-token-for-tests", NULL);
    is_int(r.status, 200, "GET /auth/via-call");
    ht_header(&r, "X-Trace-Id", id, sizeof id);
    ht_free(&r);
    wait_trace(id, 2);
    json_t *server = find_span(id, "GET /auth/via-call", NULL);
    json_t *call = server ? find_span(id, NULL, str(server, "span_id")) : NULL;
    ok(call && strncmp(str(call, "name"), "call auth.", 10) == 0, "keel_call is a span under the endpoint's: %s",
       call ? str(call, "name") : "none");

    /* A lazy set-up that fails: the external database is not configured. */
    r = request("GET", "/external/ping", NULL, NULL, NULL);
    is_int(r.status, 503, "the unconfigured external database answers 503");
    ht_header(&r, "X-Trace-Id", id, sizeof id);
    ht_free(&r);
    wait_trace(id, 2);
    server = find_span(id, "GET /external/ping", NULL);
    ok(server && json_integer_value(json_object_get(json_object_get(server, "status"), "code")) == 2,
       "a 503 is a server error: the endpoint's span has status error");
    json_t *lazy = find_span(id, "lazy init", NULL);
    ok(lazy && json_integer_value(json_object_get(json_object_get(lazy, "status"), "code")) == 2,
       "the failed lazy set-up is a span with status error");

    /* Webhook verification. */
    r = request("POST", "/webhooks/github", "{}", "X-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000",
                "X-GitHub-Event: ping");
    is_int(r.status, 401, "a webhook with a wrong signature is refused");
    ht_header(&r, "X-Trace-Id", id, sizeof id);
    ht_free(&r);
    wait_trace(id, 2);
    json_t *wh = find_span(id, "webhook verify", NULL);
    ok(wh && json_is_false(attr(wh, "keel.webhook.verified")), "webhook verification is a span, verified false");
    is_str(wh ? attr_str(wh, "keel.webhook.provider") : NULL, "github", "naming the provider");

    /* A mounted legacy handler: one opaque span. */
    r = request("GET", "/api/items", NULL, NULL, NULL);
    is_int(r.status, 200, "the mounted legacy router answers");
    ht_free(&r);
    json_t *legacy = NULL;
    for (int k = 0; k < (ht_valgrind() ? 300 : 100) && !legacy; k++) {
        spans_reload();
        legacy = find_span(NULL, "GET /api/*path", NULL);
        if (!legacy)
            usleep(100 * 1000);
    }
    ok(legacy && json_is_true(attr(legacy, "keel.opaque")), "a mounted legacy handler is one span marked opaque");
    is_int(legacy ? json_integer_value(attr(legacy, "http.response.status_code")) : 0, 200, "with the status it sent");

    /* Migrations at start-up. */
    json_t *mig = find_span(NULL, "migrate todo", NULL);
    ok(mig != NULL, "the migrations at start-up are a trace per database");
    json_t *file = mig ? find_span(str(mig, "trace_id"), "migration", str(mig, "span_id")) : NULL;
    ok(file && attr_str(file, "keel.migration.file") && strstr(attr_str(file, "keel.migration.file"), ".up.sql"),
       "with a span per migration file applied");

    /* Everything decoded with OpenTelemetry's classes; nothing rejected. */
    char *dump = json_dumps(spans, 0);
    ok(dump && !strstr(dump, "\"rejected\""), "the receiver rejected no batch");
    free(dump);
}

/* The collector goes away: requests go on at full speed and all succeed. */
static void test_collector_gone(void)
{
    receiver_stop();
    int good = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 200; i++) {
        ht_response r = request("GET", "/hello/world", NULL, NULL, NULL);
        good += r.status == 200;
        ht_free(&r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    is_int(good, 200, "with the collector gone, 200 requests all succeed");
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ok(secs < (ht_valgrind() ? 60 : 10), "and are not slowed by the export (%.2f s)", secs);
    char *log = NULL;
    for (int k = 0; k < 50; k++) {
        free(log);
        log = ht_log(&srv);
        if (strstr(log, "not exported"))
            break;
        usleep(200 * 1000);
    }
    like(log, "spans not exported to 127.0.0.1", "the failed export is logged, naming the collector");
    free(log);
}

/* The value of the first sample of the metrics page that starts with
 * prefix (name and labels), or -1. */
static double sample(const char *page, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = page; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
    return -1;
}

static char *metrics_page(void)
{
    ht_response r = request("GET", "/__keel/metrics", NULL, NULL, NULL);
    char *page = r.status == 200 ? strdup(r.body) : strdup("");
    ht_free(&r);
    return page;
}

static void test_metrics(void)
{
    for (int i = 0; i < 5; i++) {
        ht_response r = request("GET", "/todo/999999", NULL, NULL, NULL);
        ht_free(&r);
    }
    ht_response r = request("GET", "/__keel/metrics", NULL, NULL, NULL);
    is_int(r.status, 200, "GET /__keel/metrics");
    char ct[128] = "";
    ht_header(&r, "Content-Type", ct, sizeof ct);
    is_str(ct, "text/plain; version=0.0.4; charset=utf-8", "in Prometheus' text format");
    char *page = strdup(r.body ? r.body : "");
    ht_free(&r);
    char path[300];
    snprintf(path, sizeof path, "/tmp/keel-observe-metrics-%d.txt", (int)getpid());
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(page, f);
        fclose(f);
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    int status = -1;
    char *out = ht_shell(cmd, &status);
    ok(status == 0, "promtool check metrics finds no problem%s%s", status ? ": " : "", status ? out : "");
    free(out);
    unlink(path);
    ok(sample(page, "keel_http_requests_total{service=\"todo\",endpoint=\"get\",code=\"404\"}") >= 5,
       "requests are counted by endpoint and status");
    ok(sample(page, "keel_http_request_duration_seconds_count{service=\"todo\",endpoint=\"get\"}") >= 5 &&
       sample(page, "keel_http_request_duration_seconds_bucket{service=\"todo\",endpoint=\"get\",le=\"+Inf\"}") >= 5,
       "with a latency histogram per endpoint");
    ok(sample(page, "keel_http_requests_in_flight") >= 1, "requests in flight (this one at least)");
    ok(sample(page, "keel_db_statements_total{database=\"todo\",outcome=\"ok\"}") >= 5, "statements by database and outcome");
    ok(sample(page, "keel_db_statements_total{database=\"todo\",outcome=\"error\"}") >= 1, "the failed ones too");
    ok(sample(page, "keel_db_pool_connections{database=\"todo\",state=\"idle\"}") >= 1, "the pool's idle connections");
    ok(sample(page, "keel_db_pool_checkouts_total{database=\"todo\"}") >= 2, "connections taken for transactions");
    ok(sample(page, "keel_db_pool_waiting{database=\"todo\"}") == 0, "nobody waits for a connection");
    ok(sample(page, "keel_trace_spans_exported_total") >= 10, "spans exported: %g",
       sample(page, "keel_trace_spans_exported_total"));
    ok(sample(page, "keel_trace_spans_dropped_total") == 0, "none dropped");
    ok(sample(page, "process_resident_memory_bytes") > 1e6 && sample(page, "process_open_fds") > 3 &&
       sample(page, "process_start_time_seconds") > 1.7e9, "process figures");
    free(page);
    r = request("POST", "/__keel/metrics", "{}", NULL, NULL);
    is_int(r.status, 405, "POST /__keel/metrics is 405");
    ht_free(&r);
    r = request("GET", "/__keel/nothing", NULL, NULL, NULL);
    is_int(r.status, 404, "an unknown framework page is 404");
    ht_free(&r);
}

/* A real Prometheus scrapes the app once a second; its query API then has
 * Keel's series. */
static void test_prometheus(void)
{
    char dir[] = "/tmp/keel-prom-XXXXXX";
    if (!mkdtemp(dir)) {
        ok(0, "a folder for Prometheus");
        return;
    }
    char conf[300], log[400];
    snprintf(conf, sizeof conf, "%s/prometheus.yml", dir);
    snprintf(log, sizeof log, "%s/prometheus.log", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: keel\n    metrics_path: /__keel/metrics\n"
               "    static_configs:\n      - targets: ['127.0.0.1:%u']\n", srv.port);
    fclose(f);
    /* A port free now; another test running beside this one may take it
     * before Prometheus binds it: then Prometheus exits and starts again
     * on another. */
    unsigned port = 0;
    pid_t prom = 0;
    char *out = NULL;
    int limit = ht_valgrind() ? 120 : 60;
    for (int i = 0; i < limit; i++) {
        int status;
        if (!prom || waitpid(prom, &status, WNOHANG) == prom) {
            port = ht_free_port();
            prom = fork();
            if (prom == 0) {
                char a1[400], a2[400], a3[64];
                snprintf(a1, sizeof a1, "--config.file=%s", conf);
                snprintf(a2, sizeof a2, "--storage.tsdb.path=%s/data", dir);
                snprintf(a3, sizeof a3, "--web.listen-address=127.0.0.1:%u", port);
                freopen(log, "w", stdout);
                freopen(log, "a", stderr);
                execlp("prometheus", "prometheus", a1, a2, a3, (char *)NULL);
                _exit(127);
            }
        }
        char cmd[300];
        snprintf(cmd, sizeof cmd,
                 "curl -s 'http://127.0.0.1:%u/api/v1/query?query=keel_http_requests_total%%7Bservice%%3D%%22todo%%22%%7D'",
                 port);
        free(out);
        out = ht_shell(cmd, NULL);
        if (strstr(out, "\"endpoint\":\"get\""))
            break;
        sleep(1);
    }
    if (!strstr(out, "\"endpoint\":\"get\"")) {
        char cat[500];
        snprintf(cat, sizeof cat, "tail -n 20 '%s'", log);
        char *said = ht_shell(cat, NULL);
        diag("Prometheus said:\n%s", said);
        free(said);
    }
    char cmd[300];
    like(out, "\"endpoint\":\"get\"", "a real Prometheus scrapes /__keel/metrics and answers a query on Keel's series");
    free(out);
    snprintf(cmd, sizeof cmd, "curl -s 'http://127.0.0.1:%u/api/v1/query?query=up%%7Bjob%%3D%%22keel%%22%%7D'", port);
    out = ht_shell(cmd, NULL);
    like(out, "\"value\":[", "and sees the target up");
    ok(strstr(out, "\"1\"]") != NULL, "with up = 1");
    free(out);
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    free(ht_shell(cmd, NULL));
}

/* With a queue of 2 spans and a collector that never answers, traces are
 * dropped and counted; the requests do not notice. */
static void test_dropped(void)
{
    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "KEEL_APP_ROOT=%s %s infra set tracing '{\"otlp_endpoint\": \"http://127.0.0.1:9/v1/traces\", "
             "\"queue_spans\": 2, \"batch_ms\": 60000, \"service_name\": \"from-the-file\"}' 2>&1",
             root, getenv("KEEL_CLI"));
    int status = -1;
    char *out = ht_shell(cmd, &status);
    is_int(status, 0, "keel infra set tracing writes the tracing settings%s%s", status ? ": " : "", status ? out : "");
    free(out);
    if (!ht_start_keel_run(&srv, root, NULL)) {
        ok(0, "the app restarts with tracing from the infra config");
        return;
    }
    char *log = ht_log(&srv);
    like(log, "exporting OTLP to http://127.0.0.1:9/v1/traces", "the infra config's endpoint is used");
    free(log);
    int good = 0;
    for (int i = 0; i < 20; i++) {
        ht_response r = request("GET", "/todo/999999", NULL, NULL, NULL);
        good += r.status == 404;
        ht_free(&r);
    }
    is_int(good, 20, "every request is answered while spans are dropped");
    char *page = metrics_page();
    ok(sample(page, "keel_trace_spans_dropped_total") >= 30, "dropped spans are counted: %g",
       sample(page, "keel_trace_spans_dropped_total"));
    free(page);
}

/* A collector that stalls: it listens (the kernel takes the connections and
 * what is sent) and never answers.  -1 when it cannot be made. */
static int stalled_collector(unsigned *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* With a collector that stalls, traces of requests on 30 KB paths fill the
 * queue's bytes long before its spans (tracing.queue_bytes: 1 MiB here, the
 * default span bound 8192): the rest are dropped and counted.  Then SIGTERM
 * ends the app within the exporter's time to stop (tracing.shutdown_ms,
 * 2 s by default), though a send waits on the collector. */
static void test_stalled_collector(void)
{
    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    unsigned port = 0;
    int collector = stalled_collector(&port);
    ok(collector >= 0, "a collector that never answers listens on port %u", port);
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "KEEL_APP_ROOT=%s %s infra set tracing '{\"otlp_endpoint\": \"http://127.0.0.1:%u/v1/traces\", "
             "\"queue_bytes\": 1048576, \"batch_ms\": 100}' 2>&1", root, getenv("KEEL_CLI"), port);
    int status = -1;
    char *out = ht_shell(cmd, &status);
    is_int(status, 0, "keel infra set tracing with queue_bytes%s%s", status ? ": " : "", status ? out : "");
    free(out);
    if (collector < 0 || !ht_start_keel_run(&srv, root, NULL)) {
        ok(0, "the app restarts with tracing to the stalled collector");
        if (collector >= 0)
            close(collector);
        return;
    }
    size_t n = 30000;
    char *path = malloc(n + 1);
    memcpy(path, "/hello/", 7);
    memset(path + 7, 'a', n - 7);
    path[n] = '\0';
    int good = 0, requests = 100;
    for (int i = 0; i < requests; i++) {
        ht_response r = request("GET", path, NULL, NULL, NULL);
        good += r.status == 200;
        ht_free(&r);
    }
    free(path);
    is_int(good, requests, "%d requests on 30 KB paths are answered", requests);
    char *page = metrics_page();
    double dropped = sample(page, "keel_trace_spans_dropped_total");
    ok(dropped >= 60, "at most 1 MiB of traces waits for the collector: %g of %d spans dropped", dropped, requests);
    ok(sample(page, "keel_trace_spans_exported_total") == 0, "none exported");
    free(page);
    usleep(300 * 1000); /* a send is in flight, waiting for the collector */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    status = ht_stop(&srv);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    is_int(status, 0, "SIGTERM stops the app cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    ok(secs < (ht_valgrind() ? 20 : 3), "within %.2f s, though the collector never answers", secs);
    close(collector);
    if (!ht_start_keel_run(&srv, root, NULL))
        ok(0, "the app starts again");
}

/* ---- the dashboard ---------------------------------------------------------------- */

static unsigned dashboard_port;

static ht_response dash(const char *method, const char *path, const char *body, const char *host)
{
    ht_server d = srv;
    d.port = dashboard_port;
    char h[80];
    snprintf(h, sizeof h, "Host: %s", host ? host : "127.0.0.1");
    if (!host)
        snprintf(h, sizeof h, "Host: 127.0.0.1:%u", dashboard_port);
    const char *hs[] = {"Content-Type: application/json", h, NULL};
    return ht_request(&d, method, path, body, body ? strlen(body) : 0, hs);
}

/* The number of rows of a query box answer, and its "truncated" flag (-1
 * when the answer is not one). */
static int query_rows(const ht_response *r, int *truncated)
{
    json_t *j = json_loads(r->body ? r->body : "", 0, NULL);
    json_t *rows = json_object_get(j, "rows"), *t = json_object_get(j, "truncated");
    int n = json_is_array(rows) ? (int)json_array_size(rows) : -1;
    *truncated = json_is_boolean(t) ? json_is_true(t) : -1;
    json_decref(j);
    return n;
}

/* The query box stops at 500 rows and says so; a result of 2 million rows
 * of 200 bytes is never fetched whole. */
static void test_query_cap(void)
{
    int truncated;
    ht_response r = dash("POST", "/api/query",
                         "{\"database\":\"todo\",\"sql\":\"SELECT g FROM generate_series(1, 500) AS g\"}", NULL);
    is_int(query_rows(&r, &truncated), 500, "a result of 500 rows is answered whole");
    is_int(truncated, 0, "and is not marked truncated");
    ht_free(&r);
    r = dash("POST", "/api/query",
             "{\"database\":\"todo\",\"sql\":\"SELECT g FROM generate_series(1, 501) AS g\"}", NULL);
    is_int(query_rows(&r, &truncated), 500, "of 501 rows, 500 are answered");
    is_int(truncated, 1, "marked truncated");
    ht_free(&r);
    r = dash("POST", "/api/query", "{\"database\":\"todo\",\"sql\":\"SELECT 1 AS one WHERE false\"}", NULL);
    is_int(query_rows(&r, &truncated), 0, "no rows: an empty list");
    like(r.body, "\"columns\":[\"one\"]", "with the columns");
    ht_free(&r);
    long before = ht_peak_rss_kib(&srv);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    r = dash("POST", "/api/query",
             "{\"database\":\"todo\",\"sql\":\"SELECT g, repeat('x', 200) AS filler FROM generate_series(1, 2000000) AS g\"}",
             NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    long grown = ht_peak_rss_kib(&srv) - before;
    is_int(r.status, 200, "a query of 2 million rows of 200 bytes is answered");
    is_int(query_rows(&r, &truncated), 500, "with 500 rows");
    is_int(truncated, 1, "marked truncated");
    like(r.body, "\"rows\":[[\"1\",\"xxxx", "the first rows, in order");
    ok(secs < (ht_valgrind() ? 60 : 3), "quickly: %.2f s (the rest is cancelled, not read)", secs);
    ht_free(&r);
    if (ht_rss_unmeasured())
        skip(ht_rss_unmeasured());
    else
        ok(grown < 32 * 1024, "in bounded memory: peak RSS grew %ld KiB for a 400 MB result", grown);
    r = dash("POST", "/api/query", "{\"database\":\"todo\",\"sql\":\"SELECT count(*) AS n FROM todo_item\"}", NULL);
    is_int(r.status, 200, "the next query runs as usual");
    ht_free(&r);
}

static void test_dashboard_api(void)
{
    char *log = ht_log(&srv);
    const char *at = strstr(log, "dashboard: http://127.0.0.1:");
    ok(at && sscanf(at, "dashboard: http://127.0.0.1:%u/", &dashboard_port) == 1,
       "the app prints the dashboard's address (KEEL_DASHBOARD_PORT=0: a free port)");
    free(log);
    if (!dashboard_port)
        return;
    ht_response r = dash("GET", "/", NULL, NULL);
    is_int(r.status, 200, "the dashboard serves its page");
    like(r.body, "<title>", "an HTML page");
    ht_free(&r);
    r = dash("GET", "/api/model", NULL, NULL);
    like(r.body, "\"keel_version\"", "GET /api/model is the app model");
    ht_free(&r);
    r = dash("GET", "/api/traces", NULL, NULL);
    like(r.body, "\"name\":\"GET /todo/:id\"", "GET /api/traces lists recent traces");
    ht_free(&r);
    r = dash("GET", "/api/databases", NULL, NULL);
    like(r.body, "\"0001_create_todo_item.up.sql\",\"applied\":true", "GET /api/databases: migrations, applied");
    ht_free(&r);
    r = dash("POST", "/api/query", "{\"database\":\"todo\",\"sql\":\"SELECT count(*) AS n FROM todo_item\"}", NULL);
    is_int(r.status, 200, "a read-only query runs");
    like(r.body, "\"columns\":[\"n\"]", "and answers columns and rows");
    ht_free(&r);
    test_query_cap();
    r = dash("POST", "/api/query", "{\"database\":\"todo\",\"sql\":\"DELETE FROM todo_item\"}", NULL);
    is_int(r.status, 403, "a write is refused");
    like(r.body, "permission_denied", "as permission_denied");
    ht_free(&r);
    r = dash("POST", "/api/query", "{\"database\":\"todo\",\"sql\":\"COMMIT; DELETE FROM todo_item\"}", NULL);
    ok(r.status >= 400, "two statements cannot step out of the read-only transaction (%ld)", r.status);
    ht_free(&r);
    r = request("GET", "/todo", NULL, NULL, NULL);
    like(r.body, "\"items\"", "and every item is still there");
    ht_free(&r);
    r = dash("POST", "/api/call", "{\"method\":\"POST\",\"path\":\"/todo\",\"body\":\"{\\\"title\\\":\\\"via explorer\\\"}\"}", NULL);
    is_int(r.status, 200, "POST /api/call sends a request to the app");
    like(r.body, "via explorer", "and returns its answer");
    json_t *call = json_loads(r.body ? r.body : "", 0, NULL);
    const char *trace = call ? str(call, "trace_id") : NULL;
    ok(is_hex(trace, 32), "with its trace id");
    char path[80];
    snprintf(path, sizeof path, "/api/traces/%s", trace ? trace : "none");
    ht_free(&r);
    r = dash("GET", path, NULL, NULL);
    like(r.body, "\"db.query.text\":\"INSERT INTO todo_item", "its trace, with the SQL, is on the dashboard");
    ht_free(&r);
    json_decref(call);
    r = dash("GET", "/api/traces/00000000000000000000000000000000", NULL, NULL);
    is_int(r.status, 404, "an unknown trace is 404");
    ht_free(&r);
    r = dash("GET", "/api/model", NULL, "attacker.example:80");
    is_int(r.status, 403, "a request for another Host name is refused (DNS rebinding)");
    ht_free(&r);
    ht_server d = srv;
    d.port = dashboard_port;
    const char *plain = "{\"database\":\"todo\",\"sql\":\"SELECT 1\"}";
    r = ht_request(&d, "POST", "/api/query", plain, strlen(plain),
                   (const char *[]){"Content-Type: text/plain", NULL});
    is_int(r.status, 400, "a POST that is not application/json is refused (no cross-site form posts)");
    ht_free(&r);
}

/* The dashboard in headless Chromium (tests/js/dashboard_check.mjs drives it
 * with playwright-core): its checks are relayed here one by one. */
static void test_dashboard_browser(const char *js_dir)
{
    if (!dashboard_port)
        return;
    if (ht_valgrind()) {
        skip("the browser check runs in the plain and ASan passes (the dashboard's JSON is checked above)");
        return;
    }
    char cmd[800];
    snprintf(cmd, sizeof cmd, "cd %s && node dashboard_check.mjs http://127.0.0.1:%u 2>&1", js_dir, dashboard_port);
    int checks, failed;
    int status = tap_relay(cmd, "dashboard in Chromium", &checks, &failed);
    checks += failed;
    ok(checks >= 8 && status == 0, "the browser check ran %d checks and exited cleanly (status %d)", checks, status);
}

/* With tracing.sql_parameters on, values are recorded, except what the auth
 * handler binds (the caller's token) and values bound from secrets. */
static void test_parameters_recorded(void)
{
    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "KEEL_APP_ROOT=%s %s infra set tracing '{\"sql_parameters\": true}' 2>&1", root, getenv("KEEL_CLI"));
    int status = -1;
    char *out = ht_shell(cmd, &status);
    is_int(status, 0, "keel infra set tracing '{\"sql_parameters\": true}'%s%s", status ? ": " : "", status ? out : "");
    free(out);
    const char *env[] = {"KEEL_DASHBOARD_PORT=0", NULL};
    if (!ht_start_keel_run(&srv, root, env)) {
        ok(0, "the app restarts with parameters recorded");
        return;
    }
    char *log = ht_log(&srv);
    const char *at = strstr(log, "dashboard: http://127.0.0.1:");
    dashboard_port = 0;
    if (at)
        sscanf(at, "dashboard: http://127.0.0.1:%u/", &dashboard_port);
    free(log);
    const char *paths[] = {"/todo", "/hello/x", "/dbtest/secret-param/1"};
    const char *methods[] = {"POST", "GET", "GET"};
    const char *bodies[] = {"{\"title\":\"visible-param-Zq\"}", NULL, NULL};
    char *traces[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        char id[64] = "";
        ht_response r = request(methods[i], paths[i], bodies[i], "Authorization: Bearer user-token-Rk9w", NULL);
        ht_header(&r, "X-Trace-Id", id, sizeof id);
        ht_free(&r);
        char path[96];
        snprintf(path, sizeof path, "/api/traces/%s", id);
        for (int tries = 0; tries < 50; tries++) { /* the trace is handed over after the answer */
            r = dash("GET", path, NULL, NULL);
            if (r.status == 200)
                break;
            ht_free(&r);
            usleep(100000);
        }
        traces[i] = r.body;
        r.body = NULL;
        ht_free(&r);
    }
    like(traces[0], "visible-param-Zq", "a statement's parameters are recorded when asked for");
    ok(traces[0] && traces[1] && traces[2] && !strstr(traces[0], "user-token-Rk9w") &&
       !strstr(traces[1], "user-token-Rk9w") && !strstr(traces[2], "user-token-Rk9w"),
       "the bearer token the auth handler looked up is in no trace");
    like(traces[1], "api_token", "(the auth handler's statement is traced, without its parameters)");
    ok(traces[2] && !strstr(traces[2], "admin-token-for-tests") && strstr(traces[2], "(secret)"),
       "a parameter bound from a secret is recorded as (secret), never its value");
    for (int i = 0; i < 3; i++)
        free(traces[i]);
}

int main(void)
{
    const char *srcdir = getenv("KEEL_SRCDIR");
    if (!getenv("KEEL_CLI") || !getenv("KEEL_DBTESTAPP") || !srcdir) {
        printf("Bail out! KEEL_CLI, KEEL_DBTESTAPP and KEEL_SRCDIR must be set (run through make check)\n");
        return 1;
    }
    char js[400], probe[500];
    snprintf(js, sizeof js, "%s/tests/js", srcdir);
    snprintf(probe, sizeof probe, "%s/node_modules/@opentelemetry/otlp-transformer/build/src/generated/root.js", js);
    struct stat st;
    if (stat(probe, &st) != 0) {
        printf("1..0 # SKIP the test's npm packages are not installed (./dev test installs them in tests/js)\n");
        return 0;
    }
    snprintf(spans_path, sizeof spans_path, "/tmp/keel-observe-spans-%d.jsonl", (int)getpid());
    unlink(spans_path);
    if (!receiver_start(js)) {
        printf("Bail out! the OTLP receiver did not start (node %s/otlp_receiver.mjs)\n", js);
        return 1;
    }
    setenv("KEEL_EXAMPLE", getenv("KEEL_DBTESTAPP"), 1); /* what ht_start_keel_run starts */
    char migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:%u", receiver_port);
    const char *env[] = {endpoint, "OTEL_SERVICE_NAME=keel-observe-test", "KEEL_DASHBOARD_PORT=0", NULL};
    if (!ht_start_keel_run(&srv, root, env)) {
        receiver_stop();
        printf("Bail out! keel run did not start the app\n");
        return 1;
    }
    test_context();
    test_spans();
    test_metrics();
    test_dashboard_api();
    test_dashboard_browser(js);
    test_prometheus();
    test_collector_gone();
    char *page = metrics_page();
    ok(sample(page, "keel_trace_spans_failed_total") >= 1, "spans lost to the failed export are counted: %g",
       sample(page, "keel_trace_spans_failed_total"));
    free(page);
    test_dropped();
    test_stalled_collector();
    test_parameters_recorded();
    is_int(ht_stop(&srv), 0, "the app stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    ht_remove_app_root(root);
    receiver_stop();
    json_decref(spans);
    unlink(spans_path);
    return tap_done();
}

/* tests/unit/test_trace.c - framework/lib/observe/ without a server: W3C
 * traceparent parsing (what is accepted, what is ignored), the "tracing"
 * object of the infra config (each refusal names the file and the key, an
 * endpoint the exporter could not use among them) and the OTEL_* variables
 * that override it.  The URL parser itself: test_http_client.c. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "observe/trace.h"
#include "tap.h"

static bool parses(const char *v)
{
    uint8_t id[16], parent[8], flags;
    return keel__traceparent_parse(v, id, parent, &flags);
}

static void test_traceparent(void)
{
    uint8_t id[16], parent[8], flags = 0;
    ok(keel__traceparent_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id, parent, &flags),
       "the specification's example parses");
    char hex[33];
    keel__hex(id, 16, hex);
    is_str(hex, "4bf92f3577b34da6a3ce929d0e0e4736", "trace id");
    keel__hex(parent, 8, hex);
    is_str(hex, "00f067aa0ba902b7", "parent span id");
    is_int(flags, 1, "flags: sampled");
    ok(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), "not sampled parses too");
    ok(!parses("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"), "upper-case hex is refused");
    ok(!parses("00-00000000000000000000000000000000-00f067aa0ba902b7-01"), "an all-zero trace id is refused");
    ok(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"), "an all-zero parent id is refused");
    ok(!parses("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), "version ff is refused");
    ok(!parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"), "version 00 with more fields is refused");
    ok(parses("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"), "a later version may add fields");
    ok(!parses("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra"), "but only after a dash");
    ok(!parses("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"), "a short trace id is refused");
    ok(!parses("00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01"), "wrong separators are refused");
    ok(!parses(""), "an empty header is refused");
}

/* The refusal of a "tracing" object ("" when accepted); caller frees. */
static char *refusal(const char *text)
{
    json_t *obj = json_loads(text, JSON_DECODE_ANY, NULL);
    keel_error *err = keel__trace_config_from_json(obj, "infra.json", NULL);
    json_decref(obj);
    char *msg = strdup(err ? err->message : "");
    keel_error_free(err);
    return msg;
}

static void test_config(void)
{
    keel_trace_config cfg;
    json_t *obj = json_loads("{\"otlp_endpoint\":\"http://collector:4318/v1/traces\",\"service_name\":\"shop\","
                             "\"sample_ratio\":0.25,\"sql_parameters\":true,\"queue_spans\":100,\"batch_ms\":200}",
                             0, NULL);
    keel_error *err = keel__trace_config_from_json(obj, "infra.json", &cfg);
    json_decref(obj);
    ok(!err, "a full tracing object is accepted");
    is_str(cfg.endpoint, "http://collector:4318/v1/traces", "endpoint");
    is_str(cfg.service_name, "shop", "service name");
    ok(cfg.sample_ratio == 0.25 && cfg.sql_parameters && cfg.queue_spans == 100 && cfg.batch_ms == 200,
       "ratio, parameters, queue and period");
    keel__trace_config_clear(&cfg);
    ok(!keel__trace_config_from_json(NULL, "infra.json", &cfg) && !cfg.endpoint && cfg.sample_ratio == 1.0 &&
       !cfg.sql_parameters && cfg.queue_spans == 8192 && cfg.batch_ms == 1000,
       "absent: no export, every trace sampled, no parameters, 8192 spans queued, sent every second");
    keel__trace_config_clear(&cfg);

    struct { const char *text, *want; } bad[] = {
        {"[]", "infra config infra.json: tracing: expected an object"},
        {"{\"endpoint\":\"x\"}", "tracing: unknown key"},
        {"{\"otlp_endpoint\":4318}", "tracing.otlp_endpoint: expected a string"},
        {"{\"otlp_endpoint\":\"https://collector/v1/traces\"}", "must be an http:// URL"},
        {"{\"otlp_endpoint\":\"http://collector\\r\\nX-Injected: 1/v1/traces\"}",
         "infra config infra.json: tracing.otlp_endpoint: the URL holds a control character at byte 16"},
        {"{\"otlp_endpoint\":\"http://collector:4318/v1/traces\\r\\n\"}",
         "tracing.otlp_endpoint: the URL holds a control character"},
        {"{\"otlp_endpoint\":\"http://[U\"}", "tracing.otlp_endpoint: the URL's host has unbalanced brackets"},
        {"{\"otlp_endpoint\":\"http://:4318/v1/traces\"}", "tracing.otlp_endpoint: the URL has no host"},
        {"{\"otlp_endpoint\":\"http://collector:99999/\"}", "tracing.otlp_endpoint: the URL's port must be"},
        {"{\"sample_ratio\":1.5}", "tracing.sample_ratio: expected a number from 0 to 1"},
        {"{\"sample_ratio\":\"all\"}", "tracing.sample_ratio"},
        {"{\"sql_parameters\":1}", "tracing.sql_parameters: expected true or false"},
        {"{\"queue_spans\":0}", "tracing.queue_spans"},
        {"{\"batch_ms\":1}", "tracing.batch_ms"},
        {"{\"service_name\":\"\"}", "tracing.service_name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char *msg = refusal(bad[i].text);
        like(msg, bad[i].want, "%s is refused", bad[i].text);
        free(msg);
    }
}

static void test_env(void)
{
    keel_trace_config cfg = {NULL, NULL, 1.0, false, 8192, 1000};
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/", 1);
    setenv("OTEL_SERVICE_NAME", "from-env", 1);
    setenv("OTEL_TRACES_SAMPLER_ARG", "0.5", 1);
    ok(!keel__trace_config_env(&cfg), "the OTEL_* variables are read");
    is_str(cfg.endpoint, "http://127.0.0.1:4318/v1/traces", "the base endpoint gets /v1/traces (one slash)");
    is_str(cfg.service_name, "from-env", "OTEL_SERVICE_NAME");
    ok(cfg.sample_ratio == 0.5, "OTEL_TRACES_SAMPLER_ARG");
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:9999/custom", 1);
    ok(!keel__trace_config_env(&cfg), "the traces endpoint is read");
    is_str(cfg.endpoint, "http://127.0.0.1:9999/custom", "and used as it is, over the base endpoint");
    setenv("OTEL_TRACES_SAMPLER_ARG", "lots", 1);
    keel_error *err = keel__trace_config_env(&cfg);
    ok(err && strstr(err->message, "OTEL_TRACES_SAMPLER_ARG"), "a bad sampler argument is refused, named");
    keel_error_free(err);
    setenv("OTEL_TRACES_SAMPLER_ARG", "1", 1);
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://example.com/v1/traces", 1);
    err = keel__trace_config_env(&cfg);
    ok(err && strstr(err->message, "http://"), "an https endpoint is refused: send to a local collector");
    keel_error_free(err);
    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces\r\nX-Injected: 1", 1);
    err = keel__trace_config_env(&cfg);
    ok(err && strstr(err->message, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: the URL holds a control character"),
       "a line break in the traces endpoint is refused, named (%s)", err ? err->message : "accepted");
    keel_error_free(err);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1", 1);
    err = keel__trace_config_env(&cfg);
    ok(err && strstr(err->message, "OTEL_EXPORTER_OTLP_ENDPOINT: the URL's host has unbalanced brackets"),
       "and unbalanced brackets in the base endpoint (%s)", err ? err->message : "accepted");
    keel_error_free(err);
    keel__trace_config_clear(&cfg);
    unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    unsetenv("OTEL_SERVICE_NAME");
    unsetenv("OTEL_TRACES_SAMPLER_ARG");
}

int main(void)
{
    test_traceparent();
    test_config();
    test_env();
    return tap_done();
}

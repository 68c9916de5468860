/* tests/unit/test_trace.c - framework/lib/observe/ without a server: W3C
 * traceparent parsing (what is accepted, what is ignored), the "tracing"
 * object of the infra config (each refusal names the file and the key, an
 * endpoint the exporter could not use among them), the OTEL_* variables
 * that override it, and the samplers' decisions (OpenTelemetry's
 * ParentBased, TraceIdRatioBased, AlwaysOn, AlwaysOff).  The URL parser
 * itself: test_http_client.c. */
#include <jansson.h>
#include <stdlib.h>
#include <stdio.h>
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
                             "\"sampler\":\"traceidratio\",\"sample_ratio\":0.25,\"sql_parameters\":true,"
                             "\"queue_spans\":100,\"queue_bytes\":1048576,\"batch_ms\":200,\"shutdown_ms\":500}",
                             0, NULL);
    keel_error *err = keel__trace_config_from_json(obj, "infra.json", &cfg);
    json_decref(obj);
    ok(!err, "a full tracing object is accepted");
    is_str(cfg.endpoint, "http://collector:4318/v1/traces", "endpoint");
    is_str(cfg.service_name, "shop", "service name");
    ok(cfg.sample_ratio == 0.25 && cfg.sql_parameters && cfg.queue_spans == 100 && cfg.batch_ms == 200,
       "ratio, parameters, queue and period");
    ok(cfg.sampler == KEEL_SAMPLER_RATIO && cfg.queue_bytes == 1048576 && cfg.shutdown_ms == 500,
       "sampler, queue bytes and the time to stop");
    keel__trace_config_clear(&cfg);
    ok(!keel__trace_config_from_json(NULL, "infra.json", &cfg) && !cfg.endpoint && cfg.sample_ratio == 1.0 &&
       !cfg.sql_parameters && cfg.queue_spans == 8192 && cfg.batch_ms == 1000,
       "absent: no export, every trace sampled, no parameters, 8192 spans queued, sent every second");
    ok(cfg.sampler == KEEL_SAMPLER_PARENTBASED_RATIO && cfg.queue_bytes == 16u << 20 && cfg.shutdown_ms == 2000,
       "by default parent-based ratio sampling, 16 MiB queued at most, 2 s to send the rest when stopping");
    is_str(keel__sampler_name(cfg.sampler), "parentbased_traceidratio", "named as OTEL_TRACES_SAMPLER names it");
    keel__trace_config_clear(&cfg);
    const char *names[] = {"parentbased_traceidratio", "traceidratio", "always_on", "always_off",
                           "parentbased_always_on", "parentbased_always_off"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char text[100];
        snprintf(text, sizeof text, "{\"sampler\":\"%s\"}", names[i]);
        obj = json_loads(text, 0, NULL);
        err = keel__trace_config_from_json(obj, "infra.json", &cfg);
        json_decref(obj);
        ok(!err && cfg.sampler == (keel_sampler)i && strcmp(keel__sampler_name(cfg.sampler), names[i]) == 0,
           "sampler \"%s\" is read", names[i]);
        keel_error_free(err);
        keel__trace_config_clear(&cfg);
    }

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
        {"{\"sampler\":\"sometimes\"}", "tracing.sampler: expected \"parentbased_traceidratio\" (the default)"},
        {"{\"sampler\":\"jaeger_remote\"}", "tracing.sampler"},
        {"{\"sampler\":1}", "tracing.sampler"},
        {"{\"queue_bytes\":1000}", "tracing.queue_bytes: expected an integer from 65536"},
        {"{\"queue_bytes\":\"16M\"}", "tracing.queue_bytes"},
        {"{\"shutdown_ms\":-1}", "tracing.shutdown_ms: expected an integer from 0 to 60000"},
        {"{\"shutdown_ms\":60001}", "tracing.shutdown_ms"},
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
    keel_trace_config cfg = KEEL_TRACE_CONFIG_DEFAULTS;
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
    setenv("OTEL_TRACES_SAMPLER", "traceidratio", 1);
    ok(!keel__trace_config_env(&cfg) && cfg.sampler == KEEL_SAMPLER_RATIO, "OTEL_TRACES_SAMPLER");
    setenv("OTEL_TRACES_SAMPLER", "always_off", 1);
    ok(!keel__trace_config_env(&cfg) && cfg.sampler == KEEL_SAMPLER_ALWAYS_OFF, "OTEL_TRACES_SAMPLER=always_off");
    setenv("OTEL_TRACES_SAMPLER", "xray", 1);
    err = keel__trace_config_env(&cfg);
    ok(err && strstr(err->message, "OTEL_TRACES_SAMPLER must be") && strstr(err->message, "\"xray\""),
       "a sampler Keel does not have is refused, named (%s)", err ? err->message : "accepted");
    keel_error_free(err);
    unsetenv("OTEL_TRACES_SAMPLER");
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

/* A trace id whose low 64 bits (what the ratio samplers read) are low. */
static void id_with_low(uint8_t id[16], uint64_t low)
{
    memset(id, 0xab, 8);
    for (int i = 15; i >= 8; i--, low >>= 8)
        id[i] = (uint8_t)low;
}

static void test_sampler(void)
{
    uint8_t lo[16], hi[16];
    id_with_low(lo, 1);                      /* kept by any ratio above 0 */
    id_with_low(hi, UINT64_MAX - 1);         /* kept only by ratio 1 */
    const keel_sampler pr = KEEL_SAMPLER_PARENTBASED_RATIO, r = KEEL_SAMPLER_RATIO;

    /* parentbased_traceidratio: the caller decides for its trace. */
    ok(keel__trace_sampled(pr, 0.0, hi, true, true), "parent-based: a sampled caller is followed, whatever the ratio");
    ok(!keel__trace_sampled(pr, 1.0, lo, true, false), "parent-based: an unsampled caller is followed, whatever the ratio");
    ok(keel__trace_sampled(pr, 0.5, lo, false, false) && !keel__trace_sampled(pr, 0.5, hi, false, false),
       "parent-based: a trace started here goes by the ratio");
    ok(keel__trace_sampled(pr, 1.0, hi, false, false) && !keel__trace_sampled(pr, 0.0, lo, false, false),
       "ratio 1 keeps every trace, 0 none");

    /* traceidratio: the caller's flag is ignored; its id decides. */
    ok(!keel__trace_sampled(r, 0.5, hi, true, true), "traceidratio: a sampled caller does not override the ratio");
    ok(keel__trace_sampled(r, 0.5, lo, true, false), "traceidratio: nor does an unsampled one");
    ok(keel__trace_sampled(r, 0.5, lo, false, false) && !keel__trace_sampled(r, 0.5, hi, false, false),
       "traceidratio: a trace started here goes by the ratio");
    int kept = 0;
    for (int i = 0; i < 20000; i++) {
        uint8_t id[16];
        keel__random_bytes(id, sizeof id);
        kept += keel__trace_sampled(r, 0.25, id, true, true);
    }
    ok(kept > 4500 && kept < 5500, "ratio 0.25 keeps about a quarter of random ids: %d of 20000", kept);

    /* always_on / always_off: nothing else counts. */
    ok(keel__trace_sampled(KEEL_SAMPLER_ALWAYS_ON, 0.0, hi, true, false), "always_on: even under an unsampled caller");
    ok(!keel__trace_sampled(KEEL_SAMPLER_ALWAYS_OFF, 1.0, lo, true, true), "always_off: even under a sampled caller");

    /* parentbased_always_on / parentbased_always_off: the caller, else the root sampler. */
    ok(keel__trace_sampled(KEEL_SAMPLER_PARENTBASED_ON, 0.0, hi, false, false) &&
       !keel__trace_sampled(KEEL_SAMPLER_PARENTBASED_ON, 1.0, lo, true, false),
       "parentbased_always_on: every trace started here, callers followed");
    ok(!keel__trace_sampled(KEEL_SAMPLER_PARENTBASED_OFF, 1.0, lo, false, false) &&
       keel__trace_sampled(KEEL_SAMPLER_PARENTBASED_OFF, 0.0, hi, true, true),
       "parentbased_always_off: no trace started here, callers followed");
}

int main(void)
{
    test_traceparent();
    test_config();
    test_env();
    test_sampler();
    return tap_done();
}

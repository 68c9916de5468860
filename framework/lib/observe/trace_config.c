/* trace_config.c - tracing settings: the infra config's "tracing" object
 * (checked whole when the file is read, naming the key, the endpoint parsed
 * as the exporter parses it) and the OTEL_* variables of the environment,
 * which win; the samplers' names. */
#include "format.h"
#include "observe/http_client.h"
#include "observe/trace.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ----------------------------------------------------------------- */

/* OTEL_TRACES_SAMPLER's names, in keel_sampler's order. */
static const char *const sampler_names[] = {"parentbased_traceidratio", "traceidratio", "always_on", "always_off",
                                            "parentbased_always_on", "parentbased_always_off", NULL};
#define SAMPLER_CHOICES "\"parentbased_traceidratio\" (the default), \"traceidratio\", \"always_on\", " \
    "\"always_off\", \"parentbased_always_on\" or \"parentbased_always_off\""

const char *keel__sampler_name(keel_sampler s)
{
    return (unsigned)s < sizeof sampler_names / sizeof *sampler_names - 1 ? sampler_names[s] : "?";
}

/* The sampler named name; false when there is none. */
static bool sampler_parse(const char *name, keel_sampler *out)
{
    for (size_t i = 0; sampler_names[i]; i++)
        if (strcmp(sampler_names[i], name) == 0) {
            *out = (keel_sampler)i;
            return true;
        }
    return false;
}

static keel_error *config_problem(const char *path, const char *key, const char *what)
{
    return keel_error_new(KEEL_FAILED_PRECONDITION, "infra config %s: tracing%s%s: %s", path, key ? "." : "",
                          key ? key : "", what);
}

/* The endpoint is parsed here, as the exporter will: a URL it would refuse
 * (a line break that would reach the request line, no host, a bad port,
 * unbalanced brackets) is refused when the configuration is read, named by
 * where. */
static keel_error *endpoint_check(const char *url, const char *where)
{
    if (strncmp(url, "http://", 7) != 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "%s: the OTLP endpoint must be an http:// URL (send to a local collector, which "
                              "can forward over TLS)", where);
    keel_http_target t;
    keel_error *err = keel__http_target_parse(url, &t);
    keel__http_target_clear(&t);
    if (!err)
        return NULL;
    keel_error *named = keel_error_new(err->code == KEEL_RESOURCE_EXHAUSTED ? err->code : KEEL_FAILED_PRECONDITION,
                                       "%s: %s", where, err->message);
    keel_error_free(err);
    return named;
}

keel_error *keel__trace_config_from_json(const json_t *obj, const char *path, keel_trace_config *out)
{
    keel_trace_config cfg = KEEL_TRACE_CONFIG_DEFAULTS;
    if (obj) {
        if (!json_is_object(obj))
            return config_problem(path, NULL, "expected an object");
        static const char *const keys[] = {"otlp_endpoint", "service_name", "sampler", "sample_ratio",
                                           "sql_parameters", "queue_spans", "queue_bytes", "batch_ms",
                                           "shutdown_ms", NULL};
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)obj, key, v) {
            size_t i = 0;
            while (keys[i] && strcmp(keys[i], key) != 0)
                i++;
            if (!keys[i])
                return config_problem(path, NULL, "unknown key (expected \"otlp_endpoint\", \"service_name\", "
                                      "\"sampler\", \"sample_ratio\", \"sql_parameters\", \"queue_spans\", "
                                      "\"queue_bytes\", \"batch_ms\", \"shutdown_ms\")");
        }
        json_t *ep = json_object_get(obj, "otlp_endpoint");
        json_t *sn = json_object_get(obj, "service_name");
        json_t *sampler = json_object_get(obj, "sampler");
        json_t *ratio = json_object_get(obj, "sample_ratio");
        json_t *params = json_object_get(obj, "sql_parameters");
        json_t *queue = json_object_get(obj, "queue_spans");
        json_t *bytes = json_object_get(obj, "queue_bytes");
        json_t *batch = json_object_get(obj, "batch_ms");
        json_t *shutdown = json_object_get(obj, "shutdown_ms");
        if (ep && !json_is_string(ep))
            return config_problem(path, "otlp_endpoint", "expected a string (http://host:port/v1/traces)");
        if (ep) {
            char where[300];
            snprintf(where, sizeof where, "infra config %s: tracing.otlp_endpoint", path);
            keel_error *err = endpoint_check(json_string_value(ep), where);
            if (err)
                return err;
        }
        if (sn && (!json_is_string(sn) || !*json_string_value(sn)))
            return config_problem(path, "service_name", "expected a non-empty string");
        if (sampler && (!json_is_string(sampler) || !sampler_parse(json_string_value(sampler), &cfg.sampler)))
            return config_problem(path, "sampler", "expected " SAMPLER_CHOICES);
        if (ratio && (!json_is_number(ratio) || json_number_value(ratio) < 0 || json_number_value(ratio) > 1))
            return config_problem(path, "sample_ratio", "expected a number from 0 to 1");
        if (params && !json_is_boolean(params))
            return config_problem(path, "sql_parameters", "expected true or false");
        if (queue && (!json_is_integer(queue) || json_integer_value(queue) < 1 ||
                      json_integer_value(queue) > 1000000))
            return config_problem(path, "queue_spans", "expected an integer from 1 to 1000000");
        if (bytes && (!json_is_integer(bytes) || json_integer_value(bytes) < 65536 ||
                      json_integer_value(bytes) > 4294967296LL))
            return config_problem(path, "queue_bytes", "expected an integer from 65536 to 4294967296 (bytes)");
        if (batch && (!json_is_integer(batch) || json_integer_value(batch) < 10 ||
                      json_integer_value(batch) > 60000))
            return config_problem(path, "batch_ms", "expected an integer from 10 to 60000");
        if (shutdown && (!json_is_integer(shutdown) || json_integer_value(shutdown) < 0 ||
                         json_integer_value(shutdown) > 60000))
            return config_problem(path, "shutdown_ms", "expected an integer from 0 to 60000");
        if (!out)
            return NULL;
        if (ratio)
            cfg.sample_ratio = json_number_value(ratio);
        if (params)
            cfg.sql_parameters = json_is_true(params);
        if (queue)
            cfg.queue_spans = (unsigned)json_integer_value(queue);
        if (bytes)
            cfg.queue_bytes = (size_t)json_integer_value(bytes);
        if (batch)
            cfg.batch_ms = (unsigned)json_integer_value(batch);
        if (shutdown)
            cfg.shutdown_ms = (unsigned)json_integer_value(shutdown);
        if ((ep && !(cfg.endpoint = strdup(json_string_value(ep)))) ||
            (sn && !(cfg.service_name = strdup(json_string_value(sn))))) {
            keel__trace_config_clear(&cfg);
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        }
    }
    if (out)
        *out = cfg;
    return NULL;
}

static keel_error *replace(char **field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    free(*field);
    *field = copy;
    return NULL;
}

keel_error *keel__trace_config_env(keel_trace_config *cfg)
{
    keel_error *err = NULL;
    const char *traces = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (traces && *traces) {
        if (!(err = endpoint_check(traces, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")))
            err = replace(&cfg->endpoint, traces);
    } else if (base && *base) {
        /* The base endpoint gets the signal's path (OTLP exporter spec). */
        size_t n = strlen(base);
        char *url = keel__format("%.*s/v1/traces", (int)(n && base[n - 1] == '/' ? n - 1 : n), base);
        if (!url)
            return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        if (!(err = endpoint_check(url, "OTEL_EXPORTER_OTLP_ENDPOINT")))
            err = replace(&cfg->endpoint, url);
        free(url);
    }
    if (err)
        return err;
    const char *name = getenv("OTEL_SERVICE_NAME");
    if (name && *name && (err = replace(&cfg->service_name, name)) != NULL)
        return err;
    const char *sampler = getenv("OTEL_TRACES_SAMPLER");
    if (sampler && *sampler && !sampler_parse(sampler, &cfg->sampler))
        return keel_error_new(KEEL_FAILED_PRECONDITION, "OTEL_TRACES_SAMPLER must be " SAMPLER_CHOICES ", not \"%.40s\"",
                              sampler);
    const char *arg = getenv("OTEL_TRACES_SAMPLER_ARG");
    if (arg && *arg) {
        char *end;
        double r = strtod(arg, &end);
        if (*end || r < 0 || r > 1)
            return keel_error_new(KEEL_FAILED_PRECONDITION, "OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1");
        cfg->sample_ratio = r;
    }
    return NULL;
}

void keel__trace_config_clear(keel_trace_config *cfg)
{
    free(cfg->endpoint);
    free(cfg->service_name);
    cfg->endpoint = cfg->service_name = NULL;
}

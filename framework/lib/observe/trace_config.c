/* trace_config.c - tracing settings: the infra config's "tracing" object
 * (checked whole when the file is read, naming the key, the endpoint parsed
 * as the exporter parses it) and the OTEL_* variables of the environment,
 * which win. */
#include "format.h"
#include "observe/http_client.h"
#include "observe/trace.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ----------------------------------------------------------------- */

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
    keel_trace_config cfg = {NULL, NULL, 1.0, false, 8192, 1000};
    if (obj) {
        if (!json_is_object(obj))
            return config_problem(path, NULL, "expected an object");
        static const char *const keys[] = {"otlp_endpoint", "service_name", "sample_ratio", "sql_parameters",
                                           "queue_spans", "batch_ms", NULL};
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)obj, key, v) {
            size_t i = 0;
            while (keys[i] && strcmp(keys[i], key) != 0)
                i++;
            if (!keys[i])
                return config_problem(path, NULL, "unknown key (expected \"otlp_endpoint\", \"service_name\", "
                                      "\"sample_ratio\", \"sql_parameters\", \"queue_spans\", \"batch_ms\")");
        }
        json_t *ep = json_object_get(obj, "otlp_endpoint");
        json_t *sn = json_object_get(obj, "service_name");
        json_t *ratio = json_object_get(obj, "sample_ratio");
        json_t *params = json_object_get(obj, "sql_parameters");
        json_t *queue = json_object_get(obj, "queue_spans");
        json_t *batch = json_object_get(obj, "batch_ms");
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
        if (ratio && (!json_is_number(ratio) || json_number_value(ratio) < 0 || json_number_value(ratio) > 1))
            return config_problem(path, "sample_ratio", "expected a number from 0 to 1");
        if (params && !json_is_boolean(params))
            return config_problem(path, "sql_parameters", "expected true or false");
        if (queue && (!json_is_integer(queue) || json_integer_value(queue) < 1 ||
                      json_integer_value(queue) > 1000000))
            return config_problem(path, "queue_spans", "expected an integer from 1 to 1000000");
        if (batch && (!json_is_integer(batch) || json_integer_value(batch) < 10 ||
                      json_integer_value(batch) > 60000))
            return config_problem(path, "batch_ms", "expected an integer from 10 to 60000");
        if (!out)
            return NULL;
        if (ratio)
            cfg.sample_ratio = json_number_value(ratio);
        if (params)
            cfg.sql_parameters = json_is_true(params);
        if (queue)
            cfg.queue_spans = (unsigned)json_integer_value(queue);
        if (batch)
            cfg.batch_ms = (unsigned)json_integer_value(batch);
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

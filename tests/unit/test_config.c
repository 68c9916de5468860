/* tests/unit/test_config.c - framework/lib/config.c: the defaults of
 * keel_config_defaults, every environment override keel_config_from_env
 * reads (each variable at its bounds, just outside them, non-numeric, empty
 * and with trailing garbage: a refusal is invalid_argument naming the
 * variable, its value and the range, and leaves the field alone), KEEL_HOST,
 * and keel_app_root with and without KEEL_APP_ROOT.  The variables are set
 * with setenv and cleared again after every case. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/keel.h"
#include "tap.h"

typedef enum field_kind { FIELD_UNSIGNED, FIELD_SIZE, FIELD_BOOL } field_kind;

/* One variable keel_config_from_env reads, its range and the field it sets. */
typedef struct env_var {
    const char *name;
    unsigned long long min, max;
    size_t offset;
    field_kind kind;
} env_var;

#define VAR(name, min, max, field, kind) {name, min, max, offsetof(keel_config, field), kind}

/* The list in app.h and config.c, with config.c's bounds. */
static const env_var vars[] = {
    VAR("PORT", 0, 65535, port, FIELD_UNSIGNED),
    VAR("KEEL_IO_THREADS", 1, 256, io_threads, FIELD_UNSIGNED),
    VAR("KEEL_WORKERS", 1, 4096, workers, FIELD_UNSIGNED),
    VAR("KEEL_MAX_BODY", 1, 1ull << 40, max_body, FIELD_SIZE),
    VAR("KEEL_BODY_BUDGET", 1, 1ull << 44, body_budget, FIELD_SIZE),
    VAR("KEEL_MAX_CONNECTIONS_PER_IP", 0, 1000000, max_conns_per_ip, FIELD_UNSIGNED),
    VAR("KEEL_MAX_HEADER", 4096, 1024 * 1024, max_header, FIELD_SIZE),
    VAR("KEEL_CONN_TIMEOUT", 1, 86400, conn_timeout_s, FIELD_UNSIGNED),
    VAR("KEEL_SHUTDOWN_GRACE_MS", 0, 3600 * 1000, shutdown_grace_ms, FIELD_UNSIGNED),
    VAR("KEEL_MAX_CONNECTIONS", 1, 1000000, max_connections, FIELD_UNSIGNED),
    VAR("KEEL_LOG_REQUESTS", 0, 1, log_requests, FIELD_BOOL),
};
#define N_VARS (sizeof vars / sizeof vars[0])

/* Checks made for each variable by test_variable. */
#define CHECKS_PER_VAR 11

static unsigned long long get_field(const keel_config *c, const env_var *v)
{
    const char *p = (const char *)c + v->offset;
    switch (v->kind) {
    case FIELD_UNSIGNED:
        return *(const unsigned *)p;
    case FIELD_SIZE:
        return *(const size_t *)p;
    case FIELD_BOOL:
        return *(const bool *)p;
    }
    return 0;
}

static void clear_env(void)
{
    for (size_t i = 0; i < N_VARS; i++)
        unsetenv(vars[i].name);
    unsetenv("KEEL_HOST");
}

/* Whether every field of a and b is the same (host compared as text). */
static bool same_config(const keel_config *a, const keel_config *b)
{
    return strcmp(a->host, b->host) == 0 && a->port == b->port && a->io_threads == b->io_threads &&
           a->workers == b->workers && a->max_body == b->max_body && a->body_budget == b->body_budget &&
           a->max_conns_per_ip == b->max_conns_per_ip && a->max_header == b->max_header &&
           a->conn_timeout_s == b->conn_timeout_s && a->shutdown_grace_ms == b->shutdown_grace_ms &&
           a->max_connections == b->max_connections && a->log_requests == b->log_requests &&
           a->log_fd == b->log_fd;
}

static void test_defaults(void)
{
    keel_config c;
    memset(&c, 0xA5, sizeof c);
    keel_config_defaults(&c);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    is_str(c.host, "0.0.0.0", "defaults: host 0.0.0.0");
    is_int(c.port, 4000, "defaults: port 4000");
    is_int(c.io_threads, cores > 0 ? cores : 2, "defaults: one I/O thread per online core");
    is_int(c.workers, 16, "defaults: 16 workers");
    is_int(c.max_body, 1024 * 1024, "defaults: max_body 1 MiB");
    is_int(c.body_budget, 256ll * 1024 * 1024, "defaults: body_budget 256 MiB");
    is_int(c.max_conns_per_ip, 512, "defaults: 512 connections per client address");
    is_int(c.max_header, 32 * 1024, "defaults: max_header 32 KiB (as app.h says)");
    is_int(c.conn_timeout_s, 30, "defaults: 30 s idle timeout");
    is_int(c.shutdown_grace_ms, 10000, "defaults: 10 s shutdown grace");
    is_int(c.max_connections, 4096, "defaults: 4096 connections");
    ok(c.log_requests == true, "defaults: requests are logged");
    is_int(c.log_fd, 2, "defaults: log to stderr");
}

/* keel_config_from_env on fresh defaults with name=value; fills *c. */
static keel_error *from_env_with(const char *name, const char *value, keel_config *c)
{
    keel_config_defaults(c);
    setenv(name, value, 1);
    keel_error *err = keel_config_from_env(c);
    unsetenv(name);
    return err;
}

/* Checks that name=value is refused, with the message naming the variable,
 * the value and the range, and that the field keeps its default. */
static void refused(const env_var *v, const char *value, const char *why)
{
    keel_config c, defaults;
    keel_config_defaults(&defaults);
    keel_error *err = from_env_with(v->name, value, &c);
    char want[256];
    snprintf(want, sizeof want, "%s=\"%s\": expected a whole number from %llu to %llu", v->name, value, v->min,
             v->max);
    if (!err)
        diag("%s=\"%s\" was accepted as %llu", v->name, value, get_field(&c, v));
    ok(err && err->code == KEEL_INVALID_ARGUMENT && get_field(&c, v) == get_field(&defaults, v) &&
           strcmp(err->message, want) == 0,
       "%s=\"%s\" (%s) is refused as invalid_argument naming the variable, the field unchanged", v->name, value,
       why);
    if (err && strcmp(err->message, want) != 0)
        diag("got: %s\n#   expected: %s", err->message, want);
    keel_error_free(err);
}

/* Checks that name=value sets the field to want. */
static void accepted(const env_var *v, const char *value, unsigned long long want, const char *why)
{
    keel_config c;
    keel_error *err = from_env_with(v->name, value, &c);
    if (err)
        diag("%s", err->message);
    ok(!err && get_field(&c, v) == want, "%s=\"%s\" (%s) sets the field to %llu", v->name, value, why, want);
    keel_error_free(err);
}

static void test_variable(const env_var *v)
{
    char text[64];
    snprintf(text, sizeof text, "%llu", v->min);
    accepted(v, text, v->min, "the minimum");
    snprintf(text, sizeof text, "%llu", v->max);
    accepted(v, text, v->max, "the maximum");
    snprintf(text, sizeof text, "00%llu", v->max);
    accepted(v, text, v->max, "leading zeros");
    snprintf(text, sizeof text, "%llu", v->max + 1);
    refused(v, text, "one above the maximum");
    if (v->min > 0)
        snprintf(text, sizeof text, "%llu", v->min - 1);
    else
        snprintf(text, sizeof text, "-1");
    refused(v, text, "one below the minimum");
    refused(v, "-0", "a minus sign");
    refused(v, "abc", "not a number");
    refused(v, "", "empty");
    snprintf(text, sizeof text, "%llux", v->min);
    refused(v, text, "trailing garbage");
    refused(v, "1.5", "a fraction");
    refused(v, "99999999999999999999999", "beyond unsigned long long");
}

static void test_overrides(void)
{
    keel_config c, defaults;
    keel_config_defaults(&defaults);
    keel_config_defaults(&c);
    keel_error *err = keel_config_from_env(&c);
    ok(!err && same_config(&c, &defaults), "from_env: with nothing set the defaults stay");
    keel_error_free(err);

    for (size_t i = 0; i < N_VARS; i++)
        test_variable(&vars[i]);

    err = from_env_with("KEEL_HOST", "127.0.0.1", &c);
    ok(!err && strcmp(c.host, "127.0.0.1") == 0, "KEEL_HOST sets the bind address");
    keel_error_free(err);
    err = from_env_with("KEEL_HOST", "", &c);
    ok(!err && strcmp(c.host, "0.0.0.0") == 0, "an empty KEEL_HOST keeps the default");
    keel_error_free(err);

    /* Several at once: each lands in its own field, the others keep theirs. */
    keel_config_defaults(&c);
    setenv("PORT", "8080", 1);
    setenv("KEEL_WORKERS", "3", 1);
    setenv("KEEL_LOG_REQUESTS", "0", 1);
    setenv("KEEL_HOST", "::1", 1);
    err = keel_config_from_env(&c);
    keel_config want = defaults;
    want.port = 8080;
    want.workers = 3;
    want.log_requests = false;
    want.host = "::1";
    ok(!err && same_config(&c, &want), "from_env: several variables at once set exactly their fields");
    keel_error_free(err);
    clear_env();

    /* A bad variable among good ones is still reported, by its own name. */
    keel_config_defaults(&c);
    setenv("PORT", "8080", 1);
    setenv("KEEL_MAX_HEADER", "100", 1);
    err = keel_config_from_env(&c);
    like(err ? err->message : NULL, "KEEL_MAX_HEADER=\"100\"", "from_env: the bad variable of several is named");
    keel_error_free(err);
    clear_env();
}

static void test_app_root(void)
{
    unsetenv("KEEL_APP_ROOT");
    is_str(keel_app_root(), ".", "app root: the current folder without KEEL_APP_ROOT");
    setenv("KEEL_APP_ROOT", "/srv/app", 1);
    is_str(keel_app_root(), "/srv/app", "app root: KEEL_APP_ROOT when set");
    setenv("KEEL_APP_ROOT", "", 1);
    is_str(keel_app_root(), ".", "app root: an empty KEEL_APP_ROOT counts as unset");
    unsetenv("KEEL_APP_ROOT");
}

int main(void)
{
    plan(13 + 1 + (int)N_VARS * CHECKS_PER_VAR + 2 + 1 + 1 + 3);
    clear_env();
    test_defaults();
    test_overrides();
    test_app_root();
    return tap_done();
}

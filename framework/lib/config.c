/* config.c - the app's configuration: defaults, and overrides read once from
 * the environment at start-up. */
#include "core.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One rule for every name the app declares (services, databases, external
 * databases): they become role, folder and variable names. */
bool keel__name_valid(const char *name)
{
    if (!name || !islower((unsigned char)name[0]))
        return false;
    for (const char *p = name; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '_')
            return false;
    return strlen(name) <= KEEL_NAME_MAX;
}

const char *keel_app_root(void)
{
    const char *root = getenv("KEEL_APP_ROOT");
    return root && *root ? root : ".";
}

void keel_config_defaults(keel_config *c)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    c->host = "0.0.0.0";
    c->port = 4000;
    c->io_threads = cores > 0 ? (unsigned)cores : 2;
    c->workers = 16;
    c->max_body = 1024 * 1024;
    c->body_budget = 256u * 1024 * 1024;
    c->max_conns_per_ip = 512;
    c->max_header = 32 * 1024;
    c->conn_timeout_s = 30;
    c->shutdown_grace_ms = 10000;
    c->drain_ms = 0;
    c->replica_check_ms = 1000;
    c->max_connections = 4096;
    c->log_requests = true;
    c->log_fd = 2;
    c->header_timeout_ms = 20000;
    c->min_rate = 1024;
    c->rate_grace_ms = 20000;
    c->response_budget = 256u * 1024 * 1024;
}

/* Reads an unsigned number in [min, max] from variable name, if set. */
static keel_error *env_number(const char *name, unsigned long long min, unsigned long long max,
                              unsigned long long *out, bool *set)
{
    const char *v = getenv(name);
    *set = false;
    if (!v)
        return NULL;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || n < min || n > max)
        return keel_error_new(KEEL_INVALID_ARGUMENT, "%s=\"%s\": expected a whole number from %llu to %llu",
                              name, v, min, max);
    *out = n;
    *set = true;
    return NULL;
}

#define ENV_FIELD(var, field, min, max) do { \
        unsigned long long n_; bool set_; \
        keel_error *err_ = env_number(var, min, max, &n_, &set_); \
        if (err_) return err_; \
        if (set_) c->field = n_; \
    } while (0)

keel_error *keel_config_from_env(keel_config *c)
{
    ENV_FIELD("PORT", port, 0, 65535);
    ENV_FIELD("KEEL_IO_THREADS", io_threads, 1, 256);
    ENV_FIELD("KEEL_WORKERS", workers, 1, 4096);
    ENV_FIELD("KEEL_MAX_BODY", max_body, 1, 1ull << 40);
    ENV_FIELD("KEEL_BODY_BUDGET", body_budget, 1, 1ull << 44);
    ENV_FIELD("KEEL_MAX_CONNECTIONS_PER_IP", max_conns_per_ip, 0, 1000000);
    ENV_FIELD("KEEL_MAX_HEADER", max_header, 4096, 1024 * 1024);
    ENV_FIELD("KEEL_CONN_TIMEOUT", conn_timeout_s, 1, 86400);
    ENV_FIELD("KEEL_SHUTDOWN_GRACE_MS", shutdown_grace_ms, 0, 3600 * 1000);
    ENV_FIELD("KEEL_DRAIN_MS", drain_ms, 0, 3600 * 1000);
    ENV_FIELD("KEEL_REPLICA_CHECK_MS", replica_check_ms, 10, 3600 * 1000);
    ENV_FIELD("KEEL_MAX_CONNECTIONS", max_connections, 1, 1000000);
    ENV_FIELD("KEEL_LOG_REQUESTS", log_requests, 0, 1);
    ENV_FIELD("KEEL_HEADER_TIMEOUT_MS", header_timeout_ms, 100, 3600 * 1000);
    ENV_FIELD("KEEL_MIN_RATE", min_rate, 0, 1u << 30);
    ENV_FIELD("KEEL_RATE_GRACE_MS", rate_grace_ms, 100, 3600 * 1000);
    ENV_FIELD("KEEL_RESPONSE_BUDGET", response_budget, 64 * 1024, 1ull << 44);
    const char *host = getenv("KEEL_HOST");
    if (host && *host)
        c->host = host;
    return NULL;
}

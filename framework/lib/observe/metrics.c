/* metrics.c - the app's counters and GET /__keel/metrics in Prometheus'
 * text format (version 0.0.4): requests by endpoint and status, latency
 * histograms per endpoint, requests in flight, each database pool's
 * connections, waiters and checkout time, statements by outcome, the
 * tracer's exported and dropped spans, and the process's own figures.
 *
 * Requests count with relaxed atomic adds on per-route counters; the page
 * reads them without stopping anyone, so its figures are each exact but
 * not taken at one instant. */
#include "core.h"
#include "keel/extdb.h"
#include "observe/metrics.h"
#include "health.h"
#include "observe/observe.h"
#include "sql/pool.h"
#include "sql/replica.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Upper bounds of the latency buckets, in microseconds (+Inf follows). */
static const uint64_t bucket_us[] = {500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                                     1000000, 2500000, 5000000, 10000000};
#define NBUCKETS (sizeof bucket_us / sizeof *bucket_us)
#define STATUS_MIN 100
#define STATUS_MAX 599

typedef struct route_counts {
    atomic_uint_fast64_t by_status[STATUS_MAX - STATUS_MIN + 1];
    atomic_uint_fast64_t buckets[NBUCKETS + 1]; /* not cumulative; the last is +Inf */
    atomic_uint_fast64_t sum_us;
} route_counts;

static keel_error *metrics_page(keel_req *req, keel_resp *resp);

/* The framework's own pages: never the app's routes, never traced. */
static const keel_service framework_service = {.name = "__keel"};
static const keel_endpoint framework_endpoints[] = {
    KEEL_RAW("GET", "/__keel/metrics", metrics_page),
    KEEL_RAW("GET", "/__keel/healthz", keel__healthz_page),
    KEEL_RAW("GET", "/__keel/readyz", keel__readyz_page),
};
#define NFRAMEWORK (sizeof framework_endpoints / sizeof *framework_endpoints)

struct keel_metrics {
    route_counts *routes;     /* app->nroutes, then the unrouted, then the framework's */
    size_t nroutes;
    atomic_uint_fast64_t in_flight;
    atomic_uint_fast64_t cut[3];      /* connections cut by their watchdog: headers, body, response */
    double start_time;        /* Unix seconds */
    keel_route framework[NFRAMEWORK];
};

keel_error *keel__metrics_new(keel_app *app)
{
    keel_metrics *m = calloc(1, sizeof *m);
    size_t n = app->nroutes + 1 + NFRAMEWORK;
    route_counts *r = m ? calloc(n, sizeof *r) : NULL;
    if (!r) {
        free(m);
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    }
    m->routes = r;
    m->nroutes = app->nroutes;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m->start_time = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
    for (size_t i = 0; i < NFRAMEWORK; i++) {
        keel_route *fr = &m->framework[i];
        fr->service = &framework_service;
        fr->ep = &framework_endpoints[i];
        snprintf(fr->label, sizeof fr->label, "__keel.%s", framework_endpoints[i].path + strlen("/__keel/"));
        snprintf(fr->method, sizeof fr->method, "GET");
    }
    app->metrics = m;
    return NULL;
}

void keel__metrics_free(keel_app *app)
{
    if (!app->metrics)
        return;
    free(app->metrics->routes);
    free(app->metrics);
    app->metrics = NULL;
}

void keel__metrics_request_start(keel_app *app)
{
    if (app->metrics)
        atomic_fetch_add_explicit(&app->metrics->in_flight, 1, memory_order_relaxed);
}

static route_counts *counts_for(keel_metrics *m, const keel_app *app, const keel_route *route)
{
    if (route >= app->routes && route < app->routes + m->nroutes)
        return &m->routes[route - app->routes];
    if (route >= m->framework && route < m->framework + NFRAMEWORK)
        return &m->routes[m->nroutes + 1 + (size_t)(route - m->framework)];
    return &m->routes[m->nroutes]; /* not routed */
}

static const char *const cut_reasons[3] = {"headers", "body", "response"};

void keel__metrics_connection_cut(keel_app *app, const char *reason)
{
    for (size_t i = 0; app->metrics && i < 3; i++)
        if (strcmp(reason, cut_reasons[i]) == 0)
            atomic_fetch_add_explicit(&app->metrics->cut[i], 1, memory_order_relaxed);
}

void keel__metrics_request_end(keel_app *app, const keel_route *route, unsigned status, uint64_t duration_us)
{
    keel_metrics *m = app->metrics;
    if (!m)
        return;
    atomic_fetch_sub_explicit(&m->in_flight, 1, memory_order_relaxed);
    route_counts *c = counts_for(m, app, route);
    if (status < STATUS_MIN || status > STATUS_MAX)
        status = 500;
    atomic_fetch_add_explicit(&c->by_status[status - STATUS_MIN], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NBUCKETS && duration_us > bucket_us[b])
        b++;
    atomic_fetch_add_explicit(&c->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->sum_us, duration_us, memory_order_relaxed);
}

const keel_route *keel__framework_route(keel_app *app, const char *method, const char *path, unsigned *status)
{
    keel_metrics *m = app->metrics;
    *status = 404;
    for (size_t i = 0; m && i < NFRAMEWORK; i++) {
        if (strcmp(path, framework_endpoints[i].path) != 0)
            continue;
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
            *status = 405;
            return NULL;
        }
        return &m->framework[i];
    }
    return NULL;
}

/* ---- the page ---------------------------------------------------------------------- */

static uint64_t load(atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static void header(keel_buf *b, const char *name, const char *type, const char *help)
{
    keel_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* service="todo",endpoint="get" for a route; the unrouted have "". */
static void route_labels(keel_buf *b, const keel_route *r)
{
    keel_buf_printf(b, "service=\"%s\",endpoint=\"%s\"", r ? r->service->name : "", r ? r->ep->name : "");
}

static void http_metrics(keel_buf *b, keel_app *app, keel_metrics *m)
{
    size_t n = m->nroutes + 1 + NFRAMEWORK;
    header(b, "keel_http_requests_total", "counter", "HTTP requests answered, by endpoint and status code.");
    for (size_t i = 0; i < n; i++) {
        const keel_route *r = i < m->nroutes ? &app->routes[i] : i == m->nroutes ? NULL : &m->framework[i - m->nroutes - 1];
        for (unsigned s = STATUS_MIN; s <= STATUS_MAX; s++) {
            uint64_t v = load(&m->routes[i].by_status[s - STATUS_MIN]);
            if (!v)
                continue;
            keel_buf_puts(b, "keel_http_requests_total{");
            route_labels(b, r);
            keel_buf_printf(b, ",code=\"%u\"} %llu\n", s, (unsigned long long)v);
        }
    }
    header(b, "keel_http_request_duration_seconds", "histogram",
           "Time from a request's arrival to the end of its response, by endpoint.");
    for (size_t i = 0; i < n; i++) {
        const keel_route *r = i < m->nroutes ? &app->routes[i] : i == m->nroutes ? NULL : &m->framework[i - m->nroutes - 1];
        route_counts *c = &m->routes[i];
        uint64_t cumulative = 0;
        for (size_t k = 0; k <= NBUCKETS; k++)
            cumulative += load(&c->buckets[k]);
        if (!cumulative && (!r || i >= m->nroutes))
            continue; /* the unrouted and the framework's show once they count */
        cumulative = 0;
        for (size_t k = 0; k <= NBUCKETS; k++) {
            cumulative += load(&c->buckets[k]);
            keel_buf_puts(b, "keel_http_request_duration_seconds_bucket{");
            route_labels(b, r);
            if (k < NBUCKETS)
                keel_buf_printf(b, ",le=\"%g\"} %llu\n", (double)bucket_us[k] / 1e6, (unsigned long long)cumulative);
            else
                keel_buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cumulative);
        }
        keel_buf_puts(b, "keel_http_request_duration_seconds_sum{");
        route_labels(b, r);
        keel_buf_printf(b, "} %.6f\n", (double)load(&c->sum_us) / 1e6);
        keel_buf_puts(b, "keel_http_request_duration_seconds_count{");
        route_labels(b, r);
        keel_buf_printf(b, "} %llu\n", (unsigned long long)cumulative);
    }
    header(b, "keel_http_requests_in_flight", "gauge", "Requests received and not yet answered.");
    keel_buf_printf(b, "keel_http_requests_in_flight %llu\n", (unsigned long long)load(&m->in_flight));
    header(b, "keel_http_connections_cut_total", "counter",
           "Connections closed for being too slow: headers not complete in time, a body or an answer "
           "moving under the minimum rate.");
    for (size_t i = 0; i < 3; i++)
        keel_buf_printf(b, "keel_http_connections_cut_total{reason=\"%s\"} %llu\n", cut_reasons[i],
                        (unsigned long long)load(&m->cut[i]));
}

typedef struct pool_row {
    const char *name;
    keel_pool *pool;
} pool_row;

/* Every pool that exists: managed databases, then external ones opened. */
static size_t pools_list(keel_app *app, pool_row *rows, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < app->ndbs && n < max; i++)
        if (app->dbs[i]->pool)
            rows[n++] = (pool_row){app->dbs[i]->name, app->dbs[i]->pool};
    for (size_t s = 0; app->services[s]; s++) {
        keel_extdb *const *x = app->services[s]->external_databases;
        for (size_t j = 0; x && x[j] && n < max; j++) {
            keel_pool *p = keel_lazy_peek(&x[j]->lazy);
            bool seen = false;
            for (size_t k = 0; k < n && !seen; k++)
                seen = rows[k].pool == p;
            if (p && !seen)
                rows[n++] = (pool_row){x[j]->name, p};
        }
    }
    return n;
}

static void db_metrics(keel_buf *b, keel_app *app)
{
    pool_row rows[64];
    size_t n = pools_list(app, rows, 64);
    keel_pool_stats st[64];
    for (size_t i = 0; i < n; i++)
        keel_pool_stats_read(rows[i].pool, &st[i]);
    header(b, "keel_db_pool_connections", "gauge",
           "Open database connections by state: busy (held by a request or with statements in flight) or idle.");
    for (size_t i = 0; i < n; i++) {
        keel_buf_printf(b, "keel_db_pool_connections{database=\"%s\",state=\"busy\"} %llu\n", rows[i].name,
                        (unsigned long long)st[i].busy);
        keel_buf_printf(b, "keel_db_pool_connections{database=\"%s\",state=\"idle\"} %llu\n", rows[i].name,
                        (unsigned long long)(st[i].open - st[i].busy));
    }
    header(b, "keel_db_pool_max_connections", "gauge", "The most connections a pool opens.");
    for (size_t i = 0; i < n; i++)
        keel_buf_printf(b, "keel_db_pool_max_connections{database=\"%s\"} %u\n", rows[i].name,
                        keel_pool_max(rows[i].pool));
    header(b, "keel_db_pool_waiting", "gauge", "Requests waiting for a connection.");
    for (size_t i = 0; i < n; i++)
        keel_buf_printf(b, "keel_db_pool_waiting{database=\"%s\"} %llu\n", rows[i].name,
                        (unsigned long long)st[i].waiting);
    header(b, "keel_db_pool_checkouts_total", "counter", "Connections taken by a request alone (transactions, row streams, blocking handlers).");
    for (size_t i = 0; i < n; i++)
        keel_buf_printf(b, "keel_db_pool_checkouts_total{database=\"%s\"} %llu\n", rows[i].name,
                        (unsigned long long)st[i].checkouts);
    header(b, "keel_db_pool_checkout_seconds_total", "counter", "Time requests spent obtaining those connections.");
    for (size_t i = 0; i < n; i++)
        keel_buf_printf(b, "keel_db_pool_checkout_seconds_total{database=\"%s\"} %.6f\n", rows[i].name,
                        (double)st[i].checkout_ns / 1e9);
    header(b, "keel_db_statements_total", "counter", "SQL statements run, by database and outcome.");
    for (size_t i = 0; i < n; i++) {
        keel_buf_printf(b, "keel_db_statements_total{database=\"%s\",outcome=\"ok\"} %llu\n", rows[i].name,
                        (unsigned long long)st[i].statements_ok);
        keel_buf_printf(b, "keel_db_statements_total{database=\"%s\",outcome=\"error\"} %llu\n", rows[i].name,
                        (unsigned long long)st[i].statements_failed);
    }
}

/* Each managed database's read replicas: whether they answer, how far
 * their replay lags, and the statements they ran. */
static void replica_metrics(keel_buf *b, keel_app *app)
{
    bool any = false;
    for (size_t i = 0; i < app->ndbs; i++)
        any |= keel__replicas_count(app->dbs[i]->replicas) > 0;
    if (!any)
        return;
    header(b, "keel_db_replica_up", "gauge", "1 while a read replica answers (reads go to it), else 0.");
    for (size_t i = 0; i < app->ndbs; i++)
        for (size_t k = 0; k < keel__replicas_count(app->dbs[i]->replicas); k++) {
            const char *label;
            bool up;
            double lag;
            keel__replica_info(app->dbs[i]->replicas, k, &label, &up, &lag);
            keel_buf_printf(b, "keel_db_replica_up{database=\"%s\",replica=\"%s\"} %d\n", app->dbs[i]->name, label,
                            up ? 1 : 0);
        }
    header(b, "keel_db_replica_lag_seconds", "gauge",
           "How far a replica's replay is behind: 0 when it replayed all it received, else the age of the last "
           "transaction it replayed.  Absent until known.");
    for (size_t i = 0; i < app->ndbs; i++)
        for (size_t k = 0; k < keel__replicas_count(app->dbs[i]->replicas); k++) {
            const char *label;
            bool up;
            double lag;
            keel__replica_info(app->dbs[i]->replicas, k, &label, &up, &lag);
            if (lag >= 0)
                keel_buf_printf(b, "keel_db_replica_lag_seconds{database=\"%s\",replica=\"%s\"} %.6f\n",
                                app->dbs[i]->name, label, lag);
        }
    header(b, "keel_db_replica_statements_total", "counter", "SQL statements a read replica ran, by outcome.");
    for (size_t i = 0; i < app->ndbs; i++)
        for (size_t k = 0; k < keel__replicas_count(app->dbs[i]->replicas); k++) {
            const char *label;
            bool up;
            double lag;
            keel__replica_info(app->dbs[i]->replicas, k, &label, &up, &lag);
            keel_pool_stats st;
            keel_pool_stats_read(keel__replica_pool(app->dbs[i]->replicas, k), &st);
            keel_buf_printf(b, "keel_db_replica_statements_total{database=\"%s\",replica=\"%s\",outcome=\"ok\"} %llu\n",
                            app->dbs[i]->name, label, (unsigned long long)st.statements_ok);
            keel_buf_printf(b,
                            "keel_db_replica_statements_total{database=\"%s\",replica=\"%s\",outcome=\"error\"} %llu\n",
                            app->dbs[i]->name, label, (unsigned long long)st.statements_failed);
        }
}

static void trace_metrics(keel_buf *b, keel_app *app)
{
    keel_trace_stats t;
    keel__observe_trace_stats(app->obs, &t);
    header(b, "keel_trace_spans_exported_total", "counter", "Spans the OTLP collector accepted.");
    keel_buf_printf(b, "keel_trace_spans_exported_total %llu\n", (unsigned long long)t.exported);
    header(b, "keel_trace_spans_dropped_total", "counter",
           "Spans dropped because the export queue was full (the exporter fell behind).");
    keel_buf_printf(b, "keel_trace_spans_dropped_total %llu\n", (unsigned long long)t.dropped);
    header(b, "keel_trace_spans_failed_total", "counter", "Spans lost to exports the collector did not accept.");
    keel_buf_printf(b, "keel_trace_spans_failed_total %llu\n", (unsigned long long)t.failed);
}

/* The standard process_* figures, from /proc. */
static void process_metrics(keel_buf *b, const keel_metrics *m)
{
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char stat[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t len = f ? fread(stat, 1, sizeof stat - 1, f) : 0;
    if (f)
        fclose(f);
    stat[len] = '\0';
    /* Fields after the command's closing parenthesis: 14 utime, 15 stime,
     * 23 vsize, 24 rss (numbered from 1 as in proc(5)). */
    const char *p = strrchr(stat, ')');
    unsigned long long utime = 0, stime = 0, vsize = 0, rss = 0;
    if (p && ticks > 0)
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %llu %llu",
               &utime, &stime, &vsize, &rss);
    header(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent, in seconds.");
    keel_buf_printf(b, "process_cpu_seconds_total %.2f\n", ticks > 0 ? (double)(utime + stime) / (double)ticks : 0.0);
    header(b, "process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
    keel_buf_printf(b, "process_resident_memory_bytes %llu\n", rss * (unsigned long long)(page > 0 ? page : 4096));
    header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size, in bytes.");
    keel_buf_printf(b, "process_virtual_memory_bytes %llu\n", vsize);
    unsigned fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        fds += e->d_name[0] != '.';
    if (d)
        closedir(d);
    header(b, "process_open_fds", "gauge", "Open file descriptors.");
    keel_buf_printf(b, "process_open_fds %u\n", fds ? fds - 1 : 0); /* less the one reading the folder */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        header(b, "process_max_fds", "gauge", "The most file descriptors the process may open.");
        keel_buf_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    header(b, "process_start_time_seconds", "gauge", "When the process started, in seconds since the Unix epoch.");
    keel_buf_printf(b, "process_start_time_seconds %.3f\n", m->start_time);
    header(b, "keel_build_info", "gauge", "Keel's version; always 1.");
    keel_buf_printf(b, "keel_build_info{version=\"%s\"} 1\n", KEEL_VERSION);
}

static keel_error *metrics_page(keel_req *req, keel_resp *resp)
{
    keel_app *app = req->app;
    keel_buf *b = keel_resp_buf(resp);
    http_metrics(b, app, app->metrics);
    db_metrics(b, app);
    replica_metrics(b, app);
    trace_metrics(b, app);
    process_metrics(b, app->metrics);
    if (b->failed)
        return keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    keel_resp_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    keel_resp_header(resp, "Cache-Control", "no-store");
    return NULL;
}

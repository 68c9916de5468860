/* dashboard.c - the local development dashboard: a libmicrohttpd server of
 * its own on loopback (one thread per connection: its pages may wait on
 * the database or on the app) that serves dashboard.html and the JSON it
 * reads:
 *   GET  /api/model            the app model (services, endpoints, schemas...)
 *   GET  /api/traces           the latest traces; /api/traces/<id> one trace's spans
 *   GET  /api/databases        migrations per database, applied or not
 *   POST /api/query            {"database","sql"}: a read-only query as the _ro role
 *   POST /api/call             {"method","path","headers","body"}: sent to the app
 * It is for development: bound to 127.0.0.1, it answers only requests whose
 * Host is that address (a page elsewhere cannot rebind a name to it), and its
 * POSTs need Content-Type: application/json (so another origin cannot send
 * them without a preflight, which it does not answer). */
#include "core.h"
#include "format.h"
#include "observe/dashboard.h"
#include "observe/http_client.h"
#include "observe/observe.h"
#include "sql/infra.h"
#include "sql/pg_error.h"
#include "sql/pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define QUERY_MAX_ROWS 500
#define POST_MAX (1024 * 1024)

struct keel_dashboard {
    struct MHD_Daemon *daemon;
    keel_app *app;
    unsigned port;
};

bool keel__dashboard_wanted(void)
{
    const char *p = getenv("KEEL_DASHBOARD_PORT");
    return p && *p;
}

/* ---- replies ------------------------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, const void *data,
                             size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return reply(c, 500, "application/json", "{\"code\":\"internal\",\"message\":\"out of memory\"}", 46);
    enum MHD_Result ret = reply(c, status, "application/json", text, strlen(text));
    free(text);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, keel_error *err)
{
    unsigned status = keel_error_http_status(err);
    json_t *body = json_pack("{s:s, s:s, s:n}", "code", keel_code_name(err->code), "message", err->message,
                             "details");
    keel_error_free(err);
    return reply_json(c, status, body);
}

static enum MHD_Result reply_buf(struct MHD_Connection *c, unsigned status, keel_buf *b)
{
    if (b->failed)
        return reply_error(c, keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory"));
    return reply(c, status, "application/json", b->data ? b->data : "", b->len);
}

/* ---- /api/databases ----------------------------------------------------------------- */

static const char *owner_of(const keel_app *app, size_t i)
{
    return app->db_owner && app->db_owner[i] ? app->db_owner[i]->name : NULL;
}

/* A connection to logical as role; NULL with *err. */
static PGconn *connect_as(const char *logical, keel_db_role role, keel_error **err)
{
    const keel_infra *infra = NULL;
    *err = keel__infra_process(&infra);
    if (*err)
        return NULL;
    keel_db_settings s;
    if ((*err = keel__infra_settings(infra, logical, role, NULL, &s)) != NULL)
        return NULL;
    PGconn *conn = PQconnectdbParams(s.conn.keywords, (const char *const *)s.conn.values, 0);
    keel__db_settings_free(&s);
    if (PQstatus(conn) != CONNECTION_OK) {
        *err = keel_error_new(KEEL_UNAVAILABLE, "database \"%s\" is unavailable", logical);
        keel__pg_cause(*err, conn, NULL);
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static json_t *database_status(const keel_app *app, size_t i)
{
    const keel_sqldb *db = app->dbs[i];
    json_t *out = json_pack("{s:s, s:s?, s:[], s:n}", "name", db->name, "service", owner_of(app, i), "migrations",
                            "error");
    char *dir = keel__db_migrations_path(db);
    keel_migration_set *set = NULL;
    keel_error *err = dir ? keel_migrations_load(dir, &set) : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
    free(dir);
    keel_migration_state state = {false, 0, false};
    PGconn *conn = err ? NULL : connect_as(db->name, KEEL_ROLE_APP, &err);
    if (conn) {
        err = keel_migrate_state(conn, &state);
        PQfinish(conn);
    }
    for (size_t k = 0; set && k < set->count; k++)
        json_array_append_new(json_object_get(out, "migrations"),
                              json_pack("{s:I, s:s, s:b}", "version", (json_int_t)set->items[k].version, "name",
                                        set->items[k].name, "applied", !err && set->items[k].version <= state.version));
    if (err) {
        json_object_set_new(out, "error", json_string(err->message));
        keel_error_free(err);
    } else if (state.dirty) {
        json_object_set_new(out, "error", json_string("the last migration failed half-way (dirty)"));
    }
    keel_migrations_free(set);
    return out;
}

static enum MHD_Result api_databases(struct MHD_Connection *c, keel_app *app)
{
    json_t *list = json_array();
    for (size_t i = 0; i < app->ndbs; i++)
        json_array_append_new(list, database_status(app, i));
    return reply_json(c, 200, json_pack("{s:o}", "databases", list));
}

/* ---- /api/query --------------------------------------------------------------------- */

static bool declared(const keel_app *app, const char *name)
{
    for (size_t i = 0; i < app->ndbs; i++)
        if (strcmp(app->dbs[i]->name, name) == 0)
            return true;
    return false;
}

/* The first QUERY_MAX_ROWS rows of a result, fetched one at a time
 * (single-row mode): a result of millions of rows is never held here.  At
 * the cap the statement is cancelled; *truncated says whether there was
 * more.  NULL with *failed (the error result, caller clears) when the
 * statement failed; else the columns and rows. */
static json_t *fetch_capped(PGconn *conn, bool *truncated, PGresult **failed)
{
    json_t *cols = NULL, *rows = json_array();
    *truncated = false;
    *failed = NULL;
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
            if (!*failed)
                *failed = r;
            else
                PQclear(r);
            continue;
        }
        if (!cols) {
            cols = json_array();
            for (int f = 0; f < PQnfields(r); f++)
                json_array_append_new(cols, json_string(PQfname(r, f)));
        }
        if (st == PGRES_SINGLE_TUPLE && json_array_size(rows) >= QUERY_MAX_ROWS) {
            PQclear(r);
            *truncated = true;
            /* The rest is not wanted: cancel it, then read what was already
             * on its way (a few rows, and the cancellation's error). */
            if (!keel__pg_cancel(conn))
                break; /* the caller closes the connection, which ends the statement */
            while ((r = PQgetResult(conn)) != NULL)
                PQclear(r);
            break;
        }
        if (st == PGRES_SINGLE_TUPLE) {
            json_t *row = json_array();
            for (int f = 0; f < PQnfields(r); f++)
                json_array_append_new(row, PQgetisnull(r, 0, f) ? json_null()
                                                                 : json_stringn(PQgetvalue(r, 0, f),
                                                                                (size_t)PQgetlength(r, 0, f)));
            json_array_append_new(rows, row);
        }
        PQclear(r);
    }
    if (*failed) {
        json_decref(cols);
        json_decref(rows);
        return NULL;
    }
    return json_pack("{s:o, s:o, s:b}", "columns", cols ? cols : json_array(), "rows", rows, "truncated", *truncated);
}

/* The statement runs as the read-only role, inside a read-only transaction
 * that is rolled back, with the extended protocol (one statement only: a
 * "COMMIT; DELETE ..." cannot step out of the transaction).  Rows are
 * fetched one by one up to QUERY_MAX_ROWS ("truncated": true when there
 * were more), so the size of a result costs this process nothing. */
static enum MHD_Result api_query(struct MHD_Connection *c, keel_app *app, json_t *in)
{
    const char *dbname = json_string_value(json_object_get(in, "database"));
    const char *sql = json_string_value(json_object_get(in, "sql"));
    if (!dbname || !sql || !*sql)
        return reply_error(c, keel_error_new(KEEL_INVALID_ARGUMENT, "give \"database\" and \"sql\""));
    if (!declared(app, dbname))
        return reply_error(c, keel_error_new(KEEL_NOT_FOUND, "no database \"%s\" in this app", dbname));
    keel_error *err = NULL;
    PGconn *conn = connect_as(dbname, KEEL_ROLE_READONLY, &err);
    if (!conn)
        return reply_error(c, err);
    PQclear(PQexec(conn, "SET statement_timeout = 10000"));
    PQclear(PQexec(conn, "BEGIN TRANSACTION READ ONLY"));
    json_t *out = NULL;
    PGresult *failed = NULL;
    bool truncated = false;
    if (PQsendQueryParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0) && PQsetSingleRowMode(conn))
        out = fetch_capped(conn, &truncated, &failed);
    if (!out) {
        /* The developer's own statement: PostgreSQL's words are what helps. */
        const char *state = failed ? PQresultErrorField(failed, PG_DIAG_SQLSTATE) : NULL;
        const char *primary = failed ? PQresultErrorField(failed, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        bool denied = state && (strcmp(state, "25006") == 0 || strcmp(state, "42501") == 0);
        err = keel_error_new(denied ? KEEL_PERMISSION_DENIED : KEEL_INVALID_ARGUMENT, "%s%s%s (the query box is read-only: it runs as %s_ro)",
                             primary ? primary : PQerrorMessage(conn), state ? ", SQLSTATE " : "", state ? state : "",
                             dbname);
    }
    PQclear(failed);
    if (PQtransactionStatus(conn) != PQTRANS_ACTIVE) /* else the cancel failed: closing ends it */
        PQclear(PQexec(conn, "ROLLBACK"));
    PQfinish(conn);
    return out ? reply_json(c, 200, out) : reply_error(c, err);
}

/* ---- /api/call ---------------------------------------------------------------------- */

/* Sends the explorer's request to the app over loopback and hands back what
 * it answered, with the trace it made. */
static enum MHD_Result api_call(struct MHD_Connection *c, keel_app *app, json_t *in)
{
    const char *method = json_string_value(json_object_get(in, "method"));
    const char *path = json_string_value(json_object_get(in, "path"));
    json_t *hdrs = json_object_get(in, "headers");
    const char *body = json_string_value(json_object_get(in, "body"));
    if (!method || !path || path[0] != '/' || strpbrk(path, " \r\n") || strpbrk(method, " \r\n:"))
        return reply_error(c, keel_error_new(KEEL_INVALID_ARGUMENT, "give \"method\" and a \"path\" starting with /"));
    size_t nh = json_is_object(hdrs) ? json_object_size(hdrs) : 0;
    char **lines = calloc(nh + 2, sizeof *lines);
    size_t n = 0;
    const char *key;
    json_t *v;
    bool bad = !lines;
    if (lines && body)
        lines[n++] = strdup("Content-Type: application/json");
    if (nh)
        json_object_foreach(hdrs, key, v) {
            const char *val = json_string_value(v);
            if (!val || !*key || strpbrk(key, " \r\n:") || strpbrk(val, "\r\n") ||
                strcasecmp(key, "Content-Length") == 0 || strcasecmp(key, "Host") == 0 ||
                strcasecmp(key, "Connection") == 0 || (body && strcasecmp(key, "Content-Type") == 0)) {
                bad = bad || (val && strpbrk(val, "\r\n"));
                continue;
            }
            lines[n++] = keel__format("%s: %s", key, val);
        }
    if (bad) {
        for (size_t i = 0; lines && i < n; i++)
            free(lines[i]);
        free(lines);
        return reply_error(c, keel_error_new(KEEL_INVALID_ARGUMENT, "a header holds a line break"));
    }
    char port[8];
    snprintf(port, sizeof port, "%u", app->port);
    keel_http_target t = {"127.0.0.1", port, "/"};
    keel_http_reply rep;
    keel_error *err = keel__http_exchange(&t, method, path, (const char *const *)lines, body, body ? strlen(body) : 0,
                                          30000, -1, &rep);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    if (err)
        return reply_error(c, err);
    json_t *headers = json_object();
    const char *trace = NULL;
    char *save = NULL;
    for (char *line = strtok_r(rep.headers, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *value = colon + 1 + strspn(colon + 1, " \t");
        for (char *p = line; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        json_object_set_new(headers, line, json_string(value));
        if (strcmp(line, "x-trace-id") == 0)
            trace = value;
    }
    json_t *out = json_pack("{s:i, s:o, s:s%, s:s?}", "status", (int)rep.status, "headers", headers, "body", rep.body,
                            rep.body_len, "trace_id", trace);
    keel__http_reply_clear(&rep);
    return reply_json(c, 200, out);
}

/* ---- routing ------------------------------------------------------------------------ */

typedef struct post_body {
    char *data;
    size_t len;
    bool too_big;
} post_body;

/* Only requests for this server by its address: a name that another site
 * rebinds to 127.0.0.1 arrives with that name as Host. */
static bool host_allowed(struct MHD_Connection *c, unsigned port)
{
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    char a[64], b[64];
    snprintf(a, sizeof a, "127.0.0.1:%u", port);
    snprintf(b, sizeof b, "localhost:%u", port);
    return host && (strcmp(host, a) == 0 || strcmp(host, b) == 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state)
{
    (void)version;
    keel_dashboard *d = cls;
    post_body *pb = *state;
    if (!pb) {
        pb = calloc(1, sizeof *pb);
        if (!pb)
            return MHD_NO;
        *state = pb;
        return MHD_YES;
    }
    if (*size) {
        if (pb->len + *size > POST_MAX) {
            pb->too_big = true;
        } else {
            char *more = realloc(pb->data, pb->len + *size + 1);
            if (!more)
                return MHD_NO;
            memcpy(more + pb->len, data, *size);
            pb->data = more;
            pb->len += *size;
            pb->data[pb->len] = '\0';
        }
        *size = 0;
        return MHD_YES;
    }
    if (!host_allowed(c, d->port))
        return reply_error(c, keel_error_new(KEEL_PERMISSION_DENIED, "the dashboard answers only at 127.0.0.1:%u", d->port));
    keel_app *app = d->app;
    if (strcmp(method, "GET") == 0) {
        if (strcmp(url, "/") == 0)
            return reply(c, 200, "text/html; charset=utf-8", keel__dashboard_html, keel__dashboard_html_len);
        if (strcmp(url, "/api/model") == 0) {
            json_t *model = keel_app_model(app);
            return model ? reply_json(c, 200, model)
                         : reply_error(c, keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory"));
        }
        keel_arena arena;
        keel_arena_init(&arena, NULL, 0);
        keel_buf b;
        keel_buf_init(&b, &arena);
        enum MHD_Result ret;
        if (strcmp(url, "/api/traces") == 0) {
            keel__observe_recent_json(app->obs, &b);
            ret = reply_buf(c, 200, &b);
        } else if (strncmp(url, "/api/traces/", 12) == 0) {
            ret = keel__observe_trace_json(app->obs, url + 12, &b)
                      ? reply_buf(c, 200, &b)
                      : reply_error(c, keel_error_new(KEEL_NOT_FOUND, "no recent trace %.40s (the dashboard keeps the "
                                                                      "latest 100)", url + 12));
        } else if (strcmp(url, "/api/databases") == 0) {
            ret = api_databases(c, app);
        } else {
            ret = reply_error(c, keel_error_new(KEEL_NOT_FOUND, "no dashboard page %.100s", url));
        }
        keel_arena_release(&arena);
        return ret;
    }
    if (strcmp(method, "POST") != 0)
        return reply_error(c, keel_error_status(keel_error_new(KEEL_UNIMPLEMENTED, "method not allowed"), 405));
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        return reply_error(c, keel_error_new(KEEL_INVALID_ARGUMENT, "send Content-Type: application/json"));
    if (pb->too_big)
        return reply_error(c, keel_error_status(keel_error_new(KEEL_INVALID_ARGUMENT, "the body is over 1 MiB"), 413));
    json_error_t je;
    json_t *in = pb->data ? json_loadb(pb->data, pb->len, 0, &je) : NULL;
    if (!json_is_object(in)) {
        json_decref(in);
        return reply_error(c, keel_error_new(KEEL_INVALID_ARGUMENT, "the body is not a JSON object"));
    }
    enum MHD_Result ret;
    if (strcmp(url, "/api/query") == 0)
        ret = api_query(c, app, in);
    else if (strcmp(url, "/api/call") == 0)
        ret = api_call(c, app, in);
    else
        ret = reply_error(c, keel_error_new(KEEL_NOT_FOUND, "no dashboard page %.100s", url));
    json_decref(in);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    post_body *pb = *state;
    if (pb) {
        free(pb->data);
        free(pb);
        *state = NULL;
    }
}

void keel__dashboard_start(keel_app *app)
{
    if (!keel__dashboard_wanted() || app->dashboard)
        return;
    const char *want = getenv("KEEL_DASHBOARD_PORT");
    char *end;
    long port = strtol(want, &end, 10);
    if (*end || port < 0 || port > 65535) {
        keel_log(KEEL_LOG_WARN, "dashboard: KEEL_DASHBOARD_PORT must be a port number (0: any free port), not \"%s\"",
                 want);
        return;
    }
    keel_dashboard *d = calloc(1, sizeof *d);
    if (!d)
        return;
    d->app = app;
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                 0, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, d, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned)60, MHD_OPTION_END);
    if (!d->daemon) {
        keel_log(KEEL_LOG_WARN, "dashboard: could not listen on 127.0.0.1:%ld (in use?): the app serves without it "
                 "(set KEEL_DASHBOARD_PORT to another port, or 0 for any)", port);
        free(d);
        return;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->daemon, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : (unsigned)port;
    app->dashboard = d;
    keel_log(KEEL_LOG_INFO, "dashboard: http://127.0.0.1:%u/", d->port);
}

void keel__dashboard_stop(keel_app *app)
{
    keel_dashboard *d = app->dashboard;
    if (!d)
        return;
    MHD_stop_daemon(d->daemon);
    free(d);
    app->dashboard = NULL;
}

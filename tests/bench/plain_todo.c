/* tests/bench/plain_todo.c - the plain libmicrohttpd + libpq program that
 * Keel's GET /todo/:id is measured against: the same query (prepared once per
 * connection) and the same JSON (jansson), written the way a hand-rolled
 * service would be: the same epoll thread pool, one connection per I/O
 * thread, the query made in the access handler.
 *
 *   plain_todo PORT CONNINFO */
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *conninfo;
static __thread PGconn *thread_conn; /* one per I/O thread, made on first use */

static PGconn *connection(void)
{
    if (thread_conn && PQstatus(thread_conn) == CONNECTION_OK)
        return thread_conn;
    if (thread_conn)
        PQfinish(thread_conn);
    thread_conn = PQconnectdb(conninfo);
    if (PQstatus(thread_conn) != CONNECTION_OK)
        return NULL;
    PGresult *r = PQprepare(thread_conn, "get_todo", "SELECT id, title, done FROM todo_item WHERE id = $1", 1, NULL);
    PQclear(r);
    return thread_conn;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)cls; (void)version; (void)upload; (void)upload_size;
    if (!*state) {
        *state = (void *)1; /* answer on the second call: keeps keep-alive */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 || strncmp(url, "/todo/", 6) != 0)
        return reply(c, 404, strdup("{\"code\":\"not_found\",\"message\":\"endpoint not found\",\"details\":null}"));
    const char *id = url + 6;
    PGconn *pg = connection();
    if (!pg)
        return reply(c, 503, strdup("{\"code\":\"unavailable\",\"message\":\"database down\",\"details\":null}"));
    PGresult *r = PQexecPrepared(pg, "get_todo", 1, &id, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) == 0) {
        PQclear(r);
        return reply(c, 404, strdup("{\"code\":\"not_found\",\"message\":\"no such todo\",\"details\":null}"));
    }
    json_t *j = json_pack("{s:I, s:s, s:b}", "id", (json_int_t)strtoll(PQgetvalue(r, 0, 0), NULL, 10), "title",
                          PQgetvalue(r, 0, 1), "done", PQgetvalue(r, 0, 2)[0] == 't');
    PQclear(r);
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return reply(c, 200, body);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: plain_todo PORT CONNINFO\n");
        return 2;
    }
    conninfo = argv[2];
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = cores < 2 ? 2 : (unsigned)cores;
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, (uint16_t)atoi(argv[1]), NULL, NULL,
                                            handle, NULL, MHD_OPTION_THREAD_POOL_SIZE, threads,
                                            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d)
        return 1;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    int sig;
    sigwait(&s, &sig);
    MHD_stop_daemon(d);
    return 0;
}

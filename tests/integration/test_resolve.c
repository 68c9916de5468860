/* tests/integration/test_resolve.c - a database host given by name, behind
 * a resolver that takes 1.5 s to answer: the I/O thread that needs a new
 * connection looks the name up off the loop, so the other requests on that
 * thread are served meanwhile (libpq looks names up inside PQconnectStart,
 * which held the whole thread for as long as the resolver took).
 *
 * The resolver is real: a small DNS server in this program on 127.0.0.77:53,
 * and the app runs in a mount namespace of its own (unshare -m) where
 * /etc/resolv.conf names it.  Needs root (port 53, the namespace); skipped
 * otherwise, and under valgrind (the app runs behind unshare). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

#define DNS_ADDR "127.0.0.77"
#define DNS_DELAY_MS 1500

static ht_server srv;
static char root[256];
static atomic_int dns_queries;
static atomic_bool dns_stop;
static int dns_fd = -1;

/* ---- a DNS server that answers every A query with 127.0.0.1, late -------- */

typedef struct pending {
    double due;
    struct sockaddr_in to;
    unsigned char msg[512];
    size_t len;
} pending;

/* The answer to query q (n bytes): its header and question, then for an A
 * query one record, 127.0.0.1; 0 when q is not a query we understand. */
static size_t dns_answer(const unsigned char *q, size_t n, unsigned char *out)
{
    if (n < 12 || n > 400)
        return 0;
    size_t i = 12;
    while (i < n && q[i]) /* the name's labels */
        i += 1 + q[i];
    if (i + 5 > n)
        return 0;
    size_t qend = i + 5; /* the 0, type and class */
    unsigned qtype = (unsigned)q[i + 1] << 8 | q[i + 2];
    memcpy(out, q, qend);
    out[2] = (unsigned char)(0x80 | (q[2] & 0x01)); /* a response; RD as asked */
    out[3] = 0x80;                                  /* recursion available, no error */
    out[6] = 0;
    out[7] = qtype == 1;                            /* answers */
    memset(out + 8, 0, 4);                          /* no authority, no additional */
    if (qtype != 1)
        return qend;
    static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
    memcpy(out + qend, rr, sizeof rr);
    return qend + sizeof rr;
}

static void *dns_main(void *arg)
{
    (void)arg;
    pending queue[64];
    size_t nq = 0;
    while (!atomic_load(&dns_stop)) {
        int wait = 100;
        for (size_t i = 0; i < nq; i++) {
            int left = (int)((queue[i].due - ht_now_s()) * 1000);
            if (left < wait)
                wait = left < 0 ? 0 : left;
        }
        struct pollfd p = {.fd = dns_fd, .events = POLLIN};
        if (poll(&p, 1, wait) > 0 && nq < 64) {
            unsigned char q[512];
            pending *pd = &queue[nq];
            socklen_t alen = sizeof pd->to;
            ssize_t got = recvfrom(dns_fd, q, sizeof q, 0, (struct sockaddr *)&pd->to, &alen);
            if (got > 0 && (pd->len = dns_answer(q, (size_t)got, pd->msg)) > 0) {
                pd->due = ht_now_s() + DNS_DELAY_MS / 1000.0;
                nq++;
                atomic_fetch_add(&dns_queries, 1);
            }
        }
        for (size_t i = 0; i < nq;) {
            if (queue[i].due <= ht_now_s()) {
                sendto(dns_fd, queue[i].msg, queue[i].len, 0, (struct sockaddr *)&queue[i].to, sizeof queue[i].to);
                queue[i] = queue[--nq];
            } else {
                i++;
            }
        }
    }
    return NULL;
}

static bool dns_start(pthread_t *th)
{
    dns_fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, DNS_ADDR, &a.sin_addr);
    if (dns_fd < 0 || bind(dns_fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (dns_fd >= 0)
            close(dns_fd);
        return false;
    }
    return pthread_create(th, NULL, dns_main, NULL) == 0;
}

/* ---- the test -------------------------------------------------------------- */

typedef struct call {
    const char *path;
    ht_response r;
} call;

static void *call_run(void *arg)
{
    call *c = arg;
    c->r = ht_request(&srv, "GET", c->path, NULL, 0, NULL);
    return NULL;
}

/* The local cluster's infra config with its host given by name. */
static bool write_named_infra(char *out, size_t len)
{
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/infra.local.json", root);
    json_t *infra = json_load_file(path, 0, NULL);
    json_t *server = json_array_get(json_object_get(infra, "sql_servers"), 0);
    if (!server) {
        json_decref(infra);
        return false;
    }
    json_object_set_new(server, "host", json_string("slowdb.keel.test"));
    snprintf(out, len, "%s/infra.named.json", root);
    umask(077);
    int rc = json_dump_file(infra, out, JSON_INDENT(2));
    json_decref(infra);
    return rc == 0;
}

int main(void)
{
    if (!getenv("KEEL_CLI") || !getenv("KEEL_DBTESTAPP") || !getenv("KEEL_SRCDIR")) {
        printf("Bail out! KEEL_CLI, KEEL_DBTESTAPP and KEEL_SRCDIR must be set (run through make check)\n");
        return 1;
    }
    if (ht_valgrind()) {
        printf("1..0 # SKIP the app runs behind unshare here, which valgrind would follow instead of it\n");
        return 0;
    }
    pthread_t dns;
    if (geteuid() != 0 || access("/usr/bin/unshare", X_OK) != 0 || !dns_start(&dns)) {
        printf("1..0 # SKIP needs root, unshare and 127.0.0.77:53 for its resolver\n");
        return 0;
    }
    setenv("KEEL_EXAMPLE", getenv("KEEL_DBTESTAPP"), 1);
    char migrations[512];
    snprintf(migrations, sizeof migrations, "%s/migrations", getenv("KEEL_SRCDIR"));
    ht_make_app_root(root, sizeof root, migrations);
    if (!ht_start_keel_run(&srv, root, NULL)) {
        printf("Bail out! keel run did not provision the databases\n");
        return 1;
    }
    is_int(ht_stop(&srv), 0, "keel run provisions the databases");

    char infra[512], resolv[400], env_infra[600], env_root[400];
    ok(write_named_infra(infra, sizeof infra), "the infra config names the server slowdb.keel.test");
    snprintf(resolv, sizeof resolv, "%s/resolv.conf", root);
    FILE *f = fopen(resolv, "w");
    fprintf(f, "nameserver " DNS_ADDR "\noptions timeout:5 attempts:1\n");
    fclose(f);
    chmod(resolv, 0644);
    snprintf(env_infra, sizeof env_infra, "KEEL_INFRA_CONFIG=%s", infra);
    snprintf(env_root, sizeof env_root, "KEEL_APP_ROOT=%s", root);
    const char *env[] = {env_infra, env_root, "KEEL_IO_THREADS=1", NULL};
    char *argv[] = {"/usr/bin/unshare", "-m", "sh", "-c", "mount --bind \"$1\" /etc/resolv.conf && exec \"$0\"",
                    getenv("KEEL_DBTESTAPP"), resolv, NULL};
    if (!ok(ht_start_cmd(&srv, argv, env, root), "the app starts, its resolver answering after %d ms", DNS_DELAY_MS)) {
        char *log = ht_log(&srv);
        diag("%s", log);
        free(log);
        return tap_done();
    }
    int before = atomic_load(&dns_queries);
    ok(before > 0, "start-up looked the name up through the slow resolver (%d queries)", before);

    /* The I/O thread's first statement needs a connection, hence a lookup. */
    call db = {.path = "/dbtest/sleep/0"};
    pthread_t th;
    double t0 = ht_now_s();
    pthread_create(&th, NULL, call_run, &db);
    usleep(200 * 1000);
    double worst = 0;
    int good = 0;
    for (int i = 0; i < 5; i++) {
        double t = ht_now_s();
        ht_response r = ht_request(&srv, "GET", "/hello/meanwhile", NULL, 0, NULL);
        t = ht_now_s() - t;
        good += r.status == 200;
        worst = t > worst ? t : worst;
        ht_free(&r);
        usleep(100 * 1000);
    }
    pthread_join(th, NULL);
    double db_took = ht_now_s() - t0;
    ok(atomic_load(&dns_queries) > before, "the statement's new connection looked the name up (%d queries)",
       atomic_load(&dns_queries) - before);
    is_int(good, 5, "5 requests on the same I/O thread are answered while it resolves");
    ok(worst < 0.5, "each in under 0.5 s (slowest %.3f s) though the lookup takes %.1f s", worst,
       DNS_DELAY_MS / 1000.0);
    is_int(db.r.status, 200, "the statement runs once the name resolves (after %.1f s)", db_took);
    ht_free(&db.r);
    ht_response r = ht_request(&srv, "GET", "/dbtest/sleep/0", NULL, 0, NULL);
    is_int(r.status, 200, "later statements reuse the connection");
    ht_free(&r);
    is_int(ht_stop(&srv), 0, "the app stops cleanly");
    atomic_store(&dns_stop, true);
    pthread_join(dns, NULL);
    close(dns_fd);
    ht_remove_app_root(root);
    return tap_done();
}

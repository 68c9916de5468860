/* db_proxy.c - `keel db proxy`: one local port (127.0.0.1:5439) for GUI
 * tools, forwarding each TCP connection byte for byte to the environment's
 * PostgreSQL server.  Locally every database lives in the one cluster; for
 * other environments the infra config must name one server (routing by the
 * startup packet's database is not implemented: the proxy refuses configs
 * with several servers).  Only TCP targets: forwarding to a Unix socket
 * would hand every local user the proxy user's socket access, which peer
 * and trust authentication turn into its database identity.  One thread per
 * connection pair keeps it simple; SIGINT/SIGTERM stop accepting and exit 0,
 * closing open sessions. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "local_pg.h"

#define CMD "keel db proxy"
#define DEFAULT_PORT 5439

/* Where connections go: a TCP host and port. */
typedef struct target {
    char host[512];
    char port[24];
} target;

static target dest;
static int wake_pipe[2] = {-1, -1};
static atomic_int open_pairs;

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    ssize_t w = write(wake_pipe[1], "x", 1);
    (void)w;
    errno = saved;
}

/* The single server of a non-local infra config; CLI_OK, or the exit status
 * after printing why not. */
static int infra_target(const keel_infra *infra)
{
    const char *path = keel__infra_path(infra), *host = NULL;
    unsigned port = 0;
    size_t n = keel__infra_servers(infra);
    if (n != 1) {
        fprintf(stderr, CMD ": %s lists %zu servers; the proxy forwards to exactly one (run one proxy per "
                        "environment with a single-server infra config)\n", path, n);
        return CLI_FAILED;
    }
    keel_error *err = keel__infra_server(infra, 0, &host, &port);
    if (err)
        return cli_fail(CMD, err);
    /* libpq takes a host starting with / as a socket folder, and one
     * starting with @ as an abstract socket. */
    if (host[0] == '/' || host[0] == '@') {
        fprintf(stderr, CMD ": %s: the server's host \"%s\" is a Unix socket; the proxy forwards to TCP servers "
                        "only (anyone who reached the proxy's port would connect with this user's socket access: "
                        "peer or trust authentication). Use psql or keel db shell on the socket directly.\n",
                path, host);
        return CLI_USAGE;
    }
    snprintf(dest.host, sizeof dest.host, "%s", host);
    snprintf(dest.port, sizeof dest.port, "%u", port ? port : 5432);
    return CLI_OK;
}

/* Decides the target from --env like the other db commands do; CLI_OK, or
 * the exit status after printing why not. */
static int find_target(const char *env)
{
    const char *given = getenv("KEEL_INFRA_CONFIG");
    bool use_infra = cli_env_is_local(env) ? !env && given && *given : true;
    if (use_infra) {
        keel_infra *infra = cli_open_infra(CMD, env); /* checks env and file */
        int rc = infra ? infra_target(infra) : CLI_FAILED;
        keel__infra_free(infra);
        return rc;
    }
    /* The local cluster listens on 127.0.0.1 too: its TCP port needs a
     * password, unlike its socket. */
    local_pg pg;
    keel_error *err = local_pg_locate(keel_app_root(), &pg);
    if (err)
        return cli_fail(CMD, err);
    snprintf(dest.host, sizeof dest.host, "127.0.0.1");
    snprintf(dest.port, sizeof dest.port, "%u", pg.port);
    return CLI_OK;
}

/* A connected socket to the target, or -1. */
static int connect_target(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(dest.host, dest.port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Copies what is readable on from to to; false at end of stream or error. */
static bool copy_some(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        off += w;
    }
    return true;
}

/* One client: connects upstream and shuttles bytes both ways until either
 * side closes (PostgreSQL sessions end with both sides closing anyway). */
static void *pair_thread(void *arg)
{
    int client = (int)(intptr_t)arg;
    int up = connect_target();
    if (up < 0) {
        fprintf(stderr, CMD ": cannot reach %s:%s: %s\n", dest.host, dest.port, strerror(errno));
    } else {
        struct pollfd p[2] = {{.fd = client, .events = POLLIN}, {.fd = up, .events = POLLIN}};
        bool alive = true;
        while (alive) {
            if (poll(p, 2, -1) < 0) {
                alive = errno == EINTR;
                continue;
            }
            if (p[0].revents)
                alive = copy_some(client, up);
            if (alive && p[1].revents)
                alive = copy_some(up, client);
        }
        close(up);
    }
    close(client);
    atomic_fetch_sub(&open_pairs, 1);
    return NULL;
}

static int listen_on(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
        fprintf(stderr, CMD ": cannot listen on 127.0.0.1:%u: %s\n", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}

/* SIGINT/SIGTERM wake the accept loop through a pipe; SIGPIPE (a client
 * gone mid-write) must not kill the proxy. */
static bool install_signals(void)
{
    if (pipe2(wake_pipe, O_CLOEXEC) != 0)
        return false;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return true;
}

static void start_pair(int client, unsigned long *served)
{
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    atomic_fetch_add(&open_pairs, 1);
    if (pthread_create(&t, &attr, pair_thread, (void *)(intptr_t)client) != 0) {
        atomic_fetch_sub(&open_pairs, 1);
        close(client);
    } else {
        (*served)++;
    }
    pthread_attr_destroy(&attr);
}

static void accept_loop(int lfd)
{
    unsigned long served = 0;
    struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = wake_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (c >= 0)
            start_pair(c, &served);
    }
    fprintf(stderr, CMD ": stopped after %lu connection%s (%d still open, now closed)\n", served,
            served == 1 ? "" : "s", atomic_load(&open_pairs));
}

/* A port number 0-65535 (0: any free port); -1 when s is not one. */
static long parse_port(const char *s)
{
    char *end;
    long n = strtol(s, &end, 10);
    return *s && !*end && n >= 0 && n <= 65535 ? n : -1;
}

int cli_db_proxy(int argc, char **argv)
{
    const char *env = NULL;
    long port = DEFAULT_PORT;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
            env = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc && (port = parse_port(argv[++i])) >= 0) {
            continue;
        } else {
            cli_print_usage(stderr, "db");
            return CLI_USAGE;
        }
    }
    int rc = find_target(env);
    if (rc != CLI_OK)
        return rc;
    int lfd = listen_on((unsigned)port);
    if (lfd < 0 || !install_signals())
        return CLI_FAILED;
    fprintf(stderr, CMD ": listening on 127.0.0.1:%u, forwarding to %s:%s (Ctrl-C stops)\n", bound_port(lfd),
            dest.host, dest.port);
    accept_loop(lfd);
    close(lfd);
    return CLI_OK;
}

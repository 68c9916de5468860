/* services/legacy/standalone.c - the legacy backend's own main, as it ran
 * before Keel: its own libmicrohttpd daemon on PORT (environment) or argv[1]
 * (0: any free port), an epoll thread, legacy_completed as the
 * request-completed callback.  SIGTERM or SIGINT stops it (exit 0). */
#include "legacy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *port_s = argc > 1 ? argv[1] : getenv("PORT");
    char *end;
    long port = strtol(port_s && *port_s ? port_s : "8081", &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "legacy: bad port \"%s\"\n", port_s);
        return 2;
    }
    const char *host = getenv("LEGACY_HOST") ? getenv("LEGACY_HOST") : "127.0.0.1";
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "legacy: bad host \"%s\"\n", host);
        return 2;
    }

    /* Block the stop signals before the daemon's thread exists, then wait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    legacy_state *st = legacy_state_new();
    if (!st)
        return 1;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        legacy_handler, st,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, legacy_completed, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "legacy: cannot listen on %s:%ld\n", host, port);
        legacy_state_free(st);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(stderr, "legacy: listening on http://%s:%u\n", host, info ? (unsigned)info->port : (unsigned)port);

    int sig = 0;
    sigwait(&stop, &sig);
    MHD_stop_daemon(d);
    fprintf(stderr, "legacy: stopped (signal %d), %ld live request states\n", sig, legacy_live_requests());
    int rc = legacy_live_requests() == 0 ? 0 : 1;
    legacy_state_free(st);
    return rc;
}

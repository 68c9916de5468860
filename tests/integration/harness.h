/* tests/integration/harness.h - starts a real Keel app binary on a free port
 * and sends it real HTTP requests with libcurl.  With KEEL_TEST_VALGRIND=1 the
 * app runs under valgrind and ht_stop reports leaks or errors as a non-zero
 * exit status. */
#ifndef KEEL_TEST_HARNESS_H
#define KEEL_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct ht_server {
    pid_t pid;
    unsigned port;
    char log_path[256];   /* the app's stderr */
    char vg_path[256];    /* valgrind's report, when used */
    bool valgrind;
} ht_server;

typedef struct ht_response {
    long status;          /* 0 when the request failed at the transport level */
    char *body;           /* NUL-terminated, malloc'd */
    size_t len;
    char *headers;        /* raw response headers, malloc'd */
    double seconds;       /* total time */
} ht_response;

/* Starts binary with extra environment entries ("NAME=value", NULL-ended) and
 * waits until it listens.  Returns false (with a diagnostic) on failure. */
bool ht_start(ht_server *srv, const char *binary, const char *const *env);

/* Like ht_start, but runs argv (argv[0] is the program) in folder cwd (NULL:
 * the current one).  Under valgrind, a `keel run` command runs natively and
 * puts the app it starts under valgrind (KEEL_RUN_WRAPPER). */
bool ht_start_cmd(ht_server *srv, char *const *argv, const char *const *env, const char *cwd);

/* Makes a fresh app root under /tmp (0711, so that the postgres user can
 * reach the cluster keel run puts in it) with a copy of migrations_src as its
 * migrations/ (a copy: tests may change it).  out receives the path. */
bool ht_make_app_root(char *out, size_t len, const char *migrations_src);

/* Starts `keel run --app $KEEL_EXAMPLE` in app_root with KEEL_APP_ROOT set,
 * plus extra_env ("NAME=value", NULL-ended; may be NULL). */
bool ht_start_keel_run(ht_server *srv, const char *app_root, const char *const *extra_env);

/* Stops (start=false, fast shutdown) or starts the cluster keel run made for
 * app_root, with pg_ctl as an operator would; true on success. */
bool ht_cluster_ctl(const char *app_root, bool start);

/* A streaming replica of app_root's cluster (pg_basebackup -R, as the
 * postgres user) in a new folder, started on a free port on 127.0.0.1:
 * its folder in dir and its port in *port.  ht_replica_ctl stops or starts
 * it again; ht_replica_remove stops it and removes the folder. */
bool ht_replica_make(const char *app_root, char *dir, size_t len, unsigned *port);
bool ht_replica_ctl(const char *dir, unsigned port, bool start);
void ht_replica_remove(const char *dir);

/* A TCP port on 127.0.0.1 that nothing listens on now. */
unsigned ht_free_port(void);

/* Stops app_root's cluster (if any) and removes the folder. */
void ht_remove_app_root(const char *app_root);

/* Runs a shell command; returns its standard output (malloc'd) and, when
 * status is given, its exit status. */
char *ht_shell(const char *cmd, int *status);

/* Sends SIGTERM and waits; returns the exit status (or 128+signal). */
int ht_stop(ht_server *srv);

/* Sends a request.  body may be NULL; headers is a NULL-ended list of
 * "Name: value" lines or NULL.  A body goes as Content-Type:
 * application/json unless headers name another ("Content-Type:" alone
 * sends none).  Frees nothing: call ht_free. */
ht_response ht_request(const ht_server *srv, const char *method, const char *path,
                       const char *body, size_t body_len, const char *const *headers);
void ht_free(ht_response *r);

/* The value of a response header (case-insensitive), copied into out. */
bool ht_header(const ht_response *r, const char *name, char *out, size_t out_len);

/* The server's log so far, malloc'd. */
char *ht_log(const ht_server *srv);

/* Resident-set high-water mark of the server, in KiB (VmHWM). */
long ht_peak_rss_kib(const ht_server *srv);

/* Why growth of the server's memory means nothing in this pass (valgrind,
 * or ASan's quarantine of freed memory), as a skip reason; NULL when it
 * can be measured. */
const char *ht_rss_unmeasured(void);

/* A connected TCP socket to the server, or -1. */
int ht_connect(const ht_server *srv);

/* A TCP socket to the server from the loopback address src (127.0.0.2, ...:
 * another client as far as the server can tell), with a receive timeout;
 * -1 when it cannot connect. */
int ht_connect_from(const ht_server *srv, const char *src);

/* ht_connect with send and receive timeouts of timeout_s seconds. */
int ht_raw_connect(const ht_server *srv, unsigned timeout_s);

/* Sends len bytes of spaces in 64 KiB pieces; returns how many went before
 * the peer stopped taking them. */
size_t ht_send_filler(int fd, size_t len);

/* Reads until end of file, an error or the receive timeout; *eof says whether
 * the peer closed cleanly.  Caller frees; never NULL. */
char *ht_recv_all(int fd, bool *eof);

/* Seconds on the monotonic clock: for measuring how long something took. */
double ht_now_s(void);

/* True when running under valgrind (slower: tests loosen their timings). */
bool ht_valgrind(void);

#endif

/* tests/integration/harness.c - see harness.h. */
#include "harness.h"
#include "sql/pg_bin.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bool ht_valgrind(void)
{
    const char *v = getenv("KEEL_TEST_VALGRIND");
    return v && strcmp(v, "1") == 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    size_t got;
    while ((got = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2)
            s = realloc(s, cap *= 2);
    }
    s[len] = '\0';
    fclose(f);
    return s;
}

char *ht_log(const ht_server *srv)
{
    return read_file(srv->log_path);
}

/* Finds "listening on http://HOST:PORT" in the log; 0 until it appears. */
static unsigned listening_port(const ht_server *srv)
{
    char *log = ht_log(srv);
    unsigned port = 0;
    char *p = strstr(log, "listening on http://");
    if (p) {
        p = strchr(p + strlen("listening on http://"), ':');
        if (p)
            port = (unsigned)strtoul(p + 1, NULL, 10);
    }
    free(log);
    return port;
}

bool ht_start(ht_server *srv, const char *binary, const char *const *env)
{
    char *argv[] = {(char *)binary, NULL};
    return ht_start_cmd(srv, argv, env, NULL);
}

bool ht_start_cmd(ht_server *srv, char *const *argv, const char *const *env, const char *cwd)
{
    static int serial;
    memset(srv, 0, sizeof *srv);
    srv->valgrind = ht_valgrind();
    snprintf(srv->log_path, sizeof srv->log_path, "/tmp/keel-test-%d-%d.log", (int)getpid(), serial);
    snprintf(srv->vg_path, sizeof srv->vg_path, "/tmp/keel-test-%d-%d.vg", (int)getpid(), serial++);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int fd = open(srv->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        setenv("PORT", "0", 1);
        setenv("KEEL_HOST", "127.0.0.1", 1);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        char logopt[300];
        snprintf(logopt, sizeof logopt, "--log-file=%s.%%p", srv->vg_path);
        static const char *const vg_opts[] = {"-q", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                                              "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99"};
        bool through_keel_run = argv[1] && strcmp(argv[1], "run") == 0;
        if (srv->valgrind && through_keel_run) {
            /* keel run itself runs natively and puts the app under valgrind. */
            char wrapper[600];
            snprintf(wrapper, sizeof wrapper, "valgrind %s %s %s %s %s %s", vg_opts[0], vg_opts[1], vg_opts[2],
                     vg_opts[3], vg_opts[4], logopt);
            setenv("KEEL_RUN_WRAPPER", wrapper, 1);
            execv(argv[0], argv);
        } else if (srv->valgrind) {
            char *vg[64] = {"valgrind", (char *)vg_opts[0], (char *)vg_opts[1], (char *)vg_opts[2],
                            (char *)vg_opts[3], (char *)vg_opts[4], logopt};
            size_t n = 7;
            for (size_t i = 0; argv[i] && n < 63; i++)
                vg[n++] = argv[i];
            vg[n] = NULL;
            execvp("valgrind", vg);
        } else {
            execv(argv[0], argv);
        }
        _exit(127);
    }
    srv->pid = pid;
    int waited_ms = 0, limit_ms = srv->valgrind ? 90000 : 45000;
    while (waited_ms < limit_ms) {
        srv->port = listening_port(srv);
        if (srv->port)
            return true;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *log = ht_log(srv);
            fprintf(stdout, "# app exited during start-up:\n# %s\n", log);
            free(log);
            srv->pid = 0;
            return false;
        }
        usleep(20000);
        waited_ms += 20;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    srv->pid = 0;
    return false;
}

int ht_stop(ht_server *srv)
{
    if (!srv->pid)
        return -1;
    kill(srv->pid, SIGTERM);
    int status = 0;
    waitpid(srv->pid, &status, 0);
    srv->pid = 0;
    if (srv->valgrind) {
        /* One report per traced process: <vg_path>.<pid>. */
        char cmd[600];
        snprintf(cmd, sizeof cmd, "cat %s.* 2>/dev/null; rm -f %s.*", srv->vg_path, srv->vg_path);
        FILE *p = popen(cmd, "r");
        char line[1024];
        bool header = false;
        while (p && fgets(line, sizeof line, p)) {
            if (!header)
                printf("# valgrind report:\n");
            header = true;
            printf("# %s", line);
        }
        if (p)
            pclose(p);
    }
    unlink(srv->log_path);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

struct growbuf {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *cls)
{
    struct growbuf *b = cls;
    size_t add = size * n;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, ptr, add);
    b->data = d;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

ht_response ht_request(const ht_server *srv, const char *method, const char *path,
                       const char *body, size_t body_len, const char *const *headers)
{
    ht_response r = {0, NULL, 0, NULL, 0};
    struct growbuf b = {calloc(1, 1), 0}, h = {calloc(1, 1), 0};
    size_t url_len = strlen(path) + 32; /* paths may be long (tests of 30 KB paths) */
    char *url = malloc(url_len);
    snprintf(url, url_len, "http://127.0.0.1:%u%s", srv->port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *list = NULL;
    bool typed = false;
    for (size_t i = 0; headers && headers[i]; i++) {
        list = curl_slist_append(list, headers[i]);
        typed = typed || strncasecmp(headers[i], "Content-Type:", 13) == 0;
    }
    if (body && !typed) /* curl would say application/x-www-form-urlencoded */
        list = curl_slist_append(list, "Content-Type: application/json");
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, ht_valgrind() ? 120L : 30L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &r.seconds);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    free(url);
    r.body = b.data;
    r.len = b.len;
    r.headers = h.data;
    return r;
}

void ht_free(ht_response *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

bool ht_header(const ht_response *r, const char *name, char *out, size_t out_len)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t len = (size_t)(eol - v);
            if (len >= out_len)
                len = out_len - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return true;
        }
        line = eol + 2;
    }
    return false;
}

long ht_peak_rss_kib(const ht_server *srv)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)srv->pid);
    char *s = read_file(path);
    char *p = strstr(s, "VmHWM:");
    long kib = p ? strtol(p + 6, NULL, 10) : -1;
    free(s);
    return kib;
}

const char *ht_rss_unmeasured(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return "memory is not measured under ASan (freed memory stays in its quarantine)";
#else
    return ht_valgrind() ? "memory is not measured under valgrind" : NULL;
#endif
}

int ht_connect(const ht_server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)srv->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

double ht_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ht_connect_from(const ht_server *srv, const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {ht_valgrind() ? 30 : 5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int ht_raw_connect(const ht_server *srv, unsigned timeout_s)
{
    int fd = ht_connect(srv);
    struct timeval tv = {(time_t)timeout_s, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    return fd;
}

size_t ht_send_filler(int fd, size_t len)
{
    static char piece[65536];
    memset(piece, ' ', sizeof piece);
    size_t sent = 0;
    while (sent < len) {
        size_t n = len - sent < sizeof piece ? len - sent : sizeof piece;
        ssize_t w = send(fd, piece, n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    return sent;
}

char *ht_recv_all(int fd, bool *eof)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    *eof = false;
    for (;;) {
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n == 0)
            *eof = true;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

bool ht_make_app_root(char *out, size_t len, const char *migrations_src)
{
    snprintf(out, len, "/tmp/keel-root-XXXXXX");
    if (!mkdtemp(out))
        return false;
    chmod(out, 0711);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s/migrations'", migrations_src, out);
    if (system(cmd) != 0) {
        printf("# could not copy migrations\n");
        return false;
    }
    return true;
}

bool ht_start_keel_run(ht_server *srv, const char *app_root, const char *const *extra_env)
{
    char *argv[] = {getenv("KEEL_CLI"), "run", "--app", getenv("KEEL_EXAMPLE"), NULL};
    static char env_root[300];
    snprintf(env_root, sizeof env_root, "KEEL_APP_ROOT=%s", app_root);
    const char *env[16] = {env_root};
    size_t n = 1;
    for (size_t i = 0; extra_env && extra_env[i] && n < 15; i++)
        env[n++] = extra_env[i];
    env[n] = NULL;
    return ht_start_cmd(srv, argv, env, app_root);
}

char *ht_shell(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    size_t cap = 8192, len = 0, got;
    char *out = malloc(cap);
    while (p && (got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    int st = p ? pclose(p) : -1;
    if (status)
        *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

bool ht_cluster_ctl(const char *app_root, bool start)
{
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/pg.json", app_root);
    json_t *j = json_load_file(path, 0, NULL);
    const char *dir = json_string_value(json_object_get(j, "cluster"));
    json_int_t port = json_integer_value(json_object_get(j, "port"));
    const char *bin = keel__pg_bindir() ? keel__pg_bindir() : "";
    char cmd[2048];
    if (start)
        snprintf(cmd, sizeof cmd,
                 "runuser -u postgres -- '%s/pg_ctl' -D '%s/data' -l '%s/server.log' -w "
                 "-o '-c listen_addresses=127.0.0.1 -p %lld -k %s/run' start >/dev/null 2>&1",
                 bin, dir, dir, (long long)port, dir);
    else
        snprintf(cmd, sizeof cmd,
                 "runuser -u postgres -- '%s/pg_ctl' -D '%s/data' -w -m fast stop >/dev/null 2>&1", bin, dir);
    bool ok = dir && system(cmd) == 0;
    json_decref(j);
    return ok;
}

unsigned ht_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

bool ht_replica_ctl(const char *dir, unsigned port, bool start)
{
    const char *bin = keel__pg_bindir() ? keel__pg_bindir() : "";
    char cmd[2048];
    if (start)
        snprintf(cmd, sizeof cmd,
                 "runuser -u postgres -- '%s/pg_ctl' -D '%s/data' -l '%s/server.log' -w "
                 "-o '-c listen_addresses=127.0.0.1 -p %u -k %s/run' start >/dev/null 2>&1",
                 bin, dir, dir, port, dir);
    else
        snprintf(cmd, sizeof cmd, "runuser -u postgres -- '%s/pg_ctl' -D '%s/data' -w -m fast stop >/dev/null 2>&1",
                 bin, dir);
    return system(cmd) == 0;
}

bool ht_replica_make(const char *app_root, char *dir, size_t len, unsigned *port)
{
    char path[400];
    snprintf(path, sizeof path, "%s/.keel/pg.json", app_root);
    json_t *j = json_load_file(path, 0, NULL);
    const char *cluster = json_string_value(json_object_get(j, "cluster"));
    json_int_t primary = json_integer_value(json_object_get(j, "port"));
    snprintf(dir, len, "/tmp/keel-replica-XXXXXX");
    bool ok = cluster && mkdtemp(dir);
    char cmd[3000];
    if (ok) {
        const char *bin = keel__pg_bindir() ? keel__pg_bindir() : "";
        snprintf(cmd, sizeof cmd,
                 "mkdir -p '%s/run' && chown -R postgres: '%s' && "
                 "runuser -u postgres -- '%s/pg_basebackup' -h '%s/run' -p %lld -U postgres -D '%s/data' -R "
                 "-X stream --checkpoint=fast --no-sync >'%s/basebackup.log' 2>&1",
                 dir, dir, bin, cluster, (long long)primary, dir, dir);
        ok = system(cmd) == 0;
        if (!ok)
            printf("# pg_basebackup failed: see %s/basebackup.log\n", dir);
    }
    json_decref(j);
    *port = ok ? ht_free_port() : 0;
    return ok && *port && ht_replica_ctl(dir, *port, true);
}

void ht_replica_remove(const char *dir)
{
    ht_replica_ctl(dir, 0, false);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", dir);
}

void ht_remove_app_root(const char *app_root)
{
    if (!ht_cluster_ctl(app_root, false))
        printf("# could not stop the cluster of %s\n", app_root);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", app_root);
    if (system(cmd) != 0)
        printf("# could not remove %s\n", app_root);
}

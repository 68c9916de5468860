/* local_pg.c - the embedded local PostgreSQL cluster: creation (initdb),
 * start (pg_ctl), the lock that keeps concurrent keel processes apart, and
 * provisioning of databases and roles.  See local_pg.h.
 *
 * keel often runs as root while the postgres user owns the cluster folder, so
 * anything in that folder may be a symlink postgres put there: root opens
 * nothing in it without O_NOFOLLOW, changes owners with fchown on what it
 * opened, and the cluster's logs are opened as postgres. */
#include "local_pg.h"
#include "../lib/sql/pg_bin.h"
#include "../lib/sql/migrate_lock.h"
#include "../lib/sql/pg_error.h"
#include "../lib/wipe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FIRST_PORT 55432u

/* Room kept after the app root and the cluster folder for the names keel
 * puts under them (".keel/infra.local.json.tmp.<pid>", "data/PG_VERSION"). */
#define PATH_ROOM 128

/* Formats a path; false when it does not fit (it is never truncated: a
 * truncated path names another file). */
static bool path_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool path_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < len;
}

static keel_error *too_long(const char *what)
{
    return keel_error_new(KEEL_FAILED_PRECONDITION, "the path of %s is too long (move the app to a shorter path)",
                          what);
}

/* The path of PostgreSQL's program name in out; false when PostgreSQL's
 * server programs are not installed or the path does not fit. */
static bool pg_program(char *out, size_t len, const char *name)
{
    const char *bin = keel__pg_bindir();
    return bin && path_fmt(out, len, "%s/%s", bin, name);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Runs argv (as the postgres user when we are root), output appended to log
 * (or discarded).  Returns the exit status, or -1 when it cannot run. */
/* The environment PostgreSQL's tools run with: a search path and the locale,
 * nothing else.  Whatever else keel has (KEEL_SECRETS_KEY, KEEL_SECRET_*)
 * would otherwise live on in the postmaster's environment, readable through
 * /proc and COPY ... FROM PROGRAM 'env'. */
static void pg_tool_env(char **env, size_t cap, char *storage, size_t storage_len)
{
    static const char *const keep[] = {"LANG", "LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "TZ"};
    size_t n = 0, used = 0;
    env[n++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (size_t i = 0; i < sizeof keep / sizeof *keep && n + 1 < cap; i++) {
        const char *v = getenv(keep[i]);
        if (!v)
            continue;
        int w = snprintf(storage + used, storage_len - used, "%s=%s", keep[i], v);
        if (w < 0 || (size_t)w >= storage_len - used)
            break;
        env[n++] = storage + used;
        used += (size_t)w + 1;
    }
    env[n] = NULL;
}

/* Opens a tool's log as the cluster's owner (root only borrows that
 * identity here; runuser takes it for good), without following a symlink:
 * the log lives in the owner's folder, and root must not append where the
 * owner could not. */
static int open_tool_log(const char *log, uid_t uid, gid_t gid)
{
    if (!log)
        return open("/dev/null", O_WRONLY | O_CLOEXEC);
    uid_t euid = geteuid();
    gid_t egid = getegid();
    bool borrow = euid == 0 && uid != 0;
    if (borrow && (setgroups(1, &gid) != 0 || setegid(gid) != 0 || seteuid(uid) != 0))
        return -1;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    int saved = errno;
    if (borrow && (seteuid(euid) != 0 || setegid(egid) != 0)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        close(fd);
        fd = -1;
        saved = EINVAL;
    }
    errno = saved;
    return fd;
}

static int run_pg_tool(char *const argv[], const char *log)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (log && uid == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw)
            return -1;
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open_tool_log(log, uid, gid);
        if (fd < 0 && log) {
            fprintf(stderr, "keel: cannot open %s as the cluster's owner: %s\n", log, strerror(errno));
            _exit(127);
        }
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char *env[8];
        char storage[1024];
        pg_tool_env(env, sizeof env / sizeof *env, storage, sizeof storage);
        if (geteuid() == 0) {
            char *full[32] = {"runuser", "-u", "postgres", "--"};
            size_t i = 0;
            for (; argv[i] && i < 27; i++)
                full[4 + i] = argv[i];
            full[4 + i] = NULL;
            execvpe("runuser", full, env);
        } else {
            execve(argv[0], argv, env);
        }
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The uid/gid that will own the cluster: postgres when root, else ourselves. */
static keel_error *cluster_owner(uid_t *uid, gid_t *gid)
{
    if (geteuid() != 0) {
        *uid = geteuid();
        *gid = getegid();
        return NULL;
    }
    struct passwd *pw = getpwnam("postgres");
    if (!pw)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "cannot create the PostgreSQL cluster: there is no \"postgres\" system user "
                              "(install PostgreSQL 15: apt-get install -y postgresql)");
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return NULL;
}

/* True when the postgres user can enter dir (it cannot enter /root, say). */
static bool owner_can_enter(const char *dir)
{
    if (geteuid() != 0)
        return true;
    char *argv[] = {"/usr/bin/test", "-x", (char *)dir, NULL};
    return run_pg_tool(argv, NULL) == 0;
}

/* True when PostgreSQL could listen on 127.0.0.1:port.  The probe binds as
 * PostgreSQL's own listen socket does, with SO_REUSEADDR: the connections of
 * a cluster just stopped linger in TIME_WAIT on its port, and a plain bind
 * would call the port taken and move the cluster away from the port the
 * running app knows. */
static bool port_free(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    int one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
              bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static keel_error *ensure(const char *root, local_pg *pg);

/* Fills pg->root with the canonical app root and pg->state_dir, refusing a
 * root too long for the paths keel derives from it. */
static keel_error *set_root(local_pg *pg, const char *given)
{
    char *real = realpath(given, NULL);
    if (!real)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "app root %s: %s", given, strerror(errno));
    size_t len = strlen(real);
    keel_error *err = NULL;
    if (len + PATH_ROOM >= sizeof pg->root)
        err = keel_error_new(KEEL_FAILED_PRECONDITION,
                             "the app root is too long: its canonical path (%.60s...) has %zu bytes, and keel keeps "
                             "its files under it in paths of at most %zu bytes (move the app to a shorter path)",
                             real, len, sizeof pg->root - 1);
    else if (!path_fmt(pg->root, sizeof pg->root, "%s", real) ||
             !path_fmt(pg->state_dir, sizeof pg->state_dir, pg->test ? "%s/.keel/test" : "%s/.keel", real))
        err = too_long("the app root");
    free(real);
    return err;
}

/* Reads .keel/pg.json (where the cluster lives and its port), if present. */
static bool read_location(local_pg *pg)
{
    char path[PATH_MAX];
    if (!path_fmt(path, sizeof path, "%s/pg.json", pg->state_dir))
        return false;
    json_t *j = json_load_file(path, 0, NULL);
    const char *dir = json_string_value(json_object_get(j, "cluster"));
    json_int_t port = json_integer_value(json_object_get(j, "port"));
    bool ok = dir && dir[0] == '/' && port > 0 && port < 65536 && strlen(dir) + PATH_ROOM < sizeof pg->pg_dir &&
              path_fmt(pg->pg_dir, sizeof pg->pg_dir, "%s", dir);
    if (ok)
        pg->port = (unsigned)port;
    json_decref(j);
    return ok;
}

/* PostgreSQL's socket is <pg_dir>/run/.s.PGSQL.<port>, and a Unix socket's
 * path must fit in sun_path with its NUL: refuse here, with the reason,
 * rather than let the server fail to start. */
static keel_error *set_socket_dir(local_pg *pg)
{
    struct sockaddr_un a;
    if (!path_fmt(pg->socket_dir, sizeof pg->socket_dir, "%s/run", pg->pg_dir))
        return too_long("the cluster folder");
    size_t need = strlen(pg->socket_dir) + strlen("/.s.PGSQL.65535");
    if (need >= sizeof a.sun_path)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "the path of the PostgreSQL socket (%s/.s.PGSQL.<port>) would be too long: %zu bytes, "
                              "and a Unix socket's path has at most %zu (move the app to a shorter path)",
                              pg->socket_dir, need, sizeof a.sun_path - 1);
    return NULL;
}

keel_error *local_pg_write_private(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    if (!path_fmt(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()))
        return too_long(path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return keel_error_new(KEEL_INTERNAL, "cannot write %s: %s", path, strerror(errno));
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return keel_error_new(KEEL_INTERNAL, "cannot write %s: %s", path, strerror(errno));
    }
    return NULL;
}

/* Writes .keel/pg.json: where the cluster lives and its port. */
static keel_error *save_location(const local_pg *pg)
{
    json_t *j = json_pack("{s:s, s:i}", "cluster", pg->pg_dir, "port", (json_int_t)pg->port);
    char *text = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    char path[PATH_MAX];
    keel_error *err = path_fmt(path, sizeof path, "%s/pg.json", pg->state_dir) ? local_pg_write_private(path, text)
                                                                               : too_long(".keel/pg.json");
    free(text);
    return err;
}

/* Chooses a free loopback port for the cluster and records it. */
static keel_error *pick_port(local_pg *pg)
{
    pg->port = 0;
    for (unsigned p = FIRST_PORT; p < FIRST_PORT + 200; p++)
        if (port_free(p)) {
            pg->port = p;
            break;
        }
    if (!pg->port)
        return keel_error_new(KEEL_UNAVAILABLE, "cannot start PostgreSQL: ports %u-%u on 127.0.0.1 are all taken",
                              FIRST_PORT, FIRST_PORT + 199);
    return save_location(pg);
}

/* A short name for the app root: 16 hex digits of its hash. */
static void root_hash(const local_pg *pg, char hex[17])
{
    unsigned char hash[8];
    crypto_generichash(hash, sizeof hash, (const unsigned char *)pg->root, strlen(pg->root), NULL, 0);
    sodium_bin2hex(hex, 17, hash, sizeof hash);
}

/* True when /dev/shm is a memory file system we may create in. */
static bool shm_usable(void)
{
    struct statfs fs;
    return statfs("/dev/shm", &fs) == 0 && fs.f_type == 0x01021994 /* TMPFS_MAGIC */ && access("/dev/shm", W_OK) == 0;
}

/* Decides where the cluster lives (under .keel/pg when the postgres user can
 * reach it, else under /var/lib/keel; the test cluster in memory, under
 * /dev/shm, when it can) and which port it uses. */
static keel_error *choose_location(local_pg *pg)
{
    if (read_location(pg))
        return set_socket_dir(pg);
    if (pg->test && shm_usable()) {
        /* Its databases are copied from templates at every test: on a
         * memory file system a copy takes a few milliseconds, on a disk
         * tens.  Lost at a reboot, it is made again by the next keel test. */
        char hex[17];
        root_hash(pg, hex);
        snprintf(pg->pg_dir, sizeof pg->pg_dir, "/dev/shm/keel-test-%s", hex);
    } else if (owner_can_enter(pg->state_dir)) {
        if (!path_fmt(pg->pg_dir, sizeof pg->pg_dir, "%s/pg", pg->state_dir))
            return too_long("the app root");
    } else {
        char hex[17];
        root_hash(pg, hex);
        mkdir("/var/lib/keel", 0711);
        snprintf(pg->pg_dir, sizeof pg->pg_dir, "/var/lib/keel/%s", hex);
        fprintf(stderr, "note: the postgres user cannot enter %s; the cluster lives in %s\n", pg->root,
                pg->pg_dir);
    }
    keel_error *err = set_socket_dir(pg);
    return err ? err : pick_port(pg);
}

/* Opens directory name (relative to at) without following a symlink,
 * creating it (0700) when missing, and makes sure the cluster's owner owns
 * it: one we just created is handed over with fchown; one that was there
 * must be the owner's already (chown by path would follow a symlink the
 * owner placed and give away its target).  Returns the descriptor, or -1
 * with *err set; shown is the path for messages. */
static int owned_dir(int at, const char *name, const char *shown, uid_t uid, gid_t gid, keel_error **err)
{
    bool created = mkdirat(at, name, 0700) == 0;
    if (!created && errno != EEXIST) {
        *err = keel_error_new(KEEL_FAILED_PRECONDITION, "cannot create %s: %s", shown, strerror(errno));
        return -1;
    }
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        if (e == ELOOP || e == ENOTDIR)
            *err = keel_error_new(KEEL_FAILED_PRECONDITION,
                                  "refusing to use %s: it is a symlink or not a directory (remove it and run keel "
                                  "again)",
                                  shown);
        else
            *err = keel_error_new(KEEL_FAILED_PRECONDITION, "cannot open %s: %s", shown, strerror(e));
        return -1;
    }
    if (st.st_uid != uid) {
        bool ours = created && st.st_uid == geteuid();
        if (!ours || fchown(fd, uid, gid) != 0) {
            *err = keel_error_new(KEEL_FAILED_PRECONDITION,
                                  "refusing to use %s: it belongs to uid %u, not to the cluster's owner (uid %u)%s%s",
                                  shown, (unsigned)st.st_uid, (unsigned)uid, ours ? ": " : "",
                                  ours ? strerror(errno) : "");
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* The log initdb appends to: absent, or a regular file of the cluster's
 * owner.  (It is opened as the owner and without following a symlink
 * anyway; this says why it is refused.) */
static keel_error *check_log(const char *log, uid_t uid)
{
    struct stat st;
    if (lstat(log, &st) != 0)
        return errno == ENOENT ? NULL
                               : keel_error_new(KEEL_FAILED_PRECONDITION, "cannot check %s: %s", log, strerror(errno));
    if (S_ISLNK(st.st_mode))
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "refusing to write %s: it is a symlink (remove it and run keel again)", log);
    if (!S_ISREG(st.st_mode) || st.st_uid != uid)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "refusing to write %s: it is not a regular file of the cluster's owner (uid %u) "
                              "(remove it and run keel again)",
                              log, (unsigned)uid);
    return NULL;
}

static keel_error *create_cluster(local_pg *pg)
{
    uid_t uid;
    gid_t gid;
    keel_error *err = cluster_owner(&uid, &gid);
    if (err)
        return err;
    char initdb[PATH_MAX];
    if (!pg_program(initdb, sizeof initdb, "initdb") || access(initdb, X_OK) != 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "cannot create the PostgreSQL cluster: initdb is missing (install PostgreSQL: "
                              "apt-get install -y postgresql; or point KEEL_PG_BINDIR at its bin folder)");
    int dir = owned_dir(AT_FDCWD, pg->pg_dir, pg->pg_dir, uid, gid, &err);
    if (dir < 0)
        return err;
    close(dir);
    char data[PATH_MAX], log[PATH_MAX];
    if (!path_fmt(data, sizeof data, "%s/data", pg->pg_dir) ||
        !path_fmt(log, sizeof log, "%s/initdb.log", pg->pg_dir))
        return too_long("the cluster folder");
    err = check_log(log, uid);
    if (err)
        return err;
    fprintf(stderr, "Creating PostgreSQL cluster in %s ... ", pg->pg_dir);
    double t0 = now_s();
    /* Local (socket) connections are trusted: the socket's folder is private
     * to the cluster's owner (and root).  TCP needs a password. */
    char *argv[] = {initdb, "-D", data, "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", NULL};
    if (run_pg_tool(argv, log) != 0) {
        fprintf(stderr, "failed\n");
        return keel_error_new(KEEL_FAILED_PRECONDITION, "initdb failed: see %s", log);
    }
    fprintf(stderr, "done (%.1f s)\n", now_s() - t0);
    return NULL;
}

bool local_pg_running(const local_pg *pg)
{
    char data[PATH_MAX], pg_ctl[PATH_MAX];
    if (!path_fmt(data, sizeof data, "%s/data", pg->pg_dir) || !pg_program(pg_ctl, sizeof pg_ctl, "pg_ctl"))
        return false;
    char *argv[] = {pg_ctl, "-D", data, "status", NULL};
    return run_pg_tool(argv, NULL) == 0;
}

static keel_error *start_server(local_pg *pg)
{
    char data[PATH_MAX], log[PATH_MAX], opts[PATH_MAX + 128];
    if (!path_fmt(data, sizeof data, "%s/data", pg->pg_dir) ||
        !path_fmt(log, sizeof log, "%s/server.log", pg->pg_dir))
        return too_long("the cluster folder");
    if (local_pg_running(pg))
        return NULL;
    uid_t uid;
    gid_t gid;
    keel_error *err = cluster_owner(&uid, &gid);
    if (err)
        return err;
    /* The socket folder, in the owner's cluster folder (pg_ctl opens the
     * server log itself, as the owner). */
    int dir = owned_dir(AT_FDCWD, pg->pg_dir, pg->pg_dir, uid, gid, &err);
    int run = dir < 0 ? -1 : owned_dir(dir, "run", pg->socket_dir, uid, gid, &err);
    if (dir >= 0)
        close(dir);
    if (run < 0)
        return err;
    close(run);
    if (!port_free(pg->port)) {
        /* Another program listens on the port (a stopped cluster's lingering
         * connections do not count: see port_free): the port is ours to
         * choose, so move rather than fail.  An app started later learns it
         * from the infra config written after this; one already running
         * keeps the old port until it is restarted. */
        unsigned old = pg->port;
        err = pick_port(pg);
        if (err)
            return err;
        fprintf(stderr, "note: port %u is taken by another program; PostgreSQL moves to port %u\n", old, pg->port);
    }
    /* Another cluster (of another app root) may grab the same free port
     * between our check and its bind: then move to the next free port. */
    for (int attempt = 0;; attempt++) {
        /* The test cluster trades durability for speed: its databases are
         * made again from the templates at every test. */
        if (!path_fmt(opts, sizeof opts, "-c listen_addresses=127.0.0.1 -p %u -k %s%s", pg->port, pg->socket_dir,
                      pg->test ? " -c fsync=off -c synchronous_commit=off -c full_page_writes=off" : ""))
            return too_long("the cluster folder");
        fprintf(stderr, "Starting PostgreSQL on 127.0.0.1:%u ... ", pg->port);
        double t0 = now_s();
        char pg_ctl[PATH_MAX];
        if (!pg_program(pg_ctl, sizeof pg_ctl, "pg_ctl"))
            return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot start PostgreSQL: pg_ctl is missing (install "
                                  "PostgreSQL: apt-get install -y postgresql; or set KEEL_PG_BINDIR)");
        char *argv[] = {pg_ctl, "-D", data, "-l", log, "-w", "-t", "60", "-o", opts, "start", NULL};
        if (run_pg_tool(argv, NULL) == 0) {
            fprintf(stderr, "done (%.2f s)\n", now_s() - t0);
            return NULL;
        }
        fprintf(stderr, "failed\n");
        if (attempt >= 3 || port_free(pg->port))
            return keel_error_new(KEEL_UNAVAILABLE, "PostgreSQL did not start: see %s", log);
        err = pick_port(pg);
        if (err)
            return err;
        fprintf(stderr, "note: another program took the port; trying port %u\n", pg->port);
    }
}

keel_error *local_pg_stop(const local_pg *pg)
{
    char data[PATH_MAX], pg_ctl[PATH_MAX];
    if (!path_fmt(data, sizeof data, "%s/data", pg->pg_dir))
        return too_long("the cluster folder");
    if (!pg_program(pg_ctl, sizeof pg_ctl, "pg_ctl"))
        return keel_error_new(KEEL_FAILED_PRECONDITION, "pg_ctl is missing (install PostgreSQL: apt-get install -y "
                              "postgresql; or set KEEL_PG_BINDIR)");
    if (!local_pg_running(pg))
        return NULL;
    /* Fast: connected clients (an app still running) are disconnected
     * rather than waited for. */
    char *argv[] = {pg_ctl, "-D", data, "-m", "fast", "-w", "-t", "60", "stop", NULL};
    if (run_pg_tool(argv, NULL) != 0)
        return keel_error_new(KEEL_UNAVAILABLE, "PostgreSQL did not stop (see %s/server.log)", pg->pg_dir);
    return NULL;
}

/* The descriptor holding .keel/lock, or -1. */
static int held_lock = -1;

void local_pg_unlock(void)
{
    if (held_lock >= 0)
        close(held_lock);
    held_lock = -1;
}

/* Holds .keel/lock until local_pg_unlock, exit or exec (the descriptor is
 * close-on-exec). */
static keel_error *take_lock(const local_pg *pg)
{
    /* Taken once per process: a second flock on a new descriptor would
     * wait for the process itself. */
    if (held_lock >= 0)
        return NULL;
    char path[PATH_MAX];
    if (!path_fmt(path, sizeof path, "%s/lock", pg->state_dir))
        return too_long(".keel/lock");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "waiting for another keel process to finish setting up the database ...\n");
        if (flock(fd, LOCK_EX) != 0)
            return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot lock %s: %s", path, strerror(errno));
    }
    held_lock = fd;
    return NULL;
}

keel_error *local_pg_ensure(const char *root, local_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    return ensure(root, pg);
}

keel_error *local_pg_ensure_test(const char *root, local_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->test = true;
    local_pg dev;
    memset(&dev, 0, sizeof dev);
    keel_error *err = set_root(&dev, root); /* .keel first: .keel/test lives in it */
    if (!err && mkdir(dev.state_dir, 0711) != 0 && errno != EEXIST)
        err = keel_error_new(KEEL_FAILED_PRECONDITION, "cannot create %s: %s", dev.state_dir, strerror(errno));
    return err ? err : ensure(root, pg);
}

static keel_error *ensure(const char *root, local_pg *pg)
{
    keel_error *err = set_root(pg, root);
    if (err)
        return err;
    if (mkdir(pg->state_dir, 0711) != 0 && errno != EEXIST)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot create %s: %s", pg->state_dir, strerror(errno));
    /* .keel holds the passwords: a symlink there would send them elsewhere. */
    int state = open(pg->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (state < 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "refusing to use %s: %s (it must be a folder, not a symlink)",
                              pg->state_dir, strerror(errno));
    int chmodded = fchmod(state, 0711);
    close(state);
    if (chmodded != 0)
        return keel_error_new(KEEL_FAILED_PRECONDITION, "cannot chmod %s: %s", pg->state_dir, strerror(errno));
    if (sodium_init() < 0)
        return keel_error_new(KEEL_INTERNAL, "libsodium cannot be initialised");
    err = take_lock(pg);
    if (!err)
        err = choose_location(pg);
    if (err)
        return err;
    char version[PATH_MAX];
    if (!path_fmt(version, sizeof version, "%s/data/PG_VERSION", pg->pg_dir))
        return too_long("the cluster folder");
    if (access(version, F_OK) != 0)
        err = create_cluster(pg);
    if (!err)
        err = start_server(pg);
    return err;
}

/* ---- provisioning --------------------------------------------------------- */

/* Provisioning is idempotent, so PostgreSQL's notices ("role is already a
 * member") are expected: keep them off the terminal. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGconn *superuser_connect(const local_pg *pg, const char *dbname, keel_error **err)
{
    char port[16];
    snprintf(port, sizeof port, "%u", pg->port);
    const char *keys[] = {"host", "port", "dbname", "user", NULL};
    const char *values[] = {pg->socket_dir, port, dbname, "postgres", NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 0);
    if (PQstatus(conn) != CONNECTION_OK) {
        *err = keel_error_new(KEEL_UNAVAILABLE, "cannot connect to the local PostgreSQL cluster");
        keel__pg_cause(*err, conn, NULL);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

static bool exec_ok(PGconn *conn, const char *sql, keel_error **err)
{
    PGresult *r = PQexec(conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok && !*err)
        *err = keel__pg_cause(keel_error_new(KEEL_INTERNAL, "provisioning the local database failed"), conn, r);
    PQclear(r);
    return ok;
}

/* True when the query with one bound parameter returns a row. */
static bool exists(PGconn *conn, const char *sql, const char *param)
{
    PGresult *r = PQexecParams(conn, sql, 1, NULL, &param, NULL, NULL, 0);
    bool found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0;
    PQclear(r);
    return found;
}

/* Reads .keel/passwords.json, adding generated passwords that are missing
 * for the databases; writes it back (0600) when it changed. */
static keel_error *load_passwords(const local_pg *pg, const char *const *databases, json_t **out)
{
    char path[PATH_MAX];
    *out = NULL;
    if (!path_fmt(path, sizeof path, "%s/passwords.json", pg->state_dir))
        return too_long(".keel/passwords.json");
    json_t *all = json_load_file(path, 0, NULL);
    if (!json_is_object(all)) {
        json_decref(all);
        all = json_object();
    }
    bool changed = false;
    static const char *const roles[] = {"admin", "app", "ro"};
    for (size_t i = 0; databases[i]; i++) {
        json_t *db = json_object_get(all, databases[i]);
        if (!json_is_object(db)) {
            db = json_object();
            json_object_set_new(all, databases[i], db);
        }
        for (size_t k = 0; k < 3; k++) {
            if (json_is_string(json_object_get(db, roles[k])))
                continue;
            unsigned char raw[18];
            char hex[37];
            randombytes_buf(raw, sizeof raw);
            sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
            json_object_set_new(db, roles[k], json_string(hex));
            sodium_memzero(hex, sizeof hex);
            changed = true;
        }
    }
    keel_error *err = NULL;
    if (changed) {
        char *text = json_dumps(all, JSON_INDENT(2));
        err = local_pg_write_private(path, text);
        keel__free_secret(text);
    }
    *out = all;
    return err;
}

/* Creates the role or resets its password (sent already hashed with SCRAM,
 * so the clear text never reaches the server or its logs). */
static void ensure_role(PGconn *conn, const char *role, const char *password, keel_error **err)
{
    char *hashed = PQencryptPasswordConn(conn, password, role, "scram-sha-256");
    char *ident = PQescapeIdentifier(conn, role, strlen(role));
    char *literal = hashed ? PQescapeLiteral(conn, hashed, strlen(hashed)) : NULL;
    if (!ident || !literal) {
        if (!*err)
            *err = keel_error_new(KEEL_INTERNAL, "cannot prepare role %s", role);
    } else {
        bool have = exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = $1", role);
        char sql[1024];
        snprintf(sql, sizeof sql, "%s ROLE %s LOGIN PASSWORD %s", have ? "ALTER" : "CREATE", ident, literal);
        exec_ok(conn, sql, err);
    }
    PQfreemem(hashed);
    PQfreemem(ident);
    PQfreemem(literal);
}

/* NAME_app (reads and writes) and NAME_ro (reads) get their privileges
 * inside their own database only: on what its schemas hold now (public, and
 * any schema an earlier migration made, owned by NAME_admin), and through
 * default privileges on what NAME_admin, which runs the migrations, creates
 * later.  Default privileges belong to one database, so this runs connected
 * to it. */
static void grant_in_database(const local_pg *pg, const char *name, const char *admin, const char *ia, const char *ip,
                              const char *ir, keel_error **err)
{
    PGconn *conn = superuser_connect(pg, name, err);
    if (!conn)
        return;
    /* The app of another keel run may be migrating this database right now;
     * released when conn closes. */
    exec_ok(conn, "SELECT pg_advisory_lock(" KEEL_MIGRATE_LOCK_KEY ")", err);
    char sql[4096];
    PGresult *r = PQexecParams(conn,
                               "SELECT nspname FROM pg_namespace WHERE nspname = 'public' OR nspowner = "
                               "(SELECT oid FROM pg_roles WHERE rolname = $1) ORDER BY 1",
                               1, NULL, &admin, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK && !*err)
        *err = keel__pg_cause(keel_error_new(KEEL_INTERNAL, "provisioning the local database failed"), conn, r);
    for (int i = 0; !*err && PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
        const char *schema = PQgetvalue(r, i, 0);
        char *is = PQescapeIdentifier(conn, schema, strlen(schema));
        if (!is || !path_fmt(sql, sizeof sql,
                             "GRANT USAGE ON SCHEMA %s TO %s, %s;"
                             "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s;"
                             "GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;"
                             "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %s TO %s;"
                             "GRANT SELECT ON ALL SEQUENCES IN SCHEMA %s TO %s",
                             is, ip, ir, is, ip, is, ir, is, ip, is, ir))
            *err = keel_error_new(KEEL_INTERNAL, "cannot prepare the grants on schema %s of database %s", schema,
                                  name);
        else
            exec_ok(conn, sql, err);
        PQfreemem(is);
    }
    PQclear(r);
    if (!*err && path_fmt(sql, sizeof sql,
                          "ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s;"
                          "ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON TABLES TO %s;"
                          "ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %s;"
                          "ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT SELECT ON SEQUENCES TO %s;"
                          "ALTER DEFAULT PRIVILEGES FOR ROLE %s GRANT USAGE ON SCHEMAS TO %s, %s",
                          ia, ip, ia, ir, ia, ip, ia, ir, ia, ip, ir))
        exec_ok(conn, sql, err);
    PQfinish(conn);
}

static void provision_one(const local_pg *pg, PGconn *conn, const char *name, json_t *pw, keel_error **err)
{
    char admin[128], app[128], ro[128];
    snprintf(admin, sizeof admin, "%s_admin", name);
    snprintf(app, sizeof app, "%s_app", name);
    snprintf(ro, sizeof ro, "%s_ro", name);
    ensure_role(conn, admin, json_string_value(json_object_get(pw, "admin")), err);
    ensure_role(conn, app, json_string_value(json_object_get(pw, "app")), err);
    ensure_role(conn, ro, json_string_value(json_object_get(pw, "ro")), err);
    char *db = PQescapeIdentifier(conn, name, strlen(name));
    char *ia = PQescapeIdentifier(conn, admin, strlen(admin));
    char *ip = PQescapeIdentifier(conn, app, strlen(app));
    char *ir = PQescapeIdentifier(conn, ro, strlen(ro));
    char sql[2048];
    if (!db || !ia || !ip || !ir) {
        if (!*err)
            *err = keel_error_new(KEEL_INTERNAL, "cannot prepare database %s", name);
    } else {
        if (!exists(conn, "SELECT 1 FROM pg_database WHERE datname = $1", name)) {
            fprintf(stderr, "Creating database %s ... ", name);
            snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER %s", db, ia);
            fprintf(stderr, exec_ok(conn, sql, err) ? "done\n" : "failed\n");
        }
        /* The memberships older versions granted gave these roles every
         * table of every database they could connect to: revoked. */
        snprintf(sql, sizeof sql,
                 "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s, %s;"
                 "GRANT ALL ON DATABASE %s TO %s;"
                 "REVOKE pg_read_all_data, pg_write_all_data FROM %s, %s",
                 db, db, ip, ir, db, ia, ip, ir);
        exec_ok(conn, sql, err);
        if (!*err)
            grant_in_database(pg, name, admin, ia, ip, ir, err);
    }
    PQfreemem(db);
    PQfreemem(ia);
    PQfreemem(ip);
    PQfreemem(ir);
}

/* Any constant: the lock serialises keel's own provisioning only. */
#define PROVISION_LOCK_KEY "7046384011"

keel_error *local_pg_provision(local_pg *pg, const char *const *databases)
{
    json_t *passwords = NULL;
    keel_error *err = load_passwords(pg, databases, &passwords);
    PGconn *conn = err ? NULL : superuser_connect(pg, "postgres", &err);
    /* Two keel runs starting at once would grant and revoke on the same
     * catalog rows together ("tuple concurrently updated"): provisioning
     * takes a cluster-wide advisory lock, released when conn closes. */
    if (conn)
        exec_ok(conn, "SELECT pg_advisory_lock(" PROVISION_LOCK_KEY ")", &err);
    for (size_t i = 0; conn && !err && databases[i]; i++)
        provision_one(pg, conn, databases[i], json_object_get(passwords, databases[i]), &err);
    PQfinish(conn);
    json_decref(passwords);
    return err;
}

/* The existing infra config at path without the local cluster's server
 * (rewritten by the caller) and without entries for the managed databases
 * (an older file listed them on a server of its own): the servers a team
 * added (external databases) are kept as they are. */
static keel_error *keep_other_servers(const char *path, const char *const *databases, json_t **out)
{
    json_error_t e;
    json_t *old = access(path, F_OK) == 0 ? json_load_file(path, JSON_REJECT_DUPLICATES | JSON_PRESERVE_ORDER, &e)
                                          : json_object();
    if (!old || !json_is_object(old) ||
        (json_object_get(old, "sql_servers") && !json_is_array(json_object_get(old, "sql_servers")))) {
        json_decref(old);
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "%s is not an infra config keel can update (fix it, or delete it to start afresh: "
                              "keel run writes the local cluster's part again)", path);
    }
    json_t *kept = json_array(), *s;
    size_t i;
    json_array_foreach(json_object_get(old, "sql_servers"), i, s) {
        if (json_is_true(json_object_get(s, "local_cluster")))
            continue;
        json_t *dbs = json_object_get(s, "databases");
        for (size_t j = 0; databases[j]; j++)
            json_object_del(dbs, databases[j]);
        if (json_object_size(dbs))
            json_array_append(kept, s);
    }
    json_object_set_new(old, "sql_servers", kept);
    *out = old;
    return NULL;
}

keel_error *local_pg_write_infra(const local_pg *pg, const char *const *databases, char *out, size_t out_len)
{
    json_t *passwords = NULL;
    keel_error *err = load_passwords(pg, databases, &passwords);
    if (err) {
        json_decref(passwords);
        return err;
    }
    json_t *dbs = json_object();
    for (size_t i = 0; databases[i]; i++) {
        const char *n = databases[i];
        json_t *pw = json_object_get(passwords, n);
        char admin[128], app[128], ro[128];
        snprintf(admin, sizeof admin, "%s_admin", n);
        snprintf(app, sizeof app, "%s_app", n);
        snprintf(ro, sizeof ro, "%s_ro", n);
        json_object_set_new(dbs, n, json_pack("{s:s, s:s, s:O, s:s, s:O, s:s, s:O}", "name", n, "user", app,
                                               "password", json_object_get(pw, "app"), "admin_user", admin,
                                               "admin_password", json_object_get(pw, "admin"), "readonly_user", ro,
                                               "readonly_password", json_object_get(pw, "ro")));
    }
    json_t *infra = NULL;
    if (path_fmt(out, out_len, "%s/infra.local.json", pg->state_dir))
        err = keep_other_servers(out, databases, &infra);
    else
        err = too_long(".keel/infra.local.json");
    if (!err) {
        json_t *local = json_pack("{s:s, s:i, s:s, s:b, s:o}", "host", "127.0.0.1", "port", (json_int_t)pg->port,
                                  "sslmode", "disable", "local_cluster", 1, "databases", dbs);
        dbs = NULL;
        json_array_insert_new(json_object_get(infra, "sql_servers"), 0, local);
        char *text = json_dumps(infra, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        err = text ? local_pg_write_private(out, text) : keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory");
        keel__free_secret(text);
    }
    json_decref(dbs);
    json_decref(infra);
    json_decref(passwords);
    return err;
}

keel_error *local_pg_drop_database(local_pg *pg, const char *name)
{
    keel_error *err = NULL;
    PGconn *conn = superuser_connect(pg, "postgres", &err);
    if (!conn)
        return err;
    char *db = PQescapeIdentifier(conn, name, strlen(name));
    char sql[512];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    exec_ok(conn, sql, &err);
    PQfreemem(db);
    PQfinish(conn);
    return err;
}

/* Finds an existing cluster without locking or starting it: long-running
 * commands (keel db proxy) must not hold .keel/lock, or keel run would wait
 * for them. */
keel_error *local_pg_make_templates(local_pg *pg, const char *const *databases)
{
    keel_error *err = NULL;
    PGconn *conn = superuser_connect(pg, "postgres", &err);
    for (size_t i = 0; conn && !err && databases[i]; i++) {
        char sql[600];
        snprintf(sql, sizeof sql, "ALTER DATABASE %s IS_TEMPLATE true; ALTER ROLE %s_admin CREATEDB", databases[i],
                 databases[i]);
        exec_ok(conn, sql, &err);
    }
    PQfinish(conn);
    return err;
}

keel_error *local_pg_locate(const char *root, local_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    keel_error *err = set_root(pg, root);
    if (err)
        return err;
    if (!read_location(pg))
        return keel_error_new(KEEL_FAILED_PRECONDITION,
                              "no local PostgreSQL cluster under %s (run `keel run` once to create it)",
                              pg->state_dir);
    if (!path_fmt(pg->socket_dir, sizeof pg->socket_dir, "%s/run", pg->pg_dir))
        return too_long("the cluster folder");
    return NULL;
}

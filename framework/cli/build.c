/* build.c - `keel build [--out DIR]`: a release of the app that runs on a
 * machine without the repository or the keel command:
 *
 *   bin/APP                  the app binary
 *   lib/libkeel.so.0         when the binary links libkeel dynamically
 *   migrations/...           every declared database's migrations
 *   infra.production.json    the app's databases, read from the environment
 *   APP.env.example          every variable the app needs (databases, secrets)
 *   APP.service              a hardened systemd unit
 *   run                      starts the app from the release folder
 *   README                   how to install it
 *
 * The release is made in a new folder (an existing non-empty one is
 * refused, and so is one, or a folder above it, that another user owns or
 * may write: see open_out), relative to the output folder's descriptor;
 * files are created with O_EXCL | O_NOFOLLOW, and nothing is copied or
 * written through a symbolic link. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define CMD "keel build"

/* out = a/b; false (said on stderr) when it does not fit. */
static bool join(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= len) {
        fprintf(stderr, CMD ": the path %s/%s is too long\n", a, b);
        return false;
    }
    return true;
}

/* Creates name in the folder dir (shown as shown) with O_EXCL and
 * O_NOFOLLOW, with mode, and writes len bytes. */
static bool write_new(int dir, const char *shown, const char *name, const void *data, size_t len, mode_t mode)
{
    int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    bool ok = fd >= 0;
    for (size_t off = 0; ok && off < len;) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        ok = n > 0;
        off += ok ? (size_t)n : 0;
    }
    if (fd >= 0 && (fchmod(fd, mode) != 0 || close(fd) != 0))
        ok = false;
    if (!ok)
        fprintf(stderr, CMD ": cannot write %s/%s: %s\n", shown, name, strerror(errno));
    return ok;
}

/* Copies the regular file src to name in the folder dir with mode; a
 * symbolic link or anything that is not a regular file is refused. */
static bool copy_file(const char *src, int dir, const char *shown, const char *name, mode_t mode)
{
    int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, CMD ": cannot copy %s: %s\n", src, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return false;
    }
    char *data = malloc(st.st_size ? (size_t)st.st_size : 1);
    size_t got = 0;
    while (data && got < (size_t)st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    bool ok = data && got == (size_t)st.st_size && write_new(dir, shown, name, data, got, mode);
    if (data && got != (size_t)st.st_size)
        fprintf(stderr, CMD ": cannot read %s\n", src);
    free(data);
    return ok;
}

/* ---- the output folder ----------------------------------------------------------- */

/* keel build often runs as root.  Where another user can write, that user
 * could swap a folder keel is about to write in for a symbolic link between
 * keel's check and its write, and have root create files anywhere.  So
 * every component of --out is opened one at a time, relative to the one
 * before, with O_NOFOLLOW (a symbolic link is refused, never followed), and
 * checked on what was opened; the release is then written relative to the
 * output folder's descriptor (openat, mkdirat), so that no component can be
 * swapped after its check. */

/* True when the opened folder fd (shown as shown) is safe to write under:
 * it belongs to keel's user, or (for a folder above the output folder) to
 * root, and neither its group nor others may write it, except in a parent
 * with the sticky bit, like /tmp, where nobody else can rename or remove
 * what keel creates.  Says why not on stderr. */
static bool safe_dir(int fd, const char *shown, bool out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, CMD ": cannot check %s: %s\n", shown, strerror(errno));
        return false;
    }
    uid_t me = geteuid();
    if (st.st_uid != me && (out || st.st_uid != 0)) {
        fprintf(stderr,
                CMD ": refusing to write under %s: it belongs to uid %u, not to uid %u, which runs keel build "
                    "(name a folder of your own with --out)\n",
                shown, (unsigned)st.st_uid, (unsigned)me);
        return false;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && (out || !(st.st_mode & S_ISVTX))) {
        fprintf(stderr,
                CMD ": refusing to write under %s: its group or other users may write in it (mode %04o; chmod "
                    "go-w it, or name another folder with --out)\n",
                shown, (unsigned)(st.st_mode & 07777));
        return false;
    }
    return true;
}

/* Opens the folder name in at (its path shown as shown) without following
 * a symbolic link, creating it (0755) when it is missing.  -1 (said) when
 * it cannot. */
static int open_component(int at, const char *name, const char *shown)
{
    int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (mkdirat(at, name, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, CMD ": cannot create %s: %s\n", shown, strerror(errno));
            return -1;
        }
        fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd >= 0)
        return fd;
    int e = errno;
    struct stat st;
    if (e == ELOOP || (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)))
        fprintf(stderr,
                CMD ": refusing to write under %s: it is a symbolic link, which keel build does not follow "
                    "(give --out the real path: realpath %s)\n",
                shown, shown);
    else
        fprintf(stderr, CMD ": cannot open the folder %s: %s\n", shown, strerror(e));
    return -1;
}

/* Opens the folder rel under the folder at, one component at a time
 * (open_component), each checked with safe_dir; prefix is at's path for
 * messages ("" when rel says it all).  Returns the descriptor or -1 (said). */
static int open_dirs(int at, const char *prefix, const char *rel)
{
    int fd = fcntl(at, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, CMD ": cannot open %s: %s\n", prefix, strerror(errno));
        return -1;
    }
    for (const char *p = rel + strspn(rel, "/"); *p; p += strspn(p, "/")) {
        size_t n = strcspn(p, "/");
        char name[NAME_MAX + 1], shown[PATH_MAX];
        int w = snprintf(shown, sizeof shown, "%s%s%.*s", prefix, *prefix ? "/" : "", (int)(p + n - rel), rel);
        if (n > NAME_MAX || w < 0 || (size_t)w >= sizeof shown) {
            fprintf(stderr, CMD ": the path %s%s%s is too long\n", prefix, *prefix ? "/" : "", rel);
            close(fd);
            return -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        int next = open_component(fd, name, shown);
        close(fd);
        if (next < 0 || !safe_dir(next, shown, false)) {
            if (next >= 0)
                close(next);
            return -1;
        }
        fd = next;
        p += n;
    }
    return fd;
}

/* True when the folder fd holds nothing. */
static bool is_empty(int fd)
{
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
    if (!d) {
        if (copy >= 0)
            close(copy);
        return false;
    }
    bool empty = true;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        empty &= strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

/* Opens (creating what is missing) the output folder dir, from / or from
 * the current folder, which must be safe too: a new folder, or an empty one
 * of keel's user that only it may write.  Returns its descriptor or -1
 * (said). */
static int open_out(const char *dir)
{
    const char *from = dir[0] == '/' ? "/" : ".";
    int start = open(from, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (start < 0) {
        fprintf(stderr, CMD ": cannot open %s: %s\n", from, strerror(errno));
        return -1;
    }
    int fd = safe_dir(start, from, false) ? open_dirs(start, "", dir) : -1;
    close(start);
    if (fd >= 0 && !safe_dir(fd, dir, true)) {
        close(fd);
        return -1;
    }
    if (fd >= 0 && !is_empty(fd)) {
        fprintf(stderr, CMD ": %s exists and is not empty: name a new folder with --out\n", dir);
        close(fd);
        return -1;
    }
    return fd;
}

/* Copies the migration files (*.sql) of folder src into rel under the
 * output folder out (shown as dir). */
static bool copy_migrations(const char *src, int out, const char *dir, const char *rel, int *count)
{
    char shown[PATH_MAX];
    if (!join(shown, sizeof shown, dir, rel))
        return false;
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, CMD ": cannot read the migrations folder %s: %s\n", src, strerror(errno));
        return false;
    }
    int dst = open_dirs(out, dir, rel);
    bool ok = dst >= 0;
    for (struct dirent *e; ok && (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || n < 5 || strcmp(e->d_name + n - 4, ".sql") != 0)
            continue;
        char from[PATH_MAX];
        ok = join(from, sizeof from, src, e->d_name) && copy_file(from, dst, shown, e->d_name, 0644);
        *count += ok;
    }
    closedir(d);
    if (dst >= 0)
        close(dst);
    return ok;
}

/* Where the dynamic loader finds libkeel for binary ("" when it is linked
 * statically): the line "libkeel.so.0 => /path (0x...)" of ldd. */
static bool find_libkeel(const char *binary, char *out, size_t len)
{
    out[0] = '\0';
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "ldd '%s' 2>/dev/null", binary);
    if (strchr(binary, '\''))
        return false;
    FILE *p = popen(cmd, "r");
    char line[PATH_MAX + 100];
    while (p && fgets(line, sizeof line, p)) {
        const char *at = strstr(line, "libkeel.so");
        const char *arrow = at ? strstr(at, "=> ") : NULL;
        if (!arrow)
            continue;
        arrow += 3;
        size_t n = strcspn(arrow, " \n");
        char named[PATH_MAX];
        /* libkeel.so.0 is the soname's link to the versioned file: copy
         * the file it names (read only; nothing is written through it). */
        if (n < sizeof named) {
            memcpy(named, arrow, n);
            named[n] = '\0';
            if (!realpath(named, out) || strlen(out) >= len)
                out[0] = '\0';
        }
    }
    return p && pclose(p) == 0;
}

/* "todo" -> "TODO" into buf. */
static const char *upper(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        buf[i] = (char)toupper((unsigned char)s[i]);
    buf[i] = '\0';
    return buf;
}

/* The production infra config: every declared database on one server
 * whose host, port and passwords come from the environment; sslmode is
 * left to Keel's default (verify-full for another machine). */
static json_t *production_infra(const char **dbs)
{
    json_t *databases = json_object();
    for (size_t i = 0; dbs[i]; i++) {
        char up[80], app_pw[120], admin_pw[120], user[120], admin[120];
        upper(dbs[i], up, sizeof up);
        snprintf(app_pw, sizeof app_pw, "%s_DB_PASSWORD", up);
        snprintf(admin_pw, sizeof admin_pw, "%s_DB_ADMIN_PASSWORD", up);
        snprintf(user, sizeof user, "%s_app", dbs[i]);
        snprintf(admin, sizeof admin, "%s_admin", dbs[i]);
        json_object_set_new(databases, dbs[i],
                            json_pack("{s:s, s:s, s:{s:s}, s:s, s:{s:s}}", "name", dbs[i], "user", user, "password",
                                      "$env", app_pw, "admin_user", admin, "admin_password", "$env", admin_pw));
    }
    return json_pack("{s:s, s:[{s:{s:s}, s:{s:s}, s:o}], s:{s:i, s:i, s:i}}", "env", "production", "sql_servers",
                     "host", "$env", "KEEL_DB_HOST", "port", "$env", "KEEL_DB_PORT", "databases", databases, "pool",
                     "max_connections", 20, "checkout_timeout_ms", 5000, "statement_timeout_ms", 30000);
}

static const char unit_template[] =
    "# @APP@.service - @APP@, a Keel app, as a hardened systemd service.\n"
    "# Install: the release in /opt/@APP@, this file in /etc/systemd/system/, the\n"
    "# variables of @APP@.env.example in /etc/@APP@/env (0600, owned by root), then\n"
    "#   useradd --system --no-create-home --shell /usr/sbin/nologin @APP@\n"
    "#   systemctl daemon-reload && systemctl enable --now @APP@\n"
    "[Unit]\n"
    "Description=@APP@ (Keel app)\n"
    "After=network-online.target\n"
    "Wants=network-online.target\n"
    "\n"
    "[Service]\n"
    "Type=simple\n"
    "User=@APP@\n"
    "Group=@APP@\n"
    "WorkingDirectory=/opt/@APP@\n"
    "Environment=KEEL_APP_ROOT=/opt/@APP@\n"
    "Environment=KEEL_INFRA_CONFIG=/opt/@APP@/infra.production.json\n"
    "Environment=LD_LIBRARY_PATH=/opt/@APP@/lib\n"
    "Environment=PORT=4000\n"
    "# Behind a load balancer checking /__keel/readyz: answer 503 and keep\n"
    "# serving this long after SIGTERM, so it takes the instance out first.\n"
    "Environment=KEEL_DRAIN_MS=5000\n"
    "Environment=KEEL_DASHBOARD_PORT=\n"
    "EnvironmentFile=/etc/@APP@/env\n"
    "ExecStart=/opt/@APP@/bin/@APP@\n"
    "KillSignal=SIGTERM\n"
    "TimeoutStopSec=30\n"
    "Restart=on-failure\n"
    "RestartSec=2\n"
    "UMask=0077\n"
    "NoNewPrivileges=yes\n"
    "ProtectSystem=strict\n"
    "ProtectHome=yes\n"
    "PrivateTmp=yes\n"
    "PrivateDevices=yes\n"
    "ProtectKernelTunables=yes\n"
    "ProtectKernelModules=yes\n"
    "ProtectKernelLogs=yes\n"
    "ProtectControlGroups=yes\n"
    "ProtectClock=yes\n"
    "ProtectHostname=yes\n"
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n"
    "RestrictNamespaces=yes\n"
    "RestrictRealtime=yes\n"
    "RestrictSUIDSGID=yes\n"
    "LockPersonality=yes\n"
    "MemoryDenyWriteExecute=yes\n"
    "SystemCallArchitectures=native\n"
    "CapabilityBoundingSet=\n"
    "AmbientCapabilities=\n"
    "\n"
    "[Install]\n"
    "WantedBy=multi-user.target\n";

static const char run_template[] =
    "#!/bin/sh\n"
    "# Starts @APP@ from this release folder, without the keel command.  The\n"
    "# environment says where the databases are and holds the secrets: see\n"
    "# @APP@.env.example.  KEEL_INFRA_CONFIG may name another infra config.\n"
    "here=$(cd \"$(dirname \"$0\")\" && pwd)\n"
    "export KEEL_APP_ROOT=\"$here\"\n"
    "export KEEL_INFRA_CONFIG=\"${KEEL_INFRA_CONFIG:-$here/infra.production.json}\"\n"
    "export LD_LIBRARY_PATH=\"$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}\"\n"
    "exec \"$here/bin/@APP@\" \"$@\"\n";

/* template with every @APP@ replaced by app; caller frees. */
static char *fill(const char *template, const char *app)
{
    size_t n = 0;
    for (const char *p = template; (p = strstr(p, "@APP@")); p += 5)
        n++;
    char *out = malloc(strlen(template) + n * strlen(app) + 1), *o = out;
    for (const char *p = template; out && *p;) {
        const char *at = strstr(p, "@APP@");
        size_t k = at ? (size_t)(at - p) : strlen(p);
        memcpy(o, p, k);
        o += k;
        p += k;
        if (at) {
            o = stpcpy(o, app);
            p += 5;
        }
    }
    if (out)
        *o = '\0';
    return out;
}

static bool write_text(int out, const char *dir, const char *name, const char *text, mode_t mode)
{
    return text && write_new(out, dir, name, text, strlen(text), mode);
}

/* The environment the app needs, with what each variable is for. */
static char *env_example(json_t *model, const char **dbs, const char *app)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    fprintf(f, "# The environment of this release (for systemd: /etc/%s/env, 0600).\n", app);
    fprintf(f, 
               "# Where the databases are (infra.production.json reads these):\n"
               "KEEL_DB_HOST=db.internal.example.com\nKEEL_DB_PORT=5432\n");
    for (size_t i = 0; dbs[i]; i++) {
        char up[80];
        upper(dbs[i], up, sizeof up);
        fprintf(f, "# database %s: the app role (%s_app) and the owner that migrates (%s_admin)\n"
                   "%s_DB_PASSWORD=\n%s_DB_ADMIN_PASSWORD=\n", dbs[i], dbs[i], dbs[i], up, up);
    }
    fprintf(f, "# The secrets the services declare (or KEEL_SECRETS_KEY with a secrets store):\n");
    size_t i, j;
    json_t *svc, *s;
    json_array_foreach(json_object_get(model, "services"), i, svc)
        json_array_foreach(json_object_get(svc, "secrets"), j, s)
            fprintf(f, "# service %s\nKEEL_SECRET_%s=\n", json_string_value(json_object_get(svc, "name")),
                    json_string_value(s));
    return fclose(f) == 0 ? text : NULL;
}

static const char readme_template[] =
    "@APP@ - a release made by `keel build`\n"
    "\n"
    "  bin/@APP@                the app\n"
    "  lib/                     libkeel.so.0, when the app links it dynamically\n"
    "  migrations/              applied by the app itself at start-up, under an advisory\n"
    "                           lock (instances starting together apply each one once)\n"
    "  infra.production.json    where the databases are; host, port and passwords come\n"
    "                           from the environment\n"
    "  @APP@.env.example        every variable the app needs\n"
    "  @APP@.service            a hardened systemd unit (its own user, NoNewPrivileges,\n"
    "                           ProtectSystem=strict, ...)\n"
    "  run                      starts the app from this folder: ./run\n"
    "\n"
    "The machine needs Debian's libmicrohttpd12, libpq5, libjansson4 and libsodium23.\n"
    "Health: GET /__keel/healthz (the process serves), GET /__keel/readyz (databases\n"
    "reachable, secrets set, not draining); metrics: GET /__keel/metrics.\n";

int cli_build(int argc, char **argv)
{
    const char *out = NULL, *given = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc && argv[i + 1][0])
            out = argv[++i];
        else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            given = argv[++i];
        else {
            cli_print_usage(stderr, "build");
            return CLI_USAGE;
        }
    }
    const cli_project *project = cli_project_get();
    if (!cli_project_build(project, CMD))
        return CLI_FAILED;
    const char *app = cli_find_app(given);
    if (!app)
        return CLI_FAILED;
    json_t *model = cli_load_app_model(app);
    if (!model)
        return CLI_FAILED;
    const char *base = strrchr(app, '/') ? strrchr(app, '/') + 1 : app;
    char dir[PATH_MAX - 512];
    if (snprintf(dir, sizeof dir, "%s", out ? out : "release") >= (int)sizeof dir) {
        fprintf(stderr, CMD ": --out names a path that is too long\n");
        json_decref(model);
        return CLI_USAGE;
    }
    int rc = CLI_FAILED;
    const char **dbs = cli_declared_databases(model);
    char lib[PATH_MAX], shown[PATH_MAX];
    lib[0] = '\0';
    int out_fd = -1, sub = -1;
    if (!dbs || (out_fd = open_out(dir)) < 0)
        goto done;
    if ((sub = open_dirs(out_fd, dir, "bin")) < 0 || !join(shown, sizeof shown, dir, "bin") ||
        !copy_file(app, sub, shown, base, 0755))
        goto done;
    close(sub);
    sub = -1;
    if (!find_libkeel(app, lib, sizeof lib)) {
        fprintf(stderr, CMD ": ldd cannot tell which libkeel %s uses\n", app);
        goto done;
    }
    if (lib[0]) {
        /* The name the binary asks for, with the file it resolves to. */
        if ((sub = open_dirs(out_fd, dir, "lib")) < 0 || !join(shown, sizeof shown, dir, "lib") ||
            !copy_file(lib, sub, shown, "libkeel.so.0", 0644))
            goto done;
        close(sub);
        sub = -1;
    }
    int files = 0;
    size_t i, j;
    json_t *svc, *db;
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "databases"), j, db) {
            const char *rel = json_string_value(json_object_get(db, "migrations"));
            if (!rel)
                continue;
            if (rel[0] == '/' || strstr(rel, "..")) {
                fprintf(stderr, CMD ": database %s: its migrations folder must be inside the app root, not %s\n",
                        json_string_value(json_object_get(db, "name")), rel);
                goto done;
            }
            char src[PATH_MAX];
            if (!join(src, sizeof src, keel_app_root(), rel) || !copy_migrations(src, out_fd, dir, rel, &files))
                goto done;
        }
    }
    json_t *infra = production_infra(dbs);
    char *infra_text = json_dumps(infra, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(infra);
    char *unit = fill(unit_template, base), *run = fill(run_template, base), *readme = fill(readme_template, base);
    char *envs = env_example(model, dbs, base);
    char unit_name[NAME_MAX + 16], env_name[NAME_MAX + 16];
    if (snprintf(unit_name, sizeof unit_name, "%.*s.service", NAME_MAX, base) < 0 ||
        snprintf(env_name, sizeof env_name, "%.*s.env.example", NAME_MAX, base) < 0)
        goto done;
    bool ok = infra_text && write_text(out_fd, dir, "infra.production.json", infra_text, 0644) &&
              write_text(out_fd, dir, unit_name, unit, 0644) && write_text(out_fd, dir, "run", run, 0755) &&
              write_text(out_fd, dir, "README", readme, 0644) && write_text(out_fd, dir, env_name, envs, 0644);
    free(infra_text);
    free(unit);
    free(run);
    free(readme);
    free(envs);
    if (!ok)
        goto done;
    printf("keel build: %s: bin/%s%s, %d migration file%s, infra.production.json, %s, %s, run\n", dir, base,
           lib[0] ? ", lib/libkeel.so.0" : " (libkeel linked statically)", files, files == 1 ? "" : "s", unit_name,
           env_name);
    rc = CLI_OK;
done:
    if (sub >= 0)
        close(sub);
    if (out_fd >= 0)
        close(out_fd);
    free(dbs);
    json_decref(model);
    return rc;
}

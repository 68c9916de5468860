/* run.c - `keel run`: builds the app (keel.json's build command), provisions
 * its databases and starts it on a port, replacing this process so that
 * signals (Ctrl-C) reach the app directly; with --watch, keel stays as the
 * app's parent and rebuilds and restarts it on every change. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <keel/error.h>

#include "cli.h"
#include "local_pg.h"

/* True in a checkout of Keel itself, where ./dev builds the example app. */
static bool in_keel_repository(void)
{
    return access("dev", X_OK) == 0 && access("framework/cli/keel.c", F_OK) == 0;
}

const char *cli_find_app(const char *given)
{
    static const char *const usual[] = {"build/services/keel-example", "services/keel-example"};
    if (given)
        return access(given, X_OK) == 0 ? given : (fprintf(stderr, "keel: %s is not an executable\n", given), NULL);
    const char *env = getenv("KEEL_APP");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : (fprintf(stderr, "keel: KEEL_APP=%s is not an executable\n", env), NULL);
    const cli_project *p = cli_project_get();
    if (p->found) {
        if (access(p->app, X_OK) == 0)
            return p->app;
        fprintf(stderr, "keel: %s (\"app\" in %s/keel.json) is not built yet: %s\n", p->app, p->root,
                p->build[0] ? "keel run builds it, or run the \"build\" command" : "build it first");
        return NULL;
    }
    if (p->error[0]) {
        fprintf(stderr, "keel: %s\n", p->error);
        return NULL;
    }
    if (in_keel_repository())
        for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++)
            if (access(usual[i], X_OK) == 0)
                return usual[i];
    if (in_keel_repository())
        fprintf(stderr, "keel: no application binary found (looked for build/services/keel-example and "
                        "services/keel-example): run ./dev build, or pass --app PATH\n");
    else
        fprintf(stderr, "keel: no application found here: no keel.json in this folder or its parents. Run the "
                        "command inside your app (keel new NAME makes one), pass --app PATH or set KEEL_APP\n");
    return NULL;
}

/* Provisions the local cluster and the app's databases, and points the app
 * at them through KEEL_INFRA_CONFIG.  Returns 0 or 1 (reason printed). */
static int prepare_databases(const char *app_path)
{
    json_t *model = cli_load_app_model(app_path);
    if (!model)
        return 1;
    const char **names = cli_declared_databases(model);
    int rc = 0;
    if (names && names[0]) {
        local_pg pg;
        char infra[1024];
        keel_error *err = local_pg_ensure(keel_app_root(), &pg);
        if (!err)
            err = local_pg_provision(&pg, names);
        if (!err)
            err = local_pg_write_infra(&pg, names, infra, sizeof infra);
        local_pg_unlock();
        if (err) {
            fprintf(stderr, "keel run: %s%s%s\n", err->message, err->cause ? ": " : "", err->cause ? err->cause : "");
            keel_error_free(err);
            rc = 1;
        } else {
            setenv("KEEL_INFRA_CONFIG", infra, 1);
            setenv("KEEL_APP_ROOT", pg.root, 1);
        }
    }
    free(names);
    json_decref(model);
    return rc;
}

/* Replaces this process with the app, behind $KEEL_RUN_WRAPPER when set (a
 * command and its options split on spaces, e.g. "valgrind --leak-check=full"
 * or "gdb --args").  Returns only on failure. */
static void exec_app(const char *path)
{
    char *argv[64];
    size_t n = 0;
    const char *wrapper = getenv("KEEL_RUN_WRAPPER");
    char *copy = wrapper && *wrapper ? strdup(wrapper) : NULL;
    char *save = NULL;
    for (char *word = copy ? strtok_r(copy, " ", &save) : NULL; word && n < 62; word = strtok_r(NULL, " ", &save))
        argv[n++] = word;
    argv[n++] = (char *)path;
    argv[n] = NULL;
    execvp(argv[0], argv);
    free(copy);
}

bool cli_project_build(const cli_project *p, const char *cmd)
{
    if (!p->found || !p->build[0])
        return true;
    fprintf(stderr, "%s: building: %s\n", cmd, p->build);
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir(p->root) != 0)
            _exit(126);
        execl("/bin/sh", "sh", "-c", p->build, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    bool ok = pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok)
        fprintf(stderr, "%s: the build failed (%s, in %s)\n", cmd, p->build, p->root);
    return ok;
}

/* ---- --watch -------------------------------------------------------------------- */

/* A fingerprint of what is watched: every file's modification time, size and
 * inode, folded together, and how many files there are (a deleted file
 * changes it too).  Hidden files, build/ and .keel/ are left out. */
static void fingerprint_path(const char *path, int depth, uint64_t *sum, uint64_t *count)
{
    struct stat st;
    if (depth > 16 || lstat(path, &st) != 0)
        return;
    if (S_ISREG(st.st_mode)) {
        uint64_t h = (uint64_t)st.st_mtim.tv_sec * 1000000007u + (uint64_t)st.st_mtim.tv_nsec;
        h ^= (uint64_t)st.st_size * 0x9E3779B97F4A7C15u ^ (uint64_t)st.st_ino;
        *sum += h * 0xff51afd7ed558ccdu;
        (*count)++;
        return;
    }
    if (!S_ISDIR(st.st_mode))
        return;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || (depth == 0 && (!strcmp(e->d_name, "build") || !strcmp(e->d_name, "node_modules"))))
            continue;
        char child[PATH_MAX];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, e->d_name) < sizeof child)
            fingerprint_path(child, depth + 1, sum, count);
    }
    if (d)
        closedir(d);
}

static uint64_t fingerprint(const cli_project *p)
{
    uint64_t sum = 0, count = 0;
    if (p->nwatch == 0)
        fingerprint_path(p->root, 0, &sum, &count);
    for (size_t i = 0; i < p->nwatch; i++) {
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", p->root, p->watch[i]) < sizeof path)
            fingerprint_path(path, 1, &sum, &count);
    }
    return sum ^ (count << 48);
}

static pid_t start_app(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        exec_app(path);
        fprintf(stderr, "keel run: cannot start %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Stops the app the way Ctrl-C would and waits for it. */
static void stop_app(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

/* keel run --watch: keel stays as the app's parent.  Every change of a
 * watched file rebuilds; a good build replaces the app (its migrations are
 * applied at its start, the cluster stays up), a failed one leaves the
 * running app serving.  SIGINT/SIGTERM stop the app, then keel. */
static int watch(const cli_project *p, const char *path)
{
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGCHLD);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    pid_t app = start_app(path);
    uint64_t seen = fingerprint(p);
    fprintf(stderr, "keel run: watching %s for changes\n", p->root);
    for (;;) {
        struct timespec tick = {0, 300 * 1000 * 1000};
        siginfo_t info;
        int sig = sigtimedwait(&sigs, &info, &tick);
        if (sig == SIGINT || sig == SIGTERM) {
            stop_app(app);
            return CLI_OK;
        }
        if (sig == SIGCHLD) {
            int status;
            if (app > 0 && waitpid(app, &status, WNOHANG) == app) {
                fprintf(stderr, "keel run: the app exited (%s %d); waiting for a change to rebuild\n",
                        WIFEXITED(status) ? "status" : "signal",
                        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
                app = 0;
            }
            continue;
        }
        uint64_t now = fingerprint(p);
        if (now == seen)
            continue;
        /* Editors write in several steps: wait for the files to settle. */
        do {
            seen = now;
            nanosleep(&tick, NULL);
            now = fingerprint(p);
        } while (now != seen);
        fprintf(stderr, "keel run: change detected\n");
        if (!cli_project_build(p, "keel run")) {
            fprintf(stderr, "keel run: %s; waiting for the next change\n",
                    app > 0 ? "the running app keeps serving" : "no app is running");
            continue;
        }
        stop_app(app);
        app = 0;
        if (prepare_databases(path) != 0) {
            fprintf(stderr, "keel run: waiting for the next change\n");
            continue;
        }
        fprintf(stderr, "keel run: restarting %s\n", path);
        app = start_app(path);
    }
}

int cli_run(int argc, char **argv)
{
    const char *app = NULL;
    const char *port = NULL;
    bool watching = false;
    const char *dashboard = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = argv[++i];
        } else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc) {
            app = argv[++i];
        } else if (strcmp(argv[i], "--watch") == 0) {
            watching = true;
        } else if (strcmp(argv[i], "--dashboard-port") == 0 && i + 1 < argc) {
            dashboard = argv[++i];
        } else if (strcmp(argv[i], "--no-dashboard") == 0) {
            dashboard = "";
        } else {
            cli_print_usage(stderr, "run");
            return CLI_USAGE;
        }
    }
    if (port) {
        char *end;
        long n = strtol(port, &end, 10);
        if (*end || n < 1 || n > 65535) {
            fprintf(stderr, "keel run: --port wants a number from 1 to 65535, not \"%s\"\n", port);
            return CLI_USAGE;
        }
        setenv("PORT", port, 1);
    }
    /* The local dashboard, on 9400 unless told otherwise (the app prints its
     * address); a production app started without keel run has none. */
    if (dashboard && !*dashboard) {
        unsetenv("KEEL_DASHBOARD_PORT");
    } else if (dashboard) {
        char *end;
        long n = strtol(dashboard, &end, 10);
        if (*end || n < 0 || n > 65535) {
            fprintf(stderr, "keel run: --dashboard-port wants a number from 0 (any free port) to 65535, not \"%s\"\n",
                    dashboard);
            return CLI_USAGE;
        }
        setenv("KEEL_DASHBOARD_PORT", dashboard, 1);
    } else if (!getenv("KEEL_DASHBOARD_PORT")) {
        setenv("KEEL_DASHBOARD_PORT", "9400", 1);
    }
    const cli_project *p = cli_project_get();
    if (watching && (app || getenv("KEEL_APP") || !p->found)) {
        fprintf(stderr, "keel run --watch needs the app's keel.json (its build command and what to watch): "
                        "run it inside an app made with keel new\n");
        return CLI_USAGE;
    }
    bool built = app || (getenv("KEEL_APP") && *getenv("KEEL_APP")) || cli_project_build(p, "keel run");
    if (!built && !watching)
        return CLI_FAILED;
    const char *path = built ? cli_find_app(app) : NULL;
    if (!path && !watching)
        return CLI_FAILED;
    if (!path) /* the first build failed: wait for a fix */
        path = p->app;
    if (prepare_databases(path) != 0 && !watching)
        return CLI_FAILED;
    fprintf(stderr, "keel run: starting %s on http://localhost:%s\n", path,
            getenv("PORT") ? getenv("PORT") : "4000");
    if (watching)
        return watch(p, path);
    exec_app(path);
    fprintf(stderr, "keel run: cannot start %s: %s\n", path, strerror(errno));
    return CLI_FAILED;
}

/* tests/integration/test_release.c - `keel build` (framework/cli/build.c):
 * the example app's release is made, packed, unpacked in a fresh folder
 * and started there without the keel command, through its production infra
 * config pointed at the local PostgreSQL by environment variables, with a
 * migration added to the release: it migrates, serves, and loads the
 * libkeel it carries.  The systemd unit is hardened and, where
 * systemd-analyze exists, verified.  An output folder another user could
 * race with symlinks (theirs, writable by others, a symlink, or under one
 * of those) is refused with nothing written. */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "tap.h"

static bool has_mode(const char *path, mode_t mode)
{
    struct stat st;
    return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == mode;
}

/* True when the folder path exists and holds nothing. */
static bool empty_dir(const char *path)
{
    DIR *d = opendir(path);
    bool empty = d != NULL;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        empty &= strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    if (d)
        closedir(d);
    return empty;
}

/* Prepares a folder under work with shell command setup (run in work),
 * runs keel build --out work/out, and checks that it is refused saying
 * want and that folder work/untouched (the one a race would write in)
 * is still empty. */
static void refused(const char *work, const char *setup, const char *out, const char *want, const char *untouched,
                    const char *what)
{
    const char *srcdir = getenv("KEEL_SRCDIR"), *cli = getenv("KEEL_CLI"), *app = getenv("KEEL_EXAMPLE");
    char cmd[4096], path[800];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s && cd '%s' && '%s' build --app '%s' --out '%s/%s' 2>&1", work, setup,
             srcdir, cli, app, work, out);
    int status;
    char *text = ht_shell(cmd, &status);
    snprintf(path, sizeof path, "%s/%s", work, untouched);
    if (!ok(status == 1 && strstr(text, want) && empty_dir(path), "%s", what))
        printf("#   status %d, output: %s#   %s %s\n", status, text, path, empty_dir(path) ? "is empty" : "is not empty");
    free(text);
}

static void test_unsafe_out(const char *work)
{
    refused(work, "mkdir open && chmod 0777 open", "open", "its group or other users may write in it", "open",
            "an --out folder writable by others is refused, nothing written in it");
    refused(work, "mkdir grp && chmod 0775 grp", "grp/release", "grp: its group or other users may write", "grp",
            "a folder under a group-writable folder is refused, nothing created there");
    refused(work, "mkdir target && ln -s target link", "link", "link: it is a symbolic link", "target",
            "an --out folder that is a symlink is refused, nothing written where it points");
    refused(work, "mkdir target2 && ln -s target2 link2", "link2/release", "link2: it is a symbolic link", "target2",
            "so is an --out folder under a symlink");
    if (geteuid() != 0) {
        skip("not root: the folders of another user are made with chown");
        skip("not root");
        return;
    }
    refused(work, "mkdir theirs && chown nobody theirs", "theirs", "it belongs to uid", "theirs",
            "an --out folder owned by another user (nobody) is refused, nothing written in it");
    refused(work, "mkdir theirs2 && chown nobody theirs2", "theirs2/release", "theirs2: it belongs to uid",
            "theirs2", "so is a folder under another user's folder");
}

static bool contains(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

int main(void)
{
    const char *srcdir = getenv("KEEL_SRCDIR"), *cli = getenv("KEEL_CLI"), *app = getenv("KEEL_EXAMPLE");
    if (!srcdir || !cli || !app) {
        printf("Bail out! KEEL_SRCDIR, KEEL_CLI and KEEL_EXAMPLE must be set (run through make check)\n");
        return 1;
    }
    char root[256], migrations[512], cmd[4096], work[] = "/tmp/keel-release-XXXXXX";
    snprintf(migrations, sizeof migrations, "%s/migrations", srcdir);
    ht_make_app_root(root, sizeof root, migrations);
    if (!mkdtemp(work)) {
        printf("Bail out! no temporary folder\n");
        return 1;
    }
    ht_server provision;
    if (!ht_start_keel_run(&provision, root, NULL)) {
        printf("Bail out! keel run did not provision the databases\n");
        return 1;
    }
    is_int(ht_stop(&provision), 0, "keel run provisioned the local cluster (the production database here)");

    /* The release, made from the repository as a team's CI would (under
     * /tmp: a sticky folder above the output folder is allowed). */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' build --app '%s' --out '%s/release' 2>&1", srcdir, cli, app, work);
    int status;
    char *out = ht_shell(cmd, &status);
    is_int(status, 0, "keel build makes the release%s%s", status ? ": " : "", status ? out : "");
    like(out, "10 migration files", "with every declared database's migrations (%s)", out ? out : "");
    free(out);
    char path[800];
    snprintf(path, sizeof path, "%s/release/bin/keel-example", work);
    ok(has_mode(path, 0755), "bin/keel-example, executable");
    snprintf(path, sizeof path, "%s/release/lib/libkeel.so.0", work);
    ok(has_mode(path, 0644), "lib/libkeel.so.0 (the app links libkeel dynamically)");
    snprintf(path, sizeof path, "%s/release/migrations/todo/0001_create_todo_item.up.sql", work);
    ok(has_mode(path, 0644), "migrations/todo/0001_create_todo_item.up.sql");
    snprintf(path, sizeof path, "%s/release/infra.production.json", work);
    ok(contains(path, "\"$env\": \"KEEL_DB_HOST\"") && contains(path, "\"$env\": \"TODO_DB_ADMIN_PASSWORD\""),
       "infra.production.json reads the host and the passwords from the environment");
    snprintf(path, sizeof path, "%s/release/keel-example.env.example", work);
    ok(contains(path, "KEEL_SECRET_ADMIN_TOKEN=") && contains(path, "WEBHOOKS_DB_PASSWORD="),
       "keel-example.env.example lists the secrets and the database passwords");
    snprintf(path, sizeof path, "%s/release/keel-example.service", work);
    ok(contains(path, "User=keel-example") && contains(path, "NoNewPrivileges=yes") &&
           contains(path, "ProtectSystem=strict") && contains(path, "CapabilityBoundingSet=\n") &&
           contains(path, "KEEL_DRAIN_MS="),
       "the systemd unit runs as its own user, with NoNewPrivileges and ProtectSystem=strict, and drains");
    if (system("command -v systemd-analyze >/dev/null 2>&1") == 0) {
        /* Verified where the release would be installed: here. */
        snprintf(cmd, sizeof cmd,
                 "sed 's|/opt/keel-example|%s/release|g' '%s' >'%s/keel-example.service' && "
                 "systemd-analyze verify '%s/keel-example.service' 2>&1", work, path, work, work);
        out = ht_shell(cmd, &status);
        ok(status == 0 && !strstr(out, "keel-example.service:"), "systemd-analyze verify accepts the unit%s%s",
           out && *out ? ": " : "", out ? out : "");
        free(out);
    } else {
        skip("systemd-analyze is not installed");
    }

    /* Packed, unpacked in a fresh folder, a migration added. */
    snprintf(cmd, sizeof cmd, "tar -C '%s/release' -czf '%s/release.tar.gz' . && mkdir '%s/fresh' && "
             "tar -C '%s/fresh' -xzf '%s/release.tar.gz' && rm -rf '%s/release' && "
             "printf \"INSERT INTO todo_item (title) VALUES ('from the release');\\n\" "
             ">'%s/fresh/migrations/todo/0100_from_release.up.sql'", work, work, work, work, work, work, work);
    out = ht_shell(cmd, &status);
    is_int(status, 0, "the release is packed, unpacked in a fresh folder (the original removed), a migration added");
    free(out);

    /* Pointed at the local cluster through the production infra config. */
    char pg_json[400], pw_json[400];
    snprintf(pg_json, sizeof pg_json, "%s/.keel/pg.json", root);
    snprintf(pw_json, sizeof pw_json, "%s/.keel/passwords.json", root);
    json_t *pg = json_load_file(pg_json, 0, NULL), *pw = json_load_file(pw_json, 0, NULL);
    static char env[16][300];
    const char *envp[17];
    size_t n = 0;
    snprintf(env[n++], sizeof env[0], "KEEL_APP_ROOT=%s/fresh", work);
    snprintf(env[n++], sizeof env[0], "KEEL_INFRA_CONFIG=%s/fresh/infra.production.json", work);
    snprintf(env[n++], sizeof env[0], "LD_LIBRARY_PATH=%s/fresh/lib", work);
    snprintf(env[n++], sizeof env[0], "KEEL_DB_HOST=127.0.0.1");
    snprintf(env[n++], sizeof env[0], "KEEL_DB_PORT=%lld", (long long)json_integer_value(json_object_get(pg, "port")));
    static const char *const dbs[] = {"todo", "webhooks", "accounts"};
    for (size_t i = 0; i < 3; i++) {
        json_t *p = json_object_get(pw, dbs[i]);
        char up[16];
        for (size_t k = 0; k <= strlen(dbs[i]); k++)
            up[k] = (char)(dbs[i][k] >= 'a' && dbs[i][k] <= 'z' ? dbs[i][k] - 32 : dbs[i][k]);
        snprintf(env[n++], sizeof env[0], "%s_DB_PASSWORD=%s", up, json_string_value(json_object_get(p, "app")));
        snprintf(env[n++], sizeof env[0], "%s_DB_ADMIN_PASSWORD=%s", up, json_string_value(json_object_get(p, "admin")));
    }
    json_decref(pg);
    json_decref(pw);
    for (size_t i = 0; i < n; i++)
        envp[i] = env[i];
    envp[n] = NULL;
    snprintf(path, sizeof path, "%s/fresh/bin/keel-example", work);
    ht_server srv;
    bool started = ht_start(&srv, path, envp);
    ok(started, "the unpacked release starts without the keel command");
    if (started) {
        char *log = ht_log(&srv);
        like(log, "todo: applied 1 migration", "it applied the new migration itself");
        free(log);
        ht_response r = ht_request(&srv, "GET", "/todo", NULL, 0, NULL);
        is_int(r.status, 200, "it serves GET /todo from the production database");
        like(r.body, "from the release", "with the row the migration added");
        ht_free(&r);
        r = ht_request(&srv, "GET", "/__keel/readyz", NULL, 0, NULL);
        is_int(r.status, 200, "and is ready (%s)", r.body);
        ht_free(&r);
        snprintf(cmd, sizeof cmd, "grep -c '%s/fresh/lib/libkeel.so.0' /proc/%d/maps", work, (int)srv.pid);
        out = ht_shell(cmd, &status);
        ok(atoi(out) > 0, "it loaded the libkeel the release carries");
        free(out);
        is_int(ht_stop(&srv), 0, "it stops cleanly%s", ht_valgrind() ? " with no valgrind errors or leaks" : "");
    }
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' build --app '%s' --out '%s/fresh' 2>&1", srcdir, cli, app, work);
    out = ht_shell(cmd, &status);
    ok(status != 0 && strstr(out, "is not empty"), "keel build refuses a folder that is not empty (%s)",
       out ? out : "");
    free(out);
    test_unsafe_out(work);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    free(ht_shell(cmd, NULL));
    ht_remove_app_root(root);
    return tap_done();
}

/* project.c - keel.json, a team's own app described for the keel command:
 * where its binary is, how to build it, what `keel run --watch` watches.
 * It is looked for in the current folder and its parents (as git looks for
 * .git); the folder that holds it is the app root, so every command works
 * from anywhere inside the app without --app or KEEL_APP.
 *
 *   {"name": "notes", "app": "build/notes", "build": "make",
 *    "watch": ["main.c", "services", "migrations", "Makefile"]}
 *
 * "app" and "watch" are relative to the app root; "build" runs there with
 * /bin/sh.  Unknown keys are refused, like everywhere else. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static cli_project project;

/* The folder holding keel.json: start itself or its nearest parent; false
 * when none does. */
static bool find_root(const char *start, char *out, size_t len)
{
    char dir[PATH_MAX];
    if (!realpath(start, dir))
        return false;
    for (;;) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/keel.json", dir);
        if (access(path, F_OK) == 0) {
            snprintf(out, len, "%s", dir);
            return true;
        }
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            return false;
        *slash = '\0';
    }
}

static void problem(const char *path, const char *what)
{
    snprintf(project.error, sizeof project.error, "%s: %s", path, what);
}

static void load(const char *root)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/keel.json", root);
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j || !json_is_object(j)) {
        char what[300];
        snprintf(what, sizeof what, "line %d: %s", j ? 1 : e.line, j ? "expected an object" : e.text);
        problem(path, what);
        json_decref(j);
        return;
    }
    static const char *const keys[] = {"$schema", "name", "app", "build", "watch", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v) {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = !strcmp(key, keys[i]);
        if (!known) {
            char what[200];
            snprintf(what, sizeof what, "unknown key \"%.64s\" (expected name, app, build, watch)", key);
            problem(path, what);
            json_decref(j);
            return;
        }
    }
    const char *app = json_string_value(json_object_get(j, "app"));
    const char *build = json_string_value(json_object_get(j, "build"));
    const char *name = json_string_value(json_object_get(j, "name"));
    json_t *watch = json_object_get(j, "watch");
    if (!app || !*app) {
        problem(path, "\"app\" (the app binary, relative to this folder) is required");
    } else if ((json_object_get(j, "build") && !build) || (json_object_get(j, "name") && !name)) {
        problem(path, "\"build\" and \"name\" are strings");
    } else if (watch && !json_is_array(watch)) {
        problem(path, "\"watch\" is an array of files and folders");
    } else {
        snprintf(project.root, sizeof project.root, "%s", root);
        snprintf(project.app, sizeof project.app, "%s%s%s", app[0] == '/' ? "" : root, app[0] == '/' ? "" : "/",
                 app);
        snprintf(project.build, sizeof project.build, "%s", build ? build : "");
        snprintf(project.name, sizeof project.name, "%s", name ? name : "");
        size_t i;
        json_array_foreach(watch, i, v) {
            if (!json_is_string(v) || project.nwatch == CLI_WATCH_MAX)
                continue;
            snprintf(project.watch[project.nwatch++], sizeof project.watch[0], "%s", json_string_value(v));
        }
        project.found = true;
    }
    json_decref(j);
}

void cli_project_init(void)
{
    const char *given = getenv("KEEL_APP_ROOT");
    char root[PATH_MAX];
    if (!find_root(given && *given ? given : ".", root, sizeof root))
        return;
    /* An explicit KEEL_APP_ROOT wins; keel.json in a parent of it is not
     * this app's. */
    if (given && *given) {
        char real[PATH_MAX];
        if (!realpath(given, real) || strcmp(real, root) != 0)
            return;
    }
    load(root);
    if (project.found && !(given && *given))
        setenv("KEEL_APP_ROOT", project.root, 1);
}

const cli_project *cli_project_get(void)
{
    return &project;
}

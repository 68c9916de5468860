/* secrets_cmd.c - `keel secrets set|list|rm|rotate-key|check`: the
 * per-environment encrypted stores in secrets/ (see keel/secrets.h).  Values
 * are read from stdin only (never argv, which other users can see in ps) and
 * never printed.  What the app needs comes from its model (check). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include <keel/secrets.h>

#include "cli.h"

#define VALUE_MAX (1u << 20)

static const char usage_text[] =
    "usage: keel secrets set [--env NAME] SECRET_NAME     (the value is read from stdin)\n"
    "       keel secrets list [--env NAME]\n"
    "       keel secrets rm [--env NAME] SECRET_NAME\n"
    "       keel secrets rotate-key [--env NAME]\n"
    "       keel secrets check [--env NAME] [--app PATH]\n";

static int usage(void)
{
    fputs(usage_text, stderr);
    return CLI_USAGE;
}

static int fail(const char *what, keel_error *err)
{
    fprintf(stderr, "keel secrets %s: %s\n", what, err->message);
    keel_error_free(err);
    return CLI_FAILED;
}

/* Parses [--env NAME] [--app PATH] and at most one positional argument. */
static int parse(int argc, char **argv, const char **env, const char **app, const char **name)
{
    *env = NULL;
    *app = NULL;
    *name = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--env") == 0 && i + 1 < argc)
            *env = argv[++i];
        else if (strncmp(argv[i], "--env=", 6) == 0)
            *env = argv[i] + 6;
        else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            *app = argv[++i];
        else if (argv[i][0] != '-' && !*name)
            *name = argv[i];
        else
            return usage();
    }
    return CLI_OK;
}

static int check_name(const char *name)
{
    if (keel_secret_name_valid(name))
        return CLI_OK;
    fprintf(stderr,
            "keel secrets: \"%s\" is not a valid secret name: use letters, digits and _, starting with a letter "
            "(at most 64 characters)\n", name);
    return CLI_USAGE;
}

/* Reads the value into guarded memory: one line without echo on a terminal,
 * else all of stdin minus one trailing newline. */
static char *read_value(const char *name, size_t *len)
{
    char *buf = sodium_malloc(VALUE_MAX + 2);
    if (!buf)
        return NULL;
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty && tcgetattr(STDIN_FILENO, &old) == 0) {
        fprintf(stderr, "Value for %s (not echoed): ", name);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    } else {
        tty = false;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(STDIN_FILENO, buf + n, VALUE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n > VALUE_MAX || (tty && memchr(buf + n - (size_t)r, '\n', (size_t)r)))
            break;
    }
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
        char *nl = memchr(buf, '\n', n);
        if (nl)
            n = (size_t)(nl - buf + 1);
    }
    if (n && buf[n - 1] == '\n')
        n--;
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int cmd_set(const char *env, const char *name)
{
    if (!name)
        return usage();
    if (check_name(name) != CLI_OK)
        return CLI_USAGE;
    size_t len = 0;
    char *value = read_value(name, &len);
    if (!value)
        return fail("set", keel_error_new(KEEL_RESOURCE_EXHAUSTED, "out of memory"));
    int rc = CLI_OK;
    keel_secrets *s = NULL;
    keel_error *err = NULL;
    if (len > VALUE_MAX)
        err = keel_error_new(KEEL_INVALID_ARGUMENT, "the value is longer than %u bytes", VALUE_MAX);
    else if (len == 0)
        err = keel_error_new(KEEL_INVALID_ARGUMENT, "empty value on stdin: nothing set");
    if (!err)
        err = keel_secrets_open(NULL, env, KEEL_SECRETS_CREATE_KEY | KEEL_SECRETS_WRITE, &s);
    if (!err)
        err = keel_secrets_set(s, name, value, len);
    sodium_free(value);
    if (err)
        rc = fail("set", err);
    else
        fprintf(stderr, "set %s for environment %s (%s)\n", name, env, keel_secrets_path(s));
    keel_secrets_free(s);
    return rc;
}

static void list_one(const keel_secrets *s, const char *env)
{
    for (size_t i = 0; i < keel_secrets_count(s); i++) {
        int64_t at = 0;
        const char *name = keel_secrets_name_at(s, i, &at);
        time_t t = (time_t)at;
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("%-32s %-12s %s\n", name, env, when);
    }
}

/* Lists one environment, or every store in the folder. */
static int cmd_list(const char *env)
{
    const char *envs_one[] = {env, NULL};
    char dirpath[600];
    const char *d = getenv("KEEL_SECRETS_DIR");
    if (d && *d)
        snprintf(dirpath, sizeof dirpath, "%s", d);
    else
        snprintf(dirpath, sizeof dirpath, "%s/secrets", keel_app_root());
    char found[64][64];
    size_t nfound = 0;
    if (!env) {
        DIR *dir = opendir(dirpath);
        for (struct dirent *e; dir && (e = readdir(dir)) != NULL && nfound < 64;) {
            size_t n = strlen(e->d_name);
            if (n > 4 && n - 4 < 64 && strcmp(e->d_name + n - 4, ".enc") == 0)
                snprintf(found[nfound++], 64, "%.*s", (int)(n - 4), e->d_name);
        }
        if (dir)
            closedir(dir);
    }
    printf("%-32s %-12s %s\n", "NAME", "ENVIRONMENT", "LAST SET (UTC)");
    int rc = CLI_OK;
    size_t count = env ? 1 : nfound;
    for (size_t i = 0; i < count; i++) {
        const char *e = env ? envs_one[0] : found[i];
        keel_secrets *s = NULL;
        keel_error *err = keel_secrets_open(NULL, e, 0, &s);
        if (err)
            rc = fail("list", err);
        else
            list_one(s, e);
        keel_secrets_free(s);
    }
    return rc;
}

static int cmd_rm(const char *env, const char *name)
{
    if (!name)
        return usage();
    if (check_name(name) != CLI_OK)
        return CLI_USAGE;
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(NULL, env, KEEL_SECRETS_WRITE, &s);
    if (!err)
        err = keel_secrets_rm(s, name);
    keel_secrets_free(s);
    if (err)
        return fail("rm", err);
    fprintf(stderr, "removed %s from environment %s\n", name, env);
    return CLI_OK;
}

static int cmd_rotate(const char *env)
{
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(NULL, env, KEEL_SECRETS_WRITE, &s);
    if (!err)
        err = keel_secrets_rotate_key(s);
    keel_secrets_free(s);
    if (err)
        return fail("rotate-key", err);
    fprintf(stderr, "re-encrypted environment %s with a new key\n", env);
    return CLI_OK;
}

/* Lists every secret the app model declares with whether env has it, the
 * way the app's start-up check reads it ($KEEL_SECRET_<NAME>, else the
 * store), and the command that sets each missing one.  CLI_FAILED when one
 * is missing, so that a deploy can stop before an app that would refuse to
 * start. */
static int cmd_check(const char *env, const char *app)
{
    const char *path = cli_find_app(app);
    json_t *model = path ? cli_load_app_model(path) : NULL;
    if (!model)
        return CLI_FAILED;
    keel_secrets *s = NULL;
    keel_error *err = keel_secrets_open(NULL, env, 0, &s);
    if (err) {
        json_decref(model);
        return fail("check", err);
    }
    size_t declared = 0, missing = 0, i, j;
    json_t *svc, *item;
    printf("%-32s %-20s %s\n", "NAME", "SERVICE", "STATUS");
    json_array_foreach(json_object_get(model, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "secrets"), j, item) {
            const char *name = json_string_value(item);
            char var[96];
            snprintf(var, sizeof var, "KEEL_SECRET_%s", name ? name : "");
            declared++;
            printf("%-32s %-20s ", name, json_string_value(json_object_get(svc, "name")));
            if (getenv(var)) {
                printf("set ($%s)\n", var);
            } else if (keel_secrets_get(s, name)) {
                printf("set\n");
            } else {
                printf("missing: keel secrets set --env %s %s\n", env, name);
                missing++;
            }
        }
    }
    if (missing)
        fprintf(stderr, "keel secrets check: %zu of %zu declared secret%s missing for environment %s (%s)\n",
                missing, declared, declared == 1 ? " is" : "s are", env, keel_secrets_path(s));
    keel_secrets_free(s);
    json_decref(model);
    return missing ? CLI_FAILED : CLI_OK;
}

int cli_secrets(int argc, char **argv)
{
    if (argc < 1)
        return usage();
    if (sodium_init() < 0) /* sodium_malloc needs it */
        return fail(argv[0], keel_error_new(KEEL_INTERNAL, "libsodium cannot be initialised"));
    const char *env, *app, *name;
    if (parse(argc - 1, argv + 1, &env, &app, &name) != CLI_OK)
        return CLI_USAGE;
    const char *sub = argv[0];
    if (app && strcmp(sub, "check") != 0)
        return usage(); /* only check reads the app */
    if (strcmp(sub, "list") == 0 && !name)
        return cmd_list(env);
    if (!env)
        env = "local";
    if (strcmp(sub, "set") == 0)
        return cmd_set(env, name);
    if (strcmp(sub, "rm") == 0)
        return cmd_rm(env, name);
    if (strcmp(sub, "rotate-key") == 0 && !name)
        return cmd_rotate(env);
    if (strcmp(sub, "check") == 0 && !name)
        return cmd_check(env, app);
    return usage();
}

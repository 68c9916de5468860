/* gen.c - the `keel gen` command: loads the app model and writes what one
 * of the generators makes of it (gen_openapi.c, gen_typescript.c, gen_c.c);
 * also the model readers they share (gen.h). */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "gen.h"

/* ---- the model ------------------------------------------------------------------- */

bool gen_is_public(json_t *ep)
{
    const char *access = json_string_value(json_object_get(ep, "access"));
    return !access || strcmp(access, "private") != 0;
}

bool gen_needs_auth(json_t *ep)
{
    const char *access = json_string_value(json_object_get(ep, "access"));
    return access && strcmp(access, "auth") == 0;
}

const char *gen_str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

bool gen_field_in(json_t *f, const char *where)
{
    return strcmp(gen_str(f, "in"), where) == 0;
}

const char *gen_place(json_t *f, const char *method)
{
    const char *in = gen_str(f, "in");
    bool bodyless = strcasecmp(method, "GET") == 0 || strcasecmp(method, "HEAD") == 0 || strcasecmp(method, "DELETE") == 0;
    return strcmp(in, "body") == 0 && bodyless ? "query" : in;
}

bool gen_has_body(json_t *fields, const char *method)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f)
        if (strcmp(gen_place(f, method), "body") == 0)
            return true;
    return false;
}
/* "mark_done" -> "MarkDone": ASCII letters and digits only, every other byte
 * (also '-', '.', and the bytes of non-ASCII characters) starts a new word. */
const char *gen_pascal(const char *name, char *buf, size_t len)
{
    size_t o = 0;
    bool up = true;
    for (const char *p = name; *p && o + 1 < len; p++) {
        if (!gen_is_alnum(*p)) {
            up = true;
            continue;
        }
        buf[o++] = (char)(up ? toupper((unsigned char)*p) : *p);
        up = false;
    }
    buf[o] = '\0';
    return buf;
}

/* "mark_done" -> "markDone"; "_" before a leading digit, "_" for a name
 * without letters or digits. */
const char *gen_camel(const char *name, char *buf, size_t len)
{
    if (len < 3) {
        buf[0] = '\0';
        return buf;
    }
    gen_pascal(name, buf + 1, len - 1);
    if (buf[1] == '\0' || isdigit((unsigned char)buf[1])) {
        buf[0] = '_';
        return buf;
    }
    buf[1] = (char)tolower((unsigned char)buf[1]);
    return memmove(buf, buf + 1, strlen(buf + 1) + 1);
}

bool gen_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void gen_comment(keel_buf *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        if ((p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*')) {
            keel_buf_putc(b, p[0]);
            keel_buf_putc(b, ' ');
        } else {
            keel_buf_putc(b, *p == '\n' || *p == '\r' ? ' ' : *p);
        }
    }
}

/* ---- the command ----------------------------------------------------------------- */

static int write_out(const char *path, const char *text)
{
    if (!path) {
        fputs(text, stdout);
        return CLI_OK;
    }
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "keel gen: cannot write %s\n", path);
        return CLI_FAILED;
    }
    return CLI_OK;
}

/* The C client: FILE.c and FILE.h beside it (default <prefix>_client.c
 * in the current folder); prefix defaults to the project's name. */
static int write_c_client(json_t *model, const char *out_path, const char *prefix)
{
    const cli_project *p = cli_project_get();
    char pfx[64], src[1024], hdr[1024];
    snprintf(pfx, sizeof pfx, "%s", prefix ? prefix : p->found && p->name[0] ? p->name : "app");
    for (char *c = pfx; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_')
            *c = '_';
    if (isdigit((unsigned char)pfx[0])) {
        fprintf(stderr, "keel gen client --lang c: the prefix \"%s\" cannot start a C identifier\n", pfx);
        return CLI_USAGE;
    }
    if (out_path)
        snprintf(src, sizeof src, "%s", out_path);
    else
        snprintf(src, sizeof src, "%s_client.c", pfx);
    size_t n = strlen(src);
    if (n < 3 || strcmp(src + n - 2, ".c") != 0 || (out_path && strlen(out_path) != n)) {
        fprintf(stderr, "keel gen client --lang c: --out names the source file, FILE.c (FILE.h is written beside it)\n");
        return CLI_USAGE;
    }
    memcpy(hdr, src, n + 1);
    hdr[n - 1] = 'h';
    const char *slash = strrchr(hdr, '/');
    char *header = NULL, *source = NULL;
    int rc = CLI_FAILED;
    if (gen_c(model, pfx, slash ? slash + 1 : hdr, &header, &source)) {
        rc = write_out(hdr, header);
        if (rc == CLI_OK)
            rc = write_out(src, source);
        if (rc == CLI_OK && !out_path)
            fprintf(stderr, "keel gen: wrote %s and %s\n", src, hdr);
    }
    free(header);
    free(source);
    return rc;
}

/* The model that `keel app-model` printed into path (a saved model: no app
 * binary needed, as when it was built for another machine). */
static json_t *load_model_file(const char *path)
{
    json_error_t e;
    json_t *model = json_load_file(path, 0, &e);
    if (!model)
        fprintf(stderr, "keel gen: --model %s: %s (line %d)\n", path, e.text, e.line);
    else if (!json_is_array(json_object_get(model, "services"))) {
        fprintf(stderr, "keel gen: --model %s is not an app model (no \"services\" list)\n", path);
        json_decref(model);
        model = NULL;
    }
    return model;
}

int cli_gen(int argc, char **argv)
{
    const char *what = argc > 0 ? argv[0] : "";
    const char *out_path = NULL, *app = NULL, *lang = NULL, *prefix = NULL, *model_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out_path = argv[++i];
        else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
            app = argv[++i];
        else if (strcmp(argv[i], "--lang") == 0 && i + 1 < argc)
            lang = argv[++i];
        else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc)
            prefix = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
            model_path = argv[++i];
        else {
            cli_print_usage(stderr, "gen");
            return CLI_USAGE;
        }
    }
    bool openapi = strcmp(what, "openapi") == 0, client = strcmp(what, "client") == 0;
    if ((!openapi && !client) || (prefix && (!lang || strcmp(lang, "c") != 0)) || (app && model_path)) {
        cli_print_usage(stderr, "gen");
        return CLI_USAGE;
    }
    if (client && (!lang || (strcmp(lang, "typescript") != 0 && strcmp(lang, "c") != 0))) {
        fprintf(stderr, "keel gen client: --lang typescript or --lang c\n");
        return CLI_USAGE;
    }
    json_t *model = model_path ? load_model_file(model_path) : NULL;
    if (!model_path) {
        const char *path = cli_find_app(app);
        model = path ? cli_load_app_model(path) : NULL;
    }
    if (!model)
        return CLI_FAILED;
    int rc;
    if (openapi) {
        const cli_project *p = cli_project_get();
        json_t *doc = gen_openapi(model, p->found && p->name[0] ? p->name : "Keel app");
        char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(doc);
        if (!text) {
            json_decref(model);
            fprintf(stderr, "keel gen openapi: out of memory\n");
            return CLI_FAILED;
        }
        size_t n = strlen(text);
        char *nl = realloc(text, n + 2);
        if (nl) {
            text = nl;
            text[n] = '\n';
            text[n + 1] = '\0';
        }
        rc = write_out(out_path, text);
        free(text);
    } else if (strcmp(lang, "c") == 0) {
        rc = write_c_client(model, out_path, prefix);
    } else {
        char *text = gen_typescript(model);
        rc = text ? write_out(out_path, text) : CLI_FAILED;
        free(text);
    }
    json_decref(model);
    return rc;
}

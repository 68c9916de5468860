/* new.c - `keel new NAME [DIR]`: a team's own app that builds and runs at
 * once.  It holds the templates: keel.json (so every keel command finds the
 * app from anywhere inside it), a Makefile on pkg-config with the run path
 * of the installed libkeel, one service with its own database, a migration,
 * typed endpoints and a raw one, and a .gitignore for what must not be
 * committed.  "@NAME@" in a template is the app's name. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "../lib/core.h"

#define CMD "keel new"

static const char keel_json[] =
    "{\n"
    "  \"name\": \"@NAME@\",\n"
    "  \"app\": \"build/@NAME@\",\n"
    "  \"build\": \"make\",\n"
    "  \"watch\": [\"main.c\", \"services\", \"migrations\", \"Makefile\"]\n"
    "}\n";

static const char makefile[] =
    "# Builds the app against the installed Keel (found with pkg-config; if Keel is\n"
    "# installed under a prefix, PKG_CONFIG_PATH=PREFIX/lib/pkgconfig).  The run path\n"
    "# lets the binary find libkeel.so there without LD_LIBRARY_PATH.\n"
    "KEEL_CFLAGS := $(shell pkg-config --cflags keel)\n"
    "KEEL_LIBS := $(shell pkg-config --libs keel)\n"
    "KEEL_LIBDIR := $(shell pkg-config --variable=libdir keel)\n"
    "ifeq ($(KEEL_LIBS),)\n"
    "$(error pkg-config cannot find keel: install it (./dev install --prefix DIR in Keel's repository) and set PKG_CONFIG_PATH=DIR/lib/pkgconfig)\n"
    "endif\n"
    "\n"
    "CFLAGS ?= -O2 -g\n"
    "override CFLAGS += -std=c11 -Wall -Wextra -Werror $(KEEL_CFLAGS)\n"
    "override LDFLAGS += -Wl,-rpath,$(KEEL_LIBDIR)\n"
    "SOURCES := main.c $(wildcard services/*/*.c)\n"
    "HEADERS := $(wildcard services/*.h services/*/*.h)\n"
    "\n"
    "build/@NAME@: $(SOURCES) $(HEADERS)\n"
    "\t@mkdir -p build\n"
    "\t$(CC) $(CFLAGS) -Iservices -o $@ $(SOURCES) $(LDFLAGS) $(KEEL_LIBS)\n"
    "\n"
    "clean:\n"
    "\trm -rf build\n"
    ".PHONY: clean\n";

static const char main_c[] =
    "/* main.c - the @NAME@ app: every service it serves is listed here. */\n"
    "#include <keel/keel.h>\n"
    "\n"
    "#include \"services.h\"\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    return keel_main(argc, argv, (const keel_service *const[]){\n"
    "        &@NAME@_service,\n"
    "        NULL\n"
    "    });\n"
    "}\n";

static const char services_h[] =
    "/* services/services.h - the app's services, as main.c lists them. */\n"
    "#ifndef SERVICES_H\n"
    "#define SERVICES_H\n"
    "\n"
    "#include <keel/keel.h>\n"
    "\n"
    "extern const keel_service @NAME@_service;\n"
    "\n"
    "#endif\n";

static const char service_c[] =
    "/* services/@NAME@/@NAME@.c - the @NAME@ service: notes kept in its own\n"
    " * PostgreSQL database (schema in migrations/@NAME@/), two typed endpoints\n"
    " * and a raw one. */\n"
    "#include <keel/keel.h>\n"
    "\n"
    "#include <stdio.h>\n"
    "\n"
    "#include \"services.h\"\n"
    "\n"
    "typedef struct { const char *text; } note_new;\n"
    "typedef struct { int64_t id; } note_ref;\n"
    "typedef struct { int64_t id; const char *text; } note;\n"
    "\n"
    "static const keel_field note_new_fields[] = KEEL_FIELDS(KEEL_STRING(note_new, text));\n"
    "static const keel_field note_ref_fields[] = KEEL_FIELDS(KEEL_INT64(note_ref, id, KEEL_IN_PATH));\n"
    "static const keel_field note_fields[] = KEEL_FIELDS(\n"
    "    KEEL_INT64(note, id),\n"
    "    KEEL_STRING(note, text));\n"
    "\n"
    "static keel_sqldb @NAME@_db = KEEL_SQLDB(\"@NAME@\", \"migrations/@NAME@\");\n"
    "\n"
    "/* POST /@NAME@ {\"text\": \"...\"} */\n"
    "static keel_error *create(keel_req *req, const note_new *in, note *out)\n"
    "{\n"
    "    if (!*in->text)\n"
    "        return keel_error_new(KEEL_INVALID_ARGUMENT, \"text must not be empty\");\n"
    "    keel_row *row;\n"
    "    keel_error *err = keel_db_query_row(req, &@NAME@_db, &row,\n"
    "        \"INSERT INTO note (text) VALUES ($1) RETURNING id, text\", KEEL_ARG_TEXT(in->text));\n"
    "    return err ? err : keel_row_scan(row, \"it\", &out->id, &out->text);\n"
    "}\n"
    "\n"
    "/* GET /@NAME@/:id */\n"
    "static keel_error *get(keel_req *req, const note_ref *in, note *out)\n"
    "{\n"
    "    keel_row *row;\n"
    "    keel_error *err = keel_db_query_row(req, &@NAME@_db, &row,\n"
    "        \"SELECT id, text FROM note WHERE id = $1\", KEEL_ARG_INT64(in->id));\n"
    "    if (err && keel_db_no_rows(err)) {\n"
    "        keel_error_free(err);\n"
    "        return keel_error_new(KEEL_NOT_FOUND, \"note %lld not found\", (long long)in->id);\n"
    "    }\n"
    "    return err ? err : keel_row_scan(row, \"it\", &out->id, &out->text);\n"
    "}\n"
    "\n"
    "/* GET /@NAME@/raw/<rest>: a raw handler sees the whole request (method,\n"
    " * path parameters, query, headers, body) and writes status, headers and\n"
    " * body itself; an existing router can be moved in behind one. */\n"
    "static keel_error *raw(keel_req *req, keel_resp *resp)\n"
    "{\n"
    "    const char *agent = keel_req_header(req, \"User-Agent\");\n"
    "    keel_buf *body = keel_resp_buf(resp);\n"
    "    keel_buf_printf(body, \"%s %s rest=%s agent=%s\\n\", keel_req_method(req), keel_req_path(req),\n"
    "                    keel_req_param(req, \"rest\"), agent ? agent : \"-\");\n"
    "    keel_resp_status(resp, 200);\n"
    "    return keel_resp_header(resp, \"Content-Type\", \"text/plain\");\n"
    "}\n"
    "\n"
    "const keel_service @NAME@_service = {\n"
    "    .name = \"@NAME@\",\n"
    "    .endpoints = (const keel_endpoint[]){\n"
    "        KEEL_TYPED(\"POST\", \"/@NAME@\", create, note_new, note),\n"
    "        KEEL_TYPED(\"GET\", \"/@NAME@/:id\", get, note_ref, note),\n"
    "        KEEL_RAW(\"GET\", \"/@NAME@/raw/*rest\", raw),\n"
    "        KEEL_ENDPOINT_END\n"
    "    },\n"
    "    .databases = (keel_sqldb *const[]){ &@NAME@_db, NULL },\n"
    "};\n";

static const char migration_up[] =
    "CREATE TABLE note (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    text text NOT NULL,\n"
    "    created_at timestamptz NOT NULL DEFAULT now()\n"
    ");\n";

static const char migration_down[] = "DROP TABLE note;\n";

static const char gitignore[] =
    "# Built binaries.\n"
    "/build/\n"
    "# keel run's local cluster, generated passwords and infra config.\n"
    "/.keel/\n"
    "# Keys of the secrets stores: never commit them (the .enc stores are safe to commit).\n"
    "/secrets/*.key\n";

static const char readme[] =
    "# @NAME@\n"
    "\n"
    "A Keel app.  `keel run` builds it (`make`), provisions its local database and serves it on\n"
    "http://localhost:4000; `keel run --watch` rebuilds and restarts it when a file changes.\n"
    "\n"
    "    curl -H 'Content-Type: application/json' -d '{\"text\":\"hello\"}' localhost:4000/@NAME@\n"
    "    curl localhost:4000/@NAME@/1\n"
    "    curl localhost:4000/@NAME@/raw/any/path\n";

/* Writes template (with @NAME@ replaced) to dir/rel, creating folders;
 * refuses to overwrite. */
static bool write_template(const char *dir, const char *rel, const char *template, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *slash = strchr(path + strlen(dir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, CMD ": cannot create %s: %s\n", path, strerror(errno));
            return false;
        }
        *slash = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        fprintf(stderr, CMD ": cannot create %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    for (const char *p = template; *p;) {
        const char *at = strstr(p, "@NAME@");
        size_t n = at ? (size_t)(at - p) : strlen(p);
        fwrite(p, 1, n, f);
        p += n;
        if (at) {
            fputs(name, f);
            p += 6;
        }
    }
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok)
        fprintf(stderr, CMD ": cannot write %s\n", path);
    return ok;
}

int cli_new(int argc, char **argv)
{
    if (argc < 1 || argc > 2 || argv[0][0] == '-') {
        cli_print_usage(stderr, "new");
        return CLI_USAGE;
    }
    const char *name = argv[0];
    if (!keel__name_valid(name)) {
        fprintf(stderr, CMD ": \"%s\" cannot name an app: it names its service and database too, so it is "
                        "[a-z][a-z0-9_]*, at most %d characters (for example notes or order_book)\n",
                name, KEEL_NAME_MAX);
        return CLI_USAGE;
    }
    const char *dir = argc == 2 ? argv[1] : name;
    if (mkdir(dir, 0755) != 0) {
        if (errno != EEXIST) {
            fprintf(stderr, CMD ": cannot create %s: %s\n", dir, strerror(errno));
            return CLI_FAILED;
        }
        char probe[PATH_MAX];
        snprintf(probe, sizeof probe, "%s/keel.json", dir);
        if (access(probe, F_OK) == 0) {
            fprintf(stderr, CMD ": %s already holds a Keel app (keel.json); nothing was changed\n", dir);
            return CLI_FAILED;
        }
    }
    char service[300], up[300], down[300];
    snprintf(service, sizeof service, "services/%s/%s.c", name, name);
    snprintf(up, sizeof up, "migrations/%s/1_create_note.up.sql", name);
    snprintf(down, sizeof down, "migrations/%s/1_create_note.down.sql", name);
    const struct { const char *rel, *text; } files[] = {
        {"keel.json", keel_json}, {"Makefile", makefile}, {"main.c", main_c}, {"services/services.h", services_h},
        {service, service_c}, {up, migration_up}, {down, migration_down}, {".gitignore", gitignore},
        {"README.md", readme},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (!write_template(dir, files[i].rel, files[i].text, name))
            return CLI_FAILED;
    printf("Created the Keel app %s in %s:\n"
           "  cd %s && keel run          build with make, provision the database, serve on :4000\n"
           "  keel run --watch           the same, rebuilding and restarting on every change\n"
           "  curl -H 'Content-Type: application/json' -d '{\"text\":\"hi\"}' localhost:4000/%s\n",
           name, dir, dir, name);
    return CLI_OK;
}

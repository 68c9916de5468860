/* infra.h - private: the infra config, a JSON file (path in
 * KEEL_INFRA_CONFIG) that maps each logical database to a server and its
 * credentials.  The same app binary runs everywhere; only this file changes.
 *
 *   {"sql_servers": [{"host": "127.0.0.1", "port": 5432, "sslmode": "disable",
 *                     "databases": {"todo": {"name": "todo",
 *                         "user": "todo_app", "password": "..." | {"$env": "VAR"} | {"$secret": "NAME"},
 *                         "admin_user": "todo_admin", "admin_password": ...,
 *                         "readonly_user": "todo_ro", "readonly_password": ...}}}],
 *    "pool": {"max_connections": 20, "checkout_timeout_ms": 5000,
 *             "statement_timeout_ms": 30000}}
 *
 * `keel run` writes one for the local cluster (.keel/infra.local.json, 0600). */
#ifndef KEEL_INFRA_H
#define KEEL_INFRA_H

#include <jansson.h>
#include "keel/error.h"

typedef struct keel_infra keel_infra;

typedef enum { KEEL_ROLE_APP = 0, KEEL_ROLE_ADMIN, KEEL_ROLE_READONLY } keel_db_role;

typedef struct keel_pool_settings {
    unsigned max_connections;
    unsigned checkout_timeout_ms;
    unsigned statement_timeout_ms;
} keel_pool_settings;

/* Reads and checks the file at path.  Errors name the file and the JSON path
 * of the problem.  The caller owns *out (keel__infra_free). */
keel_error *keel__infra_load(const char *path, keel_infra **out);
void keel__infra_free(keel_infra *infra);

/* A libpq conninfo string (keyword='value', quoted) for the logical database
 * as role; malloc'd, owned by the caller (it holds a password: wipe and free).
 * not_found when the config does not list the database or the role. */
keel_error *keel__infra_conninfo(const keel_infra *infra, const char *logical, keel_db_role role,
                                 char **out);

/* The same as a postgresql:// URI with percent-encoding (for psql and
 * other tools); malloc'd, owned by the caller. */
keel_error *keel__infra_uri(const keel_infra *infra, const char *logical, keel_db_role role, char **out);

void keel__infra_pool(const keel_infra *infra, keel_pool_settings *out);

#endif

/* infra.h - private: the infra config, one JSON file per environment that
 * says where every database the app talks to lives, managed (migrated by
 * Keel) or external (the team's existing database), in one shape.  The same
 * app binary runs everywhere; only this file changes.  doc/infra-config.md
 * and doc/infra-config.schema.json document it for users.
 *
 *   {"env": "production",
 *    "sql_servers": [{"host": "db.internal", "port": 5432, "sslmode": "verify-full",
 *                     "sslrootcert": "/etc/ssl/db-ca.pem",
 *                     "databases": {"todo": {"name": "todo",
 *                         "user": "todo_app", "password": "..." | {"$env": "VAR"} | {"$secret": "NAME"},
 *                         "admin_user": "todo_admin", "admin_password": ...,
 *                         "readonly_user": "todo_ro", "readonly_password": ...,
 *                         "pool": {"max_connections": 40},
 *                         "replicas": [{"host": "db-replica-1.internal", "port": 5432}]}}}],
 *    "pool": {"max_connections": 20, "checkout_timeout_ms": 5000, "statement_timeout_ms": 30000}}
 *
 * host, port, sslmode and sslrootcert may also be {"$env": "VAR"}.  The file
 * is checked whole when it is read: an unknown key, a wrong type or a
 * logical name listed twice is an error naming the file and the JSON path.
 * `keel run` writes the local one (.keel/infra.local.json, 0600): it owns
 * the server marked "local_cluster": true and keeps every other entry. */
#ifndef KEEL_INFRA_H
#define KEEL_INFRA_H

#include <stdbool.h>
#include <stddef.h>
#include "keel/error.h"

typedef struct keel_infra keel_infra;

typedef enum { KEEL_ROLE_APP = 0, KEEL_ROLE_ADMIN, KEEL_ROLE_READONLY } keel_db_role;

typedef struct keel_pool_settings {
    unsigned max_connections;      /* default 20 */
    unsigned checkout_timeout_ms;  /* default 5000 */
    unsigned statement_timeout_ms; /* default 30000; 0: no limit */
} keel_pool_settings;

#define KEEL_CONN_PARAMS_MAX 8

/* One connection as libpq's keyword/value arrays, handed straight to
 * PQconnectdbParams (never a conninfo string that is parsed back). */
typedef struct keel_conn_params {
    const char *keywords[KEEL_CONN_PARAMS_MAX + 1]; /* NULL-terminated; static strings */
    char *values[KEEL_CONN_PARAMS_MAX + 1];         /* owned copies */
} keel_conn_params;

/* Everything needed to reach one database as one role. */
typedef struct keel_db_settings {
    keel_conn_params conn;
    keel_pool_settings pool;
    bool sslmode_default;        /* sslmode was chosen from the host, not configured */
    char password_from[160];     /* where the password came from, for messages:
                                    "secret NAME", "$VAR", "the infra config" or "" */
} keel_db_settings;

/* Reads and checks the file at path.  Errors name the file and the JSON path
 * of the problem, never a value.  The caller owns *out (keel__infra_free). */
keel_error *keel__infra_load(const char *path, keel_infra **out);
/* The same from text already in memory; path is only for messages. */
keel_error *keel__infra_parse(const char *text, size_t len, const char *path, keel_infra **out);
void keel__infra_free(keel_infra *infra);

/* The process's infra config, read once from $KEEL_INFRA_CONFIG (also when
 * it fails: a later call tries again).  failed_precondition when the
 * variable is not set.  Never freed: it is a registry filled at start. */
keel_error *keel__infra_process(const keel_infra **out);

const char *keel__infra_path(const keel_infra *infra);
/* The "cors" object (checked by http/cors.c when the app starts), or NULL. */
const struct json_t *keel__infra_cors(const keel_infra *infra);
/* The "tracing" object (checked by observe/trace.c), or NULL. */
const struct json_t *keel__infra_tracing(const keel_infra *infra);

/* The environment the file says it describes ("env"), or NULL. */
const char *keel__infra_env(const keel_infra *infra);
bool keel__infra_has(const keel_infra *infra, const char *logical);

/* The settings for logical as role.  The password is the entry's (inline,
 * $env or $secret), else the secret default_secret when given (an external
 * database's, declared in code), else none.  sslmode, when not configured,
 * is "prefer" for this machine (socket directory, localhost, loopback) and
 * "verify-full" for any other host, against the system's certificate
 * authorities when sslrootcert is not set.  not_found when the config does
 * not list the database.  Free with keel__db_settings_free (it wipes the
 * password); on error there is nothing to free. */
keel_error *keel__infra_settings(const keel_infra *infra, const char *logical, keel_db_role role,
                                 const char *default_secret, keel_db_settings *out);
void keel__db_settings_free(keel_db_settings *s);

/* The read replicas the config lists for logical ("replicas": [{"host",
 * "port"}] in its entry), and the app role's settings for replica k: the
 * database's own with the replica's host and port (and, when sslmode is
 * not configured, the one for the replica's host). */
size_t keel__infra_replicas(const keel_infra *infra, const char *logical);
keel_error *keel__infra_replica_settings(const keel_infra *infra, const char *logical, size_t k,
                                         keel_db_settings *out);

/* The value of keyword in params, or NULL. */
const char *keel__conn_param(const keel_conn_params *p, const char *keyword);

/* Sets keyword to a copy of value (NULL: removes it); false when out of
 * memory or out of room. */
bool keel__conn_param_set(keel_conn_params *p, const char *keyword, const char *value);

/* params as a postgresql:// URI with percent-encoding (for psql and other
 * tools); malloc'd, owned by the caller (it may hold a password). */
keel_error *keel__conn_uri(const keel_conn_params *p, char **out);

/* The servers the config lists, for tools that need a server rather than a
 * database (keel db proxy): host and port of server i (port 0: not set). */
size_t keel__infra_servers(const keel_infra *infra);
keel_error *keel__infra_server(const keel_infra *infra, size_t i, const char **host, unsigned *port);

#endif

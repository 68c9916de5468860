/* keel/extdb.h - an external PostgreSQL database (one Keel does not manage or
 * migrate: the team's existing database), queried with the same API as managed
 * ones.  Its pool is made on first use (keel/lazy.h): a database that is down
 * at start-up does not stop the app, the request answers 503 and a later one
 * connects.
 *
 *     static keel_extdb legacy = KEEL_EXTDB("legacy", "LEGACY_DB_PASSWORD");
 *     static const char *const secrets[] = { "LEGACY_DB_PASSWORD", NULL };  // .secrets of the service
 *
 *     keel_sqldb *db;
 *     keel_error *err = keel_extdb_get(&legacy, &db);
 *     if (!err)
 *         err = keel_db_query_row(req, db, &row, "SELECT 1");
 *
 * Settings come from a JSON file, $KEEL_EXTDB_CONFIG, else
 * $KEEL_APP_ROOT/.keel/extdb.<env>.json (env: $KEEL_ENV, default local):
 *
 *   {"databases": {"legacy": {"host": "db.internal", "port": 5432, "dbname": "crm",
 *                             "user": "crm_app", "sslmode": "require"}},
 *    "pool": {"max_connections": 10, "checkout_timeout_ms": 5000, "statement_timeout_ms": 30000}}
 *
 * and each field may be overridden by $KEEL_EXTDB_<NAME>_HOST, _PORT, _DBNAME,
 * _USER, _SSLMODE, _SSLROOTCERT (NAME upper-cased).  sslmode defaults to
 * verify-full (against the system's certificate authorities when sslrootcert
 * is not set) for a server that is not this machine, to prefer for localhost,
 * loopback addresses and socket directories.  The password is the secret named
 * in KEEL_EXTDB (keel_secret).  Errors never contain the password. */
#ifndef KEEL_EXTDB_H
#define KEEL_EXTDB_H

#include "error.h"
#include "lazy.h"
#include "sqldb.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef struct keel_extdb {
    const char *name;             /* logical name: [a-z][a-z0-9_]* */
    const char *password_secret;  /* the secret holding the password; NULL: none */
    keel_lazy lazy;
    keel_sqldb db;                /* what keel_extdb_get hands out, once open */
} keel_extdb;

#define KEEL_EXTDB(db_name, secret_name) \
    { .name = (db_name), .password_secret = (secret_name), .lazy = KEEL_LAZY_INIT, \
      .db = { .name = (db_name), .migrations = NULL, .resolved = NULL, .pool = NULL } }

/* The database to pass to keel_db_query*, opening its pool on first use (and
 * checking that a connection can be made).  unavailable (503) when the server
 * cannot be reached: the message names only the database, the cause (logged,
 * never sent) says why and what to change when it is a settings problem (SSL
 * required but not offered, password rejected); the next call tries again.
 * The first call connects and blocks its thread. */
keel_error *keel_extdb_get(keel_extdb *db, keel_sqldb **out);

/* Closes the pool (no request may be using it); the next get opens a new one. */
void keel_extdb_close(keel_extdb *db);

#pragma GCC visibility pop

#endif

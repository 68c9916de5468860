/* keel/migrate.h - schema migrations: numbered SQL files applied in order and
 * tracked in schema_migrations, compatible with golang-migrate and Encore.
 *
 * Files are <number>_<name>.up.sql (leading zeros allowed) with optional
 * <number>_<name>.down.sql.  A file whose first line is
 *     -- keel:no-transaction
 * runs outside a transaction (for CREATE INDEX CONCURRENTLY and the like).
 * schema_migrations(version bigint not null primary key, dirty boolean not
 * null) holds one row: the last applied version. */
#ifndef KEEL_MIGRATE_H
#define KEEL_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>
#include "error.h"

/* Everything declared here is libkeel's public API: exported from the
 * shared library, which builds with -fvisibility=hidden. */
#pragma GCC visibility push(default)

typedef struct keel_migration {
    int64_t version;
    char *name;       /* the file name of the up file, "0001_init.up.sql" */
    char *up_path;    /* full path */
    char *down_path;  /* full path, or NULL when there is no down file */
} keel_migration;

typedef struct keel_migration_set {
    char *dir;
    keel_migration *items; /* sorted by version */
    size_t count;
} keel_migration_set;

/* Reads and checks a migrations folder.  Errors (invalid_argument, naming the
 * folder and file(s)): the folder is missing or holds no migration; a .sql
 * file whose name does not fit the pattern; two files with the same number
 * and direction; version 0; a down file without its up file.  Other files
 * (README.md...) are ignored.  The caller owns *out (keel_migrations_free). */
keel_error *keel_migrations_load(const char *dir, keel_migration_set **out);
void keel_migrations_free(keel_migration_set *set);

typedef struct keel_migration_state {
    bool tracked;     /* schema_migrations exists and has a row */
    int64_t version;  /* last applied (0 when none) */
    bool dirty;
} keel_migration_state;

/* Reads schema_migrations on conn (which must be connected to the database). */
keel_error *keel_migrate_state(PGconn *conn, keel_migration_state *out);

/* Applies every pending migration of set on conn (connected as the database's
 * owner), under a PostgreSQL advisory lock so that several instances starting
 * at once apply each migration exactly once.  Each file and its version update
 * run in one transaction; a failure rolls back completely and the error names
 * the file, line and column and PostgreSQL's message.  A dirty database is
 * refused with instructions.  *applied (may be NULL) receives the count. */
keel_error *keel_migrate_up(PGconn *conn, const keel_migration_set *set, int *applied);

/* Reverts up to steps applied migrations with their down files, newest first,
 * each in a transaction, moving the version back.  A missing down file stops
 * with an error naming it.  *reverted (may be NULL) receives the count. */
keel_error *keel_migrate_down(PGconn *conn, const keel_migration_set *set, int steps, int *reverted);

#pragma GCC visibility pop

#endif

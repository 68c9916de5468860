/* local_pg.h - private to the CLI: the embedded local PostgreSQL cluster under
 * the app root (.keel/pg), run from the system's PostgreSQL 15 binaries as the
 * unprivileged postgres user when keel runs as root, and the per-database
 * roles and databases provisioned in it. */
#ifndef KEEL_CLI_LOCAL_PG_H
#define KEEL_CLI_LOCAL_PG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <keel/error.h>

/* Every path is checked to fit before it is written here: an app root too
 * long for the paths keel derives from it is refused, never truncated. */
typedef struct local_pg {
    char root[PATH_MAX];       /* the app root (absolute, canonical) */
    char state_dir[PATH_MAX];  /* <root>/.keel */
    char pg_dir[PATH_MAX];     /* the cluster folder: data/, run/ (socket), log */
    char socket_dir[PATH_MAX];
    unsigned port;             /* TCP port on 127.0.0.1 */
    bool test;                 /* the test cluster: .keel/test, fsync off */
} local_pg;

/* Makes sure the cluster for the app root exists and runs: creates it on first
 * use, starts it when stopped, recovers from a stale pid file.  Serialised
 * with other keel processes by a lock file.  Prints progress on stderr.
 * Errors say what failed and how to fix it. */
keel_error *local_pg_ensure(const char *root, local_pg *pg);
/* The same for the test cluster of `keel test`, apart from the one keel run
 * uses: its state in .keel/test (passwords, infra config, lock), its own
 * port, and fsync, synchronous_commit and full_page_writes off. */
keel_error *local_pg_ensure_test(const char *root, local_pg *pg);

/* Creates (or updates) the database and its three roles (NAME_admin owns it
 * and runs migrations, NAME_app reads and writes, NAME_ro reads), with
 * generated passwords kept in .keel/passwords.json (0600).  The app and
 * read-only roles get privileges in their own database only (on what is in
 * it and, through default privileges, on what NAME_admin creates later);
 * the cluster-wide pg_read_all_data / pg_write_all_data of older versions
 * are revoked. */
keel_error *local_pg_provision(local_pg *pg, const char *const *databases);

/* Writes .keel/infra.local.json (0600): the local cluster's server (marked
 * "local_cluster": true) with the provisioned databases, followed by every
 * other server the file already lists (external databases), and returns its
 * path in out (an error, with nothing written, when the path does not fit
 * in out_len or the existing file is not an infra config). */
keel_error *local_pg_write_infra(const local_pg *pg, const char *const *databases, char *out, size_t out_len);

/* Writes text to path readable by its owner only, atomically (temp file,
 * fsync, rename). */
keel_error *local_pg_write_private(const char *path, const char *text);

/* For the test cluster: marks each database a template and lets its admin
 * role create databases, so that a test makes its own copy with CREATE
 * DATABASE ... TEMPLATE (the names are checked database names). */
keel_error *local_pg_make_templates(local_pg *pg, const char *const *databases);
/* Drops and recreates a database (used by keel db reset and tests). */
keel_error *local_pg_drop_database(local_pg *pg, const char *name);

/* Releases .keel/lock, which local_pg_ensure takes and otherwise holds until
 * the process exits or execs: a keel that goes on running (keel run
 * --watch) must not keep other keel commands waiting. */
void local_pg_unlock(void);

/* Whether the cluster pg describes is running (pg_ctl status). */
bool local_pg_running(const local_pg *pg);

/* Stops the cluster (fast: open sessions are ended); nothing when it is not
 * running. */
keel_error *local_pg_stop(const local_pg *pg);

/* Fills pg from .keel/pg.json of an existing cluster, without taking the lock
 * or starting the server (failed_precondition when there is none). */
keel_error *local_pg_locate(const char *root, local_pg *pg);

#endif

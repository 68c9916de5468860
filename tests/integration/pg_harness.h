/* tests/integration/pg_harness.h - a real, throw-away PostgreSQL 15 cluster for
 * the tests: initdb into a temporary folder (as the postgres system user when
 * running as root), started on a Unix socket only, stopped and removed at the
 * end.  Each test creates its own databases in it. */
#ifndef KEEL_TEST_PG_HARNESS_H
#define KEEL_TEST_PG_HARNESS_H

#include <stdbool.h>

typedef struct pgh_cluster {
    char dir[256];         /* temporary folder: data/, sock/, log */
    char socket_dir[300];  /* where the server's socket lives */
    unsigned port;         /* the socket's port number (no TCP listener) */
} pgh_cluster;

/* Creates and starts a cluster; false (with a "# " diagnostic) on failure. */
bool pgh_start(pgh_cluster *c);

/* Stops the cluster (fast shutdown) and removes its folder. */
void pgh_stop(pgh_cluster *c);

/* Stops the server but keeps the data (for restart tests); true on success. */
bool pgh_pause(pgh_cluster *c);
/* Starts a paused server again on the same socket and port. */
bool pgh_resume(pgh_cluster *c);

/* A libpq conninfo string ("host=... port=... dbname=... user=postgres") for
 * the superuser on dbname; static buffer, valid until the next call. */
const char *pgh_conninfo(const pgh_cluster *c, const char *dbname);

/* Runs SQL as the superuser on dbname ("postgres" for cluster-wide work);
 * true on success (an error is printed as a "# " diagnostic). */
bool pgh_exec(const pgh_cluster *c, const char *dbname, const char *sql);

/* Creates a fresh, empty database (dropping one of the same name). */
bool pgh_create_db(const pgh_cluster *c, const char *dbname);

#endif

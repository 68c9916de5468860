/* tests/bench/migrate_bench.c - applies a migrations folder with Keel's
 * migrator and prints the time in milliseconds (for tests/bench/db.sh).
 *
 *   migrate_bench CONNINFO FOLDER */
#include <keel/keel.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: migrate_bench CONNINFO FOLDER\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    keel_migration_set *set = NULL;
    keel_error *err = keel_migrations_load(argv[2], &set);
    PGconn *conn = err ? NULL : PQconnectdb(argv[1]);
    int applied = 0;
    if (conn && PQstatus(conn) != CONNECTION_OK)
        err = keel_error_new(KEEL_UNAVAILABLE, "cannot connect: %s", PQerrorMessage(conn));
    if (!err)
        err = keel_migrate_up(conn, set, &applied);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    PQfinish(conn);
    keel_migrations_free(set);
    if (err) {
        fprintf(stderr, "migrate_bench: %s\n", err->message);
        keel_error_free(err);
        return 1;
    }
    printf("%d %.1f\n", applied, (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    return 0;
}

/* tests/integration/pg_harness.c - see pg_harness.h. */
#include "pg_harness.h"
#include "sql/pg_bin.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Runs a shell command, as the postgres user when we are root. */
static bool run_as_owner(const char *cmd)
{
    char full[2048];
    if (geteuid() == 0)
        snprintf(full, sizeof full, "runuser -u postgres -- sh -c '%s' >/dev/null 2>&1", cmd);
    else
        snprintf(full, sizeof full, "sh -c '%s' >/dev/null 2>&1", cmd);
    return system(full) == 0;
}

/* PostgreSQL's bin folder, as the CLI finds it ("" when none is installed:
 * the commands then fail and say so). */
static const char *bindir(void)
{
    const char *b = keel__pg_bindir();
    return b ? b : "";
}

static bool server_start(pgh_cluster *c)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s/pg_ctl -D %s/data -l %s/log -w -t 60 -o \"-c listen_addresses= -k %s -p %u "
             "-c fsync=off -c max_connections=200\" start",
             bindir(), c->dir, c->dir, c->socket_dir, c->port);
    return run_as_owner(cmd);
}

bool pgh_start(pgh_cluster *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "/tmp/keel-pg-XXXXXX");
    if (!mkdtemp(c->dir)) {
        printf("# pgh_start: mkdtemp failed\n");
        return false;
    }
    snprintf(c->socket_dir, sizeof c->socket_dir, "%s/sock", c->dir);
    c->port = 5432;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            printf("# pgh_start: no postgres system user (apt-get install postgresql)\n");
            return false;
        }
        if (chown(c->dir, pw->pw_uid, pw->pw_gid) != 0)
            return false;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && %s/initdb -D %s/data -A trust -U postgres --no-sync", c->socket_dir,
             bindir(), c->dir);
    if (!run_as_owner(cmd)) {
        printf("# pgh_start: initdb failed in %s\n", c->dir);
        return false;
    }
    if (!server_start(c)) {
        printf("# pgh_start: pg_ctl start failed (see %s/log)\n", c->dir);
        return false;
    }
    return true;
}

bool pgh_pause(pgh_cluster *c)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/pg_ctl -D %s/data -w -m fast stop", bindir(), c->dir);
    return run_as_owner(cmd);
}

bool pgh_resume(pgh_cluster *c)
{
    return server_start(c);
}

void pgh_stop(pgh_cluster *c)
{
    if (!c->dir[0])
        return;
    pgh_pause(c);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
    if (system(cmd) != 0)
        printf("# pgh_stop: could not remove %s\n", c->dir);
    c->dir[0] = '\0';
}

const char *pgh_conninfo(const pgh_cluster *c, const char *dbname)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "host=%s port=%u dbname=%s user=postgres", c->socket_dir, c->port, dbname);
    return buf;
}

bool pgh_exec(const pgh_cluster *c, const char *dbname, const char *sql)
{
    PGconn *conn = PQconnectdb(pgh_conninfo(c, dbname));
    if (PQstatus(conn) != CONNECTION_OK) {
        printf("# pgh_exec: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return false;
    }
    PGresult *r = PQexec(conn, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        printf("# pgh_exec: %s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(conn);
    return ok;
}

bool pgh_create_db(const pgh_cluster *c, const char *dbname)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", dbname);
    if (!pgh_exec(c, "postgres", sql))
        return false;
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", dbname);
    return pgh_exec(c, "postgres", sql);
}

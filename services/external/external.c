/* services/external/external.c - a service that uses the team's existing
 * PostgreSQL database (not managed or migrated by Keel): settings from
 * the infra config (like managed databases), the password from the
 * secrets store.  `./dev run` sets up a stand-in on the local cluster (its own
 * database and login role, SSL on, sslmode=require) and stores the password
 * with `keel secrets set`, so this works out of the box. */
#include <keel/keel.h>

#include "services.h"

static keel_extdb legacy_db = KEEL_EXTDB("legacy", "EXTERNAL_DB_PASSWORD");

typedef struct { char unused; } ping_req;
typedef struct {
    int64_t one;
    const char *server_version;
    bool ssl;
} ping_resp;

static const keel_field ping_req_fields[] = { KEEL_END };
static const keel_field ping_resp_fields[] = {
    KEEL_INT64(ping_resp, one),
    KEEL_STRING(ping_resp, server_version),
    KEEL_BOOL(ping_resp, ssl),
    KEEL_END
};

/* The pool is made on the first request: a database that is down answers
 * 503 unavailable and a later request connects, without a restart. */
static keel_error *ping(keel_req *req, const ping_req *in, ping_resp *out)
{
    (void)in;
    keel_sqldb *db;
    keel_row *row;
    keel_error *err = keel_extdb_get(&legacy_db, &db);
    if (!err)
        err = keel_db_query_row(req, db, &row,
                                "SELECT 1::int8, current_setting('server_version'), "
                                "coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)");
    if (!err)
        err = keel_row_scan(row, "itb", &out->one, &out->server_version, &out->ssl);
    return err;
}

static const char *const external_secrets[] = { "EXTERNAL_DB_PASSWORD", NULL };

const keel_service external_service = {
    .name = "external",
    .endpoints = (const keel_endpoint[]){
        KEEL_TYPED("GET", "/external/ping", ping, ping_req, ping_resp),
        KEEL_ENDPOINT_END
    },
    .databases = NULL,
    .secrets = external_secrets,
    .external_databases = (keel_extdb *const[]){ &legacy_db, NULL },
};

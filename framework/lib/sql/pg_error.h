/* pg_error.h - private: PostgreSQL errors as keel_errors (pool.c, pipeline.c,
 * sqldb.c, migrate.c and the CLI share this one mapping). */
#ifndef KEEL_PG_ERROR_H
#define KEEL_PG_ERROR_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "keel/error.h"

/* The Keel code for a SQLSTATE (NULL or malformed: none); conn_bad says the
 * connection is gone, which makes an unclassified error unavailable. */
keel_code keel__pg_code(const char *sqlstate, bool conn_bad);

/* A copy of a libpq message (NULL: "") on one line, without its trailing
 * newline, with every password=... value overwritten.  Caller frees; NULL
 * when out of memory. */
char *keel__pg_clean_message(const char *msg);

/* Gives err the cause "SQLSTATE: message" of a failed libpq call (r may be
 * NULL: conn's message; conn may be NULL), cleaned; returns err. */
keel_error *keel__pg_cause(keel_error *err, PGconn *conn, const PGresult *r);

/* The keel_error for a failed libpq call: r may be NULL (then conn's message
 * is used); conn may be NULL.  The client message is PostgreSQL's primary
 * message, or a generic one naming dbname for internal and unavailable
 * errors; the SQLSTATE and the cleaned message go to the cause.  Never
 * returns NULL. */
keel_error *keel__pg_error(PGconn *conn, const PGresult *r, const char *dbname);

#endif

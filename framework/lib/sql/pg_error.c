/* pg_error.c - the one place a PostgreSQL error becomes a keel_error: SQLSTATE
 * classes map to Keel codes, libpq's messages are cleaned (one line, no
 * trailing newline, no password) before they reach a message or a cause. */
#include "sql/pg_error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Overwrites the value of every password=... in s (case-insensitive) with *. */
static void scrub_password(char *s)
{
    for (char *p = s; (p = strcasestr(p, "password")) != NULL;) {
        p += 8;
        char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '=')
            continue;
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        char quote = (*q == '\'' || *q == '"') ? *q : 0;
        if (quote)
            q++;
        for (; *q && (quote ? *q != quote : (*q != ' ' && *q != '\t' && *q != '\n')); q++)
            *q = '*';
        p = q;
    }
}

char *keel__pg_clean_message(const char *msg)
{
    char *s = strdup(msg ? msg : "");
    if (!s)
        return NULL;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t' || *p == '\r')
            *p = ' ';
    scrub_password(s);
    return s;
}

keel_code keel__pg_code(const char *st, bool conn_bad)
{
    if (!st || strlen(st) != 5)
        return conn_bad ? KEEL_UNAVAILABLE : KEEL_INTERNAL;
    if (!strcmp(st, "23505"))
        return KEEL_ALREADY_EXISTS;
    if (!strcmp(st, "23503") || !strcmp(st, "23514"))
        return KEEL_FAILED_PRECONDITION;
    if (!strcmp(st, "23502") || !strncmp(st, "22", 2) || !strcmp(st, "42804"))
        return KEEL_INVALID_ARGUMENT;
    if (!strcmp(st, "57014"))
        return KEEL_DEADLINE_EXCEEDED;
    if (!strcmp(st, "08P01")) /* protocol violation: a bug (e.g. wrong parameter count) */
        return conn_bad ? KEEL_UNAVAILABLE : KEEL_INTERNAL;
    if (!strncmp(st, "08", 2) || !strcmp(st, "57P01") || !strcmp(st, "57P02") || !strcmp(st, "57P03"))
        return KEEL_UNAVAILABLE;
    if (!strcmp(st, "40001") || !strcmp(st, "40P01"))
        return KEEL_ABORTED;
    return conn_bad ? KEEL_UNAVAILABLE : KEEL_INTERNAL;
}

/* PostgreSQL's primary message for a failed call: r's, else conn's; never
 * NULL.  The statement text (a syntax error's "LINE 1: ...") is left out, as
 * it may hold a literal such as a password. */
static const char *pg_primary(PGconn *conn, const PGresult *r)
{
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if ((!primary || !*primary) && conn)
        primary = PQerrorMessage(conn);
    return primary && *primary ? primary : "unknown database error";
}

keel_error *keel__pg_cause(keel_error *err, PGconn *conn, const PGresult *r)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    char *text = keel__pg_clean_message(pg_primary(conn, r));
    if (text)
        keel_error_cause(err, "%s%s%s", st ? st : "", st ? ": " : "", text);
    free(text);
    return err;
}

keel_error *keel__pg_error(PGconn *conn, const PGresult *r, const char *dbname)
{
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    bool bad = conn && PQstatus(conn) == CONNECTION_BAD;
    keel_code code = keel__pg_code(st, bad);
    keel_error *err;
    if (code == KEEL_UNAVAILABLE) {
        err = keel_error_new(code, "database \"%s\" is unavailable", dbname);
    } else if (code == KEEL_INTERNAL) {
        err = keel_error_new(code, "database \"%s\" error", dbname);
    } else {
        /* Constraint and data errors are the client's to see and fix. */
        char *text = keel__pg_clean_message(pg_primary(conn, r));
        err = keel_error_new(code, "%s", text ? text : "database error");
        free(text);
    }
    return keel__pg_cause(err, conn, r);
}

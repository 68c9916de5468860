/* pg_bin.h - private: where PostgreSQL's server programs (initdb, pg_ctl,
 * postgres) are, for the CLI's local cluster and the tests' clusters. */
#ifndef KEEL_PG_BIN_H
#define KEEL_PG_BIN_H

/* $KEEL_PG_BINDIR when set, else the bin folder of the newest major version
 * installed under /usr/lib/postgresql (Debian's layout) that has initdb.
 * NULL when none is found.  Thread-safe; the string lives for the process. */
const char *keel__pg_bindir(void);

#endif

/* migrate_lock.h - private: the advisory lock that serialises changes to a
 * database's schema.  Migrations (migrate.c) hold it while they run, and
 * keel's provisioning (cli/local_pg.c) holds it while it grants on the
 * database's tables: a GRANT ON ALL TABLES meeting an ALTER TABLE of another
 * keel process on the same catalog row fails with "tuple concurrently
 * updated" otherwise.  Session-level; advisory locks are per database, and
 * the key names it too. */
#ifndef KEEL_MIGRATE_LOCK_H
#define KEEL_MIGRATE_LOCK_H

#define KEEL_MIGRATE_LOCK_KEY "hashtextextended('keel:migrate:' || current_database(), 0)"

#endif

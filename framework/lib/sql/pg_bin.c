/* pg_bin.c - finds PostgreSQL's server programs (see pg_bin.h): one place
 * instead of a major version written into every caller. */
#include "sql/pg_bin.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEBIAN_PG_ROOT "/usr/lib/postgresql"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char found[PATH_MAX];

/* The newest <major>/bin under DEBIAN_PG_ROOT with an initdb in it. */
static void find(void)
{
    const char *env = getenv("KEEL_PG_BINDIR");
    if (env && *env) {
        snprintf(found, sizeof found, "%s", env);
        return;
    }
    DIR *dir = opendir(DEBIAN_PG_ROOT);
    long best = -1;
    for (struct dirent *e; dir && (e = readdir(dir)) != NULL;) {
        char *end;
        long major = strtol(e->d_name, &end, 10);
        char initdb[PATH_MAX];
        if (end == e->d_name || *end || major <= best)
            continue;
        snprintf(initdb, sizeof initdb, DEBIAN_PG_ROOT "/%s/bin/initdb", e->d_name);
        if (access(initdb, X_OK) == 0) {
            best = major;
            snprintf(found, sizeof found, DEBIAN_PG_ROOT "/%ld/bin", major);
        }
    }
    if (dir)
        closedir(dir);
}

const char *keel__pg_bindir(void)
{
    pthread_once(&once, find);
    return found[0] ? found : NULL;
}

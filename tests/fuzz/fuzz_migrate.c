/* fuzz_migrate.c - libFuzzer target for what migrate.c reads from a
 * migrations folder without a database: file names, and the SQL splitter
 * that runs "-- keel:no-transaction" files statement by statement.
 *
 * Those functions are static, so this file #includes migrate.c (and does not
 * link it).  The first byte picks the mode:
 *   even  names: the input's lines are a folder's file names; each is checked
 *         against an independent POSIX regex of the documented pattern
 *         ^([0-9]+)(_[^.]+)?\.(up|down)\.sql$, then the whole folder goes
 *         through the checks and the set building of keel_migrations_load;
 *   odd   SQL: the rest is a migration file's text, split into statements.
 * The splitter must make progress, cover the text exactly, end every
 * statement but the last at a ';', and split a statement given alone the
 * same way (what is sent to PostgreSQL does not depend on what came before). */
#define KEEL_MIGRATE_STANDALONE 1 /* without the tracing code */
#include "../../framework/lib/sql/migrate.c"
#include "fuzz.h"

#include <regex.h>

static regex_t name_re;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    int rc = regcomp(&name_re, "^([0-9]+)(_[^.]+)?\\.(up|down)\\.sql$", REG_EXTENDED);
    FUZZ_CHECK(rc == 0, "regcomp failed");
    return 0;
}

/* The number the digits at the start of name stand for, or -1 beyond
 * INT64_MAX (computed another way than parse_name does). */
static int64_t leading_number(const char *name)
{
    size_t n = strspn(name, "0123456789");
    while (n > 1 && *name == '0') {
        name++;
        n--;
    }
    static const char max[] = "9223372036854775807";
    if (n > sizeof max - 1 || (n == sizeof max - 1 && strncmp(name, max, n) > 0))
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (name[i] - '0');
    return v;
}

static void check_name(const char *name)
{
    int64_t version = -7;
    direction dir = DIRECTION_UP;
    name_fit fit = parse_name(name, &version, &dir);
    regmatch_t m[4];
    bool matches = regexec(&name_re, name, 4, m, 0) == 0;
    FUZZ_CHECK(matches == (fit != NAME_DOES_NOT_FIT), "\"%s\": parse_name says %d, the regex %d", name, (int)fit,
               matches);
    if (!matches)
        return;
    int64_t want = leading_number(name);
    FUZZ_CHECK((fit == NAME_TOO_LARGE) == (want < 0), "\"%s\": too large is %d", name, fit == NAME_TOO_LARGE);
    if (fit == NAME_FITS) {
        FUZZ_CHECK(version == want, "\"%s\": version %lld, expected %lld", name, (long long)version,
                   (long long)want);
        bool down = name[m[3].rm_so] == 'd';
        FUZZ_CHECK(dir == (down ? DIRECTION_DOWN : DIRECTION_UP), "\"%s\": wrong direction", name);
    }
}

static void check_folder(char *names)
{
    entry_list list = {0};
    keel_error *err = NULL;
    for (char *line = names, *next; line && !err; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        check_name(line);
        err = consider_name("fuzz", line, &list);
    }
    if (!err && list.count > 1)
        qsort(list.items, list.count, sizeof *list.items, compare_entries);
    if (!err)
        err = check_entries("fuzz", &list);
    keel_migration_set *set = NULL;
    if (!err) {
        set = calloc(1, sizeof *set);
        set->dir = strdup("fuzz");
        err = build_set("fuzz", &list, set);
        FUZZ_CHECK(!err, "build_set failed after check_entries passed: %s", err->message);
        size_t ups = 0;
        for (size_t i = 0; i < list.count; i++)
            ups += list.items[i].dir == DIRECTION_UP;
        FUZZ_CHECK(set->count == ups && ups > 0, "%zu migrations from %zu up files", set->count, ups);
        for (size_t i = 0; i < set->count; i++) {
            const keel_migration *mg = &set->items[i];
            FUZZ_CHECK(mg->version > 0 && (i == 0 || mg->version > set->items[i - 1].version),
                       "versions not strictly increasing at %zu", i);
            int64_t v;
            direction d;
            FUZZ_CHECK(parse_name(mg->name, &v, &d) == NAME_FITS && v == mg->version && d == DIRECTION_UP,
                       "migration %lld named %s", (long long)mg->version, mg->name);
            FUZZ_CHECK(mg->up_path && strncmp(mg->up_path, "fuzz/", 5) == 0 && !strcmp(mg->up_path + 5, mg->name),
                       "up path %s", mg->up_path);
            if (mg->down_path)
                FUZZ_CHECK(parse_name(mg->down_path + 5, &v, &d) == NAME_FITS && v == mg->version &&
                               d == DIRECTION_DOWN, "down path %s for %lld", mg->down_path, (long long)mg->version);
        }
    }
    FUZZ_CHECK(!err || err->code == KEEL_INVALID_ARGUMENT, "folder error %s", err->message);
    keel_error_free(err);
    keel_migrations_free(set);
    entries_free(&list);
}

static void check_sql(const char *text, size_t len)
{
    (void)has_no_transaction_marker(text, len);
    (void)is_blank(text, len);
    size_t start = 0, statements = 0;
    while (start < len) {
        bool has_sql;
        size_t end = statement_end(text, len, start, &has_sql);
        FUZZ_CHECK(end > start && end <= len, "statement at %zu ends at %zu of %zu", start, end, len);
        FUZZ_CHECK(end == len || text[end - 1] == ';', "statement at %zu ends at %zu without ';'", start, end);
        /* Alone (as run_without_transaction sends it), in a buffer of its
         * own so that ASan sees a read past it. */
        char *alone = malloc(end - start);
        memcpy(alone, text + start, end - start);
        bool alone_sql;
        size_t alone_end = statement_end(alone, end - start, 0, &alone_sql);
        FUZZ_CHECK(alone_end == end - start && alone_sql == has_sql,
                   "statement at %zu splits differently alone (%zu of %zu)", start, alone_end, end - start);
        free(alone);
        unsigned long line, column;
        locate(text, len, start, (unsigned long)(end - start), statements & 1, &line, &column);
        FUZZ_CHECK(line >= 1 && column >= 1 && line <= len + 1, "locate gave %lu:%lu", line, column);
        start = end;
        statements++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        check_sql((const char *)data + 1, size - 1);
        return 0;
    }
    char *names = malloc(size);
    memcpy(names, data + 1, size - 1);
    names[size - 1] = '\0';
    check_folder(names);
    free(names);
    return 0;
}

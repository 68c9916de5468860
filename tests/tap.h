/* tests/tap.h - a minimal Test Anything Protocol emitter for Keel's tests.
 *
 * Each check prints "ok N - name" or "not ok N - name"; automake's TAP driver
 * counts them, so every check is one test in the suite's totals.  Call
 * tap_done() last: it returns the exit status and, unless plan(n) was called
 * first, prints the plan.  A test whose count is fixed calls plan(n) before
 * its first check: "1..n" goes out at once (so a crash part-way shows as
 * too few checks), and tap_done() fails when the count ran differs. */
#ifndef KEEL_TESTS_TAP_H
#define KEEL_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;
static int tap_planned = -1; /* set by plan(); -1: the plan is printed at the end */

/* Announces that n checks will run; call it once, before the first check. */
static inline void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("# failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* A check that cannot be made here, reported as a TAP skip with the reason. */
static inline void skip(const char *reason)
{
    printf("ok %d # SKIP %s\n", ++tap_count, reason);
    fflush(stdout);
}

#define is_int(got, want, ...) do { \
        long long tap_g_ = (long long)(got), tap_w_ = (long long)(want); \
        if (!ok(tap_g_ == tap_w_, __VA_ARGS__)) \
            printf("#   got: %lld\n#   expected: %lld\n", tap_g_, tap_w_); \
    } while (0)

#define is_str(got, want, ...) do { \
        const char *tap_g_ = (got), *tap_w_ = (want); \
        int tap_c_ = (tap_g_ && tap_w_) ? strcmp(tap_g_, tap_w_) == 0 : tap_g_ == tap_w_; \
        if (!ok(tap_c_, __VA_ARGS__)) \
            printf("#   got: '%s'\n#   expected: '%s'\n", tap_g_ ? tap_g_ : "(null)", \
                   tap_w_ ? tap_w_ : "(null)"); \
    } while (0)

/* True when needle occurs in haystack (both may be NULL: false). */
static inline int tap_contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}

#define like(got, needle, ...) do { \
        const char *tap_g_ = (got); \
        if (!ok(tap_contains(tap_g_, (needle)), __VA_ARGS__)) \
            printf("#   got: '%s'\n#   expected to contain: '%s'\n", \
                   tap_g_ ? tap_g_ : "(null)", (needle)); \
    } while (0)

#define diag(...) do { printf("# "); printf(__VA_ARGS__); printf("\n"); } while (0)

/* Runs cmd through the shell and makes each TAP result it prints ("ok N -
 * desc", "not ok N - desc") a check of this test named "prefix: desc";
 * other non-empty lines become diagnostics.  *passed and *failed receive
 * the counts.  Returns the command's exit status as pclose gives it (-1:
 * it did not start).  For checks written in another language (tests/js). */
static inline int tap_relay(const char *cmd, const char *prefix, int *passed, int *failed)
{
    *passed = *failed = 0;
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[2048];
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        int good = strncmp(line, "ok ", 3) == 0;
        if (good || strncmp(line, "not ok ", 7) == 0) {
            const char *desc = strstr(line, " - ");
            tap_ok(good, __FILE__, __LINE__, "%s: %s", prefix, desc ? desc + 3 : line);
            *passed += good;
            *failed += !good;
        } else if (line[0]) {
            diag("%s", line);
        }
    }
    return pclose(p);
}

static inline int tap_done(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_count);
    else if (tap_count != tap_planned) {
        printf("# planned %d checks but ran %d\n", tap_planned, tap_count);
        fflush(stdout);
        return 1;
    }
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

#endif

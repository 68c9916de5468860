/* clock.h - private: the arithmetic on struct timespec the library needs,
 * in one place: milliseconds between two times, and a time some
 * milliseconds later (a deadline for a loop timer or pthread_cond_timedwait). */
#ifndef KEEL_CLOCK_H
#define KEEL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds from `from` to `to` (negative when `to` is earlier). */
static inline int64_t keel__ms_between(const struct timespec *from, const struct timespec *to)
{
    return (int64_t)(to->tv_sec - from->tv_sec) * 1000 + (to->tv_nsec - from->tv_nsec) / 1000000;
}

/* t moved ms milliseconds later. */
static inline struct timespec keel__ts_plus_ms(struct timespec t, uint64_t ms)
{
    t.tv_sec += (time_t)(ms / 1000);
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* Now on clock, plus ms milliseconds. */
static inline struct timespec keel__deadline_ms(clockid_t clock, uint64_t ms)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return keel__ts_plus_ms(now, ms);
}

#endif

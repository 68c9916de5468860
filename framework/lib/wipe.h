/* wipe.h - private: releasing memory that held a secret (a password, a
 * conninfo or URI with one in it, a passwords file's text), so it does not
 * linger in freed heap memory where a later bug or a core dump would show it. */
#ifndef KEEL_WIPE_H
#define KEEL_WIPE_H

#include <stdlib.h>
#include <string.h>
#include <sodium.h>

/* Wipes the NUL-terminated string s and frees it (malloc'd; NULL allowed). */
static inline void keel__free_secret(char *s)
{
    if (s) {
        sodium_memzero(s, strlen(s));
        free(s);
    }
}

#endif

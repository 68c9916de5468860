/* secure.c - comparisons whose time does not leak what is compared: the one
 * place Keel (webhook signatures) and its apps (tokens, API keys) compare a
 * secret with what a client presented. */
#include "keel/secrets.h"

#include <sodium.h>

bool keel_secure_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    /* Lengths are not secret (a signature's length is public); contents are. */
    if (alen != blen || !a || !b)
        return false;
    return alen == 0 || sodium_memcmp(a, b, alen) == 0;
}

/* tests/fuzz/fuzz.h - what every libFuzzer target in tests/fuzz shares: the
 * entry points' prototypes, the invariant check and a splitter for inputs
 * made of several fields.
 *
 * An invariant that fails calls abort(), so libFuzzer saves the input as a
 * crash artifact exactly as it does for a sanitizer report. */
#ifndef KEEL_FUZZ_H
#define KEEL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Declared here because the project builds with -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n  ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fprintf(stderr, "\n"); \
            abort(); \
        } \
    } while (0)

/* Splits data into at most max fields at each '\n'; the last field takes the
 * rest, newlines included, so a body can hold anything.  Each field is a
 * NUL-terminated copy (an embedded NUL shortens it, as in a C header value)
 * in one malloc'd block the caller frees.  Missing fields are "".  Returns
 * the block. */
static inline char *fuzz_fields(const uint8_t *data, size_t size, char **fields, size_t max,
                                size_t *last_len)
{
    char *block = malloc(size + max + 1);
    if (!block)
        abort();
    size_t off = 0, out = 0;
    for (size_t i = 0; i < max; i++) {
        size_t end = off;
        if (i + 1 < max)
            while (end < size && data[end] != '\n')
                end++;
        else
            end = size;
        fields[i] = block + out;
        memcpy(block + out, data + off, end - off);
        block[out + (end - off)] = '\0';
        if (i + 1 == max && last_len)
            *last_len = end - off;
        out += end - off + 1;
        off = end < size ? end + 1 : size;
    }
    return block;
}

#endif

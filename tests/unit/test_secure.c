/* tests/unit/test_secure.c - framework/lib/secrets/secure.c: keel_secure_equal
 * says equal exactly when lengths and bytes are equal, wherever the first
 * difference is (first byte, last byte, only in the length). */
#include <string.h>

#include <keel/keel.h>
#include "tap.h"

int main(void)
{
    plan(9);
    const char key[] = "s3cret-token-0123456789";
    char copy[sizeof key];
    memcpy(copy, key, sizeof key);
    ok(keel_secure_equal(key, strlen(key), copy, strlen(copy)), "equal bytes of equal length are equal");
    copy[0] ^= 1;
    ok(!keel_secure_equal(key, strlen(key), copy, strlen(copy)), "a difference in the first byte is seen");
    copy[0] ^= 1;
    copy[strlen(copy) - 1] ^= 0x80;
    ok(!keel_secure_equal(key, strlen(key), copy, strlen(copy)), "a difference in the last byte is seen");
    copy[strlen(copy) - 1] ^= 0x80;
    ok(!keel_secure_equal(key, strlen(key), copy, strlen(copy) - 1), "a prefix is not equal");
    ok(!keel_secure_equal(key, 0, copy, 1), "lengths that differ are not equal");
    ok(keel_secure_equal(key, 0, copy, 0), "two empty values are equal");
    ok(!keel_secure_equal(NULL, 3, copy, 3), "a missing value is never equal");
    ok(!keel_secure_equal(key, 3, NULL, 3), "on either side");
    unsigned char zeros[64] = {0}, also[64] = {0};
    ok(keel_secure_equal(zeros, sizeof zeros, also, sizeof also), "binary data with NUL bytes is compared whole");
    return tap_done();
}

/* tests/unit/test_arena.c - framework/lib/arena.c: the arena (inline
 * buffer, alignment, large blocks, strndup/printf/calloc/grow, release), its
 * shared allocations with their disposers, and keel_buf.  Moved from
 * test_core.c (now test_registry.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keel/keel.h"
#include "tap.h"

static void test_arena(void)
{
    char mem[256];
    keel_arena a;
    keel_arena_init(&a, mem, sizeof mem);
    void *p = keel_arena_alloc(&a, 10);
    ok(p >= (void *)mem && p < (void *)(mem + sizeof mem), "small allocations come from the inline buffer");
    ok(((uintptr_t)p % 16) == 0, "allocations are 16-byte aligned");
    void *q = keel_arena_alloc(&a, 1);
    ok((char *)q - (char *)p == 16, "allocations are packed");
    char *big = keel_arena_alloc(&a, 100000);
    ok(big != NULL && a.chunks != NULL, "a large allocation gets its own block");
    memset(big, 'x', 100000);
    char *s = keel_arena_strndup(&a, "hello world", 5);
    is_str(s, "hello", "strndup copies n bytes and terminates");
    is_str(keel_arena_printf(&a, "%s-%d", "id", 42), "id-42", "printf formats into the arena");
    ok(keel_arena_calloc(&a, SIZE_MAX / 2, 4) == NULL, "calloc refuses an overflowing size");
    int *zeros = keel_arena_calloc(&a, 8, sizeof(int));
    int all_zero = 1;
    for (int i = 0; i < 8; i++)
        all_zero &= zeros[i] == 0;
    ok(all_zero, "calloc zeroes");
    static unsigned char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = keel_arena_alloc(&a, 300);
        if (blocks[i])
            memset(blocks[i], i & 0xff, 300);
    }
    int intact = 0;
    for (int i = 0; i < 1000; i++)
        intact += blocks[i] && blocks[i][0] == (i & 0xff) && blocks[i][299] == (i & 0xff);
    is_int(intact, 1000, "1000 allocations across blocks are distinct and keep what was written");
    long *nums = NULL;
    size_t ncap = 0, grows_ok = 0;
    for (size_t i = 0; i < 100; i++) {
        grows_ok += keel_arena_grow(&a, (void **)&nums, i, &ncap, sizeof *nums);
        nums[i] = (long)i * 3;
    }
    long sum = 0;
    for (size_t i = 0; i < 100; i++)
        sum += nums[i];
    ok(grows_ok == 100 && ncap == 128 && sum == 3 * 4950, "grow keeps 100 items through 16, 32, 64, 128");
    keel_arena_release(&a);
    ok(a.chunks == NULL, "release frees every block");
}

/* Disposers record the order they ran in. */
static char dispose_log[16];
static size_t dispose_len;

static void dispose_mark(void *p)
{
    const char *tag = p;
    if (dispose_len + 1 < sizeof dispose_log)
        dispose_log[dispose_len++] = tag[0];
    dispose_log[dispose_len] = '\0';
}

static void dispose_other(void *p)
{
    dispose_mark(p);
}

static void test_arena_shared(void)
{
    char mem[256];
    keel_arena a;
    keel_arena_init(&a, mem, sizeof mem);
    dispose_len = 0;
    dispose_log[0] = '\0';
    ok(keel_arena_find_shared(&a, dispose_mark) == NULL, "nothing is registered at first");
    char *x = keel_arena_alloc_shared(&a, 8, dispose_mark);
    char *y = keel_arena_alloc_shared(&a, 8, dispose_other);
    ok(x && y && x[0] == 0 && y[7] == 0, "shared memory comes zeroed");
    x[0] = 'a';
    y[0] = 'b';
    ok(keel_arena_find_shared(&a, dispose_mark) == x, "a subsystem finds its state by its disposer");
    ok(keel_arena_find_shared(&a, dispose_other) == y, "and another finds its own");
    keel_arena_dispose(&a);
    is_str(dispose_log, "ba", "dispose runs the newest registration first");
    ok(keel_arena_find_shared(&a, dispose_mark) == NULL, "a disposed state is no longer found");
    keel_arena_dispose(&a);
    is_str(dispose_log, "ba", "disposing twice runs nothing twice");
    char *z = keel_arena_alloc_shared(&a, 4000, dispose_mark);
    ok(z != NULL, "registration after a dispose works (in a block of its own)");
    z[0] = 'c';
    keel_arena_release(&a);
    is_str(dispose_log, "bac", "release runs what is still registered");
    ok(a.cleanups == NULL && a.chunks == NULL, "release leaves nothing behind");
}

static void test_buf(void)
{
    keel_arena a;
    keel_arena_init(&a, NULL, 0);
    keel_buf b;
    keel_buf_init(&b, &a);
    keel_buf_puts(&b, "{");
    for (int i = 0; i < 2000; i++)
        keel_buf_printf(&b, "\"k%d\":%d,", i, i);
    keel_buf_putc(&b, '}');
    ok(!b.failed, "buffer grows past several blocks");
    ok(b.len > 20000 && b.data[b.len] == '\0', "buffer stays NUL-terminated");
    ok(strncmp(b.data, "{\"k0\":0,\"k1\":1,", 15) == 0, "content survives growth");
    ok(b.data[b.len - 1] == '}', "last byte is the last appended");
    char long_text[300];
    memset(long_text, 'z', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    keel_buf c;
    keel_buf_init(&c, &a);
    keel_buf_printf(&c, "%s", long_text);
    is_int(c.len, 299, "printf longer than the small buffer");
    keel_arena_release(&a);
}

int main(void)
{
    plan(26);
    test_arena();
    test_arena_shared();
    test_buf();
    return tap_done();
}

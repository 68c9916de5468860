/* coro.c - see coro.h.
 *
 * On x86-64 a switch pushes the six callee-saved registers and the SSE/x87
 * control words on the current stack, stores the stack pointer, loads the
 * other one and pops the same in reverse: about a dozen instructions, no
 * system call (swapcontext saves the signal mask with one).  A new coroutine's
 * stack is laid out as if it had switched away just before its entry
 * trampoline. */
#include "http/coro.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define KEEL_CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KEEL_CORO_ASAN 1
#endif
#endif
#ifdef KEEL_CORO_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define KEEL_CORO_VALGRIND 1
#endif
#endif

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#define DEFAULT_STACK (256u * 1024u)

#if defined(__x86_64__)
typedef struct { void *sp; } ctx;

/* void keel__ctx_switch(ctx *from, const ctx *to) */
void keel__ctx_switch(ctx *from, const ctx *to);
void keel__ctx_entry(void);
__asm__(
    ".text\n"
    ".globl keel__ctx_switch\n"
    ".hidden keel__ctx_switch\n"
    ".type keel__ctx_switch,@function\n"
    "keel__ctx_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq (%rsi), %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size keel__ctx_switch,.-keel__ctx_switch\n"
    /* A new coroutine starts here with its function in r12 and its argument
     * in r13; the function never returns (it switches away for good). */
    ".globl keel__ctx_entry\n"
    ".hidden keel__ctx_entry\n"
    ".type keel__ctx_entry,@function\n"
    "keel__ctx_entry:\n"
    "    movq %r13, %rdi\n"
    "    callq *%r12\n"
    "    ud2\n"
    ".size keel__ctx_entry,.-keel__ctx_entry\n");
#else
typedef struct { ucontext_t uc; } ctx;
#endif

struct keel_coro {
    keel_coro_pool *pool;
    keel_coro *next_idle;
    void *stack;            /* lowest usable byte (above the guard page) */
    size_t stack_size;
    ctx self;
    ctx caller;
    void (*fn)(void *);
    void *arg;
    bool done;
#ifdef KEEL_CORO_ASAN
    void *fake_stack;       /* ASan's fake stack of the side that switched away */
    const void *caller_bottom;
    size_t caller_size;
#endif
#ifdef KEEL_CORO_VALGRIND
    unsigned vg_id;
#endif
};

struct keel_coro_pool {
    size_t stack_size;
    size_t page;
    unsigned keep;
    unsigned nidle;
    keel_coro *idle;
};

keel_coro_pool *keel__coro_pool_new(size_t stack_size, unsigned keep)
{
    keel_coro_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = stack_size ? stack_size : DEFAULT_STACK;
    p->stack_size = (size + p->page - 1) / p->page * p->page;
    p->keep = keep;
    return p;
}

static void coro_destroy(keel_coro *co)
{
#ifdef KEEL_CORO_VALGRIND
    VALGRIND_STACK_DEREGISTER(co->vg_id);
#endif
    munmap((char *)co->stack - co->pool->page, co->stack_size + co->pool->page);
    free(co);
}

void keel__coro_pool_free(keel_coro_pool *pool)
{
    if (!pool)
        return;
    while (pool->idle) {
        keel_coro *co = pool->idle;
        pool->idle = co->next_idle;
        coro_destroy(co);
    }
    free(pool);
}

static keel_coro *coro_alloc(keel_coro_pool *pool)
{
    if (pool->idle) {
        keel_coro *co = pool->idle;
        pool->idle = co->next_idle;
        pool->nidle--;
        return co;
    }
    keel_coro *co = calloc(1, sizeof *co);
    if (!co)
        return NULL;
    size_t total = pool->stack_size + pool->page;
    char *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
        free(co);
        return NULL;
    }
    mprotect(mem, pool->page, PROT_NONE); /* an overflow faults instead of corrupting */
    co->pool = pool;
    co->stack = mem + pool->page;
    co->stack_size = pool->stack_size;
#ifdef KEEL_CORO_VALGRIND
    co->vg_id = VALGRIND_STACK_REGISTER(co->stack, (char *)co->stack + co->stack_size);
#endif
    return co;
}

static void coro_recycle(keel_coro *co)
{
    keel_coro_pool *pool = co->pool;
    if (pool->nidle >= pool->keep) {
        coro_destroy(co);
        return;
    }
    co->next_idle = pool->idle;
    pool->idle = co;
    pool->nidle++;
}

/* ---- switching, with the sanitizer told ------------------------------------- */

static void coro_main(void *arg);

static void switch_into(keel_coro *co)
{
#ifdef KEEL_CORO_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, co->stack, co->stack_size);
#endif
#if defined(__x86_64__)
    keel__ctx_switch(&co->caller, &co->self);
#else
    swapcontext(&co->caller.uc, &co->self.uc);
#endif
#ifdef KEEL_CORO_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

static void switch_out(keel_coro *co)
{
#ifdef KEEL_CORO_ASAN
    /* A finished coroutine's fake stack is released (NULL save slot). */
    __sanitizer_start_switch_fiber(co->done ? NULL : &co->fake_stack, co->caller_bottom, co->caller_size);
#endif
#if defined(__x86_64__)
    keel__ctx_switch(&co->self, &co->caller);
#else
    swapcontext(&co->self.uc, &co->caller.uc);
#endif
#ifdef KEEL_CORO_ASAN
    __sanitizer_finish_switch_fiber(co->fake_stack, &co->caller_bottom, &co->caller_size);
#endif
}

static void coro_main(void *arg)
{
    keel_coro *co = arg;
#ifdef KEEL_CORO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &co->caller_bottom, &co->caller_size);
#endif
    co->fn(co->arg);
    co->done = true;
    switch_out(co);
    abort(); /* never resumed once done */
}

keel_coro *keel__coro_new(keel_coro_pool *pool, void (*fn)(void *arg), void *arg)
{
    keel_coro *co = coro_alloc(pool);
    if (!co)
        return NULL;
    co->fn = fn;
    co->arg = arg;
    co->done = false;
#ifdef KEEL_CORO_ASAN
    co->fake_stack = NULL;
#endif
#if defined(__x86_64__)
    /* From the top: the return address (the entry trampoline), rbp, rbx,
     * r12 (function), r13 (argument), r14, r15, then the control words. */
    uintptr_t top = ((uintptr_t)co->stack + co->stack_size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = (uint64_t)(uintptr_t)keel__ctx_entry;
    *--sp = 0;                                   /* rbp */
    *--sp = 0;                                   /* rbx */
    *--sp = (uint64_t)(uintptr_t)coro_main;      /* r12 */
    *--sp = (uint64_t)(uintptr_t)co;             /* r13 */
    *--sp = 0;                                   /* r14 */
    *--sp = 0;                                   /* r15 */
    *--sp = 0x037F00001F80ull;                   /* x87 control word, MXCSR: the defaults */
    co->self.sp = sp;
#else
    getcontext(&co->self.uc);
    co->self.uc.uc_stack.ss_sp = co->stack;
    co->self.uc.uc_stack.ss_size = co->stack_size;
    co->self.uc.uc_link = NULL;
    makecontext(&co->self.uc, (void (*)(void))coro_main, 1, co);
#endif
    return co;
}

bool keel__coro_resume(keel_coro *co)
{
    switch_into(co);
    if (!co->done)
        return false;
    coro_recycle(co);
    return true;
}

void keel__coro_yield(keel_coro *co)
{
    switch_out(co);
}

// runtime/context.cpp: fibers. Each GPU thread is a fiber with its own stack; switching between
// a fiber and its worker's scheduler is the emulator's innermost loop, so on x86-64 it is a
// hand-written swap of the callee-saved registers, MXCSR and the x87 control word (no system
// call); elsewhere ucontext (swapcontext) does it, correctly but more slowly. Also here: the body
// every fiber runs (the kernel, then back to the scheduler) and the yield that barriers and warp
// operations use.

#include "runtime.h"

namespace pixelrnn_emu {
namespace rt {

#if defined(PIXELRNN_EMU_ASM_SWITCH)
asm(R"(
    .text
    .p2align 4
    .globl pixelrnn_emu_switch
    .hidden pixelrnn_emu_switch
    .type pixelrnn_emu_switch, @function
pixelrnn_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size pixelrnn_emu_switch, .-pixelrnn_emu_switch

    .p2align 4
    .globl pixelrnn_emu_fiber_start
    .hidden pixelrnn_emu_fiber_start
    .type pixelrnn_emu_fiber_start, @function
pixelrnn_emu_fiber_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size pixelrnn_emu_fiber_start, .-pixelrnn_emu_fiber_start
)");

// Prepares `ctx` to call fiber_main(arg) on the stack [stack, stack + bytes) when first
// switched to.
void make_context(Context* ctx, char* stack, size_t bytes, void* arg) {
    void (*fn)(void*) = fiber_main;
    uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
    // Frame popped by pixelrnn_emu_switch: mxcsr|fpucw, r15, r14, r13, r12, rbx, rbp, return.
    // After its `ret`, rsp = top - 16 (16-byte aligned), as before a call.
    uint64_t* sp = (uint64_t*)(top - 16 - 64);
    uint32_t csr[2];
    asm volatile("stmxcsr %0" : "=m"(csr[0]));
    asm volatile("fnstcw %0" : "=m"(*(uint16_t*)&csr[1]));
    csr[1] &= 0xffff;
    memcpy(&sp[0], csr, 8);
    sp[1] = 0;                   // r15
    sp[2] = 0;                   // r14
    sp[3] = (uint64_t)fn;        // r13
    sp[4] = (uint64_t)arg;       // r12
    sp[5] = 0;                   // rbx
    sp[6] = 0;                   // rbp
    sp[7] = (uint64_t)&pixelrnn_emu_fiber_start;
    ctx->sp = sp;
}
#else
namespace {

void fiber_main_split(unsigned lo, unsigned hi) {
    fiber_main((void*)(uintptr_t)(((uint64_t)hi << 32) | lo));
}

}  // namespace

void make_context(Context* ctx, char* stack, size_t bytes, void* arg) {
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = stack;
    ctx->uc.uc_stack.ss_size = bytes;
    ctx->uc.uc_link = nullptr;
    // makecontext passes int arguments: the pointer in two halves.
    const uint64_t p = (uint64_t)(uintptr_t)arg;
    makecontext(&ctx->uc, (void (*)())fiber_main_split, 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 32));
}
#endif

// The body of every fiber: the kernel, then back to the scheduler for good.
void fiber_main(void* arg) {
    Fiber* f = static_cast<Fiber*>(arg);
    Worker* w = f->worker;
    const Launch* L = w->launch;
    (L->counters ? L->kernel->counted_entry : L->kernel->entry)(L->args);
    f->state = DONE;
    w->in_fiber = 0;
    switch_context(&f->ctx, &w->sched);
    abort();  // a finished fiber is never resumed
}

// Switches from the running fiber back to its worker's scheduler.
void yield_to_scheduler(Fiber* f) {
    Worker* w = f->worker;
    w->in_fiber = 0;
    switch_context(&f->ctx, &w->sched);
    // Resumed by the scheduler (which set in_fiber and the thread index).
}

}  // namespace rt
}  // namespace pixelrnn_emu

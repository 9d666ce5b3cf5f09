// runtime.cpp: the CPU emulation of the CUDA execution model (see docs/emulator.md).
//
// A launch runs the blocks of its grid on `workers` host threads (the calling thread is one of
// them). A worker runs one block at a time: one fiber per GPU thread, each on its own 64 KiB
// stack (stacks are reused across blocks and launches). The worker's scheduler resumes ready
// fibers in an order drawn from the launch's seed; a fiber runs until it reaches
// __syncthreads(), a warp-wide operation or its end, so a kernel without barriers runs each
// thread straight through. A barrier completes when every thread of the block waits at it; a
// warp operation completes when every lane of its mask called it (lockstep exchange); anything
// else that leaves no fiber ready is a deadlock, reported as an error.
//
// Bounds checking: buffers allocated with guard pages (a PROT_NONE page flush after the last
// element, another before the first page); an access to a guard page raises SIGSEGV, whose
// handler (on an alternate signal stack) maps the address back to the launch's argument and
// element, records the fiber's block and thread, and siglongjmps back to the worker, which
// ends the launch with that error.

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <condition_variable>
#include <deque>
#include <thread>
#include <vector>

// PIXELRNN_EMU_UCONTEXT forces the portable context switch (to test it on x86-64).
#if defined(__x86_64__) && !defined(PIXELRNN_EMU_UCONTEXT)
#define PIXELRNN_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#include "cuda_emu.h"
#include "launch.h"

// The generated table of emulated kernels (build.rs).
extern "C" const PixelrnnEmuKernel* const pixelrnn_emu_kernels[];
extern "C" const size_t pixelrnn_emu_kernel_count;

extern "C" {

// One buffer argument of a launch, for the bounds check's diagnostics.
typedef struct PixelrnnEmuBuf {
    const void* ptr;
    size_t len;  // elements of 4 bytes
    int guarded;
    int arg;  // index in the kernel's parameter list
} PixelrnnEmuBuf;

// What went wrong in a launch (code 0: nothing).
typedef struct PixelrnnEmuError {
    int code;  // 0 ok, 1 see message, 2 out of bounds of argument buffer `arg`, 3 unknown kernel
    int arg;
    int write;  // 1 write, 0 read, -1 unknown (code 2)
    long long index;  // element (4-byte) index of the access (code 2)
    int has_thread;
    unsigned block[3];
    unsigned thread[3];
    char message[1024];
} PixelrnnEmuError;

}  // extern "C"

namespace pixelrnn_emu {

thread_local const uint3* tl_thread_idx PIXELRNN_EMU_TLS = nullptr;
thread_local uint3 tl_block_idx PIXELRNN_EMU_TLS = {0, 0, 0};
thread_local dim3 tl_block_dim PIXELRNN_EMU_TLS = dim3(1, 1, 1);
thread_local dim3 tl_grid_dim PIXELRNN_EMU_TLS = dim3(1, 1, 1);
thread_local unsigned char* tl_dynamic_shared PIXELRNN_EMU_TLS = nullptr;

namespace {

constexpr size_t kStackBytes = 64 * 1024;
constexpr int kMaxThreads = 1024;
// Largest opt-in dynamic shared memory per block of the H100/H200 (227 KiB).
constexpr unsigned kMaxSharedBytes = 227 * 1024;

size_t page_size() {
    static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// ---------------------------------------------------------------------------------------------
// Guarded allocations: [guard page][data pages][guard page], the data flush against the second
// guard so that the element one past the end faults.

struct GuardedLayout {
    char* map;
    size_t map_bytes;
    char* base;
};

GuardedLayout guarded_layout(const void* base, size_t bytes) {
    const size_t page = page_size();
    const size_t data = round_up(bytes, page);
    char* end = (char*)base + bytes;  // start of the guard after
    char* map = end - data - page;
    return GuardedLayout{map, data + 2 * page, (char*)base};
}

void* alloc_guarded(size_t bytes) {
    const size_t page = page_size();
    const size_t data = round_up(bytes, page);
    void* map = mmap(nullptr, data + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return nullptr;
    if (data > 0 && mprotect((char*)map + page, data, PROT_READ | PROT_WRITE) != 0) {
        munmap(map, data + 2 * page);
        return nullptr;
    }
    return (char*)map + page + data - bytes;
}

void free_guarded(void* base, size_t bytes) {
    GuardedLayout l = guarded_layout(base, bytes);
    munmap(l.map, l.map_bytes);
}

// The body of every fiber (defined below).
void fiber_main(void* arg);

// ---------------------------------------------------------------------------------------------
// Context switching. x86-64: a hand-rolled switch of the callee-saved registers, MXCSR and the
// x87 control word (no syscall, unlike swapcontext). Elsewhere: ucontext.

#if defined(PIXELRNN_EMU_ASM_SWITCH)
extern "C" void pixelrnn_emu_switch(void** save_sp, void* to_sp);
extern "C" void pixelrnn_emu_fiber_start();
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

struct Context {
    void* sp = nullptr;
};

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

inline void switch_context(Context* from, Context* to) { pixelrnn_emu_switch(&from->sp, to->sp); }
#else
struct Context {
    ucontext_t uc;
};

void fiber_main_split(unsigned lo, unsigned hi) {
    fiber_main((void*)(uintptr_t)(((uint64_t)hi << 32) | lo));
}

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
inline void switch_context(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
#endif

// ---------------------------------------------------------------------------------------------
// Fibers, workers, launches

enum State : int { READY, RUNNING, AT_BARRIER, AT_WARP, DONE, TRAPPED };

struct Worker;

struct Fiber {
    Context ctx;
    char* stack = nullptr;  // lowest address of the mapping (a guard page), then kStackBytes
    Worker* worker = nullptr;
    uint3 tid{0, 0, 0};
    int linear = 0;
    int state = READY;
    // The pending warp operation.
    int op_kind = 0;
    unsigned op_mask = 0;
    uint64_t op_in = 0;
    uint64_t op_out = 0;
    int op_a = 0;
    int op_b = 0;
    const char* trap_why = nullptr;
};

struct Launch {
    const PixelrnnEmuKernel* kernel;
    void** args;
    dim3 grid;
    dim3 block;
    unsigned shared_bytes;
    uint64_t seed;
    bool bounds_check;
    const PixelrnnEmuBuf* bufs;
    size_t nbufs;
    uint64_t nblocks;
    std::atomic<uint64_t> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    PixelrnnEmuError* error;
    // Helper-thread slots of this launch that have not finished (see HelperPool).
    int helpers_running = 0;
};

struct Worker {
    Context sched;
    std::vector<Fiber> fibers;
    std::vector<int> ready;
    unsigned warp_waiting[kMaxThreads / 32];
    unsigned warp_exists[kMaxThreads / 32];
    Launch* launch = nullptr;
    Fiber* current = nullptr;
    volatile sig_atomic_t in_fiber = 0;
    sigjmp_buf jmp;
    // Fault details, written by the signal handler.
    int fault_sig = 0;
    void* fault_addr = nullptr;
    int fault_write = -1;
    Fiber* fault_fiber = nullptr;
    // Alternate signal stack: the handler must run even when a fiber overflowed its stack.
    char* altstack = nullptr;
    size_t altstack_bytes = 0;
    // Dynamic shared memory of the running block.
    unsigned char* dyn = nullptr;
    size_t dyn_bytes = 0;
    bool dyn_guarded = false;
    uint64_t rng = 0;

    ~Worker() {
        for (Fiber& f : fibers) {
            if (f.stack) munmap(f.stack, kStackBytes + page_size());
        }
        if (altstack) munmap(altstack, altstack_bytes);
        free_dyn();
    }

    bool ensure_fibers(int n) {
        size_t old = fibers.size();
        if ((size_t)n <= old) return true;
        fibers.resize(n);
        for (size_t i = old; i < (size_t)n; ++i) {
            const size_t bytes = kStackBytes + page_size();
            void* map = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (map == MAP_FAILED) {
                fibers.resize(i);
                return false;
            }
            // The lowest page guards against stack overflow (the stack grows down).
            mprotect(map, page_size(), PROT_NONE);
            fibers[i].stack = (char*)map;
            fibers[i].worker = this;
        }
        return true;
    }

    bool ensure_altstack() {
        if (altstack) return true;
        altstack_bytes = 64 * 1024 + (size_t)SIGSTKSZ;
        void* map = mmap(nullptr, altstack_bytes, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED) return false;
        altstack = (char*)map;
        return true;
    }

    bool alloc_dyn(size_t bytes, bool guarded) {
        free_dyn();
        dyn_bytes = bytes;
        dyn_guarded = guarded;
        if (bytes == 0) {
            dyn = nullptr;
            return true;
        }
        dyn = guarded ? (unsigned char*)alloc_guarded(bytes)
                      : (unsigned char*)aligned_alloc(128, round_up(bytes, 128));
        return dyn != nullptr;
    }

    void free_dyn() {
        if (!dyn) return;
        if (dyn_guarded) {
            free_guarded(dyn, dyn_bytes);
        } else {
            free(dyn);
        }
        dyn = nullptr;
    }
};

thread_local Worker* tl_worker PIXELRNN_EMU_TLS = nullptr;

// Workers (fibers and their stacks) are pooled across launches and host threads.
// Leaked on purpose (like HelperPool): no destructor may run at exit while a host thread
// still uses them.
std::mutex& pool_mu = *new std::mutex;
std::vector<Worker*>& pool = *new std::vector<Worker*>;

Worker* acquire_worker() {
    {
        std::lock_guard<std::mutex> lock(pool_mu);
        if (!pool.empty()) {
            Worker* w = pool.back();
            pool.pop_back();
            return w;
        }
    }
    return new Worker();
}

void release_worker(Worker* w) {
    w->free_dyn();
    w->launch = nullptr;
    std::lock_guard<std::mutex> lock(pool_mu);
    pool.push_back(w);
}

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t next_random(uint64_t* s) {
    // xorshift64*
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

const char* op_name(int kind) {
    switch (kind) {
        case WARP_SYNC: return "__syncwarp";
        case WARP_SHFL_IDX: return "__shfl_sync";
        case WARP_SHFL_UP: return "__shfl_up_sync";
        case WARP_SHFL_DOWN: return "__shfl_down_sync";
        case WARP_SHFL_XOR: return "__shfl_xor_sync";
        case WARP_BALLOT: return "__ballot_sync";
        case WARP_ANY: return "__any_sync";
        case WARP_ALL: return "__all_sync";
        case WARP_REDUCE_ADD_U32: return "__reduce_add_sync";
        case WARP_REDUCE_MIN_U32:
        case WARP_REDUCE_MIN_I32: return "__reduce_min_sync";
        case WARP_REDUCE_MAX_U32:
        case WARP_REDUCE_MAX_I32: return "__reduce_max_sync";
        case WARP_REDUCE_AND: return "__reduce_and_sync";
        case WARP_REDUCE_OR: return "__reduce_or_sync";
        case WARP_REDUCE_XOR: return "__reduce_xor_sync";
        default: return "warp operation";
    }
}

std::string fmt_thread(const Fiber& f) {
    char buf[64];
    snprintf(buf, sizeof buf, "(%u, %u, %u)", f.tid.x, f.tid.y, f.tid.z);
    return buf;
}

// Fills `e` with a message error about the running block (and `f`, when given).
void set_error(Worker* w, PixelrnnEmuError* e, const Fiber* f, const std::string& what) {
    e->code = 1;
    const uint3 b = tl_block_idx;
    e->block[0] = b.x;
    e->block[1] = b.y;
    e->block[2] = b.z;
    e->has_thread = f != nullptr;
    if (f) {
        e->thread[0] = f->tid.x;
        e->thread[1] = f->tid.y;
        e->thread[2] = f->tid.z;
    }
    std::string msg = what;
    char where[96];
    snprintf(where, sizeof where, " (block (%u, %u, %u)", b.x, b.y, b.z);
    msg += where;
    if (f) msg += " thread " + fmt_thread(*f);
    msg += ")";
    (void)w;
    snprintf(e->message, sizeof e->message, "%s", msg.c_str());
}

// The body of every fiber: the kernel, then back to the scheduler for good.
void fiber_main(void* arg) {
    Fiber* f = static_cast<Fiber*>(arg);
    Worker* w = f->worker;
    w->launch->kernel->entry(w->launch->args);
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

// Computes the results of the warp operation of the lanes in `mask` (all waiting in it).
// Returns false with `why` for an invalid operation.
bool complete_warp_op(Worker* w, int warp, unsigned mask, std::string* why) {
    Fiber* lanes = &w->fibers[warp * 32];
    const int first = __builtin_ctz(mask);
    const int kind = lanes[first].op_kind;
    for (unsigned m = mask; m; m &= m - 1) {
        const int l = __builtin_ctz(m);
        if (lanes[l].op_kind != kind || lanes[l].op_mask != mask) {
            char buf[256];
            snprintf(buf, sizeof buf,
                     "lanes of warp %d disagree: lane %d called %s with mask 0x%08x, lane %d "
                     "called %s with mask 0x%08x",
                     warp, first, op_name(kind), mask, l, op_name(lanes[l].op_kind),
                     lanes[l].op_mask);
            *why = buf;
            return false;
        }
    }
    uint64_t acc = 0;
    switch (kind) {
        case WARP_BALLOT:
        case WARP_ANY:
        case WARP_ALL:
            for (unsigned m = mask; m; m &= m - 1) {
                const int l = __builtin_ctz(m);
                if (lanes[l].op_in) acc |= 1ull << l;
            }
            break;
        case WARP_REDUCE_ADD_U32:
        case WARP_REDUCE_OR:
        case WARP_REDUCE_XOR:
            acc = 0;
            break;
        case WARP_REDUCE_AND:
        case WARP_REDUCE_MIN_U32:
            acc = 0xffffffffu;
            break;
        case WARP_REDUCE_MAX_U32:
            acc = 0;
            break;
        case WARP_REDUCE_MIN_I32:
            acc = (uint32_t)INT32_MAX;
            break;
        case WARP_REDUCE_MAX_I32:
            acc = (uint32_t)INT32_MIN;
            break;
        default:
            break;
    }
    if (kind >= WARP_REDUCE_ADD_U32) {
        for (unsigned m = mask; m; m &= m - 1) {
            const uint32_t v = (uint32_t)lanes[__builtin_ctz(m)].op_in;
            const uint32_t a = (uint32_t)acc;
            switch (kind) {
                case WARP_REDUCE_ADD_U32: acc = (uint32_t)(a + v); break;
                case WARP_REDUCE_MIN_U32: acc = v < a ? v : a; break;
                case WARP_REDUCE_MAX_U32: acc = v > a ? v : a; break;
                case WARP_REDUCE_MIN_I32: acc = (int32_t)v < (int32_t)a ? v : a; break;
                case WARP_REDUCE_MAX_I32: acc = (int32_t)v > (int32_t)a ? v : a; break;
                case WARP_REDUCE_AND: acc = a & v; break;
                case WARP_REDUCE_OR: acc = a | v; break;
                case WARP_REDUCE_XOR: acc = a ^ v; break;
                default: break;
            }
        }
    }
    for (unsigned m = mask; m; m &= m - 1) {
        const int l = __builtin_ctz(m);
        Fiber& f = lanes[l];
        const int width = f.op_b;
        if ((kind == WARP_SHFL_IDX || kind == WARP_SHFL_UP || kind == WARP_SHFL_DOWN ||
             kind == WARP_SHFL_XOR) &&
            (width < 1 || width > 32 || (width & (width - 1)) != 0)) {
            char buf[160];
            snprintf(buf, sizeof buf, "%s with width %d (must be a power of 2 up to 32)",
                     op_name(kind), width);
            *why = buf;
            return false;
        }
        const int seg = l & ~(width - 1);  // first lane of this lane's width-segment
        int src = l;
        switch (kind) {
            case WARP_SHFL_IDX: src = seg + (f.op_a & (width - 1)); break;
            case WARP_SHFL_UP:
                src = (l - seg) >= f.op_a ? l - f.op_a : l;
                break;
            case WARP_SHFL_DOWN:
                src = (l - seg) + f.op_a < width ? l + f.op_a : l;
                break;
            case WARP_SHFL_XOR: {
                const int s = l ^ f.op_a;
                src = (s >= 0 && s < seg + width && s < 32) ? s : l;
                break;
            }
            default: break;
        }
        switch (kind) {
            case WARP_SHFL_IDX:
            case WARP_SHFL_UP:
            case WARP_SHFL_DOWN:
            case WARP_SHFL_XOR:
                // A source lane outside the mask is undefined on the GPU: the caller's own value.
                f.op_out = ((mask >> src) & 1u) ? lanes[src].op_in : f.op_in;
                break;
            case WARP_BALLOT: f.op_out = acc; break;
            case WARP_ANY: f.op_out = acc != 0; break;
            case WARP_ALL: f.op_out = acc == (uint64_t)mask; break;
            case WARP_SYNC: f.op_out = 0; break;
            default: f.op_out = acc; break;
        }
    }
    for (unsigned m = mask; m; m &= m - 1) {
        const int l = __builtin_ctz(m);
        lanes[l].state = READY;
        w->ready.push_back(warp * 32 + l);
    }
    w->warp_waiting[warp] &= ~mask;
    return true;
}

// Runs block number `b` of the launch to completion. Returns false with `e` filled on error.
bool run_block(Worker* w, Launch* L, uint64_t b, PixelrnnEmuError* e) {
    const dim3 bd = L->block;
    const int n = (int)(bd.x * bd.y * bd.z);
    const int warps = (n + 31) / 32;
    tl_block_idx = uint3{(unsigned)(b % L->grid.x), (unsigned)((b / L->grid.x) % L->grid.y),
                         (unsigned)(b / ((uint64_t)L->grid.x * L->grid.y))};
    w->rng = splitmix64(L->seed ^ splitmix64(b + 0x51ed2701ull)) | 1;
    w->ready.clear();
    for (int i = 0; i < warps; ++i) {
        w->warp_waiting[i] = 0;
        const int lanes = n - i * 32 >= 32 ? 32 : n - i * 32;
        w->warp_exists[i] = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1);
    }
    if (w->dyn) {
        // Shared memory starts with garbage on the GPU; NaN makes reads before writes visible.
        memset(w->dyn, 0xff, w->dyn_bytes);
    }
    for (int i = 0; i < n; ++i) {
        Fiber& f = w->fibers[i];
        f.linear = i;
        f.tid = uint3{(unsigned)(i % bd.x), (unsigned)((i / bd.x) % bd.y),
                      (unsigned)(i / (bd.x * bd.y))};
        f.state = READY;
        f.trap_why = nullptr;
        // Stack tops staggered by cache lines: 64 KiB-aligned tops would all fall into the
        // same cache sets and evict each other on every switch.
        const size_t colour = (size_t)(i % 64) * 64;
        make_context(&f.ctx, f.stack + page_size(), kStackBytes - colour, &f);
        w->ready.push_back(i);
    }
    int done = 0;
    int at_barrier = 0;
    int at_warp = 0;
    for (;;) {
        while (!w->ready.empty()) {
            // Random order between synchronisation points: a missing barrier shows up as
            // results that change with the seed.
            const size_t k = (size_t)(next_random(&w->rng) % w->ready.size());
            const int idx = w->ready[k];
            w->ready[k] = w->ready.back();
            w->ready.pop_back();
            Fiber* f = &w->fibers[idx];
            f->state = RUNNING;
            w->current = f;
            tl_thread_idx = &f->tid;
            w->in_fiber = 1;
            switch_context(&w->sched, &f->ctx);
            w->in_fiber = 0;
            const int warp = idx / 32;
            const int lane = idx % 32;
            switch (f->state) {
                case DONE: {
                    ++done;
                    const unsigned waiting = w->warp_waiting[warp];
                    for (unsigned m = waiting; m; m &= m - 1) {
                        const Fiber& o = w->fibers[warp * 32 + __builtin_ctz(m)];
                        if ((o.op_mask >> lane) & 1u) {
                            set_error(w, e, &o,
                                      std::string("deadlock: ") + op_name(o.op_kind) +
                                          " with mask " + [&] {
                                              char b2[16];
                                              snprintf(b2, sizeof b2, "0x%08x", o.op_mask);
                                              return std::string(b2);
                                          }() + " waits for thread " + fmt_thread(*f) +
                                          ", which has exited");
                            return false;
                        }
                    }
                    break;
                }
                case AT_BARRIER: ++at_barrier; break;
                case TRAPPED:
                    set_error(w, e, f, std::string("kernel called ") + f->trap_why);
                    return false;
                case AT_WARP: {
                    unsigned mask = f->op_mask & w->warp_exists[warp];
                    if (!((mask >> lane) & 1u)) {
                        char buf[160];
                        snprintf(buf, sizeof buf,
                                 "%s with mask 0x%08x, which does not include the calling lane "
                                 "%d",
                                 op_name(f->op_kind), f->op_mask, lane);
                        set_error(w, e, f, buf);
                        return false;
                    }
                    for (unsigned m = mask; m; m &= m - 1) {
                        const Fiber& o = w->fibers[warp * 32 + __builtin_ctz(m)];
                        if (o.state == DONE) {
                            char buf[200];
                            snprintf(buf, sizeof buf,
                                     "deadlock: %s with mask 0x%08x names lane %d, which has "
                                     "exited (thread %s)",
                                     op_name(f->op_kind), f->op_mask, __builtin_ctz(m),
                                     fmt_thread(o).c_str());
                            set_error(w, e, f, buf);
                            return false;
                        }
                    }
                    f->op_mask = mask;
                    ++at_warp;
                    w->warp_waiting[warp] |= 1u << lane;
                    if ((w->warp_waiting[warp] & mask) == mask) {
                        std::string why;
                        if (!complete_warp_op(w, warp, mask, &why)) {
                            set_error(w, e, f, why);
                            return false;
                        }
                        at_warp -= __builtin_popcount(mask);
                    }
                    break;
                }
                default: {
                    set_error(w, e, f, "internal error: fiber returned in an unknown state");
                    return false;
                }
            }
        }
        if (done == n) return true;
        if (at_warp == 0 && at_barrier == n - done) {
            if (done > 0) {
                const Fiber* exited = nullptr;
                const Fiber* waiting = nullptr;
                for (int i = 0; i < n; ++i) {
                    if (w->fibers[i].state == DONE && !exited) exited = &w->fibers[i];
                    if (w->fibers[i].state == AT_BARRIER && !waiting) waiting = &w->fibers[i];
                }
                char buf[300];
                snprintf(buf, sizeof buf,
                         "deadlock at __syncthreads: %d of %d threads exited without reaching "
                         "it (e.g. thread %s) while %d wait at it (e.g. thread %s)",
                         done, n, fmt_thread(*exited).c_str(), at_barrier,
                         fmt_thread(*waiting).c_str());
                set_error(w, e, nullptr, buf);
                return false;
            }
            for (int i = 0; i < n; ++i) {
                w->fibers[i].state = READY;
                w->ready.push_back(i);
            }
            at_barrier = 0;
            continue;
        }
        // Nothing can run: threads wait at a barrier and at warp operations that cannot
        // complete.
        const Fiber* warp_waiter = nullptr;
        const Fiber* barrier_waiter = nullptr;
        for (int i = 0; i < n; ++i) {
            if (w->fibers[i].state == AT_WARP && !warp_waiter) warp_waiter = &w->fibers[i];
            if (w->fibers[i].state == AT_BARRIER && !barrier_waiter)
                barrier_waiter = &w->fibers[i];
        }
        char buf[400];
        if (warp_waiter) {
            const int warp = warp_waiter->linear / 32;
            const unsigned missing = warp_waiter->op_mask & ~w->warp_waiting[warp];
            const int lane = missing ? __builtin_ctz(missing) : 0;
            const Fiber& o = w->fibers[warp * 32 + lane];
            snprintf(buf, sizeof buf,
                     "deadlock: %d threads wait in warp operations (e.g. %s with mask 0x%08x) "
                     "for lanes that are elsewhere (lane %d, thread %s, %s), %d wait at "
                     "__syncthreads",
                     at_warp, op_name(warp_waiter->op_kind), warp_waiter->op_mask, lane,
                     fmt_thread(o).c_str(),
                     o.state == AT_BARRIER ? "waits at __syncthreads"
                     : o.state == AT_WARP  ? "waits in another warp operation"
                                           : "exited",
                     at_barrier);
            set_error(w, e, warp_waiter, buf);
        } else {
            snprintf(buf, sizeof buf, "deadlock: %d threads wait at __syncthreads, %d exited",
                     at_barrier, done);
            set_error(w, e, barrier_waiter, buf);
        }
        return false;
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

struct sigaction old_segv, old_bus, old_fpe;
std::once_flag handlers_once;

void chain(int sig, siginfo_t* si, void* uctx) {
    struct sigaction* old = sig == SIGSEGV ? &old_segv : sig == SIGBUS ? &old_bus : &old_fpe;
    if (old->sa_flags & SA_SIGINFO) {
        if (old->sa_sigaction) {
            old->sa_sigaction(sig, si, uctx);
            return;
        }
    } else if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
        return;
    }
    // Default action: restore it and return, the faulting instruction faults again.
    signal(sig, SIG_DFL);
}

void on_fault(int sig, siginfo_t* si, void* uctx) {
    Worker* w = tl_worker;
    if (w == nullptr || !w->in_fiber) {
        chain(sig, si, uctx);
        return;
    }
    w->in_fiber = 0;
    w->fault_sig = sig;
    w->fault_addr = si->si_addr;
    w->fault_fiber = w->current;
    w->fault_write = -1;
#if defined(__x86_64__) && defined(REG_ERR)
    if (sig == SIGSEGV && uctx) {
        const ucontext_t* uc = static_cast<const ucontext_t*>(uctx);
        // Page-fault error code: bit 1 is set for a write.
        w->fault_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
    }
#endif
    siglongjmp(w->jmp, 1);
}

void install_handlers() {
    std::call_once(handlers_once, [] {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, &old_segv);
        sigaction(SIGBUS, &sa, &old_bus);
        sigaction(SIGFPE, &sa, &old_fpe);
    });
}

// Describes the fault recorded in `w` into `e`.
void describe_fault(Worker* w, Launch* L, PixelrnnEmuError* e) {
    const Fiber* f = w->fault_fiber;
    const char* addr = (const char*)w->fault_addr;
    if (w->fault_sig == SIGFPE) {
        set_error(w, e, f, "arithmetic exception (SIGFPE: integer division by zero?)");
        return;
    }
    const size_t page = page_size();
    for (size_t i = 0; i < L->nbufs; ++i) {
        const PixelrnnEmuBuf& b = L->bufs[i];
        if (!b.guarded) continue;
        const GuardedLayout l = guarded_layout(b.ptr, b.len * 4);
        const char* after = (const char*)b.ptr + b.len * 4;
        const bool in_after = addr >= after && addr < after + page;
        const bool in_before = addr >= l.map && addr < l.map + page;
        if (in_after || in_before) {
            set_error(w, e, f, "out-of-bounds access");
            e->code = 2;
            e->arg = b.arg;
            e->write = w->fault_write;
            const long long off = (long long)(addr - (const char*)b.ptr);
            e->index = off >= 0 ? off / 4 : -((-off + 3) / 4);
            return;
        }
    }
    char buf[256];
    if (w->dyn && w->dyn_guarded) {
        const GuardedLayout l = guarded_layout(w->dyn, w->dyn_bytes);
        if (addr >= l.map && addr < l.map + l.map_bytes) {
            const long long off = (long long)(addr - (const char*)w->dyn);
            snprintf(buf, sizeof buf,
                     "out-of-bounds %s dynamic shared memory (%zu bytes) at byte offset %lld",
                     w->fault_write == 1 ? "write to" : w->fault_write == 0 ? "read of"
                                                                             : "access to",
                     w->dyn_bytes, off);
            set_error(w, e, f, buf);
            return;
        }
    }
    if (f && addr >= f->stack && addr < f->stack + page) {
        set_error(w, e, f,
                  "stack overflow of the emulated thread (64 KiB: large local arrays or deep "
                  "recursion)");
        return;
    }
    snprintf(buf, sizeof buf, "%s at address %p, outside every buffer of the launch%s",
             w->fault_sig == SIGBUS ? "bus error" : "segmentation fault", (const void*)addr,
             L->bounds_check ? "" : " (run with bounds_check for buffer and index)");
    set_error(w, e, f, buf);
}

// Runs block `b` with the fault handler armed; false with `e` filled on error.
bool run_block_guarded(Worker* w, Launch* L, uint64_t b, PixelrnnEmuError* e) {
    if (sigsetjmp(w->jmp, 1) != 0) {
        describe_fault(w, L, e);
        return false;
    }
    return run_block(w, L, b, e);
}

void record_error(Launch* L, const PixelrnnEmuError& e) {
    std::lock_guard<std::mutex> lock(L->error_mu);
    if (L->error->code == 0) *L->error = e;
    L->failed.store(true);
}

void run_worker(Launch* L) {
    Worker* w = acquire_worker();
    PixelrnnEmuError e;
    memset(&e, 0, sizeof e);
    const int n = (int)(L->block.x * L->block.y * L->block.z);
    if (!w->ensure_fibers(n) || !w->ensure_altstack() ||
        !w->alloc_dyn(L->shared_bytes, L->bounds_check)) {
        e.code = 1;
        snprintf(e.message, sizeof e.message,
                 "out of host memory for %d fiber stacks or %u bytes of shared memory", n,
                 L->shared_bytes);
        record_error(L, e);
        release_worker(w);
        return;
    }
    stack_t alt, old_alt;
    alt.ss_sp = w->altstack;
    alt.ss_size = w->altstack_bytes;
    alt.ss_flags = 0;
    sigaltstack(&alt, &old_alt);
    Worker* const prev_worker = tl_worker;
    const uint3* const prev_tid = tl_thread_idx;
    tl_worker = w;
    w->launch = L;
    tl_block_dim = L->block;
    tl_grid_dim = L->grid;
    tl_dynamic_shared = w->dyn;
    for (;;) {
        if (L->failed.load(std::memory_order_relaxed)) break;
        const uint64_t b = L->next_block.fetch_add(1);
        if (b >= L->nblocks) break;
        if (!run_block_guarded(w, L, b, &e)) {
            record_error(L, e);
            break;
        }
    }
    tl_worker = prev_worker;
    tl_thread_idx = prev_tid;
    tl_dynamic_shared = nullptr;
    // Keep the previous alternate stack (Rust's stack-overflow handler uses one).
    sigaltstack(&old_alt, nullptr);
    release_worker(w);
}

// Host threads that run blocks for launches, kept across launches (creating a thread per
// launch cost more than a small launch itself). A launch queues one slot per extra worker;
// slots still queued when the launching thread has run out of blocks are withdrawn.
struct HelperPool {
    std::mutex mu;
    std::condition_variable work;
    std::condition_variable finished;
    std::deque<Launch*> slots;
    int idle = 0;      // threads waiting for a slot
    int starting = 0;  // threads created that have not reached the wait yet

    void run() {
        std::unique_lock<std::mutex> lock(mu);
        --starting;
        for (;;) {
            ++idle;
            work.wait(lock, [this] { return !slots.empty(); });
            --idle;
            Launch* L = slots.front();
            slots.pop_front();
            lock.unlock();
            run_worker(L);
            lock.lock();
            if (--L->helpers_running == 0) finished.notify_all();
        }
    }

    // Queues up to `n` worker slots of `L`, creating threads so that every queued slot has
    // one; returns how many were queued.
    int submit(Launch* L, int n) {
        std::lock_guard<std::mutex> lock(mu);
        int queued = 0;
        for (; queued < n; ++queued) {
            if (idle + starting < (int)slots.size() + 1) {
                try {
                    std::thread([this] { run(); }).detach();
                } catch (...) {
                    break;  // fewer workers: still correct, only slower
                }
                ++starting;
            }
            slots.push_back(L);
            ++L->helpers_running;
        }
        work.notify_all();
        return queued;
    }

    // Withdraws L's slots that no thread has taken, then waits for the others to finish.
    void wait(Launch* L) {
        std::unique_lock<std::mutex> lock(mu);
        for (auto it = slots.begin(); it != slots.end();) {
            if (*it == L) {
                it = slots.erase(it);
                --L->helpers_running;
            } else {
                ++it;
            }
        }
        finished.wait(lock, [L] { return L->helpers_running == 0; });
    }
};

HelperPool& helper_pool() {
    static HelperPool* pool = new HelperPool;  // leaked: helper threads outlive main
    return *pool;
}

}  // namespace

void barrier() {
    Worker* w = tl_worker;
    Fiber* f = w->current;
    f->state = AT_BARRIER;
    yield_to_scheduler(f);
}

uint64_t warp_op(int kind, unsigned mask, uint64_t value, int a, int b) {
    Worker* w = tl_worker;
    Fiber* f = w->current;
    f->op_kind = kind;
    f->op_mask = mask;
    f->op_in = value;
    f->op_a = a;
    f->op_b = b;
    f->state = AT_WARP;
    yield_to_scheduler(f);
    return f->op_out;
}

unsigned active_mask() {
    Worker* w = tl_worker;
    Fiber* f = w->current;
    const int warp = f->linear / 32;
    unsigned m = w->warp_exists[warp];
    for (unsigned k = m; k; k &= k - 1) {
        const int l = __builtin_ctz(k);
        if (w->fibers[warp * 32 + l].state == DONE) m &= ~(1u << l);
    }
    return m;
}

void trap(const char* why) {
    Worker* w = tl_worker;
    Fiber* f = w->current;
    f->trap_why = why;
    f->state = TRAPPED;
    yield_to_scheduler(f);
    abort();  // a trapped fiber is never resumed
}

}  // namespace pixelrnn_emu

using namespace pixelrnn_emu;

extern "C" {

// A buffer of `len` floats: 128-byte aligned, or flush against a guard page (`guarded`).
float* pixelrnn_emu_alloc(size_t len, int guarded) {
    if (guarded) return (float*)alloc_guarded(len * 4);
    return (float*)aligned_alloc(128, round_up(len * 4 > 0 ? len * 4 : 4, 128));
}

void pixelrnn_emu_free(float* p, size_t len, int guarded) {
    if (!p) return;
    if (guarded) {
        free_guarded(p, len * 4);
    } else {
        free(p);
    }
}

// Number of emulated kernels, and the name of kernel `i` (for tests of the table).
size_t pixelrnn_emu_count() { return pixelrnn_emu_kernel_count; }
const char* pixelrnn_emu_name(size_t i) {
    return i < pixelrnn_emu_kernel_count ? pixelrnn_emu_kernels[i]->name : nullptr;
}

// Runs kernel `name` on grid x block synchronously. Returns 0 on success, else e->code.
int pixelrnn_emu_launch(const char* name, const unsigned grid[3], const unsigned block[3],
                        unsigned shared_bytes, void** args, size_t nargs,
                        const PixelrnnEmuBuf* bufs, size_t nbufs, unsigned long long seed,
                        unsigned workers, int bounds_check, PixelrnnEmuError* e) {
    memset(e, 0, sizeof *e);
    const PixelrnnEmuKernel* kernel = nullptr;
    for (size_t i = 0; i < pixelrnn_emu_kernel_count; ++i) {
        if (strcmp(pixelrnn_emu_kernels[i]->name, name) == 0) {
            kernel = pixelrnn_emu_kernels[i];
            break;
        }
    }
    if (!kernel) {
        e->code = 3;
        snprintf(e->message, sizeof e->message, "no emulated kernel named %s", name);
        return e->code;
    }
    auto fail = [&](const char* fmt, unsigned long long a, unsigned long long b) {
        e->code = 1;
        snprintf(e->message, sizeof e->message, fmt, a, b);
        return e->code;
    };
    if ((size_t)kernel->nparams != nargs) {
        return fail("takes %llu arguments, got %llu", (unsigned long long)kernel->nparams,
                    (unsigned long long)nargs);
    }
    for (int d = 0; d < 3; ++d) {
        if (grid[d] == 0 || block[d] == 0) {
            return fail("empty launch: grid and block dimensions must be at least 1 (%llu%llu)",
                        0, 0);
        }
    }
    const unsigned long long threads = (unsigned long long)block[0] * block[1] * block[2];
    if (threads > (unsigned long long)kMaxThreads || block[2] > 64) {
        return fail("invalid block: %llu threads (at most 1024, z at most 64; z = %llu)", threads,
                    block[2]);
    }
    if (grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535) {
        return fail("invalid grid: x at most 2^31-1, y and z at most 65535 (y = %llu, z = %llu)",
                    grid[1], grid[2]);
    }
    if (kernel->max_threads > 0 && threads > (unsigned long long)kernel->max_threads) {
        return fail("%llu threads per block exceed its __launch_bounds__(%llu)", threads,
                    (unsigned long long)kernel->max_threads);
    }
    if (shared_bytes > kMaxSharedBytes) {
        return fail("%llu bytes of dynamic shared memory exceed the %llu of the device",
                    shared_bytes, kMaxSharedBytes);
    }
    install_handlers();

    Launch L;
    L.kernel = kernel;
    L.args = args;
    L.grid = dim3(grid[0], grid[1], grid[2]);
    L.block = dim3(block[0], block[1], block[2]);
    L.shared_bytes = shared_bytes;
    L.seed = seed;
    L.bounds_check = bounds_check != 0;
    L.bufs = bufs;
    L.nbufs = nbufs;
    L.nblocks = (uint64_t)grid[0] * grid[1] * grid[2];
    L.error = e;

    uint64_t nworkers = workers == 0 ? 1 : workers;
    if (nworkers > L.nblocks) nworkers = L.nblocks;
    HelperPool& helpers = helper_pool();
    if (nworkers > 1) helpers.submit(&L, (int)(nworkers - 1));
    run_worker(&L);
    if (nworkers > 1) helpers.wait(&L);
    return e->code;
}

}  // extern "C"

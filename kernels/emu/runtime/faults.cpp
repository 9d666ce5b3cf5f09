// runtime/faults.cpp: faults inside kernels. The SIGSEGV, SIGBUS and SIGFPE handler (installed
// on the first launch, run on the worker's alternate signal stack, chaining to the previous
// handler for faults outside kernels) records the address, the fiber and whether it was a read
// or a write, and siglongjmps back to run_block_guarded, which describes the fault: an
// out-of-bounds access of an argument buffer (its index), of dynamic shared memory, a fiber's
// stack overflow, an arithmetic exception, or a stray address.

#include "runtime.h"

namespace pixelrnn_emu {
namespace rt {

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

// Runs block `b` with the fault handler armed; false with `e` filled on error.
bool run_block_guarded(Worker* w, Launch* L, uint64_t b, PixelrnnEmuError* e) {
    if (sigsetjmp(w->jmp, 1) != 0) {
        describe_fault(w, L, e);
        return false;
    }
    return run_block(w, L, b, e);
}

}  // namespace rt
}  // namespace pixelrnn_emu

// runtime/memory.cpp: the emulator's host memory. Guarded allocations place a buffer flush
// against a PROT_NONE page, with another before its first page, so that the element one past
// the end faults (faults.cpp maps the address back to the buffer and the element). A worker
// owns its fibers' stacks (each with a guard page below, against stack overflow), its
// alternate signal stack (the fault handler must run even when a fiber overflowed its stack),
// its static shared arena and the running block's dynamic shared memory.
//
// The static shared arena: each PIXELRNN_SHARED declaration (cuda_emu.h) registers once, the
// first time any thread runs it, and gets an offset that is the same in every worker's arena;
// a worker maps kStaticSharedBytes of address space once (MAP_NORESERVE: only the pages of the
// arrays it runs are ever committed), so an array's address never moves while blocks use it.

#include "runtime.h"

namespace pixelrnn_emu {
namespace rt {

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

namespace {
std::mutex& static_shared_mu = *new std::mutex;  // leaked: see grid.cpp's pool
std::atomic<size_t> static_shared_end{0};
}  // namespace

size_t static_shared_registered() { return static_shared_end.load(std::memory_order_acquire); }

Worker::~Worker() {
    for (Fiber& f : fibers) {
        if (f.stack) munmap(f.stack, kStackBytes + page_size());
    }
    if (altstack) munmap(altstack, altstack_bytes);
    if (static_shared) munmap(static_shared, kStaticSharedBytes);
    free_dyn();
}

bool Worker::ensure_static_shared() {
    if (static_shared) return true;
    void* map = mmap(nullptr, kStaticSharedBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) return false;
    static_shared = (unsigned char*)map;
    return true;
}

bool Worker::ensure_fibers(int n) {
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

bool Worker::ensure_altstack() {
    if (altstack) return true;
    altstack_bytes = 64 * 1024 + (size_t)SIGSTKSZ;
    void* map = mmap(nullptr, altstack_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return false;
    altstack = (char*)map;
    return true;
}

bool Worker::alloc_dyn(size_t bytes, bool guarded) {
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

void Worker::free_dyn() {
    if (!dyn) return;
    if (dyn_guarded) {
        free_guarded(dyn, dyn_bytes);
    } else {
        free(dyn);
    }
    dyn = nullptr;
}

}  // namespace rt

// cuda_emu.h: a new declaration's offset, 128-byte aligned (bank 0, as on the device).
size_t register_static_shared(size_t bytes) {
    size_t offset;
    bool fits;
    {
        std::lock_guard<std::mutex> lock(rt::static_shared_mu);
        offset = rt::static_shared_end.load(std::memory_order_relaxed);
        const size_t end = offset + rt::round_up(bytes > 0 ? bytes : 1, 128);
        fits = end <= rt::kStaticSharedBytes;
        if (fits) rt::static_shared_end.store(end, std::memory_order_release);
    }
    // After the lock: a trapped fiber never returns.
    if (!fits) {
        trap("the static shared arrays of all kernels exceed the emulator's arena "
             "(kStaticSharedBytes, runtime/runtime.h)");
    }
    return offset;
}

}  // namespace pixelrnn_emu

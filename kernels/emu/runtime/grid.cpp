// runtime/grid.cpp: a launch's grid. Its blocks are handed out, in order, to `workers` host
// threads: the launching thread and helper threads kept across launches (creating a thread per
// launch cost more than a small launch itself). Each thread runs its blocks on a pooled Worker
// (fibers, stacks, alternate signal stack) and publishes the block's view (blockDim, gridDim,
// dynamic shared memory) in the thread-locals that cuda_emu.h reads; the first error ends the
// launch.

#include "runtime.h"

namespace pixelrnn_emu {

thread_local const uint3* tl_thread_idx PIXELRNN_EMU_TLS = nullptr;
thread_local uint3 tl_block_idx PIXELRNN_EMU_TLS = {0, 0, 0};
thread_local dim3 tl_block_dim PIXELRNN_EMU_TLS = dim3(1, 1, 1);
thread_local dim3 tl_grid_dim PIXELRNN_EMU_TLS = dim3(1, 1, 1);
thread_local unsigned char* tl_dynamic_shared PIXELRNN_EMU_TLS = nullptr;

namespace rt {

thread_local Worker* tl_worker PIXELRNN_EMU_TLS = nullptr;

namespace {

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

void record_error(Launch* L, const PixelrnnEmuError& e) {
    std::lock_guard<std::mutex> lock(L->error_mu);
    if (L->error->code == 0) *L->error = e;
    L->failed.store(true);
}

}  // namespace

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
    counters_begin_worker(w, L);
    for (;;) {
        if (L->failed.load(std::memory_order_relaxed)) break;
        const uint64_t b = L->next_block.fetch_add(1);
        if (b >= L->nblocks) break;
        if (!L->runs_block(b)) continue;
        if (!run_block_guarded(w, L, b, &e)) {
            record_error(L, e);
            break;
        }
        if (w->counting) counters_end_block(w);
    }
    if (w->counting) counters_end_worker(w, L);
    tl_worker = prev_worker;
    tl_thread_idx = prev_tid;
    tl_dynamic_shared = nullptr;
    // Keep the previous alternate stack (Rust's stack-overflow handler uses one).
    sigaltstack(&old_alt, nullptr);
    release_worker(w);
}

void HelperPool::run() {
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

int HelperPool::submit(Launch* L, int n) {
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

void HelperPool::wait(Launch* L) {
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

HelperPool& helper_pool() {
    static HelperPool* pool = new HelperPool;  // leaked: helper threads outlive main
    return *pool;
}

}  // namespace rt
}  // namespace pixelrnn_emu

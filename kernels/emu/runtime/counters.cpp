// runtime/counters.cpp: the memory counters (opt-in; docs/emulator.md, "Memory counters").
//
// A launch with counters on runs the kernels' second build, the counted units (build.rs
// compiles every kernel file twice; the counted copy with g++ -fsanitize=thread, whose
// instrumentation calls the __tsan_* functions below for every memory access of the kernel
// code, without libtsan). The callbacks keep the accesses that fall in the launch's argument
// buffers (global memory) or in the running block's shared memory (dynamic, or the worker's
// static shared arena, where PIXELRNN_SHARED arrays live), and ignore everything else (fiber
// stacks, thread-locals, the runtime's state). The site of an access is the return address of the
// callback: one instruction of the counted kernel code.
//
// Warp requests: the k-th execution of a site by each lane of a warp forms the k-th request of
// that site and warp. At the end of every block its requests are evaluated (global: distinct
// 32-byte sectors and distinct bytes; shared: the bank-conflict degree, 32 banks of 4 bytes,
// lanes on the same word a broadcast) and added to per-site totals of the worker; at the end
// of the launch the workers' totals and their sets of sectors read and written are merged.
// Load rounds (global loads and atomics): between two barriers, a thread's loads at different
// sites can all be in flight together, while the n-th execution of one site (a rolled loop's
// n-th iteration) is taken to wait for the (n-1)-th; so a thread's rounds in an interval are
// the most executions of one load site in it, each new round charged to the site that opened
// it, and a warp's rounds at a site are the most of its lanes'.
// Synchronisation (docs/emulator.md, "Barriers and warp operations"): per warp, the most block
// barriers, cluster barriers and warp operations (shuffles, votes, reductions; not __syncwarp,
// not mma) one of its lanes took part in, summed over the warps of the launch.
//
// The normal (uncounted) units contain no calls to any of this.

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "runtime.h"

namespace pixelrnn_emu {
namespace rt {

namespace {

struct LaneAccess {
    uint64_t addr;
    uint32_t size;
};

// One site's accesses in the running block.
struct SiteBlock {
    int space = 0;
    int op = 0;
    // Executions so far, per thread of the block (the next access's request number).
    std::vector<uint32_t> executions;
    // (warp << 32 | k) -> the lanes' accesses of request k of that warp.
    std::unordered_map<uint64_t, std::vector<LaneAccess>> requests;
    // Global loads and atomics, per thread: the barrier interval of the last execution, the
    // executions in it, and the load rounds charged to this site.
    std::vector<uint32_t> interval, in_interval, charged;
};

}  // namespace

// A worker's counting state for the launch it runs.
struct WorkerCounters {
    int nthreads = 0;
    // Per thread of the running block: barriers passed, and its load rounds in the current
    // interval (the most executions of one load site since its last barrier).
    std::vector<uint32_t> barriers, interval_rounds;
    // Per thread of the running block: the block barriers, cluster barriers and warp
    // operations it took part in.
    std::vector<uint32_t> block_barriers, cluster_barriers, warp_ops;
    SyncTotals sync;
    std::unordered_map<uint64_t, SiteBlock> block;
    std::unordered_map<uint64_t, SiteTotals> totals;
    std::unordered_set<uint64_t> read_sectors, written_sectors;
};

namespace {

bool in_range(uint64_t a, const void* p, size_t bytes) {
    const uint64_t lo = (uint64_t)(uintptr_t)p;
    return a >= lo && a < lo + bytes;
}

// Space of the access at `a`, or -1 when it is neither global nor shared memory.
int classify(const Worker* w, uint64_t a) {
    const Launch* L = w->launch;
    for (size_t i = 0; i < L->nbufs; ++i) {
        if (in_range(a, L->bufs[i].ptr, L->bufs[i].len * 4)) return COUNT_GLOBAL;
    }
    if (w->dyn && in_range(a, w->dyn, w->dyn_bytes)) return COUNT_SHARED;
    // Only PIXELRNN_SHARED arrays are ever in the static shared arena (memory.cpp).
    if (w->static_shared && in_range(a, w->static_shared, kStaticSharedBytes)) {
        return COUNT_SHARED;
    }
    return -1;
}

void record(const void* addr, size_t size, int op, const void* pc) {
    Worker* w = tl_worker;
    if (!w || !w->counting || !w->current || size == 0) return;
    WorkerCounters* c = w->counting;
    const uint64_t a = (uint64_t)(uintptr_t)addr;
    const int space = classify(w, a);
    if (space < 0) return;
    if (space == COUNT_GLOBAL) {
        auto& sectors = op == COUNT_LOAD ? c->read_sectors : c->written_sectors;
        for (uint64_t s = a / 32; s <= (a + size - 1) / 32; ++s) {
            sectors.insert(s);
            if (op == COUNT_ATOMIC) c->read_sectors.insert(s);
        }
    }
    const uint64_t key = ((uint64_t)(uintptr_t)pc << 3) | ((uint64_t)space << 2) | (uint64_t)op;
    SiteBlock& site = c->block[key];
    if (site.executions.empty()) {
        site.executions.assign((size_t)c->nthreads, 0);
        site.space = space;
        site.op = op;
    }
    const int lane = w->current->linear;
    const uint32_t k = site.executions[(size_t)lane]++;
    if (space == COUNT_GLOBAL && op != COUNT_STORE) {
        if (site.interval.empty()) {
            site.interval.assign((size_t)c->nthreads, UINT32_MAX);
            site.in_interval.assign((size_t)c->nthreads, 0);
            site.charged.assign((size_t)c->nthreads, 0);
        }
        const size_t t = (size_t)lane;
        if (site.interval[t] != c->barriers[t]) {
            site.interval[t] = c->barriers[t];
            site.in_interval[t] = 0;
        }
        if (++site.in_interval[t] > c->interval_rounds[t]) {
            c->interval_rounds[t] = site.in_interval[t];
            ++site.charged[t];
        }
    }
    site.requests[((uint64_t)(lane / 32) << 32) | k].push_back(LaneAccess{a, (uint32_t)size});
}

// Distinct bytes of `lanes` (their byte ranges merged).
uint64_t distinct_bytes(std::vector<LaneAccess>& lanes) {
    std::sort(lanes.begin(), lanes.end(),
              [](const LaneAccess& x, const LaneAccess& y) { return x.addr < y.addr; });
    uint64_t total = 0, end = 0;
    for (const LaneAccess& l : lanes) {
        const uint64_t lo = std::max(l.addr, end), hi = l.addr + l.size;
        if (hi > lo) total += hi - lo;
        end = std::max(end, hi);
    }
    return total;
}

void evaluate(SiteTotals& t, std::vector<LaneAccess>& lanes) {
    t.requests += 1;
    t.lane_accesses += lanes.size();
    for (const LaneAccess& l : lanes) {
        t.bytes += l.size;
        t.access_bytes = std::max(t.access_bytes, l.size);
    }
    t.unique_bytes += distinct_bytes(lanes);
    std::vector<uint64_t> units;
    if (t.space == COUNT_GLOBAL) {
        for (const LaneAccess& l : lanes) {
            for (uint64_t s = l.addr / 32; s <= (l.addr + l.size - 1) / 32; ++s) units.push_back(s);
        }
        std::sort(units.begin(), units.end());
        t.sectors += (uint64_t)(std::unique(units.begin(), units.end()) - units.begin());
        return;
    }
    // Shared: distinct 4-byte words; a bank serves one word per wavefront.
    for (const LaneAccess& l : lanes) {
        for (uint64_t wd = l.addr / 4; wd <= (l.addr + l.size - 1) / 4; ++wd) units.push_back(wd);
    }
    std::sort(units.begin(), units.end());
    const size_t words = (size_t)(std::unique(units.begin(), units.end()) - units.begin());
    unsigned per_bank[32] = {0};
    unsigned degree = 0;
    for (size_t i = 0; i < words; ++i) degree = std::max(degree, ++per_bank[units[i] % 32]);
    t.wavefronts += degree;
    t.ideal_wavefronts += (words + 31) / 32;
    t.max_degree = std::max(t.max_degree, degree);
}

}  // namespace

void counters_begin_worker(Worker* w, Launch* L) {
    w->counting = nullptr;
    if (!L->counters) return;
    WorkerCounters* c = new WorkerCounters;
    c->nthreads = (int)(L->block.x * L->block.y * L->block.z);
    c->barriers.assign((size_t)c->nthreads, 0);
    c->interval_rounds.assign((size_t)c->nthreads, 0);
    c->block_barriers.assign((size_t)c->nthreads, 0);
    c->cluster_barriers.assign((size_t)c->nthreads, 0);
    c->warp_ops.assign((size_t)c->nthreads, 0);
    w->counting = c;
}

void counters_barrier(Worker* w, bool cluster) {
    WorkerCounters* c = w->counting;
    if (!c || !w->current) return;
    const size_t t = (size_t)w->current->linear;
    ++c->barriers[t];
    ++(cluster ? c->cluster_barriers : c->block_barriers)[t];
    c->interval_rounds[t] = 0;
}

void counters_warp_op(Worker* w) {
    WorkerCounters* c = w->counting;
    if (!c || !w->current) return;
    ++c->warp_ops[(size_t)w->current->linear];
}

namespace {

// The sum over the block's warps of the most of `per_thread` over each warp's lanes.
uint64_t sum_of_warp_maxima(const std::vector<uint32_t>& per_thread) {
    uint64_t total = 0;
    for (size_t warp = 0; warp * 32 < per_thread.size(); ++warp) {
        const auto first = per_thread.begin() + (ptrdiff_t)(warp * 32);
        const auto last =
            per_thread.begin() + (ptrdiff_t)std::min(per_thread.size(), (warp + 1) * 32);
        total += *std::max_element(first, last);
    }
    return total;
}

}  // namespace

void counters_end_block(Worker* w) {
    WorkerCounters* c = w->counting;
    if (!c) return;
    for (auto& [key, site] : c->block) {
        SiteTotals& t = c->totals[key];
        t.pc = key >> 3;
        t.space = site.space;
        t.op = site.op;
        for (auto& [rk, lanes] : site.requests) evaluate(t, lanes);
        t.rounds += sum_of_warp_maxima(site.charged);
    }
    c->block.clear();
    c->sync.barriers += sum_of_warp_maxima(c->block_barriers);
    c->sync.cluster_barriers += sum_of_warp_maxima(c->cluster_barriers);
    c->sync.warp_ops += sum_of_warp_maxima(c->warp_ops);
    for (auto* v : {&c->barriers, &c->interval_rounds, &c->block_barriers, &c->cluster_barriers,
                    &c->warp_ops}) {
        std::fill(v->begin(), v->end(), 0);
    }
}

void counters_end_worker(Worker* w, Launch* L) {
    WorkerCounters* c = w->counting;
    if (!c) return;
    w->counting = nullptr;
    LaunchCounters* out = L->counters;
    {
        std::lock_guard<std::mutex> lock(out->mu);
        for (auto& [key, t] : c->totals) {
            SiteTotals& s = out->sites[key];
            s.pc = t.pc;
            s.space = t.space;
            s.op = t.op;
            s.access_bytes = std::max(s.access_bytes, t.access_bytes);
            s.requests += t.requests;
            s.lane_accesses += t.lane_accesses;
            s.bytes += t.bytes;
            s.unique_bytes += t.unique_bytes;
            s.sectors += t.sectors;
            s.wavefronts += t.wavefronts;
            s.ideal_wavefronts += t.ideal_wavefronts;
            s.rounds += t.rounds;
            s.max_degree = std::max(s.max_degree, t.max_degree);
        }
        out->sync += c->sync;
        out->read_sectors.insert(c->read_sectors.begin(), c->read_sectors.end());
        out->written_sectors.insert(c->written_sectors.begin(), c->written_sectors.end());
    }
    delete c;
}

}  // namespace rt
}  // namespace pixelrnn_emu

// ---------------------------------------------------------------------------------------------
// The instrumentation's entry points (GCC's -fsanitize=thread ABI), defined here instead of
// libtsan's. Plain accesses are recorded; atomics are performed (sequentially consistent,
// at least as strong as any order asked for) and recorded as atomic accesses.

using pixelrnn_emu::rt::COUNT_ATOMIC;
using pixelrnn_emu::rt::COUNT_LOAD;
using pixelrnn_emu::rt::COUNT_STORE;
using pixelrnn_emu::rt::record;

#define PIXELRNN_RA __builtin_return_address(0)

extern "C" {

void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}

#define PIXELRNN_TSAN_RW(N)                                                                  \
    void __tsan_read##N(void* p) { record(p, N, COUNT_LOAD, PIXELRNN_RA); }                  \
    void __tsan_write##N(void* p) { record(p, N, COUNT_STORE, PIXELRNN_RA); }                \
    void __tsan_unaligned_read##N(void* p) { record(p, N, COUNT_LOAD, PIXELRNN_RA); }        \
    void __tsan_unaligned_write##N(void* p) { record(p, N, COUNT_STORE, PIXELRNN_RA); }      \
    void __tsan_volatile_read##N(void* p) { record(p, N, COUNT_LOAD, PIXELRNN_RA); }         \
    void __tsan_volatile_write##N(void* p) { record(p, N, COUNT_STORE, PIXELRNN_RA); }
PIXELRNN_TSAN_RW(1)
PIXELRNN_TSAN_RW(2)
PIXELRNN_TSAN_RW(4)
PIXELRNN_TSAN_RW(8)
PIXELRNN_TSAN_RW(16)
#undef PIXELRNN_TSAN_RW

void __tsan_read_range(void* p, unsigned long n) { record(p, n, COUNT_LOAD, PIXELRNN_RA); }
void __tsan_write_range(void* p, unsigned long n) { record(p, n, COUNT_STORE, PIXELRNN_RA); }

void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }

// Atomic loads and stores are not memory requests of their own in the counters (the CAS loop
// of float atomicAdd starts with one); read-modify-writes are.
#define PIXELRNN_TSAN_ATOMIC(N, T)                                                           \
    T __tsan_atomic##N##_load(const volatile T* a, int) {                                   \
        return __atomic_load_n(a, __ATOMIC_SEQ_CST);                                         \
    }                                                                                        \
    void __tsan_atomic##N##_store(volatile T* a, T v, int) {                                 \
        record((const void*)a, sizeof(T), COUNT_STORE, PIXELRNN_RA);                         \
        __atomic_store_n(a, v, __ATOMIC_SEQ_CST);                                            \
    }                                                                                        \
    T __tsan_atomic##N##_exchange(volatile T* a, T v, int) {                                 \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST);                                  \
    }                                                                                        \
    T __tsan_atomic##N##_fetch_add(volatile T* a, T v, int) {                                \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);                                   \
    }                                                                                        \
    T __tsan_atomic##N##_fetch_sub(volatile T* a, T v, int) {                                \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST);                                   \
    }                                                                                        \
    T __tsan_atomic##N##_fetch_and(volatile T* a, T v, int) {                                \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST);                                   \
    }                                                                                        \
    T __tsan_atomic##N##_fetch_or(volatile T* a, T v, int) {                                 \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST);                                    \
    }                                                                                        \
    T __tsan_atomic##N##_fetch_xor(volatile T* a, T v, int) {                                \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST);                                   \
    }                                                                                        \
    T __tsan_atomic##N##_fetch_nand(volatile T* a, T v, int) {                               \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_fetch_nand(a, v, __ATOMIC_SEQ_CST);                                  \
    }                                                                                        \
    int __tsan_atomic##N##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {     \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
    }                                                                                        \
    int __tsan_atomic##N##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) {       \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); \
    }                                                                                        \
    T __tsan_atomic##N##_compare_exchange_val(volatile T* a, T c, T v, int, int) {           \
        record((const void*)a, sizeof(T), COUNT_ATOMIC, PIXELRNN_RA);                        \
        __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);    \
        return c;                                                                            \
    }
PIXELRNN_TSAN_ATOMIC(8, unsigned char)
PIXELRNN_TSAN_ATOMIC(16, unsigned short)
PIXELRNN_TSAN_ATOMIC(32, unsigned int)
PIXELRNN_TSAN_ATOMIC(64, unsigned long long)
#undef PIXELRNN_TSAN_ATOMIC

}  // extern "C"

// runtime/runtime.h: what the files of the emulator's runtime share (see docs/emulator.md):
// the C structs of the interface (mirrored by kernels/src/emu.rs), the fiber, worker and launch
// state, the context switch, and the functions one file calls in another. Only the runtime
// includes it; the kernel units see cuda_emu.h and launch.h.
//
// The runtime is the CPU emulation of the CUDA execution model. A launch runs the blocks of its
// grid on `workers` host threads (the calling thread is one of them). A worker runs one block at
// a time: one fiber per GPU thread, each on its own 64 KiB stack (stacks are reused across
// blocks and launches). The worker's scheduler resumes ready fibers in an order drawn from the
// launch's seed; a fiber runs until it reaches __syncthreads(), a warp-wide operation or its end,
// so a kernel without barriers runs each thread straight through. A barrier completes when every
// thread of the block waits at it; a warp operation completes when every lane of its mask called
// it (lockstep exchange); anything else that leaves no fiber ready is a deadlock, reported as an
// error.
//
// Bounds checking: buffers allocated with guard pages (a PROT_NONE page flush after the last
// element, another before the first page); an access to a guard page raises SIGSEGV, whose
// handler (on an alternate signal stack) maps the address back to the launch's argument and
// element, records the fiber's block and thread, and siglongjmps back to the worker, which
// ends the launch with that error.
//
// One file per job:
//   context.cpp     fibers: the context switch (x86-64 assembly or ucontext), the fiber body
//   scheduler.cpp   one block: its fibers in seeded random order, barriers, deadlocks
//   intrinsics.cpp  the runtime side of __syncthreads, warp operations, __activemask, __trap
//   async_copy.cpp  cp.async: a thread's copies in flight, landed by the wait of their group
//   memory.cpp      guarded allocations, a worker's stacks, its static and dynamic shared
//                   memory
//   faults.cpp      the SIGSEGV/SIGBUS/SIGFPE handler and the error it reports
//   grid.cpp        a launch's grid: pooled workers, helper threads, the thread-locals
//   counters.cpp    the memory counters (opt-in): the __tsan_* callbacks of the counted units
//   c_api.cpp       the C interface (kernels/src/emu.rs declares it)
#pragma once

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
#include <unordered_map>
#include <unordered_set>
#include <vector>

// PIXELRNN_EMU_UCONTEXT forces the portable context switch (to test it on x86-64).
#if defined(__x86_64__) && !defined(PIXELRNN_EMU_UCONTEXT)
#define PIXELRNN_EMU_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#include "cuda_emu.h"
#include "launch.h"

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

// One access site's memory counters over a launch (kernels/src/emu.rs documents the fields).
typedef struct PixelrnnEmuSite {
    unsigned long long pc;
    unsigned long long module_offset;
    int space;  // 0 global, 1 shared
    int op;     // 0 load, 1 store, 2 atomic
    unsigned access_bytes;
    unsigned max_degree;
    unsigned long long requests;
    unsigned long long lane_accesses;
    unsigned long long bytes;
    unsigned long long unique_bytes;
    unsigned long long sectors;
    unsigned long long wavefronts;
    unsigned long long ideal_wavefronts;
    unsigned long long rounds;
} PixelrnnEmuSite;

}  // extern "C"

namespace pixelrnn_emu {
// The runtime's internals, shared by its files and seen by nothing else.
namespace rt {

constexpr size_t kStackBytes = 64 * 1024;
constexpr int kMaxThreads = 1024;
// Largest opt-in dynamic shared memory per block of the H100/H200 (227 KiB).
constexpr unsigned kMaxSharedBytes = 227 * 1024;
// Dynamic shared memory a kernel may use without opting in to more (every CUDA device).
constexpr unsigned kDefaultSharedBytes = 48 * 1024;
// Blocks of the largest portable thread-block cluster (sm_90).
constexpr unsigned kMaxClusterBlocks = 8;

inline size_t page_size() {
    static const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

inline size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// ---------------------------------------------------------------------------------------------
// Guarded allocations (memory.cpp): [guard page][data pages][guard page], the data flush
// against the second guard so that the element one past the end faults.

struct GuardedLayout {
    char* map;
    size_t map_bytes;
    char* base;
};

GuardedLayout guarded_layout(const void* base, size_t bytes);
void* alloc_guarded(size_t bytes);
void free_guarded(void* base, size_t bytes);

// ---------------------------------------------------------------------------------------------
// Context switching (context.cpp). x86-64: a hand-rolled switch of the callee-saved registers,
// MXCSR and the x87 control word (no syscall, unlike swapcontext). Elsewhere: ucontext.

// The body of every fiber.
void fiber_main(void* arg);

#if defined(PIXELRNN_EMU_ASM_SWITCH)
extern "C" void pixelrnn_emu_switch(void** save_sp, void* to_sp);
extern "C" void pixelrnn_emu_fiber_start();

struct Context {
    void* sp = nullptr;
};

inline void switch_context(Context* from, Context* to) { pixelrnn_emu_switch(&from->sp, to->sp); }
#else
struct Context {
    ucontext_t uc;
};

inline void switch_context(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
#endif

// Prepares `ctx` to call fiber_main(arg) on the stack [stack, stack + bytes) when first
// switched to.
void make_context(Context* ctx, char* stack, size_t bytes, void* arg);

// ---------------------------------------------------------------------------------------------
// Fibers, workers, launches

// AT_CLUSTER: waiting at a cluster barrier (cluster.sync(), barrier.cluster.arrive + wait).
enum State : int { READY, RUNNING, AT_BARRIER, AT_WARP, DONE, TRAPPED, AT_CLUSTER };

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
    // cp.async copies issued and not yet landed (async_copy.cpp), and the groups committed.
    struct PendingCopy {
        void* dst;
        unsigned char bytes[16];
        unsigned size;
        int64_t group;  // -1: in the open group
    };
    std::vector<PendingCopy> copies;
    int64_t groups_committed = 0;
};

// Memory counters (counters.cpp). Spaces and operations of an access.
enum CountSpace : int { COUNT_GLOBAL = 0, COUNT_SHARED = 1 };
enum CountOp : int { COUNT_LOAD = 0, COUNT_STORE = 1, COUNT_ATOMIC = 2 };
// One site's totals (the fields of PixelrnnEmuSite, before the module offset is known).
struct SiteTotals {
    uint64_t pc = 0;
    int space = 0;
    int op = 0;
    uint32_t access_bytes = 0;
    uint32_t max_degree = 0;
    uint64_t requests = 0, lane_accesses = 0, bytes = 0, unique_bytes = 0, sectors = 0;
    uint64_t wavefronts = 0, ideal_wavefronts = 0, rounds = 0;
};
// Synchronisation per warp, summed over warps: block barriers, cluster barriers and warp
// operations (the most of each that one lane of the warp took part in).
struct SyncTotals {
    uint64_t barriers = 0, cluster_barriers = 0, warp_ops = 0;
    SyncTotals& operator+=(const SyncTotals& o) {
        barriers += o.barriers;
        cluster_barriers += o.cluster_barriers;
        warp_ops += o.warp_ops;
        return *this;
    }
};
// The counters of one launch, merged from its workers.
struct LaunchCounters {
    std::mutex mu;
    std::unordered_map<uint64_t, SiteTotals> sites;
    SyncTotals sync;
    std::unordered_set<uint64_t> read_sectors, written_sectors;
};
struct WorkerCounters;
struct ClusterGroup;
struct Launch {
    const PixelrnnEmuKernel* kernel;
    void** args;
    dim3 grid;
    dim3 block;
    unsigned shared_bytes;
    // This launch's serial number (never 0) and the largest static shared size any host thread
    // saw it declare (cuda_emu.h's static_shared; checked after the run, c_api.cpp).
    uint64_t serial = 0;
    std::atomic<size_t> static_bytes{0};
    uint64_t seed;
    bool bounds_check;
    const PixelrnnEmuBuf* bufs;
    size_t nbufs;
    uint64_t nblocks;
    std::atomic<uint64_t> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex error_mu;
    PixelrnnEmuError* error;
    // Non-null when the launch counts memory accesses (it then runs the counted units).
    LaunchCounters* counters = nullptr;
    // Counted launches only: run just this many blocks, evenly spread over the grid, and skip
    // the others (0: run every block). A profiling mode: the skipped blocks' outputs are not
    // written, and the counters are scaled up to the whole grid (c_api.cpp).
    uint64_t sample_blocks = 0;
    // Whether block `b` runs under the sample (every block when not sampling).
    bool runs_block(uint64_t b) const {
        if (!counters || sample_blocks == 0 || sample_blocks >= nblocks) return true;
        return ((b + 1) * sample_blocks) / nblocks > (b * sample_blocks) / nblocks;
    }
    // Blocks that run under the sample (a cluster launch samples whole clusters).
    uint64_t blocks_run() const {
        if (cluster_size > 1) return clusters_run() * cluster_size;
        return (!counters || sample_blocks == 0 || sample_blocks >= nblocks) ? nblocks
                                                                            : sample_blocks;
    }
    // Helper-thread slots of this launch that have not finished (see HelperPool).
    int helpers_running = 0;
    // Thread-block clusters (grid.cpp): blocks per cluster in each dimension ((1, 1, 1): no
    // cluster), their product, and the clusters of the grid. A cluster launch runs each
    // cluster on a group of `cluster_size` host threads, one block each, so that the blocks
    // of a cluster are co-resident (their static __shared__ variables are per host thread).
    dim3 cluster = dim3(1, 1, 1);
    unsigned cluster_size = 1;
    uint64_t nclusters = 0;
    // The groups (ngroups of them) and the next host-thread slot to hand out.
    ClusterGroup* groups = nullptr;
    int ngroups = 0;
    std::atomic<int> next_slot{0};
    // Whether cluster `c` runs under the block sample (whole clusters are sampled: a block
    // cannot run without the rest of its cluster).
    bool runs_cluster(uint64_t c) const {
        if (!counters || sample_blocks == 0 || sample_blocks >= nclusters) return true;
        return ((c + 1) * sample_blocks) / nclusters > (c * sample_blocks) / nclusters;
    }
    // Clusters that run under the sample.
    uint64_t clusters_run() const {
        return (!counters || sample_blocks == 0 || sample_blocks >= nclusters) ? nclusters
                                                                              : sample_blocks;
    }
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
    // Static shared arena (PIXELRNN_SHARED arrays at their registered offsets; memory.cpp):
    // mapped once, kStaticSharedBytes of address space, pages committed as they are touched.
    unsigned char* static_shared = nullptr;
    // Dynamic shared memory of the running block.
    unsigned char* dyn = nullptr;
    size_t dyn_bytes = 0;
    bool dyn_guarded = false;
    uint64_t rng = 0;
    // The counting state of the launch this worker runs (null when counters are off).
    WorkerCounters* counting = nullptr;
    // Cluster launches: the group of host threads this worker belongs to and its block's rank
    // in the cluster (null: not a cluster launch).
    ClusterGroup* group = nullptr;
    unsigned cluster_rank = 0;

    ~Worker();
    // Makes `n` fibers with stacks; false when out of memory.
    bool ensure_fibers(int n);
    // Maps the alternate signal stack once; false when out of memory.
    bool ensure_altstack();
    // Maps the static shared arena once; false when out of memory.
    bool ensure_static_shared();
    // Replaces the dynamic shared memory with `bytes` bytes (guarded or not).
    bool alloc_dyn(size_t bytes, bool guarded);
    void free_dyn();
};

extern thread_local Worker* tl_worker PIXELRNN_EMU_TLS;

// Address space of each worker's static shared arena: every PIXELRNN_SHARED declaration of
// every kernel has its own offset in it (register_static_shared), about 1 MiB in all today.
constexpr size_t kStaticSharedBytes = 16u << 20;

// The end of the registered part of the arena (the offsets handed out so far).
size_t static_shared_registered();

// Switches from the running fiber back to its worker's scheduler (context.cpp).
void yield_to_scheduler(Fiber* f);

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

    void run();
    // Queues up to `n` worker slots of `L`, creating threads so that every queued slot has
    // one; returns how many were queued.
    int submit(Launch* L, int n);
    // Withdraws L's slots that no thread has taken, then waits for the others to finish.
    void wait(Launch* L);
};

// The helper threads of every launch (grid.cpp).
HelperPool& helper_pool();

// Memory counters (counters.cpp): a worker starts counting for `L` (when L->counters is set),
// adds a finished block's requests to its totals, merges its totals into L->counters.
void counters_begin_worker(Worker* w, Launch* L);
void counters_end_block(Worker* w);
// The running thread of `w` reached a block or (`cluster`) cluster barrier: its load rounds
// start anew.
void counters_barrier(Worker* w, bool cluster);
// The running thread of `w` entered a warp operation that the counters count (intrinsics.cpp
// says which).
void counters_warp_op(Worker* w);
void counters_end_worker(Worker* w, Launch* L);
// Runs blocks of `L` on a pooled worker until none is left or the launch failed (grid.cpp).
void run_worker(Launch* L);

// Fills `e` with a message error about the running block (and `f`, when given)
// (scheduler.cpp).
void set_error(Worker* w, PixelrnnEmuError* e, const Fiber* f, const std::string& what);
// "(x, y, z)": the thread index of `f` (scheduler.cpp).
std::string fmt_thread(const Fiber& f);
// Runs block number `b` of the launch to completion. Returns false with `e` filled on error
// (scheduler.cpp).
bool run_block(Worker* w, Launch* L, uint64_t b, PixelrnnEmuError* e);

// The CUDA name of warp operation `kind` (intrinsics.cpp).
const char* op_name(int kind);
// Computes the results of the warp operation of the lanes in `mask` (all waiting in it).
// Returns false with `why` for an invalid operation (intrinsics.cpp).
bool complete_warp_op(Worker* w, int warp, unsigned mask, std::string* why);

// Cluster launches (grid.cpp): every thread of the running block waits at the cluster
// barrier; hands the turn to the next block of the cluster and returns when this block's turn
// comes in the next phase (true), or false with `e` filled when the launch failed or the
// cluster deadlocked.
bool cluster_wait(Worker* w, PixelrnnEmuError* e);
// Ends a cluster launch's waits after an error (grid.cpp).
void abort_clusters(Launch* L);
// Creates and frees the groups of a cluster launch with `ngroups` groups (grid.cpp).
void make_cluster_groups(Launch* L, int ngroups);
void free_cluster_groups(Launch* L);

// Installs the fault handlers, once (faults.cpp).
void install_handlers();
// Runs block `b` with the fault handler armed; false with `e` filled on error (faults.cpp).
bool run_block_guarded(Worker* w, Launch* L, uint64_t b, PixelrnnEmuError* e);

}  // namespace rt
}  // namespace pixelrnn_emu

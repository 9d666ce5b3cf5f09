// runtime/grid.cpp: a launch's grid. Its blocks are handed out, in order, to `workers` host
// threads: the launching thread and helper threads kept across launches (creating a thread per
// launch cost more than a small launch itself). Each thread runs its blocks on a pooled Worker
// (fibers, stacks, alternate signal stack, static shared arena) and publishes the block's view
// (blockDim, gridDim, static and dynamic shared memory) in the thread-locals that cuda_emu.h
// reads; the first error ends the launch.
//
// Thread-block clusters: a cluster launch runs each cluster on a group of cluster_size host
// threads, one block each (so that the blocks of a cluster are co-resident, each with its own
// worker's static shared arrays), the groups taking the clusters in turn. The blocks of a
// cluster take turns too: between two cluster barriers, one block runs at a time, in an order
// drawn per phase from the launch's seed, until all its threads wait at the barrier (or
// exited); when every block arrived the barrier releases them all (a new phase), or, when all
// exited, the cluster is done. A block that reads another block's data without the barrier
// that orders it thus sees the wrong phase's data, and with a seed the same data on every run.
// A block that exits while another waits at the barrier is a deadlock, reported as an error.

#include "runtime.h"

namespace pixelrnn_emu {

thread_local const uint3* tl_thread_idx PIXELRNN_EMU_TLS = nullptr;
thread_local uint3 tl_block_idx PIXELRNN_EMU_TLS = {0, 0, 0};
thread_local dim3 tl_block_dim PIXELRNN_EMU_TLS = dim3(1, 1, 1);
thread_local dim3 tl_grid_dim PIXELRNN_EMU_TLS = dim3(1, 1, 1);
thread_local unsigned char* tl_dynamic_shared PIXELRNN_EMU_TLS = nullptr;
thread_local unsigned char* tl_static_shared PIXELRNN_EMU_TLS = nullptr;
thread_local uint64_t tl_launch_serial PIXELRNN_EMU_TLS = 0;
thread_local size_t tl_static_bytes PIXELRNN_EMU_TLS = 0;

namespace rt {

// The host threads of one cluster at a time (see the top of this file).
struct ClusterGroup {
    std::mutex mu;
    std::condition_variable turn;
    // The ranks in this phase's turn order, and how many of them have arrived.
    std::vector<unsigned> order;
    size_t pos = 0;
    // Per rank: what it arrived at in this phase (1 the barrier, 2 its end).
    std::vector<int> arrived;
    uint64_t rng = 1;
};

namespace {

uint64_t cluster_random(uint64_t* s) {
    uint64_t x = *s;  // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

// A new phase: a fresh turn order, nobody arrived (the group's lock held).
void new_phase(ClusterGroup* g) {
    const size_t n = g->order.size();
    for (size_t i = 0; i < n; ++i) g->order[i] = (unsigned)i;
    for (size_t i = n; i > 1; --i) {
        const size_t j = (size_t)(cluster_random(&g->rng) % i);
        std::swap(g->order[i - 1], g->order[j]);
    }
    for (int& a : g->arrived) a = 0;
    g->pos = 0;
}

// Waits until it is `rank`'s turn (true) or the launch failed (false).
bool wait_turn(Launch* L, ClusterGroup* g, std::unique_lock<std::mutex>& lock, unsigned rank) {
    g->turn.wait(lock, [&] {
        return L->failed.load() || (g->pos < g->order.size() && g->order[g->pos] == rank);
    });
    return !L->failed.load();
}

// Records that block `rank` arrived at its barrier (kind 1) or its end (kind 2) and passes the
// turn on; the last arrival of a phase releases the barrier or ends the cluster. Returns false
// with `e` filled when the cluster deadlocked (blocks ended while others wait).
bool arrive(Launch* L, ClusterGroup* g, std::unique_lock<std::mutex>& lock, unsigned rank,
            int kind, PixelrnnEmuError* e) {
    (void)lock;
    g->arrived[rank] = kind;
    ++g->pos;
    bool ok = true;
    if (g->pos == g->order.size()) {
        int waiting = -1, ended = -1;
        for (size_t r = 0; r < g->arrived.size(); ++r) {
            if (g->arrived[r] == 1 && waiting < 0) waiting = (int)r;
            if (g->arrived[r] == 2 && ended < 0) ended = (int)r;
        }
        if (waiting >= 0 && ended >= 0) {
            memset(e, 0, sizeof *e);
            e->code = 1;
            snprintf(e->message, sizeof e->message,
                     "deadlock at the cluster barrier: the block of cluster rank %d exited while "
                     "the block of rank %d waits at it (cluster of %u blocks)",
                     ended, waiting, L->cluster_size);
            ok = false;
        } else {
            new_phase(g);
        }
    }
    g->turn.notify_all();
    return ok;
}

}  // namespace

void make_cluster_groups(Launch* L, int ngroups) {
    L->ngroups = ngroups;
    L->groups = new ClusterGroup[ngroups];
    for (int i = 0; i < ngroups; ++i) {
        ClusterGroup* g = &L->groups[i];
        g->order.assign(L->cluster_size, 0);
        g->arrived.assign(L->cluster_size, 0);
        uint64_t x = L->seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(i + 1));
        x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ull;
        g->rng = (x ^ (x >> 29)) | 1;
        new_phase(g);
    }
}

void free_cluster_groups(Launch* L) {
    delete[] L->groups;
    L->groups = nullptr;
}

void abort_clusters(Launch* L) {
    for (int i = 0; i < L->ngroups; ++i) {
        std::lock_guard<std::mutex> lock(L->groups[i].mu);
        L->groups[i].turn.notify_all();
    }
}

bool cluster_wait(Worker* w, PixelrnnEmuError* e) {
    Launch* L = w->launch;
    ClusterGroup* g = w->group;
    std::unique_lock<std::mutex> lock(g->mu);
    if (!arrive(L, g, lock, w->cluster_rank, 1, e)) return false;
    if (wait_turn(L, g, lock, w->cluster_rank)) return true;
    set_error(w, e, nullptr, "the launch failed in another block of the cluster");
    return false;
}

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
    {
        std::lock_guard<std::mutex> lock(L->error_mu);
        if (L->error->code == 0) *L->error = e;
        L->failed.store(true);
    }
    if (L->groups) abort_clusters(L);
}

// The linear index of the block of rank `rank` in cluster `c` (clusters and ranks x fastest).
uint64_t cluster_block(const Launch* L, uint64_t c, unsigned rank) {
    const dim3 cd = L->cluster;
    const uint64_t cgx = L->grid.x / cd.x, cgy = L->grid.y / cd.y;
    const uint64_t bx = (c % cgx) * cd.x + rank % cd.x;
    const uint64_t by = ((c / cgx) % cgy) * cd.y + (rank / cd.x) % cd.y;
    const uint64_t bz = (c / (cgx * cgy)) * cd.z + rank / (cd.x * cd.y);
    return bx + by * L->grid.x + bz * (uint64_t)L->grid.x * L->grid.y;
}

// The blocks of a cluster launch that this worker runs: slot s is rank s % cluster_size of
// group s / cluster_size, and group g runs the g-th, (g + ngroups)-th, ... sampled cluster.
void run_cluster_slot(Worker* w, Launch* L, PixelrnnEmuError* e) {
    const int slot = L->next_slot.fetch_add(1);
    ClusterGroup* g = &L->groups[slot / (int)L->cluster_size];
    const unsigned rank = (unsigned)slot % L->cluster_size;
    const uint64_t group = (uint64_t)(slot / (int)L->cluster_size);
    w->group = g;
    w->cluster_rank = rank;
    uint64_t seen = 0;
    for (uint64_t c = 0; c < L->nclusters; ++c) {
        if (!L->runs_cluster(c)) continue;
        if (seen++ % (uint64_t)L->ngroups != group) continue;
        {
            std::unique_lock<std::mutex> lock(g->mu);
            if (!wait_turn(L, g, lock, rank)) break;
        }
        if (!run_block_guarded(w, L, cluster_block(L, c, rank), e)) {
            record_error(L, *e);
            break;
        }
        if (w->counting) counters_end_block(w);
        std::unique_lock<std::mutex> lock(g->mu);
        if (!arrive(L, g, lock, rank, 2, e)) {
            lock.unlock();
            record_error(L, *e);
            break;
        }
    }
    w->group = nullptr;
}

// The blocks of a launch without clusters, handed out in order to whichever worker is free.
void run_blocks(Worker* w, Launch* L, PixelrnnEmuError* e) {
    for (;;) {
        if (L->failed.load(std::memory_order_relaxed)) break;
        const uint64_t b = L->next_block.fetch_add(1);
        if (b >= L->nblocks) break;
        if (!L->runs_block(b)) continue;
        if (!run_block_guarded(w, L, b, e)) {
            record_error(L, *e);
            break;
        }
        if (w->counting) counters_end_block(w);
    }
}

}  // namespace

void run_worker(Launch* L) {
    Worker* w = acquire_worker();
    PixelrnnEmuError e;
    memset(&e, 0, sizeof e);
    const int n = (int)(L->block.x * L->block.y * L->block.z);
    if (!w->ensure_fibers(n) || !w->ensure_altstack() || !w->ensure_static_shared() ||
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
    tl_static_shared = w->static_shared;
    tl_launch_serial = L->serial;
    tl_static_bytes = 0;
    counters_begin_worker(w, L);
    if (L->groups) {
        if (!L->failed.load()) run_cluster_slot(w, L, &e);
    } else {
        run_blocks(w, L, &e);
    }
    if (w->counting) counters_end_worker(w, L);
    // A thread that ran this launch before counted its declarations then (max, not sum).
    size_t seen = L->static_bytes.load();
    while (tl_static_bytes > seen && !L->static_bytes.compare_exchange_weak(seen, tl_static_bytes)) {
    }
    tl_launch_serial = 0;
    tl_worker = prev_worker;
    tl_thread_idx = prev_tid;
    tl_dynamic_shared = nullptr;
    tl_static_shared = nullptr;
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
    // A cluster launch needs every slot it queued (each is a block of some cluster), so none
    // is withdrawn: every queued slot has a thread (submit), which will take it.
    for (auto it = slots.begin(); it != slots.end() && !L->groups;) {
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

// The device side of cuda_emu.h's thread-block clusters (declared there).
void cluster_sync() {
    rt::Worker* w = rt::tl_worker;
    rt::Fiber* f = w->current;
    if (w->counting) rt::counters_barrier(w, true);
    f->state = rt::AT_CLUSTER;
    rt::yield_to_scheduler(f);
}

unsigned cluster_block_rank() { return rt::tl_worker->group ? rt::tl_worker->cluster_rank : 0; }

unsigned cluster_num_blocks() { return rt::tl_worker->launch->cluster_size; }

dim3 cluster_dims() { return rt::tl_worker->launch->cluster; }

}  // namespace pixelrnn_emu

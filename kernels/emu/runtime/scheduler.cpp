// runtime/scheduler.cpp: one block. run_block gives every thread of the block a fiber, then
// resumes ready fibers in an order drawn from the launch's seed and the block's index (so a
// missing barrier shows up as results that change with the seed, and a given seed gives the
// same order on every run), releases a barrier when every thread waits at it, hands a warp
// operation to complete_warp_op when every lane of its mask waits in it, and turns a state that
// can never progress into a "deadlock" error naming the threads. Also here: set_error, which
// writes the block and thread into every error message.

#include "runtime.h"

namespace pixelrnn_emu {
namespace rt {

namespace {

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

}  // namespace

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
        f.copies.clear();
        f.groups_committed = 0;
        // Stack tops staggered by cache lines: 64 KiB-aligned tops would all fall into the
        // same cache sets and evict each other on every switch.
        const size_t colour = (size_t)(i % 64) * 64;
        make_context(&f.ctx, f.stack + page_size(), kStackBytes - colour, &f);
        w->ready.push_back(i);
    }
    int done = 0;
    int at_barrier = 0;
    int at_warp = 0;
    int at_cluster = 0;
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
                case AT_CLUSTER: ++at_cluster; break;
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
        if (at_warp == 0 && at_barrier == 0 && at_cluster > 0 && at_cluster == n - done) {
            // Every live thread waits at the cluster barrier.
            if (done > 0) {
                const Fiber* exited = nullptr;
                for (int i = 0; i < n && !exited; ++i) {
                    if (w->fibers[i].state == DONE) exited = &w->fibers[i];
                }
                char buf[300];
                snprintf(buf, sizeof buf,
                         "deadlock at the cluster barrier: %d of %d threads of the block exited "
                         "without reaching it (e.g. thread %s) while %d wait at it",
                         done, n, fmt_thread(*exited).c_str(), at_cluster);
                set_error(w, e, nullptr, buf);
                return false;
            }
            // A cluster launch hands the turn to the cluster's next block and resumes when
            // every block arrived; without a cluster the barrier is the block's.
            if (w->group && !cluster_wait(w, e)) return false;
            for (int i = 0; i < n; ++i) {
                w->fibers[i].state = READY;
                w->ready.push_back(i);
            }
            at_cluster = 0;
            continue;
        }
        if (at_warp == 0 && at_cluster == 0 && at_barrier == n - done) {
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
                     o.state == AT_BARRIER   ? "waits at __syncthreads"
                     : o.state == AT_WARP    ? "waits in another warp operation"
                     : o.state == AT_CLUSTER ? "waits at the cluster barrier"
                                             : "exited",
                     at_barrier);
            set_error(w, e, warp_waiter, buf);
        } else {
            snprintf(buf, sizeof buf,
                     "deadlock: %d threads wait at __syncthreads, %d at the cluster barrier, %d "
                     "exited",
                     at_barrier, at_cluster, done);
            set_error(w, e, barrier_waiter, buf);
        }
        return false;
    }
}

}  // namespace rt
}  // namespace pixelrnn_emu

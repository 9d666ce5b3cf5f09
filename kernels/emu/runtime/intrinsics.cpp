// runtime/intrinsics.cpp: the runtime side of cuda_emu.h's __syncthreads, warp operations
// (__shfl*_sync, __ballot_sync, __any_sync, __all_sync, __reduce_*_sync, __syncwarp),
// __activemask and __trap. A calling fiber records what it waits for and yields to the
// scheduler; once every lane of a warp operation's mask waits in it, complete_warp_op computes
// every lane's result at once from the values they passed (lockstep exchange, whatever order the
// lanes ran in), or says why the operation is invalid.

#include "runtime.h"

namespace pixelrnn_emu {
namespace rt {

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

}  // namespace rt

using namespace rt;

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

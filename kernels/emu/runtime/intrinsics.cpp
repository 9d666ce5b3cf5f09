// runtime/intrinsics.cpp: the runtime side of cuda_emu.h's __syncthreads, warp operations
// (__shfl*_sync, __ballot_sync, __any_sync, __all_sync, __reduce_*_sync, __syncwarp, the
// tensor cores' mma.sync of kernels/mma.cuh),
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
        case WARP_MMA_TF32_M16N8K8: return "mma.sync.m16n8k8.tf32";
        case WARP_MMA_BF16_M16N8K16: return "mma.sync.m16n8k16.bf16";
        default: return "warp operation";
    }
}

// The product of an mma warp operation (kernels/mma.cuh): every lane's MmaLane (op_in) holds
// its fragments; the layouts are those of the PTX ISA (section 9.7.14.5.7 for m16n8k8 .tf32,
// 9.7.14.5.8 for m16n8k16 .bf16; g = lane >> 2, t = lane % 4, listed in kernels/mma.cuh).
// Inputs: a .tf32 operand is read as its 19 high bits (sign, exponent, 10 mantissa bits; the
// ISA leaves the low 13 bits of a .tf32 register unspecified, so the kernels round with
// cvt.rna first and the emulator ignores what a kernel failed to round); a .bf16 operand is
// the upper half of a float. Each product of two such values is exact in fp32 (at most 11 + 11
// significant bits), and D[i][j] = C[i][j] + the products over k in ascending order, in fp32:
// fp32 accumulation, in one fixed order (the hardware's order is unspecified; tests compare
// with tolerances or use values whose sums are exact in any order).
static bool complete_mma(Fiber* lanes, int kind, unsigned mask, std::string* why) {
    if (mask != 0xffffffffu) {
        char buf[200];
        snprintf(buf, sizeof buf,
                 "%s needs all 32 lanes of the warp (mma.sync.aligned), mask 0x%08x", op_name(kind),
                 mask);
        *why = buf;
        return false;
    }
    const bool tf32 = kind == WARP_MMA_TF32_M16N8K8;
    const int K = tf32 ? 8 : 16;
    float A[16][16], B[16][8], C[16][8];
    auto as_float = [](uint32_t u) {
        float f;
        memcpy(&f, &u, 4);
        return f;
    };
    for (int l = 0; l < 32; ++l) {
        const MmaLane* r = reinterpret_cast<const MmaLane*>((uintptr_t)lanes[l].op_in);
        const int g = l >> 2, t = l & 3;
        if (tf32) {
            A[g][t] = as_float(r->a[0] & 0xffffe000u);
            A[g + 8][t] = as_float(r->a[1] & 0xffffe000u);
            A[g][t + 4] = as_float(r->a[2] & 0xffffe000u);
            A[g + 8][t + 4] = as_float(r->a[3] & 0xffffe000u);
            B[t][g] = as_float(r->b[0] & 0xffffe000u);
            B[t + 4][g] = as_float(r->b[1] & 0xffffe000u);
        } else {
            for (int i = 0; i < 8; ++i) {
                const uint32_t reg = r->a[i >> 1];
                const uint32_t half = (i & 1) ? reg >> 16 : reg & 0xffffu;
                const int row = g + 8 * ((i >> 1) & 1);
                const int col = 2 * t + (i & 1) + 8 * (i >= 4);
                A[row][col] = as_float(half << 16);
            }
            for (int i = 0; i < 4; ++i) {
                const uint32_t reg = r->b[i >> 1];
                const uint32_t half = (i & 1) ? reg >> 16 : reg & 0xffffu;
                B[2 * t + (i & 1) + 8 * (i >= 2)][g] = as_float(half << 16);
            }
        }
        C[g][2 * t] = r->c[0];
        C[g][2 * t + 1] = r->c[1];
        C[g + 8][2 * t] = r->c[2];
        C[g + 8][2 * t + 1] = r->c[3];
    }
    float D[16][8];
    for (int i = 0; i < 16; ++i) {
        for (int j = 0; j < 8; ++j) {
            float acc = C[i][j];
            for (int k = 0; k < K; ++k) acc += A[i][k] * B[k][j];
            D[i][j] = acc;
        }
    }
    for (int l = 0; l < 32; ++l) {
        MmaLane* r = reinterpret_cast<MmaLane*>((uintptr_t)lanes[l].op_in);
        const int g = l >> 2, t = l & 3;
        r->d[0] = D[g][2 * t];
        r->d[1] = D[g][2 * t + 1];
        r->d[2] = D[g + 8][2 * t];
        r->d[3] = D[g + 8][2 * t + 1];
        lanes[l].op_out = 0;
    }
    return true;
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
    if (kind == WARP_MMA_TF32_M16N8K8 || kind == WARP_MMA_BF16_M16N8K16) {
        if (!complete_mma(lanes, kind, mask, why)) return false;
        for (unsigned m = mask; m; m &= m - 1) {
            const int l = __builtin_ctz(m);
            lanes[l].state = READY;
            w->ready.push_back(warp * 32 + l);
        }
        w->warp_waiting[warp] &= ~mask;
        return true;
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
    if (w->counting) counters_barrier(w, false);
    f->state = AT_BARRIER;
    yield_to_scheduler(f);
}

uint64_t warp_op(int kind, unsigned mask, uint64_t value, int a, int b) {
    Worker* w = tl_worker;
    Fiber* f = w->current;
    // Counted: the exchanges (shuffles, votes, reductions), each an instruction whose result a
    // lane waits for. Not __syncwarp (a convergence point, nearly free when the warp is
    // converged) nor mma (a tensor-core product, whose cost is its FLOPs).
    if (w->counting && kind != WARP_SYNC && kind != WARP_MMA_TF32_M16N8K8 &&
        kind != WARP_MMA_BF16_M16N8K16) {
        counters_warp_op(w);
    }
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

// lstm_persistent_mma.cuh: the persistent recurrence's state-to-state product on the tensor
// cores (mma.sync), forward and backward, both scans (Row LSTM, Diagonal LSTM in the folded
// layout), tf32 and bf16. The kernels are in kernels/row_lstm_persistent_mma.cu and
// kernels/diag_lstm_persistent_mma.cu; host side:
// src/backend/cuda/lstm_persistent_mma.rs. CPU twin: the CPU recurrences at the same precision
// (src/backend/cpu/lstm.rs forward_precision, backward_precision). The forward first; the
// backward at the end of this file.
//
// Design (docs/kernels.md, "The persistent recurrence on the tensor cores"): as the persistent
// v2 kernels (lstm_persistent.cuh), one thread-block cluster of C = U x G blocks per image
// (U = ceil(h / 32) unit tiles, G position groups, C <= 8), the steps ordered by one cluster
// barrier each, the states through global memory. The block of rank r owns the units
// 32 (r % U) .. + 31 (all four gates: 128 GEMM columns) and the step's position tiles
// r / U, r / U + G, ... of 16 positions. Per position tile it computes the product
// M = 16 positions x N = 128 columns x K = taps x h on mma.sync (m16n8k8 .tf32, m16n8k16
// .bf16), 4 warps of 16 x 32 (4 n8 tiles sharing one A fragment), then the fused step's cell
// (pixelrnn_lstm_cell_fwd) in the epilogue.
//
// Bits: the K order is the fused tensor-core step's (lstm_mma.cuh: k = t * h + v, the mma K
// steps in ascending order from k = 0, K padded with zeros to a multiple of MCM_K = 16, the
// accumulators from 0, pre = is + acc), so given the same operands every accumulator holds
// the fused step's value and the cell gives the fused recurrence's bits (tested).
//
// Shared memory (dynamic, opted in above 48 KiB), 32-bit words, both operands K-contiguous in
// the form the fragments read: tf32 one word per element (its tf32 bits), bf16 two elements per
// word packed along K (pixelrnn_pack_bf16x2, low half the lower k), so a row holds KW = Kp
// (tf32) or Kp / 2 (bf16) words, Kp = taps * h rounded up to 16; the bf16 slice is half the
// tf32 one.
//   the weight slice: 128 rows (columns of the GEMM) x PITCH words, staged and ROUNDED ONCE;
//   the step's state tile A: 16 rows (positions) x PITCH words, staged per position tile.
// PITCH = KW + 4: KW is a multiple of 8, so PITCH = 4 (mod 8) and a fragment read (lane
// g * 4 + t at row g, word t) hits banks g * PITCH + t mod 32, 32 distinct: conflict-free.
// Column order: row col = w * 32 + x * 8 + l of the slice is gate x of unit u0 + w * 8 + l
// (w the warp): the n8 tile ni of warp w is gate ni, so a thread's accumulators hold all four
// pre-activations of its (position, unit) pairs and the cell needs no exchange (as the fused
// step's columns).
//
// All 32 lanes run every mma (`.aligned`): the taps outside the image, the positions past the
// step's end and the units past h are zero operands, not skipped lanes.
#pragma once

#include "cluster.cuh"
#include "lstm_mma.cuh"

// Threads of a block (4 warps), units of its slice, positions of a tile, GEMM columns.
#define LSTM_PMMA_THREADS 128
#define LSTM_PMMA_UNITS 32
#define LSTM_PMMA_POS 16
#define LSTM_PMMA_COLS (4 * LSTM_PMMA_UNITS)

// Words of a staged row (k = 0 .. Kp-1) and its pitch (module comment).
PIXELRNN_DEVICE int lstm_pmma_kp(int hidden, int taps) {
    return (taps * hidden + MCM_K - 1) / MCM_K * MCM_K;
}
template <int P>
PIXELRNN_DEVICE int lstm_pmma_kw(int hidden, int taps) {
    return P == MCM_TF32 ? lstm_pmma_kp(hidden, taps) : lstm_pmma_kp(hidden, taps) / 2;
}
template <int P>
PIXELRNN_DEVICE int lstm_pmma_pitch(int hidden, int taps) {
    return lstm_pmma_kw<P>(hidden, taps) + 4;
}

// An operand element rounded to P, as one word (tf32: its bits) or two elements as one word
// (bf16: k and k + 1 packed, the lower k in the low half).
template <int P, class Elem>
PIXELRNN_DEVICE unsigned lstm_pmma_word(const Elem& elem, int kw) {
    if (P == MCM_TF32) return pixelrnn_tf32(elem(kw));
    return pixelrnn_pack_bf16x2(pixelrnn_round_bf16(elem(2 * kw)),
                                pixelrnn_round_bf16(elem(2 * kw + 1)));
}

// The forward weight slice's element (column col, k): w_ss [4h, h, taps] at gate x, unit u,
// input unit v, tap t with k = t * h + v (the fused step's K order), 0 past the units and past
// taps * h.
struct LstmPmmaWeightFwd {
    const float* w;
    int hidden, taps, u0, col;
    PIXELRNN_DEVICE float operator()(int k) const {
        const int x = (col / 8) % 4;
        const int u = u0 + (col / 32) * 8 + col % 8;
        if (u >= hidden || k >= taps * hidden) return 0.0f;
        const int t = k / hidden, v = k - t * hidden;
        return w[((pixelrnn_index_t)(x * hidden + u) * hidden + v) * taps + t];
    }
};

// Stages the forward slice of units u0 .. u0 + 31 (module comment), rounded once.
template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_fwd(const float* w, unsigned* w_s, int hidden, int taps,
                                         int u0) {
    const int kw_n = lstm_pmma_kw<P>(hidden, taps), pitch = lstm_pmma_pitch<P>(hidden, taps);
    for (int e = threadIdx.x; e < LSTM_PMMA_COLS * kw_n; e += blockDim.x) {
        const int col = e / kw_n, kw = e - col * kw_n;
        const LstmPmmaWeightFwd el{w, hidden, taps, u0, col};
        w_s[col * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
    __syncthreads();  // the slice is complete before any step reads it
}

// The forward state tile's element (position row i of the tile, k): h of the tap-t source of
// position q0 + i of the step (0 outside the image and past the step's positions).
struct LstmPmmaStateFwd {
    const float* h;
    lstm_mma_geo g;
    pixelrnn_index_t base;  // the image's first pixel
    int hidden, taps, r, c, live;
    PIXELRNN_DEVICE float operator()(int k) const {
        if (!live || k >= taps * hidden) return 0.0f;
        const int t = k / hidden, v = k - t * hidden;
        int dr, dc;
        lstm_mma_tap(g, t, -1, &dr, &dc);
        const int rr = r + dr, cc = c + dc;
        if (rr < 0 || rr >= g.height || cc < 0 || cc >= g.width) return 0.0f;
        return h[(base + (pixelrnn_index_t)rr * g.width + cc) * hidden + v];
    }
};

// Stages the state tile of positions q0 .. q0 + 15 of the step (image b), rounded as staged:
// consecutive threads take consecutive k (consecutive input units of one tap: coalesced).
template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_state_fwd(const float* h, unsigned* a_s,
                                               const lstm_mma_geo& g, int b, int q0, int hidden,
                                               int taps) {
    const int kw_n = lstm_pmma_kw<P>(hidden, taps), pitch = lstm_pmma_pitch<P>(hidden, taps);
    const pixelrnn_index_t base = (pixelrnn_index_t)b * g.height * g.width;
    for (int e = threadIdx.x; e < LSTM_PMMA_POS * kw_n; e += blockDim.x) {
        const int i = e / kw_n, kw = e - i * kw_n;
        LstmPmmaStateFwd el{h, g, base, hidden, taps, 0, 0, q0 + i < g.len};
        if (el.live) lstm_mma_rc(g, q0 + i, &el.r, &el.c);
        a_s[i * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
}

// acc[ni] += A (16 rows from `a_rows`, pitch `pitch_a` words) x B (rows ni * 8 .. of
// `b_rows`, pitch `pitch_b`) over `kw_n` words (a multiple of 8), the mma K steps in ascending
// order (8 words each: tf32 k8, bf16 k16). Fragments per kernels/mma.cuh; the word offsets are
// the same at both precisions. SWAP (the mutation check's kernel only,
// row_lstm_persistent_mma_fwd_tf32_swapped_v1, never selected): A fragment registers 0 <-> 2
// and 1 <-> 3 exchanged, which tests/cuda/lstm_persistent_mma.rs shows to fail.
template <int P, bool SWAP = false>
PIXELRNN_DEVICE void lstm_pmma_mma(const unsigned* a_rows, int pitch_a, const unsigned* b_rows,
                                   int pitch_b, int kw_n, float acc[4][4]) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const unsigned* r0 = a_rows + g * pitch_a;
    const unsigned* r1 = a_rows + (g + 8) * pitch_a;
    for (int kw = 0; kw < kw_n; kw += 8) {
        unsigned af[4];
        af[0] = r0[kw + t];
        af[1] = r1[kw + t];
        af[2] = r0[kw + t + 4];
        af[3] = r1[kw + t + 4];
        if (SWAP) {
            const unsigned a0 = af[0], a1 = af[1];
            af[0] = af[2];
            af[1] = af[3];
            af[2] = a0;
            af[3] = a1;
        }
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const unsigned* bc = b_rows + (ni * 8 + g) * pitch_b;
            unsigned bq[2];
            bq[0] = bc[kw + t];
            bq[1] = bc[kw + t + 4];
            if (P == MCM_TF32) {
                pixelrnn_mma_tf32_m16n8k8(acc[ni], af, bq, acc[ni]);
            } else {
                pixelrnn_mma_bf16_m16n8k16(acc[ni], af, bq, acc[ni]);
            }
        }
    }
}

PIXELRNN_DEVICE void lstm_pmma_zero(float acc[4][4]) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[ni][e] = 0.0f;
    }
}

// The forward scan of one image (`diag`: the Diagonal LSTM, else the Row LSTM of width k):
// per step, per position tile of this block, stage h of the sources, the product, the cell
// (the fused step's: h, c and the activated gates of the step written); one cluster barrier
// per step.
template <int P, bool SWAP = false>
PIXELRNN_DEVICE void lstm_pmma_fwd_body(const float* is, const float* w, unsigned* smem,
                                        float* h, float* c, float* gates, int diag, int height,
                                        int width, int hidden, int k) {
    const int taps = diag ? 2 : k;
    const int size = (int)pixelrnn_cluster_blocks();
    const int rank = (int)pixelrnn_cluster_rank();
    const int unit_tiles = (hidden + LSTM_PMMA_UNITS - 1) / LSTM_PMMA_UNITS;
    const int b = blockIdx.x / size;
    const int u0 = (rank % unit_tiles) * LSTM_PMMA_UNITS;
    const int first_tile = rank / unit_tiles, groups = size / unit_tiles;
    const int kw_n = lstm_pmma_kw<P>(hidden, taps), pitch = lstm_pmma_pitch<P>(hidden, taps);
    unsigned* w_s = smem;
    unsigned* a_s = smem + LSTM_PMMA_COLS * pitch;
    lstm_pmma_stage_fwd<P>(w, w_s, hidden, taps, u0);
    const int steps = diag ? height + width - 1 : height;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int g4 = 4 * hidden;
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (int s = 0; s < steps; ++s) {
        const lstm_mma_geo geo = lstm_mma_geo_of(diag, k, height, width, s);
        const int tiles = (geo.len + LSTM_PMMA_POS - 1) / LSTM_PMMA_POS;
        const bool product = lstm_mma_has_product(geo, -1);  // uniform over the cluster
        for (int pt = first_tile; pt < tiles; pt += groups) {
            const int q0 = pt * LSTM_PMMA_POS;
            float acc[4][4];
            lstm_pmma_zero(acc);
            // The first step has no earlier states: the fused step skips its GEMM (acc 0).
            if (product) {
                lstm_pmma_stage_state_fwd<P>(h, a_s, geo, b, q0, hidden, taps);
                __syncthreads();  // the tile is staged before any warp reads it
                lstm_pmma_mma<P, SWAP>(a_s, pitch, w_s + wp * 32 * pitch, pitch, kw_n, acc);
                __syncthreads();  // every warp has read it before the next tile overwrites it
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int q = q0 + (lane >> 2) + 8 * (e >> 1);
                const int u = u0 + wp * 8 + 2 * (lane & 3) + (e & 1);
                if (q >= geo.len || u >= hidden) continue;
                int r, cl;
                lstm_mma_rc(geo, q, &r, &cl);
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + cl;
                const float* ip = is + p * g4 + u;
                const pixelrnn_index_t el = p * hidden + u;
                pixelrnn_index_t back;
                const bool has_prev = lstm_mma_prev_cell(geo, r, cl, &back);
                const float cp = has_prev ? c[el - back * hidden] : 0.0f;
                // The fused step's operands in its order (lstm_mma_step_fwd): the same bits.
                pixelrnn_lstm_cell_fwd(ip[0] + acc[0][e], ip[hidden] + acc[1][e],
                                       ip[2 * hidden] + acc[2][e], ip[3 * hidden] + acc[3][e],
                                       cp, gates + p * g4 + u, hidden, &c[el], &h[el]);
            }
        }
        // Step s of every unit (h and c, in global memory) is complete before s + 1 reads it.
        pixelrnn_cluster_sync();
    }
}

// ---------------------------------------------------------------------------------------------
// The backward: dh_tot = dh + the consumers' d_is x the transposed weight (M = positions,
// N = 32 units of the block's slice, K = taps x 4h, k = t * 4h + o as the fused backward
// step's), then the fused backward step's cell (pixelrnn_lstm_cell_bwd). Block tile: 64
// positions (warp w: rows 16 w ..) x 32 units (4 n8 tiles per warp). The slice: 32 rows
// (units) x PITCH words, PITCH = KW + 4 over Kp = taps x 4h rounded up to 16, staged once;
// the consumers' d_is in K chunks of 128 elements (64 rows x (CW + 4) words, CW = 128 tf32 /
// 64 bf16 words: a chunk of the whole K would not fit beside the slice at h = 128), the
// accumulators carried across chunks: the same mma K steps in the same order as the fused step.
#define LSTM_PMMA_BWD_POS 64
#define LSTM_PMMA_BWD_KC 128

template <int P>
PIXELRNN_DEVICE int lstm_pmma_bwd_cw() {
    return P == MCM_TF32 ? LSTM_PMMA_BWD_KC : LSTM_PMMA_BWD_KC / 2;
}

// The backward slice's element (unit row col, k): w_ss [4h, h, taps] at gate row o, unit u,
// tap t with k = t * 4h + o, 0 past the units and past taps * 4h.
struct LstmPmmaWeightBwd {
    const float* w;
    int hidden, taps, u0, col;
    PIXELRNN_DEVICE float operator()(int k) const {
        const int u = u0 + col;
        if (u >= hidden || k >= taps * 4 * hidden) return 0.0f;
        const int t = k / (4 * hidden), o = k - t * 4 * hidden;
        return w[((pixelrnn_index_t)o * hidden + u) * taps + t];
    }
};

template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_bwd(const float* w, unsigned* w_s, int hidden, int taps,
                                         int u0) {
    const int kw_n = lstm_pmma_kw<P>(4 * hidden, taps);
    const int pitch = lstm_pmma_pitch<P>(4 * hidden, taps);
    for (int e = threadIdx.x; e < LSTM_PMMA_UNITS * kw_n; e += blockDim.x) {
        const int col = e / kw_n, kw = e - col * kw_n;
        const LstmPmmaWeightBwd el{w, hidden, taps, u0, col};
        w_s[col * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
    __syncthreads();  // the slice is complete before any step reads it
}

// The backward A element (row i, k): d_is feature o of the tap-t consumer of position q0 + i.
struct LstmPmmaGradBwd {
    const float* d_is;
    lstm_mma_geo g;
    pixelrnn_index_t base;
    int hidden, taps, r, c, live, k0;
    PIXELRNN_DEVICE float operator()(int kk) const {
        const int k = k0 + kk;
        const int f4 = 4 * hidden;
        if (!live || k >= taps * f4) return 0.0f;
        const int t = k / f4, o = k - t * f4;
        int dr, dc;
        lstm_mma_tap(g, t, 1, &dr, &dc);
        const int rr = r + dr, cc = c + dc;
        if (rr < 0 || rr >= g.height || cc < 0 || cc >= g.width) return 0.0f;
        return d_is[(base + (pixelrnn_index_t)rr * g.width + cc) * f4 + o];
    }
};

// Stages K chunk [k0, k0 + 2 * cw_n or cw_n elements) of the 64-row d_is tile, rounded.
template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_grad_bwd(const float* d_is, unsigned* a_s,
                                              const lstm_mma_geo& g, int b, int q0, int hidden,
                                              int taps, int k0, int cw_n) {
    const int pitch = lstm_pmma_bwd_cw<P>() + 4;
    const pixelrnn_index_t base = (pixelrnn_index_t)b * g.height * g.width;
    for (int e = threadIdx.x; e < LSTM_PMMA_BWD_POS * cw_n; e += blockDim.x) {
        const int i = e / cw_n, kw = e - i * cw_n;
        LstmPmmaGradBwd el{d_is, g, base, hidden, taps, 0, 0, q0 + i < g.len, k0};
        if (el.live) lstm_mma_rc(g, q0 + i, &el.r, &el.c);
        a_s[i * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
}

// The backward scan of one image: steps in reverse, d_is of every position and the cell
// gradients handed to the previous cell (dc_carry zeroed by the host), as the fused backward.
template <int P>
PIXELRNN_DEVICE void lstm_pmma_bwd_body(const float* w, unsigned* smem, const float* gates,
                                        const float* c, const float* dh, float* dc_carry,
                                        float* d_is, int diag, int height, int width,
                                        int hidden, int k) {
    const int taps = diag ? 2 : k;
    const int size = (int)pixelrnn_cluster_blocks();
    const int rank = (int)pixelrnn_cluster_rank();
    const int unit_tiles = (hidden + LSTM_PMMA_UNITS - 1) / LSTM_PMMA_UNITS;
    const int b = blockIdx.x / size;
    const int u0 = (rank % unit_tiles) * LSTM_PMMA_UNITS;
    const int first_tile = rank / unit_tiles, groups = size / unit_tiles;
    const int kw_n = lstm_pmma_kw<P>(4 * hidden, taps);
    const int pitch = lstm_pmma_pitch<P>(4 * hidden, taps);
    const int cw = lstm_pmma_bwd_cw<P>(), pitch_a = cw + 4;
    const int per_word = P == MCM_TF32 ? 1 : 2;  // elements per word
    unsigned* w_s = smem;
    unsigned* a_s = smem + LSTM_PMMA_UNITS * pitch;
    lstm_pmma_stage_bwd<P>(w, w_s, hidden, taps, u0);
    const int steps = diag ? height + width - 1 : height;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int g4 = 4 * hidden;
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (int s = steps - 1; s >= 0; --s) {
        const lstm_mma_geo geo = lstm_mma_geo_of(diag, k, height, width, s);
        const int tiles = (geo.len + LSTM_PMMA_BWD_POS - 1) / LSTM_PMMA_BWD_POS;
        const bool product = lstm_mma_has_product(geo, 1);  // uniform over the cluster
        for (int pt = first_tile; pt < tiles; pt += groups) {
            const int q0 = pt * LSTM_PMMA_BWD_POS;
            float acc[4][4];
            lstm_pmma_zero(acc);
            // The last step has no consumers: the fused step skips its GEMM (acc 0).
            for (int kw0 = 0; product && kw0 < kw_n; kw0 += cw) {
                const int cw_n = kw_n - kw0 < cw ? kw_n - kw0 : cw;
                lstm_pmma_stage_grad_bwd<P>(d_is, a_s, geo, b, q0, hidden, taps,
                                            kw0 * per_word, cw_n);
                __syncthreads();  // the chunk is staged before any warp reads it
                lstm_pmma_mma<P>(a_s + wp * 16 * pitch_a, pitch_a, w_s + kw0, pitch, cw_n, acc);
                __syncthreads();  // every warp has read it before the next chunk overwrites it
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int q = q0 + wp * 16 + (lane >> 2) + 8 * (e >> 1);
                    const int u = u0 + ni * 8 + 2 * (lane & 3) + (e & 1);
                    if (q >= geo.len || u >= hidden) continue;
                    int r, cl;
                    lstm_mma_rc(geo, q, &r, &cl);
                    const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + cl;
                    const pixelrnn_index_t el = p * hidden + u;
                    pixelrnn_index_t back;
                    const bool has_prev = lstm_mma_prev_cell(geo, r, cl, &back);
                    const float cp = has_prev ? c[el - back * hidden] : 0.0f;
                    // The fused backward step's operands in its order: the same bits.
                    const float dc_prev = pixelrnn_lstm_cell_bwd(
                        gates + p * g4 + u, hidden, c[el], cp, dh[el] + acc[ni][e],
                        dc_carry[el], d_is + p * g4 + u);
                    if (has_prev) dc_carry[el - back * hidden] = dc_prev;
                }
            }
        }
        // Step s's d_is and cell gradients are complete before s - 1 reads them.
        pixelrnn_cluster_sync();
    }
}

// lstm_persistent_fwd_v4.cuh: the persistent v4 forward of both scans
// (row_lstm_persistent_fwd_v4, diag_lstm_persistent_fwd_v4, diag_lstm_skewed_persistent_fwd_v4;
// entry points beside the v4 backward in kernels/row_lstm_persistent_v4.cu,
// diag_lstm_persistent_v4.cu, diag_lstm_skewed_persistent_v4.cu, one module per op name):
// v2's clusters (one per image, each block's 32-unit slice of the forward weight resident in
// dynamic shared memory, one cluster barrier per step, the states through global memory;
// lstm_persistent.cuh) over an 8 positions x 2 units x 4 gates register tile.
//
// Why (issue 17): in the persistent forward both operands of the product are shared loads. v2
// gives a thread 1 unit x 4 positions: per input feature 4 weight words (the unit's 4 gates)
// and 4 state words for 16 FMAs, 4 FLOPs per word (measured 4.2). A thread with P positions x
// U units x 4 gates loads P + 4U words per feature for 4PU FMAs, 8PU / (P + 4U) FLOPs per word:
// P = 8, U = 2 gives 8 (two float4 of staged h and two float4 of weight per feature, 64
// accumulators). The thread holds all four gates of its (position, unit) pairs, so the cell
// runs on its registers in the epilogue: no K split, no exchange, no shuffle. 16 lanes (unit
// groups ug, units u0 + ug and u0 + ug + 16) cover the 32 units of the slice; the two halves
// of a warp take 8 positions each, a block's 2 warps (64 threads) 32 positions: block tile 32
// positions x 32 units x 4 gates. A half-warp whose 8 positions are all past the step skips
// the product (its loads are not made; nothing in the product is warp-collective).
//
// Summation order per element: is, then (tap, input unit) ascending: v2's order (and v1's),
// so on one compiler the same bits as v2 (tests/cuda/lstm_persistent_v4.rs checks them). A
// tap whose source is outside the map (v2 skips it) multiplies the staged 0: a finite weight
// times 0 adds 0. The Row LSTM's first row and the Diagonal LSTM's first anti-diagonal skip the
// product (no predecessor), as v2 does for the Row LSTM.
//
// Layouts (no padding: float4 alignment is kept, conflicts are removed by XOR swizzles):
//   staged h: hs[f][32] (chunk input unit f, the block's 32 positions), position q at column
//     q ^ (4 * (f & 7)). The lanes of a half-warp read the same two float4 (a broadcast), the
//     two halves two different ones. The stage writes 8 consecutive features x 4 positions
//     per request (8 floats of 4 positions from global: 4 sectors): 8 distinct 4-bank blocks,
//     conflict-free.
//   weight slice: row kk = v * taps + t (input unit v, tap t; the global layout's order) of 128
//     floats, unit uu of the tile and gate x at (uu / 16) * 64 + 4 * ((uu % 16) ^ (kk & 7)) + x.
//     Lane ug reads the float4 of units ug (first half) and ug + 16 (second half): the 16
//     lanes' float4 are a permutation of 64 consecutive words (2 wavefronts, the minimum).
//     The one-time stage reads 8 consecutive kk x 4 gates of one unit per request (4 runs of
//     32 bytes from global) and writes 32 distinct banks (the XOR by kk & 7).
// Chunks: LSTM_PERSISTENT_FWD_V4_CHUNK (64) input units of one tap per stage (32 x 64 floats
// = 8 KiB static, v2's 16 x 128).
//
// Shared memory per block: 32 x 4h x taps floats (dynamic; the host reserves v2's 32 x (4h
// taps + 1)) + 8 KiB static: v2's budget, so v4 fits wherever v2 does (Row LSTM, k = 3: up to
// h = 145; Diagonal: h = 218).
#pragma once

#include "diag_lstm_v2.cuh"
#include "lstm_persistent.cuh"

#define LSTM_PERSISTENT_FWD_V4_POS 32
#define LSTM_PERSISTENT_FWD_V4_THREADS 64
#define LSTM_PERSISTENT_FWD_V4_CHUNK 64
// Positions and units per thread; floats of one weight row (32 units x 4 gates).
#define LSTM_FWD4_PT 8
#define LSTM_FWD4_UT 2
#define LSTM_FWD4_ROW 128

// The column of position q in the staged row of chunk feature f.
PIXELRNN_DEVICE int lstm_fwd4_col(int q, int f) { return q ^ (4 * (f & 7)); }

// The offset of (unit uu of the tile, gate x) in weight row kk.
PIXELRNN_DEVICE int lstm_fwd4_wcol(int uu, int x, int kk) {
    return (uu >> 4) * 64 + 4 * ((uu & 15) ^ (kk & 7)) + x;
}

// Stages the forward slice of units u0 .. u0 + 31 of `w` ([4h, h, taps]) in the v4 layout
// (above), rounded to P, 0 for units past h. Element e: kk = 8 (e/32 % runs) + e % 8, gate
// x = e/8 % 4, unit e/32/runs (runs = ceil(h taps / 8)).
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void lstm_fwd4_stage_weight(const float* w, float* w_s, int hidden, int taps,
                                            int u0) {
    const int ht = hidden * taps;
    const int runs = (ht + 7) / 8;
    for (int e = threadIdx.x; e < LSTM_V2_UNITS * 32 * runs; e += blockDim.x) {
        const int kl = e & 7;
        const int x = (e >> 3) & 3;
        const int rest = e >> 5;
        const int uu = rest / runs;
        const int kk = (rest - uu * runs) * 8 + kl;
        if (kk >= ht) continue;
        const int u = u0 + uu;
        w_s[kk * LSTM_FWD4_ROW + lstm_fwd4_wcol(uu, x, kk)] =
            u < hidden ? pixelrnn_round_as<P>(w[(x * hidden + u) * ht + kk]) : 0.0f;
    }
    __syncthreads();  // the slice is complete before any step reads it
}

// Stages input units f0 .. f0 + n_f - 1 of one tap's source positions into hs (the block's 32
// positions; 0 where `src_pos(q)` < 0 or past n_f), rounded to P. Element e: feature
// 8 (e/256) + e % 8, position 4 (e/32 % 8) + e/8 % 4.
template <int P, class SrcPos>
PIXELRNN_DEVICE void lstm_fwd4_stage_h(const float* h, float* hs, SrcPos src_pos, int hidden,
                                       int f0, int n_f) {
    constexpr int POS = LSTM_PERSISTENT_FWD_V4_POS;
    for (int e = threadIdx.x; e < POS * LSTM_PERSISTENT_FWD_V4_CHUNK;
         e += LSTM_PERSISTENT_FWD_V4_THREADS) {
        const int f = ((e >> 8) << 3) + (e & 7);
        const int q = 4 * ((e >> 5) & 7) + ((e >> 3) & 3);
        const pixelrnn_index_t pn = src_pos(q);
        hs[f * POS + lstm_fwd4_col(q, f)] =
            (f < n_f && pn >= 0) ? pixelrnn_round_as<P>(h[pn * hidden + f0 + f]) : 0.0f;
    }
}

// The thread's place: its first local position q0 (16 per warp, 8 per half-warp) and its unit
// group ug (units ug, ug + 16 of the tile).
struct lstm_fwd4_lane {
    int q0, ug;
};

PIXELRNN_DEVICE lstm_fwd4_lane lstm_fwd4_lane_of_thread() {
    const int lane = threadIdx.x % 32;
    return lstm_fwd4_lane{16 * ((int)threadIdx.x / 32) + 8 * (lane / 16), lane % 16};
}

// acc[i][j][x] += w(gate x, unit ug + 16j; input f0 + f, tap t) * hs(f, position q0 + i) for
// the chunk's features f < n_f, ascending: per feature two float4 of staged h and two of weight
// feed 64 FMAs.
PIXELRNN_DEVICE void lstm_fwd4_chunk(const float* w_s, const float* hs, lstm_fwd4_lane me,
                                     int taps, int t, int f0, int n_f,
                                     float (*acc)[LSTM_FWD4_UT][4]) {
    for (int f = 0; f < n_f; ++f) {
        const int sw = 4 * (f & 7);
        const float* hrow = hs + f * LSTM_PERSISTENT_FWD_V4_POS;
        const float4 h0 = *reinterpret_cast<const float4*>(hrow + (me.q0 ^ sw));
        const float4 h1 = *reinterpret_cast<const float4*>(hrow + ((me.q0 + 4) ^ sw));
        const int kk = (f0 + f) * taps + t;
        const float* wrow = w_s + kk * LSTM_FWD4_ROW + 4 * (me.ug ^ (kk & 7));
        const float4 w0 = *reinterpret_cast<const float4*>(wrow);
        const float4 w1 = *reinterpret_cast<const float4*>(wrow + 64);
        const float hv[LSTM_FWD4_PT] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
        const float wv[LSTM_FWD4_UT][4] = {{w0.x, w0.y, w0.z, w0.w}, {w1.x, w1.y, w1.z, w1.w}};
#pragma unroll
        for (int i = 0; i < LSTM_FWD4_PT; ++i) {
#pragma unroll
            for (int j = 0; j < LSTM_FWD4_UT; ++j) {
#pragma unroll
                for (int x = 0; x < 4; ++x) acc[i][j][x] += wv[j][x] * hv[i];
            }
        }
    }
}

// One tap's product over the h input units, LSTM_PERSISTENT_FWD_V4_CHUNK at a time: each chunk
// staged between two block barriers (every thread calls this), then accumulated by the
// half-warps with positions in the step (`busy`).
template <int P, class SrcPos>
PIXELRNN_DEVICE void lstm_fwd4_tap(const float* w_s, float* hs, const float* h, SrcPos src_pos,
                                   lstm_fwd4_lane me, int hidden, int taps, int t, bool busy,
                                   float (*acc)[LSTM_FWD4_UT][4]) {
    for (int f0 = 0; f0 < hidden; f0 += LSTM_PERSISTENT_FWD_V4_CHUNK) {
        const int n_f = hidden - f0 < LSTM_PERSISTENT_FWD_V4_CHUNK
                            ? hidden - f0
                            : LSTM_PERSISTENT_FWD_V4_CHUNK;
        __syncthreads();  // the previous chunk's reads are done
        lstm_fwd4_stage_h<P>(h, hs, src_pos, hidden, f0, n_f);
        __syncthreads();  // the chunk is complete
        if (busy) lstm_fwd4_chunk(w_s, hs, me, taps, t, f0, n_f, acc);
    }
}

// The accumulators start at the input-to-state pre-activations (v2's order: is first) of the
// thread's positions (`pos(i)`: the map position of local position q0 + i, -1 past the step)
// and live units; 0 elsewhere.
template <class Pos>
PIXELRNN_DEVICE void lstm_fwd4_init(const float* is, int hidden, int u0, lstm_fwd4_lane me,
                                    Pos pos, float (*acc)[LSTM_FWD4_UT][4]) {
    const int g4 = 4 * hidden;
#pragma unroll
    for (int i = 0; i < LSTM_FWD4_PT; ++i) {
        const pixelrnn_index_t p = pos(i);
#pragma unroll
        for (int j = 0; j < LSTM_FWD4_UT; ++j) {
            const int u = u0 + me.ug + 16 * j;
            const bool live = p >= 0 && u < hidden;
#pragma unroll
            for (int x = 0; x < 4; ++x) acc[i][j][x] = live ? is[p * g4 + x * hidden + u] : 0.0f;
        }
    }
}

// The epilogue: the fp32 cell of each (position, live unit) on the thread's registers, h, c
// and the activated gates written (16 consecutive units per half-warp request). `prev(i)`: the
// offset in elements of position i's predecessor cell (0: none, c_prev = 0).
template <class Pos, class Prev>
PIXELRNN_DEVICE void lstm_fwd4_finish(float* h, float* c, float* gates, int hidden, int u0,
                                      lstm_fwd4_lane me, Pos pos, Prev prev,
                                      float (*acc)[LSTM_FWD4_UT][4]) {
    const int g4 = 4 * hidden;
#pragma unroll
    for (int i = 0; i < LSTM_FWD4_PT; ++i) {
        const pixelrnn_index_t p = pos(i);
        if (p < 0) continue;
        const pixelrnn_index_t back = prev(i);
#pragma unroll
        for (int j = 0; j < LSTM_FWD4_UT; ++j) {
            const int u = u0 + me.ug + 16 * j;
            if (u >= hidden) continue;
            const pixelrnn_index_t e = p * hidden + u;
            const float cp = back ? c[e - back] : 0.0f;
            pixelrnn_lstm_cell_fwd(acc[i][j][0], acc[i][j][1], acc[i][j][2], acc[i][j][3], cp,
                                   gates + p * g4 + u, hidden, &c[e], &h[e]);
        }
    }
}

// The Row LSTM's persistent v4 forward at precision P: rows top-down, h, c and the activated
// gates written as by row_lstm_persistent_fwd_v2.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void row_lstm_persistent_fwd_v4_body(const float* is, const float* w, float* w_s,
                                                     float* h, float* c, float* gates,
                                                     int height, int width, int hidden, int k) {
    PIXELRNN_SHARED(float, hs, [LSTM_PERSISTENT_FWD_V4_POS * LSTM_PERSISTENT_FWD_V4_CHUNK]);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_fwd4_lane ln = lstm_fwd4_lane_of_thread();
    lstm_fwd4_stage_weight<P>(w, w_s, hidden, k, me.u0);
    const int tiles = (width + LSTM_PERSISTENT_FWD_V4_POS - 1) / LSTM_PERSISTENT_FWD_V4_POS;
    for (int r = 0; r < height; ++r) {
        const pixelrnn_index_t row_p = ((pixelrnn_index_t)me.b * height + r) * width;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int j0 = pt * LSTM_PERSISTENT_FWD_V4_POS;
            const int jq = j0 + ln.q0;  // the thread's first position
            const auto pos = [&](int i) -> pixelrnn_index_t {
                return jq + i < width ? row_p + jq + i : -1;
            };
            float acc[LSTM_FWD4_PT][LSTM_FWD4_UT][4];
            lstm_fwd4_init(is, hidden, me.u0, ln, pos, acc);
            if (r > 0) {
                const pixelrnn_index_t above = row_p - width;
                for (int t = 0; t < k; ++t) {
                    const int shift = t - k / 2;
                    const auto src = [&](int q) -> pixelrnn_index_t {
                        const int jj = j0 + q + shift;
                        return jj >= 0 && jj < width ? above + jj : -1;
                    };
                    lstm_fwd4_tap<P>(w_s, hs, h, src, ln, hidden, k, t, jq < width, acc);
                }
            }
            const auto prev = [&](int) -> pixelrnn_index_t {
                return r > 0 ? (pixelrnn_index_t)width * hidden : 0;
            };
            lstm_fwd4_finish(h, c, gates, hidden, me.u0, ln, pos, prev, acc);
        }
        // Row r of every unit (h and c, in global memory) is complete before row r+1 reads it.
        pixelrnn_cluster_sync();
    }
}

// The Diagonal LSTM's persistent v4 forward in either layout (stride, skew as in
// diag_lstm.cuh) at precision P: anti-diagonals in order, as diag_lstm_persistent_fwd_v2_body.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_persistent_fwd_v4_body(const float* is, const float* w,
                                                      float* w_s, float* h, float* c,
                                                      float* gates, int height, int width,
                                                      int hidden, int stride, int skew) {
    PIXELRNN_SHARED(float, hs, [LSTM_PERSISTENT_FWD_V4_POS * LSTM_PERSISTENT_FWD_V4_CHUNK]);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_fwd4_lane ln = lstm_fwd4_lane_of_thread();
    lstm_fwd4_stage_weight<P>(w, w_s, hidden, 2, me.u0);
    const pixelrnn_index_t img = (pixelrnn_index_t)me.b * height * stride;
    for (int s = 0; s < height + width - 1; ++s) {
        const int count = diag_lstm_count(s, height, width);
        const int tiles = (count + LSTM_PERSISTENT_FWD_V4_POS - 1) / LSTM_PERSISTENT_FWD_V4_POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int k0 = pt * LSTM_PERSISTENT_FWD_V4_POS;
            const int kq = k0 + ln.q0;
            const auto pos = [&](int i) -> pixelrnn_index_t {
                if (kq + i >= count) return -1;
                const int r = diag_lstm_row(s, kq + i, width);
                return img + diag_lstm_pos(r, s - r, stride, skew);
            };
            float acc[LSTM_FWD4_PT][LSTM_FWD4_UT][4];
            lstm_fwd4_init(is, hidden, me.u0, ln, pos, acc);
            // Anti-diagonal 0 (pixel (0, 0)) has no neighbour to multiply.
            for (int t = 0; s > 0 && t < 2; ++t) {
                // Position q's tap-t source (above for t = 0, left for t = 1), or none.
                const auto src = [&](int q) -> pixelrnn_index_t {
                    if (k0 + q >= count) return -1;
                    const int r = diag_lstm_row(s, k0 + q, width);
                    int rn, jn;
                    if (!diag_lstm_v2_neighbour(r, s - r, t, -1, height, width, &rn, &jn)) {
                        return -1;
                    }
                    return img + diag_lstm_pos(rn, jn, stride, skew);
                };
                lstm_fwd4_tap<P>(w_s, hs, h, src, ln, hidden, 2, t, kq < count, acc);
            }
            const auto prev = [&](int i) -> pixelrnn_index_t {
                return s - diag_lstm_row(s, kq + i, width) > 0 ? (pixelrnn_index_t)hidden : 0;
            };
            lstm_fwd4_finish(h, c, gates, hidden, me.u0, ln, pos, prev, acc);
        }
        // Anti-diagonal s of every unit is complete before s+1 reads it.
        pixelrnn_cluster_sync();
    }
}

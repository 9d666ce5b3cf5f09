// lstm_persistent_v4.cuh: the persistent v4 backward of both scans
// (row_lstm_persistent_bwd_v4, diag_lstm_persistent_bwd_v4, diag_lstm_skewed_persistent_bwd_v4
// and the rounded row / diag twins: kernels/row_lstm_persistent_v4.cu,
// diag_lstm_persistent_v4.cu, diag_lstm_skewed_persistent_v4.cu, one module per op name):
// v2's clusters (one per image, each block's 32-unit slice of the backward weight resident in
// dynamic shared memory, one cluster barrier per step; lstm_persistent.cuh) over a K-split
// 8 x 8 register tile.
//
// Why (issue 17): in the persistent backward both operands of the product are shared loads,
// so v3's 4 positions x 4 units per thread load 8 words per 16 FMAs (4 FLOPs per word). v4
// gives a thread 8 positions x 8 units (16 words per 64 FMAs: 8 FLOPs per word, two float4 of
// d_is and two of weight per feature). A block owns 32 units, so 16 such threads cover 32
// positions x 32 units; the K range (taps x 4h) is split over the two 16-lane halves of a
// warp (K-group g = lane / 16 takes the features f = g (mod 2) of every staged chunk) and the
// two partial tiles are summed by one __shfl_xor_sync(.., 16) per output: no shared memory
// in the reduction (any shared word there would bring the ratio below 8), and a fixed order
// (float addition is commutative: both lanes of a pair compute the same bits), so the result
// is the same on every run and schedule. A block is 2 warps (64 threads), each its own 32
// positions: block tile 64 positions x 32 units; a warp whose 32 positions are all past the
// step skips the product (warp-uniform).
//
// Layouts (no padding: float4 alignment is kept, conflicts are removed by an XOR swizzle):
//   staged d_is: ds[w][f][32] (warp half w, chunk feature f), the position qi of the half at
//     column ((qi % 4) * 8 + qi / 4) ^ (4 * (f & 7)); lane (g, pg = c % 4, ug = c / 4) (c =
//     lane % 16) reads the positions pg + 4 i (i < 8) as two float4;
//   weight slice: w_s[(o * taps + t) * 32 + (((v % 4) * 8 + v / 4) ^ (4 * (o & 7)))] (gate
//     row o, input unit v of the tile, tap t); the lane reads its units ug + 4 j as two float4.
//   Bank analysis: in one request the two K-groups of a warp read features of opposite
//   parity, so the XOR moves the second group's four float4 onto the 16 banks the first
//   group's leave free: 32 distinct banks per request (the 4 lanes sharing an address are a
//   broadcast). The stage writes 8 consecutive features x 4 positions per request: the 8
//   features' swizzles are 8 distinct 4-bank blocks, conflict-free.
// Chunks: LSTM_PERSISTENT_V4_CHUNK (64) features of one tap per stage (64 positions x 64
// features = 16 KiB static, as v3's tile). The summation order per element: dh, then the sum
// of the two K-groups' partials, each over (tap, feature of its parity) ascending: not v3's
// order (tests: within fp32 bounds of the CPU twin and of v3). A tap's product is not skipped
// for a position whose consumer is outside the map (v1 skips it): the stage holds 0 there, and
// a finite weight times 0 adds 0.
//
// Shared memory per block: 32 x 4h x taps floats (dynamic; the host reserves v2's
// 32 x (4h taps + 1)) + 16 KiB: Row LSTM (k = 3) at h = 128 208 KiB, Diagonal 144 KiB.
#pragma once

#include "diag_lstm_v2.cuh"
#include "lstm_persistent.cuh"
#include "lstm_v3.cuh"

#define LSTM_PERSISTENT_V4_POS 64
#define LSTM_PERSISTENT_V4_THREADS 64
#define LSTM_PERSISTENT_V4_CHUNK 64
// Positions (and units) per thread; positions (and units) of one warp's tile.
#define LSTM_V4_T 8
#define LSTM_V4_WARP_POS 32

// The column of position (or unit) x of a 32-wide staged row whose feature (gate row) is f.
PIXELRNN_DEVICE int lstm_v4_col(int x, int f) {
    return ((x & 3) * 8 + (x >> 2)) ^ (4 * (f & 7));
}

// Stages the backward slice of input units v0 .. v0 + 31 of `w` ([4h, h, taps]) in the v4
// layout (above), rounded to P: the global reads as lstm_persistent_stage_bwd's (runs of
// 32 * taps floats per gate row, coalesced), BATCH elements' loads at a time
// (lstm_stage_batched: 1 in v4 to v6, LSTM_V7_WEIGHT_BATCH in v7).
template <int P = PIXELRNN_ROUND_FP32, int BATCH = 1>
PIXELRNN_DEVICE void lstm_persistent_v4_stage_bwd(const float* w, float* w_s, int hidden,
                                                  int taps, int v0) {
    const int ht = hidden * taps;
    const int run = LSTM_V2_UNITS * taps;
    lstm_stage_batched<BATCH>(w_s, 4 * hidden * run, [&](int e, int* at) {
        const int o = e / run;
        const int rem = e - o * run;
        const int vv = rem / taps;
        const int t = rem - vv * taps;
        const int v = v0 + vv;
        *at = (o * taps + t) * LSTM_V4_WARP_POS + lstm_v4_col(vv, o);
        return v < hidden ? pixelrnn_round_as<P>(w[o * ht + v * taps + t]) : 0.0f;
    });
    __syncthreads();  // the slice is complete before any step reads it
}

// Stages features f0 .. f0 + n_f - 1 of one tap's source positions into ds (the block's 64
// positions, 0 where `src_pos(q)` < 0 or past n_f), rounded to P. Element e: feature
// 8 (e/32 % 8) + e % 8, position qi = 16 mh + 4 (e/8 % 4) + qq of warp half w (e/32 = f_high +
// 8 (qq + 4 (mh + 2 w))): a request reads 8 consecutive floats of 4 positions (4 sectors) and
// writes 32 distinct banks.
template <int P, class SrcPos>
PIXELRNN_DEVICE void lstm_persistent_v4_stage(const float* d_is, float* ds, SrcPos src_pos,
                                              int g4, int f0, int n_f) {
    constexpr int CH = LSTM_PERSISTENT_V4_CHUNK;
    for (int e = threadIdx.x; e < LSTM_PERSISTENT_V4_POS * CH; e += LSTM_PERSISTENT_V4_THREADS) {
        const int f_low = e & 7;
        const int m_low = (e >> 3) & 3;
        const int r = e >> 5;
        const int f = (r % (CH / 8)) * 8 + f_low;
        const int rest = r / (CH / 8);
        const int qq = rest & 3;
        const int mh = (rest >> 2) & 1;
        const int w = rest >> 3;
        const int qi = 4 * (4 * mh + m_low) + qq;
        const pixelrnn_index_t pn = src_pos(LSTM_V4_WARP_POS * w + qi);
        ds[(w * CH + f) * LSTM_V4_WARP_POS + lstm_v4_col(qi, f)] =
            (f < n_f && pn >= 0) ? pixelrnn_round_as<P>(d_is[pn * g4 + f0 + f]) : 0.0f;
    }
}

// The thread's place: warp half w (its 32 positions), K-group g, position group pg, unit
// group ug.
struct lstm_v4_lane {
    int w, g, pg, ug;
};

PIXELRNN_DEVICE lstm_v4_lane lstm_v4_lane_of_thread() {
    const int lane = threadIdx.x % 32;
    return lstm_v4_lane{(int)threadIdx.x / 32, lane / 16, lane % 4, (lane % 16) / 4};
}

// The thread tile's 64 FMAs of one feature: acc[i][j] += w[j] * d[i], with d the 8 staged
// d_is values of the thread's positions (d0, d1) and w the 8 weights of its units (w0, w1).
// The backward v4's and v5's (kernels/lstm_persistent_bwd_v5.cuh) product step.
PIXELRNN_DEVICE void lstm_v4_bwd_fma_tile(float4 d0, float4 d1, float4 w0, float4 w1,
                                          float (*acc)[LSTM_V4_T]) {
    const float d[LSTM_V4_T] = {d0.x, d0.y, d0.z, d0.w, d1.x, d1.y, d1.z, d1.w};
    const float wv[LSTM_V4_T] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
#pragma unroll
    for (int i = 0; i < LSTM_V4_T; ++i) {
#pragma unroll
        for (int j = 0; j < LSTM_V4_T; ++j) acc[i][j] += wv[j] * d[i];
    }
}

// acc[i][j] += w(o, t, unit ug + 4j) * ds(f, position pg + 4i) for the features f = g, g + 2,
// .. < n_f of a staged chunk (o = f0 + f), two float4 per operand per feature.
PIXELRNN_DEVICE void lstm_v4_bwd_chunk(const float* w_s, const float* ds, lstm_v4_lane me,
                                       int taps, int t, int f0, int n_f,
                                       float (*acc)[LSTM_V4_T]) {
    const float* dsw = ds + me.w * LSTM_PERSISTENT_V4_CHUNK * LSTM_V4_WARP_POS;
    for (int f = me.g; f < n_f; f += 2) {
        const int sw = 4 * (f & 7);  // f0 is a multiple of 8: o & 7 == f & 7
        const float* drow = dsw + f * LSTM_V4_WARP_POS;
        const float* wrow = w_s + ((f0 + f) * taps + t) * LSTM_V4_WARP_POS;
        const float4 d0 = *reinterpret_cast<const float4*>(drow + ((8 * me.pg) ^ sw));
        const float4 d1 = *reinterpret_cast<const float4*>(drow + ((8 * me.pg + 4) ^ sw));
        const float4 w0 = *reinterpret_cast<const float4*>(wrow + ((8 * me.ug) ^ sw));
        const float4 w1 = *reinterpret_cast<const float4*>(wrow + ((8 * me.ug + 4) ^ sw));
        lstm_v4_bwd_fma_tile(d0, d1, w0, w1, acc);
    }
}

// One tap's product over the 4h gate rows, LSTM_PERSISTENT_V4_CHUNK at a time: each chunk
// staged between two block barriers (every thread calls this), then accumulated by the warps
// with positions in the step (`busy`).
template <int P, class SrcPos>
PIXELRNN_DEVICE void lstm_v4_bwd_tap(const float* w_s, float* ds, const float* d_is,
                                     SrcPos src_pos, lstm_v4_lane me, int taps, int t, int g4,
                                     bool busy, float (*acc)[LSTM_V4_T]) {
    for (int f0 = 0; f0 < g4; f0 += LSTM_PERSISTENT_V4_CHUNK) {
        const int n_f =
            g4 - f0 < LSTM_PERSISTENT_V4_CHUNK ? g4 - f0 : LSTM_PERSISTENT_V4_CHUNK;
        __syncthreads();  // the previous chunk's reads are done
        lstm_persistent_v4_stage<P>(d_is, ds, src_pos, g4, f0, n_f);
        __syncthreads();  // the chunk is complete
        if (busy) lstm_v4_bwd_chunk(w_s, ds, me, taps, t, f0, n_f, acc);
    }
}

// The K-group reduction and the epilogue of one warp's tile: lane (g, pg, ug) keeps the
// units ug + 4 (2m + g) (m < 4: 8 consecutive units per request with its partner lanes) of
// its positions pg + 4i, adds the partner K-group's partial of them (one shuffle each), then
// the cell backward (lstm_v3_bwd_store, dh + the product). `pos(i)` is the map position of
// local position pg + 4i, or -1 past the step; `prev(i)` the predecessor's offset (0: none).
template <class Pos, class Prev>
PIXELRNN_DEVICE void lstm_v4_bwd_finish(const float* gates, const float* c, const float* dh,
                                        float* dc_carry, float* d_is, int hidden, int u0,
                                        lstm_v4_lane me, Pos pos, Prev prev,
                                        float (*acc)[LSTM_V4_T]) {
    const int u = u0 + me.ug + 4 * me.g;
    int n_u = 0;
#pragma unroll
    for (int m = 0; m < 4; ++m) n_u += u + 8 * m < hidden ? 1 : 0;
#pragma unroll
    for (int i = 0; i < LSTM_V4_T; ++i) {
        float tot[4];
#pragma unroll
        for (int m = 0; m < 4; ++m) {
            const float mine = me.g ? acc[i][2 * m + 1] : acc[i][2 * m];
            const float theirs = me.g ? acc[i][2 * m] : acc[i][2 * m + 1];
            tot[m] = mine + __shfl_xor_sync(PIXELRNN_FULL_MASK, theirs, 16);
        }
        const pixelrnn_index_t p = pos(i);
        if (p < 0) continue;
        lstm_v3_bwd_store(gates, c, dh, dc_carry, d_is, 0, p, hidden, u, 8, n_u, prev(i), tot,
                          true);
    }
}

// The Row LSTM's persistent v4 backward at precision P: rows bottom-up, as
// row_lstm_persistent_bwd_v3_body.
template <int P>
PIXELRNN_DEVICE void row_lstm_persistent_bwd_v4_body(const float* w, float* w_s,
                                                     const float* gates, const float* c,
                                                     const float* dh, float* dc_carry,
                                                     float* d_is, int height, int width,
                                                     int hidden, int k) {
    PIXELRNN_SHARED(float, ds, [LSTM_PERSISTENT_V4_POS * LSTM_PERSISTENT_V4_CHUNK]);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_v4_lane ln = lstm_v4_lane_of_thread();
    lstm_persistent_v4_stage_bwd<P>(w, w_s, hidden, k, me.u0);
    const int g4 = 4 * hidden;
    const int tiles = (width + LSTM_PERSISTENT_V4_POS - 1) / LSTM_PERSISTENT_V4_POS;
    for (int r = height - 1; r >= 0; --r) {
        const pixelrnn_index_t row_p = ((pixelrnn_index_t)me.b * height + r) * width;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int j0 = pt * LSTM_PERSISTENT_V4_POS;
            const int jw = j0 + LSTM_V4_WARP_POS * ln.w;  // the warp's first position
            float acc[LSTM_V4_T][LSTM_V4_T];
#pragma unroll
            for (int i = 0; i < LSTM_V4_T; ++i) {
#pragma unroll
                for (int j = 0; j < LSTM_V4_T; ++j) acc[i][j] = 0.0f;
            }
            if (r + 1 < height) {
                const pixelrnn_index_t below = row_p + width;
                for (int t = 0; t < k; ++t) {
                    const int off = k / 2 - t;  // the consumer in row r+1 reading (r, j) by tap t
                    const auto src = [&](int q) -> pixelrnn_index_t {
                        const int jj = j0 + q + off;
                        return jj >= 0 && jj < width ? below + jj : -1;
                    };
                    lstm_v4_bwd_tap<P>(w_s, ds, d_is, src, ln, k, t, g4, jw < width, acc);
                }
            }
            const auto pos = [&](int i) -> pixelrnn_index_t {
                const int j = jw + ln.pg + 4 * i;
                return j < width ? row_p + j : -1;
            };
            const auto prev = [&](int) -> pixelrnn_index_t {
                return r > 0 ? (pixelrnn_index_t)width * hidden : 0;
            };
            lstm_v4_bwd_finish(gates, c, dh, dc_carry, d_is, hidden, me.u0, ln, pos, prev, acc);
        }
        // Row r's d_is (every gate row) and its cell gradients are complete before row r-1.
        pixelrnn_cluster_sync();
    }
}

// The Diagonal LSTM's persistent v4 backward in either layout (stride, skew as in
// diag_lstm.cuh) at precision P: anti-diagonals in reverse, as
// diag_lstm_persistent_bwd_v3_body.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_persistent_bwd_v4_body(const float* w, float* w_s,
                                                      const float* gates, const float* c,
                                                      const float* dh, float* dc_carry,
                                                      float* d_is, int height, int width,
                                                      int hidden, int stride, int skew) {
    PIXELRNN_SHARED(float, ds, [LSTM_PERSISTENT_V4_POS * LSTM_PERSISTENT_V4_CHUNK]);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_v4_lane ln = lstm_v4_lane_of_thread();
    lstm_persistent_v4_stage_bwd<P>(w, w_s, hidden, 2, me.u0);
    const int g4 = 4 * hidden;
    const pixelrnn_index_t img = (pixelrnn_index_t)me.b * height * stride;
    for (int s = height + width - 2; s >= 0; --s) {
        const int count = diag_lstm_count(s, height, width);
        const int tiles = (count + LSTM_PERSISTENT_V4_POS - 1) / LSTM_PERSISTENT_V4_POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int k0 = pt * LSTM_PERSISTENT_V4_POS;
            const int kw = k0 + LSTM_V4_WARP_POS * ln.w;
            float acc[LSTM_V4_T][LSTM_V4_T];
#pragma unroll
            for (int i = 0; i < LSTM_V4_T; ++i) {
#pragma unroll
                for (int j = 0; j < LSTM_V4_T; ++j) acc[i][j] = 0.0f;
            }
            for (int t = 0; t < 2; ++t) {
                // Position q's tap-t consumer (below for t = 0, right for t = 1), or none.
                const auto src = [&](int q) -> pixelrnn_index_t {
                    if (k0 + q >= count) return -1;
                    const int r = diag_lstm_row(s, k0 + q, width);
                    int rn, jn;
                    if (!diag_lstm_v2_neighbour(r, s - r, t, 1, height, width, &rn, &jn)) {
                        return -1;
                    }
                    return img + diag_lstm_pos(rn, jn, stride, skew);
                };
                lstm_v4_bwd_tap<P>(w_s, ds, d_is, src, ln, 2, t, g4, kw < count, acc);
            }
            const auto pos = [&](int i) -> pixelrnn_index_t {
                const int kk = kw + ln.pg + 4 * i;
                if (kk >= count) return -1;
                const int r = diag_lstm_row(s, kk, width);
                return img + diag_lstm_pos(r, s - r, stride, skew);
            };
            const auto prev = [&](int i) -> pixelrnn_index_t {
                const int kk = kw + ln.pg + 4 * i;
                return s - diag_lstm_row(s, kk, width) > 0 ? (pixelrnn_index_t)hidden : 0;
            };
            lstm_v4_bwd_finish(gates, c, dh, dc_carry, d_is, hidden, me.u0, ln, pos, prev, acc);
        }
        // Anti-diagonal s's d_is and cell gradients are complete before s-1 reads them.
        pixelrnn_cluster_sync();
    }
}

// lstm_persistent_v3.cuh: the persistent v3 backward of both scans
// (row_lstm_persistent_bwd_v3, diag_lstm_persistent_bwd_v3, diag_lstm_skewed_persistent_bwd_v3
// in the modules of their v2 twins): v2's persistent design (lstm_persistent.cuh: one cluster
// per image, each block's 32-unit slice of the backward weight staged once in opted-in
// dynamic shared memory, one cluster barrier per step) over the v3 register tiling
// (lstm_v3.cuh: 4 positions x 4 units per thread).
//
// Why another tile shape: in the persistent backward both operands of the product come from
// shared memory (the staged weight slice and the staged d_is), so v2's 4 positions x 1 unit
// per thread loads 5 shared words per 4 FMAs (1.6 FLOPs per shared word); 4 x 4 loads 8 words
// per 16 FMAs (4 FLOPs per word). A block owns only 32 units (at h = 128 the slice of 32 units
// is already 192 KiB for the Row LSTM), so its 4 x 4 threads cover 32 positions x 32 units on
// 64 threads (2 warps): lane l takes the units u0 + l % 8 + 8 j (j < 4) and the positions
// 16 w + 4 (l / 8) + i (warp w, i < 4). Banks: the 8 distinct weight words a warp loads are
// 8 staged rows apart (odd row length 4h*taps + 1: 8 banks), the 4 distinct d_is words are 4
// positions apart in rows padded to 129 floats (4 banks): conflict-free.
//
// Shared memory per block: the v2 slice, 32 x (4h*taps + 1) floats (dynamic), plus the staged
// d_is, 32 x 129 floats (16.1 KiB, static): Row LSTM (k = 3) at h = 128 208.3 KiB, Diagonal
// LSTM 144.2 KiB, under the H100/H200's 227 KiB; the host falls back to v2 (then v1) past it.
// The summation order per element is v1's and v2's: the same bits as the v2 persistent
// backward, at every precision P (the tf32 / bf16 kernels round as v2's do:
// lstm_persistent.cuh, Versions).
#pragma once

#include "diag_lstm_v3.cuh"
#include "lstm_persistent.cuh"
#include "row_lstm_v3.cuh"

#define LSTM_PERSISTENT_V3_POS 32
#define LSTM_PERSISTENT_V3_THREADS 64

struct lstm_v3_persistent_shape {
    static constexpr int POS = LSTM_PERSISTENT_V3_POS;
    static constexpr int PITCH = LSTM_V2_CHUNK + 1;
    static constexpr int THREADS = LSTM_PERSISTENT_V3_THREADS;
    static constexpr int UNIT_STRIDE = LSTM_V2_UNITS / LSTM_V3_UT;
};

// The calling thread's place in position tile `pt` (32 positions) of image b, units u0 ..
// u0 + 31 (lane l: first unit u0 + l % 8, positions from 16 w + 4 (l / 8)).
PIXELRNN_DEVICE lstm_v2_tile lstm_persistent_v3_tile(int b, int pt, int u0, int hidden) {
    lstm_v2_tile t;
    t.b = b;
    t.p0 = pt * LSTM_PERSISTENT_V3_POS;
    t.lane = threadIdx.x % 32;
    t.q0 = (threadIdx.x / 32) * 16 + (t.lane / 8) * LSTM_V2_PT;
    t.u = u0 + t.lane % 8;
    t.live = t.u < hidden;
    return t;
}

// The view of the staged backward slice (lstm_persistent.cuh: element (o, vv, t) at
// vv*(4h*taps + 1) + o*taps + t) at the thread's first unit: tap stride 1, feature stride
// taps, unit-j stride 8 rows.
PIXELRNN_DEVICE lstm_wview lstm_persistent_v3_view(const float* w_s, int hidden, int taps,
                                                   lstm_v2_tile tile, int u0) {
    const int row = lstm_persistent_row(hidden, taps);
    return lstm_wview{w_s + (tile.u - u0) * row, 1, taps, 0,
                      lstm_v3_persistent_shape::UNIT_STRIDE * row};
}

// The Row LSTM's persistent v3 backward at precision P: rows bottom-up, as
// row_lstm_persistent_bwd_v2.
template <int P>
PIXELRNN_DEVICE void row_lstm_persistent_bwd_v3_body(const float* w, float* w_s,
                                                     const float* gates, const float* c,
                                                     const float* dh, float* dc_carry,
                                                     float* d_is, int height, int width,
                                                     int hidden, int k) {
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_bwd<P>(w, w_s, hidden, k, me.u0);
    const int tiles = (width + LSTM_PERSISTENT_V3_POS - 1) / LSTM_PERSISTENT_V3_POS;
    for (int r = height - 1; r >= 0; --r) {
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const lstm_v2_tile tile = lstm_persistent_v3_tile(me.b, pt, me.u0, hidden);
            row_lstm_v3_bwd_tile<lstm_v3_persistent_shape, P, PIXELRNN_ROUND_FP32>(
                lstm_persistent_v3_view(w_s, hidden, k, tile, me.u0), gates, c, dh, dc_carry,
                d_is, 0, height, width, hidden, k, r, tile, true);
        }
        // Row r's d_is (every gate row) and its cell gradients are complete before row r-1.
        pixelrnn_cluster_sync();
    }
}

// The Diagonal LSTM's persistent v3 backward in either layout (stride, skew as in
// diag_lstm.cuh) at precision P: anti-diagonals in reverse, as
// diag_lstm_persistent_bwd_v2_body.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_persistent_bwd_v3_body(const float* w, float* w_s,
                                                      const float* gates, const float* c,
                                                      const float* dh, float* dc_carry,
                                                      float* d_is, int height, int width,
                                                      int hidden, int stride, int skew) {
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_bwd<P>(w, w_s, hidden, 2, me.u0);
    for (int s = height + width - 2; s >= 0; --s) {
        const int count = diag_lstm_count(s, height, width);
        const int tiles = (count + LSTM_PERSISTENT_V3_POS - 1) / LSTM_PERSISTENT_V3_POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const lstm_v2_tile tile = lstm_persistent_v3_tile(me.b, pt, me.u0, hidden);
            diag_lstm_v3_bwd_tile<lstm_v3_persistent_shape, P, PIXELRNN_ROUND_FP32>(
                lstm_persistent_v3_view(w_s, hidden, 2, tile, me.u0), gates, c, dh, dc_carry,
                d_is, 0, height, width, hidden, stride, skew, s, tile, true);
        }
        // Anti-diagonal s's d_is and cell gradients are complete before s-1 reads them.
        pixelrnn_cluster_sync();
    }
}

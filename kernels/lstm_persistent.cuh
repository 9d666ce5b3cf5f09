// lstm_persistent.cuh: the persistent v2 recurrences of both scans (the Row LSTM and the
// Diagonal LSTM in both layouts): ONE launch per scan and pass, each image's scan run by one
// thread-block cluster (sm_90) whose blocks split the state weight between them and keep their
// slices in shared memory for the whole scan, the steps ordered by the cluster barrier.
// Semantics: kernels/row_lstm.cu, kernels/diag_lstm.cu; CPU twin: src/backend/cpu/lstm.rs.
// The kernels are in row_lstm_persistent.cu, diag_lstm_persistent.cu and
// diag_lstm_skewed_persistent.cu (one module per op name), compute_90 PTX (their first line;
// kernels/cluster.cuh): the other modules are compute_80. This header has what they share.
//
// Versions (v1 of the persistent recurrence is in row_lstm.cu, diag_lstm.cu and
// diag_lstm_skewed.cu: one block per image, weights staged only when they fit in 48 KiB):
//   v2: row_lstm_persistent_{fwd,bwd}_v2, diag_lstm_persistent_{fwd,bwd}_v2,
//       diag_lstm_skewed_persistent_{fwd,bwd}_v2. A cluster of C = U x G blocks per image
//       (U = ceil(h / 32) unit tiles, G position groups, C <= 8): the block of rank r owns
//       the units 32 (r % U) .. + 31, all four gates, and the step's position tiles
//       r / U, r / U + G, ... (tiles of 16 positions). It stages its units' slice of the state
//       weight once, from the PyTorch layout (rows of taps*h contiguous floats read whole:
//       coalesced), into dynamic shared memory, then runs the v2 tile bodies (row_lstm_v2.cuh,
//       diag_lstm_v2.cuh: the very arithmetic of the fused v2 step kernels, so the two agree
//       bit for bit) on it for every step, with one cluster barrier after each step: the
//       step's h and c (forward) or d_is and dc_carry (backward), written to global memory
//       by all blocks of the cluster, are complete before the next step stages them. No pack
//       launch: the forward is one launch; the backward one launch plus the weight gradient
//       (lstm_ss_bwd_weight_v2 and its sum: 3 launches per layer and pass in all).
//   v3: row_lstm_persistent_bwd_v3, diag_lstm_persistent_bwd_v3,
//       diag_lstm_skewed_persistent_bwd_v3 (backward only; lstm_persistent_v3.cuh): v2's
//       clusters over v3's register tiles (4 positions x 4 units per thread), v2's bits.
//   v4: row_lstm_persistent_bwd_v4, diag_lstm_persistent_bwd_v4,
//       diag_lstm_skewed_persistent_bwd_v4 and the folded tf32 / bf16 twins
//       (lstm_persistent_v4.cuh, entry points in *_persistent_v4.cu): v2's clusters over 8 x 8
//       thread tiles, K split over the two half-warps (8 FLOPs per shared word; another
//       summation order than v3's); and row_lstm_persistent_fwd_v4,
//       diag_lstm_persistent_fwd_v4, diag_lstm_skewed_persistent_fwd_v4 (fp32;
//       lstm_persistent_fwd_v4.cuh, the same modules): v2's clusters over 8 positions x 2
//       units x 4 gates per thread (8 FLOPs per shared word, the cell on registers; v2's
//       summation order and bits). Selectable (RowLstm::V4, DiagLstm::V4), not the default.
//   tf32 / bf16 (the persistent recurrence at tensor-core precision, folded layout only):
//       row_lstm_persistent_fwd_{tf32,bf16}_v2, row_lstm_persistent_bwd_{tf32,bf16}_v2,
//       row_lstm_persistent_bwd_{tf32,bf16}_v3, diag_lstm_persistent_fwd_{tf32,bf16}_v2,
//       diag_lstm_persistent_bwd_{tf32,bf16}_v2, diag_lstm_persistent_bwd_{tf32,bf16}_v3.
//       The v2 / v3 bodies instantiated at P = PIXELRNN_ROUND_{TF32,BF16} (mma.cuh): the state
//       weight rounded once as it is staged into shared memory, the previous states (forward)
//       or d_is (backward) as they are staged per chunk, then the same fp32 FMAs. A product of
//       two rounded operands is exact in fp32, so this is the CPU twin's arithmetic
//       (cpu/lstm.rs forward_precision / backward_precision) up to the order of the fp32
//       additions. SIMT, no mma; the tensor-core persistent kernels, the default at tf32 /
//       bf16, are <scan>_persistent_mma_{fwd,bwd}_{tf32,bf16}_v2 (v1 selectable;
//       lstm_persistent_mma.cuh).
//       The fp32 kernels are the P = PIXELRNN_ROUND_FP32 instantiations, unchanged bits.
//
// Why a cluster and global memory: the weights of one image's recurrence at h = 128 (4h*h*k
// floats: 768 KiB for the Row LSTM, 512 KiB for the Diagonal LSTM) exceed one SM's 227 KiB,
// so they are split over several SMs that must advance step by step together. A cluster
// barrier is a hardware barrier between co-scheduled blocks (no software grid barrier, no
// cooperative launch, no co-residency limit on the grid: clusters are independent); the
// exchanged states go through global memory (L2), which every block writes anyway, under the
// barrier's release/acquire ordering (distributed shared memory would save the L2 round trip;
// not done).
//
// Shared memory per block (dynamic, opted in above 48 KiB: Executor::opt_in_shared):
// 32 units x (4h*taps + 1) floats (the +1 pads a unit's row so that the 32 lanes, one unit
// each, read 32 different banks); plus the tile body's static 16 x 128 floats (8 KiB).
//   Row LSTM, k = 3, h = 128: 32 x 1537 x 4 = 196 736 B (192.1 KiB) + 8 KiB = 200.1 KiB;
//   Diagonal LSTM, h = 128: 32 x 1025 x 4 = 131 200 B (128.1 KiB) + 8 KiB = 136.1 KiB;
//   the most that fits the H100/H200's 227 KiB: h = 145 (Row, k = 3), h = 218 (Diagonal).
// Above that (and above 8 unit tiles, h > 256) the host runs v1 (src/backend/cuda/
// lstm_persistent.rs).
//
// Staged layouts: forward, element (x, uu, v, t) (gate block, unit of the tile, input unit,
// tap) at uu*(4h*taps + 1) + (x*h + v)*taps + t, the global [4h, h, taps] rows of the tile's
// units side by side; backward, element (o, vv, t) (gate row, input unit of the tile, tap) at
// vv*(4h*taps + 1) + o*taps + t. Taps: k for the Row LSTM, 2 for the Diagonal LSTM (tap 0 the
// pixel above, tap 1 the pixel to the left: w_ss [4h, h, 2, 1] has the same element order).
#pragma once

#include "cluster.cuh"
#include "diag_lstm_v2.cuh"
#include "mma.cuh"
#include "row_lstm_v2.cuh"

// The elements per batch of v7's one-time weight stages (lstm_stage_batched).
#define LSTM_V7_WEIGHT_BATCH 16

// Stages `total` elements into the block's shared buffer `dst`: element e (the thread's
// threadIdx.x + i blockDim.x) has the value `element(e, &at)` and place at (< 0: nothing to
// store). BATCH = 1: one element at a time, a rolled loop whose every load waits for the one
// before (one load round per element, docs/emulator.md "Load rounds"); BATCH > 1 (v7): BATCH
// elements' loads before their stores, one round per batch.
template <int BATCH, class Element>
PIXELRNN_DEVICE void lstm_stage_batched(float* dst, int total, Element element) {
    const int stride = (int)blockDim.x;
    for (int e0 = threadIdx.x; e0 < total; e0 += BATCH * stride) {
        float v[BATCH];
        int at[BATCH];
#pragma unroll
        for (int i = 0; i < BATCH; ++i) {
            const int e = e0 + i * stride;
            at[i] = -1;
            v[i] = e < total ? element(e, &at[i]) : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < BATCH; ++i) {
            if (at[i] >= 0) dst[at[i]] = v[i];
        }
    }
}

// Floats of a unit's (forward) or an input unit's (backward) staged row.
PIXELRNN_DEVICE int lstm_persistent_row(int hidden, int taps) { return 4 * hidden * taps + 1; }

// Stages the forward slice of units u0 .. u0 + 31 of `w` ([4h, h, taps]) into `w_s` (0 for
// units past h), each weight rounded to P once here: consecutive threads take consecutive
// floats of a global row (coalesced) and write consecutive words.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void lstm_persistent_stage_fwd(const float* w, float* w_s, int hidden, int taps,
                                               int u0) {
    const int ht = hidden * taps;
    const int su = lstm_persistent_row(hidden, taps);
    for (int e = threadIdx.x; e < LSTM_V2_UNITS * 4 * ht; e += blockDim.x) {
        const int uu = e / (4 * ht);
        const int rem = e - uu * 4 * ht;  // (x*h + v)*taps + t
        const int x = rem / ht;
        const int vt = rem - x * ht;
        const int u = u0 + uu;
        w_s[uu * su + rem] =
            u < hidden ? pixelrnn_round_as<P>(w[(x * hidden + u) * ht + vt]) : 0.0f;
    }
    __syncthreads();  // the slice is complete before any step reads it
}

// Stages the backward slice of input units v0 .. v0 + 31 of `w`: element (o, v, t) from
// o*h*taps + v*taps + t (a run of 32*taps floats per gate row o, read whole), rounded to P.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void lstm_persistent_stage_bwd(const float* w, float* w_s, int hidden, int taps,
                                               int v0) {
    const int ht = hidden * taps;
    const int run = LSTM_V2_UNITS * taps;
    const int sv = lstm_persistent_row(hidden, taps);
    for (int e = threadIdx.x; e < 4 * hidden * run; e += blockDim.x) {
        const int o = e / run;
        const int rem = e - o * run;
        const int vv = rem / taps;
        const int t = rem - vv * taps;
        const int v = v0 + vv;
        w_s[vv * sv + o * taps + t] =
            v < hidden ? pixelrnn_round_as<P>(w[o * ht + v * taps + t]) : 0.0f;
    }
    __syncthreads();
}

// This block's place in its image's cluster: the image, the unit tile's first unit, the first
// position tile and the stride between its position tiles (the cluster's position groups).
struct lstm_persistent_block {
    int b;
    int u0;
    int first_tile;
    int groups;
};

PIXELRNN_DEVICE lstm_persistent_block lstm_persistent_place(int hidden) {
    const int size = (int)pixelrnn_cluster_blocks();
    const int rank = (int)pixelrnn_cluster_rank();
    const int unit_tiles = (hidden + LSTM_V2_UNITS - 1) / LSTM_V2_UNITS;
    lstm_persistent_block p;
    p.b = blockIdx.x / size;
    p.u0 = (rank % unit_tiles) * LSTM_V2_UNITS;
    p.first_tile = rank / unit_tiles;
    p.groups = size / unit_tiles;
    return p;
}

// The views of the staged slices (lstm_v2.cuh): forward (x, lane, v, t), backward (o, lane, t).
PIXELRNN_DEVICE lstm_wview lstm_persistent_view_fwd(const float* w_s, int hidden, int taps) {
    return lstm_wview{w_s, 1, taps, hidden * taps, lstm_persistent_row(hidden, taps)};
}
PIXELRNN_DEVICE lstm_wview lstm_persistent_view_bwd(const float* w_s, int hidden, int taps) {
    return lstm_wview{w_s, 1, taps, 0, lstm_persistent_row(hidden, taps)};
}

// The Row LSTM's scans (row_lstm_persistent.cu), at precision P (the Versions above): forward
// rows top-down, h, c and the activated gates written as by row_lstm_step_fwd_v2.
template <int P>
PIXELRNN_DEVICE void row_lstm_persistent_fwd_v2_body(const float* is, const float* w, float* w_s,
                                                     float* h, float* c, float* gates,
                                                     int height, int width, int hidden, int k) {
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_fwd<P>(w, w_s, hidden, k, me.u0);
    const lstm_wview wv = lstm_persistent_view_fwd(w_s, hidden, k);
    const int tiles = (width + LSTM_V2_POS - 1) / LSTM_V2_POS;
    for (int r = 0; r < height; ++r) {
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            row_lstm_v2_fwd_body<P, PIXELRNN_ROUND_FP32>(is, wv, h, c, gates, height, width, hidden, k, r,
                                    lstm_v2_tile_at(me.b, pt * LSTM_V2_POS, me.u0, hidden), true);
        }
        // Row r of every unit (h and c, in global memory) is complete before row r+1 reads it.
        pixelrnn_cluster_sync();
    }
}

// Backward rows bottom-up: d_is of every position and the cell gradients handed to the row
// above, as row_lstm_step_bwd_v2.
template <int P>
PIXELRNN_DEVICE void row_lstm_persistent_bwd_v2_body(const float* w, float* w_s,
                                                     const float* gates, const float* c,
                                                     const float* dh, float* dc_carry,
                                                     float* d_is, int height, int width,
                                                     int hidden, int k) {
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_bwd<P>(w, w_s, hidden, k, me.u0);
    const lstm_wview wv = lstm_persistent_view_bwd(w_s, hidden, k);
    const int tiles = (width + LSTM_V2_POS - 1) / LSTM_V2_POS;
    for (int r = height - 1; r >= 0; --r) {
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            row_lstm_v2_bwd_body<P>(wv, gates, c, dh, dc_carry, d_is, 0, height, width, hidden,
                                    k, r, lstm_v2_tile_at(me.b, pt * LSTM_V2_POS, me.u0, hidden),
                                    true);
        }
        // Row r's d_is (every gate row) and its cell gradients are complete before row r-1.
        pixelrnn_cluster_sync();
    }
}

// The Diagonal LSTM's scans in either layout (stride, skew as in diag_lstm.cuh), at precision
// P (the materialised layout's kernels: fp32 only).
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_persistent_fwd_v2_body(const float* is, const float* w, float* w_s,
                                                      float* h, float* c, float* gates,
                                                      int height, int width, int hidden,
                                                      int stride, int skew) {
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_fwd<P>(w, w_s, hidden, 2, me.u0);
    const lstm_wview wv = lstm_persistent_view_fwd(w_s, hidden, 2);
    for (int s = 0; s < height + width - 1; ++s) {
        const int tiles = (diag_lstm_count(s, height, width) + LSTM_V2_POS - 1) / LSTM_V2_POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            diag_lstm_v2_fwd_body<P, PIXELRNN_ROUND_FP32>(is, wv, h, c, gates, height, width, hidden, stride, skew, s,
                                     lstm_v2_tile_at(me.b, pt * LSTM_V2_POS, me.u0, hidden),
                                     true);
        }
        // Anti-diagonal s of every unit is complete before s+1 reads it.
        pixelrnn_cluster_sync();
    }
}

template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_persistent_bwd_v2_body(const float* w, float* w_s,
                                                      const float* gates, const float* c,
                                                      const float* dh, float* dc_carry,
                                                      float* d_is, int height, int width,
                                                      int hidden, int stride, int skew) {
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_bwd<P>(w, w_s, hidden, 2, me.u0);
    const lstm_wview wv = lstm_persistent_view_bwd(w_s, hidden, 2);
    for (int s = height + width - 2; s >= 0; --s) {
        const int tiles = (diag_lstm_count(s, height, width) + LSTM_V2_POS - 1) / LSTM_V2_POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            diag_lstm_v2_bwd_body<P>(wv, gates, c, dh, dc_carry, d_is, 0, height, width, hidden,
                                     stride, skew, s,
                                     lstm_v2_tile_at(me.b, pt * LSTM_V2_POS, me.u0, hidden),
                                     true);
        }
        // Anti-diagonal s's d_is and cell gradients are complete before s-1 reads them.
        pixelrnn_cluster_sync();
    }
}


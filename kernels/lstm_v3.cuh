// lstm_v3.cuh: what the v3 backward-through-time bodies of both scans share (row_lstm_v3.cuh,
// diag_lstm_v3.cuh): the tile shapes, the register-tiled transposed product, the staged-chunk
// loop of one tap and the tile epilogue.
//
// Why v3: the v2 backward (row_lstm_v2.cuh, diag_lstm_v2.cuh) gives a thread 4 positions x 1
// unit, so each staged d_is word it loads from shared memory feeds one FMA (2 FLOPs per shared
// word, measured). v3 gives a thread 4 positions x 4 units (units u, u + 32, u + 64, u + 96:
// the lanes of a warp stay on consecutive units, so every global access is a coalesced row of
// 32 words): each shared word now feeds 4 FMAs (8 FLOPs per shared word), each packed weight
// word (a coalesced global load, as in v2) still serves the thread's 4 positions. The block
// tile is 16 positions x 128 units (4 warps x 4 positions, the v2 staging unchanged), so the
// d_is of a position is staged once per 128 units instead of once per 32. The summation order
// per element is v1's and v2's (taps, then features ascending): the same bits.
//
// The persistent v3 backward (lstm_persistent_v3.cuh) runs the same bodies on another tile
// shape (lstm_v3_persistent_shape): its block owns a 32-unit slice of the weight in shared
// memory, so a thread's 4 units are u, u + 8, u + 16, u + 24 of the slice.
#pragma once

#include "lstm_v2.cuh"

// Units per thread (lane l takes u0 + l + 32 j, j < LSTM_V3_UT) and per block tile.
#define LSTM_V3_UT 4
#define LSTM_V3_UNITS (32 * LSTM_V3_UT)

// A v3 tile shape: POS positions per block tile (4 per thread), staged d_is rows of PITCH
// floats (>= LSTM_V2_CHUNK), THREADS threads, the thread's units UNIT_STRIDE apart.
// The stepwise kernels: 16 positions x 128 units, the v2 staging tile unchanged.
struct lstm_v3_step_shape {
    static constexpr int POS = LSTM_V2_POS;
    static constexpr int PITCH = LSTM_V2_CHUNK;
    static constexpr int THREADS = LSTM_V2_THREADS;
    static constexpr int UNIT_STRIDE = 32;
};

// The tile of a stepwise v3 launch (gridDim = (n * ceil(positions / 16), ceil(h / 128))):
// blockIdx.x = image * position tiles + position tile, blockIdx.y = 128-unit tile; `u` is the
// thread's first unit, `live` whether it is < hidden.
PIXELRNN_DEVICE lstm_v2_tile lstm_v3_tile_of_block(int positions, int hidden) {
    const int tiles = (positions + LSTM_V2_POS - 1) / LSTM_V2_POS;
    return lstm_v2_tile_at(blockIdx.x / tiles, (blockIdx.x % tiles) * LSTM_V2_POS,
                           blockIdx.y * LSTM_V3_UNITS, hidden);
}

// How many of the thread's LSTM_V3_UT units (u + UNIT_STRIDE j) are < hidden.
template <class S>
PIXELRNN_DEVICE int lstm_v3_units_live(lstm_v2_tile tile, int hidden) {
    int n_u = 0;
#pragma unroll
    for (int j = 0; j < LSTM_V3_UT; ++j) n_u += tile.u + S::UNIT_STRIDE * j < hidden ? 1 : 0;
    return n_u;
}

// The stepwise kernels' view of the packed backward weight (lstm_pack_ss_v2, [taps, 4h, h])
// at the thread's first unit u: tap stride 4h*h, feature stride h, unit-j stride 32 (`su`).
PIXELRNN_DEVICE lstm_wview lstm_v3_wview_packed_bwd(const float* wp, int hidden, int u) {
    return lstm_wview{wp + u, 4 * hidden * hidden, hidden, 0, 32};
}

// One staged chunk of the transposed product: acc[i][j] += w[f*sf + su*j] * ds[q0 + i][f] for
// f < n_f, the positions i whose bit is set in `mask` and the units j < n_u (`w` at the
// thread's first unit of the chunk's first feature; a dead unit's weight reads as 0, and its
// accumulator is never stored). Per f: LSTM_V2_PT broadcast shared loads, LSTM_V3_UT
// weight loads, LSTM_V2_PT x LSTM_V3_UT FMAs. PW: each weight word rounded to PW on load
// (lstm_v2.cuh; the staged d_is is rounded by the stage); fp32 by default, and fp32 for the
// persistent kernels, whose staged slice is already rounded (row_lstm_v2_fwd_body).
template <int PITCH, int PW = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void lstm_v3_bwd_chunk(const float* w, int sf, int su, const float (*ds)[PITCH],
                                       int q0, int n_f, unsigned mask, int n_u,
                                       float (*acc)[LSTM_V3_UT]) {
    for (int f = 0; f < n_f; ++f) {
        float wj[LSTM_V3_UT];
#pragma unroll
        for (int j = 0; j < LSTM_V3_UT; ++j) {
            wj[j] = j < n_u ? pixelrnn_round_as<PW>(w[f * sf + su * j]) : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < LSTM_V2_PT; ++i) {
            if (!((mask >> i) & 1u)) continue;
            const float d = ds[q0 + i][f];
#pragma unroll
            for (int j = 0; j < LSTM_V3_UT; ++j) acc[i][j] += wj[j] * d;
        }
    }
}

// The product of tap t over all 4h gate rows, LSTM_V2_CHUNK rows at a time: each chunk staged
// by `stage(f0, n_f)` (the scan's geometry, into `ds`) between two block barriers, then
// accumulated (lstm_v3_bwd_chunk) with the weight of tap t read through `wv` (at the
// thread's first unit, rounded to PW as lstm_v3_bwd_chunk). Every thread of the block calls it
// (the barriers).
template <int PITCH, int PW = PIXELRNN_ROUND_FP32, class Stage>
PIXELRNN_DEVICE void lstm_v3_bwd_tap(Stage stage, lstm_wview wv, int t, int g4,
                                     const float (*ds)[PITCH], int q0, unsigned mask, int n_u,
                                     float (*acc)[LSTM_V3_UT]) {
    for (int f0 = 0; f0 < g4; f0 += LSTM_V2_CHUNK) {
        const int n_f = g4 - f0 < LSTM_V2_CHUNK ? g4 - f0 : LSTM_V2_CHUNK;
        __syncthreads();  // the previous chunk's reads are done
        stage(f0, n_f);
        __syncthreads();  // the chunk is complete
        if (n_u == 0) continue;
        lstm_v3_bwd_chunk<PITCH, PW>(wv.p + (pixelrnn_index_t)t * wv.st +
                                     (pixelrnn_index_t)f0 * wv.sf,
                                 wv.sf, wv.su, ds, q0, n_f, mask, n_u, acc);
    }
}

// The tile epilogue of one position p for the thread's units u + su*x, x < n_u: fused, the
// cell backward of dh_tot (`dh_late` null: acc, which already holds dh; else dh_late[e] + acc,
// the Diagonal LSTM's order), reading the predecessor cell `prev` elements back (0: none,
// c_prev = 0) and handing it dc_prev; unfused, acc written to dh_carry.
PIXELRNN_DEVICE void lstm_v3_bwd_store(const float* gates, const float* c, const float* dh_late,
                                       float* dc_carry, float* d_is, float* dh_carry,
                                       pixelrnn_index_t p, int hidden, int u, int su, int n_u,
                                       pixelrnn_index_t prev, const float* acc, bool fused) {
    const int g4 = 4 * hidden;
#pragma unroll
    for (int x = 0; x < LSTM_V3_UT; ++x) {
        if (x >= n_u) continue;
        const int ux = u + su * x;
        const pixelrnn_index_t e = p * hidden + ux;
        if (fused) {
            const float dh_tot = dh_late ? dh_late[e] + acc[x] : acc[x];
            const float cp = prev ? c[e - prev] : 0.0f;
            const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + ux, hidden, c[e], cp,
                                                         dh_tot, dc_carry[e], d_is + p * g4 + ux);
            if (prev) dc_carry[e - prev] = dc_prev;
        } else {
            dh_carry[e] = acc[x];
        }
    }
}

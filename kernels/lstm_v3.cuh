// lstm_v3.cuh: what the v3 backward-through-time bodies of both scans share (row_lstm_v3.cuh,
// diag_lstm_v3.cuh): the tile shape and the register-tiled transposed product.
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
#pragma once

#include "lstm_v2.cuh"

// Units per thread (lane l takes u0 + l + 32 j, j < LSTM_V3_UT) and per block tile.
#define LSTM_V3_UT 4
#define LSTM_V3_UNITS (32 * LSTM_V3_UT)

// The tile of a stepwise v3 launch (gridDim = (n * ceil(positions / 16), ceil(h / 128))):
// blockIdx.x = image * position tiles + position tile, blockIdx.y = 128-unit tile; `u` is the
// thread's first unit, `live` whether it is < hidden.
PIXELRNN_DEVICE lstm_v2_tile lstm_v3_tile_of_block(int positions, int hidden) {
    const int tiles = (positions + LSTM_V2_POS - 1) / LSTM_V2_POS;
    return lstm_v2_tile_at(blockIdx.x / tiles, (blockIdx.x % tiles) * LSTM_V2_POS,
                           blockIdx.y * LSTM_V3_UNITS, hidden);
}

// How many of the thread's LSTM_V3_UT units (u + 32 j) are < hidden.
PIXELRNN_DEVICE int lstm_v3_units_live(lstm_v2_tile tile, int hidden) {
    int n_u = 0;
#pragma unroll
    for (int j = 0; j < LSTM_V3_UT; ++j) n_u += tile.u + 32 * j < hidden ? 1 : 0;
    return n_u;
}

// One staged chunk of the transposed product: acc[i][j] += w[f*sf + 32 j] * ds[q0 + i][f] for
// f < n_f, the positions i whose bit is set in `mask` and the units j < n_u (`w` at the
// thread's first unit of the chunk's first feature; a dead unit's weight reads as 0, and its
// accumulator is never stored). Per f: LSTM_V2_PT broadcast shared loads, LSTM_V3_UT
// coalesced global loads, LSTM_V2_PT x LSTM_V3_UT FMAs.
PIXELRNN_DEVICE void lstm_v3_bwd_chunk(const float* w, int sf,
                                       const float (*ds)[LSTM_V2_CHUNK], int q0, int n_f,
                                       unsigned mask, int n_u,
                                       float (*acc)[LSTM_V3_UT]) {
    for (int f = 0; f < n_f; ++f) {
        float wj[LSTM_V3_UT];
#pragma unroll
        for (int j = 0; j < LSTM_V3_UT; ++j) wj[j] = j < n_u ? w[f * sf + 32 * j] : 0.0f;
#pragma unroll
        for (int i = 0; i < LSTM_V2_PT; ++i) {
            if (!((mask >> i) & 1u)) continue;
            const float d = ds[q0 + i][f];
#pragma unroll
            for (int j = 0; j < LSTM_V3_UT; ++j) acc[i][j] += wj[j] * d;
        }
    }
}

// row_lstm_v3.cuh: the v3 backward body of the Row LSTM recurrence (row_lstm_step_bwd_v3,
// row_lstm_ss_bwd_data_v3 in row_lstm.cu): row_lstm_v2_bwd_body's arithmetic on tiles of
// 16 positions x 128 units, 4 x 4 per thread (lstm_v3.cuh says why). Layout: as row_lstm.cu.
#pragma once

#include "lstm_v3.cuh"
#include "row_lstm_v2.cuh"

// The recurrent dh of the tile's positions x units of `row`, conv1xk^T(d_is(row+1), w) with
// `wp` the packed backward weight (lstm_pack_ss_v2, transposed: [taps, 4h, h]); fused: plus
// dh (first, as v1), then the cell backward (d_is of `row`, dc_carry of row-1 written);
// unfused: written to dh_carry.
PIXELRNN_DEVICE void row_lstm_v3_bwd_body(const float* wp, const float* gates, const float* c,
                                          const float* dh, float* dc_carry, float* d_is,
                                          float* dh_carry, int height, int width, int hidden,
                                          int k, int row, lstm_v2_tile tile, bool fused) {
    __shared__ float ds[LSTM_V2_POS][LSTM_V2_CHUNK];
    const int g4 = 4 * hidden;
    const int j0 = tile.p0, q0 = tile.q0, u = tile.u;
    const int n_u = lstm_v3_units_live(tile, hidden);
    const pixelrnn_index_t row_p = ((pixelrnn_index_t)tile.b * height + row) * width;

    float acc[LSTM_V2_PT][LSTM_V3_UT];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
#pragma unroll
        for (int x = 0; x < LSTM_V3_UT; ++x) {
            acc[i][x] = (fused && x < n_u && j < width)
                            ? dh[(row_p + j) * hidden + u + 32 * x]
                            : 0.0f;
        }
    }
    if (row + 1 < height) {
        const pixelrnn_index_t below = row_p + width;
        for (int t = 0; t < k; ++t) {
            const int off = k / 2 - t;  // the consumer in row+1 reading (row, j) by tap t
            // The positions whose tap-t consumer is in the width (v1 skips the others).
            unsigned mask = 0;
#pragma unroll
            for (int i = 0; i < LSTM_V2_PT; ++i) {
                const int jc = j0 + q0 + i + off;
                if (jc >= 0 && jc < width) mask |= 1u << i;
            }
            for (int f0 = 0; f0 < g4; f0 += LSTM_V2_CHUNK) {
                const int count = g4 - f0 < LSTM_V2_CHUNK ? g4 - f0 : LSTM_V2_CHUNK;
                __syncthreads();  // the previous chunk's reads are done
                row_lstm_v2_stage(d_is, ds, below, width, g4, j0, off, f0, count);
                __syncthreads();  // the chunk is complete
                if (n_u == 0) continue;
                lstm_v3_bwd_chunk(wp + (pixelrnn_index_t)t * g4 * hidden +
                                      (pixelrnn_index_t)f0 * hidden + u,
                                  hidden, ds, q0, count, mask, n_u, acc);
            }
        }
    }
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
        if (j >= width) continue;
        const pixelrnn_index_t p = row_p + j;
#pragma unroll
        for (int x = 0; x < LSTM_V3_UT; ++x) {
            if (x >= n_u) continue;
            const int ux = u + 32 * x;
            const pixelrnn_index_t e = p * hidden + ux;
            if (fused) {
                const float cp = row > 0 ? c[e - (pixelrnn_index_t)width * hidden] : 0.0f;
                const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + ux, hidden, c[e],
                                                             cp, acc[i][x], dc_carry[e],
                                                             d_is + p * g4 + ux);
                if (row > 0) dc_carry[e - (pixelrnn_index_t)width * hidden] = dc_prev;
            } else {
                dh_carry[e] = acc[i][x];
            }
        }
    }
}

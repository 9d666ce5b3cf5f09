// diag_lstm_v3.cuh: the v3 backward body of the Diagonal LSTM recurrence, both layouts (map
// stride and skew as in diag_lstm.cuh; diag_lstm_{step_bwd,ss_bwd_data}_v3 in diag_lstm.cu,
// diag_lstm_skewed_{step_bwd,ss_bwd_data}_v3 in diag_lstm_skewed.cu): diag_lstm_v2_bwd_body's
// arithmetic on tiles of 16 positions of an anti-diagonal x 128 units, 4 x 4 per thread
// (lstm_v3.cuh says why).
#pragma once

#include "diag_lstm_v2.cuh"
#include "lstm_v3.cuh"

// The recurrent dh of the tile's positions x units of anti-diagonal `step`,
// w[:, :, 0]^T d_is(below) + w[:, :, 1]^T d_is(right) with `wp` the packed backward weight
// ([2, 4h, h]); fused: dh + that (v1's order), then the cell backward; unfused: written to
// dh_carry.
PIXELRNN_DEVICE void diag_lstm_v3_bwd_body(const float* wp, const float* gates, const float* c,
                                           const float* dh, float* dc_carry, float* d_is,
                                           float* dh_carry, int height, int width, int hidden,
                                           int stride, int skew, int step, lstm_v2_tile tile,
                                           bool fused) {
    __shared__ float ds[LSTM_V2_POS][LSTM_V2_CHUNK];
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const int b = tile.b, k0 = tile.p0, q0 = tile.q0, u = tile.u;
    const int n_u = lstm_v3_units_live(tile, hidden);
    // Position i of this thread: row r0 + i, in the anti-diagonal while i < n_pos.
    const int r0 = diag_lstm_row(step, k0 + q0, width);
    const int n_pos = count - (k0 + q0);
    float acc[LSTM_V2_PT][LSTM_V3_UT];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
#pragma unroll
        for (int x = 0; x < LSTM_V3_UT; ++x) acc[i][x] = 0.0f;
    }
    for (int t = 0; t < 2; ++t) {
        // The positions whose tap-t consumer is in the image (v1 skips the others).
        unsigned mask = 0;
#pragma unroll
        for (int i = 0; i < LSTM_V2_PT; ++i) {
            if (i < n_pos && (t == 0 ? r0 + i + 1 < height : step - r0 - i + 1 < width)) {
                mask |= 1u << i;
            }
        }
        for (int f0 = 0; f0 < g4; f0 += LSTM_V2_CHUNK) {
            const int n_f = g4 - f0 < LSTM_V2_CHUNK ? g4 - f0 : LSTM_V2_CHUNK;
            __syncthreads();  // the previous chunk's reads are done
            diag_lstm_v2_stage(d_is, ds, b, step, k0, count, t, 1, height, width, stride, skew,
                               g4, f0, n_f);
            __syncthreads();  // the chunk is complete
            if (n_u == 0) continue;
            lstm_v3_bwd_chunk(wp + (pixelrnn_index_t)t * g4 * hidden +
                                  (pixelrnn_index_t)f0 * hidden + u,
                              hidden, ds, q0, n_f, mask, n_u, acc);
        }
    }
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        if (i >= n_pos) continue;
        const int j = step - r0 - i;
        const pixelrnn_index_t p =
            (pixelrnn_index_t)b * height * stride + diag_lstm_pos(r0 + i, j, stride, skew);
#pragma unroll
        for (int x = 0; x < LSTM_V3_UT; ++x) {
            if (x >= n_u) continue;
            const int ux = u + 32 * x;
            const pixelrnn_index_t e = p * hidden + ux;
            if (fused) {
                // As diag_lstm_unit_bwd: dh plus the recurrent sum (v1's order).
                const float dh_tot = dh[e] + acc[i][x];
                const float cp = j > 0 ? c[e - hidden] : 0.0f;
                const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + ux, hidden, c[e],
                                                             cp, dh_tot, dc_carry[e],
                                                             d_is + p * g4 + ux);
                if (j > 0) dc_carry[e - hidden] = dc_prev;
            } else {
                dh_carry[e] = acc[i][x];
            }
        }
    }
}

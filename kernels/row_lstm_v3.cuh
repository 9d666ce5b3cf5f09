// row_lstm_v3.cuh: the v3 backward body of the Row LSTM recurrence (row_lstm_step_bwd_v3,
// row_lstm_ss_bwd_data_v3 in row_lstm.cu; row_lstm_persistent_bwd_v3 in
// row_lstm_persistent.cu): row_lstm_v2_bwd_body's arithmetic on tiles of 4 x 4 per thread
// (lstm_v3.cuh says why; the stepwise tile is 16 positions x 128 units). Layout: as
// row_lstm.cu.
#pragma once

#include "lstm_v3.cuh"
#include "row_lstm_v2.cuh"

// The recurrent dh of the tile's positions x units of `row`, conv1xk^T(d_is(row+1), w), the
// weight read through `wv` (at the thread's first unit: lstm_v3_wview_packed_bwd for the
// stepwise kernels, the staged slice for the persistent one) on tile shape S (lstm_v3.cuh);
// fused: plus dh (first, as v1), then the cell backward (d_is of `row`, dc_carry of row-1
// written); unfused: written to dh_carry. P: the staged d_is rounded on load, PW each weight
// word (row_lstm_ss_bwd_data_{tf32,bf16}_v3: PW = P; the persistent kernels: fp32, their
// staged slice already rounded, as row_lstm_v2_fwd_body), fp32 accumulation.
template <class S, int P = PIXELRNN_ROUND_FP32, int PW = P>
PIXELRNN_DEVICE void row_lstm_v3_bwd_tile(lstm_wview wv, const float* gates, const float* c,
                                          const float* dh, float* dc_carry, float* d_is,
                                          float* dh_carry, int height, int width, int hidden,
                                          int k, int row, lstm_v2_tile tile, bool fused) {
    PIXELRNN_SHARED(float, ds, [S::POS][S::PITCH]);
    const int g4 = 4 * hidden;
    const int j0 = tile.p0, q0 = tile.q0, u = tile.u;
    const int n_u = lstm_v3_units_live<S>(tile, hidden);
    const pixelrnn_index_t row_p = ((pixelrnn_index_t)tile.b * height + row) * width;

    float acc[LSTM_V2_PT][LSTM_V3_UT];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
#pragma unroll
        for (int x = 0; x < LSTM_V3_UT; ++x) {
            acc[i][x] = (fused && x < n_u && j < width)
                            ? dh[(row_p + j) * hidden + u + S::UNIT_STRIDE * x]
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
            const auto stage = [&](int f0, int n_f) {
                row_lstm_v2_stage<S::POS, S::THREADS, S::PITCH, P>(d_is, ds, below, width, g4,
                                                                   j0, off, f0, n_f);
            };
            lstm_v3_bwd_tap<S::PITCH, PW>(stage, wv, t, g4, ds, q0, mask, n_u, acc);
        }
    }
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
        if (j >= width) continue;
        const pixelrnn_index_t prev = row > 0 ? (pixelrnn_index_t)width * hidden : 0;
        lstm_v3_bwd_store(gates, c, 0, dc_carry, d_is, dh_carry, row_p + j, hidden, u,
                          S::UNIT_STRIDE, n_u, prev, acc[i], fused);
    }
}

// The stepwise body (row_lstm_step_bwd_v3, row_lstm_ss_bwd_data_v3): `wp` the packed backward
// weight (lstm_pack_ss_v2, transposed: [taps, 4h, h]), 16 positions x 128 units per block;
// P as row_lstm_v3_bwd_tile.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void row_lstm_v3_bwd_body(const float* wp, const float* gates, const float* c,
                                          const float* dh, float* dc_carry, float* d_is,
                                          float* dh_carry, int height, int width, int hidden,
                                          int k, int row, lstm_v2_tile tile, bool fused) {
    row_lstm_v3_bwd_tile<lstm_v3_step_shape, P>(lstm_v3_wview_packed_bwd(wp, hidden, tile.u),
                                                gates, c, dh, dc_carry, d_is, dh_carry, height,
                                                width, hidden, k, row, tile, fused);
}

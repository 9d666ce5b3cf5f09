// diag_lstm_v3.cuh: the v3 backward body of the Diagonal LSTM recurrence, both layouts (map
// stride and skew as in diag_lstm.cuh; diag_lstm_{step_bwd,ss_bwd_data}_v3 in diag_lstm.cu,
// diag_lstm_skewed_{step_bwd,ss_bwd_data}_v3 in diag_lstm_skewed.cu, the persistent
// diag_lstm{,_skewed}_persistent_bwd_v3): diag_lstm_v2_bwd_body's arithmetic on tiles of 4 x 4
// per thread (lstm_v3.cuh says why; the stepwise tile is 16 positions of an anti-diagonal x
// 128 units).
#pragma once

#include "diag_lstm_v2.cuh"
#include "lstm_v3.cuh"

// The recurrent dh of the tile's positions x units of anti-diagonal `step`,
// w[:, :, 0]^T d_is(below) + w[:, :, 1]^T d_is(right), the weight read through `wv` (as
// row_lstm_v3_bwd_tile) on tile shape S; fused: dh + that (v1's order), then the cell
// backward; unfused: written to dh_carry. P, PW: as row_lstm_v3_bwd_tile (the staged d_is and
// each weight word rounded on load; diag_lstm_ss_bwd_data_{tf32,bf16}_v3).
template <class S, int P = PIXELRNN_ROUND_FP32, int PW = P>
PIXELRNN_DEVICE void diag_lstm_v3_bwd_tile(lstm_wview wv, const float* gates, const float* c,
                                           const float* dh, float* dc_carry, float* d_is,
                                           float* dh_carry, int height, int width, int hidden,
                                           int stride, int skew, int step, lstm_v2_tile tile,
                                           bool fused) {
    PIXELRNN_SHARED(float, ds, [S::POS][S::PITCH]);
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const int b = tile.b, k0 = tile.p0, q0 = tile.q0, u = tile.u;
    const int n_u = lstm_v3_units_live<S>(tile, hidden);
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
        const auto stage = [&](int f0, int n_f) {
            diag_lstm_v2_stage<S::POS, S::THREADS, S::PITCH, P>(d_is, ds, b, step, k0, count, t,
                                                                1, height, width, stride, skew,
                                                                g4, f0, n_f);
        };
        lstm_v3_bwd_tap<S::PITCH, PW>(stage, wv, t, g4, ds, q0, mask, n_u, acc);
    }
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        if (i >= n_pos) continue;
        const int j = step - r0 - i;
        const pixelrnn_index_t p =
            (pixelrnn_index_t)b * height * stride + diag_lstm_pos(r0 + i, j, stride, skew);
        lstm_v3_bwd_store(gates, c, dh, dc_carry, d_is, dh_carry, p, hidden, u, S::UNIT_STRIDE,
                          n_u, j > 0 ? hidden : 0, acc[i], fused);
    }
}

// The stepwise body (diag_lstm{,_skewed}_{step_bwd,ss_bwd_data}_v3): `wp` the packed backward
// weight ([2, 4h, h]), 16 positions x 128 units per block; P as diag_lstm_v3_bwd_tile.
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_v3_bwd_body(const float* wp, const float* gates, const float* c,
                                           const float* dh, float* dc_carry, float* d_is,
                                           float* dh_carry, int height, int width, int hidden,
                                           int stride, int skew, int step, lstm_v2_tile tile,
                                           bool fused) {
    diag_lstm_v3_bwd_tile<lstm_v3_step_shape, P>(lstm_v3_wview_packed_bwd(wp, hidden, tile.u),
                                                 gates, c, dh, dc_carry, d_is, dh_carry, height,
                                                 width, hidden, stride, skew, step, tile, fused);
}

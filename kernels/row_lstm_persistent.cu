// pixelrnn: arch compute_90
// row_lstm_persistent.cu: the Row LSTM's persistent v2 recurrence
// (row_lstm_persistent_{fwd,bwd}_v2) and the persistent v3 backward
// (row_lstm_persistent_bwd_v3, lstm_persistent_v3.cuh).
// One launch per scan and pass, one thread-block cluster per image; the versions, the design,
// the shared-memory budget and the staged layouts are described in lstm_persistent.cuh (v1
// of the persistent recurrence: row_lstm.cu). Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_v3.cuh"

// Launch (every kernel of this file; lstm_persistent.cuh): gridDim.x = n * C, blockDim.x =
// LSTM_V2_THREADS (128), clusters of (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G >= 1
// position groups), dynamic shared memory 32 * (4h*taps + 1) floats (opted in above 48 KiB).
// The maps written in one step and read by other blocks in the next (h, c; d_is, dc_carry) are
// not __restrict__: their loads must not take the read-only (non-coherent) path.
//
// Row LSTM forward of the whole scan: rows top-down, h, c and the activated gates written as
// by row_lstm_step_fwd_v2.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_persistent_fwd_v2(const float* __restrict__ is, const float* __restrict__ w, float* h,
                           float* c, float* __restrict__ gates, int n, int height, int width,
                           int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_fwd(w, w_s, hidden, k, me.u0);
    const lstm_wview wv = lstm_persistent_view_fwd(w_s, hidden, k);
    const int tiles = (width + LSTM_V2_POS - 1) / LSTM_V2_POS;
    for (int r = 0; r < height; ++r) {
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            row_lstm_v2_fwd_body(is, wv, h, c, gates, height, width, hidden, k, r,
                                 lstm_v2_tile_at(me.b, pt * LSTM_V2_POS, me.u0, hidden), true);
        }
        // Row r of every unit (h and c, in global memory) is complete before row r+1 reads it.
        pixelrnn_cluster_sync();
    }
}

// Row LSTM backward of the whole scan: rows bottom-up, d_is of every position and the cell
// gradients handed to the row above, as row_lstm_step_bwd_v2. dc_carry zeroed by the host.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_persistent_bwd_v2(const float* __restrict__ w, const float* __restrict__ gates,
                           const float* __restrict__ c, const float* __restrict__ dh,
                           float* dc_carry, float* d_is, int n, int height, int width,
                           int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    lstm_persistent_stage_bwd(w, w_s, hidden, k, me.u0);
    const lstm_wview wv = lstm_persistent_view_bwd(w_s, hidden, k);
    const int tiles = (width + LSTM_V2_POS - 1) / LSTM_V2_POS;
    for (int r = height - 1; r >= 0; --r) {
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            row_lstm_v2_bwd_body(wv, gates, c, dh, dc_carry, d_is, 0, height, width, hidden, k,
                                 r, lstm_v2_tile_at(me.b, pt * LSTM_V2_POS, me.u0, hidden),
                                 true);
        }
        // Row r's d_is (every gate row) and its cell gradients are complete before row r-1.
        pixelrnn_cluster_sync();
    }
}


// Row LSTM backward of the whole scan on v3 tiles (lstm_persistent_v3.cuh): as
// row_lstm_persistent_bwd_v2, the same bits. Launch: as the v2 kernels but blockDim.x =
// LSTM_PERSISTENT_V3_THREADS (64) and position groups of 32-position tiles.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V3_THREADS, 1)
row_lstm_persistent_bwd_v3(const float* __restrict__ w, const float* __restrict__ gates,
                           const float* __restrict__ c, const float* __restrict__ dh,
                           float* dc_carry, float* d_is, int n, int height, int width,
                           int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v3_body(w, w_s, gates, c, dh, dc_carry, d_is, height, width, hidden,
                                    k);
}

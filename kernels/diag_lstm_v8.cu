// diag_lstm_v8.cu: the stepwise v8 kernels of the Diagonal LSTM, skew folded. CPU twin:
// src/backend/cpu/lstm.rs; host side: src/backend/cuda/lstm.rs.
// Versions:
//   v8 (diag_lstm_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8): the v2 kernels of
//     kernels/diag_lstm.cu (their launches, tiles, packed weight and bits: the same bodies,
//     kernels/diag_lstm_v2.cuh) with the product's weight words read LSTM_V8_WEIGHT_BATCH (8)
//     features at a time before any is used (lstm_v2_features, kernels/lstm_v2.cuh): one load round
//     per 8 features where v2 waits for each feature's loads behind the previous feature's FMAs.
//     Selected by RowLstm::V8 / DiagLstm::V8 (their stepwise kernels).
#include "diag_lstm_v2.cuh"

// __launch_bounds__(.., 1) on every forward kernel: a batch holds 8 features' 32 weight words in
// registers, and with the bare block size ptxas spilled 16-80 bytes in the Diagonal's fused
// forward; stating the minimum of one block per SM lets it take what it needs.
// Launch and parameters: as the v2 kernel of the same pass (kernels/diag_lstm.cu).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
diag_lstm_step_fwd_v8(const float* __restrict__ is, const float* __restrict__ wp,
                      float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates,
                      int n, int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v2_fwd_body<PIXELRNN_ROUND_FP32, PIXELRNN_ROUND_FP32, LSTM_V8_WEIGHT_BATCH>(
        is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), h, c, gates, height,
        width, hidden, width, 0, step, lstm_v2_tile_of_block(diag_lstm_count(step, height, width),
        hidden), true);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
diag_lstm_ss_fwd_v8(const float* __restrict__ is, const float* __restrict__ wp,
                    const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                    int width, int hidden, int step) {
    (void)n;
    // The unfused body reads h only: the cast is never written through.
    diag_lstm_v2_fwd_body<PIXELRNN_ROUND_FP32, PIXELRNN_ROUND_FP32, LSTM_V8_WEIGHT_BATCH>(
        is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), const_cast<float*>(h), 0,
        gates, height, width, hidden, width, 0, step, lstm_v2_tile_of_block(diag_lstm_count(step,
        height, width), hidden), false);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_step_bwd_v8(const float* __restrict__ wp, const float* __restrict__ gates,
                      const float* __restrict__ c, const float* __restrict__ dh,
                      float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                      int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v2_bwd_body<PIXELRNN_ROUND_FP32, LSTM_V8_WEIGHT_BATCH>(
        lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), gates, c, dh, dc_carry, d_is,
        0, height, width, hidden, width, 0, step, lstm_v2_tile_of_block(diag_lstm_count(step,
        height, width), hidden), true);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_ss_bwd_data_v8(const float* __restrict__ wp, const float* __restrict__ d_is,
                         float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                         int step) {
    (void)n;
    diag_lstm_v2_bwd_body<PIXELRNN_ROUND_FP32, LSTM_V8_WEIGHT_BATCH>(
        lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), 0, 0, 0, 0,
        const_cast<float*>(d_is), dh_carry, height, width, hidden, width, 0, step,
        lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden), false);
}

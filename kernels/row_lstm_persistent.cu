// pixelrnn: arch compute_90
// row_lstm_persistent.cu: the Row LSTM's persistent v2 recurrence
// (row_lstm_persistent_{fwd,bwd}_v2), the persistent v3 backward
// (row_lstm_persistent_bwd_v3, lstm_persistent_v3.cuh), and both at tf32 / bf16
// (row_lstm_persistent_fwd_{tf32,bf16}_v2, row_lstm_persistent_bwd_{tf32,bf16}_v2,
// row_lstm_persistent_bwd_{tf32,bf16}_v3: the operands of the state-to-state product rounded
// as they are staged, fp32 FMA; lstm_persistent.cuh, Versions).
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
    row_lstm_persistent_fwd_v2_body<PIXELRNN_ROUND_FP32>(is, w, w_s, h, c, gates, height, width,
                                                         hidden, k);
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
    row_lstm_persistent_bwd_v2_body<PIXELRNN_ROUND_FP32>(w, w_s, gates, c, dh, dc_carry, d_is,
                                                         height, width, hidden, k);
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
    row_lstm_persistent_bwd_v3_body<PIXELRNN_ROUND_FP32>(w, w_s, gates, c, dh, dc_carry, d_is,
                                                         height, width, hidden, k);
}

// The same three at tf32 and bf16 (the launches and the parameters are the fp32 kernels'):
// the state weight rounded as it is staged into shared memory, h(row-1) (forward) or
// d_is(row+1) (backward) as each chunk is staged; everything else fp32.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_persistent_fwd_tf32_v2(const float* __restrict__ is, const float* __restrict__ w,
                                float* h, float* c, float* __restrict__ gates, int n, int height,
                                int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v2_body<PIXELRNN_ROUND_TF32>(is, w, w_s, h, c, gates, height, width,
                                                         hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_persistent_fwd_bf16_v2(const float* __restrict__ is, const float* __restrict__ w,
                                float* h, float* c, float* __restrict__ gates, int n, int height,
                                int width, int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_fwd_v2_body<PIXELRNN_ROUND_BF16>(is, w, w_s, h, c, gates, height, width,
                                                         hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_persistent_bwd_tf32_v2(const float* __restrict__ w, const float* __restrict__ gates,
                                const float* __restrict__ c, const float* __restrict__ dh,
                                float* dc_carry, float* d_is, int n, int height, int width,
                                int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v2_body<PIXELRNN_ROUND_TF32>(w, w_s, gates, c, dh, dc_carry, d_is,
                                                         height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_persistent_bwd_bf16_v2(const float* __restrict__ w, const float* __restrict__ gates,
                                const float* __restrict__ c, const float* __restrict__ dh,
                                float* dc_carry, float* d_is, int n, int height, int width,
                                int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v2_body<PIXELRNN_ROUND_BF16>(w, w_s, gates, c, dh, dc_carry, d_is,
                                                         height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V3_THREADS, 1)
row_lstm_persistent_bwd_tf32_v3(const float* __restrict__ w, const float* __restrict__ gates,
                                const float* __restrict__ c, const float* __restrict__ dh,
                                float* dc_carry, float* d_is, int n, int height, int width,
                                int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v3_body<PIXELRNN_ROUND_TF32>(w, w_s, gates, c, dh, dc_carry, d_is,
                                                         height, width, hidden, k);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PERSISTENT_V3_THREADS, 1)
row_lstm_persistent_bwd_bf16_v3(const float* __restrict__ w, const float* __restrict__ gates,
                                const float* __restrict__ c, const float* __restrict__ dh,
                                float* dc_carry, float* d_is, int n, int height, int width,
                                int hidden, int k) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    row_lstm_persistent_bwd_v3_body<PIXELRNN_ROUND_BF16>(w, w_s, gates, c, dh, dc_carry, d_is,
                                                         height, width, hidden, k);
}

// diag_lstm_mma.cu: tensor-core (mma.sync) versions of the Diagonal LSTM's fused step kernels
// in the folded layout (diag_lstm.cu describes the recurrence and the fp32 versions). Bodies:
// kernels/lstm_mma.cuh. CPU twin: the CPU backend's Diagonal LSTM at the same precision
// (src/backend/cpu/lstm.rs); host side: src/backend/cuda/lstm_mma.rs (`mma_step`, selected by the
// backend's precision when the recurrence is fused and the layout folded).
//
// Versions (each pass and precision its own kernel):
//   step_fwd_tf32 v1: pre = is + w[:, :, 0] h(above) + w[:, :, 1] h(left) for anti-diagonal
//                     `step` of every image, 128 positions x (16 units x 4 gates) per
//                     256-thread block, mma.m16n8k8 .tf32 over K = 2h (the neighbours' h
//                     gathered and rounded to tf32 as staged, the packed weight likewise), fp32
//                     accumulation; the fp32 fused step's cell in the epilogue.
//   step_fwd_bf16 v1: the same with mma.m16n8k16 .bf16, operands rounded to bf16.
//   step_bwd_tf32 v1: dh_tot = dh + w[:, :, 0]^T d_is(below) + w[:, :, 1]^T d_is(right) for 128
//                     positions x 64 units, K = 2 * 4h, then the cell backward of
//                     diag_lstm_step_bwd_v3 (d_is of the step, dc_carry of the left pixel).
//   step_bwd_bf16 v1: the same in bf16.
//   step_{fwd,bwd}_{tf32,bf16} v2: v1 with float2 epilogue accesses (whole sectors), v1's bits.
// diag_lstm_step_{fwd,bwd}_tf32_swapped_v1: the mutation check's kernels (A fragment
// registers swapped, lstm_mma.cuh); never selected by the host.
//
// Layout: as diag_lstm.cu, folded (layout 1) only: the materialised layout has no tensor-core
// step kernels.
#include "common.cuh"
#include "lstm_mma.cuh"

// Launch (forward): blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n * len / 128),
// ceil(h / 16)), len = the anti-diagonal's positions; `wp` = lstm_pack_ss_v2(w_ss, 0).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_fwd_tf32_v1(const float* __restrict__ is, const float* __restrict__ wp,
    float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates, int n, int height,
    int width, int hidden, int step) {
    lstm_mma_step_fwd<MCM_TF32, false, false>(is, wp, h, c, gates, n, hidden,
                                              lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_fwd_bf16_v1(const float* __restrict__ is, const float* __restrict__ wp,
    float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates, int n, int height,
    int width, int hidden, int step) {
    lstm_mma_step_fwd<MCM_BF16, false, false>(is, wp, h, c, gates, n, hidden,
                                              lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_fwd_tf32_swapped_v1(const float* __restrict__ is, const float* __restrict__ wp,
    float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates, int n, int height,
    int width, int hidden, int step) {
    lstm_mma_step_fwd<MCM_TF32, true, false>(is, wp, h, c, gates, n, hidden,
                                             lstm_mma_geo_of(1, 0, height, width, step));
}

// Launch (backward): blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n * len / 128),
// ceil(h / 64)); `wp` = lstm_pack_ss_v2(w_ss, 1). Steps in reverse.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_bwd_tf32_v1(const float* __restrict__ wp, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* __restrict__ dc_carry,
    float* __restrict__ d_is, int n, int height, int width, int hidden, int step) {
    lstm_mma_step_bwd<MCM_TF32, false, false>(wp, gates, c, dh, dc_carry, d_is, n, hidden,
                                              lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_bwd_bf16_v1(const float* __restrict__ wp, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* __restrict__ dc_carry,
    float* __restrict__ d_is, int n, int height, int width, int hidden, int step) {
    lstm_mma_step_bwd<MCM_BF16, false, false>(wp, gates, c, dh, dc_carry, d_is, n, hidden,
                                              lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_bwd_tf32_swapped_v1(const float* __restrict__ wp, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* __restrict__ dc_carry,
    float* __restrict__ d_is, int n, int height, int width, int hidden, int step) {
    lstm_mma_step_bwd<MCM_TF32, true, false>(wp, gates, c, dh, dc_carry, d_is, n, hidden,
                                             lstm_mma_geo_of(1, 0, height, width, step));
}

// v2: v1 with the epilogue's operands as float2 pairs (lstm_mma.cuh, PAIRS); same bits.
// __launch_bounds__(256, 1): without the stated minimum ptxas (12.9, sm_90) holds these kernels
// to 128 registers and the bf16 backward spills 8 bytes; with it, one block per SM as v1 (whose
// 124-142 registers allow no more), no spills.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 1)
diag_lstm_step_fwd_tf32_v2(const float* __restrict__ is, const float* __restrict__ wp,
    float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates, int n, int height,
    int width, int hidden, int step) {
    lstm_mma_step_fwd<MCM_TF32, false, true>(is, wp, h, c, gates, n, hidden,
                                             lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 1)
diag_lstm_step_fwd_bf16_v2(const float* __restrict__ is, const float* __restrict__ wp,
    float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates, int n, int height,
    int width, int hidden, int step) {
    lstm_mma_step_fwd<MCM_BF16, false, true>(is, wp, h, c, gates, n, hidden,
                                             lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 1)
diag_lstm_step_bwd_tf32_v2(const float* __restrict__ wp, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* __restrict__ dc_carry,
    float* __restrict__ d_is, int n, int height, int width, int hidden, int step) {
    lstm_mma_step_bwd<MCM_TF32, false, true>(wp, gates, c, dh, dc_carry, d_is, n, hidden,
                                             lstm_mma_geo_of(1, 0, height, width, step));
}
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 1)
diag_lstm_step_bwd_bf16_v2(const float* __restrict__ wp, const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* __restrict__ dc_carry,
    float* __restrict__ d_is, int n, int height, int width, int hidden, int step) {
    lstm_mma_step_bwd<MCM_BF16, false, true>(wp, gates, c, dh, dc_carry, d_is, n, hidden,
                                             lstm_mma_geo_of(1, 0, height, width, step));
}

// pixelrnn: arch compute_90
// diag_lstm_persistent_mma.cu: the Diagonal LSTM's persistent recurrence with the
// state-to-state product on the tensor cores (mma.sync), tf32 and bf16, the folded layout:
//   diag_lstm_persistent_mma_fwd_{tf32,bf16}_v1: the forward of the whole scan;
//   diag_lstm_persistent_mma_bwd_{tf32,bf16}_v1: the backward through time;
//   diag_lstm_persistent_mma_{fwd,bwd}_{tf32,bf16}_v2: v1 (its launch, shared memory and
//       bits) with coalesced global traffic (lstm_persistent_mma.cuh, v2): the default.
// One launch per scan and pass, one thread-block cluster per image; the design, the
// shared-memory layouts and the bits (the fused tensor-core step's) are described in
// kernels/lstm_persistent_mma.cuh, which both scans' kernels share. CPU twin: the CPU
// recurrences at the same precision (src/backend/cpu/lstm.rs); host side:
// src/backend/cuda/lstm_persistent_mma.rs. Compute_90 PTX (the first line: clusters).
#include "lstm_persistent_mma_scan.cuh"

// Launch (forward): gridDim.x = n * C, blockDim.x = LSTM_PMMA_THREADS (128), clusters of
// (C, 1, 1) blocks, C = ceil(h / 32) * G <= 8 (G >= 1 groups of 16-position tiles), dynamic
// shared memory (128 + 16) * PITCH words (lstm_persistent_mma.cuh; opted in above 48 KiB).
// h and c are written in one step and read by other blocks in the next: not __restrict__.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_fwd_tf32_v1(const float* __restrict__ is, const float* __restrict__ w,
    float* h, float* c, float* __restrict__ gates, int n, int height, int width,
    int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_fwd_body<MCM_TF32, 1>(is, w, smem, h, c, gates, 1, height, width, hidden, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_fwd_bf16_v1(const float* __restrict__ is, const float* __restrict__ w,
    float* h, float* c, float* __restrict__ gates, int n, int height, int width,
    int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_fwd_body<MCM_BF16, 1>(is, w, smem, h, c, gates, 1, height, width, hidden, 0);
}

// Launch (backward): as the forward, but groups of 64-position tiles and dynamic shared
// memory 32 * PITCH + 64 * (CW + 4) words (lstm_persistent_mma.cuh, "The backward"); dc_carry
// zeroed by the host. d_is and dc_carry are written in one step and read by other blocks in
// the next: not __restrict__.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_bwd_tf32_v1(const float* __restrict__ w,
    const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_bwd_body<MCM_TF32, 1>(w, smem, gates, c, dh, dc_carry, d_is, 1, height, width,
                                    hidden, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_bwd_bf16_v1(const float* __restrict__ w,
    const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_bwd_body<MCM_BF16, 1>(w, smem, gates, c, dh, dc_carry, d_is, 1, height, width,
                                    hidden, 0);
}

// v2: v1's launches, shared memory and bits, the global traffic coalesced (the weight slice
// read in global order and scattered, float2 tiles at bf16, float2 epilogue pairs at even h:
// lstm_persistent_mma.cuh, v2).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_fwd_tf32_v2(const float* __restrict__ is, const float* __restrict__ w,
    float* h, float* c, float* __restrict__ gates, int n, int height, int width,
    int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_fwd_body<MCM_TF32, 2>(is, w, smem, h, c, gates, 1, height, width, hidden, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_fwd_bf16_v2(const float* __restrict__ is, const float* __restrict__ w,
    float* h, float* c, float* __restrict__ gates, int n, int height, int width,
    int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_fwd_body<MCM_BF16, 2>(is, w, smem, h, c, gates, 1, height, width, hidden, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_bwd_tf32_v2(const float* __restrict__ w,
    const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_bwd_body<MCM_TF32, 2>(w, smem, gates, c, dh, dc_carry, d_is, 1, height, width,
                                    hidden, 0);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_PMMA_THREADS, 1)
diag_lstm_persistent_mma_bwd_bf16_v2(const float* __restrict__ w,
    const float* __restrict__ gates,
    const float* __restrict__ c, const float* __restrict__ dh, float* dc_carry, float* d_is,
    int n, int height, int width, int hidden) {
    (void)n;
    PIXELRNN_DYNAMIC_SHARED(unsigned, smem);
    lstm_pmma_bwd_body<MCM_BF16, 2>(w, smem, gates, c, dh, dc_carry, d_is, 1, height, width,
                                    hidden, 0);
}

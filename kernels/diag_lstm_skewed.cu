// diag_lstm_skewed.cu: the Diagonal LSTM scan in the materialised layout (op "diag_lstm_layout"
// = 2, the comparison variant; kernels/diag_lstm.cu has the folded layout, the semantics and
// the full description of the versions). CPU twin: src/backend/cpu/lstm.rs (Scan::Diagonal).
//
// Versions (one number with the folded kernels, selected as op "diag_lstm"):
//   v1: diag_lstm_skewed_ss_fwd_v1 + diag_lstm_skewed_gates_fwd_v1 (unfused),
//       diag_lstm_skewed_step_fwd_v1 (fused), diag_lstm_skewed_persistent_fwd_v1 (one block
//       per image, the weights staged when they fit in 48 KiB); backward
//       diag_lstm_skewed_gates_bwd_v1 + diag_lstm_skewed_ss_bwd_data_v1,
//       diag_lstm_skewed_step_bwd_v1, diag_lstm_skewed_persistent_bwd_v1.
//   v2: diag_lstm_skewed_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v2, the folded v2 tile bodies
//       (diag_lstm_v2.cuh) over the skewed maps; the persistent v2 kernels of this layout,
//       diag_lstm_skewed_persistent_{fwd,bwd}_v2, are in lstm_persistent.cuh. The skewed gate
//       kernels: v1 only.
//   v8: the v2 step kernels with the product's weight words read 8 features at a time
//       (diag_lstm_skewed_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8, kernels/diag_lstm_skewed_v8.cu: v2's
//       launches, tiles and bits).
//   v3: v2's kernels, except diag_lstm_skewed_{step_bwd,ss_bwd_data}_v3 (diag_lstm_v3.cuh):
//       the backward product register-tiled 4 positions x 4 units per thread.
//
// Layout: the skewed maps [n, H, Ws, *] (section below); w_ss [4h, h, 2, 1] as in diag_lstm.cu.
#include "diag_lstm.cuh"
#include "diag_lstm_v2.cuh"
#include "diag_lstm_v3.cuh"

// Materialised layout (op "diag_lstm_layout" = 2, the comparison variant): the paper's literal
// formulation. The host skews `is` to [n, H, Ws, 4h] (skew_fwd_v1, Ws = max(2W-1, H+W-1)), runs
// these kernels over the skewed maps h_s, c_s [n, H, Ws, h] and gates_s [n, H, Ws, 4h], then
// unskews h, c and the gates; the backward skews gates, c and dh, scans, and unskews d_is.
// Step t is skewed column t: its positions are the same rows as anti-diagonal t
// (diag_lstm_count / diag_lstm_row), at skewed (r, t) with image column j = t - r, flat
// position p = (b*H + r)*Ws + t. The kernels are the folded ones' bodies with stride = Ws,
// skew = 1: the 2x1 state-to-state convolution reads (r-1, t-1) and (r, t-1), the cell
// continues (r, t-1), and the taps and consumers in the padding are skipped, so the results
// equal the folded layout's; what differs is the memory: the skewed maps (about 2x the
// footprint) and the host's skew/unskew passes, which is what the comparison measures. No
// kernel here, nor the unskew, reads the padding, so the host leaves it uninitialised.

// Launch: as diag_lstm_ss_fwd_v1 (one thread per (b, k, o) of skewed column `step`).
// Unfused forward on the skewed maps, first half: pre = is_s + w_ss * [h_s(r-1, t-1);
// h_s(r, t-1)] into gates_s.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_ss_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                           const float* __restrict__ h, float* __restrict__ gates, int n,
                           int height, int width, int hidden, int skewed, int step) {
    diag_lstm_ss_fwd_body(is, w, h, gates, n, height, width, hidden, skewed, 1, step);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, u) of skewed column `step`: any
// gridDim.x (grid-stride), e.g. ceil(n * count * h / PIXELRNN_BLOCK).
// Unfused forward, second half: lstm_gates_fwd_v1's update at the skewed positions, the cell
// continuing (r, t-1) (none at j = 0). `c` is read at column step-1 and written at `step`:
// one pointer.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_gates_fwd_v1(float* __restrict__ gates, float* __restrict__ c,
                              float* __restrict__ h, int n, int height, int width, int hidden,
                              int skewed, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        int b, r, j;
        const pixelrnn_index_t p = diag_lstm_step_pixel(idx / hidden, count, step, height, width,
                                                        skewed, 1, &b, &r, &j);
        const pixelrnn_index_t e = p * hidden + u;
        float* g = gates + p * 4 * hidden + u;
        const float cp = j > 0 ? c[e - hidden] : 0.0f;
        pixelrnn_lstm_cell_fwd(g[0], g[hidden], g[2 * hidden], g[3 * hidden], cp, g, hidden,
                               &c[e], &h[e]);
    }
}

// Launch: as diag_lstm_skewed_gates_fwd_v1. Columns in reverse order.
// Unfused backward, first half: lstm_gates_bwd_v1 at the skewed positions; `dh_carry` is
// complete for column `step` (diag_lstm_skewed_ss_bwd_data_v1 of column step+1, zero for the
// last), `dc_carry` read at `step`, written at step-1 (never into the padding).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_gates_bwd_v1(const float* __restrict__ gates, const float* __restrict__ c,
                              const float* __restrict__ dh, const float* __restrict__ dh_carry,
                              float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                              int height, int width, int hidden, int skewed, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        int b, r, j;
        const pixelrnn_index_t p = diag_lstm_step_pixel(idx / hidden, count, step, height, width,
                                                        skewed, 1, &b, &r, &j);
        const pixelrnn_index_t e = p * hidden + u;
        const float cp = j > 0 ? c[e - hidden] : 0.0f;
        const float dc_prev =
            pixelrnn_lstm_cell_bwd(gates + p * 4 * hidden + u, hidden, c[e], cp,
                                   dh[e] + dh_carry[e], dc_carry[e], d_is + p * 4 * hidden + u);
        if (j > 0) dc_carry[e - hidden] = dc_prev;
    }
}

// Launch: as diag_lstm_ss_bwd_data_v1 (one thread per (b, k, u) of skewed column `step`),
// called for step = t-1 after diag_lstm_skewed_gates_bwd_v1 of column t.
// Unfused backward, second half: dh_carry(r, t) = w_ss[:, :, 0]^T d_is_s(r+1, t+1) +
// w_ss[:, :, 1]^T d_is_s(r, t+1) (none at j = W-1).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_ss_bwd_data_v1(const float* __restrict__ w, const float* __restrict__ d_is,
                                float* __restrict__ dh_carry, int n, int height, int width,
                                int hidden, int skewed, int step) {
    diag_lstm_ss_bwd_data_body(w, d_is, dh_carry, n, height, width, hidden, skewed, 1, step);
}

// Launch: as diag_lstm_step_fwd_v1 (one thread per (b, k, u) of skewed column `step`).
// Fused forward of one skewed column: `h`, `c` read at column step-1 and written at `step`:
// one pointer.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_step_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                             float* __restrict__ h, float* __restrict__ c,
                             float* __restrict__ gates, int n, int height, int width,
                             int hidden, int skewed, int step) {
    diag_lstm_step_fwd_body(is, w, h, c, gates, n, height, width, hidden, skewed, 1, step);
}

// Launch: as diag_lstm_step_bwd_v1 (one thread per (b, k, u) of skewed column `step`, columns
// in reverse).
// Fused backward of one skewed column.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_step_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                             const float* __restrict__ c, const float* __restrict__ dh,
                             float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                             int height, int width, int hidden, int skewed, int step) {
    diag_lstm_step_bwd_body(w, gates, c, dh, dc_carry, d_is, n, height, width, hidden, skewed,
                            1, step);
}

// Launch: as diag_lstm_persistent_fwd_v1 (gridDim.x = n, blockDim.x a multiple of 32 up to
// 1024, 8h*h floats of dynamic shared memory when `staged` != 0).
// Persistent forward on the skewed maps: one block per image over the columns 0 .. H+W-2
// (the columns past H+W-2, when W > H, are all padding).
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_skewed_persistent_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                                   float* __restrict__ h, float* __restrict__ c,
                                   float* __restrict__ gates, int n, int height, int width,
                                   int hidden, int skewed, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_body(is, w, w_s, h, c, gates, n, height, width, hidden, skewed, 1,
                                  staged);
}

// Launch: as diag_lstm_persistent_bwd_v1. dc_carry cleared by the host.
// Persistent backward on the skewed maps: one block per image over the columns in reverse.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_skewed_persistent_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                                   const float* __restrict__ c, const float* __restrict__ dh,
                                   float* __restrict__ dc_carry, float* __restrict__ d_is,
                                   int n, int height, int width, int hidden, int skewed,
                                   int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_body(w, w_s, gates, c, dh, dc_carry, d_is, n, height, width,
                                  hidden, skewed, 1, staged);
}

// Materialised layout, v2 tiles: the same bodies over the skewed maps (stride = Ws, skew = 1),
// launched as the folded v2 kernels (gridDim.x = n * ceil(count / 16) for skewed column
// `step`, which holds the positions of anti-diagonal `step`).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_skewed_step_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                             float* __restrict__ h, float* __restrict__ c,
                             float* __restrict__ gates, int n, int height, int width,
                             int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v2_fwd_body(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), h,
                          c, gates, height, width, hidden, skewed, 1, step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          true);
}

// __launch_bounds__(.., 1): with the bare block size ptxas held this kernel at 80 registers
// and spilled 4-8 bytes; stating the minimum of one block per SM lets it take what it needs.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
diag_lstm_skewed_ss_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                           const float* __restrict__ h, float* __restrict__ gates, int n,
                           int height, int width, int hidden, int skewed, int step) {
    (void)n;
    // The unfused body reads h only: the cast is never written through.
    diag_lstm_v2_fwd_body(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS),
                          const_cast<float*>(h), 0, gates, height, width, hidden, skewed, 1, step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          false);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_skewed_step_bwd_v2(const float* __restrict__ wp, const float* __restrict__ gates,
                             const float* __restrict__ c, const float* __restrict__ dh,
                             float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                             int height, int width, int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v2_bwd_body(lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), gates,
                          c, dh, dc_carry, d_is, 0, height, width, hidden, skewed, 1, step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          true);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_skewed_ss_bwd_data_v2(const float* __restrict__ wp, const float* __restrict__ d_is,
                                float* __restrict__ dh_carry, int n, int height, int width,
                                int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v2_bwd_body(lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), 0, 0, 0,
                          0, const_cast<float*>(d_is), dh_carry, height, width, hidden, skewed, 1,
                          step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          false);
}


// Materialised layout, v3 backward tiles (diag_lstm_v3.cuh) over the skewed maps (stride = Ws,
// skew = 1), launched as the folded v3 kernels.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_skewed_step_bwd_v3(const float* __restrict__ wp, const float* __restrict__ gates,
                             const float* __restrict__ c, const float* __restrict__ dh,
                             float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                             int height, int width, int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v3_bwd_body(wp, gates, c, dh, dc_carry, d_is, 0, height, width, hidden, skewed, 1,
                          step,
                          lstm_v3_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          true);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_skewed_ss_bwd_data_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                                float* __restrict__ dh_carry, int n, int height, int width,
                                int hidden, int skewed, int step) {
    (void)n;
    // The unfused body reads d_is only: the cast is never written through.
    diag_lstm_v3_bwd_body(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                          hidden, skewed, 1, step,
                          lstm_v3_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          false);
}

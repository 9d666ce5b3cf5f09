// lstm.cu: the pointwise LSTM gate and cell update of one recurrence step, forward and
// backward, shared by both scans of the unfused recurrence:
// - Row LSTM (diagonal = 0): step s is image row s;
// - Diagonal LSTM (diagonal = 1): step s is the anti-diagonal r + j = s, i.e. column s of the
//   skewed map; the skew is folded into this indexing, no skewed map is materialised.
// CPU twins: cell_forward / cell_backward in src/backend/cpu/lstm.rs (unfused path).
// The state-to-state halves of a step are in row_lstm.cu and diag_lstm.cu.
//
// Versions:
//   v1: one thread per (batch item, position of the step, hidden unit), grid-stride; each
//       thread handles the unit's four gates [o, f, i, g].
//
// Layout (NHWC, shared with the CPU twin):
//   gates [n, H, W, 4h]  blocks [o, f, i, g], activated (sigmoid, sigmoid, sigmoid, tanh)
//   h, c  [n, H, W, h]
// Positions of step s, k = 0 .. count-1:
//   row:      (s, k), count = W, the cell continues (s-1, k) (none in row 0);
//   diagonal: lo = max(0, s-W+1), (lo+k, s-lo-k), count = min(s, H-1) - lo + 1, the cell
//             continues (r, j-1) (none in column 0).
#include "common.cuh"

// Number of positions of step `s` in one image.
PIXELRNN_DEVICE int lstm_step_count(int s, int height, int width, int diagonal) {
    if (!diagonal) return width;
    const int lo = s - width + 1 > 0 ? s - width + 1 : 0;
    const int hi = s < height - 1 ? s : height - 1;
    return hi - lo + 1;
}

// Row and column of the k-th position of step `s`.
PIXELRNN_DEVICE void lstm_step_position(int s, int k, int width, int diagonal, int* r, int* j) {
    if (!diagonal) {
        *r = s;
        *j = k;
    } else {
        const int lo = s - width + 1 > 0 ? s - width + 1 : 0;
        *r = lo + k;
        *j = s - lo - k;
    }
}

// Flat position (b*H + r)*W + j whose cell state (r, j) continues, or -1 at the scan's edge.
PIXELRNN_DEVICE pixelrnn_index_t lstm_cell_prev(pixelrnn_index_t p, int r, int j, int width,
                                                int diagonal) {
    if (!diagonal) return r > 0 ? p - width : -1;
    return j > 0 ? p - 1 : -1;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, u) of the step: any gridDim.x
// (grid-stride), e.g. ceil(n * count * hidden / PIXELRNN_BLOCK).
// On entry `gates` holds the step's pre-activations (written there by the state-to-state
// kernel); they are replaced by the activated gates, and c, h of the step are written.
// `c` is read at the previous step's positions and written at this step's: one pointer.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_gates_fwd_v1(float* __restrict__ gates, float* __restrict__ c, float* __restrict__ h,
                  int n, int height, int width, int hidden, int step, int diagonal) {
    const int count = lstm_step_count(step, height, width, diagonal);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int k = (int)(q % count);
        int r, j;
        lstm_step_position(step, k, width, diagonal, &r, &j);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * width + j;
        const pixelrnn_index_t prev = lstm_cell_prev(p, r, j, width, diagonal);

        float* g = gates + p * 4 * hidden + u;
        const float cp = prev >= 0 ? c[prev * hidden + u] : 0.0f;
        pixelrnn_lstm_cell_fwd(g[0], g[hidden], g[2 * hidden], g[3 * hidden], cp, g, hidden,
                               &c[p * hidden + u], &h[p * hidden + u]);
    }
}

// Launch: as lstm_gates_fwd_v1.
// Backward of one step, run in reverse step order. `dh` is the gradient reaching h from outside
// the recurrence, `dh_carry` the recurrent part (complete for this step: written by the
// state-to-state backward of the next step, zero where there is none), `dc_carry` the cell
// gradient from the next step (read at this step's positions, written at the positions the
// cells continue: one pointer). Writes d_is (= dpre) of the step's positions.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_gates_bwd_v1(const float* __restrict__ gates, const float* __restrict__ c,
                  const float* __restrict__ dh, const float* __restrict__ dh_carry,
                  float* __restrict__ dc_carry, float* __restrict__ d_is, int n, int height,
                  int width, int hidden, int step, int diagonal) {
    const int count = lstm_step_count(step, height, width, diagonal);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int k = (int)(q % count);
        int r, j;
        lstm_step_position(step, k, width, diagonal, &r, &j);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * width + j;
        const pixelrnn_index_t prev = lstm_cell_prev(p, r, j, width, diagonal);

        const pixelrnn_index_t e = p * hidden + u;
        const float cp = prev >= 0 ? c[prev * hidden + u] : 0.0f;
        const float dc_prev =
            pixelrnn_lstm_cell_bwd(gates + p * 4 * hidden + u, hidden, c[e], cp,
                                   dh[e] + dh_carry[e], dc_carry[e], d_is + p * 4 * hidden + u);
        if (prev >= 0) dc_carry[prev * hidden + u] = dc_prev;
    }
}

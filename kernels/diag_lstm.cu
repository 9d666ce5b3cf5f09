// diag_lstm.cu: the Diagonal LSTM scan with the skew folded into the indexing, one launch per
// anti-diagonal s = r + j of the image (= column s of the skewed map; the whole batch at once).
// At (r, j): pre = is(r, j) + w_ss[:, :, 0] h(r-1, j) + w_ss[:, :, 1] h(r, j-1) (the 2x1 column
// convolution over the previous skewed column), the cell continues (r, j-1), positions
// outside the image (the skew's padding) hold h = c = 0. CPU twin: src/backend/cpu/lstm.rs
// (Scan::Diagonal) and lstm_at.rs.
//
// Versions (all entry points of this file share one version number, selected as op "diag_lstm"):
//   v1: unfused: diag_lstm_ss_fwd_v1 (state-to-state product of the anti-diagonal into the
//       gates map as the pre-activation, one thread per (b, position, gate row o)) followed by
//       lstm_gates_fwd_v1 (lstm.cu, diagonal = 1); backward per anti-diagonal in reverse:
//       lstm_gates_bwd_v1, then diag_lstm_ss_bwd_data_v1 (dh of anti-diagonal s-1 gathered
//       from the dpre of its two consumers below and to the right, one thread per
//       (b, position, u), no atomics). Fused: diag_lstm_step_fwd_v1, one thread per
//       (b, position, u) computing the unit's four gate pre-activations (4 dot products of
//       length 2h) and the cell update in registers, no pre-activation stored;
//       diag_lstm_step_bwd_v1, one thread per (b, position, u): recurrent dh from the next
//       anti-diagonal's dpre (2 dot products of length 4h) and the cell backward in registers,
//       no dh buffer. Both paths finish with diag_lstm_ss_bwd_weight_v1: dw_ss once after the
//       scan, one thread per weight element summing over every position (deterministic, no
//       atomics, no per-step partial buffers). diag_lstm_fwd_at_v1: one position (sampling),
//       the fused step's arithmetic.
//
// Layout: is, gates, d_is [n, H, W, 4h] (blocks [o, f, i, g]); h, c, dh [n, H, W, h];
// w_ss, dw [4h, h, 2, 1]: element (o, v, t, 0) at (o*h + v)*2 + t, tap 0 reads the pixel above
// (r-1, j), tap 1 the pixel to the left (r, j-1).
// Positions of anti-diagonal s, k = 0 .. count-1: lo = max(0, s-W+1), (lo+k, s-lo-k),
// count = min(s, H-1) - lo + 1.
#include "common.cuh"

// Number of positions of anti-diagonal `s` in one image.
PIXELRNN_DEVICE int diag_lstm_count(int s, int height, int width) {
    const int lo = s - width + 1 > 0 ? s - width + 1 : 0;
    const int hi = s < height - 1 ? s : height - 1;
    return hi - lo + 1;
}

// Row of the k-th position of anti-diagonal `s` (its column is s - row).
PIXELRNN_DEVICE int diag_lstm_row(int s, int k, int width) {
    const int lo = s - width + 1 > 0 ? s - width + 1 : 0;
    return lo + k;
}

// Gates, cell and hidden state of unit u of position (r, j) of one image: `pre_in` points at
// the position's 4h input-to-state pre-activations, `h_img`/`c_img` at the image's maps (the
// pixel above and the pixel to the left complete). Writes the activated gates to `gates_out`
// (4 entries h apart) when not null. Same arithmetic as lstm_gates_fwd_v1 (lstm.cu) after the
// state-to-state product.
PIXELRNN_DEVICE void diag_lstm_unit_fwd(const float* pre_in, const float* w, float* h_img,
                                        float* c_img, float* gates_out, int width, int hidden,
                                        int r, int j, int u) {
    float pre[4];
#pragma unroll
    for (int x = 0; x < 4; ++x) pre[x] = pre_in[x * hidden + u];
    const pixelrnn_index_t e = ((pixelrnn_index_t)r * width + j) * hidden + u;
    for (int t = 0; t < 2; ++t) {
        if (t == 0 ? r == 0 : j == 0) continue;  // the skew's zero padding
        const pixelrnn_index_t src = t == 0 ? e - (pixelrnn_index_t)width * hidden : e - hidden;
        const float* hp = h_img + (src - u);
        for (int v = 0; v < hidden; ++v) {
            const float hv = hp[v];
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                pre[x] += w[((pixelrnn_index_t)(x * hidden + u) * hidden + v) * 2 + t] * hv;
            }
        }
    }
    const float og = pixelrnn_sigmoid(pre[0]);
    const float fg = pixelrnn_sigmoid(pre[1]);
    const float ig = pixelrnn_sigmoid(pre[2]);
    const float gg = tanhf(pre[3]);
    const float cp = j > 0 ? c_img[e - hidden] : 0.0f;
    const float cu = fg * cp + ig * gg;
    if (gates_out != 0) {
        gates_out[u] = og;
        gates_out[hidden + u] = fg;
        gates_out[2 * hidden + u] = ig;
        gates_out[3 * hidden + u] = gg;
    }
    c_img[e] = cu;
    h_img[e] = og * tanhf(cu);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, o) of anti-diagonal `step`
// (o < 4h): any gridDim.x (grid-stride), e.g. ceil(n * count * 4h / PIXELRNN_BLOCK).
// Unfused forward, first half: the pre-activation is + w_ss * [h above; h left] of every
// position of the anti-diagonal, written into the gates map (lstm_gates_fwd_v1 activates it).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_ss_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                    const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                    int width, int hidden, int step) {
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * g4;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int o = (int)(idx % g4);
        const pixelrnn_index_t q = idx / g4;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const int j = step - r;
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * width + j;
        float acc = is[p * g4 + o];
        for (int t = 0; t < 2; ++t) {
            if (t == 0 ? r == 0 : j == 0) continue;
            const float* hp = h + (t == 0 ? p - width : p - 1) * hidden;
            const float* wp = w + (pixelrnn_index_t)o * hidden * 2 + t;
            for (int v = 0; v < hidden; ++v) acc += wp[2 * v] * hp[v];
        }
        gates[p * g4 + o] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, u) of anti-diagonal `step`:
// any gridDim.x (grid-stride), e.g. ceil(n * count * h / PIXELRNN_BLOCK). Called for
// step = s-1 after lstm_gates_bwd_v1 of anti-diagonal s.
// Unfused backward, second half: dh_carry(r, j) = w_ss[:, :, 0]^T d_is(r+1, j) +
// w_ss[:, :, 1]^T d_is(r, j+1), its two consumers (both on anti-diagonal step+1), gathered.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_ss_bwd_data_v1(const float* __restrict__ w, const float* __restrict__ d_is,
                         float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                         int step) {
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const int j = step - r;
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * width + j;
        float acc = 0.0f;
        for (int t = 0; t < 2; ++t) {
            if (t == 0 ? r + 1 >= height : j + 1 >= width) continue;
            const float* dp = d_is + (t == 0 ? p + width : p + 1) * g4;
            const float* wp = w + (pixelrnn_index_t)u * 2 + t;
            for (int o = 0; o < g4; ++o) acc += wp[(pixelrnn_index_t)o * hidden * 2] * dp[o];
        }
        dh_carry[p * hidden + u] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per weight element (4h * h * 2): any
// gridDim.x (grid-stride), e.g. ceil(8h^2 / PIXELRNN_BLOCK).
// dw(o, v, t, 0) = sum over images and positions (r, j) of h(neighbour_t(r, j), v) *
// d_is(r, j, o), neighbour 0 = (r-1, j) for r >= 1, neighbour 1 = (r, j-1) for j >= 1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_ss_bwd_weight_v1(const float* __restrict__ h, const float* __restrict__ d_is,
                           float* __restrict__ dw, int n, int height, int width, int hidden) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t total = (pixelrnn_index_t)g4 * hidden * 2;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int t = (int)(idx % 2);
        const int v = (int)((idx / 2) % hidden);
        const int o = (int)(idx / (2 * (pixelrnn_index_t)hidden));
        const int r_lo = t == 0 ? 1 : 0;
        const int j_lo = t == 0 ? 0 : 1;
        // Offset (in positions) from a position to the neighbour tap t reads.
        const pixelrnn_index_t back = t == 0 ? width : 1;
        float acc = 0.0f;
        for (int b = 0; b < n; ++b) {
            for (int r = r_lo; r < height; ++r) {
                const pixelrnn_index_t row = ((pixelrnn_index_t)b * height + r) * width;
                // A partial sum per row keeps the float accumulation error from growing
                // with the number of positions.
                float part = 0.0f;
                for (int j = j_lo; j < width; ++j) {
                    const pixelrnn_index_t p = row + j;
                    part += h[(p - back) * hidden + v] * d_is[p * g4 + o];
                }
                acc += part;
            }
        }
        dw[idx] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, u) of anti-diagonal `step`: any
// gridDim.x (grid-stride), e.g. ceil(n * count * h / PIXELRNN_BLOCK).
// Fused forward of one anti-diagonal: state-to-state product, gates and cell update in
// registers. `h` and `c` are read at anti-diagonal step-1 and written at `step`: one pointer.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                      float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates,
                      int n, int height, int width, int hidden, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const pixelrnn_index_t b = q / count;
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const int j = step - r;
        const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + j;
        diag_lstm_unit_fwd(is + p * 4 * hidden, w, h + b * plane * hidden,
                           c + b * plane * hidden, gates + p * 4 * hidden, width, hidden, r, j,
                           u);
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, u) of anti-diagonal `step`: any
// gridDim.x (grid-stride), e.g. ceil(n * count * h / PIXELRNN_BLOCK). Anti-diagonals in
// reverse order.
// Fused backward of one anti-diagonal: dh_tot = dh + the recurrent dh of unit u from the
// consumers below and to the right (2 dot products of length 4h, in registers), then the cell
// backward of lstm_gates_bwd_v1. `d_is` is read at step+1 and written at `step`, `dc_carry`
// read at `step` and written at step-1: one pointer each. The weight gradient follows with
// diag_lstm_ss_bwd_weight_v1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_step_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                      const float* __restrict__ c, const float* __restrict__ dh,
                      float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                      int height, int width, int hidden, int step) {
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const int j = step - r;
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * width + j;
        const pixelrnn_index_t e = p * hidden + u;

        float dh_tot = dh[e];
        for (int t = 0; t < 2; ++t) {
            if (t == 0 ? r + 1 >= height : j + 1 >= width) continue;
            const float* dp = d_is + (t == 0 ? p + width : p + 1) * g4;
            const float* wp = w + (pixelrnn_index_t)u * 2 + t;
            for (int o = 0; o < g4; ++o) dh_tot += wp[(pixelrnn_index_t)o * hidden * 2] * dp[o];
        }

        const float* g = gates + p * g4;
        const float og = g[u];
        const float fg = g[hidden + u];
        const float ig = g[2 * hidden + u];
        const float gg = g[3 * hidden + u];
        const float tc = tanhf(c[e]);
        const float dc = dc_carry[e] + dh_tot * og * (1.0f - tc * tc);
        const float cp = j > 0 ? c[e - hidden] : 0.0f;
        float* d = d_is + p * g4;
        d[u] = dh_tot * tc * og * (1.0f - og);
        d[hidden + u] = dc * cp * fg * (1.0f - fg);
        d[2 * hidden + u] = dc * gg * ig * (1.0f - ig);
        d[3 * hidden + u] = dc * ig * (1.0f - gg * gg);
        if (j > 0) dc_carry[e - hidden] = dc * fg;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, u): any gridDim.x (grid-stride),
// e.g. ceil(n * h / PIXELRNN_BLOCK).
// One position (i, j) of the fused forward for every image (incremental sampling): `is` is
// [n, 4h], the maps h, c hold the pixel above and the pixel to the left; writes h(i, j),
// c(i, j).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_fwd_at_v1(const float* __restrict__ is, const float* __restrict__ w,
                    float* __restrict__ h, float* __restrict__ c, int n, int height, int width,
                    int hidden, int i, int j) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width * hidden;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t b = idx / hidden;
        diag_lstm_unit_fwd(is + b * 4 * hidden, w, h + b * plane, c + b * plane, 0, width,
                           hidden, i, j, u);
    }
}

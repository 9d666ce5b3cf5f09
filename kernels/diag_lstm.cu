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
//       the fused step's arithmetic. Persistent: diag_lstm_persistent_fwd_v1, ONE launch for
//       the whole scan, one block per image looping over the anti-diagonals with a
//       __syncthreads() between them, the state weights staged once in dynamic shared memory
//       (transposed so that consecutive units read consecutive words) when they fit in 48 KiB,
//       else read from global memory; each thread runs the fused step's arithmetic for
//       (position, u) pairs; diag_lstm_persistent_bwd_v1, the same for the backward
//       (anti-diagonals in reverse, the fused backward's arithmetic, weights staged in a layout
//       for the transposed product), then diag_lstm_ss_bwd_weight_v1.
//   v1, materialised layout (op "diag_lstm_layout" = 2; the folded kernels above are layout 1,
//       the default): the same three recurrences over skewed maps [n, H, Ws, *] that the host
//       materialises with skew_fwd_v1 and unskews afterwards (see the section below):
//       diag_lstm_skewed_ss_fwd_v1 + diag_lstm_skewed_gates_fwd_v1 (unfused),
//       diag_lstm_skewed_step_fwd_v1 (fused), diag_lstm_skewed_persistent_fwd_v1; backward
//       diag_lstm_skewed_gates_bwd_v1 + diag_lstm_skewed_ss_bwd_data_v1 (unfused),
//       diag_lstm_skewed_step_bwd_v1 (fused), diag_lstm_skewed_persistent_bwd_v1, each followed
//       (after the unskew of d_is) by diag_lstm_ss_bwd_weight_v1.
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

// Strides of the state weight's element (x, u, v, t) (gate block x, unit u, input unit v, tap
// t), as laid out in global memory ([4h, h, 2, 1]: ((x*h + u)*h + v)*2 + t) and as staged in
// shared memory by the persistent kernel ([2, h, 4, h]: ((t*h + v)*4 + x)*h + u, so that
// consecutive units, the lanes of a warp, read consecutive words: no bank conflicts).
#define DIAG_LSTM_W_GLOBAL(hidden) (hidden) * (hidden) * 2, (hidden) * 2, 2, 1
#define DIAG_LSTM_W_STAGED(hidden) (hidden), 1, 4 * (hidden), 4 * (hidden) * (hidden)

// Gates, cell and hidden state of unit u of position (r, j) of one image: `pre_in` points at
// the position's 4h input-to-state pre-activations, `h_img`/`c_img` at the image's maps (the
// pixel above and the pixel to the left complete), `w` at the state weight with element
// (x, u, v, t) at x*sx + u*su + v*sv + t*st (DIAG_LSTM_W_GLOBAL or DIAG_LSTM_W_STAGED; 8h*h
// fits in int, the host checks). Writes the activated gates to `gates_out` (4 entries h apart)
// when not null. Same arithmetic as lstm_gates_fwd_v1 (lstm.cu) after the state-to-state
// product; the fused, persistent and one-position kernels all call this, so they agree bit
// for bit.
PIXELRNN_DEVICE void diag_lstm_unit_fwd(const float* pre_in, const float* w, int sx, int su,
                                        int sv, int st, float* h_img, float* c_img,
                                        float* gates_out, int width, int hidden, int r, int j,
                                        int u) {
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
                pre[x] += w[x * sx + u * su + v * sv + t * st] * hv;
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

// Strides of the state weight's element (o, u, t) (gate row o < 4h, input unit u, tap t) for
// the backward, which sums over o for a fixed (u, t): in global memory (o*2h + u*2 + t) and as
// staged by the persistent backward ([2, 4h, h]: (t*4h + o)*h + u, consecutive units in
// consecutive words).
#define DIAG_LSTM_WT_GLOBAL(hidden) 2 * (hidden), 2, 1
#define DIAG_LSTM_WT_STAGED(hidden) (hidden), 1, 4 * (hidden) * (hidden)

// Backward of unit u of position (r, j) (flat position p = (b*H + r)*W + j): dh_tot = dh + the
// recurrent dh from the consumers below (r+1, j) and to the right (r, j+1) (2 dot products of
// length 4h, in registers, the weight (o, u, t) at o*so + u*su + t*st), then the cell backward
// of lstm_gates_bwd_v1. Reads d_is at anti-diagonal r+j+1 and dc_carry at (r, j); writes d_is
// at (r, j) and dc_carry at (r, j-1). The fused and the persistent backward both call this, so
// they agree bit for bit.
PIXELRNN_DEVICE void diag_lstm_unit_bwd(const float* w, int so, int su, int st,
                                        const float* gates, const float* c, const float* dh,
                                        float* dc_carry, float* d_is, int height, int width,
                                        int hidden, pixelrnn_index_t p, int r, int j, int u) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t e = p * hidden + u;
    float dh_tot = dh[e];
    for (int t = 0; t < 2; ++t) {
        if (t == 0 ? r + 1 >= height : j + 1 >= width) continue;
        const float* dp = d_is + (t == 0 ? p + width : p + 1) * g4;
        const float* wp = w + u * su + t * st;
        for (int o = 0; o < g4; ++o) dh_tot += wp[o * so] * dp[o];
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
        diag_lstm_unit_fwd(is + p * 4 * hidden, w, DIAG_LSTM_W_GLOBAL(hidden),
                           h + b * plane * hidden, c + b * plane * hidden,
                           gates + p * 4 * hidden, width, hidden, r, j, u);
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
        diag_lstm_unit_bwd(w, DIAG_LSTM_WT_GLOBAL(hidden), gates, c, dh, dc_carry, d_is,
                           height, width, hidden, p, r, j, u);
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
        diag_lstm_unit_fwd(is + b * 4 * hidden, w, DIAG_LSTM_W_GLOBAL(hidden), h + b * plane,
                           c + b * plane, 0, width, hidden, i, j, u);
    }
}

// Launch: gridDim.x = n (one block per image; a smaller grid also works: blocks loop over the
// images), blockDim.x a multiple of 32 up to 1024 (the host takes min(H, W)*h, the most pairs
// of an anti-diagonal, rounded up to a warp, at most 1024; threads loop over the (position, u)
// pairs of each anti-diagonal), dynamic shared memory 8h*h floats when `staged` != 0, none
// otherwise.
// __launch_bounds__(1024, 1): one block per SM is all a persistent kernel asks for, and the
// stated minimum lets ptxas use 64 registers (see row_lstm_persistent_fwd_v1).
// Persistent forward of the whole scan: a block owns every unit of its image, so the
// anti-diagonals are ordered by __syncthreads() alone. `staged` != 0: the state weights are
// copied once into shared memory (DIAG_LSTM_W_STAGED layout) and stay there for all steps; 0:
// they are read from global memory (DIAG_LSTM_W_GLOBAL), for weights over 48 KiB. h, c and
// the activated gates are written exactly as by diag_lstm_step_fwd_v1, so the fused backward
// applies.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_persistent_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                            float* __restrict__ h, float* __restrict__ c,
                            float* __restrict__ gates, int n, int height, int width,
                            int hidden, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    const int g4 = 4 * hidden;
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, 2, false);
    }
    __syncthreads();  // the staged weights are complete before any step reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    const int steps = height + width - 1;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        float* h_img = h + b * plane * hidden;
        float* c_img = c + b * plane * hidden;
        for (int s = 0; s < steps; ++s) {
            const int pairs = diag_lstm_count(s, height, width) * hidden;
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int r = diag_lstm_row(s, q / hidden, width);
                const int j = s - r;
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + j;
                // Two calls rather than one through a pointer chosen at run time: each inlined
                // copy knows its address space (shared loads, constant strides).
                if (staged) {
                    diag_lstm_unit_fwd(is + p * g4, w_s, DIAG_LSTM_W_STAGED(hidden), h_img,
                                       c_img, gates + p * g4, width, hidden, r, j, u);
                } else {
                    diag_lstm_unit_fwd(is + p * g4, w, DIAG_LSTM_W_GLOBAL(hidden), h_img,
                                       c_img, gates + p * g4, width, hidden, r, j, u);
                }
            }
            // Anti-diagonal s is complete (h and c, in global memory) before s+1 reads it.
            __syncthreads();
        }
    }
}

// Launch: as diag_lstm_persistent_fwd_v1 (gridDim.x = n, blockDim.x a multiple of 32 up to
// 1024, 8h*h floats of dynamic shared memory when `staged` != 0). dc_carry zeroed.
// Persistent backward of the whole scan: one block per image walks the anti-diagonals in
// reverse with a __syncthreads() between them, each thread taking (position, u) pairs with
// the fused backward's arithmetic (diag_lstm_unit_bwd); `staged` != 0: the weights are copied
// once into shared memory (DIAG_LSTM_WT_STAGED layout), 0: read from global memory. Writes
// every d_is; the weight gradient follows with diag_lstm_ss_bwd_weight_v1.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_persistent_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                            const float* __restrict__ c, const float* __restrict__ dh,
                            float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                            int height, int width, int hidden, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, 2, true);
    }
    __syncthreads();  // the staged weights are complete before any step reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        for (int s = height + width - 2; s >= 0; --s) {
            const int pairs = diag_lstm_count(s, height, width) * hidden;
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int r = diag_lstm_row(s, q / hidden, width);
                const int j = s - r;
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + j;
                if (staged) {
                    diag_lstm_unit_bwd(w_s, DIAG_LSTM_WT_STAGED(hidden), gates, c, dh, dc_carry,
                                       d_is, height, width, hidden, p, r, j, u);
                } else {
                    diag_lstm_unit_bwd(w, DIAG_LSTM_WT_GLOBAL(hidden), gates, c, dh, dc_carry,
                                       d_is, height, width, hidden, p, r, j, u);
                }
            }
            // Anti-diagonal s's d_is and the cell gradients it hands back are complete before
            // s-1 reads them.
            __syncthreads();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Materialised layout (op "diag_lstm_layout" = 2, the comparison variant): the paper's literal
// formulation. The host skews `is` to [n, H, Ws, 4h] (skew_fwd_v1, Ws = max(2W-1, H+W-1)), runs
// these kernels over the skewed maps h_s, c_s [n, H, Ws, h] and gates_s [n, H, Ws, 4h], then
// unskews h, c and the gates; the backward skews gates, c and dh, scans, and unskews d_is.
// Step t is skewed column t: its positions are the same rows as anti-diagonal t
// (diag_lstm_count / diag_lstm_row), at skewed (r, t) with image column j = t - r, flat
// position p = (b*H + r)*Ws + t. The state-to-state 2x1 convolution reads (r-1, t-1) and
// (r, t-1), the cell continues (r, t-1). The skew's padding holds h = c = 0 (the host clears
// h_s, c_s; no kernel writes a padding position), and d_is_s = 0 there (cleared likewise), so
// the padding replaces the folded kernels' column bounds checks: at j = 0 the left tap and the
// cell read zeros, at j = W-1 the right consumer's dpre reads zeros. Only the rows outside the
// map (r-1 < 0, r+1 >= H) and the columns outside it (t-1 < 0, t+1 >= Ws) are still checked.
// A padding tap adds w * 0 = +-0 to the sum, so the results equal the folded kernels' up to
// the compiler's choice of contractions.

// The skewed twin of diag_lstm_unit_fwd (same weight strides, same summation order): unit u
// of skewed position (r, t) of one image, `h_img`/`c_img` the image's skewed maps.
PIXELRNN_DEVICE void diag_lstm_skewed_unit_fwd(const float* pre_in, const float* w, int sx,
                                               int su, int sv, int st, float* h_img,
                                               float* c_img, float* gates_out, int skewed,
                                               int hidden, int r, int t, int u) {
    float pre[4];
#pragma unroll
    for (int x = 0; x < 4; ++x) pre[x] = pre_in[x * hidden + u];
    const pixelrnn_index_t e = ((pixelrnn_index_t)r * skewed + t) * hidden + u;
    // Column 0 holds (0, 0) alone: no previous column.
    if (t > 0) {
        for (int tap = 0; tap < 2; ++tap) {
            if (tap == 0 && r == 0) continue;  // no row above the map
            const pixelrnn_index_t src =
                tap == 0 ? e - (pixelrnn_index_t)(skewed + 1) * hidden : e - hidden;
            const float* hp = h_img + (src - u);
            for (int v = 0; v < hidden; ++v) {
                const float hv = hp[v];
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    pre[x] += w[x * sx + u * su + v * sv + tap * st] * hv;
                }
            }
        }
    }
    const float og = pixelrnn_sigmoid(pre[0]);
    const float fg = pixelrnn_sigmoid(pre[1]);
    const float ig = pixelrnn_sigmoid(pre[2]);
    const float gg = tanhf(pre[3]);
    const float cp = t > 0 ? c_img[e - hidden] : 0.0f;  // padding (zero) at j = 0
    const float cu = fg * cp + ig * gg;
    gates_out[u] = og;
    gates_out[hidden + u] = fg;
    gates_out[2 * hidden + u] = ig;
    gates_out[3 * hidden + u] = gg;
    c_img[e] = cu;
    h_img[e] = og * tanhf(cu);
}

// The skewed twin of diag_lstm_unit_bwd: unit u of skewed position (r, t), flat p. The
// consumers are (r+1, t+1) (below) and (r, t+1) (right; padding, so zero dpre, at j = W-1).
PIXELRNN_DEVICE void diag_lstm_skewed_unit_bwd(const float* w, int so, int su, int st,
                                               const float* gates, const float* c,
                                               const float* dh, float* dc_carry, float* d_is,
                                               int height, int skewed, int hidden,
                                               pixelrnn_index_t p, int r, int t, int u) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t e = p * hidden + u;
    float dh_tot = dh[e];
    for (int tap = 0; tap < 2; ++tap) {
        if (tap == 0 ? r + 1 >= height : t + 1 >= skewed) continue;
        const float* dp = d_is + (tap == 0 ? p + skewed + 1 : p + 1) * g4;
        const float* wp = w + u * su + tap * st;
        for (int o = 0; o < g4; ++o) dh_tot += wp[o * so] * dp[o];
    }

    const float* g = gates + p * g4;
    const float og = g[u];
    const float fg = g[hidden + u];
    const float ig = g[2 * hidden + u];
    const float gg = g[3 * hidden + u];
    const float tc = tanhf(c[e]);
    const float dc = dc_carry[e] + dh_tot * og * (1.0f - tc * tc);
    const float cp = t > 0 ? c[e - hidden] : 0.0f;  // padding (zero) at j = 0
    float* d = d_is + p * g4;
    d[u] = dh_tot * tc * og * (1.0f - og);
    d[hidden + u] = dc * cp * fg * (1.0f - fg);
    d[2 * hidden + u] = dc * gg * ig * (1.0f - ig);
    d[3 * hidden + u] = dc * ig * (1.0f - gg * gg);
    // The cell at j = 0 continues none: keep the padding untouched.
    if (t - r > 0) dc_carry[e - hidden] = dc * fg;
}

// Launch: as diag_lstm_ss_fwd_v1 (one thread per (b, k, o) of skewed column `step`).
// Unfused forward on the skewed maps, first half: pre = is_s + w_ss * [h_s(r-1, t-1);
// h_s(r, t-1)] into gates_s.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_ss_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                           const float* __restrict__ h, float* __restrict__ gates, int n,
                           int height, int width, int hidden, int skewed, int step) {
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * g4;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int o = (int)(idx % g4);
        const pixelrnn_index_t q = idx / g4;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * skewed + step;
        float acc = is[p * g4 + o];
        if (step > 0) {
            for (int tap = 0; tap < 2; ++tap) {
                if (tap == 0 && r == 0) continue;
                const float* hp = h + (tap == 0 ? p - skewed - 1 : p - 1) * hidden;
                const float* wp = w + (pixelrnn_index_t)o * hidden * 2 + tap;
                for (int v = 0; v < hidden; ++v) acc += wp[2 * v] * hp[v];
            }
        }
        gates[p * g4 + o] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, u) of skewed column `step`: any
// gridDim.x (grid-stride), e.g. ceil(n * count * h / PIXELRNN_BLOCK).
// Unfused forward, second half: lstm_gates_fwd_v1's update at the skewed positions, the cell
// continuing (r, t-1) (zero padding at j = 0). `c` is read at column step-1 and written at
// `step`: one pointer.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_gates_fwd_v1(float* __restrict__ gates, float* __restrict__ c,
                              float* __restrict__ h, int n, int height, int width, int hidden,
                              int skewed, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * skewed + step;
        const pixelrnn_index_t e = p * hidden + u;

        float* g = gates + p * 4 * hidden;
        const float og = pixelrnn_sigmoid(g[u]);
        const float fg = pixelrnn_sigmoid(g[hidden + u]);
        const float ig = pixelrnn_sigmoid(g[2 * hidden + u]);
        const float gg = tanhf(g[3 * hidden + u]);
        const float cp = step > 0 ? c[e - hidden] : 0.0f;
        const float cu = fg * cp + ig * gg;
        g[u] = og;
        g[hidden + u] = fg;
        g[2 * hidden + u] = ig;
        g[3 * hidden + u] = gg;
        c[e] = cu;
        h[e] = og * tanhf(cu);
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
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * skewed + step;

        const float* g = gates + p * 4 * hidden;
        const float og = g[u];
        const float fg = g[hidden + u];
        const float ig = g[2 * hidden + u];
        const float gg = g[3 * hidden + u];
        const pixelrnn_index_t e = p * hidden + u;
        const float dh_tot = dh[e] + dh_carry[e];
        const float tc = tanhf(c[e]);
        const float dc = dc_carry[e] + dh_tot * og * (1.0f - tc * tc);
        const float cp = step > 0 ? c[e - hidden] : 0.0f;
        float* d = d_is + p * 4 * hidden;
        d[u] = dh_tot * tc * og * (1.0f - og);
        d[hidden + u] = dc * cp * fg * (1.0f - fg);
        d[2 * hidden + u] = dc * gg * ig * (1.0f - ig);
        d[3 * hidden + u] = dc * ig * (1.0f - gg * gg);
        if (step - r > 0) dc_carry[e - hidden] = dc * fg;
    }
}

// Launch: as diag_lstm_ss_bwd_data_v1 (one thread per (b, k, u) of skewed column `step`),
// called for step = t-1 after diag_lstm_skewed_gates_bwd_v1 of column t.
// Unfused backward, second half: dh_carry(r, t) = w_ss[:, :, 0]^T d_is_s(r+1, t+1) +
// w_ss[:, :, 1]^T d_is_s(r, t+1), the right consumer being padding (zero) at j = W-1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_ss_bwd_data_v1(const float* __restrict__ w, const float* __restrict__ d_is,
                                float* __restrict__ dh_carry, int n, int height, int width,
                                int hidden, int skewed, int step) {
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * skewed + step;
        float acc = 0.0f;
        for (int tap = 0; tap < 2; ++tap) {
            if (tap == 0 ? r + 1 >= height : step + 1 >= skewed) continue;
            const float* dp = d_is + (tap == 0 ? p + skewed + 1 : p + 1) * g4;
            const float* wp = w + (pixelrnn_index_t)u * 2 + tap;
            for (int o = 0; o < g4; ++o) acc += wp[(pixelrnn_index_t)o * hidden * 2] * dp[o];
        }
        dh_carry[p * hidden + u] = acc;
    }
}

// Launch: as diag_lstm_step_fwd_v1 (one thread per (b, k, u) of skewed column `step`).
// Fused forward of one skewed column (diag_lstm_skewed_unit_fwd): `h`, `c` read at column
// step-1 and written at `step`: one pointer.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_step_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                             float* __restrict__ h, float* __restrict__ c,
                             float* __restrict__ gates, int n, int height, int width,
                             int hidden, int skewed, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * skewed;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const pixelrnn_index_t b = q / count;
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * skewed + step;
        diag_lstm_skewed_unit_fwd(is + p * 4 * hidden, w, DIAG_LSTM_W_GLOBAL(hidden),
                                  h + b * plane * hidden, c + b * plane * hidden,
                                  gates + p * 4 * hidden, skewed, hidden, r, step, u);
    }
}

// Launch: as diag_lstm_step_bwd_v1 (one thread per (b, k, u) of skewed column `step`, columns
// in reverse). d_is cleared by the host (its padding is read as zero dpre).
// Fused backward of one skewed column (diag_lstm_skewed_unit_bwd).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_skewed_step_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                             const float* __restrict__ c, const float* __restrict__ dh,
                             float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                             int height, int width, int hidden, int skewed, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / count);
        const int r = diag_lstm_row(step, (int)(q % count), width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + r) * skewed + step;
        diag_lstm_skewed_unit_bwd(w, DIAG_LSTM_WT_GLOBAL(hidden), gates, c, dh, dc_carry, d_is,
                                  height, skewed, hidden, p, r, step, u);
    }
}

// Launch: as diag_lstm_persistent_fwd_v1 (gridDim.x = n, blockDim.x a multiple of 32 up to
// 1024, 8h*h floats of dynamic shared memory when `staged` != 0).
// Persistent forward on the skewed maps: one block per image over the columns 0 .. H+W-2
// (the columns past H+W-2, when W > H, are all padding), diag_lstm_skewed_unit_fwd.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_skewed_persistent_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                                   float* __restrict__ h, float* __restrict__ c,
                                   float* __restrict__ gates, int n, int height, int width,
                                   int hidden, int skewed, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    const int g4 = 4 * hidden;
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, 2, false);
    }
    __syncthreads();  // the staged weights are complete before any step reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * skewed;
    const int steps = height + width - 1;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        float* h_img = h + b * plane * hidden;
        float* c_img = c + b * plane * hidden;
        for (int s = 0; s < steps; ++s) {
            const int pairs = diag_lstm_count(s, height, width) * hidden;
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int r = diag_lstm_row(s, q / hidden, width);
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * skewed + s;
                if (staged) {
                    diag_lstm_skewed_unit_fwd(is + p * g4, w_s, DIAG_LSTM_W_STAGED(hidden),
                                              h_img, c_img, gates + p * g4, skewed, hidden, r,
                                              s, u);
                } else {
                    diag_lstm_skewed_unit_fwd(is + p * g4, w, DIAG_LSTM_W_GLOBAL(hidden), h_img,
                                              c_img, gates + p * g4, skewed, hidden, r, s, u);
                }
            }
            // Column s is complete before s+1 reads it.
            __syncthreads();
        }
    }
}

// Launch: as diag_lstm_persistent_bwd_v1. d_is and dc_carry cleared by the host.
// Persistent backward on the skewed maps: one block per image over the columns in reverse,
// diag_lstm_skewed_unit_bwd.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_skewed_persistent_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                                   const float* __restrict__ c, const float* __restrict__ dh,
                                   float* __restrict__ dc_carry, float* __restrict__ d_is,
                                   int n, int height, int width, int hidden, int skewed,
                                   int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, 2, true);
    }
    __syncthreads();  // the staged weights are complete before any step reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * skewed;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        for (int s = height + width - 2; s >= 0; --s) {
            const int pairs = diag_lstm_count(s, height, width) * hidden;
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int r = diag_lstm_row(s, q / hidden, width);
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * skewed + s;
                if (staged) {
                    diag_lstm_skewed_unit_bwd(w_s, DIAG_LSTM_WT_STAGED(hidden), gates, c, dh,
                                              dc_carry, d_is, height, skewed, hidden, p, r, s,
                                              u);
                } else {
                    diag_lstm_skewed_unit_bwd(w, DIAG_LSTM_WT_GLOBAL(hidden), gates, c, dh,
                                              dc_carry, d_is, height, skewed, hidden, p, r, s,
                                              u);
                }
            }
            // Column s's d_is and the cell gradients it hands back are complete before s-1
            // reads them.
            __syncthreads();
        }
    }
}

// diag_lstm.cuh: the device code of the Diagonal LSTM scan that its kernel files share
// (diag_lstm.cu, diag_lstm_skewed.cu, diag_lstm_v2.cuh): the anti-diagonals' geometry, the two
// layouts' map positions, the unit functions (forward and backward of one (position, unit),
// the arithmetic every v1, persistent v1 and one-position kernel runs) and the v1 bodies.
// Semantics, versions and layout: kernels/diag_lstm.cu.
#pragma once

#include "common.cuh"
#include "mma.cuh"

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

// The two layouts of the scan's maps, one set of unit functions for both. Pixel (r, j) of an
// image sits at map position r*stride + j + skew*r:
// - folded (layout 1): the image's own [H, W] maps, stride = W, skew = 0;
// - materialised (layout 2): the skewed [H, Ws] maps, stride = Ws, skew = 1 (skewed column
//   t = r + j).
// In both, the pixel above (r-1, j) is stride + skew positions back, the pixel to the left
// (r, j-1) one position back, and a tap or a consumer outside the image (the skew's zero
// padding) is skipped: adding w * 0 would change nothing, so both layouts compute the same
// numbers, and the materialised maps' padding is never read.
PIXELRNN_DEVICE pixelrnn_index_t diag_lstm_pos(int r, int j, int stride, int skew) {
    return (pixelrnn_index_t)r * stride + j + skew * r;
}

// Strides of the state weight's element (x, u, v, t) (gate block x, unit u, input unit v, tap
// t), as laid out in global memory ([4h, h, 2, 1]: ((x*h + u)*h + v)*2 + t) and as staged in
// shared memory by the persistent kernel ([2, h, 4, h]: ((t*h + v)*4 + x)*h + u, so that
// consecutive units, the lanes of a warp, read consecutive words: no bank conflicts).
#define DIAG_LSTM_W_GLOBAL(hidden) (hidden) * (hidden) * 2, (hidden) * 2, 2, 1
#define DIAG_LSTM_W_STAGED(hidden) (hidden), 1, 4 * (hidden), 4 * (hidden) * (hidden)

// Gates, cell and hidden state of unit u of pixel (r, j) of one image: `pre_in` points at the
// position's 4h input-to-state pre-activations, `h_img`/`c_img` at the image's maps (layout
// `stride`, `skew`; the pixel above and the pixel to the left complete), `w` at the state
// weight with element (x, u, v, t) at x*sx + u*su + v*sv + t*st (DIAG_LSTM_W_GLOBAL or
// DIAG_LSTM_W_STAGED; 8h*h fits in int, the host checks). Writes the activated gates to
// `gates_out` (4 entries h apart) when not null. The fused, persistent and one-position
// kernels of both layouts all call this, so they agree bit for bit.
// P (mma.cuh's PIXELRNN_ROUND_*): both operands of the state-to-state product are rounded to P
// as they are loaded (pixelrnn_round_as), the FMAs stay fp32: the CPU twin's tf32 / bf16
// arithmetic (cpu/lstm_at.rs forward_at_precision) up to the order of the fp32 additions.
// The default, PIXELRNN_ROUND_FP32, rounds nothing (the fp32 kernels' code is unchanged).
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_unit_fwd(const float* pre_in, const float* w, int sx, int su,
                                        int sv, int st, float* h_img, float* c_img,
                                        float* gates_out, int stride, int skew, int hidden,
                                        int r, int j, int u) {
    float pre[4];
#pragma unroll
    for (int x = 0; x < 4; ++x) pre[x] = pre_in[x * hidden + u];
    const pixelrnn_index_t e = diag_lstm_pos(r, j, stride, skew) * hidden + u;
    for (int t = 0; t < 2; ++t) {
        if (t == 0 ? r == 0 : j == 0) continue;  // the skew's zero padding
        const pixelrnn_index_t src =
            t == 0 ? e - (pixelrnn_index_t)(stride + skew) * hidden : e - hidden;
        const float* hp = h_img + (src - u);
        for (int v = 0; v < hidden; ++v) {
            const float hv = pixelrnn_round_as<P>(hp[v]);
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                pre[x] += pixelrnn_round_as<P>(w[x * sx + u * su + v * sv + t * st]) * hv;
            }
        }
    }
    const float cp = j > 0 ? c_img[e - hidden] : 0.0f;
    pixelrnn_lstm_cell_fwd(pre[0], pre[1], pre[2], pre[3], cp,
                           gates_out != 0 ? gates_out + u : 0, hidden, &c_img[e], &h_img[e]);
}

// Strides of the state weight's element (o, u, t) (gate row o < 4h, input unit u, tap t) for
// the backward, which sums over o for a fixed (u, t): in global memory (o*2h + u*2 + t) and as
// staged by the persistent backward ([2, 4h, h]: (t*4h + o)*h + u, consecutive units in
// consecutive words).
#define DIAG_LSTM_WT_GLOBAL(hidden) 2 * (hidden), 2, 1
#define DIAG_LSTM_WT_STAGED(hidden) (hidden), 1, 4 * (hidden) * (hidden)

// The recurrent part of dh of unit u at map position p (pixel (r, j)): the 2x1 convolution's
// transpose, w_ss[:, :, 0]^T d_is(r+1, j) + w_ss[:, :, 1]^T d_is(r, j+1) (its two consumers,
// both on the next anti-diagonal), the weight (o, u, t) at o*so + u*su + t*st.
PIXELRNN_DEVICE float diag_lstm_dh_carry(const float* w, int so, int su, int st,
                                         const float* d_is, int height, int width, int stride,
                                         int skew, int hidden, pixelrnn_index_t p, int r, int j,
                                         int u) {
    const int g4 = 4 * hidden;
    float acc = 0.0f;
    for (int t = 0; t < 2; ++t) {
        if (t == 0 ? r + 1 >= height : j + 1 >= width) continue;
        const float* dp = d_is + (t == 0 ? p + stride + skew : p + 1) * g4;
        const float* wp = w + u * su + t * st;
        for (int o = 0; o < g4; ++o) acc += wp[o * so] * dp[o];
    }
    return acc;
}

// Backward of unit u of pixel (r, j) at map position p (the image's first position at
// p - diag_lstm_pos(r, j, ..)): dh_tot = dh + diag_lstm_dh_carry (in registers), then the cell
// backward. Reads d_is at anti-diagonal r+j+1 and dc_carry at (r, j); writes d_is at (r, j)
// and dc_carry at (r, j-1). The fused and the persistent backward of both layouts call this,
// so they agree bit for bit.
PIXELRNN_DEVICE void diag_lstm_unit_bwd(const float* w, int so, int su, int st,
                                        const float* gates, const float* c, const float* dh,
                                        float* dc_carry, float* d_is, int height, int width,
                                        int stride, int skew, int hidden, pixelrnn_index_t p,
                                        int r, int j, int u) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t e = p * hidden + u;
    const float dh_tot = dh[e] + diag_lstm_dh_carry(w, so, su, st, d_is, height, width, stride,
                                                    skew, hidden, p, r, j, u);
    const float cp = j > 0 ? c[e - hidden] : 0.0f;
    const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + u, hidden, c[e], cp, dh_tot,
                                                 dc_carry[e], d_is + p * g4 + u);
    if (j > 0) dc_carry[e - hidden] = dc_prev;
}

// The bodies of the entry points below, written once for both layouts (`stride`, `skew`).

// Pixel (r, j), image b and map position p of the q-th (b, k) pair of anti-diagonal `step`
// (q = b*count + k): the grid-stride loops' decoding.
PIXELRNN_DEVICE pixelrnn_index_t diag_lstm_step_pixel(pixelrnn_index_t q, int count, int step,
                                                      int height, int width, int stride,
                                                      int skew, int* b, int* r, int* j) {
    *b = (int)(q / count);
    *r = diag_lstm_row(step, (int)(q % count), width);
    *j = step - *r;
    return (pixelrnn_index_t)*b * height * stride + diag_lstm_pos(*r, *j, stride, skew);
}

// Unfused forward, first half, of anti-diagonal `step`: pre = is + w_ss * [h above; h left],
// one thread per (b, k, o), into the gates map.
PIXELRNN_DEVICE void diag_lstm_ss_fwd_body(const float* is, const float* w, const float* h,
                                           float* gates, int n, int height, int width,
                                           int hidden, int stride, int skew, int step) {
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * g4;
    const pixelrnn_index_t grid = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += grid) {
        const int o = (int)(idx % g4);
        int b, r, j;
        const pixelrnn_index_t p =
            diag_lstm_step_pixel(idx / g4, count, step, height, width, stride, skew, &b, &r, &j);
        float acc = is[p * g4 + o];
        for (int t = 0; t < 2; ++t) {
            if (t == 0 ? r == 0 : j == 0) continue;
            const float* hp = h + (t == 0 ? p - stride - skew : p - 1) * hidden;
            const float* wp = w + (pixelrnn_index_t)o * hidden * 2 + t;
            for (int v = 0; v < hidden; ++v) acc += wp[2 * v] * hp[v];
        }
        gates[p * g4 + o] = acc;
    }
}

// Unfused backward, second half, of anti-diagonal `step`: dh_carry of every unit, one thread
// per (b, k, u), no atomics.
PIXELRNN_DEVICE void diag_lstm_ss_bwd_data_body(const float* w, const float* d_is,
                                                float* dh_carry, int n, int height, int width,
                                                int hidden, int stride, int skew, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t grid = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += grid) {
        const int u = (int)(idx % hidden);
        int b, r, j;
        const pixelrnn_index_t p = diag_lstm_step_pixel(idx / hidden, count, step, height, width,
                                                        stride, skew, &b, &r, &j);
        dh_carry[p * hidden + u] = diag_lstm_dh_carry(w, DIAG_LSTM_WT_GLOBAL(hidden), d_is,
                                                      height, width, stride, skew, hidden, p,
                                                      r, j, u);
    }
}

// Fused forward of anti-diagonal `step`, one thread per (b, k, u).
PIXELRNN_DEVICE void diag_lstm_step_fwd_body(const float* is, const float* w, float* h,
                                             float* c, float* gates, int n, int height,
                                             int width, int hidden, int stride, int skew,
                                             int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t grid = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * stride;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += grid) {
        const int u = (int)(idx % hidden);
        int b, r, j;
        const pixelrnn_index_t p = diag_lstm_step_pixel(idx / hidden, count, step, height, width,
                                                        stride, skew, &b, &r, &j);
        diag_lstm_unit_fwd(is + p * 4 * hidden, w, DIAG_LSTM_W_GLOBAL(hidden),
                           h + b * plane * hidden, c + b * plane * hidden,
                           gates + p * 4 * hidden, stride, skew, hidden, r, j, u);
    }
}

// Fused backward of anti-diagonal `step`, one thread per (b, k, u).
PIXELRNN_DEVICE void diag_lstm_step_bwd_body(const float* w, const float* gates, const float* c,
                                             const float* dh, float* dc_carry, float* d_is,
                                             int n, int height, int width, int hidden,
                                             int stride, int skew, int step) {
    const int count = diag_lstm_count(step, height, width);
    const pixelrnn_index_t total = (pixelrnn_index_t)n * count * hidden;
    const pixelrnn_index_t grid = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += grid) {
        const int u = (int)(idx % hidden);
        int b, r, j;
        const pixelrnn_index_t p = diag_lstm_step_pixel(idx / hidden, count, step, height, width,
                                                        stride, skew, &b, &r, &j);
        diag_lstm_unit_bwd(w, DIAG_LSTM_WT_GLOBAL(hidden), gates, c, dh, dc_carry, d_is, height,
                           width, stride, skew, hidden, p, r, j, u);
    }
}

// Persistent forward of the whole scan: a block owns every unit of its image, so the
// anti-diagonals are ordered by __syncthreads() alone. `staged` != 0: the state weights are
// copied once into shared memory `w_s` (DIAG_LSTM_W_STAGED layout) and stay there for all
// steps; 0: they are read from global memory (DIAG_LSTM_W_GLOBAL), for weights over 48 KiB.
PIXELRNN_DEVICE void diag_lstm_persistent_fwd_body(const float* is, const float* w, float* w_s,
                                                   float* h, float* c, float* gates, int n,
                                                   int height, int width, int hidden,
                                                   int stride, int skew, int staged) {
    const int g4 = 4 * hidden;
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, 2, false);
    }
    __syncthreads();  // the staged weights are complete before any step reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * stride;
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
                const pixelrnn_index_t p = b * plane + diag_lstm_pos(r, j, stride, skew);
                // Two calls rather than one through a pointer chosen at run time: each inlined
                // copy knows its address space (shared loads, constant strides).
                if (staged) {
                    diag_lstm_unit_fwd(is + p * g4, w_s, DIAG_LSTM_W_STAGED(hidden), h_img,
                                       c_img, gates + p * g4, stride, skew, hidden, r, j, u);
                } else {
                    diag_lstm_unit_fwd(is + p * g4, w, DIAG_LSTM_W_GLOBAL(hidden), h_img,
                                       c_img, gates + p * g4, stride, skew, hidden, r, j, u);
                }
            }
            // Anti-diagonal s is complete (h and c, in global memory) before s+1 reads it.
            __syncthreads();
        }
    }
}

// Persistent backward of the whole scan: one block per image walks the anti-diagonals in
// reverse with a __syncthreads() between them, each thread taking (position, u) pairs with
// the fused backward's arithmetic; `staged` != 0: the weights are copied once into shared
// memory `w_s` (DIAG_LSTM_WT_STAGED layout), 0: read from global memory.
PIXELRNN_DEVICE void diag_lstm_persistent_bwd_body(const float* w, float* w_s,
                                                   const float* gates, const float* c,
                                                   const float* dh, float* dc_carry,
                                                   float* d_is, int n, int height, int width,
                                                   int hidden, int stride, int skew,
                                                   int staged) {
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, 2, true);
    }
    __syncthreads();  // the staged weights are complete before any step reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * stride;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        for (int s = height + width - 2; s >= 0; --s) {
            const int pairs = diag_lstm_count(s, height, width) * hidden;
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int r = diag_lstm_row(s, q / hidden, width);
                const int j = s - r;
                const pixelrnn_index_t p = b * plane + diag_lstm_pos(r, j, stride, skew);
                if (staged) {
                    diag_lstm_unit_bwd(w_s, DIAG_LSTM_WT_STAGED(hidden), gates, c, dh, dc_carry,
                                       d_is, height, width, stride, skew, hidden, p, r, j, u);
                } else {
                    diag_lstm_unit_bwd(w, DIAG_LSTM_WT_GLOBAL(hidden), gates, c, dh, dc_carry,
                                       d_is, height, width, stride, skew, hidden, p, r, j, u);
                }
            }
            // Anti-diagonal s's d_is and the cell gradients it hands back are complete before
            // s-1 reads them.
            __syncthreads();
        }
    }
}


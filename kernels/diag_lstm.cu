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
//   v2: the state weight packed once per call (lstm_pack_ss_v2, lstm.cu)
//       into unit-contiguous layouts, and register tiles: a block of 128 threads computes 16
//       consecutive positions of one image's anti-diagonal x 32 units (a warp = 32
//       consecutive units, 4 positions per thread) for all four gates. The inputs of one tap
//       (h of the pixels above / to the left, or d_is of the consumers below / to the right,
//       128 features at a time) are staged in shared memory with coalesced loads (one
//       position's features per row) and read as broadcasts; each packed weight word serves 4
//       positions. Summation order per element as v1. diag_lstm_step_fwd_v2,
//       diag_lstm_step_bwd_v2 (fused), diag_lstm_ss_fwd_v2, diag_lstm_ss_bwd_data_v2
//       (unfused, with lstm_gates_*_v1); the weight gradient is lstm_ss_bwd_weight_v2
//       (lstm.cu). Materialised layout: diag_lstm_skewed_{step_fwd,step_bwd,ss_fwd,
//       ss_bwd_data}_v2, the same bodies over the skewed maps. The persistent, the skewed gate
//       and the one-position kernels: v1 only.
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
            const float hv = hp[v];
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                pre[x] += w[x * sx + u * su + v * sv + t * st] * hv;
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

// ---------------------------------------------------------------------------------------------
// Folded layout (op "diag_lstm_layout" = 1, the default): the image's own maps, no skewed map.

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, k, o) of anti-diagonal `step`
// (o < 4h): any gridDim.x (grid-stride), e.g. ceil(n * count * 4h / PIXELRNN_BLOCK).
// Unfused forward, first half: the pre-activation is + w_ss * [h above; h left] of every
// position of the anti-diagonal, written into the gates map (lstm_gates_fwd_v1 activates it).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_ss_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                    const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                    int width, int hidden, int step) {
    diag_lstm_ss_fwd_body(is, w, h, gates, n, height, width, hidden, width, 0, step);
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
    diag_lstm_ss_bwd_data_body(w, d_is, dh_carry, n, height, width, hidden, width, 0, step);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per weight element (4h * h * 2): any
// gridDim.x (grid-stride), e.g. ceil(8h^2 / PIXELRNN_BLOCK). Both layouts (on the unskewed
// maps).
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
    diag_lstm_step_fwd_body(is, w, h, c, gates, n, height, width, hidden, width, 0, step);
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
    diag_lstm_step_bwd_body(w, gates, c, dh, dc_carry, d_is, n, height, width, hidden, width, 0,
                            step);
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
                           c + b * plane, 0, width, 0, hidden, i, j, u);
    }
}

// Launch: gridDim.x = n (one block per image; a smaller grid also works: blocks loop over the
// images), blockDim.x a multiple of 32 up to 1024 (the host takes min(H, W)*h, the most pairs
// of an anti-diagonal, rounded up to a warp, at most 1024; threads loop over the (position, u)
// pairs of each anti-diagonal), dynamic shared memory 8h*h floats when `staged` != 0, none
// otherwise.
// __launch_bounds__(1024, 1): one block per SM is all a persistent kernel asks for, and the
// stated minimum lets ptxas use 64 registers (see row_lstm_persistent_fwd_v1).
// Persistent forward of the whole scan (diag_lstm_persistent_fwd_body). h, c and the activated
// gates are written exactly as by diag_lstm_step_fwd_v1, so the fused backward applies.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_persistent_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                            float* __restrict__ h, float* __restrict__ c,
                            float* __restrict__ gates, int n, int height, int width,
                            int hidden, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_fwd_body(is, w, w_s, h, c, gates, n, height, width, hidden, width, 0,
                                  staged);
}

// Launch: as diag_lstm_persistent_fwd_v1 (gridDim.x = n, blockDim.x a multiple of 32 up to
// 1024, 8h*h floats of dynamic shared memory when `staged` != 0). dc_carry zeroed.
// Persistent backward of the whole scan (diag_lstm_persistent_bwd_body). Writes every d_is;
// the weight gradient follows with diag_lstm_ss_bwd_weight_v1.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
diag_lstm_persistent_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                            const float* __restrict__ c, const float* __restrict__ dh,
                            float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                            int height, int width, int hidden, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    diag_lstm_persistent_bwd_body(w, w_s, gates, c, dh, dc_carry, d_is, n, height, width,
                                  hidden, width, 0, staged);
}

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
// v2 step kernels (both layouts: map stride and skew as in the v1 bodies): register tiles over 16 positions of an anti-diagonal x 32
// units, the packed weight, the tap's inputs staged in shared memory.
#define DIAG_LSTM_V2_UNITS 32
#define DIAG_LSTM_V2_WARPS 4
#define DIAG_LSTM_V2_PT 4
#define DIAG_LSTM_V2_POS (DIAG_LSTM_V2_WARPS * DIAG_LSTM_V2_PT)
#define DIAG_LSTM_V2_THREADS (DIAG_LSTM_V2_WARPS * 32)
#define DIAG_LSTM_V2_CHUNK 128  // features staged per pass

// The neighbour of pixel (r, j) that tap t touches, `dir` = -1: the tap's source (t = 0 above,
// t = 1 left), +1: its consumer (t = 0 below, t = 1 right); false outside the image.
PIXELRNN_DEVICE bool diag_lstm_v2_neighbour(int r, int j, int t, int dir, int height, int width,
                                            int* rn, int* jn) {
    *rn = t == 0 ? r + dir : r;
    *jn = t == 0 ? j : j + dir;
    return *rn >= 0 && *rn < height && *jn >= 0 && *jn < width;
}

// Stages, for the block's 16 positions k0 + q of anti-diagonal `step` of image b, the
// features f0 .. f0 + count - 1 (of `feat`) of their tap-t neighbour (`dir` as above) into
// tile[16][DIAG_LSTM_V2_CHUNK], 0 for a neighbour outside the image or a position past
// `positions`: lanes take consecutive features of one position (coalesced).
PIXELRNN_DEVICE void diag_lstm_v2_stage(const float* src, float (*tile)[DIAG_LSTM_V2_CHUNK],
                                        int b, int step, int k0, int positions, int t, int dir,
                                        int height, int width, int stride, int skew, int feat,
                                        int f0, int count) {
    for (int e = threadIdx.x; e < DIAG_LSTM_V2_POS * DIAG_LSTM_V2_CHUNK;
         e += DIAG_LSTM_V2_THREADS) {
        const int q = e / DIAG_LSTM_V2_CHUNK;
        const int f = e % DIAG_LSTM_V2_CHUNK;
        float v = 0.0f;
        if (f < count && k0 + q < positions) {
            const int r = diag_lstm_row(step, k0 + q, width);
            int rn, jn;
            if (diag_lstm_v2_neighbour(r, step - r, t, dir, height, width, &rn, &jn)) {
                const pixelrnn_index_t pn =
                    (pixelrnn_index_t)b * height * stride + diag_lstm_pos(rn, jn, stride, skew);
                v = src[pn * feat + f0 + f];
            }
        }
        tile[q][f] = v;
    }
}

// The body of diag_lstm_step_fwd_v2 (fused) and diag_lstm_ss_fwd_v2 (unfused): pre = is +
// w[:, :, 0] h(above) + w[:, :, 1] h(left) for the block's 16 positions x 32 units x 4 gates,
// `wp` packed forward ([2, h, 4, h]); fused: the cell in the epilogue; unfused: pre into the
// gates map.
PIXELRNN_DEVICE void diag_lstm_v2_fwd_body(const float* is, const float* wp, float* h, float* c,
                                           float* gates, int height, int width, int hidden,
                                           int stride, int skew, int step, bool fused) {
    __shared__ float hs[DIAG_LSTM_V2_POS][DIAG_LSTM_V2_CHUNK];
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const int tiles = (count + DIAG_LSTM_V2_POS - 1) / DIAG_LSTM_V2_POS;
    const int b = blockIdx.x / tiles;
    const int k0 = (blockIdx.x % tiles) * DIAG_LSTM_V2_POS;
    const int lane = threadIdx.x % 32;
    const int q0 = (threadIdx.x / 32) * DIAG_LSTM_V2_PT;
    const int u = blockIdx.y * DIAG_LSTM_V2_UNITS + lane;
    const bool live = u < hidden;

    // Position i of this thread is k = k0 + q0 + i, at row r0 + i (column step - r0 - i),
    // in the anti-diagonal while i < n_pos.
    const int r0 = diag_lstm_row(step, k0 + q0, width);
    const int n_pos = count - (k0 + q0);
    float pre[DIAG_LSTM_V2_PT][4];
#pragma unroll
    for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
        const pixelrnn_index_t p = (pixelrnn_index_t)b * height * stride +
                                   diag_lstm_pos(r0 + i, step - r0 - i, stride, skew);
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            pre[i][x] = (live && i < n_pos) ? is[p * g4 + x * hidden + u] : 0.0f;
        }
    }
    for (int t = 0; t < 2; ++t) {
        for (int f0 = 0; f0 < hidden; f0 += DIAG_LSTM_V2_CHUNK) {
            const int n_f = hidden - f0 < DIAG_LSTM_V2_CHUNK ? hidden - f0 : DIAG_LSTM_V2_CHUNK;
            __syncthreads();  // the previous chunk's reads are done
            diag_lstm_v2_stage(h, hs, b, step, k0, count, t, -1, height, width, stride, skew,
                               hidden, f0, n_f);
            __syncthreads();  // the chunk is complete
            if (!live) continue;
            // The positions whose tap t is in the image: v1 skips a tap in the skew's
            // padding, so does v2 (same bits).
            unsigned taps_in = 0;
#pragma unroll
            for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
                if (i < n_pos && (t == 0 ? r0 + i > 0 : step - r0 - i > 0)) taps_in |= 1u << i;
            }
            const float* w = wp + ((pixelrnn_index_t)t * hidden + f0) * g4 + u;
            for (int f = 0; f < n_f; ++f) {
                float wx[4];
#pragma unroll
                for (int x = 0; x < 4; ++x) wx[x] = w[(pixelrnn_index_t)f * g4 + x * hidden];
#pragma unroll
                for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
                    if (!((taps_in >> i) & 1u)) continue;
                    const float hv = hs[q0 + i][f];
#pragma unroll
                    for (int x = 0; x < 4; ++x) pre[i][x] += wx[x] * hv;
                }
            }
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
        if (i >= n_pos) continue;
        const int j = step - r0 - i;
        const pixelrnn_index_t p =
            (pixelrnn_index_t)b * height * stride + diag_lstm_pos(r0 + i, j, stride, skew);
        if (fused) {
            const pixelrnn_index_t e = p * hidden + u;
            const float cp = j > 0 ? c[e - hidden] : 0.0f;
            pixelrnn_lstm_cell_fwd(pre[i][0], pre[i][1], pre[i][2], pre[i][3], cp,
                                   gates + p * g4 + u, hidden, &c[e], &h[e]);
        } else {
#pragma unroll
            for (int x = 0; x < 4; ++x) gates[p * g4 + x * hidden + u] = pre[i][x];
        }
    }
}

// The body of diag_lstm_step_bwd_v2 (fused) and diag_lstm_ss_bwd_data_v2 (unfused): the
// recurrent dh of the block's 16 positions x 32 units of anti-diagonal `step`,
// w[:, :, 0]^T d_is(below) + w[:, :, 1]^T d_is(right) with `wp` packed backward
// ([2, 4h, h]); fused: dh + that, then the cell backward; unfused: written to dh_carry.
PIXELRNN_DEVICE void diag_lstm_v2_bwd_body(const float* wp, const float* gates, const float* c,
                                           const float* dh, float* dc_carry, float* d_is,
                                           float* dh_carry, int height, int width, int hidden,
                                           int stride, int skew, int step, bool fused) {
    __shared__ float ds[DIAG_LSTM_V2_POS][DIAG_LSTM_V2_CHUNK];
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const int tiles = (count + DIAG_LSTM_V2_POS - 1) / DIAG_LSTM_V2_POS;
    const int b = blockIdx.x / tiles;
    const int k0 = (blockIdx.x % tiles) * DIAG_LSTM_V2_POS;
    const int lane = threadIdx.x % 32;
    const int q0 = (threadIdx.x / 32) * DIAG_LSTM_V2_PT;
    const int u = blockIdx.y * DIAG_LSTM_V2_UNITS + lane;
    const bool live = u < hidden;

    // Position i of this thread: row r0 + i, in the anti-diagonal while i < n_pos.
    const int r0 = diag_lstm_row(step, k0 + q0, width);
    const int n_pos = count - (k0 + q0);
    float acc[DIAG_LSTM_V2_PT];
#pragma unroll
    for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) acc[i] = 0.0f;
    for (int t = 0; t < 2; ++t) {
        for (int f0 = 0; f0 < g4; f0 += DIAG_LSTM_V2_CHUNK) {
            const int n_f = g4 - f0 < DIAG_LSTM_V2_CHUNK ? g4 - f0 : DIAG_LSTM_V2_CHUNK;
            __syncthreads();  // the previous chunk's reads are done
            diag_lstm_v2_stage(d_is, ds, b, step, k0, count, t, 1, height, width, stride, skew,
                               g4, f0, n_f);
            __syncthreads();  // the chunk is complete
            if (!live) continue;
            // The positions whose tap-t consumer is in the image (v1 skips the others).
            unsigned taps_in = 0;
#pragma unroll
            for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
                if (i < n_pos && (t == 0 ? r0 + i + 1 < height : step - r0 - i + 1 < width)) {
                    taps_in |= 1u << i;
                }
            }
            const float* w = wp + ((pixelrnn_index_t)t * g4 + f0) * hidden + u;
            for (int f = 0; f < n_f; ++f) {
                const float wv = w[(pixelrnn_index_t)f * hidden];
#pragma unroll
                for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
                    if (!((taps_in >> i) & 1u)) continue;
                    acc[i] += wv * ds[q0 + i][f];
                }
            }
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < DIAG_LSTM_V2_PT; ++i) {
        if (i >= n_pos) continue;
        const int j = step - r0 - i;
        const pixelrnn_index_t p =
            (pixelrnn_index_t)b * height * stride + diag_lstm_pos(r0 + i, j, stride, skew);
        const pixelrnn_index_t e = p * hidden + u;
        if (fused) {
            // As diag_lstm_unit_bwd: dh plus the recurrent sum (v1's order).
            const float dh_tot = dh[e] + acc[i];
            const float cp = j > 0 ? c[e - hidden] : 0.0f;
            const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + u, hidden, c[e], cp,
                                                         dh_tot, dc_carry[e], d_is + p * g4 + u);
            if (j > 0) dc_carry[e - hidden] = dc_prev;
        } else {
            dh_carry[e] = acc[i];
        }
    }
}

// Launch (every diag_lstm_*_v2 step kernel): blockDim.x = DIAG_LSTM_V2_THREADS (128),
// gridDim = (n * ceil(count / 16), ceil(h / 32)), count the positions of anti-diagonal
// `step`; `wp` from lstm_pack_ss_v2 (transposed = 0 for the forward kernels, 1 for the
// backward ones).
// Fused forward of one anti-diagonal (v2 tiles): as diag_lstm_step_fwd_v1.
PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS)
diag_lstm_step_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                      float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates,
                      int n, int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v2_fwd_body(is, wp, h, c, gates, height, width, hidden, width, 0, step, true);
}

// Unfused forward, first half (v2 tiles): the pre-activation of anti-diagonal `step` into the
// gates map (lstm_gates_fwd_v1 activates it).
// __launch_bounds__(.., 1): with the bare block size ptxas held this kernel at 80 registers
// and spilled 4-8 bytes; stating the minimum of one block per SM lets it take what it needs.
PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS, 1)
diag_lstm_ss_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                    const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                    int width, int hidden, int step) {
    (void)n;
    // The unfused body reads h only: the cast is never written through.
    diag_lstm_v2_fwd_body(is, wp, const_cast<float*>(h), 0, gates, height, width, hidden, width,
                          0, step, false);
}

// Fused backward of one anti-diagonal (v2 tiles): as diag_lstm_step_bwd_v1.
PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS)
diag_lstm_step_bwd_v2(const float* __restrict__ wp, const float* __restrict__ gates,
                      const float* __restrict__ c, const float* __restrict__ dh,
                      float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                      int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v2_bwd_body(wp, gates, c, dh, dc_carry, d_is, 0, height, width, hidden, width, 0,
                          step, true);
}

// Unfused backward, second half (v2 tiles), called for step = s-1 after lstm_gates_bwd_v1 of
// anti-diagonal s: dh_carry of anti-diagonal `step` from its consumers on step+1.
PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS)
diag_lstm_ss_bwd_data_v2(const float* __restrict__ wp, const float* __restrict__ d_is,
                         float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                         int step) {
    (void)n;
    diag_lstm_v2_bwd_body(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                          hidden, width, 0, step, false);
}

// Materialised layout, v2 tiles: the same bodies over the skewed maps (stride = Ws, skew = 1),
// launched as the folded v2 kernels (gridDim.x = n * ceil(count / 16) for skewed column
// `step`, which holds the positions of anti-diagonal `step`).
PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS)
diag_lstm_skewed_step_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                             float* __restrict__ h, float* __restrict__ c,
                             float* __restrict__ gates, int n, int height, int width,
                             int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v2_fwd_body(is, wp, h, c, gates, height, width, hidden, skewed, 1, step, true);
}

// __launch_bounds__(.., 1): with the bare block size ptxas held this kernel at 80 registers
// and spilled 4-8 bytes; stating the minimum of one block per SM lets it take what it needs.
PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS, 1)
diag_lstm_skewed_ss_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                           const float* __restrict__ h, float* __restrict__ gates, int n,
                           int height, int width, int hidden, int skewed, int step) {
    (void)n;
    // The unfused body reads h only: the cast is never written through.
    diag_lstm_v2_fwd_body(is, wp, const_cast<float*>(h), 0, gates, height, width, hidden, skewed,
                          1, step, false);
}

PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS)
diag_lstm_skewed_step_bwd_v2(const float* __restrict__ wp, const float* __restrict__ gates,
                             const float* __restrict__ c, const float* __restrict__ dh,
                             float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                             int height, int width, int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v2_bwd_body(wp, gates, c, dh, dc_carry, d_is, 0, height, width, hidden, skewed, 1,
                          step, true);
}

PIXELRNN_KERNEL void __launch_bounds__(DIAG_LSTM_V2_THREADS)
diag_lstm_skewed_ss_bwd_data_v2(const float* __restrict__ wp, const float* __restrict__ d_is,
                                float* __restrict__ dh_carry, int n, int height, int width,
                                int hidden, int skewed, int step) {
    (void)n;
    diag_lstm_v2_bwd_body(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                          hidden, skewed, 1, step, false);
}

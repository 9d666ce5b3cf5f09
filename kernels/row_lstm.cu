// row_lstm.cu: the Row LSTM recurrence, one launch per image row (the rows of the whole batch
// at once). For row i: pre = is_i + conv1xk(h_{i-1}, w_ss) (zero-padded in width), then
// [o, f, i, g] = [σ, σ, σ, tanh](pre), c_i = f c_{i-1} + i g, h_i = o tanh(c_i); row -1 has
// h = c = 0. CPU twin: src/backend/cpu/lstm.rs (Scan::Row) and lstm_at.rs.
//
// Versions (all entry points of this file share one version number, selected as op "row_lstm"):
//   v1: unfused: row_lstm_ss_fwd_v1 (state-to-state product of the row into the gates map as the
//       pre-activation, one thread per (b, j, gate row o)) followed by lstm_gates_fwd_v1
//       (lstm.cu); backward per row in reverse: lstm_gates_bwd_v1, then row_lstm_ss_bwd_data_v1
//       (dh of row i-1 = conv^T of dpre of row i, a gather: one thread per (b, j, u), no
//       atomics). Fused: row_lstm_step_fwd_v1, one thread per (b, j, u) computing the unit's
//       four gate pre-activations (4 dot products of length k*h) and the cell update in
//       registers, no pre-activation stored; row_lstm_step_bwd_v1, one thread per (b, j, u)
//       computing the recurrent dh of its unit from the next row's dpre (k dot products of
//       length 4h) and the cell backward in registers, no dh buffer. Both paths finish with
//       row_lstm_ss_bwd_weight_v1: dw_ss once after the scan, one thread per weight element
//       summing over every position (every dpre is final by then and h is kept): deterministic,
//       no atomics and no per-row partial buffers. row_lstm_fwd_at_v1: one position (sampling),
//       the fused step's arithmetic; row_lstm_fwd_at_{tf32,bf16}_v1: the same body at tf32 /
//       bf16 (h and w_ss rounded as loaded, fp32 FMA: the CPU twin's rounded arithmetic),
//       selected by the backend's precision. Persistent: row_lstm_persistent_fwd_v1, ONE launch for the
//       whole scan, one block per image looping over the rows with a __syncthreads() between
//       rows, the state weights staged once in dynamic shared memory (transposed so that the
//       lanes of a warp, consecutive units, read consecutive words) when they fit in 48 KiB,
//       else read from global memory; each thread runs the fused step's arithmetic for
//       (j, u) pairs of the row; row_lstm_persistent_bwd_v1, the same for the backward
//       (rows bottom-up, the fused backward's arithmetic, weights staged in a layout for the
//       transposed product), then row_lstm_ss_bwd_weight_v1.
//   v2: the state weight packed once per call (lstm_pack_ss_v2, lstm.cu) into unit-contiguous
//       layouts, and register tiles: a block of 128 threads computes 16 positions of a row x
//       32 units (a warp = 32 consecutive units, 4 positions per thread) for all four gates.
//       The inputs the tile reads (h of row i-1, or d_is of row i+1, for one tap and 128
//       features at a time) are staged in shared memory with coalesced loads and read as
//       broadcasts; each packed weight word (a coalesced load across the warp) serves 4
//       positions. Summation order per element as v1 (taps, then features ascending), so v2
//       and v1 agree bit for bit on a machine that contracts both alike.
//       row_lstm_step_fwd_v2 (fused: gates and cell update in the epilogue, no pre-activation
//       stored), row_lstm_step_bwd_v2 (fused: the recurrent dh, then the cell backward),
//       row_lstm_ss_fwd_v2 / row_lstm_ss_bwd_data_v2 (unfused: the same products into the
//       gates map / dh_carry; lstm_gates_*_v1 do the rest). The weight gradient of v2 is
//       lstm_ss_bwd_weight_v2 (lstm.cu). The v2 bodies are in row_lstm_v2.cuh, shared with
//       the persistent v2 kernels row_lstm_persistent_{fwd,bwd}_v2 (lstm_persistent.cuh: one
//       thread-block cluster per image, each block's slice of the state weight in shared
//       memory, the rows ordered by the cluster barrier). One-position kernels: v1 only
//       (row_lstm_fwd_at_v1, _tf32_v1, _bf16_v1).
//   v8: the v2 step kernels with the product's weight words read 8 features at a time
//       (row_lstm_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8, kernels/row_lstm_v8.cu: v2's
//       launches, tiles and bits).
//   v3: v2, except the backward through time: row_lstm_step_bwd_v3 (fused) and
//       row_lstm_ss_bwd_data_v3 (unfused) register-tile the transposed product 4 positions x
//       4 units per thread, blocks of 16 positions x 128 units (row_lstm_v3.cuh, lstm_v3.cuh):
//       8 FLOPs per shared word instead of v2's 2, same summation order (same bits). The
//       forward, the weight gradient and the persistent kernels of v3 are v2's.
//   tf32 v2 / bf16 v2, tf32 v3 / bf16 v3 (the unfused recurrence at tf32 / bf16, selected by
//       the backend's precision under every version; the number names the fp32 version each
//       is the rounded twin of): row_lstm_ss_fwd_{tf32,bf16}_v2 (row_lstm_ss_fwd_v2's body and
//       launch) and row_lstm_ss_bwd_data_{tf32,bf16}_v3 (row_lstm_ss_bwd_data_v3's), the bodies
//       instantiated with P = PIXELRNN_ROUND_TF32 / _BF16 (mma.cuh's pixelrnn_round_as): each
//       GEMM operand (the staged h or d_is, every packed weight word) rounded on load, fp32
//       FMA, `is` added in fp32. A product of two rounded operands is exact in fp32, so this is
//       the CPU twin's arithmetic (cpu/lstm.rs at the same precision) up to the order of the
//       additions. The fp32 kernels are the P = PIXELRNN_ROUND_FP32 instantiations (rounding
//       the identity): their code and bits are unchanged. lstm_gates_*_v1 and the weight
//       gradient (lstm_ss_bwd_weight_{tf32,bf16}_v2, lstm_mma_weight.cu) complete the step.
//
// Layout: is, gates, d_is [n, H, W, 4h] (blocks [o, f, i, g]); h, c, dh [n, H, W, h];
// w_ss, dw [4h, h, 1, k] (PyTorch layout: element (o, v, 0, t) at (o*h + v)*k + t), k odd,
// tap t of (i, j) reads h(i-1, j + t - k/2).
#include "common.cuh"
#include "mma.cuh"
#include "row_lstm_v2.cuh"
#include "row_lstm_v3.cuh"

// Strides of the state weight's element (x, u, v, t) (gate block x, unit u, input unit v, tap
// t), as laid out in global memory ([4h, h, 1, k]: ((x*h + u)*h + v)*k + t) and as staged in
// shared memory by the persistent kernel ([k, h, 4, h]: ((t*h + v)*4 + x)*h + u, so that
// consecutive units, the lanes of a warp, read consecutive words: no bank conflicts).
#define ROW_LSTM_W_GLOBAL(hidden, k) (hidden) * (hidden) * (k), (hidden) * (k), (k), 1
#define ROW_LSTM_W_STAGED(hidden, k) (hidden), 1, 4 * (hidden), 4 * (hidden) * (hidden)

// Gates, cell and hidden state of unit u of position (r, j) of one image: `pre_in` points at
// the position's 4h input-to-state pre-activations, `h_img`/`c_img` at the image's maps (row
// r-1 complete), `w` at the state weight with element (x, u, v, t) at
// x*sx + u*su + v*sv + t*st (ROW_LSTM_W_GLOBAL or ROW_LSTM_W_STAGED; 4h*h*k fits in int, the
// host checks). Writes the activated gates to `gates_out` (4 entries h apart) when not null.
// Same arithmetic as lstm_gates_fwd_v1 (lstm.cu) after the state-to-state product; the fused,
// persistent and one-position kernels all call this, so they agree bit for bit.
// P (mma.cuh's PIXELRNN_ROUND_*): both operands of the state-to-state product are rounded to P
// as they are loaded (pixelrnn_round_as), the FMAs stay fp32: the CPU twin's tf32 / bf16
// arithmetic (cpu/lstm_at.rs forward_at_precision) up to the order of the fp32 additions.
// The default, PIXELRNN_ROUND_FP32, rounds nothing (the fp32 kernels' code is unchanged).
template <int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void row_lstm_unit_fwd(const float* pre_in, const float* w, int sx, int su,
                                       int sv, int st, float* h_img, float* c_img,
                                       float* gates_out, int width, int hidden, int k, int r,
                                       int j, int u) {
    float pre[4];
#pragma unroll
    for (int x = 0; x < 4; ++x) pre[x] = pre_in[x * hidden + u];
    if (r > 0) {
        for (int t = 0; t < k; ++t) {
            const int jj = j + t - k / 2;
            if (jj < 0 || jj >= width) continue;
            const float* hp = h_img + ((pixelrnn_index_t)(r - 1) * width + jj) * hidden;
            for (int v = 0; v < hidden; ++v) {
                const float hv = pixelrnn_round_as<P>(hp[v]);
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    pre[x] += pixelrnn_round_as<P>(w[x * sx + u * su + v * sv + t * st]) * hv;
                }
            }
        }
    }
    const pixelrnn_index_t e = ((pixelrnn_index_t)r * width + j) * hidden + u;
    const float cp = r > 0 ? c_img[e - (pixelrnn_index_t)width * hidden] : 0.0f;
    pixelrnn_lstm_cell_fwd(pre[0], pre[1], pre[2], pre[3], cp,
                           gates_out != 0 ? gates_out + u : 0, hidden, &c_img[e], &h_img[e]);
}

// Strides of the state weight's element (o, u, t) (gate row o < 4h, input unit u, tap t) for
// the backward, which sums over o for a fixed (u, t): in global memory (o*h*k + u*k + t) and
// as staged by the persistent backward ([k, 4h, h]: (t*4h + o)*h + u, consecutive units in
// consecutive words).
#define ROW_LSTM_WT_GLOBAL(hidden, k) (hidden) * (k), (k), 1
#define ROW_LSTM_WT_STAGED(hidden, k) (hidden), 1, 4 * (hidden) * (hidden)

// Backward of unit u of position (row, j) (flat position p = (b*H + row)*W + j): dh_tot = dh +
// conv1xk^T(d_is(row+1), w_ss) for unit u (k dot products of length 4h, in registers, the
// weight (o, u, t) at o*so + u*su + t*st), then the cell backward of lstm_gates_bwd_v1. Reads
// d_is at row+1 and dc_carry at `row`; writes d_is at `row` and dc_carry at row-1. The fused
// and the persistent backward both call this, so they agree bit for bit.
PIXELRNN_DEVICE void row_lstm_unit_bwd(const float* w, int so, int su, int st,
                                       const float* gates, const float* c, const float* dh,
                                       float* dc_carry, float* d_is, int height, int width,
                                       int hidden, int k, pixelrnn_index_t p, int row, int j,
                                       int u) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t e = p * hidden + u;
    float dh_tot = dh[e];
    if (row + 1 < height) {
        for (int t = 0; t < k; ++t) {
            const int jc = j - t + k / 2;  // the consumer in row+1 reading (row, j) by tap t
            if (jc < 0 || jc >= width) continue;
            const float* dp = d_is + (p + width + (jc - j)) * g4;
            const float* wp = w + u * su + t * st;
            for (int o = 0; o < g4; ++o) dh_tot += wp[o * so] * dp[o];
        }
    }

    const float cp = row > 0 ? c[e - (pixelrnn_index_t)width * hidden] : 0.0f;
    const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + u, hidden, c[e], cp, dh_tot,
                                                 dc_carry[e], d_is + p * g4 + u);
    if (row > 0) dc_carry[e - (pixelrnn_index_t)width * hidden] = dc_prev;
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, j, o) of row `row` (o < 4h):
// any gridDim.x (grid-stride), e.g. ceil(n * W * 4h / PIXELRNN_BLOCK).
// Unfused forward, first half: gates(row) = is(row) + conv1xk(h(row-1), w_ss), the
// pre-activation, which lstm_gates_fwd_v1 then activates in place.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_ss_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                   const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                   int width, int hidden, int k, int row) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t total = (pixelrnn_index_t)n * width * g4;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int o = (int)(idx % g4);
        const pixelrnn_index_t q = idx / g4;
        const int b = (int)(q / width);
        const int j = (int)(q % width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + row) * width + j;
        float acc = is[p * g4 + o];
        if (row > 0) {
            for (int t = 0; t < k; ++t) {
                const int jj = j + t - k / 2;
                if (jj < 0 || jj >= width) continue;
                const float* hp =
                    h + (((pixelrnn_index_t)b * height + row - 1) * width + jj) * hidden;
                const float* wp = w + (pixelrnn_index_t)o * hidden * k + t;
                for (int v = 0; v < hidden; ++v) acc += wp[(pixelrnn_index_t)v * k] * hp[v];
            }
        }
        gates[p * g4 + o] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, j, u) of row `row` (u < h): any
// gridDim.x (grid-stride), e.g. ceil(n * W * h / PIXELRNN_BLOCK). Called for row = i-1 after
// lstm_gates_bwd_v1 of row i.
// Unfused backward, second half: dh_carry(row) = conv1xk^T(d_is(row+1), w_ss), gathered per
// receiving position (row+1 is its only consumer, so this is the whole recurrent gradient).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_ss_bwd_data_v1(const float* __restrict__ w, const float* __restrict__ d_is,
                        float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                        int k, int row) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t total = (pixelrnn_index_t)n * width * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / width);
        const int jj = (int)(q % width);
        float acc = 0.0f;
        if (row + 1 < height) {
            for (int t = 0; t < k; ++t) {
                const int j = jj - t + k / 2;
                if (j < 0 || j >= width) continue;
                const float* dp =
                    d_is + (((pixelrnn_index_t)b * height + row + 1) * width + j) * g4;
                const float* wp = w + (pixelrnn_index_t)u * k + t;
                for (int o = 0; o < g4; ++o) acc += wp[(pixelrnn_index_t)o * hidden * k] * dp[o];
            }
        }
        dh_carry[(((pixelrnn_index_t)b * height + row) * width + jj) * hidden + u] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per weight element (4h * h * k): any
// gridDim.x (grid-stride), e.g. ceil(4h * h * k / PIXELRNN_BLOCK).
// dw(o, v, 0, t) = sum over images b and positions (i >= 1, j) of h(b, i-1, j+t-k/2, v) *
// d_is(b, i, j, o), out-of-width taps skipped. Writes every element of dw.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_ss_bwd_weight_v1(const float* __restrict__ h, const float* __restrict__ d_is,
                          float* __restrict__ dw, int n, int height, int width, int hidden,
                          int k) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t total = (pixelrnn_index_t)g4 * hidden * k;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int t = (int)(idx % k);
        const int v = (int)((idx / k) % hidden);
        const int o = (int)(idx / ((pixelrnn_index_t)k * hidden));
        const int shift = t - k / 2;  // tap t of (i, j) reads (i-1, j + shift)
        const int j_lo = shift < 0 ? -shift : 0;
        const int j_hi = shift > 0 ? width - shift : width;  // exclusive
        const int rows = n * height;
        float acc = 0.0f;
        for (int row = 0; row < rows; ++row) {
            if (row % height == 0) continue;  // image row 0 has no row above
            const float* hp = h + (pixelrnn_index_t)(row - 1) * width * hidden + v;
            const float* dp = d_is + (pixelrnn_index_t)row * width * g4 + o;
            // A partial sum per row keeps the float accumulation error from growing with the
            // number of positions.
            float part = 0.0f;
            for (int j = j_lo; j < j_hi; ++j) {
                part += hp[(pixelrnn_index_t)(j + shift) * hidden] * dp[(pixelrnn_index_t)j * g4];
            }
            acc += part;
        }
        dw[idx] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, j, u) of row `row`: any gridDim.x
// (grid-stride), e.g. ceil(n * W * h / PIXELRNN_BLOCK).
// Fused forward of one row: state-to-state product, gates and cell update in registers.
// `h` and `c` are read at row-1 and written at `row`: one pointer each.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_step_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                     float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates,
                     int n, int height, int width, int hidden, int k, int row) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * width * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / width);
        const int j = (int)(q % width);
        const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)row * width + j;
        row_lstm_unit_fwd(is + p * 4 * hidden, w, ROW_LSTM_W_GLOBAL(hidden, k),
                          h + b * plane * hidden, c + b * plane * hidden,
                          gates + p * 4 * hidden, width, hidden, k, row, j, u);
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per (b, j, u) of row `row`: any gridDim.x
// (grid-stride), e.g. ceil(n * W * h / PIXELRNN_BLOCK). Rows in reverse order.
// Fused backward of one row: dh_tot = dh + conv1xk^T(d_is(row+1), w_ss) for unit u (k dot
// products of length 4h, in registers), then the cell backward of lstm_gates_bwd_v1. `d_is` is
// read at row+1 and written at `row`, `dc_carry` read at `row` and written at row-1: one
// pointer each. The weight gradient follows with row_lstm_ss_bwd_weight_v1.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_step_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                     const float* __restrict__ c, const float* __restrict__ dh,
                     float* __restrict__ dc_carry, float* __restrict__ d_is, int n, int height,
                     int width, int hidden, int k, int row) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * width * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t q = idx / hidden;
        const int b = (int)(q / width);
        const int j = (int)(q % width);
        const pixelrnn_index_t p = ((pixelrnn_index_t)b * height + row) * width + j;
        row_lstm_unit_bwd(w, ROW_LSTM_WT_GLOBAL(hidden, k), gates, c, dh, dc_carry, d_is,
                          height, width, hidden, k, p, row, j, u);
    }
}

// One position (i, j) of the fused forward for every image (incremental sampling), the
// state-to-state operands rounded to P (row_lstm_unit_fwd): `is` is [n, 4h], the maps h, c
// hold row i-1; writes h(i, j), c(i, j). The body of row_lstm_fwd_at_{,tf32_,bf16_}v1.
template <int P>
PIXELRNN_DEVICE void row_lstm_fwd_at_body(const float* __restrict__ is,
                                          const float* __restrict__ w, float* __restrict__ h,
                                          float* __restrict__ c, int n, int height, int width,
                                          int hidden, int k, int i, int j) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width * hidden;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t b = idx / hidden;
        row_lstm_unit_fwd<P>(is + b * 4 * hidden, w, ROW_LSTM_W_GLOBAL(hidden, k),
                             h + b * plane, c + b * plane, 0, width, hidden, k, i, j, u);
    }
}

// Launch (row_lstm_fwd_at_v1, _tf32_v1, _bf16_v1): blockDim.x = PIXELRNN_BLOCK, one thread
// per (b, u): any gridDim.x (grid-stride), e.g. ceil(n * h / PIXELRNN_BLOCK).
// One position of the fused forward at fp32 (row_lstm_fwd_at_body).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_fwd_at_v1(const float* __restrict__ is, const float* __restrict__ w,
                   float* __restrict__ h, float* __restrict__ c, int n, int height, int width,
                   int hidden, int k, int i, int j) {
    row_lstm_fwd_at_body<PIXELRNN_ROUND_FP32>(is, w, h, c, n, height, width, hidden, k, i, j);
}

// row_lstm_fwd_at_v1 at tf32: h and w_ss rounded to tf32 as loaded, fp32 FMA.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_fwd_at_tf32_v1(const float* __restrict__ is, const float* __restrict__ w,
                        float* __restrict__ h, float* __restrict__ c, int n, int height,
                        int width, int hidden, int k, int i, int j) {
    row_lstm_fwd_at_body<PIXELRNN_ROUND_TF32>(is, w, h, c, n, height, width, hidden, k, i, j);
}

// row_lstm_fwd_at_v1 at bf16: h and w_ss rounded to bf16 as loaded, fp32 FMA.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
row_lstm_fwd_at_bf16_v1(const float* __restrict__ is, const float* __restrict__ w,
                        float* __restrict__ h, float* __restrict__ c, int n, int height,
                        int width, int hidden, int k, int i, int j) {
    row_lstm_fwd_at_body<PIXELRNN_ROUND_BF16>(is, w, h, c, n, height, width, hidden, k, i, j);
}

// Launch: gridDim.x = n (one block per image; a smaller grid also works: blocks loop over the
// images), blockDim.x a multiple of 32 up to 1024 (the host takes W*h rounded up to a warp,
// at most 1024; threads loop over the row's (j, u) pairs), dynamic shared memory 4h*h*k floats
// when `staged` != 0, none otherwise.
// __launch_bounds__(1024, 1): one block per SM is all a persistent kernel asks for; with the
// minimum stated, ptxas may use the 64 registers a 1024-thread block allows (with the bare
// (1024) it capped the backward at 32 and spilled).
// Persistent forward of the whole scan: a block owns every unit of its image, so the rows are
// ordered by __syncthreads() alone (no grid-wide sync, no launch per row). `staged` != 0: the
// state weights are copied once into shared memory (ROW_LSTM_W_STAGED layout) and stay there
// for all rows; 0: they are read from global memory (ROW_LSTM_W_GLOBAL), for weights over the
// 48 KiB a block gets without opting in. h, c and the activated gates are written exactly as
// by row_lstm_step_fwd_v1, so the fused backward applies.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
row_lstm_persistent_fwd_v1(const float* __restrict__ is, const float* __restrict__ w,
                           float* __restrict__ h, float* __restrict__ c,
                           float* __restrict__ gates, int n, int height, int width, int hidden,
                           int k, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    const int g4 = 4 * hidden;
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, k, false);
    }
    __syncthreads();  // the staged weights are complete before any row reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    const int pairs = width * hidden;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        float* h_img = h + b * plane * hidden;
        float* c_img = c + b * plane * hidden;
        for (int r = 0; r < height; ++r) {
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int j = q / hidden;
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + j;
                // Two calls rather than one through a pointer chosen at run time: each inlined
                // copy knows its address space (shared loads, constant strides).
                if (staged) {
                    row_lstm_unit_fwd(is + p * g4, w_s, ROW_LSTM_W_STAGED(hidden, k), h_img,
                                      c_img, gates + p * g4, width, hidden, k, r, j, u);
                } else {
                    row_lstm_unit_fwd(is + p * g4, w, ROW_LSTM_W_GLOBAL(hidden, k), h_img,
                                      c_img, gates + p * g4, width, hidden, k, r, j, u);
                }
            }
            // Row r is complete (h and c, written to global memory by the whole block) before
            // row r+1 reads it.
            __syncthreads();
        }
    }
}

// Launch: as row_lstm_persistent_fwd_v1 (gridDim.x = n, blockDim.x a multiple of 32 up to
// 1024, 4h*h*k floats of dynamic shared memory when `staged` != 0). dc_carry zeroed.
// Persistent backward of the whole scan: one block per image walks the rows bottom-up with a
// __syncthreads() between rows, each thread taking (j, u) pairs with the fused backward's
// arithmetic (row_lstm_unit_bwd); `staged` != 0: the weights are copied once into shared
// memory (ROW_LSTM_WT_STAGED layout), 0: read from global memory. Writes every d_is; the
// weight gradient follows with row_lstm_ss_bwd_weight_v1.
PIXELRNN_KERNEL void __launch_bounds__(1024, 1)
row_lstm_persistent_bwd_v1(const float* __restrict__ w, const float* __restrict__ gates,
                           const float* __restrict__ c, const float* __restrict__ dh,
                           float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                           int height, int width, int hidden, int k, int staged) {
    PIXELRNN_DYNAMIC_SHARED(float, w_s);
    if (staged) {
        pixelrnn_lstm_stage_weights(w, w_s, hidden, k, true);
    }
    __syncthreads();  // the staged weights are complete before any row reads them
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    const int pairs = width * hidden;
    for (int b = blockIdx.x; b < n; b += gridDim.x) {
        for (int r = height - 1; r >= 0; --r) {
            for (int q = threadIdx.x; q < pairs; q += blockDim.x) {
                const int u = q % hidden;
                const int j = q / hidden;
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + j;
                if (staged) {
                    row_lstm_unit_bwd(w_s, ROW_LSTM_WT_STAGED(hidden, k), gates, c, dh,
                                      dc_carry, d_is, height, width, hidden, k, p, r, j, u);
                } else {
                    row_lstm_unit_bwd(w, ROW_LSTM_WT_GLOBAL(hidden, k), gates, c, dh, dc_carry,
                                      d_is, height, width, hidden, k, p, r, j, u);
                }
            }
            // Row r's d_is and the cell gradients it hands to row r-1 are complete before
            // row r-1 reads them.
            __syncthreads();
        }
    }
}

// The v2 bodies (tiles of 16 positions x 32 units, shared with the persistent v2 kernels of
// lstm_persistent.cuh): row_lstm_v2.cuh.

// Launch (every row_lstm_*_v2 step kernel): blockDim.x = LSTM_V2_THREADS (128),
// gridDim = (n * ceil(W / 16), ceil(h / 32)); `wp` from lstm_pack_ss_v2 (transposed = 0 for
// the forward kernels, 1 for the backward ones).
// Fused forward of one row (v2 tiles): as row_lstm_step_fwd_v1, h and c read at row-1 and
// written at `row`, the activated gates written, no pre-activation stored.
// __launch_bounds__(.., 1): since the weight strides are run-time values (lstm_wview, shared
// with the persistent kernels), the bare block size held this kernel at 72 registers with 20
// bytes of spills; stating the minimum of one block per SM lets it take what it needs.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_step_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                     float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates,
                     int n, int height, int width, int hidden, int k, int row) {
    (void)n;
    row_lstm_v2_fwd_body(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), h, c,
                         gates, height, width, hidden, k, row,
                         lstm_v2_tile_of_block(width, hidden), true);
}

// Unfused forward, first half (v2 tiles): gates(row) = is(row) + conv1xk(h(row-1), w), the
// pre-activation, which lstm_gates_fwd_v1 activates in place.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                   const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                   int width, int hidden, int k, int row) {
    (void)n;
    // The unfused body reads h only (the fused one writes it too): the cast is never written
    // through.
    row_lstm_v2_fwd_body(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS),
                         const_cast<float*>(h), 0, gates, height, width, hidden, k, row,
                         lstm_v2_tile_of_block(width, hidden), false);
}

// Unfused forward at tf32 / bf16 (the rounded twins of row_lstm_ss_fwd_v2: the same launch,
// the staged h and each packed weight word rounded to P on load, fp32 accumulation).
template <int P>
PIXELRNN_DEVICE void row_lstm_ss_fwd_rounded(const float* is, const float* wp, const float* h,
                                             float* gates, int height, int width, int hidden,
                                             int k, int row) {
    // The unfused body reads h only: the cast is never written through.
    row_lstm_v2_fwd_body<P>(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS),
                            const_cast<float*>(h), 0, gates, height, width, hidden, k, row,
                            lstm_v2_tile_of_block(width, hidden), false);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_fwd_tf32_v2(const float* __restrict__ is, const float* __restrict__ wp,
                        const float* __restrict__ h, float* __restrict__ gates, int n,
                        int height, int width, int hidden, int k, int row) {
    (void)n;
    row_lstm_ss_fwd_rounded<PIXELRNN_ROUND_TF32>(is, wp, h, gates, height, width, hidden, k, row);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_fwd_bf16_v2(const float* __restrict__ is, const float* __restrict__ wp,
                        const float* __restrict__ h, float* __restrict__ gates, int n,
                        int height, int width, int hidden, int k, int row) {
    (void)n;
    row_lstm_ss_fwd_rounded<PIXELRNN_ROUND_BF16>(is, wp, h, gates, height, width, hidden, k, row);
}

// Fused backward of one row (v2 tiles): as row_lstm_step_bwd_v1 (d_is read at row+1 and
// written at `row`, dc_carry read at `row` and written at row-1).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_step_bwd_v2(const float* __restrict__ wp, const float* __restrict__ gates,
                     const float* __restrict__ c, const float* __restrict__ dh,
                     float* __restrict__ dc_carry, float* __restrict__ d_is, int n, int height,
                     int width, int hidden, int k, int row) {
    (void)n;
    row_lstm_v2_bwd_body(lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), gates, c,
                         dh, dc_carry, d_is, 0, height, width, hidden, k, row,
                         lstm_v2_tile_of_block(width, hidden), true);
}

// Unfused backward, second half (v2 tiles), called for row = i-1 after lstm_gates_bwd_v1 of
// row i: dh_carry(row) = conv1xk^T(d_is(row+1), w).
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_bwd_data_v2(const float* __restrict__ wp, const float* __restrict__ d_is,
                        float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                        int k, int row) {
    (void)n;
    row_lstm_v2_bwd_body(lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), 0, 0, 0,
                         0, const_cast<float*>(d_is), dh_carry, height, width, hidden, k, row,
                         lstm_v2_tile_of_block(width, hidden), false);
}

// Launch (row_lstm_step_bwd_v3, row_lstm_ss_bwd_data_v3): blockDim.x = LSTM_V2_THREADS (128),
// gridDim = (n * ceil(W / 16), ceil(h / 128)); `wp` from lstm_pack_ss_v2 (transposed = 1).
// Fused backward of one row (v3 tiles): as row_lstm_step_bwd_v2.
// __launch_bounds__(.., 1): with the bare block size ptxas held this kernel at 96 registers
// and spilled 8 bytes (16 accumulators and the 16 unrolled cell epilogues); stating the
// minimum of one block per SM lets it take what it needs.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
row_lstm_step_bwd_v3(const float* __restrict__ wp, const float* __restrict__ gates,
                     const float* __restrict__ c, const float* __restrict__ dh,
                     float* __restrict__ dc_carry, float* __restrict__ d_is, int n, int height,
                     int width, int hidden, int k, int row) {
    (void)n;
    row_lstm_v3_bwd_body(wp, gates, c, dh, dc_carry, d_is, 0, height, width, hidden, k, row,
                         lstm_v3_tile_of_block(width, hidden), true);
}

// Unfused backward, second half (v3 tiles): as row_lstm_ss_bwd_data_v2.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_bwd_data_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                        float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                        int k, int row) {
    (void)n;
    // The unfused body reads d_is only: the cast is never written through.
    row_lstm_v3_bwd_body(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                         hidden, k, row, lstm_v3_tile_of_block(width, hidden), false);
}

// Unfused backward, second half, at tf32 / bf16 (the rounded twins of row_lstm_ss_bwd_data_v3:
// the same launch, the staged d_is and each packed weight word rounded to P on load, fp32
// accumulation).
template <int P>
PIXELRNN_DEVICE void row_lstm_ss_bwd_data_rounded(const float* wp, const float* d_is,
                                                  float* dh_carry, int height, int width,
                                                  int hidden, int k, int row) {
    // The unfused body reads d_is only: the cast is never written through.
    row_lstm_v3_bwd_body<P>(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                            hidden, k, row, lstm_v3_tile_of_block(width, hidden), false);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_bwd_data_tf32_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                             float* __restrict__ dh_carry, int n, int height, int width,
                             int hidden, int k, int row) {
    (void)n;
    row_lstm_ss_bwd_data_rounded<PIXELRNN_ROUND_TF32>(wp, d_is, dh_carry, height, width, hidden,
                                                      k, row);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
row_lstm_ss_bwd_data_bf16_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                             float* __restrict__ dh_carry, int n, int height, int width,
                             int hidden, int k, int row) {
    (void)n;
    row_lstm_ss_bwd_data_rounded<PIXELRNN_ROUND_BF16>(wp, d_is, dh_carry, height, width, hidden,
                                                      k, row);
}

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
//       the fused step's arithmetic; diag_lstm_fwd_at_{tf32,bf16}_v1: the same body at tf32 /
//       bf16 (h and w_ss rounded as loaded, fp32 FMA: the CPU twin's rounded arithmetic),
//       selected by the backend's precision. Persistent: diag_lstm_persistent_fwd_v1, ONE launch for
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
//       ss_bwd_data}_v2, the same bodies over the skewed maps. Persistent:
//       diag_lstm_persistent_{fwd,bwd}_v2 and diag_lstm_skewed_persistent_{fwd,bwd}_v2
//       (lstm_persistent.cuh: one thread-block cluster per image over the same v2 bodies,
//       each block's slice of the state weight in shared memory). The skewed gate and the
//       one-position kernels: v1 only.
//   v8: the v2 step kernels with the product's weight words read 8 features at a time
//       (diag_lstm_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8, kernels/diag_lstm_v8.cu: v2's
//       launches, tiles and bits).
//   v3: v2, except the backward through time: diag_lstm_step_bwd_v3, diag_lstm_ss_bwd_data_v3
//       and the materialised layout's diag_lstm_skewed_{step_bwd,ss_bwd_data}_v3 register-tile
//       the transposed product 4 positions x 4 units per thread, blocks of 16 positions x 128
//       units (diag_lstm_v3.cuh, lstm_v3.cuh): 8 FLOPs per shared word instead of v2's 2, same
//       summation order. The forward, weight gradient and persistent kernels of v3 are v2's.
//   tf32 v2 / bf16 v2, tf32 v3 / bf16 v3 (the unfused recurrence at tf32 / bf16 over the
//       folded layout, selected by the backend's precision under every version; the number
//       names the fp32 version each is the rounded twin of): diag_lstm_ss_fwd_{tf32,bf16}_v2
//       (diag_lstm_ss_fwd_v2's body and launch) and diag_lstm_ss_bwd_data_{tf32,bf16}_v3
//       (diag_lstm_ss_bwd_data_v3's), the bodies instantiated with P = PIXELRNN_ROUND_TF32 /
//       _BF16: each GEMM operand (staged h or d_is, every packed weight word) rounded on load,
//       fp32 FMA, as row_lstm.cu's rounded kernels (which say why that is the CPU twin's
//       arithmetic). The fp32 kernels are the P = PIXELRNN_ROUND_FP32 instantiations, code and
//       bits unchanged. The materialised layout has no rounded kernels (it refuses tf32 / bf16).
//
// Files (kernels are looked up by name, so the op's kernels may live in several modules):
// diag_lstm.cu (this file: the folded layout's kernels), diag_lstm_skewed.cu (the materialised
// layout's), lstm_persistent.cuh (the persistent v2 kernels of both scans, thread-block
// clusters, compute_90); diag_lstm.cuh (the device code of v1 and of the unit functions, both
// layouts), diag_lstm_v2.cuh (the v2 tile bodies, shared by the stepwise and persistent v2
// kernels).
//
// Layout: is, gates, d_is [n, H, W, 4h] (blocks [o, f, i, g]); h, c, dh [n, H, W, h];
// w_ss, dw [4h, h, 2, 1]: element (o, v, t, 0) at (o*h + v)*2 + t, tap 0 reads the pixel above
// (r-1, j), tap 1 the pixel to the left (r, j-1).
// Positions of anti-diagonal s, k = 0 .. count-1: lo = max(0, s-W+1), (lo+k, s-lo-k),
// count = min(s, H-1) - lo + 1.
#include "diag_lstm.cuh"
#include "diag_lstm_v2.cuh"
#include "diag_lstm_v3.cuh"
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

// One position (i, j) of the fused forward for every image (incremental sampling), the
// state-to-state operands rounded to P (diag_lstm_unit_fwd): `is` is [n, 4h], the maps h, c
// hold the pixel above and the pixel to the left; writes h(i, j), c(i, j). The body of
// diag_lstm_fwd_at_{,tf32_,bf16_}v1.
template <int P>
PIXELRNN_DEVICE void diag_lstm_fwd_at_body(const float* __restrict__ is,
                                           const float* __restrict__ w, float* __restrict__ h,
                                           float* __restrict__ c, int n, int height, int width,
                                           int hidden, int i, int j) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * hidden;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width * hidden;
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int u = (int)(idx % hidden);
        const pixelrnn_index_t b = idx / hidden;
        diag_lstm_unit_fwd<P>(is + b * 4 * hidden, w, DIAG_LSTM_W_GLOBAL(hidden),
                              h + b * plane, c + b * plane, 0, width, 0, hidden, i, j, u);
    }
}

// Launch (diag_lstm_fwd_at_v1, _tf32_v1, _bf16_v1): blockDim.x = PIXELRNN_BLOCK, one thread
// per (b, u): any gridDim.x (grid-stride), e.g. ceil(n * h / PIXELRNN_BLOCK).
// One position of the fused forward at fp32 (diag_lstm_fwd_at_body).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_fwd_at_v1(const float* __restrict__ is, const float* __restrict__ w,
                    float* __restrict__ h, float* __restrict__ c, int n, int height, int width,
                    int hidden, int i, int j) {
    diag_lstm_fwd_at_body<PIXELRNN_ROUND_FP32>(is, w, h, c, n, height, width, hidden, i, j);
}

// diag_lstm_fwd_at_v1 at tf32: h and w_ss rounded to tf32 as loaded, fp32 FMA.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_fwd_at_tf32_v1(const float* __restrict__ is, const float* __restrict__ w,
                         float* __restrict__ h, float* __restrict__ c, int n, int height,
                         int width, int hidden, int i, int j) {
    diag_lstm_fwd_at_body<PIXELRNN_ROUND_TF32>(is, w, h, c, n, height, width, hidden, i, j);
}

// diag_lstm_fwd_at_v1 at bf16: h and w_ss rounded to bf16 as loaded, fp32 FMA.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
diag_lstm_fwd_at_bf16_v1(const float* __restrict__ is, const float* __restrict__ w,
                         float* __restrict__ h, float* __restrict__ c, int n, int height,
                         int width, int hidden, int i, int j) {
    diag_lstm_fwd_at_body<PIXELRNN_ROUND_BF16>(is, w, h, c, n, height, width, hidden, i, j);
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

// Launch (every diag_lstm_*_v2 step kernel): blockDim.x = LSTM_V2_THREADS (128),
// gridDim = (n * ceil(count / 16), ceil(h / 32)), count the positions of anti-diagonal
// `step`; `wp` from lstm_pack_ss_v2 (transposed = 0 for the forward kernels, 1 for the
// backward ones).
// Fused forward of one anti-diagonal (v2 tiles): as diag_lstm_step_fwd_v1.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_step_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                      float* __restrict__ h, float* __restrict__ c, float* __restrict__ gates,
                      int n, int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v2_fwd_body(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), h,
                          c, gates, height, width, hidden, width, 0, step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          true);
}

// Unfused forward, first half (v2 tiles): the pre-activation of anti-diagonal `step` into the
// gates map (lstm_gates_fwd_v1 activates it).
// __launch_bounds__(.., 1): with the bare block size ptxas held this kernel at 80 registers
// and spilled 4-8 bytes; stating the minimum of one block per SM lets it take what it needs.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
diag_lstm_ss_fwd_v2(const float* __restrict__ is, const float* __restrict__ wp,
                    const float* __restrict__ h, float* __restrict__ gates, int n, int height,
                    int width, int hidden, int step) {
    (void)n;
    // The unfused body reads h only: the cast is never written through.
    diag_lstm_v2_fwd_body(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS),
                          const_cast<float*>(h), 0, gates, height, width, hidden, width, 0, step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          false);
}

// Unfused forward at tf32 / bf16 (the rounded twins of diag_lstm_ss_fwd_v2: the same launch,
// the staged h and each packed weight word rounded to P on load, fp32 accumulation).
template <int P>
PIXELRNN_DEVICE void diag_lstm_ss_fwd_rounded(const float* is, const float* wp, const float* h,
                                              float* gates, int height, int width, int hidden,
                                              int step) {
    // The unfused body reads h only: the cast is never written through.
    diag_lstm_v2_fwd_body<P>(is, lstm_wview_packed_fwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS),
                             const_cast<float*>(h), 0, gates, height, width, hidden, width, 0,
                             step,
                             lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                             false);
}

// __launch_bounds__(.., 1): as diag_lstm_ss_fwd_v2.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
diag_lstm_ss_fwd_tf32_v2(const float* __restrict__ is, const float* __restrict__ wp,
                         const float* __restrict__ h, float* __restrict__ gates, int n,
                         int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_ss_fwd_rounded<PIXELRNN_ROUND_TF32>(is, wp, h, gates, height, width, hidden, step);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS, 1)
diag_lstm_ss_fwd_bf16_v2(const float* __restrict__ is, const float* __restrict__ wp,
                         const float* __restrict__ h, float* __restrict__ gates, int n,
                         int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_ss_fwd_rounded<PIXELRNN_ROUND_BF16>(is, wp, h, gates, height, width, hidden, step);
}

// Fused backward of one anti-diagonal (v2 tiles): as diag_lstm_step_bwd_v1.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_step_bwd_v2(const float* __restrict__ wp, const float* __restrict__ gates,
                      const float* __restrict__ c, const float* __restrict__ dh,
                      float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                      int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v2_bwd_body(lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), gates,
                          c, dh, dc_carry, d_is, 0, height, width, hidden, width, 0, step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          true);
}

// Unfused backward, second half (v2 tiles), called for step = s-1 after lstm_gates_bwd_v1 of
// anti-diagonal s: dh_carry of anti-diagonal `step` from its consumers on step+1.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_ss_bwd_data_v2(const float* __restrict__ wp, const float* __restrict__ d_is,
                         float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                         int step) {
    (void)n;
    diag_lstm_v2_bwd_body(lstm_wview_packed_bwd(wp, hidden, blockIdx.y * LSTM_V2_UNITS), 0, 0, 0,
                          0, const_cast<float*>(d_is), dh_carry, height, width, hidden, width, 0,
                          step,
                          lstm_v2_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          false);
}


// Launch (diag_lstm_step_bwd_v3, diag_lstm_ss_bwd_data_v3): blockDim.x = LSTM_V2_THREADS (128),
// gridDim = (n * ceil(count / 16), ceil(h / 128)); `wp` from lstm_pack_ss_v2 (transposed = 1).
// Fused backward of one anti-diagonal (v3 tiles, diag_lstm_v3.cuh): as diag_lstm_step_bwd_v2.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_step_bwd_v3(const float* __restrict__ wp, const float* __restrict__ gates,
                      const float* __restrict__ c, const float* __restrict__ dh,
                      float* __restrict__ dc_carry, float* __restrict__ d_is, int n,
                      int height, int width, int hidden, int step) {
    (void)n;
    diag_lstm_v3_bwd_body(wp, gates, c, dh, dc_carry, d_is, 0, height, width, hidden, width, 0,
                          step,
                          lstm_v3_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          true);
}

// Unfused backward, second half (v3 tiles): as diag_lstm_ss_bwd_data_v2.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_ss_bwd_data_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                         float* __restrict__ dh_carry, int n, int height, int width, int hidden,
                         int step) {
    (void)n;
    // The unfused body reads d_is only: the cast is never written through.
    diag_lstm_v3_bwd_body(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                          hidden, width, 0, step,
                          lstm_v3_tile_of_block(diag_lstm_count(step, height, width), hidden),
                          false);
}

// Unfused backward, second half, at tf32 / bf16 (the rounded twins of
// diag_lstm_ss_bwd_data_v3: the same launch, the staged d_is and each packed weight word
// rounded to P on load, fp32 accumulation).
template <int P>
PIXELRNN_DEVICE void diag_lstm_ss_bwd_data_rounded(const float* wp, const float* d_is,
                                                   float* dh_carry, int height, int width,
                                                   int hidden, int step) {
    // The unfused body reads d_is only: the cast is never written through.
    diag_lstm_v3_bwd_body<P>(wp, 0, 0, 0, 0, const_cast<float*>(d_is), dh_carry, height, width,
                             hidden, width, 0, step,
                             lstm_v3_tile_of_block(diag_lstm_count(step, height, width), hidden),
                             false);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_ss_bwd_data_tf32_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                              float* __restrict__ dh_carry, int n, int height, int width,
                              int hidden, int step) {
    (void)n;
    diag_lstm_ss_bwd_data_rounded<PIXELRNN_ROUND_TF32>(wp, d_is, dh_carry, height, width, hidden,
                                                       step);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_V2_THREADS)
diag_lstm_ss_bwd_data_bf16_v3(const float* __restrict__ wp, const float* __restrict__ d_is,
                              float* __restrict__ dh_carry, int n, int height, int width,
                              int hidden, int step) {
    (void)n;
    diag_lstm_ss_bwd_data_rounded<PIXELRNN_ROUND_BF16>(wp, d_is, dh_carry, height, width, hidden,
                                                       step);
}

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
//   v2 (the state-to-state weight gradient of both scans, selected per scan as version 2 of
//       "row_lstm" / "diag_lstm"): lstm_ss_bwd_weight_v2, dw_ss as one GEMM over positions,
//       M = 4h gate rows x N = taps*h (tap, input unit) columns, K = n*H*W positions: 64 x 64
//       block tiles, 16 positions per shared tile loaded coalesced (lanes along the gate rows
//       of dpre, along the units of the tap-shifted h map), 8 x 8 register tiles read as
//       float4 (8 FLOPs per shared word), K split over gridDim.z into fixed position ranges
//       written to a partial buffer; lstm_ss_bwd_weight_sum_v2 adds the partials in split
//       order (deterministic, no atomics). The scans differ only in the taps' offsets.
//       The v1 reductions (one thread per weight element) are row_lstm_ss_bwd_weight_v1 and
//       diag_lstm_ss_bwd_weight_v1.
//   v3 (the fp32 weight gradient's default, Variants::lstm_weight_fp32; v2 stays selectable):
//       lstm_ss_bwd_weight_v3 in kernels/lstm_weight.cu, the same GEMM and partials' sum in
//       masked_conv2d_bwd_weight_v2's pipeline (kernels/wgrad_gemm.cuh): 128 x 128 tiles of
//       256 threads, double-buffered, no division in the K loop.
//   v4 (fp32 weight gradient, selectable): lstm_ss_bwd_weight_v4 in kernels/lstm_weight.cu,
//       v3's launch, partials and bits with the tiles staged by cp.async in 4 stages
//       (wgrad_gemm_async, as masked_conv2d_bwd_weight_v3).
//   tf32 v1 / bf16 v1 (the weight gradient at tf32 / bf16 with Variants::lstm_weight V1,
//       for the fused and the unfused recurrence under every version):
//       lstm_ss_bwd_weight_{tf32,bf16}_v1, v2's GEMM with
//       both operands rounded as they are staged (cvt.rna.tf32 / cvt.rn.bf16, mma.cuh), fp32
//       FMA accumulation, summed by lstm_ss_bwd_weight_sum_v2. A product of two rounded
//       operands is exact in fp32, so this is the CPU twin's arithmetic (cpu/lstm.rs at the
//       same precision) without tensor cores; its tensor-core version is
//       lstm_ss_bwd_weight_{tf32,bf16}_v2 (kernels/lstm_mma_weight.cu, the default; these
//       stay selectable, Variants::lstm_weight), whose partials this same sum adds.
//       lstm_pack_ss_v2: the state weight packed once per call
//       into the unit-contiguous layouts the v2 step kernels read (forward [taps, h, 4, h],
//       backward [taps, 4h, h]; see the kernel).
//
// Layout (NHWC, shared with the CPU twin):
//   gates [n, H, W, 4h]  blocks [o, f, i, g], activated (sigmoid, sigmoid, sigmoid, tanh)
//   h, c  [n, H, W, h]
//   dw    [4h, h, 1, k] (Row LSTM) or [4h, h, 2, 1] (Diagonal): element (o, v, t) at
//         (o*h + v)*taps + t
// Positions of step s, k = 0 .. count-1:
//   row:      (s, k), count = W, the cell continues (s-1, k) (none in row 0);
//   diagonal: lo = max(0, s-W+1), (lo+k, s-lo-k), count = min(s, H-1) - lo + 1, the cell
//             continues (r, j-1) (none in column 0).
#include "common.cuh"
#include "mma.cuh"

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

// The state-to-state weight gradient as a GEMM (v2): dw(o, v, t) = sum over positions p of
// d_is(p, o) * h(source_t(p), v), where tap t of position (r, j) reads (r - dy_t, j + dx_t):
// Row LSTM (diagonal = 0): dy = 1, dx = t - k/2; Diagonal LSTM (diagonal = 1): tap 0 the
// pixel above (1, 0), tap 1 the pixel to the left (0, -1); a source outside the image
// contributes 0 (the zero padding of the convolution, the skew's padding).
#define LSTM_WG_TILE 64   // block tile: 64 gate rows x 64 (tap, unit) columns
#define LSTM_WG_K 16      // positions per shared tile
#define LSTM_WG_THREADS 64  // 8 x 8 threads, each an 8 x 8 register tile

// Launch: blockDim.x = LSTM_WG_THREADS (64), gridDim = (ceil(taps*h / 64), ceil(4h / 64),
// splits); split z sums the positions [z*chunk, min((z+1)*chunk, n*H*W)) (`chunk` a multiple
// of LSTM_WG_K; an empty range writes zeros). `partial` is [splits, mpad, npad] with
// mpad = 64 * gridDim.y, npad = 64 * gridDim.x: every element is written (rows and columns
// past 4h and taps*h with zeros), so the buffer needs no clearing. `taps` = k for the Row
// LSTM, 2 for the Diagonal LSTM.
// Loads: lanes take consecutive gate rows of one position's dpre (128-byte requests) and
// consecutive units of one position's shifted h row; shared stores conflict-free (a warp
// writes one row of 32 consecutive words). Inner loop: per position, two float4 reads of
// each tile (the 8 lanes of a warp with one threadIdx.y read one float4: a broadcast) and
// 64 FMAs.
// The body of lstm_ss_bwd_weight_v2 and its rounded versions: P = PIXELRNN_ROUND_FP32 loads
// the operands as they are (v2's bits), PIXELRNN_ROUND_TF32 / _BF16 round each as it is staged
// (mma.cuh's pixelrnn_round_as), the GEMM's FMAs unchanged.
template <int P>
PIXELRNN_DEVICE void lstm_ss_bwd_weight_body(const float* __restrict__ h,
                                             const float* __restrict__ d_is,
                                             float* __restrict__ partial, int n, int height,
                                             int width, int hidden, int taps, int diagonal,
                                             int chunk) {
    PIXELRNN_SHARED(float, as, [LSTM_WG_K][LSTM_WG_TILE]);
    PIXELRNN_SHARED(float, bs, [LSTM_WG_K][LSTM_WG_TILE]);
    const int g4 = 4 * hidden;
    const int cols = taps * hidden;
    const int tid = threadIdx.x;
    const int tx = tid % 8, ty = tid / 8;
    const int m0 = blockIdx.y * LSTM_WG_TILE;
    const int n0 = blockIdx.x * LSTM_WG_TILE;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t k_begin = (pixelrnn_index_t)blockIdx.z * chunk;
    const pixelrnn_index_t k_end =
        k_begin + chunk < positions ? k_begin + chunk : positions;

    // This thread's load column of each tile: gate row m0 + tid, and (tap, unit) column
    // n0 + tid with its tap's offsets (fixed for the whole K loop).
    const int am = m0 + tid;
    const int bn = n0 + tid;
    const bool b_live = bn < cols;
    const int bt = b_live ? bn / hidden : 0;
    const int bv = b_live ? bn - bt * hidden : 0;
    const int dy = diagonal ? (bt == 0 ? 1 : 0) : 1;
    const int dx = diagonal ? (bt == 0 ? 0 : -1) : bt - taps / 2;
    const pixelrnn_index_t back = (pixelrnn_index_t)dy * width - dx;  // source = p - back

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#pragma unroll
        for (int c = 0; c < 8; ++c) acc[i][c] = 0.0f;
    }

    for (pixelrnn_index_t k0 = k_begin; k0 < k_end; k0 += LSTM_WG_K) {
#pragma unroll 4
        for (int kk = 0; kk < LSTM_WG_K; ++kk) {
            const pixelrnn_index_t p = k0 + kk;
            float a = 0.0f, b = 0.0f;
            if (p < k_end) {
                if (am < g4) a = d_is[p * g4 + am];
                if (b_live) {
                    const int j = (int)(p % width);
                    const int r = (int)((p / width) % height);
                    const int jj = j + dx;
                    if (r >= dy && jj >= 0 && jj < width) b = h[(p - back) * hidden + bv];
                }
            }
            as[kk][tid] = pixelrnn_round_as<P>(a);
            bs[kk][tid] = pixelrnn_round_as<P>(b);
        }
        __syncthreads();  // both tiles complete before any thread reads them
#pragma unroll 4
        for (int kk = 0; kk < LSTM_WG_K; ++kk) {
            const float4 a0 = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&as[kk][32 + ty * 4]);
            const float4 b0 = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&bs[kk][32 + tx * 4]);
            const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float bv8[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i) {
#pragma unroll
                for (int c = 0; c < 8; ++c) acc[i][c] = fmaf(av[i], bv8[c], acc[i][c]);
            }
        }
        __syncthreads();  // every thread is done with the tiles before they are refilled
    }

    // Rows ty*4 .. +3 and 32 + ty*4 .. +3, columns tx*4 .. +3 and 32 + tx*4 .. +3 of the tile,
    // as float4 stores (a warp writes 4 rows x 128 contiguous bytes each).
    const int npad = gridDim.x * LSTM_WG_TILE;
    const pixelrnn_index_t mpad = (pixelrnn_index_t)gridDim.y * LSTM_WG_TILE;
    float* out = partial + (blockIdx.z * mpad + m0) * npad + n0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int row = (i < 4 ? 0 : 32) + ty * 4 + (i % 4);
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            const int c = half * 4;
            *reinterpret_cast<float4*>(&out[(pixelrnn_index_t)row * npad + half * 32 + tx * 4]) =
                make_float4(acc[i][c], acc[i][c + 1], acc[i][c + 2], acc[i][c + 3]);
        }
    }
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_WG_THREADS)
lstm_ss_bwd_weight_v2(const float* __restrict__ h, const float* __restrict__ d_is,
                      float* __restrict__ partial, int n, int height, int width, int hidden,
                      int taps, int diagonal, int chunk) {
    lstm_ss_bwd_weight_body<PIXELRNN_ROUND_FP32>(h, d_is, partial, n, height, width, hidden, taps,
                                          diagonal, chunk);
}

// lstm_ss_bwd_weight_v2 at tf32 / bf16: the same launch, the same partials' layout.
PIXELRNN_KERNEL void __launch_bounds__(LSTM_WG_THREADS)
lstm_ss_bwd_weight_tf32_v1(const float* __restrict__ h, const float* __restrict__ d_is,
                           float* __restrict__ partial, int n, int height, int width, int hidden,
                           int taps, int diagonal, int chunk) {
    lstm_ss_bwd_weight_body<PIXELRNN_ROUND_TF32>(h, d_is, partial, n, height, width, hidden, taps,
                                          diagonal, chunk);
}

PIXELRNN_KERNEL void __launch_bounds__(LSTM_WG_THREADS)
lstm_ss_bwd_weight_bf16_v1(const float* __restrict__ h, const float* __restrict__ d_is,
                           float* __restrict__ partial, int n, int height, int width, int hidden,
                           int taps, int diagonal, int chunk) {
    lstm_ss_bwd_weight_body<PIXELRNN_ROUND_BF16>(h, d_is, partial, n, height, width, hidden, taps,
                                          diagonal, chunk);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per weight element (4h * h * taps): any
// gridDim.x (grid-stride). dw(o, v, t) = the sum over z = 0, 1, .. splits-1, in that order, of
// partial[z, o, t*h + v] (lstm_ss_bwd_weight_v2's layout): the same bits whatever the
// schedule. Lanes take consecutive dw elements (coalesced stores).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_ss_bwd_weight_sum_v2(const float* __restrict__ partial, float* __restrict__ dw,
                          int hidden, int taps, int splits, int mpad, int npad) {
    const pixelrnn_index_t total = (pixelrnn_index_t)4 * hidden * hidden * taps;
    const pixelrnn_index_t plane = (pixelrnn_index_t)mpad * npad;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        const int t = (int)(idx % taps);
        const int v = (int)((idx / taps) % hidden);
        const int o = (int)(idx / ((pixelrnn_index_t)taps * hidden));
        const float* src = partial + (pixelrnn_index_t)o * npad + t * hidden + v;
        float acc = 0.0f;
        for (int z = 0; z < splits; ++z) acc += src[z * plane];
        dw[idx] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, one thread per element (4h * h * taps): any gridDim.x
// (grid-stride). Packs the state weight w [4h, h, .., taps] (element (o, v, t) at
// (o*h + v)*taps + t, o = x*h + u) once per call for the v2 step kernels, so that the lanes of
// a warp (consecutive units u) read consecutive words:
//   transposed = 0 (forward):  wp[((t*h + v)*4 + x)*h + u]  (the product over inputs v)
//   transposed = 1 (backward): wp[(t*4h + o)*h + v]         (over outputs o for inputs v)
// (the persistent kernels' shared-memory layouts, pixelrnn_lstm_stage_weights, in global
// memory). One thread per packed element: the writes are coalesced, the reads gather; the
// weight is small and packed once per call, not per step.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
lstm_pack_ss_v2(const float* __restrict__ w, float* __restrict__ wp, int hidden, int taps,
                int transposed) {
    const int g4 = 4 * hidden;
    const pixelrnn_index_t total = (pixelrnn_index_t)g4 * hidden * taps;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t idx = pixelrnn_global_thread(); idx < total; idx += stride) {
        int t, v, o;
        if (transposed) {
            v = (int)(idx % hidden);
            o = (int)((idx / hidden) % g4);
            t = (int)(idx / ((pixelrnn_index_t)hidden * g4));
        } else {
            o = (int)(idx % g4);  // x*h + u: [4, h] is the 4h gate rows in order
            v = (int)((idx / g4) % hidden);
            t = (int)(idx / ((pixelrnn_index_t)g4 * hidden));
        }
        wp[idx] = w[((pixelrnn_index_t)o * hidden + v) * taps + t];
    }
}

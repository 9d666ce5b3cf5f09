// masked_conv2d_weight.cu: the masked_conv2d weight and bias gradients (the index of every
// version: kernels/masked_conv2d.cu's header): bwd_weight v1 (one block per weight) with
// bwd_bias v1, and bwd_weight v2 and v3 (implicit GEMM, split K; v3 through cp.async) with
// their fixed-order second pass bwd_weight_reduce v1. CPU twin: src/backend/cpu/masked_conv2d.rs; host side:
// src/backend/cuda/masked_conv2d.rs; selection: MaskedConv2dWeight in
// src/backend/cuda/variants/.
#include "masked_conv2d.cuh"
#include "wgrad_gemm.cuh"

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = cout * cin * kh * kw (one block per weight
// element). dw[o, i, ky, kx] = sum over positions p of x[p + tap offset, i] * dy[p, o]; a
// masked weight (or a tap outside the live prefix) is written as exactly 0 by the whole block,
// which leaves before the reduction's barriers.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_weight_v1(const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ dw, int n, int height, int width, int cin,
                            int cout, int kh, int kw, int taps, int mask, int groups,
                            int out_block, int in_block) {
    PIXELRNN_SHARED(float, scratch, [PIXELRNN_WARP]);
    const int khw = kh * kw;
    const pixelrnn_index_t e = blockIdx.x;
    const int t = (int)(e % khw);
    const int i = (int)((e / khw) % cin);
    const int o = (int)(e / ((pixelrnn_index_t)khw * cin));
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx;
    if (t >= taps || !masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)) {
        if (threadIdx.x == 0) dw[e] = 0.0f;
        return;
    }
    const int ky = t / kw, kx = t - ky * kw;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    float acc = 0.0f;
    for (pixelrnn_index_t p = threadIdx.x; p < positions; p += blockDim.x) {
        const int xx = (int)(p % width);
        const int yy = (int)((p / width) % height);
        const int iy = yy + ky - cy, ix = xx + kx - cx;
        if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
        // Same image: the input position is p shifted by the tap's offset.
        const pixelrnn_index_t q = p + (pixelrnn_index_t)(ky - cy) * width + (kx - cx);
        acc += x[q * cin + i] * dy[p * cout + o];
    }
    acc = pixelrnn_block_sum(acc, scratch);
    if (threadIdx.x == 0) dw[e] = acc;
}

// bwd_weight v2 and v3 are the split-K GEMM of kernels/wgrad_gemm.cuh (128 x 128 tiles of 256
// threads, 8x8 micro-tiles, 8 positions per chunk) with the live taps as its columns: v2
// through wgrad_gemm (double-buffered through registers), v3 through wgrad_gemm_async (4
// cp.async stages), the same bits. The bias sums meet in two halves (row0 = 0, 1):
// masked_conv2d_bwd_weight_split's epilogue.

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (splits, ceil(max(taps*cin, 1) / 128),
// ceil(cout / 128)). Block (s, bn, bm) reduces positions [s*chunk, min((s+1)*chunk, n*H*W))
// (chunk a multiple of WGRAD_K) into the partial tile
//   part[(s * ld_m + o) * ld_n + c] = sum over its positions p of dy[p, o] * x[p + off(t), i]
// for o in bm*128.. and columns c = t*cin + i in bn*128.. (ld_m = gridDim.z*128, ld_n =
// gridDim.y*128: every block writes its whole tile, zeros past the edges, so the buffer is
// fully written), and the blocks of bn = 0 the bias partials part_db[s * ld_m + o] = sum of
// dy[p, o]. Every partial is one thread's sum in position order: no atomics, the same bits on
// every schedule. masked_conv2d_bwd_weight_reduce_v1 finishes dw and db. The centre tap's
// masked pairs are computed here like the others and zeroed by the reduction; the taps after
// the centre are not columns at all.
// ASYNC picks the pipeline (v3) over the register double buffer (v2).
template <bool ASYNC>
PIXELRNN_DEVICE void masked_conv2d_bwd_weight_split(const float* __restrict__ x,
                                                    const float* __restrict__ dy,
                                                    float* __restrict__ part,
                                                    float* __restrict__ part_db, int n,
                                                    int height, int width, int cin, int cout,
                                                    int kh, int kw, int taps,
                                                    pixelrnn_index_t chunk) {
    PIXELRNN_SHARED(float, dys, [ASYNC ? WGRAD_STAGES : 2][WGRAD_K][WGRAD_M]);
    PIXELRNN_SHARED(float, xs, [ASYNC ? WGRAD_STAGES : 2][WGRAD_K][WGRAD_N]);
    const int tid = threadIdx.x;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t p_begin = (pixelrnn_index_t)blockIdx.x * chunk;
    const pixelrnn_index_t p_end =
        p_begin + chunk < positions ? p_begin + chunk : positions;
    const int o0 = blockIdx.z * WGRAD_M;
    const int c0 = blockIdx.y * WGRAD_N;
    const int ld_m = gridDim.z * WGRAD_M, ld_n = gridDim.y * WGRAD_N;
    const bool bias_block = blockIdx.y == 0;

    // The loader's fixed column and its tap (decoded once: no division in the K loop).
    WgradLoader l;
    const int c_ld = wgrad_loader_column(l, o0, c0, cout, taps * cin);
    const int t = l.col_ok ? c_ld / cin : 0;
    l.i = l.col_ok ? c_ld - t * cin : 0;
    l.tap_dy = t / kw - kh / 2;
    l.tap_dx = t % kw - kw / 2;
    l.tap_shift = (pixelrnn_index_t)l.tap_dy * width + l.tap_dx;
    wgrad_loader_rows(l, p_begin, height, width);

    float acc[8][8];
    // The bias blocks' column sums of dy, from the values each thread loads itself (no shared
    // reads): rows row0, row0 + 2, .. of column tid % 128; the two halves meet after the loop.
    float bias_acc;
    if (ASYNC) {
        wgrad_gemm_async(x, dy, dys, xs, acc, bias_block, bias_acc, l, p_begin, p_end, height,
                         width, cin, cout);
    } else {
        wgrad_gemm(x, dy, dys, xs, acc, bias_acc, l, p_begin, p_end, height, width, cin, cout);
    }
    wgrad_store_tile(part + ((pixelrnn_index_t)blockIdx.x * ld_m + o0) * ld_n + c0, acc, ld_n);
    if (bias_block) {  // uniform over the block: the barrier is safe
        // The K loop ended with a barrier: dys is free. Half 1 hands its sums to half 0,
        // which adds them in a fixed order.
        const int col = tid % WGRAD_N;
        if (l.row0 == 1) dys[0][0][col] = bias_acc;
        __syncthreads();
        if (l.row0 == 0) {
            part_db[(pixelrnn_index_t)blockIdx.x * ld_m + o0 + col] = bias_acc + dys[0][0][col];
        }
    }
}

PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_bwd_weight_v2(const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ part, float* __restrict__ part_db, int n,
                            int height, int width, int cin, int cout, int kh, int kw, int taps,
                            pixelrnn_index_t chunk) {
    masked_conv2d_bwd_weight_split<false>(x, dy, part, part_db, n, height, width, cin, cout, kh,
                                          kw, taps, chunk);
}

// v2's launch, partials and bits, its tiles staged by cp.async (wgrad_gemm_async).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_bwd_weight_v3(const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ part, float* __restrict__ part_db, int n,
                            int height, int width, int cin, int cout, int kh, int kw, int taps,
                            pixelrnn_index_t chunk) {
    masked_conv2d_bwd_weight_split<true>(x, dy, part, part_db, n, height, width, cin, cout, kh,
                                         kw, taps, chunk);
}


// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim = (cout * max(ceil(cin / 32), 1),
// ceil(kh*kw / 32)).
// Block (o, i-chunk i0.., tap chunk t0..) finishes dw[o, i, t] for its 32 x 32 (or fewer)
// (i, t): the sum over s = 0, 1, .., splits-1 in that order of part[(s * ld_m + o) * ld_n +
// t*cin + i] (the partials of masked_conv2d_bwd_weight_v2), exactly 0 where the weight is
// masked or the tap is not live. Reads go along the partial rows (c = t*cin + i consecutive),
// writes along dw (t fastest, then i): through a shared tile [i][t] of odd row stride
// (conflict-free columns). The blocks of i-chunk 0 and tap chunk 0 also write db[o], the sum
// over s of part_db[s * ld_m + o] in the same order.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_weight_reduce_v1(const float* __restrict__ part,
                                   const float* __restrict__ part_db, float* __restrict__ dw,
                                   float* __restrict__ db, int splits, int ld_m, int ld_n,
                                   int cin, int kh, int kw, int taps, int mask, int groups,
                                   int out_block, int in_block) {
    PIXELRNN_SHARED(float, tile, [MASKED_CONV2D_WR_TILE * (MASKED_CONV2D_WR_TILE + 1)]);
    // cin = 0 still has one block per output feature: it writes db.
    const int ichunks = max(1, pixelrnn_ceil_div(cin, MASKED_CONV2D_WR_TILE));
    const int o = blockIdx.x / ichunks;
    const int i0 = (blockIdx.x - o * ichunks) * MASKED_CONV2D_WR_TILE;
    const int t0 = blockIdx.y * MASKED_CONV2D_WR_TILE;
    const int khw = kh * kw, centre = (kh / 2) * kw + kw / 2;
    const int ic = min(MASKED_CONV2D_WR_TILE, cin - i0);
    const int tc = min(MASKED_CONV2D_WR_TILE, khw - t0);
    const int stride = tc | 1;  // odd: the 32 rows of one tap column hit 32 banks
    const pixelrnn_index_t plane = (pixelrnn_index_t)ld_m * ld_n;
    for (int j = threadIdx.x; j < ic * tc; j += blockDim.x) {
        const int tl = j / ic, il = j - tl * ic;
        const int t = t0 + tl, i = i0 + il;
        float v = 0.0f;
        if (t < taps && masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)) {
            const float* p = part + (pixelrnn_index_t)o * ld_n + t * cin + i;
            for (int s = 0; s < splits; ++s) v += p[s * plane];
        }
        tile[il * stride + tl] = v;
    }
    if (threadIdx.x == 0 && i0 == 0 && t0 == 0) {
        float b = 0.0f;
        for (int s = 0; s < splits; ++s) b += part_db[(pixelrnn_index_t)s * ld_m + o];
        db[o] = b;
    }
    __syncthreads();
    float* out = dw + ((pixelrnn_index_t)o * cin + i0) * khw + t0;
    for (int j = threadIdx.x; j < ic * tc; j += blockDim.x) {
        const int il = j / tc, tl = j - il * tc;
        out[(pixelrnn_index_t)il * khw + tl] = tile[il * stride + tl];
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = cout (one block per output feature).
// db[o] = sum over all positions of dy[p, o].
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_bias_v1(const float* __restrict__ dy, float* __restrict__ db,
                          pixelrnn_index_t positions, int cout) {
    PIXELRNN_SHARED(float, scratch, [PIXELRNN_WARP]);
    const int o = blockIdx.x;
    float acc = 0.0f;
    for (pixelrnn_index_t p = threadIdx.x; p < positions; p += blockDim.x) {
        acc += dy[p * cout + o];
    }
    acc = pixelrnn_block_sum(acc, scratch);
    if (threadIdx.x == 0) db[o] = acc;
}

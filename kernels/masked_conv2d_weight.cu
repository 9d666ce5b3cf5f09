// masked_conv2d_weight.cu: the masked_conv2d weight and bias gradients (the index of every
// version: kernels/masked_conv2d.cu's header): bwd_weight v1 (one block per weight) with
// bwd_bias v1, and bwd_weight v2 (implicit GEMM, split K) with its fixed-order second pass
// bwd_weight_reduce v1. CPU twin: src/backend/cpu/masked_conv2d.rs; host side:
// src/backend/cuda/masked_conv2d.rs; selection: MaskedConv2dWeight in
// src/backend/cuda/variants/.
#include "masked_conv2d.cuh"

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

// Tile of bwd_weight v2: WG_M output features x WG_N (live tap, input feature) columns per
// block of 256 threads, each thread an 8x8 micro-tile (rows 4ty..4ty+3 and 64+4ty..64+4ty+3,
// columns 4tx.. and 64+4tx.. with tx = tid % 16, ty = tid / 16): per position k a thread reads
// 4 float4 (16 words) from shared memory for 64 FMAs, 8 FLOPs per word. The float4 reads of a
// warp (16 tx x 2 ty) cover 64 consecutive words of the x tile (2 wavefronts, the minimum for
// 16-byte loads) and 2 float4 of the dy tile (broadcast). WG_K positions per shared chunk.
#define MASKED_CONV2D_WG_M 128
#define MASKED_CONV2D_WG_N 128
#define MASKED_CONV2D_WG_K 8
// Each thread loads WG_LOADS rows of each tile per chunk, at one column: tid % 128.
#define MASKED_CONV2D_WG_LOADS (MASKED_CONV2D_WG_K * MASKED_CONV2D_WG_N / PIXELRNN_BLOCK)
#define MASKED_CONV2D_WG_ROW_STEP (PIXELRNN_BLOCK / MASKED_CONV2D_WG_N)
// The bias sums meet in two halves (row0 = 0, 1): masked_conv2d_bwd_weight_v2's epilogue.
static_assert(MASKED_CONV2D_WG_ROW_STEP == 2, "two loader rows per column");

// Moves a loader row (yy, xx) of one image forward by `step` positions in raster order (the
// image index is not tracked: a tap that stays inside the map stays in the same image, so the
// shifted position is the flattened one plus the tap's flat offset).
PIXELRNN_DEVICE void masked_conv2d_wg_advance(int& yy, int& xx, int step, int height,
                                              int width) {
    xx += step;
    while (xx >= width) {
        xx -= width;
        if (++yy == height) yy = 0;
    }
}

// One chunk of both tiles into registers: rows p = pk + row0 + WG_ROW_STEP * j of dy (at the
// thread's output feature o) and of x shifted by the thread's column's tap (at its input
// feature i); 0 past the split's end, outside the map, or past the matrix edge. Lanes of a
// warp share the row and take consecutive columns: consecutive words of dy, and consecutive
// words of x within one tap (taps of one kernel row are one position apart, so even a tile
// that spans several taps of a small cin reads runs of consecutive words).
PIXELRNN_DEVICE void masked_conv2d_wg_load(
    const float* __restrict__ x, const float* __restrict__ dy, float dv[MASKED_CONV2D_WG_LOADS],
    float xv[MASKED_CONV2D_WG_LOADS], pixelrnn_index_t pk, pixelrnn_index_t p_end, int row0,
    const int yy[MASKED_CONV2D_WG_LOADS], const int xx[MASKED_CONV2D_WG_LOADS], int o,
    bool o_ok, int i, bool col_ok, int tap_dy, int tap_dx, pixelrnn_index_t tap_shift,
    int height, int width, int cin, int cout) {
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
        const pixelrnn_index_t p = pk + row0 + MASKED_CONV2D_WG_ROW_STEP * j;
        const bool in = p < p_end;
        dv[j] = in && o_ok ? dy[p * cout + o] : 0.0f;
        const int iy = yy[j] + tap_dy, ix = xx[j] + tap_dx;
        const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
        xv[j] = in && col_ok && inside ? x[(p + tap_shift) * cin + i] : 0.0f;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (splits, ceil(max(taps*cin, 1) / 128),
// ceil(cout / 128)). Block (s, bn, bm) reduces positions [s*chunk, min((s+1)*chunk, n*H*W))
// (chunk a multiple of WG_K) into the partial tile
//   part[(s * ld_m + o) * ld_n + c] = sum over its positions p of dy[p, o] * x[p + off(t), i]
// for o in bm*128.. and columns c = t*cin + i in bn*128.. (ld_m = gridDim.z*128, ld_n =
// gridDim.y*128: every block writes its whole tile, zeros past the edges, so the buffer is
// fully written), and the blocks of bn = 0 the bias partials part_db[s * ld_m + o] = sum of
// dy[p, o]. Every partial is one thread's sum in position order: no atomics, the same bits on
// every schedule. masked_conv2d_bwd_weight_reduce_v1 finishes dw and db. The centre tap's
// masked pairs are computed here like the others and zeroed by the reduction; the taps after
// the centre are not columns at all.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK, 2)
masked_conv2d_bwd_weight_v2(const float* __restrict__ x, const float* __restrict__ dy,
                            float* __restrict__ part, float* __restrict__ part_db, int n,
                            int height, int width, int cin, int cout, int kh, int kw, int taps,
                            pixelrnn_index_t chunk) {
    PIXELRNN_SHARED(float, dys, [2][MASKED_CONV2D_WG_K][MASKED_CONV2D_WG_M]);
    PIXELRNN_SHARED(float, xs, [2][MASKED_CONV2D_WG_K][MASKED_CONV2D_WG_N]);
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t p_begin = (pixelrnn_index_t)blockIdx.x * chunk;
    const pixelrnn_index_t p_end =
        p_begin + chunk < positions ? p_begin + chunk : positions;
    const int o0 = blockIdx.z * MASKED_CONV2D_WG_M;
    const int c0 = blockIdx.y * MASKED_CONV2D_WG_N;
    const int ld_m = gridDim.z * MASKED_CONV2D_WG_M, ld_n = gridDim.y * MASKED_CONV2D_WG_N;
    const bool bias_block = blockIdx.y == 0;

    // The loader's fixed column (decoded once: no division in the K loop) and first row.
    const int col = tid % MASKED_CONV2D_WG_N, row0 = tid / MASKED_CONV2D_WG_N;
    const int o_ld = o0 + col;
    const bool o_ok = o_ld < cout;
    const int c_ld = c0 + col;
    const bool col_ok = c_ld < taps * cin;
    const int t = col_ok ? c_ld / cin : 0;
    const int i_ld = col_ok ? c_ld - t * cin : 0;
    const int tap_dy = t / kw - kh / 2, tap_dx = t % kw - kw / 2;
    const pixelrnn_index_t tap_shift = (pixelrnn_index_t)tap_dy * width + tap_dx;
    int yy[MASKED_CONV2D_WG_LOADS], xx[MASKED_CONV2D_WG_LOADS];
#pragma unroll
    for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
        const pixelrnn_index_t p = p_begin + row0 + MASKED_CONV2D_WG_ROW_STEP * j;
        xx[j] = (int)(p % width);
        yy[j] = (int)((p / width) % height);
    }

    float acc[8][8];
#pragma unroll
    for (int r = 0; r < 8; ++r) {
#pragma unroll
        for (int c = 0; c < 8; ++c) acc[r][c] = 0.0f;
    }
    // The bias blocks' column sums of dy, from the values each thread loads itself (no shared
    // reads): rows row0, row0 + 2, .. of column col; the two halves meet after the loop.
    float bias_acc = 0.0f;

    float dv[MASKED_CONV2D_WG_LOADS], xv[MASKED_CONV2D_WG_LOADS];
    int buf = 0;
    if (p_begin < p_end) {
        masked_conv2d_wg_load(x, dy, dv, xv, p_begin, p_end, row0, yy, xx, o_ld, o_ok, i_ld,
                              col_ok, tap_dy, tap_dx, tap_shift, height, width, cin, cout);
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) bias_acc += dv[j];
#pragma unroll
        for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
            dys[0][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = dv[j];
            xs[0][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = xv[j];
        }
    }
    __syncthreads();
    for (pixelrnn_index_t pk = p_begin; pk < p_end; pk += MASKED_CONV2D_WG_K) {
        // Software pipeline: the next chunk's global loads are in flight during this chunk's
        // FMAs, then land in the other buffer (read by nobody until the barrier below).
        const bool more = pk + MASKED_CONV2D_WG_K < p_end;
        if (more) {
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
                masked_conv2d_wg_advance(yy[j], xx[j], MASKED_CONV2D_WG_K, height, width);
            }
            masked_conv2d_wg_load(x, dy, dv, xv, pk + MASKED_CONV2D_WG_K, p_end, row0, yy, xx,
                                  o_ld, o_ok, i_ld, col_ok, tap_dy, tap_dx, tap_shift, height,
                                  width, cin, cout);
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) bias_acc += dv[j];
        }
#pragma unroll
        for (int k = 0; k < MASKED_CONV2D_WG_K; ++k) {
            masked_conv2d_fma_8x8(acc, dys[buf][k], xs[buf][k], tx, ty);
        }
        if (more) {
#pragma unroll
            for (int j = 0; j < MASKED_CONV2D_WG_LOADS; ++j) {
                dys[buf ^ 1][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = dv[j];
                xs[buf ^ 1][row0 + MASKED_CONV2D_WG_ROW_STEP * j][col] = xv[j];
            }
        }
        __syncthreads();
        buf ^= 1;
    }

    // The whole tile, as float4 rows: a warp stores 2 rows x 256 contiguous bytes.
    float* tile = part + ((pixelrnn_index_t)blockIdx.x * ld_m + o0) * ld_n + c0;
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const int m = (r < 4 ? 0 : 64) + 4 * ty + (r & 3);
        float* row = tile + (pixelrnn_index_t)m * ld_n;
        *reinterpret_cast<float4*>(row + 4 * tx) =
            make_float4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
        *reinterpret_cast<float4*>(row + 64 + 4 * tx) =
            make_float4(acc[r][4], acc[r][5], acc[r][6], acc[r][7]);
    }
    if (bias_block) {  // uniform over the block: the barrier is safe
        // The last loop iteration ended with a barrier: dys is free. Half 1 hands its sums to
        // half 0, which adds them in a fixed order.
        if (row0 == 1) dys[0][0][col] = bias_acc;
        __syncthreads();
        if (row0 == 0) {
            part_db[(pixelrnn_index_t)blockIdx.x * ld_m + o0 + col] = bias_acc + dys[0][0][col];
        }
    }
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

// masked_conv2d.cu: masked (or plain) 2-D convolution, stride 1, "same" zero padding, NHWC
// activations, weights [cout, cin, kh, kw]; forward, backward (input, weight, bias) and the
// one-position forward of incremental sampling. CPU twins: src/backend/cpu/masked_conv2d.rs
// and src/backend/cpu/masked_conv2d_at.rs; host side: src/backend/cuda/masked_conv2d.rs and
// src/backend/cuda/masked_conv2d_at.rs.
//
// The op's kernels live in three files by job, with what they share in masked_conv2d.cuh;
// this header is the index of all of them:
//   masked_conv2d.cu         fwd v1, v2 and bwd_data v1, v2 (direct, and the 64x64 GEMM)
//   masked_conv2d_packed.cu  fwd v3-v5, bwd_data v3-v5, pack v1, v2, pack_transposed v1, fwd_at
//                            v1 (the kernels that run from weights packed once per call)
//   masked_conv2d_weight.cu  bwd_weight v1-v3, bwd_weight_reduce v1, bwd_bias v1
//
// Versions:
//   fwd v1:        one thread per output element (position, feature), direct loops over the
//                  live taps only; the reference version.
//   fwd v2:        implicit GEMM: 64 positions x 64 output features per block of 256 threads
//                  (4x4 outputs per thread), K loop over live taps x cin in chunks of 16 staged
//                  in shared memory; plain fp32 FMA. The default before v3.
//   bwd_data v1:   one thread per input element, gathering over the taps and output features
//                  it feeds.
//   bwd_data v2:   implicit GEMM like fwd v2 with the roles swapped: 64 input positions x 64
//                  input features per block, K over live taps x cout.
//   fwd v3:        implicit GEMM in 128 positions x 128 features per block, 8x8 outputs per
//                  thread read as float4 from padded shared tiles, K (live taps x cin) in
//                  chunks of 8 register-staged into double-buffered shared tiles, from weights
//                  packed once per call by pack v1 (no mask test, no division in the K loop).
//                  The default before v4 (docs/kernels.md: the counters). 151 registers: one
//                  block of 8 warps per SM.
//   bwd_data v3:   fwd v3's GEMM with the roles swapped (dy gathered at -tap offsets, K = live
//                  taps x cout), from weights packed by pack_transposed v1.
//   fwd v4, bwd_data v4: v3's GEMM and bits at two resident blocks per SM
//                  (__launch_bounds__(256, 2), the chunk's 8 k steps not unrolled: 127 / 118
//                  registers, no spills), 16 warps per SM. The default (docs/kernels.md).
//   fwd v5, bwd_data v5: v3's GEMM and bits with both tiles staged by cp.async
//                  (kernels/cp_async.cuh) in a 4-stage pipeline, three chunks of loads in
//                  flight behind the FMAs, no staging registers; the packed tile in 16-byte
//                  copies when its rows are 16-byte aligned. Two blocks per SM (123 / 122
//                  registers, 33 KB static shared), as v4.
//   pack_transposed v1: [cout, cin, kh, kw] -> [taps * cout, cin], masked entries 0 (bwd_data
//                  v3's packing), through a 32 x 32 shared transpose tile (coalesced both ways).
//   bwd_weight v1: one block per weight element reducing x * dy over all n*H*W positions
//                  (block reduction, no atomics); masked weights get exactly 0. With
//                  bwd_bias v1 for db. The reference version.
//   bwd_weight v2: implicit GEMM dw[o, (t, i)] = sum over positions p of dy[p, o] *
//                  x[p + tap t's offset, i]: M = cout, N = live taps x cin, K = positions;
//                  128x128 block tiles, 8x8 outputs per thread read as float4 from shared
//                  memory, K in chunks of 8 positions staged through registers into a
//                  double-buffered shared tile (coalesced rows of dy and of x gathered per
//                  tap); K split over position chunks, one partial tile per chunk, the bias
//                  gradient's partial column sums fused in. Then bwd_weight_reduce v1.
//   bwd_weight v3: v2's launch, partials and bits with both tiles staged by cp.async in a
//                  4-stage pipeline (kernels/wgrad_gemm.cuh, wgrad_gemm_async: three chunks
//                  in flight behind the FMAs, no staging registers), 32 KB static shared,
//                  two blocks per SM.
//   bwd_weight_reduce v1: the second pass of bwd_weight v2 and v3: sums the partials of every
//                  chunk in a fixed order (the same bits on every run and every schedule;
//                  no atomics), applies the mask (exact 0s) and writes dw [cout, cin, kh, kw]
//                  through a shared transpose (coalesced both ways), and db.
//   bwd_bias v1:   one block per output feature reducing dy over all positions (under
//                  bwd_weight v1; v2 computes db itself).
//   pack v1:       [cout, cin, kh, kw] -> [taps * cin, cout] with the centre tap's group mask
//                  applied (masked entries 0), one thread per packed element.
//   pack v2:       pack v1's result through a 32 x 33 shared transpose tile: rows of w read
//                  whole by lanes along kh*kw*cin, packed rows written by lanes along cout
//                  (coalesced both ways, conflict-free). The default (docs/kernels.md).
//   fwd_at v1:     one output position for the whole batch from the packed weight, one thread
//                  per (image, output feature): coalesced reads of the packed rows.
// bwd_weight has its own selection (MaskedConv2dWeight in src/backend/cuda/variants/), and
// so has pack (MaskedConv2dPack); bwd_bias and fwd_at have one version each, used whichever
// version of the op is selected.
//
// Live taps (src/backend/conv_spec.rs): the raster taps 0..taps-1 (the host passes `taps`:
// kh*kw unmasked, the centre included for masks A/B unless mask A with one group, which stops
// before it). Every tap before the centre connects all feature pairs; the centre connects
// output o and input i by the channel-group rule of `masked_conv2d_centre_allows`. Taps after
// the centre (masks A/B) and rows below it are never visited.
#include "masked_conv2d.cuh"

// Tile of the implicit-GEMM kernels: TILE_M positions x TILE_N features per block, K in chunks
// of TILE_K; each of the 256 threads owns a 4x4 micro-tile (rows ty + 16r, columns tx + 16c,
// so that shared reads and global writes of neighbouring lanes are neighbouring words).
#define MASKED_CONV2D_TILE_M 64
#define MASKED_CONV2D_TILE_N 64
#define MASKED_CONV2D_TILE_K 16
// +1 column of padding: the tile stores of a warp (16 k values x 2 rows) hit distinct banks.
#define MASKED_CONV2D_TILE_PAD (MASKED_CONV2D_TILE_M + 1)

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*H*W*cout / 256), 65535)
// (grid-stride loop over the outputs).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_v1(const float* __restrict__ x, const float* __restrict__ w,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps, int mask, int groups,
                     int out_block, int in_block) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * height * width * cout;
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx, khw = kh * kw;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int o = (int)(e % cout);
        const pixelrnn_index_t pos = e / cout;
        const int xx = (int)(pos % width);
        const int yy = (int)((pos / width) % height);
        const pixelrnn_index_t img = pos / ((pixelrnn_index_t)width * height);
        float acc = b[o];
        for (int t = 0; t < taps; ++t) {
            const int ky = t / kw, kx = t - ky * kw;
            const int iy = yy + ky - cy, ix = xx + kx - cx;
            if (iy < 0 || iy >= height || ix < 0 || ix >= width) continue;
            const float* xp = x + ((img * height + iy) * width + ix) * cin;
            const float* wp = w + (pixelrnn_index_t)o * cin * khw + t;  // w[o, 0, ky, kx]
            if (t == centre && mask != MASKED_CONV2D_NONE) {
                for (int i = 0; i < cin; ++i) {
                    if (masked_conv2d_centre_allows(o, i, mask, groups, out_block, in_block)) {
                        acc += xp[i] * wp[(pixelrnn_index_t)i * khw];
                    }
                }
            } else {
                for (int i = 0; i < cin; ++i) {
                    acc += xp[i] * wp[(pixelrnn_index_t)i * khw];
                }
            }
        }
        y[e] = acc;
    }
}

// One K chunk of the implicit GEMM: acc[r][c] += sum_k a[k][ty + 16r] * bt[k][tx + 16c].
PIXELRNN_DEVICE void masked_conv2d_tile_fma(
    float acc[4][4], const float (*a)[MASKED_CONV2D_TILE_PAD],
    const float (*bt)[MASKED_CONV2D_TILE_PAD], int tx, int ty) {
#pragma unroll
    for (int k = 0; k < MASKED_CONV2D_TILE_K; ++k) {
        float av[4], bv[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) av[r] = a[k][ty + 16 * r];
#pragma unroll
        for (int c = 0; c < 4; ++c) bv[c] = bt[k][tx + 16 * c];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] += av[r] * bv[c];
        }
    }
}

// The implicit GEMM of fwd v2 and bwd_data v2, written once: out[m, q] (+ bias[q]) = sum over
// live taps t and source features s of src[position m + dir * (tap t's offset), s] *
// w[o, i, t], where (o, i) = (q, s) for the forward (src = x, dir = +1) and (s, q) for the
// input gradient (src = dy, dir = -1: the outputs that read position m through tap t). Tile of
// this block: positions m0.. x features q0..; K dimension kk = t * src_c + s. Each thread loads
// 4 elements of each tile per chunk, all at the same kk = k0 + tx, so its 4 positions are
// decoded once, outside the K loop. `as`, `bs`: the block's two shared tiles.
PIXELRNN_DEVICE void masked_conv2d_gemm_tile(
    const float* src, int src_c, int dir, const float* w, const float* bias, float* out,
    int out_c, float (*as)[MASKED_CONV2D_TILE_PAD], float (*bs)[MASKED_CONV2D_TILE_PAD], int n,
    int height, int width, int cin, int kh, int kw, int taps, int mask, int groups,
    int out_block, int in_block) {
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const pixelrnn_index_t positions = (pixelrnn_index_t)n * height * width;
    const pixelrnn_index_t m0 = (pixelrnn_index_t)blockIdx.x * MASKED_CONV2D_TILE_M;
    const int q0 = blockIdx.y * MASKED_CONV2D_TILE_N;
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx, khw = kh * kw;
    const int k_total = taps * src_c;
    const bool forward = dir > 0;

    // The positions this thread loads: m0 + ty + 16r. A row past the end gets a row index so
    // far outside the map that every tap misses it and loads 0.
    pixelrnn_index_t img_r[4];
    int yy_r[4], xx_r[4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const pixelrnn_index_t m = m0 + ty + 16 * r;
        const bool valid = m < positions;
        xx_r[r] = valid ? (int)(m % width) : 0;
        yy_r[r] = valid ? (int)((m / width) % height) : MASKED_CONV2D_FAR;
        img_r[r] = valid ? m / ((pixelrnn_index_t)width * height) : 0;
    }

    float acc[4][4];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;
    }

    for (int k0 = 0; k0 < k_total; k0 += MASKED_CONV2D_TILE_K) {
        const int kk = k0 + tx;
        const bool k_valid = kk < k_total;
        const int t = k_valid ? kk / src_c : 0;
        const int sf = k_valid ? kk - t * src_c : 0;
        const int dy_t = dir * (t / kw - cy), dx_t = dir * (t % kw - cx);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int iy = yy_r[r] + dy_t, ix = xx_r[r] + dx_t;
            float v = 0.0f;
            if (k_valid && iy >= 0 && iy < height && ix >= 0 && ix < width) {
                v = src[((img_r[r] * height + iy) * width + ix) * src_c + sf];
            }
            as[tx][ty + 16 * r] = v;
        }
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int qf = q0 + ty + 16 * r;
            const int o = forward ? qf : sf, i = forward ? sf : qf;
            float v = 0.0f;
            if (k_valid && qf < out_c &&
                masked_conv2d_live(t, centre, o, i, mask, groups, out_block, in_block)) {
                v = w[((pixelrnn_index_t)o * cin + i) * khw + t];
            }
            bs[tx][ty + 16 * r] = v;
        }
        __syncthreads();
        masked_conv2d_tile_fma(acc, as, bs, tx, ty);
        __syncthreads();  // the next chunk overwrites the tiles
    }

#pragma unroll
    for (int r = 0; r < 4; ++r) {
        const pixelrnn_index_t m = m0 + ty + 16 * r;
        if (m >= positions) continue;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            const int qf = q0 + tx + 16 * c;
            if (qf < out_c) out[m * out_c + qf] = acc[r][c] + (bias != 0 ? bias[qf] : 0.0f);
        }
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 64), ceil(cout / 64)).
// Output tile: positions m0..m0+63 (flattened n*H*W) x features n0..n0+63, K over the live taps
// x cin: the x tile holds x[position shifted by tap t, i] (0 in the padding), the w tile
// w[o, i, t] (0 where the centre tap's group rule masks it); masked_conv2d_gemm_tile.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_fwd_v2(const float* __restrict__ x, const float* __restrict__ w,
                     const float* __restrict__ b, float* __restrict__ y, int n, int height,
                     int width, int cin, int cout, int kh, int kw, int taps, int mask, int groups,
                     int out_block, int in_block) {
    PIXELRNN_SHARED(float, xs, [MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD]);
    PIXELRNN_SHARED(float, ws, [MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD]);
    masked_conv2d_gemm_tile(x, cin, 1, w, b, y, cout, xs, ws, n, height, width, cin, kh, kw,
                            taps, mask, groups, out_block, in_block);
}

// Launch: blockDim.x = PIXELRNN_BLOCK, gridDim.x = min(ceil(n*H*W*cin / 256), 65535)
// (grid-stride loop over the input elements). dx[p, i] = sum over live taps t and outputs o of
// dy[p - (tap t's offset), o] * w[o, i, t]: the outputs that read input p through tap t.
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_v1(const float* __restrict__ dy, const float* __restrict__ w,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps, int mask, int groups,
                          int out_block, int in_block) {
    const pixelrnn_index_t total = (pixelrnn_index_t)n * height * width * cin;
    const int cy = kh / 2, cx = kw / 2, centre = cy * kw + cx, khw = kh * kw;
    const pixelrnn_index_t o_stride = (pixelrnn_index_t)cin * khw;
    const pixelrnn_index_t stride = pixelrnn_grid_stride();
    for (pixelrnn_index_t e = pixelrnn_global_thread(); e < total; e += stride) {
        const int i = (int)(e % cin);
        const pixelrnn_index_t pos = e / cin;
        const int ix = (int)(pos % width);
        const int iy = (int)((pos / width) % height);
        const pixelrnn_index_t img = pos / ((pixelrnn_index_t)width * height);
        float acc = 0.0f;
        for (int t = 0; t < taps; ++t) {
            const int ky = t / kw, kx = t - ky * kw;
            const int yy = iy - ky + cy, xx = ix - kx + cx;
            if (yy < 0 || yy >= height || xx < 0 || xx >= width) continue;
            const float* dyp = dy + ((img * height + yy) * width + xx) * cout;
            const float* wp = w + (pixelrnn_index_t)i * khw + t;  // w[0, i, ky, kx]
            if (t == centre && mask != MASKED_CONV2D_NONE) {
                for (int o = 0; o < cout; ++o) {
                    if (masked_conv2d_centre_allows(o, i, mask, groups, out_block, in_block)) {
                        acc += dyp[o] * wp[o * o_stride];
                    }
                }
            } else {
                for (int o = 0; o < cout; ++o) {
                    acc += dyp[o] * wp[o * o_stride];
                }
            }
        }
        dx[e] = acc;
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n*H*W / 64), ceil(cin / 64)).
// The transpose of fwd v2 (masked_conv2d_gemm_tile with dir = -1): tile of input positions
// m0.. x input features n0.., K dimension kk = t * cout + o; the dy tile holds
// dy[position - (tap t's offset), o] (0 outside the map), the w tile w[o, i, t] (0 where
// masked).
PIXELRNN_KERNEL void __launch_bounds__(PIXELRNN_BLOCK)
masked_conv2d_bwd_data_v2(const float* __restrict__ dy, const float* __restrict__ w,
                          float* __restrict__ dx, int n, int height, int width, int cin,
                          int cout, int kh, int kw, int taps, int mask, int groups,
                          int out_block, int in_block) {
    PIXELRNN_SHARED(float, ds, [MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD]);
    PIXELRNN_SHARED(float, ws, [MASKED_CONV2D_TILE_K][MASKED_CONV2D_TILE_PAD]);
    masked_conv2d_gemm_tile(dy, cout, -1, w, 0, dx, cin, ds, ws, n, height, width, cin, kh, kw,
                            taps, mask, groups, out_block, in_block);
}

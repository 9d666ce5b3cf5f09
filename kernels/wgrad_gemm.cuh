// wgrad_gemm.cuh: the split-K implicit GEMM of a weight gradient over positions, written once
// for the two ops whose weight gradient has this shape:
//   dw[m, c] = sum over positions p of dy[p, m] * x[p + shift(t), i]   (c = t * cin + i)
// where dy is [positions, cout] (rows m), x is [positions, cin], and column c reads x at the
// position tap t points at (0 outside the map). It runs
// - masked_conv2d_bwd_weight_v2, v3 (kernels/masked_conv2d_weight.cu): t a live tap of the
//   kernel;
// - lstm_ss_bwd_weight_v3, v4 (kernels/lstm_weight.cu): t a state-to-state tap of a scan, dy the
//   gate pre-activations' gradient (cout = 4h), x the hidden state (cin = h).
// Tiles: WGRAD_M x WGRAD_N per block of 256 threads, each thread an 8x8 micro-tile
// (masked_conv2d.cuh's masked_conv2d_fma_8x8: 4 float4 shared reads, 16 words, for 64 FMAs,
// 8 FLOPs per word); WGRAD_K positions per shared chunk, no division and no tap decode in the
// K loop. Two pipelines over the same tiles, loader and FMA order (so the same bits):
// - wgrad_gemm: double-buffered through registers, the next chunk's global loads in flight
//   during this chunk's FMAs (masked_conv2d_bwd_weight_v2, lstm_ss_bwd_weight_v3);
// - wgrad_gemm_async: WGRAD_STAGES stages filled by cp.async (kernels/cp_async.cuh), three
//   chunks in flight and none in registers (masked_conv2d_bwd_weight_v3, lstm_ss_bwd_weight_v4).
#pragma once
#include "cp_async.cuh"
#include "masked_conv2d.cuh"

#define WGRAD_M 128
#define WGRAD_N 128
#define WGRAD_K 8
// Each thread loads WGRAD_LOADS rows of each tile per chunk, at one column: tid % 128.
#define WGRAD_LOADS (WGRAD_K * WGRAD_N / PIXELRNN_BLOCK)
#define WGRAD_ROW_STEP (PIXELRNN_BLOCK / WGRAD_N)
static_assert(WGRAD_M == WGRAD_N, "one loader column serves both tiles");
static_assert(WGRAD_ROW_STEP == 2, "two loader rows per column");
// Stages of wgrad_gemm_async: WGRAD_STAGES - 1 chunks in flight while one is multiplied. 4
// stages of both tiles are 32 KiB of shared memory: two blocks per SM still fit.
#define WGRAD_STAGES 4

// Moves a loader row (yy, xx) of one image forward by `step` positions in raster order (the
// image index is not tracked: a tap that stays inside the map stays in the same image, so the
// shifted position is the flattened one plus the tap's flat offset).
PIXELRNN_DEVICE void wgrad_advance(int& yy, int& xx, int step, int height, int width) {
    xx += step;
    while (xx >= width) {
        xx -= width;
        if (++yy == height) yy = 0;
    }
}

// The loader's fixed place in both tiles, decoded once per block: its column (`m` of dy and
// (t, i) of x), its tap's offset, and the raster coordinates of its rows.
struct WgradLoader {
    int row0;         // first tile row (0 or 1); rows row0 + WGRAD_ROW_STEP * j
    int m;            // dy column (output feature / gate row)
    bool m_ok;        // m < cout
    int i;            // x column (input feature / unit) of this tile column
    bool col_ok;      // the tile column is a column of dw (t < taps)
    int tap_dy;       // the tap's offset in rows ...
    int tap_dx;       // ... and columns
    pixelrnn_index_t tap_shift;  // tap_dy * width + tap_dx: the source's flat offset
    int yy[WGRAD_LOADS];  // row and column of each loader row's position
    int xx[WGRAD_LOADS];
};

// The loader's column of both tiles, the same for every thread of one tid % 128: dy column
// m0 + tid % 128 (m, m_ok against cout) and its first row (row0); returns the dw column
// c0 + tid % 128 and sets col_ok against `columns`, for the caller to decode into its tap
// (i, tap_dy, tap_dx, tap_shift).
PIXELRNN_DEVICE int wgrad_loader_column(WgradLoader& l, int m0, int c0, int cout, int columns) {
    const int col = threadIdx.x % WGRAD_N;
    l.row0 = threadIdx.x / WGRAD_N;
    l.m = m0 + col;
    l.m_ok = l.m < cout;
    l.col_ok = c0 + col < columns;
    return c0 + col;
}

// One chunk of both tiles into registers: rows p = pk + row0 + WGRAD_ROW_STEP * j of dy (at the
// loader's m) and of x shifted by its tap (at its i); 0 past the split's end, outside the map,
// or past the matrix edge. Lanes of a warp share the row and take consecutive columns:
// consecutive words of dy, and consecutive words of x within one tap (taps of one kernel row
// are one position apart, so even a tile that spans several taps of a small cin reads runs of
// consecutive words).
PIXELRNN_DEVICE void wgrad_load(const float* __restrict__ x, const float* __restrict__ dy,
                                float dv[WGRAD_LOADS], float xv[WGRAD_LOADS],
                                pixelrnn_index_t pk, pixelrnn_index_t p_end,
                                const WgradLoader& l, int height, int width, int cin,
                                int cout) {
#pragma unroll
    for (int j = 0; j < WGRAD_LOADS; ++j) {
        const pixelrnn_index_t p = pk + l.row0 + WGRAD_ROW_STEP * j;
        const bool in = p < p_end;
        dv[j] = in && l.m_ok ? dy[p * cout + l.m] : 0.0f;
        const int iy = l.yy[j] + l.tap_dy, ix = l.xx[j] + l.tap_dx;
        const bool inside = iy >= 0 && iy < height && ix >= 0 && ix < width;
        xv[j] = in && l.col_ok && inside ? x[(p + l.tap_shift) * cin + l.i] : 0.0f;
    }
}

// Both pipelines' accumulators and bias sum start at 0.
PIXELRNN_DEVICE void wgrad_clear(float acc[8][8], float& bias_acc) {
#pragma unroll
    for (int r = 0; r < 8; ++r) {
#pragma unroll
        for (int c = 0; c < 8; ++c) acc[r][c] = 0.0f;
    }
    bias_acc = 0.0f;
}

// The K loop of one block over positions [p_begin, p_end) (the caller's split), into this
// thread's 8x8 accumulators (rows 4ty.. and 64+4ty.., columns 4tx.. and 64+4tx.., tx = tid % 16,
// ty = tid / 16; set to 0 first) and, in `bias_acc` (set to 0 first), the sum of the dy values
// this thread loaded itself (rows row0, row0 + 2, .. of column m: masked_conv2d's bias blocks; a caller
// without a bias leaves it, and the compiler drops it). `l` is set up for p_begin
// (wgrad_loader_rows). Ends with a barrier: the shared tiles are free afterwards.
PIXELRNN_DEVICE void wgrad_gemm(const float* __restrict__ x, const float* __restrict__ dy,
                                float (*dys)[WGRAD_K][WGRAD_M], float (*xs)[WGRAD_K][WGRAD_N],
                                float acc[8][8], float& bias_acc, WgradLoader& l,
                                pixelrnn_index_t p_begin, pixelrnn_index_t p_end, int height,
                                int width, int cin, int cout) {
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int col = tid % WGRAD_N;
    wgrad_clear(acc, bias_acc);
    float dv[WGRAD_LOADS], xv[WGRAD_LOADS];
    int buf = 0;
    if (p_begin < p_end) {
        wgrad_load(x, dy, dv, xv, p_begin, p_end, l, height, width, cin, cout);
#pragma unroll
        for (int j = 0; j < WGRAD_LOADS; ++j) bias_acc += dv[j];
#pragma unroll
        for (int j = 0; j < WGRAD_LOADS; ++j) {
            dys[0][l.row0 + WGRAD_ROW_STEP * j][col] = dv[j];
            xs[0][l.row0 + WGRAD_ROW_STEP * j][col] = xv[j];
        }
    }
    __syncthreads();
    for (pixelrnn_index_t pk = p_begin; pk < p_end; pk += WGRAD_K) {
        // Software pipeline: the next chunk's global loads are in flight during this chunk's
        // FMAs, then land in the other buffer (read by nobody until the barrier below).
        const bool more = pk + WGRAD_K < p_end;
        if (more) {
#pragma unroll
            for (int j = 0; j < WGRAD_LOADS; ++j) {
                wgrad_advance(l.yy[j], l.xx[j], WGRAD_K, height, width);
            }
            wgrad_load(x, dy, dv, xv, pk + WGRAD_K, p_end, l, height, width, cin, cout);
#pragma unroll
            for (int j = 0; j < WGRAD_LOADS; ++j) bias_acc += dv[j];
        }
#pragma unroll
        for (int k = 0; k < WGRAD_K; ++k) {
            masked_conv2d_fma_8x8(acc, dys[buf][k], xs[buf][k], tx, ty);
        }
        if (more) {
#pragma unroll
            for (int j = 0; j < WGRAD_LOADS; ++j) {
                dys[buf ^ 1][l.row0 + WGRAD_ROW_STEP * j][col] = dv[j];
                xs[buf ^ 1][l.row0 + WGRAD_ROW_STEP * j][col] = xv[j];
            }
        }
        __syncthreads();
        buf ^= 1;
    }
}

// One chunk of both tiles issued as cp.async copies into one stage: wgrad_load's elements at
// wgrad_load's places, each of its zeros a zero-fill that reads nothing (its source the
// buffer's base, never an address past it).
PIXELRNN_DEVICE void wgrad_issue(const float* __restrict__ x, const float* __restrict__ dy,
                                 float (*dys)[WGRAD_M], float (*xs)[WGRAD_N],
                                 pixelrnn_index_t pk, pixelrnn_index_t p_end,
                                 const WgradLoader& l, int height, int width, int cin,
                                 int cout) {
    const int col = threadIdx.x % WGRAD_N;
#pragma unroll
    for (int j = 0; j < WGRAD_LOADS; ++j) {
        const int r = l.row0 + WGRAD_ROW_STEP * j;
        const pixelrnn_index_t p = pk + r;
        const bool in = p < p_end;
        const bool d_ok = in && l.m_ok;
        pixelrnn_cp_async_f32(&dys[r][col], d_ok ? dy + p * cout + l.m : dy, d_ok);
        const int iy = l.yy[j] + l.tap_dy, ix = l.xx[j] + l.tap_dx;
        const bool x_ok = in && l.col_ok && iy >= 0 && iy < height && ix >= 0 && ix < width;
        pixelrnn_cp_async_f32(&xs[r][col], x_ok ? x + (p + l.tap_shift) * cin + l.i : x, x_ok);
    }
}

// One step of wgrad_gemm_async's issue side: the chunk at position `issued`, when there is one
// before p_end, into stage (dys, xs), the loader's rows and `issued` moved past it, and its
// group committed (empty past the last chunk, so that the waits' counts hold).
PIXELRNN_DEVICE void wgrad_issue_next(const float* __restrict__ x, const float* __restrict__ dy,
                                      float (*dys)[WGRAD_M], float (*xs)[WGRAD_N],
                                      pixelrnn_index_t& issued, pixelrnn_index_t p_end,
                                      WgradLoader& l, int height, int width, int cin, int cout) {
    if (issued < p_end) {
        wgrad_issue(x, dy, dys, xs, issued, p_end, l, height, width, cin, cout);
#pragma unroll
        for (int j = 0; j < WGRAD_LOADS; ++j) {
            wgrad_advance(l.yy[j], l.xx[j], WGRAD_K, height, width);
        }
        issued += WGRAD_K;
    }
    pixelrnn_cp_async_commit();
}

// wgrad_gemm's contract (the same accumulators, bias sums and bits; ends with a barrier) with
// the tiles in WGRAD_STAGES stages (dys, xs: [WGRAD_STAGES][WGRAD_K][128]) filled by cp.async
// in the multistage order of masked_conv2d_gemm5: issue chunks 0 .. STAGES - 2, then per chunk
// c wait until this thread's copies of chunk c have landed, a barrier (everyone's have, and
// everyone is done with chunk c - 1's stage), issue chunk c + STAGES - 1 into that stage, and
// multiply chunk c. The bias sums, where `bias` (uniform over the block) asks for them, read
// this thread's own landed dy copies back, in wgrad_gemm's order: 4 more shared words per
// thread per chunk, so only the blocks that use them pay (bias_acc stays 0 elsewhere).
PIXELRNN_DEVICE void wgrad_gemm_async(const float* __restrict__ x, const float* __restrict__ dy,
                                      float (*dys)[WGRAD_K][WGRAD_M],
                                      float (*xs)[WGRAD_K][WGRAD_N], float acc[8][8],
                                      bool bias, float& bias_acc, WgradLoader& l,
                                      pixelrnn_index_t p_begin, pixelrnn_index_t p_end,
                                      int height, int width, int cin, int cout) {
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int col = tid % WGRAD_N;
    wgrad_clear(acc, bias_acc);
    pixelrnn_index_t issued = p_begin;  // the next chunk to issue; l's rows are at it
#pragma unroll
    for (int s = 0; s < WGRAD_STAGES - 1; ++s) {
        wgrad_issue_next(x, dy, dys[s], xs[s], issued, p_end, l, height, width, cin, cout);
    }
    int read = 0, write = WGRAD_STAGES - 1;
    for (pixelrnn_index_t pk = p_begin; pk < p_end; pk += WGRAD_K) {
        pixelrnn_cp_async_wait<WGRAD_STAGES - 2>();
        __syncthreads();
        wgrad_issue_next(x, dy, dys[write], xs[write], issued, p_end, l, height, width, cin,
                         cout);
        if (bias) {
#pragma unroll
            for (int j = 0; j < WGRAD_LOADS; ++j) {
                bias_acc += dys[read][l.row0 + WGRAD_ROW_STEP * j][col];
            }
        }
#pragma unroll
        for (int k = 0; k < WGRAD_K; ++k) {
            masked_conv2d_fma_8x8(acc, dys[read][k], xs[read][k], tx, ty);
        }
        read = read + 1 == WGRAD_STAGES ? 0 : read + 1;
        write = write + 1 == WGRAD_STAGES ? 0 : write + 1;
    }
    pixelrnn_cp_async_wait<0>();  // only empty groups are left; the contract says so anyway
    __syncthreads();
}

// The raster coordinates of the loader's rows at the split's first position p_begin (the only
// divisions of the kernel).
PIXELRNN_DEVICE void wgrad_loader_rows(WgradLoader& l, pixelrnn_index_t p_begin, int height,
                                       int width) {
#pragma unroll
    for (int j = 0; j < WGRAD_LOADS; ++j) {
        const pixelrnn_index_t p = p_begin + l.row0 + WGRAD_ROW_STEP * j;
        l.xx[j] = (int)(p % width);
        l.yy[j] = (int)((p / width) % height);
    }
}

// The block's whole WGRAD_M x WGRAD_N partial tile at `tile` (row stride ld_n), as float4 rows:
// a warp stores 2 rows x 256 contiguous bytes.
PIXELRNN_DEVICE void wgrad_store_tile(float* __restrict__ tile, const float acc[8][8], int ld_n) {
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
#pragma unroll
    for (int r = 0; r < 8; ++r) {
        const int m = (r < 4 ? 0 : 64) + 4 * ty + (r & 3);
        float* row = tile + (pixelrnn_index_t)m * ld_n;
        *reinterpret_cast<float4*>(row + 4 * tx) =
            make_float4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
        *reinterpret_cast<float4*>(row + 64 + 4 * tx) =
            make_float4(acc[r][4], acc[r][5], acc[r][6], acc[r][7]);
    }
}

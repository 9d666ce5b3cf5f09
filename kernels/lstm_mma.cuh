// lstm_mma.cuh: the tensor-core (mma.sync) fused step bodies of both recurrences (Row LSTM,
// Diagonal LSTM in the folded layout), forward and backward through time, written once for
// both scans and both precisions; the kernels are in kernels/row_lstm_mma.cu and
// kernels/diag_lstm_mma.cu, which describe their versions. CPU twin: the CPU backend's
// recurrences at the same precision (src/backend/cpu/lstm.rs: the state-to-state products'
// operands rounded, fp32 accumulation); host side: src/backend/cuda/lstm_mma.rs (`mma_step`).
//
// A step's state-to-state product is a GEMM over the step's positions (rows m = image b x
// position k of the step, n * len of them), K = taps x features (k = t * F + f): A[m][k] is
// feature f of the tap-t neighbour of position m (the source in the forward, F = h; the
// consumer in the backward, F = 4h; 0 outside the image), B the packed state weight
// (lstm_pack_ss_v2). It runs on the implicit-GEMM machinery of the conv's tensor-core kernels
// (masked_conv2d_mma.cuh: 128 x 64 block tile, 8 warps of 2 x 4 mma tiles, K chunks of 16,
// operands rounded as they are staged into double-buffered shared tiles, fp32 accumulation);
// the loaders below say what an element of each tile is, and the epilogues run the fused
// step's cell with the fp32 kernels' device functions (pixelrnn_lstm_cell_fwd / _bwd), so the
// nonlinearities are bit-identical given the same pre-activation.
//
// Forward columns: the block's 64 columns are 16 units x 4 gates, column c = wn*32 + x*8 + l
// (wn the warp column, x the gate, l < 8) is gate x of unit u0 + wn*8 + l. mcm_gemm gives a
// thread the accumulators of columns wn*32 + ni*8 + 2t + e, so ni is the gate: every thread
// holds all four pre-activations of its (position, unit) pairs and the cell update needs no
// exchange. Backward columns: 64 consecutive units (dh of unit u0 + c).
//
// Epilogue memory access (PAIRS, the v2 kernels): a thread's accumulators e = 0, 1 (and 2, 3)
// are adjacent units 2t, 2t + 1 of one position, so v2 reads and writes every per-unit operand
// of the cell (is, the gates, c, h, dh, dc_carry, d_is) as one float2 per pair: a warp's
// request covers 8 positions x 8 consecutive units = 8 whole 32-byte sectors at h a multiple
// of 8, where v1's one float per lane (units 2t + e) fills half of each. The cell runs the
// same device function on the same operands in the same order, so v2 gives v1's bits (tested,
// tests/cuda/lstm_mma.rs). Pairs need 8-byte alignment: h even (the buffers are allocation
// aligned); an odd h runs v1's epilogue.
#pragma once

#include "common.cuh"
#include "diag_lstm.cuh"
#include "masked_conv2d_mma.cuh"

// Units of a forward block tile (MCM_N / 4 gates) and of a backward one.
#define LSTM_MMA_FWD_UNITS (MCM_N / 4)
#define LSTM_MMA_BWD_UNITS MCM_N

// The step's geometry: the scan (`diag`, else the Row LSTM with kernel width `k`), the map,
// and the step. Positions of the step: Row: row `step`, columns 0 .. W-1; Diagonal:
// anti-diagonal `step`, position q at row diag_lstm_row(step, q) (column step - row).
struct lstm_mma_geo {
    int diag, k, height, width, step, len;
};

PIXELRNN_DEVICE lstm_mma_geo lstm_mma_geo_of(int diag, int k, int height, int width, int step) {
    lstm_mma_geo g;
    g.diag = diag;
    g.k = k;
    g.height = height;
    g.width = width;
    g.step = step;
    g.len = diag ? diag_lstm_count(step, height, width) : width;
    return g;
}

// Row and column in its image of position q of the step.
PIXELRNN_DEVICE void lstm_mma_rc(const lstm_mma_geo& g, int q, int* r, int* c) {
    if (g.diag) {
        *r = diag_lstm_row(g.step, q, g.width);
        *c = g.step - *r;
    } else {
        *r = g.step;
        *c = q;
    }
}

// Displacement of tap t's neighbour: the source (dir = -1: Row (r-1, c + t - k/2); Diagonal
// t = 0 above, t = 1 left) or the consumer (dir = +1: the opposite displacement).
PIXELRNN_DEVICE void lstm_mma_tap(const lstm_mma_geo& g, int t, int dir, int* dr, int* dc) {
    if (g.diag) {
        *dr = t == 0 ? dir : 0;
        *dc = t == 0 ? 0 : dir;
    } else {
        *dr = dir;
        *dc = -dir * (t - g.k / 2);
    }
}

// Whether the step has a neighbour step in direction `dir` at all (else the product is 0 and
// the GEMM is skipped: the first step forward, the last one backward).
PIXELRNN_DEVICE bool lstm_mma_has_product(const lstm_mma_geo& g, int dir) {
    const int last = g.diag ? g.height + g.width - 2 : g.height - 1;
    return dir < 0 ? g.step > 0 : g.step < last;
}

// The loader of both passes (mcm_gemm's Loader). A[m][k] = src[(pixel of tap t's neighbour of
// row m) * feat + f] with k = t * feat + f; B[col][k] = packed[k * ld + bcol(col)], 0 for a
// column past the units. Thread mapping as McmConvLoader's: A rows ml + 16 j (j < 8) at chunk
// column kl (a warp reads 2 rows x 16 consecutive features); B columns qb at k = 4 j + kb.
// SWAP (the mutation check only, tests/cuda/lstm_mma.rs): stores A's chunk columns with the
// halves of each mma K step exchanged, which feeds the tensor cores what a kernel that swapped
// A fragment registers 0 <-> 2 and 1 <-> 3 would (tf32: columns t and t + 4; bf16: 2t.. and
// 2t + 8..).
template <int P, bool SWAP>
struct LstmMmaLoader {
    const float* __restrict__ src;
    const float* __restrict__ packed;
    lstm_mma_geo g;
    int feat, k_total, dir, ld, hidden, fwd, u0;
    int kl, ml, qb, kb;
    int rr[8], cc[8];
    pixelrnn_index_t base[8];  // the image's first pixel
    float va[8], vb[4];

    // The packed weight's column of block column `col` (-1 past the units).
    PIXELRNN_DEVICE int bcol(int col) const {
        if (fwd) {
            const int x = (col / 8) % 4;
            const int u = u0 + (col / 32) * 8 + col % 8;
            return u < hidden ? x * hidden + u : -1;
        }
        const int u = u0 + col;
        return u < hidden ? u : -1;
    }

    PIXELRNN_DEVICE void load(pixelrnn_index_t k0) {
        const int kk = (int)k0 + kl;
        const bool k_ok = kk < k_total;
        const int t = k_ok ? kk / feat : 0;
        const int f = kk - t * feat;
        int dr, dc;
        lstm_mma_tap(g, t, dir, &dr, &dc);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const int r = rr[j] + dr, c = cc[j] + dc;
            const bool inside = k_ok && r >= 0 && r < g.height && c >= 0 && c < g.width;
            va[j] = inside ? src[(base[j] + (pixelrnn_index_t)r * g.width + c) * feat + f]
                           : 0.0f;
        }
        const int q = bcol(qb);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int k = (int)k0 + 4 * j + kb;
            vb[j] = k < k_total && q >= 0 ? packed[(pixelrnn_index_t)k * ld + q] : 0.0f;
        }
    }

    PIXELRNN_DEVICE void store(float (*As)[McmPrec<P>::PITCH], float (*Bs)[McmPrec<P>::PITCH]) {
        const int col = SWAP ? kl ^ (McmPrec<P>::KSTEP / 2) : kl;
#pragma unroll
        for (int j = 0; j < 8; ++j) As[ml + 16 * j][col] = mcm_round<P>(va[j]);
#pragma unroll
        for (int j = 0; j < 4; ++j) Bs[qb][4 * j + kb] = mcm_round<P>(vb[j]);
    }
};

// Sets up the loader of the block's tile (rows blockIdx.x * 128.., units u0..) and runs the
// GEMM into acc (mcm_gemm's layout). `m_total` = n * len.
template <int P, bool SWAP>
PIXELRNN_DEVICE void lstm_mma_product(LstmMmaLoader<P, SWAP>& ld, int m_total,
                                      float acc[2][4][4]) {
    const int tid = threadIdx.x;
    const pixelrnn_index_t plane = (pixelrnn_index_t)ld.g.height * ld.g.width;
    const int m0 = blockIdx.x * MCM_M;
    ld.kl = tid % 16;
    ld.ml = tid / 16;
    ld.qb = tid / 4;
    ld.kb = tid % 4;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
        const int m = m0 + ld.ml + 16 * j;
        if (m < m_total) {
            ld.base[j] = (pixelrnn_index_t)(m / ld.g.len) * plane;
            lstm_mma_rc(ld.g, m % ld.g.len, &ld.rr[j], &ld.cc[j]);
        } else {
            ld.base[j] = 0;
            ld.rr[j] = MCM_FAR;  // outside the image under every tap
            ld.cc[j] = 0;
        }
    }
    const int k_end = lstm_mma_has_product(ld.g, ld.dir) ? ld.k_total : 0;
    mcm_gemm<P>(ld, 0, k_end, acc);
}

// The flat pixel of GEMM row m (< m_total) of the step.
PIXELRNN_DEVICE pixelrnn_index_t lstm_mma_pixel(const lstm_mma_geo& g, int m, int* r, int* c) {
    lstm_mma_rc(g, m % g.len, r, c);
    return (pixelrnn_index_t)(m / g.len) * g.height * g.width + (pixelrnn_index_t)*r * g.width +
           *c;
}

// Offset (in pixels) of the previous cell of the scan (Row: the row above; Diagonal: the
// pixel to the left) and whether there is one.
PIXELRNN_DEVICE bool lstm_mma_prev_cell(const lstm_mma_geo& g, int r, int c,
                                        pixelrnn_index_t* back) {
    *back = g.diag ? 1 : g.width;
    return g.diag ? c > 0 : r > 0;
}

// Two adjacent floats at an 8-byte aligned address as one access (v2's epilogue).
PIXELRNN_DEVICE float2 lstm_mma_ld2(const float* p) {
    return *reinterpret_cast<const float2*>(p);
}
PIXELRNN_DEVICE void lstm_mma_st2(float* p, float a, float b) {
    *reinterpret_cast<float2*>(p) = make_float2(a, b);
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n * len / 128), ceil(h / 16)),
// `wp` = lstm_pack_ss_v2(w, transposed = 0) ([taps, h, 4, h]).
// The fused forward step: pre = is + product (rounded operands, fp32 accumulation), then the
// cell; h, c and the activated gates of the step written.
template <int P, bool SWAP, bool PAIRS>
PIXELRNN_DEVICE void lstm_mma_step_fwd(const float* __restrict__ is,
                                       const float* __restrict__ wp, float* __restrict__ h,
                                       float* __restrict__ c, float* __restrict__ gates, int n,
                                       int hidden, lstm_mma_geo g) {
    LstmMmaLoader<P, SWAP> ld;
    ld.src = h;
    ld.packed = wp;
    ld.g = g;
    ld.feat = hidden;
    ld.k_total = (g.diag ? 2 : g.k) * hidden;
    ld.dir = -1;
    ld.ld = 4 * hidden;
    ld.hidden = hidden;
    ld.fwd = 1;
    ld.u0 = blockIdx.y * LSTM_MMA_FWD_UNITS;
    const int m_total = n * g.len;
    float acc[2][4][4];
    lstm_mma_product<P, SWAP>(ld, m_total, acc);
    const int g4 = 4 * hidden;
    const int lane = threadIdx.x & 31, wn = (threadIdx.x >> 5) >> 2;
    const bool pairs = PAIRS && (hidden & 1) == 0;  // then u even and u + 1 < hidden
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int m = blockIdx.x * MCM_M + mcm_row(mi, e);
            const int u = ld.u0 + wn * 8 + 2 * (lane & 3) + (e & 1);
            if (m >= m_total || u >= hidden) continue;
            if (pairs && (e & 1)) continue;  // done with its pair e - 1
            int r, cl;
            const pixelrnn_index_t p = lstm_mma_pixel(g, m, &r, &cl);
            const float* ip = is + p * g4 + u;
            pixelrnn_index_t back;
            const pixelrnn_index_t el = p * hidden + u;
            const bool has_prev = lstm_mma_prev_cell(g, r, cl, &back);
            if (pairs) {
                // Units u, u + 1: the cell of each on registers (gates at a stride of 1),
                // then one float2 per output.
                float2 ix[4];
#pragma unroll
                for (int x = 0; x < 4; ++x) ix[x] = lstm_mma_ld2(ip + x * hidden);
                const float2 cp =
                    has_prev ? lstm_mma_ld2(c + el - back * hidden) : make_float2(0.0f, 0.0f);
                float go[2][4], cn[2], hn[2];
                pixelrnn_lstm_cell_fwd(ix[0].x + acc[mi][0][e], ix[1].x + acc[mi][1][e],
                                       ix[2].x + acc[mi][2][e], ix[3].x + acc[mi][3][e], cp.x,
                                       go[0], 1, &cn[0], &hn[0]);
                pixelrnn_lstm_cell_fwd(ix[0].y + acc[mi][0][e + 1], ix[1].y + acc[mi][1][e + 1],
                                       ix[2].y + acc[mi][2][e + 1], ix[3].y + acc[mi][3][e + 1],
                                       cp.y, go[1], 1, &cn[1], &hn[1]);
                float* gp = gates + p * g4 + u;
#pragma unroll
                for (int x = 0; x < 4; ++x) lstm_mma_st2(gp + x * hidden, go[0][x], go[1][x]);
                lstm_mma_st2(&c[el], cn[0], cn[1]);
                lstm_mma_st2(&h[el], hn[0], hn[1]);
                continue;
            }
            const float cp = has_prev ? c[el - back * hidden] : 0.0f;
            pixelrnn_lstm_cell_fwd(ip[0] + acc[mi][0][e], ip[hidden] + acc[mi][1][e],
                                   ip[2 * hidden] + acc[mi][2][e],
                                   ip[3 * hidden] + acc[mi][3][e], cp, gates + p * g4 + u,
                                   hidden, &c[el], &h[el]);
        }
    }
}

// Launch: blockDim.x = PIXELRNN_BLOCK (256), gridDim = (ceil(n * len / 128), ceil(h / 64)),
// `wp` = lstm_pack_ss_v2(w, transposed = 1) ([taps, 4h, h]). Steps in reverse.
// The fused backward step: dh_tot = dh + product (the consumers' d_is times the transposed
// weight, rounded operands, fp32 accumulation), then the cell backward: d_is of the step and
// dc_carry of the previous cell written (d_is read at the consumers, dc_carry at the step).
template <int P, bool SWAP, bool PAIRS>
PIXELRNN_DEVICE void lstm_mma_step_bwd(const float* __restrict__ wp,
                                       const float* __restrict__ gates,
                                       const float* __restrict__ c, const float* __restrict__ dh,
                                       float* __restrict__ dc_carry, float* __restrict__ d_is,
                                       int n, int hidden, lstm_mma_geo g) {
    LstmMmaLoader<P, SWAP> ld;
    ld.src = d_is;
    ld.packed = wp;
    ld.g = g;
    ld.feat = 4 * hidden;
    ld.k_total = (g.diag ? 2 : g.k) * 4 * hidden;
    ld.dir = 1;
    ld.ld = hidden;
    ld.hidden = hidden;
    ld.fwd = 0;
    ld.u0 = blockIdx.y * LSTM_MMA_BWD_UNITS;
    const int m_total = n * g.len;
    float acc[2][4][4];
    lstm_mma_product<P, SWAP>(ld, m_total, acc);
    const int g4 = 4 * hidden;
    const bool pairs = PAIRS && (hidden & 1) == 0;  // then u even and u + 1 < hidden
#pragma unroll
    for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int m = blockIdx.x * MCM_M + mcm_row(mi, e);
                const int u = ld.u0 + mcm_col(ni, e);
                if (m >= m_total || u >= hidden) continue;
                if (pairs && (e & 1)) continue;  // done with its pair e - 1
                int r, cl;
                const pixelrnn_index_t p = lstm_mma_pixel(g, m, &r, &cl);
                const pixelrnn_index_t el = p * hidden + u;
                pixelrnn_index_t back;
                const bool has_prev = lstm_mma_prev_cell(g, r, cl, &back);
                if (pairs) {
                    // Units u, u + 1: every operand one float2, the cells on registers
                    // (gates and d at a stride of 1).
                    const float* gp = gates + p * g4 + u;
                    float gl[2][4], d[2][4];
#pragma unroll
                    for (int x = 0; x < 4; ++x) {
                        const float2 v = lstm_mma_ld2(gp + x * hidden);
                        gl[0][x] = v.x;
                        gl[1][x] = v.y;
                    }
                    const float2 cc = lstm_mma_ld2(c + el);
                    const float2 cp = has_prev ? lstm_mma_ld2(c + el - back * hidden)
                                               : make_float2(0.0f, 0.0f);
                    const float2 dhv = lstm_mma_ld2(dh + el);
                    const float2 dcv = lstm_mma_ld2(dc_carry + el);
                    const float dp0 = pixelrnn_lstm_cell_bwd(
                        gl[0], 1, cc.x, cp.x, dhv.x + acc[mi][ni][e], dcv.x, d[0]);
                    const float dp1 = pixelrnn_lstm_cell_bwd(
                        gl[1], 1, cc.y, cp.y, dhv.y + acc[mi][ni][e + 1], dcv.y, d[1]);
                    float* dp = d_is + p * g4 + u;
#pragma unroll
                    for (int x = 0; x < 4; ++x) lstm_mma_st2(dp + x * hidden, d[0][x], d[1][x]);
                    if (has_prev) lstm_mma_st2(dc_carry + el - back * hidden, dp0, dp1);
                    continue;
                }
                const float cp = has_prev ? c[el - back * hidden] : 0.0f;
                const float dc_prev =
                    pixelrnn_lstm_cell_bwd(gates + p * g4 + u, hidden, c[el], cp,
                                           dh[el] + acc[mi][ni][e], dc_carry[el],
                                           d_is + p * g4 + u);
                if (has_prev) dc_carry[el - back * hidden] = dc_prev;
            }
        }
    }
}

// diag_lstm_v2.cuh: the v2 register-tiled bodies of the Diagonal LSTM recurrence (both layouts:
// map stride and skew as in diag_lstm.cuh), shared by the stepwise v2 kernels (diag_lstm.cu,
// diag_lstm_skewed.cu: one launch per anti-diagonal, the packed weight in global memory) and
// the persistent v2 kernels (lstm_persistent.cuh: one cluster per image, each block's weight
// slice in shared memory). Tiles of 16 consecutive positions of an anti-diagonal x 32 units
// (lstm_v2.cuh), the tap's inputs staged in shared memory.
//
// P (PIXELRNN_ROUND_{FP32,TF32,BF16}, mma.cuh) rounds each staged input as it is staged: the
// persistent tf32/bf16 kernels run the CPU twin's rounded-operand products with fp32 FMA; the
// default FP32 stages the inputs unchanged (the fp32 kernels' bits).
#pragma once

#include "diag_lstm.cuh"
#include "lstm_v2.cuh"
#include "mma.cuh"

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
// tile[16][LSTM_V2_CHUNK], 0 for a neighbour outside the image or a position past
// `positions`: lanes take consecutive features of one position (coalesced). POS, THREADS,
// PITCH, P (each staged value rounded to P): as row_lstm_v2_stage (the defaults are v2's tile).
template <int POS = LSTM_V2_POS, int THREADS = LSTM_V2_THREADS, int PITCH = LSTM_V2_CHUNK,
          int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void diag_lstm_v2_stage(const float* src, float (*tile)[PITCH], int b, int step,
                                        int k0, int positions, int t, int dir, int height,
                                        int width, int stride, int skew, int feat, int f0,
                                        int count) {
    for (int e = threadIdx.x; e < POS * LSTM_V2_CHUNK; e += THREADS) {
        const int q = e / LSTM_V2_CHUNK;
        const int f = e % LSTM_V2_CHUNK;
        float v = 0.0f;
        if (f < count && k0 + q < positions) {
            const int r = diag_lstm_row(step, k0 + q, width);
            int rn, jn;
            if (diag_lstm_v2_neighbour(r, step - r, t, dir, height, width, &rn, &jn)) {
                const pixelrnn_index_t pn =
                    (pixelrnn_index_t)b * height * stride + diag_lstm_pos(rn, jn, stride, skew);
                v = pixelrnn_round_as<P>(src[pn * feat + f0 + f]);
            }
        }
        tile[q][f] = v;
    }
}

// The body of diag_lstm_step_fwd_v2 (fused), diag_lstm_ss_fwd_v2 (unfused), their skewed twins
// and the persistent v2 forward: pre = is + w[:, :, 0] h(above) + w[:, :, 1] h(left) for the
// tile's 16 positions x 32 units x 4 gates, the weight read through `wv` (lstm_v2.cuh); fused:
// the cell in the epilogue; unfused: pre into the gates map. P, PW: as row_lstm_v2_fwd_body (the
// staged h and each weight word rounded on load; diag_lstm_ss_fwd_{tf32,bf16}_v2).
// WB: features per weight batch, as row_lstm_v2_fwd_body's.
template <int P = PIXELRNN_ROUND_FP32, int PW = P, int WB = 1>
PIXELRNN_DEVICE void diag_lstm_v2_fwd_body(const float* is, lstm_wview wv, float* h, float* c,
                                           float* gates, int height, int width, int hidden,
                                           int stride, int skew, int step, lstm_v2_tile tile,
                                           bool fused) {
    PIXELRNN_SHARED(float, hs, [LSTM_V2_POS][LSTM_V2_CHUNK]);
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const int b = tile.b, k0 = tile.p0, q0 = tile.q0, u = tile.u;
    const bool live = tile.live;
    // Position i of this thread is k = k0 + q0 + i, at row r0 + i (column step - r0 - i),
    // in the anti-diagonal while i < n_pos.
    const int r0 = diag_lstm_row(step, k0 + q0, width);
    const int n_pos = count - (k0 + q0);
    float pre[LSTM_V2_PT][4];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const pixelrnn_index_t p = (pixelrnn_index_t)b * height * stride +
                                   diag_lstm_pos(r0 + i, step - r0 - i, stride, skew);
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            pre[i][x] = (live && i < n_pos) ? is[p * g4 + x * hidden + u] : 0.0f;
        }
    }
    for (int t = 0; t < 2; ++t) {
        for (int f0 = 0; f0 < hidden; f0 += LSTM_V2_CHUNK) {
            const int n_f = hidden - f0 < LSTM_V2_CHUNK ? hidden - f0 : LSTM_V2_CHUNK;
            __syncthreads();  // the previous chunk's reads are done
            diag_lstm_v2_stage<LSTM_V2_POS, LSTM_V2_THREADS, LSTM_V2_CHUNK, P>(
                h, hs, b, step, k0, count, t, -1, height, width, stride, skew, hidden, f0, n_f);
            __syncthreads();  // the chunk is complete
            if (!live) continue;
            // The positions whose tap t is in the image: v1 skips a tap in the skew's
            // padding, so does v2 (same bits).
            unsigned taps_in = 0;
#pragma unroll
            for (int i = 0; i < LSTM_V2_PT; ++i) {
                if (i < n_pos && (t == 0 ? r0 + i > 0 : step - r0 - i > 0)) taps_in |= 1u << i;
            }
            const float* w = wv.p + t * wv.st + f0 * wv.sf + tile.lane * wv.su;
            const auto load = [&](int f, lstm_v2_w4* wf) {
#pragma unroll
                for (int x = 0; x < 4; ++x) {
                    wf->x[x] = pixelrnn_round_as<PW>(w[f * wv.sf + x * wv.sx]);
                }
            };
            const auto use = [&](int f, const lstm_v2_w4& wf) {
#pragma unroll
                for (int i = 0; i < LSTM_V2_PT; ++i) {
                    if (!((taps_in >> i) & 1u)) continue;
                    const float hv = hs[q0 + i][f];
#pragma unroll
                    for (int x = 0; x < 4; ++x) pre[i][x] += wf.x[x] * hv;
                }
            };
            lstm_v2_features<WB, lstm_v2_w4>(n_f, load, use);
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
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

// The body of diag_lstm_step_bwd_v2 (fused), diag_lstm_ss_bwd_data_v2 (unfused), their skewed
// twins and the persistent v2 backward: the recurrent dh of the tile's 16 positions x 32 units
// of anti-diagonal `step`, w[:, :, 0]^T d_is(below) + w[:, :, 1]^T d_is(right), the weight read
// through `wv` (backward view); fused: dh + that, then the cell backward; unfused: written to
// dh_carry. P: the staged d_is rounded. WB: as row_lstm_v2_fwd_body.
template <int P = PIXELRNN_ROUND_FP32, int WB = 1>
PIXELRNN_DEVICE void diag_lstm_v2_bwd_body(lstm_wview wv, const float* gates, const float* c,
                                           const float* dh, float* dc_carry, float* d_is,
                                           float* dh_carry, int height, int width, int hidden,
                                           int stride, int skew, int step, lstm_v2_tile tile,
                                           bool fused) {
    PIXELRNN_SHARED(float, ds, [LSTM_V2_POS][LSTM_V2_CHUNK]);
    const int g4 = 4 * hidden;
    const int count = diag_lstm_count(step, height, width);
    const int b = tile.b, k0 = tile.p0, q0 = tile.q0, u = tile.u;
    const bool live = tile.live;
    // Position i of this thread: row r0 + i, in the anti-diagonal while i < n_pos.
    const int r0 = diag_lstm_row(step, k0 + q0, width);
    const int n_pos = count - (k0 + q0);
    float acc[LSTM_V2_PT];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) acc[i] = 0.0f;
    for (int t = 0; t < 2; ++t) {
        for (int f0 = 0; f0 < g4; f0 += LSTM_V2_CHUNK) {
            const int n_f = g4 - f0 < LSTM_V2_CHUNK ? g4 - f0 : LSTM_V2_CHUNK;
            __syncthreads();  // the previous chunk's reads are done
            diag_lstm_v2_stage<LSTM_V2_POS, LSTM_V2_THREADS, LSTM_V2_CHUNK, P>(
                d_is, ds, b, step, k0, count, t, 1, height, width, stride, skew, g4, f0, n_f);
            __syncthreads();  // the chunk is complete
            if (!live) continue;
            // The positions whose tap-t consumer is in the image (v1 skips the others).
            unsigned taps_in = 0;
#pragma unroll
            for (int i = 0; i < LSTM_V2_PT; ++i) {
                if (i < n_pos && (t == 0 ? r0 + i + 1 < height : step - r0 - i + 1 < width)) {
                    taps_in |= 1u << i;
                }
            }
            const float* w = wv.p + t * wv.st + f0 * wv.sf + tile.lane * wv.su;
            const auto load = [&](int f, float* wf) { *wf = w[f * wv.sf]; };
            const auto use = [&](int f, float wf) {
#pragma unroll
                for (int i = 0; i < LSTM_V2_PT; ++i) {
                    if (!((taps_in >> i) & 1u)) continue;
                    acc[i] += wf * ds[q0 + i][f];
                }
            };
            lstm_v2_features<WB, float>(n_f, load, use);
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
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


// row_lstm_v2.cuh: the v2 register-tiled bodies of the Row LSTM recurrence (kernels/row_lstm.cu
// describes them and their kernels), shared by the stepwise v2 kernels (row_lstm.cu: one
// launch per row, the packed weight in global memory) and the persistent v2 kernels
// (lstm_persistent.cuh: one cluster per image, each block's weight slice in shared memory).
// Layout: as row_lstm.cu.
//
// P (PIXELRNN_ROUND_{FP32,TF32,BF16}, mma.cuh) rounds each staged input as it is staged: the
// persistent tf32/bf16 kernels run the CPU twin's rounded-operand products with fp32 FMA; the
// default FP32 stages the inputs unchanged (the fp32 kernels' bits).
#pragma once

#include "lstm_v2.cuh"
#include "mma.cuh"

// Stages `src` rows of positions j0 + off .. j0 + off + 15 of map row `row` of image b
// (features f0 .. f0 + count - 1 of `feat` per position; 0 outside the width or past count)
// into tile[16][LSTM_V2_CHUNK]: lanes take consecutive features (coalesced), each rounded to
// precision P as it is staged (the rounded kernels' GEMM operand; P = fp32: as loaded). The
// persistent v3 backward stages POS = 32 positions into rows of PITCH = 129 floats on 64
// threads (lstm_persistent_v3.cuh); the defaults are v2's tile.
template <int POS = LSTM_V2_POS, int THREADS = LSTM_V2_THREADS, int PITCH = LSTM_V2_CHUNK,
          int P = PIXELRNN_ROUND_FP32>
PIXELRNN_DEVICE void row_lstm_v2_stage(const float* src, float (*tile)[PITCH],
                                       pixelrnn_index_t row_base, int width, int feat, int j0,
                                       int off, int f0, int count) {
    for (int e = threadIdx.x; e < POS * LSTM_V2_CHUNK; e += THREADS) {
        const int q = e / LSTM_V2_CHUNK;
        const int f = e % LSTM_V2_CHUNK;
        const int jj = j0 + q + off;
        tile[q][f] = (f < count && jj >= 0 && jj < width)
                         ? pixelrnn_round_as<P>(src[(row_base + jj) * feat + f0 + f])
                         : 0.0f;
    }
}

// The body of row_lstm_step_fwd_v2 (fused), row_lstm_ss_fwd_v2 (unfused) and
// row_lstm_persistent_fwd_v2: pre = is + conv1xk(h(row-1), w) for the tile's 16 positions x 32
// units x 4 gates, the weight read through `wv` (lstm_v2.cuh); fused: the cell in the epilogue
// (h, c, activated gates written); unfused: pre written into the gates map. P: the precision
// of the product's operands (lstm_v2.cuh): the staged h rounded to P, each weight word to PW
// on load (row_lstm_ss_fwd_{tf32,bf16}_v2: PW = P), `is` and the accumulation fp32. The
// persistent kernels pass PW = fp32: their weight slice was rounded once as it was staged
// into shared memory, so rounding it again in the inner loop would only cost conversions.
// WB: features per weight batch (lstm_v2_features: 1 in v2, LSTM_V8_WEIGHT_BATCH in the
// stepwise v8 kernels; the same bits).
template <int P = PIXELRNN_ROUND_FP32, int PW = P, int WB = 1>
PIXELRNN_DEVICE void row_lstm_v2_fwd_body(const float* is, lstm_wview wv, float* h, float* c,
                                          float* gates, int height, int width, int hidden,
                                          int k, int row, lstm_v2_tile tile, bool fused) {
    PIXELRNN_SHARED(float, hs, [LSTM_V2_POS][LSTM_V2_CHUNK]);
    const int g4 = 4 * hidden;
    const int b = tile.b, j0 = tile.p0, q0 = tile.q0, u = tile.u;
    const bool live = tile.live;
    const pixelrnn_index_t row_p = ((pixelrnn_index_t)b * height + row) * width;

    float pre[LSTM_V2_PT][4];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            pre[i][x] = (live && j < width) ? is[(row_p + j) * g4 + x * hidden + u] : 0.0f;
        }
    }
    if (row > 0) {
        const pixelrnn_index_t above = row_p - width;
        for (int t = 0; t < k; ++t) {
            const int shift = t - k / 2;
            for (int f0 = 0; f0 < hidden; f0 += LSTM_V2_CHUNK) {
                const int count = hidden - f0 < LSTM_V2_CHUNK ? hidden - f0 : LSTM_V2_CHUNK;
                __syncthreads();  // the previous chunk's reads are done
                row_lstm_v2_stage<LSTM_V2_POS, LSTM_V2_THREADS, LSTM_V2_CHUNK, P>(
                    h, hs, above, width, hidden, j0, shift, f0, count);
                __syncthreads();  // the chunk is complete
                if (!live) continue;
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
                        const int jj = j0 + q0 + i + shift;
                        // v1 skips a tap outside the width: so does v2 (same bits).
                        if (jj < 0 || jj >= width) continue;
                        const float hv = hs[q0 + i][f];
#pragma unroll
                        for (int x = 0; x < 4; ++x) pre[i][x] += wf.x[x] * hv;
                    }
                };
                lstm_v2_features<WB, lstm_v2_w4>(count, load, use);
            }
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
        if (j >= width) continue;
        const pixelrnn_index_t p = row_p + j;
        if (fused) {
            const pixelrnn_index_t e = p * hidden + u;
            const float cp = row > 0 ? c[e - (pixelrnn_index_t)width * hidden] : 0.0f;
            pixelrnn_lstm_cell_fwd(pre[i][0], pre[i][1], pre[i][2], pre[i][3], cp,
                                   gates + p * g4 + u, hidden, &c[e], &h[e]);
        } else {
#pragma unroll
            for (int x = 0; x < 4; ++x) gates[p * g4 + x * hidden + u] = pre[i][x];
        }
    }
}

// The body of row_lstm_step_bwd_v2 (fused), row_lstm_ss_bwd_data_v2 (unfused) and
// row_lstm_persistent_bwd_v2: the recurrent dh of the tile's 16 positions x 32 units of `row`,
// conv1xk^T(d_is(row+1), w) with the weight read through `wv` (backward view); fused: plus dh,
// then the cell backward (d_is of `row`, dc_carry of row-1 written); unfused: written to
// dh_carry. P: the staged d_is rounded. WB: as row_lstm_v2_fwd_body.
template <int P = PIXELRNN_ROUND_FP32, int WB = 1>
PIXELRNN_DEVICE void row_lstm_v2_bwd_body(lstm_wview wv, const float* gates, const float* c,
                                          const float* dh, float* dc_carry, float* d_is,
                                          float* dh_carry, int height, int width, int hidden,
                                          int k, int row, lstm_v2_tile tile, bool fused) {
    PIXELRNN_SHARED(float, ds, [LSTM_V2_POS][LSTM_V2_CHUNK]);
    const int g4 = 4 * hidden;
    const int b = tile.b, j0 = tile.p0, q0 = tile.q0, u = tile.u;
    const bool live = tile.live;
    const pixelrnn_index_t row_p = ((pixelrnn_index_t)b * height + row) * width;

    float acc[LSTM_V2_PT];
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
        acc[i] = (fused && live && j < width) ? dh[(row_p + j) * hidden + u] : 0.0f;
    }
    if (row + 1 < height) {
        const pixelrnn_index_t below = row_p + width;
        for (int t = 0; t < k; ++t) {
            const int off = k / 2 - t;  // the consumer in row+1 reading (row, j) by tap t
            for (int f0 = 0; f0 < g4; f0 += LSTM_V2_CHUNK) {
                const int count = g4 - f0 < LSTM_V2_CHUNK ? g4 - f0 : LSTM_V2_CHUNK;
                __syncthreads();  // the previous chunk's reads are done
                row_lstm_v2_stage<LSTM_V2_POS, LSTM_V2_THREADS, LSTM_V2_CHUNK, P>(
                    d_is, ds, below, width, g4, j0, off, f0, count);
                __syncthreads();  // the chunk is complete
                if (!live) continue;
                const float* w = wv.p + t * wv.st + f0 * wv.sf + tile.lane * wv.su;
                const auto load = [&](int f, float* wf) { *wf = w[f * wv.sf]; };
                const auto use = [&](int f, float wf) {
#pragma unroll
                    for (int i = 0; i < LSTM_V2_PT; ++i) {
                        const int jc = j0 + q0 + i + off;
                        if (jc < 0 || jc >= width) continue;
                        acc[i] += wf * ds[q0 + i][f];
                    }
                };
                lstm_v2_features<WB, float>(count, load, use);
            }
        }
    }
    if (!live) return;
#pragma unroll
    for (int i = 0; i < LSTM_V2_PT; ++i) {
        const int j = j0 + q0 + i;
        if (j >= width) continue;
        const pixelrnn_index_t p = row_p + j;
        const pixelrnn_index_t e = p * hidden + u;
        if (fused) {
            const float cp = row > 0 ? c[e - (pixelrnn_index_t)width * hidden] : 0.0f;
            const float dc_prev = pixelrnn_lstm_cell_bwd(gates + p * g4 + u, hidden, c[e], cp,
                                                         acc[i], dc_carry[e], d_is + p * g4 + u);
            if (row > 0) dc_carry[e - (pixelrnn_index_t)width * hidden] = dc_prev;
        } else {
            dh_carry[e] = acc[i];
        }
    }
}


// lstm_persistent_mma_scan.cuh: the persistent tensor-core recurrence's two scan bodies,
// `lstm_pmma_fwd_body` and `lstm_pmma_bwd_body` (both scans, tf32 and bf16, versions 1 and 2),
// which the kernels of kernels/row_lstm_persistent_mma.cu and diag_lstm_persistent_mma.cu
// instantiate. They walk the steps and call the operand staging, the mma product and the
// epilogues of lstm_persistent_mma.cuh, whose header describes the design, the shared-memory
// layouts and the bits. Host side: src/backend/cuda/lstm_persistent_mma.rs. CPU twin: the CPU
// recurrences at the same precision (src/backend/cpu/lstm.rs).
#pragma once

#include "lstm_persistent_mma.cuh"

// The forward scan of one image (`diag`: the Diagonal LSTM, else the Row LSTM of width k):
// per step, per position tile of this block, stage h of the sources, the product, the cell
// (the fused step's: h, c and the activated gates of the step written); one cluster barrier
// per step. V: the version (1, or 2 with v2's coalesced staging and epilogue, the same bits).
template <int P, int V, bool SWAP = false>
PIXELRNN_DEVICE void lstm_pmma_fwd_body(const float* is, const float* w, unsigned* smem,
                                        float* h, float* c, float* gates, int diag, int height,
                                        int width, int hidden, int k) {
    const int taps = diag ? 2 : k;
    const int size = (int)pixelrnn_cluster_blocks();
    const int rank = (int)pixelrnn_cluster_rank();
    const int unit_tiles = (hidden + LSTM_PMMA_UNITS - 1) / LSTM_PMMA_UNITS;
    const int b = blockIdx.x / size;
    const int u0 = (rank % unit_tiles) * LSTM_PMMA_UNITS;
    const int first_tile = rank / unit_tiles, groups = size / unit_tiles;
    const int kw_n = lstm_pmma_kw<P>(hidden, taps), pitch = lstm_pmma_pitch<P>(hidden, taps);
    unsigned* w_s = smem;
    unsigned* a_s = smem + LSTM_PMMA_COLS * pitch;
    if (V == 1) {
        lstm_pmma_stage_slice_v1<P, LstmPmmaWeightFwd>(w, w_s, LSTM_PMMA_COLS, hidden, taps, u0,
                                                       kw_n, pitch);
    } else {
        const int nu = hidden - u0 < LSTM_PMMA_UNITS ? hidden - u0 : LSTM_PMMA_UNITS;
        lstm_pmma_stage_slice_v2<P>(w, w_s, LstmPmmaSliceFwd{hidden, taps, u0, nu}, kw_n, pitch);
    }
    const int steps = diag ? height + width - 1 : height;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int g4 = 4 * hidden;
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (int s = 0; s < steps; ++s) {
        const lstm_mma_geo geo = lstm_mma_geo_of(diag, k, height, width, s);
        const int tiles = (geo.len + LSTM_PMMA_POS - 1) / LSTM_PMMA_POS;
        const bool product = lstm_mma_has_product(geo, -1);  // uniform over the cluster
        for (int pt = first_tile; pt < tiles; pt += groups) {
            const int q0 = pt * LSTM_PMMA_POS;
            float acc[4][4];
            lstm_pmma_zero(acc);
            // The first step has no earlier states: the fused step skips its GEMM (acc 0).
            if (product) {
                if (V == 1) {
                    lstm_pmma_stage_state_fwd<P>(h, a_s, geo, b, q0, hidden, taps);
                } else {
                    lstm_pmma_stage_tile_v2<P>(h, a_s, geo, b, q0, LSTM_PMMA_POS, hidden, taps,
                                               -1, 0, kw_n, pitch);
                }
                __syncthreads();  // the tile is staged before any warp reads it
                lstm_pmma_mma<P, SWAP>(a_s, pitch, w_s + wp * 32 * pitch, pitch, kw_n, acc);
                __syncthreads();  // every warp has read it before the next tile overwrites it
            }
            if (V == 2 && (hidden & 1) == 0) {
                lstm_pmma_epilogue_fwd_pairs(is, h, c, gates, geo, b, q0, u0, hidden, acc);
                continue;
            }
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int q = q0 + (lane >> 2) + 8 * (e >> 1);
                const int u = u0 + wp * 8 + 2 * (lane & 3) + (e & 1);
                if (q >= geo.len || u >= hidden) continue;
                int r, cl;
                lstm_mma_rc(geo, q, &r, &cl);
                const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + cl;
                const float* ip = is + p * g4 + u;
                const pixelrnn_index_t el = p * hidden + u;
                pixelrnn_index_t back;
                const bool has_prev = lstm_mma_prev_cell(geo, r, cl, &back);
                const float cp = has_prev ? c[el - back * hidden] : 0.0f;
                // The fused step's operands in its order (lstm_mma_step_fwd): the same bits.
                pixelrnn_lstm_cell_fwd(ip[0] + acc[0][e], ip[hidden] + acc[1][e],
                                       ip[2 * hidden] + acc[2][e], ip[3 * hidden] + acc[3][e],
                                       cp, gates + p * g4 + u, hidden, &c[el], &h[el]);
            }
        }
        // Step s of every unit (h and c, in global memory) is complete before s + 1 reads it.
        pixelrnn_cluster_sync();
    }
}

// The backward scan of one image: steps in reverse, d_is of every position and the cell
// gradients handed to the previous cell (dc_carry zeroed by the host), as the fused backward.
// V: the version, as the forward's.
template <int P, int V>
PIXELRNN_DEVICE void lstm_pmma_bwd_body(const float* w, unsigned* smem, const float* gates,
                                        const float* c, const float* dh, float* dc_carry,
                                        float* d_is, int diag, int height, int width,
                                        int hidden, int k) {
    const int taps = diag ? 2 : k;
    const int size = (int)pixelrnn_cluster_blocks();
    const int rank = (int)pixelrnn_cluster_rank();
    const int unit_tiles = (hidden + LSTM_PMMA_UNITS - 1) / LSTM_PMMA_UNITS;
    const int b = blockIdx.x / size;
    const int u0 = (rank % unit_tiles) * LSTM_PMMA_UNITS;
    const int first_tile = rank / unit_tiles, groups = size / unit_tiles;
    const int kw_n = lstm_pmma_kw<P>(4 * hidden, taps);
    const int pitch = lstm_pmma_pitch<P>(4 * hidden, taps);
    const int cw = lstm_pmma_bwd_cw<P>(), pitch_a = cw + 4;
    const int per_word = P == MCM_TF32 ? 1 : 2;  // elements per word
    unsigned* w_s = smem;
    unsigned* a_s = smem + LSTM_PMMA_UNITS * pitch;
    if (V == 1) {
        lstm_pmma_stage_slice_v1<P, LstmPmmaWeightBwd>(w, w_s, LSTM_PMMA_UNITS, hidden, taps, u0,
                                                       kw_n, pitch);
    } else {
        const int nu = hidden - u0 < LSTM_PMMA_UNITS ? hidden - u0 : LSTM_PMMA_UNITS;
        lstm_pmma_stage_slice_v2<P>(w, w_s, LstmPmmaSliceBwd{hidden, taps, u0, nu}, kw_n, pitch);
    }
    const int steps = diag ? height + width - 1 : height;
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int g4 = 4 * hidden;
    const pixelrnn_index_t plane = (pixelrnn_index_t)height * width;
    for (int s = steps - 1; s >= 0; --s) {
        const lstm_mma_geo geo = lstm_mma_geo_of(diag, k, height, width, s);
        const int tiles = (geo.len + LSTM_PMMA_BWD_POS - 1) / LSTM_PMMA_BWD_POS;
        const bool product = lstm_mma_has_product(geo, 1);  // uniform over the cluster
        for (int pt = first_tile; pt < tiles; pt += groups) {
            const int q0 = pt * LSTM_PMMA_BWD_POS;
            float acc[4][4];
            lstm_pmma_zero(acc);
            // The last step has no consumers: the fused step skips its GEMM (acc 0).
            for (int kw0 = 0; product && kw0 < kw_n; kw0 += cw) {
                const int cw_n = kw_n - kw0 < cw ? kw_n - kw0 : cw;
                if (V == 1) {
                    lstm_pmma_stage_grad_bwd<P>(d_is, a_s, geo, b, q0, hidden, taps,
                                                kw0 * per_word, cw_n);
                } else {
                    lstm_pmma_stage_tile_v2<P>(d_is, a_s, geo, b, q0, LSTM_PMMA_BWD_POS, g4, taps,
                                               1, kw0, cw_n, pitch_a);
                }
                __syncthreads();  // the chunk is staged before any warp reads it
                lstm_pmma_mma<P>(a_s + wp * 16 * pitch_a, pitch_a, w_s + kw0, pitch, cw_n, acc);
                __syncthreads();  // every warp has read it before the next chunk overwrites it
            }
            if (V == 2 && (hidden & 1) == 0) {
                lstm_pmma_epilogue_bwd_pairs(gates, c, dh, dc_carry, d_is, geo, b, q0, u0, hidden,
                                             acc);
                continue;
            }
#pragma unroll
            for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const int q = q0 + wp * 16 + (lane >> 2) + 8 * (e >> 1);
                    const int u = u0 + ni * 8 + 2 * (lane & 3) + (e & 1);
                    if (q >= geo.len || u >= hidden) continue;
                    int r, cl;
                    lstm_mma_rc(geo, q, &r, &cl);
                    const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * width + cl;
                    const pixelrnn_index_t el = p * hidden + u;
                    pixelrnn_index_t back;
                    const bool has_prev = lstm_mma_prev_cell(geo, r, cl, &back);
                    const float cp = has_prev ? c[el - back * hidden] : 0.0f;
                    // The fused backward step's operands in its order: the same bits.
                    const float dc_prev = pixelrnn_lstm_cell_bwd(
                        gates + p * g4 + u, hidden, c[el], cp, dh[el] + acc[ni][e],
                        dc_carry[el], d_is + p * g4 + u);
                    if (has_prev) dc_carry[el - back * hidden] = dc_prev;
                }
            }
        }
        // Step s's d_is and cell gradients are complete before s - 1 reads them.
        pixelrnn_cluster_sync();
    }
}

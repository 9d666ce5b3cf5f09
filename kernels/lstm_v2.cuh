// lstm_v2.cuh: what the v2 register-tiled recurrence bodies of both scans share
// (row_lstm_v2.cuh, diag_lstm_v2.cuh): the tile shape, the thread's place in a tile, and the
// view of the state weight the bodies read. The stepwise v2 kernels (row_lstm.cu,
// diag_lstm.cu, diag_lstm_skewed.cu) read the weight packed in global memory; the persistent
// v2 kernels (lstm_persistent.cuh) read a block's slice of it staged in shared memory.
// The bodies are templates over P (mma.cuh's PIXELRNN_ROUND_*): P = PIXELRNN_ROUND_FP32 (the
// default, every fp32 kernel) loads the GEMM operands as they are, PIXELRNN_ROUND_TF32 / _BF16
// (the unfused recurrence's rounded kernels) round each operand on load, fp32 FMA.
#pragma once

#include "common.cuh"
#include "mma.cuh"

// A tile: LSTM_V2_POS consecutive positions of one step of one image x LSTM_V2_UNITS units,
// all four gates, on LSTM_V2_THREADS threads; lane = unit u0 + lane, warp w owns the local
// positions w*LSTM_V2_PT .. + LSTM_V2_PT - 1. The inputs of one tap are staged LSTM_V2_CHUNK
// features at a time.
#define LSTM_V2_UNITS 32
#define LSTM_V2_WARPS 4
#define LSTM_V2_PT 4
#define LSTM_V2_POS (LSTM_V2_WARPS * LSTM_V2_PT)
#define LSTM_V2_THREADS (LSTM_V2_WARPS * 32)
#define LSTM_V2_CHUNK 128

// The calling thread's place in the tile of image `b` whose first position in its step is
// `p0`, units u0 .. u0 + 31 of `hidden`.
struct lstm_v2_tile {
    int b;
    int p0;
    int q0;    // the warp's first local position
    int lane;  // the unit's place in the tile
    int u;     // the unit
    bool live;  // u < hidden
};

PIXELRNN_DEVICE lstm_v2_tile lstm_v2_tile_at(int b, int p0, int u0, int hidden) {
    lstm_v2_tile t;
    t.b = b;
    t.p0 = p0;
    t.lane = threadIdx.x % 32;
    t.q0 = (threadIdx.x / 32) * LSTM_V2_PT;
    t.u = u0 + t.lane;
    t.live = t.u < hidden;
    return t;
}

// The tile of a stepwise v2 launch (gridDim = (n * ceil(positions / 16), ceil(h / 32))):
// blockIdx.x = image * position tiles + position tile, blockIdx.y = unit tile.
PIXELRNN_DEVICE lstm_v2_tile lstm_v2_tile_of_block(int positions, int hidden) {
    const int tiles = (positions + LSTM_V2_POS - 1) / LSTM_V2_POS;
    return lstm_v2_tile_at(blockIdx.x / tiles, (blockIdx.x % tiles) * LSTM_V2_POS,
                           blockIdx.y * LSTM_V2_UNITS, hidden);
}

// The state weight as a body reads it: the element of gate block x (forward; 0 in the
// backward, whose features are the 4h gate rows), lane `l` of the tile's units, feature f of
// tap t at p[t*st + f*sf + x*sx + l*su], `p` at the tile's first unit. Offsets fit in int
// (4h * h * taps does: the host checks).
struct lstm_wview {
    const float* p;
    int st, sf, sx, su;
};

// The packed forward weight of lstm_pack_ss_v2 ([taps, h, 4, h]: ((t*h + v)*4 + x)*h + u).
PIXELRNN_DEVICE lstm_wview lstm_wview_packed_fwd(const float* wp, int hidden, int u0) {
    return lstm_wview{wp + u0, 4 * hidden * hidden, 4 * hidden, hidden, 1};
}

// The packed backward weight of lstm_pack_ss_v2 ([taps, 4h, h]: (t*4h + o)*h + u).
PIXELRNN_DEVICE lstm_wview lstm_wview_packed_bwd(const float* wp, int hidden, int u0) {
    return lstm_wview{wp + u0, 4 * hidden * hidden, hidden, 0, 1};
}

// Runs a product's feature loop f = 0 .. n_f - 1 in order: `load(f, &wf)` reads feature f's
// weight words (a W), `use(f, wf)` accumulates with them. WB = 1 (v2): load then use, one
// feature at a time, so each feature's loads wait for the previous feature's FMAs (one load
// round per feature, docs/emulator.md "Load rounds"; the PTX agrees: NVVM unrolls the loop by
// 4 but keeps each load behind the previous copy's FMAs). WB > 1 (v8): the words of WB features
// loaded before any of them is used (one round per WB features), the last n_f % WB one at a
// time. The same uses in the same order: the same bits for every WB.
template <int WB, class W, class Load, class Use>
PIXELRNN_DEVICE void lstm_v2_features(int n_f, Load load, Use use) {
    int f = 0;
    if constexpr (WB > 1) {
        for (; f + WB <= n_f; f += WB) {
            W wb[WB];
#pragma unroll
            for (int j = 0; j < WB; ++j) load(f + j, &wb[j]);
#pragma unroll
            for (int j = 0; j < WB; ++j) use(f + j, wb[j]);
        }
    }
    for (; f < n_f; ++f) {
        W wf;
        load(f, &wf);
        use(f, wf);
    }
}

// The four gates' weight words of one feature (the forward bodies' W for lstm_v2_features).
struct lstm_v2_w4 {
    float x[4];
};

// Features per weight batch of the stepwise v8 kernels (lstm_v2_features).
#define LSTM_V8_WEIGHT_BATCH 8


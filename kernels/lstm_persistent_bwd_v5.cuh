// lstm_persistent_bwd_v5.cuh: the persistent v5 backward of both scans
// (row_lstm_persistent_bwd_v5, diag_lstm_persistent_bwd_v5, diag_lstm_skewed_persistent_bwd_v5
// and the folded layout's rounded twins <scan>_persistent_bwd_{tf32,bf16}_v5; entry points in
// kernels/row_lstm_persistent_v5.cu, diag_lstm_persistent_v5.cu,
// diag_lstm_skewed_persistent_v5.cu, one module per op name): v3's clusters and block tile (32
// positions x 32 units per 64-thread block, one cluster barrier per step, d_is and dc_carry
// through global memory; lstm_persistent_v3.cuh) over v4's thread tile (8 positions x 8 units,
// lstm_persistent_v4.cuh) with the K range split 4 ways inside each warp.
//
// Why (issue 17): v4 reaches 8 FLOPs per shared word with its 8 x 8 thread tile, but its 64 x
// 32 block tile on 64 threads leaves one of the two warps idle at W = 32 (cifar-large: every
// step has at most 32 positions). v5 keeps the thread tile (per feature two float4 of staged
// d_is and two of weight for 64 FMAs: 8 FLOPs per word) and gives each warp half of v4's warp
// tile: the 32 lanes are 4 K-groups (kg = lane / 8) x 8 lanes (pg = lane % 2: positions pg + 2i
// of the warp's 16, i < 8; ug = lane % 8 / 2: units ug + 4j of the slice, j < 8); K-group kg
// takes the chunk's features kg, kg + 4, kg + 8, ..., so the 4 lanes (pg, ug, kg = 0..3) hold 4
// partial 8 x 8 tiles of the same outputs. Warp w covers positions 16 w .. 16 w + 15 of the
// block's 32: both warps are busy wherever the step has more than 16 positions. The partials
// are summed by two butterfly levels of __shfl_xor_sync (reduce-scatter: lane bit 4 splits the
// units by j parity, 32 shuffles; lane bit 3 splits the positions by i parity, 16 shuffles),
// after which lane (kg, pg, ug) holds the complete products of positions pg + 2 (kg & 1) + 4n
// (n < 4) x units ug + 4 (kg >> 1) + 8m (m < 4) and runs the cell backward on its registers
// (lstm_v3_bwd_store). Shuffles are not shared-memory words: the counters' ratio stays at 8
// (docs/kernels.md, "Persistent backward v5 (issue 17)").
//
// Summation order per element (deterministic: the same bits on every run and schedule, not
// v3's / v4's bits): each K-group adds its features (tap, then feature of its class mod 4)
// ascending from 0; the partials P0..P3 are combined as (P0 + P2) + (P1 + P3) (the two lanes of
// a butterfly compute the same sum: fp32 addition is commutative); the cell then adds dh first
// (dh + product, as v3 and v4). A tap's product is not skipped for a position whose consumer is
// outside the map: the stage holds 0 there, and a finite weight times 0 adds 0. A warp whose 16
// positions are all past the step skips its product and shuffles (warp-uniform).
//
// Layouts (no padding: float4 alignment kept, conflicts removed by XOR swizzles):
//   staged d_is: ds[w][f][16] (warp w, chunk feature f), the warp's position q at column
//     ((q % 2) * 8 + q / 2) ^ (4 * ((f >> 1) & 3)); lane (pg, ug, kg) reads the positions
//     pg + 2i (i < 8) as two float4. A load request: the 4 K-groups read features f .. f + 3
//     (f % 4 == 0), each 2 distinct float4 (pg = 0, 1; the 4 ug lanes are a broadcast): the
//     even features in banks 0..15, the odd in 16..31, and f, f + 2 XORed 4 apart: 32 distinct
//     banks, 1 wavefront. The stage writes 8 consecutive features x 4 positions of one parity
//     per request (4 sectors of 32 bytes from global): per feature parity the 4 features' XORs
//     are 4 distinct 4-bank blocks, 32 distinct banks.
//   weight slice: v4's (lstm_persistent_v4_stage_bwd, lstm_v4_col): w_s[(o * taps + t) * 32 +
//     (((v % 4) * 8 + v / 4) ^ (4 * (o & 7)))]; lane ug reads its units ug + 4j as two float4.
//     A request: the 4 K-groups' rows o .. o + 3 (o % 4 == 0) hold 4 distinct float4 each (64
//     words, 2 wavefronts at least), and their XORs 4 (o & 7) put every bank under exactly 2 of
//     them: 2 wavefronts, the minimum.
// Chunks: LSTM_PERSISTENT_BWD_V5_CHUNK (128) features of one tap per stage (32 positions x 128
// features = 16 KiB static, within v3's 16.1 KiB tile).
//
// Shared memory per block: 32 x 4h x taps floats (dynamic; the host reserves v2's and v3's
// 32 x (4h taps + 1)) + 16 KiB: v3's budget less 128 bytes, so v5 fits exactly where v3 does
// (Row LSTM k = 3 up to h = 140, Diagonal up to h = 210; past them the host falls back to v4's
// fallbacks: v4 does not fit either, then v2 up to 145 / 218, then v1).
//
// v6 (row_lstm_persistent_bwd_v6, diag_lstm_persistent_bwd_v6, diag_lstm_skewed_persistent_bwd_v6
// and the folded twins <scan>_persistent_bwd_{tf32,bf16}_v6; entry points in
// kernels/*_persistent_v6.cu): these bodies at lstm_bwd6_design, 16-position block tiles (v2's:
// at W = 32 two position groups, so twice v5's blocks) of one position warp x 8 warp groups,
// 256 threads. Why (issue 17): at h = 128 one block runs per SM (the weight slice fills its
// shared memory), and v5's 64-thread blocks give the SM 2 warps, on half the SMs at
// cifar-large; v6 gives it 8 on all of them (docs/kernels.md, "Persistent v6"). Warp group wg
// takes the chunk features kg + 4 wg + 32 i (32 K-slots), chunks of 256 features, at v5's 8
// FLOPs per shared word. After each warp's butterfly the groups sum through the staging tile
// (lstm_bwd6_exchange: 16 words per lane and step, float2, conflict-free), group wg finishing
// position n = wg % 4 of the lane's 4 at 2 of its 4 units; summation order (deterministic, not
// v5's bits): each group's partial as v5's, then ((P0 + P1) + (P2 + P3)) + ((P4 + P5) +
// (P6 + P7)), then the cell adds dh first. A step without a product (the Row LSTM's last row)
// skips the exchange (every partial is 0). Shared memory: v5's (the 16 x 256 float staging
// tile is v5's 16 KiB and holds the exchange, 8 groups x 8 float2 x 32 lanes), so v6 fits
// exactly where v5 does.
#pragma once

#include "diag_lstm_v2.cuh"
#include "lstm_persistent.cuh"
#include "lstm_persistent_v4.cuh"
#include "lstm_v3.cuh"

#define LSTM_PERSISTENT_BWD_V5_POS 32
#define LSTM_PERSISTENT_BWD_V5_THREADS 64
#define LSTM_PERSISTENT_BWD_V5_CHUNK 128
// Positions of one warp's tile; positions (and units) per thread's partial tile; positions
// (and units) per lane after the two shuffle levels.
#define LSTM_BWD5_WARP_POS 16
#define LSTM_BWD5_T 8
#define LSTM_BWD5_F 4

// The block designs: D position warps of 16 positions per warp group, WG warp groups splitting
// the K range, CH features per staged chunk. v5: 2 x 1 on 64 threads, chunks of 128 (the
// 16 KiB tile); v6: 1 x 8 on 256 threads, chunks of 256 (the same 16 KiB tile, which also holds
// the exchange: 8 groups x 8 float2 x 32 lanes).
#define LSTM_BWD6_GROUPS 8
#define LSTM_PERSISTENT_BWD_V6_THREADS 256
#define LSTM_PERSISTENT_BWD_V6_POS 16
#define LSTM_PERSISTENT_BWD_V6_CHUNK 256
// BATCH: 0 stages a chunk in a rolled loop (one load round per element a thread stages), else
// BATCH elements' loads at a time before their stores (lstm_bwd7_stage). V7: the first
// chunk's barrier of a tile whose staging tile is already free is not taken (lstm_bwd5_tap).
// v7: v6's block with chunks of 512 features (a whole tap at h = 128: the 32 KiB tile, which
// holds the exchange in its first half) staged 16 loads at a time.
#define LSTM_PERSISTENT_BWD_V7_CHUNK 512
#define LSTM_BWD7_BATCH 16
struct lstm_bwd5_design {
    static constexpr int D = 2, WG = 1, THREADS = LSTM_PERSISTENT_BWD_V5_THREADS,
                         CH = LSTM_PERSISTENT_BWD_V5_CHUNK, POS = LSTM_PERSISTENT_BWD_V5_POS,
                         BATCH = 0;
    static constexpr bool V7 = false;
};
struct lstm_bwd6_design {
    static constexpr int D = 1, WG = LSTM_BWD6_GROUPS, THREADS = LSTM_PERSISTENT_BWD_V6_THREADS,
                         CH = LSTM_PERSISTENT_BWD_V6_CHUNK, POS = LSTM_PERSISTENT_BWD_V6_POS,
                         BATCH = 0;
    static constexpr bool V7 = false;
};
struct lstm_bwd7_design {
    static constexpr int D = 1, WG = LSTM_BWD6_GROUPS, THREADS = LSTM_PERSISTENT_BWD_V6_THREADS,
                         CH = LSTM_PERSISTENT_BWD_V7_CHUNK, POS = LSTM_PERSISTENT_BWD_V6_POS,
                         BATCH = LSTM_BWD7_BATCH;
    static constexpr bool V7 = true;
};
static_assert(LSTM_PERSISTENT_BWD_V6_POS * LSTM_PERSISTENT_BWD_V6_CHUNK ==
                  LSTM_BWD6_GROUPS * 8 * 2 * 32,
              "v6's exchange fills its staging tile exactly");
static_assert(LSTM_PERSISTENT_BWD_V6_POS * LSTM_PERSISTENT_BWD_V7_CHUNK >=
                  LSTM_BWD6_GROUPS * 8 * 2 * 32,
              "v7's staging tile holds v6's exchange");
static_assert(LSTM_PERSISTENT_BWD_V6_POS * LSTM_PERSISTENT_BWD_V7_CHUNK %
                      (LSTM_PERSISTENT_BWD_V6_THREADS * LSTM_BWD7_BATCH) ==
                  0,
              "v7's stage is whole batches");

// The column of the warp's position q in the staged row of chunk feature f.
PIXELRNN_DEVICE int lstm_bwd5_col(int q, int f) {
    return ((q & 1) * 8 + (q >> 1)) ^ (4 * ((f >> 1) & 3));
}

// Element e of a chunk's stage (lstm_bwd5_stage, CH features per chunk): its place *at in ds
// and its value, d_is at (`src_pos(q)`, f0 + f) rounded to P, 0 where the consumer is outside
// the map or f >= n_f. Feature f = 8 (e/32 % (CH/8)) + e % 8; the warp-local position q =
// par + 2 (4 hb + e/8 % 4) of position warp w, where e/(4 CH) = par + 2 hb + 4 w.
template <int P, int CH, class SrcPos>
PIXELRNN_DEVICE float lstm_bwd5_element(const float* d_is, SrcPos src_pos, int g4, int f0,
                                        int n_f, int e, int* at) {
    const int f_low = e & 7;
    const int m_low = (e >> 3) & 3;
    const int r = e >> 5;
    const int f = (r % (CH / 8)) * 8 + f_low;
    const int rest = r / (CH / 8);
    const int par = rest & 1;
    const int hb = (rest >> 1) & 1;
    const int w = rest >> 2;
    const int q = par + 2 * (4 * hb + m_low);
    const pixelrnn_index_t pn = src_pos(LSTM_BWD5_WARP_POS * w + q);
    *at = (w * CH + f) * LSTM_BWD5_WARP_POS + lstm_bwd5_col(q, f);
    return (f < n_f && pn >= 0) ? pixelrnn_round_as<P>(d_is[pn * g4 + f0 + f]) : 0.0f;
}

// Stages features f0 .. f0 + n_f - 1 of one tap's source positions into ds (the block's 16 D
// positions, D = 2 in v5, 1 in v6; 0 where `src_pos(q)` < 0 or past n_f), rounded to P, by the
// block's THREADS threads, CH features per chunk. Element e: feature 8 (e/32 % (CH/8)) + e % 8;
// the warp-local position q = par + 2 (4 hb + e/8 % 4) of position warp w, where
// e/(4 CH) = par + 2 hb + 4 w: a request reads 8 consecutive floats of 4 positions (4 sectors)
// and writes 32 distinct banks.
template <int P, int D, int THREADS, int CH, class SrcPos>
PIXELRNN_DEVICE void lstm_bwd5_stage(const float* d_is, float* ds, SrcPos src_pos, int g4,
                                     int f0, int n_f) {
    for (int e = threadIdx.x; e < LSTM_BWD5_WARP_POS * D * CH; e += THREADS) {
        int at;
        const float v = lstm_bwd5_element<P, CH>(d_is, src_pos, g4, f0, n_f, e, &at);
        ds[at] = v;
    }
}

// v7's stage (as lstm_bwd5_stage, the design G): BATCH elements' loads into registers, then
// their stores, so that a batch's loads are in flight together (one round, docs/emulator.md
// "Load rounds"; v6's rolled loop waits for each before the next).
template <int P, class G, class SrcPos>
PIXELRNN_DEVICE void lstm_bwd7_stage(const float* d_is, float* ds, SrcPos src_pos, int g4,
                                     int f0, int n_f) {
    constexpr int PER = LSTM_BWD5_WARP_POS * G::D * G::CH / G::THREADS;
#pragma unroll 1
    for (int b = 0; b < PER; b += G::BATCH) {
        float v[G::BATCH];
        int at[G::BATCH];
#pragma unroll
        for (int i = 0; i < G::BATCH; ++i) {
            v[i] = lstm_bwd5_element<P, G::CH>(d_is, src_pos, g4, f0, n_f,
                                               (int)threadIdx.x + (b + i) * G::THREADS, &at[i]);
        }
#pragma unroll
        for (int i = 0; i < G::BATCH; ++i) ds[at[i]] = v[i];
    }
}

// The thread's place: position warp w (its 16 positions), K-group kg, position group pg, unit
// group ug, and warp group wg (v6: warp wg of the block; 0 in v5, whose warps are w = 0, 1).
struct lstm_bwd5_lane {
    int w, kg, pg, ug, wg;
};

// D position warps per warp group (v5: 2 warps, 1 group; v6: 1 position warp, 8 groups).
template <int D>
PIXELRNN_DEVICE lstm_bwd5_lane lstm_bwd5_lane_of_thread() {
    const int lane = (int)threadIdx.x % 32;
    const int warp = (int)threadIdx.x / 32;
    return lstm_bwd5_lane{warp % D, lane >> 3, lane & 1, (lane & 7) >> 1, warp / D};
}

// acc[i][j] += w(o, t, unit ug + 4j) * ds(f, position pg + 2i) for the K-group's features
// f = kg + 4 wg, kg + 4 wg + 4 WG, ... < n_f of a staged chunk of CH features (o = f0 + f),
// ascending (WG warp groups: v5 1, v6 8): per feature two float4 per operand feed 64 FMAs.
template <int WG, int CH>
PIXELRNN_DEVICE void lstm_bwd5_chunk(const float* w_s, const float* ds, lstm_bwd5_lane me,
                                     int taps, int t, int f0, int n_f,
                                     float (*acc)[LSTM_BWD5_T]) {
    const float* dsw = ds + me.w * CH * LSTM_BWD5_WARP_POS;
    for (int f = me.kg + 4 * me.wg; f < n_f; f += 4 * WG) {
        const int sd = 4 * ((f >> 1) & 3);
        const int sw = 4 * (f & 7);  // f0 is a multiple of 8: o & 7 == f & 7
        const float* drow = dsw + f * LSTM_BWD5_WARP_POS;
        const float* wrow = w_s + ((f0 + f) * taps + t) * LSTM_V4_WARP_POS;
        const float4 d0 = *reinterpret_cast<const float4*>(drow + ((8 * me.pg) ^ sd));
        const float4 d1 = *reinterpret_cast<const float4*>(drow + ((8 * me.pg + 4) ^ sd));
        const float4 w0 = *reinterpret_cast<const float4*>(wrow + ((8 * me.ug) ^ sw));
        const float4 w1 = *reinterpret_cast<const float4*>(wrow + ((8 * me.ug + 4) ^ sw));
        lstm_v4_bwd_fma_tile(d0, d1, w0, w1, acc);  // LSTM_BWD5_T == LSTM_V4_T
    }
}

// One tap's product over the 4h gate rows, CH at a time (the design G: lstm_bwd5_design):
// each chunk staged between two block barriers (every thread calls this), then accumulated by
// the warps with positions in the step (`busy`, warp-uniform).
// `fresh`: ds has not been read since the last block or cluster barrier (v7's first tap of a
// block's first tile in a step: the step's cluster barrier or the weight stage's barrier is
// the last), so the first chunk's barrier before staging is not taken.
template <int P, class G, class SrcPos>
PIXELRNN_DEVICE void lstm_bwd5_tap(const float* w_s, float* ds, const float* d_is,
                                   SrcPos src_pos, lstm_bwd5_lane me, int taps, int t, int g4,
                                   bool busy, bool fresh, float (*acc)[LSTM_BWD5_T]) {
    for (int f0 = 0; f0 < g4; f0 += G::CH) {
        const int n_f = g4 - f0 < G::CH ? g4 - f0 : G::CH;
        if (f0 > 0 || !fresh) __syncthreads();  // the previous chunk's reads are done
        if constexpr (G::BATCH > 0) {
            lstm_bwd7_stage<P, G>(d_is, ds, src_pos, g4, f0, n_f);
        } else {
            lstm_bwd5_stage<P, G::D, G::THREADS, G::CH>(d_is, ds, src_pos, g4, f0, n_f);
        }
        __syncthreads();  // the chunk is complete
        if (busy) lstm_bwd5_chunk<G::WG, G::CH>(w_s, ds, me, taps, t, f0, n_f, acc);
    }
}

// The two butterfly levels: out[n][m] = the sum of the 4 K-groups' acc at position i =
// 2n + (kg & 1), unit j = 2m + (kg >> 1) of the thread tile, (P0 + P2) + (P1 + P3). Level 1
// (lane bit 4, K-group bit 1): the lane keeps the units j of parity kg >> 1 and sends the other
// 32 values; level 2 (lane bit 3, K-group bit 0) keeps the positions i of parity kg & 1 of
// those. Every lane of the warp calls this (the shuffles are warp-collective).
PIXELRNN_DEVICE void lstm_bwd5_reduce(lstm_bwd5_lane me, float (*acc)[LSTM_BWD5_T],
                                      float (*out)[LSTM_BWD5_F]) {
    const bool hi = (me.kg & 2) != 0;
    float half[LSTM_BWD5_T][LSTM_BWD5_F];
#pragma unroll
    for (int i = 0; i < LSTM_BWD5_T; ++i) {
#pragma unroll
        for (int m = 0; m < LSTM_BWD5_F; ++m) {
            const float keep = hi ? acc[i][2 * m + 1] : acc[i][2 * m];
            const float send = hi ? acc[i][2 * m] : acc[i][2 * m + 1];
            half[i][m] = keep + __shfl_xor_sync(PIXELRNN_FULL_MASK, send, 16);
        }
    }
    const bool odd = (me.kg & 1) != 0;
#pragma unroll
    for (int n = 0; n < LSTM_BWD5_F; ++n) {
#pragma unroll
        for (int m = 0; m < LSTM_BWD5_F; ++m) {
            const float keep = odd ? half[2 * n + 1][m] : half[2 * n][m];
            const float send = odd ? half[2 * n][m] : half[2 * n + 1][m];
            out[n][m] = keep + __shfl_xor_sync(PIXELRNN_FULL_MASK, send, 8);
        }
    }
}

// The epilogue of one lane's position n < 4 of its tile (the warp's local position
// pg + 2 (kg & 1) + 4n of 16) at its units m0 .. m0 + count - 1 (slice unit ug + 4 (kg >> 1) +
// 8m: 8 consecutive units per request with its partner lanes, 4 positions: 4 full sectors per
// gate), the cell backward (lstm_v3_bwd_store: dh + vals[m - m0], the product). `pos(q)` is the
// map position of the warp's local position q, or -1 past the step; `prev(q)` the
// predecessor's offset (0: none).
template <class Pos, class Prev>
PIXELRNN_DEVICE void lstm_bwd5_finish_at(const float* gates, const float* c, const float* dh,
                                         float* dc_carry, float* d_is, int hidden, int u0,
                                         lstm_bwd5_lane me, int n, int m0, int count, Pos pos,
                                         Prev prev, const float* vals) {
    const int u = u0 + me.ug + 4 * (me.kg >> 1) + 8 * m0;
    int n_u = 0;
#pragma unroll
    for (int m = 0; m < LSTM_BWD5_F; ++m) n_u += m < count && u + 8 * m < hidden ? 1 : 0;
    const int q = me.pg + 2 * (me.kg & 1) + 4 * n;
    const pixelrnn_index_t p = pos(q);
    if (p < 0) return;
    lstm_v3_bwd_store(gates, c, dh, dc_carry, d_is, 0, p, hidden, u, 8, n_u, prev(q), vals, true);
}

// v5's epilogue of one warp's tile: every position n of the lane at all its 4 units.
template <class Pos, class Prev>
PIXELRNN_DEVICE void lstm_bwd5_finish(const float* gates, const float* c, const float* dh,
                                      float* dc_carry, float* d_is, int hidden, int u0,
                                      lstm_bwd5_lane me, Pos pos, Prev prev,
                                      float (*tot)[LSTM_BWD5_F]) {
#pragma unroll
    for (int n = 0; n < LSTM_BWD5_F; ++n) {
        lstm_bwd5_finish_at(gates, c, dh, dc_carry, d_is, hidden, u0, me, n, 0, LSTM_BWD5_F, pos,
                            prev, tot[n]);
    }
}

// v6's exchange between the 8 warp groups (after each warp's butterfly; every thread of the
// block calls this: two block barriers). Each group writes its lane's 4 positions x 4 units,
// tot[n][2 half], tot[n][2 half + 1] as one float2 at xs[((wg * 4 + n) * 2 + half) * 32 + lane]
// (the staging tile, free once every product has read it), then group wg finishes position
// n = wg % 4 at the units of m = 2 (wg / 4), + 1: it reads that float2 of every group and sums
// them in the fixed order ((P0 + P1) + (P2 + P3)) + ((P4 + P5) + (P6 + P7)) into fin[0..1].
// Consecutive lanes, consecutive float2 both ways: 2 wavefronts per request, the minimum.
// `busy` (warp-uniform, the same in every group: all cover the block's 16 positions).
PIXELRNN_DEVICE void lstm_bwd6_exchange(float* xs, lstm_bwd5_lane me, bool busy,
                                        float (*tot)[LSTM_BWD5_F], float* fin) {
    const int lane = (int)threadIdx.x % 32;
    float2* x2 = reinterpret_cast<float2*>(xs);
    __syncthreads();  // every product's reads of the staging tile (xs) are done
    if (busy) {
#pragma unroll
        for (int n = 0; n < LSTM_BWD5_F; ++n) {
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) {
                x2[((me.wg * LSTM_BWD5_F + n) * 2 + hf) * 32 + lane] =
                    make_float2(tot[n][2 * hf], tot[n][2 * hf + 1]);
            }
        }
    }
    __syncthreads();  // every group's partials are written
    if (!busy) return;
    const int n = me.wg % LSTM_BWD5_F;
    const int half = me.wg / LSTM_BWD5_F;
    float2 part[LSTM_BWD6_GROUPS];
#pragma unroll
    for (int g = 0; g < LSTM_BWD6_GROUPS; ++g) {
        part[g] = x2[((g * LSTM_BWD5_F + n) * 2 + half) * 32 + lane];
    }
    fin[0] = ((part[0].x + part[1].x) + (part[2].x + part[3].x)) +
             ((part[4].x + part[5].x) + (part[6].x + part[7].x));
    fin[1] = ((part[0].y + part[1].y) + (part[2].y + part[3].y)) +
             ((part[4].y + part[5].y) + (part[6].y + part[7].y));
}

// One warp's step (the design G): the taps' products (`taps_fn(acc, busy)` runs every tap;
// every thread calls it, as it stages), then, where the warp is busy, the reduction and the cell
// backward; under v6 the exchange between the warp groups through `xs` in between (every
// thread), after which the lane finishes one position x 2 units.
template <class G, class Pos, class Prev, class Taps>
PIXELRNN_DEVICE void lstm_bwd5_tile(const float* gates, const float* c, const float* dh,
                                    float* dc_carry, float* d_is, int hidden, int u0,
                                    lstm_bwd5_lane me, bool busy, bool product, Pos pos,
                                    Prev prev, Taps taps_fn, float* xs) {
    float acc[LSTM_BWD5_T][LSTM_BWD5_T];
#pragma unroll
    for (int i = 0; i < LSTM_BWD5_T; ++i) {
#pragma unroll
        for (int j = 0; j < LSTM_BWD5_T; ++j) acc[i][j] = 0.0f;
    }
    if (product) taps_fn(acc, busy);
    float tot[LSTM_BWD5_F][LSTM_BWD5_F];
    if (busy) lstm_bwd5_reduce(me, acc, tot);  // warp-uniform
    if (G::WG == 1) {
        if (!busy) return;  // no position of the warp's 16 in the step (warp-uniform)
        lstm_bwd5_finish(gates, c, dh, dc_carry, d_is, hidden, u0, me, pos, prev, tot);
        return;
    }
    float fin[LSTM_BWD5_F] = {0.0f, 0.0f, 0.0f, 0.0f};
    // No product (block-uniform): every partial is 0, and so is fin.
    if (product) lstm_bwd6_exchange(xs, me, busy, tot, fin);
    if (!busy) return;
    // Group wg's share (lstm_bwd6_exchange): position n = wg % 4, units m = 2 (wg / 4), + 1.
    lstm_bwd5_finish_at(gates, c, dh, dc_carry, d_is, hidden, u0, me, me.wg % LSTM_BWD5_F,
                        2 * (me.wg / LSTM_BWD5_F), 2, pos, prev, fin);
}

// The Row LSTM's persistent v5 (G = lstm_bwd5_design) or v6 (lstm_bwd6_design) backward at
// precision P: rows bottom-up, as row_lstm_persistent_bwd_v3_body.
template <int P = PIXELRNN_ROUND_FP32, class G = lstm_bwd5_design>
PIXELRNN_DEVICE void row_lstm_persistent_bwd_v5_body(const float* w, float* w_s,
                                                     const float* gates, const float* c,
                                                     const float* dh, float* dc_carry,
                                                     float* d_is, int height, int width,
                                                     int hidden, int k) {
    PIXELRNN_SHARED(float, ds, [G::POS * G::CH]);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_bwd5_lane ln = lstm_bwd5_lane_of_thread<G::D>();
    lstm_persistent_v4_stage_bwd<P, G::V7 ? LSTM_V7_WEIGHT_BATCH : 1>(w, w_s, hidden, k, me.u0);
    const int g4 = 4 * hidden;
    const int tiles = (width + G::POS - 1) / G::POS;
    for (int r = height - 1; r >= 0; --r) {
        const pixelrnn_index_t row_p = ((pixelrnn_index_t)me.b * height + r) * width;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int j0 = pt * G::POS;
            const int jw = j0 + LSTM_BWD5_WARP_POS * ln.w;  // the warp's first position
            const auto pos = [&](int q) -> pixelrnn_index_t {
                return jw + q < width ? row_p + jw + q : -1;
            };
            const auto prev = [&](int) -> pixelrnn_index_t {
                return r > 0 ? (pixelrnn_index_t)width * hidden : 0;
            };
            const auto taps = [&](float (*acc)[LSTM_BWD5_T], bool busy) {
                const pixelrnn_index_t below = row_p + width;
                for (int t = 0; t < k; ++t) {
                    const int off = k / 2 - t;  // the consumer in row r+1 reading (r, j) by tap t
                    const auto src = [&](int q) -> pixelrnn_index_t {
                        const int jj = j0 + q + off;
                        return jj >= 0 && jj < width ? below + jj : -1;
                    };
                    const bool fresh = G::V7 && t == 0 && pt == me.first_tile;
                    lstm_bwd5_tap<P, G>(w_s, ds, d_is, src, ln, k, t, g4, busy, fresh, acc);
                }
            };
            // The last row has no consumer: its product is 0.
            lstm_bwd5_tile<G>(gates, c, dh, dc_carry, d_is, hidden, me.u0, ln, jw < width,
                              r + 1 < height, pos, prev, taps, ds);
        }
        // Row r's d_is (every gate row) and its cell gradients are complete before row r-1.
        pixelrnn_cluster_sync();
    }
}

// The Diagonal LSTM's persistent v5 (G = lstm_bwd5_design) or v6 (lstm_bwd6_design) backward
// in either layout (stride, skew as in diag_lstm.cuh) at precision P: anti-diagonals in
// reverse, as diag_lstm_persistent_bwd_v3_body.
template <int P = PIXELRNN_ROUND_FP32, class G = lstm_bwd5_design>
PIXELRNN_DEVICE void diag_lstm_persistent_bwd_v5_body(const float* w, float* w_s,
                                                      const float* gates, const float* c,
                                                      const float* dh, float* dc_carry,
                                                      float* d_is, int height, int width,
                                                      int hidden, int stride, int skew) {
    PIXELRNN_SHARED(float, ds, [G::POS * G::CH]);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_bwd5_lane ln = lstm_bwd5_lane_of_thread<G::D>();
    lstm_persistent_v4_stage_bwd<P, G::V7 ? LSTM_V7_WEIGHT_BATCH : 1>(w, w_s, hidden, 2, me.u0);
    const int g4 = 4 * hidden;
    const pixelrnn_index_t img = (pixelrnn_index_t)me.b * height * stride;
    for (int s = height + width - 2; s >= 0; --s) {
        const int count = diag_lstm_count(s, height, width);
        const int tiles = (count + G::POS - 1) / G::POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int k0 = pt * G::POS;
            const int kw = k0 + LSTM_BWD5_WARP_POS * ln.w;
            const auto pos = [&](int q) -> pixelrnn_index_t {
                if (kw + q >= count) return -1;
                const int r = diag_lstm_row(s, kw + q, width);
                return img + diag_lstm_pos(r, s - r, stride, skew);
            };
            const auto prev = [&](int q) -> pixelrnn_index_t {
                return s - diag_lstm_row(s, kw + q, width) > 0 ? (pixelrnn_index_t)hidden : 0;
            };
            const auto taps = [&](float (*acc)[LSTM_BWD5_T], bool busy) {
                for (int t = 0; t < 2; ++t) {
                    // Position q's tap-t consumer (below for t = 0, right for t = 1), or none.
                    const auto src = [&](int q) -> pixelrnn_index_t {
                        if (k0 + q >= count) return -1;
                        const int r = diag_lstm_row(s, k0 + q, width);
                        int rn, jn;
                        if (!diag_lstm_v2_neighbour(r, s - r, t, 1, height, width, &rn, &jn)) {
                            return -1;
                        }
                        return img + diag_lstm_pos(rn, jn, stride, skew);
                    };
                    const bool fresh = G::V7 && t == 0 && pt == me.first_tile;
                    lstm_bwd5_tap<P, G>(w_s, ds, d_is, src, ln, 2, t, g4, busy, fresh, acc);
                }
            };
            lstm_bwd5_tile<G>(gates, c, dh, dc_carry, d_is, hidden, me.u0, ln, kw < count, true,
                              pos, prev, taps, ds);
        }
        // Anti-diagonal s's d_is and cell gradients are complete before s-1 reads them.
        pixelrnn_cluster_sync();
    }
}

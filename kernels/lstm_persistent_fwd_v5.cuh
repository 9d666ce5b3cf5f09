// lstm_persistent_fwd_v5.cuh: the persistent v5 forward of both scans
// (row_lstm_persistent_fwd_v5, diag_lstm_persistent_fwd_v5, diag_lstm_skewed_persistent_fwd_v5
// and the folded layout's rounded twins <scan>_persistent_fwd_{tf32,bf16}_v5; entry points in
// kernels/row_lstm_persistent_v5.cu, diag_lstm_persistent_v5.cu,
// diag_lstm_skewed_persistent_v5.cu, one module per op name): v2's clusters and block tile (16
// positions x 32 units x 4 gates per 128-thread block, one cluster barrier per step, the states
// through global memory; lstm_persistent.cuh) over v4's thread tile (8 positions x 2 units x 4
// gates, lstm_persistent_fwd_v4.cuh) with the K range split 4 ways inside each warp.
//
// Why (issue 17): v4 reaches 8 FLOPs per shared word with its 8 x 2 x 4 thread tile, but its
// 32 x 32 block tile on 64 threads runs half of v2's warps per image at cifar-large (4 blocks x
// 2 warps against 8 x 4). v5 keeps the thread tile (per feature two float4 of staged h and two
// of weight for 64 FMAs: 8 FLOPs per word) and gives each warp a quarter of v4's block tile:
// the 32 lanes are 4 K-groups (kg = lane / 8) x 8 unit groups (ug = lane % 8); K-group kg takes
// the chunk's features kg, kg + 4, kg + 8, ..., so the 4 lanes (ug, kg = 0..3) hold 4 partial
// 8 x 2 x 4 tiles of the same outputs. Warp w covers positions 8 (w % 2) .. + 7 (its octet) and
// units 16 (w / 2) + ug, + ug + 8 of the slice: the block is v2's 16 x 32 tile on v2's 128
// threads. The partials are summed by two butterfly levels of __shfl_xor_sync (reduce-scatter:
// lane bit 4 splits the 8 positions 4 / 4, 32 shuffles; lane bit 3 splits them 2 / 2, 16
// shuffles), after which lane (kg, ug) holds the complete pre-activations of positions
// 2 kg, 2 kg + 1 of its octet x its 2 units x 4 gates and runs the fp32 cell on its registers.
// Shuffles are not shared-memory words: the counters' ratio stays at 8 (docs/kernels.md,
// "Persistent forward v5").
//
// Summation order per element (deterministic: the same bits on every run and schedule, not
// v2's / v4's bits): K-group 0's accumulators start at is (is first), each K-group then adds
// its features (tap, input unit) ascending; the partials P0..P3 are combined as
// (P0 + P2) + (P1 + P3) (the two lanes of a butterfly compute the same sum: fp32 addition is
// commutative). A tap whose source is outside the map multiplies the staged 0. The Row LSTM's
// first row and the Diagonal LSTM's first anti-diagonal skip the product; a warp whose 8
// positions are all past the step skips its product and shuffles (warp-uniform).
//
// Layouts (no padding: float4 alignment kept, conflicts removed by XOR swizzles):
//   staged h: hs[f][16] (chunk input unit f, the block's 16 positions), position q at column
//     q ^ (4 * ((f >> 1) & 3)). A load request: the 8 lanes of a K-group read one float4 (a
//     broadcast), the 4 K-groups features f .. f + 3: words 16 (f & 1) + column, the XOR puts
//     f and f + 2 in different 4-bank groups: 16 distinct banks, 1 wavefront. The stage writes
//     8 consecutive features x 4 consecutive positions per request (4 sectors of 32 bytes from
//     global): for each parity of f the 4 features' XORs differ, 32 distinct banks.
//   weight slice: row kk = v * taps + t (input unit v, tap t) of 128 floats, unit uu of the
//     tile and gate x at (uu / 8) * 32 + 4 * ((uu % 8) ^ (kk & 7)) + x. Lane ug of warp w reads
//     the float4 of units 16 (w / 2) + ug + 8 j: the 8 lanes of a K-group a permutation of 32
//     consecutive words, the 4 K-groups 4 such runs (128 words: 4 wavefronts, the minimum). The
//     one-time stage writes 8 consecutive kk x 4 gates of one unit per request: 32 banks.
// Chunks: LSTM_PERSISTENT_FWD_V5_CHUNK (128) input units of one tap per stage (16 x 128 floats
// = 8 KiB static, v2's tile).
//
// Shared memory per block: 32 x 4h x taps floats (dynamic; the host reserves v2's 32 x (4h
// taps + 1)) + 8 KiB static: v2's budget, so v5 fits wherever v2 does (Row LSTM, k = 3: up to
// h = 145; Diagonal: h = 218).
//
// v6 (row_lstm_persistent_fwd_v6, diag_lstm_persistent_fwd_v6, diag_lstm_skewed_persistent_fwd_v6
// and the folded twins <scan>_persistent_fwd_{tf32,bf16}_v6; entry points in
// kernels/*_persistent_v6.cu): these bodies at WG = 2, two warp groups of v5's 128 threads on
// the same block tile, 256 threads. Why (issue 17): at h = 128 a block's weight slice fills
// the SM's shared memory, so one block runs per SM and v5's 4 warps are the SM's (latency-bound:
// docs/kernels.md, "Persistent v6"); v6 runs 8. Warp group wg takes the chunk features
// kg + 4 wg + 8 i (8 K-slots per lane position instead of 4), so each lane does half of v5's
// FMAs per step at v5's 8 FLOPs per shared word. After each warp's butterfly the groups swap
// halves through the staging tile (lstm_fwd6_exchange: group g keeps unit j = g of its lane's
// 2 x 2 x 4 tile, sends unit 1 - g; 8 words per lane and step, 2 float4, conflict-free) and
// each finishes one unit of the lane's two. Summation order (deterministic, not v5's bits):
// group 0's K-group 0 starts at is, the in-warp butterfly as v5's, then group 0's sum plus
// group 1's. A step without a product (the Row LSTM's first row, the Diagonal's first
// anti-diagonal) skips the exchange: each group's K-group 0 starts at is. Shared memory: v5's
// (the exchange reuses the staging tile: 2 groups x 2 positions x 128 lanes x 4 floats = its
// 2048 floats), so v6 fits wherever v5 does.
#pragma once

#include "diag_lstm_v2.cuh"
#include "lstm_persistent.cuh"

#define LSTM_PERSISTENT_FWD_V5_POS 16
#define LSTM_PERSISTENT_FWD_V5_THREADS 128
#define LSTM_PERSISTENT_FWD_V5_CHUNK 128
// v6: two warp groups of v5's 128 threads over the same 16 x 32 block tile (the K range split
// between them, the exchange through the staging tile: lstm_fwd6_exchange).
#define LSTM_PERSISTENT_FWD_V6_THREADS 256
// v7: v6's block, every tap's staging tile (16 x 128 floats each) and the exchange buffer
// (2048 floats) in dynamic shared memory after the weight slice; the elements one thread
// stages per tap.
#define LSTM_FWD7_TILE (LSTM_PERSISTENT_FWD_V5_POS * LSTM_PERSISTENT_FWD_V5_CHUNK)
#define LSTM_FWD7_PER_THREAD (LSTM_FWD7_TILE / LSTM_PERSISTENT_FWD_V6_THREADS)
// Positions and units per thread (the partial tile); floats of one weight row.
#define LSTM_FWD5_PT 8
#define LSTM_FWD5_UT 2
#define LSTM_FWD5_ROW 128
// Positions per lane after the two shuffle levels.
#define LSTM_FWD5_PF 2

// The column of position q in the staged row of chunk feature f.
PIXELRNN_DEVICE int lstm_fwd5_col(int q, int f) { return q ^ (4 * ((f >> 1) & 3)); }

// The offset of (unit uu of the tile, gate x) in weight row kk.
PIXELRNN_DEVICE int lstm_fwd5_wcol(int uu, int x, int kk) {
    return (uu >> 3) * 32 + 4 * ((uu & 7) ^ (kk & 7)) + x;
}

// Stages the forward slice of units u0 .. u0 + 31 of `w` ([4h, h, taps]) in the v5 layout
// (above), rounded to P, 0 for units past h, BATCH elements' loads at a time
// (lstm_stage_batched: 1 in v5 and v6, LSTM_V7_WEIGHT_BATCH in v7). Element e: kk =
// 8 (e/32 % runs) + e % 8, gate x = e/8 % 4, unit e/32/runs (runs = ceil(h taps / 8)).
template <int P = PIXELRNN_ROUND_FP32, int BATCH = 1>
PIXELRNN_DEVICE void lstm_fwd5_stage_weight(const float* w, float* w_s, int hidden, int taps,
                                            int u0) {
    const int ht = hidden * taps;
    const int runs = (ht + 7) / 8;
    lstm_stage_batched<BATCH>(w_s, LSTM_V2_UNITS * 32 * runs, [&](int e, int* at) {
        const int kl = e & 7;
        const int x = (e >> 3) & 3;
        const int rest = e >> 5;
        const int uu = rest / runs;
        const int kk = (rest - uu * runs) * 8 + kl;
        if (kk >= ht) return 0.0f;
        const int u = u0 + uu;
        *at = kk * LSTM_FWD5_ROW + lstm_fwd5_wcol(uu, x, kk);
        return u < hidden ? pixelrnn_round_as<P>(w[(x * hidden + u) * ht + kk]) : 0.0f;
    });
    __syncthreads();  // the slice is complete before any step reads it
}

// Element e of a chunk's stage (lstm_fwd5_stage_h): its chunk feature *f = 8 (e/128) + e % 8
// and position *q = 4 (e/32 % 4) + e/8 % 4 of the block's 16, and its value: h at
// (`src_pos(q)`, f0 + f) rounded to P, 0 where the source is outside the map or f >= n_f.
template <int P, class SrcPos>
PIXELRNN_DEVICE float lstm_fwd5_element(const float* h, SrcPos src_pos, int hidden, int f0,
                                        int n_f, int e, int* f, int* q) {
    *f = ((e >> 7) << 3) + (e & 7);
    *q = 4 * ((e >> 5) & 3) + ((e >> 3) & 3);
    const pixelrnn_index_t pn = src_pos(*q);
    return (*f < n_f && pn >= 0) ? pixelrnn_round_as<P>(h[pn * hidden + f0 + *f]) : 0.0f;
}

// Stages input units f0 .. f0 + n_f - 1 of one tap's source positions into hs (the block's 16
// positions; 0 where `src_pos(q)` < 0 or past n_f), rounded to P. Element e: feature
// 8 (e/128) + e % 8, position 4 (e/32 % 4) + e/8 % 4.
template <int P, int WG, class SrcPos>
PIXELRNN_DEVICE void lstm_fwd5_stage_h(const float* h, float* hs, SrcPos src_pos, int hidden,
                                       int f0, int n_f) {
    for (int e = threadIdx.x; e < LSTM_PERSISTENT_FWD_V5_POS * LSTM_PERSISTENT_FWD_V5_CHUNK;
         e += LSTM_PERSISTENT_FWD_V5_THREADS * WG) {
        int f, q;
        const float v = lstm_fwd5_element<P>(h, src_pos, hidden, f0, n_f, e, &f, &q);
        hs[f * LSTM_PERSISTENT_FWD_V5_POS + lstm_fwd5_col(q, f)] = v;
    }
}

// v7's stage of one tap (as lstm_fwd5_stage_h): the thread's LSTM_FWD7_PER_THREAD elements
// (one batch of lstm_stage_batched on v6's 256 threads) loaded into registers first, then
// stored, so that their loads are in flight together (one round, docs/emulator.md "Load
// rounds") where v6's rolled loop waits for each before the next.
template <int P, class SrcPos>
PIXELRNN_DEVICE void lstm_fwd7_stage_h(const float* h, float* hs, SrcPos src_pos, int hidden,
                                       int f0, int n_f) {
    lstm_stage_batched<LSTM_FWD7_PER_THREAD>(hs, LSTM_FWD7_TILE, [&](int e, int* at) {
        int f, q;
        const float v = lstm_fwd5_element<P>(h, src_pos, hidden, f0, n_f, e, &f, &q);
        *at = f * LSTM_PERSISTENT_FWD_V5_POS + lstm_fwd5_col(q, f);
        return v;
    });
}

// The thread's place: its warp's first local position q0 (0 or 8), its first unit uh (0 or
// 16: units uh + ug, uh + ug + 8 of the tile), its K-group kg and unit group ug, and (v6) its
// warp group wg (threads 128 wg .. 128 wg + 127: 0 in v5).
struct lstm_fwd5_lane {
    int q0, uh, kg, ug, wg;
};

PIXELRNN_DEVICE lstm_fwd5_lane lstm_fwd5_lane_of_thread() {
    const int warp = (int)threadIdx.x / 32 % 4;
    const int lane = (int)threadIdx.x % 32;
    return lstm_fwd5_lane{8 * (warp & 1), 16 * (warp >> 1), lane >> 3, lane & 7,
                          (int)threadIdx.x / LSTM_PERSISTENT_FWD_V5_THREADS};
}

// The unit of the tile of the thread's unit j.
PIXELRNN_DEVICE int lstm_fwd5_unit(lstm_fwd5_lane me, int j) { return me.uh + me.ug + 8 * j; }

// acc[i][j][x] += w(gate x, unit j of the thread; input f0 + f, tap t) * hs(f, position
// q0 + i) for the K-group's features f = kg + 4 wg, kg + 4 wg + 4 WG, ... < n_f, ascending
// (WG warp groups: v5 1, v6 2): per feature two float4 of staged h and two of weight feed 64
// FMAs.
template <int WG>
PIXELRNN_DEVICE void lstm_fwd5_chunk(const float* w_s, const float* hs, lstm_fwd5_lane me,
                                     int taps, int t, int f0, int n_f,
                                     float (*acc)[LSTM_FWD5_UT][4]) {
    for (int f = me.kg + 4 * me.wg; f < n_f; f += 4 * WG) {
        const int sw = 4 * ((f >> 1) & 3);
        const float* hrow = hs + f * LSTM_PERSISTENT_FWD_V5_POS;
        const float4 h0 = *reinterpret_cast<const float4*>(hrow + (me.q0 ^ sw));
        const float4 h1 = *reinterpret_cast<const float4*>(hrow + ((me.q0 + 4) ^ sw));
        const int kk = (f0 + f) * taps + t;
        const float* wrow = w_s + kk * LSTM_FWD5_ROW + 4 * me.uh + 4 * (me.ug ^ (kk & 7));
        const float4 w0 = *reinterpret_cast<const float4*>(wrow);
        const float4 w1 = *reinterpret_cast<const float4*>(wrow + 32);
        const float hv[LSTM_FWD5_PT] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
        const float wv[LSTM_FWD5_UT][4] = {{w0.x, w0.y, w0.z, w0.w}, {w1.x, w1.y, w1.z, w1.w}};
#pragma unroll
        for (int i = 0; i < LSTM_FWD5_PT; ++i) {
#pragma unroll
            for (int j = 0; j < LSTM_FWD5_UT; ++j) {
#pragma unroll
                for (int x = 0; x < 4; ++x) acc[i][j][x] += wv[j][x] * hv[i];
            }
        }
    }
}

// One tap's product over the h input units, LSTM_PERSISTENT_FWD_V5_CHUNK at a time: each chunk
// staged between two block barriers (every thread calls this), then accumulated by the warps
// with positions in the step (`busy`, warp-uniform).
template <int P, int WG, class SrcPos>
PIXELRNN_DEVICE void lstm_fwd5_tap(const float* w_s, float* hs, const float* h, SrcPos src_pos,
                                   lstm_fwd5_lane me, int hidden, int taps, int t, bool busy,
                                   float (*acc)[LSTM_FWD5_UT][4]) {
    for (int f0 = 0; f0 < hidden; f0 += LSTM_PERSISTENT_FWD_V5_CHUNK) {
        const int n_f = hidden - f0 < LSTM_PERSISTENT_FWD_V5_CHUNK
                            ? hidden - f0
                            : LSTM_PERSISTENT_FWD_V5_CHUNK;
        __syncthreads();  // the previous chunk's reads are done
        lstm_fwd5_stage_h<P, WG>(h, hs, src_pos, hidden, f0, n_f);
        __syncthreads();  // the chunk is complete
        if (busy) lstm_fwd5_chunk<WG>(w_s, hs, me, taps, t, f0, n_f, acc);
    }
}

// v7's product of every tap over the h input units, LSTM_PERSISTENT_FWD_V5_CHUNK at a time:
// each chunk of all `taps` taps staged (tap t's sources `src(t, q)` into hs + t *
// LSTM_FWD7_TILE, one load round per tap) between two block barriers, then accumulated tap by
// tap by the warps with positions in the step (`busy`, warp-uniform). The first chunk's
// barrier before staging is not taken: every earlier read of hs (the previous tile's or
// step's product) is behind a block barrier already, the previous tile's exchange barrier
// (its exchange buffer is v7's own: lstm_fwd6_exchange) or the step's cluster barrier. Every
// thread calls this. Summation order: chunk by chunk, within a chunk tap by tap (v6: tap by
// tap, within a tap chunk by chunk; the same at h <= 128, one chunk).
template <int P, class Src>
PIXELRNN_DEVICE void lstm_fwd7_product(const float* w_s, float* hs, const float* h, Src src,
                                       lstm_fwd5_lane me, int hidden, int taps, bool busy,
                                       float (*acc)[LSTM_FWD5_UT][4]) {
    for (int f0 = 0; f0 < hidden; f0 += LSTM_PERSISTENT_FWD_V5_CHUNK) {
        const int n_f = hidden - f0 < LSTM_PERSISTENT_FWD_V5_CHUNK
                            ? hidden - f0
                            : LSTM_PERSISTENT_FWD_V5_CHUNK;
        if (f0 > 0) __syncthreads();  // the previous chunk's reads are done
        for (int t = 0; t < taps; ++t) {
            lstm_fwd7_stage_h<P>(
                h, hs + t * LSTM_FWD7_TILE, [&](int q) { return src(t, q); }, hidden, f0, n_f);
        }
        __syncthreads();  // every tap's chunk is complete
        if (!busy) continue;
        for (int t = 0; t < taps; ++t) {
            lstm_fwd5_chunk<2>(w_s, hs + t * LSTM_FWD7_TILE, me, taps, t, f0, n_f, acc);
        }
    }
}

// K-group 0's accumulators start at the input-to-state pre-activations (is first) of the
// warp's positions (`pos(q)`: the map position of local position q, -1 past the step) and live
// units, in warp group 0 only where the groups' partials are exchanged (`exchanged`: v6's steps
// with a product); every other accumulator at 0.
template <class Pos>
PIXELRNN_DEVICE void lstm_fwd5_init(const float* is, int hidden, int u0, lstm_fwd5_lane me,
                                    bool exchanged, Pos pos, float (*acc)[LSTM_FWD5_UT][4]) {
    const int g4 = 4 * hidden;
#pragma unroll
    for (int i = 0; i < LSTM_FWD5_PT; ++i) {
        const pixelrnn_index_t p =
            me.kg == 0 && (me.wg == 0 || !exchanged) ? pos(me.q0 + i) : -1;
#pragma unroll
        for (int j = 0; j < LSTM_FWD5_UT; ++j) {
            const int u = u0 + lstm_fwd5_unit(me, j);
            const bool live = p >= 0 && u < hidden;
#pragma unroll
            for (int x = 0; x < 4; ++x) acc[i][j][x] = live ? is[p * g4 + x * hidden + u] : 0.0f;
        }
    }
}

// The two butterfly levels: out[i][j][x] = the sum of the 4 K-groups' acc at position
// 2 kg + i of the octet, (P0 + P2) + (P1 + P3). Level 1 (lane bit 4, K-group bit 1): the lane
// keeps positions 4 (kg >> 1) .. + 3 and sends the other 4; level 2 (lane bit 3, K-group bit 0)
// keeps 2 of those 4. Every lane of the warp calls this (the shuffles are warp-collective).
PIXELRNN_DEVICE void lstm_fwd5_reduce(lstm_fwd5_lane me, float (*acc)[LSTM_FWD5_UT][4],
                                      float (*out)[LSTM_FWD5_UT][4]) {
    const bool hi = (me.kg & 2) != 0;
    float half[4][LSTM_FWD5_UT][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < LSTM_FWD5_UT; ++j) {
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const float keep = hi ? acc[i + 4][j][x] : acc[i][j][x];
                const float send = hi ? acc[i][j][x] : acc[i + 4][j][x];
                half[i][j][x] = keep + __shfl_xor_sync(PIXELRNN_FULL_MASK, send, 16);
            }
        }
    }
    const bool odd = (me.kg & 1) != 0;
#pragma unroll
    for (int i = 0; i < LSTM_FWD5_PF; ++i) {
#pragma unroll
        for (int j = 0; j < LSTM_FWD5_UT; ++j) {
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const float keep = odd ? half[i + 2][j][x] : half[i][j][x];
                const float send = odd ? half[i][j][x] : half[i + 2][j][x];
                out[i][j][x] = keep + __shfl_xor_sync(PIXELRNN_FULL_MASK, send, 8);
            }
        }
    }
}

// The epilogue: the fp32 cell of the lane's 2 positions (local q0 + 2 kg + i) x live units j
// of `units` (bit j: v5 both, v6 unit wg) on its registers, h, c and the activated gates
// written (a request: 8 consecutive units of 4 positions, 4 full sectors). `prev(q)`: the
// offset in elements of local position q's predecessor cell (0: none, c_prev = 0).
template <class Pos, class Prev>
PIXELRNN_DEVICE void lstm_fwd5_finish(float* h, float* c, float* gates, int hidden, int u0,
                                      lstm_fwd5_lane me, int units, Pos pos, Prev prev,
                                      float (*pre)[LSTM_FWD5_UT][4]) {
    const int g4 = 4 * hidden;
#pragma unroll
    for (int i = 0; i < LSTM_FWD5_PF; ++i) {
        const int q = me.q0 + 2 * me.kg + i;
        const pixelrnn_index_t p = pos(q);
        if (p < 0) continue;
        const pixelrnn_index_t back = prev(q);
#pragma unroll
        for (int j = 0; j < LSTM_FWD5_UT; ++j) {
            const int u = u0 + lstm_fwd5_unit(me, j);
            if (u >= hidden || ((units >> j) & 1) == 0) continue;
            const pixelrnn_index_t e = p * hidden + u;
            const float cp = back ? c[e - back] : 0.0f;
            pixelrnn_lstm_cell_fwd(pre[i][j][0], pre[i][j][1], pre[i][j][2], pre[i][j][3], cp,
                                   gates + p * g4 + u, hidden, &c[e], &h[e]);
        }
    }
}

// v6's exchange between the two warp groups (after each warp's butterfly): group g keeps
// unit j = g of the lane's 2 positions x 2 units and hands unit 1 - g to the same lane of the
// other group through xs (the staging tile, free once every product has read it), as 2 float4
// per lane at xs[((g * 2 + i) * 128 + lane of the group) * 4]: consecutive lanes, consecutive
// float4 (4 wavefronts per request, the minimum). pre[i][g] becomes group 0's partial plus group
// 1's (commutative: the same bits in both groups' order). Every thread of the block calls this
// (two block barriers; v7, whose xs is a buffer of its own (`OWN`), one: its writes need not
// wait for the products' reads of the staging tile, and the previous tile's reads of xs are
// behind this tile's staging barrier); `busy` (warp-uniform, the same for a warp and its
// partner, which cover the same octet) says whether its warp has partials.
template <bool OWN = false>
PIXELRNN_DEVICE void lstm_fwd6_exchange(float* xs, lstm_fwd5_lane me, bool busy,
                                        float (*pre)[LSTM_FWD5_UT][4]) {
    const int tl = (int)threadIdx.x % LSTM_PERSISTENT_FWD_V5_THREADS;
    float4* x4 = reinterpret_cast<float4*>(xs);
    if (!OWN) __syncthreads();  // every product's reads of the staging tile (xs) are done
    if (busy) {
#pragma unroll
        for (int i = 0; i < LSTM_FWD5_PF; ++i) {
            float give[4];
#pragma unroll
            for (int x = 0; x < 4; ++x) give[x] = me.wg == 0 ? pre[i][1][x] : pre[i][0][x];
            x4[(me.wg * LSTM_FWD5_PF + i) * LSTM_PERSISTENT_FWD_V5_THREADS + tl] =
                make_float4(give[0], give[1], give[2], give[3]);
        }
    }
    __syncthreads();  // both groups' halves are written
    if (!busy) return;
#pragma unroll
    for (int i = 0; i < LSTM_FWD5_PF; ++i) {
        const float4 got =
            x4[((1 - me.wg) * LSTM_FWD5_PF + i) * LSTM_PERSISTENT_FWD_V5_THREADS + tl];
        const float theirs[4] = {got.x, got.y, got.z, got.w};
#pragma unroll
        for (int x = 0; x < 4; ++x) {
            if (me.wg == 0) {
                pre[i][0][x] = pre[i][0][x] + theirs[x];
            } else {
                pre[i][1][x] = pre[i][1][x] + theirs[x];
            }
        }
    }
}

// One block tile's step: init, the taps' products (`taps_fn(acc, busy)` runs every tap; it
// is called by every thread, as it stages), the reduction where the warp is busy, under v6
// (WG = 2) the exchange between the warp groups through `xs` (every thread; not in a step
// without a product, where each group's init holds is and the partials are 0), the cell.
// `OWN`: xs is an exchange buffer of its own (v7), not the staging tile.
template <int WG, bool OWN = false, class Pos, class Prev, class Taps>
PIXELRNN_DEVICE void lstm_fwd5_tile(const float* is, float* h, float* c, float* gates,
                                    int hidden, int u0, lstm_fwd5_lane me, bool busy,
                                    bool product, Pos pos, Prev prev, Taps taps_fn, float* xs) {
    static_assert(WG == 1 || WG == 2, "v5 runs one warp group, v6 two");
    float acc[LSTM_FWD5_PT][LSTM_FWD5_UT][4];
    const bool exchanged = WG == 2 && product;  // block-uniform
    lstm_fwd5_init(is, hidden, u0, me, exchanged, pos, acc);
    if (product) taps_fn(acc, busy);
    float pre[LSTM_FWD5_PF][LSTM_FWD5_UT][4];
    if (busy) lstm_fwd5_reduce(me, acc, pre);  // warp-uniform
    if (exchanged) lstm_fwd6_exchange<OWN>(xs, me, busy, pre);
    if (!busy) return;  // no position of the warp's octet in the step (warp-uniform)
    lstm_fwd5_finish(h, c, gates, hidden, u0, me, WG == 1 ? 3 : 1 << me.wg, pos, prev, pre);
}

// The staging tile and exchange buffer of a forward body: v5's and v6's static 16 x 128 tile
// for both, or (v7, `V7`) every tap's tile and the exchange buffer in the dynamic shared
// memory after the weight slice (w_s: 32 x 4h x taps floats; the host reserves them).
struct lstm_fwd5_buffers {
    float* hs;
    float* xs;
};

template <bool V7>
PIXELRNN_DEVICE lstm_fwd5_buffers lstm_fwd5_buffers_of(float* w_s, int hidden, int taps) {
    if constexpr (V7) {
        float* hs = w_s + LSTM_V2_UNITS * 4 * hidden * taps;
        return {hs, hs + taps * LSTM_FWD7_TILE};
    } else {
        (void)w_s, (void)hidden, (void)taps;
        PIXELRNN_SHARED(float, tile, [LSTM_FWD7_TILE]);
        return {tile, tile};
    }
}

// The taps' product of one tile (every thread calls this): v7's (lstm_fwd7_product) or, tap by
// tap, v5's and v6's (lstm_fwd5_tap). `src(t, q)`: the map position of local position q's
// tap-t source, or -1.
template <int P, int WG, bool V7, class Src>
PIXELRNN_DEVICE void lstm_fwd5_taps(const float* w_s, lstm_fwd5_buffers buf, const float* h,
                                    Src src, lstm_fwd5_lane me, int hidden, int taps, bool busy,
                                    float (*acc)[LSTM_FWD5_UT][4]) {
    if constexpr (V7) {
        static_assert(WG == 2, "v7 is v6's block");
        lstm_fwd7_product<P>(w_s, buf.hs, h, src, me, hidden, taps, busy, acc);
    } else {
        for (int t = 0; t < taps; ++t) {
            lstm_fwd5_tap<P, WG>(
                w_s, buf.hs, h, [&](int q) { return src(t, q); }, me, hidden, taps, t, busy, acc);
        }
    }
}

// The Row LSTM's persistent v5 (WG = 1), v6 (WG = 2) or v7 (WG = 2, V7) forward at precision
// P: rows top-down, h, c and the activated gates written as by row_lstm_persistent_fwd_v2.
template <int P = PIXELRNN_ROUND_FP32, int WG = 1, bool V7 = false>
PIXELRNN_DEVICE void row_lstm_persistent_fwd_v5_body(const float* is, const float* w, float* w_s,
                                                     float* h, float* c, float* gates,
                                                     int height, int width, int hidden, int k) {
    const lstm_fwd5_buffers buf = lstm_fwd5_buffers_of<V7>(w_s, hidden, k);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_fwd5_lane ln = lstm_fwd5_lane_of_thread();
    lstm_fwd5_stage_weight<P, V7 ? LSTM_V7_WEIGHT_BATCH : 1>(w, w_s, hidden, k, me.u0);
    const int tiles = (width + LSTM_PERSISTENT_FWD_V5_POS - 1) / LSTM_PERSISTENT_FWD_V5_POS;
    for (int r = 0; r < height; ++r) {
        const pixelrnn_index_t row_p = ((pixelrnn_index_t)me.b * height + r) * width;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int j0 = pt * LSTM_PERSISTENT_FWD_V5_POS;
            const auto pos = [&](int q) -> pixelrnn_index_t {
                return j0 + q < width ? row_p + j0 + q : -1;
            };
            const auto prev = [&](int) -> pixelrnn_index_t {
                return r > 0 ? (pixelrnn_index_t)width * hidden : 0;
            };
            const auto taps = [&](float (*acc)[LSTM_FWD5_UT][4], bool busy) {
                const pixelrnn_index_t above = row_p - width;
                const auto src = [&](int t, int q) -> pixelrnn_index_t {
                    const int jj = j0 + q + t - k / 2;
                    return jj >= 0 && jj < width ? above + jj : -1;
                };
                lstm_fwd5_taps<P, WG, V7>(w_s, buf, h, src, ln, hidden, k, busy, acc);
            };
            lstm_fwd5_tile<WG, V7>(is, h, c, gates, hidden, me.u0, ln, j0 + ln.q0 < width,
                                   r > 0, pos, prev, taps, buf.xs);
        }
        // Row r of every unit (h and c, in global memory) is complete before row r+1 reads it.
        pixelrnn_cluster_sync();
    }
}

// The Diagonal LSTM's persistent v5 (WG = 1), v6 (WG = 2) or v7 (WG = 2, V7) forward in either
// layout (stride, skew as in diag_lstm.cuh) at precision P: anti-diagonals in order, as
// diag_lstm_persistent_fwd_v2_body.
template <int P = PIXELRNN_ROUND_FP32, int WG = 1, bool V7 = false>
PIXELRNN_DEVICE void diag_lstm_persistent_fwd_v5_body(const float* is, const float* w,
                                                      float* w_s, float* h, float* c,
                                                      float* gates, int height, int width,
                                                      int hidden, int stride, int skew) {
    const lstm_fwd5_buffers buf = lstm_fwd5_buffers_of<V7>(w_s, hidden, 2);
    const lstm_persistent_block me = lstm_persistent_place(hidden);
    const lstm_fwd5_lane ln = lstm_fwd5_lane_of_thread();
    lstm_fwd5_stage_weight<P, V7 ? LSTM_V7_WEIGHT_BATCH : 1>(w, w_s, hidden, 2, me.u0);
    const pixelrnn_index_t img = (pixelrnn_index_t)me.b * height * stride;
    for (int s = 0; s < height + width - 1; ++s) {
        const int count = diag_lstm_count(s, height, width);
        const int tiles = (count + LSTM_PERSISTENT_FWD_V5_POS - 1) / LSTM_PERSISTENT_FWD_V5_POS;
        for (int pt = me.first_tile; pt < tiles; pt += me.groups) {
            const int k0 = pt * LSTM_PERSISTENT_FWD_V5_POS;
            const auto pos = [&](int q) -> pixelrnn_index_t {
                if (k0 + q >= count) return -1;
                const int r = diag_lstm_row(s, k0 + q, width);
                return img + diag_lstm_pos(r, s - r, stride, skew);
            };
            const auto prev = [&](int q) -> pixelrnn_index_t {
                return s - diag_lstm_row(s, k0 + q, width) > 0 ? (pixelrnn_index_t)hidden : 0;
            };
            const auto taps = [&](float (*acc)[LSTM_FWD5_UT][4], bool busy) {
                // Position q's tap-t source (above for t = 0, left for t = 1), or none.
                const auto src = [&](int t, int q) -> pixelrnn_index_t {
                    if (k0 + q >= count) return -1;
                    const int r = diag_lstm_row(s, k0 + q, width);
                    int rn, jn;
                    if (!diag_lstm_v2_neighbour(r, s - r, t, -1, height, width, &rn, &jn)) {
                        return -1;
                    }
                    return img + diag_lstm_pos(rn, jn, stride, skew);
                };
                lstm_fwd5_taps<P, WG, V7>(w_s, buf, h, src, ln, hidden, 2, busy, acc);
            };
            // Anti-diagonal 0 (pixel (0, 0)) has no neighbour to multiply.
            lstm_fwd5_tile<WG, V7>(is, h, c, gates, hidden, me.u0, ln, k0 + ln.q0 < count, s > 0,
                                   pos, prev, taps, buf.xs);
        }
        // Anti-diagonal s of every unit is complete before s+1 reads it.
        pixelrnn_cluster_sync();
    }
}

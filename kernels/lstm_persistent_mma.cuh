// lstm_persistent_mma.cuh: the persistent recurrence's state-to-state product on the tensor
// cores (mma.sync), forward and backward, both scans (Row LSTM, Diagonal LSTM in the folded
// layout), tf32 and bf16. The kernels are in kernels/row_lstm_persistent_mma.cu and
// kernels/diag_lstm_persistent_mma.cu; host side:
// src/backend/cuda/lstm_persistent_mma.rs. CPU twin: the CPU recurrences at the same precision
// (src/backend/cpu/lstm.rs forward_precision, backward_precision). The forward's helpers
// first, then the backward's, v2's staging and epilogue; the two scans' bodies that call them
// are in lstm_persistent_mma_scan.cuh.
//
// Versions (the bodies' template argument V): v1 stages the weight slice in the fragments'
// order and moves one float per access; v2 (the default) is v1's arithmetic, layouts and
// launch with coalesced global traffic (the "v2" section below). Both give the same bits.
//
// Design (docs/kernels.md, "The persistent recurrence on the tensor cores"): as the persistent
// v2 kernels (lstm_persistent.cuh), one thread-block cluster of C = U x G blocks per image
// (U = ceil(h / 32) unit tiles, G position groups, C <= 8), the steps ordered by one cluster
// barrier each, the states through global memory. The block of rank r owns the units
// 32 (r % U) .. + 31 (all four gates: 128 GEMM columns) and the step's position tiles
// r / U, r / U + G, ... of 16 positions. Per position tile it computes the product
// M = 16 positions x N = 128 columns x K = taps x h on mma.sync (m16n8k8 .tf32, m16n8k16
// .bf16), 4 warps of 16 x 32 (4 n8 tiles sharing one A fragment), then the fused step's cell
// (pixelrnn_lstm_cell_fwd) in the epilogue.
//
// Bits: the K order is the fused tensor-core step's (lstm_mma.cuh: k = t * h + v, the mma K
// steps in ascending order from k = 0, K padded with zeros to a multiple of MCM_K = 16, the
// accumulators from 0, pre = is + acc), so given the same operands every accumulator holds
// the fused step's value and the cell gives the fused recurrence's bits (tested).
//
// Shared memory (dynamic, opted in above 48 KiB), 32-bit words, both operands K-contiguous in
// the form the fragments read: tf32 one word per element (its tf32 bits), bf16 two elements per
// word packed along K (pixelrnn_pack_bf16x2, low half the lower k), so a row holds KW = Kp
// (tf32) or Kp / 2 (bf16) words, Kp = taps * h rounded up to 16; the bf16 slice is half the
// tf32 one.
//   the weight slice: 128 rows (columns of the GEMM) x PITCH words, staged and ROUNDED ONCE;
//   the step's state tile A: 16 rows (positions) x PITCH words, staged per position tile.
// PITCH = KW + 4: KW is a multiple of 8, so PITCH = 4 (mod 8) and a fragment read (lane
// g * 4 + t at row g, word t) hits banks g * PITCH + t mod 32, 32 distinct: conflict-free.
// Column order: row col = w * 32 + x * 8 + l of the slice is gate x of unit u0 + w * 8 + l
// (w the warp): the n8 tile ni of warp w is gate ni, so a thread's accumulators hold all four
// pre-activations of its (position, unit) pairs and the cell needs no exchange (as the fused
// step's columns).
//
// All 32 lanes run every mma (`.aligned`): the taps outside the image, the positions past the
// step's end and the units past h are zero operands, not skipped lanes.
#pragma once

#include "cluster.cuh"
#include "lstm_mma.cuh"

// Threads of a block (4 warps), units of its slice, positions of a tile, GEMM columns.
#define LSTM_PMMA_THREADS 128
#define LSTM_PMMA_UNITS 32
#define LSTM_PMMA_POS 16
#define LSTM_PMMA_COLS (4 * LSTM_PMMA_UNITS)

// Words of a staged row (k = 0 .. Kp-1) and its pitch (module comment).
PIXELRNN_DEVICE int lstm_pmma_kp(int hidden, int taps) {
    return (taps * hidden + MCM_K - 1) / MCM_K * MCM_K;
}
template <int P>
PIXELRNN_DEVICE int lstm_pmma_kw(int hidden, int taps) {
    return P == MCM_TF32 ? lstm_pmma_kp(hidden, taps) : lstm_pmma_kp(hidden, taps) / 2;
}
template <int P>
PIXELRNN_DEVICE int lstm_pmma_pitch(int hidden, int taps) {
    return lstm_pmma_kw<P>(hidden, taps) + 4;
}

// An operand element rounded to P, as one word (tf32: its bits) or two elements as one word
// (bf16: k and k + 1 packed, the lower k in the low half).
template <int P, class Elem>
PIXELRNN_DEVICE unsigned lstm_pmma_word(const Elem& elem, int kw) {
    if (P == MCM_TF32) return pixelrnn_tf32(elem(kw));
    return pixelrnn_pack_bf16x2(pixelrnn_round_bf16(elem(2 * kw)),
                                pixelrnn_round_bf16(elem(2 * kw + 1)));
}

// The forward weight slice's element (column col, k): w_ss [4h, h, taps] at gate x, unit u,
// input unit v, tap t with k = t * h + v (the fused step's K order), 0 past the units and past
// taps * h.
struct LstmPmmaWeightFwd {
    const float* w;
    int hidden, taps, u0, col;
    PIXELRNN_DEVICE float operator()(int k) const {
        const int x = (col / 8) % 4;
        const int u = u0 + (col / 32) * 8 + col % 8;
        if (u >= hidden || k >= taps * hidden) return 0.0f;
        const int t = k / hidden, v = k - t * hidden;
        return w[((pixelrnn_index_t)(x * hidden + u) * hidden + v) * taps + t];
    }
};

// v1's staging of either pass's slice (`rows` GEMM columns of `kw_n` words, pitch `pitch`)
// in the fragments' order: consecutive threads take consecutive words of one row, each word's
// elements gathered from w_ss by `Elem` (LstmPmmaWeightFwd / Bwd), rounded once. In w_ss
// consecutive k are `taps` floats apart (forward) or h x taps (backward): v2 stages in global
// order instead (lstm_pmma_stage_slice_v2).
template <int P, class Elem>
PIXELRNN_DEVICE void lstm_pmma_stage_slice_v1(const float* w, unsigned* w_s, int rows, int hidden,
                                              int taps, int u0, int kw_n, int pitch) {
    for (int e = threadIdx.x; e < rows * kw_n; e += blockDim.x) {
        const int col = e / kw_n, kw = e - col * kw_n;
        const Elem el{w, hidden, taps, u0, col};
        w_s[col * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
    __syncthreads();  // the slice is complete before any step reads it
}

// The forward state tile's element (position row i of the tile, k): h of the tap-t source of
// position q0 + i of the step (0 outside the image and past the step's positions).
struct LstmPmmaStateFwd {
    const float* h;
    lstm_mma_geo g;
    pixelrnn_index_t base;  // the image's first pixel
    int hidden, taps, r, c, live;
    PIXELRNN_DEVICE float operator()(int k) const {
        if (!live || k >= taps * hidden) return 0.0f;
        const int t = k / hidden, v = k - t * hidden;
        int dr, dc;
        lstm_mma_tap(g, t, -1, &dr, &dc);
        const int rr = r + dr, cc = c + dc;
        if (rr < 0 || rr >= g.height || cc < 0 || cc >= g.width) return 0.0f;
        return h[(base + (pixelrnn_index_t)rr * g.width + cc) * hidden + v];
    }
};

// Stages the state tile of positions q0 .. q0 + 15 of the step (image b), rounded as staged:
// consecutive threads take consecutive k (consecutive input units of one tap: coalesced).
template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_state_fwd(const float* h, unsigned* a_s,
                                               const lstm_mma_geo& g, int b, int q0, int hidden,
                                               int taps) {
    const int kw_n = lstm_pmma_kw<P>(hidden, taps), pitch = lstm_pmma_pitch<P>(hidden, taps);
    const pixelrnn_index_t base = (pixelrnn_index_t)b * g.height * g.width;
    for (int e = threadIdx.x; e < LSTM_PMMA_POS * kw_n; e += blockDim.x) {
        const int i = e / kw_n, kw = e - i * kw_n;
        LstmPmmaStateFwd el{h, g, base, hidden, taps, 0, 0, q0 + i < g.len};
        if (el.live) lstm_mma_rc(g, q0 + i, &el.r, &el.c);
        a_s[i * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
}

// acc[ni] += A (16 rows from `a_rows`, pitch `pitch_a` words) x B (rows ni * 8 .. of
// `b_rows`, pitch `pitch_b`) over `kw_n` words (a multiple of 8), the mma K steps in ascending
// order (8 words each: tf32 k8, bf16 k16). Fragments per kernels/mma.cuh; the word offsets are
// the same at both precisions. SWAP (the mutation check's kernel only,
// row_lstm_persistent_mma_fwd_tf32_swapped_v1, never selected): A fragment registers 0 <-> 2
// and 1 <-> 3 exchanged, which tests/cuda/lstm_persistent_mma.rs shows to fail.
template <int P, bool SWAP = false>
PIXELRNN_DEVICE void lstm_pmma_mma(const unsigned* a_rows, int pitch_a, const unsigned* b_rows,
                                   int pitch_b, int kw_n, float acc[4][4]) {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const unsigned* r0 = a_rows + g * pitch_a;
    const unsigned* r1 = a_rows + (g + 8) * pitch_a;
    for (int kw = 0; kw < kw_n; kw += 8) {
        unsigned af[4];
        af[0] = r0[kw + t];
        af[1] = r1[kw + t];
        af[2] = r0[kw + t + 4];
        af[3] = r1[kw + t + 4];
        if (SWAP) {
            const unsigned a0 = af[0], a1 = af[1];
            af[0] = af[2];
            af[1] = af[3];
            af[2] = a0;
            af[3] = a1;
        }
#pragma unroll
        for (int ni = 0; ni < 4; ++ni) {
            const unsigned* bc = b_rows + (ni * 8 + g) * pitch_b;
            unsigned bq[2];
            bq[0] = bc[kw + t];
            bq[1] = bc[kw + t + 4];
            if (P == MCM_TF32) {
                pixelrnn_mma_tf32_m16n8k8(acc[ni], af, bq, acc[ni]);
            } else {
                pixelrnn_mma_bf16_m16n8k16(acc[ni], af, bq, acc[ni]);
            }
        }
    }
}

PIXELRNN_DEVICE void lstm_pmma_zero(float acc[4][4]) {
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[ni][e] = 0.0f;
    }
}

// ---------------------------------------------------------------------------------------------
// The backward: dh_tot = dh + the consumers' d_is x the transposed weight (M = positions,
// N = 32 units of the block's slice, K = taps x 4h, k = t * 4h + o as the fused backward
// step's), then the fused backward step's cell (pixelrnn_lstm_cell_bwd). Block tile: 64
// positions (warp w: rows 16 w ..) x 32 units (4 n8 tiles per warp). The slice: 32 rows
// (units) x PITCH words, PITCH = KW + 4 over Kp = taps x 4h rounded up to 16, staged once;
// the consumers' d_is in K chunks of 128 elements (64 rows x (CW + 4) words, CW = 128 tf32 /
// 64 bf16 words: a chunk of the whole K would not fit beside the slice at h = 128), the
// accumulators carried across chunks: the same mma K steps in the same order as the fused step.
#define LSTM_PMMA_BWD_POS 64
#define LSTM_PMMA_BWD_KC 128

template <int P>
PIXELRNN_DEVICE int lstm_pmma_bwd_cw() {
    return P == MCM_TF32 ? LSTM_PMMA_BWD_KC : LSTM_PMMA_BWD_KC / 2;
}

// The backward slice's element (unit row col, k): w_ss [4h, h, taps] at gate row o, unit u,
// tap t with k = t * 4h + o, 0 past the units and past taps * 4h.
struct LstmPmmaWeightBwd {
    const float* w;
    int hidden, taps, u0, col;
    PIXELRNN_DEVICE float operator()(int k) const {
        const int u = u0 + col;
        if (u >= hidden || k >= taps * 4 * hidden) return 0.0f;
        const int t = k / (4 * hidden), o = k - t * 4 * hidden;
        return w[((pixelrnn_index_t)o * hidden + u) * taps + t];
    }
};

// The backward A element (row i, k): d_is feature o of the tap-t consumer of position q0 + i.
struct LstmPmmaGradBwd {
    const float* d_is;
    lstm_mma_geo g;
    pixelrnn_index_t base;
    int hidden, taps, r, c, live, k0;
    PIXELRNN_DEVICE float operator()(int kk) const {
        const int k = k0 + kk;
        const int f4 = 4 * hidden;
        if (!live || k >= taps * f4) return 0.0f;
        const int t = k / f4, o = k - t * f4;
        int dr, dc;
        lstm_mma_tap(g, t, 1, &dr, &dc);
        const int rr = r + dr, cc = c + dc;
        if (rr < 0 || rr >= g.height || cc < 0 || cc >= g.width) return 0.0f;
        return d_is[(base + (pixelrnn_index_t)rr * g.width + cc) * f4 + o];
    }
};

// Stages K chunk [k0, k0 + 2 * cw_n or cw_n elements) of the 64-row d_is tile, rounded.
template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_grad_bwd(const float* d_is, unsigned* a_s,
                                              const lstm_mma_geo& g, int b, int q0, int hidden,
                                              int taps, int k0, int cw_n) {
    const int pitch = lstm_pmma_bwd_cw<P>() + 4;
    const pixelrnn_index_t base = (pixelrnn_index_t)b * g.height * g.width;
    for (int e = threadIdx.x; e < LSTM_PMMA_BWD_POS * cw_n; e += blockDim.x) {
        const int i = e / cw_n, kw = e - i * cw_n;
        LstmPmmaGradBwd el{d_is, g, base, hidden, taps, 0, 0, q0 + i < g.len, k0};
        if (el.live) lstm_mma_rc(g, q0 + i, &el.r, &el.c);
        a_s[i * pitch + kw] = lstm_pmma_word<P>(el, kw);
    }
}

// ---------------------------------------------------------------------------------------------
// v2: v1's arithmetic (the same shared layouts, fragments, mma K steps and cell calls, hence
// v1's bits) with coalesced global traffic (docs/kernels.md, "The persistent recurrence on the
// tensor cores", v2):
// - the weight slice is read in w_ss's own order, consecutive threads on consecutive floats
//   (LstmPmmaSliceFwd / Bwd say where each lands), and scattered into the fragments' layout
//   (lstm_pmma_stage_slice_v2, ONE function for both passes). bf16 keeps pairs packed along
//   K, but the two elements of a word are not adjacent in w_ss (k, k + 1 are `taps` floats
//   apart forward, h x taps backward): each thread stores its element's 16-bit half of the
//   word (little-endian: the lower k in the low half, pixelrnn_pack_bf16x2's order);
// - the state / d_is tiles: at bf16 one float2 per word (its two elements are adjacent
//   features of one tap where the features per tap are even: always in the backward, 4h;
//   forward at even h), at tf32 one float per word as v1 (consecutive lanes on consecutive
//   features already);
// - the epilogue's per-unit operands as float2 pairs (units 2t, 2t + 1 of a lane, as the
//   fused step's v2, lstm_mma.cuh PAIRS) at even h; an odd h runs v1's epilogue.

// The forward slice in w_ss's order: per gate x, the rows x * h + u0 .. + nu - 1 (the block's
// live units) are nu x h x taps contiguous floats; float e of that run is unit ul, input unit
// v, tap t (e = (ul * h + v) * taps + t), GEMM column (ul / 8) * 32 + x * 8 + ul % 8 (the
// module comment's column order), k = t * h + v (the fused step's K order).
struct LstmPmmaSliceFwd {
    static constexpr int ROWS = LSTM_PMMA_COLS;
    int hidden, taps, u0, nu;
    PIXELRNN_DEVICE int count() const { return 4 * nu * hidden * taps; }
    PIXELRNN_DEVICE int k_real() const { return taps * hidden; }
    PIXELRNN_DEVICE bool live(int col) const {
        return u0 + (col / 32) * 8 + col % 8 < hidden;
    }
    PIXELRNN_DEVICE void at(int e, pixelrnn_index_t* g, int* col, int* k) const {
        const int run = hidden * taps, gate = nu * run;
        const int x = e / gate, rem = e - x * gate;
        const int ul = rem / run, j = rem - ul * run;
        const int v = j / taps, t = j - v * taps;
        *g = (pixelrnn_index_t)(x * hidden + u0) * run + rem;
        *col = (ul / 8) * 32 + x * 8 + ul % 8;
        *k = t * hidden + v;
    }
};

// The backward slice in w_ss's order: per gate row o, the units u0 .. + nu - 1 are nu x taps
// contiguous floats; float e of that run is unit ul, tap t (e = ul * taps + t), GEMM column
// ul, k = t * 4h + o (the fused backward step's K order).
struct LstmPmmaSliceBwd {
    static constexpr int ROWS = LSTM_PMMA_UNITS;
    int hidden, taps, u0, nu;
    PIXELRNN_DEVICE int count() const { return 4 * hidden * nu * taps; }
    PIXELRNN_DEVICE int k_real() const { return taps * 4 * hidden; }
    PIXELRNN_DEVICE bool live(int col) const { return u0 + col < hidden; }
    PIXELRNN_DEVICE void at(int e, pixelrnn_index_t* g, int* col, int* k) const {
        const int run = nu * taps;
        const int o = e / run, rem = e - o * run;
        const int ul = rem / taps, t = rem - ul * taps;
        *g = ((pixelrnn_index_t)o * hidden + u0) * taps + rem;
        *col = ul;
        *k = t * 4 * hidden + o;
    }
};

// Stages a pass's slice (`Slice`: LstmPmmaSliceFwd or LstmPmmaSliceBwd) into v1's layout
// (ROWS rows of `kw_n` words at pitch `pitch`), each weight rounded once: first the zeros (the
// words holding K padding, and the rows of units past h), then, after a barrier (at bf16 the
// last real word can be half padding: its zero must land before its real half), every float
// of the slice in global order, each stored where the fragments read it. Shared stores of the
// scatter are many-way bank conflicted (lanes of one warp on k = t * F + f of a few f and
// every t, F a multiple of 32 at the measured shapes): once per launch, measured in
// docs/kernels.md.
template <int P, class Slice>
PIXELRNN_DEVICE void lstm_pmma_stage_slice_v2(const float* w, unsigned* w_s, const Slice& sl,
                                              int kw_n, int pitch) {
    const int per_word = P == MCM_TF32 ? 1 : 2;
    const int kw_pad = sl.k_real() / per_word;  // the first word with a padding element
    const int pad_n = kw_n - kw_pad;
    for (int e = threadIdx.x; e < Slice::ROWS * pad_n; e += blockDim.x) {
        const int row = e / pad_n;
        w_s[row * pitch + kw_pad + (e - row * pad_n)] = 0u;
    }
    if (sl.nu < LSTM_PMMA_UNITS) {
        for (int e = threadIdx.x; e < Slice::ROWS * kw_pad; e += blockDim.x) {
            const int row = e / kw_pad;
            if (!sl.live(row)) w_s[row * pitch + (e - row * kw_pad)] = 0u;
        }
    }
    __syncthreads();  // the zeros are in place before the real halves of shared words land
    unsigned short* w_h = reinterpret_cast<unsigned short*>(w_s);
    const int n = sl.count();
    for (int e = threadIdx.x; e < n; e += blockDim.x) {
        pixelrnn_index_t g;
        int col, k;
        sl.at(e, &g, &col, &k);
        const float x = w[g];
        if (P == MCM_TF32) {
            w_s[col * pitch + k] = pixelrnn_tf32(x);
        } else {
            // The bf16 bits of x: the high half of the rounded float (pixelrnn_pack_bf16x2).
            w_h[2 * col * pitch + k] =
                (unsigned short)(pixelrnn_float_bits(pixelrnn_round_bf16(x)) >> 16);
        }
    }
    __syncthreads();  // the slice is complete before any step reads it
}

// Element k (k = t * feat + f, below taps * feat) of tile row (r, c) of image `base`: feature
// f of the tap-t neighbour in direction `dir` (-1 the forward's sources, +1 the backward's
// consumers), 0 outside the image. The element of LstmPmmaStateFwd / LstmPmmaGradBwd.
PIXELRNN_DEVICE const float* lstm_pmma_tap_ptr(const float* src, const lstm_mma_geo& g,
                                               pixelrnn_index_t base, int r, int c, int feat,
                                               int dir, int k) {
    const int t = k / feat, f = k - t * feat;
    int dr, dc;
    lstm_mma_tap(g, t, dir, &dr, &dc);
    const int rr = r + dr, cc = c + dc;
    if (rr < 0 || rr >= g.height || cc < 0 || cc >= g.width) return nullptr;
    return src + (base + (pixelrnn_index_t)rr * g.width + cc) * feat + f;
}

// Stages the words [kw0, kw0 + kw_n) of `rows` tile rows (positions q0 .. of the step, image
// b) of either pass's A operand, rounded (v1's lstm_pmma_stage_state_fwd /
// lstm_pmma_stage_grad_bwd, the same words): consecutive threads on consecutive words of a
// row; a bf16 word's two elements read as one float2 where `feat` is even (then k = 2 kw is
// even and k, k + 1 are adjacent features of one tap, 8-byte aligned), else one by one.
template <int P>
PIXELRNN_DEVICE void lstm_pmma_stage_tile_v2(const float* src, unsigned* a_s,
                                             const lstm_mma_geo& g, int b, int q0, int rows,
                                             int feat, int taps, int dir, int kw0, int kw_n,
                                             int pitch) {
    const pixelrnn_index_t base = (pixelrnn_index_t)b * g.height * g.width;
    const int k_end = taps * feat;
    const bool pairs = P != MCM_TF32 && (feat & 1) == 0;
    for (int e = threadIdx.x; e < rows * kw_n; e += blockDim.x) {
        const int i = e / kw_n, kw = e - i * kw_n;
        unsigned word = 0u;
        if (q0 + i < g.len) {
            int r, c;
            lstm_mma_rc(g, q0 + i, &r, &c);
            if (P == MCM_TF32) {
                const int k = kw0 + kw;
                const float* p = k < k_end ? lstm_pmma_tap_ptr(src, g, base, r, c, feat, dir, k)
                                           : nullptr;
                word = pixelrnn_tf32(p ? *p : 0.0f);
            } else if (pairs) {
                const int k = 2 * (kw0 + kw);
                const float* p = k < k_end ? lstm_pmma_tap_ptr(src, g, base, r, c, feat, dir, k)
                                           : nullptr;
                const float2 x = p ? lstm_mma_ld2(p) : make_float2(0.0f, 0.0f);
                word = pixelrnn_pack_bf16x2(pixelrnn_round_bf16(x.x), pixelrnn_round_bf16(x.y));
            } else {
                float x[2];
#pragma unroll
                for (int j = 0; j < 2; ++j) {
                    const int k = 2 * (kw0 + kw) + j;
                    const float* p =
                        k < k_end ? lstm_pmma_tap_ptr(src, g, base, r, c, feat, dir, k) : nullptr;
                    x[j] = pixelrnn_round_bf16(p ? *p : 0.0f);
                }
                word = pixelrnn_pack_bf16x2(x[0], x[1]);
            }
        }
        a_s[i * pitch + kw] = word;
    }
}

// The forward epilogue of v2 at even h: per accumulator pair (e = 0, 1 and 2, 3: units u,
// u + 1 of one position) every per-unit operand as one float2, the cells on registers, as the
// fused step's v2 (lstm_mma_step_fwd, PAIRS): the same function on the same operands in the
// same order as v1's epilogue, so v1's bits.
PIXELRNN_DEVICE void lstm_pmma_epilogue_fwd_pairs(const float* is, float* h, float* c,
                                                  float* gates, const lstm_mma_geo& geo, int b,
                                                  int q0, int u0, int hidden,
                                                  const float acc[4][4]) {
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int g4 = 4 * hidden;
    const pixelrnn_index_t plane = (pixelrnn_index_t)geo.height * geo.width;
#pragma unroll
    for (int e = 0; e < 4; e += 2) {
        const int q = q0 + (lane >> 2) + 8 * (e >> 1);
        const int u = u0 + wp * 8 + 2 * (lane & 3);  // even: u + 1 < hidden too
        if (q >= geo.len || u >= hidden) continue;
        int r, cl;
        lstm_mma_rc(geo, q, &r, &cl);
        const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * geo.width + cl;
        const float* ip = is + p * g4 + u;
        const pixelrnn_index_t el = p * hidden + u;
        pixelrnn_index_t back;
        const bool has_prev = lstm_mma_prev_cell(geo, r, cl, &back);
        float2 ix[4];
#pragma unroll
        for (int x = 0; x < 4; ++x) ix[x] = lstm_mma_ld2(ip + x * hidden);
        const float2 cp =
            has_prev ? lstm_mma_ld2(c + el - back * hidden) : make_float2(0.0f, 0.0f);
        float go[2][4], cn[2], hn[2];
        pixelrnn_lstm_cell_fwd(ix[0].x + acc[0][e], ix[1].x + acc[1][e], ix[2].x + acc[2][e],
                               ix[3].x + acc[3][e], cp.x, go[0], 1, &cn[0], &hn[0]);
        pixelrnn_lstm_cell_fwd(ix[0].y + acc[0][e + 1], ix[1].y + acc[1][e + 1],
                               ix[2].y + acc[2][e + 1], ix[3].y + acc[3][e + 1], cp.y, go[1], 1,
                               &cn[1], &hn[1]);
        float* gp = gates + p * g4 + u;
#pragma unroll
        for (int x = 0; x < 4; ++x) lstm_mma_st2(gp + x * hidden, go[0][x], go[1][x]);
        lstm_mma_st2(&c[el], cn[0], cn[1]);
        lstm_mma_st2(&h[el], hn[0], hn[1]);
    }
}

// The backward epilogue of v2 at even h: as the forward's, the fused backward step's v2
// (lstm_mma_step_bwd, PAIRS) on v1's accumulators: v1's bits.
PIXELRNN_DEVICE void lstm_pmma_epilogue_bwd_pairs(const float* gates, const float* c,
                                                  const float* dh, float* dc_carry,
                                                  float* d_is, const lstm_mma_geo& geo, int b,
                                                  int q0, int u0, int hidden,
                                                  const float acc[4][4]) {
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5;
    const int g4 = 4 * hidden;
    const pixelrnn_index_t plane = (pixelrnn_index_t)geo.height * geo.width;
#pragma unroll
    for (int ni = 0; ni < 4; ++ni) {
#pragma unroll
        for (int e = 0; e < 4; e += 2) {
            const int q = q0 + wp * 16 + (lane >> 2) + 8 * (e >> 1);
            const int u = u0 + ni * 8 + 2 * (lane & 3);  // even: u + 1 < hidden too
            if (q >= geo.len || u >= hidden) continue;
            int r, cl;
            lstm_mma_rc(geo, q, &r, &cl);
            const pixelrnn_index_t p = b * plane + (pixelrnn_index_t)r * geo.width + cl;
            const pixelrnn_index_t el = p * hidden + u;
            pixelrnn_index_t back;
            const bool has_prev = lstm_mma_prev_cell(geo, r, cl, &back);
            const float* gp = gates + p * g4 + u;
            float gl[2][4], d[2][4];
#pragma unroll
            for (int x = 0; x < 4; ++x) {
                const float2 v = lstm_mma_ld2(gp + x * hidden);
                gl[0][x] = v.x;
                gl[1][x] = v.y;
            }
            const float2 cc = lstm_mma_ld2(c + el);
            const float2 cp =
                has_prev ? lstm_mma_ld2(c + el - back * hidden) : make_float2(0.0f, 0.0f);
            const float2 dhv = lstm_mma_ld2(dh + el);
            const float2 dcv = lstm_mma_ld2(dc_carry + el);
            const float dp0 =
                pixelrnn_lstm_cell_bwd(gl[0], 1, cc.x, cp.x, dhv.x + acc[ni][e], dcv.x, d[0]);
            const float dp1 = pixelrnn_lstm_cell_bwd(gl[1], 1, cc.y, cp.y,
                                                     dhv.y + acc[ni][e + 1], dcv.y, d[1]);
            float* dp = d_is + p * g4 + u;
#pragma unroll
            for (int x = 0; x < 4; ++x) lstm_mma_st2(dp + x * hidden, d[0][x], d[1][x]);
            if (has_prev) lstm_mma_st2(dc_carry + el - back * hidden, dp0, dp1);
        }
    }
}

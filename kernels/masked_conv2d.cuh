// masked_conv2d.cuh: what the masked_conv2d kernel files share (kernels/masked_conv2d.cu's
// header is the index of every version and of the file it lives in): the mask kinds, the
// live-tap rule, the row index past the map, and the 8x8 micro-kernel of the 128x128 tiles.
#pragma once
#include "common.cuh"

// Mask kinds as the host passes them (src/backend/cuda/masked_conv2d.rs, `mask_code`).
#define MASKED_CONV2D_NONE 0
#define MASKED_CONV2D_A 1
#define MASKED_CONV2D_B 2

// Row index of the tile rows past the last position: outside the map under every tap (the
// host limits kernel sizes and maps to far less than this), and no int overflow when a tap
// offset is added.
#define MASKED_CONV2D_FAR (1 << 29)

// Side of the 32 x 32 shared transpose tile of bwd_weight_reduce v1 and pack_transposed v1
// (taps x features per block).
#define MASKED_CONV2D_WR_TILE 32

// Whether the centre tap connects output feature o to input feature i (ConvSpec::centre_allows):
// feature f is in channel group (f % block) % groups.
PIXELRNN_DEVICE bool masked_conv2d_centre_allows(int o, int i, int mask, int groups,
                                                 int out_block, int in_block) {
    if (mask == MASKED_CONV2D_NONE) return true;
    const int og = (o % out_block) % groups;
    const int ig = (i % in_block) % groups;
    return mask == MASKED_CONV2D_A ? og > ig : og >= ig;
}

// Whether weight [o, i, tap t] is live, for a tap t < taps (ConvSpec::allows).
PIXELRNN_DEVICE bool masked_conv2d_live(int t, int centre, int o, int i, int mask, int groups,
                                        int out_block, int in_block) {
    return t != centre ||
           masked_conv2d_centre_allows(o, i, mask, groups, out_block, in_block);
}

// One k step of the 8x8 micro-tile of fwd/bwd_data v3 and bwd_weight v2, written once: this
// thread's rows 4ty..4ty+3 and 64+4ty..64+4ty+3 of tile row `a` and columns 4tx.. and
// 64+4tx.. of tile row `b` (both 128 wide, 16-byte aligned), read as 4 float4 (16 shared
// words for 64 FMAs: 8 FLOPs per word), accumulated into acc[r][c].
PIXELRNN_DEVICE void masked_conv2d_fma_8x8(float acc[8][8], const float* __restrict__ a,
                                           const float* __restrict__ b, int tx, int ty) {
    const float4 a0 = *reinterpret_cast<const float4*>(a + 4 * ty);
    const float4 a1 = *reinterpret_cast<const float4*>(a + 64 + 4 * ty);
    const float4 b0 = *reinterpret_cast<const float4*>(b + 4 * tx);
    const float4 b1 = *reinterpret_cast<const float4*>(b + 64 + 4 * tx);
    const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int r = 0; r < 8; ++r) {
#pragma unroll
        for (int c = 0; c < 8; ++c) acc[r][c] += av[r] * bv[c];
    }
}

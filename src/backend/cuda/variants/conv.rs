//! The masked convolution's kernel variants (kernels/masked_conv2d*.cu): the forward and
//! input gradient, the weight and bias gradients, the weight pack, the one-position forward of
//! sampling and the tensor-core kernels. What a variant is: `variants/mod.rs`.

/// `masked_conv2d`'s `fwd` and `bwd_data` kernels (kernels/masked_conv2d.cu); the weight and
/// bias gradients have their own selection, [`MaskedConv2dWeight`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskedConv2d {
    /// Direct: one thread per output (or input-gradient) element.
    V1,
    /// Implicit GEMM in 64x64 shared-memory tiles, skipping the masked taps (4x4 outputs per
    /// thread: 4 FLOPs per shared word; its gathers 24 % efficient, docs/kernels.md).
    V2,
    /// Implicit GEMM in 128x128 tiles, 8x8 outputs per thread through float4 shared reads,
    /// double-buffered K chunks, from weights packed once per call (`pack_v1`,
    /// `pack_transposed_v1`): no mask test and no division in the K loop. The default: the
    /// emulator's memory counters show it coalesced (98-100 %), conflict-free and at 8 FLOPs
    /// per shared word (docs/kernels.md). 151-153 registers: one block of 8 warps per SM.
    V3,
    /// V3's GEMM (the same bits) compiled for two resident blocks per SM
    /// (`__launch_bounds__(256, 2)`, the K chunk's 8 steps not unrolled so that it fits 128
    /// registers without spilling): 16 warps per SM where V3 has 8, the parallelism the first
    /// device run found the latency-bound kernels short of. The default, by that analysis
    /// (`pixelrnn profile`'s warps per SM); not yet timed on a GPU (`pixelrnn bench` times
    /// every version side by side).
    #[default]
    V4,
    /// V3's GEMM (the same bits) with both tiles staged by `cp.async` (kernels/cp_async.cuh)
    /// in a 4-stage pipeline instead of through registers: three chunks of loads in flight
    /// behind the FMAs where V4 has one, no staging registers, the packed tile in 16-byte
    /// copies when the feature count is a multiple of 4; two blocks per SM like V4 (33 KB of
    /// static shared memory each).
    V5,
}

numbered_versions!(
    MaskedConv2d,
    "masked_conv2d",
    "the kernels `masked_conv2d_<pass>_v<N>`",
    [V1 = 1, V2 = 2, V3 = 3, V4 = 4, V5 = 5]
);

/// `masked_conv2d`'s weight (and bias) gradient: the `bwd_weight` kernels of
/// kernels/masked_conv2d.cu.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskedConv2dWeight {
    /// One block per weight element reducing over all positions (lanes at a stride of `cin`
    /// floats: one 4-byte value per 32-byte sector), and `bwd_bias_v1` for the bias.
    V1,
    /// Implicit GEMM (M = cout, N = live taps x cin, K = positions) in 128x128 tiles with 8x8
    /// per thread, K split over position chunks into partial tiles, then a fixed-order
    /// reduction (`bwd_weight_reduce_v1`, deterministic), the bias gradient fused in. The
    /// default: the emulator's memory counters show it coalesced (docs/kernels.md).
    #[default]
    V2,
    /// V2's launch, partials and bits with both tiles staged by cp.async in 4 stages
    /// (kernels/wgrad_gemm.cuh, `wgrad_gemm_async`): three chunks of loads in flight behind
    /// the FMAs, none in registers. Selectable; not the default until a device times it.
    V3,
}

numbered_versions!(
    MaskedConv2dWeight,
    "masked_conv2d's weight gradient",
    "the kernel `masked_conv2d_bwd_weight_v<N>`",
    [V1 = 1, V2 = 2, V3 = 3]
);

/// `masked_conv2d`'s tensor-core kernels (kernels/masked_conv2d_mma.cu,
/// kernels/masked_conv2d_mma_weight.cu: `masked_conv2d_{fwd,bwd_data,bwd_weight}_{tf32,bf16}_v<N>`),
/// run for every pass when the backend's precision is tf32 or bf16
/// ([`crate::backend::Backend::set_precision`]); at fp32 the selections above apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskedConv2dMma {
    /// Implicit GEMMs on `mma.sync` (m16n8k8 tf32, m16n8k16 bf16): 128 x 64 block tiles of 8
    /// warps (32 x 32 each), K in chunks of 16 rounded into double-buffered shared tiles, from
    /// the same packed weights as v3 (forward, input gradient) and the split-K partials of
    /// `bwd_weight_v2` summed by `bwd_weight_reduce_v1` (weight and bias gradients).
    #[default]
    V1,
}

numbered_versions!(
    MaskedConv2dMma,
    "masked_conv2d's tensor-core kernels",
    "the kernels `masked_conv2d_<pass>_{tf32,bf16}_v<N>`",
    [V1 = 1]
);

/// `masked_conv2d_forward_at` (incremental sampling): the `fwd_at` kernels of
/// kernels/masked_conv2d_packed.cu (its pack has its own selection, [`MaskedConv2dPack`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskedConv2dAt {
    /// One thread per (image, output feature), reading the packed `[taps * cin, cout]` rows.
    #[default]
    V1,
}

numbered_versions!(
    MaskedConv2dAt,
    "masked_conv2d_forward_at",
    "the kernels `masked_conv2d_{pack,fwd_at}_v<N>`",
    [V1 = 1]
);

/// `masked_conv2d`'s weight pack `[cout, cin, kh, kw]` -> `[live taps * cin, cout]`, masked
/// entries 0 (`masked_conv2d_pack_v<N>`, kernels/masked_conv2d_packed.cu): what fwd v3, the
/// tensor-core forward and `masked_conv2d_pack` (incremental sampling) run from. Every version
/// gives the same bits (a permutation with zeros).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskedConv2dPack {
    /// One thread per packed element: coalesced writes, reads at a stride of `cin * kh * kw`
    /// floats (23 % byte-efficient, docs/kernels.md).
    V1,
    /// A 32 x 33 shared transpose tile: rows of the weight read whole, packed rows written
    /// along `cout`, both sides coalesced and the shared accesses conflict-free. The default:
    /// the emulator's memory counters (docs/kernels.md); not timed on a GPU.
    #[default]
    V2,
}

numbered_versions!(
    MaskedConv2dPack,
    "masked_conv2d's weight pack",
    "the kernel `masked_conv2d_pack_v<N>`",
    [V1 = 1, V2 = 2]
);

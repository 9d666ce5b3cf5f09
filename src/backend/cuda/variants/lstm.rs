//! The recurrences' kernel variants (kernels/row_lstm.cu, diag_lstm.cu, lstm*.cu): the
//! step kernels' version per scan, the Diagonal LSTM's layout, the tensor-core step kernels
//! and the weight gradient at tf32 / bf16. What a variant is: `variants/mod.rs`.

use std::fmt;

use super::numbered;
use crate::error::{Error, Result};

/// The recurrences' tensor-core fused step kernels (kernels/row_lstm_mma.cu,
/// kernels/diag_lstm_mma.cu: `<scan>_step_{fwd,bwd}_{tf32,bf16}_v<N>`), run by the fused
/// recurrence with the skew folded at tf32 / bf16 (`cuda/lstm_mma.rs`, `mma_step`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LstmMma {
    /// The step's product on `mma.sync` in 128 x 64 tiles, the cell in the epilogue with one
    /// float per accumulator (half of each 32-byte sector per warp request).
    V1,
    /// V1 with the epilogue's per-unit operands as float2 pairs (whole sectors), the same
    /// bits. The default: the emulator's memory counters (docs/kernels.md); not timed on a GPU.
    #[default]
    V2,
}

numbered_versions!(
    LstmMma,
    "the recurrences' tensor-core step kernels",
    "the kernels `<scan>_step_{fwd,bwd}_{tf32,bf16}_v<N>`",
    [V1 = 1, V2 = 2]
);

/// The recurrences' state-to-state weight gradient at tf32 / bf16, both scans and every
/// recurrence (`lstm_ss_bwd_weight_{tf32,bf16}_v<N>`, summed by `lstm_ss_bwd_weight_sum_v2`);
/// at fp32 the scan's version applies ([`RowLstm`], [`DiagLstm`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LstmWeight {
    /// The split-K SIMT GEMM of `lstm_ss_bwd_weight_v2` with its operands rounded as staged,
    /// fp32 FMA (kernels/lstm.cu).
    V1,
    /// The same split-K product on `mma.sync` tiles (m16n8k8 tf32, m16n8k16 bf16; the 128 x 64
    /// block tile of masked_conv2d_mma.cuh), kernels/lstm_mma_weight.cu: the default.
    #[default]
    V2,
}

numbered_versions!(
    LstmWeight,
    "the recurrences' tf32 / bf16 weight gradient",
    "the kernels `lstm_ss_bwd_weight_{tf32,bf16}_v<N>`",
    [V1 = 1, V2 = 2]
);

/// The recurrences' state-to-state weight gradient at fp32 under the scan versions 2 to 5
/// ([`RowLstm`], [`DiagLstm`]; version 1 runs the per-element `<scan>_ss_bwd_weight_v1`), both
/// scans and every recurrence (`lstm_ss_bwd_weight_v<N>`, summed by
/// `lstm_ss_bwd_weight_sum_v2`); at tf32 / bf16 [`LstmWeight`] applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LstmWeightFp32 {
    /// The split-K SIMT GEMM in 64 x 64 tiles of 64 threads, single-buffered
    /// (kernels/lstm.cu). The H200 ran it at 3.5 TFLOP/s at cifar-large (ncu: 4 warps per
    /// SM, a 64-bit division per load; docs/benchmarks.md).
    V2,
    /// masked_conv2d_bwd_weight_v2's pipeline (kernels/wgrad_gemm.cuh): 128 x 128 tiles of 256
    /// threads, double-buffered, no division in the K loop, splits for a full wave of 2 blocks
    /// per SM (kernels/lstm_weight.cu). The default: by design and the emulator's counters
    /// (docs/kernels.md); not yet timed on a GPU.
    #[default]
    V3,
    /// V3's launch, partials and bits with its tiles staged by cp.async in 4 stages
    /// (`wgrad_gemm_async`, as `masked_conv2d_bwd_weight_v3`). Selectable; not the default
    /// until a device times it.
    V4,
}

numbered_versions!(
    LstmWeightFp32,
    "the recurrences' fp32 weight gradient",
    "the kernels `lstm_ss_bwd_weight_v<N>`",
    [V2 = 2, V3 = 3, V4 = 4]
);

/// The persistent recurrence's state-to-state product at tf32 / bf16 (folded layout; at fp32
/// the scan's version applies). `cuda/lstm_persistent_mma.rs` says where each runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LstmPersistentProduct {
    /// The rounded SIMT cluster kernels, `<scan>_persistent_{fwd,bwd}_{tf32,bf16}_v{2,3}`
    /// (kernels/lstm_persistent.cuh, lstm_persistent_v3.cuh).
    Simt,
    /// The product on `mma.sync` in the same clusters,
    /// `<scan>_persistent_mma_{fwd,bwd}_{tf32,bf16}_v1` (kernels/row_lstm_persistent_mma.cu,
    /// diag_lstm_persistent_mma.cu), where its cluster fits (else Simt's kernel): the fused
    /// tensor-core steps' bits. Its global traffic is 0.22-0.54 efficient (the weight slice
    /// staged in the fragments' order, one float per epilogue operand).
    MmaV1,
    /// MmaV1 with coalesced global traffic, `<scan>_persistent_mma_{fwd,bwd}_{tf32,bf16}_v2`:
    /// the slice read in w_ss's order and scattered into shared memory, float2 state tiles
    /// at bf16, float2 epilogue pairs (at even h); MmaV1's launches, shared memory and bits.
    /// The default: the emulator's memory counters (docs/kernels.md); not timed on a GPU.
    #[default]
    MmaV2,
}

impl LstmPersistentProduct {
    /// Every product, ascending.
    pub const ALL: [Self; 3] = [Self::Simt, Self::MmaV1, Self::MmaV2];

    /// The product's number (1 simt, 2 mma v1, 3 mma v2).
    pub fn number(self) -> u32 {
        match self {
            Self::Simt => 1,
            Self::MmaV1 => 2,
            Self::MmaV2 => 3,
        }
    }

    /// `N` of the tensor-core kernels `<scan>_persistent_mma_{fwd,bwd}_{tf32,bf16}_v<N>`
    /// (`None`: the SIMT product).
    pub fn mma_version(self) -> Option<u32> {
        match self {
            Self::Simt => None,
            Self::MmaV1 => Some(1),
            Self::MmaV2 => Some(2),
        }
    }
}

impl TryFrom<u32> for LstmPersistentProduct {
    type Error = Error;

    /// Product `n` (1 simt, 2 mma v1, 3 mma v2); a configuration error otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Config(format!(
                "lstm persistent product has variants 1 (simt), 2 (mma v1) and 3 (mma v2), {n} \
                 requested"
            ))
        })
    }
}

impl fmt::Display for LstmPersistentProduct {
    /// `simt`, `mma v1`, `mma v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mma_version() {
            None => f.write_str("simt"),
            Some(v) => write!(f, "mma v{v}"),
        }
    }
}

/// The Row LSTM's recurrence kernels (kernels/row_lstm.cu, and the state-to-state weight
/// gradient GEMM of kernels/lstm.cu, which serves both scans).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RowLstm {
    /// One thread per (position, unit) or per weight element (`row_lstm_*_v1`): the state
    /// weight is read with a lane stride of `h * k` floats, the weight gradient sums every
    /// position in one thread.
    V1,
    /// The state weight packed once per call (`lstm_pack_ss_v2`) and register-tiled step
    /// kernels (`row_lstm_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v2`: 16 positions x 32 units
    /// per block, coalesced weight reads), the weight gradient as a tiled GEMM over positions
    /// (`lstm_ss_bwd_weight_v2`, split K summed in a fixed order). The persistent recurrence
    /// follows it: v2 runs one thread-block cluster per image with the weight slices in shared
    /// memory (`row_lstm_persistent_*_v2`), v1 one block per image. The default, as measured
    /// on an H200 (docs/benchmarks.md, "First device run"): its backward kernels were the
    /// fastest of every version, 2.1x V3's stepwise backward and 2.8x V3's persistent
    /// backward at h = 32, because its tiles launch four times V3's warps on these small
    /// grids (6 % achieved occupancy under V3 at h = 128, ncu). The default until V6.
    V2,
    /// V2, except the backward through time: `row_lstm_step_bwd_v3` / `row_lstm_ss_bwd_data_v3`
    /// register-tile the transposed product (4 positions x 4 units per thread, 16 x 128 per
    /// block: 8 FLOPs per shared word instead of 2, the same summation order), and so does
    /// the persistent backward (`row_lstm_persistent_bwd_v3`: V2's clusters, 4 x 4 per thread,
    /// the same bits). The forward, the weight gradient and the persistent forward are V2's.
    /// The emulator's counters favoured it (docs/kernels.md, "Recurrence backward v3",
    /// "Persistent backward v3"); the H200 measured it slower than V2 (see [`RowLstm::V2`]),
    /// so it is selectable, not the default.
    V3,
    /// V3, except the persistent recurrence, whose forward and backward are v4 (V2's
    /// clusters, 8 FLOPs per shared word each): `row_lstm_persistent_fwd_v4` (8 positions x 2
    /// units x 4 gates per thread, the cell on its registers; V2's summation order, 4 FLOPs
    /// per shared word in V2) and `row_lstm_persistent_bwd_v4` (8 positions x 8 units per
    /// thread, the K range split over the two halves of a warp and summed by shuffles, instead
    /// of V3's 4; another summation order than V3's). Where their shared memory does not fit,
    /// the forward falls back to V2's kernel, the backward to V3's (then V2's, V1's). At tf32 /
    /// bf16 (the SIMT product) both run their rounded twins, the forward with V2's rounded
    /// kernel's bits. The stepwise kernels are V3's (no
    /// `row_lstm_step_bwd_v4`). Not the default: on the H200 its persistent forward took 2.2x
    /// V2's and its backward 3.5x at h = 32 (docs/benchmarks.md; docs/kernels.md, "Persistent
    /// forward v4", "Persistent backward v4").
    V4,
    /// The persistent recurrence at 8 FLOPs per shared word on the defaults' warps. The
    /// forward: `row_lstm_persistent_fwd_v5` (V2's clusters and 16 x 32 block tile on 128
    /// threads, V4's 8 positions x 2 units x 4 gates per thread with the K range split over 4
    /// K-groups of each warp and summed by shuffles; another summation order than V2's). The
    /// backward: `row_lstm_persistent_bwd_v5` (V3's clusters and 32 x 32 block tile on 64
    /// threads, V4's 8 x 8 per thread with the K range split over 4 K-groups of each warp and
    /// summed by two shuffle levels; another summation order than V3's and V4's). Both with
    /// rounded twins at tf32 / bf16; the stepwise kernels are V3's. Each falls back where its
    /// shared memory does not fit (the forward needs V2's, the backward V3's: backward v5 to v4,
    /// v3, v2, v1). Not the default: on the H200 at h = 32 its persistent forward was the
    /// fastest (0.82x V2's time) but its backward took 2.0x V2's, and its stepwise kernels are
    /// V3's (docs/benchmarks.md; docs/kernels.md, "Persistent forward v5 (issue 17)",
    /// "Persistent backward v5 (issue 17)").
    V5,
    /// V2, except the persistent recurrence, whose forward and backward are v6: V5's thread
    /// tiles (8 FLOPs per shared word) on 8 warps per block, the K range split between warp
    /// groups summed through shared memory in a fixed order (another summation order than
    /// V5's). `row_lstm_persistent_fwd_v6`: V5's 16 x 32 block tile on two groups of 128
    /// threads; `row_lstm_persistent_bwd_v6`: V2's 16-position block tiles (V2's clusters) on
    /// eight groups of one warp. Rounded twins at tf32 / bf16; each falls back where its shared
    /// memory does not fit (to V5's kernels, then theirs). The stepwise kernels and the weight
    /// gradient are V2's (the H200's fastest). The default, by design and the emulator's
    /// counters: at h = 128 one block fits an SM (the weight slice fills its shared memory), and
    /// V2's persistent kernels run 4 warps per SM at 4.2 (forward) and 1.7 (backward) FLOPs per
    /// shared word, V6's 8 warps at 8 (docs/kernels.md, "Persistent v6"). Not yet timed on a
    /// GPU: the prepared run (scripts/gpu-check.sh --focus) times V2 against V6 first. The
    /// default until V7.
    V6,
    /// V6 with fewer waits in the persistent recurrence (`row_lstm_persistent_{fwd,bwd}_v7`):
    /// V6's blocks, tiles and exchanges, every element a thread stages loaded before any is
    /// stored (a tap's chunk in one round of loads where V6 waits for each), the forward's
    /// taps staged between one pair of barriers with the exchange in a buffer of its own (2
    /// block barriers per row at h <= 128 where V6 takes 8), the backward's chunks of 512
    /// gate rows (7 barriers per row at h = 128 where V6 takes 14). Another summation order
    /// than V6's only in the forward past h = 128 (chunk by chunk, then tap by tap). Rounded
    /// twins at tf32 / bf16; each falls back to V6's kernels where its shared memory does not
    /// fit (Row LSTM k = 3 past h = 129). The stepwise kernels and the weight gradient are
    /// V2's. Chosen by the latency model fitted to the first device run (docs/kernels.md,
    /// "Persistent v7"); not yet timed on a GPU. The default until V8.
    V7,
    /// V7 with the stepwise kernels of the fused and unfused recurrences at v8
    /// (`row_lstm_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8`, kernels/row_lstm_v8.cu): V2's
    /// launches, tiles, packed weight and bits, with the product's weight words read 8 features
    /// at a time before any is used (one load round per 8 features where V2 waits for each
    /// feature's loads behind the previous feature's FMAs). The persistent kernels, the pack
    /// and the weight gradient are V7's. The default, by the latency model fitted to the first
    /// device run (docs/kernels.md, "Stepwise v8"); not yet timed on a GPU.
    #[default]
    V8,
}

numbered_versions!(
    RowLstm,
    "row_lstm",
    "the kernels `row_lstm_<pass>_v<N>` (which pass runs which version: `cuda/lstm.rs`'s header)",
    [
        V1 = 1,
        V2 = 2,
        V3 = 3,
        V4 = 4,
        V5 = 5,
        V6 = 6,
        V7 = 7,
        V8 = 8
    ]
);

/// The Diagonal LSTM's recurrence kernels (kernels/diag_lstm.cu, and the weight gradient GEMM
/// of kernels/lstm.cu), for both layouts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiagLstm {
    /// One thread per (position, unit) or per weight element (`diag_lstm_*_v1`).
    V1,
    /// As [`RowLstm::V2`], in both layouts (`diag_lstm_*_v2`, `diag_lstm_skewed_*_v2`,
    /// `lstm_ss_bwd_weight_v2`), the persistent recurrence included
    /// (`diag_lstm_persistent_*_v2`, `diag_lstm_skewed_persistent_*_v2`: clusters). The
    /// default until V6; as measured on an H200 (docs/benchmarks.md): at h = 16 its backward
    /// took 0.47x V3's time stepwise and 0.48x persistent.
    V2,
    /// As [`RowLstm::V3`], in both layouts (`diag_lstm_{step_bwd,ss_bwd_data}_v3`,
    /// `diag_lstm_skewed_{step_bwd,ss_bwd_data}_v3`, the persistent backward
    /// `diag_lstm{,_skewed}_persistent_bwd_v3`; everything else V2's). Selectable, not the
    /// default (see [`DiagLstm::V2`]).
    V3,
    /// As [`RowLstm::V4`]: V3 but the persistent recurrence runs
    /// `diag_lstm{,_skewed}_persistent_fwd_v4` and `diag_lstm{,_skewed}_persistent_bwd_v4`.
    V4,
    /// As [`RowLstm::V5`]: V3 but the persistent recurrence runs
    /// `diag_lstm{,_skewed}_persistent_fwd_v5` and `diag_lstm{,_skewed}_persistent_bwd_v5`
    /// (rounded twins in the folded layout).
    V5,
    /// As [`RowLstm::V6`]: V2 but the persistent recurrence runs
    /// `diag_lstm{,_skewed}_persistent_fwd_v6` and `diag_lstm{,_skewed}_persistent_bwd_v6`
    /// (rounded twins in the folded layout). The default until V7.
    V6,
    /// As [`RowLstm::V7`]: V6 but the persistent recurrence runs
    /// `diag_lstm{,_skewed}_persistent_fwd_v7` and `diag_lstm{,_skewed}_persistent_bwd_v7`
    /// (rounded twins in the folded layout; V6's kernels past h = 202 forward, 194 backward).
    /// The default until V8.
    V7,
    /// As [`RowLstm::V8`]: V7 but the stepwise kernels of both layouts are v8
    /// (`diag_lstm{,_skewed}_{step_fwd,step_bwd,ss_fwd,ss_bwd_data}_v8`). The default, as
    /// [`RowLstm::V8`] (not yet timed).
    #[default]
    V8,
}

/// The version of the stepwise kernels (`<scan>_step_{fwd,bwd}_v<N>`, `<scan>_ss_{fwd,
/// bwd_data}_v<N>`, the materialised layout's twins; forward also the weight gradient and its
/// pack) that recurrence version `selection` ([`RowLstm`], [`DiagLstm`]: the same numbers)
/// runs in the backward (`backward`) or forward pass: v3 is v2 but for the backward, v4 and v5
/// are v3 and v6 and v7 are v2 here (they differ in the persistent kernels only), the forward
/// kernels exist at v1, v2 and v8, and v8 runs its own both ways.
pub fn stepwise_kernel_version(selection: u32, backward: bool) -> u32 {
    let bwd = match selection {
        4 | 5 => 3,
        6 | 7 => 2,
        v => v,
    };
    if backward || bwd == 8 {
        bwd
    } else {
        bwd.min(2)
    }
}

/// The version of the persistent kernels (`<scan>_persistent_{fwd,bwd}_v<N>`) that recurrence
/// version `selection` runs before `cuda/lstm_persistent.rs`'s shared-memory fallbacks: its own
/// number, except v3's forward, which is v2's (v3 differs in the backward only), and v8's,
/// which are v7's (v8 differs in the stepwise kernels only).
pub fn persistent_kernel_version(selection: u32, backward: bool) -> u32 {
    match selection {
        3 if !backward => 2,
        8 => 7,
        v => v,
    }
}

numbered_versions!(
    DiagLstm,
    "diag_lstm",
    "the kernels `diag_lstm{,_skewed}_<pass>_v<N>` (as [`RowLstm`])",
    [
        V1 = 1,
        V2 = 2,
        V3 = 3,
        V4 = 4,
        V5 = 5,
        V6 = 6,
        V7 = 7,
        V8 = 8
    ]
);

/// The Diagonal LSTM's layout on CUDA (cuda/lstm.rs), with each of the three recurrences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiagLstmLayout {
    /// The skew folded into the kernels' indexing (step `s` visits `(r, s - r)` in place).
    #[default]
    Folded,
    /// The paper's literal formulation, kept as the comparison: skewed maps materialised
    /// (`skew_fwd`, the `diag_lstm_skewed_*` kernels, unskew).
    Materialised,
}

impl DiagLstmLayout {
    /// Both layouts, the default first.
    pub const ALL: [Self; 2] = [Self::Folded, Self::Materialised];

    /// The layout's number (1 folded, 2 materialised).
    pub fn number(self) -> u32 {
        match self {
            Self::Folded => 1,
            Self::Materialised => 2,
        }
    }

    /// `folded` or `materialised`, as in `pixelrnn bench`'s rows.
    pub fn name(self) -> &'static str {
        match self {
            Self::Folded => "folded",
            Self::Materialised => "materialised",
        }
    }
}

impl TryFrom<u32> for DiagLstmLayout {
    type Error = Error;

    /// Layout `n` (1 folded, 2 materialised); unsupported otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Unsupported(format!(
                "Diagonal LSTM layout {n} does not exist (1 = skew folded into the indexing, 2 = \
                 materialised skewed maps)"
            ))
        })
    }
}

impl fmt::Display for DiagLstmLayout {
    /// `folded`, `materialised`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

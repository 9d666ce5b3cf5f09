//! Kernel variants: which version of an op's kernels (or which layout of its scan) the CUDA
//! backend runs, one enum per op family that has a choice, gathered in [`Variants`].
//!
//! An op's kernels are `<op>_<pass>_v<N>`. Ops whose kernels have one version name `_v1`
//! directly ([`CudaBackend::kernel_name`]); the families below have a typed selection instead,
//! so an unknown version cannot be selected. The selection belongs to a backend (and its
//! clones) and changes only through [`CudaBackend::select`], whose guard puts the previous
//! selection back when dropped: a benchmark or a test that times or checks one variant leaves
//! the defaults behind by construction.
//!
//! The recurrence variant (fused, unfused, persistent) is not here: it is a per-call option of
//! the model ([`crate::backend::Recurrence`]), not a property of the backend.

use std::fmt;

use super::{CudaBackend, Executor};
use crate::error::{Error, Result};

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
    /// per shared word (docs/kernels.md); not yet timed on a GPU (`pixelrnn bench` times all
    /// three side by side).
    #[default]
    V3,
}

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
}

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

impl LstmMma {
    /// Every version, ascending.
    pub const ALL: [Self; 2] = [Self::V1, Self::V2];

    /// `N` of the kernels `<scan>_step_{fwd,bwd}_{tf32,bf16}_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

impl fmt::Display for LstmMma {
    /// `v1`, `v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

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

impl LstmWeight {
    /// Every version, ascending.
    pub const ALL: [Self; 2] = [Self::V1, Self::V2];

    /// `N` of the kernels `lstm_ss_bwd_weight_{tf32,bf16}_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

impl fmt::Display for LstmWeight {
    /// `v1`, `v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

/// `masked_conv2d_forward_at` (incremental sampling): the `fwd_at` kernels of
/// kernels/masked_conv2d_packed.cu (its pack has its own selection, [`MaskedConv2dPack`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MaskedConv2dAt {
    /// One thread per (image, output feature), reading the packed `[taps * cin, cout]` rows.
    #[default]
    V1,
}

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
    /// (`lstm_ss_bwd_weight_v2`, split K summed in a fixed order): the default, chosen by the
    /// emulator's memory counters (docs/kernels.md, "Recurrence kernels v2"). The persistent
    /// recurrence follows it: v2 runs one thread-block cluster per image with the weight
    /// slices in shared memory (`row_lstm_persistent_*_v2`), v1 one block per image.
    V2,
    /// V2, except the backward through time: `row_lstm_step_bwd_v3` / `row_lstm_ss_bwd_data_v3`
    /// register-tile the transposed product (4 positions x 4 units per thread, 16 x 128 per
    /// block: 8 FLOPs per shared word instead of 2, the same summation order), and so does
    /// the persistent backward (`row_lstm_persistent_bwd_v3`: V2's clusters, 4 x 4 per thread,
    /// the same bits). The forward, the weight gradient and the persistent forward are V2's.
    /// The default, chosen by the emulator's counters (docs/kernels.md, "Recurrence backward
    /// v3", "Persistent backward v3").
    #[default]
    V3,
}

/// The Diagonal LSTM's recurrence kernels (kernels/diag_lstm.cu, and the weight gradient GEMM
/// of kernels/lstm.cu), for both layouts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiagLstm {
    /// One thread per (position, unit) or per weight element (`diag_lstm_*_v1`).
    V1,
    /// As [`RowLstm::V2`], in both layouts (`diag_lstm_*_v2`, `diag_lstm_skewed_*_v2`,
    /// `lstm_ss_bwd_weight_v2`), the persistent recurrence included
    /// (`diag_lstm_persistent_*_v2`, `diag_lstm_skewed_persistent_*_v2`: clusters).
    V2,
    /// As [`RowLstm::V3`], in both layouts (`diag_lstm_{step_bwd,ss_bwd_data}_v3`,
    /// `diag_lstm_skewed_{step_bwd,ss_bwd_data}_v3`, the persistent backward
    /// `diag_lstm{,_skewed}_persistent_bwd_v3`; everything else V2's): the default.
    #[default]
    V3,
}

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

impl MaskedConv2d {
    /// Every version, ascending.
    pub const ALL: [Self; 3] = [Self::V1, Self::V2, Self::V3];

    /// `N` of the kernels `masked_conv2d_<pass>_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

impl MaskedConv2dWeight {
    /// Every version, ascending.
    pub const ALL: [Self; 2] = [Self::V1, Self::V2];

    /// `N` of the kernel `masked_conv2d_bwd_weight_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

impl MaskedConv2dMma {
    /// Every version, ascending.
    pub const ALL: [Self; 1] = [Self::V1];

    /// `N` of the kernels `masked_conv2d_<pass>_{tf32,bf16}_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
        }
    }
}

impl MaskedConv2dAt {
    /// Every version, ascending.
    pub const ALL: [Self; 1] = [Self::V1];

    /// `N` of the kernels `masked_conv2d_{pack,fwd_at}_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
        }
    }
}

impl MaskedConv2dPack {
    /// Every version, ascending.
    pub const ALL: [Self; 2] = [Self::V1, Self::V2];

    /// `N` of the kernel `masked_conv2d_pack_v<N>`.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
        }
    }
}

impl RowLstm {
    /// Every version, ascending.
    pub const ALL: [Self; 3] = [Self::V1, Self::V2, Self::V3];

    /// The version's number.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
}

impl DiagLstm {
    /// Every version, ascending.
    pub const ALL: [Self; 3] = [Self::V1, Self::V2, Self::V3];

    /// The version's number.
    pub fn number(self) -> u32 {
        match self {
            Self::V1 => 1,
            Self::V2 => 2,
            Self::V3 => 3,
        }
    }
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

/// The variant of `all` whose number is `n`.
fn numbered<V: Copy>(all: &[V], number: fn(V) -> u32, n: u32) -> Option<V> {
    all.iter().copied().find(|&v| number(v) == n)
}

impl TryFrom<u32> for MaskedConv2d {
    type Error = Error;

    /// Version `n`; a configuration error naming the versions there are otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Config(format!(
                "masked_conv2d has kernel versions 1 to 3, version {n} requested"
            ))
        })
    }
}

impl TryFrom<u32> for MaskedConv2dWeight {
    type Error = Error;

    /// Version `n`; a configuration error naming the versions there are otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Config(format!(
                "masked_conv2d's weight gradient has kernel versions 1 to 2, version {n} \
                 requested"
            ))
        })
    }
}

impl TryFrom<u32> for MaskedConv2dPack {
    type Error = Error;

    /// Version `n`; a configuration error naming the versions there are otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Config(format!(
                "masked_conv2d's weight pack has kernel versions 1 to 2, version {n} requested"
            ))
        })
    }
}

impl TryFrom<u32> for RowLstm {
    type Error = Error;

    /// Version `n`; a configuration error naming the versions there are otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Config(format!(
                "row_lstm has kernel versions 1 to 3, version {n} requested"
            ))
        })
    }
}

impl TryFrom<u32> for DiagLstm {
    type Error = Error;

    /// Version `n`; a configuration error naming the versions there are otherwise.
    fn try_from(n: u32) -> Result<Self> {
        numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
            Error::Config(format!(
                "diag_lstm has kernel versions 1 to 3, version {n} requested"
            ))
        })
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

impl fmt::Display for MaskedConv2d {
    /// `v1`, `v2`, `v3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for MaskedConv2dWeight {
    /// `v1`, `v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for MaskedConv2dMma {
    /// `v1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for MaskedConv2dAt {
    /// `v1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for MaskedConv2dPack {
    /// `v1`, `v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for RowLstm {
    /// `v1`, `v2`, `v3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for DiagLstm {
    /// `v1`, `v2`, `v3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

impl fmt::Display for DiagLstmLayout {
    /// `folded`, `materialised`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kernel variant of every op family that has a choice. `Variants::default()` is what the
/// backend runs unless told otherwise; select others with struct-update syntax:
/// `Variants { masked_conv2d: MaskedConv2d::V1, ..Variants::default() }`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Variants {
    /// `masked_conv2d` forward and input gradient.
    pub masked_conv2d: MaskedConv2d,
    /// `masked_conv2d` weight and bias gradients.
    pub masked_conv2d_weight: MaskedConv2dWeight,
    /// `masked_conv2d_pack` / `masked_conv2d_forward_at`.
    pub masked_conv2d_at: MaskedConv2dAt,
    /// `masked_conv2d`'s weight pack (fwd v3, the tensor-core forward, incremental sampling).
    pub masked_conv2d_pack: MaskedConv2dPack,
    /// `masked_conv2d`'s tensor-core kernels (every pass, at tf32 and bf16).
    pub masked_conv2d_mma: MaskedConv2dMma,
    /// The recurrences' tensor-core fused step kernels (at tf32 and bf16).
    pub lstm_mma: LstmMma,
    /// The Diagonal LSTM's layout (forward and backward, every recurrence).
    pub diag_lstm_layout: DiagLstmLayout,
    /// The Row LSTM's recurrence kernels.
    pub row_lstm: RowLstm,
    /// The Diagonal LSTM's recurrence kernels (either layout).
    pub diag_lstm: DiagLstm,
    /// The recurrences' weight gradient at tf32 and bf16.
    pub lstm_weight: LstmWeight,
}

impl fmt::Display for Variants {
    /// `masked_conv2d v3, masked_conv2d weight v2, masked_conv2d_at v1, masked_conv2d pack v2,
    /// masked_conv2d mma v1, lstm mma v2, diag_lstm layout folded, row_lstm v3, diag_lstm v3,
    /// lstm weight v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "masked_conv2d {}, masked_conv2d weight {}, masked_conv2d_at {}, masked_conv2d pack \
             {}, masked_conv2d mma {}, lstm mma {}, diag_lstm layout {}, row_lstm {}, \
             diag_lstm {}, lstm weight {}",
            self.masked_conv2d,
            self.masked_conv2d_weight,
            self.masked_conv2d_at,
            self.masked_conv2d_pack,
            self.masked_conv2d_mma,
            self.lstm_mma,
            self.diag_lstm_layout,
            self.row_lstm,
            self.diag_lstm,
            self.lstm_weight
        )
    }
}

/// A selection of [`Variants`] in force until dropped ([`CudaBackend::select`]); dropping it
/// restores the selection that was in force before. Guards of one backend nest: drop them in
/// the reverse order of their creation (scopes do).
#[must_use = "the selection ends when the guard is dropped"]
pub struct Selected<'a, E: Executor> {
    backend: &'a CudaBackend<E>,
    previous: Variants,
}

impl<E: Executor> Drop for Selected<'_, E> {
    fn drop(&mut self) {
        self.backend.set_variants(self.previous);
    }
}

impl<E: Executor> CudaBackend<E> {
    /// The kernel variants in force.
    pub fn variants(&self) -> Variants {
        self.inner
            .variants
            .read()
            .map_or_else(|e| *e.into_inner(), |v| *v)
    }

    /// Runs `variants` until the returned guard is dropped, then the previous selection again
    /// (benchmarks and parity tests; training and sampling run the defaults).
    pub fn select(&self, variants: Variants) -> Selected<'_, E> {
        let previous = self.variants();
        self.set_variants(variants);
        Selected {
            backend: self,
            previous,
        }
    }

    fn set_variants(&self, variants: Variants) {
        match self.inner.variants.write() {
            Ok(mut v) => *v = variants,
            Err(poisoned) => *poisoned.into_inner() = variants,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_ones_are_errors() {
        for v in MaskedConv2d::ALL {
            assert_eq!(MaskedConv2d::try_from(v.number()).unwrap(), v);
        }
        for v in MaskedConv2dWeight::ALL {
            assert_eq!(MaskedConv2dWeight::try_from(v.number()).unwrap(), v);
        }
        for v in DiagLstmLayout::ALL {
            assert_eq!(DiagLstmLayout::try_from(v.number()).unwrap(), v);
        }
        for v in MaskedConv2dPack::ALL {
            assert_eq!(MaskedConv2dPack::try_from(v.number()).unwrap(), v);
        }
        assert!(matches!(
            MaskedConv2dPack::try_from(3),
            Err(Error::Config(_))
        ));
        assert!(matches!(MaskedConv2d::try_from(4), Err(Error::Config(_))));
        assert!(matches!(
            MaskedConv2dWeight::try_from(0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            DiagLstmLayout::try_from(0),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(Variants::default().masked_conv2d, MaskedConv2d::V3);
        assert_eq!(
            Variants::default().masked_conv2d_weight,
            MaskedConv2dWeight::V2
        );
        for v in RowLstm::ALL {
            assert_eq!(RowLstm::try_from(v.number()).unwrap(), v);
        }
        for v in DiagLstm::ALL {
            assert_eq!(DiagLstm::try_from(v.number()).unwrap(), v);
        }
        assert!(matches!(RowLstm::try_from(0), Err(Error::Config(_))));
        assert!(matches!(DiagLstm::try_from(4), Err(Error::Config(_))));
        assert_eq!(
            Variants::default().to_string(),
            "masked_conv2d v3, masked_conv2d weight v2, masked_conv2d_at v1, masked_conv2d pack \
             v2, masked_conv2d mma v1, lstm mma v2, diag_lstm layout folded, row_lstm v3, \
             diag_lstm v3, lstm weight v2"
        );
    }

    /// The host side names `masked_conv2d_<pass>_v<N>` from [`MaskedConv2d::number`]: every
    /// variant must have its kernels, and every version in kernels/*.cu its variant.
    #[test]
    fn variants_match_the_kernel_sources() {
        // The signatures are parsed from kernels/*.cu with or without a CUDA compiler.
        let conv = MaskedConv2d::ALL.map(MaskedConv2d::number).to_vec();
        assert_eq!(crate::kernels::versions("masked_conv2d", "fwd"), conv);
        assert_eq!(crate::kernels::versions("masked_conv2d", "bwd_data"), conv);
        let weight = MaskedConv2dWeight::ALL
            .map(MaskedConv2dWeight::number)
            .to_vec();
        assert_eq!(
            crate::kernels::versions("masked_conv2d", "bwd_weight"),
            weight
        );
        assert_eq!(
            crate::kernels::versions("masked_conv2d", "pack_transposed"),
            [1]
        );
        // v2's second pass.
        assert_eq!(
            crate::kernels::versions("masked_conv2d", "bwd_weight_reduce"),
            [1]
        );
        // The tensor-core kernels: one version list per precision and pass.
        let mma = MaskedConv2dMma::ALL.map(MaskedConv2dMma::number).to_vec();
        for pass in [
            "fwd_tf32",
            "fwd_bf16",
            "bwd_data_tf32",
            "bwd_data_bf16",
            "bwd_weight_tf32",
            "bwd_weight_bf16",
        ] {
            assert_eq!(
                crate::kernels::versions("masked_conv2d", pass),
                mma,
                "{pass}"
            );
        }
        let at = MaskedConv2dAt::ALL.map(MaskedConv2dAt::number).to_vec();
        let pack = MaskedConv2dPack::ALL.map(MaskedConv2dPack::number).to_vec();
        assert_eq!(crate::kernels::versions("masked_conv2d", "pack"), pack);
        assert_eq!(crate::kernels::versions("masked_conv2d", "fwd_at"), at);
        // The recurrences' weight gradient: v1 per scan, v2 one GEMM for both.
        assert_eq!(crate::kernels::versions("row_lstm", "ss_bwd_weight"), [1]);
        assert_eq!(crate::kernels::versions("diag_lstm", "ss_bwd_weight"), [1]);
        assert_eq!(crate::kernels::versions("lstm", "ss_bwd_weight"), [2]);
        assert_eq!(crate::kernels::versions("lstm", "ss_bwd_weight_sum"), [2]);
        let lw = LstmWeight::ALL.map(LstmWeight::number).to_vec();
        for pass in ["ss_bwd_weight_tf32", "ss_bwd_weight_bf16"] {
            assert_eq!(crate::kernels::versions("lstm", pass), lw, "{pass}");
        }
        // The recurrences' step kernels: the backward's at every version, the forward's at
        // v1 and v2 (v3 runs v2's forward).
        for scan in ["row_lstm", "diag_lstm"] {
            let all = RowLstm::ALL.map(RowLstm::number).to_vec();
            assert_eq!(crate::kernels::versions(scan, "step_bwd"), all, "{scan}");
            assert_eq!(crate::kernels::versions(scan, "ss_bwd_data"), all, "{scan}");
            assert_eq!(crate::kernels::versions(scan, "step_fwd"), [1, 2], "{scan}");
            assert_eq!(crate::kernels::versions(scan, "ss_fwd"), [1, 2], "{scan}");
        }
        // The tensor-core step kernels: one version list per scan, pass and precision.
        let lstm_mma = LstmMma::ALL.map(LstmMma::number).to_vec();
        for scan in ["row_lstm", "diag_lstm"] {
            for pass in [
                "step_fwd_tf32",
                "step_fwd_bf16",
                "step_bwd_tf32",
                "step_bwd_bf16",
            ] {
                assert_eq!(
                    crate::kernels::versions(scan, pass),
                    lstm_mma,
                    "{scan} {pass}"
                );
            }
        }
        assert_eq!(
            crate::kernels::versions("diag_lstm", "skewed_step_bwd"),
            DiagLstm::ALL.map(DiagLstm::number).to_vec()
        );
    }
}

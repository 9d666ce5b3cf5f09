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

/// The impls of a variant enum whose variants are numbered kernel versions, listed ascending
/// as `Variant = number`: `ALL`, `number`, `TryFrom<u32>` (a configuration error naming the
/// versions there are, with `$family` saying whose) and `Display` (`v<N>`). `$kernels` names the
/// kernels whose `N` the number is. The enums and their variants' docs stay hand-written.
macro_rules! numbered_versions {
    ($enum:ident, $family:literal, $kernels:literal, [$($variant:ident = $n:literal),+ $(,)?]) => {
        impl $enum {
            /// Every version, ascending.
            pub const ALL: [Self; [$($n),+].len()] = [$(Self::$variant),+];

            #[doc = concat!("`N` of ", $kernels, ".")]
            pub fn number(self) -> u32 {
                match self {
                    $(Self::$variant => $n,)+
                }
            }
        }

        impl TryFrom<u32> for $enum {
            type Error = $crate::error::Error;

            /// Version `n`; a configuration error naming the versions there are otherwise.
            fn try_from(n: u32) -> $crate::error::Result<Self> {
                let numbers = Self::ALL.map(Self::number);
                $crate::backend::cuda::variants::numbered(&Self::ALL, Self::number, n).ok_or_else(|| {
                    $crate::error::Error::Config(format!(
                        "{} has kernel versions {} to {}, version {n} requested",
                        $family,
                        numbers[0],
                        numbers[numbers.len() - 1]
                    ))
                })
            }
        }

        impl std::fmt::Display for $enum {
            /// `v<N>`.
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "v{}", self.number())
            }
        }
    };
}

mod conv;
mod lstm;
mod spec;

use std::fmt;

pub use conv::{
    MaskedConv2d, MaskedConv2dAt, MaskedConv2dMma, MaskedConv2dPack, MaskedConv2dWeight,
};
pub use lstm::{
    persistent_kernel_version, stepwise_kernel_version, DiagLstm, DiagLstmLayout, LstmMma,
    LstmPersistentProduct, LstmWeight, LstmWeightFp32, RowLstm,
};

use super::{CudaBackend, Executor};

/// The variant of `all` whose number is `n`.
fn numbered<V: Copy>(all: &[V], number: fn(V) -> u32, n: u32) -> Option<V> {
    all.iter().copied().find(|&v| number(v) == n)
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
    /// The recurrences' weight gradient at fp32 (scan versions 2 to 5).
    pub lstm_weight_fp32: LstmWeightFp32,
    /// The persistent recurrence's state product at tf32 and bf16.
    pub lstm_persistent_product: LstmPersistentProduct,
}

impl fmt::Display for Variants {
    /// `masked_conv2d v4, masked_conv2d weight v2, masked_conv2d_at v1, masked_conv2d pack v2,
    /// masked_conv2d mma v1, lstm mma v2, diag_lstm layout folded, row_lstm v8, diag_lstm v8,
    /// lstm weight v2, lstm weight fp32 v3, lstm persistent product mma v2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "masked_conv2d {}, masked_conv2d weight {}, masked_conv2d_at {}, masked_conv2d pack \
             {}, masked_conv2d mma {}, lstm mma {}, diag_lstm layout {}, row_lstm {}, \
             diag_lstm {}, lstm weight {}, lstm weight fp32 {}, lstm persistent product {}",
            self.masked_conv2d,
            self.masked_conv2d_weight,
            self.masked_conv2d_at,
            self.masked_conv2d_pack,
            self.masked_conv2d_mma,
            self.lstm_mma,
            self.diag_lstm_layout,
            self.row_lstm,
            self.diag_lstm,
            self.lstm_weight,
            self.lstm_weight_fp32,
            self.lstm_persistent_product
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
    use crate::error::Error;

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
        match MaskedConv2d::try_from(6) {
            Err(Error::Config(m)) => assert_eq!(
                m,
                "masked_conv2d has kernel versions 1 to 5, version 6 requested"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            MaskedConv2dMma::try_from(2),
            Err(Error::Config(_))
        ));
        assert!(matches!(MaskedConv2dAt::try_from(0), Err(Error::Config(_))));
        assert!(matches!(
            MaskedConv2dWeight::try_from(0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            DiagLstmLayout::try_from(0),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(Variants::default().masked_conv2d, MaskedConv2d::V4);
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
        for v in LstmMma::ALL {
            assert_eq!(LstmMma::try_from(v.number()).unwrap(), v);
        }
        for v in LstmWeight::ALL {
            assert_eq!(LstmWeight::try_from(v.number()).unwrap(), v);
        }
        assert!(matches!(RowLstm::try_from(0), Err(Error::Config(_))));
        assert!(matches!(DiagLstm::try_from(99), Err(Error::Config(_))));
        assert!(matches!(LstmWeight::try_from(0), Err(Error::Config(_))));
        for v in LstmWeightFp32::ALL {
            assert_eq!(LstmWeightFp32::try_from(v.number()).unwrap(), v);
        }
        match LstmWeightFp32::try_from(1) {
            Err(Error::Config(m)) => assert_eq!(
                m,
                "the recurrences' fp32 weight gradient has kernel versions 2 to 4, version 1 \
                 requested"
            ),
            other => panic!("{other:?}"),
        }
        match RowLstm::try_from(99) {
            Err(Error::Config(m)) => assert_eq!(
                m,
                format!(
                    "row_lstm has kernel versions 1 to {}, version 99 requested",
                    RowLstm::ALL.len()
                )
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            Variants::default().to_string(),
            "masked_conv2d v4, masked_conv2d weight v2, masked_conv2d_at v1, masked_conv2d pack \
             v2, masked_conv2d mma v1, lstm mma v2, diag_lstm layout folded, row_lstm v8, \
             diag_lstm v8, lstm weight v2, lstm weight fp32 v3, lstm persistent product mma v2"
        );
        for v in LstmPersistentProduct::ALL {
            assert_eq!(LstmPersistentProduct::try_from(v.number()).unwrap(), v);
        }
        assert!(matches!(
            LstmPersistentProduct::try_from(4),
            Err(Error::Config(_))
        ));
        assert_eq!(
            Variants::default().lstm_persistent_product,
            LstmPersistentProduct::MmaV2
        );
        assert_eq!(LstmPersistentProduct::MmaV1.to_string(), "mma v1");
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
        // The recurrences' weight gradient: v1 per scan, v2 and v3 one GEMM for both.
        assert_eq!(crate::kernels::versions("row_lstm", "ss_bwd_weight"), [1]);
        assert_eq!(crate::kernels::versions("diag_lstm", "ss_bwd_weight"), [1]);
        let fp32 = LstmWeightFp32::ALL.map(LstmWeightFp32::number).to_vec();
        assert_eq!(crate::kernels::versions("lstm", "ss_bwd_weight"), fp32);
        assert_eq!(crate::kernels::versions("lstm", "ss_bwd_weight_sum"), [2]);
        let lw = LstmWeight::ALL.map(LstmWeight::number).to_vec();
        for pass in ["ss_bwd_weight_tf32", "ss_bwd_weight_bf16"] {
            assert_eq!(crate::kernels::versions("lstm", pass), lw, "{pass}");
        }
        // The recurrences' step kernels: the backward's at v1 to v3 and v8 (v4 and v5 run
        // v3's, v6 and v7 v2's), the forward's at v1, v2 and v8 (v3 to v7 run v2's forward);
        // the persistent backward at v1 to v7 (v1's is `<scan>_persistent_bwd_v1`, in the
        // scan's module; v8 runs v7's), the rounded ones from v2; the persistent forward at v1,
        // v2 and v4 to v7 (v3 runs v2's), the rounded ones at v2 and v4 to v7.
        for scan in ["row_lstm", "diag_lstm"] {
            let all = RowLstm::ALL.map(RowLstm::number).to_vec();
            assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(DiagLstm::ALL.map(DiagLstm::number).to_vec(), all);
            assert_eq!(
                crate::kernels::versions(scan, "persistent_fwd"),
                [1, 2, 4, 5, 6, 7],
                "{scan}"
            );
            for p in ["tf32", "bf16"] {
                assert_eq!(
                    crate::kernels::versions(scan, &format!("persistent_fwd_{p}")),
                    [2, 4, 5, 6, 7],
                    "{scan} {p}"
                );
            }
            assert_eq!(
                crate::kernels::versions(scan, "step_bwd"),
                [1, 2, 3, 8],
                "{scan}"
            );
            assert_eq!(
                crate::kernels::versions(scan, "ss_bwd_data"),
                [1, 2, 3, 8],
                "{scan}"
            );
            assert_eq!(
                crate::kernels::versions(scan, "persistent_bwd"),
                all[..7],
                "{scan}"
            );
            for p in ["tf32", "bf16"] {
                assert_eq!(
                    crate::kernels::versions(scan, &format!("persistent_bwd_{p}")),
                    [2, 3, 4, 5, 6, 7],
                    "{scan} {p}"
                );
            }
            assert_eq!(
                crate::kernels::versions(scan, "step_fwd"),
                [1, 2, 8],
                "{scan}"
            );
            assert_eq!(
                crate::kernels::versions(scan, "ss_fwd"),
                [1, 2, 8],
                "{scan}"
            );
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
        // The persistent recurrence's tensor-core kernels (kernels/<scan>_persistent_mma.cu):
        // one version per tensor-core product.
        let pmma: Vec<u32> = LstmPersistentProduct::ALL
            .iter()
            .filter_map(|p| p.mma_version())
            .collect();
        for scan in ["row_lstm", "diag_lstm"] {
            for pass in [
                "persistent_mma_fwd_tf32",
                "persistent_mma_fwd_bf16",
                "persistent_mma_bwd_tf32",
                "persistent_mma_bwd_bf16",
            ] {
                assert_eq!(crate::kernels::versions(scan, pass), pmma, "{scan} {pass}");
            }
        }
        assert_eq!(
            crate::kernels::versions("diag_lstm", "skewed_step_bwd"),
            [1, 2, 3, 8]
        );
        assert_eq!(
            crate::kernels::versions("diag_lstm", "skewed_persistent_bwd"),
            [1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            crate::kernels::versions("diag_lstm", "skewed_persistent_fwd"),
            [1, 2, 4, 5, 6, 7]
        );
    }
}

//! [`Precision`]: the arithmetic of a backend's GEMM-shaped ops, and the roundings that define
//! it ([`round_tf32`], [`round_bf16`]), bit-exact with the device conversions that the
//! tensor-core kernels apply (kernels/mma.cuh: `cvt.rna.tf32.f32`, `cvt.rn.bf16x2.f32`).
//!
//! At `Tf32` or `Bf16` an op with tensor-core kernels rounds its GEMM operands (activations,
//! weights, output gradients) to that format and accumulates in fp32; everything else (bias
//! additions, the bias gradient, nonlinearities, losses, reductions, the optimizer and the fp32
//! master weights) stays fp32. The CPU backend implements the same rounding, so every
//! tensor-core kernel has a CPU twin of the same arithmetic: the products of two rounded
//! operands are exact in fp32 (at most 11 + 11 significant bits), so twin and kernel differ
//! only by the order of their fp32 additions. Today the ops that honour it are `masked_conv2d`
//! forward and backward (every pass) on both backends, and the Row LSTM / Diagonal LSTM
//! recurrences' state-to-state products (`cpu/lstm.rs`: states, state weight and gate
//! gradients rounded; cell, gates and nonlinearities fp32). On CUDA the fused recurrence with
//! the skew folded runs them on the tensor cores, the unfused one in rounded SIMT kernels; its
//! other paths refuse tf32/bf16 with [`Error::PrecisionUnsupported`] (one decision,
//! `cuda/lstm_precision.rs`); the other ops run fp32 at every precision (docs/ARCHITECTURE.md,
//! "Precision").

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The precision of the GEMM operands of the ops that have tensor-core kernels. Set on a
/// backend with [`crate::backend::Backend::set_precision`] (it holds for the backend and its
/// clones); fp32 unless set.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum Precision {
    /// Plain fp32 operands and arithmetic (the fp32 SIMT kernels on CUDA).
    #[default]
    #[serde(rename = "fp32")]
    #[value(name = "fp32")]
    Fp32,
    /// Operands rounded to TensorFloat-32 (8-bit exponent, 10 mantissa bits; round to nearest,
    /// ties away from zero), fp32 accumulation (`mma.m16n8k8 .tf32` on CUDA).
    #[serde(rename = "tf32")]
    #[value(name = "tf32")]
    Tf32,
    /// Operands rounded to bfloat16 (8-bit exponent, 7 mantissa bits; round to nearest even),
    /// fp32 accumulation (`mma.m16n8k16 .bf16` on CUDA).
    #[serde(rename = "bf16")]
    #[value(name = "bf16")]
    Bf16,
}

impl Precision {
    /// Every precision, fp32 first.
    pub const ALL: [Self; 3] = [Self::Fp32, Self::Tf32, Self::Bf16];

    /// `fp32`, `tf32` or `bf16` (the command line's and the checkpoint's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Tf32 => "tf32",
            Self::Bf16 => "bf16",
        }
    }

    /// `x` as a GEMM operand of this precision holds it.
    #[inline]
    pub fn round(self, x: f32) -> f32 {
        match self {
            Self::Fp32 => x,
            Self::Tf32 => round_tf32(x),
            Self::Bf16 => round_bf16(x),
        }
    }

    /// Every element of `xs` rounded ([`Precision::round`]).
    pub fn round_all(self, xs: &[f32]) -> Vec<f32> {
        xs.iter().map(|&x| self.round(x)).collect()
    }

    /// The code of [`Precision::from_code`] (a backend keeps its precision in an atomic).
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Fp32 => 0,
            Self::Tf32 => 1,
            Self::Bf16 => 2,
        }
    }

    /// The precision of [`Precision::code`]; fp32 for any other code.
    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => Self::Tf32,
            2 => Self::Bf16,
            _ => Self::Fp32,
        }
    }

    /// Relative L2 error of a GEMM output at this precision against the fp32 result, for
    /// operands of one sign-mixed magnitude: an upper estimate of what the rounding alone
    /// costs (half an ulp of the format per operand, two operands per product: 2^-11 for tf32,
    /// 2^-8 for bf16, with margin), e.g. the bound that a `--precision bf16` run's layer
    /// outputs stay within of the fp32 run's. fp32: the few-ulp tolerance of other summation
    /// orders ([`crate::parity::FP32_REL_TOL`]).
    pub fn rel_tol_vs_fp32(self) -> f64 {
        match self {
            Self::Fp32 => crate::parity::FP32_REL_TOL,
            Self::Tf32 => 5e-4,
            Self::Bf16 => 1e-2,
        }
    }
}

impl fmt::Display for Precision {
    /// [`Precision::name`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    /// `fp32`, `tf32` or `bf16`; a configuration error naming them otherwise.
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::Config(format!("precision `{s}`: expected fp32, tf32 or bf16")))
    }
}

/// `x` rounded to TensorFloat-32 as `cvt.rna.tf32.f32` does: to nearest, ties away from zero,
/// keeping 10 of fp32's 23 mantissa bits (the low 13 bits of the result are 0). Subnormals are
/// rounded like normals (a carry may make the smallest normal); finite values past the largest
/// tf32 round to infinity; infinities stay; a NaN stays a NaN (quiet, sign and top payload
/// bits kept).
#[inline]
pub fn round_tf32(x: f32) -> f32 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return f32::from_bits((u | 0x0040_0000) & 0xffff_e000);
    }
    // Half an ulp of tf32 added to the magnitude bits (the sign bit is untouched: the sum
    // cannot carry past the exponent of a finite value's magnitude), then truncated.
    f32::from_bits(u.wrapping_add(0x1000) & 0xffff_e000)
}

/// `x` rounded to bfloat16 (to nearest, ties to even) and widened back to fp32: the value a
/// bf16 operand holds, as `cvt.rn.bf16x2.f32` rounds (the `half` crate's conversion; a NaN
/// stays a quiet NaN).
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// tf32 keeps 10 mantissa bits: its ulp at 1.0 is 2^-10.
    const TF32_ULP: f32 = 1.0 / 1024.0;
    /// bf16 keeps 7: its ulp at 1.0 is 2^-7.
    const BF16_ULP: f32 = 1.0 / 128.0;

    #[test]
    fn tf32_rounds_to_nearest_with_ties_away_from_zero() {
        // Exactly representable values are unchanged.
        for v in [0.0f32, -0.0, 1.0, -2.5, 1.0 + TF32_ULP, 65504.0] {
            assert_eq!(round_tf32(v).to_bits(), v.to_bits(), "{v}");
        }
        // Below, at and above half an ulp above 1.0: down, away (up), up.
        assert_eq!(round_tf32(1.0 + 0.49 * TF32_ULP), 1.0);
        assert_eq!(round_tf32(1.0 + 0.5 * TF32_ULP), 1.0 + TF32_ULP);
        assert_eq!(round_tf32(1.0 + 0.51 * TF32_ULP), 1.0 + TF32_ULP);
        // A tie between an odd and an even neighbour also goes away from zero (not to even).
        assert_eq!(round_tf32(1.0 + 1.5 * TF32_ULP), 1.0 + 2.0 * TF32_ULP);
        assert_eq!(round_tf32(-(1.0 + 0.5 * TF32_ULP)), -(1.0 + TF32_ULP));
        // Rounding up carries into the exponent: the largest mantissa before 2.0 rounds to 2.
        assert_eq!(round_tf32(2.0 - 0.25 * TF32_ULP), 2.0);
        // Subnormals: the smallest subnormal (bits 1) rounds to 0; bits 0x1000 (a tie) away
        // from zero to 0x2000; the largest subnormal rounds up to the smallest normal.
        assert_eq!(round_tf32(f32::from_bits(1)).to_bits(), 0);
        assert_eq!(round_tf32(f32::from_bits(0x1000)).to_bits(), 0x2000);
        assert_eq!(
            round_tf32(f32::from_bits(0x007f_ffff)).to_bits(),
            0x0080_0000
        );
        // Past the largest tf32 (0x7f7fe000) halfway to the next step: infinity.
        assert_eq!(round_tf32(f32::MAX), f32::INFINITY);
        assert_eq!(round_tf32(-f32::MAX), f32::NEG_INFINITY);
        assert_eq!(
            round_tf32(f32::from_bits(0x7f7f_efff)).to_bits(),
            0x7f7f_e000
        );
        assert_eq!(round_tf32(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_tf32(f32::NEG_INFINITY), f32::NEG_INFINITY);
        // NaN (a signalling one with low payload bits only too) stays NaN.
        assert!(round_tf32(f32::NAN).is_nan());
        assert!(round_tf32(f32::from_bits(0x7f80_0001)).is_nan());
        assert!(round_tf32(f32::from_bits(0xff80_0001)).is_nan());
        // The low 13 bits of every finite result are 0.
        for i in 0..10_000u32 {
            let v = f32::from_bits(i.wrapping_mul(2_654_435_761) & 0x7f7f_ffff);
            let r = round_tf32(v);
            assert_eq!(r.to_bits() & 0x1fff, 0, "{v:e}");
            // Within half a tf32 ulp of its binade (normals; subnormals have a fixed step).
            if v.is_normal() && r.is_finite() {
                assert!((r - v).abs() <= v.abs() * TF32_ULP / 2.0, "{v:e} -> {r:e}");
            }
        }
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        for v in [0.0f32, -0.0, 1.0, -3.0, 1.0 + BF16_ULP] {
            assert_eq!(round_bf16(v).to_bits(), v.to_bits(), "{v}");
        }
        // Ties: 1 + ulp/2 goes down to the even 1.0; 1 + 3 ulp/2 up to the even 1 + 2 ulp.
        assert_eq!(round_bf16(1.0 + 0.5 * BF16_ULP), 1.0);
        assert_eq!(round_bf16(1.0 + 1.5 * BF16_ULP), 1.0 + 2.0 * BF16_ULP);
        assert_eq!(round_bf16(1.0 + 0.51 * BF16_ULP), 1.0 + BF16_ULP);
        assert_eq!(round_bf16(-(1.0 + 0.5 * BF16_ULP)), -1.0);
        // Subnormals: bits 0x8000 is a tie between 0 and 0x10000 (odd): to even, 0;
        // 0x18000 a tie between 0x10000 (odd) and 0x20000: up.
        assert_eq!(round_bf16(f32::from_bits(0x8000)).to_bits(), 0);
        assert_eq!(round_bf16(f32::from_bits(0x18000)).to_bits(), 0x20000);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
        assert_eq!(round_bf16(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert!(round_bf16(f32::NAN).is_nan());
        assert!(round_bf16(f32::from_bits(0x7f80_0001)).is_nan());
        for i in 0..10_000u32 {
            let v = f32::from_bits(i.wrapping_mul(2_654_435_761) & 0x7f7f_ffff);
            assert_eq!(round_bf16(v).to_bits() & 0xffff, 0, "{v:e}");
        }
    }

    #[test]
    fn names_parse_and_codes_round_trip() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(Precision::from_code(p.code()), p);
            assert_eq!(p.to_string(), p.name());
        }
        assert!(matches!("fp16".parse::<Precision>(), Err(Error::Config(_))));
        assert_eq!(Precision::default(), Precision::Fp32);
        assert_eq!(Precision::Fp32.round(1.0 + 1e-7), 1.0 + 1e-7);
        assert_eq!(
            Precision::Bf16.round_all(&[1.0 + 0.6 * BF16_ULP, 2.0]),
            [1.0 + BF16_ULP, 2.0]
        );
    }
}

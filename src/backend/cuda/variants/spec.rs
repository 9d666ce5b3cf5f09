//! Kernel versions named in text (`pixelrnn bench --kernels`, `pixelrnn profile --kernels`):
//! comma-separated `family=N` pairs over a selection, each family a field of [`Variants`] and
//! `N` its number (the kernel version, or for the layout and the persistent product the
//! numbers their `TryFrom<u32>` documents). Parsed here, once, for every command that takes
//! them; an unknown family or version is a configuration error naming it.

use super::{
    DiagLstm, DiagLstmLayout, LstmMma, LstmPersistentProduct, LstmWeight, LstmWeightFp32,
    MaskedConv2d, MaskedConv2dAt, MaskedConv2dMma, MaskedConv2dPack, MaskedConv2dWeight, RowLstm,
    Variants,
};
use crate::error::{Error, Result};

/// Sets one family of a selection from its number (the enum's `TryFrom<u32>`).
type Setter = fn(&mut Variants, u32) -> Result<()>;

/// `(field name, setter)` for each `field: Enum` of [`Variants`].
macro_rules! families {
    ($($field:ident: $enum:ident),+ $(,)?) => {
        [$((stringify!($field), (|v: &mut Variants, n: u32| -> Result<()> {
            v.$field = $enum::try_from(n)?;
            Ok(())
        }) as Setter)),+]
    };
}

/// Every family a spec may name, the fields of [`Variants`], with its setter.
const FAMILIES: [(&str, Setter); 12] = families!(
    masked_conv2d: MaskedConv2d,
    masked_conv2d_weight: MaskedConv2dWeight,
    masked_conv2d_at: MaskedConv2dAt,
    masked_conv2d_pack: MaskedConv2dPack,
    masked_conv2d_mma: MaskedConv2dMma,
    lstm_mma: LstmMma,
    diag_lstm_layout: DiagLstmLayout,
    row_lstm: RowLstm,
    diag_lstm: DiagLstm,
    lstm_weight: LstmWeight,
    lstm_weight_fp32: LstmWeightFp32,
    lstm_persistent_product: LstmPersistentProduct,
);

impl Variants {
    /// `self` with the versions `spec` names (`masked_conv2d=5,masked_conv2d_weight=3`); the
    /// families it does not name keep `self`'s. Whitespace around the pairs is allowed; an
    /// empty spec changes nothing. A pair without `=`, a family that is not a field, a family
    /// named twice, a number that does not parse or a version that does not exist is a
    /// configuration error naming the pair.
    pub fn with_spec(self, spec: &str) -> Result<Variants> {
        let mut v = self;
        let mut named: Vec<&str> = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |why: String| Error::Config(format!("kernel versions '{pair}': {why}"));
            let (family, number) = pair
                .split_once('=')
                .map(|(f, n)| (f.trim(), n.trim()))
                .ok_or_else(|| bad("expected family=N, e.g. masked_conv2d=5".into()))?;
            if named.contains(&family) {
                return Err(bad(format!("{family} is named twice")));
            }
            let n: u32 = number
                .strip_prefix('v')
                .unwrap_or(number)
                .parse()
                .map_err(|_| bad(format!("'{number}' is not a version number")))?;
            let Some((_, set)) = FAMILIES.iter().find(|(f, _)| *f == family) else {
                let all: Vec<&str> = FAMILIES.iter().map(|(f, _)| *f).collect();
                return Err(bad(format!(
                    "no kernel family '{family}' (the families: {})",
                    all.join(", ")
                )));
            };
            // The enum's own message (the versions there are), without its prefix.
            set(&mut v, n).map_err(|e| match e {
                Error::Config(m) | Error::Unsupported(m) => bad(m),
                e => bad(e.to_string()),
            })?;
            named.push(family);
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_sets_the_families_it_names_and_keeps_the_others() {
        let base = Variants::default();
        let v = base
            .with_spec(" masked_conv2d=5, masked_conv2d_weight=v3 ,lstm_weight_fp32=4")
            .unwrap();
        assert_eq!(v.masked_conv2d, MaskedConv2d::V5);
        assert_eq!(v.masked_conv2d_weight, MaskedConv2dWeight::V3);
        assert_eq!(v.lstm_weight_fp32, LstmWeightFp32::V4);
        let untouched = Variants {
            masked_conv2d: base.masked_conv2d,
            masked_conv2d_weight: base.masked_conv2d_weight,
            lstm_weight_fp32: base.lstm_weight_fp32,
            ..v
        };
        assert_eq!(untouched, base);
        assert_eq!(base.with_spec("").unwrap(), base);
        let v = base
            .with_spec("diag_lstm_layout=2,lstm_persistent_product=1,row_lstm=2,diag_lstm=3")
            .unwrap();
        assert_eq!(v.diag_lstm_layout, DiagLstmLayout::Materialised);
        assert_eq!(v.lstm_persistent_product, LstmPersistentProduct::Simt);
        assert_eq!((v.row_lstm, v.diag_lstm), (RowLstm::V2, DiagLstm::V3));
        // Every family in FAMILIES parses with its first version.
        for (family, _) in FAMILIES {
            let n = if family == "lstm_weight_fp32" { 2 } else { 1 };
            assert!(base.with_spec(&format!("{family}={n}")).is_ok(), "{family}");
        }
    }

    #[test]
    fn a_bad_spec_is_one_error_naming_the_pair() {
        let err = |spec: &str| match Variants::default().with_spec(spec) {
            Err(Error::Config(m)) => m,
            other => panic!("{spec}: {other:?}"),
        };
        assert_eq!(
            err("masked_conv2d=9"),
            "kernel versions 'masked_conv2d=9': masked_conv2d has kernel versions 1 to 5, \
             version 9 requested"
        );
        assert!(err("masked_conv2d").contains("expected family=N"));
        assert!(err("conv=2").contains("no kernel family 'conv'"));
        assert!(err("row_lstm=two").contains("'two' is not a version number"));
        assert!(err("row_lstm=2,row_lstm=3").contains("row_lstm is named twice"));
        assert!(err("diag_lstm_layout=3").contains("Diagonal LSTM layout 3 does not exist"));
    }
}

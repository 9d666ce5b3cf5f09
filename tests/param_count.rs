//! `ModelConfig::estimated_params` (src/models/param_count.rs) against the parameter count of
//! the built model (`Model::num_params`, the sum of every parameter tensor's elements), for
//! every model kind and multi-scale base, with and without class conditioning, binary and
//! 256-level data, C = 1 and 3, the logistic mixture, Row LSTM kernel widths 3 and 5, and
//! one layer and several (Gated PixelCNN's last layer has no residual 1x1).

use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::models::{Likelihood, Model, ModelConfig, ModelKind, MultiScaleConfig};

/// Every configuration under test, each with and without 10 classes.
fn configs() -> Vec<ModelConfig> {
    let kinds = [
        ModelKind::PixelCnn,
        ModelKind::RowLstm,
        ModelKind::DiagBiLstm,
        ModelKind::GatedPixelCnn,
    ];
    let mut out = Vec::new();
    for layers in [1, 3] {
        for (c, binary, likelihood) in [
            (1, true, Likelihood::Softmax),
            (3, false, Likelihood::Softmax),
            (3, false, Likelihood::LogisticMixture { mixtures: 2 }),
        ] {
            let plain = |kind| ModelConfig {
                likelihood,
                ..ModelConfig::plain(kind, (8, 8, c), binary, (layers, 3, 5))
            };
            for kind in kinds {
                out.push(plain(kind));
            }
            out.push(ModelConfig {
                row_kernel: 5,
                ..plain(ModelKind::RowLstm)
            });
            for base in [
                ModelKind::PixelCnn,
                ModelKind::RowLstm,
                ModelKind::DiagBiLstm,
            ] {
                for scale in [4, 2] {
                    out.push(ModelConfig {
                        multiscale: Some(MultiScaleConfig {
                            base,
                            scale,
                            cond_features: 2,
                        }),
                        ..plain(ModelKind::MultiScale)
                    });
                }
            }
        }
    }
    out.into_iter()
        .flat_map(|m| {
            [
                m.clone(),
                ModelConfig {
                    classes: Some(10),
                    ..m
                },
            ]
        })
        .collect()
}

#[test]
fn estimated_params_equals_the_built_models_count() {
    let cpu = CpuBackend::new();
    let configs = configs();
    assert_eq!(configs.len(), 2 * 2 * 3 * 11);
    for cfg in configs {
        let what = format!("{cfg:?}");
        let mut model =
            Model::new(&cpu, cfg.clone(), 1).unwrap_or_else(|e| panic!("{what}: build: {e}"));
        assert_eq!(cfg.estimated_params(), model.num_params() as u128, "{what}");
    }
}

/// The class tables are counted: K classes add exactly the tables' elements (by hand for a
/// PixelCNN of 2 layers, h = 3: input [K, 2h] and each layer's [K, h]).
#[test]
fn class_tables_add_their_elements() {
    let plain = ModelConfig::plain(ModelKind::PixelCnn, (8, 8, 1), true, (2, 3, 5));
    let with = ModelConfig {
        classes: Some(10),
        ..plain.clone()
    };
    assert_eq!(
        with.estimated_params() - plain.estimated_params(),
        10 * 6 + 2 * 10 * 3
    );
}

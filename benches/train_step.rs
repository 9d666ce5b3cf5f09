//! Criterion: one training step (forward, loss, backward, RMSProp) of every model on the CPU,
//! recurrent models with the fused and the unfused recurrence side by side.
//! Run with `cargo bench --bench train_step` (filter: `cargo bench --bench train_step -- row_lstm`).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::backend::Recurrence;
use pixelrnn::data::Images;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::optim::{OptimConfig, Optimizer};

struct Case {
    kind: ModelKind,
    name: &'static str,
    size: (usize, usize, usize),
    binary: bool,
    layers: usize,
    hidden: usize,
    head: usize,
}

const CASES: &[Case] = &[
    // The `pixelrnn train` default.
    Case {
        kind: ModelKind::PixelCnn,
        name: "default_28x28x1_bin_L7_h32",
        size: (28, 28, 1),
        binary: true,
        layers: 7,
        hidden: 32,
        head: 64,
    },
    // The 28x28 configuration of the CPU-speed comparison (issue 8).
    Case {
        kind: ModelKind::PixelCnn,
        name: "mnist_28x28x1_L7_h16",
        size: (28, 28, 1),
        binary: false,
        layers: 7,
        hidden: 16,
        head: 32,
    },
    Case {
        kind: ModelKind::PixelCnn,
        name: "cifar_32x32x3_L4_h32",
        size: (32, 32, 3),
        binary: false,
        layers: 4,
        hidden: 32,
        head: 64,
    },
    // The paper's binarized-MNIST Diagonal BiLSTM size, and a small RGB configuration.
    Case {
        kind: ModelKind::RowLstm,
        name: "mnist_28x28x1_L7_h16",
        size: (28, 28, 1),
        binary: false,
        layers: 7,
        hidden: 16,
        head: 32,
    },
    Case {
        kind: ModelKind::RowLstm,
        name: "cifar_32x32x3_L4_h32",
        size: (32, 32, 3),
        binary: false,
        layers: 4,
        hidden: 32,
        head: 64,
    },
    Case {
        kind: ModelKind::DiagBiLstm,
        name: "mnist_28x28x1_L7_h16",
        size: (28, 28, 1),
        binary: false,
        layers: 7,
        hidden: 16,
        head: 32,
    },
    Case {
        kind: ModelKind::DiagBiLstm,
        name: "cifar_32x32x3_L4_h32",
        size: (32, 32, 3),
        binary: false,
        layers: 4,
        hidden: 32,
        head: 64,
    },
];

fn train_step(c: &mut Criterion) {
    let backend = CpuBackend::new();
    let batch = 16;
    for case in CASES {
        let recurrences: &[Recurrence] = if case.kind == ModelKind::PixelCnn {
            &[Recurrence::Fused]
        } else {
            &[Recurrence::Fused, Recurrence::Unfused]
        };
        let mut group =
            c.benchmark_group(format!("{}_train_step", case.kind.name().replace('-', "_")));
        group.sample_size(10);
        let (h, w, ch) = case.size;
        let cfg = ModelConfig {
            kind: case.kind,
            height: h,
            width: w,
            channels: ch,
            binary: case.binary,
            layers: case.layers,
            hidden: case.hidden,
            head: case.head,
            row_kernel: 3,
            multiscale: None,
            likelihood: pixelrnn::models::Likelihood::Softmax,
            classes: None,
        };
        let mut model = Model::new(&backend, cfg.clone(), 0).unwrap();
        let hi = if case.binary { 2 } else { 256 };
        let pixels = (0..batch * cfg.dims())
            .map(|i| ((i * 7919) % hi) as u8)
            .collect();
        let images = Images::new(batch, h, w, ch, case.binary, pixels).unwrap();
        let idx: Vec<usize> = (0..batch).collect();
        let mut opt = Optimizer::new(OptimConfig {
            kind: pixelrnn::optim::OptimizerKind::RmsProp,
            ..OptimConfig::default()
        });
        let scale = 1.0 / (batch * cfg.dims()) as f32;
        group.throughput(Throughput::Elements(batch as u64));
        for &rec in recurrences {
            model.recurrence = rec;
            let id = match (case.kind, rec) {
                (ModelKind::PixelCnn, _) => format!("cpu/{}", case.name),
                (_, Recurrence::Fused) => format!("cpu_fused/{}", case.name),
                (_, Recurrence::Unfused) => format!("cpu_unfused/{}", case.name),
                (_, Recurrence::Persistent) => format!("cpu_persistent/{}", case.name),
            };
            group.bench_function(BenchmarkId::from_parameter(id), |bench| {
                bench.iter(|| {
                    let (x, t) = model.batch(&backend, &images, &idx).unwrap();
                    let (logits, cache) = model.forward(&backend, &x).unwrap();
                    let (_, dl) = model.loss(&backend, &logits, &t, scale).unwrap();
                    model.backward(&backend, cache, &dl, false).unwrap();
                    opt.step(&backend, model.params_mut()).unwrap();
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, train_step);
criterion_main!(benches);

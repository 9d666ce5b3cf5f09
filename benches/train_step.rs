//! Criterion: one PixelCNN training step (forward, loss, backward, optimizer) on the CPU.
//! Run with `cargo bench --bench train_step`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pixelrnn::backend::cpu::CpuBackend;
use pixelrnn::data::Images;
use pixelrnn::models::{Model, ModelConfig, ModelKind};
use pixelrnn::optim::{OptimConfig, Optimizer};

struct Case {
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
        name: "default_28x28x1_bin_L7_h32",
        size: (28, 28, 1),
        binary: true,
        layers: 7,
        hidden: 32,
        head: 64,
    },
    // The 28x28 configuration of the CPU-speed comparison (issue 8).
    Case {
        name: "mnist_28x28x1_L7_h16",
        size: (28, 28, 1),
        binary: false,
        layers: 7,
        hidden: 16,
        head: 32,
    },
    Case {
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
    let mut group = c.benchmark_group("pixelcnn_train_step");
    group.sample_size(10);
    for case in CASES {
        let (h, w, ch) = case.size;
        let cfg = ModelConfig {
            kind: ModelKind::PixelCnn,
            height: h,
            width: w,
            channels: ch,
            binary: case.binary,
            layers: case.layers,
            hidden: case.hidden,
            head: case.head,
            row_kernel: 3,
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
        group.bench_function(BenchmarkId::new("cpu", case.name), |bench| {
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

criterion_group!(benches, train_step);
criterion_main!(benches);

//! The counter regression gate (issue 16): one small training step of every model, by every
//! recurrence and Diagonal LSTM layout, profiled on the emulator with its memory counters
//! (`pixelrnn::profile`), compared kernel by kernel with the committed baseline
//! tests/baselines/emu_counters.tsv. A kernel whose global efficiency (byte-weighted or its
//! worst site) falls, or whose shared-memory conflict degree rises, fails the test; so does a
//! kernel that appears or disappears. The baseline changes only deliberately:
//!
//!     PIXELRNN_UPDATE_BASELINE=1 cargo test --release --test counter_gate
//!
//! rewrites it, and the commit that does says why.
//!
//! The counters are exact for a build, a shape and a block sample (no timing), so the gate is
//! deterministic.
//! The shape is `profile::GATE_CONFIG`; `pixelrnn profile --config gate` prints the same
//! steps' tables.

use std::path::PathBuf;

use pixelrnn::backend::cuda::{
    Arg, CudaBackend, EmuOptions, Emulator, Executor, LaunchCfg, LaunchCounters,
};
use pixelrnn::models::ModelKind;
use pixelrnn::profile::{
    self, BaselineEntry, GateFinding, StepProfile, Target, GATE_CONFIG, GATE_SAMPLE, H200,
    H200_LATENCY,
};

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/baselines/emu_counters.tsv")
}

fn backend() -> CudaBackend<Emulator> {
    let exec = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: false,
    })
    .expect("emulator")
    .with_counters(false);
    exec.set_block_sample(Some(GATE_SAMPLE));
    CudaBackend::new(exec)
}

fn profiles() -> Vec<StepProfile> {
    let be = backend();
    [
        ModelKind::PixelCnn,
        ModelKind::RowLstm,
        ModelKind::DiagBiLstm,
    ]
    .into_iter()
    .flat_map(Target::all_of)
    .map(|t| {
        profile::profile_step(&be, &GATE_CONFIG, t, &H200, &H200_LATENCY)
            .unwrap_or_else(|e| panic!("profiling {}: {e}", t.label()))
    })
    .collect()
}

#[test]
fn no_kernel_is_worse_than_the_committed_baseline() {
    let steps = profiles();
    let now: Vec<BaselineEntry> = steps.iter().flat_map(BaselineEntry::of_step).collect();
    let path = baseline_path();
    if std::env::var("PIXELRNN_UPDATE_BASELINE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, profile::write_baseline(&now)).expect("write the baseline");
        eprintln!(
            "counter gate: wrote {} ({} kernels)",
            path.display(),
            now.len()
        );
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "counter gate: cannot read {} ({e}); create it with \
             PIXELRNN_UPDATE_BASELINE=1 cargo test --release --test counter_gate",
            path.display()
        )
    });
    let base = profile::parse_baseline(&text).expect("parse the baseline");
    let findings = profile::compare(&base, &now);
    for f in findings.iter().filter(|f| !f.fails()) {
        eprintln!("counter gate: {f} (update the baseline to keep it)");
    }
    let failures: Vec<String> = findings
        .iter()
        .filter(|f| f.fails())
        .map(GateFinding::to_string)
        .collect();
    assert!(
        failures.is_empty(),
        "counter gate: {} finding(s) against {}:\n{}\n(if the change is deliberate, update the \
         baseline with PIXELRNN_UPDATE_BASELINE=1 cargo test --release --test counter_gate and \
         say why in the commit)",
        failures.len(),
        path.display(),
        failures.join("\n")
    );
    // Every step of the gate is in the baseline: a step that profiled nothing would pass
    // vacuously.
    for s in &steps {
        assert!(
            base.iter().any(|b| b.step == s.target),
            "counter gate: the baseline has no entries for {}",
            s.target
        );
        assert!(!s.kernels.is_empty(), "{}: no kernels counted", s.target);
    }
}

/// One launch of selftest_count_load_v1 (`y[i] = x[i * stride]`) on 4 warps.
fn strided_load(stride: i32) -> Vec<LaunchCounters> {
    let e = Emulator::new(EmuOptions::default())
        .expect("emulator")
        .with_counters(true);
    let n = 128usize;
    let xlen = ((n - 1) * stride as usize + 1).next_multiple_of(32);
    let mut x = e.alloc(xlen).expect("alloc");
    e.upload_into(&mut x, &vec![1.0; xlen]).expect("upload");
    let y = e.alloc(n).expect("alloc");
    e.launch(
        "selftest_count_load_v1",
        &LaunchCfg::linear(1, n as u32),
        &[Arg::Buf(&x), Arg::Buf(&y), Arg::I32(stride), Arg::I32(0)],
    )
    .expect("launch");
    e.take_counters()
}

/// The gate's comparison catches a kernel that stops coalescing: the same kernel with a
/// stride-32 load against a baseline taken at stride 1.
#[test]
fn the_gate_fails_a_kernel_that_stops_coalescing() {
    let as_step = |launches: Vec<LaunchCounters>| StepProfile {
        target: "selftest".into(),
        config: GATE_CONFIG.name.into(),
        shape: String::new(),
        roofline: H200,
        latency: H200_LATENCY,
        kernels: profile::summarize(&launches, &H200, &H200_LATENCY, &profile::H200_SM),
        launches: launches.len() as u64,
        host_syncs: 0,
        flops: 0,
        compulsory_bytes: 0,
        estimate_s: 0.0,
        modelled_s: 0.0,
        nll_per_image: None,
        sample_blocks: None,
    };
    let good = BaselineEntry::of_step(&as_step(strided_load(1)));
    let bad = BaselineEntry::of_step(&as_step(strided_load(32)));
    assert_eq!(good.len(), 1);
    // Coalesced: load and store both 4 sectors per request, efficiency 1.
    assert_eq!(good[0].efficiency, Some(1.0));
    let findings = profile::compare(&good, &bad);
    assert!(
        findings.iter().any(|f| matches!(
            f,
            GateFinding::Worse {
                metric: "efficiency",
                ..
            }
        )) && findings.iter().all(GateFinding::fails),
        "{findings:?}"
    );
    // The stride-32 load: 32 sectors for 128 bytes, 1/8; the coalesced store pulls the
    // byte-weighted figure up to (128 + 128) / (1024 + 128).
    let eff = bad[0].efficiency.unwrap();
    assert!((eff - 256.0 / 1152.0).abs() < 1e-9, "{eff}");
    assert_eq!(bad[0].worst_efficiency, Some(0.125));
}

/// The profile's FLOPs, summed from the launches' host-side formulas (`LaunchCfg::flops`),
/// equal the bench's independent count of a training step (`bench::step_flops`, the counts
/// of docs/benchmarks.md) exactly for PixelCNN and the fused recurrences; a training step
/// synchronises with the host twice (the loss with its target check, the gradient norm), not
/// once per parameter; and the optimizer update and the norm are one launch each over every
/// parameter (the multi-tensor kernels), not one per tensor.
#[test]
fn profile_flops_match_the_step_count_and_syncs_are_few() {
    let be = backend();
    for kind in [
        ModelKind::PixelCnn,
        ModelKind::RowLstm,
        ModelKind::DiagBiLstm,
    ] {
        let t = Target::all_of(kind)[0];
        assert!(matches!(
            t.recurrence,
            None | Some(pixelrnn::backend::Recurrence::Fused)
        ));
        let p = profile::profile_step(&be, &GATE_CONFIG, t, &H200, &H200_LATENCY).expect("profile");
        let (_, want) = pixelrnn::bench::step_flops(&GATE_CONFIG.model(kind), GATE_CONFIG.batch)
            .expect("step flops");
        assert_eq!(p.flops as f64, want, "{}", p.target);
        assert_eq!(p.host_syncs, 2, "{}", p.target);
        let launches_of = |prefix: &str| -> u64 {
            p.kernels
                .iter()
                .filter(|k| k.kernel.starts_with(prefix))
                .map(|k| k.launches)
                .sum()
        };
        assert_eq!(launches_of("optim_"), 1, "{}", p.target);
        assert_eq!(launches_of("reduce_sum_squares"), 1, "{}", p.target);
        assert_eq!(launches_of("elementwise_scale"), 0, "{}", p.target);
        assert_eq!(
            p.kernels.iter().map(|k| k.launches).sum::<u64>(),
            p.launches,
            "{}",
            p.target
        );
    }
}

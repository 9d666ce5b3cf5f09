//! The convolution kernels' memory counters on the emulator (issue 17's design targets):
//! the weight gradient's and v3's passes at the PixelCNN body's 3x3 mask-B 128 -> 128 layer
//! meet their efficiency, conflict and FLOPs-per-word targets, and (ignored, a measurement)
//! the tables of docs/kernels.md at the layer shape. [`conv_counters_at`] and the targets'
//! check [`assert_coalesced_and_conflict_free`] also serve conv_mma.rs.

use pixelrnn::backend::cuda::{
    CudaBackend, EmuOptions, Emulator, MaskedConv2d, MaskedConv2dWeight, Variants,
};
use pixelrnn::backend::{Backend, ConvSpec, Mask, Precision};

use crate::pair;

/// What the emulator's memory counters show of one launch.
pub(crate) struct KernelCounters {
    pub(crate) kernel: String,
    /// Byte-weighted global efficiency: distinct bytes over sector bytes, all global sites.
    pub(crate) efficiency: f64,
    /// Global sectors per request over all global sites.
    pub(crate) sectors_per_request: f64,
    /// The worst shared site's wavefronts over its conflict-free minimum.
    pub(crate) shared_excess: f64,
    /// The worst shared site's mean conflict degree.
    pub(crate) shared_degree: f64,
    /// Shared words loaded: by every site, and by the 16-byte (float4) sites alone.
    pub(crate) shared_words: u64,
    pub(crate) float4_words: u64,
    /// Distinct bytes read and written.
    pub(crate) compulsory_bytes: u64,
}

/// Which pass of a layer [`conv_counters`] runs.
#[derive(Clone, Copy)]
pub(crate) enum Pass {
    /// `masked_conv2d_forward`.
    Forward,
    /// `masked_conv2d_backward` with dx (the input-gradient launches are kept).
    Data,
    /// `masked_conv2d_backward` without dx (the weight and bias gradient).
    Weight,
}

/// [`conv_counters_at`] at fp32.
fn conv_counters(
    map: [usize; 3],
    cin: usize,
    cout: usize,
    spec: &ConvSpec,
    variants: Variants,
    pass: Pass,
) -> Vec<KernelCounters> {
    conv_counters_at(map, cin, cout, spec, variants, pass, Precision::Fp32)
}

/// Runs one pass of one layer (x [n, h, w, cin], dy [n, h, w, cout], `spec`) under `variants`
/// at `precision` on an emulator with counters on, prints every site of the pass's launches,
/// and sums up each launch.
pub(crate) fn conv_counters_at(
    [n, h, w]: [usize; 3],
    cin: usize,
    cout: usize,
    spec: &ConvSpec,
    variants: Variants,
    pass: Pass,
    precision: Precision,
) -> Vec<KernelCounters> {
    use pixelrnn::backend::cuda::{AccessOp, MemSpace};
    let exec = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: false,
    })
    .expect("emulator")
    .with_counters(true);
    let gpu = CudaBackend::new(exec);
    let _selected = gpu.select(variants);
    gpu.set_precision(precision);
    let (_, x) = pair(&gpu, &[n, h, w, cin], 1, 1.0);
    let (_, wt) = pair(&gpu, &[cout, cin, spec.kh, spec.kw], 2, 0.5);
    let (_, b) = pair(&gpu, &[cout], 4, 0.5);
    let (_, dy) = pair(&gpu, &[n, h, w, cout], 3, 1.0);
    gpu.executor().take_counters();
    let data_pass = |k: &str| k.contains("bwd_data") || k.contains("pack_transposed");
    match pass {
        Pass::Forward => drop(
            gpu.masked_conv2d_forward(&x, &wt, &b, spec)
                .expect("forward"),
        ),
        Pass::Data | Pass::Weight => drop(
            gpu.masked_conv2d_backward(&x, &wt, &dy, spec, matches!(pass, Pass::Data))
                .expect("backward"),
        ),
    }
    let mut out = Vec::new();
    for c in gpu.executor().take_counters() {
        if matches!(pass, Pass::Data) != data_pass(&c.kernel) {
            continue;
        }
        let global: Vec<_> = c
            .sites
            .iter()
            .filter(|s| s.space == MemSpace::Global)
            .collect();
        let shared: Vec<_> = c
            .sites
            .iter()
            .filter(|s| s.space == MemSpace::Shared)
            .collect();
        let unique: u64 = global.iter().map(|s| s.unique_bytes).sum();
        let sectors: u64 = global.iter().map(|s| s.sectors).sum();
        let requests: u64 = global.iter().map(|s| s.requests).sum();
        let loads = shared.iter().filter(|s| s.op == AccessOp::Load);
        let k = KernelCounters {
            kernel: c.kernel.clone(),
            efficiency: unique as f64 / (32 * sectors).max(1) as f64,
            sectors_per_request: sectors as f64 / requests.max(1) as f64,
            shared_excess: shared
                .iter()
                .map(|s| s.excess_wavefronts())
                .fold(0.0, f64::max),
            shared_degree: shared
                .iter()
                .map(|s| s.conflict_degree())
                .fold(0.0, f64::max),
            shared_words: loads.clone().map(|s| s.bytes / 4).sum(),
            float4_words: loads
                .filter(|s| s.access_bytes == 16)
                .map(|s| s.bytes / 4)
                .sum(),
            compulsory_bytes: c.compulsory_bytes(),
        };
        println!(
            "{} grid {:?}: compulsory {} B, global efficiency {:.3} ({:.2} sectors/request), \
             shared: worst excess {:.2}, worst degree {:.2}, {} words loaded ({} by float4)",
            k.kernel,
            c.grid,
            k.compulsory_bytes,
            k.efficiency,
            k.sectors_per_request,
            k.shared_excess,
            k.shared_degree,
            k.shared_words,
            k.float4_words
        );
        for s in &c.sites {
            println!(
                "  site {} {:?} {:?} {} B: {} requests, {:.1} lanes, {:.2} sectors/request, \
                 efficiency {:.3}, conflict {:.2} (excess {:.2}, max {})",
                s.index,
                s.space,
                s.op,
                s.access_bytes,
                s.requests,
                s.lanes_per_request(),
                s.sectors_per_request(),
                s.efficiency(),
                s.conflict_degree(),
                s.excess_wavefronts(),
                s.max_conflict
            );
        }
        out.push(k);
    }
    out
}

/// [`conv_counters`] of the weight gradient under `weight`.
fn weight_counters(
    map: [usize; 3],
    cin: usize,
    cout: usize,
    spec: &ConvSpec,
    weight: MaskedConv2dWeight,
) -> Vec<KernelCounters> {
    let variants = Variants {
        masked_conv2d_weight: weight,
        ..Variants::default()
    };
    conv_counters(map, cin, cout, spec, variants, Pass::Weight)
}

/// The issue 17 targets every kernel of these tests is held to: >= 80 % byte-weighted global
/// efficiency, and no shared site at more than 2x its conflict-free wavefronts. `what` names
/// the kernel in the messages.
pub(crate) fn assert_coalesced_and_conflict_free(k: &KernelCounters, what: &str) {
    assert!(
        k.efficiency >= 0.8,
        "{what} global efficiency {}",
        k.efficiency
    );
    assert!(
        k.shared_excess <= 2.0,
        "{what} shared excess {}",
        k.shared_excess
    );
}

/// One row of docs/kernels.md's counter tables for launch `k` of a pass of `flops` FLOPs;
/// `float4` names the FLOPs-per-word column of the 16-byte sites ("inner loop", "float4").
fn print_table_row(k: &KernelCounters, flops: f64, float4: &str) {
    let per_word = |w: u64| if w > 0 { flops / w as f64 } else { 0.0 };
    println!(
        "| {} | {:.3} | {:.2} | {:.2} ({:.2} of ideal) | {:.3} ({:.3} {float4}) | {} |",
        k.kernel,
        k.efficiency,
        k.sectors_per_request,
        k.shared_degree,
        k.shared_excess,
        per_word(k.shared_words),
        per_word(k.float4_words),
        k.compulsory_bytes
    );
}

/// The weight gradient's design targets, as the counters show them (issue 17) at the
/// PixelCNN body's 3x3 mask-B 128 -> 128 layer on a small map (the per-site ratios depend on
/// the channel counts, not the map): v2's and v3's GEMM pass at >= 80 % byte-weighted global
/// efficiency, shared loads at most 2x their conflict-free wavefronts, >= 8 FLOPs per shared
/// word loaded, and its reduction coalesced too. (v1's one 4-byte value per sector is
/// tests/emu_counters.rs's; at this shape its 147 456 blocks take a minute to emulate.)
#[test]
fn masked_conv2d_weight_grad_counters_meet_the_targets() {
    let (cin, cout) = (128, 128);
    let spec = ConvSpec::new(3, 3, Mask::B, 3, cin, cout);
    let map = [1, 8, 8];
    let positions = 64.0;
    let flops = 2.0 * positions * (spec.taps().len() * cin * cout) as f64;
    let mut v2_bytes = None;
    for version in [MaskedConv2dWeight::V2, MaskedConv2dWeight::V3] {
        let launches = weight_counters(map, cin, cout, &spec, version);
        let names: Vec<&str> = launches.iter().map(|k| k.kernel.as_str()).collect();
        let kernel = format!("masked_conv2d_bwd_weight_v{}", version.number());
        assert_eq!(
            names,
            [kernel.as_str(), "masked_conv2d_bwd_weight_reduce_v1"]
        );
        let gemm = &launches[0];
        assert_coalesced_and_conflict_free(gemm, &kernel);
        // The inner loop's float4 reads: 16 words per 64 FMAs. (The bias sums add 4 scalar
        // reads per bias block: v2's hand-over after the loop; v3's bias blocks also read
        // back their own copies of dy, 4 words per thread per chunk.)
        let per_word = flops / gemm.float4_words as f64;
        println!(
            "{kernel}: {per_word:.3} FLOPs per shared word loaded in the inner loop, {:.4} \
             over the kernel",
            flops / gemm.shared_words as f64
        );
        assert!(
            per_word >= 8.0,
            "{kernel}: {per_word} FLOPs per shared word"
        );
        assert_coalesced_and_conflict_free(&launches[1], "reduction");
        // v3 copies what v2 loads: the same distinct bytes.
        let bytes = *v2_bytes.get_or_insert(gemm.compulsory_bytes);
        assert_eq!(gemm.compulsory_bytes, bytes, "{kernel}: distinct bytes");
    }
}

/// fwd and bwd_data v3, v4 (v3's GEMM at two blocks per SM) and v5 (its cp.async pipeline,
/// whose copies are counted where they are issued) against the same targets at the same layer
/// (their K loops read float4 from shared memory too: 16 words per 64 FMAs), v2 below them on
/// FLOPs per word.
#[test]
fn masked_conv2d_v3_counters_meet_the_targets() {
    let (cin, cout) = (128, 128);
    let spec = ConvSpec::new(3, 3, Mask::B, 3, cin, cout);
    // 128 positions: one whole 128-position tile.
    let map = [2, 8, 8];
    let flops = 2.0 * 128.0 * (spec.taps().len() * cin * cout) as f64;
    for (pass, kernel, version) in [
        (Pass::Forward, "masked_conv2d_fwd_v3", MaskedConv2d::V3),
        (Pass::Data, "masked_conv2d_bwd_data_v3", MaskedConv2d::V3),
        (Pass::Forward, "masked_conv2d_fwd_v4", MaskedConv2d::V4),
        (Pass::Data, "masked_conv2d_bwd_data_v4", MaskedConv2d::V4),
        (Pass::Forward, "masked_conv2d_fwd_v5", MaskedConv2d::V5),
        (Pass::Data, "masked_conv2d_bwd_data_v5", MaskedConv2d::V5),
    ] {
        let variants = Variants {
            masked_conv2d: version,
            ..Variants::default()
        };
        let launches = conv_counters(map, cin, cout, &spec, variants, pass);
        let k = launches
            .iter()
            .find(|k| k.kernel == kernel)
            .unwrap_or_else(|| panic!("no {kernel} launch"));
        assert_coalesced_and_conflict_free(k, kernel);
        let per_word = flops / k.float4_words as f64;
        assert!(
            per_word >= 8.0,
            "{kernel}: {per_word} FLOPs per shared word"
        );
        let all_words = flops / k.shared_words as f64;
        assert!(
            all_words >= 8.0,
            "{kernel}: {all_words} FLOPs per shared word"
        );
        // bwd_data's weight transpose is coalesced both ways too.
        if matches!(pass, Pass::Data) {
            let p = launches
                .iter()
                .find(|k| k.kernel == "masked_conv2d_pack_transposed_v1")
                .expect("bwd_data v3, v4 and v5 pack their weights");
            assert_coalesced_and_conflict_free(p, "pack_transposed");
        }
    }
}

/// The same at the layer shape of docs/kernels.md (3x3 mask B, 128 -> 128, n 2, 32 x 32):
/// prints the tables (`cargo test --release --test cuda -- --ignored --nocapture
/// weight_grad_counters_at_layer_shape`); v1 takes minutes on the emulator.
#[test]
#[ignore = "measurement for docs/kernels.md: minutes on the emulator"]
fn masked_conv2d_weight_grad_counters_at_layer_shape() {
    let (cin, cout) = (128, 128);
    let spec = ConvSpec::new(3, 3, Mask::B, 3, cin, cout);
    let map = [2, 32, 32];
    let flops = 2.0 * 2048.0 * (spec.taps().len() * cin * cout) as f64;
    for weight in MaskedConv2dWeight::ALL {
        let t0 = std::time::Instant::now();
        for k in weight_counters(map, cin, cout, &spec, weight) {
            print_table_row(&k, flops, "inner loop");
        }
        println!("{weight}: {:.1} s", t0.elapsed().as_secs_f64());
    }
    for version in [
        MaskedConv2d::V2,
        MaskedConv2d::V3,
        MaskedConv2d::V4,
        MaskedConv2d::V5,
    ] {
        let variants = Variants {
            masked_conv2d: version,
            ..Variants::default()
        };
        for pass in [Pass::Forward, Pass::Data] {
            for k in conv_counters(map, cin, cout, &spec, variants, pass) {
                print_table_row(&k, flops, "float4");
            }
        }
    }
}

//! A measurement, not a check: the emulator's memory counters of the recurrence kernels at
//! the size of issue 17's table (docs/kernels.md), `recurrence_counters` (ignored; see its
//! doc for the command).

use pixelrnn::backend::cuda::{Emulator, Executor};

use crate::random;

/// The memory counters of the recurrence kernels, v1, v2 and v3 (backward only), at the size of issue 17's
/// table: h = 128, a 32 x 32 map, n = 2, one step (Row LSTM row 16, Diagonal LSTM
/// anti-diagonal 31, the longest), launched directly so that only that step is emulated;
/// the weight gradients (one launch for the whole map) on n = 1, 4 x 32 for v1 (one thread
/// per weight element loops over every position: its per-request pattern does not depend on
/// the map) and both sizes for v2. Prints one markdown row per kernel: global requests,
/// sectors/request and efficiency over all global sites (byte-weighted), the worst site's
/// efficiency, shared requests and mean conflict degree. A measurement, not a check:
/// `cargo test --release --test cuda -- --ignored --nocapture recurrence_counters`.
#[test]
#[ignore = "measurement (minutes on the emulator): prints the counters table of docs/kernels.md"]
fn recurrence_counters() {
    use pixelrnn::backend::cuda::{AccessOp, Arg, EmuOptions, LaunchCfg, LaunchCounters, MemSpace};
    let emu = Emulator::new(EmuOptions {
        seed: 1,
        workers: 2,
        bounds_check: false,
    })
    .expect("emulator")
    .with_counters(true);
    let buf = |data: &[f32]| {
        let mut b = emu.alloc(data.len()).expect("alloc");
        emu.upload_into(&mut b, data).expect("upload");
        b
    };
    let linear = |elements: usize| LaunchCfg::for_elements(elements, 256, 65_535);
    // v2: 16 positions x 32 units per block; v3 (the backward step kernels): x 128 units.
    let tiles = |n: usize, len: usize, hd: usize, units: usize| LaunchCfg {
        grid: [(n * len.div_ceil(16)) as u32, hd.div_ceil(units) as u32, 1],
        block: [128, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    let report = |c: &LaunchCounters| {
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
        let sum = |v: &[&pixelrnn::backend::cuda::SiteCounters],
                   f: fn(&pixelrnn::backend::cuda::SiteCounters) -> u64| {
            v.iter().map(|s| f(s)).sum::<u64>()
        };
        let (req, sec, uniq) = (
            sum(&global, |s| s.requests),
            sum(&global, |s| s.sectors),
            sum(&global, |s| s.unique_bytes),
        );
        let worst = global
            .iter()
            .filter(|s| s.op != AccessOp::Atomic)
            .map(|s| s.efficiency())
            .fold(1.0f64, f64::min);
        let (sreq, swave) = (sum(&shared, |s| s.requests), sum(&shared, |s| s.wavefronts));
        let heaviest = global.iter().max_by_key(|s| s.sectors).map(|s| {
            format!(
                "{:?} {} B: {:.1} sectors/req, {:.3}",
                s.op,
                s.access_bytes,
                s.sectors_per_request(),
                s.efficiency()
            )
        });
        println!(
            "| `{}` | {}x{}x{} / {} | {} | {:.2} | {:.3} | {:.3} | {} | {} | {} | {} |",
            c.kernel,
            c.grid[0],
            c.grid[1],
            c.grid[2],
            c.block[0],
            req,
            sec as f64 / req.max(1) as f64,
            uniq as f64 / (32 * sec).max(1) as f64,
            worst,
            heaviest.unwrap_or_default(),
            sreq,
            if sreq == 0 {
                "-".to_string()
            } else {
                format!("{:.2}", swave as f64 / sreq as f64)
            },
            c.compulsory_bytes(),
        );
    };
    println!(
        "| kernel | grid / block | global requests | sectors/request | efficiency (byte-weighted) \
         | worst site | heaviest site | shared requests | conflict degree | compulsory bytes |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");

    let (n, hh, ww, hd, k) = (2usize, 32usize, 32usize, 128usize, 3usize);
    let g4 = 4 * hd;
    let map = |f: usize, seed: u64| buf(&random(seed, n * hh * ww * f, 1.0));
    let ints = |v: &[usize]| v.iter().map(|&x| Arg::I32(x as i32)).collect::<Vec<_>>();
    for diagonal in [false, true] {
        let taps = if diagonal { 2 } else { k };
        let wlen = g4 * hd * taps;
        let w = buf(&random(700, wlen, 0.1));
        let (is, h, c, gates, dh, dc, d_is, dhc) = (
            map(g4, 701),
            map(hd, 702),
            map(hd, 703),
            map(g4, 704),
            map(hd, 705),
            map(hd, 706),
            map(g4, 707),
            map(hd, 708),
        );
        let mut packed = [
            emu.alloc(wlen).expect("alloc"),
            emu.alloc(wlen).expect("alloc"),
        ];
        for (t, p) in packed.iter_mut().enumerate() {
            let args = [Arg::Buf(&w), Arg::Buf(p)]
                .into_iter()
                .chain(ints(&[hd, taps, t]))
                .collect::<Vec<_>>();
            emu.launch("lstm_pack_ss_v2", &linear(wlen), &args)
                .expect("pack");
        }
        let scan = if diagonal { "diag_lstm" } else { "row_lstm" };
        // One step: row 16 / anti-diagonal 31 (32 positions per image either way).
        let (step, len) = if diagonal {
            (31usize, 32usize)
        } else {
            (16, ww)
        };
        let mut tail = vec![n, hh, ww, hd];
        if !diagonal {
            tail.push(k);
        }
        tail.push(step);
        for v in [1u32, 2, 3] {
            if diagonal && pixelrnn::kernels::signature(&format!("{scan}_step_bwd_v{v}")).is_none()
            {
                continue;
            }
            let wf = if v == 1 { &w } else { &packed[0] };
            let wb = if v == 1 { &w } else { &packed[1] };
            let cfg = |elements: usize| match v {
                1 => linear(elements),
                2 => tiles(n, len, hd, 32),
                _ => tiles(n, len, hd, 128),
            };
            let run = |name: &str, bufs: Vec<Arg<'_, Emulator>>, cfg: LaunchCfg| {
                let args: Vec<_> = bufs.into_iter().chain(ints(&tail)).collect();
                emu.launch(&format!("{scan}_{name}_v{v}"), &cfg, &args)
                    .expect(name);
            };
            // v3 has backward step kernels only (its forward is v2's).
            if v < 3 {
                run(
                    "step_fwd",
                    vec![
                        Arg::Buf(&is),
                        Arg::Buf(wf),
                        Arg::Buf(&h),
                        Arg::Buf(&c),
                        Arg::Buf(&gates),
                    ],
                    cfg(n * len * hd),
                );
            }
            run(
                "step_bwd",
                vec![
                    Arg::Buf(wb),
                    Arg::Buf(&gates),
                    Arg::Buf(&c),
                    Arg::Buf(&dh),
                    Arg::Buf(&dc),
                    Arg::Buf(&d_is),
                ],
                cfg(n * len * hd),
            );
            if v < 3 {
                run(
                    "ss_fwd",
                    vec![Arg::Buf(&is), Arg::Buf(wf), Arg::Buf(&h), Arg::Buf(&gates)],
                    cfg(n * len * g4),
                );
            }
            run(
                "ss_bwd_data",
                vec![Arg::Buf(wb), Arg::Buf(&d_is), Arg::Buf(&dhc)],
                cfg(n * len * hd),
            );
        }
        // The weight gradients: v1 on n = 1, 4 x 32; v2 on that and on the whole map.
        let dw = emu.alloc(wlen).expect("alloc");
        let small = [1usize, 4, 32, hd];
        let mut v1_tail = small.to_vec();
        if !diagonal {
            v1_tail.push(k);
        }
        let args: Vec<_> = [Arg::Buf(&h), Arg::Buf(&d_is), Arg::Buf(&dw)]
            .into_iter()
            .chain(ints(&v1_tail))
            .collect();
        emu.launch(&format!("{scan}_ss_bwd_weight_v1"), &linear(wlen), &args)
            .expect("weight v1");
        for [nn, h2, w2] in [[1usize, 4, 32], [n, hh, ww]] {
            let positions = nn * h2 * w2;
            let (mt, nt) = (g4.div_ceil(64), (taps * hd).div_ceil(64));
            let splits_chunk = weight_split(positions, mt * nt);
            let partial = emu
                .alloc(splits_chunk.0 * mt * 64 * nt * 64)
                .expect("alloc");
            let cfg = LaunchCfg {
                grid: [nt as u32, mt as u32, splits_chunk.0 as u32],
                block: [64, 1, 1],
                shared_bytes: 0,
                cluster: [1, 1, 1],
                flops: 0,
            };
            let args: Vec<_> = [Arg::Buf(&h), Arg::Buf(&d_is), Arg::Buf(&partial)]
                .into_iter()
                .chain(ints(&[
                    nn,
                    h2,
                    w2,
                    hd,
                    taps,
                    usize::from(diagonal),
                    splits_chunk.1,
                ]))
                .collect();
            emu.launch("lstm_ss_bwd_weight_v2", &cfg, &args)
                .expect("weight v2");
            let args: Vec<_> = [Arg::Buf(&partial), Arg::Buf(&dw)]
                .into_iter()
                .chain(ints(&[hd, taps, splits_chunk.0, mt * 64, nt * 64]))
                .collect();
            emu.launch("lstm_ss_bwd_weight_sum_v2", &linear(wlen), &args)
                .expect("weight sum");
        }
        for c in emu.take_counters() {
            report(&c);
        }
    }
}

/// The host's split of the weight gradient GEMM (`weight_grad_split` in
/// src/backend/cuda/lstm_weight.rs), restated for the direct launches of `recurrence_counters`.
fn weight_split(positions: usize, tiles: usize) -> (usize, usize) {
    let by_size = positions.div_ceil(256).max(1);
    let by_grid = 264usize.div_ceil(tiles.max(1)).max(1);
    let want = by_size.min(by_grid).min(65_535);
    let chunk = positions.div_ceil(want).next_multiple_of(16).max(16);
    (positions.div_ceil(chunk).max(1), chunk)
}

//! The cases, float64 reference and launcher shared by the recurrences' weight gradient tests
//! (tests/cuda/lstm_weight.rs at fp32, tests/cuda/lstm_mma_weight.rs at tf32 / bf16): shapes
//! ragged against every tile (h = 3, 9, 17, 40 and 128; one image; K = 15, 20, 77 ..), both
//! scans, a reference whose gather is written from the scans' definitions ((row, column)
//! coordinates, not the kernels' `p - back`), and a launcher that NaN-poisons the partials
//! and dw.

use pixelrnn::backend::cuda::{Arg, EmuOptions, Emulator, Executor, LaunchCfg};
use pixelrnn::profile::{summarize, H200, H200_LATENCY, H200_SM};

/// One weight gradient: the scan (`k`: the Row LSTM's kernel width; `None`: Diagonal), images
/// and map, hidden units, and the split's chunk of positions (a multiple of 16).
#[derive(Clone, Copy)]
pub(crate) struct Case {
    pub(crate) k: Option<usize>,
    pub(crate) n: usize,
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) hidden: usize,
    pub(crate) chunk: usize,
}

pub(crate) fn cases() -> Vec<Case> {
    let row = |k, n, height, width, hidden, chunk| Case {
        k: Some(k),
        n,
        height,
        width,
        hidden,
        chunk,
    };
    let diag = |n, height, width, hidden, chunk| Case {
        k: None,
        n,
        height,
        width,
        hidden,
        chunk,
    };
    vec![
        // One image, K = 15 (less than one chunk of 16), h = 3.
        row(3, 1, 3, 5, 3, 16),
        // h = 17 with k = 5 (N = 85), K = 2 x 4 x 7 = 56 in splits of 32 (the last 24).
        row(5, 2, 4, 7, 17, 32),
        // h = 128 (cifar-large): M = 512 (4 row tiles), N = 384 (6 column tiles), K = 77.
        row(3, 1, 7, 11, 128, 48),
        // The Diagonal LSTM: h = 9, K = 40 in splits of 16 (the last 8).
        diag(2, 5, 4, 9, 16),
        // h = 40 (not a multiple of 16 or 32), one image, K = 42.
        diag(1, 6, 7, 40, 32),
        // h = 128, K = 2 x 4 x 6 = 48 in one split.
        diag(2, 4, 6, 128, 64),
    ]
}

impl Case {
    pub(crate) fn taps(&self) -> usize {
        self.k.unwrap_or(2)
    }

    pub(crate) fn positions(&self) -> usize {
        self.n * self.height * self.width
    }

    pub(crate) fn what(&self) -> String {
        match self.k {
            Some(k) => format!(
                "row_lstm k={k} n={} {}x{} h={}",
                self.n, self.height, self.width, self.hidden
            ),
            None => format!(
                "diag_lstm n={} {}x{} h={}",
                self.n, self.height, self.width, self.hidden
            ),
        }
    }

    /// The pixel tap `t` of position (img, r, j) reads, if inside the map: Row, the previous
    /// row at columns j - k/2 .. j + k/2; Diagonal, the pixel above (t = 0) and the one to the
    /// left (t = 1).
    pub(crate) fn source(&self, img: usize, r: usize, j: usize, t: usize) -> Option<usize> {
        let (rr, jj) = match self.k {
            Some(k) => (r.checked_sub(1)?, (j + t).checked_sub(k / 2)?),
            None if t == 0 => (r.checked_sub(1)?, j),
            None => (r, j.checked_sub(1)?),
        };
        (jj < self.width).then_some((img * self.height + rr) * self.width + jj)
    }

    /// dw [4h, h, taps] in float64 from the operands as given.
    pub(crate) fn reference(&self, h: &[f32], d_is: &[f32]) -> Vec<f32> {
        let (hd, taps) = (self.hidden, self.taps());
        let mut dw = vec![0.0f64; 4 * hd * hd * taps];
        for img in 0..self.n {
            for r in 0..self.height {
                for j in 0..self.width {
                    let p = (img * self.height + r) * self.width + j;
                    for t in 0..taps {
                        let Some(src) = self.source(img, r, j, t) else {
                            continue;
                        };
                        for o in 0..4 * hd {
                            let a = f64::from(d_is[p * 4 * hd + o]);
                            for v in 0..hd {
                                dw[(o * hd + v) * taps + t] += a * f64::from(h[src * hd + v]);
                            }
                        }
                    }
                }
            }
        }
        dw.iter().map(|&x| x as f32).collect()
    }
}

fn upload(e: &Emulator, data: &[f32]) -> <Emulator as Executor>::Buffer {
    let mut b = e.alloc(data.len()).expect("alloc");
    e.upload_into(&mut b, data).expect("upload");
    b
}

/// The block tile of a weight gradient GEMM, as the host launches it
/// (src/backend/cuda/lstm_weight.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tiling {
    /// 64 x 64 tiles of 64 threads, splits in gridDim.z: `lstm_ss_bwd_weight_v2` and the
    /// rounded `lstm_ss_bwd_weight_{tf32,bf16}_v1`.
    Simt64,
    /// 128 x 64 tiles of 256 threads, splits in gridDim.x: the tensor-core
    /// `lstm_ss_bwd_weight_{tf32,bf16}_v2`.
    Mma128x64,
    /// 128 x 128 tiles of 256 threads, splits in gridDim.x: `lstm_ss_bwd_weight_v3` and `_v4`.
    Simt128,
}

impl Tiling {
    /// (rows, columns) of the block tile.
    pub(crate) fn tile(self) -> (usize, usize) {
        match self {
            Tiling::Simt64 => (64, 64),
            Tiling::Mma128x64 => (128, 64),
            Tiling::Simt128 => (128, 128),
        }
    }
}

/// `kernel` (one of the `lstm_ss_bwd_weight_*` GEMMs, launched as `tiling` says) and the sum
/// on `h`, `d_is`: dw. Partials and dw start as NaN.
pub(crate) fn launch(
    e: &Emulator,
    kernel: &str,
    tiling: Tiling,
    c: &Case,
    h: &[f32],
    d_is: &[f32],
) -> Vec<f32> {
    let (tm, tn) = tiling.tile();
    let splits_in_x = tiling != Tiling::Simt64;
    let (hd, taps) = (c.hidden, c.taps());
    let (mt, nt) = ((4 * hd).div_ceil(tm), (taps * hd).div_ceil(tn));
    let splits = c.positions().div_ceil(c.chunk).max(1);
    let (mpad, npad) = (mt * tm, nt * tn);
    let hb = upload(e, h);
    let db = upload(e, d_is);
    let partial = upload(e, &vec![f32::NAN; splits * mpad * npad]);
    let total = 4 * hd * hd * taps;
    let dw = upload(e, &vec![f32::NAN; total]);
    let grid = if splits_in_x {
        [splits as u32, nt as u32, mt as u32]
    } else {
        [nt as u32, mt as u32, splits as u32]
    };
    let cfg = LaunchCfg {
        grid,
        block: [if splits_in_x { 256 } else { 64 }, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    let mut args = vec![Arg::Buf(&hb), Arg::Buf(&db), Arg::Buf(&partial)];
    args.extend(
        [
            c.n,
            c.height,
            c.width,
            hd,
            taps,
            usize::from(c.k.is_none()),
            c.chunk,
        ]
        .map(|x| Arg::I32(x as i32)),
    );
    e.launch(kernel, &cfg, &args)
        .unwrap_or_else(|err| panic!("{kernel}: {err}"));
    let sum = LaunchCfg {
        grid: [total.div_ceil(256) as u32, 1, 1],
        block: [256, 1, 1],
        shared_bytes: 0,
        cluster: [1, 1, 1],
        flops: 0,
    };
    let args = [
        Arg::Buf(&partial),
        Arg::Buf(&dw),
        Arg::I32(hd as i32),
        Arg::I32(taps as i32),
        Arg::I32(splits as i32),
        Arg::I32(mpad as i32),
        Arg::I32(npad as i32),
    ];
    e.launch("lstm_ss_bwd_weight_sum_v2", &sum, &args)
        .unwrap_or_else(|err| panic!("sum after {kernel}: {err}"));
    e.download(&dw, total).expect("download")
}

pub(crate) fn emulator(seed: u64) -> Emulator {
    Emulator::new(EmuOptions {
        seed,
        workers: 2,
        bounds_check: true,
    })
    .expect("emulator")
}

/// The emulator's memory counters of one weight gradient GEMM launch (not its sum).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmCounters {
    /// The launch's grid.
    pub(crate) grid: [u32; 3],
    /// Unique bytes over sector bytes, summed over every global site.
    pub(crate) global_efficiency: f64,
    /// 32-byte global sectors, loads and stores.
    pub(crate) global_sectors: u64,
    /// Sectors per request over every global site.
    pub(crate) sectors_per_request: f64,
    /// 4-byte words loaded from shared memory (every lane's).
    pub(crate) shared_words: u64,
    /// The worst shared site's wavefronts over the ideal (1.0: conflict-free).
    pub(crate) worst_shared: f64,
    /// The GEMM's FLOPs (2 x positions x 4h x taps*h) per shared word loaded.
    pub(crate) flop_per_word: f64,
}

impl GemmCounters {
    /// `grid | global efficiency | global sectors | sectors/request | shared words loaded |
    /// worst shared site (of ideal) | FLOP/shared word`, the columns of docs/kernels.md's
    /// weight gradient tables.
    pub(crate) fn markdown(&self) -> String {
        format!(
            "{}x{}x{} | {:.3} | {} | {:.2} | {} | {:.2} | {:.1}",
            self.grid[0],
            self.grid[1],
            self.grid[2],
            self.global_efficiency,
            self.global_sectors,
            self.sectors_per_request,
            self.shared_words,
            self.worst_shared,
            self.flop_per_word
        )
    }
}

/// `kernel` launched on `e` (counters on) as the host splits it for its tiles
/// (cuda/lstm_weight.rs `weight_grad_split`: chunks of >= 256 positions, about 264 blocks;
/// `c.chunk` is set to that split), with its counters.
pub(crate) fn measure(
    e: &Emulator,
    kernel: &str,
    tiling: Tiling,
    c: &mut Case,
    h: &[f32],
    d_is: &[f32],
) -> GemmCounters {
    let (tm, tn) = tiling.tile();
    let tiles = (4 * c.hidden).div_ceil(tm) * (c.taps() * c.hidden).div_ceil(tn);
    let want = c
        .positions()
        .div_ceil(256)
        .min(264usize.div_ceil(tiles))
        .max(1);
    c.chunk = c.positions().div_ceil(want).next_multiple_of(16);
    e.take_counters();
    launch(e, kernel, tiling, c, h, d_is);
    let all: Vec<_> = e
        .take_counters()
        .into_iter()
        .filter(|x| x.kernel == kernel)
        .collect();
    let grid = all
        .first()
        .unwrap_or_else(|| panic!("no counters of {kernel}"))
        .grid;
    // The per-kernel figures of `pixelrnn profile` (src/profile/summary.rs), for this launch.
    let k = &summarize(&all, &H200, &H200_LATENCY, &H200_SM)[0];
    let flops = 2 * c.positions() * 4 * c.hidden * c.taps() * c.hidden;
    GemmCounters {
        grid,
        global_efficiency: k.efficiency,
        global_sectors: k.sector_bytes / 32,
        sectors_per_request: k.sectors_per_request,
        shared_words: k.shared_words_loaded,
        worst_shared: k.shared_conflict_max.unwrap_or(0.0),
        flop_per_word: flops as f64 / k.shared_words_loaded.max(1) as f64,
    }
}

/// The counters of `kernels` at cifar-large's recurrence (h = 128; Row LSTM k = 3 and
/// Diagonal) on 4 images of 32 x 32 (4096 positions; the emulator's time bounds the size), each
/// split as the host splits it ([`measure`]), printed as one markdown row per scan and kernel
/// (docs/kernels.md's weight gradient tables).
pub(crate) fn print_counters_table(kernels: &[(&str, Tiling)]) {
    let e = emulator(1).with_counters(true);
    println!("| scan | kernel | grid | global efficiency | global sectors | sectors/request | shared words loaded | worst shared site (of ideal) | FLOP/shared word |");
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    for k in [Some(3), None] {
        let mut c = Case {
            k,
            n: 4,
            height: 32,
            width: 32,
            hidden: 128,
            chunk: 16,
        };
        let h = crate::random(71, c.positions() * c.hidden, 1.0);
        let d_is = crate::random(72, c.positions() * 4 * c.hidden, 1.0);
        for &(kernel, tiling) in kernels {
            let row = measure(&e, kernel, tiling, &mut c, &h, &d_is);
            println!(
                "| {} | `{kernel}` | {} |",
                if k.is_some() { "row k=3" } else { "diagonal" },
                row.markdown()
            );
        }
    }
}

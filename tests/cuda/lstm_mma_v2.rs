//! The tensor-core step kernels' v2 (`<scan>_step_{fwd,bwd}_{tf32,bf16}_v2`: the epilogue's
//! per-unit operands as float2 pairs, kernels/lstm_mma.cuh) against v1, one step launched
//! directly: the same bits in every output map (the cell runs the same device function on the
//! same operands; only the width of the epilogue's memory accesses differs), on shapes that
//! take every branch of the epilogue (h a multiple of 8, h even but not, h odd: v1's
//! epilogue; ragged position and unit tiles); and the emulator's memory counters, v2 ahead of
//! v1 with the shared traffic unchanged. The whole fused recurrence against the twin at every
//! version is tests/cuda/lstm_mma.rs.

use crate::lstm_mma::{launch_step, step_counters, Shape};

/// One step's shapes for the forward (`fwd`) or the backward. Every step has a product (Row:
/// forward row 1, backward row 0 of 2; Diagonal: a middle anti-diagonal).
fn shapes(fwd: bool) -> Vec<Shape> {
    let row = |n, height, width, hd| Shape {
        n,
        height,
        width,
        hd,
        diag: false,
        step: if fwd { 1 } else { 0 },
    };
    let diag = |n, height, width, hd, step| Shape {
        n,
        height,
        width,
        hd,
        diag: true,
        step,
    };
    vec![
        // h = 26: pairs, h not a multiple of 8 (a pair's sector shared with the next pixel's).
        row(2, 2, 9, 26),
        // h = 17: odd, v2 runs v1's epilogue; two forward unit tiles (16 + 1).
        row(1, 2, 5, 17),
        // 3 x 45 = 135 positions: two position tiles; h = 70: a ragged unit tile in both
        // passes (forward 64..69 of 64..79, backward 64..69 of 64..127).
        row(3, 2, 45, 70),
        // h = 32, anti-diagonal 4 of 5 x 6 (5 positions per image, rows 0..4).
        diag(2, 5, 6, 32, 4),
        // h = 9: odd.
        diag(1, 3, 4, 9, 2),
    ]
}

/// v2 writes exactly v1's bits into every map a step writes, both scans, passes and
/// precisions.
#[test]
fn v2_step_kernels_give_v1_s_bits() {
    for fwd in [true, false] {
        for s in shapes(fwd) {
            for precision in ["tf32", "bf16"] {
                let scan = if s.diag { "diag" } else { "row" };
                let pass = if fwd { "fwd" } else { "bwd" };
                let name = |v: u32| format!("{scan}_lstm_step_{pass}_{precision}_v{v}");
                let (v1, _) = launch_step(&name(1), fwd, &s, false);
                let (v2, _) = launch_step(&name(2), fwd, &s, false);
                assert_eq!(v1.len(), v2.len());
                for (k, (a, b)) in v1.iter().zip(&v2).enumerate() {
                    assert_eq!(a.len(), b.len());
                    if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
                        panic!(
                            "{} on {s:?}: output {k} element {i} is {:e}, v1's {:e}",
                            name(2),
                            b[i],
                            a[i]
                        );
                    }
                }
            }
        }
    }
}

/// The emulator's counters of one step (Row LSTM row 4, Diagonal LSTM anti-diagonal 7, of
/// 2 images of 8 x 8, h = 32: every pair's 8 units one 32-byte sector): v2's global stores
/// fill whole sectors (efficiency 1.0 where v1's half-sector stores give 0.5), its
/// byte-weighted global efficiency is above v1's with fewer sectors, and the shared traffic
/// (the GEMM's, which v2 does not change) is the same words.
#[test]
fn v2_step_kernels_fill_the_sectors_v1_half_fills() {
    for diag in [false, true] {
        for fwd in [true, false] {
            let s = Shape {
                n: 2,
                height: 8,
                width: 8,
                hd: 32,
                diag,
                step: if diag { 7 } else { 4 },
            };
            let scan = if diag { "diag" } else { "row" };
            let pass = if fwd { "fwd" } else { "bwd" };
            let name = |v: u32| format!("{scan}_lstm_step_{pass}_tf32_v{v}");
            let v1 = step_counters(&name(1), fwd, &s);
            let v2 = step_counters(&name(2), fwd, &s);
            let what = format!("{scan} step_{pass}");
            eprintln!("{what}: v1 {v1:?}\n{what}: v2 {v2:?}");
            assert!(
                v1.store_efficiency <= 0.5 + 1e-9,
                "{what}: v1 store efficiency {}",
                v1.store_efficiency
            );
            assert!(
                v2.store_efficiency >= 1.0 - 1e-9,
                "{what}: v2 store efficiency {}",
                v2.store_efficiency
            );
            assert!(
                v2.efficiency > v1.efficiency && v2.sectors < v1.sectors,
                "{what}: v2 {} with {} sectors, v1 {} with {}",
                v2.efficiency,
                v2.sectors,
                v1.efficiency,
                v1.sectors
            );
            assert_eq!(v2.shared_words, v1.shared_words, "{what}: shared words");
        }
    }
}

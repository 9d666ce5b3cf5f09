//! `masked_conv2d` on the CPU: im2col over the taps that exist, then a GEMM, block by block.
//!
//! Only the taps that the mask leaves (raster taps before the centre, and the centre when some
//! pair of groups may use it) are gathered, so a 7x7 mask-A layer multiplies 24 (C = 1) or 25
//! taps instead of 49. The centre tap's channel-group mask is applied to the packed weights.
//!
//! Blocking: the work is cut into blocks of rows (output positions) small enough that a block's
//! gathered columns, its outputs and its output gradients stay in cache (see `block_rows`).
//! Forward: gather, bias, product, per block. Backward: one pass over the blocks computes the
//! bias gradient, the weight gradient (per-thread partial sums) and the input gradient (product,
//! then scatter-add) while the block is in cache. The whole-map im2col buffer, its gradient and
//! their zero-fills (each several MiB per layer) are gone; 1x1 convolutions use the input as
//! the column matrix directly. The plain-loop reference lives in the tests
//! (`tests/ops_reference.rs`).

use rayon::prelude::*;

use super::elementwise::par_build;
use super::gemm::{sgemm_serial, MatRef};
use crate::backend::ConvSpec;
// The CPU twins' signatures take the call's geometry, device-neutral (`backend::geometry`).
pub use crate::backend::geometry::ConvGeom;

/// Whether the input can be used as the im2col matrix directly (a 1x1 kernel).
fn is_pointwise(spec: &ConvSpec, taps: &[(usize, usize)]) -> bool {
    spec.kh == 1 && spec.kw == 1 && taps.len() == 1
}

/// Packs `[cout, cin, kh, kw]` weights into the GEMM layout `[taps * cin, cout]`, applying the
/// centre tap's group mask.
pub fn pack_weights(
    weight: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
) -> Vec<f32> {
    let mut packed = vec![0.0f32; taps.len() * g.cin * g.cout];
    for (t, &(ky, kx)) in taps.iter().enumerate() {
        for i in 0..g.cin {
            let row = &mut packed[(t * g.cin + i) * g.cout..(t * g.cin + i + 1) * g.cout];
            for (o, slot) in row.iter_mut().enumerate() {
                if spec.allows(o, i, ky, kx) {
                    *slot = weight[((o * g.cin + i) * spec.kh + ky) * spec.kw + kx];
                }
            }
        }
    }
    packed
}

/// Scatters a packed gradient back to `[cout, cin, kh, kw]`, leaving masked entries at exactly
/// zero. Packed entry `(t * cin + i, o)` is read at `packed[(t * cin + i) * rs + o * cs]`: the
/// `[taps * cin, cout]` layout has `(rs, cs) = (cout, 1)`, its transpose `(1, taps * cin)`.
fn unpack_weight_grad(
    packed: &[f32],
    (rs, cs): (usize, usize),
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
) -> Vec<f32> {
    let mut dw = vec![0.0f32; g.cout * g.cin * spec.kh * spec.kw];
    for (t, &(ky, kx)) in taps.iter().enumerate() {
        for i in 0..g.cin {
            for o in 0..g.cout {
                if spec.allows(o, i, ky, kx) {
                    dw[((o * g.cin + i) * spec.kh + ky) * spec.kw + kx] =
                        packed[(t * g.cin + i) * rs + o * cs];
                }
            }
        }
    }
    dw
}

/// Input offset of tap `(ky, kx)` for output `(y, x)`, or `None` in the zero padding.
#[inline]
fn source(y: usize, x: usize, ky: usize, kx: usize, spec: &ConvSpec, g: ConvGeom) -> Option<usize> {
    let iy = (y + ky).checked_sub(spec.kh / 2)?;
    let ix = (x + kx).checked_sub(spec.kw / 2)?;
    (iy < g.h && ix < g.w).then_some(iy * g.w + ix)
}

/// Row budget of a forward block, in floats of gathered columns and outputs: 128 Ki floats
/// (512 KiB), half the core's 1 MiB L2, so that a block stays in cache between the gather and
/// the product while the packed operand of each GEMM call is amortised over enough rows.
const FWD_BLOCK_FLOATS: usize = 128 * 1024;

/// Row budget of a backward block (columns, column gradients and outputs): 384 Ki floats. The
/// weight gradient accumulates one `[taps * cin, cout]` product per block, reading and writing
/// all of it each call, so its depth `k` is the block's row count: 64-85 rows (the former 32 Ki
/// budget) left the product dominated by those passes and by packing; about 1024 rows (a
/// 32x32 image) made the Row LSTM's 1x3 input-to-state backward about 30 % faster
/// (docs/benchmarks.md, Run G). Spilling out of L2 costs less than that: the GEMM blocks its
/// own operands.
const BWD_BLOCK_FLOATS: usize = 384 * 1024;

/// Row budget of a 1x1 convolution's backward block (inputs and output gradients): 128 Ki
/// floats, as the forward.
const POINTWISE_BWD_BLOCK_FLOATS: usize = 128 * 1024;

/// Rows per block for `budget` floats per row of `tk + cout`: at least 16 rows (the GEMM's
/// micro-kernel height), at most 4096.
fn block_rows(tk: usize, cout: usize, budget: usize) -> usize {
    (budget / (tk + cout).max(1)).clamp(16, 4096)
}

/// Gathers rows `r0 .. r0 + out.len() / (taps * cin)` of the im2col matrix (`[n * h * w, taps *
/// cin]`: for each output position, the input vectors under each live tap; zero in the padding)
/// into `out`, writing every element.
fn im2col_rows(
    x: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
    r0: usize,
    out: &mut [f32],
) {
    let tk = taps.len() * g.cin;
    let plane = g.h * g.w;
    for (i, row) in out.chunks_exact_mut(tk).enumerate() {
        let r = r0 + i;
        let (img, p) = (r / plane, r % plane);
        let x_img = &x[img * plane * g.cin..(img + 1) * plane * g.cin];
        let (y, xx) = (p / g.w, p % g.w);
        for (t, &(ky, kx)) in taps.iter().enumerate() {
            let dst = &mut row[t * g.cin..(t + 1) * g.cin];
            match source(y, xx, ky, kx, spec, g) {
                Some(q) => dst.copy_from_slice(&x_img[q * g.cin..(q + 1) * g.cin]),
                None => dst.fill(0.0),
            }
        }
    }
}

/// Adds the column gradients of positions `p0 .. p0 + dcols.len() / (taps * cin)` of one image
/// back to the input positions they were gathered from, in that image's `dx_img`.
fn col2im_rows(
    dcols: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
    p0: usize,
    dx_img: &mut [f32],
) {
    let tk = taps.len() * g.cin;
    for (i, row) in dcols.chunks_exact(tk).enumerate() {
        let p = p0 + i;
        let (y, xx) = (p / g.w, p % g.w);
        for (t, &(ky, kx)) in taps.iter().enumerate() {
            if let Some(q) = source(y, xx, ky, kx, spec, g) {
                let dst = &mut dx_img[q * g.cin..(q + 1) * g.cin];
                for (d, s) in dst.iter_mut().zip(&row[t * g.cin..(t + 1) * g.cin]) {
                    *d += s;
                }
            }
        }
    }
}

/// Forward: `y[n, h, w, cout] = conv(x, weight) + bias`.
pub fn forward(x: &[f32], weight: &[f32], bias: &[f32], g: ConvGeom, spec: &ConvSpec) -> Vec<f32> {
    let taps = spec.taps();
    let tk = taps.len() * g.cin;
    let rows = g.positions();
    if g.cout == 0 || rows == 0 {
        return Vec::new();
    }
    let packed = pack_weights(weight, g, spec, &taps);
    let pointwise = is_pointwise(spec, &taps);
    let br = block_rows(if pointwise { 0 } else { tk }, g.cout, FWD_BLOCK_FLOATS);
    // Each block of outputs starts as the bias (written in cache, by the thread that then
    // accumulates the product into it) and, with no live taps (a 1x1 mask A with one group),
    // stays the bias.
    par_build(
        rows * g.cout,
        br * g.cout,
        bias,
        Vec::new,
        |scratch: &mut Vec<f32>, i, yb| {
            if tk == 0 {
                return;
            }
            let (r0, nr) = (i * br, yb.len() / g.cout);
            let cols: &[f32] = if pointwise {
                &x[r0 * tk..(r0 + nr) * tk]
            } else {
                scratch.resize(nr * tk, 0.0);
                im2col_rows(x, g, spec, &taps, r0, &mut scratch[..nr * tk]);
                &scratch[..nr * tk]
            };
            sgemm_serial(
                nr,
                g.cout,
                tk,
                MatRef::row_major(cols, tk),
                MatRef::row_major(&packed, g.cout),
                yb,
                true,
            );
        },
    )
}

/// One thread's share of the backward pass: partial weight and bias gradients and the scratch
/// buffers of its blocks.
struct Partial {
    /// Packed weight gradient, `[taps * cin, cout]` or its transpose (see `wide`).
    dpacked: Vec<f32>,
    /// Bias gradient.
    db: Vec<f32>,
    /// The block's gathered columns.
    cols: Vec<f32>,
    /// The block's column gradients.
    dcols: Vec<f32>,
}

/// Backward: returns `(dx if need_dx, dweight [cout, cin, kh, kw], dbias [cout])`.
///
/// The rows are split into one contiguous range per thread (whole images when the input
/// gradient is scattered back with col2im, so that no two threads add into the same image);
/// each thread walks its range block by block and returns its partial weight and bias
/// gradients, summed at the end in thread order.
pub fn backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    need_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let taps = spec.taps();
    let tk = taps.len() * g.cin;
    let rows = g.positions();
    let (cout, cin) = (g.cout, g.cin);
    if tk == 0 || rows == 0 || cout == 0 {
        let dw = vec![0.0f32; cout * cin * spec.kh * spec.kw];
        let mut db = vec![0.0f32; cout];
        for row in dy.chunks_exact(cout.max(1)).take(rows) {
            for (d, v) in db.iter_mut().zip(row) {
                *d += v;
            }
        }
        return (need_dx.then(|| vec![0.0f32; rows * cin]), dw, db);
    }
    let pointwise = is_pointwise(spec, &taps);
    let packed = need_dx.then(|| pack_weights(weight, g, spec, &taps));
    // The weight gradient `cols^T . dy` (`[tk, cout]`) or its transpose `dy^T . cols`
    // (`[cout, tk]`), whichever has more rows: the GEMM's micro-kernel is taller than wide, and
    // the head's 1x1 D -> 256 layer runs about 2x faster as `[256, D]` than as `[D, 256]`.
    let wide = cout > tk;
    let plane = g.h * g.w;
    // The same blocks and threads whether or not the input gradient is wanted, so that the
    // weight gradient's summation order (and so its rounding) does not depend on `need_dx`.
    let br = if pointwise {
        // No gather: the block's input rows and output gradients are read by both products,
        // so they should stay in L2 between them (a 1x1 64 -> 128 convolution ran 10-20 %
        // slower with the larger budget).
        block_rows(0, cout, POINTWISE_BWD_BLOCK_FLOATS)
    } else {
        block_rows(2 * tk, cout, BWD_BLOCK_FLOATS)
    };
    // Units of work that one thread owns whole: images when col2im may scatter into them,
    // otherwise one even share of the rows per thread (in multiples of 16 rows), walked block
    // by block: blocks of a few thousand rows dealt out whole would leave the threads unevenly
    // loaded.
    let threads = rayon::current_num_threads().max(1);
    let unit = if pointwise {
        rows.div_ceil(threads).next_multiple_of(16)
    } else {
        plane
    };
    let units = rows.div_ceil(unit);
    let lanes = threads.min(units).max(1);
    let per_lane = units.div_ceil(lanes) * unit;
    let ranges: Vec<(usize, usize)> = (0..lanes)
        .map(|l| ((l * per_lane).min(rows), ((l + 1) * per_lane).min(rows)))
        .collect();
    let mut dx: Vec<f32> = Vec::with_capacity(if need_dx { rows * cin } else { 0 });
    let mut dx_lanes = Vec::with_capacity(lanes);
    {
        let mut rest = &mut dx.spare_capacity_mut()[..if need_dx { rows * cin } else { 0 }];
        for &(a, b) in &ranges {
            let take = if need_dx { (b - a) * cin } else { 0 };
            let (head, tail) = rest.split_at_mut(take);
            dx_lanes.push(head);
            rest = tail;
        }
    }
    let partials: Vec<Partial> = dx_lanes
        .into_par_iter()
        .zip(ranges.par_iter())
        .map(|(dx_lane, &(a, b))| {
            let mut part = Partial {
                dpacked: vec![0.0f32; tk * cout],
                db: vec![0.0f32; cout],
                cols: Vec::new(),
                dcols: Vec::new(),
            };
            let mut dx_lane = dx_lane;
            let mut u0 = a;
            while u0 < b {
                let un = unit.min(b - u0);
                let (dx_unit, tail) =
                    std::mem::take(&mut dx_lane).split_at_mut(if need_dx { un * cin } else { 0 });
                dx_lane = tail;
                // The unit's input gradient starts at zero (in cache, right before use).
                for slot in dx_unit.iter_mut() {
                    slot.write(0.0);
                }
                // SAFETY: every element of `dx_unit` was written just above; `MaybeUninit<f32>`
                // has `f32`'s layout.
                let dx_unit =
                    unsafe { &mut *(dx_unit as *mut [std::mem::MaybeUninit<f32>] as *mut [f32]) };
                let mut s0 = 0;
                while s0 < un {
                    let nr = br.min(un - s0);
                    let r0 = u0 + s0;
                    let blk = (r0, nr);
                    let mode = (pointwise, wide);
                    let pk = packed.as_deref();
                    if !need_dx {
                        backward_block(x, dy, g, spec, &taps, pk, mode, blk, &mut part, None);
                    } else if pointwise {
                        // The column gradients are the input gradients: written in place.
                        let dst = &mut dx_unit[s0 * cin..(s0 + nr) * cin];
                        backward_block(x, dy, g, spec, &taps, pk, mode, blk, &mut part, Some(dst));
                    } else {
                        let mut dcols = std::mem::take(&mut part.dcols);
                        dcols.resize(nr * tk, 0.0);
                        let dst = Some(&mut dcols[..nr * tk]);
                        backward_block(x, dy, g, spec, &taps, pk, mode, blk, &mut part, dst);
                        col2im_rows(&dcols[..nr * tk], g, spec, &taps, s0, dx_unit);
                        part.dcols = dcols;
                    }
                    s0 += nr;
                }
                u0 += un;
            }
            part
        })
        .collect();
    if need_dx {
        // SAFETY: the lanes' ranges cover `0..rows` and each lane initialised its whole share.
        unsafe { dx.set_len(rows * cin) };
    }
    let mut parts = partials.into_iter();
    let first = parts.next().expect("at least one lane");
    let (mut dpacked, mut db) = (first.dpacked, first.db);
    for p in parts {
        for (o, v) in dpacked.iter_mut().zip(&p.dpacked) {
            *o += v;
        }
        for (o, v) in db.iter_mut().zip(&p.db) {
            *o += v;
        }
    }
    let layout = if wide { (1, tk) } else { (cout, 1) };
    let dw = unpack_weight_grad(&dpacked, layout, g, spec, &taps);
    (need_dx.then_some(dx), dw, db)
}

/// Rows `r0 .. r0 + nr` of the backward pass: adds their bias and weight gradients to `part`
/// and, when `dcols` is given, writes their column gradients `dy . packed^T` there (`packed` is
/// given whenever the input gradient is wanted).
#[allow(clippy::too_many_arguments)]
fn backward_block(
    x: &[f32],
    dy: &[f32],
    g: ConvGeom,
    spec: &ConvSpec,
    taps: &[(usize, usize)],
    packed: Option<&[f32]>,
    (pointwise, wide): (bool, bool),
    (r0, nr): (usize, usize),
    part: &mut Partial,
    dcols: Option<&mut [f32]>,
) {
    let tk = taps.len() * g.cin;
    let cout = g.cout;
    let dyb = &dy[r0 * cout..(r0 + nr) * cout];
    for row in dyb.chunks_exact(cout) {
        for (d, v) in part.db.iter_mut().zip(row) {
            *d += v;
        }
    }
    let cols: &[f32] = if pointwise {
        &x[r0 * tk..(r0 + nr) * tk]
    } else {
        part.cols.resize(nr * tk, 0.0);
        im2col_rows(x, g, spec, taps, r0, &mut part.cols[..nr * tk]);
        &part.cols[..nr * tk]
    };
    if wide {
        sgemm_serial(
            cout,
            tk,
            nr,
            MatRef::transposed(dyb, cout),
            MatRef::row_major(cols, tk),
            &mut part.dpacked,
            true,
        );
    } else {
        sgemm_serial(
            tk,
            cout,
            nr,
            MatRef::transposed(cols, tk),
            MatRef::row_major(dyb, cout),
            &mut part.dpacked,
            true,
        );
    }
    if let (Some(packed), Some(dcols)) = (packed, dcols) {
        sgemm_serial(
            nr,
            tk,
            cout,
            MatRef::row_major(dyb, cout),
            MatRef::transposed(packed, cout),
            dcols,
            false,
        );
    }
}

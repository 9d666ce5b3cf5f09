//! `sum` and `sum_squares` on CUDA: host side of `kernels/reduce.cu` (CPU twins: `sum` and
//! `sum_squares` in `cpu/elementwise.rs`). Two launches: block partials in f64, then one block
//! sums them; the f64 result comes back as two floats.

use super::launch_args::{index, int};
use super::{arg, loss_targets, multi_tensor, Arg, CudaBackend, Executor, LaunchCfg, BLOCK};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Cap on the first pass's grid: about one resident wave of 256-thread blocks on an H100/H200
/// (132 SMs x 8), enough to saturate memory bandwidth, and few enough partials for one block
/// to finish.
const MAX_PARTIALS: usize = 1024;

/// Sum of all elements of `x`, accumulated in f64.
pub fn sum<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<f64> {
    reduce(be, x, "sum", "sum_fwd")
}

/// Sum of squares of all elements of `x`, accumulated in f64.
pub fn sum_squares<E: Executor>(be: &CudaBackend<E>, x: &Tensor<CudaBackend<E>>) -> Result<f64> {
    reduce(be, x, "sum_squares", "sum_squares_fwd")
}

/// Sum of squares of every element of every tensor of `xs`, accumulated in f64: one
/// `reduce_sum_squares_multi` launch over the chunk table of all of them (cuda/multi_tensor.rs:
/// one partial per chunk), one `reduce_finish`, one download (the global gradient norm: one
/// launch and one host synchronisation per step, whatever the number of parameters).
pub fn sum_squares_all<E: Executor>(
    be: &CudaBackend<E>,
    xs: &[&Tensor<CudaBackend<E>>],
) -> Result<f64> {
    const OP: &str = "sum_squares_all";
    let entries: Vec<_> = xs.iter().map(|&x| [Some(x), None, None, None]).collect();
    let Some(chunks) = multi_tensor::upload(be, OP, &entries)? else {
        return Ok(0.0);
    };
    let partials = be.tensor_uninit(&[2 * chunks.rows as usize])?;
    be.launch_touching(
        &be.kernel_name("reduce", "sum_squares_multi"),
        &LaunchCfg::linear(chunks.rows, BLOCK),
        &[arg(&chunks.table), arg(&partials)],
        &chunks.touched,
    )?;
    finish(be, &partials, chunks.rows as usize, OP)
}

/// Runs `reduce_<pass>` (per-block partials) and `reduce_finish` (their total), downloads
/// the double.
fn reduce<E: Executor>(
    be: &CudaBackend<E>,
    x: &Tensor<CudaBackend<E>>,
    op: &'static str,
    pass: &str,
) -> Result<f64> {
    let n = x.numel();
    if n == 0 {
        return Ok(0.0);
    }
    let blocks = n.div_ceil(BLOCK as usize).min(MAX_PARTIALS);
    // Doubles live in float buffers of twice the length (kernels view them as double*).
    let partials = be.tensor_uninit(&[2 * blocks])?;
    be.launch(
        &be.kernel_name("reduce", pass),
        &LaunchCfg::linear(blocks as u32, BLOCK),
        &[arg(x), arg(&partials), Arg::I64(index(op, n)?)],
    )?;
    finish(be, &partials, blocks, op)
}

/// `reduce_finish` over the first `count` doubles of `partials`, and the download of the
/// total. With a loss-target check pending on this thread (cuda/loss_targets.rs),
/// `reduce_finish_checked` instead: the check's flag comes back in the same download, and an
/// invalid target is this call's error.
fn finish<E: Executor>(
    be: &CudaBackend<E>,
    partials: &Tensor<CudaBackend<E>>,
    count: usize,
    op: &'static str,
) -> Result<f64> {
    let total = be.tensor_uninit(&[4])?;
    let count = Arg::I32(int(op, "blocks", count)?);
    let check = loss_targets::take(be);
    let loss = check.as_ref().map(|c| c.loss);
    match &check {
        Some(c) => be.launch(
            &be.kernel_name("reduce", "finish_checked"),
            &LaunchCfg::linear(1, BLOCK),
            &[arg(partials), arg(&total), count, Arg::Buf(c.flag())],
        )?,
        None => be.launch(
            &be.kernel_name("reduce", "finish"),
            &LaunchCfg::linear(1, BLOCK),
            &[arg(partials), arg(&total), count],
        )?,
    }
    drop(check);
    let words = total.to_vec(be)?;
    let &[lo, hi, flag, _] = words.as_slice() else {
        return Err(Error::Device(format!(
            "{op}: expected 4 words for the f64 result, got {}",
            words.len()
        )));
    };
    if let Some(loss) = loss {
        loss_targets::verdict(loss, flag)?;
    }
    // Little-endian on both sides: the low word of the double comes first.
    Ok(f64::from_bits(
        u64::from(lo.to_bits()) | (u64::from(hi.to_bits()) << 32),
    ))
}

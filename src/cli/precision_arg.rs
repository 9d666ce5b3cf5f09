//! `--precision` of `eval` and `sample`: the checkpoint's recorded training precision unless
//! the flag says otherwise.

use anyhow::Context;
use pixelrnn::backend::{Backend, Precision};
use pixelrnn::checkpoint::Checkpoint;

/// The precision `eval`/`sample` run at: `flag` when given, else the `precision` key of the
/// checkpoint's training config (a model is scored and sampled with the arithmetic it was
/// trained in, which is what its recorded NLL was measured with), fp32 when the checkpoint
/// predates the key. Set on `backend` before any work. A key that is not a precision fails,
/// naming the file.
pub fn apply<B: Backend>(
    backend: &B,
    ck: &Checkpoint,
    flag: Option<Precision>,
) -> anyhow::Result<Precision> {
    let precision = match flag {
        Some(p) => p,
        None => match ck.meta.train.get("precision") {
            None => Precision::Fp32,
            Some(v) => serde_json::from_value(v.clone()).with_context(|| {
                format!(
                    "{}: metadata 'train_config': 'precision' is {v}, not fp32, tf32 or bf16",
                    ck.path().display()
                )
            })?,
        },
    };
    backend.set_precision(precision);
    Ok(precision)
}

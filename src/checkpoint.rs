//! Checkpoints: one safetensors file with the weights (PyTorch layout, names such as
//! `layers.3.conv_mid.weight`), the optimizer moments under the prefix `optim.`, and the
//! configuration and step as JSON metadata. Written atomically: a temporary file in the same
//! folder, synced, then renamed over the old one. Layout documented in docs/CHECKPOINTS.md.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::models::{Model, ModelConfig};
use crate::optim::{OptimConfig, Optimizer};
use crate::tensor::Tensor;

/// Value of the `format` metadata key.
pub const FORMAT: &str = "pixelrnn-checkpoint-1";
/// Prefix of optimizer-state tensors.
pub const OPTIM_PREFIX: &str = "optim.";

/// The JSON metadata of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Architecture.
    pub model: ModelConfig,
    /// The training configuration that produced it (opaque to this module).
    pub train: serde_json::Value,
    /// Optimizer steps taken.
    pub step: u64,
    /// Training seconds so far.
    pub seconds: f64,
}

fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

/// Writes `bytes` to `path` atomically: a temporary sibling with a name of its own (the
/// process id and a counter, so two writers never share one), synced, then renamed over
/// `path`. When any of it fails the temporary file is removed, so a full disk or a failed
/// rename leaves nothing behind but the old `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".{}.{}-{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let tmp: PathBuf = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    };
    // Errors name the target: the temporary file is an implementation detail.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(path, e))?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            drop(f);
            std::fs::rename(&tmp, path)
        });
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Saves the model (and the optimizer, if given) to `path`.
pub fn save<B: Backend>(
    path: &Path,
    backend: &B,
    model: &mut Model<B>,
    optimizer: Option<&Optimizer<B>>,
    meta: &CheckpointMeta,
) -> Result<()> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for p in model.params_mut() {
        let v = p.value.to_vec(backend)?;
        named.push((
            p.name.clone(),
            p.value.shape.clone(),
            bytemuck::cast_slice(&v).to_vec(),
        ));
    }
    if let Some(opt) = optimizer {
        for (name, t) in opt.named_state() {
            let v = t.to_vec(backend)?;
            named.push((
                format!("{OPTIM_PREFIX}{name}"),
                t.shape.clone(),
                bytemuck::cast_slice(&v).to_vec(),
            ));
        }
    }
    let views = named
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| bad(path, format!("cannot encode tensor {n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut info = HashMap::new();
    info.insert("format".to_string(), FORMAT.to_string());
    info.insert(
        "model_config".to_string(),
        serde_json::to_string(&meta.model).expect("config serializes"),
    );
    info.insert("train_config".to_string(), meta.train.to_string());
    info.insert("step".to_string(), meta.step.to_string());
    info.insert("seconds".to_string(), meta.seconds.to_string());
    if let Some(opt) = optimizer {
        info.insert(
            "optimizer".to_string(),
            serde_json::to_string(&opt.config).expect("config serializes"),
        );
    }
    let bytes = safetensors::serialize(views, Some(info))
        .map_err(|e| bad(path, format!("cannot serialize: {e}")))?;
    write_atomic(path, &bytes)
}

/// Names of the optimizer moments that are second moments (means of squared gradients), which
/// cannot be negative.
const SECOND_MOMENTS: [&str; 2] = [".adam_v", ".rmsprop_ms"];

/// Refuses a tensor that no training could have written: a NaN or infinite value anywhere
/// (weights or optimizer state), or a negative second moment (Adam's `v`, RMSProp's mean
/// square; their square roots divide the update). The detail names the tensor, the first bad
/// element and its value.
fn check_values(name: &str, values: &[f32]) -> std::result::Result<(), String> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor '{name}' holds a non-finite value ({} at element {i}): refusing to load it",
            values[i]
        ));
    }
    if SECOND_MOMENTS.iter().any(|m| name.ends_with(m)) {
        if let Some(i) = values.iter().position(|&v| v < 0.0) {
            return Err(format!(
                "tensor '{name}' holds a negative second moment ({} at element {i}): refusing to load it",
                values[i]
            ));
        }
    }
    Ok(())
}

/// A checkpoint read into memory.
pub struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
    /// Its metadata.
    pub meta: CheckpointMeta,
}

/// Accepts a checkpoint file or a run folder holding `checkpoint.safetensors`.
pub fn resolve(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("checkpoint.safetensors")
    } else {
        path.to_path_buf()
    }
}

impl Checkpoint {
    /// Reads and validates the file's header and metadata.
    pub fn open(path: &Path) -> Result<Self> {
        let path = resolve(path);
        let bytes = crate::input::read_regular(&path).map_err(|e| Error::io(&path, e))?;
        let (_, md) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(&path, format!("not a valid safetensors file ({e})")))?;
        let info = md
            .metadata()
            .clone()
            .ok_or_else(|| bad(&path, "no pixelrnn metadata (not a pixelrnn checkpoint)"))?;
        let get = |k: &str| {
            info.get(k)
                .ok_or_else(|| bad(&path, format!("metadata lacks '{k}'")))
        };
        if get("format")? != FORMAT {
            return Err(bad(&path, format!("unknown format '{}'", get("format")?)));
        }
        // Every field is checked here, before anything uses it, and an error names the field
        // (the training configuration's fields: `TrainConfig::from_checkpoint`).
        let model: ModelConfig = serde_json::from_str(get("model_config")?).map_err(|e| {
            bad(
                &path,
                format!("metadata 'model_config' is not a model configuration: {e}"),
            )
        })?;
        model
            .validate()
            .map_err(|e| bad(&path, format!("metadata 'model_config': {e}")))?;
        // Any JSON here (null for a model saved outside training, which `sample` can use);
        // what `eval` and `--resume` read from it is checked where they read it.
        let train: serde_json::Value = serde_json::from_str(get("train_config")?)
            .map_err(|e| bad(&path, format!("metadata 'train_config' is not JSON: {e}")))?;
        let step_text = get("step")?;
        let step = step_text.parse::<u64>().map_err(|_| {
            bad(
                &path,
                format!("metadata 'step' is '{step_text}', expected a whole number of steps"),
            )
        })?;
        let seconds_text = get("seconds")?;
        let seconds = seconds_text
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                bad(
                    &path,
                    format!(
                        "metadata 'seconds' is '{seconds_text}', expected a finite number of seconds >= 0"
                    ),
                )
            })?;
        if let Some(text) = info.get("optimizer") {
            let opt: OptimConfig = serde_json::from_str(text).map_err(|e| {
                bad(
                    &path,
                    format!("metadata 'optimizer' is not an optimizer configuration: {e}"),
                )
            })?;
            opt.validate()
                .map_err(|e| bad(&path, format!("metadata 'optimizer': {e}")))?;
        }
        Ok(Checkpoint {
            meta: CheckpointMeta {
                model,
                train,
                step,
                seconds,
            },
            path,
            bytes,
        })
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes)
            .map_err(|e| bad(&self.path, format!("corrupt tensor data ({e})")))
    }

    fn read<B: Backend>(
        &self,
        st: &SafeTensors<'_>,
        backend: &B,
        name: &str,
        shape: &[usize],
    ) -> Result<Tensor<B>> {
        let view = st
            .tensor(name)
            .map_err(|_| bad(&self.path, format!("missing tensor '{name}'")))?;
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(bad(
                &self.path,
                format!(
                    "tensor '{name}' is {:?} {:?}, expected F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        check_values(name, &values).map_err(|detail| bad(&self.path, detail))?;
        Tensor::from_slice(backend, shape, &values)
    }

    /// Builds the model the checkpoint describes and loads its weights.
    pub fn load_model<B: Backend>(&self, backend: &B) -> Result<Model<B>> {
        let mut model = Model::new(backend, self.meta.model.clone(), 0)?;
        let st = self.tensors()?;
        let mut expected = 0;
        for p in model.params_mut() {
            p.value = self.read(&st, backend, &p.name, &p.value.shape.clone())?;
            expected += 1;
        }
        let weights = st
            .names()
            .iter()
            .filter(|n| !n.starts_with(OPTIM_PREFIX))
            .count();
        if weights != expected {
            return Err(bad(
                &self.path,
                format!(
                    "holds {weights} weight tensors, the {} model has {expected}",
                    self.meta.model.kind.name()
                ),
            ));
        }
        Ok(model)
    }

    /// Restores the optimizer's moments and step for `model`'s parameters.
    pub fn load_optimizer<B: Backend>(
        &self,
        backend: &B,
        model: &mut Model<B>,
        optimizer: &mut Optimizer<B>,
    ) -> Result<()> {
        let st = self.tensors()?;
        optimizer.step = self.meta.step;
        if self.meta.step == 0 {
            return Ok(());
        }
        let params: Vec<(String, Vec<usize>)> = model
            .params_mut()
            .iter()
            .map(|p| (p.name.clone(), p.value.shape.clone()))
            .collect();
        optimizer.restore(&params, |name, shape| {
            self.read(&st, backend, &format!("{OPTIM_PREFIX}{name}"), shape)
        })
    }
}

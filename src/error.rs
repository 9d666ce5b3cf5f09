//! The library's error type: every fallible public function returns [`Result`].

use std::path::PathBuf;

/// Everything that can go wrong in the library, each variant saying what and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tensor shapes that an op or a layer cannot combine.
    #[error("shape error in {op}: {detail}")]
    Shape { op: &'static str, detail: String },
    /// A configuration value that makes no sense (zero layers, even kernel, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A dataset could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A checkpoint file that is missing, corrupt or of another model.
    #[error("{path}: {detail}")]
    Checkpoint { path: PathBuf, detail: String },
    /// The loss or a gradient became NaN or infinite.
    #[error("non-finite {what} at step {step}: training stopped (try a lower --lr or --clip)")]
    NonFinite { what: &'static str, step: u64 },
    /// Logits that cannot be sampled from (NaN or infinite).
    #[error("cannot sample: {0}")]
    Sampling(String),
    /// A feature that is not built (yet).
    #[error("{0}")]
    Unsupported(String),
    /// A CUDA (or emulated CUDA) allocation, transfer or kernel launch that failed.
    #[error("{0}")]
    Device(String),
    /// A recurrence path with no kernels at the backend's precision: it refuses rather than
    /// silently running fp32 (`cuda/lstm_precision.rs`).
    #[error(
        "{op}: the {variant} recurrence has no {precision} kernels on CUDA (it would run fp32); use --precision fp32, or the CPU backend"
    )]
    PrecisionUnsupported {
        op: &'static str,
        variant: &'static str,
        precision: crate::backend::Precision,
    },
    /// Another process is writing this run folder (it holds the folder's lock).
    #[error(
        "run folder {path} is in use by another pixelrnn train ({holder}): wait for it to end, or choose another --out"
    )]
    RunFolderBusy { path: PathBuf, holder: String },
    /// Memory that a model, a batch or a sample needs and this machine does not have.
    #[error("{what} needs {needed}, this machine has {available} available")]
    OutOfMemory {
        what: String,
        needed: String,
        available: String,
    },
    /// File-system failures, with the path involved.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Builds an [`Error::Shape`].
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Shape {
            op,
            detail: detail.into(),
        }
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}

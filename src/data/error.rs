//! [`DataError`]: everything that can go wrong reading a dataset.

use std::path::Path;

/// Everything that can go wrong reading a dataset. Each message names the input.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    #[error(
        "{spec}: no such file or directory, and not a built-in dataset \
         (mnist, binarized-mnist, binarized-mnist-stochastic)"
    )]
    UnknownDataset { spec: String },
    /// A built-in binarized dataset asked to be binarized another way.
    #[error("{spec} is binarized already ({what}); for {flag} use --data mnist")]
    Rebinarized {
        spec: String,
        what: String,
        flag: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An array of the wrong dtype or shape.
    #[error("{path}: expected uint8 images of shape N x H x W x C, found {dtype} {shape:?}{hint}")]
    BadArray {
        path: String,
        dtype: String,
        shape: Vec<u64>,
        hint: String,
    },
    #[error("{path}: truncated: {what} needs {expected} bytes, the file has {found}")]
    Truncated {
        path: String,
        what: String,
        expected: u64,
        found: u64,
    },
    #[error("{path}: not {format} (magic {found}, expected {expected})")]
    BadMagic {
        path: String,
        format: String,
        found: String,
        expected: String,
    },
    #[error("{path}: no images")]
    Empty { path: String },
    #[error("{path}: {message}")]
    Format { path: String, message: String },
    #[error("{0}")]
    InvalidImages(String),
    /// `--condition class` on a source without labels.
    #[error(
        "{name}: no class labels, so --condition class cannot be used (labels come from the \
         embedded MNIST, CIFAR-10 label bytes, *-labels-idx1-ubyte files beside MNIST IDX \
         images, or train_labels/test_labels or y_train/y_test arrays in a .npz)"
    )]
    NoLabels { name: String },
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> DataError {
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound {
                path: path.display().to_string(),
            }
        } else if source.kind() == std::io::ErrorKind::InvalidInput {
            // What crate::input refuses (a device, a pipe): the message is the whole story.
            DataError::format(&path.display().to_string(), source.to_string())
        } else {
            DataError::Io {
                path: path.display().to_string(),
                source,
            }
        }
    }

    pub(crate) fn format(path: &str, message: impl Into<String>) -> DataError {
        DataError::Format {
            path: path.to_string(),
            message: message.into(),
        }
    }
}

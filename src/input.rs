//! Opening the files the program reads (checkpoints, datasets, metrics): regular files only.
//!
//! A device such as `/dev/zero` or `/dev/urandom`, a FIFO or a socket (directly, or through a
//! symlink named like `checkpoint.safetensors` or `data.bin`) has no length and never ends, so
//! reading it "to the end" grows memory until the process is killed. Every loader opens its
//! input here, which checks the opened file itself (no race between the check and the open).

use std::fs::File;
use std::io::{Error, ErrorKind, Read, Result};
use std::path::Path;

/// Opens `path` for reading; anything but a regular file (after following symlinks) is an
/// [`ErrorKind::InvalidInput`] error that says what it is.
pub fn open_regular(path: &Path) -> Result<File> {
    let file = File::open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a folder"
    } else {
        special_kind(&kind)
    };
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("not a regular file ({what})"),
    ))
}

#[cfg(unix)]
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a pipe"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Reads the whole of the regular file `path` ([`open_regular`]).
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads the regular file `path` as UTF-8 text ([`open_regular`]).
pub fn read_regular_string(path: &Path) -> Result<String> {
    let mut file = open_regular(path)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

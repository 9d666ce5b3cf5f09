//! The run folder that `pixelrnn train --out` writes and `pixelrnn plot` reads: where each file
//! lives ([`RunDir`]) and the metrics log, `metrics.jsonl` (one [`Metrics`] per evaluation:
//! read, appended, truncated on resume).
//!
//! A run folder holds `config.json` (the run's `train::TrainConfig`), `metrics.jsonl`,
//! `checkpoint.safetensors`, `loss.svg`, `samples.png` and `.lock` (the writer's advisory
//! lock, [`RunDir::lock`], holding its process id). Training and plotting both use this
//! module and neither uses the other's, so neither depends on the other.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::error::{Error, Result};

/// The run folder `train` picks when no `--out` is given: `runs/<model>-<UTC date and time>`,
/// for example `runs/pixelcnn-2026-12-01T18-12-34`, so that `ls runs/` lists runs in the order
/// they started. When that folder exists already (two runs started in the same second), `-2`,
/// `-3`, ... is appended, which still sorts after the first and before the next second.
pub fn default_run_folder(model: &str, now: std::time::SystemTime) -> PathBuf {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = format!("runs/{model}-{}", utc_timestamp(secs));
    let mut path = PathBuf::from(&base);
    let mut k = 2;
    while path.exists() {
        path = PathBuf::from(format!("{base}-{k}"));
        k += 1;
    }
    path
}

/// `secs` seconds after the Unix epoch as a UTC date and time that sorts as text and is a
/// valid file name everywhere: `YYYY-MM-DDTHH-MM-SS` (ISO 8601 with `-` for `:`).
pub fn utc_timestamp(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date `(year, month, day)` of day `days` after 1970-01-01
/// (H. Hinnant's `civil_from_days`, for non-negative days: no date library needed for this).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Images in the run folder's `samples.png`.
pub const SAMPLE_GRID_IMAGES: usize = 16;

/// Paths inside a run folder.
pub struct RunDir {
    /// The folder.
    pub root: PathBuf,
}

impl RunDir {
    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    /// `metrics.jsonl`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `checkpoint.safetensors`.
    pub fn checkpoint(&self) -> PathBuf {
        self.root.join("checkpoint.safetensors")
    }
    /// `samples.png`: [`SAMPLE_GRID_IMAGES`] images drawn (cached method, seed = the run's
    /// seed) at the end of training.
    pub fn samples(&self) -> PathBuf {
        self.root.join("samples.png")
    }
    /// `.lock`: the lock file of [`RunDir::lock`]; it holds the writer's process id, and stays
    /// in the folder when the run ends (removing it could let two writers lock two files).
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// Makes this process the folder's one writer for as long as the returned [`RunLock`]
    /// lives: an advisory lock (`flock`) on [`RunDir::lock_file`], which the operating system
    /// drops when the process ends, however it ends. The folder must exist. When another
    /// process holds it, [`Error::RunFolderBusy`] names the folder and the holder's process id.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.lock_file();
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.take(64).read_to_string(&mut text);
                let holder = match text.trim() {
                    "" => "a process that has not written its id yet".to_string(),
                    t => t.to_string(),
                };
                return Err(Error::RunFolderBusy {
                    path: self.root.clone(),
                    holder,
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "pid {}", std::process::id()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file })
    }

    /// `loss.svg`: train and test NLL against the step, redrawn from `metrics.jsonl` at every
    /// evaluation ([`crate::plot::write_loss_curve`]).
    pub fn loss_curve(&self) -> PathBuf {
        self.root.join("loss.svg")
    }
}

/// The lock of [`RunDir::lock`]: released when dropped (or when the process ends).
pub struct RunLock {
    _file: File,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Optimizer steps done.
    pub step: u64,
    /// Mean training NLL (nats per image) over the steps since the previous line.
    pub train_nll: Option<f64>,
    /// Test NLL, nats per image.
    pub test_nll_nats: f64,
    /// Test NLL, bits per dimension.
    pub test_bits_per_dim: f64,
    /// Multi-scale: test NLL of stage 1, `NLL(x_s)`, nats per image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage1_nll_nats: Option<f64>,
    /// Multi-scale: test NLL of stage 2, `NLL(x | x_s)`, nats per image (the two sum to
    /// `test_nll_nats`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2_nll_nats: Option<f64>,
    /// Training throughput since the previous line.
    pub images_per_sec: Option<f64>,
    /// Training wall time so far (evaluation excluded), seconds.
    pub seconds: f64,
}

/// Appends `m` to the `metrics.jsonl` at `path` as one line (creating the file).
pub fn append_metrics(path: &Path, m: &Metrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(m).expect("metrics serialize")
    )
    .map_err(|e| Error::io(path, e))
}

/// Keeps only the metrics lines up to `step` (a resumed run rewrites what came after).
pub fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    let text = match crate::input::read_regular_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<Metrics>(l).is_ok_and(|m| m.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomic(path, kept.as_bytes())
}

/// Reads every line of a `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>> {
    let text = crate::input::read_regular_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                detail: format!("bad metrics line: {e}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_are_exact() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00-00-00");
        // `date -u -d @1796148664`: 2026-12-01 18:11:04 UTC (the folder name of issue 20).
        assert_eq!(utc_timestamp(1_796_148_664), "2026-12-01T18-11-04");
        // Leap days and the ends of months and years.
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00-00-00");
        assert_eq!(utc_timestamp(951_868_799), "2000-02-29T23-59-59");
        assert_eq!(utc_timestamp(1_709_251_199), "2024-02-29T23-59-59");
        assert_eq!(utc_timestamp(1_735_689_599), "2024-12-31T23-59-59");
        assert_eq!(utc_timestamp(4_107_542_400), "2100-03-01T00-00-00");
    }

    #[test]
    fn timestamps_sort_as_time_does() {
        let times = [
            0u64,
            59,
            60,
            3599,
            86_399,
            86_400,
            1_796_148_664,
            4_107_542_400,
        ];
        let names: Vec<String> = times.iter().map(|&t| utc_timestamp(t)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }
}

//! Will it fit? Estimates of the memory a model, a training run or a sample needs, checked
//! against what the machine has before anything is allocated, so that a size that cannot fit
//! is a clear error ([`Error::OutOfMemory`]) instead of the allocator aborting the process.
//!
//! The estimates count only the largest buffers (parameters, their gradients and optimizer
//! moments, the activations kept for backward, the sampled images), so they are lower bounds:
//! a run refused by them could never have fitted. "Available" is Linux's `MemAvailable`
//! (`/proc/meminfo`: free memory plus what the kernel can reclaim); where it cannot be read the
//! check passes and a failed allocation is still an error, not an abort ([`try_zeros`]).

use crate::error::{Error, Result};

/// Bytes of memory available to this process now, if the system says.
pub fn available_bytes() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `bytes` as a short human size (`3.2 GiB`).
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Fails with [`Error::OutOfMemory`] when `what` needs more than `bytes` the machine has.
pub fn check_fits(what: impl FnOnce() -> String, bytes: u128) -> Result<()> {
    match available_bytes() {
        Some(have) if bytes > have => Err(Error::OutOfMemory {
            what: what(),
            needed: format!("at least {}", human(bytes)),
            available: human(have),
        }),
        _ => Ok(()),
    }
}

/// `len` zeros, or [`Error::OutOfMemory`] when the allocator cannot provide them (where no
/// estimate ran first, a size that cannot fit is then an error, not an abort).
pub fn try_zeros(len: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory {
        what: format!("a tensor of {len} floats"),
        needed: human(len as u128 * 4),
        available: available_bytes().map_or_else(|| "less".to_string(), human),
    })?;
    v.resize(len, 0.0);
    Ok(v)
}

/// A copy of `data`, or [`Error::OutOfMemory`] (as [`try_zeros`]).
pub fn try_copy(data: &[f32]) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(data.len())
        .map_err(|_| Error::OutOfMemory {
            what: format!("a tensor of {} floats", data.len()),
            needed: human(data.len() as u128 * 4),
            available: available_bytes().map_or_else(|| "less".to_string(), human),
        })?;
    v.extend_from_slice(data);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
    }

    #[test]
    fn an_impossible_size_is_an_error() {
        assert!(check_fits(|| "x".into(), u128::MAX).is_err() || available_bytes().is_none());
        assert!(try_zeros(usize::MAX / 8).is_err());
        assert_eq!(try_zeros(3).unwrap(), vec![0.0; 3]);
    }
}

//! The machine a profile's time estimate is for: a roofline of memory bandwidth, fp32 FMA
//! throughput and a fixed cost per launch.

use serde::Serialize;

/// A roofline: the fastest a launch can be is its compulsory traffic at `bytes_per_s` or its
/// FLOPs at `flops_per_s`, whichever takes longer, plus `launch_s` to launch it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Roofline {
    /// Name in reports.
    pub name: &'static str,
    /// DRAM bandwidth, bytes per second.
    pub bytes_per_s: f64,
    /// fp32 FMA throughput, FLOPs per second (2 per FMA).
    pub flops_per_s: f64,
    /// Launch overhead per kernel launch, seconds (back-to-back launches on one stream).
    pub launch_s: f64,
}

/// An NVIDIA H200 (SXM): 4.8 TB/s HBM3e peak, of which about 4.3 TB/s is reached by a large
/// copy; 67 TFLOP/s fp32 (132 SMs x 128 FMA lanes x 2 x 1.98 GHz); 3 µs per launch, the
/// usual cost of a small kernel launched right after another on one stream (the figures of
/// issue 16; none of them measured here).
pub const H200: Roofline = Roofline {
    name: "H200",
    bytes_per_s: 4.3e12,
    flops_per_s: 67e12,
    launch_s: 3e-6,
};

/// What limits a launch's estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// Compulsory traffic at the bandwidth.
    Memory,
    /// FLOPs at the fp32 rate.
    Compute,
    /// The launch overhead is more than either.
    Launch,
}

impl Bound {
    /// `memory`, `compute` or `launch`.
    pub fn name(self) -> &'static str {
        match self {
            Bound::Memory => "memory",
            Bound::Compute => "compute",
            Bound::Launch => "launch",
        }
    }
}

impl Roofline {
    /// The lower bound of one launch moving `bytes` and doing `flops`, in seconds, and what
    /// sets it.
    pub fn launch_bound(&self, bytes: u64, flops: u64) -> (f64, Bound) {
        let mem = bytes as f64 / self.bytes_per_s;
        let compute = flops as f64 / self.flops_per_s;
        let work = mem.max(compute);
        let bound = if self.launch_s > work {
            Bound::Launch
        } else if compute > mem {
            Bound::Compute
        } else {
            Bound::Memory
        };
        (work + self.launch_s, bound)
    }

    /// This roofline with `us` microseconds per launch.
    pub fn with_launch_us(mut self, us: f64) -> Self {
        self.launch_s = us * 1e-6;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_the_larger_floor_plus_the_launch() {
        let r = H200;
        // 4.3 GB at 4.3 TB/s = 1 ms; 6.7 GFLOP at 67 TFLOP/s = 0.1 ms.
        let (t, b) = r.launch_bound(4_300_000_000, 6_700_000_000);
        assert!((t - (1e-3 + 3e-6)).abs() < 1e-12, "{t}");
        assert_eq!(b, Bound::Memory);
        let (t, b) = r.launch_bound(43_000, 67_000_000_000);
        assert!((t - (1e-3 + 3e-6)).abs() < 1e-12, "{t}");
        assert_eq!(b, Bound::Compute);
        let (t, b) = r.launch_bound(4300, 0);
        assert!((t - (1e-9 + 3e-6)).abs() < 1e-15, "{t}");
        assert_eq!(b, Bound::Launch);
    }
}

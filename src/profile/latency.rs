//! The latency model of a profile: what the roofline leaves out, and what the first device run
//! showed to decide the recurrences' speed (docs/benchmarks.md, "First device run": kernels at
//! 1-8 warps per SM ran 10-60x above their roofline floors, at full coalescing).
//!
//! The model: one warp's work is a chain of waits, none of it overlapped within the warp. It
//! waits [`LatencyModel::load_s`] for each round of its global loads (counted by the emulator,
//! [`crate::backend::cuda::SiteCounters::rounds`]: between two barriers, loads at different
//! sites are in flight together, the n-th execution of one site waits for the (n-1)-th),
//! [`LatencyModel::shared_s`] for each of its shared-memory requests (a load or store
//! instruction, whatever its wavefronts), and [`LatencyModel::fma_s`] for each FMA
//! instruction (the launch's FLOPs over 64 per warp: 32 lanes, 2 FLOPs each), and
//! [`LatencyModel::barrier_s`], [`LatencyModel::cluster_s`] and [`LatencyModel::warp_op_s`] for
//! each block barrier, cluster barrier and warp operation (shuffle, vote, reduction) it takes
//! part in ([`crate::backend::cuda::SyncCounters`]). The resident
//! warps of an SM overlap perfectly and the blocks that do not fit run in later waves, so a
//! launch takes at least `waves x` one warp's chain. Where enough warps are
//! resident this is under the roofline, which then bounds the launch. What it cannot see:
//! a load whose address is another load's value in the same round, loads that a pipeline
//! keeps in flight across barriers (each cp.async chunk is a round), warps of one SM that
//! compete for its issue slots below the roofline, the wait of a barrier for the block's
//! slowest warp (each barrier costs the same), and every other instruction. Its times are
//! fitted to the first device run's steps (docs/kernels.md,
//! "The latency model", with the fit's errors): a model, not a measurement.

use serde::{Deserialize, Serialize};

use crate::backend::cuda::SyncCounters;

/// The times of a profile's latency model: what one warp waits for each unit of its work.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencyModel {
    /// Name in reports.
    pub name: &'static str,
    /// Seconds per round of a warp's global loads (issue to use).
    pub load_s: f64,
    /// Seconds per shared-memory request of a warp.
    pub shared_s: f64,
    /// Seconds per FMA instruction of a warp (32 lanes, 64 FLOPs).
    pub fma_s: f64,
    /// Seconds per block barrier a warp waits at.
    pub barrier_s: f64,
    /// Seconds per cluster barrier a warp waits at.
    pub cluster_s: f64,
    /// Seconds per warp operation (shuffle, vote, reduction) of a warp.
    pub warp_op_s: f64,
}

/// The H200 of the first device run (2026-12-04, binaries of 6a07691): the six times
/// fitted, by least squares on the logarithms, to its 18 fp32 training steps as the emulator
/// profiles them under that commit's kernel versions (scripts/fit_latency_model.py;
/// docs/kernels.md, "The latency model", where the fit, its data, its errors and its ranking of
/// the persistent kernel versions are). 165 ns a load round is about 330 cycles at 1.98 GHz,
/// near an L2 hit's round trip. The instructions (shared requests, FMAs, warp operations) sit
/// at one issue cycle, the grid's floor: what they cost is the roofline's. 1.14 µs a block
/// barrier and 6 µs a cluster barrier are far above what the instructions take on an idle SM:
/// they stand for what a barrier interval adds in these kernels beyond its counted rounds and
/// instructions (the chunk's exposed load latency and the drain and refill of a block that has
/// no other block beside it), which is where the first run's time went.
pub const H200_LATENCY: LatencyModel = LatencyModel {
    name: "H200, fitted to the first device run",
    load_s: 165e-9,
    shared_s: 1e-9,
    fma_s: 0.5e-9,
    barrier_s: 1.14e-6,
    cluster_s: 6e-6,
    warp_op_s: 0.5e-9,
};

/// One warp's chain of work in a launch, times the launch's waves: what the model charges
/// (read back from profile JSON by tests/latency_fit.rs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WarpChain {
    /// Global load rounds.
    pub load_rounds: f64,
    /// Shared-memory requests.
    pub shared_requests: f64,
    /// FMA instructions.
    pub fma_instructions: f64,
    /// Block barriers.
    pub barriers: f64,
    /// Cluster barriers.
    pub cluster_barriers: f64,
    /// Warp operations.
    pub warp_ops: f64,
}

impl std::ops::AddAssign for WarpChain {
    fn add_assign(&mut self, o: Self) {
        self.load_rounds += o.load_rounds;
        self.shared_requests += o.shared_requests;
        self.fma_instructions += o.fma_instructions;
        self.barriers += o.barriers;
        self.cluster_barriers += o.cluster_barriers;
        self.warp_ops += o.warp_ops;
    }
}

/// A launch's work summed over its warps: what [`LaunchShape::chain`] divides among them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LaunchWork {
    /// Global load rounds ([`crate::backend::cuda::SiteCounters::rounds`], summed over sites).
    pub load_rounds: u64,
    /// Shared-memory requests.
    pub shared_requests: u64,
    /// FLOPs by the op's formula.
    pub flops: u64,
    /// Barriers and warp operations.
    pub sync: SyncCounters,
}

/// One launch's place on the device, as the latency model needs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LaunchShape {
    /// Blocks of the grid.
    pub blocks: u64,
    /// Warps per block.
    pub warps_per_block: u32,
    /// Blocks one SM holds at once ([`super::Occupancy::resident_blocks`]).
    pub resident_blocks: u32,
    /// SMs of the device.
    pub sms: u32,
}

impl LaunchShape {
    /// Waves of the grid: its blocks over those all SMs hold at once, rounded up.
    pub fn waves(&self) -> u64 {
        let per_wave = u64::from(self.resident_blocks.max(1)) * u64::from(self.sms.max(1));
        self.blocks.div_ceil(per_wave)
    }

    /// The chain of one warp of a launch whose warps did `work` in all (its mean per warp),
    /// times its waves (all zero for an empty grid).
    pub fn chain(&self, work: &LaunchWork) -> WarpChain {
        let warps = self.blocks * u64::from(self.warps_per_block);
        if warps == 0 {
            return WarpChain::default();
        }
        let per_warp = self.waves() as f64 / warps as f64;
        WarpChain {
            load_rounds: work.load_rounds as f64 * per_warp,
            shared_requests: work.shared_requests as f64 * per_warp,
            fma_instructions: work.flops as f64 / 64.0 * per_warp,
            barriers: work.sync.barriers as f64 * per_warp,
            cluster_barriers: work.sync.cluster_barriers as f64 * per_warp,
            warp_ops: work.sync.warp_ops as f64 * per_warp,
        }
    }
}

impl LatencyModel {
    /// The model's time of `chain`, seconds.
    pub fn time_s(&self, chain: &WarpChain) -> f64 {
        chain.load_rounds * self.load_s
            + chain.shared_requests * self.shared_s
            + chain.fma_instructions * self.fma_s
            + chain.barriers * self.barrier_s
            + chain.cluster_barriers * self.cluster_s
            + chain.warp_ops * self.warp_op_s
    }

    /// This model with `ns` nanoseconds per load round.
    pub fn with_load_ns(mut self, ns: f64) -> Self {
        self.load_s = ns * 1e-9;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(blocks: u64, warps_per_block: u32, resident_blocks: u32) -> LaunchShape {
        LaunchShape {
            blocks,
            warps_per_block,
            resident_blocks,
            sms: 132,
        }
    }

    const UNIT: LatencyModel = LatencyModel {
        name: "unit",
        load_s: 1e-6,
        shared_s: 1e-8,
        fma_s: 1e-9,
        barrier_s: 1e-7,
        cluster_s: 1e-5,
        warp_op_s: 1e-10,
    };

    fn work(load_rounds: u64, shared_requests: u64, flops: u64) -> LaunchWork {
        LaunchWork {
            load_rounds,
            shared_requests,
            flops,
            sync: SyncCounters::default(),
        }
    }

    /// By hand: one wave of 132 blocks of 4 warps with 100 load rounds, 1000 shared requests,
    /// 64 000 FLOPs, 20 block barriers, 3 cluster barriers and 500 warp operations per warp is
    /// 100 x 1 µs + 1000 x 10 ns + 1000 x 1 ns + 20 x 100 ns + 3 x 10 µs + 500 x 0.1 ns =
    /// 143.05 µs, however many warps share the wave; a second wave doubles it; an empty grid
    /// costs nothing.
    #[test]
    fn one_warps_chain_times_the_waves() {
        let warps = 132 * 4;
        let mut all = work(100 * warps, 1000 * warps, 64_000 * warps);
        all.sync = SyncCounters {
            barriers: 20 * warps,
            cluster_barriers: 3 * warps,
            warp_ops: 500 * warps,
        };
        let one = shape(132, 4, 1).chain(&all);
        assert_eq!(
            one,
            WarpChain {
                load_rounds: 100.0,
                shared_requests: 1000.0,
                fma_instructions: 1000.0,
                barriers: 20.0,
                cluster_barriers: 3.0,
                warp_ops: 500.0,
            }
        );
        assert!((UNIT.time_s(&one) - 143.05e-6).abs() < 1e-12);
        // Twice the blocks at the same work per warp, one resident per SM: two waves.
        let two = shape(264, 4, 1).chain(&work(200 * warps, 0, 0));
        assert!((UNIT.time_s(&two) - 200e-6).abs() < 1e-12);
        // The same grid with two resident per SM: one wave again.
        let fits = shape(264, 4, 2).chain(&work(200 * warps, 0, 0));
        assert!((UNIT.time_s(&fits) - 100e-6).abs() < 1e-12);
        // A partial second wave costs a whole one.
        assert_eq!(shape(133, 1, 1).waves(), 2);
        assert_eq!(shape(0, 4, 1).chain(&all), WarpChain::default());
        assert_eq!(H200_LATENCY.with_load_ns(5.0).load_s, 5e-9);
    }

    /// The first device run's lesson in the model's terms: the same work spread over four
    /// times the warps takes a quarter of the time (v2's stepwise backward against v3's,
    /// docs/benchmarks.md), where the roofline gives both the same floor.
    #[test]
    fn more_warps_for_the_same_work_is_faster() {
        let w = work(1 << 20, 1 << 22, 1 << 30);
        let few = H200_LATENCY.time_s(&shape(128, 4, 1).chain(&w));
        let many = H200_LATENCY.time_s(&shape(512, 4, 4).chain(&w));
        assert!((few / many - 4.0).abs() < 1e-12, "{few} {many}");
    }
}

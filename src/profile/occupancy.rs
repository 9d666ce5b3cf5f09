//! How many warps a launch keeps on each SM: the parallelism that the memory counters and the
//! roofline do not see, and that the first device run showed to decide the recurrences' speed
//! (docs/benchmarks.md, "First device run": kernels at 6-7 % achieved occupancy ran 10-50x
//! above their roofline estimate). Computed from the launch's grid and block, the kernel's
//! ptxas registers and static shared memory, and its dynamic shared memory, against an SM's
//! residency limits; an analysis, not a measurement. Checked against Nsight Compute's achieved
//! occupancy of two cifar-large launches in the tests below.

use serde::Serialize;

/// The residency limits of one SM and the SM count of a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SmLimits {
    /// SMs on the device.
    pub sms: u32,
    /// Resident warps per SM.
    pub max_warps: u32,
    /// Resident blocks per SM.
    pub max_blocks: u32,
    /// 32-bit registers per SM.
    pub registers: u32,
    /// Registers are allocated per warp in units of this many.
    pub register_unit: u32,
    /// Shared memory per SM usable by blocks, bytes.
    pub shared: u32,
    /// Shared memory the hardware reserves per resident block, bytes.
    pub shared_reserved: u32,
}

/// An H200 (sm_90, the CUDA occupancy tables for compute capability 9.0): 132 SMs, 64 warps,
/// 32 blocks, 64 Ki registers allocated 256 per warp, 228 KiB of shared memory of which 1 KiB
/// is reserved per block.
pub const H200_SM: SmLimits = SmLimits {
    sms: 132,
    max_warps: 64,
    max_blocks: 32,
    registers: 65536,
    register_unit: 256,
    shared: 228 * 1024,
    shared_reserved: 1024,
};

/// One launch's place on the device.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Occupancy {
    /// Blocks one SM can hold at once (registers, shared memory, warps, blocks).
    pub resident_blocks: u32,
    /// Mean warps per SM over the launch's first wave: all blocks spread over the SMs, at most
    /// `resident_blocks` per SM.
    pub warps_per_sm: f64,
}

impl Occupancy {
    /// `warps_per_sm` over the SM's maximum (Nsight Compute's achieved occupancy, less its
    /// tail and its stalls).
    pub fn fraction(&self, sm: &SmLimits) -> f64 {
        self.warps_per_sm / f64::from(sm.max_warps)
    }
}

impl SmLimits {
    /// A launch of `blocks` blocks of `threads` threads, each thread `registers` registers
    /// (ptxas), each block `shared_bytes` of static plus dynamic shared memory. `None` for an
    /// empty launch or one no SM can hold.
    pub fn occupancy(
        &self,
        blocks: u64,
        threads: u32,
        registers: u32,
        shared_bytes: u32,
    ) -> Option<Occupancy> {
        if blocks == 0 || threads == 0 {
            return None;
        }
        let warps = threads.div_ceil(32);
        let per_warp = (registers.max(1) * 32).next_multiple_of(self.register_unit);
        let by_registers = self.registers / (per_warp * warps);
        let by_shared = if shared_bytes == 0 {
            self.max_blocks
        } else {
            self.shared / (shared_bytes + self.shared_reserved)
        };
        let resident = by_registers
            .min(by_shared)
            .min(self.max_warps / warps)
            .min(self.max_blocks);
        if resident == 0 {
            return None;
        }
        let per_sm = (blocks as f64 / f64::from(self.sms)).min(f64::from(resident));
        Some(Occupancy {
            resident_blocks: resident,
            warps_per_sm: per_sm * f64::from(warps),
        })
    }
}

/// What ptxas reported for `kernel` (registers, static shared bytes), when it ran at build
/// time.
pub fn kernel_resources(kernel: &str) -> Option<(u32, u32)> {
    crate::kernels::modules()
        .iter()
        .find_map(|m| m.resources(kernel))
        .and_then(|r| Some((r.registers?, r.shared)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two of the launches Nsight Compute measured on the H200 (docs/benchmarks.md, "First
    /// device run": achieved occupancy 6.74 % and 6.2 %) come out within a point of it.
    #[test]
    fn matches_the_measured_occupancy_of_two_launches() {
        let sm = H200_SM;
        // lstm_ss_bwd_weight_v2 at cifar-large: grid 6 x 8 x 6 of 64 threads, 149 registers.
        let w = sm.occupancy(288, 64, 149, 8192).unwrap();
        assert!((w.fraction(&sm) - 0.0674).abs() < 0.01, "{w:?}");
        // row_lstm_step_fwd_v2: 16 images x 2 position tiles x 4 unit tiles of 128 threads,
        // 102 registers.
        let f = sm.occupancy(128, 128, 102, 8192).unwrap();
        assert!((f.fraction(&sm) - 0.062).abs() < 0.01, "{f:?}");
        assert_eq!(f.warps_per_sm, 128.0 * 4.0 / 132.0);
    }

    /// The GEMM kernels whose design is two resident blocks of 256 threads per SM (16 warps)
    /// keep it: ptxas's registers and static shared memory must let two blocks fit (a change
    /// that raises them past 128 registers halves their warps, as v3's 151 did). Skipped
    /// where ptxas did not run at build time (no resources to read).
    #[test]
    fn the_two_block_gemms_fit_two_blocks_per_sm() {
        for kernel in [
            "masked_conv2d_fwd_v4",
            "masked_conv2d_bwd_data_v4",
            "masked_conv2d_fwd_v5",
            "masked_conv2d_bwd_data_v5",
            "masked_conv2d_bwd_weight_v2",
            "masked_conv2d_bwd_weight_v3",
            "lstm_ss_bwd_weight_v3",
            "lstm_ss_bwd_weight_v4",
        ] {
            let Some((regs, shared)) = kernel_resources(kernel) else {
                assert!(
                    crate::kernels::modules()
                        .iter()
                        .all(|m| m.resource_report.is_none() || !m.has_entry_point(kernel)),
                    "{kernel}: ptxas ran but reported nothing for it"
                );
                continue;
            };
            let o = H200_SM.occupancy(10_000, 256, regs, shared).unwrap();
            assert_eq!(
                o.resident_blocks, 2,
                "{kernel}: {regs} registers, {shared} B shared: {o:?}"
            );
        }
        // And v3's own resources really do leave room for one block only.
        if let Some((regs, shared)) = kernel_resources("masked_conv2d_fwd_v3") {
            let o = H200_SM.occupancy(10_000, 256, regs, shared).unwrap();
            assert_eq!(o.resident_blocks, 1, "{regs} registers: {o:?}");
        }
    }

    /// The limits, each binding in turn, by hand.
    #[test]
    fn residency_is_the_tightest_limit() {
        let sm = H200_SM;
        // 256 threads of 128 registers: 32 Ki registers per block, 2 per SM.
        assert_eq!(
            sm.occupancy(10_000, 256, 128, 0).unwrap().resident_blocks,
            2
        );
        // 126 registers round up to 128 per thread (4 Ki per warp): still 2.
        assert_eq!(
            sm.occupancy(10_000, 256, 126, 0).unwrap().resident_blocks,
            2
        );
        // 192 KiB of shared memory: one block per SM.
        let one = sm.occupancy(10_000, 128, 32, 192 * 1024).unwrap();
        assert_eq!(one.resident_blocks, 1);
        assert_eq!(one.warps_per_sm, 4.0);
        // 32 threads of 16 registers: the 32-block limit.
        assert_eq!(sm.occupancy(10_000, 32, 16, 0).unwrap().resident_blocks, 32);
        // 1024 threads: the 64-warp limit at 32 registers.
        assert_eq!(
            sm.occupancy(10_000, 1024, 32, 0).unwrap().resident_blocks,
            2
        );
        // Fewer blocks than SMs: the mean over all SMs.
        let few = sm.occupancy(66, 64, 32, 0).unwrap();
        assert_eq!(few.warps_per_sm, 1.0);
        // Too much shared memory, or nothing to run.
        assert!(sm.occupancy(1, 128, 32, 228 * 1024).is_none());
        assert!(sm.occupancy(0, 128, 32, 0).is_none());
    }
}
